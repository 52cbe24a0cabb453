/* test_isa_e2e.c - the demo model's logits through every kernel set this
 * machine can run, in one process (mr_context_set_isa), against the
 * scalar reference kernels.
 *
 * Tolerances, and why:
 * - fast path (8-bit activations): the integer dots are exact and the
 *   activation quantizer is bit-identical in every kernel set, so only the
 *   order of float additions differs; through the layers that can move an
 *   activation across a rounding boundary of the next quantization, which
 *   is the fast path's own error.  So: the fast path's tolerance against
 *   the float64 reference (test_forward: 0.1), top-1 identical where the
 *   scalar margin exceeds 2 x 0.1.  (Measured on Zen 5: 3e-6, and 0.017
 *   where AVX2's order tips one activation across a rounding boundary.)
 * - exact path: f32 rounding only, as test_forward: <= 1e-3.
 * - within scalar, avx2 and avx512, the prompt as one batch (the gemm
 *   kernels) and token by token (decode) give the same bits: a (row,
 *   token) result never depends on the batch it came in.  Other kernel
 *   sets are only held to the tolerance.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forward.h"
#include "testutil.h"

#define N_VOCAB 32000

static const char *const isa_names[] = {"scalar", "avx2", "avx2vnni", "avx512", "neon"};
#define N_ISA 5

static mr_model *model;
static mr_expert_store *store;

static void load_model(void)
{
    mr_error err;
    const char *path = tu_demo_model();
    ck_assert_msg(mr_model_load(path, &model, &err) == MR_OK, "%s", err.msg);
    ck_assert(mr_store_resident_new(model, &store, &err) == MR_OK);
}

static void free_model(void)
{
    mr_expert_store_free(store);
    mr_model_free(model);
}

/* All logits of ids on kernel set isa, in chunks of `chunk` tokens; NULL
 * if this machine cannot run that set. */
static float *run_isa(const char *isa, const int32_t *ids, size_t n, size_t chunk, int exact)
{
    mr_error err;
    mr_context *c;
    ck_assert_msg(mr_context_new(model, store, (uint32_t)n, (uint32_t)chunk, &c, &err) == MR_OK,
                  "%s", err.msg);
    mr_context_set_exact(c, exact);
    if (mr_context_set_isa(c, isa, &err) != MR_OK) {
        ck_assert_int_eq(err.code, MR_EINVAL);
        mr_context_free(c);
        return NULL;
    }
    ck_assert_str_eq(mr_context_isa(c), isa);
    float *lg = malloc(sizeof(float) * n * N_VOCAB);
    for (size_t i = 0; i < n; i += chunk) {
        size_t m = n - i < chunk ? n - i : chunk;
        ck_assert_msg(mr_decode(c, ids + i, (uint32_t)m, lg + i * N_VOCAB, 1, &err) == MR_OK,
                      "%s", err.msg);
    }
    mr_context_free(c);
    return lg;
}

static const char *const prompts[] = {"short", "digits_punct"};

START_TEST(every_isa_agrees_with_scalar)
{
    const char *name = prompts[_i];
    size_t n;
    int32_t *ids = tu_read_ids_json(tu_path("%s/tests/data/%s.ids.json", tu_srcdir(), name), &n, NULL);
    ck_assert(ids && n > 0);
    for (int exact = 0; exact < 2; exact++) {
        float *ref = run_isa("scalar", ids, n, n, exact);
        ck_assert(ref);
        for (int i = 0; i < N_ISA; i++) {
            float *batch = run_isa(isa_names[i], ids, n, n, exact);
            if (!batch) {
                printf("%-13s %-6s %-6s: not available here\n", name, exact ? "exact" : "fast",
                       isa_names[i]);
                continue;
            }
            float *each = run_isa(isa_names[i], ids, n, 1, exact);
            ck_assert(each);
            const double d = tu_max_abs_diff(batch, ref, n * N_VOCAB);
            const double de = tu_max_abs_diff(each, ref, n * N_VOCAB);
            size_t agree = 0, rows = 0;
            for (size_t t = 0; t < n; t++) {
                double margin;
                size_t want = tu_argmax(ref + t * N_VOCAB, N_VOCAB, &margin);
                if (margin <= 0.2)
                    continue;
                rows++;
                agree += tu_argmax(batch + t * N_VOCAB, N_VOCAB, NULL) == want &&
                         tu_argmax(each + t * N_VOCAB, N_VOCAB, NULL) == want;
            }
            const int same = memcmp(batch, each, sizeof(float) * n * N_VOCAB) == 0;
            printf("%-13s %-6s %-6s vs scalar: max |diff| %.3g batched, %.3g token by token; "
                   "top-1 %zu/%zu; batched %s token by token\n",
                   name, exact ? "exact" : "fast", isa_names[i], d, de, agree, rows,
                   same ? "==" : "!=");
            const double tol = exact ? 1e-3 : 0.1;
            ck_assert_msg(d <= tol && de <= tol, "%s %s: max |diff| %g / %g > %g", name,
                          isa_names[i], d, de, tol);
            ck_assert_uint_eq(agree, rows);
            if (i <= 3) /* scalar, avx2, avx2vnni, avx512 */
                ck_assert_msg(same, "%s %s %s: batched and token-by-token logits differ", name,
                              isa_names[i], exact ? "exact" : "fast");
            free(batch);
            free(each);
        }
        free(ref);
    }
    free(ids);
}
END_TEST

START_TEST(unknown_or_unavailable_isa_is_refused)
{
    mr_error err;
    mr_context *c;
    ck_assert(mr_context_new(model, store, 4, 4, &c, &err) == MR_OK);
    const char *before = mr_context_isa(c);
    ck_assert_int_eq(mr_context_set_isa(c, "sse9", &err), MR_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "unknown kernel set"));
    ck_assert_int_eq(mr_context_set_isa(c, NULL, &err), MR_EINVAL);
    ck_assert_str_eq(mr_context_isa(c), before); /* unchanged */
    /* an ISA of the other architecture is never available */
#if defined(__x86_64__) || defined(__i386__)
    ck_assert_int_eq(mr_context_set_isa(c, "neon", &err), MR_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "not available"));
#elif defined(__aarch64__)
    ck_assert_int_eq(mr_context_set_isa(c, "avx2", &err), MR_EINVAL);
#endif
    ck_assert_int_eq(mr_context_set_isa(c, "scalar", &err), MR_OK);
    ck_assert_str_eq(mr_context_isa(c), "scalar");
    mr_context_set_exact(c, 1); /* the chosen set survives the exact switch */
    ck_assert_str_eq(mr_context_isa(c), "scalar");
    mr_context_free(c);
}
END_TEST

int main(void)
{
    tu_demo_model();
    Suite *s = suite_create("isa_e2e");
    TCase *tc = tcase_create("tinymix-Q8_0");
    tcase_set_timeout(tc, 600);
    tcase_add_unchecked_fixture(tc, load_model, free_model);
    tcase_add_loop_test(tc, every_isa_agrees_with_scalar, 0, 2);
    tcase_add_test(tc, unknown_or_unavailable_isa_is_refused);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
