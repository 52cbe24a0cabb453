/* test_tokenizer.c - SentencePiece-BPE tokenizer and streaming detokenizer.
 *
 * Golden ids come from sentencepiece itself (shared/ref/NAME.ids.json,
 * shared/ref/ppl.json, shipped in tests/data with the demo model);
 * malformed vocabularies are small GGUF images built in memory.
 */
#include <check.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "gguf.h"
#include "tokenizer.h"

static char g_data[1024];      /* the source tree (tests/data, models/) */
static mr_gguf *g_gguf;        /* tinymix-Q8_0.gguf */
static mr_tokenizer *g_tok;    /* its tokenizer */

static const char *const k_prompts[] = {
    "short", "long_story", "digits_punct", "unicode_emoji", "leading_spaces", "empty_ish",
};
#define N_PROMPTS ((int)(sizeof k_prompts / sizeof k_prompts[0]))

/* ------------------------------------------------------------- helpers */

/* Whether buf[0..n) is entirely valid UTF-8 (no overlongs, surrogates). */
static int valid_utf8(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned char b = s[i];
        size_t len;
        unsigned char lo = 0x80, hi = 0xBF;
        if (b < 0x80) { i++; continue; }
        else if (b >= 0xC2 && b <= 0xDF) len = 2;
        else if (b >= 0xE0 && b <= 0xEF) len = 3;
        else if (b >= 0xF0 && b <= 0xF4) len = 4;
        else return 0;
        if (b == 0xE0) lo = 0xA0;
        if (b == 0xED) hi = 0x9F;
        if (b == 0xF0) lo = 0x90;
        if (b == 0xF4) hi = 0x8F;
        if (i + len > n || s[i + 1] < lo || s[i + 1] > hi)
            return 0;
        for (size_t k = 2; k < len; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xBF)
                return 0;
        i += len;
    }
    return 1;
}

/* Read a whole file (NUL-terminated); NULL if it cannot. */
static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long n = ftell(f);
        if (n >= 0 && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1))) {
            if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
                free(buf);
                buf = NULL;
            } else {
                buf[n] = '\0';
                *len = (size_t)n;
            }
        }
    }
    fclose(f);
    return buf;
}

/* Load ref/<name>.ids.json: its text (copied) and ids (malloc'd). */
static void load_prompt(const char *name, char **text, int32_t **ids, size_t *n_ids)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/tests/data/%s.ids.json", g_data, name);
    json_object *root = json_object_from_file(path);
    ck_assert_msg(root != NULL, "cannot parse %s", path);
    json_object *jt, *ji;
    ck_assert(json_object_object_get_ex(root, "text", &jt));
    ck_assert(json_object_object_get_ex(root, "ids", &ji));
    *text = strdup(json_object_get_string(jt));
    size_t n = json_object_array_length(ji);
    *ids = malloc((n ? n : 1) * sizeof **ids);
    ck_assert(*text && *ids);
    for (size_t i = 0; i < n; i++)
        (*ids)[i] = json_object_get_int(json_object_array_get_idx(ji, i));
    *n_ids = n;
    json_object_put(root);
}

/* Decode ids with a fresh detokenizer into a malloc'd NUL-terminated
 * string, asserting each chunk is valid UTF-8 on its own. */
static char *decode_all(const int32_t *ids, size_t n, int strip, size_t *out_len)
{
    size_t cap = 64, len = 0;
    char *out = malloc(cap);
    ck_assert(out);
    mr_detok d;
    mr_detok_init(&d, g_tok, strip);
    for (size_t i = 0; i <= n; i++) {
        const char *piece = i < n ? mr_token_piece(g_tok, ids[i]) : "";
        size_t need = 64 + 3 * strlen(piece ? piece : "");
        if (cap - len < need + 1) {
            cap = 2 * cap + need + 1;
            out = realloc(out, cap);
            ck_assert(out);
        }
        size_t k = i < n ? mr_detok_push(&d, ids[i], out + len, cap - len)
                         : mr_detok_flush(&d, out + len, cap - len);
        ck_assert_msg(valid_utf8((unsigned char *)out + len, k), "chunk %zu not UTF-8", i);
        len += k;
    }
    out[len] = '\0';
    *out_len = len;
    return out;
}

/* -------------------------------------------------- the tinymix vocabulary */

START_TEST(test_vocab_basics)
{
    ck_assert_int_eq(mr_tokenizer_n_vocab(g_tok), 32000);
    ck_assert_int_eq(mr_tokenizer_bos(g_tok), 1);
    ck_assert_int_eq(mr_tokenizer_eos(g_tok), 2);
    ck_assert_int_eq(mr_tokenizer_add_bos(g_tok), 1);
    ck_assert_str_eq(mr_token_piece(g_tok, 1), "<s>");
    ck_assert_str_eq(mr_token_piece(g_tok, 13), "<0x0A>");
    ck_assert_str_eq(mr_token_piece(g_tok, 5713), "\xE2\x96\x81Once");
    ck_assert_ptr_null(mr_token_piece(g_tok, -1));
    ck_assert_ptr_null(mr_token_piece(g_tok, 32000));
}
END_TEST

/* Every ref/<prompt>.ids.json: ids equal exactly (BOS first). */
START_TEST(test_prompt_ids)
{
    char *text;
    int32_t *want, *got;
    size_t n_want, n_got;
    mr_error err;
    load_prompt(k_prompts[_i], &text, &want, &n_want);
    ck_assert_int_eq(mr_tokenize(g_tok, text, strlen(text), 1, &got, &n_got, &err), MR_OK);
    ck_assert_msg(n_got == n_want, "%s: %zu ids, expected %zu", k_prompts[_i], n_got, n_want);
    for (size_t i = 0; i < n_want; i++)
        ck_assert_msg(got[i] == want[i], "%s: id %zu is %d, expected %d", k_prompts[_i], i,
                      got[i], want[i]);
    free(got);
    free(text);
    free(want);
}
END_TEST

/* Round trip: decode(ids minus BOS) with the dummy prefix stripped gives
 * the text back byte for byte, leading and repeated spaces included
 * (sentencepiece removes exactly one "▁", the one it added). */
START_TEST(test_prompt_roundtrip)
{
    char *text;
    int32_t *ids;
    size_t n_ids, len;
    load_prompt(k_prompts[_i], &text, &ids, &n_ids);
    char *back = decode_all(ids + 1, n_ids - 1, 1, &len);
    ck_assert_str_eq(back, text);
    ck_assert_uint_eq(len, strlen(text));
    free(back);
    /* Without stripping, the dummy prefix shows as one extra space; BOS
     * (control) emits nothing either way. */
    back = decode_all(ids, n_ids, 0, &len);
    if (text[0]) {
        ck_assert_int_eq(back[0], ' ');
        ck_assert_str_eq(back + 1, text);
    } else {
        ck_assert_str_eq(back, "");
    }
    free(back);
    free(text);
    free(ids);
}
END_TEST

/* leading_spaces in detail: "   Tom" is "▁▁▁▁Tom" after normalisation;
 * the first token carries four "▁", decoding drops exactly one. */
START_TEST(test_leading_spaces_exact)
{
    int32_t *ids;
    size_t n;
    mr_error err;
    const char *text = "   Tom  and   Sam played.";
    ck_assert_int_eq(mr_tokenize(g_tok, text, strlen(text), 0, &ids, &n, &err), MR_OK);
    ck_assert_uint_eq(n, 8);
    ck_assert_str_eq(mr_token_piece(g_tok, ids[0]), "\xE2\x96\x81\xE2\x96\x81\xE2\x96\x81");
    ck_assert_str_eq(mr_token_piece(g_tok, ids[1]), "\xE2\x96\x81Tom");
    char out[128];
    mr_detok d;
    mr_detok_init(&d, g_tok, 1);
    size_t k = mr_detok_push(&d, ids[0], out, sizeof out);
    ck_assert_uint_eq(k, 2); /* "▁▁▁" -> "  ": the first "▁" is the dummy prefix */
    ck_assert(memcmp(out, "  ", 2) == 0);
    k = mr_detok_push(&d, ids[1], out, sizeof out);
    ck_assert_uint_eq(k, 4);
    ck_assert(memcmp(out, " Tom", 4) == 0); /* only the first piece is stripped */
    free(ids);
}
END_TEST

/* The whole of valid.txt as one string, no BOS: ppl.json's valid_ids. */
START_TEST(test_valid_txt)
{
    char path[1200];
    size_t len, n_got, dec_len;
    snprintf(path, sizeof path, "%s/tests/data/valid.txt", g_data);
    char *text = read_file(path, &len);
    ck_assert_msg(text != NULL, "cannot read %s", path);
    ck_assert_uint_eq(len, 30133);
    snprintf(path, sizeof path, "%s/tests/data/ppl.json", g_data);
    json_object *root = json_object_from_file(path), *jv;
    ck_assert_msg(root != NULL, "cannot parse %s", path);
    ck_assert(json_object_object_get_ex(root, "valid_ids", &jv));
    size_t n_want = json_object_array_length(jv);
    ck_assert_uint_eq(n_want, 7306);

    int32_t *got;
    mr_error err;
    ck_assert_int_eq(mr_tokenize(g_tok, text, len, 0, &got, &n_got, &err), MR_OK);
    ck_assert_uint_eq(n_got, n_want);
    for (size_t i = 0; i < n_want; i++) {
        int32_t w = json_object_get_int(json_object_array_get_idx(jv, i));
        ck_assert_msg(got[i] == w, "valid_ids[%zu] is %d, expected %d", i, got[i], w);
    }
    char *back = decode_all(got, n_got, 1, &dec_len);
    ck_assert_uint_eq(dec_len, len);
    ck_assert(memcmp(back, text, len) == 0);
    free(back);
    free(got);
    json_object_put(root);
    free(text);
}
END_TEST

/* unicode_emoji one id at a time: every chunk is valid UTF-8 by itself;
 * the four byte tokens of U+1F409 give nothing until the last one. */
START_TEST(test_streaming_utf8)
{
    char *text;
    int32_t *ids;
    size_t n_ids, total = 0;
    load_prompt("unicode_emoji", &text, &ids, &n_ids);
    char out[4096], chunk[256];
    mr_detok d;
    mr_detok_init(&d, g_tok, 1);
    for (size_t i = 0; i < n_ids; i++) {
        size_t k = mr_detok_push(&d, ids[i], chunk, sizeof chunk);
        ck_assert_msg(valid_utf8((unsigned char *)chunk, k), "chunk for id %d", ids[i]);
        if (ids[i] == 243 || ids[i] == 162 || ids[i] == 147) /* <0xF0> <0x9F> <0x90> */
            ck_assert_uint_eq(k, 0);
        if (ids[i] == 140) { /* <0x89> completes the dragon */
            ck_assert_uint_eq(k, 4);
            ck_assert(memcmp(chunk, "\xF0\x9F\x90\x89", 4) == 0);
        }
        ck_assert(total + k < sizeof out);
        memcpy(out + total, chunk, k);
        total += k;
    }
    ck_assert_uint_eq(mr_detok_flush(&d, chunk, sizeof chunk), 0);
    out[total] = '\0';
    ck_assert_str_eq(out, text);
    free(text);
    free(ids);
}
END_TEST

/* Append code point cp as UTF-8. */
static size_t put_utf8(char *o, uint32_t cp)
{
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 63));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 63));
        o[2] = (char)(0x80 | (cp & 63));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 63));
    o[2] = (char)(0x80 | ((cp >> 6) & 63));
    o[3] = (char)(0x80 | (cp & 63));
    return 4;
}

/* decode(encode(x)) == x for any valid UTF-8 x without a literal "▁"
 * (which decodes as a space, in sentencepiece too): random strings of
 * spaces, ASCII, NUL, common and random code points (seeded, printed). */
START_TEST(test_random_roundtrip)
{
    static const uint32_t common[] = {' ', ' ', ' ', '\n', '\t', 0, 0xE9, 0xFC, 0x2014,
                                      0x201C, 0x65E5, 0x672C, 0x1F409, 0x1F600, 0x3000};
    uint64_t x = 20240601;
    char text[2048];
    for (int round = 0; round < 300; round++) {
        size_t len = 0;
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        int n_chars = (int)((x >> 33) % 300);
        for (int k = 0; k < n_chars; k++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            uint32_t r = (uint32_t)(x >> 32), cp;
            if (r % 4 == 0)
                cp = common[(r >> 8) % (sizeof common / sizeof common[0])];
            else if (r % 4 == 1)
                cp = 0x20 + (r >> 8) % 95;
            else
                cp = (r >> 8) % 0x110000;
            if ((cp >= 0xD800 && cp <= 0xDFFF) || cp == 0x2581)
                cp = 'x';
            len += put_utf8(text + len, cp);
        }
        int32_t *ids;
        size_t n_ids, back_len;
        mr_error err;
        ck_assert_int_eq(mr_tokenize(g_tok, text, len, 0, &ids, &n_ids, &err), MR_OK);
        char *back = decode_all(ids, n_ids, 1, &back_len);
        ck_assert_msg(back_len == len && memcmp(back, text, len) == 0,
                      "round %d (seed 20240601): %zu bytes back for %zu", round, back_len,
                      len);
        free(back);
        free(ids);
    }
}
END_TEST

/* Broken byte sequences become U+FFFD, never raw bytes; a truncated
 * sequence is held until flush; a small cap is never overrun. */
START_TEST(test_detok_invalid_bytes)
{
    char out[64];
    mr_detok d;
    size_t k;
    int32_t f0 = 3 + 0xF0, x41 = 3 + 0x41, x80 = 3 + 0x80, e2 = 3 + 0xE2, x82 = 3 + 0x82;
    ck_assert_str_eq(mr_token_piece(g_tok, f0), "<0xF0>");
    mr_detok_init(&d, g_tok, 0);
    ck_assert_uint_eq(mr_detok_push(&d, f0, out, sizeof out), 0); /* pending */
    k = mr_detok_push(&d, x41, out, sizeof out);                  /* 'A' breaks it */
    ck_assert_uint_eq(k, 4);
    ck_assert(memcmp(out, "\xEF\xBF\xBD" "A", 4) == 0);
    k = mr_detok_push(&d, x80, out, sizeof out); /* lone continuation byte */
    ck_assert_uint_eq(k, 3);
    ck_assert(memcmp(out, "\xEF\xBF\xBD", 3) == 0);
    ck_assert_uint_eq(mr_detok_push(&d, e2, out, sizeof out), 0);
    ck_assert_uint_eq(mr_detok_push(&d, x82, out, sizeof out), 0);
    k = mr_detok_push(&d, 5713, out, sizeof out); /* "▁Once" after E2 82 */
    ck_assert_uint_eq(k, 8);
    ck_assert(memcmp(out, "\xEF\xBF\xBD Once", 8) == 0);
    ck_assert_uint_eq(mr_detok_push(&d, e2, out, sizeof out), 0);
    k = mr_detok_flush(&d, out, sizeof out);
    ck_assert_uint_eq(k, 3);
    ck_assert(memcmp(out, "\xEF\xBF\xBD", 3) == 0);
    ck_assert_uint_eq(mr_detok_flush(&d, out, sizeof out), 0);
    /* cap too small: nothing written past it */
    memset(out, 'z', sizeof out);
    mr_detok_init(&d, g_tok, 0);
    ck_assert_uint_le(mr_detok_push(&d, 5713, out, 2), 2);
    ck_assert_int_eq(out[2], 'z');
    ck_assert_uint_eq(mr_detok_push(&d, 1, out, 0), 0);       /* BOS: control */
    ck_assert_uint_eq(mr_detok_push(&d, -5, out, sizeof out), 0);
    ck_assert_uint_eq(mr_detok_push(&d, 99999, out, sizeof out), 0);
}
END_TEST

/* The documented bound: after a pending lead byte, every token's text
 * fits in 8 + strlen(piece) bytes (well inside 64 + strlen(piece)). */
START_TEST(test_detok_cap_bound)
{
    char big[512], tight[512];
    for (int32_t id = 0; id < mr_tokenizer_n_vocab(g_tok); id++) {
        size_t len = strlen(mr_token_piece(g_tok, id));
        ck_assert(len + 8 <= sizeof tight);
        mr_detok a, b;
        mr_detok_init(&a, g_tok, 0);
        mr_detok_init(&b, g_tok, 0);
        ck_assert_uint_eq(mr_detok_push(&a, 3 + 0xF0, big, sizeof big), 0);
        ck_assert_uint_eq(mr_detok_push(&b, 3 + 0xF0, tight, 0), 0);
        size_t ka = mr_detok_push(&a, id, big, sizeof big);
        size_t kb = mr_detok_push(&b, id, tight, 8 + len);
        ck_assert_msg(ka == kb && memcmp(big, tight, ka) == 0, "id %d: %zu vs %zu", id, ka, kb);
        ck_assert(valid_utf8((unsigned char *)big, ka));
    }
}
END_TEST

/* Corner inputs: no BOS and empty text gives nothing; newline and invalid
 * UTF-8 go through byte fallback; NUL bytes are ordinary bytes. */
START_TEST(test_encode_corners)
{
    int32_t *ids;
    size_t n;
    mr_error err;
    ck_assert_int_eq(mr_tokenize(g_tok, "", 0, 0, &ids, &n, &err), MR_OK);
    ck_assert_uint_eq(n, 0);
    free(ids);
    ck_assert_int_eq(mr_tokenize(g_tok, NULL, 0, 1, &ids, &n, &err), MR_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(ids[0], 1);
    free(ids);
    ck_assert_int_eq(mr_tokenize(g_tok, "\n", 1, 0, &ids, &n, &err), MR_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(ids[0], 28705); /* "▁" */
    ck_assert_int_eq(ids[1], 13);    /* <0x0A> */
    free(ids);
    const char bad[] = "a\xFF\xC3"; /* invalid byte, then a truncated sequence */
    ck_assert_int_eq(mr_tokenize(g_tok, bad, 3, 0, &ids, &n, &err), MR_OK);
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(mr_token_piece(g_tok, ids[0]), "\xE2\x96\x81" "a");
    ck_assert_int_eq(ids[1], 3 + 0xFF);
    ck_assert_int_eq(ids[2], 3 + 0xC3);
    free(ids);
    ck_assert_int_eq(mr_tokenize(g_tok, "a\0b", 3, 0, &ids, &n, &err), MR_OK);
    ck_assert_uint_ge(n, 2);
    int found = 0;
    for (size_t i = 0; i < n; i++)
        found |= ids[i] == 3;
    ck_assert(found); /* <0x00> */
    free(ids);
    /* "<s>" in text is text: control pieces are never formed by merges */
    ck_assert_int_eq(mr_tokenize(g_tok, "<s>", 3, 0, &ids, &n, &err), MR_OK);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_ne(ids[i], 1);
    free(ids);
}
END_TEST

/* --------------------------------------------- GGUF images built in memory */

typedef struct {
    unsigned char *p;
    size_t n, cap;
    uint64_t n_kv;
    char keys[32][64];       /* key -> offset of its value, for assertions */
    uint64_t offs[32];
} vbuf;

/* Append n bytes, growing the buffer. */
static void put(vbuf *b, const void *src, size_t n)
{
    if (b->cap - b->n < n) {
        b->cap = 2 * b->cap + n + 256;
        b->p = realloc(b->p, b->cap);
        ck_assert(b->p);
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}

/* Append v as a little-endian integer of the given width. */
static void put_le(vbuf *b, uint64_t v, int bytes)
{
    unsigned char t[8];
    for (int i = 0; i < bytes; i++)
        t[i] = (unsigned char)(v >> (8 * i));
    put(b, t, (size_t)bytes);
}

/* Append a GGUF string: u64 length, then the bytes. */
static void put_str(vbuf *b, const char *s, size_t len)
{
    put_le(b, len, 8);
    put(b, s, len);
}

/* Start a GGUF v3 image with no tensors; n_kv is patched by finish(). */
static void vb_begin(vbuf *b)
{
    memset(b, 0, sizeof *b);
    put(b, "GGUF", 4);
    put_le(b, 3, 4);
    put_le(b, 0, 8);
    put_le(b, 0, 8);
}

/* Key and type; records where the value starts. */
static void vb_key(vbuf *b, const char *key, uint32_t type)
{
    put_str(b, key, strlen(key));
    put_le(b, type, 4);
    ck_assert(b->n_kv < 32);
    snprintf(b->keys[b->n_kv], sizeof b->keys[0], "%s", key);
    b->offs[b->n_kv] = b->n;
    b->n_kv++;
}

/* Offset of the value written for key, or MR_NO_OFFSET. */
static uint64_t vb_offset(const vbuf *b, const char *key)
{
    for (uint64_t i = 0; i < b->n_kv; i++)
        if (strcmp(b->keys[i], key) == 0)
            return b->offs[i];
    return MR_NO_OFFSET;
}

/* Patch the header's n_kv with the number of keys written. */
static void vb_finish(vbuf *b)
{
    for (int i = 0; i < 8; i++)
        b->p[16 + i] = (unsigned char)(b->n_kv >> (8 * i));
}

/* A small valid vocabulary and the ways to break it. */
typedef struct {
    const char *model;       /* NULL: key absent */
    int model_as_u32;
    int omit_tokens, tokens_as_i32, scores_as_i32, bos_as_str, add_bos_as_u32;
    int n_scores_delta, n_types_delta;
    int64_t bos;             /* -1: key absent */
    int64_t eos, unk;
    int bad_type_at, bad_type;    /* token index and the type to store there */
    const char *replace_piece;    /* replaces piece number replace_at */
    int replace_at, replace_type;
    int nan_score;
    int empty_vocab;
    int add_space_prefix;         /* -1: absent */
} vspec;

#define SP "\xE2\x96\x81"
static const char *const k_pieces[] = {
    "<unk>", "<s>", "</s>", "<0x41>", "<0x0A>", SP, "a", "aa", "b", SP "b", "<|x|>", "ab", SP "ab",
};
static const int k_types[] = {2, 3, 3, 6, 6, 1, 1, 1, 1, 1, 4, 5, 1};
static const float k_scores[] = {0, 0, 0, 0, 0, -10, -10, -1, -10, -2, 0, -1, -3};
#define N_PIECES ((int)(sizeof k_pieces / sizeof k_pieces[0]))

/* The valid tiny vocabulary, nothing broken. */
static vspec default_spec(void)
{
    return (vspec){.model = "llama", .bos = 1, .eos = 2, .unk = 0, .bad_type_at = -1,
                   .replace_at = -1, .add_space_prefix = -1};
}

/* Serialise spec into b. */
static void build_vocab(vbuf *b, const vspec *s)
{
    int n = s->empty_vocab ? 0 : N_PIECES;
    vb_begin(b);
    if (s->model) {
        if (s->model_as_u32) {
            vb_key(b, "tokenizer.ggml.model", MR_GGUF_UINT32);
            put_le(b, 7, 4);
        } else {
            vb_key(b, "tokenizer.ggml.model", MR_GGUF_STRING);
            put_str(b, s->model, strlen(s->model));
        }
    }
    if (!s->omit_tokens) {
        vb_key(b, "tokenizer.ggml.tokens", MR_GGUF_ARRAY);
        put_le(b, s->tokens_as_i32 ? MR_GGUF_INT32 : MR_GGUF_STRING, 4);
        put_le(b, (uint64_t)n, 8);
        for (int i = 0; i < n; i++) {
            const char *p = i == s->replace_at ? s->replace_piece : k_pieces[i];
            if (s->tokens_as_i32)
                put_le(b, (uint64_t)i, 4);
            else
                put_str(b, p, strlen(p));
        }
    }
    int ns = n + s->n_scores_delta;
    vb_key(b, "tokenizer.ggml.scores", MR_GGUF_ARRAY);
    put_le(b, s->scores_as_i32 ? MR_GGUF_INT32 : MR_GGUF_FLOAT32, 4);
    put_le(b, (uint64_t)ns, 8);
    for (int i = 0; i < ns; i++) {
        float f = i < N_PIECES ? k_scores[i] : 0.0f;
        if (s->nan_score && i == 6)
            f = __builtin_nanf("");
        uint32_t r;
        memcpy(&r, &f, 4);
        put_le(b, s->scores_as_i32 ? 0u : r, 4);
    }
    int nt = n + s->n_types_delta;
    vb_key(b, "tokenizer.ggml.token_type", MR_GGUF_ARRAY);
    put_le(b, MR_GGUF_INT32, 4);
    put_le(b, (uint64_t)nt, 8);
    for (int i = 0; i < nt; i++) {
        int ty = i < N_PIECES ? k_types[i] : 1;
        if (i == s->bad_type_at)
            ty = s->bad_type;
        if (i == s->replace_at)
            ty = s->replace_type;
        put_le(b, (uint32_t)ty, 4);
    }
    if (s->bos >= 0) {
        if (s->bos_as_str) {
            vb_key(b, "tokenizer.ggml.bos_token_id", MR_GGUF_STRING);
            put_str(b, "1", 1);
        } else {
            vb_key(b, "tokenizer.ggml.bos_token_id", MR_GGUF_UINT32);
            put_le(b, (uint64_t)s->bos, 4);
        }
    }
    vb_key(b, "tokenizer.ggml.eos_token_id", MR_GGUF_UINT32);
    put_le(b, (uint64_t)s->eos, 4);
    vb_key(b, "tokenizer.ggml.unknown_token_id", MR_GGUF_UINT32);
    put_le(b, (uint64_t)s->unk, 4);
    if (s->add_bos_as_u32) {
        vb_key(b, "tokenizer.ggml.add_bos_token", MR_GGUF_UINT32);
        put_le(b, 1, 4);
    } else {
        vb_key(b, "tokenizer.ggml.add_bos_token", MR_GGUF_BOOL);
        put_le(b, 0, 1);
    }
    if (s->add_space_prefix >= 0) {
        vb_key(b, "tokenizer.ggml.add_space_prefix", MR_GGUF_BOOL);
        put_le(b, (uint64_t)s->add_space_prefix, 1);
    }
    vb_finish(b);
}

/* Build, parse and load spec; returns the load status and the error. */
static mr_status try_load(const vspec *s, vbuf *b, mr_error *err, mr_tokenizer **tok)
{
    mr_gguf *g;
    build_vocab(b, s);
    mr_error_clear(err);
    ck_assert_msg(mr_gguf_open_mem(b->p, b->n, "vocab.gguf", &g, err) == MR_OK, "%s",
                  err->msg);
    mr_status st = mr_tokenizer_load(g, tok, err);
    mr_gguf_close(g); /* the tokenizer keeps its own copies */
    return st;
}

typedef struct {
    const char *name;
    vspec spec;
    mr_status want;
    const char *key;   /* must appear in the message */
    int check_offset;  /* err.offset must be that key's value offset */
} bad_case;

static bad_case bad_cases[24];
static int n_bad_cases;

/* Register one malformed-vocabulary case. */
static void add_bad(const char *name, vspec s, mr_status want, const char *key, int off)
{
    bad_cases[n_bad_cases++] = (bad_case){name, s, want, key, off};
}

/* Fill bad_cases: one broken vocabulary per entry. */
static void init_bad_cases(void)
{
    vspec s;
    s = default_spec(); s.n_scores_delta = -1;
    add_bad("short scores", s, MR_EFORMAT, "tokenizer.ggml.scores", 1);
    s = default_spec(); s.n_types_delta = 2;
    add_bad("long token_type", s, MR_EFORMAT, "tokenizer.ggml.token_type", 1);
    s = default_spec(); s.scores_as_i32 = 1;
    add_bad("scores of int32", s, MR_EFORMAT, "tokenizer.ggml.scores", 1);
    s = default_spec(); s.tokens_as_i32 = 1;
    add_bad("tokens of int32", s, MR_EFORMAT, "tokenizer.ggml.tokens", 1);
    s = default_spec(); s.model_as_u32 = 1;
    add_bad("model is a number", s, MR_EFORMAT, "tokenizer.ggml.model", 1);
    s = default_spec(); s.model = NULL;
    add_bad("model missing", s, MR_EFORMAT, "tokenizer.ggml.model", 0);
    s = default_spec(); s.model = "bert";
    add_bad("model bert", s, MR_EUNSUPPORTED, "tokenizer.ggml.model", 1);
    s = default_spec(); s.omit_tokens = 1;
    add_bad("tokens missing", s, MR_EFORMAT, "tokenizer.ggml.tokens", 0);
    s = default_spec(); s.bos = N_PIECES;
    add_bad("bos out of range", s, MR_EFORMAT, "tokenizer.ggml.bos_token_id", 1);
    s = default_spec(); s.eos = 1000;
    add_bad("eos out of range", s, MR_EFORMAT, "tokenizer.ggml.eos_token_id", 1);
    s = default_spec(); s.unk = N_PIECES + 1;
    add_bad("unk out of range", s, MR_EFORMAT, "tokenizer.ggml.unknown_token_id", 1);
    s = default_spec(); s.bos_as_str = 1;
    add_bad("bos is a string", s, MR_EFORMAT, "tokenizer.ggml.bos_token_id", 1);
    s = default_spec(); s.add_bos_as_u32 = 1;
    add_bad("add_bos is a number", s, MR_EFORMAT, "tokenizer.ggml.add_bos_token", 1);
    s = default_spec(); s.bad_type_at = 6; s.bad_type = 9;
    add_bad("token type 9", s, MR_EFORMAT, "tokenizer.ggml.token_type", 1);
    s = default_spec(); s.bad_type_at = 6; s.bad_type = 0;
    add_bad("token type 0", s, MR_EFORMAT, "tokenizer.ggml.token_type", 1);
    s = default_spec(); s.replace_at = 3; s.replace_piece = "<0xZZ>"; s.replace_type = 6;
    add_bad("byte piece not hex", s, MR_EFORMAT, "tokenizer.ggml.tokens", 1);
    s = default_spec(); s.replace_at = 6; s.replace_piece = "a\xC3("; s.replace_type = 1;
    add_bad("piece not UTF-8", s, MR_EFORMAT, "tokenizer.ggml.tokens", 1);
    s = default_spec(); s.replace_at = 6; s.replace_piece = "\xED\xA0\x80"; s.replace_type = 1;
    add_bad("piece is a surrogate", s, MR_EFORMAT, "tokenizer.ggml.tokens", 1);
    s = default_spec(); s.nan_score = 1;
    add_bad("NaN score", s, MR_EFORMAT, "tokenizer.ggml.scores", 1);
    s = default_spec(); s.empty_vocab = 1;
    add_bad("empty vocabulary", s, MR_EFORMAT, "tokenizer.ggml.tokens", 1);
}

START_TEST(test_malformed_vocab)
{
    const bad_case *c = &bad_cases[_i];
    vbuf b;
    mr_error err;
    mr_tokenizer *tok = (mr_tokenizer *)&err; /* must be reset to NULL */
    mr_status st = try_load(&c->spec, &b, &err, &tok);
    ck_assert_msg(st == c->want, "%s: status %s, expected %s (%s)", c->name,
                  mr_status_name(st), mr_status_name(c->want), err.msg);
    ck_assert_ptr_null(tok);
    ck_assert_int_eq(err.code, c->want);
    ck_assert_msg(strstr(err.msg, c->key) != NULL, "%s: message '%s' lacks '%s'", c->name,
                  err.msg, c->key);
    ck_assert_msg(strstr(err.msg, "vocab.gguf") != NULL, "%s: no file in '%s'", c->name,
                  err.msg);
    if (c->check_offset)
        ck_assert_msg(err.offset == vb_offset(&b, c->key), "%s: offset %llu, expected %llu",
                      c->name, (unsigned long long)err.offset,
                      (unsigned long long)vb_offset(&b, c->key));
    free(b.p);
}
END_TEST

/* Encode text with a tiny vocabulary built by spec. */
static size_t tiny_encode(const vspec *s, const char *text, int32_t *out, size_t cap)
{
    vbuf b;
    mr_error err;
    mr_tokenizer *tok;
    ck_assert_msg(try_load(s, &b, &err, &tok) == MR_OK, "%s", err.msg);
    free(b.p);
    int32_t *ids;
    size_t n;
    ck_assert_int_eq(mr_tokenize(tok, text, strlen(text), 0, &ids, &n, &err), MR_OK);
    ck_assert_uint_le(n, cap);
    memcpy(out, ids, n * sizeof *ids);
    free(ids);
    mr_tokenizer_free(tok);
    return n;
}

/* The merge rules on the tiny vocabulary: ties go left; byte fallback, or
 * unk when the byte token is missing; user-defined pieces are atomic;
 * unused pieces may be formed but are split back; add_space_prefix. */
START_TEST(test_tiny_vocab_rules)
{
    int32_t ids[32];
    vspec s = default_spec();
    size_t n = tiny_encode(&s, "aaa", ids, 32); /* "▁aaa": two "aa" pairs tie */
    ck_assert_uint_eq(n, 3);
    ck_assert_int_eq(ids[0], 5);
    ck_assert_int_eq(ids[1], 7);
    ck_assert_int_eq(ids[2], 6);
    n = tiny_encode(&s, "A\nB", ids, 32); /* <0x41>, <0x0A>, no <0x42>: unk */
    ck_assert_uint_eq(n, 4);
    ck_assert_int_eq(ids[0], 5);
    ck_assert_int_eq(ids[1], 3);
    ck_assert_int_eq(ids[2], 4);
    ck_assert_int_eq(ids[3], 0);
    n = tiny_encode(&s, "a<|x|>b", ids, 32);
    ck_assert_uint_eq(n, 4);
    ck_assert_int_eq(ids[0], 5);
    ck_assert_int_eq(ids[1], 6);
    ck_assert_int_eq(ids[2], 10);
    ck_assert_int_eq(ids[3], 8);
    n = tiny_encode(&s, "ab", ids, 32); /* "ab" (unused) then "▁ab" (normal) */
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(ids[0], 12);
    s.add_space_prefix = 0;
    n = tiny_encode(&s, "ab", ids, 32); /* "ab" unused: split back to a, b */
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(ids[0], 6);
    ck_assert_int_eq(ids[1], 8);
    n = tiny_encode(&s, "b b", ids, 32); /* no dummy prefix; inner "▁b" */
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(ids[0], 8);
    ck_assert_int_eq(ids[1], 9);
}
END_TEST

/* Defaults and the decode of unknown tokens in the tiny vocabulary. */
START_TEST(test_tiny_vocab_defaults)
{
    vbuf b;
    mr_error err;
    mr_tokenizer *tok;
    vspec s = default_spec();
    s.bos = -1; /* absent: defaults to 1 */
    ck_assert_int_eq(try_load(&s, &b, &err, &tok), MR_OK);
    free(b.p);
    ck_assert_int_eq(mr_tokenizer_bos(tok), 1);
    ck_assert_int_eq(mr_tokenizer_add_bos(tok), 0); /* stored false */
    ck_assert_int_eq(mr_tokenizer_n_vocab(tok), N_PIECES);
    char out[64];
    mr_detok d;
    mr_detok_init(&d, tok, 1);
    size_t k = mr_detok_push(&d, 0, out, sizeof out); /* <unk>, type unknown */
    ck_assert_uint_eq(k, 5);
    ck_assert(memcmp(out, " \xE2\x81\x87 ", 5) == 0);
    k = mr_detok_push(&d, 9, out, sizeof out); /* "▁b", no longer at the start */
    ck_assert_uint_eq(k, 2);
    ck_assert(memcmp(out, " b", 2) == 0);
    mr_tokenizer_free(tok);
}
END_TEST

/* ---------------------------------------------------------------- main */

/* The source tree holding the shipped demo model and its reference ids
 * (copied from shared/ref, so a fresh clone tests them); 0 if absent. */
static int find_data(void)
{
    struct stat st;
    char path[1200];
    const char *src = getenv("MOERUN_SRCDIR");
    snprintf(g_data, sizeof g_data, "%s", src && *src ? src : ".");
    snprintf(path, sizeof path, "%s/models/tinymix-Q8_0.gguf", g_data);
    return stat(path, &st) == 0;
}

/* Load tinymix's tokenizer once, then run every case (77 without data). */
int main(void)
{
    if (!find_data()) {
        fprintf(stderr, "test_tokenizer: FAIL: the demo model models/tinymix-Q8_0.gguf is "
                        "missing under %s (set MOERUN_SRCDIR)\n", g_data);
        return 1;
    }
    char path[1200];
    mr_error err;
    snprintf(path, sizeof path, "%s/models/tinymix-Q8_0.gguf", g_data);
    if (mr_gguf_open(path, &g_gguf, &err) != MR_OK) {
        fprintf(stderr, "test_tokenizer: %s\n", err.msg);
        return 1;
    }
    if (mr_tokenizer_load(g_gguf, &g_tok, &err) != MR_OK) {
        fprintf(stderr, "test_tokenizer: %s\n", err.msg);
        return 1;
    }
    mr_gguf_close(g_gguf); /* the tokenizer must not need it */
    init_bad_cases();

    Suite *s = suite_create("tokenizer");
    TCase *tc = tcase_create("tinymix");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_vocab_basics);
    tcase_add_loop_test(tc, test_prompt_ids, 0, N_PROMPTS);
    tcase_add_loop_test(tc, test_prompt_roundtrip, 0, N_PROMPTS);
    tcase_add_test(tc, test_leading_spaces_exact);
    tcase_add_test(tc, test_valid_txt);
    tcase_add_test(tc, test_streaming_utf8);
    tcase_add_test(tc, test_random_roundtrip);
    tcase_add_test(tc, test_detok_invalid_bytes);
    tcase_add_test(tc, test_detok_cap_bound);
    tcase_add_test(tc, test_encode_corners);
    suite_add_tcase(s, tc);
    TCase *tm = tcase_create("malformed");
    tcase_add_loop_test(tm, test_malformed_vocab, 0, n_bad_cases);
    tcase_add_test(tm, test_tiny_vocab_rules);
    tcase_add_test(tm, test_tiny_vocab_defaults);
    suite_add_tcase(s, tm);

    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    mr_tokenizer_free(g_tok);
    return failed ? 1 : 0;
}
