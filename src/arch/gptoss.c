/* gptoss.c - gpt-oss (gpt-oss-20b, gpt-oss-120b; GGUF "gpt-oss").
 *
 *   h = rmsnorm(x) * attn_norm
 *   q, k, v = h Wq + bq, h Wk + bk, h Wv + bv   (head_dim 64 from key_length;
 *                                               n_head * head_dim != n_embd)
 *   rope NEOX (halves) with YaRN: ramp over the correction range, which
 *        the checkpoint keeps fractional (truncate: false; llama.cpp
 *        floors/ceils it: mr_context_set_yarn_trunc), cos and sin x
 *        (1 + 0.1 ln factor)
 *   softmax(q k^T / sqrt(d), sink_h) v: one learned sink logit per head in
 *        the denominator; even layers see the last sliding_window keys
 *        (the GGUF keeps the window, not the pattern: llama.cpp's period 2,
 *        layer 0 sliding), odd layers everything
 *   x += (...) Wo + bo
 *   h = rmsnorm(x) * post_attention_norm
 *   r = h Wr + br; top-k of r; w = softmax over those k
 *   x += sum_e w_e * (down_e(swiglu_oai(gate_e h + bg_e, up_e h + bu_e)) + bd_e)
 *        swiglu_oai(g, u) = min(g, 7) sigmoid(1.702 min(g, 7)) (clamp(u, +-7) + 1)
 * Experts are MXFP4 as released; the expert biases stay resident.
 */
#include "arch.h"

#include <stdio.h>

#include "../nn/nn.h"

#define GPTOSS "gpt-oss"

/* The sliding window and its period (layers il % period < period - 1
 * slide), as llama.cpp reads them. */
static mr_status gptoss_swa(const mr_gguf *g, uint32_t *window, uint32_t *period,
                            mr_error *err)
{
    mr_status s;
    *period = 2;
    if ((s = mr_arch_u32(g, GPTOSS, "attention.sliding_window", 1, window, err)) ||
        (s = mr_arch_u32(g, GPTOSS, "attention.sliding_window_pattern", 0, period, err)))
        return s;
    if (*window < 1)
        return mr_arch_bad(g, err, GPTOSS, "attention.sliding_window", "must be positive");
    if (*period < 1)
        return mr_arch_bad(g, err, GPTOSS, "attention.sliding_window_pattern",
                           "must be positive");
    return MR_OK;
}

static mr_status gptoss_hparams(const mr_gguf *g, mr_hparams *hp, mr_error *err)
{
    uint32_t window, period;
    mr_status s = mr_arch_common_hparams(g, GPTOSS, hp, err);
    if (s)
        return s;
    if (!hp->is_moe)
        return mr_arch_bad(g, err, GPTOSS, "expert_count", "a gpt-oss model needs experts");
    if ((s = mr_arch_u32(g, GPTOSS, "expert_feed_forward_length", 1, &hp->n_ff, err)) ||
        (s = gptoss_swa(g, &window, &period, err)))
        return s;
    if (hp->n_ff < 1 || hp->n_ff > 1048576)
        return mr_arch_bad(g, err, GPTOSS, "expert_feed_forward_length",
                           "%u is outside 1..1048576", hp->n_ff);
    hp->rope.mode = MR_ROPE_NEOX;
    /* every released config says truncate: false; a GGUF cannot say it */
    hp->rope.yarn_no_truncate = 1;
    hp->router.mode = MR_ROUTE_TOPK_SOFTMAX;
    hp->router.norm_topk = 0;
    hp->act = MR_ACT_SWIGLU_OAI;
    hp->act_alpha = 1.702f;
    hp->act_limit = 7.0f;
    return MR_OK;
}

static mr_status gptoss_bind(mr_model *m, uint32_t il, mr_error *err)
{
    const mr_gguf *g = m->gguf;
    const mr_hparams *hp = &m->hp;
    mr_layer *L = &m->layers[il];
    const uint64_t nf = (uint64_t)hp->n_ff * hp->n_expert, ne = (uint64_t)hp->n_embd * hp->n_expert;
    uint32_t window, period;
    char n[6][64];
    snprintf(n[0], sizeof n[0], "blk.%u.attn_sinks.weight", il);
    snprintf(n[1], sizeof n[1], "blk.%u.post_attention_norm.weight", il);
    snprintf(n[2], sizeof n[2], "blk.%u.ffn_gate_inp.bias", il);
    snprintf(n[3], sizeof n[3], "blk.%u.ffn_gate_exps.bias", il);
    snprintf(n[4], sizeof n[4], "blk.%u.ffn_up_exps.bias", il);
    snprintf(n[5], sizeof n[5], "blk.%u.ffn_down_exps.bias", il);
    mr_status s;
    if ((s = gptoss_swa(g, &window, &period, err)) || (s = mr_bind_attn_gqa(m, il, err)) ||
        (s = mr_bind_f32(g, n[0], hp->n_head, 1, &L->sinks, err)) ||
        (s = mr_bind_f32(g, n[1], hp->n_embd, 1, &L->ffn_norm, err)) ||
        (s = mr_bind_f32(g, n[2], hp->n_expert, 1, &L->router_bias, err)) ||
        (s = mr_bind_f32(g, n[3], nf, 1, &L->gate_bias, err)) ||
        (s = mr_bind_f32(g, n[4], nf, 1, &L->up_bias, err)) ||
        (s = mr_bind_f32(g, n[5], ne, 1, &L->down_bias, err)) ||
        (s = mr_bind_ffn_moe(m, il, err)))
        return s;
    L->window = il % period < period - 1 ? window : 0;
    m->resident_bytes += 4ull * (hp->n_head + hp->n_expert + 2 * nf + ne);
    return MR_OK;
}

static mr_status gptoss_layer(mr_context *c, uint32_t il, uint32_t n, mr_error *err)
{
    const mr_hparams *hp = &c->m->hp;
    const mr_layer *L = &c->m->layers[il];
    nn_rmsnorm_batch(c, c->h, c->x, L->attn_norm, n, hp->n_embd, hp->norm_eps);
    nn_self_attention(c, il, n, 0, NULL); /* biases, sinks, L->window */
    nn_rmsnorm_batch(c, c->h, c->x, L->ffn_norm, n, hp->n_embd, hp->norm_eps);
    return nn_ffn(c, il, n, err); /* router bias, expert biases, clamped SwiGLU */
}

const mr_arch mr_arch_gptoss = {
    .gguf_name = GPTOSS,
    .family = "gpt-oss",
    .routing = "router logits + bias, top-k, softmax over the k",
    .hparams = gptoss_hparams,
    .bind = gptoss_bind,
    .layer = gptoss_layer,
};
