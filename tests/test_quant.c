/* test_quant.c - the scalar reference block formats: conversions, quantize
 * / dequantize round trips, and every dot product against a float64 dot of
 * the dequantised values.  Random inputs print their seed. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "types.h"

static uint64_t rng_state;

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* uniform in [-1, 1) */
static float rng_float(void)
{
    return (float)((double)(rng_next() >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static void seed(uint64_t s, const char *what)
{
    rng_state = s;
    printf("%s: seed %llu\n", what, (unsigned long long)s);
}

static float bits_to_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

START_TEST(f16_round_trips_every_half)
{
    for (uint32_t h = 0; h < 65536; h++) {
        float f = mr_f16_to_f32((uint16_t)h);
        if (isnan(f)) {
            ck_assert(isnan(mr_f16_to_f32(mr_f32_to_f16(f))));
            continue;
        }
        ck_assert_msg(mr_f32_to_f16(f) == h, "half 0x%04x -> %g -> 0x%04x", h, f,
                      mr_f32_to_f16(f));
    }
}
END_TEST

START_TEST(f16_rounds_to_nearest_even)
{
    /* edge cases with known answers */
    ck_assert_uint_eq(mr_f32_to_f16(65504.0f), 0x7bff);
    ck_assert_uint_eq(mr_f32_to_f16(65519.0f), 0x7bff);  /* below the halfway point */
    ck_assert_uint_eq(mr_f32_to_f16(65520.0f), 0x7c00);  /* halfway, rounds to inf */
    ck_assert_uint_eq(mr_f32_to_f16(-1e9f), 0xfc00);
    ck_assert_uint_eq(mr_f32_to_f16(1.0f + 1.0f / 2048), 0x3c00); /* tie -> even */
    ck_assert_uint_eq(mr_f32_to_f16(1.0f + 3.0f / 2048), 0x3c02); /* tie -> even (up) */
    ck_assert_uint_eq(mr_f32_to_f16(bits_to_f32(0x33000000)), 0x0000); /* 2^-25: tie -> 0 */
    ck_assert_uint_eq(mr_f32_to_f16(bits_to_f32(0x33000001)), 0x0001);
    ck_assert_uint_eq(mr_f32_to_f16(-0.0f), 0x8000);
    ck_assert_uint_eq(mr_f32_to_f16(6.1035156e-05f), 0x0400); /* smallest normal */
#if defined(__FLT16_MAX__)
    /* against the compiler's own conversion (round to nearest even) */
    seed(12345, "f16 vs _Float16");
    for (int i = 0; i < 1000000; i++) {
        uint32_t u = (uint32_t)rng_next();
        float f = bits_to_f32(u);
        if (isnan(f))
            continue;
        _Float16 h = (_Float16)f;
        uint16_t hb;
        memcpy(&hb, &h, 2);
        ck_assert_msg(mr_f32_to_f16(f) == hb, "%a: 0x%04x vs 0x%04x", f, mr_f32_to_f16(f), hb);
    }
#endif
}
END_TEST

START_TEST(bf16_rounds_and_keeps_nans)
{
    ck_assert_uint_eq(mr_f32_to_bf16(1.0f), 0x3f80);
    ck_assert_uint_eq(mr_f32_to_bf16(bits_to_f32(0x3f808000)), 0x3f80); /* tie -> even */
    ck_assert_uint_eq(mr_f32_to_bf16(bits_to_f32(0x3f818000)), 0x3f82); /* tie -> even */
    ck_assert_uint_eq(mr_f32_to_bf16(bits_to_f32(0x3f808001)), 0x3f81);
    ck_assert(isnan(mr_bf16_to_f32(mr_f32_to_bf16(bits_to_f32(0x7f800001)))));
    for (uint32_t h = 0; h < 65536; h++) {
        float f = mr_bf16_to_f32((uint16_t)h);
        if (!isnan(f))
            ck_assert_uint_eq(mr_f32_to_bf16(f), h);
    }
}
END_TEST

static const int block_counts[] = {1, 2, 3, 5, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65};
#define N_COUNTS (int)(sizeof block_counts / sizeof block_counts[0])

/* float64 dot of two f32 arrays */
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

/* For each computable type: quantize random rows, check the round-trip
 * error bound, and check dot_f32 against float64 on the dequantised row. */
START_TEST(quantize_dequantize_and_dot)
{
    const uint32_t types[] = {MR_TYPE_F32, MR_TYPE_F16, MR_TYPE_BF16, MR_TYPE_Q8_0, MR_TYPE_Q4_0};
    seed(1000 + (uint64_t)_i, "round trip");
    const int64_t n = (int64_t)block_counts[_i] * 32;
    float *x = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n);
    float *back = malloc(sizeof(float) * n);
    void *q = malloc((size_t)n * 4);
    for (int64_t i = 0; i < n; i++) {
        x[i] = rng_float() * 3.0f;
        y[i] = rng_float();
    }
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const mr_type_traits *tt = mr_type_get(types[ti]);
        tt->from_f32(x, q, n);
        tt->to_f32(q, back, n);
        for (int64_t b = 0; b < n / 32; b++) {
            float amax = 0.0f;
            for (int j = 0; j < 32; j++)
                amax = fmaxf(amax, fabsf(x[b * 32 + j]));
            /* step of the format in this block: Q8_0 amax/127, Q4_0 amax/8
             * (and one step at the clamped end), float types relative */
            double bound = types[ti] == MR_TYPE_Q8_0   ? amax / 127.0 * 0.5 + amax * 1e-3
                           : types[ti] == MR_TYPE_Q4_0 ? amax / 8.0 * 1.0 + amax * 1e-3
                           : types[ti] == MR_TYPE_F32  ? 0.0
                           : types[ti] == MR_TYPE_F16  ? amax * 1e-3
                                                       : amax * 8e-3;
            for (int j = 0; j < 32; j++)
                ck_assert_msg(fabs((double)back[b * 32 + j] - x[b * 32 + j]) <= bound,
                              "%s block %lld elem %d: %g -> %g", tt->name, (long long)b, j,
                              x[b * 32 + j], back[b * 32 + j]);
        }
        double want = dot64(back, y, n), scale = abs_dot64(back, y, n);
        double got = tt->dot_f32(q, y, n);
        ck_assert_msg(fabs(got - want) <= 1e-5 * scale + 1e-6, "%s dot n=%lld: %g vs %g",
                      tt->name, (long long)n, got, want);
    }
    free(x);
    free(y);
    free(back);
    free(q);
}
END_TEST

/* The integer dots against Q8_0-quantized activations equal float64 dots
 * of the dequantised operands. */
START_TEST(integer_dots_match_dequantized)
{
    seed(2000 + (uint64_t)_i, "integer dots");
    const int64_t n = (int64_t)block_counts[_i] * 32;
    float *w = malloc(sizeof(float) * n), *x = malloc(sizeof(float) * n);
    float *wd = malloc(sizeof(float) * n), *xd = malloc(sizeof(float) * n);
    block_q8_0 *xq = malloc(sizeof(block_q8_0) * (size_t)(n / 32));
    block_q8_0 *w8 = malloc(sizeof(block_q8_0) * (size_t)(n / 32));
    block_q4_0 *w4 = malloc(sizeof(block_q4_0) * (size_t)(n / 32));
    for (int64_t i = 0; i < n; i++) {
        w[i] = rng_float();
        x[i] = rng_float() * 10.0f;
    }
    mr_quantize_row_q8_0(x, xq, n);
    mr_dequantize_row_q8_0(xq, xd, n);

    mr_quantize_row_q8_0(w, w8, n);
    mr_dequantize_row_q8_0(w8, wd, n);
    double want = dot64(wd, xd, n), scale = abs_dot64(wd, xd, n);
    ck_assert(fabs(mr_dot_q8_0_q8_0(w8, xq, n) - want) <= 1e-5 * scale + 1e-6);

    mr_quantize_row_q4_0(w, w4, n);
    mr_dequantize_row_q4_0(w4, wd, n);
    want = dot64(wd, xd, n);
    scale = abs_dot64(wd, xd, n);
    ck_assert(fabs(mr_dot_q4_0_q8_0(w4, xq, n) - want) <= 1e-5 * scale + 1e-6);
    free(w);
    free(x);
    free(wd);
    free(xd);
    free(xq);
    free(w8);
    free(w4);
}
END_TEST

START_TEST(zero_and_extreme_blocks)
{
    float z[32] = {0}, back[32];
    block_q8_0 q8;
    block_q4_0 q4;
    mr_quantize_row_q8_0(z, &q8, 32);
    ck_assert_uint_eq(q8.d, 0);
    for (int j = 0; j < 32; j++)
        ck_assert_int_eq(q8.qs[j], 0);
    mr_dequantize_row_q8_0(&q8, back, 32);
    for (int j = 0; j < 32; j++)
        ck_assert(back[j] == 0.0f);
    mr_quantize_row_q4_0(z, &q4, 32);
    mr_dequantize_row_q4_0(&q4, back, 32);
    for (int j = 0; j < 32; j++)
        ck_assert(back[j] == 0.0f && !signbit(back[j] * 0.0f + 0.0f));

    /* +-127 and nibbles 0 / 15 */
    float e[32];
    for (int j = 0; j < 32; j++)
        e[j] = (j & 1) ? -1000.0f : 1000.0f;
    mr_quantize_row_q8_0(e, &q8, 32);
    for (int j = 0; j < 32; j++)
        ck_assert_int_eq(q8.qs[j], (j & 1) ? -127 : 127);
    for (int j = 0; j < 32; j++)
        e[j] = (j < 16) ? -8.0f : 7.0f; /* largest magnitude is negative: d = 1 */
    mr_quantize_row_q4_0(e, &q4, 32);
    ck_assert(mr_f16_to_f32(q4.d) == 1.0f);
    for (int j = 0; j < 16; j++)
        ck_assert_uint_eq(q4.qs[j], 0x0 | (15 << 4));
    mr_dequantize_row_q4_0(&q4, back, 32);
    for (int j = 0; j < 32; j++)
        ck_assert(back[j] == e[j]);
}
END_TEST

START_TEST(type_table_geometry)
{
    ck_assert_uint_eq(mr_type_row_bytes(MR_TYPE_Q8_0, 256), 8 * 34);
    ck_assert_uint_eq(mr_type_row_bytes(MR_TYPE_Q4_0, 256), 8 * 18);
    ck_assert_uint_eq(mr_type_row_bytes(MR_TYPE_Q4_0, 250), 0); /* not whole blocks */
    ck_assert_uint_eq(mr_type_row_bytes(MR_TYPE_BF16, 3), 6);
    ck_assert_uint_eq(mr_type_row_bytes(MR_TYPE_Q6_K, 256), 210);
    ck_assert(!mr_type_known(4) && !mr_type_known(5) && !mr_type_known(99));
    /* known, but an activation format only: no row of weights computes with it */
    ck_assert(mr_type_known(MR_TYPE_Q8_1) && !mr_type_computable(MR_TYPE_Q8_1));
    ck_assert(mr_type_computable(MR_TYPE_Q5_K));
    ck_assert(mr_type_computable(MR_TYPE_Q8_0));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("quant");
    TCase *tc = tcase_create("reference");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, f16_round_trips_every_half);
    tcase_add_test(tc, f16_rounds_to_nearest_even);
    tcase_add_test(tc, bf16_rounds_and_keeps_nans);
    tcase_add_loop_test(tc, quantize_dequantize_and_dot, 0, N_COUNTS);
    tcase_add_loop_test(tc, integer_dots_match_dequantized, 0, N_COUNTS);
    tcase_add_test(tc, zero_and_extreme_blocks);
    tcase_add_test(tc, type_table_geometry);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
