/* ref_q6_k.c - scalar reference for Q6_K (block_q6_K, 256 weights).
 *
 * A super-block holds 16 sub-blocks of 16 weights.  Sub-block j decodes as
 *     x = d * scales[j] * (q - 32)
 * with q a 6-bit value in [0, 63] (so q - 32 is in [-32, 31]), scales[j] an
 * int8 in [-128, 127] and d an f16.  ggml's quantizer gives the sub-block
 * with the largest scale magnitude scales[j] = -128, so scales and d are
 * often negative; only their product matters.
 *
 * Layout, per half h in {0, 1} (weights 128h .. 128h + 127), for l < 32:
 *   weight 128h + l      : low  nibble of ql[64h + l],      bits 0-1 of qh[32h + l]
 *   weight 128h + l + 32 : low  nibble of ql[64h + l + 32], bits 2-3 of qh[32h + l]
 *   weight 128h + l + 64 : high nibble of ql[64h + l],      bits 4-5 of qh[32h + l]
 *   weight 128h + l + 96 : high nibble of ql[64h + l + 32], bits 6-7 of qh[32h + l]
 * (the nibble gives q's low 4 bits, the qh pair its high 2).
 *
 * Quantization follows ggml's quantize_row_q6_K_ref exactly: a search for
 * the best symmetric scale per sub-block (make_qx_quants), the 16 scales
 * quantized to int8 against the largest magnitude, and the weights
 * requantized with the scales as stored.
 */
#include "ref_k_common.h"
#include "types.h"

#include <math.h>

/* Weight e's 6-bit quant q in [0, 63], decoded per the layout above. */
static inline int q6_K_get(const block_q6_K *b, int e)
{
    const int h = e / 128, g = (e % 128) / 32, l = e % 32;
    const uint8_t lo = b->ql[64 * h + 32 * (g & 1) + l];
    const int nib = (g & 2) ? lo >> 4 : lo & 0x0f;
    const int hi = (b->qh[32 * h + l] >> (2 * g)) & 3;
    return nib | (hi << 4);
}

/* Fit x[i] ~ scale * (L[i] - nmax) with L[i] in [0, 2 * nmax - 1], the
 * symmetric grid, minimising sum x[i]^2 * err^2 (ggml's make_qx_quants with
 * rmse_type 1 and no importance weights, the case Q6_K uses).
 *
 * The first grid maps the value of largest magnitude, max, to -nmax; 18
 * more grids scale that by (nmax + 0.1 * is) / nmax, is in [-9, 9] \ {0},
 * and a grid is kept if its least-squares scale explains strictly more of
 * the weighted energy (sumlx^2 / suml2).  The returned scale has the sign
 * of -max.  A group with max |x| < 1e-15 gets L = 0 and scale 0. */
static float make_qx_quants_rmse1(int n, int nmax, const float *x, uint8_t *L)
{
    float amax = 0.0f, max = 0.0f;
    for (int i = 0; i < n; i++) {
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    }
    if (amax < MR_K_GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    float iscale = (float)-nmax / max;
    float sumlx = 0.0f, suml2 = 0.0f;
    for (int i = 0; i < n; i++) {
        const int l = mr_k_clamp(mr_k_nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (uint8_t)(l + nmax);
        const float w = x[i] * x[i];
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0)
            continue;
        iscale = -((float)nmax + 0.1f * (float)is) / max;
        sumlx = suml2 = 0.0f;
        for (int i = 0; i < n; i++) {
            const int l = mr_k_clamp(mr_k_nearest_int(iscale * x[i]), -nmax, nmax - 1);
            const float w = x[i] * x[i];
            sumlx += w * x[i] * (float)l;
            suml2 += w * (float)l * (float)l;
        }
        if (suml2 > 0.0f && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++)
                L[i] = (uint8_t)(mr_k_clamp(mr_k_nearest_int(iscale * x[i]), -nmax, nmax - 1) +
                                 nmax);
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

void mr_quantize_row_q6_K(const float *src, void *dst, int64_t n)
{
    block_q6_K *y = dst;
    const int64_t nb = n / QK_K;
    uint8_t L[QK_K]; /* quants, [0, 63] */
    float scales[QK_K / 16];

    for (int64_t b = 0; b < nb; b++) {
        const float *x = src + b * QK_K;
        float max_scale = 0.0f, max_abs_scale = 0.0f; /* signed, first on ties */
        for (int j = 0; j < QK_K / 16; j++) {
            scales[j] = make_qx_quants_rmse1(16, 32, x + 16 * j, L + 16 * j);
            if (fabsf(scales[j]) > max_abs_scale) {
                max_abs_scale = fabsf(scales[j]);
                max_scale = scales[j];
            }
        }
        if (max_abs_scale < MR_K_GROUP_MAX_EPS) { /* all (near) zero */
            memset(&y[b], 0, sizeof y[b]);
            continue;
        }

        /* int8 scales: the largest magnitude maps to -128 */
        const float iscale = -128.0f / max_scale;
        y[b].d = mr_f32_to_f16(1.0f / iscale);
        for (int j = 0; j < QK_K / 16; j++) {
            const int s = mr_k_nearest_int(iscale * scales[j]); /* >= -128 */
            y[b].scales[j] = (int8_t)(s < 127 ? s : 127);
        }

        /* requantize against the scales as stored; a sub-block whose
         * stored scale is 0 keeps the quants of its fit (ggml does too) */
        const float d = mr_f16_to_f32(y[b].d);
        for (int j = 0; j < QK_K / 16; j++) {
            const float dj = d * (float)y[b].scales[j];
            if (dj == 0.0f)
                continue;
            for (int i = 0; i < 16; i++)
                L[16 * j + i] =
                    (uint8_t)(mr_k_clamp(mr_k_nearest_int(x[16 * j + i] / dj), -32, 31) + 32);
        }

        for (int h = 0; h < 2; h++) {
            uint8_t *ql = y[b].ql + 64 * h, *qh = y[b].qh + 32 * h;
            const uint8_t *Lh = L + 128 * h;
            for (int l = 0; l < 32; l++) {
                ql[l] = (uint8_t)((Lh[l] & 0x0f) | ((Lh[l + 64] & 0x0f) << 4));
                ql[l + 32] = (uint8_t)((Lh[l + 32] & 0x0f) | ((Lh[l + 96] & 0x0f) << 4));
                qh[l] = (uint8_t)((Lh[l] >> 4) | ((Lh[l + 32] >> 4) << 2) |
                                  ((Lh[l + 64] >> 4) << 4) | ((Lh[l + 96] >> 4) << 6));
            }
        }
    }
}

void mr_dequantize_row_q6_K(const void *src, float *dst, int64_t n)
{
    const block_q6_K *x = src;
    const int64_t nb = n / QK_K;
    for (int64_t b = 0; b < nb; b++) {
        const float d = mr_f16_to_f32(x[b].d);
        for (int e = 0; e < QK_K; e++)
            dst[b * QK_K + e] =
                d * (float)x[b].scales[e / 16] * (float)(q6_K_get(&x[b], e) - 32);
    }
}

/* Dot with f32 activations: each weight is decoded exactly as
 * mr_dequantize_row_q6_K does, summed in float per super-block. */
float mr_dot_q6_K_f32(const void *w, const float *x, int64_t n)
{
    const block_q6_K *wb = w;
    const int64_t nb = n / QK_K;
    float sum = 0.0f;
    for (int64_t b = 0; b < nb; b++) {
        const float d = mr_f16_to_f32(wb[b].d);
        const float *xb = x + b * QK_K;
        float s = 0.0f;
        for (int e = 0; e < QK_K; e++)
            s += d * (float)wb[b].scales[e / 16] * (float)(q6_K_get(&wb[b], e) - 32) * xb[e];
        sum += s;
    }
    return sum;
}

/* ggml's ggml_vec_dot_q6_K_q8_K_generic, value for value.
 *
 * Per super-block, lane l in [0, 8) collects, exactly in integers,
 * scales[e / 16] * (q6[e] - 32) * q8[e] for every element e with
 * e % 8 == l (|lane| <= 32 * 128 * 32 * 127 < 2^24, exact as a float).
 * Floats: sums[l] += (d_w * d_x) * lane[l] per block, and at the end
 * sumf = 0 + sums[0] + ... + sums[7], in that order. */
float mr_dot_q6_K_q8_K(const void *w, const void *xq, int64_t n)
{
    const block_q6_K *wb = w;
    const block_q8_K *xb = xq;
    const int64_t nb = n / QK_K;
    float sums[8] = {0};
    for (int64_t b = 0; b < nb; b++) {
        const int8_t *q8 = xb[b].qs;
        int32_t lane[8] = {0};
        for (int e = 0; e < QK_K; e++)
            lane[e & 7] += wb[b].scales[e / 16] * ((q6_K_get(&wb[b], e) - 32) * q8[e]);
        const float d = mr_f16_to_f32(wb[b].d) * xb[b].d;
        for (int l = 0; l < 8; l++)
            sums[l] += d * (float)lane[l];
    }
    float sumf = 0.0f;
    for (int l = 0; l < 8; l++)
        sumf += sums[l];
    return sumf;
}
