/* model.c - the family-independent part of loading a model: find the
 * family from general.architecture, let it read its hyperparameters and
 * bind its layers, and give families the checked tensor and key lookups
 * they are written with.  Every tensor's type and shape is checked against
 * the hyperparameters before anything computes with it. */
#include "model.h"
#include "pack.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../quant/types.h"
#include "arch/arch.h"

static uint64_t key_offset(const mr_gguf *g, const char *key)
{
    const mr_gguf_kv *kv = mr_gguf_find(g, key);
    return kv ? kv->val.offset : MR_NO_OFFSET;
}

static const char *arch_key(char *buf, size_t cap, const char *arch, const char *key)
{
    snprintf(buf, cap, "%s.%s", arch, key);
    return buf;
}

mr_status mr_arch_u32(const mr_gguf *g, const char *arch, const char *key, int required,
                      uint32_t *out, mr_error *err)
{
    char k[128];
    arch_key(k, sizeof k, arch, key);
    return required ? mr_gguf_get_u32(g, k, out, err) : mr_gguf_get_u32_opt(g, k, out, err);
}

mr_status mr_arch_f32(const mr_gguf *g, const char *arch, const char *key, int required,
                      float *out, mr_error *err)
{
    char k[128];
    arch_key(k, sizeof k, arch, key);
    if (required && !mr_gguf_find(g, k))
        return mr_fail(err, MR_EFORMAT, g->path, k, MR_NO_OFFSET, "required key is missing");
    return mr_gguf_get_f32_opt(g, k, out, err);
}

mr_status mr_arch_bool(const mr_gguf *g, const char *arch, const char *key, int *out,
                       mr_error *err)
{
    char k[128];
    arch_key(k, sizeof k, arch, key);
    return mr_gguf_get_bool_opt(g, k, out, err);
}

mr_status mr_arch_bad(const mr_gguf *g, mr_error *err, const char *arch, const char *key,
                      const char *fmt, ...)
{
    char k[128], msg[400];
    va_list ap;
    arch_key(k, sizeof k, arch, key);
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return mr_fail(err, MR_EFORMAT, g->path, k, key_offset(g, k), "%s", msg);
}

#define HP_CHECK(cond, key, ...)                                                          \
    do {                                                                                  \
        if (!(cond))                                                                      \
            return mr_arch_bad(g, err, arch, key, __VA_ARGS__);                           \
    } while (0)

/* rope.scaling.* as llama.cpp writes them: type none|linear|yarn|llama3,
 * factor, original_context_length, yarn_beta_fast/slow (defaults 32, 1). */
static mr_status rope_scaling(const mr_gguf *g, const char *arch, mr_hparams *hp, mr_error *err)
{
    char k[128];
    mr_rope_cfg *r = &hp->rope;
    mr_status s;
    r->factor = 1.0f;
    r->beta_fast = 32.0f;
    r->beta_slow = 1.0f;
    r->attn_factor = 1.0f;
    r->orig_ctx = hp->n_ctx_train;
    arch_key(k, sizeof k, arch, "rope.scaling.type");
    const mr_gguf_kv *kv = mr_gguf_find(g, k);
    mr_str type = {"none", 4};
    if (kv && (s = mr_gguf_get_str(g, k, &type, err)))
        return s;
    if ((s = mr_arch_f32(g, arch, "rope.scaling.factor", 0, &r->factor, err)) ||
        (s = mr_arch_u32(g, arch, "rope.scaling.original_context_length", 0, &r->orig_ctx, err)) ||
        (s = mr_arch_f32(g, arch, "rope.scaling.yarn_beta_fast", 0, &r->beta_fast, err)) ||
        (s = mr_arch_f32(g, arch, "rope.scaling.yarn_beta_slow", 0, &r->beta_slow, err)) ||
        (s = mr_arch_f32(g, arch, "rope.scaling.attn_factor", 0, &r->attn_factor, err)))
        return s;
#define IS(lit) (type.len == sizeof lit - 1 && memcmp(type.ptr, lit, type.len) == 0)
    if (IS("none") || IS(""))
        r->scaling = MR_ROPE_SCALE_NONE;
    else if (IS("linear"))
        r->scaling = MR_ROPE_SCALE_LINEAR;
    else if (IS("yarn"))
        r->scaling = MR_ROPE_SCALE_YARN;
    else
        return mr_fail(err, MR_EUNSUPPORTED, g->path, k, kv ? kv->val.offset : MR_NO_OFFSET,
                       "rope scaling '%.*s' is not supported (none, linear, yarn)",
                       (int)(type.len > 32 ? 32 : type.len), type.ptr);
#undef IS
    HP_CHECK(isfinite(r->factor) && r->factor > 0.0f && r->factor <= 1024.0f,
             "rope.scaling.factor", "%g is outside (0, 1024]", r->factor);
    HP_CHECK(isfinite(r->beta_fast) && isfinite(r->beta_slow) && r->beta_fast > 0 &&
                 r->beta_slow > 0,
             "rope.scaling.yarn_beta_fast", "YaRN betas %g, %g must be positive", r->beta_fast,
             r->beta_slow);
    HP_CHECK(isfinite(r->attn_factor) && r->attn_factor > 0.0f, "rope.scaling.attn_factor",
             "%g is not a positive number", r->attn_factor);
    if (r->scaling == MR_ROPE_SCALE_NONE)
        r->factor = 1.0f;
    /* llama.cpp: mscale = attn_factor * (1 + 0.1 ln(factor)) for YaRN */
    r->mscale = r->attn_factor;
    if (r->scaling == MR_ROPE_SCALE_YARN && r->factor > 1.0f)
        r->mscale = r->attn_factor * (1.0f + 0.1f * logf(r->factor));
    HP_CHECK(r->orig_ctx >= 1, "rope.scaling.original_context_length", "must be positive");
    return MR_OK;
}

mr_status mr_arch_common_hparams(const mr_gguf *g, const char *arch, mr_hparams *hp,
                                 mr_error *err)
{
    mr_status s;
    uint32_t n_expert = 0, n_used = 0, key_len = 0, val_len = 0, n_rot = 0;
    hp->n_ctx_train = 2048;
    hp->rope.base = 10000.0f;
    hp->norm_eps = 1e-5f;
    if ((s = mr_arch_u32(g, arch, "embedding_length", 1, &hp->n_embd, err)) ||
        (s = mr_arch_u32(g, arch, "block_count", 1, &hp->n_layer, err)) ||
        (s = mr_arch_u32(g, arch, "feed_forward_length", 1, &hp->n_ff, err)) ||
        (s = mr_arch_u32(g, arch, "attention.head_count", 1, &hp->n_head, err)) ||
        (s = mr_arch_u32(g, arch, "context_length", 0, &hp->n_ctx_train, err)) ||
        (s = mr_arch_u32(g, arch, "expert_count", 0, &n_expert, err)) ||
        (s = mr_arch_u32(g, arch, "expert_used_count", 0, &n_used, err)) ||
        (s = mr_arch_u32(g, arch, "attention.key_length", 0, &key_len, err)) ||
        (s = mr_arch_u32(g, arch, "attention.value_length", 0, &val_len, err)) ||
        (s = mr_arch_u32(g, arch, "rope.dimension_count", 0, &n_rot, err)) ||
        (s = mr_arch_f32(g, arch, "rope.freq_base", 0, &hp->rope.base, err)) ||
        (s = mr_arch_f32(g, arch, "attention.layer_norm_rms_epsilon", 0, &hp->norm_eps, err)))
        return s;
    hp->n_head_kv = hp->n_head;
    if ((s = mr_arch_u32(g, arch, "attention.head_count_kv", 0, &hp->n_head_kv, err)))
        return s;
    HP_CHECK(hp->n_embd >= 1 && hp->n_embd <= 65536, "embedding_length",
             "%u is outside 1..65536", hp->n_embd);
    HP_CHECK(hp->n_layer >= 1 && hp->n_layer <= 1024, "block_count", "%u is outside 1..1024",
             hp->n_layer);
    HP_CHECK(hp->n_ff >= 1 && hp->n_ff <= 1048576, "feed_forward_length",
             "%u is outside 1..1048576", hp->n_ff);
    HP_CHECK(hp->n_head >= 1 && hp->n_head <= 1024, "attention.head_count",
             "%u is outside 1..1024", hp->n_head);
    HP_CHECK(hp->n_head_kv >= 1 && hp->n_head % hp->n_head_kv == 0, "attention.head_count_kv",
             "%u does not divide head_count %u", hp->n_head_kv, hp->n_head);
    HP_CHECK(key_len || hp->n_embd % hp->n_head == 0, "attention.head_count",
             "%u does not divide embedding_length %u", hp->n_head, hp->n_embd);
    hp->head_dim = key_len ? key_len : hp->n_embd / hp->n_head;
    hp->head_dim_v = val_len ? val_len : hp->head_dim;
    HP_CHECK(hp->head_dim >= 2 && hp->head_dim <= 1024 && hp->head_dim % 2 == 0,
             "attention.key_length", "head size %u is not an even number in 2..1024",
             hp->head_dim);
    HP_CHECK(hp->head_dim_v >= 1 && hp->head_dim_v <= 1024, "attention.value_length",
             "value head size %u is outside 1..1024", hp->head_dim_v);
    hp->rope.n_rot = n_rot ? n_rot : hp->head_dim;
    HP_CHECK(hp->rope.n_rot >= 2 && hp->rope.n_rot <= hp->head_dim && hp->rope.n_rot % 2 == 0,
             "rope.dimension_count", "%u rotated dimensions of a %u-wide head", hp->rope.n_rot,
             hp->head_dim);
    HP_CHECK(hp->n_ctx_train >= 1, "context_length", "must be positive");
    HP_CHECK(isfinite(hp->rope.base) && hp->rope.base > 0.0f, "rope.freq_base",
             "%g is not a positive number", hp->rope.base);
    HP_CHECK(isfinite(hp->norm_eps) && hp->norm_eps > 0.0f && hp->norm_eps < 1.0f,
             "attention.layer_norm_rms_epsilon", "%g is outside (0, 1)", hp->norm_eps);
    HP_CHECK(n_expert <= MR_MAX_EXPERTS, "expert_count", "%u is more than %d", n_expert,
             MR_MAX_EXPERTS);
    if (n_expert > 0) {
        HP_CHECK(n_used >= 1 && n_used <= n_expert, "expert_used_count",
                 "%u experts per token out of %u", n_used, n_expert);
        hp->is_moe = 1;
        hp->n_expert = n_expert;
        hp->n_expert_used = n_used;
    } else {
        hp->is_moe = 0;
        hp->n_expert = 1;
        hp->n_expert_used = 1;
    }
    hp->rope.mode = MR_ROPE_NORM;
    hp->attn_scale = 1.0f / sqrtf((float)hp->head_dim);
    hp->router.mode = MR_ROUTE_SOFTMAX_TOPK;
    hp->router.norm_topk = 1;
    hp->router.scale = 1.0f;
    hp->router.n_group = 1;
    hp->router.topk_group = 1;
    hp->act = MR_ACT_SILU;
    return rope_scaling(g, arch, hp, err);
}
#undef HP_CHECK

mr_status mr_bind_tensor(const mr_gguf *g, const char *name, uint64_t ne0, uint64_t ne1,
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

mr_status mr_bind_f32(const mr_gguf *g, const char *name, uint64_t n, int required,
                      float **out, mr_error *err)
{
    mr_tensor t;
    *out = NULL;
    const mr_gguf_tensor *gt = mr_gguf_tensor_find(g, name);
    if (!gt && !required)
        return MR_OK;
    /* any shape with n elements (a 2-D [rows, n_expert] bias is n values) */
    mr_status s = gt && mr_gguf_tensor_nelements(gt) == n && gt->ne[0] != n
                      ? mr_bind_tensor(g, name, gt->ne[0], gt->ne[1], gt->ne[2], 1, &t, err)
                      : mr_bind_tensor(g, name, n, 0, 0, 1, &t, err);
    if (s)
        return s;
    if (!(*out = malloc(sizeof(float) * n)))
        return mr_fail(err, MR_ENOMEM, g->path, name, MR_NO_OFFSET, "no memory");
    const mr_type_traits *tt = mr_type_get(t.type);
    for (uint64_t r = 0; r < n / t.ne[0]; r++)
        tt->to_f32(t.data + r * t.row_bytes, *out + r * t.ne[0], (int64_t)t.ne[0]);
    return MR_OK;
}

#define NAME(suffix) (snprintf(name, sizeof name, "blk.%u." suffix, il), name)

mr_status mr_bind_attn_gqa(mr_model *m, uint32_t il, mr_error *err)
{
    const mr_gguf *g = m->gguf;
    const mr_hparams *hp = &m->hp;
    mr_layer *L = &m->layers[il];
    const uint64_t q_dim = (uint64_t)hp->n_head * hp->head_dim;
    const uint64_t k_dim = (uint64_t)hp->n_head_kv * hp->head_dim;
    const uint64_t v_dim = (uint64_t)hp->n_head_kv * hp->head_dim_v;
    const uint64_t o_dim = (uint64_t)hp->n_head * hp->head_dim_v;
    char name[96];
    mr_status s;
    if ((s = mr_bind_f32(g, NAME("attn_norm.weight"), hp->n_embd, 1, &L->attn_norm, err)) ||
        (s = mr_bind_tensor(g, NAME("attn_q.weight"), hp->n_embd, q_dim, 0, 1, &L->wq, err)) ||
        (s = mr_bind_tensor(g, NAME("attn_k.weight"), hp->n_embd, k_dim, 0, 1, &L->wk, err)) ||
        (s = mr_bind_tensor(g, NAME("attn_v.weight"), hp->n_embd, v_dim, 0, 1, &L->wv, err)) ||
        (s = mr_bind_tensor(g, NAME("attn_output.weight"), o_dim, hp->n_embd, 0, 1, &L->wo,
                            err)) ||
        (s = mr_bind_f32(g, NAME("attn_q.bias"), q_dim, 0, &L->bq, err)) ||
        (s = mr_bind_f32(g, NAME("attn_k.bias"), k_dim, 0, &L->bk, err)) ||
        (s = mr_bind_f32(g, NAME("attn_v.bias"), v_dim, 0, &L->bv, err)) ||
        (s = mr_bind_f32(g, NAME("attn_output.bias"), hp->n_embd, 0, &L->bo, err)))
        return s;
    L->use_rope = 1;
    m->resident_bytes += L->wq.nbytes + L->wk.nbytes + L->wv.nbytes + L->wo.nbytes +
                         4ull * hp->n_embd;
    return MR_OK;
}

mr_status mr_bind_ffn_moe(mr_model *m, uint32_t il, mr_error *err)
{
    const mr_gguf *g = m->gguf;
    const mr_hparams *hp = &m->hp;
    mr_layer *L = &m->layers[il];
    char name[96];
    mr_status s;
    /* a family whose norm has another name (gpt-oss: post_attention_norm)
     * binds it first */
    if (!L->ffn_norm &&
        (s = mr_bind_f32(g, NAME("ffn_norm.weight"), hp->n_embd, 1, &L->ffn_norm, err)))
        return s;
    L->moe = 1;
    if (hp->is_moe) {
        if (mr_gguf_tensor_find(g, NAME("ffn_gate.0.weight")))
            return mr_fail(err, MR_EUNSUPPORTED, g->path, name, MR_NO_OFFSET,
                           "per-expert tensors (an old llama.cpp layout) are not supported: "
                           "convert again to get blk.N.ffn_*_exps");
        if ((s = mr_bind_tensor(g, NAME("ffn_gate_inp.weight"), hp->n_embd, hp->n_expert, 0, 1,
                                &L->router, err)) ||
            (s = mr_bind_tensor(g, NAME("ffn_gate_exps.weight"), hp->n_embd, hp->n_ff,
                                hp->n_expert, 1, &L->gate, err)) ||
            (s = mr_bind_tensor(g, NAME("ffn_up_exps.weight"), hp->n_embd, hp->n_ff,
                                hp->n_expert, 1, &L->up, err)) ||
            (s = mr_bind_tensor(g, NAME("ffn_down_exps.weight"), hp->n_ff, hp->n_embd,
                                hp->n_expert, 1, &L->down, err)))
            return s;
    } else {
        if ((s = mr_bind_tensor(g, NAME("ffn_gate.weight"), hp->n_embd, hp->n_ff, 0, 1,
                                &L->gate, err)) ||
            (s = mr_bind_tensor(g, NAME("ffn_up.weight"), hp->n_embd, hp->n_ff, 0, 1, &L->up,
                                err)) ||
            (s = mr_bind_tensor(g, NAME("ffn_down.weight"), hp->n_ff, hp->n_embd, 0, 1,
                                &L->down, err)))
            return s;
    }
    /* Expert bytes are reached only through the expert store. */
    L->gate.data = L->up.data = L->down.data = NULL;
    m->expert_bytes += L->gate.nbytes + L->up.nbytes + L->down.nbytes;
    m->resident_bytes += L->router.nbytes + 4ull * hp->n_embd;
    return MR_OK;
}
#undef NAME

/* Ask the kernel to read, all at once, the small float tensors that
 * binding copies out of the mapping (norms, biases, sinks): they sit
 * between the large matrices, one or two pages each, so copying them one
 * by one is a chain of random reads at queue depth 1 (0.5-0.7 s for the
 * ~200 of a 48-layer model on a cold NVMe disk).  A hint only. */
static void prefetch_small_tensors(const mr_gguf *g)
{
    if (!g->mapped)
        return;
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const mr_gguf_tensor *t = &g->tensors[i];
        if (t->nbytes == 0 || t->nbytes > (1u << 20) ||
            (t->type != MR_TYPE_F32 && t->type != MR_TYPE_F16 && t->type != MR_TYPE_BF16))
            continue;
        const uintptr_t lo = (uintptr_t)t->data & ~(page - 1);
        const uintptr_t hi = ((uintptr_t)t->data + t->nbytes + page - 1) & ~(page - 1);
        madvise((void *)lo, hi - lo, MADV_WILLNEED);
    }
}

mr_status mr_model_from_gguf(mr_gguf *g, mr_model **out, mr_error *err)
{
    mr_status s;
    mr_str arch;
    *out = NULL;
    mr_model *m = calloc(1, sizeof *m);
    if (!m) {
        s = mr_fail(err, MR_ENOMEM, g->path, NULL, MR_NO_OFFSET, "no memory");
        mr_gguf_close(g);
        return s;
    }
    m->gguf = g;
    if ((s = mr_gguf_get_str(g, "general.architecture", &arch, err)))
        goto fail;
    if (!(m->arch = mr_arch_find(arch.ptr, arch.len))) {
        char names[256];
        s = mr_fail(err, MR_EUNSUPPORTED, g->path, "general.architecture",
                    key_offset(g, "general.architecture"),
                    "architecture '%.*s' is not supported (supported: %s)",
                    (int)(arch.len > 40 ? 40 : arch.len), arch.ptr, mr_arch_names(names, sizeof names));
        goto fail;
    }
    if ((s = m->arch->hparams(g, &m->hp, err)))
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
    if ((s = mr_arch_u32(g, m->arch->gguf_name, "vocab_size", 0, &vocab_kv, err)))
        goto fail;
    if (vocab_kv != m->hp.n_vocab) {
        char k[64];
        s = mr_fail(err, MR_EFORMAT, g->path, arch_key(k, sizeof k, m->arch->gguf_name, "vocab_size"),
                    key_offset(g, k), "%u contradicts token_embd.weight's %u rows", vocab_kv,
                    m->hp.n_vocab);
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
    prefetch_small_tensors(g);
    if ((s = mr_bind_tensor(g, "token_embd.weight", hp->n_embd, hp->n_vocab, 0, 1, &m->tok_embd,
                            err)) ||
        (s = mr_bind_f32(g, "output_norm.weight", hp->n_embd, 1, &m->output_norm, err)) ||
        (s = mr_bind_tensor(g, "output.weight", hp->n_embd, hp->n_vocab, 0, 0, &m->output, err)) ||
        (s = mr_bind_f32(g, "rope_freqs.weight", hp->rope.n_rot / 2, 0, &m->rope_freqs, err)))
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
        if ((s = m->arch->bind(m, il, err)))
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
        if (L->moe)
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

const char *mr_model_family(const mr_model *m)
{
    return m->arch->family;
}

const char *mr_model_routing(const mr_model *m)
{
    return m->hp.is_moe ? m->arch->routing : "dense (no router)";
}

void mr_model_free(mr_model *m)
{
    if (!m)
        return;
    if (m->layers) {
        for (uint32_t i = 0; i < m->hp.n_layer; i++) {
            mr_layer *L = &m->layers[i];
            mr_tensor *t[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->wq_a, &L->wq_b, &L->wkv_a,
                              &L->sh_gate, &L->sh_up, &L->sh_down};
            for (size_t j = 0; j < sizeof t / sizeof t[0]; j++)
                mr_pack_free((uint8_t *)t[j]->packed, t[j]->packed_bytes);
            float *f[] = {L->attn_norm, L->ffn_norm, L->q_norm, L->k_norm, L->sinks,
                          L->bq, L->bk, L->bv, L->bo, L->router_bias, L->select_bias,
                          L->gate_bias, L->up_bias, L->down_bias, L->q_a_norm,
                          L->kv_a_norm};
            for (size_t j = 0; j < sizeof f / sizeof f[0]; j++)
                free(f[j]);
        }
        free(m->layers);
    }
    if (m->output.data != m->tok_embd.data)
        mr_pack_free((uint8_t *)m->output.packed, m->output.packed_bytes);
    free(m->output_norm);
    free(m->rope_freqs);
    mr_gguf_close(m->gguf);
    free(m);
}
