/* mla.c - Multi-head Latent Attention (DeepSeek-V2/V3, Kimi K2).
 *
 * Per token (sizes of DeepSeek-V3 in brackets):
 *   q    = wq_b(rmsnorm(wq_a h) * q_a_norm)   (or wq h)      n_head x [nope 128 | rope 64]
 *   c|kp = wkv_a h                                           [latent 512 | k_pe 64]
 *   c    = rmsnorm(c) * kv_a_norm;  rope on q's rope part and on k_pe (one
 *          k_pe shared by every head; the GGUF keeps DeepSeek's pairs adjacent)
 * The checkpoint's own form expands c per head, k_nope_h = Wkb_h^T c and
 * v_h = Wvb_h c, and attends over [k_nope_h | k_pe] with [q_nope_h | q_pe_h].
 * Since q_nope_h . (Wkb_h^T c) = (Wkb_h q_nope_h) . c, the absorbed form
 * (the DeepSeek-V2 paper's, and llama.cpp's) caches only [c | k_pe]
 * (kv_lora_rank + rope floats per token, 576 against 40,960 expanded) and
 * runs as multi-query attention with one kv head:
 *   query_h = [Wkb_h q_nope_h | q_pe_h],  key = value-prefix = [c | k_pe]
 *   out_h   = Wvb_h (softmax . c),        x += wo concat_h(out_h)
 * The softmax scale is the family's (mscale^2 / sqrt(nope + rope) for YaRN).
 * c->mla_naive selects the expanded form over the same latent cache, so the
 * two can be compared on the same model.
 */
#include <stdlib.h>
#include <string.h>

#include "../../quant/types.h"
#include "nn.h"

/* Sizes of the scratch regions, each for n_batch tokens (floats/token). */
typedef struct {
    uint32_t qa, qf, gin, gout, vo;
} mla_sizes;

static mla_sizes sizes_of(const mr_hparams *hp)
{
    const uint32_t nope = hp->head_dim_mla_k - hp->rope.n_rot;
    mla_sizes s;
    s.qa = hp->n_lora_q;
    s.qf = hp->n_head * hp->head_dim_mla_k;
    s.gin = nope > hp->n_lora_kv ? nope : hp->n_lora_kv;
    s.gout = hp->n_lora_kv > hp->head_dim_mla_v ? hp->n_lora_kv : hp->head_dim_mla_v;
    s.vo = hp->n_head * hp->head_dim_mla_v;
    return s;
}

uint32_t nn_mla_scratch_floats(const mr_hparams *hp)
{
    const mla_sizes s = sizes_of(hp);
    return s.qa + s.qf + s.gin + s.gout + s.vo;
}

/* One head's slice of a weight stacked over heads in ne[2]. */
static const uint8_t *head_slice(const mr_tensor *w, uint32_t h)
{
    return w->data + (size_t)h * w->ne[1] * w->row_bytes;
}

/* The absorbed form: queries in latent space, MQA over the latent cache,
 * values expanded per head after the softmax. */
static void attend_absorbed(mr_context *c, uint32_t il, const mr_layer *L, uint32_t n,
                            const float *qf, float *gin, float *gout, float *vo)
{
    const mr_hparams *hp = &c->m->hp;
    const uint32_t H = hp->n_head, rot = hp->rope.n_rot, lkv = hp->n_lora_kv;
    const uint32_t dk = hp->head_dim_mla_k, nope = dk - rot, dv = hp->head_dim_mla_v;
    const uint32_t row = hp->head_dim; /* lkv + rot: one cached latent */
    for (uint32_t h = 0; h < H; h++) {
        for (uint32_t t = 0; t < n; t++)
            memcpy(gin + (size_t)t * nope, qf + (size_t)t * H * dk + (size_t)h * dk,
                   nope * sizeof(float));
        nn_matmul_raw(c, L->wk_b.type, head_slice(&L->wk_b, h), L->wk_b.row_bytes, nope, lkv,
                      gin, n, gout);
        for (uint32_t t = 0; t < n; t++) {
            float *q = c->q + (size_t)t * c->q_dim + (size_t)h * row;
            memcpy(q, gout + (size_t)t * lkv, lkv * sizeof(float));
            memcpy(q + lkv, qf + (size_t)t * H * dk + (size_t)h * dk + nope, rot * sizeof(float));
        }
    }
    for (uint32_t r = 0; r < c->n_runs; r++) { /* each sequence over its own cache */
        const uint32_t t0 = c->run_t0[r];
        const uint8_t *kc = c->k_cache + ctx_kv_row(c, il, c->run_seq[r]) * c->k_row_bytes;
        nn_attn a = {
            .q = c->q + (size_t)t0 * c->q_dim, .q_stride = c->q_dim, .k = kc, .k_stride = row,
            .v = kc, .v_stride = row, .k_type = c->k_type, .v_type = c->k_type,
            .out = c->att + (size_t)t0 * c->o_dim, .out_stride = c->o_dim, .k_head = row,
            .v_head = 0, .n_head = H, .n_head_kv = 1, .dk = row, .dv = lkv,
            .n_tok = c->run_n[r], .pos0 = c->tok_pos[t0], .scale = hp->attn_scale,
            .sinks = L->sinks, .window = L->window, .chunk = L->chunk,
        };
        nn_attention(c, &a);
    }
    for (uint32_t h = 0; h < H; h++) {
        for (uint32_t t = 0; t < n; t++)
            memcpy(gin + (size_t)t * lkv, c->att + (size_t)t * c->o_dim + (size_t)h * lkv,
                   lkv * sizeof(float));
        nn_matmul_raw(c, L->wv_b.type, head_slice(&L->wv_b, h), L->wv_b.row_bytes, lkv, dv,
                      gin, n, gout);
        for (uint32_t t = 0; t < n; t++)
            memcpy(vo + (size_t)t * H * dv + (size_t)h * dv, gout + (size_t)t * dv,
                   dv * sizeof(float));
    }
}

/* A head-stacked weight as f32, (ne2, ne1, ne0). */
static float *dequant_heads(const mr_tensor *w)
{
    const size_t rows = (size_t)w->ne[1] * w->ne[2];
    float *f = malloc(sizeof(float) * rows * w->ne[0]);
    if (!f)
        return NULL;
    const mr_type_traits *tt = mr_type_get(w->type);
    for (size_t r = 0; r < rows; r++)
        tt->to_f32(w->data + r * w->row_bytes, f + r * w->ne[0], (int64_t)w->ne[0]);
    return f;
}

/* The expanded form over the same cache: every cached latent becomes
 * n_head keys [Wkb_h^T c | k_pe] and values Wvb_h c (f32 weights). */
static mr_status attend_naive(mr_context *c, const mr_layer *L, uint32_t n, uint32_t pos0,
                              const float *qf, const uint8_t *kc, float *vo, mr_error *err)
{
    const mr_hparams *hp = &c->m->hp;
    const uint32_t H = hp->n_head, rot = hp->rope.n_rot, lkv = hp->n_lora_kv;
    const uint32_t dk = hp->head_dim_mla_k, nope = dk - rot, dv = hp->head_dim_mla_v;
    const uint32_t row = hp->head_dim, T = pos0 + n;
    float *kb = dequant_heads(&L->wk_b), *vb = dequant_heads(&L->wv_b);
    float *K = malloc(sizeof(float) * T * H * dk), *V = malloc(sizeof(float) * T * H * dv);
    float *lat = malloc(sizeof(float) * row);
    mr_status s = MR_OK;
    if (!kb || !vb || !K || !V || !lat) {
        s = mr_fail(err, MR_ENOMEM, NULL, "mla", MR_NO_OFFSET,
                    "no memory for the expanded keys and values of %u positions", T);
        goto out;
    }
    for (uint32_t p = 0; p < T; p++) {
        mr_type_get(c->k_type)->to_f32(kc + (size_t)p * c->k_row_bytes, lat, row);
        for (uint32_t h = 0; h < H; h++) {
            float *k = K + ((size_t)p * H + h) * dk, *v = V + ((size_t)p * H + h) * dv;
            const float *kbh = kb + (size_t)h * lkv * nope, *vbh = vb + (size_t)h * dv * lkv;
            for (uint32_t i = 0; i < nope; i++) {
                float sum = 0.0f;
                for (uint32_t j = 0; j < lkv; j++)
                    sum += kbh[(size_t)j * nope + i] * lat[j];
                k[i] = sum;
            }
            memcpy(k + nope, lat + lkv, rot * sizeof(float));
            for (uint32_t d = 0; d < dv; d++) {
                float sum = 0.0f;
                for (uint32_t j = 0; j < lkv; j++)
                    sum += vbh[(size_t)d * lkv + j] * lat[j];
                v[d] = sum;
            }
        }
    }
    nn_attn a = {
        .q = qf, .q_stride = H * dk, .k = K, .k_stride = H * dk, .v = V, .v_stride = H * dv,
        .k_type = MR_TYPE_F32, .v_type = MR_TYPE_F32, .out = vo, .out_stride = H * dv, .k_head = dk, .v_head = dv,
        .n_head = H, .n_head_kv = H, .dk = dk, .dv = dv,
        .n_tok = n, .pos0 = pos0, .scale = hp->attn_scale, .sinks = L->sinks,
        .window = L->window, .chunk = L->chunk,
    };
    nn_attention(c, &a);
out:
    free(kb);
    free(vb);
    free(K);
    free(V);
    free(lat);
    return s;
}

mr_status nn_mla_attention(mr_context *c, uint32_t il, uint32_t n, mr_error *err)
{
    const mr_hparams *hp = &c->m->hp;
    const mr_layer *L = &c->m->layers[il];
    const uint32_t H = hp->n_head, rot = hp->rope.n_rot, lkv = hp->n_lora_kv;
    const uint32_t dk = hp->head_dim_mla_k, nope = dk - rot, row = hp->head_dim;
    const mla_sizes sz = sizes_of(hp);
    const size_t nb = c->n_batch;
    float *qa = c->scratch, *qf = qa + nb * sz.qa, *gin = qf + nb * sz.qf;
    float *gout = gin + nb * sz.gin, *vo = gout + nb * sz.gout;
    /* never a ring: MLA does not slide */
    const mr_from_f32_fn k_put = mr_type_get(c->k_type)->from_f32;
    float *kv = c->kv_k; /* (n, lkv + rot) */
    mr_status s;

    if (hp->n_lora_q) {
        nn_matmul(c, &L->wq_a, c->h, n, qa);
        nn_rmsnorm_rows(qa, qa, L->q_a_norm, n, hp->n_lora_q, hp->norm_eps);
        nn_matmul(c, &L->wq_b, qa, n, qf);
    } else {
        nn_matmul(c, &L->wq, c->h, n, qf);
    }
    nn_matmul(c, &L->wkv_a, c->h, n, kv);
    for (uint32_t t = 0; t < n; t++) {
        float *kt = kv + (size_t)t * row;
        nn_rmsnorm(kt, kt, L->kv_a_norm, lkv, hp->norm_eps); /* k_pe is not normed */
        nn_rope_apply(c, qf + (size_t)t * H * dk + nope, t, H, dk);
        nn_rope_apply(c, kt + lkv, t, 1, row);
        k_put(kt, c->k_cache + (ctx_kv_row(c, il, c->tok_seq[t]) + c->tok_pos[t]) * c->k_row_bytes,
              row);
    }
    if (c->mla_naive) {
        for (uint32_t r = 0; r < c->n_runs; r++) {
            const uint32_t t0 = c->run_t0[r];
            const uint8_t *kc = c->k_cache + ctx_kv_row(c, il, c->run_seq[r]) * c->k_row_bytes;
            if ((s = attend_naive(c, L, c->run_n[r], c->tok_pos[t0],
                                  qf + (size_t)t0 * H * dk, kc,
                                  vo + (size_t)t0 * H * hp->head_dim_mla_v, err)))
                return s;
        }
    } else {
        attend_absorbed(c, il, L, n, qf, gin, gout, vo);
    }
    nn_matmul(c, &L->wo, vo, n, c->h);
    nn_add(c->x, c->h, (size_t)n * hp->n_embd);
    return MR_OK;
}
