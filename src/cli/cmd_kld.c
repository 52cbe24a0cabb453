/* cmd_kld.c - moerun kld: how far a model's next-token distributions are
 * from reference logits: KL(P_ref || P_model) per position, averaged. */
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "options.h"

#define DEFAULT_PROMPTS "short,long_story,digits_punct,unicode_emoji,leading_spaces,empty_ish"

enum { OPT_REF = CLI_O_EXTRA, OPT_PROMPTS };

static const cli_opt kld_extra[] = {
    {"-r", "--ref", "DIR", "reference directory (default ../shared/ref)", OPT_REF},
    {NULL, "--prompts", "LIST", "comma-separated prompt names (default\n" DEFAULT_PROMPTS ")",
     OPT_PROMPTS},
    {0},
};

typedef struct {
    const char *dir, *prompts;
} kld_state;

static int kld_option(void *user, int id, const char *v)
{
    kld_state *k = user;
    if (id == OPT_REF)
        k->dir = v;
    else
        k->prompts = v;
    return 0;
}

static const int kld_common[] = {CLI_O_MODEL, CLI_O_THREADS, CLI_O_EXACT, CLI_O_GPU_IGNORED,
                                 CLI_O_YARN_TRUNC, CLI_O_CACHE_K, CLI_O_CACHE_V, 0};

static const cli_command kld_cmd = {
    "kld", "-m FILE [--ref DIR] [--prompts A,B,...] [--exact]",
    "Run the model on reference prompts and compare its logits with reference\n"
    "logits: for every position, KL(P_ref || P_model) of the two softmax\n"
    "distributions (natural log), the top-1 agreement and the largest logit\n"
    "difference; over all positions also the median (the mean is dominated by the\n"
    "few positions where a near-tie in the router picks another expert).  For\n"
    "prompt NAME, DIR holds NAME.ids.json (\"ids\": token ids, BOS included) and\n"
    "NAME.logits.f32 (float32 [n_tokens, n_vocab]), as in shared/ref (bf16\n"
    "reference logits of tinymix).  Non-finite logits fail.  The last line printed\n"
    "is 'KLD = <mean over all positions>'.",
    kld_common, kld_extra, kld_option, NULL,
};

/* log-sum-exp of n logits, in double. */
static double log_sum_exp(const float *x, uint32_t n)
{
    double max = x[0], sum = 0.0;
    for (uint32_t i = 1; i < n; i++)
        if (x[i] > max)
            max = x[i];
    for (uint32_t i = 0; i < n; i++)
        sum += exp((double)x[i] - max);
    return max + log(sum);
}

/* Index of the largest value. */
static uint32_t argmax(const float *x, uint32_t n)
{
    uint32_t b = 0;
    for (uint32_t i = 1; i < n; i++)
        if (x[i] > x[b])
            b = i;
    return b;
}

/* The "ids" array of a reference .ids.json (malloc'd). */
static mr_status read_ids(const char *path, int32_t **ids, size_t *n, mr_error *err)
{
    char *text;
    size_t len;
    mr_status s = cli_read_file(path, &text, &len, err);
    if (s)
        return s;
    json_object *root = json_tokener_parse(text), *a;
    free(text);
    *ids = NULL;
    if (!root || !json_object_object_get_ex(root, "ids", &a) ||
        json_object_get_type(a) != json_type_array || json_object_array_length(a) == 0) {
        json_object_put(root);
        return mr_fail(err, MR_EFORMAT, path, "ids", MR_NO_OFFSET, "missing or not an array");
    }
    *n = json_object_array_length(a);
    if (!(*ids = malloc(sizeof(int32_t) * *n))) {
        json_object_put(root);
        return mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory");
    }
    for (size_t i = 0; i < *n; i++)
        (*ids)[i] = (int32_t)json_object_get_int(json_object_array_get_idx(a, i));
    json_object_put(root);
    return MR_OK;
}

typedef struct {
    double kl_sum, kl_max, dmax;
    size_t positions, agree;
    double *kl;     /* every position's KL (the "all" accumulator only) */
    size_t kl_cap;
} kld_acc;

/* Order of doubles, for the median. */
static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Compare one prompt's logits (n x n_vocab) with the reference file. */
static mr_status compare_prompt(cli_session *S, const cli_compute_opts *co, const char *dir,
                                const char *name, kld_acc *all, mr_error *err)
{
    char path[4096];
    int32_t *ids = NULL;
    size_t n = 0, len = 0;
    char *ref = NULL;
    float *logits = NULL;
    mr_context *ctx = NULL;
    const uint32_t V = S->model->hp.n_vocab;
    kld_acc a = {0};
    mr_status s;
    snprintf(path, sizeof path, "%s/%s.ids.json", dir, name);
    if ((s = read_ids(path, &ids, &n, err)))
        goto done;
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || (uint32_t)ids[i] >= V) {
            s = mr_fail(err, MR_EFORMAT, path, "ids", MR_NO_OFFSET, "id %d out of range", ids[i]);
            goto done;
        }
    snprintf(path, sizeof path, "%s/%s.logits.f32", dir, name);
    if ((s = cli_read_file(path, &ref, &len, err)))
        goto done;
    if (len != n * V * sizeof(float)) {
        s = mr_fail(err, MR_EFORMAT, path, NULL, MR_NO_OFFSET,
                    "%zu bytes, but %zu tokens x %u logits need %zu", len, n, V, n * V * 4);
        goto done;
    }
    if (!(logits = malloc(sizeof(float) * n * V))) {
        s = mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory");
        goto done;
    }
    if ((s = cli_context_new(S, co, (uint32_t)n, (uint32_t)n, &ctx, err)) ||
        (s = mr_decode(ctx, ids, (uint32_t)n, logits, 1, err)))
        goto done;
    for (size_t t = 0; t < n; t++) {
        const float *p = (const float *)ref + t * V, *q = logits + t * V;
        double lp = log_sum_exp(p, V), lq = log_sum_exp(q, V), kl = 0.0;
        for (uint32_t i = 0; i < V; i++) {
            double lpi = (double)p[i] - lp;
            kl += exp(lpi) * (lpi - ((double)q[i] - lq));
            double d = fabs((double)p[i] - (double)q[i]);
            if (d > a.dmax)
                a.dmax = d;
        }
        a.kl_sum += kl;
        if (all->positions + a.positions >= all->kl_cap) {
            size_t cap = all->kl_cap ? 2 * all->kl_cap : 256;
            double *nk = realloc(all->kl, sizeof *nk * cap);
            if (!nk) {
                s = mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory");
                goto done;
            }
            all->kl = nk;
            all->kl_cap = cap;
        }
        all->kl[all->positions + a.positions] = kl;
        if (kl > a.kl_max)
            a.kl_max = kl;
        a.agree += argmax(p, V) == argmax(q, V);
        a.positions++;
    }
    printf("%-16s %4zu positions  KLD mean %.3g max %.3g  top-1 agree %5.1f %%  max |dlogit| %.4f\n",
           name, a.positions, a.kl_sum / a.positions, a.kl_max, 100.0 * a.agree / a.positions, a.dmax);
    all->kl_sum += a.kl_sum;
    all->positions += a.positions;
    all->agree += a.agree;
    if (a.kl_max > all->kl_max)
        all->kl_max = a.kl_max;
    if (a.dmax > all->dmax)
        all->dmax = a.dmax;
done:
    mr_context_free(ctx);
    free(logits);
    free(ref);
    free(ids);
    return s;
}

int cmd_kld(int argc, char **argv)
{
    kld_state ks = {"../shared/ref", DEFAULT_PROMPTS};
    cli_opts o;
    int prc = cli_parse(&kld_cmd, argc, argv, &o, &ks);
    if (prc >= 0) {
        free(o.pos);
        return prc;
    }
    const char *model = o.model, *dir = ks.dir, *prompts = ks.prompts;
    if (o.n_pos) {
        int r = cli_usage_error("kld", "unexpected argument '%s'", o.pos[0]);
        free(o.pos);
        return r;
    }
    free(o.pos);
    if (!model)
        return cli_usage_error("kld", "-m FILE is required");
    /* every name between commas must be there: ",," or "a,,b" is a typo */
    if (!*prompts || prompts[0] == ',' || prompts[strlen(prompts) - 1] == ',' ||
        strstr(prompts, ",,"))
        return cli_usage_error("kld", "--prompts wants comma-separated names, got '%s'", prompts);
    char *list = strdup(prompts);
    if (!list)
        return EXIT_IO;
    mr_error err;
    cli_session S;
    kld_acc all = {0};
    int rc = EXIT_OK;
    cli_store_opts so;
    cli_store_opts_default(&so);
    if (cli_session_open(model, &S, &err) || cli_session_store(&S, &so, 1, 1, 0, &err)) {
        free(list);
        rc = cli_report(&err);
        cli_session_close(&S);
        return rc;
    }
    char *save = NULL;
    for (char *name = strtok_r(list, ",", &save); name; name = strtok_r(NULL, ",", &save))
        if (compare_prompt(&S, &o.compute, dir, name, &all, &err)) {
            rc = cli_report(&err);
            break;
        }
    if (rc == EXIT_OK && all.positions) {
        qsort(all.kl, all.positions, sizeof *all.kl, cmp_double);
        printf("all              %4zu positions  KLD median %.3g max %.3g  top-1 agree %5.1f %%  "
               "max |dlogit| %.4f\n", all.positions, all.kl[all.positions / 2], all.kl_max,
               100.0 * all.agree / all.positions, all.dmax);
        double mean = all.kl_sum / all.positions;
        if (!isfinite(mean)) {
            mr_fail(&err, MR_EFORMAT, model, NULL, MR_NO_OFFSET, "the mean KLD is %g", mean);
            rc = cli_report(&err);
        } else {
            printf("KLD = %.6g\n", mean);
        }
    }
    cli_session_close(&S);
    free(all.kl);
    free(list);
    return rc;
}
