/* ref_q4_k.c - scalar reference for Q4_K (block_q4_K, 256 weights).
 *
 * A super-block holds 8 sub-blocks of 32 weights.  Sub-block j decodes as
 *     x = d * sc[j] * q - dmin * m[j]
 * with q a nibble in [0, 15] and sc[j], m[j] 6-bit integers in [0, 63]
 * packed into scales[12] (see mr_k_scale_min in ref_k_common.h).  d and dmin are f16 and
 * non-negative for ggml's quantizer, so each sub-block covers
 * [-dmin * m, -dmin * m + 15 * d * sc].
 *
 * Quantization follows ggml's quantize_row_q4_K_ref exactly: a weighted
 * least-squares fit of (scale, min) per sub-block (make_qkx2_quants), the
 * 8 scales and 8 mins quantized to 6 bits against the largest of each, and
 * the weights requantized with the scales as stored.
 */
#include "ref_k_common.h"
#include "types.h"

#include <math.h>

/* Fit x[i] ~ scale * L[i] - the_min with L[i] in [0, nmax], minimising
 * sum weights[i] * err^2 (ggml's make_qkx2_quants without its use_mad
 * option, which Q4_K and Q5_K do not use).
 *
 * Start from the min/max grid (min clamped to <= 0), then try nstep + 1
 * other grids, iscale = (nmax + rmin + rdelta * is) / (max - min), fitting
 * scale and min in closed form on each and keeping a strictly better one.
 * Returns scale (>= 0 in practice) and stores the_min = -min >= 0, or
 * -0.0f when min stayed 0.  Laux is scratch of n bytes. */
float mr_k_make_qkx2_quants(int n, int nmax, const float *x, const float *weights,
                              uint8_t *L, float *the_min, uint8_t *Laux, float rmin,
                              float rdelta, int nstep)
{
    float min = x[0], max = x[0];
    float sum_w = weights[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min)
            min = x[i];
        if (x[i] > max)
            max = x[i];
        sum_w += weights[i];
        sum_x += weights[i] * x[i];
    }
    if (min > 0.0f)
        min = 0.0f;
    if (max == min) { /* all zero (or all equal to a min clamped to 0) */
        memset(L, 0, (size_t)n);
        *the_min = -min;
        return 0.0f;
    }
    float iscale = (float)nmax / (max - min);
    float scale = 1.0f / iscale;
    float best_error = 0.0f;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)mr_k_clamp(mr_k_nearest_int(iscale * (x[i] - min)), 0, nmax);
        const float diff = scale * (float)L[i] + min - x[i];
        best_error += weights[i] * (diff * diff);
    }
    if (nstep < 1) {
        *the_min = -min;
        return scale;
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * (float)is + (float)nmax) / (max - min);
        float sum_l = 0.0f, sum_l2 = 0.0f, sum_xl = 0.0f;
        for (int i = 0; i < n; i++) {
            const int l = mr_k_clamp(mr_k_nearest_int(iscale * (x[i] - min)), 0, nmax);
            Laux[i] = (uint8_t)l;
            const float w = weights[i];
            sum_l += w * (float)l;
            sum_l2 += w * (float)l * (float)l;
            sum_xl += w * (float)l * x[i];
        }
        /* normal equations of min_{a,b} sum w (a*l + b - x)^2 */
        const float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0.0f) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0.0f) { /* the format cannot add: refit with min 0 */
                this_min = 0.0f;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0.0f;
            for (int i = 0; i < n; i++) {
                const float diff = this_scale * (float)Laux[i] + this_min - x[i];
                cur_error += weights[i] * (diff * diff);
            }
            if (cur_error < best_error) {
                memcpy(L, Laux, (size_t)n);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

void mr_quantize_row_q4_K(const float *src, void *dst, int64_t n)
{
    block_q4_K *y = dst;
    const int64_t nb = n / QK_K;
    uint8_t L[QK_K];  /* quants, [0, 15] */
    uint8_t Laux[32];
    float weights[32];
    float scales[QK_K / 32], mins[QK_K / 32]; /* float fit per sub-block */

    for (int64_t b = 0; b < nb; b++) {
        const float *x = src + b * QK_K;
        float max_scale = 0.0f, max_min = 0.0f;
        for (int j = 0; j < QK_K / 32; j++) {
            const float *xs = x + 32 * j;
            /* weight: RMS of the sub-block plus |x|, so large values and
             * loud sub-blocks are fitted more closely */
            float sum_x2 = 0.0f;
            for (int l = 0; l < 32; l++)
                sum_x2 += xs[l] * xs[l];
            const float av_x = sqrtf(sum_x2 / 32.0f);
            for (int l = 0; l < 32; l++)
                weights[l] = av_x + fabsf(xs[l]);
            scales[j] = mr_k_make_qkx2_quants(32, 15, xs, weights, L + 32 * j, &mins[j], Laux, -1.0f,
                                         0.1f, 20);
            if (scales[j] > max_scale)
                max_scale = scales[j];
            if (mins[j] > max_min)
                max_min = mins[j];
        }

        /* 6-bit scales and mins relative to the largest of each */
        const float inv_scale = max_scale > 0.0f ? 63.0f / max_scale : 0.0f;
        const float inv_min = max_min > 0.0f ? 63.0f / max_min : 0.0f;
        uint8_t ls[QK_K / 32], lm[QK_K / 32];
        for (int j = 0; j < QK_K / 32; j++) {
            /* ggml stores nearest_int into a uint8_t, then caps at 63: a
             * (never seen) negative scale wraps and becomes 63 */
            ls[j] = (uint8_t)mr_k_nearest_int(inv_scale * scales[j]);
            lm[j] = (uint8_t)mr_k_nearest_int(inv_min * mins[j]);
            if (ls[j] > 63)
                ls[j] = 63;
            if (lm[j] > 63)
                lm[j] = 63;
        }
        mr_k_pack_scales(ls, lm, y[b].scales);
        y[b].d = mr_f32_to_f16(max_scale / 63.0f);
        y[b].dmin = mr_f32_to_f16(max_min / 63.0f);

        /* requantize against the scales as stored; a sub-block whose
         * stored scale is 0 keeps the quants of its fit (ggml does too) */
        const float d = mr_f16_to_f32(y[b].d), dmin = mr_f16_to_f32(y[b].dmin);
        for (int j = 0; j < QK_K / 32; j++) {
            uint8_t sc, m;
            mr_k_scale_min(j, y[b].scales, &sc, &m);
            const float dj = d * (float)sc;
            if (dj == 0.0f)
                continue;
            const float dmj = dmin * (float)m;
            for (int i = 0; i < 32; i++)
                L[32 * j + i] =
                    (uint8_t)mr_k_clamp(mr_k_nearest_int((x[32 * j + i] + dmj) / dj), 0, 15);
        }

        /* 64 weights per 32 bytes: low nibbles hold sub-block 2c, high
         * nibbles sub-block 2c + 1 */
        for (int c = 0; c < QK_K / 64; c++)
            for (int i = 0; i < 32; i++)
                y[b].qs[32 * c + i] = (uint8_t)(L[64 * c + i] | (L[64 * c + 32 + i] << 4));
    }
}

void mr_dequantize_row_q4_K(const void *src, float *dst, int64_t n)
{
    const block_q4_K *x = src;
    const int64_t nb = n / QK_K;
    for (int64_t b = 0; b < nb; b++) {
        const float d = mr_f16_to_f32(x[b].d), dmin = mr_f16_to_f32(x[b].dmin);
        float *y = dst + b * QK_K;
        for (int c = 0; c < QK_K / 64; c++) {
            const uint8_t *q = x[b].qs + 32 * c;
            uint8_t sc, m;
            mr_k_scale_min(2 * c, x[b].scales, &sc, &m);
            const float d1 = d * (float)sc, m1 = dmin * (float)m;
            mr_k_scale_min(2 * c + 1, x[b].scales, &sc, &m);
            const float d2 = d * (float)sc, m2 = dmin * (float)m;
            for (int i = 0; i < 32; i++) {
                y[64 * c + i] = d1 * (float)(q[i] & 0x0f) - m1;
                y[64 * c + 32 + i] = d2 * (float)(q[i] >> 4) - m2;
            }
        }
    }
}

/* Dot with f32 activations: each weight is decoded exactly as
 * mr_dequantize_row_q4_K does, summed in float per super-block. */
float mr_dot_q4_K_f32(const void *w, const float *x, int64_t n)
{
    const block_q4_K *wb = w;
    const int64_t nb = n / QK_K;
    float sum = 0.0f;
    for (int64_t b = 0; b < nb; b++) {
        const float d = mr_f16_to_f32(wb[b].d), dmin = mr_f16_to_f32(wb[b].dmin);
        const float *xb = x + b * QK_K;
        float s = 0.0f;
        for (int c = 0; c < QK_K / 64; c++) {
            const uint8_t *q = wb[b].qs + 32 * c;
            uint8_t sc, m;
            mr_k_scale_min(2 * c, wb[b].scales, &sc, &m);
            const float d1 = d * (float)sc, m1 = dmin * (float)m;
            mr_k_scale_min(2 * c + 1, wb[b].scales, &sc, &m);
            const float d2 = d * (float)sc, m2 = dmin * (float)m;
            for (int i = 0; i < 32; i++)
                s += (d1 * (float)(q[i] & 0x0f) - m1) * xb[64 * c + i];
            for (int i = 0; i < 32; i++)
                s += (d2 * (float)(q[i] >> 4) - m2) * xb[64 * c + 32 + i];
        }
        sum += s;
    }
    return sum;
}

/* ggml's ggml_vec_dot_q4_K_q8_K_generic, value for value.
 *
 * Per super-block, the integer part is exact: lane l in [0, 8) collects
 * sc[e / 32] * q4[e] * q8[e] for every element e with e % 8 == l
 * (|lane| <= 32 * 63 * 15 * 128 < 2^22, exact as a float).  The mins enter
 * through the Q8_K group sums: summ = sum_g bsums[g] * m[g / 2].  Floats:
 *   sums[l] += (d_w * d_x) * lane[l]        per block, 8 running sums
 *   sumf    -= (dmin_w * d_x) * summ        per block
 * and at the end sumf += sums[0] + ... + sums[7], in that order.  xq must
 * be Q8_K with bsums as mr_quantize_row_q8_K writes them. */
float mr_dot_q4_K_q8_K(const void *w, const void *xq, int64_t n)
{
    const block_q4_K *wb = w;
    const block_q8_K *xb = xq;
    const int64_t nb = n / QK_K;
    float sums[8] = {0};
    float sumf = 0.0f;
    for (int64_t b = 0; b < nb; b++) {
        uint8_t sc[8], m[8];
        for (int j = 0; j < 8; j++)
            mr_k_scale_min(j, wb[b].scales, &sc[j], &m[j]);
        const int8_t *q8 = xb[b].qs;
        int32_t lane[8] = {0};
        for (int c = 0; c < QK_K / 64; c++) {
            const uint8_t *q4 = wb[b].qs + 32 * c;
            for (int i = 0; i < 32; i++) { /* low nibbles: sub-block 2c */
                const int e = 64 * c + i;
                lane[e & 7] += sc[2 * c] * (q8[e] * (q4[i] & 0x0f));
            }
            for (int i = 0; i < 32; i++) { /* high nibbles: sub-block 2c + 1 */
                const int e = 64 * c + 32 + i;
                lane[e & 7] += sc[2 * c + 1] * (q8[e] * (q4[i] >> 4));
            }
        }
        int32_t summ = 0; /* |summ| <= 16 * 2032 * 63 */
        for (int g = 0; g < QK_K / 16; g++)
            summ += xb[b].bsums[g] * m[g / 2];
        const float d = mr_f16_to_f32(wb[b].d) * xb[b].d;
        for (int l = 0; l < 8; l++)
            sums[l] += d * (float)lane[l];
        const float dmin = mr_f16_to_f32(wb[b].dmin) * xb[b].d;
        sumf -= dmin * (float)summ;
    }
    for (int l = 0; l < 8; l++)
        sumf += sums[l];
    return sumf;
}
