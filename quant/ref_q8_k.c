/* ref_q8_k.c - scalar reference for Q8_K (block_q8_K: f32 d + 256 int8 +
 * 16 int16 group sums), the activation format the K-quant integer dots
 * take.  x = d * q with q in [-127, 127]; d is negative when the element of
 * largest magnitude is positive (ggml maps that element to -127).
 * Rounding follows ggml's quantize_row_q8_K_ref exactly. */
#include "ref_k_common.h"
#include "types.h"

#include <math.h>

void mr_quantize_row_q8_K(const float *src, void *dst, int64_t n)
{
    block_q8_K *y = dst;
    const int64_t nb = n / QK_K;
    for (int64_t b = 0; b < nb; b++) {
        const float *x = src + b * QK_K;
        /* max: the signed value of largest |x|, the first one on ties */
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < QK_K; j++) {
            if (fabsf(x[j]) > amax) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        }
        if (amax == 0.0f) {
            /* ggml leaves bsums unwritten here; zero is what they sum to */
            memset(&y[b], 0, sizeof y[b]);
            continue;
        }
        const float iscale = -127.0f / max; /* max -> -127, -max -> +127 */
        for (int j = 0; j < QK_K; j++) {
            const int v = mr_k_nearest_int(iscale * x[j]);
            y[b].qs[j] = (int8_t)(v < 127 ? v : 127); /* in [-127, 127] */
        }
        for (int g = 0; g < QK_K / 16; g++) {
            int sum = 0; /* |sum| <= 16 * 127 */
            for (int j = 0; j < 16; j++)
                sum += y[b].qs[16 * g + j];
            y[b].bsums[g] = (int16_t)sum;
        }
        y[b].d = 1.0f / iscale;
    }
}

void mr_dequantize_row_q8_K(const void *src, float *dst, int64_t n)
{
    const block_q8_K *x = src;
    const int64_t nb = n / QK_K;
    for (int64_t b = 0; b < nb; b++)
        for (int j = 0; j < QK_K; j++)
            dst[b * QK_K + j] = x[b].d * (float)x[b].qs[j];
}
