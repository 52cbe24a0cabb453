/* x86_avx512.c - AVX-512 overrides of the kernel table, the Q8_0
 * activation quantizer and the f32-activation (exact path) dots.  The
 * integer Q4_0/Q8_0 kernels are in x86_avx512_q.c.  Compiled with its own
 * ISA flags into a convenience library; called only after the dispatcher
 * has checked that the CPU and OS support AVX-512 F/BW/VL/VNNI. */
#include "x86_avx512.h"

#include <immintrin.h>

#define AI static inline __attribute__((always_inline))

/* Software prefetch distance along the weights (see x86_avx512_q.c) */
#define PREFETCH_BYTES 8192

/* Fixed-order sum of 16 lanes: halves, then quarters, ... */
AI float hsum512(__m512 v)
{
    const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v),
                                   _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    q = _mm_add_ss(q, _mm_movehdup_ps(q));
    return _mm_cvtss_f32(q);
}

/* f16 bits -> f32 (exact) */
AI float f16_to_f32(uint16_t h)
{
    return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h)));
}

/* ------------------------------------------------------------ quantizer */

/* roundf(p) (halves away from zero) as int32, for |p| < 2^31 */
AI __m512i round_away_epi32(__m512 p)
{
    /* t = trunc(p) */
    const __m512 t = _mm512_roundscale_ps(p, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    /* f = p - t is exact and in (-1, 1); trunc(2f) is sign(p) when
     * |f| >= 0.5, else 0 (2f is exact) */
    const __m512 f = _mm512_sub_ps(p, t);
    const __m512 r = _mm512_add_ps(
        t, _mm512_roundscale_ps(_mm512_add_ps(f, f), _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC));
    /* r is an integer: the conversion is exact */
    return _mm512_cvttps_epi32(r);
}

/* One block of 32 floats as the Q8_0/Q8_1 references quantize it:
 * d = amax / 127, q = roundf(x / d) computed as x * (1 / d), in
 * [-127, 127].  Returns d (f32, unrounded); *q8 = the 32 int8 in order. */
AI float quantize_block32(const float *x, __m256i *q8)
{
    const __m512 zero = _mm512_setzero_ps();
    const __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
    /* m = max(|v0|, |v1|, 0) per lane; maxps returns its second operand
     * when either is NaN, so a NaN x is skipped as fmaxf skips it */
    __m512 m = _mm512_max_ps(_mm512_abs_ps(v0), zero);
    m = _mm512_max_ps(_mm512_abs_ps(v1), m);
    const float amax = _mm512_reduce_max_ps(m); /* no NaN left: order is irrelevant */
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const __m512 vid = _mm512_set1_ps(id);
    /* q = roundf(x * id), in [-127, 127] but for id = inf (a block of
     * amax < ~1.2e-38); to int8 as the reference's (int8_t) cast of
     * cvttss2si: the low byte (vpmovdb truncates; saturating would turn
     * the 0x80000000 of +-inf into -128, not 0) */
    const __m128i lo = _mm512_cvtepi32_epi8(round_away_epi32(_mm512_mul_ps(v0, vid)));
    const __m128i hi = _mm512_cvtepi32_epi8(round_away_epi32(_mm512_mul_ps(v1, vid)));
    *q8 = _mm256_set_m128i(hi, lo);
    return d;
}

/* f32 -> f16 bits, round to nearest even (imm 0), as mr_f32_to_f16 */
AI uint16_t f32_to_f16(float f)
{
    return (uint16_t)_mm_extract_epi16(_mm_cvtps_ph(_mm_set_ss(f), 0), 0);
}

/* Bit-identical to mr_quantize_row_q8_0. */
void mr_quantize_row_q8_0_avx512(const float *x, void *dst, int64_t n)
{
    block_q8_0 *y = dst;
    const int64_t nb = n / QK8_0;
    for (int64_t b = 0; b < nb; b++, x += QK8_0) {
        __m256i q8;
        y[b].d = f32_to_f16(quantize_block32(x, &q8));
        _mm256_storeu_si256((__m256i *)y[b].qs, q8);
    }
}

/* Bit-identical to mr_quantize_row_q8_1: Q8_0's d and qs, and
 * s = f16(float(sum of the stored q) * d) with the unrounded d; the sum
 * (exact) widens the 32 int8 to int16 and adds them with one reduction. */
static void mr_quantize_row_q8_1_avx512(const float *x, void *dst, int64_t n)
{
    block_q8_1 *y = dst;
    const int64_t nb = n / QK8_1;
    for (int64_t b = 0; b < nb; b++, x += QK8_1) {
        __m256i q8;
        const float d = quantize_block32(x, &q8);
        const __m512i w32 = _mm512_madd_epi16(_mm512_cvtepi8_epi16(q8), _mm512_set1_epi16(1));
        y[b].d = f32_to_f16(d);
        y[b].s = f32_to_f16((float)_mm512_reduce_add_epi32(w32) * d);
        _mm256_storeu_si256((__m256i *)y[b].qs, q8);
    }
}

/* ------------------------------------------------------------ f32 dots */

/* Weights are read with unaligned loads: rows need not be aligned, and
 * the result depends on the values only, never on the alignment. */

float mr_dot_f32_f32_avx512(const void *w, const float *x, int64_t n)
{
    const float *a = w;
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    int64_t i = 0;
    /* No peel to the weights' next 64-byte boundary: it made the order of
     * the sums, and so the result, depend on the pointer's alignment mod
     * 64.  The order is fixed by n alone (tests/test_kernels_k.c checks
     * every alignment 0..63). */
    for (; i + 64 <= n; i += 64) {
        /* 256 bytes of weights a step: four lines, 8 KB ahead (rows are
         * contiguous, so this runs on into the next row) */
        _mm_prefetch((const char *)(a + i) + PREFETCH_BYTES, _MM_HINT_T0);
        _mm_prefetch((const char *)(a + i) + PREFETCH_BYTES + 64, _MM_HINT_T0);
        _mm_prefetch((const char *)(a + i) + PREFETCH_BYTES + 128, _MM_HINT_T0);
        _mm_prefetch((const char *)(a + i) + PREFETCH_BYTES + 192, _MM_HINT_T0);
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(x + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(x + i + 16), s1);
        s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(x + i + 32), s2);
        s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(x + i + 48), s3);
    }
    for (; i + 16 <= n; i += 16)
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(x + i), s0);
    if (i < n) {
        /* masked loads do not touch (or fault on) the lanes past n */
        const __mmask16 k = (__mmask16)((1u << (n - i)) - 1);
        s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, a + i), _mm512_maskz_loadu_ps(k, x + i), s1);
    }
    return hsum512(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

/* 16 f16 -> f32 (exact) */
AI __m512 load_f16x16(const uint8_t *p)
{
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}

/* 16 bf16 -> f32: the bits shifted into the high half (exact) */
AI __m512 load_bf16x16(const uint8_t *p)
{
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16));
}

/* dot of n 16-bit floats (f16 or bf16) with f32 */
AI float dot_half(const int bf, const uint8_t *a, const float *x, int64_t n)
{
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        _mm_prefetch((const char *)(a + 2 * i) + PREFETCH_BYTES, _MM_HINT_T0);
        _mm_prefetch((const char *)(a + 2 * i) + PREFETCH_BYTES + 64, _MM_HINT_T0);
        s0 = _mm512_fmadd_ps(bf ? load_bf16x16(a + 2 * i) : load_f16x16(a + 2 * i), _mm512_loadu_ps(x + i), s0);
        s1 = _mm512_fmadd_ps(bf ? load_bf16x16(a + 2 * i + 32) : load_f16x16(a + 2 * i + 32),
                             _mm512_loadu_ps(x + i + 16), s1);
        s2 = _mm512_fmadd_ps(bf ? load_bf16x16(a + 2 * i + 64) : load_f16x16(a + 2 * i + 64),
                             _mm512_loadu_ps(x + i + 32), s2);
        s3 = _mm512_fmadd_ps(bf ? load_bf16x16(a + 2 * i + 96) : load_f16x16(a + 2 * i + 96),
                             _mm512_loadu_ps(x + i + 48), s3);
    }
    for (; i + 16 <= n; i += 16)
        s0 = _mm512_fmadd_ps(bf ? load_bf16x16(a + 2 * i) : load_f16x16(a + 2 * i), _mm512_loadu_ps(x + i), s0);
    if (i < n) {
        const __mmask16 k = (__mmask16)((1u << (n - i)) - 1);
        /* masked 16-bit loads: zeros (+0 in both formats) past n */
        const __m256i h = _mm256_maskz_loadu_epi16(k, a + 2 * i);
        const __m512 v = bf ? _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16))
                            : _mm512_cvtph_ps(h);
        s1 = _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(k, x + i), s1);
    }
    return hsum512(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

float mr_dot_f16_f32_avx512(const void *w, const float *x, int64_t n)
{
    return dot_half(0, w, x, n);
}

float mr_dot_bf16_f32_avx512(const void *w, const float *x, int64_t n)
{
    return dot_half(1, w, x, n);
}

/* Q8_0 x f32: each block dequantised in registers (q * d, one rounding)
 * and FMA'd with x; two blocks per step into four accumulators. */
float mr_dot_q8_0_f32_avx512(const void *w, const float *x, int64_t n)
{
    const block_q8_0 *b = w;
    const int64_t nb = n / QK8_0;
    __m512 s[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    for (int64_t i = 0; i < nb; i++, x += QK8_0) {
        const __m512 d = _mm512_set1_ps(f16_to_f32(b[i].d));
        /* q0 = qs[0..15], q1 = qs[16..31] as f32 (exact), in [-128, 127] */
        const __m512 q0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)b[i].qs)));
        const __m512 q1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b[i].qs + 16))));
        const int j = (int)(i & 1) * 2;
        s[j] = _mm512_fmadd_ps(_mm512_mul_ps(q0, d), _mm512_loadu_ps(x), s[j]);
        s[j + 1] = _mm512_fmadd_ps(_mm512_mul_ps(q1, d), _mm512_loadu_ps(x + 16), s[j + 1]);
    }
    return hsum512(_mm512_add_ps(_mm512_add_ps(s[0], s[1]), _mm512_add_ps(s[2], s[3])));
}

/* Q4_0 x f32: nibbles offset to [-8, 7], times d, FMA'd with x. */
float mr_dot_q4_0_f32_avx512(const void *w, const float *x, int64_t n)
{
    const block_q4_0 *b = w;
    const int64_t nb = n / QK4_0;
    const __m128i m4 = _mm_set1_epi8(0x0f);
    const __m512i eight = _mm512_set1_epi32(8);
    __m512 s[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    for (int64_t i = 0; i < nb; i++, x += QK4_0) {
        const __m512 d = _mm512_set1_ps(f16_to_f32(b[i].d));
        const __m128i z = _mm_loadu_si128((const __m128i *)b[i].qs);
        /* element j = (qs[j] & 15) - 8, element j + 16 = (qs[j] >> 4) - 8, in [-8, 7] */
        const __m512i lo = _mm512_sub_epi32(_mm512_cvtepu8_epi32(_mm_and_si128(z, m4)), eight);
        const __m512i hi = _mm512_sub_epi32(_mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(z, 4), m4)), eight);
        const int j = (int)(i & 1) * 2;
        s[j] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(lo), d), _mm512_loadu_ps(x), s[j]);
        s[j + 1] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(hi), d), _mm512_loadu_ps(x + 16), s[j + 1]);
    }
    return hsum512(_mm512_add_ps(_mm512_add_ps(s[0], s[1]), _mm512_add_ps(s[2], s[3])));
}

/* ------------------------------------------------------------ table */

void mr_kernels_init_avx512(mr_kernels *k)
{
    k->attn_block = mr_attn_block_avx512;
    /* the table already holds the AVX2 overrides; these replace them */
    k->quantize_act[MR_TYPE_Q8_0] = mr_quantize_row_q8_0_avx512;
    k->quantize_act[MR_TYPE_Q8_1] = mr_quantize_row_q8_1_avx512;
    k->dot_f32[MR_TYPE_F32] = mr_dot_f32_f32_avx512;
    k->dot_f32[MR_TYPE_F16] = mr_dot_f16_f32_avx512;
    k->dot_f32[MR_TYPE_BF16] = mr_dot_bf16_f32_avx512;
    k->dot_f32[MR_TYPE_Q8_0] = mr_dot_q8_0_f32_avx512;
    k->dot_f32[MR_TYPE_Q4_0] = mr_dot_q4_0_f32_avx512;
    k->vec_dot[MR_TYPE_Q8_0] = mr_dot_q8_0_q8_0_avx512;
    k->vec_dot[MR_TYPE_Q4_0] = mr_dot_q4_0_q8_0_avx512;
    k->gemm[MR_TYPE_Q8_0] = mr_gemm_q8_0_q8_0_avx512;
    k->gemm[MR_TYPE_Q4_0] = mr_gemm_q4_0_q8_0_avx512;
    mr_kernels_init_avx512_k(k); /* the K-quants, x86_avx512_k.c */
}
