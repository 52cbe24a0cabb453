/* gguf_builder.h - test helper: write GGUF images, and map an existing one.
 *
 * Two independent halves, both for tests only:
 *
 *  - A builder that serialises a GGUF image into a growable malloc'd buffer:
 *    header (magic, version, counts - each overridable to write bad ones),
 *    key-value pairs of every value type including arrays and nested arrays
 *    (GGUF spec layout: an element of an array of arrays is itself
 *    "u32 elem_type, u64 count, elements", with no per-element type tag),
 *    tensor infos, alignment padding and the data section.  Offsets are
 *    placed automatically (each tensor aligned, as llama.cpp does) unless a
 *    test forces one.
 *
 *  - A "structural map": a small trusted walker, written without the
 *    library, that parses a good file and records the byte range of every
 *    field (header, each KV's key length/key/type/value, each tensor-info
 *    field, padding, data) with the name the reader uses for it in its error
 *    messages, so a test can edit a value in place or truncate a file at
 *    every structural boundary.
 *
 * Every function reports allocation failure (it never aborts); integers
 * are written little-endian whatever the host.
 */
#ifndef MOERUN_TESTS_GGUF_BUILDER_H
#define MOERUN_TESTS_GGUF_BUILDER_H

#include <stddef.h>
#include <stdint.h>

/* Value types of the GGUF spec (the same numbers as mr_gguf_vtype). */
enum {
    GB_UINT8 = 0, GB_INT8 = 1, GB_UINT16 = 2, GB_INT16 = 3, GB_UINT32 = 4,
    GB_INT32 = 5, GB_FLOAT32 = 6, GB_BOOL = 7, GB_STRING = 8, GB_ARRAY = 9,
    GB_UINT64 = 10, GB_INT64 = 11, GB_FLOAT64 = 12, GB_VTYPE_COUNT = 13
};

/* ggml tensor types the helper knows the geometry of. */
enum { GB_F32 = 0, GB_F16 = 1, GB_Q4_0 = 2, GB_Q8_0 = 8 };

/* ------------------------------------------------------------ raw bytes */

/* A growable byte buffer.  After an allocation failure, failed is set and
 * every later append is ignored, so callers may check once at the end. */
typedef struct {
    uint8_t *data;
    size_t len, cap;
    int failed;
} gb_bytes;

void gb_bytes_free(gb_bytes *b);
/* Append n bytes (p may be NULL: append zeros).  0 on success, -1 on
 * allocation failure. */
int gb_put(gb_bytes *b, const void *p, size_t n);
int gb_put_u8(gb_bytes *b, uint8_t v);
int gb_put_u16(gb_bytes *b, uint16_t v);
int gb_put_u32(gb_bytes *b, uint32_t v);
int gb_put_u64(gb_bytes *b, uint64_t v);
int gb_put_f32(gb_bytes *b, float v);
int gb_put_f64(gb_bytes *b, double v);
/* A GGUF string: u64 length then the bytes (no NUL). */
int gb_put_str(gb_bytes *b, const char *s);
int gb_put_strn(gb_bytes *b, const void *s, uint64_t n);
/* The head of an array value: u32 element type, u64 count. */
int gb_put_arr_head(gb_bytes *b, uint32_t elem_type, uint64_t n);

/* Little-endian load/store on raw memory (for in-place edits). */
uint32_t gb_rd_u32(const uint8_t *p);
uint64_t gb_rd_u64(const uint8_t *p);
void gb_wr_u32(uint8_t *p, uint32_t v);
void gb_wr_u64(uint8_t *p, uint64_t v);

/* Bytes of one scalar element of a value type; 0 for string/array/unknown. */
size_t gb_vtype_size(uint32_t t);
/* Bytes of a tensor of a known ggml type; 0 for an unknown type, a row not
 * a multiple of the block size, or a size that overflows. */
uint64_t gb_tensor_nbytes(uint32_t type, uint32_t n_dims, const uint64_t *ne);

/* ------------------------------------------------------------ builder */

typedef struct {
    char *key;
    uint32_t type;
    gb_bytes val; /* the serialised value, without the type tag */
} gb_kv;

typedef struct {
    char *name;
    uint32_t n_dims;
    uint64_t ne[4];
    uint32_t type;
    const uint8_t *data; /* borrowed or == owned; NULL: zeros */
    uint8_t *owned;
    uint64_t nbytes;     /* bytes placed in the data section */
    int fixed_offset;    /* offset forced by the test */
    uint64_t offset;     /* relative to the data section */
} gb_tensor;

typedef struct {
    uint32_t magic;      /* 0x46554747 ("GGUF" read little-endian) */
    uint32_t version;    /* 3 */
    uint32_t alignment;  /* used to place data: 32 (general.alignment is a
                          * separate KV the test adds or not) */
    int force_n_tensors, force_n_kv;     /* write these counts instead */
    uint64_t n_tensors_value, n_kv_value;
    gb_kv *kvs;
    size_t n_kvs, cap_kvs;
    gb_tensor *tensors;
    size_t n_tensors, cap_tensors;
    int failed; /* an allocation failed somewhere */
} gguf_builder;

/* Start an empty v3 image (alignment 32).  NULL if out of memory. */
gguf_builder *gb_new(void);
void gb_free(gguf_builder *b);

/* Index of a key or tensor, or -1. */
long gb_kv_index(const gguf_builder *b, const char *key);
long gb_tensor_index(const gguf_builder *b, const char *name);

/* Start a KV and return the buffer its value is written into (with the
 * gb_put_* functions).  An existing key is replaced in place (its value
 * emptied); with append != 0 a new entry is always added, duplicates
 * included.  NULL if out of memory. */
gb_bytes *gb_kv_begin(gguf_builder *b, const char *key, uint32_t type, int append);
/* Remove a key (no-op if absent). */
void gb_kv_remove(gguf_builder *b, const char *key);

/* Typed setters (replace an existing key).  0 or -1. */
int gb_kv_u8(gguf_builder *b, const char *key, uint8_t v);
int gb_kv_i8(gguf_builder *b, const char *key, int8_t v);
int gb_kv_u16(gguf_builder *b, const char *key, uint16_t v);
int gb_kv_i16(gguf_builder *b, const char *key, int16_t v);
int gb_kv_u32(gguf_builder *b, const char *key, uint32_t v);
int gb_kv_i32(gguf_builder *b, const char *key, int32_t v);
int gb_kv_u64(gguf_builder *b, const char *key, uint64_t v);
int gb_kv_i64(gguf_builder *b, const char *key, int64_t v);
int gb_kv_f32(gguf_builder *b, const char *key, float v);
int gb_kv_f64(gguf_builder *b, const char *key, double v);
int gb_kv_bool(gguf_builder *b, const char *key, int v);
int gb_kv_str(gguf_builder *b, const char *key, const char *v);
/* A flat array.  For scalar element types, elems holds n host values of
 * gb_vtype_size(elem_type) bytes each; for GB_STRING it is a
 * const char *const[n]. */
int gb_kv_arr(gguf_builder *b, const char *key, uint32_t elem_type, uint64_t n,
              const void *elems);
/* An array nested `depth` levels (depth 1 = a flat array): each level holds
 * one array, the innermost holds n_leaf uint32 values 0, 1, 2, ... */
int gb_kv_nested(gguf_builder *b, const char *key, unsigned depth, uint64_t n_leaf);

/* Add a tensor; data (nbytes bytes, or NULL for zeros) is copied.  nbytes is
 * computed from the type when UINT64_MAX is passed.  0 or -1. */
int gb_tensor_add(gguf_builder *b, const char *name, uint32_t n_dims, const uint64_t *ne,
                  uint32_t type, const void *data, uint64_t nbytes);
/* The same, but data is borrowed: it must outlive gb_serialise. */
int gb_tensor_add_ref(gguf_builder *b, const char *name, uint32_t n_dims,
                      const uint64_t *ne, uint32_t type, const void *data,
                      uint64_t nbytes);
/* Force a tensor's stored offset (relative to the data section). */
int gb_tensor_set_offset(gguf_builder *b, const char *name, uint64_t offset);
/* Remove a tensor (no-op if absent). */
void gb_tensor_remove(gguf_builder *b, const char *name);

/* Serialise the image into *out (which is reset first).  Tensors without a
 * forced offset are placed one after the other, each aligned; the data of a
 * tensor whose forced range ends beyond 256 MiB is not written.  The file
 * ends on an alignment boundary when it has tensors.  0 or -1. */
int gb_serialise(const gguf_builder *b, gb_bytes *out);

/* ------------------------------------------------------------ model recipes */

typedef struct {
    uint32_t n_layer, n_expert, n_expert_used; /* n_expert 0: dense llama */
    uint32_t n_embd, n_ff, n_head, n_head_kv, n_vocab;
    uint32_t weight_type; /* GB_F32, GB_Q8_0 or GB_Q4_0 for matrices */
    int with_vocab;       /* add tokenizer.ggml.* (tokens, scores, types) */
    int tied_output;      /* omit output.weight */
    uint32_t seed;        /* for the deterministic weights */
} gb_llama_cfg;

/* A small valid config: 1 layer, 2 experts (1 used), n_embd 32, n_ff 32,
 * 4 heads, 2 KV heads, vocab 32, Q8_0 matrices, with vocabulary. */
gb_llama_cfg gb_llama_cfg_tiny(void);

/* Add the KVs and tensors of a llama / Mixtral model described by cfg
 * (general.architecture "llama").  0 or -1. */
int gb_add_llama(gguf_builder *b, const gb_llama_cfg *cfg);
/* One KV of every value type ("t.u8" ... "t.f64", "t.str", "t.empty_str")
 * and a 3-element array of every element type ("a.u8" ... "a.str"), plus
 * empty arrays "a.empty" and "a.empty_str".  0 or -1. */
int gb_add_all_types(gguf_builder *b);
/* Add a SentencePiece-style vocabulary of n tokens ("<unk>", "<s>", "</s>",
 * then "t3", "t4", ...) with scores and token types.  0 or -1. */
int gb_add_vocab(gguf_builder *b, uint32_t n);

/* ------------------------------------------------------------ structural map */

typedef struct {
    uint64_t off, end; /* [off, end) */
    char label[192];   /* the field name the reader uses ("kv[0].key") */
} gb_field;

typedef struct {
    char *key;
    uint32_t type;
    uint64_t key_len_off, key_off, type_off, value_off, value_end;
    uint32_t elem_type; /* arrays only */
    uint64_t arr_n;     /* arrays only */
} gb_kv_loc;

typedef struct {
    char *name;
    uint32_t n_dims, type;
    uint64_t ne[4];
    uint64_t name_len_off, name_off, n_dims_off, ne_off[4], type_off, offset_off, info_end;
    uint64_t rel_offset, nbytes;
} gb_tensor_loc;

typedef struct {
    uint32_t version;
    uint64_t n_tensors, n_kv;
    uint64_t version_off, n_tensors_off, n_kv_off; /* 4, 8, 16 */
    gb_kv_loc *kvs;
    gb_tensor_loc *tensors;
    uint32_t alignment;
    uint64_t infos_end;  /* end of the last tensor info */
    uint64_t data_start; /* aligned start of the data section */
    uint64_t data_end;   /* absolute end of the last tensor's data */
    uint64_t file_size;
    gb_field *fields;    /* in file order */
    size_t n_fields, cap_fields;
} gb_map;

/* Walk a well-formed image and fill *m.  0 on success; -1 with a reason in
 * why (if not NULL) when the image is malformed or memory runs out. */
int gb_map_build(const uint8_t *buf, size_t len, gb_map *m, char *why, size_t why_len);
void gb_map_free(gb_map *m);
const gb_kv_loc *gb_map_kv(const gb_map *m, const char *key);
const gb_tensor_loc *gb_map_tensor(const gb_map *m, const char *name);
/* Sorted, distinct offsets of every structural boundary in [0, file_size]
 * (field starts and ends, the length/bytes split of strings, the head and
 * first/last element of arrays).  *out is malloc'd; returns the count, or
 * 0 with *out NULL if out of memory. */
size_t gb_map_boundaries(const gb_map *m, uint64_t **out);
/* Label of the field holding byte `off` (a cut at off reads it first);
 * "data section" for the padding, "' offset" inside the data. */
const char *gb_map_label_at(const gb_map *m, uint64_t off);

/* Load an image into a builder: every KV (value bytes copied) and every
 * tensor (data borrowed from buf), same version and alignment, so that
 * gb_serialise reproduces a llama.cpp file and a test can change sizes.
 * 0 or -1. */
int gb_import(gguf_builder *b, const uint8_t *buf, const gb_map *m);

#endif
