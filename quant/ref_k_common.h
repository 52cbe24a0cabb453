/* ref_k_common.h - helpers shared by the K-quant scalar references
 * (ref_q4_k.c, ref_q5_k.c, ref_q6_k.c, ref_q8_k.c).  Internal to quant/.
 *
 * Bit-exactness with ggml depends on doing every float operation in the
 * same order and precision as ggml's reference, without contraction into
 * fused multiply-adds (the default x86-64 build has no FMA; an arm64 build
 * of these files should add -ffp-contract=off).
 */
#ifndef MOERUN_QUANT_REF_K_COMMON_H
#define MOERUN_QUANT_REF_K_COMMON_H

#include <stdint.h>
#include <string.h>

/* ggml's GROUP_MAX_EPS: a group whose largest |x| is below this is all
 * zero for make_qx_quants and for Q6_K's block scale. */
#define MR_K_GROUP_MAX_EPS 1e-15f

/* Round to the nearest integer, ties to even, the way ggml's nearest_int
 * does: adding 1.5 * 2^23 leaves the rounded integer in the low mantissa
 * bits.  Exact for |f| <= 2^22 - 1; beyond that (ggml asserts there, and
 * its release builds do not) the result is whatever the bits say, but never
 * undefined behaviour: callers clamp it.  A NaN gives 0. */
static inline int mr_k_nearest_int(float f)
{
    float v = f + 12582912.0f;
    int32_t i;
    memcpy(&i, &v, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

static inline int mr_k_clamp(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* Q4_K and Q5_K: unpack sub-block j's 6-bit scale and min from the 12 packed bytes:
 *   j < 4:  sc = scales[j] & 63,            m = scales[j + 4] & 63
 *   j >= 4: sc = scales[j + 4] & 15 | (scales[j - 4] >> 6) << 4,
 *           m  = scales[j + 4] >> 4 | (scales[j] >> 6) << 4
 * (ggml's get_scale_min_k4). */
static inline void mr_k_scale_min(int j, const uint8_t *scales, uint8_t *sc, uint8_t *m)
{
    if (j < 4) {
        *sc = scales[j] & 63;
        *m = scales[j + 4] & 63;
    } else {
        *sc = (uint8_t)((scales[j + 4] & 0x0f) | ((scales[j - 4] >> 6) << 4));
        *m = (uint8_t)((scales[j + 4] >> 4) | ((scales[j] >> 6) << 4));
    }
}

/* The inverse of mr_k_scale_min for all 8 sub-blocks; ls, lm in [0, 63]. */
static inline void mr_k_pack_scales(const uint8_t ls[8], const uint8_t lm[8], uint8_t scales[12])
{
    for (int j = 0; j < 4; j++) {
        scales[j] = ls[j];
        scales[j + 4] = lm[j];
    }
    for (int j = 4; j < 8; j++) {
        scales[j + 4] = (uint8_t)((ls[j] & 0x0f) | ((lm[j] & 0x0f) << 4));
        scales[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
        scales[j] |= (uint8_t)((lm[j] >> 4) << 6);
    }
}

/* ggml's make_qkx2_quants (without use_mad), the (scale, min) fit of a
 * Q4_K/Q5_K sub-block: ref_q4_k.c. */
float mr_k_make_qkx2_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L,
                            float *the_min, uint8_t *Laux, float rmin, float rdelta, int nstep);

#endif
