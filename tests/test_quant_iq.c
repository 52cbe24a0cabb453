/* test_quant_iq.c - the i-quants (IQ1_S, IQ1_M, IQ2_XXS, IQ2_XS, IQ2_S,
 * IQ3_XXS, IQ3_S; quant/ref_iq.c): dequantization bit for bit against
 * ggml's (digests printed by tests/oracle/ggml_iq_oracle.c from
 * llama.cpp's libggml-base on the blocks of tests/iq_cases.h: random bytes
 * with finite scales, an all-zero block, a block of maximal scales), the
 * f32 and Q8_K dots against float64 sums of the dequantized values, each
 * type's place in the type and kernel tables, and the gemm (rows x tokens)
 * against the dot of the same table bit for bit. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iq_cases.h"
#include "kernel_harness.h"
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

static uint64_t case_rng = 1;
static float unit(void)
{
    return (float)((double)(iq_case_rng(&case_rng) >> 11) / 9007199254740992.0 * 2.0 - 1.0);
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
    case_rng = 0xd07 + c;
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
            case_rng = 0x5eed + c;
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

/* ------------------------------------------------------------ gemm */

enum { G_ROWS = 7, G_TOKS = 129, G_LDY = G_ROWS + 3 };

/* Q8_K activations of nb blocks by kind: 0 quantized random floats of
 * mixed magnitudes, 1 all zero, 2 q = +-127 at random, 3 q = -127 */
static void iq_fill_act(uint8_t *a, int nb, int kind)
{
    if (kind == 0) {
        float x[3 * 256];
        for (int j = 0; j < nb * 256; j++)
            x[j] = rndf() * ((j / 32) % 3 == 0 ? 1e-3f : (j / 32) % 3 == 1 ? 1.0f : 50.0f);
        mr_quantize_row_q8_K(x, a, nb * 256);
        return;
    }
    for (int b = 0; b < nb; b++) {
        block_q8_K q;
        memset(&q, 0, sizeof q);
        if (kind != 1) {
            q.d = 0.001f * (1.0f + rndf() * 0.5f);
            for (int j = 0; j < QK_K; j++)
                q.qs[j] = (int8_t)(kind == 3 || (rnd() & 1) ? -127 : 127);
            for (int g = 0; g < QK_K / 16; g++) {
                int sum = 0;
                for (int j = 0; j < 16; j++)
                    sum += q.qs[16 * g + j];
                q.bsums[g] = (int16_t)sum;
            }
        }
        memcpy(a + (size_t)b * sizeof q, &q, sizeof q);
    }
}

/* Table idx: each ISA's own, then the one in use (start-up measurement
 * picks each type's kernels among the ISAs: simd/autotune.c). */
static int iq_table(int idx, mr_kernels *k, const char **name)
{
    if (idx < MR_ISA_COUNT) {
        *name = mr_isa_name((mr_isa)idx);
        return mr_kernels_for_isa((mr_isa)idx, 0, k);
    }
    *name = "chosen";
    *k = *mr_kernels_get();
    return 1;
}

/* Every table's gemm for each i-quant against its own vec_dot, bit for bit
 * (x86 guarantees decode = prefill): 7 rows (odd; the case blocks with the
 * all-zero and the maximal-scale block, negative scales) of 1 and 3
 * blocks, every token count 1..17 and across the 8-token groups and the
 * 64-token chunks (24, 31..33, 63..65, 127..129), extreme activations in
 * every lane, row ranges [r0, r1) leaving the other rows untouched, a
 * padded ldy; weights and activations end at a guard page.  Wherever a
 * table takes the AVX2 dot, it takes the AVX2 gemm too (the pair). */
START_TEST(gemm_matches_vec_dot)
{
    static const int tok_counts[] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12,  13,  14, 15,
                                     16, 17, 24, 31, 32, 33, 63, 64, 65, 127, 128, 129};
    const int ntc = (int)(sizeof tok_counts / sizeof tok_counts[0]);
    const unsigned c = (unsigned)_i;
    const uint32_t t = iq_cases[c].type;
    const size_t bytes = iq_cases[c].bytes;
    mr_kernels avx2;
    const int have_avx2 = mr_kernels_for_isa(MR_ISA_AVX2, 0, &avx2);
    mr_kernels ref;
    ck_assert(mr_kernels_for_isa(MR_ISA_SCALAR, 0, &ref));
    iq_case_blocks(c, blocks);
    int tested = 0;
    for (int ti = 0; ti <= MR_ISA_COUNT; ti++) {
        mr_kernels k;
        const char *tname;
        if (!iq_table(ti, &k, &tname))
            continue;
        if (have_avx2 && k.vec_dot[t] == avx2.vec_dot[t])
            ck_assert_msg(k.gemm[t] != NULL && k.gemm[t] == avx2.gemm[t],
                          "%s: %s takes the AVX2 dot but not its gemm", tname, iq_cases[c].name);
        if (!k.gemm[t])
            continue;
        const mr_isa isa = k.isa;
        const int bitwise = isa == MR_ISA_AVX2 || isa == MR_ISA_AVX2VNNI || isa == MR_ISA_AVX512;
        for (int nb = 1; nb <= 3; nb += 2) {
            const int64_t n = (int64_t)nb * QK_K;
            const size_t rb = bytes * (size_t)nb, ab = sizeof(block_q8_K) * (size_t)nb;
            const uint64_t seed = 0x6e33 + 1000u * c + 10u * (unsigned)ti + (unsigned)nb;
            rng = seed;
            guarded w = guarded_alloc(rb * G_ROWS), a = guarded_alloc(ab * G_TOKS);
            /* row r block b: case block (r nb + b) * 5 mod 64, so row 0
             * starts with the all-zero block and row 1 holds the maximal
             * one; every third block's scale negated (f16 sign bit: the
             * top bit of IQ1_M's last scale word, else of d) */
            for (int r = 0; r < G_ROWS; r++)
                for (int b = 0; b < nb; b++) {
                    const int src = r == 1 && b == 0 ? 1 : (r * nb + b) * 5 % IQ_CASE_BLOCKS;
                    uint8_t *blk = w.p + rb * (size_t)r + bytes * (size_t)b;
                    memcpy(blk, blocks + bytes * (size_t)src, bytes);
                    if ((r + b) % 3 == 2)
                        blk[t == MR_TYPE_IQ1_M ? bytes - 1 : 1] ^= 0x80;
                }
            for (int tk = 0; tk < G_TOKS; tk++)
                iq_fill_act(a.p + ab * (size_t)tk, nb, tk % 7 == 3 ? 1 : tk % 5 == 4 ? 2 : tk % 11 == 6 ? 3 : 0);
            /* the dot of every (row, token), and the reference's */
            static float want[G_TOKS][G_ROWS];
            for (int tk = 0; tk < G_TOKS; tk++)
                for (int r = 0; r < G_ROWS; r++) {
                    const uint8_t *wr = w.p + rb * (size_t)r, *at = a.p + ab * (size_t)tk;
                    GUARD_KERNEL("%s %s vec_dot blocks %d row %d token %d", tname, iq_cases[c].name, nb, r, tk);
                    want[tk][r] = k.vec_dot[t](wr, at, n);
                    const float s = ref.vec_dot[t](wr, at, n);
                    if (bitwise)
                        ck_assert_msg(!memcmp(&s, &want[tk][r], 4), "%s: %.9g, scalar %.9g", current,
                                      want[tk][r], s);
                }
            static float yg[G_TOKS * G_LDY];
            for (int ci = 0; ci < ntc; ci++) {
                const int nt = tok_counts[ci];
                /* odd counts end at the guard page, even ones start at a
                 * token that moves the activation kinds across the lanes */
                const int t0 = nt % 2 ? G_TOKS - nt : (3 * nt) % (G_TOKS - nt + 1);
                /* the whole range, then [0, 1), [1, 4), [4, 7) in turn, into
                 * NaN-filled output: each call writes its rows and leaves
                 * the rows past it (and ldy's padding) alone */
                static const int ranges[4][2] = {{0, G_ROWS}, {0, 1}, {1, 4}, {4, G_ROWS}};
                for (int ri = 0; ri < 4; ri++) {
                    if (ri < 2)
                        memset(yg, 0xff, sizeof yg);
                    const int r0 = ranges[ri][0], r1 = ranges[ri][1];
                    GUARD_KERNEL("%s %s gemm blocks %d tokens %d (from %d) rows [%d, %d) seed %llu", tname,
                                 iq_cases[c].name, nb, nt, t0, r0, r1, (unsigned long long)seed);
                    k.gemm[t](w.p, rb, a.p + ab * (size_t)t0, ab, n, nt, yg, G_LDY, r0, r1);
                    for (int tk = 0; tk < nt; tk++)
                        for (int r = r0; r < G_LDY; r++) {
                            const float got = yg[tk * G_LDY + r];
                            if (r >= r1) {
                                uint32_t bits;
                                memcpy(&bits, &got, 4);
                                ck_assert_msg(bits == 0xffffffffu, "%s: row %d token %d written", current, r, tk);
                                continue;
                            }
                            const float v = want[t0 + tk][r];
                            if (bitwise)
                                ck_assert_msg(!memcmp(&v, &got, 4), "%s: row %d token %d: gemm %.9g, vec_dot %.9g",
                                              current, r, tk, got, v);
                            else
                                ck_assert_msg(fabsf(got - v) <= 1e-5f * fabsf(v) + 1e-6f,
                                              "%s: row %d token %d: gemm %.9g, vec_dot %.9g", current, r, tk, got, v);
                        }
                    for (int tk = nt; tk < G_TOKS; tk++)
                        for (int r = 0; r < G_LDY; r++) {
                            uint32_t bits;
                            memcpy(&bits, &yg[tk * G_LDY + r], 4);
                            ck_assert_msg(bits == 0xffffffffu, "%s: token %d past n_tok written", current, tk);
                        }
                }
            }
            guarded_free(&w);
            guarded_free(&a);
        }
        tested++;
    }
    printf("%s gemm vs vec_dot: %d tables\n", iq_cases[c].name, tested);
    ck_assert_msg(!have_avx2 || tested >= 2, "%s: x86 without an i-quant gemm", iq_cases[c].name);
}
END_TEST

int main(void)
{
    guard_signals();
    Suite *s = suite_create("quant_iq");
    TCase *tc = tcase_create("iq");
    tcase_add_loop_test(tc, dequantize_matches_ggml, 0, (int)N_IQ_CASES);
    tcase_add_loop_test(tc, dots_match_float64, 0, (int)N_IQ_CASES);
    tcase_add_test(tc, every_isa_computes_them);
    tcase_add_loop_test(tc, gemm_matches_vec_dot, 0, (int)N_IQ_CASES);
    tcase_set_timeout(tc, 300);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
