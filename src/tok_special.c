/* tok_special.c - special tokens: the attributes llama.cpp gives each token
 * at load (src/llama-vocab.cpp, llama_vocab::impl::load), its
 * end-of-generation set, and the split of a text at special pieces that
 * comes before any BPE (tokenizer_st_partition).
 *
 * Attributes start from tokenizer.ggml.token_type, then:
 *   - tokens named like an end of turn, FIM prefix/suffix/middle/pad/repo/
 *     separator become control (and supply the EOT/FIM ids when the
 *     tokenizer.ggml.*_token_id keys do not);
 *   - control tokens whose text contains "unused" become unused as well;
 *   - EOG = the FIM pad/repo/sep ids, every token whose text is one of
 *     llama.cpp's end-of-generation names (made control), EOS, EOT, EOM;
 *   - gpt-oss: <|channel|> <|message|> <|start|> <|constrain|> become
 *     user-defined (so they are matched in text and always printed); when
 *     <|return|> and <|call|> (or <|calls|> and <|flush|>) are EOG,
 *     <|end|> leaves the EOG set and becomes user-defined;
 *   - when <|tool_response> is EOG, </s> leaves it and becomes normal;
 *   - a model named phi-3 / phi3 (general.name) strips the whitespace that
 *     follows its special tokens, except after <unk>, <s>, <|endoftext|>.
 * The special list holds control, user-defined and unknown tokens, longest
 * piece first (ties: lower id first).
 */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

static const char *const k_eot_names[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
    "<|end_of_text|>", "<EOT>", "_<EOT>", "[EOT]", "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",
    "<end_of_utterance>", NULL};
static const char *const k_fim_pre[] = {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>",
    "<\xef\xbd\x9c" "fim\xe2\x96\x81" "begin\xef\xbd\x9c>", "<PRE>", "\xe2\x96\x81<PRE>",
    "<|code_prefix|>", "<|prefix|>", NULL};
static const char *const k_fim_suf[] = {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>",
    "<\xef\xbd\x9c" "fim\xe2\x96\x81hole\xef\xbd\x9c>", "<SUF>", "\xe2\x96\x81<SUF>",
    "<|code_suffix|>", "<|suffix|>", NULL};
static const char *const k_fim_mid[] = {"<|fim_middle|>", "<fim-middle>", "<fim_middle>",
    "<\xef\xbd\x9c" "fim\xe2\x96\x81" "end\xef\xbd\x9c>", "<MID>", "\xe2\x96\x81<MID>",
    "<|code_middle|>", "<|middle|>", NULL};
static const char *const k_fim_pad[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>",
    "[PAD]", NULL};
static const char *const k_fim_rep[] = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>",
    "<REPO>", "<reponame>", NULL};
static const char *const k_fim_sep[] = {"<|file_sep|>", NULL};
static const char *const k_eog_names[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
    "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]",
    "[EOS]", "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
    "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>", "[e~[",
    "<|eot|>", "<|eom|>", /* Llama 4: HF's eos_token_id list (llama.cpp omits <|eom|>) */
    NULL};
static const char *const k_user_names[] = {"<|channel|>", "<|message|>", "<|start|>",
                                           "<|constrain|>", NULL};

/* Whether piece id is one of names. */
static int named(const mr_tokenizer *t, int32_t id, const char *const *names)
{
    const char *p = t->arena + t->piece_off[id];
    for (int i = 0; names[i]; i++)
        if (strlen(names[i]) == t->piece_len[id] && memcmp(names[i], p, t->piece_len[id]) == 0)
            return 1;
    return 0;
}

/* An optional token-id key: -1 when absent or out of range (llama.cpp
 * keeps the default then). */
static int32_t key_id(const mr_gguf *g, const char *key, int32_t n_vocab)
{
    uint32_t v;
    if (!mr_gguf_find(g, key) || mr_gguf_get_u32(g, key, &v, NULL) || v >= (uint32_t)n_vocab)
        return -1;
    return (int32_t)v;
}

/* The id of the first token named one of names, made control; *id kept
 * when already set. */
static void find_named(mr_tokenizer *t, const char *const *names, int32_t *id)
{
    for (int32_t i = 0; *id < 0 && i < t->n_vocab; i++)
        if (named(t, i, names))
            *id = i;
    if (*id >= 0 && named(t, *id, names))
        t->attr[*id] |= TA_CONTROL;
}

/* Text of id equals s. */
static int is(const mr_tokenizer *t, int32_t id, const char *s)
{
    return strlen(s) == t->piece_len[id] && memcmp(s, t->arena + t->piece_off[id], t->piece_len[id]) == 0;
}

/* Longest piece first, then the lower id. */
static int cmp_special(const void *a, const void *b, void *ctx)
{
    const mr_tokenizer *t = ctx;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    uint32_t lx = t->piece_len[x], ly = t->piece_len[y];
    if (lx != ly)
        return lx > ly ? -1 : 1;
    return x < y ? -1 : x > y;
}

mr_status mr_tok_build_attrs(const mr_gguf *g, mr_tokenizer *t, mr_error *err)
{
    static const uint8_t from_type[7] = {0, TA_NORMAL, TA_UNKNOWN, TA_CONTROL, TA_USER, TA_UNUSED,
                                         TA_BYTE};
    int32_t n = t->n_vocab;
    t->attr = malloc((size_t)n);
    t->special = malloc((size_t)n * sizeof *t->special);
    if (!t->attr || !t->special)
        return mr_fail(err, MR_ENOMEM, g->path, NULL, MR_NO_OFFSET, "no memory");
    for (int32_t i = 0; i < n; i++)
        t->attr[i] = from_type[t->types[i]];

    int32_t eot = key_id(g, "tokenizer.ggml.eot_token_id", n);
    int32_t eom = key_id(g, "tokenizer.ggml.eom_token_id", n);
    int32_t fpre = key_id(g, "tokenizer.ggml.fim_pre_token_id", n);
    int32_t fsuf = key_id(g, "tokenizer.ggml.fim_suf_token_id", n);
    int32_t fmid = key_id(g, "tokenizer.ggml.fim_mid_token_id", n);
    int32_t fpad = key_id(g, "tokenizer.ggml.fim_pad_token_id", n);
    int32_t frep = key_id(g, "tokenizer.ggml.fim_rep_token_id", n);
    int32_t fsep = key_id(g, "tokenizer.ggml.fim_sep_token_id", n);
    if (fpre < 0) fpre = key_id(g, "tokenizer.ggml.prefix_token_id", n);
    if (fsuf < 0) fsuf = key_id(g, "tokenizer.ggml.suffix_token_id", n);
    if (fmid < 0) fmid = key_id(g, "tokenizer.ggml.middle_token_id", n);
    static const char *const k_eom[] = {"<|eom_id|>", NULL};
    find_named(t, k_eot_names, &eot);
    find_named(t, k_eom, &eom);
    find_named(t, k_fim_pre, &fpre);
    find_named(t, k_fim_suf, &fsuf);
    find_named(t, k_fim_mid, &fmid);
    find_named(t, k_fim_pad, &fpad);
    find_named(t, k_fim_rep, &frep);
    find_named(t, k_fim_sep, &fsep);

    for (int32_t i = 0; i < n; i++) {
        if ((t->attr[i] & TA_CONTROL) && t->piece_len[i] >= 6 &&
            memmem(t->arena + t->piece_off[i], t->piece_len[i], "unused", 6))
            t->attr[i] |= TA_UNUSED;
    }
    const int32_t eog_ids[] = {fpad, frep, fsep, t->eos, eot, eom};
    for (size_t k = 0; k < sizeof eog_ids / sizeof eog_ids[0]; k++)
        if (eog_ids[k] >= 0)
            t->attr[eog_ids[k]] |= TA_EOG;
    for (int32_t i = 0; i < n; i++) {
        if (named(t, i, k_eog_names))
            t->attr[i] |= TA_EOG | TA_CONTROL;
        if (named(t, i, k_user_names))
            t->attr[i] = TA_USER;
    }
    for (size_t k = 3; k < sizeof eog_ids / sizeof eog_ids[0]; k++) /* EOS/EOT/EOM stay EOG */
        if (eog_ids[k] >= 0)
            t->attr[eog_ids[k]] |= TA_EOG;

    int has_return = 0, has_call = 0, has_flush = 0, has_tool_resp = 0;
    int32_t end_id = -1, s_id = -1;
    for (int32_t i = 0; i < n; i++) {
        if (!(t->attr[i] & TA_EOG))
            continue;
        has_return |= is(t, i, "<|return|>");
        has_call |= is(t, i, "<|call|>") || is(t, i, "<|calls|>");
        has_flush |= is(t, i, "<|flush|>");
        has_tool_resp |= is(t, i, "<|tool_response>");
        if (is(t, i, "<|end|>"))
            end_id = i;
        if (is(t, i, "</s>"))
            s_id = i;
    }
    if (end_id >= 0 && ((has_return && has_call) || (has_call && has_flush)))
        t->attr[end_id] = TA_USER;
    if (s_id >= 0 && has_tool_resp)
        t->attr[s_id] = TA_NORMAL;

    t->n_special = 0;
    for (int32_t i = 0; i < n; i++)
        if ((t->attr[i] & (TA_CONTROL | TA_USER | TA_UNKNOWN)) && t->piece_len[i] > 0)
            t->special[t->n_special++] = i;

    mr_str name;
    if (mr_gguf_find(g, "general.name") && !mr_gguf_get_str(g, "general.name", &name, NULL)) {
        char low[256];
        size_t k = name.len < sizeof low - 1 ? (size_t)name.len : sizeof low - 1;
        for (size_t i = 0; i < k; i++)
            low[i] = (char)(name.ptr[i] >= 'A' && name.ptr[i] <= 'Z' ? name.ptr[i] + 32 : name.ptr[i]);
        low[k] = '\0';
        if (strstr(low, "phi-3") || strstr(low, "phi3")) {
            static const char *const keep[] = {"<unk>", "<s>", "<|endoftext|>", NULL};
            for (int32_t k2 = 0; k2 < t->n_special; k2++)
                t->attr[t->special[k2]] |= TA_RSTRIP;
            int32_t eos_s = mr_tok_lookup(t, "</s>", 4);
            if (eos_s >= 0)
                t->attr[eos_s] |= TA_RSTRIP;
            for (int i = 0; keep[i]; i++) {
                int32_t id = mr_tok_lookup(t, keep[i], strlen(keep[i]));
                if (id >= 0)
                    t->attr[id] &= (uint8_t)~TA_RSTRIP;
            }
        }
    }
    qsort_r(t->special, (size_t)t->n_special, sizeof *t->special, cmp_special, t);
    return MR_OK;
}

typedef struct {
    mr_frag *v;
    size_t n, cap;
} frag_vec;

static int frag_push(frag_vec *f, int32_t id, size_t start, size_t len)
{
    if (f->n == f->cap) {
        size_t cap = f->cap ? 2 * f->cap : 16;
        mr_frag *v = realloc(f->v, cap * sizeof *v);
        if (!v)
            return -1;
        f->v = v;
        f->cap = cap;
    }
    f->v[f->n++] = (mr_frag){id, (uint32_t)start, (uint32_t)len};
    return 0;
}

mr_status mr_tok_partition(const mr_tokenizer *t, const char *text, size_t len, unsigned mask,
                           mr_frag **frags, size_t *n_frags, mr_error *err)
{
    frag_vec cur = {0}, next = {0};
    *frags = NULL;
    *n_frags = 0;
    if (len > UINT32_MAX)
        return mr_fail(err, MR_EINVAL, NULL, "text", MR_NO_OFFSET, "text too long");
    if (len && frag_push(&cur, -1, 0, len))
        goto nomem;
    for (int32_t k = 0; k < t->n_special && cur.n; k++) {
        int32_t id = t->special[k];
        if (!(t->attr[id] & mask))
            continue;
        const char *p = t->arena + t->piece_off[id];
        size_t pl = t->piece_len[id];
        int found = 0;
        for (size_t f = 0; f < cur.n && !found; f++)
            found = cur.v[f].id < 0 && cur.v[f].len >= pl &&
                    memmem(text + cur.v[f].start, cur.v[f].len, p, pl) != NULL;
        if (!found)
            continue;
        next.n = 0;
        for (size_t f = 0; f < cur.n; f++) {
            mr_frag fr = cur.v[f];
            if (fr.id >= 0) {
                if (frag_push(&next, fr.id, fr.start, fr.len))
                    goto nomem;
                continue;
            }
            size_t pos = fr.start, end = (size_t)fr.start + fr.len;
            while (pos < end) {
                const char *m = end - pos >= pl ? memmem(text + pos, end - pos, p, pl) : NULL;
                if (!m)
                    break;
                size_t at = (size_t)(m - text);
                if ((at > pos && frag_push(&next, -1, pos, at - pos)) ||
                    frag_push(&next, id, at, pl))
                    goto nomem;
                pos = at + pl;
                if (t->attr[id] & TA_RSTRIP)
                    while (pos < end && (text[pos] == ' ' || (text[pos] >= '\t' && text[pos] <= '\r')))
                        pos++;
            }
            if (pos < end && frag_push(&next, -1, pos, end - pos))
                goto nomem;
        }
        frag_vec tmp = cur;
        cur = next;
        next = tmp;
    }
    free(next.v);
    *frags = cur.v;
    *n_frags = cur.n;
    return MR_OK;
nomem:
    free(cur.v);
    free(next.v);
    return mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory to tokenize");
}
