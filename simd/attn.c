/* attn.c - the scalar reference of the attention block kernel (see
 * kernels.h): plain loops in a fixed order. */
#include <math.h>

#include "kernels.h"

void mr_attn_block_ref(const float *q, const float *k, size_t k_stride, const float *v,
                       size_t v_stride, int64_t n, int64_t dk, int64_t dv, float scale, float *m,
                       float *l, float *acc)
{
    float s[MR_ATTN_BLOCK];
    float mx = *m;
    for (int64_t j = 0; j < n; j++) {
        const float *kj = k + (size_t)j * k_stride;
        float d = 0.0f;
        for (int64_t i = 0; i < dk; i++)
            d += q[i] * kj[i];
        s[j] = d * scale;
        if (s[j] > mx)
            mx = s[j];
    }
    const float corr = expf(*m - mx); /* 0 while m is -inf */
    float sum = 0.0f;
    for (int64_t i = 0; i < dv; i++)
        acc[i] *= corr;
    for (int64_t j = 0; j < n; j++) {
        const float e = expf(s[j] - mx);
        const float *vj = v + (size_t)j * v_stride;
        sum += e;
        for (int64_t i = 0; i < dv; i++)
            acc[i] += e * vj[i];
    }
    *l = *l * corr + sum;
    *m = mx;
}
