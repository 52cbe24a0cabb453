/* kernels.h - the kernel table, filled once at start-up.
 *
 * It starts as the scalar reference table (quant/) and each ISA overrides
 * the entries it implements (the dav1d init-ladder habit), so an op without
 * a SIMD version keeps its reference.  The ISA is chosen from CPUID+XGETBV
 * (getauxval on arm64) and can be forced lower with
 * MOERUN_ISA=scalar|avx2|avx2vnni|avx512|neon.  Kernels know nothing of models: they
 * take pointers, lengths and strides, and a range of rows, never a thread.
 *
 * Two tables exist per ISA:
 * - fast (default): activations are quantized once per row to the weight
 *   type's act_type (Q8_0 for Q4_0/Q8_0, as llama.cpp does) and dotted in
 *   integers;
 * - exact: activations stay f32 and weights are dequantised exactly, the
 *   path whose logits match a float64 reference to ~1e-5.
 */
#ifndef MOERUN_SIMD_KERNELS_H
#define MOERUN_SIMD_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "../quant/types.h"

typedef enum {
    MR_ISA_SCALAR = 0,
    MR_ISA_AVX2 = 1,
    MR_ISA_AVX2VNNI = 2, /* AVX2 + AVX-VNNI (Intel since Alder Lake, Zen 5): the AVX2 set
                          * built again with vpdpbusd/vpdpwssd, the same bits */
    MR_ISA_AVX512 = 3,
    MR_ISA_NEON = 4,
    MR_ISA_COUNT
} mr_isa;

/* Dot of one weight row with one prepared activation row of n elements. */
typedef float (*mr_vec_dot_fn)(const void *w, const void *act, int64_t n);

/* y[t * ldy + r] = dot(weight row r, activation row t) for r in [r0, r1)
 * and t < n_tok.  Weight rows are w_stride bytes apart, activation rows
 * a_stride bytes apart.  A gemm keeps its stack use small (pool threads
 * may have small stacks) and may allocate scratch for a large batch; it
 * cannot fail (without memory it falls back to single dots). */
typedef void (*mr_gemm_fn)(const void *w, size_t w_stride, const void *act, size_t a_stride,
                           int64_t n, int64_t n_tok, float *y, int64_t ldy, int64_t r0,
                           int64_t r1);

/* Attention of one query over one block of n <= MR_ATTN_BLOCK keys, folded
 * into the query's running softmax state (online softmax):
 *   s_j = scale * (q . k_j);  m' = max(m, max_j s_j)
 *   acc = acc * e^(m - m') + sum_j e^(s_j - m') v_j   (dv floats)
 *   l   = l * e^(m - m') + sum_j e^(s_j - m');  m = m'
 * Rows of k and v are k_stride / v_stride floats apart.  The result depends
 * on the values and n only, never on the pointers' alignment, so a query
 * gives the same bits whatever batch or cache allocation it came in. */
#define MR_ATTN_BLOCK 64
typedef void (*mr_attn_block_fn)(const float *q, const float *k, size_t k_stride, const float *v,
                                 size_t v_stride, int64_t n, int64_t dk, int64_t dv, float scale,
                                 float *m, float *l, float *acc);
void mr_attn_block_ref(const float *q, const float *k, size_t k_stride, const float *v,
                       size_t v_stride, int64_t n, int64_t dk, int64_t dv, float scale, float *m,
                       float *l, float *acc);

/* Repacked weights: an ISA whose gemm reads a copy of a type interleaved
 * across MR_PACK_ROWS rows faster offers repack[t] and gemm_packed[t].
 * repack copies rows (a multiple of MR_PACK_ROWS) of n elements, src rows
 * src_row_bytes apart, into rows * mr_pack_row_bytes bytes; gemm_packed
 * takes w_stride = mr_pack_row_bytes, any row range, and gives the bits
 * gemm[t] gives on the file's bytes (so a store may hand out either). */
#define MR_PACK_ROWS 16
typedef void (*mr_repack_fn)(const void *src, size_t src_row_bytes, int64_t rows, int64_t n,
                             void *dst);

typedef struct {
    mr_isa isa;
    int exact;
    mr_attn_block_fn attn_block;          /* attention (src/nn/attention.c) */
    /* per weight type */
    uint32_t act_type[MR_TYPE_COUNT];     /* activation format; F32 = kept as is */
    mr_dot_f32_fn dot_f32[MR_TYPE_COUNT]; /* used when act_type is F32 */
    mr_vec_dot_fn vec_dot[MR_TYPE_COUNT]; /* used otherwise */
    mr_gemm_fn gemm[MR_TYPE_COUNT];       /* NULL: rows x tokens of single dots */
    mr_repack_fn repack[MR_TYPE_COUNT];   /* NULL: no packed layout */
    mr_gemm_fn gemm_packed[MR_TYPE_COUNT];
    uint32_t pack_block_bytes[MR_TYPE_COUNT]; /* packed bytes per row and block */
    /* per activation type: f32 row -> that format */
    mr_from_f32_fn quantize_act[MR_TYPE_COUNT];
    /* per KV cache type: rows widened to f32 for attention, the same bits
     * as the type's to_f32 (widening F16 and Q8_0 is exact) */
    mr_to_f32_fn kv_to_f32[MR_TYPE_COUNT];
} mr_kernels;

/* What start-up measured (simd/autotune.c): unless MOERUN_ISA forces a
 * level (or MOERUN_AUTOTUNE=0), each weight type's integer kernels come
 * from the ISA whose one-token matmul streamed fastest. */
typedef struct {
    int measured;                            /* 0: forced, or one candidate only */
    double gbs[MR_TYPE_COUNT][MR_ISA_COUNT]; /* weights GB/s; 0 = not measured */
    mr_isa chosen[MR_TYPE_COUNT];            /* ISA of vec_dot/gemm per type */
    double ms;                               /* time the measurement took */
    size_t bytes;                            /* weights per measured matmul */
    int cache;          /* MR_TUNE_CACHE_*: where the choice came from */
    long long when;     /* unix time of the measurement (a loaded one's too) */
    char cache_path[512];
    char cache_note[1024]; /* why a cache file was not used or not written */
} mr_autotune_report;

enum {
    MR_TUNE_CACHE_OFF = 0, /* no cache directory: measured at this start */
    MR_TUNE_CACHE_LOADED,  /* read from cache_path, nothing measured */
    MR_TUNE_CACHE_SAVED,   /* measured now and written to cache_path */
    MR_TUNE_CACHE_UNSAVED  /* measured now; cache_note says why not kept */
};

/* The highest ISA keeps a type unless another streams this much faster. */
#define MR_AUTOTUNE_MARGIN 1.10

/* Time every candidate ISA's kernels and keep the fastest per type in
 * fast (filled for the best ISA); rep says what was measured.  careful:
 * more rounds and a longer budget, for a choice that will be cached. */
void mr_autotune(mr_kernels *fast, mr_autotune_report *rep, int careful);
/* Give fast (the best ISA's table) the kernels of rep->chosen per type. */
void mr_autotune_apply(mr_kernels *fast, const mr_autotune_report *rep);

/* The per-CPU cache of that choice (simd/autotune_cache.c).  The file,
 * DIR/autotune-<hash of the CPU>.txt, is used only if it names this CPU
 * (vendor, family, model, stepping, name, features) and this build (its
 * ELF build id), and lists only kernels this table has; otherwise the
 * choice is measured (carefully) and the file rewritten.  Returns 0 and
 * fills rep (cache = LOADED) if the file was used; -1 with rep->cache_note
 * saying why not. */
int mr_autotune_cache_load(const char *dir, mr_kernels *fast, mr_autotune_report *rep);
/* Write rep to DIR (made if missing) atomically; 0, or -1 with the reason
 * in rep->cache_note. */
int mr_autotune_cache_save(const char *dir, mr_autotune_report *rep, mr_isa best);

/* Keep the start-up choice in DIR (NULL or "": measure at every start, the
 * library's default; the CLI passes its cache directory).  Takes effect
 * only before the first mr_kernels_get(): returns -1 after it. */
int mr_kernels_set_cache_dir(const char *dir);

/* The report behind mr_kernels_get()'s table (chosen on first use). */
const mr_autotune_report *mr_kernels_autotune_report(void);

/* The table in use (fast), chosen on first call (thread-safe), then fixed:
 * the best ISA's, with per-type kernels from the autotune.  Its isa field
 * names the best ISA. */
const mr_kernels *mr_kernels_get(void);
/* The exact-activation table of the same ISA. */
const mr_kernels *mr_kernels_get_exact(void);

/* Fill a table for a given ISA (tests compare ISAs); returns 0 if this CPU
 * or build cannot run it. */
int mr_kernels_for_isa(mr_isa isa, int exact, mr_kernels *out);

/* Best ISA this CPU and build support. */
mr_isa mr_isa_best(void);
const char *mr_isa_name(mr_isa isa);
/* Parse "scalar"/"avx2"/...; returns MR_ISA_COUNT for an unknown name. */
mr_isa mr_isa_parse(const char *name);
/* Describe what the CPU offers ("avx2 fma f16c avx512f ... "), for info. */
void mr_cpu_features(char *buf, size_t cap);

/* ISA override hooks, each in its own file compiled with its own flags. */
void mr_kernels_init_avx2(mr_kernels *k);
void mr_kernels_init_avxvnni(mr_kernels *k); /* x86_avxvnni_names.h */
void mr_kernels_init_avxvnni_more(mr_kernels *k);
void mr_kernels_init_avxvnni_iq(mr_kernels *k);
void mr_kernels_init_avx512(mr_kernels *k);
void mr_kernels_init_neon(mr_kernels *k);
/* the further formats (MXFP4, Q4_1, ...): scalar table and ISA rungs */
void mr_kernels_init_scalar_more(mr_kernels *k, int exact);
void mr_kernels_init_avx2_more(mr_kernels *k);
void mr_kernels_init_avx2_iq(mr_kernels *k); /* the i-quants (AVX-512 inherits them) */
void mr_kernels_init_avx512_more(mr_kernels *k);
void mr_kernels_init_avx512_pack(mr_kernels *k); /* the repacked Q4_K */
void mr_kernels_init_avx512_iq(mr_kernels *k);   /* the i-quants' dots (gemm: AVX2's) */
void mr_kernels_init_neon_more(mr_kernels *k);
void mr_kernels_init_neon_iq(mr_kernels *k); /* the i-quants */
void mr_kernels_init_neon_k(mr_kernels *k); /* K-quants, called by mr_kernels_init_neon */
/* KV cache rows to f32 (x86_*_attn.c, arm_neon_more.c) */
void mr_f16_kv_to_f32_avx2(const void *src, float *dst, int64_t n);
void mr_q8_0_kv_to_f32_avx2(const void *src, float *dst, int64_t n);
void mr_f16_kv_to_f32_avx512(const void *src, float *dst, int64_t n);
void mr_q8_0_kv_to_f32_avx512(const void *src, float *dst, int64_t n);
void mr_f16_kv_to_f32_neon(const void *src, float *dst, int64_t n);

/* Best of 5 streaming reads of a `bytes` buffer split over `threads`
 * threads, in GB/s, with the widest loads this CPU runs (simd/membw.c). */
double mr_read_bandwidth(int threads, size_t bytes);
/* The same over memory the caller owns, already faulted in (read only). */
double mr_read_bandwidth_of(const void *buf, size_t bytes, int threads);

/* ---- matrix multiplication driver (simd/matmul.c) ---- */

/* Bytes of one prepared activation row of n elements for weight type t. */
size_t mr_act_row_bytes(const mr_kernels *k, uint32_t wtype, int64_t n);

/* Convert n_tok rows of n f32 activations (x, row stride n) into the
 * format weight type t dots with; returns x itself when that is f32, else
 * buf (at least n_tok * mr_act_row_bytes bytes). */
const void *mr_act_prepare(const mr_kernels *k, uint32_t wtype, const float *x, int64_t n,
                           int64_t n_tok, void *buf);

/* 1 if k can repack rows x n of type t (then rows * mr_pack_row_bytes
 * bytes hold the copy). */
int mr_can_pack(const mr_kernels *k, uint32_t t, int64_t rows, int64_t n);
size_t mr_pack_row_bytes(const mr_kernels *k, uint32_t t, int64_t n);

/* Rows [r0, r1) of y (n_tok x ldy) = W x^T with prepared activations;
 * packed: w is k's repacked copy (mr_can_pack), row_bytes ignored. */
void mr_matmul_rows_packed(const mr_kernels *k, uint32_t wtype, const void *w, const void *act,
                           int64_t n, int64_t n_tok, float *y, int64_t ldy, int64_t r0,
                           int64_t r1);
/* Rows [r0, r1) of y (n_tok x ldy) = W x^T with prepared activations. */
void mr_matmul_rows(const mr_kernels *k, uint32_t wtype, const void *w, size_t row_bytes,
                    const void *act, int64_t n, int64_t n_tok, float *y, int64_t ldy,
                    int64_t r0, int64_t r1);

#endif
