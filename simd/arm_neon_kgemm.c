/* arm_neon_kgemm.c - gemm for the K-quants (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K)
 * with Q8_K activations, AArch64 NEON + dot product (SDOT): several weight
 * rows x several tokens per call, for prompts and expert groups.
 * Compiled with -march=armv8.2-a+dotprod into the NEON library; installed
 * with the vec_dot (arm_neon_k.c) after the dispatcher has seen
 * HWCAP_ASIMDDP.
 *
 * Each row is taken against TT = 4 tokens at a time (the last 1..3 tokens
 * a narrower tile of their own).  Per block, the row's scales are decoded
 * once (k_scales) and, per chunk of 64 weights, its weights unpacked once
 * (k_chunk), both reused for the TT tokens.  Every (row, token) then runs
 * the vec_dot's own integer lanes and float steps (arm_neon_k.h) in the
 * same block order, so gemm and vec_dot agree to the bit whatever the
 * tile, row range, batch or thread split (tests/test_kernels_k.c).
 * One token (decode) is the vec_dot, row after row.
 *
 * Why 1 row x 4 tokens: counted under qemu (instructions per row, token
 * and block, 16 blocks, default CPU), 1 x 4 ran 86-104 per block against
 * the vec_dot's 131-189; 2 rows x 4 tokens (sharing each activation load)
 * ran 106-148 and 1 x 8 87-127, both spilling their registers to the stack.
 */
#include "arm_neon_k.h"

#define TT 4

/* y[t * ldy] for T <= TT tokens (a + t as, a constant after inlining)
 * against the weight row w. */
ALWAYS_INLINE void tile(const int kind, const int T, const uint8_t *w, const uint8_t *a, size_t as,
                        int64_t nb, float *y, int64_t ldy)
{
    const size_t bb = k_block_bytes(kind);
    float32x4_t acc[TT];
    float accm[TT];
    UNROLL
    for (int t = 0; t < T; t++) {
        acc[t] = vdupq_n_f32(0.0f);
        accm[t] = 0.0f;
    }
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = w + (size_t)b * bb;
        kscales s;
        k_scales(kind, blk, &s);
        int32x4_t sumi[TT];
        UNROLL
        for (int t = 0; t < T; t++)
            sumi[t] = vdupq_n_s32(0);
        UNROLL
        for (int G = 0; G < 4; G++) {
            int8x16_t wv[4];
            k_chunk(kind, blk, G, wv);
            UNROLL
            for (int t = 0; t < T; t++) {
                const block_q8_K *at = (const block_q8_K *)(a + (size_t)t * as) + b;
                int8x16_t av[4];
                k_act(at->qs, G, av);
                sumi[t] = k_chunk_sumi(kind, sumi[t], wv, av, &s, G);
            }
        }
        UNROLL
        for (int t = 0; t < T; t++) {
            const block_q8_K *at = (const block_q8_K *)(a + (size_t)t * as) + b;
            k_accumulate(kind, &s, at, sumi[t], &acc[t], &accm[t]);
        }
    }
    UNROLL
    for (int t = 0; t < T; t++)
        y[t * ldy] = k_result(kind, acc[t], accm[t]);
}

/* y[t * ldy + r] = dot(row r, token t) for r in [r0, r1), t < n_tok: per
 * row, tiles of TT tokens, then one of the 1..3 left */
ALWAYS_INLINE void gemm_k(const int kind, const void *w, size_t ws, const void *act, size_t as,
                          int64_t n, int64_t n_tok, float *y, int64_t ldy, int64_t r0, int64_t r1)
{
    const int64_t nb = n / QK_K;
    const uint8_t *ab = (const uint8_t *)act;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *wr = (const uint8_t *)w + (size_t)r * ws;
        int64_t t = 0;
        for (; t + TT <= n_tok; t += TT)
            tile(kind, TT, wr, ab + (size_t)t * as, as, nb, y + t * ldy + r, ldy);
        switch (n_tok - t) {
        case 3: tile(kind, 3, wr, ab + (size_t)t * as, as, nb, y + t * ldy + r, ldy); break;
        case 2: tile(kind, 2, wr, ab + (size_t)t * as, as, nb, y + t * ldy + r, ldy); break;
        case 1: tile(kind, 1, wr, ab + (size_t)t * as, as, nb, y + t * ldy + r, ldy); break;
        default: break;
        }
    }
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
