/* linear.c - matrix products through the kernel table, rows split across
 * the context's pool; bias and residual adds. */
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

void nn_matmul_raw(mr_context *c, uint32_t type, const void *w, size_t row_bytes, int64_t n_in,
                   int64_t n_out, const float *x, int64_t n, float *y)
{
    mm_job j = {c->k, type, 0, w, row_bytes, NULL, n_in, n_out, n, y};
    j.act = mr_act_prepare(c->k, type, x, n_in, n, c->act);
    mr_pool_run(c->pool, n_out, MR_PACK_ROWS, mm_range, &j);
}

void nn_matmul_packed(mr_context *c, uint32_t type, const void *w, int64_t n_in, int64_t n_out,
                      const float *x, int64_t n, float *y)
{
    mm_job j = {c->k, type, 1, w, 0, NULL, n_in, n_out, n, y};
    j.act = mr_act_prepare(c->k, type, x, n_in, n, c->act);
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
