/* x86_avx2_iq.c - the i-quants (IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S,
 * IQ1_S, IQ1_M) dotted with Q8_K activations, AVX2: vec_dot (one row, one
 * token) and gemm (rows x tokens, at the end; the AVX-512 table inherits
 * both).
 *
 * Per 32 weights the block gives four codebook entries (8 unsigned bytes
 * each: IQ2 entries, or two IQ3 entries of 4), four sign bytes and two
 * scales (one per 16).  The four entries become one ymm of 32 magnitudes
 * (vpinsrq of the table rows), the sign bytes a ymm of +-1 that moves onto
 * the activations (vpsignb), and vpmaddubsw + vpmaddwd give 8 int32 lanes,
 * each the exact dot of 4 weights; lanes 0-3 are the first 16, 4-7 the
 * second.  IQ1 (entries -1/0/1, a delta of +-1/8 per 8) dots the weights
 * 8c + 8e in integers and divides by 8 exactly (see below).  The integer
 * sums equal the reference's, and
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

/* IQ1: weight = s (c + e), c in {-1, 0, 1}, e = +-1/8 per 8 weights.  The
 * reference's float part per 16, (float)sum(c q) + (e0 (float)a0 +
 * e1 (float)a1) with a the activation sums per 8, is exact (multiples of
 * 1/8 far below 2^24), so it equals (float)sum((8c + 8e) q) * 0.125f: one
 * signed integer dot of the weights 8c + 8e in [-9, 9], no activation sums.
 * Four 32-weight sub-blocks' lanes of 4 fold (vphaddd) into one vector of
 * the 16-sums; the scales of 16 are built as vectors, and only the
 * reference's running sum over the 16 products stays scalar, in order. */

/* the weights 8 c + e as bytes in [-9, 9]: g the entries' bytes (-1, 0,
 * 1), e the bytes +-1 */
AI __m256i iq1_w(__m256i g, __m256i e)
{
    const __m256i c8 = _mm256_and_si256(_mm256_slli_epi16(g, 3), _mm256_set1_epi8((char)0xf8));
    return _mm256_add_epi8(c8, e);
}

/* the 8 int32 lanes (4 weights each) of the weights w with the
 * activations q: |w| times q signed like w */
AI __m256i iq1_dot32(__m256i w, const int8_t *q)
{
    const __m256i qv = _mm256_loadu_si256((const __m256i *)q);
    return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(w), _mm256_sign_epi8(qv, w)),
                             _mm256_set1_epi16(1));
}

/* the sums of 16 in order (g = 0..7) from four sub-blocks' lanes of 4 */
AI __m256 sums16(__m256i a, __m256i b, __m256i c, __m256i d)
{
    const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d));
    return _mm256_cvtepi32_ps(_mm256_permutevar8x32_epi32(h, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
}

/* bs += v[0]; ... bs += v[7], in that order (the reference's) */
AI float add8(float bs, __m256 v)
{
    const __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    bs += _mm_cvtss_f32(lo);
    bs += _mm_cvtss_f32(_mm_movehdup_ps(lo));
    bs += _mm_cvtss_f32(_mm_movehl_ps(lo, lo));
    bs += _mm_cvtss_f32(_mm_shuffle_ps(lo, lo, 3));
    bs += _mm_cvtss_f32(hi);
    bs += _mm_cvtss_f32(_mm_movehdup_ps(hi));
    bs += _mm_cvtss_f32(_mm_movehl_ps(hi, hi));
    bs += _mm_cvtss_f32(_mm_shuffle_ps(hi, hi, 3));
    return bs;
}

/* one block's bs from its 16 integer sums (t0: g 0..7, t1: 8..15) and the
 * integer scales 2k + 1 (k0, k1), as the reference: s = d (float)(2k + 1),
 * v = sum / 8, bs += s v */
AI float iq1_block(float d, __m256 t0, __m256 t1, __m256i k0, __m256i k1)
{
    const __m256 vd = _mm256_set1_ps(d), e = _mm256_set1_ps(0.125f);
    const __m256 w0 = _mm256_mul_ps(_mm256_mul_ps(vd, _mm256_cvtepi32_ps(k0)), _mm256_mul_ps(t0, e));
    const __m256 w1 = _mm256_mul_ps(_mm256_mul_ps(vd, _mm256_cvtepi32_ps(k1)), _mm256_mul_ps(t1, e));
    return add8(add8(0.0f, w0), w1);
}

/* IQ1_S sub-block ib's weights 8 c + e: entries, and the delta's sign as
 * bytes +-1 */
AI __m256i iq1s_w(const block_iq1_s *b, int ib)
{
    const uint32_t qh = b->qh[ib];
    const uint8_t *qs = b->qs + 4 * ib;
    const __m256i g = G4(mr_iq1s_grid, qs[0] | ((qh & 7) << 8), qs[1] | (((qh >> 3) & 7) << 8),
                         qs[2] | (((qh >> 6) & 7) << 8), qs[3] | (((qh >> 9) & 7) << 8));
    const __m256i e = _mm256_or_si256(_mm256_srai_epi16(_mm256_set1_epi16((short)qh), 15),
                                      _mm256_set1_epi8(1));
    return iq1_w(g, e);
}

static float dot_iq1_s(const void *w, const void *xq, int64_t n)
{
    const block_iq1_s *x = w;
    const block_q8_K *y = xq;
    const __m256i one = _mm256_set1_epi32(1), seven = _mm256_set1_epi32(7);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const int8_t *q = y[i].qs;
        __m256i p[8];
        for (int ib = 0; ib < 8; ib++)
            p[ib] = iq1_dot32(iq1s_w(&x[i], ib), q + 32 * ib);
        /* 2 k + 1 per sub-block, each for both its 16s */
        const __m256i h = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)x[i].qh));
        const __m256i k = _mm256_add_epi32(
            _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(h, 12), seven), 1), one);
        const __m256i k0 = _mm256_permutevar8x32_epi32(k, _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3));
        const __m256i k1 = _mm256_permutevar8x32_epi32(k, _mm256_setr_epi32(4, 4, 5, 5, 6, 6, 7, 7));
        const float bs = iq1_block(f16_to_f32(x[i].d), sums16(p[0], p[1], p[2], p[3]),
                                   sums16(p[4], p[5], p[6], p[7]), k0, k1);
        sum += y[i].d * bs;
    }
    return sum;
}

/* IQ1_M sub-block ib's weights 8 c + e: entries, and the four deltas'
 * signs (bits 3, 7 of qh[2 ib] and qh[2 ib + 1]) as bytes +-1 per 8 */
AI __m256i iq1m_w(const block_iq1_m *b, int ib)
{
    const uint32_t h0 = b->qh[2 * ib], h1 = b->qh[2 * ib + 1];
    const uint8_t *qs = b->qs + 4 * ib;
    const __m256i g = G4(mr_iq1s_grid, qs[0] | ((h0 << 8) & 0x700), qs[1] | ((h0 << 4) & 0x700),
                         qs[2] | ((h1 << 8) & 0x700), qs[3] | ((h1 << 4) & 0x700));
    const __m256i bits = _mm256_set_epi64x((int64_t)0x8000800080008000ll, 0x0800080008000800ll,
                                           0x0080008000800080ll, 0x0008000800080008ll);
    const __m256i hv = _mm256_and_si256(_mm256_set1_epi16((short)(h0 | h1 << 8)), bits);
    const __m256i e = _mm256_or_si256(_mm256_cmpeq_epi16(hv, bits), _mm256_set1_epi8(1));
    return iq1_w(g, e);
}

static float dot_iq1_m(const void *w, const void *xq, int64_t n)
{
    const block_iq1_m *x = w;
    const block_q8_K *y = xq;
    const __m256i one = _mm256_set1_epi32(1), seven = _mm256_set1_epi32(7);
    const __m256i sh = _mm256_setr_epi32(0, 3, 6, 9, 0, 3, 6, 9);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        uint16_t sc[4];
        memcpy(sc, x[i].scales, 8);
        const uint16_t hd = (uint16_t)((sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) |
                                       ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000));
        const int8_t *q = y[i].qs;
        __m256i p[8];
        for (int ib = 0; ib < 8; ib++)
            p[ib] = iq1_dot32(iq1m_w(&x[i], ib), q + 32 * ib);
        /* scale g of 16 is bits 3 (g % 4) of sc[g / 4] */
        const __m256i s = _mm256_cvtepu16_epi32(_mm_loadl_epi64((const __m128i *)x[i].scales));
        const __m256i s0 = _mm256_permutevar8x32_epi32(s, _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1));
        const __m256i s1 = _mm256_permutevar8x32_epi32(s, _mm256_setr_epi32(2, 2, 2, 2, 3, 3, 3, 3));
        const __m256i k0 = _mm256_add_epi32(
            _mm256_slli_epi32(_mm256_and_si256(_mm256_srlv_epi32(s0, sh), seven), 1), one);
        const __m256i k1 = _mm256_add_epi32(
            _mm256_slli_epi32(_mm256_and_si256(_mm256_srlv_epi32(s1, sh), seven), 1), one);
        const float bs = iq1_block(f16_to_f32(hd), sums16(p[0], p[1], p[2], p[3]),
                                   sums16(p[4], p[5], p[6], p[7]), k0, k1);
        sum += y[i].d * bs;
    }
    return sum;
}

/* ------------------------------------------------------------ gemm */

/* Rows x tokens (prompts, expert groups).  Each weight block is decoded
 * once per row and up to IQ_CHUNK tokens (the codebook lookups and the
 * signs, the costly part) into the vectors the dots above use, and dotted
 * with the tokens 8 at a time.  Per sub-block the 8 tokens' products fold
 * (vphaddw, vpmaddwd, vphaddd: exact integers) into one vector of their
 * sums of the first 16 weights and one of the second 16, lane t = token t,
 * the dot's integers; the floats then run as vectors
 * over tokens, lane t doing exactly the scalar operations of the dot above
 * for token t, in its order:
 *   IQ2/IQ3: bs += s0 (float)lo;  bs += s1 (float)hi
 *   IQ1:     bs += s_g ((float)sum_g * 0.125f), g = 2 ib, 2 ib + 1
 *            (s_g = d (float)(2 k + 1), as the dot's vector scales)
 *   per block: sum += d_a bs
 * so each (row, token) result is the dot's bits, whatever the number of
 * tokens, the rows or their range.  One token is the dot itself. */

enum { IQ2XXS, IQ2XS, IQ2S, IQ3XXS, IQ3S, IQ1S, IQ1M };
#define IQ_IS_1(kind) ((kind) == IQ1S || (kind) == IQ1M)

static const size_t iq_block_bytes[7] = {sizeof(block_iq2_xxs), sizeof(block_iq2_xs), sizeof(block_iq2_s),
                                         sizeof(block_iq3_xxs), sizeof(block_iq3_s), sizeof(block_iq1_s),
                                         sizeof(block_iq1_m)};

/* tokens per decoded block (groups of 8; the float sums stay on the stack) */
#define IQ_CHUNK 64

/* one block decoded: sub-block ib's 32 weights are the unsigned bytes
 * g[ib] with the signs of sg[ib] (vpsignb moves them onto the
 * activations, as in dot32); s[2 ib] and s[2 ib + 1] are the float scales
 * of its two halves */
typedef struct {
    __m256i g[8], sg[8];
    float s[16];
} iq_prep;

AI void iq_prepare(const int kind, const uint8_t *blk, iq_prep *p)
{
    if (IQ_IS_1(kind)) {
        float d;
        if (kind == IQ1S) {
            const block_iq1_s *b = (const block_iq1_s *)blk;
            d = f16_to_f32(b->d);
            for (int ib = 0; ib < 8; ib++) {
                const __m256i w = iq1s_w(b, ib);
                p->g[ib] = _mm256_abs_epi8(w);
                p->sg[ib] = w;
                /* 2 k + 1 per sub-block, for both its 16s */
                const float s = d * (float)(2 * ((b->qh[ib] >> 12) & 7) + 1);
                p->s[2 * ib] = p->s[2 * ib + 1] = s;
            }
        } else {
            const block_iq1_m *b = (const block_iq1_m *)blk;
            uint16_t sc[4];
            memcpy(sc, b->scales, 8);
            const uint16_t hd = (uint16_t)((sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) |
                                           ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000));
            d = f16_to_f32(hd);
            for (int ib = 0; ib < 8; ib++) {
                const __m256i w = iq1m_w(b, ib);
                p->g[ib] = _mm256_abs_epi8(w);
                p->sg[ib] = w;
            }
            /* scale g of 16 is bits 3 (g % 4) of sc[g / 4] */
            for (int g = 0; g < 16; g++)
                p->s[g] = d * (float)(2 * ((sc[g / 4] >> (3 * (g % 4))) & 7) + 1);
        }
        return;
    }
    uint16_t h; /* every IQ2/IQ3 block starts with its f16 d */
    memcpy(&h, blk, 2);
    const float d = f16_to_f32(h);
    for (int ib = 0; ib < 8; ib++) {
        sub32 o;
        switch (kind) {
        case IQ2XXS: o = sub_iq2_xxs((const block_iq2_xxs *)blk, d, ib); break;
        case IQ2XS: o = sub_iq2_xs((const block_iq2_xs *)blk, d, ib); break;
        case IQ2S: o = sub_iq2_s((const block_iq2_s *)blk, d, ib); break;
        case IQ3XXS: o = sub_iq3_xxs((const block_iq3_xxs *)blk, d, ib); break;
        default: o = sub_iq3_s((const block_iq3_s *)blk, d, ib); break;
        }
        p->g[ib] = o.g;
        p->sg[ib] = o.sg;
        p->s[2 * ib] = o.s0;
        p->s[2 * ib + 1] = o.s1;
    }
}

/* lane t: the float term of one half for token t (see the top) */
AI __m256 iq_term(const int kind, float s, __m256i sum)
{
    const __m256 f = _mm256_cvtepi32_ps(sum);
    if (IQ_IS_1(kind))
        return _mm256_mul_ps(_mm256_set1_ps(s), _mm256_mul_ps(f, _mm256_set1_ps(0.125f)));
    return _mm256_mul_ps(_mm256_set1_ps(s), f);
}

/* per 128-bit half: token a's sums of 8 pairs' halves, then token b's,
 * in int32 ([a 0..3, a 4..7, b 0..3, b 4..7] of the 8 int16 pairs) */
AI __m256i iq_sum8(__m256i a, __m256i b)
{
    return _mm256_madd_epi16(_mm256_hadd_epi16(a, b), _mm256_set1_epi16(1));
}

/* acc lane t += d_a bs of the prepared block p and token t < nt (nt <= 8)
 * of the activation blocks a + t as; lanes t >= nt are left meaningless */
AI void iq_group(const int kind, const iq_prep *p, const uint8_t *a, size_t as, const int nt, __m256 *acc)
{
    const block_q8_K *at[8];
    float da[8];
#pragma GCC unroll 8
    for (int t = 0; t < 8; t++) {
        at[t] = t < nt ? (const block_q8_K *)(a + (size_t)t * as) : NULL;
        da[t] = t < nt ? at[t]->d : 0.0f;
    }
    __m256 bs = _mm256_setzero_ps();
#pragma GCC unroll 8
    for (int ib = 0; ib < 8; ib++) {
        /* int16 pairs of weights times activations, |.| <= 2 * 62 * 128 */
        __m256i m[8];
#pragma GCC unroll 8
        for (int t = 0; t < 8; t++)
            m[t] = t < nt ? _mm256_maddubs_epi16(p->g[ib], _mm256_sign_epi8(_mm256_loadu_si256(
                                                                  (const __m256i *)(at[t]->qs + 32 * ib)),
                                                              p->sg[ib]))
                          : _mm256_setzero_si256();
        /* two tokens' sums of 4 (within int16: 4 * 62 * 128 < 2^15), of 8
         * in int32, then four tokens' sums of 16:
         * [t0 first 16, t1, t2, t3 | t0 second 16, t1, t2, t3]; then t4..7 */
        const __m256i h0 = _mm256_hadd_epi32(iq_sum8(m[0], m[1]), iq_sum8(m[2], m[3]));
        const __m256i h1 = nt > 4 ? _mm256_hadd_epi32(iq_sum8(m[4], m[5]), iq_sum8(m[6], m[7]))
                                  : _mm256_setzero_si256();
        const __m256i lo = _mm256_permute2x128_si256(h0, h1, 0x20);
        const __m256i hi = _mm256_permute2x128_si256(h0, h1, 0x31);
        bs = _mm256_add_ps(bs, iq_term(kind, p->s[2 * ib], lo));
        bs = _mm256_add_ps(bs, iq_term(kind, p->s[2 * ib + 1], hi));
    }
    *acc = _mm256_add_ps(*acc, _mm256_mul_ps(_mm256_loadu_ps(da), bs));
}

/* y[t * ldy] for one row (w, nb blocks) and tokens t < nt <= IQ_CHUNK */
AI void iq_row(const int kind, const uint8_t *w, int64_t nb, const uint8_t *a, size_t as, int nt,
               float *y, int64_t ldy)
{
    const size_t bb = iq_block_bytes[kind];
    const int full = nt / 8, rest = nt % 8;
    __m256 acc[IQ_CHUNK / 8];
    for (int g = 0; g <= full && g < IQ_CHUNK / 8; g++)
        acc[g] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        iq_prep p;
        iq_prepare(kind, w + (size_t)b * bb, &p);
        const uint8_t *ab = a + (size_t)b * sizeof(block_q8_K);
        for (int g = 0; g < full; g++)
            iq_group(kind, &p, ab + (size_t)(8 * g) * as, as, 8, &acc[g]);
        if (rest)
            iq_group(kind, &p, ab + (size_t)(8 * full) * as, as, rest, &acc[full]);
    }
    for (int g = 0; 8 * g < nt; g++) {
        float v[8];
        _mm256_storeu_ps(v, acc[g]);
        for (int t = 0; t < 8 && 8 * g + t < nt; t++)
            y[(8 * g + t) * ldy] = v[t];
    }
}

static const mr_vec_dot_fn iq_dot[7] = {dot_iq2_xxs, dot_iq2_xs, dot_iq2_s, dot_iq3_xxs,
                                        dot_iq3_s,   dot_iq1_s,  dot_iq1_m};

AI void gemm_iq(const int kind, const void *w, size_t ws, const void *act, size_t as, int64_t n,
                int64_t n_tok, float *y, int64_t ldy, int64_t r0, int64_t r1)
{
    const uint8_t *wb = (const uint8_t *)w, *ab = (const uint8_t *)act;
    if (n_tok == 1) { /* decode: the dot, row by row */
        for (int64_t r = r0; r < r1; r++)
            y[r] = iq_dot[kind](wb + (size_t)r * ws, act, n);
        return;
    }
    for (int64_t r = r0; r < r1; r++)
        for (int64_t t = 0; t < n_tok; t += IQ_CHUNK) {
            const int nt = (int)(n_tok - t < IQ_CHUNK ? n_tok - t : IQ_CHUNK);
            iq_row(kind, wb + (size_t)r * ws, n / QK_K, ab + (size_t)t * as, as, nt, y + t * ldy + r, ldy);
        }
}

#define IQ_GEMM(t, kind)                                                                              \
    static void gemm_##t(const void *w, size_t w_stride, const void *act, size_t a_stride, int64_t n, \
                         int64_t n_tok, float *y, int64_t ldy, int64_t r0, int64_t r1)               \
    {                                                                                                 \
        gemm_iq(kind, w, w_stride, act, a_stride, n, n_tok, y, ldy, r0, r1);                          \
    }
IQ_GEMM(iq2_xxs, IQ2XXS)
IQ_GEMM(iq2_xs, IQ2XS)
IQ_GEMM(iq2_s, IQ2S)
IQ_GEMM(iq3_xxs, IQ3XXS)
IQ_GEMM(iq3_s, IQ3S)
IQ_GEMM(iq1_s, IQ1S)
IQ_GEMM(iq1_m, IQ1M)

void mr_kernels_init_avx2_iq(mr_kernels *k)
{
    k->vec_dot[MR_TYPE_IQ2_XXS] = dot_iq2_xxs;
    k->vec_dot[MR_TYPE_IQ2_XS] = dot_iq2_xs;
    k->vec_dot[MR_TYPE_IQ2_S] = dot_iq2_s;
    k->vec_dot[MR_TYPE_IQ3_XXS] = dot_iq3_xxs;
    k->vec_dot[MR_TYPE_IQ3_S] = dot_iq3_s;
    k->vec_dot[MR_TYPE_IQ1_S] = dot_iq1_s;
    k->vec_dot[MR_TYPE_IQ1_M] = dot_iq1_m;
    /* the gemm beside its dot, always: the AVX-512 table takes both */
    k->gemm[MR_TYPE_IQ2_XXS] = gemm_iq2_xxs;
    k->gemm[MR_TYPE_IQ2_XS] = gemm_iq2_xs;
    k->gemm[MR_TYPE_IQ2_S] = gemm_iq2_s;
    k->gemm[MR_TYPE_IQ3_XXS] = gemm_iq3_xxs;
    k->gemm[MR_TYPE_IQ3_S] = gemm_iq3_s;
    k->gemm[MR_TYPE_IQ1_S] = gemm_iq1_s;
    k->gemm[MR_TYPE_IQ1_M] = gemm_iq1_m;
}
