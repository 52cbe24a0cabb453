/* qwen3moe_hf.c - converting Qwen3MoeForCausalLM checkpoints (GGUF
 * "qwen3moe"), as convert_hf_to_gguf.py's Qwen3MoeModel does: no Q/K
 * permutation (rope NEOX), per-head q/k norms, experts
 * mlp.experts.E.{gate,up,down}_proj stacked, router mlp.gate. */
#include <stdio.h>

#include "../convert_internal.h"

static mr_status qwen3moe_config(const char *file, json_object *root, mr_hf_config *hp,
                                 mr_error *err)
{
    mr_status s;
    json_object *v;
    if ((s = mr_cfg_refuse_set(file, root, "rope_scaling", "RoPE scaling", err)) ||
        (s = mr_cfg_refuse_set(file, root, "attention_bias", "attention biases", err)) ||
        (s = mr_cfg_refuse_set(file, root, "use_sliding_window", "sliding-window attention", err)) ||
        (s = mr_cfg_u32(file, root, "num_experts", 1, 512, &hp->n_expert, err)) ||
        (s = mr_cfg_u32(file, root, "num_experts_per_tok", 1, 512, &hp->n_expert_used, err)) ||
        (s = mr_cfg_u32(file, root, "moe_intermediate_size", 1, 1u << 24, &hp->n_ff_exp, err)))
        return s;
    if (!mr_cfg_bool(root, "norm_topk_prob", 1))
        return mr_fail(err, MR_EUNSUPPORTED, file, "norm_topk_prob", MR_NO_OFFSET,
                       "false is not supported: llama.cpp's qwen3moe always renormalises");
    uint32_t step = 1;
    if ((s = mr_cfg_u32(file, root, "decoder_sparse_step", 0, 1u << 16, &step, err)))
        return s;
    if (step > 1 || (json_object_object_get_ex(root, "mlp_only_layers", &v) &&
                     json_object_get_type(v) == json_type_array && json_object_array_length(v)))
        return mr_fail(err, MR_EUNSUPPORTED, file, "mlp_only_layers", MR_NO_OFFSET,
                       "dense layers in a Qwen3-MoE are not supported (llama.cpp has none)");
    return MR_OK;
}

static mr_status qwen3moe_tensors(mr_planner *pl, mr_error *err)
{
    const mr_hf_config *hp = &mr_planner_plan(pl)->hp;
    static const char *const w[3] = {"gate_proj", "up_proj", "down_proj"};
    char hf[1][128], g[96];
    mr_status s;
    if ((s = mr_hf_embed(pl, err)))
        return s;
    for (uint32_t il = 0; il < hp->n_layer; il++) {
        if ((s = mr_hf_attention(pl, il, 0, err)))
            return s;
        static const char *const qk[2][2] = {{"q_norm", "attn_q_norm.weight"},
                                             {"k_norm", "attn_k_norm.weight"}};
        for (int i = 0; i < 2; i++) {
            snprintf(hf[0], sizeof hf[0], "model.layers.%u.self_attn.%s.weight", il, qk[i][0]);
            snprintf(g, sizeof g, "blk.%u.%s", il, qk[i][1]);
            if ((s = mr_plan_add(pl, g, hf, 1, 0, hp->head_dim, 0, (int)il, MR_PART_NONE, err)))
                return s;
        }
        if ((s = mr_hf_ffn_norm(pl, il, err)) ||
            (s = mr_hf_experts(pl, il, "model.layers.%u.mlp.gate.weight",
                               "model.layers.%u.mlp.experts.%u.%s.weight", w, err)))
            return s;
    }
    return mr_hf_output(pl, err);
}

/* Qwen3MoeModel.set_gguf_parameters' order (as the fixture's GGUF has it) */
static void qwen3moe_hparams(const mr_plan *p, mr_gguf_writer *w)
{
    const mr_hf_config *hp = &p->hp;
    mr_gguf_kv_u32(w, "qwen3moe.block_count", hp->n_layer);
    mr_gguf_kv_u32(w, "qwen3moe.context_length", hp->n_ctx);
    mr_gguf_kv_u32(w, "qwen3moe.embedding_length", hp->n_embd);
    mr_gguf_kv_u32(w, "qwen3moe.feed_forward_length", hp->n_ff);
    mr_gguf_kv_u32(w, "qwen3moe.attention.head_count", hp->n_head);
    mr_gguf_kv_u32(w, "qwen3moe.attention.head_count_kv", hp->n_head_kv);
    mr_gguf_kv_f32(w, "qwen3moe.rope.freq_base", hp->rope_theta);
    mr_gguf_kv_f32(w, "qwen3moe.attention.layer_norm_rms_epsilon", hp->rms_eps);
    mr_gguf_kv_u32(w, "qwen3moe.expert_count", hp->n_expert);
    mr_gguf_kv_u32(w, "qwen3moe.expert_used_count", hp->n_expert_used);
    mr_gguf_kv_u32(w, "qwen3moe.attention.key_length", hp->head_dim);
    mr_gguf_kv_u32(w, "qwen3moe.attention.value_length", hp->head_dim);
    mr_gguf_kv_u32(w, "general.file_type", p->file_type);
    mr_gguf_kv_u32(w, "qwen3moe.expert_feed_forward_length", hp->n_ff_exp);
    mr_gguf_kv_u32(w, "general.quantization_version", 2);
}

const mr_hf_family mr_hf_qwen3moe = {"Qwen3MoeForCausalLM", "qwen3moe", qwen3moe_config,
                                     qwen3moe_tensors, qwen3moe_hparams};
