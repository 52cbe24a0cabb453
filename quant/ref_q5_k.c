/* ref_q5_k.c - scalar reference for Q5_K (block_q5_K, 256 weights).
 *
 * Q4_K with a fifth bit: sub-block j of 32 decodes as
 *     x = d * sc[j] * q - dmin * m[j]
 * with q in [0, 31] and sc[j], m[j] 6-bit integers packed as Q4_K's (see
 * mr_k_scale_min in ref_k_common.h).  q's low 4 bits are nibbles laid out
 * as Q4_K's: qs holds 32 bytes per 64 weights, low nibbles the first
 * sub-block of the pair, high nibbles the second.  Bit 4 of weight
 * 64c + l (l < 32) is bit 2c of qh[l]; of weight 64c + 32 + l, bit 2c + 1.
 *
 * Quantization follows ggml's quantize_row_q5_K_ref exactly: Q4_K's
 * weighted (scale, min) fit per sub-block with nmax 31 and the grid
 * rmin = -0.5, rdelta = 0.1, nstep = 15; the 8 scales and 8 mins quantized
 * to 6 bits against the largest of each; the weights requantized with the
 * scales as stored.
 */
#include "ref_k_common.h"
#include "types.h"

#include <math.h>

/* q in [0, 31] of weight e of block b */
static inline int q5_K_get(const block_q5_K *b, int e)
{
    const int c = e / 64, s = (e % 64) / 32, l = e % 32;
    const uint8_t byte = b->qs[32 * c + l];
    const int lo = s ? byte >> 4 : byte & 0x0f;
    return lo | (((b->qh[l] >> (2 * c + s)) & 1) << 4);
}

void mr_quantize_row_q5_K(const float *src, void *dst, int64_t n)
{
    block_q5_K *y = dst;
    const int64_t nb = n / QK_K;
    uint8_t L[QK_K]; /* quants, [0, 31] */
    uint8_t Laux[32];
    float weights[32];
    float scales[QK_K / 32], mins[QK_K / 32];

    for (int64_t b = 0; b < nb; b++) {
        const float *x = src + b * QK_K;
        float max_scale = 0.0f, max_min = 0.0f;
        for (int j = 0; j < QK_K / 32; j++) {
            const float *xs = x + 32 * j;
            /* weight: RMS of the sub-block plus |x| (as Q4_K) */
            float sum_x2 = 0.0f;
            for (int l = 0; l < 32; l++)
                sum_x2 += xs[l] * xs[l];
            const float av_x = sqrtf(sum_x2 / 32.0f);
            for (int l = 0; l < 32; l++)
                weights[l] = av_x + fabsf(xs[l]);
            scales[j] = mr_k_make_qkx2_quants(32, 31, xs, weights, L + 32 * j, &mins[j], Laux,
                                              -0.5f, 0.1f, 15);
            if (scales[j] > max_scale)
                max_scale = scales[j];
            if (mins[j] > max_min)
                max_min = mins[j];
        }

        const float inv_scale = max_scale > 0.0f ? 63.0f / max_scale : 0.0f;
        const float inv_min = max_min > 0.0f ? 63.0f / max_min : 0.0f;
        uint8_t ls[QK_K / 32], lm[QK_K / 32];
        for (int j = 0; j < QK_K / 32; j++) {
            /* stored through a uint8_t, then capped at 63, as ggml does */
            ls[j] = (uint8_t)mr_k_nearest_int(inv_scale * scales[j]);
            lm[j] = (uint8_t)mr_k_nearest_int(inv_min * mins[j]);
            if (ls[j] > 63)
                ls[j] = 63;
            if (lm[j] > 63)
                lm[j] = 63;
        }
        memset(y[b].scales, 0, sizeof y[b].scales);
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
                    (uint8_t)mr_k_clamp(mr_k_nearest_int((x[32 * j + i] + dmj) / dj), 0, 31);
        }

        /* low 4 bits as Q4_K's nibbles, bit 4 into qh */
        memset(y[b].qh, 0, sizeof y[b].qh);
        for (int c = 0; c < QK_K / 64; c++)
            for (int l = 0; l < 32; l++) {
                const int l1 = L[64 * c + l], l2 = L[64 * c + 32 + l];
                y[b].qs[32 * c + l] = (uint8_t)((l1 & 0x0f) | ((l2 & 0x0f) << 4));
                y[b].qh[l] |= (uint8_t)(((l1 >> 4) << (2 * c)) | ((l2 >> 4) << (2 * c + 1)));
            }
    }
}

void mr_dequantize_row_q5_K(const void *src, float *dst, int64_t n)
{
    const block_q5_K *x = src;
    const int64_t nb = n / QK_K;
    for (int64_t b = 0; b < nb; b++) {
        const float d = mr_f16_to_f32(x[b].d), dmin = mr_f16_to_f32(x[b].dmin);
        for (int j = 0; j < QK_K / 32; j++) {
            uint8_t sc, m;
            mr_k_scale_min(j, x[b].scales, &sc, &m);
            const float dj = d * (float)sc, mj = dmin * (float)m;
            for (int i = 0; i < 32; i++)
                dst[b * QK_K + 32 * j + i] = dj * (float)q5_K_get(&x[b], 32 * j + i) - mj;
        }
    }
}

/* Dot with f32 activations: each weight decoded exactly as
 * mr_dequantize_row_q5_K does, summed in float per super-block. */
float mr_dot_q5_K_f32(const void *w, const float *x, int64_t n)
{
    const block_q5_K *wb = w;
    const int64_t nb = n / QK_K;
    float sum = 0.0f;
    for (int64_t b = 0; b < nb; b++) {
        const float d = mr_f16_to_f32(wb[b].d), dmin = mr_f16_to_f32(wb[b].dmin);
        const float *xb = x + b * QK_K;
        float s = 0.0f;
        for (int j = 0; j < QK_K / 32; j++) {
            uint8_t sc, m;
            mr_k_scale_min(j, wb[b].scales, &sc, &m);
            const float dj = d * (float)sc, mj = dmin * (float)m;
            for (int i = 0; i < 32; i++)
                s += (dj * (float)q5_K_get(&wb[b], 32 * j + i) - mj) * xb[32 * j + i];
        }
        sum += s;
    }
    return sum;
}

/* ggml's ggml_vec_dot_q5_K_q8_K_generic, value for value: as Q4_K's (see
 * mr_dot_q4_K_q8_K) with q in [0, 31], so |lane| <= 32 * 63 * 31 * 127
 * < 2^23, exact as a float.  xq's bsums must match its qs. */
float mr_dot_q5_K_q8_K(const void *w, const void *xq, int64_t n)
{
    const block_q5_K *wb = w;
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
        for (int e = 0; e < QK_K; e++)
            lane[e & 7] += sc[e / 32] * (q8[e] * q5_K_get(&wb[b], e));
        int32_t summ = 0;
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
