/* gptoss_hf.c - converting GptOssForCausalLM checkpoints (GGUF "gpt-oss"),
 * as convert_hf_to_gguf.py's GptOssModel does:
 * - the experts stay in the released MXFP4 (mlp.experts.*_proj_blocks /
 *   _scales), repacked into ggml blocks byte for byte whatever --type says;
 *   gate_up_proj's interleaved rows (2j gate, 2j + 1 up) become
 *   ffn_gate_exps and ffn_up_exps, its bias likewise;
 * - q/k/v/o biases, sinks, router bias and expert biases F32; the rest of
 *   the matrices as --type asks; no Q/K permutation (rope NEOX);
 * - YaRN keys from rope_scaling.  The GGUF cannot say truncate: false nor
 *   layer_types: the runtime assumes both as released, so other settings
 *   are refused rather than silently misread. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../convert_internal.h"

#define GO "gpt-oss"

/* rope_scaling, checked: YaRN with truncate false (or absent), or none. */
static mr_status rope_cfg(const char *file, json_object *root, json_object **rs, mr_error *err)
{
    json_object *v;
    *rs = NULL;
    if (!json_object_object_get_ex(root, "rope_scaling", rs) ||
        json_object_get_type(*rs) == json_type_null) {
        *rs = NULL;
        return MR_OK;
    }
    if (json_object_get_type(*rs) != json_type_object ||
        !json_object_object_get_ex(*rs, "rope_type", &v) ||
        strcmp(json_object_get_string(v), "yarn"))
        return mr_fail(err, MR_EUNSUPPORTED, file, "rope_scaling", MR_NO_OFFSET,
                       "only YaRN scaling is supported for gpt-oss");
    if (mr_cfg_bool(*rs, "truncate", 0))
        return mr_fail(err, MR_EUNSUPPORTED, file, "rope_scaling.truncate", MR_NO_OFFSET,
                       "true is not supported: moerun runs gpt-oss with truncate false, as "
                       "released (--yarn-trunc gives llama.cpp's rounding)");
    return MR_OK;
}

static mr_status gptoss_config(const char *file, json_object *root, mr_hf_config *hp,
                               mr_error *err)
{
    mr_status s;
    json_object *v, *rs, *q;
    uint32_t window = 0;
    float limit = 7.0f;
    if ((s = mr_cfg_u32(file, root, "num_local_experts", 1, 512, &hp->n_expert, err)) ||
        (s = mr_cfg_u32(file, root, "num_experts_per_tok", 0, 512, &hp->n_expert_used, err)) ||
        (s = mr_cfg_u32(file, root, "sliding_window", 1, 1u << 24, &window, err)) ||
        (s = mr_cfg_f32(file, root, "swiglu_limit", &limit, err)) ||
        (s = rope_cfg(file, root, &rs, err)))
        return s;
    if (!hp->n_expert_used &&
        (s = mr_cfg_u32(file, root, "experts_per_token", 1, 512, &hp->n_expert_used, err)))
        return s;
    if (limit != 7.0f)
        return mr_fail(err, MR_EUNSUPPORTED, file, "swiglu_limit", MR_NO_OFFSET,
                       "%g is not supported: llama.cpp's gpt-oss clamps at 7", limit);
    if (!json_object_object_get_ex(root, "quantization_config", &q) ||
        !json_object_object_get_ex(q, "quant_method", &v) ||
        strcmp(json_object_get_string(v), "mxfp4"))
        return mr_fail(err, MR_EUNSUPPORTED, file, "quantization_config.quant_method",
                       MR_NO_OFFSET, "only the released MXFP4 experts are supported");
    /* the GGUF keeps the window, not the pattern: it must be llama.cpp's */
    if (json_object_object_get_ex(root, "layer_types", &v) &&
        json_object_get_type(v) == json_type_array) {
        if (json_object_array_length(v) != hp->n_layer)
            return mr_fail(err, MR_EFORMAT, file, "layer_types", MR_NO_OFFSET,
                           "%zu entries for %u layers", json_object_array_length(v), hp->n_layer);
        for (uint32_t il = 0; il < hp->n_layer; il++) {
            const char *lt = json_object_get_string(json_object_array_get_idx(v, il));
            const char *want = il % 2 == 0 ? "sliding_attention" : "full_attention";
            if (!lt || strcmp(lt, want))
                return mr_fail(err, MR_EUNSUPPORTED, file, "layer_types", MR_NO_OFFSET,
                               "layer %u is '%s': a GGUF can only say even layers slide", il,
                               lt ? lt : "?");
        }
    }
    hp->n_ff_exp = hp->n_ff;
    return MR_OK;
}

/* One checkpoint name, formatted. */
#define HF(...) (snprintf(hf[0], sizeof hf[0], __VA_ARGS__), hf)
#define G(...) (snprintf(g, sizeof g, __VA_ARGS__), g)

/* The experts of layer il: MXFP4 down, gate, up (llama.cpp writes them
 * before every other tensor). */
static mr_status experts(mr_planner *pl, uint32_t il, mr_error *err)
{
    const mr_hf_config *hp = &mr_planner_plan(pl)->hp;
    const uint32_t E = hp->n_expert;
    const uint64_t H = hp->n_embd, I = hp->n_ff_exp;
    char b[128], sc[128], g[96];
    mr_status s;
    snprintf(b, sizeof b, "model.layers.%u.mlp.experts.down_proj_blocks", il);
    snprintf(sc, sizeof sc, "model.layers.%u.mlp.experts.down_proj_scales", il);
    if ((s = mr_plan_add_mxfp4(pl, G("blk.%u.ffn_down_exps.weight", il), b, sc, E, H, I, 1, 0,
                               (int)il, MR_PART_DOWN, err)))
        return s;
    snprintf(b, sizeof b, "model.layers.%u.mlp.experts.gate_up_proj_blocks", il);
    snprintf(sc, sizeof sc, "model.layers.%u.mlp.experts.gate_up_proj_scales", il);
    if ((s = mr_plan_add_mxfp4(pl, G("blk.%u.ffn_gate_exps.weight", il), b, sc, E, I, H, 2, 0,
                               (int)il, MR_PART_GATE, err)))
        return s;
    return mr_plan_add_mxfp4(pl, G("blk.%u.ffn_up_exps.weight", il), b, sc, E, I, H, 2, 1,
                             (int)il, MR_PART_UP, err);
}

/* Layer il's other tensors, in the checkpoint's name order (as llama.cpp). */
static mr_status layer(mr_planner *pl, uint32_t il, mr_error *err)
{
    const mr_hf_config *hp = &mr_planner_plan(pl)->hp;
    const uint32_t E = hp->n_expert;
    const uint64_t H = hp->n_embd, I = hp->n_ff_exp, D = hp->head_dim;
    const uint64_t q = (uint64_t)hp->n_head * D, kv = (uint64_t)hp->n_head_kv * D;
    const int L = (int)il;
    const int N = MR_PART_NONE;
    char hf[1][128], g[96], gu[128];
    mr_status s;
    snprintf(gu, sizeof gu, "model.layers.%u.mlp.experts.gate_up_proj_bias", il);
    if ((s = mr_plan_add(pl, G("blk.%u.attn_norm.weight", il),
                         HF("model.layers.%u.input_layernorm.weight", il), 1, 0, H, 0, L, N, err)) ||
        (s = mr_plan_add(pl, G("blk.%u.ffn_down_exps.bias", il),
                         HF("model.layers.%u.mlp.experts.down_proj_bias", il), 1, E, H, 0, L, N,
                         err)) ||
        (s = mr_plan_add_strided(pl, G("blk.%u.ffn_gate_exps.bias", il), gu, 1, E, I, 1, 0, 2, 0,
                                 L, N, err)) ||
        (s = mr_plan_add_strided(pl, G("blk.%u.ffn_up_exps.bias", il), gu, 1, E, I, 1, 0, 2, 1,
                                 L, N, err)) ||
        (s = mr_plan_add(pl, G("blk.%u.ffn_gate_inp.bias", il),
                         HF("model.layers.%u.mlp.router.bias", il), 1, 0, E, 0, L, N, err)) ||
        (s = mr_plan_add(pl, G("blk.%u.ffn_gate_inp.weight", il),
                         HF("model.layers.%u.mlp.router.weight", il), 1, E, H, 0, L, N, err)) ||
        (s = mr_plan_add(pl, G("blk.%u.post_attention_norm.weight", il),
                         HF("model.layers.%u.post_attention_layernorm.weight", il), 1, 0, H, 0,
                         L, N, err)))
        return s;
    /* self_attn.{k,o,q}_proj, sinks, v_proj: bias before weight */
    static const struct {
        const char *hf, *gguf;
        int out; /* 0: q, 1: kv, 2: o */
    } att[4] = {{"k_proj", "attn_k", 1}, {"o_proj", "attn_output", 2}, {"q_proj", "attn_q", 0},
                {"v_proj", "attn_v", 1}};
    for (int i = 0; i < 4; i++) {
        const uint64_t rows = att[i].out == 0 ? q : att[i].out == 1 ? kv : H;
        const uint64_t cols = att[i].out == 2 ? q : H;
        if ((s = mr_plan_add(pl, G("blk.%u.%s.bias", il, att[i].gguf),
                             HF("model.layers.%u.self_attn.%s.bias", il, att[i].hf), 1, 0, rows,
                             0, L, N, err)) ||
            (s = mr_plan_add(pl, G("blk.%u.%s.weight", il, att[i].gguf),
                             HF("model.layers.%u.self_attn.%s.weight", il, att[i].hf), 1, rows,
                             cols, 0, L, N, err)))
            return s;
        if (i == 2 && (s = mr_plan_add(pl, G("blk.%u.attn_sinks.weight", il),
                                       HF("model.layers.%u.self_attn.sinks", il), 1, 0,
                                       hp->n_head, 0, L, N, err)))
            return s;
    }
    return MR_OK;
}

static mr_status gptoss_tensors(mr_planner *pl, mr_error *err)
{
    const mr_hf_config *hp = &mr_planner_plan(pl)->hp;
    char hf[1][128];
    mr_status s;
    for (uint32_t il = 0; il < hp->n_layer; il++)
        if ((s = experts(pl, il, err)))
            return s;
    if ((s = mr_plan_add(pl, "output.weight", HF("lm_head.weight"), 1, hp->n_vocab, hp->n_embd,
                         0, -1, MR_PART_NONE, err)) ||
        (s = mr_hf_embed(pl, err)))
        return s;
    for (uint32_t il = 0; il < hp->n_layer; il++)
        if ((s = layer(pl, il, err)))
            return s;
    return mr_plan_add(pl, "output_norm.weight", HF("model.norm.weight"), 1, 0, hp->n_embd, 0, -1,
                       MR_PART_NONE, err);
}
#undef G

/* A number of the config (rope_scaling's), or def. */
static double cfg_num(json_object *o, const char *key, double def)
{
    json_object *v;
    if (!o || !json_object_object_get_ex(o, key, &v) || json_object_get_type(v) == json_type_null)
        return def;
    return json_object_get_double(v);
}

/* GptOssModel.set_gguf_parameters' order (as the fixture's GGUF has it) */
static void gptoss_hparams(const mr_plan *p, mr_gguf_writer *w)
{
    const mr_hf_config *hp = &p->hp;
    json_object *rs = NULL;
    if (json_object_object_get_ex(p->config, "rope_scaling", &rs) &&
        json_object_get_type(rs) != json_type_object)
        rs = NULL;
    mr_gguf_kv_u32(w, GO ".block_count", hp->n_layer);
    mr_gguf_kv_u32(w, GO ".context_length", hp->n_ctx);
    mr_gguf_kv_u32(w, GO ".embedding_length", hp->n_embd);
    mr_gguf_kv_u32(w, GO ".feed_forward_length", hp->n_ff);
    mr_gguf_kv_u32(w, GO ".attention.head_count", hp->n_head);
    mr_gguf_kv_u32(w, GO ".attention.head_count_kv", hp->n_head_kv);
    if (rs) {
        mr_gguf_kv_str(w, GO ".rope.scaling.type", "yarn");
        mr_gguf_kv_f32(w, GO ".rope.scaling.factor", (float)cfg_num(rs, "factor", 1));
        mr_gguf_kv_u32(w, GO ".rope.scaling.original_context_length",
                       (uint32_t)cfg_num(rs, "original_max_position_embeddings", hp->n_ctx));
        mr_gguf_kv_f32(w, GO ".rope.scaling.yarn_beta_fast", (float)cfg_num(rs, "beta_fast", 32));
        mr_gguf_kv_f32(w, GO ".rope.scaling.yarn_beta_slow", (float)cfg_num(rs, "beta_slow", 1));
    }
    mr_gguf_kv_f32(w, GO ".rope.freq_base", hp->rope_theta);
    mr_gguf_kv_f32(w, GO ".attention.layer_norm_rms_epsilon", hp->rms_eps);
    mr_gguf_kv_u32(w, GO ".expert_count", hp->n_expert);
    mr_gguf_kv_u32(w, GO ".expert_used_count", hp->n_expert_used);
    mr_gguf_kv_u32(w, GO ".attention.key_length", hp->head_dim);
    mr_gguf_kv_u32(w, GO ".attention.value_length", hp->head_dim);
    /* MOSTLY_MXFP4_MOE whatever the other matrices are, as llama.cpp */
    mr_gguf_kv_u32(w, "general.file_type", 38);
    mr_gguf_kv_u32(w, GO ".attention.sliding_window",
                   (uint32_t)cfg_num(p->config, "sliding_window", 0));
    mr_gguf_kv_u32(w, GO ".expert_feed_forward_length", hp->n_ff_exp);
    mr_gguf_kv_u32(w, "general.quantization_version", 2);
}

const mr_hf_family mr_hf_gptoss = {"GptOssForCausalLM", GO, gptoss_config, gptoss_tensors,
                                   gptoss_hparams};
