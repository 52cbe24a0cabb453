/* autotune_cache.c - the start-up kernel choice (simd/autotune.c) kept per
 * CPU model in a small text file, so it is measured once, carefully, and
 * not again at every start (it took 45-62 ms on a Xeon, family 6 model
 * 167, and the same type moved by up to 25 % between runs on a shared
 * machine).
 *
 * The file is DIR/autotune-<16 hex digits>.txt, the digits an XXH3 of the
 * CPU's identity, so machines sharing a home directory keep one file
 * each.  It is used only when its cpu line is this CPU's identity (the
 * vendor, family, model, stepping and name /proc/cpuinfo gives, or the
 * arm64 implementer/part/variant/revision, and the features this build
 * detects) and its build line is the ELF build id of the object this code
 * is linked into (any rebuild can change the kernels' speed).  Every line
 * is checked; anything else in the file - a wrong magic, an unknown type
 * or ISA, a kernel set this machine cannot run, a line too long - makes it
 * ignored, the choice measured again and the file rewritten.  Numbers are
 * integers (MB/s, microseconds), so no locale changes how they read.
 *
 *   moerun-autotune 1
 *   build 3f5c...               (hex build id)
 *   cpu vendor_id=GenuineIntel;cpu family=6;...;features=avx2 fma ...
 *   when 1796600000             (unix time of the measurement)
 *   us 61234                    (microseconds it took)
 *   bytes 3145728               (weights per measured matmul)
 *   type Q4_K avx512 avx2=18200 avx512=21300
 *
 * Which ISA a type's kernels come from changes speed, never the bits
 * (vec_dot and gemm always come from one ISA, simd/autotune.c), so a stale
 * or edited file can at worst choose a slower kernel.  Compiled for the
 * baseline CPU. */
#include "config.h"
#include "kernels.h"

#include <errno.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#define CACHE_MAGIC "moerun-autotune 1"
#define LINE_MAX_BYTES 1024

/* ---- identity of this build: the GNU build id of the loaded object ---- */

typedef struct {
    uintptr_t addr; /* an address inside this object */
    char hex[2 * 64 + 1];
} build_id_search;

static void to_hex(const unsigned char *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = 0;
}

static int find_build_id(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    build_id_search *s = data;
    int inside = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && s->addr >= lo && s->addr < lo + ph->p_memsz)
            inside = 1;
    }
    if (!inside)
        return 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_NOTE)
            continue;
        const unsigned char *p = (const unsigned char *)(info->dlpi_addr + ph->p_vaddr);
        size_t left = ph->p_memsz;
        while (left >= sizeof(ElfW(Nhdr))) {
            const ElfW(Nhdr) *nh = (const ElfW(Nhdr) *)(const void *)p;
            size_t name = (nh->n_namesz + 3u) & ~(size_t)3, desc = (nh->n_descsz + 3u) & ~(size_t)3;
            size_t total = sizeof *nh + name + desc;
            if (total > left)
                break;
            if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 &&
                memcmp(p + sizeof *nh, "GNU", 4) == 0 && nh->n_descsz > 0 && nh->n_descsz <= 64) {
                to_hex(p + sizeof *nh + name, nh->n_descsz, s->hex);
                return 1;
            }
            p += total;
            left -= total;
        }
    }
    return 1; /* our object, without a build id */
}

/* 0 and the hex build id, or -1 if the object has none */
static int build_id(char *out, size_t cap)
{
    build_id_search s = {.addr = (uintptr_t)&find_build_id, .hex = ""};
    dl_iterate_phdr(find_build_id, &s);
    if (!s.hex[0] || strlen(s.hex) >= cap)
        return -1;
    strcpy(out, s.hex);
    return 0;
}

/* ---- identity of this CPU ---- */

static void cpu_identity(char *out, size_t cap)
{
    static const char *const keys[] = {"vendor_id",   "cpu family",   "model",
                                       "model name",  "stepping",     "CPU implementer",
                                       "CPU architecture", "CPU variant", "CPU part",
                                       "CPU revision"};
    size_t n = 0;
    out[0] = 0;
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[LINE_MAX_BYTES];
    while (f && fgets(line, sizeof line, f)) {
        if (line[0] == '\n')
            break; /* the first processor's block */
        char *colon = strchr(line, ':');
        if (!colon)
            continue;
        char *k_end = colon;
        while (k_end > line && (k_end[-1] == ' ' || k_end[-1] == '\t'))
            k_end--;
        *k_end = 0;
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        v[strcspn(v, "\n")] = 0;
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
            if (strcmp(line, keys[i]) == 0 && n < cap) {
                int w = snprintf(out + n, cap - n, "%s=%s;", line, v);
                n = w > 0 ? n + (size_t)w : n;
            }
    }
    if (f)
        fclose(f);
    char feat[256];
    mr_cpu_features(feat, sizeof feat);
    if (n < cap)
        snprintf(out + n, cap - n, "features=%s", feat);
    /* one line, no trailing blanks: it is compared as written */
    for (char *p = out; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    for (size_t l = strlen(out); l > 0 && out[l - 1] == ' '; l--)
        out[l - 1] = 0;
}

static int cache_path(const char *dir, const char *cpu, char *out, size_t cap)
{
    unsigned long long h = (unsigned long long)XXH3_64bits(cpu, strlen(cpu));
    int n = snprintf(out, cap, "%s/autotune-%016llx.txt", dir, h);
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

/* ---- reading ---- */

static int isa_runs(mr_isa isa)
{
    mr_kernels probe;
    return isa < MR_ISA_COUNT && mr_kernels_for_isa(isa, 0, &probe);
}

/* parse a decimal unsigned integer filling the whole token */
static int parse_u64(const char *s, unsigned long long *v)
{
    if (!*s)
        return -1;
    unsigned long long x = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || x > (~0ull - 9) / 10)
            return -1;
        x = x * 10 + (unsigned)(*s - '0');
    }
    *v = x;
    return 0;
}

/* one "type NAME ISA isa=MBs ..." line into rep; NULL or what is wrong */
static const char *parse_type_line(char *rest, mr_autotune_report *rep, int *seen)
{
    char *save = NULL;
    char *name = strtok_r(rest, " ", &save);
    char *isa = strtok_r(NULL, " ", &save);
    if (!name || !isa)
        return "a type line needs a type, its ISA and the measured rates";
    uint32_t t = mr_type_from_name(name);
    if (t >= MR_TYPE_COUNT)
        return "unknown weight type";
    if (seen[t])
        return "a type listed twice";
    seen[t] = 1;
    mr_isa win = mr_isa_parse(isa);
    if (win == MR_ISA_COUNT)
        return "unknown kernel set";
    if (!isa_runs(win))
        return "a kernel set this CPU or build cannot run";
    rep->chosen[t] = win;
    int any = 0;
    for (char *tok; (tok = strtok_r(NULL, " ", &save));) {
        char *eq = strchr(tok, '=');
        if (!eq)
            return "a rate is ISA=MB/s";
        *eq = 0;
        mr_isa i = mr_isa_parse(tok);
        unsigned long long mbs;
        if (i == MR_ISA_COUNT || parse_u64(eq + 1, &mbs) || mbs > 100000000ull)
            return "a rate is ISA=MB/s, an integer";
        rep->gbs[t][i] = (double)mbs / 1e3;
        any = 1;
    }
    return any ? NULL : "a type line without rates";
}

int mr_autotune_cache_load(const char *dir, mr_kernels *fast, mr_autotune_report *rep)
{
    char cpu[768], bid[2 * 64 + 1];
    memset(rep, 0, sizeof *rep);
    for (uint32_t t = 0; t < MR_TYPE_COUNT; t++)
        rep->chosen[t] = fast->isa;
    cpu_identity(cpu, sizeof cpu);
    if (cache_path(dir, cpu, rep->cache_path, sizeof rep->cache_path)) {
        snprintf(rep->cache_note, sizeof rep->cache_note, "cache directory name too long");
        return -1;
    }
    if (build_id(bid, sizeof bid)) {
        snprintf(rep->cache_note, sizeof rep->cache_note,
                 "this build has no ELF build id, so a cached choice could outlive its kernels");
        return -1;
    }
    FILE *f = fopen(rep->cache_path, "r");
    if (!f) {
        if (errno == ENOENT)
            snprintf(rep->cache_note, sizeof rep->cache_note, "no cache file yet");
        else
            snprintf(rep->cache_note, sizeof rep->cache_note, "%s: %s", rep->cache_path,
                     strerror(errno));
        return -1;
    }
    char line[LINE_MAX_BYTES];
    const char *bad = NULL;
    int n = 0, have_build = 0, have_cpu = 0, have_when = 0;
    int seen[MR_TYPE_COUNT] = {0};
    while (!bad && fgets(line, sizeof line, f)) {
        n++;
        size_t len = strlen(line);
        if (len == 0 || line[len - 1] != '\n') {
            bad = "line too long or not ended";
            break;
        }
        line[len - 1] = 0;
        if (n == 1) {
            bad = strcmp(line, CACHE_MAGIC) ? "not a moerun autotune file (first line)" : NULL;
            continue;
        }
        char *sp = strchr(line, ' ');
        if (!sp) {
            bad = "a line is a key and a value";
            break;
        }
        *sp = 0;
        char *v = sp + 1;
        unsigned long long u = 0;
        if (!strcmp(line, "build")) {
            bad = strcmp(v, bid) ? "measured by another build" : NULL;
            have_build = 1;
        } else if (!strcmp(line, "cpu")) {
            bad = strcmp(v, cpu) ? "measured on another CPU" : NULL;
            have_cpu = 1;
        } else if (!strcmp(line, "when")) {
            bad = parse_u64(v, &u) ? "when: not an integer" : NULL;
            rep->when = (long long)u;
            have_when = 1;
        } else if (!strcmp(line, "us")) {
            bad = parse_u64(v, &u) ? "us: not an integer" : NULL;
            rep->ms = (double)u / 1e3;
        } else if (!strcmp(line, "bytes")) {
            bad = parse_u64(v, &u) || u > ((size_t)1 << 40) ? "bytes: not an integer" : NULL;
            rep->bytes = (size_t)u;
        } else if (!strcmp(line, "type")) {
            bad = parse_type_line(v, rep, seen);
        } else {
            bad = "unknown key";
        }
    }
    if (!bad && ferror(f))
        bad = strerror(errno);
    fclose(f);
    if (!bad && n == 0)
        bad = "empty file";
    if (!bad && !(have_build && have_cpu && have_when))
        bad = "the build, cpu and when lines are required";
    if (bad) {
        char path[sizeof rep->cache_path];
        memcpy(path, rep->cache_path, sizeof path);
        for (uint32_t t = 0; t < MR_TYPE_COUNT; t++) {
            rep->chosen[t] = fast->isa;
            for (int i = 0; i < MR_ISA_COUNT; i++)
                rep->gbs[t][i] = 0.0;
        }
        snprintf(rep->cache_note, sizeof rep->cache_note, "%s: line %d: %s", path, n, bad);
        return -1;
    }
    rep->measured = 1;
    rep->cache = MR_TUNE_CACHE_LOADED;
    mr_autotune_apply(fast, rep);
    return 0;
}

/* ---- writing ---- */

static int make_dirs(const char *dir)
{
    char p[512];
    if (snprintf(p, sizeof p, "%s", dir) >= (int)sizeof p)
        return -1;
    for (char *s = p + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            if (mkdir(p, 0755) && errno != EEXIST)
                return -1;
            *s = '/';
        }
    return mkdir(p, 0755) && errno != EEXIST ? -1 : 0;
}

int mr_autotune_cache_save(const char *dir, mr_autotune_report *rep, mr_isa best)
{
    char cpu[768], bid[2 * 64 + 1], tmp[600];
    rep->cache = MR_TUNE_CACHE_UNSAVED;
    cpu_identity(cpu, sizeof cpu);
    if (cache_path(dir, cpu, rep->cache_path, sizeof rep->cache_path))
        return snprintf(rep->cache_note, sizeof rep->cache_note, "cache directory name too long"), -1;
    if (build_id(bid, sizeof bid))
        return snprintf(rep->cache_note, sizeof rep->cache_note,
                        "this build has no ELF build id: choice not cached"), -1;
    if (make_dirs(dir)) {
        snprintf(rep->cache_note, sizeof rep->cache_note, "cannot make %s: %s", dir, strerror(errno));
        return -1;
    }
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", rep->cache_path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) {
        snprintf(rep->cache_note, sizeof rep->cache_note, "cannot write %s: %s", tmp, strerror(errno));
        return -1;
    }
    rep->when = (long long)time(NULL);
    fprintf(f, "%s\nbuild %s\ncpu %s\nwhen %lld\nus %llu\nbytes %zu\n", CACHE_MAGIC, bid, cpu,
            rep->when, (unsigned long long)(rep->ms * 1e3), rep->bytes);
    for (uint32_t t = 0; t < MR_TYPE_COUNT; t++) {
        int any = 0;
        for (int i = 0; i < MR_ISA_COUNT; i++)
            any |= rep->gbs[t][i] > 0.0;
        if (!any && rep->chosen[t] == best)
            continue;
        fprintf(f, "type %s %s", mr_type_get(t)->name, mr_isa_name(rep->chosen[t]));
        for (int i = 0; i < MR_ISA_COUNT; i++)
            if (rep->gbs[t][i] > 0.0)
                fprintf(f, " %s=%llu", mr_isa_name((mr_isa)i),
                        (unsigned long long)(rep->gbs[t][i] * 1e3 + 0.5));
        fprintf(f, "\n");
    }
    int err = ferror(f);
    if (fclose(f) || err || rename(tmp, rep->cache_path)) {
        snprintf(rep->cache_note, sizeof rep->cache_note, "cannot write %s: %s", rep->cache_path,
                 strerror(errno));
        unlink(tmp);
        return -1;
    }
    rep->cache = MR_TUNE_CACHE_SAVED;
    return 0;
}
