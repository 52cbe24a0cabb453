/* ref_q8_0.c - scalar reference for Q8_0 (block_q8_0: f16 d + 32 int8).
 * x = d * q.  Rounding follows ggml's quantize_row_q8_0_ref exactly. */
#include "types.h"

#include <math.h>
#include <string.h>

void mr_quantize_row_q8_0(const float *src, void *dst, int64_t n)
{
    block_q8_0 *y = dst;
    const int64_t nb = n / QK8_0;
    for (int64_t b = 0; b < nb; b++) {
        const float *x = src + b * QK8_0;
        float amax = 0.0f;
        for (int j = 0; j < QK8_0; j++)
            amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f; /* zero block: q = 0 */
        y[b].d = mr_f32_to_f16(d);
        for (int j = 0; j < QK8_0; j++) {
            const float r = roundf(x[j] * id); /* in [-127, 127]; NaN -> 0 (its cast is UB) */
            y[b].qs[j] = r == r ? (int8_t)r : 0;
        }
    }
}

void mr_dequantize_row_q8_0(const void *src, float *dst, int64_t n)
{
    const block_q8_0 *x = src;
    const int64_t nb = n / QK8_0;
    for (int64_t b = 0; b < nb; b++) {
        const float d = mr_f16_to_f32(x[b].d);
        for (int j = 0; j < QK8_0; j++)
            dst[b * QK8_0 + j] = d * (float)x[b].qs[j];
    }
}

float mr_dot_q8_0_f32(const void *w, const float *x, int64_t n)
{
    const block_q8_0 *b = w;
    const int64_t nb = n / QK8_0;
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        const float *xb = x + i * QK8_0;
        float s = 0.0f;
        for (int j = 0; j < QK8_0; j++)
            s += (float)b[i].qs[j] * xb[j];
        sum += s * mr_f16_to_f32(b[i].d);
    }
    return sum;
}

float mr_dot_q8_0_q8_0(const void *w, const void *xq, int64_t n)
{
    const block_q8_0 *a = w, *b = xq;
    const int64_t nb = n / QK8_0;
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        int32_t s = 0; /* |s| <= 32 * 127 * 127, fits easily */
        for (int j = 0; j < QK8_0; j++)
            s += (int32_t)a[i].qs[j] * (int32_t)b[i].qs[j];
        sum += (float)s * (mr_f16_to_f32(a[i].d) * mr_f16_to_f32(b[i].d));
    }
    return sum;
}
