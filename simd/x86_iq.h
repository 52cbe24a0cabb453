/* x86_iq.h - what the AVX2 and AVX-512 i-quant kernels (x86_avx2_iq.c,
 * x86_avx512_iq.c) share: each format's block read into vectors (the
 * integer scales k, the 32 sign bytes with their parity bits), a
 * sub-block's 32 codebook magnitudes (IQ1: its signed weights 8c + 8e), and
 * the per-format constants of the float rule (quant/ref_iq.c).  Inline
 * only: each file compiles them for its own instruction set. */
#ifndef MOERUN_X86_IQ_H
#define MOERUN_X86_IQ_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "../quant/types_iq.h"

#define AI static inline __attribute__((always_inline))

AI float f16_to_f32(uint16_t h)
{
    return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h)));
}

AI int hsum4(__m128i v)
{
    v = _mm_add_epi32(v, _mm_shuffle_epi32(v, 0x4e));
    v = _mm_add_epi32(v, _mm_shuffle_epi32(v, 0xb1));
    return _mm_cvtsi128_si32(v);
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

/* the scales 2 a + 1 of 8 dwords whose top nibble is a, as both int16
 * halves of each dword (dword_all then gives a sub-block's k16) */
AI __m256i k_top(__m256i a)
{
    const __m256i k = _mm256_add_epi32(_mm256_slli_epi32(_mm256_srli_epi32(a, 28), 1), _mm256_set1_epi32(1));
    return _mm256_or_si256(k, _mm256_slli_epi32(k, 16));
}

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

/* IQ2_S: the sign bytes stored as they are */
AI iq_blk blk_iq2_s(const block_iq2_s *b)
{
    iq_blk k;
    k.kb = k_nibbles(b->scales);
    k.sgn = _mm256_loadu_si256((const __m256i *)(b->qs + QK_K / 8));
    return k;
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
        h = mr_iq1_m_d((const block_iq1_m *)blk);
    else
        memcpy(&h, blk, 2);
    return f16_to_f32(h);
}

#define IQ_IS_1(kind) ((kind) == IQ1S || (kind) == IQ1M)

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

/* sub-block ib's 32 codebook magnitudes (IQ2, IQ3) */
AI __m256i iq_grid32(const int kind, const uint8_t *blk, int ib)
{
    switch (kind) {
    case IQ2XXS: {
        const uint8_t *i8 = (const uint8_t *)(((const block_iq2_xxs *)blk)->qs + 4 * ib);
        return G4(mr_iq2xxs_grid, i8[0], i8[1], i8[2], i8[3]);
    }
    case IQ2XS: {
        const uint16_t *q = ((const block_iq2_xs *)blk)->qs + 4 * ib;
        return G4(mr_iq2xs_grid, q[0] & 511, q[1] & 511, q[2] & 511, q[3] & 511);
    }
    case IQ2S: {
        const block_iq2_s *b = (const block_iq2_s *)blk;
        const uint8_t *qs = b->qs + 4 * ib;
        const uint32_t qh = b->qh[ib];
        return G4(mr_iq2s_grid, qs[0] | ((qh << 8) & 0x300), qs[1] | ((qh << 6) & 0x300),
                  qs[2] | ((qh << 4) & 0x300), qs[3] | ((qh << 2) & 0x300));
    }
    case IQ3XXS: return g8(mr_iq3xxs_grid, ((const block_iq3_xxs *)blk)->qs + 8 * ib);
    default: {
        const block_iq3_s *b = (const block_iq3_s *)blk;
        return g8s(b->qs + 8 * ib, b->qh[ib]);
    }
    }
}

/* IQ1 sub-block ib's signed weights 8c + 8e: the entries, and the deltas'
 * signs as bytes +-1 (IQ1_S: one per 32, bit 15 of qh[ib]; IQ1_M: one per
 * 8, bits 3 and 7 of qh[2 ib] and qh[2 ib + 1]) */
AI __m256i iq1_w32(const int kind, const uint8_t *blk, int ib)
{
    if (kind == IQ1S) {
        const block_iq1_s *b = (const block_iq1_s *)blk;
        const uint32_t qh = b->qh[ib];
        const uint8_t *qs = b->qs + 4 * ib;
        const __m256i g = G4(mr_iq1s_grid, qs[0] | ((qh & 7) << 8), qs[1] | (((qh >> 3) & 7) << 8),
                             qs[2] | (((qh >> 6) & 7) << 8), qs[3] | (((qh >> 9) & 7) << 8));
        const __m256i e = _mm256_or_si256(_mm256_srai_epi16(_mm256_set1_epi16((short)qh), 15),
                                          _mm256_set1_epi8(1));
        return iq1_w(g, e);
    }
    const block_iq1_m *b = (const block_iq1_m *)blk;
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

/* The AVX2 gemm (rows x tokens), which the AVX-512 table keeps for more
 * than one token: kind is the enum above. */
void mr_iq_gemm_avx2(int kind, const void *w, size_t ws, const void *act, size_t as, int64_t n,
                     int64_t n_tok, float *y, int64_t ldy, int64_t r0, int64_t r1);

#endif
