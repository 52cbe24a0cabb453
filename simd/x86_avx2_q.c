/* x86_avx2_q.c - Q4_0 and Q8_0 weights dotted with Q8_0 activations in
 * integers, AVX2: vec_dot (one row, one token) and gemm (rows x tokens,
 * register-tiled).
 *
 * vpmaddubsw multiplies unsigned bytes by signed bytes and adds pairs into
 * saturating int16; vpmaddwd then adds pairs of those into int32.
 *   Q4_0: the nibble q in [0, 15] is the unsigned operand and
 *         sum (q - 8) a = sum q a - 8 sum a; the correction -8 sum a
 *         depends on the token only and is computed once per call.  Pair
 *         sums stay within 2 * 15 * 127, two of them within 7620: no
 *         saturation.
 *   Q8_0: w + 128 would overflow the int16 pairs (2 * 255 * 127), so the
 *         sign moves to the activations: |w| * (a signed like w), pairs
 *         within 2 * 128 * 127 = 32512 (exact for w = -128 too).
 *
 * A group is 2 blocks (64 elements).  Each token's activations are
 * repacked once per call into act_group records of 128 bytes:
 *   Q4_0: a[0..31] = bytes 0..15 of the 2 blocks, a[32..63] = bytes
 *         16..31, x.nc = -8 * (the 8 activations meeting in int32 lane l),
 *         x.ds = the f32 scale of block l / 4 in lane l;
 *   Q8_0: a = the 2 blocks' bytes as they are, x.ds = block 0's scale in
 *         lanes 0..7 then block 1's in lanes 8..15.
 * Q4_0 weights load into the same lo/hi layout, so lane l of
 *   q = madd(maddubs(wlo, lo) + maddubs(whi, hi), 1) + nc
 * is the exact dot of 8 elements of block l / 4; a Q8_0 block's 8 lanes
 * all belong to it.  acc = acc + float(q) * (dw * ds), an addition chain
 * (3 cycles) rather than an FMA chain (4-6), so one row and one token
 * still outrun memory.  Every (row, token) result is that chain over the
 * groups in order and the same fixed tree over acc's 8 lanes, whatever
 * the tile, row range, batch size or chunking: vec_dot, gemm and any
 * thread split give the same bits.
 *
 * The row's last, partial group (an odd block count) is read from a zeroed
 * copy: the absent block has scale 0 and nothing past the row is touched.
 */
#include "x86_avx2.h"

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#define AI static inline __attribute__((always_inline))

typedef struct {
    int8_t a[64]; /* Q4_0: lo[32] hi[32]; Q8_0: block 0, block 1; in [-127, 127] */
    union {
        struct {
            int32_t nc[8]; /* Q4_0: -8 * lane sum, |.| <= 8 * 8 * 127 */
            float ds[8];   /* Q4_0: scale of block l / 4 */
        } q4;
        float ds[16]; /* Q8_0: ds[0..7] = block 0's scale, ds[8..15] = block 1's */
    } x;
} act_group;
static_assert(sizeof(act_group) == 128, "act_group is four ymm");

/* Packed activations: a small batch on the stack (16 KB: one token of a
 * row up to 8192 elements), a larger one in one heap block of up to 4 MB,
 * more in panels of tokens.  Stack use stays small because pool threads
 * may have small stacks (musl: 128 KB). */
#define STACK_GROUPS 128
#define HEAP_GROUPS ((4 << 20) / (int64_t)sizeof(act_group))
/* gemm tile: TR rows x TT tokens of 8-lane accumulators (9 of 16 ymm) */
#define TR 3
#define TT 3
/* When the tokens need several panels, rows are blocked so that a block's
 * weights stay in L2 while every panel passes over them. */
#define ROW_BLOCK_BYTES (384 * 1024)
/* One token: rows in order, one sequential stream, prefetched 8 KB ahead;
 * tiles of several rows prefetch the next tile in address order (see
 * x86_avx512_q.c for the measurements behind both). */
#define PREFETCH_BYTES 8192

/* ------------------------------------------------------------ loading */

/* f16 -> f32 (exact) */
AI float f16_to_f32(uint16_t h)
{
    return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h)));
}

/* f32 lane l = f16 scale d[l / 4] */
AI __m256 scales2(uint16_t d0, uint16_t d1)
{
    /* f[k] = f16 -> f32 of d_k, k < 2 */
    const __m128 f = _mm_cvtph_ps(_mm_cvtsi32_si128((int)(d0 | (uint32_t)d1 << 16)));
    /* lane l = f[l / 4] */
    return _mm256_permutevar8x32_ps(_mm256_castps128_ps256(f), _mm256_set_epi32(1, 1, 1, 1, 0, 0, 0, 0));
}

/* Q4_0 group of 2 whole blocks: lo = q & 15 (elements 0..15 of each),
 * hi = q >> 4 (elements 16..31), unsigned in [0, 15]. */
AI void q4_group2(const block_q4_0 *b, __m256i *lo, __m256i *hi, __m256 *dw)
{
    /* z = qs of block 0 | qs of block 1 */
    const __m256i z = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)b[0].qs)),
                                              _mm_loadu_si128((const __m128i *)b[1].qs), 1);
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    *lo = _mm256_and_si256(z, m4);
    *hi = _mm256_and_si256(_mm256_srli_epi16(z, 4), m4);
    *dw = scales2(b[0].d, b[1].d);
}

/* ------------------------------------------------------------ packing */

/* Groups [g0, g1) of one Q8_0 activation row of nb blocks into out[0..). */
static void pack_row(const int q8, const block_q8_0 *a, int64_t nb, int64_t g0, int64_t g1,
                     act_group *out)
{
    for (int64_t g = g0; g < g1; g++, out++) {
        const block_q8_0 *b = a + 2 * g;
        block_q8_0 tmp[2];
        if (2 * g + 2 > nb) { /* the partial last group: block 1 absent */
            memset(tmp, 0, sizeof tmp);
            tmp[0] = b[0];
            b = tmp;
        }
        const __m256i a0 = _mm256_loadu_si256((const __m256i *)b[0].qs);
        const __m256i a1 = _mm256_loadu_si256((const __m256i *)b[1].qs);
        if (q8) {
            _mm256_store_si256((__m256i *)out->a, a0);
            _mm256_store_si256((__m256i *)(out->a + 32), a1);
            _mm256_store_ps(out->x.ds, _mm256_set1_ps(f16_to_f32(b[0].d)));
            _mm256_store_ps(out->x.ds + 8, _mm256_set1_ps(f16_to_f32(b[1].d)));
            continue;
        }
        /* lo = a0[0..15] a1[0..15], hi = a0[16..31] a1[16..31] */
        const __m256i lo = _mm256_permute2x128_si256(a0, a1, 0x20);
        const __m256i hi = _mm256_permute2x128_si256(a0, a1, 0x31);
        /* s[l] = sum of lo and hi bytes 4l..4l+3: 1 x a in int16 pairs,
         * then pairs of pairs, in [-1016, 1016] */
        const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
        const __m256i s16 = _mm256_add_epi16(_mm256_maddubs_epi16(ones8, lo), _mm256_maddubs_epi16(ones8, hi));
        const __m256i s = _mm256_madd_epi16(s16, ones16);
        /* nc = -8 s */
        const __m256i nc = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(s, 3));
        _mm256_store_si256((__m256i *)out->a, lo);
        _mm256_store_si256((__m256i *)(out->a + 32), hi);
        _mm256_store_si256((__m256i *)out->x.q4.nc, nc);
        _mm256_store_ps(out->x.q4.ds, scales2(b[0].d, b[1].d));
    }
}

/* ------------------------------------------------------------ tiles */

/* Fixed-order sum of 8 lanes: halves, then quarters, ... */
AI float hsum256(__m256 v)
{
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    q = _mm_add_ss(q, _mm_movehdup_ps(q));
    return _mm_cvtss_f32(q);
}

/* acc[r][t] += group of R Q4_0 rows at wg (+ r ws) with packed tokens
 * pk + t * pstride. */
AI void tile_group_q4(const int R, const int T, const uint8_t *wg, size_t ws, int whole,
                      const act_group *pk, int64_t pstride, __m256 acc[TR][TT])
{
    const __m256i ones16 = _mm256_set1_epi16(1);
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
        const block_q4_0 *b = (const block_q4_0 *)(wg + (size_t)r * ws);
        __m256i wlo, whi;
        __m256 dw;
        if (whole) {
            if (R == 1)
                _mm_prefetch((const char *)b + PREFETCH_BYTES, _MM_HINT_T0);
            q4_group2(b, &wlo, &whi, &dw);
        } else {
            block_q4_0 tmp[2];
            memset(tmp, 0, sizeof tmp);
            tmp[0] = b[0];
            q4_group2(tmp, &wlo, &whi, &dw);
        }
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) {
            const act_group *a = pk + t * pstride;
#ifdef __AVXVNNI__
            /* the avx2vnni set: q[l] = nc[l] + the 4 products of lo, then of hi */
            const __m256i q = _mm256_dpbusd_avx_epi32(
                _mm256_dpbusd_avx_epi32(_mm256_load_si256((const __m256i *)a->x.q4.nc), wlo,
                                        _mm256_load_si256((const __m256i *)a->a)),
                whi, _mm256_load_si256((const __m256i *)(a->a + 32)));
            (void)ones16;
#else
            /* p[i] = wlo[2i] lo[2i] + wlo[2i+1] lo[2i+1] + (same for hi), |.| <= 7620 */
            const __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(wlo, _mm256_load_si256((const __m256i *)a->a)),
                                               _mm256_maddubs_epi16(whi, _mm256_load_si256((const __m256i *)(a->a + 32))));
            /* q[l] = p[2l] + p[2l+1] + nc[l]: the exact dot of 8 elements */
            const __m256i q = _mm256_add_epi32(_mm256_madd_epi16(p, ones16),
                                               _mm256_load_si256((const __m256i *)a->x.q4.nc));
#endif
            /* acc += float(q) * (dw * ds) */
            const __m256 s = _mm256_mul_ps(dw, _mm256_load_ps(a->x.q4.ds));
            acc[r][t] = _mm256_add_ps(acc[r][t], _mm256_mul_ps(_mm256_cvtepi32_ps(q), s));
        }
    }
}

/* The same for Q8_0 rows: block 0 of the group for every token, then
 * block 1 (whole = 0: block 1 absent, read as zeros with scale 0). */
AI void tile_group_q8(const int R, const int T, const uint8_t *wg, size_t ws, int whole,
                      const act_group *pk, int64_t pstride, __m256 acc[TR][TT])
{
    const __m256i ones16 = _mm256_set1_epi16(1);
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
        const block_q8_0 *b = (const block_q8_0 *)(wg + (size_t)r * ws);
        block_q8_0 tmp[2];
        if (!whole) {
            memset(tmp, 0, sizeof tmp);
            tmp[0] = b[0];
            b = tmp;
        } else if (R == 1) {
            _mm_prefetch((const char *)b + PREFETCH_BYTES, _MM_HINT_T0);
            _mm_prefetch((const char *)b + PREFETCH_BYTES + 64, _MM_HINT_T0);
        }
#pragma GCC unroll 2
        for (int k = 0; k < 2; k++) {
            const __m256i w = _mm256_loadu_si256((const __m256i *)b[k].qs);
            /* |w| as unsigned bytes, in [0, 128] */
            const __m256i aw = _mm256_sign_epi8(w, w);
            const __m256 dw = _mm256_set1_ps(f16_to_f32(b[k].d));
#pragma GCC unroll 8
            for (int t = 0; t < T; t++) {
                const act_group *a = pk + t * pstride;
                /* a with the sign of w (0 where w = 0), so |w| * that = w * a */
                const __m256i sa = _mm256_sign_epi8(_mm256_load_si256((const __m256i *)(a->a + 32 * k)), w);
                /* q[l] = sum of 4 products w a, exact (pairs within 32512) */
#ifdef __AVXVNNI__ /* the avx2vnni set */
                const __m256i q = _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), aw, sa);
                (void)ones16;
#else
                const __m256i q = _mm256_madd_epi16(_mm256_maddubs_epi16(aw, sa), ones16);
#endif
                const __m256 s = _mm256_mul_ps(dw, _mm256_load_ps(a->x.ds + 8 * k));
                acc[r][t] = _mm256_add_ps(acc[r][t], _mm256_mul_ps(_mm256_cvtepi32_ps(q), s));
            }
        }
    }
}

/* acc += groups [g0, g1) of R rows x T packed tokens; pk holds group g0
 * of token t at pk[t * pstride]. */
AI void tile_groups(const int q8, const int R, const int T, const uint8_t *w, size_t ws,
                    int64_t nb, int64_t g0, int64_t g1, const act_group *pk, int64_t pstride,
                    __m256 acc[TR][TT])
{
    const size_t gbytes = 2 * (q8 ? sizeof(block_q8_0) : sizeof(block_q4_0));
    const int64_t full = nb / 2 < g1 ? nb / 2 : g1;
    int64_t g = g0;
    for (; g < full; g++) {
        if (R > 1) { /* the next tile's bytes [g R gbytes, (g + 1) R gbytes) */
            const char *pf = (const char *)w + (size_t)R * ws + (size_t)g * R * gbytes;
#pragma GCC unroll 16
            for (size_t o = 0; o < R * gbytes; o += 64)
                _mm_prefetch(pf + o, _MM_HINT_T0);
        }
        if (q8)
            tile_group_q8(R, T, w + (size_t)g * gbytes, ws, 1, pk + (g - g0), pstride, acc);
        else
            tile_group_q4(R, T, w + (size_t)g * gbytes, ws, 1, pk + (g - g0), pstride, acc);
    }
    if (g < g1) { /* the partial last group */
        if (q8)
            tile_group_q8(R, T, w + (size_t)g * gbytes, ws, 0, pk + (g - g0), pstride, acc);
        else
            tile_group_q4(R, T, w + (size_t)g * gbytes, ws, 0, pk + (g - g0), pstride, acc);
    }
}

/* y[t * ldy + r] for the R x T tile at rows w.., packed tokens pk.. */
AI void tile(const int q8, const int R, const int T, const uint8_t *w, size_t ws, int64_t nb,
             const act_group *pk, int64_t pstride, float *y, int64_t ldy)
{
    __m256 acc[TR][TT];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
        for (int t = 0; t < T; t++)
            acc[r][t] = _mm256_setzero_ps();
    tile_groups(q8, R, T, w, ws, nb, 0, (nb + 1) / 2, pk, pstride, acc);
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
        for (int t = 0; t < T; t++)
            y[t * ldy + r] = hsum256(acc[r][t]);
}

/* ------------------------------------------------------------ entry points */

AI float dot_q(const int q8, const void *w, const void *act, int64_t n)
{
    enum { CHUNK = 64 }; /* groups packed at a time: 8 KB */
    _Alignas(32) act_group pk[CHUNK];
    const int64_t nb = n / QK8_0, ng = (nb + 1) / 2;
    __m256 acc[TR][TT];
    acc[0][0] = _mm256_setzero_ps();
    for (int64_t g0 = 0; g0 < ng; g0 += CHUNK) {
        const int64_t g1 = g0 + CHUNK < ng ? g0 + CHUNK : ng;
        pack_row(q8, act, nb, g0, g1, pk);
        tile_groups(q8, 1, 1, w, 0, nb, g0, g1, pk, 0, acc);
    }
    return hsum256(acc[0][0]);
}

float mr_dot_q4_0_q8_0_avx2(const void *w, const void *act, int64_t n)
{
    return dot_q(0, w, act, n);
}

float mr_dot_q8_0_q8_0_avx2(const void *w, const void *act, int64_t n)
{
    return dot_q(1, w, act, n);
}

/* R rows from wr x tn packed tokens: tiles of TT tokens, then the rest */
AI void run_row_tile(const int q8, const int R, const uint8_t *wr, size_t ws, int64_t nb,
                     const act_group *pk, int64_t ng, int64_t tn, float *y, int64_t ldy)
{
    int64_t t = 0;
    for (; t + TT <= tn; t += TT)
        tile(q8, R, TT, wr, ws, nb, pk + t * ng, ng, y + t * ldy, ldy);
    switch (tn - t) {
    case 2: tile(q8, R, 2, wr, ws, nb, pk + t * ng, ng, y + t * ldy, ldy); break;
    case 1: tile(q8, R, 1, wr, ws, nb, pk + t * ng, ng, y + t * ldy, ldy); break;
    default: break;
    }
}

/* Rows [rs, re) x tn packed tokens (pk, ng groups each) into y. */
AI void run_tiles(const int q8, const uint8_t *w, size_t ws, int64_t nb, int64_t rs, int64_t re,
                  const act_group *pk, int64_t ng, int64_t tn, float *y, int64_t ldy)
{
    int64_t r = rs;
    if (tn == 1) { /* decode: the rows in order, one sequential stream */
        for (; r < re; r++)
            tile(q8, 1, 1, w + (size_t)r * ws, ws, nb, pk, ng, y + r, ldy);
        return;
    }
    for (; r + TR <= re; r += TR)
        run_row_tile(q8, TR, w + (size_t)r * ws, ws, nb, pk, ng, tn, y + r, ldy);
    for (; r < re; r++)
        run_row_tile(q8, 1, w + (size_t)r * ws, ws, nb, pk, ng, tn, y + r, ldy);
}

AI void gemm_q(const int q8, const void *w, size_t ws, const void *act, size_t as, int64_t n,
               int64_t n_tok, float *y, int64_t ldy, int64_t r0, int64_t r1)
{
    const int64_t nb = n / QK8_0, ng = (nb + 1) / 2;
    const uint8_t *wb = w;
    const uint8_t *ab = act;
    if (n_tok <= 0 || r1 <= r0)
        return;
    _Alignas(32) act_group stack_pk[STACK_GROUPS];
    act_group *pk = stack_pk, *heap = NULL;
    int64_t cap = STACK_GROUPS;
    if (n_tok * ng > cap) {
        const int64_t want = n_tok * ng < HEAP_GROUPS ? n_tok * ng : HEAP_GROUPS;
        heap = aligned_alloc(32, (size_t)want * sizeof(act_group));
        if (heap) {
            pk = heap;
            cap = want;
        }
    }
    if (ng > cap) { /* not even one token fits (no memory): dot by dot */
        for (int64_t r = r0; r < r1; r++)
            for (int64_t t = 0; t < n_tok; t++)
                y[t * ldy + r] = dot_q(q8, wb + (size_t)r * ws, ab + (size_t)t * as, n);
        free(heap);
        return;
    }
    /* tokens per panel: as many as the pack holds, whole tiles when split */
    int64_t tp = cap / ng;
    if (tp >= n_tok)
        tp = n_tok;
    else if (tp > TT)
        tp -= tp % TT;
    /* rows per block: all of them with one panel (packed once), else as
     * many as keep their weights in L2 across the panels */
    int64_t rb = r1 - r0;
    if (tp < n_tok) {
        rb = (int64_t)(ROW_BLOCK_BYTES / ws);
        rb = rb < TR ? TR : rb - rb % TR;
    }
    for (int64_t rs = r0; rs < r1; rs += rb) {
        const int64_t re = rs + rb < r1 ? rs + rb : r1;
        for (int64_t t0 = 0; t0 < n_tok; t0 += tp) {
            const int64_t tn = t0 + tp < n_tok ? tp : n_tok - t0;
            if (tp < n_tok || rs == r0)
                for (int64_t t = 0; t < tn; t++)
                    pack_row(q8, (const block_q8_0 *)(ab + (size_t)(t0 + t) * as), nb, 0, ng,
                             pk + t * ng);
            run_tiles(q8, wb, ws, nb, rs, re, pk, ng, tn, y + t0 * ldy, ldy);
        }
    }
    free(heap);
}

void mr_gemm_q4_0_q8_0_avx2(const void *w, size_t w_stride, const void *act, size_t a_stride,
                            int64_t n, int64_t n_tok, float *y, int64_t ldy, int64_t r0,
                            int64_t r1)
{
    gemm_q(0, w, w_stride, act, a_stride, n, n_tok, y, ldy, r0, r1);
}

void mr_gemm_q8_0_q8_0_avx2(const void *w, size_t w_stride, const void *act, size_t a_stride,
                            int64_t n, int64_t n_tok, float *y, int64_t ldy, int64_t r0,
                            int64_t r1)
{
    gemm_q(1, w, w_stride, act, a_stride, n, n_tok, y, ldy, r0, r1);
}
