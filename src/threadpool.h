/* threadpool.h - a persistent pool of worker threads owned by a context.
 *
 * mr_pool_run splits [0, n) into one contiguous range per thread (each a
 * multiple of grain) and calls fn on each; the caller's thread takes the
 * first range.  Workers spin briefly, then sleep, between runs, so a
 * decode step's many small matmuls do not pay a wake-up each.
 */
#ifndef MOERUN_THREADPOOL_H
#define MOERUN_THREADPOOL_H

#include <stdint.h>

#include "status.h"

typedef struct mr_pool mr_pool;

/* fn(arg, i0, i1): process items [i0, i1). */
typedef void (*mr_range_fn)(void *arg, int64_t i0, int64_t i1);

/* n_threads >= 1 (1: no extra threads). */
mr_status mr_pool_new(int n_threads, mr_pool **out, mr_error *err);
void mr_pool_free(mr_pool *p);
int mr_pool_threads(const mr_pool *p);

/* Run fn over [0, n) in ranges that are multiples of grain (but the last);
 * returns when every range is done.  Not re-entrant. */
void mr_pool_run(mr_pool *p, int64_t n, int64_t grain, mr_range_fn fn, void *arg);

/* One pause of a spin-wait. */
static inline void mr_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

/* Physical cores of this machine that this process may use (at least 1,
 * at most mr_available_cpus()), for the default -t. */
int mr_physical_cores(void);

/* CPUs this process may run on (at least 1): its affinity mask
 * (sched_getaffinity), lowered to the cgroup's CPU quota (cpu.max, rounded
 * up) when there is one.  MOERUN_CPUS=N overrides it (tests). */
int mr_available_cpus(void);

#endif
