/* arm_neon_k.c - the K-quants (Q4_K, Q5_K, Q6_K) dotted with Q8_K
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

void mr_kernels_init_neon_k(mr_kernels *k)
{
    k->vec_dot[MR_TYPE_Q4_K] = vec_dot_q4_K_q8_K_neon;
    k->vec_dot[MR_TYPE_Q5_K] = vec_dot_q5_K_q8_K_neon;
    k->vec_dot[MR_TYPE_Q6_K] = vec_dot_q6_K_q8_K_neon;
}
