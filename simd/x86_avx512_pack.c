/* x86_avx512_pack.c - Q4_K, Q5_K and Q6_K repacked across 16 rows, dotted
 * with Q8_K activations by AVX-512 VNNI with the rows in the lanes.  Q4_K
 * is described here; Q5_K (its group plus the fifth bits as byte masks)
 * and Q6_K (the file's 210 bytes per row rearranged) below.
 *
 * The file's Q4_K gemm (x86_avx512_k.c) unpacks every block of every row
 * for each tile and spends two multiplies per 64 products (vpmaddubsw,
 * then vpdpwssd with the scales).  Here a group of 16 rows is laid out
 * once, at load, so that one vpdpbusd does 64 products: int32 lane r holds
 * four consecutive weights of row r, multiplied by four activation bytes
 * broadcast from the Q8_K row, and the sub-block scales are applied once
 * per 32 weights.  Per group and super-block b (2368 bytes, 148 per row):
 *   d[16], dmin[16]  f16, row r in element r (the blocks' own);
 *   sc[8][16]        6-bit sub-block scales, sc[j][r] of row r;
 *   m[4][16][2]      6-bit mins in pairs, m[j][r] = {m[2j], m[2j + 1]} of
 *                    row r, an int16 pair per lane for vpdpwssd;
 *   qs[32][16][4]    vector i, lane r, byte k: weight 4i + k of row r in
 *                    the low nibble, weight 128 + 4i + k in the high one
 *                    (sub-blocks i / 8 and 4 + i / 8).
 * A (row, token, block) then comes to the integers of the file's kernel,
 *   S = sum_j sc[j] D[j], D[j] = sum of q a over sub-block j,
 *   M = sum_j m[j] (bsums[2j] + bsums[2j + 1]),
 * with the high nibbles kept in place (16 q) and the low sub-blocks' scales
 * taken 16 times, so 16 S is summed and shifted back (exact: every term is
 * a multiple of 16; |16 S| <= 16 * 8 * 63 * 32 * 15 * 128 < 2^31), and
 * the floats follow the block-exact rule of x86_avx512_k.c:
 *   x = fmsub(float(S), d_w d_a, float(M) * (dmin_w d_a)),  acc = acc + x.
 * Rows in lanes, tokens in registers: each lane runs the file kernel's
 * float operations on the same values, so the bits are gemm's on the
 * file's bytes (tested), and paging, which hands out the file's bytes,
 * computes the same logits.  A tile is 16 rows x up to 8 tokens.
 */
#include "x86_avx512.h"

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "../quant/ref_k_common.h"

#define AI static inline __attribute__((always_inline))

#define PR MR_PACK_ROWS /* 16: the lanes of a zmm of int32 */
/* Prefetch, in group-blocks (2368 bytes): PF_L1 ahead into L1, PF_L2
 * ahead into L2, and PF_START at a call's start (an expert's matrix is
 * ~1 MB: the stream restarts often).  From DRAM on Zen 4 the choice moved
 * one-token speed by less than the machine's noise (+-10%). */
#define PF_L1 2
#define PF_L2 8
#define PF_START 8
#define PT 4            /* tokens per tile part; a tile has up to 2 PT */
/* F(k) for the k = n in 1 .. 2 PT - 1: a tile's width as a constant */
#define EACH_TAIL(n, F)                                                                            \
    switch (n) {                                                                                   \
    case 7: F(7); break;                                                                           \
    case 6: F(6); break;                                                                           \
    case 5: F(5); break;                                                                           \
    case 4: F(4); break;                                                                           \
    case 3: F(3); break;                                                                           \
    case 2: F(2); break;                                                                           \
    case 1: F(1); break;                                                                           \
    default: break;                                                                                \
    }
static_assert(2 * PT - 1 == 7, "EACH_TAIL names every width below a full tile");

typedef struct {
    uint16_t d[PR], dmin[PR];
    uint8_t sc[8][PR];
    uint8_t m[4][PR][2];
    uint8_t qs[32][PR][4];
} group_q4_K;
static_assert(sizeof(group_q4_K) == PR * 148, "a Q4_K group is 148 bytes per row and block");

/* Q5_K: Q4_K's group, its low 4 bits of q where Q4_K has q, then the
 * fifth bits of vector i as two byte masks (bit 4r + k of row r, byte k):
 * qh[i][0] for the low-nibble weights 4i + k, qh[i][1] for 128 + 4i + k.
 * No 16 q trick (q reaches 31): S is summed as is. */
typedef struct {
    group_q4_K q4;
    uint64_t qh[32][2];
} group_q5_K;
static_assert(sizeof(group_q5_K) == PR * 180, "a Q5_K group is 180 bytes per row and block");

/* ------------------------------------------------------------ repack */

/* One row's Q4_K-layout block (Q4_K, or Q5_K's low bits) into lane r of
 * group g: the scales, and the nibbles j | 128 + j << 4 */
static void put_row_q4(group_q4_K *g, int r, uint16_t d, uint16_t dmin, const uint8_t *scales,
                       const uint8_t *qs)
{
    const __m256i lo4 = _mm256_set1_epi8(0x0f), hi4 = _mm256_set1_epi8((char)0xf0);
    g->d[r] = d;
    g->dmin[r] = dmin;
    for (int j = 0; j < 8; j++) {
        uint8_t sc, m;
        mr_k_scale_min(j, scales, &sc, &m);
        g->sc[j][r] = sc;
        g->m[j / 2][r][j & 1] = m;
    }
    /* the file: byte 32c + l holds weight 64c + l (low nibble) and
     * 64c + 32 + l (high); packed byte j < 128 of the row is weight j |
     * weight 128 + j << 4, so with A = chunk c's bytes and B = chunk
     * c + 2's, bytes 64c .. 64c + 31 are A & 15 | B << 4 and 64c + 32 ..
     * 64c + 63 are A >> 4 | B & 0xf0 */
    _Alignas(32) uint8_t row[128];
    for (int c = 0; c < 2; c++) {
        const __m256i A = _mm256_loadu_si256((const __m256i *)(qs + 32 * c));
        const __m256i B = _mm256_loadu_si256((const __m256i *)(qs + 64 + 32 * c));
        const __m256i p0 = _mm256_or_si256(_mm256_and_si256(A, lo4), _mm256_and_si256(_mm256_slli_epi16(B, 4), hi4));
        const __m256i p1 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(A, 4), lo4), _mm256_and_si256(B, hi4));
        _mm256_store_si256((__m256i *)(row + 64 * c), p0);
        _mm256_store_si256((__m256i *)(row + 64 * c + 32), p1);
    }
    /* four bytes j = 4i .. 4i + 3 to vector i, lane r */
    for (int i = 0; i < 32; i++)
        memcpy(g->qs[i][r], row + 4 * i, 4);
}

/* Walk rows (whole groups of PR) x n of blocks of bsz bytes, src rows
 * src_row_bytes apart, calling put(group, r, block) for every row r of
 * every group-block of gsz bytes in dst (which it may clear first). */
typedef void (*put_row_fn)(void *group, int r, const void *block);

static void repack_groups(const void *src, size_t src_row_bytes, int64_t rows, int64_t n, void *dst,
                          size_t gsz, size_t bsz, put_row_fn put)
{
    const int64_t nb = n / QK_K;
    uint8_t *g = dst;
    for (int64_t r0 = 0; r0 + PR <= rows; r0 += PR)
        for (int64_t b = 0; b < nb; b++, g += gsz) {
            memset(g, 0, gsz);
            for (int r = 0; r < PR; r++)
                put(g, r, (const uint8_t *)src + (size_t)(r0 + r) * src_row_bytes + (size_t)b * bsz);
        }
}

static void put_q4(void *group, int r, const void *block)
{
    const block_q4_K *x = block;
    put_row_q4(group, r, x->d, x->dmin, x->scales, x->qs);
}

void mr_repack_q4_K_avx512(const void *src, size_t src_row_bytes, int64_t rows, int64_t n, void *dst)
{
    repack_groups(src, src_row_bytes, rows, n, dst, sizeof(group_q4_K), sizeof(block_q4_K), put_q4);
}

static void put_q5(void *group, int r, const void *block)
{
    group_q5_K *g = group;
    const block_q5_K *x = block;
    put_row_q4(&g->q4, r, x->d, x->dmin, x->scales, x->qs);
    /* bit 4 of weight 64c + 32s + l is bit 2c + s of qh[l] */
    for (int e = 0; e < QK_K; e++) {
        const int c = e / 64, s = (e % 64) / 32, l = e % 32;
        if ((x->qh[l] >> (2 * c + s)) & 1) {
            const int j = e & 127;
            g->qh[j / 4][e >> 7] |= 1ull << (4 * r + j % 4);
        }
    }
}

void mr_repack_q5_K_avx512(const void *src, size_t src_row_bytes, int64_t rows, int64_t n, void *dst)
{
    repack_groups(src, src_row_bytes, rows, n, dst, sizeof(group_q5_K), sizeof(block_q5_K), put_q5);
}

/* ------------------------------------------------------------ gemm */

/* bs: per token and block, bsums[2j] + bsums[2j + 1] for j < 8 as int16,
 * so that int32 j is the pair of sub-blocks 2j, 2j + 1 */
AI void bsum_pairs(const uint8_t *a, size_t as, int64_t nb, int64_t n_tok, int32_t *bs)
{
    for (int64_t t = 0; t < n_tok; t++)
        for (int64_t b = 0; b < nb; b++) {
            const block_q8_K *x = (const block_q8_K *)(a + (size_t)t * as) + b;
            const __m128i lo = _mm_loadu_si128((const __m128i *)x->bsums);
            const __m128i hi = _mm_loadu_si128((const __m128i *)(x->bsums + 8));
            _mm_storeu_si128((__m128i *)(bs + ((size_t)t * nb + b) * 4), _mm_hadd_epi16(lo, hi));
        }
}

#define BCAST(p) _mm512_set1_epi32(*(const int32_t *)(p))

/* Group-blocks of gsz bytes ahead of gb: PF_L1 into L1, PF_L2 into L2
 * (prefetches never fault, past a matrix's end included); start: the
 * call's first PF_START into L2. */
AI void prefetch_groups(const uint8_t *gb, size_t gsz, int start)
{
    if (start) {
        for (size_t o = 0; o < PF_START * gsz; o += 64)
            _mm_prefetch((const char *)gb + o, _MM_HINT_T1);
        return;
    }
    for (size_t o = 0; o < gsz; o += 64) {
        _mm_prefetch((const char *)gb + PF_L1 * gsz + o, _MM_HINT_T0);
        _mm_prefetch((const char *)gb + PF_L2 * gsz + o, _MM_HINT_T1);
    }
}


/* Block b of one group for T <= PT tokens (activations a, rows as apart;
 * their pair sums bs): acc[t] += the block's floats. */
AI void tile_block(const int Q5, const int T, const uint8_t *gb, int64_t b, int64_t nb,
                   const uint8_t *a, size_t as, const int32_t *bs, __m512 *acc)
{
    const __m512i c16 = _mm512_set1_epi8(16);
    const __m512i lo4 = _mm512_set1_epi8(0x0f), hi4 = _mm512_set1_epi8((char)0xf0);
    const group_q4_K *g = (const group_q4_K *)gb;
    const group_q5_K *g5 = (const group_q5_K *)gb;
    const int8_t *q[PT];
#pragma GCC unroll 4
    for (int t = 0; t < T; t++)
        q[t] = ((const block_q8_K *)(a + (size_t)t * as) + b)->qs;
    __m512i s16[PT];
#pragma GCC unroll 4
    for (int t = 0; t < T; t++)
        s16[t] = _mm512_setzero_si512();
#pragma GCC unroll 1
    for (int s = 0; s < 4; s++) {
        /* sub-blocks s (low nibbles) and 4 + s (high) */
        /* one token: two chains each (even and odd i), so the
         * vpdpbusd latency does not bound a memory-speed stream */
        __m512i dl[PT], dh[PT];
        const int NC = T == 1 ? 2 : T;
#pragma GCC unroll 4
        for (int t = 0; t < NC; t++)
            dl[t] = dh[t] = _mm512_setzero_si512();
#pragma GCC unroll 8
        for (int k = 0; k < 8; k++) {
            const int i = 8 * s + k;
            const __m512i v = _mm512_loadu_si512(g->qs[i]);
            __m512i wl = _mm512_and_si512(v, lo4), wh = _mm512_and_si512(v, hi4);
            if (Q5) { /* q itself: the high nibble shifted down, bit 4 added */
                wh = _mm512_and_si512(_mm512_srli_epi16(v, 4), lo4);
                wl = _mm512_mask_add_epi8(wl, (__mmask64)g5->qh[i][0], wl, c16);
                wh = _mm512_mask_add_epi8(wh, (__mmask64)g5->qh[i][1], wh, c16);
            }
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) {
                const int ch = T == 1 ? (k & 1) : t; /* constant once unrolled */
                dl[ch] = _mm512_dpbusd_epi32(dl[ch], wl, BCAST(q[t] + 4 * i));
                dh[ch] = _mm512_dpbusd_epi32(dh[ch], wh, BCAST(q[t] + 128 + 4 * i));
            }
        }
        if (T == 1) { /* exact integer sums */
            dl[0] = _mm512_add_epi32(dl[0], dl[1]);
            dh[0] = _mm512_add_epi32(dh[0], dh[1]);
        }
        /* Q4_K: the low sub-blocks' scales 16 times, matching 16 q above */
        __m512i scl = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)g->sc[s]));
        if (!Q5)
            scl = _mm512_slli_epi32(scl, 4);
        const __m512i sch = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)g->sc[4 + s]));
#pragma GCC unroll 4
        for (int t = 0; t < T; t++)
            s16[t] = _mm512_add_epi32(s16[t], _mm512_add_epi32(_mm512_mullo_epi32(dl[t], scl),
                                                               _mm512_mullo_epi32(dh[t], sch)));
    }
    __m512i mv[4];
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++)
        mv[j] = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)g->m[j]));
    const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)g->d));
    const __m512 dm = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)g->dmin));
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) {
        const int32_t *bt = bs + ((size_t)t * nb + b) * 4;
        __m512i mi = _mm512_dpwssd_epi32(_mm512_setzero_si512(), mv[0], _mm512_set1_epi32(bt[0]));
#pragma GCC unroll 3
        for (int j = 1; j < 4; j++)
            mi = _mm512_dpwssd_epi32(mi, mv[j], _mm512_set1_epi32(bt[j]));
        const __m512 da = _mm512_set1_ps(((const block_q8_K *)(a + (size_t)t * as) + b)->d);
        const __m512 pw = _mm512_mul_ps(dw, da), qw = _mm512_mul_ps(dm, da);
        const __m512 sf = _mm512_cvtepi32_ps(Q5 ? s16[t] : _mm512_srai_epi32(s16[t], 4));
        acc[t] = _mm512_add_ps(acc[t], _mm512_fmsub_ps(sf, pw, _mm512_mul_ps(_mm512_cvtepi32_ps(mi), qw)));
    }
}

/* Rows of one group x T <= 2 PT tokens; y rows outside keep (mask)
 * untouched.  Over PT tokens, each block's second part runs while the
 * block is in L1, so the weights stream from memory once and the stream
 * never waits for a second pass.  Q5: the groups are group_q5_K. */
AI void tile(const int Q5, const int T, const uint8_t *gb, int64_t nb, const uint8_t *a, size_t as,
             const int32_t *bs, float *y, int64_t ldy, __mmask16 keep)
{
    const size_t gsz = Q5 ? sizeof(group_q5_K) : sizeof(group_q4_K);
    const int T0 = T < PT ? T : PT, T1 = T - T0;
    __m512 acc[2 * PT];
#pragma GCC unroll 8
    for (int t = 0; t < T; t++)
        acc[t] = _mm512_setzero_ps();
    prefetch_groups(gb, gsz, 1);
    if (!T1) /* (a loop of its own: GCC schedules it better) */
        for (int64_t b = 0; b < nb; b++, gb += gsz) {
            prefetch_groups(gb, gsz, 0);
            tile_block(Q5, T0, gb, b, nb, a, as, bs, acc);
        }
    else
        for (int64_t b = 0; b < nb; b++, gb += gsz) {
            prefetch_groups(gb, gsz, 0);
            tile_block(Q5, T0, gb, b, nb, a, as, bs, acc);
            tile_block(Q5, T1, gb, b, nb, a + (size_t)PT * as, as, bs + (size_t)PT * nb * 4, acc + PT);
        }
#pragma GCC unroll 8
    for (int t = 0; t < T; t++)
        _mm512_mask_storeu_ps(y + t * ldy, keep, acc[t]);
}

/* Token pairs' sums for this many token-blocks live on the stack (pool
 * threads may have small stacks); longer batches go in chunks. */
#define BS_STACK 256

AI void gemm_q45(const int Q5, const void *w, size_t w_stride, const void *act, size_t a_stride,
                 int64_t n, int64_t n_tok, float *y, int64_t ldy, int64_t r0, int64_t r1)
{
    const int64_t nb = n / QK_K;
    if (n_tok <= 0 || r1 <= r0 || nb <= 0)
        return;
    const uint8_t *ab = act;
    _Alignas(64) int32_t stack[BS_STACK * 4];
    int64_t chunk = BS_STACK / nb;
    int32_t *bs = stack, *heap = NULL;
    if (chunk == 0) { /* rows over 64 K elements: one token at a time */
        heap = malloc((size_t)nb * 16);
        if (!heap)
            return; /* unreachable in practice: 16 bytes per 256 weights */
        bs = heap;
        chunk = 1;
    }
    /* whole groups, the rows outside [r0, r1) computed but not stored */
    const int64_t g0 = r0 / PR, g1 = (r1 + PR - 1) / PR;
    for (int64_t t0 = 0; t0 < n_tok; t0 += chunk) {
        const int64_t nt = n_tok - t0 < chunk ? n_tok - t0 : chunk;
        const uint8_t *at = ab + (size_t)t0 * a_stride;
        bsum_pairs(at, a_stride, nb, nt, bs);
        for (int64_t gi = g0; gi < g1; gi++) {
            const uint8_t *g = (const uint8_t *)w + (size_t)gi * PR * w_stride;
            const int64_t lo = gi * PR < r0 ? r0 - gi * PR : 0;
            const int64_t hi = (gi + 1) * PR > r1 ? r1 - gi * PR : PR;
            const __mmask16 keep = (__mmask16)(((1u << hi) - 1u) & ~((1u << lo) - 1u));
            float *yg = y + t0 * ldy + gi * PR;
            int64_t t = 0;
            for (; t + 2 * PT <= nt; t += 2 * PT)
                tile(Q5, 2 * PT, g, nb, at + (size_t)t * a_stride, a_stride, bs + t * nb * 4, yg + t * ldy, ldy, keep);
#define TAIL(T) tile(Q5, T, g, nb, at + (size_t)t * a_stride, a_stride, bs + t * nb * 4, yg + t * ldy, ldy, keep)
            EACH_TAIL(nt - t, TAIL);
#undef TAIL
        }
    }
    free(heap);
}

void mr_gemm_q4_K_packed_avx512(const void *w, size_t w_stride, const void *act, size_t a_stride,
                                int64_t n, int64_t n_tok, float *y, int64_t ldy, int64_t r0, int64_t r1)
{
    gemm_q45(0, w, w_stride, act, a_stride, n, n_tok, y, ldy, r0, r1);
}

void mr_gemm_q5_K_packed_avx512(const void *w, size_t w_stride, const void *act, size_t a_stride,
                                int64_t n, int64_t n_tok, float *y, int64_t ldy, int64_t r0, int64_t r1)
{
    gemm_q45(1, w, w_stride, act, a_stride, n, n_tok, y, ldy, r0, r1);
}

/* ------------------------------------------------------------ Q6_K */

/* Q6_K per group and super-block (3360 bytes, 210 per row, the file's
 * size): d[16] f16; sc[8][16][2], the int8 scales of sub-blocks 2j and
 * 2j + 1 of row r as a pair (vpdpwssd's for the -32 offset, one of them
 * per sub-block for S); ql[32][16][4] as Q4_K's qs: low 4 bits of weights
 * 4i + k (low nibble) and 128 + 4i + k (high); qh[16][16][4]: byte k of
 * lane r in vector h holds the top 2 bits of weights 4i + k (bits 0-1),
 * 128 + 4i + k (2-3) for i = 2h, and of the same two for i = 2h + 1
 * (4-5, 6-7).  Then
 *   S = sum_g sc[g] D[g] - 32 sum_g sc[g] bsums[g]   (exact, |S| < 2^29)
 *   x = float(S) * (d_w d_a),  acc = acc + x
 * as x86_avx512_k.c's block rule for Q6_K. */
typedef struct {
    uint16_t d[PR];
    int8_t sc[8][PR][2];
    uint8_t ql[32][PR][4];
    uint8_t qh[16][PR][4];
} group_q6_K;
static_assert(sizeof(group_q6_K) == PR * 210, "a Q6_K group is 210 bytes per row and block");

static inline uint64_t ld64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* A Q6_K block's 256 q in [0, 63], eight bytes at a time (the layout of
 * quant/ref_q6_k.c: in half h, ql[64h + l] holds weights 128h + l and
 * 128h + 64 + l, ql[64h + 32 + l] weights 128h + 32 + l and + 96, and
 * qh[32h + l] their top bits in that order, two bits each) */
static void q6_unpack(const block_q6_K *x, uint8_t q[QK_K])
{
    const uint64_t m4 = 0x0f0f0f0f0f0f0f0full, m2 = 0x0303030303030303ull;
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l += 8) {
            const uint64_t A = ld64(x->ql + 64 * h + l), B = ld64(x->ql + 64 * h + 32 + l);
            const uint64_t H = ld64(x->qh + 32 * h + l);
            const uint64_t w[4] = {(A & m4) | (H & m2) << 4, (B & m4) | (H >> 2 & m2) << 4,
                                   (A >> 4 & m4) | (H >> 4 & m2) << 4, (B >> 4 & m4) | (H >> 6 & m2) << 4};
            for (int g = 0; g < 4; g++)
                memcpy(q + 128 * h + 32 * g + l, &w[g], 8);
        }
}

static void put_q6(void *group, int r, const void *block)
{
    group_q6_K *g = group;
    const block_q6_K *x = block;
    g->d[r] = x->d;
    for (int j = 0; j < 8; j++) {
        g->sc[j][r][0] = x->scales[2 * j];
        g->sc[j][r][1] = x->scales[2 * j + 1];
    }
    uint8_t q[QK_K];
    q6_unpack(x, q);
    /* per 8 weights j = 8v .. 8v + 7 (vectors 2v, 2v + 1): the low nibbles
     * of j and 128 + j, and the top bits packed (j | 128 + j << 2) with
     * vector 2v + 1's shifted by 4 */
    const uint64_t m4 = 0x0f0f0f0f0f0f0f0full, m3 = 0x0303030303030303ull;
    for (int v = 0; v < 16; v++) {
        const uint64_t lo = ld64(q + 8 * v), hi = ld64(q + 128 + 8 * v);
        const uint64_t nib = (lo & m4) | (hi & m4) << 4;
        const uint64_t top = (lo >> 4 & m3) | (hi >> 4 & m3) << 2;
        const uint32_t th = (uint32_t)((top & 0x0f0f0f0full) | (top >> 32 & 0x0f0f0f0full) << 4);
        const uint32_t nib_hi = (uint32_t)(nib >> 32);
        memcpy(g->ql[2 * v][r], &nib, 4);
        memcpy(g->ql[2 * v + 1][r], &nib_hi, 4);
        memcpy(g->qh[v][r], &th, 4);
    }
}

void mr_repack_q6_K_avx512(const void *src, size_t src_row_bytes, int64_t rows, int64_t n, void *dst)
{
    repack_groups(src, src_row_bytes, rows, n, dst, sizeof(group_q6_K), sizeof(block_q6_K), put_q6);
}

/* Block b (at g) of one Q6_K group for T <= PT tokens: acc[t] += its floats. */
AI void tile6_block(const int T, const group_q6_K *g, int64_t b, const uint8_t *a, size_t as,
                    __m512 *acc)
{
    const __m512i lo4 = _mm512_set1_epi8(0x0f), m30 = _mm512_set1_epi8(0x30);
    const block_q8_K *ab[PT];
    __m512i s[PT];
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) {
        ab[t] = (const block_q8_K *)(a + (size_t)t * as) + b;
        s[t] = _mm512_setzero_si512();
    }
#pragma GCC unroll 1
    for (int sb = 0; sb < 8; sb++) {
        /* sub-blocks sb (low nibbles, weights 16 sb ..) and 8 + sb */
        __m512i dl[PT], dh[PT];
#pragma GCC unroll 4
        for (int t = 0; t < T; t++)
            dl[t] = dh[t] = _mm512_setzero_si512();
#pragma GCC unroll 2
        for (int kk = 0; kk < 2; kk++) {
            const __m512i H = _mm512_loadu_si512(g->qh[2 * sb + kk]);
#pragma GCC unroll 2
            for (int e = 0; e < 2; e++) {
                const int i = 4 * sb + 2 * kk + e;
                const __m512i V = _mm512_loadu_si512(g->ql[i]);
                /* the top bits to bits 4-5: i even from bits 0-1 / 2-3,
                 * odd from 4-5 / 6-7 (16-bit shifts; masked) */
                const __m512i hl = e ? H : _mm512_slli_epi16(H, 4);
                const __m512i hh = e ? _mm512_srli_epi16(H, 2) : _mm512_slli_epi16(H, 2);
                const __m512i wl = _mm512_ternarylogic_epi32(_mm512_and_si512(V, lo4), hl, m30, 0xf8);
                const __m512i wh = _mm512_ternarylogic_epi32(_mm512_and_si512(_mm512_srli_epi16(V, 4), lo4), hh,
                                                             m30, 0xf8);
#pragma GCC unroll 4
                for (int t = 0; t < T; t++) {
                    dl[t] = _mm512_dpbusd_epi32(dl[t], wl, BCAST(ab[t]->qs + 4 * i));
                    dh[t] = _mm512_dpbusd_epi32(dh[t], wh, BCAST(ab[t]->qs + 128 + 4 * i));
                }
            }
        }
        /* the pair holding sub-block sb (and 8 + sb): its int8 scale
         * sign-extended from the pair's low or high half */
        const __m512i pl = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)g->sc[sb / 2]));
        const __m512i ph = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)g->sc[4 + sb / 2]));
        const __m512i scl = (sb & 1) ? _mm512_srai_epi32(pl, 16) : _mm512_srai_epi32(_mm512_slli_epi32(pl, 16), 16);
        const __m512i sch = (sb & 1) ? _mm512_srai_epi32(ph, 16) : _mm512_srai_epi32(_mm512_slli_epi32(ph, 16), 16);
#pragma GCC unroll 4
        for (int t = 0; t < T; t++)
            s[t] = _mm512_add_epi32(s[t], _mm512_add_epi32(_mm512_mullo_epi32(dl[t], scl),
                                                           _mm512_mullo_epi32(dh[t], sch)));
    }
    const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)g->d));
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) {
        /* - 32 sum_g sc[g] bsums[g], pairs of sub-blocks at a time */
        __m512i c = _mm512_setzero_si512();
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++)
            c = _mm512_dpwssd_epi32(c, _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)g->sc[j])),
                                    BCAST(ab[t]->bsums + 2 * j));
        const __m512i si = _mm512_sub_epi32(s[t], _mm512_slli_epi32(c, 5));
        const __m512 pw = _mm512_mul_ps(dw, _mm512_set1_ps(ab[t]->d));
        acc[t] = _mm512_add_ps(acc[t], _mm512_mul_ps(_mm512_cvtepi32_ps(si), pw));
    }
}

/* Rows of one group x T <= 2 PT tokens, as tile() above. */
AI void tile6(const int T, const group_q6_K *g, int64_t nb, const uint8_t *a, size_t as, float *y,
              int64_t ldy, __mmask16 keep)
{
    const int T0 = T < PT ? T : PT, T1 = T - T0;
    __m512 acc[2 * PT];
#pragma GCC unroll 8
    for (int t = 0; t < T; t++)
        acc[t] = _mm512_setzero_ps();
    prefetch_groups((const uint8_t *)g, sizeof *g, 1);
    if (!T1) /* (a loop of its own: GCC schedules it better) */
        for (int64_t b = 0; b < nb; b++, g++) {
            prefetch_groups((const uint8_t *)g, sizeof *g, 0);
            tile6_block(T0, g, b, a, as, acc);
        }
    else
        for (int64_t b = 0; b < nb; b++, g++) {
            prefetch_groups((const uint8_t *)g, sizeof *g, 0);
            tile6_block(T0, g, b, a, as, acc);
            tile6_block(T1, g, b, a + (size_t)PT * as, as, acc + PT);
        }
#pragma GCC unroll 8
    for (int t = 0; t < T; t++)
        _mm512_mask_storeu_ps(y + t * ldy, keep, acc[t]);
}

void mr_gemm_q6_K_packed_avx512(const void *w, size_t w_stride, const void *act, size_t a_stride,
                                int64_t n, int64_t n_tok, float *y, int64_t ldy, int64_t r0, int64_t r1)
{
    const int64_t nb = n / QK_K;
    if (n_tok <= 0 || r1 <= r0 || nb <= 0)
        return;
    const uint8_t *ab = act;
    const int64_t g0 = r0 / PR, g1 = (r1 + PR - 1) / PR;
    for (int64_t gi = g0; gi < g1; gi++) {
        const group_q6_K *g = (const group_q6_K *)((const uint8_t *)w + (size_t)gi * PR * w_stride);
        const int64_t lo = gi * PR < r0 ? r0 - gi * PR : 0;
        const int64_t hi = (gi + 1) * PR > r1 ? r1 - gi * PR : PR;
        const __mmask16 keep = (__mmask16)(((1u << hi) - 1u) & ~((1u << lo) - 1u));
        float *yg = y + gi * PR;
        int64_t t = 0;
        for (; t + 2 * PT <= n_tok; t += 2 * PT)
            tile6(2 * PT, g, nb, ab + (size_t)t * a_stride, a_stride, yg + t * ldy, ldy, keep);
#define TAIL(T) tile6(T, g, nb, ab + (size_t)t * a_stride, a_stride, yg + t * ldy, ldy, keep)
        EACH_TAIL(n_tok - t, TAIL);
#undef TAIL
    }
}

void mr_kernels_init_avx512_pack(mr_kernels *k)
{
    if (k->exact)
        return;
    k->repack[MR_TYPE_Q4_K] = mr_repack_q4_K_avx512;
    k->gemm_packed[MR_TYPE_Q4_K] = mr_gemm_q4_K_packed_avx512;
    k->pack_block_bytes[MR_TYPE_Q4_K] = sizeof(group_q4_K) / PR;
    k->repack[MR_TYPE_Q5_K] = mr_repack_q5_K_avx512;
    k->gemm_packed[MR_TYPE_Q5_K] = mr_gemm_q5_K_packed_avx512;
    k->pack_block_bytes[MR_TYPE_Q5_K] = sizeof(group_q5_K) / PR;
    k->repack[MR_TYPE_Q6_K] = mr_repack_q6_K_avx512;
    k->gemm_packed[MR_TYPE_Q6_K] = mr_gemm_q6_K_packed_avx512;
    k->pack_block_bytes[MR_TYPE_Q6_K] = sizeof(group_q6_K) / PR;
}
