/* finite.c - NaN and infinity checks (see finite.h). */
#include "finite.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* Exponent bits all ones <=> NaN or infinity; read as bits so that
 * -ffast-math style assumptions elsewhere cannot fold the test away. */
size_t mr_first_nonfinite(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        if ((u & 0x7f800000u) == 0x7f800000u)
            return i;
    }
    return n;
}

mr_status mr_check_finite(const float *x, size_t n, const char *what, mr_error *err)
{
    size_t i = mr_first_nonfinite(x, n);
    if (i == n)
        return MR_OK;
    return mr_fail(err, MR_EFORMAT, NULL, what, MR_NO_OFFSET,
                   "value %zu of %zu is %s (the model's weights or its arithmetic "
                   "produced a non-finite number)",
                   i, n, isnan(x[i]) ? "NaN" : x[i] > 0 ? "+inf" : "-inf");
}
