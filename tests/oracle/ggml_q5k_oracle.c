/* ggml_q5k_oracle.c - prints, from ggml itself, the Q5_K digests that
 * tests/test_quant_k.c expects.  Not built by `make`: it needs a ggml
 * build and is run by hand when the inputs in kquant_cases.h change.
 *
 * It loads ggml's shared libraries and calls quantize_row_q5_K_ref
 * (libggml-base, built without -march flags: plain IEEE single precision,
 * no FMA) and ggml_vec_dot_q5_K_q8_K_generic (libggml-cpu) on the inputs
 * of kquant_cases.h; no moerun code is linked in.  The digests in
 * test_quant_k.c came from a llama.cpp tree built with its defaults
 * (GGML_NATIVE=ON: libggml-cpu is -march=native, so its generic dot may
 * fuse multiply-adds; the test holds moerun's dot to it within 1e-6
 * relative, not to the bit):
 *
 *   cc -O1 -I tests tests/oracle/ggml_q5k_oracle.c -ldl -o /tmp/oracle5
 *   /tmp/oracle5 DIR    (DIR holds libggml-base.so and libggml-cpu.so)
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kquant_cases.h"

typedef void (*quantize_fn)(const float *x, void *y, int64_t k);
typedef void (*vec_dot_fn)(int n, float *s, size_t bs, const void *vx, size_t bx, const void *vy,
                           size_t by, int nrc);

static void *load(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    void *h = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
    if (!h) {
        fprintf(stderr, "%s\n", dlerror());
        exit(1);
    }
    return h;
}

static void *sym(void *h, const char *name)
{
    void *p = dlsym(h, name);
    if (!p) {
        fprintf(stderr, "missing %s\n", name);
        exit(1);
    }
    return p;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR-with-libggml-base.so-and-libggml-cpu.so\n", argv[0]);
        return 2;
    }
    void *base = load(argv[1], "libggml-base.so");
    void *cpu = load(argv[1], "libggml-cpu.so");
    quantize_fn q5k = (quantize_fn)sym(base, "quantize_row_q5_K_ref");
    quantize_fn q8k = (quantize_fn)sym(base, "quantize_row_q8_K_ref");
    vec_dot_fn dot5 = (vec_dot_fn)sym(cpu, "ggml_vec_dot_q5_K_q8_K_generic");
    ((void (*)(void))sym(cpu, "ggml_cpu_init"))();

    static float x[KQ_ROW], a[KQ_ROW];
    static unsigned char b5[KQ_ROW_BLOCKS * 176], a8[KQ_ROW_BLOCKS * 292];
    printf("/* shape: q5_K digest; q5_K.q8_K bits */\n");
    for (int shape = 0; shape < KQ_N_SHAPES; shape++) {
        const uint64_t seed = 0x5eed0000u + (uint64_t)shape;
        kq_fill(shape, seed, x, KQ_ROW);
        kq_fill_activations(seed ^ 0xacu, a, KQ_ROW);
        memset(a8, 0, sizeof a8);
        q5k(x, b5, KQ_ROW);
        q8k(a, a8, KQ_ROW);
        float d5 = 0.0f;
        dot5(KQ_ROW, &d5, 0, b5, 0, a8, 0, 1);
        uint32_t u5;
        memcpy(&u5, &d5, 4);
        printf("{0x%016llxull, 0x%08xu}, /* %s: %g */\n",
               (unsigned long long)kq_fnv1a(b5, sizeof b5), u5, kq_shape_name(shape), d5);
    }
    return 0;
}
