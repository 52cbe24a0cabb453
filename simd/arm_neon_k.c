/* arm_neon_k.c - the K-quants (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K) dotted with Q8_K
 * activations, AArch64 NEON + dot product (SDOT).  Compiled with
 * -march=armv8.2-a+dotprod into the NEON library; installed by
 * mr_kernels_init_neon only after the dispatcher has seen HWCAP_ASIMDDP.
 *
 * Per super-block (256 weights) the weights are widened to signed bytes
 * (Q4_K nibble in [0, 15], Q5_K in [0, 31], Q6_K q - 32 in [-32, 31]) and
 * SDOT adds each group of 4 weight x activation products into an int32
 * lane; a sub-block's 4 lanes are then scaled by its integer scale, so
 * the block's int32 sums are exact (|lane| < 2^26).  Q4_K/Q5_K's mins
 * enter through the Q8_K group sums: sum_j m[j] (bsums[2j] + bsums[2j+1]).
 * Q2_K (q in [0, 3]) and Q3_K (q - 4 in [-4, 3]) have 16 sub-blocks of 16
 * (their section below); Q2_K's mins meet the 16 group
 * sums one to one.
 * Floats, per block in block order: acc += float(sumi) * (d_w d_a) in 4
 * lanes, minus (dmin_w d_a) * summ in one scalar; the result is the
 * lanes' sum plus that scalar.  Within 1e-5 of the sum of |terms| of the
 * reference (tests/test_kernels_k.c); there is no NEON gemm for these
 * yet, so the driver calls vec_dot per (row, token) and every batch and
 * split gives the same bits.
 *
 * Layouts are in quant/types.h; every load is a byte load inside the block.
 */
#include "kernels.h"

#include <arm_neon.h>
#include <string.h>

#if !defined(__aarch64__) || !defined(__ARM_FEATURE_DOTPROD)
#error "arm_neon_k.c must be compiled for AArch64 with -march=armv8.2-a+dotprod"
#endif

#define ALWAYS_INLINE static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 8")

ALWAYS_INLINE float f16_to_f32(uint16_t h)
{
    __fp16 f;
    memcpy(&f, &h, 2);
    return (float)f;
}

/* The 6-bit scales sc[0..7] and mins m[0..7] of a Q4_K/Q5_K block from
 * their 12 packed bytes (the layout is spelled out in quant/ref_q4_k.c). */
ALWAYS_INLINE void k4_scales(const uint8_t *packed, uint8_t sc[8], uint8_t m[8])
{
    uint32_t u[3];
    memcpy(u, packed, 12);
    const uint32_t s_lo = u[0] & 0x3f3f3f3fu, m_lo = u[1] & 0x3f3f3f3fu;
    const uint32_t s_hi = (u[2] & 0x0f0f0f0fu) | (((u[0] >> 6) & 0x03030303u) << 4);
    const uint32_t m_hi = ((u[2] >> 4) & 0x0f0f0f0fu) | (((u[1] >> 6) & 0x03030303u) << 4);
    memcpy(sc, &s_lo, 4);
    memcpy(sc + 4, &s_hi, 4);
    memcpy(m, &m_lo, 4);
    memcpy(m + 4, &m_hi, 4);
}

/* sum_j m[j] * (bsums[2j] + bsums[2j + 1]), exact: |.| <= 8 * 63 * 4064 */
ALWAYS_INLINE int32_t mins_dot(const int16_t *bsums, const uint8_t m[8])
{
    /* pair sums of the 16 group sums, in [-4064, 4064] */
    const int16x8_t bs = vpaddq_s16(vld1q_s16(bsums), vld1q_s16(bsums + 8));
    const int16x8_t mv = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(m)));
    int32x4_t p = vmull_s16(vget_low_s16(bs), vget_low_s16(mv));
    p = vmlal_high_s16(p, bs, mv);
    return vaddvq_s32(p);
}

/* Q4_K (five = 0) and Q5_K (five = 1): both store d, dmin, scales[12],
 * then Q5_K's qh[32], then the 128 bytes of nibbles. */
ALWAYS_INLINE float dot_q45_K(const int five, const void *w, const void *act, int64_t n)
{
    const int64_t nb = n / QK_K;
    const size_t bb = five ? sizeof(block_q5_K) : sizeof(block_q4_K);
    const uint8_t *wb = (const uint8_t *)w;
    const block_q8_K *a = (const block_q8_K *)act;
    const uint8x16_t m4 = vdupq_n_u8(0x0f), b4 = vdupq_n_u8(0x10);
    float32x4_t acc = vdupq_n_f32(0.0f);
    float accm = 0.0f;
    for (int64_t b = 0; b < nb; b++, wb += bb) {
        const block_q4_K *x4 = (const block_q4_K *)wb;
        const block_q5_K *x5 = (const block_q5_K *)wb;
        const uint8_t *qs = five ? x5->qs : x4->qs;
        uint8_t sc[8], m[8];
        k4_scales(x4->scales, sc, m);
        uint8x16_t qh0 = vdupq_n_u8(0), qh1 = qh0;
        if (five) {
            qh0 = vld1q_u8(x5->qh);
            qh1 = vld1q_u8(x5->qh + 16);
        }
        const int8_t *q8 = a[b].qs;
        int32x4_t sumi = vdupq_n_s32(0);
        UNROLL
        for (int c = 0; c < 4; c++) {
            const uint8x16_t q0 = vld1q_u8(qs + 32 * c), q1 = vld1q_u8(qs + 32 * c + 16);
            /* sub-block 2c: low nibbles; 2c + 1: high nibbles */
            uint8x16_t l0 = vandq_u8(q0, m4), l1 = vandq_u8(q1, m4);
            uint8x16_t h0 = vshrq_n_u8(q0, 4), h1 = vshrq_n_u8(q1, 4);
            if (five) { /* bit 2c (low) / 2c + 1 (high) of qh[l] as bit 4 */
                const uint8x16_t bl = vdupq_n_u8((uint8_t)(1u << (2 * c)));
                const uint8x16_t bh = vdupq_n_u8((uint8_t)(2u << (2 * c)));
                l0 = vorrq_u8(l0, vandq_u8(vtstq_u8(qh0, bl), b4));
                l1 = vorrq_u8(l1, vandq_u8(vtstq_u8(qh1, bl), b4));
                h0 = vorrq_u8(h0, vandq_u8(vtstq_u8(qh0, bh), b4));
                h1 = vorrq_u8(h1, vandq_u8(vtstq_u8(qh1, bh), b4));
            }
            /* 4 lanes of sums of 4 products each, per sub-block (exact) */
            int32x4_t pl = vdotq_s32(vdupq_n_s32(0), vreinterpretq_s8_u8(l0), vld1q_s8(q8 + 64 * c));
            pl = vdotq_s32(pl, vreinterpretq_s8_u8(l1), vld1q_s8(q8 + 64 * c + 16));
            int32x4_t ph = vdotq_s32(vdupq_n_s32(0), vreinterpretq_s8_u8(h0), vld1q_s8(q8 + 64 * c + 32));
            ph = vdotq_s32(ph, vreinterpretq_s8_u8(h1), vld1q_s8(q8 + 64 * c + 48));
            sumi = vmlaq_n_s32(sumi, pl, sc[2 * c]);
            sumi = vmlaq_n_s32(sumi, ph, sc[2 * c + 1]);
        }
        const int32_t summ = mins_dot(a[b].bsums, m);
        const float d = f16_to_f32(x4->d) * a[b].d, dmin = f16_to_f32(x4->dmin) * a[b].d;
        acc = vaddq_f32(acc, vmulq_n_f32(vcvtq_f32_s32(sumi), d));
        accm -= dmin * (float)summ;
    }
    return vaddvq_f32(acc) + accm;
}

static float vec_dot_q4_K_q8_K_neon(const void *w, const void *act, int64_t n)
{
    return dot_q45_K(0, w, act, n);
}

static float vec_dot_q5_K_q8_K_neon(const void *w, const void *act, int64_t n)
{
    return dot_q45_K(1, w, act, n);
}

/* Q6_K: for half h, weight 128h + 32k + l (l < 32) has its low 4 bits in
 * ql[64h + 32 (k & 1) + l] (low nibble for k < 2, high for k >= 2) and its
 * top 2 in bits 2k, 2k + 1 of qh[32h + l]; 16 weights share scales[j]. */
static float vec_dot_q6_K_q8_K_neon(const void *w, const void *act, int64_t n)
{
    const int64_t nb = n / QK_K;
    const block_q6_K *x = (const block_q6_K *)w;
    const block_q8_K *a = (const block_q8_K *)act;
    const uint8x16_t m4 = vdupq_n_u8(0x0f), m3 = vdupq_n_u8(0x03), m30 = vdupq_n_u8(0x30);
    const int8x16_t off = vdupq_n_s8(32);
    float32x4_t acc = vdupq_n_f32(0.0f);
    for (int64_t b = 0; b < nb; b++) {
        int32x4_t sumi = vdupq_n_s32(0);
        UNROLL
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = x[b].ql + 64 * h, *qh = x[b].qh + 32 * h;
            const int8_t *q8 = a[b].qs + 128 * h, *sc = x[b].scales + 8 * h;
            const uint8x16_t lq[4] = {vld1q_u8(ql), vld1q_u8(ql + 16), vld1q_u8(ql + 32), vld1q_u8(ql + 48)};
            const uint8x16_t hq[2] = {vld1q_u8(qh), vld1q_u8(qh + 16)};
            UNROLL
            for (int k = 0; k < 4; k++)
                UNROLL
                for (int s = 0; s < 2; s++) { /* weights 32k + 16s .. + 15: sub-block 2k + s */
                    const uint8x16_t lo = lq[2 * (k & 1) + s];
                    const uint8x16_t nib = k < 2 ? vandq_u8(lo, m4) : vshrq_n_u8(lo, 4);
                    /* bits 2k, 2k + 1 of qh moved to bits 4-5 */
                    const uint8x16_t hb = k == 0   ? vshlq_n_u8(vandq_u8(hq[s], m3), 4)
                                          : k == 1 ? vandq_u8(vshlq_n_u8(hq[s], 2), m30)
                                          : k == 2 ? vandq_u8(hq[s], m30)
                                                   : vandq_u8(vshrq_n_u8(hq[s], 2), m30);
                    /* q - 32 in [-32, 31] */
                    const int8x16_t q = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(nib, hb)), off);
                    const int32x4_t p = vdotq_s32(vdupq_n_s32(0), q, vld1q_s8(q8 + 32 * k + 16 * s));
                    sumi = vmlaq_n_s32(sumi, p, sc[2 * k + s]);
                }
        }
        const float d = f16_to_f32(x[b].d) * a[b].d;
        acc = vaddq_f32(acc, vmulq_n_f32(vcvtq_f32_s32(sumi), d));
    }
    return vaddvq_f32(acc);
}

/* ------------------------------------------------------------ Q2_K, Q3_K */

/* Both keep 16 sub-blocks of 16 weights.  Weight 128h + 32k + l has its 2
 * low bits in bits 2k, 2k + 1 of qs[32h + l]: shifting half h's 32 bytes
 * right by 2k gives sub-blocks 8h + 2k (bytes 0..15) and 8h + 2k + 1
 * (bytes 16..31).  Per sub-block j, SDOT leaves 4 int32 partial sums p_j;
 * four of them fold into one vector of sub-block sums by pairwise adds
 *   vpaddq(vpaddq(p_j, p_j+1), vpaddq(p_j+2, p_j+3)) = [S_j .. S_j+3]
 * which meets the sub-block scales as a vector multiply-add.  All int32
 * sums are exact (|sumi| <= 256 * 4 * 127 * 32 < 2^23). */

/* The 4 sub-block sums S_4g .. S_4g+3 of a block, w[j] the signed weights
 * of sub-block j, q8 the block's 256 activations. */
ALWAYS_INLINE int32x4_t sums4(const int8x16_t w[4], const int8_t *q8)
{
    int32x4_t p[4];
    UNROLL
    for (int i = 0; i < 4; i++)
        p[i] = vdotq_s32(vdupq_n_s32(0), w[i], vld1q_s8(q8 + 16 * i));
    return vpaddq_s32(vpaddq_s32(p[0], p[1]), vpaddq_s32(p[2], p[3]));
}

/* 16 int8 scales as 4 int32x4 (sub-blocks 0..3, 4..7, ...) */
ALWAYS_INLINE void widen_scales(int8x16_t s8, int32x4_t s[4])
{
    const int16x8_t lo = vmovl_s8(vget_low_s8(s8)), hi = vmovl_high_s8(s8);
    s[0] = vmovl_s16(vget_low_s16(lo));
    s[1] = vmovl_high_s16(lo);
    s[2] = vmovl_s16(vget_low_s16(hi));
    s[3] = vmovl_high_s16(hi);
}

/* Q2_K: x = d sc[j] q - dmin m[j], q in [0, 3], sc = scales[j] & 15 and
 * m = scales[j] >> 4.  Per block, exactly:
 *   sumi = sum_j sc[j] S_j          (S_j = sum over sub-block j of q a)
 *   summ = sum_j m[j] bsums[j]      (|summ| <= 16 * 15 * 2032)
 * then in floats acc += float(sumi) * (d_w d_a) in 4 lanes and
 * accm -= (dmin_w d_a) * float(summ); the result is the lanes' sum + accm. */
static float vec_dot_q2_K_q8_K_neon(const void *w, const void *act, int64_t n)
{
    const int64_t nb = n / QK_K;
    const block_q2_K *x = (const block_q2_K *)w;
    const block_q8_K *a = (const block_q8_K *)act;
    const uint8x16_t m3 = vdupq_n_u8(3), m4 = vdupq_n_u8(0x0f);
    float32x4_t acc = vdupq_n_f32(0.0f);
    float accm = 0.0f;
    for (int64_t b = 0; b < nb; b++) {
        const uint8x16_t sc8 = vld1q_u8(x[b].scales);
        int32x4_t sc[4];
        widen_scales(vreinterpretq_s8_u8(vandq_u8(sc8, m4)), sc); /* in [0, 15] */
        /* mins m[j] in [0, 15] against the group sums */
        const uint8x16_t mn = vshrq_n_u8(sc8, 4);
        const int16x8_t m_lo = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(mn)));
        const int16x8_t m_hi = vreinterpretq_s16_u16(vmovl_high_u8(mn));
        const int16x8_t bs_lo = vld1q_s16(a[b].bsums), bs_hi = vld1q_s16(a[b].bsums + 8);
        int32x4_t pm = vmull_s16(vget_low_s16(m_lo), vget_low_s16(bs_lo));
        pm = vmlal_high_s16(pm, m_lo, bs_lo);
        pm = vmlal_s16(pm, vget_low_s16(m_hi), vget_low_s16(bs_hi));
        pm = vmlal_high_s16(pm, m_hi, bs_hi);
        const int32_t summ = vaddvq_s32(pm);
        int32x4_t sumi = vdupq_n_s32(0);
        UNROLL
        for (int h = 0; h < 2; h++) {
            const uint8x16_t q0 = vld1q_u8(x[b].qs + 32 * h), q1 = vld1q_u8(x[b].qs + 32 * h + 16);
            UNROLL
            for (int g = 0; g < 2; g++) { /* sub-blocks 8h + 4g .. 8h + 4g + 3: k = 2g, 2g + 1 */
                int8x16_t wq[4];
                UNROLL
                for (int i = 0; i < 2; i++) {
                    const int k = 2 * g + i;
                    /* q in [0, 3]: bits 2k, 2k + 1 */
                    wq[2 * i] = vreinterpretq_s8_u8(vandq_u8(vshlq_u8(q0, vdupq_n_s8((int8_t)(-2 * k))), m3));
                    wq[2 * i + 1] = vreinterpretq_s8_u8(vandq_u8(vshlq_u8(q1, vdupq_n_s8((int8_t)(-2 * k))), m3));
                }
                sumi = vmlaq_s32(sumi, sums4(wq, a[b].qs + 128 * h + 64 * g), sc[2 * h + g]);
            }
        }
        const float d = f16_to_f32(x[b].d) * a[b].d, dmin = f16_to_f32(x[b].dmin) * a[b].d;
        acc = vaddq_f32(acc, vmulq_n_f32(vcvtq_f32_s32(sumi), d));
        accm -= dmin * (float)summ;
    }
    return vaddvq_f32(acc) + accm;
}

/* The 16 Q3_K scales sc[j] - 32 in [-32, 31] from their 12 packed bytes:
 * the low nibble of byte j (j < 8) or the high nibble of byte j - 8, and
 * bits 2 (j / 4), 2 (j / 4) + 1 of byte 8 + j % 4 on top. */
ALWAYS_INLINE int8x16_t q3_K_scales(const uint8_t s[12])
{
    const uint8x8_t l = vld1_u8(s);
    const uint8x16_t lo = vcombine_u8(vand_u8(l, vdup_n_u8(0x0f)), vshr_n_u8(l, 4));
    uint32_t h;
    memcpy(&h, s + 8, 4);
    /* byte j of the vector = byte j % 4 of h, shifted right by 2 (j / 4) */
    static const int8_t shr[16] = {0, 0, 0, 0, -2, -2, -2, -2, -4, -4, -4, -4, -6, -6, -6, -6};
    const uint8x16_t hb = vshlq_u8(vreinterpretq_u8_u32(vdupq_n_u32(h)), vld1q_s8(shr));
    const uint8x16_t sc = vorrq_u8(lo, vshlq_n_u8(vandq_u8(hb, vdupq_n_u8(3)), 4));
    return vsubq_s8(vreinterpretq_s8_u8(sc), vdupq_n_s8(32));
}

/* Q3_K: x = d (sc[j] - 32) (q - 4), q in [0, 7] = the 2 bits as Q2_K's
 * plus 4 where bit 4h + k of hmask[l] is set.  SDOT multiplies signed
 * bytes, so the weights enter as q - 4 in [-4, 3] directly (no offset
 * sum): per block sumi = sum_j (sc[j] - 32) S_j exactly, and
 * acc += float(sumi) * (d_w d_a) in 4 lanes. */
static float vec_dot_q3_K_q8_K_neon(const void *w, const void *act, int64_t n)
{
    const int64_t nb = n / QK_K;
    const block_q3_K *x = (const block_q3_K *)w;
    const block_q8_K *a = (const block_q8_K *)act;
    const uint8x16_t m3 = vdupq_n_u8(3), four = vdupq_n_u8(4);
    float32x4_t acc = vdupq_n_f32(0.0f);
    for (int64_t b = 0; b < nb; b++) {
        int32x4_t sc[4];
        widen_scales(q3_K_scales(x[b].scales), sc);
        const uint8x16_t hm0 = vld1q_u8(x[b].hmask), hm1 = vld1q_u8(x[b].hmask + 16);
        int32x4_t sumi = vdupq_n_s32(0);
        UNROLL
        for (int h = 0; h < 2; h++) {
            const uint8x16_t q0 = vld1q_u8(x[b].qs + 32 * h), q1 = vld1q_u8(x[b].qs + 32 * h + 16);
            UNROLL
            for (int g = 0; g < 2; g++) {
                int8x16_t wq[4];
                UNROLL
                for (int i = 0; i < 2; i++) {
                    const int k = 2 * g + i;
                    const int8x16_t sh = vdupq_n_s8((int8_t)(-2 * k));
                    const uint8x16_t bit = vdupq_n_u8((uint8_t)(1u << (4 * h + k)));
                    /* q - 4 = low 2 bits - (4 where the hmask bit is clear) */
                    const uint8x16_t c0 = vbicq_u8(four, vtstq_u8(hm0, bit));
                    const uint8x16_t c1 = vbicq_u8(four, vtstq_u8(hm1, bit));
                    wq[2 * i] = vreinterpretq_s8_u8(vsubq_u8(vandq_u8(vshlq_u8(q0, sh), m3), c0));
                    wq[2 * i + 1] = vreinterpretq_s8_u8(vsubq_u8(vandq_u8(vshlq_u8(q1, sh), m3), c1));
                }
                sumi = vmlaq_s32(sumi, sums4(wq, a[b].qs + 128 * h + 64 * g), sc[2 * h + g]);
            }
        }
        const float d = f16_to_f32(x[b].d) * a[b].d;
        acc = vaddq_f32(acc, vmulq_n_f32(vcvtq_f32_s32(sumi), d));
    }
    return vaddvq_f32(acc);
}

void mr_kernels_init_neon_k(mr_kernels *k)
{
    k->vec_dot[MR_TYPE_Q2_K] = vec_dot_q2_K_q8_K_neon;
    k->vec_dot[MR_TYPE_Q3_K] = vec_dot_q3_K_q8_K_neon;
    k->vec_dot[MR_TYPE_Q4_K] = vec_dot_q4_K_q8_K_neon;
    k->vec_dot[MR_TYPE_Q5_K] = vec_dot_q5_K_q8_K_neon;
    k->vec_dot[MR_TYPE_Q6_K] = vec_dot_q6_K_q8_K_neon;
}
