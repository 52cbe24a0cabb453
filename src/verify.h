/* verify.h - check a GGUF written by moerun quantize against the XXH3-64
 * checksums it carries (moerun_keys.h): the metadata block (when the
 * file has moerun.checksum.metadata), every expert slice, every tensor,
 * and optionally the source checkpoint's files.
 *
 * The file is read once, tensor by tensor in file order, through a small
 * buffer (memory does not grow with the file).  The first mismatch stops
 * the check with MR_ECHECKSUM and a message naming the slice (layer,
 * expert, gate/up/down) or the tensor.
 */
#ifndef MOERUN_VERIFY_H
#define MOERUN_VERIFY_H

#include <stdint.h>

#include "status.h"

typedef struct {
    uint64_t tensors, slices, sources; /* checked */
    int metadata;                      /* 1: moerun.checksum.metadata matched; 0: absent */
    uint64_t bytes_done, bytes_total;
    double seconds;
} mr_verify_report;

typedef void (*mr_verify_progress_fn)(const mr_verify_report *r, void *user);

/* Verify path; source_dir (may be NULL) is the checkpoint it was made
 * from, whose files are then hashed and compared too. */
mr_status mr_verify(const char *path, const char *source_dir, mr_verify_report *rep,
                    mr_verify_progress_fn progress, void *user, mr_error *err);

#endif
