/* ref_iq4.c - scalar references for IQ4_NL (32 weights, x = d * kv[q]) and
 * IQ4_XS (256 = 8 x 32 weights, x = d * (ls - 32) * kv[q], a 6-bit ls per
 * 32), kv the fixed non-linear 4-bit codebook.  Quantization is ggml's
 * without an importance matrix, as llama-quantize runs it
 * (quantize_iq4_nl / quantize_iq4_xs): per 32 weights, weights x^2, a
 * first scale from the extreme value, then 15 candidate scales around it,
 * keeping the best weighted least-squares fit; IQ4_XS then quantizes the 8
 * scales to 6 bits against one f16 super-scale and re-picks the codes.
 * Every float operation is ggml's, in ggml's order.  The dots follow
 * ggml_vec_dot_iq4_nl_q8_0 and ggml_vec_dot_iq4_xs_q8_K. */
#include "ref_k_common.h"
#include "types.h"

#include <math.h>
#include <string.h>

const int8_t mr_kvalues_iq4nl[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                     1,    13,   25,  38,  53,  69,  89,  113};

#define NTRY 7 /* llama-quantize's candidate scales: -NTRY .. NTRY */

/* index of the codebook value nearest x (ggml's best_index_int8: binary
 * search, the upper one on ties) */
static int nearest_code(float x)
{
    const int8_t *v = mr_kvalues_iq4nl;
    if (x <= v[0])
        return 0;
    if (x >= v[15])
        return 15;
    int lo = 0, hi = 15;
    while (hi - lo > 1) {
        const int mid = (lo + hi) / 2;
        if (x < v[mid])
            hi = mid;
        else
            lo = mid;
    }
    return x - v[hi - 1] < v[hi] - x ? hi - 1 : hi;
}

/* The best scale of 32 weights (0 for an all-but-zero group), ggml's
 * search with weights x^2. */
static float best_scale32(const float *x)
{
    float w[32];
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < 32; j++) {
        w[j] = x[j] * x[j];
        const float ax = fabsf(x[j]);
        if (ax > amax) {
            amax = ax;
            max = x[j];
        }
    }
    if (amax < MR_K_GROUP_MAX_EPS)
        return 0.0f;
    /* the extreme value onto kv[0] = -127 */
    float d = -max / (float)mr_kvalues_iq4nl[0];
    float id = 1.0f / d;
    float sumqx = 0.0f, sumq2 = 0.0f;
    for (int j = 0; j < 32; j++) {
        const float q = (float)mr_kvalues_iq4nl[nearest_code(id * x[j])];
        sumqx += w[j] * q * x[j];
        sumq2 += w[j] * q * q;
    }
    d = sumq2 > 0.0f ? sumqx / sumq2 : 0.0f;
    float best = d * sumqx;
    for (int itry = -NTRY; itry <= NTRY; itry++) {
        id = (float)(itry + mr_kvalues_iq4nl[0]) / max;
        sumqx = sumq2 = 0.0f;
        for (int j = 0; j < 32; j++) {
            const float q = (float)mr_kvalues_iq4nl[nearest_code(id * x[j])];
            sumqx += w[j] * q * x[j];
            sumq2 += w[j] * q * q;
        }
        if (sumq2 > 0.0f && sumqx * sumqx > best * sumq2) {
            d = sumqx / sumq2;
            best = d * sumqx;
        }
    }
    return d;
}

/* 32 codes for x at inverse scale id, packed: byte j = code j | code j+16 << 4 */
static void pack_codes32(const float *x, float id, uint8_t *qs)
{
    for (int j = 0; j < 16; j++)
        qs[j] = (uint8_t)(nearest_code(id * x[j]) | nearest_code(id * x[j + 16]) << 4);
}

/* ------------------------------------------------------------ IQ4_NL */

void mr_quantize_row_iq4_nl(const float *src, void *dst, int64_t n)
{
    block_iq4_nl *y = dst;
    const int64_t nb = n / QK4_NL;
    for (int64_t b = 0; b < nb; b++) {
        const float *x = src + b * QK4_NL;
        const float d = best_scale32(x);
        y[b].d = mr_f32_to_f16(d);
        pack_codes32(x, d != 0.0f ? 1.0f / d : 0.0f, y[b].qs);
    }
}

void mr_dequantize_row_iq4_nl(const void *src, float *dst, int64_t n)
{
    const block_iq4_nl *x = src;
    const int64_t nb = n / QK4_NL;
    for (int64_t b = 0; b < nb; b++) {
        const float d = mr_f16_to_f32(x[b].d);
        for (int j = 0; j < 16; j++) {
            dst[b * QK4_NL + j] = d * (float)mr_kvalues_iq4nl[x[b].qs[j] & 0x0f];
            dst[b * QK4_NL + j + 16] = d * (float)mr_kvalues_iq4nl[x[b].qs[j] >> 4];
        }
    }
}

float mr_dot_iq4_nl_f32(const void *w, const float *x, int64_t n)
{
    const block_iq4_nl *b = w;
    const int64_t nb = n / QK4_NL;
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        const float *xb = x + i * QK4_NL;
        float s = 0.0f;
        for (int j = 0; j < 16; j++) {
            s += (float)mr_kvalues_iq4nl[b[i].qs[j] & 0x0f] * xb[j];
            s += (float)mr_kvalues_iq4nl[b[i].qs[j] >> 4] * xb[j + 16];
        }
        sum += s * mr_f16_to_f32(b[i].d);
    }
    return sum;
}

float mr_dot_iq4_nl_q8_0(const void *w, const void *xq, int64_t n)
{
    const block_iq4_nl *a = w;
    const block_q8_0 *b = xq;
    const int64_t nb = n / QK4_NL;
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        const float d = mr_f16_to_f32(b[i].d) * mr_f16_to_f32(a[i].d);
        int32_t s = 0; /* |s| <= 32 * 127 * 127 */
        for (int j = 0; j < 16; j++) {
            s += mr_kvalues_iq4nl[a[i].qs[j] & 0x0f] * (int32_t)b[i].qs[j];
            s += mr_kvalues_iq4nl[a[i].qs[j] >> 4] * (int32_t)b[i].qs[j + 16];
        }
        sum += d * (float)s;
    }
    return sum;
}

/* ------------------------------------------------------------ IQ4_XS */

/* 6-bit scale ls of sub-block ib, in [0, 63] */
static inline int xs_scale(const block_iq4_xs *b, int ib)
{
    return ((b->scales_l[ib / 2] >> 4 * (ib % 2)) & 0x0f) | ((b->scales_h >> 2 * ib) & 3) << 4;
}

void mr_quantize_row_iq4_xs(const float *src, void *dst, int64_t n)
{
    block_iq4_xs *y = dst;
    const int64_t nb = n / QK_K;
    for (int64_t b = 0; b < nb; b++) {
        const float *x = src + b * QK_K;
        float scales[8], amax_scale = 0.0f, max_scale = 0.0f;
        for (int ib = 0; ib < 8; ib++) {
            scales[ib] = best_scale32(x + 32 * ib);
            if (fabsf(scales[ib]) > amax_scale) {
                amax_scale = fabsf(scales[ib]);
                max_scale = scales[ib];
            }
        }
        /* the largest sub-scale onto ls - 32 = -32 */
        const float d = -max_scale / 32.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = mr_f32_to_f16(d);
        y[b].scales_h = 0;
        memset(y[b].scales_l, 0, sizeof y[b].scales_l);
        for (int ib = 0; ib < 8; ib++) {
            const int l = mr_k_clamp(mr_k_nearest_int(id * scales[ib]), -32, 31);
            const float dl = d * (float)l;
            pack_codes32(x + 32 * ib, dl != 0.0f ? 1.0f / dl : 0.0f, y[b].qs + 16 * ib);
            y[b].scales_l[ib / 2] |= (uint8_t)(((l + 32) & 0x0f) << 4 * (ib % 2));
            y[b].scales_h |= (uint16_t)(((l + 32) >> 4) << 2 * ib);
        }
    }
}

void mr_dequantize_row_iq4_xs(const void *src, float *dst, int64_t n)
{
    const block_iq4_xs *x = src;
    const int64_t nb = n / QK_K;
    for (int64_t b = 0; b < nb; b++) {
        const float d = mr_f16_to_f32(x[b].d);
        for (int ib = 0; ib < 8; ib++) {
            const float dl = d * (float)(xs_scale(&x[b], ib) - 32);
            const uint8_t *qs = x[b].qs + 16 * ib;
            float *y = dst + b * QK_K + 32 * ib;
            for (int j = 0; j < 16; j++) {
                y[j] = dl * (float)mr_kvalues_iq4nl[qs[j] & 0x0f];
                y[j + 16] = dl * (float)mr_kvalues_iq4nl[qs[j] >> 4];
            }
        }
    }
}

float mr_dot_iq4_xs_f32(const void *w, const float *x, int64_t n)
{
    const block_iq4_xs *b = w;
    const int64_t nb = n / QK_K;
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        const float d = mr_f16_to_f32(b[i].d);
        for (int ib = 0; ib < 8; ib++) {
            const uint8_t *qs = b[i].qs + 16 * ib;
            const float *xb = x + i * QK_K + 32 * ib;
            float s = 0.0f;
            for (int j = 0; j < 16; j++) {
                s += (float)mr_kvalues_iq4nl[qs[j] & 0x0f] * xb[j];
                s += (float)mr_kvalues_iq4nl[qs[j] >> 4] * xb[j + 16];
            }
            sum += s * (d * (float)(xs_scale(&b[i], ib) - 32));
        }
    }
    return sum;
}

float mr_dot_iq4_xs_q8_K(const void *w, const void *xq, int64_t n)
{
    const block_iq4_xs *a = w;
    const block_q8_K *b = xq;
    const int64_t nb = n / QK_K;
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        const float d4d8 = mr_f16_to_f32(a[i].d) * b[i].d;
        for (int ib = 0; ib < 8; ib++) {
            const uint8_t *qs = a[i].qs + 16 * ib;
            const int8_t *q8 = b[i].qs + 32 * ib;
            int32_t s = 0;
            for (int j = 0; j < 16; j++) {
                s += q8[j] * mr_kvalues_iq4nl[qs[j] & 0x0f];
                s += q8[j + 16] * mr_kvalues_iq4nl[qs[j] >> 4];
            }
            sum += (d4d8 * (float)(xs_scale(&a[i], ib) - 32)) * (float)s;
        }
    }
    return sum;
}
