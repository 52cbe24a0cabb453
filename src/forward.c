/* forward.c - the llama-architecture forward (dense and Mixtral MoE).
 *
 * Per layer, for a batch of n tokens x (n, n_embd):
 *   h  = rmsnorm(x) * attn_norm
 *   q, k, v = h Wq, h Wk, h Wv;  RoPE on q, k (adjacent pairs 2i, 2i+1: the
 *             GGUF converter permuted the Q/K rows for this convention)
 *   x += softmax(q k^T / sqrt(d), causal) v  Wo      (GQA: head h reads kv h / (n_head/n_head_kv))
 *   h  = rmsnorm(x) * ffn_norm
 *   router: softmax(h Wr) -> top-k -> renormalise;  dense: one expert, weight 1
 *   x += sum_e w_e * down_e(silu(gate_e h) * up_e h)
 * then logits = rmsnorm(x) * output_norm  Wout.
 *
 * Experts are processed grouped: the batch's tokens routed to an expert are
 * gathered, multiplied together and scattered back, in ascending expert id,
 * so every store backend yields the same sums in the same order.
 */
#include "forward.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../simd/kernels.h"
#include "threadpool.h"

struct mr_context {
    const mr_model *m;
    mr_expert_store *store;
    const mr_kernels *k; /* &kt[0] (fast) or &kt[1] (exact) */
    mr_kernels kt[2];    /* this context's tables, by default the chosen ISA's */
    mr_pool *pool;
    uint32_t n_ctx, n_batch, n_past;
    void *act;       /* prepared (quantized) activations of one matmul input */
    float *k_cache;  /* (n_layer, n_ctx, kv_dim) */
    float *v_cache;  /* (n_layer, n_ctx, kv_dim) */
    /* scratch for a batch of up to n_batch tokens */
    float *x;        /* (n_batch, n_embd) residual stream */
    float *h;        /* (n_batch, n_embd) normed input */
    float *q;        /* (n_batch, q_dim) */
    float *kv_k;     /* (n_batch, kv_dim) */
    float *kv_v;     /* (n_batch, kv_dim) */
    float *att;      /* (n_batch, q_dim) attention output */
    float *scores;   /* (max(n_batch, n_head), n_ctx) attention rows */
    float *rl;       /* (n_batch, n_expert) router logits */
    uint32_t *sel;   /* (n_layer, n_batch, n_used) chosen experts */
    float *selw;     /* (n_batch, n_used) their weights */
    float *xg;       /* (n_batch, n_embd) gathered inputs of one expert */
    float *g;        /* (n_batch, n_ff) */
    float *u;        /* (n_batch, n_ff) */
    float *y;        /* (n_batch, n_embd) */
    uint32_t *tok_of;/* (n_batch) token index of each gathered row */
    float *w_of;     /* (n_batch) its routing weight */
    float *rope_inv; /* (head_dim / 2) inverse frequencies */
    uint64_t *route_counts; /* (n_layer, n_expert) tokens routed, for stats */
};

static void *xcalloc(size_t n, size_t sz, int *fail)
{
    void *p = calloc(n ? n : 1, sz);
    if (!p)
        *fail = 1;
    return p;
}

mr_status mr_context_new(const mr_model *m, mr_expert_store *store, uint32_t n_ctx,
                         uint32_t n_batch, mr_context **out, mr_error *err)
{
    const mr_hparams *hp = &m->hp;
    *out = NULL;
    if (n_ctx < 1 || n_ctx > (1u << 20) || n_batch < 1)
        return mr_fail(err, MR_EINVAL, NULL, "context", MR_NO_OFFSET,
                       "context length %u or batch %u is out of range", n_ctx, n_batch);
    if (n_batch > n_ctx)
        n_batch = n_ctx;
    mr_context *c = calloc(1, sizeof *c);
    if (!c)
        return mr_fail(err, MR_ENOMEM, NULL, "context", MR_NO_OFFSET, "no memory");
    const size_t q_dim = (size_t)hp->n_head * hp->head_dim;
    const size_t kv_dim = (size_t)hp->n_head_kv * hp->head_dim;
    const size_t nb = n_batch;
    int fail = 0;
    c->m = m;
    c->store = store;
    c->kt[0] = *mr_kernels_get();
    c->kt[1] = *mr_kernels_get_exact();
    c->k = &c->kt[0];
    c->n_ctx = n_ctx;
    c->n_batch = n_batch;
    c->k_cache = xcalloc((size_t)hp->n_layer * n_ctx * kv_dim, sizeof(float), &fail);
    c->v_cache = xcalloc((size_t)hp->n_layer * n_ctx * kv_dim, sizeof(float), &fail);
    c->x = xcalloc(nb * hp->n_embd, sizeof(float), &fail);
    c->h = xcalloc(nb * hp->n_embd, sizeof(float), &fail);
    c->q = xcalloc(nb * q_dim, sizeof(float), &fail);
    c->kv_k = xcalloc(nb * kv_dim, sizeof(float), &fail);
    c->kv_v = xcalloc(nb * kv_dim, sizeof(float), &fail);
    c->att = xcalloc(nb * q_dim, sizeof(float), &fail);
    c->scores = xcalloc((size_t)(nb > hp->n_head ? nb : hp->n_head) * n_ctx, sizeof(float),
                        &fail);
    size_t widest = hp->n_embd > hp->n_ff ? hp->n_embd : hp->n_ff;
    widest = widest > q_dim ? widest : q_dim;
    c->act = xcalloc(nb, (widest / 32 + 1) * 36 + widest * sizeof(float), &fail);
    c->rl = xcalloc(nb * hp->n_expert, sizeof(float), &fail);
    c->sel = xcalloc((size_t)hp->n_layer * nb * hp->n_expert_used, sizeof(uint32_t), &fail);
    c->selw = xcalloc(nb * hp->n_expert_used, sizeof(float), &fail);
    c->xg = xcalloc(nb * hp->n_embd, sizeof(float), &fail);
    c->g = xcalloc(nb * hp->n_ff, sizeof(float), &fail);
    c->u = xcalloc(nb * hp->n_ff, sizeof(float), &fail);
    c->y = xcalloc(nb * hp->n_embd, sizeof(float), &fail);
    c->tok_of = xcalloc(nb, sizeof(uint32_t), &fail);
    c->w_of = xcalloc(nb, sizeof(float), &fail);
    c->rope_inv = xcalloc(hp->head_dim / 2, sizeof(float), &fail);
    c->route_counts = xcalloc((size_t)hp->n_layer * hp->n_expert, sizeof(uint64_t), &fail);
    if (!fail && mr_pool_new(1, &c->pool, err) != MR_OK) {
        mr_context_free(c);
        return err ? err->code : MR_ENOMEM;
    }
    if (fail) {
        mr_context_free(c);
        return mr_fail(err, MR_ENOMEM, NULL, "context", MR_NO_OFFSET,
                       "no memory for a %u-token KV cache and %u-token batch", n_ctx, n_batch);
    }
    for (uint32_t i = 0; i < hp->head_dim / 2; i++)
        c->rope_inv[i] = (float)pow(hp->rope_base, -2.0 * i / hp->n_rot);
    *out = c;
    return MR_OK;
}

uint64_t mr_context_bytes(const mr_model *m, uint32_t n_ctx, uint32_t n_batch)
{
    const mr_hparams *hp = &m->hp;
    const uint64_t q_dim = (uint64_t)hp->n_head * hp->head_dim;
    const uint64_t kv_dim = (uint64_t)hp->n_head_kv * hp->head_dim;
    const uint64_t nb = n_batch < n_ctx ? n_batch : n_ctx;
    const uint64_t widest = hp->n_embd > hp->n_ff ? (hp->n_embd > q_dim ? hp->n_embd : q_dim)
                                                  : (hp->n_ff > q_dim ? hp->n_ff : q_dim);
    uint64_t b = 2ull * hp->n_layer * n_ctx * kv_dim * 4;         /* KV cache */
    b += nb * (4ull * hp->n_embd + 2 * q_dim + 2 * kv_dim + 2ull * hp->n_ff) * 4;
    b += (nb > hp->n_head ? nb : hp->n_head) * (uint64_t)n_ctx * 4; /* scores */
    b += nb * ((widest / 32 + 1) * 36 + widest * 4);                /* activations */
    return b;
}

void mr_context_free(mr_context *c)
{
    if (!c)
        return;
    float *bufs[] = {c->k_cache, c->v_cache, c->x, c->h, c->q, c->kv_k, c->kv_v, c->att,
                     c->scores, c->rl, c->selw, c->xg, c->g, c->u, c->y, c->w_of,
                     c->rope_inv};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        free(bufs[i]);
    free(c->sel);
    free(c->tok_of);
    free(c->act);
    free(c->route_counts);
    mr_pool_free(c->pool);
    free(c);
}

mr_status mr_context_set_threads(mr_context *c, int n_threads, mr_error *err)
{
    mr_pool *p;
    mr_status s = mr_pool_new(n_threads, &p, err);
    if (s)
        return s;
    mr_pool_free(c->pool);
    c->pool = p;
    return MR_OK;
}

void mr_context_set_exact(mr_context *c, int exact)
{
    c->k = &c->kt[exact ? 1 : 0];
}

mr_status mr_context_set_isa(mr_context *c, const char *isa, mr_error *err)
{
    const mr_isa want = isa ? mr_isa_parse(isa) : MR_ISA_COUNT;
    mr_kernels fast, exact;
    if (want == MR_ISA_COUNT)
        return mr_fail(err, MR_EINVAL, NULL, "isa", MR_NO_OFFSET,
                       "unknown kernel set '%s' (scalar, avx2, avx512 or neon)", isa ? isa : "");
    if (!mr_kernels_for_isa(want, 0, &fast) || !mr_kernels_for_isa(want, 1, &exact))
        return mr_fail(err, MR_EINVAL, NULL, "isa", MR_NO_OFFSET,
                       "kernel set '%s' is not available on this CPU or in this build (best: %s)",
                       isa, mr_isa_name(mr_isa_best()));
    const int is_exact = c->k == &c->kt[1];
    c->kt[0] = fast;
    c->kt[1] = exact;
    c->k = &c->kt[is_exact];
    return MR_OK;
}

const char *mr_context_isa(const mr_context *c)
{
    return mr_isa_name(c->k->isa);
}

int mr_context_threads(const mr_context *c)
{
    return mr_pool_threads(c->pool);
}

void mr_context_reset(mr_context *c)
{
    c->n_past = 0;
}

uint32_t mr_context_n_past(const mr_context *c)
{
    return c->n_past;
}

uint32_t mr_context_n_ctx(const mr_context *c)
{
    return c->n_ctx;
}

const uint64_t *mr_context_routing_counts(const mr_context *c)
{
    return c->route_counts;
}

const uint32_t *mr_context_last_routing(const mr_context *c, uint32_t layer)
{
    return c->sel + (size_t)layer * c->n_batch * c->m->hp.n_expert_used;
}

/* out = x / sqrt(mean(x^2) + eps) * w, for one row of n. */
static void rmsnorm(float *out, const float *x, const float *w, uint32_t n, float eps)
{
    float ss = 0.0f;
    for (uint32_t i = 0; i < n; i++)
        ss += x[i] * x[i];
    const float scale = 1.0f / sqrtf(ss / (float)n + eps);
    for (uint32_t i = 0; i < n; i++)
        out[i] = x[i] * scale * w[i];
}

/* Rotate adjacent pairs (2i, 2i+1) of each head by pos * theta_i. */
static void rope(float *v, uint32_t n_heads, uint32_t head_dim, const float *inv, uint32_t pos)
{
    for (uint32_t h = 0; h < n_heads; h++) {
        float *p = v + (size_t)h * head_dim;
        for (uint32_t i = 0; i < head_dim / 2; i++) {
            const float th = (float)pos * inv[i];
            const float cs = cosf(th), sn = sinf(th);
            const float a = p[2 * i], b = p[2 * i + 1];
            p[2 * i] = a * cs - b * sn;
            p[2 * i + 1] = a * sn + b * cs;
        }
    }
}

static void softmax(float *x, uint32_t n)
{
    float max = x[0], sum = 0.0f;
    for (uint32_t i = 1; i < n; i++)
        if (x[i] > max)
            max = x[i];
    for (uint32_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }
    for (uint32_t i = 0; i < n; i++)
        x[i] /= sum;
}

static inline float silu(float v)
{
    return v / (1.0f + expf(-v));
}

typedef struct {
    const mr_kernels *k;
    uint32_t type;
    const void *w;
    size_t row_bytes;
    const void *act;
    int64_t n, n_out, n_tok;
    float *y;
} mm_job;

static void mm_range(void *arg, int64_t r0, int64_t r1)
{
    const mm_job *j = arg;
    mr_matmul_rows(j->k, j->type, j->w, j->row_bytes, j->act, j->n, j->n_tok, j->y, j->n_out,
                   r0, r1);
}

/* y (n_tok x n_out) = x (n_tok x n_in) W^T for a weight of the given type,
 * rows split across the pool. */
static void matmul_raw(mr_context *c, uint32_t type, const void *w, size_t row_bytes,
                       int64_t n_in, int64_t n_out, const float *x, int64_t n_tok, float *y)
{
    mm_job j = {c->k, type, w, row_bytes, NULL, n_in, n_out, n_tok, y};
    j.act = mr_act_prepare(c->k, type, x, n_in, n_tok, c->act);
    mr_pool_run(c->pool, n_out, 16, mm_range, &j);
}

static void matmul(mr_context *c, const mr_tensor *w, const float *x, uint32_t n, float *y)
{
    matmul_raw(c, w->type, w->data, w->row_bytes, (int64_t)w->ne[0], (int64_t)w->ne[1], x, n,
               y);
}

typedef struct {
    mr_context *c;
    const float *kc, *vc; /* this layer's caches */
    uint32_t n;
    float scale;
} attn_job;

/* Causal attention of token t of the batch for head h, using score row
 * `row` of the scratch. */
static void attend(const attn_job *j, uint32_t t, uint32_t h, size_t row)
{
    const mr_context *c = j->c;
    const mr_hparams *hp = &c->m->hp;
    const uint32_t hd = hp->head_dim, q_dim = hp->n_head * hd, kv_dim = hp->n_head_kv * hd;
    const uint32_t kvh = h / (hp->n_head / hp->n_head_kv);
    const uint32_t n_kv = c->n_past + t + 1; /* causal: positions 0..pos */
    const float *qh = c->q + (size_t)t * q_dim + (size_t)h * hd;
    float *scores = c->scores + row * c->n_ctx;
    for (uint32_t p = 0; p < n_kv; p++) {
        const float *kp = j->kc + (size_t)p * kv_dim + (size_t)kvh * hd;
        float s = 0.0f;
        for (uint32_t i = 0; i < hd; i++)
            s += qh[i] * kp[i];
        scores[p] = s * j->scale;
    }
    softmax(scores, n_kv);
    float *out = c->att + (size_t)t * q_dim + (size_t)h * hd;
    memset(out, 0, hd * sizeof(float));
    for (uint32_t p = 0; p < n_kv; p++) {
        const float *vp = j->vc + (size_t)p * kv_dim + (size_t)kvh * hd;
        const float a = scores[p];
        for (uint32_t i = 0; i < hd; i++)
            out[i] += a * vp[i];
    }
}

/* Batch: each thread takes whole tokens (all heads), score row = token. */
static void attn_tokens_range(void *arg, int64_t t0, int64_t t1)
{
    const attn_job *j = arg;
    for (int64_t t = t0; t < t1; t++)
        for (uint32_t h = 0; h < j->c->m->hp.n_head; h++)
            attend(j, (uint32_t)t, h, (size_t)t);
}

/* One token: each thread takes whole heads, score row = head. */
static void attn_heads_range(void *arg, int64_t h0, int64_t h1)
{
    const attn_job *j = arg;
    for (int64_t h = h0; h < h1; h++)
        attend(j, 0, (uint32_t)h, (size_t)h);
}

/* Self-attention of the batch's n tokens (positions n_past..), adding the
 * projected output into x. */
static void attention(mr_context *c, uint32_t il, uint32_t n)
{
    const mr_hparams *hp = &c->m->hp;
    const mr_layer *L = &c->m->layers[il];
    const uint32_t hd = hp->head_dim, q_dim = hp->n_head * hd, kv_dim = hp->n_head_kv * hd;
    const float scale = 1.0f / sqrtf((float)hd);
    float *kc = c->k_cache + (size_t)il * c->n_ctx * kv_dim;
    float *vc = c->v_cache + (size_t)il * c->n_ctx * kv_dim;

    for (uint32_t t = 0; t < n; t++)
        rmsnorm(c->h + (size_t)t * hp->n_embd, c->x + (size_t)t * hp->n_embd, L->attn_norm,
                hp->n_embd, hp->norm_eps);
    matmul(c, &L->wq, c->h, n, c->q);
    matmul(c, &L->wk, c->h, n, c->kv_k);
    matmul(c, &L->wv, c->h, n, c->kv_v);
    for (uint32_t t = 0; t < n; t++) {
        const uint32_t pos = c->n_past + t;
        rope(c->q + (size_t)t * q_dim, hp->n_head, hd, c->rope_inv, pos);
        rope(c->kv_k + (size_t)t * kv_dim, hp->n_head_kv, hd, c->rope_inv, pos);
        memcpy(kc + (size_t)pos * kv_dim, c->kv_k + (size_t)t * kv_dim, kv_dim * sizeof(float));
        memcpy(vc + (size_t)pos * kv_dim, c->kv_v + (size_t)t * kv_dim, kv_dim * sizeof(float));
    }
    attn_job j = {c, kc, vc, n, scale};
    if (n == 1)
        mr_pool_run(c->pool, hp->n_head, 1, attn_heads_range, &j);
    else
        mr_pool_run(c->pool, n, 1, attn_tokens_range, &j);
    /* project into h (free now) and add to the residual stream */
    matmul(c, &L->wo, c->att, n, c->h);
    for (size_t i = 0; i < (size_t)n * hp->n_embd; i++)
        c->x[i] += c->h[i];
}

/* Route each token: softmax over the router logits, keep the top
 * n_expert_used (ties to the lower id), renormalise their probabilities. */
static void route(mr_context *c, uint32_t il, uint32_t n)
{
    const mr_hparams *hp = &c->m->hp;
    const uint32_t ne = hp->n_expert, nu = hp->n_expert_used;
    uint32_t *sel = c->sel + (size_t)il * c->n_batch * nu;
    if (!hp->is_moe) {
        for (uint32_t t = 0; t < n; t++) {
            sel[t] = 0;
            c->selw[t] = 1.0f;
        }
        return;
    }
    matmul(c, &c->m->layers[il].router, c->h, n, c->rl);
    for (uint32_t t = 0; t < n; t++) {
        float *p = c->rl + (size_t)t * ne;
        softmax(p, ne);
        uint32_t *st = sel + (size_t)t * nu;
        float *wt = c->selw + (size_t)t * nu;
        float sum = 0.0f;
        for (uint32_t k = 0; k < nu; k++) {
            uint32_t best = UINT32_MAX;
            for (uint32_t e = 0; e < ne; e++) {
                int taken = 0;
                for (uint32_t j = 0; j < k; j++)
                    taken |= st[j] == e;
                if (!taken && (best == UINT32_MAX || p[e] > p[best]))
                    best = e;
            }
            st[k] = best;
            wt[k] = p[best];
            sum += p[best];
        }
        for (uint32_t k = 0; k < nu; k++) {
            wt[k] /= sum;
            c->route_counts[(size_t)il * ne + st[k]]++;
        }
    }
}

/* Prefetch hints: apply the routers of the next prefetch_depth layers to
 * this layer's post-attention state (normed with their own ffn_norm) and
 * tell the store which experts they will probably want.  Only a guess:
 * the store may ignore it, and correctness never depends on it. */
static void guess_ahead(mr_context *c, uint32_t il, uint32_t n)
{
    const mr_hparams *hp = &c->m->hp;
    const uint32_t depth = c->store->prefetch_depth, ne = hp->n_expert, nu = hp->n_expert_used;
    if (!hp->is_moe || !depth || !c->store->ops->hint)
        return;
    for (uint32_t g = il + 1; g <= il + depth && g < hp->n_layer; g++) {
        const mr_layer *G = &c->m->layers[g];
        uint8_t want[MR_MAX_EXPERTS] = {0};
        for (uint32_t t = 0; t < n; t++)
            rmsnorm(c->xg + (size_t)t * hp->n_embd, c->x + (size_t)t * hp->n_embd, G->ffn_norm,
                    hp->n_embd, hp->norm_eps);
        matmul(c, &G->router, c->xg, n, c->rl);
        for (uint32_t t = 0; t < n; t++) {
            const float *lg = c->rl + (size_t)t * ne;
            for (uint32_t k = 0; k < nu; k++) {
                uint32_t best = UINT32_MAX;
                for (uint32_t e = 0; e < ne; e++)
                    if (!(want[e] & 2) && (best == UINT32_MAX || lg[e] > lg[best]))
                        best = e;
                want[best] |= 3; /* 1: wanted, 2: taken for this token */
            }
            for (uint32_t e = 0; e < ne; e++)
                want[e] &= 1;
        }
        uint32_t ids[MR_MAX_EXPERTS], m = 0;
        for (uint32_t e = 0; e < ne; e++)
            if (want[e])
                ids[m++] = e;
        mr_expert_store_hint(c->store, g, ids, m);
    }
}

/* The MoE (or dense) feed-forward of the batch, added into x. */
static mr_status feed_forward(mr_context *c, uint32_t il, uint32_t n, mr_error *err)
{
    const mr_hparams *hp = &c->m->hp;
    const mr_layer *L = &c->m->layers[il];
    const uint32_t nu = hp->n_expert_used, ne = hp->n_expert;
    const uint32_t *sel = c->sel + (size_t)il * c->n_batch * nu;
    uint32_t used[MR_MAX_EXPERTS], n_used = 0;
    mr_status s;

    for (uint32_t t = 0; t < n; t++)
        rmsnorm(c->h + (size_t)t * hp->n_embd, c->x + (size_t)t * hp->n_embd, L->ffn_norm,
                hp->n_embd, hp->norm_eps);
    route(c, il, n);

    /* the distinct experts of the batch, ascending */
    for (uint32_t e = 0; e < ne; e++) {
        int any = 0;
        for (size_t i = 0; i < (size_t)n * nu && !any; i++)
            any = sel[i] == e;
        if (any)
            used[n_used++] = e;
    }
    if ((s = mr_expert_store_plan(c->store, il, used, n_used, err)))
        return s;
    guess_ahead(c, il, n);

    /* accumulate into att (free after attention) as (n, n_embd) */
    float *acc = c->att;
    memset(acc, 0, (size_t)n * hp->n_embd * sizeof(float));
    for (uint32_t ui = 0; ui < n_used; ui++) {
        const uint32_t e = used[ui];
        uint32_t m = 0;
        for (uint32_t t = 0; t < n; t++)
            for (uint32_t k = 0; k < nu; k++)
                if (sel[(size_t)t * nu + k] == e) {
                    c->tok_of[m] = t;
                    c->w_of[m] = c->selw[(size_t)t * nu + k];
                    memcpy(c->xg + (size_t)m * hp->n_embd, c->h + (size_t)t * hp->n_embd,
                           hp->n_embd * sizeof(float));
                    m++;
                }
        mr_expert_slices sl;
        if ((s = mr_expert_store_acquire(c->store, il, e, &sl, err)))
            return s;
        matmul_raw(c, L->gate.type, sl.gate, L->gate.row_bytes, hp->n_embd, hp->n_ff, c->xg, m,
                   c->g);
        matmul_raw(c, L->up.type, sl.up, L->up.row_bytes, hp->n_embd, hp->n_ff, c->xg, m, c->u);
        for (size_t i = 0; i < (size_t)m * hp->n_ff; i++)
            c->g[i] = silu(c->g[i]) * c->u[i];
        matmul_raw(c, L->down.type, sl.down, L->down.row_bytes, hp->n_ff, hp->n_embd, c->g, m,
                   c->y);
        mr_expert_store_release(c->store, il, e);
        for (uint32_t r = 0; r < m; r++) {
            float *dst = acc + (size_t)c->tok_of[r] * hp->n_embd;
            const float *src = c->y + (size_t)r * hp->n_embd;
            for (uint32_t i = 0; i < hp->n_embd; i++)
                dst[i] += c->w_of[r] * src[i];
        }
    }
    for (size_t i = 0; i < (size_t)n * hp->n_embd; i++)
        c->x[i] += acc[i];
    return MR_OK;
}

static mr_status check_tokens(const mr_context *c, const int32_t *tokens, uint32_t n,
                              mr_error *err)
{
    if (n == 0 || n > c->n_batch)
        return mr_fail(err, MR_EINVAL, NULL, "decode", MR_NO_OFFSET,
                       "batch of %u tokens (1..%u allowed)", n, c->n_batch);
    if (c->n_past + n > c->n_ctx)
        return mr_fail(err, MR_ERANGE, NULL, "decode", MR_NO_OFFSET,
                       "context is full: %u cached + %u new > %u positions (raise -c)",
                       c->n_past, n, c->n_ctx);
    for (uint32_t i = 0; i < n; i++)
        if (tokens[i] < 0 || (uint32_t)tokens[i] >= c->m->hp.n_vocab)
            return mr_fail(err, MR_EINVAL, NULL, "decode", MR_NO_OFFSET,
                           "token id %d at batch index %u is outside the vocabulary (%u)",
                           tokens[i], i, c->m->hp.n_vocab);
    return MR_OK;
}

mr_status mr_decode(mr_context *c, const int32_t *tokens, uint32_t n, float *logits,
                    int all_logits, mr_error *err)
{
    const mr_model *m = c->m;
    const mr_hparams *hp = &m->hp;
    mr_status s;
    if ((s = check_tokens(c, tokens, n, err)))
        return s;

    const mr_type_traits *et = mr_type_get(m->tok_embd.type);
    for (uint32_t t = 0; t < n; t++)
        et->to_f32(m->tok_embd.data + (size_t)tokens[t] * m->tok_embd.row_bytes,
                   c->x + (size_t)t * hp->n_embd, hp->n_embd);

    for (uint32_t il = 0; il < hp->n_layer; il++) {
        attention(c, il, n);
        if ((s = feed_forward(c, il, n, err)))
            return s;
    }
    c->store->stats.tokens += n;

    if (logits) {
        const uint32_t first = all_logits ? 0 : n - 1, rows = n - first;
        for (uint32_t t = first; t < n; t++)
            rmsnorm(c->h + (size_t)(t - first) * hp->n_embd, c->x + (size_t)t * hp->n_embd,
                    m->output_norm, hp->n_embd, hp->norm_eps);
        matmul(c, &m->output, c->h, rows, logits);
    }
    c->n_past += n;
    return MR_OK;
}
