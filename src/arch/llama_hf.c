/* llama_hf.c - converting MixtralForCausalLM, MistralForCausalLM and
 * LlamaForCausalLM checkpoints (GGUF "llama"), as convert_hf_to_gguf.py's
 * LlamaModel does: Q/K rows permuted for rope's NORM pair layout, Mixtral's
 * block_sparse_moe experts w1/w3/w2 stacked into ffn_{gate,up,down}_exps. */
#include "../convert_internal.h"

static mr_status llama_config(const char *file, json_object *root, mr_hf_config *hp,
                              mr_error *err)
{
    mr_status s;
    if ((s = mr_cfg_refuse_set(file, root, "rope_scaling", "RoPE scaling", err)) ||
        (s = mr_cfg_refuse_set(file, root, "attention_bias", "attention biases", err)))
        return s;
    return MR_OK;
}

static mr_status mixtral_config(const char *file, json_object *root, mr_hf_config *hp,
                                mr_error *err)
{
    mr_status s;
    if ((s = llama_config(file, root, hp, err)) ||
        (s = mr_cfg_u32(file, root, "num_local_experts", 1, 512, &hp->n_expert, err)) ||
        (s = mr_cfg_u32(file, root, "num_experts_per_tok", 1, 512, &hp->n_expert_used, err)))
        return s;
    return MR_OK;
}

static mr_status llama_tensors(mr_planner *pl, mr_error *err)
{
    const mr_hf_config *hp = &mr_planner_plan(pl)->hp;
    static const char *const w[3] = {"w1", "w3", "w2"}; /* gate, up, down */
    mr_status s;
    if ((s = mr_hf_embed(pl, err)))
        return s;
    for (uint32_t il = 0; il < hp->n_layer; il++) {
        if ((s = mr_hf_attention(pl, il, 1, err)) || (s = mr_hf_ffn_norm(pl, il, err)))
            return s;
        s = hp->n_expert
                ? mr_hf_experts(pl, il, "model.layers.%u.block_sparse_moe.gate.weight",
                                "model.layers.%u.block_sparse_moe.experts.%u.%s.weight", w, err)
                : mr_hf_dense_ffn(pl, il, err);
        if (s)
            return s;
    }
    return mr_hf_output(pl, err);
}

/* LlamaModel.set_gguf_parameters' order */
static void llama_hparams(const mr_plan *p, mr_gguf_writer *w)
{
    const mr_hf_config *hp = &p->hp;
    mr_gguf_kv_u32(w, "llama.block_count", hp->n_layer);
    mr_gguf_kv_u32(w, "llama.context_length", hp->n_ctx);
    mr_gguf_kv_u32(w, "llama.embedding_length", hp->n_embd);
    mr_gguf_kv_u32(w, "llama.feed_forward_length", hp->n_ff);
    mr_gguf_kv_u32(w, "llama.attention.head_count", hp->n_head);
    mr_gguf_kv_u32(w, "llama.attention.head_count_kv", hp->n_head_kv);
    mr_gguf_kv_f32(w, "llama.rope.freq_base", hp->rope_theta);
    mr_gguf_kv_f32(w, "llama.attention.layer_norm_rms_epsilon", hp->rms_eps);
    if (hp->n_expert) {
        mr_gguf_kv_u32(w, "llama.expert_count", hp->n_expert);
        mr_gguf_kv_u32(w, "llama.expert_used_count", hp->n_expert_used);
    }
    if (hp->has_head_dim) {
        mr_gguf_kv_u32(w, "llama.attention.key_length", hp->head_dim);
        mr_gguf_kv_u32(w, "llama.attention.value_length", hp->head_dim);
    }
    mr_gguf_kv_u32(w, "general.file_type", p->file_type);
    mr_gguf_kv_u32(w, "llama.vocab_size", hp->n_vocab);
    mr_gguf_kv_u32(w, "llama.rope.dimension_count", hp->head_dim);
    mr_gguf_kv_u32(w, "general.quantization_version", 2);
}

const mr_hf_family mr_hf_mixtral = {"MixtralForCausalLM", "llama", mixtral_config, llama_tensors,
                                    llama_hparams};
const mr_hf_family mr_hf_mistral = {"MistralForCausalLM", "llama", llama_config, llama_tensors,
                                    llama_hparams};
const mr_hf_family mr_hf_llama = {"LlamaForCausalLM", "llama", llama_config, llama_tensors,
                                  llama_hparams};
