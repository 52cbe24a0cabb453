/* pack.h - copies of weight tensors in a kernel table's repacked layout
 * (simd/kernels.h: repack), made at load on a pool of threads. */
#ifndef MOERUN_PACK_H
#define MOERUN_PACK_H

#include <stddef.h>
#include <stdint.h>

#include "../simd/kernels.h"
#include "model.h"
#include "threadpool.h"

/* Copy n_slices stacked slices (src_slice bytes apart) of rows x n of
 * type t into a new anonymous mapping of n_slices * *dst_slice bytes,
 * then give the file's pages of the source back (when the model is
 * mapped).  pool may be NULL (this thread).  Returns NULL without memory. */
uint8_t *mr_pack_slices(const mr_model *m, const mr_kernels *k, mr_pool *pool, uint32_t t,
                        const uint8_t *src, size_t src_slice, size_t src_row_bytes, int64_t rows,
                        int64_t n, uint32_t n_slices, size_t *dst_slice);
void mr_pack_free(uint8_t *p, size_t bytes);

/* Bytes the packed copies of m's matrices would take (experts and the
 * resident ones mr_model_pack takes), for k. */
uint64_t mr_pack_bytes_needed(const mr_model *m, const mr_kernels *k);

/* Repack the model's resident matrices (attention, shared and dense FFNs,
 * the output unless tied to the embeddings) that k can pack: each such
 * tensor's packed/packed_gemm are set and nn_matmul reads the copy while
 * its context computes with that gemm.  *bytes: what was copied. */
mr_status mr_model_pack(mr_model *m, const mr_kernels *k, unsigned threads, uint64_t *bytes,
                        mr_error *err);

#endif
