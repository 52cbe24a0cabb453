/* test_gguf.c - the GGUF reader and model validation against a real
 * llama.cpp file and a corpus of malformed copies of it.
 *
 * tinymix-Q8_0.gguf (from $MOERUN_TESTDATA, default ../shared; exit 77 when
 * absent) is loaded once; gguf_builder's independent walker maps every field.
 * Each malformed copy is edited in place (same size, so later offsets stay
 * valid) or rebuilt with the builder, and must be rejected with its own
 * status AND a message naming the field: a rejection for the wrong reason is
 * a failure.  The file is also cut at every structural boundary (and one
 * byte either side); every cut must fail cleanly with MR_EFORMAT.
 *
 *   test_gguf                     run the suite
 *   test_gguf --write-seeds DIR   write the fuzzing seed corpus into DIR
 */
#define _POSIX_C_SOURCE 200809L /* strdup, mkstemp, fileno */

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf.h"
#include "gguf_write.h"
#include "moerun_keys.h"
#include "types.h"
#include "gguf_builder.h"
#include "model.h"

static char g_path[4096];     /* tinymix-Q8_0.gguf */
static char g_q4_path[4096];  /* tinymix-Q4_0.gguf */
static uint8_t *g_file;       /* its bytes */
static size_t g_len;
static gb_map g_map;          /* and its fields */

/* ================================================================ helpers */

/* Read a whole file into a malloc'd buffer; NULL if unreadable. */
static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    uint8_t *p = NULL;
    long n;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (p = malloc(n ? (size_t)n : 1)) && fread(p, 1, (size_t)n, f) == (size_t)n) {
        *len = (size_t)n;
    } else {
        free(p);
        p = NULL;
    }
    fclose(f);
    return p;
}

/* Write len bytes to a fresh temporary file; returns its malloc'd path. */
static char *write_temp(const void *p, size_t len)
{
    const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    size_t n = strlen(dir) + 32;
    char *path = malloc(n);
    ck_assert_ptr_nonnull(path);
    snprintf(path, n, "%s/test_gguf.XXXXXX", dir);
    int fd = mkstemp(path);
    ck_assert_msg(fd >= 0, "mkstemp: %s", strerror(errno));
    ck_assert_msg(len == 0 || write(fd, p, len) == (ssize_t)len, "short write");
    close(fd);
    return path;
}

/* Copy of the tinymix bytes (exactly g_len, so ASan sees any over-read). */
static uint8_t *file_copy(void)
{
    uint8_t *p = malloc(g_len);
    ck_assert_ptr_nonnull(p);
    memcpy(p, g_file, g_len);
    return p;
}

/* The map entry of a key / tensor of tinymix; the test fails if absent. */
static const gb_kv_loc *KV(const char *key)
{
    const gb_kv_loc *kv = gb_map_kv(&g_map, key);
    ck_assert_msg(kv != NULL, "tinymix has no key %s", key);
    return kv;
}

static const gb_tensor_loc *TN(const char *name)
{
    const gb_tensor_loc *t = gb_map_tensor(&g_map, name);
    ck_assert_msg(t != NULL, "tinymix has no tensor %s", name);
    return t;
}

/* Assert a failure is well formed: status s, code recorded, message that
 * starts with "NAME: " and contains both substrings (NULL: not checked). */
static void check_error(mr_status got, const mr_error *err, mr_status want, const char *name,
                        const char *sub1, const char *sub2, const char *what)
{
    ck_assert_msg(got == want, "%s: status %s, want %s (%s)", what, mr_status_name(got),
                  mr_status_name(want), err->msg);
    ck_assert_msg(err->code == got, "%s: err.code %d != status %d", what, err->code, got);
    ck_assert_msg(err->msg[0] != '\0', "%s: empty message", what);
    size_t nl = strlen(name);
    ck_assert_msg(strncmp(err->msg, name, nl) == 0 && strncmp(err->msg + nl, ": ", 2) == 0,
                  "%s: message does not start with the file name: %s", what, err->msg);
    ck_assert_msg(!sub1 || strstr(err->msg, sub1), "%s: message lacks \"%s\": %s", what, sub1,
                  err->msg);
    ck_assert_msg(!sub2 || strstr(err->msg, sub2), "%s: message lacks \"%s\": %s", what, sub2,
                  err->msg);
}

/* Parse a built image in memory; *g is NULL on failure. */
static mr_status open_built(const gb_bytes *img, mr_gguf **g, mr_error *err)
{
    mr_error_clear(err);
    return mr_gguf_open_mem(img->data, img->len, "built.gguf", g, err);
}

/* Serialise b into img, failing the test if the builder failed. */
static void serialise(gguf_builder *b, gb_bytes *img)
{
    ck_assert_msg(gb_serialise(b, img) == 0, "builder failed");
}

/* ================================================================ good files */

/* The reader agrees with the independent walker on every KV and tensor,
 * and the typed getters return tinymix's known values. */
START_TEST(test_good_file_matches_map)
{
    mr_gguf *g;
    mr_error err;
    mr_error_clear(&err);
    ck_assert_int_eq(mr_gguf_open_mem(g_file, g_len, "tinymix.gguf", &g, &err), MR_OK);
    ck_assert_uint_eq(g->version, 3);
    ck_assert_uint_eq(g->n_tensors, 43);
    ck_assert_uint_eq(g->n_kv, g_map.n_kv);
    ck_assert_uint_eq(g->alignment, 32);
    ck_assert_uint_eq(g->file_size, g_len);
    ck_assert_uint_eq(g->data_offset, g_map.data_start);
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const gb_kv_loc *m = &g_map.kvs[i];
        ck_assert_str_eq(g->kv[i].key, m->key);
        ck_assert_uint_eq(g->kv[i].offset, m->key_len_off);
        ck_assert_uint_eq(g->kv[i].val.offset, m->value_off);
        ck_assert_uint_eq(g->kv[i].val.type, m->type);
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const mr_gguf_tensor *t = &g->tensors[i];
        const gb_tensor_loc *m = &g_map.tensors[i];
        ck_assert_str_eq(t->name, m->name);
        ck_assert_uint_eq(t->n_dims, m->n_dims);
        for (int d = 0; d < 4; d++)
            ck_assert_uint_eq(t->ne[d], m->ne[d]);
        ck_assert_uint_eq(t->type, m->type);
        ck_assert_uint_eq(t->rel_offset, m->rel_offset);
        ck_assert_uint_eq(t->info_offset, m->name_len_off);
        ck_assert_uint_eq(t->nbytes, m->nbytes);
        ck_assert_uint_eq(t->file_offset, g_map.data_start + m->rel_offset);
        ck_assert_ptr_eq(t->data, g_file + t->file_offset);
    }
    /* known keys, through the typed getters */
    mr_str s;
    uint32_t u = 0;
    int b = -1;
    const mr_gguf_value *arr;
    ck_assert_int_eq(mr_gguf_get_str(g, "general.architecture", &s, &err), MR_OK);
    ck_assert(s.len == 5 && memcmp(s.ptr, "llama", 5) == 0);
    ck_assert_int_eq(mr_gguf_get_u32(g, "llama.block_count", &u, &err), MR_OK);
    ck_assert_uint_eq(u, 4);
    ck_assert_int_eq(mr_gguf_get_u32(g, "llama.expert_count", &u, &err), MR_OK);
    ck_assert_uint_eq(u, 8);
    ck_assert_int_eq(mr_gguf_get_bool_opt(g, "tokenizer.ggml.add_bos_token", &b, &err), MR_OK);
    ck_assert_int_eq(b, 1);
    ck_assert_int_eq(mr_gguf_get_arr(g, "tokenizer.ggml.tokens", MR_GGUF_STRING, 32000, &arr, &err),
                     MR_OK);
    const uint8_t *raw0 = g_file + KV("tokenizer.ggml.tokens")->value_off + 12;
    ck_assert_uint_eq(arr->v.arr.strs[0].len, gb_rd_u64(raw0));
    ck_assert(memcmp(arr->v.arr.strs[0].ptr, raw0 + 8, arr->v.arr.strs[0].len) == 0);
    ck_assert_int_eq(mr_gguf_get_arr(g, "tokenizer.ggml.scores", MR_GGUF_FLOAT32, 32000, &arr, &err),
                     MR_OK);
    float f;
    memcpy(&f, (uint32_t[]){gb_rd_u32(g_file + KV("tokenizer.ggml.scores")->value_off + 12 + 4 * 7)}, 4);
    ck_assert(mr_gguf_arr_f32(arr, 7) == f);
    ck_assert_int_eq(mr_gguf_get_u32(g, "no.such.key", &u, &err), MR_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "no.such.key"));
    ck_assert_ptr_nonnull(mr_gguf_tensor_find(g, "blk.3.attn_v.weight"));
    ck_assert_ptr_null(mr_gguf_tensor_find(g, "blk.4.attn_v.weight"));
    mr_gguf_close(g);
}
END_TEST

/* The model accepts tinymix (memory and mmap paths, Q8_0 and Q4_0). */
START_TEST(test_good_file_model)
{
    mr_gguf *g;
    mr_model *m;
    mr_error err;
    mr_error_clear(&err);
    ck_assert_int_eq(mr_gguf_open_mem(g_file, g_len, "tinymix.gguf", &g, &err), MR_OK);
    ck_assert_msg(mr_model_from_gguf(g, &m, &err) == MR_OK, "%s", err.msg);
    const mr_hparams *hp = &m->hp;
    ck_assert_uint_eq(hp->n_vocab, 32000);
    ck_assert_uint_eq(hp->n_embd, 256);
    ck_assert_uint_eq(hp->n_layer, 4);
    ck_assert_uint_eq(hp->n_ff, 512);
    ck_assert_uint_eq(hp->n_head, 8);
    ck_assert_uint_eq(hp->n_head_kv, 2);
    ck_assert_uint_eq(hp->head_dim, 32);
    ck_assert_uint_eq(hp->n_expert, 8);
    ck_assert_uint_eq(hp->n_expert_used, 2);
    ck_assert_int_eq(hp->is_moe, 1);
    ck_assert_int_eq(m->tied_output, 0);
    ck_assert_ptr_null(m->layers[0].gate.data);
    ck_assert_uint_eq(mr_expert_slice_bytes(&m->layers[0].gate), 512ull * 256 / 32 * 34);
    mr_model_free(m);
    /* the same through the file path (mmap) */
    ck_assert_msg(mr_model_load(g_path, &m, &err) == MR_OK, "%s", err.msg);
    mr_model_free(m);
    /* and the Q4_0 sibling, when present */
    if (access(g_q4_path, R_OK) == 0) {
        ck_assert_msg(mr_model_load(g_q4_path, &m, &err) == MR_OK, "%s", err.msg);
        ck_assert_uint_eq(m->layers[3].down.type, 2);
        mr_model_free(m);
    }
}
END_TEST

/* The builder re-creates tinymix byte for byte from the map. */
START_TEST(test_builder_round_trip)
{
    gguf_builder *b = gb_new();
    gb_bytes img = {0};
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(gb_import(b, g_file, &g_map), 0);
    serialise(b, &img);
    ck_assert_uint_eq(img.len, g_len);
    ck_assert_msg(memcmp(img.data, g_file, g_len) == 0, "rebuilt image differs");
    gb_bytes_free(&img);
    gb_free(b);
}
END_TEST

/* ================================================================ truncation */

/* Cut tinymix at every structural boundary b and at b - 1, b + 1 (below the
 * end of the last tensor's data): each cut must fail with MR_EFORMAT,
 * name the field at the cut (or a header count the cut made impossible),
 * and point at an offset inside the cut file. */
START_TEST(test_truncations)
{
    uint64_t *bounds;
    size_t nb = gb_map_boundaries(&g_map, &bounds);
    ck_assert_uint_gt(nb, 300);
    size_t cuts = 0, bad = 0;
    uint64_t last = UINT64_MAX;
    for (size_t i = 0; i < nb; i++) {
        for (int k = -1; k <= 1; k++) {
            if ((k < 0 && bounds[i] == 0) || bounds[i] + k >= g_map.data_end)
                continue;
            uint64_t cut = bounds[i] + k;
            if (last != UINT64_MAX && cut <= last)
                continue;
            last = cut;
            /* an exact-size copy, so ASan catches a read past the cut */
            uint8_t *p = malloc(cut ? cut : 1);
            ck_assert_ptr_nonnull(p);
            memcpy(p, g_file, cut);
            mr_gguf *g = (mr_gguf *)1;
            mr_error err;
            mr_error_clear(&err);
            mr_status s = mr_gguf_open_mem(p, cut, "cut.gguf", &g, &err);
            const char *label = gb_map_label_at(&g_map, cut);
            int ok = s == MR_EFORMAT && err.code == s && g == NULL &&
                     strncmp(err.msg, "cut.gguf: ", 10) == 0 && err.offset <= cut &&
                     label && (strstr(err.msg, label) || strstr(err.msg, "header.n_kv") ||
                               strstr(err.msg, "header.n_tensors"));
            if (s == MR_OK)
                mr_gguf_close(g);
            if (!ok && bad++ < 20)
                fprintf(stderr, "cut at %llu (field %s): status %s: %s\n",
                        (unsigned long long)cut, label ? label : "?", mr_status_name(s), err.msg);
            free(p);
            cuts++;
        }
    }
    free(bounds);
    fprintf(stderr, "truncation: %zu cuts at %zu boundaries, %zu bad\n", cuts, nb, bad);
    ck_assert_msg(bad == 0, "%zu of %zu truncations were not rejected cleanly", bad, cuts);
}
END_TEST

/* ================================================================ mutations */

typedef struct {
    uint8_t *p; /* the mutated image (malloc'd, exactly len bytes) */
    size_t len;
    int check_off;    /* set by the mutation: err.offset must equal want_off */
    uint64_t want_off;
    char sub[256];    /* set by the mutation: one more expected substring */
} mcase;

enum { GGUF_FAILS, MODEL_FAILS, ACCEPTED };

typedef struct {
    const char *name;
    void (*fn)(mcase *c);
    int stage;        /* which call must fail (or ACCEPTED: neither) */
    mr_status want;
    const char *sub1, *sub2;
    int via_file;     /* also through mr_gguf_open on a temp file */
} mutation;

/* Small editing helpers on the current case. */
static void set_u32(mcase *c, uint64_t off, uint32_t v) { gb_wr_u32(c->p + off, v); }
static void set_u64(mcase *c, uint64_t off, uint64_t v) { gb_wr_u64(c->p + off, v); }
static void expect_off(mcase *c, uint64_t off) { c->check_off = 1; c->want_off = off; }

/* Rename a tensor or key in place (the new name must have the same length). */
static void rename_at(mcase *c, uint64_t str_off, const char *now)
{
    ck_assert_uint_eq(gb_rd_u64(c->p + str_off), strlen(now));
    memcpy(c->p + str_off + 8, now, strlen(now));
}

/* Replace the image by tinymix imported into a builder, edited, rebuilt. */
static void rebuild(mcase *c, void (*edit)(gguf_builder *b))
{
    gguf_builder *b = gb_new();
    gb_bytes img = {0};
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(gb_import(b, g_file, &g_map), 0);
    edit(b);
    serialise(b, &img);
    gb_free(b);
    free(c->p);
    c->p = img.data; /* exactly sized: shrink the buffer to its length */
    c->len = img.len;
    uint8_t *q = realloc(c->p, c->len);
    ck_assert_ptr_nonnull(q);
    c->p = q;
}

/* Each MUT(name) edits the case in place (or rebuilds it) and may record
 * the exact error offset or one more expected substring. */
#define MUT(fn) static void fn(mcase *c)
#define KVV(key) (KV(key)->value_off)
#define TO(name, field) (TN(name)->field)

/* header */
MUT(m_magic) { c->p[3] = 'E'; expect_off(c, 0); }
MUT(m_version7) { set_u32(c, 4, 7); expect_off(c, 4); }
MUT(m_version1) { set_u32(c, 4, 1); expect_off(c, 4); }
MUT(m_version0) { set_u32(c, 4, 0); }
MUT(m_version_be) { memcpy(c->p + 4, "\0\0\0\3", 4); expect_off(c, 4); }
MUT(m_version2) { set_u32(c, 4, 2); }
MUT(m_ntensors_huge) { set_u64(c, 8, 1ull << 63); expect_off(c, 8); }
MUT(m_ntensors_max) { set_u64(c, 8, UINT64_MAX); expect_off(c, 8); }
MUT(m_nkv_huge) { set_u64(c, 16, 1ull << 63); expect_off(c, 16); }
MUT(m_ntensors_plus1) { set_u64(c, 8, g_map.n_tensors + 1); }
MUT(m_nkv_minus1) { set_u64(c, 16, g_map.n_kv - 1); }
MUT(m_nkv_plus1) { set_u64(c, 16, g_map.n_kv + 1); }
/* KVs */
MUT(m_key_len_huge) { set_u64(c, g_map.kvs[0].key_len_off, 1ull << 62); expect_off(c, 24); }
MUT(m_key_len_zero) { set_u64(c, g_map.kvs[0].key_len_off, 0); expect_off(c, 24); }
MUT(m_key_nul) { c->p[g_map.kvs[0].key_off + 3] = 0; expect_off(c, 24); }
MUT(m_key_dup) { rename_at(c, g_map.kvs[1].key_len_off, "general.name"); expect_off(c, g_map.kvs[2].key_len_off); }
MUT(m_vtype_13) { set_u32(c, KV("llama.block_count")->type_off, 13); expect_off(c, KV("llama.block_count")->type_off); }
MUT(m_vtype_max) { set_u32(c, KV("general.name")->type_off, UINT32_MAX); }
MUT(m_str_past_end) { set_u64(c, KVV("general.name"), 1ull << 40); expect_off(c, KVV("general.name")); }
MUT(m_str_one_past) { set_u64(c, KVV("general.name"), g_len - (KVV("general.name") + 8) + 1); }
MUT(m_arr_etype) { set_u32(c, KVV("tokenizer.ggml.tokens"), 13); expect_off(c, KVV("tokenizer.ggml.tokens")); }
MUT(m_arr_count_huge) { set_u64(c, KVV("tokenizer.ggml.tokens") + 4, 1ull << 62); }
MUT(m_arr_count_plus1) { set_u64(c, KVV("tokenizer.ggml.scores") + 4, KV("tokenizer.ggml.scores")->arr_n + 1); }
MUT(m_bool_2) { c->p[KVV("tokenizer.ggml.add_bos_token")] = 2; expect_off(c, KVV("tokenizer.ggml.add_bos_token")); }
/* tensor infos */
MUT(m_tname_len0) { set_u64(c, g_map.tensors[0].name_len_off, 0); }
MUT(m_tname_nul) { c->p[g_map.tensors[0].name_off + 2] = 0; }
MUT(m_tname_huge) { set_u64(c, g_map.tensors[0].name_len_off, UINT64_MAX); }
MUT(m_ndims0) { set_u32(c, TO("blk.0.attn_q.weight", n_dims_off), 0); expect_off(c, TO("blk.0.attn_q.weight", n_dims_off)); }
MUT(m_ndims5) { set_u32(c, TO("blk.0.attn_q.weight", n_dims_off), 5); }
MUT(m_ne_overflow) {
    set_u64(c, TO("token_embd.weight", ne_off[0]), 1ull << 62);
    set_u64(c, TO("token_embd.weight", ne_off[1]), 1ull << 62);
    expect_off(c, TO("token_embd.weight", ne_off[1]));
}
MUT(m_ne1_zero) { set_u64(c, TO("blk.0.attn_q.weight", ne_off[1]), 0); expect_off(c, TO("blk.0.attn_q.weight", ne_off[1])); }
MUT(m_ne0_zero) { set_u64(c, TO("blk.1.attn_k.weight", ne_off[0]), 0); }
MUT(m_type_99) { set_u32(c, TO("blk.0.attn_k.weight", type_off), 99); expect_off(c, TO("blk.0.attn_k.weight", type_off)); }
MUT(m_type_4) { set_u32(c, TO("blk.0.attn_k.weight", type_off), 4); }
MUT(m_row_not_block) { set_u64(c, TO("blk.0.attn_q.weight", ne_off[0]), 255); }
/* A 1-D F32 tensor of 2^62 + 1 elements: 4 * ne wraps to 4 bytes. */
MUT(m_nbytes_wrap) { set_u64(c, TO("output_norm.weight", ne_off[0]), (1ull << 62) + 1); }
MUT(m_misaligned) {
    set_u64(c, TO("blk.0.ffn_gate_exps.weight", offset_off), TO("blk.0.ffn_gate_exps.weight", rel_offset) + 1);
    expect_off(c, TO("blk.0.ffn_gate_exps.weight", offset_off));
}
MUT(m_overlap_equal) { set_u64(c, TO("blk.0.attn_q.weight", offset_off), TO("blk.0.attn_output.weight", rel_offset)); }
MUT(m_overlap_inside) { set_u64(c, TO("blk.0.attn_v.weight", offset_off), TO("blk.0.attn_k.weight", rel_offset) + 32); }
MUT(m_offset_end) { set_u64(c, TO("output_norm.weight", offset_off), g_len - g_map.data_start); }
MUT(m_offset_huge) { set_u64(c, TO("output_norm.weight", offset_off), 1ull << 63); }
MUT(m_offset_wrap) { set_u64(c, TO("output_norm.weight", offset_off), UINT64_MAX - 31); }
MUT(m_type_f32_big) { set_u32(c, TO("output.weight", type_off), 0); }
MUT(m_type_f16_overlap) { set_u32(c, TO("blk.0.attn_q.weight", type_off), 1); }
MUT(m_tensor_dup) { rename_at(c, TO("blk.0.attn_k.weight", name_len_off), "blk.0.attn_q.weight"); }
/* alignment (rebuilt: tinymix has no general.alignment) */
static void e_align0(gguf_builder *b) { gb_kv_u32(b, "general.alignment", 0); }
static void e_align3(gguf_builder *b) { gb_kv_u32(b, "general.alignment", 3); }
static void e_align_u64(gguf_builder *b) { gb_kv_u64(b, "general.alignment", 32); }
static void e_align_2m(gguf_builder *b) { gb_kv_u32(b, "general.alignment", 2u << 20); }
static void e_align64(gguf_builder *b) { gb_kv_u32(b, "general.alignment", 64); b->alignment = 64; }
/* 2048: keep tinymix's offsets (multiples of 1024 only) */
static void e_align2048(gguf_builder *b)
{
    gb_kv_u32(b, "general.alignment", 2048);
    b->alignment = 2048;
    for (uint64_t i = 0; i < g_map.n_tensors; i++)
        gb_tensor_set_offset(b, g_map.tensors[i].name, g_map.tensors[i].rel_offset);
}
MUT(m_align0) { rebuild(c, e_align0); }
MUT(m_align3) { rebuild(c, e_align3); }
MUT(m_align_u64) { rebuild(c, e_align_u64); }
MUT(m_align_2m) { rebuild(c, e_align_2m); }
MUT(m_align64) { rebuild(c, e_align64); }
MUT(m_align2048) {
    rebuild(c, e_align2048);
    for (uint64_t i = 0; i < g_map.n_tensors; i++)
        if (g_map.tensors[i].rel_offset % 2048) {
            snprintf(c->sub, sizeof c->sub, "tensor '%s' offset", g_map.tensors[i].name);
            break;
        }
}
/* model level */
MUT(m_embd_128) { set_u32(c, KVV("llama.embedding_length"), 128); }
MUT(m_embd_int32) { set_u32(c, KV("llama.embedding_length")->type_off, MR_GGUF_INT32); }
MUT(m_embd_float) { set_u32(c, KV("llama.embedding_length")->type_off, MR_GGUF_FLOAT32); }
MUT(m_attn_k_ne1) { set_u64(c, TO("blk.0.attn_k.weight", ne_off[1]), 32); }
MUT(m_down_ne2) { set_u64(c, TO("blk.2.ffn_down_exps.weight", ne_off[2]), 4); }
static void e_gpt2(gguf_builder *b) { gb_kv_str(b, "general.architecture", "gpt2"); }
MUT(m_arch_gpt2) { rebuild(c, e_gpt2); }
MUT(m_missing_q) { rename_at(c, TO("blk.3.attn_q.weight", name_len_off), "blk.3.attn_x.weight"); }
static void e_no_out_norm(gguf_builder *b) { gb_tensor_remove(b, "output_norm.weight"); }
MUT(m_missing_out_norm) { rebuild(c, e_no_out_norm); }
static void e_no_output(gguf_builder *b) { gb_tensor_remove(b, "output.weight"); }
MUT(m_tied_output) { rebuild(c, e_no_output); }
static void e_no_embd_kv(gguf_builder *b) { gb_kv_remove(b, "llama.embedding_length"); }
MUT(m_missing_embd_kv) { rebuild(c, e_no_embd_kv); }
MUT(m_used_gt_count) { set_u32(c, KVV("llama.expert_used_count"), 9); }
MUT(m_expert_600) { set_u32(c, KVV("llama.expert_count"), 600); }
MUT(m_expert_0) { set_u32(c, KVV("llama.expert_count"), 0); }
MUT(m_vocab_kv) { set_u32(c, KVV("llama.vocab_size"), 31999); }
MUT(m_block_count5) { set_u32(c, KVV("llama.block_count"), 5); }
MUT(m_head_kv3) { set_u32(c, KVV("llama.attention.head_count_kv"), 3); }
MUT(m_rope_partial) { set_u32(c, KVV("llama.rope.dimension_count"), 15); }
MUT(m_rope_wide) { set_u32(c, KVV("llama.rope.dimension_count"), 4096); }
MUT(m_norm_tq2_0) { set_u32(c, TO("output_norm.weight", type_off), 35); }

static const mutation mutations[] = {
    /* header */
    {"bad magic", m_magic, GGUF_FAILS, MR_EFORMAT, "header.magic", "not a GGUF file", 1},
    {"version 7", m_version7, GGUF_FAILS, MR_EUNSUPPORTED, "header.version", "unknown GGUF version 7", 1},
    {"version 1", m_version1, GGUF_FAILS, MR_EUNSUPPORTED, "header.version", "v1", 0},
    {"version 0", m_version0, GGUF_FAILS, MR_EUNSUPPORTED, "header.version", "version 0", 0},
    {"big-endian version", m_version_be, GGUF_FAILS, MR_EUNSUPPORTED, "header.version", "big-endian", 0},
    {"version 2 accepted", m_version2, ACCEPTED, MR_OK, NULL, NULL, 0},
    {"n_tensors 2^63", m_ntensors_huge, GGUF_FAILS, MR_EFORMAT, "header.n_tensors at offset 8", "tensors cannot fit", 1},
    {"n_tensors 2^64-1", m_ntensors_max, GGUF_FAILS, MR_EFORMAT, "header.n_tensors at offset 8", NULL, 0},
    {"n_kv 2^63", m_nkv_huge, GGUF_FAILS, MR_EFORMAT, "header.n_kv at offset 16", "key-value pairs cannot fit", 0},
    {"n_tensors + 1", m_ntensors_plus1, GGUF_FAILS, MR_EFORMAT, "tensor[43].name", NULL, 0},
    {"n_kv - 1", m_nkv_minus1, GGUF_FAILS, MR_EFORMAT, "tensor 'tokenizer.ggml.add_eos_token' n_dims", NULL, 0},
    {"n_kv + 1", m_nkv_plus1, GGUF_FAILS, MR_EFORMAT, "tensor[0].name", "past the end", 0},
    /* key-value pairs */
    {"key length 2^62", m_key_len_huge, GGUF_FAILS, MR_EFORMAT, "kv[0].key at offset 24", "past the end", 1},
    {"key length 0", m_key_len_zero, GGUF_FAILS, MR_EFORMAT, "kv[0].key", "empty", 0},
    {"key with NUL", m_key_nul, GGUF_FAILS, MR_EFORMAT, "kv[0].key", "NUL", 0},
    {"duplicate key", m_key_dup, GGUF_FAILS, MR_EFORMAT, "kv[2].key", "duplicate key 'general.name'", 0},
    {"value type 13", m_vtype_13, GGUF_FAILS, MR_EFORMAT, "kv 'llama.block_count' type", "unknown value type 13", 1},
    {"value type 2^32-1", m_vtype_max, GGUF_FAILS, MR_EFORMAT, "kv 'general.name' type", "unknown value type", 0},
    {"string length 2^40", m_str_past_end, GGUF_FAILS, MR_EFORMAT, "kv 'general.name' value", "past the end", 0},
    {"string one byte past the end", m_str_one_past, GGUF_FAILS, MR_EFORMAT, "kv 'general.name' value", "past the end", 0},
    {"array element type 13", m_arr_etype, GGUF_FAILS, MR_EFORMAT, "kv 'tokenizer.ggml.tokens' value", "unknown array element type 13", 0},
    {"array count 2^62", m_arr_count_huge, GGUF_FAILS, MR_EFORMAT, "kv 'tokenizer.ggml.tokens' value", "does not fit", 0},
    {"array count + 1", m_arr_count_plus1, GGUF_FAILS, MR_EFORMAT, "kv[24].key", "past the end", 0},
    {"bool value 2", m_bool_2, GGUF_FAILS, MR_EFORMAT, "kv 'tokenizer.ggml.add_bos_token' value", "bool value 2", 1},
    /* tensor infos */
    {"tensor name length 0", m_tname_len0, GGUF_FAILS, MR_EFORMAT, "tensor[0].name", "empty", 0},
    {"tensor name with NUL", m_tname_nul, GGUF_FAILS, MR_EFORMAT, "tensor[0].name", "NUL", 0},
    {"tensor name length 2^64-1", m_tname_huge, GGUF_FAILS, MR_EFORMAT, "tensor[0].name", "past the end", 0},
    {"n_dims 0", m_ndims0, GGUF_FAILS, MR_EFORMAT, "tensor 'blk.0.attn_q.weight' n_dims", "0 dimensions", 1},
    {"n_dims 5", m_ndims5, GGUF_FAILS, MR_EFORMAT, "tensor 'blk.0.attn_q.weight' n_dims", "5 dimensions", 0},
    {"ne 2^62 twice", m_ne_overflow, GGUF_FAILS, MR_EFORMAT, "tensor 'token_embd.weight' ne[1]", "overflow", 1},
    {"ne[1] 0", m_ne1_zero, GGUF_FAILS, MR_EFORMAT, "tensor 'blk.0.attn_q.weight' ne[1]", "zero", 0},
    {"ne[0] 0", m_ne0_zero, GGUF_FAILS, MR_EFORMAT, "tensor 'blk.1.attn_k.weight' ne[0]", "zero", 0},
    {"ggml type 99", m_type_99, GGUF_FAILS, MR_EFORMAT, "tensor 'blk.0.attn_k.weight' type", "unknown ggml type 99", 1},
    {"ggml type 4 (removed)", m_type_4, GGUF_FAILS, MR_EFORMAT, "tensor 'blk.0.attn_k.weight' type", "unknown ggml type 4", 0},
    {"row not a block multiple", m_row_not_block, GGUF_FAILS, MR_EFORMAT, "tensor 'blk.0.attn_q.weight' type", "block size 32", 0},
    {"F32 byte size wraps", m_nbytes_wrap, GGUF_FAILS, MR_EFORMAT, "tensor 'output_norm.weight'", NULL, 0},
    {"misaligned offset", m_misaligned, GGUF_FAILS, MR_EFORMAT, "tensor 'blk.0.ffn_gate_exps.weight' offset", "alignment 32", 1},
    {"overlap: equal offsets", m_overlap_equal, GGUF_FAILS, MR_EFORMAT, "' offset", "overlaps tensor 'blk.0.attn_", 0},
    {"overlap: inside another", m_overlap_inside, GGUF_FAILS, MR_EFORMAT, "tensor 'blk.0.attn_v.weight' offset", "overlaps tensor 'blk.0.attn_k.weight'", 1},
    {"offset at the end of the file", m_offset_end, GGUF_FAILS, MR_EFORMAT, "tensor 'output_norm.weight' offset", "outside the file", 0},
    {"offset 2^63", m_offset_huge, GGUF_FAILS, MR_EFORMAT, "tensor 'output_norm.weight' offset", "outside the file", 0},
    {"offset + size wraps", m_offset_wrap, GGUF_FAILS, MR_EFORMAT, "tensor 'output_norm.weight' offset", "outside the file", 0},
    {"type Q8_0 -> F32 past the end", m_type_f32_big, GGUF_FAILS, MR_EFORMAT, "tensor 'output.weight' offset", "outside the file", 0},
    {"type Q8_0 -> F16 overlaps", m_type_f16_overlap, GGUF_FAILS, MR_EFORMAT, "tensor 'blk.0.attn_v.weight' offset", "overlaps tensor 'blk.0.attn_q.weight'", 0},
    {"duplicate tensor name", m_tensor_dup, GGUF_FAILS, MR_EFORMAT, "].name", "duplicate tensor 'blk.0.attn_q.weight'", 0},
    /* alignment */
    {"alignment 0", m_align0, GGUF_FAILS, MR_EFORMAT, "general.alignment", "power of two", 1},
    {"alignment 3", m_align3, GGUF_FAILS, MR_EFORMAT, "general.alignment", "power of two", 0},
    {"alignment as uint64", m_align_u64, GGUF_FAILS, MR_EFORMAT, "general.alignment", "uint32", 0},
    {"alignment 2 MiB", m_align_2m, GGUF_FAILS, MR_EFORMAT, "general.alignment", NULL, 0},
    {"alignment 64 accepted", m_align64, ACCEPTED, MR_OK, NULL, NULL, 0},
    {"alignment 2048 vs offsets", m_align2048, GGUF_FAILS, MR_EFORMAT, "alignment 2048", NULL, 0},
    /* the model against its hyperparameters */
    {"embedding_length 128", m_embd_128, MODEL_FAILS, MR_EFORMAT, "token_embd.weight", "contradicts", 1},
    {"embedding_length as int32", m_embd_int32, ACCEPTED, MR_OK, NULL, NULL, 0},
    {"embedding_length as float32", m_embd_float, MODEL_FAILS, MR_EFORMAT, "llama.embedding_length", "float32", 0},
    {"attn_k ne[1] 32", m_attn_k_ne1, MODEL_FAILS, MR_EFORMAT, "blk.0.attn_k.weight", "contradicts", 0},
    {"ffn_down_exps ne[2] 4", m_down_ne2, MODEL_FAILS, MR_EFORMAT, "blk.2.ffn_down_exps.weight", "contradicts", 0},
    {"architecture gpt2", m_arch_gpt2, MODEL_FAILS, MR_EUNSUPPORTED, "general.architecture", "'gpt2'", 1},
    {"missing blk.3.attn_q", m_missing_q, MODEL_FAILS, MR_EFORMAT, "blk.3.attn_q.weight", "missing", 0},
    {"missing output_norm", m_missing_out_norm, MODEL_FAILS, MR_EFORMAT, "output_norm.weight", "missing", 0},
    {"no output.weight: tied", m_tied_output, ACCEPTED, MR_OK, NULL, NULL, 0},
    {"missing embedding_length", m_missing_embd_kv, MODEL_FAILS, MR_EFORMAT, "llama.embedding_length", "missing", 0},
    {"expert_used_count > expert_count", m_used_gt_count, MODEL_FAILS, MR_EFORMAT, "llama.expert_used_count", "9 experts per token out of 8", 0},
    {"expert_count 600", m_expert_600, MODEL_FAILS, MR_EFORMAT, "llama.expert_count", "600", 0},
    {"expert_count 0: dense names", m_expert_0, MODEL_FAILS, MR_EFORMAT, "blk.0.ffn_gate.weight", "missing", 0},
    {"vocab_size 31999", m_vocab_kv, MODEL_FAILS, MR_EFORMAT, "llama.vocab_size", "32000", 0},
    {"block_count 5", m_block_count5, MODEL_FAILS, MR_EFORMAT, "blk.4.attn_norm.weight", "missing", 0},
    {"head_count_kv 3", m_head_kv3, MODEL_FAILS, MR_EFORMAT, "llama.attention.head_count_kv", "divide", 0},
    {"odd rope dimensions", m_rope_partial, MODEL_FAILS, MR_EFORMAT, "llama.rope.dimension_count", "15 rotated", 0},
    {"rope wider than a head", m_rope_wide, MODEL_FAILS, MR_EFORMAT, "llama.rope.dimension_count", "4096 rotated", 0},
    {"norm as TQ2_0", m_norm_tq2_0, MODEL_FAILS, MR_EUNSUPPORTED, "output_norm.weight", "TQ2_0", 0},
};
#define N_MUTATIONS ((int)(sizeof mutations / sizeof mutations[0]))

/* Run one mutation through mr_gguf_open_mem (+ mr_model_from_gguf), and
 * through mr_gguf_open on a temp file when flagged. */
START_TEST(test_mutation)
{
    const mutation *mu = &mutations[_i];
    mcase c = {file_copy(), g_len, 0, 0, ""};
    mu->fn(&c);
    mr_gguf *g = (mr_gguf *)1;
    mr_model *m = NULL;
    mr_error err;
    mr_error_clear(&err);
    mr_status s = mr_gguf_open_mem(c.p, c.len, "mut.gguf", &g, &err);
    if (mu->stage == GGUF_FAILS) {
        check_error(s, &err, mu->want, "mut.gguf", mu->sub1, mu->sub2, mu->name);
        ck_assert_msg(g == NULL, "%s: *out not NULL on failure", mu->name);
    } else {
        ck_assert_msg(s == MR_OK, "%s: the reader rejected it: %s", mu->name, err.msg);
        s = mr_model_from_gguf(g, &m, &err);
        if (mu->stage == MODEL_FAILS) {
            check_error(s, &err, mu->want, "mut.gguf", mu->sub1, mu->sub2, mu->name);
            ck_assert_ptr_null(m);
        } else {
            ck_assert_msg(s == MR_OK, "%s: the model was rejected: %s", mu->name, err.msg);
            mr_model_free(m);
        }
    }
    if (getenv("MOERUN_TEST_VERBOSE"))
        fprintf(stderr, "%-34s %-11s %s\n", mu->name, mr_status_name(s), err.msg);
    if (c.sub[0])
        ck_assert_msg(strstr(err.msg, c.sub), "%s: message lacks \"%s\": %s", mu->name, c.sub,
                      err.msg);
    if (c.check_off)
        ck_assert_msg(err.offset == c.want_off, "%s: error offset %llu, want %llu (%s)",
                      mu->name, (unsigned long long)err.offset,
                      (unsigned long long)c.want_off, err.msg);
    if (mu->via_file) {
        /* the mmap path must give the same verdict and the same message */
        char *path = write_temp(c.p, c.len);
        mr_error ferr;
        mr_error_clear(&ferr);
        mr_status fs = mr_gguf_open(path, &g, &ferr);
        if (fs == MR_OK && mu->stage != GGUF_FAILS) {
            fs = mr_model_from_gguf(g, &m, &ferr);
            if (fs == MR_OK)
                mr_model_free(m);
        } else if (fs == MR_OK) {
            mr_gguf_close(g);
        }
        unlink(path);
        ck_assert_msg(fs == s, "%s: mmap path status %s, memory path %s", mu->name,
                      mr_status_name(fs), mr_status_name(s));
        const char *tail = strchr(err.msg, ':'), *ftail = ferr.msg + strlen(path);
        ck_assert_msg(s == MR_OK || (strncmp(ferr.msg, path, strlen(path)) == 0 && tail &&
                                     strcmp(tail, ftail) == 0),
                      "%s: messages differ: '%s' vs '%s'", mu->name, err.msg, ferr.msg);
        free(path);
    }
    free(c.p);
}
END_TEST

/* ================================================================ file path */

/* Open bytes through a temp file with mr_gguf_open. */
static mr_status open_as_file(const void *p, size_t len, mr_error *err, char **path_out)
{
    char *path = write_temp(p, len);
    mr_gguf *g;
    mr_error_clear(err);
    mr_status s = mr_gguf_open(path, &g, err);
    if (s == MR_OK)
        mr_gguf_close(g);
    else
        ck_assert_ptr_null(g);
    unlink(path);
    *path_out = path;
    return s;
}

/* mr_gguf_open on files: empty, tiny, cut, missing, not regular. */
START_TEST(test_file_path_errors)
{
    mr_error err;
    char *path;
    /* empty and tiny files */
    mr_status s = open_as_file("", 0, &err, &path);
    check_error(s, &err, MR_EFORMAT, path, "header", "0 bytes", "empty file");
    free(path);
    s = open_as_file(g_file, 10, &err, &path);
    check_error(s, &err, MR_EFORMAT, path, "header", "10 bytes", "10-byte file");
    free(path);
    s = open_as_file(g_file, 24, &err, &path);
    check_error(s, &err, MR_EFORMAT, path, "header.n_", "cannot fit", "header only");
    free(path);
    /* cut at the start of the data, and one byte short of the end */
    s = open_as_file(g_file, g_map.data_start, &err, &path);
    check_error(s, &err, MR_EFORMAT, path, "tensor 'token_embd.weight' offset", "outside", "no data");
    free(path);
    s = open_as_file(g_file, g_len - 1, &err, &path);
    check_error(s, &err, MR_EFORMAT, path, "tensor 'output_norm.weight' offset", "outside", "last byte");
    free(path);
    /* a missing file and a directory */
    mr_gguf *g;
    mr_error_clear(&err);
    ck_assert_int_eq(mr_gguf_open("/nonexistent/x.gguf", &g, &err), MR_EIO);
    ck_assert_ptr_null(g);
    ck_assert_ptr_nonnull(strstr(err.msg, "/nonexistent/x.gguf"));
    ck_assert_int_eq(mr_gguf_open("/", &g, &err), MR_EIO);
    ck_assert_ptr_null(g);
}
END_TEST

/* ================================================================ built images */

/* Every value type decodes to what the builder wrote. */
START_TEST(test_built_all_value_types)
{
    gguf_builder *b = gb_new();
    gb_bytes img = {0};
    ck_assert_ptr_nonnull(b);
    gb_add_all_types(b);
    serialise(b, &img);
    mr_gguf *g;
    mr_error err;
    ck_assert_msg(open_built(&img, &g, &err) == MR_OK, "%s", err.msg);
    ck_assert_uint_eq(g->n_kv, b->n_kvs);
    ck_assert_uint_eq(g->n_tensors, 0);
#define FIND(k) (mr_gguf_find(g, k)->val)
    ck_assert_uint_eq(FIND("t.u8").v.u64, 200);
    ck_assert_int_eq(FIND("t.i8").v.i64, -100);
    ck_assert_uint_eq(FIND("t.u16").v.u64, 60000);
    ck_assert_int_eq(FIND("t.i16").v.i64, -30000);
    ck_assert_uint_eq(FIND("t.u32").v.u64, 4000000000u);
    ck_assert_int_eq(FIND("t.i32").v.i64, -2000000000);
    ck_assert(FIND("t.f32").v.f64 == 1.5);
    ck_assert_int_eq(FIND("t.bool").v.b, 1);
    ck_assert(FIND("t.str").v.str.len == 6 && memcmp(FIND("t.str").v.str.ptr, "h\xc3\xa9llo", 6) == 0);
    ck_assert_uint_eq(FIND("t.empty_str").v.str.len, 0);
    ck_assert_uint_eq(FIND("t.u64").v.u64, UINT64_MAX - 1);
    ck_assert(FIND("t.i64").v.i64 == INT64_MIN);
    ck_assert(FIND("t.f64").v.f64 == -2.25);
    ck_assert_int_eq(mr_gguf_arr_int(&FIND("a.u8"), 2), 255);
    ck_assert_int_eq(mr_gguf_arr_int(&FIND("a.i8"), 0), -128);
    ck_assert_int_eq(mr_gguf_arr_int(&FIND("a.u16"), 2), 65535);
    ck_assert_int_eq(mr_gguf_arr_int(&FIND("a.i16"), 0), -32768);
    ck_assert_int_eq(mr_gguf_arr_int(&FIND("a.u32"), 2), 4294967295ll);
    ck_assert_int_eq(mr_gguf_arr_int(&FIND("a.i32"), 0), INT32_MIN);
    ck_assert(mr_gguf_arr_f32(&FIND("a.f32"), 2) == 3.25f);
    ck_assert_int_eq(mr_gguf_arr_int(&FIND("a.bool"), 1), 1);
    ck_assert(mr_gguf_arr_int(&FIND("a.i64"), 0) == INT64_MIN);
    ck_assert(mr_gguf_arr_f32(&FIND("a.f64"), 0) == -2.5f);
    ck_assert_uint_eq(FIND("a.str").v.arr.n, 3);
    ck_assert(FIND("a.str").v.arr.strs[2].len == 3 && memcmp(FIND("a.str").v.arr.strs[2].ptr, "ccc", 3) == 0);
    ck_assert_uint_eq(FIND("a.str").v.arr.strs[1].len, 0);
    ck_assert_uint_eq(FIND("a.empty").v.arr.n, 0);
    ck_assert_uint_eq(FIND("a.empty_str").v.arr.n, 0);
#undef FIND
    mr_gguf_close(g);
    gb_bytes_free(&img);
    gb_free(b);
}
END_TEST

/* Arrays of arrays, in the spec layout (gguf-py's writer and reader): an
 * element is "u32 type, u64 n, items" with no per-element type tag. */
START_TEST(test_built_nested_arrays)
{
    for (unsigned depth = 2; depth <= MR_GGUF_MAX_DEPTH + 1; depth++) {
        gguf_builder *b = gb_new();
        gb_bytes img = {0};
        ck_assert_ptr_nonnull(b);
        gb_kv_str(b, "before", "x");
        gb_kv_nested(b, "nested", depth, 3);
        gb_kv_u32(b, "after", 7);
        serialise(b, &img);
        mr_gguf *g;
        mr_error err;
        mr_status s = open_built(&img, &g, &err);
        if (depth <= MR_GGUF_MAX_DEPTH) {
            ck_assert_msg(s == MR_OK, "depth %u: %s", depth, err.msg);
            const mr_gguf_value *v = &mr_gguf_find(g, "nested")->val;
            for (unsigned d = 1; d < depth; d++) {
                ck_assert_uint_eq(v->v.arr.elem_type, MR_GGUF_ARRAY);
                ck_assert_uint_eq(v->v.arr.n, 1);
                v = &v->v.arr.items[0];
            }
            ck_assert_uint_eq(v->v.arr.elem_type, MR_GGUF_UINT32);
            ck_assert_int_eq(mr_gguf_arr_int(v, 2), 2);
            ck_assert_uint_eq(mr_gguf_find(g, "after")->val.v.u64, 7);
            mr_gguf_close(g);
        } else {
            check_error(s, &err, MR_EFORMAT, "built.gguf", "kv 'nested' value", "nested deeper",
                        "too deep");
        }
        gb_bytes_free(&img);
        gb_free(b);
    }
}
END_TEST

/* Malformed images the builder writes directly. */
START_TEST(test_built_malformed)
{
    static const uint8_t bad_bools[3] = {0, 1, 2};
    uint64_t ne[2] = {32, 2};
    char long_name[258];
    mr_gguf *g;
    mr_error err;
    for (int k = 0; k < 6; k++) {
        gguf_builder *b = gb_new();
        gb_bytes img = {0};
        ck_assert_ptr_nonnull(b);
        gb_kv_str(b, "general.name", "x");
        const char *sub1 = NULL, *sub2 = NULL;
        switch (k) {
        case 0: /* a bool array element that is neither 0 nor 1 */
            gb_kv_arr(b, "a.bool", GB_BOOL, 3, bad_bools);
            sub1 = "kv 'a.bool' value", sub2 = "bool element 2";
            break;
        case 1: /* the same key twice, far apart */
            gb_kv_u32(b, "k", 1);
            gb_kv_u32(b, "other", 1);
            gb_put_u32(gb_kv_begin(b, "k", GB_UINT32, 1), 2);
            sub1 = "kv[3].key", sub2 = "duplicate key 'k'";
            break;
        case 2: /* overlapping tensors with forced offsets */
            gb_tensor_add(b, "a", 2, ne, GB_F32, NULL, UINT64_MAX);
            gb_tensor_add(b, "b", 2, ne, GB_F32, NULL, UINT64_MAX);
            gb_tensor_set_offset(b, "b", 224);
            gb_tensor_set_offset(b, "a", 32);
            sub1 = "tensor 'b' offset", sub2 = "overlaps tensor 'a'";
            break;
        case 3: /* offset aligned to 32 but not to general.alignment 64 */
            gb_kv_u32(b, "general.alignment", 64);
            b->alignment = 64;
            gb_tensor_add(b, "a", 2, ne, GB_F32, NULL, UINT64_MAX);
            gb_tensor_set_offset(b, "a", 32);
            sub1 = "tensor 'a' offset", sub2 = "alignment 64";
            break;
        case 4: /* a tensor name over the 256-byte limit */
            memset(long_name, 'n', 257);
            long_name[257] = '\0';
            gb_tensor_add(b, long_name, 2, ne, GB_F32, NULL, UINT64_MAX);
            sub1 = "tensor[0].name", sub2 = "256";
            break;
        case 5: /* data section missing entirely */
            gb_tensor_add(b, "a", 2, ne, GB_F32, NULL, UINT64_MAX);
            gb_tensor_set_offset(b, "a", 1ull << 40);
            sub1 = "tensor 'a' offset", sub2 = "outside the file";
            break;
        }
        serialise(b, &img);
        check_error(open_built(&img, &g, &err), &err, MR_EFORMAT, "built.gguf", sub1, sub2,
                    "built malformed");
        ck_assert_ptr_null(g);
        gb_bytes_free(&img);
        gb_free(b);
    }
    /* and at the limits that are still valid: a 256-byte name, 4 dims */
    gguf_builder *b = gb_new();
    gb_bytes img = {0};
    ck_assert_ptr_nonnull(b);
    uint64_t ne4[4] = {32, 2, 3, 4};
    memset(long_name, 'n', 256);
    long_name[256] = '\0';
    gb_tensor_add(b, long_name, 2, ne, GB_F32, NULL, UINT64_MAX);
    gb_tensor_add(b, "four", 4, ne4, GB_Q8_0, NULL, UINT64_MAX);
    serialise(b, &img);
    ck_assert_msg(open_built(&img, &g, &err) == MR_OK, "%s", err.msg);
    ck_assert_uint_eq(g->tensors[1].nbytes, 2 * 3 * 4 * 34);
    mr_gguf_close(g);
    gb_bytes_free(&img);
    gb_free(b);
}
END_TEST

/* The recipes: tiny models of each flavour load, a vocabulary-only file
 * parses but is not a model, and an empty GGUF parses. */
START_TEST(test_built_models)
{
    for (int k = 0; k < 6; k++) {
        gguf_builder *b = gb_new();
        gb_bytes img = {0};
        gb_llama_cfg cfg = gb_llama_cfg_tiny();
        ck_assert_ptr_nonnull(b);
        if (k == 1)
            cfg.n_expert = 0, cfg.weight_type = GB_F32;
        if (k == 2)
            cfg.weight_type = GB_Q4_0, cfg.n_expert = 4, cfg.n_expert_used = 2, b->version = 2;
        if (k == 3)
            cfg.tied_output = 1, cfg.n_layer = 2, cfg.with_vocab = 0;
        if (k < 4)
            ck_assert_int_eq(gb_add_llama(b, &cfg), 0);
        if (k == 4) {
            gb_kv_str(b, "general.architecture", "llama");
            ck_assert_int_eq(gb_add_vocab(b, 100), 0);
        }
        serialise(b, &img);
        mr_gguf *g;
        mr_model *m;
        mr_error err;
        ck_assert_msg(open_built(&img, &g, &err) == MR_OK, "recipe %d: %s", k, err.msg);
        mr_status s = mr_model_from_gguf(g, &m, &err);
        if (k < 4) {
            ck_assert_msg(s == MR_OK, "recipe %d: %s", k, err.msg);
            ck_assert_uint_eq(m->hp.n_embd, cfg.n_embd);
            ck_assert_uint_eq(m->hp.n_layer, cfg.n_layer);
            ck_assert_uint_eq(m->hp.n_vocab, cfg.n_vocab);
            ck_assert_uint_eq(m->hp.n_expert, cfg.n_expert ? cfg.n_expert : 1);
            ck_assert_int_eq(m->tied_output, cfg.tied_output);
            long ti = gb_tensor_index(b, "token_embd.weight");
            ck_assert(memcmp(m->tok_embd.data, b->tensors[ti].data, b->tensors[ti].nbytes) == 0);
            mr_model_free(m);
        } else if (k == 4) {
            check_error(s, &err, MR_EFORMAT, "built.gguf", "llama.embedding_length", "missing",
                        "vocab only");
        } else {
            check_error(s, &err, MR_EFORMAT, "built.gguf", "general.architecture", "missing", "empty");
        }
        gb_bytes_free(&img);
        gb_free(b);
    }
}
END_TEST

/* ================================================================ seeds */

/* Write one seed file; 0 or -1. */
static int write_seed(const char *dir, const char *name, const void *p, size_t len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(p, 1, len, f) == len;
    if (f && fclose(f) != 0)
        ok = 0;
    fprintf(stderr, "%s %s (%zu bytes)\n", ok ? "wrote" : "FAILED", path, len);
    return ok && len < 65536 ? 0 : -1;
}

/* Build a seed from a recipe variant k and write it. */
static int write_recipe_seed(const char *dir, int k)
{
    static const char *const names[] = {"seed-tiny-moe-q8_0.gguf", "seed-tiny-dense-f32.gguf",
                                        "seed-tiny-moe-q4_0-v2.gguf", "seed-vocab-only.gguf",
                                        "seed-all-types.gguf", "seed-empty.gguf",
                                        "seed-nested-arrays.gguf"};
    gguf_builder *b = gb_new();
    gb_bytes img = {0};
    gb_llama_cfg cfg = gb_llama_cfg_tiny();
    if (!b)
        return -1;
    if (k == 1)
        cfg.n_expert = 0, cfg.weight_type = GB_F32, cfg.n_vocab = 16;
    if (k == 2)
        cfg.weight_type = GB_Q4_0, b->version = 2, cfg.tied_output = 1;
    if (k <= 2)
        gb_add_llama(b, &cfg);
    if (k == 3) {
        gb_kv_str(b, "general.architecture", "llama");
        gb_add_vocab(b, 64);
    }
    if (k == 4) {
        uint64_t ne[2] = {32, 2};
        gb_add_all_types(b);
        gb_kv_u32(b, "general.alignment", 64);
        b->alignment = 64;
        gb_tensor_add(b, "t", 2, ne, GB_F32, NULL, UINT64_MAX);
    }
    if (k == 6) {
        gb_kv_str(b, "general.architecture", "llama");
        gb_kv_nested(b, "a.nested2", 2, 3);
        gb_kv_nested(b, "a.nested8", MR_GGUF_MAX_DEPTH, 1);
    }
    int r = gb_serialise(b, &img) || write_seed(dir, names[k], img.data, img.len);
    gb_bytes_free(&img);
    gb_free(b);
    return r ? -1 : 0;
}

/* --write-seeds DIR: the fuzzer's seed corpus. */
static int write_seeds(const char *dir)
{
    int r = 0;
    for (int k = 0; k < 7; k++)
        r |= write_recipe_seed(dir, k);
    if (g_file)
        r |= write_seed(dir, "seed-tinymix-head-4k.gguf", g_file, 4096);
    return r ? 1 : 0;
}

/* ================================================================ main */

/* The suite: fork mode (the default) turns a crash into one failed test. */
/* The writer seals the metadata of files with moerun.checksum.* keys, and
 * uint64 values above INT64_MAX read back exactly (mr_gguf_arr_u64). */
START_TEST(test_written_metadata_checksum_and_u64)
{
    char path[] = "/tmp/moerun-gguf-meta-XXXXXX";
    int fd = mkstemp(path);
    ck_assert(fd >= 0);
    mr_gguf_writer *w;
    mr_error err;
    const uint64_t big[3] = {0xffffffffffffffffull, 0x8000000000000000ull, 7};
    ck_assert(mr_gguf_writer_new(32, &w, &err) == MR_OK);
    mr_gguf_kv_f32(w, "llama.rope.freq_base", 10000.0f);
    mr_gguf_kv_str(w, MR_KEY_CHECKSUM_ALGORITHM, "xxh3-64");
    mr_gguf_kv_arr_u64(w, MR_KEY_CHECKSUM_TENSORS, NULL, 1);
    mr_gguf_kv_arr_u64(w, "test.big", big, 3);
    uint64_t ne[2] = {32, 2};
    ck_assert(mr_gguf_add_tensor(w, "t", MR_TYPE_F32, 2, ne, NULL) == MR_OK);
    ck_assert_msg(mr_gguf_writer_begin(w, fd, path, &err) == MR_OK, "%s", err.msg);
    float data[64] = {0};
    ck_assert(mr_gguf_writer_data(w, data, sizeof data, &err) == MR_OK);
    ck_assert(mr_gguf_writer_patch_u64(w, MR_KEY_CHECKSUM_TENSORS, 0, 0x1234, &err) == MR_OK);
    ck_assert(mr_gguf_writer_finish(w, &err) == MR_OK);
    mr_gguf_writer_free(w);
    close(fd);

    mr_gguf *g;
    ck_assert_msg(mr_gguf_open(path, &g, &err) == MR_OK, "%s", err.msg);
    const mr_gguf_kv *b = mr_gguf_find(g, "test.big"), *m = mr_gguf_find(g, MR_KEY_CHECKSUM_METADATA);
    ck_assert_ptr_nonnull(b);
    for (int i = 0; i < 3; i++)
        ck_assert(mr_gguf_arr_u64(&b->val, (uint64_t)i) == big[i]);
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(m->val.type, MR_GGUF_UINT64);
    /* recompute by the rule of moerun_keys.h, independently of verify.c */
    const mr_gguf_kv *th = mr_gguf_find(g, MR_KEY_CHECKSUM_TENSORS);
    uint64_t holes[4] = {m->val.offset, 8, (uint64_t)(th->val.v.arr.data - g->base), 8};
    uint64_t want = mr_gguf_hash_with_holes(g->base, g->data_offset, holes, 2);
    ck_assert(m->val.v.u64 == want);
    ck_assert(m->val.v.u64 != 0);
    /* a changed value changes the hash */
    uint8_t *copy = malloc(g->data_offset);
    memcpy(copy, g->base, g->data_offset);
    copy[mr_gguf_find(g, "llama.rope.freq_base")->val.offset + 2] ^= 1;
    ck_assert(mr_gguf_hash_with_holes(copy, g->data_offset, holes, 2) != want);
    free(copy);
    mr_gguf_close(g);
    unlink(path);
}
END_TEST

static Suite *gguf_suite(void)
{
    Suite *s = suite_create("gguf");
    TCase *tc = tcase_create("good");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_good_file_matches_map);
    tcase_add_test(tc, test_good_file_model);
    tcase_add_test(tc, test_builder_round_trip);
    suite_add_tcase(s, tc);
    tc = tcase_create("truncation");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_truncations);
    suite_add_tcase(s, tc);
    tc = tcase_create("mutations");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_mutation, 0, N_MUTATIONS);
    tcase_add_test(tc, test_file_path_errors);
    suite_add_tcase(s, tc);
    tc = tcase_create("built");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_built_all_value_types);
    tcase_add_test(tc, test_built_nested_arrays);
    tcase_add_test(tc, test_built_malformed);
    tcase_add_test(tc, test_built_models);
    tcase_add_test(tc, test_written_metadata_checksum_and_u64);
    suite_add_tcase(s, tc);
    return s;
}

/* Load tinymix and map it, then run the suite (or write the seeds). */
int main(int argc, char **argv)
{
    const char *dir = getenv("MOERUN_TESTDATA");
    if (!dir || !*dir)
        dir = "../shared";
    snprintf(g_path, sizeof g_path, "%s/models/tinymix-gguf/tinymix-Q8_0.gguf", dir);
    snprintf(g_q4_path, sizeof g_q4_path, "%s/models/tinymix-gguf/tinymix-Q4_0.gguf", dir);
    g_file = read_file(g_path, &g_len);
    if (argc == 3 && strcmp(argv[1], "--write-seeds") == 0)
        return write_seeds(argv[2]);
    if (!g_file) {
        fprintf(stderr, "test_gguf: SKIP: cannot read %s (set MOERUN_TESTDATA to the "
                        "directory holding models/tinymix-gguf/)\n", g_path);
        return 77;
    }
    char why[256] = "";
    if (gb_map_build(g_file, g_len, &g_map, why, sizeof why) != 0) {
        fprintf(stderr, "test_gguf: the trusted walker cannot map %s: %s\n", g_path, why);
        return 1;
    }
    SRunner *sr = srunner_create(gguf_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    gb_map_free(&g_map);
    free(g_file);
    return failed ? 1 : 0;
}
