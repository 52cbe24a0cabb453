/* engine.c - sequences with a reusable KV prefix, penalised sampling,
 * end-of-turn tokens and stop strings (see engine.h). */
#include <stdlib.h>
#include <string.h>

#include "serve/engine.h"

/* ---------------------------------------------------------------- tokens */
static int append_ids(int32_t **ids, size_t *n, size_t *cap, const int32_t *src, size_t k)
{
    if (*n + k > *cap) {
        size_t c = *cap ? *cap : 64;
        while (c < *n + k)
            c *= 2;
        int32_t *p = realloc(*ids, c * sizeof *p);
        if (!p)
            return -1;
        *ids = p;
        *cap = c;
    }
    memcpy(*ids + *n, src, k * sizeof *src);
    *n += k;
    return 0;
}

mr_status eng_tokenize(const mr_tokenizer *t, const char *text, size_t len, int add_bos,
                       int parse_special, int32_t **ids, size_t *n, mr_error *err)
{
    unsigned flags = (add_bos ? MR_TOK_ADD_BOS : 0) | (parse_special ? MR_TOK_PARSE_SPECIAL : 0);
    return mr_tokenize_ex(t, text, len, flags, ids, n, err);
}

void eng_eog_init(eng_eog *e, const mr_tokenizer *t, const char *const *stops)
{
    e->tok = t;
    e->n = 0;
    e->ids[e->n++] = mr_tokenizer_eos(t);
    for (int j = 0; stops && stops[j]; j++) {
        int32_t id = mr_tokenizer_find(t, stops[j]);
        if (id >= 0 && e->n < 16 && !eng_is_eog(e, id))
            e->ids[e->n++] = id;
    }
}

int eng_is_eog(const eng_eog *e, int32_t id)
{
    if (e->tok && mr_tokenizer_is_eog(e->tok, id))
        return 1;
    for (int i = 0; i < e->n; i++)
        if (e->ids[i] == id)
            return 1;
    return 0;
}

/* ---------------------------------------------------------------- sequence */
mr_status eng_seq_init(eng_seq *s, const mr_model *m, mr_context *ctx, uint32_t seq, int own_ctx,
                       uint32_t n_batch, mr_error *err)
{
    memset(s, 0, sizeof *s);
    s->model = m;
    s->ctx = ctx;
    s->seq = seq;
    s->own_ctx = own_ctx;
    s->n_batch = n_batch;
    s->logits = malloc(sizeof(float) * m->hp.n_vocab);
    s->work = malloc(sizeof(float) * m->hp.n_vocab);
    s->seq_ids = malloc(sizeof(uint32_t) * n_batch);
    if (!s->logits || !s->work || !s->seq_ids) {
        s->own_ctx = 0; /* on failure the caller keeps ctx */
        eng_seq_free(s);
        return mr_fail(err, MR_ENOMEM, NULL, "logits", MR_NO_OFFSET, "out of memory");
    }
    for (uint32_t i = 0; i < n_batch; i++)
        s->seq_ids[i] = seq;
    mr_seq_reset(ctx, seq);
    return MR_OK;
}

void eng_seq_free(eng_seq *s)
{
    if (s->own_ctx)
        mr_context_free(s->ctx);
    free(s->cached);
    free(s->logits);
    free(s->work);
    free(s->seq_ids);
    memset(s, 0, sizeof *s);
}

void eng_seq_reset(eng_seq *s)
{
    mr_seq_reset(s->ctx, s->seq);
    s->n_cached = 0;
    s->have_logits = 0;
}

size_t eng_seq_common(const eng_seq *s, const int32_t *ids, size_t n)
{
    size_t k = 0, m = s->n_cached < n ? s->n_cached : n;
    while (k < m && s->cached[k] == ids[k])
        k++;
    return k;
}

size_t eng_seq_keep(eng_seq *s, size_t n)
{
    if (n >= s->n_cached)
        return s->n_cached;
    s->n_cached = mr_seq_trim(s->ctx, s->seq, (uint32_t)n);
    s->have_logits = 0; /* they were those after the last token dropped */
    return s->n_cached;
}

size_t eng_seq_copy(eng_seq *dst, const eng_seq *src, size_t n)
{
    if (n > src->n_cached)
        n = src->n_cached;
    eng_seq_reset(dst);
    size_t k = mr_seq_copy(dst->ctx, dst->seq, src->seq, (uint32_t)n);
    if (k && append_ids(&dst->cached, &dst->n_cached, &dst->cap, src->cached, k)) {
        eng_seq_reset(dst);
        return 0;
    }
    return dst->n_cached;
}

static mr_status decode(eng_seq *s, const int32_t *ids, size_t n, mr_error *err)
{
    for (size_t i = 0; i < n; i += s->n_batch) {
        size_t k = n - i < s->n_batch ? n - i : s->n_batch;
        eng_seq *q = s;
        const int32_t *p = ids + i;
        mr_status st = eng_decode_runs(&q, &p, &k, 1, NULL, NULL, s->logits, err);
        if (st)
            return st;
    }
    return MR_OK;
}

mr_status eng_decode_runs(eng_seq *const *seqs, const int32_t *const *ids, const size_t *n,
                          int n_runs, int32_t *tok, uint32_t *sid, float *lbuf, mr_error *err)
{
    mr_context *ctx = seqs[0]->ctx;
    size_t total = 0;
    mr_status st = MR_OK;
    for (int r = 0; r < n_runs && !st; r++) {
        eng_seq *s = seqs[r];
        if (s->n_cached + n[r] > mr_context_n_ctx(ctx))
            st = mr_fail(err, MR_ERANGE, NULL, "context", MR_NO_OFFSET,
                         "%zu tokens do not fit the context of %u", s->n_cached + n[r],
                         mr_context_n_ctx(ctx));
        else if (append_ids(&s->cached, &s->n_cached, &s->cap, ids[r], n[r]))
            st = mr_fail(err, MR_ENOMEM, NULL, "cache", MR_NO_OFFSET, "out of memory");
        else
            s->n_cached -= n[r]; /* counted once decoded */
        total += n[r];
    }
    if (st)
        return st;
    const int32_t *t = ids[0];
    const uint32_t *si = seqs[0]->seq_ids;
    if (n_runs > 1) { /* gather the batch */
        size_t o = 0;
        for (int r = 0; r < n_runs; r++) {
            memcpy(tok + o, ids[r], n[r] * sizeof *tok);
            for (size_t i = 0; i < n[r]; i++)
                sid[o + i] = seqs[r]->seq;
            o += n[r];
        }
        t = tok;
        si = sid;
    }
    st = mr_decode_batch(ctx, t, si, (uint32_t)total, lbuf, 0, err);
    const size_t nv = seqs[0]->model->hp.n_vocab;
    for (int r = 0; r < n_runs; r++) {
        eng_seq *s = seqs[r];
        if (st) {
            eng_seq_reset(s); /* its cache's content is unknown now */
            continue;
        }
        s->n_cached += n[r];
        if (lbuf != s->logits)
            memcpy(s->logits, lbuf + (size_t)r * nv, nv * sizeof(float));
        s->have_logits = 1;
    }
    return st;
}

mr_status eng_seq_begin(eng_seq *s, const int32_t *ids, size_t n, size_t *reused, mr_error *err)
{
    *reused = 0;
    if (n == 0)
        return mr_fail(err, MR_EINVAL, NULL, "prompt", MR_NO_OFFSET, "empty prompt");
    if (n > mr_context_n_ctx(s->ctx))
        return mr_fail(err, MR_ERANGE, NULL, "prompt", MR_NO_OFFSET,
                       "the prompt has %zu tokens, more than the context (%u)", n,
                       mr_context_n_ctx(s->ctx));
    /* the longest common prefix is kept, leaving at least one token to
     * decode (the logits must be those of the prompt's end) */
    size_t k = eng_seq_common(s, ids, n);
    if (k == n)
        k = n - 1;
    *reused = eng_seq_keep(s, k);
    return MR_OK;
}

mr_status eng_seq_continue(eng_seq *s, const int32_t *ids, size_t n, size_t max, int *done,
                           mr_error *err)
{
    size_t k = n - s->n_cached < max ? n - s->n_cached : max;
    mr_status st = decode(s, ids + s->n_cached, k, err);
    *done = st == MR_OK && s->n_cached == n;
    return st;
}

mr_status eng_seq_prefill(eng_seq *s, const int32_t *ids, size_t n, size_t *reused, mr_error *err)
{
    int done;
    mr_status st = eng_seq_begin(s, ids, n, reused, err);
    return st ? st : eng_seq_continue(s, ids, n, n, &done, err);
}

mr_status eng_seq_push(eng_seq *s, int32_t id, mr_error *err) { return decode(s, &id, 1, err); }

/* ---------------------------------------------------------------- sampling */
mr_status eng_sampler_init(eng_sampler *s, const eng_sample_params *p, int32_t n_vocab,
                           mr_error *err)
{
    memset(s, 0, sizeof *s);
    s->p = *p;
    s->n_vocab = n_vocab;
    mr_status st = mr_sampler_new(&p->sp, n_vocab, &s->smp, err);
    if (st)
        return st;
    if (p->presence_penalty != 0 || p->frequency_penalty != 0) {
        s->counts = calloc((size_t)n_vocab, sizeof *s->counts);
        if (!s->counts) {
            eng_sampler_free(s);
            return mr_fail(err, MR_ENOMEM, NULL, "sampler", MR_NO_OFFSET, "out of memory");
        }
    }
    return MR_OK;
}

void eng_sampler_free(eng_sampler *s)
{
    mr_sampler_free(s->smp);
    free(s->counts);
    memset(s, 0, sizeof *s);
}

int32_t eng_sample(eng_sampler *s, eng_seq *q)
{
    const float *l = q->logits;
    if (s->counts) {
        memcpy(q->work, q->logits, sizeof(float) * (size_t)s->n_vocab);
        for (int32_t i = 0; i < s->n_vocab; i++)
            if (s->counts[i])
                q->work[i] -= s->p.presence_penalty + s->p.frequency_penalty * (float)s->counts[i];
        l = q->work;
    }
    return mr_sampler_sample(s->smp, l);
}

void eng_sampler_accept(eng_sampler *s, int32_t id, int generated)
{
    mr_sampler_accept(s->smp, id);
    if (generated && s->counts && id >= 0 && id < s->n_vocab)
        s->counts[id]++;
}

/* ---------------------------------------------------------------- stops */
void eng_stop_init(eng_stop *s, const char *const *stops)
{
    memset(s, 0, sizeof *s);
    s->stops = stops;
}

void eng_stop_free(eng_stop *s)
{
    free(s->text);
    memset(s, 0, sizeof *s);
}

int eng_stop_push(eng_stop *s, const char *p, size_t n, const char **out, size_t *out_n)
{
    *out = NULL;
    *out_n = 0;
    if (s->stopped)
        return 1;
    if (s->n + n + 1 > s->cap) {
        size_t c = s->cap ? s->cap : 256;
        while (c < s->n + n + 1)
            c *= 2;
        char *t = realloc(s->text, c);
        if (!t)
            return -1;
        s->text = t;
        s->cap = c;
    }
    memcpy(s->text + s->n, p, n);
    size_t old = s->n;
    s->n += n;
    s->text[s->n] = 0;
    size_t maxlen = 0;
    for (int i = 0; s->stops && s->stops[i]; i++)
        if (strlen(s->stops[i]) > maxlen)
            maxlen = strlen(s->stops[i]);
    /* a stop string that ends in the new text */
    size_t from = old > maxlen ? old - maxlen : 0, cut = s->n;
    for (int i = 0; s->stops && s->stops[i]; i++) {
        size_t k = strlen(s->stops[i]);
        if (!k || k > s->n)
            continue;
        const char *h = memmem(s->text + from, s->n - from, s->stops[i], k);
        if (h && (size_t)(h - s->text) < cut)
            cut = (size_t)(h - s->text);
    }
    if (cut < s->n) {
        s->stopped = 1;
        s->n = cut;
        s->text[cut] = 0;
        if (cut > s->emitted) {
            *out = s->text + s->emitted;
            *out_n = cut - s->emitted;
        }
        s->emitted = cut > s->emitted ? cut : s->emitted;
        return 1;
    }
    /* hold back a tail that could still grow into a stop string */
    size_t safe = s->n;
    for (int i = 0; s->stops && s->stops[i]; i++) {
        size_t k = strlen(s->stops[i]);
        for (size_t l = k > 1 ? k - 1 : 0; l > 0; l--)
            if (l <= s->n && !memcmp(s->text + s->n - l, s->stops[i], l)) {
                if (s->n - l < safe)
                    safe = s->n - l;
                break;
            }
    }
    if (safe > s->emitted) {
        *out = s->text + s->emitted;
        *out_n = safe - s->emitted;
        s->emitted = safe;
    }
    return 0;
}

void eng_stop_finish(eng_stop *s, const char **out, size_t *out_n)
{
    *out = s->text ? s->text + s->emitted : NULL;
    *out_n = s->n - s->emitted;
    s->emitted = s->n;
}
