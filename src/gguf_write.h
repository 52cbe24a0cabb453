/* gguf_write.h - streaming GGUF v3 writer.
 *
 * Declare every metadata key and every tensor first, then write the header
 * once and stream each tensor's bytes in declaration order: memory stays
 * bounded by what the caller holds.  Arrays of u64 can be declared with
 * placeholder values and patched after the data is written (checksums that
 * are only known once the bytes have been produced).
 */
#ifndef MOERUN_GGUF_WRITE_H
#define MOERUN_GGUF_WRITE_H

#include <stdint.h>
#include <stdio.h>

#include "gguf.h"
#include "status.h"

typedef struct mr_gguf_writer mr_gguf_writer;

/* alignment: power of two (32 is GGUF's default; moerun writes 4096). */
mr_status mr_gguf_writer_new(uint32_t alignment, mr_gguf_writer **out, mr_error *err);
void mr_gguf_writer_free(mr_gguf_writer *w);

/* Metadata, in the order it will appear.  Strings are copied. */
mr_status mr_gguf_kv_u32(mr_gguf_writer *w, const char *key, uint32_t v);
mr_status mr_gguf_kv_i32(mr_gguf_writer *w, const char *key, int32_t v);
mr_status mr_gguf_kv_u64(mr_gguf_writer *w, const char *key, uint64_t v);
mr_status mr_gguf_kv_f32(mr_gguf_writer *w, const char *key, float v);
mr_status mr_gguf_kv_bool(mr_gguf_writer *w, const char *key, int v);
mr_status mr_gguf_kv_str(mr_gguf_writer *w, const char *key, const char *v);
/* n strings of the given lengths (lens NULL: NUL-terminated). */
mr_status mr_gguf_kv_arr_str(mr_gguf_writer *w, const char *key, const char *const *v,
                             const uint64_t *lens, uint64_t n);
mr_status mr_gguf_kv_arr_f32(mr_gguf_writer *w, const char *key, const float *v, uint64_t n);
mr_status mr_gguf_kv_arr_i32(mr_gguf_writer *w, const char *key, const int32_t *v, uint64_t n);
/* v may be NULL: zeros, to be patched with mr_gguf_writer_patch_u64. */
mr_status mr_gguf_kv_arr_u64(mr_gguf_writer *w, const char *key, const uint64_t *v, uint64_t n);

/* Declare a tensor (ggml order: ne[0] = row length).  Returns its index. */
mr_status mr_gguf_add_tensor(mr_gguf_writer *w, const char *name, uint32_t type,
                             uint32_t n_dims, const uint64_t *ne, uint32_t *index);

/* Bytes of the header + metadata + tensor infos + padding (valid once every
 * key and tensor is declared); also the data section's offset. */
uint64_t mr_gguf_writer_data_offset(const mr_gguf_writer *w);
/* Absolute file offset and size of a declared tensor's data. */
uint64_t mr_gguf_writer_tensor_offset(const mr_gguf_writer *w, uint32_t index);
uint64_t mr_gguf_writer_tensor_nbytes(const mr_gguf_writer *w, uint32_t index);

/* Write header, metadata and tensor infos to fd (at offset 0). */
mr_status mr_gguf_writer_begin(mr_gguf_writer *w, int fd, const char *path, mr_error *err);
/* Append len bytes of the current tensor's data; tensors are written in
 * declaration order and each must receive exactly its byte size. */
mr_status mr_gguf_writer_data(mr_gguf_writer *w, const void *buf, uint64_t len, mr_error *err);
/* Positional alternative to mr_gguf_writer_data, for writers that produce
 * tensors out of order: after begin, write len bytes at byte offset at of
 * declared tensor index (the caller extends the file to
 * mr_gguf_writer_file_size so padding reads as zeros). */
mr_status mr_gguf_writer_pwrite(mr_gguf_writer *w, uint32_t index, uint64_t at, const void *buf,
                                uint64_t len, mr_error *err);
/* Size of the whole file: data offset + every tensor, each padded. */
uint64_t mr_gguf_writer_file_size(const mr_gguf_writer *w);

/* Overwrite element i of a u64 array declared earlier (after begin). */
mr_status mr_gguf_writer_patch_u64(mr_gguf_writer *w, const char *key, uint64_t i,
                                   uint64_t v, mr_error *err);
/* Check every tensor was written in full (by either way of writing). */
/* XXH3-64 of buf[0, len) with the n byte ranges holes[2i] (offset),
 * holes[2i+1] (length) read as zeros (MR_KEY_CHECKSUM_METADATA). */
uint64_t mr_gguf_hash_with_holes(const uint8_t *buf, uint64_t len, uint64_t *holes, size_t n);

mr_status mr_gguf_writer_finish(mr_gguf_writer *w, mr_error *err);

#endif
