/* test_quant_more.c - the scalar references of the further formats (MXFP4,
 * Q4_1, Q5_0, Q5_1, IQ4_NL, IQ4_XS, Q2_K, Q3_K): known answers from ggml
 * itself, dots against float64, the formats' edge cases, and, when the
 * shared data is there, MXFP4 tensors of a llama.cpp-written file against
 * gguf-py's dequantizer.
 *
 * Known answers (see tests/qtypes_cases.h for how they were computed): for
 * the seven input rows of kquant_cases.h, the FNV-1a of the quantized bytes
 * and of the dequantized floats, and the bits of the integer dot with the
 * activations ggml pairs the type with; for two rows of random blocks
 * (valid scales, every other byte random), the dequantized floats and the
 * dot.  Random inputs print their seed. */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "kernels.h"
#include "qtypes_cases.h"
#include "testutil.h"
#include "types.h"

typedef struct {
    uint64_t q, deq;
    uint32_t dot;
} row_digest;

typedef struct {
    uint64_t deq;
    uint32_t dot;
} rand_digest;

typedef struct {
    uint32_t type;
    uint32_t act;               /* activation type of the integer dot */
    mr_vec_dot_fn dot;          /* reference integer dot */
    int f16a, f16b;             /* scale fields, for mr_random_blocks */
    row_digest rows[KQ_N_SHAPES];
    rand_digest rand[2];
} type_case;

/* Every digest below was printed by ggml (qtypes_cases.h says how). */
static const type_case cases[] = {
    {MR_TYPE_MXFP4, MR_TYPE_Q8_0, mr_dot_mxfp4_q8_0, -2, -1,
     {{0x8d1316021d3e7b8eull, 0x85c53b2dbe3696fbull, 0xc2c9aca0u}, /* uniform -100.837 */
      {0x79248ecec44cc160ull, 0x6781b5cdb320a4acull, 0xc1a7adf0u}, /* bell-varied -20.9599 */
      {0x14781245cffa548eull, 0x7b9bfaff0d20af3eull, 0xc2aea834u}, /* outliers -87.3285 */
      {0x2bd944524d507ca6ull, 0x336245f76e6af872ull, 0x42a8c668u}, /* sparse 84.3875 */
      {0x7d6f89b5d27301ccull, 0xc497709d6d92c525ull, 0x418cf948u}, /* offset 17.6217 */
      {0xc55f1df3c91a2c25ull, 0xba2ce244d194a325ull, 0x436a36d8u}, /* near-const 234.214 */
      {0x52f970ecc87bf258ull, 0x44018fe4e1ff8658ull, 0xc3d18bdbu}}, /* lattice -419.093 */
     {{0xf128f870d844765aull, 0x4675c1d8u}, {0x73933fdd84655ac2ull, 0xc7ae1aaau}}},
    {MR_TYPE_Q4_1, MR_TYPE_Q8_1, mr_dot_q4_1_q8_1, 0, 2,
     {{0xfe1b2cdb66ff81fcull, 0x6bed9b6df8c5bbd3ull, 0xc2eb8fceu}, /* uniform -117.781 */
      {0x6eef39ef4efaa37bull, 0xec8470a5e8dfed70ull, 0x4203ef22u}, /* bell-varied 32.9835 */
      {0x74e3b848ebad7b38ull, 0x11d80d797c9b79b0ull, 0xc2d396f3u}, /* outliers -105.795 */
      {0x814a7746ba2fa37cull, 0x831dd99ca698ba2cull, 0x42af9c7cu}, /* sparse 87.8056 */
      {0x082adc229b5399dbull, 0xccba4f2b9847f20full, 0x425a401cu}, /* offset 54.5626 */
      {0x3e8baa8379584d59ull, 0x869e1068afe7be98ull, 0x436a313eu}, /* near-const 234.192 */
      {0x4b7d7ce42e54daebull, 0x291deffb7968e0b2ull, 0xc3dd3b94u}}, /* lattice -442.465 */
     {{0x21c68d03865551aaull, 0x43988ce9u}, {0x8389eeb15b2d840dull, 0xc3c4dfc5u}}},
    {MR_TYPE_Q5_0, MR_TYPE_Q8_0, mr_dot_q5_0_q8_0, 0, -1,
     {{0xbec7867da93856e2ull, 0x12fe553caa1ab9b5ull, 0xc2dbbd16u}, /* uniform -109.869 */
      {0xbad9eea109a492bfull, 0x57f97fed00e5e066ull, 0x423df3cau}, /* bell-varied 47.4881 */
      {0x562d58155bb1195full, 0x02a9d3935395d995ull, 0xc2a138f0u}, /* outliers -80.6112 */
      {0x6a3d4e06b5a61763ull, 0xee712b17c1c74bbcull, 0x42b3b5ebu}, /* sparse 89.8553 */
      {0xdf7ca130d0e3a622ull, 0x9841d23291dcf5deull, 0x424ad166u}, /* offset 50.7045 */
      {0x040d894f0e2d1725ull, 0xba2ce244d194a325ull, 0x436a36d8u}, /* near-const 234.214 */
      {0x56bf0188715436d9ull, 0x408f8919bb39c32bull, 0xc3dfbb55u}}, /* lattice -447.464 */
     {{0xbe2e72a138a46981ull, 0x44a60d90u}, {0x9dbf9c3e1c9599a8ull, 0x439d3367u}}},
    {MR_TYPE_Q5_1, MR_TYPE_Q8_1, mr_dot_q5_1_q8_1, 0, 2,
     {{0xcccf3dfde40e2838ull, 0xf57c45cac9daa171ull, 0xc2dd784eu}, /* uniform -110.735 */
      {0x8950bc5649930753ull, 0x6d6df04132dd3385ull, 0x422c0828u}, /* bell-varied 43.008 */
      {0xc0dc9364e9cab920ull, 0x193554a8a7efa294ull, 0xc2a52c99u}, /* outliers -82.5871 */
      {0x92648c6de3f5399cull, 0x81bee454ff249740ull, 0x42b880e6u}, /* sparse 92.2518 */
      {0x536fe81ffeeec447ull, 0x7df15a4ff2710484ull, 0x423a8997u}, /* offset 46.6344 */
      {0xa9fa8c20dd8ea584ull, 0x9e647932f15355f0ull, 0x436a3170u}, /* near-const 234.193 */
      {0x53fdc6abf2e2b075ull, 0xa984c8bfabab1c1eull, 0xc3f01199u}}, /* lattice -480.137 */
     {{0xfa881e678147fe44ull, 0xc2f6fc7eu}, {0xd07cc231ff4a7db8ull, 0x41dffc68u}}},
    {MR_TYPE_IQ4_NL, MR_TYPE_Q8_0, mr_dot_iq4_nl_q8_0, 0, -1,
     {{0xe70c3de81e62b46aull, 0xdb7d6b0705e4be2cull, 0xc2ef5e6fu}, /* uniform -119.684 */
      {0xae46f30ec6f881d5ull, 0x2fe8deda288790f0ull, 0x42247452u}, /* bell-varied 41.1136 */
      {0x8cbaa4518a4452e1ull, 0x1a619e15e54a21fdull, 0xc287e7a5u}, /* outliers -67.9524 */
      {0xa18c7c9fee3c00edull, 0xa21d84506a977beeull, 0x42c10ef8u}, /* sparse 96.5292 */
      {0x1ce93ddc7a454179ull, 0x222dc4146d7b87f1ull, 0x427eaf7du}, /* offset 63.6714 */
      {0x208dc9466e07d475ull, 0x35ed8a31f0248aa5ull, 0x436a3200u}, /* near-const 234.195 */
      {0x22d0cf08cc5c6505ull, 0xc6223d0474633f4dull, 0xc403649au}}, /* lattice -525.572 */
     {{0xb5e1c2704c5c8820ull, 0xc40867a1u}, {0xa4d35fca6002d58bull, 0x44f42945u}}},
    {MR_TYPE_IQ4_XS, MR_TYPE_Q8_K, mr_dot_iq4_xs_q8_K, 0, -1,
     {{0x5f98c050e15a67e7ull, 0xd4b920e1ba040993ull, 0xc2eb2224u}, /* uniform -117.567 */
      {0xc4949fd8eec32c6eull, 0x8d74c0be44b8b226ull, 0x424667f0u}, /* bell-varied 49.6015 */
      {0xe3de6af5d1a00785ull, 0x9e92f3b38d566b20ull, 0xc29a0bdcu}, /* outliers -77.0232 */
      {0x3eef2fffd18669c8ull, 0x3c293c0a1d29c2bdull, 0x42c5e27au}, /* sparse 98.9423 */
      {0x1bb382f55a6d154cull, 0x3526b1ceab96de69ull, 0x425a6c00u}, /* offset 54.6055 */
      {0x8a9310c775cd61d2ull, 0x43de8e31dabcc225ull, 0x4360f9deu}, /* near-const 224.976 */
      {0x39dd1b30971552dfull, 0x6d2c3fb1a00d05bdull, 0xc3f73f8du}}, /* lattice -494.496 */
     {{0x8433e7758d095d00ull, 0xc6988eb7u}, {0xcace60a6256ebab8ull, 0x47bb6f4eu}}},
};
#define N_CASES (int)(sizeof cases / sizeof cases[0])

static uint64_t rng_state;

static void seed(uint64_t s, const char *what)
{
    rng_state = s;
    printf("%s: seed %llu\n", what, (unsigned long long)s);
}

static const int block_counts[] = {1, 2, 3, 5, 7, 8, 15, 16, 17, 31, 32, 33};
#define N_COUNTS (int)(sizeof block_counts / sizeof block_counts[0])

/* the activation quantizer of an activation type */
static mr_from_f32_fn act_quantizer(uint32_t at)
{
    mr_kernels k;
    mr_kernels_for_isa(MR_ISA_SCALAR, 0, &k);
    return k.quantize_act[at];
}

/* the dequantizer of an activation type (the type table leaves them out:
 * no tensor is stored in these formats) */
static mr_to_f32_fn act_dequantizer(uint32_t at)
{
    return at == MR_TYPE_Q8_0 ? mr_dequantize_row_q8_0
           : at == MR_TYPE_Q8_1 ? mr_dequantize_row_q8_1
                                : mr_dequantize_row_q8_K;
}

static size_t row_bytes(uint32_t t, int64_t n)
{
    return (size_t)mr_type_row_bytes(t, (uint64_t)n);
}

/* ------------------------------------------------------------ known answers */

/* Quantized bytes, dequantized floats and the integer dot, as ggml's. */
START_TEST(rows_match_ggml)
{
    const type_case *c = &cases[_i / KQ_N_SHAPES];
    const int shape = _i % KQ_N_SHAPES;
    const mr_type_traits *tt = mr_type_get(c->type);
    static float x[KQ_ROW], a[KQ_ROW], y[KQ_ROW];
    static unsigned char w[KQ_ROW * 2], aq[KQ_ROW * 2];
    const uint64_t s = 0x5eed0000u + (uint64_t)shape;
    kq_fill(shape, s, x, KQ_ROW);
    kq_fill_activations(s ^ 0xacu, a, KQ_ROW);
    memset(w, 0, sizeof w);
    tt->from_f32(x, w, KQ_ROW);
    tt->to_f32(w, y, KQ_ROW);
    act_quantizer(c->act)(a, aq, KQ_ROW);
    const float d = c->dot(w, aq, KQ_ROW);
    uint32_t bits;
    memcpy(&bits, &d, 4);
    const uint64_t hq = kq_fnv1a(w, row_bytes(c->type, KQ_ROW)), hd = kq_fnv1a(y, sizeof y);
    ck_assert_msg(hq == c->rows[shape].q, "%s %s: quantized bytes 0x%016llx", tt->name,
                  kq_shape_name(shape), (unsigned long long)hq);
    ck_assert_msg(hd == c->rows[shape].deq, "%s %s: dequantized 0x%016llx", tt->name,
                  kq_shape_name(shape), (unsigned long long)hd);
    ck_assert_msg(bits == c->rows[shape].dot, "%s %s: dot %a (0x%08x), ggml 0x%08x", tt->name,
                  kq_shape_name(shape), d, bits, c->rows[shape].dot);
}
END_TEST

/* Random blocks (every bit pattern but the scales'): decode and dot. */
START_TEST(random_blocks_match_ggml)
{
    const type_case *c = &cases[_i / 2];
    const int rep = _i % 2;
    const mr_type_traits *tt = mr_type_get(c->type);
    static float a[KQ_ROW], y[KQ_ROW];
    static unsigned char w[KQ_ROW * 2], aq[KQ_ROW * 2];
    /* the oracle's seed: 16 per type in its table order */
    static const uint32_t oracle_index[MR_TYPE_COUNT] = {
        [MR_TYPE_MXFP4] = 0, [MR_TYPE_Q4_1] = 1, [MR_TYPE_Q5_0] = 2, [MR_TYPE_Q5_1] = 3,
        [MR_TYPE_IQ4_NL] = 4, [MR_TYPE_IQ4_XS] = 5, [MR_TYPE_Q2_K] = 6, [MR_TYPE_Q3_K] = 7};
    uint64_t s = 0xb10c0000u + 16u * oracle_index[c->type] + (uint64_t)rep;
    mr_random_blocks(&s, w, KQ_ROW / (int)tt->block_size, (int)tt->type_size, c->f16a, c->f16b);
    kq_fill_activations(s, a, KQ_ROW);
    tt->to_f32(w, y, KQ_ROW);
    act_quantizer(c->act)(a, aq, KQ_ROW);
    const float d = c->dot(w, aq, KQ_ROW);
    uint32_t bits;
    memcpy(&bits, &d, 4);
    const uint64_t hd = kq_fnv1a(y, sizeof y);
    ck_assert_msg(hd == c->rand[rep].deq, "%s random %d: dequantized 0x%016llx", tt->name, rep,
                  (unsigned long long)hd);
    ck_assert_msg(bits == c->rand[rep].dot, "%s random %d: dot %a (0x%08x), ggml 0x%08x",
                  tt->name, rep, d, bits, c->rand[rep].dot);
}
END_TEST

/* Q8_1, the activations of the Q4_1/Q5_1 dots: bytes as ggml's. */
START_TEST(q8_1_matches_ggml)
{
    static const uint64_t want[KQ_N_SHAPES] = {
        0xa15780f71992fb94ull,
        0xd8ed00d995590be1ull,
        0xa476471f0b2105ebull,
        0x10559faeefe3f54dull,
        0xa9678dd3b6764017ull,
        0x5817f5f5b591cc4cull,
        0xe1b8b985e22ea3d1ull,
    };
    static float a[KQ_ROW];
    static block_q8_1 q[KQ_ROW / QK8_1];
    const uint64_t s = 0x5eed0000u + (uint64_t)_i;
    kq_fill_activations(s ^ 0xacu, a, KQ_ROW);
    mr_quantize_row_q8_1(a, q, KQ_ROW);
    const uint64_t h = kq_fnv1a(q, sizeof q);
    ck_assert_msg(h == want[_i], "%s: 0x%016llx", kq_shape_name(_i), (unsigned long long)h);
    /* s is d * sum(q) in f16, from the unrounded d */
    for (int b = 0; b < KQ_ROW / QK8_1; b++) {
        int sum = 0;
        for (int j = 0; j < QK8_1; j++)
            sum += q[b].qs[j];
        float amax = 0.0f;
        for (int j = 0; j < QK8_1; j++)
            amax = fmaxf(amax, fabsf(a[32 * b + j]));
        ck_assert_uint_eq(q[b].s, mr_f32_to_f16((float)sum * (amax / 127.0f)));
    }
}
END_TEST

/* ------------------------------------------------------------ dots */

/* Both dots against float64 over the dequantised operands. */
START_TEST(dots_match_float64)
{
    const type_case *c = &cases[_i / N_COUNTS];
    const mr_type_traits *tt = mr_type_get(c->type);
    const int64_t n = (int64_t)block_counts[_i % N_COUNTS] * (tt->block_size > 32 ? 256 : 32);
    seed(0xd07u + 977u * (uint64_t)_i, tt->name);
    float *x = malloc(sizeof(float) * (size_t)n), *a = malloc(sizeof(float) * (size_t)n);
    float *wd = malloc(sizeof(float) * (size_t)n), *ad = malloc(sizeof(float) * (size_t)n);
    unsigned char *w = malloc(row_bytes(c->type, n)), *aq = malloc(row_bytes(c->act, n));
    for (int64_t i = 0; i < n; i++) {
        x[i] = kq_uniform(&rng_state) * (i % 64 < 32 ? 1.0f : 0.01f);
        a[i] = kq_uniform(&rng_state);
    }
    tt->from_f32(x, w, n);
    tt->to_f32(w, wd, n);
    act_quantizer(c->act)(a, aq, n);
    act_dequantizer(c->act)(aq, ad, n);
    double want = 0, bound = 0, want_f = 0, bound_f = 0;
    for (int64_t i = 0; i < n; i++) {
        want += (double)wd[i] * ad[i];
        bound += fabs((double)wd[i] * ad[i]);
        want_f += (double)wd[i] * a[i];
        bound_f += fabs((double)wd[i] * a[i]);
    }
    if (c->act == MR_TYPE_Q8_1) {
        /* Q4_1/Q5_1: the minimum m meets the activations through Q8_1's
         * s = f16(d sum q), not through the dequantised activations:
         * sum_j (x_j - m) a_j + m s per block (m: the f16 at byte 2) */
        const size_t ts = mr_type_get(c->type)->type_size;
        want = 0;
        for (int64_t b = 0; b < n / 32; b++) {
            uint16_t mh;
            memcpy(&mh, w + (size_t)b * ts + 2, 2);
            const double m = mr_f16_to_f32(mh);
            const double sa = mr_f16_to_f32(((const block_q8_1 *)aq)[b].s);
            for (int j = 0; j < 32; j++)
                want += ((double)wd[32 * b + j] - m) * ad[32 * b + j];
            want += m * sa;
            bound += fabs(m * sa);
        }
    }
    const float got = c->dot(w, aq, n), got_f = tt->dot_f32(w, a, n);
    ck_assert_msg(fabs(got - want) <= 2e-6 * bound + 1e-6, "%s n=%lld: integer dot %.9g, float64 %.9g",
                  tt->name, (long long)n, got, want);
    ck_assert_msg(fabs(got_f - want_f) <= 2e-6 * bound_f + 1e-6, "%s n=%lld: f32 dot %.9g, float64 %.9g",
                  tt->name, (long long)n, got_f, want_f);
    free(x), free(a), free(wd), free(ad), free(w), free(aq);
}
END_TEST

/* ------------------------------------------------------------ MXFP4 */

START_TEST(mxfp4_e8m0_is_a_power_of_two)
{
    for (int e = 0; e < 256; e++) {
        const float want = ldexpf(1.0f, e - 128); /* 2^-128 .. 2^127, all representable */
        ck_assert_msg(mr_e8m0_to_f32_half((uint8_t)e) == want, "e = %d: %a", e,
                      mr_e8m0_to_f32_half((uint8_t)e));
    }
}
END_TEST

/* Every code in both nibble positions decodes to the OCP e2m1 value times
 * 2^(e - 127), rounded to float: from e = 253 the top codes overflow to
 * infinity, as in ggml (which never writes such exponents). */
START_TEST(mxfp4_every_nibble)
{
    static const float e2m1[16] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6, 0, -0.5f, -1, -1.5f, -2, -3, -4, -6};
    const uint8_t es[] = {0, 1, 2, 100, 127, 128, 200, 252, 254};
    for (size_t ei = 0; ei < sizeof es; ei++)
        for (int q = 0; q < 16; q++) {
            block_mxfp4 b;
            b.e = es[ei];
            for (int j = 0; j < 16; j++)
                b.qs[j] = (uint8_t)(j % 2 ? (q << 4) | ((q + 5) & 15) : q | (((q + 3) & 15) << 4));
            float y[32];
            mr_dequantize_row_mxfp4(&b, y, 32);
            const double sc = ldexp(1.0, es[ei] - 127);
            for (int j = 0; j < 16; j++) {
                const int lo = j % 2 ? (q + 5) & 15 : q, hi = j % 2 ? q : (q + 3) & 15;
                ck_assert_msg(y[j] == (float)(e2m1[lo] * sc), "e %u code %d: %a", es[ei], lo, y[j]);
                ck_assert_msg(y[j + 16] == (float)(e2m1[hi] * sc), "e %u code %d: %a", es[ei], hi,
                              y[j + 16]);
            }
        }
}
END_TEST

/* All-zero block: e = 0, every code 0, and it decodes to +0. */
START_TEST(mxfp4_zero_block)
{
    float x[64] = {0}, y[64];
    block_mxfp4 b[2];
    memset(b, 0xa5, sizeof b);
    x[40] = -0.0f;
    mr_quantize_row_mxfp4(x, b, 64);
    for (int k = 0; k < 2; k++) {
        ck_assert_uint_eq(b[k].e, 0);
        for (int j = 0; j < 16; j++)
            ck_assert_uint_eq(b[k].qs[j], 0);
    }
    mr_dequantize_row_mxfp4(b, y, 64);
    for (int j = 0; j < 64; j++)
        ck_assert(y[j] == 0.0f && !signbit(y[j]));
}
END_TEST

/* The largest exponent a float reaches: amax in [2^127, 2^128) gives
 * e = 127 - 2 + 127 = 252, scale 2^124, so 1.5 x 2^127 is code 7 (12) and
 * 2^126 code 4 (4).  (Just below a power of two, log2f rounds up, for ggml
 * as for moerun; the exact powers below avoid that edge.)  For every
 * normal amax = 2^k, e = k + 125 and 2^k decodes exactly. */
START_TEST(mxfp4_extreme_exponents)
{
    float x[32] = {0}, y[32];
    block_mxfp4 b;
    x[3] = 0x1.8p127f;
    x[20] = -0x1.8p127f;
    x[7] = 0x1p126f;
    mr_quantize_row_mxfp4(x, &b, 32);
    ck_assert_uint_eq(b.e, 252);
    ck_assert_uint_eq(b.qs[3] & 15, 7);
    ck_assert_uint_eq(b.qs[4] >> 4, 15);
    ck_assert_uint_eq(b.qs[7] & 15, 4);
    mr_dequantize_row_mxfp4(&b, y, 32);
    ck_assert(y[3] == 0x1.8p127f && y[20] == -0x1.8p127f && y[7] == 0x1p126f);
    for (int k = -125; k <= 127; k++) {
        float z[32] = {0};
        z[k & 31] = ldexpf(1.0f, k);
        mr_quantize_row_mxfp4(z, &b, 32);
        ck_assert_msg(b.e == k + 125, "amax 2^%d: e = %u", k, b.e);
        mr_dequantize_row_mxfp4(&b, y, 32);
        ck_assert_msg(y[k & 31] == z[k & 31], "amax 2^%d decodes to %a", k, y[k & 31]);
    }
}
END_TEST

/* Values on the grid come back exactly; midpoints take the lower code
 * (ggml keeps the first of equal errors, scanning codes 0..15). */
START_TEST(mxfp4_grid_and_ties)
{
    static const float mag[8] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6};
    float x[32], y[32];
    block_mxfp4 b;
    for (int j = 0; j < 32; j++)
        x[j] = (j & 8 ? -1.0f : 1.0f) * mag[j & 7]; /* amax 6: scale 2^-1 */
    mr_quantize_row_mxfp4(x, &b, 32);
    ck_assert_uint_eq(b.e, 127); /* floor(log2 6) - 2 + 127 */
    mr_dequantize_row_mxfp4(&b, y, 32);
    for (int j = 0; j < 32; j++)
        ck_assert_msg(y[j] == x[j], "element %d: %g -> %g", j, x[j], y[j]);
    /* midpoints at scale 1: 0.25 -> 0 (code 0), 1.25 -> 1, 2.5 -> 2, 5 -> 4;
     * negative ones: -0.25 -> code 0 (+0 scans before -0), -5 -> -4 */
    const float mid[8] = {0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f, -5.0f};
    const int want[8] = {0, 1, 2, 3, 4, 5, 6, 14};
    for (int j = 0; j < 32; j++)
        x[j] = j < 8 ? mid[j] : j == 8 ? -0.25f : j == 9 ? 6.0f : 0.0f;
    mr_quantize_row_mxfp4(x, &b, 32);
    ck_assert_uint_eq(b.e, 127);
    for (int j = 0; j < 8; j++)
        ck_assert_msg((b.qs[j] & 15) == want[j], "%g -> code %d", mid[j], b.qs[j] & 15);
    ck_assert_uint_eq(b.qs[8] & 15, 0);
}
END_TEST

/* ------------------------------------------------------------ a llama.cpp file */

/* The MXFP4 expert tensors of tinygptoss (written by llama.cpp's
 * convert_hf_to_gguf.py): FNV-1a of every dequantized float, as gguf-py's
 * numpy dequantizer gives them. */
START_TEST(mxfp4_llama_cpp_file)
{
    const char *dir = tu_testdata();
    if (!dir)
        return; /* main() skipped the program already */
    static const struct {
        const char *name;
        uint64_t fnv;
        float first[3];
    } want[] = {
        {"blk.0.ffn_down_exps.weight", 0x23337f3c2c87e985ull, {0.0234375f, 0.015625f, 0.015625f}},
        {"blk.0.ffn_gate_exps.weight", 0x3e2bd8bf82ec14b8ull, {0.25f, 0.0f, -0.0625f}},
        {"blk.0.ffn_up_exps.weight", 0xfbd9a11b3bee770full, {-0.125f, 0.1875f, 0.1875f}},
        {"blk.1.ffn_down_exps.weight", 0xfd936c6bc7b318d5ull, {-0.015625f, -0.0234375f, 0.0f}},
        {"blk.1.ffn_gate_exps.weight", 0x6e627f5582c9ff8full, {0.5f, -0.1875f, 0.0625f}},
        {"blk.1.ffn_up_exps.weight", 0x46fa4a44e8cbc77eull, {0.25f, 0.375f, 0.1875f}},
        {"blk.2.ffn_down_exps.weight", 0x809401290601f407ull, {0.01171875f, -0.0234375f, 0.046875f}},
        {"blk.2.ffn_gate_exps.weight", 0x34a585d48c2a8b45ull, {-0.0625f, 0.0f, 0.5f}},
        {"blk.2.ffn_up_exps.weight", 0xa64573453f650cd1ull, {0.125f, 0.5f, 0.125f}},
        {"blk.3.ffn_down_exps.weight", 0xb60240e57ae2e765ull, {0.046875f, 0.0625f, 0.0f}},
        {"blk.3.ffn_gate_exps.weight", 0x80b00c8855395b81ull, {0.1875f, -0.0625f, 0.1875f}},
        {"blk.3.ffn_up_exps.weight", 0x775eff5a14c170dcull, {-0.25f, 0.375f, 0.0f}},
    };
    mr_gguf *g = NULL;
    mr_error err;
    const char *path = tu_path("%s/models/tinygptoss/gguf/tinygptoss-mxfp4.gguf", dir);
    ck_assert_msg(mr_gguf_open(path, &g, &err) == MR_OK, "%s: %s", path, err.msg);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const mr_gguf_tensor *t = mr_gguf_tensor_find(g, want[i].name);
        ck_assert_msg(t != NULL, "%s missing", want[i].name);
        ck_assert_uint_eq(t->type, MR_TYPE_MXFP4);
        const int64_t n = (int64_t)(t->ne[0] * t->ne[1] * t->ne[2]);
        ck_assert_uint_eq(t->nbytes, row_bytes(MR_TYPE_MXFP4, n));
        float *y = malloc(sizeof(float) * (size_t)n);
        mr_type_get(MR_TYPE_MXFP4)->to_f32(t->data, y, n);
        for (int j = 0; j < 3; j++)
            ck_assert_msg(y[j] == want[i].first[j], "%s[%d] = %g", want[i].name, j, y[j]);
        const uint64_t h = kq_fnv1a(y, sizeof(float) * (size_t)n);
        ck_assert_msg(h == want[i].fnv, "%s: 0x%016llx", want[i].name, (unsigned long long)h);
        free(y);
    }
    mr_gguf_close(g);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("quant_more");
    TCase *tc = tcase_create("reference");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, rows_match_ggml, 0, N_CASES * KQ_N_SHAPES);
    tcase_add_loop_test(tc, random_blocks_match_ggml, 0, N_CASES * 2);
    tcase_add_loop_test(tc, dots_match_float64, 0, N_CASES * N_COUNTS);
    tcase_add_loop_test(tc, q8_1_matches_ggml, 0, KQ_N_SHAPES);
    tcase_add_test(tc, mxfp4_e8m0_is_a_power_of_two);
    tcase_add_test(tc, mxfp4_every_nibble);
    tcase_add_test(tc, mxfp4_zero_block);
    tcase_add_test(tc, mxfp4_extreme_exponents);
    tcase_add_test(tc, mxfp4_grid_and_ties);
    if (tu_testdata())
        tcase_add_test(tc, mxfp4_llama_cpp_file);
    else
        printf("SKIP (part): no shared data, the llama.cpp file is not checked\n");
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
