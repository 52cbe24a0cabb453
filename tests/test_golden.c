/* test_golden.c - both llama.cpp-written tinymix GGUF files in shared/
 * against the float64 references of shared/ref (skipped, exit 77, when
 * MOERUN_TESTDATA is absent).
 *
 * All on the exact path (f32 activations; the fast path is held to its
 * own tolerance in test_forward).  Tolerances:
 * - vs ref/gguf/<file>.<prompt>.logits.f32 (same quantized weights,
 *   dequantised exactly, float64 activations): <= 1e-3, top-1 identical.
 * - Q8_0 vs the bf16 model's logits (ref/<prompt>.logits.f32), every
 *   prompt: the reference measured the Q8_0 weights' own effect at 0.059,
 *   so <= 0.1, and top-1 identical on rows whose reference margin exceeds
 *   2 x 0.1; except at a position where the reference's router had a
 *   near-tie (2nd vs 3rd expert gap < 2e-3, ref/routing_near_ties.json):
 *   Q8_0 weights may route that token to another expert (long_story
 *   position 38, gap 1.4e-3, does: its row moves by 1.39), so such rows
 *   are left out and named.
 * - routing of "short" (ref/short.experts.json): identical experts per
 *   layer and token on Q8_0 (the smallest 2nd/3rd router gap of the prompt
 *   is 0.0124, well above the Q8_0 router error).
 */
#include <check.h>
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forward.h"
#include "testutil.h"

#define N_VOCAB 32000

static const char *data;

static float *logits_of(const char *gguf, const int32_t *ids, size_t n, mr_model **keep,
                        uint32_t **routing)
{
    mr_error err;
    mr_model *m;
    mr_expert_store *st;
    mr_context *c;
    ck_assert_msg(mr_model_load(gguf, &m, &err) == 0, "%s", err.msg);
    ck_assert(mr_store_resident_new(m, &st, &err) == 0);
    ck_assert(mr_context_new(m, st, (uint32_t)n, (uint32_t)n, &c, &err) == 0);
    mr_context_set_exact(c, 1);
    float *lg = malloc(sizeof(float) * n * N_VOCAB);
    ck_assert_msg(mr_decode(c, ids, (uint32_t)n, lg, 1, &err) == 0, "%s", err.msg);
    if (routing) {
        *routing = malloc(sizeof(uint32_t) * m->hp.n_layer * n * 2);
        for (uint32_t l = 0; l < m->hp.n_layer; l++)
            memcpy(*routing + (size_t)l * n * 2, mr_context_last_routing(c, l),
                   sizeof(uint32_t) * n * 2);
    }
    mr_context_free(c);
    mr_expert_store_free(st);
    if (keep)
        *keep = m;
    else
        mr_model_free(m);
    return lg;
}

static const char *const gguf_cases[][2] = {
    {"Q8_0", "short"}, {"Q8_0", "digits_punct"}, {"Q4_0", "short"}, {"Q4_0", "digits_punct"},
};

START_TEST(gguf_files_match_their_references)
{
    const char *type = gguf_cases[_i][0], *prompt = gguf_cases[_i][1];
    size_t n, nr;
    int32_t *ids = tu_read_ids_json(tu_path("%s/ref/%s.ids.json", data, prompt), &n, NULL);
    float *ref = tu_read_f32(tu_path("%s/ref/gguf/tinymix-%s.%s.logits.f32", data, type, prompt), &nr);
    ck_assert(ids && ref && nr == n * N_VOCAB);
    float *lg = logits_of(tu_path("%s/models/tinymix-gguf/tinymix-%s.gguf", data, type), ids, n,
                          NULL, NULL);
    double d = tu_max_abs_diff(lg, ref, n * N_VOCAB);
    size_t agree = 0;
    for (size_t t = 0; t < n; t++)
        agree += tu_argmax(lg + t * N_VOCAB, N_VOCAB, NULL) == tu_argmax(ref + t * N_VOCAB, N_VOCAB, NULL);
    printf("tinymix-%s %-13s vs gguf ref: max |diff| %.3g, top-1 %zu/%zu\n", type, prompt, d,
           agree, n);
    ck_assert_msg(d <= 1e-3, "max |diff| %g", d);
    ck_assert_uint_eq(agree, n);
    free(lg);
    free(ref);
    free(ids);
}
END_TEST

static const char *const prompts[] = {"short", "long_story", "digits_punct",
                                      "unicode_emoji", "leading_spaces", "empty_ish"};

/* Positions of prompt whose reference routing gap is below 2e-3. */
static int near_tie(const char *prompt, size_t pos)
{
    json_object *root = json_object_from_file(tu_path("%s/ref/routing_near_ties.json", data));
    json_object *p, *v, *lp;
    int hit = 0;
    ck_assert(root && json_object_object_get_ex(root, prompt, &p));
    if (json_object_object_get_ex(p, "min_gap_prompt", &v) && json_object_get_double(v) < 2e-3 &&
        json_object_object_get_ex(p, "argmin_layer_pos", &lp))
        hit |= (size_t)json_object_get_int(json_object_array_get_idx(lp, 1)) == pos;
    if (json_object_object_get_ex(p, "below_1e-3", &v))
        for (size_t i = 0; i < json_object_array_length(v); i++) {
            json_object *e = json_object_array_get_idx(v, i), *ps;
            if (json_object_object_get_ex(e, "pos", &ps))
                hit |= (size_t)json_object_get_int(ps) == pos;
        }
    json_object_put(root);
    return hit;
}

START_TEST(q8_0_close_to_bf16_reference)
{
    const char *prompt = prompts[_i];
    size_t n, nr;
    int32_t *ids = tu_read_ids_json(tu_path("%s/ref/%s.ids.json", data, prompt), &n, NULL);
    float *ref = tu_read_f32(tu_path("%s/ref/%s.logits.f32", data, prompt), &nr);
    ck_assert(ids && ref && nr == n * N_VOCAB);
    float *lg = logits_of(tu_path("%s/models/tinymix-gguf/tinymix-Q8_0.gguf", data), ids, n,
                          NULL, NULL);
    double d = 0.0;
    size_t agree = 0, rows = 0;
    for (size_t t = 0; t < n; t++) {
        if (near_tie(prompt, t)) {
            printf("  (%s row %zu left out: reference routing near-tie; its max |diff| %.3g)\n",
                   prompt, t, tu_max_abs_diff(lg + t * N_VOCAB, ref + t * N_VOCAB, N_VOCAB));
            continue;
        }
        double dr = tu_max_abs_diff(lg + t * N_VOCAB, ref + t * N_VOCAB, N_VOCAB);
        d = dr > d ? dr : d;
        double margin;
        size_t want = tu_argmax(ref + t * N_VOCAB, N_VOCAB, &margin);
        if (margin <= 0.2)
            continue;
        rows++;
        agree += tu_argmax(lg + t * N_VOCAB, N_VOCAB, NULL) == want;
    }
    printf("tinymix-Q8_0 %-15s vs bf16 ref: max |diff| %.3g, top-1 %zu/%zu rows with margin > 0.2\n",
           prompt, d, agree, rows);
    ck_assert_msg(d <= 0.1, "max |diff| %g", d);
    ck_assert_uint_eq(agree, rows);
    free(lg);
    free(ref);
    free(ids);
}
END_TEST

START_TEST(routing_matches_reference)
{
    size_t n;
    int32_t *ids = tu_read_ids_json(tu_path("%s/ref/short.ids.json", data), &n, NULL);
    uint32_t *sel;
    mr_model *m;
    float *lg = logits_of(tu_path("%s/models/tinymix-gguf/tinymix-Q8_0.gguf", data), ids, n, &m, &sel);
    json_object *root = json_object_from_file(tu_path("%s/ref/short.experts.json", data)), *se;
    ck_assert(root && json_object_object_get_ex(root, "selected_experts", &se));
    for (uint32_t l = 0; l < m->hp.n_layer; l++) {
        json_object *lay = json_object_array_get_idx(se, l);
        for (size_t t = 0; t < n; t++) {
            json_object *pair = json_object_array_get_idx(lay, t);
            for (int k = 0; k < 2; k++) {
                uint32_t want = (uint32_t)json_object_get_int(json_object_array_get_idx(pair, k));
                ck_assert_msg(sel[(l * n + t) * 2 + k] == want,
                              "layer %u token %zu slot %d: expert %u, reference %u", l, t, k,
                              sel[(l * n + t) * 2 + k], want);
            }
        }
    }
    printf("routing of 'short': %u layers x %zu tokens x 2 experts identical\n", m->hp.n_layer, n);
    json_object_put(root);
    mr_model_free(m);
    free(sel);
    free(lg);
    free(ids);
}
END_TEST

int main(void)
{
    data = tu_testdata_or_skip();
    Suite *s = suite_create("golden");
    TCase *tc = tcase_create("shared-ref");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, gguf_files_match_their_references, 0, 4);
    tcase_add_loop_test(tc, q8_0_close_to_bf16_reference, 0, 6);
    tcase_add_test(tc, routing_matches_reference);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
