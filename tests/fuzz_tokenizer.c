/* fuzz_tokenizer.c - libFuzzer harness for the tokenizers.
 *
 * The first byte of an input chooses what the rest is:
 *   - even: text.  It is tokenized by small byte-level BPE vocabularies
 *     (all 256 byte symbols, a few merges, a control and a user-defined
 *     token) under every supported pre-tokenizer, with the flags the byte's
 *     bits give.  Every id must be in range, and when the text is valid
 *     UTF-8 the streaming detokenizer (special text rendered) must give the
 *     text back byte for byte: a byte-level BPE loses nothing;
 *   - odd: a GGUF image.  When it opens and its tokenizer loads, a fixed
 *     text with special tokens and bad UTF-8 is tokenized and decoded;
 *     a rejection must come with a message.
 * Nothing may crash, read out of bounds or leak.
 *
 * Build: ./configure CC=clang --enable-fuzzers && make tests/fuzz_tokenizer
 *   ./tests/fuzz_tokenizer -max_len=4096 tests/corpus/tokenizer
 * test_bpe_corpus replays tests/corpus/tokenizer/ through the same code
 * (it includes this file with MR_FUZZ_NO_ENTRY).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "tokenizer.h"

static const char *const k_fuzz_pres[] = {
    "gpt-2", "llama-bpe", "qwen2", "deepseek-llm", "deepseek-coder", "deepseek-v3",
    "gpt-4o", "llama4", "kimi-k2", "falcon", "starcoder", "refact", "mpt", "default",
};
#define N_FUZZ_PRES (sizeof k_fuzz_pres / sizeof k_fuzz_pres[0])

static void fuzz_fail(void) { __builtin_trap(); }

typedef struct {
    uint8_t *p;
    size_t n, cap;
} fbuf;

static void fput(fbuf *b, const void *s, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = 2 * (b->n + n) + 256;
        b->p = realloc(b->p, b->cap);
        if (!b->p)
            fuzz_fail();
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}

static void fput_u32(fbuf *b, uint32_t v) { uint8_t x[4] = {v, v >> 8, v >> 16, v >> 24}; fput(b, x, 4); }
static void fput_u64(fbuf *b, uint64_t v) { fput_u32(b, (uint32_t)v); fput_u32(b, (uint32_t)(v >> 32)); }
static void fput_str(fbuf *b, const char *s) { fput_u64(b, strlen(s)); fput(b, s, strlen(s)); }
static void fput_key(fbuf *b, const char *k, uint32_t type) { fput_str(b, k); fput_u32(b, type); }

/* The GPT-2 byte map: the code point that stands for byte c, as UTF-8. */
static size_t byte_piece(unsigned c, char *o)
{
    unsigned cp = c, n = 0;
    if (!((c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || c >= 0xAE)) {
        for (unsigned k = 0; k < c; k++)
            n += !((k >= 0x21 && k <= 0x7E) || (k >= 0xA1 && k <= 0xAC) || k >= 0xAE);
        cp = 256 + n;
    }
    if (cp < 0x80) {
        o[0] = (char)cp;
        o[1] = 0;
        return 1;
    }
    o[0] = (char)(0xC0 | cp >> 6);
    o[1] = (char)(0x80 | (cp & 63));
    o[2] = 0;
    return 2;
}

/* A vocabulary-only GGUF: 256 byte symbols, merges, two special pieces. */
static fbuf make_vocab(const char *pre)
{
    static const char *const merged[] = {"\xc4\xa0t", "th", "he", "in", "er", "\xc4\xa0" "a", "an",
                                         "\xc4\xa0th"};
    static const char *const merges[] = {"\xc4\xa0 t", "t h", "h e", "i n", "e r",
                                         "\xc4\xa0 a", "a n", "\xc4\xa0t h"};
    static const char *const special[] = {"<|endoftext|>", "<|user|>"};
    fbuf b = {0};
    uint32_t n_tok = 256 + 8 + 2;
    fput(&b, "GGUF", 4);
    fput_u32(&b, 3);
    fput_u64(&b, 0);
    fput_u64(&b, 5);
    fput_key(&b, "tokenizer.ggml.model", 8);
    fput_str(&b, "gpt2");
    fput_key(&b, "tokenizer.ggml.pre", 8);
    fput_str(&b, pre);
    fput_key(&b, "tokenizer.ggml.tokens", 9);
    fput_u32(&b, 8);
    fput_u64(&b, n_tok);
    for (unsigned c = 0; c < 256; c++) {
        char o[4];
        byte_piece(c, o);
        fput_str(&b, o);
    }
    for (int i = 0; i < 8; i++)
        fput_str(&b, merged[i]);
    for (int i = 0; i < 2; i++)
        fput_str(&b, special[i]);
    fput_key(&b, "tokenizer.ggml.token_type", 9);
    fput_u32(&b, 5);
    fput_u64(&b, n_tok);
    for (uint32_t i = 0; i < n_tok; i++)
        fput_u32(&b, i == 264 ? 3 : i == 265 ? 4 : 1);
    fput_key(&b, "tokenizer.ggml.merges", 9);
    fput_u32(&b, 8);
    fput_u64(&b, 8);
    for (int i = 0; i < 8; i++)
        fput_str(&b, merges[i]);
    return b;
}

/* Decode ids with special text rendered; the caller frees. */
static char *fuzz_detok(const mr_tokenizer *t, const int32_t *ids, size_t n, size_t *len)
{
    size_t cap = 64 * (n + 1) + 64, k = 0;
    char *out = malloc(cap);
    if (!out)
        fuzz_fail();
    mr_detok d;
    mr_detok_init(&d, t, 0);
    d.special = 1;
    for (size_t i = 0; i < n; i++) {
        const char *p = mr_token_piece(t, ids[i]);
        if (!p || ids[i] < 0 || ids[i] >= mr_tokenizer_n_vocab(t))
            fuzz_fail();
        if (cap - k < 64 + strlen(p)) {
            cap = 2 * cap + strlen(p);
            out = realloc(out, cap);
            if (!out)
                fuzz_fail();
        }
        k += mr_detok_push(&d, ids[i], out + k, cap - k);
    }
    k += mr_detok_flush(&d, out + k, cap - k);
    *len = k;
    return out;
}

static int utf8_ok(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint8_t b = s[i];
        size_t len = b < 0x80 ? 1 : b >= 0xC2 && b <= 0xDF ? 2 : b >= 0xE0 && b <= 0xEF ? 3
                   : b >= 0xF0 && b <= 0xF4 ? 4 : 0;
        if (!len || i + len > n)
            return 0;
        uint8_t lo = 0x80, hi = 0xBF;
        if (b == 0xE0) lo = 0xA0;
        if (b == 0xED) hi = 0x9F;
        if (b == 0xF0) lo = 0x90;
        if (b == 0xF4) hi = 0x8F;
        if (len > 1 && (s[i + 1] < lo || s[i + 1] > hi))
            return 0;
        for (size_t k = 2; k < len; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xBF)
                return 0;
        i += len;
    }
    return 1;
}

static void fuzz_text(const uint8_t *data, size_t size, unsigned mode)
{
    static mr_tokenizer *toks[N_FUZZ_PRES];
    static mr_gguf *ggufs[N_FUZZ_PRES];
    static fbuf imgs[N_FUZZ_PRES];
    static int ready;
    mr_error err;
    if (!ready) {
        for (size_t i = 0; i < N_FUZZ_PRES; i++) {
            imgs[i] = make_vocab(k_fuzz_pres[i]);
            if (mr_gguf_open_mem(imgs[i].p, imgs[i].n, k_fuzz_pres[i], &ggufs[i], &err) ||
                mr_tokenizer_load(ggufs[i], &toks[i], &err))
                fuzz_fail();
        }
        ready = 1;
    }
    unsigned flags = (mode & 2) ? MR_TOK_PARSE_SPECIAL : 0;
    int valid = utf8_ok(data, size);
    for (size_t i = 0; i < N_FUZZ_PRES; i++) {
        int32_t *ids;
        size_t n, len;
        if (mr_tokenize_ex(toks[i], (const char *)data, size, flags, &ids, &n, &err))
            fuzz_fail(); /* any text has ids */
        char *back = fuzz_detok(toks[i], ids, n, &len);
        if (valid && (len != size || (size && memcmp(back, data, size))))
            fuzz_fail();
        free(back);
        free(ids);
    }
}

static void fuzz_vocab(const uint8_t *data, size_t size)
{
    static const char text[] = "Hello  world<|endoftext|> 1999\n\n\xff\xe2\x82 caf\xc3\xa9 \xf0\x9f\xa6\x99";
    mr_error err;
    mr_gguf *g = NULL;
    mr_tokenizer *t = NULL;
    err.msg[0] = '\0';
    if (mr_gguf_open_mem(data, size, "fuzz.gguf", &g, &err) != MR_OK) {
        if (!err.msg[0])
            fuzz_fail();
        return;
    }
    err.msg[0] = '\0';
    if (mr_tokenizer_load(g, &t, &err) != MR_OK) {
        if (!err.msg[0] || t)
            fuzz_fail();
        mr_gguf_close(g);
        return;
    }
    for (unsigned flags = 0; flags < 4; flags++) {
        int32_t *ids;
        size_t n, len;
        if (mr_tokenize_ex(t, text, sizeof text - 1, flags, &ids, &n, &err) == MR_OK) {
            free(fuzz_detok(t, ids, n, &len));
            free(ids);
        } else if (!err.msg[0]) {
            fuzz_fail();
        }
    }
    mr_tokenizer_free(t);
    mr_gguf_close(g);
}

/* One input (see the file comment). */
static int fuzz_tokenizer_one(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if (data[0] & 1)
        fuzz_vocab(data + 1, size - 1);
    else
        fuzz_text(data + 1, size - 1, data[0]);
    return 0;
}

#ifndef MR_FUZZ_NO_ENTRY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_tokenizer_one(data, size);
}
#endif
