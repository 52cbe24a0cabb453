/* ref_mxfp4.c - scalar reference for MXFP4 (block_mxfp4: an E8M0 exponent
 * byte + 16 bytes of FP4 e2m1 nibbles), the expert format of gpt-oss.
 * x = kv[q] * 2^(e - 128), kv the e2m1 values doubled (integers in
 * [-12, 12]).  Byte j: low nibble = element j, high nibble = element j + 16.
 * Quantization follows ggml's quantize_row_mxfp4_ref exactly (OCP MX:
 * shared exponent floor(log2 amax) - 2, nearest code, first code on ties). */
#include "types.h"

#include <math.h>
#include <string.h>

const int8_t mr_kvalues_mxfp4[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

float mr_e8m0_to_f32_half(uint8_t e)
{
    /* e >= 2: the normal float 2^(e - 128) has biased exponent e - 1;
     * e = 1: 2^-127 and e = 0: 2^-128 are subnormal, mantissa bit 22 or 21 */
    const uint32_t bits = e < 2 ? UINT32_C(0x00200000) << e : (uint32_t)(e - 1) << 23;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* index of the code nearest x at scale d; the lowest index on ties */
static int nearest_code(float x, float d)
{
    int best = 0;
    float best_err = fabsf((float)mr_kvalues_mxfp4[0] * d - x);
    for (int i = 1; i < 16; i++) {
        const float err = fabsf((float)mr_kvalues_mxfp4[i] * d - x);
        if (err < best_err) {
            best = i;
            best_err = err;
        }
    }
    return best;
}

void mr_quantize_row_mxfp4(const float *src, void *dst, int64_t n)
{
    block_mxfp4 *y = dst;
    const int64_t nb = n / QK_MXFP4;
    for (int64_t b = 0; b < nb; b++) {
        const float *x = src + b * QK_MXFP4;
        float amax = 0.0f;
        for (int j = 0; j < QK_MXFP4; j++)
            if (amax < fabsf(x[j]))
                amax = fabsf(x[j]);
        /* ggml: (uint8_t)(floorf(log2f(amax)) - 2 + 127), 0 for a zero
         * block.  Below 2^-125 (all-subnormal blocks) and for infinities
         * that cast is undefined in C; moerun clamps to [0, 254]. */
        uint8_t e = 0;
        if (amax > 0.0f) {
            const float f = floorf(log2f(amax)) - 2.0f + 127.0f;
            e = f < 0.0f ? 0 : f > 254.0f ? 254 : (uint8_t)f;
        }
        const float d = mr_e8m0_to_f32_half(e);
        y[b].e = e;
        for (int j = 0; j < QK_MXFP4 / 2; j++) {
            const int q0 = nearest_code(x[j], d), q1 = nearest_code(x[j + QK_MXFP4 / 2], d);
            y[b].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

void mr_dequantize_row_mxfp4(const void *src, float *dst, int64_t n)
{
    const block_mxfp4 *x = src;
    const int64_t nb = n / QK_MXFP4;
    for (int64_t b = 0; b < nb; b++) {
        const float d = mr_e8m0_to_f32_half(x[b].e);
        for (int j = 0; j < QK_MXFP4 / 2; j++) {
            dst[b * QK_MXFP4 + j] = (float)mr_kvalues_mxfp4[x[b].qs[j] & 0x0f] * d;
            dst[b * QK_MXFP4 + j + 16] = (float)mr_kvalues_mxfp4[x[b].qs[j] >> 4] * d;
        }
    }
}

float mr_dot_mxfp4_f32(const void *w, const float *x, int64_t n)
{
    const block_mxfp4 *b = w;
    const int64_t nb = n / QK_MXFP4;
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        const float *xb = x + i * QK_MXFP4;
        float s = 0.0f;
        for (int j = 0; j < QK_MXFP4 / 2; j++) {
            s += (float)mr_kvalues_mxfp4[b[i].qs[j] & 0x0f] * xb[j];
            s += (float)mr_kvalues_mxfp4[b[i].qs[j] >> 4] * xb[j + 16];
        }
        sum += s * mr_e8m0_to_f32_half(b[i].e);
    }
    return sum;
}

float mr_dot_mxfp4_q8_0(const void *w, const void *xq, int64_t n)
{
    const block_mxfp4 *a = w;
    const block_q8_0 *b = xq;
    const int64_t nb = n / QK_MXFP4;
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        int32_t s = 0; /* |s| <= 32 * 12 * 127 */
        for (int j = 0; j < QK_MXFP4 / 2; j++) {
            s += mr_kvalues_mxfp4[a[i].qs[j] & 0x0f] * (int32_t)b[i].qs[j];
            s += mr_kvalues_mxfp4[a[i].qs[j] >> 4] * (int32_t)b[i].qs[j + 16];
        }
        /* ggml's order: d = d_x * d_w, then sum += d * s */
        const float d = mr_f16_to_f32(b[i].d) * mr_e8m0_to_f32_half(a[i].e);
        sum += d * (float)s;
    }
    return sum;
}
