/* quant_mix.c - the tensor type of each tensor under a quantization mix,
 * as llama-quantize chooses it (llama.cpp src/llama-quant.cpp,
 * llama_tensor_get_type and tensor_type_fallback), so that `moerun
 * quantize ... q4_k_m` and `llama-quantize ... Q4_K_M` give a file of the
 * same tensor types, and with the same quantizers, the same bytes.
 *
 * What is not reproduced, and why:
 * - importance-matrix rules for the K mixes (moerun quantizes without an
 *   imatrix); the i-quant mixes, which synth alone uses, take the rules
 *   with one, as llama-quantize makes IQ1/IQ2 only with one;
 * - Falcon's and the 70B model's special cases (no such family here).
 */
#include "quant_mix.h"

#include <stdio.h>
#include <string.h>

#include "../quant/types.h"
#include "../quant/types_iq.h"

static const struct {
    const char *name;
    mr_mix mix;
    uint32_t base;      /* llama_ftype_get_default_type */
    uint32_t file_type; /* general.file_type (llama_ftype) */
} mixes[] = {
    {"q2_k", MR_MIX_Q2_K, MR_TYPE_Q2_K, 10},     {"q3_k_s", MR_MIX_Q3_K_S, MR_TYPE_Q3_K, 11},
    {"q3_k_m", MR_MIX_Q3_K_M, MR_TYPE_Q3_K, 12}, {"q3_k_l", MR_MIX_Q3_K_L, MR_TYPE_Q3_K, 13},
    {"q4_k_s", MR_MIX_Q4_K_S, MR_TYPE_Q4_K, 14}, {"q4_k_m", MR_MIX_Q4_K_M, MR_TYPE_Q4_K, 15},
    {"q5_k_s", MR_MIX_Q5_K_S, MR_TYPE_Q5_K, 16}, {"q5_k_m", MR_MIX_Q5_K_M, MR_TYPE_Q5_K, 17},
    {"q6_k", MR_MIX_Q6_K, MR_TYPE_Q6_K, 18},
    /* llama_ftype_get_default_type: IQ2_S's base is IQ2_XS, IQ2_M's IQ2_S */
    {"iq2_xxs", MR_MIX_IQ2_XXS, MR_TYPE_IQ2_XXS, 19}, {"iq2_xs", MR_MIX_IQ2_XS, MR_TYPE_IQ2_XS, 20},
    {"iq2_s", MR_MIX_IQ2_S, MR_TYPE_IQ2_XS, 28},     {"iq2_m", MR_MIX_IQ2_M, MR_TYPE_IQ2_S, 29},
    {"iq1_s", MR_MIX_IQ1_S, MR_TYPE_IQ1_S, 24},     {"iq1_m", MR_MIX_IQ1_M, MR_TYPE_IQ1_M, 31},
    {"iq3_xxs", MR_MIX_IQ3_XXS, MR_TYPE_IQ3_XXS, 23}, {"iq3_xs", MR_MIX_IQ3_XS, MR_TYPE_IQ3_S, 22},
    {"iq3_s", MR_MIX_IQ3_S, MR_TYPE_IQ3_S, 26},     {"iq3_m", MR_MIX_IQ3_M, MR_TYPE_IQ3_S, 27},
    {"iq4_nl", MR_MIX_IQ4_NL, MR_TYPE_IQ4_NL, 25},  {"iq4_xs", MR_MIX_IQ4_XS, MR_TYPE_IQ4_XS, 30},
};

mr_mix mr_mix_parse(const char *name, uint32_t *base, uint32_t *file_type)
{
    for (size_t i = 0; i < sizeof mixes / sizeof mixes[0]; i++)
        if (!strcmp(name, mixes[i].name)) {
            if (base)
                *base = mixes[i].base;
            if (file_type)
                *file_type = mixes[i].file_type;
            return mixes[i].mix;
        }
    return MR_MIX_PURE;
}

const char *mr_mix_name(mr_mix mix)
{
    for (size_t i = 0; i < sizeof mixes / sizeof mixes[0]; i++)
        if (mixes[i].mix == mix)
            return mixes[i].name;
    return NULL;
}

uint32_t mr_mix_file_type(mr_mix mix)
{
    for (size_t i = 0; i < sizeof mixes / sizeof mixes[0]; i++)
        if (mixes[i].mix == mix)
            return mixes[i].file_type;
    return 0;
}

/* llama.cpp's broad tensor categories (tensor_get_category), by name. */
typedef enum {
    CAT_OUTPUT, CAT_TOKEN_EMBD, CAT_ATTN_QKV, CAT_ATTN_KV_B, CAT_ATTN_V, CAT_ATTN_K,
    CAT_ATTN_Q, CAT_ATTN_OUTPUT, CAT_FFN_UP, CAT_FFN_GATE, CAT_FFN_DOWN, CAT_OTHER
} category;

static category category_of(const char *n)
{
    if (!strcmp(n, "output.weight"))
        return CAT_OUTPUT;
    if (!strcmp(n, "token_embd.weight"))
        return CAT_TOKEN_EMBD;
    static const struct {
        const char *part;
        category c;
    } parts[] = {{"attn_qkv.weight", CAT_ATTN_QKV},       {"attn_kv_b.weight", CAT_ATTN_KV_B},
                 {"attn_v.weight", CAT_ATTN_V},           {"attn_k.weight", CAT_ATTN_K},
                 {"attn_q.weight", CAT_ATTN_Q},           {"attn_output.weight", CAT_ATTN_OUTPUT},
                 {"ffn_up", CAT_FFN_UP},                  {"ffn_gate", CAT_FFN_GATE},
                 {"ffn_down", CAT_FFN_DOWN}};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        if (strstr(n, parts[i].part))
            return parts[i].c;
    return CAT_OTHER;
}

int mr_mix_counts_as_attn_v(const char *name)
{
    const category c = category_of(name);
    return c == CAT_ATTN_V || c == CAT_ATTN_QKV || c == CAT_ATTN_KV_B;
}

int mr_mix_counts_as_ffn_down(const char *name)
{
    return category_of(name) == CAT_FFN_DOWN;
}

mr_mix_tensor mr_mix_next(mr_mix_counts *c, const char *name, int64_t ne0)
{
    const int is_v = mr_mix_counts_as_attn_v(name), is_down = mr_mix_counts_as_ffn_down(name);
    const mr_mix_tensor t = {name, ne0, is_v ? c->attn_v : -1, is_down ? c->ffn_down : -1};
    c->attn_v += is_v;
    c->ffn_down += is_down;
    return t;
}

int mr_mix_quantizable(const char *name, int n_dims)
{
    const size_t n = strlen(name);
    return n_dims >= 2 && n >= 6 && !strcmp(name + n - 6, "weight") && !strstr(name, "_norm.weight") &&
           !strstr(name, "ffn_gate_inp.weight");
}

/* llama.cpp's use_more_bits: the first and last eighth of n, and every
 * third in between. */
static int more_bits(int i, int n)
{
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

/* The layer a tensor name belongs to ("blk.N."), or -1. */
static int layer_of(const char *name)
{
    int il;
    return sscanf(name, "blk.%d.", &il) == 1 ? il : -1;
}

/* llama.cpp's group of the lowest i-quant mixes, which share one branch */
static int iq_low(mr_mix m)
{
    return m == MR_MIX_IQ2_XXS || m == MR_MIX_IQ2_XS || m == MR_MIX_IQ1_S || m == MR_MIX_IQ2_S ||
           m == MR_MIX_IQ2_M || m == MR_MIX_IQ1_M;
}

/* That branch (after output and token_embd): attn_v, attn_k with 8
 * experts, the first eighth of the ffn_down tensors (counted as tensors,
 * not layers), attn_output. */
static uint32_t mixed_iq_low(mr_mix mix, uint32_t type, const mr_mix_model *mm, const mr_mix_tensor *t,
                             category cat, int gqa4)
{
    const int iq2sm = mix == MR_MIX_IQ2_S || mix == MR_MIX_IQ2_M;
    if (cat == CAT_ATTN_V || cat == CAT_ATTN_QKV || cat == CAT_ATTN_KV_B)
        return gqa4 || mm->n_expert >= 4 ? MR_TYPE_Q4_K : iq2sm ? MR_TYPE_IQ3_S : MR_TYPE_Q2_K;
    if (mm->n_expert == 8 && cat == CAT_ATTN_K)
        return MR_TYPE_Q4_K;
    if (cat == CAT_FFN_DOWN)
        return t->ffn_down_index >= 0 && t->ffn_down_index < (int)mm->n_layer / 8
                   ? (iq2sm ? MR_TYPE_IQ3_S : MR_TYPE_Q2_K)
                   : type;
    if (cat == CAT_ATTN_OUTPUT) {
        if (mm->n_expert == 8)
            return MR_TYPE_Q5_K;
        if (mix == MR_MIX_IQ1_S || mix == MR_MIX_IQ1_M)
            return MR_TYPE_IQ2_XXS;
        return iq2sm ? MR_TYPE_IQ3_S : type;
    }
    return type;
}

static uint32_t mixed(mr_mix mix, uint32_t type, const mr_mix_model *mm, const mr_mix_tensor *t)
{
    const category cat = category_of(t->name);
    const int n_expert = (int)mm->n_expert;
    const int gqa4 = mm->n_head_kv && mm->n_head / mm->n_head_kv >= 4;
    const int il = layer_of(t->name), nl = (int)mm->n_layer;

    if (cat == CAT_OUTPUT || (mm->tied && cat == CAT_TOKEN_EMBD)) {
        const uint32_t bs = mr_type_get(type)->block_size;
        if (t->ne0 % bs)
            return MR_TYPE_Q8_0;
        if (iq_low(mix) || mix == MR_MIX_IQ3_XXS)
            return MR_TYPE_Q5_K;
        return type == MR_TYPE_Q8_0 ? type : MR_TYPE_Q6_K;
    }
    if (cat == CAT_TOKEN_EMBD) {
        if (mix == MR_MIX_IQ2_XXS || mix == MR_MIX_IQ2_XS || mix == MR_MIX_IQ1_S || mix == MR_MIX_IQ1_M)
            return MR_TYPE_Q2_K;
        if (mix == MR_MIX_IQ2_S || mix == MR_MIX_IQ2_M || mix == MR_MIX_IQ3_XXS)
            return MR_TYPE_IQ3_S;
        return type;
    }
    if (iq_low(mix))
        return mixed_iq_low(mix, type, mm, t, cat, gqa4);
    if (cat == CAT_ATTN_V || cat == CAT_ATTN_QKV || cat == CAT_ATTN_KV_B) {
        /* (llama.cpp's later attn_qkv branch is never reached: a fused qkv
         * counts as attn_v and takes these rules) */
        const int iv = t->attn_v_index, nv = (int)mm->n_attn_v;
        if (mix == MR_MIX_IQ3_XXS) /* with an imatrix */
            type = gqa4 ? MR_TYPE_Q4_K : MR_TYPE_IQ3_XXS;
        else if ((mix == MR_MIX_IQ3_XS || mix == MR_MIX_IQ3_S) && gqa4)
            type = MR_TYPE_Q4_K;
        else if (mix == MR_MIX_IQ3_M)
            type = MR_TYPE_Q4_K;
        else if ((mix == MR_MIX_IQ4_NL || mix == MR_MIX_IQ4_XS) && gqa4)
            type = MR_TYPE_Q5_K;
        else if (mix == MR_MIX_Q2_K)
            type = gqa4 ? MR_TYPE_Q4_K : MR_TYPE_Q3_K;
        else if (mix == MR_MIX_Q3_K_M)
            type = iv < 2 ? MR_TYPE_Q5_K : MR_TYPE_Q4_K;
        else if (mix == MR_MIX_Q3_K_L)
            type = MR_TYPE_Q5_K;
        else if ((mix == MR_MIX_Q4_K_M || mix == MR_MIX_Q5_K_M) && more_bits(iv, nv))
            type = MR_TYPE_Q6_K;
        else if (mix == MR_MIX_Q4_K_S && iv < 4)
            type = MR_TYPE_Q5_K;
        if (n_expert == 8) /* llama.cpp: "bumping this to Q8_0 trades just ~128MB" */
            type = MR_TYPE_Q8_0;
        return type;
    }
    if (cat == CAT_ATTN_K || cat == CAT_ATTN_Q) {
        if (cat == CAT_ATTN_K && n_expert == 8)
            return MR_TYPE_Q8_0;
        return mix == MR_MIX_IQ3_XS ? MR_TYPE_IQ3_XXS : mix == MR_MIX_IQ3_XXS ? MR_TYPE_IQ2_S : type;
    }
    if ((cat == CAT_FFN_GATE || cat == CAT_FFN_UP) && mix == MR_MIX_IQ3_XS && il >= 0)
        return il >= nl / 8 && il < 7 * nl / 8 ? MR_TYPE_IQ3_XXS : type;
    if (cat == CAT_FFN_DOWN) {
        if (il < 0)
            return type;
        if (mix == MR_MIX_Q2_K)
            return MR_TYPE_Q3_K;
        if (mix == MR_MIX_Q3_K_M)
            return il < nl / 16 ? MR_TYPE_Q5_K : MR_TYPE_Q4_K;
        if (mix == MR_MIX_IQ3_M && (il < nl / 8 || (n_expert == 8 && more_bits(il, nl))))
            return MR_TYPE_Q4_K;
        if (mix == MR_MIX_Q3_K_L)
            return MR_TYPE_Q5_K;
        if (mix == MR_MIX_Q4_K_M)
            return more_bits(il, nl) ? MR_TYPE_Q6_K : type;
        if (mix == MR_MIX_Q5_K_M && more_bits(il, nl))
            return MR_TYPE_Q6_K;
        if (mix == MR_MIX_Q4_K_S && il < nl / 8)
            return MR_TYPE_Q5_K;
        return type;
    }
    if (cat == CAT_ATTN_OUTPUT) {
        if (n_expert == 8)
            return mix == MR_MIX_Q2_K || mix == MR_MIX_Q3_K_S || mix == MR_MIX_Q3_K_M ||
                           mix == MR_MIX_Q4_K_S || mix == MR_MIX_Q4_K_M || mix == MR_MIX_IQ3_XS ||
                           mix == MR_MIX_IQ3_XXS || mix == MR_MIX_IQ4_NL || mix == MR_MIX_IQ3_S ||
                           mix == MR_MIX_IQ3_M || mix == MR_MIX_IQ4_XS
                       ? MR_TYPE_Q5_K
                       : type;
        return mix == MR_MIX_Q2_K      ? MR_TYPE_Q3_K
               : mix == MR_MIX_IQ3_XXS ? MR_TYPE_IQ3_S
               : mix == MR_MIX_Q3_K_M  ? MR_TYPE_Q4_K
               : mix == MR_MIX_Q3_K_L  ? MR_TYPE_Q5_K
               : mix == MR_MIX_IQ3_M   ? MR_TYPE_Q4_K
                                       : type;
    }
    return type;
}

uint32_t mr_mix_fallback(uint32_t type, int64_t ne0)
{
    if (ne0 % mr_type_get(type)->block_size == 0)
        return type;
    uint32_t f;
    switch (type) {
    case MR_TYPE_IQ1_S:
    case MR_TYPE_IQ1_M:
    case MR_TYPE_IQ2_XXS:
    case MR_TYPE_IQ2_XS:
    case MR_TYPE_IQ2_S:
    case MR_TYPE_IQ3_XXS:
    case MR_TYPE_IQ3_S:
    case MR_TYPE_IQ4_XS: f = MR_TYPE_IQ4_NL; break;
    case MR_TYPE_Q2_K:
    case MR_TYPE_Q3_K: f = MR_TYPE_Q4_0; break;
    case MR_TYPE_Q4_K: f = MR_TYPE_Q5_0; break;
    case MR_TYPE_Q5_K: f = MR_TYPE_Q5_1; break;
    case MR_TYPE_Q6_K: f = MR_TYPE_Q8_0; break;
    default: f = MR_TYPE_F16; break;
    }
    return ne0 % mr_type_get(f)->block_size ? MR_TYPE_F16 : f;
}

uint32_t mr_mix_tensor_type(mr_mix mix, uint32_t base, const mr_mix_model *mm, const mr_mix_tensor *t)
{
    uint32_t type = base;
    if (mix != MR_MIX_PURE)
        type = mixed(mix, type, mm, t);
    return mr_mix_fallback(type, t->ne0);
}
