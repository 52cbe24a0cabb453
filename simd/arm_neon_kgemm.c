/* arm_neon_kgemm.c - gemm for the K-quants (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K)
 * with Q8_K activations, AArch64 NEON + dot product (SDOT): several weight
 * rows x several tokens per call, for prompts and expert groups.
 * Compiled with -march=armv8.2-a+dotprod into the NEON library; installed
 * with the vec_dot (arm_neon_k.c) after the dispatcher has seen
 * HWCAP_ASIMDDP.
 *
 * Register tiles of TR = 2 rows x TT = 4 tokens (the last rows one at a
 * time, the last 1..3 tokens a narrower tile of their own).  Per block:
 * each row's scales are decoded once (k_scales); per chunk of 64 weights,
 * each row's weights are unpacked once (k_chunk) and reused for the TT
 * tokens, and each token's 64 activations are loaded once and reused for
 * the TR rows.  Every (row, token) then runs the vec_dot's own integer
 * lanes and float steps (arm_neon_k.h) in the same block order, so gemm
 * and vec_dot agree to the bit whatever the tile, row range, batch or
 * thread split (tests/test_kernels_k.c: gemm_tiles_match_vec_dot).
 * One token (decode) takes the rows in order, one stream, as vec_dot.
 * Stack use: the float accumulators and scales of one tile (< 1 KiB).
 */
#include "arm_neon_k.h"

#define TR 2
#define TT 4

/* y[t * ldy + r] for the R x T tile of rows w + r ws and activation rows
 * a + t as (R <= TR, T <= TT: constants after inlining). */
ALWAYS_INLINE void tile(const int kind, const int R, const int T, const uint8_t *w, size_t ws,
                        const uint8_t *a, size_t as, int64_t nb, float *y, int64_t ldy)
{
    const size_t bb = k_block_bytes(kind);
    float32x4_t acc[TR][TT];
    float accm[TR][TT];
    UNROLL
    for (int r = 0; r < R; r++)
        UNROLL
        for (int t = 0; t < T; t++) {
            acc[r][t] = vdupq_n_f32(0.0f);
            accm[r][t] = 0.0f;
        }
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk[TR];
        kscales s[TR];
        int32x4_t sumi[TR][TT];
        UNROLL
        for (int r = 0; r < R; r++) {
            blk[r] = w + (size_t)r * ws + (size_t)b * bb;
            k_scales(kind, blk[r], &s[r]);
            UNROLL
            for (int t = 0; t < T; t++)
                sumi[r][t] = vdupq_n_s32(0);
        }
        UNROLL
        for (int G = 0; G < 4; G++) {
            int8x16_t wv[TR][4];
            UNROLL
            for (int r = 0; r < R; r++)
                k_chunk(kind, blk[r], G, wv[r]);
            UNROLL
            for (int t = 0; t < T; t++) {
                const block_q8_K *at = (const block_q8_K *)(a + (size_t)t * as) + b;
                int8x16_t av[4];
                k_act(at->qs, G, av);
                UNROLL
                for (int r = 0; r < R; r++)
                    sumi[r][t] = k_chunk_sumi(kind, sumi[r][t], wv[r], av, &s[r], G);
            }
        }
        UNROLL
        for (int t = 0; t < T; t++) {
            const block_q8_K *at = (const block_q8_K *)(a + (size_t)t * as) + b;
            UNROLL
            for (int r = 0; r < R; r++)
                k_accumulate(kind, &s[r], at, sumi[r][t], &acc[r][t], &accm[r][t]);
        }
    }
    UNROLL
    for (int r = 0; r < R; r++)
        UNROLL
        for (int t = 0; t < T; t++)
            y[t * ldy + r] = k_result(kind, acc[r][t], accm[r][t]);
}

/* R rows x n_tok tokens: tiles of TT tokens, then a tile of the 1..3 left */
ALWAYS_INLINE void row_tile(const int kind, const int R, const uint8_t *w, size_t ws,
                            const uint8_t *a, size_t as, int64_t nb, int64_t n_tok, float *y,
                            int64_t ldy)
{
    int64_t t = 0;
    for (; t + TT <= n_tok; t += TT)
        tile(kind, R, TT, w, ws, a + (size_t)t * as, as, nb, y + t * ldy, ldy);
    switch (n_tok - t) {
    case 3: tile(kind, R, 3, w, ws, a + (size_t)t * as, as, nb, y + t * ldy, ldy); break;
    case 2: tile(kind, R, 2, w, ws, a + (size_t)t * as, as, nb, y + t * ldy, ldy); break;
    case 1: tile(kind, R, 1, w, ws, a + (size_t)t * as, as, nb, y + t * ldy, ldy); break;
    default: break;
    }
}

/* y[t * ldy + r] = dot(row r, token t) for r in [r0, r1), t < n_tok */
ALWAYS_INLINE void gemm_k(const int kind, const void *w, size_t ws, const void *act, size_t as,
                          int64_t n, int64_t n_tok, float *y, int64_t ldy, int64_t r0, int64_t r1)
{
    const int64_t nb = n / QK_K;
    const uint8_t *wb = (const uint8_t *)w, *ab = (const uint8_t *)act;
    int64_t r = r0;
    if (n_tok <= 0)
        return;
    if (n_tok == 1) { /* decode: the rows in order, one sequential stream */
        for (; r < r1; r++)
            tile(kind, 1, 1, wb + (size_t)r * ws, ws, ab, as, nb, y + r, ldy);
        return;
    }
    for (; r + TR <= r1; r += TR)
        row_tile(kind, TR, wb + (size_t)r * ws, ws, ab, as, nb, n_tok, y + r, ldy);
    for (; r < r1; r++)
        row_tile(kind, 1, wb + (size_t)r * ws, ws, ab, as, nb, n_tok, y + r, ldy);
}

static void gemm_q2_K_q8_K_neon(const void *w, size_t w_stride, const void *act, size_t a_stride,
                                int64_t n, int64_t n_tok, float *y, int64_t ldy, int64_t r0,
                                int64_t r1)
{
    gemm_k(KQ2, w, w_stride, act, a_stride, n, n_tok, y, ldy, r0, r1);
}

static void gemm_q3_K_q8_K_neon(const void *w, size_t w_stride, const void *act, size_t a_stride,
                                int64_t n, int64_t n_tok, float *y, int64_t ldy, int64_t r0,
                                int64_t r1)
{
    gemm_k(KQ3, w, w_stride, act, a_stride, n, n_tok, y, ldy, r0, r1);
}

static void gemm_q4_K_q8_K_neon(const void *w, size_t w_stride, const void *act, size_t a_stride,
                                int64_t n, int64_t n_tok, float *y, int64_t ldy, int64_t r0,
                                int64_t r1)
{
    gemm_k(KQ4, w, w_stride, act, a_stride, n, n_tok, y, ldy, r0, r1);
}

static void gemm_q5_K_q8_K_neon(const void *w, size_t w_stride, const void *act, size_t a_stride,
                                int64_t n, int64_t n_tok, float *y, int64_t ldy, int64_t r0,
                                int64_t r1)
{
    gemm_k(KQ5, w, w_stride, act, a_stride, n, n_tok, y, ldy, r0, r1);
}

static void gemm_q6_K_q8_K_neon(const void *w, size_t w_stride, const void *act, size_t a_stride,
                                int64_t n, int64_t n_tok, float *y, int64_t ldy, int64_t r0,
                                int64_t r1)
{
    gemm_k(KQ6, w, w_stride, act, a_stride, n, n_tok, y, ldy, r0, r1);
}

void mr_kernels_init_neon_kgemm(mr_kernels *k)
{
    k->gemm[MR_TYPE_Q2_K] = gemm_q2_K_q8_K_neon;
    k->gemm[MR_TYPE_Q3_K] = gemm_q3_K_q8_K_neon;
    k->gemm[MR_TYPE_Q4_K] = gemm_q4_K_q8_K_neon;
    k->gemm[MR_TYPE_Q5_K] = gemm_q5_K_q8_K_neon;
    k->gemm[MR_TYPE_Q6_K] = gemm_q6_K_q8_K_neon;
}
