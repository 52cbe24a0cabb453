/* cmd_logits.c - moerun logits: float32 little-endian logits of shape
 * [n_tokens, n_vocab], row i after token i (BOS included), the prompt
 * processed as one batch. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "threadpool.h"

static void logits_help(FILE *out)
{
    fprintf(out,
            "Usage: moerun logits -m FILE (-p TEXT | -f FILE) -o OUT [--no-bos]\n"
            "Write float32 little-endian logits [n_tokens, n_vocab]: row i is the output\n"
            "after token i (BOS included).  The prompt runs as one batch.\n\n"
            "  -m, --model FILE   GGUF model\n"
            "  -p, --prompt TEXT  prompt text\n"
            "  -f, --file FILE    read the prompt from a file\n"
            "  -o, --output OUT   output file\n"
            "      --no-bos       do not prepend the BOS token\n"
            CLI_COMPUTE_HELP
            CLI_STORE_HELP
            "  -h, --help         this help\n");
}

int cmd_logits(int argc, char **argv)
{
    enum { OPT_NO_BOS = 256 };
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"prompt", required_argument, 0, 'p'},
        {"file", required_argument, 0, 'f'},  {"output", required_argument, 0, 'o'},
        {"no-bos", no_argument, 0, OPT_NO_BOS}, CLI_COMPUTE_LONG_OPTIONS,
        CLI_STORE_LONG_OPTIONS,
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *model = NULL, *text = NULL, *file = NULL, *outp = NULL;
    int no_bos = 0, ch;
    cli_compute_opts co;
    cli_compute_opts_default(&co);
    cli_store_opts so;
    cli_store_opts_default(&so);
    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":m:p:f:o:t:h", opts, NULL)) != -1) {
        switch (ch) {
        case 'm': model = optarg; break;
        case 'p': text = optarg; break;
        case 'f': file = optarg; break;
        case 'o': outp = optarg; break;
        case OPT_NO_BOS: no_bos = 1; break;
        case 'h': logits_help(stdout); return EXIT_OK;
        case ':': return cli_usage_error("logits", "option '%s' needs a value", argv[optind - 1]);
        default: {
            int r = cli_shared_option("logits", ch, optarg, &co, &so);
            if (r > 0)
                return r;
            if (r < 0)
                return cli_usage_error("logits", "unknown option '%s'", argv[optind - 1]);
        }
        }
    }
    if (optind < argc)
        return cli_usage_error("logits", "unexpected argument '%s'", argv[optind]);
    if (!model || !outp)
        return cli_usage_error("logits", "-m FILE and -o OUT are required");
    char *prompt;
    size_t len;
    int rc = cli_prompt("logits", text, file, &prompt, &len);
    if (rc)
        return rc;

    mr_error err;
    cli_session S;
    mr_context *ctx = NULL;
    int32_t *ids = NULL;
    float *logits = NULL;
    size_t n = 0;
    FILE *f = NULL;
    if (cli_session_open(model, &S, &err)) {
        free(prompt);
        return cli_report(&err);
    }
    const uint32_t n_vocab = S.model->hp.n_vocab;
    if (mr_tokenize(S.tok, prompt, len, !no_bos && mr_tokenizer_add_bos(S.tok), &ids, &n, &err))
        goto fail;
    if (n == 0) {
        rc = cli_usage_error("logits", "no tokens to evaluate");
        goto out;
    }
    if (cli_session_store(&S, &so, (uint32_t)n, (uint32_t)n, (uint32_t)n, &err) ||
        mr_context_new(S.model, S.store, (uint32_t)n, (uint32_t)n, &ctx, &err) ||
        cli_context_apply(ctx, &co, &err))
        goto fail;
    if (!(logits = malloc(sizeof(float) * n * n_vocab))) {
        mr_fail(&err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory for %zu x %u logits", n,
                n_vocab);
        goto fail;
    }
    if (mr_decode(ctx, ids, (uint32_t)n, logits, 1, &err))
        goto fail;
    if (!(f = fopen(outp, "wb"))) {
        mr_fail(&err, MR_EIO, outp, NULL, MR_NO_OFFSET, "cannot create: %s", strerror(errno));
        goto fail;
    }
    /* float32 little-endian: this build's hosts (x86-64, arm64) are LE */
    if (fwrite(logits, sizeof(float) * n_vocab, n, f) != n || fclose(f) != 0) {
        f = NULL;
        mr_fail(&err, MR_EIO, outp, NULL, MR_NO_OFFSET, "write failed: %s", strerror(errno));
        goto fail;
    }
    f = NULL;
    fprintf(stderr, "wrote %zu x %u logits to %s\n", n, n_vocab, outp);
    rc = EXIT_OK;
    goto out;
fail:
    rc = cli_report(&err);
out:
    if (f)
        fclose(f);
    free(logits);
    free(ids);
    free(prompt);
    mr_context_free(ctx);
    cli_session_close(&S);
    return rc;
}
