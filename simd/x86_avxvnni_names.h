/* x86_avxvnni_names.h - the avx2vnni kernel set is the AVX2 sources
 * (x86_avx2.c, _q, _k, _more, _iq) compiled a second time with -mavxvnni
 * (Makefile.am: libmoerun_avxvnni.la).  Where __AVXVNNI__ is defined
 * their integer dots use vpdpbusd / vpdpwssd in place of vpmaddubsw +
 * vpmaddwd (+ vpaddd): every pair those form stays within int16, so the
 * int32 lanes are the same integers and the set gives the AVX2 set's bits
 * with fewer instructions.  Forced in with -include, this header gives
 * the second copy's external names their own suffix; attention and the KV
 * cache's widening (x86_avx2_attn.c) have no integer dots and are shared. */
#ifndef MOERUN_X86_AVXVNNI_NAMES_H
#define MOERUN_X86_AVXVNNI_NAMES_H

#define mr_kernels_init_avx2 mr_kernels_init_avxvnni
#define mr_kernels_init_avx2_k mr_kernels_init_avxvnni_k
#define mr_kernels_init_avx2_more mr_kernels_init_avxvnni_more
#define mr_kernels_init_avx2_iq mr_kernels_init_avxvnni_iq
#define mr_iq_gemm_avx2 mr_iq_gemm_avxvnni
#define mr_quantize_row_q8_0_avx2 mr_quantize_row_q8_0_avxvnni
#define mr_dot_f32_f32_avx2 mr_dot_f32_f32_avxvnni
#define mr_dot_f16_f32_avx2 mr_dot_f16_f32_avxvnni
#define mr_dot_bf16_f32_avx2 mr_dot_bf16_f32_avxvnni
#define mr_dot_q8_0_f32_avx2 mr_dot_q8_0_f32_avxvnni
#define mr_dot_q4_0_f32_avx2 mr_dot_q4_0_f32_avxvnni
#define mr_dot_q4_0_q8_0_avx2 mr_dot_q4_0_q8_0_avxvnni
#define mr_dot_q8_0_q8_0_avx2 mr_dot_q8_0_q8_0_avxvnni
#define mr_gemm_q4_0_q8_0_avx2 mr_gemm_q4_0_q8_0_avxvnni
#define mr_gemm_q8_0_q8_0_avx2 mr_gemm_q8_0_q8_0_avxvnni
#define mr_dot_q4_K_q8_K_avx2 mr_dot_q4_K_q8_K_avxvnni
#define mr_dot_q5_K_q8_K_avx2 mr_dot_q5_K_q8_K_avxvnni
#define mr_dot_q6_K_q8_K_avx2 mr_dot_q6_K_q8_K_avxvnni
#define mr_gemm_q4_K_q8_K_avx2 mr_gemm_q4_K_q8_K_avxvnni
#define mr_gemm_q5_K_q8_K_avx2 mr_gemm_q5_K_q8_K_avxvnni
#define mr_gemm_q6_K_q8_K_avx2 mr_gemm_q6_K_q8_K_avxvnni
#define mr_dot_q4_K_f32_avx2 mr_dot_q4_K_f32_avxvnni
#define mr_dot_q5_K_f32_avx2 mr_dot_q5_K_f32_avxvnni
#define mr_dot_q6_K_f32_avx2 mr_dot_q6_K_f32_avxvnni

#endif
