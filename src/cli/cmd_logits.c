/* cmd_logits.c - moerun logits: float32 little-endian logits of shape
 * [n_tokens, n_vocab], row i after token i (BOS included), the prompt
 * processed as one batch. */
#include <errno.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "convert_internal.h"
#include "options.h"
#include "threadpool.h"

static const int logits_common[] = {
    CLI_O_MODEL, CLI_O_PROMPT, CLI_O_FILE, CLI_O_OUTPUT, CLI_O_FORCE, CLI_O_NO_BOS,
    CLI_O_THREADS, CLI_O_EXACT, CLI_O_MEM, CLI_O_PREFETCH, CLI_O_NO_DIRECT, CLI_O_NO_REPACK, CLI_O_GPU_IGNORED,
    CLI_O_YARN_TRUNC, CLI_O_CACHE_K, CLI_O_CACHE_V, 0,
};

static const cli_command logits_cmd = {
    "logits", "-m FILE (-p TEXT | -f FILE) -o OUT [options]",
    "Write float32 little-endian logits [n_tokens, n_vocab]: row i is the output\n"
    "after token i (BOS included).  The prompt runs as one batch.  OUT appears\n"
    "only when complete (an existing OUT is replaced only with --force); non-finite\n"
    "logits are refused.",
    logits_common, NULL, NULL, NULL,
};

int cmd_logits(int argc, char **argv)
{
    cli_opts o;
    int prc = cli_parse(&logits_cmd, argc, argv, &o, NULL);
    if (prc >= 0) {
        free(o.pos);
        return prc;
    }
    const char *model = o.model, *text = o.prompt, *file = o.file, *outp = o.output;
    int no_bos = o.no_bos;
    cli_compute_opts co = o.compute;
    cli_store_opts so = o.store;
    if (o.n_pos) {
        int r = cli_usage_error("logits", "unexpected argument '%s'", o.pos[0]);
        free(o.pos);
        return r;
    }
    free(o.pos);
    if (!model || !outp)
        return cli_usage_error("logits", "-m FILE and -o OUT are required");
    struct stat st;
    if (!o.force && stat(outp, &st) == 0)
        return cli_usage_error("logits", "%s exists (use --force to replace it)", outp);
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
    mr_outfile of;
    int of_open = 0;
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
        cli_context_new(&S, &co, (uint32_t)n, (uint32_t)n, &ctx, &err))
        goto fail;
    if (!(logits = malloc(sizeof(float) * n * n_vocab))) {
        mr_fail(&err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory for %zu x %u logits", n,
                n_vocab);
        goto fail;
    }
    if (mr_decode(ctx, ids, (uint32_t)n, logits, 1, &err))
        goto fail;
    /* the converter's writer: a temporary (O_TMPFILE where possible),
     * preallocated, synced, then linked to its name; a failure leaves none */
    if (mr_outfile_open(outp, o.force, getenv("MOERUN_NO_TMPFILE") != NULL, NULL, NULL, &of,
                        &err))
        goto fail;
    of_open = 1;
    /* float32 little-endian: this build's hosts (x86-64, arm64) are LE */
    if (mr_outfile_write(&of, logits, sizeof(float) * n * n_vocab, &err) ||
        mr_outfile_commit(&of, &err))
        goto fail; /* of_open stays: abort frees the names after a commit too */
    fprintf(stderr, "wrote %zu x %u logits to %s\n", n, n_vocab, outp);
    rc = EXIT_OK;
    goto out;
fail:
    rc = cli_report(&err);
out:
    if (of_open)
        mr_outfile_abort(&of);
    free(logits);
    free(ids);
    free(prompt);
    mr_context_free(ctx);
    cli_session_close(&S);
    return rc;
}
