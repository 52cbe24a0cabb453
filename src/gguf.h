/* gguf.h - GGUF v2/v3 reader: header, metadata, tensor infos, mapped data.
 *
 * The file is distrusted: every count, length and offset is bounded by the
 * file size before use, dimension products are overflow-checked, tensor data
 * must be aligned, inside the file and non-overlapping, and every tensor type
 * must be a ggml type.  A rejection returns MR_EFORMAT (or MR_EUNSUPPORTED)
 * with a message naming the file, the field and the byte offset.
 *
 * Strings inside values point into the mapped file and are NOT
 * NUL-terminated; keys and tensor names are NUL-terminated copies.
 */
#ifndef MOERUN_GGUF_H
#define MOERUN_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define MR_GGUF_MAX_DIMS 4
#define MR_GGUF_DEFAULT_ALIGNMENT 32
#define MR_GGUF_MAX_DEPTH 8 /* nesting of arrays inside arrays */

typedef enum {
    MR_GGUF_UINT8 = 0,
    MR_GGUF_INT8 = 1,
    MR_GGUF_UINT16 = 2,
    MR_GGUF_INT16 = 3,
    MR_GGUF_UINT32 = 4,
    MR_GGUF_INT32 = 5,
    MR_GGUF_FLOAT32 = 6,
    MR_GGUF_BOOL = 7,
    MR_GGUF_STRING = 8,
    MR_GGUF_ARRAY = 9,
    MR_GGUF_UINT64 = 10,
    MR_GGUF_INT64 = 11,
    MR_GGUF_FLOAT64 = 12,
    MR_GGUF_VTYPE_COUNT
} mr_gguf_vtype;

typedef struct {
    const char *ptr; /* into the mapping; not NUL-terminated */
    uint64_t len;
} mr_str;

typedef struct mr_gguf_value mr_gguf_value;
struct mr_gguf_value {
    uint32_t type;   /* mr_gguf_vtype */
    uint64_t offset; /* file offset of the value's first byte */
    union {
        uint64_t u64;  /* unsigned integer types, widened */
        int64_t i64;   /* signed integer types, widened */
        double f64;    /* FLOAT32 / FLOAT64, widened */
        int b;         /* BOOL (0 or 1) */
        mr_str str;    /* STRING */
        struct {
            uint32_t elem_type;
            uint64_t n;
            const uint8_t *data;  /* scalar elements: raw little-endian */
            mr_str *strs;         /* STRING elements (owned) */
            mr_gguf_value *items; /* ARRAY elements (owned) */
        } arr;
    } v;
};

typedef struct {
    char *key; /* NUL-terminated copy */
    uint64_t key_len;
    uint64_t offset; /* file offset of the key */
    mr_gguf_value val;
} mr_gguf_kv;

typedef struct {
    char *name;      /* NUL-terminated copy */
    uint32_t n_dims; /* 1..4 */
    uint64_t ne[MR_GGUF_MAX_DIMS]; /* ggml order: ne[0] = row length; unused = 1 */
    uint32_t type;   /* mr_type */
    uint64_t rel_offset;  /* offset inside the data section, as stored */
    uint64_t file_offset; /* absolute offset of the data in the file */
    uint64_t nbytes;
    uint64_t info_offset; /* file offset of this tensor info */
    uint64_t offset_field;/* file offset of its data-offset field */
    const uint8_t *data;  /* into the mapping */
} mr_gguf_tensor;

typedef struct mr_gguf {
    char *path;
    uint32_t version;
    uint64_t file_size;
    uint32_t alignment;
    uint64_t data_offset; /* start of the data section */
    uint64_t n_kv;
    mr_gguf_kv *kv;
    uint64_t n_tensors;
    mr_gguf_tensor *tensors;
    const uint8_t *base; /* the whole file */
    int mapped;          /* base is an mmap we must unmap */
    int fd;              /* open file descriptor, or -1 */
} mr_gguf;

/* Open, map and validate a GGUF file.  *out is NULL on failure. */
mr_status mr_gguf_open(const char *path, mr_gguf **out, mr_error *err);

/* Parse and validate a GGUF image already in memory (not copied: buf must
 * outlive the result).  name is used in messages. */
mr_status mr_gguf_open_mem(const void *buf, size_t len, const char *name,
                           mr_gguf **out, mr_error *err);

void mr_gguf_close(mr_gguf *g);

/* Lookups: NULL when absent. */
const mr_gguf_kv *mr_gguf_find(const mr_gguf *g, const char *key);
const mr_gguf_tensor *mr_gguf_tensor_find(const mr_gguf *g, const char *name);

/* Typed getters.  A missing key returns MR_EFORMAT naming the key, unless
 * the getter is an _opt variant, which leaves *out untouched and returns
 * MR_OK.  Integer getters accept any integer type whose value fits. */
mr_status mr_gguf_get_u32(const mr_gguf *g, const char *key, uint32_t *out, mr_error *err);
mr_status mr_gguf_get_u32_opt(const mr_gguf *g, const char *key, uint32_t *out, mr_error *err);
mr_status mr_gguf_get_f32_opt(const mr_gguf *g, const char *key, float *out, mr_error *err);
mr_status mr_gguf_get_bool_opt(const mr_gguf *g, const char *key, int *out, mr_error *err);
mr_status mr_gguf_get_str(const mr_gguf *g, const char *key, mr_str *out, mr_error *err);
/* An array with elements of the given type and, if n != 0, exactly n of them. */
mr_status mr_gguf_get_arr(const mr_gguf *g, const char *key, uint32_t elem_type,
                          uint64_t n, const mr_gguf_value **out, mr_error *err);

/* Element i of a numeric array, widened (caller checked the type). */
float mr_gguf_arr_f32(const mr_gguf_value *arr, uint64_t i);
int64_t mr_gguf_arr_int(const mr_gguf_value *arr, uint64_t i);
/* Element i of a UINT64 (or any unsigned integer) array, unchanged: values
 * above INT64_MAX (checksums) stay exact.  Signed types are widened. */
uint64_t mr_gguf_arr_u64(const mr_gguf_value *arr, uint64_t i);

/* Name of a value type ("uint32"), never NULL. */
const char *mr_gguf_vtype_name(uint32_t t);

/* Bytes of one scalar element of a value type; 0 for STRING/ARRAY/unknown. */
size_t mr_gguf_vtype_size(uint32_t t);

/* Total number of elements of a tensor. */
uint64_t mr_gguf_tensor_nelements(const mr_gguf_tensor *t);

#endif
