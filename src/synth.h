/* synth.h - random-weight GGUF models of real architectures' shapes, for
 * speed and paging measurements without downloads.
 *
 * Weights are drawn so activations stay O(1) through the layers and the
 * router sends different tokens to different experts (a router that picks
 * the same two experts for every token would make paging look falsely
 * good).  The tokenizer metadata is a working SentencePiece-style
 * vocabulary: specials, the 256 byte tokens, then printable pieces.
 * Files carry moerun's expert-slice checksums and 4096-byte alignment.
 */
#ifndef MOERUN_SYNTH_H
#define MOERUN_SYNTH_H

#include <stdint.h>

#include "status.h"

/* DeepSeek-V3 / Kimi K2 (GGUF deepseek2) shapes: MLA attention, leading
 * dense layers, a shared expert, sigmoid routing in groups, YaRN. */
typedef struct {
    uint32_t q_lora, kv_lora, qk_nope, qk_rope, v_head; /* kv_lora 0: not MLA */
    uint32_t n_dense, n_ff_dense, n_shared, n_group, topk_group;
    float route_scale, yarn_factor;
    uint32_t yarn_orig_ctx;
    float yarn_beta_fast, yarn_beta_slow;
} mr_synth_mla;

typedef struct {
    const char *name;
    uint32_t n_vocab, n_embd, n_layer, n_head, n_head_kv, n_ff, n_expert, n_expert_used;
    uint32_t n_ctx;
    float rope_base;
    /* Llama 4 shapes (GGUF llama4; n_ff is the experts'): see synth.c; else NULL */
    const struct mr_synth_llama4 *llama4;
    /* gpt-oss shapes (GGUF gpt-oss; experts MXFP4 as released): see synth.c; else NULL */
    const struct mr_synth_gptoss *gptoss;
    mr_synth_mla mla; /* DeepSeek shapes; zero elsewhere (n_ff is then one routed expert's) */
    /* Qwen3-MoE shapes (GGUF qwen3moe; n_ff is one expert's): see synth.c; else NULL */
    const struct mr_synth_qwen3 *qwen3;
} mr_synth_shape;

/* Known shapes by name ("mixtral-8x7b", "mixtral-8x22b", "tinymix",
 * "llama4-scout", "llama4-maverick", "gpt-oss-20b", "gpt-oss-120b",
 * "deepseek-v3", "kimi-k2", "qwen3-30b-a3b", "qwen3-235b-a22b"); NULL
 * if unknown.  list: every name, NULL-terminated. */
const mr_synth_shape *mr_synth_shape_find(const char *name);

/* Whether mr_synth_write can fill matrices of type t: the types moerun
 * quantizes to, F32, and the i-quants (IQ1/IQ2/IQ3) it only reads, whose
 * blocks it draws as random bits with a d that gives the wanted std. */
int mr_synth_writes_type(uint32_t t);
const char *const *mr_synth_shape_names(void);

typedef struct {
    mr_synth_shape shape; /* n_layer may be lowered by the caller */
    uint32_t type;        /* matrices' type (mr_type); norms and router F32 */
    int dense;            /* 1: the dense twin of the same active size (one FFN of
                           * n_ff x n_expert_used); 2: of the same total size
                           * (n_ff x n_expert); 0: the MoE (llama shapes only) */
    uint64_t seed;
    int mix;              /* mr_mix (src/quant_mix.h): each matrix's type as
                           * llama-quantize chooses it for that mix, with base
                           * type `type`; 0: every matrix `type` */
    double zipf;          /* routing skew: > 0 makes each layer's router prefer its
                           * experts with Zipf(zipf) popularity (a random rank
                           * order per layer); 0: every expert alike */
} mr_synth_params;

/* Called after each tensor: done and total bytes. */
typedef void (*mr_synth_progress)(void *ctx, uint64_t done, uint64_t total);

/* Bytes the file will have (for a progress bar or a disk-space check). */
uint64_t mr_synth_file_size(const mr_synth_params *p);

/* Write the model to path (created, or truncated). */
mr_status mr_synth_write(const mr_synth_params *p, const char *path, mr_synth_progress progress,
                         void *progress_ctx, mr_error *err);

#endif
