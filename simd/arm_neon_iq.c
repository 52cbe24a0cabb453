/* arm_neon_iq.c - the i-quants (IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S,
 * IQ1_S, IQ1_M) dotted with Q8_K activations, NEON + the ARMv8.2 dot
 * product (SDOT).
 *
 * Per 16 weights the block gives two codebook entries of 8 (IQ2, IQ1; IQ3:
 * four entries of 4) and, for IQ2/IQ3, two sign bytes: the entries form one
 * q register of magnitudes, the sign bits a mask (vtst) that negates them
 * ((g ^ m) - m), and one sdot with the activations gives 4 int32 lanes,
 * multiplied by the integer scale k of those 16 and summed over the block.
 *
 * IQ1 weights are s (c + e) with c in {-1, 0, 1} and e = +-1/8 per 8, so
 * 8c + 8e is an integer in [-9, 9] and is dotted as the weight.  Each block
 * is thus one exact integer, as in the reference, and its float part,
 * sum += (d d_a) (float)isum in block order and the unit at the end, is the
 * reference's: results are bit-identical to quant/ref_iq.c (test_quant_iq). */
#include "kernels.h"

#include <arm_neon.h>
#include <string.h>

#include "../quant/types_iq.h"

#define AI static inline __attribute__((always_inline))

/* the 16 magnitudes of entries g0, g1 negated where the bits of the sign
 * bytes s0, s1 are set (bit j of a byte: weight j of its 8) */
AI int8x16_t signed16(uint64_t g0, uint64_t g1, uint8_t s0, uint8_t s1)
{
    static const uint8_t bit[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    const int8x16_t g = vreinterpretq_s8_u8(vcombine_u8(vcreate_u8(g0), vcreate_u8(g1)));
    const int8x16_t m =
        vreinterpretq_s8_u8(vtstq_u8(vcombine_u8(vdup_n_u8(s0), vdup_n_u8(s1)), vld1q_u8(bit)));
    return vsubq_s8(veorq_s8(g, m), m);
}

/* acc + k times the dot of 16 weights with 16 activations, in 4 lanes */
AI int32x4_t dot16k(int32x4_t acc, int8x16_t w, const int8_t *q, int32_t k)
{
    return vmlaq_n_s32(acc, vdotq_s32(vdupq_n_s32(0), w, vld1q_s8(q)), k);
}

/* one 32-weight sub-block: weights lo (0..15), hi (16..31), a scale each */
typedef struct {
    int8x16_t lo, hi;
    int32_t k0, k1;
} sub32;

AI sub32 sub_iq2_xxs(const block_iq2_xxs *b, int ib)
{
    uint32_t a[2];
    memcpy(a, b->qs + 4 * ib, 8);
    sub32 o;
    o.k0 = o.k1 = (int32_t)(2 * (a[1] >> 28) + 1);
    const uint64_t *t = mr_iq2xxs_grid;
    o.lo = signed16(t[a[0] & 0xff], t[(a[0] >> 8) & 0xff], mr_iq_ksigns[a[1] & 127],
                    mr_iq_ksigns[(a[1] >> 7) & 127]);
    o.hi = signed16(t[(a[0] >> 16) & 0xff], t[a[0] >> 24], mr_iq_ksigns[(a[1] >> 14) & 127],
                    mr_iq_ksigns[(a[1] >> 21) & 127]);
    return o;
}

AI sub32 sub_iq2_xs(const block_iq2_xs *b, int ib)
{
    sub32 o;
    o.k0 = 2 * (b->scales[ib] & 0xf) + 1;
    o.k1 = 2 * (b->scales[ib] >> 4) + 1;
    const uint16_t *q = b->qs + 4 * ib;
    const uint64_t *t = mr_iq2xs_grid;
    o.lo = signed16(t[q[0] & 511], t[q[1] & 511], mr_iq_ksigns[q[0] >> 9], mr_iq_ksigns[q[1] >> 9]);
    o.hi = signed16(t[q[2] & 511], t[q[3] & 511], mr_iq_ksigns[q[2] >> 9], mr_iq_ksigns[q[3] >> 9]);
    return o;
}

AI sub32 sub_iq2_s(const block_iq2_s *b, int ib)
{
    sub32 o;
    o.k0 = 2 * (b->scales[ib] & 0xf) + 1;
    o.k1 = 2 * (b->scales[ib] >> 4) + 1;
    const uint8_t *qs = b->qs + 4 * ib, *sg = b->qs + QK_K / 8 + 4 * ib;
    const uint32_t qh = b->qh[ib];
    const uint64_t *t = mr_iq2s_grid;
    o.lo = signed16(t[qs[0] | ((qh << 8) & 0x300)], t[qs[1] | ((qh << 6) & 0x300)], sg[0], sg[1]);
    o.hi = signed16(t[qs[2] | ((qh << 4) & 0x300)], t[qs[3] | ((qh << 2) & 0x300)], sg[2], sg[3]);
    return o;
}

#define G3(t, q) ((uint64_t)(t)[(q)[0]] | (uint64_t)(t)[(q)[1]] << 32)

AI sub32 sub_iq3_xxs(const block_iq3_xxs *b, int ib)
{
    uint32_t a;
    memcpy(&a, b->qs + QK_K / 4 + 4 * ib, 4);
    sub32 o;
    o.k0 = o.k1 = (int32_t)(2 * (a >> 28) + 1);
    const uint8_t *qs = b->qs + 8 * ib;
    const uint32_t *t = mr_iq3xxs_grid;
    o.lo = signed16(G3(t, qs), G3(t, qs + 2), mr_iq_ksigns[a & 127], mr_iq_ksigns[(a >> 7) & 127]);
    o.hi = signed16(G3(t, qs + 4), G3(t, qs + 6), mr_iq_ksigns[(a >> 14) & 127],
                    mr_iq_ksigns[(a >> 21) & 127]);
    return o;
}

AI uint64_t g3s(const uint8_t *qs, uint32_t qh, int l)
{
    return (uint64_t)mr_iq3s_grid[qs[2 * l] | ((qh << (8 - 2 * l)) & 256)] |
           (uint64_t)mr_iq3s_grid[qs[2 * l + 1] | ((qh << (7 - 2 * l)) & 256)] << 32;
}

AI sub32 sub_iq3_s(const block_iq3_s *b, int ib)
{
    sub32 o;
    const int sc = ib % 2 ? b->scales[ib / 2] >> 4 : b->scales[ib / 2] & 0xf;
    o.k0 = o.k1 = 1 + 2 * sc;
    const uint8_t *qs = b->qs + 8 * ib, *sg = b->signs + 4 * ib;
    const uint32_t qh = b->qh[ib];
    o.lo = signed16(g3s(qs, qh, 0), g3s(qs, qh, 1), sg[0], sg[1]);
    o.hi = signed16(g3s(qs, qh, 2), g3s(qs, qh, 3), sg[2], sg[3]);
    return o;
}

/* IQ1: 8 c + 8 e of entries g0, g1 (bytes -1, 0, 1) with e0, e1 = +-1/8 as
 * n0, n1 = 1 for a negative delta */
AI int8x16_t iq1_16(uint64_t g0, uint64_t g1, int n0, int n1)
{
    const int8x16_t c = vreinterpretq_s8_u8(vcombine_u8(vcreate_u8(g0), vcreate_u8(g1)));
    const int8x16_t e = vcombine_s8(vdup_n_s8(n0 ? -1 : 1), vdup_n_s8(n1 ? -1 : 1));
    return vaddq_s8(vshlq_n_s8(c, 3), e);
}

AI sub32 sub_iq1_s(const block_iq1_s *b, int ib)
{
    const uint32_t qh = b->qh[ib];
    sub32 o;
    o.k0 = o.k1 = 2 * ((qh >> 12) & 7) + 1;
    const int neg = (qh & 0x8000) != 0;
    const uint8_t *qs = b->qs + 4 * ib;
    const uint64_t *t = mr_iq1s_grid;
    o.lo = iq1_16(t[qs[0] | ((qh & 7) << 8)], t[qs[1] | (((qh >> 3) & 7) << 8)], neg, neg);
    o.hi = iq1_16(t[qs[2] | (((qh >> 6) & 7) << 8)], t[qs[3] | (((qh >> 9) & 7) << 8)], neg, neg);
    return o;
}

AI sub32 sub_iq1_m(const block_iq1_m *b, const uint16_t sc[4], int ib)
{
    sub32 o;
    o.k0 = 2 * ((sc[ib / 2] >> (6 * (ib % 2))) & 7) + 1;
    o.k1 = 2 * ((sc[ib / 2] >> (6 * (ib % 2) + 3)) & 7) + 1;
    const uint8_t *qs = b->qs + 4 * ib;
    const uint32_t h0 = b->qh[2 * ib], h1 = b->qh[2 * ib + 1];
    const uint64_t *t = mr_iq1s_grid;
    o.lo = iq1_16(t[qs[0] | ((h0 << 8) & 0x700)], t[qs[1] | ((h0 << 4) & 0x700)], (h0 & 0x08) != 0,
                  (h0 & 0x80) != 0);
    o.hi = iq1_16(t[qs[2] | ((h1 << 8) & 0x700)], t[qs[3] | ((h1 << 4) & 0x700)], (h1 & 0x08) != 0,
                  (h1 & 0x80) != 0);
    return o;
}

/* the reference's rule: per block the exact integer sum of k times the
 * 16-sums, then sum += (d d_a) (float)isum in block order; the unit
 * (a power of two) at the end */
#define IQ_DOT(t, PRE, D, SUB, UNIT)                                                    \
    static float dot_##t(const void *w, const void *xq, int64_t n)                      \
    {                                                                                   \
        const block_##t *x = w;                                                         \
        const block_q8_K *y = xq;                                                       \
        float sum = 0.0f;                                                               \
        for (int64_t i = 0; i < n / QK_K; i++) {                                        \
            PRE;                                                                        \
            int32x4_t acc = vdupq_n_s32(0);                                             \
            for (int ib = 0; ib < 8; ib++) {                                            \
                const sub32 o = SUB;                                                    \
                const int8_t *q = y[i].qs + 32 * ib;                                    \
                acc = dot16k(acc, o.lo, q, o.k0);                                       \
                acc = dot16k(acc, o.hi, q + 16, o.k1);                                  \
            }                                                                           \
            sum += ((D) * y[i].d) * (float)vaddvq_s32(acc);                             \
        }                                                                               \
        return sum * (UNIT);                                                            \
    }
IQ_DOT(iq2_xxs, (void)0, mr_f16_to_f32(x[i].d), sub_iq2_xxs(&x[i], ib), 0.125f)
IQ_DOT(iq2_xs, (void)0, mr_f16_to_f32(x[i].d), sub_iq2_xs(&x[i], ib), 0.125f)
IQ_DOT(iq2_s, (void)0, mr_f16_to_f32(x[i].d), sub_iq2_s(&x[i], ib), 0.125f)
IQ_DOT(iq3_xxs, (void)0, mr_f16_to_f32(x[i].d), sub_iq3_xxs(&x[i], ib), 0.25f)
IQ_DOT(iq3_s, (void)0, mr_f16_to_f32(x[i].d), sub_iq3_s(&x[i], ib), 1.0f)
IQ_DOT(iq1_s, (void)0, mr_f16_to_f32(x[i].d), sub_iq1_s(&x[i], ib), 0.125f)
IQ_DOT(iq1_m, uint16_t sc[4]; memcpy(sc, x[i].scales, 8),
       mr_f16_to_f32(mr_iq1_m_d(&x[i])),
       sub_iq1_m(&x[i], sc, ib), 0.125f)

void mr_kernels_init_neon_iq(mr_kernels *k)
{
    k->vec_dot[MR_TYPE_IQ2_XXS] = dot_iq2_xxs;
    k->vec_dot[MR_TYPE_IQ2_XS] = dot_iq2_xs;
    k->vec_dot[MR_TYPE_IQ2_S] = dot_iq2_s;
    k->vec_dot[MR_TYPE_IQ3_XXS] = dot_iq3_xxs;
    k->vec_dot[MR_TYPE_IQ3_S] = dot_iq3_s;
    k->vec_dot[MR_TYPE_IQ1_S] = dot_iq1_s;
    k->vec_dot[MR_TYPE_IQ1_M] = dot_iq1_m;
}
