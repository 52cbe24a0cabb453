/* store_paged_io.c - the paged store's reads (see store_paged.c for the
 * design): the copy of the non-expert weights, io_uring (or pread)
 * requests in chunks, the I/O thread that reaps them, re-queues short
 * reads, verifies each slice's xxh3 and wakes the forward, and the fault
 * injection the tests use. */
#include "store_paged_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>
#include <xxhash.h>

#include "fileio.h"
#include "moerun_keys.h"

static const char *const part_names[3] = {"gate", "up", "down"};

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

const mr_tensor *pg_part_tensor(const mr_model *m, uint32_t layer, uint32_t part)
{
    const mr_layer *L = &m->layers[layer];
    return part == 0 ? &L->gate : part == 1 ? &L->up : &L->down;
}

/* File range of an expert's part, and the aligned superset read for it. */
static void part_range(const mr_model *m, uint32_t layer, uint32_t expert, uint32_t part,
                       uint64_t *off, uint64_t *len, uint64_t *a0, uint64_t *a1)
{
    const mr_tensor *t = pg_part_tensor(m, layer, part);
    *len = mr_expert_slice_bytes(t);
    *off = t->file_offset + (uint64_t)expert * *len;
    *a0 = *off / ALIGN * ALIGN;
    *a1 = (*off + *len + ALIGN - 1) / ALIGN * ALIGN;
}

uint64_t pg_slot_bytes(const mr_model *m)
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
 * so the mapping is never touched for weights again.  COPY_READERS reads
 * at once: one buffered stream read a cold NVMe disk at 0.6-0.8 GB/s
 * (950 MB of Qwen3-30B's in 1.2-1.6 s), a few keep its queue full. */
#define COPY_READERS 4
mr_status pg_copy_resident(paged *p, mr_error *err)
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
    /* buffered reads (these tensors need not be aligned), several at once */
    mr_read_piece *pieces = calloc(n ? n : 1, sizeof *pieces);
    if (!pieces) {
        free(list);
        return mr_fail(err, MR_ENOMEM, p->path, NULL, MR_NO_OFFSET, "no memory");
    }
    uint64_t at = 0;
    for (size_t i = 0; i < n; i++) {
        mr_tensor *t = list[i];
        at += t->file_offset % 64;
        pieces[i] = (mr_read_piece){p->resident + at, t->file_offset, t->nbytes, t->name};
        at = (at + t->nbytes + 63) / 64 * 64;
    }
    mr_status st = mr_read_pieces(p->path, pieces, n, COPY_READERS, err);
    for (size_t i = 0; !st && i < n; i++)
        list[i]->data = pieces[i].dst;
    free(pieces);
    free(list);
    if (st)
        return st;
    /* the copy is what stays: let the page cache forget the file */
    int fd = open(p->path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        close(fd);
    }
    if (m->tied_output)
        m->output = m->tok_embd;
    p->st.resident_bytes = total;
    return MR_OK;
}

/* ------------------------------------------------------------ I/O */

static void io_busy(paged *p, int delta)
{
    if (delta > 0 && p->in_flight++ == 0)
        p->busy_since = now_s();
    if (delta < 0 && --p->in_flight == 0)
        p->st.io_busy_s += now_s() - p->busy_since;
}

/* Queue the read of request r (caller holds the mutex).  Both modes take
 * it from one FIFO: the pread thread reads it, or the submit thread puts
 * it on the ring.  Nobody holding the mutex enters the kernel to start a
 * read: an O_DIRECT submission does its page lookups (and faults a lazy
 * pool's pages in) inline, 15 ms an expert on the Mixtral prompt, and
 * with the mutex held that stalled the forward and kept the I/O thread
 * from handing out the reads already done. */
static void pg_submit_req(paged *p, int ri)
{
    req *r = &p->reqs[ri];
    r->fixed = !p->use_pread && p->registered && p->slots[r->slot].reg;
    r->free_next = -1;
    if (p->q_tail >= 0)
        p->reqs[p->q_tail].free_next = ri;
    else
        p->q_head = ri;
    p->q_tail = ri;
    io_busy(p, 1);
    pthread_cond_signal(&p->qcv);
}

/* The bytes the next read of request r asks for (re-queued short reads
 * ask for what is left). */
static uint64_t req_len(const paged *p, const req *r)
{
    return r->left > p->cfg.chunk_bytes ? p->cfg.chunk_bytes : r->left;
}

static int alloc_req(paged *p)
{
    int ri = p->free_req;
    if (ri >= 0)
        p->free_req = p->reqs[ri].free_next;
    return ri;
}

void pg_slot_fail(paged *p, slot *s, mr_status code, const char *fmt, ...)
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
void pg_start_load(paged *p, uint32_t si, uint32_t layer, uint32_t expert)
{
    slot *s = &p->slots[si];
    if (p->registered && !s->reg && s->filled) {
        /* a lazy pool: its pages are in now, so pinning them is cheap;
         * later reads into this slot skip the per-read page lookup */
        struct iovec iov = {s->buf, p->slot_bytes};
        s->reg = io_uring_register_buffers_update_tag(&p->ring, si, &iov, NULL, 1) == 1;
        p->st.registered_slots += s->reg;
    }
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
                pg_slot_fail(p, s, MR_ENOMEM, "no free read request");
                return;
            }
            req *r = &p->reqs[ri];
            r->slot = si;
            r->part = part;
            r->off = c;
            r->left = to - c < p->cfg.chunk_bytes ? to - c : p->cfg.chunk_bytes;
            r->dst = dst + (c - from);
            r->need_end = off + len;
            pg_submit_req(p, ri);
            s->pending++;
        }
        pos += a1 - a0;
    }
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
        uint64_t len = mr_expert_slice_bytes(pg_part_tensor(p->m, (uint32_t)s->layer, part));
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
        pg_submit_req(p, ri);
        return;
    }
    if (res < 0) {
        pg_slot_fail(p, s, MR_EIO, "%s slice: read of %llu bytes at offset %llu failed: %s",
                  part_names[r->part], (unsigned long long)r->left, (unsigned long long)r->off,
                  strerror(-res));
    } else {
        p->st.bytes_read += (uint64_t)res;
        r->off += (uint64_t)res;
        r->dst += res;
        r->left -= (uint64_t)res < r->left ? (uint64_t)res : r->left;
        if (r->left > 0 && res > 0 && s->state != S_FAILED) {
            p->st.requeued++; /* a short read: queue the rest */
            pg_submit_req(p, ri);
            return;
        }
        if (r->left > 0 && r->off < r->need_end)
            pg_slot_fail(p, s, MR_EFORMAT, "%s slice: the file ends at offset %llu, before the "
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
        pg_start_load(p, (uint32_t)(s - p->slots), (uint32_t)s->layer, (uint32_t)s->expert);
        return;
    }
    if (bad)
        pg_slot_fail(p, s, MR_ECHECKSUM, "%s slice: checksum mismatch after a re-read (xxh3 "
                  "%016llx, the file records %016llx)", part_names[bad_part],
                  (unsigned long long)got, (unsigned long long)want);
    else
        s->state = S_READY, s->filled = 1;
    pthread_cond_broadcast(&p->cv);
    if (!p->in_flight)
        pg_idle(p);
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
        size_t n = (size_t)req_len(p, r);
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

/* Fail every slot still loading and stop (mutex held): the ring broke. */
static void ring_failed(paged *p, const char *what, int rc)
{
    for (uint32_t i = 0; i < p->n_slots; i++)
        if (p->slots[i].state == S_LOADING)
            pg_slot_fail(p, &p->slots[i], MR_EIO, "io_uring %s failed: %s", what, strerror(-rc));
    p->stop = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_cond_broadcast(&p->qcv);
}

/* io_uring_submit, again for a while when the kernel refuses for a moment
 * (-EAGAIN, or -EBUSY with its completion queue full): the entries stay
 * in the ring until it takes them. */
static int submit_retry(paged *p)
{
    for (int tries = 0;; tries++) {
        int rc = io_uring_submit(&p->ring);
        if (rc >= 0 || (rc != -EAGAIN && rc != -EBUSY && rc != -EINTR) || tries == 1000)
            return rc;
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
}

/* The submit thread: the only one that writes the ring's submission
 * queue (the I/O thread only reaps its completions, which liburing allows
 * concurrently).  It takes up to SUBMIT_BATCH queued requests at once,
 * prepares them without the mutex and enters the kernel once for them. */
#define SUBMIT_BATCH 64
void *pg_submit_main(void *arg)
{
    paged *p = arg;
    struct { int ri; int fixed; uint32_t slot, n; uint8_t *dst; uint64_t off; } b[SUBMIT_BATCH];
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->q_head < 0 && !p->stop)
            pthread_cond_wait(&p->qcv, &p->mu);
        if (p->stop)
            break;
        int nb = 0;
        while (p->q_head >= 0 && nb < SUBMIT_BATCH) {
            int ri = p->q_head;
            req *r = &p->reqs[ri];
            p->q_head = r->free_next;
            if (p->q_head < 0)
                p->q_tail = -1;
            b[nb++] = (__typeof__(b[0])){ri, r->fixed, r->slot, (uint32_t)req_len(p, r), r->dst, r->off};
        }
        pthread_mutex_unlock(&p->mu);
        double t0 = now_s();
        int rc = 0;
        for (int i = 0; i < nb && rc >= 0; i++) {
            struct io_uring_sqe *sqe;
            while (!(sqe = io_uring_get_sqe(&p->ring)) && rc >= 0)
                rc = submit_retry(p); /* the ring is full: hand it what it has */
            if (rc < 0)
                break;
            if (b[i].fixed)
                io_uring_prep_read_fixed(sqe, 0, b[i].dst, b[i].n, b[i].off, (int)b[i].slot);
            else
                io_uring_prep_read(sqe, 0, b[i].dst, b[i].n, b[i].off);
            sqe->flags |= IOSQE_FIXED_FILE;
            io_uring_sqe_set_data64(sqe, (uint64_t)b[i].ri);
        }
        if (rc >= 0)
            rc = submit_retry(p);
        pthread_mutex_lock(&p->mu);
        p->st.submit_s += now_s() - t0;
        if (rc < 0) {
            ring_failed(p, "submit", rc);
            break;
        }
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

void *pg_io_main(void *arg)
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
            ring_failed(p, "wait", rc);
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

/* ------------------------------------------------------------ set-up */

mr_status pg_load_checksums(paged *p, mr_error *err)
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

mr_status pg_open_file(paged *p, mr_error *err)
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
