/* hf_common.c - the tensor-list pieces every family's converter is made
 * of (see convert_internal.h): embeddings, GQA attention, FFN norm,
 * stacked experts, dense FFN, output.  A family file strings them
 * together and adds what is its own. */
#include <stdio.h>
#include <stdlib.h>

#include "../convert_internal.h"

/* One checkpoint name, formatted. */
#define HF1(...) (snprintf(hf[0], sizeof hf[0], __VA_ARGS__), hf)

mr_status mr_hf_embed(mr_planner *pl, mr_error *err)
{
    const mr_hf_config *hp = &mr_planner_plan(pl)->hp;
    char hf[1][128];
    return mr_plan_add(pl, "token_embd.weight", HF1("model.embed_tokens.weight"), 1, hp->n_vocab,
                       hp->n_embd, 0, -1, MR_PART_NONE, err);
}

mr_status mr_hf_attention(mr_planner *pl, uint32_t il, int permute, mr_error *err)
{
    const mr_hf_config *hp = &mr_planner_plan(pl)->hp;
    const uint64_t E = hp->n_embd, D = hp->head_dim;
    const int L = (int)il;
    char hf[1][128], g[96];
    mr_status s;
#define G(suffix) (snprintf(g, sizeof g, "blk.%u." suffix, il), g)
    if ((s = mr_plan_add(pl, G("attn_norm.weight"), HF1("model.layers.%u.input_layernorm.weight", il),
                         1, 0, E, 0, L, MR_PART_NONE, err)) ||
        (s = mr_plan_add(pl, G("attn_q.weight"), HF1("model.layers.%u.self_attn.q_proj.weight", il),
                         1, hp->n_head * D, E, permute ? hp->n_head : 0, L, MR_PART_NONE, err)) ||
        (s = mr_plan_add(pl, G("attn_k.weight"), HF1("model.layers.%u.self_attn.k_proj.weight", il),
                         1, hp->n_head_kv * D, E, permute ? hp->n_head_kv : 0, L, MR_PART_NONE,
                         err)) ||
        (s = mr_plan_add(pl, G("attn_v.weight"), HF1("model.layers.%u.self_attn.v_proj.weight", il),
                         1, hp->n_head_kv * D, E, 0, L, MR_PART_NONE, err)) ||
        (s = mr_plan_add(pl, G("attn_output.weight"),
                         HF1("model.layers.%u.self_attn.o_proj.weight", il), 1, E, hp->n_head * D,
                         0, L, MR_PART_NONE, err)))
        return s;
    return MR_OK;
}

mr_status mr_hf_ffn_norm(mr_planner *pl, uint32_t il, mr_error *err)
{
    const mr_hf_config *hp = &mr_planner_plan(pl)->hp;
    char hf[1][128], g[96];
    return mr_plan_add(pl, G("ffn_norm.weight"),
                       HF1("model.layers.%u.post_attention_layernorm.weight", il), 1, 0,
                       hp->n_embd, 0, (int)il, MR_PART_NONE, err);
}

mr_status mr_hf_experts(mr_planner *pl, uint32_t il, const char *router, const char *expert_fmt,
                        const char *const parts[3], mr_error *err)
{
    const mr_hf_config *hp = &mr_planner_plan(pl)->hp;
    const uint64_t E = hp->n_embd, F = hp->n_ff_exp;
    static const char *const gn[3] = {"ffn_gate_exps.weight", "ffn_up_exps.weight",
                                      "ffn_down_exps.weight"};
    char (*hf)[128] = calloc(hp->n_expert, sizeof *hf), g[96];
    mr_status s;
    if (!hf)
        return mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory");
    snprintf(hf[0], sizeof hf[0], router, il);
    s = mr_plan_add(pl, G("ffn_gate_inp.weight"), hf, 1, hp->n_expert, E, 0, (int)il,
                    MR_PART_NONE, err);
    for (int part = 0; part < 3 && !s; part++) {
        for (uint32_t e = 0; e < hp->n_expert; e++)
            snprintf(hf[e], sizeof hf[e], expert_fmt, il, e, parts[part]);
        snprintf(g, sizeof g, "blk.%u.%s", il, gn[part]);
        s = mr_plan_add(pl, g, hf, hp->n_expert, part == MR_PART_DOWN ? E : F,
                        part == MR_PART_DOWN ? F : E, 0, (int)il, part, err);
    }
    free(hf);
    return s;
}

mr_status mr_hf_dense_ffn(mr_planner *pl, uint32_t il, mr_error *err)
{
    const mr_hf_config *hp = &mr_planner_plan(pl)->hp;
    const uint64_t E = hp->n_embd, F = hp->n_ff;
    static const char *const w[3] = {"gate_proj", "up_proj", "down_proj"};
    static const char *const gn[3] = {"ffn_gate.weight", "ffn_up.weight", "ffn_down.weight"};
    char hf[1][128], g[96];
    mr_status s = MR_OK;
    for (int part = 0; part < 3 && !s; part++) {
        snprintf(g, sizeof g, "blk.%u.%s", il, gn[part]);
        s = mr_plan_add(pl, g, HF1("model.layers.%u.mlp.%s.weight", il, w[part]), 1,
                        part == MR_PART_DOWN ? E : F, part == MR_PART_DOWN ? F : E, 0, (int)il,
                        part, err);
    }
    return s;
}
#undef G

mr_status mr_hf_output(mr_planner *pl, mr_error *err)
{
    const mr_hf_config *hp = &mr_planner_plan(pl)->hp;
    char hf[1][128];
    mr_status s = mr_plan_add(pl, "output_norm.weight", HF1("model.norm.weight"), 1, 0, hp->n_embd,
                              0, -1, MR_PART_NONE, err);
    if (s)
        return s;
    if (mr_plan_has(pl, "lm_head.weight") || !hp->tied)
        return mr_plan_add(pl, "output.weight", HF1("lm_head.weight"), 1, hp->n_vocab,
                           hp->n_embd, 0, -1, MR_PART_NONE, err);
    return MR_OK;
}
