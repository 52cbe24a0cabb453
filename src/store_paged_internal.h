/* store_paged_internal.h - what the paged store's two halves share:
 * store_paged.c (API, cache policy, set-up) and store_paged_io.c (the
 * resident copy, the reads, the I/O thread, verification).  Private to
 * them. */
#ifndef MOERUN_STORE_PAGED_INTERNAL_H
#define MOERUN_STORE_PAGED_INTERNAL_H

#include <liburing.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "store_paged.h"

#define ALIGN 4096u
#define OVERHEAD_BYTES MR_PAGED_OVERHEAD
#define DECAY 0.95f
#define HINT_WORTH 1.0f /* a guess counts as one use against a hot expert (MR_PAGED_HOT_GUARD) */
#define STOP_TAG UINT64_MAX

enum { S_EMPTY, S_LOADING, S_VERIFYING, S_READY, S_FAILED };

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
    int filled;            /* has held an expert: its pages are faulted in */
    int reg;               /* registered with io_uring (read_fixed) */
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
    int fixed;         /* into a registered buffer (read_fixed), decided when queued */
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
    pthread_cond_t qcv;  /* wakes the pread thread, or the submit thread */
    struct io_uring ring;
    pthread_t io_thread;
    pthread_t submit_thread; /* io_uring: the only writer of the submission queue */
    int submit_ok;
    /* a lazy pool's pages, faulted in ahead of the reads (populate_main) */
    pthread_t populate_thread[MR_PAGED_POPULATE_THREADS];
    struct pg_populate_job {
        void *p;    /* the paged store */
        uint32_t k; /* this thread takes 16 MiB steps k, k + MR_PAGED_POPULATE_THREADS, ... */
    } populate_jobs[MR_PAGED_POPULATE_THREADS];
    int populate_ok; /* threads started */
    atomic_int populate_stop;
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
    uint8_t *seen;
    uint64_t (*deferred)[4]; /* per layer: guesses beyond the next layer, read when idle */
    int has_deferred;
    uint32_t cur;        /* the layer planned last */
    uint64_t plans, filled_for; /* plan() calls; the one a frequency fill was made for */       /* (layer, expert) ever planned */
    uint8_t *resident;   /* the copy of the non-expert tensors */
    uint32_t first_moe;  /* first layer with routed experts: its plan starts a step */
    uint8_t *pool;       /* every slot's buffer, one mapping */
    size_t pool_len;
    mr_paged_config cfg;
    mr_paged_stats st;
    mr_fault fault;
    int stop;
} paged;

static inline double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static inline int32_t *where_of(paged *p, uint32_t layer, uint32_t expert)
{
    return &p->where[(size_t)layer * p->m->hp.n_expert + expert];
}

/* store_paged_io.c */
const mr_tensor *pg_part_tensor(const mr_model *m, uint32_t layer, uint32_t part);
uint64_t pg_slot_bytes(const mr_model *m);       /* one slot: the largest expert, aligned */
mr_status pg_copy_resident(paged *p, mr_error *err);
mr_status pg_load_checksums(paged *p, mr_error *err);
mr_status pg_open_file(paged *p, mr_error *err);
void pg_start_load(paged *p, uint32_t si, uint32_t layer, uint32_t expert); /* mutex held */
void pg_slot_fail(paged *p, slot *s, mr_status code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void *pg_io_main(void *arg);
void *pg_submit_main(void *arg);

/* store_paged.c: the disk went idle (mutex held) */
void pg_idle(paged *p);

#endif
