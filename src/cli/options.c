/* options.c - the shared option table and its parser (see options.h). */
#include "options.h"

#include <stdlib.h>
#include <string.h>

#include "threadpool.h"
#include "types.h"

#define HELP_COLUMN 30

static const cli_opt common_opts[] = {
    {"-m", "--model", "FILE", "GGUF model", CLI_O_MODEL},
    {"-p", "--prompt", "TEXT", "prompt text", CLI_O_PROMPT},
    {"-f", "--file", "FILE", "read the text from FILE (- = standard input)", CLI_O_FILE},
    {"-o", "--output", "FILE", "output file", CLI_O_OUTPUT},
    {"-n", "--n-predict", "N", "tokens to generate (default 128; at most the context left)",
     CLI_O_N_PREDICT},
    {"-c", "--ctx-size", "N", "context length (default: the model's, at most 4096)", CLI_O_CTX},
    {"-b", "--batch-size", "N", "prompt tokens per batch (default 512)", CLI_O_BATCH},
    {"-t", "--threads", "N", "threads (default: physical cores this process may use;\n"
                             "more than its CPUs are lowered with a note)", CLI_O_THREADS},
    {"-s", "--seed", "S", "random seed, -1 = from the clock, printed (default -1)", CLI_O_SEED},
    {NULL, "--exact", NULL, "f32 activations, weights dequantised exactly (slower)",
     CLI_O_EXACT},
    {NULL, "--yarn-trunc", NULL, "YaRN correction range rounded to whole dimensions, as\n"
                                 "llama.cpp does (gpt-oss default: fractional, as released)",
     CLI_O_YARN_TRUNC},
    {NULL, "--force", NULL, "replace the output file if it exists", CLI_O_FORCE},
    {NULL, "--stats", NULL, "print expert-store counters and the kernel paths", CLI_O_STATS},
    {NULL, "--no-bos", NULL, "do not prepend the BOS token", CLI_O_NO_BOS},
    {NULL, "--mem", "SIZE", "RAM budget (e.g. 8G, 512M, 1.5GiB, or auto: the cgroup\n"
                            "limit or MemAvailable less 10% headroom) for\n"
                            "everything: weights, expert pool, KV cache, scratch;\n"
                            "experts are paged from disk within it (default: map\n"
                            "the whole file)", CLI_O_MEM},
    {NULL, "--prefetch", "N", "with --mem: guess experts N layers ahead (default 1, 0 off)",
     CLI_O_PREFETCH},
    {NULL, "--no-direct", NULL, "with --mem: buffered reads instead of O_DIRECT", CLI_O_NO_DIRECT},
    {"-nr", "--no-repack", NULL, "keep the file's layout (default without --mem: the experts\n"
                                "the kernels read faster are repacked at load)", CLI_O_NO_REPACK},
    {"-ctk", "--cache-type-k", "TYPE", "KV cache keys: f16 (default), q8_0 or f32 (the\n"
                                       "default with --exact)", CLI_O_CACHE_K},
    {"-ctv", "--cache-type-v", "TYPE", "KV cache values: f16 (default), q8_0 or f32 (the\n"
                                       "default with --exact)", CLI_O_CACHE_V},
    {"-ngl", "--n-gpu-layers", "N", "ignored (llama.cpp's; moerun runs on the CPU)",
     CLI_O_GPU_IGNORED},
    {"-fa", "--flash-attn", "[on|off|auto]", "ignored (llama.cpp's; no GPU kernels here)",
     CLI_O_GPU_IGNORED},
};
#define N_COMMON (sizeof common_opts / sizeof common_opts[0])

static const cli_opt help_opt = {"-h", "--help", NULL, "this help", -2};

/* Is common option id accepted by cmd? */
static int accepts(const cli_command *cmd, int id)
{
    for (const int *c = cmd->common; c && *c; c++)
        if (*c == id)
            return 1;
    return 0;
}

/* Does word (up to '=' when eq) name option o? */
static int names(const cli_opt *o, const char *word, size_t len)
{
    if (o->sname && strlen(o->sname) == len && !strncmp(o->sname, word, len))
        return 1;
    if (o->lname && strlen(o->lname) == len && !strncmp(o->lname, word, len))
        return 1;
    /* aliases llama.cpp also spells: --gpu-layers */
    if (o->id == CLI_O_GPU_IGNORED && o->sname && !strcmp(o->sname, "-ngl") && len == 12 &&
        !strncmp(word, "--gpu-layers", 12))
        return 1;
    return 0;
}

/* The option a word names, among cmd's own first, then the accepted
 * common ones; NULL if none. */
static const cli_opt *lookup(const cli_command *cmd, const char *word, size_t len)
{
    for (const cli_opt *e = cmd->extra; e && (e->sname || e->lname); e++)
        if (names(e, word, len))
            return e;
    for (size_t i = 0; i < N_COMMON; i++)
        if (accepts(cmd, common_opts[i].id) && names(&common_opts[i], word, len))
            return &common_opts[i];
    if (names(&help_opt, word, len))
        return &help_opt;
    return NULL;
}

static void opts_default(cli_opts *o)
{
    memset(o, 0, sizeof *o);
    o->n_predict = -1;
    o->batch = 512;
    o->seed = -1;
    cli_compute_opts_default(&o->compute);
    cli_store_opts_default(&o->store);
}

/* Check and store a common option's value; 0 or an exit code. */
static int set_common(const char *cmd, const char *word, int id, const char *v, cli_opts *o)
{
    long n;
    switch (id) {
    case CLI_O_MODEL: o->model = v; return 0;
    case CLI_O_PROMPT: o->prompt = v; return 0;
    case CLI_O_FILE: o->file = v; return 0;
    case CLI_O_OUTPUT: o->output = v; return 0;
    case CLI_O_N_PREDICT:
        if (cli_parse_long(v, 0, 1 << 20, &o->n_predict))
            return cli_usage_error(cmd, "%s wants a number of tokens, got '%s'", word, v);
        return 0;
    case CLI_O_CTX:
        if (cli_parse_long(v, 2, 1 << 20, &o->ctx))
            return cli_usage_error(cmd, "%s wants a context length of at least 2, got '%s'",
                                   word, v);
        return 0;
    case CLI_O_BATCH:
        if (cli_parse_long(v, 1, 1 << 16, &o->batch))
            return cli_usage_error(cmd, "%s wants a batch size from 1 to 65536, got '%s'", word, v);
        return 0;
    case CLI_O_THREADS:
        if (cli_parse_long(v, -1, 1024, &n) || n == 0)
            return cli_usage_error(cmd, "%s wants a thread count from 1 to 1024 (-1: the "
                                   "default), got '%s'", word, v);
        o->compute.threads = n < 0 ? mr_physical_cores() : n;
        return 0;
    case CLI_O_SEED:
        if (cli_parse_long(v, -1, 0xffffffffL, &n))
            return cli_usage_error(cmd, "%s wants a seed from 0 to 4294967295, or -1 for a "
                                   "random one, got '%s'", word, v);
        o->seed = n;
        o->seed_given = n >= 0;
        return 0;
    case CLI_O_EXACT: o->compute.exact = 1; return 0;
    case CLI_O_YARN_TRUNC: o->compute.yarn_trunc = 1; return 0;
    case CLI_O_CACHE_K:
    case CLI_O_CACHE_V: {
        uint32_t t = mr_type_from_name(v);
        if (t != MR_TYPE_F32 && t != MR_TYPE_F16 && t != MR_TYPE_Q8_0)
            return cli_usage_error(cmd, "%s wants f16, q8_0 or f32, got '%s'", word, v);
        if (id == CLI_O_CACHE_K)
            o->compute.kv_k = t, o->kv_k_given = 1;
        else
            o->compute.kv_v = t, o->kv_v_given = 1;
        return 0;
    }
    case CLI_O_FORCE: o->force = 1; return 0;
    case CLI_O_STATS: o->stats = 1; return 0;
    case CLI_O_NO_BOS: o->no_bos = 1; return 0;
    case CLI_O_MEM:
        o->store.mem_arg = v;
        if (!strcmp(v, "auto")) {
            o->store.mem = CLI_MEM_AUTO; /* sized in cli_session_store, once the model is known */
            return 0;
        }
        if (cli_parse_size(v, &o->store.mem) || o->store.mem == 0 || o->store.mem == CLI_MEM_AUTO)
            return cli_usage_error(cmd, "%s wants a size such as 8G, 512M or 1.5GiB, or auto, "
                                   "got '%s'", word, v);
        return 0;
    case CLI_O_PREFETCH:
        if (cli_parse_long(v, 0, 64, &o->store.prefetch))
            return cli_usage_error(cmd, "%s wants a number of layers 0..64, got '%s'", word, v);
        return 0;
    case CLI_O_NO_DIRECT: o->store.no_direct = 1; return 0;
    case CLI_O_NO_REPACK: o->store.no_repack = 1; return 0;
    case CLI_O_GPU_IGNORED:
        fprintf(stderr, "moerun %s: note: %s%s%s is ignored: moerun runs on the CPU\n", cmd, word,
                v ? " " : "", v ? v : "");
        return 0;
    default: return cli_usage_error(cmd, "internal: option %s has no handler", word);
    }
}

int cli_parse(const cli_command *cmd, int argc, char **argv, cli_opts *o, void *user)
{
    opts_default(o);
    o->pos = calloc((size_t)(argc > 0 ? argc : 1), sizeof *o->pos);
    if (!o->pos)
        return EXIT_IO;
    int only_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *w = argv[i];
        if (only_pos || w[0] != '-' || !strcmp(w, "-")) {
            o->pos[o->n_pos++] = argv[i];
            continue;
        }
        if (!strcmp(w, "--")) {
            only_pos = 1;
            continue;
        }
        const char *eq = w[1] == '-' ? strchr(w, '=') : NULL;
        size_t len = eq ? (size_t)(eq - w) : strlen(w);
        const cli_opt *op = lookup(cmd, w, len);
        if (!op)
            return cli_usage_error(cmd->name, "unknown option '%.*s'", (int)len, w);
        char word[64];
        snprintf(word, sizeof word, "%.*s", (int)len, w);
        const char *v = NULL;
        if (op->arg && op->arg[0] == '[') { /* optional value: only =VALUE or a non-option */
            if (eq)
                v = eq + 1;
            else if (i + 1 < argc && argv[i + 1][0] != '-')
                v = argv[++i];
        } else if (op->arg) {
            if (eq)
                v = eq + 1;
            else if (i + 1 < argc)
                v = argv[++i];
            else
                return cli_usage_error(cmd->name, "option '%s' needs a value (%s)", word, op->arg);
        } else if (eq) {
            return cli_usage_error(cmd->name, "option '%s' takes no value", word);
        }
        int rc;
        if (op == &help_opt) {
            cli_help(cmd, stdout);
            return EXIT_OK;
        } else if (op->id >= CLI_O_EXTRA) {
            rc = cmd->on_extra ? cmd->on_extra(user, op->id, v) : EXIT_USAGE;
        } else {
            rc = set_common(cmd->name, word, op->id, v, o);
        }
        if (rc)
            return rc;
    }
    /* the KV cache: F16 as llama.cpp, F32 on the exact (reference) path */
    if (!o->kv_k_given)
        o->compute.kv_k = o->compute.exact ? MR_TYPE_F32 : MR_TYPE_F16;
    if (!o->kv_v_given)
        o->compute.kv_v = o->compute.exact ? MR_TYPE_F32 : MR_TYPE_F16;
    o->store.kv_k = o->compute.kv_k;
    o->store.kv_v = o->compute.kv_v;
    o->store.exact = o->compute.exact;
    int avail = mr_available_cpus();
    if (accepts(cmd, CLI_O_THREADS) && o->compute.threads > avail) {
        fprintf(stderr, "moerun %s: note: -t %ld is more than the %d CPUs this process may use; "
                "using %d threads\n", cmd->name, o->compute.threads, avail, avail);
        o->compute.threads = avail;
    }
    o->store.threads = o->compute.threads;
    return -1;
}

/* Print one option line: left column padded to HELP_COLUMN, help lines
 * after the first indented to it. */
static void help_line(FILE *out, const cli_opt *o)
{
    char left[96];
    int n = snprintf(left, sizeof left, "  %s%s%s%s%s", o->sname ? o->sname : "   ",
                     o->sname && o->lname ? ", " : o->lname ? " " : "",
                     o->lname ? o->lname : "", o->arg ? " " : "", o->arg ? o->arg : "");
    if (!o->sname) /* line the long names up under those that have a short one */
        n = snprintf(left, sizeof left, "      %s%s%s", o->lname, o->arg ? " " : "",
                     o->arg ? o->arg : "");
    fputs(left, out);
    if (n >= HELP_COLUMN - 1)
        fprintf(out, "\n%*s", HELP_COLUMN, "");
    else
        fprintf(out, "%*s", HELP_COLUMN - n, "");
    for (const char *h = o->help; *h; h++) {
        fputc(*h, out);
        if (*h == '\n')
            fprintf(out, "%*s", HELP_COLUMN, "");
    }
    fputc('\n', out);
}

void cli_help(const cli_command *cmd, FILE *out)
{
    fprintf(out, "Usage: moerun %s %s\n%s\n\n", cmd->name, cmd->usage, cmd->description);
    /* the common options in the command's order, then its own */
    for (const int *c = cmd->common; c && *c; c++)
        for (size_t i = 0; i < N_COMMON; i++)
            if (common_opts[i].id == *c)
                help_line(out, &common_opts[i]);
    for (const cli_opt *e = cmd->extra; e && (e->sname || e->lname); e++)
        help_line(out, e);
    help_line(out, &help_opt);
    if (cmd->epilogue)
        fprintf(out, "\n%s", cmd->epilogue);
}
