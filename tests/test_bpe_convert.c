/* test_bpe_convert.c - tokenizer.json -> tokenizer.ggml.* keys, against the
 * GGUF files llama.cpp's convert_hf_to_gguf.py wrote from the same hf/
 * folders (the fixtures' gguf/): every tokenizer.* key of llama.cpp's file
 * must be in ours with the same type and value, and ours has no other.
 * Then the converted vocabulary must tokenize the fixtures' prompts to
 * their reference ids, and tokenizer.json files with a split pattern
 * moerun does not know, or broken ones, must be refused with the reason.
 */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "convert_internal.h"
#include "convert_vocab_bpe.h"
#include "gguf.h"
#include "gguf_builder.h"
#include "gguf_write.h"
#include "testutil.h"
#include "tokenizer.h"

static const char *g_data;

typedef struct {
    const char *fixture, *gguf, *prompt;
} fixture;

static const fixture k_fixtures[] = {
    {"tinyqwen3moe", "tinyqwen3moe-bf16.gguf", "paid_350"},
    {"tinydeepseek3", "tinydeepseek3-bf16.gguf", "gruesse"},
    {"tinygptoss", "tinygptoss-mxfp4.gguf", "long_river"},
    {"tinyllama4", "tinyllama4-bf16.gguf", "paid_350"},
};
#define N_FIXTURES ((int)(sizeof k_fixtures / sizeof k_fixtures[0]))

/* Skip one GGUF value of type ty at buf[*pos]; -1 if it runs past len. */
static int skip_value(const uint8_t *buf, size_t len, size_t *pos, uint32_t ty, int depth)
{
    static const uint8_t fixed[13] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    if (ty >= 13 || depth > 3)
        return -1;
    if (ty == GB_STRING || ty == GB_ARRAY) {
        if (*pos + (ty == GB_STRING ? 8 : 12) > len)
            return -1;
        if (ty == GB_STRING) {
            uint64_t n = gb_rd_u64(buf + *pos);
            if (n > len - *pos - 8)
                return -1;
            *pos += 8 + n;
            return 0;
        }
        uint32_t et = gb_rd_u32(buf + *pos);
        uint64_t n = gb_rd_u64(buf + *pos + 4);
        *pos += 12;
        for (uint64_t i = 0; i < n; i++)
            if (skip_value(buf, len, pos, et, depth + 1))
                return -1;
        return 0;
    }
    if (*pos + fixed[ty] > len)
        return -1;
    *pos += fixed[ty];
    return 0;
}

/* Open a GGUF's metadata alone (tensor infos dropped: gpt-oss's MXFP4 is
 * a type this reader does not know); *img must outlive *g. */
static mr_gguf *open_meta(const char *path, uint8_t **img)
{
    size_t len, pos = 24;
    uint8_t *buf = tu_read_file(path, &len);
    ck_assert_msg(buf && len >= 24, "%s: unreadable", path);
    uint64_t n_kv = gb_rd_u64(buf + 16);
    for (uint64_t i = 0; i < n_kv; i++) {
        ck_assert(pos + 8 <= len);
        pos += 8 + gb_rd_u64(buf + pos);
        ck_assert(pos + 4 <= len);
        uint32_t ty = gb_rd_u32(buf + pos);
        pos += 4;
        ck_assert_msg(skip_value(buf, len, &pos, ty, 0) == 0, "%s: KV %llu", path, (unsigned long long)i);
    }
    gb_wr_u64(buf + 8, 0);
    mr_gguf *g;
    mr_error err;
    if (mr_gguf_open_mem(buf, pos, path, &g, &err) != MR_OK)
        ck_abort_msg("%s: %s", path, err.msg);
    *img = buf;
    return g;
}

/* Whether two values are equal (type and contents). */
static int same_value(const mr_gguf_value *a, const mr_gguf_value *b, char *why, size_t cap)
{
    if (a->type != b->type) {
        snprintf(why, cap, "type %u vs %u", a->type, b->type);
        return 0;
    }
    switch (a->type) {
    case MR_GGUF_STRING:
        if (a->v.str.len != b->v.str.len || memcmp(a->v.str.ptr, b->v.str.ptr, a->v.str.len)) {
            snprintf(why, cap, "'%.*s' vs '%.*s'", (int)(a->v.str.len > 60 ? 60 : a->v.str.len),
                     a->v.str.ptr, (int)(b->v.str.len > 60 ? 60 : b->v.str.len), b->v.str.ptr);
            return 0;
        }
        return 1;
    case MR_GGUF_ARRAY:
        if (a->v.arr.elem_type != b->v.arr.elem_type || a->v.arr.n != b->v.arr.n) {
            snprintf(why, cap, "array of %llu type %u vs %llu type %u",
                     (unsigned long long)a->v.arr.n, a->v.arr.elem_type,
                     (unsigned long long)b->v.arr.n, b->v.arr.elem_type);
            return 0;
        }
        if (a->v.arr.elem_type == MR_GGUF_STRING) {
            for (uint64_t i = 0; i < a->v.arr.n; i++) {
                mr_str x = a->v.arr.strs[i], y = b->v.arr.strs[i];
                if (x.len != y.len || memcmp(x.ptr, y.ptr, x.len)) {
                    snprintf(why, cap, "element %llu: '%.*s' vs '%.*s'", (unsigned long long)i,
                             (int)(x.len > 40 ? 40 : x.len), x.ptr, (int)(y.len > 40 ? 40 : y.len), y.ptr);
                    return 0;
                }
            }
            return 1;
        }
        for (uint64_t i = 0; i < a->v.arr.n; i++)
            if (mr_gguf_arr_int(a, i) != mr_gguf_arr_int(b, i)) {
                snprintf(why, cap, "element %llu: %lld vs %lld", (unsigned long long)i,
                         (long long)mr_gguf_arr_int(a, i), (long long)mr_gguf_arr_int(b, i));
                return 0;
            }
        return 1;
    case MR_GGUF_BOOL:
        if (a->v.b != b->v.b) {
            snprintf(why, cap, "%d vs %d", a->v.b, b->v.b);
            return 0;
        }
        return 1;
    default:
        if (a->v.u64 != b->v.u64) {
            snprintf(why, cap, "%llu vs %llu", (unsigned long long)a->v.u64, (unsigned long long)b->v.u64);
            return 0;
        }
        return 1;
    }
}

/* Convert dir's vocabulary alone into a vocabulary-only GGUF at out. */
static mr_status convert_to(const char *dir, const char *out, mr_error *err)
{
    mr_plan p;
    memset(&p, 0, sizeof p);
    mr_gguf_writer *w;
    mr_status s = mr_gguf_writer_new(32, &w, err);
    if (s)
        return s;
    if (!(s = mr_convert_vocab(dir, &p, w, err))) {
        int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        ck_assert_int_ge(fd, 0);
        if (!(s = mr_gguf_writer_begin(w, fd, out, err)))
            s = mr_gguf_writer_finish(w, err);
        close(fd);
    }
    mr_gguf_writer_free(w);
    free(p.sources);
    return s;
}

START_TEST(test_matches_llama_cpp)
{
    const fixture *f = &k_fixtures[_i];
    char out[] = "/tmp/test_bpe_convert_XXXXXX";
    int fd = mkstemp(out);
    ck_assert_int_ge(fd, 0);
    close(fd);
    mr_error err;
    mr_status s = convert_to(tu_path("%s/models/%s/hf", g_data, f->fixture), out, &err);
    ck_assert_msg(s == MR_OK, "%s: %s", f->fixture, err.msg);
    mr_gguf *ours, *theirs;
    uint8_t *img;
    ck_assert_int_eq(mr_gguf_open(out, &ours, &err), MR_OK);
    theirs = open_meta(tu_path("%s/models/%s/gguf/%s", g_data, f->fixture, f->gguf), &img);
    int n_keys = 0;
    for (uint64_t i = 0; i < theirs->n_kv; i++) {
        const mr_gguf_kv *kv = &theirs->kv[i];
        if (strncmp(kv->key, "tokenizer.", 10) != 0)
            continue;
        n_keys++;
        const mr_gguf_kv *mine = mr_gguf_find(ours, kv->key);
        ck_assert_msg(mine, "%s: %s missing", f->fixture, kv->key);
        char why[256];
        ck_assert_msg(same_value(&mine->val, &kv->val, why, sizeof why), "%s: %s differs: %s",
                      f->fixture, kv->key, why);
    }
    for (uint64_t i = 0; i < ours->n_kv; i++)
        if (strncmp(ours->kv[i].key, "tokenizer.", 10) == 0)
            ck_assert_msg(mr_gguf_find(theirs, ours->kv[i].key), "%s: extra key %s", f->fixture,
                          ours->kv[i].key);
    printf("ok %s: %d tokenizer keys identical to llama.cpp's\n", f->fixture, n_keys);

    /* and the converted vocabulary tokenizes a reference prompt */
    mr_tokenizer *t;
    ck_assert_int_eq(mr_tokenizer_load(ours, &t, &err), MR_OK);
    size_t n_want, n;
    char *text;
    int32_t *want = tu_read_ids_json(
        tu_path("%s/models/%s/ref/%s.ids.json", g_data, f->fixture, f->prompt), &n_want, &text);
    ck_assert_ptr_nonnull(want);
    int32_t *ids;
    ck_assert_int_eq(mr_tokenize_ex(t, text, strlen(text), mr_tokenizer_add_bos(t) ? MR_TOK_ADD_BOS : 0,
                                    &ids, &n, &err), MR_OK);
    ck_assert_uint_eq(n, n_want);
    ck_assert(memcmp(ids, want, n * sizeof *ids) == 0);
    free(ids);
    free(want);
    free(text);
    mr_tokenizer_free(t);
    mr_gguf_close(ours);
    mr_gguf_close(theirs);
    free(img);
    unlink(out);
}
END_TEST

/* ------------------------------------------------ refused tokenizer.json */

typedef struct {
    const char *name, *tokenizer_json;
    mr_status want;
    const char *in_msg;
} bad_json;

#define VOCAB_OK "\"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": [\"a b\"]"

static const bad_json k_bad[] = {
    {"gpt-2 ByteLevel", "{\"model\": {\"type\": \"BPE\", " VOCAB_OK "}, \"pre_tokenizer\": "
     "{\"type\": \"ByteLevel\", \"use_regex\": true}}", MR_OK, "gpt-2"},
    {"qwen2 pattern", "{\"model\": {\"type\": \"BPE\", " VOCAB_OK "}, \"pre_tokenizer\": "
     "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": {\"Regex\": "
     "\"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}| ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+\"}, "
     "\"behavior\": \"Isolated\", \"invert\": false}, {\"type\": \"ByteLevel\", \"use_regex\": false}]}}",
     MR_OK, "qwen2"},
    {"unknown pattern", "{\"model\": {\"type\": \"BPE\", " VOCAB_OK "}, \"pre_tokenizer\": "
     "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": {\"Regex\": "
     "\"\\\\p{N}{1,4}\"}, \"behavior\": \"Isolated\"}, {\"type\": \"ByteLevel\", \"use_regex\": false}]}}",
     MR_EUNSUPPORTED, "\\p{N}{1,4}"},
    {"Digits pre-tokenizer", "{\"model\": {\"type\": \"BPE\", " VOCAB_OK "}, \"pre_tokenizer\": "
     "{\"type\": \"Digits\", \"individual_digits\": true}}", MR_EUNSUPPORTED, "not known"},
    {"no pre-tokenizer", "{\"model\": {\"type\": \"BPE\", " VOCAB_OK "}}", MR_EUNSUPPORTED, "not known"},
    {"WordPiece", "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}", MR_EUNSUPPORTED, "WordPiece"},
    {"id beyond vocab_size", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 9}, "
     "\"merges\": []}, \"pre_tokenizer\": {\"type\": \"ByteLevel\"}}", MR_EFORMAT, "'b' has id 9"},
    {"bad merge", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [3]}, "
     "\"pre_tokenizer\": {\"type\": \"ByteLevel\"}}", MR_EFORMAT, "merge 0"},
    {"not JSON", "{\"model\": ", MR_EFORMAT, "not a JSON object"},
};
#define N_BAD ((int)(sizeof k_bad / sizeof k_bad[0]))

START_TEST(test_refused)
{
    const bad_json *c = &k_bad[_i];
    char dir[] = "/tmp/test_bpe_convert_dirXXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[256], out[300];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    FILE *f = fopen(path, "w");
    fputs(c->tokenizer_json, f);
    fclose(f);
    snprintf(path, sizeof path, "%s/config.json", dir);
    f = fopen(path, "w");
    fputs("{\"vocab_size\": 4}", f);
    fclose(f);
    snprintf(out, sizeof out, "%s/out.gguf", dir);
    mr_error err;
    mr_status s = convert_to(dir, out, &err);
    ck_assert_msg(s == c->want, "%s: status %s (%s)", c->name, mr_status_name(s), s ? err.msg : "");
    if (s == MR_OK) {
        mr_gguf *g;
        mr_tokenizer *t;
        ck_assert_int_eq(mr_gguf_open(out, &g, &err), MR_OK);
        ck_assert_int_eq(mr_tokenizer_load(g, &t, &err), MR_OK);
        ck_assert_str_eq(mr_tokenizer_pre(t), c->in_msg);
        ck_assert_int_eq(mr_tokenizer_n_vocab(t), 4); /* id 3 is [PAD3] */
        ck_assert_str_eq(mr_token_piece(t, 3), "[PAD3]");
        mr_tokenizer_free(t);
        mr_gguf_close(g);
        unlink(out);
    } else {
        ck_assert_msg(strstr(err.msg, c->in_msg), "%s: '%s'", c->name, err.msg);
    }
    unlink(path);
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    unlink(path);
    rmdir(dir);
}
END_TEST

int main(void)
{
    g_data = tu_testdata();
    Suite *s = suite_create("bpe_convert");
    TCase *tm = tcase_create("refused");
    tcase_add_loop_test(tm, test_refused, 0, N_BAD);
    suite_add_tcase(s, tm);
    if (g_data) {
        TCase *tc = tcase_create("fixtures");
        tcase_set_timeout(tc, 120);
        tcase_add_loop_test(tc, test_matches_llama_cpp, 0, N_FIXTURES);
        suite_add_tcase(s, tc);
    } else {
        fprintf(stderr, "SKIP the fixture comparisons: shared test data not found (MOERUN_TESTDATA)\n");
    }
    return tu_run_suite(s);
}
