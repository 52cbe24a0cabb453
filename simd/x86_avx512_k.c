/* x86_avx512_k.c - the K-quants (Q4_K, Q5_K, Q6_K) dotted with Q8_K
 * activations in integers, AVX-512 BW + VNNI: vec_dot, gemm (register-
 * tiled) and the exact-path f32 dots.
 *
 * The scheme is x86_avx2_k.c's with 64-weight vectors.  Each super-block
 * of a row is prepared once, whatever the number of tokens:
 *   wv[v], v < 4: weights 64v .. 64v + 63 as unsigned bytes (Q4_K in
 *                 [0, 15], Q5_K [0, 31], Q6_K the raw q in [0, 63]);
 *   sv[v]:        the int16 sub-block scale of each 16-bit pair
 *                 (Q4_K/Q5_K: lanes 0-15 sc[2v], 16-31 sc[2v + 1]; Q6_K:
 *                 lanes 8i..8i+7 scales[4v + i]);
 *   cv:           int16 lane g matched with bsums[g]: Q4_K/Q5_K the min
 *                 m[g / 2], Q6_K 32 * scales[g].
 * A (row, token) block is then, in int32 lanes (exact),
 *   sumi = dpwssd(... dpwssd(-[Q6_K] madd(cv, bsums), maddubs(wv[0], a[0..63]), sv[0]) ...)
 * vpmaddubsw pairs within 2 * 63 * 127 (no saturation), each lane of
 * sumi within 4 * 2 * 128 * 16002 + 2 * 4096 * 2032 < 2^31.  Q2_K has
 * its 4-bit scales multiplied into wv at prepare (q sc <= 45, a byte) and
 * takes one vpdpbusd per 64 products instead: every int32 lane still sums
 * the same four weights' products, so the integers are the same.  Q4_K, Q5_K
 * and Q6_K, which have repacked twins (x86_avx512_pack.c), sum the lanes
 * to the block's S and M = sum_g cv[g] bsums[g] (exact; |S| < 2^29) and
 * apply the block-exact rule both layouts share:
 *   p = d_w * d_a;  q = dmin_w * d_a
 *   x = fmsub(float(S), p, float(M) * q)   [Q6_K: x = float(S) * p]
 *   acc = acc + x,  blocks in order from acc = 0.
 * The other kinds keep the lane rule, cheaper for one token: the two
 * 256-bit halves of sumi added (exact), 8 float lanes per (row, token)
 *   acc = fma(float(sumi lo + sumi hi), d_w * d_a, acc)
 *   acc = fnmadd(float(madd(cv, bsums)), dmin_w * d_a, acc)  [min kinds]
 * then a fixed tree over acc's 8 lanes.
 * Under the block rule a tile's accumulator holds its tokens in lanes.
 * The gemm (one token included) puts Q4_K/Q5_K's wv in a paired order
 * that needs no 512-bit lane shuffle and reorders the activations to
 * match, once per call: each
 * int32 lane of sumi still sums the same weights, so the bits are the
 * natural order's, which vec_dot keeps.  Every (row, token) pair runs these
 * operations whatever the tile, row range or batch, so vec_dot and gemm
 * agree to the bit.  Loads stay inside each block.
 */
#include "x86_avx512.h"
#include "x86_k_scales.h"

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#define AI static inline __attribute__((always_inline))

/* K2 = Q2_K, K3 = Q3_K, KX = IQ4_XS (the further Q8_K formats) */
enum { K4 = 0, K5 = 1, K6 = 2, K2 = 3, K3 = 4, KX = 5 };
/* offset kinds start sumi at -madd(cv, bsums); min kinds add a dmin term */
#define K_OFFSET(kind) ((kind) == K6 || (kind) == K3)
#define K_MIN(kind) ((kind) == K4 || (kind) == K5 || (kind) == K2)
/* the block-exact float rule (the kinds with a repacked twin: one token
 * costs ~20% more in cache for it); the others keep the lane rule */
#define EXACT_BLOCK(kind) ((kind) == K4 || (kind) == K5 || (kind) == K6)

/* gemm tile: TR rows x TT tokens of int32 block sums */
#define TR 4
#define TT 4
/* One-row prefetch: how far ahead, in bytes, and into which cache.
 * Measured from DRAM on Zen 4 (family 25 model 17), old and new library
 * alternating: Q4_K/Q5_K best about 20 blocks ahead into L1 (8 KB was
 * 5-7 % slower, L2 hints 3-7 % slower); Q6_K best 40-56 blocks ahead into
 * L2 (+12 % over 20 blocks into L1).  The other kinds keep 8 KB, untuned. */
static const size_t pf_ahead[6] = {20 * sizeof(block_q4_K), 20 * sizeof(block_q5_K), 48 * sizeof(block_q6_K),
                                   8192, 8192, 8192};
#define PF_L2(kind) ((kind) == K6)

static const size_t block_bytes[6] = {sizeof(block_q4_K), sizeof(block_q5_K), sizeof(block_q6_K),
                                     sizeof(block_q2_K), sizeof(block_q3_K), sizeof(block_iq4_xs)};

/* ------------------------------------------------------------ helpers */

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

/* The 6-bit scales and mins of a Q4_K/Q5_K block (ggml's 12-byte packing,
 * spelled out in quant/ref_q4_k.c) as bytes: sc[0..7] in bytes 0-7,
 * m[0..7] in bytes 8-15.  blk points at the block; its 16 bytes from
 * offset 4 are scales[12] and 4 bytes that follow them in the block. */
AI __m128i k4_scales(const uint8_t *blk)
{
    const __m128i x = _mm_loadu_si128((const __m128i *)(blk + 4));
    /* a = the bytes holding the low bits: sc[j<4] = S[j], sc[j>=4] = S[j+4]
     * (low nibble), m[j<4] = S[j+4], m[j>=4] = S[j+4] (high nibble) */
    const __m128i a = _mm_shuffle_epi8(x, _mm_setr_epi8(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 8, 9, 10, 11));
    const __m128i lo = _mm_or_si128(
        _mm_and_si128(a, _mm_setr_epi8(63, 63, 63, 63, 15, 15, 15, 15, 63, 63, 63, 63, 0, 0, 0, 0)),
        _mm_and_si128(_mm_srli_epi16(a, 4), _mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 15, 15, 15, 15)));
    /* b = the bytes whose bits 6-7 are bits 4-5 of sc[j>=4] (S[j-4]) and
     * of m[j>=4] (S[j]); index -1 gives 0 */
    const __m128i b = _mm_shuffle_epi8(x, _mm_setr_epi8(-1, -1, -1, -1, 0, 1, 2, 3, -1, -1, -1, -1, 4, 5, 6, 7));
    /* (b >> 6) << 4 = (b >> 2) & 0x30 (the 16-bit shift's carry is masked) */
    return _mm_or_si128(lo, _mm_and_si128(_mm_srli_epi16(b, 2), _mm_set1_epi8(0x30)));
}

/* f16 pair (d, dmin) at p as f32 lanes 0, 1 (exact) */
AI __m128 f16x2(const uint8_t *p)
{
    uint32_t u;
    memcpy(&u, p, 4);
    return _mm_cvtph_ps(_mm_cvtsi32_si128((int)u));
}

typedef struct {
    __m512i wv[4];   /* IQ4_XS: |w| */
    __m512i sv[4];
    __mmask64 neg[4]; /* IQ4_XS only: the weights < 0, whose signs move to a */
    __m256i cv;
    __m128 dd; /* lane 0 d, lane 1 dmin (Q4_K/Q5_K), as f32 */
} prepared;

/* vpermw indices: int16 lane i of sv[v] takes scale idx[v][i]
 * (Q4_K/Q5_K: lanes 0-15 sub-block 2v, 16-31 sub-block 2v + 1; Q6_K:
 * lanes 8i..8i+7 sub-block 4v + i) */
static const int16_t spread_k4[4][32] __attribute__((aligned(64))) = {
    {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1},
    {2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3},
    {4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5},
    {6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7}};
static const int16_t spread_k6[4][32] __attribute__((aligned(64))) = {
    {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3},
    {4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7, 7, 7},
    {8, 8, 8, 8, 8, 8, 8, 8, 9, 9, 9, 9, 9, 9, 9, 9, 10, 10, 10, 10, 10, 10, 10, 10, 11, 11, 11, 11, 11, 11, 11, 11},
    {12, 12, 12, 12, 12, 12, 12, 12, 13, 13, 13, 13, 13, 13, 13, 13, 14, 14, 14, 14, 14, 14, 14, 14, 15, 15, 15, 15, 15, 15, 15, 15}};

/* The same for the paired layout (Q4_K/Q5_K in a gemm, below): vector
 * 2h holds sub-blocks 4h, 4h + 2, vector 2h + 1 sub-blocks 4h + 1, 4h + 3 */
static const int16_t spread_k4p[4][32] __attribute__((aligned(64))) = {
    {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2},
    {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3},
    {4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6},
    {5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7}};

/* sv[v] from the scales as int16 in the low 16 lanes of s */
AI __m512i spread16(__m256i s, const int kind, int v, const int paired)
{
    const int16_t *idx = (kind == K6 || kind == K2 || kind == K3) ? spread_k6[v]
                         : paired                                  ? spread_k4p[v]
                                                                   : spread_k4[v];
    return _mm512_permutexvar_epi16(_mm512_load_si512(idx), _mm512_castsi256_si512(s));
}

/* qh with bit s of each byte moved to bit 4 (other bits: garbage to mask;
 * 16-bit shifts carry bits across bytes only outside bit 4) */
AI __m256i bit_to_4(__m256i qh, int s)
{
    return s <= 4 ? _mm256_slli_epi16(qh, 4 - s) : _mm256_srli_epi16(qh, s - 4);
}

AI void prepare(const int kind, const uint8_t *blk, prepared *p, const int paired)
{
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    if (kind == K2 || kind == K3) {
        /* weight 128h + 32k + l: bits 2k, 2k + 1 of qs[32h + l] (Q3_K:
         * | bit 4h + k of hmask[l] << 2, u = q + 4 in [0, 7]).  Vector
         * 2h + j holds k = 2j (low 256 bits) and 2j + 1 (high), so its
         * sub-blocks of 16 are 4v .. 4v + 3, Q6_K's spread. */
        const block_q2_K *b2 = (const block_q2_K *)blk;
        const block_q3_K *b3 = (const block_q3_K *)blk;
        const __m512i m3 = _mm512_set1_epi8(3), one = _mm512_set1_epi8(1);
        __m256i s16;
        __m512i zh = _mm512_setzero_si512();
        if (kind == K2) {
            const __m128i sc8 = _mm_loadu_si128((const __m128i *)b2->scales);
            /* scales[g] & 15 (4-bit scale), scales[g] >> 4 (min) */
            s16 = _mm256_cvtepu8_epi16(_mm_and_si128(sc8, _mm_set1_epi8(0x0f)));
            p->cv = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sc8, 4), _mm_set1_epi8(0x0f)));
            p->dd = f16x2((const uint8_t *)&b2->d); /* d, dmin */
        } else {
            s16 = mr_q3_K_scales16(b3->scales); /* sc - 32 in [-32, 31] */
            /* sum (u - 4) sc a = sum u sc a - sum_g 4 sc[g] bsums[g] */
            p->cv = _mm256_slli_epi16(s16, 2);
            /* hmask, and hmask >> 1 in the high half (bit k + 1 as bit k) */
            const __m256i hm = _mm256_loadu_si256((const __m256i *)b3->hmask);
            zh = _mm512_inserti64x4(_mm512_castsi256_si512(hm), _mm256_srli_epi16(hm, 1), 1);
            p->dd = _mm_cvtph_ps(_mm_cvtsi32_si128(b3->d));
        }
        const uint8_t *qs = kind == K2 ? b2->qs : b3->qs;
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            /* q, and q >> 2 in the high half; 16-bit shifts' carries masked */
            const __m256i q = _mm256_loadu_si256((const __m256i *)(qs + 32 * h));
            const __m512i zq = _mm512_inserti64x4(_mm512_castsi256_si512(q), _mm256_srli_epi16(q, 2), 1);
#pragma GCC unroll 2
            for (int j = 0; j < 2; j++) {
                __m512i u = _mm512_and_si512(_mm512_srli_epi16(zq, 4 * j), m3);
                if (kind == K3)
                    u = _mm512_or_si512(u, _mm512_slli_epi16(
                                               _mm512_and_si512(_mm512_srli_epi16(zh, 4 * h + 2 * j), one), 2));
                p->wv[2 * h + j] = u;
            }
        }
#pragma GCC unroll 4
        for (int v = 0; v < 4; v++) {
            p->sv[v] = spread16(s16, kind, v, 0);
            /* Q2_K: the weights times their 4-bit scale, q sc <= 45 as a
             * byte (one 16-bit multiply: no byte's product carries into
             * its neighbour), so one vpdpbusd a token does 64 products;
             * each int32 lane sums the same four weights, exactly */
            if (kind == K2)
                p->wv[v] = _mm512_mullo_epi16(p->wv[v], p->sv[v]);
        }
        return;
    }
    if (kind == KX) {
        /* sub-blocks 2v (low 256 bits), 2v + 1: codebook weights in
         * [-127, 113], scales ls - 32 in [-32, 31] */
        const block_iq4_xs *b = (const block_iq4_xs *)blk;
        const __m512i tbl = _mm512_broadcast_i32x4(
            _mm_setr_epi8(-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113));
        const __m256i s16 = _mm256_zextsi128_si256(mr_iq4_xs_scales16(b->scales_l, b->scales_h));
#pragma GCC unroll 4
        for (int v = 0; v < 4; v++) {
            /* 128-bit lanes: qs of sub-block 2v, again, of 2v + 1, again;
             * lanes 1 and 3 take the high nibbles (elements 16..31) */
            const __m512i q = _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(b->qs + 32 * v)));
            __m512i z = _mm512_shuffle_i64x2(q, q, _MM_SHUFFLE(1, 1, 0, 0));
            z = _mm512_and_si512(_mm512_mask_blend_epi64(0xcc, z, _mm512_srli_epi16(z, 4)), m4);
            const __m512i wq = _mm512_shuffle_epi8(tbl, z);
            p->neg[v] = _mm512_movepi8_mask(wq);
            p->wv[v] = _mm512_abs_epi8(wq);
            p->sv[v] = spread16(s16, K4, v, 0);
        }
        p->cv = _mm256_setzero_si256();
        p->dd = _mm_cvtph_ps(_mm_cvtsi32_si128(b->d));
        return;
    }
    if (kind == K6) {
        const block_q6_K *b = (const block_q6_K *)blk;
        const __m512i m2 = _mm512_set1_epi8(0x30), m3 = _mm512_set1_epi8(0x03);
        const __m256i s16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)b->scales));
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            /* ql[64h .. 64h + 63]: low nibbles weights 128h + 0..63, high 64..127 */
            const __m512i ql = _mm512_loadu_si512(b->ql + 64 * h);
            /* hq = qh[32h..] | qh[32h..] >> 2: bits 0-1 of byte l are q's
             * top bits for weights 128h + l and (upper half) 128h + 32 + l,
             * bits 4-5 those of 64 weights later */
            const __m256i qh = _mm256_loadu_si256((const __m256i *)(b->qh + 32 * h));
            const __m512i hq = _mm512_inserti64x4(_mm512_castsi256_si512(qh), _mm256_srli_epi16(qh, 2), 1);
            /* (ql & 15) | (hq & 3) << 4: the shift stays inside the byte */
            p->wv[2 * h] = _mm512_or_si512(_mm512_and_si512(ql, m4),
                                           _mm512_slli_epi16(_mm512_and_si512(hq, m3), 4));
            /* (ql >> 4 & 15) | (hq & 0x30) */
            p->wv[2 * h + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4),
                                               _mm512_and_si512(hq, m2));
        }
#pragma GCC unroll 4
        for (int v = 0; v < 4; v++)
            p->sv[v] = spread16(s16, K6, v, 0);
        p->cv = _mm256_slli_epi16(s16, 5); /* 32 * scales[g], |.| <= 4096 */
        p->dd = _mm_cvtph_ps(_mm_cvtsi32_si128(b->d));
        return;
    }
    const block_q4_K *b4 = (const block_q4_K *)blk;
    const block_q5_K *b5 = (const block_q5_K *)blk;
    const __m128i scm = k4_scales(blk);
    /* s16 = sc[0..7] as int16 */
    const __m256i s16 = _mm256_castsi128_si256(_mm_cvtepu8_epi16(scm));
    /* cv[g] = m[g / 2]: each min byte doubled, then widened */
    p->cv = _mm256_cvtepu8_epi16(
        _mm_shuffle_epi8(scm, _mm_setr_epi8(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15)));
    const uint8_t *qs = kind == K5 ? b5->qs : b4->qs;
    __m256i qh5 = _mm256_setzero_si256();
    if (kind == K5)
        qh5 = _mm256_loadu_si256((const __m256i *)b5->qh);
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
        /* chunks 2h, 2h + 1 (64 weights each: 32 bytes, low then high nibbles) */
        const __m512i z = _mm512_loadu_si512(qs + 64 * h);
        const __m512i lo = _mm512_and_si512(z, m4), hi = _mm512_and_si512(_mm512_srli_epi16(z, 4), m4);
        __m512i w0, w1;
        if (paired) {
            /* lo: sub-blocks 4h, 4h + 2; hi: 4h + 1, 4h + 3 (the
             * activations come in that order) */
            w0 = lo;
            w1 = hi;
        } else {
            /* v = 2h: lo and hi of chunk 2h; v = 2h + 1: of chunk 2h + 1 */
            w0 = _mm512_shuffle_i64x2(lo, hi, _MM_SHUFFLE(1, 0, 1, 0));
            w1 = _mm512_shuffle_i64x2(lo, hi, _MM_SHUFFLE(3, 2, 3, 2));
        }
        if (kind == K5) {
            /* weight 64c + 32s + l gets bit 2c + s of qh[l] as bit 4:
             * natural order: w0 is chunk 2h (bits 4h, 4h + 1), w1 chunk
             * 2h + 1; paired: w0 bits 4h, 4h + 2, w1 bits 4h + 1, 4h + 3 */
            const __m512i b16 = _mm512_set1_epi8(0x10);
            const int s1 = paired ? 2 : 1, s2 = paired ? 1 : 2;
            const __m512i h0 = _mm512_inserti64x4(_mm512_castsi256_si512(bit_to_4(qh5, 4 * h)),
                                                  bit_to_4(qh5, 4 * h + s1), 1);
            const __m512i h1 = _mm512_inserti64x4(_mm512_castsi256_si512(bit_to_4(qh5, 4 * h + s2)),
                                                  bit_to_4(qh5, 4 * h + 3), 1);
            w0 = _mm512_or_si512(w0, _mm512_and_si512(h0, b16));
            w1 = _mm512_or_si512(w1, _mm512_and_si512(h1, b16));
        }
        p->wv[2 * h] = w0;
        p->wv[2 * h + 1] = w1;
    }
#pragma GCC unroll 4
    for (int v = 0; v < 4; v++)
        p->sv[v] = spread16(s16, K4, v, paired);
    p->dd = f16x2(blk); /* d, dmin */
}

/* ------------------------------------------------------------ tiles */

/* Sums of the 8 int32 lanes of each of v[0..3], as lanes 0..3 (exact) */
AI __m128i hsum4_epi32(__m256i v0, __m256i v1, __m256i v2, __m256i v3)
{
    const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(v0, v1), _mm256_hadd_epi32(v2, v3));
    return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

/* Sums of the 8 int32 lanes of v0 and of v1 as lanes 0 and 1 (exact),
 * in single-cycle shuffles and adds */
AI __m128i hsum2_epi32(__m256i v0, __m256i v1)
{
    const __m256i u = _mm256_add_epi32(_mm256_unpacklo_epi32(v0, v1), _mm256_unpackhi_epi32(v0, v1));
    const __m128i x = _mm_add_epi32(_mm256_castsi256_si128(u), _mm256_extracti128_si256(u, 1));
    return _mm_add_epi32(x, _mm_unpackhi_epi64(x, x));
}

/* One super-block of R rows x T tokens, added to acc[r] (lane t: token t)
 * by the block-exact rule of the file comment. */
/* One token and row under the block rule: a block's sums wait for the
 * next block's, so the horizontal adds and floats of two run in one set
 * of 128-bit operations; each lane does what the single block's would,
 * and the two are added to acc in block order, so the bits are the same. */
typedef struct {
    int have;
    __m256i s8, c;
    __m128 dd;
    float da;
} pending;

AI void pair_epilogue(const int kind, pending *pd, __m256i s8, __m256i c, __m128 dd, float da,
                      __m128 *acc)
{
    const __m256i z = _mm256_setzero_si256();
    /* lanes: S, M of the pending block, then of this one */
    const __m128 f = _mm_cvtepi32_ps(hsum4_epi32(pd->s8, K_MIN(kind) ? pd->c : z, s8, K_MIN(kind) ? c : z));
    /* d_w, dmin_w, d_w', dmin_w' times d_a, d_a, d_a', d_a' */
    const __m128 pq = _mm_mul_ps(_mm_movelh_ps(pd->dd, dd), _mm_setr_ps(pd->da, pd->da, da, da));
    const __m128 x = K_MIN(kind) ? _mm_fmsub_ps(f, pq, _mm_movehdup_ps(_mm_mul_ps(f, pq))) : _mm_mul_ps(f, pq);
    *acc = _mm_add_ss(_mm_add_ss(*acc, x), _mm_movehl_ps(x, x));
    pd->have = 0;
}

AI void tile_block(const int kind, const int R, const int T, const uint8_t *w, size_t ws,
                   const uint8_t *a, size_t as, const int8_t *aq, size_t aqs, const int paired,
                   __m128 acc[TR], __m256 accl[TR][TT], pending *pd)
{
    prepared p[TR];
    __m512i sumi[TR][TT];
    __m256i c[TR][TT];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
        prepare(kind, w + (size_t)r * ws, &p[r], paired);
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) {
        const block_q8_K *at = (const block_q8_K *)(a + (size_t)t * as);
        const __m256i bs = _mm256_loadu_si256((const __m256i *)at->bsums);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            /* c[j] = cv[2j] bsums[2j] + cv[2j + 1] bsums[2j + 1] */
            c[r][t] = _mm256_madd_epi16(p[r].cv, bs);
            /* Q6_K: start from -32 sum sc bsums (lanes 0-7; 8-15 zero) */
            sumi[r][t] = K_OFFSET(kind) ? _mm512_zextsi256_si512(_mm256_sub_epi32(_mm256_setzero_si256(), c[r][t]))
                                    : _mm512_setzero_si512();
        }
    }
#pragma GCC unroll 4
    for (int v = 0; v < 4; v++)
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) {
            const int8_t *q = paired ? aq + (size_t)t * aqs : ((const block_q8_K *)(a + (size_t)t * as))->qs;
            const __m512i av = _mm512_loadu_si512(q + 64 * v);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                /* sumi += pairs of (w a + w a) times their scale; IQ4_XS:
                 * |w| * (a negated where w < 0) = w a */
                const __m512i ar = kind == KX ? _mm512_mask_sub_epi8(av, p[r].neg[v], _mm512_setzero_si512(), av) : av;
                if (kind == K2) /* the scales are in the weights */
                    sumi[r][t] = _mm512_dpbusd_epi32(sumi[r][t], p[r].wv[v], ar);
                else
                    sumi[r][t] = _mm512_dpwssd_epi32(sumi[r][t], _mm512_maddubs_epi16(p[r].wv[v], ar), p[r].sv[v]);
            }
        }
    if (!EXACT_BLOCK(kind)) {
        /* the lane rule: 8 float lanes per (row, token), summed at the end */
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) {
            const __m256 da = _mm256_set1_ps(((const block_q8_K *)(a + (size_t)t * as))->d);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                /* 16 int32 lanes to 8 (exact), then 256-bit float work: on
                 * Zen 4 a 512-bit op costs two 256-bit ones */
                const __m256i s8 = _mm256_add_epi32(_mm512_castsi512_si256(sumi[r][t]),
                                                    _mm512_extracti64x4_epi64(sumi[r][t], 1));
                const __m256 dw = _mm256_broadcastss_ps(p[r].dd);
                accl[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s8), _mm256_mul_ps(dw, da), accl[r][t]);
                if (K_MIN(kind))
                    accl[r][t] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(c[r][t]),
                                                  _mm256_mul_ps(_mm256_broadcastss_ps(_mm_movehdup_ps(p[r].dd)), da),
                                                  accl[r][t]);
            }
        }
        return;
    }
    if (R == 1 && T == 1 && pd) {
        const __m256i s8 = _mm256_add_epi32(_mm512_castsi512_si256(sumi[0][0]),
                                            _mm512_extracti64x4_epi64(sumi[0][0], 1));
        const float d1 = ((const block_q8_K *)a)->d;
        if (pd->have) {
            pair_epilogue(kind, pd, s8, c[0][0], p[0].dd, d1, &acc[0]);
        } else {
            *pd = (pending){1, s8, c[0][0], p[0].dd, d1};
        }
        return;
    }
    /* d_a per token, built in registers (four scalar stores read back as
     * one vector would stall store forwarding) */
#define DA(t) (T > (t) ? ((const block_q8_K *)(a + (size_t)(t) * as))->d : 0.0f)
    const __m128 da = T == 1 ? _mm_set1_ps(DA(0)) : _mm_setr_ps(DA(0), DA(1), DA(2), DA(3));
#undef DA
    const __m256i z = _mm256_setzero_si256();
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
        /* the block's S (and M) per token, exact: 16 int32 lanes to 8,
         * then one lane per token */
        __m256i s8[TT];
#pragma GCC unroll 8
        for (int t = 0; t < TT; t++)
            s8[t] = t < T ? _mm256_add_epi32(_mm512_castsi512_si256(sumi[r][t]),
                                             _mm512_extracti64x4_epi64(sumi[r][t], 1))
                          : z;
        __m128 sf, mf = _mm_setzero_ps();
        if (T == 1) {
            /* lanes 0, 1: S, M of the one token */
            const __m128 f = _mm_cvtepi32_ps(hsum2_epi32(s8[0], K_MIN(kind) ? c[r][0] : z));
            sf = f;
            mf = _mm_movehdup_ps(f);
        } else {
            sf = _mm_cvtepi32_ps(hsum4_epi32(s8[0], s8[1], s8[2], s8[3]));
            if (K_MIN(kind))
                mf = _mm_cvtepi32_ps(hsum4_epi32(c[r][0], T > 1 ? c[r][1] : z, T > 2 ? c[r][2] : z,
                                                 T > 3 ? c[r][3] : z));
        }
        const __m128 pw = _mm_mul_ps(_mm_set1_ps(_mm_cvtss_f32(p[r].dd)), da);
        __m128 x;
        if (K_MIN(kind)) {
            const __m128 qw = _mm_mul_ps(_mm_set1_ps(_mm_cvtss_f32(_mm_movehdup_ps(p[r].dd))), da);
            x = _mm_fmsub_ps(sf, pw, _mm_mul_ps(mf, qw));
        } else {
            x = _mm_mul_ps(sf, pw);
        }
        acc[r] = _mm_add_ps(acc[r], x);
    }
}

/* paired: aq holds the tile's activation quants reordered (pair_acts),
 * token t's block b at aq + t aqs + b QK_K; natural order: aq is NULL
 * and the quants are read from a */
AI void tile(const int kind, const int R, const int T, const uint8_t *w, size_t ws, int64_t nb,
             const uint8_t *a, size_t as, const int8_t *aq, size_t aqs, const int paired, float *y,
             int64_t ldy)
{
    const size_t bb = block_bytes[kind];
    __m128 acc[TR];
    __m256 accl[TR][TT];
    pending pd = {0};
    pending *pp = EXACT_BLOCK(kind) && R == 1 && T == 1 ? &pd : NULL;
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
        acc[r] = _mm_setzero_ps();
#pragma GCC unroll 8
        for (int t = 0; t < T; t++)
            accl[r][t] = _mm256_setzero_ps();
    }
    for (int64_t b = 0; b < nb; b++) {
        if (R == 1 && T == 1) {
            const char *pf = (const char *)w + (size_t)b * bb + pf_ahead[kind];
            for (size_t o = 0; o < bb; o += 64) {
                if (PF_L2(kind))
                    _mm_prefetch(pf + o, _MM_HINT_T1);
                else
                    _mm_prefetch(pf + o, _MM_HINT_T0);
            }
        } else if (R > 1) {
            /* R short streams, which the hardware prefetcher follows
             * poorly: fetch the next R rows (contiguous) in address order,
             * at the rate this tile consumes its own (prefetches never
             * fault, past the matrix's end included) */
            const char *pf = (const char *)w + (size_t)R * ws + (size_t)b * R * bb;
            for (size_t o = 0; o < R * bb; o += 64)
                _mm_prefetch(pf + o, _MM_HINT_T0);
        }
        tile_block(kind, R, T, w + (size_t)b * bb, ws, a + (size_t)b * sizeof(block_q8_K), as,
                   paired ? aq + (size_t)b * QK_K : NULL, aqs, paired, acc, accl, pp);
    }
    if (pp && pd.have) { /* an odd last block: alone, as a block's own rule */
        const __m128 f = _mm_cvtepi32_ps(hsum2_epi32(pd.s8, K_MIN(kind) ? pd.c : _mm256_setzero_si256()));
        const __m128 pw = _mm_mul_ps(_mm_set1_ps(_mm_cvtss_f32(pd.dd)), _mm_set1_ps(pd.da));
        const __m128 qw = _mm_mul_ps(_mm_set1_ps(_mm_cvtss_f32(_mm_movehdup_ps(pd.dd))), _mm_set1_ps(pd.da));
        const __m128 x = K_MIN(kind) ? _mm_fmsub_ps(f, pw, _mm_mul_ps(_mm_movehdup_ps(f), qw)) : _mm_mul_ps(f, pw);
        acc[0] = _mm_add_ps(acc[0], x);
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
        _Alignas(16) float o[4];
        _mm_store_ps(o, acc[r]);
#pragma GCC unroll 8
        for (int t = 0; t < T; t++)
            y[t * ldy + r] = EXACT_BLOCK(kind) ? o[t] : mr_hsum256(accl[r][t]);
    }
}

AI void row_tile(const int kind, const int R, const uint8_t *w, size_t ws, int64_t nb,
                 const uint8_t *a, size_t as, const int8_t *aq, size_t aqs, const int paired,
                 int64_t n_tok, float *y, int64_t ldy)
{
#define TILE(T_) tile(kind, R, T_, w, ws, nb, a + (size_t)t * as, as, paired ? aq + (size_t)t * aqs : NULL, \
                      aqs, paired, y + t * ldy, ldy)
    int64_t t = 0;
    for (; t + TT <= n_tok; t += TT)
        TILE(TT);
    switch (n_tok - t) {
    case 3: TILE(3); break;
    case 2: TILE(2); break;
    case 1: TILE(1); break;
    default: break;
    }
#undef TILE
}

/* Q4_K/Q5_K activations reordered for the paired layout: in each half
 * block of 128, sub-blocks 0, 2, 1, 3, the order of a 64-byte load's low
 * and high nibbles, so no weight crosses a 256-bit lane.  Integer sums
 * are exact and every int32 lane still sums the same weights, so the
 * result is the natural order's to the bit. */
#define PAIRED_STACK 16384
AI void pair_acts(const uint8_t *a, size_t as, int64_t nb, int64_t n_tok, int8_t *dst)
{
    for (int64_t t = 0; t < n_tok; t++)
        for (int64_t b = 0; b < nb; b++) {
            const int8_t *q = ((const block_q8_K *)(a + (size_t)t * as) + b)->qs;
            int8_t *d = dst + ((size_t)t * nb + b) * QK_K;
            for (int h = 0; h < 2; h++) {
                const __m256i s0 = _mm256_loadu_si256((const __m256i *)(q + 128 * h));
                const __m256i s1 = _mm256_loadu_si256((const __m256i *)(q + 128 * h + 32));
                const __m256i s2 = _mm256_loadu_si256((const __m256i *)(q + 128 * h + 64));
                const __m256i s3 = _mm256_loadu_si256((const __m256i *)(q + 128 * h + 96));
                _mm256_storeu_si256((__m256i *)(d + 128 * h), s0);
                _mm256_storeu_si256((__m256i *)(d + 128 * h + 32), s2);
                _mm256_storeu_si256((__m256i *)(d + 128 * h + 64), s1);
                _mm256_storeu_si256((__m256i *)(d + 128 * h + 96), s3);
            }
        }
}

AI void gemm_rows(const int kind, const uint8_t *wb, size_t ws, int64_t nb, const uint8_t *act,
                  size_t as, const int8_t *aq, size_t aqs, const int paired,
                  int64_t n_tok, float *y, int64_t ldy, int64_t r0, int64_t r1)
{
    int64_t r = r0;
    if (n_tok == 1) {
        for (; r < r1; r++)
            tile(kind, 1, 1, wb + (size_t)r * ws, ws, nb, act, as, aq, aqs, paired, y + r, ldy);
        return;
    }
    for (; r + TR <= r1; r += TR)
        row_tile(kind, TR, wb + (size_t)r * ws, ws, nb, act, as, aq, aqs, paired, n_tok, y + r, ldy);
    for (; r + 2 <= r1; r += 2)
        row_tile(kind, 2, wb + (size_t)r * ws, ws, nb, act, as, aq, aqs, paired, n_tok, y + r, ldy);
    if (r < r1)
        row_tile(kind, 1, wb + (size_t)r * ws, ws, nb, act, as, aq, aqs, paired, n_tok, y + r, ldy);
}

AI void gemm_k(const int kind, const void *w, size_t ws, const void *act, size_t as, int64_t n,
               int64_t n_tok, float *y, int64_t ldy, int64_t r0, int64_t r1)
{
    const int64_t nb = n / QK_K;
    const uint8_t *wb = (const uint8_t *)w, *ab = (const uint8_t *)act;
    if (n_tok <= 0 || r1 <= r0)
        return;
    if (kind == K4 || kind == K5) {
        /* the paired layout: the reordering is paid once per call, the
         * saved shuffles once per row and block */
        const size_t bytes = (size_t)n_tok * (size_t)nb * QK_K;
        _Alignas(64) int8_t stack[PAIRED_STACK];
        int8_t *heap = bytes > sizeof stack ? malloc(bytes) : NULL;
        int8_t *aq = bytes > sizeof stack ? heap : stack;
        if (aq) {
            pair_acts(ab, as, nb, n_tok, aq);
            gemm_rows(kind, wb, ws, nb, ab, as, aq, (size_t)nb * QK_K, 1, n_tok, y, ldy, r0, r1);
            free(heap);
            return;
        }
    }
    /* without memory for it, the natural order gives the same bits */
    gemm_rows(kind, wb, ws, nb, ab, as, NULL, 0, 0, n_tok, y, ldy, r0, r1);
}

AI float dot_k(const int kind, const void *w, const void *act, int64_t n)
{
    float y;
    tile(kind, 1, 1, w, 0, n / QK_K, act, 0, NULL, 0, 0, &y, 1);
    return y;
}

/* ------------------------------------------------------------ entry points */

float mr_dot_q4_K_q8_K_avx512(const void *w, const void *act, int64_t n)
{
    return dot_k(K4, w, act, n);
}

float mr_dot_q5_K_q8_K_avx512(const void *w, const void *act, int64_t n)
{
    return dot_k(K5, w, act, n);
}

float mr_dot_q6_K_q8_K_avx512(const void *w, const void *act, int64_t n)
{
    return dot_k(K6, w, act, n);
}

static float mr_dot_q2_K_q8_K_avx512(const void *w, const void *act, int64_t n)
{
    return dot_k(K2, w, act, n);
}

static float mr_dot_q3_K_q8_K_avx512(const void *w, const void *act, int64_t n)
{
    return dot_k(K3, w, act, n);
}

static float mr_dot_iq4_xs_q8_K_avx512(const void *w, const void *act, int64_t n)
{
    return dot_k(KX, w, act, n);
}

static void mr_gemm_q2_K_q8_K_avx512(const void *w, size_t w_stride, const void *act, size_t a_stride,
                                     int64_t n, int64_t n_tok, float *y, int64_t ldy, int64_t r0,
                                     int64_t r1)
{
    gemm_k(K2, w, w_stride, act, a_stride, n, n_tok, y, ldy, r0, r1);
}

static void mr_gemm_q3_K_q8_K_avx512(const void *w, size_t w_stride, const void *act, size_t a_stride,
                                     int64_t n, int64_t n_tok, float *y, int64_t ldy, int64_t r0,
                                     int64_t r1)
{
    gemm_k(K3, w, w_stride, act, a_stride, n, n_tok, y, ldy, r0, r1);
}

static void mr_gemm_iq4_xs_q8_K_avx512(const void *w, size_t w_stride, const void *act,
                                       size_t a_stride, int64_t n, int64_t n_tok, float *y,
                                       int64_t ldy, int64_t r0, int64_t r1)
{
    gemm_k(KX, w, w_stride, act, a_stride, n, n_tok, y, ldy, r0, r1);
}

void mr_gemm_q4_K_q8_K_avx512(const void *w, size_t w_stride, const void *act, size_t a_stride,
                              int64_t n, int64_t n_tok, float *y, int64_t ldy, int64_t r0,
                              int64_t r1)
{
    gemm_k(K4, w, w_stride, act, a_stride, n, n_tok, y, ldy, r0, r1);
}

void mr_gemm_q5_K_q8_K_avx512(const void *w, size_t w_stride, const void *act, size_t a_stride,
                              int64_t n, int64_t n_tok, float *y, int64_t ldy, int64_t r0,
                              int64_t r1)
{
    gemm_k(K5, w, w_stride, act, a_stride, n, n_tok, y, ldy, r0, r1);
}

void mr_gemm_q6_K_q8_K_avx512(const void *w, size_t w_stride, const void *act, size_t a_stride,
                              int64_t n, int64_t n_tok, float *y, int64_t ldy, int64_t r0,
                              int64_t r1)
{
    gemm_k(K6, w, w_stride, act, a_stride, n, n_tok, y, ldy, r0, r1);
}

/* ------------------------------------------------------------ f32 dots */

/* Exact path: weights prepared as above, decoded 16 at a time as
 * d * sc * q - dmin * m (Q6_K: d * sc * (q - 32)) and FMA'd with x. */
AI float dot_k_f32(const int kind, const void *w, const float *x, int64_t n)
{
    const size_t bb = block_bytes[kind];
    const int64_t nb = n / QK_K;
    const uint8_t *wb = (const uint8_t *)w;
    __m512 s0 = _mm512_setzero_ps(), s1 = s0;
    for (int64_t b = 0; b < nb; b++, x += QK_K) {
        prepared p;
        prepare(kind, wb + (size_t)b * bb, &p, 0);
        _Alignas(64) uint8_t q[QK_K];
        _Alignas(64) int16_t sc[QK_K / 2];
        _Alignas(32) int16_t cv[16];
        for (int v = 0; v < 4; v++) {
            _mm512_store_si512(q + 64 * v, p.wv[v]);
            _mm512_store_si512(sc + 32 * v, p.sv[v]);
        }
        _mm256_store_si256((__m256i *)cv, p.cv);
        const float dmin = _mm_cvtss_f32(_mm_movehdup_ps(p.dd));
        for (int e = 0; e < QK_K; e += 16) {
            /* 16 consecutive weights share a scale (and a min) */
            const float scale = _mm_cvtss_f32(p.dd) * (float)sc[e / 2];
            const float off = kind == K6 ? 32.0f * scale : dmin * (float)cv[e / 16];
            const __m512 qf = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_load_si128((const __m128i *)(q + e))));
            const __m512 wf = _mm512_fmsub_ps(qf, _mm512_set1_ps(scale), _mm512_set1_ps(off));
            if (e & 16)
                s1 = _mm512_fmadd_ps(wf, _mm512_loadu_ps(x + e), s1);
            else
                s0 = _mm512_fmadd_ps(wf, _mm512_loadu_ps(x + e), s0);
        }
    }
    return hsum512(_mm512_add_ps(s0, s1));
}

float mr_dot_q4_K_f32_avx512(const void *w, const float *x, int64_t n)
{
    return dot_k_f32(K4, w, x, n);
}

float mr_dot_q5_K_f32_avx512(const void *w, const float *x, int64_t n)
{
    return dot_k_f32(K5, w, x, n);
}

float mr_dot_q6_K_f32_avx512(const void *w, const float *x, int64_t n)
{
    return dot_k_f32(K6, w, x, n);
}

/* ------------------------------------------------------------ table */

void mr_kernels_init_avx512_k(mr_kernels *k)
{
    k->dot_f32[MR_TYPE_Q4_K] = mr_dot_q4_K_f32_avx512;
    k->dot_f32[MR_TYPE_Q5_K] = mr_dot_q5_K_f32_avx512;
    k->dot_f32[MR_TYPE_Q6_K] = mr_dot_q6_K_f32_avx512;
    k->vec_dot[MR_TYPE_Q4_K] = mr_dot_q4_K_q8_K_avx512;
    k->vec_dot[MR_TYPE_Q5_K] = mr_dot_q5_K_q8_K_avx512;
    k->vec_dot[MR_TYPE_Q6_K] = mr_dot_q6_K_q8_K_avx512;
    k->gemm[MR_TYPE_Q4_K] = mr_gemm_q4_K_q8_K_avx512;
    k->gemm[MR_TYPE_Q5_K] = mr_gemm_q5_K_q8_K_avx512;
    k->gemm[MR_TYPE_Q6_K] = mr_gemm_q6_K_q8_K_avx512;
    k->vec_dot[MR_TYPE_Q2_K] = mr_dot_q2_K_q8_K_avx512;
    k->vec_dot[MR_TYPE_Q3_K] = mr_dot_q3_K_q8_K_avx512;
    k->vec_dot[MR_TYPE_IQ4_XS] = mr_dot_iq4_xs_q8_K_avx512;
    k->gemm[MR_TYPE_Q2_K] = mr_gemm_q2_K_q8_K_avx512;
    k->gemm[MR_TYPE_Q3_K] = mr_gemm_q3_K_q8_K_avx512;
    k->gemm[MR_TYPE_IQ4_XS] = mr_gemm_iq4_xs_q8_K_avx512;
}
