/* gguf_write.c - streaming GGUF v3 writer (see gguf_write.h).
 *
 * Metadata is serialised into memory as it is declared (it is small next
 * to the tensors: the vocabulary dominates, ~1 MB); tensor data goes
 * straight to the file descriptor.  Declaration errors are sticky and
 * reported by mr_gguf_writer_begin, so building calls need no checks.
 */
#include "gguf_write.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xxhash.h>

#include "../quant/types.h"
#include "moerun_keys.h"

typedef struct {
    char *name;
    uint32_t n_dims, type;
    uint64_t ne[MR_GGUF_MAX_DIMS];
    uint64_t rel_offset, nbytes;
    uint64_t pwritten; /* bytes given to mr_gguf_writer_pwrite */
} wtensor;

typedef struct {
    char *key;
    uint64_t pos; /* offset of the array's first element inside kv */
    uint64_t n;
} u64_array;

struct mr_gguf_writer {
    uint32_t alignment;
    uint8_t *kv;
    uint64_t kv_len, kv_cap, n_kv;
    char **keys;
    wtensor *t;
    uint32_t n_t, cap_t;
    u64_array *arrs;
    uint32_t n_arrs;
    uint64_t data_size; /* data section bytes so far (aligned) */
    mr_status sticky;
    char sticky_msg[256];
    /* writing state */
    int fd;
    const char *path;
    uint64_t kv_file_pos; /* file offset of the KV block */
    uint64_t data_offset;
    uint32_t cur;         /* tensor being written */
    uint64_t cur_done;    /* its bytes written */
    uint64_t file_pos;
    int begun;
    uint64_t meta_pos; /* MR_KEY_CHECKSUM_METADATA's value in kv, or 0 */
};

static mr_status fail_sticky(mr_gguf_writer *w, mr_status s, const char *what)
{
    if (!w->sticky) {
        w->sticky = s;
        snprintf(w->sticky_msg, sizeof w->sticky_msg, "%s", what);
    }
    return s;
}

static int put(mr_gguf_writer *w, const void *p, uint64_t n)
{
    if (w->kv_len + n > w->kv_cap) {
        uint64_t cap = w->kv_cap ? w->kv_cap : 4096;
        while (cap < w->kv_len + n)
            cap *= 2;
        uint8_t *nb = realloc(w->kv, cap);
        if (!nb)
            return fail_sticky(w, MR_ENOMEM, "no memory for metadata"), -1;
        w->kv = nb;
        w->kv_cap = cap;
    }
    if (p)
        memcpy(w->kv + w->kv_len, p, n);
    else
        memset(w->kv + w->kv_len, 0, n);
    w->kv_len += n;
    return 0;
}

static void le(uint8_t *b, uint64_t v, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        b[i] = (uint8_t)(v >> (8 * i));
}

static int put_int(mr_gguf_writer *w, uint64_t v, unsigned n)
{
    uint8_t b[8];
    le(b, v, n);
    return put(w, b, n);
}

static int put_str(mr_gguf_writer *w, const char *s, uint64_t len)
{
    return put_int(w, len, 8) || put(w, s, len);
}

static int kv_head(mr_gguf_writer *w, const char *key, uint32_t type);

/* Files that carry moerun.checksum.* keys get MR_KEY_CHECKSUM_METADATA,
 * declared just before the first of them (value filled in by begin), so
 * every offset computed before begin stays right. */
static int declare_metadata_checksum(mr_gguf_writer *w)
{
    if (kv_head(w, MR_KEY_CHECKSUM_METADATA, MR_GGUF_UINT64))
        return -1;
    w->meta_pos = w->kv_len;
    return put_int(w, 0, 8);
}

/* Start a KV: key and type; refuses duplicates. */
static int kv_head(mr_gguf_writer *w, const char *key, uint32_t type)
{
    if (!w->meta_pos && !w->begun && !strncmp(key, "moerun.checksum.", 16) &&
        strcmp(key, MR_KEY_CHECKSUM_METADATA) && declare_metadata_checksum(w))
        return -1;
    if (w->begun)
        return fail_sticky(w, MR_EINVAL, "metadata added after the header was written"), -1;
    for (uint64_t i = 0; i < w->n_kv; i++)
        if (!strcmp(w->keys[i], key))
            return fail_sticky(w, MR_EINVAL, "duplicate metadata key"), -1;
    char **nk = realloc(w->keys, sizeof(char *) * (w->n_kv + 1));
    if (!nk || !(nk[w->n_kv] = strdup(key))) {
        if (nk)
            w->keys = nk;
        return fail_sticky(w, MR_ENOMEM, "no memory"), -1;
    }
    w->keys = nk;
    w->n_kv++;
    return put_str(w, key, strlen(key)) || put_int(w, type, 4);
}

mr_status mr_gguf_writer_new(uint32_t alignment, mr_gguf_writer **out, mr_error *err)
{
    *out = NULL;
    if (alignment == 0 || (alignment & (alignment - 1)) || alignment > (1u << 20))
        return mr_fail(err, MR_EINVAL, NULL, "general.alignment", MR_NO_OFFSET,
                       "%u is not a power of two up to 1 MiB", alignment);
    mr_gguf_writer *w = calloc(1, sizeof *w);
    if (!w)
        return mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory");
    w->alignment = alignment;
    w->fd = -1;
    *out = w;
    if (alignment != MR_GGUF_DEFAULT_ALIGNMENT)
        mr_gguf_kv_u32(w, "general.alignment", alignment);
    return MR_OK;
}

void mr_gguf_writer_free(mr_gguf_writer *w)
{
    if (!w)
        return;
    for (uint64_t i = 0; i < w->n_kv; i++)
        free(w->keys[i]);
    for (uint32_t i = 0; i < w->n_t; i++)
        free(w->t[i].name);
    for (uint32_t i = 0; i < w->n_arrs; i++)
        free(w->arrs[i].key);
    free(w->keys);
    free(w->t);
    free(w->arrs);
    free(w->kv);
    free(w);
}

mr_status mr_gguf_kv_u32(mr_gguf_writer *w, const char *key, uint32_t v)
{
    return kv_head(w, key, MR_GGUF_UINT32) || put_int(w, v, 4) ? w->sticky : MR_OK;
}

mr_status mr_gguf_kv_i32(mr_gguf_writer *w, const char *key, int32_t v)
{
    return kv_head(w, key, MR_GGUF_INT32) || put_int(w, (uint32_t)v, 4) ? w->sticky : MR_OK;
}

mr_status mr_gguf_kv_u64(mr_gguf_writer *w, const char *key, uint64_t v)
{
    return kv_head(w, key, MR_GGUF_UINT64) || put_int(w, v, 8) ? w->sticky : MR_OK;
}

mr_status mr_gguf_kv_f32(mr_gguf_writer *w, const char *key, float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    return kv_head(w, key, MR_GGUF_FLOAT32) || put_int(w, u, 4) ? w->sticky : MR_OK;
}

mr_status mr_gguf_kv_bool(mr_gguf_writer *w, const char *key, int v)
{
    return kv_head(w, key, MR_GGUF_BOOL) || put_int(w, v ? 1 : 0, 1) ? w->sticky : MR_OK;
}

mr_status mr_gguf_kv_str(mr_gguf_writer *w, const char *key, const char *v)
{
    return kv_head(w, key, MR_GGUF_STRING) || put_str(w, v, strlen(v)) ? w->sticky : MR_OK;
}

static int arr_head(mr_gguf_writer *w, const char *key, uint32_t et, uint64_t n)
{
    return kv_head(w, key, MR_GGUF_ARRAY) || put_int(w, et, 4) || put_int(w, n, 8);
}

mr_status mr_gguf_kv_arr_str(mr_gguf_writer *w, const char *key, const char *const *v,
                             const uint64_t *lens, uint64_t n)
{
    if (arr_head(w, key, MR_GGUF_STRING, n))
        return w->sticky;
    for (uint64_t i = 0; i < n; i++)
        if (put_str(w, v[i], lens ? lens[i] : strlen(v[i])))
            return w->sticky;
    return MR_OK;
}

mr_status mr_gguf_kv_arr_f32(mr_gguf_writer *w, const char *key, const float *v, uint64_t n)
{
    if (arr_head(w, key, MR_GGUF_FLOAT32, n))
        return w->sticky;
    for (uint64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        if (put_int(w, u, 4))
            return w->sticky;
    }
    return MR_OK;
}

mr_status mr_gguf_kv_arr_i32(mr_gguf_writer *w, const char *key, const int32_t *v, uint64_t n)
{
    if (arr_head(w, key, MR_GGUF_INT32, n))
        return w->sticky;
    for (uint64_t i = 0; i < n; i++)
        if (put_int(w, (uint32_t)v[i], 4))
            return w->sticky;
    return MR_OK;
}

mr_status mr_gguf_kv_arr_u64(mr_gguf_writer *w, const char *key, const uint64_t *v, uint64_t n)
{
    if (arr_head(w, key, MR_GGUF_UINT64, n))
        return w->sticky;
    u64_array *na = realloc(w->arrs, sizeof *na * (w->n_arrs + 1));
    if (!na)
        return fail_sticky(w, MR_ENOMEM, "no memory");
    w->arrs = na;
    na[w->n_arrs].key = strdup(key);
    na[w->n_arrs].pos = w->kv_len;
    na[w->n_arrs].n = n;
    if (!na[w->n_arrs].key)
        return fail_sticky(w, MR_ENOMEM, "no memory");
    w->n_arrs++;
    for (uint64_t i = 0; i < n; i++)
        if (put_int(w, v ? v[i] : 0, 8))
            return w->sticky;
    return MR_OK;
}

mr_status mr_gguf_add_tensor(mr_gguf_writer *w, const char *name, uint32_t type,
                             uint32_t n_dims, const uint64_t *ne, uint32_t *index)
{
    if (w->begun)
        return fail_sticky(w, MR_EINVAL, "tensor added after the header was written");
    if (n_dims < 1 || n_dims > MR_GGUF_MAX_DIMS || !mr_type_known(type))
        return fail_sticky(w, MR_EINVAL, "tensor with a bad rank or type");
    uint64_t rows = 1;
    for (uint32_t d = 1; d < n_dims; d++)
        rows *= ne[d];
    uint64_t row = mr_type_row_bytes(type, ne[0]);
    if (!row)
        return fail_sticky(w, MR_EINVAL, "tensor row is not a whole number of blocks");
    if (w->n_t == w->cap_t) {
        uint32_t cap = w->cap_t ? 2 * w->cap_t : 64;
        wtensor *nt = realloc(w->t, sizeof *nt * cap);
        if (!nt)
            return fail_sticky(w, MR_ENOMEM, "no memory");
        w->t = nt;
        w->cap_t = cap;
    }
    wtensor *t = &w->t[w->n_t];
    memset(t, 0, sizeof *t);
    if (!(t->name = strdup(name)))
        return fail_sticky(w, MR_ENOMEM, "no memory");
    t->n_dims = n_dims;
    t->type = type;
    for (uint32_t d = 0; d < MR_GGUF_MAX_DIMS; d++)
        t->ne[d] = d < n_dims ? ne[d] : 1;
    t->nbytes = row * rows;
    t->rel_offset = w->data_size;
    w->data_size += (t->nbytes + w->alignment - 1) / w->alignment * w->alignment;
    if (index)
        *index = w->n_t;
    w->n_t++;
    return MR_OK;
}

static uint64_t infos_size(const mr_gguf_writer *w)
{
    uint64_t n = 0;
    for (uint32_t i = 0; i < w->n_t; i++)
        n += 8 + strlen(w->t[i].name) + 4 + 8ull * w->t[i].n_dims + 4 + 8;
    return n;
}

uint64_t mr_gguf_writer_data_offset(const mr_gguf_writer *w)
{
    uint64_t end = 24 + w->kv_len + infos_size(w);
    return (end + w->alignment - 1) / w->alignment * w->alignment;
}

uint64_t mr_gguf_writer_tensor_offset(const mr_gguf_writer *w, uint32_t index)
{
    return mr_gguf_writer_data_offset(w) + w->t[index].rel_offset;
}

uint64_t mr_gguf_writer_tensor_nbytes(const mr_gguf_writer *w, uint32_t index)
{
    return w->t[index].nbytes;
}

static mr_status write_all(mr_gguf_writer *w, const void *buf, uint64_t len, uint64_t at,
                           mr_error *err)
{
    const uint8_t *p = buf;
    while (len) {
        ssize_t r = pwrite(w->fd, p, len > (1u << 30) ? (1u << 30) : len, (off_t)at);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return mr_fail(err, MR_EIO, w->path, NULL, at, "write failed: %s",
                           r < 0 ? strerror(errno) : "no progress");
        p += r;
        len -= (uint64_t)r;
        at += (uint64_t)r;
    }
    return MR_OK;
}

/* Order of holes by offset. */
static int cmp_hole(const void *a, const void *b)
{
    const uint64_t *x = a, *y = b;
    return (x[0] > y[0]) - (x[0] < y[0]);
}

uint64_t mr_gguf_hash_with_holes(const uint8_t *buf, uint64_t len, uint64_t *holes, size_t n)
{
    static const uint8_t zeros[4096];
    XXH3_state_t *st = XXH3_createState();
    if (!st)
        return 0;
    qsort(holes, n, 2 * sizeof *holes, cmp_hole);
    XXH3_64bits_reset(st);
    uint64_t at = 0;
    for (size_t i = 0; i <= n; i++) {
        uint64_t h0 = i < n ? holes[2 * i] : len, hl = i < n ? holes[2 * i + 1] : 0;
        if (h0 > len)
            h0 = len;
        if (h0 + hl > len)
            hl = len - h0;
        if (h0 > at) {
            XXH3_64bits_update(st, buf + at, h0 - at);
            at = h0;
        }
        uint64_t z0 = at > h0 ? at : h0;
        for (uint64_t z = z0; z < h0 + hl;) {
            uint64_t k = h0 + hl - z < sizeof zeros ? h0 + hl - z : sizeof zeros;
            XXH3_64bits_update(st, zeros, k);
            z += k;
        }
        if (h0 + hl > at)
            at = h0 + hl;
    }
    uint64_t h = XXH3_64bits_digest(st);
    XXH3_freeState(st);
    return h;
}

/* Hash header + kv (+ infos and padding) with the late values as zeros,
 * and store it at meta_pos. */
static void seal_metadata(mr_gguf_writer *w, const uint8_t head[24], uint64_t meta_pos)
{
    uint64_t len = 24 + w->kv_len;
    uint8_t *buf = malloc(len);
    uint64_t *holes = malloc(sizeof *holes * 2 * (w->n_arrs + 1));
    size_t n = 0;
    if (!buf || !holes) {
        free(buf);
        free(holes);
        fail_sticky(w, MR_ENOMEM, "no memory for the metadata checksum");
        return;
    }
    memcpy(buf, head, 24);
    memcpy(buf + 24, w->kv, w->kv_len);
    for (uint32_t a = 0; a < w->n_arrs; a++)
        if (mr_key_outside_metadata_hash(w->arrs[a].key)) {
            holes[2 * n] = 24 + w->arrs[a].pos;
            holes[2 * n + 1] = 8 * w->arrs[a].n;
            n++;
        }
    holes[2 * n] = 24 + meta_pos;
    holes[2 * n + 1] = 8;
    n++;
    le(w->kv + meta_pos, mr_gguf_hash_with_holes(buf, len, holes, n), 8);
    free(buf);
    free(holes);
}

mr_status mr_gguf_writer_begin(mr_gguf_writer *w, int fd, const char *path, mr_error *err)
{
    if (w->sticky)
        return mr_fail(err, w->sticky, path, NULL, MR_NO_OFFSET, "%s", w->sticky_msg);
    uint64_t meta_pos = w->meta_pos;
    w->fd = fd;
    w->path = path;
    uint8_t head[24];
    memcpy(head, "GGUF", 4);
    le(head + 4, 3, 4);
    le(head + 8, w->n_t, 8);
    le(head + 16, w->n_kv, 8);
    /* tensor infos go after the KVs in the same buffer */
    uint64_t kv_len = w->kv_len;
    for (uint32_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        if (put_str(w, t->name, strlen(t->name)) || put_int(w, t->n_dims, 4))
            break;
        for (uint32_t d = 0; d < t->n_dims; d++)
            put_int(w, t->ne[d], 8);
        put_int(w, t->type, 4);
        put_int(w, t->rel_offset, 8);
    }
    uint64_t end = 24 + w->kv_len;
    uint64_t pad = (w->alignment - end % w->alignment) % w->alignment;
    put(w, NULL, pad);
    if (meta_pos && !w->sticky)
        seal_metadata(w, head, meta_pos);
    if (w->sticky)
        return mr_fail(err, w->sticky, path, NULL, MR_NO_OFFSET, "%s", w->sticky_msg);
    mr_status s;
    if ((s = write_all(w, head, 24, 0, err)) || (s = write_all(w, w->kv, w->kv_len, 24, err)))
        return s;
    w->kv_file_pos = 24;
    w->data_offset = 24 + w->kv_len;
    w->kv_len = kv_len; /* patch offsets stay relative to the KV block */
    w->file_pos = w->data_offset;
    w->begun = 1;
    w->cur = 0;
    w->cur_done = 0;
    return MR_OK;
}

mr_status mr_gguf_writer_data(mr_gguf_writer *w, const void *buf, uint64_t len, mr_error *err)
{
    static const uint8_t zeros[4096];
    mr_status s;
    if (!w->begun)
        return mr_fail(err, MR_EINVAL, w->path, NULL, MR_NO_OFFSET, "data before the header");
    while (len) {
        if (w->cur >= w->n_t)
            return mr_fail(err, MR_EINVAL, w->path, NULL, w->file_pos,
                           "more data than the declared tensors hold");
        const wtensor *t = &w->t[w->cur];
        uint64_t n = t->nbytes - w->cur_done < len ? t->nbytes - w->cur_done : len;
        if ((s = write_all(w, buf, n, w->file_pos, err)))
            return s;
        buf = (const uint8_t *)buf + n;
        len -= n;
        w->file_pos += n;
        w->cur_done += n;
        if (w->cur_done == t->nbytes) {
            uint64_t pad = (w->alignment - t->nbytes % w->alignment) % w->alignment;
            /* pad the last tensor too: readers may read whole aligned blocks */
            while (pad) {
                uint64_t k = pad < sizeof zeros ? pad : sizeof zeros;
                if ((s = write_all(w, zeros, k, w->file_pos, err)))
                    return s;
                w->file_pos += k;
                pad -= k;
            }
            w->cur++;
            w->cur_done = 0;
        }
    }
    return MR_OK;
}

/* Write part of a tensor at its place (see gguf_write.h). */
mr_status mr_gguf_writer_pwrite(mr_gguf_writer *w, uint32_t index, uint64_t at, const void *buf,
                                uint64_t len, mr_error *err)
{
    if (!w->begun || index >= w->n_t || at > w->t[index].nbytes ||
        len > w->t[index].nbytes - at || w->t[index].pwritten + len > w->t[index].nbytes)
        return mr_fail(err, MR_EINVAL, w->path, index < w->n_t ? w->t[index].name : NULL, at,
                       "positional write outside the tensor or before the header");
    mr_status s = write_all(w, buf, len, w->data_offset + w->t[index].rel_offset + at, err);
    if (!s)
        w->t[index].pwritten += len;
    return s;
}

/* Bytes of the finished file (see gguf_write.h). */
uint64_t mr_gguf_writer_file_size(const mr_gguf_writer *w)
{
    return mr_gguf_writer_data_offset(w) + w->data_size;
}

mr_status mr_gguf_writer_patch_u64(mr_gguf_writer *w, const char *key, uint64_t i,
                                   uint64_t v, mr_error *err)
{
    for (uint32_t a = 0; a < w->n_arrs; a++) {
        if (strcmp(w->arrs[a].key, key))
            continue;
        if (i >= w->arrs[a].n || !w->begun)
            break;
        uint8_t b[8];
        le(b, v, 8);
        return write_all(w, b, 8, w->kv_file_pos + w->arrs[a].pos + 8 * i, err);
    }
    return mr_fail(err, MR_EINVAL, w->path, key, MR_NO_OFFSET,
                   "no such u64 array, index %llu out of range, or header not written",
                   (unsigned long long)i);
}

mr_status mr_gguf_writer_finish(mr_gguf_writer *w, mr_error *err)
{
    uint32_t done = 0;
    for (uint32_t i = 0; i < w->n_t; i++)
        done += i < w->cur || w->t[i].pwritten == w->t[i].nbytes;
    if (!w->begun || done != w->n_t)
        return mr_fail(err, MR_EINVAL, w->path, NULL, MR_NO_OFFSET,
                       "only %u of %u tensors were written", done, w->n_t);
    return MR_OK;
}
