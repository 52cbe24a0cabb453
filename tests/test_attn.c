/* test_attn.c - the attention block kernel of every kernel set this CPU
 * runs against the scalar reference (simd/attn.c), and the attention block
 * of src/nn against a float64 softmax written here.
 *
 * - Kernels: random q, k, v of every shape in the size list (n keys 1..64,
 *   head sizes 1..512), from an empty state (m = -inf) and a running one;
 *   m and l within 1e-5 relative of the reference (scores of 512-long dots
 *   summed in another order), acc within 1e-5 (1 + l)
 *   (its terms are e_j v_j <= 1 each: rounding scales with l, not with the
 *   possibly cancelling sum).  The
 *   inputs end at a guard page, so a read past a row faults.
 * - Alignment: the same values at every float offset 0..15 give the same
 *   bits (the result may not depend on where the cache was allocated).
 * - The KV cache's widening (kv_to_f32) of F16 and Q8_0: the reference's
 *   bits, NaNs aside, with rows ending at a guard page.
 * - nn_attention with windows, chunks and sinks, against softmax in float64
 *   over exactly the positions each query may see, <= 1e-5.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel_harness.h"
#include "kernels.h"
#include "nn/nn.h"
#include "testutil.h"

static const int64_t ns[] = {1, 2, 3, 5, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64};
static const int64_t ds[] = {1, 2, 3, 7, 8, 15, 16, 17, 31, 32, 33, 64, 80, 128, 192, 512};

static int rel_ok(double a, double b, double tol)
{
    return fabs(a - b) <= tol * (fabs(b) > 1 ? fabs(b) : 1);
}

START_TEST(kernels_match_the_reference)
{
    const mr_isa isa = (mr_isa)_i;
    mr_kernels kt;
    if (!mr_kernels_for_isa(isa, 0, &kt)) {
        printf("%s: not on this CPU or build, skipped\n", mr_isa_name(isa));
        return;
    }
    size_t cases = 0;
    for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++)
        for (size_t b = 0; b < sizeof ds / sizeof ds[0]; b++)
            for (int running = 0; running < 2; running++) {
                const int64_t n = ns[a], d = ds[b], stride = d + 3;
                const size_t kv_len = sizeof(float) * ((size_t)(n - 1) * stride + d);
                guarded gk = guarded_alloc(kv_len), gv = guarded_alloc(kv_len);
                guarded gq = guarded_alloc(sizeof(float) * (size_t)d);
                float *k = (float *)gk.p, *v = (float *)gv.p, *q = (float *)gq.p;
                for (int64_t i = 0; i < (n - 1) * stride + d; i++) {
                    k[i] = rndf() * 3;
                    v[i] = rndf();
                }
                for (int64_t i = 0; i < d; i++)
                    q[i] = rndf() * 3;
                float acc0[512], acc1[512];
                float m0 = running ? 0.7f : -INFINITY, l0 = running ? 2.5f : 0.0f;
                for (int64_t i = 0; i < d; i++)
                    acc0[i] = acc1[i] = running ? rndf() : 0.0f;
                float m1 = m0, l1 = l0;
                const float scale = 1.0f / sqrtf((float)d);
                mr_attn_block_ref(q, k, stride, v, stride, n, d, d, scale, &m0, &l0, acc0);
                kt.attn_block(q, k, stride, v, stride, n, d, d, scale, &m1, &l1, acc1);
                ck_assert_msg(rel_ok(m1, m0, 1e-5) && rel_ok(l1, l0, 1e-5),
                              "%s n %lld d %lld: m %g vs %g, l %g vs %g", mr_isa_name(isa),
                              (long long)n, (long long)d, m1, m0, l1, l0);
                /* acc sums up to n + 1 terms of magnitude <= l: the error
                 * scales with l, not with the (cancelling) result */
                for (int64_t i = 0; i < d; i++)
                    ck_assert_msg(fabs(acc1[i] - acc0[i]) <= 1e-5 * (1.0 + l0),
                                  "%s n %lld d %lld running %d: acc[%lld] %.9g vs %.9g",
                                  mr_isa_name(isa), (long long)n, (long long)d, running,
                                  (long long)i, acc1[i], acc0[i]);
                /* the same values at another alignment: the same bits */
                for (int off = 1; off < 16; off += 5) {
                    float *k2 = malloc(sizeof(float) * ((size_t)(n - 1) * stride + d + 16));
                    float *v2 = malloc(sizeof(float) * ((size_t)(n - 1) * stride + d + 16));
                    float q2[512 + 16], acc2[512];
                    memcpy(k2 + off, k, sizeof(float) * ((size_t)(n - 1) * stride + d));
                    memcpy(v2 + off, v, sizeof(float) * ((size_t)(n - 1) * stride + d));
                    memcpy(q2 + off, q, sizeof(float) * (size_t)d);
                    float m2 = running ? 0.7f : -INFINITY, l2 = running ? 2.5f : 0.0f;
                    for (int64_t i = 0; i < d; i++)
                        acc2[i] = acc0[i];
                    float m3 = m2, l3 = l2, acc3[512];
                    memcpy(acc3, acc2, sizeof(float) * (size_t)d);
                    kt.attn_block(q2 + off, k2 + off, stride, v2 + off, stride, n, d, d, scale,
                                  &m2, &l2, acc2);
                    kt.attn_block(q, k, stride, v, stride, n, d, d, scale, &m3, &l3, acc3);
                    ck_assert_msg(m2 == m3 && l2 == l3 &&
                                      memcmp(acc2, acc3, sizeof(float) * (size_t)d) == 0,
                                  "%s n %lld d %lld: result depends on alignment (offset %d)",
                                  mr_isa_name(isa), (long long)n, (long long)d, off);
                    free(k2);
                    free(v2);
                }
                guarded_free(&gk);
                guarded_free(&gv);
                guarded_free(&gq);
                cases++;
            }
    printf("%s: attention block matches the reference in %zu cases\n", mr_isa_name(isa), cases);
}
END_TEST

/* nn_attention against float64 softmax over each query's visible keys. */
START_TEST(masks_and_sinks_match_float64)
{
    const uint32_t n_head = 4, n_head_kv = 2, dk = 24, dv = 20, n_tok = 70, pos0 = 30;
    const uint32_t n_pos = pos0 + n_tok;
    static const uint32_t windows[] = {0, 8, 0, 5};
    static const uint32_t chunks[] = {0, 0, 16, 0};
    mr_error err;
    mr_context ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.k = mr_kernels_get();
    ck_assert(mr_pool_new(2, &ctx.pool, &err) == MR_OK);
    float *q = malloc(sizeof(float) * n_tok * n_head * dk);
    float *k = malloc(sizeof(float) * n_pos * n_head_kv * dk);
    float *v = malloc(sizeof(float) * n_pos * n_head_kv * dv);
    float *out = malloc(sizeof(float) * n_tok * n_head * dv);
    float sinks[4] = {0.5f, -1.0f, 2.0f, 0.0f};
    for (size_t i = 0; i < (size_t)n_tok * n_head * dk; i++)
        q[i] = rndf() * 2;
    for (size_t i = 0; i < (size_t)n_pos * n_head_kv * dk; i++)
        k[i] = rndf() * 2;
    for (size_t i = 0; i < (size_t)n_pos * n_head_kv * dv; i++)
        v[i] = rndf();
    for (int variant = 0; variant < 4; variant++) {
        const int with_sinks = variant == 3;
        nn_attn a = {.q = q, .q_stride = n_head * dk, .k = k, .k_stride = n_head_kv * dk,
                     .v = v, .v_stride = n_head_kv * dv, .out = out, .out_stride = n_head * dv,
                     .k_head = dk, .v_head = dv, .n_head = n_head, .n_head_kv = n_head_kv,
                     .dk = dk, .dv = dv, .n_tok = n_tok, .pos0 = pos0, .scale = 0.3f,
                     .sinks = with_sinks ? sinks : NULL, .window = windows[variant],
                     .chunk = chunks[variant]};
        nn_attention(&ctx, &a);
        double worst = 0;
        for (uint32_t t = 0; t < n_tok; t++)
            for (uint32_t h = 0; h < n_head; h++) {
                const uint32_t pos = pos0 + t, kvh = h / (n_head / n_head_kv);
                double s[128], mx = with_sinks ? sinks[h] : -INFINITY, sum = 0;
                int vis[128];
                for (uint32_t p = 0; p < n_pos; p++) {
                    vis[p] = p <= pos && (!a.window || pos - p < a.window) &&
                             (!a.chunk || p / a.chunk == pos / a.chunk);
                    double d = 0;
                    for (uint32_t i = 0; i < dk; i++)
                        d += (double)q[(size_t)t * a.q_stride + h * dk + i] *
                             k[(size_t)p * a.k_stride + kvh * dk + i];
                    s[p] = d * a.scale;
                    if (vis[p] && s[p] > mx)
                        mx = s[p];
                }
                for (uint32_t p = 0; p < n_pos; p++)
                    sum += vis[p] ? exp(s[p] - mx) : 0;
                if (with_sinks)
                    sum += exp(sinks[h] - mx);
                for (uint32_t i = 0; i < dv; i++) {
                    double o = 0;
                    for (uint32_t p = 0; p < n_pos; p++)
                        if (vis[p])
                            o += exp(s[p] - mx) / sum * v[(size_t)p * a.v_stride + kvh * dv + i];
                    const double e = fabs(o - out[(size_t)t * a.out_stride + h * dv + i]);
                    worst = e > worst ? e : worst;
                }
            }
        printf("attention window %u chunk %u sinks %d: max |diff| vs float64 %.3g\n", a.window,
               a.chunk, with_sinks, worst);
        ck_assert_msg(worst <= 1e-5, "variant %d: %g", variant, worst);
    }
    mr_pool_free(ctx.pool);
    free(q);
    free(k);
    free(v);
    free(out);
}
END_TEST

/* Bits equal, or both NaN (a signalling NaN's quiet bit may differ) */
static int same_f32(float a, float b)
{
    return (isnan(a) && isnan(b)) || memcmp(&a, &b, sizeof a) == 0;
}

/* Every kernel set's KV widening (kv_to_f32) gives the type's to_f32 bits:
 * F16 on all 65536 halves and on rows of 1..40 elements that end at a
 * guard page; Q8_0 on random blocks whose scales include 0, -0, a
 * subnormal, the largest half and infinity. */
START_TEST(kv_widening_is_the_reference)
{
    const mr_isa isa = (mr_isa)_i;
    mr_kernels kt;
    if (!mr_kernels_for_isa(isa, 0, &kt)) {
        printf("%s: not on this CPU or build, skipped\n", mr_isa_name(isa));
        return;
    }
    const uint32_t types[] = {MR_TYPE_F16, MR_TYPE_Q8_0};
    for (size_t ti = 0; ti < 2; ti++) {
        const uint32_t t = types[ti];
        const mr_to_f32_fn ref = mr_type_get(t)->to_f32, fn = kt.kv_to_f32[t];
        ck_assert_ptr_nonnull(fn);
        printf("%s %s: %s\n", mr_isa_name(isa), mr_type_get(t)->name,
               fn == ref ? "the reference itself" : "its own kernel, compared");
        if (t == MR_TYPE_F16) {
            enum { N = 65536 };
            guarded g = guarded_alloc(2 * N);
            for (uint32_t h = 0; h < N; h++)
                memcpy(g.p + 2 * h, &(uint16_t){(uint16_t)h}, 2);
            float *a = malloc(sizeof(float) * N), *b = malloc(sizeof(float) * N);
            fn(g.p, a, N);
            ref(g.p, b, N);
            for (uint32_t h = 0; h < N; h++)
                ck_assert_msg(same_f32(a[h], b[h]), "%s: half 0x%04x gives %a, reference %a",
                              mr_isa_name(isa), h, (double)a[h], (double)b[h]);
            for (int64_t n = 1; n <= 40; n++) { /* the row ends at the guard page */
                fn(g.p + 2 * (N - n), a, n);
                ref(g.p + 2 * (N - n), b, n);
                for (int64_t i = 0; i < n; i++)
                    ck_assert_msg(same_f32(a[i], b[i]), "%s: row of %lld, element %lld",
                                  mr_isa_name(isa), (long long)n, (long long)i);
            }
            free(a);
            free(b);
            guarded_free(&g);
        } else {
            static const uint16_t scales[] = {0x0000, 0x8000, 0x0001, 0x7bff, 0x7c00, 0x3c00, 0xb555};
            for (int64_t nb = 1; nb <= 8; nb++) {
                const int64_t n = 32 * nb;
                guarded g = guarded_alloc((size_t)(34 * nb));
                for (int64_t i = 0; i < 34 * nb; i++)
                    g.p[i] = (uint8_t)rnd();
                for (int64_t bk = 0; bk < nb; bk++)
                    memcpy(g.p + 34 * bk, &scales[(size_t)(bk + nb) % 7], 2);
                float a[256], b[256];
                fn(g.p, a, n);
                ref(g.p, b, n);
                for (int64_t i = 0; i < n; i++)
                    ck_assert_msg(same_f32(a[i], b[i]), "%s: Q8_0 %lld blocks, element %lld: %a vs %a",
                                  mr_isa_name(isa), (long long)nb, (long long)i, (double)a[i],
                                  (double)b[i]);
                guarded_free(&g);
            }
        }
    }
}
END_TEST

int main(void)
{
    rng = 0x9E3779B97F4A7C15ull;
    Suite *s = suite_create("attention");
    TCase *tc = tcase_create("attention");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, kernels_match_the_reference, 0, MR_ISA_COUNT);
    tcase_add_loop_test(tc, kv_widening_is_the_reference, 0, MR_ISA_COUNT);
    tcase_add_test(tc, masks_and_sinks_match_float64);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
