/* common.c - helpers shared by the moerun commands. */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "cli.h"

int cli_report(const mr_error *err)
{
    fprintf(stderr, "moerun: %s\n", err->msg[0] ? err->msg : mr_status_message(err->code));
    switch (err->code) {
    case MR_OK: return EXIT_OK;
    case MR_EINVAL: case MR_ERANGE: return EXIT_USAGE;
    case MR_EIO: case MR_ENOMEM: return EXIT_IO;
    default: return EXIT_BADFILE;
    }
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "moerun %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'moerun %s --help'.\n", cmd);
    return EXIT_USAGE;
}

int cli_parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int cli_parse_float(const char *s, float *out)
{
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || end == s || *end || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

mr_status cli_read_file(const char *path, char **out, size_t *len, mr_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return mr_fail(err, MR_EIO, path, NULL, MR_NO_OFFSET, "cannot open: %s", strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (n < cap)
            break;
        char *nb = realloc(buf, 2 * cap + 1);
        if (!nb) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf)
        return mr_fail(err, MR_ENOMEM, path, NULL, MR_NO_OFFSET, "no memory");
    if (bad) {
        free(buf);
        return mr_fail(err, MR_EIO, path, NULL, MR_NO_OFFSET, "read error");
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return MR_OK;
}

int cli_prompt(const char *cmd, const char *text, const char *file, char **out, size_t *len)
{
    if (text && file)
        return cli_usage_error(cmd, "give either -p TEXT or -f FILE, not both");
    if (file) {
        mr_error err;
        if (cli_read_file(file, out, len, &err))
            return cli_report(&err);
        return EXIT_OK;
    }
    if (!text)
        return cli_usage_error(cmd, "a prompt is required (-p TEXT or -f FILE)");
    *out = strdup(text);
    *len = strlen(text);
    return *out ? EXIT_OK : EXIT_IO;
}

mr_status cli_session_open(const char *path, cli_session *s, mr_error *err)
{
    mr_status st;
    double t0 = cli_now();
    memset(s, 0, sizeof *s);
    if ((st = mr_model_load(path, &s->model, err)))
        return st;
    if ((st = mr_tokenizer_load(s->model->gguf, &s->tok, err)) ||
        (st = mr_store_resident_new(s->model, &s->store, err))) {
        cli_session_close(s);
        return st;
    }
    if ((uint32_t)mr_tokenizer_n_vocab(s->tok) != s->model->hp.n_vocab) {
        cli_session_close(s);
        return mr_fail(err, MR_EFORMAT, path, "tokenizer.ggml.tokens", MR_NO_OFFSET,
                       "vocabulary size differs from token_embd.weight");
    }
    s->load_seconds = cli_now() - t0;
    return MR_OK;
}

void cli_session_close(cli_session *s)
{
    mr_expert_store_free(s->store);
    mr_tokenizer_free(s->tok);
    mr_model_free(s->model);
    memset(s, 0, sizeof *s);
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double cli_peak_rss_mib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

void cli_print_store_stats(const mr_expert_store *st, const mr_model *m)
{
    const mr_store_stats *s = &st->stats;
    double tokens = s->tokens ? (double)s->tokens : 1.0;
    fprintf(stderr, "expert store: %s\n", st->ops->name);
    fprintf(stderr, "  plans %llu, acquires %llu (%.2f per token per layer)\n",
            (unsigned long long)s->plans, (unsigned long long)s->acquires,
            (double)s->acquires / tokens / m->hp.n_layer);
    fprintf(stderr, "  expert bytes touched %.1f MiB, %.2f MiB per token "
            "(all experts: %.1f MiB; resident non-expert weights: %.1f MiB)\n",
            s->bytes_touched / 1048576.0, s->bytes_touched / tokens / 1048576.0,
            m->expert_bytes / 1048576.0, m->resident_bytes / 1048576.0);
}
