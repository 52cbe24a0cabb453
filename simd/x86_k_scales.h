/* x86_k_scales.h - what x86_avx2_k.c and x86_avx512_k.c share (AVX2
 * intrinsics; both units are built with at least AVX2): the packed
 * sub-block scales of Q3_K and IQ4_XS as int16 vectors, and the fixed-order
 * sum of 8 float lanes that ends every (row, token) dot.
 *
 * The scalar unpacking (16 or 8 byte stores, then one vector load) stalls
 * on store forwarding once per block and kept Q3_K at 14% of bandwidth;
 * these give the same values in a few vector operations (AVX2 IQ4_XS
 * broadcasts each scale from a register instead: faster there).  Layouts:
 * quant/ref_q3_k.c, quant/ref_iq4.c. */
#ifndef MR_X86_K_SCALES_H
#define MR_X86_K_SCALES_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

/* Fixed-order sum of 8 lanes: halves, then quarters, ... */
static inline __attribute__((always_inline)) float mr_hsum256(__m256 v)
{
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    q = _mm_add_ss(q, _mm_movehdup_ps(q));
    return _mm_cvtss_f32(q);
}

/* Q3_K: int16 lane j = sc[j] - 32 in [-32, 31], j < 16, where
 * sc[j] = (j < 8 ? s[j] & 15 : s[j - 8] >> 4) | ((s[8 + j % 4] >> 2 (j / 4)) & 3) << 4 */
static inline __attribute__((always_inline)) __m256i mr_q3_K_scales16(const uint8_t *s)
{
    uint64_t lo8;
    uint32_t hi4;
    memcpy(&lo8, s, 8);
    memcpy(&hi4, s + 8, 4);
    const __m128i m4 = _mm_set1_epi8(0x0f);
    const __m128i a = _mm_cvtsi64_si128((long long)lo8);
    /* bytes 0-7 the low nibbles, 8-15 the high ones (16-bit shift: the
     * neighbour's bits are masked off) */
    const __m128i lo = _mm_unpacklo_epi64(_mm_and_si128(a, m4), _mm_and_si128(_mm_srli_epi16(a, 4), m4));
    /* 32-bit lane L = s[8..11] >> 2L: byte j % 4 of lane j / 4 */
    const __m128i h = _mm_and_si128(_mm_srlv_epi32(_mm_set1_epi32((int)hi4), _mm_setr_epi32(0, 2, 4, 6)),
                                    _mm_set1_epi8(3));
    const __m128i sc = _mm_or_si128(lo, _mm_slli_epi16(h, 4));
    return _mm256_sub_epi16(_mm256_cvtepu8_epi16(sc), _mm256_set1_epi16(32));
}

/* IQ4_XS: int16 lane ib = ls[ib] - 32 in [-32, 31], ib < 8, where
 * ls[ib] = ((scales_l[ib / 2] >> 4 (ib % 2)) & 15) | ((scales_h >> 2 ib) & 3) << 4 */
static inline __attribute__((always_inline)) __m128i mr_iq4_xs_scales16(const uint8_t *scales_l,
                                                                        uint16_t scales_h)
{
    uint32_t l4;
    memcpy(&l4, scales_l, 4);
    const __m128i m4 = _mm_set1_epi8(0x0f);
    const __m128i a = _mm_cvtsi32_si128((int)l4);
    const __m128i lo = _mm_unpacklo_epi8(_mm_and_si128(a, m4), _mm_and_si128(_mm_srli_epi16(a, 4), m4));
    /* lane ib: scales_h << (14 - 2 ib) (mod 2^16), whose top two bits are
     * bits 2 ib, 2 ib + 1 */
    const __m128i sh = _mm_mullo_epi16(_mm_set1_epi16((short)scales_h),
                                       _mm_setr_epi16(1 << 14, 1 << 12, 1 << 10, 1 << 8, 1 << 6, 1 << 4, 1 << 2, 1));
    const __m128i hi = _mm_slli_epi16(_mm_srli_epi16(sh, 14), 4);
    return _mm_sub_epi16(_mm_or_si128(_mm_cvtepu8_epi16(lo), hi), _mm_set1_epi16(32));
}

#endif
