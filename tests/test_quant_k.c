/* test_quant_k.c - the K-quant scalar references (Q4_K, Q5_K, Q6_K and
 * their activation format Q8_K): layouts, round-trip error bounds, zero and
 * extreme blocks, every dot against a float64 dot of the dequantised
 * operands, and known answers that pin the bytes to ggml's.
 *
 * Known answers come two ways.  Three blocks are simple enough to work out
 * by hand; the derivations are in the comments, and the expected bytes are
 * built here from the stated rule, not from moerun's output.  Seven 8-block
 * rows of varied inputs are checked against digests that ggml itself
 * produced (tests/oracle/ggml_kquant_oracle.c says how).  Random inputs
 * print their seed. */
#include <check.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kquant_cases.h"
#include "types.h"

static uint64_t rng_state;

static void seed(uint64_t s, const char *what)
{
    rng_state = s;
    printf("%s: seed %llu\n", what, (unsigned long long)s);
}

static float rng_float(void)
{
    return kq_uniform(&rng_state);
}

static const int block_counts[] = {1, 2, 3, 5, 7, 8, 15, 16, 17, 31, 32, 33};
#define N_COUNTS (int)(sizeof block_counts / sizeof block_counts[0])

static double dot64(const float *a, const float *b, int64_t n)
{
    double s = 0.0;
    for (int64_t i = 0; i < n; i++)
        s += (double)a[i] * (double)b[i];
    return s;
}

static double abs_dot64(const float *a, const float *b, int64_t n)
{
    double s = 0.0;
    for (int64_t i = 0; i < n; i++)
        s += fabs((double)a[i] * (double)b[i]);
    return s;
}

/* Random weights for round trips and dots: noise whose amplitude changes
 * per 16 weights (2^-3 .. 2^3), with an occasional outlier. */
static void random_weights(float *x, int64_t n)
{
    float amp = 1.0f;
    for (int64_t i = 0; i < n; i++) {
        if (i % 16 == 0)
            amp = (float)(1 << (kq_next(&rng_state) % 7)) / 8.0f;
        x[i] = rng_float() * amp * (kq_next(&rng_state) % 97 == 0 ? 8.0f : 1.0f);
    }
}

START_TEST(layouts_and_type_table)
{
    ck_assert_uint_eq(sizeof(block_q4_K), 144);
    ck_assert_uint_eq(offsetof(block_q4_K, dmin), 2);
    ck_assert_uint_eq(offsetof(block_q4_K, scales), 4);
    ck_assert_uint_eq(offsetof(block_q4_K, qs), 16);
    ck_assert_uint_eq(sizeof(block_q6_K), 210);
    ck_assert_uint_eq(offsetof(block_q6_K, qh), 128);
    ck_assert_uint_eq(offsetof(block_q6_K, scales), 192);
    ck_assert_uint_eq(offsetof(block_q6_K, d), 208);
    ck_assert_uint_eq(sizeof(block_q8_K), 292);
    ck_assert_uint_eq(offsetof(block_q8_K, qs), 4);
    ck_assert_uint_eq(offsetof(block_q8_K, bsums), 260);

    ck_assert(mr_type_computable(MR_TYPE_Q4_K) && mr_type_computable(MR_TYPE_Q6_K));
    ck_assert(!mr_type_computable(MR_TYPE_Q8_K)); /* activations only */
    ck_assert_uint_eq(sizeof(block_q5_K), 176);
    ck_assert_uint_eq(offsetof(block_q5_K, dmin), 2);
    ck_assert_uint_eq(offsetof(block_q5_K, scales), 4);
    ck_assert_uint_eq(offsetof(block_q5_K, qh), 16);
    ck_assert_uint_eq(offsetof(block_q5_K, qs), 48);
    const mr_type_traits *t5 = mr_type_get(MR_TYPE_Q5_K);
    ck_assert_str_eq(t5->name, "Q5_K");
    ck_assert(t5->to_f32 == mr_dequantize_row_q5_K && t5->from_f32 == mr_quantize_row_q5_K &&
              t5->dot_f32 == mr_dot_q5_K_f32);
    ck_assert_uint_eq(mr_type_row_bytes(MR_TYPE_Q5_K, 4096), 16 * 176);
    ck_assert_uint_eq(mr_type_from_name("q5_k"), MR_TYPE_Q5_K);
    const mr_type_traits *t4 = mr_type_get(MR_TYPE_Q4_K), *t6 = mr_type_get(MR_TYPE_Q6_K);
    ck_assert_str_eq(t4->name, "Q4_K");
    ck_assert(t4->to_f32 == mr_dequantize_row_q4_K && t4->from_f32 == mr_quantize_row_q4_K &&
              t4->dot_f32 == mr_dot_q4_K_f32);
    ck_assert_str_eq(t6->name, "Q6_K");
    ck_assert(t6->to_f32 == mr_dequantize_row_q6_K && t6->from_f32 == mr_quantize_row_q6_K &&
              t6->dot_f32 == mr_dot_q6_K_f32);
    ck_assert_uint_eq(mr_type_row_bytes(MR_TYPE_Q4_K, 4096), 16 * 144);
    ck_assert_uint_eq(mr_type_row_bytes(MR_TYPE_Q6_K, 4096), 16 * 210);
    ck_assert_uint_eq(mr_type_row_bytes(MR_TYPE_Q4_K, 4096 + 32), 0);
}
END_TEST

/* Q4_K: in each 32-weight sub-block with range R = max - min(min, 0),
 * every weight comes back within one grid step R / 15 (the fit may clip an
 * extreme by up to a step) plus the error of storing the sub-block's scale
 * and min in 6 bits against the block's largest (half a step of
 * max_scale / 63 each, the scale's error multiplied by up to 15), plus f16
 * rounding of d and dmin.  The mean squared error stays below what a
 * plain min/max grid gives, (R/15)^2 / 12, summed over sub-blocks. */
START_TEST(q4_K_round_trip)
{
    seed(3000 + (uint64_t)_i, "q4_K round trip");
    const int64_t n = (int64_t)block_counts[_i] * QK_K;
    float *x = malloc(sizeof(float) * n), *back = malloc(sizeof(float) * n);
    block_q4_K *q = malloc(sizeof(block_q4_K) * (size_t)(n / QK_K));
    random_weights(x, n);
    mr_quantize_row_q4_K(x, q, n);
    mr_dequantize_row_q4_K(q, back, n);
    for (int64_t b = 0; b < n / QK_K; b++) {
        const float *xb = x + b * QK_K, *yb = back + b * QK_K;
        double max_scale = 0.0, max_min = 0.0, amax = 0.0;
        double range[8];
        for (int j = 0; j < 8; j++) {
            double lo = 0.0, hi = -INFINITY;
            for (int i = 0; i < 32; i++) {
                lo = fmin(lo, xb[32 * j + i]);
                hi = fmax(hi, xb[32 * j + i]);
                amax = fmax(amax, fabs(xb[32 * j + i]));
            }
            range[j] = hi - lo;
            max_scale = fmax(max_scale, range[j] / 15.0);
            max_min = fmax(max_min, -lo);
        }
        double sq = 0.0, sq_grid = 0.0;
        for (int j = 0; j < 8; j++) {
            const double bound = range[j] / 15.0 + 7.5 * max_scale / 63.0 * 1.1 +
                                 0.5 * max_min / 63.0 * 1.1 + amax * 2e-3;
            for (int i = 0; i < 32; i++) {
                const double err = fabs((double)yb[32 * j + i] - xb[32 * j + i]);
                ck_assert_msg(err <= bound, "n=%lld block %lld sub %d elem %d: %g -> %g (bound %g)",
                              (long long)n, (long long)b, j, i, xb[32 * j + i], yb[32 * j + i],
                              bound);
                ck_assert(!isnan(yb[32 * j + i]));
                sq += err * err;
            }
            sq_grid += 32.0 * (range[j] / 15.0) * (range[j] / 15.0) / 12.0;
        }
        ck_assert_msg(sq <= sq_grid, "n=%lld block %lld: squared error %g, plain grid %g",
                      (long long)n, (long long)b, sq, sq_grid);
    }
    free(x);
    free(back);
    free(q);
}
END_TEST

/* Q5_K: Q4_K's bound with 31 levels instead of 15: within one step R / 31
 * plus the 6-bit scale's error (half a step of max_scale / 63, times up
 * to 31) and the min's, plus f16 rounding.  With steps half Q4_K's, the
 * 6-bit scales' error weighs more: the squared error may pass the plain
 * min/max grid's (R/31)^2 / 12, but not by half (1.2x is the worst seen). */
START_TEST(q5_K_round_trip)
{
    seed(3500 + (uint64_t)_i, "q5_K round trip");
    const int64_t n = (int64_t)block_counts[_i] * QK_K;
    float *x = malloc(sizeof(float) * n), *back = malloc(sizeof(float) * n);
    block_q5_K *q = malloc(sizeof(block_q5_K) * (size_t)(n / QK_K));
    random_weights(x, n);
    mr_quantize_row_q5_K(x, q, n);
    mr_dequantize_row_q5_K(q, back, n);
    for (int64_t b = 0; b < n / QK_K; b++) {
        const float *xb = x + b * QK_K, *yb = back + b * QK_K;
        double max_scale = 0.0, max_min = 0.0, amax = 0.0;
        double range[8];
        for (int j = 0; j < 8; j++) {
            double lo = 0.0, hi = -INFINITY;
            for (int i = 0; i < 32; i++) {
                lo = fmin(lo, xb[32 * j + i]);
                hi = fmax(hi, xb[32 * j + i]);
                amax = fmax(amax, fabs(xb[32 * j + i]));
            }
            range[j] = hi - lo;
            max_scale = fmax(max_scale, range[j] / 31.0);
            max_min = fmax(max_min, -lo);
        }
        double sq = 0.0, sq_grid = 0.0;
        for (int j = 0; j < 8; j++) {
            const double bound = range[j] / 31.0 + 15.5 * max_scale / 63.0 * 1.1 +
                                 0.5 * max_min / 63.0 * 1.1 + amax * 2e-3;
            for (int i = 0; i < 32; i++) {
                const double err = fabs((double)yb[32 * j + i] - xb[32 * j + i]);
                ck_assert_msg(err <= bound, "n=%lld block %lld sub %d elem %d: %g -> %g (bound %g)",
                              (long long)n, (long long)b, j, i, xb[32 * j + i], yb[32 * j + i],
                              bound);
                sq += err * err;
            }
            sq_grid += 32.0 * (range[j] / 31.0) * (range[j] / 31.0) / 12.0;
        }
        ck_assert_msg(sq <= 1.5 * sq_grid, "n=%lld block %lld: squared error %g, plain grid %g",
                      (long long)n, (long long)b, sq, sq_grid);
    }
    free(x);
    free(back);
    free(q);
}
END_TEST

/* Q6_K: in each 16-weight sub-block with largest magnitude A, every weight
 * comes back within one step A / 32 (the grid is asymmetric, [-32, 31],
 * and the fit may clip) plus the int8 scale's error, half a step of
 * max_abs_scale / 128 times up to 32, plus f16 rounding of d.  The fit
 * weights errors by x^2, favouring large values, and scales cost 8 bits,
 * so the squared error may exceed a plain grid's (A/32)^2 / 12 per weight,
 * but not twice over (1.3x is the worst seen). */
START_TEST(q6_K_round_trip)
{
    seed(4000 + (uint64_t)_i, "q6_K round trip");
    const int64_t n = (int64_t)block_counts[_i] * QK_K;
    float *x = malloc(sizeof(float) * n), *back = malloc(sizeof(float) * n);
    block_q6_K *q = malloc(sizeof(block_q6_K) * (size_t)(n / QK_K));
    random_weights(x, n);
    mr_quantize_row_q6_K(x, q, n);
    mr_dequantize_row_q6_K(q, back, n);
    for (int64_t b = 0; b < n / QK_K; b++) {
        const float *xb = x + b * QK_K, *yb = back + b * QK_K;
        double amax_sub[16], amax = 0.0, sq = 0.0, sq_grid = 0.0;
        for (int j = 0; j < 16; j++) {
            amax_sub[j] = 0.0;
            for (int i = 0; i < 16; i++)
                amax_sub[j] = fmax(amax_sub[j], fabs(xb[16 * j + i]));
            amax = fmax(amax, amax_sub[j]);
        }
        for (int j = 0; j < 16; j++) {
            const double bound = amax_sub[j] / 32.0 + 16.0 * (amax / 32.0) / 128.0 * 1.1 +
                                 amax * 2e-3;
            for (int i = 0; i < 16; i++) {
                const double err = fabs((double)yb[16 * j + i] - xb[16 * j + i]);
                ck_assert_msg(err <= bound, "n=%lld block %lld sub %d elem %d: %g -> %g (bound %g)",
                              (long long)n, (long long)b, j, i, xb[16 * j + i], yb[16 * j + i],
                              bound);
                sq += err * err;
            }
            sq_grid += 16.0 * (amax_sub[j] / 32.0) * (amax_sub[j] / 32.0) / 12.0;
        }
        ck_assert_msg(sq <= 2.0 * sq_grid, "n=%lld block %lld: squared error %g, plain grid %g",
                      (long long)n, (long long)b, sq, sq_grid);
    }
    free(x);
    free(back);
    free(q);
}
END_TEST

/* Q8_K rounds to nearest (no clipping: the largest maps to 127 exactly),
 * so every value is within |d| / 2; bsums are the sums of qs. */
START_TEST(q8_K_round_trip_and_bsums)
{
    seed(5000 + (uint64_t)_i, "q8_K round trip");
    const int64_t n = (int64_t)block_counts[_i] * QK_K;
    float *x = malloc(sizeof(float) * n), *back = malloc(sizeof(float) * n);
    block_q8_K *q = malloc(sizeof(block_q8_K) * (size_t)(n / QK_K));
    random_weights(x, n);
    mr_quantize_row_q8_K(x, q, n);
    mr_dequantize_row_q8_K(q, back, n);
    for (int64_t b = 0; b < n / QK_K; b++) {
        const double half = fabs(q[b].d) * 0.5 * (1.0 + 1e-5);
        for (int i = 0; i < QK_K; i++) {
            ck_assert(q[b].qs[i] >= -127 && q[b].qs[i] <= 127);
            ck_assert_msg(fabs((double)back[b * QK_K + i] - x[b * QK_K + i]) <= half,
                          "n=%lld block %lld elem %d: %g -> %g", (long long)n, (long long)b, i,
                          x[b * QK_K + i], back[b * QK_K + i]);
        }
        for (int g = 0; g < 16; g++) {
            int s = 0;
            for (int i = 0; i < 16; i++)
                s += q[b].qs[16 * g + i];
            ck_assert_int_eq(q[b].bsums[g], s);
        }
    }
    free(x);
    free(back);
    free(q);
}
END_TEST

/* dot_f32 against float64 on the dequantised weights, and the integer dots
 * against float64 on both dequantised operands: they differ only by float
 * rounding, 1e-5 of the sum of |terms|. */
START_TEST(dots_match_float64)
{
    seed(6000 + (uint64_t)_i, "dots");
    const int64_t n = (int64_t)block_counts[_i] * QK_K, nb = n / QK_K;
    float *w = malloc(sizeof(float) * n), *x = malloc(sizeof(float) * n);
    float *wd = malloc(sizeof(float) * n), *xd = malloc(sizeof(float) * n);
    block_q4_K *w4 = malloc(sizeof(block_q4_K) * (size_t)nb);
    block_q6_K *w6 = malloc(sizeof(block_q6_K) * (size_t)nb);
    block_q8_K *x8 = malloc(sizeof(block_q8_K) * (size_t)nb);
    random_weights(w, n);
    for (int64_t i = 0; i < n; i++)
        x[i] = rng_float() * 4.0f;
    mr_quantize_row_q8_K(x, x8, n);
    mr_dequantize_row_q8_K(x8, xd, n);

    mr_quantize_row_q4_K(w, w4, n);
    mr_dequantize_row_q4_K(w4, wd, n);
    double want = dot64(wd, x, n), tol = 1e-5 * abs_dot64(wd, x, n) + 1e-6;
    double got = mr_type_get(MR_TYPE_Q4_K)->dot_f32(w4, x, n);
    ck_assert_msg(fabs(got - want) <= tol, "q4_K.f32 n=%lld: %.9g vs %.9g", (long long)n, got,
                  want);
    want = dot64(wd, xd, n);
    tol = 1e-5 * abs_dot64(wd, xd, n) + 1e-6;
    got = mr_dot_q4_K_q8_K(w4, x8, n);
    ck_assert_msg(fabs(got - want) <= tol, "q4_K.q8_K n=%lld: %.9g vs %.9g", (long long)n, got,
                  want);

    block_q5_K *w5 = malloc(sizeof(block_q5_K) * (size_t)nb);
    mr_quantize_row_q5_K(w, w5, n);
    mr_dequantize_row_q5_K(w5, wd, n);
    want = dot64(wd, x, n);
    tol = 1e-5 * abs_dot64(wd, x, n) + 1e-6;
    got = mr_type_get(MR_TYPE_Q5_K)->dot_f32(w5, x, n);
    ck_assert_msg(fabs(got - want) <= tol, "q5_K.f32 n=%lld: %.9g vs %.9g", (long long)n, got,
                  want);
    want = dot64(wd, xd, n);
    tol = 1e-5 * abs_dot64(wd, xd, n) + 1e-6;
    got = mr_dot_q5_K_q8_K(w5, x8, n);
    ck_assert_msg(fabs(got - want) <= tol, "q5_K.q8_K n=%lld: %.9g vs %.9g", (long long)n, got,
                  want);
    free(w5);

    mr_quantize_row_q6_K(w, w6, n);
    mr_dequantize_row_q6_K(w6, wd, n);
    want = dot64(wd, x, n);
    tol = 1e-5 * abs_dot64(wd, x, n) + 1e-6;
    got = mr_type_get(MR_TYPE_Q6_K)->dot_f32(w6, x, n);
    ck_assert_msg(fabs(got - want) <= tol, "q6_K.f32 n=%lld: %.9g vs %.9g", (long long)n, got,
                  want);
    want = dot64(wd, xd, n);
    tol = 1e-5 * abs_dot64(wd, xd, n) + 1e-6;
    got = mr_dot_q6_K_q8_K(w6, x8, n);
    ck_assert_msg(fabs(got - want) <= tol, "q6_K.q8_K n=%lld: %.9g vs %.9g", (long long)n, got,
                  want);
    free(w);
    free(x);
    free(wd);
    free(xd);
    free(w4);
    free(w6);
    free(x8);
}
END_TEST

static int all_bytes_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return 0;
    return 1;
}

/* All-zero input: every format writes an all-zero block (no division by a
 * zero scale anywhere), decodes to exact zeros, and dots to 0. */
START_TEST(zero_blocks)
{
    enum { NB = 3, N = NB * QK_K };
    static float z[N], back[N], ones[N];
    block_q4_K q4[NB];
    block_q6_K q6[NB];
    block_q8_K q8[NB];
    for (int i = 0; i < N; i++)
        ones[i] = 1.0f;
    memset(q4, 0xa5, sizeof q4);
    memset(q6, 0xa5, sizeof q6);
    memset(q8, 0xa5, sizeof q8);
    mr_quantize_row_q4_K(z, q4, N);
    mr_quantize_row_q6_K(z, q6, N);
    mr_quantize_row_q8_K(z, q8, N);
    ck_assert(all_bytes_zero(q4, sizeof q4));
    ck_assert(all_bytes_zero(q6, sizeof q6));
    ck_assert(all_bytes_zero(q8, sizeof q8));
    mr_dequantize_row_q4_K(q4, back, N);
    for (int i = 0; i < N; i++)
        ck_assert(back[i] == 0.0f);
    mr_dequantize_row_q6_K(q6, back, N);
    for (int i = 0; i < N; i++)
        ck_assert(back[i] == 0.0f);
    ck_assert(mr_dot_q4_K_f32(q4, ones, N) == 0.0f && mr_dot_q6_K_f32(q6, ones, N) == 0.0f);
    ck_assert(mr_dot_q4_K_q8_K(q4, q8, N) == 0.0f && mr_dot_q6_K_q8_K(q6, q8, N) == 0.0f);
    block_q5_K q5[NB];
    memset(q5, 0xa5, sizeof q5);
    mr_quantize_row_q5_K(z, q5, N);
    ck_assert(all_bytes_zero(q5, sizeof q5));
    mr_dequantize_row_q5_K(q5, back, N);
    for (int i = 0; i < N; i++)
        ck_assert(back[i] == 0.0f);
    ck_assert(mr_dot_q5_K_f32(q5, ones, N) == 0.0f && mr_dot_q5_K_q8_K(q5, q8, N) == 0.0f);
}
END_TEST

/* Zero and vanishing sub-blocks next to ordinary ones: zero sub-blocks
 * decode to exact zeros; sub-blocks far below the block's scale (their
 * 6-bit or int8 scale rounds to 0, the path where ggml keeps the quants of
 * the fit) and values below ggml's 1e-15 group threshold give no NaN. */
START_TEST(zero_and_tiny_sub_blocks)
{
    static float x[QK_K], back[QK_K];
    block_q4_K q4;
    block_q6_K q6;
    block_q8_K q8;
    seed(7000, "tiny sub-blocks");
    for (int i = 0; i < QK_K; i++) {
        const int sub = i / 32;
        x[i] = sub == 0 || sub == 5 ? 0.0f : sub == 2 ? 1e-9f * rng_float()
               : sub == 3                ? 1e-30f * rng_float()
                                         : rng_float();
    }
    mr_quantize_row_q4_K(x, &q4, QK_K);
    mr_dequantize_row_q4_K(&q4, back, QK_K);
    for (int i = 0; i < QK_K; i++) {
        ck_assert(!isnan(back[i]) && !isinf(back[i]));
        if (i / 32 == 0 || i / 32 == 5)
            ck_assert(back[i] == 0.0f);
        if (i / 32 == 2 || i / 32 == 3)
            ck_assert(fabsf(back[i]) < 1e-2f);
    }
    mr_quantize_row_q6_K(x, &q6, QK_K);
    mr_dequantize_row_q6_K(&q6, back, QK_K);
    for (int i = 0; i < QK_K; i++) {
        ck_assert(!isnan(back[i]) && !isinf(back[i]));
        if (i / 32 == 0 || i / 32 == 5)
            ck_assert(back[i] == 0.0f);
    }
    /* a whole block below the threshold is Q6_K's zero block */
    for (int i = 0; i < QK_K; i++)
        x[i] = 1e-16f * rng_float();
    mr_quantize_row_q6_K(x, &q6, QK_K);
    ck_assert(all_bytes_zero(&q6, sizeof q6));
    mr_quantize_row_q4_K(x, &q4, QK_K);
    mr_dequantize_row_q4_K(&q4, back, QK_K);
    for (int i = 0; i < QK_K; i++)
        ck_assert(back[i] == 0.0f); /* d and dmin underflow to 0 in f16 */
    /* subnormal activations: 127 / max overflows to inf, d becomes -0 */
    for (int i = 0; i < QK_K; i++)
        x[i] = 1e-40f * rng_float();
    mr_quantize_row_q8_K(x, &q8, QK_K);
    mr_dequantize_row_q8_K(&q8, back, QK_K);
    for (int i = 0; i < QK_K; i++)
        ck_assert(!isnan(back[i]) && back[i] == 0.0f);
}
END_TEST

/* Weights at +-1000: every format uses the ends of its range exactly. */
START_TEST(extreme_values)
{
    static float x[QK_K], back[QK_K];
    block_q4_K q4;
    block_q6_K q6;
    block_q8_K q8;
    for (int i = 0; i < QK_K; i++)
        x[i] = (i & 1) ? -1000.0f : 1000.0f;

    /* Q4_K: two values fit exactly on many grids (15 levels apart, or 14,
     * ...), and which exact fit wins depends on rounding noise: ggml (and
     * so moerun) ends up 14 levels apart here.  Either way -1000 is the
     * min, nibble 0, and both come back within f16's rounding of d, dmin. */
    mr_quantize_row_q4_K(x, &q4, QK_K);
    for (int i = 0; i < QK_K / 2; i++) {
        const int lo = q4.qs[i] & 15, hi = q4.qs[i] >> 4;
        ck_assert_msg(hi == lo && (i & 1 ? lo == 0 : lo >= 14), "qs[%d] = 0x%02x", i, q4.qs[i]);
    }
    mr_dequantize_row_q4_K(&q4, back, QK_K);
    for (int i = 0; i < QK_K; i++)
        ck_assert_msg(fabsf(back[i] - x[i]) <= 2.0f, "%d: %g", i, back[i]);
    /* a 16-level ramp from -1000 to 1000 has one good grid: nibble = level */
    static float ramp[QK_K];
    for (int i = 0; i < QK_K; i++)
        ramp[i] = -1000.0f + (float)(i % 16) * (2000.0f / 15.0f);
    mr_quantize_row_q4_K(ramp, &q4, QK_K);
    for (int i = 0; i < QK_K / 2; i++)
        ck_assert_msg(q4.qs[i] == ((i % 16) | (i % 16) << 4), "ramp qs[%d] = 0x%02x", i,
                      q4.qs[i]);
    mr_dequantize_row_q4_K(&q4, back, QK_K);
    for (int i = 0; i < QK_K; i++)
        ck_assert_msg(fabsf(back[i] - ramp[i]) <= 2.0f, "ramp %d: %g", i, back[i]);

    /* Q6_K: the first grid maps 1000 to -32 and clips -1000 to 31; the grid
     * tried with is = -9, (32 - 0.9) / 1000, maps them to -31 and 31, an
     * exact fit, and nothing beats it: q = 32 - 31 and 32 + 31. */
    mr_quantize_row_q6_K(x, &q6, QK_K);
    mr_dequantize_row_q6_K(&q6, back, QK_K);
    for (int i = 0; i < QK_K; i++)
        ck_assert_msg(fabsf(back[i] - x[i]) <= 2.0f, "%d: %g", i, back[i]);
    for (int i = 0; i < 128; i++) /* q 1 = 0b000001, q 63 = 0b111111 */
        ck_assert_msg(q6.ql[i] == ((i & 1) ? 0xff : 0x11), "ql[%d] = 0x%02x", i, q6.ql[i]);
    for (int i = 0; i < 64; i++)
        ck_assert_msg(q6.qh[i] == ((i & 1) ? 0xff : 0x00), "qh[%d] = 0x%02x", i, q6.qh[i]);

    /* Q8_K: 1000 (the first largest) -> -127, -1000 -> 127 */
    mr_quantize_row_q8_K(x, &q8, QK_K);
    for (int i = 0; i < QK_K; i++)
        ck_assert_int_eq(q8.qs[i], (i & 1) ? 127 : -127);
    ck_assert(q8.d == 1.0f / (-127.0f / 1000.0f));
    for (int g = 0; g < 16; g++)
        ck_assert_int_eq(q8.bsums[g], 0);
}
END_TEST

/* ---- known answers worked out by hand ---- */

/* round(t / 2), ties to even, in integers */
static int half_even(int t)
{
    const int f = (t >= 0 ? t : t - 1) / 2; /* floor(t / 2) */
    if (t % 2 == 0)
        return t / 2;
    return f % 2 == 0 ? f : f + 1;
}

/* Q8_K, x[0] = 254 and x[j] = j - 128: the largest magnitude is 254, so
 * iscale = -127 / 254 = -0.5 exactly and d = 1 / iscale = -2.  Then
 * q[j] = nearest(-(j - 128) / 2) with ties to even, as ggml's nearest_int
 * rounds: x = -127 gives 63.5 -> 64, x = -125 gives 62.5 -> 62 (roundf
 * would say 63), x = 127 gives -63.5 -> -64; x = 254 gives -127. */
START_TEST(q8_K_known_block)
{
    static float x[QK_K];
    block_q8_K q;
    q8k_hand_fill(x);
    mr_quantize_row_q8_K(x, &q, QK_K);
    ck_assert(q.d == -2.0f);
    ck_assert_int_eq(q.qs[0], -127);
    for (int j = 1; j < QK_K; j++)
        ck_assert_msg(q.qs[j] == half_even(-(j - 128)), "qs[%d] = %d", j, q.qs[j]);
    ck_assert_int_eq(q.qs[1], 64);
    ck_assert_int_eq(q.qs[3], 62);
    ck_assert_int_eq(q.qs[255], -64);
    for (int g = 0; g < 16; g++) {
        int s = 0;
        for (int i = 0; i < 16; i++)
            s += g * 16 + i == 0 ? -127 : half_even(-(g * 16 + i - 128));
        ck_assert_int_eq(q.bsums[g], s);
    }
}
END_TEST

/* Q4_K.  Sub-block j holds x = s (l - 8) with s = 2^-k, k = 3,4,5,6,0,1,2,0
 * for j = 0..7, and l = (7i + j) % 16 taking every value in [0, 15].
 *
 * Fit: min = -8s, max = 7s, iscale = 15 / (15s) = 2^k exactly, so the
 * first grid gives L = l, scale = s and an error of exactly 0, which no
 * later grid can beat (the test is strictly-less).  So scale_j = s and
 * the_min_j = 8s; max_scale = 1, max_min = 8.
 * 6-bit: ls = nearest(63 s) and lm = nearest(63/8 * 8s) = the same:
 *   k = 0: 63;  1: 31.5 -> 32;  2: 15.75 -> 16;  3: 7.875 -> 8;
 *   4: 3.9375 -> 4;  5: 1.97 -> 2;  6: 0.98 -> 1.
 * Packing, j = 0..7 -> ls = lm = 8, 4, 2, 1, 63, 32, 16, 63:
 *   scales[0..3] = ls[0..3] | (ls[4..7] >> 4) << 6 = c8 84 42 c1
 *   scales[4..7] = lm[0..3] | (lm[4..7] >> 4) << 6 = c8 84 42 c1
 *   scales[8..11] = ls[4..7] & 15 | (lm[4..7] & 15) << 4 = ff 00 00 ff
 * d = f16(1/63): 1/63 = 2^-6 * 1.01587, mantissa 0.01587 * 1024 = 16.25
 * -> 16, so 0x2410 = 2^-6 * 1.015625; dmin = f16(8/63) = 0x3010 likewise.
 * Requantize: d_j = d * ls, dm_j = dmin * lm.  For k = 0, d_j = 4095/4096
 * and dm_j = 8 * 4095/4096, so (x + dm_j) / d_j = l - 2^-9 / (4095/4096)
 * -> l.  For k >= 1, d_j = s * 65/64 and dm_j = 8s * 65/64, so
 * (x + dm_j) / d_j = (l + 1/8) / (65/64), within 0.13 of l -> l.
 * So qs[32c + i] = l(2c, i) | l(2c + 1, i) << 4, and the block decodes to
 * x * 4095/4096 (k = 0) or x * 65/64 (k >= 1), all exact in float.
 * (tests/oracle confirmed these 144 bytes against ggml.) */
START_TEST(q4_K_known_block)
{
    static float x[QK_K], back[QK_K];
    block_q4_K q;
    q4k_hand_fill(x);
    mr_quantize_row_q4_K(x, &q, QK_K);
    static const uint8_t scales[12] = {0xc8, 0x84, 0x42, 0xc1, 0xc8, 0x84,
                                       0x42, 0xc1, 0xff, 0x00, 0x00, 0xff};
    ck_assert_uint_eq(q.d, 0x2410);
    ck_assert_uint_eq(q.dmin, 0x3010);
    for (int i = 0; i < 12; i++)
        ck_assert_msg(q.scales[i] == scales[i], "scales[%d] = 0x%02x", i, q.scales[i]);
    for (int c = 0; c < 4; c++) {
        for (int i = 0; i < 32; i++) {
            const int want = q4k_hand_l(2 * c, i) | q4k_hand_l(2 * c + 1, i) << 4;
            ck_assert_msg(q.qs[32 * c + i] == want, "qs[%d] = 0x%02x, want 0x%02x", 32 * c + i,
                          q.qs[32 * c + i], want);
        }
    }
    mr_dequantize_row_q4_K(&q, back, QK_K);
    for (int i = 0; i < QK_K; i++) {
        const float f = q4k_hand_k[i / 32] == 0 ? 4095.0f / 4096.0f : 65.0f / 64.0f;
        ck_assert_msg(back[i] == x[i] * f, "%d: %a vs %a", i, back[i], x[i] * f);
    }
}
END_TEST

/* Q6_K.  Every sub-block of 16 holds 32 at weight 0 and integers v in
 * [-31, 31] elsewhere.  Fit: max = 32, iscale = -32/32 = -1, so the first
 * grid gives l = -v exactly (32 -> -32, the end of [-32, 31]).  With
 * weights x^2, sumlx = -sum v^4 and suml2 = sum v^4 (at most 32^4 +
 * 15 * 31^4 < 2^24, so every partial sum is exact): scale = -1, a fit with
 * zero error.  A later grid wins only if strictly better, which an exact
 * fit cannot be beaten by.  So all 16 scales
 * are -1: max_scale = -1 (the first), iscale = -128 / -1 = 128,
 * d = f16(1/128) = 0x2000, scales[j] = nearest(128 * -1) = -128 (0x80).
 * Requantize: d_j = 2^-7 * -128 = -1, q = nearest(x / -1) + 32 = 32 - v,
 * so q is 0 for the 32s and 1 .. 63 elsewhere, and the block decodes to
 * d * -128 * (q - 32) = v: exactly the input.  The 6-bit q is checked
 * against the layout as ggml's dequantize_row_q6_K reads it.
 * (tests/oracle confirmed these 210 bytes against ggml.) */
START_TEST(q6_K_known_block)
{
    static float x[QK_K], back[QK_K];
    block_q6_K q;
    q6k_hand_fill(x);
    mr_quantize_row_q6_K(x, &q, QK_K);
    ck_assert_uint_eq(q.d, 0x2000);
    for (int j = 0; j < 16; j++)
        ck_assert_int_eq(q.scales[j], -128);
    for (int e = 0; e < QK_K; e++) {
        /* half h = e / 128; within it, quarter g = (e % 128) / 32 takes
         * the low (g < 2) or high nibble of ql[64h + 32(g & 1) + l] and
         * bits 2g, 2g + 1 of qh[32h + l], l = e % 32 */
        const int h = e / 128, g = (e % 128) / 32, l = e % 32;
        const int byte = q.ql[64 * h + 32 * (g % 2) + l];
        const int lo4 = g < 2 ? byte & 15 : byte >> 4;
        const int hi2 = (q.qh[32 * h + l] >> (2 * g)) & 3;
        const int want = 32 - q6k_hand_v(e / 16, e % 16);
        ck_assert_msg((lo4 | hi2 << 4) == want, "weight %d: q %d, want %d", e, lo4 | hi2 << 4,
                      want);
    }
    mr_dequantize_row_q6_K(&q, back, QK_K);
    for (int i = 0; i < QK_K; i++)
        ck_assert_msg(back[i] == x[i], "%d: %g vs %g", i, back[i], x[i]);
}
END_TEST

/* ---- known answers from ggml itself ----
 *
 * For each input shape of kquant_cases.h (8 blocks, seed 0x5eed0000 +
 * shape): FNV-1a of the Q4_K, Q6_K and Q8_K bytes ggml's
 * quantize_row_q*_K_ref wrote, and the float bits of
 * ggml_vec_dot_q4_K_q8_K_generic / _q6_K_ against activations of seed
 * ^ 0xac quantized to Q8_K.  Printed by tests/oracle/ggml_kquant_oracle.c
 * from ggml's own libraries (see there); moerun was not involved. */
static const struct {
    uint64_t q4_K, q6_K, q8_K;
    uint32_t dot_q4_K, dot_q6_K;
} ggml_digests[KQ_N_SHAPES] = {
    {0xea3ce9978b90d8a7ull, 0x3f22532d89e22824ull, 0x2bb0b05760bbc82cull, 0xc2e3497au, 0xc2e7ad96u},
    {0x131b998f9ec5b9e6ull, 0xfdd8da4cf8f1e2a5ull, 0xb3cab4c4ac6a64b9ull, 0xbf3a6440u, 0x42258459u},
    {0x3122499a6ae2dd01ull, 0x296f58ea92d440abull, 0xb59f9b2e4a3bb515ull, 0xc2aa36e5u, 0xc2b4b949u},
    {0x7313079ebe23a174ull, 0x4e8d9f0ccb0d1034ull, 0x76598bdb57e2d153ull, 0x42babd96u, 0x42b76cbeu},
    {0x8b76c53b0c8c66c8ull, 0xd6360188276ffe67ull, 0xd0813ac717b3844eull, 0x423b5956u, 0x426a56a6u},
    {0xc5a98564bc0744d0ull, 0xf71880eecdda9505ull, 0x26e942e8959bcb9aull, 0x43654410u, 0x4365631cu},
    {0x65b7e160f1febf72ull, 0xd2bda75c6b09c19cull, 0x1ae3f10097a9c9e4ull, 0xc3f49277u, 0xc3e59b58u},
};

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

START_TEST(bit_exact_with_ggml)
{
    const int shape = _i;
    const uint64_t s = 0x5eed0000u + (uint64_t)shape;
    printf("ggml digests, %s: seed %llu\n", kq_shape_name(shape), (unsigned long long)s);
    static float x[KQ_ROW], a[KQ_ROW];
    static block_q4_K q4[KQ_ROW_BLOCKS];
    static block_q6_K q6[KQ_ROW_BLOCKS];
    static block_q8_K q8[KQ_ROW_BLOCKS], a8[KQ_ROW_BLOCKS];
    kq_fill(shape, s, x, KQ_ROW);
    kq_fill_activations(s ^ 0xacu, a, KQ_ROW);
    mr_quantize_row_q4_K(x, q4, KQ_ROW);
    mr_quantize_row_q6_K(x, q6, KQ_ROW);
    mr_quantize_row_q8_K(x, q8, KQ_ROW);
    mr_quantize_row_q8_K(a, a8, KQ_ROW);
    ck_assert_msg(kq_fnv1a(q4, sizeof q4) == ggml_digests[shape].q4_K, "%s: q4_K 0x%016llx",
                  kq_shape_name(shape), (unsigned long long)kq_fnv1a(q4, sizeof q4));
    ck_assert_msg(kq_fnv1a(q6, sizeof q6) == ggml_digests[shape].q6_K, "%s: q6_K 0x%016llx",
                  kq_shape_name(shape), (unsigned long long)kq_fnv1a(q6, sizeof q6));
    ck_assert_msg(kq_fnv1a(q8, sizeof q8) == ggml_digests[shape].q8_K, "%s: q8_K 0x%016llx",
                  kq_shape_name(shape), (unsigned long long)kq_fnv1a(q8, sizeof q8));
    const float d4 = mr_dot_q4_K_q8_K(q4, a8, KQ_ROW), d6 = mr_dot_q6_K_q8_K(q6, a8, KQ_ROW);
    ck_assert_msg(f32_bits(d4) == ggml_digests[shape].dot_q4_K, "%s: q4_K.q8_K %a (0x%08x)",
                  kq_shape_name(shape), d4, f32_bits(d4));
    ck_assert_msg(f32_bits(d6) == ggml_digests[shape].dot_q6_K, "%s: q6_K.q8_K %a (0x%08x)",
                  kq_shape_name(shape), d6, f32_bits(d6));
}
END_TEST

/* Q5_K, the same inputs: FNV-1a of the bytes ggml's quantize_row_q5_K_ref
 * wrote, and the float bits of ggml_vec_dot_q5_K_q8_K_generic.  Printed by
 * tests/oracle/ggml_q5k_oracle.c; that ggml build's dot may fuse
 * multiply-adds, so the dot is held within 1e-5 of its sum of |terms|
 * (and, in practice, a few ulps), the bytes to the bit. */
static const struct {
    uint64_t q5_K;
    uint32_t dot_q5_K;
} ggml_q5_digests[KQ_N_SHAPES] = {
    {0x40598f4fe22c649cull, 0xc2e46678u}, {0x1fcda183b1a1cc70ull, 0x426a7f52u},
    {0x3843741957d3bd69ull, 0xc2ada9f8u}, {0xe57463f7bc1d4e3aull, 0x42b92652u},
    {0xa6336595a3f86b13ull, 0x428f7b2bu}, {0xa769deef76618228ull, 0x43654410u},
    {0x91bd8e03977ce29cull, 0xc3ea9bcfu},
};

START_TEST(q5_K_bit_exact_with_ggml)
{
    const int shape = _i;
    const uint64_t s = 0x5eed0000u + (uint64_t)shape;
    printf("ggml q5_K digests, %s: seed %llu\n", kq_shape_name(shape), (unsigned long long)s);
    static float x[KQ_ROW], a[KQ_ROW], wd[KQ_ROW], ad[KQ_ROW];
    static block_q5_K q5[KQ_ROW_BLOCKS];
    static block_q8_K a8[KQ_ROW_BLOCKS];
    kq_fill(shape, s, x, KQ_ROW);
    kq_fill_activations(s ^ 0xacu, a, KQ_ROW);
    mr_quantize_row_q5_K(x, q5, KQ_ROW);
    mr_quantize_row_q8_K(a, a8, KQ_ROW);
    ck_assert_msg(kq_fnv1a(q5, sizeof q5) == ggml_q5_digests[shape].q5_K, "%s: q5_K 0x%016llx",
                  kq_shape_name(shape), (unsigned long long)kq_fnv1a(q5, sizeof q5));
    const float d5 = mr_dot_q5_K_q8_K(q5, a8, KQ_ROW);
    float g5;
    memcpy(&g5, &ggml_q5_digests[shape].dot_q5_K, 4);
    mr_dequantize_row_q5_K(q5, wd, KQ_ROW);
    mr_dequantize_row_q8_K(a8, ad, KQ_ROW);
    ck_assert_msg(fabs((double)d5 - g5) <= 1e-5 * abs_dot64(wd, ad, KQ_ROW),
                  "%s: q5_K.q8_K %.9g, ggml %.9g", kq_shape_name(shape), d5, g5);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("quant_k");
    TCase *tc = tcase_create("reference");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, layouts_and_type_table);
    tcase_add_loop_test(tc, q4_K_round_trip, 0, N_COUNTS);
    tcase_add_loop_test(tc, q5_K_round_trip, 0, N_COUNTS);
    tcase_add_loop_test(tc, q6_K_round_trip, 0, N_COUNTS);
    tcase_add_loop_test(tc, q8_K_round_trip_and_bsums, 0, N_COUNTS);
    tcase_add_loop_test(tc, dots_match_float64, 0, N_COUNTS);
    tcase_add_test(tc, zero_blocks);
    tcase_add_test(tc, zero_and_tiny_sub_blocks);
    tcase_add_test(tc, extreme_values);
    tcase_add_test(tc, q8_K_known_block);
    tcase_add_test(tc, q4_K_known_block);
    tcase_add_test(tc, q6_K_known_block);
    tcase_add_loop_test(tc, bit_exact_with_ggml, 0, KQ_N_SHAPES);
    tcase_add_loop_test(tc, q5_K_bit_exact_with_ggml, 0, KQ_N_SHAPES);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
