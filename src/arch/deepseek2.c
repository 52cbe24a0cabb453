/* deepseek2.c - DeepSeek-V2/V3/R1 and Kimi K2 (GGUF architecture "deepseek2").
 *
 *   h = rmsnorm(x) * attn_norm
 *   x += MLA(h)                      (src/nn/mla.c: low-rank q, compressed kv,
 *                                     rope on the rope part, latent cache)
 *   h = rmsnorm(x) * ffn_norm
 *   first leading_dense_block_count layers: x += down(silu(gate h) * up h)
 *   the others: s = sigmoid(h Wr) (V3, K2; softmax for V2); the experts are
 *     chosen with s + exp_probs_b in the topk_group best of n_group groups
 *     (a group's score: its two best), weighted by the UNBIASED s of the
 *     chosen, renormalised (expert_weights_norm) and x expert_weights_scale;
 *     x += sum_e w_e expert_e(h) + shared_expert(h)
 *
 * GGUF (llama.cpp's converter): attention.key_length / value_length are the
 * latent cache's row (kv_lora_rank + rope) and value (kv_lora_rank) sizes,
 * head_count_kv 1; key_length_mla / value_length_mla the per-head q.k and
 * value sizes; kv_b is split into attn_k_b (per head transposed: ne0 =
 * nope) and attn_v_b.  YaRN: cos/sin keep magnitude mscale(f, mscale) /
 * mscale(f, mscale_all_dim) (1 for V3 and K2) and the softmax scale is
 * (1 + 0.1 mscale_all_dim ln f)^2 / sqrt(key_length_mla), with mscale_all_dim
 * stored as 0.1 x itself in rope.scaling.yarn_log_multiplier.  MTP layers
 * (nextn_predict_layers) are not run.
 */
#include "arch.h"

#include <math.h>
#include <stdio.h>

#include "../nn/nn.h"

#define A "deepseek2"

/* HF's yarn_get_mscale */
static float yarn_mscale(float factor, float m)
{
    return factor <= 1.0f ? 1.0f : 0.1f * m * logf(factor) + 1.0f;
}

static mr_status deepseek2_hparams(const mr_gguf *g, mr_hparams *hp, mr_error *err)
{
    mr_status s = mr_arch_common_hparams(g, A, hp, err);
    uint32_t n_dense = 0, n_shared = 0, gating = 0, nextn = 0, ff_exp = 0;
    float log_mul = 0.0f, temp_scale = 0.0f;
    int norm_w = 0;
    if (s)
        return s;
    hp->router.scale = 0.0f;
    if ((s = mr_arch_u32(g, A, "attention.q_lora_rank", 0, &hp->n_lora_q, err)) ||
        (s = mr_arch_u32(g, A, "attention.kv_lora_rank", 1, &hp->n_lora_kv, err)) ||
        (s = mr_arch_u32(g, A, "attention.key_length_mla", 0, &hp->head_dim_mla_k, err)) ||
        (s = mr_arch_u32(g, A, "attention.value_length_mla", 0, &hp->head_dim_mla_v, err)) ||
        (s = mr_arch_u32(g, A, "leading_dense_block_count", 0, &n_dense, err)) ||
        (s = mr_arch_u32(g, A, "expert_feed_forward_length", 1, &ff_exp, err)) ||
        (s = mr_arch_u32(g, A, "expert_shared_count", 0, &n_shared, err)) ||
        (s = mr_arch_u32(g, A, "expert_gating_func", 0, &gating, err)) ||
        (s = mr_arch_u32(g, A, "expert_group_count", 0, &hp->router.n_group, err)) ||
        (s = mr_arch_u32(g, A, "expert_group_used_count", 0, &hp->router.topk_group, err)) ||
        (s = mr_arch_u32(g, A, "nextn_predict_layers", 0, &nextn, err)) ||
        (s = mr_arch_f32(g, A, "expert_weights_scale", 0, &hp->router.scale, err)) ||
        (s = mr_arch_bool(g, A, "expert_weights_norm", &norm_w, err)) ||
        (s = mr_arch_f32(g, A, "rope.scaling.yarn_log_multiplier", 0, &log_mul, err)) ||
        (s = mr_arch_f32(g, A, "attention.temperature_scale", 0, &temp_scale, err)))
        return s;
    if (!hp->head_dim_mla_k || !hp->head_dim_mla_v)
        return mr_arch_bad(g, err, A, "attention.key_length_mla",
                           "missing: this file has the old unsplit attn_kv_b layout; convert it "
                           "again with a current llama.cpp or moerun quantize");
    if (!hp->is_moe)
        return mr_arch_bad(g, err, A, "expert_count", "a DeepSeek model needs experts");
    if (hp->n_lora_kv < 1 || hp->n_lora_kv > 16384)
        return mr_arch_bad(g, err, A, "attention.kv_lora_rank", "%u is outside 1..16384",
                           hp->n_lora_kv);
    if (hp->n_lora_q > 65536)
        return mr_arch_bad(g, err, A, "attention.q_lora_rank", "%u is more than 65536",
                           hp->n_lora_q);
    if (hp->n_head_kv != 1)
        return mr_arch_bad(g, err, A, "attention.head_count_kv",
                           "%u: the latent cache is one kv head", hp->n_head_kv);
    if (hp->head_dim != hp->n_lora_kv + hp->rope.n_rot || hp->head_dim_v != hp->n_lora_kv)
        return mr_arch_bad(g, err, A, "attention.key_length",
                           "key/value lengths %u/%u are not kv_lora_rank + rope (%u + %u) and "
                           "kv_lora_rank",
                           hp->head_dim, hp->head_dim_v, hp->n_lora_kv, hp->rope.n_rot);
    if (hp->head_dim_mla_k <= hp->rope.n_rot || hp->head_dim_mla_k > 4096 ||
        hp->head_dim_mla_v < 1 || hp->head_dim_mla_v > 4096)
        return mr_arch_bad(g, err, A, "attention.key_length_mla",
                           "per-head sizes %u (q.k, with %u rope) and %u (value) are out of range",
                           hp->head_dim_mla_k, hp->rope.n_rot, hp->head_dim_mla_v);
    if (nextn >= hp->n_layer)
        return mr_arch_bad(g, err, A, "nextn_predict_layers", "%u of %u layers", nextn,
                           hp->n_layer);
    hp->n_layer -= nextn; /* the MTP layers come last and predict further ahead */
    if (n_dense > hp->n_layer)
        return mr_arch_bad(g, err, A, "leading_dense_block_count", "%u of %u layers", n_dense,
                           hp->n_layer);
    if (ff_exp < 1 || ff_exp > 1048576 || n_shared > 64)
        return mr_arch_bad(g, err, A, "expert_feed_forward_length",
                           "expert width %u or %u shared experts out of range", ff_exp, n_shared);
    if (temp_scale != 0.0f)
        return mr_arch_bad(g, err, A, "attention.temperature_scale",
                           "attention temperature tuning is not supported");
    hp->n_layer_dense = n_dense;
    hp->n_ff_dense = n_dense ? hp->n_ff : 0;
    hp->n_ff = ff_exp;
    hp->n_ff_shexp = ff_exp * n_shared;
    if (!hp->router.n_group)
        hp->router.n_group = 1;
    if (!hp->router.topk_group)
        hp->router.topk_group = hp->router.n_group;
    if (hp->n_expert % hp->router.n_group || hp->router.topk_group > hp->router.n_group ||
        (uint64_t)hp->router.topk_group * (hp->n_expert / hp->router.n_group) < hp->n_expert_used)
        return mr_arch_bad(g, err, A, "expert_group_count",
                           "%u experts in %u groups, %u kept, cannot give %u experts",
                           hp->n_expert, hp->router.n_group, hp->router.topk_group,
                           hp->n_expert_used);
    /* llama.cpp: 1 softmax, 2 sigmoid; absent in DeepSeek-V2 files: softmax */
    if (gating > 2)
        return mr_arch_bad(g, err, A, "expert_gating_func", "%u is not 1 (softmax) or 2 (sigmoid)",
                           gating);
    hp->router.mode = gating == 2 ? MR_ROUTE_SIGMOID : MR_ROUTE_SOFTMAX_TOPK;
    hp->router.norm_topk = norm_w;
    if (!isfinite(hp->router.scale) || hp->router.scale < 0.0f)
        return mr_arch_bad(g, err, A, "expert_weights_scale", "%g is not a scale",
                           hp->router.scale);
    if (hp->router.scale == 0.0f)
        hp->router.scale = 1.0f;
    hp->rope.mode = MR_ROPE_NORM;

    /* YaRN magnitude and softmax scale, as llama.cpp reads the converter's
     * keys (mscale assumed equal to mscale_all_dim except DeepSeek-V2's) */
    float qk_mscale = 1.0f;
    const float f = hp->rope.factor;
    if (hp->rope.scaling == MR_ROPE_SCALE_YARN) {
        const float m_all = log_mul / 0.1f;
        if (!isfinite(m_all) || m_all < 0.0f)
            return mr_arch_bad(g, err, A, "rope.scaling.yarn_log_multiplier", "%g is not valid",
                               log_mul);
        if (m_all != 0.0f) {
            /* llama.cpp takes mscale = mscale_all_dim: the magnitude is 1 */
            hp->rope.mscale = hp->rope.attn_factor;
            qk_mscale = hp->rope.attn_factor * yarn_mscale(f, m_all);
        } else {
            hp->rope.mscale = hp->rope.attn_factor * yarn_mscale(f, 1.0f);
            qk_mscale = hp->rope.attn_factor * yarn_mscale(f, 1.0f);
        }
    }
    hp->attn_scale = qk_mscale * qk_mscale / sqrtf((float)hp->head_dim_mla_k);
    hp->v_in_k = 1;
    hp->scratch_floats = nn_mla_scratch_floats(hp);
    hp->widest_in = hp->n_lora_q > hp->n_head * hp->head_dim_mla_v
                        ? hp->n_lora_q
                        : hp->n_head * hp->head_dim_mla_v;
    return MR_OK;
}

#define NAME(suffix) (snprintf(name, sizeof name, "blk.%u." suffix, il), name)

static mr_status bind_mla(mr_model *m, uint32_t il, mr_error *err)
{
    const mr_gguf *g = m->gguf;
    const mr_hparams *hp = &m->hp;
    mr_layer *L = &m->layers[il];
    const uint64_t E = hp->n_embd, H = hp->n_head, lkv = hp->n_lora_kv;
    const uint64_t dk = hp->head_dim_mla_k, dv = hp->head_dim_mla_v, nope = dk - hp->rope.n_rot;
    char name[96];
    mr_status s;
    if (mr_gguf_tensor_find(g, NAME("attn_kv_b.weight")) &&
        !mr_gguf_tensor_find(g, NAME("attn_k_b.weight")))
        return mr_fail(err, MR_EUNSUPPORTED, g->path, name, MR_NO_OFFSET,
                       "the unsplit kv_b of old conversions is not supported: convert again "
                       "to get attn_k_b and attn_v_b");
    if (hp->n_lora_q) {
        if ((s = mr_bind_tensor(g, NAME("attn_q_a.weight"), E, hp->n_lora_q, 0, 1, &L->wq_a,
                                err)) ||
            (s = mr_bind_f32(g, NAME("attn_q_a_norm.weight"), hp->n_lora_q, 1, &L->q_a_norm,
                             err)) ||
            (s = mr_bind_tensor(g, NAME("attn_q_b.weight"), hp->n_lora_q, H * dk, 0, 1, &L->wq_b,
                                err)))
            return s;
    } else if ((s = mr_bind_tensor(g, NAME("attn_q.weight"), E, H * dk, 0, 1, &L->wq, err))) {
        return s;
    }
    if ((s = mr_bind_f32(g, NAME("attn_norm.weight"), E, 1, &L->attn_norm, err)) ||
        (s = mr_bind_tensor(g, NAME("attn_kv_a_mqa.weight"), E, lkv + hp->rope.n_rot, 0, 1, &L->wkv_a,
                            err)) ||
        (s = mr_bind_f32(g, NAME("attn_kv_a_norm.weight"), lkv, 1, &L->kv_a_norm, err)) ||
        (s = mr_bind_tensor(g, NAME("attn_k_b.weight"), nope, lkv, H, 1, &L->wk_b, err)) ||
        (s = mr_bind_tensor(g, NAME("attn_v_b.weight"), lkv, dv, H, 1, &L->wv_b, err)) ||
        (s = mr_bind_tensor(g, NAME("attn_output.weight"), H * dv, E, 0, 1, &L->wo, err)))
        return s;
    L->use_rope = 1;
    m->resident_bytes += L->wq_a.nbytes + L->wq_b.nbytes + L->wq.nbytes + L->wkv_a.nbytes +
                         L->wk_b.nbytes + L->wv_b.nbytes + L->wo.nbytes +
                         4ull * (E + hp->n_lora_q + lkv);
    return MR_OK;
}

static mr_status deepseek2_bind(mr_model *m, uint32_t il, mr_error *err)
{
    const mr_gguf *g = m->gguf;
    const mr_hparams *hp = &m->hp;
    mr_layer *L = &m->layers[il];
    const uint64_t E = hp->n_embd;
    char name[96];
    mr_status s;
    if ((s = bind_mla(m, il, err)))
        return s;
    if (il < hp->n_layer_dense) {
        /* a leading dense layer: resident, never through the expert store */
        const uint64_t F = hp->n_ff_dense;
        if ((s = mr_bind_f32(g, NAME("ffn_norm.weight"), E, 1, &L->ffn_norm, err)) ||
            (s = mr_bind_tensor(g, NAME("ffn_gate.weight"), E, F, 0, 1, &L->sh_gate, err)) ||
            (s = mr_bind_tensor(g, NAME("ffn_up.weight"), E, F, 0, 1, &L->sh_up, err)) ||
            (s = mr_bind_tensor(g, NAME("ffn_down.weight"), F, E, 0, 1, &L->sh_down, err)))
            return s;
        L->moe = 0;
        m->resident_bytes += L->sh_gate.nbytes + L->sh_up.nbytes + L->sh_down.nbytes + 4 * E;
        return MR_OK;
    }
    if ((s = mr_bind_ffn_moe(m, il, err)) ||
        (s = mr_bind_f32(g, NAME("exp_probs_b.bias"), hp->n_expert, 0, &L->select_bias, err)))
        return s;
    if (hp->n_ff_shexp) {
        const uint64_t F = hp->n_ff_shexp;
        if ((s = mr_bind_tensor(g, NAME("ffn_gate_shexp.weight"), E, F, 0, 1, &L->sh_gate, err)) ||
            (s = mr_bind_tensor(g, NAME("ffn_up_shexp.weight"), E, F, 0, 1, &L->sh_up, err)) ||
            (s = mr_bind_tensor(g, NAME("ffn_down_shexp.weight"), F, E, 0, 1, &L->sh_down, err)))
            return s;
        m->resident_bytes += L->sh_gate.nbytes + L->sh_up.nbytes + L->sh_down.nbytes;
    }
    if (L->select_bias)
        m->resident_bytes += 4ull * hp->n_expert;
    return MR_OK;
}
#undef NAME

static mr_status deepseek2_layer(mr_context *c, uint32_t il, uint32_t n, mr_error *err)
{
    const mr_hparams *hp = &c->m->hp;
    const mr_layer *L = &c->m->layers[il];
    mr_status s;
    nn_rmsnorm_batch(c, c->h, c->x, L->attn_norm, n, hp->n_embd, hp->norm_eps);
    if ((s = nn_mla_attention(c, il, n, err)))
        return s;
    nn_rmsnorm_batch(c, c->h, c->x, L->ffn_norm, n, hp->n_embd, hp->norm_eps);
    return nn_ffn(c, il, n, err);
}

const mr_arch mr_arch_deepseek2 = {
    .gguf_name = A,
    .family = "DeepSeek-V2/V3 / Kimi K2 (MLA)",
    .routing = "sigmoid scores (softmax for V2), bias for selection only, group-limited "
               "top-k, renormalised x scale; one shared expert; leading dense layers",
    .hparams = deepseek2_hparams,
    .bind = deepseek2_bind,
    .layer = deepseek2_layer,
};
