/* x86_avx2_more.c - MXFP4, IQ4_NL and Q5_0 weights dotted with Q8_0
 * activations, Q4_1/Q5_1 with Q8_1 and IQ4_XS/Q2_K/Q3_K with Q8_K, in
 * integers, AVX2 (vec_dot; the driver loops rows x tokens).
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

/* IQ4_XS with Q8_K: per 32 weights, the codebook weights (sign moved to
 * the activations as in dot_q) times the sub-block scale d * d8 * (ls - 32),
 * formed as ggml forms it. */
static float mr_dot_iq4_xs_q8_K_avx2(const void *w, const void *act, int64_t n)
{
    const block_iq4_xs *x = w;
    const block_q8_K *a = act;
    const int64_t nb = n / QK_K;
    const __m256i ones16 = _mm256_set1_epi16(1);
    const __m256i tbl = _mm256_setr_epi8(-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38,
                                         53, 69, 89, 113, -127, -104, -83, -65, -49, -35, -22, -10,
                                         1, 13, 25, 38, 53, 69, 89, 113);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const float d4d8 = f16_to_f32(x[i].d) * a[i].d;
        for (int ib = 0; ib < 8; ib++) {
            const int ls = ((x[i].scales_l[ib / 2] >> 4 * (ib % 2)) & 0x0f) |
                           ((x[i].scales_h >> 2 * ib) & 3) << 4;
            const __m256i wq = _mm256_shuffle_epi8(tbl, nibbles32(x[i].qs + 16 * ib));
            const __m256i aq = _mm256_loadu_si256((const __m256i *)(a[i].qs + 32 * ib));
            const __m256i p = _mm256_madd_epi16(
                _mm256_maddubs_epi16(_mm256_sign_epi8(wq, wq), _mm256_sign_epi8(aq, wq)), ones16);
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(d4d8 * (float)(ls - 32)), acc);
        }
    }
    return hsum256(acc);
}

/* sum of 8 int32 lanes (exact) */
AI int32_t hsum_i32(__m256i v)
{
    __m128i q = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    q = _mm_add_epi32(q, _mm_shuffle_epi32(q, _MM_SHUFFLE(1, 0, 3, 2)));
    q = _mm_add_epi32(q, _mm_shuffle_epi32(q, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(q);
}

/* int16 lanes 0..7 = a, 8..15 = b */
AI __m256i two_scales16(int a, int b)
{
    return _mm256_set_m128i(_mm_set1_epi16((short)b), _mm_set1_epi16((short)a));
}

/* Q2_K with Q8_K.  For each 32 weights 128 h + 32 k + l (one shift of 32
 * qs bytes), the 2-bit codes are the unsigned operand of vpmaddubsw
 * (pairs within 2 * 3 * 127), vpmaddwd multiplies each 16-weight half by
 * its 4-bit scale, and the block's integer sum is exact; the mins' term
 * goes through the activations' 16-sums.  The two integers meet the
 * scales in ggml's float operations. */
static float mr_dot_q2_K_q8_K_avx2(const void *w, const void *act, int64_t n)
{
    const block_q2_K *x = w;
    const block_q8_K *a = act;
    const int64_t nb = n / QK_K;
    const __m256i m3 = _mm256_set1_epi8(3);
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        /* summs = sum_j bsums[j] * (scales[j] >> 4) */
        const __m256i mins = _mm256_srli_epi16(
            _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)x[i].scales)), 4);
        const int32_t summs = hsum_i32(
            _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)a[i].bsums), mins));
        __m256i isum = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const __m256i q = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * h));
            for (int k = 0; k < 4; k++) {
                const __m256i codes = _mm256_and_si256(_mm256_srl_epi16(q, _mm_cvtsi32_si128(2 * k)), m3);
                const __m256i aq = _mm256_loadu_si256((const __m256i *)(a[i].qs + 128 * h + 32 * k));
                const int j = 8 * h + 2 * k;
                const __m256i sc = two_scales16(x[i].scales[j] & 0x0f, x[i].scales[j + 1] & 0x0f);
                isum = _mm256_add_epi32(isum, _mm256_madd_epi16(_mm256_maddubs_epi16(codes, aq), sc));
            }
        }
        const float dall = a[i].d * f16_to_f32(x[i].d);
        const float dmin = a[i].d * f16_to_f32(x[i].dmin);
        sum += dall * (float)hsum_i32(isum) - dmin * (float)summs;
    }
    return sum;
}

/* Q3_K with Q8_K.  The unsigned operand is u = q + 4 in [0, 7] (2 low
 * bits | the hmask bit << 2); sum (u - 4) a = sum u a - 4 sum a, the
 * second term through bsums.  Each 16-weight half is multiplied by its
 * sc - 32 in vpmaddwd; the block's integer sum is exact. */
static float mr_dot_q3_K_q8_K_avx2(const void *w, const void *act, int64_t n)
{
    const block_q3_K *x = w;
    const block_q8_K *a = act;
    const int64_t nb = n / QK_K;
    const __m256i m3 = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1);
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        int16_t sc[16]; /* sc - 32 in [-32, 31] */
        for (int j = 0; j < 16; j++) {
            const int lo = j < 8 ? x[i].scales[j] & 0x0f : x[i].scales[j - 8] >> 4;
            sc[j] = (int16_t)((lo | ((x[i].scales[8 + j % 4] >> 2 * (j / 4)) & 3) << 4) - 32);
        }
        /* corr = sum_j (sc_j - 32) bsums_j */
        const int32_t corr = hsum_i32(_mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)a[i].bsums),
                                                        _mm256_loadu_si256((const __m256i *)sc)));
        const __m256i hm = _mm256_loadu_si256((const __m256i *)x[i].hmask);
        __m256i isum = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const __m256i q = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * h));
            for (int k = 0; k < 4; k++) {
                const __m256i lo = _mm256_and_si256(_mm256_srl_epi16(q, _mm_cvtsi32_si128(2 * k)), m3);
                /* bit 4h + k of hmask[l] */
                const __m256i hb = _mm256_and_si256(_mm256_srl_epi16(hm, _mm_cvtsi32_si128(4 * h + k)), one);
                const __m256i u = _mm256_or_si256(lo, _mm256_slli_epi16(hb, 2));
                const __m256i aq = _mm256_loadu_si256((const __m256i *)(a[i].qs + 128 * h + 32 * k));
                const int j = 8 * h + 2 * k;
                isum = _mm256_add_epi32(isum, _mm256_madd_epi16(_mm256_maddubs_epi16(u, aq),
                                                                two_scales16(sc[j], sc[j + 1])));
            }
        }
        const float d = f16_to_f32(x[i].d) * a[i].d;
        sum += d * (float)(hsum_i32(isum) - 4 * corr);
    }
    return sum;
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
    k->vec_dot[MR_TYPE_IQ4_XS] = mr_dot_iq4_xs_q8_K_avx2;
    k->vec_dot[MR_TYPE_Q2_K] = mr_dot_q2_K_q8_K_avx2;
    k->vec_dot[MR_TYPE_Q3_K] = mr_dot_q3_K_q8_K_avx2;
}
