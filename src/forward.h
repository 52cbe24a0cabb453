/* forward.h - the llama/Mixtral forward pass with a KV cache.
 *
 * A batch of tokens is processed as matrix-matrix work (prompt), a single
 * token as matrix-vector (generation); both run the same code.  Expert
 * weights come only from the expert store.
 */
#ifndef MOERUN_FORWARD_H
#define MOERUN_FORWARD_H

#include <stdint.h>

#include "expert_store.h"
#include "model.h"
#include "status.h"

typedef struct mr_context mr_context;

/* n_ctx: KV cache length (positions); n_batch: most tokens per decode call. */
mr_status mr_context_new(const mr_model *m, mr_expert_store *store, uint32_t n_ctx,
                         uint32_t n_batch, mr_context **out, mr_error *err);
void mr_context_free(mr_context *c);

/* Bytes a context of this size allocates (KV cache, scratch), for memory
 * budgets. */
uint64_t mr_context_bytes(const mr_model *m, uint32_t n_ctx, uint32_t n_batch);

/* The same with the KV cache's element types (llama.cpp's -ctk / -ctv):
 * MR_TYPE_F32 (what mr_context_new uses), MR_TYPE_F16, or MR_TYPE_Q8_0
 * (head sizes a multiple of 32).  MR_EINVAL names a type that cannot be. */
mr_status mr_context_new_kv(const mr_model *m, mr_expert_store *store, uint32_t n_ctx,
                            uint32_t n_batch, uint32_t k_type, uint32_t v_type,
                            mr_context **out, mr_error *err);
uint64_t mr_context_bytes_kv(const mr_model *m, uint32_t n_ctx, uint32_t n_batch,
                             uint32_t k_type, uint32_t v_type);
/* The cache's element types. */
void mr_context_kv_types(const mr_context *c, uint32_t *k_type, uint32_t *v_type);

/* Several sequences in one context (the server's slots): n_seq KV regions
 * of n_ctx positions each, sharing the scratch of one n_batch-token batch,
 * so that the tokens of all of them run through one forward
 * (mr_decode_batch): every matmul, the router and each routed expert once
 * over the whole batch (an expert two sequences use is read once); only
 * rope positions and attention are per sequence.  mr_decode works on
 * sequence 0; mr_context_n_past and mr_context_reset too (reset: every
 * sequence). */
mr_status mr_context_new_seqs(const mr_model *m, mr_expert_store *store, uint32_t n_ctx,
                              uint32_t n_batch, uint32_t k_type, uint32_t v_type, uint32_t n_seq,
                              mr_context **out, mr_error *err);
uint64_t mr_context_bytes_seqs(const mr_model *m, uint32_t n_ctx, uint32_t n_batch,
                               uint32_t k_type, uint32_t v_type, uint32_t n_seq);
uint32_t mr_context_n_seq(const mr_context *c);

/* Run a batch of n tokens of several sequences: token i goes to sequence
 * seq_ids[i] at its next position.  Each sequence's tokens must be one
 * contiguous run of the batch, in order (MR_EINVAL otherwise); MR_ERANGE if
 * a run does not fit its sequence.  logits: if all_logits, n x n_vocab
 * (row i after token i); else one row per run, in batch order, after the
 * run's last token.  A token's logits are those it gets decoded alone in
 * its sequence (the same bits on x86: no result depends on the batch). */
mr_status mr_decode_batch(mr_context *c, const int32_t *tokens, const uint32_t *seq_ids,
                          uint32_t n, float *logits, int all_logits, mr_error *err);

/* Positions filled in sequence seq. */
uint32_t mr_seq_n_past(const mr_context *c, uint32_t seq);
/* Forget sequence seq. */
void mr_seq_reset(mr_context *c, uint32_t seq);
/* Keep only the first n_keep positions of sequence seq (decoding goes on
 * from there, as if the rest had never been).  Returns the positions kept:
 * n_keep, its n_past if smaller, or 0 when a sliding-window layer's ring
 * has already overwritten keys the next token after n_keep would see. */
uint32_t mr_seq_trim(mr_context *c, uint32_t seq, uint32_t n_keep);
/* Make sequence dst hold the first n positions of src (a shared prefix,
 * copied: no recompute); returns the positions dst holds, as mr_seq_trim. */
uint32_t mr_seq_copy(mr_context *c, uint32_t dst, uint32_t src, uint32_t n);

/* Use n_threads threads (a persistent pool; 1 = the caller's only). */
mr_status mr_context_set_threads(mr_context *c, int n_threads, mr_error *err);
int mr_context_threads(const mr_context *c);

/* exact = 1: activations stay f32 and weights are dequantised exactly (the
 * reference path, ~1e-5 from float64); 0 (default): activations are
 * quantized to 8 bits per row for the integer kernels, as llama.cpp does. */
void mr_context_set_exact(mr_context *c, int exact);
/* trunc = 1: round the YaRN correction range to whole dimensions as
 * llama.cpp always does (floor/ceil); 0 (default): the family's own
 * semantics (gpt-oss: fractional, HF truncate=false).  No effect without
 * YaRN.  Set it before the first decode: cached keys keep their rotation. */
void mr_context_set_yarn_trunc(mr_context *c, int trunc);

/* MLA families (DeepSeek): naive = 1 expands every cached latent into
 * per-head keys and values (the checkpoint's own form) instead of
 * absorbing kv_b into the query and output; for checking the two agree. */
void mr_context_set_mla_naive(mr_context *c, int naive);

/* Kernel set of this context: "scalar", "avx2", "avx512" or "neon"; by
 * default the one chosen at start-up (the best, or MOERUN_ISA's).  Tests
 * use it to compare kernel sets on the whole model in one process.
 * MR_EINVAL if the name is unknown or this CPU or build cannot run it. */
mr_status mr_context_set_isa(mr_context *c, const char *isa, mr_error *err);
const char *mr_context_isa(const mr_context *c);

/* Forget every cached position. */
void mr_context_reset(mr_context *c);

/* Positions filled so far. */
uint32_t mr_context_n_past(const mr_context *c);
uint32_t mr_context_n_ctx(const mr_context *c);

/* Run n tokens at positions n_past..n_past+n-1 and append them to the
 * cache.  logits: if all_logits, n x n_vocab floats (row i after token i);
 * else n_vocab floats for the last token.  May be NULL. */
mr_status mr_decode(mr_context *c, const int32_t *tokens, uint32_t n, float *logits,
                    int all_logits, mr_error *err);

/* Router diagnostics of the last decode call: for layer l and token t of
 * that batch, the chosen experts (n_expert_used each, best first). */
const uint32_t *mr_context_last_routing(const mr_context *c, uint32_t layer);

/* Tokens routed to each expert so far, (n_layer, n_expert) row-major (MoE
 * models; all zero for dense ones). */
const uint64_t *mr_context_routing_counts(const mr_context *c);

#endif
