/* cmd_run.c - moerun run: stream generated text from a prompt. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "kernels.h"
#include "sampler.h"
#include "threadpool.h"

static void run_help(FILE *out)
{
    fprintf(out,
            "Usage: moerun run -m FILE (-p TEXT | -f FILE) [options]\n"
            "Generate text, streaming tokens as they are made; timings go to stderr.\n\n"
            "  -m, --model FILE         GGUF model (llama / Mixtral architecture)\n"
            "  -p, --prompt TEXT        prompt text\n"
            "  -f, --file FILE          read the prompt from a file\n"
            "  -n, --n-predict N        tokens to generate (default 128)\n"
            "  -c, --ctx-size N         context length (default: the model's, at most 4096)\n"
            "  -b, --batch-size N       prompt tokens per batch (default 512)\n"
            CLI_COMPUTE_HELP
            "      --temp T             temperature, 0 = greedy (default 0.8)\n"
            "      --top-k N            keep the N most likely tokens, 0 = off (default 40)\n"
            "      --top-p P            nucleus sampling, 1 = off (default 0.95)\n"
            "      --min-p P            drop tokens below P x the best one's probability (default 0.05)\n"
            "      --repeat-penalty X   penalise recent tokens, 1 = off (default 1.0)\n"
            "      --repeat-last-n N    tokens the penalty looks back over (default 64)\n"
            "  -s, --seed S             random seed (default: from the clock, printed)\n"
            "      --ignore-eos         keep generating after end-of-sequence\n"
            "      --stats              print expert-store counters\n"
            CLI_STORE_HELP
            "  -h, --help               this help\n");
}

enum { OPT_TEMP = 256, OPT_TOPK, OPT_TOPP, OPT_MINP, OPT_RPEN, OPT_RLAST, OPT_IGNORE_EOS, OPT_STATS };

int cmd_run(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},      {"prompt", required_argument, 0, 'p'},
        {"file", required_argument, 0, 'f'},       {"n-predict", required_argument, 0, 'n'},
        {"ctx-size", required_argument, 0, 'c'},   {"batch-size", required_argument, 0, 'b'},
        {"seed", required_argument, 0, 's'},
        {"temp", required_argument, 0, OPT_TEMP},  {"top-k", required_argument, 0, OPT_TOPK},
        {"top-p", required_argument, 0, OPT_TOPP}, {"min-p", required_argument, 0, OPT_MINP},
        {"repeat-penalty", required_argument, 0, OPT_RPEN},
        {"repeat-last-n", required_argument, 0, OPT_RLAST},
        {"ignore-eos", no_argument, 0, OPT_IGNORE_EOS}, {"stats", no_argument, 0, OPT_STATS},
        CLI_COMPUTE_LONG_OPTIONS,
        CLI_STORE_LONG_OPTIONS,
        {"help", no_argument, 0, 'h'},             {0, 0, 0, 0},
    };
    const char *model = NULL, *text = NULL, *file = NULL;
    long n_predict = 128, n_ctx = 0, n_batch = 512, v;
    int ignore_eos = 0, stats = 0, seed_given = 0;
    cli_compute_opts co;
    cli_compute_opts_default(&co);
    mr_sampler_params sp;
    mr_sampler_params_default(&sp);
    cli_store_opts so;
    cli_store_opts_default(&so);
    optind = 1;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":m:p:f:n:c:b:t:s:h", opts, NULL)) != -1) {
        switch (ch) {
        case 'm': model = optarg; break;
        case 'p': text = optarg; break;
        case 'f': file = optarg; break;
        case 'n':
            if (cli_parse_long(optarg, 0, 1 << 20, &n_predict))
                return cli_usage_error("run", "-n wants a number of tokens, got '%s'", optarg);
            break;
        case 'c':
            if (cli_parse_long(optarg, 1, 1 << 20, &n_ctx))
                return cli_usage_error("run", "-c wants a context length, got '%s'", optarg);
            break;
        case 'b':
            if (cli_parse_long(optarg, 1, 1 << 16, &n_batch))
                return cli_usage_error("run", "-b wants a batch size, got '%s'", optarg);
            break;
        case 's':
            if (cli_parse_long(optarg, 0, 0x7fffffffL, &v))
                return cli_usage_error("run", "--seed wants a non-negative integer, got '%s'", optarg);
            sp.seed = (uint64_t)v;
            seed_given = 1;
            break;
        case OPT_TEMP:
            if (cli_parse_float(optarg, &sp.temp) || sp.temp < 0)
                return cli_usage_error("run", "--temp wants a number >= 0, got '%s'", optarg);
            break;
        case OPT_TOPK:
            if (cli_parse_long(optarg, 0, 1 << 24, &v))
                return cli_usage_error("run", "--top-k wants a number >= 0, got '%s'", optarg);
            sp.top_k = (int32_t)v;
            break;
        case OPT_TOPP:
            if (cli_parse_float(optarg, &sp.top_p) || sp.top_p <= 0 || sp.top_p > 1)
                return cli_usage_error("run", "--top-p wants a number in (0, 1], got '%s'", optarg);
            break;
        case OPT_MINP:
            if (cli_parse_float(optarg, &sp.min_p) || sp.min_p < 0 || sp.min_p > 1)
                return cli_usage_error("run", "--min-p wants a number in [0, 1], got '%s'", optarg);
            break;
        case OPT_RPEN:
            if (cli_parse_float(optarg, &sp.repeat_penalty) || sp.repeat_penalty <= 0)
                return cli_usage_error("run", "--repeat-penalty wants a number > 0, got '%s'", optarg);
            break;
        case OPT_RLAST:
            if (cli_parse_long(optarg, 0, 1 << 20, &v))
                return cli_usage_error("run", "--repeat-last-n wants a number >= 0, got '%s'", optarg);
            sp.repeat_last_n = (int32_t)v;
            break;
        case OPT_IGNORE_EOS: ignore_eos = 1; break;
        case OPT_STATS: stats = 1; break;
        case 'h': run_help(stdout); return EXIT_OK;
        case ':': return cli_usage_error("run", "option '%s' needs a value", argv[optind - 1]);
        default: {
            int r = cli_shared_option("run", ch, optarg, &co, &so);
            if (r > 0)
                return r;
            if (r < 0)
                return cli_usage_error("run", "unknown option '%s'", argv[optind - 1]);
        }
        }
    }
    if (optind < argc)
        return cli_usage_error("run", "unexpected argument '%s'", argv[optind]);
    if (!model)
        return cli_usage_error("run", "a model is required (-m FILE)");
    if (!seed_given)
        sp.seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 16);

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
    if ((long)n_ids + n_predict > n_ctx)
        n_predict = n_ctx - (long)n_ids;
    so.measure = stats;
    if (cli_session_store(&S, &so, (uint32_t)n_ctx, (uint32_t)n_batch, 1, &err))
        goto fail;
    if (mr_context_new(S.model, S.store, (uint32_t)n_ctx, (uint32_t)n_batch, &ctx, &err) ||
        cli_context_apply(ctx, &co, &err) ||
        mr_sampler_new(&sp, (int32_t)hp->n_vocab, &smp, &err))
        goto fail;
    if (!(logits = malloc(sizeof(float) * hp->n_vocab))) {
        mr_fail(&err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory for logits");
        goto fail;
    }

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
    while (n_gen < n_predict) {
        int32_t id = mr_sampler_sample(smp, logits);
        n_gen++;
        if (id == mr_tokenizer_eos(S.tok) && !ignore_eos)
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
    fprintf(stderr, "prompt:     %8zu tokens in %.3f s = %.2f tokens/s\n", n_ids, t1 - t0,
            (double)n_ids / (t1 - t0 > 0 ? t1 - t0 : 1e-9));
    fprintf(stderr, "generation: %8ld tokens in %.3f s = %.2f tokens/s\n", n_gen, t2 - t1,
            (double)n_gen / (t2 - t1 > 0 ? t2 - t1 : 1e-9));
    fprintf(stderr, "peak RSS:   %8.1f MiB\n", cli_peak_rss_mib());
    if (stats) {
        cli_print_routing(S.model, mr_context_routing_counts(ctx));
        cli_print_store_stats(&S, n_gen > 1 && t2 > t1 ? (double)n_gen / (t2 - t1) : 0.0);
    }
    rc = EXIT_OK;
    goto out;
fail:
    fflush(stdout);
    rc = cli_report(&err);
out:
    free(logits);
    free(ids);
    free(prompt);
    mr_sampler_free(smp);
    mr_context_free(ctx);
    cli_session_close(&S);
    return rc;
}
