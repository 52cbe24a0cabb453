/* cmd_bench.c - moerun bench: prompt and generation speed in the spirit of
 * llama-bench, with the memory-bandwidth ceiling measured in the same run.
 *
 * pp N: N random tokens decoded as one batch (tokens/s).
 * tg N: N tokens decoded one at a time after a BOS (tokens/s); the weight
 *       bytes each token reads, times tokens/s, over the read bandwidth
 *       measured with the same thread count, is the fraction of the
 *       bandwidth ceiling reached.
 * One warm-up run per test is not counted; figures are mean +- sd over -r.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "options.h"
#include "kernels.h"
#include "store_paged.h"
#include "threadpool.h"

#define MAX_LIST 16

static int parse_list(const char *s, long min, long max, long *out, int *n)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    *n = 0;
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        if (*n == MAX_LIST || cli_parse_long(tok, min, max, &out[*n]))
            return -1;
        (*n)++;
    }
    return *n ? 0 : -1;
}

enum { OPT_PP = CLI_O_EXTRA, OPT_TG, OPT_TH, OPT_REPS, OPT_JSON };

static const cli_opt bench_extra[] = {
    {"-p", "--n-prompt", "N", "prompt tokens per pp test, 0 = none (default 512)", OPT_PP},
    {"-n", "--n-gen", "N", "generated tokens per tg test, 0 = none (default 128)", OPT_TG},
    {"-t", "--threads", "N", "threads (default: physical cores this process may use;\n"
                             "more than its CPUs are lowered with a note)", OPT_TH},
    {"-r", "--repetitions", "R", "counted runs per test (default 3)", OPT_REPS},
    {NULL, "--json", NULL, "JSON instead of a markdown table", OPT_JSON},
    {0},
};

typedef struct {
    long pp[MAX_LIST], tg[MAX_LIST], th[MAX_LIST], reps;
    int n_pp, n_tg, n_th, json;
} bench_state;

static int bench_option(void *user, int id, const char *v)
{
    bench_state *b = user;
    switch (id) {
    case OPT_PP:
        if (parse_list(v, 0, 1 << 16, b->pp, &b->n_pp))
            return cli_usage_error("bench", "-p wants token counts like 64,512, got '%s'", v);
        return 0;
    case OPT_TG:
        if (parse_list(v, 0, 1 << 16, b->tg, &b->n_tg))
            return cli_usage_error("bench", "-n wants token counts like 128, got '%s'", v);
        return 0;
    case OPT_TH:
        if (parse_list(v, 1, 1024, b->th, &b->n_th))
            return cli_usage_error("bench", "-t wants thread counts from 1 to 1024 like 1,2, "
                                   "got '%s'", v);
        return 0;
    case OPT_REPS:
        if (cli_parse_long(v, 1, 1000, &b->reps))
            return cli_usage_error("bench", "-r wants a number >= 1, got '%s'", v);
        return 0;
    default: b->json = 1; return 0;
    }
}

static const int bench_common[] = {CLI_O_MODEL, CLI_O_EXACT, CLI_O_MEM, CLI_O_PREFETCH,
                                   CLI_O_NO_DIRECT, CLI_O_NO_REPACK, CLI_O_GPU_IGNORED, CLI_O_CACHE_K,
                                   CLI_O_CACHE_V, 0};

static const cli_command bench_cmd = {
    "bench", "-m FILE [-p 512] [-n 128] [-t N] [-r 3] [--json] [--mem SIZE]",
    "Prompt (pp) and generation (tg) tokens/s, and the share of the memory-bandwidth\n"
    "ceiling that generation reaches (bandwidth measured in the same run).\n"
    "-p, -n and -t take comma-separated lists (e.g. -p 64,512 -t 1,2).",
    bench_common, bench_extra, bench_option, NULL,
};

/* ------------------------------------------------------------ runs */

typedef struct {
    const char *test;
    long n, threads;
    double mean, sd, bw, gbs;
} result;

static uint64_t rng = 0x2545f4914f6cdd1dull;

static int32_t random_token(uint32_t n_vocab)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (int32_t)(3 + rng % (n_vocab - 3)); /* skip the specials */
}

/* One timed run: a pp (batch) or tg (one by one) of n tokens; -1 on error. */
static double run_once(mr_context *c, int gen, long n, uint32_t n_vocab, float *logits,
                       mr_error *err)
{
    int32_t *toks = malloc(sizeof(int32_t) * (size_t)n);
    for (long i = 0; i < n; i++)
        toks[i] = random_token(n_vocab);
    mr_context_reset(c);
    double t0;
    if (gen) {
        int32_t bos = 1;
        if (mr_decode(c, &bos, 1, logits, 0, err)) {
            free(toks);
            return -1;
        }
        t0 = cli_now();
        for (long i = 0; i < n; i++)
            if (mr_decode(c, &toks[i], 1, logits, 0, err)) {
                free(toks);
                return -1;
            }
    } else {
        t0 = cli_now();
        if (mr_decode(c, toks, (uint32_t)n, logits, 0, err)) {
            free(toks);
            return -1;
        }
    }
    double dt = cli_now() - t0;
    free(toks);
    return (double)n / dt;
}

static void print_results(const cli_session *S, const result *r, int nr, int json, int exact)
{
    const mr_model *m = S->model;
    const char *isa = mr_isa_name(mr_kernels_get()->isa);
    double gib = (double)(m->expert_bytes + m->resident_bytes) / 1073741824.0;
    double params = 0;
    for (uint64_t i = 0; i < m->gguf->n_tensors; i++)
        params += (double)mr_gguf_tensor_nelements(&m->gguf->tensors[i]);
    if (json) {
        printf("[\n");
        for (int i = 0; i < nr; i++)
            printf("  {\"model\": \"%s\", \"size_gib\": %.3f, \"params_b\": %.3f, \"isa\": \"%s%s\", "
                   "\"store\": \"%s\", \"threads\": %ld, \"test\": \"%s%ld\", \"tokens_per_s\": %.3f, "
                   "\"sd\": %.3f, \"read_bw_gbs\": %.2f, \"weights_gbs\": %.2f, \"bw_fraction\": %.4f}%s\n",
                   S->path, gib, params / 1e9, isa, exact ? "-exact" : "", S->store->ops->name,
                   r[i].threads, r[i].test, r[i].n, r[i].mean, r[i].sd, r[i].bw, r[i].gbs,
                   r[i].gbs > 0 ? r[i].gbs / r[i].bw : 0.0, i + 1 < nr ? "," : "");
        printf("]\n");
        return;
    }
    printf("| model | size | params | kernels | store | threads | test | t/s | weights GB/s | "
           "read BW GB/s | of BW |\n");
    printf("| --- | ---: | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    const char *name = strrchr(S->path, '/') ? strrchr(S->path, '/') + 1 : S->path;
    for (int i = 0; i < nr; i++) {
        printf("| %s | %.2f GiB | %.2f B | %s%s | %s | %ld | %s%ld | %.2f ± %.2f | ", name, gib,
               params / 1e9, isa, exact ? " exact" : "", S->store->ops->name, r[i].threads,
               r[i].test, r[i].n, r[i].mean, r[i].sd);
        if (r[i].gbs > 0)
            printf("%.2f | %.2f | %.1f%% |\n", r[i].gbs, r[i].bw, 100.0 * r[i].gbs / r[i].bw);
        else
            printf("- | %.2f | - |\n", r[i].bw);
    }
}

int cmd_bench(int argc, char **argv)
{
    bench_state b = {{512}, {128}, {0}, 3, 1, 1, 1, 0};
    b.th[0] = mr_physical_cores();
    cli_opts opt;
    int prc = cli_parse(&bench_cmd, argc, argv, &opt, &b);
    if (prc >= 0) {
        free(opt.pos);
        return prc;
    }
    const char *model = opt.model;
    long *pp = b.pp, *tg = b.tg, *th = b.th, reps = b.reps;
    int n_pp = b.n_pp, n_tg = b.n_tg, n_th = b.n_th, json = b.json, exact = opt.compute.exact;
    cli_store_opts so = opt.store;
    if (opt.n_pos) {
        int r = cli_usage_error("bench", "unexpected argument '%s'", opt.pos[0]);
        free(opt.pos);
        return r;
    }
    free(opt.pos);
    if (!model)
        return cli_usage_error("bench", "a model is required (-m FILE)");
    int avail = mr_available_cpus();
    for (int i = 0; i < n_th; i++)
        if (th[i] > avail) {
            fprintf(stderr, "moerun bench: note: -t %ld is more than the %d CPUs this process "
                    "may use; using %d\n", th[i], avail, avail);
            th[i] = avail;
        }

    long max_pp = 0, max_tg = 0;
    for (int i = 0; i < n_pp; i++)
        max_pp = pp[i] > max_pp ? pp[i] : max_pp;
    for (int i = 0; i < n_tg; i++)
        max_tg = tg[i] > max_tg ? tg[i] : max_tg;
    const uint32_t n_ctx = (uint32_t)((max_pp > max_tg + 1 ? max_pp : max_tg + 1) + 1);
    const uint32_t n_batch = max_pp > 0 ? (uint32_t)max_pp : 1;

    /* bandwidth first, before the model and pool take memory */
    double bw[MAX_LIST];
    size_t bw_bytes = so.mem ? (48u << 20) : (1024u << 20);
    for (int i = 0; i < n_th; i++)
        bw[i] = mr_read_bandwidth((int)th[i], bw_bytes);

    mr_error err;
    cli_session S;
    mr_context *ctx = NULL;
    float *logits = NULL;
    result res[3 * MAX_LIST * MAX_LIST];
    int nr = 0, rc = EXIT_OK;
    if (cli_session_open(model, &S, &err))
        return cli_report(&err);
    if (cli_session_store(&S, &so, n_ctx, n_batch, 1, &err) ||
        mr_context_new_kv(S.model, S.store, n_ctx, n_batch, opt.compute.kv_k, opt.compute.kv_v,
                          &ctx, &err))
        goto fail;
    mr_context_set_exact(ctx, exact);
    logits = malloc(sizeof(float) * S.model->hp.n_vocab);
    const double bytes_tok = (double)mr_model_bytes_per_token(S.model);
    for (int ti = 0; ti < n_th; ti++) {
        if (mr_context_set_threads(ctx, (int)th[ti], &err))
            goto fail;
        for (int kind = 0; kind < 2; kind++) {
            const long *list = kind ? tg : pp;
            for (int li = 0; li < (kind ? n_tg : n_pp); li++) {
                if (list[li] == 0)
                    continue;
                double sum = 0, sum2 = 0;
                for (long r = -1; r < reps; r++) { /* r = -1: warm-up */
                    double v = run_once(ctx, kind, list[li], S.model->hp.n_vocab, logits, &err);
                    if (v < 0)
                        goto fail;
                    if (r >= 0) {
                        sum += v;
                        sum2 += v * v;
                    }
                }
                result *o = &res[nr++];
                o->test = kind ? "tg" : "pp";
                o->n = list[li];
                o->threads = th[ti];
                o->mean = sum / (double)reps;
                o->sd = reps > 1 ? sqrt(fmax(0.0, (sum2 - sum * sum / (double)reps) / (double)(reps - 1))) : 0.0;
                o->bw = bw[ti];
                o->gbs = kind ? bytes_tok * o->mean / 1e9 : 0.0;
                if (!json)
                    fprintf(stderr, "  %s%ld t=%ld: %.2f tokens/s\n", o->test, o->n, o->threads, o->mean);
            }
        }
    }
    /* Paged: the runs have filled the slot pool, which is what decode
     * streams; 48 MB can fit an L3 (480 MiB on a Xeon, family 6 model 167),
     * so the rate over the pool replaces it when the pool holds enough. */
    if (so.mem) {
        size_t pool_len = 0;
        const void *pool = mr_store_paged_pool(S.store, &pool_len);
        const size_t over = pool_len < ((size_t)1 << 30) ? pool_len : ((size_t)1 << 30);
        for (int ti = 0; pool && over >= ((size_t)256 << 20) && ti < n_th; ti++) {
            const double pbw = mr_read_bandwidth_of(pool, over, (int)th[ti]);
            for (int i = 0; i < nr; i++)
                if (res[i].threads == th[ti])
                    res[i].bw = pbw;
        }
    }
    print_results(&S, res, nr, json, exact);
    if (!json && mr_store_paged_stats(S.store, NULL))
        cli_print_store_stats(&S, 0.0);
    goto out;
fail:
    rc = cli_report(&err);
out:
    free(logits);
    mr_context_free(ctx);
    cli_session_close(&S);
    return rc;
}
