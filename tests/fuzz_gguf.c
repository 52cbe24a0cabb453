/* fuzz_gguf.c - libFuzzer harness for the GGUF reader and model validation.
 *
 * Every input goes through mr_gguf_open_mem and, when that accepts it,
 * mr_model_from_gguf.  Whatever the library accepts is then read in full:
 * every key, string and array element, and every tensor's bytes are summed,
 * so ASan proves all the pointers it hands out stay inside the input.  A
 * rejection must come with a message.  Nothing may leak (LeakSanitizer).
 *
 * With MOERUN_FUZZ_CHECK_SIZES defined (the default), an accepted tensor's
 * nbytes must also equal its element count times its type's size, computed
 * here in 128 bits; define MOERUN_FUZZ_NO_SIZE_CHECK to fuzz for memory
 * errors only.
 *
 * Build (see tests/corpus/gguf/ for the seeds):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc -Iquant \
 *     src/status.c src/gguf.c src/model.c quant/types.c quant/f16.c \
 *     quant/ref_float.c quant/ref_q8_0.c quant/ref_q4_0.c tests/fuzz_gguf.c -lm
 *   ./a.out -max_len=65536 CORPUS_DIR tests/corpus/gguf
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "gguf.h"
#include "model.h"
#include "types.h"

#ifndef MOERUN_FUZZ_NO_SIZE_CHECK
#define MOERUN_FUZZ_CHECK_SIZES 1
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Where the sums go, so the reads cannot be optimised away. */
volatile uint64_t fuzz_sink;

/* Stop the run: libFuzzer saves the input as a crash. */
static void fuzz_fail(void)
{
    __builtin_trap();
}

/* Sum n bytes: reading them is the point (ASan checks every one). */
static uint64_t touch(const void *p, uint64_t n)
{
    const volatile uint8_t *b = p;
    uint64_t s = 0;
    for (uint64_t i = 0; i < n; i++)
        s += b[i];
    return s;
}

/* True when [p, p + n) lies inside the input. */
static int inside(const uint8_t *data, size_t size, const void *p, uint64_t n)
{
    const uint8_t *q = p;
    return q >= data && (uint64_t)(q - data) <= size && n <= size - (uint64_t)(q - data);
}

/* Read every byte a value points at, recursively. */
static uint64_t touch_value(const uint8_t *data, size_t size, const mr_gguf_value *v)
{
    uint64_t s = 0;
    if (v->type == MR_GGUF_STRING) {
        if (!inside(data, size, v->v.str.ptr, v->v.str.len))
            fuzz_fail();
        return touch(v->v.str.ptr, v->v.str.len);
    }
    if (v->type != MR_GGUF_ARRAY)
        return 0;
    uint32_t et = v->v.arr.elem_type;
    if (mr_gguf_vtype_size(et)) {
        if (!inside(data, size, v->v.arr.data, v->v.arr.n * mr_gguf_vtype_size(et)))
            fuzz_fail();
        for (uint64_t i = 0; i < v->v.arr.n; i++)
            s += (uint64_t)mr_gguf_arr_int(v, i) + (uint64_t)(mr_gguf_arr_f32(v, i) != 0.0f);
    } else if (et == MR_GGUF_STRING) {
        for (uint64_t i = 0; i < v->v.arr.n; i++) {
            if (!inside(data, size, v->v.arr.strs[i].ptr, v->v.arr.strs[i].len))
                fuzz_fail();
            s += touch(v->v.arr.strs[i].ptr, v->v.arr.strs[i].len);
        }
    } else {
        for (uint64_t i = 0; i < v->v.arr.n; i++)
            s += touch_value(data, size, &v->v.arr.items[i]);
    }
    return s;
}

/* Check and read everything an accepted file exposes. */
static uint64_t touch_gguf(const uint8_t *data, size_t size, const mr_gguf *g)
{
    uint64_t s = 0;
    if (g->file_size != size || g->base != data)
        fuzz_fail();
    for (uint64_t i = 0; i < g->n_kv; i++) {
        s += touch(g->kv[i].key, strlen(g->kv[i].key) + 1);
        s += touch_value(data, size, &g->kv[i].val);
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const mr_gguf_tensor *t = &g->tensors[i];
        if (t->data != data + t->file_offset || !inside(data, size, t->data, t->nbytes))
            fuzz_fail();
#ifdef MOERUN_FUZZ_CHECK_SIZES
        const mr_type_traits *tt = mr_type_get(t->type);
        if (tt->block_size == 0 || t->ne[0] % tt->block_size)
            fuzz_fail();
        unsigned __int128 want = (unsigned __int128)(t->ne[0] / tt->block_size) * tt->type_size;
        for (int d = 1; d < MR_GGUF_MAX_DIMS && want <= UINT64_MAX; d++)
            want *= t->ne[d];
        if (want != t->nbytes)
            fuzz_fail(); /* the byte size wrapped around */
#endif
        s += touch(t->name, strlen(t->name) + 1) + touch(t->data, t->nbytes);
    }
    return s;
}

/* Read every tensor view and norm copy of an accepted model. */
static uint64_t touch_model(const mr_model *m)
{
    uint64_t s = touch(m->output_norm, 4ull * m->hp.n_embd);
    const mr_tensor *top[2] = {&m->tok_embd, &m->output};
    for (int i = 0; i < 2; i++)
        s += touch(top[i]->data, top[i]->nbytes);
    for (uint32_t il = 0; il < m->hp.n_layer; il++) {
        const mr_layer *L = &m->layers[il];
        const mr_tensor *ts[5] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->router};
        s += touch(L->attn_norm, 4ull * m->hp.n_embd) + touch(L->ffn_norm, 4ull * m->hp.n_embd);
        for (int i = 0; i < 5; i++)
            if (ts[i]->data)
                s += touch(ts[i]->data, ts[i]->nbytes);
    }
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mr_gguf *g = (mr_gguf *)1;
    mr_model *m = (mr_model *)1;
    mr_error err;
    mr_error_clear(&err);
    mr_status s = mr_gguf_open_mem(data, size, "fuzz.gguf", &g, &err);
    if (s != MR_OK) {
        if (g != NULL || err.msg[0] == '\0' || err.code != s || s >= MR_STATUS_COUNT)
            fuzz_fail();
        return 0;
    }
    fuzz_sink += touch_gguf(data, size, g);
    mr_error_clear(&err);
    s = mr_model_from_gguf(g, &m, &err); /* owns g from here on */
    if (s != MR_OK) {
        if (m != NULL || err.msg[0] == '\0' || err.code != s || s >= MR_STATUS_COUNT)
            fuzz_fail();
        return 0;
    }
    fuzz_sink += touch_gguf(data, size, m->gguf) + touch_model(m);
    mr_model_free(m);
    return 0;
}
