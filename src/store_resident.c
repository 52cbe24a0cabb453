/* store_resident.c - the all-resident expert store: slices are pointers
 * into the model file's mapping, so acquire is arithmetic and the kernel's
 * page cache decides residency.  The packed variant first copies every
 * expert tensor its kernels can read faster in their repacked layout
 * (simd/kernels.h: repack) and hands out pointers into those copies. */
#include <stdlib.h>
#include <string.h>

#include "expert_store.h"
#include "pack.h"
#include "threadpool.h"

/* A layer's three expert tensors, packed copies or NULL (the file's). */
typedef struct {
    uint8_t *p[3];
    size_t slice[3]; /* bytes of one expert's packed slice */
} packed_layer;

typedef struct {
    mr_expert_store base;
    packed_layer *layers; /* NULL: nothing packed */
    uint32_t n_layers;
    mr_kernels k; /* the table the copies are for (base.packed_with) */
} resident_store;

static const void *slice(const mr_model *m, const mr_tensor *t, uint32_t expert)
{
    return m->gguf->base + t->file_offset + (uint64_t)expert * mr_expert_slice_bytes(t);
}

static mr_status resident_acquire(mr_expert_store *s, uint32_t layer, uint32_t expert,
                                  mr_expert_slices *out, mr_error *err)
{
    (void)err;
    const resident_store *rs = (const resident_store *)s;
    const mr_layer *L = &s->model->layers[layer];
    const mr_tensor *t[3] = {&L->gate, &L->up, &L->down};
    const void *p[3];
    uint8_t packed[3] = {0, 0, 0};
    for (int i = 0; i < 3; i++) {
        const packed_layer *pl = rs->layers ? &rs->layers[layer] : NULL;
        if (pl && pl->p[i]) {
            p[i] = pl->p[i] + (size_t)expert * pl->slice[i];
            packed[i] = 1;
        } else {
            p[i] = slice(s->model, t[i], expert);
        }
    }
    *out = (mr_expert_slices){p[0], p[1], p[2], packed[0], packed[1], packed[2]};
    return MR_OK;
}

static void resident_destroy(mr_expert_store *s)
{
    resident_store *rs = (resident_store *)s;
    if (rs->layers) {
        for (uint32_t l = 0; l < rs->n_layers; l++)
            for (int i = 0; i < 3; i++)
                mr_pack_free(rs->layers[l].p[i], rs->layers[l].slice[i] * s->model->hp.n_expert);
        free(rs->layers);
    }
    free(rs);
}

static const mr_expert_store_ops resident_ops = {
    .name = "resident (mmap)",
    .acquire = resident_acquire,
    .destroy = resident_destroy,
    .holds_all = 1,
};

static const mr_expert_store_ops packed_ops = {
    .name = "resident (repacked)",
    .acquire = resident_acquire,
    .destroy = resident_destroy,
    .holds_all = 1,
};

mr_status mr_store_resident_new(const mr_model *m, mr_expert_store **out, mr_error *err)
{
    resident_store *s = calloc(1, sizeof *s);
    if (!s)
        return mr_fail(err, MR_ENOMEM, m->gguf->path, NULL, MR_NO_OFFSET, "no memory");
    s->base.ops = &resident_ops;
    s->base.model = m;
    *out = &s->base;
    return MR_OK;
}

mr_status mr_store_resident_packed_new(const mr_model *m, const mr_kernels *k, unsigned threads,
                                       uint64_t *packed_bytes, mr_expert_store **out, mr_error *err)
{
    mr_status st = mr_store_resident_new(m, out, err);
    if (st)
        return st;
    resident_store *s = (resident_store *)*out;
    uint64_t total = 0;
    if (packed_bytes)
        *packed_bytes = 0;
    const uint32_t E = m->hp.n_expert;
    if (E == 0)
        return MR_OK;
    s->layers = calloc(m->hp.n_layer, sizeof *s->layers);
    if (!s->layers)
        goto nomem;
    s->n_layers = m->hp.n_layer;
    mr_pool *pool = NULL;
    if (threads > 1 && mr_pool_new((int)threads, &pool, err))
        pool = NULL; /* one thread then */
    for (uint32_t l = 0; l < m->hp.n_layer; l++) {
        const mr_layer *L = &m->layers[l];
        if (!L->moe) /* a dense layer of a MoE model: resident tensors */
            continue;
        const mr_tensor *t[3] = {&L->gate, &L->up, &L->down};
        for (int i = 0; i < 3; i++) {
            const int64_t n = (int64_t)t[i]->ne[0], rows = (int64_t)t[i]->ne[1];
            if (!mr_can_pack(k, t[i]->type, rows, n))
                continue;
            size_t dslice;
            uint8_t *dst = mr_pack_slices(m, k, pool, t[i]->type, m->gguf->base + t[i]->file_offset,
                                          mr_expert_slice_bytes(t[i]), t[i]->row_bytes, rows, n, E,
                                          &dslice);
            if (!dst) {
                if (pool)
                    mr_pool_free(pool);
                goto nomem;
            }
            s->layers[l].p[i] = dst;
            s->layers[l].slice[i] = dslice;
            total += (uint64_t)dslice * E;
        }
    }
    if (pool)
        mr_pool_free(pool);
    s->base.ops = total ? &packed_ops : &resident_ops;
    s->k = *k;
    s->base.packed_with = total ? &s->k : NULL;
    if (packed_bytes)
        *packed_bytes = total;
    return MR_OK;
nomem:
    mr_expert_store_free(*out);
    *out = NULL;
    return mr_fail(err, MR_ENOMEM, m->gguf->path, NULL, MR_NO_OFFSET,
                   "no memory for the repacked experts (use --no-repack)");
}
