/* x86_avx2_iq.c - the i-quants (IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S,
 * IQ1_S, IQ1_M) dotted with Q8_K activations, AVX2: vec_dot (one row, one
 * token) and gemm (rows x tokens, at the end; the AVX-512 table inherits
 * both).
 *
 * Per 32 weights the block gives four codebook entries (8 unsigned bytes
 * each: IQ2 entries, or two IQ3 entries of 4), four sign bytes and two
 * integer scales k (one per 16).  The four entries become one ymm of 32
 * magnitudes (vpinsrq of the table rows), the sign bytes a ymm of +-1 that
 * moves onto the activations (vpsignb), and vpmaddubsw gives 16 int16
 * pairs; vpmaddwd with the scales as int16 (k of the first 16 in the low
 * half, of the second in the high) turns them into 8 int32 lanes of k
 * times 4 products, summed over the block's 8 sub-blocks.  IQ1 (entries
 * -1/0/1, a delta of +-1/8 per 8) does the same with the weights 8c + 8e
 * in [-9, 9].  So each block is one exact integer, as in the reference
 * (quant/ref_iq.c), and its float part, sum += (d d_a) (float)isum in
 * block order and the format's unit at the end, is the reference's: the
 * results are bit-identical (test_quant_iq). */
#include "kernels.h"

#include <immintrin.h>
#include <string.h>

#include "../quant/types_iq.h"

#define AI static inline __attribute__((always_inline))

AI float f16_to_f32(uint16_t h)
{
    return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h)));
}

/* The block's 32 sign bytes in one ymm, byte 4 ib + l for the 8 weights
 * of entry l of sub-block ib (bit j: weight j negated).  IQ2_XXS, IQ2_XS
 * and IQ3_XXS store 7 bits per 8 and the eighth makes the parity even
 * (ggml's ksigns table): here computed for all 32 at once, two nibble
 * parities (vpshufb) per byte, in place of 32 table loads and the scalar
 * shifts to index them. */
AI __m256i ksigns32(__m256i g7)
{
    const __m256i par = _mm256_setr_epi8(0, -128, -128, 0, -128, 0, 0, -128, -128, 0, 0, -128, 0, -128, -128, 0,
                                         0, -128, -128, 0, -128, 0, 0, -128, -128, 0, 0, -128, 0, -128, -128, 0);
    const __m256i m = _mm256_set1_epi8(0x0f);
    const __m256i p = _mm256_xor_si256(_mm256_shuffle_epi8(par, _mm256_and_si256(g7, m)),
                                       _mm256_shuffle_epi8(par, _mm256_and_si256(_mm256_srli_epi16(g7, 4), m)));
    return _mm256_or_si256(g7, p);
}

/* 8 dwords a (one per sub-block: four 7-bit sign groups, then the 4-bit
 * scale) to their 32 group bytes */
AI __m256i groups7(__m256i a)
{
    const __m256i m0 = _mm256_set1_epi32(0x7f), m1 = _mm256_set1_epi32(0x7f00);
    const __m256i m2 = _mm256_set1_epi32(0x7f0000), m3 = _mm256_set1_epi32(0x7f000000);
    return _mm256_or_si256(
        _mm256_or_si256(_mm256_and_si256(a, m0), _mm256_and_si256(_mm256_slli_epi32(a, 1), m1)),
        _mm256_or_si256(_mm256_and_si256(_mm256_slli_epi32(a, 2), m2), _mm256_and_si256(_mm256_slli_epi32(a, 3), m3)));
}

/* the dword ib of v in all 8 lanes */
AI __m256i dword_all(__m256i v, int ib)
{
    return _mm256_permutevar8x32_epi32(v, _mm256_set1_epi32(ib));
}

/* 32 bytes of +1 / -1 for sub-block ib from the block's sign bytes sgn:
 * its four bytes spread over 8 lanes each (vpshufb), bit-tested */
AI __m256i sign_sub(__m256i sgn, int ib)
{
    const __m256i spread = _mm256_set_epi64x(0x0303030303030303ll, 0x0202020202020202ll,
                                             0x0101010101010101ll, 0x0000000000000000ll);
    const __m256i bytes = _mm256_shuffle_epi8(dword_all(sgn, ib), spread);
    const __m256i bit = _mm256_set1_epi64x((int64_t)0x8040201008040201ull);
    const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(bytes, bit), bit);
    return _mm256_or_si256(set, _mm256_set1_epi8(1));
}

/* the scales 2 a + 1 of 8 dwords whose top nibble is a, as both int16
 * halves of each dword (dword_all then gives a sub-block's k16) */
AI __m256i k_top(__m256i a)
{
    const __m256i k = _mm256_add_epi32(_mm256_slli_epi32(_mm256_srli_epi32(a, 28), 1), _mm256_set1_epi32(1));
    return _mm256_or_si256(k, _mm256_slli_epi32(k, 16));
}

AI int hsum4(__m128i v)
{
    v = _mm_add_epi32(v, _mm_shuffle_epi32(v, 0x4e));
    v = _mm_add_epi32(v, _mm_shuffle_epi32(v, 0xb1));
    return _mm_cvtsi128_si32(v);
}

/* one 32-weight sub-block in registers: the 32 magnitudes g, the signs sg
 * (+-1, or for IQ1 the signed weights themselves), the int16 scales k16 */
typedef struct {
    __m256i g, sg, k16;
} sub32;

/* Four 8-byte table rows as one ymm.  Each row broadcast from memory (a
 * load, no shuffle) and blended: the vpinsrq/vinserti128 way put three
 * shuffles per 32 weights on the one port that also spreads the signs. */
AI __m256i g4(const uint64_t *t, uint32_t a, uint32_t b, uint32_t c, uint32_t d)
{
    const __m256i va = _mm256_set1_epi64x((int64_t)t[a]), vb = _mm256_set1_epi64x((int64_t)t[b]);
    const __m256i vc = _mm256_set1_epi64x((int64_t)t[c]), vd = _mm256_set1_epi64x((int64_t)t[d]);
    return _mm256_blend_epi32(_mm256_blend_epi32(va, vb, 0x0c), _mm256_blend_epi32(vc, vd, 0xc0), 0xf0);
}
#define G4(t, a, b, c, d) g4((t), (a), (b), (c), (d))

/* eight 4-byte table rows (IQ3), the same way */
AI __m256i g8(const uint32_t *t, const uint8_t *q)
{
    __m256i v[8];
#pragma GCC unroll 8
    for (int j = 0; j < 8; j++)
        v[j] = _mm256_set1_epi32((int)t[q[j]]);
    const __m256i v01 = _mm256_blend_epi32(v[0], v[1], 0x02), v23 = _mm256_blend_epi32(v[2], v[3], 0x08);
    const __m256i v45 = _mm256_blend_epi32(v[4], v[5], 0x20), v67 = _mm256_blend_epi32(v[6], v[7], 0x80);
    return _mm256_blend_epi32(_mm256_blend_epi32(v01, v23, 0x0c), _mm256_blend_epi32(v45, v67, 0xc0), 0xf0);
}

/* one scale k for all 32 */
AI __m256i k_one(uint32_t k)
{
    return _mm256_set1_epi16((short)k);
}

/* the scales of a block with one per 16 (IQ2_XS, IQ2_S, IQ1_M): kb holds
 * the 16 k as bytes in both halves; sub-block ib takes byte 2 ib into the
 * int16 lanes of the low half and 2 ib + 1 into the high (vpshufb with a
 * zero high byte) */
AI __m256i k_pair(__m256i kb, int ib)
{
    const __m256i ctl = _mm256_add_epi16(_mm256_setr_epi64x((int64_t)0x8000800080008000ll, (int64_t)0x8000800080008000ll,
                                                            (int64_t)0x8001800180018001ll, (int64_t)0x8001800180018001ll),
                                         _mm256_set1_epi16((short)(2 * ib)));
    return _mm256_shuffle_epi8(kb, ctl);
}

/* 16 scale bytes 2 n + 1 from 8 bytes of nibbles (low nibble first) */
AI __m256i k_nibbles(const uint8_t *sc)
{
    const __m128i v = _mm_loadl_epi64((const __m128i *)sc);
    const __m128i m = _mm_set1_epi8(0x0f);
    const __m128i n = _mm_unpacklo_epi8(_mm_and_si128(v, m), _mm_and_si128(_mm_srli_epi16(v, 4), m));
    const __m128i k = _mm_add_epi8(_mm_add_epi8(n, n), _mm_set1_epi8(1));
    return _mm256_broadcastsi128_si256(k);
}

/* per block: the scale vector (kb) and the sign bytes (sgn) */
typedef struct {
    __m256i kb, sgn;
} iq_blk;

/* IQ2_XXS: per sub-block 8 bytes, four grid indices and a dword of four
 * 7-bit sign groups under the scale; the dwords gathered by vshufps */
AI iq_blk blk_iq2_xxs(const block_iq2_xxs *b)
{
    const __m256 v0 = _mm256_castsi256_ps(_mm256_loadu_si256((const __m256i *)b->qs));
    const __m256 v1 = _mm256_castsi256_ps(_mm256_loadu_si256((const __m256i *)(b->qs + 16)));
    /* odd dwords: sub-blocks 0 1 4 5 | 2 3 6 7, then in order */
    const __m256i a = _mm256_permute4x64_epi64(_mm256_castps_si256(_mm256_shuffle_ps(v0, v1, 0xdd)), 0xd8);
    iq_blk k;
    k.kb = k_top(a);
    k.sgn = ksigns32(groups7(a));
    return k;
}

AI sub32 sub_iq2_xxs(const block_iq2_xxs *b, const iq_blk *k, int ib)
{
    const uint8_t *i8 = (const uint8_t *)(b->qs + 4 * ib);
    sub32 o;
    o.k16 = dword_all(k->kb, ib);
    o.g = G4(mr_iq2xxs_grid, i8[0], i8[1], i8[2], i8[3]);
    o.sg = sign_sub(k->sgn, ib);
    return o;
}

/* IQ2_XS: 16-bit codes, a 9-bit index under 7 sign bits */
AI iq_blk blk_iq2_xs(const block_iq2_xs *b)
{
    const __m256i v0 = _mm256_srli_epi16(_mm256_loadu_si256((const __m256i *)b->qs), 9);
    const __m256i v1 = _mm256_srli_epi16(_mm256_loadu_si256((const __m256i *)(b->qs + 16)), 9);
    iq_blk k;
    k.kb = k_nibbles(b->scales);
    k.sgn = ksigns32(_mm256_permute4x64_epi64(_mm256_packus_epi16(v0, v1), 0xd8));
    return k;
}

AI sub32 sub_iq2_xs(const block_iq2_xs *b, const iq_blk *k, int ib)
{
    sub32 o;
    o.k16 = k_pair(k->kb, ib);
    const uint16_t *q = b->qs + 4 * ib;
    o.g = G4(mr_iq2xs_grid, q[0] & 511, q[1] & 511, q[2] & 511, q[3] & 511);
    o.sg = sign_sub(k->sgn, ib);
    return o;
}

/* IQ2_S: the sign bytes stored as they are */
AI iq_blk blk_iq2_s(const block_iq2_s *b)
{
    iq_blk k;
    k.kb = k_nibbles(b->scales);
    k.sgn = _mm256_loadu_si256((const __m256i *)(b->qs + QK_K / 8));
    return k;
}

AI sub32 sub_iq2_s(const block_iq2_s *b, const iq_blk *k, int ib)
{
    sub32 o;
    o.k16 = k_pair(k->kb, ib);
    const uint8_t *qs = b->qs + 4 * ib;
    const uint32_t qh = b->qh[ib];
    o.g = G4(mr_iq2s_grid, qs[0] | ((qh << 8) & 0x300), qs[1] | ((qh << 6) & 0x300),
             qs[2] | ((qh << 4) & 0x300), qs[3] | ((qh << 2) & 0x300));
    o.sg = sign_sub(k->sgn, ib);
    return o;
}

/* IQ3_XXS: the 8 dwords of sign groups and scales follow the indices */
AI iq_blk blk_iq3_xxs(const block_iq3_xxs *b)
{
    const __m256i a = _mm256_loadu_si256((const __m256i *)(b->qs + QK_K / 4));
    iq_blk k;
    k.kb = k_top(a);
    k.sgn = ksigns32(groups7(a));
    return k;
}

AI sub32 sub_iq3_xxs(const block_iq3_xxs *b, const iq_blk *k, int ib)
{
    sub32 o;
    o.k16 = dword_all(k->kb, ib);
    const uint8_t *qs = b->qs + 8 * ib;
    o.g = g8(mr_iq3xxs_grid, qs);
    o.sg = sign_sub(k->sgn, ib);
    return o;
}

/* IQ3_S: eight 9-bit indices, the ninth bits in qh */
AI __m256i g8s(const uint8_t *qs, uint32_t qh)
{
    __m256i v[8];
#pragma GCC unroll 8
    for (int j = 0; j < 8; j++)
        v[j] = _mm256_set1_epi32((int)mr_iq3s_grid[qs[j] | ((qh << (8 - j)) & 256)]);
    const __m256i v01 = _mm256_blend_epi32(v[0], v[1], 0x02), v23 = _mm256_blend_epi32(v[2], v[3], 0x08);
    const __m256i v45 = _mm256_blend_epi32(v[4], v[5], 0x20), v67 = _mm256_blend_epi32(v[6], v[7], 0x80);
    return _mm256_blend_epi32(_mm256_blend_epi32(v01, v23, 0x0c), _mm256_blend_epi32(v45, v67, 0xc0), 0xf0);
}

AI iq_blk blk_iq3_s(const block_iq3_s *b)
{
    iq_blk k;
    k.kb = _mm256_setzero_si256();
    k.sgn = _mm256_loadu_si256((const __m256i *)b->signs);
    return k;
}

AI sub32 sub_iq3_s(const block_iq3_s *b, const iq_blk *k, int ib)
{
    sub32 o;
    const uint32_t sc = ib % 2 ? b->scales[ib / 2] >> 4 : b->scales[ib / 2] & 0xf;
    o.k16 = k_one(1 + 2 * sc);
    const uint8_t *qs = b->qs + 8 * ib;
    const uint32_t qh = b->qh[ib];
    o.g = g8s(qs, qh);
    o.sg = sign_sub(k->sgn, ib);
    return o;
}

/* IQ1: weight = s (c + e), c in {-1, 0, 1}, e = +-1/8 per 8 weights, so
 * 8 (c + e) = 8c + 8e is an integer in [-9, 9]: the signed weight itself
 * is sg (vpsignb takes its sign, and its zeros where g = |w| = 0). */

/* the weights 8 c + e as bytes in [-9, 9]: g the entries' bytes (-1, 0,
 * 1), e the bytes +-1 */
AI __m256i iq1_w(__m256i g, __m256i e)
{
    const __m256i c8 = _mm256_and_si256(_mm256_slli_epi16(g, 3), _mm256_set1_epi8((char)0xf8));
    return _mm256_add_epi8(c8, e);
}

AI sub32 iq1_sub(__m256i w, __m256i k16)
{
    sub32 o;
    o.g = _mm256_abs_epi8(w);
    o.sg = w;
    o.k16 = k16;
    return o;
}

/* IQ1_S sub-block ib: entries, and the delta's sign as bytes +-1 */
AI sub32 sub_iq1_s(const block_iq1_s *b, int ib)
{
    const uint32_t qh = b->qh[ib];
    const uint8_t *qs = b->qs + 4 * ib;
    const __m256i g = G4(mr_iq1s_grid, qs[0] | ((qh & 7) << 8), qs[1] | (((qh >> 3) & 7) << 8),
                         qs[2] | (((qh >> 6) & 7) << 8), qs[3] | (((qh >> 9) & 7) << 8));
    const __m256i e = _mm256_or_si256(_mm256_srai_epi16(_mm256_set1_epi16((short)qh), 15),
                                      _mm256_set1_epi8(1));
    return iq1_sub(iq1_w(g, e), k_one(2 * ((qh >> 12) & 7) + 1));
}

/* IQ1_M: the 16 scale bytes 2 k + 1, k = bits 3 (g % 4) of sc[g / 4] */
AI __m256i iq1m_kb(const block_iq1_m *b)
{
    const __m256i s = _mm256_castsi128_si256(_mm_cvtepu16_epi32(_mm_loadl_epi64((const __m128i *)b->scales)));
    const __m256i s4 = _mm256_permutevar8x32_epi32(s, _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1));
    const __m256i t4 = _mm256_permutevar8x32_epi32(s, _mm256_setr_epi32(2, 2, 2, 2, 3, 3, 3, 3));
    const __m256i sh = _mm256_setr_epi32(0, 3, 6, 9, 0, 3, 6, 9);
    const __m256i seven = _mm256_set1_epi32(7), one = _mm256_set1_epi32(1);
    const __m256i k0 = _mm256_add_epi32(_mm256_slli_epi32(_mm256_and_si256(_mm256_srlv_epi32(s4, sh), seven), 1), one);
    const __m256i k1 = _mm256_add_epi32(_mm256_slli_epi32(_mm256_and_si256(_mm256_srlv_epi32(t4, sh), seven), 1), one);
    /* k0 (g 0..7), k1 (g 8..15) to 16 bytes in order: vpackssdw works per
     * half (k0 0..3, k1 0..3 | k0 4..7, k1 4..7), vpermq puts it right */
    const __m256i p = _mm256_permute4x64_epi64(_mm256_packs_epi32(k0, k1), 0xd8);
    const __m128i by = _mm_packus_epi16(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1));
    return _mm256_broadcastsi128_si256(by);
}

/* IQ1_M sub-block ib: entries, and the four deltas' signs (bits 3, 7 of
 * qh[2 ib] and qh[2 ib + 1]) as bytes +-1 per 8 */
AI sub32 sub_iq1_m(const block_iq1_m *b, __m256i kb, int ib)
{
    const uint32_t h0 = b->qh[2 * ib], h1 = b->qh[2 * ib + 1];
    const uint8_t *qs = b->qs + 4 * ib;
    const __m256i g = G4(mr_iq1s_grid, qs[0] | ((h0 << 8) & 0x700), qs[1] | ((h0 << 4) & 0x700),
                         qs[2] | ((h1 << 8) & 0x700), qs[3] | ((h1 << 4) & 0x700));
    const __m256i bits = _mm256_set_epi64x((int64_t)0x8000800080008000ll, 0x0800080008000800ll,
                                           0x0080008000800080ll, 0x0008000800080008ll);
    const __m256i hv = _mm256_and_si256(_mm256_set1_epi16((short)(h0 | h1 << 8)), bits);
    const __m256i e = _mm256_or_si256(_mm256_cmpeq_epi16(hv, bits), _mm256_set1_epi8(1));
    return iq1_sub(iq1_w(g, e), k_pair(kb, ib));
}

AI uint16_t iq1m_d(const block_iq1_m *b)
{
    uint16_t sc[4];
    memcpy(sc, b->scales, 8);
    return (uint16_t)((sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) | ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000));
}

enum { IQ2XXS, IQ2XS, IQ2S, IQ3XXS, IQ3S, IQ1S, IQ1M };

static const size_t iq_block_bytes[7] = {sizeof(block_iq2_xxs), sizeof(block_iq2_xs), sizeof(block_iq2_s),
                                         sizeof(block_iq3_xxs), sizeof(block_iq3_s), sizeof(block_iq1_s),
                                         sizeof(block_iq1_m)};

/* the power of two each format's integer weights are counted in */
static const float iq_unit[7] = {0.125f, 0.125f, 0.125f, 0.25f, 1.0f, 0.125f, 0.125f};

/* a block's f16 d: first for all but IQ1_M, whose d is spread over the
 * scales' top nibbles */
AI float iq_d(const int kind, const uint8_t *blk)
{
    uint16_t h;
    if (kind == IQ1M)
        h = iq1m_d((const block_iq1_m *)blk);
    else
        memcpy(&h, blk, 2);
    return f16_to_f32(h);
}

/* the per-block vectors */
AI iq_blk iq_block(const int kind, const uint8_t *blk)
{
    iq_blk k;
    switch (kind) {
    case IQ2XXS: return blk_iq2_xxs((const block_iq2_xxs *)blk);
    case IQ2XS: return blk_iq2_xs((const block_iq2_xs *)blk);
    case IQ2S: return blk_iq2_s((const block_iq2_s *)blk);
    case IQ3XXS: return blk_iq3_xxs((const block_iq3_xxs *)blk);
    case IQ3S: return blk_iq3_s((const block_iq3_s *)blk);
    case IQ1M: k.kb = iq1m_kb((const block_iq1_m *)blk); break;
    default: k.kb = _mm256_setzero_si256(); break;
    }
    k.sgn = _mm256_setzero_si256();
    return k;
}

AI sub32 iq_sub(const int kind, const uint8_t *blk, const iq_blk *k, int ib)
{
    switch (kind) {
    case IQ2XXS: return sub_iq2_xxs((const block_iq2_xxs *)blk, k, ib);
    case IQ2XS: return sub_iq2_xs((const block_iq2_xs *)blk, k, ib);
    case IQ2S: return sub_iq2_s((const block_iq2_s *)blk, k, ib);
    case IQ3XXS: return sub_iq3_xxs((const block_iq3_xxs *)blk, k, ib);
    case IQ3S: return sub_iq3_s((const block_iq3_s *)blk, k, ib);
    case IQ1S: return sub_iq1_s((const block_iq1_s *)blk, ib);
    default: return sub_iq1_m((const block_iq1_m *)blk, k->kb, ib);
    }
}

/* 8 int32 lanes of sub-block o times the activations q, the scales in */
AI __m256i sub_dot(sub32 o, __m256i q)
{
    return _mm256_madd_epi16(_mm256_maddubs_epi16(o.g, _mm256_sign_epi8(q, o.sg)), o.k16);
}

AI int hsum8(__m256i v)
{
    return hsum4(_mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1)));
}

/* Prefetch distance, bytes.  The lookups' addresses hang on the weight
 * bytes, so an out-of-order window holds only about two blocks' misses;
 * the hardware prefetcher alone left a DRAM-resident matrix at 1.3 GB/s
 * against 2.9 in cache (IQ2_XXS, Xeon family 6 model 167). */
#define IQ_PF 1024

/* every cache line of the block at p */
AI void iq_prefetch(const uint8_t *p, size_t bb)
{
    for (size_t o = 0; o < bb; o += 64)
        _mm_prefetch((const char *)p + o, _MM_HINT_T0);
}

/* one row, one token: per block the exact integer, then the float rule */
AI float iq_dot_kind(const int kind, const void *w, const void *xq, int64_t n)
{
    const uint8_t *x = w;
    const block_q8_K *y = xq;
    const size_t bb = iq_block_bytes[kind];
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const uint8_t *blk = x + (size_t)i * bb;
        iq_prefetch(blk + IQ_PF, bb);
        const iq_blk k = iq_block(kind, blk);
        __m256i acc = _mm256_setzero_si256();
#pragma GCC unroll 8
        for (int ib = 0; ib < 8; ib++)
            acc = _mm256_add_epi32(acc, sub_dot(iq_sub(kind, blk, &k, ib),
                                                _mm256_loadu_si256((const __m256i *)(y[i].qs + 32 * ib))));
        sum += (iq_d(kind, blk) * y[i].d) * (float)hsum8(acc);
    }
    return sum * iq_unit[kind];
}

#define IQ_DOT(t, kind)                                                    \
    static float dot_##t(const void *w, const void *xq, int64_t n)         \
    {                                                                      \
        return iq_dot_kind(kind, w, xq, n);                                \
    }
IQ_DOT(iq2_xxs, IQ2XXS)
IQ_DOT(iq2_xs, IQ2XS)
IQ_DOT(iq2_s, IQ2S)
IQ_DOT(iq3_xxs, IQ3XXS)
IQ_DOT(iq3_s, IQ3S)
IQ_DOT(iq1_s, IQ1S)
IQ_DOT(iq1_m, IQ1M)

/* ------------------------------------------------------------ gemm */

/* Rows x tokens (prompts, expert groups).  Each weight block is decoded
 * once per row and up to IQ_CHUNK tokens (the codebook lookups and the
 * signs, the costly part) into the vectors the dot above uses, and dotted
 * with the tokens 8 at a time: per token the dot's integer lanes, folded
 * (vphaddd: exact) into one vector of the 8 tokens' block integers, lane
 * t = token t; then lane t does the dot's float rule for token t,
 *   acc += (d d_a) (float)isum   per block, times the unit at the end,
 * so each (row, token) result is the dot's bits, whatever the number of
 * tokens, the rows or their range.  One token is the dot itself. */

/* tokens per decoded block (groups of 8; the float sums stay on the stack) */
#define IQ_CHUNK 64

typedef struct {
    sub32 s[8];
    float d;
} iq_prep;

AI void iq_prepare(const int kind, const uint8_t *blk, iq_prep *p)
{
    iq_prefetch(blk + IQ_PF, iq_block_bytes[kind]);
    const iq_blk k = iq_block(kind, blk);
    for (int ib = 0; ib < 8; ib++)
        p->s[ib] = iq_sub(kind, blk, &k, ib);
    p->d = iq_d(kind, blk);
}

/* lane t: the sum of the 8 lanes of v[t] */
AI __m256i hsum8x8(const __m256i v[8])
{
    const __m256i a = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
    const __m256i b = _mm256_hadd_epi32(_mm256_hadd_epi32(v[4], v[5]), _mm256_hadd_epi32(v[6], v[7]));
    return _mm256_add_epi32(_mm256_permute2x128_si256(a, b, 0x20), _mm256_permute2x128_si256(a, b, 0x31));
}

/* acc lane t += (d d_a) (float)isum of the prepared block p and token
 * t < nt (nt <= 8) of the activation blocks a + t as; lanes t >= nt are
 * left meaningless */
AI void iq_group(const iq_prep *p, const uint8_t *a, size_t as, const int nt, __m256 *acc)
{
    const block_q8_K *at[8];
    float da[8];
#pragma GCC unroll 8
    for (int t = 0; t < 8; t++) {
        at[t] = t < nt ? (const block_q8_K *)(a + (size_t)t * as) : NULL;
        da[t] = t < nt ? at[t]->d : 0.0f;
    }
    __m256i s[8];
#pragma GCC unroll 8
    for (int t = 0; t < 8; t++)
        s[t] = _mm256_setzero_si256();
#pragma GCC unroll 8
    for (int ib = 0; ib < 8; ib++)
#pragma GCC unroll 8
        for (int t = 0; t < 8; t++)
            if (t < nt)
                s[t] = _mm256_add_epi32(
                    s[t], sub_dot(p->s[ib], _mm256_loadu_si256((const __m256i *)(at[t]->qs + 32 * ib))));
    const __m256 f = _mm256_mul_ps(_mm256_set1_ps(p->d), _mm256_loadu_ps(da));
    *acc = _mm256_add_ps(*acc, _mm256_mul_ps(f, _mm256_cvtepi32_ps(hsum8x8(s))));
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
            iq_group(&p, ab + (size_t)(8 * g) * as, as, 8, &acc[g]);
        if (rest)
            iq_group(&p, ab + (size_t)(8 * full) * as, as, rest, &acc[full]);
    }
    const __m256 u = _mm256_set1_ps(iq_unit[kind]);
    for (int g = 0; 8 * g < nt; g++) {
        float v[8];
        _mm256_storeu_ps(v, _mm256_mul_ps(acc[g], u));
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
