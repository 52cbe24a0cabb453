/* llama.c - Llama, Mistral and Mixtral (GGUF architecture "llama").
 *
 *   h = rmsnorm(x) * attn_norm
 *   q, k, v = h Wq, h Wk, h Wv; rope on q, k in adjacent pairs (the GGUF
 *             converter permuted the Q/K rows for this NORM layout)
 *   x += softmax(q k^T / sqrt(d), causal) v  Wo      (GQA)
 *   h  = rmsnorm(x) * ffn_norm
 *   Mixtral: softmax(h Wr) -> top-k -> renormalise; dense: one "expert"
 *   x += sum_e w_e * down_e(silu(gate_e h) * up_e h)
 */
#include "arch.h"

#include "../nn/nn.h"

static mr_status llama_hparams(const mr_gguf *g, mr_hparams *hp, mr_error *err)
{
    mr_status s = mr_arch_common_hparams(g, "llama", hp, err);
    if (s)
        return s;
    hp->rope.mode = MR_ROPE_NORM;
    hp->router.mode = MR_ROUTE_SOFTMAX_TOPK;
    hp->router.norm_topk = 1;
    return MR_OK;
}

static mr_status llama_bind(mr_model *m, uint32_t il, mr_error *err)
{
    mr_status s = mr_bind_attn_gqa(m, il, err);
    return s ? s : mr_bind_ffn_moe(m, il, err);
}

static mr_status llama_layer(mr_context *c, uint32_t il, uint32_t n, mr_error *err)
{
    const mr_hparams *hp = &c->m->hp;
    const mr_layer *L = &c->m->layers[il];
    nn_rmsnorm_batch(c, c->h, c->x, L->attn_norm, n, hp->n_embd, hp->norm_eps);
    nn_self_attention(c, il, n, 0, NULL);
    nn_rmsnorm_batch(c, c->h, c->x, L->ffn_norm, n, hp->n_embd, hp->norm_eps);
    return nn_ffn(c, il, n, err);
}

const mr_arch mr_arch_llama = {
    .gguf_name = "llama",
    .family = "Llama / Mistral / Mixtral",
    .routing = "softmax over experts, top-k, renormalised",
    .hparams = llama_hparams,
    .bind = llama_bind,
    .layer = llama_layer,
};
