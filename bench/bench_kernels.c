/* bench_kernels.c - how fast each ISA's kernels are, beside the scalar path
 * and the machine's memory read bandwidth measured in the same run.
 *
 *   bench/bench_kernels [--quick] [--isa NAME] [--type NAME] [--quantize-only]
 *
 * - memory: mr_read_bandwidth over a 1 GB buffer (the widest vector loop the
 *   CPU runs; best of 3 passes);
 * - decode (matrix x vector): GB/s of weights streamed by mr_matmul_rows
 *   (activation preparation included) for one token over a matrix of
 *   n = 4096 columns and ~256 MB of weights, well past any L3, one
 *   thread; "vec_dot loop" is the same with the gemm entry removed, so
 *   the driver calls vec_dot row by row;
 * - gemm (matrix x matrix): tokens/s for 1, 4, 16 and 64 tokens through a
 *   4096 x 14336 matrix (a Mixtral-sized expert's up projection), one
 *   thread; the i-quants (IQ1/IQ2/IQ3) in a table of their own, each
 *   ISA's gemm beside its vec_dot loop (the driver without the gemm).
 * - activation quantizers: f32 -> Q8_0 / Q8_1 / Q8_K (quantize_act, which
 *   every fast matmul runs first), millions of floats/s over 16 rows of
 *   4096 (256 KB, cache-resident), each ISA beside scalar (--type: only
 *   the format that type's activations take; --quantize-only: just this);
 * Each figure is the best of a few repetitions, timed in this thread's CPU
 * time (the machine may be shared: compare columns of one run, not runs).  Tables are markdown.  It
 * asserts nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels.h"
#include "../quant/types_iq.h"

static int quick, quantize_only;

/* This thread's CPU time: the machine is shared, and time spent
 * descheduled says nothing about a kernel. */
static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static uint64_t rng = 0x2545f4914f6cdd1dull;

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static float rndf(void)
{
    return (float)((double)(rnd() >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* ------------------------------------------------------------ bandwidth */

/* ------------------------------------------------------------ matrices */

typedef struct {
    const char *label; /* "Q4_0 x Q8_0" */
    uint32_t type;
    int exact;
} bench_case;

static const bench_case cases[] = {
    {"Q4_0 x Q8_0 (fast)", MR_TYPE_Q4_0, 0}, {"Q8_0 x Q8_0 (fast)", MR_TYPE_Q8_0, 0},
    {"Q4_0 x f32 (exact)", MR_TYPE_Q4_0, 1}, {"Q8_0 x f32 (exact)", MR_TYPE_Q8_0, 1},
    {"F16 x f32", MR_TYPE_F16, 1},           {"BF16 x f32", MR_TYPE_BF16, 1},
    {"F32 x f32", MR_TYPE_F32, 1},
    {"Q4_K x Q8_K (fast)", MR_TYPE_Q4_K, 0}, {"Q5_K x Q8_K (fast)", MR_TYPE_Q5_K, 0},
    {"Q6_K x Q8_K (fast)", MR_TYPE_Q6_K, 0}, {"Q4_K x f32 (exact)", MR_TYPE_Q4_K, 1},
    {"Q5_K x f32 (exact)", MR_TYPE_Q5_K, 1}, {"Q6_K x f32 (exact)", MR_TYPE_Q6_K, 1},
    {"MXFP4 x Q8_0 (fast)", MR_TYPE_MXFP4, 0}, {"MXFP4 x f32 (exact)", MR_TYPE_MXFP4, 1},
    {"Q5_0 x Q8_0 (fast)", MR_TYPE_Q5_0, 0},   {"IQ4_NL x Q8_0 (fast)", MR_TYPE_IQ4_NL, 0},
    {"Q4_1 x Q8_1 (fast)", MR_TYPE_Q4_1, 0},   {"Q5_1 x Q8_1 (fast)", MR_TYPE_Q5_1, 0},
    {"IQ4_XS x Q8_K (fast)", MR_TYPE_IQ4_XS, 0}, {"Q2_K x Q8_K (fast)", MR_TYPE_Q2_K, 0},
    {"Q3_K x Q8_K (fast)", MR_TYPE_Q3_K, 0},
    {"IQ2_XXS x Q8_K (fast)", MR_TYPE_IQ2_XXS, 0}, {"IQ2_XS x Q8_K (fast)", MR_TYPE_IQ2_XS, 0},
    {"IQ2_S x Q8_K (fast)", MR_TYPE_IQ2_S, 0},     {"IQ3_XXS x Q8_K (fast)", MR_TYPE_IQ3_XXS, 0},
    {"IQ3_S x Q8_K (fast)", MR_TYPE_IQ3_S, 0},     {"IQ1_S x Q8_K (fast)", MR_TYPE_IQ1_S, 0},
    {"IQ1_M x Q8_K (fast)", MR_TYPE_IQ1_M, 0},
};
#define N_CASES (int)(sizeof cases / sizeof cases[0])

/* Random weights of a type, rows x n: quantized types get random payload
 * bytes with a fixed, finite scale (the kernels' speed does not depend on
 * the values); float types get values in [-1, 1]. */
static void fill_weights(uint32_t t, uint8_t *w, int64_t n, int64_t rows)
{
    const size_t rb = mr_type_row_bytes(t, (uint64_t)n), total = rb * (size_t)rows;
    if (t == MR_TYPE_Q4_K || t == MR_TYPE_Q5_K || t == MR_TYPE_Q6_K) {
        /* random quants, scales and mins; fixed finite f16 super-block
         * scales (Q4_K/Q5_K: d, dmin first; Q6_K: d last) */
        for (size_t i = 0; i + 8 <= total; i += 8) {
            uint64_t v = rnd();
            memcpy(w + i, &v, 8);
        }
        const size_t bs = mr_type_get(t)->type_size;
        const uint16_t d = mr_f32_to_f16(0.01f);
        for (size_t b = 0; b < total / bs; b++) {
            if (t == MR_TYPE_Q6_K) {
                memcpy(w + b * bs + 208, &d, 2);
            } else {
                memcpy(w + b * bs, &d, 2);
                memcpy(w + b * bs + 2, &d, 2);
            }
        }
        return;
    }
    if (t == MR_TYPE_Q4_0 || t == MR_TYPE_Q8_0) {
        for (size_t i = 0; i + 8 <= total; i += 8) {
            uint64_t v = rnd();
            memcpy(w + i, &v, 8);
        }
        const size_t bs = mr_type_get(t)->type_size;
        const uint16_t d = mr_f32_to_f16(0.01f);
        for (size_t b = 0; b < total / bs; b++) {
            memcpy(w + b * bs, &d, 2);
            if (t == MR_TYPE_Q8_0)
                for (size_t j = 2; j < bs; j++)
                    if (w[b * bs + j] == 0x80)
                        w[b * bs + j] = 0x81; /* ggml never writes -128 */
        }
        return;
    }
    /* the further formats: random payload, f16 scales at these offsets */
    static const struct {
        uint32_t t;
        int off[2];
    } more[] = {{MR_TYPE_Q4_1, {0, 2}},   {MR_TYPE_Q5_0, {0, -1}},   {MR_TYPE_Q5_1, {0, 2}},
                {MR_TYPE_IQ4_NL, {0, -1}}, {MR_TYPE_IQ4_XS, {0, -1}}, {MR_TYPE_Q2_K, {80, 82}},
                {MR_TYPE_Q3_K, {108, -1}}, {MR_TYPE_IQ2_XXS, {0, -1}}, {MR_TYPE_IQ2_XS, {0, -1}},
                {MR_TYPE_IQ2_S, {0, -1}},  {MR_TYPE_IQ3_XXS, {0, -1}}, {MR_TYPE_IQ3_S, {0, -1}},
                {MR_TYPE_IQ1_S, {0, -1}},  {MR_TYPE_IQ1_M, {-1, -1}}};
    for (size_t m = 0; m < sizeof more / sizeof more[0]; m++) {
        if (more[m].t != t)
            continue;
        const size_t bs = mr_type_get(t)->type_size;
        const uint16_t d = mr_f32_to_f16(0.01f);
        for (size_t i = 0; i < total; i++)
            w[i] = (uint8_t)rnd();
        for (size_t b = 0; b < total / bs; b++)
            for (int k = 0; k < 2; k++)
                if (more[m].off[k] >= 0)
                    memcpy(w + b * bs + more[m].off[k], &d, 2);
        return;
    }
    if (t == MR_TYPE_MXFP4) { /* random codes, exponent 2^-8 */
        for (size_t i = 0; i < total; i++)
            w[i] = (uint8_t)rnd();
        for (size_t b = 0; b < total / 17; b++)
            w[b * 17] = 120;
        return;
    }
    float row[4096];
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t i = 0; i < n; i++)
            row[i] = rndf();
        mr_type_get(t)->from_f32(row, w + (size_t)r * rb, n);
    }
}

/* Seconds of the best repetition of one mr_matmul_rows (with activation
 * preparation) of n_tok tokens over rows x n. */
static double time_matmul(const mr_kernels *k, uint32_t t, const uint8_t *w, int64_t n,
                          int64_t rows, const float *x, int64_t n_tok, void *abuf, float *y,
                          double budget)
{
    const size_t rb = mr_type_row_bytes(t, (uint64_t)n);
    double best = 1e30, spent = 0.0;
    for (int rep = 0; rep < 5 && (rep < 2 || spent < budget); rep++) {
        double t0 = now();
        const void *act = mr_act_prepare(k, t, x, n, n_tok, abuf);
        mr_matmul_rows(k, t, w, rb, act, n, n_tok, y, rows, 0, rows);
        double dt = now() - t0;
        spent += dt;
        best = dt < best ? dt : best;
        if (spent > 4 * budget)
            break; /* a slow scalar case: one or two repetitions say enough */
    }
    return best;
}

/* Best seconds of one pass of quantize_act[at] over rows x n floats. */
static double time_quantize(mr_from_f32_fn q, const float *x, int64_t n, int64_t rows, void *out,
                            size_t out_stride)
{
    double best = 1e30, spent = 0.0;
    for (int rep = 0; rep < 200 && (rep < 3 || spent < 0.05); rep++) {
        const double t0 = now();
        for (int64_t r = 0; r < rows; r++)
            q(x + r * n, (uint8_t *)out + (size_t)r * out_stride, n);
        const double dt = now() - t0;
        spent += dt;
        best = dt < best ? dt : best;
    }
    return best;
}

static int want_isa[MR_ISA_COUNT];
static const char *want_type;

static int case_wanted(const bench_case *c)
{
    return !want_type || strcmp(want_type, mr_type_get(c->type)->name) == 0;
}

int main(int argc, char **argv)
{
    int any_isa = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            quick = 1;
        else if (strcmp(argv[i], "--quantize-only") == 0)
            quantize_only = 1;
        else if (strcmp(argv[i], "--isa") == 0 && i + 1 < argc) {
            mr_isa isa = mr_isa_parse(argv[++i]);
            if (isa == MR_ISA_COUNT) {
                fprintf(stderr, "unknown ISA %s\n", argv[i]);
                return 2;
            }
            want_isa[isa] = any_isa = 1;
        } else if (strcmp(argv[i], "--type") == 0 && i + 1 < argc)
            want_type = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--quick] [--isa scalar|avx2|avx2vnni|avx512|neon] [--type Q4_0|Q8_0|Q4_K|Q5_K|Q6_K|MXFP4|Q5_0|IQ4_NL|Q4_1|Q5_1|IQ4_XS|Q2_K|Q3_K|F16|BF16|F32] [--quantize-only]\n",
                    argv[0]);
            return 2;
        }
    }
    mr_isa isas[MR_ISA_COUNT];
    int n_isa = 0;
    for (int i = 0; i < MR_ISA_COUNT; i++) {
        mr_kernels k;
        if ((!any_isa || want_isa[i] || i == MR_ISA_SCALAR) && mr_kernels_for_isa((mr_isa)i, 0, &k))
            isas[n_isa++] = (mr_isa)i;
    }
    char feat[256];
    mr_cpu_features(feat, sizeof feat);
    printf("# moerun kernel benchmark\n\nCPU features: %s\n\n", feat);

    /* ---- memory */
    /* simd/membw.c: the widest loads this CPU runs, as bench and --stats use */
    const double bw_wide = quantize_only ? 0.0 : mr_read_bandwidth(1, (size_t)1 << 30);
    if (!quantize_only)
        printf("Memory read bandwidth, one thread, 1 GB streaming sum (best of 5): **%.1f GB/s**\n\n",
               bw_wide);
    /* what start-up measured over 3 MB (simd/autotune.c): the per-type
     * choice of the table in use, against this run's figures below */
    const mr_autotune_report *tr = mr_kernels_autotune_report();
    if (tr->measured) {
        printf("Start-up autotune (one token over %zu MB, %.1f ms): ", tr->bytes >> 20, tr->ms);
        for (uint32_t t = 0; t < MR_TYPE_COUNT; t++)
            if (tr->gbs[t][tr->chosen[t]] > 0.0)
                printf("%s -> %s (%.1f GB/s)  ", mr_type_get(t)->name, mr_isa_name(tr->chosen[t]),
                       tr->gbs[t][tr->chosen[t]]);
        printf("\n\n");
    }

    /* ---- activation quantizers */
    {
        const int64_t qn = 4096, qrows = 16;
        float *qx = malloc(sizeof(float) * (size_t)(qn * qrows));
        const size_t qstride = (size_t)qn / 32 * 36 + 64; /* the largest: Q8_1's 36 bytes per 32 */
        void *qout = malloc(qstride * (size_t)qrows);
        mr_kernels ref;
        mr_kernels_for_isa(MR_ISA_SCALAR, 0, &ref);
        uint32_t only = MR_TYPE_COUNT;
        for (uint32_t t = 0; want_type && t < MR_TYPE_COUNT; t++)
            if (mr_type_get(t)->name && strcmp(want_type, mr_type_get(t)->name) == 0)
                only = ref.act_type[t];
        if (qx && qout) {
            for (int64_t i = 0; i < qn * qrows; i++)
                qx[i] = rndf();
            printf("## Activation quantizers: f32 -> format, Mfloat/s (%lld rows of %lld, 1 thread)\n\n",
                   (long long)qrows, (long long)qn);
            printf("| format |");
            for (int i = 0; i < n_isa; i++)
                printf(" %s |", mr_isa_name(isas[i]));
            printf(" best / scalar |\n|---|");
            for (int i = 0; i < n_isa; i++)
                printf("---:|");
            printf("---:|\n");
            for (uint32_t at = 0; at < MR_TYPE_COUNT; at++) {
                if (!ref.quantize_act[at] || (want_type && at != only))
                    continue;
                double r[MR_ISA_COUNT] = {0}, best = 0.0;
                for (int i = 0; i < n_isa; i++) {
                    mr_kernels k;
                    mr_kernels_for_isa(isas[i], 0, &k);
                    r[i] = (double)(qn * qrows) / time_quantize(k.quantize_act[at], qx, qn, qrows, qout, qstride) / 1e6;
                    best = r[i] > best ? r[i] : best;
                }
                printf("| %s |", mr_type_get(at)->name);
                for (int i = 0; i < n_isa; i++)
                    printf(" %.0f |", r[i]);
                printf(" %.1fx |\n", best / r[0]);
            }
            printf("\n");
        }
        free(qx);
        free(qout);
        if (quantize_only)
            return 0;
    }

    /* ---- decode: matrix x vector over ~256 MB of weights */
    const int64_t n = 4096;
    const size_t dec_bytes = (size_t)(quick ? 96 : 256) << 20;
    /* the decode matrix, or the gemm's 4096 x 14336 of F16 (117 MB, more
     * than --quick's decode matrix) */
    const size_t w_bytes = dec_bytes > (size_t)14336 * 4096 * 2 ? dec_bytes : (size_t)14336 * 4096 * 2;
    uint8_t *w = malloc(w_bytes + (1 << 20));
    float *x = malloc(sizeof(float) * (size_t)n * 64);
    const int64_t g_rows = 14336;
    /* the smallest rows: MXFP4's 17 bytes per 32 */
    const size_t dec_rows_max = dec_bytes / mr_type_row_bytes(MR_TYPE_MXFP4, (uint64_t)n) + 1;
    float *y = malloc(sizeof(float) * (dec_rows_max > (size_t)g_rows * 64 ? dec_rows_max : (size_t)g_rows * 64));
    void *abuf = malloc((size_t)64 * ((size_t)n / 32 * 36 + (size_t)n * 4));
    if (!w || !x || !y || !abuf) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    for (int64_t i = 0; i < n * 64; i++)
        x[i] = rndf();

    printf("## Decode: one token, matrix x vector, weights GB/s (n = %lld, %zu MB of weights, 1 thread)\n\n",
           (long long)n, dec_bytes >> 20);
    printf("| weights x activations | path |");
    for (int i = 0; i < n_isa; i++)
        printf(" %s GB/s |", mr_isa_name(isas[i]));
    printf(" best / scalar | best / memory |\n|---|---|");
    for (int i = 0; i < n_isa; i++)
        printf("---:|");
    printf("---:|---:|\n");
    for (int ci = 0; ci < N_CASES; ci++) {
        const bench_case *c = &cases[ci];
        if (!case_wanted(c))
            continue;
        const size_t rb = mr_type_row_bytes(c->type, (uint64_t)n);
        const int64_t rows = (int64_t)(dec_bytes / rb);
        fill_weights(c->type, w, n, rows);
        for (int via_dot = 0; via_dot < (c->exact ? 1 : 2); via_dot++) {
            double gbs[MR_ISA_COUNT] = {0}, best = 0.0;
            for (int i = 0; i < n_isa; i++) {
                mr_kernels k;
                mr_kernels_for_isa(isas[i], c->exact, &k);
                if (via_dot)
                    k.gemm[c->type] = NULL;
                double s = time_matmul(&k, c->type, w, n, rows, x, 1, abuf, y, 0.3);
                gbs[i] = (double)rb * (double)rows / s / 1e9;
                best = gbs[i] > best ? gbs[i] : best;
            }
            printf("| %s | %s |", c->label,
                   c->exact ? "dot_f32 loop" : via_dot ? "vec_dot loop" : "gemm, 1 token");
            for (int i = 0; i < n_isa; i++)
                printf(" %.2f |", gbs[i]);
            printf(" %.1fx | %.0f%% |\n", best / gbs[0], 100.0 * best / bw_wide);
            fflush(stdout);
        }
    }

    /* ---- gemm: tokens/s through a 4096 x 14336 matrix */
    static const int64_t toks[] = {1, 4, 16, 64};
    printf("\n## Prefill / expert groups: matrix x matrix, tokens/s through a %lld x %lld matrix (1 thread)\n\n",
           (long long)n, (long long)g_rows);
    printf("| weights x activations | ISA |");
    for (int i = 0; i < 4; i++)
        printf(" %lld tok |", (long long)toks[i]);
    printf(" 64 tok / scalar | 64 tok / 1 tok |\n|---|---|---:|---:|---:|---:|---:|---:|\n");
    for (int ci = 0; ci < N_CASES; ci++) {
        const bench_case *c = &cases[ci];
        const int kq = c->type == MR_TYPE_Q4_K || c->type == MR_TYPE_Q5_K || c->type == MR_TYPE_Q6_K;
        if (!case_wanted(c) || (c->type != MR_TYPE_Q4_0 && c->type != MR_TYPE_Q8_0 &&
                                 c->type != MR_TYPE_MXFP4 && !c->exact && !kq))
            continue;
        if (kq && c->exact)
            continue; /* the exact K-quant dots have no gemm */
        if (c->exact && c->type != MR_TYPE_F16 && quick)
            continue;
        fill_weights(c->type, w, n, g_rows);
        double scalar64 = 0.0;
        for (int i = 0; i < n_isa; i++) {
            mr_kernels k;
            mr_kernels_for_isa(isas[i], c->exact, &k);
            double tps[4];
            for (int ti = 0; ti < 4; ti++) {
                double s = time_matmul(&k, c->type, w, n, g_rows, x, toks[ti], abuf, y, 0.3);
                tps[ti] = (double)toks[ti] / s;
            }
            if (isas[i] == MR_ISA_SCALAR)
                scalar64 = tps[3];
            printf("| %s | %s |", c->label, mr_isa_name(isas[i]));
            for (int ti = 0; ti < 4; ti++)
                printf(" %.0f |", tps[ti]);
            printf(" %.1fx | %.1fx |\n", tps[3] / scalar64, tps[3] / tps[0]);
            fflush(stdout);
        }
    }

    /* ---- the i-quants: gemm beside the vec_dot loop it replaced, per ISA
     * (scalar left out: minutes at 64 tokens) */
    printf("\n## I-quants: gemm against the vec_dot loop, tokens/s through a %lld x %lld matrix (1 thread)\n\n",
           (long long)n, (long long)g_rows);
    printf("| weights x activations | ISA | path |");
    for (int i = 0; i < 4; i++)
        printf(" %lld tok |", (long long)toks[i]);
    printf(" 16 tok gemm / loop | 64 tok gemm / loop |\n|---|---|---|---:|---:|---:|---:|---:|---:|\n");
    for (int ci = 0; ci < N_CASES; ci++) {
        const bench_case *c = &cases[ci];
        const uint32_t t = c->type;
        if (!case_wanted(c) || !(t == MR_TYPE_IQ2_XXS || t == MR_TYPE_IQ2_XS || t == MR_TYPE_IQ2_S ||
                                 t == MR_TYPE_IQ3_XXS || t == MR_TYPE_IQ3_S || t == MR_TYPE_IQ1_S ||
                                 t == MR_TYPE_IQ1_M))
            continue;
        fill_weights(t, w, n, g_rows);
        for (int i = 0; i < n_isa; i++) {
            if (isas[i] == MR_ISA_SCALAR)
                continue;
            double tps[2][4];
            for (int via_dot = 0; via_dot < 2; via_dot++) {
                mr_kernels k;
                mr_kernels_for_isa(isas[i], 0, &k);
                if (via_dot)
                    k.gemm[t] = NULL;
                for (int ti = 0; ti < 4; ti++)
                    tps[via_dot][ti] = (double)toks[ti] / time_matmul(&k, t, w, n, g_rows, x, toks[ti], abuf, y, 0.3);
            }
            for (int via_dot = 0; via_dot < 2; via_dot++) {
                printf("| %s | %s | %s |", c->label, mr_isa_name(isas[i]), via_dot ? "vec_dot loop" : "gemm");
                for (int ti = 0; ti < 4; ti++)
                    printf(" %.1f |", tps[via_dot][ti]);
                if (via_dot)
                    printf(" | |\n");
                else
                    printf(" %.2fx | %.2fx |\n", tps[0][2] / tps[1][2], tps[0][3] / tps[1][3]);
            }
            fflush(stdout);
        }
    }
    printf("\nbandwidth-equivalent of 1 token: weights bytes x tokens/s; memory bound above = %.1f GB/s\n",
           bw_wide);
    free(w);
    free(x);
    free(y);
    free(abuf);
    return 0;
}
