/* store_paged.c - the paged expert store (see store_paged.h).
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
 * An I/O thread reaps completions, verifies each slice's xxh3 against the
 * file's moerun.checksum.experts (one re-read on a mismatch), and wakes
 * the forward.  The main thread submits under the mutex; only the I/O
 * thread touches the completion queue.
 *
 * Eviction: LFU with ageing.  Every use adds 1 to an expert's score and
 * every token multiplies all scores by 0.95, so the experts the router
 * keeps choosing stay and old favourites fade; ties go to the least
 * recently used.  Experts of the current layer's plan and pending
 * prefetches are pinned.
 */
#include "store_paged.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "moerun_keys.h"

#define ALIGN 4096u
#define OVERHEAD_BYTES (64ull << 20) /* code, stacks, ring, tables, metadata pages */
#define DECAY 0.95f
#define STOP_TAG UINT64_MAX

enum { S_EMPTY, S_LOADING, S_VERIFYING, S_READY, S_FAILED };
static const char *const part_names[3] = {"gate", "up", "down"};

typedef struct {
    uint8_t *buf;
    int32_t layer, expert; /* -1: empty */
    int state;
    int refs;              /* acquired and not released */
    int plan_pin;          /* in the current layer's plan */
    int hint_pin;          /* prefetched for a layer not yet planned */
    int prefetched;        /* loaded by a hint, not yet acquired */
    int pending;           /* chunks in flight */
    int retried;
    uint64_t last_use;
    const uint8_t *part[3];
    char err[320];
    mr_status err_code;
} slot;

typedef struct {
    uint32_t slot, part;
    uint64_t off;   /* file offset of the next byte to read */
    uint64_t left;  /* bytes still to read */
    uint8_t *dst;
    uint64_t need_end; /* reading past EOF is fine once this offset is reached */
    int free_next;     /* free list link, -1 end */
} req;

typedef struct {
    mr_expert_store base;
    mr_model *m;
    char *path;
    int fd, direct, registered, ring_ok, thread_ok;
    /* io_uring refused (ENOSYS under qemu-user or a seccomp filter, EPERM
     * with io_uring_disabled): the I/O thread serves a queue with pread */
    int use_pread;
    int q_head, q_tail;  /* FIFO of request indices, linked by free_next */
    pthread_cond_t qcv;  /* wakes the pread thread */
    struct io_uring ring;
    pthread_t io_thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    slot *slots;
    uint32_t n_slots;
    uint64_t slot_bytes;
    int32_t *where;  /* (layer, expert) -> slot, -1 */
    float *score;    /* (layer, expert) LFU score */
    uint64_t tick;
    req *reqs;
    int free_req;
    uint32_t n_reqs, in_flight;
    double busy_since;
    uint64_t *checksums; /* n_layer * n_expert * 3, or NULL */
    uint64_t (*guess)[4];/* per layer: bitset of guessed experts */
    uint8_t *has_guess;
    uint8_t *resident;   /* the copy of the non-expert tensors */
    uint32_t first_moe;  /* first layer with routed experts: its plan starts a step */
    uint8_t *pool;       /* every slot's buffer, one mapping */
    size_t pool_len;
    mr_paged_config cfg;
    mr_paged_stats st;
    mr_fault fault;
    int stop;
} paged;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void mr_paged_config_default(mr_paged_config *c)
{
    memset(c, 0, sizeof *c);
    c->prefetch_depth = 1;
    c->queue_depth = 64;
    c->chunk_bytes = 4u << 20;
}

int mr_fault_parse(const char *s, mr_fault *out)
{
    static const char *const kinds[] = {"none", "eio", "short", "eof", "corrupt"};
    mr_fault f = {MR_FAULT_NONE, -1, -1, -1, -1};
    size_t k;
    for (k = 1; k < 5; k++) {
        size_t n = strlen(kinds[k]);
        if (!strncmp(s, kinds[k], n) && (s[n] == 0 || s[n] == '@' || s[n] == 'x')) {
            f.kind = (mr_fault_kind)k;
            s += n;
            break;
        }
    }
    if (k == 5)
        return -1;
    if (*s == '@') {
        int32_t *fields[3] = {&f.layer, &f.expert, &f.part};
        s++;
        for (int i = 0; i < 3; i++) {
            char *end;
            long v = strtol(s, &end, 10);
            if (end == s || v < 0 || v > 1000000)
                return -1;
            *fields[i] = (int32_t)v;
            s = end;
            if (*s != ':')
                break;
            s++;
        }
    }
    if (*s == 'x') {
        char *end;
        long v = strtol(s + 1, &end, 10);
        if (end == s + 1 || v < 1)
            return -1;
        f.times = (int32_t)v;
        s = end;
    }
    if (*s || f.part > 2)
        return -1;
    *out = f;
    return 0;
}

/* ------------------------------------------------------------ geometry */

static const mr_tensor *part_tensor(const mr_model *m, uint32_t layer, uint32_t part)
{
    const mr_layer *L = &m->layers[layer];
    return part == 0 ? &L->gate : part == 1 ? &L->up : &L->down;
}

/* File range of an expert's part, and the aligned superset read for it. */
static void part_range(const mr_model *m, uint32_t layer, uint32_t expert, uint32_t part,
                       uint64_t *off, uint64_t *len, uint64_t *a0, uint64_t *a1)
{
    const mr_tensor *t = part_tensor(m, layer, part);
    *len = mr_expert_slice_bytes(t);
    *off = t->file_offset + (uint64_t)expert * *len;
    *a0 = *off / ALIGN * ALIGN;
    *a1 = (*off + *len + ALIGN - 1) / ALIGN * ALIGN;
}

static uint64_t slot_bytes_of(const mr_model *m)
{
    uint64_t most = 0;
    for (uint32_t l = 0; l < m->hp.n_layer; l++) {
        uint64_t sum = 0;
        if (!m->layers[l].moe)
            continue; /* a dense layer of a MoE model: resident, no slots */
        for (uint32_t p = 0; p < 3; p++) {
            uint64_t off, len, a0, a1, worst = 0;
            /* the alignment slack differs per expert: take the largest */
            for (uint32_t e = 0; e < m->hp.n_expert; e++) {
                part_range(m, l, e, p, &off, &len, &a0, &a1);
                worst = a1 - a0 > worst ? a1 - a0 : worst;
            }
            sum += worst;
        }
        most = sum > most ? sum : most;
    }
    return most;
}

uint64_t mr_store_paged_min_budget(const mr_model *m, const mr_paged_config *cfg)
{
    return m->resident_bytes + cfg->reserve_bytes + OVERHEAD_BYTES +
           (uint64_t)m->hp.n_expert * slot_bytes_of(m);
}

/* ------------------------------------------------------------ resident copy */

/* The non-expert tensors of a layer that the forward reads from memory:
 * attention (GQA or MLA), router, and the resident FFNs (shared expert, or
 * the dense FFN of a dense layer).  Absent ones have no bytes. */
#define LAYER_TENSORS 13
static size_t layer_tensors(mr_layer *L, mr_tensor **out)
{
    mr_tensor *all[LAYER_TENSORS] = {&L->wq,    &L->wk,    &L->wv,      &L->wo,    &L->router,
                                     &L->wq_a,  &L->wq_b,  &L->wkv_a,   &L->wk_b,  &L->wv_b,
                                     &L->sh_gate, &L->sh_up, &L->sh_down};
    size_t n = 0;
    for (size_t i = 0; i < LAYER_TENSORS; i++)
        if (all[i]->nbytes && all[i]->data)
            out[n++] = all[i];
    return n;
}

/* Copy every non-expert tensor into one buffer and point the model at it,
 * so the mapping is never touched for weights again. */
static mr_status copy_resident(paged *p, mr_error *err)
{
    mr_model *m = p->m;
    mr_tensor **list = malloc(sizeof *list * (2 + (size_t)LAYER_TENSORS * m->hp.n_layer));
    size_t n = 0;
    if (!list)
        return mr_fail(err, MR_ENOMEM, p->path, NULL, MR_NO_OFFSET, "no memory");
    list[n++] = &m->tok_embd;
    if (!m->tied_output)
        list[n++] = &m->output;
    for (uint32_t l = 0; l < m->hp.n_layer; l++)
        n += layer_tensors(&m->layers[l], list + n);
    /* each copy keeps its file offset's alignment modulo 64 (the mapping's):
     * some kernels align their loads to the weights, so a different
     * alignment would change the order of a dot product's sums */
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += (list[i]->nbytes + 63) / 64 * 64 + 64;
    if (posix_memalign((void **)&p->resident, ALIGN, total ? total : ALIGN)) {
        free(list);
        return mr_fail(err, MR_ENOMEM, p->path, NULL, MR_NO_OFFSET,
                       "no memory for %llu bytes of non-expert weights", (unsigned long long)total);
    }
    /* a buffered descriptor: these tensors need not be aligned */
    int fd = open(p->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        free(list);
        return mr_fail(err, MR_EIO, p->path, NULL, MR_NO_OFFSET, "cannot open: %s", strerror(errno));
    }
    uint64_t at = 0;
    for (size_t i = 0; i < n; i++) {
        mr_tensor *t = list[i];
        uint64_t done = 0;
        at += t->file_offset % 64;
        while (done < t->nbytes) {
            ssize_t r = pread(fd, p->resident + at + done, t->nbytes - done,
                              (off_t)(t->file_offset + done));
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                int e = errno;
                close(fd);
                free(list);
                return mr_fail(err, MR_EIO, p->path, t->name, t->file_offset + done,
                               "reading non-expert weights: %s",
                               r < 0 ? strerror(e) : "the file ends early");
            }
            done += (uint64_t)r;
        }
        t->data = p->resident + at;
        at = (at + t->nbytes + 63) / 64 * 64;
    }
    /* the copy is what stays: let the page cache forget the file */
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
    free(list);
    if (m->tied_output)
        m->output = m->tok_embd;
    p->st.resident_bytes = total;
    return MR_OK;
}

/* ------------------------------------------------------------ I/O */

static inline int32_t *where_of(paged *p, uint32_t layer, uint32_t expert)
{
    return &p->where[(size_t)layer * p->m->hp.n_expert + expert];
}

static void io_busy(paged *p, int delta)
{
    if (delta > 0 && p->in_flight++ == 0)
        p->busy_since = now_s();
    if (delta < 0 && --p->in_flight == 0)
        p->st.io_busy_s += now_s() - p->busy_since;
}

/* Queue the read of request r (caller holds the mutex). */
static void submit_req(paged *p, int ri)
{
    req *r = &p->reqs[ri];
    if (p->use_pread) {
        r->free_next = -1;
        if (p->q_tail >= 0)
            p->reqs[p->q_tail].free_next = ri;
        else
            p->q_head = ri;
        p->q_tail = ri;
        io_busy(p, 1);
        pthread_cond_signal(&p->qcv);
        return;
    }
    slot *s = &p->slots[r->slot];
    struct io_uring_sqe *sqe = io_uring_get_sqe(&p->ring);
    if (!sqe) {
        io_uring_submit(&p->ring);
        sqe = io_uring_get_sqe(&p->ring);
    }
    /* the ring has as many entries as requests, so sqe is never NULL here */
    uint32_t n = r->left > p->cfg.chunk_bytes ? (uint32_t)p->cfg.chunk_bytes : (uint32_t)r->left;
    if (p->registered)
        io_uring_prep_read_fixed(sqe, 0, r->dst, n, r->off, (int)r->slot);
    else
        io_uring_prep_read(sqe, 0, r->dst, n, r->off);
    sqe->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data64(sqe, (uint64_t)ri);
    (void)s;
    io_busy(p, 1);
}

static int alloc_req(paged *p)
{
    int ri = p->free_req;
    if (ri >= 0)
        p->free_req = p->reqs[ri].free_next;
    return ri;
}

static void slot_fail(paged *p, slot *s, mr_status code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void slot_fail(paged *p, slot *s, mr_status code, const char *fmt, ...)
{
    if (s->state == S_FAILED)
        return;
    va_list ap;
    int n = snprintf(s->err, sizeof s->err, "%s: layer %d expert %d: ", p->path, s->layer,
                     s->expert);
    va_start(ap, fmt);
    vsnprintf(s->err + n, sizeof s->err - (size_t)n, fmt, ap);
    va_end(ap);
    s->err_code = code;
    s->state = S_FAILED;
}

/* Start reading all three parts of (layer, expert) into slot si. */
static void start_load(paged *p, uint32_t si, uint32_t layer, uint32_t expert)
{
    slot *s = &p->slots[si];
    s->layer = (int32_t)layer;
    s->expert = (int32_t)expert;
    s->state = S_LOADING;
    s->pending = 0;
    s->err[0] = 0;
    *where_of(p, layer, expert) = (int32_t)si;
    uint64_t pos = 0;
    for (uint32_t part = 0; part < 3; part++) {
        uint64_t off, len, a0, a1;
        part_range(p->m, layer, expert, part, &off, &len, &a0, &a1);
        s->part[part] = s->buf + pos + (off - a0);
        /* chunks of chunk_bytes: each one request */
        uint64_t from = p->direct ? a0 : off, to = p->direct ? a1 : off + len;
        uint8_t *dst = s->buf + pos + (from - a0);
        for (uint64_t c = from; c < to; c += p->cfg.chunk_bytes) {
            int ri = alloc_req(p);
            if (ri < 0) { /* cannot happen: n_reqs covers every chunk of every slot */
                slot_fail(p, s, MR_ENOMEM, "no free read request");
                return;
            }
            req *r = &p->reqs[ri];
            r->slot = si;
            r->part = part;
            r->off = c;
            r->left = to - c < p->cfg.chunk_bytes ? to - c : p->cfg.chunk_bytes;
            r->dst = dst + (c - from);
            r->need_end = off + len;
            submit_req(p, ri);
            s->pending++;
        }
        pos += a1 - a0;
    }
    if (!p->use_pread)
        io_uring_submit(&p->ring);
}

/* Apply an armed fault to a completion of request r; returns the result
 * the completion should be treated as having. */
static int apply_fault(paged *p, const req *r, int res)
{
    mr_fault *f = &p->fault;
    const slot *s = &p->slots[r->slot];
    if (f->kind == MR_FAULT_NONE || f->times == 0 || res <= 0)
        return res;
    if ((f->layer >= 0 && f->layer != s->layer) || (f->expert >= 0 && f->expert != s->expert) ||
        (f->part >= 0 && (uint32_t)f->part != r->part))
        return res;
    if (f->times > 0)
        f->times--;
    switch (f->kind) {
    case MR_FAULT_EIO: return -EIO;
    case MR_FAULT_EOF: return 0;
    case MR_FAULT_SHORT: return res > (int)ALIGN ? (res / 2) / (int)ALIGN * (int)ALIGN : res;
    case MR_FAULT_CORRUPT: r->dst[res / 2] ^= 0x5a; return res;
    default: return res;
    }
}

/* Verify an expert's three slices (mutex NOT held: the slot is VERIFYING
 * and belongs to this thread until it leaves that state). */
static int verify(paged *p, slot *s, uint32_t *bad_part, uint64_t *got, uint64_t *want)
{
    if (!p->checksums)
        return 0;
    double t0 = now_s();
    int bad = 0;
    for (uint32_t part = 0; part < 3 && !bad; part++) {
        uint64_t len = mr_expert_slice_bytes(part_tensor(p->m, (uint32_t)s->layer, part));
        uint64_t h = XXH3_64bits(s->part[part], len);
        uint64_t w = p->checksums[((size_t)s->layer * p->m->hp.n_expert + (size_t)s->expert) * 3 + part];
        if (h != w) {
            bad = 1;
            *bad_part = part;
            *got = h;
            *want = w;
        }
    }
    p->st.verify_s += now_s() - t0; /* only this thread writes it */
    return bad;
}

/* One completion (mutex held). */
static void complete(paged *p, int ri, int res)
{
    req *r = &p->reqs[ri];
    slot *s = &p->slots[r->slot];
    io_busy(p, -1);
    res = apply_fault(p, r, res);
    if (res == -EAGAIN || res == -EINTR) {
        p->st.requeued++;
        submit_req(p, ri);
        if (!p->use_pread)
            io_uring_submit(&p->ring);
        return;
    }
    if (res < 0) {
        slot_fail(p, s, MR_EIO, "%s slice: read of %llu bytes at offset %llu failed: %s",
                  part_names[r->part], (unsigned long long)r->left, (unsigned long long)r->off,
                  strerror(-res));
    } else {
        p->st.bytes_read += (uint64_t)res;
        r->off += (uint64_t)res;
        r->dst += res;
        r->left -= (uint64_t)res < r->left ? (uint64_t)res : r->left;
        if (r->left > 0 && res > 0 && s->state != S_FAILED) {
            p->st.requeued++; /* a short read: queue the rest */
            submit_req(p, ri);
            if (!p->use_pread)
                io_uring_submit(&p->ring);
            return;
        }
        if (r->left > 0 && r->off < r->need_end)
            slot_fail(p, s, MR_EFORMAT, "%s slice: the file ends at offset %llu, before the "
                      "slice's end at %llu", part_names[r->part], (unsigned long long)r->off,
                      (unsigned long long)r->need_end);
    }
    p->st.reads++;
    r->free_next = p->free_req;
    p->free_req = ri;
    if (--s->pending > 0)
        return;
    if (s->state == S_FAILED) {
        pthread_cond_broadcast(&p->cv);
        return;
    }
    s->state = S_VERIFYING;
    pthread_mutex_unlock(&p->mu);
    uint32_t bad_part = 0;
    uint64_t got = 0, want = 0;
    int bad = verify(p, s, &bad_part, &got, &want);
    pthread_mutex_lock(&p->mu);
    if (bad && !s->retried) {
        s->retried = 1; /* one re-read: a transient error must not stop the run */
        p->st.retries++;
        start_load(p, (uint32_t)(s - p->slots), (uint32_t)s->layer, (uint32_t)s->expert);
        return;
    }
    if (bad)
        slot_fail(p, s, MR_ECHECKSUM, "%s slice: checksum mismatch after a re-read (xxh3 "
                  "%016llx, the file records %016llx)", part_names[bad_part],
                  (unsigned long long)got, (unsigned long long)want);
    else
        s->state = S_READY;
    pthread_cond_broadcast(&p->cv);
}

/* The I/O thread without io_uring: one pread at a time from the queue. */
static void *pread_main(paged *p)
{
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->q_head < 0 && !p->stop)
            pthread_cond_wait(&p->qcv, &p->mu);
        if (p->q_head < 0)
            break;
        int ri = p->q_head;
        req *r = &p->reqs[ri];
        p->q_head = r->free_next;
        if (p->q_head < 0)
            p->q_tail = -1;
        uint8_t *dst = r->dst;
        size_t n = r->left > p->cfg.chunk_bytes ? (size_t)p->cfg.chunk_bytes : (size_t)r->left;
        off_t off = (off_t)r->off;
        pthread_mutex_unlock(&p->mu);
        ssize_t got = pread(p->fd, dst, n, off);
        int res = got < 0 ? -errno : (int)got;
        pthread_mutex_lock(&p->mu);
        complete(p, ri, res);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static void *io_main(void *arg)
{
    paged *p = arg;
    if (p->use_pread)
        return pread_main(p);
    for (;;) {
        struct io_uring_cqe *cqe;
        int rc = io_uring_wait_cqe(&p->ring, &cqe);
        if (rc == -EINTR || rc == -EAGAIN)
            continue;
        if (rc < 0) { /* the ring itself failed: fail everything in flight */
            pthread_mutex_lock(&p->mu);
            for (uint32_t i = 0; i < p->n_slots; i++)
                if (p->slots[i].state == S_LOADING)
                    slot_fail(p, &p->slots[i], MR_EIO, "io_uring wait failed: %s", strerror(-rc));
            p->stop = 1;
            pthread_cond_broadcast(&p->cv);
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        uint64_t tag = io_uring_cqe_get_data64(cqe);
        int res = cqe->res;
        io_uring_cqe_seen(&p->ring, cqe);
        if (tag == STOP_TAG)
            return NULL;
        pthread_mutex_lock(&p->mu);
        complete(p, (int)tag, res);
        pthread_mutex_unlock(&p->mu);
    }
}

/* ------------------------------------------------------------ cache policy */

/* A slot for (layer, expert): an empty one, else the evictable one with the
 * lowest score (ties: least recently used); -1 if every slot is pinned. */
static int pick_victim(paged *p)
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
        if (v < 0) {
            st = mr_fail(err, MR_ENOMEM, p->path, "expert pool", MR_NO_OFFSET,
                         "all %u slots are pinned; layer %u needs %u experts", p->n_slots, layer, n);
            break;
        }
        p->slots[v].plan_pin = 1;
        start_load(p, (uint32_t)v, layer, e);
    }
    pthread_mutex_unlock(&p->mu);
    return st;
}

static void paged_hint(mr_expert_store *base, uint32_t layer, const uint32_t *experts, uint32_t n)
{
    paged *p = (paged *)base;
    pthread_mutex_lock(&p->mu);
    p->has_guess[layer] = 1;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t e = experts[i];
        p->guess[layer][e / 64] |= 1ull << (e % 64);
        int32_t si = *where_of(p, layer, e);
        if (si >= 0) {
            p->slots[si].hint_pin = p->slots[si].state != S_FAILED;
            continue;
        }
        int v = pick_victim(p);
        if (v < 0)
            break; /* every slot is needed now: a hint is only a hint */
        p->slots[v].hint_pin = 1;
        p->slots[v].prefetched = 1;
        p->st.prefetch_reads++;
        start_load(p, (uint32_t)v, layer, e);
    }
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
            start_load(p, (uint32_t)si, layer, expert);
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
    if (p->thread_ok) {
        pthread_mutex_lock(&p->mu);
        /* wait for reads in flight, then wake the I/O thread with a no-op */
        while (p->in_flight > 0 && !p->stop)
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->use_pread) {
            p->stop = 1;
            pthread_cond_broadcast(&p->qcv);
        }
        struct io_uring_sqe *sqe = p->use_pread ? NULL : io_uring_get_sqe(&p->ring);
        if (sqe) {
            io_uring_prep_nop(sqe);
            io_uring_sqe_set_data64(sqe, STOP_TAG);
            io_uring_submit(&p->ring);
        }
        pthread_mutex_unlock(&p->mu);
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

const mr_paged_stats *mr_store_paged_stats(const mr_expert_store *s)
{
    return s->ops == &paged_ops ? &((const paged *)s)->st : NULL;
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

static mr_status load_checksums(paged *p, mr_error *err)
{
    const mr_gguf *g = p->m->gguf;
    const mr_gguf_kv *kv = mr_gguf_find(g, MR_KEY_CHECKSUM_EXPERTS);
    const uint64_t want = (uint64_t)p->m->hp.n_layer * p->m->hp.n_expert * 3;
    if (!kv)
        return MR_OK; /* a file without checksums still works; stats say so */
    if (kv->val.type != MR_GGUF_ARRAY || kv->val.v.arr.elem_type != MR_GGUF_UINT64 ||
        kv->val.v.arr.n != want)
        return mr_fail(err, MR_EFORMAT, p->path, MR_KEY_CHECKSUM_EXPERTS, kv->val.offset,
                       "expected %llu uint64 checksums", (unsigned long long)want);
    if (!(p->checksums = malloc(sizeof(uint64_t) * want)))
        return mr_fail(err, MR_ENOMEM, p->path, NULL, MR_NO_OFFSET, "no memory");
    for (uint64_t i = 0; i < want; i++)
        p->checksums[i] = (uint64_t)mr_gguf_arr_int(&kv->val, i);
    p->st.checksums = 1;
    return MR_OK;
}

static mr_status open_file(paged *p, mr_error *err)
{
    p->fd = -1;
    if (!p->cfg.no_direct) {
        p->fd = open(p->path, O_RDONLY | O_DIRECT | O_CLOEXEC);
        p->direct = p->fd >= 0;
    }
    if (p->fd < 0)
        p->fd = open(p->path, O_RDONLY | O_CLOEXEC);
    if (p->fd < 0)
        return mr_fail(err, MR_EIO, p->path, NULL, MR_NO_OFFSET, "cannot open: %s", strerror(errno));
    return MR_OK;
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
    p->slot_bytes = slot_bytes_of(m);
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
    if ((st = open_file(p, err)) || (st = load_checksums(p, err)) || (st = copy_resident(p, err)))
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
    if (!p->slots || !p->where || !p->score || !p->reqs || !p->guess || !p->has_guess) {
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
    /* one populated mapping: faulting the pool in bulk is several times
     * faster than page by page, and the registration below then pins pages
     * that are already there */
    p->pool_len = (size_t)p->n_slots * p->slot_bytes;
    p->pool = mmap(NULL, p->pool_len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
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
        p->registered = io_uring_register_buffers(&p->ring, iov, p->n_slots) == 0;
        free(iov);
        rc = io_uring_register_files(&p->ring, &p->fd, 1);
        if (rc < 0) {
            st = mr_fail(err, MR_EIO, path, "io_uring", MR_NO_OFFSET, "registering the file: %s",
                         strerror(-rc));
            goto fail;
        }
        snprintf(p->st.io_note, sizeof p->st.io_note, "io_uring");
    }
    if (pthread_create(&p->io_thread, NULL, io_main, p) != 0) {
        st = mr_fail(err, MR_ENOMEM, path, NULL, MR_NO_OFFSET, "cannot start the I/O thread");
        goto fail;
    }
    p->thread_ok = 1;
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
