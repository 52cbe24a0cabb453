/* x86_avx512_attn.c - the attention block kernel (kernels.h) with AVX-512,
 * and the KV cache's rows widened to f32 for it (kv_to_f32).  The block:
 * q.k per key in 16-lane FMAs reduced in a fixed order, e^x over 16 keys at
 * a time, and acc += e_j v_j over 64 value lanes per pass.  Loads are
 * unaligned and the order of every sum is fixed by n, dk and dv alone. */
#include <immintrin.h>
#include <math.h>

#include "x86_avx512.h"

#define AI static inline __attribute__((always_inline))

/* Fixed-order sum of 16 lanes */
AI float hsum16(__m512 v)
{
    const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v),
                                   _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    q = _mm_add_ss(q, _mm_movehdup_ps(q));
    return _mm_cvtss_f32(q);
}

/* e^x for x <= 0 (Cephes' expf: x = n ln2 + r, |r| <= ln2/2, a degree-6
 * polynomial for e^r, then 2^n); ~1 ulp; x below -87.3 gives ~0. */
AI __m512 exp16(__m512 x)
{
    x = _mm512_max_ps(x, _mm512_set1_ps(-87.3f));
    const __m512 fx = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                           _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(fx, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(fx, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 y = _mm512_set1_ps(1.9875691500e-4f);
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.3981999507e-3f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(8.3334519073e-3f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(4.1665795894e-2f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.6666665459e-1f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(5.0000001201e-1f));
    y = _mm512_fmadd_ps(y, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(y, fx);
}

AI __mmask16 tail_mask(int64_t left)
{
    return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
}

void mr_attn_block_avx512(const float *q, const float *k, size_t k_stride, const float *v,
                          size_t v_stride, int64_t n, int64_t dk, int64_t dv, float scale,
                          float *m, float *l, float *acc)
{
    _Alignas(64) float s[MR_ATTN_BLOCK];
    /* scores: two accumulators per key, the tail masked */
    for (int64_t j = 0; j < n; j++) {
        const float *kj = k + (size_t)j * k_stride;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0;
        int64_t i = 0;
        for (; i + 32 <= dk; i += 32) {
            a0 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), _mm512_loadu_ps(kj + i), a0);
            a1 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i + 16), _mm512_loadu_ps(kj + i + 16), a1);
        }
        for (; i < dk; i += 16) {
            const __mmask16 mk = tail_mask(dk - i);
            a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, q + i), _mm512_maskz_loadu_ps(mk, kj + i), a0);
        }
        s[j] = hsum16(_mm512_add_ps(a0, a1)) * scale;
    }
    /* the new maximum (max is exact, so its order does not matter) */
    float mx = *m;
    for (int64_t j = 0; j < n; j++)
        mx = s[j] > mx ? s[j] : mx;
    /* e_j = e^(s_j - mx), in place; their sum in one vector, then reduced */
    const __m512 vmx = _mm512_set1_ps(mx);
    __m512 vsum = _mm512_setzero_ps();
    for (int64_t j = 0; j < n; j += 16) {
        const __mmask16 mk = tail_mask(n - j);
        const __m512 e = _mm512_maskz_mov_ps(mk, exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(mk, s + j), vmx)));
        _mm512_mask_storeu_ps(s + j, mk, e);
        vsum = _mm512_add_ps(vsum, e);
    }
    const float corr = expf(*m - mx); /* 0 while m is -inf */
    const __m512 vc = _mm512_set1_ps(corr);
    /* acc = acc * corr + sum_j e_j v_j, 64 lanes of dv per pass */
    for (int64_t c = 0; c < dv; c += 64) {
        const __mmask16 k0 = tail_mask(dv - c), k1 = tail_mask(dv - c - 16 > 0 ? dv - c - 16 : 0);
        const __mmask16 k2 = tail_mask(dv - c - 32 > 0 ? dv - c - 32 : 0);
        const __mmask16 k3 = tail_mask(dv - c - 48 > 0 ? dv - c - 48 : 0);
        __m512 o0 = _mm512_mul_ps(_mm512_maskz_loadu_ps(k0, acc + c), vc);
        __m512 o1 = _mm512_mul_ps(_mm512_maskz_loadu_ps(k1, acc + c + 16), vc);
        __m512 o2 = _mm512_mul_ps(_mm512_maskz_loadu_ps(k2, acc + c + 32), vc);
        __m512 o3 = _mm512_mul_ps(_mm512_maskz_loadu_ps(k3, acc + c + 48), vc);
        for (int64_t j = 0; j < n; j++) {
            const float *vj = v + (size_t)j * v_stride + c;
            const __m512 e = _mm512_set1_ps(s[j]);
            o0 = _mm512_fmadd_ps(e, _mm512_maskz_loadu_ps(k0, vj), o0);
            o1 = _mm512_fmadd_ps(e, _mm512_maskz_loadu_ps(k1, vj + 16), o1);
            o2 = _mm512_fmadd_ps(e, _mm512_maskz_loadu_ps(k2, vj + 32), o2);
            o3 = _mm512_fmadd_ps(e, _mm512_maskz_loadu_ps(k3, vj + 48), o3);
        }
        _mm512_mask_storeu_ps(acc + c, k0, o0);
        _mm512_mask_storeu_ps(acc + c + 16, k1, o1);
        _mm512_mask_storeu_ps(acc + c + 32, k2, o2);
        _mm512_mask_storeu_ps(acc + c + 48, k3, o3);
    }
    *l = *l * corr + hsum16(vsum);
    *m = mx;
}

/* ------------------------------------------------ the KV cache as f32 */

/* F16 rows widened 16 at a time (vcvtph2ps is exact), the tail under a
 * mask: no read past the row. */
void mr_f16_kv_to_f32_avx512(const void *src, float *dst, int64_t n)
{
    const uint8_t *p = src;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p + 2 * i))));
    if (i < n) {
        const __mmask16 mk = (__mmask16)((1u << (n - i)) - 1);
        const __m256i h = _mm256_maskz_loadu_epi16(mk, p + 2 * i);
        _mm512_mask_storeu_ps(dst + i, mk, _mm512_cvtph_ps(h));
    }
}

/* Q8_0 rows: d * q, one product per element as the reference forms it. */
void mr_q8_0_kv_to_f32_avx512(const void *src, float *dst, int64_t n)
{
    const block_q8_0 *x = src;
    for (int64_t b = 0; b < n / QK8_0; b++) {
        const __m512 d = _mm512_cvtph_ps(_mm256_set1_epi16((short)x[b].d));
        for (int j = 0; j < QK8_0; j += 16) {
            const __m128i q = _mm_loadu_si128((const __m128i *)(x[b].qs + j));
            _mm512_storeu_ps(dst + b * QK8_0 + j, _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q))));
        }
    }
}
