/* fuzz_spm.c - libFuzzer harness for the SentencePiece model reader.
 *
 * Every input goes through mr_spm_parse; an accepted model is read in full
 * (every piece is a NUL-terminated copy of piece_len bytes, every type in 1..6).  A rejection must come
 * with a message.  Nothing may leak (LeakSanitizer).
 *
 * Build: ./configure CC=clang --enable-fuzzers && make tests/fuzz_spm
 * Run:   ./tests/fuzz_spm -max_total_time=600 tests/corpus/spm
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "spm_model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Stop the run: libFuzzer saves the input as a crash. */
static void fuzz_fail(void)
{
    __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mr_spm_model *m = NULL;
    mr_error err;
    err.msg[0] = '\0';
    if (mr_spm_parse(data, size, "fuzz", &m, &err) != MR_OK) {
        if (!err.msg[0] || m)
            fuzz_fail();
        return 0;
    }
    for (uint32_t i = 0; i < m->n_pieces; i++) {
        if (m->type[i] < MR_SPM_NORMAL || m->type[i] > MR_SPM_BYTE || m->piece_len[i] > size)
            fuzz_fail();
        if (m->piece[i][m->piece_len[i]] != '\0') /* its terminator lies inside the arena */
            fuzz_fail();
    }
    mr_spm_free(m);
    return 0;
}
