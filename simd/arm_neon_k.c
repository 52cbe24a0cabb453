/* arm_neon_k.c - the K-quants (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K) dotted with Q8_K
 * activations, AArch64 NEON + dot product (SDOT): vec_dot, one row x one
 * token.  Compiled with -march=armv8.2-a+dotprod into the NEON library;
 * installed by mr_kernels_init_neon only after the dispatcher has seen
 * HWCAP_ASIMDDP.
 *
 * A block's weights, scales, integer lanes and float steps are defined
 * once in arm_neon_k.h (read it first); the gemm (several rows x several
 * tokens, arm_neon_kgemm.c) runs the same steps per (row, token), so the
 * two agree to the bit whatever the batch, tile or row split.  Integer
 * sums are exact; the floats differ from the scalar reference's order
 * only, within 1e-5 of the sum of |terms| (tests/test_kernels_k.c).
 */
#include "arm_neon_k.h"

/* dot(weight row, Q8_K activation row): per block, scales once, then the
 * 4 chunks' integer sums, then the block's float step. */
ALWAYS_INLINE float dot_k(const int kind, const void *w, const void *act, int64_t n)
{
    const int64_t nb = n / QK_K;
    const size_t bb = k_block_bytes(kind);
    const uint8_t *wb = (const uint8_t *)w;
    const block_q8_K *a = (const block_q8_K *)act;
    float32x4_t acc = vdupq_n_f32(0.0f);
    float accm = 0.0f;
    for (int64_t b = 0; b < nb; b++, wb += bb) {
        kscales s;
        k_scales(kind, wb, &s);
        int32x4_t sumi = vdupq_n_s32(0);
        UNROLL
        for (int G = 0; G < 4; G++) {
            int8x16_t wv[4], av[4];
            k_chunk(kind, wb, G, wv);
            k_act(a[b].qs, G, av);
            sumi = k_chunk_sumi(kind, sumi, wv, av, &s, G);
        }
        k_accumulate(kind, &s, &a[b], sumi, &acc, &accm);
    }
    return k_result(kind, acc, accm);
}

static float vec_dot_q2_K_q8_K_neon(const void *w, const void *act, int64_t n)
{
    return dot_k(KQ2, w, act, n);
}

static float vec_dot_q3_K_q8_K_neon(const void *w, const void *act, int64_t n)
{
    return dot_k(KQ3, w, act, n);
}

static float vec_dot_q4_K_q8_K_neon(const void *w, const void *act, int64_t n)
{
    return dot_k(KQ4, w, act, n);
}

static float vec_dot_q5_K_q8_K_neon(const void *w, const void *act, int64_t n)
{
    return dot_k(KQ5, w, act, n);
}

static float vec_dot_q6_K_q8_K_neon(const void *w, const void *act, int64_t n)
{
    return dot_k(KQ6, w, act, n);
}

void mr_kernels_init_neon_k(mr_kernels *k)
{
    k->vec_dot[MR_TYPE_Q2_K] = vec_dot_q2_K_q8_K_neon;
    k->vec_dot[MR_TYPE_Q3_K] = vec_dot_q3_K_q8_K_neon;
    k->vec_dot[MR_TYPE_Q4_K] = vec_dot_q4_K_q8_K_neon;
    k->vec_dot[MR_TYPE_Q5_K] = vec_dot_q5_K_q8_K_neon;
    k->vec_dot[MR_TYPE_Q6_K] = vec_dot_q6_K_q8_K_neon;
    mr_kernels_init_neon_kgemm(k);
}
