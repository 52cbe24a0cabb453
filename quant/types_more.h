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

#endif
