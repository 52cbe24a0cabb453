/* types_more.h - block layouts and scalar references of the further ggml
 * formats people download: MXFP4 (gpt-oss), the legacy Q4_1/Q5_0/Q5_1
 * (with the Q8_1 activations two of them dot with), IQ4_NL/IQ4_XS, and the
 * small K-quants Q2_K/Q3_K.  Included by types.h; the layouts are ggml's
 * (ggml-common.h) byte for byte, each with a static size assertion. */
#ifndef MOERUN_QUANT_TYPES_MORE_H
#define MOERUN_QUANT_TYPES_MORE_H

/* ---- MXFP4 (OCP microscaling FP4): 32 e2m1 values, one E8M0 exponent.
 * x = kv[q] * 2^(e - 128): kv = 2 x the e2m1 value (so the table is
 * integers), the halving moved into the scale.  e = 255 is NaN in the OCP
 * spec; ggml decodes it as 2^127 (and refuses such rows on validation). */
#define QK_MXFP4 32
typedef struct {
    uint8_t e;               /* E8M0 exponent, biased by 127 */
    uint8_t qs[QK_MXFP4 / 2]; /* byte j: element j low nibble, j + 16 high */
} block_mxfp4;
static_assert(sizeof(block_mxfp4) == 17, "block_mxfp4 must be 17 bytes");

/* The 16 FP4 codes, doubled: {0, .5, 1, 1.5, 2, 3, 4, 6} x 2, then the
 * same negated (code 8 is -0, equal to 0 here). */
extern const int8_t mr_kvalues_mxfp4[16];

/* 2^(e - 128) = half the E8M0 value, exactly (e < 2 gives subnormals). */
float mr_e8m0_to_f32_half(uint8_t e);

void mr_dequantize_row_mxfp4(const void *src, float *dst, int64_t n);
void mr_quantize_row_mxfp4(const float *src, void *dst, int64_t n);
float mr_dot_mxfp4_f32(const void *w, const float *x, int64_t n);
/* ggml_vec_dot_mxfp4_q8_0: per block (int sum) * (d_x * 2^(e - 128)) */
float mr_dot_mxfp4_q8_0(const void *w, const void *xq, int64_t n);

/* ---- IQ4_NL: 32 weights, x = d * kv[q], kv a fixed non-linear 4-bit
 * codebook in [-127, 113]; nibble layout as Q4_0. */
#define QK4_NL 32
typedef struct {
    uint16_t d;              /* f16 scale */
    uint8_t qs[QK4_NL / 2];
} block_iq4_nl;
static_assert(sizeof(block_iq4_nl) == 18, "block_iq4_nl must be 18 bytes");
extern const int8_t mr_kvalues_iq4nl[16];

/* ---- Q5_0: 32 weights, x = d * (q - 16), q 5-bit in [0, 31]: low 4 bits
 * as Q4_0's nibbles, bit 4 of element j in bit j of qh (little endian). */
#define QK5_0 32
typedef struct {
    uint16_t d;              /* f16 scale */
    uint8_t qh[4];           /* fifth bits */
    uint8_t qs[QK5_0 / 2];
} block_q5_0;
static_assert(sizeof(block_q5_0) == 22, "block_q5_0 must be 22 bytes");

/* ---- Q4_1: 32 weights, x = d * q + m, q a nibble in [0, 15] (layout as
 * Q4_0); dotted with Q8_1 activations. */
#define QK4_1 32
typedef struct {
    uint16_t d;              /* f16 scale */
    uint16_t m;              /* f16 minimum */
    uint8_t qs[QK4_1 / 2];
} block_q4_1;
static_assert(sizeof(block_q4_1) == 20, "block_q4_1 must be 20 bytes");

/* ---- Q5_1: 32 weights, x = d * q + m, q 5-bit in [0, 31] (bits as Q5_0). */
#define QK5_1 32
typedef struct {
    uint16_t d;              /* f16 scale */
    uint16_t m;              /* f16 minimum */
    uint8_t qh[4];
    uint8_t qs[QK5_1 / 2];
} block_q5_1;
static_assert(sizeof(block_q5_1) == 24, "block_q5_1 must be 24 bytes");

/* ---- Q8_1: activations of the Q4_1/Q5_1 dots.  x = d * q, q in
 * [-127, 127], and s = d * sum(q) (f16, from the unrounded d), which
 * carries the weights' minimum term: sum (d_w q_w + m) d_a q_a =
 * d_w d_a sum q_w q_a + m s. */
#define QK8_1 32
typedef struct {
    uint16_t d;              /* f16 scale */
    uint16_t s;              /* f16 d * sum(qs) */
    int8_t qs[QK8_1];
} block_q8_1;
static_assert(sizeof(block_q8_1) == 36, "block_q8_1 must be 36 bytes");

/* ---- IQ4_XS: super-blocks of 256 = 8 sub-blocks of 32, x = d * (ls - 32)
 * * kv[q], ls 6-bit per sub-block (low 4 bits in scales_l, nibble ib % 2 of
 * byte ib / 2; high 2 bits in bits 2 ib.. of scales_h); qs as IQ4_NL per
 * sub-block.  Dotted with Q8_K. */
typedef struct {
    uint16_t d;              /* f16 super-block scale */
    uint16_t scales_h;
    uint8_t scales_l[QK_K / 64];
    uint8_t qs[QK_K / 2];
} block_iq4_xs;
static_assert(sizeof(block_iq4_xs) == 136, "block_iq4_xs must be 136 bytes");

void mr_dequantize_row_q4_1(const void *src, float *dst, int64_t n);
void mr_quantize_row_q4_1(const float *src, void *dst, int64_t n);
float mr_dot_q4_1_f32(const void *w, const float *x, int64_t n);
float mr_dot_q4_1_q8_1(const void *w, const void *xq, int64_t n);

void mr_dequantize_row_q5_0(const void *src, float *dst, int64_t n);
void mr_quantize_row_q5_0(const float *src, void *dst, int64_t n);
float mr_dot_q5_0_f32(const void *w, const float *x, int64_t n);
float mr_dot_q5_0_q8_0(const void *w, const void *xq, int64_t n);

void mr_dequantize_row_q5_1(const void *src, float *dst, int64_t n);
void mr_quantize_row_q5_1(const float *src, void *dst, int64_t n);
float mr_dot_q5_1_f32(const void *w, const float *x, int64_t n);
float mr_dot_q5_1_q8_1(const void *w, const void *xq, int64_t n);

void mr_dequantize_row_q8_1(const void *src, float *dst, int64_t n);
void mr_quantize_row_q8_1(const float *src, void *dst, int64_t n);

/* IQ4_NL / IQ4_XS quantize as llama-quantize does without an importance
 * matrix (ggml's quantize_iq4_nl / quantize_iq4_xs: a scale search of 15
 * candidates per 32 weights). */
void mr_dequantize_row_iq4_nl(const void *src, float *dst, int64_t n);
void mr_quantize_row_iq4_nl(const float *src, void *dst, int64_t n);
float mr_dot_iq4_nl_f32(const void *w, const float *x, int64_t n);
float mr_dot_iq4_nl_q8_0(const void *w, const void *xq, int64_t n);
void mr_dequantize_row_iq4_xs(const void *src, float *dst, int64_t n);
void mr_quantize_row_iq4_xs(const float *src, void *dst, int64_t n);
float mr_dot_iq4_xs_f32(const void *w, const float *x, int64_t n);
float mr_dot_iq4_xs_q8_K(const void *w, const void *xq, int64_t n);

#endif
