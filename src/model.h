/* model.h - hyperparameters and typed tensor views of a MoE (or dense)
 * transformer read from a GGUF file, whatever its family.
 *
 * The family (src/arch/<family>.c, chosen by general.architecture) fills
 * these: it reads its own GGUF keys into mr_hparams and binds its tensors
 * into mr_layer.  The shared blocks (src/nn/) read only these structs, so
 * a feature two families share is one field here and one branch there.
 *
 * A dense model is described as one "expert" per layer with weight 1, so
 * the forward and the expert store handle both with the same code.  In a
 * MoE model a layer may instead be dense (DeepSeek's first layers, Llama 4
 * Maverick's interleave): that FFN is an ordinary resident tensor
 * (layer->moe == 0, ffn_* bound), never read through the store.
 */
#ifndef MOERUN_MODEL_H
#define MOERUN_MODEL_H

#include <stdint.h>

#include "../simd/kernels.h"
#include "gguf.h"
#include "status.h"

#define MR_MAX_EXPERTS 512

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
    /* a resident matrix repacked for a kernel table (src/pack.h), or NULL;
     * nn_matmul reads it while the context's gemm_packed is packed_gemm */
    const uint8_t *packed;
    uint64_t packed_bytes;
    mr_gemm_fn packed_gemm;
} mr_tensor;

/* How rotary position embedding pairs dimensions of a head. */
typedef enum {
    MR_ROPE_NORM = 0, /* adjacent pairs (2i, 2i+1): llama.cpp's NORM (Llama, Mixtral) */
    MR_ROPE_NEOX = 2, /* halves (i, i + n_rot/2): NEOX (Qwen, gpt-oss, ...) */
} mr_rope_mode;

/* Frequency scaling of long-context checkpoints. */
typedef enum {
    MR_ROPE_SCALE_NONE = 0,
    MR_ROPE_SCALE_LINEAR, /* theta_i / factor */
    MR_ROPE_SCALE_YARN,   /* NTK-by-parts ramp between interpolation and extrapolation */
    MR_ROPE_SCALE_LLAMA3, /* Llama 3.1 wavelength bands */
} mr_rope_scaling;

typedef struct {
    mr_rope_mode mode;
    uint32_t n_rot;       /* rotated dimensions at the start of each head (<= head size) */
    float base;           /* theta */
    mr_rope_scaling scaling;
    float factor;         /* scaling factor (>= 1) */
    uint32_t orig_ctx;    /* context the model was trained at before scaling */
    /* YaRN */
    float beta_fast, beta_slow; /* ramp ends, in rotations (default 32, 1) */
    float attn_factor;    /* extra multiplier of the cos/sin magnitude (default 1) */
    float mscale;         /* computed: attn_factor * (1 + 0.1 ln factor) or as the family sets */
    int yarn_no_truncate; /* 1: keep the correction range fractional (HF truncate=false) */
    /* Llama 3 */
    float low_freq_factor, high_freq_factor;
} mr_rope_cfg;

/* How a MoE router turns logits into chosen experts and weights. */
typedef enum {
    MR_ROUTE_SOFTMAX_TOPK = 0, /* softmax over all, top-k, optional renormalise (Mixtral, Qwen3) */
    MR_ROUTE_TOPK_SOFTMAX,     /* top-k of the logits, softmax over those k (gpt-oss) */
    MR_ROUTE_SIGMOID,          /* sigmoid scores; selection adds a bias, group-limited (DeepSeek-V3) */
    MR_ROUTE_SIGMOID_INPUT,    /* top-k of logits, sigmoid of each scales the expert INPUT (Llama 4) */
} mr_route_mode;

typedef struct {
    mr_route_mode mode;
    int norm_topk;        /* renormalise the k weights to sum 1 */
    float scale;          /* multiply the final weights (routed_scaling_factor; 1 default) */
    uint32_t n_group;     /* expert groups (1 = none) */
    uint32_t topk_group;  /* groups kept before the top-k */
} mr_router_cfg;

/* Gated activation of expert and dense FFNs: act(gate) * up. */
typedef enum {
    MR_ACT_SILU = 0,     /* silu(g) * u */
    MR_ACT_SWIGLU_OAI,   /* gpt-oss: g = min(g, limit), u = clamp(u, +-limit), g*sigmoid(alpha g)*(u+1) */
} mr_ffn_act;

typedef struct {
    uint32_t n_vocab;
    uint32_t n_embd;
    uint32_t n_layer;
    uint32_t n_head;
    uint32_t n_head_kv;
    uint32_t head_dim;    /* key (and query) size of one head */
    uint32_t head_dim_v;  /* value size of one head (== head_dim except MLA) */
    uint32_t n_ff;        /* per-expert (or, in a dense model, the dense) hidden size */
    uint32_t n_ff_dense;  /* hidden size of the dense layers of a MoE model (0: none) */
    uint32_t n_ff_shexp;  /* hidden size of the shared expert (0: none) */
    uint32_t n_layer_dense; /* leading layers with a dense FFN (DeepSeek's first_k_dense_replace) */
    uint32_t n_expert;    /* 0 in the file for dense; stored here as 1 */
    uint32_t n_expert_used;
    uint32_t n_ctx_train;
    int is_moe;
    float norm_eps;
    float attn_scale;     /* softmax scale of q.k (1/sqrt(head_dim) unless the family says) */
    mr_rope_cfg rope;
    mr_router_cfg router;
    mr_ffn_act act;
    float act_alpha, act_limit; /* MR_ACT_SWIGLU_OAI */
    /* MLA (DeepSeek-V2/V3, Kimi K2): the cache holds one latent row per
     * token, head_dim = n_lora_kv + n_rot wide (its "kv head"); a query head
     * is head_dim_mla_k = nope + n_rot wide and yields head_dim_mla_v. */
    uint32_t n_lora_q;       /* rank of q_a (0: q projected directly) */
    uint32_t n_lora_kv;      /* latent (compressed kv) size */
    uint32_t head_dim_mla_k, head_dim_mla_v;
    int v_in_k;              /* a value is the first head_dim_v floats of its key row:
                              * the context allocates no V cache */
    uint32_t scratch_floats; /* per-token scratch (c->scratch) the family's blocks need */
    uint32_t widest_in;      /* widest matmul input beyond n_embd, FFN, q and o sizes */
    /* Llama 4 layer schedule (src/arch/llama4.c); 0 elsewhere */
    uint32_t moe_layer_step;   /* layer il is MoE iff (il + 1) % step == 0 */
    uint32_t nope_period;      /* layer il has no rope iff (il + 1) % period == 0 (0: none) */
    uint32_t chunk, chunk_period; /* chunk size (0: off) of layers with (il + 1) % period != 0 */
    uint32_t attn_temp_length; /* NoPE query temperature 1 + s ln(floor((pos+1)/F) + 1): F */
    float attn_temp_scale;     /* s (0: off) */
    int qk_norm_after_rope;    /* weightless per-head RMSNorm of roped q, k */
} mr_hparams;

typedef struct {
    int moe;           /* the FFN is read through the expert store: routed experts (in a
                        * dense model, its one "expert"); 0: a dense layer of a MoE
                        * model, computed from the resident sh_* tensors */
    int use_rope;      /* 0: NoPE layer */
    uint32_t window;   /* sliding-window attention: a token sees the last `window` positions (0: all) */
    uint32_t chunk;    /* chunked attention: a token sees its own chunk of this size (0: off) */
    float *attn_norm;  /* (n_embd) f32 copy */
    float *ffn_norm;   /* (n_embd) f32 copy */
    float *q_norm;     /* (head_dim) per-head RMSNorm of q before rope, or NULL */
    /* MLA: q = wq_b(rmsnorm(wq_a h) * q_a_norm) (or wq h), latent|k_pe = wkv_a h,
     * wk_b (per head: n_lora_kv rows of nope), wv_b (per head: head_dim_mla_v
     * rows of n_lora_kv), stacked over heads in ne[2] */
    mr_tensor wq_a, wq_b, wkv_a, wk_b, wv_b;
    float *q_a_norm, *kv_a_norm; /* (n_lora_q), (n_lora_kv) */
    float *k_norm;     /* (head_dim) per-head RMSNorm of k before rope, or NULL */
    float *sinks;      /* (n_head) learned sink logits, or NULL */
    float *bq, *bk, *bv, *bo; /* attention biases (f32 copies), or NULL */
    mr_tensor wq;      /* (n_embd -> n_head * head_dim) */
    mr_tensor wk;      /* (n_embd -> n_head_kv * head_dim) */
    mr_tensor wv;      /* (n_embd -> n_head_kv * head_dim_v) */
    mr_tensor wo;      /* (n_head * head_dim_v -> n_embd) */
    mr_tensor router;  /* (n_embd -> n_expert); type 0 rows 0 for dense */
    float *router_bias;   /* (n_expert) added to the router logits (gpt-oss), or NULL */
    float *select_bias;   /* (n_expert) added for selection only (DeepSeek exp_probs_b), or NULL */
    /* Stacked experts (n_embd -> n_ff, x n_expert) etc.  Only the expert
     * store turns these into pointers. */
    mr_tensor gate;    /* ffn_gate_exps / ffn_gate: (n_embd -> n_ff) per expert */
    mr_tensor up;      /* ffn_up_exps / ffn_up:     (n_embd -> n_ff) per expert */
    mr_tensor down;    /* ffn_down_exps / ffn_down: (n_ff -> n_embd) per expert */
    float *gate_bias, *up_bias, *down_bias; /* (n_expert, rows) expert biases (gpt-oss), or NULL */
    /* Resident FFNs: the shared expert of a MoE layer, or the dense FFN of a
     * dense layer of a MoE model (data set; never paged). */
    mr_tensor sh_gate, sh_up, sh_down; /* ffn_*_shexp, or ffn_* when !moe */
} mr_layer;

struct mr_arch;

typedef struct mr_model {
    mr_gguf *gguf;    /* owned */
    const struct mr_arch *arch; /* the family (src/arch/arch.h) */
    mr_hparams hp;
    mr_tensor tok_embd; /* (n_embd, n_vocab) */
    float *output_norm; /* (n_embd) f32 copy */
    mr_tensor output;   /* (n_embd -> n_vocab); == tok_embd when tied */
    int tied_output;
    float *rope_freqs;  /* (n_rot / 2) per-pair frequency divisors (rope_freqs.weight), or NULL */
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

/* The family's name ("Mixtral/Llama", "Qwen3-MoE", ...) and a one-line
 * description of its routing, for info. */
const char *mr_model_family(const mr_model *m);
const char *mr_model_routing(const mr_model *m);

#endif
