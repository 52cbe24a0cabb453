/* model.h - hyperparameters and typed tensor views of a llama-architecture
 * GGUF (Mixtral when llama.expert_count > 0, dense Llama/Mistral otherwise).
 *
 * A dense model is described as one "expert" per layer with weight 1, so
 * the forward and the expert store handle both with the same code.
 */
#ifndef MOERUN_MODEL_H
#define MOERUN_MODEL_H

#include <stdint.h>

#include "gguf.h"
#include "status.h"

#define MR_MAX_EXPERTS 256

/* A view of one tensor in the mapped file.  ggml order: ne[0] is the row
 * length (input features), ne[1] the rows (output features), ne[2] the
 * experts for the stacked 3-D expert tensors. */
typedef struct {
    const char *name;
    const uint8_t *data;  /* NULL for expert tensors: read them via the store */
    uint32_t type;        /* mr_type */
    uint64_t ne[4];
    uint64_t row_bytes;   /* bytes of one row of ne[0] elements */
    uint64_t nbytes;
    uint64_t file_offset;
} mr_tensor;

typedef struct {
    uint32_t n_vocab;
    uint32_t n_embd;
    uint32_t n_layer;
    uint32_t n_head;
    uint32_t n_head_kv;
    uint32_t head_dim;
    uint32_t n_rot;       /* rotated dimensions of each head (== head_dim here) */
    uint32_t n_ff;        /* per-expert (or dense) hidden size */
    uint32_t n_expert;    /* 0 in the file for dense; stored here as 1 */
    uint32_t n_expert_used;
    uint32_t n_ctx_train;
    int is_moe;
    float rope_base;
    float norm_eps;
} mr_hparams;

typedef struct {
    float *attn_norm;  /* (n_embd) f32 copy */
    float *ffn_norm;   /* (n_embd) f32 copy */
    mr_tensor wq;      /* (n_embd -> n_head * head_dim) */
    mr_tensor wk;      /* (n_embd -> n_head_kv * head_dim) */
    mr_tensor wv;      /* (n_embd -> n_head_kv * head_dim) */
    mr_tensor wo;      /* (n_head * head_dim -> n_embd) */
    mr_tensor router;  /* (n_embd -> n_expert); type 0 rows 0 for dense */
    /* Stacked experts (n_embd -> n_ff, x n_expert) etc.  Only the expert
     * store turns these into pointers. */
    mr_tensor gate;    /* ffn_gate_exps / ffn_gate: (n_embd -> n_ff) per expert */
    mr_tensor up;      /* ffn_up_exps / ffn_up:     (n_embd -> n_ff) per expert */
    mr_tensor down;    /* ffn_down_exps / ffn_down: (n_ff -> n_embd) per expert */
} mr_layer;

typedef struct mr_model {
    mr_gguf *gguf;    /* owned */
    mr_hparams hp;
    mr_tensor tok_embd; /* (n_embd, n_vocab) */
    float *output_norm; /* (n_embd) f32 copy */
    mr_tensor output;   /* (n_embd -> n_vocab); == tok_embd when tied */
    int tied_output;
    mr_layer *layers;   /* n_layer */
    uint64_t expert_bytes;   /* all expert slices */
    uint64_t resident_bytes; /* every other tensor */
} mr_model;

/* Open path, validate every tensor against the hyperparameters. */
mr_status mr_model_load(const char *path, mr_model **out, mr_error *err);
/* The same from an already opened file; takes ownership of g on success
 * and on failure. */
mr_status mr_model_from_gguf(mr_gguf *g, mr_model **out, mr_error *err);
void mr_model_free(mr_model *m);

/* Weight bytes one generated token reads: every non-expert weight (one
 * row of the embedding table) plus the chosen experts of every layer. */
uint64_t mr_model_bytes_per_token(const mr_model *m);

/* Bytes of one expert's slice of a stacked tensor (gate, up or down). */
static inline uint64_t mr_expert_slice_bytes(const mr_tensor *t)
{
    return t->row_bytes * t->ne[1];
}

#endif
