/* ref_iq.c - scalar references for the IQ1/IQ2/IQ3 formats (types_iq.h):
 * dequantization and dots, following ggml's dequantize_row_iq* and
 * ggml_vec_dot_iq*_q8_K (the same values, in the same float order for
 * dequantization).
 *
 * Each format is decoded one super-block at a time into one shape: 256
 * signed integer codes c[j] (codebook magnitude times sign), a float scale
 * s[j / 16] per 16 weights and, for IQ1, a delta e[j / 8] per 8, so that
 * weight j = s * (c + e).  The same scales are kept as integers too:
 * s = d k unit, k = 2a + 1 (or 1 + 2a) from the block's bits and unit a
 * power of two per format (IQ2: 1/8, IQ3_XXS: 1/4, IQ3_S: 1, IQ1: 1/8, the
 * IQ1 weight then 8c + 8e in [-9, 9]).  Dequantization, the f32 dot and the
 * Q8_K dot are then written once for every format. */
#include "types_iq.h"

#include <string.h>

typedef struct {
    int8_t c[QK_K];
    float s[QK_K / 16];
    float e[QK_K / 8]; /* IQ1 deltas; zero elsewhere */
    int has_e;
    int32_t k[QK_K / 16]; /* s[g] = d k[g] unit */
    float d, unit;
} decoded;

/* byte j of a packed grid entry */
static inline int grid8(uint64_t g, int j)
{
    return (int)((g >> (8 * j)) & 0xff);
}

/* 8 magnitudes of entry g, signed by the 8 bits of sign byte sg */
static void put8(int8_t *c, uint64_t g, uint8_t sg)
{
    for (int j = 0; j < 8; j++)
        c[j] = (int8_t)(sg >> j & 1 ? -grid8(g, j) : grid8(g, j));
}

static void decode_iq2_xxs(const void *blk, decoded *o)
{
    const block_iq2_xxs *b = blk;
    const float d = mr_f16_to_f32(b->d);
    o->d = d;
    o->unit = 0.125f;
    for (int ib = 0; ib < 8; ib++) {
        uint32_t a[2];
        memcpy(a, b->qs + 4 * ib, 8);
        const float db = d * (0.5f + (float)(a[1] >> 28)) * 0.25f;
        o->s[2 * ib] = o->s[2 * ib + 1] = db;
        o->k[2 * ib] = o->k[2 * ib + 1] = (int32_t)(2 * (a[1] >> 28) + 1);
        for (int l = 0; l < 4; l++)
            put8(o->c + 32 * ib + 8 * l, mr_iq2xxs_grid[(a[0] >> (8 * l)) & 0xff],
                 mr_iq_ksigns[(a[1] >> (7 * l)) & 127]);
    }
}

static void decode_iq2_xs(const void *blk, decoded *o)
{
    const block_iq2_xs *b = blk;
    const float d = mr_f16_to_f32(b->d);
    o->d = d;
    o->unit = 0.125f;
    for (int ib = 0; ib < 8; ib++) {
        o->s[2 * ib] = d * (0.5f + (float)(b->scales[ib] & 0xf)) * 0.25f;
        o->s[2 * ib + 1] = d * (0.5f + (float)(b->scales[ib] >> 4)) * 0.25f;
        o->k[2 * ib] = 2 * (b->scales[ib] & 0xf) + 1;
        o->k[2 * ib + 1] = 2 * (b->scales[ib] >> 4) + 1;
        for (int l = 0; l < 4; l++) {
            const uint16_t q = b->qs[4 * ib + l];
            put8(o->c + 32 * ib + 8 * l, mr_iq2xs_grid[q & 511], mr_iq_ksigns[q >> 9]);
        }
    }
}

static void decode_iq2_s(const void *blk, decoded *o)
{
    const block_iq2_s *b = blk;
    const float d = mr_f16_to_f32(b->d);
    o->d = d;
    o->unit = 0.125f;
    const uint8_t *signs = b->qs + QK_K / 8;
    for (int ib = 0; ib < 8; ib++) {
        o->s[2 * ib] = d * (0.5f + (float)(b->scales[ib] & 0xf)) * 0.25f;
        o->s[2 * ib + 1] = d * (0.5f + (float)(b->scales[ib] >> 4)) * 0.25f;
        o->k[2 * ib] = 2 * (b->scales[ib] & 0xf) + 1;
        o->k[2 * ib + 1] = 2 * (b->scales[ib] >> 4) + 1;
        for (int l = 0; l < 4; l++) {
            const int idx = b->qs[4 * ib + l] | ((b->qh[ib] << (8 - 2 * l)) & 0x300);
            put8(o->c + 32 * ib + 8 * l, mr_iq2s_grid[idx], signs[4 * ib + l]);
        }
    }
}

static void decode_iq3_xxs(const void *blk, decoded *o)
{
    const block_iq3_xxs *b = blk;
    const float d = mr_f16_to_f32(b->d);
    o->d = d;
    o->unit = 0.25f;
    const uint8_t *qs = b->qs, *ss = b->qs + QK_K / 4;
    for (int ib = 0; ib < 8; ib++) {
        uint32_t a;
        memcpy(&a, ss + 4 * ib, 4);
        o->s[2 * ib] = o->s[2 * ib + 1] = d * (0.5f + (float)(a >> 28)) * 0.5f;
        o->k[2 * ib] = o->k[2 * ib + 1] = (int32_t)(2 * (a >> 28) + 1);
        for (int l = 0; l < 4; l++) {
            const uint64_t g = mr_iq3xxs_grid[qs[8 * ib + 2 * l]] |
                               (uint64_t)mr_iq3xxs_grid[qs[8 * ib + 2 * l + 1]] << 32;
            put8(o->c + 32 * ib + 8 * l, g, mr_iq_ksigns[(a >> (7 * l)) & 127]);
        }
    }
}

static void decode_iq3_s(const void *blk, decoded *o)
{
    const block_iq3_s *b = blk;
    const float d = mr_f16_to_f32(b->d);
    o->d = d;
    o->unit = 1.0f;
    for (int ib = 0; ib < 8; ib++) {
        const int sc = ib % 2 ? b->scales[ib / 2] >> 4 : b->scales[ib / 2] & 0xf;
        o->s[2 * ib] = o->s[2 * ib + 1] = d * (float)(1 + 2 * sc);
        o->k[2 * ib] = o->k[2 * ib + 1] = 1 + 2 * sc;
        const uint8_t *qs = b->qs + 8 * ib, qh = b->qh[ib];
        for (int l = 0; l < 4; l++) {
            const int i1 = qs[2 * l] | ((qh << (8 - 2 * l)) & 256);
            const int i2 = qs[2 * l + 1] | ((qh << (7 - 2 * l)) & 256);
            const uint64_t g = mr_iq3s_grid[i1] | (uint64_t)mr_iq3s_grid[i2] << 32;
            put8(o->c + 32 * ib + 8 * l, g, b->signs[4 * ib + l]);
        }
    }
}

/* IQ1 codebook entries are 8 int8 values in {-1, 0, 1} */
static void put8_iq1(int8_t *c, uint64_t g)
{
    for (int j = 0; j < 8; j++)
        c[j] = (int8_t)(uint8_t)(g >> (8 * j));
}

static void decode_iq1_s(const void *blk, decoded *o)
{
    const block_iq1_s *b = blk;
    const float d = mr_f16_to_f32(b->d);
    o->d = d;
    o->unit = 0.125f;
    o->has_e = 1;
    for (int ib = 0; ib < 8; ib++) {
        const uint16_t qh = b->qh[ib];
        o->s[2 * ib] = o->s[2 * ib + 1] = d * (float)(2 * ((qh >> 12) & 7) + 1);
        o->k[2 * ib] = o->k[2 * ib + 1] = 2 * ((qh >> 12) & 7) + 1;
        const float e = qh & 0x8000 ? -MR_IQ1_DELTA : MR_IQ1_DELTA;
        for (int l = 0; l < 4; l++) {
            o->e[4 * ib + l] = e;
            put8_iq1(o->c + 32 * ib + 8 * l,
                     mr_iq1s_grid[b->qs[4 * ib + l] | (((qh >> (3 * l)) & 7) << 8)]);
        }
    }
}

static void decode_iq1_m(const void *blk, decoded *o)
{
    const block_iq1_m *b = blk;
    uint16_t sc[4];
    memcpy(sc, b->scales, 8);
    const float d = mr_f16_to_f32(mr_iq1_m_d(b));
    o->d = d;
    o->unit = 0.125f;
    o->has_e = 1;
    for (int ib = 0; ib < 8; ib++) {
        o->s[2 * ib] = d * (float)(2 * ((sc[ib / 2] >> (6 * (ib % 2))) & 7) + 1);
        o->s[2 * ib + 1] = d * (float)(2 * ((sc[ib / 2] >> (6 * (ib % 2) + 3)) & 7) + 1);
        o->k[2 * ib] = 2 * ((sc[ib / 2] >> (6 * (ib % 2))) & 7) + 1;
        o->k[2 * ib + 1] = 2 * ((sc[ib / 2] >> (6 * (ib % 2) + 3)) & 7) + 1;
        const uint8_t *qs = b->qs + 4 * ib, *qh = b->qh + 2 * ib;
        for (int l = 0; l < 4; l++) {
            const uint8_t hb = qh[l / 2];
            const int idx = qs[l] | ((l % 2 ? hb << 4 : hb << 8) & 0x700);
            o->e[4 * ib + l] = hb & (l % 2 ? 0x80 : 0x08) ? -MR_IQ1_DELTA : MR_IQ1_DELTA;
            put8_iq1(o->c + 32 * ib + 8 * l, mr_iq1s_grid[idx]);
        }
    }
}

typedef void (*decode_fn)(const void *blk, decoded *o);

static void dequantize(decode_fn dec, size_t bytes, const void *src, float *dst, int64_t n)
{
    decoded o;
    for (int64_t i = 0; i < n / QK_K; i++) {
        memset(&o, 0, sizeof o);
        dec((const uint8_t *)src + i * bytes, &o);
        for (int j = 0; j < QK_K; j++)
            dst[i * QK_K + j] = o.has_e ? o.s[j / 16] * ((float)o.c[j] + o.e[j / 8])
                                        : o.s[j / 16] * (float)o.c[j];
    }
}

static float dot_f32(decode_fn dec, size_t bytes, const void *w, const float *x, int64_t n)
{
    decoded o;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        memset(&o, 0, sizeof o);
        dec((const uint8_t *)w + i * bytes, &o);
        const float *xb = x + i * QK_K;
        for (int g = 0; g < QK_K / 16; g++) {
            float s = 0.0f;
            for (int j = 16 * g; j < 16 * g + 16; j++)
                s += ((float)o.c[j] + o.e[j / 8]) * xb[j];
            sum += o.s[g] * s;
        }
    }
    return sum;
}

/* As ggml's scalar code: exact integers within a block, the weights w
 * (the codes c; IQ1: 8c + 8e) times the activations, per 16 times the
 * integer scale k, summed over the block; then per block
 *   sum += (d * d_a) * (float)isum
 * in block order, and the unit (a power of two) at the end.  One float
 * product and one add per block: the SIMD kernels keep exactly these. */
static float dot_q8_K(decode_fn dec, size_t bytes, const void *w, const void *xq, int64_t n)
{
    const block_q8_K *y = xq;
    decoded o;
    float sum = 0.0f, unit = 1.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        memset(&o, 0, sizeof o);
        dec((const uint8_t *)w + i * bytes, &o);
        int32_t isum = 0;
        for (int g = 0; g < QK_K / 16; g++) {
            int32_t s = 0;
            for (int j = 16 * g; j < 16 * g + 16; j++) {
                const int32_t wj = o.has_e ? 8 * o.c[j] + (o.e[j / 8] < 0.0f ? -1 : 1) : o.c[j];
                s += wj * y[i].qs[j];
            }
            isum += o.k[g] * s;
        }
        sum += (o.d * y[i].d) * (float)isum;
        unit = o.unit;
    }
    return sum * unit;
}

#define MR_IQ_DEFINE(t)                                                                 \
    void mr_dequantize_row_##t(const void *src, float *dst, int64_t n)                  \
    {                                                                                   \
        dequantize(decode_##t, sizeof(block_##t), src, dst, n);                         \
    }                                                                                   \
    float mr_dot_##t##_f32(const void *w, const float *x, int64_t n)                    \
    {                                                                                   \
        return dot_f32(decode_##t, sizeof(block_##t), w, x, n);                         \
    }                                                                                   \
    float mr_dot_##t##_q8_K(const void *w, const void *xq, int64_t n)                   \
    {                                                                                   \
        return dot_q8_K(decode_##t, sizeof(block_##t), w, xq, n);                       \
    }
MR_IQ_DEFINE(iq2_xxs)
MR_IQ_DEFINE(iq2_xs)
MR_IQ_DEFINE(iq2_s)
MR_IQ_DEFINE(iq3_xxs)
MR_IQ_DEFINE(iq3_s)
MR_IQ_DEFINE(iq1_s)
MR_IQ_DEFINE(iq1_m)
