/* pack.c - repacked copies of weight tensors (see pack.h). */
#include "pack.h"

#include <sys/mman.h>
#include <unistd.h>

typedef struct {
    const mr_kernels *k;
    uint32_t t;
    const uint8_t *src;
    uint8_t *dst;
    int64_t rows, n; /* per slice */
    size_t src_slice, src_rb, dst_slice, dst_rb;
} pack_job;

static void pack_range(void *arg, int64_t g0, int64_t g1)
{
    /* [g0, g1): groups of MR_PACK_ROWS rows over all slices */
    const pack_job *j = arg;
    const int64_t per = j->rows / MR_PACK_ROWS;
    for (int64_t g = g0; g < g1; g++) {
        const int64_t e = g / per, r = g % per * MR_PACK_ROWS;
        j->k->repack[j->t](j->src + (size_t)e * j->src_slice + (size_t)r * j->src_rb, j->src_rb,
                           MR_PACK_ROWS, j->n, j->dst + (size_t)e * j->dst_slice + (size_t)r * j->dst_rb);
    }
}

/* Give the file's pages of [p, p + len) back (whole pages inside only). */
static void release_pages(const mr_model *m, const uint8_t *p, size_t len)
{
    if (!m->gguf->mapped)
        return;
    const uintptr_t ps = (uintptr_t)sysconf(_SC_PAGESIZE);
    const uintptr_t a = ((uintptr_t)p + ps - 1) & ~(ps - 1), b = ((uintptr_t)p + len) & ~(ps - 1);
    if (b > a)
        madvise((void *)a, b - a, MADV_DONTNEED);
}

uint8_t *mr_pack_slices(const mr_model *m, const mr_kernels *k, mr_pool *pool, uint32_t t,
                        const uint8_t *src, size_t src_slice, size_t src_row_bytes, int64_t rows,
                        int64_t n, uint32_t n_slices, size_t *dst_slice)
{
    const size_t prb = mr_pack_row_bytes(k, t, n), ds = (size_t)rows * prb;
    void *dst = mmap(NULL, ds * n_slices, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (dst == MAP_FAILED)
        return NULL;
    pack_job j = {k, t, src, dst, rows, n, src_slice, src_row_bytes, ds, prb};
    const int64_t groups = rows / MR_PACK_ROWS * (int64_t)n_slices;
    if (pool)
        mr_pool_run(pool, groups, 1, pack_range, &j);
    else
        pack_range(&j, 0, groups);
    release_pages(m, src, src_slice * n_slices);
    *dst_slice = ds;
    return dst;
}

void mr_pack_free(uint8_t *p, size_t bytes)
{
    if (p)
        munmap(p, bytes);
}

static mr_status pack_one(mr_model *m, const mr_kernels *k, mr_pool *pool, mr_tensor *w,
                          uint64_t *bytes, mr_error *err)
{
    if (!w->data || w->packed || w->ne[2] > 1 || w->ne[3] > 1 ||
        !mr_can_pack(k, w->type, (int64_t)w->ne[1], (int64_t)w->ne[0]))
        return MR_OK;
    size_t ds;
    uint8_t *p = mr_pack_slices(m, k, pool, w->type, w->data, w->nbytes, w->row_bytes,
                                (int64_t)w->ne[1], (int64_t)w->ne[0], 1, &ds);
    if (!p)
        return mr_fail(err, MR_ENOMEM, m->gguf->path, w->name, MR_NO_OFFSET,
                       "no memory for the repacked tensor (use --no-repack)");
    w->packed = p;
    w->packed_bytes = ds;
    w->packed_gemm = k->gemm_packed[w->type];
    *bytes += ds;
    return MR_OK;
}

static uint64_t need_one(const mr_kernels *k, const mr_tensor *w, uint64_t slices)
{
    if (!mr_can_pack(k, w->type, (int64_t)w->ne[1], (int64_t)w->ne[0]))
        return 0;
    return slices * (uint64_t)w->ne[1] * mr_pack_row_bytes(k, w->type, (int64_t)w->ne[0]);
}

uint64_t mr_pack_bytes_needed(const mr_model *m, const mr_kernels *k)
{
    uint64_t b = 0;
    for (uint32_t l = 0; l < m->hp.n_layer; l++) {
        const mr_layer *L = &m->layers[l];
        const mr_tensor *t[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->wq_a, &L->wq_b, &L->wkv_a,
                                &L->sh_gate, &L->sh_up, &L->sh_down};
        for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
            if (t[i]->data && t[i]->ne[2] <= 1 && t[i]->ne[3] <= 1)
                b += need_one(k, t[i], 1);
        if (L->moe) {
            b += need_one(k, &L->gate, m->hp.n_expert) + need_one(k, &L->up, m->hp.n_expert) +
                 need_one(k, &L->down, m->hp.n_expert);
        }
    }
    if (m->output.data != m->tok_embd.data)
        b += need_one(k, &m->output, 1);
    return b;
}

mr_status mr_model_pack(mr_model *m, const mr_kernels *k, unsigned threads, uint64_t *bytes,
                        mr_error *err)
{
    *bytes = 0;
    mr_pool *pool = NULL;
    if (threads > 1 && mr_pool_new((int)threads, &pool, err))
        pool = NULL; /* one thread then */
    mr_status st = MR_OK;
    for (uint32_t l = 0; !st && l < m->hp.n_layer; l++) {
        mr_layer *L = &m->layers[l];
        mr_tensor *t[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->wq_a, &L->wq_b, &L->wkv_a,
                          &L->sh_gate, &L->sh_up, &L->sh_down};
        for (size_t i = 0; !st && i < sizeof t / sizeof t[0]; i++)
            st = pack_one(m, k, pool, t[i], bytes, err);
    }
    /* the output, unless it is the embedding table (read by rows) */
    if (!st && m->output.data != m->tok_embd.data)
        st = pack_one(m, k, pool, &m->output, bytes, err);
    if (pool)
        mr_pool_free(pool);
    return st;
}
