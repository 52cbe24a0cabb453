/* fileio.c - small POSIX file helpers (see fileio.h). */
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define IO_CHUNK (1u << 30) /* largest single transfer we ask for */

/* Read a whole small file; see fileio.h. */
mr_status mr_read_small_file(const char *path, size_t max_len, char **out, size_t *len,
                             mr_error *err)
{
    mr_status s = MR_OK;
    char *buf = NULL;
    struct stat st;
    *out = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return mr_fail(err, MR_EIO, path, NULL, MR_NO_OFFSET, "cannot open: %s",
                       strerror(errno));
    if (fstat(fd, &st) != 0) {
        s = mr_fail(err, MR_EIO, path, NULL, MR_NO_OFFSET, "cannot stat: %s", strerror(errno));
        goto done;
    }
    if (!S_ISREG(st.st_mode)) {
        s = mr_fail(err, MR_EFORMAT, path, NULL, MR_NO_OFFSET, "not a regular file");
        goto done;
    }
    if ((uint64_t)st.st_size > max_len) {
        s = mr_fail(err, MR_EFORMAT, path, NULL, MR_NO_OFFSET,
                    "%lld bytes is more than the %zu this file may have",
                    (long long)st.st_size, max_len);
        goto done;
    }
    if (!(buf = malloc((size_t)st.st_size + 1))) {
        s = mr_fail(err, MR_ENOMEM, path, NULL, MR_NO_OFFSET, "no memory");
        goto done;
    }
    if ((s = mr_pread_full(fd, path, 0, buf, (size_t)st.st_size, err)))
        goto done;
    buf[st.st_size] = '\0';
    *out = buf;
    *len = (size_t)st.st_size;
    buf = NULL;
done:
    free(buf);
    close(fd);
    return s;
}

/* Read exactly len bytes at offset; see fileio.h. */
mr_status mr_pread_full(int fd, const char *path, uint64_t offset, void *buf, size_t len,
                        mr_error *err)
{
    uint8_t *p = buf;
    while (len) {
        ssize_t r = pread(fd, p, len > IO_CHUNK ? IO_CHUNK : len, (off_t)offset);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return mr_fail(err, MR_EIO, path, NULL, offset, "read failed: %s", strerror(errno));
        if (r == 0)
            return mr_fail(err, MR_EIO, path, NULL, offset,
                           "file ended %zu bytes early (changed while reading?)", len);
        p += r;
        len -= (size_t)r;
        offset += (uint64_t)r;
    }
    return MR_OK;
}

/* Write exactly len bytes at offset; see fileio.h. */
mr_status mr_pwrite_full(int fd, const char *path, uint64_t offset, const void *buf,
                         size_t len, mr_error *err)
{
    const uint8_t *p = buf;
    while (len) {
        ssize_t r = pwrite(fd, p, len > IO_CHUNK ? IO_CHUNK : len, (off_t)offset);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return mr_fail(err, MR_EIO, path, NULL, offset, "write failed: %s",
                           r < 0 ? strerror(errno) : "no progress");
        p += r;
        len -= (size_t)r;
        offset += (uint64_t)r;
    }
    return MR_OK;
}

/* Join a directory and a file name; see fileio.h. */
char *mr_path_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p)
        return NULL;
    memcpy(p, dir, a);
    size_t n = a;
    if (a && dir[a - 1] != '/')
        p[n++] = '/';
    memcpy(p + n, name, b + 1);
    return p;
}
