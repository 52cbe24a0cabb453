/* dispatch.c - choose the kernel table once, from what the CPU and the OS
 * support (CPUID and XGETBV on x86: the OS must save the wide registers;
 * getauxval on arm64), lowered by MOERUN_ISA; each weight type's integer
 * kernels then come from the ISA measured fastest here (simd/autotune.c).
 * This file is compiled for the baseline CPU only. */
#include "config.h"
#include "kernels.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__AVX__) || defined(__AVX2__) || defined(__AVX512F__)
#error "dispatch.c must be compiled for the baseline CPU, without -mavx*"
#endif
#if defined(__aarch64__) && defined(__ARM_FEATURE_DOTPROD)
#error "dispatch.c must be compiled for the baseline CPU (armv8-a), without +dotprod"
#endif

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define MR_X86 1
#elif defined(__aarch64__)
#include <sys/auxv.h>
#define MR_ARM64 1
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
#endif

static const char *const isa_names[MR_ISA_COUNT] = {"scalar", "avx2", "avx2vnni", "avx512", "neon"};

const char *mr_isa_name(mr_isa isa)
{
    return (unsigned)isa < MR_ISA_COUNT ? isa_names[isa] : "unknown";
}

mr_isa mr_isa_parse(const char *name)
{
    for (int i = 0; i < MR_ISA_COUNT; i++)
        if (strcmp(name, isa_names[i]) == 0)
            return (mr_isa)i;
    return MR_ISA_COUNT;
}

typedef struct {
    int avx2, fma, f16c, avxvnni, avx512f, avx512bw, avx512vl, avx512vnni, avx512bf16;
    int neon, dotprod;
} cpu_caps;

static cpu_caps detect(void)
{
    cpu_caps c;
    memset(&c, 0, sizeof c);
#ifdef MR_X86
    unsigned a, b, cx, d;
    if (!__get_cpuid(1, &a, &b, &cx, &d))
        return c;
    int osxsave = (cx >> 27) & 1, avx = (cx >> 28) & 1;
    c.fma = (cx >> 12) & 1;
    c.f16c = (cx >> 29) & 1;
    unsigned long long xcr0 = 0;
    if (osxsave) {
        unsigned lo, hi;
        __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        xcr0 = ((unsigned long long)hi << 32) | lo;
    }
    int os_ymm = (xcr0 & 0x6) == 0x6;           /* XMM + YMM state */
    int os_zmm = os_ymm && (xcr0 & 0xe0) == 0xe0; /* opmask + ZMM state */
    if (__get_cpuid_max(0, NULL) >= 7) {
        __cpuid_count(7, 0, a, b, cx, d);
        c.avx2 = avx && os_ymm && ((b >> 5) & 1);
        c.avx512f = os_zmm && ((b >> 16) & 1);
        c.avx512bw = os_zmm && ((b >> 30) & 1);
        c.avx512vl = os_zmm && ((b >> 31) & 1);
        c.avx512vnni = os_zmm && ((cx >> 11) & 1);
        __cpuid_count(7, 1, a, b, cx, d);
        c.avx512bf16 = os_zmm && ((a >> 5) & 1);
        c.avxvnni = os_ymm && ((a >> 4) & 1); /* VEX-encoded: no ZMM state needed */
    }
    c.fma &= os_ymm;
    c.f16c &= os_ymm;
#elif defined(MR_ARM64)
    unsigned long hw = getauxval(AT_HWCAP);
    c.neon = 1; /* mandatory in AArch64 */
    c.dotprod = (hw & HWCAP_ASIMDDP) != 0;
#endif
    return c;
}

void mr_cpu_features(char *buf, size_t cap)
{
    cpu_caps c = detect();
    snprintf(buf, cap, "%s%s%s%s%s%s%s%s%s%s%s", c.avx2 ? "avx2 " : "", c.fma ? "fma " : "",
             c.f16c ? "f16c " : "", c.avxvnni ? "avxvnni " : "", c.avx512f ? "avx512f " : "", c.avx512bw ? "avx512bw " : "",
             c.avx512vl ? "avx512vl " : "", c.avx512vnni ? "avx512vnni " : "",
             c.avx512bf16 ? "avx512bf16 " : "", c.neon ? "neon " : "",
             c.dotprod ? "dotprod " : "");
    if (!buf[0])
        snprintf(buf, cap, "(no SIMD extensions detected)");
}

/* An ISA runs only if the CPU (and OS) has it AND this build compiled its
 * kernels. */
static int isa_available(mr_isa isa)
{
    cpu_caps c = detect();
    switch (isa) {
    case MR_ISA_SCALAR:
        return 1;
#ifdef MR_HAVE_AVX2
    case MR_ISA_AVX2:
        return c.avx2 && c.fma && c.f16c;
#endif
#ifdef MR_HAVE_AVXVNNI
    case MR_ISA_AVX2VNNI:
        return c.avx2 && c.fma && c.f16c && c.avxvnni;
#endif
#ifdef MR_HAVE_AVX512
    case MR_ISA_AVX512:
        return c.avx2 && c.fma && c.f16c && c.avx512f && c.avx512bw && c.avx512vl &&
               c.avx512vnni;
#endif
#ifdef MR_HAVE_NEON
    case MR_ISA_NEON:
        return c.neon && c.dotprod;
#endif
    default:
        return 0;
    }
}

mr_isa mr_isa_best(void)
{
    for (int i = MR_ISA_COUNT - 1; i > 0; i--)
        if (isa_available((mr_isa)i))
            return (mr_isa)i;
    return MR_ISA_SCALAR;
}

/* The scalar reference table.  fast: Q4_0/Q8_0 weights dot Q8_0
 * activations and Q4_K/Q5_K/Q6_K dot Q8_K, in integers (ggml's scheme); exact:
 * every type dots f32. */
static void fill_scalar(mr_kernels *k, int exact)
{
    memset(k, 0, sizeof *k);
    k->isa = MR_ISA_SCALAR;
    k->exact = exact;
    k->attn_block = mr_attn_block_ref;
    for (uint32_t t = 0; t < MR_TYPE_COUNT; t++) {
        k->act_type[t] = MR_TYPE_F32;
        k->dot_f32[t] = mr_type_get(t)->dot_f32;
        k->kv_to_f32[t] = mr_type_get(t)->to_f32;
    }
    k->quantize_act[MR_TYPE_Q8_0] = mr_quantize_row_q8_0;
    k->vec_dot[MR_TYPE_Q8_0] = mr_dot_q8_0_q8_0;
    k->vec_dot[MR_TYPE_Q4_0] = mr_dot_q4_0_q8_0;
    k->quantize_act[MR_TYPE_Q8_K] = mr_quantize_row_q8_K;
    k->vec_dot[MR_TYPE_Q4_K] = mr_dot_q4_K_q8_K;
    k->vec_dot[MR_TYPE_Q5_K] = mr_dot_q5_K_q8_K;
    k->vec_dot[MR_TYPE_Q6_K] = mr_dot_q6_K_q8_K;
    if (!exact) {
        k->act_type[MR_TYPE_Q8_0] = MR_TYPE_Q8_0;
        k->act_type[MR_TYPE_Q4_0] = MR_TYPE_Q8_0;
        k->act_type[MR_TYPE_Q4_K] = MR_TYPE_Q8_K;
        k->act_type[MR_TYPE_Q5_K] = MR_TYPE_Q8_K;
        k->act_type[MR_TYPE_Q6_K] = MR_TYPE_Q8_K;
    }
    mr_kernels_init_scalar_more(k, exact);
}

int mr_kernels_for_isa(mr_isa isa, int exact, mr_kernels *out)
{
    if (!isa_available(isa))
        return 0;
    fill_scalar(out, exact);
    /* one rung per level: each ISA overrides what it implements */
#ifdef MR_HAVE_AVX2
    if (isa == MR_ISA_AVX2 || isa == MR_ISA_AVX512)
        mr_kernels_init_avx2(out);
#endif
#ifdef MR_HAVE_AVXVNNI
    if (isa == MR_ISA_AVX2VNNI)
        mr_kernels_init_avxvnni(out);
#endif
#ifdef MR_HAVE_AVX512
    if (isa == MR_ISA_AVX512)
        mr_kernels_init_avx512(out);
#endif
#ifdef MR_HAVE_NEON
    if (isa == MR_ISA_NEON)
        mr_kernels_init_neon(out);
#endif
    /* the KV cache's widening for attention */
#ifdef MR_HAVE_AVX2
    if (isa == MR_ISA_AVX2 || isa == MR_ISA_AVX2VNNI) {
        out->kv_to_f32[MR_TYPE_F16] = mr_f16_kv_to_f32_avx2;
        out->kv_to_f32[MR_TYPE_Q8_0] = mr_q8_0_kv_to_f32_avx2;
    }
#endif
#ifdef MR_HAVE_AVX512
    if (isa == MR_ISA_AVX512) {
        out->kv_to_f32[MR_TYPE_F16] = mr_f16_kv_to_f32_avx512;
        out->kv_to_f32[MR_TYPE_Q8_0] = mr_q8_0_kv_to_f32_avx512;
    }
#endif
#ifdef MR_HAVE_NEON
    if (isa == MR_ISA_NEON)
        out->kv_to_f32[MR_TYPE_F16] = mr_f16_kv_to_f32_neon;
#endif
    /* the further formats (MXFP4, Q4_1, ...), the same ladder */
#ifdef MR_HAVE_AVX2
    if (isa == MR_ISA_AVX2 || isa == MR_ISA_AVX512) {
        mr_kernels_init_avx2_more(out);
        mr_kernels_init_avx2_iq(out);
    }
#endif
#ifdef MR_HAVE_AVXVNNI
    if (isa == MR_ISA_AVX2VNNI) {
        mr_kernels_init_avxvnni_more(out);
        mr_kernels_init_avxvnni_iq(out);
    }
#endif
#ifdef MR_HAVE_AVX512
    if (isa == MR_ISA_AVX512) {
        mr_kernels_init_avx512_more(out);
        mr_kernels_init_avx512_pack(out);
        mr_kernels_init_avx512_iq(out);
    }
#endif
#ifdef MR_HAVE_NEON
    if (isa == MR_ISA_NEON) {
        mr_kernels_init_neon_more(out);
        mr_kernels_init_neon_iq(out);
    }
#endif
    out->isa = isa;
    out->exact = exact;
    return 1;
}

static mr_kernels chosen, chosen_exact;
static mr_autotune_report chosen_report;
static pthread_once_t chosen_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static char cache_dir[400]; /* "": measure at every start */
static int choice_made;

int mr_kernels_set_cache_dir(const char *dir)
{
    pthread_mutex_lock(&cache_lock);
    int rc = -1;
    if (!choice_made && (!dir || strlen(dir) < sizeof cache_dir)) {
        snprintf(cache_dir, sizeof cache_dir, "%s", dir ? dir : "");
        rc = 0;
    }
    pthread_mutex_unlock(&cache_lock);
    return rc;
}

/* The autotune, or its cached result (simd/autotune_cache.c).
 * MOERUN_AUTOTUNE=fresh measures again and rewrites the cache. */
static void tune(mr_isa isa, int fresh)
{
    pthread_mutex_lock(&cache_lock);
    choice_made = 1;
    char dir[sizeof cache_dir];
    memcpy(dir, cache_dir, sizeof dir);
    pthread_mutex_unlock(&cache_lock);
    if (!dir[0]) {
        mr_autotune(&chosen, &chosen_report, 0);
        return;
    }
    if (!fresh && mr_autotune_cache_load(dir, &chosen, &chosen_report) == 0)
        return;
    char note[sizeof chosen_report.cache_note];
    if (fresh)
        snprintf(note, sizeof note, "MOERUN_AUTOTUNE=fresh");
    else
        memcpy(note, chosen_report.cache_note, sizeof note);
    mr_autotune(&chosen, &chosen_report, 1);
    if (chosen_report.measured && mr_autotune_cache_save(dir, &chosen_report, isa) == 0)
        snprintf(chosen_report.cache_note, sizeof chosen_report.cache_note, "%s", note);
}

static void choose(void)
{
    mr_isa isa = mr_isa_best();
    int forced = 0;
    const char *env = getenv("MOERUN_ISA");
    if (env && *env) {
        mr_isa want = mr_isa_parse(env);
        /* the best is the highest available, so an available choice can
         * only be lower; an unknown or unavailable name keeps the best */
        if (want != MR_ISA_COUNT && isa_available(want)) {
            isa = want;
            forced = 1;
        }
    }
    mr_kernels_for_isa(isa, 0, &chosen);
    mr_kernels_for_isa(isa, 1, &chosen_exact);
    const char *env_tune = getenv("MOERUN_AUTOTUNE");
    memset(&chosen_report, 0, sizeof chosen_report);
    for (uint32_t t = 0; t < MR_TYPE_COUNT; t++)
        chosen_report.chosen[t] = isa;
    if (!forced && !(env_tune && strcmp(env_tune, "0") == 0))
        tune(isa, env_tune && strcmp(env_tune, "fresh") == 0);
    else {
        pthread_mutex_lock(&cache_lock);
        choice_made = 1;
        pthread_mutex_unlock(&cache_lock);
    }
}

const mr_autotune_report *mr_kernels_autotune_report(void)
{
    pthread_once(&chosen_once, choose);
    return &chosen_report;
}

const mr_kernels *mr_kernels_get_exact(void)
{
    pthread_once(&chosen_once, choose);
    return &chosen_exact;
}

const mr_kernels *mr_kernels_get(void)
{
    pthread_once(&chosen_once, choose);
    return &chosen;
}
