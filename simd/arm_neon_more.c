/* arm_neon_more.c - MXFP4 weights dotted with Q8_0 activations, NEON +
 * the ARMv8.2 dot product (SDOT).
 *
 * Per block: the 16 nibble bytes split into the low nibbles (elements
 * 0..15) and high nibbles (16..31); a table lookup (tbl) turns each code
 * into its signed weight kv[q] in [-12, 12]; sdot adds 4 products
 * w * a into each int32 lane (exact).  acc += float(lanes) * (d_a * d_w),
 * the block scale formed as ggml forms it. */
#include "kernels.h"

#include <arm_neon.h>

static float mr_dot_mxfp4_q8_0_neon(const void *w, const void *act, int64_t n)
{
    const block_mxfp4 *x = w;
    const block_q8_0 *a = act;
    const int64_t nb = n / QK8_0;
    const int8x16_t tbl = vld1q_s8(mr_kvalues_mxfp4);
    const uint8x16_t m4 = vdupq_n_u8(0x0f);
    float32x4_t acc = vdupq_n_f32(0.0f);
    for (int64_t i = 0; i < nb; i++) {
        const uint8x16_t q = vld1q_u8(x[i].qs);
        /* weights of elements 0..15 and 16..31 */
        const int8x16_t wlo = vqtbl1q_s8(tbl, vandq_u8(q, m4));
        const int8x16_t whi = vqtbl1q_s8(tbl, vshrq_n_u8(q, 4));
        int32x4_t p = vdotq_s32(vdupq_n_s32(0), wlo, vld1q_s8(a[i].qs));
        p = vdotq_s32(p, whi, vld1q_s8(a[i].qs + 16));
        const float d = mr_f16_to_f32(a[i].d) * mr_e8m0_to_f32_half(x[i].e);
        acc = vmlaq_n_f32(acc, vcvtq_f32_s32(p), d);
    }
    return vaddvq_f32(acc);
}

void mr_kernels_init_neon_more(mr_kernels *k)
{
    k->vec_dot[MR_TYPE_MXFP4] = mr_dot_mxfp4_q8_0_neon;
}
