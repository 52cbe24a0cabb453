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

/* One piece of a file to read into memory: len bytes at offset into dst;
 * name (may be NULL) is what an error names as the field. */
typedef struct {
    void *dst;
    uint64_t offset, len;
    const char *name;
} mr_read_piece;

/* Read every piece of the file at path, with `threads` readers at once
 * (src/fileio_par.c: a cold disk needs several requests in flight).  A
 * short file or a read error is MR_EIO naming the piece and the offset;
 * what was read of the other pieces is then undefined. */
mr_status mr_read_pieces(const char *path, const mr_read_piece *pieces, size_t n, int threads,
                         mr_error *err);

/* "dir/name" in a malloc'd string, or NULL when out of memory. */
char *mr_path_join(const char *dir, const char *name);

/* What memory this process may use, for `--mem auto`: the tightest of
 * the memory cgroup limits of its own cgroup and its ancestors (v1
 * memory.limit_in_bytes, v2 memory.max) less what the cgroup already holds
 * apart from reclaimable page cache, and /proc/meminfo's MemAvailable.
 * *avail is that figure, *budget is it less the headroom (10%, at least
 * MR_MEM_AUTO_HEADROOM_MIN), and why says in words where it came from.
 * MR_EIO when neither source can be read. */
#define MR_MEM_AUTO_HEADROOM_MIN (128ull << 20)
mr_status mr_mem_auto_budget(uint64_t *budget, uint64_t *avail, char *why, size_t why_cap,
                             mr_error *err);
/* The same from other files (tests): self_cgroup as /proc/self/cgroup,
 * cgroup_root as /sys/fs/cgroup, meminfo as /proc/meminfo. */
mr_status mr_mem_auto_budget_at(const char *self_cgroup, const char *cgroup_root,
                                const char *meminfo, uint64_t *budget, uint64_t *avail,
                                char *why, size_t why_cap, mr_error *err);

#endif
