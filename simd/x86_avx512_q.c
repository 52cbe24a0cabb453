/* x86_avx512_q.c - Q4_0 and Q8_0 weights dotted with Q8_0 activations in
 * integers, AVX-512 VNNI: vec_dot (one row, one token) and gemm (rows x
 * tokens, register-tiled).
 *
 * vpdpbusd multiplies unsigned bytes by signed bytes.  The weights are made
 * unsigned by an offset, the activations stay signed, and the offset comes
 * back out through the activations' sums:
 *   Q4_0: sum (q - 8) a = sum q a - 8 sum a,            q in [0, 15]
 *   Q8_0: sum w a = sum (w + 128) a - 128 sum a,         w + 128 in [0, 255]
 * (-128 weights, which ggml never writes, come out exact too.)  The
 * correction depends on the token only: it is computed once per call and
 * is the value vpdpbusd starts from, so a (row, token) pair costs two
 * vpdpbusd, a convert, a scale product and an FMA per 4 blocks.
 *
 * A group is 4 blocks (128 elements).  Each token's activations are
 * repacked once per call into act_group records:
 *   lo: bytes 0..15 of the 4 blocks, hi: bytes 16..31 (16 bytes each),
 *   nc: int32 lane l = -off * (the 8 activations that meet in lane l),
 *   ds: lane l = the f32 scale of block l / 4.
 * A weight group is loaded in the same layout, so int32 lane l of
 *   p = dpbusd(dpbusd(nc, wlo, lo), whi, hi)
 * is the exact dot of elements 4(l%4)..+3 and 16+4(l%4)..+3 of block l/4,
 * and acc = fma(float(p), dw * ds, acc) adds the group.  Every (row, token)
 * result is that chain over the groups in order followed by the same fixed
 * tree over acc's 16 lanes, whatever the tile, row range, batch size or
 * chunking: vec_dot, gemm and any thread split give the same bits.
 *
 * The row's last, partial group (blocks % 4 != 0) is read from a zeroed
 * copy: absent blocks have scale 0 and nothing past the row is touched.
 */
#include "x86_avx512.h"

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#define AI static inline __attribute__((always_inline))

typedef struct {
    int8_t lo[64];  /* bytes 0..15 of blocks 0..3, in [-127, 127] */
    int8_t hi[64];  /* bytes 16..31 */
    int32_t nc[16]; /* -off * lane sum, |.| <= 128 * 8 * 127 */
    float ds[16];   /* scale of block l / 4 */
} act_group;
static_assert(sizeof(act_group) == 256, "act_group is four zmm");

/* Packed activations: a small batch on the stack (16 KB: one token of a
 * row up to 8192 elements), a larger one in one heap block of up to 4 MB,
 * more in panels of tokens.  Stack use stays small because pool threads
 * may have small stacks (musl: 128 KB). */
#define STACK_GROUPS 64
#define HEAP_GROUPS ((4 << 20) / (int64_t)sizeof(act_group))
/* gemm tile: TR rows x TT tokens of 16-lane accumulators (24 of 32 zmm);
 * measured on Zen 5 against 4x4, 8x3, 5x5, 4x6 and 3x8: best or equal. */
#define TR 6
#define TT 4
/* When the tokens need several panels, rows are blocked so that a block's
 * weights stay in L2 while every panel passes over them. */
#define ROW_BLOCK_BYTES (384 * 1024)
/* Weights are streamed once; the hardware prefetcher alone leaves the
 * single-token loop ~20% short of the memory bandwidth.  One row at a
 * time (one token), rows are one sequential stream: prefetch 8 KB ahead
 * of it into L2 (Zen 4, family 25 model 17, from DRAM: 1.40x Q8_0 and
 * 1.08x Q4_0 against the same distance into L1, and better than 4, 12 or
 * 16 KB; from L3 1.18x and 1.04x).  Tiles of several rows read several
 * short streams at once, which the hardware prefetcher follows poorly:
 * they prefetch the next tile's bytes, in address order, at the rate the
 * current tile consumes its own. */
#define PREFETCH_BYTES 8192

/* ------------------------------------------------------------ loading */

/* lo = bytes 0..15 of p0..p3, hi = bytes 16..31 (each p_k 32 bytes) */
AI void split4(const int8_t *p0, const int8_t *p1, const int8_t *p2, const int8_t *p3,
               __m512i *lo, __m512i *hi)
{
    /* z01 = p0[0..31] p1[0..31], z23 = p2[0..31] p3[0..31] */
    __m512i z01 = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)p0)),
                                     _mm256_loadu_si256((const __m256i *)p1), 1);
    __m512i z23 = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)p2)),
                                     _mm256_loadu_si256((const __m256i *)p3), 1);
    /* 128-bit lanes: lo = (z01.0, z01.2, z23.0, z23.2), hi = (z01.1, z01.3, z23.1, z23.3) */
    *lo = _mm512_shuffle_i64x2(z01, z23, _MM_SHUFFLE(2, 0, 2, 0));
    *hi = _mm512_shuffle_i64x2(z01, z23, _MM_SHUFFLE(3, 1, 3, 1));
}

/* f32 lane l = f16 scale d[l / 4] (the conversion is exact) */
AI __m512 scales4(uint16_t d0, uint16_t d1, uint16_t d2, uint16_t d3)
{
    const uint64_t bits = d0 | (uint64_t)d1 << 16 | (uint64_t)d2 << 32 | (uint64_t)d3 << 48;
    /* f[k] = f16 -> f32 of d_k, k < 4 */
    const __m128 f = _mm_cvtph_ps(_mm_cvtsi64_si128((long long)bits));
    /* lane l = f[l / 4] */
    const __m512i idx = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
    return _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(f));
}

/* One weight group of 4 whole blocks as unsigned bytes in the lo/hi layout
 * plus its 16 scale lanes.  Q8_0: w + 128 in [0, 255]; Q4_0: q in [0, 15]. */
AI void weight_group4(const int q8, const uint8_t *wb, __m512i *lo, __m512i *hi, __m512 *dw)
{
    if (q8) {
        const block_q8_0 *b = (const block_q8_0 *)wb;
        split4(b[0].qs, b[1].qs, b[2].qs, b[3].qs, lo, hi);
        const __m512i bias = _mm512_set1_epi8((char)0x80);
        /* w ^ 0x80 = w + 128 as an unsigned byte */
        *lo = _mm512_xor_si512(*lo, bias);
        *hi = _mm512_xor_si512(*hi, bias);
        *dw = scales4(b[0].d, b[1].d, b[2].d, b[3].d);
    } else {
        const block_q4_0 *b = (const block_q4_0 *)wb;
        /* z = qs of blocks 0..3, 16 bytes each: byte j = element j | element j+16 << 4 */
        __m512i z = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)b[0].qs));
        z = _mm512_inserti32x4(z, _mm_loadu_si128((const __m128i *)b[1].qs), 1);
        z = _mm512_inserti32x4(z, _mm_loadu_si128((const __m128i *)b[2].qs), 2);
        z = _mm512_inserti32x4(z, _mm_loadu_si128((const __m128i *)b[3].qs), 3);
        const __m512i m4 = _mm512_set1_epi8(0x0f);
        /* lo = q & 15 (elements 0..15), hi = q >> 4 (elements 16..31), in [0, 15] */
        *lo = _mm512_and_si512(z, m4);
        *hi = _mm512_and_si512(_mm512_srli_epi16(z, 4), m4);
        *dw = scales4(b[0].d, b[1].d, b[2].d, b[3].d);
    }
}

/* The row's last group with m < 4 blocks, from a zeroed copy. */
static void weight_group_tail(const int q8, const uint8_t *wb, int m, __m512i *lo, __m512i *hi,
                              __m512 *dw)
{
    _Alignas(8) uint8_t tmp[4 * sizeof(block_q8_0)];
    memset(tmp, 0, sizeof tmp);
    if (q8) {
        memcpy(tmp, wb, (size_t)m * sizeof(block_q8_0));
        weight_group4(1, tmp, lo, hi, dw);
        /* absent blocks: scale 0 and activations 0, whatever the bias made of them */
    } else {
        memcpy(tmp, wb, (size_t)m * sizeof(block_q4_0));
        weight_group4(0, tmp, lo, hi, dw);
    }
}

/* ------------------------------------------------------------ packing */

/* Groups [g0, g1) of one Q8_0 activation row of nb blocks into out[0..).
 * shift: 3 for Q4_0 weights (offset 8), 7 for Q8_0 (offset 128). */
static void pack_row(const block_q8_0 *a, int64_t nb, int64_t g0, int64_t g1, int shift,
                     act_group *out)
{
    const __m512i ones = _mm512_set1_epi8(1);
    for (int64_t g = g0; g < g1; g++, out++) {
        const block_q8_0 *b = a + 4 * g;
        __m512i lo, hi;
        __m512 ds;
        if (4 * g + 4 <= nb) {
            split4(b[0].qs, b[1].qs, b[2].qs, b[3].qs, &lo, &hi);
            ds = scales4(b[0].d, b[1].d, b[2].d, b[3].d);
        } else {
            block_q8_0 tmp[4];
            memset(tmp, 0, sizeof tmp);
            memcpy(tmp, b, (size_t)(nb - 4 * g) * sizeof(block_q8_0));
            split4(tmp[0].qs, tmp[1].qs, tmp[2].qs, tmp[3].qs, &lo, &hi);
            ds = scales4(tmp[0].d, tmp[1].d, tmp[2].d, tmp[3].d);
        }
        /* s[l] = sum of lo and hi bytes 4l..4l+3 (1 x a), in [-1016, 1016] */
        __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, lo);
        s = _mm512_dpbusd_epi32(s, ones, hi);
        /* nc = -(s << shift) = -off * s */
        const __m512i nc = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(s, (unsigned)shift));
        _mm512_store_si512(out->lo, lo);
        _mm512_store_si512(out->hi, hi);
        _mm512_store_si512(out->nc, nc);
        _mm512_store_ps(out->ds, ds);
    }
}

/* ------------------------------------------------------------ tiles */

/* Fixed-order sum of 16 lanes: halves, then quarters, ... */
AI float hsum512(__m512 v)
{
    const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v),
                                   _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    q = _mm_add_ss(q, _mm_movehdup_ps(q));
    return _mm_cvtss_f32(q);
}

/* acc[r][t] += group g of weight row w + r * ws (r < R) with packed
 * token pk + t * pstride (t < T); m = blocks present in the group. */
AI void tile_group(const int q8, const int R, const int T, const uint8_t *wg, size_t ws, int m,
                   const act_group *pk, int64_t pstride, __m512 acc[TR][2 * TT])
{
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
        const uint8_t *wb = wg + (size_t)r * ws;
        __m512i wlo, whi;
        __m512 dw;
        if (m == 4) {
            if (R == 1) { /* 72 or 136 bytes a group span two or three lines */
                _mm_prefetch((const char *)wb + PREFETCH_BYTES, _MM_HINT_T1);
                _mm_prefetch((const char *)wb + PREFETCH_BYTES + 64, _MM_HINT_T1);
                if (q8)
                    _mm_prefetch((const char *)wb + PREFETCH_BYTES + 128, _MM_HINT_T1);
            }
            weight_group4(q8, wb, &wlo, &whi, &dw);
        } else {
            weight_group_tail(q8, wb, m, &wlo, &whi, &dw);
        }
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) {
            const act_group *a = pk + t * pstride;
            /* p[l] = nc[l] + sum_k wlo[4l+k] * lo[4l+k] + whi[4l+k] * hi[4l+k] (exact) */
            __m512i p = _mm512_load_si512(a->nc);
            p = _mm512_dpbusd_epi32(p, wlo, _mm512_load_si512(a->lo));
            p = _mm512_dpbusd_epi32(p, whi, _mm512_load_si512(a->hi));
            /* acc += float(p) * (dw * ds) */
            acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(dw, _mm512_load_ps(a->ds)),
                                        acc[r][t]);
        }
    }
}

/* acc += groups [g0, g1) of R rows x T packed tokens; pk holds group g0
 * of token t at pk[t * pstride]. */
AI void tile_groups(const int q8, const int R, const int T, const uint8_t *w, size_t ws,
                    int64_t nb, int64_t g0, int64_t g1, const act_group *pk, int64_t pstride,
                    __m512 acc[TR][2 * TT])
{
    const size_t gbytes = 4 * (q8 ? sizeof(block_q8_0) : sizeof(block_q4_0));
    const int64_t full = nb / 4 < g1 ? nb / 4 : g1;
    int64_t g = g0;
    for (; g < full; g++) {
        if (R > 1) { /* the next tile's bytes [g R gbytes, (g + 1) R gbytes) */
            const char *pf = (const char *)w + (size_t)R * ws + (size_t)g * R * gbytes;
#pragma GCC unroll 16
            for (size_t o = 0; o < R * gbytes; o += 64)
                _mm_prefetch(pf + o, _MM_HINT_T0);
        }
        tile_group(q8, R, T, w + (size_t)g * gbytes, ws, 4, pk + (g - g0), pstride, acc);
    }
    if (g < g1) /* the partial last group */
        tile_group(q8, R, T, w + (size_t)g * gbytes, ws, (int)(nb - 4 * g), pk + (g - g0),
                   pstride, acc);
}

/* y[t * ldy + r] for the R x T tile at rows w.., packed tokens pk.. */
AI void tile(const int q8, const int R, const int T, const uint8_t *w, size_t ws, int64_t nb,
             const act_group *pk, int64_t pstride, float *y, int64_t ldy)
{
    __m512 acc[TR][2 * TT];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
        for (int t = 0; t < T; t++)
            acc[r][t] = _mm512_setzero_ps();
    tile_groups(q8, R, T, w, ws, nb, 0, (nb + 3) / 4, pk, pstride, acc);
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
        for (int t = 0; t < T; t++)
            y[t * ldy + r] = hsum512(acc[r][t]);
}

/* ------------------------------------------------------------ entry points */

AI float dot_q(const int q8, const void *w, const void *act, int64_t n)
{
    enum { CHUNK = 32 }; /* groups packed at a time: 8 KB */
    _Alignas(64) act_group pk[CHUNK];
    const int64_t nb = n / QK8_0, ng = (nb + 3) / 4;
    __m512 acc[TR][2 * TT];
    acc[0][0] = _mm512_setzero_ps();
    for (int64_t g0 = 0; g0 < ng; g0 += CHUNK) {
        const int64_t g1 = g0 + CHUNK < ng ? g0 + CHUNK : ng;
        pack_row(act, nb, g0, g1, q8 ? 7 : 3, pk);
        tile_groups(q8, 1, 1, w, 0, nb, g0, g1, pk, 0, acc);
    }
    return hsum512(acc[0][0]);
}

float mr_dot_q4_0_q8_0_avx512(const void *w, const void *act, int64_t n)
{
    return dot_q(0, w, act, n);
}

float mr_dot_q8_0_q8_0_avx512(const void *w, const void *act, int64_t n)
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
    case 3: tile(q8, R, 3, wr, ws, nb, pk + t * ng, ng, y + t * ldy, ldy); break;
    case 2: tile(q8, R, 2, wr, ws, nb, pk + t * ng, ng, y + t * ldy, ldy); break;
    case 1: tile(q8, R, 1, wr, ws, nb, pk + t * ng, ng, y + t * ldy, ldy); break;
    default: break;
    }
}

/* R rows x tn tokens, 2 <= tn <= 2 TT, in one tile */
static_assert(2 * TT == 8, "run_wide_tile names every width up to 2 TT");
AI void run_wide_tile(const int q8, const int R, const uint8_t *wr, size_t ws, int64_t nb,
                      const act_group *pk, int64_t ng, int64_t tn, float *y, int64_t ldy)
{
    switch (tn) {
    case 8: tile(q8, R, 8, wr, ws, nb, pk, ng, y, ldy); break;
    case 7: tile(q8, R, 7, wr, ws, nb, pk, ng, y, ldy); break;
    case 6: tile(q8, R, 6, wr, ws, nb, pk, ng, y, ldy); break;
    case 5: tile(q8, R, 5, wr, ws, nb, pk, ng, y, ldy); break;
    case 4: tile(q8, R, 4, wr, ws, nb, pk, ng, y, ldy); break;
    case 3: tile(q8, R, 3, wr, ws, nb, pk, ng, y, ldy); break;
    default: tile(q8, R, 2, wr, ws, nb, pk, ng, y, ldy); break;
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
    /* A few tokens (an expert's share of a MoE prefill): row by row, one
     * sequential stream prefetched ahead as in decode, beats the tiles'
     * several short streams while the weights' unpacking is shared by
     * few tokens (Xeon family 6 model 167, 768 x 2048 from DRAM, Q8_0
     * at 2 / 4 / 8 tokens 13.5 / 11.8 / 9.8 GB/s against 10.6 / 9.9 /
     * 8.8; Q4_0 only up to 3 tokens: 10.8 against 8.9 at 2). */
    if (tn <= (q8 ? 2 * TT : 3)) {
        for (; r < re; r++)
            run_wide_tile(q8, 1, w + (size_t)r * ws, ws, nb, pk, ng, tn, y + r, ldy);
        return;
    }
    if (tn > TT && tn <= 2 * TT) {
        /* an expert's few tokens (a MoE prefill): 3 rows x all of them,
         * so each weight streams from memory once, where 6 x 4 then 6 x
         * the rest made a second pass from L1 that left the stream idle */
        for (; r + 3 <= re; r += 3)
            run_wide_tile(q8, 3, w + (size_t)r * ws, ws, nb, pk, ng, tn, y + r, ldy);
        for (; r < re; r++)
            run_wide_tile(q8, 1, w + (size_t)r * ws, ws, nb, pk, ng, tn, y + r, ldy);
        return;
    }
    for (; r + TR <= re; r += TR)
        run_row_tile(q8, TR, w + (size_t)r * ws, ws, nb, pk, ng, tn, y + r, ldy);
    for (; r + 2 <= re; r += 2) /* 16-row chunks leave 4 */
        run_row_tile(q8, 2, w + (size_t)r * ws, ws, nb, pk, ng, tn, y + r, ldy);
    if (r < re)
        run_row_tile(q8, 1, w + (size_t)r * ws, ws, nb, pk, ng, tn, y + r, ldy);
}

AI void gemm_q(const int q8, const void *w, size_t ws, const void *act, size_t as, int64_t n,
               int64_t n_tok, float *y, int64_t ldy, int64_t r0, int64_t r1)
{
    const int64_t nb = n / QK8_0, ng = (nb + 3) / 4;
    const uint8_t *wb = w;
    const uint8_t *ab = act;
    if (n_tok <= 0 || r1 <= r0)
        return;
    _Alignas(64) act_group stack_pk[STACK_GROUPS];
    act_group *pk = stack_pk, *heap = NULL;
    int64_t cap = STACK_GROUPS;
    if (n_tok * ng > cap) {
        const int64_t want = n_tok * ng < HEAP_GROUPS ? n_tok * ng : HEAP_GROUPS;
        heap = aligned_alloc(64, (size_t)want * sizeof(act_group));
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
                    pack_row((const block_q8_0 *)(ab + (size_t)(t0 + t) * as), nb, 0, ng,
                             q8 ? 7 : 3, pk + t * ng);
            run_tiles(q8, wb, ws, nb, rs, re, pk, ng, tn, y + t0 * ldy, ldy);
        }
    }
    free(heap);
}

void mr_gemm_q4_0_q8_0_avx512(const void *w, size_t w_stride, const void *act, size_t a_stride,
                              int64_t n, int64_t n_tok, float *y, int64_t ldy, int64_t r0,
                              int64_t r1)
{
    gemm_q(0, w, w_stride, act, a_stride, n, n_tok, y, ldy, r0, r1);
}

void mr_gemm_q8_0_q8_0_avx512(const void *w, size_t w_stride, const void *act, size_t a_stride,
                              int64_t n, int64_t n_tok, float *y, int64_t ldy, int64_t r0,
                              int64_t r1)
{
    gemm_q(1, w, w_stride, act, a_stride, n, n_tok, y, ldy, r0, r1);
}
