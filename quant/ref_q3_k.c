/* ref_q3_k.c - scalar reference for Q3_K (block_q3_K, see types_more.h):
 * x = d * (sc[j] - 32) * (q - 4) per sub-block j of 16, q in [0, 7].
 * Quantization is ggml's quantize_row_q3_K_ref (= llama-quantize without an
 * importance matrix): per sub-block a signed scale fit with weights x^2
 * (make_q3_quants with its rmse refinement), 6-bit scales against one f16
 * super-scale, the codes re-picked.  Every float operation is ggml's, in
 * ggml's order; the dot is ggml_vec_dot_q3_K_q8_K's, including its eight
 * running float sums. */
#include "ref_k_common.h"
#include "types.h"

#include <math.h>
#include <string.h>

/* The 16 6-bit scales of a block, in [0, 63]: low nibbles in bytes 0..7
 * (sub-block j < 8: low nibble of byte j; j >= 8: high nibble of byte
 * j - 8), the two high bits of j in bits 2 (j / 4) of byte 8 + j % 4. */
static void q3_K_scales(const uint8_t s[12], int sc[16])
{
    for (int j = 0; j < 16; j++) {
        const int lo = j < 8 ? s[j] & 0x0f : s[j - 8] >> 4;
        sc[j] = lo | ((s[8 + j % 4] >> 2 * (j / 4)) & 3) << 4;
    }
}

/* code of element e in [0, 7]: 2 bits of qs (as Q2_K), + 4 if its hmask bit is set */
static inline int q3_K_code(const block_q3_K *b, int e)
{
    const int h = e / 128, k = e % 128 / 32, l = e % 32;
    const int lo = (b->qs[32 * h + l] >> 2 * k) & 3;
    return lo + ((b->hmask[l] >> (e / 32)) & 1) * 4;
}

/* ggml's make_q3_quants(n = 16, nmax = 4, do_rmse = true): codes in [0, 7]
 * for x / scale + 4, and the scale, refined by 5 rounds of single-code
 * moves that raise the weighted fit (weights x^2). */
static float fit_scale_q3(const float *x, int8_t *L)
{
    const int n = 16, nmax = 4;
    float max = 0.0f, amax = 0.0f;
    for (int i = 0; i < n; i++) {
        const float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < MR_K_GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    const float iscale = (float)-nmax / max;
    float sumlx = 0.0f, suml2 = 0.0f;
    for (int i = 0; i < n; i++) {
        const int l = mr_k_clamp(mr_k_nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)l;
        const float w = x[i] * x[i];
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    for (int itry = 0; itry < 5; itry++) {
        int n_changed = 0;
        for (int i = 0; i < n; i++) {
            const float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * (float)L[i];
            if (slx > 0.0f) {
                float sl2 = suml2 - w * (float)L[i] * (float)L[i];
                const int new_l = mr_k_clamp(mr_k_nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
                if (new_l != L[i]) {
                    slx += w * x[i] * (float)new_l;
                    sl2 += w * (float)new_l * (float)new_l;
                    if (sl2 > 0.0f && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (int8_t)new_l;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed++;
                    }
                }
            }
        }
        if (!n_changed)
            break;
    }
    for (int i = 0; i < n; i++)
        L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

void mr_quantize_row_q3_K(const float *src, void *dst, int64_t n)
{
    block_q3_K *y = dst;
    const int64_t nb = n / QK_K;
    for (int64_t b = 0; b < nb; b++) {
        const float *x = src + b * QK_K;
        int8_t L[QK_K];
        float scales[16], amax = 0.0f, max_scale = 0.0f;
        for (int j = 0; j < 16; j++) {
            scales[j] = fit_scale_q3(x + 16 * j, L + 16 * j);
            if (fabsf(scales[j]) > amax) {
                amax = fabsf(scales[j]);
                max_scale = scales[j];
            }
        }
        memset(y[b].scales, 0, 12);
        if (max_scale != 0.0f) {
            /* the largest scale onto sc - 32 = -32 */
            const float iscale = -32.0f / max_scale;
            for (int j = 0; j < 16; j++) {
                /* ggml stores nearest_int into an int8_t before clamping */
                const int l = mr_k_clamp((int8_t)mr_k_nearest_int(iscale * scales[j]), -32, 31) + 32;
                if (j < 8)
                    y[b].scales[j] = (uint8_t)(l & 0x0f);
                else
                    y[b].scales[j - 8] |= (uint8_t)((l & 0x0f) << 4);
                y[b].scales[j % 4 + 8] |= (uint8_t)((l >> 4) << 2 * (j / 4));
            }
            y[b].d = mr_f32_to_f16(1.0f / iscale);
        } else {
            y[b].d = mr_f32_to_f16(0.0f);
        }
        /* the codes again, against the rounded scales */
        int sc[16];
        q3_K_scales(y[b].scales, sc);
        for (int j = 0; j < 16; j++) {
            const float d = mr_f16_to_f32(y[b].d) * (float)(int8_t)(sc[j] - 32);
            if (d == 0.0f)
                continue;
            for (int i = 0; i < 16; i++)
                L[16 * j + i] = (int8_t)(mr_k_clamp(mr_k_nearest_int(x[16 * j + i] / d), -4, 3) + 4);
        }
        /* bit 2 of element e's code into bit e / 32 of hmask[e % 32] */
        memset(y[b].hmask, 0, sizeof y[b].hmask);
        for (int e = 0; e < QK_K; e++)
            if (L[e] > 3) {
                y[b].hmask[e % 32] |= (uint8_t)(1 << (e / 32));
                L[e] = (int8_t)(L[e] - 4);
            }
        for (int h = 0; h < 2; h++)
            for (int l = 0; l < 32; l++) {
                const int8_t *Lh = L + 128 * h + l;
                y[b].qs[32 * h + l] = (uint8_t)(Lh[0] | Lh[32] << 2 | Lh[64] << 4 | Lh[96] << 6);
            }
    }
}

void mr_dequantize_row_q3_K(const void *src, float *dst, int64_t n)
{
    const block_q3_K *x = src;
    const int64_t nb = n / QK_K;
    for (int64_t b = 0; b < nb; b++) {
        const float d = mr_f16_to_f32(x[b].d);
        int sc[16];
        q3_K_scales(x[b].scales, sc);
        for (int e = 0; e < QK_K; e++) {
            const float dl = d * (float)(sc[e / 16] - 32);
            dst[b * QK_K + e] = dl * (float)(q3_K_code(&x[b], e) - 4);
        }
    }
}

float mr_dot_q3_K_f32(const void *w, const float *x, int64_t n)
{
    float tmp[QK_K], sum = 0.0f;
    for (int64_t b = 0; b < n / QK_K; b++) {
        mr_dequantize_row_q3_K((const block_q3_K *)w + b, tmp, QK_K);
        float s = 0.0f;
        for (int i = 0; i < QK_K; i++)
            s += tmp[i] * x[b * QK_K + i];
        sum += s;
    }
    return sum;
}

float mr_dot_q3_K_q8_K(const void *w, const void *xq, int64_t n)
{
    const block_q3_K *x = w;
    const block_q8_K *y = xq;
    const int64_t nb = n / QK_K;
    /* ggml keeps 8 running float sums, lane l taking elements l mod 8 */
    float sums[8] = {0};
    for (int64_t b = 0; b < nb; b++) {
        int sc[16];
        q3_K_scales(x[b].scales, sc);
        int32_t lanes[8] = {0};
        for (int e = 0; e < QK_K; e++)
            lanes[e % 8] += (sc[e / 16] - 32) * (y[b].qs[e] * (q3_K_code(&x[b], e) - 4));
        const float d = mr_f16_to_f32(x[b].d) * y[b].d;
        for (int l = 0; l < 8; l++)
            sums[l] += d * (float)lanes[l];
    }
    float sum = 0.0f;
    for (int l = 0; l < 8; l++)
        sum += sums[l];
    return sum;
}
