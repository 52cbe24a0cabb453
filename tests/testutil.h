/* testutil.h - shared helpers of the test programs: where the data is,
 * skipping (exit 77, Automake's code) when it is absent, and readers for
 * the reference files. */
#ifndef MOERUN_TESTUTIL_H
#define MOERUN_TESTUTIL_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>

/* $MOERUN_TESTDATA (default ../shared) if it holds ref/README.md, else NULL. */
const char *tu_testdata(void);
/* $MOERUN_SRCDIR (default "."): the source tree, for tests/data and models/. */
const char *tu_srcdir(void);
/* Print why to stderr and exit 77 (skipped). */
void tu_skip(const char *why) __attribute__((noreturn));
/* The shared data dir, or skip the whole program saying what is missing. */
const char *tu_testdata_or_skip(void);

/* snprintf into a static rotating buffer: tu_path("%s/ref/x", dir). */
const char *tu_path(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Whole file, malloc'd; NULL if unreadable. */
void *tu_read_file(const char *path, size_t *len);
/* float32 LE file as n floats; NULL if unreadable. */
float *tu_read_f32(const char *path, size_t *n);
/* ids (and optionally the text) of a ref/<name>.ids.json; NULL on error. */
int32_t *tu_read_ids_json(const char *path, size_t *n, char **text);
/* An int array field of a JSON file (e.g. "generated_ids"); NULL on error. */
int32_t *tu_read_json_ints(const char *path, const char *field, size_t *n);
/* A number array field of a JSON file as doubles; NULL on error. */
double *tu_read_json_doubles(const char *path, const char *field, size_t *n);

/* Path of the shipped demo model; prints FAIL and exits 1 if it is missing
 * (it is part of the source tree, so its absence is an error, not a skip). */
const char *tu_demo_model(void);
/* Run a suite in this process (no fork: fixtures stay loaded); returns the
 * exit status, 0 when every test passed.  Frees the suite. */
int tu_run_suite(Suite *s);

/* Max |a - b| over n floats. */
double tu_max_abs_diff(const float *a, const float *b, size_t n);
/* Index of the largest value (ties: lowest index) and the top1 - top2 margin. */
size_t tu_argmax(const float *x, size_t n, double *margin);

#endif
