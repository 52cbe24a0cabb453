/* qtypes_cases.h - deterministic inputs of the further formats' known-answer
 * tests (tests/test_quant_more.c), beside kquant_cases.h whose float rows
 * they reuse.  The expected digests in test_quant_more.c were computed by
 * ggml itself: its reference quantizers, dequantizers and generic dots,
 * compiled from llama.cpp's sources with -O1 -ffp-contract=off (plain IEEE
 * single precision, as moerun's reference), called on these very inputs.
 * Changing anything here invalidates those digests. */
#ifndef MOERUN_TESTS_QTYPES_CASES_H
#define MOERUN_TESTS_QTYPES_CASES_H

#include "kquant_cases.h"

/* nb blocks of ts random bytes, except the scale fields, which are set to
 * finite values so every decoded weight is finite: f16 at byte offsets fa
 * and fb (-1: none) get a random sign, exponent 2^-5 .. 2^-1 and mantissa;
 * fa = -2 marks MXFP4's E8M0 byte 0, set to 2^(110 .. 139 - 127). */
static inline void mr_random_blocks(uint64_t *s, unsigned char *w, int nb, int ts, int fa, int fb)
{
    for (int b = 0; b < nb; b++) {
        unsigned char *p = w + (size_t)b * (size_t)ts;
        for (int i = 0; i < ts; i++)
            p[i] = (unsigned char)(kq_next(s) >> 56);
        if (fa == -2) {
            p[0] = (unsigned char)(110 + kq_next(s) % 30);
            continue;
        }
        const int off[2] = {fa, fb};
        for (int k = 0; k < 2; k++) {
            if (off[k] < 0)
                continue;
            const uint64_t r = kq_next(s);
            const uint16_t h = (uint16_t)((r & 0x8000) | ((10 + (r >> 16) % 5) << 10) | (r & 0x3ff));
            p[off[k]] = (unsigned char)(h & 0xff);
            p[off[k] + 1] = (unsigned char)(h >> 8);
        }
    }
}

#endif
