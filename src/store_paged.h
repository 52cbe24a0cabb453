/* store_paged.h - the paged expert store: experts live in a fixed pool of
 * slots allocated once within a RAM budget and are read from the model
 * file with io_uring (O_DIRECT where the file allows), ahead of need.
 */
#ifndef MOERUN_STORE_PAGED_H
#define MOERUN_STORE_PAGED_H

#include <stdint.h>

#include "expert_store.h"

/* Cache and prefetch policies (mr_paged_config.policy bits). */
enum {
    MR_PAGED_HOT_GUARD = 1, /* guesses never evict experts hotter than themselves (+1 use) */
    MR_PAGED_IDLE_DEEP = 2, /* guesses beyond the next layer are read only when the disk idles */
    MR_PAGED_FREQ_FILL = 4, /* an idle disk reads the next layer's hottest missing experts */
};
/* None by default: on the demo model and the Mixtral slice none of them
 * raised the hit rate (see README, "Paging experts"); they stay for
 * measurement (MOERUN_PAGER_POLICY) and are checked bit-identical. */
#define MR_PAGED_POLICY_DEFAULT 0u

typedef struct {
    uint64_t budget_bytes;  /* what the whole process may hold */
    uint64_t reserve_bytes; /* KV cache, scratch and other allocations outside the store */
    uint32_t prefetch_depth;/* layers ahead whose routers guess experts (0: off; default 1) */
    uint32_t guess_extra;   /* also guess each token's next-best experts (default 0) */
    uint32_t policy;        /* MR_PAGED_* bits (default MR_PAGED_POLICY_DEFAULT; 0: the
                             * one-layer-ahead prefetch and plain LFU of before) */
    int no_direct;          /* 1: never try O_DIRECT */
    int no_io_uring;        /* 1: serve reads with pread (as where io_uring is refused) */
    uint32_t queue_depth;   /* io_uring entries (default 64) */
    uint64_t chunk_bytes;   /* largest single read (default 4 MiB) */
    int eager_pool;         /* 1: fault in and register the whole pool at set-up (slower
                             * first token; the old behaviour, kept for comparison) */
} mr_paged_config;

void mr_paged_config_default(mr_paged_config *c);

/* Fault injection for tests: make reads of (layer, expert, part) fail with
 * EIO, come back short (the rest is re-queued, as a real short read is),
 * end early (a truncated file), or return corrupted bytes; `times` reads
 * are affected (-1: all).  part: 0 gate, 1 up, 2 down, -1 any. */
typedef enum {
    MR_FAULT_NONE = 0,
    MR_FAULT_EIO,
    MR_FAULT_SHORT,
    MR_FAULT_EOF,
    MR_FAULT_CORRUPT,
} mr_fault_kind;

typedef struct {
    mr_fault_kind kind;
    int32_t layer, expert, part; /* -1: any */
    int32_t times;
} mr_fault;

/* Parse "KIND[@LAYER[:EXPERT[:PART]]][xTIMES]" (e.g. "eio@1:3", "corrupt@0:2:1x1",
 * "short"); 0 on success. */
int mr_fault_parse(const char *s, mr_fault *out);

typedef struct {
    uint64_t n_slots, slot_bytes, pool_bytes, resident_bytes;
    int direct;             /* O_DIRECT in use */
    int registered;         /* io_uring registered buffers in use */
    uint64_t registered_slots; /* slots registered so far (all, or lazily after a first fill) */
    char io_note[96];       /* "io_uring", or why pread serves the reads */
    int checksums;          /* the file has expert checksums */
    uint64_t hits;          /* acquires that found the expert ready in memory */
    uint64_t misses;        /* acquires that had to wait for its read */
    uint64_t prefetch_reads;/* experts read because of a hint */
    uint64_t prefetch_used; /* of those, later acquired */
    uint64_t prefetch_late; /* of those, still in flight when acquired */
    uint64_t guesses, guesses_right; /* predicted (layer, expert) pairs, and right ones */
    uint64_t needed;        /* experts planned for layers that had a guess */
    uint64_t bytes_read;
    uint64_t unique_bytes;  /* bytes of the distinct experts planned so far: what had to be read once */
    uint64_t reads;         /* read requests completed */
    uint64_t requeued;      /* short reads / -EAGAIN re-queued */
    uint64_t retries;       /* experts re-read after a checksum mismatch */
    uint64_t evictions;
    double io_busy_s;       /* wall time with at least one read in flight */
    double stall_s;         /* time the forward waited for a read */
    double submit_s;        /* the submit thread's time starting reads (io_uring_submit:
                             * page lookups, faulting a lazy pool in, a full device
                             * queue); the forward does not wait for it */
    double verify_s;        /* time spent checksumming */
    double copy_s;          /* set-up: reading the non-expert weights */
    double pool_s;          /* set-up: mapping, faulting in and registering the pool */
    double populate_s;      /* a lazy pool: the background threads' time faulting it in
                             * (0 until they are done, or when they do not run) */
} mr_paged_stats;

/* Threads that fault a lazy pool's pages in behind the set-up
 * (store_paged.c, populate_main, says why and what it measured). */
#define MR_PAGED_POPULATE_THREADS 2

/* What the budget allows for code, stacks, the ring, tables, the
 * tokenizer and metadata pages. */
#define MR_PAGED_OVERHEAD (64ull << 20)

/* Smallest budget that can run the model (resident part + one layer's
 * worth of expert slots + reserve + MR_PAGED_OVERHEAD). */
uint64_t mr_store_paged_min_budget(const mr_model *m, const mr_paged_config *cfg);

/* The model's non-expert tensors are copied into memory owned by the
 * store (read once), so nothing but experts is ever paged. */
mr_status mr_store_paged_new(mr_model *m, const char *path, const mr_paged_config *cfg,
                             mr_expert_store **out, mr_error *err);

/* A snapshot of a paged store's stats, taken under its lock (its threads
 * keep counting while reads are in flight): 1 and *out filled, or 0 if s
 * is another backend (out may then be NULL). */
int mr_store_paged_stats(mr_expert_store *s, mr_paged_stats *out);

/* The slot pool's first slots that have all held an expert (their pages
 * are faulted in, slots are taken in order), for measuring the memory
 * bandwidth over the very memory decode reads: *len bytes from the
 * result; NULL and 0 if s is another backend. */
const void *mr_store_paged_pool(mr_expert_store *s, size_t *len);

/* Arm a fault (replaces the previous one). */
void mr_store_paged_inject(mr_expert_store *s, const mr_fault *f);

#endif
