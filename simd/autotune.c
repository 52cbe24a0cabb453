/* autotune.c - the fastest kernel on the CPU it runs on.  The highest ISA
 * is not always the fastest: on Zen 4 (AVX-512 run as two 256-bit halves)
 * the Q4_0 one-token matmul streams 20.3 GB/s through AVX2 and 14.1 GB/s
 * through AVX-512.  So once, at start-up, each weight type's integer
 * kernels (vec_dot and gemm) of every ISA this CPU runs are timed on a
 * one-token matmul over a buffer larger than L2 (the streaming case), and
 * the fastest is kept, per type.
 *
 * vec_dot and gemm of a type always come from the same ISA, so decode and
 * prefill still agree to the bit.  The activation formats and quantizers
 * are the same in every candidate (quantize_act is bit-identical across
 * ISAs), so switching a type's kernels changes speed, never results beyond
 * the kernels' contract (tests/test_kernels_k.c runs the chosen table
 * through the same tests).  The exact (f32) table keeps the best ISA.
 *
 * With a cache directory (the CLI's default, simd/autotune_cache.c) this
 * runs once per CPU model and build, carefully (11 rounds, a 400 ms
 * budget), and later starts read the choice back.
 *
 * Cost: a 3 MB buffer of random bytes, 5 alternating timed passes per
 * (type, ISA), best kept (a candidate 1.5x behind after two is dropped),
 * ~25 ms of CPU for the 13 types on Zen 4 (+ ~12 ms for the 7 i-quants),
 * stopped early past 60 ms (a
 * slow or emulated CPU keeps the best ISA for the types left); times are
 * this thread's CPU time.  A lower ISA replaces the highest only when it
 * is faster by TUNE_MARGIN: one pass takes ~0.1 ms, so an interrupt can
 * make a kernel look slower than it is, and on a loaded machine a 2-pass
 * measurement once chose Q6_K's AVX2 kernel on Zen 5, where AVX-512
 * streams it 1.4x faster; the real differences (Zen 4's Q4_0: 1.44x) are
 * far above the margin.
 * Compiled for the baseline CPU: it
 * only calls kernels through tables. */
#include "config.h"
#include "kernels.h"

#include "../quant/types_iq.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TUNE_BYTES ((size_t)3 << 20) /* above the 1-2 MB L2 of Zen 4/5 and recent Xeons */
#define TUNE_N 4096 /* elements per row */
#define TUNE_BUDGET_S 0.060
#define TUNE_ROUNDS 5
/* measured once for the cache (simd/autotune_cache.c): every type, more
 * rounds, so one noisy moment does not decide for every later start */
#define TUNE_BUDGET_CAREFUL_S 0.400
#define TUNE_ROUNDS_CAREFUL 11
#define TUNE_MARGIN MR_AUTOTUNE_MARGIN
#define TUNE_DROP 1.5 /* a candidate this far behind after two rounds is dropped */

/* Most downloaded first, as the budget may stop the list early; a type
 * whose candidates share their kernels is not timed.  The i-quants run
 * far below memory speed (codebook lookups), so a quarter of the buffer
 * times them as well and keeps them inside the budget: on a Xeon (family 6
 * model 167) their AVX-512 dots are 1.1-1.25x AVX2's for IQ2/IQ3_XXS and
 * 0.8x for IQ1, which the measurement sorts out per CPU. */
static const uint32_t tune_types[] = {
    MR_TYPE_Q4_K,   MR_TYPE_Q6_K,   MR_TYPE_Q4_0,    MR_TYPE_Q8_0,    MR_TYPE_Q5_K,  MR_TYPE_Q3_K,
    MR_TYPE_Q2_K,   MR_TYPE_IQ4_XS, MR_TYPE_MXFP4,   MR_TYPE_Q5_0,    MR_TYPE_Q5_1,  MR_TYPE_Q4_1,
    MR_TYPE_IQ4_NL, MR_TYPE_IQ2_XXS, MR_TYPE_IQ1_S, MR_TYPE_IQ3_XXS, MR_TYPE_IQ2_XS, MR_TYPE_IQ2_S,
    MR_TYPE_IQ3_S,  MR_TYPE_IQ1_M};

/* This thread's CPU time: on a shared machine a run that was descheduled
 * would otherwise lose to one that was not. */
static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Random payload (written once) with finite f16 scales where format t
 * keeps them (the kernels' speed does not depend on the values). */
static void fill_random(uint8_t *w, size_t bytes)
{
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i + 8 <= bytes; i += 8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        memcpy(w + i, &x, 8);
    }
}

static void put_f16(uint8_t *b, size_t off, uint16_t d)
{
    memcpy(b + off, &d, 2);
}

static void set_scales(uint32_t t, uint8_t *w, size_t bytes)
{
    const size_t bs = mr_type_get(t)->type_size;
    const uint16_t d = mr_f32_to_f16(0.01f);
    for (size_t b = 0; b + bs <= bytes; b += bs) {
        uint8_t *p = w + b;
        switch (t) {
        case MR_TYPE_Q6_K:
            put_f16(p, offsetof(block_q6_K, d), d);
            break;
        case MR_TYPE_Q3_K:
            put_f16(p, offsetof(block_q3_K, d), d);
            break;
        case MR_TYPE_Q2_K:
            put_f16(p, offsetof(block_q2_K, d), d);
            put_f16(p, offsetof(block_q2_K, dmin), d);
            break;
        case MR_TYPE_MXFP4:
            p[0] = 120; /* 2^-7 */
            break;
        case MR_TYPE_IQ1_M:
            mr_iq1_m_set_d((block_iq1_m *)p, d);
            break;
        case MR_TYPE_Q4_K:
        case MR_TYPE_Q5_K:
        case MR_TYPE_Q4_1:
        case MR_TYPE_Q5_1: /* d, then dmin or m */
            put_f16(p, 0, d);
            put_f16(p, 2, d);
            break;
        default: /* Q4_0, Q8_0, Q5_0, IQ4_NL, IQ4_XS: d first */
            put_f16(p, 0, d);
            break;
        }
    }
}

static double best_of(const double *best, const mr_isa *cand, int n_cand)
{
    double m = 0.0;
    for (int c = 0; c < n_cand; c++)
        m = best[cand[c]] > m ? best[cand[c]] : m;
    return m;
}

void mr_autotune_apply(mr_kernels *fast, const mr_autotune_report *rep)
{
    for (int i = 1; i < MR_ISA_COUNT; i++) {
        mr_kernels tab;
        if ((mr_isa)i == fast->isa || !mr_kernels_for_isa((mr_isa)i, 0, &tab))
            continue;
        for (uint32_t t = 0; t < MR_TYPE_COUNT; t++) {
            if (rep->chosen[t] != (mr_isa)i)
                continue;
            /* a type's vec_dot and gemm from one ISA: decode = prefill */
            fast->vec_dot[t] = tab.vec_dot[t];
            fast->gemm[t] = tab.gemm[t];
            /* a packed layout gives its own ISA's gemm bits only */
            fast->repack[t] = tab.repack[t];
            fast->gemm_packed[t] = tab.gemm_packed[t];
            fast->pack_block_bytes[t] = tab.pack_block_bytes[t];
        }
    }
}

void mr_autotune(mr_kernels *fast, mr_autotune_report *rep, int careful)
{
    const double budget = careful ? TUNE_BUDGET_CAREFUL_S : TUNE_BUDGET_S;
    const int n_rounds = careful ? TUNE_ROUNDS_CAREFUL : TUNE_ROUNDS;
    memset(rep, 0, sizeof *rep);
    for (uint32_t t = 0; t < MR_TYPE_COUNT; t++)
        rep->chosen[t] = fast->isa;
    mr_isa cand[MR_ISA_COUNT];
    int n_cand = 0;
    for (int i = 1; i < MR_ISA_COUNT; i++) {
        mr_kernels probe;
        if (mr_kernels_for_isa((mr_isa)i, 0, &probe))
            cand[n_cand++] = (mr_isa)i;
    }
    if (n_cand < 2)
        return; /* nothing to choose between */
    const double t0 = now();
    uint8_t *w = malloc(TUNE_BYTES);
    float *x = malloc(sizeof(float) * TUNE_N);
    float *y = malloc(sizeof(float) * (TUNE_BYTES / 1024)); /* rows <= bytes / 1 KB */
    void *act = malloc((size_t)TUNE_N * sizeof(float));
    if (!w || !x || !y || !act) {
        free(w);
        free(x);
        free(y);
        free(act);
        return;
    }
    fill_random(w, TUNE_BYTES);
    for (int i = 0; i < TUNE_N; i++)
        x[i] = (float)((int)(i * 2654435761u % 2001u) - 1000) * 1e-3f;
    mr_kernels tab[MR_ISA_COUNT];
    for (int c = 0; c < n_cand; c++)
        mr_kernels_for_isa(cand[c], 0, &tab[cand[c]]);
    rep->measured = 1;
    rep->bytes = TUNE_BYTES;
    for (size_t ti = 0; ti < sizeof tune_types / sizeof tune_types[0]; ti++) {
        const uint32_t t = tune_types[ti];
        if (!mr_type_computable(t) || fast->act_type[t] == MR_TYPE_F32)
            continue;
        if (now() - t0 > budget)
            break;
        int differ = 0;
        for (int c = 1; c < n_cand; c++)
            differ |= tab[cand[c]].vec_dot[t] != tab[cand[0]].vec_dot[t] ||
                      tab[cand[c]].gemm[t] != tab[cand[0]].gemm[t];
        if (!differ)
            continue;
        const size_t rb = (size_t)mr_type_row_bytes(t, TUNE_N);
        const int64_t rows = (int64_t)(TUNE_BYTES / (mr_type_is_iq(t) ? 4 : 1) / rb);
        set_scales(t, w, (size_t)rows * rb);
        /* every candidate prepares activations alike (bit-identical) */
        const void *a = mr_act_prepare(&tab[cand[0]], t, x, TUNE_N, 1, act);
        double best[MR_ISA_COUNT] = {0};
        /* alternating rounds (set_scales has just walked the buffer) */
        for (int round = 0; round < n_rounds; round++)
            for (int c = 0; c < n_cand; c++) {
                if (round >= 2 && best[cand[c]] * TUNE_DROP < best_of(best, cand, n_cand))
                    continue; /* far behind after two rounds: no noise makes it win */
                const double s0 = now();
                mr_matmul_rows(&tab[cand[c]], t, w, rb, a, TUNE_N, 1, y, rows, 0, rows);
                const double dt = now() - s0;
                const double gbs = dt > 0 ? (double)rb * (double)rows / dt / 1e9 : 0.0;
                if (gbs > best[cand[c]])
                    best[cand[c]] = gbs;
            }
        /* the highest ISA unless another beats it by the margin */
        mr_isa win = fast->isa;
        for (int c = 0; c < n_cand; c++) {
            rep->gbs[t][cand[c]] = best[cand[c]];
            if (best[cand[c]] > best[win] * (win == fast->isa ? TUNE_MARGIN : 1.0))
                win = cand[c];
        }
        /* a layout the highest ISA repacks is what resident runs read,
         * not the file's bytes measured here: keep that ISA */
        if (fast->repack[t])
            win = fast->isa;
        rep->chosen[t] = win;
    }
    mr_autotune_apply(fast, rep);
    rep->ms = (now() - t0) * 1e3;
    free(w);
    free(x);
    free(y);
    free(act);
}
