/* arm_neon_more.c - the further formats' integer dots, NEON + the ARMv8.2
 * dot product (SDOT): MXFP4, IQ4_NL and Q5_0 with Q8_0 activations, Q4_1
 * and Q5_1 with Q8_1, IQ4_XS with Q8_K.
 *
 * Per 32 weights: the 16 nibble bytes split into the low nibbles (elements
 * 0..15) and high nibbles (16..31); a table lookup (tbl) turns codes into
 * signed weights (MXFP4: the doubled e2m1 values in [-12, 12]; IQ4_NL /
 * IQ4_XS: the codebook in [-127, 113]), or the codes are the weights (Q4_1,
 * Q5_1 in [0, 31]; Q5_0 minus 16, in [-16, 15]), the fifth bits spread from
 * qh by a bit test.  sdot adds 4 products w * a into each int32 lane
 * (exact); the block sum meets the scales as ggml forms them, and Q4_1 /
 * Q5_1 add their m * s in a scalar sum. */
#include "kernels.h"

#include <arm_neon.h>
#include <string.h>

/* byte j = 0xff if bit j of the 16 bits h is set */
static inline uint8x16_t bits16_to_bytes(uint32_t h)
{
    static const uint8_t bit[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    const uint8x16_t v = vcombine_u8(vdup_n_u8((uint8_t)h), vdup_n_u8((uint8_t)(h >> 8)));
    return vtstq_u8(v, vld1q_u8(bit));
}

/* the int32 lanes of one 32-weight block: w (lo, hi halves) . a */
static inline int32x4_t dot32(int8x16_t wlo, int8x16_t whi, const int8_t *a)
{
    const int32x4_t p = vdotq_s32(vdupq_n_s32(0), wlo, vld1q_s8(a));
    return vdotq_s32(p, whi, vld1q_s8(a + 16));
}

/* codebook weights of 16 nibble bytes: lo = elements 0..15, hi = 16..31 */
static inline void lookup32(int8x16_t tbl, const uint8_t *qs, int8x16_t *lo, int8x16_t *hi)
{
    const uint8x16_t q = vld1q_u8(qs);
    *lo = vqtbl1q_s8(tbl, vandq_u8(q, vdupq_n_u8(0x0f)));
    *hi = vqtbl1q_s8(tbl, vshrq_n_u8(q, 4));
}

/* 5-bit codes in [0, 31] of a Q5 block's qs and qh */
static inline void codes5(const uint8_t *qs, const uint8_t qh[4], uint8x16_t *lo, uint8x16_t *hi)
{
    uint32_t h;
    memcpy(&h, qh, 4);
    const uint8x16_t q = vld1q_u8(qs), b4 = vdupq_n_u8(0x10);
    *lo = vorrq_u8(vandq_u8(q, vdupq_n_u8(0x0f)), vandq_u8(bits16_to_bytes(h & 0xffff), b4));
    *hi = vorrq_u8(vshrq_n_u8(q, 4), vandq_u8(bits16_to_bytes(h >> 16), b4));
}

static float mr_dot_mxfp4_q8_0_neon(const void *w, const void *act, int64_t n)
{
    const block_mxfp4 *x = w;
    const block_q8_0 *a = act;
    const int8x16_t tbl = vld1q_s8(mr_kvalues_mxfp4);
    float32x4_t acc = vdupq_n_f32(0.0f);
    for (int64_t i = 0; i < n / QK8_0; i++) {
        int8x16_t lo, hi;
        lookup32(tbl, x[i].qs, &lo, &hi);
        const float d = mr_f16_to_f32(a[i].d) * mr_e8m0_to_f32_half(x[i].e);
        acc = vmlaq_n_f32(acc, vcvtq_f32_s32(dot32(lo, hi, a[i].qs)), d);
    }
    return vaddvq_f32(acc);
}

static float mr_dot_iq4_nl_q8_0_neon(const void *w, const void *act, int64_t n)
{
    const block_iq4_nl *x = w;
    const block_q8_0 *a = act;
    const int8x16_t tbl = vld1q_s8(mr_kvalues_iq4nl);
    float32x4_t acc = vdupq_n_f32(0.0f);
    for (int64_t i = 0; i < n / QK8_0; i++) {
        int8x16_t lo, hi;
        lookup32(tbl, x[i].qs, &lo, &hi);
        const float d = mr_f16_to_f32(a[i].d) * mr_f16_to_f32(x[i].d);
        acc = vmlaq_n_f32(acc, vcvtq_f32_s32(dot32(lo, hi, a[i].qs)), d);
    }
    return vaddvq_f32(acc);
}

static float mr_dot_q5_0_q8_0_neon(const void *w, const void *act, int64_t n)
{
    const block_q5_0 *x = w;
    const block_q8_0 *a = act;
    const int8x16_t sixteen = vdupq_n_s8(16);
    float32x4_t acc = vdupq_n_f32(0.0f);
    for (int64_t i = 0; i < n / QK8_0; i++) {
        uint8x16_t lo, hi;
        codes5(x[i].qs, x[i].qh, &lo, &hi);
        /* w = q5 - 16 */
        const int8x16_t wlo = vsubq_s8(vreinterpretq_s8_u8(lo), sixteen);
        const int8x16_t whi = vsubq_s8(vreinterpretq_s8_u8(hi), sixteen);
        const float d = mr_f16_to_f32(x[i].d) * mr_f16_to_f32(a[i].d);
        acc = vmlaq_n_f32(acc, vcvtq_f32_s32(dot32(wlo, whi, a[i].qs)), d);
    }
    return vaddvq_f32(acc);
}

/* Q4_1 (q5 = 0) / Q5_1 (q5 = 1) with Q8_1 */
static inline float dot_min_q8_1(const int q5, const void *w, const void *act, int64_t n)
{
    const block_q8_1 *a = act;
    float32x4_t acc = vdupq_n_f32(0.0f);
    float msum = 0.0f;
    for (int64_t i = 0; i < n / QK8_1; i++) {
        uint8x16_t lo, hi;
        float dw, mw;
        if (q5) {
            const block_q5_1 *b = (const block_q5_1 *)w + i;
            codes5(b->qs, b->qh, &lo, &hi);
            dw = mr_f16_to_f32(b->d);
            mw = mr_f16_to_f32(b->m);
        } else {
            const block_q4_1 *b = (const block_q4_1 *)w + i;
            const uint8x16_t q = vld1q_u8(b->qs);
            lo = vandq_u8(q, vdupq_n_u8(0x0f));
            hi = vshrq_n_u8(q, 4);
            dw = mr_f16_to_f32(b->d);
            mw = mr_f16_to_f32(b->m);
        }
        const int32x4_t p = dot32(vreinterpretq_s8_u8(lo), vreinterpretq_s8_u8(hi), a[i].qs);
        acc = vmlaq_n_f32(acc, vcvtq_f32_s32(p), dw * mr_f16_to_f32(a[i].d));
        msum += mw * mr_f16_to_f32(a[i].s);
    }
    return vaddvq_f32(acc) + msum;
}

static float mr_dot_q4_1_q8_1_neon(const void *w, const void *act, int64_t n)
{
    return dot_min_q8_1(0, w, act, n);
}

static float mr_dot_q5_1_q8_1_neon(const void *w, const void *act, int64_t n)
{
    return dot_min_q8_1(1, w, act, n);
}

static float mr_dot_iq4_xs_q8_K_neon(const void *w, const void *act, int64_t n)
{
    const block_iq4_xs *x = w;
    const block_q8_K *a = act;
    const int8x16_t tbl = vld1q_s8(mr_kvalues_iq4nl);
    float32x4_t acc = vdupq_n_f32(0.0f);
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d4d8 = mr_f16_to_f32(x[i].d) * a[i].d;
        for (int ib = 0; ib < 8; ib++) {
            const int ls = ((x[i].scales_l[ib / 2] >> 4 * (ib % 2)) & 0x0f) |
                           ((x[i].scales_h >> 2 * ib) & 3) << 4;
            int8x16_t lo, hi;
            lookup32(tbl, x[i].qs + 16 * ib, &lo, &hi);
            acc = vmlaq_n_f32(acc, vcvtq_f32_s32(dot32(lo, hi, a[i].qs + 32 * ib)),
                              d4d8 * (float)(ls - 32));
        }
    }
    return vaddvq_f32(acc);
}

void mr_kernels_init_neon_more(mr_kernels *k)
{
    k->vec_dot[MR_TYPE_MXFP4] = mr_dot_mxfp4_q8_0_neon;
    k->vec_dot[MR_TYPE_IQ4_NL] = mr_dot_iq4_nl_q8_0_neon;
    k->vec_dot[MR_TYPE_Q5_0] = mr_dot_q5_0_q8_0_neon;
    k->vec_dot[MR_TYPE_Q4_1] = mr_dot_q4_1_q8_1_neon;
    k->vec_dot[MR_TYPE_Q5_1] = mr_dot_q5_1_q8_1_neon;
    k->vec_dot[MR_TYPE_IQ4_XS] = mr_dot_iq4_xs_q8_K_neon;
}

/* F16 KV cache rows widened to f32 for attention, 8 at a time with FCVTL
 * (exact), the tail one lane at a time through the same conversion. */
void mr_f16_kv_to_f32_neon(const void *src, float *dst, int64_t n)
{
    const uint8_t *p = src;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const float16x8_t h = vreinterpretq_f16_u8(vld1q_u8(p + 2 * i));
        vst1q_f32(dst + i, vcvt_f32_f16(vget_low_f16(h)));
        vst1q_f32(dst + i + 4, vcvt_high_f32_f16(h));
    }
    for (; i < n; i++) {
        uint16_t u;
        memcpy(&u, p + 2 * i, 2);
        dst[i] = vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(u))), 0);
    }
}
