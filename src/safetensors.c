/* safetensors.c - safetensors files and sharded checkpoints (see
 * safetensors.h).  json-c parses the headers; every number it yields is
 * checked here before use. */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "../quant/types.h"

#define INDEX_NAME "model.safetensors.index.json"
#define SINGLE_NAME "model.safetensors"
#define MAX_INDEX_BYTES (64u << 20)

static const struct {
    const char *name;
    size_t size;
} dtypes[MR_ST_DTYPE_COUNT] = {
    [MR_ST_BOOL] = {"BOOL", 1},       [MR_ST_U8] = {"U8", 1},   [MR_ST_I8] = {"I8", 1},
    [MR_ST_F8_E5M2] = {"F8_E5M2", 1}, [MR_ST_F8_E4M3] = {"F8_E4M3", 1},
    [MR_ST_I16] = {"I16", 2},         [MR_ST_U16] = {"U16", 2}, [MR_ST_F16] = {"F16", 2},
    [MR_ST_BF16] = {"BF16", 2},       [MR_ST_I32] = {"I32", 4}, [MR_ST_U32] = {"U32", 4},
    [MR_ST_F32] = {"F32", 4},         [MR_ST_F64] = {"F64", 8}, [MR_ST_I64] = {"I64", 8},
    [MR_ST_U64] = {"U64", 8},
};

/* Name of a dtype, "unknown" for an id out of range. */
const char *mr_st_dtype_name(mr_st_dtype d)
{
    return (unsigned)d < MR_ST_DTYPE_COUNT ? dtypes[d].name : "unknown";
}

/* Bytes of one element, 0 for an id out of range. */
size_t mr_st_dtype_size(mr_st_dtype d)
{
    return (unsigned)d < MR_ST_DTYPE_COUNT ? dtypes[d].size : 0;
}

/* Product of the shape; only called on validated tensors. */
uint64_t mr_st_nelements(const mr_st_tensor *t)
{
    uint64_t n = 1;
    for (uint32_t i = 0; i < t->n_dims; i++)
        n *= t->shape[i];
    return n;
}

/* Free a file's tensors and close its descriptor. */
void mr_st_close(mr_st_file *f)
{
    if (!f)
        return;
    for (uint32_t i = 0; i < f->n_tensors; i++)
        free(f->tensors[i].name);
    free(f->tensors);
    if (f->fd >= 0)
        close(f->fd);
    free(f->path);
    free(f);
}

/* A JSON integer that is >= 0, into *out; 0 on success. */
static int json_u64(json_object *o, uint64_t *out)
{
    if (!o || json_object_get_type(o) != json_type_int)
        return -1;
    int64_t v = json_object_get_int64(o);
    if (v < 0)
        return -1;
    *out = v == INT64_MAX ? json_object_get_uint64(o) : (uint64_t)v;
    return 0;
}

/* Order of tensors by data offset, for the overlap check. */
static int cmp_offset(const void *a, const void *b)
{
    const mr_st_tensor *x = a, *y = b;
    return x->offset < y->offset ? -1 : x->offset > y->offset ? 1
         : x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes;
}

/* Order of tensors by name. */
static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const mr_st_tensor *)a)->name, ((const mr_st_tensor *)b)->name);
}

/* Validate one header entry (key, val) into *t.  Data offsets are made
 * absolute with data_start; data_size bounds them. */
static mr_status parse_entry(const char *file, const char *key, json_object *val,
                             uint64_t data_start, uint64_t data_size, mr_st_tensor *t,
                             mr_error *err)
{
    json_object *jd, *js, *jo;
    if (json_object_get_type(val) != json_type_object)
        return mr_fail(err, MR_EFORMAT, file, key, MR_NO_OFFSET, "entry is not a JSON object");
    if (!json_object_object_get_ex(val, "dtype", &jd) ||
        json_object_get_type(jd) != json_type_string)
        return mr_fail(err, MR_EFORMAT, file, key, MR_NO_OFFSET, "dtype is missing or not a string");
    const char *ds = json_object_get_string(jd);
    t->dtype = MR_ST_DTYPE_COUNT;
    for (int d = 0; d < MR_ST_DTYPE_COUNT; d++)
        if (!strcmp(ds, dtypes[d].name))
            t->dtype = (mr_st_dtype)d;
    if (t->dtype == MR_ST_DTYPE_COUNT)
        return mr_fail(err, MR_EFORMAT, file, key, MR_NO_OFFSET, "unknown dtype '%.32s'", ds);
    if (!json_object_object_get_ex(val, "shape", &js) ||
        json_object_get_type(js) != json_type_array)
        return mr_fail(err, MR_EFORMAT, file, key, MR_NO_OFFSET, "shape is missing or not an array");
    size_t nd = json_object_array_length(js);
    if (nd > MR_ST_MAX_DIMS)
        return mr_fail(err, MR_EFORMAT, file, key, MR_NO_OFFSET,
                       "shape has %zu dimensions, more than %d", nd, MR_ST_MAX_DIMS);
    t->n_dims = (uint32_t)nd;
    uint64_t nel = 1;
    for (uint32_t i = 0; i < MR_ST_MAX_DIMS; i++)
        t->shape[i] = 1;
    for (uint32_t i = 0; i < t->n_dims; i++) {
        if (json_u64(json_object_array_get_idx(js, i), &t->shape[i]))
            return mr_fail(err, MR_EFORMAT, file, key, MR_NO_OFFSET,
                           "shape[%u] is not a non-negative integer", i);
        if (t->shape[i] && nel > UINT64_MAX / t->shape[i])
            return mr_fail(err, MR_EFORMAT, file, key, MR_NO_OFFSET, "shape overflows 64 bits");
        nel *= t->shape[i];
    }
    size_t es = dtypes[t->dtype].size;
    if (nel > UINT64_MAX / es)
        return mr_fail(err, MR_EFORMAT, file, key, MR_NO_OFFSET, "shape overflows 64 bits");
    uint64_t begin, end;
    if (!json_object_object_get_ex(val, "data_offsets", &jo) ||
        json_object_get_type(jo) != json_type_array || json_object_array_length(jo) != 2 ||
        json_u64(json_object_array_get_idx(jo, 0), &begin) ||
        json_u64(json_object_array_get_idx(jo, 1), &end))
        return mr_fail(err, MR_EFORMAT, file, key, MR_NO_OFFSET,
                       "data_offsets is not two non-negative integers");
    if (begin > end || end > data_size)
        return mr_fail(err, MR_EFORMAT, file, key, MR_NO_OFFSET,
                       "data_offsets [%llu, %llu] are reversed or past the end of the data "
                       "(%llu bytes)", (unsigned long long)begin, (unsigned long long)end,
                       (unsigned long long)data_size);
    if (end - begin != nel * es)
        return mr_fail(err, MR_EFORMAT, file, key, data_start + begin,
                       "data_offsets span %llu bytes but shape x %s needs %llu",
                       (unsigned long long)(end - begin), dtypes[t->dtype].name,
                       (unsigned long long)(nel * es));
    t->offset = data_start + begin;
    t->nbytes = end - begin;
    return MR_OK;
}

/* Parse and validate the JSON header (json, len bytes) of file into f. */
static mr_status parse_header(const char *file, const char *json, size_t len, mr_st_file *f,
                              mr_error *err)
{
    mr_status s = MR_OK;
    json_tokener *tok = NULL;
    json_object *root = NULL;
    uint64_t data_size = f->file_size - f->data_start;
    if (memchr(json, '\0', len))
        return mr_fail(err, MR_EFORMAT, file, "header", 8, "header contains a NUL byte");
    if (!(tok = json_tokener_new()))
        return mr_fail(err, MR_ENOMEM, file, NULL, MR_NO_OFFSET, "no memory");
    root = json_tokener_parse_ex(tok, json, (int)len);
    if (!root || json_tokener_get_error(tok) != json_tokener_success) {
        enum json_tokener_error je = json_tokener_get_error(tok);
        s = mr_fail(err, MR_EFORMAT, file, "header", 8 + json_tokener_get_parse_end(tok),
                    "not valid JSON: %s", je == json_tokener_continue
                    ? "the JSON ends before its object closes" : json_tokener_error_desc(je));
        goto done;
    }
    for (size_t i = json_tokener_get_parse_end(tok); i < len; i++)
        if (json[i] != ' ' && json[i] != '\n' && json[i] != '\t' && json[i] != '\r') {
            s = mr_fail(err, MR_EFORMAT, file, "header", 8 + i, "text after the JSON object");
            goto done;
        }
    if (json_object_get_type(root) != json_type_object) {
        s = mr_fail(err, MR_EFORMAT, file, "header", 8, "not a JSON object");
        goto done;
    }
    size_t n = 0;
    json_object_object_foreach(root, k0, v0) {
        if (!strcmp(k0, "__metadata__")) {
            if (json_object_get_type(v0) != json_type_object) {
                s = mr_fail(err, MR_EFORMAT, file, "__metadata__", 8, "not a JSON object");
                goto done;
            }
            continue;
        }
        n++;
    }
    if (n && !(f->tensors = calloc(n, sizeof *f->tensors))) {
        s = mr_fail(err, MR_ENOMEM, file, NULL, MR_NO_OFFSET, "no memory");
        goto done;
    }
    json_object_object_foreach(root, key, val) {
        if (!strcmp(key, "__metadata__"))
            continue;
        mr_st_tensor *t = &f->tensors[f->n_tensors];
        if ((s = parse_entry(file, key, val, f->data_start, data_size, t, err)))
            goto done;
        if (!(t->name = strdup(key))) {
            s = mr_fail(err, MR_ENOMEM, file, NULL, MR_NO_OFFSET, "no memory");
            goto done;
        }
        f->n_tensors++;
    }
    if (f->n_tensors > 1) {
        qsort(f->tensors, f->n_tensors, sizeof *f->tensors, cmp_offset);
        for (uint32_t i = 1; i < f->n_tensors; i++) {
            const mr_st_tensor *a = &f->tensors[i - 1], *b = &f->tensors[i];
            if (b->offset < a->offset + a->nbytes) {
                s = mr_fail(err, MR_EFORMAT, file, b->name, b->offset,
                            "data overlaps that of %s", a->name);
                goto done;
            }
        }
        qsort(f->tensors, f->n_tensors, sizeof *f->tensors, cmp_name);
    }
done:
    json_object_put(root);
    json_tokener_free(tok);
    return s;
}

/* Allocate an empty file record named name. */
static mr_st_file *file_new(const char *name, mr_error *err)
{
    mr_st_file *f = calloc(1, sizeof *f);
    if (f && !(f->path = strdup(name))) {
        free(f);
        f = NULL;
    }
    if (!f)
        mr_fail(err, MR_ENOMEM, name, NULL, MR_NO_OFFSET, "no memory");
    else
        f->fd = -1;
    return f;
}

/* Decode and bound the 8-byte header length of a file of file_size bytes. */
static mr_status header_length(const char *name, const uint8_t b[8], uint64_t file_size,
                               uint64_t *n, mr_error *err)
{
    *n = 0;
    for (int i = 7; i >= 0; i--)
        *n = (*n << 8) | b[i];
    if (*n > MR_ST_MAX_HEADER || *n > file_size - 8)
        return mr_fail(err, MR_EFORMAT, name, "header length", 0,
                       "%llu bytes does not fit in the file (%llu bytes) or under %u",
                       (unsigned long long)*n, (unsigned long long)file_size, MR_ST_MAX_HEADER);
    if (*n < 2)
        return mr_fail(err, MR_EFORMAT, name, "header length", 0, "%llu bytes is too short",
                       (unsigned long long)*n);
    return MR_OK;
}

/* Validate an in-memory image; see safetensors.h. */
mr_status mr_st_open_mem(const void *buf, size_t len, const char *name, mr_st_file **out,
                         mr_error *err)
{
    mr_status s;
    uint64_t n;
    *out = NULL;
    if (len < 8)
        return mr_fail(err, MR_EFORMAT, name, "header length", 0,
                       "file of %zu bytes is shorter than 8", len);
    mr_st_file *f = file_new(name, err);
    if (!f)
        return MR_ENOMEM;
    f->file_size = len;
    if ((s = header_length(name, buf, len, &n, err)))
        goto fail;
    f->data_start = 8 + n;
    if ((s = parse_header(name, (const char *)buf + 8, (size_t)n, f, err)))
        goto fail;
    *out = f;
    return MR_OK;
fail:
    mr_st_close(f);
    return s;
}

/* Open and validate a file; see safetensors.h. */
mr_status mr_st_open(const char *path, mr_st_file **out, mr_error *err)
{
    mr_status s = MR_OK;
    char *json = NULL;
    uint8_t b[8];
    uint64_t n;
    struct stat st;
    *out = NULL;
    mr_st_file *f = file_new(path, err);
    if (!f)
        return MR_ENOMEM;
    if ((f->fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(f->fd, &st) != 0) {
        s = mr_fail(err, MR_EIO, path, NULL, MR_NO_OFFSET, "cannot open: %s", strerror(errno));
        goto fail;
    }
    f->file_size = (uint64_t)st.st_size;
    if (f->file_size < 8) {
        s = mr_fail(err, MR_EFORMAT, path, "header length", 0,
                    "file of %llu bytes is shorter than 8", (unsigned long long)f->file_size);
        goto fail;
    }
    if ((s = mr_pread_full(f->fd, path, 0, b, 8, err)) ||
        (s = header_length(path, b, f->file_size, &n, err)))
        goto fail;
    if (!(json = malloc((size_t)n))) {
        s = mr_fail(err, MR_ENOMEM, path, NULL, MR_NO_OFFSET, "no memory for the header");
        goto fail;
    }
    f->data_start = 8 + n;
    if ((s = mr_pread_full(f->fd, path, 8, json, (size_t)n, err)) ||
        (s = parse_header(path, json, (size_t)n, f, err)))
        goto fail;
    free(json);
    *out = f;
    return MR_OK;
fail:
    free(json);
    mr_st_close(f);
    return s;
}

/* Binary search of a sorted tensor array. */
const mr_st_tensor *mr_st_find(const mr_st_file *f, const char *name)
{
    uint32_t lo = 0, hi = f->n_tensors;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, f->tensors[mid].name);
        if (!c)
            return &f->tensors[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* Read from an opened file; see safetensors.h. */
mr_status mr_st_pread(const mr_st_file *f, uint64_t offset, void *buf, size_t len,
                      mr_error *err)
{
    if (f->fd < 0)
        return mr_fail(err, MR_EINVAL, f->path, NULL, offset, "in-memory image has no file");
    return mr_pread_full(f->fd, f->path, offset, buf, len, err);
}

/* Widen float values to f32; see safetensors.h. */
/* One float8 e4m3fn value (OCP FP8: sign, 4 exponent bits biased by 7, 3
 * mantissa bits; no infinities, S.1111.111 is NaN; exponent 0 is
 * subnormal m/8 * 2^-6).  Every value is exact in f32. */
static float e4m3fn_to_f32(uint8_t b)
{
    const uint32_t e = (b >> 3) & 15u, m = b & 7u;
    float v;
    if (e == 15 && m == 7)
        v = NAN;
    else if (e == 0)
        v = ldexpf((float)m, -9);
    else
        v = ldexpf((float)(8 + m), (int)e - 10);
    return b & 0x80 ? -v : v;
}

int mr_st_to_f32(mr_st_dtype d, const void *src, float *dst, size_t n)
{
    switch (d) {
    case MR_ST_F8_E4M3: {
        const uint8_t *b = src;
        for (size_t i = 0; i < n; i++)
            dst[i] = e4m3fn_to_f32(b[i]);
        return 0;
    }
    case MR_ST_F32: memcpy(dst, src, n * 4); return 0;
    case MR_ST_F16: mr_f16_row_to_f32(src, dst, (int64_t)n); return 0;
    case MR_ST_BF16: { /* bf16 is the top half of an f32: a loop the compiler vectorizes */
        const uint8_t *b = src;
        for (size_t i = 0; i < n; i++) {
            uint32_t u = ((uint32_t)b[2 * i] | (uint32_t)b[2 * i + 1] << 8) << 16;
            memcpy(&dst[i], &u, 4);
        }
        return 0;
    }
    default: return -1;
    }
}

/* ---------------------------------------------------------------- checkpoints */

/* Free a checkpoint and close its shards. */
void mr_st_checkpoint_close(mr_st_checkpoint *c)
{
    if (!c)
        return;
    for (uint32_t i = 0; i < c->n_shards; i++) {
        mr_st_close(c->shards ? c->shards[i] : NULL);
        free(c->shard_names ? c->shard_names[i] : NULL);
    }
    free(c->shards);
    free(c->shard_names);
    free(c->tensors);
    free(c->tensor_shard);
    free(c->index_path);
    free(c->dir);
    free(c);
}

/* Order of C strings, for qsort of char *. */
static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Index of shard name in the sorted list, or -1. */
static int shard_index(const mr_st_checkpoint *c, const char *name)
{
    char **p = bsearch(&name, c->shard_names, c->n_shards, sizeof(char *), cmp_str);
    return p ? (int)(p - c->shard_names) : -1;
}

/* Open shard i of c (its name is set); a missing file is a broken index. */
static mr_status open_shard(mr_st_checkpoint *c, uint32_t i, mr_error *err)
{
    char *path = mr_path_join(c->dir, c->shard_names[i]);
    if (!path)
        return mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory");
    if (c->index_path && access(path, F_OK) != 0 && errno == ENOENT) {
        mr_fail(err, MR_EFORMAT, c->index_path, "weight_map", MR_NO_OFFSET,
                "names shard '%s', which does not exist", c->shard_names[i]);
        free(path);
        return MR_EFORMAT;
    }
    mr_status s = mr_st_open(path, &c->shards[i], err);
    free(path);
    return s;
}

/* Read the index's weight_map: the distinct shard names (sorted) and, for
 * every tensor, its shard.  Then open the shards and find every tensor. */
static mr_status load_index(mr_st_checkpoint *c, mr_error *err)
{
    mr_status s = MR_OK;
    char *text = NULL;
    size_t len;
    json_object *root = NULL, *map;
    if ((s = mr_read_small_file(c->index_path, MAX_INDEX_BYTES, &text, &len, err)))
        return s;
    json_tokener *tok = json_tokener_new();
    if (!tok) {
        free(text);
        return mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory");
    }
    root = json_tokener_parse_ex(tok, text, (int)len);
    if (!root || json_tokener_get_error(tok) != json_tokener_success) {
        s = mr_fail(err, MR_EFORMAT, c->index_path, NULL, json_tokener_get_parse_end(tok),
                    "not valid JSON: %s", json_tokener_error_desc(json_tokener_get_error(tok)));
        goto done;
    }
    if (json_object_get_type(root) != json_type_object ||
        !json_object_object_get_ex(root, "weight_map", &map) ||
        json_object_get_type(map) != json_type_object) {
        s = mr_fail(err, MR_EFORMAT, c->index_path, "weight_map", MR_NO_OFFSET,
                    "missing or not a JSON object");
        goto done;
    }
    size_t n = (size_t)json_object_object_length(map);
    c->tensors = calloc(n ? n : 1, sizeof *c->tensors);
    c->tensor_shard = calloc(n ? n : 1, sizeof *c->tensor_shard);
    c->shard_names = calloc(n ? n : 1, sizeof *c->shard_names);
    if (!c->tensors || !c->tensor_shard || !c->shard_names) {
        s = mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory");
        goto done;
    }
    json_object_object_foreach(map, k0, v0) {
        const char *sh = json_object_get_type(v0) == json_type_string
                       ? json_object_get_string(v0) : NULL;
        if (!sh || !*sh || strchr(sh, '/') || !strcmp(sh, ".") || !strcmp(sh, "..")) {
            s = mr_fail(err, MR_EFORMAT, c->index_path, k0, MR_NO_OFFSET,
                        "shard is not a file name in the checkpoint's directory");
            goto done;
        }
        int known = 0;
        for (uint32_t i = 0; i < c->n_shards && !known; i++)
            known = !strcmp(c->shard_names[i], sh);
        if (!known && !(c->shard_names[c->n_shards++] = strdup(sh))) {
            s = mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory");
            goto done;
        }
    }
    qsort(c->shard_names, c->n_shards, sizeof(char *), cmp_str);
    if (!(c->shards = calloc(c->n_shards ? c->n_shards : 1, sizeof *c->shards))) {
        s = mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory");
        goto done;
    }
    for (uint32_t i = 0; i < c->n_shards; i++)
        if ((s = open_shard(c, i, err)))
            goto done;
    json_object_object_foreach(map, key, val) {
        int si = shard_index(c, json_object_get_string(val));
        const mr_st_tensor *t = mr_st_find(c->shards[si], key);
        if (!t) {
            s = mr_fail(err, MR_EFORMAT, c->index_path, key, MR_NO_OFFSET,
                        "index places this tensor in %s, which does not hold it",
                        c->shard_names[si]);
            goto done;
        }
        c->tensors[c->n_tensors] = t;
        c->tensor_shard[c->n_tensors++] = (uint32_t)si;
    }
done:
    json_object_put(root);
    json_tokener_free(tok);
    free(text);
    return s;
}

/* The single-file layout: every tensor of model.safetensors. */
static mr_status load_single(mr_st_checkpoint *c, mr_error *err)
{
    c->shard_names = calloc(1, sizeof *c->shard_names);
    c->shards = calloc(1, sizeof *c->shards);
    if (!c->shard_names || !c->shards || !(c->shard_names[0] = strdup(SINGLE_NAME)))
        return mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory");
    c->n_shards = 1;
    mr_status s = open_shard(c, 0, err);
    if (s)
        return s;
    const mr_st_file *f = c->shards[0];
    c->tensors = calloc(f->n_tensors ? f->n_tensors : 1, sizeof *c->tensors);
    c->tensor_shard = calloc(f->n_tensors ? f->n_tensors : 1, sizeof *c->tensor_shard);
    if (!c->tensors || !c->tensor_shard)
        return mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory");
    for (uint32_t i = 0; i < f->n_tensors; i++)
        c->tensors[c->n_tensors++] = &f->tensors[i];
    return MR_OK;
}

typedef struct {
    const mr_st_tensor *t;
    uint32_t shard;
} tensor_ref;

/* Order of tensor_refs by name. */
static int cmp_ref(const void *a, const void *b)
{
    return strcmp(((const tensor_ref *)a)->t->name, ((const tensor_ref *)b)->t->name);
}

/* Sort the checkpoint's tensors (and their shard numbers) by name (the
 * index names each tensor once: its JSON keys are unique). */
static mr_status sort_tensors(mr_st_checkpoint *c, mr_error *err)
{
    tensor_ref *r = malloc(sizeof *r * (c->n_tensors ? c->n_tensors : 1));
    if (!r)
        return mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory");
    for (uint32_t i = 0; i < c->n_tensors; i++)
        r[i] = (tensor_ref){c->tensors[i], c->tensor_shard[i]};
    qsort(r, c->n_tensors, sizeof *r, cmp_ref);
    for (uint32_t i = 0; i < c->n_tensors; i++) {
        c->tensors[i] = r[i].t;
        c->tensor_shard[i] = r[i].shard;
    }
    free(r);
    return MR_OK;
}

/* Open a checkpoint directory; see safetensors.h. */
mr_status mr_st_checkpoint_open(const char *dir, mr_st_checkpoint **out, mr_error *err)
{
    mr_status s;
    *out = NULL;
    mr_st_checkpoint *c = calloc(1, sizeof *c);
    if (!c || !(c->dir = strdup(dir)) || !(c->index_path = mr_path_join(dir, INDEX_NAME))) {
        mr_st_checkpoint_close(c);
        return mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory");
    }
    if (access(c->index_path, F_OK) == 0) {
        s = load_index(c, err);
    } else {
        free(c->index_path);
        c->index_path = NULL;
        char *single = mr_path_join(dir, SINGLE_NAME);
        if (single && access(single, F_OK) != 0)
            s = mr_fail(err, MR_EFORMAT, dir, NULL, MR_NO_OFFSET,
                        "neither %s nor %s is there", INDEX_NAME, SINGLE_NAME);
        else
            s = load_single(c, err);
        free(single);
    }
    if (s) {
        mr_st_checkpoint_close(c);
        return s;
    }
    if ((s = sort_tensors(c, err))) {
        mr_st_checkpoint_close(c);
        return s;
    }
    *out = c;
    return MR_OK;
}

/* Binary search of the checkpoint's sorted tensors. */
const mr_st_tensor *mr_st_checkpoint_find(const mr_st_checkpoint *c, const char *name,
                                          uint32_t *shard)
{
    uint32_t lo = 0, hi = c->n_tensors;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int k = strcmp(name, c->tensors[mid]->name);
        if (!k) {
            if (shard)
                *shard = c->tensor_shard[mid];
            return c->tensors[mid];
        }
        if (k < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}
