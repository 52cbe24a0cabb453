/* membw.c - how fast this machine streams memory, for the bandwidth
 * ceilings that bench and --stats compare against.  The widest loads the
 * CPU runs (a plain C loop reads ~20% slower than AVX2 loads on Zen, which
 * would flatter every kernel measured against it). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

/* sum of n u64 with 256-bit loads (caller checked the CPU has AVX2) */
__attribute__((target("avx2"))) static uint64_t sum_avx2(const uint64_t *p, size_t n)
{
    __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_add_epi64(s0, _mm256_loadu_si256((const __m256i *)(p + i)));
        s1 = _mm256_add_epi64(s1, _mm256_loadu_si256((const __m256i *)(p + i + 4)));
        s2 = _mm256_add_epi64(s2, _mm256_loadu_si256((const __m256i *)(p + i + 8)));
        s3 = _mm256_add_epi64(s3, _mm256_loadu_si256((const __m256i *)(p + i + 12)));
    }
    s0 = _mm256_add_epi64(_mm256_add_epi64(s0, s1), _mm256_add_epi64(s2, s3));
    uint64_t o[4];
    _mm256_storeu_si256((__m256i *)o, s0);
    uint64_t s = o[0] + o[1] + o[2] + o[3];
    for (; i < n; i++)
        s += p[i];
    return s;
}
#endif

static uint64_t sum_plain(const uint64_t *p, size_t n)
{
    uint64_t a = 0, b = 0, c = 0, d = 0;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        a += p[i];
        b += p[i + 1];
        c += p[i + 2];
        d += p[i + 3];
    }
    for (; i < n; i++)
        a += p[i];
    return a + b + c + d;
}

typedef struct {
    const uint64_t *p;
    size_t n;
    int wide;
    uint64_t sum;
} part;

static void *run_part(void *arg)
{
    part *q = arg;
#if defined(__x86_64__) || defined(__i386__)
    if (q->wide) {
        q->sum = sum_avx2(q->p, q->n);
        return NULL;
    }
#endif
    q->sum = sum_plain(q->p, q->n);
    return NULL;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double mr_read_bandwidth(int threads, size_t bytes)
{
    uint64_t *buf = malloc(bytes);
    if (!buf)
        return 0.0;
    memset(buf, 1, bytes);
    const double gbs = mr_read_bandwidth_of(buf, bytes, threads);
    free(buf);
    return gbs;
}

double mr_read_bandwidth_of(const void *mem, size_t bytes, int threads)
{
    if (threads < 1)
        threads = 1;
    if (threads > 64)
        threads = 64;
    const uint64_t *buf = mem;
    if (!buf || bytes < 64 * (size_t)threads)
        return 0.0;
    const mr_isa best_isa = mr_isa_best();
    const int wide = best_isa == MR_ISA_AVX2 || best_isa == MR_ISA_AVX2VNNI || best_isa == MR_ISA_AVX512;
    const size_t per = bytes / 8 / (size_t)threads;
    pthread_t tid[64];
    int started[64] = {0};
    part parts[64];
    volatile uint64_t sink = 0;
    double best = 0.0;
    /* Best of at least 5 passes and at least 30 ms: on a shared machine one
     * pass of a small buffer can lose a whole time slice to another process
     * or to the kernel's readahead, and a low figure here makes every bound
     * computed from it too low. */
    const double start = now();
    for (int rep = 0; rep < 64 && (rep < 5 || now() - start < 0.03); rep++) {
        double t0 = now();
        for (int i = 0; i < threads; i++) {
            parts[i] = (part){buf + per * (size_t)i, per, wide, 0};
            started[i] = i && pthread_create(&tid[i], NULL, run_part, &parts[i]) == 0;
        }
        for (int i = 0; i < threads; i++)
            if (!started[i]) /* the caller's share, or a thread that could not start */
                run_part(&parts[i]);
        for (int i = 1; i < threads; i++)
            if (started[i])
                pthread_join(tid[i], NULL);
        double gbs = (double)(per * (size_t)threads * 8) / (now() - t0) / 1e9;
        best = gbs > best ? gbs : best;
        for (int i = 0; i < threads; i++)
            sink += parts[i].sum;
    }
    (void)sink;
    return best;
}
