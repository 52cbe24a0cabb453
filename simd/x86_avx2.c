/* x86_avx2.c - AVX2 overrides of the kernel table, the Q8_0 activation
 * quantizer and the f32-activation (exact path) dots.  The integer
 * Q4_0/Q8_0 kernels are in x86_avx2_q.c.  Compiled with its own ISA flags
 * (-mavx2 -mfma -mf16c) into a convenience library; called only after the
 * dispatcher has checked that the CPU and OS support them. */
#include "x86_avx2.h"

#include <immintrin.h>
#include <string.h>

#define AI static inline __attribute__((always_inline))

/* Software prefetch distance along the weights (see x86_avx512_q.c) */
#define PREFETCH_BYTES 8192

/* Fixed-order sum of 8 lanes: halves, then quarters, ... */
AI float hsum256(__m256 v)
{
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
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
AI __m256i round_away_epi32(__m256 p)
{
    /* t = trunc(p) */
    const __m256 t = _mm256_round_ps(p, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    /* f = p - t is exact and in (-1, 1); trunc(2f) is sign(p) when
     * |f| >= 0.5, else 0 (2f is exact) */
    const __m256 f = _mm256_sub_ps(p, t);
    const __m256 r = _mm256_add_ps(t, _mm256_round_ps(_mm256_add_ps(f, f), _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC));
    /* r is an integer: the conversion is exact */
    return _mm256_cvttps_epi32(r);
}

/* One block of 32 floats as the Q8_0/Q8_1 references quantize it:
 * d = amax / 127, q = roundf(x / d) computed as x * (1 / d), in
 * [-127, 127].  Returns d (f32, unrounded); *q8 = the 32 int8 in order. */
AI float quantize_block32(const float *x, __m256i *q8)
{
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 v[4];
    __m256 m = _mm256_setzero_ps();
    for (int j = 0; j < 4; j++) {
        v[j] = _mm256_loadu_ps(x + 8 * j);
        /* m = max(|v|, m): maxps returns its second operand when either
         * is NaN, so a NaN x is skipped as fmaxf skips it */
        m = _mm256_max_ps(_mm256_and_ps(v[j], absmask), m);
    }
    /* the largest of 8 lanes (no NaN left: order is irrelevant) */
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    const float amax = _mm_cvtss_f32(h);
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const __m256 vid = _mm256_set1_ps(id);
    __m256i q[4];
    for (int j = 0; j < 4; j++)
        q[j] = round_away_epi32(_mm256_mul_ps(v[j], vid)); /* in [-127, 127] but for id = inf */
    /* int32 -> int8 as the reference's (int8_t) cast of cvttss2si: the
     * low byte.  It matters where x * id overflows (id = inf for a block
     * of amax < ~1.2e-38 gives +-inf, whose conversion is 0x80000000:
     * the low byte 0, where saturation would give -128).  Masked to
     * [0, 255], the packs cannot saturate; they work per 128-bit lane,
     * leaving dwords in the order 0 2 4 6 1 3 5 7 */
    const __m256i lowb = _mm256_set1_epi32(0xff);
    for (int j = 0; j < 4; j++)
        q[j] = _mm256_and_si256(q[j], lowb);
    const __m256i p16a = _mm256_packs_epi32(q[0], q[1]), p16b = _mm256_packs_epi32(q[2], q[3]);
    const __m256i p8 = _mm256_packus_epi16(p16a, p16b);
    *q8 = _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    return d;
}

/* f32 -> f16 bits, round to nearest even (imm 0), as mr_f32_to_f16 */
AI uint16_t f32_to_f16(float f)
{
    return (uint16_t)_mm_extract_epi16(_mm_cvtps_ph(_mm_set_ss(f), 0), 0);
}

/* Bit-identical to mr_quantize_row_q8_0. */
void mr_quantize_row_q8_0_avx2(const float *x, void *dst, int64_t n)
{
    block_q8_0 *y = dst;
    const int64_t nb = n / QK8_0;
    for (int64_t b = 0; b < nb; b++, x += QK8_0) {
        __m256i q8;
        y[b].d = f32_to_f16(quantize_block32(x, &q8));
        _mm256_storeu_si256((__m256i *)y[b].qs, q8);
    }
}

/* Sum of 32 int8 lanes (exact): maddubs with 1s pairs them into int16,
 * madd with 1s into int32, then a fixed tree. */
AI int sum_epi8(__m256i q8)
{
    const __m256i p16 = _mm256_maddubs_epi16(_mm256_set1_epi8(1), q8);
    const __m256i p32 = _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(p32), _mm256_extracti128_si256(p32, 1));
    s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
    return _mm_cvtsi128_si32(s);
}

/* Bit-identical to mr_quantize_row_q8_1: Q8_0's d and qs, and
 * s = f16(float(sum of the stored q) * d) with the unrounded d. */
static void mr_quantize_row_q8_1_avx2(const float *x, void *dst, int64_t n)
{
    block_q8_1 *y = dst;
    const int64_t nb = n / QK8_1;
    for (int64_t b = 0; b < nb; b++, x += QK8_1) {
        __m256i q8;
        const float d = quantize_block32(x, &q8);
        y[b].d = f32_to_f16(d);
        y[b].s = f32_to_f16((float)sum_epi8(q8) * d);
        _mm256_storeu_si256((__m256i *)y[b].qs, q8);
    }
}

/* Bit-identical to mr_quantize_row_q8_K (256 floats a block; the AVX-512
 * table keeps this one): max = the x of largest |x|, the first one on
 * ties (a NaN never wins: maxps skips it as '>' does, and it compares
 * unequal); iscale = -127 / max; q = min(nearest_int(iscale x), 127) by
 * ggml's trick itself (add 1.5 * 2^23, keep the low 23 bits of the
 * float's pattern minus 2^22: the same float add and the same bits, so
 * even a NaN gives the reference's integer), stored as its low byte like
 * the reference's (int8_t) cast (it lies in [-127, 127] unless iscale
 * overflows to inf, for max below ~1e-38); bsums = the 16-sums of q;
 * d = 1 / iscale.  An all-zero block is all zero bytes. */
static void mr_quantize_row_q8_K_avx2(const float *x, void *dst, int64_t n)
{
    block_q8_K *y = dst;
    const int64_t nb = n / QK_K;
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    for (int64_t b = 0; b < nb; b++, x += QK_K) {
        __m256 m[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
        for (int i = 0; i < QK_K; i += 32)
            for (int j = 0; j < 4; j++)
                m[j] = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(x + i + 8 * j), absmask), m[j]);
        const __m256 m8 = _mm256_max_ps(_mm256_max_ps(m[0], m[1]), _mm256_max_ps(m[2], m[3]));
        __m128 h = _mm_max_ps(_mm256_castps256_ps128(m8), _mm256_extractf128_ps(m8, 1));
        h = _mm_max_ps(h, _mm_movehl_ps(h, h));
        h = _mm_max_ss(h, _mm_movehdup_ps(h));
        const float amax = _mm_cvtss_f32(h);
        if (amax == 0.0f) {
            memset(&y[b], 0, sizeof y[b]);
            continue;
        }
        /* the first j with |x_j| == amax, 32 at a time (bit j of mask) */
        const __m256 va = _mm256_set1_ps(amax);
        int first = 0;
        for (int i = 0; i < QK_K; i += 32) {
            uint32_t mask = 0;
            for (int j = 0; j < 4; j++) {
                const __m256 e = _mm256_cmp_ps(_mm256_and_ps(_mm256_loadu_ps(x + i + 8 * j), absmask), va, _CMP_EQ_OQ);
                mask |= (uint32_t)_mm256_movemask_ps(e) << (8 * j);
            }
            if (mask) {
                first = i + __builtin_ctz(mask);
                break;
            }
        }
        const float iscale = -127.0f / x[first];
        const __m256 vis = _mm256_set1_ps(iscale), magic = _mm256_set1_ps(12582912.0f);
        const __m256i low23 = _mm256_set1_epi32(0x007fffff), half = _mm256_set1_epi32(0x00400000);
        const __m256i top = _mm256_set1_epi32(127), lowb = _mm256_set1_epi32(0xff);
        for (int i = 0; i < QK_K; i += 32) {
            __m256i q[4];
            for (int j = 0; j < 4; j++) {
                const __m256 f = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i + 8 * j), vis), magic);
                q[j] = _mm256_min_epi32(_mm256_sub_epi32(_mm256_and_si256(_mm256_castps_si256(f), low23), half), top);
                q[j] = _mm256_and_si256(q[j], lowb); /* the low byte: the packs cannot saturate */
            }
            /* packs per 128-bit lane leave dwords in the order 0 2 4 6 1 3 5 7 */
            const __m256i p8 = _mm256_packus_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
            const __m256i q8 = _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
            _mm256_storeu_si256((__m256i *)(y[b].qs + i), q8);
            /* int32 lane k = sum of q_4k..4k+3; two horizontal adds leave
             * each 128-bit half's 16-sum in all its lanes */
            __m256i s4 = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), q8), _mm256_set1_epi16(1));
            s4 = _mm256_hadd_epi32(s4, s4);
            s4 = _mm256_hadd_epi32(s4, s4);
            y[b].bsums[i / 16] = (int16_t)_mm256_extract_epi32(s4, 0);
            y[b].bsums[i / 16 + 1] = (int16_t)_mm256_extract_epi32(s4, 4);
        }
        y[b].d = 1.0f / iscale;
    }
}

/* ------------------------------------------------------------ f32 dots */

/* Weights are read with unaligned loads: rows need not be aligned.  Ends
 * that do not fill a vector are done one element at a time. */

float mr_dot_f32_f32_avx2(const void *w, const float *x, int64_t n)
{
    const uint8_t *a = w;
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        /* 128 bytes of weights a step: two lines, 8 KB ahead (rows are
         * contiguous, so this runs on into the next row) */
        _mm_prefetch((const char *)(a + 4 * i) + PREFETCH_BYTES, _MM_HINT_T0);
        _mm_prefetch((const char *)(a + 4 * i) + PREFETCH_BYTES + 64, _MM_HINT_T0);
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps((const float *)(a + 4 * i)), _mm256_loadu_ps(x + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps((const float *)(a + 4 * i + 32)), _mm256_loadu_ps(x + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps((const float *)(a + 4 * i + 64)), _mm256_loadu_ps(x + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps((const float *)(a + 4 * i + 96)), _mm256_loadu_ps(x + i + 24), s3);
    }
    for (; i + 8 <= n; i += 8)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps((const float *)(a + 4 * i)), _mm256_loadu_ps(x + i), s0);
    float sum = hsum256(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < n; i++) {
        float v;
        memcpy(&v, a + 4 * i, 4);
        sum += v * x[i];
    }
    return sum;
}

/* 8 f16 -> f32 (exact) */
AI __m256 load_f16x8(const uint8_t *p)
{
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

/* 8 bf16 -> f32: the bits shifted into the high half (exact) */
AI __m256 load_bf16x8(const uint8_t *p)
{
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}

/* dot of n 16-bit floats (f16 or bf16) with f32 */
AI float dot_half(const int bf, const uint8_t *a, const float *x, int64_t n)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        _mm_prefetch((const char *)(a + 2 * i) + PREFETCH_BYTES, _MM_HINT_T0);
        s0 = _mm256_fmadd_ps(bf ? load_bf16x8(a + 2 * i) : load_f16x8(a + 2 * i), _mm256_loadu_ps(x + i), s0);
        s1 = _mm256_fmadd_ps(bf ? load_bf16x8(a + 2 * i + 16) : load_f16x8(a + 2 * i + 16),
                             _mm256_loadu_ps(x + i + 8), s1);
        s2 = _mm256_fmadd_ps(bf ? load_bf16x8(a + 2 * i + 32) : load_f16x8(a + 2 * i + 32),
                             _mm256_loadu_ps(x + i + 16), s2);
        s3 = _mm256_fmadd_ps(bf ? load_bf16x8(a + 2 * i + 48) : load_f16x8(a + 2 * i + 48),
                             _mm256_loadu_ps(x + i + 24), s3);
    }
    for (; i + 8 <= n; i += 8)
        s0 = _mm256_fmadd_ps(bf ? load_bf16x8(a + 2 * i) : load_f16x8(a + 2 * i), _mm256_loadu_ps(x + i), s0);
    float sum = hsum256(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < n; i++) {
        uint16_t h;
        memcpy(&h, a + 2 * i, 2);
        sum += (bf ? mr_bf16_to_f32(h) : mr_f16_to_f32(h)) * x[i];
    }
    return sum;
}

float mr_dot_f16_f32_avx2(const void *w, const float *x, int64_t n)
{
    return dot_half(0, w, x, n);
}

float mr_dot_bf16_f32_avx2(const void *w, const float *x, int64_t n)
{
    return dot_half(1, w, x, n);
}

/* Q8_0 x f32: each block dequantised in registers (q * d, one rounding)
 * and FMA'd with x into four accumulators. */
float mr_dot_q8_0_f32_avx2(const void *w, const float *x, int64_t n)
{
    const block_q8_0 *b = w;
    const int64_t nb = n / QK8_0;
    __m256 s[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t i = 0; i < nb; i++, x += QK8_0) {
        const __m256 d = _mm256_set1_ps(f16_to_f32(b[i].d));
        for (int j = 0; j < 4; j++) {
            /* 8 weights as f32 (exact), in [-128, 127] */
            const __m256 q = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(b[i].qs + 8 * j))));
            s[j] = _mm256_fmadd_ps(_mm256_mul_ps(q, d), _mm256_loadu_ps(x + 8 * j), s[j]);
        }
    }
    return hsum256(_mm256_add_ps(_mm256_add_ps(s[0], s[1]), _mm256_add_ps(s[2], s[3])));
}

/* Q4_0 x f32: nibbles offset to [-8, 7], times d, FMA'd with x. */
float mr_dot_q4_0_f32_avx2(const void *w, const float *x, int64_t n)
{
    const block_q4_0 *b = w;
    const int64_t nb = n / QK4_0;
    const __m128i m4 = _mm_set1_epi8(0x0f), eight = _mm_set1_epi8(8);
    __m256 s[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t i = 0; i < nb; i++, x += QK4_0) {
        const __m256 d = _mm256_set1_ps(f16_to_f32(b[i].d));
        const __m128i z = _mm_loadu_si128((const __m128i *)b[i].qs);
        /* elements 0..15 = (qs & 15) - 8, 16..31 = (qs >> 4) - 8, in [-8, 7] */
        const __m128i lo = _mm_sub_epi8(_mm_and_si128(z, m4), eight);
        const __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(z, 4), m4), eight);
        const __m128i part[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
        for (int j = 0; j < 4; j++) {
            const __m256 q = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(part[j]));
            s[j] = _mm256_fmadd_ps(_mm256_mul_ps(q, d), _mm256_loadu_ps(x + 8 * j), s[j]);
        }
    }
    return hsum256(_mm256_add_ps(_mm256_add_ps(s[0], s[1]), _mm256_add_ps(s[2], s[3])));
}

/* ------------------------------------------------------------ table */

void mr_kernels_init_avx2(mr_kernels *k)
{
    k->attn_block = mr_attn_block_avx2;
    k->quantize_act[MR_TYPE_Q8_0] = mr_quantize_row_q8_0_avx2;
    k->quantize_act[MR_TYPE_Q8_1] = mr_quantize_row_q8_1_avx2;
    k->quantize_act[MR_TYPE_Q8_K] = mr_quantize_row_q8_K_avx2;
    k->dot_f32[MR_TYPE_F32] = mr_dot_f32_f32_avx2;
    k->dot_f32[MR_TYPE_F16] = mr_dot_f16_f32_avx2;
    k->dot_f32[MR_TYPE_BF16] = mr_dot_bf16_f32_avx2;
    k->dot_f32[MR_TYPE_Q8_0] = mr_dot_q8_0_f32_avx2;
    k->dot_f32[MR_TYPE_Q4_0] = mr_dot_q4_0_f32_avx2;
    k->vec_dot[MR_TYPE_Q8_0] = mr_dot_q8_0_q8_0_avx2;
    k->vec_dot[MR_TYPE_Q4_0] = mr_dot_q4_0_q8_0_avx2;
    k->gemm[MR_TYPE_Q8_0] = mr_gemm_q8_0_q8_0_avx2;
    k->gemm[MR_TYPE_Q4_0] = mr_gemm_q4_0_q8_0_avx2;
    mr_kernels_init_avx2_k(k); /* the K-quants, x86_avx2_k.c */
}
