/* norm.c - RMSNorm over a row, over rows, and per attention head (with or
 * without a weight: Llama 4's q/k "L2Norm" is the weightless one). */
#include <math.h>

#include "nn.h"

void nn_rmsnorm(float *out, const float *x, const float *w, uint32_t n, float eps)
{
    float ss = 0.0f;
    for (uint32_t i = 0; i < n; i++)
        ss += x[i] * x[i];
    const float scale = 1.0f / sqrtf(ss / (float)n + eps);
    if (w)
        for (uint32_t i = 0; i < n; i++)
            out[i] = x[i] * scale * w[i];
    else
        for (uint32_t i = 0; i < n; i++)
            out[i] = x[i] * scale;
}

void nn_rmsnorm_rows(float *out, const float *x, const float *w, uint32_t n_rows, uint32_t n,
                     float eps)
{
    for (uint32_t r = 0; r < n_rows; r++)
        nn_rmsnorm(out + (size_t)r * n, x + (size_t)r * n, w, n, eps);
}

void nn_rmsnorm_heads(float *x, const float *w, uint32_t n_rows, uint32_t stride,
                      uint32_t n_heads, uint32_t hd, float eps)
{
    for (uint32_t r = 0; r < n_rows; r++)
        for (uint32_t h = 0; h < n_heads; h++) {
            float *p = x + (size_t)r * stride + (size_t)h * hd;
            nn_rmsnorm(p, p, w, hd, eps);
        }
}
