/* store_paged.c - the paged expert store (see store_paged.h): its API,
 * cache policy and set-up; the reads are in store_paged_io.c.
 *
 * One expert of one layer (its gate, up and down slices) occupies one slot
 * of a pool allocated once within the budget.  The forward's plan() for a
 * layer starts every missing read at once; hint() starts reads for a later
 * layer's guessed experts; acquire() waits only for the expert it needs.
 *
 * Reads go through io_uring: O_DIRECT on the 4096-aligned superset of each
 * slice where the file system allows it (else buffered, and the stats say
 * so), registered buffers and file where the kernel allows, reads of at
 * most chunk_bytes in flight together, short reads and -EAGAIN re-queued.
 * Whoever starts a read (the forward's plan and hints, the I/O thread's
 * re-queues) only queues its requests under the mutex; a submit thread,
 * the one writer of the ring's submission queue, puts them on the ring
 * and enters the kernel without the mutex.  An I/O thread, the one reader
 * of the completion queue, reaps completions, verifies each slice's xxh3
 * against the file's moerun.checksum.experts (one re-read on a mismatch),
 * and wakes the forward.
 *
 * Eviction: LFU with ageing.  Every use adds 1 to an expert's score and
 * every token multiplies all scores by 0.95, so the experts the router
 * keeps choosing stay and old favourites fade; ties go to the least
 * recently used.  Experts of the current layer's plan and pending
 * prefetches are pinned.
 */
#include "store_paged_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

void mr_paged_config_default(mr_paged_config *c)
{
    memset(c, 0, sizeof *c);
    c->prefetch_depth = 1;
    c->policy = MR_PAGED_POLICY_DEFAULT;
    c->queue_depth = 64;
    c->chunk_bytes = 4u << 20;
}

uint64_t mr_store_paged_min_budget(const mr_model *m, const mr_paged_config *cfg)
{
    return m->resident_bytes + cfg->reserve_bytes + OVERHEAD_BYTES +
           (uint64_t)m->hp.n_expert * pg_slot_bytes(m);
}

/* ------------------------------------------------------------ cache policy */

/* A slot for (layer, expert): an empty one, else the evictable one with the
 * lowest score (ties: least recently used); -1 if every slot is pinned. */
static int pick_victim_below(paged *p, float limit);
static int pick_victim(paged *p)
{
    return pick_victim_below(p, INFINITY);
}

/* As pick_victim, but a slot holding an expert whose score is limit or
 * more is kept (hot experts stay pinned against speculative reads). */
static int pick_victim_below(paged *p, float limit)
{
    int best = -1;
    float best_score = 0.0f;
    for (uint32_t i = 0; i < p->n_slots; i++) {
        slot *s = &p->slots[i];
        if (s->state == S_EMPTY)
            return (int)i;
        if (s->refs || s->plan_pin || s->hint_pin || s->state == S_LOADING ||
            s->state == S_VERIFYING)
            continue;
        float sc = s->state == S_FAILED ? -1.0f
                                        : p->score[(size_t)s->layer * p->m->hp.n_expert + (size_t)s->expert];
        if (best < 0 || sc < best_score ||
            (sc == best_score && s->last_use < p->slots[best].last_use)) {
            best = (int)i;
            best_score = sc;
        }
    }
    if (best >= 0 && best_score >= limit)
        return -1;
    if (best >= 0) {
        slot *s = &p->slots[best];
        if (s->layer >= 0) {
            *where_of(p, (uint32_t)s->layer, (uint32_t)s->expert) = -1;
            if (s->state != S_FAILED)
                p->st.evictions++;
        }
        s->state = S_EMPTY;
        s->layer = s->expert = -1;
        s->prefetched = 0;
        s->retried = 0;
    }
    return best;
}

static mr_status paged_plan(mr_expert_store *base, uint32_t layer, const uint32_t *experts,
                            uint32_t n, mr_error *err)
{
    paged *p = (paged *)base;
    const uint32_t ne = p->m->hp.n_expert;
    pthread_mutex_lock(&p->mu);
    p->cur = layer;
    p->plans++;
    memset(p->deferred[layer], 0, sizeof p->deferred[layer]); /* here: no longer a guess */
    if (layer == p->first_moe) { /* a new forward step: age every score */
        for (size_t i = 0; i < (size_t)p->m->hp.n_layer * ne; i++)
            p->score[i] *= DECAY;
    }
    for (uint32_t i = 0; i < p->n_slots; i++) {
        p->slots[i].plan_pin = 0;
        if (p->slots[i].layer == (int32_t)layer)
            p->slots[i].hint_pin = 0; /* its layer is here: a plain cache entry now */
    }
    if (p->has_guess[layer]) {
        uint32_t guessed = 0, right = 0;
        for (uint32_t e = 0; e < ne; e++)
            guessed += (p->guess[layer][e / 64] >> (e % 64)) & 1;
        for (uint32_t i = 0; i < n; i++)
            right += (p->guess[layer][experts[i] / 64] >> (experts[i] % 64)) & 1;
        p->st.guesses += guessed;
        p->st.guesses_right += right;
        p->st.needed += n;
        p->has_guess[layer] = 0;
        memset(p->guess[layer], 0, sizeof p->guess[layer]);
    }
    mr_status st = MR_OK;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t e = experts[i];
        p->score[(size_t)layer * ne + e] += 1.0f;
        if (!p->seen[(size_t)layer * ne + e]) { /* bytes that must come from disk at least once */
            p->seen[(size_t)layer * ne + e] = 1;
            p->st.unique_bytes += mr_expert_bytes(p->m, layer);
        }
        int32_t si = *where_of(p, layer, e);
        if (si >= 0 && p->slots[si].state != S_FAILED) {
            p->slots[si].plan_pin = 1;
            continue;
        }
        if (si >= 0) { /* a failed earlier attempt: try again */
            *where_of(p, layer, e) = -1;
            p->slots[si].state = S_EMPTY;
            p->slots[si].layer = p->slots[si].expert = -1;
        }
        int v = pick_victim(p);
        if (v < 0) { /* guesses for later layers hold slots: they were only hints */
            for (uint32_t k = 0; k < p->n_slots; k++)
                p->slots[k].hint_pin = 0;
            v = pick_victim(p);
        }
        if (v < 0) {
            st = mr_fail(err, MR_ENOMEM, p->path, "expert pool", MR_NO_OFFSET,
                         "all %u slots are pinned; layer %u needs %u experts", p->n_slots, layer, n);
            break;
        }
        p->slots[v].plan_pin = 1;
        pg_start_load(p, (uint32_t)v, layer, e);
    }
    pthread_mutex_unlock(&p->mu);
    return st;
}

/* Start a speculative read of (layer, e) (mutex held).  With the hot
 * guard a guess may only evict an expert whose score is below the
 * guessed one's plus HINT_WORTH: a guess is worth about one use, and the
 * experts the router keeps choosing stay across tokens. */
static void guess_read(paged *p, uint32_t layer, uint32_t e)
{
    int32_t si = *where_of(p, layer, e);
    if (si >= 0) {
        p->slots[si].hint_pin = p->slots[si].state != S_FAILED;
        return;
    }
    float limit = INFINITY;
    if (p->cfg.policy & MR_PAGED_HOT_GUARD)
        limit = p->score[(size_t)layer * p->m->hp.n_expert + e] + HINT_WORTH;
    int v = pick_victim_below(p, limit);
    if (v < 0)
        return; /* every slot is needed now, or hotter: a hint is only a hint */
    p->slots[v].hint_pin = 1;
    p->slots[v].prefetched = 1;
    p->st.prefetch_reads++;
    pg_start_load(p, (uint32_t)v, layer, e);
}

static void note_guess(paged *p, uint32_t layer, uint32_t e)
{
    p->has_guess[layer] = 1;
    p->guess[layer][e / 64] |= 1ull << (e % 64);
}

/* The disk has nothing in flight (mutex held; from the I/O thread or a
 * hint): read the guesses kept for layers beyond the next one, then, with
 * MR_PAGED_FREQ_FILL, the hottest experts of the next layer still missing
 * (wrapping to the next token's first MoE layer), as many as the router
 * picks per token. */
void pg_idle(paged *p)
{
    const uint32_t nl = p->m->hp.n_layer, ne = p->m->hp.n_expert;
    if (p->in_flight || p->stop)
        return;
    for (uint32_t g = p->cur + 1; g < nl && p->has_deferred; g++) {
        for (uint32_t e = 0; e < ne; e++)
            if ((p->deferred[g][e / 64] >> (e % 64)) & 1)
                guess_read(p, g, e);
        memset(p->deferred[g], 0, sizeof p->deferred[g]);
    }
    p->has_deferred = 0;
    if (!(p->cfg.policy & MR_PAGED_FREQ_FILL) || p->in_flight || p->filled_for == p->plans)
        return;
    p->filled_for = p->plans; /* once per planned layer */
    uint32_t g = p->cur + 1;
    while (g < nl && !p->m->layers[g].moe)
        g++;
    if (g >= nl)
        g = p->first_moe;
    if (!p->m->layers[g].moe)
        return;
    const float *sc = p->score + (size_t)g * ne;
    uint8_t taken[MR_MAX_EXPERTS] = {0};
    for (uint32_t k = 0, want = p->m->hp.n_expert_used; k < ne && want; k++) {
        int best = -1;
        for (uint32_t e = 0; e < ne; e++)
            if (!taken[e] && (best < 0 || sc[e] > sc[best]))
                best = (int)e;
        taken[best] = 1;
        if (sc[best] <= 0.0f)
            break;
        if (*where_of(p, g, (uint32_t)best) < 0) {
            note_guess(p, g, (uint32_t)best);
            guess_read(p, g, (uint32_t)best);
        }
        want--;
    }
}

static void paged_hint(mr_expert_store *base, uint32_t layer, const uint32_t *experts, uint32_t n)
{
    paged *p = (paged *)base;
    pthread_mutex_lock(&p->mu);
    const int deep = (p->cfg.policy & MR_PAGED_IDLE_DEEP) && layer > p->cur + 1;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t e = experts[i];
        note_guess(p, layer, e);
        if (deep) { /* further ahead: only when the disk is idle */
            p->deferred[layer][e / 64] |= 1ull << (e % 64);
            p->has_deferred = 1;
        } else {
            guess_read(p, layer, e);
        }
    }
    pg_idle(p);
    pthread_mutex_unlock(&p->mu);
}

static mr_status paged_acquire(mr_expert_store *base, uint32_t layer, uint32_t expert,
                               mr_expert_slices *out, mr_error *err)
{
    paged *p = (paged *)base;
    pthread_mutex_lock(&p->mu);
    int32_t si = *where_of(p, layer, expert);
    if (si < 0) { /* acquired without a plan: read it now */
        uint32_t e = expert;
        pthread_mutex_unlock(&p->mu);
        mr_status st = paged_plan(base, layer, &e, 1, err);
        if (st)
            return st;
        pthread_mutex_lock(&p->mu);
        si = *where_of(p, layer, expert);
    }
    slot *s = &p->slots[si];
    /* a hit is an expert ready in memory when the forward asks for it; a
     * prefetch still in flight is a (late) miss */
    if (s->state == S_READY)
        p->st.hits++;
    else
        p->st.misses++;
    const int was_guess = s->prefetched;
    if (s->prefetched) {
        p->st.prefetch_used++;
        p->st.prefetch_late += s->state != S_READY;
    }
    s->prefetched = 0;
    for (int attempt = 0;; attempt++) {
        if (s->state == S_LOADING || s->state == S_VERIFYING) {
            double t0 = now_s();
            while ((s->state == S_LOADING || s->state == S_VERIFYING) && !p->stop)
                pthread_cond_wait(&p->cv, &p->mu);
            p->st.stall_s += now_s() - t0;
        }
        /* a read started as a guess failed: the guess was only a hint, so
         * the read the forward needs is made now, once, before failing */
        if (s->state == S_FAILED && was_guess && attempt == 0 && !p->stop) {
            p->st.retries++;
            pg_start_load(p, (uint32_t)si, layer, expert);
            continue;
        }
        break;
    }
    mr_status st = MR_OK;
    if (s->state != S_READY) {
        st = mr_fail(err, s->state == S_FAILED ? s->err_code : MR_EIO, NULL, NULL, MR_NO_OFFSET,
                     "%s", s->err[0] ? s->err : "the I/O thread stopped");
    } else {
        s->refs++;
        s->last_use = ++p->tick;
        out->gate = s->part[0];
        out->up = s->part[1];
        out->down = s->part[2];
    }
    pthread_mutex_unlock(&p->mu);
    return st;
}

static void paged_release(mr_expert_store *base, uint32_t layer, uint32_t expert)
{
    paged *p = (paged *)base;
    pthread_mutex_lock(&p->mu);
    int32_t si = *where_of(p, layer, expert);
    if (si >= 0 && p->slots[si].refs > 0)
        p->slots[si].refs--;
    pthread_mutex_unlock(&p->mu);
}

static void paged_destroy(mr_expert_store *base)
{
    paged *p = (paged *)base;
    atomic_store(&p->populate_stop, 1);
    for (int k = 0; k < p->populate_ok; k++)
        pthread_join(p->populate_thread[k], NULL);
    if (p->thread_ok) {
        pthread_mutex_lock(&p->mu);
        /* wait for reads in flight, then wake the I/O thread with a no-op */
        while (p->in_flight > 0 && !p->stop)
            pthread_cond_wait(&p->cv, &p->mu);
        p->stop = 1; /* the pread or submit thread ends */
        pthread_cond_broadcast(&p->qcv);
        pthread_mutex_unlock(&p->mu);
        if (p->submit_ok)
            pthread_join(p->submit_thread, NULL);
        /* now nothing else writes the ring: wake the I/O thread with a no-op */
        struct io_uring_sqe *sqe = p->use_pread ? NULL : io_uring_get_sqe(&p->ring);
        if (sqe) {
            io_uring_prep_nop(sqe);
            io_uring_sqe_set_data64(sqe, STOP_TAG);
            io_uring_submit(&p->ring);
        }
        pthread_join(p->io_thread, NULL);
    }
    if (p->ring_ok)
        io_uring_queue_exit(&p->ring);
    if (p->fd >= 0)
        close(p->fd);
    if (p->pool)
        munmap(p->pool, p->pool_len);
    free(p->slots);
    free(p->where);
    free(p->score);
    free(p->reqs);
    free(p->checksums);
    free(p->guess);
    free(p->has_guess);
    free(p->seen);
    free(p->deferred);
    /* the model's views point into resident: the caller frees the model
     * after the store (as the CLI and tests do) */
    free(p->resident);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    pthread_cond_destroy(&p->qcv);
    free(p->path);
    free(p);
}

static const mr_expert_store_ops paged_ops = {
    .name = "paged (io_uring)",
    .plan = paged_plan,
    .acquire = paged_acquire,
    .release = paged_release,
    .hint = paged_hint,
    .destroy = paged_destroy,
};

int mr_store_paged_stats(mr_expert_store *s, mr_paged_stats *out)
{
    if (s->ops != &paged_ops)
        return 0;
    paged *p = (paged *)s;
    if (out) {
        pthread_mutex_lock(&p->mu);
        *out = p->st;
        pthread_mutex_unlock(&p->mu);
    }
    return 1;
}

const void *mr_store_paged_pool(mr_expert_store *s, size_t *len)
{
    *len = 0;
    if (s->ops != &paged_ops)
        return NULL;
    paged *p = (paged *)s;
    pthread_mutex_lock(&p->mu);
    uint32_t n = 0;
    while (n < p->n_slots && p->slots[n].filled)
        n++;
    pthread_mutex_unlock(&p->mu);
    *len = (size_t)n * p->slot_bytes;
    return p->pool;
}

void mr_store_paged_inject(mr_expert_store *s, const mr_fault *f)
{
    if (s->ops != &paged_ops)
        return;
    paged *p = (paged *)s;
    pthread_mutex_lock(&p->mu);
    p->fault = *f;
    pthread_mutex_unlock(&p->mu);
}

/* ------------------------------------------------------------ set-up */

/* The pool's memory.  Eager (cfg.eager_pool): populated in one call and
 * then registered with io_uring, which pins it: 0.84 s for 2.3 GiB before
 * the first read can start.  Lazy (the default): left unpopulated and
 * unregistered; two threads fault the pages in behind the set-up
 * (populate_main), and a read that gets ahead of them faults its own
 * buffer in while the disk works on the others.  (Transparent huge pages were
 * tried: with THP defrag in "madvise" mode the compaction took 7.3 s for
 * the same pool, so they are not asked for.) */
static uint8_t *map_pool(size_t len, int eager)
{
    return mmap(NULL, len, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS | (eager ? MAP_POPULATE : 0), -1, 0);
}

/* A lazy pool's pages are faulted in on threads of their own, in slot
 * order (the order empty slots are taken), 16 MiB at a time, so an
 * O_DIRECT read seldom has to fault its buffer in the submitting thread.
 * That faulting is not free: in a VM whose host backs guest memory on
 * first touch it ran at 0.5-0.7 GB/s per thread (Zen 4 host, family 25
 * model 17), and the prompt's submissions spent 26 of a 29 s first token
 * on it, the disk idle meanwhile.  MADV_POPULATE_WRITE never changes a
 * page already present, so it may race with reads into the same slot; on
 * kernels without it (before 5.14) the thread stops and the reads fault
 * the pages in as before.  Two threads, interleaved by step: the 24.5 GiB
 * Mixtral-8x7B Q4_0 synth in a 12 GiB cgroup, cold cache, 3 alternating
 * runs: first token 12.8-20.3 s without, 8.8-9.9 s with one thread,
 * 7.2-8.1 s with two; decode unchanged. */
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
static void *populate_main(void *arg)
{
    const struct pg_populate_job *j = arg;
    paged *p = j->p;
    const size_t step = 16u << 20;
    double t0 = now_s();
    for (size_t o = (size_t)j->k * step; o < p->pool_len && !atomic_load(&p->populate_stop);
         o += (size_t)MR_PAGED_POPULATE_THREADS * step) {
        size_t n = p->pool_len - o < step ? p->pool_len - o : step;
        if (madvise(p->pool + o, n, MADV_POPULATE_WRITE) != 0)
            return NULL;
    }
    pthread_mutex_lock(&p->mu);
    double t = now_s() - t0;
    if (t > p->st.populate_s)
        p->st.populate_s = t;
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

mr_status mr_store_paged_new(mr_model *m, const char *path, const mr_paged_config *cfg,
                             mr_expert_store **out, mr_error *err)
{
    mr_status st;
    *out = NULL;
    paged *p = calloc(1, sizeof *p);
    if (!p || !(p->path = strdup(path))) {
        free(p);
        return mr_fail(err, MR_ENOMEM, path, NULL, MR_NO_OFFSET, "no memory");
    }
    p->base.ops = &paged_ops;
    p->base.model = m;
    p->base.prefetch_depth = cfg->prefetch_depth;
    p->base.guess_extra = cfg->guess_extra;
    p->m = m;
    p->cfg = *cfg;
    if (!p->cfg.queue_depth)
        p->cfg.queue_depth = 64;
    if (p->cfg.chunk_bytes < ALIGN)
        p->cfg.chunk_bytes = 4u << 20;
    p->cfg.chunk_bytes = p->cfg.chunk_bytes / ALIGN * ALIGN;
    p->fd = -1;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    pthread_cond_init(&p->qcv, NULL);
    p->q_head = p->q_tail = -1;

    const uint32_t nl = m->hp.n_layer, ne = m->hp.n_expert;
    while (p->first_moe + 1 < nl && !m->layers[p->first_moe].moe)
        p->first_moe++; /* DeepSeek's leading dense layers never plan */
    p->slot_bytes = pg_slot_bytes(m);
    const uint64_t min_budget = mr_store_paged_min_budget(m, &p->cfg);
    if (cfg->budget_bytes < min_budget) {
        st = mr_fail(err, MR_ERANGE, path, "--mem", MR_NO_OFFSET,
                     "a budget of %.1f MiB is too small: this model needs at least %.1f MiB "
                     "(non-expert weights %.1f MiB + one layer of %u experts x %.1f MiB + "
                     "context and scratch %.1f MiB + overhead %.0f MiB)",
                     cfg->budget_bytes / 1048576.0, min_budget / 1048576.0,
                     m->resident_bytes / 1048576.0, ne, p->slot_bytes / 1048576.0,
                     p->cfg.reserve_bytes / 1048576.0, OVERHEAD_BYTES / 1048576.0);
        goto fail;
    }
    uint64_t pool = cfg->budget_bytes - (min_budget - (uint64_t)ne * p->slot_bytes);
    uint64_t n_slots = pool / p->slot_bytes;
    if (n_slots > (uint64_t)nl * ne)
        n_slots = (uint64_t)nl * ne;
    p->n_slots = (uint32_t)n_slots;
    double t0 = now_s();
    if ((st = pg_open_file(p, err)) || (st = pg_load_checksums(p, err)) || (st = pg_copy_resident(p, err)))
        goto fail;
    p->st.copy_s = now_s() - t0;
    t0 = now_s();

    /* requests: every chunk of every slot may be in flight at once */
    uint64_t chunks_per_slot = 3 + p->slot_bytes / p->cfg.chunk_bytes + 3;
    p->n_reqs = (uint32_t)(chunks_per_slot * p->n_slots);
    p->slots = calloc(p->n_slots, sizeof *p->slots);
    p->where = malloc(sizeof(int32_t) * nl * ne);
    p->score = calloc((size_t)nl * ne, sizeof(float));
    p->reqs = calloc(p->n_reqs, sizeof *p->reqs);
    p->guess = calloc(nl, sizeof *p->guess);
    p->has_guess = calloc(nl, 1);
    p->deferred = calloc(nl, sizeof *p->deferred);
    p->seen = calloc((size_t)nl * ne, 1);
    if (!p->slots || !p->where || !p->score || !p->reqs || !p->guess || !p->has_guess ||
        !p->seen || !p->deferred) {
        st = mr_fail(err, MR_ENOMEM, path, NULL, MR_NO_OFFSET, "no memory");
        goto fail;
    }
    for (size_t i = 0; i < (size_t)nl * ne; i++)
        p->where[i] = -1;
    for (uint32_t i = 0; i < p->n_reqs; i++)
        p->reqs[i].free_next = i + 1 < p->n_reqs ? (int)i + 1 : -1;
    p->free_req = 0;
    struct iovec *iov = calloc(p->n_slots, sizeof *iov);
    if (!iov) {
        st = mr_fail(err, MR_ENOMEM, path, NULL, MR_NO_OFFSET, "no memory");
        goto fail;
    }
    /* one mapping (see map_pool) */
    p->pool_len = (size_t)p->n_slots * p->slot_bytes;
    p->pool = map_pool(p->pool_len, p->cfg.eager_pool);
    if (p->pool == MAP_FAILED) {
        p->pool = NULL;
        free(iov);
        st = mr_fail(err, MR_ENOMEM, path, "--mem", MR_NO_OFFSET,
                     "cannot map the expert pool (%u slots of %.1f MiB): %s", p->n_slots,
                     p->slot_bytes / 1048576.0, strerror(errno));
        goto fail;
    }
    for (uint32_t i = 0; i < p->n_slots; i++) {
        slot *s = &p->slots[i];
        s->layer = s->expert = -1;
        s->buf = p->pool + (size_t)i * p->slot_bytes; /* slot_bytes is a multiple of 4096 */
        iov[i].iov_base = s->buf;
        iov[i].iov_len = p->slot_bytes;
    }
    unsigned entries = p->n_reqs < 4096 ? p->n_reqs + 8 : 4096;
    int rc = p->cfg.no_io_uring ? -ENOSYS : io_uring_queue_init(entries, &p->ring, 0);
    if (rc == -ENOSYS || rc == -EPERM) {
        /* no io_uring here: serve reads with pread on the I/O thread */
        p->use_pread = 1;
        snprintf(p->st.io_note, sizeof p->st.io_note, "pread (%s)",
                 p->cfg.no_io_uring ? "io_uring off by request" : strerror(-rc));
        free(iov);
    } else if (rc < 0) {
        free(iov);
        st = mr_fail(err, MR_EIO, path, "io_uring", MR_NO_OFFSET, "io_uring_queue_init: %s",
                     strerror(-rc));
        goto fail;
    } else {
        p->ring_ok = 1;
        /* registered buffers pin the pool (they are allocated in full anyway) */
        if (p->cfg.eager_pool) {
            p->registered = io_uring_register_buffers(&p->ring, iov, p->n_slots) == 0;
            for (uint32_t i = 0; i < p->n_slots && p->registered; i++)
                p->slots[i].reg = p->slots[i].filled = 1;
            p->st.registered_slots = p->registered ? p->n_slots : 0;
        } else { /* an empty table, filled slot by slot (pg_start_load) */
            p->registered = io_uring_register_buffers_sparse(&p->ring, p->n_slots) == 0;
        }
        free(iov);
        rc = io_uring_register_files(&p->ring, &p->fd, 1);
        if (rc < 0) {
            st = mr_fail(err, MR_EIO, path, "io_uring", MR_NO_OFFSET, "registering the file: %s",
                         strerror(-rc));
            goto fail;
        }
        snprintf(p->st.io_note, sizeof p->st.io_note, "io_uring");
    }
    if (pthread_create(&p->io_thread, NULL, pg_io_main, p) != 0) {
        st = mr_fail(err, MR_ENOMEM, path, NULL, MR_NO_OFFSET, "cannot start the I/O thread");
        goto fail;
    }
    p->thread_ok = 1;
    if (!p->use_pread) {
        if (pthread_create(&p->submit_thread, NULL, pg_submit_main, p) != 0) {
            st = mr_fail(err, MR_ENOMEM, path, NULL, MR_NO_OFFSET, "cannot start the submit thread");
            goto fail;
        }
        p->submit_ok = 1;
    }
    if (!p->cfg.eager_pool) {
        for (uint32_t k = 0; k < MR_PAGED_POPULATE_THREADS; k++) {
            p->populate_jobs[k] = (struct pg_populate_job){p, k};
            if (pthread_create(&p->populate_thread[k], NULL, populate_main, &p->populate_jobs[k]))
                break; /* the reads fault in what no thread does */
            p->populate_ok++;
        }
    }
    p->st.pool_s = now_s() - t0;
    p->st.n_slots = p->n_slots;
    p->st.slot_bytes = p->slot_bytes;
    p->st.pool_bytes = (uint64_t)p->n_slots * p->slot_bytes;
    p->st.direct = p->direct;
    p->st.registered = p->registered;
    *out = &p->base;
    return MR_OK;
fail:
    paged_destroy(&p->base);
    return st;
}
