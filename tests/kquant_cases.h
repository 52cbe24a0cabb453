/* kquant_cases.h - deterministic K-quant test inputs, shared by
 * tests/test_quant_k.c and tests/oracle/ggml_kquant_oracle.c (the program
 * that computed the expected digests from ggml itself).  Both must see the
 * very same floats, so inputs use only exact integer arithmetic and IEEE
 * + - * on floats: no libm, no platform-dependent rounding.  Changing
 * anything here invalidates the digests in test_quant_k.c. */
#ifndef MOERUN_TESTS_KQUANT_CASES_H
#define MOERUN_TESTS_KQUANT_CASES_H

#include <stddef.h>
#include <stdint.h>

#define KQ_QK 256          /* QK_K */
#define KQ_ROW_BLOCKS 8    /* blocks per digest row */
#define KQ_ROW (KQ_QK * KQ_ROW_BLOCKS)

/* splitmix64 */
static inline uint64_t kq_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* uniform in [-1, 1): a 24-bit integer over 2^23, minus 1, all exact */
static inline float kq_uniform(uint64_t *s)
{
    return (float)(int32_t)(kq_next(s) >> 40) * (1.0f / 8388608.0f) - 1.0f;
}

/* Input shapes, each aimed at a different branch of the quantizers. */
enum {
    KQ_UNIFORM,     /* plain noise in [-1, 1) */
    KQ_BELL_VARIED, /* bell-shaped, amplitude 2^-4 .. 2^4 per 16 weights:
                     * small 6-bit scales, some rounding to 0 */
    KQ_OUTLIERS,    /* small noise with every ~29th weight 60x larger */
    KQ_SPARSE,      /* per 16 weights: zero, 1e-8, 1e-20 (below ggml's
                     * GROUP_MAX_EPS) or noise */
    KQ_OFFSET,      /* 5 + noise: all positive, Q4_K's min clamps to 0 */
    KQ_NEAR_CONST,  /* -3 + 1e-4 noise */
    KQ_LATTICE,     /* multiples of 1/4 in [-8, 7.75]: exact ties */
    KQ_N_SHAPES
};

static inline const char *kq_shape_name(int shape)
{
    static const char *names[KQ_N_SHAPES] = {"uniform", "bell-varied", "outliers", "sparse",
                                             "offset", "near-const", "lattice"};
    return shape >= 0 && shape < KQ_N_SHAPES ? names[shape] : "?";
}

static inline void kq_fill(int shape, uint64_t seed, float *x, int64_t n)
{
    static const float pow2[9] = {0.0625f, 0.125f, 0.25f, 0.5f, 1.0f, 2.0f, 4.0f, 8.0f, 16.0f};
    uint64_t s = seed;
    float amp = 1.0f;
    int kind = 0;
    for (int64_t i = 0; i < n; i++) {
        if (i % 16 == 0) {
            amp = pow2[kq_next(&s) % 9];
            kind = (int)(kq_next(&s) % 4);
        }
        const float u = kq_uniform(&s);
        switch (shape) {
        case KQ_BELL_VARIED: {
            const float b = u + kq_uniform(&s) + kq_uniform(&s) + kq_uniform(&s);
            x[i] = b * 0.5f * amp;
            break;
        }
        case KQ_OUTLIERS:
            x[i] = kq_next(&s) % 29 == 0 ? 6.0f * u : 0.1f * u;
            break;
        case KQ_SPARSE:
            x[i] = kind == 0 ? 0.0f : kind == 1 ? 1e-8f * u : kind == 2 ? 1e-20f * u : u;
            break;
        case KQ_OFFSET:
            x[i] = 5.0f + u;
            break;
        case KQ_NEAR_CONST:
            x[i] = -3.0f + 1e-4f * u;
            break;
        case KQ_LATTICE:
            x[i] = (float)((int)(kq_next(&s) % 64) - 32) * 0.25f;
            break;
        default:
            x[i] = u;
            break;
        }
    }
}

/* Activations for the dot digests: bell-shaped, varied amplitude. */
static inline void kq_fill_activations(uint64_t seed, float *x, int64_t n)
{
    kq_fill(KQ_BELL_VARIED, seed, x, n);
}

/* FNV-1a, 64-bit */
static inline uint64_t kq_fnv1a(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* ---- hand-derivable blocks (their expected bytes are worked out in
 * test_quant_k.c) ---- */

/* Q4_K: sub-block j is exactly x = 2^-k (l - 8) with l = (7i + j) % 16 for
 * i < 32 (every l in [0, 15] occurs) and k = q4k_hand_k[j]. */
static const int q4k_hand_k[8] = {3, 4, 5, 6, 0, 1, 2, 0};

static inline int q4k_hand_l(int j, int i)
{
    return (7 * i + j) % 16;
}

static inline void q4k_hand_fill(float *x)
{
    for (int j = 0; j < 8; j++) {
        const float s = 1.0f / (float)(1 << q4k_hand_k[j]);
        for (int i = 0; i < 32; i++)
            x[32 * j + i] = s * (float)(q4k_hand_l(j, i) - 8);
    }
}

/* Q6_K: in every sub-block of 16, weight 0 is 32 and weight i > 0 is the
 * integer v = (5i + 3j) % 63 - 31, in [-31, 31]. */
static inline int q6k_hand_v(int j, int i)
{
    return i == 0 ? 32 : (5 * i + 3 * j) % 63 - 31;
}

static inline void q6k_hand_fill(float *x)
{
    for (int j = 0; j < 16; j++)
        for (int i = 0; i < 16; i++)
            x[16 * j + i] = (float)q6k_hand_v(j, i);
}

/* Q8_K: x[0] = 254, x[j] = j - 128 for j > 0. */
static inline void q8k_hand_fill(float *x)
{
    x[0] = 254.0f;
    for (int j = 1; j < 256; j++)
        x[j] = (float)(j - 128);
}

#endif
