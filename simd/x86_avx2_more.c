/* x86_avx2_more.c - MXFP4, IQ4_NL and Q5_0 weights dotted with Q8_0
 * activations and Q4_1/Q5_1 with Q8_1, in integers, AVX2 (vec_dot; the
 * driver loops rows x tokens).  IQ4_XS, Q2_K and Q3_K with Q8_K are in
 * x86_avx2_k.c, whose prepared-block scheme gives them a gemm.
 *
 * One block at a time: its 16 nibble bytes become one ymm of 32 codes in
 * element order (low nibbles are elements 0..15, high nibbles 16..31),
 * and the codes become signed weights w:
 *   MXFP4:  w = kv[q] in [-12, 12] (vpshufb of the doubled e2m1 table),
 *           block scale 2^(e - 128);
 *   IQ4_NL: w = kv[q] in [-127, 113] (vpshufb of the codebook), f16 d;
 *   Q5_0:   w = (q | fifth bit << 4) - 16 in [-16, 15], the fifth bits
 *           spread from qh to bytes by a shuffle and a bit test; f16 d.
 * vpmaddubsw wants an unsigned operand, so the sign moves to the
 * activations: |w| * (a with w's sign) = w * a, and pairs stay within
 * 2 * 127 * 127 = 32258 (no saturation); vpmaddwd adds pairs into 8 int32
 * lanes, each the exact dot of 4 elements.  acc += float(lanes) *
 * (d_w * d_a), the block scale formed as ggml forms it. */
#include "kernels.h"

#include <immintrin.h>
#include <string.h>

#define AI static inline __attribute__((always_inline))

enum { K_MXFP4 = 0, K_IQ4NL = 1, K_Q5_0 = 2 };

AI float f16_to_f32(uint16_t h)
{
    return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h)));
}

/* the 32 codes of 16 nibble bytes, in element order, in [0, 15] */
AI __m256i nibbles32(const uint8_t *qs)
{
    const __m128i q = _mm_loadu_si128((const __m128i *)qs);
    const __m256i z = _mm256_set_m128i(_mm_srli_epi16(q, 4), q);
    return _mm256_and_si256(z, _mm256_set1_epi8(0x0f));
}

/* byte j = 0xff if bit j of h is set, else 0 */
AI __m256i bits_to_bytes(uint32_t h)
{
    /* byte j = byte j / 8 of h */
    const __m256i spread = _mm256_shuffle_epi8(
        _mm256_set1_epi32((int)h),
        _mm256_setr_epi64x(0, 0x0101010101010101, 0x0202020202020202, 0x0303030303030303));
    /* keep bit j % 8 of it and test it */
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    return _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
}

/* the 32 signed weights of block i and its scale */
AI __m256i weights32(const int kind, const uint8_t *wb, int64_t i, float *dw)
{
    if (kind == K_MXFP4) {
        const block_mxfp4 *b = (const block_mxfp4 *)wb + i;
        const __m256i tbl = _mm256_setr_epi8(0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8,
                                             -12, 0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6,
                                             -8, -12);
        *dw = mr_e8m0_to_f32_half(b->e);
        return _mm256_shuffle_epi8(tbl, nibbles32(b->qs));
    }
    if (kind == K_IQ4NL) {
        const block_iq4_nl *b = (const block_iq4_nl *)wb + i;
        const __m256i tbl = _mm256_setr_epi8(-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25,
                                             38, 53, 69, 89, 113, -127, -104, -83, -65, -49, -35,
                                             -22, -10, 1, 13, 25, 38, 53, 69, 89, 113);
        *dw = f16_to_f32(b->d);
        return _mm256_shuffle_epi8(tbl, nibbles32(b->qs));
    }
    const block_q5_0 *b = (const block_q5_0 *)wb + i;
    uint32_t h;
    memcpy(&h, b->qh, 4);
    *dw = f16_to_f32(b->d);
    /* q5 = nibble | 16 where the fifth bit is set; w = q5 - 16 */
    const __m256i q5 = _mm256_or_si256(nibbles32(b->qs),
                                       _mm256_and_si256(bits_to_bytes(h), _mm256_set1_epi8(0x10)));
    return _mm256_sub_epi8(q5, _mm256_set1_epi8(16));
}

AI float hsum256(__m256 v)
{
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    q = _mm_add_ss(q, _mm_movehdup_ps(q));
    return _mm_cvtss_f32(q);
}

AI float dot_q(const int kind, const void *w, const void *act, int64_t n)
{
    const block_q8_0 *a = act;
    const int64_t nb = n / QK8_0;
    const __m256i ones16 = _mm256_set1_epi16(1);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        float dw;
        const __m256i wq = weights32(kind, w, i, &dw);
        const __m256i aq = _mm256_loadu_si256((const __m256i *)a[i].qs);
        /* |w| * (a signed like w) = w * a; pairs in int16, then 4 in int32 */
        const __m256i p = _mm256_madd_epi16(
            _mm256_maddubs_epi16(_mm256_sign_epi8(wq, wq), _mm256_sign_epi8(aq, wq)), ones16);
        const float d = f16_to_f32(a[i].d) * dw;
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(d), acc);
    }
    return hsum256(acc);
}

/* Q4_1 / Q5_1 with Q8_1: x = d q + m with q unsigned, so vpmaddubsw takes
 * q as it is (pairs within 2 * 31 * 127); the minimum's term m s is added
 * per block in a scalar sum, as ggml forms it. */
AI float dot_min_q8_1(const int q5, const void *w, const void *act, int64_t n)
{
    const block_q8_1 *a = act;
    const int64_t nb = n / QK8_1;
    const __m256i ones16 = _mm256_set1_epi16(1);
    __m256 acc = _mm256_setzero_ps();
    float msum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        __m256i q;
        float dw, mw;
        if (q5) {
            const block_q5_1 *b = (const block_q5_1 *)w + i;
            uint32_t h;
            memcpy(&h, b->qh, 4);
            q = _mm256_or_si256(nibbles32(b->qs), _mm256_and_si256(bits_to_bytes(h), _mm256_set1_epi8(0x10)));
            dw = f16_to_f32(b->d);
            mw = f16_to_f32(b->m);
        } else {
            const block_q4_1 *b = (const block_q4_1 *)w + i;
            q = nibbles32(b->qs);
            dw = f16_to_f32(b->d);
            mw = f16_to_f32(b->m);
        }
        const __m256i aq = _mm256_loadu_si256((const __m256i *)a[i].qs);
        /* 8 lanes, each the exact sum of 4 products q a */
        const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(q, aq), ones16);
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(dw * f16_to_f32(a[i].d)), acc);
        msum += mw * f16_to_f32(a[i].s);
    }
    return hsum256(acc) + msum;
}

static float mr_dot_q4_1_q8_1_avx2(const void *w, const void *act, int64_t n)
{
    return dot_min_q8_1(0, w, act, n);
}

static float mr_dot_q5_1_q8_1_avx2(const void *w, const void *act, int64_t n)
{
    return dot_min_q8_1(1, w, act, n);
}

static float mr_dot_mxfp4_q8_0_avx2(const void *w, const void *act, int64_t n)
{
    return dot_q(K_MXFP4, w, act, n);
}

static float mr_dot_iq4_nl_q8_0_avx2(const void *w, const void *act, int64_t n)
{
    return dot_q(K_IQ4NL, w, act, n);
}

static float mr_dot_q5_0_q8_0_avx2(const void *w, const void *act, int64_t n)
{
    return dot_q(K_Q5_0, w, act, n);
}

void mr_kernels_init_avx2_more(mr_kernels *k)
{
    k->vec_dot[MR_TYPE_MXFP4] = mr_dot_mxfp4_q8_0_avx2;
    k->vec_dot[MR_TYPE_IQ4_NL] = mr_dot_iq4_nl_q8_0_avx2;
    k->vec_dot[MR_TYPE_Q5_0] = mr_dot_q5_0_q8_0_avx2;
    k->vec_dot[MR_TYPE_Q4_1] = mr_dot_q4_1_q8_1_avx2;
    k->vec_dot[MR_TYPE_Q5_1] = mr_dot_q5_1_q8_1_avx2;
}
