/* x86_avx512_iq.c - the i-quants (IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S,
 * IQ1_S, IQ1_M) dotted with Q8_K activations, AVX-512 (BW, VL, VNNI): one
 * row and one token at a time, two 32-weight sub-blocks per zmm.
 *
 * What AVX-512 changes against x86_avx2_iq.c: the signs.  A sub-block
 * pair's 64 sign bits are a mask register as they stand (IQ2_S and IQ3_S
 * store them so; IQ2_XXS, IQ2_XS, IQ3_XXS after the parity bits of
 * x86_iq.h's ksigns32), and one masked vpsubb negates the activations
 * they mark, where AVX2 spreads four sign bytes over 32 lanes and compares
 * (five instructions per 32 weights).  IQ1's signed weights give their
 * mask with vpmovb2m.  The products go through vpmaddubsw, then vpdpwssd
 * with the int16 scales (one per 16 weights, vpermw out of the block's
 * 16), so each block is the same exact integer as the AVX2 kernel's and
 * the reference's, and the float rule, sum += (d d_a) (float)isum in block
 * order and the unit at the end, is theirs: the bits are the same
 * (test_quant_iq).  The codebook rows are still looked up one by one
 * (x86_iq.h: broadcasts and blends); more than one token goes to the AVX2
 * gemm, whose per-token work is already shared across the tokens. */
#include "kernels.h"

#include <immintrin.h>
#include <string.h>

#include "x86_iq.h"

/* the block's 16 scales k, one per 16 weights, as int16 in order */
AI __m256i k16_of(const int kind, const uint8_t *blk, const iq_blk *k)
{
    switch (kind) {
    case IQ2XXS:
    case IQ3XXS: return k->kb; /* k_top: k | k << 16, one dword per sub-block */
    case IQ2XS:
    case IQ2S:
    case IQ1M: return _mm256_cvtepu8_epi16(_mm256_castsi256_si128(k->kb));
    case IQ3S: { /* a nibble per sub-block, for both its 16s */
        uint32_t s;
        memcpy(&s, ((const block_iq3_s *)blk)->scales, 4);
        const __m128i v = _mm_cvtsi32_si128((int)s), m = _mm_set1_epi8(0x0f);
        const __m128i n = _mm_unpacklo_epi8(_mm_and_si128(v, m), _mm_and_si128(_mm_srli_epi16(v, 4), m));
        const __m128i kk = _mm_add_epi8(_mm_add_epi8(n, n), _mm_set1_epi8(1));
        return _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(kk, kk));
    }
    default: { /* IQ1_S: bits 12-14 of qh[ib], for both 16s */
        const __m128i qh = _mm_loadu_si128((const __m128i *)((const block_iq1_s *)blk)->qh);
        const __m128i kk = _mm_add_epi16(_mm_slli_epi16(_mm_and_si128(_mm_srli_epi16(qh, 12), _mm_set1_epi16(7)), 1),
                                         _mm_set1_epi16(1));
        return _mm256_set_m128i(_mm_unpackhi_epi16(kk, kk), _mm_unpacklo_epi16(kk, kk));
    }
    }
}

/* two ymm as one zmm */
AI __m512i join(__m256i lo, __m256i hi)
{
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

AI float iq_dot512(const int kind, const void *w, const void *xq, int64_t n)
{
    const uint8_t *x = w;
    const block_q8_K *y = xq;
    const size_t bb = iq_block_bytes[kind];
    const __m512i zero = _mm512_setzero_si512();
    /* int16 lane j of pair p takes scale 4 p + j / 8 */
    const __m512i lane_k = _mm512_set_epi64(0x0003000300030003ll, 0x0003000300030003ll, 0x0002000200020002ll,
                                            0x0002000200020002ll, 0x0001000100010001ll, 0x0001000100010001ll, 0, 0);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const uint8_t *blk = x + (size_t)i * bb;
        iq_prefetch(blk + IQ_PF, bb);
        const iq_blk k = iq_block(kind, blk);
        const __m512i kz = _mm512_castsi256_si512(k16_of(kind, blk, &k));
        uint64_t sm[4];
        if (!IQ_IS_1(kind))
            _mm256_storeu_si256((__m256i *)sm, k.sgn);
        __m512i acc = zero;
#pragma GCC unroll 4
        for (int p = 0; p < 4; p++) {
            __m512i g;
            __mmask64 neg;
            if (IQ_IS_1(kind)) {
                const __m512i wv = join(iq1_w32(kind, blk, 2 * p), iq1_w32(kind, blk, 2 * p + 1));
                g = _mm512_abs_epi8(wv);
                neg = _mm512_movepi8_mask(wv);
            } else {
                g = join(iq_grid32(kind, blk, 2 * p), iq_grid32(kind, blk, 2 * p + 1));
                neg = _cvtu64_mask64(sm[p]);
            }
            const __m512i ks = _mm512_permutexvar_epi16(_mm512_add_epi16(lane_k, _mm512_set1_epi16((short)(4 * p))), kz);
            const __m512i q = _mm512_loadu_si512((const void *)(y[i].qs + 64 * p));
            acc = _mm512_dpwssd_epi32(acc, _mm512_maddubs_epi16(g, _mm512_mask_sub_epi8(q, neg, zero, q)), ks);
        }
        sum += (iq_d(kind, blk) * y[i].d) * (float)_mm512_reduce_add_epi32(acc);
    }
    return sum * iq_unit[kind];
}

#define IQ512(t, kind)                                                                                  \
    static float dot_##t(const void *w, const void *xq, int64_t n)                                      \
    {                                                                                                   \
        return iq_dot512(kind, w, xq, n);                                                               \
    }                                                                                                   \
    static void gemm_##t(const void *w, size_t ws, const void *act, size_t as, int64_t n, int64_t n_tok, \
                         float *y, int64_t ldy, int64_t r0, int64_t r1)                                 \
    {                                                                                                   \
        if (n_tok > 1) {                                                                                \
            mr_iq_gemm_avx2(kind, w, ws, act, as, n, n_tok, y, ldy, r0, r1);                            \
            return;                                                                                     \
        }                                                                                               \
        for (int64_t r = r0; r < r1; r++)                                                               \
            y[r] = iq_dot512(kind, (const uint8_t *)w + (size_t)r * ws, act, n);                        \
    }
IQ512(iq2_xxs, IQ2XXS)
IQ512(iq2_xs, IQ2XS)
IQ512(iq2_s, IQ2S)
IQ512(iq3_xxs, IQ3XXS)
IQ512(iq3_s, IQ3S)
IQ512(iq1_s, IQ1S)
IQ512(iq1_m, IQ1M)

void mr_kernels_init_avx512_iq(mr_kernels *k)
{
    static const struct {
        uint32_t t;
        mr_vec_dot_fn dot;
        mr_gemm_fn gemm;
    } e[] = {{MR_TYPE_IQ2_XXS, dot_iq2_xxs, gemm_iq2_xxs}, {MR_TYPE_IQ2_XS, dot_iq2_xs, gemm_iq2_xs},
             {MR_TYPE_IQ2_S, dot_iq2_s, gemm_iq2_s},       {MR_TYPE_IQ3_XXS, dot_iq3_xxs, gemm_iq3_xxs},
             {MR_TYPE_IQ3_S, dot_iq3_s, gemm_iq3_s},       {MR_TYPE_IQ1_S, dot_iq1_s, gemm_iq1_s},
             {MR_TYPE_IQ1_M, dot_iq1_m, gemm_iq1_m}};
    for (size_t i = 0; i < sizeof e / sizeof e[0]; i++) {
        k->vec_dot[e[i].t] = e[i].dot;
        k->gemm[e[i].t] = e[i].gemm;
    }
}
