/* x86_avx2_k.c - the K-quants (Q4_K, Q5_K, Q6_K) dotted with Q8_K
 * activations in integers, AVX2: vec_dot (one row, one token) and gemm
 * (rows x tokens, register-tiled), plus their exact-path f32 dots.
 *
 * Every K-quant super-block (256 weights) is first "prepared" into the
 * same shape, once per row and block, whatever the number of tokens:
 *   wv[v], v < 8:  weights 32v .. 32v + 31 as unsigned bytes
 *                  (Q4_K nibble in [0, 15], Q5_K in [0, 31], Q6_K the raw
 *                  6-bit q in [0, 63], its -32 offset handled below);
 *   sv[v]:         the int16 sub-block scale of each of those weights'
 *                  16-bit pair (Q4_K/Q5_K: one 6-bit scale per 32 weights;
 *                  Q6_K: one int8 scale per 16, so the two 128-bit halves
 *                  of sv[v] differ);
 *   cv:            16 int16 lanes matched with the Q8_K group sums bsums[g]
 *                  (16 activations each): Q4_K/Q5_K the 6-bit min m[g / 2],
 *                  Q6_K 32 * scales[g], so sum (q - 32) sc a =
 *                  sum q sc a - 32 sum_g sc[g] bsums[g].
 * A (row, token) block is then, in int32 lanes (exact),
 *   sumi = sum_v madd(maddubs(wv[v], a[32v..]), sv[v])     [Q6_K: - madd(cv, bsums)]
 * vpmaddubsw pairs stay within 2 * 63 * 127 = 16002 (no saturation), a
 * madd lane within 2 * 128 * 16002, 8 of them within 2^25.  Floats, per
 * block and in this order:
 *   acc = fma(float(sumi), d_w * d_a, acc)
 *   acc = fnmadd(float(madd(cv, bsums)), dmin_w * d_a, acc)   [Q4_K/Q5_K]
 * and the result is the same fixed tree over acc's 8 lanes.  Each
 * (row, token) pair runs exactly these operations whatever the tile, row
 * range, batch or thread split, so vec_dot and gemm agree to the bit.
 * Loads stay inside each block, so a row ending at a page boundary is
 * never read past.
 */
#include "x86_avx2.h"
#include "x86_k_scales.h"

#include <immintrin.h>
#include <string.h>

#define AI static inline __attribute__((always_inline))

/* K2 = Q2_K, K3 = Q3_K, KX = IQ4_XS (the further Q8_K formats) */
enum { K4 = 0, K5 = 1, K6 = 2, K2 = 3, K3 = 4, KX = 5 };
/* offset kinds: sumi - madd(cv, bsums); min kinds: a dmin term */
#define K_OFFSET(kind) ((kind) == K6 || (kind) == K3)
#define K_MIN(kind) ((kind) == K4 || (kind) == K5 || (kind) == K2)

/* gemm tile: TR rows x TT tokens of int32 block sums (8 ymm; the float
 * accumulators and prepared rows live on the stack, in L1) */
#define TR 2
#define TT 4
/* One token: rows in order, one stream, prefetched into L1 2 KB ahead.
 * 8 KB (x86_avx2_q.c's distance) held these heavier blocks below memory
 * speed: Xeon family 6 model 167, 1.5 GB of 768 x 2048 experts, GB/s at
 * 8 KB / 2 KB: Q6_K 8.6-9.1 / 12.4-12.9, Q5_K 8.4-8.7 / 12.8-13.3,
 * Q4_K 11.5-12.0 / 13.2-13.9, Q3_K 8.1-8.4 / 8.9-9.4, Q2_K the same
 * (4 KB and 1 KB in between; into L2 at 8 KB: Q6_K 11.1).  Q4_0/Q8_0's
 * lighter loop streams the same at either distance. */
#define PREFETCH_BYTES 2048

static const size_t block_bytes[6] = {sizeof(block_q4_K), sizeof(block_q5_K), sizeof(block_q6_K),
                                     sizeof(block_q2_K), sizeof(block_q3_K), sizeof(block_iq4_xs)};

/* ------------------------------------------------------------ helpers */

AI float f16_to_f32(uint16_t h)
{
    return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h)));
}

/* The 6-bit scales and mins of a Q4_K/Q5_K block (ggml's 12-byte packing,
 * spelled out in quant/ref_q4_k.c) as bytes: sc[0..7] in bytes 0-7,
 * m[0..7] in bytes 8-15.  Decoded in general registers, which the AVX2
 * loop leaves idle (x86_avx512_k.c decodes with pshufb instead). */
AI __m128i k4_scales(const uint8_t *blk)
{
    uint32_t u[3];
    memcpy(u, blk + 4, 12);
    /* j < 4: low 6 bits of bytes j (scale) and j + 4 (min) */
    const uint32_t s_lo = u[0] & 0x3f3f3f3fu, m_lo = u[1] & 0x3f3f3f3fu;
    /* j >= 4: a nibble of byte j + 4, top 2 bits from bits 6-7 of byte j - 4 / j */
    const uint32_t s_hi = (u[2] & 0x0f0f0f0fu) | (((u[0] >> 6) & 0x03030303u) << 4);
    const uint32_t m_hi = ((u[2] >> 4) & 0x0f0f0f0fu) | (((u[1] >> 6) & 0x03030303u) << 4);
    return _mm_set_epi64x((long long)(m_lo | (uint64_t)m_hi << 32), (long long)(s_lo | (uint64_t)s_hi << 32));
}

typedef struct {
    __m256i wv[8]; /* weights 32v..32v+31, unsigned bytes (IQ4_XS: |w|) */
    __m256i sg[8]; /* IQ4_XS only: the signed weights, whose signs move to a */
    __m256i sv[8]; /* int16 scale of each pair */
    __m256i cv;    /* int16 lane g: factor of bsums[g] */
    float d, dmin; /* f16 scales as f32 (dmin: Q4_K/Q5_K only) */
} prepared;

/* pshufb controls: broadcast int16 lane 2k (low half) / 2k + 1 (high
 * half) of a 128-bit lane; Q4_K uses lane c of each half for both. */
AI __m256i bcast16(__m256i v, int lo, int hi)
{
    const __m256i ctl = _mm256_setr_epi8(
        (char)(2 * lo), (char)(2 * lo + 1), (char)(2 * lo), (char)(2 * lo + 1), (char)(2 * lo),
        (char)(2 * lo + 1), (char)(2 * lo), (char)(2 * lo + 1), (char)(2 * lo), (char)(2 * lo + 1),
        (char)(2 * lo), (char)(2 * lo + 1), (char)(2 * lo), (char)(2 * lo + 1), (char)(2 * lo),
        (char)(2 * lo + 1), (char)(2 * hi), (char)(2 * hi + 1), (char)(2 * hi), (char)(2 * hi + 1),
        (char)(2 * hi), (char)(2 * hi + 1), (char)(2 * hi), (char)(2 * hi + 1), (char)(2 * hi),
        (char)(2 * hi + 1), (char)(2 * hi), (char)(2 * hi + 1), (char)(2 * hi), (char)(2 * hi + 1),
        (char)(2 * hi), (char)(2 * hi + 1));
    return _mm256_shuffle_epi8(v, ctl);
}

/* One super-block of weights into the common shape (see the top). */
AI void prepare(const int kind, const uint8_t *blk, prepared *p)
{
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    if (kind == K2 || kind == K3) {
        /* weight 128h + 32k + l: bits 2k, 2k + 1 of qs[32h + l] (Q3_K:
         * | bit 4h + k of hmask[l] << 2, u = q + 4 in [0, 7]); sub-blocks
         * of 16 as Q6_K's, so vector 4h + k holds 8h + 2k and 8h + 2k + 1 */
        const block_q2_K *b2 = (const block_q2_K *)blk;
        const block_q3_K *b3 = (const block_q3_K *)blk;
        const __m256i m3 = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1);
        __m256i s16, hm = _mm256_setzero_si256();
        if (kind == K2) {
            const __m128i sc8 = _mm_loadu_si128((const __m128i *)b2->scales);
            /* scales[g] & 15 (4-bit scale), scales[g] >> 4 (min) */
            s16 = _mm256_cvtepu8_epi16(_mm_and_si128(sc8, _mm_set1_epi8(0x0f)));
            p->cv = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sc8, 4), _mm_set1_epi8(0x0f)));
        } else {
            s16 = mr_q3_K_scales16(b3->scales); /* sc - 32 in [-32, 31] */
            /* sum (u - 4) sc a = sum u sc a - sum_g 4 sc[g] bsums[g] */
            p->cv = _mm256_slli_epi16(s16, 2);
            hm = _mm256_loadu_si256((const __m256i *)b3->hmask);
        }
        const __m256i lo8 = _mm256_permute2x128_si256(s16, s16, 0x00);
        const __m256i hi8 = _mm256_permute2x128_si256(s16, s16, 0x11);
        const uint8_t *qs = kind == K2 ? b2->qs : b3->qs;
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            const __m256i q = _mm256_loadu_si256((const __m256i *)(qs + 32 * h));
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                /* 16-bit shifts: bits from the next byte are masked off */
                __m256i u = _mm256_and_si256(_mm256_srli_epi16(q, 2 * k), m3);
                if (kind == K3)
                    u = _mm256_or_si256(u, _mm256_slli_epi16(
                                               _mm256_and_si256(_mm256_srli_epi16(hm, 4 * h + k), one), 2));
                p->wv[4 * h + k] = u;
                p->sv[4 * h + k] = bcast16(h ? hi8 : lo8, 2 * k, 2 * k + 1);
            }
        }
        p->d = f16_to_f32(kind == K2 ? b2->d : b3->d);
        p->dmin = kind == K2 ? f16_to_f32(b2->dmin) : 0.0f;
        return;
    }
    if (kind == KX) {
        /* sub-block v: codebook weights in [-127, 113] (vpshufb of its 16
         * nibble bytes in element order), scale ls - 32 in [-32, 31] */
        const block_iq4_xs *b = (const block_iq4_xs *)blk;
        const __m256i tbl = _mm256_setr_epi8(-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25,
                                             38, 53, 69, 89, 113, -127, -104, -83, -65, -49, -35,
                                             -22, -10, 1, 13, 25, 38, 53, 69, 89, 113);
#pragma GCC unroll 8
        for (int v = 0; v < 8; v++) {
            const __m128i q = _mm_loadu_si128((const __m128i *)(b->qs + 16 * v));
            const __m256i z = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), m4);
            const __m256i wq = _mm256_shuffle_epi8(tbl, z);
            const int ls = ((b->scales_l[v / 2] >> 4 * (v % 2)) & 0x0f) | ((b->scales_h >> 2 * v) & 3) << 4;
            p->sg[v] = wq;
            p->wv[v] = _mm256_abs_epi8(wq);
            p->sv[v] = _mm256_set1_epi16((short)(ls - 32));
        }
        p->cv = _mm256_setzero_si256();
        p->d = f16_to_f32(b->d);
        p->dmin = 0.0f;
        return;
    }
    if (kind == K6) {
        const block_q6_K *b = (const block_q6_K *)blk;
        const __m256i m2 = _mm256_set1_epi8(0x30);
        /* s16 = the 16 int8 scales as int16, in [-128, 127] */
        const __m256i s16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)b->scales));
        /* lo8 = scales 0..7 in both halves, hi8 = scales 8..15 */
        const __m256i lo8 = _mm256_permute2x128_si256(s16, s16, 0x00);
        const __m256i hi8 = _mm256_permute2x128_si256(s16, s16, 0x11);
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            const __m256i qa = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * h));
            const __m256i qb = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * h + 32));
            const __m256i qh = _mm256_loadu_si256((const __m256i *)(b->qh + 32 * h));
            /* weight 128h + 32k + l: a nibble of ql, bits 2k, 2k + 1 of
             * qh[l] moved to bits 4-5 (16-bit shifts: the bits crossing
             * into the next byte are masked off) */
            p->wv[4 * h + 0] = _mm256_or_si256(_mm256_and_si256(qa, m4),
                                               _mm256_and_si256(_mm256_slli_epi16(qh, 4), m2));
            p->wv[4 * h + 1] = _mm256_or_si256(_mm256_and_si256(qb, m4),
                                               _mm256_and_si256(_mm256_slli_epi16(qh, 2), m2));
            p->wv[4 * h + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qa, 4), m4),
                                               _mm256_and_si256(qh, m2));
            p->wv[4 * h + 3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qb, 4), m4),
                                               _mm256_and_si256(_mm256_srli_epi16(qh, 2), m2));
            /* vector 4h + k holds sub-blocks 8h + 2k (low half), 8h + 2k + 1 */
            const __m256i src = h ? hi8 : lo8;
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++)
                p->sv[4 * h + k] = bcast16(src, 2 * k, 2 * k + 1);
        }
        /* cv[g] = 32 * scales[g], |.| <= 4096 */
        p->cv = _mm256_slli_epi16(s16, 5);
        p->d = f16_to_f32(b->d);
        p->dmin = 0.0f;
        return;
    }
    /* Q4_K / Q5_K: same header (d, dmin, scales[12]) */
    const block_q4_K *b4 = (const block_q4_K *)blk;
    const block_q5_K *b5 = (const block_q5_K *)blk;
    const __m128i scm = k4_scales(blk);
    /* s16 = sc[0..7] as int16 in both halves */
    const __m256i s16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(scm));
    /* cv[g] = m[g / 2]: each min byte doubled, then widened */
    p->cv = _mm256_cvtepu8_epi16(
        _mm_shuffle_epi8(scm, _mm_setr_epi8(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15)));
    const uint8_t *qs = kind == K5 ? b5->qs : b4->qs;
    __m256i qh = _mm256_setzero_si256();
    if (kind == K5)
        qh = _mm256_loadu_si256((const __m256i *)b5->qh);
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        const __m256i q = _mm256_loadu_si256((const __m256i *)(qs + 32 * c));
        __m256i lo = _mm256_and_si256(q, m4);
        __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
        if (kind == K5) {
            /* bit 2c (low nibbles) and 2c + 1 (high) of qh[l] -> bit 4 */
            const __m256i b16 = _mm256_set1_epi8(0x10);
            const int s0 = 2 * c, s1 = 2 * c + 1; /* source bit */
            const __m256i h0 = s0 <= 4 ? _mm256_slli_epi16(qh, 4 - s0) : _mm256_srli_epi16(qh, s0 - 4);
            const __m256i h1 = s1 <= 4 ? _mm256_slli_epi16(qh, 4 - s1) : _mm256_srli_epi16(qh, s1 - 4);
            lo = _mm256_or_si256(lo, _mm256_and_si256(h0, b16));
            hi = _mm256_or_si256(hi, _mm256_and_si256(h1, b16));
        }
        p->wv[2 * c] = lo;       /* sub-block 2c */
        p->wv[2 * c + 1] = hi;   /* sub-block 2c + 1 */
        p->sv[2 * c] = bcast16(s16, 2 * c, 2 * c);
        p->sv[2 * c + 1] = bcast16(s16, 2 * c + 1, 2 * c + 1);
    }
    p->d = f16_to_f32(b4->d);
    p->dmin = f16_to_f32(b4->dmin);
}

/* ------------------------------------------------------------ tiles */

/* acc[r][t] += block b of R rows (w + r ws) x T tokens (a + t as). */
AI void tile_block(const int kind, const int R, const int T, const uint8_t *w, size_t ws,
                   const uint8_t *a, size_t as, __m256 acc[TR][TT])
{
    prepared p[TR];
    __m256i sumi[TR][TT];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
        prepare(kind, w + (size_t)r * ws, &p[r]);
#pragma GCC unroll 8
        for (int t = 0; t < T; t++)
            sumi[r][t] = _mm256_setzero_si256();
    }
#pragma GCC unroll 8
    for (int v = 0; v < 8; v++)
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) {
            const block_q8_K *at = (const block_q8_K *)(a + (size_t)t * as);
            const __m256i av = _mm256_loadu_si256((const __m256i *)(at->qs + 32 * v));
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                /* pairs w a + w a (exact), then times the sub-block scale;
                 * IQ4_XS: |w| * (a signed like w) = w a */
                const __m256i pr = kind == KX ? _mm256_maddubs_epi16(p[r].wv[v], _mm256_sign_epi8(av, p[r].sg[v]))
                                              : _mm256_maddubs_epi16(p[r].wv[v], av);
#ifdef __AVXVNNI__ /* the avx2vnni set: vpdpwssd adds as it multiplies */
                sumi[r][t] = _mm256_dpwssd_avx_epi32(sumi[r][t], pr, p[r].sv[v]);
#else
                sumi[r][t] = _mm256_add_epi32(sumi[r][t], _mm256_madd_epi16(pr, p[r].sv[v]));
#endif
            }
        }
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) {
        const block_q8_K *at = (const block_q8_K *)(a + (size_t)t * as);
        const __m256i bs = _mm256_loadu_si256((const __m256i *)at->bsums);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            /* c[j] = cv[2j] bsums[2j] + cv[2j+1] bsums[2j+1] */
            const __m256i c = _mm256_madd_epi16(p[r].cv, bs);
            const __m256 d = _mm256_set1_ps(p[r].d * at->d);
            if (kind == KX) {
                acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi[r][t]), d, acc[r][t]);
            } else if (K_OFFSET(kind)) {
                const __m256i s = _mm256_sub_epi32(sumi[r][t], c);
                acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), d, acc[r][t]);
            } else {
                const __m256 dmin = _mm256_set1_ps(p[r].dmin * at->d);
                acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi[r][t]), d, acc[r][t]);
                acc[r][t] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(c), dmin, acc[r][t]);
            }
        }
    }
}

/* y[t * ldy + r] for the R x T tile of rows w.. and tokens a.. */
AI void tile(const int kind, const int R, const int T, const uint8_t *w, size_t ws, int64_t nb,
             const uint8_t *a, size_t as, float *y, int64_t ldy)
{
    const size_t bb = block_bytes[kind];
    __m256 acc[TR][TT];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
        for (int t = 0; t < T; t++)
            acc[r][t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        if (R == 1 && T == 1) {
            const char *pf = (const char *)w + (size_t)b * bb + PREFETCH_BYTES;
            for (size_t o = 0; o < bb; o += 64)
                _mm_prefetch(pf + o, _MM_HINT_T0);
        } else if (R > 1) {
            /* R short streams, which the hardware prefetcher follows
             * poorly: fetch the next R rows (contiguous) in address order,
             * at the rate this tile consumes its own (prefetches never
             * fault, past the matrix's end included) */
            const char *pf = (const char *)w + (size_t)R * ws + (size_t)b * R * bb;
            for (size_t o = 0; o < R * bb; o += 64)
                _mm_prefetch(pf + o, _MM_HINT_T0);
        }
        tile_block(kind, R, T, w + (size_t)b * bb, ws, a + (size_t)b * sizeof(block_q8_K), as, acc);
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
        for (int t = 0; t < T; t++)
            y[t * ldy + r] = mr_hsum256(acc[r][t]);
}

/* R rows x n_tok tokens: tiles of TT tokens, then the rest */
AI void row_tile(const int kind, const int R, const uint8_t *w, size_t ws, int64_t nb,
                 const uint8_t *a, size_t as, int64_t n_tok, float *y, int64_t ldy)
{
    int64_t t = 0;
    for (; t + TT <= n_tok; t += TT)
        tile(kind, R, TT, w, ws, nb, a + (size_t)t * as, as, y + t * ldy, ldy);
    switch (n_tok - t) {
    case 3: tile(kind, R, 3, w, ws, nb, a + (size_t)t * as, as, y + t * ldy, ldy); break;
    case 2: tile(kind, R, 2, w, ws, nb, a + (size_t)t * as, as, y + t * ldy, ldy); break;
    case 1: tile(kind, R, 1, w, ws, nb, a + (size_t)t * as, as, y + t * ldy, ldy); break;
    default: break;
    }
}

AI void gemm_k(const int kind, const void *w, size_t ws, const void *act, size_t as, int64_t n,
               int64_t n_tok, float *y, int64_t ldy, int64_t r0, int64_t r1)
{
    const int64_t nb = n / QK_K;
    const uint8_t *wb = (const uint8_t *)w;
    int64_t r = r0;
    if (n_tok <= 0)
        return;
    if (n_tok == 1) { /* decode: the rows in order, one sequential stream */
        for (; r < r1; r++)
            tile(kind, 1, 1, wb + (size_t)r * ws, ws, nb, act, as, y + r, ldy);
        return;
    }
    for (; r + TR <= r1; r += TR)
        row_tile(kind, TR, wb + (size_t)r * ws, ws, nb, act, as, n_tok, y + r, ldy);
    for (; r < r1; r++)
        row_tile(kind, 1, wb + (size_t)r * ws, ws, nb, act, as, n_tok, y + r, ldy);
}

AI float dot_k(const int kind, const void *w, const void *act, int64_t n)
{
    float y;
    tile(kind, 1, 1, w, 0, n / QK_K, act, 0, &y, 1);
    return y;
}

/* ------------------------------------------------------------ entry points */

float mr_dot_q4_K_q8_K_avx2(const void *w, const void *act, int64_t n)
{
    return dot_k(K4, w, act, n);
}

float mr_dot_q5_K_q8_K_avx2(const void *w, const void *act, int64_t n)
{
    return dot_k(K5, w, act, n);
}

float mr_dot_q6_K_q8_K_avx2(const void *w, const void *act, int64_t n)
{
    return dot_k(K6, w, act, n);
}

static float mr_dot_q2_K_q8_K_avx2(const void *w, const void *act, int64_t n)
{
    return dot_k(K2, w, act, n);
}

static float mr_dot_q3_K_q8_K_avx2(const void *w, const void *act, int64_t n)
{
    return dot_k(K3, w, act, n);
}

static float mr_dot_iq4_xs_q8_K_avx2(const void *w, const void *act, int64_t n)
{
    return dot_k(KX, w, act, n);
}

static void mr_gemm_q2_K_q8_K_avx2(const void *w, size_t w_stride, const void *act, size_t a_stride,
                                   int64_t n, int64_t n_tok, float *y, int64_t ldy, int64_t r0,
                                   int64_t r1)
{
    gemm_k(K2, w, w_stride, act, a_stride, n, n_tok, y, ldy, r0, r1);
}

static void mr_gemm_q3_K_q8_K_avx2(const void *w, size_t w_stride, const void *act, size_t a_stride,
                                   int64_t n, int64_t n_tok, float *y, int64_t ldy, int64_t r0,
                                   int64_t r1)
{
    gemm_k(K3, w, w_stride, act, a_stride, n, n_tok, y, ldy, r0, r1);
}

static void mr_gemm_iq4_xs_q8_K_avx2(const void *w, size_t w_stride, const void *act, size_t a_stride,
                                     int64_t n, int64_t n_tok, float *y, int64_t ldy, int64_t r0,
                                     int64_t r1)
{
    gemm_k(KX, w, w_stride, act, a_stride, n, n_tok, y, ldy, r0, r1);
}

void mr_gemm_q4_K_q8_K_avx2(const void *w, size_t w_stride, const void *act, size_t a_stride,
                            int64_t n, int64_t n_tok, float *y, int64_t ldy, int64_t r0,
                            int64_t r1)
{
    gemm_k(K4, w, w_stride, act, a_stride, n, n_tok, y, ldy, r0, r1);
}

void mr_gemm_q5_K_q8_K_avx2(const void *w, size_t w_stride, const void *act, size_t a_stride,
                            int64_t n, int64_t n_tok, float *y, int64_t ldy, int64_t r0,
                            int64_t r1)
{
    gemm_k(K5, w, w_stride, act, a_stride, n, n_tok, y, ldy, r0, r1);
}

void mr_gemm_q6_K_q8_K_avx2(const void *w, size_t w_stride, const void *act, size_t a_stride,
                            int64_t n, int64_t n_tok, float *y, int64_t ldy, int64_t r0,
                            int64_t r1)
{
    gemm_k(K6, w, w_stride, act, a_stride, n, n_tok, y, ldy, r0, r1);
}

/* ------------------------------------------------------------ f32 dots */

/* Exact path: each block prepared as above (integers), decoded to f32 as
 * d * sc * q - dmin * m (Q6_K: d * sc * (q - 32)), FMA'd with x. */
AI float dot_k_f32(const int kind, const void *w, const float *x, int64_t n)
{
    const size_t bb = block_bytes[kind];
    const int64_t nb = n / QK_K;
    const uint8_t *wb = (const uint8_t *)w;
    __m256 s0 = _mm256_setzero_ps(), s1 = s0;
    for (int64_t b = 0; b < nb; b++, x += QK_K) {
        _Alignas(32) prepared p;
        prepare(kind, wb + (size_t)b * bb, &p);
        _Alignas(32) uint8_t q[QK_K];
        _Alignas(32) int16_t sc[QK_K / 2];
        for (int v = 0; v < 8; v++) {
            _mm256_store_si256((__m256i *)(q + 32 * v), p.wv[v]);
            _mm256_store_si256((__m256i *)(sc + 16 * v), p.sv[v]);
        }
        _Alignas(32) int16_t cv[16];
        _mm256_store_si256((__m256i *)cv, p.cv);
        const float dmin = p.dmin;
        for (int e = 0; e < QK_K; e += 8) {
            /* the scale is the same for 8 consecutive weights */
            const float scale = p.d * (float)sc[e / 2];
            /* Q4_K/Q5_K: the min of sub-block e / 32 is cv[e / 16];
             * Q6_K: the offset -32 times the scale */
            const float off = kind == K6 ? 32.0f * scale : dmin * (float)cv[e / 16];
            const __m256 qf = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(q + e))));
            const __m256 wf = _mm256_fmsub_ps(qf, _mm256_set1_ps(scale), _mm256_set1_ps(off));
            if (e & 8)
                s1 = _mm256_fmadd_ps(wf, _mm256_loadu_ps(x + e), s1);
            else
                s0 = _mm256_fmadd_ps(wf, _mm256_loadu_ps(x + e), s0);
        }
    }
    return mr_hsum256(_mm256_add_ps(s0, s1));
}

float mr_dot_q4_K_f32_avx2(const void *w, const float *x, int64_t n)
{
    return dot_k_f32(K4, w, x, n);
}

float mr_dot_q5_K_f32_avx2(const void *w, const float *x, int64_t n)
{
    return dot_k_f32(K5, w, x, n);
}

float mr_dot_q6_K_f32_avx2(const void *w, const float *x, int64_t n)
{
    return dot_k_f32(K6, w, x, n);
}

/* ------------------------------------------------------------ table */

void mr_kernels_init_avx2_k(mr_kernels *k)
{
    k->dot_f32[MR_TYPE_Q4_K] = mr_dot_q4_K_f32_avx2;
    k->dot_f32[MR_TYPE_Q5_K] = mr_dot_q5_K_f32_avx2;
    k->dot_f32[MR_TYPE_Q6_K] = mr_dot_q6_K_f32_avx2;
    k->vec_dot[MR_TYPE_Q4_K] = mr_dot_q4_K_q8_K_avx2;
    k->vec_dot[MR_TYPE_Q5_K] = mr_dot_q5_K_q8_K_avx2;
    k->vec_dot[MR_TYPE_Q6_K] = mr_dot_q6_K_q8_K_avx2;
    k->gemm[MR_TYPE_Q4_K] = mr_gemm_q4_K_q8_K_avx2;
    k->gemm[MR_TYPE_Q5_K] = mr_gemm_q5_K_q8_K_avx2;
    k->gemm[MR_TYPE_Q6_K] = mr_gemm_q6_K_q8_K_avx2;
    k->vec_dot[MR_TYPE_Q2_K] = mr_dot_q2_K_q8_K_avx2;
    k->vec_dot[MR_TYPE_Q3_K] = mr_dot_q3_K_q8_K_avx2;
    k->vec_dot[MR_TYPE_IQ4_XS] = mr_dot_iq4_xs_q8_K_avx2;
    k->gemm[MR_TYPE_Q2_K] = mr_gemm_q2_K_q8_K_avx2;
    k->gemm[MR_TYPE_Q3_K] = mr_gemm_q3_K_q8_K_avx2;
    k->gemm[MR_TYPE_IQ4_XS] = mr_gemm_iq4_xs_q8_K_avx2;
}
