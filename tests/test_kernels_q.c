/* test_kernels_q.c - the further formats' kernels (MXFP4, Q4_1, Q5_0,
 * Q5_1, IQ4_NL, IQ4_XS, Q2_K, Q3_K) of every ISA this machine runs,
 * against the scalar table, on the same random and edge inputs, ending at
 * guard pages (tests/test_kernels.c's contract and habits, which this file
 * follows for the formats it does not cover):
 * - vec_dot / gemm / dot_f32: |simd - ref| <= 1e-5 * sum of |terms| + 1e-6
 *   (the Q8_1 activations have no SIMD quantizer yet: nothing to compare);
 * - every ISA's gemm gives its vec_dot's bits for every (row, token);
 * - Q2_K, Q3_K and IQ4_XS on edge blocks (all-zero, every scale at its
 *   extreme, codes at top or bottom, negative minima, a zero sub-block
 *   scale) against saturating activations (every q = +-127), through
 *   vec_dot and gemm.
 * Seeds are printed in every failure; a SIGILL or SIGSEGV in a kernel is
 * reported with the ISA, type and size. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel_harness.h"
#include "kernels.h"
#include "qtypes_cases.h"

static const int block_counts[] = {1,  2,  3,  5,  7,  8,  15,  16,  17,
                                   31, 32, 33, 63, 64, 65, 255, 256, 257};
#define N_COUNTS (int)(sizeof block_counts / sizeof block_counts[0])

/* weight types compared, with their scale fields for random blocks */
static const struct {
    uint32_t t;
    int f16a, f16b;
} wtypes[] = {
    {MR_TYPE_MXFP4, -2, -1}, {MR_TYPE_Q4_1, 0, 2},   {MR_TYPE_Q5_0, 0, -1}, {MR_TYPE_Q5_1, 0, 2},
    {MR_TYPE_IQ4_NL, 0, -1}, {MR_TYPE_IQ4_XS, 0, -1}, {MR_TYPE_Q2_K, 80, 82}, {MR_TYPE_Q3_K, 108, -1},
};
#define N_WTYPES (int)(sizeof wtypes / sizeof wtypes[0])

static mr_kernels ref_fast, ref_exact;
static mr_isa isas[MR_ISA_COUNT];
static int n_isas;

/* ------------------------------------------------------------ helpers */

/* Weights of type t from f32 values (mode < 4) or random blocks (mode 4:
 * every bit pattern but the scales', see qtypes_cases.h); MXFP4 also gets
 * blocks of the extreme exponents the dots meet: 0 and 1 (subnormal
 * scales) and 160 beside 100. */
static void make_weights(int ti, const float *src, void *dst, int64_t n, int mode)
{
    const uint32_t t = wtypes[ti].t;
    const mr_type_traits *tt = mr_type_get(t);
    const int nb = (int)(n / tt->block_size);
    if (mode == 4) {
        uint64_t s = rng;
        mr_random_blocks(&s, dst, nb, (int)tt->type_size, wtypes[ti].f16a, wtypes[ti].f16b);
        rng = s;
    } else {
        tt->from_f32(src, dst, n);
    }
    if (t == MR_TYPE_MXFP4 && nb >= 4) {
        block_mxfp4 *b = dst;
        b[0].e = 0;
        b[1].e = 1;
        b[2].e = 160;
        b[3].e = 100;
        for (int j = 0; j < 16; j++) /* every code in both nibbles */
            b[2].qs[j] = (uint8_t)(j | ((15 - j) << 4));
    }
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
    else if (at == MR_TYPE_Q8_0)
        mr_dequantize_row_q8_0(act, xd, n);
    else if (at == MR_TYPE_Q8_1)
        mr_dequantize_row_q8_1(act, xd, n);
    else
        mr_dequantize_row_q8_K(act, xd, n);
    double s = 0.0;
    for (int64_t i = 0; i < n; i++)
        s += fabs((double)wd[i] * (double)xd[i]);
    if (at == MR_TYPE_Q8_1) {
        /* Q4_1/Q5_1: the minimum's term m s (m: the f16 at byte 2), which
         * may cancel in the dequantised weights */
        const size_t ts = mr_type_get(t)->type_size;
        for (int64_t i = 0; i < n; i++) {
            uint16_t mh;
            memcpy(&mh, (const uint8_t *)w + (size_t)(i / 32) * ts + 2, 2);
            s += fabs((double)mr_f16_to_f32(mh) * (double)xd[i]);
        }
    }
    free(wd);
    free(xd);
    return s;
}

/* ------------------------------------------------------------ tests */

/* vec_dot, dot_f32 and gemm of every weight type, fast and exact tables,
 * through the driver, whole range then a sub-range. */
START_TEST(dots_match_scalar)
{
    const mr_isa isa = isas[_i / N_COUNTS];
    const int nb = block_counts[_i % N_COUNTS];
    for (int exact = 0; exact < 2; exact++) {
        mr_kernels k;
        const mr_kernels *ref = exact ? &ref_exact : &ref_fast;
        ck_assert(mr_kernels_for_isa(isa, exact, &k));
        for (int ti = 0; ti < N_WTYPES; ti++) {
            const uint32_t t = wtypes[ti].t;
            const uint32_t bs = mr_type_get(t)->block_size;
            const int64_t n = (int64_t)nb * bs;
            ck_assert_msg(mr_type_computable(t), "%s is not computable", mr_type_get(t)->name);
            ck_assert_msg(k.act_type[t] == ref->act_type[t],
                          "%s %s: activation type differs from the scalar table",
                          mr_isa_name(isa), mr_type_get(t)->name);
            if (k.dot_f32[t] == ref->dot_f32[t] && k.vec_dot[t] == ref->vec_dot[t] &&
                k.gemm[t] == ref->gemm[t])
                continue;
            for (int mode = 0; mode < 5; mode++) {
                uint64_t seed = 7919u * (uint64_t)isa + 31u * (uint64_t)n + 5u * t + (uint64_t)mode;
                rng = seed;
                const int rows = 5, toks = 3;
                const size_t rb = mr_type_row_bytes(t, (uint64_t)n);
                const size_t ab = mr_act_row_bytes(&k, t, n);
                float *wf = malloc(sizeof(float) * (size_t)n), *x = malloc(sizeof(float) * (size_t)(n * toks));
                guarded w = guarded_alloc(rb * rows), abuf = guarded_alloc(ab * toks);
                for (int r = 0; r < rows; r++) {
                    fill(wf, n, mode == 2 ? 2 : (mode + r) % 4);
                    make_weights(ti, wf, w.p + rb * r, n, mode == 4 ? 4 : 0);
                }
                fill(x, n * toks, mode == 1 ? 0 : mode % 4);
                const void *act = mr_act_prepare(ref, t, x, n, toks, abuf.p);
                float yr[5 * 3], ys[5 * 3];
                mr_matmul_rows(ref, t, w.p, rb, act, n, toks, yr, rows, 0, rows);
                GUARD_KERNEL("%s %s %s n=%lld mode %d seed %llu", mr_isa_name(isa),
                             exact ? "exact" : "fast", mr_type_get(t)->name, (long long)n, mode,
                             (unsigned long long)seed);
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

/* Wide batches through gemm: many tokens and rows, odd shapes (the
 * shapes of tests/test_kernels.c, which reach every tile remainder, the
 * heap pack and several panels). */
START_TEST(gemm_shapes_match_scalar)
{
    const mr_isa isa = isas[_i];
    static const int shapes[][3] = {{1, 1, 8},   {4, 4, 8},   {7, 5, 8},    {16, 8, 4},
                                    {33, 17, 2}, {64, 64, 8}, {3, 130, 1},  {13, 7, 3},
                                    {12, 9, 5},  {6, 6, 7},   {17, 11, 6},  {20, 1, 9},
                                    {5, 2, 11},  {9, 300, 33}, {3, 2, 2100}, {90, 300, 260}};
    mr_kernels k;
    ck_assert(mr_kernels_for_isa(isa, 0, &k));
    for (int ti = 0; ti < N_WTYPES; ti++) {
        const uint32_t t = wtypes[ti].t;
        if (!k.gemm[t] || k.gemm[t] == ref_fast.gemm[t])
            continue;
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            const int rows = shapes[si][0], toks = shapes[si][1];
            const uint32_t bs = mr_type_get(t)->block_size;
            const int64_t n = ((int64_t)shapes[si][2] * 32 + bs - 1) / bs * bs;
            uint64_t seed = 104729u * (uint64_t)isa + 13u * si + t;
            rng = seed;
            const size_t rb = mr_type_row_bytes(t, (uint64_t)n), ab = mr_act_row_bytes(&k, t, n);
            float *wf = malloc(sizeof(float) * (size_t)n), *x = malloc(sizeof(float) * (size_t)(n * toks));
            uint8_t *w = malloc(rb * (size_t)rows), *act = malloc(ab * (size_t)toks);
            float *yr = malloc(sizeof(float) * (size_t)(rows * toks)), *ys = malloc(sizeof(float) * (size_t)(rows * toks));
            for (int r = 0; r < rows; r++) {
                fill(wf, n, 0);
                make_weights(ti, wf, w + rb * r, n, r % 2 ? 4 : 0);
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

/* Where an ISA has a gemm for these formats, each (row, token) result is
 * vec_dot's, bit for bit, whatever the rows, tokens and batch. */
START_TEST(gemm_is_vec_dot_bit_for_bit)
{
    const mr_isa isa = isas[_i];
    static const int blocks[] = {1, 2, 3, 6, 13, 70};
    const int rows = 23, toks = 13;
    mr_kernels k;
    ck_assert(mr_kernels_for_isa(isa, 0, &k));
    for (int ti = 0; ti < N_WTYPES; ti++)
        for (size_t bi = 0; bi < sizeof blocks / sizeof blocks[0]; bi++) {
            const uint32_t t = wtypes[ti].t;
            if (!k.gemm[t] || k.gemm[t] == ref_fast.gemm[t])
                continue;
            const int64_t n = (int64_t)blocks[bi] * mr_type_get(t)->block_size;
            const uint64_t seed = 52711u * (uint64_t)isa + 7u * (uint64_t)n + t;
            rng = seed;
            const size_t rb = mr_type_row_bytes(t, (uint64_t)n), ab = mr_act_row_bytes(&k, t, n);
            float *wf = malloc(sizeof(float) * (size_t)n), *x = malloc(sizeof(float) * (size_t)(n * toks));
            uint8_t *w = malloc(rb * rows), *act = malloc(ab * toks);
            float all[23 * 13], part[23 * 13];
            for (int r = 0; r < rows; r++) {
                fill(wf, n, r % 4);
                make_weights(ti, wf, w + rb * (size_t)r, n, r % 5 == 4 ? 4 : 0);
            }
            fill(x, n * toks, 0);
            mr_act_prepare(&k, t, x, n, toks, act);
            GUARD_KERNEL("%s gemm vs vec_dot %s n %lld seed %llu", mr_isa_name(isa),
                         mr_type_get(t)->name, (long long)n, (unsigned long long)seed);
            k.gemm[t](w, rb, act, ab, n, toks, all, rows, 0, rows);
            for (int tk = 0; tk < toks; tk++)
                for (int r0 = 0; r0 < rows; r0 += 7)
                    k.gemm[t](w, rb, act + ab * (size_t)tk, ab, n, 1, part + tk * rows, rows, r0,
                              r0 + 7 < rows ? r0 + 7 : rows);
            ck_assert_msg(memcmp(all, part, sizeof all) == 0, "%s: one token at a time differs", current);
            for (int tk = 0; tk < toks; tk++)
                for (int r = 0; r < rows; r++) {
                    const float v = k.vec_dot[t](w + rb * (size_t)r, act + ab * (size_t)tk, n);
                    ck_assert_msg(memcmp(&v, &all[tk * rows + r], 4) == 0,
                                  "%s: vec_dot row %d token %d: %.9g, gemm %.9g", current, r, tk,
                                  v, all[tk * rows + r]);
                }
            free(wf);
            free(x);
            free(w);
            free(act);
        }
}
END_TEST

/* ------------------------------------------------------------ edge blocks */

static void put_f16(uint8_t *p, float f)
{
    const uint16_t h = mr_f32_to_f16(f);
    memcpy(p, &h, 2);
}

/* A random f16 scale of either sign, magnitude 2^-12 .. 2^0 */
static float rnd_scale(void)
{
    const float m = ldexpf(1.0f + 0.5f * rndf(), -(int)(rnd() % 13));
    return rnd() & 1 ? m : -m;
}

/* One block of Q2_K, Q3_K or IQ4_XS by kind (layouts: quant/types_more.h):
 *   0 random bytes, d (and Q2_K's dmin) of random sign: negative minima;
 *   1 all zero;
 *   2 maximal: every scale at its top (Q2_K scale and min 15; Q3_K
 *     sc - 32 = 31; IQ4_XS ls - 32 = 31), every code at its top, d = dmin = 1;
 *   3 codes at the bottom, scales at their most negative (Q3_K, IQ4_XS:
 *     -32; Q2_K: 15), d > 0 and Q2_K's dmin < 0;
 *   4 random bytes with one sub-block's scale 0. */
static void edge_block(uint32_t t, uint8_t *b, int kind)
{
    const size_t bs = mr_type_get(t)->type_size;
    for (size_t i = 0; i < bs; i++)
        b[i] = (uint8_t)rnd();
    if (kind == 1) {
        memset(b, 0, bs);
        return;
    }
    const int hi = kind == 2;
    if (t == MR_TYPE_Q2_K) {
        block_q2_K *q = (block_q2_K *)b;
        if (kind == 2 || kind == 3) {
            memset(q->scales, 0xff, sizeof q->scales);
            memset(q->qs, hi ? 0xff : 0x00, sizeof q->qs);
        }
        if (kind == 4)
            q->scales[rnd() % 16] &= 0xf0;
        put_f16((uint8_t *)&q->d, kind == 2 ? 1.0f : kind == 3 ? 0.5f : rnd_scale());
        put_f16((uint8_t *)&q->dmin, kind == 2 ? 1.0f : kind == 3 ? -0.25f : rnd_scale());
    } else if (t == MR_TYPE_Q3_K) {
        block_q3_K *q = (block_q3_K *)b;
        if (kind == 2 || kind == 3) {
            /* 6-bit sc: 63 (sc - 32 = 31) or 0 (-32); q: 7 or 0 (q - 4 = 3, -4) */
            memset(q->scales, hi ? 0xff : 0x00, sizeof q->scales);
            memset(q->qs, hi ? 0xff : 0x00, sizeof q->qs);
            memset(q->hmask, hi ? 0xff : 0x00, sizeof q->hmask);
        }
        if (kind == 4) { /* sub-block j: sc = 32, so sc - 32 = 0 */
            const int j = (int)(rnd() % 16);
            if (j < 8)
                q->scales[j] &= 0xf0;
            else
                q->scales[j - 8] &= 0x0f;
            q->scales[8 + j % 4] = (uint8_t)((q->scales[8 + j % 4] & ~(3 << 2 * (j / 4))) | 2 << 2 * (j / 4));
        }
        put_f16((uint8_t *)&q->d, kind == 2 ? 1.0f : kind == 3 ? 0.5f : rnd_scale());
    } else {
        block_iq4_xs *q = (block_iq4_xs *)b;
        if (kind == 2 || kind == 3) {
            /* ls 63 (31) or 0 (-32); codes 15 (113) or 0 (-127) */
            memset(q->scales_l, hi ? 0xff : 0x00, sizeof q->scales_l);
            q->scales_h = hi ? 0xffff : 0;
            memset(q->qs, hi ? 0xff : 0x00, sizeof q->qs);
        }
        if (kind == 4) { /* sub-block j: ls = 32 */
            const int j = (int)(rnd() % 8);
            q->scales_l[j / 2] &= (uint8_t)(j % 2 ? 0x0f : 0xf0);
            q->scales_h = (uint16_t)((q->scales_h & ~(3u << 2 * j)) | 2u << 2 * j);
        }
        put_f16((uint8_t *)&q->d, kind == 2 ? 1.0f : kind == 3 ? 0.5f : rnd_scale());
    }
}

/* Q8_K activations by kind: 0 quantized random floats, 1 all zero, 2
 * every q = +-127 (random signs), 3 q = -127 everywhere; bsums match qs. */
static void edge_act(uint8_t *a, int64_t n, int kind)
{
    if (kind == 0) {
        float *x = malloc(sizeof(float) * (size_t)n);
        for (int64_t i = 0; i < n; i++)
            x[i] = rndf() * (i % 512 < 256 ? 1.0f : 40.0f);
        mr_quantize_row_q8_K(x, a, n);
        free(x);
        return;
    }
    for (int64_t b = 0; b < n / QK_K; b++) {
        block_q8_K blk;
        memset(&blk, 0, sizeof blk);
        if (kind != 1) {
            blk.d = 0.001f * (1.0f + rndf() * 0.5f);
            for (int j = 0; j < QK_K; j++)
                blk.qs[j] = (int8_t)(kind == 3 ? -127 : rnd() & 1 ? 127 : -127);
            for (int g = 0; g < QK_K / 16; g++) {
                int sum = 0;
                for (int j = 0; j < 16; j++)
                    sum += blk.qs[16 * g + j];
                blk.bsums[g] = (int16_t)sum;
            }
        }
        memcpy(a + (size_t)b * sizeof blk, &blk, sizeof blk);
    }
}

/* sum |terms| of one row: |w| |a|, Q2_K also |dmin m| |a| (the minimum's
 * term, which may cancel in the dequantised weight) */
static double edge_bound(uint32_t t, const uint8_t *w, const uint8_t *act, int64_t n)
{
    float *wd = malloc(sizeof(float) * (size_t)n), *xd = malloc(sizeof(float) * (size_t)n);
    mr_type_get(t)->to_f32(w, wd, n);
    mr_dequantize_row_q8_K(act, xd, n);
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double mag = fabs((double)wd[i]);
        if (t == MR_TYPE_Q2_K) {
            const block_q2_K *b = (const block_q2_K *)w + i / QK_K;
            const double m = mr_f16_to_f32(b->dmin) * (double)(b->scales[i % QK_K / 16] >> 4);
            mag += 2.0 * fabs(m);
        }
        s += mag * fabs((double)xd[i]);
    }
    free(wd);
    free(xd);
    return s;
}

/* Every ISA's vec_dot and gemm of Q2_K, Q3_K and IQ4_XS against the
 * scalar reference on edge blocks x edge activations, and gemm == vec_dot
 * bit for bit. */
START_TEST(k_edge_blocks_match_scalar)
{
    static const uint32_t types[] = {MR_TYPE_Q2_K, MR_TYPE_Q3_K, MR_TYPE_IQ4_XS};
    const mr_isa isa = isas[_i];
    mr_kernels k;
    ck_assert(mr_kernels_for_isa(isa, 0, &k));
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const uint32_t t = types[ti];
        if (k.vec_dot[t] == ref_fast.vec_dot[t])
            continue;
        ck_assert(k.act_type[t] == MR_TYPE_Q8_K);
        enum { NB = 3, ROWS = 5, TOKS = 4 };
        const int64_t n = NB * QK_K;
        const size_t rb = mr_type_row_bytes(t, (uint64_t)n), ab = NB * sizeof(block_q8_K);
        for (int bk = 0; bk < 5; bk++) {
            const uint64_t seed = 6007u * (uint64_t)isa + 101u * t + (uint64_t)bk;
            rng = seed;
            guarded w = guarded_alloc(rb * ROWS), a = guarded_alloc(ab * TOKS);
            for (int r = 0; r < ROWS; r++)
                for (int b = 0; b < NB; b++) /* mix the kinds along a row */
                    edge_block(t, w.p + rb * r + (size_t)b * mr_type_get(t)->type_size,
                               b == 1 ? (bk + r) % 5 : bk);
            for (int tk = 0; tk < TOKS; tk++)
                edge_act(a.p + ab * tk, n, tk);
            float all[ROWS * TOKS];
            GUARD_KERNEL("%s edge %s block kind %d seed %llu", mr_isa_name(isa), mr_type_get(t)->name,
                         bk, (unsigned long long)seed);
            if (k.gemm[t])
                k.gemm[t](w.p, rb, a.p, ab, n, TOKS, all, ROWS, 0, ROWS);
            for (int r = 0; r < ROWS; r++)
                for (int tk = 0; tk < TOKS; tk++) {
                    const uint8_t *wr = w.p + rb * r, *ar = a.p + ab * tk;
                    const float ys = k.vec_dot[t](wr, ar, n), yr = ref_fast.vec_dot[t](wr, ar, n);
                    const double bound = edge_bound(t, wr, ar, n);
                    ck_assert_msg(isfinite(ys), "%s row %d token %d: %g", current, r, tk, ys);
                    ck_assert_msg(fabs((double)ys - yr) <= 1e-5 * bound + 1e-6,
                                  "%s row %d token %d: %.9g vs scalar %.9g (bound %g)", current,
                                  r, tk, ys, yr, bound);
                    if ((bk == 1 && r == 0) || tk == 1) /* every block zero, or every q */
                        ck_assert_msg(ys == 0.0f, "%s: zero block or zero activations give %g",
                                      current, ys);
                    if (k.gemm[t])
                        ck_assert_msg(memcmp(&ys, &all[tk * ROWS + r], 4) == 0,
                                      "%s row %d token %d: gemm %.9g, vec_dot %.9g", current, r, tk,
                                      all[tk * ROWS + r], ys);
                }
            guarded_free(&w);
            guarded_free(&a);
        }
    }
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

    Suite *s = suite_create("kernels_q");
    TCase *tc = tcase_create("isa-vs-scalar");
    tcase_set_timeout(tc, 300);
    if (n_isas) {
        tcase_add_loop_test(tc, dots_match_scalar, 0, n_isas * N_COUNTS);
        tcase_add_loop_test(tc, gemm_shapes_match_scalar, 0, n_isas);
        tcase_add_loop_test(tc, gemm_is_vec_dot_bit_for_bit, 0, n_isas);
        tcase_add_loop_test(tc, k_edge_blocks_match_scalar, 0, n_isas);
    }
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
