/* test_kernels.c - every kernel table entry of every ISA this machine can
 * run, against the scalar reference, on the same random and edge-case
 * inputs (the dav1d checkasm habit).  Seeds are printed; a SIGILL or
 * SIGSEGV inside a kernel is reported with the ISA, op, type and size.
 *
 * Contract (what a SIMD kernel must meet):
 * - quantize_act: bit-identical to the scalar quantizer (same rounding).
 * - vec_dot / gemm (integer dots of quantized operands): the integer
 *   block sums are exact, only the float accumulation order may differ:
 *   |simd - ref| <= 1e-5 * sum of |block terms| + 1e-6.
 * - dot_f32 (exact path): |simd - ref| <= 1e-5 * sum |w_i x_i| + 1e-6.
 * Inputs end at a guard page, so a read past the row faults.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel_harness.h"
#include "kernels.h"

static const int block_counts[] = {1,  2,  3,  5,  7,  8,  15,  16,  17,
                                   31, 32, 33, 63, 64, 65, 255, 256, 257};
#define N_COUNTS (int)(sizeof block_counts / sizeof block_counts[0])

/* weight types whose kernels are compared */
static const uint32_t wtypes[] = {MR_TYPE_F32, MR_TYPE_F16, MR_TYPE_BF16, MR_TYPE_Q8_0,
                                  MR_TYPE_Q4_0, MR_TYPE_Q4_K, MR_TYPE_Q5_K, MR_TYPE_Q6_K};
#define N_WTYPES (int)(sizeof wtypes / sizeof wtypes[0])

static mr_kernels ref_fast, ref_exact;
static mr_isa isas[MR_ISA_COUNT];
static int n_isas;

/* ------------------------------------------------------------ helpers */

/* Blocks whose quantized values fall exactly on .5, where roundf (halves
 * away from zero) and round-to-nearest-even part: amax 127 gives d = 1,
 * amax 63.5 gives d = 0.5 (id = 2), both exact, so x * id = k + 0.5 for
 * x = (k + 0.5) * d. */
static void fill_ties(float *x, int64_t n)
{
    for (int64_t b = 0; b < n / 32; b++) {
        const float d = (b & 1) ? 0.5f : 1.0f;
        float *xb = x + 32 * b;
        for (int j = 0; j < 32; j++) {
            const int k = (int)(rnd() % 126) - 63; /* x * id in [-62.5, 62.5] */
            xb[j] = ((float)k + 0.5f) * d;
        }
        xb[rnd() % 32] = (rnd() & 1 ? 127.0f : -127.0f) * d; /* amax: d = amax / 127 */
    }
}

/* Quantize f32 weights to type t with the reference (row of n). */
static void make_weights(uint32_t t, const float *src, void *dst, int64_t n)
{
    mr_type_get(t)->from_f32(src, dst, n);
    if (t == MR_TYPE_Q4_0 && n >= 64) {
        /* nibbles 0 and 15 in block 1 */
        block_q4_0 *b = (block_q4_0 *)dst + 1;
        for (int j = 0; j < 16; j++)
            b->qs[j] = (uint8_t)((j & 1) ? 0xf0 : 0x0f);
    }
}

/* rows x n weights of type t (row r filled in mode r % 4), then toks
 * activation rows (mode 0) prepared for table k; the caller frees both */
static void make_case(const mr_kernels *k, uint32_t t, int64_t n, int rows, int toks, uint8_t **w,
                      uint8_t **act)
{
    const size_t rb = mr_type_row_bytes(t, (uint64_t)n), ab = mr_act_row_bytes(k, t, n);
    float *wf = malloc(sizeof(float) * (size_t)n), *x = malloc(sizeof(float) * (size_t)(n * toks));
    *w = malloc(rb * (size_t)rows);
    *act = malloc(ab * (size_t)toks);
    for (int r = 0; r < rows; r++) {
        fill(wf, n, r % 4);
        make_weights(t, wf, *w + rb * (size_t)r, n);
    }
    fill(x, n * toks, 0);
    mr_act_prepare(k, t, x, n, toks, *act);
    free(wf);
    free(x);
}

/* sum of |terms| bound for a dot of w (type t) with activations x, both
 * dequantised, in double */
static double abs_dot_bound(uint32_t t, const void *w, uint32_t at, const void *act,
                            const float *xf, int64_t n)
{
    float *wd = malloc(sizeof(float) * (size_t)n), *xd = malloc(sizeof(float) * (size_t)n);
    mr_type_get(t)->to_f32(w, wd, n);
    if (at == MR_TYPE_F32)
        memcpy(xd, xf, sizeof(float) * (size_t)n);
    else if (at == MR_TYPE_Q8_K) /* an activation format only: not in the type table */
        mr_dequantize_row_q8_K(act, xd, n);
    else
        mr_type_get(at)->to_f32(act, xd, n);
    double s = 0.0;
    for (int64_t i = 0; i < n; i++)
        s += fabs((double)wd[i] * (double)xd[i]);
    free(wd);
    free(xd);
    return s;
}

/* ------------------------------------------------------------ tests */

/* quantize_act of every activation type is bit-identical. */
START_TEST(quantize_act_bit_identical)
{
    const mr_isa isa = isas[_i / N_COUNTS];
    const int64_t n = (int64_t)block_counts[_i % N_COUNTS] * 256;
    mr_kernels k;
    ck_assert(mr_kernels_for_isa(isa, 0, &k));
    for (uint32_t at = 0; at < MR_TYPE_COUNT; at++) {
        if (!ref_fast.quantize_act[at] || k.quantize_act[at] == ref_fast.quantize_act[at])
            continue;
        for (int mode = 0; mode < 5; mode++) { /* 4: rounding ties */
            uint64_t seed = 1000u * (uint64_t)isa + 17u * (uint64_t)n + (uint64_t)mode;
            rng = seed;
            float *x = malloc(sizeof(float) * (size_t)n);
            if (mode == 4)
                fill_ties(x, n);
            else
                fill(x, n, mode);
            size_t bytes = mr_type_row_bytes(at, (uint64_t)n);
            guarded a = guarded_alloc(bytes), b = guarded_alloc(bytes);
            ref_fast.quantize_act[at](x, a.p, n);
            GUARD_KERNEL("%s quantize_act %s n=%lld mode %d seed %llu", mr_isa_name(isa),
                         mr_type_get(at)->name, (long long)n, mode, (unsigned long long)seed);
            k.quantize_act[at](x, b.p, n);
            ck_assert_msg(memcmp(a.p, b.p, bytes) == 0, "%s differs from scalar", current);
            guarded_free(&a);
            guarded_free(&b);
            free(x);
        }
    }
}
END_TEST

/* vec_dot, dot_f32 and gemm of every weight type, fast and exact tables. */
START_TEST(dots_match_scalar)
{
    const mr_isa isa = isas[_i / N_COUNTS];
    const int nb = block_counts[_i % N_COUNTS];
    for (int exact = 0; exact < 2; exact++) {
        mr_kernels k;
        const mr_kernels *ref = exact ? &ref_exact : &ref_fast;
        ck_assert(mr_kernels_for_isa(isa, exact, &k));
        for (int ti = 0; ti < N_WTYPES; ti++) {
            const uint32_t t = wtypes[ti];
            if (!mr_type_computable(t))
                continue; /* a format this build does not have yet */
            const uint32_t bs = mr_type_get(t)->block_size;
            const int64_t n = (int64_t)nb * (bs > 32 ? bs : 32);
            const int same = k.act_type[t] == ref->act_type[t] &&
                             k.dot_f32[t] == ref->dot_f32[t] && k.vec_dot[t] == ref->vec_dot[t] &&
                             k.gemm[t] == ref->gemm[t];
            ck_assert_msg(k.act_type[t] == ref->act_type[t],
                          "%s %s: activation type differs from the scalar table",
                          mr_isa_name(isa), mr_type_get(t)->name);
            if (same)
                continue;
            for (int mode = 0; mode < 4; mode++) {
                uint64_t seed = 7919u * (uint64_t)isa + 31u * (uint64_t)n + 5u * t + (uint64_t)mode;
                rng = seed;
                const int rows = 5, toks = 3;
                const size_t rb = mr_type_row_bytes(t, (uint64_t)n);
                const size_t ab = mr_act_row_bytes(&k, t, n);
                float *wf = malloc(sizeof(float) * (size_t)n), *x = malloc(sizeof(float) * (size_t)(n * toks));
                guarded w = guarded_alloc(rb * rows), abuf = guarded_alloc(ab * toks);
                for (int r = 0; r < rows; r++) {
                    fill(wf, n, mode == 2 ? 2 : (mode + r) % 4);
                    make_weights(t, wf, w.p + rb * r, n);
                }
                fill(x, n * toks, mode == 1 ? 0 : mode);
                const void *act = mr_act_prepare(ref, t, x, n, toks, abuf.p);
                float yr[5 * 3], ys[5 * 3];
                mr_matmul_rows(ref, t, w.p, rb, act, n, toks, yr, rows, 0, rows);
                GUARD_KERNEL("%s %s %s n=%lld mode %d seed %llu", mr_isa_name(isa),
                             exact ? "exact" : "fast", mr_type_get(t)->name, (long long)n, mode,
                             (unsigned long long)seed);
                /* the whole range, then a sub-range, through the driver */
                mr_matmul_rows(&k, t, w.p, rb, act, n, toks, ys, rows, 0, rows);
                for (int r = 0; r < rows; r++)
                    for (int tk = 0; tk < toks; tk++) {
                        const void *ar = ref->act_type[t] == MR_TYPE_F32
                                             ? (const void *)(x + tk * n)
                                             : (const void *)((const uint8_t *)act + ab * tk);
                        double bound = abs_dot_bound(t, w.p + rb * r, ref->act_type[t], ar,
                                                     x + tk * n, n);
                        double d = fabs((double)ys[tk * rows + r] - yr[tk * rows + r]);
                        ck_assert_msg(d <= 1e-5 * bound + 1e-6,
                                      "%s row %d token %d: %.9g vs scalar %.9g (bound %g)",
                                      current, r, tk, ys[tk * rows + r], yr[tk * rows + r], bound);
                    }
                float sub[5 * 3];
                for (int i = 0; i < rows * toks; i++)
                    sub[i] = NAN;
                mr_matmul_rows(&k, t, w.p, rb, act, n, toks, sub, rows, 1, 4);
                for (int r = 0; r < rows; r++)
                    for (int tk = 0; tk < toks; tk++) {
                        float v = sub[tk * rows + r];
                        if (r >= 1 && r < 4)
                            ck_assert_msg(v == ys[tk * rows + r], "%s: sub-range row %d differs", current, r);
                        else
                            ck_assert_msg(isnan(v), "%s: wrote row %d outside [1, 4)", current, r);
                    }
                guarded_free(&w);
                guarded_free(&abuf);
                free(wf);
                free(x);
            }
        }
    }
}
END_TEST

/* Float rows of any length at any alignment: n is not always a multiple
 * of a vector, and a row starts wherever the previous one ended (the rows
 * end at the guard page, so their starts take every alignment as n
 * varies). */
START_TEST(float_dots_any_length_and_alignment)
{
    const mr_isa isa = isas[_i];
    const uint32_t types[] = {MR_TYPE_F32, MR_TYPE_F16, MR_TYPE_BF16};
    mr_kernels k;
    ck_assert(mr_kernels_for_isa(isa, 1, &k));
    for (int ti = 0; ti < 3; ti++) {
        const uint32_t t = types[ti];
        if (k.dot_f32[t] == ref_exact.dot_f32[t])
            continue;
        for (int64_t n = 1; n <= 300; n += n < 80 ? 1 : 37) {
            const uint64_t seed = 33391u * (uint64_t)isa + 11u * (uint64_t)n + t;
            rng = seed;
            const size_t rb = mr_type_row_bytes(t, (uint64_t)n);
            float *wf = malloc(sizeof(float) * (size_t)n);
            guarded w = guarded_alloc(rb), xg = guarded_alloc(sizeof(float) * (size_t)n);
            float *x = (float *)xg.p;
            fill(wf, n, 0);
            fill(x, n, 0);
            mr_type_get(t)->from_f32(wf, w.p, n);
            const float want = ref_exact.dot_f32[t](w.p, x, n);
            GUARD_KERNEL("%s dot_f32 %s n=%lld seed %llu", mr_isa_name(isa), mr_type_get(t)->name,
                         (long long)n, (unsigned long long)seed);
            const float got = k.dot_f32[t](w.p, x, n);
            const double bound = abs_dot_bound(t, w.p, MR_TYPE_F32, NULL, x, n);
            ck_assert_msg(fabs((double)got - want) <= 1e-5 * bound + 1e-6, "%s: %.9g vs scalar %.9g",
                          current, got, want);
            guarded_free(&w);
            guarded_free(&xg);
            free(wf);
        }
    }
}
END_TEST

/* Wide batches through gemm: many tokens and rows, odd shapes. */
START_TEST(gemm_shapes_match_scalar)
{
    const mr_isa isa = isas[_i];
    static const int shapes[][3] = {/* rows, tokens, blocks */
                                    {1, 1, 8}, {4, 4, 8}, {7, 5, 8}, {16, 8, 4}, {33, 17, 2},
                                    {64, 64, 8}, {3, 130, 1},
                                    /* x86 tiles (6x4 and 3x3 register tiles, 4- and
                                     * 2-block groups): every row and token remainder
                                     * with a partial last group of 1, 2 or 3 blocks */
                                    {13, 7, 3}, {12, 9, 5}, {6, 6, 7}, {17, 11, 6},
                                    {20, 1, 9}, {5, 2, 11},
                                    /* packed activations on the heap; more than it
                                     * holds (4 MB): several panels of tokens, and
                                     * rows in several L2 blocks */
                                    {9, 300, 33}, {3, 2, 2100}, {90, 300, 260}};
    mr_kernels k;
    ck_assert(mr_kernels_for_isa(isa, 0, &k));
    for (int ti = 0; ti < N_WTYPES; ti++) {
        const uint32_t t = wtypes[ti];
        if (!mr_type_computable(t) || !k.gemm[t] || k.gemm[t] == ref_fast.gemm[t])
            continue;
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            const int rows = shapes[si][0], toks = shapes[si][1];
            /* the shape's blocks of 32 elements, rounded up to whole
             * super-blocks for the K-quants (the same work as Q4_0) */
            const int64_t bs = mr_type_get(t)->block_size;
            const int64_t n = ((int64_t)shapes[si][2] * 32 + bs - 1) / bs * bs;
            uint64_t seed = 104729u * (uint64_t)isa + 13u * si + t;
            rng = seed;
            const size_t rb = mr_type_row_bytes(t, (uint64_t)n), ab = mr_act_row_bytes(&k, t, n);
            float *wf = malloc(sizeof(float) * (size_t)n), *x = malloc(sizeof(float) * (size_t)(n * toks));
            uint8_t *w = malloc(rb * (size_t)rows), *act = malloc(ab * (size_t)toks);
            float *yr = malloc(sizeof(float) * (size_t)(rows * toks)), *ys = malloc(sizeof(float) * (size_t)(rows * toks));
            for (int r = 0; r < rows; r++) {
                fill(wf, n, 0);
                make_weights(t, wf, w + rb * r, n);
            }
            fill(x, n * toks, 0);
            mr_act_prepare(&ref_fast, t, x, n, toks, act);
            mr_matmul_rows(&ref_fast, t, w, rb, act, n, toks, yr, rows, 0, rows);
            GUARD_KERNEL("%s gemm %s rows %d tokens %d n %lld seed %llu", mr_isa_name(isa),
                         mr_type_get(t)->name, rows, toks, (long long)n, (unsigned long long)seed);
            mr_matmul_rows(&k, t, w, rb, act, n, toks, ys, rows, 0, rows);
            for (int i = 0; i < rows * toks; i++) {
                double bound = abs_dot_bound(t, w + rb * (size_t)(i % rows), k.act_type[t],
                                             act + ab * (size_t)(i / rows), x, n);
                ck_assert_msg(fabs((double)ys[i] - yr[i]) <= 1e-5 * bound + 1e-6,
                              "%s: element %d: %.9g vs %.9g", current, i, ys[i], yr[i]);
            }
            free(wf);
            free(x);
            free(w);
            free(act);
            free(yr);
            free(ys);
        }
    }
}
END_TEST

/* The x86 kernels promise more than the contract: each (row, token) result
 * is the same chain of operations whatever the tile, row range or batch, so
 * gemm over any rows and tokens, gemm of one token and vec_dot give the same
 * bits (decode, prefill, expert groups and thread splits agree exactly). */
START_TEST(x86_gemm_is_vec_dot_bit_for_bit)
{
    const mr_isa isa = isas[_i];
    if (isa != MR_ISA_AVX2 && isa != MR_ISA_AVX2VNNI && isa != MR_ISA_AVX512)
        return;
    static const int blocks[] = {1, 2, 3, 6, 13, 70};
    const uint32_t types[] = {MR_TYPE_Q4_0, MR_TYPE_Q8_0, MR_TYPE_Q4_K, MR_TYPE_Q5_K, MR_TYPE_Q6_K,
                              MR_TYPE_Q2_K, MR_TYPE_Q3_K, MR_TYPE_MXFP4, MR_TYPE_IQ4_NL,
                              MR_TYPE_Q5_0, MR_TYPE_Q4_1, MR_TYPE_Q5_1};
    const int rows = 23, toks = 13;
    mr_kernels k;
    ck_assert(mr_kernels_for_isa(isa, 0, &k));
    for (int ti = 0; ti < (int)(sizeof types / sizeof types[0]); ti++)
        for (size_t bi = 0; bi < sizeof blocks / sizeof blocks[0]; bi++) {
            const uint32_t t = types[ti];
            if (!k.gemm[t] || !k.vec_dot[t])
                continue;
            const int64_t n = (int64_t)blocks[bi] * mr_type_get(t)->block_size;
            const uint64_t seed = 52711u * (uint64_t)isa + 7u * (uint64_t)n + t;
            rng = seed;
            const size_t rb = mr_type_row_bytes(t, (uint64_t)n), ab = mr_act_row_bytes(&k, t, n);
            uint8_t *w, *act;
            make_case(&k, t, n, rows, toks, &w, &act);
            float all[23 * 13], part[23 * 13];
            GUARD_KERNEL("%s gemm vs vec_dot %s n %lld seed %llu", mr_isa_name(isa),
                         mr_type_get(t)->name, (long long)n, (unsigned long long)seed);
            k.gemm[t](w, rb, act, ab, n, toks, all, rows, 0, rows);
            /* rows in uneven ranges, tokens one at a time and in a batch of 5 */
            for (int tk = 0; tk < toks; tk++)
                for (int r0 = 0; r0 < rows; r0 += 7)
                    k.gemm[t](w, rb, act + ab * (size_t)tk, ab, n, 1, part + tk * rows, rows, r0,
                              r0 + 7 < rows ? r0 + 7 : rows);
            ck_assert_msg(memcmp(all, part, sizeof all) == 0, "%s: one token at a time differs", current);
            k.gemm[t](w, rb, act + ab * 4, ab, n, 5, part + 4 * rows, rows, 3, 20);
            for (int tk = 4; tk < 9; tk++)
                for (int r = 3; r < 20; r++)
                    ck_assert_msg(memcmp(&all[tk * rows + r], &part[tk * rows + r], 4) == 0,
                                  "%s: batch of 5 differs at row %d token %d", current, r, tk);
            /* batches of 2 and 3: the narrow tiles */
            for (int nt = 2; nt <= 3; nt++) {
                k.gemm[t](w, rb, act + ab * 6, ab, n, nt, part + 6 * rows, rows, 2, 21);
                for (int tk = 6; tk < 6 + nt; tk++)
                    for (int r = 2; r < 21; r++)
                        ck_assert_msg(memcmp(&all[tk * rows + r], &part[tk * rows + r], 4) == 0,
                                      "%s: batch of %d differs at row %d token %d", current, nt, r, tk);
            }
            /* a batch of 8: the wide tiles (all of an expert's few tokens at once) */
            k.gemm[t](w, rb, act + ab * 2, ab, n, 8, part + 2 * rows, rows, 1, 22);
            for (int tk = 2; tk < 10; tk++)
                for (int r = 1; r < 22; r++)
                    ck_assert_msg(memcmp(&all[tk * rows + r], &part[tk * rows + r], 4) == 0,
                                  "%s: batch of 8 differs at row %d token %d", current, r, tk);
            for (int tk = 0; tk < toks; tk++)
                for (int r = 0; r < rows; r++) {
                    const float v = k.vec_dot[t](w + rb * (size_t)r, act + ab * (size_t)tk, n);
                    ck_assert_msg(memcmp(&v, &all[tk * rows + r], 4) == 0,
                                  "%s: vec_dot row %d token %d: %.9g, gemm %.9g", current, r, tk,
                                  v, all[tk * rows + r]);
                }
            free(w);
            free(act);
        }
}
END_TEST

/* The avx2vnni set is the AVX2 sources with vpdpbusd/vpdpwssd for the
 * integer pairs: the same integers, so the same bits as the AVX2 set, for
 * every weight type it has a fast dot for, through vec_dot and gemm (1, 3,
 * 4, 8 and 13 tokens). */
START_TEST(avx2vnni_is_avx2_bit_for_bit)
{
    mr_kernels v, a;
    if (!mr_kernels_for_isa(MR_ISA_AVX2VNNI, 0, &v)) {
        printf("avx2vnni: not on this CPU or build, not compared\n");
        return;
    }
    ck_assert(mr_kernels_for_isa(MR_ISA_AVX2, 0, &a));
    const int rows = 11, toks = 13, counts[] = {1, 3, 4, 8, 13};
    int compared = 0;
    for (uint32_t t = 0; t < MR_TYPE_COUNT; t++) {
        if (!mr_type_computable(t) || !v.vec_dot[t] || !mr_type_get(t)->from_f32)
            continue;
        ck_assert_msg(a.vec_dot[t] && a.act_type[t] == v.act_type[t] && !a.gemm[t] == !v.gemm[t],
                      "%s: the two sets differ in shape", mr_type_get(t)->name);
        const int64_t n = 3 * 256; /* whole blocks of every type: 32 and 256 divide it */
        rng = 0x766e6e69u + t;
        const size_t rb = mr_type_row_bytes(t, (uint64_t)n), ab = mr_act_row_bytes(&v, t, n);
        uint8_t *w, *act;
        make_case(&v, t, n, rows, toks, &w, &act);
        float ya[11 * 13], yv[11 * 13];
        GUARD_KERNEL("avx2vnni vs avx2 %s n %lld", mr_type_get(t)->name, (long long)n);
        for (int r = 0; r < rows; r++)
            for (int tk = 0; tk < toks; tk++) {
                const float fa = a.vec_dot[t](w + rb * (size_t)r, act + ab * (size_t)tk, n);
                const float fv = v.vec_dot[t](w + rb * (size_t)r, act + ab * (size_t)tk, n);
                ck_assert_msg(memcmp(&fa, &fv, 4) == 0, "%s: vec_dot row %d token %d: avx2 %.9g, avx2vnni %.9g",
                              current, r, tk, fa, fv);
            }
        for (size_t ci = 0; a.gemm[t] && ci < sizeof counts / sizeof counts[0]; ci++) {
            a.gemm[t](w, rb, act, ab, n, counts[ci], ya, rows, 0, rows);
            v.gemm[t](w, rb, act, ab, n, counts[ci], yv, rows, 0, rows);
            ck_assert_msg(memcmp(ya, yv, sizeof(float) * (size_t)(rows * counts[ci])) == 0,
                          "%s: gemm of %d tokens differs", current, counts[ci]);
        }
        compared++;
        free(w);
        free(act);
    }
    ck_assert_int_ge(compared, 10);
}
END_TEST

START_TEST(forced_isa_is_never_higher)
{
    /* every table reports the ISA it was filled for, and the scalar one is
     * always available */
    mr_kernels k;
    ck_assert(mr_kernels_for_isa(MR_ISA_SCALAR, 0, &k) && k.isa == MR_ISA_SCALAR);
    ck_assert(mr_isa_parse("avx512") == MR_ISA_AVX512 && mr_isa_parse("bogus") == MR_ISA_COUNT);
    const char *env = getenv("MOERUN_ISA");
    if (env && mr_isa_parse(env) != MR_ISA_COUNT && mr_kernels_for_isa(mr_isa_parse(env), 0, &k))
        ck_assert_int_eq(mr_kernels_get()->isa, mr_isa_parse(env));
}
END_TEST

int main(void)
{
    guard_signals();

    mr_kernels_for_isa(MR_ISA_SCALAR, 0, &ref_fast);
    mr_kernels_for_isa(MR_ISA_SCALAR, 1, &ref_exact);
    mr_kernels tmp;
    for (int i = 1; i < MR_ISA_COUNT; i++)
        if (mr_kernels_for_isa((mr_isa)i, 0, &tmp))
            isas[n_isas++] = (mr_isa)i;
    printf("ISAs compared with scalar:");
    for (int i = 0; i < n_isas; i++)
        printf(" %s", mr_isa_name(isas[i]));
    printf("%s\n", n_isas ? "" : " none (this CPU or build has no SIMD kernels)");

    Suite *s = suite_create("kernels");
    TCase *tc = tcase_create("isa-vs-scalar");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, forced_isa_is_never_higher);
    if (n_isas) {
        tcase_add_loop_test(tc, quantize_act_bit_identical, 0, n_isas * N_COUNTS);
        tcase_add_loop_test(tc, dots_match_scalar, 0, n_isas * N_COUNTS);
        tcase_add_loop_test(tc, gemm_shapes_match_scalar, 0, n_isas);
        tcase_add_loop_test(tc, x86_gemm_is_vec_dot_bit_for_bit, 0, n_isas);
        tcase_add_test(tc, avx2vnni_is_avx2_bit_for_bit);
        tcase_add_loop_test(tc, float_dots_any_length_and_alignment, 0, n_isas);
    }
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
