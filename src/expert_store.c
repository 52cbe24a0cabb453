/* expert_store.c - the backend-independent half of the expert store:
 * argument checks and the counters every backend shares. */
#include <string.h>

#include "expert_store.h"

#include <stdlib.h>

uint64_t mr_expert_bytes(const mr_model *m, uint32_t layer)
{
    const mr_layer *L = &m->layers[layer];
    return mr_expert_slice_bytes(&L->gate) + mr_expert_slice_bytes(&L->up) +
           mr_expert_slice_bytes(&L->down);
}

static mr_status check_ids(const mr_expert_store *s, uint32_t layer, uint32_t expert,
                           mr_error *err)
{
    if (layer >= s->model->hp.n_layer || expert >= s->model->hp.n_expert)
        return mr_fail(err, MR_EINVAL, s->model->gguf->path, "expert store", MR_NO_OFFSET,
                       "layer %u expert %u is out of range", layer, expert);
    return MR_OK;
}

mr_status mr_expert_store_plan(mr_expert_store *s, uint32_t layer, const uint32_t *experts,
                               uint32_t n, mr_error *err)
{
    mr_status st;
    for (uint32_t i = 0; i < n; i++)
        if ((st = check_ids(s, layer, experts[i], err)))
            return st;
    s->stats.plans++;
    return s->ops->plan ? s->ops->plan(s, layer, experts, n, err) : MR_OK;
}

mr_status mr_expert_store_acquire(mr_expert_store *s, uint32_t layer, uint32_t expert,
                                  mr_expert_slices *out, mr_error *err)
{
    mr_status st = check_ids(s, layer, expert, err);
    if (st)
        return st;
    memset(out, 0, sizeof *out); /* backends that never pack leave the flags 0 */
    if ((st = s->ops->acquire(s, layer, expert, out, err)))
        return st;
    s->stats.acquires++;
    s->stats.bytes_touched += mr_expert_bytes(s->model, layer);
    return MR_OK;
}

void mr_expert_store_release(mr_expert_store *s, uint32_t layer, uint32_t expert)
{
    if (s->ops->release)
        s->ops->release(s, layer, expert);
}

void mr_expert_store_hint(mr_expert_store *s, uint32_t layer, const uint32_t *experts,
                          uint32_t n)
{
    if (s->ops->hint && layer < s->model->hp.n_layer)
        s->ops->hint(s, layer, experts, n);
}

void mr_expert_store_free(mr_expert_store *s)
{
    if (s)
        s->ops->destroy(s);
}
