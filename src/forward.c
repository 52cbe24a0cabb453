/* forward.c - the forward driver: a context's buffers and KV cache, and
 * mr_decode, which embeds the batch, runs every layer through the model's
 * family (src/arch/), and projects the last state to logits.
 *
 * What a layer computes lives in the family file (src/arch/<family>.c),
 * written from the shared blocks of src/nn/; routed experts are read only
 * through the expert store.  Follow one token: mr_decode -> arch->layer
 * (e.g. src/arch/llama.c) -> nn_self_attention / nn_ffn (src/nn/) ->
 * kernels (simd/matmul.c).
 */
#include "forward.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "arch/arch.h"
#include "context.h"
#include "finite.h"
#include "nn/nn.h"

static void *xcalloc(size_t n, size_t sz, int *fail)
{
    void *p = calloc(n ? n : 1, sz);
    if (!p)
        *fail = 1;
    return p;
}

/* Widest FFN hidden size of any layer (experts, shared expert, dense). */
static uint32_t ff_max(const mr_model *m)
{
    uint32_t f = m->hp.n_ff;
    for (uint32_t l = 0; l < m->hp.n_layer; l++) {
        const mr_tensor *t = &m->layers[l].sh_gate;
        if (t->ne[1] > f)
            f = (uint32_t)t->ne[1];
    }
    return f;
}

/* KV cache rows of layer il: every position, or for a sliding-window
 * layer a ring that holds the window of the batch's first query and the
 * batch itself (the batch's keys are stored before it attends), rounded
 * up to whole attention blocks so that no block of keys wraps. */
static uint32_t kv_rows_of(const mr_model *m, uint32_t il, uint32_t n_ctx, uint32_t n_batch)
{
    const uint64_t w = m->layers[il].window;
    const uint64_t nb = n_batch < n_ctx ? n_batch : n_ctx;
    const uint64_t ring = (w + nb - 1 + MR_ATTN_BLOCK - 1) / MR_ATTN_BLOCK * MR_ATTN_BLOCK;
    return w && ring < n_ctx ? (uint32_t)ring : n_ctx;
}

/* Buffer sizes of a context, shared by mr_context_new and mr_context_bytes. */
typedef struct {
    uint64_t q_dim, k_dim, v_dim, o_dim, ff, widest, nb, att;
    uint64_t v_cache; /* floats per cached position of the V cache (0: values in K) */
} ctx_dims;

static ctx_dims dims_of(const mr_model *m, uint32_t n_ctx, uint32_t n_batch)
{
    const mr_hparams *hp = &m->hp;
    ctx_dims d;
    d.q_dim = (uint64_t)hp->n_head * hp->head_dim;
    d.k_dim = (uint64_t)hp->n_head_kv * hp->head_dim;
    d.v_dim = (uint64_t)hp->n_head_kv * hp->head_dim_v;
    d.o_dim = (uint64_t)hp->n_head * hp->head_dim_v;
    d.ff = ff_max(m);
    d.nb = n_batch < n_ctx ? n_batch : n_ctx;
    d.att = d.o_dim > hp->n_embd ? d.o_dim : hp->n_embd;
    uint64_t w = hp->n_embd > d.ff ? hp->n_embd : d.ff;
    w = w > d.q_dim ? w : d.q_dim;
    w = w > d.o_dim ? w : d.o_dim;
    d.widest = w > hp->widest_in ? w : hp->widest_in;
    d.v_cache = hp->v_in_k ? 0 : d.v_dim;
    return d;
}

/* Whether rows of a head_dim-wide head can be cached in type t. */
static mr_status check_kv_type(const mr_model *m, uint32_t t, uint32_t head, const char *which,
                               mr_error *err)
{
    if (t != MR_TYPE_F32 && t != MR_TYPE_F16 && t != MR_TYPE_Q8_0)
        return mr_fail(err, MR_EINVAL, NULL, which, MR_NO_OFFSET,
                       "a KV cache of type %s is not supported (f32, f16, q8_0)",
                       mr_type_get(t)->name);
    if (mr_type_row_bytes(t, head) == 0)
        return mr_fail(err, MR_EINVAL, NULL, which, MR_NO_OFFSET,
                       "a %s KV cache needs head sizes that are a multiple of %u; this model's "
                       "is %u",
                       mr_type_get(t)->name, mr_type_get(t)->block_size, head);
    (void)m;
    return MR_OK;
}

mr_status mr_context_new(const mr_model *m, mr_expert_store *store, uint32_t n_ctx,
                         uint32_t n_batch, mr_context **out, mr_error *err)
{
    return mr_context_new_kv(m, store, n_ctx, n_batch, MR_TYPE_F32, MR_TYPE_F32, out, err);
}

mr_status mr_context_new_kv(const mr_model *m, mr_expert_store *store, uint32_t n_ctx,
                            uint32_t n_batch, uint32_t k_type, uint32_t v_type,
                            mr_context **out, mr_error *err)
{
    return mr_context_new_seqs(m, store, n_ctx, n_batch, k_type, v_type, 1, out, err);
}

mr_status mr_context_new_seqs(const mr_model *m, mr_expert_store *store, uint32_t n_ctx,
                              uint32_t n_batch, uint32_t k_type, uint32_t v_type, uint32_t n_seq,
                              mr_context **out, mr_error *err)
{
    const mr_hparams *hp = &m->hp;
    mr_status st;
    *out = NULL;
    if (n_ctx < 1 || n_ctx > (1u << 20) || n_batch < 1)
        return mr_fail(err, MR_EINVAL, NULL, "context", MR_NO_OFFSET,
                       "context length %u or batch %u is out of range", n_ctx, n_batch);
    if (n_seq < 1 || n_seq > 1024)
        return mr_fail(err, MR_EINVAL, NULL, "context", MR_NO_OFFSET,
                       "%u sequences is out of range (1..1024)", n_seq);
    if ((st = check_kv_type(m, k_type, hp->head_dim, "-ctk", err)) ||
        (st = check_kv_type(m, v_type, hp->head_dim_v, "-ctv", err)))
        return st;
    if (n_batch > n_ctx)
        n_batch = n_ctx;
    mr_context *c = calloc(1, sizeof *c);
    if (!c)
        return mr_fail(err, MR_ENOMEM, NULL, "context", MR_NO_OFFSET, "no memory");
    const ctx_dims d = dims_of(m, n_ctx, n_batch);
    const size_t nb = n_batch;
    int fail = 0;
    c->m = m;
    c->store = store;
    c->kt[0] = *mr_kernels_get();
    c->kt[1] = *mr_kernels_get_exact();
    c->k = &c->kt[0];
    c->n_ctx = n_ctx;
    c->n_batch = n_batch;
    c->n_seq = n_seq;
    c->q_dim = (uint32_t)d.q_dim;
    c->k_dim = (uint32_t)d.k_dim;
    c->v_dim = (uint32_t)d.v_dim;
    c->o_dim = (uint32_t)d.o_dim;
    c->ff_max = (uint32_t)d.ff;
    c->k_type = k_type;
    c->v_type = hp->v_in_k ? k_type : v_type; /* MLA: values are read from the key rows */
    c->k_row_bytes = mr_type_row_bytes(k_type, (int64_t)d.k_dim);
    c->v_row_bytes = d.v_cache ? mr_type_row_bytes(v_type, (int64_t)d.v_dim) : 0;
    c->kv_rows = xcalloc(hp->n_layer, sizeof(uint32_t), &fail);
    c->kv_row0 = xcalloc(hp->n_layer, sizeof(uint64_t), &fail);
    uint64_t kv_total = 0;
    for (uint32_t il = 0; !fail && il < hp->n_layer; il++) {
        c->kv_rows[il] = kv_rows_of(m, il, n_ctx, n_batch);
        c->kv_row0[il] = kv_total;
        kv_total += (uint64_t)c->kv_rows[il] * n_seq;
    }
    c->k_cache = xcalloc((size_t)kv_total, c->k_row_bytes, &fail);
    if (d.v_cache)
        c->v_cache = xcalloc((size_t)kv_total, c->v_row_bytes, &fail);
    if (hp->scratch_floats)
        c->scratch = xcalloc(nb * hp->scratch_floats, sizeof(float), &fail);
    c->x = xcalloc(nb * hp->n_embd, sizeof(float), &fail);
    c->h = xcalloc(nb * hp->n_embd, sizeof(float), &fail);
    c->q = xcalloc(nb * d.q_dim, sizeof(float), &fail);
    c->kv_k = xcalloc(nb * d.k_dim, sizeof(float), &fail);
    c->kv_v = xcalloc(nb * d.v_dim, sizeof(float), &fail);
    c->att = xcalloc(nb * d.att, sizeof(float), &fail);
    c->act_row_cap = (d.widest / 32 + 1) * 36 + d.widest * sizeof(float);
    c->act = xcalloc(nb, c->act_row_cap, &fail);
    c->rl = xcalloc(nb * hp->n_expert, sizeof(float), &fail);
    c->sel = xcalloc((size_t)hp->n_layer * nb * hp->n_expert_used, sizeof(uint32_t), &fail);
    c->selw = xcalloc(nb * hp->n_expert_used, sizeof(float), &fail);
    c->xg = xcalloc(nb * hp->n_embd, sizeof(float), &fail);
    c->g = xcalloc(nb * d.ff, sizeof(float), &fail);
    c->u = xcalloc(nb * d.ff, sizeof(float), &fail);
    c->y = xcalloc(nb * hp->n_embd, sizeof(float), &fail);
    c->tok_of = xcalloc(nb, sizeof(uint32_t), &fail);
    c->w_of = xcalloc(nb, sizeof(float), &fail);
    c->rope_inv = xcalloc(hp->rope.n_rot / 2, sizeof(double), &fail);
    c->rope_cs = xcalloc(nb * hp->rope.n_rot, sizeof(float), &fail);
    c->route_counts = xcalloc((size_t)hp->n_layer * hp->n_expert, sizeof(uint64_t), &fail);
    c->seq_past = xcalloc(n_seq, sizeof(uint32_t), &fail);
    c->tok_seq = xcalloc(nb, sizeof(uint32_t), &fail);
    c->tok_pos = xcalloc(nb, sizeof(uint32_t), &fail);
    c->run_seq = xcalloc(nb, sizeof(uint32_t), &fail);
    c->run_t0 = xcalloc(nb, sizeof(uint32_t), &fail);
    c->run_n = xcalloc(nb, sizeof(uint32_t), &fail);
    if (!fail && mr_pool_new(1, &c->pool, err) != MR_OK) {
        mr_context_free(c);
        return err ? err->code : MR_ENOMEM;
    }
    if (fail) {
        mr_context_free(c);
        return mr_fail(err, MR_ENOMEM, NULL, "context", MR_NO_OFFSET,
                       "no memory for a %u-token KV cache and %u-token batch", n_ctx, n_batch);
    }
    nn_rope_init(hp, m->rope_freqs, c->rope_inv);
    *out = c;
    return MR_OK;
}

uint64_t mr_context_bytes(const mr_model *m, uint32_t n_ctx, uint32_t n_batch)
{
    return mr_context_bytes_kv(m, n_ctx, n_batch, MR_TYPE_F32, MR_TYPE_F32);
}

void mr_context_kv_types(const mr_context *c, uint32_t *k_type, uint32_t *v_type)
{
    *k_type = c->k_type;
    *v_type = c->v_type;
}

uint64_t mr_context_bytes_kv(const mr_model *m, uint32_t n_ctx, uint32_t n_batch,
                             uint32_t k_type, uint32_t v_type)
{
    return mr_context_bytes_seqs(m, n_ctx, n_batch, k_type, v_type, 1);
}

uint64_t mr_context_bytes_seqs(const mr_model *m, uint32_t n_ctx, uint32_t n_batch,
                               uint32_t k_type, uint32_t v_type, uint32_t n_seq)
{
    const mr_hparams *hp = &m->hp;
    const ctx_dims d = dims_of(m, n_ctx, n_batch);
    uint64_t b = 0;
    for (uint32_t il = 0; il < hp->n_layer; il++) /* KV cache */
        b += (uint64_t)kv_rows_of(m, il, n_ctx, n_batch) * n_seq *
             (mr_type_row_bytes(k_type, (int64_t)d.k_dim) +
              (d.v_cache ? mr_type_row_bytes(v_type, (int64_t)d.v_dim) : 0));
    b += d.nb * hp->scratch_floats * 4;
    b += d.nb * (4ull * hp->n_embd + d.q_dim + d.k_dim + d.v_dim + d.att + 2 * d.ff) * 4;
    b += d.nb * ((d.widest / 32 + 1) * 36 + d.widest * 4);                /* activations */
    b += d.nb * hp->rope.n_rot * 4 + d.nb * hp->n_expert * 4;
    return b;
}

void mr_context_free(mr_context *c)
{
    if (!c)
        return;
    void *bufs[] = {c->k_cache, c->v_cache, c->kv_rows, c->kv_row0, c->x, c->h, c->q, c->kv_k, c->kv_v, c->att,
                    c->rl, c->selw, c->xg, c->g, c->u, c->y, c->w_of, c->rope_inv,
                    c->rope_cs, c->sel, c->tok_of, c->act, c->route_counts, c->scratch,
                    c->seq_past, c->tok_seq, c->tok_pos, c->run_seq, c->run_t0, c->run_n,
                    c->y_route, c->row_of};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        free(bufs[i]);
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

void mr_context_set_yarn_trunc(mr_context *c, int trunc)
{
    mr_hparams hp = c->m->hp;
    if (trunc)
        hp.rope.yarn_no_truncate = 0;
    nn_rope_init(&hp, c->m->rope_freqs, c->rope_inv);
}

void mr_context_set_mla_naive(mr_context *c, int naive)
{
    c->mla_naive = naive;
}

mr_status mr_context_set_isa(mr_context *c, const char *isa, mr_error *err)
{
    const mr_isa want = isa ? mr_isa_parse(isa) : MR_ISA_COUNT;
    mr_kernels fast, exact;
    if (want == MR_ISA_COUNT)
        return mr_fail(err, MR_EINVAL, NULL, "isa", MR_NO_OFFSET,
                       "unknown kernel set '%s' (scalar, avx2, avx2vnni, avx512 or neon)", isa ? isa : "");
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
    memset(c->seq_past, 0, c->n_seq * sizeof *c->seq_past);
}

uint32_t mr_context_n_past(const mr_context *c)
{
    return c->seq_past[0];
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

uint32_t mr_context_n_seq(const mr_context *c)
{
    return c->n_seq;
}

uint32_t mr_seq_n_past(const mr_context *c, uint32_t seq)
{
    return seq < c->n_seq ? c->seq_past[seq] : 0;
}

void mr_seq_reset(mr_context *c, uint32_t seq)
{
    if (seq < c->n_seq)
        c->seq_past[seq] = 0;
}

/* Whether every sliding-window ring of a sequence that holds `past`
 * positions still holds the keys the next batch after position n_keep
 * reads: the ring row of the oldest one, max(0, n_keep - window + 1), must
 * not have been written again by a later position. */
static int rings_keep(const mr_context *c, uint32_t past, uint32_t n_keep)
{
    for (uint32_t il = 0; il < c->m->hp.n_layer; il++) {
        const uint32_t w = c->m->layers[il].window, rows = c->kv_rows[il];
        if (!w || rows >= c->n_ctx)
            continue; /* every position has its own row */
        const uint64_t oldest = n_keep + 1 > w ? (uint64_t)n_keep + 1 - w : 0;
        if (oldest + rows < past)
            return 0;
    }
    return 1;
}

uint32_t mr_seq_trim(mr_context *c, uint32_t seq, uint32_t n_keep)
{
    if (seq >= c->n_seq)
        return 0;
    const uint32_t past = c->seq_past[seq];
    if (n_keep >= past)
        return past;
    if (n_keep > 0 && !rings_keep(c, past, n_keep))
        n_keep = 0;
    c->seq_past[seq] = n_keep;
    return n_keep;
}

uint32_t mr_seq_copy(mr_context *c, uint32_t dst, uint32_t src, uint32_t n)
{
    if (dst >= c->n_seq || src >= c->n_seq)
        return 0;
    if (dst == src)
        return mr_seq_trim(c, dst, n);
    const uint32_t past = c->seq_past[src];
    if (n > past)
        n = past;
    if (n > 0 && !rings_keep(c, past, n))
        n = 0;
    for (uint32_t il = 0; n && il < c->m->hp.n_layer; il++) {
        /* a ring is copied whole (its rows are not in position order) */
        const uint32_t rows = c->kv_rows[il];
        const size_t k = rows < c->n_ctx ? rows : n;
        memcpy(c->k_cache + ctx_kv_row(c, il, dst) * c->k_row_bytes,
               c->k_cache + ctx_kv_row(c, il, src) * c->k_row_bytes, k * c->k_row_bytes);
        if (c->v_cache)
            memcpy(c->v_cache + ctx_kv_row(c, il, dst) * c->v_row_bytes,
                   c->v_cache + ctx_kv_row(c, il, src) * c->v_row_bytes, k * c->v_row_bytes);
    }
    c->seq_past[dst] = n;
    return n;
}

/* Check a batch and lay out its runs (c->tok_seq, tok_pos, run_*);
 * seq_ids NULL: every token is sequence 0's. */
static mr_status plan_batch(mr_context *c, const int32_t *tokens, const uint32_t *seq_ids,
                            uint32_t n, mr_error *err)
{
    if (n == 0 || n > c->n_batch)
        return mr_fail(err, MR_EINVAL, NULL, "decode", MR_NO_OFFSET,
                       "batch of %u tokens (1..%u allowed)", n, c->n_batch);
    c->n_runs = 0;
    for (uint32_t t = 0; t < n; t++) {
        const uint32_t q = seq_ids ? seq_ids[t] : 0;
        if (tokens[t] < 0 || (uint32_t)tokens[t] >= c->m->hp.n_vocab)
            return mr_fail(err, MR_EINVAL, NULL, "decode", MR_NO_OFFSET,
                           "token id %d at batch index %u is outside the vocabulary (%u)",
                           tokens[t], t, c->m->hp.n_vocab);
        if (q >= c->n_seq)
            return mr_fail(err, MR_EINVAL, NULL, "decode", MR_NO_OFFSET,
                           "sequence %u at batch index %u (the context has %u)", q, t,
                           c->n_seq);
        if (t == 0 || q != c->tok_seq[t - 1]) {
            for (uint32_t r = 0; r < c->n_runs; r++)
                if (c->run_seq[r] == q)
                    return mr_fail(err, MR_EINVAL, NULL, "decode", MR_NO_OFFSET,
                                   "sequence %u's tokens are not contiguous in the batch "
                                   "(again at index %u)",
                                   q, t);
            c->run_seq[c->n_runs] = q;
            c->run_t0[c->n_runs] = t;
            c->run_n[c->n_runs] = 0;
            c->n_runs++;
        }
        c->tok_seq[t] = q;
        c->tok_pos[t] = c->seq_past[q] + c->run_n[c->n_runs - 1]++;
    }
    for (uint32_t r = 0; r < c->n_runs; r++) {
        const uint32_t q = c->run_seq[r];
        if (c->seq_past[q] + c->run_n[r] <= c->n_ctx)
            continue;
        if (c->n_seq == 1)
            return mr_fail(err, MR_ERANGE, NULL, "decode", MR_NO_OFFSET,
                           "context is full: %u cached + %u new > %u positions (raise -c)",
                           c->seq_past[q], c->run_n[r], c->n_ctx);
        return mr_fail(err, MR_ERANGE, NULL, "decode", MR_NO_OFFSET,
                       "sequence %u is full: %u cached + %u new > %u positions (raise -c)", q,
                       c->seq_past[q], c->run_n[r], c->n_ctx);
    }
    return MR_OK;
}

static mr_status decode_planned(mr_context *c, const int32_t *tokens, uint32_t n, float *logits,
                                int all_logits, mr_error *err)
{
    const mr_model *m = c->m;
    const mr_hparams *hp = &m->hp;
    mr_status s;

    const mr_type_traits *et = mr_type_get(m->tok_embd.type);
    for (uint32_t t = 0; t < n; t++)
        et->to_f32(m->tok_embd.data + (size_t)tokens[t] * m->tok_embd.row_bytes,
                   c->x + (size_t)t * hp->n_embd, hp->n_embd);

    nn_rope_prepare(c, n);
    for (uint32_t il = 0; il < hp->n_layer; il++) {
        if ((s = m->arch->layer(c, il, n, err)))
            return s;
        if (atomic_exchange(&c->scratch_failed, 0))
            return mr_fail(err, MR_ENOMEM, NULL, "decode", MR_NO_OFFSET,
                           "no memory for the scratch of layer %u's attention", il);
    }
    c->store->stats.tokens += n;

    if (logits) {
        /* all rows, or the last token of each run */
        uint32_t rows = n;
        if (all_logits)
            nn_rmsnorm_rows(c->h, c->x, m->output_norm, n, hp->n_embd, hp->norm_eps);
        else {
            rows = c->n_runs;
            for (uint32_t r = 0; r < rows; r++)
                nn_rmsnorm_rows(c->h + (size_t)r * hp->n_embd,
                                c->x + (size_t)(c->run_t0[r] + c->run_n[r] - 1) * hp->n_embd,
                                m->output_norm, 1, hp->n_embd, hp->norm_eps);
        }
        nn_matmul(c, &m->output, c->h, rows, logits);
        /* NaN or Inf here means the weights or the activations overflowed:
         * say so rather than sample garbage (every caller relies on this) */
        const size_t all = (size_t)rows * hp->n_vocab, i = mr_first_nonfinite(logits, all);
        if (i < all) {
            const size_t row = i / hp->n_vocab;
            return mr_fail(err, MR_EFORMAT, m->gguf->path, "logits", MR_NO_OFFSET,
                           "logit %zu of token %zu is %s: the model's weights or its "
                           "activations are not finite",
                           i % hp->n_vocab,
                           all_logits ? row : (size_t)c->run_t0[row] + c->run_n[row] - 1,
                           isnan(logits[i]) ? "NaN" : "infinite");
        }
    }
    for (uint32_t r = 0; r < c->n_runs; r++)
        c->seq_past[c->run_seq[r]] += c->run_n[r];
    return MR_OK;
}

mr_status mr_decode(mr_context *c, const int32_t *tokens, uint32_t n, float *logits,
                    int all_logits, mr_error *err)
{
    mr_status s = plan_batch(c, tokens, NULL, n, err);
    return s ? s : decode_planned(c, tokens, n, logits, all_logits, err);
}

mr_status mr_decode_batch(mr_context *c, const int32_t *tokens, const uint32_t *seq_ids,
                          uint32_t n, float *logits, int all_logits, mr_error *err)
{
    mr_status s = plan_batch(c, tokens, seq_ids, n, err);
    return s ? s : decode_planned(c, tokens, n, logits, all_logits, err);
}
