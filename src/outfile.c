/* outfile.c - the converter's output file: written as a temporary in the
 * destination's directory and put in place only once complete and synced.
 *
 * Preferred: open(dir, O_TMPFILE) -- the file has no name until linkat()
 * gives it one, so nothing is left behind even by SIGKILL.  Where the file
 * system lacks O_TMPFILE (or no_tmpfile asks), a named ".NAME.XXXXXX" is
 * used; its path is handed to the on_temp callback so a signal handler can
 * remove it.  Without force an existing destination is never replaced
 * (linkat/link fail with EEXIST); with force the file is renamed over it.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "convert_internal.h"

/* dirname of path into a malloc'd string ("." for a bare name). */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return strdup(".");
    if (slash == path)
        return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

/* A named temporary beside path: ".BASE.XXXXXX" made by mkstemp. */
static char *temp_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t dlen = slash ? (size_t)(slash - path) + 1 : 0;
    char *t = malloc(dlen + strlen(base) + 16);
    if (t)
        sprintf(t, "%.*s.%s.XXXXXX", (int)dlen, path, base);
    return t;
}

/* Open the temporary; see convert_internal.h. */
mr_status mr_outfile_open(const char *path, int force, int no_tmpfile, mr_convert_temp_fn cb,
                          void *user, mr_outfile *o, mr_error *err)
{
    struct stat st;
    memset(o, 0, sizeof *o);
    o->fd = -1;
    o->force = force;
    o->on_temp = cb;
    o->user = user;
    if (stat(path, &st) == 0 && (!force || S_ISDIR(st.st_mode)))
        return mr_fail(err, MR_EINVAL, path, NULL, MR_NO_OFFSET, "%s",
                       S_ISDIR(st.st_mode) ? "is a directory"
                                           : "already exists (use --force to replace it)");
    if (!(o->path = strdup(path)))
        return mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory");
    char *dir = dir_of(path);
    if (!dir)
        return mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory");
    if (!no_tmpfile)
        o->fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0666);
    if (o->fd < 0 && !no_tmpfile && errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) {
        mr_fail(err, MR_EIO, dir, NULL, MR_NO_OFFSET, "cannot create a file here: %s",
                strerror(errno));
        free(dir);
        return MR_EIO;
    }
    free(dir);
    if (o->fd >= 0)
        return MR_OK;
    if (!(o->tmp_path = temp_name(path)))
        return mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory");
    if ((o->fd = mkostemp(o->tmp_path, O_CLOEXEC)) < 0) {
        mr_fail(err, MR_EIO, o->tmp_path, NULL, MR_NO_OFFSET, "cannot create: %s", strerror(errno));
        free(o->tmp_path);
        o->tmp_path = NULL;
        return MR_EIO;
    }
    mode_t mask = umask(0);
    umask(mask);
    fchmod(o->fd, 0666 & ~mask);
    if (o->on_temp)
        o->on_temp(o->tmp_path, o->user);
    return MR_OK;
}

/* Preallocate and write a whole small file at offset 0; see
 * convert_internal.h. */
mr_status mr_outfile_write(mr_outfile *o, const void *buf, uint64_t len, mr_error *err)
{
    const char *name = o->tmp_path ? o->tmp_path : o->path;
    int e = len ? posix_fallocate(o->fd, 0, (off_t)len) : 0;
    if (e && e != EOPNOTSUPP && e != EINVAL)
        return mr_fail(err, MR_EIO, name, NULL, MR_NO_OFFSET, "cannot allocate %llu bytes: %s",
                       (unsigned long long)len, strerror(e));
    const uint8_t *p = buf;
    for (uint64_t at = 0; at < len;) {
        uint64_t n = len - at < (1u << 30) ? len - at : (1u << 30);
        ssize_t w = pwrite(o->fd, p + at, (size_t)n, (off_t)at);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return mr_fail(err, MR_EIO, name, NULL, at, "write failed: %s",
                           w < 0 ? strerror(errno) : "no progress");
        at += (uint64_t)w;
    }
    return MR_OK;
}

/* fsync the directory holding path (makes the new name durable). */
static void sync_dir(const char *path)
{
    char *dir = dir_of(path);
    int fd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(dir);
}

/* Give the O_TMPFILE its final name (a temporary name first with force,
 * renamed over the destination). */
static mr_status link_tmpfile(mr_outfile *o, mr_error *err)
{
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", o->fd);
    if (!o->force) {
        if (linkat(AT_FDCWD, proc, AT_FDCWD, o->path, AT_SYMLINK_FOLLOW) == 0)
            return MR_OK;
        return mr_fail(err, errno == EEXIST ? MR_EINVAL : MR_EIO, o->path, NULL, MR_NO_OFFSET,
                       "cannot create: %s", errno == EEXIST
                       ? "already exists (use --force to replace it)" : strerror(errno));
    }
    for (int attempt = 0; attempt < 100; attempt++) {
        char *tmp = temp_name(o->path);
        if (!tmp)
            return mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory");
        char suffix[16];
        snprintf(suffix, sizeof suffix, "%06u", (unsigned)(getpid() * 131 + attempt) % 1000000u);
        memcpy(tmp + strlen(tmp) - 6, suffix, 6);
        if (linkat(AT_FDCWD, proc, AT_FDCWD, tmp, AT_SYMLINK_FOLLOW) == 0) {
            if (rename(tmp, o->path) == 0) {
                free(tmp);
                return MR_OK;
            }
            int e = errno;
            unlink(tmp);
            free(tmp);
            return mr_fail(err, MR_EIO, o->path, NULL, MR_NO_OFFSET, "cannot replace: %s",
                           strerror(e));
        }
        int e = errno;
        free(tmp);
        if (e != EEXIST)
            return mr_fail(err, MR_EIO, o->path, NULL, MR_NO_OFFSET, "cannot create: %s",
                           strerror(e));
    }
    return mr_fail(err, MR_EIO, o->path, NULL, MR_NO_OFFSET, "no free temporary name");
}

/* Give the named temporary its final name. */
static mr_status link_named(mr_outfile *o, mr_error *err)
{
    if (o->force) {
        if (rename(o->tmp_path, o->path) != 0)
            return mr_fail(err, MR_EIO, o->path, NULL, MR_NO_OFFSET, "cannot replace: %s",
                           strerror(errno));
    } else {
        if (link(o->tmp_path, o->path) != 0)
            return mr_fail(err, errno == EEXIST ? MR_EINVAL : MR_EIO, o->path, NULL,
                           MR_NO_OFFSET, "cannot create: %s", errno == EEXIST
                           ? "already exists (use --force to replace it)" : strerror(errno));
        unlink(o->tmp_path);
    }
    free(o->tmp_path);
    o->tmp_path = NULL;
    if (o->on_temp)
        o->on_temp(NULL, o->user);
    return MR_OK;
}

/* Sync and put in place; see convert_internal.h. */
mr_status mr_outfile_commit(mr_outfile *o, mr_error *err)
{
    if (fsync(o->fd) != 0)
        return mr_fail(err, MR_EIO, o->path, NULL, MR_NO_OFFSET, "fsync failed: %s",
                       strerror(errno));
    mr_status s = o->tmp_path ? link_named(o, err) : link_tmpfile(o, err);
    if (s)
        return s;
    sync_dir(o->path);
    close(o->fd);
    o->fd = -1;
    return MR_OK;
}

/* Close and remove the temporary; see convert_internal.h. */
void mr_outfile_abort(mr_outfile *o)
{
    if (o->fd >= 0)
        close(o->fd);
    o->fd = -1;
    if (o->tmp_path) {
        unlink(o->tmp_path);
        if (o->on_temp)
            o->on_temp(NULL, o->user);
    }
    free(o->tmp_path);
    free(o->path);
    o->tmp_path = o->path = NULL;
}
