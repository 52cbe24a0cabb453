/* cmd_perplexity.c - moerun perplexity, with the windowing protocol of the
 * reference (shared/ref/ppl.json):
 *   ids = tokenize(whole text), no BOS
 *   window w = [BOS] + ids[(ctx-1)w : (ctx-1)(w+1)]   (ctx tokens)
 *   non-overlapping, no context carried over; tokens 1..ctx-1 of each window
 *   are scored from the logits at the previous position;
 *   PPL = exp(mean over windows of the window's mean NLL).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "options.h"
#include "threadpool.h"

enum { OPT_CHUNKS = CLI_O_EXTRA };

static const cli_opt ppl_extra[] = {
    {NULL, "--chunks", "K", "use at most K windows (default: all that fit)", OPT_CHUNKS},
    {0},
};

static int ppl_option(void *user, int id, const char *v)
{
    long *max_chunks = user;
    if (id == OPT_CHUNKS && cli_parse_long(v, 1, 1 << 30, max_chunks))
        return cli_usage_error("perplexity", "--chunks wants a number >= 1, got '%s'", v);
    return 0;
}

static const int ppl_common[] = {
    CLI_O_MODEL, CLI_O_FILE, CLI_O_CTX, CLI_O_THREADS, CLI_O_EXACT, CLI_O_MEM, CLI_O_PREFETCH,
    CLI_O_NO_DIRECT, CLI_O_NO_REPACK, CLI_O_GPU_IGNORED, CLI_O_YARN_TRUNC, CLI_O_CACHE_K, CLI_O_CACHE_V, 0,
};

static const cli_command ppl_cmd = {
    "perplexity", "-m FILE -f TEXT [-c N] [--chunks K] [options]",
    "Perplexity over non-overlapping windows of BOS + (N-1) tokens of TEXT\n"
    "(-c N: the window, default 512).  Fails if any logit is not finite.\n"
    "The last line printed is 'PPL = <value>'.",
    ppl_common, ppl_extra, ppl_option,
    "The tinymix reference protocol (bf16 PPL 33.9916) is -c 256 --chunks 16.\n",
};

/* -log softmax(logits)[target], in double. */
static double nll(const float *logits, uint32_t n, int32_t target)
{
    double max = logits[0], sum = 0.0;
    for (uint32_t i = 1; i < n; i++)
        if (logits[i] > max)
            max = logits[i];
    for (uint32_t i = 0; i < n; i++)
        sum += exp((double)logits[i] - max);
    return -((double)logits[target] - max - log(sum));
}

int cmd_perplexity(int argc, char **argv)
{
    long max_chunks = -1;
    cli_opts o;
    int prc = cli_parse(&ppl_cmd, argc, argv, &o, &max_chunks);
    if (prc >= 0) {
        free(o.pos);
        return prc;
    }
    const char *model = o.model, *file = o.file;
    long ctx_len = o.ctx ? o.ctx : 512;
    cli_compute_opts co = o.compute;
    cli_store_opts so = o.store;
    if (o.n_pos) {
        int r = cli_usage_error("perplexity", "unexpected argument '%s'", o.pos[0]);
        free(o.pos);
        return r;
    }
    free(o.pos);
    if (!model || !file)
        return cli_usage_error("perplexity", "-m FILE and -f TEXT are required");

    mr_error err;
    cli_session S;
    char *text = NULL;
    size_t len, n_ids = 0;
    int32_t *ids = NULL, *win = NULL;
    float *logits = NULL;
    mr_context *ctx = NULL;
    int rc;
    if (cli_read_file(file, &text, &len, &err))
        return cli_report(&err);
    if (cli_session_open(model, &S, &err)) {
        free(text);
        return cli_report(&err);
    }
    const uint32_t n_vocab = S.model->hp.n_vocab, L = (uint32_t)ctx_len;
    if (mr_tokenize(S.tok, text, len, 0, &ids, &n_ids, &err))
        goto fail;
    size_t n_windows = n_ids / (L - 1);
    if (max_chunks > 0 && (size_t)max_chunks < n_windows)
        n_windows = (size_t)max_chunks;
    if (n_windows == 0) {
        rc = cli_usage_error("perplexity", "%s has %zu tokens, fewer than one window of %u",
                             file, n_ids, L - 1);
        goto out;
    }
    win = malloc(sizeof(int32_t) * L);
    logits = malloc(sizeof(float) * (size_t)L * n_vocab);
    if (!win || !logits) {
        mr_fail(&err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory for a %u-token window", L);
        goto fail;
    }
    if (cli_session_store(&S, &so, L, L, L, &err) ||
        cli_context_new(&S, &co, L, L, &ctx, &err))
        goto fail;
    fprintf(stderr, "perplexity: %zu tokens, %zu windows of %u (BOS + %u scored)\n", n_ids,
            n_windows, L, L - 1);
    double sum_nll = 0.0, t0 = cli_now();
    for (size_t w = 0; w < n_windows; w++) {
        win[0] = mr_tokenizer_bos(S.tok);
        for (uint32_t i = 1; i < L; i++)
            win[i] = ids[w * (L - 1) + i - 1];
        mr_context_reset(ctx);
        if (mr_decode(ctx, win, L, logits, 1, &err))
            goto fail;
        double wn = 0.0;
        for (uint32_t t = 1; t < L; t++)
            wn += nll(logits + (size_t)(t - 1) * n_vocab, n_vocab, win[t]);
        sum_nll += wn / (L - 1);
        fprintf(stderr, "[%zu]%.4f%s", w + 1, exp(sum_nll / (double)(w + 1)),
                w + 1 == n_windows ? "\n" : ",");
        fflush(stderr);
    }
    double dt = cli_now() - t0, mean = sum_nll / (double)n_windows;
    if (!isfinite(mean)) {
        mr_fail(&err, MR_EFORMAT, model, NULL, MR_NO_OFFSET, "the mean NLL is %g: no perplexity",
                mean);
        goto fail;
    }
    fprintf(stderr, "%zu tokens in %.2f s = %.1f tokens/s\n", n_windows * L, dt,
            (double)(n_windows * L) / dt);
    printf("mean NLL = %.6f over %zu windows\n", mean, n_windows);
    printf("PPL = %.4f\n", exp(mean));
    rc = EXIT_OK;
    goto out;
fail:
    rc = cli_report(&err);
out:
    mr_context_free(ctx);
    free(logits);
    free(win);
    free(ids);
    free(text);
    cli_session_close(&S);
    return rc;
}
