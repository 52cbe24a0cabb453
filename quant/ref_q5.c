/* ref_q5.c - scalar references for Q5_0 and Q5_1 (5-bit weights: the low
 * 4 bits as Q4_0's nibbles, bit 4 of element j in bit j of the 32-bit
 * little-endian qh).  Q5_0: x = (q - 16) * d, dotted with Q8_0; Q5_1:
 * x = q * d + m, dotted with Q8_1.  Rounding and the dots' operation order
 * follow ggml's quantize_row_q5_{0,1}_ref and ggml_vec_dot_q5_0_q8_0 /
 * ggml_vec_dot_q5_1_q8_1 exactly. */
#include "types.h"

#include <float.h>
#include <math.h>
#include <string.h>

/* q5 of element j (j < 16) and j + 16 of a block's qs/qh */
static inline void q5_pair(const uint8_t *qs, uint32_t qh, int j, int *q0, int *q1)
{
    *q0 = (qs[j] & 0x0f) | (int)((qh >> j) & 1) << 4;
    *q1 = (qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
}

static inline uint32_t load_qh(const uint8_t qh[4])
{
    return (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
}

static inline void store_qh(uint8_t qh[4], uint32_t v)
{
    for (int k = 0; k < 4; k++)
        qh[k] = (uint8_t)(v >> 8 * k);
}

/* ------------------------------------------------------------ Q5_0 */

void mr_quantize_row_q5_0(const float *src, void *dst, int64_t n)
{
    block_q5_0 *y = dst;
    const int64_t nb = n / QK5_0;
    for (int64_t b = 0; b < nb; b++) {
        const float *x = src + b * QK5_0;
        float amax = 0.0f, max = 0.0f; /* max: the signed value of largest |x| */
        for (int j = 0; j < QK5_0; j++)
            if (amax < fabsf(x[j])) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        const float d = max / -16.0f; /* the extreme value maps to q = 0 */
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = mr_f32_to_f16(d);
        uint32_t qh = 0;
        for (int j = 0; j < QK5_0 / 2; j++) {
            int q0 = (int8_t)(x[j] * id + 16.5f), q1 = (int8_t)(x[j + 16] * id + 16.5f);
            if (q0 > 31) q0 = 31;
            if (q1 > 31) q1 = 31;
            y[b].qs[j] = (uint8_t)((q0 & 0x0f) | (q1 & 0x0f) << 4);
            qh |= (uint32_t)(q0 >> 4 & 1) << j | (uint32_t)(q1 >> 4 & 1) << (j + 16);
        }
        store_qh(y[b].qh, qh);
    }
}

void mr_dequantize_row_q5_0(const void *src, float *dst, int64_t n)
{
    const block_q5_0 *x = src;
    const int64_t nb = n / QK5_0;
    for (int64_t b = 0; b < nb; b++) {
        const float d = mr_f16_to_f32(x[b].d);
        const uint32_t qh = load_qh(x[b].qh);
        for (int j = 0; j < QK5_0 / 2; j++) {
            int q0, q1;
            q5_pair(x[b].qs, qh, j, &q0, &q1);
            dst[b * QK5_0 + j] = (float)(q0 - 16) * d;
            dst[b * QK5_0 + j + 16] = (float)(q1 - 16) * d;
        }
    }
}

float mr_dot_q5_0_f32(const void *w, const float *x, int64_t n)
{
    const block_q5_0 *b = w;
    const int64_t nb = n / QK5_0;
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        const float *xb = x + i * QK5_0;
        const uint32_t qh = load_qh(b[i].qh);
        float s = 0.0f;
        for (int j = 0; j < QK5_0 / 2; j++) {
            int q0, q1;
            q5_pair(b[i].qs, qh, j, &q0, &q1);
            s += (float)(q0 - 16) * xb[j];
            s += (float)(q1 - 16) * xb[j + 16];
        }
        sum += s * mr_f16_to_f32(b[i].d);
    }
    return sum;
}

float mr_dot_q5_0_q8_0(const void *w, const void *xq, int64_t n)
{
    const block_q5_0 *a = w;
    const block_q8_0 *b = xq;
    const int64_t nb = n / QK5_0;
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        const uint32_t qh = load_qh(a[i].qh);
        int32_t s = 0; /* |s| <= 32 * 16 * 127 */
        for (int j = 0; j < QK5_0 / 2; j++) {
            int q0, q1;
            q5_pair(a[i].qs, qh, j, &q0, &q1);
            s += (q0 - 16) * (int32_t)b[i].qs[j];
            s += (q1 - 16) * (int32_t)b[i].qs[j + 16];
        }
        sum += (mr_f16_to_f32(a[i].d) * mr_f16_to_f32(b[i].d)) * (float)s;
    }
    return sum;
}

/* ------------------------------------------------------------ Q5_1 */

void mr_quantize_row_q5_1(const float *src, void *dst, int64_t n)
{
    block_q5_1 *y = dst;
    const int64_t nb = n / QK5_1;
    for (int64_t b = 0; b < nb; b++) {
        const float *x = src + b * QK5_1;
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < QK5_1; j++) {
            if (x[j] < min) min = x[j];
            if (x[j] > max) max = x[j];
        }
        const float d = (max - min) / 31.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = mr_f32_to_f16(d);
        y[b].m = mr_f32_to_f16(min);
        uint32_t qh = 0;
        for (int j = 0; j < QK5_1 / 2; j++) {
            /* in [0, 31.5): truncation after + 0.5 rounds, no clamp needed */
            const int q0 = (uint8_t)((x[j] - min) * id + 0.5f);
            const int q1 = (uint8_t)((x[j + 16] - min) * id + 0.5f);
            y[b].qs[j] = (uint8_t)((q0 & 0x0f) | (q1 & 0x0f) << 4);
            qh |= (uint32_t)(q0 >> 4 & 1) << j | (uint32_t)(q1 >> 4 & 1) << (j + 16);
        }
        store_qh(y[b].qh, qh);
    }
}

void mr_dequantize_row_q5_1(const void *src, float *dst, int64_t n)
{
    const block_q5_1 *x = src;
    const int64_t nb = n / QK5_1;
    for (int64_t b = 0; b < nb; b++) {
        const float d = mr_f16_to_f32(x[b].d), m = mr_f16_to_f32(x[b].m);
        const uint32_t qh = load_qh(x[b].qh);
        for (int j = 0; j < QK5_1 / 2; j++) {
            int q0, q1;
            q5_pair(x[b].qs, qh, j, &q0, &q1);
            dst[b * QK5_1 + j] = (float)q0 * d + m;
            dst[b * QK5_1 + j + 16] = (float)q1 * d + m;
        }
    }
}

float mr_dot_q5_1_f32(const void *w, const float *x, int64_t n)
{
    const block_q5_1 *b = w;
    const int64_t nb = n / QK5_1;
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        const float *xb = x + i * QK5_1;
        const uint32_t qh = load_qh(b[i].qh);
        float s = 0.0f, sx = 0.0f;
        for (int j = 0; j < QK5_1 / 2; j++) {
            int q0, q1;
            q5_pair(b[i].qs, qh, j, &q0, &q1);
            s += (float)q0 * xb[j];
            s += (float)q1 * xb[j + 16];
            sx += xb[j] + xb[j + 16];
        }
        sum += s * mr_f16_to_f32(b[i].d) + sx * mr_f16_to_f32(b[i].m);
    }
    return sum;
}

float mr_dot_q5_1_q8_1(const void *w, const void *xq, int64_t n)
{
    const block_q5_1 *a = w;
    const block_q8_1 *b = xq;
    const int64_t nb = n / QK5_1;
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        const uint32_t qh = load_qh(a[i].qh);
        int32_t s = 0; /* |s| <= 32 * 31 * 127 */
        for (int j = 0; j < QK5_1 / 2; j++) {
            int q0, q1;
            q5_pair(a[i].qs, qh, j, &q0, &q1);
            s += q0 * (int32_t)b[i].qs[j];
            s += q1 * (int32_t)b[i].qs[j + 16];
        }
        sum += (mr_f16_to_f32(a[i].d) * mr_f16_to_f32(b[i].d)) * (float)s +
               mr_f16_to_f32(a[i].m) * mr_f16_to_f32(b[i].s);
    }
    return sum;
}
