/* llama4_hf.c - converting Llama4ForConditionalGeneration (and
 * Llama4ForCausalLM) checkpoints to GGUF "llama4", as convert_hf_to_gguf.py's
 * Llama4Model does, text part only:
 *   - the text model's keys live in config.json's text_config;
 *   - feed_forward_length is intermediate_size_mlp (the dense FFN),
 *     expert_feed_forward_length intermediate_size (experts, shared expert);
 *   - experts.gate_up_proj [E, H, 2I] (x @ W) is split at I into gate and
 *     up and transposed into ffn_{gate,up}_exps (ne [H, I, E]);
 *     experts.down_proj [E, I, H] is transposed into ffn_down_exps;
 *   - no Q/K permutation (HF's complex rope is llama.cpp's NORM layout);
 *   - rope_scaling llama3 becomes rope_freqs.weight, the per-pair factors
 *     LlamaModel.generate_extra_tensors computes (in float32, as torch);
 *   - the vision tower and projector are dropped;
 *   - tensors come in the order llama.cpp writes them: rope_freqs, then
 *     shard by shard, by checkpoint name.
 * llama.cpp fixes what the config could say otherwise (every 4th layer
 * NoPE, qk-norm iff not 128 experts, MoE layers by the interleave step,
 * chunk 8192, temperature 8192 / 0.1): configs that contradict those
 * rules are refused, and the chunk and temperature values are written
 * under attention.sliding_window / temperature_length / temperature_scale
 * (what src/arch/llama4.c reads; llama.cpp ignores all but a 0 window).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../convert_internal.h"

/* Checkpoint names: Llama4ForConditionalGeneration prefixes the text model
 * with "language_model."; Llama4ForCausalLM does not. */
static const char *prefix_of(const mr_hf_config *hp)
{
    return strcmp(hp->arch_name, "Llama4ForCausalLM") ? "language_model." : "";
}

/* An integer array member as 0/1 flags (absent: -1 in every place). */
static mr_status int_flags(const char *file, json_object *cfg, const char *key, uint32_t n,
                           int *out, mr_error *err)
{
    json_object *a;
    for (uint32_t i = 0; i < n; i++)
        out[i] = -1;
    if (!json_object_object_get_ex(cfg, key, &a) || json_object_get_type(a) == json_type_null)
        return MR_OK;
    if (json_object_get_type(a) != json_type_array)
        return mr_fail(err, MR_EFORMAT, file, key, MR_NO_OFFSET, "not an array");
    for (size_t i = 0; i < json_object_array_length(a); i++) {
        int64_t v = json_object_get_int64(json_object_array_get_idx(a, i));
        if (!strcmp(key, "moe_layers")) { /* a list of layer indices */
            if (v < 0 || (uint64_t)v >= n)
                return mr_fail(err, MR_EFORMAT, file, key, MR_NO_OFFSET,
                               "layer %lld is not one of the %u layers", (long long)v, n);
            out[v] = 1;
        } else if (i < n) {
            out[i] = v != 0;
        }
    }
    if (!strcmp(key, "moe_layers"))
        for (uint32_t i = 0; i < n; i++)
            out[i] = out[i] == 1;
    return MR_OK;
}

/* What llama.cpp will do with the file, checked against the config. */
typedef struct {
    uint32_t step;          /* interleave_moe_layer_step */
    uint32_t chunk;         /* attention_chunk_size (0: no chunking) */
    uint32_t temp_floor;    /* floor_scale */
    float temp_scale;       /* attn_scale (0: tuning off) */
    float rope_factor, rope_low, rope_high;
    uint32_t rope_orig;
    int rope_llama3;
} llama4_extra;

static mr_status llama4_rope(const char *file, json_object *cfg, llama4_extra *x, mr_error *err)
{
    json_object *r, *t;
    mr_status s;
    x->rope_llama3 = 0;
    if (!json_object_object_get_ex(cfg, "rope_scaling", &r) ||
        json_object_get_type(r) == json_type_null)
        return MR_OK;
    if (json_object_get_type(r) != json_type_object ||
        !(json_object_object_get_ex(r, "rope_type", &t) ||
          json_object_object_get_ex(r, "type", &t)) ||
        json_object_get_type(t) != json_type_string || strcmp(json_object_get_string(t), "llama3"))
        return mr_fail(err, MR_EUNSUPPORTED, file, "rope_scaling", MR_NO_OFFSET,
                       "only rope_type llama3 is supported for Llama 4");
    x->rope_llama3 = 1;
    x->rope_factor = 8.0f;
    x->rope_low = 1.0f;
    x->rope_high = 4.0f;
    x->rope_orig = 8192;
    if ((s = mr_cfg_f32(file, r, "factor", &x->rope_factor, err)) ||
        (s = mr_cfg_f32(file, r, "low_freq_factor", &x->rope_low, err)) ||
        (s = mr_cfg_f32(file, r, "high_freq_factor", &x->rope_high, err)) ||
        (s = mr_cfg_u32(file, r, "original_max_position_embeddings", 0, 1u << 30, &x->rope_orig,
                        err)))
        return s;
    return MR_OK;
}

/* The text model's part of config.json (the plan keeps the whole file). */
static json_object *text_config(json_object *root)
{
    json_object *v;
    if (!json_object_object_get_ex(root, "hidden_size", NULL) &&
        json_object_object_get_ex(root, "text_config", &v) &&
        json_object_get_type(v) == json_type_object)
        return v;
    return root;
}

/* The keys only Llama 4 has, checked; n_ff_mlp: intermediate_size_mlp. */
static mr_status read_extra(const char *file, json_object *cfg, const mr_hf_config *hp,
                            llama4_extra *x, uint32_t *n_ff_mlp, mr_error *err)
{
    mr_status s;
    json_object *v;
    memset(x, 0, sizeof *x);
    x->step = 1;
    x->chunk = 8192;
    x->temp_floor = 8192;
    x->temp_scale = 0.1f;
    if ((s = mr_cfg_refuse_set(file, cfg, "attention_bias", "attention biases", err)) ||
        (s = mr_cfg_u32(file, cfg, "intermediate_size_mlp", 1, 1u << 24, n_ff_mlp, err)) ||
        (s = mr_cfg_u32(file, cfg, "interleave_moe_layer_step", 0, 1u << 16, &x->step, err)) ||
        (s = mr_cfg_u32(file, cfg, "attention_chunk_size", 0, 1u << 30, &x->chunk, err)) ||
        (s = mr_cfg_u32(file, cfg, "floor_scale", 0, 1u << 30, &x->temp_floor, err)) ||
        (s = mr_cfg_f32(file, cfg, "attn_scale", &x->temp_scale, err)) ||
        (s = llama4_rope(file, cfg, x, err)))
        return s;
    if (x->step < 1 || x->step > hp->n_layer)
        return mr_fail(err, MR_EFORMAT, file, "interleave_moe_layer_step", MR_NO_OFFSET,
                       "%u is not in 1..num_hidden_layers", x->step);
    if (x->temp_floor < 1)
        return mr_fail(err, MR_EFORMAT, file, "floor_scale", MR_NO_OFFSET, "must be positive");
    if (json_object_object_get_ex(cfg, "attn_temperature_tuning", &v) &&
        json_object_get_type(v) != json_type_null && !json_object_get_int(v) &&
        !json_object_get_boolean(v))
        x->temp_scale = 0.0f;
    /* layer_types all full attention (MobileLLM): llama.cpp's window 0 */
    if (json_object_object_get_ex(cfg, "layer_types", &v) &&
        json_object_get_type(v) == json_type_array) {
        int all_full = json_object_array_length(v) > 0;
        for (size_t i = 0; i < json_object_array_length(v); i++)
            all_full &= !strcmp(json_object_get_string(json_object_array_get_idx(v, i)),
                                "full_attention");
        if (all_full)
            x->chunk = 0;
    }
    /* llama.cpp's fixed schedules must be what the checkpoint was trained with */
    int *flags = calloc(hp->n_layer, sizeof *flags);
    if (!flags)
        return mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory");
    if (!(s = int_flags(file, cfg, "no_rope_layers", hp->n_layer, flags, err)))
        for (uint32_t i = 0; i < hp->n_layer && !s; i++)
            if (flags[i] >= 0 && x->chunk && flags[i] != ((i + 1) % 4 != 0))
                s = mr_fail(err, MR_EUNSUPPORTED, file, "no_rope_layers", MR_NO_OFFSET,
                            "layer %u: llama.cpp gives rope to every layer but each 4th", i);
    if (!s && !(s = int_flags(file, cfg, "moe_layers", hp->n_layer, flags, err)) &&
        json_object_object_get_ex(cfg, "moe_layers", &v) && json_object_get_type(v) != json_type_null)
        for (uint32_t i = 0; i < hp->n_layer && !s; i++)
            if (flags[i] != ((i + 1) % x->step == 0))
                s = mr_fail(err, MR_EUNSUPPORTED, file, "moe_layers", MR_NO_OFFSET,
                            "layer %u: llama.cpp makes layer i MoE iff (i + 1) %% "
                            "interleave_moe_layer_step == 0", i);
    free(flags);
    if (s)
        return s;
    const int qk_norm = mr_cfg_bool(cfg, "use_qk_norm", 1);
    if (qk_norm != (hp->n_expert != 128))
        return mr_fail(err, MR_EUNSUPPORTED, file, "use_qk_norm", MR_NO_OFFSET,
                       "%s with %u experts: llama.cpp applies the q/k norm iff a model does "
                       "not have 128 experts", qk_norm ? "true" : "false", hp->n_expert);
    return MR_OK;
}

static mr_status llama4_config(const char *file, json_object *cfg, mr_hf_config *hp,
                               mr_error *err)
{
    llama4_extra x;
    uint32_t n_ff_mlp = 0;
    mr_status s;
    if ((s = mr_cfg_u32(file, cfg, "num_local_experts", 1, 512, &hp->n_expert, err)) ||
        (s = mr_cfg_u32(file, cfg, "num_experts_per_tok", 1, 512, &hp->n_expert_used, err)) ||
        (s = read_extra(file, cfg, hp, &x, &n_ff_mlp, err)))
        return s;
    /* experts and the shared expert are intermediate_size wide; the GGUF's
     * feed_forward_length is the dense FFN's */
    hp->n_ff_exp = hp->n_ff;
    hp->n_ff = n_ff_mlp;
    return MR_OK;
}

/* The extra keys of a plan whose config was checked by llama4_config. */
static llama4_extra extra_of(const mr_plan *p)
{
    llama4_extra x;
    uint32_t n_ff_mlp = 0;
    if (read_extra(NULL, text_config(p->config), &p->hp, &x, &n_ff_mlp, NULL))
        memset(&x, 0, sizeof x); /* cannot happen: the same checks passed */
    if (!x.step)
        x.step = 1;
    return x;
}

/* LlamaModel.generate_extra_tensors: the llama3 factor of each frequency
 * pair, in float32 arithmetic as torch does it. */
static void rope_factors(const mr_hf_config *hp, const llama4_extra *x, float *out)
{
    const uint32_t dim = hp->head_dim;
    const float lo_wl = (float)(x->rope_orig / (double)x->rope_low);
    const float hi_wl = (float)(x->rope_orig / (double)x->rope_high);
    for (uint32_t i = 0; i < dim / 2; i++) {
        const float e = (float)(2 * i) / (float)dim;
        const float freq = 1.0f / powf(hp->rope_theta, e);
        const float wl = (float)(2.0 * M_PI) / freq;
        if (wl < hi_wl) {
            out[i] = 1.0f;
        } else if (wl > lo_wl) {
            out[i] = x->rope_factor;
        } else {
            const float smooth = ((float)x->rope_orig / wl - x->rope_low) /
                                 (x->rope_high - x->rope_low);
            out[i] = 1.0f / ((1.0f - smooth) / x->rope_factor + smooth);
        }
    }
}

#define HF(...) (snprintf(hf[0], sizeof hf[0], __VA_ARGS__), hf)
#define G(...) (snprintf(g, sizeof g, __VA_ARGS__), g)

static mr_status layer_tensors(mr_planner *pl, const llama4_extra *x, uint32_t il,
                               mr_error *err)
{
    const mr_hf_config *hp = &mr_planner_plan(pl)->hp;
    const char *pre = prefix_of(hp);
    const uint64_t E = hp->n_embd, D = hp->head_dim, F = hp->n_ff_exp;
    const int L = (int)il;
    char hf[1][128], g[96], gu[128], dn[128];
    mr_status s;
    static const char *const ap[4][2] = {{"q_proj", "attn_q"}, {"k_proj", "attn_k"},
                                         {"v_proj", "attn_v"}, {"o_proj", "attn_output"}};
    static const char *const sp[3] = {"gate", "up", "down"};
    if ((s = mr_plan_add(pl, G("blk.%u.attn_norm.weight", il),
                         HF("%smodel.layers.%u.input_layernorm.weight", pre, il), 1, 0, E, 0, L,
                         MR_PART_NONE, err)) ||
        (s = mr_plan_add(pl, G("blk.%u.ffn_norm.weight", il),
                         HF("%smodel.layers.%u.post_attention_layernorm.weight", pre, il), 1, 0,
                         E, 0, L, MR_PART_NONE, err)))
        return s;
    for (int i = 0; i < 4; i++) {
        const uint64_t rows = i == 0 ? hp->n_head * D : i == 3 ? E : hp->n_head_kv * D;
        const uint64_t cols = i == 3 ? hp->n_head * D : E;
        if ((s = mr_plan_add(pl, G("blk.%u.%s.weight", il, ap[i][1]),
                             HF("%smodel.layers.%u.self_attn.%s.weight", pre, il, ap[i][0]), 1,
                             rows, cols, 0, L, MR_PART_NONE, err)))
            return s;
    }
    if ((il + 1) % x->step != 0) { /* a dense layer: feed_forward.{gate,up,down}_proj */
        for (int part = 0; part < 3; part++)
            if ((s = mr_plan_add(pl, G("blk.%u.ffn_%s.weight", il, sp[part]),
                                 HF("%smodel.layers.%u.feed_forward.%s_proj.weight", pre, il,
                                    sp[part]),
                                 1, part == MR_PART_DOWN ? E : hp->n_ff,
                                 part == MR_PART_DOWN ? hp->n_ff : E, 0, L, MR_PART_NONE, err)))
                return s;
        return MR_OK;
    }
    snprintf(gu, sizeof gu, "%smodel.layers.%u.feed_forward.experts.gate_up_proj", pre, il);
    snprintf(dn, sizeof dn, "%smodel.layers.%u.feed_forward.experts.down_proj", pre, il);
    if ((s = mr_plan_add(pl, G("blk.%u.ffn_gate_inp.weight", il),
                         HF("%smodel.layers.%u.feed_forward.router.weight", pre, il), 1,
                         hp->n_expert, E, 0, L, MR_PART_NONE, err)) ||
        (s = mr_plan_add_transposed(pl, G("blk.%u.ffn_gate_exps.weight", il), gu, hp->n_expert,
                                    F, E, 2 * F, 0, L, MR_PART_GATE, err)) ||
        (s = mr_plan_add_transposed(pl, G("blk.%u.ffn_up_exps.weight", il), gu, hp->n_expert, F,
                                    E, 2 * F, F, L, MR_PART_UP, err)) ||
        (s = mr_plan_add_transposed(pl, G("blk.%u.ffn_down_exps.weight", il), dn, hp->n_expert,
                                    E, F, E, 0, L, MR_PART_DOWN, err)))
        return s;
    for (int part = 0; part < 3; part++)
        if ((s = mr_plan_add(pl, G("blk.%u.ffn_%s_shexp.weight", il, sp[part]),
                             HF("%smodel.layers.%u.feed_forward.shared_expert.%s_proj.weight", pre,
                                il, sp[part]),
                             1, part == MR_PART_DOWN ? E : F, part == MR_PART_DOWN ? F : E, 0, L,
                             MR_PART_NONE, err)))
            return s;
    return MR_OK;
}

/* llama.cpp's order: generated tensors first, then shard by shard in
 * checkpoint-name order (gate before up for the split gate_up_proj). */
static int cmp_llama_cpp_order(const void *a, const void *b)
{
    const mr_plan_tensor *x = a, *y = b;
    if (!x->n_src || !y->n_src)
        return !y->n_src - !x->n_src;
    if (x->src_shard[0] != y->src_shard[0])
        return x->src_shard[0] < y->src_shard[0] ? -1 : 1;
    int c = strcmp(x->src[0]->name, y->src[0]->name);
    if (c)
        return c;
    return x->src_col0 < y->src_col0 ? -1 : x->src_col0 > y->src_col0;
}

static mr_status llama4_tensors(mr_planner *pl, mr_error *err)
{
    mr_plan *p = mr_planner_plan(pl);
    const mr_hf_config *hp = &p->hp;
    const char *pre = prefix_of(hp);
    char hf[1][128];
    mr_status s;
    const llama4_extra x = extra_of(p);
    if (x.rope_llama3) {
        float f[512];
        if (hp->head_dim / 2 > sizeof f / sizeof f[0])
            return mr_fail(err, MR_EUNSUPPORTED, NULL, "head_dim", MR_NO_OFFSET,
                           "%u is too large for rope factors", hp->head_dim);
        rope_factors(hp, &x, f);
        if ((s = mr_plan_add_generated(pl, "rope_freqs.weight", f, hp->head_dim / 2, err)))
            return s;
    }
    if ((s = mr_plan_add(pl, "token_embd.weight", HF("%smodel.embed_tokens.weight", pre), 1,
                         hp->n_vocab, hp->n_embd, 0, -1, MR_PART_NONE, err)))
        return s;
    for (uint32_t il = 0; il < hp->n_layer; il++)
        if ((s = layer_tensors(pl, &x, il, err)))
            return s;
    if ((s = mr_plan_add(pl, "output_norm.weight", HF("%smodel.norm.weight", pre), 1, 0,
                         hp->n_embd, 0, -1, MR_PART_NONE, err)))
        return s;
    HF("%slm_head.weight", pre);
    if ((mr_plan_has(pl, hf[0]) || !hp->tied) &&
        (s = mr_plan_add(pl, "output.weight", hf, 1, hp->n_vocab, hp->n_embd, 0, -1,
                         MR_PART_NONE, err)))
        return s;
    mr_plan_drop_prefix(pl, "vision_model.");
    mr_plan_drop_prefix(pl, "multi_modal_projector.");
    /* stable: insertion order breaks the remaining ties */
    for (uint32_t i = 1; i < p->n_tensors; i++)
        for (uint32_t k = i; k > 0 && cmp_llama_cpp_order(&p->t[k - 1], &p->t[k]) > 0; k--) {
            mr_plan_tensor t = p->t[k];
            p->t[k] = p->t[k - 1];
            p->t[k - 1] = t;
        }
    return MR_OK;
}
#undef HF
#undef G

/* Llama4Model.set_gguf_parameters' order (LlamaModel's, then the
 * interleave step and the expert width), and the fixture's three keys */
static void llama4_hparams(const mr_plan *p, mr_gguf_writer *w)
{
    const mr_hf_config *hp = &p->hp;
    const llama4_extra x = extra_of(p);
    mr_gguf_kv_u32(w, "llama4.block_count", hp->n_layer);
    mr_gguf_kv_u32(w, "llama4.context_length", hp->n_ctx);
    mr_gguf_kv_u32(w, "llama4.embedding_length", hp->n_embd);
    mr_gguf_kv_u32(w, "llama4.feed_forward_length", hp->n_ff);
    mr_gguf_kv_u32(w, "llama4.attention.head_count", hp->n_head);
    mr_gguf_kv_u32(w, "llama4.attention.head_count_kv", hp->n_head_kv);
    mr_gguf_kv_f32(w, "llama4.rope.freq_base", hp->rope_theta);
    mr_gguf_kv_f32(w, "llama4.attention.layer_norm_rms_epsilon", hp->rms_eps);
    mr_gguf_kv_u32(w, "llama4.expert_count", hp->n_expert);
    mr_gguf_kv_u32(w, "llama4.expert_used_count", hp->n_expert_used);
    if (hp->has_head_dim) {
        mr_gguf_kv_u32(w, "llama4.attention.key_length", hp->head_dim);
        mr_gguf_kv_u32(w, "llama4.attention.value_length", hp->head_dim);
    }
    mr_gguf_kv_u32(w, "general.file_type", p->file_type);
    mr_gguf_kv_u32(w, "llama4.vocab_size", hp->n_vocab);
    mr_gguf_kv_u32(w, "llama4.rope.dimension_count", hp->head_dim);
    mr_gguf_kv_u32(w, "llama4.interleave_moe_layer_step", x.step);
    mr_gguf_kv_u32(w, "llama4.expert_feed_forward_length", hp->n_ff_exp);
    mr_gguf_kv_u32(w, "llama4.attention.sliding_window", x.chunk);
    mr_gguf_kv_u32(w, "llama4.attention.temperature_length", x.temp_floor);
    mr_gguf_kv_f32(w, "llama4.attention.temperature_scale", x.temp_scale);
    mr_gguf_kv_u32(w, "general.quantization_version", 2);
}

const mr_hf_family mr_hf_llama4 = {"Llama4ForConditionalGeneration", "llama4", llama4_config,
                                   llama4_tensors, llama4_hparams};
const mr_hf_family mr_hf_llama4_text = {"Llama4ForCausalLM", "llama4", llama4_config,
                                        llama4_tensors, llama4_hparams};
