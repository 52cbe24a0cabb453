/* iq_cases.h - the i-quant blocks tests/test_quant_iq.c dequantizes and
 * tests/oracle/ggml_iq_oracle.c hands to ggml: deterministic random bytes
 * with a finite scale, block 0 all zero and block 1 with every sub-block
 * scale at its maximum.  Shared so both see the same bytes. */
#ifndef MOERUN_IQ_CASES_H
#define MOERUN_IQ_CASES_H

#include <stdint.h>
#include <string.h>

#define IQ_CASE_BLOCKS 64

static const struct {
    const char *name; /* ggml's and moerun's type name, lower case */
    uint32_t type;    /* ggml type id */
    uint32_t bytes;   /* block size in bytes */
} iq_cases[] = {
    {"iq2_xxs", 16, 66}, {"iq2_xs", 17, 74}, {"iq3_xxs", 18, 98}, {"iq1_s", 19, 50},
    {"iq3_s", 21, 110},  {"iq2_s", 22, 82},  {"iq1_m", 29, 56},
};
#define N_IQ_CASES (sizeof iq_cases / sizeof iq_cases[0])

static uint64_t iq_case_rng(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* IQ_CASE_BLOCKS blocks of case c into out */
static void iq_case_blocks(unsigned c, uint8_t *out)
{
    static const uint16_t scales[4] = {0x2000, 0x2400, 0x1c00, 0x2a66}; /* f16, ~0.002..0.05 */
    const uint32_t bytes = iq_cases[c].bytes, type = iq_cases[c].type;
    uint64_t s = 0x1a0000ull + c;
    for (int b = 0; b < IQ_CASE_BLOCKS; b++) {
        uint8_t *blk = out + (size_t)b * bytes;
        for (uint32_t i = 0; i < bytes; i++)
            blk[i] = b == 0 ? 0 : (uint8_t)iq_case_rng(&s);
        if (b == 0)
            continue;
        const uint16_t h = scales[b % 4];
        if (type == 29) { /* IQ1_M: the f16 scale in the top nibbles of scales[] */
            uint16_t sc[4];
            memcpy(sc, blk + bytes - 8, 8);
            for (int k = 0; k < 4; k++)
                sc[k] = (uint16_t)((sc[k] & 0x0fff) | (((h >> (4 * k)) & 0xf) << 12));
            if (b == 1)
                for (int k = 0; k < 4; k++)
                    sc[k] |= 0x0fff; /* every 3-bit scale 7 */
            memcpy(blk + bytes - 8, sc, 8);
            continue;
        }
        memcpy(blk, &h, 2);
        if (b != 1)
            continue;
        /* every sub-block scale at its maximum */
        if (type == 16 || type == 18) { /* 4-bit scale in the top of each 32's sign word */
            const uint32_t off = type == 16 ? 2 : 2 + 64, step = 8;
            for (int ib = 0; ib < 8; ib++)
                blk[off + ib * (type == 16 ? step : 4) + (type == 16 ? 7 : 3)] |= 0xf0;
        } else if (type == 17 || type == 22) {
            memset(blk + bytes - 8, 0xff, 8);
        } else if (type == 21) {
            memset(blk + bytes - 4, 0xff, 4);
        } else if (type == 19) {
            for (int ib = 0; ib < 8; ib++)
                blk[2 + 32 + 2 * ib + 1] |= 0x70;
        }
    }
}

/* FNV-1a over the bits of n floats: the digest both sides print */
static uint64_t iq_digest(const float *x, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    const uint8_t *p = (const uint8_t *)x;
    for (size_t i = 0; i < 4 * n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

#endif
