/* bpe.c - byte-level BPE ("gpt2" vocabularies): the byte <-> unicode map,
 * ranked merges, and the merge loop over one pre-tokenized piece.
 *
 * The three parts of a byte-level BPE are kept as data:
 *   - the byte map of GPT-2: bytes '!'..'~', 0xA1..0xAC and 0xAE..0xFF stand
 *     for themselves, the other 68 bytes for U+0100.. in byte order.  Every
 *     piece of the vocabulary is decoded through it once, at load, so the
 *     encoder works on the text's own bytes and never re-encodes;
 *   - the merges "A B", rank = position in tokenizer.ggml.merges (the first
 *     of duplicates wins), keyed by the ids of A and B; a merge naming a
 *     piece that is not in the vocabulary is refused at load;
 *   - the pre-tokenizer (pretok.c) that cuts the text into pieces first.
 * Encoding a piece follows llama.cpp's llm_tokenizer_bpe_session: with
 * ignore_merges (llama-bpe) a piece that is itself a token is taken whole;
 * otherwise each byte is a symbol and the adjacent pair of lowest rank is
 * merged (ties: leftmost) until no pair has a rank.  A final symbol that is
 * not a token falls back to the tokens of its printable-ASCII bytes (the
 * others have none and are dropped, as there).  The piece -> id map of the
 * encoder is llama.cpp's token_to_id: the last of duplicate pieces wins.
 */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

#define K_MERGES "tokenizer.ggml.merges"
#define NO_RAW UINT32_MAX

typedef struct {
    uint64_t key;   /* (left id << 32) | right id; 0 marks an empty slot with rank -1 */
    int32_t rank;   /* -1 = empty */
    int32_t result; /* id of the merged piece, or -1 if it is not a token */
} merge_slot;

struct mr_bpe {
    char *raw;          /* decoded bytes of every piece that decodes */
    size_t *raw_off;    /* [n_vocab] */
    uint32_t *raw_len;  /* [n_vocab], NO_RAW when the piece does not decode */
    int32_t *rslots;    /* decoded bytes -> id (last wins), -1 = empty */
    uint64_t rmask;
    merge_slot *merges;
    uint64_t mmask;
    int32_t byte_tok[256]; /* the token of one byte, or -1 */
    int16_t cp_byte[324];  /* code point -> byte of the byte map, or -1 */
    int ignore_merges;
};

/* ---------------------------------------------------------- byte map */

/* Code point that stands for byte b. */
static uint32_t byte_to_cp(unsigned b)
{
    if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE)
        return b;
    unsigned n = 0; /* rank of b among the bytes that are not themselves */
    for (unsigned c = 0; c < b; c++)
        n += !((c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || c >= 0xAE);
    return 256 + n;
}

/* Fill the reverse map: code point < 324 -> byte, or -1. */
static void init_byte_map(int16_t m[324])
{
    for (int i = 0; i < 324; i++)
        m[i] = -1;
    for (unsigned b = 0; b < 256; b++)
        m[byte_to_cp(b)] = (int16_t)b;
}

/* Decode valid UTF-8 s[0..n) through the byte map into out (room for n
 * bytes); returns the byte count, or NO_RAW if some character is not in
 * the map. */
static uint32_t decode_piece(const int16_t *cp_byte, const unsigned char *s, size_t n, char *out)
{
    uint32_t k = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        if (s[i] < 0x80) {
            cp = s[i++];
        } else if (s[i] >= 0xC2 && s[i] < 0xE0 && i + 1 < n && (s[i + 1] & 0xC0) == 0x80) {
            cp = ((uint32_t)(s[i] & 0x1F) << 6) | (s[i + 1] & 0x3F);
            i += 2;
        } else {
            return NO_RAW; /* 3- and 4-byte characters are never in the map; bad UTF-8 */
        }
        if (cp >= 324 || cp_byte[cp] < 0)
            return NO_RAW;
        out[k++] = (char)cp_byte[cp];
    }
    return k;
}

/* ------------------------------------------------------------- tables */

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

/* Id whose decoded bytes equal s[0..n), or -1. */
static int32_t raw_lookup(const mr_bpe *b, const char *s, size_t n)
{
    for (uint64_t i = hash_bytes(s, n) & b->rmask;; i = (i + 1) & b->rmask) {
        int32_t id = b->rslots[i];
        if (id < 0)
            return -1;
        if (b->raw_len[id] == n && memcmp(b->raw + b->raw_off[id], s, n) == 0)
            return id;
    }
}

/* Insert id, replacing an earlier id with the same bytes (last wins). */
static void raw_insert(mr_bpe *b, int32_t id)
{
    const char *s = b->raw + b->raw_off[id];
    size_t n = b->raw_len[id];
    for (uint64_t i = hash_bytes(s, n) & b->rmask;; i = (i + 1) & b->rmask) {
        int32_t other = b->rslots[i];
        if (other < 0 || (b->raw_len[other] == n && memcmp(b->raw + b->raw_off[other], s, n) == 0)) {
            b->rslots[i] = id;
            return;
        }
    }
}

/* The slot of pair (l, r): its own, or the empty one where it would go. */
static merge_slot *merge_find(const mr_bpe *b, int32_t l, int32_t r)
{
    uint64_t key = ((uint64_t)(uint32_t)l << 32) | (uint32_t)r;
    for (uint64_t i = mix64(key) & b->mmask;; i = (i + 1) & b->mmask) {
        merge_slot *m = &b->merges[i];
        if (m->rank < 0 || m->key == key)
            return m;
    }
}

void mr_bpe_free(mr_bpe *b)
{
    if (!b)
        return;
    free(b->raw);
    free(b->raw_off);
    free(b->raw_len);
    free(b->rslots);
    free(b->merges);
    free(b);
}

/* Decode every piece and index the decoded bytes. */
static mr_status build_raw(const mr_gguf *g, mr_tokenizer *t, mr_bpe *b, mr_error *err)
{
    size_t n = (size_t)t->n_vocab, total = 0;
    for (size_t i = 0; i < n; i++)
        total += t->piece_len[i];
    b->raw = malloc(total + 1);
    b->raw_off = malloc(n * sizeof *b->raw_off);
    b->raw_len = malloc(n * sizeof *b->raw_len);
    uint64_t cap = 1;
    while (cap < 2 * (uint64_t)n)
        cap <<= 1;
    b->rmask = cap - 1;
    b->rslots = malloc((size_t)cap * sizeof *b->rslots);
    if (!b->raw || !b->raw_off || !b->raw_len || !b->rslots)
        return mr_fail(err, MR_ENOMEM, g->path, "tokenizer.ggml.tokens", MR_NO_OFFSET,
                       "no memory");
    memset(b->rslots, 0xff, (size_t)cap * sizeof *b->rslots);
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        const unsigned char *p = (const unsigned char *)t->arena + t->piece_off[i];
        uint32_t k = decode_piece(b->cp_byte, p, t->piece_len[i], b->raw + pos);
        b->raw_off[i] = pos;
        b->raw_len[i] = t->piece_len[i] == 0 ? NO_RAW : k;
        if (b->raw_len[i] != NO_RAW) {
            pos += k;
            raw_insert(b, (int32_t)i);
        }
    }
    for (int c = 0; c < 256; c++) {
        char ch = (char)c;
        b->byte_tok[c] = raw_lookup(b, &ch, 1);
    }
    return MR_OK;
}

/* Read tokenizer.ggml.merges into the merge table. */
static mr_status build_merges(const mr_gguf *g, mr_tokenizer *t, mr_bpe *b, int required,
                              mr_error *err)
{
    const mr_gguf_value *arr;
    mr_status s;
    if (!mr_gguf_find(g, K_MERGES) && !required) {
        b->mmask = 0;
        b->merges = calloc(1, sizeof *b->merges);
        if (!b->merges)
            return mr_fail(err, MR_ENOMEM, g->path, K_MERGES, MR_NO_OFFSET, "no memory");
        b->merges[0].rank = -1;
        return MR_OK;
    }
    if ((s = mr_gguf_get_arr(g, K_MERGES, MR_GGUF_STRING, 0, &arr, err)))
        return s;
    uint64_t n = arr->v.arr.n;
    if (n >= INT32_MAX)
        return mr_fail(err, MR_EFORMAT, g->path, K_MERGES, arr->offset,
                       "%llu merges is more than %d", (unsigned long long)n, INT32_MAX - 1);
    uint64_t cap = 1;
    while (cap < 2 * n + 2)
        cap <<= 1;
    b->mmask = cap - 1;
    b->merges = malloc((size_t)cap * sizeof *b->merges);
    uint32_t longest = 0;
    for (uint64_t i = 0; i < n; i++)
        if (arr->v.arr.strs[i].len > longest)
            longest = arr->v.arr.strs[i].len > UINT32_MAX ? UINT32_MAX : (uint32_t)arr->v.arr.strs[i].len;
    char *tmp = malloc((size_t)longest + 1);
    if (!b->merges || !tmp) {
        free(tmp);
        return mr_fail(err, MR_ENOMEM, g->path, K_MERGES, MR_NO_OFFSET, "no memory for %llu merges",
                       (unsigned long long)n);
    }
    for (uint64_t i = 0; i <= b->mmask; i++)
        b->merges[i] = (merge_slot){0, -1, -1};
    for (uint64_t i = 0; i < n; i++) {
        mr_str m = arr->v.arr.strs[i];
        const char *sp = m.len > 1 ? memchr(m.ptr + 1, ' ', (size_t)m.len - 1) : NULL;
        if (!sp) {
            free(tmp);
            return mr_fail(err, MR_EFORMAT, g->path, K_MERGES, arr->offset,
                           "merge %llu ('%.*s') is not two pieces separated by a space",
                           (unsigned long long)i, (int)(m.len > 40 ? 40 : m.len), m.ptr);
        }
        size_t ll = (size_t)(sp - m.ptr), rl = (size_t)m.len - ll - 1;
        int32_t lid = -1, rid = -1;
        uint32_t ln = NO_RAW, rn = NO_RAW;
        ln = decode_piece(b->cp_byte, (const unsigned char *)m.ptr, ll, tmp);
        if (ln != NO_RAW)
            rn = decode_piece(b->cp_byte, (const unsigned char *)sp + 1, rl, tmp + ln);
        if (ln != NO_RAW && rn != NO_RAW && ln && rn) {
            lid = raw_lookup(b, tmp, ln);
            rid = raw_lookup(b, tmp + ln, rn);
        }
        if (lid < 0 || rid < 0) {
            free(tmp);
            return mr_fail(err, MR_EFORMAT, g->path, K_MERGES, arr->offset,
                           "merge %llu ('%.*s') names a piece that is not a byte-level token "
                           "of the vocabulary", (unsigned long long)i,
                           (int)(m.len > 40 ? 40 : m.len), m.ptr);
        }
        merge_slot *slot = merge_find(b, lid, rid);
        if (slot->rank < 0) { /* the first of duplicates keeps its rank */
            slot->key = ((uint64_t)(uint32_t)lid << 32) | (uint32_t)rid;
            slot->rank = (int32_t)i;
            slot->result = raw_lookup(b, tmp, (size_t)ln + rn);
        }
    }
    free(tmp);
    return MR_OK;
}

mr_status mr_bpe_build(const mr_gguf *g, mr_tokenizer *t, mr_error *err)
{
    mr_bpe *b = calloc(1, sizeof *b);
    if (!b)
        return mr_fail(err, MR_ENOMEM, g->path, NULL, MR_NO_OFFSET, "no memory");
    init_byte_map(b->cp_byte);
    t->bpe = b;
    b->ignore_merges = mr_pretok_get_info(t->pretok)->ignore_merges;
    int need_merges = strcmp(mr_pretok_get_info(t->pretok)->name, "kimi-k2") != 0;
    mr_status s;
    if ((s = build_raw(g, t, b, err)) || (s = build_merges(g, t, b, need_merges, err)))
        return s;
    return MR_OK;
}

const char *mr_bpe_piece_bytes(const mr_tokenizer *t, int32_t id, size_t *n)
{
    const mr_bpe *b = t->bpe;
    if (!b || id < 0 || id >= t->n_vocab || b->raw_len[id] == NO_RAW) {
        *n = 0;
        return NULL;
    }
    *n = b->raw_len[id];
    return b->raw + b->raw_off[id];
}

/* ------------------------------------------------------------ encoding */

typedef struct {
    int32_t prev, next, id;
    uint32_t start, len; /* len 0: merged into its left neighbour */
} symbol;

typedef struct {
    int32_t rank, left, right;
    uint32_t size;
} bigram;

typedef struct {
    const mr_bpe *b;
    symbol *sym;
    bigram *heap;
    size_t n_heap;
} merger;

/* Lower rank first, then the leftmost. */
static int bigram_before(const bigram *x, const bigram *y)
{
    return x->rank != y->rank ? x->rank < y->rank : x->left < y->left;
}

static void heap_push(merger *m, bigram g)
{
    size_t i = m->n_heap++;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!bigram_before(&g, &m->heap[up]))
            break;
        m->heap[i] = m->heap[up];
        i = up;
    }
    m->heap[i] = g;
}

static bigram heap_pop(merger *m)
{
    bigram top = m->heap[0], last = m->heap[--m->n_heap];
    size_t i = 0, n = m->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && bigram_before(&m->heap[c + 1], &m->heap[c]))
            c++;
        if (!bigram_before(&m->heap[c], &last))
            break;
        m->heap[i] = m->heap[c];
        i = c;
    }
    if (n)
        m->heap[i] = last;
    return top;
}

/* Queue the pair (l, r) if the merges rank it. */
static void try_pair(merger *m, int32_t l, int32_t r)
{
    if (l < 0 || r < 0 || m->sym[l].id < 0 || m->sym[r].id < 0)
        return;
    const merge_slot *s = merge_find(m->b, m->sym[l].id, m->sym[r].id);
    if (s->rank >= 0)
        heap_push(m, (bigram){s->rank, l, r, m->sym[l].len + m->sym[r].len});
}

/* BPE over the n bytes at w; ids appended to out. */
static int merge_piece(merger *m, const unsigned char *w, uint32_t n, mr_idvec *out)
{
    const mr_bpe *b = m->b;
    for (uint32_t i = 0; i < n; i++)
        m->sym[i] = (symbol){(int32_t)i - 1, i + 1 < n ? (int32_t)i + 1 : -1,
                             b->byte_tok[w[i]], i, 1};
    m->n_heap = 0;
    for (uint32_t i = 1; i < n; i++)
        try_pair(m, (int32_t)i - 1, (int32_t)i);
    while (m->n_heap) {
        bigram g = heap_pop(m);
        symbol *l = &m->sym[g.left], *r = &m->sym[g.right];
        if (l->len == 0 || r->len == 0 || l->len + r->len != g.size)
            continue; /* a side changed since the pair was queued */
        l->id = merge_find(b, l->id, r->id)->result;
        l->len = g.size;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0)
            m->sym[r->next].prev = g.left;
        try_pair(m, l->prev, g.left);
        try_pair(m, g.left, l->next);
    }
    for (int32_t i = 0; i >= 0; i = m->sym[i].next) {
        const symbol *s = &m->sym[i];
        if (s->id >= 0) {
            if (mr_idvec_push(out, s->id))
                return -1;
            continue;
        }
        for (uint32_t k = 0; k < s->len; k++) { /* llama.cpp's per-byte fallback */
            unsigned char c = w[s->start + k];
            if (c >= 0x21 && c <= 0x7E && b->byte_tok[c] >= 0 && mr_idvec_push(out, b->byte_tok[c]))
                return -1;
        }
    }
    return 0;
}

mr_status mr_bpe_encode(const mr_tokenizer *t, const char *text, size_t len, mr_idvec *out,
                        mr_error *err)
{
    mr_span *sp = NULL;
    size_t n_sp = 0;
    mr_status s = mr_pretok_split(t->pretok, text, len, &sp, &n_sp, err);
    if (s)
        return s;
    uint32_t longest = 0;
    for (size_t i = 0; i < n_sp; i++)
        if (sp[i].len > longest)
            longest = sp[i].len;
    merger m = {t->bpe, malloc(((size_t)longest + 1) * sizeof *m.sym),
                malloc(3 * ((size_t)longest + 1) * sizeof *m.heap), 0};
    if (!m.sym || !m.heap) {
        s = mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory to tokenize");
        goto done;
    }
    for (size_t i = 0; i < n_sp; i++) {
        const char *w = text + sp[i].start;
        if (t->bpe->ignore_merges) {
            int32_t id = raw_lookup(t->bpe, w, sp[i].len);
            if (id >= 0) {
                if (mr_idvec_push(out, id))
                    goto nomem;
                continue;
            }
        }
        if (merge_piece(&m, (const unsigned char *)w, sp[i].len, out))
            goto nomem;
    }
    goto done;
nomem:
    s = mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory to tokenize");
done:
    free(m.sym);
    free(m.heap);
    free(sp);
    return s;
}
