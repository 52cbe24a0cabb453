/* test_quantize_act.c - every ISA's activation quantizers (quantize_act:
 * f32 row -> Q8_0, Q8_1, Q8_K) against the scalar references
 * (mr_quantize_row_q8_0, _q8_1, _q8_K), byte for byte.
 *
 * Bit-identity is the contract, not closeness: simd/autotune.c may take
 * one type's dots from one ISA and the activations' quantizer from
 * another, and the logits of every candidate must stay the same bits.
 * Rows: random, all zero (+0 and -0), one huge value among small ones,
 * negative only, every value on a rounding tie (roundf's halves away from
 * zero for Q8_0/Q8_1, nearest-even for Q8_K), the largest |x| held by
 * several elements of both signs (Q8_K keeps the first), tiny values (the
 * f16 scale underflows), and values spanning many octaves; lengths of 1..8
 * blocks and 17.  Input and output end at a guard page; seeds are printed.
 * NaN rows are left out: the references convert NaN to int8, which C
 * leaves undefined. */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel_harness.h"
#include "kernels.h"

static const int block_counts[] = {1, 2, 3, 4, 5, 6, 7, 8, 17};
#define N_COUNTS (int)(sizeof block_counts / sizeof block_counts[0])
#define N_MODES 8

static mr_kernels ref;
static mr_isa isas[MR_ISA_COUNT];
static int n_isas;

/* Table idx: each ISA's own (idx < n_isas), then the one in use. */
static int get_table(int idx, mr_kernels *k)
{
    if (idx < n_isas)
        return mr_kernels_for_isa(isas[idx], 0, k);
    *k = *mr_kernels_get();
    return 1;
}

static const char *table_name(int idx)
{
    return idx < n_isas ? mr_isa_name(isas[idx]) : "chosen";
}

/* A row of n floats by mode (bs = the format's block size):
 *   0 uniform in [-1, 1);  1 zeros of both signs;  2 one huge value
 *   (+-3e38 or +-1e30) per row among values in [-1, 1);  3 negative only;
 *   4 ties: k + 0.5 with one +-127 per 32 (amax 127: Q8_0/Q8_1 d = 1,
 *   Q8_K iscale = +-1, so x * id or iscale * x is exactly k + 0.5);
 *   5 the largest |x| (2.5) at several places per block, both signs;
 *   6 tiny: |x| ~ 1e-38 (d underflows f16, id overflows);
 *   7 magnitudes 2^-60 .. 2^60 mixed.
 * Mode 6 makes id = 1 / d overflow to inf: q = (int8_t) of an infinite or
 * NaN float, which C leaves undefined; the SIMD code copies what the
 * reference compiles to (gcc: the low byte of cvttss2si / fcvtzs). */
static void fill_row(float *x, int64_t n, int64_t bs, int mode)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = rndf();
    switch (mode) {
    case 1:
        for (int64_t i = 0; i < n; i++)
            x[i] = rnd() & 1 ? -0.0f : 0.0f;
        break;
    case 2:
        x[rnd() % (uint64_t)n] = (rnd() & 1 ? -1.0f : 1.0f) * (rnd() & 1 ? 3e38f : 1e30f);
        break;
    case 3:
        for (int64_t i = 0; i < n; i++)
            x[i] = -fabsf(x[i]) - (i % 5 == 0 ? 0.0f : 1e-3f);
        break;
    case 4:
        for (int64_t i = 0; i < n; i++)
            x[i] = (float)((int)(rnd() % 252) - 126) + 0.5f; /* in [-125.5, 125.5] */
        for (int64_t b = 0; b < n / 32; b++)
            x[32 * b + (int64_t)(rnd() % 32)] = rnd() & 1 ? 127.0f : -127.0f;
        break;
    case 5:
        for (int64_t b = 0; b < n / bs; b++)
            for (int r = 0; r < 4; r++)
                x[bs * b + (int64_t)(rnd() % (uint64_t)bs)] = rnd() & 1 ? 2.5f : -2.5f;
        break;
    case 6:
        for (int64_t i = 0; i < n; i++)
            x[i] *= 1e-38f;
        break;
    case 7:
        for (int64_t i = 0; i < n; i++)
            x[i] = ldexpf(x[i], (int)(rnd() % 121) - 60);
        break;
    default:
        break;
    }
}

/* ------------------------------------------------------------ tests */

/* quantize_act[at] of table _i / N_COUNTS against scalar, every mode. */
START_TEST(quantize_act_bit_identical)
{
    const int idx = _i / N_COUNTS;
    const int nb = block_counts[_i % N_COUNTS];
    mr_kernels k;
    ck_assert(get_table(idx, &k));
    for (uint32_t at = 0; at < MR_TYPE_COUNT; at++) {
        if (!ref.quantize_act[at])
            continue;
        ck_assert_msg(k.quantize_act[at] != NULL, "%s has no %s quantizer", table_name(idx),
                      mr_type_get(at)->name);
        const int64_t bs = mr_type_get(at)->block_size, n = (int64_t)nb * bs;
        const size_t bytes = (size_t)mr_type_row_bytes(at, (uint64_t)n);
        guarded xg = guarded_alloc(sizeof(float) * (size_t)n);
        guarded a = guarded_alloc(bytes), b = guarded_alloc(bytes);
        float *x = (float *)xg.p;
        for (int mode = 0; mode < N_MODES; mode++) {
            const uint64_t seed = 4099u * (uint64_t)k.isa + 97u * (uint64_t)nb + 11u * at + (uint64_t)mode;
            rng = seed;
            fill_row(x, n, bs, mode);
            /* both outputs start as different garbage: every byte must be written */
            memset(a.p, 0xa5, bytes);
            memset(b.p, 0x5a, bytes);
            ref.quantize_act[at](x, a.p, n);
            GUARD_KERNEL("%s quantize_act %s blocks %d mode %d seed %llu", table_name(idx),
                         mr_type_get(at)->name, nb, mode, (unsigned long long)seed);
            k.quantize_act[at](x, b.p, n);
            if (memcmp(a.p, b.p, bytes) != 0) {
                size_t off = 0;
                while (a.p[off] == b.p[off])
                    off++;
                ck_abort_msg("%s differs from scalar at byte %zu (block %zu): %02x vs %02x", current, off,
                             off / mr_type_get(at)->type_size, b.p[off], a.p[off]);
            }
        }
        guarded_free(&xg);
        guarded_free(&a);
        guarded_free(&b);
    }
}
END_TEST

/* The references themselves on hand-made rows (so the comparison above
 * has a fixed point): Q8_0/Q8_1 round halves away from zero and keep
 * s = d * sum q; Q8_K maps the first element of largest |x| to -127 and
 * rounds halves to even. */
START_TEST(references_on_known_rows)
{
    float x[256];
    for (int j = 0; j < 32; j++)
        x[j] = (float)(j - 16) + 0.5f; /* -15.5 .. 15.5 */
    x[0] = -127.0f;                   /* amax 127: d = 1 */
    block_q8_1 q1;
    mr_quantize_row_q8_1(x, &q1, 32);
    ck_assert_float_eq(mr_f16_to_f32(q1.d), 1.0f);
    int sum = 0;
    for (int j = 0; j < 32; j++) {
        const int want = j == 0 ? -127 : (j - 16 >= 0 ? j - 16 + 1 : j - 16); /* halves away from 0 */
        ck_assert_int_eq(q1.qs[j], want);
        sum += want;
    }
    ck_assert_float_eq(mr_f16_to_f32(q1.s), (float)sum);

    for (int j = 0; j < 256; j++)
        x[j] = (float)(j % 8) - 3.5f; /* -3.5 .. 3.5 */
    x[10] = 127.0f;                   /* the first of the largest: iscale = -1 */
    x[20] = -127.0f;
    block_q8_K qk;
    mr_quantize_row_q8_K(x, &qk, 256);
    ck_assert_float_eq(qk.d, -1.0f);
    for (int j = 0; j < 256; j++) {
        const int want = j == 10 ? -127 : j == 20 ? 127 : (int)rintf(-x[j]); /* ties to even */
        ck_assert_int_eq(qk.qs[j], want);
    }
    for (int g = 0; g < 16; g++) {
        int s = 0;
        for (int j = 0; j < 16; j++)
            s += qk.qs[16 * g + j];
        ck_assert_int_eq(qk.bsums[g], s);
    }
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("quantize_act");
    mr_kernels_for_isa(MR_ISA_SCALAR, 0, &ref);
    for (int i = 1; i < MR_ISA_COUNT; i++) {
        mr_kernels tmp;
        if (mr_kernels_for_isa((mr_isa)i, 0, &tmp))
            isas[n_isas++] = (mr_isa)i;
    }
    /* what will really be compared: the (ISA, format) pairs whose
     * quantizer is not the scalar one */
    printf("SIMD activation quantizers compared with scalar:");
    int pairs = 0;
    for (int i = 0; i < n_isas; i++) {
        mr_kernels k;
        mr_kernels_for_isa(isas[i], 0, &k);
        for (uint32_t at = 0; at < MR_TYPE_COUNT; at++)
            if (ref.quantize_act[at] && k.quantize_act[at] != ref.quantize_act[at]) {
                printf(" %s:%s", mr_isa_name(isas[i]), mr_type_get(at)->name);
                pairs++;
            }
    }
    printf("%s\n", pairs ? "" : " none (this CPU or build has no SIMD quantizers)");
    TCase *tc = tcase_create("quantize_act");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, references_on_known_rows);
    if (n_isas)
        tcase_add_loop_test(tc, quantize_act_bit_identical, 0, (n_isas + 1) * N_COUNTS);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    guard_signals();
    SRunner *sr = srunner_create(suite());
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    const int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
