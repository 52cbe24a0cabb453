/* qwen3moe.c - Qwen3-MoE (Qwen3-30B-A3B, Qwen3-235B-A22B; GGUF "qwen3moe").
 *
 *   h = rmsnorm(x) * attn_norm
 *   q, k, v = h Wq, h Wk, h Wv      (head_dim from key_length: n_head *
 *                                    head_dim need not be n_embd)
 *   q_h, k_h = rmsnorm(q_h) * q_norm, rmsnorm(k_h) * k_norm   per head, BEFORE rope
 *   rope NEOX (halves) on q, k;  x += attention(q, k, v) Wo   (GQA)
 *   h = rmsnorm(x) * ffn_norm
 *   p = softmax(h Wr); top-k; w = p_k / sum p_k   (norm_topk_prob)
 *   x += sum_e w_e * down_e(silu(gate_e h) * up_e h)
 * Every layer is MoE; experts are expert_feed_forward_length wide.
 */
#include "arch.h"

#include <stdio.h>

#include "../nn/nn.h"

static mr_status qwen3moe_hparams(const mr_gguf *g, mr_hparams *hp, mr_error *err)
{
    mr_status s = mr_arch_common_hparams(g, "qwen3moe", hp, err);
    if (s)
        return s;
    if (!hp->is_moe)
        return mr_arch_bad(g, err, "qwen3moe", "expert_count", "a Qwen3-MoE needs experts");
    if ((s = mr_arch_u32(g, "qwen3moe", "expert_feed_forward_length", 1, &hp->n_ff, err)))
        return s;
    if (hp->n_ff < 1 || hp->n_ff > 1048576)
        return mr_arch_bad(g, err, "qwen3moe", "expert_feed_forward_length",
                           "%u is outside 1..1048576", hp->n_ff);
    hp->rope.mode = MR_ROPE_NEOX;
    hp->router.mode = MR_ROUTE_SOFTMAX_TOPK;
    hp->router.norm_topk = 1;
    return MR_OK;
}

static mr_status qwen3moe_bind(mr_model *m, uint32_t il, mr_error *err)
{
    mr_layer *L = &m->layers[il];
    const uint32_t hd = m->hp.head_dim;
    char qn[64], kn[64];
    snprintf(qn, sizeof qn, "blk.%u.attn_q_norm.weight", il);
    snprintf(kn, sizeof kn, "blk.%u.attn_k_norm.weight", il);
    mr_status s;
    if ((s = mr_bind_attn_gqa(m, il, err)) ||
        (s = mr_bind_f32(m->gguf, qn, hd, 1, &L->q_norm, err)) ||
        (s = mr_bind_f32(m->gguf, kn, hd, 1, &L->k_norm, err)))
        return s;
    m->resident_bytes += 8ull * hd;
    return mr_bind_ffn_moe(m, il, err);
}

static mr_status qwen3moe_layer(mr_context *c, uint32_t il, uint32_t n, mr_error *err)
{
    const mr_hparams *hp = &c->m->hp;
    const mr_layer *L = &c->m->layers[il];
    nn_rmsnorm_batch(c, c->h, c->x, L->attn_norm, n, hp->n_embd, hp->norm_eps);
    nn_self_attention(c, il, n, 0, NULL); /* q/k norms: L->q_norm, L->k_norm */
    nn_rmsnorm_batch(c, c->h, c->x, L->ffn_norm, n, hp->n_embd, hp->norm_eps);
    return nn_ffn(c, il, n, err);
}

const mr_arch mr_arch_qwen3moe = {
    .gguf_name = "qwen3moe",
    .family = "Qwen3-MoE",
    .routing = "softmax over experts, top-k, renormalised (norm_topk_prob)",
    .hparams = qwen3moe_hparams,
    .bind = qwen3moe_bind,
    .layer = qwen3moe_layer,
};
