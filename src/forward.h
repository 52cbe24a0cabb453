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
