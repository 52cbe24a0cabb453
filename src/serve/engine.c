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
mr_status eng_seq_init(eng_seq *s, const mr_model *m, mr_expert_store *store, uint32_t n_ctx,
                       uint32_t n_batch, int threads, mr_error *err)
{
    memset(s, 0, sizeof *s);
    s->model = m;
    s->n_batch = n_batch;
    mr_status st = mr_context_new(m, store, n_ctx, n_batch, &s->ctx, err);
    if (st)
        return st;
    if (threads > 0 && (st = mr_context_set_threads(s->ctx, threads, err))) {
        eng_seq_free(s);
        return st;
    }
    s->logits = malloc(sizeof(float) * m->hp.n_vocab);
    s->work = malloc(sizeof(float) * m->hp.n_vocab);
    if (!s->logits || !s->work) {
        eng_seq_free(s);
        return mr_fail(err, MR_ENOMEM, NULL, "logits", MR_NO_OFFSET, "out of memory");
    }
    return MR_OK;
}

void eng_seq_free(eng_seq *s)
{
    mr_context_free(s->ctx);
    free(s->cached);
    free(s->logits);
    free(s->work);
    memset(s, 0, sizeof *s);
}

void eng_seq_reset(eng_seq *s)
{
    mr_context_reset(s->ctx);
    s->n_cached = 0;
    s->have_logits = 0;
}

static mr_status decode(eng_seq *s, const int32_t *ids, size_t n, mr_error *err)
{
    if (s->n_cached + n > mr_context_n_ctx(s->ctx))
        return mr_fail(err, MR_ERANGE, NULL, "context", MR_NO_OFFSET,
                       "%zu tokens do not fit the context of %u", s->n_cached + n,
                       mr_context_n_ctx(s->ctx));
    if (append_ids(&s->cached, &s->n_cached, &s->cap, ids, n)) {
        return mr_fail(err, MR_ENOMEM, NULL, "cache", MR_NO_OFFSET, "out of memory");
    }
    s->n_cached -= n; /* counted again as they are decoded */
    for (size_t i = 0; i < n; i += s->n_batch) {
        size_t k = n - i < s->n_batch ? n - i : s->n_batch;
        mr_status st = mr_decode(s->ctx, ids + i, (uint32_t)k, s->logits, 0, err);
        if (st) {
            /* the cache's content is unknown now: start again next time */
            eng_seq_reset(s);
            return st;
        }
        s->n_cached += k;
    }
    s->have_logits = n > 0 || s->have_logits;
    return MR_OK;
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
    /* the cache is kept when it is a prefix of ids and leaves at least one
     * token to decode (the logits must be those of the prompt's end) */
    int keep = s->n_cached < n && s->have_logits;
    for (size_t i = 0; keep && i < s->n_cached; i++)
        keep = s->cached[i] == ids[i];
    if (!keep)
        eng_seq_reset(s);
    *reused = s->n_cached;
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
