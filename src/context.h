/* context.h - the inside of an mr_context, shared by the forward driver
 * (forward.c), the shared blocks (src/nn/) and the family files
 * (src/arch/).  Nothing outside the library sees it.
 *
 * Scratch buffers are sized once for the widest layer of the model and the
 * largest batch; a block may use any buffer its comment does not reserve.
 */
#ifndef MOERUN_CONTEXT_H
#define MOERUN_CONTEXT_H

#include <stdint.h>

#include "../simd/kernels.h"
#include "expert_store.h"
#include "forward.h"
#include "model.h"
#include "threadpool.h"

#include <stdatomic.h>

struct mr_context {
    atomic_int scratch_failed; /* a block found no memory for its scratch (sticky) */
    const mr_model *m;
    mr_expert_store *store;
    const mr_kernels *k; /* &kt[0] (fast) or &kt[1] (exact) */
    mr_kernels kt[2];    /* this context's tables, by default the chosen ISA's */
    mr_pool *pool;
    uint32_t n_ctx, n_batch; /* n_ctx: positions of each sequence */
    uint32_t n_seq;          /* sequences (mr_context_new_seqs), each its own KV region */
    uint32_t *seq_past;      /* (n_seq) positions filled in each sequence */
    /* the current batch: token t belongs to sequence tok_seq[t] at position
     * tok_pos[t]; a sequence's tokens are one contiguous run, run r being
     * tokens run_t0[r].. run_t0[r] + run_n[r] - 1 of sequence run_seq[r] */
    uint32_t *tok_seq, *tok_pos;  /* (n_batch) */
    uint32_t n_runs;
    uint32_t *run_seq, *run_t0, *run_n; /* (n_batch) */
    uint32_t q_dim, k_dim, v_dim, o_dim; /* n_head*head_dim, n_head_kv*head_dim, ... */
    uint32_t ff_max;     /* widest FFN hidden size of any layer */
    void *act;       /* prepared (quantized) activations of one matmul input */
    size_t act_row_cap; /* bytes of act per batch row (any format, the widest input) */
    uint32_t k_type, v_type;       /* cache element types (F32, F16, Q8_0) */
    size_t k_row_bytes, v_row_bytes; /* one position of k_dim / v_dim elements */
    uint8_t *k_cache; /* layer il, sequence q: kv_rows[il] rows of k_row_bytes from row
                       * kv_row0[il] + q * kv_rows[il] (ctx_kv_row) */
    uint8_t *v_cache; /* the same rows of v_row_bytes; NULL when hp.v_in_k (values are the
                       * first head_dim_v elements of the key rows) */
    uint32_t *kv_rows; /* (n_layer) n_ctx, or for a sliding-window layer a ring of
                        * window + n_batch - 1 rows rounded up to MR_ATTN_BLOCK:
                        * position p in row p % kv_rows */
    uint64_t *kv_row0; /* (n_layer) first row of each layer (its sequence 0) */
    int mla_naive;    /* MLA: expand keys and values per head instead of absorbing kv_b */
    /* scratch for a batch of up to n_batch tokens */
    float *x;        /* (n_batch, n_embd) residual stream */
    float *h;        /* (n_batch, n_embd) normed input of the current block */
    float *q;        /* (n_batch, q_dim) */
    float *kv_k;     /* (n_batch, k_dim) */
    float *kv_v;     /* (n_batch, v_dim) */
    float *att;      /* (n_batch, max(o_dim, n_embd)) attention output; FFN accumulator */
    float *rl;       /* (n_batch, n_expert) router logits */
    uint32_t *sel;   /* (n_layer, n_batch, n_used) chosen experts */
    float *selw;     /* (n_batch, n_used) their weights */
    float *xg;       /* (n_batch, n_embd) gathered inputs of one expert */
    float *g;        /* (n_batch, ff_max) */
    float *u;        /* (n_batch, ff_max) */
    float *y;        /* (n_batch, n_embd) */
    uint32_t *tok_of;/* (n_batch) token index of each gathered row */
    float *w_of;     /* (n_batch) its routing weight */
    float *y_route;  /* (n_batch * n_used, n_embd) each route's expert output, or NULL:
                        the parallel expert path's, made at its first use */
    uint32_t *row_of;/* (n_batch * n_used) the y_route row of each route */
    double *rope_inv; /* (n_rot / 2) effective inverse frequency of each pair */
    float *rope_cs;  /* (n_batch, n_rot / 2, 2) cos, sin at the batch's positions */
    uint64_t *route_counts; /* (n_layer, n_expert) tokens routed, for stats */
    float *scratch;  /* (n_batch, hp.scratch_floats) for the family's blocks, or NULL */
};

/* First cache row of layer il's region of sequence seq. */
static inline uint64_t ctx_kv_row(const struct mr_context *c, uint32_t il, uint32_t seq)
{
    return c->kv_row0[il] + (uint64_t)seq * c->kv_rows[il];
}

#endif
