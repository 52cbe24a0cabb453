/* tokenizer.c - loading a vocabulary from GGUF metadata, the
 * SentencePiece-BPE encoder ("llama" vocabularies), the top of every
 * encoding (special tokens split out first, see tok_special.c; then each
 * piece of text to SentencePiece here or to the byte-level BPE of bpe.c),
 * and the streaming detokenizer for both.
 *
 * Encoding follows sentencepiece's BPE model (which llama.cpp's SPM
 * tokenizer mirrors):
 *   1. ' ' becomes "▁" (U+2581) and, if add_space_prefix, "▁" is prepended;
 *   2. the text is split into UTF-8 characters (an invalid byte is a symbol
 *      of its own; a user-defined piece is matched first, longest wins, and
 *      is never merged further);
 *   3. repeatedly, the adjacent pair whose concatenation is a vocabulary
 *      piece of the highest score is merged (ties: leftmost), using a heap
 *      of candidate pairs whose stale entries are skipped when popped;
 *   4. each final symbol becomes its id; a merged piece of type "unused" is
 *      split back into the two symbols it was made of (as sentencepiece
 *      does); a symbol that is not in the vocabulary falls back to one
 *      "<0xXX>" token per byte, or to the unknown token if that is missing.
 * Merges only ever produce normal, user-defined or unused pieces: control,
 * unknown and byte pieces are never formed from text (sentencepiece keeps
 * them out of its piece table; this is where llama.cpp differs, and would
 * merge "<", "s", ">" into BOS).
 *
 * Pieces are validated at load (UTF-8, no NUL, byte pieces spelled
 * "<0xHH>"), so the detokenizer only needs to repair what byte tokens and
 * stream boundaries produce.  A byte-level BPE piece may end inside a
 * UTF-8 character: its bytes wait in the detokenizer until the character
 * is whole.
 */
#include "tokenizer.h"

#include "tok_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define K_TOKENS "tokenizer.ggml.tokens"
#define K_SCORES "tokenizer.ggml.scores"
#define K_TYPES "tokenizer.ggml.token_type"

/* ---------------------------------------------------------------- UTF-8 */

/* Length a lead byte announces (1..4), or 0 if it can never start a valid
 * sequence (continuation bytes, C0, C1, F5..FF). */
static int utf8_lead_len(unsigned char b)
{
    if (b < 0x80) return 1;
    if (b >= 0xC2 && b <= 0xDF) return 2;
    if (b >= 0xE0 && b <= 0xEF) return 3;
    if (b >= 0xF0 && b <= 0xF4) return 4;
    return 0;
}

/* Whether b may be byte number pos (1..3) of a sequence led by lead; the
 * second byte's range excludes overlongs, surrogates and > U+10FFFF. */
static int utf8_cont_ok(unsigned char lead, size_t pos, unsigned char b)
{
    unsigned char lo = 0x80, hi = 0xBF;
    if (pos == 1) {
        if (lead == 0xE0) lo = 0xA0;
        else if (lead == 0xED) hi = 0x9F;
        else if (lead == 0xF0) lo = 0x90;
        else if (lead == 0xF4) hi = 0x8F;
    }
    return b >= lo && b <= hi;
}

/* Length (1..4) of the valid UTF-8 sequence at s (n > 0 bytes available),
 * or 0 if the bytes there are not one. */
static size_t utf8_valid_len(const unsigned char *s, size_t n)
{
    size_t len = (size_t)utf8_lead_len(s[0]);
    if (len == 0 || len > n)
        return 0;
    for (size_t i = 1; i < len; i++)
        if (!utf8_cont_ok(s[0], i, s[i]))
            return 0;
    return len;
}

/* ------------------------------------------------------------ hash table */

/* FNV-1a over n bytes. */
static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* Id of the piece equal to s[0..n), or -1.  Duplicates: the lowest id
 * (SentencePiece), the highest (BPE, as llama.cpp's token_to_id). */
int32_t mr_tok_lookup(const mr_tokenizer *t, const char *s, size_t n)
{
    for (uint64_t i = hash_bytes(s, n) & t->mask;; i = (i + 1) & t->mask) {
        int32_t id = t->slots[i];
        if (id < 0)
            return -1;
        if (t->piece_len[id] == n && memcmp(t->arena + t->piece_off[id], s, n) == 0)
            return id;
    }
}

#define lookup mr_tok_lookup

/* Insert id unless an equal piece is already present (first one wins).
 * The table is at least twice the vocabulary, so a free slot exists. */
static void hash_insert(mr_tokenizer *t, int32_t id)
{
    const char *s = t->arena + t->piece_off[id];
    size_t n = t->piece_len[id];
    for (uint64_t i = hash_bytes(s, n) & t->mask;; i = (i + 1) & t->mask) {
        int32_t other = t->slots[i];
        if (other < 0) {
            t->slots[i] = id;
            return;
        }
        if (t->piece_len[other] == n && memcmp(t->arena + t->piece_off[other], s, n) == 0)
            return;
    }
}

/* --------------------------------------------------------------- loading */

/* Release t and everything it owns; NULL is a no-op. */
void mr_tokenizer_free(mr_tokenizer *t)
{
    if (!t)
        return;
    free(t->arena);
    free(t->piece_off);
    free(t->piece_len);
    free(t->scores);
    free(t->types);
    free(t->slots);
    free(t->user_ids);
    free(t->attr);
    free(t->special);
    mr_bpe_free(t->bpe);
    mr_pretok_free(t->pretok);
    free(t);
}

/* Value of the hex digit c, or -1. */
static int hex_val(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* The byte a "<0xHH>" piece stands for, or -1 if s is not spelled so. */
static int parse_byte_piece(const char *s, size_t n)
{
    if (n != 6 || s[0] != '<' || s[1] != '0' || s[2] != 'x' || s[5] != '>')
        return -1;
    int hi = hex_val(s[3]), lo = hex_val(s[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

typedef struct { /* sort key of a user-defined piece */
    unsigned char first;
    uint32_t len;
    int32_t id;
} user_key;

/* Order user-defined pieces by first byte, then longest first, then id. */
static int cmp_user(const void *a, const void *b)
{
    const user_key *x = a, *y = b;
    if (x->first != y->first) return x->first < y->first ? -1 : 1;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return x->id < y->id ? -1 : (x->id > y->id);
}

/* Copy and check the three parallel arrays into t.  Every failure names
 * the key and the offset of its value. */
static mr_status load_vocab(const mr_gguf *g, mr_tokenizer *t, mr_error *err)
{
    const mr_gguf_value *toks, *scores, *types;
    const mr_gguf_kv *kv_tok = mr_gguf_find(g, K_TOKENS);
    mr_status s;
    if ((s = mr_gguf_get_arr(g, K_TOKENS, MR_GGUF_STRING, 0, &toks, err)))
        return s;
    uint64_t n = toks->v.arr.n;
    if (n == 0 || n > INT32_MAX)
        return mr_fail(err, MR_EFORMAT, g->path, K_TOKENS, kv_tok->val.offset,
                       "vocabulary size %llu is not in 1..%d", (unsigned long long)n,
                       INT32_MAX);
    scores = types = NULL; /* a BPE vocabulary may go without them (llama.cpp) */
    if (((t->kind == TOK_SPM || mr_gguf_find(g, K_SCORES)) &&
         (s = mr_gguf_get_arr(g, K_SCORES, MR_GGUF_FLOAT32, n, &scores, err))) ||
        ((t->kind == TOK_SPM || mr_gguf_find(g, K_TYPES)) &&
         (s = mr_gguf_get_arr(g, K_TYPES, MR_GGUF_INT32, n, &types, err))))
        return s;

    t->n_vocab = (int32_t)n;
    size_t total = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t len = toks->v.arr.strs[i].len;
        if (len > UINT32_MAX || len >= SIZE_MAX - total)
            return mr_fail(err, MR_EFORMAT, g->path, K_TOKENS, toks->offset,
                           "piece %llu is too long (%llu bytes)", (unsigned long long)i,
                           (unsigned long long)len);
        total += (size_t)len + 1;
    }
    t->arena = malloc(total);
    t->piece_off = malloc(n * sizeof *t->piece_off);
    t->piece_len = malloc(n * sizeof *t->piece_len);
    t->scores = malloc(n * sizeof *t->scores);
    t->types = malloc(n);
    if (!t->arena || !t->piece_off || !t->piece_len || !t->scores || !t->types)
        return mr_fail(err, MR_ENOMEM, g->path, K_TOKENS, MR_NO_OFFSET,
                       "no memory for %llu pieces", (unsigned long long)n);

    size_t pos = 0;
    for (uint64_t i = 0; i < n; i++) {
        mr_str p = toks->v.arr.strs[i];
        const unsigned char *u = (const unsigned char *)p.ptr;
        for (uint64_t k = 0; k < p.len;) {
            size_t l = u[k] ? utf8_valid_len(u + k, (size_t)(p.len - k)) : 0;
            if (l == 0)
                return mr_fail(err, MR_EFORMAT, g->path, K_TOKENS, toks->offset,
                               "piece %llu has a NUL or invalid UTF-8 byte at %llu",
                               (unsigned long long)i, (unsigned long long)k);
            k += l;
        }
        if (p.len)
            memcpy(t->arena + pos, p.ptr, (size_t)p.len);
        t->arena[pos + p.len] = '\0';
        t->piece_off[i] = pos;
        t->piece_len[i] = (uint32_t)p.len;
        pos += (size_t)p.len + 1;

        float sc = scores ? mr_gguf_arr_f32(scores, i) : 0.0f;
        if (isnan(sc))
            return mr_fail(err, MR_EFORMAT, g->path, K_SCORES, scores->offset,
                           "score %llu is NaN", (unsigned long long)i);
        t->scores[i] = sc;

        int64_t ty = types ? mr_gguf_arr_int(types, i) : TT_NORMAL;
        if (ty < TT_NORMAL || ty > TT_BYTE)
            return mr_fail(err, MR_EFORMAT, g->path, K_TYPES, types->offset,
                           "token %llu has type %lld, expected 1..6", (unsigned long long)i,
                           (long long)ty);
        if (ty == TT_BYTE && parse_byte_piece(p.ptr, (size_t)p.len) < 0)
            return mr_fail(err, MR_EFORMAT, g->path, K_TOKENS, toks->offset,
                           "byte token %llu is '%.*s', not <0xHH>", (unsigned long long)i,
                           (int)(p.len > 32 ? 32 : p.len), p.ptr);
        t->types[i] = (uint8_t)ty;
    }
    return MR_OK;
}

/* Build the piece->id table, the byte table and the user-defined list. */
static mr_status build_indexes(const mr_gguf *g, mr_tokenizer *t, mr_error *err)
{
    uint64_t cap = 1;
    while (cap < 2 * (uint64_t)t->n_vocab)
        cap <<= 1;
    t->mask = cap - 1;
    t->slots = malloc((size_t)cap * sizeof *t->slots);
    if (!t->slots)
        return mr_fail(err, MR_ENOMEM, g->path, K_TOKENS, MR_NO_OFFSET, "no memory");
    memset(t->slots, 0xff, (size_t)cap * sizeof *t->slots); /* all -1 */
    for (int32_t i = 0; i < t->n_vocab; i++) /* the first (SPM) or last (BPE) id wins */
        hash_insert(t, t->kind == TOK_BPE ? t->n_vocab - 1 - i : i);

    for (int b = 0; b < 256; b++) {
        char name[8];
        static const char hex[] = "0123456789ABCDEF";
        memcpy(name, "<0x", 3);
        name[3] = hex[b >> 4];
        name[4] = hex[b & 15];
        name[5] = '>';
        t->byte_id[b] = lookup(t, name, 6);
    }
    for (int32_t i = 0; i < t->n_vocab; i++) { /* "<0xab>" spelled in lower case */
        if (t->types[i] != TT_BYTE)
            continue;
        int b = parse_byte_piece(t->arena + t->piece_off[i], t->piece_len[i]);
        if (t->byte_id[b] < 0)
            t->byte_id[b] = i;
    }

    int32_t n_user = 0;
    for (int32_t i = 0; i < t->n_vocab; i++) {
        n_user += t->types[i] == TT_USER && t->piece_len[i] > 0;
        t->n_unused += t->types[i] == TT_UNUSED;
    }
    user_key *keys = malloc(((size_t)n_user + 1) * sizeof *keys);
    t->user_ids = malloc(((size_t)n_user + 1) * sizeof *t->user_ids);
    if (!keys || !t->user_ids) {
        free(keys);
        return mr_fail(err, MR_ENOMEM, g->path, K_TOKENS, MR_NO_OFFSET, "no memory");
    }
    int32_t k = 0;
    for (int32_t i = 0; i < t->n_vocab; i++)
        if (t->types[i] == TT_USER && t->piece_len[i] > 0)
            keys[k++] = (user_key){(unsigned char)t->arena[t->piece_off[i]], t->piece_len[i], i};
    qsort(keys, (size_t)n_user, sizeof *keys, cmp_user);
    for (int32_t j = 0; j < n_user; j++)
        t->user_ids[j] = keys[j].id;
    free(keys);
    for (int b = 0, j = 0; b <= 256; b++) {
        while (j < n_user && (unsigned char)t->arena[t->piece_off[t->user_ids[j]]] < b)
            j++;
        t->user_first[b] = b == 256 ? n_user : j;
    }
    return MR_OK;
}

/* Read an optional special-token id and check it against the vocabulary;
 * *out keeps its default when the key is absent. */
static mr_status load_special(const mr_gguf *g, const char *key, int32_t n_vocab,
                              int32_t *out, mr_error *err)
{
    uint32_t v = 0;
    if (!mr_gguf_find(g, key))
        return MR_OK;
    mr_status s = mr_gguf_get_u32(g, key, &v, err);
    if (s)
        return s;
    if (v >= (uint32_t)n_vocab) {
        const mr_gguf_kv *kv = mr_gguf_find(g, key);
        return mr_fail(err, MR_EFORMAT, g->path, key, kv ? kv->val.offset : MR_NO_OFFSET,
                       "token id %u is not below the vocabulary size %d", v, n_vocab);
    }
    *out = (int32_t)v;
    return MR_OK;
}

/* The kind-specific defaults and structures: SentencePiece needs nothing
 * more; BPE gets its pre-tokenizer (tokenizer.ggml.pre; missing = "default"
 * as llama.cpp) and merges. */
static mr_status load_kind(const mr_gguf *g, mr_tokenizer *t, mr_error *err)
{
    static const char k_pre[] = "tokenizer.ggml.pre";
    if (t->kind == TOK_SPM)
        return MR_OK;
    mr_str pre = {NULL, 0};
    mr_status s;
    const mr_gguf_kv *kv = mr_gguf_find(g, k_pre);
    if (kv && (s = mr_gguf_get_str(g, k_pre, &pre, err)))
        return s;
    char name[65];
    size_t n = pre.len > 64 ? 64 : (size_t)pre.len;
    memcpy(name, pre.ptr ? pre.ptr : "", n);
    name[n] = '\0';
    if (kv && pre.len > 0 && (pre.len > 64 || !mr_pretok_known(name)))
        return mr_fail(err, MR_EUNSUPPORTED, g->path, k_pre, kv->val.offset,
                       "unknown pre-tokenizer '%.*s': its split pattern is not known, and "
                       "another would tokenize wrongly", (int)n, name);
    if ((s = mr_pretok_new(name, n, &t->pretok, err)))
        return s;
    t->add_bos = mr_pretok_get_info(t->pretok)->add_bos_default;
    return mr_bpe_build(g, t, err);
}

/* Build a tokenizer from g's tokenizer.ggml.* keys (see tokenizer.h).  On
 * failure *out is NULL and err names the file, the key and its offset. */
mr_status mr_tokenizer_load(const mr_gguf *g, mr_tokenizer **out, mr_error *err)
{
    static const char k_model[] = "tokenizer.ggml.model";
    mr_str model;
    mr_status s;
    *out = NULL;
    if ((s = mr_gguf_get_str(g, k_model, &model, err)))
        return s;
    int kind;
    if (model.len == 5 && memcmp(model.ptr, "llama", 5) == 0) {
        kind = TOK_SPM;
    } else if (model.len == 4 && memcmp(model.ptr, "gpt2", 4) == 0) {
        kind = TOK_BPE;
    } else {
        const mr_gguf_kv *kv = mr_gguf_find(g, k_model);
        return mr_fail(err, MR_EUNSUPPORTED, g->path, k_model, kv->val.offset,
                       "tokenizer model '%.*s' is not supported (only 'llama' and 'gpt2')",
                       (int)(model.len > 64 ? 64 : model.len), model.ptr);
    }
    mr_tokenizer *t = calloc(1, sizeof *t);
    if (!t)
        return mr_fail(err, MR_ENOMEM, g->path, NULL, MR_NO_OFFSET, "no memory");
    t->kind = kind;
    if (kind == TOK_SPM) { /* llama.cpp's defaults per vocabulary type */
        t->bos = 1;
        t->eos = 2;
        t->unk = 0;
        t->add_bos = 1;
        t->add_space_prefix = 1;
    } else {
        t->bos = t->eos = 11;
        t->unk = -1;
    }
    if ((s = load_vocab(g, t, err)) || (s = build_indexes(g, t, err)))
        goto fail;
    if (t->bos >= t->n_vocab) /* a default out of range is no token (llama.cpp) */
        t->bos = -1;
    if (t->eos >= t->n_vocab)
        t->eos = -1;
    if (t->unk >= t->n_vocab)
        t->unk = -1;
    if ((s = load_kind(g, t, err)) ||
        (s = load_special(g, "tokenizer.ggml.bos_token_id", t->n_vocab, &t->bos, err)) ||
        (s = load_special(g, "tokenizer.ggml.eos_token_id", t->n_vocab, &t->eos, err)) ||
        (s = load_special(g, "tokenizer.ggml.unknown_token_id", t->n_vocab, &t->unk, err)) ||
        (s = mr_gguf_get_bool_opt(g, "tokenizer.ggml.add_bos_token", &t->add_bos, err)) ||
        (s = mr_gguf_get_bool_opt(g, "tokenizer.ggml.add_eos_token", &t->add_eos, err)) ||
        (kind == TOK_SPM &&
         (s = mr_gguf_get_bool_opt(g, "tokenizer.ggml.add_space_prefix", &t->add_space_prefix,
                                   err))) ||
        (s = mr_tok_build_attrs(g, t, err)))
        goto fail;
    if (t->kind == TOK_SPM && t->unk < 0)
        t->unk = 0;
    *out = t;
    return MR_OK;
fail:
    mr_tokenizer_free(t);
    return s;
}

/* Accessors: vocabulary size, BOS/EOS ids, whether BOS is added by default. */
int32_t mr_tokenizer_n_vocab(const mr_tokenizer *t) { return t->n_vocab; }
int32_t mr_tokenizer_bos(const mr_tokenizer *t) { return t->bos; }
int32_t mr_tokenizer_eos(const mr_tokenizer *t) { return t->eos; }
int mr_tokenizer_add_bos(const mr_tokenizer *t) { return t->add_bos; }

/* The NUL-terminated piece of id (owned by t), or NULL when out of range. */
const char *mr_token_piece(const mr_tokenizer *t, int32_t id)
{
    if (id < 0 || id >= t->n_vocab)
        return NULL;
    return t->arena + t->piece_off[id];
}

/* -------------------------------------------------------------- encoding */

typedef struct {
    int32_t prev, next; /* neighbours in the live list, -1 at the ends */
    uint32_t start, len; /* bytes of the normalised text; len 0 = merged away */
    int frozen;          /* a user-defined piece: never merged */
} symbol;

typedef struct {
    float score;
    int32_t left, right;
    uint32_t size; /* left.len + right.len when queued: detects stale pairs */
} pair;

typedef struct {          /* one merge, kept to split "unused" pieces back */
    int32_t right;        /* index of the right symbol */
    uint32_t left_len, total;
    int32_t next;         /* earlier merge into the same left symbol, or -1 */
} merge_rec;

typedef struct {          /* a piece of text still to be turned into ids */
    int32_t idx;          /* symbol that starts there (keys merge_head) */
    uint32_t start, len;
} span;

typedef struct {
    const mr_tokenizer *t;
    const char *text; /* normalised */
    symbol *sym;
    pair *heap;
    size_t n_heap;
    merge_rec *merges;  /* NULL unless the vocabulary has unused pieces */
    int32_t *merge_head;
    int32_t n_merges;
    int32_t *ids;
    size_t n_ids;
} encoder;

/* Whether pair a should be merged before pair b: higher score, then the
 * leftmost. */
static int pair_before(const pair *a, const pair *b)
{
    if (a->score != b->score)
        return a->score > b->score;
    return a->left < b->left;
}

/* Push a pair; the heap was sized for every pair one encoding can queue. */
static void heap_push(encoder *e, pair p)
{
    size_t i = e->n_heap++;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!pair_before(&p, &e->heap[up]))
            break;
        e->heap[i] = e->heap[up];
        i = up;
    }
    e->heap[i] = p;
}

/* Remove and return the best pair (the heap is not empty). */
static pair heap_pop(encoder *e)
{
    pair top = e->heap[0], last = e->heap[--e->n_heap];
    size_t i = 0, n = e->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && pair_before(&e->heap[c + 1], &e->heap[c]))
            c++;
        if (!pair_before(&e->heap[c], &last))
            break;
        e->heap[i] = e->heap[c];
        i = c;
    }
    if (n)
        e->heap[i] = last;
    return top;
}

/* Queue symbols l and r if their concatenation is a piece merges may form. */
static void try_pair(encoder *e, int32_t l, int32_t r)
{
    if (l < 0 || r < 0 || e->sym[l].frozen || e->sym[r].frozen)
        return;
    uint32_t size = e->sym[l].len + e->sym[r].len;
    int32_t id = lookup(e->t, e->text + e->sym[l].start, size);
    if (id < 0)
        return;
    uint8_t ty = e->t->types[id];
    if (ty != TT_NORMAL && ty != TT_USER && ty != TT_UNUSED)
        return;
    heap_push(e, (pair){e->t->scores[id], l, r, size});
}

/* Append the ids for bytes s[0..n) that no piece covers: "<0xXX>" tokens,
 * or the unknown id (once per run of missing bytes). */
static void emit_bytes(encoder *e, const char *s, size_t n)
{
    int last_unk = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = e->t->byte_id[(unsigned char)s[i]];
        if (id >= 0) {
            e->ids[e->n_ids++] = id;
            last_unk = 0;
        } else if (!last_unk) {
            e->ids[e->n_ids++] = e->t->unk;
            last_unk = 1;
        }
    }
}

/* Append the ids of the final symbol idx covering len bytes at start.
 * Unused pieces are split back along the merges that formed them, with an
 * explicit stack (room for one entry per symbol: each split adds one). */
static void emit_symbol(encoder *e, int32_t idx, uint32_t start, uint32_t len, span *stack)
{
    size_t top = 0;
    stack[top++] = (span){idx, start, len};
    while (top) {
        span s = stack[--top];
        const char *p = e->text + s.start;
        int32_t id = lookup(e->t, p, s.len);
        if (id >= 0 && e->t->types[id] == TT_UNUSED && e->merges) {
            int32_t m = e->merge_head[s.idx];
            while (m >= 0 && e->merges[m].total != s.len)
                m = e->merges[m].next;
            if (m >= 0) { /* right half first: the stack is LIFO */
                const merge_rec *r = &e->merges[m];
                stack[top++] = (span){r->right, s.start + r->left_len, s.len - r->left_len};
                stack[top++] = (span){s.idx, s.start, r->left_len};
                continue;
            }
        }
        if (id >= 0 && e->t->types[id] != TT_UNKNOWN)
            e->ids[e->n_ids++] = id;
        else
            emit_bytes(e, p, s.len);
    }
}

/* Longest user-defined piece at s (n bytes left), or 0. */
static size_t match_user(const mr_tokenizer *t, const char *s, size_t n)
{
    unsigned char b = (unsigned char)s[0];
    for (int32_t j = t->user_first[b]; j < t->user_first[b + 1]; j++) {
        int32_t id = t->user_ids[j];
        size_t l = t->piece_len[id];
        if (l <= n && memcmp(t->arena + t->piece_off[id], s, l) == 0)
            return l;
    }
    return 0;
}

/* Run BPE over the normalised text of n bytes, appending ids to e->ids. */
static mr_status bpe(encoder *e, size_t n, mr_error *err)
{
    const mr_tokenizer *t = e->t;
    size_t n_sym = 0;
    mr_status st = MR_OK;
    /* n symbols at most; each merge queues at most 2 pairs after the first n-1 */
    e->sym = malloc(n * sizeof *e->sym);
    e->heap = malloc(3 * n * sizeof *e->heap);
    span *stack = malloc((n + 1) * sizeof *stack);
    if (t->n_unused) {
        e->merges = malloc(n * sizeof *e->merges);
        e->merge_head = malloc(n * sizeof *e->merge_head);
    }
    if (!e->sym || !e->heap || !stack || (t->n_unused && (!e->merges || !e->merge_head))) {
        st = mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory to tokenize");
        goto done;
    }
    for (size_t i = 0; i < n;) {
        size_t l = 0;
        int frozen = 0;
        if (t->user_first[256] > 0 && (l = match_user(t, e->text + i, n - i)) > 0)
            frozen = 1;
        else if ((l = utf8_valid_len((const unsigned char *)e->text + i, n - i)) == 0)
            l = 1;
        e->sym[n_sym] = (symbol){(int32_t)n_sym - 1, (int32_t)n_sym + 1, (uint32_t)i,
                                 (uint32_t)l, frozen};
        if (e->merge_head)
            e->merge_head[n_sym] = -1;
        n_sym++;
        i += l;
    }
    e->sym[n_sym - 1].next = -1;
    for (size_t i = 1; i < n_sym; i++)
        try_pair(e, (int32_t)i - 1, (int32_t)i);

    while (e->n_heap) {
        pair p = heap_pop(e);
        symbol *l = &e->sym[p.left], *r = &e->sym[p.right];
        if (l->len == 0 || r->len == 0 || l->len + r->len != p.size)
            continue; /* one side changed since the pair was queued */
        if (e->merges) {
            e->merges[e->n_merges] = (merge_rec){p.right, l->len, p.size,
                                                 e->merge_head[p.left]};
            e->merge_head[p.left] = e->n_merges++;
        }
        l->len = p.size;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0)
            e->sym[r->next].prev = p.left;
        try_pair(e, l->prev, p.left);
        try_pair(e, p.left, l->next);
    }
    for (int32_t i = 0; i >= 0; i = e->sym[i].next)
        emit_symbol(e, i, e->sym[i].start, e->sym[i].len, stack);
done:
    free(stack);
    free(e->sym);
    free(e->heap);
    free(e->merges);
    free(e->merge_head);
    return st;
}

int mr_idvec_push(mr_idvec *v, int32_t id)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? 2 * v->cap : 64;
        int32_t *p = realloc(v->v, cap * sizeof *p);
        if (!p)
            return -1;
        v->v = p;
        v->cap = cap;
    }
    v->v[v->n++] = id;
    return 0;
}

/* SentencePiece encoding of one fragment (see the file comment), with the
 * dummy "▁" prefix when space_prefix is set. */
static mr_status spm_encode(const mr_tokenizer *t, const char *text, size_t len, int space_prefix,
                            mr_idvec *out, mr_error *err)
{
    size_t n_norm = 0;
    if (!len)
        return MR_OK;
    char *norm = malloc(3 * len + 3);
    if (!norm)
        return mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory to tokenize");
    if (space_prefix) {
        memcpy(norm, "\xE2\x96\x81", 3);
        n_norm = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(norm + n_norm, "\xE2\x96\x81", 3);
            n_norm += 3;
        } else {
            norm[n_norm++] = text[i];
        }
    }
    encoder e = {.t = t, .text = norm};
    e.ids = malloc(n_norm * sizeof *e.ids); /* one id per byte at most */
    if (!e.ids) {
        free(norm);
        return mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory to tokenize");
    }
    mr_status s = bpe(&e, n_norm, err);
    free(norm);
    for (size_t i = 0; !s && i < e.n_ids; i++)
        if (mr_idvec_push(out, e.ids[i]))
            s = mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory to tokenize");
    free(e.ids);
    return s;
}

/* *out = a copy of text in which every byte that does not begin a valid
 * UTF-8 sequence (or belongs to a broken one) is U+FFFD, as llama.cpp's
 * decoder does.  Returns 0 (text valid, *out NULL), 1 (*out malloc'd) or
 * -1 (no memory). */
static int fix_utf8(const char *text, size_t len, char **out, size_t *out_len)
{
    const unsigned char *u = (const unsigned char *)text;
    size_t i = 0, bad = 0;
    *out = NULL;
    for (i = 0; i < len;) {
        size_t l = utf8_valid_len(u + i, len - i);
        if (l == 0) {
            bad++;
            l = 1;
        }
        i += l;
    }
    if (!bad)
        return 0;
    char *o = malloc(len + 2 * bad);
    if (!o)
        return -1;
    size_t k = 0;
    for (i = 0; i < len;) {
        size_t l = utf8_valid_len(u + i, len - i);
        if (l == 0) {
            memcpy(o + k, "\xEF\xBF\xBD", 3);
            k += 3;
            i++;
        } else {
            memcpy(o + k, text + i, l);
            k += l;
            i += l;
        }
    }
    *out_len = k;
    *out = o;
    return 1;
}

/* Encode text (see tokenizer.h).  Texts above ~700 MB are refused
 * (MR_EINVAL) so that every index fits in 32 bits. */
mr_status mr_tokenize_ex(const mr_tokenizer *t, const char *text, size_t len, unsigned flags,
                         int32_t **ids, size_t *n_ids, mr_error *err)
{
    *ids = NULL;
    *n_ids = 0;
    if (!text && len)
        return mr_fail(err, MR_EINVAL, NULL, "text", MR_NO_OFFSET, "NULL text");
    if (len > (INT32_MAX - 3) / 3)
        return mr_fail(err, MR_EINVAL, NULL, "text", MR_NO_OFFSET,
                       "text of %zu bytes is too long to tokenize", len);
    if ((flags & MR_TOK_ADD_BOS) && t->bos < 0)
        return mr_fail(err, MR_EINVAL, NULL, "tokenizer.ggml.bos_token_id", MR_NO_OFFSET,
                       "the vocabulary has no BOS token to add");
    mr_idvec out = {0};
    mr_frag *fr = NULL;
    size_t n_fr = 0;
    char *fixed_text = NULL;
    mr_status s = MR_OK;
    if (t->kind == TOK_BPE && len) { /* the regexes need valid UTF-8 */
        size_t fl = 0;
        int r = fix_utf8(text, len, &fixed_text, &fl);
        if (r < 0)
            s = mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory to tokenize");
        if (r > 0) {
            text = fixed_text;
            len = fl;
        }
    }
    unsigned mask = (flags & MR_TOK_PARSE_SPECIAL) ? TA_CONTROL | TA_UNKNOWN : 0;
    if (t->kind == TOK_BPE)
        mask |= TA_USER; /* user-defined pieces are split out before BPE (SPM: in it) */
    if (!s)
        s = mr_tok_partition(t, text, len, mask, &fr, &n_fr, err);
    if (!s && (flags & MR_TOK_ADD_BOS) && mr_idvec_push(&out, t->bos))
        s = mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory to tokenize");
    int prev_special = 1;
    for (size_t i = 0; !s && i < n_fr; i++) {
        if (fr[i].id >= 0) {
            if (mr_idvec_push(&out, fr[i].id))
                s = mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory to tokenize");
            prev_special = 1;
        } else if (t->kind == TOK_BPE) {
            s = mr_bpe_encode(t, text + fr[i].start, fr[i].len, &out, err);
        } else {
            s = spm_encode(t, text + fr[i].start, fr[i].len, t->add_space_prefix && prev_special,
                           &out, err);
            prev_special = 0;
        }
    }
    if (!s && (flags & MR_TOK_ADD_BOS) && t->add_eos && t->eos >= 0 && mr_idvec_push(&out, t->eos))
        s = mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory to tokenize");
    if (!s && !out.v && !(out.v = malloc(sizeof *out.v))) /* callers may free what they get */
        s = mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory to tokenize");
    free(fr);
    free(fixed_text);
    if (s) {
        free(out.v);
        return s;
    }
    *ids = out.v;
    *n_ids = out.n;
    return MR_OK;
}

/* BOS when add_bos; special-token text is ordinary text. */
mr_status mr_tokenize(const mr_tokenizer *t, const char *text, size_t len, int add_bos,
                      int32_t **ids, size_t *n_ids, mr_error *err)
{
    return mr_tokenize_ex(t, text, len, add_bos ? MR_TOK_ADD_BOS : 0, ids, n_ids, err);
}

/* --------------------------------------------------------- detokenizer */

/* Bounded output: whole characters only; what does not fit is dropped. */
typedef struct {
    char *out;
    size_t cap, n;
} sink;

/* Write k bytes if they all fit. */
static void sink_put(sink *o, const void *p, size_t k)
{
    if (k <= o->cap - o->n) {
        memcpy(o->out + o->n, p, k);
        o->n += k;
    }
}

static const char k_replacement[3] = {'\xEF', '\xBF', '\xBD'}; /* U+FFFD */

/* Feed one byte through the UTF-8 assembler: complete valid sequences are
 * written, a sequence broken by b becomes U+FFFD and b starts afresh. */
static void detok_byte(mr_detok *d, sink *o, unsigned char b)
{
    if (d->n_pending) {
        unsigned char lead = d->pending[0];
        if (utf8_cont_ok(lead, d->n_pending, b)) {
            d->pending[d->n_pending++] = b;
            if (d->n_pending == (size_t)utf8_lead_len(lead)) {
                sink_put(o, d->pending, d->n_pending);
                d->n_pending = 0;
            }
            return;
        }
        sink_put(o, k_replacement, 3);
        d->n_pending = 0;
    }
    int l = utf8_lead_len(b);
    if (l == 1)
        sink_put(o, &b, 1);
    else if (l == 0)
        sink_put(o, k_replacement, 3);
    else
        d->pending[d->n_pending++] = b;
}

/* The bytes of BPE token id (piece p, n bytes) into o: normal pieces
 * through the byte map (a piece with a character outside it as written),
 * user-defined pieces as written, unknown ones as written when special
 * text is asked for, byte pieces as their byte, unused ones not at all. */
static size_t detok_bpe(mr_detok *d, sink *o, int32_t id, const char *p, size_t n)
{
    const mr_tokenizer *t = d->tok;
    uint8_t a = t->attr[id];
    if (a & TA_USER) {
        /* as written */
    } else if (a & TA_UNKNOWN) {
        if (!d->special)
            return o->n;
    } else if (a & TA_NORMAL) {
        size_t rn;
        const char *raw = mr_bpe_piece_bytes(t, id, &rn);
        if (raw) {
            p = raw;
            n = rn;
        }
    } else if (a & TA_BYTE) {
        int b = parse_byte_piece(p, n);
        if (b >= 0)
            detok_byte(d, o, (unsigned char)b);
        return o->n;
    } else {
        return o->n;
    }
    for (size_t i = 0; i < n; i++)
        detok_byte(d, o, (unsigned char)p[i]);
    return o->n;
}

/* Start a stream: nothing pending; with strip_leading_space the first
 * piece loses one leading "▁" (the dummy prefix the encoder added). */
void mr_detok_init(mr_detok *d, const mr_tokenizer *t, int strip_leading_space)
{
    memset(d, 0, sizeof *d);
    d->tok = t;
    d->at_start = strip_leading_space != 0;
}

/* Append the text of id.  Bound: pieces are valid UTF-8 (checked at load),
 * so a piece never continues a pending sequence; the worst case is one
 * U+FFFD for the broken pending bytes plus the piece itself, i.e. at most
 * 3 + strlen(piece) bytes (6 for a byte token, 8 for an unknown token).
 * Hence cap >= 64 + strlen(mr_token_piece(id)) always suffices.  With a
 * smaller cap, characters that do not fit are dropped whole, never written
 * in part, and out is never overrun.  Unknown-type tokens read " ⁇ "
 * (sentencepiece's surface); out-of-range ids emit nothing. */
size_t mr_detok_push(mr_detok *d, int32_t id, char *out, size_t cap)
{
    const mr_tokenizer *t = d->tok;
    sink o = {out, cap, 0};
    if (id < 0 || id >= t->n_vocab)
        return 0;
    const char *p = t->arena + t->piece_off[id];
    size_t n = t->piece_len[id];
    if (t->attr[id] & TA_CONTROL) { /* control tokens: their text only when asked */
        if (d->special) {
            d->at_start = 0;
            for (size_t i = 0; i < n; i++)
                detok_byte(d, &o, (unsigned char)p[i]);
        }
        return o.n;
    }
    if (t->kind == TOK_BPE)
        return detok_bpe(d, &o, id, p, n);
    if (t->types[id] == TT_BYTE) {
        d->at_start = 0;
        detok_byte(d, &o, (unsigned char)parse_byte_piece(p, n));
        return o.n;
    }
    if (t->types[id] == TT_UNKNOWN) {
        p = " \xE2\x81\x87 ";
        n = 5;
    } else if (d->at_start && n >= 3 && memcmp(p, "\xE2\x96\x81", 3) == 0) {
        p += 3;
        n -= 3;
        d->at_start = 0; /* one dummy-prefix space per text */
    }
    if (n)
        d->at_start = 0;
    for (size_t i = 0; i < n;) {
        if (n - i >= 3 && memcmp(p + i, "\xE2\x96\x81", 3) == 0) {
            detok_byte(d, &o, ' ');
            i += 3;
        } else {
            detok_byte(d, &o, (unsigned char)p[i++]);
        }
    }
    return o.n;
}

/* Emit U+FFFD for an incomplete trailing sequence; needs cap >= 3. */
size_t mr_detok_flush(mr_detok *d, char *out, size_t cap)
{
    sink o = {out, cap, 0};
    if (d->n_pending) {
        sink_put(&o, k_replacement, 3);
        d->n_pending = 0;
    }
    return o.n;
}

/* ---------------------------------------------------------- queries */

int32_t mr_tokenizer_find(const mr_tokenizer *t, const char *piece)
{
    return piece ? mr_tok_lookup(t, piece, strlen(piece)) : -1;
}

int mr_tokenizer_is_eog(const mr_tokenizer *t, int32_t id)
{
    return id >= 0 && id < t->n_vocab && (t->attr[id] & TA_EOG) != 0;
}

int mr_tokenizer_is_control(const mr_tokenizer *t, int32_t id)
{
    return id >= 0 && id < t->n_vocab && (t->attr[id] & TA_CONTROL) != 0;
}

const char *mr_tokenizer_kind(const mr_tokenizer *t) { return t->kind == TOK_BPE ? "bpe" : "spm"; }

const char *mr_tokenizer_pre(const mr_tokenizer *t)
{
    return t->kind == TOK_BPE ? mr_pretok_get_info(t->pretok)->name : NULL;
}
