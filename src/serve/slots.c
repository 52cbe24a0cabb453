/* slots.c - queue, slots and the decode thread (see slots.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "serve/slots.h"

typedef struct {
    eng_seq seq;
    srv_job *job;     /* NULL: free */
    eng_sampler smp;
    eng_stop stop;
    mr_detok dt;
    int prefilled, begun;
    uint64_t last_used, started;
    int32_t next;     /* the token it adds to the batch being built */
} slot;

struct srv_sched {
    const mr_model *model;
    const mr_tokenizer *tok;
    eng_eog eog;
    slot *slots;
    int n_slots;
    uint32_t n_ctx, n_batch;
    mr_context *ctx;  /* the slots' sequences (not owned) */
    /* the batch being built: one run per slot at most */
    eng_seq **r_seq;
    const int32_t **r_ids;
    size_t *r_n;
    slot **r_slot;
    int32_t *btok;
    uint32_t *sid;
    float *lbuf;
    int rot;          /* first slot asked for a token, rotated for fairness */
    pthread_mutex_t mu;
    pthread_cond_t work;   /* queue or slots changed */
    pthread_cond_t output; /* some job has new output */
    srv_job *head, *tail;
    size_t queued;
    int stopping;
    pthread_t thread;
    uint64_t clock;
    srv_metrics m;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

srv_job *srv_job_new(void)
{
    srv_job *j = calloc(1, sizeof *j);
    if (j)
        j->refs = 1;
    return j;
}

static void job_unref_locked(srv_job *j)
{
    if (--j->refs > 0)
        return;
    free(j->prompt);
    free(j->text);
    for (int i = 0; i < SRV_MAX_STOPS; i++)
        free(j->own[i]);
    free(j);
}

void srv_job_release(srv_sched *s, srv_job *j)
{
    if (!j)
        return;
    pthread_mutex_lock(&s->mu);
    job_unref_locked(j);
    pthread_mutex_unlock(&s->mu);
}

static void job_append_locked(srv_job *j, const char *p, size_t n)
{
    if (!n)
        return;
    if (j->n_text + n + 1 > j->cap) {
        size_t c = j->cap ? j->cap : 256;
        while (c < j->n_text + n + 1)
            c *= 2;
        char *t = realloc(j->text, c);
        if (!t)
            return;
        j->text = t;
        j->cap = c;
    }
    memcpy(j->text + j->n_text, p, n);
    j->n_text += n;
    j->text[j->n_text] = 0;
}

/* Finish the slot's job (lock held). */
static void finish_locked(srv_sched *s, slot *sl, const char *reason, const char *error)
{
    srv_job *j = sl->job;
    const char *out;
    size_t n;
    if (!error && !j->cancelled) {
        char tail[16];
        size_t w = mr_detok_flush(&sl->dt, tail, sizeof tail);
        if (w && eng_stop_push(&sl->stop, tail, w, &out, &n) >= 0)
            job_append_locked(j, out, n);
        eng_stop_finish(&sl->stop, &out, &n);
        job_append_locked(j, out, n);
    }
    j->finish = reason;
    if (error) {
        j->failed = 1;
        snprintf(j->error, sizeof j->error, "%s", error);
    }
    j->done = 1;
    j->t_done = now_s();
    if (j->cancelled)
        s->m.cancelled++;
    if (j->t_first > 0)
        s->m.gen_seconds += j->t_done - j->t_first;
    eng_stop_free(&sl->stop);
    eng_sampler_free(&sl->smp);
    sl->job = NULL;
    sl->last_used = ++s->clock;
    s->m.busy_slots--;
    job_unref_locked(j);
    pthread_cond_broadcast(&s->output);
}

/* The free slot for j: the longest cached prefix of its prompt, else the
 * least recently used. */
static slot *pick_slot(srv_sched *s, const srv_job *j)
{
    slot *best = NULL;
    size_t best_len = 0;
    for (int i = 0; i < s->n_slots; i++) {
        slot *sl = &s->slots[i];
        if (sl->job)
            continue;
        size_t k = eng_seq_common(&sl->seq, j->prompt, j->n_prompt);
        if (!best || k > best_len || (k == best_len && sl->last_used < best->last_used)) {
            best = sl;
            best_len = k;
        }
    }
    return best;
}

static void fail_slot(srv_sched *s, slot *sl, const char *msg)
{
    pthread_mutex_lock(&s->mu);
    finish_locked(s, sl, "stop", msg);
    pthread_mutex_unlock(&s->mu);
}

/* Start the slot's prompt: keep the longest common prefix of its own cache
 * (mr_seq_trim), or copy a longer one from another slot's (mr_seq_copy):
 * a shared system prompt is computed once.  0, or -1 when failed. */
static int begin_prompt(srv_sched *s, slot *sl)
{
    srv_job *j = sl->job;
    mr_error err;
    size_t reused;
    j->t_started = now_s();
    if (eng_seq_begin(&sl->seq, j->prompt, j->n_prompt, &reused, &err)) {
        fail_slot(s, sl, err.msg);
        return -1;
    }
    const slot *from = NULL;
    size_t best = reused;
    for (int i = 0; i < s->n_slots; i++) {
        const slot *o = &s->slots[i];
        if (o == sl)
            continue;
        size_t k = eng_seq_common(&o->seq, j->prompt, j->n_prompt);
        if (k >= j->n_prompt)
            k = j->n_prompt - 1; /* one token is left to decode */
        if (k > best) {
            best = k;
            from = o;
        }
    }
    if (from)
        reused = eng_seq_copy(&sl->seq, &from->seq, best);
    sl->begun = 1;
    pthread_mutex_lock(&s->mu);
    j->reused = reused;
    s->m.prompt_tokens += j->n_prompt;
    s->m.prompt_reused += reused;
    pthread_mutex_unlock(&s->mu);
    return 0;
}

/* The prompt is in the cache: get ready to generate.  0, or -1. */
static int end_prompt(srv_sched *s, slot *sl)
{
    srv_job *j = sl->job;
    mr_error err;
    if (eng_sampler_init(&sl->smp, &j->sp, (int32_t)s->model->hp.n_vocab, &err)) {
        fail_slot(s, sl, err.msg);
        return -1;
    }
    for (size_t i = 0; i < j->n_prompt; i++)
        eng_sampler_accept(&sl->smp, j->prompt[i], 0);
    eng_stop_init(&sl->stop, j->stops);
    mr_detok_init(&sl->dt, s->tok, 0); /* the answer continues the prompt: keep its space */
    sl->dt.special = j->special;       /* for serve/reasoning.c's markers */
    sl->prefilled = 1;
    return 0;
}

/* A generating slot's next token: sample it from the logits of the last
 * batch and hand its text out; 1 when it goes on (sl->next is to be
 * decoded), 0 when the job ended. */
static int next_token(srv_sched *s, slot *sl)
{
    srv_job *j = sl->job;
    int32_t id = eng_sample(&sl->smp, &sl->seq);
    pthread_mutex_lock(&s->mu);
    if (j->t_first == 0)
        j->t_first = now_s();
    if (eng_is_eog(&s->eog, id) && !j->ignore_eos) {
        finish_locked(s, sl, "stop", NULL);
        pthread_mutex_unlock(&s->mu);
        return 0;
    }
    j->n_gen++;
    s->m.gen_tokens++;
    char piece[600];
    size_t w = mr_detok_push(&sl->dt, id, piece, sizeof piece);
    const char *out;
    size_t n;
    int r = eng_stop_push(&sl->stop, piece, w, &out, &n);
    job_append_locked(j, out, n);
    pthread_cond_broadcast(&s->output);
    const char *end = r ? "stop"
                      : j->max_tokens > 0 && (long)j->n_gen >= j->max_tokens ? "length"
                      : sl->seq.n_cached + 1 >= s->n_ctx ? "length"
                      : NULL;
    if (end) {
        finish_locked(s, sl, end, NULL);
        pthread_mutex_unlock(&s->mu);
        return 0;
    }
    pthread_mutex_unlock(&s->mu);
    eng_sampler_accept(&sl->smp, id, 1);
    sl->next = id;
    return 1;
}

/* One forward for all busy slots: a token of each generating one, then as
 * much of the waiting prompts (oldest first) as the batch holds.  Called
 * without the lock (only this thread touches the slots' sequences). */
static void run_batch(srv_sched *s)
{
    int nr = 0;
    size_t room = s->n_batch, n_prompt_tok = 0;
    for (int k = 0; k < s->n_slots; k++) {
        slot *sl = &s->slots[(s->rot + k) % s->n_slots];
        if (!sl->job)
            continue;
        pthread_mutex_lock(&s->mu);
        int cancelled = sl->job->cancelled;
        pthread_mutex_unlock(&s->mu);
        if (cancelled) {
            fail_slot(s, sl, NULL);
            continue;
        }
        if (!sl->prefilled || !room || !next_token(s, sl))
            continue;
        s->r_seq[nr] = &sl->seq;
        s->r_ids[nr] = &sl->next;
        s->r_n[nr] = 1;
        s->r_slot[nr++] = sl;
        room--;
    }
    s->rot = (s->rot + 1) % s->n_slots;
    while (room) {
        slot *sl = NULL; /* the oldest prompt not in this batch yet */
        for (int i = 0; i < s->n_slots; i++) {
            slot *c = &s->slots[i];
            int queued = 0;
            for (int r = 0; r < nr; r++)
                queued |= s->r_slot[r] == c;
            if (c->job && !c->prefilled && !queued && (!sl || c->started < sl->started))
                sl = c;
        }
        if (!sl)
            break;
        if (!sl->begun && begin_prompt(s, sl))
            continue;
        const srv_job *j = sl->job;
        size_t k = j->n_prompt - sl->seq.n_cached;
        if (k > room)
            k = room;
        s->r_seq[nr] = &sl->seq;
        s->r_ids[nr] = j->prompt + sl->seq.n_cached;
        s->r_n[nr] = k;
        s->r_slot[nr++] = sl;
        room -= k;
        n_prompt_tok += k;
    }
    if (!nr)
        return;
    mr_error err;
    double t0 = now_s();
    mr_status st = eng_decode_runs(s->r_seq, s->r_ids, s->r_n, nr, s->btok, s->sid, s->lbuf, &err);
    double dt = now_s() - t0;
    const size_t n_tok = s->n_batch - room;
    pthread_mutex_lock(&s->mu);
    s->m.batches++;
    s->m.batch_tokens += n_tok;
    s->m.batch_seqs += (uint64_t)nr;
    s->m.prompt_seconds += dt * (double)n_prompt_tok / (double)n_tok;
    pthread_mutex_unlock(&s->mu);
    for (int r = 0; r < nr; r++) {
        slot *sl = s->r_slot[r];
        if (st)
            fail_slot(s, sl, err.msg);
        else if (!sl->prefilled && sl->seq.n_cached == sl->job->n_prompt)
            end_prompt(s, sl);
    }
}

static void *run(void *arg)
{
    srv_sched *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        /* start queued jobs on free slots */
        while (s->head) {
            slot *sl = pick_slot(s, s->head);
            if (!sl)
                break;
            srv_job *j = s->head;
            s->head = j->next;
            if (!s->head)
                s->tail = NULL;
            s->queued--;
            j->next = NULL;
            sl->job = j;
            sl->prefilled = 0;
            sl->begun = 0;
            sl->started = ++s->clock;
            s->m.busy_slots++;
            s->m.requests++;
        }
        int busy = 0;
        for (int i = 0; i < s->n_slots; i++)
            busy += s->slots[i].job != NULL;
        if (!busy) {
            if (s->stopping)
                break;
            pthread_cond_wait(&s->work, &s->mu);
            continue;
        }
        pthread_mutex_unlock(&s->mu);
        run_batch(s);
        pthread_mutex_lock(&s->mu);
        if (s->stopping)
            for (int i = 0; i < s->n_slots; i++)
                if (s->slots[i].job) {
                    s->slots[i].job->cancelled = 1;
                    finish_locked(s, &s->slots[i], "stop", "server shutting down");
                }
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int srv_sched_new(srv_sched **out, const mr_model *m, const mr_tokenizer *tok, mr_context *ctx,
                  uint32_t n_batch, const eng_eog *eog, mr_error *err)
{
    srv_sched *s = calloc(1, sizeof *s);
    if (!s)
        return mr_fail(err, MR_ENOMEM, NULL, "slots", MR_NO_OFFSET, "out of memory");
    const int n_slots = (int)mr_context_n_seq(ctx);
    s->model = m;
    s->tok = tok;
    s->eog = *eog;
    s->ctx = ctx;
    s->n_ctx = mr_context_n_ctx(ctx);
    s->n_batch = n_batch;
    s->slots = calloc((size_t)n_slots, sizeof *s->slots);
    s->r_seq = calloc((size_t)n_slots, sizeof *s->r_seq);
    s->r_ids = calloc((size_t)n_slots, sizeof *s->r_ids);
    s->r_n = calloc((size_t)n_slots, sizeof *s->r_n);
    s->r_slot = calloc((size_t)n_slots, sizeof *s->r_slot);
    s->btok = calloc(n_batch, sizeof *s->btok);
    s->sid = calloc(n_batch, sizeof *s->sid);
    s->lbuf = calloc((size_t)n_slots * m->hp.n_vocab, sizeof *s->lbuf);
    if (!s->slots || !s->r_seq || !s->r_ids || !s->r_n || !s->r_slot || !s->btok || !s->sid ||
        !s->lbuf) {
        srv_sched_free(s);
        return mr_fail(err, MR_ENOMEM, NULL, "slots", MR_NO_OFFSET, "out of memory");
    }
    for (int i = 0; i < n_slots; i++) {
        mr_status st = eng_seq_init(&s->slots[i].seq, m, ctx, (uint32_t)i, 0, n_batch, err);
        if (st) {
            s->n_slots = i;
            srv_sched_free(s);
            return st;
        }
    }
    s->n_slots = n_slots;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->work, NULL);
    pthread_cond_init(&s->output, NULL);
    if (pthread_create(&s->thread, NULL, run, s)) {
        srv_sched_free(s);
        return mr_fail(err, MR_ENOMEM, NULL, "slots", MR_NO_OFFSET, "cannot start the decode thread");
    }
    *out = s;
    return MR_OK;
}

void srv_sched_free(srv_sched *s)
{
    if (!s)
        return;
    if (s->thread) {
        pthread_mutex_lock(&s->mu);
        s->stopping = 1;
        /* queued jobs end unanswered */
        while (s->head) {
            srv_job *j = s->head;
            s->head = j->next;
            j->done = j->failed = 1;
            snprintf(j->error, sizeof j->error, "server shutting down");
            job_unref_locked(j);
        }
        s->tail = NULL;
        pthread_cond_broadcast(&s->work);
        pthread_cond_broadcast(&s->output);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
    }
    for (int i = 0; i < s->n_slots; i++)
        eng_seq_free(&s->slots[i].seq);
    free(s->slots);
    free(s->r_seq);
    free(s->r_ids);
    free(s->r_n);
    free(s->r_slot);
    free(s->btok);
    free(s->sid);
    free(s->lbuf);
    if (s->thread) {
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->work);
        pthread_cond_destroy(&s->output);
    }
    free(s);
}

int srv_submit(srv_sched *s, srv_job *j, size_t max_queue)
{
    pthread_mutex_lock(&s->mu);
    if (s->stopping || s->queued >= max_queue) {
        pthread_mutex_unlock(&s->mu);
        return -1;
    }
    j->refs++;
    j->t_queued = now_s();
    if (s->tail)
        s->tail->next = j;
    else
        s->head = j;
    s->tail = j;
    s->queued++;
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

void srv_wait(srv_sched *s, srv_job *j, size_t *seen, char **chunk, size_t *n, int *done,
              int timeout_ms)
{
    *chunk = NULL;
    *n = 0;
    pthread_mutex_lock(&s->mu);
    if (j->n_text <= *seen && !j->done) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += timeout_ms / 1000;
        ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->output, &s->mu, &ts);
    }
    if (j->n_text > *seen) {
        *n = j->n_text - *seen;
        *chunk = malloc(*n + 1);
        if (*chunk) {
            memcpy(*chunk, j->text + *seen, *n);
            (*chunk)[*n] = 0;
            *seen = j->n_text;
        } else
            *n = 0;
    }
    *done = j->done && *seen == j->n_text;
    pthread_mutex_unlock(&s->mu);
}

void srv_cancel(srv_sched *s, srv_job *j)
{
    pthread_mutex_lock(&s->mu);
    if (!j->done) {
        j->cancelled = 1;
        /* still queued: take it out at once */
        srv_job **pp = &s->head, *prev = NULL;
        while (*pp && *pp != j) {
            prev = *pp;
            pp = &(*pp)->next;
        }
        if (*pp) {
            *pp = j->next;
            if (s->tail == j)
                s->tail = prev;
            s->queued--;
            j->done = 1;
            j->finish = "stop";
            s->m.cancelled++;
            job_unref_locked(j);
        }
        pthread_cond_signal(&s->work);
    }
    pthread_mutex_unlock(&s->mu);
}

void srv_get_metrics(srv_sched *s, srv_metrics *m)
{
    pthread_mutex_lock(&s->mu);
    *m = s->m;
    m->queued = (int)s->queued;
    pthread_mutex_unlock(&s->mu);
}

int srv_n_slots(const srv_sched *s) { return s->n_slots; }
uint32_t srv_n_ctx(const srv_sched *s) { return s->n_ctx; }
