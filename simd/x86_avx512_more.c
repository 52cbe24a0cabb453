/* x86_avx512_more.c - MXFP4, IQ4_NL and Q5_0 weights dotted with Q8_0
 * activations, Q4_1 and Q5_1 with Q8_1, in integers, AVX-512 VNNI: vec_dot
 * and gemm (IQ4_XS with Q8_K is in x86_avx512_k.c).
 *
 * The scheme is x86_avx512_q.c's (read its header first): 4 blocks make a
 * group, each token's activations are repacked once per call into lo/hi
 * halves with a per-lane correction, and vpdpbusd multiplies unsigned
 * weight bytes by the signed activations.  These formats differ only in
 * how a block becomes 32 unsigned bytes u = w + off:
 *   MXFP4:  u = kv[q] + 16, kv the doubled e2m1 codes in [-12, 12], so
 *           u in [4, 28] (a vpshufb table lookup); scale 2^(e - 128).
 *   IQ4_NL: u = kv[q] + 128, kv the codebook in [-127, 113], u in
 *           [1, 241] (vpshufb); scale f16 d.
 *   Q5_0:   u = q5 = nibble | fifth bit << 4 in [0, 31] (off = 16), the
 *           fifth bits set through a byte mask built from qh; scale f16 d.
 *   Q4_1, Q5_1: x = d q + m with q unsigned: u = q, no offset (nc = 0);
 *           the minimum meets the activations through Q8_1's s: each of a
 *           block's 4 lanes adds m * s / 4 (s / 4 packed, exact), so the
 *           lanes of a block add up to m s.
 * sum w a = sum u a - off * sum a, and -off * sum a is the packed
 * correction nc (off = 16: shift 4; off = 128: shift 7).  Lane l of
 *   p = dpbusd(dpbusd(nc, ulo, lo), uhi, hi)
 * is the exact dot of 8 elements of block l / 4 (|p| <= 8 * 241 * 127), and
 * acc = fma(float(p), dw * ds, acc).  Every (row, token) result is that
 * chain over the groups in order, then one fixed tree over 16 lanes, so
 * vec_dot, gemm and any row or token split give the same bits.
 * A partial last group is read from a zeroed copy (absent blocks meet
 * zero activations with scale 0); nothing past a row is read. */
#include "kernels.h"

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#define AI static inline __attribute__((always_inline))

enum { K_MXFP4 = 0, K_IQ4NL = 1, K_Q5_0 = 2, K_Q4_1 = 3, K_Q5_1 = 4 };

/* bytes per block, and the correction's shift (off = 1 << shift) */
#define BLOCK_BYTES(kind)                                                                      \
    ((kind) == K_MXFP4 ? 17 : (kind) == K_IQ4NL ? 18 : (kind) == K_Q5_0 ? 22 : (kind) == K_Q4_1 ? 20 : 24)
#define OFF_SHIFT(kind) ((kind) == K_IQ4NL ? 7 : 4)
/* Q4_1 / Q5_1: x = d q + m, activations Q8_1 (no offset: q is unsigned) */
#define HAS_MIN(kind) ((kind) == K_Q4_1 || (kind) == K_Q5_1)

typedef struct {
    int8_t lo[64];  /* bytes 0..15 of blocks 0..3 */
    int8_t hi[64];  /* bytes 16..31 */
    int32_t nc[16]; /* -off * (sum of the 8 activations of lane l); Q8_1: 0 */
    float ds[16];   /* scale of block l / 4 */
    float ss[16];   /* Q8_1: s of block l / 4, over 4 (exact): the lanes of a
                     * block add up to m s */
} act_group;
static_assert(sizeof(act_group) == 320, "act_group is five zmm");

#define STACK_GROUPS 64
#define HEAP_GROUPS ((4 << 20) / (int64_t)sizeof(act_group))
#define TR 6
#define TT 4
#define ROW_BLOCK_BYTES (384 * 1024)
/* one row (one token): 8 KB ahead into L2, as in x86_avx512_q.c; from
 * DRAM on Zen 4 (family 25 model 17) 1.06-1.23x the L1 hint */
#define PREFETCH_BYTES 8192

/* ------------------------------------------------------------ loading */

/* lane l = f16 d_k for l / 4 = k (exact) */
AI __m512 scales4_f16(uint16_t d0, uint16_t d1, uint16_t d2, uint16_t d3)
{
    const uint64_t bits = d0 | (uint64_t)d1 << 16 | (uint64_t)d2 << 32 | (uint64_t)d3 << 48;
    const __m128 f = _mm_cvtph_ps(_mm_cvtsi64_si128((long long)bits));
    const __m512i idx = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
    return _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(f));
}

/* lane l = 2^(e_k - 128) for l / 4 = k, the 4 exponent bytes at wb + 17k
 * taken from one 64-byte load (the group is 68 bytes, so it stays inside
 * it): byte 17k is byte k of 128-bit lane k, and one vpshufb spreads it to
 * the low byte of that lane's 4 dwords (index 0x80: zero). */
AI __m512 scales4_e8m0(const uint8_t *wb)
{
    const __m512i z = _mm512_loadu_si512(wb);
    const __m512i pick = _mm512_set_epi32(
        (int)0x80808003, (int)0x80808003, (int)0x80808003, (int)0x80808003, (int)0x80808002,
        (int)0x80808002, (int)0x80808002, (int)0x80808002, (int)0x80808001, (int)0x80808001,
        (int)0x80808001, (int)0x80808001, (int)0x80808000, (int)0x80808000, (int)0x80808000,
        (int)0x80808000);
    /* e in [0, 255] per lane */
    const __m512i e = _mm512_shuffle_epi8(z, pick);
    /* e >= 2: (e - 1) << 23, the normal float 2^(e - 128); e < 2: the
     * subnormals 0x00200000 << e */
    const __m512i normal = _mm512_slli_epi32(_mm512_sub_epi32(e, _mm512_set1_epi32(1)), 23);
    const __m512i sub = _mm512_sllv_epi32(_mm512_set1_epi32(0x00200000), e);
    const __mmask16 is_normal = _mm512_cmpgt_epu32_mask(e, _mm512_set1_epi32(1));
    return _mm512_castsi512_ps(_mm512_mask_blend_epi32(is_normal, sub, normal));
}

/* the little-endian 16 bits at p */
AI uint16_t rd16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

/* 128-bit lane k = the 16 bytes at wb + k * bs + off */
AI __m512i load4x16(const uint8_t *wb, size_t bs, size_t off)
{
    __m512i z = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(wb + off)));
    z = _mm512_inserti32x4(z, _mm_loadu_si128((const __m128i *)(wb + bs + off)), 1);
    z = _mm512_inserti32x4(z, _mm_loadu_si128((const __m128i *)(wb + 2 * bs + off)), 2);
    return _mm512_inserti32x4(z, _mm_loadu_si128((const __m128i *)(wb + 3 * bs + off)), 3);
}

/* 64-bit byte masks of the fifth bits of 4 blocks' qh (32-bit LE at
 * wb + k bs + off): lo gets bits 0..15 (elements 0..15 of block k at bytes
 * 16k..16k+15), hi bits 16..31 (elements 16..31). */
AI void fifth_bits4(const uint8_t *wb, size_t bs, size_t off, __mmask64 *mlo, __mmask64 *mhi)
{
    uint32_t h[4];
    for (int k = 0; k < 4; k++)
        memcpy(&h[k], wb + k * bs + off, 4);
    *mlo = (uint64_t)(h[0] & 0xffff) | (uint64_t)(h[1] & 0xffff) << 16 |
           (uint64_t)(h[2] & 0xffff) << 32 | (uint64_t)(h[3] & 0xffff) << 48;
    *mhi = (uint64_t)(h[0] >> 16) | (uint64_t)(h[1] >> 16) << 16 | (uint64_t)(h[2] >> 16) << 32 |
           (uint64_t)(h[3] >> 16) << 48;
}

/* One weight group of 4 whole blocks as unsigned bytes u = w + off in the
 * lo/hi layout, and its 16 scale lanes (and, Q4_1/Q5_1, minimum lanes). */
AI void weight_group4(const int kind, const uint8_t *wb, __m512i *lo, __m512i *hi, __m512 *dw,
                      __m512 *mw)
{
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    if (HAS_MIN(kind)) {
        const size_t bs = BLOCK_BYTES(kind);
        const __m512i z = load4x16(wb, bs, kind == K_Q4_1 ? 4 : 8);
        *lo = _mm512_and_si512(z, m4);
        *hi = _mm512_and_si512(_mm512_srli_epi16(z, 4), m4);
        if (kind == K_Q5_1) {
            __mmask64 mlo, mhi;
            fifth_bits4(wb, bs, 4, &mlo, &mhi);
            const __m512i b4 = _mm512_set1_epi8(0x10);
            *lo = _mm512_or_si512(*lo, _mm512_maskz_mov_epi8(mlo, b4));
            *hi = _mm512_or_si512(*hi, _mm512_maskz_mov_epi8(mhi, b4));
        }
        /* the f16 fields read as values, not through a stack array (its
         * narrow stores and wide reload would stall store forwarding) */
        *dw = scales4_f16(rd16(wb), rd16(wb + bs), rd16(wb + 2 * bs), rd16(wb + 3 * bs));
        *mw = scales4_f16(rd16(wb + 2), rd16(wb + bs + 2), rd16(wb + 2 * bs + 2), rd16(wb + 3 * bs + 2));
        return;
    }
    if (kind == K_MXFP4) {
        /* kv + 16 per code, in every 128-bit lane */
        const __m512i tbl = _mm512_broadcast_i32x4(
            _mm_setr_epi8(16, 17, 18, 19, 20, 22, 24, 28, 16, 15, 14, 13, 12, 10, 8, 4));
        const __m512i z = load4x16(wb, 17, 1);
        *lo = _mm512_shuffle_epi8(tbl, _mm512_and_si512(z, m4));
        *hi = _mm512_shuffle_epi8(tbl, _mm512_and_si512(_mm512_srli_epi16(z, 4), m4));
        *dw = scales4_e8m0(wb);
    } else if (kind == K_IQ4NL) {
        /* kv + 128 per code: {-127, -104, ..., 113} + 128, as bytes */
        const __m512i tbl = _mm512_broadcast_i32x4(_mm_setr_epi8(
            1, 24, 45, 63, 79, 93, 106, 118, (char)129, (char)141, (char)153, (char)166,
            (char)181, (char)197, (char)217, (char)241));
        const __m512i z = load4x16(wb, 18, 2);
        *lo = _mm512_shuffle_epi8(tbl, _mm512_and_si512(z, m4));
        *hi = _mm512_shuffle_epi8(tbl, _mm512_and_si512(_mm512_srli_epi16(z, 4), m4));
        const block_iq4_nl *b = (const block_iq4_nl *)wb;
        *dw = scales4_f16(b[0].d, b[1].d, b[2].d, b[3].d);
    } else {
        const block_q5_0 *b = (const block_q5_0 *)wb;
        const __m512i z = load4x16(wb, 22, 6);
        __mmask64 mlo, mhi;
        fifth_bits4(wb, 22, 2, &mlo, &mhi);
        const __m512i b4 = _mm512_set1_epi8(0x10);
        *lo = _mm512_or_si512(_mm512_and_si512(z, m4), _mm512_maskz_mov_epi8(mlo, b4));
        *hi = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(z, 4), m4),
                              _mm512_maskz_mov_epi8(mhi, b4));
        *dw = scales4_f16(b[0].d, b[1].d, b[2].d, b[3].d);
    }
}

/* The row's last group with m < 4 blocks, from a zeroed copy. */
static void weight_group_tail(const int kind, const uint8_t *wb, int m, __m512i *lo, __m512i *hi,
                              __m512 *dw, __m512 *mw)
{
    _Alignas(8) uint8_t tmp[4 * 24];
    memset(tmp, 0, sizeof tmp);
    memcpy(tmp, wb, (size_t)m * BLOCK_BYTES(kind));
    weight_group4(kind, tmp, lo, hi, dw, mw);
}

/* ------------------------------------------------------------ packing */

AI void split4(const int8_t *p0, const int8_t *p1, const int8_t *p2, const int8_t *p3,
               __m512i *lo, __m512i *hi)
{
    __m512i z01 = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)p0)),
                                     _mm256_loadu_si256((const __m256i *)p1), 1);
    __m512i z23 = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)p2)),
                                     _mm256_loadu_si256((const __m256i *)p3), 1);
    *lo = _mm512_shuffle_i64x2(z01, z23, _MM_SHUFFLE(2, 0, 2, 0));
    *hi = _mm512_shuffle_i64x2(z01, z23, _MM_SHUFFLE(3, 1, 3, 1));
}

/* Groups [g0, g1) of one activation row of nb blocks into out[0..):
 * Q8_0 blocks with the offset correction (shift), or Q8_1 blocks (q8_1)
 * with their s instead. */
static void pack_row(const void *act, int64_t nb, int64_t g0, int64_t g1, int shift, int q8_1,
                     act_group *out)
{
    const __m512i ones = _mm512_set1_epi8(1);
    const size_t abs_ = q8_1 ? sizeof(block_q8_1) : sizeof(block_q8_0), qoff = q8_1 ? 4 : 2;
    for (int64_t g = g0; g < g1; g++, out++) {
        const uint8_t *b = (const uint8_t *)act + (size_t)(4 * g) * abs_;
        _Alignas(8) uint8_t tmp[4 * sizeof(block_q8_1)];
        if (4 * g + 4 > nb) {
            memset(tmp, 0, sizeof tmp);
            memcpy(tmp, b, (size_t)(nb - 4 * g) * abs_);
            b = tmp;
        }
        uint16_t d[4], sh[4];
        for (int k = 0; k < 4; k++) {
            memcpy(&d[k], b + k * abs_, 2);
            memcpy(&sh[k], b + k * abs_ + 2, 2);
        }
        __m512i lo, hi;
        split4((const int8_t *)b + qoff, (const int8_t *)b + abs_ + qoff,
               (const int8_t *)b + 2 * abs_ + qoff, (const int8_t *)b + 3 * abs_ + qoff, &lo, &hi);
        _mm512_store_si512(out->lo, lo);
        _mm512_store_si512(out->hi, hi);
        _mm512_store_ps(out->ds, scales4_f16(d[0], d[1], d[2], d[3]));
        if (q8_1) {
            _mm512_store_si512(out->nc, _mm512_setzero_si512());
            _mm512_store_ps(out->ss, _mm512_mul_ps(scales4_f16(sh[0], sh[1], sh[2], sh[3]),
                                                   _mm512_set1_ps(0.25f)));
            continue;
        }
        /* s[l] = sum of the 8 activations of lane l */
        __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, lo);
        s = _mm512_dpbusd_epi32(s, ones, hi);
        const __m512i nc = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(s, (unsigned)shift));
        _mm512_store_si512(out->nc, nc);
    }
}

/* ------------------------------------------------------------ tiles */

AI float hsum512(__m512 v)
{
    const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v),
                                   _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    q = _mm_add_ss(q, _mm_movehdup_ps(q));
    return _mm_cvtss_f32(q);
}

AI void tile_group(const int kind, const int R, const int T, const uint8_t *wg, size_t ws, int m,
                   const act_group *pk, int64_t pstride, __m512 acc[TR][TT])
{
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
        const uint8_t *wb = wg + (size_t)r * ws;
        __m512i wlo, whi;
        __m512 dw, mw = _mm512_setzero_ps();
        if (m == 4) {
            if (R == 1) { /* 68 to 96 bytes a group: at most two lines */
                _mm_prefetch((const char *)wb + PREFETCH_BYTES, _MM_HINT_T1);
                _mm_prefetch((const char *)wb + PREFETCH_BYTES + 64, _MM_HINT_T1);
            }
            weight_group4(kind, wb, &wlo, &whi, &dw, &mw);
        } else {
            weight_group_tail(kind, wb, m, &wlo, &whi, &dw, &mw);
        }
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) {
            const act_group *a = pk + t * pstride;
            /* p[l] = nc[l] + sum_k ulo[4l+k] lo[4l+k] + uhi[4l+k] hi[4l+k] (exact) */
            __m512i p = _mm512_load_si512(a->nc);
            p = _mm512_dpbusd_epi32(p, wlo, _mm512_load_si512(a->lo));
            p = _mm512_dpbusd_epi32(p, whi, _mm512_load_si512(a->hi));
            acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(dw, _mm512_load_ps(a->ds)),
                                        acc[r][t]);
            if (HAS_MIN(kind)) /* + m s / 4 in each of the block's 4 lanes */
                acc[r][t] = _mm512_fmadd_ps(mw, _mm512_load_ps(a->ss), acc[r][t]);
        }
    }
}

AI void tile_groups(const int kind, const int R, const int T, const uint8_t *w, size_t ws,
                    int64_t nb, int64_t g0, int64_t g1, const act_group *pk, int64_t pstride,
                    __m512 acc[TR][TT])
{
    const size_t gbytes = 4 * BLOCK_BYTES(kind);
    const int64_t full = nb / 4 < g1 ? nb / 4 : g1;
    int64_t g = g0;
    for (; g < full; g++) {
        if (R > 1) { /* the next tile's bytes, in address order */
            const char *pf = (const char *)w + (size_t)R * ws + (size_t)g * R * gbytes;
#pragma GCC unroll 16
            for (size_t o = 0; o < R * gbytes; o += 64)
                _mm_prefetch(pf + o, _MM_HINT_T0);
        }
        tile_group(kind, R, T, w + (size_t)g * gbytes, ws, 4, pk + (g - g0), pstride, acc);
    }
    if (g < g1)
        tile_group(kind, R, T, w + (size_t)g * gbytes, ws, (int)(nb - 4 * g), pk + (g - g0),
                   pstride, acc);
}

AI void tile(const int kind, const int R, const int T, const uint8_t *w, size_t ws, int64_t nb,
             const act_group *pk, int64_t pstride, float *y, int64_t ldy)
{
    __m512 acc[TR][TT];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
        for (int t = 0; t < T; t++)
            acc[r][t] = _mm512_setzero_ps();
    tile_groups(kind, R, T, w, ws, nb, 0, (nb + 3) / 4, pk, pstride, acc);
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
        for (int t = 0; t < T; t++)
            y[t * ldy + r] = hsum512(acc[r][t]);
}

/* ------------------------------------------------------------ entry points */

AI float dot_q(const int kind, const void *w, const void *act, int64_t n)
{
    enum { CHUNK = 32 };
    _Alignas(64) act_group pk[CHUNK];
    const int64_t nb = n / QK8_0, ng = (nb + 3) / 4;
    __m512 acc[TR][TT];
    acc[0][0] = _mm512_setzero_ps();
    for (int64_t g0 = 0; g0 < ng; g0 += CHUNK) {
        const int64_t g1 = g0 + CHUNK < ng ? g0 + CHUNK : ng;
        pack_row(act, nb, g0, g1, OFF_SHIFT(kind), HAS_MIN(kind), pk);
        tile_groups(kind, 1, 1, w, 0, nb, g0, g1, pk, 0, acc);
    }
    return hsum512(acc[0][0]);
}

AI void run_row_tile(const int kind, const int R, const uint8_t *wr, size_t ws, int64_t nb,
                     const act_group *pk, int64_t ng, int64_t tn, float *y, int64_t ldy)
{
    int64_t t = 0;
    for (; t + TT <= tn; t += TT)
        tile(kind, R, TT, wr, ws, nb, pk + t * ng, ng, y + t * ldy, ldy);
    switch (tn - t) {
    case 3: tile(kind, R, 3, wr, ws, nb, pk + t * ng, ng, y + t * ldy, ldy); break;
    case 2: tile(kind, R, 2, wr, ws, nb, pk + t * ng, ng, y + t * ldy, ldy); break;
    case 1: tile(kind, R, 1, wr, ws, nb, pk + t * ng, ng, y + t * ldy, ldy); break;
    default: break;
    }
}

AI void run_tiles(const int kind, const uint8_t *w, size_t ws, int64_t nb, int64_t rs, int64_t re,
                  const act_group *pk, int64_t ng, int64_t tn, float *y, int64_t ldy)
{
    int64_t r = rs;
    if (tn == 1) { /* decode: the rows in order, one sequential stream */
        for (; r < re; r++)
            tile(kind, 1, 1, w + (size_t)r * ws, ws, nb, pk, ng, y + r, ldy);
        return;
    }
    for (; r + TR <= re; r += TR)
        run_row_tile(kind, TR, w + (size_t)r * ws, ws, nb, pk, ng, tn, y + r, ldy);
    for (; r + 2 <= re; r += 2)
        run_row_tile(kind, 2, w + (size_t)r * ws, ws, nb, pk, ng, tn, y + r, ldy);
    if (r < re)
        run_row_tile(kind, 1, w + (size_t)r * ws, ws, nb, pk, ng, tn, y + r, ldy);
}

AI void gemm_q(const int kind, const void *w, size_t ws, const void *act, size_t as, int64_t n,
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
                y[t * ldy + r] = dot_q(kind, wb + (size_t)r * ws, ab + (size_t)t * as, n);
        free(heap);
        return;
    }
    int64_t tp = cap / ng;
    if (tp >= n_tok)
        tp = n_tok;
    else if (tp > TT)
        tp -= tp % TT;
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
                    pack_row(ab + (size_t)(t0 + t) * as, nb, 0, ng, OFF_SHIFT(kind),
                             HAS_MIN(kind), pk + t * ng);
            run_tiles(kind, wb, ws, nb, rs, re, pk, ng, tn, y + t0 * ldy, ldy);
        }
    }
    free(heap);
}

#define ENTRY_POINTS(name, at, kind)                                                            \
    static float mr_dot_##name##_##at##_avx512(const void *w, const void *act, int64_t n)        \
    {                                                                                          \
        return dot_q(kind, w, act, n);                                                         \
    }                                                                                          \
    static void mr_gemm_##name##_##at##_avx512(const void *w, size_t w_stride, const void *act,  \
                                             size_t a_stride, int64_t n, int64_t n_tok,        \
                                             float *y, int64_t ldy, int64_t r0, int64_t r1)    \
    {                                                                                          \
        gemm_q(kind, w, w_stride, act, a_stride, n, n_tok, y, ldy, r0, r1);                    \
    }
ENTRY_POINTS(mxfp4, q8_0, K_MXFP4)
ENTRY_POINTS(iq4_nl, q8_0, K_IQ4NL)
ENTRY_POINTS(q5_0, q8_0, K_Q5_0)
ENTRY_POINTS(q4_1, q8_1, K_Q4_1)
ENTRY_POINTS(q5_1, q8_1, K_Q5_1)

/* MXFP4 x f32 (the exact path): per block, the 32 codes become their
 * doubled e2m1 values as floats through a 16-float table (vpermps), meet x
 * in two 16-lane products, and the block's 16-lane sum is scaled by
 * 2^(e - 128) (exact) into the accumulator. */
static float mr_dot_mxfp4_f32_avx512(const void *w, const float *x, int64_t n)
{
    const block_mxfp4 *b = w;
    const int64_t nb = n / QK_MXFP4;
    const __m512 tbl = _mm512_setr_ps(0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12);
    const __m128i m4 = _mm_set1_epi8(0x0f);
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const __m128i q = _mm_loadu_si128((const __m128i *)b[i].qs);
        /* codes of elements 0..15 and 16..31, one per int32 lane */
        const __m512i lo = _mm512_cvtepu8_epi32(_mm_and_si128(q, m4));
        const __m512i hi = _mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(q, 4), m4));
        __m512 s = _mm512_mul_ps(_mm512_permutexvar_ps(lo, tbl), _mm512_loadu_ps(x + 32 * i));
        s = _mm512_fmadd_ps(_mm512_permutexvar_ps(hi, tbl), _mm512_loadu_ps(x + 32 * i + 16), s);
        acc = _mm512_fmadd_ps(s, _mm512_set1_ps(mr_e8m0_to_f32_half(b[i].e)), acc);
    }
    return hsum512(acc);
}

void mr_kernels_init_avx512_more(mr_kernels *k)
{
    k->dot_f32[MR_TYPE_MXFP4] = mr_dot_mxfp4_f32_avx512;
    k->vec_dot[MR_TYPE_MXFP4] = mr_dot_mxfp4_q8_0_avx512;
    k->gemm[MR_TYPE_MXFP4] = mr_gemm_mxfp4_q8_0_avx512;
    k->vec_dot[MR_TYPE_IQ4_NL] = mr_dot_iq4_nl_q8_0_avx512;
    k->gemm[MR_TYPE_IQ4_NL] = mr_gemm_iq4_nl_q8_0_avx512;
    k->vec_dot[MR_TYPE_Q5_0] = mr_dot_q5_0_q8_0_avx512;
    k->gemm[MR_TYPE_Q5_0] = mr_gemm_q5_0_q8_0_avx512;
    k->vec_dot[MR_TYPE_Q4_1] = mr_dot_q4_1_q8_1_avx512;
    k->gemm[MR_TYPE_Q4_1] = mr_gemm_q4_1_q8_1_avx512;
    k->vec_dot[MR_TYPE_Q5_1] = mr_dot_q5_1_q8_1_avx512;
    k->gemm[MR_TYPE_Q5_1] = mr_gemm_q5_1_q8_1_avx512;
}
