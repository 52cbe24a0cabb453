/* kernel_harness.h - what the kernel tests (test_kernels*.c, test_attn.c)
 * share: a seeded random stream, buffers that end at a guard page, and a
 * fatal-signal handler that names the kernel that was running. */
#ifndef MOERUN_TESTS_KERNEL_HARNESS_H
#define MOERUN_TESTS_KERNEL_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* The random stream (splitmix64): set rng to a case's seed, then draw. */
extern uint64_t rng;
uint64_t rnd(void);
/* Uniform in [-1, 1). */
float rndf(void);

/* Fill f32 values by mode: 0 random, 1 zeros, 2 extreme (+-1000), 3 mixed
 * scales per block of 32 (some tiny, some huge, one all-zero block). */
void fill(float *x, int64_t n, int mode);

/* A buffer of len bytes whose end touches an inaccessible page, so a read
 * past it faults. */
typedef struct {
    void *map;
    size_t map_len;
    uint8_t *p;
} guarded;
guarded guarded_alloc(size_t len);
void guarded_free(guarded *g);

/* What is running, for the signal handler's report: set it before each
 * kernel call with GUARD_KERNEL("fmt", ...). */
extern char current[256];
#define GUARD_KERNEL(...) snprintf(current, sizeof current, __VA_ARGS__)
/* SIGILL (an instruction the CPU lacks), SIGSEGV and SIGBUS (a read into a
 * guard page) print "FAIL: fatal signal in kernel: <current>" and exit 1. */
void guard_signals(void);

#endif
