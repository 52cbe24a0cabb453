/* test_kv.c - the KV cache in F16 and Q8_0 (llama.cpp's -ctk / -ctv)
 * against the F32 cache and the float64 references.
 *
 * The demo model (head size 32) on the exact path, prompt "long_story"
 * (tests/data):
 * all prompt logits then the F32 cache's 16 greedy tokens decoded one at a
 * time (every type sees the same sequence), which reads the cache back at
 * every step.  Measured (Zen 5): F16 keys and values move logits by ~3e-3
 * from F32, Q8_0 by up to ~0.05; tolerances 1e-2 and 0.1, and the top
 * token must be the F32 cache's wherever its margin exceeds twice that.  Bad requests
 * (a Q8_0 cache for a head size that is not a multiple of 32, a type the
 * cache cannot hold) are refused with MR_EINVAL.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../quant/types.h"
#include "forward.h"
#include "testutil.h"

#define N_GEN 16

/* Logits of the prompt, then of N_GEN tokens decoded one at a time: the
 * f32 cache's greedy choices when `forced` is given (every type then sees
 * the same sequence), else its own, written to gen. */
static float *run(mr_model *m, const int32_t *ids, size_t n, uint32_t kt, uint32_t vt,
                  const int32_t *forced, int32_t *gen)
{
    mr_error err;
    mr_expert_store *st;
    mr_context *c;
    const uint32_t nv = m->hp.n_vocab;
    ck_assert(mr_store_resident_new(m, &st, &err) == 0);
    ck_assert_msg(mr_context_new_kv(m, st, (uint32_t)n + N_GEN, (uint32_t)n, kt, vt, &c, &err) == 0,
                  "%s", err.msg);
    mr_context_set_exact(c, 1);
    float *lg = malloc(sizeof(float) * (n + N_GEN) * nv);
    ck_assert_msg(mr_decode(c, ids, (uint32_t)n, lg, 1, &err) == 0, "%s", err.msg);
    for (int i = 0; i < N_GEN; i++) {
        gen[i] = (int32_t)tu_argmax(lg + (n - 1 + i) * nv, nv, NULL);
        ck_assert(mr_decode(c, forced ? &forced[i] : &gen[i], 1, lg + (n + i) * nv, 0, &err) == 0);
    }
    mr_context_free(c);
    mr_expert_store_free(st);
    return lg;
}

START_TEST(kv_types_match_f32)
{
    size_t n;
    int32_t *ids = tu_read_ids_json(tu_path("%s/tests/data/long_story.ids.json", tu_srcdir()), &n,
                                    NULL);
    ck_assert(ids && n > 8);
    mr_model *m;
    mr_error err;
    ck_assert(mr_model_load(tu_demo_model(), &m, &err) == 0);
    const uint32_t nv = m->hp.n_vocab;
    int32_t g32[N_GEN], g[N_GEN];
    float *ref = run(m, ids, n, MR_TYPE_F32, MR_TYPE_F32, NULL, g32);
    static const struct { uint32_t k, v; double tol; } cases[] = {
        {MR_TYPE_F16, MR_TYPE_F16, 1e-2}, {MR_TYPE_Q8_0, MR_TYPE_Q8_0, 0.1},
        {MR_TYPE_Q8_0, MR_TYPE_F32, 0.1}, {MR_TYPE_F32, MR_TYPE_Q8_0, 0.1}, {MR_TYPE_Q8_0, MR_TYPE_F16, 0.1}, {MR_TYPE_F16, MR_TYPE_F32, 1e-2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        float *lg = run(m, ids, n, cases[i].k, cases[i].v, g32, g);
        const double d = tu_max_abs_diff(lg, ref, (n + N_GEN) * nv);
        /* the same top token wherever the f32 cache's margin is clear */
        size_t clear = 0, agree = 0;
        for (size_t r = 0; r < n + N_GEN; r++) {
            double margin;
            size_t want = tu_argmax(ref + r * nv, nv, &margin);
            if (margin > 2 * cases[i].tol) {
                clear++;
                agree += tu_argmax(lg + r * nv, nv, NULL) == want;
            }
        }
        printf("KV %s/%s: max |logit - f32 cache| %.3g over %zu positions (tolerance %g), "
               "top-1 %zu/%zu where the margin > %g\n",
               mr_type_get(cases[i].k)->name, mr_type_get(cases[i].v)->name, d, n + N_GEN,
               cases[i].tol, agree, clear, 2 * cases[i].tol);
        ck_assert_msg(d <= cases[i].tol, "KV %u/%u: %g", cases[i].k, cases[i].v, d);
        ck_assert_uint_eq(agree, clear);
        free(lg);
    }
    /* what cannot be */
    mr_expert_store *st;
    mr_context *c;
    ck_assert(mr_store_resident_new(m, &st, &err) == 0);
    ck_assert_int_eq(mr_context_new_kv(m, st, 8, 8, MR_TYPE_Q4_0, MR_TYPE_F32, &c, &err), MR_EINVAL);
    ck_assert_msg(strstr(err.msg, "q4_0") || strstr(err.msg, "Q4_0"), "%s", err.msg);
    mr_expert_store_free(st);
    ck_assert(mr_context_bytes_kv(m, 1024, 8, MR_TYPE_F16, MR_TYPE_F16) <
              mr_context_bytes_kv(m, 1024, 8, MR_TYPE_F32, MR_TYPE_F32));
    free(ref);
    free(ids);
    mr_model_free(m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("kv");
    TCase *tc = tcase_create("kv");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, kv_types_match_f32);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
