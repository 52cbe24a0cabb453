/* test_sampler.c - greedy, seeded sampling, top-k/top-p/min-p, repeat
 * penalty and the shape of the sampled distribution.  Needs no test data.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sampler.h"

#define N_BIG 32000

/* Deterministic pseudo-random logits in [-10, 10) (test-local LCG). */
static void fill_logits(float *l, int32_t n, uint32_t seed)
{
    uint64_t x = seed * 2654435761u + 1;
    for (int32_t i = 0; i < n; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        l[i] = (float)((double)(x >> 11) / 9007199254740992.0 * 20.0 - 10.0);
    }
}

/* Argmax, ties to the lower id (the reference for greedy). */
static int32_t ref_argmax(const float *l, int32_t n)
{
    int32_t b = 0;
    for (int32_t i = 1; i < n; i++)
        if (l[i] > l[b])
            b = i;
    return b;
}

/* A sampler that must be created successfully. */
static mr_sampler *make(const mr_sampler_params *p, int32_t n_vocab)
{
    mr_sampler *s;
    mr_error err;
    ck_assert_msg(mr_sampler_new(p, n_vocab, &s, &err) == MR_OK, "%s", err.msg);
    return s;
}

/* Parameters with every filter off. */
static mr_sampler_params plain(float temp, uint64_t seed)
{
    return (mr_sampler_params){.temp = temp, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f,
                               .repeat_penalty = 1.0f, .repeat_last_n = 64, .seed = seed};
}

START_TEST(test_defaults)
{
    mr_sampler_params p;
    mr_sampler_params_default(&p);
    ck_assert_float_eq(p.temp, 0.8f);
    ck_assert_int_eq(p.top_k, 40);
    ck_assert_float_eq(p.top_p, 0.95f);
    ck_assert_float_eq(p.min_p, 0.05f);
    ck_assert_float_eq(p.repeat_penalty, 1.0f);
    ck_assert_int_eq(p.repeat_last_n, 64);
    ck_assert_uint_eq(p.seed, 0xFFFFFFFFu);
}
END_TEST

START_TEST(test_bad_params)
{
    mr_sampler_params p = plain(1.0f, 1);
    mr_sampler *s = (mr_sampler *)&p;
    mr_error err;
    ck_assert_int_eq(mr_sampler_new(&p, 0, &s, &err), MR_EINVAL);
    ck_assert_ptr_null(s);
    p.repeat_penalty = 0.0f;
    ck_assert_int_eq(mr_sampler_new(&p, 10, &s, &err), MR_EINVAL);
    ck_assert(strstr(err.msg, "repeat_penalty") != NULL);
    p = plain(NAN, 1);
    ck_assert_int_eq(mr_sampler_new(&p, 10, &s, &err), MR_EINVAL);
    p = plain(1.0f, 1);
    p.repeat_last_n = 1 << 30;
    ck_assert_int_eq(mr_sampler_new(&p, 10, &s, &err), MR_EINVAL);
}
END_TEST

/* temp <= 0 is argmax with ties to the lower id; NaN never wins. */
START_TEST(test_greedy_argmax_ties)
{
    float l[16];
    for (int i = 0; i < 16; i++)
        l[i] = (float)(i % 5);
    l[3] = 7.0f;
    l[11] = 7.0f;
    l[2] = NAN;
    const float temps[] = {0.0f, -1.0f};
    for (int t = 0; t < 2; t++) {
        mr_sampler_params p;
        mr_sampler_params_default(&p);
        p.temp = temps[t];
        mr_sampler *s = make(&p, 16);
        for (int k = 0; k < 5; k++)
            ck_assert_int_eq(mr_sampler_sample(s, l), 3);
        mr_sampler_free(s);
    }
    float ninf[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
    mr_sampler_params p = plain(0.0f, 1);
    mr_sampler *s = make(&p, 4);
    ck_assert_int_eq(mr_sampler_sample(s, ninf), 0);
    mr_sampler_free(s);
    /* big random vocabulary */
    float *big = malloc(N_BIG * sizeof *big);
    ck_assert(big);
    s = make(&p, N_BIG);
    for (uint32_t r = 0; r < 10; r++) {
        fill_logits(big, N_BIG, r);
        ck_assert_int_eq(mr_sampler_sample(s, big), ref_argmax(big, N_BIG));
    }
    mr_sampler_free(s);
    free(big);
}
END_TEST

/* Draw n ids with params p over the big random logits (changing per step). */
static void run_sequence(const mr_sampler_params *p, int32_t *out, int n)
{
    float *l = malloc(N_BIG * sizeof *l);
    ck_assert(l);
    mr_sampler *s = make(p, N_BIG);
    for (int i = 0; i < n; i++) {
        fill_logits(l, N_BIG, (uint32_t)i);
        for (int32_t j = 0; j < N_BIG; j++)
            l[j] *= 0.3f; /* flatter: many candidates stay alive */
        out[i] = mr_sampler_sample(s, l);
        mr_sampler_accept(s, out[i]);
    }
    mr_sampler_free(s);
    free(l);
}

/* Same seed, same sequence; another seed, another one (default filters
 * and with every filter off, which takes the full-sort path). */
START_TEST(test_seed_determinism)
{
    enum { N = 200 };
    int32_t a[N], b[N], c[N];
    mr_sampler_params p;
    mr_sampler_params_default(&p);
    p.temp = 1.5f;
    p.repeat_penalty = 1.1f;
    for (int variant = 0; variant < 2; variant++) {
        if (variant == 1)
            p = plain(1.0f, p.seed);
        p.seed = 1234;
        run_sequence(&p, a, N);
        run_sequence(&p, b, N);
        ck_assert(memcmp(a, b, sizeof a) == 0);
        p.seed = 1235;
        run_sequence(&p, c, N);
        int differ = 0;
        for (int i = 0; i < N; i++)
            differ += a[i] != c[i];
        ck_assert_msg(differ > N / 4, "seeds 1234 and 1235 agree on %d of %d", N - differ, N);
    }
}
END_TEST

/* A known seed gives a known sequence, in every run and build: this pins
 * the PRNG (xoshiro256** seeded by splitmix64) and the draw. */
START_TEST(test_seed_stable)
{
    static const char want[] = "00122112111020121211000100011001";
    float l[3] = {logf(0.5f), logf(0.3f), logf(0.2f)};
    mr_sampler_params p = plain(1.0f, 42);
    mr_sampler *s = make(&p, 3);
    for (int i = 0; i < 32; i++)
        ck_assert_msg(mr_sampler_sample(s, l) == want[i] - '0', "draw %d", i);
    mr_sampler_free(s);
}
END_TEST

/* Filters that leave one candidate are greedy at any temperature. */
START_TEST(test_filters_to_greedy)
{
    const float temps[] = {0.1f, 1.0f, 10.0f, 1000.0f};
    float *l = malloc(N_BIG * sizeof *l);
    ck_assert(l);
    for (int f = 0; f < 3; f++) {
        for (int t = 0; t < 4; t++) {
            mr_sampler_params p = plain(temps[t], 7u + (unsigned)t);
            if (f == 0) p.top_k = 1;
            if (f == 1) p.top_p = 1e-6f;
            if (f == 2) p.min_p = 1.0f;
            mr_sampler *s = make(&p, N_BIG);
            for (uint32_t r = 0; r < 20; r++) {
                fill_logits(l, N_BIG, 100 + r);
                ck_assert_msg(mr_sampler_sample(s, l) == ref_argmax(l, N_BIG),
                              "filter %d temp %g round %u", f, (double)temps[t], r);
            }
            mr_sampler_free(s);
        }
    }
    free(l);
}
END_TEST

/* The repeat penalty moves the argmax: positive logits are divided,
 * negative ones multiplied; only the last repeat_last_n tokens count. */
START_TEST(test_repeat_penalty)
{
    float pos[4] = {2.0f, 1.9f, 0.0f, -3.0f};
    float neg[4] = {-1.0f, -1.2f, -5.0f, -6.0f};
    mr_sampler_params p = plain(0.0f, 1);
    p.repeat_penalty = 1.5f;
    p.repeat_last_n = 3;
    mr_sampler *s = make(&p, 4);
    ck_assert_int_eq(mr_sampler_sample(s, pos), 0); /* nothing accepted yet */
    mr_sampler_accept(s, 0);
    mr_sampler_accept(s, 0); /* counted once: 2.0 / 1.5, not / 2.25 */
    ck_assert_int_eq(mr_sampler_sample(s, pos), 1);
    ck_assert_int_eq(mr_sampler_sample(s, neg), 1); /* -1.5 < -1.2 */
    mr_sampler_accept(s, 2);
    mr_sampler_accept(s, 3);
    mr_sampler_accept(s, 3); /* 0 has left the window of 3 */
    ck_assert_int_eq(mr_sampler_sample(s, pos), 0);
    mr_sampler_accept(s, -1); /* ignored */
    mr_sampler_accept(s, 4);  /* ignored */
    mr_sampler_free(s);
    ck_assert_float_eq(pos[0], 2.0f); /* logits are not modified */

    /* also on the sampling path (top-k 1 at temp 1) */
    p = plain(1.0f, 5);
    p.top_k = 1;
    p.repeat_penalty = 1.5f;
    s = make(&p, 4);
    mr_sampler_accept(s, 0);
    ck_assert_int_eq(mr_sampler_sample(s, pos), 1);
    mr_sampler_free(s);

    /* a penalty of 1 changes nothing */
    p = plain(0.0f, 1);
    s = make(&p, 4);
    mr_sampler_accept(s, 0);
    ck_assert_int_eq(mr_sampler_sample(s, pos), 0);
    mr_sampler_free(s);
}
END_TEST

/* Frequencies of n draws from logits l[0..3) with params p. */
static void frequencies(const mr_sampler_params *p, const float *l, int n, double f[3])
{
    int count[3] = {0, 0, 0};
    mr_sampler *s = make(p, 3);
    for (int i = 0; i < n; i++) {
        int32_t id = mr_sampler_sample(s, l);
        ck_assert(id >= 0 && id < 3);
        count[id]++;
    }
    mr_sampler_free(s);
    for (int i = 0; i < 3; i++)
        f[i] = (double)count[i] / n;
}

/* temp 1 over log([0.5, 0.3, 0.2]): 20000 draws within 0.02 of the
 * probabilities; top-k 2, top-p 0.7 and min-p 0.5 each drop the last one
 * and renormalise to [0.625, 0.375]; temp 2 flattens as expected. */
START_TEST(test_distribution)
{
    const float l[3] = {logf(0.5f), logf(0.3f), logf(0.2f)};
    const double full[3] = {0.5, 0.3, 0.2}, two[3] = {0.625, 0.375, 0.0};
    double f[3];
    for (int v = 0; v < 5; v++) {
        mr_sampler_params p = plain(1.0f, 1000u + (unsigned)v);
        const double *want = two;
        double hot[3];
        if (v == 0) want = full;
        if (v == 1) p.top_k = 2;
        if (v == 2) p.top_p = 0.7f;
        if (v == 3) p.min_p = 0.5f;
        if (v == 4) { /* temp 2: p_i proportional to sqrt(q_i) */
            p.temp = 2.0f;
            double z = sqrt(0.5) + sqrt(0.3) + sqrt(0.2);
            hot[0] = sqrt(0.5) / z;
            hot[1] = sqrt(0.3) / z;
            hot[2] = sqrt(0.2) / z;
            want = hot;
        }
        frequencies(&p, l, 20000, f);
        for (int i = 0; i < 3; i++)
            ck_assert_msg(fabs(f[i] - want[i]) <= 0.02, "variant %d id %d: %.4f vs %.4f", v, i,
                          f[i], want[i]);
    }
}
END_TEST

/* Top-k over a big vocabulary picks only from the true k best, and at a
 * high temperature reaches each of them. */
START_TEST(test_top_k_set)
{
    enum { K = 5 };
    float *l = malloc(N_BIG * sizeof *l);
    ck_assert(l);
    fill_logits(l, N_BIG, 77);
    int32_t best[K];
    float *tmp = malloc(N_BIG * sizeof *tmp);
    ck_assert(tmp);
    memcpy(tmp, l, N_BIG * sizeof *tmp);
    for (int k = 0; k < K; k++) {
        best[k] = ref_argmax(tmp, N_BIG);
        tmp[best[k]] = -INFINITY;
    }
    free(tmp);
    mr_sampler_params p = plain(1000.0f, 9);
    p.top_k = K;
    mr_sampler *s = make(&p, N_BIG);
    int hits[K] = {0};
    for (int i = 0; i < 2000; i++) {
        int32_t id = mr_sampler_sample(s, l);
        int k = 0;
        while (k < K && best[k] != id)
            k++;
        ck_assert_msg(k < K, "id %d is not among the top %d", id, K);
        hits[k]++;
    }
    for (int k = 0; k < K; k++)
        ck_assert_int_gt(hits[k], 250);
    mr_sampler_free(s);
    free(l);
}
END_TEST

/* Run every case; no test data is needed. */
int main(void)
{
    Suite *su = suite_create("sampler");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_bad_params);
    tcase_add_test(tc, test_greedy_argmax_ties);
    tcase_add_test(tc, test_seed_determinism);
    tcase_add_test(tc, test_seed_stable);
    tcase_add_test(tc, test_filters_to_greedy);
    tcase_add_test(tc, test_repeat_penalty);
    tcase_add_test(tc, test_distribution);
    tcase_add_test(tc, test_top_k_set);
    suite_add_tcase(su, tc);
    SRunner *sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
