/* test_quant_mix.c - llama-quantize's i-quant mixes (IQ1_S ... IQ4_NL),
 * which `moerun synth --type` writes: for every family fixture llama.cpp
 * wrote (shared/models), the type src/quant_mix.c chooses for each tensor,
 * walked in file order as llama-quantize walks it, against the type
 * llama-quantize chose with an importance matrix
 * (tests/data/quant_mix/<fixture>-<mix>.types, recorded by
 * tests/oracle/iq_mix_types.sh).  The fixtures cover 8 experts with GQA
 * (tinymix), many experts (tinyqwen3moe, rows of 48 that fall back),
 * Llama 4's interleaved dense layers and shared expert, and DeepSeek-V3's
 * MLA tensors.  Their rows are short, so most rules end in the IQ4_NL
 * fallback; a Qwen3-30B-A3B-shaped 8-layer model (its tensor list in
 * tests/data/quant_mix/qwen3-30b-8l.tensors, llama-quantize --dry-run's
 * types beside it) has the real rows, where each rule shows.  The fixture
 * cases skip without MOERUN_TESTDATA; the K mixes are checked through
 * `moerun quantize` in test_convert. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "quant_mix.h"
#include "testutil.h"

#include "../quant/types.h"

static const char *const fixtures[][2] = {
    {"tinymix", "models/tinymix-gguf/tinymix-Q8_0.gguf"},
    {"tinyqwen3moe", "models/tinyqwen3moe/gguf/tinyqwen3moe-bf16.gguf"},
    {"tinyllama4", "models/tinyllama4/gguf/tinyllama4-bf16.gguf"},
    {"tinydeepseek3", "models/tinydeepseek3/gguf/tinydeepseek3-bf16.gguf"},
};
#define N_FIX (sizeof fixtures / sizeof fixtures[0])
static const char *const mixes[] = {"iq2_xxs", "iq2_xs", "iq2_s", "iq2_m",  "iq1_s",  "iq1_m",
                                    "iq3_xxs", "iq3_xs", "iq3_s", "iq3_m", "iq4_xs", "iq4_nl"};
#define N_MIX (sizeof mixes / sizeof mixes[0])

typedef struct {
    char name[128], type[16];
} want_row;

static int is_weight(const char *n)
{
    const size_t l = strlen(n);
    return l > 7 && !strcmp(n + l - 7, ".weight");
}

/* the recorded types of one (shape, mix); n rows, or abort the test */
static want_row *read_types(const char *path, size_t max, size_t *n)
{
    FILE *f = fopen(path, "r");
    ck_assert_msg(f, "%s is missing", path);
    want_row *w = calloc(max + 1, sizeof *w);
    *n = 0;
    while (*n <= max && fscanf(f, "%127s %15s", w[*n].name, w[*n].type) == 2)
        (*n)++;
    fclose(f);
    return w;
}

static const char *want_of(const want_row *w, size_t n, const char *name)
{
    for (size_t j = 0; j < n; j++)
        if (!strcmp(w[j].name, name))
            return w[j].type;
    return NULL;
}

START_TEST(iq_mix_matches_llama_quantize)
{
    const char *fx = fixtures[_i / N_MIX][0], *mix = mixes[_i % N_MIX];
    /* llama-quantize refuses this one: rows of 48 have no IQ4_NL fallback */
    if (!strcmp(fx, "tinyqwen3moe") && !strcmp(mix, "iq4_nl"))
        return;
    const char *data = tu_testdata();
    mr_error err;
    mr_model *m;
    const char *path = tu_path("%s/%s", data, fixtures[_i / N_MIX][1]);
    ck_assert_msg(mr_model_load(path, &m, &err) == MR_OK, "%s: %s", path, err.msg);
    const mr_gguf *g = m->gguf;

    const char *wpath = tu_path("%s/tests/data/quant_mix/%s-%s.types", tu_srcdir(), fx, mix);
    size_t n_want;
    want_row *want = read_types(wpath, g->n_tensors, &n_want);
    /* the records hold the ".weight" tensors (DeepSeek's selection bias is
     * "exp_probs_b.bias", never quantized) */
    uint64_t n_weights = 0;
    for (uint64_t i = 0; i < g->n_tensors; i++)
        n_weights += is_weight(g->tensors[i].name);
    ck_assert_uint_eq(n_want, n_weights);

    uint32_t base;
    const mr_mix mx = mr_mix_parse(mix, &base, NULL);
    ck_assert_int_ne(mx, MR_MIX_PURE);
    mr_mix_model mm = {.n_layer = m->hp.n_layer, .n_expert = m->hp.n_expert, .n_head = m->hp.n_head,
                       .n_head_kv = m->hp.n_head_kv, .tied = !mr_gguf_tensor_find(g, "output.weight")};
    for (uint64_t i = 0; i < g->n_tensors; i++)
        mm.n_attn_v += (uint32_t)mr_mix_counts_as_attn_v(g->tensors[i].name);
    mr_mix_counts mc = {0, 0};
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const mr_gguf_tensor *t = &g->tensors[i];
        if (!is_weight(t->name))
            continue;
        uint32_t type = t->type;
        if (mr_mix_quantizable(t->name, (int)t->n_dims)) {
            const mr_mix_tensor mt = mr_mix_next(&mc, t->name, (int64_t)t->ne[0]);
            type = mr_mix_tensor_type(mx, base, &mm, &mt);
        }
        const char *w = want_of(want, n_want, t->name);
        ck_assert_msg(w, "%s %s: %s not in %s", fx, mix, t->name, wpath);
        ck_assert_msg(!strcmp(mr_type_get(type)->name, w), "%s %s: %s is %s, llama-quantize: %s", fx, mix,
                      t->name, mr_type_get(type)->name, w);
    }
    free(want);
    mr_model_free(m);
}
END_TEST

/* The real-size shape: every quantized tensor's type under each mix.  Its
 * first line is "model n_layer n_expert n_head n_head_kv tied", then one
 * "name n_dims row_length" per tensor in file order (Q4_0 in the file
 * the record was made from: every matrix reaches the rules). */
START_TEST(iq_mix_real_rows)
{
    const char *mix = mixes[_i];
    const char *tpath = tu_path("%s/tests/data/quant_mix/qwen3-30b-8l.tensors", tu_srcdir());
    FILE *f = fopen(tpath, "r");
    ck_assert_msg(f, "%s is missing", tpath);
    mr_mix_model mm = {0};
    int tied;
    ck_assert(fscanf(f, "model %u %u %u %u %d", &mm.n_layer, &mm.n_expert, &mm.n_head, &mm.n_head_kv, &tied) == 5);
    mm.tied = tied;
    enum { MAX_T = 256 };
    static char names[MAX_T][128];
    int dims[MAX_T];
    long long row[MAX_T];
    size_t n = 0;
    while (n < MAX_T && fscanf(f, "%127s %d %lld", names[n], &dims[n], &row[n]) == 3)
        n++;
    fclose(f);
    ck_assert_uint_gt(n, 90);
    for (size_t i = 0; i < n; i++)
        mm.n_attn_v += (uint32_t)mr_mix_counts_as_attn_v(names[i]);
    size_t n_want;
    const char *wpath = tu_path("%s/tests/data/quant_mix/qwen3-30b-8l-%s.types", tu_srcdir(), mix);
    want_row *want = read_types(wpath, MAX_T, &n_want);
    ck_assert_uint_eq(n_want, n);
    uint32_t base;
    const mr_mix mx = mr_mix_parse(mix, &base, NULL);
    mr_mix_counts mc = {0, 0};
    int rules = 0; /* tensors whose type is not the base: the rules at work */
    for (size_t i = 0; i < n; i++) {
        const char *w = want_of(want, n_want, names[i]);
        ck_assert_msg(w, "%s: %s not in %s", mix, names[i], wpath);
        if (!mr_mix_quantizable(names[i], dims[i]))
            continue;
        const mr_mix_tensor mt = mr_mix_next(&mc, names[i], row[i]);
        const uint32_t type = mr_mix_tensor_type(mx, base, &mm, &mt);
        ck_assert_msg(!strcmp(mr_type_get(type)->name, w), "qwen3-30b-8l %s: %s is %s, llama-quantize: %s", mix,
                      names[i], mr_type_get(type)->name, w);
        rules += type != base;
    }
    ck_assert_msg(rules > 0, "%s: no tensor leaves the base type", mix);
    free(want);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("quant_mix");
    TCase *tr = tcase_create("real rows");
    tcase_add_loop_test(tr, iq_mix_real_rows, 0, (int)N_MIX);
    suite_add_tcase(s, tr);
    if (tu_testdata()) {
        TCase *tc = tcase_create("fixtures");
        tcase_set_timeout(tc, 120);
        tcase_add_loop_test(tc, iq_mix_matches_llama_quantize, 0, (int)(N_FIX * N_MIX));
        suite_add_tcase(s, tc);
    } else
        printf("test_quant_mix: no MOERUN_TESTDATA: the fixtures' cases are not run\n");
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    const int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
