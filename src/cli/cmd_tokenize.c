/* cmd_tokenize.c - moerun tokenize: the tokens of a text, from the GGUF's
 * vocabulary alone (a vocabulary-only GGUF with no tensors works). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"

static void tokenize_help(FILE *out)
{
    fprintf(out,
            "Usage: moerun tokenize -m FILE (-p TEXT | -f FILE) [--ids] [--no-bos] [--parse-special]\n"
            "Print one token per line (id and piece), or with --ids the ids on one line.\n\n"
            "  -m, --model FILE   GGUF file with tokenizer.ggml.* metadata\n"
            "  -p, --prompt TEXT  text to tokenize\n"
            "  -f, --file FILE    read the text from a file\n"
            "      --ids          print only the ids, separated by spaces\n"
            "      --no-bos       do not prepend the BOS token\n"
            "      --parse-special  text like <|im_end|> becomes its control token\n"
            "  -h, --help         this help\n");
}

int cmd_tokenize(int argc, char **argv)
{
    enum { OPT_IDS = 256, OPT_NO_BOS, OPT_PARSE_SPECIAL };
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"prompt", required_argument, 0, 'p'},
        {"file", required_argument, 0, 'f'},  {"ids", no_argument, 0, OPT_IDS},
        {"no-bos", no_argument, 0, OPT_NO_BOS}, {"help", no_argument, 0, 'h'},
        {"parse-special", no_argument, 0, OPT_PARSE_SPECIAL},
        {0, 0, 0, 0},
    };
    const char *model = NULL, *text = NULL, *file = NULL;
    int ids_only = 0, no_bos = 0, parse_special = 0, ch;
    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":m:p:f:h", opts, NULL)) != -1) {
        switch (ch) {
        case 'm': model = optarg; break;
        case 'p': text = optarg; break;
        case 'f': file = optarg; break;
        case OPT_IDS: ids_only = 1; break;
        case OPT_NO_BOS: no_bos = 1; break;
        case OPT_PARSE_SPECIAL: parse_special = 1; break;
        case 'h': tokenize_help(stdout); return EXIT_OK;
        case ':': return cli_usage_error("tokenize", "option '%s' needs a value", argv[optind - 1]);
        default: return cli_usage_error("tokenize", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cli_usage_error("tokenize", "unexpected argument '%s'", argv[optind]);
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
                           (parse_special ? MR_TOK_PARSE_SPECIAL : 0),
                       &ids, &n, &err)) {
        rc = cli_report(&err);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (ids_only)
            printf(i ? " %d" : "%d", ids[i]);
        else
            printf("%6d '%s'\n", ids[i], mr_token_piece(tok, ids[i]));
    }
    if (ids_only)
        printf("\n");
    rc = fflush(stdout) ? EXIT_IO : EXIT_OK;
out:
    free(ids);
    free(prompt);
    mr_tokenizer_free(tok);
    mr_gguf_close(g);
    return rc;
}
