/* fileio.c - small POSIX file helpers (see fileio.h). */
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
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

/* ------------------------------------------------------------ --mem auto */

#define NO_LIMIT (1ull << 62) /* v1 reports "unlimited" as ~2^63 rounded to a page */

/* A /proc or /sys file (their size is 0 to stat) into a malloc'd,
 * NUL-terminated buffer; NULL if unreadable. */
static char *read_pseudo(const char *path, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    char *buf = malloc(cap + 1);
    size_t n = 0;
    while (buf && n < cap) {
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (buf)
        buf[n] = 0;
    return buf;
}

/* First number in a small file ("max": NO_LIMIT); 0 if read. */
static int read_u64(const char *path, uint64_t *v)
{
    char *buf = read_pseudo(path, 4096);
    if (!buf)
        return -1;
    int rc = 0;
    if (!strncmp(buf, "max", 3))
        *v = NO_LIMIT;
    else if (sscanf(buf, "%" SCNu64, v) != 1)
        rc = -1;
    free(buf);
    return rc;
}

/* The value of "key N" (or "key: N kB", scale 1024) in a stat file. */
static int read_field(const char *path, const char *key, uint64_t scale, uint64_t *v)
{
    char *buf = read_pseudo(path, 1 << 16);
    size_t klen = strlen(key);
    if (!buf)
        return -1;
    int rc = -1;
    for (char *line = buf; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (!strncmp(line, key, klen) && (line[klen] == ' ' || line[klen] == ':')) {
            const char *q = line + klen + (line[klen] == ':');
            if (sscanf(q, " %" SCNu64, v) == 1) {
                *v *= scale;
                rc = 0;
            }
            break;
        }
    }
    free(buf);
    return rc;
}

typedef struct {
    uint64_t free, limit, used;
    char where[600];
    int found;
} cg_best;

/* Check dir/rel and each ancestor up to dir itself for a limit; keep the
 * one leaving the least free. rel: "" (the root) or "/a/b". */
static void walk_cgroup(const char *dir, const char *rel, int v2, cg_best *b)
{
    char path[1400], at[512];
    snprintf(at, sizeof at, "%s", strcmp(rel, "/") ? rel : "");
    for (;;) {
        uint64_t limit, usage, cache = 0;
        snprintf(path, sizeof path, "%s%s/%s", dir, at, v2 ? "memory.max" : "memory.limit_in_bytes");
        if (!read_u64(path, &limit) && limit < NO_LIMIT) {
            snprintf(path, sizeof path, "%s%s/%s", dir, at,
                     v2 ? "memory.current" : "memory.usage_in_bytes");
            if (read_u64(path, &usage))
                usage = 0;
            snprintf(path, sizeof path, "%s%s/memory.stat", dir, at);
            if (v2 ? read_field(path, "file", 1, &cache)
                   : (read_field(path, "total_cache", 1, &cache) &&
                      read_field(path, "cache", 1, &cache)))
                cache = 0;
            uint64_t used = usage > cache ? usage - cache : 0;
            uint64_t fr = limit > used ? limit - used : 0;
            if (!b->found || fr < b->free) {
                b->found = 1;
                b->free = fr;
                b->limit = limit;
                b->used = used;
                snprintf(b->where, sizeof b->where, "cgroup %s%s %s", v2 ? "v2 " : "v1 memory:",
                         at[0] ? at : "/", v2 ? "memory.max" : "memory.limit_in_bytes");
            }
        }
        if (!at[0])
            break;
        *strrchr(at, '/') = 0;
    }
}

static double gib(uint64_t b) { return (double)b / 1073741824.0; }

mr_status mr_mem_auto_budget_at(const char *self_cgroup, const char *cgroup_root,
                                const char *meminfo, uint64_t *budget, uint64_t *avail,
                                char *why, size_t why_cap, mr_error *err)
{
    cg_best b = {0};
    char *cg = read_pseudo(self_cgroup, 1 << 16);
    if (cg) {
        for (char *line = cg; line && *line;) {
            char *nl = strchr(line, '\n');
            if (nl)
                *nl = 0;
            char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
            if (c2) {
                *c2 = 0;
                const char *ctrl = c1 + 1, *rel = c2 + 1;
                char dir[1024];
                if (!*ctrl) {
                    { /* v2: unified at the root, or at unified/ (hybrid) */
                        snprintf(dir, sizeof dir, "%s", cgroup_root);
                        walk_cgroup(dir, rel, 1, &b);
                        snprintf(dir, sizeof dir, "%s/unified", cgroup_root);
                        walk_cgroup(dir, rel, 1, &b);
                    }
                } else {
                    for (const char *w = ctrl; *w;) { /* a comma-separated controller list */
                        size_t n = strcspn(w, ",");
                        if (n == 6 && !strncmp(w, "memory", 6)) {
                            snprintf(dir, sizeof dir, "%s/memory", cgroup_root);
                            walk_cgroup(dir, rel, 0, &b);
                        }
                        w += n + (w[n] == ',');
                    }
                }
            }
            line = nl ? nl + 1 : NULL;
        }
        free(cg);
    }
    uint64_t ma = 0;
    int have_ma = read_field(meminfo, "MemAvailable", 1024, &ma) == 0;
    if (!b.found && !have_ma)
        return mr_fail(err, MR_EIO, meminfo, "MemAvailable", MR_NO_OFFSET,
                       "--mem auto: no memory cgroup limit and no MemAvailable to size the "
                       "budget from; give --mem SIZE");
    const int by_cg = b.found && (!have_ma || b.free < ma);
    *avail = by_cg ? b.free : ma;
    uint64_t head = *avail / 10 > MR_MEM_AUTO_HEADROOM_MIN ? *avail / 10 : MR_MEM_AUTO_HEADROOM_MIN;
    *budget = *avail > head ? *avail - head : 0;
    int n = 0;
    if (b.found)
        n = snprintf(why, why_cap, "%s: limit %.2f GiB, %.2f GiB held without page cache, "
                     "%.2f GiB free; ", b.where, gib(b.limit), gib(b.used), gib(b.free));
    else
        n = snprintf(why, why_cap, "no memory cgroup limit; ");
    if (n < 0 || (size_t)n >= why_cap)
        n = 0;
    snprintf(why + n, why_cap - (size_t)n, "%s%.2f GiB; took the %s less headroom %.2f GiB "
             "(10%%, at least %llu MiB)", have_ma ? "MemAvailable " : "MemAvailable unknown",
             have_ma ? gib(ma) : 0.0, by_cg ? "cgroup's free memory" : "MemAvailable", gib(head),
             (unsigned long long)(MR_MEM_AUTO_HEADROOM_MIN >> 20));
    return MR_OK;
}

mr_status mr_mem_auto_budget(uint64_t *budget, uint64_t *avail, char *why, size_t why_cap,
                             mr_error *err)
{
    return mr_mem_auto_budget_at("/proc/self/cgroup", "/sys/fs/cgroup", "/proc/meminfo", budget,
                                 avail, why, why_cap, err);
}
