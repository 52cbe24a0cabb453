/* ggml_kquant_oracle.c - prints, from ggml itself, the K-quant digests that
 * tests/test_quant_k.c expects.  Not built by `make`: it needs a ggml build
 * and is run by hand when the inputs in kquant_cases.h change.
 *
 * It loads ggml's shared libraries and calls quantize_row_q{4,6,8}_K_ref
 * (libggml-base) and ggml_vec_dot_q{4,6}_K_q8_K_generic (libggml-cpu) on the
 * inputs of kquant_cases.h; no moerun code is linked in.  The digests in
 * test_quant_k.c came from the prebuilt x86-64 libraries of the npm package
 * @node-llama-cpp/linux-x64 3.22.1 (its libggml-cpu-x64.so is the baseline
 * SSE2 variant, no FMA anywhere, so every float operation is plain IEEE
 * single precision, as in moerun's reference):
 *
 *   cc -O1 -I tests tests/oracle/ggml_kquant_oracle.c -ldl -o /tmp/oracle
 *   /tmp/oracle DIR    (DIR holds libggml-base.so and libggml-cpu-x64.so)
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

static void dump(const char *what, const unsigned char *b, size_t n)
{
    printf("/* %s */\n", what);
    for (size_t i = 0; i < n; i++)
        printf("0x%02x,%s", b[i], i % 16 == 15 ? "\n" : " ");
    printf("\n");
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR-with-libggml-base.so-and-libggml-cpu-x64.so\n", argv[0]);
        return 2;
    }
    void *base = load(argv[1], "libggml-base.so");
    void *cpu = load(argv[1], "libggml-cpu-x64.so");
    quantize_fn q4k = (quantize_fn)sym(base, "quantize_row_q4_K_ref");
    quantize_fn q6k = (quantize_fn)sym(base, "quantize_row_q6_K_ref");
    quantize_fn q8k = (quantize_fn)sym(base, "quantize_row_q8_K_ref");
    vec_dot_fn dot4 = (vec_dot_fn)sym(cpu, "ggml_vec_dot_q4_K_q8_K_generic");
    vec_dot_fn dot6 = (vec_dot_fn)sym(cpu, "ggml_vec_dot_q6_K_q8_K_generic");
    /* fills the f16 -> f32 table the baseline (no F16C) dots read */
    ((void (*)(void))sym(cpu, "ggml_cpu_init"))();

    static float x[KQ_ROW], a[KQ_ROW];
    static unsigned char b4[KQ_ROW_BLOCKS * 144], b6[KQ_ROW_BLOCKS * 210],
        b8[KQ_ROW_BLOCKS * 292], a8[KQ_ROW_BLOCKS * 292];

    /* the hand-derived blocks, to confirm the derivations */
    q4k_hand_fill(x);
    q4k(x, b4, 256);
    dump("q4_K hand block", b4, 144);
    q6k_hand_fill(x);
    q6k(x, b6, 256);
    dump("q6_K hand block", b6, 210);
    q8k_hand_fill(x);
    memset(b8, 0, 292); /* ggml leaves bsums of an all-zero block unwritten */
    q8k(x, b8, 256);
    dump("q8_K hand block", b8, 292);

    printf("/* shape: q4_K, q6_K, q8_K digests; q4_K.q8_K, q6_K.q8_K bits */\n");
    for (int shape = 0; shape < KQ_N_SHAPES; shape++) {
        const uint64_t seed = 0x5eed0000u + (uint64_t)shape;
        kq_fill(shape, seed, x, KQ_ROW);
        kq_fill_activations(seed ^ 0xacu, a, KQ_ROW);
        memset(b8, 0, sizeof b8);
        memset(a8, 0, sizeof a8);
        q4k(x, b4, KQ_ROW);
        q6k(x, b6, KQ_ROW);
        q8k(x, b8, KQ_ROW);
        q8k(a, a8, KQ_ROW);
        float d4 = 0.0f, d6 = 0.0f;
        dot4(KQ_ROW, &d4, 0, b4, 0, a8, 0, 1);
        dot6(KQ_ROW, &d6, 0, b6, 0, a8, 0, 1);
        uint32_t u4, u6;
        memcpy(&u4, &d4, 4);
        memcpy(&u6, &d6, 4);
        printf("{0x%016llxull, 0x%016llxull, 0x%016llxull, 0x%08xu, 0x%08xu}, /* %s: %g %g */\n",
               (unsigned long long)kq_fnv1a(b4, sizeof b4),
               (unsigned long long)kq_fnv1a(b6, sizeof b6),
               (unsigned long long)kq_fnv1a(b8, sizeof b8), u4, u6, kq_shape_name(shape), d4,
               d6);
    }
    return 0;
}
