/* test_kernels_k.c - the K-quant kernels (Q2_K..Q6_K against Q8_K
 * activations, and their exact f32 dots) of every ISA this machine runs,
 * against the scalar reference, on blocks built byte by byte: random
 * bytes, all-zero blocks, maximal scales and quants, negative minima and
 * negative super-block scales (which ggml's quantizer never writes but a
 * file may hold), extreme activations.  test_kernels.c covers the
 * quantizer-made weights; this file covers what a file can contain.
 *
 * Contract checked:
 * - vec_dot and gemm: the integer block sums are exact, only the float
 *   order differs: |simd - ref| <= 1e-5 * B + 1e-6, B = sum over weights
 *   of |a| (|d sc q| + |dmin m|) (Q3_K, Q6_K: the weight's |value|);
 * - every ISA (x86 and NEON): gemm over any rows, row range and tokens,
 *   and vec_dot, agree to the bit;
 * - dot_f32: |simd - ref| <= 1e-5 * sum |w x| + 1e-6;
 * - the f32 dot: bit-identical at every weight alignment 0..63.
 * Rows and activations end at a guard page.  Seeds are printed.
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

static const uint32_t ktypes[] = {MR_TYPE_Q4_K, MR_TYPE_Q5_K, MR_TYPE_Q6_K, MR_TYPE_Q2_K,
                                  MR_TYPE_Q3_K};
#define N_KTYPES (int)(sizeof ktypes / sizeof ktypes[0])

static mr_kernels ref_fast, ref_exact;
static mr_isa isas[MR_ISA_COUNT];
static int n_isas;

/* Table idx: each ISA's own (idx < n_isas), then the one in use, whose
 * per-type kernels start-up measurement chose among the ISAs
 * (simd/autotune.c): it must pass the same tests. */
static int get_table(int idx, int exact, mr_kernels *k)
{
    if (idx < n_isas)
        return mr_kernels_for_isa(isas[idx], exact, k);
    *k = exact ? *mr_kernels_get_exact() : *mr_kernels_get();
    return 1;
}

static const char *table_name(int idx)
{
    return idx < n_isas ? mr_isa_name(isas[idx]) : "chosen";
}

/* ------------------------------------------------------------ helpers */

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

/* Block kinds:
 *   0 random bytes, d and dmin of random sign (negative minima);
 *   1 all zero;
 *   2 maximal: every 6-bit scale and min 63 (Q6_K: scales -128 and 127
 *     alternating), every quant at its top, d = dmin = 1 (Q6_K d = -1);
 *   3 quants at the bottom (0; Q6_K: q - 32 = -32), maximal scales,
 *     d > 0, dmin < 0;
 *   4 random bytes with one sub-block's scale 0.
 * Q2_K: maximal = scales 15, mins 15, q = 3; bottom q = 0.  Q3_K: maximal
 * = scales sc - 32 of -32 and 31 alternating with q - 4 = 3 and d = -1;
 * bottom = q - 4 = -4 with sc - 32 = -32 and d = 1; kind 4 has one
 * sub-block of sc - 32 = 0. */
static void fill_block(uint32_t t, uint8_t *b, int kind)
{
    const size_t bs = mr_type_get(t)->type_size;
    for (size_t i = 0; i < bs; i++)
        b[i] = (uint8_t)rnd();
    if (kind == 1) {
        memset(b, 0, bs);
        return;
    }
    if (t == MR_TYPE_Q2_K) {
        block_q2_K *q = (block_q2_K *)b;
        if (kind == 2 || kind == 3) {
            memset(q->scales, 0xff, sizeof q->scales);
            memset(q->qs, kind == 2 ? 0xff : 0x00, sizeof q->qs);
        }
        if (kind == 4)
            q->scales[rnd() % 16] &= 0xf0;
        put_f16((uint8_t *)&q->d, kind == 2 ? 1.0f : kind == 3 ? 0.5f : rnd_scale());
        put_f16((uint8_t *)&q->dmin, kind == 2 ? 1.0f : kind == 3 ? -0.25f : rnd_scale());
        return;
    }
    if (t == MR_TYPE_Q3_K) {
        block_q3_K *q = (block_q3_K *)b;
        if (kind == 2 || kind == 3 || kind == 4) {
            /* 6-bit scale l of sub-block j: a nibble of byte j % 8 (high
             * for j >= 8), bits 2 (j / 4) of byte 8 + j % 4 */
            uint8_t l[16];
            for (int j = 0; j < 16; j++)
                l[j] = kind == 2 ? (j & 1 ? 63 : 0) : kind == 3 ? 0 : (uint8_t)(rnd() % 64);
            if (kind == 4)
                l[rnd() % 16] = 32;
            memset(q->scales, 0, sizeof q->scales);
            for (int j = 0; j < 16; j++) {
                q->scales[j % 8] |= (uint8_t)((l[j] & 15) << (j < 8 ? 0 : 4));
                q->scales[8 + j % 4] |= (uint8_t)((l[j] >> 4) << 2 * (j / 4));
            }
        }
        if (kind == 2 || kind == 3) {
            memset(q->qs, kind == 2 ? 0xff : 0x00, sizeof q->qs);
            memset(q->hmask, kind == 2 ? 0xff : 0x00, sizeof q->hmask);
        }
        put_f16((uint8_t *)&q->d, kind == 2 ? -1.0f : kind == 3 ? 1.0f : rnd_scale());
        return;
    }
    if (t == MR_TYPE_Q6_K) {
        block_q6_K *q = (block_q6_K *)b;
        if (kind == 2 || kind == 3) {
            memset(q->ql, kind == 2 ? 0xff : 0x00, sizeof q->ql);
            memset(q->qh, kind == 2 ? 0xff : 0x00, sizeof q->qh);
            for (int j = 0; j < 16; j++)
                q->scales[j] = (int8_t)(j & 1 ? 127 : -128);
        }
        if (kind == 4)
            q->scales[rnd() % 16] = 0;
        put_f16((uint8_t *)&q->d, kind == 2 ? -1.0f : kind == 3 ? 1.0f : rnd_scale());
        return;
    }
    /* Q4_K / Q5_K share the header: d, dmin, scales[12] */
    if (kind == 2 || kind == 3) {
        memset(b + 4, 0xff, 12); /* all sc = m = 63 */
        memset(b + 16, kind == 2 ? 0xff : 0x00, bs - 16);
    }
    if (kind == 4) { /* sub-block j's scale 0: its 6 bits cleared */
        const int j = (int)(rnd() % 8);
        if (j < 4)
            b[4 + j] &= 0xc0;
        else {
            b[4 + j + 4] &= 0xf0;
            b[4 + j - 4] &= 0x3f;
        }
    }
    put_f16(b, kind == 2 ? 1.0f : kind == 3 ? 0.5f : rnd_scale());
    put_f16(b + 2, kind == 2 ? 1.0f : kind == 3 ? -0.25f : rnd_scale());
}

/* Q8_K activations of n elements by kind: 0 quantized random floats, 1
 * all zero, 2 every q = +-127 (random signs), 3 q = -127 everywhere;
 * bsums always match qs (the kernels' precondition). */
static void fill_act(uint8_t *a, int64_t n, int kind)
{
    const int64_t nb = n / QK_K;
    if (kind == 0) {
        float *x = malloc(sizeof(float) * (size_t)n);
        for (int64_t i = 0; i < n; i++)
            x[i] = rndf() * (i % 512 < 256 ? 1.0f : 40.0f);
        mr_quantize_row_q8_K(x, a, n);
        free(x);
        return;
    }
    for (int64_t b = 0; b < nb; b++) {
        block_q8_K blk;
        memset(&blk, 0, sizeof blk);
        if (kind != 1) {
            blk.d = 0.001f * (1.0f + rndf() * 0.5f);
            for (int j = 0; j < QK_K; j++)
                blk.qs[j] = (int8_t)(kind == 3 ? -127 : rnd() & 1 ? 127 : -127);
            for (int g = 0; g < QK_K / 16; g++) {
                int s = 0;
                for (int j = 0; j < 16; j++)
                    s += blk.qs[16 * g + j];
                blk.bsums[g] = (int16_t)s;
            }
        }
        memcpy(a + (size_t)b * sizeof blk, &blk, sizeof blk);
    }
}

/* sc and m of sub-block j (of 32) of a Q4_K/Q5_K header, from the layout
 * in quant/types.h, written out independently of the kernels */
static void scale_min(const uint8_t *s, int j, int *sc, int *m)
{
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
        *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

/* B of the contract for one row against activations xd (dequantised) */
static double term_bound(uint32_t t, const uint8_t *w, const float *xd, int64_t n)
{
    const size_t bs = mr_type_get(t)->type_size;
    float *wd = malloc(sizeof(float) * (size_t)n);
    mr_type_get(t)->to_f32(w, wd, n);
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double mag = fabs((double)wd[i]);
        if (t == MR_TYPE_Q2_K) { /* m = the high nibble of sub-block i / 16's scale */
            const block_q2_K *q = (const block_q2_K *)(w + (size_t)(i / QK_K) * bs);
            const double dm = (double)mr_f16_to_f32(q->dmin) * (q->scales[i % QK_K / 16] >> 4);
            mag = fabs((double)wd[i] + dm) + fabs(dm);
        } else if (t == MR_TYPE_Q4_K || t == MR_TYPE_Q5_K) { /* |d sc q| + |dmin m| >= |d sc q - dmin m| */
            const uint8_t *b = w + (size_t)(i / QK_K) * bs;
            int sc, m;
            scale_min(b + 4, (int)(i % QK_K) / 32, &sc, &m);
            const double dmin = mr_f16_to_f32((uint16_t)(b[2] | b[3] << 8));
            mag = fabs((double)wd[i] + dmin * m) + fabs(dmin * m);
        }
        s += mag * fabs((double)xd[i]);
    }
    free(wd);
    return s;
}

/* ------------------------------------------------------------ tests */

/* vec_dot and gemm of each ISA against scalar, every block kind, every
 * size; gemm and vec_dot agree to the bit. */
START_TEST(integer_dots_match_scalar)
{
    const int ti_ = _i / N_COUNTS;
    const int nb = block_counts[_i % N_COUNTS];
    const int64_t n = (int64_t)nb * QK_K;
    mr_kernels k;
    ck_assert(get_table(ti_, 0, &k));
    const mr_isa isa = k.isa;
    for (int ti = 0; ti < N_KTYPES; ti++) {
        const uint32_t t = ktypes[ti];
        if (!k.vec_dot[t] || k.vec_dot[t] == ref_fast.vec_dot[t])
            continue;
        ck_assert_uint_eq(k.act_type[t], MR_TYPE_Q8_K);
        const size_t rb = mr_type_row_bytes(t, (uint64_t)n), ab = (size_t)nb * sizeof(block_q8_K);
        const size_t bs = mr_type_get(t)->type_size;
        /* 5 rows (the block kinds, rotated per block) x 4 tokens (the
         * activation kinds); large rows get fewer (the sizes still run) */
        const int rows = nb > 64 ? 3 : 5, toks = 4;
        const uint64_t seed = 6007u * (uint64_t)isa + 101u * (uint64_t)nb + t;
        rng = seed;
        guarded w = guarded_alloc(rb * (size_t)rows), a = guarded_alloc(ab * (size_t)toks);
        for (int r = 0; r < rows; r++)
            for (int b = 0; b < nb; b++)
                fill_block(t, w.p + rb * (size_t)r + bs * (size_t)b, (r + b) % 5);
        for (int tk = 0; tk < toks; tk++)
            fill_act(a.p + ab * (size_t)tk, n, tk);
        float *xd = malloc(sizeof(float) * (size_t)n);
        float yr[5 * 4], ys[5 * 4], part[5 * 4];
        for (int r = 0; r < rows; r++)
            for (int tk = 0; tk < toks; tk++)
                yr[tk * rows + r] = ref_fast.vec_dot[t](w.p + rb * (size_t)r, a.p + ab * (size_t)tk, n);
        GUARD_KERNEL("%s %s gemm blocks %d seed %llu", table_name(ti_), mr_type_get(t)->name, nb,
                     (unsigned long long)seed);
        mr_matmul_rows(&k, t, w.p, rb, a.p, n, toks, ys, rows, 0, rows);
        for (int tk = 0; tk < toks; tk++) {
            mr_dequantize_row_q8_K(a.p + ab * (size_t)tk, xd, n);
            for (int r = 0; r < rows; r++) {
                const double bound = term_bound(t, w.p + rb * (size_t)r, xd, n);
                const float got = ys[tk * rows + r], want = yr[tk * rows + r];
                ck_assert_msg(fabs((double)got - want) <= 1e-5 * bound + 1e-6,
                              "%s row %d (kinds %d..) token kind %d: %.9g vs scalar %.9g (B %g)",
                              current, r, r % 5, tk, got, want, bound);
                GUARD_KERNEL("%s %s vec_dot blocks %d row %d token %d seed %llu", table_name(ti_),
                             mr_type_get(t)->name, nb, r, tk, (unsigned long long)seed);
                const float v = k.vec_dot[t](w.p + rb * (size_t)r, a.p + ab * (size_t)tk, n);
                ck_assert_msg(memcmp(&v, &got, 4) == 0, "%s: vec_dot %.9g, gemm %.9g", current, v, got);
            }
        }
        /* decode = prefill: one token at a time over row ranges [1, 4), [0, 1), [4, rows) */
        for (int tk = 0; tk < toks; tk++) {
            mr_matmul_rows(&k, t, w.p, rb, a.p + ab * (size_t)tk, n, 1, part + tk * rows, rows, 1, rows < 4 ? rows : 4);
            mr_matmul_rows(&k, t, w.p, rb, a.p + ab * (size_t)tk, n, 1, part + tk * rows, rows, 0, 1);
            if (rows > 4)
                mr_matmul_rows(&k, t, w.p, rb, a.p + ab * (size_t)tk, n, 1, part + tk * rows, rows, 4, rows);
        }
        ck_assert_msg(memcmp(part, ys, sizeof(float) * (size_t)(rows * toks)) == 0,
                      "%s %s blocks %d: one token at a time differs from the batch",
                      table_name(ti_), mr_type_get(t)->name, nb);
        free(xd);
        guarded_free(&w);
        guarded_free(&a);
    }
}
END_TEST

/* Exact path: dot_f32 of byte-built blocks with f32 activations. */
START_TEST(f32_dots_match_scalar)
{
    const int ti_ = _i / N_COUNTS;
    const int nb = block_counts[_i % N_COUNTS];
    const int64_t n = (int64_t)nb * QK_K;
    mr_kernels k;
    ck_assert(get_table(ti_, 1, &k));
    const mr_isa isa = k.isa;
    for (int ti = 0; ti < N_KTYPES; ti++) {
        const uint32_t t = ktypes[ti];
        if (!mr_type_computable(t) || k.dot_f32[t] == ref_exact.dot_f32[t])
            continue;
        const size_t rb = mr_type_row_bytes(t, (uint64_t)n), bs = mr_type_get(t)->type_size;
        const uint64_t seed = 7717u * (uint64_t)isa + 103u * (uint64_t)nb + t;
        rng = seed;
        guarded w = guarded_alloc(rb), xg = guarded_alloc(sizeof(float) * (size_t)n);
        float *x = (float *)xg.p, *wd = malloc(sizeof(float) * (size_t)n);
        for (int kind = 0; kind < 5; kind++) {
            for (int b = 0; b < nb; b++)
                fill_block(t, w.p + bs * (size_t)b, (kind + b) % 5);
            for (int64_t i = 0; i < n; i++)
                x[i] = rndf() * (kind == 2 ? 1000.0f : 1.0f);
            mr_type_get(t)->to_f32(w.p, wd, n);
            double bound = 0.0;
            for (int64_t i = 0; i < n; i++)
                bound += fabs((double)wd[i] * x[i]);
            const float want = ref_exact.dot_f32[t](w.p, x, n);
            GUARD_KERNEL("%s dot_f32 %s blocks %d kind %d seed %llu", table_name(ti_),
                         mr_type_get(t)->name, nb, kind, (unsigned long long)seed);
            const float got = k.dot_f32[t](w.p, x, n);
            ck_assert_msg(fabs((double)got - want) <= 1e-5 * bound + 1e-6, "%s: %.9g vs scalar %.9g",
                          current, got, want);
        }
        free(wd);
        guarded_free(&w);
        guarded_free(&xg);
    }
}
END_TEST

/* The f32 dot of every ISA at every weight alignment 0..63 bytes: the
 * result depends on the values only (a kernel that peels to the weights'
 * next 64-byte boundary changes the order of its sums with the pointer),
 * so every alignment must give the first one's bits, and that must agree
 * with the scalar dot within 1e-5 * sum |w x| + 1e-6.  Odd offsets are
 * given to SIMD kernels only (they load unaligned; the scalar reference
 * reads floats). */
START_TEST(f32_dot_independent_of_alignment)
{
    static const int64_t lens[] = {1, 15, 16, 17, 63, 64, 65, 127, 1000, 4103};
    mr_kernels k;
    ck_assert(get_table(_i, 1, &k));
    const mr_dot_f32_fn dot = k.dot_f32[MR_TYPE_F32];
    if (!dot || dot == ref_exact.dot_f32[MR_TYPE_F32])
        return;
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        const int64_t n = lens[li];
        const size_t len = sizeof(float) * (size_t)n;
        rng = 9001u * (uint64_t)k.isa + (uint64_t)n;
        float *wv = malloc(len);
        guarded xg = guarded_alloc(len);
        float *x = (float *)xg.p;
        for (int64_t i = 0; i < n; i++) {
            wv[i] = rndf() * (i % 7 == 0 ? 1000.0f : 1.0f);
            x[i] = rndf();
        }
        double bound = 0.0;
        for (int64_t i = 0; i < n; i++)
            bound += fabs((double)wv[i] * x[i]);
        const float want = ref_exact.dot_f32[MR_TYPE_F32](wv, x, n);
        float at0 = 0.0f;
        for (int off = 0; off < 64; off++) {
            /* the row ends off bytes before the guard page, so over the
             * 64 offsets its start takes every alignment mod 64 once */
            guarded w = guarded_alloc(len + 64);
            uint8_t *row = w.p + 64 - off;
            memcpy(row, wv, len);
            const unsigned mis = (unsigned)((uintptr_t)row & 63);
            GUARD_KERNEL("%s dot_f32 f32 n %lld at alignment %u", table_name(_i), (long long)n, mis);
            const float got = dot(row, x, n);
            if (off == 0) {
                at0 = got;
                ck_assert_msg(fabs((double)got - want) <= 1e-5 * bound + 1e-6, "%s: %.9g vs scalar %.9g",
                              current, got, want);
            } else {
                ck_assert_msg(memcmp(&got, &at0, sizeof got) == 0, "%s: %.9g, at offset 0 %.9g", current, got,
                              at0);
            }
            guarded_free(&w);
        }
        guarded_free(&xg);
        free(wv);
    }
}
END_TEST

/* Wide batches: register tiles with every row and token remainder, gemm
 * of the whole batch equal to vec_dot bit for bit, and equal to itself
 * when the rows and tokens are split into two calls at odd places (row
 * ranges r0..r1 as threads take them). */
START_TEST(gemm_tiles_match_vec_dot)
{
    const int ti_ = _i;
    static const int shapes[][3] = {/* rows, tokens, blocks */
                                    {1, 2, 1}, {2, 3, 2}, {5, 7, 3}, {9, 5, 1}, {13, 9, 2},
                                    {4, 16, 4}, {7, 33, 1}, {3, 4, 2}, {6, 1, 2}, {2, 8, 5},
                                    {3, 17, 5} /* > 64 token-blocks: AVX-512 Q4_K/Q5_K scratch on the heap */};
    mr_kernels k;
    ck_assert(get_table(ti_, 0, &k));
    const mr_isa isa = k.isa;
    for (int ti = 0; ti < N_KTYPES; ti++) {
        const uint32_t t = ktypes[ti];
        if (!k.gemm[t] || k.gemm[t] == ref_fast.gemm[t])
            continue;
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            const int rows = shapes[si][0], toks = shapes[si][1], nb = shapes[si][2];
            const int64_t n = (int64_t)nb * QK_K;
            const size_t rb = mr_type_row_bytes(t, (uint64_t)n), bs = mr_type_get(t)->type_size;
            const size_t ab = (size_t)nb * sizeof(block_q8_K);
            const uint64_t seed = 9001u * (uint64_t)isa + 31u * si + t;
            rng = seed;
            guarded w = guarded_alloc(rb * (size_t)rows), a = guarded_alloc(ab * (size_t)toks);
            for (int r = 0; r < rows; r++)
                for (int b = 0; b < nb; b++)
                    fill_block(t, w.p + rb * (size_t)r + bs * (size_t)b, (int)(rnd() % 5));
            for (int tk = 0; tk < toks; tk++)
                fill_act(a.p + ab * (size_t)tk, n, tk % 3 == 1 ? 0 : tk % 4);
            float *y = malloc(sizeof(float) * (size_t)(rows * toks));
            GUARD_KERNEL("%s gemm %s rows %d tokens %d blocks %d seed %llu", table_name(ti_),
                         mr_type_get(t)->name, rows, toks, nb, (unsigned long long)seed);
            k.gemm[t](w.p, rb, a.p, ab, n, toks, y, rows, 0, rows);
            float *xd = malloc(sizeof(float) * (size_t)n);
            for (int tk = 0; tk < toks; tk++) {
                mr_dequantize_row_q8_K(a.p + ab * (size_t)tk, xd, n);
                for (int r = 0; r < rows; r++) {
                    const float v = k.vec_dot[t](w.p + rb * (size_t)r, a.p + ab * (size_t)tk, n);
                    const float want = ref_fast.vec_dot[t](w.p + rb * (size_t)r, a.p + ab * (size_t)tk, n);
                    const float got = y[tk * rows + r];
                    const double bound = term_bound(t, w.p + rb * (size_t)r, xd, n);
                    ck_assert_msg(memcmp(&v, &got, 4) == 0, "%s row %d token %d: vec_dot %.9g gemm %.9g",
                                  current, r, tk, v, got);
                    ck_assert_msg(fabs((double)got - want) <= 1e-5 * bound + 1e-6,
                                  "%s row %d token %d: %.9g vs scalar %.9g (B %g)", current, r, tk, got,
                                  want, bound);
                }
            }
            /* rows [0, rm) and [rm, rows), tokens [0, ts) and [ts, toks) */
            const int rm = rows / 2 | 1, ts = toks / 2 | 1;
            float *part = malloc(sizeof(float) * (size_t)(rows * toks));
            for (int h = 0; h < 2; h++) {
                const int t0 = h ? ts : 0, nt = h ? toks - ts : (ts < toks ? ts : toks);
                if (nt <= 0)
                    continue;
                const uint8_t *ah = a.p + ab * (size_t)t0;
                k.gemm[t](w.p, rb, ah, ab, n, nt, part + t0 * rows, rows, 0, rm < rows ? rm : rows);
                if (rm < rows)
                    k.gemm[t](w.p, rb, ah, ab, n, nt, part + t0 * rows, rows, rm, rows);
            }
            ck_assert_msg(memcmp(part, y, sizeof(float) * (size_t)(rows * toks)) == 0,
                          "%s: rows split at %d and tokens at %d differ from one call", current, rm, ts);
            free(part);
            free(xd);
            free(y);
            guarded_free(&w);
            guarded_free(&a);
        }
    }
}
END_TEST

/* A repacked copy (mr_kernels.repack) gives the bits of the file's gemm
 * of the same table, for every row range (whole groups or not) and token
 * count; the copy fills exactly its stated size (the buffer ends at a
 * guard page) and the kernel reads no byte past it. */
START_TEST(packed_gemm_matches_file_gemm)
{
    const int ti_ = _i;
    static const int shapes[][3] = {/* rows, tokens, blocks */
                                    {16, 1, 1}, {16, 4, 2}, {32, 3, 3}, {48, 5, 1}, {16, 9, 9},
                                    {32, 17, 2}, {64, 2, 4}, {16, 7, 300} /* > 64 K columns */,
                                    /* every tile width: 6, 8, 8 + 4 */
                                    {32, 6, 3}, {16, 8, 2}, {16, 12, 5}};
    mr_kernels k;
    ck_assert(get_table(ti_, 0, &k));
    int tested = 0;
    for (int ti = 0; ti < N_KTYPES; ti++) {
        const uint32_t t = ktypes[ti];
        if (!k.repack[t])
            continue;
        ck_assert_msg(k.gemm_packed[t] && k.pack_block_bytes[t] > 0, "%s: half a packed layout",
                      mr_type_get(t)->name);
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            const int rows = shapes[si][0], toks = shapes[si][1], nb = shapes[si][2];
            const int64_t n = (int64_t)nb * QK_K;
            ck_assert(mr_can_pack(&k, t, rows, n));
            ck_assert(!mr_can_pack(&k, t, rows + 1, n));
            const size_t rb = mr_type_row_bytes(t, (uint64_t)n), bs = mr_type_get(t)->type_size;
            const size_t prb = mr_pack_row_bytes(&k, t, n);
            const size_t ab = (size_t)nb * sizeof(block_q8_K);
            const uint64_t seed = 7717u * (uint64_t)k.isa + 13u * si + t;
            rng = seed;
            guarded w = guarded_alloc(rb * (size_t)rows), a = guarded_alloc(ab * (size_t)toks);
            guarded pk = guarded_alloc(prb * (size_t)rows);
            for (int r = 0; r < rows; r++)
                for (int b = 0; b < nb; b++)
                    fill_block(t, w.p + rb * (size_t)r + bs * (size_t)b, (int)(rnd() % 5));
            for (int tk = 0; tk < toks; tk++)
                fill_act(a.p + ab * (size_t)tk, n, tk % 3 == 1 ? 0 : tk % 4);
            GUARD_KERNEL("%s repack %s rows %d blocks %d seed %llu", table_name(ti_), mr_type_get(t)->name,
                         rows, nb, (unsigned long long)seed);
            k.repack[t](w.p, rb, rows, n, pk.p);
            float *want = malloc(sizeof(float) * (size_t)(rows * toks));
            float *got = malloc(sizeof(float) * (size_t)(rows * toks));
            k.gemm[t](w.p, rb, a.p, ab, n, toks, want, rows, 0, rows);
            GUARD_KERNEL("%s gemm_packed %s rows %d tokens %d blocks %d seed %llu", table_name(ti_),
                         mr_type_get(t)->name, rows, toks, nb, (unsigned long long)seed);
            for (int i = 0; i < rows * toks; i++)
                got[i] = -12345.0f;
            k.gemm_packed[t](pk.p, prb, a.p, ab, n, toks, got, rows, 0, rows);
            for (int tk = 0; tk < toks; tk++)
                for (int r = 0; r < rows; r++)
                    ck_assert_msg(memcmp(&want[tk * rows + r], &got[tk * rows + r], 4) == 0,
                                  "%s row %d token %d: packed %.9g, file gemm %.9g", current, r, tk,
                                  got[tk * rows + r], want[tk * rows + r]);
            /* ranges off the group boundaries: each row written once, by
             * the call whose range holds it */
            const int cut1 = 5, cut2 = rows - 11;
            for (int i = 0; i < rows * toks; i++)
                got[i] = -12345.0f;
            k.gemm_packed[t](pk.p, prb, a.p, ab, n, toks, got, rows, 0, cut1);
            for (int tk = 0; tk < toks; tk++)
                for (int r = cut1; r < rows; r++)
                    ck_assert_msg(got[tk * rows + r] == -12345.0f, "%s: range [0, %d) wrote row %d",
                                  current, cut1, r);
            k.gemm_packed[t](pk.p, prb, a.p, ab, n, toks, got, rows, cut1, cut2);
            k.gemm_packed[t](pk.p, prb, a.p, ab, n, toks, got, rows, cut2, rows);
            ck_assert_msg(memcmp(got, want, sizeof(float) * (size_t)(rows * toks)) == 0,
                          "%s: rows split at %d and %d differ from the file gemm", current, cut1, cut2);
            tested++;
            free(want);
            free(got);
            guarded_free(&w);
            guarded_free(&a);
            guarded_free(&pk);
        }
    }
    printf("%s: %d packed shapes\n", table_name(ti_), tested);
}
END_TEST

/* The table in use takes each type's vec_dot and gemm from the ISA the
 * start-up measurement names, both from the same one (so decode and
 * prefill agree), and only from ISAs this CPU runs. */
START_TEST(chosen_table_is_what_autotune_reports)
{
    const mr_kernels *k = mr_kernels_get();
    const mr_autotune_report *r = mr_kernels_autotune_report();
    printf("table in use: %s, autotune %s (%.1f ms)\n", mr_isa_name(k->isa),
           r->measured ? "measured" : "off", r->ms);
    for (uint32_t t = 0; t < MR_TYPE_COUNT; t++) {
        if (!k->vec_dot[t])
            continue;
        mr_kernels from;
        ck_assert_msg(mr_kernels_for_isa(r->chosen[t], 0, &from), "type %u: ISA %s not available", t,
                      mr_isa_name(r->chosen[t]));
        ck_assert_msg(k->vec_dot[t] == from.vec_dot[t] && k->gemm[t] == from.gemm[t],
                      "%s: kernels are not %s's", mr_type_get(t)->name, mr_isa_name(r->chosen[t]));
        ck_assert_uint_eq(k->act_type[t], from.act_type[t]);
        if (r->measured && r->gbs[t][r->chosen[t]] > 0.0 && !k->repack[t])
            for (int i = 0; i < MR_ISA_COUNT; i++) {
                /* the highest ISA stays unless beaten by the margin */
                const double m = r->chosen[t] == k->isa ? MR_AUTOTUNE_MARGIN : 1.0;
                ck_assert_msg(r->gbs[t][i] <= r->gbs[t][r->chosen[t]] * m,
                              "%s: %s measured faster than the chosen %s by more than the margin",
                              mr_type_get(t)->name, mr_isa_name((mr_isa)i), mr_isa_name(r->chosen[t]));
            }
    }
    const char *env = getenv("MOERUN_ISA");
    if (env && mr_isa_parse(env) != MR_ISA_COUNT && mr_kernels_for_isa(mr_isa_parse(env), 0, &(mr_kernels){0}))
        ck_assert_msg(!r->measured, "MOERUN_ISA=%s must switch the autotune off", env);
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
    printf("K-quant kernels compared with scalar:");
    for (int i = 0; i < n_isas; i++)
        printf(" %s", mr_isa_name(isas[i]));
    printf("%s\n", n_isas ? "" : " none (this CPU or build has no SIMD kernels)");

    Suite *s = suite_create("kernels_k");
    TCase *tc = tcase_create("k-quants-vs-scalar");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, chosen_table_is_what_autotune_reports);
    if (n_isas) { /* each ISA, then the table in use */
        tcase_add_loop_test(tc, integer_dots_match_scalar, 0, (n_isas + 1) * N_COUNTS);
        tcase_add_loop_test(tc, f32_dots_match_scalar, 0, (n_isas + 1) * N_COUNTS);
        tcase_add_loop_test(tc, gemm_tiles_match_vec_dot, 0, n_isas + 1);
        tcase_add_loop_test(tc, packed_gemm_matches_file_gemm, 0, n_isas + 1);
        tcase_add_loop_test(tc, f32_dot_independent_of_alignment, 0, n_isas + 1);
    }
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
