/* bench_batch.c - decode throughput of N concurrent streams, side by side:
 * each step either runs the N streams' tokens one after another (one
 * mr_decode per stream, each in a context of its own: what `moerun serve`
 * did before) or all of them in one mr_decode_batch over one context of N
 * sequences (the experts two streams choose read once).  Prints aggregate
 * tokens/s of both and their ratio for N = 1, 2, 4, 8.  Asserts nothing.
 *   bench/bench_batch FILE.gguf [steps] [threads]
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "../quant/types.h"
#include "forward.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE.gguf [steps] [threads]\n", argv[0]);
        return 2;
    }
    const int steps = argc > 2 ? atoi(argv[2]) : 8, threads = argc > 3 ? atoi(argv[3]) : 2;
    mr_error err;
    mr_model *m;
    mr_expert_store *st;
    if (mr_model_load(argv[1], &m, &err) || mr_store_resident_new(m, &st, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    const uint32_t nv = m->hp.n_vocab, n_ctx = 64 + (uint32_t)steps;
    float *lg = malloc(sizeof(float) * 8 * nv);
    printf("N  separate tok/s  batched tok/s  gain(batched/separate)  gain(batched N / batched 1)\n");
    double base = 0;
    for (uint32_t n = 1; n <= 8; n *= 2) {
        mr_context *one[8], *multi;
        for (uint32_t q = 0; q < n; q++)
            if (mr_context_new(m, st, n_ctx, 8, &one[q], &err) ||
                mr_context_set_threads(one[q], threads, &err))
                return fprintf(stderr, "%s\n", err.msg), 1;
        if (mr_context_new_seqs(m, st, n_ctx, 8, MR_TYPE_F32, MR_TYPE_F32, n, &multi, &err) ||
            mr_context_set_threads(multi, threads, &err))
            return fprintf(stderr, "%s\n", err.msg), 1;
        double t_sep = 0, t_bat = 0;
        for (int s = 0; s < steps; s++) {
            int32_t tok[8];
            uint32_t seq[8];
            for (uint32_t q = 0; q < n; q++) {
                tok[q] = (int32_t)(1 + (q * 7919u + (uint32_t)s * 104729u) % (nv - 1));
                seq[q] = q;
            }
            /* alternate which goes first, so neither always finds a warm cache */
            for (int pass = 0; pass < 2; pass++) {
                const int batched = (pass + s) % 2;
                double t0 = now_s();
                if (batched) {
                    if (mr_decode_batch(multi, tok, seq, n, lg, 0, &err))
                        return fprintf(stderr, "%s\n", err.msg), 1;
                    t_bat += now_s() - t0;
                } else {
                    for (uint32_t q = 0; q < n; q++)
                        if (mr_decode(one[q], &tok[q], 1, lg, 0, &err))
                            return fprintf(stderr, "%s\n", err.msg), 1;
                    t_sep += now_s() - t0;
                }
            }
        }
        const double sep = n * steps / t_sep, bat = n * steps / t_bat;
        if (n == 1)
            base = bat;
        printf("%u  %14.2f  %13.2f  %22.2f  %27.2f\n", n, sep, bat, bat / sep, bat / base);
        fflush(stdout);
        for (uint32_t q = 0; q < n; q++)
            mr_context_free(one[q]);
        mr_context_free(multi);
    }
    free(lg);
    mr_expert_store_free(st);
    mr_model_free(m);
    return 0;
}
