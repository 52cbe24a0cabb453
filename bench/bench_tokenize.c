/* bench_tokenize.c - tokenizer speed on about 1 MB of English text, per
 * vocabulary, and beside llama.cpp's llama-tokenize when LLAMA_BIN is set.
 *
 *   bench/bench_tokenize [-t TEXT] [VOCAB.gguf ...]
 *
 * Without files it takes the vocabularies of $MOERUN_TESTDATA/vocab
 * (default ../shared). The text is TEXT, else tests/data/valid.txt
 * (from $MOERUN_SRCDIR, default .) repeated to 1 MiB; it is written to a
 * temporary file for llama-tokenize.  For each vocabulary: moerun's MB/s
 * (best of 3 in-process runs, no BOS, special text not parsed) and, with
 * LLAMA_BIN, the wall time of
 *   $LLAMA_BIN/llama-tokenize -m VOCAB -f FILE --ids --log-disable --no-bos --no-parse-special
 * minus that of the same command on a one-line file (its load time), as
 * MB/s, the ratio, and whether both gave the same ids.  It prints figures;
 * it asserts nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gguf.h"
#include "tokenizer.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    for (size_t k; b && (k = fread(b + n, 1, cap - n, f)) > 0;) {
        n += k;
        if (n == cap)
            b = realloc(b, cap *= 2);
    }
    fclose(f);
    if (b)
        *len = n;
    return b;
}

/* Run a shell command with stdout to out_path; returns wall seconds, or -1. */
static double run_timed(const char *cmd)
{
    double t0 = now();
    int rc = system(cmd);
    double t = now() - t0;
    return rc == 0 ? t : -1.0;
}

/* Parse llama-tokenize's "[1, 2, 3]" into ids; count in *n. */
static int32_t *parse_ids(const char *s, size_t *n)
{
    size_t cap = 1024, k = 0;
    int32_t *v = malloc(cap * sizeof *v);
    for (const char *p = s; v && *p;) {
        if (*p >= '0' && *p <= '9') {
            char *e;
            long x = strtol(p, &e, 10);
            if (k == cap)
                v = realloc(v, (cap *= 2) * sizeof *v);
            v[k++] = (int32_t)x;
            p = e;
        } else {
            p++;
        }
    }
    *n = k;
    return v;
}

static void bench_one(const char *vocab, const char *text, size_t len, const char *text_path,
                      const char *tiny_path, const char *llama_bin)
{
    mr_error err;
    mr_gguf *g;
    mr_tokenizer *t;
    if (mr_gguf_open(vocab, &g, &err) || mr_tokenizer_load(g, &t, &err)) {
        printf("%-44s skipped: %s\n", vocab, err.msg);
        return;
    }
    double best = 1e30;
    int32_t *ids = NULL;
    size_t n = 0;
    for (int r = 0; r < 3; r++) {
        free(ids);
        double t0 = now();
        if (mr_tokenize_ex(t, text, len, 0, &ids, &n, &err)) {
            printf("%-44s failed: %s\n", vocab, err.msg);
            return;
        }
        double dt = now() - t0;
        if (dt < best)
            best = dt;
    }
    const char *base = strrchr(vocab, '/') ? strrchr(vocab, '/') + 1 : vocab;
    const char *pre = mr_tokenizer_pre(t);
    printf("%-40s %-4s %-14s %8zu tokens  moerun %7.2f MB/s", base, mr_tokenizer_kind(t),
           pre ? pre : "-", n, (double)len / best / 1e6);
    if (llama_bin) {
        char cmd[4096], out_path[] = "/tmp/bench_tokenize_outXXXXXX";
        int fd = mkstemp(out_path);
        if (fd >= 0)
            close(fd);
        snprintf(cmd, sizeof cmd,
                 "LD_LIBRARY_PATH='%s' '%s/llama-tokenize' -m '%s' -f '%s' --ids --log-disable "
                 "--no-bos --no-parse-special >'%s' 2>/dev/null",
                 llama_bin, llama_bin, vocab, tiny_path, out_path);
        double load = run_timed(cmd);
        snprintf(cmd, sizeof cmd,
                 "LD_LIBRARY_PATH='%s' '%s/llama-tokenize' -m '%s' -f '%s' --ids --log-disable "
                 "--no-bos --no-parse-special >'%s' 2>/dev/null",
                 llama_bin, llama_bin, vocab, text_path, out_path);
        double full = run_timed(cmd);
        size_t ol = 0, nl = 0;
        char *o = full > 0 ? read_all(out_path, &ol) : NULL;
        if (o) {
            o = realloc(o, ol + 1);
            o[ol] = '\0';
        }
        int32_t *lids = o ? parse_ids(o, &nl) : NULL;
        int same = lids && nl == n && memcmp(lids, ids, n * sizeof *ids) == 0;
        if (full > 0 && load > 0) {
            double work = full - load > 1e-6 ? full - load : 1e-6;
            printf("  llama-tokenize %7.2f MB/s (%.3f s, %.3f s of it loading)  ratio %.2fx  "
                   "ids %s", (double)len / work / 1e6, full, load, work / best,
                   same ? "identical" : "DIFFER");
        } else {
            printf("  llama-tokenize failed");
        }
        free(lids);
        free(o);
        unlink(out_path);
    }
    printf("\n");
    free(ids);
    mr_tokenizer_free(t);
    mr_gguf_close(g);
}

int main(int argc, char **argv)
{
    const char *text_src = NULL;
    int first = 1;
    if (argc > 2 && strcmp(argv[1], "-t") == 0) {
        text_src = argv[2];
        first = 3;
    }
    const char *src = getenv("MOERUN_SRCDIR") ? getenv("MOERUN_SRCDIR") : ".";
    const char *data = getenv("MOERUN_TESTDATA") ? getenv("MOERUN_TESTDATA") : "../shared";
    char path[4096];
    if (!text_src) {
        snprintf(path, sizeof path, "%s/tests/data/valid.txt", src);
        text_src = path;
    }
    size_t sl;
    char *seed = read_all(text_src, &sl);
    if (!seed || sl == 0) {
        fprintf(stderr, "bench_tokenize: cannot read %s\n", text_src);
        return 1;
    }
    size_t len = 1u << 20;
    char *text = malloc(len);
    for (size_t k = 0; k < len; k++)
        text[k] = seed[k % sl];
    while (len > 0 && ((unsigned char)text[len - 1] & 0xC0) == 0x80) /* whole characters */
        len--;
    if (len && (unsigned char)text[len - 1] >= 0xC0)
        len--;
    char text_path[] = "/tmp/bench_tokenize_textXXXXXX", tiny_path[] = "/tmp/bench_tokenize_tinyXXXXXX";
    int fd = mkstemp(text_path), fd2 = mkstemp(tiny_path);
    if (fd < 0 || fd2 < 0 || write(fd, text, len) != (ssize_t)len || write(fd2, "Hello\n", 6) != 6) {
        fprintf(stderr, "bench_tokenize: cannot write the temporary text\n");
        return 1;
    }
    close(fd);
    close(fd2);
    const char *llama_bin = getenv("LLAMA_BIN");
    printf("text: %zu bytes (%s repeated)%s%s\n", len, text_src,
           llama_bin ? ", llama.cpp from " : "", llama_bin ? llama_bin : "");
    if (first < argc) {
        for (int i = first; i < argc; i++)
            bench_one(argv[i], text, len, text_path, tiny_path, llama_bin);
    } else {
        static const char *const names[] = {"gpt-2", "deepseek-llm", "falcon", "starcoder",
                                            "chain-llama-bpe", "chain-qwen2", "chain-deepseek-v3",
                                            "chain-gpt-4o", "chain-kimi-k2", "llama-spm"};
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
            char v[4096];
            snprintf(v, sizeof v, "%s/vocab/ggml-vocab-%s.gguf", data, names[i]);
            bench_one(v, text, len, text_path, tiny_path, llama_bin);
        }
    }
    unlink(text_path);
    unlink(tiny_path);
    free(text);
    free(seed);
    return 0;
}
