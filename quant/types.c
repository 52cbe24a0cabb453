/* types.c - the type table: geometry of every ggml type id, and the scalar
 * reference operations of those moerun computes with.  A new block format
 * adds one line here and its ref_<type>.c. */
#include "types.h"
#include "types_iq.h"

static const mr_type_traits type_table[MR_TYPE_COUNT] = {
    [MR_TYPE_F32] = {"F32", 1, 4, mr_f32_to_f32, mr_f32_row_to_f32, mr_dot_f32_f32},
    [MR_TYPE_F16] = {"F16", 1, 2, mr_f16_row_to_f32, mr_f32_row_to_f16, mr_dot_f16_f32},
    [MR_TYPE_Q4_0] = {"Q4_0", 32, 18, mr_dequantize_row_q4_0, mr_quantize_row_q4_0, mr_dot_q4_0_f32},
    [MR_TYPE_Q4_1] = {"Q4_1", 32, 20, mr_dequantize_row_q4_1, mr_quantize_row_q4_1, mr_dot_q4_1_f32},
    [MR_TYPE_Q5_0] = {"Q5_0", 32, 22, mr_dequantize_row_q5_0, mr_quantize_row_q5_0, mr_dot_q5_0_f32},
    [MR_TYPE_Q5_1] = {"Q5_1", 32, 24, mr_dequantize_row_q5_1, mr_quantize_row_q5_1, mr_dot_q5_1_f32},
    [MR_TYPE_Q8_0] = {"Q8_0", 32, 34, mr_dequantize_row_q8_0, mr_quantize_row_q8_0, mr_dot_q8_0_f32},
    [MR_TYPE_Q8_1] = {"Q8_1", 32, 36, 0, 0, 0}, /* activations only (ggml has no Q8_1 weights dot) */
    [MR_TYPE_Q2_K] = {"Q2_K", 256, 84, mr_dequantize_row_q2_K, mr_quantize_row_q2_K, mr_dot_q2_K_f32},
    [MR_TYPE_Q3_K] = {"Q3_K", 256, 110, mr_dequantize_row_q3_K, mr_quantize_row_q3_K, mr_dot_q3_K_f32},
    [MR_TYPE_Q4_K] = {"Q4_K", 256, 144, mr_dequantize_row_q4_K, mr_quantize_row_q4_K, mr_dot_q4_K_f32},
    [MR_TYPE_Q5_K] = {"Q5_K", 256, 176, mr_dequantize_row_q5_K, mr_quantize_row_q5_K, mr_dot_q5_K_f32},
    [MR_TYPE_Q6_K] = {"Q6_K", 256, 210, mr_dequantize_row_q6_K, mr_quantize_row_q6_K, mr_dot_q6_K_f32},
    [MR_TYPE_Q8_K] = {"Q8_K", 256, 292, 0, 0, 0},
    [MR_TYPE_I8] = {"I8", 1, 1, 0, 0, 0},
    [MR_TYPE_I16] = {"I16", 1, 2, 0, 0, 0},
    [MR_TYPE_I32] = {"I32", 1, 4, 0, 0, 0},
    [MR_TYPE_I64] = {"I64", 1, 8, 0, 0, 0},
    [MR_TYPE_F64] = {"F64", 1, 8, 0, 0, 0},
    [MR_TYPE_BF16] = {"BF16", 1, 2, mr_bf16_row_to_f32, mr_f32_row_to_bf16, mr_dot_bf16_f32},
    /* the further formats (types_more.h) */
    [MR_TYPE_MXFP4] = {"MXFP4", 32, 17, mr_dequantize_row_mxfp4, mr_quantize_row_mxfp4, mr_dot_mxfp4_f32},
    [MR_TYPE_IQ4_NL] = {"IQ4_NL", 32, 18, mr_dequantize_row_iq4_nl, mr_quantize_row_iq4_nl, mr_dot_iq4_nl_f32},
    [MR_TYPE_IQ4_XS] = {"IQ4_XS", 256, 136, mr_dequantize_row_iq4_xs, mr_quantize_row_iq4_xs, mr_dot_iq4_xs_f32},
    /* known to ggml, not computable here: their geometry lets a file load
     * far enough for the tensor and its type to be named in the refusal */
    /* the i-quants (types_iq.h): read and computed, not written */
    [MR_TYPE_IQ2_XXS] = {"IQ2_XXS", 256, 66, mr_dequantize_row_iq2_xxs, 0, mr_dot_iq2_xxs_f32},
    [MR_TYPE_IQ2_XS] = {"IQ2_XS", 256, 74, mr_dequantize_row_iq2_xs, 0, mr_dot_iq2_xs_f32},
    [MR_TYPE_IQ3_XXS] = {"IQ3_XXS", 256, 98, mr_dequantize_row_iq3_xxs, 0, mr_dot_iq3_xxs_f32},
    [MR_TYPE_IQ1_S] = {"IQ1_S", 256, 50, mr_dequantize_row_iq1_s, 0, mr_dot_iq1_s_f32},
    [MR_TYPE_IQ3_S] = {"IQ3_S", 256, 110, mr_dequantize_row_iq3_s, 0, mr_dot_iq3_s_f32},
    [MR_TYPE_IQ2_S] = {"IQ2_S", 256, 82, mr_dequantize_row_iq2_s, 0, mr_dot_iq2_s_f32},
    [MR_TYPE_IQ1_M] = {"IQ1_M", 256, 56, mr_dequantize_row_iq1_m, 0, mr_dot_iq1_m_f32},
    [34] = {"TQ1_0", 256, 54, 0, 0, 0},
    [35] = {"TQ2_0", 256, 66, 0, 0, 0},
};

static const mr_type_traits unknown_type = {"unknown", 0, 0, 0, 0, 0};

const mr_type_traits *mr_type_get(uint32_t type)
{
    if (type >= MR_TYPE_COUNT || type_table[type].block_size == 0)
        return &unknown_type;
    return &type_table[type];
}

int mr_type_known(uint32_t type)
{
    return mr_type_get(type)->block_size != 0;
}

int mr_type_computable(uint32_t type)
{
    return mr_type_get(type)->to_f32 != 0;
}

uint64_t mr_type_row_bytes(uint32_t type, uint64_t n)
{
    const mr_type_traits *t = mr_type_get(type);
    if (t->block_size == 0 || n % t->block_size != 0 ||
        n / t->block_size > UINT64_MAX / t->type_size)
        return 0;
    return n / t->block_size * t->type_size;
}

uint32_t mr_type_from_name(const char *name)
{
    for (uint32_t t = 0; t < MR_TYPE_COUNT; t++) {
        const char *n = type_table[t].name;
        if (!n)
            continue;
        size_t i = 0;
        while (n[i] && name[i] && (n[i] | 0x20) == (name[i] | 0x20))
            i++;
        if (!n[i] && !name[i])
            return t;
    }
    return MR_TYPE_COUNT;
}
