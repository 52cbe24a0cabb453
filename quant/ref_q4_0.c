/* ref_q4_0.c - scalar reference for Q4_0 (block_q4_0: f16 d + 16 bytes of
 * nibbles).  x = (q - 8) * d, q in [0, 15], so values lie in [-8, 7] * d.
 * Byte j: low nibble = element j, high nibble = element j + 16.
 * Rounding follows ggml's quantize_row_q4_0_ref exactly. */
#include "types.h"

#include <math.h>

void mr_quantize_row_q4_0(const float *src, void *dst, int64_t n)
{
    block_q4_0 *y = dst;
    const int64_t nb = n / QK4_0;
    for (int64_t b = 0; b < nb; b++) {
        const float *x = src + b * QK4_0;
        float amax = 0.0f, max = 0.0f; /* max: the signed value of largest |x| */
        for (int j = 0; j < QK4_0; j++) {
            if (amax < fabsf(x[j])) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        }
        const float d = max / -8.0f; /* the extreme value maps to q = 0 */
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = mr_f32_to_f16(d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            const float x0 = x[j] * id, x1 = x[j + QK4_0 / 2] * id;
            /* finite x: x0 + 8.5 in [0.5, 16.5], truncated and capped at 15
             * as ggml does; a NaN (casting it is undefined) gives 0 */
            const float f0 = x0 + 8.5f, f1 = x1 + 8.5f;
            int q0 = f0 >= 16.0f ? 15 : f0 >= 0.0f ? (int)f0 : 0;
            int q1 = f1 >= 16.0f ? 15 : f1 >= 0.0f ? (int)f1 : 0;
            y[b].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

void mr_dequantize_row_q4_0(const void *src, float *dst, int64_t n)
{
    const block_q4_0 *x = src;
    const int64_t nb = n / QK4_0;
    for (int64_t b = 0; b < nb; b++) {
        const float d = mr_f16_to_f32(x[b].d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            dst[b * QK4_0 + j] = (float)((x[b].qs[j] & 0x0f) - 8) * d;
            dst[b * QK4_0 + j + 16] = (float)((x[b].qs[j] >> 4) - 8) * d;
        }
    }
}

float mr_dot_q4_0_f32(const void *w, const float *x, int64_t n)
{
    const block_q4_0 *b = w;
    const int64_t nb = n / QK4_0;
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        const float *xb = x + i * QK4_0;
        float s = 0.0f;
        for (int j = 0; j < QK4_0 / 2; j++) {
            s += (float)((b[i].qs[j] & 0x0f) - 8) * xb[j];
            s += (float)((b[i].qs[j] >> 4) - 8) * xb[j + 16];
        }
        sum += s * mr_f16_to_f32(b[i].d);
    }
    return sum;
}

float mr_dot_q4_0_q8_0(const void *w, const void *xq, int64_t n)
{
    const block_q4_0 *a = w;
    const block_q8_0 *b = xq;
    const int64_t nb = n / QK8_0;
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        int32_t s = 0;
        for (int j = 0; j < QK4_0 / 2; j++) {
            s += ((a[i].qs[j] & 0x0f) - 8) * (int32_t)b[i].qs[j];
            s += ((a[i].qs[j] >> 4) - 8) * (int32_t)b[i].qs[j + 16];
        }
        sum += (float)s * (mr_f16_to_f32(a[i].d) * mr_f16_to_f32(b[i].d));
    }
    return sum;
}
