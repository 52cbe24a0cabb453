/* testutil.c - helpers shared by the test programs. */
#include "testutil.h"

#include <json-c/json.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *tu_testdata(void)
{
    static char buf[4096];
    const char *d = getenv("MOERUN_TESTDATA");
    if (!d || !*d)
        d = "../shared";
    snprintf(buf, sizeof buf, "%s/ref/README.md", d);
    if (access(buf, R_OK) != 0)
        return NULL;
    snprintf(buf, sizeof buf, "%s", d);
    return buf;
}

const char *tu_srcdir(void)
{
    const char *d = getenv("MOERUN_SRCDIR");
    return d && *d ? d : ".";
}

void tu_skip(const char *why)
{
    fprintf(stderr, "SKIP: %s\n", why);
    exit(77);
}

const char *tu_testdata_or_skip(void)
{
    const char *d = tu_testdata();
    if (!d)
        tu_skip("shared test data not found: set MOERUN_TESTDATA to the folder holding "
                "ref/ and models/ (default ../shared)");
    return d;
}

const char *tu_path(const char *fmt, ...)
{
    static char bufs[8][4096];
    static int next;
    char *b = bufs[next++ & 7];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b, sizeof bufs[0], fmt, ap);
    va_end(ap);
    return b;
}

void *tu_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = sz >= 0 ? malloc((size_t)sz + 1) : NULL;
    if (buf && fread(buf, 1, (size_t)sz, f) != (size_t)sz) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[sz] = '\0';
        *len = (size_t)sz;
    }
    return buf;
}

float *tu_read_f32(const char *path, size_t *n)
{
    size_t len;
    float *p = tu_read_file(path, &len);
    if (p)
        *n = len / sizeof(float);
    return p;
}

/* field may name a nested member with dots ("yarn_trunc.ids") */
static json_object *field_of(const char *path, const char *field, json_object **root)
{
    json_object *o;
    char key[128];
    *root = json_object_from_file(path);
    o = *root;
    while (o && *field) {
        size_t l = strcspn(field, ".");
        if (l >= sizeof key)
            return NULL;
        memcpy(key, field, l);
        key[l] = 0;
        if (!json_object_object_get_ex(o, key, &o))
            return NULL;
        field += l + (field[l] == '.');
    }
    return o;
}

int32_t *tu_read_json_ints(const char *path, const char *field, size_t *n)
{
    json_object *root, *arr = field_of(path, field, &root);
    int32_t *ids = NULL;
    if (arr && json_object_is_type(arr, json_type_array)) {
        *n = json_object_array_length(arr);
        ids = malloc(sizeof(int32_t) * (*n ? *n : 1));
        for (size_t i = 0; ids && i < *n; i++)
            ids[i] = json_object_get_int(json_object_array_get_idx(arr, i));
    }
    json_object_put(root);
    return ids;
}

double *tu_read_json_doubles(const char *path, const char *field, size_t *n)
{
    json_object *root, *arr = field_of(path, field, &root);
    double *v = NULL;
    if (arr && json_object_is_type(arr, json_type_array)) {
        *n = json_object_array_length(arr);
        v = malloc(sizeof(double) * (*n ? *n : 1));
        for (size_t i = 0; v && i < *n; i++)
            v[i] = json_object_get_double(json_object_array_get_idx(arr, i));
    }
    json_object_put(root);
    return v;
}

int32_t *tu_read_ids_json(const char *path, size_t *n, char **text)
{
    if (text) {
        json_object *root, *t = field_of(path, "text", &root);
        *text = t ? strdup(json_object_get_string(t)) : NULL;
        json_object_put(root);
        if (!*text)
            return NULL;
    }
    return tu_read_json_ints(path, "ids", n);
}

double tu_max_abs_diff(const float *a, const float *b, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= m)) /* NaN counts as infinitely wrong */
            m = isnan(d) ? INFINITY : d;
    }
    return m;
}

size_t tu_argmax(const float *x, size_t n, double *margin)
{
    size_t best = 0;
    for (size_t i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    double second = -INFINITY;
    for (size_t i = 0; i < n; i++)
        if (i != best && x[i] > second)
            second = x[i];
    if (margin)
        *margin = (double)x[best] - second;
    return best;
}

const char *tu_demo_model(void)
{
    const char *p = tu_path("%s/models/tinymix-Q8_0.gguf", tu_srcdir());
    if (access(p, R_OK) != 0) {
        fprintf(stderr, "FAIL: the demo model %s is missing (set MOERUN_SRCDIR)\n", p);
        exit(1);
    }
    return p;
}

int tu_run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
