/* bench_kernels.c - figures for the kernel table of every ISA this CPU
 * runs, on fixed shapes (the dav1d checkasm habit: the same cases every
 * time, so figures compare across runs and machines).  Prints; asserts
 * nothing.
 *
 *   bench_kernels                  time every op of every ISA (ns per call)
 *   bench_kernels --once ISA OP [setup]
 *       set up OP's inputs, then call OP once with ISA's table ("setup":
 *       set up only), for counting instructions under an emulator:
 *       qemu-aarch64 -singlestep -d exec,nochain -D trace \
 *           bench_kernels --once neon gemm_q8_0
 *       then count the trace's "Trace" lines (one per instruction), minus
 *       those of the same command with "setup".
 *
 * Shapes: a 4096-wide row (a Mixtral-like hidden size), 64 weight rows,
 * 1 token (generation) and 8 tokens (a prompt batch).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels.h"

#define N 4096
#define ROWS 64
#define TOKS 8

static uint64_t rng = 12345;

static float rndf(void)
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (float)((double)(z >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

typedef struct {
    float x[TOKS * N];          /* f32 activations */
    uint8_t w[ROWS * N * 4];    /* weights, any type */
    uint8_t act[TOKS * N * 2];  /* prepared activations */
    float y[TOKS * ROWS];
    volatile float sink;
} bufs;

/* One op of one table; returns 0 if the op name is unknown. */
static int run_op(const mr_kernels *k, const char *op, bufs *b)
{
    uint32_t t;
    int toks;
    if (strcmp(op, "quantize_q8_0") == 0) {
        k->quantize_act[MR_TYPE_Q8_0](b->x, b->act, N);
        return 1;
    }
    if (strncmp(op, "gemm_", 5) == 0 || strncmp(op, "gemv_", 5) == 0) {
        toks = op[3] == 'm' ? TOKS : 1;
        t = strcmp(op + 5, "q8_0") == 0 ? MR_TYPE_Q8_0 : MR_TYPE_Q4_0;
        mr_matmul_rows(k, t, b->w, (size_t)mr_type_row_bytes(t, N), b->act, N, toks, b->y, ROWS,
                       0, ROWS);
        return 1;
    }
    if (strncmp(op, "dot_f32_", 8) == 0) {
        const char *ty = op + 8;
        t = strcmp(ty, "f32") == 0   ? MR_TYPE_F32
            : strcmp(ty, "f16") == 0 ? MR_TYPE_F16
            : strcmp(ty, "bf16") == 0 ? MR_TYPE_BF16
            : strcmp(ty, "q8_0") == 0 ? MR_TYPE_Q8_0
                                      : MR_TYPE_Q4_0;
        b->sink = k->dot_f32[t](b->w, b->x, N);
        return 1;
    }
    return 0;
}

/* Weights and prepared activations an op reads (the fast table's act). */
static void setup(const char *op, bufs *b)
{
    for (int i = 0; i < TOKS * N; i++)
        b->x[i] = rndf();
    uint32_t t = MR_TYPE_Q8_0;
    if (strstr(op, "q4_0"))
        t = MR_TYPE_Q4_0;
    else if (strstr(op, "bf16"))
        t = MR_TYPE_BF16;
    else if (strstr(op, "f16"))
        t = MR_TYPE_F16;
    else if (strstr(op, "f32_f32"))
        t = MR_TYPE_F32;
    const size_t rb = (size_t)mr_type_row_bytes(t, N);
    float *row = malloc(sizeof(float) * N);
    for (int r = 0; r < ROWS; r++) {
        for (int i = 0; i < N; i++)
            row[i] = rndf();
        mr_type_get(t)->from_f32(row, b->w + rb * (size_t)r, N);
    }
    free(row);
    for (int i = 0; i < TOKS; i++)
        mr_quantize_row_q8_0(b->x + (size_t)i * N, b->act + (size_t)i * 34 * (N / 32), N);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static const char *const ops[] = {"quantize_q8_0", "gemv_q8_0",   "gemm_q8_0",    "gemv_q4_0",
                                  "gemm_q4_0",     "dot_f32_f32", "dot_f32_f16",  "dot_f32_bf16",
                                  "dot_f32_q8_0",  "dot_f32_q4_0"};

int main(int argc, char **argv)
{
    bufs *b = calloc(1, sizeof *b);
    if (!b)
        return 1;
    if ((argc == 4 || argc == 5) && strcmp(argv[1], "--once") == 0) {
        mr_kernels k;
        mr_isa isa = mr_isa_parse(argv[2]);
        if (isa == MR_ISA_COUNT || !mr_kernels_for_isa(isa, strncmp(argv[3], "dot_f32", 7) == 0, &k)) {
            fprintf(stderr, "ISA '%s' is not available here\n", argv[2]);
            return 1;
        }
        setup(argv[3], b);
        if (argc == 5)
            return strcmp(argv[4], "setup") != 0;
        if (!run_op(&k, argv[3], b)) {
            fprintf(stderr, "unknown op '%s'\n", argv[3]);
            return 1;
        }
        return 0;
    }
    printf("ns per call; rows of %d, %d weight rows, gemv = 1 token, gemm = %d tokens\n", N,
           ROWS, TOKS);
    printf("%-14s", "op");
    mr_kernels tabs[MR_ISA_COUNT][2];
    int have[MR_ISA_COUNT];
    for (int i = 0; i < MR_ISA_COUNT; i++) {
        have[i] = mr_kernels_for_isa((mr_isa)i, 0, &tabs[i][0]) &&
                  mr_kernels_for_isa((mr_isa)i, 1, &tabs[i][1]);
        if (have[i])
            printf(" %12s", mr_isa_name((mr_isa)i));
    }
    printf("\n");
    for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++) {
        setup(ops[o], b);
        printf("%-14s", ops[o]);
        for (int i = 0; i < MR_ISA_COUNT; i++) {
            if (!have[i])
                continue;
            const mr_kernels *k = &tabs[i][strncmp(ops[o], "dot_f32", 7) == 0];
            int reps = 1;
            double t0, dt;
            for (;;) { /* grow until a run takes 50 ms */
                t0 = now();
                for (int r = 0; r < reps; r++)
                    run_op(k, ops[o], b);
                dt = now() - t0;
                if (dt > 0.05 || reps > (1 << 24))
                    break;
                reps *= 2;
            }
            printf(" %12.0f", 1e9 * dt / reps);
        }
        printf("\n");
    }
    free(b);
    return 0;
}
