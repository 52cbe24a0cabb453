/* types.c - the type table: geometry of every ggml type id, and the scalar
 * reference operations of those moerun computes with.  A new block format
 * adds one line here and its ref_<type>.c. */
#include "types.h"

static const mr_type_traits type_table[MR_TYPE_COUNT] = {
    [MR_TYPE_F32] = {"F32", 1, 4, mr_f32_to_f32, mr_f32_row_to_f32, mr_dot_f32_f32},
    [MR_TYPE_F16] = {"F16", 1, 2, mr_f16_row_to_f32, mr_f32_row_to_f16, mr_dot_f16_f32},
    [MR_TYPE_Q4_0] = {"Q4_0", 32, 18, mr_dequantize_row_q4_0, mr_quantize_row_q4_0, mr_dot_q4_0_f32},
    [MR_TYPE_Q4_1] = {"Q4_1", 32, 20, 0, 0, 0},
    [MR_TYPE_Q5_0] = {"Q5_0", 32, 22, 0, 0, 0},
    [MR_TYPE_Q5_1] = {"Q5_1", 32, 24, 0, 0, 0},
    [MR_TYPE_Q8_0] = {"Q8_0", 32, 34, mr_dequantize_row_q8_0, mr_quantize_row_q8_0, mr_dot_q8_0_f32},
    [MR_TYPE_Q8_1] = {"Q8_1", 32, 36, 0, 0, 0},
    [MR_TYPE_Q2_K] = {"Q2_K", 256, 84, 0, 0, 0},
    [MR_TYPE_Q3_K] = {"Q3_K", 256, 110, 0, 0, 0},
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
