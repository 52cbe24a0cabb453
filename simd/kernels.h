/* kernels.h - the kernel table, filled once at start-up.
 *
 * It starts as the scalar reference table (quant/) and each ISA overrides
 * the entries it implements (the dav1d init-ladder habit), so an op without
 * a SIMD version keeps its reference.  The ISA is chosen from CPUID+XGETBV
 * (getauxval on arm64) and can be forced lower with
 * MOERUN_ISA=scalar|avx2|avx512|neon.  Kernels know nothing of models: they
 * take pointers, lengths and strides.
 */
#ifndef MOERUN_SIMD_KERNELS_H
#define MOERUN_SIMD_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "../quant/types.h"

typedef enum {
    MR_ISA_SCALAR = 0,
    MR_ISA_AVX2 = 1,
    MR_ISA_AVX512 = 2,
    MR_ISA_NEON = 3,
    MR_ISA_COUNT
} mr_isa;

typedef struct {
    mr_isa isa;
    /* dot of one weight row of type t with n f32 activations */
    mr_dot_f32_fn dot_f32[MR_TYPE_COUNT];
} mr_kernels;

/* The table in use; chosen on first call (thread-safe), then fixed. */
const mr_kernels *mr_kernels_get(void);

/* Fill a table for a given ISA (for tests that compare ISAs); returns 0 if
 * this CPU or build cannot run it. */
int mr_kernels_for_isa(mr_isa isa, mr_kernels *out);

/* Best ISA this CPU and build support. */
mr_isa mr_isa_best(void);
const char *mr_isa_name(mr_isa isa);
/* Parse "scalar"/"avx2"/...; returns MR_ISA_COUNT for an unknown name. */
mr_isa mr_isa_parse(const char *name);
/* Describe what the CPU offers ("avx2 fma f16c avx512f ... "), for info. */
void mr_cpu_features(char *buf, size_t cap);

/* y[t * n_out + r] = dot(row r of w, x[t * n_in ...]) for t < n_tok,
 * r < n_out; w rows are row_bytes apart. */
void mr_matmul(const mr_kernels *k, uint32_t type, const void *w, size_t row_bytes,
               int64_t n_in, int64_t n_out, const float *x, int64_t n_tok, float *y);

#endif
