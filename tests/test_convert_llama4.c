/* test_convert_llama4.c - what tests/test_convert.c's family rows (every
 * tensor and key of tinyllama4's hf/ converted against llama.cpp's files)
 * do not check of src/arch/llama4_hf.c; skipped, exit 77, when
 * MOERUN_TESTDATA is absent:
 * - jobs of 1000 source bytes (bands of a few columns of the fused experts,
 *   uneven tails) still give the 69 tensors byte-identical to llama.cpp's,
 *   for f32, bf16 and q8_0, with every llama4.* and general.* key;
 * - for f32 and bf16 (made by llama.cpp's converter) its tensor order;
 * - `moerun verify` with the checkpoint: every checksum moerun adds;
 * - configs llama.cpp would mistranslate are refused, naming the key.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "convert.h"
#include "gguf.h"
#include "hf_builder.h"
#include "testutil.h"
#include "verify.h"

static const char *data;

static const char *fixture(const char *rel)
{
    return tu_path("%s/models/tinyllama4/%s", data, rel);
}

/* A checkpoint directory: the fixture's hf/ files, config.json replaced by
 * `config` when given. */
static char *input_dir(const char *config)
{
    static const char *const files[] = {"generation_config.json", "model.safetensors.index.json",
                                        "model-00001-of-00002.safetensors",
                                        "model-00002-of-00002.safetensors",
                                        "special_tokens_map.json", "tokenizer.json",
                                        "tokenizer_config.json"};
    char *dir = hfb_tmpdir();
    ck_assert(dir);
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char src[4096];
        snprintf(src, sizeof src, "%s", fixture(tu_path("hf/%s", files[i])));
        ck_assert_int_eq(symlink(src, tu_path("%s/%s", dir, files[i])), 0);
    }
    size_t len;
    char *text = config ? NULL : tu_read_file(fixture("hf/config.json"), &len);
    ck_assert_int_eq(hfb_write_file(tu_path("%s/config.json", dir), config ? config : text,
                                    config ? strlen(config) : len),
                     0);
    free(text);
    return dir;
}

static mr_status convert(const char *in, const char *out, const char *type, mr_error *err)
{
    mr_convert_opts o = {0};
    o.job_bytes = 1000;
    o.input_dir = in;
    o.output_path = out;
    o.type = type;
    o.threads = 2;
    o.force = 1;
    return mr_convert(&o, NULL, err);
}

static int same_value(const mr_gguf_value *a, const mr_gguf_value *b)
{
    if (a->type != b->type)
        return 0;
    switch (a->type) {
    case MR_GGUF_STRING:
        return a->v.str.len == b->v.str.len && !memcmp(a->v.str.ptr, b->v.str.ptr, a->v.str.len);
    case MR_GGUF_ARRAY:
        return 0; /* no llama4.* or general.* key is an array */
    case MR_GGUF_FLOAT32: case MR_GGUF_FLOAT64: return a->v.f64 == b->v.f64;
    case MR_GGUF_BOOL: return a->v.b == b->v.b;
    default: return a->v.u64 == b->v.u64;
    }
}

static const char *const types[] = {"f32", "bf16", "q8_0"};

/* Jobs of 1000 source bytes: bands of 3 (f32) or 7 (bf16) columns of the
 * fused experts, uneven tails. */
START_TEST(small_jobs_convert_like_llama_cpp)
{
    const char *type = types[_i];
    char *in = input_dir(NULL), *out = hfb_tmpdir();
    char *path = strdup(tu_path("%s/tinyllama4-%s.gguf", out, type));
    mr_error err;
    ck_assert_msg(convert(in, path, type, &err) == MR_OK, "%s", err.msg);
    mr_gguf *a, *b;
    ck_assert_msg(mr_gguf_open(path, &a, &err) == MR_OK, "%s", err.msg);
    ck_assert_msg(mr_gguf_open(fixture(tu_path("gguf/tinyllama4-%s.gguf", type)), &b, &err) ==
                      MR_OK,
                  "%s", err.msg);
    ck_assert_uint_eq(a->n_tensors, b->n_tensors);
    uint64_t same = 0, in_order = 0;
    for (uint64_t i = 0; i < b->n_tensors; i++) {
        const mr_gguf_tensor *y = &b->tensors[i], *x = mr_gguf_tensor_find(a, y->name);
        ck_assert_msg(x != NULL, "%s missing", y->name);
        ck_assert_msg(x->type == y->type && x->nbytes == y->nbytes, "%s: type %u / %u or size",
                      y->name, x->type, y->type);
        if (!memcmp(x->data, y->data, x->nbytes))
            same++;
        else
            fprintf(stderr, "%s: %s differs from llama.cpp's\n", type, y->name);
        in_order += !strcmp(a->tensors[i].name, y->name);
    }
    printf("%-5s small jobs: %llu/%llu tensors byte-identical to llama.cpp's, %llu in its order\n",
           type, (unsigned long long)same, (unsigned long long)b->n_tensors,
           (unsigned long long)in_order);
    ck_assert_uint_eq(same, b->n_tensors);
    if (strcmp(type, "q8_0")) /* llama-quantize sorts by name; the converter does not */
        ck_assert_uint_eq(in_order, b->n_tensors);
    uint64_t keys = 0;
    for (uint64_t i = 0; i < b->n_kv; i++) {
        const char *k = b->kv[i].key;
        /* general.name: the fixture's build names it; ours comes from the directory */
        if (!strcmp(k, "general.name") || !strncmp(k, "tokenizer.", 10))
            continue; /* the tokenizer keys: tests/test_convert */
        const mr_gguf_kv *kv = mr_gguf_find(a, k);
        ck_assert_msg(kv != NULL, "%s: key %s missing", type, k);
        ck_assert_msg(same_value(&kv->val, &b->kv[i].val), "%s: key %s differs", type, k);
        keys++;
    }
    ck_assert_uint_ge(keys, 25);
    mr_gguf_close(a);
    mr_gguf_close(b);
    /* the checksums moerun adds: every tensor, expert slice and source file */
    mr_verify_report r;
    ck_assert_msg(mr_verify(path, in, &r, NULL, NULL, &err) == MR_OK, "%s", err.msg);
    ck_assert_uint_eq(r.slices, 5 * 16 * 3);
    ck_assert_uint_eq(r.tensors, 69);
    unlink(path);
    free(path);
    hfb_rmdir(in);
    hfb_rmdir(out);
}
END_TEST

/* The fixture's config with `from` replaced by `to` (once). */
static char *edited_config(const char *from, const char *to)
{
    size_t len;
    char *text = tu_read_file(fixture("hf/config.json"), &len);
    ck_assert(text);
    char *at = strstr(text, from);
    ck_assert_msg(at, "config.json has no %s", from);
    char *out = malloc(len + strlen(to) + 1);
    ck_assert(out);
    memcpy(out, text, (size_t)(at - text));
    strcpy(out + (at - text), to);
    strcat(out, at + strlen(from));
    free(text);
    return out;
}

static const struct {
    const char *from, *to, *key;
} refusals[] = {
    /* llama.cpp gives every layer rope but each 4th */
    {"\"no_rope_layers\": [\n      1,\n      1,\n      1,\n      0,",
     "\"no_rope_layers\": [\n      1,\n      1,\n      0,\n      1,", "no_rope_layers"},
    /* llama.cpp: the q/k norm iff not 128 experts */
    {"\"use_qk_norm\": true", "\"use_qk_norm\": false", "use_qk_norm"},
    /* moe_layers that the interleave step does not give */
    {"\"moe_layers\": [\n      0,", "\"moe_layers\": [\n", "moe_layers"},
    {"\"rope_type\": \"llama3\"", "\"rope_type\": \"yarn\"", "rope_scaling"},
};

START_TEST(refuses_what_llama_cpp_mistranslates)
{
    char *cfg = edited_config(refusals[_i].from, refusals[_i].to);
    char *in = input_dir(cfg), *out = hfb_tmpdir();
    mr_error err;
    ck_assert_int_ne(convert(in, tu_path("%s/x.gguf", out), "f32", &err), MR_OK);
    ck_assert_msg(strstr(err.msg, refusals[_i].key), "%s: %s", refusals[_i].key, err.msg);
    ck_assert_int_eq(hfb_dir_entries(out), 0);
    free(cfg);
    hfb_rmdir(in);
    hfb_rmdir(out);
}
END_TEST

int main(void)
{
    data = tu_testdata_or_skip();
    if (access(fixture("hf/config.json"), R_OK))
        tu_skip("tinyllama4 fixture not found under models/tinyllama4");
    Suite *s = suite_create("convert_llama4");
    TCase *tc = tcase_create("tinyllama4");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, small_jobs_convert_like_llama_cpp, 0, 3);
    tcase_add_loop_test(tc, refuses_what_llama_cpp_mistranslates, 0,
                        (int)(sizeof refusals / sizeof refusals[0]));
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
