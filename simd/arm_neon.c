/* arm_neon.c - AArch64 NEON + dot-product (ARMv8.2 SDOT) overrides of the
 * kernel table.  Compiled with -march=armv8.2-a+dotprod into its own
 * convenience library; mr_kernels_init_neon is called only after the
 * dispatcher has seen HWCAP_ASIMDDP, so nothing here runs on a CPU without
 * SDOT (a Cortex-A53, say, keeps the scalar table).
 *
 * What each kernel promises (tests/test_kernels.c holds them to it):
 * - quantize_row_q8_{0,1,K}_neon: bit-identical to mr_quantize_row_q8_0,
 *   _q8_1 and _q8_K (tests/test_quantize_act.c).
 *   vcvtaq_s32_f32 rounds to nearest with ties away from zero, which is
 *   roundf; vmaxnmq_f32 is fmaxf; the scale goes through the FCVT
 *   instruction, which rounds to nearest even like mr_f32_to_f16.
 * - integer dots (Q8_0 and Q4_0 weights x Q8_0 activations): each block's
 *   int32 sum is exact; it is scaled and accumulated per (row, token) in
 *   block order with one fused multiply-add, the scalar reference's order.
 *   So vec_dot, every gemm tile shape, any row split between threads and
 *   any batch size give the same bits for the same row and token.
 * - dot_f32 (exact path): f32 lanes, reassociated; within 1e-5 of the sum
 *   of |terms| of the reference.
 *
 * Block layouts (quant/types.h): Q8_0 = f16 d + 32 x int8 (34 bytes),
 * Q4_0 = f16 d + 16 bytes of nibbles (18 bytes), low nibble of byte j is
 * element j, high nibble element j + 16.  Rows of blocks are not aligned:
 * every load here is a byte load (LD1 has no alignment requirement).
 */
#include "kernels.h"

#include <arm_neon.h>
#include <math.h>
#include <string.h>

#if !defined(__aarch64__) || !defined(__ARM_FEATURE_DOTPROD)
#error "arm_neon.c must be compiled for AArch64 with -march=armv8.2-a+dotprod"
#endif

#define ALWAYS_INLINE static inline __attribute__((always_inline))
/* Loops over registers (4 rows, NT tokens, 8 vectors of a block) must be
 * unrolled for their arrays to live in registers; -O2 alone keeps them on
 * the stack. */
#define UNROLL _Pragma("GCC unroll 8")

/* ------------------------------------------------------------ scalars */

/* f16 bits -> f32 with FCVT: exact, like mr_f16_to_f32. */
ALWAYS_INLINE float f16_load(const void *p)
{
    __fp16 h;
    memcpy(&h, p, sizeof h);
    return (float)h;
}

/* f32 -> f16 bits with FCVT (round to nearest even, subnormals kept: the
 * Linux FPCR default), like mr_f32_to_f16 for every non-NaN value. */
ALWAYS_INLINE void f16_store(void *p, float f)
{
    __fp16 h = (__fp16)f;
    memcpy(p, &h, sizeof h);
}

/* ------------------------------------------------------------ Q8_0 activations */

/* One block of 32 floats quantized as ggml's Q8_0/Q8_1 references do:
 * amax = max |x_j|, d = amax / 127, id = 1 / d (0 for a zero block),
 * q_j = roundf(x_j * id) in [-127, 127].  Returns d (f32, unrounded);
 * lo/hi are q_0..15 and q_16..31. */
ALWAYS_INLINE float quantize_block32(const float *x, int8x16_t *lo, int8x16_t *hi)
{
    float32x4_t v[8];
    UNROLL
    for (int i = 0; i < 8; i++)
        v[i] = vld1q_f32(x + 4 * i);
    /* amax = max |x_j|: FMAXNM, the IEEE maxNum of fmaxf */
    float32x4_t m0 = vmaxnmq_f32(vabsq_f32(v[0]), vabsq_f32(v[1]));
    float32x4_t m1 = vmaxnmq_f32(vabsq_f32(v[2]), vabsq_f32(v[3]));
    float32x4_t m2 = vmaxnmq_f32(vabsq_f32(v[4]), vabsq_f32(v[5]));
    float32x4_t m3 = vmaxnmq_f32(vabsq_f32(v[6]), vabsq_f32(v[7]));
    /* with 0: an all-NaN block gives amax 0, as fmaxf(0, NaN) does */
    const float32x4_t mm = vmaxnmq_f32(vmaxnmq_f32(m0, m1), vmaxnmq_f32(m2, m3));
    const float amax = vmaxnmvq_f32(vmaxnmq_f32(mm, vdupq_n_f32(0.0f)));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f; /* zero block: q = 0 */
    /* q_j = roundf(x_j * id), in [-127, 127]: FCVTAS rounds half away
     * from zero; two narrowing moves take int32 -> int16 -> int8 */
    int16x8_t h[4];
    UNROLL
    for (int i = 0; i < 4; i++) {
        const int32x4_t a = vcvtaq_s32_f32(vmulq_n_f32(v[2 * i], id));
        const int32x4_t b = vcvtaq_s32_f32(vmulq_n_f32(v[2 * i + 1], id));
        h[i] = vcombine_s16(vmovn_s32(a), vmovn_s32(b));
    }
    *lo = vcombine_s8(vmovn_s16(h[0]), vmovn_s16(h[1]));
    *hi = vcombine_s8(vmovn_s16(h[2]), vmovn_s16(h[3]));
    return d;
}

/* One row of n floats (n a multiple of 32) -> Q8_0 blocks. */
static void quantize_row_q8_0_neon(const float *src, void *dst, int64_t n)
{
    block_q8_0 *y = dst;
    const int64_t nb = n / QK8_0;
    for (int64_t b = 0; b < nb; b++) {
        int8x16_t lo, hi;
        f16_store(&y[b].d, quantize_block32(src + b * QK8_0, &lo, &hi));
        vst1q_s8(y[b].qs, lo);
        vst1q_s8(y[b].qs + 16, hi);
    }
}

/* One row -> Q8_1 blocks: Q8_0's d and qs, and s = f16(float(sum q) * d)
 * with the unrounded d, as mr_quantize_row_q8_1 (|sum| <= 32 * 127). */
static void quantize_row_q8_1_neon(const float *src, void *dst, int64_t n)
{
    block_q8_1 *y = dst;
    const int64_t nb = n / QK8_1;
    for (int64_t b = 0; b < nb; b++) {
        int8x16_t lo, hi;
        const float d = quantize_block32(src + b * QK8_1, &lo, &hi);
        f16_store(&y[b].d, d);
        /* the stored int8 values summed, as the reference sums qs[j] */
        f16_store(&y[b].s, (float)(vaddlvq_s8(lo) + vaddlvq_s8(hi)) * d);
        vst1q_s8(y[b].qs, lo);
        vst1q_s8(y[b].qs + 16, hi);
    }
}

/* One row -> Q8_K blocks (256 floats), bit for bit mr_quantize_row_q8_K:
 * max = the x of largest |x|, the first one on ties (a NaN never wins, as
 * the reference's '>' skips it); iscale = -127 / max; q = nearest_int(
 * iscale x) by ggml's trick (add 1.5 * 2^23, keep the low 23 bits of the
 * float's pattern minus 2^22: the same float add and the same bits, so
 * even a NaN gives the reference's integer), capped at 127; bsums are the
 * 16-sums of q; d = 1 / iscale.  An all-zero block is all zero bytes. */
static void quantize_row_q8_K_neon(const float *src, void *dst, int64_t n)
{
    block_q8_K *y = dst;
    const int64_t nb = n / QK_K;
    for (int64_t b = 0; b < nb; b++) {
        const float *x = src + b * QK_K;
        float32x4_t m[4] = {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)};
        for (int i = 0; i < QK_K; i += 16)
            UNROLL
            for (int j = 0; j < 4; j++) /* FMAXNM against the zeros: NaN lanes drop out */
                m[j] = vmaxnmq_f32(m[j], vabsq_f32(vld1q_f32(x + i + 4 * j)));
        const float amax = vmaxnmvq_f32(vmaxnmq_f32(vmaxnmq_f32(m[0], m[1]), vmaxnmq_f32(m[2], m[3])));
        if (amax == 0.0f) {
            memset(&y[b], 0, sizeof y[b]);
            continue;
        }
        /* the first j with |x_j| == amax, 16 at a time: a NaN compares unequal */
        const float32x4_t va = vdupq_n_f32(amax);
        int first = 0;
        for (int i = 0; i < QK_K; i += 16) {
            uint32x4_t e[4];
            UNROLL
            for (int j = 0; j < 4; j++)
                e[j] = vceqq_f32(vabsq_f32(vld1q_f32(x + i + 4 * j)), va);
            if (vmaxvq_u32(vorrq_u32(vorrq_u32(e[0], e[1]), vorrq_u32(e[2], e[3])))) {
                first = i;
                while (fabsf(x[first]) != amax)
                    first++;
                break;
            }
        }
        const float iscale = -127.0f / x[first];
        const float32x4_t magic = vdupq_n_f32(12582912.0f);
        const int32x4_t low23 = vdupq_n_s32(0x007fffff), half = vdupq_n_s32(0x00400000);
        const int32x4_t top = vdupq_n_s32(127);
        for (int g = 0; g < QK_K / 16; g++) {
            int16x8_t h[2];
            UNROLL
            for (int j = 0; j < 2; j++) {
                int32x4_t q[2];
                UNROLL
                for (int k = 0; k < 2; k++) {
                    const float32x4_t f = vaddq_f32(vmulq_n_f32(vld1q_f32(x + 16 * g + 8 * j + 4 * k), iscale), magic);
                    q[k] = vminq_s32(vsubq_s32(vandq_s32(vreinterpretq_s32_f32(f), low23), half), top);
                }
                /* (int8_t) of the int: the low bytes (in [-127, 127] anyway) */
                h[j] = vcombine_s16(vmovn_s32(q[0]), vmovn_s32(q[1]));
            }
            const int8x16_t q8 = vcombine_s8(vmovn_s16(h[0]), vmovn_s16(h[1]));
            vst1q_s8(y[b].qs + 16 * g, q8);
            y[b].bsums[g] = vaddlvq_s8(q8); /* |sum| <= 16 * 127 */
        }
        y[b].d = 1.0f / iscale;
    }
}

/* ------------------------------------------------------------ integer dots */

/* A weight block's 32 values as two int8x16 (elements 0..15, 16..31) and
 * its scale. */
typedef struct {
    int8x16_t lo, hi;
    float d;
} wblock;

ALWAYS_INLINE wblock load_q8_0(const uint8_t *row, int64_t b)
{
    const block_q8_0 *blk = (const block_q8_0 *)row + b;
    wblock w;
    w.lo = vld1q_s8(blk->qs);
    w.hi = vld1q_s8(blk->qs + 16);
    w.d = f16_load(&blk->d);
    return w;
}

ALWAYS_INLINE wblock load_q4_0(const uint8_t *row, int64_t b)
{
    const block_q4_0 *blk = (const block_q4_0 *)row + b;
    const uint8x16_t q = vld1q_u8(blk->qs);
    const int8x16_t eight = vdupq_n_s8(8);
    wblock w;
    /* nibble q in [0, 15] -> q - 8 in [-8, 7] */
    w.lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(q, vdupq_n_u8(0x0f))), eight);
    w.hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(q, 4)), eight);
    w.d = f16_load(&blk->d);
    return w;
}

/* The 32-term integer dot of a weight block with an activation block, as
 * four int32 partial sums (SDOT: each lane adds four int8 x int8 products;
 * |sum| <= 32 * 127 * 127, far inside int32 and exact in f32). */
ALWAYS_INLINE int32x4_t sdot_block(wblock w, int8x16_t alo, int8x16_t ahi)
{
    return vdotq_s32(vdotq_s32(vdupq_n_s32(0), w.lo, alo), w.hi, ahi);
}

/* Weight type of a gemm/vec_dot instantiation. */
enum { W_Q8_0, W_Q4_0 };

ALWAYS_INLINE wblock load_w(int wt, const uint8_t *row, int64_t b)
{
    return wt == W_Q4_0 ? load_q4_0(row, b) : load_q8_0(row, b);
}

/* dot(weight row, Q8_0 activation row): per block, sum += s * (dw * da),
 * one FMA, in block order. */
ALWAYS_INLINE float vec_dot_tmpl(int wt, const void *w, const void *act, int64_t n)
{
    const uint8_t *wr = w;
    const block_q8_0 *a = act;
    const int64_t nb = n / QK8_0;
    float sum = 0.0f;
    for (int64_t b = 0; b < nb; b++) {
        const wblock wb = load_w(wt, wr, b);
        const int32_t s = vaddvq_s32(sdot_block(wb, vld1q_s8(a[b].qs), vld1q_s8(a[b].qs + 16)));
        sum = __builtin_fmaf((float)s, wb.d * f16_load(&a[b].d), sum);
    }
    return sum;
}

static float vec_dot_q8_0_q8_0_neon(const void *w, const void *act, int64_t n)
{
    return vec_dot_tmpl(W_Q8_0, w, act, n);
}

static float vec_dot_q4_0_q8_0_neon(const void *w, const void *act, int64_t n)
{
    return vec_dot_tmpl(W_Q4_0, w, act, n);
}

/* One register tile: 4 weight rows x NT tokens (NT = 1..4, a constant
 * after inlining).  Per block, the NT activation blocks are loaded once and
 * reused for the 4 rows, each weight block once and reused for the NT
 * tokens.  Row r's accumulator holds one lane per token:
 *   acc[r][t] = fma(s(r, t), dw_r * da_t, acc[r][t])
 * where s(r, t) is the exact block sum, gathered from four SDOT vectors by
 * a tree of pairwise adds (lane t = horizontal sum of token t's vector).
 * 4 accumulators + 2 x NT activation + 2 weight + NT product vectors stay
 * within the 32 vector registers. */
ALWAYS_INLINE void tile_4xNT(int wt, const int NT, const uint8_t *const wrow[4],
                             const uint8_t *const arow[4], int64_t nb, int nr, float *y,
                             int64_t ldy)
{
    float32x4_t acc[4];
    UNROLL
    for (int r = 0; r < 4; r++)
        acc[r] = vdupq_n_f32(0.0f);
    for (int64_t b = 0; b < nb; b++) {
        int8x16_t alo[4], ahi[4];
        float da[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        UNROLL
        for (int t = 0; t < NT; t++) {
            const block_q8_0 *ab = (const block_q8_0 *)arow[t] + b;
            alo[t] = vld1q_s8(ab->qs);
            ahi[t] = vld1q_s8(ab->qs + 16);
            da[t] = f16_load(&ab->d);
        }
        const float32x4_t dav = vld1q_f32(da);
        UNROLL
        for (int r = 0; r < 4; r++) {
            const wblock w = load_w(wt, wrow[r], b);
            int32x4_t p[4];
            UNROLL
            for (int t = 0; t < 4; t++)
                p[t] = t < NT ? sdot_block(w, alo[t], ahi[t]) : vdupq_n_s32(0);
            /* lanes: [sum p0, sum p1, sum p2, sum p3] */
            const int32x4_t s = vpaddq_s32(vpaddq_s32(p[0], p[1]), vpaddq_s32(p[2], p[3]));
            acc[r] = vfmaq_f32(acc[r], vcvtq_f32_s32(s), vmulq_n_f32(dav, w.d));
        }
    }
    /* y[t * ldy + r]: lane t of row r's accumulator; rows >= nr were
     * repeats */
    for (int r = 0; r < nr; r++) {
        float out[4];
        vst1q_f32(out, acc[r]);
        for (int t = 0; t < NT; t++)
            y[t * ldy + r] = out[t];
    }
}

/* y[t * ldy + r] for r in [r0, r1), t < n_tok, in tiles of 4 rows x 4
 * tokens.  A last tile of fewer than 4 rows repeats its last row (computed,
 * never stored) so every tile runs the same code; a last tile of fewer
 * than 4 tokens is its own instantiation. */
ALWAYS_INLINE void gemm_tmpl(int wt, const void *w, size_t w_stride, const void *act,
                             size_t a_stride, int64_t n, int64_t n_tok, float *y, int64_t ldy,
                             int64_t r0, int64_t r1)
{
    const int64_t nb = n / QK8_0;
    const uint8_t *wbase = w, *abase = act;
    for (int64_t r = r0; r < r1; r += 4) {
        const int nr = r1 - r < 4 ? (int)(r1 - r) : 4;
        const uint8_t *wrow[4];
        for (int i = 0; i < 4; i++)
            wrow[i] = wbase + (size_t)(r + (i < nr ? i : nr - 1)) * w_stride;
        for (int64_t t = 0; t < n_tok; t += 4) {
            const int nt = n_tok - t < 4 ? (int)(n_tok - t) : 4;
            const uint8_t *arow[4];
            for (int i = 0; i < 4; i++)
                arow[i] = abase + (size_t)(t + (i < nt ? i : 0)) * a_stride;
            float *yt = y + t * ldy + r;
            switch (nt) {
            case 4: tile_4xNT(wt, 4, wrow, arow, nb, nr, yt, ldy); break;
            case 3: tile_4xNT(wt, 3, wrow, arow, nb, nr, yt, ldy); break;
            case 2: tile_4xNT(wt, 2, wrow, arow, nb, nr, yt, ldy); break;
            default: tile_4xNT(wt, 1, wrow, arow, nb, nr, yt, ldy); break;
            }
        }
    }
}

static void gemm_q8_0_q8_0_neon(const void *w, size_t w_stride, const void *act,
                                size_t a_stride, int64_t n, int64_t n_tok, float *y, int64_t ldy,
                                int64_t r0, int64_t r1)
{
    gemm_tmpl(W_Q8_0, w, w_stride, act, a_stride, n, n_tok, y, ldy, r0, r1);
}

static void gemm_q4_0_q8_0_neon(const void *w, size_t w_stride, const void *act,
                                size_t a_stride, int64_t n, int64_t n_tok, float *y, int64_t ldy,
                                int64_t r0, int64_t r1)
{
    gemm_tmpl(W_Q4_0, w, w_stride, act, a_stride, n, n_tok, y, ldy, r0, r1);
}

/* ------------------------------------------------------------ exact path: f32 activations */

/* 4 floats from p (unaligned bytes). */
ALWAYS_INLINE float32x4_t ld_f32(const uint8_t *p)
{
    return vreinterpretq_f32_u8(vld1q_u8(p));
}

static float dot_f32_f32_neon(const void *w, const float *x, int64_t n)
{
    const uint8_t *p = w;
    float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        a0 = vfmaq_f32(a0, ld_f32(p + 4 * i), vld1q_f32(x + i));
        a1 = vfmaq_f32(a1, ld_f32(p + 4 * i + 16), vld1q_f32(x + i + 4));
        a2 = vfmaq_f32(a2, ld_f32(p + 4 * i + 32), vld1q_f32(x + i + 8));
        a3 = vfmaq_f32(a3, ld_f32(p + 4 * i + 48), vld1q_f32(x + i + 12));
    }
    for (; i + 4 <= n; i += 4)
        a0 = vfmaq_f32(a0, ld_f32(p + 4 * i), vld1q_f32(x + i));
    float sum = vaddvq_f32(vaddq_f32(vaddq_f32(a0, a1), vaddq_f32(a2, a3)));
    for (; i < n; i++) {
        float v;
        memcpy(&v, p + 4 * i, 4);
        sum += v * x[i];
    }
    return sum;
}

/* 8 halves -> two float32x4 (FCVTL: exact). */
ALWAYS_INLINE void cvt_f16x8(const uint8_t *p, float32x4_t *lo, float32x4_t *hi)
{
    const float16x8_t h = vreinterpretq_f16_u8(vld1q_u8(p));
    *lo = vcvt_f32_f16(vget_low_f16(h));
    *hi = vcvt_high_f32_f16(h);
}

static float dot_f16_f32_neon(const void *w, const float *x, int64_t n)
{
    const uint8_t *p = w;
    float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        float32x4_t w0, w1, w2, w3;
        cvt_f16x8(p + 2 * i, &w0, &w1);
        cvt_f16x8(p + 2 * i + 16, &w2, &w3);
        a0 = vfmaq_f32(a0, w0, vld1q_f32(x + i));
        a1 = vfmaq_f32(a1, w1, vld1q_f32(x + i + 4));
        a2 = vfmaq_f32(a2, w2, vld1q_f32(x + i + 8));
        a3 = vfmaq_f32(a3, w3, vld1q_f32(x + i + 12));
    }
    float sum = vaddvq_f32(vaddq_f32(vaddq_f32(a0, a1), vaddq_f32(a2, a3)));
    for (; i < n; i++)
        sum += f16_load(p + 2 * i) * x[i];
    return sum;
}

/* bf16 is the top half of an f32: widen with a 16-bit left shift (exact;
 * NaNs stay NaNs, as mr_bf16_to_f32 does). */
ALWAYS_INLINE void cvt_bf16x8(const uint8_t *p, float32x4_t *lo, float32x4_t *hi)
{
    const uint16x8_t h = vreinterpretq_u16_u8(vld1q_u8(p));
    *lo = vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(h), 16));
    *hi = vreinterpretq_f32_u32(vshll_high_n_u16(h, 16));
}

static float dot_bf16_f32_neon(const void *w, const float *x, int64_t n)
{
    const uint8_t *p = w;
    float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        float32x4_t w0, w1, w2, w3;
        cvt_bf16x8(p + 2 * i, &w0, &w1);
        cvt_bf16x8(p + 2 * i + 16, &w2, &w3);
        a0 = vfmaq_f32(a0, w0, vld1q_f32(x + i));
        a1 = vfmaq_f32(a1, w1, vld1q_f32(x + i + 4));
        a2 = vfmaq_f32(a2, w2, vld1q_f32(x + i + 8));
        a3 = vfmaq_f32(a3, w3, vld1q_f32(x + i + 12));
    }
    float sum = vaddvq_f32(vaddq_f32(vaddq_f32(a0, a1), vaddq_f32(a2, a3)));
    for (; i < n; i++) {
        uint32_t u = (uint32_t)(p[2 * i] | (p[2 * i + 1] << 8)) << 16;
        float v;
        memcpy(&v, &u, 4);
        sum += v * x[i];
    }
    return sum;
}

/* 16 int8 -> four float32x4 (exact: |q| <= 128). */
ALWAYS_INLINE void cvt_s8x16(int8x16_t q, float32x4_t f[4])
{
    const int16x8_t lo = vmovl_s8(vget_low_s8(q)), hi = vmovl_high_s8(q);
    f[0] = vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo)));
    f[1] = vcvtq_f32_s32(vmovl_high_s16(lo));
    f[2] = vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi)));
    f[3] = vcvtq_f32_s32(vmovl_high_s16(hi));
}

/* Dot of a block's 32 integer weights (as lo/hi int8x16) with 32 floats,
 * as four lanes, unscaled. */
ALWAYS_INLINE float32x4_t block_dot_f32(wblock w, const float *x)
{
    float32x4_t f[4], g[4];
    cvt_s8x16(w.lo, f);
    cvt_s8x16(w.hi, g);
    float32x4_t s0 = vmulq_f32(f[0], vld1q_f32(x));
    float32x4_t s1 = vmulq_f32(f[1], vld1q_f32(x + 4));
    s0 = vfmaq_f32(s0, f[2], vld1q_f32(x + 8));
    s1 = vfmaq_f32(s1, f[3], vld1q_f32(x + 12));
    s0 = vfmaq_f32(s0, g[0], vld1q_f32(x + 16));
    s1 = vfmaq_f32(s1, g[1], vld1q_f32(x + 20));
    s0 = vfmaq_f32(s0, g[2], vld1q_f32(x + 24));
    s1 = vfmaq_f32(s1, g[3], vld1q_f32(x + 28));
    return vaddq_f32(s0, s1);
}

/* sum over blocks of d_b * (q_b . x_b), two blocks in flight. */
ALWAYS_INLINE float dot_q_f32_tmpl(int wt, const void *w, const float *x, int64_t n)
{
    const uint8_t *wr = w;
    const int64_t nb = n / QK8_0;
    float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = acc0;
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
        const wblock w0 = load_w(wt, wr, b), w1 = load_w(wt, wr, b + 1);
        acc0 = vfmaq_n_f32(acc0, block_dot_f32(w0, x + b * QK8_0), w0.d);
        acc1 = vfmaq_n_f32(acc1, block_dot_f32(w1, x + (b + 1) * QK8_0), w1.d);
    }
    if (b < nb) {
        const wblock w0 = load_w(wt, wr, b);
        acc0 = vfmaq_n_f32(acc0, block_dot_f32(w0, x + b * QK8_0), w0.d);
    }
    return vaddvq_f32(vaddq_f32(acc0, acc1));
}

static float dot_q8_0_f32_neon(const void *w, const float *x, int64_t n)
{
    return dot_q_f32_tmpl(W_Q8_0, w, x, n);
}

static float dot_q4_0_f32_neon(const void *w, const float *x, int64_t n)
{
    return dot_q_f32_tmpl(W_Q4_0, w, x, n);
}

/* ------------------------------------------------------------ table */

void mr_kernels_init_neon(mr_kernels *k)
{
    k->quantize_act[MR_TYPE_Q8_0] = quantize_row_q8_0_neon;
    k->quantize_act[MR_TYPE_Q8_1] = quantize_row_q8_1_neon;
    k->quantize_act[MR_TYPE_Q8_K] = quantize_row_q8_K_neon;
    k->vec_dot[MR_TYPE_Q8_0] = vec_dot_q8_0_q8_0_neon;
    k->vec_dot[MR_TYPE_Q4_0] = vec_dot_q4_0_q8_0_neon;
    k->gemm[MR_TYPE_Q8_0] = gemm_q8_0_q8_0_neon;
    k->gemm[MR_TYPE_Q4_0] = gemm_q4_0_q8_0_neon;
    k->dot_f32[MR_TYPE_F32] = dot_f32_f32_neon;
    k->dot_f32[MR_TYPE_F16] = dot_f16_f32_neon;
    k->dot_f32[MR_TYPE_BF16] = dot_bf16_f32_neon;
    k->dot_f32[MR_TYPE_Q8_0] = dot_q8_0_f32_neon;
    k->dot_f32[MR_TYPE_Q4_0] = dot_q4_0_f32_neon;
    mr_kernels_init_neon_k(k); /* the K-quants, arm_neon_k.c */
}
