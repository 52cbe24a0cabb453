/* cmd_compare.c - moerun compare: how fast is this MoE on this machine,
 * beside a dense model of the same active size and one of the same total
 * size.
 *
 * The MoE is a file (-m) or a shape (--shape, written by synth); its two
 * dense twins are written by synth with the MoE's widths (one FFN of
 * n_ff x experts-used, and of n_ff x experts).  Each model is measured by
 * `moerun bench --json` in its own process, one after the other, so the
 * three rows of a thread count come from the same minutes of a shared
 * machine.  Output: a markdown table with the ratios, optionally the JSON
 * of every row (--json FILE) and an SVG plot of decode tokens/s per thread
 * count with each model's bandwidth ceiling as a dashed line (--svg FILE).
 */
#include <errno.h>
#include <json-c/json.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "options.h"
#include "synth.h"
#include "threadpool.h"
#include "types.h"

extern char **environ;

enum { OPT_SHAPE = CLI_O_EXTRA, OPT_LAYERS, OPT_TYPE, OPT_PP, OPT_TG, OPT_THREADS_LIST,
       OPT_REPS, OPT_DIR, OPT_JSON, OPT_SVG, OPT_KEEP };

static const cli_opt compare_extra[] = {
    {NULL, "--shape", "NAME", "measure a synthetic MoE of this shape (see moerun synth --help)",
     OPT_SHAPE},
    {NULL, "--layers", "N", "with --shape: keep the first N layers (default 2)", OPT_LAYERS},
    {NULL, "--type", "T", "with --shape: matrix type (default q4_0)", OPT_TYPE},
    {"-pp", "--n-prompt", "N", "prompt tokens of the prefill test (default 256, 0 = none)", OPT_PP},
    {"-tg", "--n-gen", "N", "generated tokens of the decode test (default 32)", OPT_TG},
    {"-tl", "--threads-list", "LIST", "thread counts, e.g. 1,2 (default: 1 and all CPUs)",
     OPT_THREADS_LIST},
    {"-r", "--repetitions", "R", "counted runs per test (default 3)", OPT_REPS},
    {NULL, "--dir", "DIR", "where the twins are written (default: a new folder in $TMPDIR)",
     OPT_DIR},
    {NULL, "--json", "FILE", "also write every measured row as JSON", OPT_JSON},
    {NULL, "--svg", "FILE", "also draw decode tokens/s per thread count, with ceilings", OPT_SVG},
    {NULL, "--keep", NULL, "keep the twins' files (default: removed at the end)", OPT_KEEP},
    {0},
};

typedef struct {
    const char *shape, *threads, *dir, *json, *svg;
    long layers, pp, tg, reps;
    int keep;
    uint32_t type;
} compare_state;

static int compare_option(void *user, int id, const char *v)
{
    compare_state *st = user;
    switch (id) {
    case OPT_SHAPE: st->shape = v; return 0;
    case OPT_LAYERS:
        if (cli_parse_long(v, 1, 1024, &st->layers))
            return cli_usage_error("compare", "--layers wants a number >= 1, got '%s'", v);
        return 0;
    case OPT_TYPE:
        st->type = mr_type_from_name(v);
        if (st->type == MR_TYPE_COUNT || !mr_type_computable(st->type))
            return cli_usage_error("compare", "--type '%s' is not a type moerun computes with", v);
        return 0;
    case OPT_PP:
        if (cli_parse_long(v, 0, 65536, &st->pp))
            return cli_usage_error("compare", "-pp wants a number of tokens, got '%s'", v);
        return 0;
    case OPT_TG:
        if (cli_parse_long(v, 1, 65536, &st->tg))
            return cli_usage_error("compare", "-tg wants a number >= 1, got '%s'", v);
        return 0;
    case OPT_THREADS_LIST:
        for (const char *c = v; *c; c++)
            if ((*c < '0' || *c > '9') && *c != ',')
                return cli_usage_error("compare", "-tl wants thread counts like 1,2, got '%s'", v);
        st->threads = v;
        return 0;
    case OPT_REPS:
        if (cli_parse_long(v, 1, 100, &st->reps))
            return cli_usage_error("compare", "-r wants 1..100, got '%s'", v);
        return 0;
    case OPT_DIR: st->dir = v; return 0;
    case OPT_JSON: st->json = v; return 0;
    case OPT_SVG: st->svg = v; return 0;
    default: st->keep = 1; return 0;
    }
}

static const int compare_common[] = {CLI_O_MODEL, 0};

static const cli_command compare_cmd = {
    "compare", "(-m MOE.gguf | --shape NAME [--layers N] [--type T]) [-pp N] [-tg N] [-tl 1,2]\n"
               "       [-r R] [--json FILE] [--svg FILE]",
    "Decode and prefill speed of a MoE beside its two dense twins: one of the same active\n"
    "size (what a token reads) and one of the same total size (what the model holds),\n"
    "each as a share of the memory bandwidth measured in the same run.",
    compare_common, compare_extra, compare_option,
    "The twins are random-weight Llama-architecture models with the MoE's widths\n"
    "(moerun synth); a MoE file of another family gets twins of the same sizes.\n",
};

/* One bench row. */
typedef struct {
    long threads;
    double pp, tg, tg_gbs, bw, frac;
} row;

typedef struct {
    const char *kind, *path;
    double gib, mib_per_token;
    row rows[16];
    int n;
} measured;

/* Run `moerun bench --json` on path; parse its rows. */
static int bench_one(const char *self, measured *m, const compare_state *st)
{
    char pp[32], tg[32], reps[32];
    snprintf(pp, sizeof pp, "%ld", st->pp);
    snprintf(tg, sizeof tg, "%ld", st->tg);
    snprintf(reps, sizeof reps, "%ld", st->reps);
    char *argv[] = {(char *)self, "bench", "-m", (char *)m->path, "-p", pp, "-n", tg, "-t",
                    (char *)st->threads, "-r", reps, "--json", NULL};
    int fds[2];
    if (pipe(fds))
        return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    pid_t pid;
    int rc = posix_spawn(&pid, self, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (rc) {
        close(fds[0]);
        fprintf(stderr, "moerun compare: cannot run %s: %s\n", self, strerror(rc));
        return -1;
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    for (ssize_t r; buf && (r = read(fds[0], buf + len, cap - len - 1)) != 0;) {
        if (r < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        len += (size_t)r;
        if (len + 1 >= cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb)
                break;
            buf = nb;
        }
    }
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!buf || !WIFEXITED(status) || WEXITSTATUS(status)) {
        free(buf);
        fprintf(stderr, "moerun compare: bench of %s failed\n", m->path);
        return -1;
    }
    buf[len] = 0;
    json_object *arr = json_tokener_parse(buf);
    free(buf);
    if (!arr || json_object_get_type(arr) != json_type_array) {
        json_object_put(arr);
        fprintf(stderr, "moerun compare: bench of %s printed no JSON rows\n", m->path);
        return -1;
    }
    m->n = 0;
    for (size_t i = 0; i < json_object_array_length(arr); i++) {
        json_object *o = json_object_array_get_idx(arr, i), *v;
        long th = json_object_object_get_ex(o, "threads", &v) ? json_object_get_int(v) : 0;
        const char *test = json_object_object_get_ex(o, "test", &v) ? json_object_get_string(v) : "";
        int k = 0;
        while (k < m->n && m->rows[k].threads != th)
            k++;
        if (k == m->n) {
            if (m->n == 16)
                continue;
            memset(&m->rows[k], 0, sizeof m->rows[k]);
            m->rows[k].threads = th;
            m->n++;
        }
        row *r = &m->rows[k];
        const double tps = json_object_object_get_ex(o, "tokens_per_s", &v) ? json_object_get_double(v) : 0;
        if (json_object_object_get_ex(o, "size_gib", &v))
            m->gib = json_object_get_double(v);
        if (!strncmp(test, "pp", 2)) {
            r->pp = tps;
        } else {
            r->tg = tps;
            r->tg_gbs = json_object_object_get_ex(o, "weights_gbs", &v) ? json_object_get_double(v) : 0;
            r->bw = json_object_object_get_ex(o, "read_bw_gbs", &v) ? json_object_get_double(v) : 0;
            r->frac = json_object_object_get_ex(o, "bw_fraction", &v) ? json_object_get_double(v) : 0;
            if (tps > 0)
                m->mib_per_token = r->tg_gbs * 1e9 / tps / 1048576.0;
        }
    }
    json_object_put(arr);
    return m->n ? 0 : -1;
}

static void print_table(const measured *ms, int n, long pp, long tg)
{
    printf("| model | kind | size | read per token | threads | pp%ld t/s | tg%ld t/s | "
           "tg GB/s | of read BW | tg ceiling t/s |\n", pp, tg);
    printf("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for (int i = 0; i < n; i++)
        for (int k = 0; k < ms[i].n; k++) {
            const row *r = &ms[i].rows[k];
            printf("| %s | %s | %.2f GiB | %.1f MiB | %ld | %.1f | %.2f | %.2f | %.1f%% | %.1f |\n",
                   ms[i].path, ms[i].kind, ms[i].gib, ms[i].mib_per_token, r->threads, r->pp, r->tg,
                   r->tg_gbs, 100 * r->frac, r->frac > 0 ? r->tg / r->frac : 0.0);
        }
    printf("\n");
    for (int k = 0; k < ms[0].n; k++) {
        const row *a = &ms[0].rows[k];
        printf("threads %ld: MoE decode %.2fx the same-active dense twin and %.2fx the "
               "same-total one; prefill %.2fx and %.2fx\n",
               a->threads, ms[1].rows[k].tg > 0 ? a->tg / ms[1].rows[k].tg : 0,
               ms[2].rows[k].tg > 0 ? a->tg / ms[2].rows[k].tg : 0,
               ms[1].rows[k].pp > 0 ? a->pp / ms[1].rows[k].pp : 0,
               ms[2].rows[k].pp > 0 ? a->pp / ms[2].rows[k].pp : 0);
    }
}

static int write_json(const char *path, const measured *ms, int n)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f, "[\n");
    for (int i = 0; i < n; i++)
        for (int k = 0; k < ms[i].n; k++) {
            const row *r = &ms[i].rows[k];
            fprintf(f, "  {\"model\": \"%s\", \"kind\": \"%s\", \"size_gib\": %.3f, "
                       "\"mib_per_token\": %.2f, \"threads\": %ld, \"pp_tokens_per_s\": %.3f, "
                       "\"tg_tokens_per_s\": %.3f, \"tg_weights_gbs\": %.3f, \"read_bw_gbs\": %.3f, "
                       "\"bw_fraction\": %.4f}%s\n",
                    ms[i].path, ms[i].kind, ms[i].gib, ms[i].mib_per_token, r->threads, r->pp,
                    r->tg, r->tg_gbs, r->bw, r->frac, i + 1 < n || k + 1 < ms[i].n ? "," : "");
        }
    fprintf(f, "]\n");
    return fclose(f) ? -1 : 0;
}

/* Decode tokens/s per thread count: a solid line per model, its ceiling
 * (read bandwidth / bytes per token) dashed in the same colour. */
static int write_svg(const char *path, const measured *ms, int n)
{
    static const char *const colour[3] = {"#d62728", "#1f77b4", "#2ca02c"};
    const double W = 720, H = 440, L = 70, R = 200, T = 40, B = 50;
    double ymax = 0;
    int nt = ms[0].n;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < ms[i].n; k++) {
            const row *r = &ms[i].rows[k];
            const double c = r->frac > 0 ? r->tg / r->frac : r->tg;
            ymax = fmax(ymax, fmax(r->tg, c));
        }
    if (ymax <= 0)
        return -1;
    double step = pow(10, floor(log10(ymax)));
    if (ymax / step < 2)
        step /= 5;
    else if (ymax / step < 5)
        step /= 2;
    ymax = ceil(ymax / step) * step;
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
#define X(k) (L + (nt > 1 ? (double)(k) / (nt - 1) : 0.5) * (W - L - R))
#define Y(v) (H - B - (v) / ymax * (H - T - B))
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
               "font-family=\"sans-serif\" font-size=\"12\">\n"
               "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
               "<text x=\"%.0f\" y=\"22\" font-size=\"15\">decode tokens/s: MoE and its dense twins "
               "(dashed: bandwidth ceiling)</text>\n", W, H, L);
    for (double v = 0; v <= ymax + step / 2; v += step) {
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n"
                   "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n",
                L, Y(v), W - R, Y(v), L - 6, Y(v) + 4, v);
    }
    for (int k = 0; k < nt; k++)
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%ld</text>\n", X(k),
                H - B + 18, ms[0].rows[k].threads);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">threads</text>\n",
            (L + W - R) / 2, H - 12);
    fprintf(f, "<text x=\"16\" y=\"%.1f\" transform=\"rotate(-90 16 %.1f)\" "
               "text-anchor=\"middle\">tokens/s</text>\n", (T + H - B) / 2, (T + H - B) / 2);
    for (int i = 0; i < n; i++) {
        for (int dashed = 0; dashed < 2; dashed++) {
            fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"%s\"%s points=\"",
                    colour[i], dashed ? "1.5" : "2.5", dashed ? " stroke-dasharray=\"6 4\"" : "");
            for (int k = 0; k < ms[i].n; k++) {
                const row *r = &ms[i].rows[k];
                const double v = dashed ? (r->frac > 0 ? r->tg / r->frac : 0) : r->tg;
                fprintf(f, "%.1f,%.1f ", X(k), Y(v));
            }
            fprintf(f, "\"/>\n");
        }
        for (int k = 0; k < ms[i].n; k++)
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\"/>\n", X(k),
                    Y(ms[i].rows[k].tg), colour[i]);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                   "stroke-width=\"2.5\"/>\n<text x=\"%.1f\" y=\"%.1f\">%s</text>\n"
                   "<text x=\"%.1f\" y=\"%.1f\" fill=\"#555\">%.2f GiB, %.0f MiB/token</text>\n",
                W - R + 12, T + 20 + 44.0 * i, W - R + 32, T + 20 + 44.0 * i, colour[i],
                W - R + 38, T + 24 + 44.0 * i, ms[i].kind, W - R + 38, T + 40 + 44.0 * i,
                ms[i].gib, ms[i].mib_per_token);
    }
#undef X
#undef Y
    fprintf(f, "</svg>\n");
    return fclose(f) ? -1 : 0;
}

/* A synth shape with a loaded model's widths. */
static mr_synth_shape shape_of(const mr_model *m)
{
    const mr_hparams *hp = &m->hp;
    mr_synth_shape s;
    memset(&s, 0, sizeof s);
    s.name = "model";
    s.n_vocab = hp->n_vocab;
    s.n_embd = hp->n_embd;
    s.n_layer = hp->n_layer;
    s.n_head = hp->n_head;
    s.n_head_kv = hp->n_head_kv;
    s.n_ff = hp->n_ff;
    s.n_expert = hp->n_expert;
    s.n_expert_used = hp->n_expert_used;
    s.n_ctx = hp->n_ctx_train;
    s.rope_base = hp->rope.base;
    return s;
}

int cmd_compare(int argc, char **argv)
{
    compare_state st = {NULL, NULL, NULL, NULL, NULL, 2, 256, 32, 3, 0, MR_TYPE_Q4_0};
    cli_opts o;
    int prc = cli_parse(&compare_cmd, argc, argv, &o, &st);
    if (prc >= 0) {
        free(o.pos);
        return prc;
    }
    free(o.pos);
    if (!!st.shape == !!o.model)
        return cli_usage_error("compare", "give a MoE as -m FILE or --shape NAME (one of them)");
    char threads[64];
    if (!st.threads) {
        int all = mr_physical_cores();
        snprintf(threads, sizeof threads, all > 1 ? "1,%d" : "1", all);
        st.threads = threads;
    }
    char self[4096];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    if (sl <= 0)
        return cli_usage_error("compare", "cannot find the moerun binary (/proc/self/exe)");
    self[sl] = 0;

    mr_synth_params base;
    memset(&base, 0, sizeof base);
    base.seed = 1;
    mr_error err;
    if (st.shape) {
        const mr_synth_shape *sh = mr_synth_shape_find(st.shape);
        if (!sh)
            return cli_usage_error("compare", "unknown shape '%s' (see moerun synth --help)", st.shape);
        base.shape = *sh;
        if ((uint32_t)st.layers < base.shape.n_layer)
            base.shape.n_layer = (uint32_t)st.layers;
        base.type = st.type;
    } else {
        mr_model *m;
        if (mr_model_load(o.model, &m, &err))
            return cli_report(&err);
        if (!m->hp.is_moe) {
            mr_model_free(m);
            return cli_usage_error("compare", "%s is not a Mixture of Experts", o.model);
        }
        base.shape = shape_of(m);
        uint32_t first = 0;
        while (first + 1 < m->hp.n_layer && !m->layers[first].moe)
            first++;
        base.type = m->layers[first].gate.type;
        mr_model_free(m);
    }
    char dirbuf[4096];
    const char *dir = st.dir;
    if (!dir) {
        const char *tmp = getenv("TMPDIR");
        snprintf(dirbuf, sizeof dirbuf, "%s/moerun-compare-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(dirbuf))
            return cli_usage_error("compare", "cannot make a folder in %s: %s",
                                   tmp && *tmp ? tmp : "/tmp", strerror(errno));
        dir = dirbuf;
    }
    static const char *const kinds[3] = {"MoE", "dense, same active size", "dense, same total size"};
    char paths[3][4200];
    measured ms[3];
    memset(ms, 0, sizeof ms);
    int rc = EXIT_OK, made[3] = {0, 0, 0};
    for (int i = 0; i < 3 && rc == EXIT_OK; i++) {
        ms[i].kind = kinds[i];
        if (i == 0 && o.model) {
            snprintf(paths[0], sizeof paths[0], "%s", o.model);
        } else {
            mr_synth_params p = base;
            p.dense = i;
            snprintf(paths[i], sizeof paths[i], "%s/%s.gguf", dir,
                     i == 0 ? "moe" : i == 1 ? "dense-active" : "dense-total");
            fprintf(stderr, "compare: writing the %s model (%.2f GiB) to %s\n", kinds[i],
                    mr_synth_file_size(&p) / 1073741824.0, paths[i]);
            if (mr_synth_write(&p, paths[i], NULL, NULL, &err)) {
                rc = cli_report(&err);
                break;
            }
            made[i] = 1;
        }
        ms[i].path = paths[i];
    }
    for (int i = 0; i < 3 && rc == EXIT_OK; i++) {
        fprintf(stderr, "compare: measuring the %s model (threads %s)\n", kinds[i], st.threads);
        if (bench_one(self, &ms[i], &st))
            rc = EXIT_IO;
    }
    if (rc == EXIT_OK) {
        print_table(ms, 3, st.pp, st.tg);
        if (st.json && write_json(st.json, ms, 3)) {
            fprintf(stderr, "moerun compare: cannot write %s: %s\n", st.json, strerror(errno));
            rc = EXIT_IO;
        }
        if (st.svg && write_svg(st.svg, ms, 3)) {
            fprintf(stderr, "moerun compare: cannot write %s\n", st.svg);
            rc = EXIT_IO;
        }
    }
    if (!st.keep) {
        for (int i = 0; i < 3; i++)
            if (made[i])
                unlink(paths[i]);
        if (!st.dir)
            rmdir(dir);
    } else {
        fprintf(stderr, "compare: the models stay in %s\n", dir);
    }
    return rc;
}
