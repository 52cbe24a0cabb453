/* x86_avx2_attn.c - the attention block kernel (kernels.h) with AVX2+FMA,
 * and the KV cache's rows widened to f32 for it (kv_to_f32).  The block:
 * q.k per key in 8-lane FMAs reduced in a fixed order, e^x over 8 keys at a
 * time, acc += e_j v_j over 32 value lanes per pass.  Tails are handled by
 * copying into zero-padded registers, never by reading past an end. */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "x86_avx2.h"

#define AI static inline __attribute__((always_inline))

AI float hsum8(__m256 v)
{
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    q = _mm_add_ss(q, _mm_movehdup_ps(q));
    return _mm_cvtss_f32(q);
}

/* e^x for x <= 0, as exp16 in x86_avx512_attn.c; 2^n built in the
 * exponent bits (x >= -87.3 keeps n >= -126, a normal number). */
AI __m256 exp8(__m256 x)
{
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.3f));
    const __m256 fx = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

/* Up to 8 floats from p (left of them), zero-padded. */
AI __m256 load_part(const float *p, int64_t left)
{
    if (left >= 8)
        return _mm256_loadu_ps(p);
    float t[8] = {0};
    memcpy(t, p, (size_t)(left > 0 ? left : 0) * sizeof(float));
    return _mm256_loadu_ps(t);
}

AI void store_part(float *p, __m256 v, int64_t left)
{
    if (left >= 8) {
        _mm256_storeu_ps(p, v);
        return;
    }
    float t[8];
    _mm256_storeu_ps(t, v);
    memcpy(p, t, (size_t)(left > 0 ? left : 0) * sizeof(float));
}

void mr_attn_block_avx2(const float *q, const float *k, size_t k_stride, const float *v,
                        size_t v_stride, int64_t n, int64_t dk, int64_t dv, float scale, float *m,
                        float *l, float *acc)
{
    _Alignas(32) float s[MR_ATTN_BLOCK + 8];
    for (int64_t j = 0; j < n; j++) {
        const float *kj = k + (size_t)j * k_stride;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0;
        int64_t i = 0;
        for (; i + 16 <= dk; i += 16) {
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), _mm256_loadu_ps(kj + i), a0);
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 8), _mm256_loadu_ps(kj + i + 8), a1);
        }
        for (; i < dk; i += 8)
            a0 = _mm256_fmadd_ps(load_part(q + i, dk - i), load_part(kj + i, dk - i), a0);
        s[j] = hsum8(_mm256_add_ps(a0, a1)) * scale;
    }
    float mx = *m;
    for (int64_t j = 0; j < n; j++)
        mx = s[j] > mx ? s[j] : mx;
    const __m256 vmx = _mm256_set1_ps(mx);
    __m256 vsum = _mm256_setzero_ps();
    for (int64_t j = 0; j < n; j += 8) {
        __m256 e = exp8(_mm256_sub_ps(load_part(s + j, n - j), vmx));
        if (n - j < 8) /* lanes past n: 0, not e^(0 - mx) */
            e = _mm256_and_ps(e, _mm256_castsi256_ps(_mm256_cmpgt_epi32(
                                     _mm256_set1_epi32((int)(n - j)),
                                     _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))));
        _mm256_storeu_ps(s + j, e);
        vsum = _mm256_add_ps(vsum, e);
    }
    const float corr = expf(*m - mx);
    const __m256 vc = _mm256_set1_ps(corr);
    for (int64_t c = 0; c < dv; c += 32) {
        __m256 o0 = _mm256_mul_ps(load_part(acc + c, dv - c), vc);
        __m256 o1 = _mm256_mul_ps(load_part(acc + c + 8, dv - c - 8), vc);
        __m256 o2 = _mm256_mul_ps(load_part(acc + c + 16, dv - c - 16), vc);
        __m256 o3 = _mm256_mul_ps(load_part(acc + c + 24, dv - c - 24), vc);
        if (dv - c >= 32) {
            for (int64_t j = 0; j < n; j++) {
                const float *vj = v + (size_t)j * v_stride + c;
                const __m256 e = _mm256_set1_ps(s[j]);
                o0 = _mm256_fmadd_ps(e, _mm256_loadu_ps(vj), o0);
                o1 = _mm256_fmadd_ps(e, _mm256_loadu_ps(vj + 8), o1);
                o2 = _mm256_fmadd_ps(e, _mm256_loadu_ps(vj + 16), o2);
                o3 = _mm256_fmadd_ps(e, _mm256_loadu_ps(vj + 24), o3);
            }
        } else {
            for (int64_t j = 0; j < n; j++) {
                const float *vj = v + (size_t)j * v_stride + c;
                const __m256 e = _mm256_set1_ps(s[j]);
                o0 = _mm256_fmadd_ps(e, load_part(vj, dv - c), o0);
                o1 = _mm256_fmadd_ps(e, load_part(vj + 8, dv - c - 8), o1);
                o2 = _mm256_fmadd_ps(e, load_part(vj + 16, dv - c - 16), o2);
                o3 = _mm256_fmadd_ps(e, load_part(vj + 24, dv - c - 24), o3);
            }
        }
        store_part(acc + c, o0, dv - c);
        store_part(acc + c + 8, o1, dv - c - 8);
        store_part(acc + c + 16, o2, dv - c - 16);
        store_part(acc + c + 24, o3, dv - c - 24);
    }
    *l = *l * corr + hsum8(vsum);
    *m = mx;
}

/* ------------------------------------------------ the KV cache as f32 */

/* F16 rows widened 8 at a time (vcvtph2ps is exact); the tail one lane at
 * a time through the same instruction. */
void mr_f16_kv_to_f32_avx2(const void *src, float *dst, int64_t n)
{
    const uint8_t *p = src;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 2 * i))));
    for (; i < n; i++) {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        dst[i] = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h)));
    }
}

/* Q8_0 rows: d * q, one product per element as the reference forms it. */
void mr_q8_0_kv_to_f32_avx2(const void *src, float *dst, int64_t n)
{
    const block_q8_0 *x = src;
    for (int64_t b = 0; b < n / QK8_0; b++) {
        const __m256 d = _mm256_cvtph_ps(_mm_set1_epi16((short)x[b].d));
        for (int j = 0; j < QK8_0; j += 8) {
            const __m128i q = _mm_loadl_epi64((const __m128i *)(x[b].qs + j));
            _mm256_storeu_ps(dst + b * QK8_0 + j, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q))));
        }
    }
}
