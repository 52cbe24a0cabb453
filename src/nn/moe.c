/* moe.c - the feed-forward blocks: routers, routed experts through the
 * expert store, the shared expert, and dense FFNs.
 *
 * Router modes (mr_router_cfg.mode), over the logits r = W_router h (+ a
 * router bias where the family has one); ties go to the lower expert id:
 *   SOFTMAX_TOPK   p = softmax(r); top-k of p; w = p_k (/ sum p_k if
 *                  norm_topk) * scale                      Mixtral, Qwen3
 *                  (with a select_bias or groups, chosen as SIGMOID
 *                  chooses, as llama.cpp does for DeepSeek-V2)
 *   TOPK_SOFTMAX   top-k of r; w = softmax over those k     gpt-oss
 *   SIGMOID        s = sigmoid(r); choose with s + select_bias, in the
 *                  topk_group groups whose two best biased scores sum
 *                  highest; w = s_k (/ sum if norm_topk) * scale  DeepSeek-V3
 *   SIGMOID_INPUT  top-k of r; the expert's INPUT is scaled by
 *                  sigmoid(r_k), its output added with weight 1  Llama 4
 * Experts run grouped: the batch's rows routed to one expert are gathered,
 * multiplied together and scattered back, in ascending expert id, so every
 * store backend yields the same sums in the same order.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "nn.h"

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

static inline float sigmoid(float v)
{
    return 1.0f / (1.0f + expf(-v));
}

/* The k best of score[0..ne) among allowed ones (allowed NULL: all),
 * best first, ties to the lower id. */
static void top_k(const float *score, const uint8_t *allowed, uint32_t ne, uint32_t k,
                  uint32_t *out)
{
    uint8_t taken[MR_MAX_EXPERTS] = {0};
    for (uint32_t i = 0; i < k; i++) {
        uint32_t best = UINT32_MAX;
        for (uint32_t e = 0; e < ne; e++)
            if (!taken[e] && (!allowed || allowed[e]) &&
                (best == UINT32_MAX || score[e] > score[best]))
                best = e;
        out[i] = best;
        taken[best] = 1;
    }
}

/* DeepSeek's group limit: keep the topk_group groups whose two best
 * scores sum highest. */
static void group_mask(const mr_router_cfg *rc, const float *score, uint32_t ne,
                       uint8_t *allowed)
{
    const uint32_t per = ne / rc->n_group;
    float gs[MR_MAX_EXPERTS];
    for (uint32_t g = 0; g < rc->n_group; g++) {
        uint32_t two[2];
        top_k(score + g * per, NULL, per, per < 2 ? per : 2, two);
        gs[g] = score[g * per + two[0]] + (per < 2 ? 0.0f : score[g * per + two[1]]);
    }
    uint32_t keep[MR_MAX_EXPERTS];
    top_k(gs, NULL, rc->n_group, rc->topk_group, keep);
    memset(allowed, 0, ne);
    for (uint32_t i = 0; i < rc->topk_group; i++)
        memset(allowed + keep[i] * per, 1, per);
}

/* Choose k experts and their weights from one token's router logits r
 * (modified in place). */
static void select_experts(const mr_hparams *hp, const mr_layer *L, float *r, uint32_t *sel,
                           float *w)
{
    const mr_router_cfg *rc = &hp->router;
    const uint32_t ne = hp->n_expert, k = hp->n_expert_used;
    if (L->router_bias)
        for (uint32_t e = 0; e < ne; e++)
            r[e] += L->router_bias[e];
    switch (rc->mode) {
    case MR_ROUTE_SOFTMAX_TOPK:
        softmax(r, ne);
        if (L->select_bias || rc->n_group > 1) { /* as SIGMOID's choice (llama.cpp: any gating) */
            float biased[MR_MAX_EXPERTS];
            uint8_t allowed[MR_MAX_EXPERTS];
            for (uint32_t e = 0; e < ne; e++)
                biased[e] = r[e] + (L->select_bias ? L->select_bias[e] : 0.0f);
            if (rc->n_group > 1)
                group_mask(rc, biased, ne, allowed);
            top_k(biased, rc->n_group > 1 ? allowed : NULL, ne, k, sel);
        } else {
            top_k(r, NULL, ne, k, sel);
        }
        for (uint32_t i = 0; i < k; i++)
            w[i] = r[sel[i]];
        break;
    case MR_ROUTE_TOPK_SOFTMAX:
    case MR_ROUTE_SIGMOID_INPUT:
        top_k(r, NULL, ne, k, sel);
        for (uint32_t i = 0; i < k; i++)
            w[i] = rc->mode == MR_ROUTE_SIGMOID_INPUT ? sigmoid(r[sel[i]]) : r[sel[i]];
        if (rc->mode == MR_ROUTE_TOPK_SOFTMAX)
            softmax(w, k);
        break;
    case MR_ROUTE_SIGMOID: {
        float biased[MR_MAX_EXPERTS];
        uint8_t allowed[MR_MAX_EXPERTS];
        for (uint32_t e = 0; e < ne; e++) {
            r[e] = sigmoid(r[e]);
            biased[e] = r[e] + (L->select_bias ? L->select_bias[e] : 0.0f);
        }
        if (rc->n_group > 1)
            group_mask(rc, biased, ne, allowed);
        top_k(biased, rc->n_group > 1 ? allowed : NULL, ne, k, sel);
        for (uint32_t i = 0; i < k; i++)
            w[i] = r[sel[i]];
        break;
    }
    }
    if (rc->norm_topk && (rc->mode == MR_ROUTE_SOFTMAX_TOPK || rc->mode == MR_ROUTE_SIGMOID)) {
        float sum = 0.0f;
        for (uint32_t i = 0; i < k; i++)
            sum += w[i];
        for (uint32_t i = 0; i < k; i++)
            w[i] /= sum;
    }
    if (rc->scale != 1.0f)
        for (uint32_t i = 0; i < k; i++)
            w[i] *= rc->scale;
}

void nn_route(mr_context *c, uint32_t il, uint32_t n)
{
    const mr_hparams *hp = &c->m->hp;
    const mr_layer *L = &c->m->layers[il];
    const uint32_t ne = hp->n_expert, nu = hp->n_expert_used;
    uint32_t *sel = c->sel + (size_t)il * c->n_batch * nu;
    if (!hp->is_moe) {
        for (uint32_t t = 0; t < n; t++) {
            sel[t] = 0;
            c->selw[t] = 1.0f;
        }
        return;
    }
    nn_matmul(c, &L->router, c->h, n, c->rl);
    for (uint32_t t = 0; t < n; t++) {
        select_experts(hp, L, c->rl + (size_t)t * ne, sel + (size_t)t * nu,
                       c->selw + (size_t)t * nu);
        for (uint32_t k = 0; k < nu; k++)
            c->route_counts[(size_t)il * ne + sel[(size_t)t * nu + k]]++;
    }
}

/* Prefetch hints: apply the routers of the next `depth` MoE layers to
 * this layer's state x (normed with their own ffn_norm) and tell the
 * store which experts they will probably want.  Called twice per layer:
 * after its attention with the store's prefetch depth (early, so the reads
 * have time), and after its FFN for the next layer only (late, from the
 * very residual the next layer's attention will add to).  On the trained
 * demo model (real routing) the late guess raised the recall of 1-token
 * guesses from 67 % to 85 % at 66 % precision; on the Qwen3-30B-A3B synth
 * in 8 GiB it left first token and decode within run-to-run noise.  Only
 * a guess: the store may ignore it, and correctness never depends on it. */
#define GUESS_SOLO 2
static void guess_ahead(mr_context *c, uint32_t il, uint32_t n, uint32_t depth)
{
    const mr_hparams *hp = &c->m->hp;
    const uint32_t ne = hp->n_expert, nu = hp->n_expert_used;
    if (!hp->is_moe || !depth || !c->store->ops->hint)
        return;
    for (uint32_t g = il + 1; g <= il + depth && g < hp->n_layer; g++) {
        const mr_layer *G = &c->m->layers[g];
        if (!G->moe)
            continue;
        uint8_t want[MR_MAX_EXPERTS] = {0};
        uint32_t sel[MR_MAX_EXPERTS];
        float w[MR_MAX_EXPERTS];
        nn_rmsnorm_batch(c, c->xg, c->x, G->ffn_norm, n, hp->n_embd, hp->norm_eps);
        nn_matmul(c, &G->router, c->xg, n, c->rl);
        for (uint32_t t = 0; t < n; t++) {
            const float *r = c->rl + (size_t)t * ne;
            select_experts(hp, G, c->rl + (size_t)t * ne, sel, w);
            for (uint32_t k = 0; k < nu; k++)
                want[sel[k]] += want[sel[k]] < 255;
            /* the store may ask for the next-best experts of the router too:
             * a wider guess, more recall for some precision */
            uint8_t mine[MR_MAX_EXPERTS] = {0};
            for (uint32_t k = 0; k < nu; k++)
                mine[sel[k]] = 1;
            for (uint32_t x = 0; x < c->store->guess_extra && nu + x < ne; x++) {
                int best = -1;
                for (uint32_t e = 0; e < ne; e++)
                    if (!mine[e] && (best < 0 || r[e] > r[best]))
                        best = (int)e;
                mine[best] = 1;
                want[best] += want[best] < 255;
            }
        }
        /* A prompt's layer needs many experts and the disk, not the CPU,
         * sets its pace: a wrong guess then costs its read in full.  So in
         * a batch of more than GUESS_SOLO tokens an expert is read ahead
         * only when two tokens guess it (on a 48-layer Qwen3-30B-A3B, 8
         * prompt tokens read 17 % more than they needed, and the first
         * token came 10 % later than without any prefetch). */
        const uint8_t votes = n > GUESS_SOLO ? 2 : 1;
        uint32_t ids[MR_MAX_EXPERTS], m = 0;
        for (uint32_t e = 0; e < ne; e++)
            if (want[e] >= votes)
                ids[m++] = e;
        mr_expert_store_hint(c->store, g, ids, m);
    }
}

/* act(g) * u over m rows of ff, into g. */
static void glu(const mr_hparams *hp, float *g, const float *u, size_t n)
{
    if (hp->act == MR_ACT_SWIGLU_OAI) {
        const float lim = hp->act_limit, al = hp->act_alpha;
        for (size_t i = 0; i < n; i++) {
            const float x = g[i] > lim ? lim : g[i];
            const float y = u[i] > lim ? lim : u[i] < -lim ? -lim : u[i];
            g[i] = x * sigmoid(al * x) * (y + 1.0f);
        }
        return;
    }
    for (size_t i = 0; i < n; i++)
        g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

/* y (m x n_embd) = down(act(gate x) * up x) for resident tensors. */
static void ffn_resident(mr_context *c, const mr_tensor *gate, const mr_tensor *up,
                         const mr_tensor *down, const float *x, uint32_t m, float *y)
{
    const uint32_t ff = (uint32_t)gate->ne[1];
    nn_matmul(c, gate, x, m, c->g);
    nn_matmul(c, up, x, m, c->u);
    glu(&c->m->hp, c->g, c->u, (size_t)m * ff);
    nn_matmul(c, down, c->g, m, y);
}

/* One expert's share of the batch: its gathered input rows, the buffers it
 * computes in, and what it adds to the accumulator.  The sequential path
 * uses the context's buffers whole; each slot of the parallel path its own
 * band of them. */
typedef struct {
    float *xg, *g, *u, *y; /* (rows, n_embd), (rows, n_ff) x 2, (rows, n_embd) */
    uint32_t *tok_of;
    float *w_of;
    void *act; /* prepared activations of up to rows rows */
} expert_bufs;

/* The weight a route's expert output is summed with: the router's, or 1
 * where the router scaled the expert's input instead (Llama 4). */
static inline float out_weight(const mr_hparams *hp, float w)
{
    return hp->router.mode == MR_ROUTE_SIGMOID_INPUT ? 1.0f : w;
}

/* dst += w * src over E floats: every sum of expert outputs, so the
 * sequential and the per-token sums do the same operations */
static inline void add_scaled(float *dst, const float *src, float w, uint32_t E)
{
    for (uint32_t i = 0; i < E; i++)
        dst[i] += w * src[i];
}

/* Gather the rows of the batch routed to expert e into b; returns their count. */
static uint32_t expert_gather(const mr_context *c, uint32_t il, uint32_t n, uint32_t e,
                              const expert_bufs *b)
{
    const mr_hparams *hp = &c->m->hp;
    const uint32_t nu = hp->n_expert_used, E = hp->n_embd;
    const uint32_t *sel = c->sel + (size_t)il * c->n_batch * nu;
    const int scale_input = hp->router.mode == MR_ROUTE_SIGMOID_INPUT;
    uint32_t m = 0;
    for (uint32_t t = 0; t < n; t++)
        for (uint32_t k = 0; k < nu; k++)
            if (sel[(size_t)t * nu + k] == e) {
                const float w = c->selw[(size_t)t * nu + k];
                const float *src = c->h + (size_t)t * E;
                float *dst = b->xg + (size_t)m * E;
                b->tok_of[m] = t;
                b->w_of[m] = out_weight(hp, w);
                if (scale_input)
                    for (uint32_t i = 0; i < E; i++)
                        dst[i] = src[i] * w;
                else
                    memcpy(dst, src, E * sizeof(float));
                m++;
            }
    return m;
}

/* y = W x for m rows, on this thread alone (no pool); x NULL: act holds
 * them prepared for this type already. */
static void matmul_here(const mr_kernels *k, uint32_t type, const void *w, size_t row_bytes,
                        int packed, int64_t n_in, int64_t n_out, const float *x, int64_t m,
                        float *y, void *act)
{
    const void *a = x ? mr_act_prepare(k, type, x, n_in, m, act) : act;
    if (packed)
        mr_matmul_rows_packed(k, type, w, a, n_in, m, y, n_out, 0, n_out);
    else
        mr_matmul_rows(k, type, w, row_bytes, a, n_in, m, y, n_out, 0, n_out);
}

/* y = W x for m rows across the pool, W a slice as the store gave it */
static void matmul_pool(mr_context *c, uint32_t type, const void *w, size_t row_bytes, int packed,
                        int64_t n_in, int64_t n_out, const float *x, int64_t m, float *y)
{
    if (packed)
        nn_matmul_packed(c, type, w, n_in, n_out, x, m, y);
    else
        nn_matmul_raw(c, type, w, row_bytes, n_in, n_out, x, m, y);
}

/* Packed slices are read by the kernels they were packed for: a context
 * switched to others (--exact, another ISA) cannot use them. */
static mr_status slices_usable(const mr_context *c, uint32_t il, const mr_expert_slices *sl,
                               mr_error *err)
{
    const mr_layer *L = &c->m->layers[il];
    const mr_kernels *pw = c->store->packed_with;
    const uint32_t t[3] = {L->gate.type, L->up.type, L->down.type};
    const uint8_t pk[3] = {sl->packed_gate, sl->packed_up, sl->packed_down};
    for (int i = 0; i < 3; i++)
        if (pk[i] && (!pw || c->k->gemm_packed[t[i]] != pw->gemm_packed[t[i]] ||
                      c->k->pack_block_bytes[t[i]] != pw->pack_block_bytes[t[i]]))
            return mr_fail(err, MR_EINVAL, c->m->gguf->path, "expert store", MR_NO_OFFSET,
                           "layer %u: the experts were repacked for other kernels than this "
                           "context's (%s%s); create the store without repacking (--no-repack)",
                           il, mr_isa_name(c->k->isa), c->k->exact ? ", exact" : "");
    return MR_OK;
}

/* b->y (m x n_embd) = down(act(gate x) * up x) of expert e; here: on this
 * thread only, else rows split across the pool. */
static void expert_compute(mr_context *c, uint32_t il, uint32_t e, uint32_t m,
                           const mr_expert_slices *sl, const expert_bufs *b, int here)
{
    const mr_hparams *hp = &c->m->hp;
    const mr_layer *L = &c->m->layers[il];
    const uint32_t E = hp->n_embd, F = hp->n_ff;
    if (here) {
        matmul_here(c->k, L->gate.type, sl->gate, L->gate.row_bytes, sl->packed_gate, E, F, b->xg, m,
                    b->g, b->act);
        /* up reads the rows gate's activations were prepared from, into
         * b->act (a format other than F32 is prepared into the buffer):
         * the same type reuses them */
        const int same = L->up.type == L->gate.type && c->k->act_type[L->up.type] != MR_TYPE_F32;
        matmul_here(c->k, L->up.type, sl->up, L->up.row_bytes, sl->packed_up, E, F, same ? NULL : b->xg,
                    m, b->u, b->act);
    } else {
        matmul_pool(c, L->gate.type, sl->gate, L->gate.row_bytes, sl->packed_gate, E, F, b->xg, m, b->g);
        matmul_pool(c, L->up.type, sl->up, L->up.row_bytes, sl->packed_up, E, F, b->xg, m, b->u);
    }
    if (L->gate_bias) {
        nn_add_bias(b->g, L->gate_bias + (size_t)e * F, m, F);
        nn_add_bias(b->u, L->up_bias + (size_t)e * F, m, F);
    }
    glu(hp, b->g, b->u, (size_t)m * F);
    if (here)
        matmul_here(c->k, L->down.type, sl->down, L->down.row_bytes, sl->packed_down, F, E, b->g, m,
                    b->y, b->act);
    else
        matmul_pool(c, L->down.type, sl->down, L->down.row_bytes, sl->packed_down, F, E, b->g, m, b->y);
    if (L->down_bias)
        nn_add_bias(b->y, L->down_bias + (size_t)e * E, m, E);
}

/* acc[token] += weight * y for the m rows of one expert. */
static void expert_commit(const mr_context *c, float *acc, const expert_bufs *b, uint32_t m)
{
    const uint32_t E = c->m->hp.n_embd;
    for (uint32_t r = 0; r < m; r++)
        add_scaled(acc + (size_t)b->tok_of[r] * E, b->y + (size_t)r * E, b->w_of[r], E);
}

/* Band `slot` of `slots` of the context's expert buffers, rows rows each. */
static expert_bufs expert_band(const mr_context *c, uint32_t slot, uint32_t rows)
{
    const size_t r0 = (size_t)slot * rows, E = c->m->hp.n_embd, F = c->ff_max;
    expert_bufs b = {c->xg + r0 * E, c->g + r0 * F, c->u + r0 * F, c->y + r0 * E,
                     c->tok_of + r0, c->w_of + r0, (uint8_t *)c->act + r0 * c->act_row_cap};
    return b;
}

/* The parallel path: whole experts on each thread, the largest first (no
 * thread is left holding a big one at the end), each written to its own
 * rows of y_route, with no thread waiting for another; an expert larger
 * than a thread's band alone, its rows split across the pool.  Then the
 * batch's tokens, split across the pool, add their experts' rows in
 * ascending expert id: per token the sequential path's adds in its
 * order, so the sums are the same bits. */
typedef struct {
    mr_context *c;
    uint32_t il, n, n_used, rows;
    const uint32_t *used, *order, *off;
    const mr_expert_slices *sl;
    atomic_uint next;
} par_job;

static void par_slot(void *arg, int64_t s0, int64_t s1)
{
    par_job *j = arg;
    const size_t E = j->c->m->hp.n_embd;
    for (int64_t s = s0; s < s1; s++) {
        expert_bufs b = expert_band(j->c, (uint32_t)s, j->rows);
        for (;;) {
            const uint32_t k = atomic_fetch_add(&j->next, 1);
            if (k >= j->n_used)
                break;
            const uint32_t ui = j->order[k];
            b.y = j->c->y_route + (size_t)j->off[ui] * E;
            const uint32_t m = expert_gather(j->c, j->il, j->n, j->used[ui], &b);
            expert_compute(j->c, j->il, j->used[ui], m, &j->sl[ui], &b, 1);
        }
    }
}

/* Expert e of the batch across the pool (rows split), into y_route at row off. */
static void expert_alone(mr_context *c, uint32_t il, uint32_t n, uint32_t e,
                         const mr_expert_slices *sl, uint32_t off)
{
    expert_bufs b = expert_band(c, 0, c->n_batch);
    b.y = c->y_route + (size_t)off * c->m->hp.n_embd;
    const uint32_t m = expert_gather(c, il, n, e, &b);
    expert_compute(c, il, e, m, sl, &b, 0);
}

typedef struct {
    const mr_context *c;
    uint32_t il;
    float *acc;
} commit_job;

/* acc[t] += weight * its experts' rows, tokens [t0, t1), experts ascending */
static void commit_tokens(void *arg, int64_t t0, int64_t t1)
{
    const commit_job *j = arg;
    const mr_context *c = j->c;
    const mr_hparams *hp = &c->m->hp;
    const uint32_t nu = hp->n_expert_used, E = hp->n_embd;
    const uint32_t *sel = c->sel + (size_t)j->il * c->n_batch * nu;
    for (int64_t t = t0; t < t1; t++) {
        uint32_t ks[MR_MAX_EXPERTS];
        const uint32_t *st = sel + (size_t)t * nu;
        for (uint32_t k = 0; k < nu; k++) { /* by expert id (distinct) */
            uint32_t i = k;
            for (; i > 0 && st[ks[i - 1]] > st[k]; i--)
                ks[i] = ks[i - 1];
            ks[i] = k;
        }
        for (uint32_t i = 0; i < nu; i++) {
            const size_t r = (size_t)t * nu + ks[i];
            add_scaled(j->acc + (size_t)t * E, c->y_route + (size_t)c->row_of[r] * E,
                       out_weight(hp, c->selw[r]), E);
        }
    }
}

/* The parallel path's rows: off[ui], the first y_route row of used[ui]
 * (ascending); row_of of every route, in expert_gather's row order.
 * 0 without memory for y_route. */
static int par_layout(mr_context *c, uint32_t il, uint32_t n, uint32_t n_used, const uint32_t *used,
                      const uint32_t *count, uint32_t *off)
{
    const mr_hparams *hp = &c->m->hp;
    const uint32_t nu = hp->n_expert_used;
    if (!c->y_route) {
        c->y_route = malloc((size_t)c->n_batch * nu * hp->n_embd * sizeof(float));
        c->row_of = malloc((size_t)c->n_batch * nu * sizeof(uint32_t));
        if (!c->y_route || !c->row_of) {
            free(c->y_route);
            free(c->row_of);
            c->y_route = NULL;
            c->row_of = NULL;
            return 0;
        }
    }
    uint32_t ui_of[MR_MAX_EXPERTS], fill[MR_MAX_EXPERTS], o = 0;
    for (uint32_t ui = 0; ui < n_used; ui++) {
        ui_of[used[ui]] = ui;
        off[ui] = fill[ui] = o;
        o += count[ui];
    }
    const uint32_t *sel = c->sel + (size_t)il * c->n_batch * nu;
    for (size_t r = 0; r < (size_t)n * nu; r++)
        c->row_of[r] = fill[ui_of[sel[r]]]++;
    return 1;
}

/* Whether the parallel path serves this layer: a store whose experts can
 * all be held at once and a pool with work for every thread; it returns
 * the rows of a slot's band.  An expert with more rows than that is
 * computed alone, its rows split across the pool, in its turn. */
static int par_rows(const mr_context *c, uint32_t n_used)
{
    const uint32_t th = (uint32_t)mr_pool_threads(c->pool);
    if (th < 2 || !c->store->ops->holds_all || n_used < 2 * th)
        return 0;
    return (int)(c->n_batch / th);
}

/* The routed experts of the batch, accumulated into acc (n x n_embd). */
static mr_status routed_experts(mr_context *c, uint32_t il, uint32_t n, float *acc,
                                mr_error *err)
{
    const mr_hparams *hp = &c->m->hp;
    const uint32_t nu = hp->n_expert_used, ne = hp->n_expert;
    const uint32_t *sel = c->sel + (size_t)il * c->n_batch * nu;
    uint32_t used[MR_MAX_EXPERTS], n_used = 0, count[MR_MAX_EXPERTS];
    uint32_t per[MR_MAX_EXPERTS] = {0};
    mr_status s;

    nn_route(c, il, n);
    for (size_t i = 0; i < (size_t)n * nu; i++)
        per[sel[i]]++;
    for (uint32_t e = 0; e < ne; e++)
        if (per[e]) {
            count[n_used] = per[e];
            used[n_used++] = e;
        }
    if ((s = mr_expert_store_plan(c->store, il, used, n_used, err)))
        return s;
    guess_ahead(c, il, n, c->store->prefetch_depth);

    uint32_t off[MR_MAX_EXPERTS];
    const uint32_t rows = (uint32_t)par_rows(c, n_used);
    if (rows && par_layout(c, il, n, n_used, used, count, off)) {
        mr_expert_slices sl[MR_MAX_EXPERTS];
        uint32_t got = 0;
        for (; got < n_used; got++) {
            if ((s = mr_expert_store_acquire(c->store, il, used[got], &sl[got], err)))
                break;
            if ((s = slices_usable(c, il, &sl[got], err))) {
                got++; /* acquired: released below */
                break;
            }
        }
        /* runs of experts that fit a band in parallel, a larger one alone */
        for (uint32_t u0 = 0; !s && u0 < n_used;) {
            uint32_t u1 = u0, order[MR_MAX_EXPERTS];
            for (; u1 < n_used && count[u1] <= rows; u1++) {
                /* by descending count, ascending among equals */
                uint32_t i = u1 - u0;
                for (; i > 0 && count[u0 + order[i - 1]] < count[u1]; i--)
                    order[i] = order[i - 1];
                order[i] = u1 - u0;
            }
            if (u1 - u0 >= 2) {
                par_job j = {.c = c, .il = il, .n = n, .n_used = u1 - u0, .rows = rows, .used = used + u0,
                             .order = order, .off = off + u0, .sl = sl + u0};
                atomic_init(&j.next, 0);
                mr_pool_run(c->pool, mr_pool_threads(c->pool), 1, par_slot, &j);
            } else if (u1 > u0) {
                expert_alone(c, il, n, used[u0], &sl[u0], off[u0]);
            }
            if (u1 < n_used) {
                expert_alone(c, il, n, used[u1], &sl[u1], off[u1]);
                u1++;
            }
            u0 = u1;
        }
        if (!s) {
            commit_job cj = {c, il, acc};
            mr_pool_run(c->pool, n, 1, commit_tokens, &cj);
        }
        for (uint32_t ui = 0; ui < got; ui++)
            mr_expert_store_release(c->store, il, used[ui]);
        return s;
    }

    const expert_bufs b = expert_band(c, 0, c->n_batch);
    for (uint32_t ui = 0; ui < n_used; ui++) {
        const uint32_t e = used[ui];
        const uint32_t m = expert_gather(c, il, n, e, &b);
        mr_expert_slices sl;
        if ((s = mr_expert_store_acquire(c->store, il, e, &sl, err)))
            return s;
        if ((s = slices_usable(c, il, &sl, err))) {
            mr_expert_store_release(c->store, il, e);
            return s;
        }
        expert_compute(c, il, e, m, &sl, &b, 0);
        mr_expert_store_release(c->store, il, e);
        expert_commit(c, acc, &b, m);
    }
    return MR_OK;
}

mr_status nn_ffn(mr_context *c, uint32_t il, uint32_t n, mr_error *err)
{
    const mr_hparams *hp = &c->m->hp;
    const mr_layer *L = &c->m->layers[il];
    const size_t nE = (size_t)n * hp->n_embd;
    mr_status s;
    /* accumulate into att (free after attention) as (n, n_embd) */
    float *acc = c->att;
    memset(acc, 0, nE * sizeof(float));
    if (L->moe && (s = routed_experts(c, il, n, acc, err)))
        return s;
    if (!L->moe) /* a dense layer still warms the next MoE layer's experts */
        guess_ahead(c, il, n, c->store->prefetch_depth);
    if (L->sh_gate.data) {
        /* the shared expert, or the dense FFN of a dense layer */
        ffn_resident(c, &L->sh_gate, &L->sh_up, &L->sh_down, c->h, n, c->y);
        nn_add(acc, c->y, nE);
    }
    nn_add(c->x, acc, nE);
    guess_ahead(c, il, n, c->store->prefetch_depth ? 1 : 0); /* late: the next layer again */
    return MR_OK;
}
