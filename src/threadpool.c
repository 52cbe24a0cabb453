/* threadpool.c - persistent workers sharing each job by claiming chunks.
 *
 * A job is published as one 64-bit ticket: job number (24 bits), chunk
 * count (20 bits) and next chunk (20 bits).  Every thread, the caller's
 * included, claims chunks with a compare-and-swap until none is left, so a
 * worker the OS has not scheduled delays nothing: the others take its
 * share.  A claim that succeeds proves the ticket was still the job's, so
 * the job's parameters (written before the ticket) are safe to read.
 *
 * Waiting never burns a CPU for long: idle workers spin SPIN_ROUNDS pauses
 * (a few microseconds, enough for the next matmul of a decode step), yield
 * YIELD_ROUNDS times, then sleep on a condition variable; the caller, once
 * its own chunks are done, waits for the others the same way on a second
 * condition variable that the thread finishing the last chunk signals.  So
 * more threads than CPUs (or a machine busy with other work) costs
 * wake-ups, not time slices lost to spinning threads.
 */
#include "threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SPIN_ROUNDS 2000
#define YIELD_ROUNDS 16
#define MAX_CHUNKS ((1u << 20) - 1)

typedef struct {
    mr_range_fn fn;
    void *arg;
    int64_t n, chunk; /* items, items per chunk */
    long n_chunks;
} job;

struct mr_pool {
    int n_threads;
    pthread_t *tids;
    job jobs[2];            /* double-buffered by job number */
    atomic_ullong ticket;   /* job << 40 | n_chunks << 20 | next */
    atomic_long done;       /* chunks finished of the current job */
    atomic_int sleepers;
    atomic_int stop;
    atomic_int caller_waits; /* the caller sleeps on cv_done */
    pthread_mutex_t mu;
    pthread_cond_t cv;       /* workers: a new ticket */
    pthread_cond_t cv_done;  /* caller: the last chunk finished */
};

#define cpu_relax mr_cpu_relax

/* Claim and run chunks of the current job until none is left; returns the
 * ticket last seen. */
static unsigned long long work(mr_pool *p)
{
    unsigned long long t = atomic_load_explicit(&p->ticket, memory_order_acquire);
    for (;;) {
        unsigned long long n_chunks = (t >> 20) & MAX_CHUNKS, next = t & MAX_CHUNKS;
        if (next >= n_chunks)
            return t;
        if (!atomic_compare_exchange_weak_explicit(&p->ticket, &t, t + 1,
                                                   memory_order_acq_rel,
                                                   memory_order_acquire))
            continue; /* t now holds the fresh ticket */
        const job *j = &p->jobs[(t >> 40) & 1];
        int64_t i0 = (int64_t)next * j->chunk;
        int64_t i1 = i0 + j->chunk < j->n ? i0 + j->chunk : j->n;
        long n_chunks_job = j->n_chunks;
        j->fn(j->arg, i0, i1);
        /* seq_cst increment then load: pairs with the caller's store of
         * caller_waits then load of done, so one of the two sees the other */
        if (atomic_fetch_add(&p->done, 1) + 1 == n_chunks_job && atomic_load(&p->caller_waits)) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->cv_done);
            pthread_mutex_unlock(&p->mu);
        }
        t = atomic_load_explicit(&p->ticket, memory_order_acquire);
    }
}

static void *worker_main(void *arg)
{
    mr_pool *p = arg;
    unsigned long long seen = work(p);
    for (;;) {
        int spins = 0;
        while (atomic_load_explicit(&p->ticket, memory_order_acquire) == seen &&
               !atomic_load(&p->stop)) {
            if (++spins < SPIN_ROUNDS) {
                cpu_relax();
                continue;
            }
            if (spins < SPIN_ROUNDS + YIELD_ROUNDS) {
                sched_yield();
                continue;
            }
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->sleepers, 1);
            while (atomic_load(&p->ticket) == seen && !atomic_load(&p->stop))
                pthread_cond_wait(&p->cv, &p->mu);
            atomic_fetch_sub(&p->sleepers, 1);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->stop))
            return NULL;
        seen = work(p);
    }
}

mr_status mr_pool_new(int n_threads, mr_pool **out, mr_error *err)
{
    *out = NULL;
    if (n_threads < 1 || n_threads > 1024)
        return mr_fail(err, MR_EINVAL, NULL, "threads", MR_NO_OFFSET,
                       "%d threads (1..1024 allowed)", n_threads);
    mr_pool *p = calloc(1, sizeof *p);
    if (!p)
        return mr_fail(err, MR_ENOMEM, NULL, "threads", MR_NO_OFFSET, "no memory");
    p->n_threads = 1;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    pthread_cond_init(&p->cv_done, NULL);
    if (n_threads > 1 && !(p->tids = calloc((size_t)n_threads, sizeof *p->tids))) {
        mr_pool_free(p);
        return mr_fail(err, MR_ENOMEM, NULL, "threads", MR_NO_OFFSET, "no memory");
    }
    for (int i = 1; i < n_threads; i++) {
        if (pthread_create(&p->tids[i], NULL, worker_main, p) != 0) {
            mr_pool_free(p);
            return mr_fail(err, MR_ENOMEM, NULL, "threads", MR_NO_OFFSET,
                           "cannot start thread %d of %d", i + 1, n_threads);
        }
        p->n_threads = i + 1;
    }
    *out = p;
    return MR_OK;
}

void mr_pool_free(mr_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n_threads; i++)
        pthread_join(p->tids[i], NULL);
    free(p->tids);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    pthread_cond_destroy(&p->cv_done);
    free(p);
}

int mr_pool_threads(const mr_pool *p)
{
    return p->n_threads;
}

void mr_pool_run(mr_pool *p, int64_t n, int64_t grain, mr_range_fn fn, void *arg)
{
    if (n <= 0)
        return;
    if (grain < 1)
        grain = 1;
    int64_t units = (n + grain - 1) / grain;
    if (p->n_threads == 1 || units == 1) {
        fn(arg, 0, n);
        return;
    }
    /* a few chunks per thread balance uneven progress */
    int64_t n_chunks = (int64_t)p->n_threads * 4 < units ? (int64_t)p->n_threads * 4 : units;
    if (n_chunks > (int64_t)MAX_CHUNKS)
        n_chunks = MAX_CHUNKS;
    int64_t per = (units + n_chunks - 1) / n_chunks;
    n_chunks = (units + per - 1) / per;

    unsigned long long old = atomic_load(&p->ticket);
    unsigned long long jn = ((old >> 40) + 1) & 0xffffff;
    job *j = &p->jobs[jn & 1];
    j->fn = fn;
    j->arg = arg;
    j->n = n;
    j->chunk = per * grain;
    j->n_chunks = (long)n_chunks;
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    /* seq_cst store then load: pairs with the sleeper's increment-then-check
     * so a worker going to sleep either sees the ticket or gets the signal */
    atomic_store(&p->ticket, jn << 40 | (unsigned long long)n_chunks << 20);
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    work(p);
    for (int spins = 0; atomic_load_explicit(&p->done, memory_order_acquire) < n_chunks; spins++) {
        if (spins < SPIN_ROUNDS) {
            cpu_relax();
        } else if (spins < SPIN_ROUNDS + YIELD_ROUNDS) {
            sched_yield();
        } else {
            pthread_mutex_lock(&p->mu);
            atomic_store(&p->caller_waits, 1);
            while (atomic_load(&p->done) < n_chunks)
                pthread_cond_wait(&p->cv_done, &p->mu);
            atomic_store(&p->caller_waits, 0);
            pthread_mutex_unlock(&p->mu);
        }
    }
}

/* CPUs in this process's affinity mask (sched_getaffinity), or -1. */
static int affinity_cpus(void)
{
#ifdef CPU_COUNT
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
#endif
    return -1;
}

/* CPUs the cgroup's quota allows, rounded up, from a cgroup v2 cpu.max
 * ("max 100000" or "200000 100000") or v1 cfs files; -1 if unlimited. */
static int quota_from(const char *v2, const char *v1_quota, const char *v1_period)
{
    long long quota = -1, period = 0;
    char word[32];
    FILE *f = fopen(v2, "r");
    if (f) {
        if (fscanf(f, "%31s %lld", word, &period) == 2 && strcmp(word, "max") != 0)
            quota = atoll(word);
        fclose(f);
    } else if ((f = fopen(v1_quota, "r"))) {
        if (fscanf(f, "%lld", &quota) != 1)
            quota = -1;
        fclose(f);
        if ((f = fopen(v1_period, "r"))) {
            if (fscanf(f, "%lld", &period) != 1)
                period = 0;
            fclose(f);
        }
    }
    if (quota <= 0 || period <= 0)
        return -1;
    long long n = (quota + period - 1) / period;
    return n > 4096 ? 4096 : (int)n;
}

/* The cgroup v2 path of this process ("0::/a/b" in /proc/self/cgroup). */
static int cgroup_cpus(void)
{
    char line[512], path[700];
    int best = -1;
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (f) {
        while (fgets(line, sizeof line, f)) {
            if (strncmp(line, "0::", 3) != 0)
                continue;
            line[strcspn(line, "\n")] = '\0';
            /* the process's own group, then its parents up to the root */
            char *rel = line + 3;
            for (;;) {
                snprintf(path, sizeof path, "/sys/fs/cgroup%s/cpu.max", strcmp(rel, "/") ? rel : "");
                int n = quota_from(path, "", "");
                if (n > 0 && (best < 0 || n < best))
                    best = n;
                char *slash = strrchr(rel, '/');
                if (!slash || slash == rel)
                    break;
                *slash = '\0';
            }
        }
        fclose(f);
    }
    int n = quota_from("/sys/fs/cgroup/cpu.max", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
                       "/sys/fs/cgroup/cpu/cpu.cfs_period_us");
    if (n > 0 && (best < 0 || n < best))
        best = n;
    return best;
}

int mr_available_cpus(void)
{
    const char *force = getenv("MOERUN_CPUS"); /* tests: pretend to have N CPUs */
    if (force && atoi(force) > 0)
        return atoi(force);
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int n = affinity_cpus();
    if (n < 1)
        n = online > 0 ? (int)online : 1;
    int q = cgroup_cpus();
    if (q > 0 && q < n)
        n = q;
    return n;
}

/* Count distinct (physical id, core id) pairs in /proc/cpuinfo; fall back
 * to the online CPU count. */
int mr_physical_cores(void)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int n = 0;
    if (f) {
        char line[256];
        int phys = -1, seen[1024][2], ns = 0;
        while (fgets(line, sizeof line, f)) {
            int v;
            if (sscanf(line, "physical id : %d", &v) == 1)
                phys = v;
            else if (sscanf(line, "core id : %d", &v) == 1 && ns < 1024) {
                int dup = 0;
                for (int i = 0; i < ns; i++)
                    dup |= seen[i][0] == phys && seen[i][1] == v;
                if (!dup) {
                    seen[ns][0] = phys;
                    seen[ns][1] = v;
                    ns++;
                }
            }
        }
        fclose(f);
        n = ns;
    }
    if (n < 1)
        n = online > 0 ? (int)online : 1;
    int avail = mr_available_cpus();
    return n < avail ? n : avail;
}
