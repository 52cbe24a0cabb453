/* cmd_tokenize.c - moerun tokenize: the tokens of a text, from the GGUF's
 * vocabulary alone (a vocabulary-only GGUF with no tensors works). */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "options.h"

enum { OPT_IDS = CLI_O_EXTRA, OPT_PARSE_SPECIAL };

static const cli_opt tok_extra[] = {
    {NULL, "--ids", NULL, "print only the ids, separated by spaces", OPT_IDS},
    {NULL, "--parse-special", NULL, "text like <|im_end|> becomes its control token",
     OPT_PARSE_SPECIAL},
    {0},
};

typedef struct {
    int ids_only, parse_special;
} tok_state;

static int tok_option(void *user, int id, const char *v)
{
    tok_state *st = user;
    (void)v;
    if (id == OPT_IDS)
        st->ids_only = 1;
    else
        st->parse_special = 1;
    return 0;
}

static const int tok_common[] = {CLI_O_MODEL, CLI_O_PROMPT, CLI_O_FILE, CLI_O_NO_BOS, 0};

static const cli_command tok_cmd = {
    "tokenize", "-m FILE (-p TEXT | -f FILE) [--ids] [--no-bos] [--parse-special]",
    "Print one token per line (id and piece), or with --ids the ids on one line.\n"
    "The GGUF needs only tokenizer.ggml.* metadata (a vocabulary-only file works).",
    tok_common, tok_extra, tok_option, NULL,
};

int cmd_tokenize(int argc, char **argv)
{
    tok_state st = {0, 0};
    cli_opts o;
    int prc = cli_parse(&tok_cmd, argc, argv, &o, &st);
    if (prc >= 0) {
        free(o.pos);
        return prc;
    }
    const char *model = o.model, *text = o.prompt, *file = o.file;
    int no_bos = o.no_bos;
    if (o.n_pos) {
        int r = cli_usage_error("tokenize", "unexpected argument '%s'", o.pos[0]);
        free(o.pos);
        return r;
    }
    free(o.pos);
    if (!model)
        return cli_usage_error("tokenize", "a model is required (-m FILE)");
    char *prompt;
    size_t len;
    int rc = cli_prompt("tokenize", text, file, &prompt, &len);
    if (rc)
        return rc;

    mr_error err;
    mr_gguf *g = NULL;
    mr_tokenizer *tok = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    if (mr_gguf_open(model, &g, &err) || mr_tokenizer_load(g, &tok, &err) ||
        mr_tokenize_ex(tok, prompt, len,
                       (!no_bos && mr_tokenizer_add_bos(tok) ? MR_TOK_ADD_BOS : 0) |
                           (st.parse_special ? MR_TOK_PARSE_SPECIAL : 0),
                       &ids, &n, &err)) {
        rc = cli_report(&err);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (st.ids_only)
            printf(i ? " %d" : "%d", ids[i]);
        else
            printf("%6d '%s'\n", ids[i], mr_token_piece(tok, ids[i]));
    }
    if (st.ids_only)
        printf("\n");
    rc = fflush(stdout) ? EXIT_IO : EXIT_OK;
out:
    free(ids);
    free(prompt);
    mr_tokenizer_free(tok);
    mr_gguf_close(g);
    return rc;
}
