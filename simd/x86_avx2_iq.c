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

#include "x86_iq.h"

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

/* one 32-weight sub-block in registers: the 32 magnitudes g, the signs sg
 * (+-1, or for IQ1 the signed weights themselves), the int16 scales k16 */
typedef struct {
    __m256i g, sg, k16;
} sub32;

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

AI sub32 iq1_sub(__m256i w, __m256i k16)
{
    sub32 o;
    o.g = _mm256_abs_epi8(w);
    o.sg = w;
    o.k16 = k16;
    return o;
}

/* sub-block ib: the magnitudes, the signs, the scales */
AI sub32 iq_sub(const int kind, const uint8_t *blk, const iq_blk *k, int ib)
{
    sub32 o;
    if (IQ_IS_1(kind))
        return iq1_sub(iq1_w32(kind, blk, ib),
                       kind == IQ1S ? k_one(2 * ((((const block_iq1_s *)blk)->qh[ib] >> 12) & 7) + 1)
                                    : k_pair(k->kb, ib));
    o.g = iq_grid32(kind, blk, ib);
    o.sg = sign_sub(k->sgn, ib);
    switch (kind) {
    case IQ2XXS:
    case IQ3XXS: o.k16 = dword_all(k->kb, ib); break;
    case IQ3S: {
        const uint8_t sc = ((const block_iq3_s *)blk)->scales[ib / 2];
        o.k16 = k_one(1 + 2 * (uint32_t)(ib % 2 ? sc >> 4 : sc & 0xf));
        break;
    }
    default: o.k16 = k_pair(k->kb, ib); break;
    }
    return o;
}

/* acc + the 8 int32 lanes of sub-block o times the activations q, the
 * scales in (AVX-VNNI, the avx2vnni set: vpdpwssd adds as it multiplies;
 * the same integers) */
AI __m256i sub_dot(__m256i acc, sub32 o, __m256i q)
{
    const __m256i p = _mm256_maddubs_epi16(o.g, _mm256_sign_epi8(q, o.sg));
#ifdef __AVXVNNI__
    return _mm256_dpwssd_avx_epi32(acc, p, o.k16);
#else
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p, o.k16));
#endif
}

AI int hsum8(__m256i v)
{
    return hsum4(_mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1)));
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
            acc = sub_dot(acc, iq_sub(kind, blk, &k, ib), _mm256_loadu_si256((const __m256i *)(y[i].qs + 32 * ib)));
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
                s[t] = sub_dot(s[t], p->s[ib], _mm256_loadu_si256((const __m256i *)(at[t]->qs + 32 * ib)));
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

void mr_iq_gemm_avx2(int kind, const void *w, size_t ws, const void *act, size_t as, int64_t n,
                     int64_t n_tok, float *y, int64_t ldy, int64_t r0, int64_t r1)
{
    static const mr_gemm_fn g[7] = {gemm_iq2_xxs, gemm_iq2_xs, gemm_iq2_s, gemm_iq3_xxs,
                                    gemm_iq3_s,   gemm_iq1_s,  gemm_iq1_m};
    g[kind](w, ws, act, as, n, n_tok, y, ldy, r0, r1);
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
    /* the gemm beside its dot, always: the AVX-512 table takes both */
    k->gemm[MR_TYPE_IQ2_XXS] = gemm_iq2_xxs;
    k->gemm[MR_TYPE_IQ2_XS] = gemm_iq2_xs;
    k->gemm[MR_TYPE_IQ2_S] = gemm_iq2_s;
    k->gemm[MR_TYPE_IQ3_XXS] = gemm_iq3_xxs;
    k->gemm[MR_TYPE_IQ3_S] = gemm_iq3_s;
    k->gemm[MR_TYPE_IQ1_S] = gemm_iq1_s;
    k->gemm[MR_TYPE_IQ1_M] = gemm_iq1_m;
}
