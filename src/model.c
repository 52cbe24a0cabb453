/* model.c - llama-architecture hyperparameters and tensor views, with every
 * tensor's type and shape checked against the hyperparameters. */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../quant/types.h"

/* Read llama.* hyperparameters and check they are sane before any tensor is
 * looked at. */
static mr_status load_hparams(const mr_gguf *g, mr_hparams *hp, mr_error *err)
{
    mr_status s;
    mr_str arch;
    if ((s = mr_gguf_get_str(g, "general.architecture", &arch, err)))
        return s;
    if (arch.len != 5 || memcmp(arch.ptr, "llama", 5) != 0)
        return mr_fail(err, MR_EUNSUPPORTED, g->path, "general.architecture",
                       mr_gguf_find(g, "general.architecture")->val.offset,
                       "architecture '%.*s' is not supported (llama, incl. Mixtral, is)",
                       (int)(arch.len > 40 ? 40 : arch.len), arch.ptr);
    memset(hp, 0, sizeof *hp);
    uint32_t n_expert = 0, n_used = 0, key_len = 0, n_rot = 0;
    hp->n_ctx_train = 2048;
    hp->rope_base = 10000.0f;
    hp->norm_eps = 1e-5f;
    if ((s = mr_gguf_get_u32(g, "llama.embedding_length", &hp->n_embd, err)) ||
        (s = mr_gguf_get_u32(g, "llama.block_count", &hp->n_layer, err)) ||
        (s = mr_gguf_get_u32(g, "llama.feed_forward_length", &hp->n_ff, err)) ||
        (s = mr_gguf_get_u32(g, "llama.attention.head_count", &hp->n_head, err)) ||
        (s = mr_gguf_get_u32_opt(g, "llama.context_length", &hp->n_ctx_train, err)) ||
        (s = mr_gguf_get_u32_opt(g, "llama.expert_count", &n_expert, err)) ||
        (s = mr_gguf_get_u32_opt(g, "llama.expert_used_count", &n_used, err)) ||
        (s = mr_gguf_get_u32_opt(g, "llama.attention.key_length", &key_len, err)) ||
        (s = mr_gguf_get_u32_opt(g, "llama.rope.dimension_count", &n_rot, err)) ||
        (s = mr_gguf_get_f32_opt(g, "llama.rope.freq_base", &hp->rope_base, err)) ||
        (s = mr_gguf_get_f32_opt(g, "llama.attention.layer_norm_rms_epsilon", &hp->norm_eps, err)))
        return s;
    hp->n_head_kv = hp->n_head;
    if ((s = mr_gguf_get_u32_opt(g, "llama.attention.head_count_kv", &hp->n_head_kv, err)))
        return s;

#define HP_CHECK(cond, key, ...)                                                        \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            const mr_gguf_kv *kv_ = mr_gguf_find(g, key);                               \
            return mr_fail(err, MR_EFORMAT, g->path, key,                               \
                           kv_ ? kv_->val.offset : MR_NO_OFFSET, __VA_ARGS__);          \
        }                                                                               \
    } while (0)
    HP_CHECK(hp->n_embd >= 1 && hp->n_embd <= 65536, "llama.embedding_length",
             "%u is outside 1..65536", hp->n_embd);
    HP_CHECK(hp->n_layer >= 1 && hp->n_layer <= 1024, "llama.block_count",
             "%u is outside 1..1024", hp->n_layer);
    HP_CHECK(hp->n_ff >= 1 && hp->n_ff <= 1048576, "llama.feed_forward_length",
             "%u is outside 1..1048576", hp->n_ff);
    HP_CHECK(hp->n_head >= 1 && hp->n_head <= 1024, "llama.attention.head_count",
             "%u is outside 1..1024", hp->n_head);
    HP_CHECK(hp->n_head_kv >= 1 && hp->n_head % hp->n_head_kv == 0,
             "llama.attention.head_count_kv", "%u does not divide head_count %u",
             hp->n_head_kv, hp->n_head);
    hp->head_dim = key_len ? key_len : hp->n_embd / hp->n_head;
    HP_CHECK(key_len || hp->n_embd % hp->n_head == 0, "llama.attention.head_count",
             "%u does not divide embedding_length %u", hp->n_head, hp->n_embd);
    HP_CHECK(hp->head_dim >= 2 && hp->head_dim <= 1024 && hp->head_dim % 2 == 0,
             "llama.attention.key_length", "head size %u is not an even number in 2..1024",
             hp->head_dim);
    hp->n_rot = n_rot ? n_rot : hp->head_dim;
    HP_CHECK(hp->n_rot == hp->head_dim, "llama.rope.dimension_count",
             "partial RoPE (%u of %u dimensions) is not supported", hp->n_rot, hp->head_dim);
    HP_CHECK(hp->n_ctx_train >= 1, "llama.context_length", "must be positive");
    HP_CHECK(isfinite(hp->rope_base) && hp->rope_base > 0.0f, "llama.rope.freq_base",
             "%g is not a positive number", hp->rope_base);
    HP_CHECK(isfinite(hp->norm_eps) && hp->norm_eps > 0.0f && hp->norm_eps < 1.0f,
             "llama.attention.layer_norm_rms_epsilon", "%g is outside (0, 1)", hp->norm_eps);
    HP_CHECK(n_expert <= MR_MAX_EXPERTS, "llama.expert_count", "%u is more than %d",
             n_expert, MR_MAX_EXPERTS);
    if (n_expert > 0) {
        HP_CHECK(n_used >= 1 && n_used <= n_expert, "llama.expert_used_count",
                 "%u experts per token out of %u", n_used, n_expert);
        hp->is_moe = 1;
        hp->n_expert = n_expert;
        hp->n_expert_used = n_used;
    } else {
        hp->is_moe = 0;
        hp->n_expert = 1;
        hp->n_expert_used = 1;
    }
#undef HP_CHECK
    return MR_OK;
}

/* Find a tensor, check its type is computable and its shape is exactly
 * (ne0, ne1, ne2) (ne2 = 0: a 2-D tensor; ne1 = 0: a 1-D tensor). */
static mr_status get_tensor(const mr_gguf *g, const char *name, uint64_t ne0, uint64_t ne1,
                            uint64_t ne2, int required, mr_tensor *out, mr_error *err)
{
    const mr_gguf_tensor *t = mr_gguf_tensor_find(g, name);
    memset(out, 0, sizeof *out);
    if (!t) {
        if (!required)
            return MR_OK;
        return mr_fail(err, MR_EFORMAT, g->path, name, MR_NO_OFFSET, "required tensor is missing");
    }
    uint32_t want_dims = ne2 ? 3 : ne1 ? 2 : 1;
    uint64_t want[4] = {ne0, ne1 ? ne1 : 1, ne2 ? ne2 : 1, 1};
    /* trailing dimensions of size 1 are allowed either way */
    int ok = 1;
    for (int d = 0; d < 4; d++)
        ok &= t->ne[d] == want[d];
    if (!ok) {
        char got[96];
        snprintf(got, sizeof got, "[%llu, %llu, %llu, %llu]", (unsigned long long)t->ne[0],
                 (unsigned long long)t->ne[1], (unsigned long long)t->ne[2],
                 (unsigned long long)t->ne[3]);
        return mr_fail(err, MR_EFORMAT, g->path, name, t->info_offset,
                       "shape %s contradicts the hyperparameters, which ask for "
                       "%u-D [%llu, %llu, %llu]",
                       got, want_dims, (unsigned long long)want[0],
                       (unsigned long long)want[1], (unsigned long long)want[2]);
    }
    if (!mr_type_computable(t->type))
        return mr_fail(err, MR_EUNSUPPORTED, g->path, name, t->info_offset,
                       "tensor type %s is not supported yet", mr_type_get(t->type)->name);
    out->name = t->name;
    out->data = t->data;
    out->type = t->type;
    memcpy(out->ne, t->ne, sizeof out->ne);
    out->row_bytes = mr_type_row_bytes(t->type, t->ne[0]);
    out->nbytes = t->nbytes;
    out->file_offset = t->file_offset;
    return MR_OK;
}

/* Copy a 1-D norm weight to a fresh f32 array. */
static mr_status get_norm(const mr_gguf *g, const char *name, uint32_t n, float **out,
                          mr_error *err)
{
    mr_tensor t;
    mr_status s = get_tensor(g, name, n, 0, 0, 1, &t, err);
    if (s)
        return s;
    if (!(*out = malloc(sizeof(float) * n)))
        return mr_fail(err, MR_ENOMEM, g->path, name, MR_NO_OFFSET, "no memory");
    mr_type_get(t.type)->to_f32(t.data, *out, n);
    return MR_OK;
}

static mr_status load_layer(mr_model *m, uint32_t il, mr_error *err)
{
    const mr_gguf *g = m->gguf;
    const mr_hparams *hp = &m->hp;
    mr_layer *L = &m->layers[il];
    const uint64_t q_dim = (uint64_t)hp->n_head * hp->head_dim;
    const uint64_t kv_dim = (uint64_t)hp->n_head_kv * hp->head_dim;
    char name[96];
    mr_status s;
#define NAME(suffix) (snprintf(name, sizeof name, "blk.%u." suffix, il), name)
    if ((s = get_norm(g, NAME("attn_norm.weight"), hp->n_embd, &L->attn_norm, err)) ||
        (s = get_norm(g, NAME("ffn_norm.weight"), hp->n_embd, &L->ffn_norm, err)) ||
        (s = get_tensor(g, NAME("attn_q.weight"), hp->n_embd, q_dim, 0, 1, &L->wq, err)) ||
        (s = get_tensor(g, NAME("attn_k.weight"), hp->n_embd, kv_dim, 0, 1, &L->wk, err)) ||
        (s = get_tensor(g, NAME("attn_v.weight"), hp->n_embd, kv_dim, 0, 1, &L->wv, err)) ||
        (s = get_tensor(g, NAME("attn_output.weight"), q_dim, hp->n_embd, 0, 1, &L->wo, err)))
        return s;
    if (hp->is_moe) {
        if (mr_gguf_tensor_find(g, NAME("ffn_gate.0.weight")))
            return mr_fail(err, MR_EUNSUPPORTED, g->path, name, MR_NO_OFFSET,
                           "per-expert tensors (an old llama.cpp layout) are not supported: "
                           "convert again to get blk.N.ffn_*_exps");
        if ((s = get_tensor(g, NAME("ffn_gate_inp.weight"), hp->n_embd, hp->n_expert, 0, 1,
                            &L->router, err)) ||
            (s = get_tensor(g, NAME("ffn_gate_exps.weight"), hp->n_embd, hp->n_ff,
                            hp->n_expert, 1, &L->gate, err)) ||
            (s = get_tensor(g, NAME("ffn_up_exps.weight"), hp->n_embd, hp->n_ff, hp->n_expert,
                            1, &L->up, err)) ||
            (s = get_tensor(g, NAME("ffn_down_exps.weight"), hp->n_ff, hp->n_embd,
                            hp->n_expert, 1, &L->down, err)))
            return s;
    } else {
        if ((s = get_tensor(g, NAME("ffn_gate.weight"), hp->n_embd, hp->n_ff, 0, 1, &L->gate,
                            err)) ||
            (s = get_tensor(g, NAME("ffn_up.weight"), hp->n_embd, hp->n_ff, 0, 1, &L->up, err)) ||
            (s = get_tensor(g, NAME("ffn_down.weight"), hp->n_ff, hp->n_embd, 0, 1, &L->down,
                            err)))
            return s;
    }
#undef NAME
    /* Expert bytes are reached only through the expert store. */
    L->gate.data = L->up.data = L->down.data = NULL;
    m->expert_bytes += L->gate.nbytes + L->up.nbytes + L->down.nbytes;
    m->resident_bytes += L->wq.nbytes + L->wk.nbytes + L->wv.nbytes + L->wo.nbytes +
                         L->router.nbytes + 2ull * hp->n_embd * 4;
    return MR_OK;
}

mr_status mr_model_from_gguf(mr_gguf *g, mr_model **out, mr_error *err)
{
    mr_status s;
    *out = NULL;
    mr_model *m = calloc(1, sizeof *m);
    if (!m) {
        s = mr_fail(err, MR_ENOMEM, g->path, NULL, MR_NO_OFFSET, "no memory");
        mr_gguf_close(g);
        return s;
    }
    m->gguf = g;
    if ((s = load_hparams(g, &m->hp, err)))
        goto fail;
    const mr_gguf_tensor *te = mr_gguf_tensor_find(g, "token_embd.weight");
    if (!te) {
        s = mr_fail(err, MR_EFORMAT, g->path, "token_embd.weight", MR_NO_OFFSET,
                    "required tensor is missing");
        goto fail;
    }
    if (te->n_dims != 2 || te->ne[1] > (1u << 24)) {
        s = mr_fail(err, MR_EFORMAT, g->path, "token_embd.weight", te->info_offset,
                    "expected a 2-D [n_embd, n_vocab] tensor with at most 2^24 rows");
        goto fail;
    }
    m->hp.n_vocab = (uint32_t)te->ne[1];
    uint32_t vocab_kv = m->hp.n_vocab;
    if ((s = mr_gguf_get_u32_opt(g, "llama.vocab_size", &vocab_kv, err)))
        goto fail;
    if (vocab_kv != m->hp.n_vocab) {
        s = mr_fail(err, MR_EFORMAT, g->path, "llama.vocab_size",
                    mr_gguf_find(g, "llama.vocab_size")->val.offset,
                    "%u contradicts token_embd.weight's %u rows", vocab_kv, m->hp.n_vocab);
        goto fail;
    }
    const mr_gguf_kv *toks = mr_gguf_find(g, "tokenizer.ggml.tokens");
    if (toks && toks->val.type == MR_GGUF_ARRAY && toks->val.v.arr.n != m->hp.n_vocab) {
        s = mr_fail(err, MR_EFORMAT, g->path, "tokenizer.ggml.tokens", toks->val.offset,
                    "%llu tokens but token_embd.weight has %u rows",
                    (unsigned long long)toks->val.v.arr.n, m->hp.n_vocab);
        goto fail;
    }
    const mr_hparams *hp = &m->hp;
    if ((s = get_tensor(g, "token_embd.weight", hp->n_embd, hp->n_vocab, 0, 1, &m->tok_embd,
                        err)) ||
        (s = get_norm(g, "output_norm.weight", hp->n_embd, &m->output_norm, err)) ||
        (s = get_tensor(g, "output.weight", hp->n_embd, hp->n_vocab, 0, 0, &m->output, err)))
        goto fail;
    if (!m->output.data) {
        m->output = m->tok_embd;
        m->tied_output = 1;
    }
    m->resident_bytes = m->tok_embd.nbytes + (m->tied_output ? 0 : m->output.nbytes) +
                        4ull * hp->n_embd;
    if (!(m->layers = calloc(hp->n_layer, sizeof *m->layers))) {
        s = mr_fail(err, MR_ENOMEM, g->path, NULL, MR_NO_OFFSET, "no memory");
        goto fail;
    }
    for (uint32_t il = 0; il < hp->n_layer; il++)
        if ((s = load_layer(m, il, err)))
            goto fail;
    *out = m;
    return MR_OK;
fail:
    mr_model_free(m);
    return s;
}

uint64_t mr_model_bytes_per_token(const mr_model *m)
{
    uint64_t b = m->resident_bytes - m->tok_embd.nbytes + m->tok_embd.row_bytes +
                 (m->tied_output ? m->tok_embd.nbytes : 0);
    for (uint32_t l = 0; l < m->hp.n_layer; l++) {
        const mr_layer *L = &m->layers[l];
        b += (uint64_t)m->hp.n_expert_used *
             (mr_expert_slice_bytes(&L->gate) + mr_expert_slice_bytes(&L->up) +
              mr_expert_slice_bytes(&L->down));
    }
    return b;
}

mr_status mr_model_load(const char *path, mr_model **out, mr_error *err)
{
    mr_gguf *g;
    mr_status s = mr_gguf_open(path, &g, err);
    *out = NULL;
    if (s)
        return s;
    return mr_model_from_gguf(g, out, err);
}

void mr_model_free(mr_model *m)
{
    if (!m)
        return;
    if (m->layers) {
        for (uint32_t i = 0; i < m->hp.n_layer; i++) {
            free(m->layers[i].attn_norm);
            free(m->layers[i].ffn_norm);
        }
        free(m->layers);
    }
    free(m->output_norm);
    mr_gguf_close(m->gguf);
    free(m);
}
