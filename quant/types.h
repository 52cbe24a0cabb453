/* types.h - ggml tensor types: ids, block geometry, and the scalar
 * reference operations of the formats moerun computes with.
 *
 * Type ids and block layouts are ggml's exactly, so files interoperate with
 * llama.cpp.  Every block struct carries a static size assertion: a layout
 * mistake fails the build.
 */
#ifndef MOERUN_QUANT_TYPES_H
#define MOERUN_QUANT_TYPES_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

/* ggml_type ids as stored in GGUF tensor infos. */
typedef enum {
    MR_TYPE_F32 = 0,
    MR_TYPE_F16 = 1,
    MR_TYPE_Q4_0 = 2,
    MR_TYPE_Q4_1 = 3,
    MR_TYPE_Q5_0 = 6,
    MR_TYPE_Q5_1 = 7,
    MR_TYPE_Q8_0 = 8,
    MR_TYPE_Q8_1 = 9,
    MR_TYPE_Q2_K = 10,
    MR_TYPE_Q3_K = 11,
    MR_TYPE_Q4_K = 12,
    MR_TYPE_Q5_K = 13,
    MR_TYPE_Q6_K = 14,
    MR_TYPE_Q8_K = 15,
    MR_TYPE_IQ4_NL = 20,
    MR_TYPE_IQ4_XS = 23,
    MR_TYPE_I8 = 24,
    MR_TYPE_I16 = 25,
    MR_TYPE_I32 = 26,
    MR_TYPE_I64 = 27,
    MR_TYPE_F64 = 28,
    MR_TYPE_BF16 = 30,
    MR_TYPE_MXFP4 = 39,
    MR_TYPE_COUNT = 40 /* upper bound of the id space we index */
} mr_type;

#define QK8_0 32
#define QK4_0 32

/* Q8_0: 32 weights, x = d * q, q in [-127, 127] (ggml never writes -128). */
typedef struct {
    uint16_t d;      /* f16 scale */
    int8_t qs[QK8_0];
} block_q8_0;
static_assert(sizeof(block_q8_0) == 34, "block_q8_0 must be 34 bytes");

/* Q4_0: 32 weights, x = (q - 8) * d with q a nibble in [0, 15], so the
 * value is in [-8, 7] * d.  Byte j holds element j in its low nibble and
 * element j + 16 in its high nibble. */
typedef struct {
    uint16_t d;           /* f16 scale */
    uint8_t qs[QK4_0 / 2];
} block_q4_0;
static_assert(sizeof(block_q4_0) == 18, "block_q4_0 must be 18 bytes");

/* K-quants: super-blocks of QK_K = 256 weights, split into sub-blocks that
 * carry their own small integer scale (ggml's ggml-common.h layouts). */
#define QK_K 256

/* Q4_K: 8 sub-blocks of 32.  Sub-block j: x = d * sc[j] * q - dmin * m[j],
 * q a nibble in [0, 15], sc[j] and m[j] 6-bit in [0, 63] packed into
 * scales[12] (j < 4: low 6 bits of scales[j] and scales[j + 4]; j >= 4: a
 * nibble of scales[j + 4] each, top 2 bits from bits 6-7 of scales[j - 4]
 * and scales[j]).  qs: 32 bytes per 64 weights, low nibbles the first
 * sub-block, high nibbles the second. */
typedef struct {
    uint16_t d;              /* f16 super-block scale of the sc[j] */
    uint16_t dmin;           /* f16 super-block scale of the m[j] */
    uint8_t scales[12];      /* 8 x (6-bit scale, 6-bit min) */
    uint8_t qs[QK_K / 2];    /* nibbles */
} block_q4_K;
static_assert(sizeof(block_q4_K) == 144, "block_q4_K must be 144 bytes");

/* Q5_K: Q4_K with a fifth bit.  Sub-block j: x = d * sc[j] * q - dmin *
 * m[j], q in [0, 31]: its low 4 bits are nibbles laid out as Q4_K's, bit
 * 4 of weight 64c + l (l < 32) is bit 2c of qh[l], of weight 64c + 32 + l
 * bit 2c + 1.  Scales and mins packed as Q4_K's. */
typedef struct {
    uint16_t d;              /* f16 super-block scale of the sc[j] */
    uint16_t dmin;           /* f16 super-block scale of the m[j] */
    uint8_t scales[12];      /* 8 x (6-bit scale, 6-bit min) */
    uint8_t qh[QK_K / 8];    /* bit 4 of q */
    uint8_t qs[QK_K / 2];    /* low 4 bits of q */
} block_q5_K;
static_assert(sizeof(block_q5_K) == 176, "block_q5_K must be 176 bytes");

/* Q6_K: 16 sub-blocks of 16.  Sub-block j: x = d * scales[j] * (q - 32),
 * q 6-bit in [0, 63] (low 4 bits in ql, high 2 in qh), scales[j] in
 * [-128, 127].  Element layout is spelled out in ref_q6_k.c. */
typedef struct {
    uint8_t ql[QK_K / 2];    /* low 4 bits of q */
    uint8_t qh[QK_K / 4];    /* high 2 bits of q */
    int8_t scales[QK_K / 16];
    uint16_t d;              /* f16 super-block scale */
} block_q6_K;
static_assert(sizeof(block_q6_K) == 210, "block_q6_K must be 210 bytes");

/* Q8_K: activations for the K-quant integer dots.  x = d * q, q in
 * [-127, 127]; bsums[g] = sum of qs[16g .. 16g + 15], in [-2032, 2032]. */
typedef struct {
    float d;                 /* f32 scale (negative when max is positive) */
    int8_t qs[QK_K];
    int16_t bsums[QK_K / 16];
} block_q8_K;
static_assert(sizeof(block_q8_K) == 292, "block_q8_K must be 292 bytes");

/* Convert row of n elements of this type to f32. */
typedef void (*mr_to_f32_fn)(const void *src, float *dst, int64_t n);
/* Quantize n f32 values to this type (n a multiple of the block size). */
typedef void (*mr_from_f32_fn)(const float *src, void *dst, int64_t n);
/* Dot product of a row of this type with n f32 values. */
typedef float (*mr_dot_f32_fn)(const void *w, const float *x, int64_t n);

typedef struct {
    const char *name;      /* "Q8_0", as llama.cpp prints it */
    uint32_t block_size;   /* elements per block; 0 = unknown id */
    uint32_t type_size;    /* bytes per block */
    mr_to_f32_fn to_f32;   /* NULL: moerun cannot compute with this type */
    mr_from_f32_fn from_f32;
    mr_dot_f32_fn dot_f32;
} mr_type_traits;

/* Traits of a type id; block_size == 0 for ids ggml does not define. */
const mr_type_traits *mr_type_get(uint32_t type);

/* Type id of a name, case-insensitive ("q4_0", "BF16"); MR_TYPE_COUNT if
 * unknown. */
uint32_t mr_type_from_name(const char *name);

/* True if the id is a ggml type whose byte size moerun can compute. */
int mr_type_known(uint32_t type);

/* True if moerun can dequantize and multiply with this type. */
int mr_type_computable(uint32_t type);

/* Bytes of a row of n elements; 0 if n is not a multiple of the block size
 * or the type is unknown. */
uint64_t mr_type_row_bytes(uint32_t type, uint64_t n);

/* f16 / bf16 <-> f32, bit-exact with ggml's conversions (round to nearest
 * even; bf16 NaNs stay quiet NaNs). */
float mr_f16_to_f32(uint16_t h);
uint16_t mr_f32_to_f16(float f);
float mr_bf16_to_f32(uint16_t h);
uint16_t mr_f32_to_bf16(float f);

/* Scalar reference implementations (quant/ref_*.c). */
void mr_f32_to_f32(const void *src, float *dst, int64_t n);
void mr_f16_row_to_f32(const void *src, float *dst, int64_t n);
void mr_bf16_row_to_f32(const void *src, float *dst, int64_t n);
void mr_f32_row_to_f16(const float *src, void *dst, int64_t n);
void mr_f32_row_to_bf16(const float *src, void *dst, int64_t n);
void mr_f32_row_to_f32(const float *src, void *dst, int64_t n);

void mr_dequantize_row_q8_0(const void *src, float *dst, int64_t n);
void mr_quantize_row_q8_0(const float *src, void *dst, int64_t n);
void mr_dequantize_row_q4_0(const void *src, float *dst, int64_t n);
void mr_quantize_row_q4_0(const float *src, void *dst, int64_t n);
void mr_dequantize_row_q4_K(const void *src, float *dst, int64_t n);
void mr_quantize_row_q4_K(const float *src, void *dst, int64_t n);
void mr_dequantize_row_q5_K(const void *src, float *dst, int64_t n);
void mr_quantize_row_q5_K(const float *src, void *dst, int64_t n);
void mr_dequantize_row_q6_K(const void *src, float *dst, int64_t n);
void mr_quantize_row_q6_K(const float *src, void *dst, int64_t n);
void mr_dequantize_row_q8_K(const void *src, float *dst, int64_t n);
void mr_quantize_row_q8_K(const float *src, void *dst, int64_t n);

float mr_dot_f32_f32(const void *w, const float *x, int64_t n);
float mr_dot_f16_f32(const void *w, const float *x, int64_t n);
float mr_dot_bf16_f32(const void *w, const float *x, int64_t n);
float mr_dot_q8_0_f32(const void *w, const float *x, int64_t n);
float mr_dot_q4_0_f32(const void *w, const float *x, int64_t n);
float mr_dot_q4_K_f32(const void *w, const float *x, int64_t n);
float mr_dot_q5_K_f32(const void *w, const float *x, int64_t n);
float mr_dot_q6_K_f32(const void *w, const float *x, int64_t n);

/* ggml's integer dot of quantized weights with Q8_0-quantized activations,
 * the reference the SIMD kernels are held to. */
float mr_dot_q8_0_q8_0(const void *w, const void *xq, int64_t n);
float mr_dot_q4_0_q8_0(const void *w, const void *xq, int64_t n);

/* The same for the K-quants against Q8_K activations, computed exactly as
 * ggml's ggml_vec_dot_q{4,5,6}_K_q8_K_generic (same integers, same float
 * operations in the same order).  xq's bsums must match its qs. */
float mr_dot_q4_K_q8_K(const void *w, const void *xq, int64_t n);
float mr_dot_q5_K_q8_K(const void *w, const void *xq, int64_t n);
float mr_dot_q6_K_q8_K(const void *w, const void *xq, int64_t n);

/* MXFP4, Q4_1, Q5_0, Q5_1, Q8_1, IQ4_NL, IQ4_XS, Q2_K, Q3_K */
#include "types_more.h"

#endif
