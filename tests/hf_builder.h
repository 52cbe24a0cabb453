/* hf_builder.h - tiny Hugging Face checkpoints for tests: safetensors
 * images, a SentencePiece model, config.json, whole model directories with
 * faults injected on request.  Data is deterministic (seeded). */
#ifndef MOERUN_HF_BUILDER_H
#define MOERUN_HF_BUILDER_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *name;
    const char *dtype;    /* "BF16", "F16", "F32" */
    uint32_t n_dims;
    uint64_t shape[4];
    uint32_t seed;        /* values ~ uniform(-0.05, 0.05) from this seed */
} hfb_tensor;

/* A safetensors image of n tensors (header padded with spaces to a multiple
 * of 8, as the real writer does); malloc'd, *len its size. */
uint8_t *hfb_safetensors(const hfb_tensor *t, size_t n, size_t *len);

/* A SentencePiece ModelProto: <unk>, <s>, </s>, the 256 byte pieces and
 * n_words normal pieces "▁w0".."▁wN"; malloc'd. */
uint8_t *hfb_spm_model(uint32_t n_words, size_t *len);
/* Pieces of hfb_spm_model(n_words). */
static inline uint32_t hfb_spm_pieces(uint32_t n_words) { return 3 + 256 + n_words; }

/* What a tiny model directory looks like, and what is wrong with it. */
typedef struct {
    const char *arch;      /* "MixtralForCausalLM" (default), "LlamaForCausalLM", ... */
    const char *dtype;     /* default "BF16" */
    int n_expert;          /* Mixtral: default 4 */
    int shards;            /* 0/1: model.safetensors; 2: two shards + index */
    int tied;              /* no lm_head, tie_word_embeddings true */
    const char *bad_shape; /* HF name of a tensor written with one row too many */
    const char *drop;      /* HF name of a tensor left out of the files (and index) */
    const char *extra;     /* HF name of an extra tensor to add */
    int index_missing_shard; /* the index names a shard that is not written */
    int index_wrong_shard;   /* the index places a tensor in the other shard */
} hfb_model_opts;

/* Geometry of the tiny model: rows of n_embd are whole k-quant blocks
 * (256), rows of n_ff (352) are not, so both a k-quant and its fallback
 * are exercised. */
enum { HFB_EMBD = 256, HFB_HEADS = 4, HFB_KV = 2, HFB_HEAD_DIM = 64, HFB_FF = 352,
       HFB_LAYERS = 2, HFB_WORDS = 61 };

/* Write the tiny model into dir (which exists); 0 on success. */
int hfb_write_model(const char *dir, const hfb_model_opts *o);

/* A fresh directory /tmp/moerun-test-XXXXXX (malloc'd), or NULL. */
char *hfb_tmpdir(void);
/* Entries of a directory other than . and .. (-1 if it cannot be read). */
int hfb_dir_entries(const char *dir);
/* Remove a flat directory and its files, and free the name. */
void hfb_rmdir(char *dir);

/* Write a buffer to a file; 0 on success. */
int hfb_write_file(const char *path, const void *buf, size_t len);

#endif
