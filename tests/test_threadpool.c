/* test_threadpool.c - the pool covers every item exactly once, and waiting
 * does not burn a CPU: a caller whose share is done sleeps until a slow
 * worker finishes, and idle workers go to sleep; the CPU count honours
 * the affinity mask.  Needs no test data. */
#include <check.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "threadpool.h"

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static atomic_int hits[10000];

static void count_items(void *arg, int64_t i0, int64_t i1)
{
    (void)arg;
    for (int64_t i = i0; i < i1; i++)
        atomic_fetch_add(&hits[i], 1);
}

START_TEST(every_item_once)
{
    static const int threads[] = {1, 2, 3, 8, 64};
    static const int64_t sizes[] = {1, 2, 7, 64, 257, 10000};
    for (size_t t = 0; t < sizeof threads / sizeof *threads; t++) {
        mr_pool *p;
        mr_error err;
        ck_assert(mr_pool_new(threads[t], &p, &err) == MR_OK);
        for (int rep = 0; rep < 50; rep++)
            for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
                for (int64_t i = 0; i < sizes[s]; i++)
                    atomic_store(&hits[i], 0);
                mr_pool_run(p, sizes[s], 1 + rep % 3, count_items, NULL);
                for (int64_t i = 0; i < sizes[s]; i++)
                    ck_assert_msg(atomic_load(&hits[i]) == 1, "threads %d n %lld item %lld hit %d",
                                  threads[t], (long long)sizes[s], (long long)i,
                                  atomic_load(&hits[i]));
            }
        mr_pool_free(p);
    }
}
END_TEST

/* The range containing item 0 goes to whoever claims chunk 0; every
 * other chunk sleeps 100 ms, so the caller finishes long before the rest. */
static void slow_chunks(void *arg, int64_t i0, int64_t i1)
{
    (void)arg;
    (void)i1;
    if (i0 > 0)
        usleep(100000);
}

START_TEST(waiting_sleeps)
{
    mr_pool *p;
    mr_error err;
    ck_assert(mr_pool_new(4, &p, &err) == MR_OK);
    mr_pool_run(p, 4, 1, count_items, NULL); /* workers started */
    double cpu0 = clock_s(CLOCK_THREAD_CPUTIME_ID), wall0 = clock_s(CLOCK_MONOTONIC);
    mr_pool_run(p, 4, 1, slow_chunks, NULL);
    double cpu = clock_s(CLOCK_THREAD_CPUTIME_ID) - cpu0, wall = clock_s(CLOCK_MONOTONIC) - wall0;
    printf("caller: %.1f ms wall, %.1f ms CPU while others worked\n", 1e3 * wall, 1e3 * cpu);
    ck_assert(wall >= 0.09);
    /* a spinning caller uses about the whole wall time */
    ck_assert_msg(cpu < 0.3 * wall, "the caller spun: %.1f ms CPU in %.1f ms", 1e3 * cpu, 1e3 * wall);
    /* idle workers: after a short spin they sleep */
    usleep(20000);
    double pcpu0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    usleep(200000);
    double idle = clock_s(CLOCK_PROCESS_CPUTIME_ID) - pcpu0;
    printf("3 idle workers: %.1f ms CPU in 200 ms\n", 1e3 * idle);
    ck_assert_msg(idle < 0.02, "idle workers used %.1f ms CPU in 200 ms", 1e3 * idle);
    mr_pool_free(p);
}
END_TEST

START_TEST(cpus_follow_affinity)
{
    cpu_set_t old, one;
    ck_assert(sched_getaffinity(0, sizeof old, &old) == 0);
    int n = mr_available_cpus();
    ck_assert_int_ge(n, 1);
    ck_assert_int_le(n, CPU_COUNT(&old));
    ck_assert_int_le(mr_physical_cores(), n);
    CPU_ZERO(&one);
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &old)) {
            CPU_SET(c, &one);
            break;
        }
    ck_assert(sched_setaffinity(0, sizeof one, &one) == 0);
    ck_assert_int_eq(mr_available_cpus(), 1);
    ck_assert_int_eq(mr_physical_cores(), 1);
    ck_assert(sched_setaffinity(0, sizeof old, &old) == 0);
    setenv("MOERUN_CPUS", "3", 1);
    ck_assert_int_eq(mr_available_cpus(), 3);
    unsetenv("MOERUN_CPUS");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("threadpool");
    TCase *tc = tcase_create("pool");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, every_item_once);
    tcase_add_test(tc, waiting_sleeps);
    tcase_add_test(tc, cpus_follow_affinity);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
