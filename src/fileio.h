/* fileio.h - small POSIX file helpers shared by the converter's readers and
 * writers: whole small files, and full-length pread/pwrite that retry on
 * EINTR and short transfers.  Errors name the file and the offset. */
#ifndef MOERUN_FILEIO_H
#define MOERUN_FILEIO_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

/* Read a whole file of at most max_len bytes into a NUL-terminated
 * malloc'd buffer.  Missing file: MR_EIO with errno's text; larger than
 * max_len: MR_EFORMAT. */
mr_status mr_read_small_file(const char *path, size_t max_len, char **out, size_t *len,
                             mr_error *err);

/* Read exactly len bytes at offset; end of file first is MR_EIO. */
mr_status mr_pread_full(int fd, const char *path, uint64_t offset, void *buf, size_t len,
                        mr_error *err);

/* Write exactly len bytes at offset (ENOSPC, EIO, EFBIG: MR_EIO). */
mr_status mr_pwrite_full(int fd, const char *path, uint64_t offset, const void *buf,
                         size_t len, mr_error *err);

/* "dir/name" in a malloc'd string, or NULL when out of memory. */
char *mr_path_join(const char *dir, const char *name);

#endif
