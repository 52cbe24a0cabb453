/* test_safetensors.c - the safetensors reader, checkpoint directories and
 * the SentencePiece model reader against malformed input: every case is
 * refused with its own status and a message naming the file and the field.
 * Also replays the fuzzing corpora tests/corpus/{safetensors,spm}/. */
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hf_builder.h"
#include "safetensors.h"
#include "spm_model.h"
#include "testutil.h"

/* An image: u64 header length, the header, then data_len zero bytes. */
static uint8_t *image(const char *header, size_t data_len, size_t *len)
{
    size_t hl = strlen(header);
    *len = 8 + hl + data_len;
    uint8_t *b = calloc(1, *len);
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(b + 8, header, hl);
    return b;
}

typedef struct {
    const char *header;
    size_t data_len;
    mr_status want;
    const char *msg; /* must appear in the message */
} st_case;

static const st_case cases[] = {
    {"{}", 0, MR_OK, NULL},
    {"{\"__metadata__\":{\"format\":\"pt\"},\"a\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[0,12]}}   ", 12, MR_OK, NULL},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[4,8]}}", 16, MR_OK, NULL}, /* gaps are fine */
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}", 0, MR_OK, NULL},
    {"{\"a\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]}", 4, MR_EFORMAT, "header at offset 62: not valid JSON: the JSON ends before"},
    {"{\"a\":1} x", 0, MR_EFORMAT, "text after the JSON object"},
    {"[1,2]", 0, MR_EFORMAT, "header at offset 8: not a JSON object"},
    {"{\"__metadata__\":[]}", 0, MR_EFORMAT, "__metadata__"},
    {"{\"a\":[]}", 0, MR_EFORMAT, "a: entry is not a JSON object"},
    {"{\"a\":{\"shape\":[1],\"data_offsets\":[0,2]}}", 2, MR_EFORMAT, "a: dtype is missing"},
    {"{\"a\":{\"dtype\":\"Q4\",\"shape\":[1],\"data_offsets\":[0,2]}}", 2, MR_EFORMAT, "a: unknown dtype 'Q4'"},
    {"{\"a\":{\"dtype\":\"F16\",\"shape\":3,\"data_offsets\":[0,6]}}", 6, MR_EFORMAT, "a: shape is missing or not an array"},
    {"{\"a\":{\"dtype\":\"F16\",\"shape\":[-3],\"data_offsets\":[0,6]}}", 6, MR_EFORMAT, "shape[0] is not a non-negative integer"},
    {"{\"a\":{\"dtype\":\"F16\",\"shape\":[1.5],\"data_offsets\":[0,6]}}", 6, MR_EFORMAT, "shape[0] is not a non-negative integer"},
    {"{\"a\":{\"dtype\":\"F16\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,2]}}", 2, MR_EFORMAT, "9 dimensions"},
    {"{\"a\":{\"dtype\":\"F16\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,2]}}", 2, MR_EFORMAT, "shape overflows"},
    {"{\"a\":{\"dtype\":\"F64\",\"shape\":[4294967296,1073741824],\"data_offsets\":[0,2]}}", 2, MR_EFORMAT, "shape overflows"},
    {"{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0]}}", 4, MR_EFORMAT, "data_offsets is not two"},
    {"{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[4,0]}}", 4, MR_EFORMAT, "reversed or past the end"},
    {"{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 3, MR_EFORMAT, "past the end of the data (3 bytes)"},
    {"{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,18446744073709551615]}}", 4, MR_EFORMAT, "past the end"},
    {"{\"a\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[0,4]}}", 4, MR_EFORMAT, "span 4 bytes but shape x F16 needs 6"},
    {"{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[3,5]}}", 8, MR_EFORMAT, "data overlaps that of a"},
};

START_TEST(test_header_case)
{
    const st_case *c = &cases[_i];
    size_t len;
    uint8_t *img = image(c->header, c->data_len, &len);
    mr_st_file *f = NULL;
    mr_error err;
    mr_status s = mr_st_open_mem(img, len, "case.safetensors", &f, &err);
    ck_assert_msg(s == c->want, "case %d (%s): status %s, want %s: %s", _i, c->header,
                  mr_status_name(s), mr_status_name(c->want), s ? err.msg : "");
    if (c->msg) {
        ck_assert_msg(strstr(err.msg, c->msg), "case %d: message '%s' lacks '%s'", _i, err.msg, c->msg);
        ck_assert_msg(strstr(err.msg, "case.safetensors"), "case %d: file not named", _i);
    }
    mr_st_close(f);
    free(img);
}
END_TEST

START_TEST(test_header_length)
{
    mr_st_file *f;
    mr_error err;
    uint8_t b[16] = {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0};
    ck_assert_int_eq(mr_st_open_mem(b, 5, "t", &f, &err), MR_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "shorter than 8"));
    ck_assert_int_eq(mr_st_open_mem(b, 16, "t", &f, &err), MR_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "header length"));
    uint8_t z[10] = {2, 0, 0, 0, 0, 0, 0, 0, '{', 0};
    ck_assert_int_eq(mr_st_open_mem(z, 10, "t", &f, &err), MR_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "NUL"));
}
END_TEST

START_TEST(test_valid_roundtrip)
{
    hfb_tensor t[2] = {{"w", "BF16", 2, {3, 4}, 1}, {"n", "F32", 1, {4}, 2}};
    size_t len;
    uint8_t *img = hfb_safetensors(t, 2, &len);
    mr_st_file *f;
    mr_error err;
    ck_assert_int_eq(mr_st_open_mem(img, len, "x", &f, &err), MR_OK);
    ck_assert_uint_eq(f->n_tensors, 2);
    const mr_st_tensor *w = mr_st_find(f, "w");
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(w->dtype, MR_ST_BF16);
    ck_assert_uint_eq(w->shape[0], 3);
    ck_assert_uint_eq(w->nbytes, 24);
    ck_assert_uint_eq(mr_st_nelements(w), 12);
    ck_assert_ptr_null(mr_st_find(f, "missing"));
    float v[4];
    ck_assert_int_eq(mr_st_to_f32(MR_ST_F32, img + mr_st_find(f, "n")->offset, v, 4), 0);
    ck_assert_int_eq(mr_st_to_f32(MR_ST_I32, img, v, 1), -1);
    mr_st_close(f);
    free(img);
}
END_TEST

/* Open a checkpoint built with opts; return its status and message. */
static mr_status open_ckpt(const hfb_model_opts *o, char *msg, size_t n)
{
    char *d = hfb_tmpdir();
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(hfb_write_model(d, o), 0);
    mr_st_checkpoint *c = NULL;
    mr_error err;
    mr_status s = mr_st_checkpoint_open(d, &c, &err);
    snprintf(msg, n, "%s", s ? err.msg : "");
    mr_st_checkpoint_close(c);
    hfb_rmdir(d);
    return s;
}

START_TEST(test_checkpoint)
{
    char msg[600];
    hfb_model_opts o = {0};
    ck_assert_int_eq(open_ckpt(&o, msg, sizeof msg), MR_OK);
    o.shards = 2;
    ck_assert_int_eq(open_ckpt(&o, msg, sizeof msg), MR_OK);
    o.index_missing_shard = 1;
    ck_assert_int_eq(open_ckpt(&o, msg, sizeof msg), MR_EFORMAT);
    ck_assert_msg(strstr(msg, "model.safetensors.index.json") &&
                  strstr(msg, "names shard 'model-00002-of-00002.safetensors', which does not exist"),
                  "%s", msg);
    o.index_missing_shard = 0;
    o.index_wrong_shard = 1;
    ck_assert_int_eq(open_ckpt(&o, msg, sizeof msg), MR_EFORMAT);
    ck_assert_msg(strstr(msg, "model.layers.0.input_layernorm.weight") &&
                  strstr(msg, "which does not hold it"), "%s", msg);
    /* no weights at all */
    char *d = hfb_tmpdir();
    ck_assert_ptr_nonnull(d);
    mr_st_checkpoint *c;
    mr_error err;
    ck_assert_int_eq(mr_st_checkpoint_open(d, &c, &err), MR_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "neither"));
    /* an index that is not JSON, and one with a path in it */
    ck_assert_int_eq(hfb_write_file(tu_path("%s/model.safetensors.index.json", d), "{\"weight", 8), 0);
    ck_assert_int_eq(mr_st_checkpoint_open(d, &c, &err), MR_EFORMAT);
    ck_assert_msg(strstr(err.msg, "not valid JSON"), "%s", err.msg);
    const char *evil = "{\"weight_map\":{\"a\":\"../x.safetensors\"}}";
    ck_assert_int_eq(hfb_write_file(tu_path("%s/model.safetensors.index.json", d), evil, strlen(evil)), 0);
    ck_assert_int_eq(mr_st_checkpoint_open(d, &c, &err), MR_EFORMAT);
    ck_assert_msg(strstr(err.msg, "not a file name"), "%s", err.msg);
    hfb_rmdir(d);
}
END_TEST

START_TEST(test_spm_valid)
{
    size_t len;
    uint8_t *b = hfb_spm_model(5, &len);
    mr_spm_model *m;
    mr_error err;
    ck_assert_int_eq(mr_spm_parse(b, len, "t.model", &m, &err), MR_OK);
    ck_assert_uint_eq(m->n_pieces, hfb_spm_pieces(5));
    ck_assert_str_eq(m->piece[0], "<unk>");
    ck_assert_int_eq(m->type[0], MR_SPM_UNKNOWN);
    ck_assert_int_eq(m->type[1], MR_SPM_CONTROL);
    ck_assert_int_eq(m->type[3], MR_SPM_BYTE);
    ck_assert_str_eq(m->piece[3], "<0x00>");
    ck_assert(m->score[hfb_spm_pieces(5) - 1] == -4.0f);
    ck_assert_int_eq(m->model_type, 2);
    ck_assert_int_eq(m->byte_fallback, 1);
    ck_assert_int_eq(m->add_dummy_prefix, 1);
    mr_spm_free(m);
    free(b);
}
END_TEST

typedef struct {
    const uint8_t *bytes;
    size_t len;
    const char *msg;
} spm_case;

static const uint8_t spm_trunc_key[] = {0x0a, 0x03, 0x0a, 0x01, 'a', 0x80};
static const uint8_t spm_long_len[] = {0x0a, 0x10, 0x0a, 0x01, 'a'};
static const uint8_t spm_bad_type[] = {0x0a, 0x05, 0x0a, 0x01, 'a', 0x18, 0x09};
static const uint8_t spm_group[] = {0x0b};
static const uint8_t spm_no_piece[] = {0x0a, 0x02, 0x18, 0x01};
static const uint8_t spm_empty[] = {0x12, 0x00};
static const uint8_t spm_varint11[] = {0x0a, 0x0c, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
static const uint8_t spm_trunc_fixed[] = {0x0a, 0x04, 0x0a, 0x00, 0x15, 0x00};
static const spm_case spm_cases[] = {
    {spm_trunc_key, sizeof spm_trunc_key, "truncated field key"},
    {spm_long_len, sizeof spm_long_len, "length runs past the end"},
    {spm_bad_type, sizeof spm_bad_type, "has type 9, not 1..6"},
    {spm_group, sizeof spm_group, "unsupported wire type"},
    {spm_no_piece, sizeof spm_no_piece, "has no string"},
    {spm_empty, sizeof spm_empty, "0 pieces"},
    {spm_varint11, sizeof spm_varint11, "truncated varint"},
    {spm_trunc_fixed, sizeof spm_trunc_fixed, "truncated fixed-size value"},
};

START_TEST(test_spm_case)
{
    const spm_case *c = &spm_cases[_i];
    mr_spm_model *m = NULL;
    mr_error err;
    ck_assert_int_eq(mr_spm_parse(c->bytes, c->len, "bad.model", &m, &err), MR_EFORMAT);
    ck_assert_ptr_null(m);
    ck_assert_msg(strstr(err.msg, c->msg) && strstr(err.msg, "bad.model"), "case %d: %s", _i, err.msg);
}
END_TEST

/* Replay every file of a corpus directory through fn; they must not crash
 * (the sanitizer build catches memory errors); returns the count. */
static int replay(const char *sub, int spm)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/tests/corpus/%s", tu_srcdir(), sub);
    DIR *dh = opendir(dir);
    struct dirent *e;
    int n = 0;
    ck_assert_msg(dh != NULL, "no corpus at %s", dir);
    while ((e = readdir(dh))) {
        if (e->d_name[0] == '.')
            continue;
        size_t len;
        uint8_t *b = tu_read_file(tu_path("%s/%s", dir, e->d_name), &len);
        ck_assert_ptr_nonnull(b);
        mr_error err;
        if (spm) {
            mr_spm_model *m = NULL;
            mr_spm_parse(b, len, e->d_name, &m, &err);
            mr_spm_free(m);
        } else {
            mr_st_file *f = NULL;
            mr_st_open_mem(b, len, e->d_name, &f, &err);
            mr_st_close(f);
        }
        free(b);
        n++;
    }
    closedir(dh);
    return n;
}

START_TEST(test_corpus_replay)
{
    int a = replay("safetensors", 0), b = replay("spm", 1);
    fprintf(stderr, "corpus: %d safetensors and %d spm inputs replayed\n", a, b);
    ck_assert_int_gt(a, 0);
    ck_assert_int_gt(b, 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("safetensors");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_header_case, 0, (int)(sizeof cases / sizeof cases[0]));
    tcase_add_test(tc, test_header_length);
    tcase_add_test(tc, test_valid_roundtrip);
    tcase_add_test(tc, test_checkpoint);
    tcase_add_test(tc, test_spm_valid);
    tcase_add_loop_test(tc, test_spm_case, 0, (int)(sizeof spm_cases / sizeof spm_cases[0]));
    tcase_add_test(tc, test_corpus_replay);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
