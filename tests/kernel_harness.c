/* kernel_harness.c - see kernel_harness.h. */
#include "kernel_harness.h"

#include <check.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

uint64_t rng;
char current[256];

uint64_t rnd(void)
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

float rndf(void)
{
    return (float)((double)(rnd() >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

void fill(float *x, int64_t n, int mode)
{
    for (int64_t i = 0; i < n; i++) {
        switch (mode) {
        case 0: x[i] = rndf(); break;
        case 1: x[i] = 0.0f; break;
        case 2: x[i] = (rnd() & 1) ? 1000.0f : -1000.0f; break;
        default: x[i] = rndf() * ((i / 32) % 3 == 0 ? 1e-6f : (i / 32) % 3 == 1 ? 1.0f : 300.0f);
        }
    }
    if (mode == 3 && n >= 64)
        memset(x + 32, 0, 32 * sizeof(float)); /* one all-zero block */
}

guarded guarded_alloc(size_t len)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    size_t body = (len + pg - 1) / pg * pg;
    guarded g;
    g.map_len = body + pg;
    g.map = mmap(NULL, g.map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert(g.map != MAP_FAILED);
    ck_assert(mprotect((uint8_t *)g.map + body, pg, PROT_NONE) == 0);
    g.p = (uint8_t *)g.map + body - len;
    return g;
}

void guarded_free(guarded *g)
{
    munmap(g->map, g->map_len);
}

static void on_crash(int sig)
{
    static const char head[] = "\nFAIL: fatal signal in kernel: ";
    char num[4] = {' ', (char)('0' + sig / 10 % 10), (char)('0' + sig % 10), '\n'};
    (void)!write(2, head, sizeof head - 1);
    (void)!write(2, current, strlen(current));
    (void)!write(2, num, sizeof num);
    _exit(1);
}

void guard_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_crash;
    sigaction(SIGILL, &sa, NULL);
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
}
