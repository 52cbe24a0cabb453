/* finite.h - refuse NaN and infinity where they would silently turn into
 * wrong output (logits, weights being quantized). */
#ifndef MOERUN_FINITE_H
#define MOERUN_FINITE_H

#include <stddef.h>

#include "status.h"

/* Index of the first of n floats that is NaN or infinite, or n if all are
 * finite. */
size_t mr_first_nonfinite(const float *x, size_t n);

/* MR_OK if all n floats are finite; otherwise MR_EFORMAT (the numbers come
 * from a file: weights, or logits computed from them) with a message
 * naming what (e.g. "logits of token 3") and the index and value of the
 * first bad one. */
mr_status mr_check_finite(const float *x, size_t n, const char *what, mr_error *err);

#endif
