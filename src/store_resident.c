/* store_resident.c - the all-resident expert store: slices are pointers
 * into the model file's mapping, so acquire is arithmetic and the kernel's
 * page cache decides residency. */
#include <stdlib.h>

#include "expert_store.h"

static const void *slice(const mr_model *m, const mr_tensor *t, uint32_t expert)
{
    return m->gguf->base + t->file_offset + (uint64_t)expert * mr_expert_slice_bytes(t);
}

static mr_status resident_acquire(mr_expert_store *s, uint32_t layer, uint32_t expert,
                                  mr_expert_slices *out, mr_error *err)
{
    (void)err;
    const mr_layer *L = &s->model->layers[layer];
    out->gate = slice(s->model, &L->gate, expert);
    out->up = slice(s->model, &L->up, expert);
    out->down = slice(s->model, &L->down, expert);
    return MR_OK;
}

static void resident_destroy(mr_expert_store *s)
{
    free(s);
}

static const mr_expert_store_ops resident_ops = {
    .name = "resident (mmap)",
    .acquire = resident_acquire,
    .destroy = resident_destroy,
    .holds_all = 1,
};

mr_status mr_store_resident_new(const mr_model *m, mr_expert_store **out, mr_error *err)
{
    mr_expert_store *s = calloc(1, sizeof *s);
    if (!s)
        return mr_fail(err, MR_ENOMEM, m->gguf->path, NULL, MR_NO_OFFSET, "no memory");
    s->ops = &resident_ops;
    s->model = m;
    *out = s;
    return MR_OK;
}
