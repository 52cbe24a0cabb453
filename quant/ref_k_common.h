/* ref_k_common.h - helpers shared by the K-quant scalar references
 * (ref_q4_k.c, ref_q6_k.c, ref_q8_k.c).  Internal to quant/.
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

#endif
