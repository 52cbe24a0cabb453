/* gguf.c - GGUF v2/v3 reader.
 *
 * Layout (all little-endian):
 *   "GGUF" u32 version u64 n_tensors u64 n_kv
 *   n_kv x { string key, u32 type, value }
 *   n_tensors x { string name, u32 n_dims, u64 ne[n_dims], u32 type, u64 offset }
 *   padding to general.alignment, then the data section.
 *   string = u64 length + bytes; array = u32 elem type + u64 count + elements.
 *
 * Every read goes through a cursor that checks the bytes exist before
 * touching them; every failure names the field and its offset (the
 * sqlite "corrupt at this check" habit).
 */
#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../quant/types.h"

typedef struct {
    const uint8_t *base;
    uint64_t size;
    uint64_t pos;
    const char *name; /* file name for messages */
    mr_error *err;
} cursor;

static const char *const vtype_names[MR_GGUF_VTYPE_COUNT] = {
    "uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
    "bool", "string", "array", "uint64", "int64", "float64",
};

static const size_t vtype_sizes[MR_GGUF_VTYPE_COUNT] = {
    1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8,
};

const char *mr_gguf_vtype_name(uint32_t t)
{
    return t < MR_GGUF_VTYPE_COUNT ? vtype_names[t] : "unknown";
}

size_t mr_gguf_vtype_size(uint32_t t)
{
    return t < MR_GGUF_VTYPE_COUNT ? vtype_sizes[t] : 0;
}

static uint64_t rd_le(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* Fail unless n more bytes exist at the cursor. */
static mr_status need(cursor *c, uint64_t n, const char *field)
{
    if (n > c->size || c->pos > c->size - n)
        return mr_fail(c->err, MR_EFORMAT, c->name, field, c->pos,
                       "needs %llu bytes but the file ends at %llu",
                       (unsigned long long)n, (unsigned long long)c->size);
    return MR_OK;
}

static mr_status rd_u32(cursor *c, uint32_t *out, const char *field)
{
    mr_status s = need(c, 4, field);
    if (s)
        return s;
    *out = (uint32_t)rd_le(c->base + c->pos, 4);
    c->pos += 4;
    return MR_OK;
}

static mr_status rd_u64(cursor *c, uint64_t *out, const char *field)
{
    mr_status s = need(c, 8, field);
    if (s)
        return s;
    *out = rd_le(c->base + c->pos, 8);
    c->pos += 8;
    return MR_OK;
}

static mr_status rd_str(cursor *c, mr_str *out, const char *field)
{
    uint64_t at = c->pos, len;
    mr_status s = rd_u64(c, &len, field);
    if (s)
        return s;
    if (len > c->size - c->pos)
        return mr_fail(c->err, MR_EFORMAT, c->name, field, at,
                       "string length %llu runs past the end of the file (%llu bytes left)",
                       (unsigned long long)len, (unsigned long long)(c->size - c->pos));
    out->ptr = (const char *)c->base + c->pos;
    out->len = len;
    c->pos += len;
    return MR_OK;
}

static char *str_dup(mr_str s)
{
    char *p = malloc(s.len + 1);
    if (p) {
        memcpy(p, s.ptr, s.len);
        p[s.len] = '\0';
    }
    return p;
}

static void value_free(mr_gguf_value *v)
{
    if (v->type != MR_GGUF_ARRAY)
        return;
    free(v->v.arr.strs);
    if (v->v.arr.items) {
        for (uint64_t i = 0; i < v->v.arr.n; i++)
            value_free(&v->v.arr.items[i]);
        free(v->v.arr.items);
    }
}

static mr_status rd_value(cursor *c, uint32_t type, mr_gguf_value *v,
                          const char *field, int depth);

/* Scalar (fixed-size) value of type t at the cursor. */
static mr_status rd_scalar(cursor *c, uint32_t t, mr_gguf_value *v, const char *field)
{
    size_t n = vtype_sizes[t];
    mr_status s = need(c, n, field);
    if (s)
        return s;
    uint64_t raw = rd_le(c->base + c->pos, (unsigned)n);
    switch (t) {
    case MR_GGUF_UINT8: case MR_GGUF_UINT16: case MR_GGUF_UINT32: case MR_GGUF_UINT64:
        v->v.u64 = raw;
        break;
    case MR_GGUF_INT8: v->v.i64 = (int8_t)raw; break;
    case MR_GGUF_INT16: v->v.i64 = (int16_t)raw; break;
    case MR_GGUF_INT32: v->v.i64 = (int32_t)raw; break;
    case MR_GGUF_INT64: v->v.i64 = (int64_t)raw; break;
    case MR_GGUF_FLOAT32: {
        float f;
        uint32_t r32 = (uint32_t)raw;
        memcpy(&f, &r32, 4);
        v->v.f64 = f;
        break;
    }
    case MR_GGUF_FLOAT64: memcpy(&v->v.f64, &raw, 8); break;
    case MR_GGUF_BOOL:
        if (raw > 1)
            return mr_fail(c->err, MR_EFORMAT, c->name, field, c->pos,
                           "bool value %llu is neither 0 nor 1", (unsigned long long)raw);
        v->v.b = (int)raw;
        break;
    }
    c->pos += n;
    return MR_OK;
}

static mr_status rd_array(cursor *c, mr_gguf_value *v, const char *field, int depth)
{
    uint64_t at = c->pos;
    uint32_t et;
    uint64_t n;
    mr_status s;
    if (depth >= MR_GGUF_MAX_DEPTH)
        return mr_fail(c->err, MR_EFORMAT, c->name, field, at,
                       "arrays nested deeper than %d levels", MR_GGUF_MAX_DEPTH);
    if ((s = rd_u32(c, &et, field)) || (s = rd_u64(c, &n, field)))
        return s;
    if (et >= MR_GGUF_VTYPE_COUNT)
        return mr_fail(c->err, MR_EFORMAT, c->name, field, at,
                       "unknown array element type %u", et);
    /* Each element takes at least min_size bytes: bound n by the file. */
    uint64_t min_size = vtype_sizes[et] ? vtype_sizes[et] : (et == MR_GGUF_STRING ? 8 : 12);
    if (n > (c->size - c->pos) / min_size)
        return mr_fail(c->err, MR_EFORMAT, c->name, field, at + 4,
                       "array count %llu of %s does not fit in the %llu bytes left",
                       (unsigned long long)n, vtype_names[et],
                       (unsigned long long)(c->size - c->pos));
    v->v.arr.elem_type = et;
    v->v.arr.n = n;
    if (vtype_sizes[et]) {
        v->v.arr.data = c->base + c->pos;
        if (et == MR_GGUF_BOOL) {
            for (uint64_t i = 0; i < n; i++)
                if (c->base[c->pos + i] > 1)
                    return mr_fail(c->err, MR_EFORMAT, c->name, field, c->pos + i,
                                   "bool element %llu is neither 0 nor 1",
                                   (unsigned long long)i);
        }
        c->pos += n * vtype_sizes[et];
        return MR_OK;
    }
    if (et == MR_GGUF_STRING) {
        v->v.arr.strs = calloc(n ? n : 1, sizeof(mr_str));
        if (!v->v.arr.strs)
            return mr_fail(c->err, MR_ENOMEM, c->name, field, at, "no memory for %llu strings",
                           (unsigned long long)n);
        for (uint64_t i = 0; i < n; i++)
            if ((s = rd_str(c, &v->v.arr.strs[i], field)))
                return s;
        return MR_OK;
    }
    v->v.arr.items = calloc(n ? n : 1, sizeof(mr_gguf_value));
    if (!v->v.arr.items)
        return mr_fail(c->err, MR_ENOMEM, c->name, field, at, "no memory for %llu arrays",
                       (unsigned long long)n);
    /* each element is itself an array (element type, count, elements):
     * the outer array's element type says so, no tag precedes it */
    for (uint64_t i = 0; i < n; i++) {
        v->v.arr.items[i].type = MR_GGUF_ARRAY;
        v->v.arr.items[i].offset = c->pos;
        if ((s = rd_array(c, &v->v.arr.items[i], field, depth + 1)))
            return s;
    }
    return MR_OK;
}

static mr_status rd_value(cursor *c, uint32_t type, mr_gguf_value *v,
                          const char *field, int depth)
{
    v->type = type;
    v->offset = c->pos;
    if (type == MR_GGUF_STRING)
        return rd_str(c, &v->v.str, field);
    if (type == MR_GGUF_ARRAY)
        return rd_array(c, v, field, depth);
    return rd_scalar(c, type, v, field);
}

void mr_gguf_close(mr_gguf *g)
{
    if (!g)
        return;
    if (g->kv) {
        for (uint64_t i = 0; i < g->n_kv; i++) {
            free(g->kv[i].key);
            value_free(&g->kv[i].val);
        }
        free(g->kv);
    }
    if (g->tensors) {
        for (uint64_t i = 0; i < g->n_tensors; i++)
            free(g->tensors[i].name);
        free(g->tensors);
    }
    if (g->mapped)
        munmap((void *)g->base, g->file_size);
    if (g->fd >= 0)
        close(g->fd);
    free(g->path);
    free(g);
}

static mr_status parse_kvs(mr_gguf *g, cursor *c)
{
    char field[96];
    mr_status s;
    for (uint64_t i = 0; i < g->n_kv; i++) {
        mr_gguf_kv *kv = &g->kv[i];
        mr_str key;
        uint32_t type;
        kv->offset = c->pos;
        snprintf(field, sizeof field, "kv[%llu].key", (unsigned long long)i);
        if ((s = rd_str(c, &key, field)))
            return s;
        if (key.len == 0 || memchr(key.ptr, 0, key.len))
            return mr_fail(c->err, MR_EFORMAT, c->name, field, kv->offset,
                           "key is empty or contains a NUL byte");
        if (!(kv->key = str_dup(key)))
            return mr_fail(c->err, MR_ENOMEM, c->name, field, kv->offset, "no memory");
        kv->key_len = key.len;
        snprintf(field, sizeof field, "kv '%.60s' type", kv->key);
        uint64_t type_at = c->pos;
        if ((s = rd_u32(c, &type, field)))
            return s;
        if (type >= MR_GGUF_VTYPE_COUNT)
            return mr_fail(c->err, MR_EFORMAT, c->name, field, type_at,
                           "unknown value type %u", type);
        snprintf(field, sizeof field, "kv '%.60s' value", kv->key);
        if ((s = rd_value(c, type, &kv->val, field, 0)))
            return s;
    }
    return MR_OK;
}

static int cmp_kv_key(const void *a, const void *b)
{
    const mr_gguf_kv *x = *(const mr_gguf_kv *const *)a, *y = *(const mr_gguf_kv *const *)b;
    int c = strcmp(x->key, y->key);
    return c ? c : (x->offset > y->offset) - (x->offset < y->offset);
}

static int cmp_tensor_name(const void *a, const void *b)
{
    const mr_gguf_tensor *x = *(const mr_gguf_tensor *const *)a;
    const mr_gguf_tensor *y = *(const mr_gguf_tensor *const *)b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->info_offset > y->info_offset) - (x->info_offset < y->info_offset);
}

/* Reject repeated keys and tensor names, sorting pointers (n log n: a
 * crafted file may hold millions of entries); the later one is named. */
static mr_status check_duplicates(mr_gguf *g, cursor *c)
{
    uint64_t n = g->n_kv > g->n_tensors ? g->n_kv : g->n_tensors;
    void **v = malloc((n ? n : 1) * sizeof *v);
    mr_status s = MR_OK;
    if (!v)
        return mr_fail(c->err, MR_ENOMEM, c->name, NULL, MR_NO_OFFSET, "no memory");
    for (uint64_t i = 0; i < g->n_kv; i++)
        v[i] = &g->kv[i];
    qsort(v, g->n_kv, sizeof *v, cmp_kv_key);
    for (uint64_t i = 1; i < g->n_kv && !s; i++) {
        const mr_gguf_kv *a = v[i - 1], *b = v[i];
        if (!strcmp(a->key, b->key)) {
            char field[64];
            snprintf(field, sizeof field, "kv[%llu].key", (unsigned long long)(b - g->kv));
            s = mr_fail(c->err, MR_EFORMAT, c->name, field, b->offset, "duplicate key '%s'",
                        b->key);
        }
    }
    for (uint64_t i = 0; i < g->n_tensors && !s; i++)
        v[i] = &g->tensors[i];
    if (!s)
        qsort(v, g->n_tensors, sizeof *v, cmp_tensor_name);
    for (uint64_t i = 1; i < g->n_tensors && !s; i++) {
        const mr_gguf_tensor *a = v[i - 1], *b = v[i];
        if (!strcmp(a->name, b->name)) {
            char field[64];
            snprintf(field, sizeof field, "tensor[%llu].name", (unsigned long long)(b - g->tensors));
            s = mr_fail(c->err, MR_EFORMAT, c->name, field, b->info_offset,
                        "duplicate tensor '%s'", b->name);
        }
    }
    free(v);
    return s;
}

static int cmp_by_offset(const void *a, const void *b)
{
    const mr_gguf_tensor *x = *(const mr_gguf_tensor *const *)a;
    const mr_gguf_tensor *y = *(const mr_gguf_tensor *const *)b;
    return x->rel_offset < y->rel_offset ? -1 : x->rel_offset > y->rel_offset;
}

static mr_status parse_tensor_infos(mr_gguf *g, cursor *c)
{
    char field[160];
    mr_status s;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        mr_gguf_tensor *t = &g->tensors[i];
        mr_str name;
        t->info_offset = c->pos;
        snprintf(field, sizeof field, "tensor[%llu].name", (unsigned long long)i);
        if ((s = rd_str(c, &name, field)))
            return s;
        if (name.len == 0 || name.len > 256 || memchr(name.ptr, 0, name.len))
            return mr_fail(c->err, MR_EFORMAT, c->name, field, t->info_offset,
                           "name is empty, longer than 256 bytes or contains a NUL byte");
        if (!(t->name = str_dup(name)))
            return mr_fail(c->err, MR_ENOMEM, c->name, field, t->info_offset, "no memory");
        snprintf(field, sizeof field, "tensor '%.100s' n_dims", t->name);
        uint64_t at = c->pos;
        if ((s = rd_u32(c, &t->n_dims, field)))
            return s;
        if (t->n_dims < 1 || t->n_dims > MR_GGUF_MAX_DIMS)
            return mr_fail(c->err, MR_EFORMAT, c->name, field, at,
                           "%u dimensions (1 to %d allowed)", t->n_dims, MR_GGUF_MAX_DIMS);
        uint64_t nel = 1;
        for (uint32_t d = 0; d < MR_GGUF_MAX_DIMS; d++)
            t->ne[d] = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) {
            snprintf(field, sizeof field, "tensor '%.100s' ne[%u]", t->name, d);
            at = c->pos;
            if ((s = rd_u64(c, &t->ne[d], field)))
                return s;
            if (t->ne[d] == 0 || t->ne[d] > (uint64_t)INT64_MAX / nel)
                return mr_fail(c->err, MR_EFORMAT, c->name, field, at,
                               "dimension %llu is zero or makes the element count overflow",
                               (unsigned long long)t->ne[d]);
            nel *= t->ne[d];
        }
        snprintf(field, sizeof field, "tensor '%.100s' type", t->name);
        at = c->pos;
        if ((s = rd_u32(c, &t->type, field)))
            return s;
        if (!mr_type_known(t->type))
            return mr_fail(c->err, MR_EFORMAT, c->name, field, at,
                           "unknown ggml type %u", t->type);
        const mr_type_traits *tt = mr_type_get(t->type);
        if (t->ne[0] / tt->block_size > UINT64_MAX / tt->type_size)
            return mr_fail(c->err, MR_EFORMAT, c->name, field, at,
                           "a row of %llu elements overflows its byte size",
                           (unsigned long long)t->ne[0]);
        if (t->ne[0] % tt->block_size)
            return mr_fail(c->err, MR_EFORMAT, c->name, field, at,
                           "row length %llu is not a multiple of the %s block size %u",
                           (unsigned long long)t->ne[0], tt->name, tt->block_size);
        /* nbytes = row bytes * rows; rows * row bytes <= nel * type_size fits */
        uint64_t row = mr_type_row_bytes(t->type, t->ne[0]);
        uint64_t rows = nel / t->ne[0];
        if (row && rows > UINT64_MAX / row)
            return mr_fail(c->err, MR_EFORMAT, c->name, field, at, "byte size overflows");
        t->nbytes = row * rows;
        snprintf(field, sizeof field, "tensor '%.100s' offset", t->name);
        at = c->pos;
        t->offset_field = at;
        if ((s = rd_u64(c, &t->rel_offset, field)))
            return s;
        if (t->rel_offset % g->alignment)
            return mr_fail(c->err, MR_EFORMAT, c->name, field, at,
                           "data offset %llu is not a multiple of the alignment %u",
                           (unsigned long long)t->rel_offset, g->alignment);
    }
    return MR_OK;
}

/* Place the data section and check every tensor lies inside it, with no two
 * overlapping. */
static mr_status place_tensors(mr_gguf *g, cursor *c)
{
    uint64_t end_infos = c->pos;
    uint64_t pad = (g->alignment - end_infos % g->alignment) % g->alignment;
    g->data_offset = end_infos + pad;
    if (g->n_tensors == 0)
        return MR_OK; /* vocabulary-only files may end right after the infos */
    if (g->data_offset > g->file_size)
        return mr_fail(c->err, MR_EFORMAT, c->name, "data section", end_infos,
                       "the file ends before the aligned data section at %llu",
                       (unsigned long long)g->data_offset);
    uint64_t room = g->file_size - g->data_offset;
    mr_gguf_tensor **order = malloc(g->n_tensors * sizeof *order);
    if (!order)
        return mr_fail(c->err, MR_ENOMEM, c->name, NULL, MR_NO_OFFSET, "no memory");
    mr_status s = MR_OK;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        mr_gguf_tensor *t = &g->tensors[i];
        order[i] = t;
        if (t->rel_offset > room || t->nbytes > room - t->rel_offset) {
            char field[160];
            snprintf(field, sizeof field, "tensor '%.100s' offset", t->name);
            s = mr_fail(c->err, MR_EFORMAT, c->name, field, t->offset_field,
                        "data [%llu, +%llu) lies outside the file (data section holds %llu bytes)",
                        (unsigned long long)t->rel_offset, (unsigned long long)t->nbytes,
                        (unsigned long long)room);
            goto out;
        }
        t->file_offset = g->data_offset + t->rel_offset;
        t->data = g->base + t->file_offset;
    }
    qsort(order, g->n_tensors, sizeof *order, cmp_by_offset);
    for (uint64_t i = 1; i < g->n_tensors; i++) {
        const mr_gguf_tensor *a = order[i - 1], *b = order[i];
        if (a->rel_offset + a->nbytes > b->rel_offset) {
            char field[160];
            snprintf(field, sizeof field, "tensor '%.100s' offset", b->name);
            s = mr_fail(c->err, MR_EFORMAT, c->name, field, b->offset_field,
                        "data at %llu overlaps tensor '%s' [%llu, +%llu)",
                        (unsigned long long)b->rel_offset, a->name,
                        (unsigned long long)a->rel_offset, (unsigned long long)a->nbytes);
            goto out;
        }
    }
out:
    free(order);
    return s;
}

static mr_status parse(mr_gguf *g, mr_error *err)
{
    cursor c = {g->base, g->file_size, 0, g->path, err};
    mr_status s;
    uint32_t magic;

    if ((s = need(&c, 4, "header.magic")))
        return s;
    magic = (uint32_t)rd_le(g->base, 4);
    if (magic != 0x46554747u) /* "GGUF" */
        return mr_fail(err, MR_EFORMAT, g->path, "header.magic", 0,
                       "not a GGUF file (magic %02x %02x %02x %02x)", g->base[0],
                       g->base[1], g->base[2], g->base[3]);
    c.pos = 4;
    if ((s = rd_u32(&c, &g->version, "header.version")))
        return s;
    if (g->version == 1)
        return mr_fail(err, MR_EUNSUPPORTED, g->path, "header.version", 4,
                       "GGUF v1 is not supported (v2 and v3 are)");
    if (g->version != 2 && g->version != 3) {
        if ((g->version & 0xffff) == 0 && (g->version >> 24) >= 2 && (g->version >> 24) <= 3)
            return mr_fail(err, MR_EUNSUPPORTED, g->path, "header.version", 4,
                           "big-endian GGUF is not supported");
        return mr_fail(err, MR_EUNSUPPORTED, g->path, "header.version", 4,
                       "unknown GGUF version %u (v2 and v3 are supported)", g->version);
    }
    if ((s = rd_u64(&c, &g->n_tensors, "header.n_tensors")) ||
        (s = rd_u64(&c, &g->n_kv, "header.n_kv")))
        return s;
    /* A KV takes >= 8 (key len) + 1 (key) + 4 (type) + 1 (value) bytes, a
     * tensor info >= 8 + 1 + 4 + 8 + 4 + 8: bound both counts by the file. */
    uint64_t left = g->file_size - c.pos;
    if (g->n_kv > left / 14)
        return mr_fail(err, MR_EFORMAT, g->path, "header.n_kv", 16,
                       "%llu key-value pairs cannot fit in a %llu-byte file",
                       (unsigned long long)g->n_kv, (unsigned long long)g->file_size);
    if (g->n_tensors > left / 33)
        return mr_fail(err, MR_EFORMAT, g->path, "header.n_tensors", 8,
                       "%llu tensors cannot fit in a %llu-byte file",
                       (unsigned long long)g->n_tensors, (unsigned long long)g->file_size);
    g->kv = calloc(g->n_kv ? g->n_kv : 1, sizeof *g->kv);
    g->tensors = calloc(g->n_tensors ? g->n_tensors : 1, sizeof *g->tensors);
    if (!g->kv || !g->tensors)
        return mr_fail(err, MR_ENOMEM, g->path, NULL, MR_NO_OFFSET, "no memory");
    if ((s = parse_kvs(g, &c)))
        return s;

    g->alignment = MR_GGUF_DEFAULT_ALIGNMENT;
    const mr_gguf_kv *al = mr_gguf_find(g, "general.alignment");
    if (al) {
        if (al->val.type != MR_GGUF_UINT32 || al->val.v.u64 == 0 ||
            (al->val.v.u64 & (al->val.v.u64 - 1)) || al->val.v.u64 > (1u << 20))
            return mr_fail(err, MR_EFORMAT, g->path, "general.alignment", al->val.offset,
                           "must be a uint32 power of two up to 1 MiB");
        g->alignment = (uint32_t)al->val.v.u64;
    }
    if ((s = parse_tensor_infos(g, &c)) || (s = check_duplicates(g, &c)))
        return s;
    return place_tensors(g, &c);
}

static mr_status gguf_new(const char *name, mr_gguf **out, mr_error *err)
{
    mr_gguf *g = calloc(1, sizeof *g);
    if (!g || !(g->path = strdup(name ? name : "(memory)"))) {
        free(g);
        return mr_fail(err, MR_ENOMEM, name, NULL, MR_NO_OFFSET, "no memory");
    }
    g->fd = -1;
    *out = g;
    return MR_OK;
}

mr_status mr_gguf_open_mem(const void *buf, size_t len, const char *name,
                           mr_gguf **out, mr_error *err)
{
    mr_gguf *g;
    mr_status s;
    *out = NULL;
    if ((s = gguf_new(name, &g, err)))
        return s;
    g->base = buf;
    g->file_size = len;
    if ((s = parse(g, err))) {
        mr_gguf_close(g);
        return s;
    }
    *out = g;
    return MR_OK;
}

mr_status mr_gguf_open(const char *path, mr_gguf **out, mr_error *err)
{
    mr_gguf *g;
    mr_status s;
    struct stat st;
    *out = NULL;
    if ((s = gguf_new(path, &g, err)))
        return s;
    g->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (g->fd < 0) {
        s = mr_fail(err, MR_EIO, path, NULL, MR_NO_OFFSET, "cannot open: %s", strerror(errno));
        goto fail;
    }
    if (fstat(g->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        s = mr_fail(err, MR_EIO, path, NULL, MR_NO_OFFSET, "not a regular file");
        goto fail;
    }
    g->file_size = (uint64_t)st.st_size;
    if (g->file_size < 24) {
        s = mr_fail(err, MR_EFORMAT, path, "header", 0,
                    "file is %llu bytes, shorter than a GGUF header (24)",
                    (unsigned long long)g->file_size);
        goto fail;
    }
    void *m = mmap(NULL, g->file_size, PROT_READ, MAP_PRIVATE, g->fd, 0);
    if (m == MAP_FAILED) {
        s = mr_fail(err, MR_EIO, path, NULL, MR_NO_OFFSET, "mmap failed: %s", strerror(errno));
        goto fail;
    }
    g->base = m;
    g->mapped = 1;
    if ((s = parse(g, err)))
        goto fail;
    *out = g;
    return MR_OK;
fail:
    mr_gguf_close(g);
    return s;
}

const mr_gguf_kv *mr_gguf_find(const mr_gguf *g, const char *key)
{
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (g->kv[i].key && strcmp(g->kv[i].key, key) == 0)
            return &g->kv[i];
    return NULL;
}

const mr_gguf_tensor *mr_gguf_tensor_find(const mr_gguf *g, const char *name)
{
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (g->tensors[i].name && strcmp(g->tensors[i].name, name) == 0)
            return &g->tensors[i];
    return NULL;
}

uint64_t mr_gguf_tensor_nelements(const mr_gguf_tensor *t)
{
    return t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
}

static int is_unsigned(uint32_t t)
{
    return t == MR_GGUF_UINT8 || t == MR_GGUF_UINT16 || t == MR_GGUF_UINT32 ||
           t == MR_GGUF_UINT64;
}

static int is_signed(uint32_t t)
{
    return t == MR_GGUF_INT8 || t == MR_GGUF_INT16 || t == MR_GGUF_INT32 ||
           t == MR_GGUF_INT64;
}

mr_status mr_gguf_get_u32_opt(const mr_gguf *g, const char *key, uint32_t *out, mr_error *err)
{
    const mr_gguf_kv *kv = mr_gguf_find(g, key);
    if (!kv)
        return MR_OK;
    uint64_t v;
    if (is_unsigned(kv->val.type))
        v = kv->val.v.u64;
    else if (is_signed(kv->val.type) && kv->val.v.i64 >= 0)
        v = (uint64_t)kv->val.v.i64;
    else
        return mr_fail(err, MR_EFORMAT, g->path, key, kv->val.offset,
                       "expected a non-negative integer, found %s",
                       mr_gguf_vtype_name(kv->val.type));
    if (v > UINT32_MAX)
        return mr_fail(err, MR_EFORMAT, g->path, key, kv->val.offset,
                       "value %llu does not fit in 32 bits", (unsigned long long)v);
    *out = (uint32_t)v;
    return MR_OK;
}

mr_status mr_gguf_get_u32(const mr_gguf *g, const char *key, uint32_t *out, mr_error *err)
{
    if (!mr_gguf_find(g, key))
        return mr_fail(err, MR_EFORMAT, g->path, key, MR_NO_OFFSET, "required key is missing");
    return mr_gguf_get_u32_opt(g, key, out, err);
}

mr_status mr_gguf_get_f32_opt(const mr_gguf *g, const char *key, float *out, mr_error *err)
{
    const mr_gguf_kv *kv = mr_gguf_find(g, key);
    if (!kv)
        return MR_OK;
    if (kv->val.type == MR_GGUF_FLOAT32 || kv->val.type == MR_GGUF_FLOAT64)
        *out = (float)kv->val.v.f64;
    else if (is_unsigned(kv->val.type))
        *out = (float)kv->val.v.u64;
    else if (is_signed(kv->val.type))
        *out = (float)kv->val.v.i64;
    else
        return mr_fail(err, MR_EFORMAT, g->path, key, kv->val.offset,
                       "expected a number, found %s", mr_gguf_vtype_name(kv->val.type));
    return MR_OK;
}

mr_status mr_gguf_get_bool_opt(const mr_gguf *g, const char *key, int *out, mr_error *err)
{
    const mr_gguf_kv *kv = mr_gguf_find(g, key);
    if (!kv)
        return MR_OK;
    if (kv->val.type != MR_GGUF_BOOL)
        return mr_fail(err, MR_EFORMAT, g->path, key, kv->val.offset,
                       "expected bool, found %s", mr_gguf_vtype_name(kv->val.type));
    *out = kv->val.v.b;
    return MR_OK;
}

mr_status mr_gguf_get_str(const mr_gguf *g, const char *key, mr_str *out, mr_error *err)
{
    const mr_gguf_kv *kv = mr_gguf_find(g, key);
    if (!kv)
        return mr_fail(err, MR_EFORMAT, g->path, key, MR_NO_OFFSET, "required key is missing");
    if (kv->val.type != MR_GGUF_STRING)
        return mr_fail(err, MR_EFORMAT, g->path, key, kv->val.offset,
                       "expected string, found %s", mr_gguf_vtype_name(kv->val.type));
    *out = kv->val.v.str;
    return MR_OK;
}

mr_status mr_gguf_get_arr(const mr_gguf *g, const char *key, uint32_t elem_type,
                          uint64_t n, const mr_gguf_value **out, mr_error *err)
{
    const mr_gguf_kv *kv = mr_gguf_find(g, key);
    if (!kv)
        return mr_fail(err, MR_EFORMAT, g->path, key, MR_NO_OFFSET, "required key is missing");
    if (kv->val.type != MR_GGUF_ARRAY || kv->val.v.arr.elem_type != elem_type)
        return mr_fail(err, MR_EFORMAT, g->path, key, kv->val.offset,
                       "expected an array of %s", mr_gguf_vtype_name(elem_type));
    if (n && kv->val.v.arr.n != n)
        return mr_fail(err, MR_EFORMAT, g->path, key, kv->val.offset,
                       "array has %llu elements, expected %llu",
                       (unsigned long long)kv->val.v.arr.n, (unsigned long long)n);
    *out = &kv->val;
    return MR_OK;
}

float mr_gguf_arr_f32(const mr_gguf_value *arr, uint64_t i)
{
    const uint8_t *p = arr->v.arr.data;
    switch (arr->v.arr.elem_type) {
    case MR_GGUF_FLOAT32: {
        uint32_t r = (uint32_t)rd_le(p + 4 * i, 4);
        float f;
        memcpy(&f, &r, 4);
        return f;
    }
    case MR_GGUF_FLOAT64: {
        uint64_t r = rd_le(p + 8 * i, 8);
        double d;
        memcpy(&d, &r, 8);
        return (float)d;
    }
    default:
        return (float)mr_gguf_arr_int(arr, i);
    }
}

uint64_t mr_gguf_arr_u64(const mr_gguf_value *arr, uint64_t i)
{
    if (arr->v.arr.elem_type == MR_GGUF_UINT64)
        return rd_le(arr->v.arr.data + 8 * i, 8);
    return (uint64_t)mr_gguf_arr_int(arr, i);
}

int64_t mr_gguf_arr_int(const mr_gguf_value *arr, uint64_t i)
{
    const uint8_t *p = arr->v.arr.data;
    switch (arr->v.arr.elem_type) {
    case MR_GGUF_UINT8: case MR_GGUF_BOOL: return p[i];
    case MR_GGUF_INT8: return (int8_t)p[i];
    case MR_GGUF_UINT16: return (uint16_t)rd_le(p + 2 * i, 2);
    case MR_GGUF_INT16: return (int16_t)rd_le(p + 2 * i, 2);
    case MR_GGUF_UINT32: return (uint32_t)rd_le(p + 4 * i, 4);
    case MR_GGUF_INT32: return (int32_t)rd_le(p + 4 * i, 4);
    case MR_GGUF_UINT64: case MR_GGUF_INT64: return (int64_t)rd_le(p + 8 * i, 8);
    default: return 0;
    }
}
