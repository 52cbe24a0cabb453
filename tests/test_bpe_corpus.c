/* test_bpe_corpus.c - replay every file of tests/corpus/tokenizer/ (the
 * fuzzing seeds and whatever tests/fuzz_tokenizer found) through the
 * fuzzer's own checks, which it shares by including fuzz_tokenizer.c: any
 * crash, out-of-bounds read, leak (under ASan) or failed check is a
 * failure here too.  An empty or missing corpus fails.
 */
#define MR_FUZZ_NO_ENTRY 1
#include "fuzz_tokenizer.c"

#include <check.h>
#include <dirent.h>
#include <stdio.h>

#include "testutil.h"

static char g_dir[1024];
static char *g_files[512];
static int g_n;

START_TEST(test_corpus_present)
{
    ck_assert_msg(g_n > 0, "no files in %s", g_dir);
}
END_TEST

START_TEST(test_replay)
{
    size_t len;
    uint8_t *buf = tu_read_file(tu_path("%s/%s", g_dir, g_files[_i]), &len);
    ck_assert_msg(buf, "%s unreadable", g_files[_i]);
    fuzz_tokenizer_one(buf, len);
    free(buf);
}
END_TEST

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(void)
{
    snprintf(g_dir, sizeof g_dir, "%s/tests/corpus/tokenizer", tu_srcdir());
    DIR *d = opendir(g_dir);
    for (struct dirent *e; d && (e = readdir(d)) && g_n < 512;)
        if (e->d_name[0] != '.')
            g_files[g_n++] = strdup(e->d_name);
    if (d)
        closedir(d);
    qsort(g_files, (size_t)g_n, sizeof *g_files, cmp_name);
    Suite *s = suite_create("bpe_corpus");
    TCase *tc = tcase_create("replay");
    tcase_add_test(tc, test_corpus_present);
    tcase_add_loop_test(tc, test_replay, 0, g_n);
    suite_add_tcase(s, tc);
    printf("corpus: %d files in %s\n", g_n, g_dir);
    int rc = tu_run_suite(s);
    for (int i = 0; i < g_n; i++)
        free(g_files[i]);
    return rc;
}
