/* attention.c - scaled dot-product attention over the KV cache, and the
 * GQA self-attention block built on it.
 *
 * One pass per query, flash-attention style: keys are visited in blocks
 * of ATT_KB positions aligned to absolute positions, each block's scores
 * computed, then folded into a running maximum m, denominator l and
 * weighted value sum acc by the kernel table's attn_block (simd/attn.c and
 * its AVX2 / AVX-512 versions):
 *     m' = max(m, max_j s_j);  acc = acc * e^(m - m') + sum_j e^(s_j - m') v_j
 *     l  = l * e^(m - m') + sum_j e^(s_j - m')
 * and out = acc / l.  A query's arithmetic depends only on its position
 * and the cache, never on the batch or thread split, so prefill and
 * decode agree to the bit.  Queries are processed in tiles of ATT_QT
 * tokens x one head so that a block of keys is read once per tile while it
 * is in cache.  A sink is a virtual key with logit sinks[h] and value 0:
 * it starts m at sinks[h] and l at 1.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "nn.h"

#include "../../quant/types.h"

#define ATT_KB MR_ATTN_BLOCK /* keys per block */
#define ATT_QT 16 /* queries per tile */

typedef struct {
    mr_context *c;
    const nn_attn *a;
    uint32_t n_tiles; /* query tiles per head */
} att_job;

/* Visible key range [lo, hi) of the query at position pos. */
static void key_range(const nn_attn *a, uint32_t pos, uint32_t *lo, uint32_t *hi)
{
    uint32_t l = 0;
    if (a->window && pos + 1 > a->window)
        l = pos + 1 - a->window;
    if (a->chunk && pos / a->chunk * a->chunk > l)
        l = pos / a->chunk * a->chunk;
    *lo = l;
    *hi = pos + 1;
}

/* Row p of a cache of type t with rows of `stride` elements, from element e. */
static const uint8_t *cache_at(const void *base, uint32_t t, uint32_t stride, uint32_t p,
                               uint32_t e)
{
    return (const uint8_t *)base + (size_t)p * mr_type_row_bytes(t, stride) +
           mr_type_row_bytes(t, e);
}

/* Keys or values [p0, p1) of one kv head as f32 rows of d, n_f32 apart:
 * the cache itself when it is f32, else widened into buf. */
static const float *block_rows(const mr_kernels *k, const void *base, uint32_t t,
                               uint32_t stride, uint32_t e, uint32_t p0, uint32_t p1, uint32_t d,
                               float *buf, uint32_t *row_stride)
{
    if (t == MR_TYPE_F32) {
        *row_stride = stride;
        return (const float *)base + (size_t)p0 * stride + e;
    }
    const mr_to_f32_fn to_f32 = k->kv_to_f32[t];
    for (uint32_t p = p0; p < p1; p++)
        to_f32(cache_at(base, t, stride, p, e), buf + (size_t)(p - p0) * d, d);
    *row_stride = d;
    return buf;
}

static void attend_tile(const att_job *j, uint32_t h, uint32_t t0, uint32_t t1, float *tmp)
{
    const nn_attn *a = j->a;
    const mr_attn_block_fn block = j->c->k->attn_block;
    const uint32_t dv = a->dv, kvh = h / (a->n_head / a->n_head_kv);
    const uint32_t nq = t1 - t0;
    float *m = tmp, *l = m + ATT_QT, *acc = l + ATT_QT;
    float *kbuf = acc + (size_t)nq * dv, *vbuf = kbuf + (size_t)ATT_KB * a->dk;
    uint32_t lo[ATT_QT], hi[ATT_QT], first = UINT32_MAX, last = 0;
    for (uint32_t i = 0; i < nq; i++) {
        key_range(a, a->pos0 + t0 + i, &lo[i], &hi[i]);
        m[i] = a->sinks ? a->sinks[h] : -INFINITY;
        l[i] = a->sinks ? 1.0f : 0.0f;
        memset(acc + (size_t)i * dv, 0, dv * sizeof(float));
        if (lo[i] < first)
            first = lo[i];
        if (hi[i] > last)
            last = hi[i];
    }
    const uint32_t rows = a->rows ? a->rows : UINT32_MAX;
    for (uint32_t b0 = first / ATT_KB * ATT_KB; b0 < last; b0 += ATT_KB) {
        /* the rows of this block any query of the tile sees; a block never
         * wraps a ring (its rows are a multiple of ATT_KB, blocks are
         * aligned to absolute positions), so they are rows r0 % rows.. */
        const uint32_t r0 = first > b0 ? first : b0, r1 = last < b0 + ATT_KB ? last : b0 + ATT_KB;
        const uint32_t c0 = r0 % rows, c1 = c0 + (r1 - r0);
        uint32_t ks, vs;
        const float *kb = block_rows(j->c->k, a->k, a->k_type, a->k_stride, kvh * a->k_head, c0, c1,
                                     a->dk, kbuf, &ks);
        const float *vb = block_rows(j->c->k, a->v, a->v_type, a->v_stride, kvh * a->v_head, c0, c1, dv,
                                     vbuf, &vs);
        for (uint32_t i = 0; i < nq; i++) {
            const uint32_t p0 = lo[i] > r0 ? lo[i] : r0;
            const uint32_t p1 = hi[i] < r1 ? hi[i] : r1;
            if (p0 < p1)
                block(a->q + (size_t)(t0 + i) * a->q_stride + (size_t)h * a->dk,
                      kb + (size_t)(p0 - r0) * ks, ks, vb + (size_t)(p0 - r0) * vs, vs, p1 - p0,
                      a->dk, dv, a->scale, &m[i], &l[i], acc + (size_t)i * dv);
        }
    }
    for (uint32_t i = 0; i < nq; i++) {
        float *out = a->out + (size_t)(t0 + i) * a->out_stride + (size_t)h * dv;
        const float inv = 1.0f / l[i];
        for (uint32_t d = 0; d < dv; d++)
            out[d] = acc[(size_t)i * dv + d] * inv;
    }
}

/* Scratch floats of a tile of qt queries: softmax state, and the widened
 * keys and values of one block when the cache is not f32. */
static size_t tile_floats(const nn_attn *a, uint32_t qt)
{
    const int wide = a->k_type != MR_TYPE_F32 || a->v_type != MR_TYPE_F32;
    return 2 * ATT_QT + (size_t)qt * a->dv + (wide ? (size_t)ATT_KB * (a->dk + a->dv) : 0);
}

/* Task = (head, query tile).  Scratch lives on the stack when small (pool
 * threads may have small stacks) and on the heap otherwise; without heap
 * the tile shrinks to one query, which gives the same bits. */
static void att_range(void *arg, int64_t i0, int64_t i1)
{
    const att_job *j = arg;
    const nn_attn *a = j->a;
    const uint32_t qt = a->n_tok < ATT_QT ? a->n_tok : ATT_QT;
    float stack[4096], *tmp = stack, *heap = NULL;
    uint32_t step = qt;
    if (tile_floats(a, qt) > sizeof stack / sizeof stack[0]) {
        heap = malloc(tile_floats(a, qt) * sizeof(float));
        if (heap)
            tmp = heap;
        else if (tile_floats(a, 1) <= sizeof stack / sizeof stack[0])
            step = 1;
        else {
            /* no scratch: mr_decode reports it after this layer */
            atomic_store(&j->c->scratch_failed, 1);
            return;
        }
    }
    for (int64_t i = i0; i < i1; i++) {
        const uint32_t h = (uint32_t)(i / j->n_tiles), tile = (uint32_t)(i % j->n_tiles);
        const uint32_t end = tile * ATT_QT + ATT_QT < a->n_tok ? tile * ATT_QT + ATT_QT : a->n_tok;
        for (uint32_t t0 = tile * ATT_QT; t0 < end; t0 += step)
            attend_tile(j, h, t0, t0 + step < end ? t0 + step : end, tmp);
    }
    free(heap);
}

void nn_attention(mr_context *c, const nn_attn *a)
{
    att_job j = {c, a, (a->n_tok + ATT_QT - 1) / ATT_QT};
    mr_pool_run(c->pool, (int64_t)a->n_head * j.n_tiles, 1, att_range, &j);
}

/* Tokens [t0, t1) of a batch: rope, the q scale, and their K and V
 * stored at their positions' cache rows. */
typedef struct {
    mr_context *c;
    uint32_t il;
    int qk_norm_after_rope;
    const float *q_scale;
} tok_job;

static void tok_range(void *arg, int64_t t0, int64_t t1)
{
    const tok_job *j = arg;
    mr_context *c = j->c;
    const mr_hparams *hp = &c->m->hp;
    const uint32_t il = j->il, hd = hp->head_dim;
    const mr_layer *L = &c->m->layers[il];
    const uint32_t q_dim = c->q_dim, k_dim = c->k_dim, v_dim = c->v_dim;
    const uint32_t rows = c->kv_rows[il];
    const int qk_norm_after_rope = j->qk_norm_after_rope;
    const float *q_scale = j->q_scale;
    const mr_from_f32_fn k_put = mr_type_get(c->k_type)->from_f32;
    const mr_from_f32_fn v_put = mr_type_get(c->v_type)->from_f32;
    for (int64_t t = t0; t < t1; t++) {
        float *qt = c->q + (size_t)t * q_dim, *kt = c->kv_k + (size_t)t * k_dim;
        if (L->use_rope) {
            nn_rope_apply(c, qt, (uint32_t)t, hp->n_head, hd);
            nn_rope_apply(c, kt, (uint32_t)t, hp->n_head_kv, hd);
            if (qk_norm_after_rope) {
                nn_rmsnorm_heads(qt, NULL, 1, q_dim, hp->n_head, hd, hp->norm_eps);
                nn_rmsnorm_heads(kt, NULL, 1, k_dim, hp->n_head_kv, hd, hp->norm_eps);
            }
        }
        if (q_scale)
            for (uint32_t i = 0; i < q_dim; i++)
                qt[i] *= q_scale[t];
        /* the token's sequence's region, its position's row */
        const uint64_t row = ctx_kv_row(c, il, c->tok_seq[t]) + c->tok_pos[t] % rows;
        k_put(kt, c->k_cache + (size_t)row * c->k_row_bytes, k_dim);
        v_put(c->kv_v + (size_t)t * v_dim, c->v_cache + (size_t)row * c->v_row_bytes, v_dim);
    }
}

void nn_self_attention(mr_context *c, uint32_t il, uint32_t n, int qk_norm_after_rope,
                       const float *q_scale)
{
    const mr_hparams *hp = &c->m->hp;
    const mr_layer *L = &c->m->layers[il];
    const uint32_t hd = hp->head_dim, hv = hp->head_dim_v;
    const uint32_t q_dim = c->q_dim, k_dim = c->k_dim, v_dim = c->v_dim;
    const uint32_t rows = c->kv_rows[il];

    nn_matmul(c, &L->wq, c->h, n, c->q);
    nn_matmul(c, &L->wk, c->h, n, c->kv_k);
    nn_matmul(c, &L->wv, c->h, n, c->kv_v);
    nn_add_bias(c->q, L->bq, n, q_dim);
    nn_add_bias(c->kv_k, L->bk, n, k_dim);
    nn_add_bias(c->kv_v, L->bv, n, v_dim);
    if (L->q_norm)
        nn_rmsnorm_heads_batch(c, c->q, L->q_norm, n, q_dim, hp->n_head, hd, hp->norm_eps);
    if (L->k_norm)
        nn_rmsnorm_heads_batch(c, c->kv_k, L->k_norm, n, k_dim, hp->n_head_kv, hd, hp->norm_eps);
    tok_job tj = {c, il, qk_norm_after_rope, q_scale};
    if (n < NN_SPLIT_ROWS)
        tok_range(&tj, 0, n);
    else /* each token writes its own cache row (the ring holds the batch) */
        mr_pool_run(c->pool, n, 4, tok_range, &tj);
    /* each run of one sequence attends over that sequence's cache */
    for (uint32_t r = 0; r < c->n_runs; r++) {
        const uint32_t t0 = c->run_t0[r];
        const uint64_t row0 = ctx_kv_row(c, il, c->run_seq[r]);
        nn_attn a = {
            .q = c->q + (size_t)t0 * q_dim, .q_stride = q_dim,
            .k = c->k_cache + (size_t)row0 * c->k_row_bytes, .k_stride = k_dim,
            .v = c->v_cache + (size_t)row0 * c->v_row_bytes, .v_stride = v_dim,
            .k_type = c->k_type, .v_type = c->v_type,
            .out = c->att + (size_t)t0 * c->o_dim, .out_stride = c->o_dim, .k_head = hd,
            .v_head = hv, .n_head = hp->n_head, .n_head_kv = hp->n_head_kv, .dk = hd, .dv = hv,
            .n_tok = c->run_n[r], .pos0 = c->tok_pos[t0], .scale = hp->attn_scale,
            .sinks = L->sinks, .window = L->window, .chunk = L->chunk, .rows = rows,
        };
        nn_attention(c, &a);
    }
    /* project into h (free now) and add to the residual stream */
    nn_matmul(c, &L->wo, c->att, n, c->h);
    nn_add_bias(c->h, L->bo, n, hp->n_embd);
    nn_add(c->x, c->h, (size_t)n * hp->n_embd);
}
