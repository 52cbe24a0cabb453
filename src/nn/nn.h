/* nn.h - the shared building blocks every family's layer is written from.
 *
 * Each block reads the model's hyperparameters and the layer's tensors
 * (src/model.h) and works on the context's batch buffers
 * (src/context.h): a family file chooses and orders blocks, it does not
 * re-implement them.  A feature two families share (q/k norm, biases,
 * sinks, windows, a shared expert, a router mode) is a field of the
 * hyperparameters or the layer that one block honours.
 *
 * Numerics: f32 everywhere outside the matmul kernels.  A (token, row)
 * result never depends on the batch it came in or the thread that made
 * it, so prefill and decode agree to the bit on x86.
 */
#ifndef MOERUN_NN_H
#define MOERUN_NN_H

#include <stdint.h>

#include "../context.h"

/* ---- norms (norm.c) ---- */

/* out = x / sqrt(mean(x^2) + eps) * w (w NULL: no weight), one row of n. */
void nn_rmsnorm(float *out, const float *x, const float *w, uint32_t n, float eps);
/* The same for n_rows rows of n, row stride n. */
void nn_rmsnorm_rows(float *out, const float *x, const float *w, uint32_t n_rows, uint32_t n,
                     float eps);
/* A batch's per-row steps (activation preparing, RMSNorms, rope and the
 * KV stores) are split across the pool from this many rows: fewer (decode)
 * stay on the calling thread, where a hand-off would cost more. */
#define NN_SPLIT_ROWS 8
/* nn_rmsnorm_rows with a batch's rows split across c's pool (same bits) */
void nn_rmsnorm_batch(mr_context *c, float *out, const float *x, const float *w, uint32_t n_rows,
                      uint32_t n, float eps);
/* In place, per head: n_rows tokens (stride `stride` floats) of n_heads
 * heads of hd (head stride hd), each RMS-normed with w (hd), or without a
 * weight when w is NULL. */
void nn_rmsnorm_heads(float *x, const float *w, uint32_t n_rows, uint32_t stride,
                      uint32_t n_heads, uint32_t hd, float eps);
/* the same, a batch's rows split across c's pool */
void nn_rmsnorm_heads_batch(mr_context *c, float *x, const float *w, uint32_t n_rows, uint32_t stride,
                            uint32_t n_heads, uint32_t hd, float eps);

/* ---- rotary position embedding (rope.c) ---- */

/* Effective inverse frequency of each of the n_rot/2 pairs, with the
 * family's scaling (linear, YaRN with or without truncation, Llama 3) and
 * frequency factors applied; done once per context. */
void nn_rope_init(const mr_hparams *hp, const float *freq_factors, double *inv);
/* cos/sin (times the YaRN magnitude) of the batch's n positions
 * (c->tok_pos: each token's in its sequence), into c->rope_cs; once per
 * decode call. */
void nn_rope_prepare(mr_context *c, uint32_t n);
/* Rotate the first n_rot dimensions of n_heads heads (head stride
 * head_stride floats) of batch token t, in the model's pair layout. */
void nn_rope_apply(const mr_context *c, float *v, uint32_t t, uint32_t n_heads,
                   uint32_t head_stride);

/* ---- matrix products (linear.c) ---- */

/* y (n x ne[1]) = x (n x ne[0]) W^T, rows split across the pool. */
void nn_matmul(mr_context *c, const mr_tensor *w, const float *x, uint32_t n, float *y);
/* The same for a weight given by pointer (an expert slice). */
void nn_matmul_raw(mr_context *c, uint32_t type, const void *w, size_t row_bytes, int64_t n_in,
                   int64_t n_out, const float *x, int64_t n, float *y);
/* The same with w the kernels' repacked copy of a type (mr_can_pack). */
void nn_matmul_packed(mr_context *c, uint32_t type, const void *w, int64_t n_in, int64_t n_out,
                      const float *x, int64_t n, float *y);
/* y[t * dim + i] += b[i] for n rows (b NULL: nothing). */
void nn_add_bias(float *y, const float *b, uint32_t n, uint32_t dim);
/* x += y, n floats. */
void nn_add(float *x, const float *y, size_t n);

/* ---- attention (attention.c) ---- */

/* Scaled dot-product attention over the cache, online softmax in
 * key blocks aligned to absolute positions (no n x n score matrix).
 * Query token t (position pos0 + t) sees cache positions p <= pos0 + t,
 * limited by window (pos - p < window) and chunk (p / chunk == pos /
 * chunk).  Head h reads kv head h / (n_head / n_head_kv).  A sink logit
 * per head joins the softmax's denominator only. */
typedef struct {
    const float *q; uint32_t q_stride;      /* token stride (floats); head h at h * dk */
    /* the cache: rows of k_stride elements of k_type (F32 by default, F16,
     * Q8_0), kv head j starting at element j * k_head (a whole number of
     * blocks); likewise v */
    const void *k; uint32_t k_stride;
    const void *v; uint32_t v_stride;
    uint32_t k_type, v_type;
    float *out; uint32_t out_stride;        /* head h at h * dv */
    uint32_t k_head, v_head;                /* kv-head strides in the cache rows */
    uint32_t n_head, n_head_kv, dk, dv;
    uint32_t n_tok, pos0;
    float scale;
    const float *sinks;                     /* (n_head) or NULL */
    uint32_t window, chunk;                 /* 0: off */
    uint32_t rows;                          /* a ring of rows: position p is row p % rows
                                             * (0: row p) */
} nn_attn;
void nn_attention(mr_context *c, const nn_attn *a);

/* The GQA self-attention block of layer il on c->h (already normed):
 * q, k, v projections (+ biases), per-head q/k RMSNorm with the layer's
 * weights before rope (L->q_norm, L->k_norm: Qwen3), rope unless the
 * layer is NoPE (L->use_rope), with `qk_norm_after_rope` a weightless
 * per-head RMSNorm of the roped q and k (Llama 4's "L2Norm", which is
 * x * rsqrt(mean(x^2) + eps)), append to the cache, attention with the
 * layer's sinks / window / chunk, output projection (+ bias); the result
 * is ADDED to c->x.  q_scale: per-token multipliers of q after rope
 * (Llama 4's attention temperature on NoPE layers), or NULL. */
void nn_self_attention(mr_context *c, uint32_t il, uint32_t n, int qk_norm_after_rope,
                       const float *q_scale);

/* ---- multi-head latent attention (mla.c) ---- */

/* Per-token floats of c->scratch the MLA block needs (families set
 * hp->scratch_floats to at least this). */
uint32_t nn_mla_scratch_floats(const mr_hparams *hp);
/* DeepSeek's MLA self-attention of layer il on c->h (already normed):
 * low-rank or direct q, the compressed kv with its norm, rope on the rope
 * part of q and on the shared k_pe, the latent [c | k_pe] appended to the
 * cache (hp->head_dim floats per position, no V cache), attention with kv_b
 * absorbed into query and output (or expanded, c->mla_naive), output
 * projection ADDED to c->x.  Fails only when the naive form lacks memory. */
mr_status nn_mla_attention(mr_context *c, uint32_t il, uint32_t n, mr_error *err);

/* ---- feed-forward (moe.c) ---- */

/* Route the batch with layer il's router and the model's router mode:
 * fills c->sel / c->selw (n_expert_used per token, best first). */
void nn_route(mr_context *c, uint32_t il, uint32_t n);
/* The FFN of layer il on c->h (already normed), ADDED to c->x: routed
 * experts through the expert store (grouped by expert, ascending id, so
 * every store backend sums in the same order), plus the shared expert;
 * or, for a dense layer of a MoE model, the resident dense FFN.
 * Announces the batch's experts to the store and hints later layers. */
mr_status nn_ffn(mr_context *c, uint32_t il, uint32_t n, mr_error *err);

#endif
