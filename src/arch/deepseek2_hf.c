/* deepseek2_hf.c - converting DeepseekV3ForCausalLM (DeepSeek-V3/R1, Kimi
 * K2) and DeepseekV2ForCausalLM checkpoints to GGUF "deepseek2", as
 * convert_hf_to_gguf.py's DeepseekV2Model does:
 *   - the release's FP8 weights (quantization_config fp8, F8_E4M3 with
 *     128x128 weight_scale_inv blocks) are dequantized while reading
 *     (src/convert.c, src/quantize_pool.c); BF16 checkpoints read as usual;
 *   - kv_b_proj [heads x (nope + v), kv_lora] is split per head into
 *     attn_k_b (its nope rows, transposed: ne [nope, kv_lora, heads]) and
 *     attn_v_b (its v rows: ne [kv_lora, v, heads]);
 *   - the first first_k_dense_replace layers have a dense FFN, the others
 *     stacked routed experts, the router (F32), e_score_correction_bias as
 *     exp_probs_b.bias and the shared experts;
 *   - the multi-token-prediction layers (num_nextn_predict_layers, after
 *     the last decoder layer) are dropped;
 *   - head_count_kv is written as 1 and key/value_length as the latent
 *     row (kv_lora + rope) and kv_lora, the per-head sizes under *_mla,
 *     mscale_all_dim as rope.scaling.yarn_log_multiplier = 0.1 x it.
 * Tensors come in the order llama.cpp writes a layer's (its HF names
 * sorted), token_embd first and the output last. */
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "../convert_internal.h"

#define A "deepseek2"

/* The DeepSeek members of config.json. */
typedef struct {
    uint32_t q_lora, kv_lora, nope, rope, v, n_dense, n_shared, n_group, topk_group, nextn;
    uint32_t orig_ctx;
    int has_q_lora, has_group, has_topk_group, has_scale, norm_topk, gating; /* 0 none, 1 softmax, 2 sigmoid */
    int yarn, has_beta_fast, has_beta_slow, has_mscale_all;
    float scale, factor, beta_fast, beta_slow, mscale_all;
} ds_config;

static int has(json_object *o, const char *k)
{
    json_object *v;
    return json_object_object_get_ex(o, k, &v) && json_object_get_type(v) != json_type_null;
}

/* Read and check config.json's DeepSeek members (root: the whole file). */
static mr_status ds_read(const char *file, json_object *root, ds_config *d, mr_error *err)
{
    mr_status s;
    json_object *v, *rs;
    memset(d, 0, sizeof *d);
    d->kv_lora = 512;
    d->has_q_lora = has(root, "q_lora_rank");
    d->has_group = has(root, "n_group");
    d->has_topk_group = has(root, "topk_group");
    d->has_scale = has(root, "routed_scaling_factor");
    d->norm_topk = mr_cfg_bool(root, "norm_topk_prob", 0);
    if ((s = mr_cfg_refuse_set(file, root, "attention_bias", "attention biases", err)) ||
        (s = mr_cfg_u32(file, root, "q_lora_rank", 0, 1u << 16, &d->q_lora, err)) ||
        (s = mr_cfg_u32(file, root, "kv_lora_rank", 0, 1u << 16, &d->kv_lora, err)) ||
        (s = mr_cfg_u32(file, root, "qk_nope_head_dim", 1, 4096, &d->nope, err)) ||
        (s = mr_cfg_u32(file, root, "qk_rope_head_dim", 1, 4096, &d->rope, err)) ||
        (s = mr_cfg_u32(file, root, "v_head_dim", 1, 4096, &d->v, err)) ||
        (s = mr_cfg_u32(file, root, "first_k_dense_replace", 0, 1u << 12, &d->n_dense, err)) ||
        (s = mr_cfg_u32(file, root, "n_shared_experts", 0, 64, &d->n_shared, err)) ||
        (s = mr_cfg_u32(file, root, "n_group", 0, 512, &d->n_group, err)) ||
        (s = mr_cfg_u32(file, root, "topk_group", 0, 512, &d->topk_group, err)) ||
        (s = mr_cfg_u32(file, root, "num_nextn_predict_layers", 0, 64, &d->nextn, err)) ||
        (s = mr_cfg_f32(file, root, "routed_scaling_factor", &d->scale, err)))
        return s;
    if (d->has_q_lora && !d->q_lora)
        return mr_fail(err, MR_EFORMAT, file, "q_lora_rank", MR_NO_OFFSET, "0 (use null)");
    if (!d->kv_lora)
        return mr_fail(err, MR_EFORMAT, file, "kv_lora_rank", MR_NO_OFFSET, "must be positive");
    if (json_object_object_get_ex(root, "scoring_func", &v) &&
        json_object_get_type(v) != json_type_null) {
        const char *f = json_object_get_string(v);
        d->gating = !strcmp(f, "sigmoid") ? 2 : !strcmp(f, "softmax") ? 1 : -1;
        if (d->gating < 0)
            return mr_fail(err, MR_EUNSUPPORTED, file, "scoring_func", MR_NO_OFFSET,
                           "'%s' is not supported (sigmoid, softmax)", f);
    }
    if (json_object_object_get_ex(root, "topk_method", &v) &&
        json_object_get_type(v) == json_type_string &&
        !strcmp(json_object_get_string(v), "group_limited_greedy"))
        /* DeepSeek-V2's group score is the group's best expert; llama.cpp
         * (and moerun) score groups by their two best */
        return mr_fail(err, MR_EUNSUPPORTED, file, "topk_method", MR_NO_OFFSET,
                       "group_limited_greedy (a group's best expert) is not supported; "
                       "noaux_tc and greedy are");
    if (json_object_object_get_ex(root, "rope_scaling", &rs) &&
        json_object_get_type(rs) == json_type_object) {
        json_object *t;
        const char *type = (json_object_object_get_ex(rs, "rope_type", &t) ||
                            json_object_object_get_ex(rs, "type", &t))
                               ? json_object_get_string(t)
                               : "";
        if (strcmp(type, "yarn"))
            return mr_fail(err, MR_EUNSUPPORTED, file, "rope_scaling", MR_NO_OFFSET,
                           "type '%s' is not supported (yarn is)", type);
        if (has(rs, "attention_factor") || has(rs, "attn_factor") ||
            has(rs, "extrapolation_factor"))
            return mr_fail(err, MR_EUNSUPPORTED, file, "rope_scaling", MR_NO_OFFSET,
                           "YaRN attention or extrapolation factors are not supported");
        d->yarn = 1;
        d->has_beta_fast = has(rs, "beta_fast");
        d->has_beta_slow = has(rs, "beta_slow");
        d->has_mscale_all = has(rs, "mscale_all_dim");
        float mscale = 0.0f;
        if ((s = mr_cfg_f32(file, rs, "factor", &d->factor, err)) ||
            (s = mr_cfg_u32(file, rs, "original_max_position_embeddings", 1, UINT32_MAX,
                            &d->orig_ctx, err)) ||
            (s = mr_cfg_f32(file, rs, "beta_fast", &d->beta_fast, err)) ||
            (s = mr_cfg_f32(file, rs, "beta_slow", &d->beta_slow, err)) ||
            (s = mr_cfg_f32(file, rs, "mscale", &mscale, err)) ||
            (s = mr_cfg_f32(file, rs, "mscale_all_dim", &d->mscale_all, err)))
            return s;
        if (!d->factor)
            return mr_fail(err, MR_EFORMAT, file, "rope_scaling.factor", MR_NO_OFFSET, "missing");
        /* llama.cpp does not store mscale and assumes it equals mscale_all_dim */
        if (has(rs, "mscale") && mscale != (d->has_mscale_all ? d->mscale_all : 1.0f))
            return mr_fail(err, MR_EUNSUPPORTED, file, "rope_scaling.mscale", MR_NO_OFFSET,
                           "%g differs from mscale_all_dim, which llama.cpp cannot express", mscale);
    }
    return MR_OK;
}

static mr_status ds_config_hook(const char *file, json_object *root, mr_hf_config *hp,
                                mr_error *err)
{
    ds_config d;
    mr_status s;
    if ((s = ds_read(file, root, &d, err)) ||
        (s = mr_cfg_u32(file, root, "n_routed_experts", 1, 512, &hp->n_expert, err)) ||
        (s = mr_cfg_u32(file, root, "num_experts_per_tok", 1, 512, &hp->n_expert_used, err)) ||
        (s = mr_cfg_u32(file, root, "moe_intermediate_size", 1, 1u << 24, &hp->n_ff_exp, err)))
        return s;
    if (d.n_dense > hp->n_layer)
        return mr_fail(err, MR_EFORMAT, file, "first_k_dense_replace", MR_NO_OFFSET,
                       "%u of %u layers", d.n_dense, hp->n_layer);
    if (d.has_group && (!d.n_group || hp->n_expert % d.n_group ||
                        (d.has_topk_group && (d.topk_group > d.n_group || !d.topk_group))))
        return mr_fail(err, MR_EFORMAT, file, "n_group", MR_NO_OFFSET,
                       "%u groups (%u kept) do not divide %u experts", d.n_group, d.topk_group,
                       hp->n_expert);
    hp->head_dim = d.nope + d.rope; /* the per-head q.k size (the cache row is kv_lora + rope) */
    return MR_OK;
}

#define G(...) (snprintf(g, sizeof g, __VA_ARGS__), g)
#define HF(...) (snprintf(hf[0], sizeof hf[0], __VA_ARGS__), hf)

/* One 2-D or 1-D tensor of layer il (rows 0: a vector). */
static mr_status add1(mr_planner *pl, uint32_t il, const char *gguf, const char *hf_suffix,
                      uint64_t rows, uint64_t cols, mr_error *err)
{
    char hf[1][128], g[96];
    return mr_plan_add(pl, G("blk.%u.%s", il, gguf), HF("model.layers.%u.%s", il, hf_suffix), 1,
                       rows, cols, 0, (int)il, MR_PART_NONE, err);
}

static mr_status ds_attention(mr_planner *pl, const ds_config *d, uint32_t il, mr_error *err)
{
    const mr_hf_config *hp = &mr_planner_plan(pl)->hp;
    const uint64_t E = hp->n_embd, H = hp->n_head, dk = d->nope + d->rope;
    char hf[1][128], g[96];
    mr_status s;
    if ((s = add1(pl, il, "attn_kv_a_norm.weight", "self_attn.kv_a_layernorm.weight", 0,
                  d->kv_lora, err)) ||
        (s = add1(pl, il, "attn_kv_a_mqa.weight", "self_attn.kv_a_proj_with_mqa.weight",
                  d->kv_lora + d->rope, E, err)))
        return s;
    HF("model.layers.%u.self_attn.kv_b_proj.weight", il);
    if ((s = mr_plan_add_head_split(pl, G("blk.%u.attn_k_b.weight", il), hf[0], (uint32_t)H,
                                    d->nope + d->v, 0, d->nope, d->kv_lora, 1, (int)il, err)) ||
        (s = mr_plan_add_head_split(pl, G("blk.%u.attn_v_b.weight", il), hf[0], (uint32_t)H,
                                    d->nope + d->v, d->nope, d->v, d->kv_lora, 0, (int)il, err)) ||
        (s = add1(pl, il, "attn_output.weight", "self_attn.o_proj.weight", E, H * d->v, err)))
        return s;
    if (!d->has_q_lora)
        return add1(pl, il, "attn_q.weight", "self_attn.q_proj.weight", H * dk, E, err);
    if ((s = add1(pl, il, "attn_q_a_norm.weight", "self_attn.q_a_layernorm.weight", 0, d->q_lora,
                  err)) ||
        (s = add1(pl, il, "attn_q_a.weight", "self_attn.q_a_proj.weight", d->q_lora, E, err)))
        return s;
    return add1(pl, il, "attn_q_b.weight", "self_attn.q_b_proj.weight", H * dk, d->q_lora, err);
}

static mr_status ds_ffn(mr_planner *pl, const ds_config *d, uint32_t il, mr_error *err)
{
    const mr_hf_config *hp = &mr_planner_plan(pl)->hp;
    const uint64_t E = hp->n_embd;
    static const char *const w[3] = {"down_proj", "gate_proj", "up_proj"}; /* HF name order */
    static const int part[3] = {MR_PART_DOWN, MR_PART_GATE, MR_PART_UP};
    char g[96];
    mr_status s = MR_OK;
    if (il < d->n_dense) {
        static const char *const gn[3] = {"ffn_down.weight", "ffn_gate.weight", "ffn_up.weight"};
        const uint64_t F = hp->n_ff;
        for (int i = 0; i < 3 && !s; i++) {
            char suf[64];
            snprintf(suf, sizeof suf, "mlp.%s.weight", w[i]);
            s = add1(pl, il, gn[i], suf, i == 0 ? E : F, i == 0 ? F : E, err);
        }
        return s;
    }
    static const char *const gx[3] = {"ffn_down_exps.weight", "ffn_gate_exps.weight",
                                      "ffn_up_exps.weight"};
    const uint64_t F = hp->n_ff_exp, FS = (uint64_t)hp->n_ff_exp * d->n_shared;
    char (*hf)[128] = calloc(hp->n_expert, sizeof *hf);
    if (!hf)
        return mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory");
    for (int i = 0; i < 3 && !s; i++) {
        for (uint32_t e = 0; e < hp->n_expert; e++)
            snprintf(hf[e], sizeof hf[e], "model.layers.%u.mlp.experts.%u.%s.weight", il, e, w[i]);
        s = mr_plan_add(pl, G("blk.%u.%s", il, gx[i]), hf, hp->n_expert, i == 0 ? E : F,
                        i == 0 ? F : E, 0, (int)il, part[i], err);
    }
    free(hf);
    if (s || (s = add1(pl, il, "exp_probs_b.bias", "mlp.gate.e_score_correction_bias", 0,
                       hp->n_expert, err)) ||
        (s = add1(pl, il, "ffn_gate_inp.weight", "mlp.gate.weight", hp->n_expert, E, err)))
        return s;
    if (!d->n_shared)
        return MR_OK;
    static const char *const gs[3] = {"ffn_down_shexp.weight", "ffn_gate_shexp.weight",
                                      "ffn_up_shexp.weight"};
    for (int i = 0; i < 3 && !s; i++) {
        char suf[64];
        snprintf(suf, sizeof suf, "mlp.shared_experts.%s.weight", w[i]);
        s = add1(pl, il, gs[i], suf, i == 0 ? E : FS, i == 0 ? FS : E, err);
    }
    return s;
}

static mr_status ds_tensors(mr_planner *pl, mr_error *err)
{
    mr_plan *p = mr_planner_plan(pl);
    const mr_hf_config *hp = &p->hp;
    ds_config d;
    mr_status s;
    if ((s = ds_read("config.json", p->config, &d, err)) || (s = mr_hf_embed(pl, err)))
        return s;
    for (uint32_t il = 0; il < hp->n_layer; il++) {
        if ((s = add1(pl, il, "attn_norm.weight", "input_layernorm.weight", 0, hp->n_embd, err)) ||
            (s = ds_ffn(pl, &d, il, err)) ||
            (s = add1(pl, il, "ffn_norm.weight", "post_attention_layernorm.weight", 0, hp->n_embd,
                      err)) ||
            (s = ds_attention(pl, &d, il, err)))
            return s;
    }
    for (uint32_t k = 0; k < d.nextn; k++) { /* MTP modules: not converted, as llama.cpp */
        char pre[64];
        snprintf(pre, sizeof pre, "model.layers.%u.", hp->n_layer + k);
        mr_plan_drop_prefix(pl, pre);
    }
    return mr_hf_output(pl, err);
}

/* DeepseekV2Model.set_gguf_parameters' order (as the fixture's GGUF has it) */
static void ds_hparams(const mr_plan *p, mr_gguf_writer *w)
{
    const mr_hf_config *hp = &p->hp;
    ds_config d;
    mr_error err;
    if (ds_read("config.json", p->config, &d, &err))
        return; /* checked when planning */
    mr_gguf_kv_u32(w, A ".block_count", hp->n_layer);
    mr_gguf_kv_u32(w, A ".context_length", hp->n_ctx);
    mr_gguf_kv_u32(w, A ".embedding_length", hp->n_embd);
    mr_gguf_kv_u32(w, A ".feed_forward_length", hp->n_ff);
    mr_gguf_kv_u32(w, A ".attention.head_count", hp->n_head);
    mr_gguf_kv_u32(w, A ".attention.head_count_kv", 1); /* the latent cache is one kv head */
    if (d.yarn) {
        mr_gguf_kv_str(w, A ".rope.scaling.type", "yarn");
        mr_gguf_kv_f32(w, A ".rope.scaling.factor", d.factor);
        mr_gguf_kv_u32(w, A ".rope.scaling.original_context_length", d.orig_ctx);
        if (d.has_beta_fast)
            mr_gguf_kv_f32(w, A ".rope.scaling.yarn_beta_fast", d.beta_fast);
        if (d.has_beta_slow)
            mr_gguf_kv_f32(w, A ".rope.scaling.yarn_beta_slow", d.beta_slow);
    }
    mr_gguf_kv_f32(w, A ".rope.freq_base", hp->rope_theta);
    mr_gguf_kv_f32(w, A ".attention.layer_norm_rms_epsilon", hp->rms_eps);
    mr_gguf_kv_u32(w, A ".expert_count", hp->n_expert);
    mr_gguf_kv_u32(w, A ".expert_used_count", hp->n_expert_used);
    if (d.has_group)
        mr_gguf_kv_u32(w, A ".expert_group_count", d.n_group);
    if (d.has_topk_group)
        mr_gguf_kv_u32(w, A ".expert_group_used_count", d.topk_group);
    if (d.gating)
        mr_gguf_kv_u32(w, A ".expert_gating_func", (uint32_t)d.gating);
    mr_gguf_kv_u32(w, "general.file_type", p->file_type);
    mr_gguf_kv_u32(w, A ".leading_dense_block_count", d.n_dense);
    mr_gguf_kv_u32(w, A ".vocab_size", hp->n_vocab);
    if (d.has_q_lora)
        mr_gguf_kv_u32(w, A ".attention.q_lora_rank", d.q_lora);
    mr_gguf_kv_u32(w, A ".attention.kv_lora_rank", d.kv_lora);
    mr_gguf_kv_u32(w, A ".attention.key_length", d.kv_lora + d.rope);
    mr_gguf_kv_u32(w, A ".attention.value_length", d.kv_lora);
    mr_gguf_kv_u32(w, A ".attention.key_length_mla", d.nope + d.rope);
    mr_gguf_kv_u32(w, A ".attention.value_length_mla", d.v);
    mr_gguf_kv_u32(w, A ".expert_feed_forward_length", hp->n_ff_exp);
    mr_gguf_kv_u32(w, A ".expert_shared_count", d.n_shared);
    if (d.has_scale)
        mr_gguf_kv_f32(w, A ".expert_weights_scale", d.scale);
    if (d.norm_topk)
        mr_gguf_kv_bool(w, A ".expert_weights_norm", 1);
    mr_gguf_kv_u32(w, A ".rope.dimension_count", d.rope);
    if (d.has_mscale_all)
        mr_gguf_kv_f32(w, A ".rope.scaling.yarn_log_multiplier", (float)(0.1 * (double)d.mscale_all));
    mr_gguf_kv_u32(w, "general.quantization_version", 2);
}

const mr_hf_family mr_hf_deepseek3 = {"DeepseekV3ForCausalLM", A, ds_config_hook, ds_tensors,
                                      ds_hparams};
const mr_hf_family mr_hf_deepseek2 = {"DeepseekV2ForCausalLM", A, ds_config_hook, ds_tensors,
                                      ds_hparams};
