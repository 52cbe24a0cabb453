/* types_iq.h - the IQ1/IQ2/IQ3 block formats of ggml (the "i-quants" of the
 * Hub's low-bit dynamic files): IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S,
 * IQ1_S, IQ1_M.  Each super-block of 256 weights holds indices into a fixed
 * codebook of 8 (IQ2, IQ1) or 4 (IQ3) magnitudes, sign bits (IQ2/IQ3) and
 * sub-block scales; the codebooks are in iq_grids.c.  moerun reads and
 * computes with them (ref_iq.c); it does not quantize to them (llama.cpp
 * needs an importance matrix to). */
#ifndef MOERUN_TYPES_IQ_H
#define MOERUN_TYPES_IQ_H

#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "types.h"

enum {
    MR_TYPE_IQ2_XXS = 16,
    MR_TYPE_IQ2_XS = 17,
    MR_TYPE_IQ3_XXS = 18,
    MR_TYPE_IQ1_S = 19,
    MR_TYPE_IQ3_S = 21,
    MR_TYPE_IQ2_S = 22,
    MR_TYPE_IQ1_M = 29,
};

typedef struct {
    uint16_t d;
    uint16_t qs[QK_K / 8]; /* per 32: 4 grid bytes, then 4 x 7 sign bits + a 4-bit scale */
} block_iq2_xxs;
static_assert(sizeof(block_iq2_xxs) == 66, "block_iq2_xxs must be 66 bytes");

typedef struct {
    uint16_t d;
    uint16_t qs[QK_K / 8]; /* 9-bit grid index + 7 sign bits per 8 */
    uint8_t scales[QK_K / 32];
} block_iq2_xs;
static_assert(sizeof(block_iq2_xs) == 74, "block_iq2_xs must be 74 bytes");

typedef struct {
    uint16_t d;
    uint8_t qs[QK_K / 4]; /* 32 low index bytes, then 32 sign bytes */
    uint8_t qh[QK_K / 32];
    uint8_t scales[QK_K / 32];
} block_iq2_s;
static_assert(sizeof(block_iq2_s) == 82, "block_iq2_s must be 82 bytes");

typedef struct {
    uint16_t d;
    uint8_t qs[3 * QK_K / 8]; /* 64 grid bytes, then per 32 4 x 7 sign bits + a 4-bit scale */
} block_iq3_xxs;
static_assert(sizeof(block_iq3_xxs) == 98, "block_iq3_xxs must be 98 bytes");

typedef struct {
    uint16_t d;
    uint8_t qs[QK_K / 4];
    uint8_t qh[QK_K / 32];
    uint8_t signs[QK_K / 8];
    uint8_t scales[QK_K / 64];
} block_iq3_s;
static_assert(sizeof(block_iq3_s) == 110, "block_iq3_s must be 110 bytes");

typedef struct {
    uint16_t d;
    uint8_t qs[QK_K / 8];
    uint16_t qh[QK_K / 32]; /* 3 high index bits x 4, a 3-bit scale, the delta's sign */
} block_iq1_s;
static_assert(sizeof(block_iq1_s) == 50, "block_iq1_s must be 50 bytes");

typedef struct {
    uint8_t qs[QK_K / 8];
    uint8_t qh[QK_K / 16];    /* 3 high index bits + the delta's sign, per 8 */
    uint8_t scales[QK_K / 32]; /* 3-bit scales per 16; the f16 super-scale in the top nibbles */
} block_iq1_m;
static_assert(sizeof(block_iq1_m) == 56, "block_iq1_m must be 56 bytes");

#define MR_IQ1_DELTA 0.125f

/* Whether t is one of the formats above */
static inline int mr_type_is_iq(uint32_t t)
{
    return t == MR_TYPE_IQ2_XXS || t == MR_TYPE_IQ2_XS || t == MR_TYPE_IQ2_S || t == MR_TYPE_IQ3_XXS ||
           t == MR_TYPE_IQ3_S || t == MR_TYPE_IQ1_S || t == MR_TYPE_IQ1_M;
}

/* IQ1_M keeps its f16 d in the top nibbles of its four scale words (the
 * first word's nibble the lowest); the other formats start with it. */
static inline uint16_t mr_iq1_m_d(const block_iq1_m *b)
{
    uint16_t sc[4];
    memcpy(sc, b->scales, 8);
    return (uint16_t)((sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) | ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000));
}

static inline void mr_iq1_m_set_d(block_iq1_m *b, uint16_t d)
{
    for (int i = 0; i < 4; i++) {
        uint16_t w;
        memcpy(&w, b->scales + 2 * i, 2);
        w = (uint16_t)((w & 0x0fff) | (((d >> (4 * i)) & 0xf) << 12));
        memcpy(b->scales + 2 * i, &w, 2);
    }
}

extern const uint8_t mr_iq_ksigns[128];
extern const uint64_t mr_iq2xxs_grid[256];
extern const uint64_t mr_iq2xs_grid[512];
extern const uint64_t mr_iq2s_grid[1024];
extern const uint32_t mr_iq3xxs_grid[256];
extern const uint32_t mr_iq3s_grid[512];
extern const uint64_t mr_iq1s_grid[2048];

/* Per type: dequantize a row, dot it with f32 (the --exact path), dot it
 * with Q8_K activations (the default path, as llama.cpp's CPU backend). */
#define MR_IQ_DECL(t)                                                         \
    void mr_dequantize_row_##t(const void *src, float *dst, int64_t n);       \
    float mr_dot_##t##_f32(const void *w, const float *x, int64_t n);         \
    float mr_dot_##t##_q8_K(const void *w, const void *xq, int64_t n);
MR_IQ_DECL(iq2_xxs)
MR_IQ_DECL(iq2_xs)
MR_IQ_DECL(iq2_s)
MR_IQ_DECL(iq3_xxs)
MR_IQ_DECL(iq3_s)
MR_IQ_DECL(iq1_s)
MR_IQ_DECL(iq1_m)
#undef MR_IQ_DECL

#endif
