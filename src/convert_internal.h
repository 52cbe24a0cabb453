/* convert_internal.h - what the converter's files share: the plan (every
 * output tensor, where its rows come from, its type) made by convert.c,
 * the vocabulary written by convert_vocab.c, the job pipeline of
 * quantize_pool.c and the output file of outfile.c.  Not installed. */
#ifndef MOERUN_CONVERT_INTERNAL_H
#define MOERUN_CONVERT_INTERNAL_H

#include <stdint.h>

#include "convert.h"
#include "gguf_write.h"
#include "safetensors.h"
#include "status.h"

enum { MR_ARCH_MIXTRAL, MR_ARCH_MISTRAL, MR_ARCH_LLAMA };
enum { MR_PART_NONE = -1, MR_PART_GATE = 0, MR_PART_UP = 1, MR_PART_DOWN = 2 };

/* Hyperparameters from config.json. */
typedef struct {
    int arch;
    const char *arch_name;   /* "MixtralForCausalLM" */
    uint32_t n_vocab, n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff;
    uint32_t n_expert;       /* 0 for dense */
    uint32_t n_expert_used;
    uint32_t n_ctx;
    int has_head_dim;        /* config.json gives head_dim */
    int tied;                /* tie_word_embeddings */
    float rope_theta, rms_eps;
} mr_hf_config;

/* One output tensor. */
typedef struct {
    char name[96];
    uint32_t type;           /* mr_type */
    uint32_t n_dims;
    uint64_t ne[3];          /* ggml order */
    uint32_t n_src;          /* 1, or n_expert slices stacked along ne[2] */
    const mr_st_tensor **src;
    uint32_t *src_shard;
    uint32_t perm_heads;     /* 0, or heads to apply llama.cpp's Q/K permutation over */
    int32_t layer, part;     /* FFN slices: layer and MR_PART_*; else -1 */
    uint32_t windex;         /* index in the writer */
    uint64_t row_bytes;      /* output bytes of one row */
    uint64_t slice_bytes;    /* output bytes of one source (expert) */
    uint64_t nbytes;
} mr_plan_tensor;

/* A file of the source checkpoint that the output depends on. */
typedef struct {
    char name[256];          /* base name, as stored in moerun.source.files */
    int shard;               /* shard index, or -1 for a small file hashed up front */
    uint64_t xxh3;
} mr_plan_source;

typedef struct {
    mr_hf_config hp;
    mr_st_checkpoint *ckpt;
    uint32_t n_tensors;
    mr_plan_tensor *t;
    uint32_t n_sources;
    mr_plan_source *sources;
    uint32_t file_type;      /* general.file_type */
    uint64_t expert_hash_count; /* n_layer * max(n_expert, 1) * 3 */
} mr_plan;

/* Write the tokenizer.ggml.* keys from dir's tokenizer.model and
 * tokenizer_config.json (llama.cpp's _set_vocab_sentencepiece), adding
 * the files read to the plan's sources. */
mr_status mr_convert_vocab(const char *dir, mr_plan *p, mr_gguf_writer *w, mr_error *err);

/* Append a small source file (hashed now) to the plan's list. */
mr_status mr_plan_add_source(mr_plan *p, const char *name, const void *data, size_t len,
                             mr_error *err);

/* Run the jobs of a planned conversion into fd (header already written by
 * w): read, convert, quantize, write, and hash; then patch the checksum
 * arrays.  Leaves the output un-synced. */
mr_status mr_quantize_run(mr_plan *p, mr_gguf_writer *w, int fd, const char *out_name,
                          const mr_convert_opts *o, mr_convert_progress *prog, mr_error *err);

/* The output file: a temporary in the destination's directory until
 * mr_outfile_commit links it into place. */
typedef struct {
    int fd;
    char *path;      /* final path */
    char *tmp_path;  /* named temporary, or NULL with O_TMPFILE */
    int force;
    mr_convert_temp_fn on_temp;
    void *user;
} mr_outfile;

mr_status mr_outfile_open(const char *path, int force, int no_tmpfile, mr_convert_temp_fn cb,
                          void *user, mr_outfile *o, mr_error *err);
/* Write a whole (small) file: preallocate len bytes, then write buf at 0. */
mr_status mr_outfile_write(mr_outfile *o, const void *buf, uint64_t len, mr_error *err);
/* fsync, put in place (no clobber unless force), fsync the directory. */
mr_status mr_outfile_commit(mr_outfile *o, mr_error *err);
/* Close and remove the temporary (no-op after commit). */
void mr_outfile_abort(mr_outfile *o);

#endif
