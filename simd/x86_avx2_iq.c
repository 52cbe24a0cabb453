/* x86_avx2_iq.c - the i-quants (IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S,
 * IQ1_S, IQ1_M) dotted with Q8_K activations, AVX2 (vec_dot; the AVX-512
 * table inherits them).
 *
 * Per 32 weights the block gives four codebook entries (8 unsigned bytes
 * each: IQ2 entries, or two IQ3 entries of 4), four sign bytes and two
 * scales (one per 16).  The four entries become one ymm of 32 magnitudes
 * (vpinsrq of the table rows), the sign bytes a ymm of +-1 that moves onto
 * the activations (vpsignb), and vpmaddubsw + vpmaddwd give 8 int32 lanes,
 * each the exact dot of 4 weights; lanes 0-3 are the first 16, 4-7 the
 * second.  IQ1's entries are -1/0/1: one is added (vpaddb, 0..2 unsigned)
 * and the sum of the activations taken off again, which also gives the
 * sums the delta multiplies.  The integer sums equal the reference's, and
 * the float part (scales, delta, accumulation) is the reference's in its
 * order, so results are bit-identical to quant/ref_iq.c (test_quant_iq). */
#include "kernels.h"

#include <immintrin.h>
#include <string.h>

#include "../quant/types_iq.h"

#define AI static inline __attribute__((always_inline))

AI float f16_to_f32(uint16_t h)
{
    return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h)));
}

/* 32 bytes of +1 / -1 from four sign bytes packed in sb (bit j of byte l:
 * weight 8l + j): each byte spread over 8 lanes (vpshufb), bit-tested */
AI __m256i sign_vec(uint32_t sb)
{
    const __m256i spread = _mm256_set_epi64x(0x0303030303030303ll, 0x0202020202020202ll,
                                             0x0101010101010101ll, 0x0000000000000000ll);
    const __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32((int)sb), spread);
    const __m256i bit = _mm256_set1_epi64x((int64_t)0x8040201008040201ull);
    const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(bytes, bit), bit);
    return _mm256_or_si256(set, _mm256_set1_epi8(1));
}

/* the 8 int32 lanes of 32 magnitudes g times the activations q signed by s */
AI __m256i dot32(__m256i g, __m256i q, __m256i s)
{
    return _mm256_madd_epi16(_mm256_maddubs_epi16(g, _mm256_sign_epi8(q, s)), _mm256_set1_epi16(1));
}

AI int hsum4(__m128i v)
{
    v = _mm_add_epi32(v, _mm_shuffle_epi32(v, 0x4e));
    v = _mm_add_epi32(v, _mm_shuffle_epi32(v, 0xb1));
    return _mm_cvtsi128_si32(v);
}

/* one 32-weight sub-block of an IQ2/IQ3 block, in registers: the 32
 * magnitudes, the +-1 signs, the two scales (values built straight into
 * vectors: a scalar array read back as a vector would stall the store
 * forwarding) */
typedef struct {
    __m256i g, sg;
    float s0, s1;
} sub32;

#define G4(t, a, b, c, d) _mm256_set_epi64x((int64_t)(t)[d], (int64_t)(t)[c], (int64_t)(t)[b], (int64_t)(t)[a])

AI sub32 sub_iq2_xxs(const block_iq2_xxs *b, float d, int ib)
{
    uint32_t a[2];
    memcpy(a, b->qs + 4 * ib, 8);
    sub32 o;
    o.s0 = o.s1 = d * (0.5f + (float)(a[1] >> 28)) * 0.25f;
    o.g = G4(mr_iq2xxs_grid, a[0] & 0xff, (a[0] >> 8) & 0xff, (a[0] >> 16) & 0xff, a[0] >> 24);
    o.sg = sign_vec(mr_iq_ksigns[a[1] & 127] | (uint32_t)mr_iq_ksigns[(a[1] >> 7) & 127] << 8 |
                    (uint32_t)mr_iq_ksigns[(a[1] >> 14) & 127] << 16 |
                    (uint32_t)mr_iq_ksigns[(a[1] >> 21) & 127] << 24);
    return o;
}

AI sub32 sub_iq2_xs(const block_iq2_xs *b, float d, int ib)
{
    sub32 o;
    o.s0 = d * (0.5f + (float)(b->scales[ib] & 0xf)) * 0.25f;
    o.s1 = d * (0.5f + (float)(b->scales[ib] >> 4)) * 0.25f;
    const uint16_t *q = b->qs + 4 * ib;
    o.g = G4(mr_iq2xs_grid, q[0] & 511, q[1] & 511, q[2] & 511, q[3] & 511);
    o.sg = sign_vec(mr_iq_ksigns[q[0] >> 9] | (uint32_t)mr_iq_ksigns[q[1] >> 9] << 8 |
                    (uint32_t)mr_iq_ksigns[q[2] >> 9] << 16 | (uint32_t)mr_iq_ksigns[q[3] >> 9] << 24);
    return o;
}

AI sub32 sub_iq2_s(const block_iq2_s *b, float d, int ib)
{
    sub32 o;
    o.s0 = d * (0.5f + (float)(b->scales[ib] & 0xf)) * 0.25f;
    o.s1 = d * (0.5f + (float)(b->scales[ib] >> 4)) * 0.25f;
    const uint8_t *qs = b->qs + 4 * ib;
    const uint32_t qh = b->qh[ib];
    o.g = G4(mr_iq2s_grid, qs[0] | ((qh << 8) & 0x300), qs[1] | ((qh << 6) & 0x300),
             qs[2] | ((qh << 4) & 0x300), qs[3] | ((qh << 2) & 0x300));
    uint32_t sb;
    memcpy(&sb, b->qs + QK_K / 8 + 4 * ib, 4);
    o.sg = sign_vec(sb);
    return o;
}

#define G3(t, q) ((uint64_t)(t)[(q)[0]] | (uint64_t)(t)[(q)[1]] << 32)

AI sub32 sub_iq3_xxs(const block_iq3_xxs *b, float d, int ib)
{
    uint32_t a;
    memcpy(&a, b->qs + QK_K / 4 + 4 * ib, 4);
    sub32 o;
    o.s0 = o.s1 = d * (0.5f + (float)(a >> 28)) * 0.5f;
    const uint8_t *qs = b->qs + 8 * ib;
    o.g = _mm256_set_epi64x((int64_t)G3(mr_iq3xxs_grid, qs + 6), (int64_t)G3(mr_iq3xxs_grid, qs + 4),
                            (int64_t)G3(mr_iq3xxs_grid, qs + 2), (int64_t)G3(mr_iq3xxs_grid, qs));
    o.sg = sign_vec(mr_iq_ksigns[a & 127] | (uint32_t)mr_iq_ksigns[(a >> 7) & 127] << 8 |
                    (uint32_t)mr_iq_ksigns[(a >> 14) & 127] << 16 |
                    (uint32_t)mr_iq_ksigns[(a >> 21) & 127] << 24);
    return o;
}

AI uint64_t g3s(const uint8_t *qs, uint32_t qh, int l)
{
    return (uint64_t)mr_iq3s_grid[qs[2 * l] | ((qh << (8 - 2 * l)) & 256)] |
           (uint64_t)mr_iq3s_grid[qs[2 * l + 1] | ((qh << (7 - 2 * l)) & 256)] << 32;
}

AI sub32 sub_iq3_s(const block_iq3_s *b, float d, int ib)
{
    sub32 o;
    const int sc = ib % 2 ? b->scales[ib / 2] >> 4 : b->scales[ib / 2] & 0xf;
    o.s0 = o.s1 = d * (float)(1 + 2 * sc);
    const uint8_t *qs = b->qs + 8 * ib;
    const uint32_t qh = b->qh[ib];
    o.g = _mm256_set_epi64x((int64_t)g3s(qs, qh, 3), (int64_t)g3s(qs, qh, 2), (int64_t)g3s(qs, qh, 1),
                            (int64_t)g3s(qs, qh, 0));
    uint32_t sb;
    memcpy(&sb, b->signs + 4 * ib, 4);
    o.sg = sign_vec(sb);
    return o;
}

#define IQ_SIGNED_DOT(t, D)                                                                   \
    static float dot_##t(const void *w, const void *xq, int64_t n)                            \
    {                                                                                         \
        const block_##t *x = w;                                                               \
        const block_q8_K *y = xq;                                                             \
        float sum = 0.0f;                                                                     \
        for (int64_t i = 0; i < n / QK_K; i++) {                                              \
            const float d = D;                                                                \
            float bs = 0.0f;                                                                  \
            for (int ib = 0; ib < 8; ib++) {                                                  \
                const sub32 o = sub_##t(&x[i], d, ib);                                        \
                const __m256i q = _mm256_loadu_si256((const __m256i *)(y[i].qs + 32 * ib));   \
                const __m256i p = dot32(o.g, q, o.sg);                                        \
                const int lo = hsum4(_mm256_castsi256_si128(p));                              \
                const int hi = hsum4(_mm256_extracti128_si256(p, 1));                         \
                bs += o.s0 * (float)lo;                                                       \
                bs += o.s1 * (float)hi;                                                       \
            }                                                                                 \
            sum += y[i].d * bs;                                                               \
        }                                                                                     \
        return sum;                                                                           \
    }
IQ_SIGNED_DOT(iq2_xxs, f16_to_f32(x[i].d))
IQ_SIGNED_DOT(iq2_xs, f16_to_f32(x[i].d))
IQ_SIGNED_DOT(iq2_s, f16_to_f32(x[i].d))
IQ_SIGNED_DOT(iq3_xxs, f16_to_f32(x[i].d))
IQ_SIGNED_DOT(iq3_s, f16_to_f32(x[i].d))

/* one 32-weight sub-block of an IQ1 block: entries, scales per 16, deltas per 8 */
typedef struct {
    __m256i g;
    float s[2], e[4];
} sub32_iq1;

AI void sub_iq1_s(const block_iq1_s *b, float d, int ib, sub32_iq1 *o)
{
    const uint32_t qh = b->qh[ib];
    o->s[0] = o->s[1] = d * (float)(2 * ((qh >> 12) & 7) + 1);
    const float e = qh & 0x8000 ? -MR_IQ1_DELTA : MR_IQ1_DELTA;
    o->e[0] = o->e[1] = o->e[2] = o->e[3] = e;
    const uint8_t *qs = b->qs + 4 * ib;
    o->g = G4(mr_iq1s_grid, qs[0] | ((qh & 7) << 8), qs[1] | (((qh >> 3) & 7) << 8),
              qs[2] | (((qh >> 6) & 7) << 8), qs[3] | (((qh >> 9) & 7) << 8));
}

AI void sub_iq1_m(const block_iq1_m *b, const uint16_t sc[4], float d, int ib, sub32_iq1 *o)
{
    o->s[0] = d * (float)(2 * ((sc[ib / 2] >> (6 * (ib % 2))) & 7) + 1);
    o->s[1] = d * (float)(2 * ((sc[ib / 2] >> (6 * (ib % 2) + 3)) & 7) + 1);
    const uint8_t *qs = b->qs + 4 * ib;
    const uint32_t h0 = b->qh[2 * ib], h1 = b->qh[2 * ib + 1];
    o->g = G4(mr_iq1s_grid, qs[0] | ((h0 << 8) & 0x700), qs[1] | ((h0 << 4) & 0x700),
              qs[2] | ((h1 << 8) & 0x700), qs[3] | ((h1 << 4) & 0x700));
    o->e[0] = h0 & 0x08 ? -MR_IQ1_DELTA : MR_IQ1_DELTA;
    o->e[1] = h0 & 0x80 ? -MR_IQ1_DELTA : MR_IQ1_DELTA;
    o->e[2] = h1 & 0x08 ? -MR_IQ1_DELTA : MR_IQ1_DELTA;
    o->e[3] = h1 & 0x80 ? -MR_IQ1_DELTA : MR_IQ1_DELTA;
}

/* the reference's float part of one IQ1 sub-block from its integer sums:
 * c8[k] = sum of code x activation over weights 8k.., a8[k] the sum of the
 * activations there */
AI void iq1_sub(const sub32_iq1 *o, __m256i g, __m256i q, float *bs)
{
    const __m256i ones16 = _mm256_set1_epi16(1);
    const __m256i gu = _mm256_add_epi8(g, _mm256_set1_epi8(1)); /* -1, 0, 1 -> 0, 1, 2 */
    const __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(gu, q), ones16);
    const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), q), ones16);
    int32_t l1[8], l0[8];
    _mm256_storeu_si256((__m256i *)l1, p1);
    _mm256_storeu_si256((__m256i *)l0, p0);
    for (int h = 0; h < 2; h++) {
        int32_t a[2], s = 0;
        for (int k = 0; k < 2; k++) {
            const int j = 4 * h + 2 * k;
            a[k] = l0[j] + l0[j + 1];
            s += (l1[j] + l1[j + 1]) - a[k];
        }
        float v = (float)s;
        v += o->e[2 * h] * (float)a[0] + o->e[2 * h + 1] * (float)a[1];
        *bs += o->s[h] * v;
    }
}

static float dot_iq1_s(const void *w, const void *xq, int64_t n)
{
    const block_iq1_s *x = w;
    const block_q8_K *y = xq;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = f16_to_f32(x[i].d);
        float bs = 0.0f;
        for (int ib = 0; ib < 8; ib++) {
            sub32_iq1 o;
            sub_iq1_s(&x[i], d, ib, &o);
            const __m256i q = _mm256_loadu_si256((const __m256i *)(y[i].qs + 32 * ib));
            iq1_sub(&o, o.g, q, &bs);
        }
        sum += y[i].d * bs;
    }
    return sum;
}

static float dot_iq1_m(const void *w, const void *xq, int64_t n)
{
    const block_iq1_m *x = w;
    const block_q8_K *y = xq;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        uint16_t sc[4];
        memcpy(sc, x[i].scales, 8);
        const uint16_t h = (uint16_t)((sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) |
                                      ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000));
        const float d = f16_to_f32(h);
        float bs = 0.0f;
        for (int ib = 0; ib < 8; ib++) {
            sub32_iq1 o;
            sub_iq1_m(&x[i], sc, d, ib, &o);
            const __m256i q = _mm256_loadu_si256((const __m256i *)(y[i].qs + 32 * ib));
            iq1_sub(&o, o.g, q, &bs);
        }
        sum += y[i].d * bs;
    }
    return sum;
}

void mr_kernels_init_avx2_iq(mr_kernels *k)
{
    k->vec_dot[MR_TYPE_IQ2_XXS] = dot_iq2_xxs;
    k->vec_dot[MR_TYPE_IQ2_XS] = dot_iq2_xs;
    k->vec_dot[MR_TYPE_IQ2_S] = dot_iq2_s;
    k->vec_dot[MR_TYPE_IQ3_XXS] = dot_iq3_xxs;
    k->vec_dot[MR_TYPE_IQ3_S] = dot_iq3_s;
    k->vec_dot[MR_TYPE_IQ1_S] = dot_iq1_s;
    k->vec_dot[MR_TYPE_IQ1_M] = dot_iq1_m;
}
