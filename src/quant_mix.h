/* quant_mix.h - llama-quantize's per-tensor type choices for its mixes
 * (Q2_K, Q3_K_S/M/L, Q4_K_S/M, Q5_K_S/M, Q6_K), shared by `moerun quantize`
 * (src/convert.c) and `moerun synth` (src/synth.c); and its i-quant mixes
 * (IQ1_S ... IQ4_XS), for synth only: those are made with an importance
 * matrix, as every file of them people download. */
#ifndef MOERUN_QUANT_MIX_H
#define MOERUN_QUANT_MIX_H

#include <stdint.h>

typedef enum {
    MR_MIX_PURE = 0, /* every quantizable tensor the base type (llama-quantize --pure) */
    MR_MIX_Q2_K,
    MR_MIX_Q3_K_S,
    MR_MIX_Q3_K_M,
    MR_MIX_Q3_K_L,
    MR_MIX_Q4_K_S,
    MR_MIX_Q4_K_M,
    MR_MIX_Q5_K_S,
    MR_MIX_Q5_K_M,
    MR_MIX_Q6_K,
    MR_MIX_IQ2_XXS,
    MR_MIX_IQ2_XS,
    MR_MIX_IQ2_S,
    MR_MIX_IQ2_M,
    MR_MIX_IQ1_S,
    MR_MIX_IQ1_M,
    MR_MIX_IQ3_XXS,
    MR_MIX_IQ3_XS,
    MR_MIX_IQ3_S,
    MR_MIX_IQ3_M,
    MR_MIX_IQ4_NL,
    MR_MIX_IQ4_XS,
} mr_mix;

typedef struct {
    uint32_t n_layer, n_expert, n_head, n_head_kv;
    uint32_t n_attn_v; /* tensors that count as attn_v (mr_mix_counts_as_attn_v) */
    int tied;          /* no output.weight: token_embd is the output head */
} mr_mix_model;

typedef struct {
    const char *name;   /* GGUF name, "blk.N.ffn_down_exps.weight" */
    int64_t ne0;        /* row length */
    int attn_v_index;   /* for an attn_v tensor: how many came before it */
    int ffn_down_index; /* for an ffn_down tensor: how many came before it */
} mr_mix_tensor;

/* llama-quantize's running counts over the tensors it chooses a type for,
 * in file order (i_attention_wv, i_ffn_down); start at zero. */
typedef struct {
    int attn_v, ffn_down;
} mr_mix_counts;

/* The record of the next tensor chosen for, (name, row length), with its
 * place among the attn_v and ffn_down tensors; advances the counts. */
mr_mix_tensor mr_mix_next(mr_mix_counts *c, const char *name, int64_t ne0);

/* The mix of a lower-case name ("q4_k_m"), its base tensor type and its
 * general.file_type; MR_MIX_PURE when the name is not a mix. */
mr_mix mr_mix_parse(const char *name, uint32_t *base, uint32_t *file_type);
/* The lower-case name of a mix ("q4_k_m"), its general.file_type; NULL / 0
 * for MR_MIX_PURE. */
const char *mr_mix_name(mr_mix mix);
uint32_t mr_mix_file_type(mr_mix mix);
/* llama.cpp's test of the tensors a quantization may change: 2-D or more,
 * named "...weight", not a norm, not a router (ffn_gate_inp). */
int mr_mix_quantizable(const char *name, int n_dims);
int mr_mix_counts_as_attn_v(const char *name);
/* The type of quantizable tensor t under mix with base type base, after
 * llama.cpp's fallback for rows its blocks do not divide. */
uint32_t mr_mix_tensor_type(mr_mix mix, uint32_t base, const mr_mix_model *mm,
                            const mr_mix_tensor *t);
int mr_mix_counts_as_ffn_down(const char *name);
/* llama.cpp's tensor_type_fallback: type if its blocks divide ne0, else
 * IQ4_NL / Q4_0 / Q5_0 / Q5_1 / Q8_0 as llama.cpp chooses, else F16. */
uint32_t mr_mix_fallback(uint32_t type, int64_t ne0);

#endif
