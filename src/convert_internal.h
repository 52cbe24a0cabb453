/* convert_internal.h - what the converter's files share: the plan (every
 * output tensor, where its rows come from, its type) made by convert.c,
 * the vocabulary written by convert_vocab.c, the job pipeline of
 * quantize_pool.c and the output file of outfile.c.  Not installed. */
#ifndef MOERUN_CONVERT_INTERNAL_H
#define MOERUN_CONVERT_INTERNAL_H

#include <json-c/json.h>
#include <stdint.h>

#include "convert.h"
#include "gguf_write.h"
#include "safetensors.h"
#include "status.h"

enum { MR_PART_NONE = -1, MR_PART_GATE = 0, MR_PART_UP = 1, MR_PART_DOWN = 2 };

struct mr_hf_family;

/* Hyperparameters from config.json: the keys every family has (read by
 * convert.c), and what a family's config hook adds.  A family that needs
 * more reads it from mr_plan.config when it plans or writes. */
typedef struct {
    const struct mr_hf_family *fam;
    const char *arch_name;   /* "MixtralForCausalLM" */
    uint32_t n_vocab, n_embd, n_layer, n_head, n_head_kv, head_dim;
    uint32_t n_ff;           /* intermediate_size */
    uint32_t n_ff_exp;       /* hidden size of one routed expert (a family's config sets it) */
    uint32_t n_expert;       /* 0 for dense */
    uint32_t n_expert_used;
    uint32_t n_ctx;
    int has_head_dim;        /* config.json gives head_dim */
    int tied;                /* tie_word_embeddings */
    float rope_theta, rms_eps;
    /* quantization_config {quant_method fp8, fmt e4m3, weight_block_size}:
     * F8_E4M3 weights W = q * <name>_scale_inv[i / b0][j / b1]; 0: none */
    uint32_t fp8_block[2];
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
    /* F8_E4M3 sources: each one's weight_scale_inv, [ceil(rows / b0),
     * ceil(cols / b1)] (NULL entries for other dtypes) */
    const mr_st_tensor **scale;
    uint32_t *scale_shard;
    /* MLA's kv_b split (split_heads > 0): one source of split_heads blocks
     * of head_rows rows; output head h (ne[2]) is the block's rows
     * head_off.. (ne[1] of them, or ne[0] when transpose: then output row
     * i is source column i of those rows) */
    uint32_t split_heads, head_rows, head_off;
    int transpose;
    /* A transposed source (Llama 4's fused experts, stored x @ W): every
     * src[e] is one 3-D tensor [n_src, ne[0], src_cols] and row r of
     * expert e is its column src_col0 + r.  src_cols 0: rows are rows. */
    uint64_t src_cols, src_col0;
    float *gen;              /* generated values (ne[0] floats, owned), no source */
    /* Strided sources (gpt-oss's interleaved gate/up): output row r of a
     * slice is source row r * row_step + row_first, element i is source
     * element i * col_step + col_first (steps 0 or 1: contiguous). */
    uint32_t row_step, row_first, col_step, col_first;
    uint64_t src_slice_off;  /* > 0: the slices are one source tensor, slice e at e * this */
    /* MXFP4 as released (transformers' _blocks/_scales): src holds the U8
     * blocks (consecutive-pair nibbles), scales the E8M0 bytes; repacked
     * into ggml blocks without requantization */
    const mr_st_tensor *scales;
    uint32_t scales_shard;   /* the shard holding them (a layer may straddle two) */
    uint64_t scales_slice_off;
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
    json_object *config;     /* config.json, parsed; alive for the whole conversion */
    mr_st_checkpoint *ckpt;
    uint32_t n_tensors, cap_tensors;
    mr_plan_tensor *t;
    uint32_t n_sources;
    mr_plan_source *sources;
    uint32_t file_type;      /* general.file_type */
    uint64_t expert_hash_count; /* n_layer * max(n_expert, 1) * 3 */
} mr_plan;

/* ---- one converter per family (src/arch/<family>_hf.c) ----
 *
 * convert.c reads config.json's common keys, opens the checkpoint, and
 * asks the family named by "architectures"[0] for the rest: */
typedef struct mr_planner mr_planner;

typedef struct mr_hf_family {
    const char *hf_arch;   /* config.json "architectures"[0] */
    const char *gguf_arch; /* general.architecture it writes */
    /* Read the family's own config keys into hp (file: config.json's path);
     * refuse settings it would mistranslate. */
    mr_status (*config)(const char *file, json_object *root, mr_hf_config *hp, mr_error *err);
    /* Add every output tensor (mr_plan_add), in the order llama.cpp's
     * converter writes them. */
    mr_status (*tensors)(mr_planner *pl, mr_error *err);
    /* Write the "<gguf_arch>.*" keys and general.file_type /
     * general.quantization_version, in convert_hf_to_gguf.py's order
     * (general.architecture .. size_label come first, the tokenizer after). */
    void (*hparams)(const mr_plan *p, mr_gguf_writer *w);
} mr_hf_family;

extern const mr_hf_family mr_hf_mixtral, mr_hf_mistral, mr_hf_llama, mr_hf_qwen3moe;
extern const mr_hf_family mr_hf_llama4, mr_hf_llama4_text, mr_hf_gptoss;
extern const mr_hf_family mr_hf_deepseek3, mr_hf_deepseek2;

/* Add output tensor `gguf` made of n_src checkpoint tensors (names hf[i],
 * each of shape (rows, cols), or a vector of cols when rows == 0), stacked
 * along ne[2] when n_src > 1.  perm_heads: apply llama.cpp's Q/K row
 * permutation over that many heads (0: none).  layer/part: FFN slices
 * (MR_PART_*) for the expert checksums and the q4_k_m choices. */
mr_status mr_plan_add(mr_planner *pl, const char *gguf, char hf[][128], uint32_t n_src,
                      uint64_t rows, uint64_t cols, uint32_t perm_heads, int layer, int part,
                      mr_error *err);
/* Add output tensor `gguf` from the per-head blocks of checkpoint tensor
 * hf (heads x head_rows rows of cols): head h's rows head_off..head_off+n,
 * as [cols, n, heads] or, transposed, [n, cols, heads] (ggml ne). */
mr_status mr_plan_add_head_split(mr_planner *pl, const char *gguf, const char *hf, uint32_t heads,
                                 uint32_t head_rows, uint32_t head_off, uint32_t n, uint64_t cols,
                                 int transpose, int layer, mr_error *err);
/* Add output tensor `gguf` of n_expert slices, each the transpose of a
 * column band of checkpoint tensor `hf` of shape [n_expert, cols, src_cols]:
 * slice e has `rows` rows, row r = column col0 + r of hf[e]. */
mr_status mr_plan_add_transposed(mr_planner *pl, const char *gguf, const char *hf,
                                 uint32_t n_expert, uint64_t rows, uint64_t cols,
                                 uint64_t src_cols, uint64_t col0, int layer, int part,
                                 mr_error *err);
/* Add output tensor `gguf` (ggml ne = [cols, rows, n_slices], or [cols,
 * rows] when n_slices is 1) from rows and elements of ONE checkpoint tensor
 * `hf` of shape [n_slices,] rows * row_step, cols * col_step (see
 * mr_plan_tensor's steps; firsts < steps). */
mr_status mr_plan_add_strided(mr_planner *pl, const char *gguf, const char *hf,
                              uint32_t n_slices, uint64_t rows, uint64_t cols, uint32_t row_step,
                              uint32_t row_first, uint32_t col_step, uint32_t col_first,
                              int layer, int part, mr_error *err);
/* The same for released MXFP4: `blocks` U8 [n_slices, rows * row_step,
 * cols / 32, 16] and `scales` U8 [n_slices, rows * row_step, cols / 32],
 * written as MXFP4 whatever the output type. */
mr_status mr_plan_add_mxfp4(mr_planner *pl, const char *gguf, const char *blocks,
                            const char *scales, uint32_t n_slices, uint64_t rows, uint64_t cols,
                            uint32_t row_step, uint32_t row_first, int layer, int part,
                            mr_error *err);
/* Add a 1-D F32 output tensor of n values computed by the family (copied). */
mr_status mr_plan_add_generated(mr_planner *pl, const char *gguf, const float *v, uint64_t n,
                                mr_error *err);
/* Leave out every checkpoint tensor whose name starts with prefix (a vision
 * tower the text converter drops, as llama.cpp's does). */
void mr_plan_drop_prefix(mr_planner *pl, const char *prefix);
/* Whether the checkpoint has a tensor of that name. */
int mr_plan_has(const mr_planner *pl, const char *hf_name);
/* The plan being built (its hp, config, checkpoint). */
mr_plan *mr_planner_plan(mr_planner *pl);

/* Pieces every family's tensor list is made of (src/arch/hf_common.c),
 * HF names as most checkpoints spell them ("model.layers.N..."): */
/* token_embd.weight from model.embed_tokens.weight */
mr_status mr_hf_embed(mr_planner *pl, mr_error *err);
/* blk.N.attn_norm (input_layernorm) and attn_q/k/v/output (self_attn.*_proj);
 * permute: llama.cpp's Q/K row permutation (rope NORM families) */
mr_status mr_hf_attention(mr_planner *pl, uint32_t il, int permute, mr_error *err);
/* blk.N.ffn_norm from post_attention_layernorm */
mr_status mr_hf_ffn_norm(mr_planner *pl, uint32_t il, mr_error *err);
/* blk.N.ffn_gate_inp from `router` and the stacked ffn_{gate,up,down}_exps
 * from `expert_fmt` (a format with %u for the layer, %u for the expert and
 * %s for the part) with parts[gate, up, down] */
mr_status mr_hf_experts(mr_planner *pl, uint32_t il, const char *router, const char *expert_fmt,
                        const char *const parts[3], mr_error *err);
/* blk.N.ffn_{gate,up,down} from model.layers.N.mlp.{gate,up,down}_proj */
mr_status mr_hf_dense_ffn(mr_planner *pl, uint32_t il, mr_error *err);
/* output_norm (model.norm) and output (lm_head, unless tied) */
mr_status mr_hf_output(mr_planner *pl, mr_error *err);

/* config.json members: an integer in 0..max (absent: MR_OK and *out
 * untouched, unless required), a positive finite number, a boolean. */
mr_status mr_cfg_u32(const char *file, json_object *obj, const char *key, int required,
                     uint32_t max, uint32_t *out, mr_error *err);
mr_status mr_cfg_f32(const char *file, json_object *obj, const char *key, float *out,
                     mr_error *err);
int mr_cfg_bool(json_object *obj, const char *key, int def);
/* Refuse a member that is present and not null/false (what the converter
 * cannot translate), naming it: "KEY: WHAT is not supported". */
mr_status mr_cfg_refuse_set(const char *file, json_object *obj, const char *key,
                            const char *what, mr_error *err);

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
