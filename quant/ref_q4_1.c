/* ref_q4_1.c - scalar reference for Q4_1 (block_q4_1: f16 d, f16 m, 16
 * bytes of nibbles).  x = q * d + m, q in [0, 15]; byte j: low nibble =
 * element j, high nibble = element j + 16.  Rounding follows ggml's
 * quantize_row_q4_1_ref exactly; the integer dot pairs it with Q8_1 as
 * ggml_vec_dot_q4_1_q8_1 does (same operations in the same order). */
#include "types.h"

#include <float.h>

void mr_quantize_row_q4_1(const float *src, void *dst, int64_t n)
{
    block_q4_1 *y = dst;
    const int64_t nb = n / QK4_1;
    for (int64_t b = 0; b < nb; b++) {
        const float *x = src + b * QK4_1;
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < QK4_1; j++) {
            if (x[j] < min) min = x[j];
            if (x[j] > max) max = x[j];
        }
        const float d = (max - min) / 15.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = mr_f32_to_f16(d);
        y[b].m = mr_f32_to_f16(min);
        for (int j = 0; j < QK4_1 / 2; j++) {
            /* (x - min) * id in [0, 15] up to rounding: + 0.5 and truncate */
            int q0 = (int8_t)((x[j] - min) * id + 0.5f), q1 = (int8_t)((x[j + 16] - min) * id + 0.5f);
            if (q0 > 15) q0 = 15;
            if (q1 > 15) q1 = 15;
            y[b].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

void mr_dequantize_row_q4_1(const void *src, float *dst, int64_t n)
{
    const block_q4_1 *x = src;
    const int64_t nb = n / QK4_1;
    for (int64_t b = 0; b < nb; b++) {
        const float d = mr_f16_to_f32(x[b].d), m = mr_f16_to_f32(x[b].m);
        for (int j = 0; j < QK4_1 / 2; j++) {
            dst[b * QK4_1 + j] = (float)(x[b].qs[j] & 0x0f) * d + m;
            dst[b * QK4_1 + j + 16] = (float)(x[b].qs[j] >> 4) * d + m;
        }
    }
}

float mr_dot_q4_1_f32(const void *w, const float *x, int64_t n)
{
    const block_q4_1 *b = w;
    const int64_t nb = n / QK4_1;
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        const float *xb = x + i * QK4_1;
        float s = 0.0f, sx = 0.0f; /* sum q x, sum x */
        for (int j = 0; j < QK4_1 / 2; j++) {
            s += (float)(b[i].qs[j] & 0x0f) * xb[j];
            s += (float)(b[i].qs[j] >> 4) * xb[j + 16];
            sx += xb[j] + xb[j + 16];
        }
        sum += s * mr_f16_to_f32(b[i].d) + sx * mr_f16_to_f32(b[i].m);
    }
    return sum;
}

float mr_dot_q4_1_q8_1(const void *w, const void *xq, int64_t n)
{
    const block_q4_1 *a = w;
    const block_q8_1 *b = xq;
    const int64_t nb = n / QK4_1;
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        int32_t s = 0; /* |s| <= 32 * 15 * 127 */
        for (int j = 0; j < QK4_1 / 2; j++) {
            s += (a[i].qs[j] & 0x0f) * (int32_t)b[i].qs[j];
            s += (a[i].qs[j] >> 4) * (int32_t)b[i].qs[j + 16];
        }
        sum += (mr_f16_to_f32(a[i].d) * mr_f16_to_f32(b[i].d)) * (float)s +
               mr_f16_to_f32(a[i].m) * mr_f16_to_f32(b[i].s);
    }
    return sum;
}
