/* ggml_iq_oracle.c - prints, from ggml itself, the digests of the
 * dequantized i-quant blocks of tests/iq_cases.h that tests/test_quant_iq.c
 * expects.  Not built by `make`: it needs a ggml build and is run by hand
 * when iq_cases.h changes.  It loads libggml-base.so and calls
 * dequantize_row_<type>; no moerun code is linked in.
 *
 *   cc -O1 -I tests tests/oracle/ggml_iq_oracle.c -ldl -o /tmp/iq_oracle
 *   /tmp/iq_oracle DIR    (DIR holds libggml-base.so, e.g. llama.cpp's build/bin)
 */
#include <dlfcn.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "iq_cases.h"

typedef void (*dequant_fn)(const void *x, float *y, int64_t k);

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR-with-libggml-base.so\n", argv[0]);
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/libggml-base.so", argv[1]);
    void *h = dlopen(path, RTLD_NOW);
    if (!h) {
        fprintf(stderr, "%s\n", dlerror());
        return 1;
    }
    static uint8_t blocks[IQ_CASE_BLOCKS * 128];
    static float y[IQ_CASE_BLOCKS * 256];
    for (unsigned c = 0; c < N_IQ_CASES; c++) {
        char name[64];
        snprintf(name, sizeof name, "dequantize_row_%s", iq_cases[c].name);
        dequant_fn f = (dequant_fn)dlsym(h, name);
        if (!f) {
            fprintf(stderr, "missing %s\n", name);
            return 1;
        }
        iq_case_blocks(c, blocks);
        f(blocks, y, IQ_CASE_BLOCKS * 256);
        printf("    {\"%s\", 0x%016" PRIx64 "ull}, /* y[256] = %.9g */\n", iq_cases[c].name,
               iq_digest(y, IQ_CASE_BLOCKS * 256), y[256]);
    }
    return 0;
}
