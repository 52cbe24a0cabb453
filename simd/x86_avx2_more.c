/* x86_avx2_more.c - MXFP4, IQ4_NL and Q5_0 weights dotted with Q8_0
 * activations and Q4_1/Q5_1 with Q8_1, in integers, AVX2: vec_dot and
 * gemm.  IQ4_XS, Q2_K and Q3_K with Q8_K are in x86_avx2_k.c.
 *
 * One block at a time: its 16 nibble bytes become one ymm of 32 codes in
 * element order (low nibbles are elements 0..15, high nibbles 16..31),
 * and the codes become signed weights w:
 *   MXFP4:  w = kv[q] in [-12, 12] (vpshufb of the doubled e2m1 table),
 *           block scale 2^(e - 128);
 *   IQ4_NL: w = kv[q] in [-127, 113] (vpshufb of the codebook), f16 d;
 *   Q5_0:   w = (q | fifth bit << 4) - 16 in [-16, 15], the fifth bits
 *           spread from qh to bytes by a shuffle and a bit test; f16 d.
 * vpmaddubsw wants an unsigned operand, so the sign moves to the
 * activations: |w| * (a with w's sign) = w * a, and pairs stay within
 * 2 * 127 * 127 = 32258 (no saturation); vpmaddwd adds pairs into 8 int32
 * lanes, each the exact dot of 4 elements.  acc += float(lanes) *
 * (d_w * d_a), the block scale formed as ggml forms it.
 *
 * gemm runs tiles of up to 4 rows x 1 token or 2 rows x 4 tokens: a
 * block's weights are decoded once per row and meet each token of the
 * tile while they are in registers, and every row's stream is prefetched
 * 8 KB ahead (without it one token read 2.2 GB/s on a Xeon family 6 model
 * 167, the demand misses serialised).  The vec_dot is the 1 x 1 tile, so
 * gemm, vec_dot and any row, token or thread split agree to the bit. */
#include "kernels.h"

#include <immintrin.h>
#include <string.h>

#define AI static inline __attribute__((always_inline))

enum { K_MXFP4 = 0, K_IQ4NL = 1, K_Q5_0 = 2, K_Q4_1 = 3, K_Q5_1 = 4 };

#define BLOCK_BYTES(kind)                                                                      \
    ((kind) == K_MXFP4 ? 17 : (kind) == K_IQ4NL ? 18 : (kind) == K_Q5_0 ? 22 : (kind) == K_Q4_1 ? 20 : 24)
#define HAS_MIN(kind) ((kind) == K_Q4_1 || (kind) == K_Q5_1)
#define PREFETCH_BYTES 8192

AI float f16_to_f32(uint16_t h)
{
    return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h)));
}

/* the 32 codes of 16 nibble bytes, in element order, in [0, 15] */
AI __m256i nibbles32(const uint8_t *qs)
{
    const __m128i q = _mm_loadu_si128((const __m128i *)qs);
    const __m256i z = _mm256_set_m128i(_mm_srli_epi16(q, 4), q);
    return _mm256_and_si256(z, _mm256_set1_epi8(0x0f));
}

/* byte j = 0xff if bit j of h is set, else 0 */
AI __m256i bits_to_bytes(uint32_t h)
{
    /* byte j = byte j / 8 of h */
    const __m256i spread = _mm256_shuffle_epi8(
        _mm256_set1_epi32((int)h),
        _mm256_setr_epi64x(0, 0x0101010101010101, 0x0202020202020202, 0x0303030303030303));
    /* keep bit j % 8 of it and test it */
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    return _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
}

/* mr_e8m0_to_f32_half (quant/ref_mxfp4.c), inline: 2^(e - 128), the
 * same bits; a call per block held one token at 2.6 GB/s */
AI float e8m0_half(uint8_t e)
{
    const uint32_t bits = e < 2 ? UINT32_C(0x00200000) << e : (uint32_t)(e - 1) << 23;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* the 32 signed weights of block i and its scale */
AI __m256i weights32(const int kind, const uint8_t *wb, int64_t i, float *dw)
{
    if (kind == K_MXFP4) {
        const block_mxfp4 *b = (const block_mxfp4 *)wb + i;
        const __m256i tbl = _mm256_setr_epi8(0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8,
                                             -12, 0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6,
                                             -8, -12);
        *dw = e8m0_half(b->e);
        return _mm256_shuffle_epi8(tbl, nibbles32(b->qs));
    }
    if (kind == K_IQ4NL) {
        const block_iq4_nl *b = (const block_iq4_nl *)wb + i;
        const __m256i tbl = _mm256_setr_epi8(-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25,
                                             38, 53, 69, 89, 113, -127, -104, -83, -65, -49, -35,
                                             -22, -10, 1, 13, 25, 38, 53, 69, 89, 113);
        *dw = f16_to_f32(b->d);
        return _mm256_shuffle_epi8(tbl, nibbles32(b->qs));
    }
    const block_q5_0 *b = (const block_q5_0 *)wb + i;
    uint32_t h;
    memcpy(&h, b->qh, 4);
    *dw = f16_to_f32(b->d);
    /* q5 = nibble | 16 where the fifth bit is set; w = q5 - 16 */
    const __m256i q5 = _mm256_or_si256(nibbles32(b->qs),
                                       _mm256_and_si256(bits_to_bytes(h), _mm256_set1_epi8(0x10)));
    return _mm256_sub_epi8(q5, _mm256_set1_epi8(16));
}

/* 8 int32 lanes, each the sum of 4 products u * s (u unsigned bytes, s
 * signed; their pairs never saturate int16): vpmaddubsw + vpmaddwd, or one
 * vpdpbusd in the avx2vnni set (the same integers) */
AI __m256i dot4(__m256i u, __m256i s)
{
#ifdef __AVXVNNI__
    return _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), u, s);
#else
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
#endif
}

AI float hsum256(__m256 v)
{
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    q = _mm_add_ss(q, _mm_movehdup_ps(q));
    return _mm_cvtss_f32(q);
}

/* Q4_1 / Q5_1: the 32 unsigned codes q of block i, its d and m.  With
 * Q8_1, x = d q + m and q is unsigned, so vpmaddubsw takes q as it is
 * (pairs within 2 * 31 * 127); the minimum's term m s is added per block
 * in a scalar sum, as ggml forms it. */
AI __m256i codes32_min(const int q5, const uint8_t *wb, int64_t i, float *dw, float *mw)
{
    if (q5) {
        const block_q5_1 *b = (const block_q5_1 *)wb + i;
        uint32_t h;
        memcpy(&h, b->qh, 4);
        *dw = f16_to_f32(b->d);
        *mw = f16_to_f32(b->m);
        return _mm256_or_si256(nibbles32(b->qs), _mm256_and_si256(bits_to_bytes(h), _mm256_set1_epi8(0x10)));
    }
    const block_q4_1 *b = (const block_q4_1 *)wb + i;
    *dw = f16_to_f32(b->d);
    *mw = f16_to_f32(b->m);
    return nibbles32(b->qs);
}

/* ------------------------------------------------------------ gemm */

#define TR 4 /* rows of a one-token tile */
#define TT 4 /* tokens of a two-row tile */

/* y[t * ldy + r] for the R rows at w (stride ws) x T tokens at act
 * (stride as), the block's weights decoded once for the T tokens.  Per
 * (row, token) and block, in order: acc = fma(float(lanes), d_a d_w, acc)
 * (Q4_1/Q5_1: d_w d_a, and ms += m_w s_a), then the fixed tree over acc's
 * lanes (+ ms): the same operations whatever R and T, so the vec_dot,
 * which is the 1 x 1 tile, and the gemm agree to the bit. */
AI void tile(const int kind, const int R, const int T, const uint8_t *w, size_t ws,
             const uint8_t *act, size_t as, int64_t nb, float *y, int64_t ldy)
{
    const size_t bs = BLOCK_BYTES(kind);
    __m256 acc[TR][TT];
    float ms[TR][TT];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) {
            acc[r][t] = _mm256_setzero_ps();
            ms[r][t] = 0.0f;
        }
    for (int64_t i = 0; i < nb; i++) {
        __m256i u[TR], sg[TR];
        float dw[TR], mw[TR];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const uint8_t *wr = w + (size_t)r * ws;
            _mm_prefetch((const char *)wr + (size_t)i * bs + PREFETCH_BYTES, _MM_HINT_T0);
            if (HAS_MIN(kind)) {
                u[r] = codes32_min(kind == K_Q5_1, wr, i, &dw[r], &mw[r]);
            } else {
                sg[r] = weights32(kind, wr, i, &dw[r]);
                u[r] = _mm256_sign_epi8(sg[r], sg[r]);
            }
        }
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) {
            if (HAS_MIN(kind)) {
                const block_q8_1 *a = (const block_q8_1 *)(act + (size_t)t * as) + i;
                const __m256i aq = _mm256_loadu_si256((const __m256i *)a->qs);
                const float da = f16_to_f32(a->d), sa = f16_to_f32(a->s);
#pragma GCC unroll 4
                for (int r = 0; r < R; r++) {
                    const __m256i p = dot4(u[r], aq);
                    acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(dw[r] * da), acc[r][t]);
                    ms[r][t] += mw[r] * sa;
                }
            } else {
                const block_q8_0 *a = (const block_q8_0 *)(act + (size_t)t * as) + i;
                const __m256i aq = _mm256_loadu_si256((const __m256i *)a->qs);
                const float da = f16_to_f32(a->d);
#pragma GCC unroll 4
                for (int r = 0; r < R; r++) {
                    const __m256i p = dot4(u[r], _mm256_sign_epi8(aq, sg[r]));
                    acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(da * dw[r]), acc[r][t]);
                }
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int t = 0; t < T; t++)
            y[(int64_t)t * ldy + r] = HAS_MIN(kind) ? hsum256(acc[r][t]) + ms[r][t] : hsum256(acc[r][t]);
}

/* Rows [r0, r1) x tokens: the rows in chunks of about 256 KB of weights
 * (they stay in L2 across the token groups), each chunk through every
 * group of up to 4 tokens in tiles of 2 rows (1 token: 4 rows). */
AI void gemm_kind(const int kind, const void *w, size_t ws, const void *act, size_t as, int64_t n,
                  int64_t n_tok, float *y, int64_t ldy, int64_t r0, int64_t r1)
{
    const int64_t nb = n / 32;
    const uint8_t *wb = w, *ab = act;
    int64_t chunk = (int64_t)((256 << 10) / (ws ? ws : 1));
    chunk = chunk < 4 ? 4 : chunk / 4 * 4;
    for (int64_t c0 = r0; c0 < r1; c0 += chunk) {
        const int64_t c1 = c0 + chunk < r1 ? c0 + chunk : r1;
        for (int64_t t0 = 0; t0 < n_tok; t0 += TT) {
            const int64_t tn = n_tok - t0 < TT ? n_tok - t0 : TT;
            const uint8_t *at = ab + (size_t)t0 * as;
            float *yt = y + t0 * ldy;
            int64_t r = c0;
            if (tn == 1) {
                for (; r + 4 <= c1; r += 4)
                    tile(kind, 4, 1, wb + (size_t)r * ws, ws, at, as, nb, yt + r, ldy);
                for (; r < c1; r++)
                    tile(kind, 1, 1, wb + (size_t)r * ws, ws, at, as, nb, yt + r, ldy);
                continue;
            }
#define ROWS_OF(T)                                                                             \
    do {                                                                                       \
        for (; r + 2 <= c1; r += 2)                                                            \
            tile(kind, 2, T, wb + (size_t)r * ws, ws, at, as, nb, yt + r, ldy);                \
        if (r < c1)                                                                            \
            tile(kind, 1, T, wb + (size_t)r * ws, ws, at, as, nb, yt + r, ldy);                \
    } while (0)
            switch (tn) {
            case 2: ROWS_OF(2); break;
            case 3: ROWS_OF(3); break;
            default: ROWS_OF(4); break;
            }
#undef ROWS_OF
        }
    }
}

#define GEMM(name, kind)                                                                       \
    static void name(const void *w, size_t ws, const void *act, size_t as, int64_t n,        \
                     int64_t n_tok, float *y, int64_t ldy, int64_t r0, int64_t r1)            \
    {                                                                                          \
        gemm_kind(kind, w, ws, act, as, n, n_tok, y, ldy, r0, r1);                \
    }
GEMM(gemm_mxfp4, K_MXFP4)
GEMM(gemm_iq4_nl, K_IQ4NL)
GEMM(gemm_q5_0, K_Q5_0)
GEMM(gemm_q4_1, K_Q4_1)
GEMM(gemm_q5_1, K_Q5_1)
#undef GEMM

AI float dot_kind(const int kind, const void *w, const void *act, int64_t n)
{
    float y;
    tile(kind, 1, 1, w, 0, act, 0, n / 32, &y, 1);
    return y;
}

static float mr_dot_q4_1_q8_1_avx2(const void *w, const void *act, int64_t n)
{
    return dot_kind(K_Q4_1, w, act, n);
}

static float mr_dot_q5_1_q8_1_avx2(const void *w, const void *act, int64_t n)
{
    return dot_kind(K_Q5_1, w, act, n);
}

static float mr_dot_mxfp4_q8_0_avx2(const void *w, const void *act, int64_t n)
{
    return dot_kind(K_MXFP4, w, act, n);
}

static float mr_dot_iq4_nl_q8_0_avx2(const void *w, const void *act, int64_t n)
{
    return dot_kind(K_IQ4NL, w, act, n);
}

static float mr_dot_q5_0_q8_0_avx2(const void *w, const void *act, int64_t n)
{
    return dot_kind(K_Q5_0, w, act, n);
}

void mr_kernels_init_avx2_more(mr_kernels *k)
{
    k->vec_dot[MR_TYPE_MXFP4] = mr_dot_mxfp4_q8_0_avx2;
    k->vec_dot[MR_TYPE_IQ4_NL] = mr_dot_iq4_nl_q8_0_avx2;
    k->vec_dot[MR_TYPE_Q5_0] = mr_dot_q5_0_q8_0_avx2;
    k->vec_dot[MR_TYPE_Q4_1] = mr_dot_q4_1_q8_1_avx2;
    k->vec_dot[MR_TYPE_Q5_1] = mr_dot_q5_1_q8_1_avx2;
    k->gemm[MR_TYPE_MXFP4] = gemm_mxfp4;
    k->gemm[MR_TYPE_IQ4_NL] = gemm_iq4_nl;
    k->gemm[MR_TYPE_Q5_0] = gemm_q5_0;
    k->gemm[MR_TYPE_Q4_1] = gemm_q4_1;
    k->gemm[MR_TYPE_Q5_1] = gemm_q5_1;
}
