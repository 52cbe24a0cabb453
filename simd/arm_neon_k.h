/* arm_neon_k.h - one definition of how a K-quant super-block (Q2_K, Q3_K,
 * Q4_K, Q5_K, Q6_K: 256 weights) meets a Q8_K activation block with NEON
 * SDOT, shared by the vec_dot (arm_neon_k.c) and the gemm
 * (arm_neon_kgemm.c), so that both run the same integer lanes and the same
 * float operations and agree to the bit for every (row, token).
 *
 * A block is taken in 4 chunks of 64 weights (chunk G = weights 64G ..
 * 64G + 63, matched with activations 64G ..), each unpacked into 4 int8x16
 * in activation order (k_chunk).  Its integer sum is 4 int32 lanes
 * (k_chunk_sumi, exact: |lane| < 2^26):
 * - Q4_K/Q5_K/Q6_K: SDOT lane i adds the products of bytes 4i..4i+3 of each
 *   16-byte vector; each sub-block's lanes are multiplied by its integer
 *   scale (Q4_K/Q5_K: 8 sub-blocks of 32, Q6_K: 16 of 16);
 * - Q2_K/Q3_K: 16 sub-blocks of 16, each summed whole (S_j) and folded 4 to a
 *   vector [S_4G .. S_4G+3], which meets the scales as a vector multiply-add
 *   (so lane i holds the sub-blocks j = i mod 4).
 * Q4_K/Q5_K/Q2_K's mins enter through the Q8_K group sums (k_summ).
 * Floats, per block in block order (k_accumulate):
 *   acc += float(sumi) * (d_w d_a) in 4 lanes;  accm -= (dmin_w d_a) * summ
 * and the result is the lanes' sum (FADDP pairs), plus accm for the kinds
 * with mins (k_result).  Layouts are in quant/types.h and types_more.h;
 * every load is a byte load inside the block.
 */
#ifndef MOERUN_SIMD_ARM_NEON_K_H
#define MOERUN_SIMD_ARM_NEON_K_H

#include "kernels.h"

#include <arm_neon.h>
#include <string.h>

#if !defined(__aarch64__) || !defined(__ARM_FEATURE_DOTPROD)
#error "arm_neon_k.h must be compiled for AArch64 with -march=armv8.2-a+dotprod"
#endif

#define ALWAYS_INLINE static inline __attribute__((always_inline))
/* loops over registers must be unrolled for their arrays to stay in them */
#define UNROLL _Pragma("GCC unroll 8")

/* Block kinds; a constant after inlining. */
enum { KQ2, KQ3, KQ4, KQ5, KQ6 };
/* kinds with mins: a dmin term per block */
#define K_MIN(kind) ((kind) == KQ2 || (kind) == KQ4 || (kind) == KQ5)

ALWAYS_INLINE size_t k_block_bytes(const int kind)
{
    return kind == KQ2   ? sizeof(block_q2_K)
           : kind == KQ3 ? sizeof(block_q3_K)
           : kind == KQ4 ? sizeof(block_q4_K)
           : kind == KQ5 ? sizeof(block_q5_K)
                         : sizeof(block_q6_K);
}

ALWAYS_INLINE float f16_to_f32(uint16_t h)
{
    __fp16 f;
    memcpy(&f, &h, 2);
    return (float)f;
}

/* ------------------------------------------------------------ scales */

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

/* 16 int8 scales as 4 int32x4 (sub-blocks 0..3, 4..7, ...) */
ALWAYS_INLINE void widen_scales(int8x16_t s8, int32x4_t s[4])
{
    const int16x8_t lo = vmovl_s8(vget_low_s8(s8)), hi = vmovl_high_s8(s8);
    s[0] = vmovl_s16(vget_low_s16(lo));
    s[1] = vmovl_high_s16(lo);
    s[2] = vmovl_s16(vget_low_s16(hi));
    s[3] = vmovl_high_s16(hi);
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

/* A block's scales, decoded once and used for every token. */
typedef struct {
    float d, dmin;   /* the f16 super-block scales as f32 (dmin: kinds with mins) */
    int32_t sc[16];  /* Q4_K/Q5_K: the 6-bit sc[0..7]; Q6_K: scales[0..15] */
    int32x4_t sv[4]; /* Q2_K: scales[j] & 15; Q3_K: sc[j] - 32; four a vector */
    uint8_t m[16];   /* mins: Q4_K/Q5_K m[0..7] (6-bit), Q2_K scales[j] >> 4 */
} kscales;

ALWAYS_INLINE void k_scales(const int kind, const uint8_t *blk, kscales *s)
{
    if (kind == KQ4 || kind == KQ5) { /* Q5_K starts as Q4_K */
        const block_q4_K *x = (const block_q4_K *)blk;
        uint8_t sc[8];
        k4_scales(x->scales, sc, s->m);
        UNROLL
        for (int j = 0; j < 8; j++)
            s->sc[j] = sc[j];
        s->d = f16_to_f32(x->d);
        s->dmin = f16_to_f32(x->dmin);
    } else if (kind == KQ6) {
        const block_q6_K *x = (const block_q6_K *)blk;
        UNROLL
        for (int j = 0; j < 16; j++)
            s->sc[j] = x->scales[j];
        s->d = f16_to_f32(x->d);
    } else if (kind == KQ2) {
        const block_q2_K *x = (const block_q2_K *)blk;
        const uint8x16_t sc8 = vld1q_u8(x->scales);
        widen_scales(vreinterpretq_s8_u8(vandq_u8(sc8, vdupq_n_u8(0x0f))), s->sv); /* [0, 15] */
        vst1q_u8(s->m, vshrq_n_u8(sc8, 4));                                      /* [0, 15] */
        s->d = f16_to_f32(x->d);
        s->dmin = f16_to_f32(x->dmin);
    } else {
        const block_q3_K *x = (const block_q3_K *)blk;
        widen_scales(q3_K_scales(x->scales), s->sv);
        s->d = f16_to_f32(x->d);
    }
}

/* The mins' integer term summ against the Q8_K group sums bsums[g] (16
 * activations each), exact:
 *   Q4_K/Q5_K: sum_j m[j] (bsums[2j] + bsums[2j+1]), |.| <= 8 * 63 * 4064;
 *   Q2_K:      sum_j m[j] bsums[j],                  |.| <= 16 * 15 * 2032. */
ALWAYS_INLINE int32_t k_summ(const int kind, const kscales *s, const int16_t *bsums)
{
    const int16x8_t bs_lo = vld1q_s16(bsums), bs_hi = vld1q_s16(bsums + 8);
    if (kind == KQ2) {
        const uint8x16_t mn = vld1q_u8(s->m);
        const int16x8_t m_lo = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(mn)));
        const int16x8_t m_hi = vreinterpretq_s16_u16(vmovl_high_u8(mn));
        int32x4_t pm = vmull_s16(vget_low_s16(m_lo), vget_low_s16(bs_lo));
        pm = vmlal_high_s16(pm, m_lo, bs_lo);
        pm = vmlal_s16(pm, vget_low_s16(m_hi), vget_low_s16(bs_hi));
        pm = vmlal_high_s16(pm, m_hi, bs_hi);
        return vaddvq_s32(pm);
    }
    /* pair sums of the 16 group sums, in [-4064, 4064] */
    const int16x8_t bs = vpaddq_s16(bs_lo, bs_hi);
    const int16x8_t mv = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(s->m)));
    int32x4_t p = vmull_s16(vget_low_s16(bs), vget_low_s16(mv));
    p = vmlal_high_s16(p, bs, mv);
    return vaddvq_s32(p);
}

/* ------------------------------------------------------------ weights */

/* Chunk G of a block as 4 int8x16, w[v] = weights 64G + 16v .. + 15:
 *   Q4_K nibble in [0, 15], Q5_K in [0, 31], Q6_K q - 32 in [-32, 31],
 *   Q2_K q in [0, 3], Q3_K q - 4 in [-4, 3]. */
ALWAYS_INLINE void k_chunk(const int kind, const uint8_t *blk, const int G, int8x16_t w[4])
{
    const uint8x16_t m4 = vdupq_n_u8(0x0f), m3 = vdupq_n_u8(0x03);
    if (kind == KQ4 || kind == KQ5) {
        /* weight 64G + l, l < 32: low nibble of qs[32G + l] (sub-block 2G);
         * 64G + 32 + l: its high nibble (sub-block 2G + 1) */
        const block_q4_K *x4 = (const block_q4_K *)blk;
        const block_q5_K *x5 = (const block_q5_K *)blk;
        const uint8_t *qs = kind == KQ5 ? x5->qs : x4->qs;
        const uint8x16_t q0 = vld1q_u8(qs + 32 * G), q1 = vld1q_u8(qs + 32 * G + 16);
        uint8x16_t l0 = vandq_u8(q0, m4), l1 = vandq_u8(q1, m4);
        uint8x16_t h0 = vshrq_n_u8(q0, 4), h1 = vshrq_n_u8(q1, 4);
        if (kind == KQ5) { /* bit 2G (low) / 2G + 1 (high) of qh[l] as bit 4 */
            const uint8x16_t qh0 = vld1q_u8(x5->qh), qh1 = vld1q_u8(x5->qh + 16);
            const uint8x16_t b4 = vdupq_n_u8(0x10);
            const uint8x16_t bl = vdupq_n_u8((uint8_t)(1u << (2 * G)));
            const uint8x16_t bh = vdupq_n_u8((uint8_t)(2u << (2 * G)));
            l0 = vorrq_u8(l0, vandq_u8(vtstq_u8(qh0, bl), b4));
            l1 = vorrq_u8(l1, vandq_u8(vtstq_u8(qh1, bl), b4));
            h0 = vorrq_u8(h0, vandq_u8(vtstq_u8(qh0, bh), b4));
            h1 = vorrq_u8(h1, vandq_u8(vtstq_u8(qh1, bh), b4));
        }
        w[0] = vreinterpretq_s8_u8(l0);
        w[1] = vreinterpretq_s8_u8(l1);
        w[2] = vreinterpretq_s8_u8(h0);
        w[3] = vreinterpretq_s8_u8(h1);
    } else if (kind == KQ6) {
        /* half h = G / 2: weight 128h + 32k + l (l < 32) has its low 4 bits
         * in ql[64h + 32 (k & 1) + l] (low nibble for k < 2, high for
         * k >= 2) and its top 2 in bits 2k, 2k + 1 of qh[32h + l]; chunk G
         * holds k = 2 (G & 1) and 2 (G & 1) + 1 */
        const block_q6_K *x = (const block_q6_K *)blk;
        const int h = G / 2;
        const uint8_t *ql = x->ql + 64 * h, *qh = x->qh + 32 * h;
        const uint8x16_t m30 = vdupq_n_u8(0x30);
        const int8x16_t off = vdupq_n_s8(32);
        const uint8x16_t hq[2] = {vld1q_u8(qh), vld1q_u8(qh + 16)};
        UNROLL
        for (int i = 0; i < 2; i++) {
            const int k = 2 * (G & 1) + i;
            UNROLL
            for (int s = 0; s < 2; s++) { /* weights 32k + 16s .. + 15 of the half */
                const uint8x16_t lo = vld1q_u8(ql + 32 * (k & 1) + 16 * s);
                const uint8x16_t nib = k < 2 ? vandq_u8(lo, m4) : vshrq_n_u8(lo, 4);
                /* bits 2k, 2k + 1 of qh moved to bits 4-5 */
                const uint8x16_t hb = k == 0   ? vshlq_n_u8(vandq_u8(hq[s], m3), 4)
                                      : k == 1 ? vandq_u8(vshlq_n_u8(hq[s], 2), m30)
                                      : k == 2 ? vandq_u8(hq[s], m30)
                                               : vandq_u8(vshrq_n_u8(hq[s], 2), m30);
                w[2 * i + s] = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(nib, hb)), off);
            }
        }
    } else {
        /* half h = G / 2: weight 128h + 32k + l has its 2 low bits in bits
         * 2k, 2k + 1 of qs[32h + l]; chunk G holds k = 2 (G & 1) and
         * 2 (G & 1) + 1, bytes 0..15 then 16..31 of each (Q3_K: minus 4
         * where bit 4h + k of hmask[l] is clear) */
        const block_q2_K *x2 = (const block_q2_K *)blk;
        const block_q3_K *x3 = (const block_q3_K *)blk;
        const int h = G / 2;
        const uint8_t *qs = (kind == KQ2 ? x2->qs : x3->qs) + 32 * h;
        const uint8x16_t q0 = vld1q_u8(qs), q1 = vld1q_u8(qs + 16);
        UNROLL
        for (int i = 0; i < 2; i++) {
            const int k = 2 * (G & 1) + i;
            const int8x16_t sh = vdupq_n_s8((int8_t)(-2 * k));
            uint8x16_t w0 = vandq_u8(vshlq_u8(q0, sh), m3), w1 = vandq_u8(vshlq_u8(q1, sh), m3);
            if (kind == KQ3) { /* q - 4 = low 2 bits - (4 where the hmask bit is clear) */
                const uint8x16_t four = vdupq_n_u8(4);
                const uint8x16_t bit = vdupq_n_u8((uint8_t)(1u << (4 * h + k)));
                w0 = vsubq_u8(w0, vbicq_u8(four, vtstq_u8(vld1q_u8(x3->hmask), bit)));
                w1 = vsubq_u8(w1, vbicq_u8(four, vtstq_u8(vld1q_u8(x3->hmask + 16), bit)));
            }
            w[2 * i] = vreinterpretq_s8_u8(w0);
            w[2 * i + 1] = vreinterpretq_s8_u8(w1);
        }
    }
}

/* The 64 activations of chunk G of a Q8_K block's qs. */
ALWAYS_INLINE void k_act(const int8_t *qs, const int G, int8x16_t a[4])
{
    UNROLL
    for (int v = 0; v < 4; v++)
        a[v] = vld1q_s8(qs + 64 * G + 16 * v);
}

/* sumi + chunk G's integer sum (see the top for the lanes), exact. */
ALWAYS_INLINE int32x4_t k_chunk_sumi(const int kind, int32x4_t sumi, const int8x16_t w[4],
                                     const int8x16_t a[4], const kscales *s, const int G)
{
    const int32x4_t z = vdupq_n_s32(0);
    if (kind == KQ4 || kind == KQ5) { /* sub-blocks 2G (w[0], w[1]) and 2G + 1 */
        const int32x4_t pl = vdotq_s32(vdotq_s32(z, w[0], a[0]), w[1], a[1]);
        const int32x4_t ph = vdotq_s32(vdotq_s32(z, w[2], a[2]), w[3], a[3]);
        sumi = vmlaq_n_s32(sumi, pl, s->sc[2 * G]);
        return vmlaq_n_s32(sumi, ph, s->sc[2 * G + 1]);
    }
    if (kind == KQ6) { /* sub-block 4G + v is w[v] */
        UNROLL
        for (int v = 0; v < 4; v++)
            sumi = vmlaq_n_s32(sumi, vdotq_s32(z, w[v], a[v]), s->sc[4 * G + v]);
        return sumi;
    }
    /* Q2_K/Q3_K: [S_4G .. S_4G+3] by pairwise adds of the 4 SDOT vectors */
    int32x4_t p[4];
    UNROLL
    for (int v = 0; v < 4; v++)
        p[v] = vdotq_s32(z, w[v], a[v]);
    const int32x4_t S = vpaddq_s32(vpaddq_s32(p[0], p[1]), vpaddq_s32(p[2], p[3]));
    return vmlaq_s32(sumi, S, s->sv[G]);
}

/* ------------------------------------------------------------ floats */

/* One block's integer sums into a (row, token)'s float accumulators. */
ALWAYS_INLINE void k_accumulate(const int kind, const kscales *s, const block_q8_K *a,
                                int32x4_t sumi, float32x4_t *acc, float *accm)
{
    const float d = s->d * a->d;
    *acc = vaddq_f32(*acc, vmulq_n_f32(vcvtq_f32_s32(sumi), d));
    if (K_MIN(kind)) {
        const float dmin = s->dmin * a->d;
        *accm -= dmin * (float)k_summ(kind, s, a->bsums);
    }
}

ALWAYS_INLINE float k_result(const int kind, float32x4_t acc, float accm)
{
    return K_MIN(kind) ? vaddvq_f32(acc) + accm : vaddvq_f32(acc);
}

/* the gemm entries (arm_neon_kgemm.c), installed by mr_kernels_init_neon_k */
void mr_kernels_init_neon_kgemm(mr_kernels *k);

#endif
