/* test_autotune_cache.c - the per-CPU cache of the start-up kernel choice
 * (simd/autotune_cache.c).  A measured choice saved and read back gives the
 * same table; an edited choice is what a load applies (so a load is not a
 * silent re-measurement); and every damaged file - each prefix of a good
 * one, each byte of it changed, a file of another CPU or build - is either
 * refused with a note naming the file, or read into a table whose kernels
 * all come from ISAs this machine runs.  Needs no test data; on a machine
 * with one SIMD candidate (arm64, or no AVX-512) there is nothing to
 * choose and the tests skip. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels.h"

static char dir[64];

static int two_candidates(void)
{
    int n = 0;
    mr_kernels probe;
    for (int i = 1; i < MR_ISA_COUNT; i++)
        n += mr_kernels_for_isa((mr_isa)i, 0, &probe);
    return n >= 2;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "%s", path);
    char *buf = malloc(1 << 16);
    *len = fread(buf, 1, (1 << 16) - 1, f);
    buf[*len] = 0;
    fclose(f);
    return buf;
}

static void spit(const char *path, const char *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "%s", path);
    ck_assert_uint_eq(fwrite(buf, 1, len, f), len);
    fclose(f);
}

/* a table's integer kernels, type by type, are those of ISA rep->chosen */
static void assert_table_follows(const mr_kernels *k, const mr_autotune_report *r)
{
    for (uint32_t t = 0; t < MR_TYPE_COUNT; t++) {
        mr_kernels want;
        ck_assert_msg(mr_kernels_for_isa(r->chosen[t], 0, &want), "type %u: ISA %d cannot run", t,
                      (int)r->chosen[t]);
        ck_assert_msg(k->vec_dot[t] == want.vec_dot[t] && k->gemm[t] == want.gemm[t],
                      "%s: kernels are not %s's", mr_type_get(t)->name, mr_isa_name(r->chosen[t]));
    }
}

/* measure (quickly) and save; returns the best ISA's table as tuned */
static void measure_and_save(mr_kernels *k, mr_autotune_report *r)
{
    mr_kernels_for_isa(mr_isa_best(), 0, k);
    mr_autotune(k, r, 0);
    ck_assert(r->measured);
    ck_assert_msg(mr_autotune_cache_save(dir, r, mr_isa_best()) == 0, "%s", r->cache_note);
    ck_assert_int_eq(r->cache, MR_TUNE_CACHE_SAVED);
    ck_assert_msg(strncmp(r->cache_path, dir, strlen(dir)) == 0, "%s", r->cache_path);
}

START_TEST(saved_choice_reads_back)
{
    if (!two_candidates())
        return;
    mr_kernels k, k2;
    mr_autotune_report r, r2;
    measure_and_save(&k, &r);
    mr_kernels_for_isa(mr_isa_best(), 0, &k2);
    ck_assert_msg(mr_autotune_cache_load(dir, &k2, &r2) == 0, "%s", r2.cache_note);
    ck_assert_int_eq(r2.cache, MR_TUNE_CACHE_LOADED);
    ck_assert(r2.measured);
    for (uint32_t t = 0; t < MR_TYPE_COUNT; t++) {
        ck_assert_int_eq(r2.chosen[t], r.chosen[t]);
        for (int i = 0; i < MR_ISA_COUNT; i++) /* MB/s in the file */
            ck_assert_msg(r2.gbs[t][i] > r.gbs[t][i] - 1e-3 && r2.gbs[t][i] < r.gbs[t][i] + 1e-3,
                          "%s %s: %.4f vs %.4f", mr_type_get(t)->name, mr_isa_name((mr_isa)i),
                          r2.gbs[t][i], r.gbs[t][i]);
    }
    ck_assert(memcmp(&k, &k2, sizeof k) == 0);
    assert_table_follows(&k2, &r2);
}
END_TEST

/* A report as the autotune would write it for every type whose kernels
 * differ between AVX2 and AVX-512, without timing anything (a sanitizer
 * build runs out of the measurement's budget after a few types). */
static void fake_report(mr_autotune_report *r)
{
    mr_kernels a, b;
    memset(r, 0, sizeof *r);
    ck_assert(mr_kernels_for_isa(MR_ISA_AVX2, 0, &a) && mr_kernels_for_isa(MR_ISA_AVX512, 0, &b));
    r->measured = 1;
    r->bytes = 3 << 20;
    r->ms = 12.5;
    for (uint32_t t = 0; t < MR_TYPE_COUNT; t++) {
        r->chosen[t] = mr_isa_best();
        if (a.vec_dot[t] && b.vec_dot[t] && a.vec_dot[t] != b.vec_dot[t]) {
            r->gbs[t][MR_ISA_AVX2] = 10.0 + t;
            r->gbs[t][MR_ISA_AVX512] = 20.0 + t;
        }
    }
    ck_assert_msg(mr_autotune_cache_save(dir, r, mr_isa_best()) == 0, "%s", r->cache_note);
}

/* The cache decides: a choice edited in the file is the one applied. */
START_TEST(edited_choice_is_applied)
{
    if (!two_candidates())
        return;
    mr_kernels k;
    mr_autotune_report r;
    fake_report(&r);
    size_t len;
    char *buf = slurp(r.cache_path, &len);
    const mr_isa best = mr_isa_best(), other = best == MR_ISA_AVX512 ? MR_ISA_AVX2 : MR_ISA_AVX512;
    /* every type to the other ISA */
    char *out = malloc(1 << 17), *o = out;
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        char name[32], isa[16];
        int used = 0;
        if (sscanf(line, "type %31s %15s %n", name, isa, &used) == 2)
            o += sprintf(o, "type %s %s %s\n", name, mr_isa_name(other), line + used);
        else
            o += sprintf(o, "%s\n", line);
    }
    spit(r.cache_path, out, (size_t)(o - out));
    mr_kernels_for_isa(best, 0, &k);
    mr_autotune_report r2;
    ck_assert_msg(mr_autotune_cache_load(dir, &k, &r2) == 0, "%s", r2.cache_note);
    int moved = 0;
    for (uint32_t t = 0; t < MR_TYPE_COUNT; t++)
        if (r2.gbs[t][other] > 0.0) {
            ck_assert_int_eq(r2.chosen[t], other);
            moved++;
        }
    free(out);
    free(buf);
    ck_assert_msg(moved > 5, "only %d types in the file", moved);
    assert_table_follows(&k, &r2);
}
END_TEST

/* every prefix, every byte changed: refused with a note, or consistent */
START_TEST(damaged_files_are_refused_or_consistent)
{
    if (!two_candidates())
        return;
    mr_kernels k;
    mr_autotune_report r;
    measure_and_save(&k, &r);
    char path[sizeof r.cache_path];
    memcpy(path, r.cache_path, sizeof path);
    size_t len;
    char *good = slurp(path, &len);
    char *buf = malloc(len + 1);
    int refused = 0, read = 0;
    for (size_t n = 0; n < 3 * len; n++) {
        size_t l = len;
        memcpy(buf, good, len);
        if (n < len) { /* a prefix */
            l = n;
        } else if (n < 2 * len) { /* one byte changed */
            size_t at = n - len;
            buf[at] = (char)(buf[at] == '\n' ? 'x' : (at & 1) ? '\n' : buf[at] ^ 0x5);
        } else { /* one byte removed */
            size_t at = n - 2 * len;
            memmove(buf + at, buf + at + 1, len - at - 1);
            l = len - 1;
        }
        spit(path, buf, l);
        mr_kernels_for_isa(mr_isa_best(), 0, &k);
        mr_autotune_report r2;
        if (mr_autotune_cache_load(dir, &k, &r2) == 0) {
            read++;
            assert_table_follows(&k, &r2);
        } else {
            refused++;
            ck_assert_msg(strstr(r2.cache_note, path) != NULL, "note without the file: %s",
                          r2.cache_note);
            /* a refused file leaves the best ISA's table untouched */
            mr_kernels best;
            mr_kernels_for_isa(mr_isa_best(), 0, &best);
            ck_assert(memcmp(&k, &best, sizeof k) == 0);
        }
    }
    ck_assert_msg(refused > (int)len, "only %d of %zu damaged files refused", refused, 3 * len);
    printf("damaged cache files: %d refused, %d read (a changed rate still reads)\n", refused, read);
    free(buf);
    free(good);
}
END_TEST

/* Another CPU's or another build's file is not used. */
START_TEST(other_cpu_or_build_is_refused)
{
    if (!two_candidates())
        return;
    mr_kernels k;
    mr_autotune_report r;
    static const char *const keys[] = {"build ", "cpu "};
    for (int v = 0; v < 2; v++) {
        measure_and_save(&k, &r);
        size_t len;
        char *buf = slurp(r.cache_path, &len);
        char *at = strstr(buf, keys[v]);
        ck_assert(at != NULL);
        at[strlen(keys[v])] ^= 1; /* the first character of the value */
        spit(r.cache_path, buf, len);
        mr_kernels_for_isa(mr_isa_best(), 0, &k);
        mr_autotune_report r2;
        ck_assert_int_eq(mr_autotune_cache_load(dir, &k, &r2), -1);
        ck_assert_msg(strstr(r2.cache_note, v ? "another CPU" : "another build"), "%s",
                      r2.cache_note);
        free(buf);
    }
}
END_TEST

START_TEST(unwritable_directory_is_reported)
{
    if (!two_candidates())
        return;
    char file[96];
    snprintf(file, sizeof file, "%s/plain", dir);
    spit(file, "x", 1);
    char sub[128];
    snprintf(sub, sizeof sub, "%s/plain/cache", dir);
    mr_kernels k;
    mr_autotune_report r;
    mr_kernels_for_isa(mr_isa_best(), 0, &k);
    mr_autotune(&k, &r, 0);
    ck_assert_int_eq(mr_autotune_cache_save(sub, &r, mr_isa_best()), -1);
    ck_assert_int_eq(r.cache, MR_TUNE_CACHE_UNSAVED);
    ck_assert_msg(strstr(r.cache_note, "cannot make") != NULL, "%s", r.cache_note);
    unlink(file);
}
END_TEST

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/moerun-tune-XXXXXX");
    if (!mkdtemp(dir))
        return 99;
    if (!two_candidates())
        printf("one SIMD kernel set here: nothing to choose, nothing to cache\n");
    Suite *s = suite_create("autotune_cache");
    TCase *tc = tcase_create("autotune_cache");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, saved_choice_reads_back);
    tcase_add_test(tc, edited_choice_is_applied);
    tcase_add_test(tc, damaged_files_are_refused_or_consistent);
    tcase_add_test(tc, other_cpu_or_build_is_refused);
    tcase_add_test(tc, unwritable_directory_is_reported);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        failed++;
    if (!two_candidates())
        return 77; /* skipped, not passed */
    return failed ? 1 : 0;
}
