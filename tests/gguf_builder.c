/* gguf_builder.c - test helper: GGUF writer, model recipes and the trusted
 * structural walker described in gguf_builder.h.  Nothing here uses the
 * library, so the tests compare the reader against an independent view. */
#define _POSIX_C_SOURCE 200809L /* strdup, mkstemp, fileno */

#include "gguf_builder.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GB_MAGIC 0x46554747u
#define GB_MAX_WRITE_END (256ull << 20)
#define GB_WALK_MAX_DEPTH 64

/* ================================================================ bytes */

/* Release a buffer and leave it empty (and no longer failed). */
void gb_bytes_free(gb_bytes *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

/* Grow b so that n more bytes fit; -1 (and b->failed) if impossible. */
static int gb_reserve(gb_bytes *b, size_t n)
{
    if (b->failed)
        return -1;
    if (n <= b->cap - b->len)
        return 0;
    if (n > SIZE_MAX / 2 - b->len) {
        b->failed = 1;
        return -1;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < n)
        cap *= 2;
    uint8_t *p = realloc(b->data, cap);
    if (!p) {
        b->failed = 1;
        return -1;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

/* Append n bytes from p, or n zeros when p is NULL. */
int gb_put(gb_bytes *b, const void *p, size_t n)
{
    if (gb_reserve(b, n))
        return -1;
    if (n) {
        if (p)
            memcpy(b->data + b->len, p, n);
        else
            memset(b->data + b->len, 0, n);
    }
    b->len += n;
    return 0;
}

/* Append the n low bytes of v, least significant first. */
static int gb_put_le(gb_bytes *b, uint64_t v, unsigned n)
{
    uint8_t tmp[8];
    for (unsigned i = 0; i < n; i++)
        tmp[i] = (uint8_t)(v >> (8 * i));
    return gb_put(b, tmp, n);
}

/* Fixed-width little-endian appends. */
int gb_put_u8(gb_bytes *b, uint8_t v) { return gb_put_le(b, v, 1); }
int gb_put_u16(gb_bytes *b, uint16_t v) { return gb_put_le(b, v, 2); }
int gb_put_u32(gb_bytes *b, uint32_t v) { return gb_put_le(b, v, 4); }
int gb_put_u64(gb_bytes *b, uint64_t v) { return gb_put_le(b, v, 8); }

/* IEEE single, stored as its bit pattern. */
int gb_put_f32(gb_bytes *b, float v)
{
    uint32_t r;
    memcpy(&r, &v, 4);
    return gb_put_u32(b, r);
}

/* IEEE double, stored as its bit pattern. */
int gb_put_f64(gb_bytes *b, double v)
{
    uint64_t r;
    memcpy(&r, &v, 8);
    return gb_put_u64(b, r);
}

/* GGUF string: u64 length, then the bytes. */
int gb_put_strn(gb_bytes *b, const void *s, uint64_t n)
{
    if (gb_put_u64(b, n))
        return -1;
    return gb_put(b, s, (size_t)n);
}

/* GGUF string from a C string. */
int gb_put_str(gb_bytes *b, const char *s)
{
    return gb_put_strn(b, s, strlen(s));
}

/* Array head: element type then element count. */
int gb_put_arr_head(gb_bytes *b, uint32_t elem_type, uint64_t n)
{
    if (gb_put_u32(b, elem_type))
        return -1;
    return gb_put_u64(b, n);
}

/* Little-endian loads and stores on raw memory (the four below). */
uint32_t gb_rd_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint64_t gb_rd_u64(const uint8_t *p)
{
    return (uint64_t)gb_rd_u32(p) | (uint64_t)gb_rd_u32(p + 4) << 32;
}

void gb_wr_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

void gb_wr_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* ================================================================ types */

/* Scalar element sizes from the GGUF spec. */
size_t gb_vtype_size(uint32_t t)
{
    static const size_t sizes[GB_VTYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return t < GB_VTYPE_COUNT ? sizes[t] : 0;
}

/* Block geometry of the ggml types, written out from ggml's table. */
static int gb_ggml_geometry(uint32_t type, uint64_t *block, uint64_t *size)
{
    static const struct { uint32_t type, block, size; } table[] = {
        {0, 1, 4},     {1, 1, 2},     {2, 32, 18},   {3, 32, 20},   {6, 32, 22},
        {7, 32, 24},   {8, 32, 34},   {9, 32, 36},   {10, 256, 84}, {11, 256, 110},
        {12, 256, 144}, {13, 256, 176}, {14, 256, 210}, {15, 256, 292}, {24, 1, 1},
        {25, 1, 2},    {26, 1, 4},    {27, 1, 8},    {28, 1, 8},    {30, 1, 2},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (table[i].type == type) {
            *block = table[i].block;
            *size = table[i].size;
            return 0;
        }
    return -1;
}

/* Exact byte size, computed in 128 bits; 0 when it cannot be a size. */
uint64_t gb_tensor_nbytes(uint32_t type, uint32_t n_dims, const uint64_t *ne)
{
    uint64_t block, size;
    if (gb_ggml_geometry(type, &block, &size) || n_dims < 1 || n_dims > 4 || ne[0] % block)
        return 0;
    unsigned __int128 total = (unsigned __int128)(ne[0] / block) * size;
    for (uint32_t d = 1; d < n_dims; d++) {
        total *= ne[d];
        if (total > UINT64_MAX)
            return 0;
    }
    return total > UINT64_MAX ? 0 : (uint64_t)total;
}

/* ================================================================ builder */

/* Mark the builder failed (allocation or bad request) and return -1. */
static int gb_oom(gguf_builder *b)
{
    b->failed = 1;
    return -1;
}

/* A fresh v3 image with the default alignment. */
gguf_builder *gb_new(void)
{
    gguf_builder *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->magic = GB_MAGIC;
    b->version = 3;
    b->alignment = 32;
    return b;
}

/* Free a builder and everything it owns (borrowed tensor data excepted). */
void gb_free(gguf_builder *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->n_kvs; i++) {
        free(b->kvs[i].key);
        gb_bytes_free(&b->kvs[i].val);
    }
    for (size_t i = 0; i < b->n_tensors; i++) {
        free(b->tensors[i].name);
        free(b->tensors[i].owned);
    }
    free(b->kvs);
    free(b->tensors);
    free(b);
}

/* Position of a key in insertion order, or -1. */
long gb_kv_index(const gguf_builder *b, const char *key)
{
    for (size_t i = 0; i < b->n_kvs; i++)
        if (strcmp(b->kvs[i].key, key) == 0)
            return (long)i;
    return -1;
}

/* Position of a tensor in insertion order, or -1. */
long gb_tensor_index(const gguf_builder *b, const char *name)
{
    for (size_t i = 0; i < b->n_tensors; i++)
        if (strcmp(b->tensors[i].name, name) == 0)
            return (long)i;
    return -1;
}

/* Grow an array of `size`-byte items so one more fits; -1 if impossible. */
static int gb_grow(void **arr, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 16;
    if (ncap > SIZE_MAX / size)
        return -1;
    void *p = realloc(*arr, ncap * size);
    if (!p)
        return -1;
    *arr = p;
    *cap = ncap;
    return 0;
}

/* Replace (or append) a key and hand back its empty value buffer. */
gb_bytes *gb_kv_begin(gguf_builder *b, const char *key, uint32_t type, int append)
{
    long i = append ? -1 : gb_kv_index(b, key);
    if (i >= 0) {
        b->kvs[i].type = type;
        gb_bytes_free(&b->kvs[i].val);
        return &b->kvs[i].val;
    }
    char *k = strdup(key);
    if (!k || gb_grow((void **)&b->kvs, &b->cap_kvs, b->n_kvs, sizeof *b->kvs)) {
        free(k);
        b->failed = 1;
        return NULL;
    }
    gb_kv *kv = &b->kvs[b->n_kvs++];
    memset(kv, 0, sizeof *kv);
    kv->key = k;
    kv->type = type;
    return &kv->val;
}

/* Drop a key, keeping the order of the others. */
void gb_kv_remove(gguf_builder *b, const char *key)
{
    long i = gb_kv_index(b, key);
    if (i < 0)
        return;
    free(b->kvs[i].key);
    gb_bytes_free(&b->kvs[i].val);
    memmove(&b->kvs[i], &b->kvs[i + 1], (b->n_kvs - (size_t)i - 1) * sizeof *b->kvs);
    b->n_kvs--;
}

/* Shared body of the scalar setters: replace key with n raw LE bytes of v. */
static int gb_kv_scalar(gguf_builder *b, const char *key, uint32_t type, uint64_t v)
{
    gb_bytes *val = gb_kv_begin(b, key, type, 0);
    if (!val || gb_put_le(val, v, (unsigned)gb_vtype_size(type)))
        return gb_oom(b);
    return 0;
}

/* Integer and bool setters: little-endian, the spec's widths. */
int gb_kv_u8(gguf_builder *b, const char *k, uint8_t v) { return gb_kv_scalar(b, k, GB_UINT8, v); }
int gb_kv_i8(gguf_builder *b, const char *k, int8_t v) { return gb_kv_scalar(b, k, GB_INT8, (uint8_t)v); }
int gb_kv_u16(gguf_builder *b, const char *k, uint16_t v) { return gb_kv_scalar(b, k, GB_UINT16, v); }
int gb_kv_i16(gguf_builder *b, const char *k, int16_t v) { return gb_kv_scalar(b, k, GB_INT16, (uint16_t)v); }
int gb_kv_u32(gguf_builder *b, const char *k, uint32_t v) { return gb_kv_scalar(b, k, GB_UINT32, v); }
int gb_kv_i32(gguf_builder *b, const char *k, int32_t v) { return gb_kv_scalar(b, k, GB_INT32, (uint32_t)v); }
int gb_kv_u64(gguf_builder *b, const char *k, uint64_t v) { return gb_kv_scalar(b, k, GB_UINT64, v); }
int gb_kv_i64(gguf_builder *b, const char *k, int64_t v) { return gb_kv_scalar(b, k, GB_INT64, (uint64_t)v); }
int gb_kv_bool(gguf_builder *b, const char *k, int v) { return gb_kv_scalar(b, k, GB_BOOL, v ? 1 : 0); }

/* Single-precision value, stored by bit pattern. */
int gb_kv_f32(gguf_builder *b, const char *key, float v)
{
    uint32_t r;
    memcpy(&r, &v, 4);
    return gb_kv_scalar(b, key, GB_FLOAT32, r);
}

/* Double-precision value, stored by bit pattern. */
int gb_kv_f64(gguf_builder *b, const char *key, double v)
{
    uint64_t r;
    memcpy(&r, &v, 8);
    return gb_kv_scalar(b, key, GB_FLOAT64, r);
}

/* String value. */
int gb_kv_str(gguf_builder *b, const char *key, const char *v)
{
    gb_bytes *val = gb_kv_begin(b, key, GB_STRING, 0);
    if (!val || gb_put_str(val, v))
        return gb_oom(b);
    return 0;
}

/* Append the elements of a flat array (host values) to val. */
static int gb_put_elems(gb_bytes *val, uint32_t et, uint64_t n, const void *elems)
{
    size_t s = gb_vtype_size(et);
    for (uint64_t i = 0; i < n; i++) {
        if (et == GB_STRING) {
            if (gb_put_str(val, ((const char *const *)elems)[i]))
                return -1;
            continue;
        }
        const uint8_t *p = (const uint8_t *)elems + i * s;
        uint64_t v = 0;
        switch (s) {
        case 1: v = p[0]; break;
        case 2: { uint16_t x; memcpy(&x, p, 2); v = x; break; }
        case 4: { uint32_t x; memcpy(&x, p, 4); v = x; break; }
        case 8: memcpy(&v, p, 8); break;
        default: return -1; /* arrays of arrays: use gb_kv_nested */
        }
        if (gb_put_le(val, v, (unsigned)s))
            return -1;
    }
    return 0;
}

/* Flat array of scalars or strings. */
int gb_kv_arr(gguf_builder *b, const char *key, uint32_t elem_type, uint64_t n,
              const void *elems)
{
    gb_bytes *val = gb_kv_begin(b, key, GB_ARRAY, 0);
    if (!val || gb_put_arr_head(val, elem_type, n) || gb_put_elems(val, elem_type, n, elems))
        return gb_oom(b);
    return 0;
}

/* depth levels of one-element arrays around n_leaf uint32 values, written
 * in the spec layout (no per-element type tag inside arrays of arrays). */
int gb_kv_nested(gguf_builder *b, const char *key, unsigned depth, uint64_t n_leaf)
{
    gb_bytes *val = gb_kv_begin(b, key, GB_ARRAY, 0);
    if (!val || depth == 0)
        return gb_oom(b);
    for (unsigned d = 1; d < depth; d++)
        gb_put_arr_head(val, GB_ARRAY, 1);
    gb_put_arr_head(val, GB_UINT32, n_leaf);
    for (uint64_t i = 0; i < n_leaf; i++)
        gb_put_u32(val, (uint32_t)i);
    return val->failed ? gb_oom(b) : 0;
}

/* Shared body of the tensor adders. */
static int gb_tensor_push(gguf_builder *b, const char *name, uint32_t n_dims,
                          const uint64_t *ne, uint32_t type, const void *data,
                          uint64_t nbytes, int copy)
{
    if (nbytes == UINT64_MAX)
        nbytes = gb_tensor_nbytes(type, n_dims, ne);
    char *nm = strdup(name);
    uint8_t *owned = NULL;
    if (copy && data && nbytes) {
        if (nbytes > SIZE_MAX || !(owned = malloc((size_t)nbytes))) {
            free(nm);
            return gb_oom(b);
        }
        memcpy(owned, data, (size_t)nbytes);
    }
    if (!nm || gb_grow((void **)&b->tensors, &b->cap_tensors, b->n_tensors, sizeof *b->tensors)) {
        free(nm);
        free(owned);
        return gb_oom(b);
    }
    gb_tensor *t = &b->tensors[b->n_tensors++];
    memset(t, 0, sizeof *t);
    t->name = nm;
    t->n_dims = n_dims;
    for (int d = 0; d < 4; d++)
        t->ne[d] = (uint32_t)d < n_dims && n_dims <= 4 ? ne[d] : 1;
    t->type = type;
    t->owned = owned;
    t->data = copy ? owned : data;
    t->nbytes = nbytes;
    return 0;
}

/* Add a tensor whose data the builder copies. */
int gb_tensor_add(gguf_builder *b, const char *name, uint32_t n_dims, const uint64_t *ne,
                  uint32_t type, const void *data, uint64_t nbytes)
{
    return gb_tensor_push(b, name, n_dims, ne, type, data, nbytes, 1);
}

/* Add a tensor whose data stays the caller's. */
int gb_tensor_add_ref(gguf_builder *b, const char *name, uint32_t n_dims,
                      const uint64_t *ne, uint32_t type, const void *data, uint64_t nbytes)
{
    return gb_tensor_push(b, name, n_dims, ne, type, data, nbytes, 0);
}

/* Pin a tensor's stored offset; -1 if there is no such tensor. */
int gb_tensor_set_offset(gguf_builder *b, const char *name, uint64_t offset)
{
    long i = gb_tensor_index(b, name);
    if (i < 0)
        return -1;
    b->tensors[i].fixed_offset = 1;
    b->tensors[i].offset = offset;
    return 0;
}

/* Drop a tensor, keeping the order of the others. */
void gb_tensor_remove(gguf_builder *b, const char *name)
{
    long i = gb_tensor_index(b, name);
    if (i < 0)
        return;
    free(b->tensors[i].name);
    free(b->tensors[i].owned);
    memmove(&b->tensors[i], &b->tensors[i + 1],
            (b->n_tensors - (size_t)i - 1) * sizeof *b->tensors);
    b->n_tensors--;
}

/* Round v up to a multiple of a (a == 0 counts as 1). */
static uint64_t gb_align_up(uint64_t v, uint64_t a)
{
    if (a <= 1)
        return v;
    return v + (a - v % a) % a;
}

/* Header, KVs, infos, padding, data: see gguf_builder.h. */
int gb_serialise(const gguf_builder *b, gb_bytes *out)
{
    gb_bytes_free(out);
    if (b->failed)
        return -1;
    uint64_t *offs = calloc(b->n_tensors ? b->n_tensors : 1, sizeof *offs);
    if (!offs)
        return -1;
    uint64_t running = 0, data_len = 0;
    for (size_t i = 0; i < b->n_tensors; i++) {
        const gb_tensor *t = &b->tensors[i];
        if (t->fixed_offset) {
            offs[i] = t->offset;
        } else {
            offs[i] = gb_align_up(running, b->alignment);
            running = offs[i] + t->nbytes;
        }
        if (offs[i] <= GB_MAX_WRITE_END && t->nbytes <= GB_MAX_WRITE_END - offs[i] &&
            offs[i] + t->nbytes > data_len)
            data_len = offs[i] + t->nbytes;
    }
    gb_put_u32(out, b->magic);
    gb_put_u32(out, b->version);
    gb_put_u64(out, b->force_n_tensors ? b->n_tensors_value : b->n_tensors);
    gb_put_u64(out, b->force_n_kv ? b->n_kv_value : b->n_kvs);
    for (size_t i = 0; i < b->n_kvs; i++) {
        gb_put_str(out, b->kvs[i].key);
        gb_put_u32(out, b->kvs[i].type);
        gb_put(out, b->kvs[i].val.data, b->kvs[i].val.len);
    }
    for (size_t i = 0; i < b->n_tensors; i++) {
        const gb_tensor *t = &b->tensors[i];
        gb_put_str(out, t->name);
        gb_put_u32(out, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims && d < 4; d++)
            gb_put_u64(out, t->ne[d]);
        gb_put_u32(out, t->type);
        gb_put_u64(out, offs[i]);
    }
    if (b->n_tensors) {
        size_t data_start = (size_t)gb_align_up(out->len, b->alignment);
        gb_put(out, NULL, data_start - out->len);
        gb_put(out, NULL, (size_t)gb_align_up(data_len, b->alignment));
        for (size_t i = 0; !out->failed && i < b->n_tensors; i++) {
            const gb_tensor *t = &b->tensors[i];
            if (t->data && offs[i] <= GB_MAX_WRITE_END &&
                t->nbytes <= GB_MAX_WRITE_END - offs[i])
                memcpy(out->data + data_start + offs[i], t->data, (size_t)t->nbytes);
        }
    }
    free(offs);
    return out->failed ? -1 : 0;
}

/* ================================================================ recipes */

/* The small MoE configuration the seeds and tests start from. */
gb_llama_cfg gb_llama_cfg_tiny(void)
{
    gb_llama_cfg c = {
        .n_layer = 1, .n_expert = 2, .n_expert_used = 1, .n_embd = 32, .n_ff = 32,
        .n_head = 4, .n_head_kv = 2, .n_vocab = 32, .weight_type = GB_Q8_0,
        .with_vocab = 1, .tied_output = 0, .seed = 1,
    };
    return c;
}

/* xorshift32: deterministic weights without libc's rand(). */
static uint32_t gb_next(uint32_t *s)
{
    uint32_t x = *s ? *s : 0x9e3779b9u;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

/* Fill nbytes of tensor data of the given type with valid small weights
 * (F32 in [-0.5, 0.5), quantized blocks with scale 0.01); norms get 1.0. */
static void gb_fill_weights(uint8_t *p, uint64_t nbytes, uint32_t type, int norm, uint32_t *seed)
{
    if (type == GB_F32) {
        for (uint64_t i = 0; i + 4 <= nbytes; i += 4) {
            float f = norm ? 1.0f : (float)(gb_next(seed) % 1000) / 1000.0f - 0.5f;
            memcpy(p + i, &f, 4);
        }
        return;
    }
    uint64_t bs = type == GB_Q8_0 ? 34 : 18;
    for (uint64_t i = 0; i + bs <= nbytes; i += bs) {
        p[i] = 0x1f; /* f16 0x211f ~= 0.01 */
        p[i + 1] = 0x21;
        for (uint64_t j = 2; j < bs; j++)
            p[i + j] = type == GB_Q8_0 ? (uint8_t)(int8_t)((int)(gb_next(seed) % 255) - 127)
                                       : (uint8_t)gb_next(seed);
    }
}

/* Add one generated tensor of type `type` and shape ne[0..n_dims). */
static int gb_add_weight(gguf_builder *b, const char *name, uint32_t n_dims, uint64_t ne0,
                         uint64_t ne1, uint64_t ne2, uint32_t type, int norm, uint32_t *seed)
{
    const uint64_t ne[3] = {ne0, ne1, ne2};
    uint64_t nbytes = gb_tensor_nbytes(type, n_dims, ne);
    if (!nbytes || nbytes > SIZE_MAX)
        return gb_oom(b);
    uint8_t *p = malloc((size_t)nbytes);
    if (!p)
        return gb_oom(b);
    gb_fill_weights(p, nbytes, type, norm, seed);
    int r = gb_tensor_add(b, name, n_dims, ne, type, p, nbytes);
    free(p);
    return r;
}

/* tokenizer.ggml.* of a SentencePiece-style vocabulary of n tokens. */
int gb_add_vocab(gguf_builder *b, uint32_t n)
{
    char **toks = calloc(n ? n : 1, sizeof *toks);
    float *scores = calloc(n ? n : 1, sizeof *scores);
    int32_t *types = calloc(n ? n : 1, sizeof *types);
    int r = -1;
    if (!toks || !scores || !types)
        goto out;
    for (uint32_t i = 0; i < n; i++) {
        static const char *const special[3] = {"<unk>", "<s>", "</s>"};
        char tmp[32];
        if (i < 3)
            snprintf(tmp, sizeof tmp, "%s", special[i]);
        else
            snprintf(tmp, sizeof tmp, "t%u", i);
        if (!(toks[i] = strdup(tmp)))
            goto out;
        scores[i] = -(float)i;
        types[i] = i == 0 ? 2 : i < 3 ? 3 : 1;
    }
    r = gb_kv_str(b, "tokenizer.ggml.model", "llama") |
        gb_kv_arr(b, "tokenizer.ggml.tokens", GB_STRING, n, toks) |
        gb_kv_arr(b, "tokenizer.ggml.scores", GB_FLOAT32, n, scores) |
        gb_kv_arr(b, "tokenizer.ggml.token_type", GB_INT32, n, types) |
        gb_kv_u32(b, "tokenizer.ggml.bos_token_id", 1) |
        gb_kv_u32(b, "tokenizer.ggml.eos_token_id", 2) |
        gb_kv_u32(b, "tokenizer.ggml.unknown_token_id", 0) |
        gb_kv_bool(b, "tokenizer.ggml.add_bos_token", 1);
out:
    if (toks)
        for (uint32_t i = 0; i < n; i++)
            free(toks[i]);
    free(toks);
    free(scores);
    free(types);
    return r ? gb_oom(b) : 0;
}

/* KVs and tensors of a llama / Mixtral model, in llama.cpp's order. */
int gb_add_llama(gguf_builder *b, const gb_llama_cfg *c)
{
    uint32_t seed = c->seed, hd = c->n_embd / (c->n_head ? c->n_head : 1);
    uint64_t q = (uint64_t)c->n_head * hd, kv = (uint64_t)c->n_head_kv * hd;
    uint32_t wt = c->weight_type;
    int r = gb_kv_str(b, "general.architecture", "llama") |
            gb_kv_str(b, "general.name", "tiny") |
            gb_kv_u32(b, "llama.block_count", c->n_layer) |
            gb_kv_u32(b, "llama.context_length", 128) |
            gb_kv_u32(b, "llama.embedding_length", c->n_embd) |
            gb_kv_u32(b, "llama.feed_forward_length", c->n_ff) |
            gb_kv_u32(b, "llama.attention.head_count", c->n_head) |
            gb_kv_u32(b, "llama.attention.head_count_kv", c->n_head_kv) |
            gb_kv_f32(b, "llama.rope.freq_base", 10000.0f) |
            gb_kv_f32(b, "llama.attention.layer_norm_rms_epsilon", 1e-5f) |
            gb_kv_u32(b, "llama.rope.dimension_count", hd) |
            gb_kv_u32(b, "llama.vocab_size", c->n_vocab);
    if (c->n_expert)
        r |= gb_kv_u32(b, "llama.expert_count", c->n_expert) |
             gb_kv_u32(b, "llama.expert_used_count", c->n_expert_used);
    if (c->with_vocab)
        r |= gb_add_vocab(b, c->n_vocab);
    r |= gb_add_weight(b, "token_embd.weight", 2, c->n_embd, c->n_vocab, 1, wt, 0, &seed);
    for (uint32_t il = 0; il < c->n_layer; il++) {
        char nm[96];
#define GB_NAME(s) (snprintf(nm, sizeof nm, "blk.%u." s, il), nm)
        r |= gb_add_weight(b, GB_NAME("attn_norm.weight"), 1, c->n_embd, 1, 1, GB_F32, 1, &seed);
        r |= gb_add_weight(b, GB_NAME("attn_q.weight"), 2, c->n_embd, q, 1, wt, 0, &seed);
        r |= gb_add_weight(b, GB_NAME("attn_k.weight"), 2, c->n_embd, kv, 1, wt, 0, &seed);
        r |= gb_add_weight(b, GB_NAME("attn_v.weight"), 2, c->n_embd, kv, 1, wt, 0, &seed);
        r |= gb_add_weight(b, GB_NAME("attn_output.weight"), 2, q, c->n_embd, 1, wt, 0, &seed);
        r |= gb_add_weight(b, GB_NAME("ffn_norm.weight"), 1, c->n_embd, 1, 1, GB_F32, 1, &seed);
        if (c->n_expert) {
            uint32_t e = c->n_expert;
            r |= gb_add_weight(b, GB_NAME("ffn_gate_inp.weight"), 2, c->n_embd, e, 1, GB_F32, 0, &seed);
            r |= gb_add_weight(b, GB_NAME("ffn_gate_exps.weight"), 3, c->n_embd, c->n_ff, e, wt, 0, &seed);
            r |= gb_add_weight(b, GB_NAME("ffn_down_exps.weight"), 3, c->n_ff, c->n_embd, e, wt, 0, &seed);
            r |= gb_add_weight(b, GB_NAME("ffn_up_exps.weight"), 3, c->n_embd, c->n_ff, e, wt, 0, &seed);
        } else {
            r |= gb_add_weight(b, GB_NAME("ffn_gate.weight"), 2, c->n_embd, c->n_ff, 1, wt, 0, &seed);
            r |= gb_add_weight(b, GB_NAME("ffn_down.weight"), 2, c->n_ff, c->n_embd, 1, wt, 0, &seed);
            r |= gb_add_weight(b, GB_NAME("ffn_up.weight"), 2, c->n_embd, c->n_ff, 1, wt, 0, &seed);
        }
#undef GB_NAME
    }
    r |= gb_add_weight(b, "output_norm.weight", 1, c->n_embd, 1, 1, GB_F32, 1, &seed);
    if (!c->tied_output)
        r |= gb_add_weight(b, "output.weight", 2, c->n_embd, c->n_vocab, 1, wt, 0, &seed);
    return r ? gb_oom(b) : 0;
}

/* One KV of every value type and a flat array of every element type. */
int gb_add_all_types(gguf_builder *b)
{
    static const uint8_t u8s[3] = {0, 1, 255};
    static const int8_t i8s[3] = {-128, 0, 127};
    static const uint16_t u16s[3] = {0, 1, 65535};
    static const int16_t i16s[3] = {-32768, 0, 32767};
    static const uint32_t u32s[3] = {0, 1, 4294967295u};
    static const int32_t i32s[3] = {INT32_MIN, 0, INT32_MAX};
    static const float f32s[3] = {-1.5f, 0.0f, 3.25f};
    static const uint8_t bools[3] = {0, 1, 1};
    static const uint64_t u64s[3] = {0, 1, UINT64_MAX};
    static const int64_t i64s[3] = {INT64_MIN, 0, INT64_MAX};
    static const double f64s[3] = {-2.5, 0.0, 1e300};
    static const char *const strs[3] = {"a", "", "ccc"};
    gb_kv_u8(b, "t.u8", 200);
    gb_kv_i8(b, "t.i8", -100);
    gb_kv_u16(b, "t.u16", 60000);
    gb_kv_i16(b, "t.i16", -30000);
    gb_kv_u32(b, "t.u32", 4000000000u);
    gb_kv_i32(b, "t.i32", -2000000000);
    gb_kv_f32(b, "t.f32", 1.5f);
    gb_kv_bool(b, "t.bool", 1);
    gb_kv_str(b, "t.str", "h\xc3\xa9llo");
    gb_kv_str(b, "t.empty_str", "");
    gb_kv_u64(b, "t.u64", UINT64_MAX - 1);
    gb_kv_i64(b, "t.i64", INT64_MIN);
    gb_kv_f64(b, "t.f64", -2.25);
    gb_kv_arr(b, "a.u8", GB_UINT8, 3, u8s);
    gb_kv_arr(b, "a.i8", GB_INT8, 3, i8s);
    gb_kv_arr(b, "a.u16", GB_UINT16, 3, u16s);
    gb_kv_arr(b, "a.i16", GB_INT16, 3, i16s);
    gb_kv_arr(b, "a.u32", GB_UINT32, 3, u32s);
    gb_kv_arr(b, "a.i32", GB_INT32, 3, i32s);
    gb_kv_arr(b, "a.f32", GB_FLOAT32, 3, f32s);
    gb_kv_arr(b, "a.bool", GB_BOOL, 3, bools);
    gb_kv_arr(b, "a.u64", GB_UINT64, 3, u64s);
    gb_kv_arr(b, "a.i64", GB_INT64, 3, i64s);
    gb_kv_arr(b, "a.f64", GB_FLOAT64, 3, f64s);
    gb_kv_arr(b, "a.str", GB_STRING, 3, strs);
    gb_kv_arr(b, "a.empty", GB_UINT32, 0, NULL);
    gb_kv_arr(b, "a.empty_str", GB_STRING, 0, NULL);
    return b->failed ? -1 : 0;
}

/* ================================================================ map */

typedef struct {
    const uint8_t *buf;
    uint64_t len, pos;
    gb_map *m;
    char *why;
    size_t why_len;
} gb_walker;

/* Record a reason and fail. */
static int gb_walk_fail(gb_walker *w, const char *what)
{
    if (w->why && w->why_len)
        snprintf(w->why, w->why_len, "%s at offset %llu", what, (unsigned long long)w->pos);
    return -1;
}

/* Append a field [off, end) named label to the map. */
static int gb_add_field(gb_walker *w, uint64_t off, uint64_t end, const char *label)
{
    gb_map *m = w->m;
    if (gb_grow((void **)&m->fields, &m->cap_fields, m->n_fields, sizeof *m->fields))
        return gb_walk_fail(w, "out of memory");
    gb_field *f = &m->fields[m->n_fields++];
    f->off = off;
    f->end = end;
    snprintf(f->label, sizeof f->label, "%s", label);
    return 0;
}

/* Consume n bytes as field `label`; -1 if they are not there. */
static int gb_take(gb_walker *w, uint64_t n, const char *label)
{
    if (n > w->len - w->pos)
        return gb_walk_fail(w, "truncated");
    if (label && gb_add_field(w, w->pos, w->pos + n, label))
        return -1;
    w->pos += n;
    return 0;
}

/* A string as two fields (length, bytes); its bytes and length returned. */
static int gb_take_str(gb_walker *w, const char *label, const uint8_t **s, uint64_t *n)
{
    if (gb_take(w, 8, label))
        return -1;
    *n = gb_rd_u64(w->buf + w->pos - 8);
    *s = w->buf + w->pos;
    return gb_take(w, *n, label);
}

/* Skip one value of type t without recording fields. */
static int gb_skip_value(gb_walker *w, uint32_t t, int depth)
{
    if (depth > GB_WALK_MAX_DEPTH)
        return gb_walk_fail(w, "arrays nested too deep");
    if (gb_vtype_size(t))
        return gb_take(w, gb_vtype_size(t), NULL);
    if (t == GB_STRING) {
        const uint8_t *s;
        uint64_t n;
        return gb_take_str(w, NULL, &s, &n);
    }
    if (t != GB_ARRAY)
        return gb_walk_fail(w, "unknown value type");
    if (gb_take(w, 12, NULL))
        return -1;
    uint32_t et = gb_rd_u32(w->buf + w->pos - 12);
    uint64_t n = gb_rd_u64(w->buf + w->pos - 8);
    if (gb_vtype_size(et)) {
        if (n > (w->len - w->pos) / gb_vtype_size(et))
            return gb_walk_fail(w, "array runs past the end");
        return gb_take(w, n * gb_vtype_size(et), NULL);
    }
    for (uint64_t i = 0; i < n; i++)
        if (gb_skip_value(w, et, depth + 1))
            return -1;
    return 0;
}

/* A KV value as fields: arrays get their head, first and last element
 * split out so truncations land inside them. */
static int gb_walk_value(gb_walker *w, uint32_t t, const char *label)
{
    uint64_t start = w->pos;
    if (t != GB_ARRAY) {
        if (gb_skip_value(w, t, 0))
            return -1;
        return gb_add_field(w, start, w->pos, label);
    }
    if (gb_take(w, 12, label))
        return -1;
    uint32_t et = gb_rd_u32(w->buf + start);
    uint64_t n = gb_rd_u64(w->buf + start + 4);
    uint64_t first_end = w->pos, last_start = w->pos;
    for (uint64_t i = 0; i < n; i++) {
        last_start = w->pos;
        if (gb_skip_value(w, et, 1))
            return -1;
        if (i == 0)
            first_end = w->pos;
    }
    if (n == 0)
        return 0;
    if (n == 1)
        return gb_add_field(w, start + 12, w->pos, label);
    if (gb_add_field(w, start + 12, first_end, label))
        return -1;
    if (last_start > first_end && gb_add_field(w, first_end, last_start, label))
        return -1;
    return gb_add_field(w, last_start, w->pos, label);
}

/* Copy a string out of the file as a C string. */
static char *gb_cstr(const uint8_t *s, uint64_t n)
{
    if (n > 1u << 20)
        return NULL;
    char *p = malloc((size_t)n + 1);
    if (p) {
        memcpy(p, s, (size_t)n);
        p[n] = '\0';
    }
    return p;
}

/* Walk the KV section. */
static int gb_walk_kvs(gb_walker *w)
{
    gb_map *m = w->m;
    char label[192];
    for (uint64_t i = 0; i < m->n_kv; i++) {
        gb_kv_loc *kv = &m->kvs[i];
        const uint8_t *s;
        uint64_t n;
        snprintf(label, sizeof label, "kv[%llu].key", (unsigned long long)i);
        kv->key_len_off = w->pos;
        kv->key_off = w->pos + 8;
        if (gb_take_str(w, label, &s, &n))
            return -1;
        if (!(kv->key = gb_cstr(s, n)))
            return gb_walk_fail(w, "bad key");
        snprintf(label, sizeof label, "kv '%.60s' type", kv->key);
        kv->type_off = w->pos;
        if (gb_take(w, 4, label))
            return -1;
        kv->type = gb_rd_u32(w->buf + kv->type_off);
        snprintf(label, sizeof label, "kv '%.60s' value", kv->key);
        kv->value_off = w->pos;
        if (kv->type == GB_ARRAY && w->len - w->pos >= 12) {
            kv->elem_type = gb_rd_u32(w->buf + w->pos);
            kv->arr_n = gb_rd_u64(w->buf + w->pos + 4);
        }
        if (gb_walk_value(w, kv->type, label))
            return -1;
        kv->value_end = w->pos;
        if (strcmp(kv->key, "general.alignment") == 0 && kv->type == GB_UINT32)
            m->alignment = gb_rd_u32(w->buf + kv->value_off);
    }
    return 0;
}

/* Walk the tensor infos. */
static int gb_walk_tensors(gb_walker *w)
{
    gb_map *m = w->m;
    char label[192];
    for (uint64_t i = 0; i < m->n_tensors; i++) {
        gb_tensor_loc *t = &m->tensors[i];
        const uint8_t *s;
        uint64_t n;
        snprintf(label, sizeof label, "tensor[%llu].name", (unsigned long long)i);
        t->name_len_off = w->pos;
        t->name_off = w->pos + 8;
        if (gb_take_str(w, label, &s, &n))
            return -1;
        if (!(t->name = gb_cstr(s, n)))
            return gb_walk_fail(w, "bad tensor name");
        snprintf(label, sizeof label, "tensor '%.100s' n_dims", t->name);
        t->n_dims_off = w->pos;
        if (gb_take(w, 4, label))
            return -1;
        t->n_dims = gb_rd_u32(w->buf + t->n_dims_off);
        if (t->n_dims < 1 || t->n_dims > 4)
            return gb_walk_fail(w, "bad n_dims");
        for (uint32_t d = 0; d < 4; d++)
            t->ne[d] = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) {
            snprintf(label, sizeof label, "tensor '%.100s' ne[%u]", t->name, d);
            t->ne_off[d] = w->pos;
            if (gb_take(w, 8, label))
                return -1;
            t->ne[d] = gb_rd_u64(w->buf + t->ne_off[d]);
        }
        snprintf(label, sizeof label, "tensor '%.100s' type", t->name);
        t->type_off = w->pos;
        if (gb_take(w, 4, label))
            return -1;
        t->type = gb_rd_u32(w->buf + t->type_off);
        snprintf(label, sizeof label, "tensor '%.100s' offset", t->name);
        t->offset_off = w->pos;
        if (gb_take(w, 8, label))
            return -1;
        t->rel_offset = gb_rd_u64(w->buf + t->offset_off);
        t->info_end = w->pos;
        if (!(t->nbytes = gb_tensor_nbytes(t->type, t->n_dims, t->ne)))
            return gb_walk_fail(w, "tensor size unknown");
    }
    return 0;
}

/* Walk header, KVs and tensor infos, recording every field. */
int gb_map_build(const uint8_t *buf, size_t len, gb_map *m, char *why, size_t why_len)
{
    gb_walker w = {buf, len, 0, m, why, why_len};
    memset(m, 0, sizeof *m);
    m->file_size = len;
    m->alignment = 32;
    if (gb_take(&w, 4, "header.magic") || gb_rd_u32(buf) != GB_MAGIC)
        return gb_walk_fail(&w, "bad magic");
    m->version_off = 4;
    m->n_tensors_off = 8;
    m->n_kv_off = 16;
    if (gb_take(&w, 4, "header.version") || gb_take(&w, 8, "header.n_tensors") ||
        gb_take(&w, 8, "header.n_kv"))
        return -1;
    m->version = gb_rd_u32(buf + 4);
    m->n_tensors = gb_rd_u64(buf + 8);
    m->n_kv = gb_rd_u64(buf + 16);
    if (m->n_kv > len / 8 || m->n_tensors > len / 8)
        return gb_walk_fail(&w, "counts do not fit");
    m->kvs = calloc(m->n_kv ? m->n_kv : 1, sizeof *m->kvs);
    m->tensors = calloc(m->n_tensors ? m->n_tensors : 1, sizeof *m->tensors);
    if (!m->kvs || !m->tensors)
        return gb_walk_fail(&w, "out of memory");
    if (gb_walk_kvs(&w))
        return -1;
    if (m->alignment == 0)
        return gb_walk_fail(&w, "alignment 0");
    if (gb_walk_tensors(&w))
        return -1;
    m->infos_end = w.pos;
    m->data_start = gb_align_up(w.pos, m->alignment);
    m->data_end = m->data_start;
    for (uint64_t i = 0; i < m->n_tensors; i++) {
        uint64_t end = m->tensors[i].rel_offset + m->tensors[i].nbytes;
        if (m->data_start > len || end < m->tensors[i].rel_offset ||
            end > len - m->data_start)
            return gb_walk_fail(&w, "tensor data outside the file");
        if (m->data_start + end > m->data_end)
            m->data_end = m->data_start + end;
    }
    if (m->n_tensors) {
        if (m->data_start > m->infos_end &&
            gb_add_field(&w, m->infos_end, m->data_start, "data section"))
            return -1;
        if (len > m->data_start && gb_add_field(&w, m->data_start, len, "' offset"))
            return -1;
    }
    return 0;
}

/* Release what gb_map_build allocated. */
void gb_map_free(gb_map *m)
{
    if (m->kvs)
        for (uint64_t i = 0; i < m->n_kv; i++)
            free(m->kvs[i].key);
    if (m->tensors)
        for (uint64_t i = 0; i < m->n_tensors; i++)
            free(m->tensors[i].name);
    free(m->kvs);
    free(m->tensors);
    free(m->fields);
    memset(m, 0, sizeof *m);
}

/* Map entry of a key, or NULL. */
const gb_kv_loc *gb_map_kv(const gb_map *m, const char *key)
{
    for (uint64_t i = 0; i < m->n_kv; i++)
        if (m->kvs[i].key && strcmp(m->kvs[i].key, key) == 0)
            return &m->kvs[i];
    return NULL;
}

/* Map entry of a tensor, or NULL. */
const gb_tensor_loc *gb_map_tensor(const gb_map *m, const char *name)
{
    for (uint64_t i = 0; i < m->n_tensors; i++)
        if (m->tensors[i].name && strcmp(m->tensors[i].name, name) == 0)
            return &m->tensors[i];
    return NULL;
}

/* qsort comparator for uint64_t. */
static int gb_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Field starts and ends, sorted, without repeats. */
size_t gb_map_boundaries(const gb_map *m, uint64_t **out)
{
    uint64_t *v = malloc((2 * m->n_fields + 1) * sizeof *v);
    *out = NULL;
    if (!v)
        return 0;
    size_t n = 0;
    for (size_t i = 0; i < m->n_fields; i++) {
        v[n++] = m->fields[i].off;
        v[n++] = m->fields[i].end;
    }
    qsort(v, n, sizeof *v, gb_cmp_u64);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (k == 0 || v[k - 1] != v[i])
            v[k++] = v[i];
    *out = v;
    return k;
}

/* Label of the field holding byte off; NULL past the fields. */
const char *gb_map_label_at(const gb_map *m, uint64_t off)
{
    for (size_t i = 0; i < m->n_fields; i++)
        if (off >= m->fields[i].off && off < m->fields[i].end)
            return m->fields[i].label;
    return NULL;
}

/* KVs copied, tensors borrowed: a builder that re-creates the image. */
int gb_import(gguf_builder *b, const uint8_t *buf, const gb_map *m)
{
    b->version = m->version;
    b->alignment = m->alignment;
    for (uint64_t i = 0; i < m->n_kv; i++) {
        const gb_kv_loc *kv = &m->kvs[i];
        gb_bytes *val = gb_kv_begin(b, kv->key, kv->type, 1);
        if (!val || gb_put(val, buf + kv->value_off, (size_t)(kv->value_end - kv->value_off)))
            return gb_oom(b);
    }
    for (uint64_t i = 0; i < m->n_tensors; i++) {
        const gb_tensor_loc *t = &m->tensors[i];
        if (gb_tensor_add_ref(b, t->name, t->n_dims, t->ne, t->type,
                              buf + m->data_start + t->rel_offset, t->nbytes))
            return -1;
    }
    return 0;
}
