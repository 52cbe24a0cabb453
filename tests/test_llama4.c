/* test_llama4.c - what tests/test_families.c does not reach of Llama 4
 * (src/arch/llama4.c).  Always: `moerun synth --shape llama4-micro` (dense
 * layers interleaved as in Maverick) runs paged exactly as resident, and
 * with 128 experts it has no q/k norm (llama.cpp's rule).  On
 * the tinyllama4 fixture (skipped when MOERUN_TESTDATA is absent):
 * - the layer schedule and sizes the fixture README's tables give;
 * - a file without the fixture's chunk/temperature keys (as on the Hub)
 *   runs with llama.cpp's constants 8192/8192/0.1: its 16 greedy ids are
 *   the reference's `stock_llama_cpp_constants` ones for every prompt;
 * - attention.sliding_window = 0 turns chunking and NoPE off;
 * - a missing interleave_moe_layer_step is refused naming the key;
 * - <|end_of_text|>, <|eom|> and <|eot|> end generation, nothing else.
 * Files are edited in memory: a key is hidden by changing the last letter
 * of its name, a u32 value by overwriting it.
 */
#include <check.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "forward.h"
#include "gguf.h"
#include "model.h"
#include "hf_builder.h"
#include "store_paged.h"
#include "synth.h"
#include "testutil.h"
#include "tokenizer.h"
#include "types.h"
#include "verify.h"

static const char *data;
static uint8_t *f32_file;
static size_t f32_len;

static const char *const prompts[] = {"once_upon", "paid_350", "gruesse", "long_chunks", "chat"};

static const char *fixture(const char *rel)
{
    return tu_path("%s/models/tinyllama4/%s", data, rel);
}

/* A copy of the F32 file. */
static uint8_t *copy_f32(void)
{
    uint8_t *b = malloc(f32_len);
    ck_assert(b);
    memcpy(b, f32_file, f32_len);
    return b;
}

/* Offset just past the key string `key` in the metadata (its value type
 * follows, then the value). */
static size_t key_end(const uint8_t *b, const char *key)
{
    const size_t kl = strlen(key);
    for (size_t i = 8; i + kl + 4 < f32_len && i < 1u << 20; i++)
        if (memcmp(b + i, key, kl) == 0 && b[i - 8] == (uint8_t)kl && b[i + kl] < 13)
            return i + kl;
    ck_abort_msg("key %s not found in the fixture", key);
    return 0;
}

static void hide_key(uint8_t *b, const char *key)
{
    b[key_end(b, key) - 1] ^= 0x20; /* "...window" -> "...windoW" */
}

static void set_u32(uint8_t *b, const char *key, uint32_t v)
{
    const size_t at = key_end(b, key);
    ck_assert_int_eq(b[at], 4); /* GGUF_TYPE_UINT32 */
    for (int i = 0; i < 4; i++)
        b[at + 4 + i] = (uint8_t)(v >> (8 * i));
}

static mr_status load_mem(const uint8_t *b, mr_model **m, mr_error *err)
{
    mr_gguf *g;
    mr_status s = mr_gguf_open_mem(b, f32_len, "tinyllama4-edited.gguf", &g, err);
    return s ? s : mr_model_from_gguf(g, m, err);
}

START_TEST(schedule_matches_readme)
{
    mr_error err;
    mr_model *m;
    ck_assert_msg(load_mem(f32_file, &m, &err) == 0, "%s", err.msg);
    const mr_hparams *hp = &m->hp;
    /* README, Model: head_dim 32 (4 x 32 != 64), experts and shared expert
     * 32 wide, dense FFN 96, 16 experts top-1, chunk 8, temperature 4 / 0.25 */
    ck_assert_uint_eq(hp->head_dim, 32);
    ck_assert_uint_eq(hp->n_ff, 32);
    ck_assert_uint_eq(hp->n_ff_shexp, 32);
    ck_assert_uint_eq(hp->n_ff_dense, 96);
    ck_assert_uint_eq(hp->n_expert, 16);
    ck_assert_uint_eq(hp->n_expert_used, 1);
    ck_assert_uint_eq(hp->attn_temp_length, 4);
    ck_assert_float_eq(hp->attn_temp_scale, 0.25f);
    ck_assert_int_eq(hp->qk_norm_after_rope, 1);
    ck_assert_int_eq(hp->router.mode, MR_ROUTE_SIGMOID_INPUT);
    ck_assert_int_eq(hp->rope.mode, MR_ROPE_NORM);
    ck_assert_msg(m->rope_freqs, "rope_freqs.weight (Llama 3 factors) not bound");
    /* README: [1, 1, 2.4423, 8 x 13] */
    ck_assert_float_eq_tol(m->rope_freqs[1], 1.0f, 1e-6f);
    ck_assert_float_eq_tol(m->rope_freqs[2], 2.4423f, 1e-4f);
    ck_assert_float_eq_tol(m->rope_freqs[15], 8.0f, 1e-6f);
    /* layers 0, 1, 2, 4 rope + chunk 8; layer 3 NoPE, full attention; all MoE */
    static const int rope[5] = {1, 1, 1, 0, 1};
    for (uint32_t l = 0; l < 5; l++) {
        const mr_layer *L = &m->layers[l];
        ck_assert_int_eq(L->use_rope, rope[l]);
        ck_assert_uint_eq(L->chunk, rope[l] ? 8 : 0);
        ck_assert_int_eq(L->moe, 1);
        ck_assert_msg(L->sh_gate.data && L->sh_up.data && L->sh_down.data,
                      "layer %u: shared expert not bound", l);
        ck_assert_uint_eq(L->sh_gate.ne[1], 32);
    }
    ck_assert_str_eq(mr_model_family(m), "Llama 4");
    mr_model_free(m);
}
END_TEST

/* prompts.NAME... of a greedy.json: stock_llama_cpp_constants.ids */
static int32_t *stock_ids(const char *name, size_t *n)
{
    json_object *root = json_object_from_file(fixture(tu_path("ref/%s.greedy.json", name)));
    json_object *o = root, *arr = NULL;
    int32_t *ids = NULL;
    if (o && json_object_object_get_ex(o, "stock_llama_cpp_constants", &o) &&
        json_object_object_get_ex(o, "ids", &arr) && json_object_is_type(arr, json_type_array)) {
        *n = json_object_array_length(arr);
        ids = malloc(sizeof(int32_t) * (*n ? *n : 1));
        for (size_t i = 0; ids && i < *n; i++)
            ids[i] = json_object_get_int(json_object_array_get_idx(arr, i));
    }
    json_object_put(root);
    return ids;
}

START_TEST(hub_file_uses_llama_cpp_constants)
{
    uint8_t *b = copy_f32();
    hide_key(b, "llama4.attention.sliding_window");
    hide_key(b, "llama4.attention.temperature_length");
    hide_key(b, "llama4.attention.temperature_scale");
    mr_error err;
    mr_model *m;
    ck_assert_msg(load_mem(b, &m, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(m->hp.chunk, 8192);
    ck_assert_uint_eq(m->hp.attn_temp_length, 8192);
    ck_assert_float_eq(m->hp.attn_temp_scale, 0.1f);
    ck_assert_uint_eq(m->layers[0].chunk, 8192);
    ck_assert_int_eq(m->layers[3].use_rope, 0);
    const uint32_t nv = m->hp.n_vocab;
    float *lg = malloc(sizeof(float) * 128 * nv);
    ck_assert(lg);
    for (size_t p = 0; p < sizeof prompts / sizeof prompts[0]; p++) {
        size_t n, ng;
        int32_t *ids = tu_read_json_ints(fixture(tu_path("ref/%s.greedy.json", prompts[p])),
                                         "prompt_ids", &n);
        int32_t *want = stock_ids(prompts[p], &ng);
        ck_assert_msg(ids && want && n <= 112 && ng == 16, "%s: reference missing", prompts[p]);
        mr_expert_store *st;
        mr_context *c;
        ck_assert(mr_store_resident_new(m, &st, &err) == 0);
        ck_assert_msg(mr_context_new(m, st, 128, 128, &c, &err) == 0, "%s", err.msg);
        mr_context_set_exact(c, 1);
        ck_assert_msg(mr_decode(c, ids, (uint32_t)n, lg, 0, &err) == 0, "%s", err.msg);
        size_t same = 0;
        for (size_t i = 0; i < ng; i++) {
            const int32_t tok = (int32_t)tu_argmax(lg, nv, NULL);
            if (tok != want[i])
                break;
            same++;
            ck_assert_msg(mr_decode(c, &tok, 1, lg, 0, &err) == 0, "%s", err.msg);
        }
        printf("no fixture keys  %-12s greedy %zu/%zu = reference with llama.cpp's constants\n",
               prompts[p], same, ng);
        ck_assert_msg(same == ng, "%s: greedy token %zu differs from the stock-constants "
                      "reference", prompts[p], same);
        mr_context_free(c);
        mr_expert_store_free(st);
        free(ids);
        free(want);
    }
    free(lg);
    mr_model_free(m);
    free(b);
}
END_TEST

START_TEST(sliding_window_zero_is_full_attention)
{
    uint8_t *b = copy_f32();
    set_u32(b, "llama4.attention.sliding_window", 0);
    mr_error err;
    mr_model *m;
    ck_assert_msg(load_mem(b, &m, &err) == 0, "%s", err.msg);
    for (uint32_t l = 0; l < m->hp.n_layer; l++) {
        ck_assert_uint_eq(m->layers[l].chunk, 0);
        ck_assert_int_eq(m->layers[l].use_rope, 1);
    }
    mr_model_free(m);
    free(b);
}
END_TEST

START_TEST(missing_moe_step_is_refused)
{
    uint8_t *b = copy_f32();
    hide_key(b, "llama4.interleave_moe_layer_step");
    mr_error err;
    mr_model *m;
    ck_assert_int_ne(load_mem(b, &m, &err), 0);
    ck_assert_ptr_null(m);
    ck_assert_msg(strstr(err.msg, "interleave_moe_layer_step"), "message: %s", err.msg);
    /* a step that does not divide into layers the file has is refused too */
    memcpy(b, f32_file, f32_len);
    set_u32(b, "llama4.interleave_moe_layer_step", 0);
    ck_assert_int_ne(load_mem(b, &m, &err), 0);
    ck_assert_msg(strstr(err.msg, "interleave_moe_layer_step"), "message: %s", err.msg);
    /* step 2 asks for dense FFNs on layers 0, 2, 4, which the file lacks */
    memcpy(b, f32_file, f32_len);
    set_u32(b, "llama4.interleave_moe_layer_step", 2);
    ck_assert_int_ne(load_mem(b, &m, &err), 0);
    ck_assert_msg(strstr(err.msg, "blk.0.ffn_gate.weight"), "message: %s", err.msg);
    free(b);
}
END_TEST

/* README: HF's eos_token_id is [<|end_of_text|>, <|eom|>, <|eot|>] (5001,
 * 5007, 5008); llama.cpp stops on two of them, moerun on all three. */
START_TEST(generation_ends_on_llama4_eos_tokens)
{
    mr_error err;
    mr_model *m;
    mr_tokenizer *tok;
    ck_assert_msg(load_mem(f32_file, &m, &err) == 0, "%s", err.msg);
    ck_assert_msg(mr_tokenizer_load(m->gguf, &tok, &err) == 0, "%s", err.msg);
    uint32_t n_eog = 0;
    for (uint32_t i = 0; i < m->hp.n_vocab; i++)
        n_eog += mr_tokenizer_is_eog(tok, (int32_t)i) != 0;
    ck_assert(mr_tokenizer_is_eog(tok, 5001));
    ck_assert(mr_tokenizer_is_eog(tok, 5007));
    ck_assert(mr_tokenizer_is_eog(tok, 5008));
    ck_assert_uint_eq(n_eog, 3);
    mr_tokenizer_free(tok);
    mr_model_free(m);
}
END_TEST

/* Logits of a prompt and 8 greedy tokens decoded one at a time. */
static float *run_synth(const char *path, int paged, uint32_t *nv)
{
    static const int32_t prompt[] = {1, 300, 301, 302, 303, 304, 305, 306, 307, 308, 309};
    const uint32_t n = sizeof prompt / sizeof prompt[0], gen = 8, n_ctx = 32;
    mr_error err;
    mr_model *m;
    mr_expert_store *st;
    mr_context *c;
    ck_assert_msg(mr_model_load(path, &m, &err) == 0, "%s", err.msg);
    if (paged) {
        mr_paged_config cfg;
        mr_paged_config_default(&cfg);
        cfg.reserve_bytes = mr_context_bytes(m, n_ctx, n_ctx);
        cfg.budget_bytes = mr_store_paged_min_budget(m, &cfg);
        ck_assert_msg(mr_store_paged_new(m, path, &cfg, &st, &err) == 0, "%s", err.msg);
    } else {
        ck_assert(mr_store_resident_new(m, &st, &err) == 0);
    }
    ck_assert_msg(mr_context_new(m, st, n_ctx, n_ctx, &c, &err) == 0, "%s", err.msg);
    *nv = m->hp.n_vocab;
    float *lg = malloc(sizeof(float) * (n + gen) * *nv);
    ck_assert(lg);
    ck_assert_msg(mr_decode(c, prompt, n, lg, 1, &err) == 0, "%s", err.msg);
    for (uint32_t i = 0; i < gen; i++) {
        const int32_t tok = (int32_t)tu_argmax(lg + (size_t)(n - 1 + i) * *nv, *nv, NULL);
        ck_assert_msg(mr_decode(c, &tok, 1, lg + (size_t)(n + i) * *nv, 0, &err) == 0, "%s",
                      err.msg);
    }
    mr_context_free(c);
    mr_expert_store_free(st);
    mr_model_free(m);
    return lg;
}

/* moerun synth --shape llama4-micro: Maverick's interleave (dense FFNs on
 * layers 0 and 2), head 32, Llama 3 rope factors; the paged store at its
 * minimum budget gives the resident run's logits bit for bit, and the
 * file's checksums verify. */
START_TEST(synth_interleaved_paged_equals_resident)
{
    const mr_synth_shape *sh = mr_synth_shape_find("llama4-micro");
    ck_assert_ptr_nonnull(sh);
    ck_assert_ptr_nonnull(mr_synth_shape_find("llama4-scout"));
    ck_assert_ptr_nonnull(mr_synth_shape_find("llama4-maverick"));
    char *dir = hfb_tmpdir();
    char *path = strdup(tu_path("%s/micro.gguf", dir));
    mr_synth_params p = {*sh, MR_TYPE_Q8_0, 0, 7};
    mr_error err;
    ck_assert_msg(mr_synth_write(&p, path, NULL, NULL, &err) == 0, "%s", err.msg);
    mr_model *m;
    ck_assert_msg(mr_model_load(path, &m, &err) == 0, "%s", err.msg);
    static const int moe[4] = {0, 1, 0, 1}, rope[4] = {1, 1, 1, 0};
    for (uint32_t l = 0; l < 4; l++) {
        ck_assert_int_eq(m->layers[l].moe, moe[l]);
        ck_assert_int_eq(m->layers[l].use_rope, rope[l]);
        ck_assert_uint_eq(m->layers[l].sh_gate.ne[1], moe[l] ? 32 : 96);
        ck_assert_uint_eq(m->layers[l].chunk, rope[l] ? 8192 : 0);
    }
    /* llama3 bands of a 32-wide head, theta 5e5, factor 8 over 64 (as the fixture) */
    ck_assert_ptr_nonnull(m->rope_freqs);
    ck_assert_float_eq_tol(m->rope_freqs[0], 1.0f, 1e-6f);
    ck_assert_float_eq_tol(m->rope_freqs[2], 2.4423f, 1e-4f);
    ck_assert_float_eq_tol(m->rope_freqs[15], 8.0f, 1e-6f);
    mr_model_free(m);
    uint32_t nv;
    float *a = run_synth(path, 0, &nv), *b = run_synth(path, 1, &nv);
    ck_assert_msg(memcmp(a, b, sizeof(float) * 19 * nv) == 0, "paged logits differ from resident");
    mr_verify_report r;
    ck_assert_msg(mr_verify(path, NULL, &r, NULL, NULL, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(r.slices, 2 * 8 * 3);
    free(a);
    free(b);
    /* llama.cpp's rule (README item 2): 128 experts (Maverick) lose the q/k norm */
    mr_model *m2;
    p.shape.n_expert = 128;
    ck_assert_msg(mr_synth_write(&p, path, NULL, NULL, &err) == 0, "%s", err.msg);
    ck_assert_msg(mr_model_load(path, &m2, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(m2->hp.qk_norm_after_rope, 0);
    mr_model_free(m2);
    p.shape.n_expert = 8;
    ck_assert_msg(mr_synth_write(&p, path, NULL, NULL, &err) == 0, "%s", err.msg);
    ck_assert_msg(mr_model_load(path, &m2, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(m2->hp.qk_norm_after_rope, 1);
    mr_model_free(m2);
    unlink(path);
    free(path);
    hfb_rmdir(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("llama4");
    TCase *ts = tcase_create("synth");
    tcase_add_test(ts, synth_interleaved_paged_equals_resident);
    suite_add_tcase(s, ts);
    data = tu_testdata();
    f32_file = data ? tu_read_file(fixture("gguf/tinyllama4-f32.gguf"), &f32_len) : NULL;
    if (!f32_file) {
        fprintf(stderr, "tinyllama4 fixture not found (MOERUN_TESTDATA): synth test only\n");
        return tu_run_suite(s);
    }
    TCase *tc = tcase_create("llama4");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, schedule_matches_readme);
    tcase_add_test(tc, hub_file_uses_llama_cpp_constants);
    tcase_add_test(tc, sliding_window_zero_is_full_attention);
    tcase_add_test(tc, missing_moe_step_is_refused);
    tcase_add_test(tc, generation_ends_on_llama4_eos_tokens);
    suite_add_tcase(s, tc);
    int rc = tu_run_suite(s);
    free(f32_file);
    return rc;
}
