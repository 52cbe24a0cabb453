/* test_quant_iq.c - the i-quants (IQ1_S, IQ1_M, IQ2_XXS, IQ2_XS, IQ2_S,
 * IQ3_XXS, IQ3_S; quant/ref_iq.c): dequantization bit for bit against
 * ggml's (digests printed by tests/oracle/ggml_iq_oracle.c from
 * llama.cpp's libggml-base on the blocks of tests/iq_cases.h: random bytes
 * with finite scales, an all-zero block, a block of maximal scales), the
 * f32 and Q8_K dots against float64 sums of the dequantized values, and
 * each type's place in the type and kernel tables. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iq_cases.h"
#include "kernels.h"
#include "testutil.h"
#include "types.h"
#include "types_iq.h"

/* from tests/oracle/ggml_iq_oracle.c, run on llama.cpp's build (b0, the
 * tree in /work/llama.cpp-src, unslothai/llama.cpp) */
static const struct {
    const char *name;
    uint64_t digest;
} ggml_digests[] = {
    {"iq2_xxs", 0x8265703662363b52ull}, /* y[256] = -2.60351562 */
    {"iq2_xs", 0xc652b072112c16aaull},  /* y[256] = 1.51367188 */
    {"iq3_xxs", 0xfbfe580b895520d7ull}, /* y[256] = 4.359375 */
    {"iq1_s", 0x5a0cd31ab908ee2aull},   /* y[256] = 0.029296875 */
    {"iq3_s", 0xe6b976c773b57793ull},   /* y[256] = 3.390625 */
    {"iq2_s", 0xb76b7378483b0580ull},   /* y[256] = 2.60351562 */
    {"iq1_m", 0x52e20589f73c4d9eull},   /* y[256] = 0.263671875 */
};

static uint8_t blocks[IQ_CASE_BLOCKS * 128];
static float y[IQ_CASE_BLOCKS * 256];

START_TEST(dequantize_matches_ggml)
{
    const unsigned c = (unsigned)_i;
    const mr_type_traits *tt = mr_type_get(iq_cases[c].type);
    ck_assert_uint_eq(tt->type_size, iq_cases[c].bytes);
    ck_assert_uint_eq(tt->block_size, 256);
    ck_assert_ptr_nonnull(tt->to_f32);
    ck_assert_str_eq(ggml_digests[c].name, iq_cases[c].name);
    iq_case_blocks(c, blocks);
    tt->to_f32(blocks, y, IQ_CASE_BLOCKS * 256);
    for (int j = 0; j < 256; j++)
        ck_assert_msg(y[j] == 0.0f, "%s: the all-zero block gives %g at %d", tt->name, y[j], j);
    const uint64_t d = iq_digest(y, IQ_CASE_BLOCKS * 256);
    ck_assert_msg(d == ggml_digests[c].digest,
                  "%s: dequantized digest 0x%016llx, ggml's 0x%016llx (y[256] = %.9g)", tt->name,
                  (unsigned long long)d, (unsigned long long)ggml_digests[c].digest, y[256]);
}
END_TEST

static uint64_t rng = 1;
static float unit(void)
{
    return (float)((double)(iq_case_rng(&rng) >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* sum of w x in float64, and of |w x| in *mag */
static double dot64(const float *w, const float *x, int n, double *mag)
{
    double s = 0;
    *mag = 0;
    for (int j = 0; j < n; j++) {
        s += (double)w[j] * x[j];
        *mag += fabs((double)w[j] * x[j]);
    }
    return s;
}

/* The dots against float64 sums over the dequantized weights: f32
 * activations (the --exact path), and Q8_K activations (the default path,
 * against the dequantized Q8_K values: the same numbers the integer dot
 * multiplies), relative to the sum of |w x|. */
START_TEST(dots_match_float64)
{
    const unsigned c = (unsigned)_i;
    const uint32_t t = iq_cases[c].type;
    const mr_type_traits *tt = mr_type_get(t);
    mr_kernels ks, kx;
    ck_assert(mr_kernels_for_isa(MR_ISA_SCALAR, 0, &ks) && mr_kernels_for_isa(MR_ISA_SCALAR, 1, &kx));
    ck_assert_uint_eq(ks.act_type[t], MR_TYPE_Q8_K);
    ck_assert_uint_eq(kx.act_type[t], MR_TYPE_F32);
    ck_assert_ptr_nonnull(ks.vec_dot[t]);
    iq_case_blocks(c, blocks);
    tt->to_f32(blocks, y, IQ_CASE_BLOCKS * 256);
    enum { NB = 4 }; /* rows of 4 blocks: 1..4, 5..8, ... */
    float x[NB * 256], xd[NB * 256];
    block_q8_K q8[NB];
    rng = 0xd07 + c;
    for (int r = 0; r < IQ_CASE_BLOCKS / NB; r++) {
        for (int j = 0; j < NB * 256; j++)
            x[j] = unit();
        const uint8_t *w = blocks + (size_t)r * NB * iq_cases[c].bytes;
        const float *wf = y + (size_t)r * NB * 256;
        double mag;
        double want = dot64(wf, x, NB * 256, &mag);
        const float got = kx.dot_f32[t](w, x, NB * 256);
        ck_assert_msg(fabs(got - want) <= 1e-5 * mag + 1e-7, "%s row %d: f32 dot %.9g, float64 %.9g",
                      tt->name, r, got, want);
        mr_quantize_row_q8_K(x, q8, NB * 256);
        for (int b = 0; b < NB; b++)
            for (int j = 0; j < 256; j++)
                xd[b * 256 + j] = q8[b].d * (float)q8[b].qs[j];
        want = dot64(wf, xd, NB * 256, &mag);
        const float gq = ks.vec_dot[t](w, q8, NB * 256);
        ck_assert_msg(fabs(gq - want) <= 1e-5 * mag + 1e-7, "%s row %d: Q8_K dot %.9g, float64 %.9g",
                      tt->name, r, gq, want);
    }
}
END_TEST

/* every ISA's table has a dot for each i-quant, with the activation type
 * of the scalar table, and its results are the scalar reference's bit for
 * bit (the SIMD kernels keep the reference's integer sums and float
 * order), on every case block and at unaligned addresses: weights at any
 * even offset (the blocks hold 16-bit fields and every row of them is an
 * even number of bytes, so rows in a file or a pager slot are 2-aligned),
 * activations at any multiple of 4 (Q8_K starts with a float) */
START_TEST(every_isa_computes_them)
{
    mr_kernels ref;
    ck_assert(mr_kernels_for_isa(MR_ISA_SCALAR, 0, &ref));
    enum { NB = 4 };
    static _Alignas(64) uint8_t wbuf[NB * 128 + 64], abuf[NB * sizeof(block_q8_K) + 64];
    float x[NB * 256];
    int compared[MR_ISA_COUNT] = {0};
    for (int isa = 0; isa < MR_ISA_COUNT; isa++) {
        mr_kernels k;
        if (!mr_kernels_for_isa((mr_isa)isa, 0, &k))
            continue;
        for (unsigned c = 0; c < N_IQ_CASES; c++) {
            const uint32_t t = iq_cases[c].type;
            ck_assert_msg(k.vec_dot[t] != NULL, "%s: no %s dot", mr_isa_name((mr_isa)isa),
                          iq_cases[c].name);
            ck_assert_uint_eq(k.act_type[t], MR_TYPE_Q8_K);
            /* every SIMD table has its own kernel for each of them */
            ck_assert_msg(isa == MR_ISA_SCALAR || k.vec_dot[t] != ref.vec_dot[t],
                          "%s: the %s dot is the scalar reference", mr_isa_name((mr_isa)isa),
                          iq_cases[c].name);
            if (k.vec_dot[t] == ref.vec_dot[t])
                continue;
            compared[isa]++;
            iq_case_blocks(c, blocks);
            rng = 0x5eed + c;
            for (int r = 0; r < IQ_CASE_BLOCKS / NB; r++) {
                const int wo = 2 * (r % 7), ao = 4 * ((3 * r) % 5);
                memcpy(wbuf + wo, blocks + (size_t)r * NB * iq_cases[c].bytes,
                       NB * iq_cases[c].bytes);
                for (int j = 0; j < NB * 256; j++)
                    x[j] = unit() * (r % 3 ? 1.0f : 1e3f);
                block_q8_K q8[NB];
                mr_quantize_row_q8_K(x, q8, NB * 256);
                memcpy(abuf + ao, q8, sizeof q8);
                const float want = ref.vec_dot[t](wbuf + wo, abuf + ao, NB * 256);
                const float got = k.vec_dot[t](wbuf + wo, abuf + ao, NB * 256);
                ck_assert_msg(!memcmp(&want, &got, sizeof got), "%s %s row %d: %.9g, scalar %.9g",
                              mr_isa_name((mr_isa)isa), iq_cases[c].name, r, got, want);
            }
        }
    }
    /* what was compared, for the log (.ci/cross-arm64 shows it) */
    printf("i-quant dots vs scalar, bit for bit:");
    for (int isa = 1; isa < MR_ISA_COUNT; isa++)
        if (compared[isa])
            printf(" %s (%d types)", mr_isa_name((mr_isa)isa), compared[isa]);
    printf("\n");
    ck_assert(mr_type_computable(MR_TYPE_IQ1_S));
    ck_assert_ptr_null(mr_type_get(MR_TYPE_IQ1_S)->from_f32); /* read, never written */
}
END_TEST

int main(void)
{
    Suite *s = suite_create("quant_iq");
    TCase *tc = tcase_create("iq");
    tcase_add_loop_test(tc, dequantize_matches_ggml, 0, (int)N_IQ_CASES);
    tcase_add_loop_test(tc, dots_match_float64, 0, (int)N_IQ_CASES);
    tcase_add_test(tc, every_isa_computes_them);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
