/* test_convert.c - moerun quantize end to end.
 *
 * On tiny generated checkpoints (always run): every output type converts,
 * loads and runs; dense and tied models; the bytes do not depend on the
 * thread count; checksums verify and a corrupted byte is named by layer,
 * expert and part; every bad input is refused with its message and leaves
 * no file behind (O_TMPFILE and named temporary), also when the disk is
 * "full" (RLIMIT_FSIZE); --force.
 *
 * On shared/models/tinymix (skipped without ../shared): Q8_0 and Q4_0
 * tensors byte-identical to llama.cpp's files, the same metadata values,
 * the same logits through moerun, and the source hashes verify.
 */
#include <check.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "convert.h"
#include "forward.h"
#include "hf_builder.h"
#include "model.h"
#include "testutil.h"
#include "tokenizer.h"
#include "types.h"
#include "verify.h"

/* Convert in -> out; returns the status, message in err. */
static mr_status convert(const char *in, const char *out, const char *type, int threads,
                         int force, int no_tmpfile, mr_error *err)
{
    mr_convert_opts o = {0};
    o.input_dir = in;
    o.output_path = out;
    o.type = type;
    o.threads = threads;
    o.force = force;
    o.no_tmpfile = no_tmpfile;
    return mr_convert(&o, NULL, err);
}

/* Logits of n tokens (all positions) of a model file; malloc'd. */
static float *run_model(const char *path, const int32_t *ids, uint32_t n, uint32_t *n_vocab)
{
    mr_error err;
    mr_model *m;
    mr_expert_store *st;
    mr_context *c;
    mr_tokenizer *tok;
    ck_assert_msg(mr_model_load(path, &m, &err) == MR_OK, "%s", err.msg);
    ck_assert_msg(mr_tokenizer_load(m->gguf, &tok, &err) == MR_OK, "%s", err.msg);
    ck_assert_int_eq(mr_tokenizer_n_vocab(tok), (int)m->hp.n_vocab);
    ck_assert_int_eq(mr_store_resident_new(m, &st, &err), MR_OK);
    ck_assert_int_eq(mr_context_new(m, st, n, n, &c, &err), MR_OK);
    float *logits = malloc(sizeof(float) * n * m->hp.n_vocab);
    ck_assert_msg(mr_decode(c, ids, n, logits, 1, &err) == MR_OK, "%s", err.msg);
    *n_vocab = m->hp.n_vocab;
    mr_context_free(c);
    mr_expert_store_free(st);
    mr_tokenizer_free(tok);
    mr_model_free(m);
    return logits;
}

/* True when two files have the same bytes. */
static int same_file(const char *a, const char *b)
{
    size_t la, lb;
    uint8_t *x = tu_read_file(a, &la), *y = tu_read_file(b, &lb);
    int same = x && y && la == lb && !memcmp(x, y, la);
    free(x);
    free(y);
    return same;
}

/* A tiny checkpoint in a fresh directory (caller hfb_rmdir's it). */
static char *tiny(const hfb_model_opts *o)
{
    char *d = hfb_tmpdir();
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(hfb_write_model(d, o), 0);
    return d;
}

static const char *const types[] = {"f32", "f16", "bf16", "q8_0", "q4_0", "q4_k", "q6_k", "q4_k_m"};

START_TEST(test_tiny_types)
{
    hfb_model_opts mo = {.shards = 2};
    char *in = tiny(&mo), *out = hfb_tmpdir();
    const char *path = tu_path("%s/m.gguf", out);
    const int32_t ids[5] = {1, 300, 301, 259, 302};
    mr_error err;
    uint32_t V;
    int ktypes = mr_type_get(MR_TYPE_Q4_K)->from_f32 && mr_type_get(MR_TYPE_Q6_K)->from_f32;
    float *ref = NULL;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        mr_status s = convert(in, path, types[i], 2, 1, 0, &err);
        if (!ktypes && strstr(types[i], "_k")) {
            ck_assert_int_eq(s, MR_EUNSUPPORTED);
            ck_assert_msg(strstr(err.msg, "not supported yet"), "%s", err.msg);
            continue;
        }
        ck_assert_msg(s == MR_OK, "%s: %s", types[i], err.msg);
        mr_verify_report r;
        ck_assert_msg(mr_verify(path, in, &r, NULL, NULL, &err) == MR_OK, "%s", err.msg);
        ck_assert_uint_eq(r.slices, 3 * HFB_LAYERS * 4);
        float *l = run_model(path, ids, 5, &V);
        for (size_t k = 0; k < 5u * V; k++)
            ck_assert_msg(isfinite(l[k]), "%s: logit %zu not finite", types[i], k);
        if (!ref) {
            ref = l; /* f32 */
            continue;
        }
        double d = tu_max_abs_diff(ref, l, 5u * V);
        fprintf(stderr, "tiny %s: max |logit - f32| = %.3g\n", types[i], d);
        if (!strcmp(types[i], "bf16"))
            ck_assert_msg(d < 1e-4, "bf16 weights are exact in f32, got %g", d); /* bf16 source */
        else
            ck_assert_msg(d < 0.5, "%s: %g", types[i], d);
        free(l);
    }
    free(ref);
    hfb_rmdir(in);
    hfb_rmdir(out);
}
END_TEST

START_TEST(test_tiny_dense_and_tied)
{
    static const hfb_model_opts variants[] = {
        {.arch = "LlamaForCausalLM"},
        {.arch = "MistralForCausalLM", .dtype = "F16"},
        {.arch = "LlamaForCausalLM", .tied = 1, .dtype = "F32"},
        {.tied = 1, .n_expert = 2},
    };
    const int32_t ids[3] = {1, 260, 270};
    for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++) {
        char *in = tiny(&variants[v]), *out = hfb_tmpdir();
        const char *path = tu_path("%s/m.gguf", out);
        mr_error err;
        uint32_t V;
        ck_assert_msg(convert(in, path, "q8_0", 1, 0, 0, &err) == MR_OK, "%zu: %s", v, err.msg);
        mr_verify_report r;
        ck_assert_msg(mr_verify(path, NULL, &r, NULL, NULL, &err) == MR_OK, "%s", err.msg);
        free(run_model(path, ids, 3, &V));
        mr_gguf *g;
        ck_assert_int_eq(mr_gguf_open(path, &g, &err), MR_OK);
        ck_assert_int_eq(mr_gguf_tensor_find(g, "output.weight") == NULL, variants[v].tied);
        mr_gguf_close(g);
        hfb_rmdir(in);
        hfb_rmdir(out);
    }
}
END_TEST

START_TEST(test_deterministic)
{
    hfb_model_opts mo = {.shards = 2};
    char *in = tiny(&mo), *out = hfb_tmpdir();
    mr_error err;
    const char *a = tu_path("%s/a.gguf", out), *b = tu_path("%s/b.gguf", out);
    ck_assert_int_eq(convert(in, a, "q4_0", 1, 0, 0, &err), MR_OK);
    ck_assert_int_eq(convert(in, b, "q4_0", 3, 0, 1, &err), MR_OK);
    ck_assert_msg(same_file(a, b), "1 and 3 threads wrote different bytes");
    hfb_rmdir(in);
    hfb_rmdir(out);
}
END_TEST

typedef struct {
    hfb_model_opts mo;
    const char *remove;    /* file to delete from the checkpoint */
    const char *garbage;   /* file to overwrite with a broken safetensors header */
    const char *type;
    mr_status want;
    const char *msg;
} bad_case;

static const bad_case bad_cases[] = {
    {{.bad_shape = "model.layers.1.self_attn.q_proj.weight"}, NULL, NULL, "q8_0", MR_EFORMAT,
     "model.layers.1.self_attn.q_proj.weight at offset"},
    {{.bad_shape = "model.layers.0.block_sparse_moe.experts.3.w2.weight"}, NULL, NULL, "q8_0",
     MR_EFORMAT, "shape [257, 352] contradicts config.json, which implies [256, 352]"},
    {{.drop = "model.layers.1.block_sparse_moe.gate.weight"}, NULL, NULL, "q8_0", MR_EFORMAT,
     "model.layers.1.block_sparse_moe.gate.weight: tensor is missing from the checkpoint"},
    {{.extra = "model.layers.0.self_attn.q_proj.bias"}, NULL, NULL, "q8_0", MR_EUNSUPPORTED,
     "q_proj.bias at offset"},
    {{.arch = "GPT2LMHeadModel"}, NULL, NULL, "q8_0", MR_EUNSUPPORTED,
     "config.json: architectures: 'GPT2LMHeadModel' is not supported"},
    {{.shards = 2, .index_missing_shard = 1}, NULL, NULL, "q8_0", MR_EFORMAT,
     "which does not exist"},
    {{.shards = 2, .index_wrong_shard = 1}, NULL, NULL, "q8_0", MR_EFORMAT,
     "which does not hold it"},
    {{.shards = 2}, NULL, "model-00002-of-00002.safetensors", "q8_0", MR_EFORMAT,
     "model-00002-of-00002.safetensors: header at offset 24: not valid JSON"},
    {{0}, "tokenizer.model", NULL, "q8_0", MR_EUNSUPPORTED, "tokenizer.model: missing"},
    {{0}, "config.json", NULL, "q8_0", MR_EIO, "config.json: cannot open"},
    {{0}, NULL, NULL, "q7_0", MR_EINVAL, "'q7_0' is not an output type"},
};

START_TEST(test_bad_input)
{
    const bad_case *c = &bad_cases[_i];
    char *in = tiny(&c->mo), *out = hfb_tmpdir();
    mr_error err;
    if (c->remove)
        unlink(tu_path("%s/%s", in, c->remove));
    if (c->garbage) {
        const char img[] = "\x10\0\0\0\0\0\0\0{\"a\":{\"dtype\":  ";
        ck_assert_int_eq(hfb_write_file(tu_path("%s/%s", in, c->garbage), img, sizeof img - 1), 0);
    }
    for (int named = 0; named < 2; named++) {
        mr_status s = convert(in, tu_path("%s/m.gguf", out), c->type, 2, 0, named, &err);
        ck_assert_msg(s == c->want, "case %d: %s, want %s: %s", _i, mr_status_name(s),
                      mr_status_name(c->want), err.msg);
        ck_assert_msg(strstr(err.msg, c->msg), "case %d: '%s' lacks '%s'", _i, err.msg, c->msg);
        ck_assert_msg(hfb_dir_entries(out) == 0, "case %d: a file was left behind", _i);
    }
    hfb_rmdir(in);
    hfb_rmdir(out);
}
END_TEST

START_TEST(test_force_and_existing)
{
    hfb_model_opts mo = {0};
    char *in = tiny(&mo), *out = hfb_tmpdir();
    const char *path = tu_path("%s/m.gguf", out);
    mr_error err;
    ck_assert_int_eq(hfb_write_file(path, "keep", 4), 0);
    for (int named = 0; named < 2; named++) {
        ck_assert_int_eq(convert(in, path, "q8_0", 1, 0, named, &err), MR_EINVAL);
        ck_assert_msg(strstr(err.msg, "already exists (use --force"), "%s", err.msg);
        size_t len;
        char *b = tu_read_file(path, &len);
        ck_assert(len == 4 && !memcmp(b, "keep", 4));
        free(b);
    }
    ck_assert_int_eq(convert(in, path, "q8_0", 1, 1, 0, &err), MR_OK);
    ck_assert_int_eq(hfb_dir_entries(out), 1);
    ck_assert_int_eq(convert(in, path, "q4_0", 1, 1, 1, &err), MR_OK);
    ck_assert_int_eq(hfb_dir_entries(out), 1);
    mr_verify_report r;
    ck_assert_msg(mr_verify(path, in, &r, NULL, NULL, &err) == MR_OK, "%s", err.msg);
    hfb_rmdir(in);
    hfb_rmdir(out);
}
END_TEST

/* In a child with a file size limit (a stand-in for a full disk), convert
 * and exit with the status. */
static int convert_limited(const char *in, const char *out, int named)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct rlimit rl = {64 << 10, 64 << 10};
        signal(SIGXFSZ, SIG_IGN);
        setrlimit(RLIMIT_FSIZE, &rl);
        mr_error err;
        mr_status s = convert(in, out, "f32", 2, 0, named, &err);
        if (s)
            fprintf(stderr, "limited: %s\n", err.msg);
        _exit(s == MR_EIO && strstr(err.msg, "m.gguf") ? 0 : 1);
    }
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 99;
}

START_TEST(test_disk_full)
{
    hfb_model_opts mo = {0};
    char *in = tiny(&mo), *out = hfb_tmpdir();
    for (int named = 0; named < 2; named++) {
        ck_assert_int_eq(convert_limited(in, tu_path("%s/m.gguf", out), named), 0);
        ck_assert_int_eq(hfb_dir_entries(out), 0);
    }
    hfb_rmdir(in);
    hfb_rmdir(out);
}
END_TEST

START_TEST(test_verify_names_corruption)
{
    hfb_model_opts mo = {0};
    char *in = tiny(&mo), *out = hfb_tmpdir();
    const char *path = tu_path("%s/m.gguf", out);
    mr_error err;
    mr_gguf *g;
    ck_assert_int_eq(convert(in, path, "q4_0", 2, 0, 0, &err), MR_OK);
    ck_assert_int_eq(mr_gguf_open(path, &g, &err), MR_OK);
    const mr_gguf_tensor *t = mr_gguf_tensor_find(g, "blk.1.ffn_up_exps.weight");
    uint64_t at = t->file_offset + 2 * (t->nbytes / 4) + 7; /* expert 2 */
    mr_gguf_close(g);
    FILE *f = fopen(path, "r+b");
    fseek(f, (long)at, SEEK_SET);
    int c = fgetc(f);
    fseek(f, (long)at, SEEK_SET);
    fputc(c ^ 0x40, f);
    fclose(f);
    mr_verify_report r;
    ck_assert_int_eq(mr_verify(path, NULL, &r, NULL, NULL, &err), MR_ECHECKSUM);
    ck_assert_msg(strstr(err.msg, "layer 1 expert 2 up"), "%s", err.msg);
    /* a changed source file is caught too */
    ck_assert_int_eq(convert(in, path, "q4_0", 2, 1, 0, &err), MR_OK);
    ck_assert_int_eq(hfb_write_file(tu_path("%s/config.json", in), "{}", 2), 0);
    ck_assert_int_eq(mr_verify(path, in, &r, NULL, NULL, &err), MR_ECHECKSUM);
    ck_assert_msg(strstr(err.msg, "config.json: differs"), "%s", err.msg);
    hfb_rmdir(in);
    hfb_rmdir(out);
}
END_TEST

/* ---------------------------------------------------------------- tinymix */

/* Same value, for two metadata values. */
static int same_value(const mr_gguf_value *a, const mr_gguf_value *b)
{
    if (a->type != b->type)
        return 0;
    switch (a->type) {
    case MR_GGUF_STRING:
        return a->v.str.len == b->v.str.len && !memcmp(a->v.str.ptr, b->v.str.ptr, a->v.str.len);
    case MR_GGUF_ARRAY:
        if (a->v.arr.elem_type != b->v.arr.elem_type || a->v.arr.n != b->v.arr.n)
            return 0;
        if (a->v.arr.elem_type == MR_GGUF_STRING) {
            for (uint64_t i = 0; i < a->v.arr.n; i++)
                if (a->v.arr.strs[i].len != b->v.arr.strs[i].len ||
                    memcmp(a->v.arr.strs[i].ptr, b->v.arr.strs[i].ptr, a->v.arr.strs[i].len))
                    return 0;
            return 1;
        }
        return !memcmp(a->v.arr.data, b->v.arr.data, a->v.arr.n * mr_gguf_vtype_size(a->v.arr.elem_type));
    case MR_GGUF_FLOAT32: case MR_GGUF_FLOAT64: return a->v.f64 == b->v.f64;
    case MR_GGUF_BOOL: return a->v.b == b->v.b;
    default: return a->v.u64 == b->v.u64;
    }
}

/* Compare our file with llama.cpp's: every tensor's bytes and every key
 * (but general.name when the checkpoint folders were named differently). */
static void compare_keys_with_llama_cpp(const char *ours, const char *theirs, int skip_name)
{
    mr_gguf *a, *b;
    mr_error err;
    ck_assert_int_eq(mr_gguf_open(ours, &a, &err), MR_OK);
    ck_assert_int_eq(mr_gguf_open(theirs, &b, &err), MR_OK);
    ck_assert_uint_eq(a->n_tensors, b->n_tensors);
    uint64_t same = 0;
    for (uint64_t i = 0; i < b->n_tensors; i++) {
        const mr_gguf_tensor *y = &b->tensors[i], *x = mr_gguf_tensor_find(a, y->name);
        ck_assert_msg(x != NULL, "%s missing", y->name);
        ck_assert_msg(x->type == y->type && x->nbytes == y->nbytes, "%s: type or size", y->name);
        if (!memcmp(x->data, y->data, x->nbytes))
            same++;
        else
            fprintf(stderr, "%s differs from %s\n", y->name, theirs);
    }
    fprintf(stderr, "%s: %llu/%llu tensors byte-identical to %s\n", ours,
            (unsigned long long)same, (unsigned long long)b->n_tensors, theirs);
    ck_assert_uint_eq(same, b->n_tensors);
    for (uint64_t i = 0; i < b->n_kv; i++) {
        if (skip_name && !strcmp(b->kv[i].key, "general.name"))
            continue;
        const mr_gguf_kv *k = mr_gguf_find(a, b->kv[i].key);
        ck_assert_msg(k != NULL, "key %s missing", b->kv[i].key);
        ck_assert_msg(same_value(&k->val, &b->kv[i].val), "key %s differs", b->kv[i].key);
    }
    mr_gguf_close(a);
    mr_gguf_close(b);
}

static void compare_with_llama_cpp(const char *ours, const char *theirs)
{
    compare_keys_with_llama_cpp(ours, theirs, 0);
}

/* Each family's fixture: hf/ converted by moerun against the GGUF files
 * llama.cpp's convert_hf_to_gguf.py wrote from it (tensors and keys; the
 * fixture's hf/ folder is not named like the model, so general.name is
 * left out).  A family adds its rows. */
static const struct {
    const char *fixture, *hf, *type, *gguf;
} family_files[] = {
    {"tinyqwen3moe", "hf", "bf16", "tinyqwen3moe-bf16.gguf"},
    {"tinyqwen3moe", "hf", "q8_0", "tinyqwen3moe-q8_0.gguf"},
    {"tinyllama4", "hf", "f32", "tinyllama4-f32.gguf"},
    {"tinyllama4", "hf", "bf16", "tinyllama4-bf16.gguf"},
    {"tinyllama4", "hf", "q8_0", "tinyllama4-q8_0.gguf"},
    {"tinygptoss", "hf", "bf16", "tinygptoss-mxfp4.gguf"},
    /* DeepSeek-V3: the FP8 release layout and the community BF16 one give
     * the same file; the q8_0 is llama-quantize's of the F32 conversion */
    {"tinydeepseek3", "hf", "bf16", "tinydeepseek3-bf16.gguf"},
    {"tinydeepseek3", "hf-bf16", "bf16", "tinydeepseek3-bf16.gguf"},
    {"tinydeepseek3", "hf", "q8_0", "tinydeepseek3-q8_0.gguf"},
};

START_TEST(test_family_matches_llama_cpp)
{
    const char *data = tu_testdata();
    char *dir = strdup(tu_path("%s/models/%s", data, family_files[_i].fixture));
    char *in = strdup(tu_path("%s/%s", dir, family_files[_i].hf));
    char *theirs = strdup(tu_path("%s/gguf/%s", dir, family_files[_i].gguf));
    char *out = hfb_tmpdir();
    char *ours = strdup(tu_path("%s/out.gguf", out));
    mr_error err;
    ck_assert_msg(convert(in, ours, family_files[_i].type, 2, 0, 0, &err) == MR_OK, "%s", err.msg);
    compare_keys_with_llama_cpp(ours, theirs, 1);
    hfb_rmdir(out);
    free(ours);
    free(theirs);
    free(in);
    free(dir);
}
END_TEST

START_TEST(test_tinymix_matches_llama_cpp)
{
    const char *data = tu_testdata();
    const char *in = tu_path("%s/models/tinymix", data);
    char *out = hfb_tmpdir();
    const char *q8 = tu_path("%s/q8.gguf", out), *q4 = tu_path("%s/q4.gguf", out);
    const char *q8b = tu_path("%s/q8b.gguf", out);
    const char *lq8 = tu_path("%s/models/tinymix-gguf/tinymix-Q8_0.gguf", data);
    const char *lq4 = tu_path("%s/models/tinymix-gguf/tinymix-Q4_0.gguf", data);
    mr_error err;
    ck_assert_msg(convert(in, q8, "q8_0", 2, 0, 0, &err) == MR_OK, "%s", err.msg);
    ck_assert_msg(convert(in, q4, "q4_0", 2, 0, 0, &err) == MR_OK, "%s", err.msg);
    compare_with_llama_cpp(q8, lq8);
    compare_with_llama_cpp(q4, lq4);
    ck_assert_msg(convert(in, q8b, "q8_0", 1, 0, 1, &err) == MR_OK, "%s", err.msg);
    ck_assert_msg(same_file(q8, q8b), "a second run (1 thread) wrote different bytes");
    mr_verify_report r;
    ck_assert_msg(mr_verify(q8, in, &r, NULL, NULL, &err) == MR_OK, "%s", err.msg);
    ck_assert_uint_eq(r.slices, 96);
    ck_assert_uint_eq(r.sources, 8);
    /* the same logits through moerun as llama.cpp's file */
    size_t n;
    int32_t *ids = tu_read_ids_json(tu_path("%s/ref/short.ids.json", data), &n, NULL);
    uint32_t V;
    float *ours = run_model(q8, ids, (uint32_t)n, &V), *theirs = run_model(lq8, ids, (uint32_t)n, &V);
    double d = tu_max_abs_diff(ours, theirs, n * V);
    fprintf(stderr, "short: max |logit(ours Q8_0) - logit(llama.cpp Q8_0)| = %g\n", d);
    ck_assert(d == 0.0);
    free(ours);
    free(theirs);
    free(ids);
    hfb_rmdir(out);
}
END_TEST

/* llama-quantize's type for every tensor of each fixture under each mix,
 * as tests/oracle/quant_mix_vs_llama.sh recorded them from llama.cpp's
 * files (that script also found the tensors byte-identical): our
 * conversion of the same checkpoint must choose the same types. */
static const char *const mix_fixtures[][2] = {
    {"tinymix", "models/tinymix"},         {"tinyqwen3moe", "models/tinyqwen3moe/hf"},
    {"tinyllama4", "models/tinyllama4/hf"}, {"tinydeepseek3", "models/tinydeepseek3/hf"},
};
static const char *const mix_names[] = {"q2_k",   "q3_k_s", "q3_k_m", "q3_k_l", "q4_k_s",
                                        "q4_k_m", "q5_k_s", "q5_k_m", "q6_k"};
#define N_MIXES (sizeof mix_names / sizeof mix_names[0])

START_TEST(test_mix_types_match_llama_quantize)
{
    const char *fx = mix_fixtures[_i / N_MIXES][0], *mix = mix_names[_i % N_MIXES];
    char *in = strdup(tu_path("%s/%s", tu_testdata(), mix_fixtures[_i / N_MIXES][1]));
    char *want = strdup(tu_path("%s/tests/data/quant_mix/%s-%s.types", tu_srcdir(), fx, mix));
    char *out = hfb_tmpdir();
    const char *path = tu_path("%s/m.gguf", out);
    mr_error err;
    ck_assert_msg(convert(in, path, mix, 2, 0, 0, &err) == MR_OK, "%s %s: %s", fx, mix, err.msg);
    mr_gguf *g;
    ck_assert_int_eq(mr_gguf_open(path, &g, &err), MR_OK);
    FILE *f = fopen(want, "r");
    ck_assert_msg(f, "%s is missing", want);
    char name[256], type[32];
    uint64_t lines = 0;
    while (fscanf(f, "%255s %31s", name, type) == 2) {
        const mr_gguf_tensor *t = mr_gguf_tensor_find(g, name);
        ck_assert_msg(t, "%s %s: no tensor %s", fx, mix, name);
        ck_assert_msg(!strcmp(mr_type_get(t->type)->name, type), "%s %s: %s is %s, llama-quantize: %s",
                      fx, mix, name, mr_type_get(t->type)->name, type);
        lines++;
    }
    fclose(f);
    ck_assert_uint_eq(lines, g->n_tensors);
    mr_gguf_close(g);
    hfb_rmdir(out);
    free(want);
    free(in);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("convert");
    TCase *tc = tcase_create("tiny");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_tiny_types);
    tcase_add_test(tc, test_tiny_dense_and_tied);
    tcase_add_test(tc, test_deterministic);
    tcase_add_loop_test(tc, test_bad_input, 0, (int)(sizeof bad_cases / sizeof bad_cases[0]));
    tcase_add_test(tc, test_force_and_existing);
    tcase_add_test(tc, test_disk_full);
    tcase_add_test(tc, test_verify_names_corruption);
    suite_add_tcase(s, tc);
    if (tu_testdata()) {
        TCase *tm = tcase_create("tinymix");
        tcase_set_timeout(tm, 300);
        tcase_add_test(tm, test_tinymix_matches_llama_cpp);
        tcase_add_loop_test(tm, test_family_matches_llama_cpp, 0,
                            (int)(sizeof family_files / sizeof family_files[0]));
        tcase_add_loop_test(tm, test_mix_types_match_llama_quantize, 0,
                            (int)(N_MIXES * (sizeof mix_fixtures / sizeof mix_fixtures[0])));
        suite_add_tcase(s, tm);
    } else {
        fprintf(stderr, "shared test data not found: the tinymix comparison is skipped\n");
    }
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
