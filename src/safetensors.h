/* safetensors.h - reader of Hugging Face safetensors files and of a
 * checkpoint directory made of one file or of shards named by
 * model.safetensors.index.json.
 *
 * A file is: u64 LE header length N, N bytes of a JSON object (json-c
 * parses it), then the data.  Every entry is distrusted: the header must fit
 * in the file and under 100 MB, every dtype must be a safetensors dtype,
 * every shape dimension a non-negative integer, data_offsets [begin, end]
 * with begin <= end <= data size, end - begin == product(shape) * dtype
 * size (overflow-checked), and no two tensors may overlap.  Gaps between
 * tensors are allowed.  A rejection is MR_EFORMAT naming the file and the
 * field (the tensor name and its key).
 *
 * Shapes are kept in safetensors (row-major) order: shape[0] is the
 * outermost dimension, so a [out, in] matrix has rows of shape[1] values.
 */
#ifndef MOERUN_SAFETENSORS_H
#define MOERUN_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define MR_ST_MAX_DIMS 8
#define MR_ST_MAX_HEADER 100000000u /* as the safetensors library */

/* Every dtype safetensors defines; F32, F16, BF16 and (with its block
 * scales, quantization_config fp8) F8_E4M3 are converted. */
typedef enum {
    MR_ST_BOOL, MR_ST_U8, MR_ST_I8, MR_ST_F8_E5M2, MR_ST_F8_E4M3, MR_ST_I16,
    MR_ST_U16, MR_ST_F16, MR_ST_BF16, MR_ST_I32, MR_ST_U32, MR_ST_F32,
    MR_ST_F64, MR_ST_I64, MR_ST_U64, MR_ST_DTYPE_COUNT
} mr_st_dtype;

typedef struct {
    char *name;
    mr_st_dtype dtype;
    uint32_t n_dims;                /* 0 for a scalar */
    uint64_t shape[MR_ST_MAX_DIMS]; /* row-major order; unused = 1 */
    uint64_t offset;                /* absolute file offset of the data */
    uint64_t nbytes;
} mr_st_tensor;

typedef struct {
    char *path;
    int fd;              /* -1 for an in-memory image */
    uint64_t file_size;
    uint64_t data_start; /* 8 + header length */
    uint32_t n_tensors;
    mr_st_tensor *tensors; /* sorted by name */
} mr_st_file;

/* Open path and validate its header (the data is not read). */
mr_status mr_st_open(const char *path, mr_st_file **out, mr_error *err);
/* Validate an image in memory (header + data); name is used in messages.
 * The result's fd is -1 and it keeps no pointer into buf. */
mr_status mr_st_open_mem(const void *buf, size_t len, const char *name, mr_st_file **out,
                         mr_error *err);
void mr_st_close(mr_st_file *f);

/* The tensor of that name, or NULL. */
const mr_st_tensor *mr_st_find(const mr_st_file *f, const char *name);

/* "BF16", never NULL; bytes of one element (0 for an unknown id). */
const char *mr_st_dtype_name(mr_st_dtype d);
size_t mr_st_dtype_size(mr_st_dtype d);
/* Number of elements of a tensor (valid tensors never overflow). */
uint64_t mr_st_nelements(const mr_st_tensor *t);

/* Read len bytes at offset of an opened file; a short read is MR_EIO. */
mr_status mr_st_pread(const mr_st_file *f, uint64_t offset, void *buf, size_t len,
                      mr_error *err);

/* Widen n values of a float dtype (F32, F16, BF16, F8_E4M3 without its
 * block scale) to f32; returns -1 for any other dtype. */
int mr_st_to_f32(mr_st_dtype d, const void *src, float *dst, size_t n);

/* A checkpoint directory: model.safetensors.index.json naming shards, or a
 * single model.safetensors. */
typedef struct {
    char *dir;
    char *index_path;     /* NULL when there is no index */
    uint32_t n_shards;
    mr_st_file **shards;  /* sorted by file name */
    char **shard_names;   /* base names, same order */
    uint32_t n_tensors;   /* tensors the index names (or all of the one file) */
    const mr_st_tensor **tensors; /* sorted by name */
    uint32_t *tensor_shard;
} mr_st_checkpoint;

/* Open a checkpoint.  A shard the index names that cannot be opened, and a
 * tensor the index places in a shard that lacks it, are MR_EFORMAT naming
 * the index and the tensor; a read error is MR_EIO. */
mr_status mr_st_checkpoint_open(const char *dir, mr_st_checkpoint **out, mr_error *err);
void mr_st_checkpoint_close(mr_st_checkpoint *c);
/* A tensor by name (and its shard index), or NULL. */
const mr_st_tensor *mr_st_checkpoint_find(const mr_st_checkpoint *c, const char *name,
                                          uint32_t *shard);

#endif
