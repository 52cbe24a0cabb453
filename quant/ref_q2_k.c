/* ref_q2_k.c - scalar reference for Q2_K (block_q2_K, see types_more.h):
 * x = d * sc[j] * q - dmin * m[j] per sub-block j of 16, q in [0, 3].
 * Quantization is ggml's quantize_row_q2_K_ref (what llama-quantize runs
 * without an importance matrix): per sub-block a scale and min fit with
 * weights |x| and mean absolute error, then 4-bit scales and mins against
 * two f16 super-scales, then the codes re-picked.  Every float operation is
 * ggml's, in ggml's order; the dot is ggml_vec_dot_q2_K_q8_K's. */
#include "ref_k_common.h"
#include "types.h"

#include <math.h>
#include <string.h>

/* ggml's make_qkx2_quants with use_mad = true (errors |diff|, not diff^2):
 * a scale/min grid search of nstep + 1 candidates around the range fit,
 * each refit in closed form by weighted least squares.  Returns the scale
 * and stores the_min = -min (>= 0).  (ref_q4_k.c has the use_mad = false
 * twin.) */
static float fit_scale_min_mad(int n, int nmax, const float *x, const float *weights, uint8_t *L,
                               float *the_min, float rmin, float rdelta, int nstep)
{
    uint8_t Laux[16];
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
    if (max == min) {
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
        best_error += weights[i] * fabsf(diff);
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
        const float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0.0f) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0.0f) {
                this_min = 0.0f;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0.0f;
            for (int i = 0; i < n; i++) {
                const float diff = this_scale * (float)Laux[i] + this_min - x[i];
                cur_error += weights[i] * fabsf(diff);
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

void mr_quantize_row_q2_K(const float *src, void *dst, int64_t n)
{
    block_q2_K *y = dst;
    const int64_t nb = n / QK_K;
    for (int64_t b = 0; b < nb; b++) {
        const float *x = src + b * QK_K;
        uint8_t L[QK_K];
        float scales[16], mins[16], w[16];
        float max_scale = 0.0f, max_min = 0.0f;
        for (int j = 0; j < 16; j++) {
            for (int l = 0; l < 16; l++)
                w[l] = fabsf(x[16 * j + l]);
            scales[j] = fit_scale_min_mad(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], -0.5f, 0.1f, 15);
            if (scales[j] > max_scale)
                max_scale = scales[j];
            if (mins[j] > max_min)
                max_min = mins[j];
        }
        if (max_scale > 0.0f) {
            const float iscale = 15.0f / max_scale;
            for (int j = 0; j < 16; j++)
                y[b].scales[j] = (uint8_t)mr_k_nearest_int(iscale * scales[j]);
            y[b].d = mr_f32_to_f16(max_scale / 15.0f);
        } else {
            memset(y[b].scales, 0, sizeof y[b].scales);
            y[b].d = mr_f32_to_f16(0.0f);
        }
        if (max_min > 0.0f) {
            const float iscale = 15.0f / max_min;
            for (int j = 0; j < 16; j++)
                y[b].scales[j] |= (uint8_t)(mr_k_nearest_int(iscale * mins[j]) << 4);
            y[b].dmin = mr_f32_to_f16(max_min / 15.0f);
        } else {
            y[b].dmin = mr_f32_to_f16(0.0f);
        }
        /* the codes again, against the rounded scales and mins */
        for (int j = 0; j < 16; j++) {
            const float d = mr_f16_to_f32(y[b].d) * (float)(y[b].scales[j] & 0x0f);
            if (d == 0.0f)
                continue;
            const float dm = mr_f16_to_f32(y[b].dmin) * (float)(y[b].scales[j] >> 4);
            for (int i = 0; i < 16; i++)
                L[16 * j + i] = (uint8_t)mr_k_clamp(mr_k_nearest_int((x[16 * j + i] + dm) / d), 0, 3);
        }
        for (int h = 0; h < 2; h++)
            for (int l = 0; l < 32; l++) {
                const uint8_t *Lh = L + 128 * h + l;
                y[b].qs[32 * h + l] = (uint8_t)(Lh[0] | Lh[32] << 2 | Lh[64] << 4 | Lh[96] << 6);
            }
    }
}

void mr_dequantize_row_q2_K(const void *src, float *dst, int64_t n)
{
    const block_q2_K *x = src;
    const int64_t nb = n / QK_K;
    for (int64_t b = 0; b < nb; b++) {
        const float d = mr_f16_to_f32(x[b].d), dmin = mr_f16_to_f32(x[b].dmin);
        float *y = dst + b * QK_K;
        /* element e = 128 h + 32 k + l: bits 2k of qs[32 h + l], sub-block e / 16 */
        for (int e = 0; e < QK_K; e++) {
            const int h = e / 128, k = e % 128 / 32, l = e % 32;
            const uint8_t sc = x[b].scales[e / 16];
            const float dl = d * (float)(sc & 0x0f), ml = dmin * (float)(sc >> 4);
            y[e] = dl * (float)((x[b].qs[32 * h + l] >> 2 * k) & 3) - ml;
        }
    }
}

float mr_dot_q2_K_f32(const void *w, const float *x, int64_t n)
{
    float tmp[QK_K], sum = 0.0f;
    for (int64_t b = 0; b < n / QK_K; b++) {
        mr_dequantize_row_q2_K((const block_q2_K *)w + b, tmp, QK_K);
        float s = 0.0f;
        for (int i = 0; i < QK_K; i++)
            s += tmp[i] * x[b * QK_K + i];
        sum += s;
    }
    return sum;
}

float mr_dot_q2_K_q8_K(const void *w, const void *xq, int64_t n)
{
    const block_q2_K *x = w;
    const block_q8_K *y = xq;
    const int64_t nb = n / QK_K;
    float sum = 0.0f;
    for (int64_t b = 0; b < nb; b++) {
        /* the mins' term through the activations' 16-sums */
        int summs = 0;
        for (int j = 0; j < 16; j++)
            summs += y[b].bsums[j] * (x[b].scales[j] >> 4);
        const float dall = y[b].d * mr_f16_to_f32(x[b].d);
        const float dmin = y[b].d * mr_f16_to_f32(x[b].dmin);
        int isum = 0; /* |isum| <= 256 * 3 * 127 * 15 */
        for (int e0 = 0; e0 < QK_K; e0 += 16) {
            const int h = e0 / 128, k = e0 % 128 / 32, l0 = e0 % 32;
            int s = 0;
            for (int l = l0; l < l0 + 16; l++)
                s += y[b].qs[e0 + l - l0] * ((x[b].qs[32 * h + l] >> 2 * k) & 3);
            isum += (x[b].scales[e0 / 16] & 0x0f) * s;
        }
        sum += dall * (float)isum - dmin * (float)summs;
    }
    return sum;
}
