/* expert_store.h - the one interface through which every expert weight is
 * read.
 *
 * For each layer the forward first announces the set of experts the router
 * chose for the whole batch (plan), then acquires each, computes, and
 * releases it.  Backends decide where the bytes live: all resident (the
 * mapped file) or paged within a RAM budget.  Every backend must give
 * bit-identical results: they hand out the same bytes.
 * hint() is a prefetch suggestion for a later layer, never needed for
 * correctness.
 */
#ifndef MOERUN_EXPERT_STORE_H
#define MOERUN_EXPERT_STORE_H

#include <stdint.h>

#include "../simd/kernels.h"
#include "model.h"
#include "status.h"

/* The three weight slices of one expert of one layer, each in the type and
 * row layout of the model's stacked tensor (layer->gate/up/down). */
typedef struct {
    const void *gate; /* n_ff rows of n_embd */
    const void *up;   /* n_ff rows of n_embd */
    const void *down; /* n_embd rows of n_ff */
    /* 1: that slice is the store's kernels' repacked copy (mr_kernels'
     * repack, read with mr_matmul_rows_packed); 0: the file's bytes */
    uint8_t packed_gate, packed_up, packed_down;
} mr_expert_slices;

typedef struct {
    uint64_t plans;         /* plan() calls (one per layer per batch) */
    uint64_t acquires;      /* acquire() calls */
    uint64_t bytes_touched; /* expert bytes handed to the forward */
    uint64_t tokens;        /* tokens the forward processed */
} mr_store_stats;

typedef struct mr_expert_store mr_expert_store;

typedef struct {
    const char *name;
    mr_status (*plan)(mr_expert_store *s, uint32_t layer, const uint32_t *experts,
                      uint32_t n, mr_error *err);
    mr_status (*acquire)(mr_expert_store *s, uint32_t layer, uint32_t expert,
                         mr_expert_slices *out, mr_error *err);
    void (*release)(mr_expert_store *s, uint32_t layer, uint32_t expert);
    void (*hint)(mr_expert_store *s, uint32_t layer, const uint32_t *experts, uint32_t n);
    void (*destroy)(mr_expert_store *s);
    /* 1: every expert can be held at once and acquire/release may be
     * called for a layer's experts up front (the forward then runs them on
     * all threads); 0: acquire one at a time, in the plan's order */
    int holds_all;
} mr_expert_store_ops;

struct mr_expert_store {
    const mr_expert_store_ops *ops;
    const mr_model *model;
    mr_store_stats stats;
    uint32_t prefetch_depth; /* layers ahead the forward should guess for hint() */
    uint32_t guess_extra;    /* hint() also the next-best experts of each token (0: top-k only) */
    const mr_kernels *packed_with; /* the table packed slices are laid out for, or NULL */
};

/* Announce that the batch needs these n distinct experts (ascending) of
 * layer next. */
mr_status mr_expert_store_plan(mr_expert_store *s, uint32_t layer, const uint32_t *experts,
                               uint32_t n, mr_error *err);
/* Pointers valid until the matching release. */
mr_status mr_expert_store_acquire(mr_expert_store *s, uint32_t layer, uint32_t expert,
                                  mr_expert_slices *out, mr_error *err);
void mr_expert_store_release(mr_expert_store *s, uint32_t layer, uint32_t expert);
void mr_expert_store_hint(mr_expert_store *s, uint32_t layer, const uint32_t *experts,
                          uint32_t n);
void mr_expert_store_free(mr_expert_store *s);

/* Bytes of one expert (gate + up + down) in a layer. */
uint64_t mr_expert_bytes(const mr_model *m, uint32_t layer);

/* The resident backend: pointers into the model's mapping. */
mr_status mr_store_resident_new(const mr_model *m, mr_expert_store **out, mr_error *err);

/* The resident backend with every expert tensor that kernel table k can
 * repack (mr_can_pack) copied into its packed layout at creation, on
 * `threads` threads, the file's pages of those tensors released; the
 * others stay pointers into the mapping.  Contexts using the store must
 * compute with k.  *packed_bytes (if not NULL) says how much was copied. */
mr_status mr_store_resident_packed_new(const mr_model *m, const mr_kernels *k,
                                       unsigned threads, uint64_t *packed_bytes,
                                       mr_expert_store **out, mr_error *err);

#endif
