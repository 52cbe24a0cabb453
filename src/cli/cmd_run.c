/* cmd_run.c - moerun run: stream generated text from a prompt. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "options.h"
#include "kernels.h"
#include "sampler.h"
#include "threadpool.h"

enum { OPT_TEMP = CLI_O_EXTRA, OPT_TOPK, OPT_TOPP, OPT_MINP, OPT_RPEN, OPT_RLAST, OPT_IGNORE_EOS };

static const cli_opt run_extra[] = {
    {NULL, "--temp", "T", "temperature, 0 = greedy (default 0.8)", OPT_TEMP},
    {NULL, "--top-k", "N", "keep the N most likely tokens, 0 = off (default 40)", OPT_TOPK},
    {NULL, "--top-p", "P", "nucleus sampling, 1 = off (default 0.95)", OPT_TOPP},
    {NULL, "--min-p", "P", "drop tokens below P x the best one's probability (default 0.05)",
     OPT_MINP},
    {NULL, "--repeat-penalty", "X", "penalise recent tokens, 1 = off (default 1.0)", OPT_RPEN},
    {NULL, "--repeat-last-n", "N", "tokens the penalty looks back over (default 64)", OPT_RLAST},
    {NULL, "--ignore-eos", NULL, "keep generating after an end-of-generation token (EOS, <|im_end|>,\n<|eot|>, ...: the tokenizer's set, as llama.cpp's)", OPT_IGNORE_EOS},
    {0},
};

typedef struct {
    mr_sampler_params sp;
    int ignore_eos;
} run_state;

static int run_option(void *user, int id, const char *v)
{
    run_state *r = user;
    mr_sampler_params *sp = &r->sp;
    long n;
    switch (id) {
    case OPT_TEMP:
        if (cli_parse_float(v, &sp->temp) || sp->temp < 0)
            return cli_usage_error("run", "--temp wants a number >= 0, got '%s'", v);
        return 0;
    case OPT_TOPK:
        if (cli_parse_long(v, 0, 1 << 24, &n))
            return cli_usage_error("run", "--top-k wants a number >= 0, got '%s'", v);
        sp->top_k = (int32_t)n;
        return 0;
    case OPT_TOPP:
        if (cli_parse_float(v, &sp->top_p) || sp->top_p <= 0 || sp->top_p > 1)
            return cli_usage_error("run", "--top-p wants a number in (0, 1], got '%s'", v);
        return 0;
    case OPT_MINP:
        if (cli_parse_float(v, &sp->min_p) || sp->min_p < 0 || sp->min_p > 1)
            return cli_usage_error("run", "--min-p wants a number in [0, 1], got '%s'", v);
        return 0;
    case OPT_RPEN:
        if (cli_parse_float(v, &sp->repeat_penalty) || sp->repeat_penalty <= 0)
            return cli_usage_error("run", "--repeat-penalty wants a number > 0, got '%s'", v);
        return 0;
    case OPT_RLAST:
        if (cli_parse_long(v, 0, 1 << 20, &n))
            return cli_usage_error("run", "--repeat-last-n wants a number >= 0, got '%s'", v);
        sp->repeat_last_n = (int32_t)n;
        return 0;
    case OPT_IGNORE_EOS: r->ignore_eos = 1; return 0;
    default: return EXIT_USAGE;
    }
}

static const int run_common[] = {
    CLI_O_MODEL, CLI_O_PROMPT, CLI_O_FILE, CLI_O_N_PREDICT, CLI_O_CTX, CLI_O_BATCH,
    CLI_O_THREADS, CLI_O_SEED, CLI_O_EXACT, CLI_O_STATS, CLI_O_MEM, CLI_O_PREFETCH,
    CLI_O_NO_DIRECT, CLI_O_NO_REPACK, CLI_O_GPU_IGNORED, CLI_O_YARN_TRUNC, CLI_O_CACHE_K, CLI_O_CACHE_V, 0,
};

static const cli_command run_cmd = {
    "run", "-m FILE (-p TEXT | -f FILE) [options]",
    "Generate text, streaming tokens as they are made; timings go to stderr\n"
    "(also after Ctrl-C, which stops the generation: exit status 130).",
    run_common, run_extra, run_option, NULL,
};

/* Ctrl-C: stop generating, still print the timings. */
static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* The first token's latency split into its parts, beside the floor: the
 * bytes the prompt needed, each read once at the disk speed the pager
 * measured, plus the non-expert weights (S->mark_paged: counters after the
 * prompt; printed at the end of the run, so the generation's rate is
 * known too). */
static void print_first_token(const cli_session *S, double prompt_s)
{
    const mr_paged_stats *p = &S->mark_paged;
    mr_paged_stats end_st;
    if (!mr_store_paged_stats(S->store, &end_st))
        return;
    const double stall = p->stall_s, compute = prompt_s > stall ? prompt_s - stall : 0.0;
    const double total = S->load_seconds + prompt_s;
    const double other = S->load_seconds - p->copy_s - p->pool_s;
    fprintf(stderr, "first token: %.3f s = load %.3f s (model and tokenizer %.3f, non-expert "
            "weights %.3f, pool set-up %.3f) + prompt compute %.3f s + I/O stall %.3f s (the submit "
            "thread spent %.3f s starting reads beside it)\n", total, S->load_seconds,
            other > 0 ? other : 0.0, p->copy_s, p->pool_s, compute, stall, p->submit_s);
    /* The disk's speed is the better of the prompt's and the generation's
     * rate while reads were in flight: a prompt that starves the disk (its
     * submissions faulting the pool in, say) reads slower than the disk
     * can, and a floor at that rate would flatter it. */
    const double bw_prompt = p->io_busy_s > 0 ? (double)p->bytes_read / p->io_busy_s : 0.0;
    const mr_paged_stats *end = &end_st;
    const double gen_busy = end->io_busy_s - p->io_busy_s;
    const double bw_gen = gen_busy > 0.05 && end->bytes_read > p->bytes_read
                              ? (double)(end->bytes_read - p->bytes_read) / gen_busy
                              : 0.0;
    const double bw = bw_gen > bw_prompt ? bw_gen : bw_prompt;
    if (bw > 0) {
        const double need = (double)p->unique_bytes + (double)p->resident_bytes;
        const double floor = need / bw;
        fprintf(stderr, "  floor: %.3f s = (%.1f MiB of experts the prompt needs + %.1f MiB "
                "non-expert weights) / %.2f GB/s, the disk's best rate in this run (prompt %.2f, "
                "generation %.2f GB/s); first token at %.2fx the floor (%.1f MiB read for the "
                "prompt)\n", floor, p->unique_bytes / 1048576.0, p->resident_bytes / 1048576.0,
                bw / 1e9, bw_prompt / 1e9, bw_gen / 1e9, total / floor, p->bytes_read / 1048576.0);
    }
}

int cmd_run(int argc, char **argv)
{
    run_state rs = {0};
    mr_sampler_params_default(&rs.sp);
    cli_opts o;
    int prc = cli_parse(&run_cmd, argc, argv, &o, &rs);
    if (prc >= 0) {
        free(o.pos);
        return prc;
    }
    mr_sampler_params sp = rs.sp;
    int ignore_eos = rs.ignore_eos, stats = o.stats;
    cli_compute_opts co = o.compute;
    cli_store_opts so = o.store;
    const char *model = o.model, *text = o.prompt, *file = o.file;
    long n_predict = o.n_predict, n_ctx = o.ctx, n_batch = o.batch;
    int n_given = n_predict >= 0;
    if (!n_given)
        n_predict = 128;
    if (o.n_pos) {
        int rc = cli_usage_error("run", "unexpected argument '%s'", o.pos[0]);
        free(o.pos);
        return rc;
    }
    free(o.pos);
    if (!model)
        return cli_usage_error("run", "a model is required (-m FILE)");
    sp.seed = o.seed_given ? (uint64_t)o.seed : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 16);
    /* from here on Ctrl-C stops generating (none if it comes during the
     * load or the prompt) and the timings are still printed */
    interrupted = 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);

    char *prompt;
    size_t prompt_len;
    int rc = cli_prompt("run", text, file, &prompt, &prompt_len);
    if (rc)
        return rc;

    mr_error err;
    cli_session S;
    mr_context *ctx = NULL;
    mr_sampler *smp = NULL;
    int32_t *ids = NULL;
    float *logits = NULL;
    size_t n_ids = 0;
    if (cli_session_open(model, &S, &err)) {
        free(prompt);
        return cli_report(&err);
    }
    const mr_hparams *hp = &S.model->hp;
    if (!n_ctx)
        n_ctx = hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096;
    else if (hp->n_ctx_train && (uint32_t)n_ctx > hp->n_ctx_train)
        fprintf(stderr, "moerun run: note: -c %ld is beyond the %u tokens the model was trained "
                "on; text past them will degrade\n", n_ctx, hp->n_ctx_train);
    if (mr_tokenize(S.tok, prompt, prompt_len, mr_tokenizer_add_bos(S.tok), &ids, &n_ids, &err))
        goto fail;
    if (n_ids == 0) {
        rc = cli_usage_error("run", "the prompt is empty and the model adds no BOS token");
        goto out;
    }
    if ((long)n_ids >= n_ctx) {
        rc = cli_usage_error("run", "the prompt has %zu tokens, more than the context (%ld); raise -c",
                             n_ids, n_ctx);
        goto out;
    }
    if ((long)n_ids + n_predict > n_ctx) {
        if (n_given)
            fprintf(stderr, "moerun run: note: -n %ld does not fit the context: %zu prompt tokens "
                    "of %ld leave %ld to generate (raise -c)\n", n_predict, n_ids, n_ctx,
                    n_ctx - (long)n_ids);
        n_predict = n_ctx - (long)n_ids;
    }
    so.measure = stats;
    if (cli_session_store(&S, &so, (uint32_t)n_ctx, (uint32_t)n_batch, 1, &err))
        goto fail;
    if (cli_context_new(&S, &co, (uint32_t)n_ctx, (uint32_t)n_batch, &ctx, &err) ||
        mr_sampler_new(&sp, (int32_t)hp->n_vocab, &smp, &err))
        goto fail;
    if (!(logits = malloc(sizeof(float) * hp->n_vocab))) {
        mr_fail(&err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory for logits");
        goto fail;
    }

    if (stats)
        cli_print_kernel_paths(S.model, co.exact);
    fwrite(prompt, 1, prompt_len, stdout);
    fflush(stdout);
    double t0 = cli_now();
    for (size_t i = 0; i < n_ids; i += (size_t)n_batch) {
        size_t n = n_ids - i < (size_t)n_batch ? n_ids - i : (size_t)n_batch;
        if (mr_decode(ctx, ids + i, (uint32_t)n, logits, 0, &err))
            goto fail;
    }
    for (size_t i = 0; i < n_ids; i++)
        mr_sampler_accept(smp, ids[i]);
    cli_session_mark(&S);
    double t1 = cli_now();

    mr_detok dt;
    char piece[512];
    long n_gen = 0;
    mr_detok_init(&dt, S.tok, 0);
    while (n_gen < n_predict && !interrupted) {
        int32_t id = mr_sampler_sample(smp, logits);
        n_gen++;
        if (mr_tokenizer_is_eog(S.tok, id) && !ignore_eos)
            break;
        size_t w = mr_detok_push(&dt, id, piece, sizeof piece);
        fwrite(piece, 1, w, stdout);
        fflush(stdout);
        mr_sampler_accept(smp, id);
        if (n_gen == n_predict)
            break;
        if (mr_decode(ctx, &id, 1, logits, 0, &err))
            goto fail;
    }
    size_t w = mr_detok_flush(&dt, piece, sizeof piece);
    fwrite(piece, 1, w, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    double t2 = cli_now();

    fprintf(stderr, "\n");
    fprintf(stderr, "load:       %8.3f s   (%s, kernels %s%s, %ld threads, seed %llu)\n",
            S.load_seconds, model, mr_isa_name(mr_kernels_get()->isa), co.exact ? " exact" : "",
            co.threads, (unsigned long long)sp.seed);
    if (S.packed_bytes)
        fprintf(stderr, "repack:     %8.3f s   (%.1f MiB of weights in the kernels' layout; -nr: "
                        "the file's)\n", S.packed_seconds, S.packed_bytes / 1048576.0);
    fprintf(stderr, "prompt:     %8zu tokens in %.3f s = %.2f tokens/s\n", n_ids, t1 - t0,
            (double)n_ids / (t1 - t0 > 0 ? t1 - t0 : 1e-9));
    fprintf(stderr, "generation: %8ld tokens in %.3f s = %.2f tokens/s\n", n_gen, t2 - t1,
            (double)n_gen / (t2 - t1 > 0 ? t2 - t1 : 1e-9));
    fprintf(stderr, "peak RSS:   %8.1f MiB\n", cli_peak_rss_mib());
    if (stats && S.marked)
        print_first_token(&S, t1 - t0);
    if (stats) {
        cli_print_routing(S.model, mr_context_routing_counts(ctx));
        cli_print_store_stats(&S, n_gen > 1 && t2 > t1 ? (double)n_gen / (t2 - t1) : 0.0);
    }
    if (interrupted)
        fprintf(stderr, "interrupted: stopped after %ld generated tokens\n", n_gen);
    rc = interrupted ? 130 : EXIT_OK;
    goto out;
fail:
    fflush(stdout);
    fputc('\n', stdout);
    rc = cli_report(&err);
out:
    signal(SIGINT, SIG_DFL);
    free(logits);
    free(ids);
    free(prompt);
    mr_sampler_free(smp);
    mr_context_free(ctx);
    cli_session_close(&S);
    return rc;
}
