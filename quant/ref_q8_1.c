/* ref_q8_1.c - scalar reference for Q8_1, the activations of the Q4_1 and
 * Q5_1 dots (block_q8_1: f16 d, f16 s = d * sum(q), 32 int8).  Rounding
 * follows ggml's quantize_row_q8_1_ref exactly: s is formed from the f32
 * d before d is rounded to f16. */
#include "types.h"

#include <math.h>

void mr_quantize_row_q8_1(const float *src, void *dst, int64_t n)
{
    block_q8_1 *y = dst;
    const int64_t nb = n / QK8_1;
    for (int64_t b = 0; b < nb; b++) {
        const float *x = src + b * QK8_1;
        float amax = 0.0f;
        for (int j = 0; j < QK8_1; j++)
            amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = mr_f32_to_f16(d);
        int sum = 0;
        for (int j = 0; j < QK8_1; j++) {
            y[b].qs[j] = (int8_t)roundf(x[j] * id); /* in [-127, 127] */
            sum += y[b].qs[j];
        }
        y[b].s = mr_f32_to_f16((float)sum * d);
    }
}

void mr_dequantize_row_q8_1(const void *src, float *dst, int64_t n)
{
    const block_q8_1 *x = src;
    const int64_t nb = n / QK8_1;
    for (int64_t b = 0; b < nb; b++) {
        const float d = mr_f16_to_f32(x[b].d);
        for (int j = 0; j < QK8_1; j++)
            dst[b * QK8_1 + j] = d * (float)x[b].qs[j];
    }
}
