/* llama4.c - Llama 4 text models (Scout 17B-16E, Maverick 17B-128E; GGUF
 * "llama4"), with Hugging Face's semantics (modeling_llama4.py) and the
 * layer schedules llama.cpp's files imply.
 *
 *   h = rmsnorm(x) * attn_norm
 *   q, k, v = h Wq, h Wk, h Wv        (head_dim from key_length)
 *   rope layers, (il+1) % 4 != 0:
 *       rope NORM (adjacent pairs; theta_j divided by rope_freqs.weight,
 *       the Llama 3 bands the converter computed), then a weightless
 *       per-head RMSNorm of q and k (HF's "L2Norm"; llama.cpp: iff the
 *       model does not have 128 experts); attention inside the token's
 *       chunk: key j visible iff j <= i and j / C == i / C
 *   NoPE layers, (il+1) % 4 == 0:
 *       q *= 1 + s ln(floor((pos + 1) / F) + 1)   (temperature tuning);
 *       full causal attention
 *   x += attention(q, k, v) Wo                  (GQA, scale 1/sqrt(head_dim))
 *   h = rmsnorm(x) * ffn_norm
 *   MoE layers, (il+1) % interleave_moe_layer_step == 0:
 *       r = h Wr; top-k of r; x += sum_k E_k(sigmoid(r_k) * h) + S(h)
 *       (the sigmoid scales the expert's INPUT; no renormalisation; S is
 *       the always-on shared expert, expert_feed_forward_length wide)
 *   other layers (Maverick): x += the dense SwiGLU FFN, feed_forward_length
 *
 * llama.cpp hard-codes C = 8192, F = 8192, s = 0.1; files that carry
 * attention.sliding_window (C), attention.temperature_length (F) and
 * attention.temperature_scale (s) get theirs.  sliding_window = 0
 * (MobileLLM) means no chunking, rope on every layer, no temperature.
 * attention.sliding_window_pattern, when present, sets the period of the
 * chunked layers (the last of each period attends to everything).
 */
#include "arch.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "../nn/nn.h"

#define LLAMA4_CHUNK 8192      /* llama.cpp's n_swa for llama4 */
#define LLAMA4_TEMP_FLOOR 8192 /* n_attn_temp_floor_scale */
#define LLAMA4_TEMP_SCALE 0.1f /* f_attn_temp_scale */
#define LLAMA4_NOPE_PERIOD 4   /* every 4th layer has no rope */

static mr_status llama4_hparams(const mr_gguf *g, mr_hparams *hp, mr_error *err)
{
    static const char A[] = "llama4";
    uint32_t step = 0, chunk = LLAMA4_CHUNK, period = LLAMA4_NOPE_PERIOD;
    int has_window = 0;
    mr_status s = mr_arch_common_hparams(g, A, hp, err);
    if (s)
        return s;
    if (!hp->is_moe)
        return mr_arch_bad(g, err, A, "expert_count", "a Llama 4 model needs experts");
    /* feed_forward_length is the dense FFN (intermediate_size_mlp); the
     * experts and the shared expert are expert_feed_forward_length wide */
    hp->n_ff_dense = hp->n_ff;
    if ((s = mr_arch_u32(g, A, "expert_feed_forward_length", 1, &hp->n_ff, err)) ||
        (s = mr_arch_u32(g, A, "interleave_moe_layer_step", 1, &step, err)))
        return s;
    if (hp->n_ff < 1 || hp->n_ff > 1048576)
        return mr_arch_bad(g, err, A, "expert_feed_forward_length", "%u is outside 1..1048576",
                           hp->n_ff);
    if (step < 1 || step > hp->n_layer)
        return mr_arch_bad(g, err, A, "interleave_moe_layer_step",
                           "%u is outside 1..block_count (%u)", step, hp->n_layer);
    hp->n_ff_shexp = hp->n_ff;
    hp->moe_layer_step = step;

    char key[64];
    snprintf(key, sizeof key, "%s.attention.sliding_window", A);
    has_window = mr_gguf_find(g, key) != NULL;
    hp->attn_temp_length = LLAMA4_TEMP_FLOOR;
    hp->attn_temp_scale = LLAMA4_TEMP_SCALE;
    if ((s = mr_arch_u32(g, A, "attention.sliding_window", 0, &chunk, err)) ||
        (s = mr_arch_u32(g, A, "attention.temperature_length", 0, &hp->attn_temp_length, err)) ||
        (s = mr_arch_f32(g, A, "attention.temperature_scale", 0, &hp->attn_temp_scale, err)) ||
        (s = mr_arch_u32(g, A, "attention.sliding_window_pattern", 0, &period, err)))
        return s;
    if (period < 1)
        return mr_arch_bad(g, err, A, "attention.sliding_window_pattern", "must be positive");
    if (!isfinite(hp->attn_temp_scale) || hp->attn_temp_scale < 0.0f)
        return mr_arch_bad(g, err, A, "attention.temperature_scale",
                           "%g is not a non-negative number", hp->attn_temp_scale);
    if (hp->attn_temp_length < 1)
        return mr_arch_bad(g, err, A, "attention.temperature_length", "must be positive");
    if (has_window && chunk == 0) {
        hp->chunk = 0;          /* every layer full attention with rope */
        hp->nope_period = 0;
        hp->chunk_period = 0;
        hp->attn_temp_scale = 0.0f;
    } else {
        hp->chunk = chunk;
        hp->nope_period = LLAMA4_NOPE_PERIOD;
        hp->chunk_period = period;
    }
    /* llama.cpp: use_kq_norm = type != 17B_128E (use_qk_norm is not stored) */
    hp->qk_norm_after_rope = hp->n_expert != 128;
    hp->rope.mode = MR_ROPE_NORM;
    hp->router.mode = MR_ROUTE_SIGMOID_INPUT;
    hp->router.norm_topk = 0;
    return MR_OK;
}

#define NAME(suffix) (snprintf(name, sizeof name, "blk.%u." suffix, il), name)

/* The dense SwiGLU FFN of a non-MoE layer, resident in sh_*. */
static mr_status bind_dense_ffn(mr_model *m, uint32_t il, mr_error *err)
{
    const mr_hparams *hp = &m->hp;
    mr_layer *L = &m->layers[il];
    char name[96];
    mr_status s;
    if ((s = mr_bind_f32(m->gguf, NAME("ffn_norm.weight"), hp->n_embd, 1, &L->ffn_norm, err)) ||
        (s = mr_bind_tensor(m->gguf, NAME("ffn_gate.weight"), hp->n_embd, hp->n_ff_dense, 0, 1,
                            &L->sh_gate, err)) ||
        (s = mr_bind_tensor(m->gguf, NAME("ffn_up.weight"), hp->n_embd, hp->n_ff_dense, 0, 1,
                            &L->sh_up, err)) ||
        (s = mr_bind_tensor(m->gguf, NAME("ffn_down.weight"), hp->n_ff_dense, hp->n_embd, 0, 1,
                            &L->sh_down, err)))
        return s;
    L->moe = 0;
    m->resident_bytes += 4ull * hp->n_embd;
    return MR_OK;
}

static mr_status llama4_bind(mr_model *m, uint32_t il, mr_error *err)
{
    const mr_hparams *hp = &m->hp;
    mr_layer *L = &m->layers[il];
    char name[96];
    mr_status s;
    if ((s = mr_bind_attn_gqa(m, il, err)))
        return s;
    L->use_rope = !(hp->nope_period && (il + 1) % hp->nope_period == 0);
    L->chunk = hp->chunk && (il + 1) % hp->chunk_period != 0 ? hp->chunk : 0;
    if ((il + 1) % hp->moe_layer_step != 0) {
        if ((s = bind_dense_ffn(m, il, err)))
            return s;
    } else {
        if ((s = mr_bind_ffn_moe(m, il, err)) ||
            (s = mr_bind_tensor(m->gguf, NAME("ffn_gate_shexp.weight"), hp->n_embd,
                                hp->n_ff_shexp, 0, 1, &L->sh_gate, err)) ||
            (s = mr_bind_tensor(m->gguf, NAME("ffn_up_shexp.weight"), hp->n_embd,
                                hp->n_ff_shexp, 0, 1, &L->sh_up, err)) ||
            (s = mr_bind_tensor(m->gguf, NAME("ffn_down_shexp.weight"), hp->n_ff_shexp,
                                hp->n_embd, 0, 1, &L->sh_down, err)))
            return s;
    }
    m->resident_bytes += L->sh_gate.nbytes + L->sh_up.nbytes + L->sh_down.nbytes;
    return MR_OK;
}
#undef NAME

static mr_status llama4_layer(mr_context *c, uint32_t il, uint32_t n, mr_error *err)
{
    const mr_hparams *hp = &c->m->hp;
    const mr_layer *L = &c->m->layers[il];
    float *temp = NULL;
    if (!L->use_rope && hp->attn_temp_scale > 0.0f) {
        /* 1 + s ln(floor((pos + 1) / F) + 1) per query; llama.cpp's offset 1 */
        if (!(temp = malloc(sizeof(float) * n)))
            return mr_fail(err, MR_ENOMEM, NULL, "llama4", MR_NO_OFFSET,
                           "no memory for %u attention temperatures", n);
        for (uint32_t t = 0; t < n; t++) {
            const double pos = (double)c->tok_pos[t];
            temp[t] = (float)(log(floor((pos + 1.0) / hp->attn_temp_length) + 1.0) *
                                  hp->attn_temp_scale +
                              1.0);
        }
    }
    nn_rmsnorm_batch(c, c->h, c->x, L->attn_norm, n, hp->n_embd, hp->norm_eps);
    nn_self_attention(c, il, n, hp->qk_norm_after_rope, temp);
    free(temp);
    nn_rmsnorm_batch(c, c->h, c->x, L->ffn_norm, n, hp->n_embd, hp->norm_eps);
    return nn_ffn(c, il, n, err);
}

const mr_arch mr_arch_llama4 = {
    .gguf_name = "llama4",
    .family = "Llama 4",
    .routing = "top-k by router logit; sigmoid of each scales the expert's input; "
               "+ shared expert",
    .hparams = llama4_hparams,
    .bind = llama4_bind,
    .layer = llama4_layer,
};
