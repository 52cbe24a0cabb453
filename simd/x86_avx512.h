/* x86_avx512.h - the kernels of the AVX-512 library (x86_avx512*.c), shared
 * between its files only.  Everything here is compiled with
 * -mavx512f -mavx512bw -mavx512vl -mavx512vnni (and AVX2/FMA/F16C) and may
 * run only after the dispatcher has checked the CPU and the OS. */
#ifndef MOERUN_SIMD_X86_AVX512_H
#define MOERUN_SIMD_X86_AVX512_H

#include "kernels.h"

/* fast table: Q8_0 activations dotted in integers (x86_avx512_q.c) */
float mr_dot_q4_0_q8_0_avx512(const void *w, const void *act, int64_t n);
float mr_dot_q8_0_q8_0_avx512(const void *w, const void *act, int64_t n);
void mr_gemm_q4_0_q8_0_avx512(const void *w, size_t w_stride, const void *act, size_t a_stride,
                              int64_t n, int64_t n_tok, float *y, int64_t ldy, int64_t r0,
                              int64_t r1);
void mr_gemm_q8_0_q8_0_avx512(const void *w, size_t w_stride, const void *act, size_t a_stride,
                              int64_t n, int64_t n_tok, float *y, int64_t ldy, int64_t r0,
                              int64_t r1);

/* K-quants: Q8_K activations dotted in integers, and their f32 dots
 * (x86_avx512_k.c) */
float mr_dot_q4_K_q8_K_avx512(const void *w, const void *act, int64_t n);
float mr_dot_q5_K_q8_K_avx512(const void *w, const void *act, int64_t n);
float mr_dot_q6_K_q8_K_avx512(const void *w, const void *act, int64_t n);
void mr_gemm_q4_K_q8_K_avx512(const void *w, size_t w_stride, const void *act, size_t a_stride,
                              int64_t n, int64_t n_tok, float *y, int64_t ldy, int64_t r0,
                              int64_t r1);
void mr_gemm_q5_K_q8_K_avx512(const void *w, size_t w_stride, const void *act, size_t a_stride,
                              int64_t n, int64_t n_tok, float *y, int64_t ldy, int64_t r0,
                              int64_t r1);
void mr_gemm_q6_K_q8_K_avx512(const void *w, size_t w_stride, const void *act, size_t a_stride,
                              int64_t n, int64_t n_tok, float *y, int64_t ldy, int64_t r0,
                              int64_t r1);
float mr_dot_q4_K_f32_avx512(const void *w, const float *x, int64_t n);
float mr_dot_q5_K_f32_avx512(const void *w, const float *x, int64_t n);
float mr_dot_q6_K_f32_avx512(const void *w, const float *x, int64_t n);
void mr_kernels_init_avx512_k(mr_kernels *k);

/* f32 activations (x86_avx512.c) */
void mr_quantize_row_q8_0_avx512(const float *x, void *dst, int64_t n);
float mr_dot_f32_f32_avx512(const void *w, const float *x, int64_t n);
float mr_dot_f16_f32_avx512(const void *w, const float *x, int64_t n);
float mr_dot_bf16_f32_avx512(const void *w, const float *x, int64_t n);
float mr_dot_q8_0_f32_avx512(const void *w, const float *x, int64_t n);
float mr_dot_q4_0_f32_avx512(const void *w, const float *x, int64_t n);

/* attention block (x86_avx512_attn.c) */
void mr_attn_block_avx512(const float *q, const float *k, size_t k_stride, const float *v, size_t v_stride,
                          int64_t n, int64_t dk, int64_t dv, float scale, float *m, float *l, float *acc);

#endif
