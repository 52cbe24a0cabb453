/* test_corpus.c - replay every file of tests/corpus/gguf/ (fuzzing seeds,
 * and every input a fuzzer ever crashed on) through the reader and the
 * model validation, forever.
 *
 * Each file runs in its own forked test, copied into a buffer of exactly
 * its size (so ASan, in CI, catches any read past the end).  A file may be
 * accepted or rejected; a rejection must carry a status and a non-empty
 * message, an acceptance must hand out tensors that lie inside the file
 * (their bytes are all read) and whose byte size is exactly their element
 * count times their type's size (the check tests/fuzz_gguf.c makes, so a
 * saved crash-* input keeps failing until its bug is fixed).  A missing or
 * empty corpus directory fails.
 *
 * The directory is $MOERUN_SRCDIR/tests/corpus/gguf (MOERUN_SRCDIR
 * defaults to ".").
 */
#define _POSIX_C_SOURCE 200809L /* strdup, mkstemp, fileno */

#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "gguf.h"
#include "model.h"
#include "types.h"

#define MAX_FILES 4096

static char g_dir[4096];
static char *g_names[MAX_FILES];
static int g_n_files;
static int g_dir_missing;

/* Read a whole file into a buffer of exactly its size (1 byte if empty). */
static uint8_t *read_exact(const char *path, size_t *len)
{
    struct stat st;
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    uint8_t *p = NULL;
    if (fstat(fileno(f), &st) == 0 && st.st_size >= 0 &&
        (p = malloc(st.st_size ? (size_t)st.st_size : 1)) &&
        fread(p, 1, (size_t)st.st_size, f) == (size_t)st.st_size) {
        *len = (size_t)st.st_size;
    } else {
        free(p);
        p = NULL;
    }
    fclose(f);
    return p;
}

/* Sum n bytes so that every one is read. */
static uint64_t touch(const uint8_t *p, uint64_t n)
{
    uint64_t s = 0;
    for (uint64_t i = 0; i < n; i++)
        s += p[i];
    return s;
}

/* Every accepted tensor lies inside the buffer; read all of it. */
static uint64_t check_tensors(const mr_gguf *g, const uint8_t *buf, size_t len, const char *name)
{
    uint64_t s = 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const mr_gguf_tensor *t = &g->tensors[i];
        ck_assert_msg(t->data == buf + t->file_offset && t->file_offset <= len &&
                          t->nbytes <= len - t->file_offset,
                      "%s: tensor '%s' [%llu, +%llu) is outside the %zu-byte file", name,
                      t->name, (unsigned long long)t->file_offset,
                      (unsigned long long)t->nbytes, len);
        const mr_type_traits *tt = mr_type_get(t->type);
        ck_assert_msg(tt->block_size && t->ne[0] % tt->block_size == 0,
                      "%s: tensor '%s' has type %u and row length %llu", name, t->name, t->type,
                      (unsigned long long)t->ne[0]);
        unsigned __int128 want = (unsigned __int128)(t->ne[0] / tt->block_size) * tt->type_size;
        for (int d = 1; d < MR_GGUF_MAX_DIMS && want <= UINT64_MAX; d++)
            want *= t->ne[d];
        ck_assert_msg(want == t->nbytes,
                      "%s: tensor '%s' [%llu, %llu, %llu, %llu] %s claims %llu bytes "
                      "(its byte size wrapped around)", name, t->name,
                      (unsigned long long)t->ne[0], (unsigned long long)t->ne[1],
                      (unsigned long long)t->ne[2], (unsigned long long)t->ne[3], tt->name,
                      (unsigned long long)t->nbytes);
        s += touch(t->data, t->nbytes);
    }
    return s;
}

/* A rejection: a real status, recorded, with a message. */
static void check_rejection(mr_status s, const mr_error *err, const char *name, const char *stage)
{
    ck_assert_msg(s > MR_OK && s < MR_STATUS_COUNT, "%s: %s returned status %d", name, stage, s);
    ck_assert_msg(err->code == s, "%s: %s: err.code %d != status %d", name, stage, err->code, s);
    ck_assert_msg(err->msg[0] != '\0', "%s: %s failed (%s) with an empty message", name, stage,
                  mr_status_name(s));
}

/* The corpus exists and is not empty: replaying nothing must not pass. */
START_TEST(test_corpus_present)
{
    ck_assert_msg(!g_dir_missing, "corpus directory %s is missing", g_dir);
    ck_assert_msg(g_n_files > 0, "corpus directory %s holds no files", g_dir);
}
END_TEST

/* One corpus file through the reader and the model. */
START_TEST(test_replay)
{
    const char *name = g_names[_i];
    char path[8192];
    size_t len = 0;
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    uint8_t *buf = read_exact(path, &len);
    ck_assert_msg(buf != NULL, "cannot read %s", path);
    mr_gguf *g = (mr_gguf *)1;
    mr_model *m = (mr_model *)1;
    mr_error err;
    mr_error_clear(&err);
    volatile uint64_t sink = 0;
    mr_status s = mr_gguf_open_mem(buf, len, name, &g, &err);
    if (s != MR_OK) {
        check_rejection(s, &err, name, "mr_gguf_open_mem");
        ck_assert_ptr_null(g);
    } else {
        sink += check_tensors(g, buf, len, name);
        mr_error_clear(&err);
        s = mr_model_from_gguf(g, &m, &err);
        if (s != MR_OK) {
            check_rejection(s, &err, name, "mr_model_from_gguf");
            ck_assert_ptr_null(m);
        } else {
            sink += check_tensors(m->gguf, buf, len, name);
            mr_model_free(m);
        }
    }
    (void)sink;
    free(buf);
}
END_TEST

/* qsort comparator for the file names. */
static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* List the regular files of the corpus directory, sorted. */
static void list_corpus(void)
{
    const char *src = getenv("MOERUN_SRCDIR");
    snprintf(g_dir, sizeof g_dir, "%s/tests/corpus/gguf", src && *src ? src : ".");
    DIR *d = opendir(g_dir);
    if (!d) {
        g_dir_missing = 1;
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) && g_n_files < MAX_FILES) {
        char path[8192];
        struct stat st;
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", g_dir, e->d_name);
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (!(g_names[g_n_files] = strdup(e->d_name)))
            break;
        g_n_files++;
    }
    closedir(d);
    qsort(g_names, (size_t)g_n_files, sizeof g_names[0], cmp_names);
}

/* List the corpus, then one forked test per file. */
int main(void)
{
    list_corpus();
    Suite *s = suite_create("corpus");
    TCase *tc = tcase_create("replay");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_corpus_present);
    if (g_n_files > 0)
        tcase_add_loop_test(tc, test_replay, 0, g_n_files);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    printf("corpus: %d files in %s\n", g_n_files, g_dir);
    for (int i = 0; i < g_n_files; i++)
        free(g_names[i]);
    return failed ? 1 : 0;
}
