/* linear.c - matrix products through the kernel table, rows split across
 * the context's pool (a batch's activations prepared across it too); a
 * batch's RMSNorm across it; bias and residual adds. */
#include "nn.h"

typedef struct {
    const mr_kernels *k;
    uint32_t type;
    int packed; /* w is k's repacked copy */
    const void *w;
    size_t row_bytes;
    const void *act;
    int64_t n, n_out, n_tok;
    float *y;
} mm_job;

static void mm_range(void *arg, int64_t r0, int64_t r1)
{
    const mm_job *j = arg;
    if (j->packed)
        mr_matmul_rows_packed(j->k, j->type, j->w, j->act, j->n, j->n_tok, j->y, j->n_out, r0, r1);
    else
        mr_matmul_rows(j->k, j->type, j->w, j->row_bytes, j->act, j->n, j->n_tok, j->y, j->n_out,
                       r0, r1);
}

typedef struct {
    const mr_kernels *k;
    uint32_t type;
    const float *x;
    int64_t n_in;
    void *buf;
} prep_job;

static void prep_range(void *arg, int64_t t0, int64_t t1)
{
    const prep_job *j = arg;
    const size_t rb = mr_act_row_bytes(j->k, j->type, j->n_in);
    mr_act_prepare(j->k, j->type, j->x + t0 * j->n_in, j->n_in, t1 - t0, (uint8_t *)j->buf + (size_t)t0 * rb);
}

/* x's n rows prepared for type's kernels into c->act: a batch's rows
 * across the pool (each row on its own: the same bytes) */
static const void *prepare(mr_context *c, uint32_t type, const float *x, int64_t n_in, int64_t n)
{
    if (n < NN_SPLIT_ROWS || c->k->act_type[type] == MR_TYPE_F32)
        return mr_act_prepare(c->k, type, x, n_in, n, c->act);
    prep_job j = {c->k, type, x, n_in, c->act};
    mr_pool_run(c->pool, n, 4, prep_range, &j);
    return c->act;
}

void nn_matmul_raw(mr_context *c, uint32_t type, const void *w, size_t row_bytes, int64_t n_in,
                   int64_t n_out, const float *x, int64_t n, float *y)
{
    mm_job j = {c->k, type, 0, w, row_bytes, NULL, n_in, n_out, n, y};
    j.act = prepare(c, type, x, n_in, n);
    mr_pool_run(c->pool, n_out, MR_PACK_ROWS, mm_range, &j);
}

void nn_matmul_packed(mr_context *c, uint32_t type, const void *w, int64_t n_in, int64_t n_out,
                      const float *x, int64_t n, float *y)
{
    mm_job j = {c->k, type, 1, w, 0, NULL, n_in, n_out, n, y};
    j.act = prepare(c, type, x, n_in, n);
    /* chunks of whole row groups */
    mr_pool_run(c->pool, n_out, MR_PACK_ROWS, mm_range, &j);
}

void nn_matmul(mr_context *c, const mr_tensor *w, const float *x, uint32_t n, float *y)
{
    /* the repacked copy when this context computes with its kernels (the
     * same bits as the file's); else the file's bytes, still mapped */
    if (w->packed && w->packed_gemm == c->k->gemm_packed[w->type]) {
        nn_matmul_packed(c, w->type, w->packed, (int64_t)w->ne[0], (int64_t)w->ne[1], x, n, y);
        return;
    }
    nn_matmul_raw(c, w->type, w->data, w->row_bytes, (int64_t)w->ne[0], (int64_t)w->ne[1], x, n,
                  y);
}

typedef struct {
    float *out;
    const float *x, *w;
    uint32_t n;
    float eps;
} norm_job;

static void norm_range(void *arg, int64_t r0, int64_t r1)
{
    const norm_job *j = arg;
    nn_rmsnorm_rows(j->out + (size_t)r0 * j->n, j->x + (size_t)r0 * j->n, j->w, (uint32_t)(r1 - r0), j->n,
                    j->eps);
}

void nn_rmsnorm_batch(mr_context *c, float *out, const float *x, const float *w, uint32_t n_rows,
                      uint32_t n, float eps)
{
    if (n_rows < NN_SPLIT_ROWS) {
        nn_rmsnorm_rows(out, x, w, n_rows, n, eps);
        return;
    }
    norm_job j = {out, x, w, n, eps};
    mr_pool_run(c->pool, n_rows, 4, norm_range, &j);
}

typedef struct {
    float *x;
    const float *w;
    uint32_t stride, n_heads, hd;
    float eps;
} heads_job;

static void heads_range(void *arg, int64_t r0, int64_t r1)
{
    const heads_job *j = arg;
    nn_rmsnorm_heads(j->x + (size_t)r0 * j->stride, j->w, (uint32_t)(r1 - r0), j->stride, j->n_heads, j->hd,
                     j->eps);
}

void nn_rmsnorm_heads_batch(mr_context *c, float *x, const float *w, uint32_t n_rows, uint32_t stride,
                            uint32_t n_heads, uint32_t hd, float eps)
{
    if (n_rows < NN_SPLIT_ROWS) {
        nn_rmsnorm_heads(x, w, n_rows, stride, n_heads, hd, eps);
        return;
    }
    heads_job j = {x, w, stride, n_heads, hd, eps};
    mr_pool_run(c->pool, n_rows, 4, heads_range, &j);
}

void nn_add_bias(float *y, const float *b, uint32_t n, uint32_t dim)
{
    if (!b)
        return;
    for (uint32_t t = 0; t < n; t++)
        for (uint32_t i = 0; i < dim; i++)
            y[(size_t)t * dim + i] += b[i];
}

void nn_add(float *x, const float *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] += y[i];
}
