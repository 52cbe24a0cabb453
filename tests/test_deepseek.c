/* test_deepseek.c - what tests/test_families.c does not show about the
 * deepseek2 family, on the tinydeepseek3 fixture (skipped, exit 77, when
 * MOERUN_TESTDATA is absent):
 * - the absorbed MLA (kv_b folded into query and output, latent cache)
 *   and the expanded form (per-head keys and values, the checkpoint's own
 *   form) give the same logits, on both GGUF files and past the YaRN
 *   original context (lighthouse: 195 tokens > 128), prompt and decode;
 * - the KV cache holds kv_lora_rank + rope floats per token and layer, not
 *   the expanded n_head x (k + v), and no V cache; as F16 it halves and the
 *   logits stay within the README's llama.cpp F16-cache figures;
 * - the Q8_0 file on the default 8-bit path, paged at its minimum budget,
 *   is bit-identical to resident (its dense layer 0 and shared experts are
 *   resident, only routed experts are paged);
 * - files without the MLA keys are refused naming the key;
 * - the converter refuses what it would mistranslate in DeepSeek's
 *   config.json (FP8 without quantization_config, scales of another block
 *   size, other quantization methods, scoring functions, V2's group rule);
 * - the FP8 checkpoint converted by moerun verifies (routed slices only:
 *   layer 0 is dense) and its paged run reads every slice against those
 *   checksums, bit-identical to resident;
 * - `moerun synth --shape micro-deepseek` (no test data needed) loads as
 *   deepseek2 with a dense first layer, and its paged run, every slice
 *   checked against the file's checksums, is bit-identical to resident.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "convert.h"
#include "forward.h"
#include "store_paged.h"
#include "synth.h"
#include "types.h"
#include "verify.h"
#include "testutil.h"

static const char *data;

static const char *fixture(const char *file)
{
    return tu_path("%s/models/tinydeepseek3/%s", data, file);
}

/* Logits of ids (n prompt rows) then `gen` tokens fed one at a time from
 * the given list (so both forms see the same inputs). */
static float *run(mr_model *m, mr_expert_store *st, int exact, int naive, const int32_t *ids,
                  size_t n, const int32_t *next, size_t gen)
{
    mr_error err;
    mr_context *c;
    const uint32_t nv = m->hp.n_vocab;
    ck_assert_msg(mr_context_new(m, st, (uint32_t)(n + gen), (uint32_t)n, &c, &err) == 0, "%s",
                  err.msg);
    mr_context_set_exact(c, exact);
    mr_context_set_mla_naive(c, naive);
    float *lg = malloc(sizeof(float) * (n + gen) * nv);
    ck_assert(lg);
    ck_assert_msg(mr_decode(c, ids, (uint32_t)n, lg, 1, &err) == 0, "%s", err.msg);
    for (size_t i = 0; i < gen; i++)
        ck_assert_msg(mr_decode(c, &next[i], 1, lg + (n + i) * nv, 0, &err) == 0, "%s", err.msg);
    mr_context_free(c);
    return lg;
}

START_TEST(absorbed_equals_expanded)
{
    static const char *const files[] = {"gguf/tinydeepseek3-bf16.gguf",
                                        "gguf/tinydeepseek3-q8_0.gguf"};
    mr_error err;
    size_t n, ng;
    int32_t *ids = tu_read_json_ints(fixture("ref/lighthouse.greedy.json"), "prompt_ids", &n);
    int32_t *next = tu_read_json_ints(fixture("ref/lighthouse.greedy.json"), "ids", &ng);
    ck_assert(ids && next && n > 128);
    /* f32 activations: on the 8-bit path the two forms quantize different
     * vectors (Wkb q_nope against q_nope), which flips near-tied routes */
    mr_model *m;
    mr_expert_store *st;
    ck_assert_msg(mr_model_load(fixture(files[_i]), &m, &err) == 0, "%s", err.msg);
    ck_assert(mr_store_resident_new(m, &st, &err) == 0);
    float *a = run(m, st, 1, 0, ids, n, next, 4);
    float *b = run(m, st, 1, 1, ids, n, next, 4);
    const double d = tu_max_abs_diff(a, b, (n + 4) * m->hp.n_vocab);
    printf("%s exact: absorbed vs expanded MLA, %zu+4 positions: max |diff| %.3g\n", files[_i],
           n, d);
    /* float32 sums in another order (float64: 4.8e-14, agreement.json) */
    ck_assert_msg(d <= 1e-4, "max |diff| %g", d);
    free(a);
    free(b);
    mr_expert_store_free(st);
    mr_model_free(m);
    free(ids);
    free(next);
}
END_TEST

START_TEST(latent_cache_size)
{
    mr_error err;
    mr_model *m;
    ck_assert_msg(mr_model_load(fixture("gguf/tinydeepseek3-bf16.gguf"), &m, &err) == 0, "%s",
                  err.msg);
    const mr_hparams *hp = &m->hp;
    /* README: kv_lora_rank 32, rope 16, 4 heads of q.k 80 and value 24 */
    ck_assert_uint_eq(hp->n_lora_kv, 32);
    ck_assert_uint_eq(hp->rope.n_rot, 16);
    ck_assert_uint_eq(hp->head_dim_mla_k, 80);
    ck_assert_uint_eq(hp->head_dim_mla_v, 24);
    const uint64_t per_pos = (mr_context_bytes(m, 4096, 1) - mr_context_bytes(m, 2048, 1)) / 2048;
    const uint64_t latent = (uint64_t)hp->n_layer * (32 + 16) * 4;
    const uint64_t expanded = (uint64_t)hp->n_layer * hp->n_head * (80 + 24) * 4;
    printf("KV cache per position: %llu bytes (latent), expanded would be %llu (%.1fx)\n",
           (unsigned long long)per_pos, (unsigned long long)expanded,
           (double)expanded / (double)per_pos);
    ck_assert_uint_eq(per_pos, latent);
    mr_model_free(m);
}
END_TEST

START_TEST(latent_cache_f16)
{
    mr_error err;
    mr_model *m;
    mr_expert_store *st;
    mr_context *c;
    size_t n, nr, ng;
    int32_t *ids = tu_read_json_ints(fixture("ref/lighthouse.greedy.json"), "prompt_ids", &n);
    int32_t *want = tu_read_json_ints(fixture("ref/lighthouse.greedy.json"), "ids", &ng);
    float *ref = tu_read_f32(fixture("ref/lighthouse.logits.f32"), &nr);
    ck_assert(ids && want && ref);
    ck_assert_msg(mr_model_load(fixture("gguf/tinydeepseek3-bf16.gguf"), &m, &err) == 0, "%s",
                  err.msg);
    ck_assert(mr_store_resident_new(m, &st, &err) == 0);
    const uint32_t nv = m->hp.n_vocab;
    ck_assert_uint_eq(mr_context_bytes_kv(m, 4096, 1, MR_TYPE_F16, MR_TYPE_F16) -
                          mr_context_bytes_kv(m, 2048, 1, MR_TYPE_F16, MR_TYPE_F16),
                      2048ull * m->hp.n_layer * (32 + 16) * 2);
    ck_assert_msg(mr_context_new_kv(m, st, (uint32_t)(n + ng), (uint32_t)n, MR_TYPE_F16,
                                    MR_TYPE_F16, &c, &err) == 0,
                  "%s", err.msg);
    mr_context_set_exact(c, 1);
    float *lg = malloc(sizeof(float) * n * nv), *last = malloc(sizeof(float) * nv);
    ck_assert(lg && last);
    ck_assert_msg(mr_decode(c, ids, (uint32_t)n, lg, 1, &err) == 0, "%s", err.msg);
    const double d = tu_max_abs_diff(lg, ref, n * nv);
    memcpy(last, lg + (n - 1) * nv, sizeof(float) * nv);
    size_t same = 0;
    for (size_t i = 0; i < ng; i++) {
        int32_t t = (int32_t)tu_argmax(last, nv, NULL);
        same += t == want[i] && same == i;
        ck_assert(mr_decode(c, &t, 1, last, 0, &err) == 0);
    }
    printf("F16 latent cache, lighthouse: max |diff| %.3g, greedy %zu/%zu identical\n", d, same,
           ng);
    /* README: llama.cpp's F16 cache is 1.1e-2 .. 1.5e-2 away, greedy identical */
    ck_assert_msg(d <= 0.05 && same == ng, "max |diff| %g, greedy %zu/%zu", d, same, ng);
    free(lg);
    free(last);
    free(ids);
    free(want);
    free(ref);
    mr_context_free(c);
    mr_expert_store_free(st);
    mr_model_free(m);
}
END_TEST

START_TEST(q8_0_paged_bit_identical)
{
    mr_error err;
    size_t n;
    int32_t *ids = tu_read_json_ints(fixture("ref/chat.greedy.json"), "prompt_ids", &n);
    ck_assert(ids);
    const char *path = strdup(fixture("gguf/tinydeepseek3-q8_0.gguf"));
    mr_model *m, *mp;
    mr_expert_store *st, *sp;
    ck_assert_msg(mr_model_load(path, &m, &err) == 0, "%s", err.msg);
    ck_assert(mr_store_resident_new(m, &st, &err) == 0);
    ck_assert_msg(mr_model_load(path, &mp, &err) == 0, "%s", err.msg);
    mr_paged_config cfg;
    mr_paged_config_default(&cfg);
    cfg.reserve_bytes = mr_context_bytes(mp, (uint32_t)n + 8, (uint32_t)n);
    cfg.budget_bytes = mr_store_paged_min_budget(mp, &cfg);
    ck_assert_msg(mr_store_paged_new(mp, path, &cfg, &sp, &err) == 0, "%s", err.msg);
    mr_paged_stats ps_st;
    ck_assert(mr_store_paged_stats(sp, &ps_st));
    const mr_paged_stats *ps = &ps_st;
    /* one slot per expert of one layer: layer 0 is dense and has none */
    ck_assert_uint_eq(ps->n_slots, mp->hp.n_expert);
    ck_assert(!mp->layers[0].moe && mp->layers[1].moe && mp->layers[1].sh_gate.data);
    int32_t next[8];
    for (int i = 0; i < 8; i++)
        next[i] = ids[(i * 5) % n];
    float *a = run(m, st, 0, 0, ids, n, next, 8);
    float *b = run(mp, sp, 0, 0, ids, n, next, 8);
    ck_assert_msg(memcmp(a, b, sizeof(float) * (n + 8) * m->hp.n_vocab) == 0,
                  "paged logits differ from resident");
    ck_assert(mr_store_paged_stats(sp, &ps_st)); /* after the runs */
    ck_assert(ps->misses > 0 && ps->evictions > 0);
    free(a);
    free(b);
    mr_expert_store_free(sp);
    mr_model_free(mp);
    mr_expert_store_free(st);
    mr_model_free(m);
    free((void *)path);
    free(ids);
}
END_TEST

/* A copy of the BF16 fixture with one key renamed (same length). */
static char *with_key_renamed(const char *key, const char *to)
{
    size_t len;
    uint8_t *b = tu_read_file(fixture("gguf/tinydeepseek3-bf16.gguf"), &len);
    ck_assert(b && strlen(key) == strlen(to));
    size_t kl = strlen(key), hits = 0;
    for (size_t i = 0; i + kl <= len; i++)
        if (memcmp(b + i, key, kl) == 0 && b[i - 8] == kl) { /* preceded by its u64 length */
            memcpy(b + i, to, kl);
            hits++;
        }
    ck_assert_uint_eq(hits, 1);
    char *path = strdup("/tmp/moerun-ds-XXXXXX");
    int fd = mkstemp(path);
    ck_assert(fd >= 0 && write(fd, b, len) == (ssize_t)len);
    close(fd);
    free(b);
    return path;
}

START_TEST(refuses_missing_mla_keys)
{
    static const char *const keys[][2] = {
        {"deepseek2.attention.key_length_mla", "deepseek2.attention.key_length_mlX"},
        {"deepseek2.attention.kv_lora_rank", "deepseek2.attention.kv_lora_ranX"},
        {"deepseek2.expert_feed_forward_length", "deepseek2.expert_feed_forward_lengtX"},
    };
    char *path = with_key_renamed(keys[_i][0], keys[_i][1]);
    mr_model *m = NULL;
    mr_error err;
    mr_status s = mr_model_load(path, &m, &err);
    unlink(path);
    free(path);
    ck_assert_msg(s == MR_EFORMAT && !m, "status %d", s);
    ck_assert_msg(strstr(err.msg, keys[_i][0]), "message does not name %s: %s", keys[_i][0],
                  err.msg);
}
END_TEST

/* A copy of the FP8 checkpoint whose config.json has `from` replaced by
 * `to` (the other files linked); returns the directory. */
static char *hf_with_config(const char *from, const char *to)
{
    static const char *const files[] = {"model-00001-of-00002.safetensors",
                                        "model-00002-of-00002.safetensors",
                                        "model.safetensors.index.json", "tokenizer.json",
                                        "tokenizer_config.json", "generation_config.json"};
    char *dir = strdup("/tmp/moerun-ds-hf-XXXXXX");
    ck_assert(mkdtemp(dir));
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char *src = strdup(fixture(tu_path("hf/%s", files[i])));
        ck_assert(symlink(src, tu_path("%s/%s", dir, files[i])) == 0);
        free(src);
    }
    size_t len;
    char *cfg = tu_read_file(fixture("hf/config.json"), &len), *at;
    ck_assert(cfg && (at = strstr(cfg, from)));
    FILE *f = fopen(tu_path("%s/config.json", dir), "w");
    ck_assert(f);
    fprintf(f, "%.*s%s%s", (int)(at - cfg), cfg, to, at + strlen(from));
    fclose(f);
    free(cfg);
    return dir;
}

static void rm_hf(char *dir)
{
    static const char *const files[] = {
        "config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
        "model.safetensors.index.json", "tokenizer.json", "tokenizer_config.json",
        "generation_config.json", "out.gguf"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        unlink(tu_path("%s/%s", dir, files[i]));
    rmdir(dir);
    free(dir);
}

START_TEST(converter_refuses)
{
    static const struct {
        const char *from, *to, *want;
        mr_status code;
    } cases[] = {
        {"\"weight_block_size\": [\n      128,\n      128", "\"weight_block_size\": [64, 64",
         "(blocks of 64x64), not F32", MR_EFORMAT},
        {"\"quantization_config\"", "\"quantization_configX\"",
         "dtype F8_E4M3 is not supported", MR_EUNSUPPORTED},
        {"\"quant_method\": \"fp8\"", "\"quant_method\": \"gptq\"",
         "only block-scaled fp8 checkpoints", MR_EUNSUPPORTED},
        {"\"scoring_func\": \"sigmoid\"", "\"scoring_func\": \"softplus\"",
         "scoring_func: 'softplus' is not supported", MR_EUNSUPPORTED},
        {"\"topk_method\": \"noaux_tc\"", "\"topk_method\": \"group_limited_greedy\"",
         "topk_method: group_limited_greedy", MR_EUNSUPPORTED},
    };
    char *dir = hf_with_config(cases[_i].from, cases[_i].to);
    mr_convert_opts o = {0};
    mr_error err;
    o.input_dir = dir;
    o.output_path = strdup(tu_path("%s/out.gguf", dir));
    o.type = "bf16";
    o.threads = 1;
    mr_status s = mr_convert(&o, NULL, &err);
    ck_assert_msg(s == cases[_i].code && strstr(err.msg, cases[_i].want),
                  "case %d: status %d, message: %s", _i, s, s ? err.msg : "");
    ck_assert(access(o.output_path, F_OK) != 0);
    free((void *)o.output_path);
    rm_hf(dir);
}
END_TEST

START_TEST(converted_fp8_verifies_and_pages)
{
    char *dir = hf_with_config("\"vocab_size\"", "\"vocab_size\""); /* a writable copy */
    mr_convert_opts o = {0};
    mr_error err;
    o.input_dir = dir;
    o.output_path = strdup(tu_path("%s/out.gguf", dir));
    o.type = "q8_0";
    o.threads = 2;
    ck_assert_msg(mr_convert(&o, NULL, &err) == 0, "%s", err.msg);
    mr_verify_report rep;
    ck_assert_msg(mr_verify(o.output_path, dir, &rep, NULL, NULL, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(rep.slices, 2 * 16 * 3); /* MoE layers 1, 2 */
    mr_model *m, *mp;
    mr_expert_store *st, *sp;
    ck_assert_msg(mr_model_load(o.output_path, &m, &err) == 0, "%s", err.msg);
    ck_assert_msg(mr_model_load(o.output_path, &mp, &err) == 0, "%s", err.msg);
    ck_assert(mr_store_resident_new(m, &st, &err) == 0);
    mr_paged_config cfg;
    mr_paged_config_default(&cfg);
    cfg.reserve_bytes = mr_context_bytes(mp, 32, 24);
    cfg.budget_bytes = mr_store_paged_min_budget(mp, &cfg);
    ck_assert_msg(mr_store_paged_new(mp, o.output_path, &cfg, &sp, &err) == 0, "%s", err.msg);
    int32_t ids[24], next[8];
    for (int i = 0; i < 24; i++)
        ids[i] = (int32_t)((i * 211 + 3) % 5982);
    for (int i = 0; i < 8; i++)
        next[i] = (int32_t)((i * 97 + 1) % 5982);
    float *a = run(m, st, 0, 0, ids, 24, next, 8), *b = run(mp, sp, 0, 0, ids, 24, next, 8);
    ck_assert(memcmp(a, b, sizeof(float) * 32 * m->hp.n_vocab) == 0);
    mr_paged_stats sp_st;
    ck_assert(mr_store_paged_stats(sp, &sp_st) && sp_st.checksums);
    free(a);
    free(b);
    mr_expert_store_free(sp);
    mr_expert_store_free(st);
    mr_model_free(mp);
    mr_model_free(m);
    free((void *)o.output_path);
    rm_hf(dir);
}
END_TEST

START_TEST(synth_micro_deepseek)
{
    static const char *const shapes[] = {"micro-deepseek", "micro-deepseek-lite"};
    const mr_synth_shape *sh = mr_synth_shape_find(shapes[_i]);
    ck_assert(sh && mr_synth_shape_find("deepseek-v3") && mr_synth_shape_find("kimi-k2"));
    mr_synth_params sp = {*sh, MR_TYPE_Q8_0, 0, 7};
    char path[] = "/tmp/moerun-ds-synth-XXXXXX";
    int fd = mkstemp(path);
    ck_assert(fd >= 0);
    close(fd);
    mr_error err;
    ck_assert_msg(mr_synth_write(&sp, path, NULL, NULL, &err) == 0, "%s", err.msg);
    mr_model *m, *mp;
    mr_expert_store *st, *sp_store;
    ck_assert_msg(mr_model_load(path, &m, &err) == 0, "%s", err.msg);
    ck_assert(m->hp.n_layer_dense == 1 && !m->layers[0].moe && m->layers[2].moe);
    ck_assert(_i ? m->hp.n_lora_q == 0 && m->layers[1].wq.data : m->hp.n_lora_q == 32);
    ck_assert_uint_eq(m->hp.router.n_group, 4);
    ck_assert(mr_store_resident_new(m, &st, &err) == 0);
    ck_assert_msg(mr_model_load(path, &mp, &err) == 0, "%s", err.msg);
    mr_paged_config cfg;
    mr_paged_config_default(&cfg);
    cfg.reserve_bytes = mr_context_bytes(mp, 40, 32);
    cfg.budget_bytes = mr_store_paged_min_budget(mp, &cfg);
    ck_assert_msg(mr_store_paged_new(mp, path, &cfg, &sp_store, &err) == 0, "%s", err.msg);
    int32_t ids[32], next[8];
    for (int i = 0; i < 32; i++)
        ids[i] = (int32_t)((i * 37 + 11) % 512);
    for (int i = 0; i < 8; i++)
        next[i] = (int32_t)((i * 101 + 5) % 512);
    float *a = run(m, st, 0, 0, ids, 32, next, 8);
    float *b = run(mp, sp_store, 0, 0, ids, 32, next, 8);
    ck_assert_msg(memcmp(a, b, sizeof(float) * 40 * m->hp.n_vocab) == 0,
                  "paged logits differ from resident");
    /* the low-rank and the direct q both agree with the expanded MLA */
    float *x = run(m, st, 1, 0, ids, 32, next, 8), *y = run(m, st, 1, 1, ids, 32, next, 8);
    const double d = tu_max_abs_diff(x, y, 40 * (size_t)m->hp.n_vocab);
    printf("%s: absorbed vs expanded MLA max |diff| %.3g\n", shapes[_i], d);
    ck_assert_msg(d <= 1e-4, "%s: max |diff| %g", shapes[_i], d);
    free(x);
    free(y);
    mr_paged_stats ps_st;
    ck_assert(mr_store_paged_stats(sp_store, &ps_st));
    const mr_paged_stats *ps = &ps_st;
    ck_assert(ps->checksums && ps->misses > 0 && ps->evictions > 0);
    free(a);
    free(b);
    mr_expert_store_free(sp_store);
    mr_model_free(mp);
    mr_expert_store_free(st);
    mr_model_free(m);
    unlink(path);
}
END_TEST

int main(void)
{
    data = tu_testdata();
    Suite *s = suite_create("deepseek");
    TCase *tc = tcase_create("mla");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, synth_micro_deepseek, 0, 2);
    if (data) {
        tcase_add_loop_test(tc, absorbed_equals_expanded, 0, 2);
        tcase_add_test(tc, latent_cache_size);
        tcase_add_test(tc, latent_cache_f16);
        tcase_add_test(tc, q8_0_paged_bit_identical);
        tcase_add_loop_test(tc, refuses_missing_mla_keys, 0, 3);
        tcase_add_loop_test(tc, converter_refuses, 0, 5);
        tcase_add_test(tc, converted_fp8_verifies_and_pages);
    } else {
        fprintf(stderr, "shared test data not found: the tinydeepseek3 fixture tests are skipped\n");
    }
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
