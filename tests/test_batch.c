/* test_batch.c - several sequences in one context (mr_context_new_seqs,
 * mr_decode_batch) against each sequence decoded alone, on the family
 * fixtures of shared/models/ (skipped, exit 77, when MOERUN_TESTDATA is
 * absent).  The forward promises that no (token, row) result depends on
 * the batch it came in, so the tolerance is zero: logits must be
 * bit-identical.  For each file:
 * - three sequences of 90, 37 and 70 tokens interleaved in batches of up
 *   to 8 (chunks of 1..5 tokens, the sequences in changing order, some
 *   steps asking only each run's last logits) give the logits of each
 *   decoded alone in chunks of 8 (gpt-oss: the 8-key sliding layers run on
 *   rings of 64 rows that wrap; Llama 4: chunked attention of 8);
 * - mr_seq_trim then decoding new tokens equals a fresh decode of the kept
 *   prefix and the new tokens, and mr_seq_copy of a prefix into another
 *   sequence likewise; a trim past what a ring still holds keeps nothing;
 * - a batch whose sequence is split, an unknown sequence, and a full
 *   sequence are refused.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../quant/types.h"
#include "forward.h"
#include "testutil.h"

typedef struct {
    const char *gguf; /* under models/ */
    int exact;
    int ring;         /* has sliding-window rings at n_ctx 160, n_batch 8 */
} batch_case;

static const batch_case cases[] = {
    {"tinymix-gguf/tinymix-Q8_0.gguf", 0, 0},
    {"tinyqwen3moe/gguf/tinyqwen3moe-q8_0.gguf", 0, 0},
    {"tinygptoss/gguf/tinygptoss-mxfp4.gguf", 0, 1},
    {"tinygptoss/gguf/tinygptoss-mxfp4.gguf", 1, 1},
    {"tinyllama4/gguf/tinyllama4-f32.gguf", 0, 0},
    {"tinydeepseek3/gguf/tinydeepseek3-bf16.gguf", 0, 0},
};
#define N_CASES (sizeof cases / sizeof cases[0])

#define N_CTX 160
#define N_BATCH 8
#define N_SEQ 3

static const char *data;

typedef struct {
    mr_model *m;
    mr_expert_store *st;
    uint32_t nv;
} fixture;

static void open_fixture(fixture *f, const batch_case *bc)
{
    mr_error err;
    ck_assert_msg(mr_model_load(tu_path("%s/models/%s", data, bc->gguf), &f->m, &err) == 0, "%s",
                  err.msg);
    ck_assert(mr_store_resident_new(f->m, &f->st, &err) == 0);
    f->nv = f->m->hp.n_vocab;
}

static void close_fixture(fixture *f)
{
    mr_expert_store_free(f->st);
    mr_model_free(f->m);
}

/* Deterministic token ids in [1, nv). */
static int32_t *some_ids(uint32_t seed, size_t n, uint32_t nv)
{
    int32_t *ids = malloc(n * sizeof *ids);
    ck_assert(ids);
    uint32_t x = seed * 2654435761u + 12345u;
    for (size_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        ids[i] = (int32_t)(1 + (x >> 8) % (nv - 1));
    }
    return ids;
}

/* All n rows of logits of ids decoded alone, in chunks of N_BATCH. */
static float *alone(const fixture *f, int exact, const int32_t *ids, size_t n)
{
    mr_error err;
    mr_context *c;
    ck_assert_msg(mr_context_new(f->m, f->st, N_CTX, N_BATCH, &c, &err) == 0, "%s", err.msg);
    mr_context_set_exact(c, exact);
    float *lg = malloc(sizeof(float) * n * f->nv);
    ck_assert(lg);
    for (size_t i = 0; i < n; i += N_BATCH) {
        const uint32_t k = (uint32_t)(n - i < N_BATCH ? n - i : N_BATCH);
        ck_assert_msg(mr_decode(c, ids + i, k, lg + i * f->nv, 1, &err) == 0, "%s", err.msg);
    }
    mr_context_free(c);
    return lg;
}

/* ids[0..n_keep) then more[0..n_more) alone: the logits of the last n_more. */
static float *alone_after(const fixture *f, int exact, const int32_t *ids, size_t n_keep,
                          const int32_t *more, size_t n_more)
{
    int32_t *all = malloc((n_keep + n_more) * sizeof *all);
    ck_assert(all);
    memcpy(all, ids, n_keep * sizeof *all);
    memcpy(all + n_keep, more, n_more * sizeof *all);
    float *lg = alone(f, exact, all, n_keep + n_more);
    memmove(lg, lg + n_keep * f->nv, n_more * f->nv * sizeof(float));
    free(all);
    return lg;
}

static void same_rows(const float *got, const float *want, size_t rows, uint32_t nv,
                      const char *what, const char *file)
{
    if (memcmp(got, want, rows * nv * sizeof(float)) != 0)
        ck_abort_msg("%s: %s differs from the sequence alone by up to %g", file, what,
                     tu_max_abs_diff(got, want, rows * nv));
}

/* Decode more[0..n) into sequence q of c, alone in its batches of up to
 * N_BATCH but behind one token of sequence `other` (so the batch has two
 * runs); the logits of every token of q. */
static float *decode_into(mr_context *c, const fixture *f, uint32_t q, uint32_t other,
                          int32_t other_tok, const int32_t *more, size_t n)
{
    mr_error err;
    float *lg = malloc(sizeof(float) * (n + 1) * f->nv);
    float *rows = malloc(sizeof(float) * N_BATCH * f->nv);
    ck_assert(lg && rows);
    for (size_t i = 0; i < n; i += N_BATCH - 1) {
        const uint32_t k = (uint32_t)(n - i < N_BATCH - 1 ? n - i : N_BATCH - 1);
        int32_t toks[N_BATCH];
        uint32_t seqs[N_BATCH];
        toks[0] = other_tok;
        seqs[0] = other;
        for (uint32_t j = 0; j < k; j++) {
            toks[1 + j] = more[i + j];
            seqs[1 + j] = q;
        }
        ck_assert_msg(mr_decode_batch(c, toks, seqs, k + 1, rows, 1, &err) == 0, "%s", err.msg);
        memcpy(lg + i * f->nv, rows + f->nv, (size_t)k * f->nv * sizeof(float));
    }
    free(rows);
    return lg;
}

START_TEST(interleaved_equals_alone)
{
    const batch_case *bc = &cases[_i];
    fixture f;
    mr_error err;
    open_fixture(&f, bc);
    const size_t len[N_SEQ] = {90, 37, 70};
    int32_t *ids[N_SEQ];
    float *want[N_SEQ], *got[N_SEQ];
    size_t done[N_SEQ] = {0};
    for (int q = 0; q < N_SEQ; q++) {
        ids[q] = some_ids((uint32_t)q + 1, len[q] + 16, f.nv);
        want[q] = alone(&f, bc->exact, ids[q], len[q]);
        got[q] = calloc(len[q] * f.nv, sizeof(float));
        ck_assert(got[q]);
    }
    mr_context *c;
    ck_assert_msg(mr_context_new_seqs(f.m, f.st, N_CTX, N_BATCH, MR_TYPE_F32, MR_TYPE_F32,
                                      N_SEQ + 1, &c, &err) == 0,
                  "%s", err.msg);
    mr_context_set_exact(c, bc->exact);
    ck_assert_uint_eq(mr_context_n_seq(c), N_SEQ + 1);
    float *rows = malloc(sizeof(float) * N_BATCH * f.nv);
    ck_assert(rows);
    const uint32_t pattern[] = {3, 1, 5, 2, 4, 1, 1, 2};
    for (uint32_t step = 0;; step++) {
        int32_t toks[N_BATCH];
        uint32_t seqs[N_BATCH], n = 0, run_q[N_SEQ], run_end[N_SEQ], n_runs = 0;
        for (int r = 0; r < N_SEQ && n < N_BATCH; r++) {
            const uint32_t q = (step + (uint32_t)r * (step % 2 ? 1 : 2)) % N_SEQ;
            int seen = 0;
            for (uint32_t i = 0; i < n_runs; i++)
                seen |= run_q[i] == q;
            if (seen || done[q] == len[q])
                continue;
            uint32_t k = pattern[(step + q) % 8];
            if (k > len[q] - done[q])
                k = (uint32_t)(len[q] - done[q]);
            if (k > N_BATCH - n)
                k = N_BATCH - n;
            for (uint32_t j = 0; j < k; j++) {
                toks[n + j] = ids[q][done[q] + j];
                seqs[n + j] = q;
            }
            n += k;
            done[q] += k;
            run_q[n_runs] = q;
            run_end[n_runs++] = n;
        }
        if (n == 0)
            break;
        const int all = step % 3 != 2;
        ck_assert_msg(mr_decode_batch(c, toks, seqs, n, rows, all, &err) == 0, "%s", err.msg);
        /* scatter back to each sequence's positions */
        uint32_t t0 = 0;
        for (uint32_t r = 0; r < n_runs; r++) {
            const uint32_t q = run_q[r], k = run_end[r] - t0;
            const size_t p0 = done[q] - k;
            if (all)
                memcpy(got[q] + p0 * f.nv, rows + (size_t)t0 * f.nv, (size_t)k * f.nv * 4);
            else /* only the last token's row: the reference fills the rest */
                memcpy(got[q] + (p0 + k - 1) * f.nv, rows + (size_t)r * f.nv, f.nv * 4),
                    memcpy(got[q] + p0 * f.nv, want[q] + p0 * f.nv, (size_t)(k - 1) * f.nv * 4);
            t0 = run_end[r];
        }
    }
    for (int q = 0; q < N_SEQ; q++) {
        ck_assert_uint_eq(mr_seq_n_past(c, (uint32_t)q), len[q]);
        same_rows(got[q], want[q], len[q], f.nv, tu_path("sequence %d", q), bc->gguf);
    }

    /* trim sequence 0 to 60 and go on with new tokens, beside one token of
     * sequence 1 in every batch */
    int32_t *more = some_ids(99, 12, f.nv);
    ck_assert_uint_eq(mr_seq_trim(c, 0, 60), 60);
    float *g = decode_into(c, &f, 0, 1, ids[1][37], more, 12);
    float *w = alone_after(&f, bc->exact, ids[0], 60, more, 12);
    same_rows(g, w, 12, f.nv, "trimmed sequence 0", bc->gguf);
    free(g);
    free(w);
    /* sequence 1 got one token in each of the two batches */
    ck_assert_uint_eq(mr_seq_n_past(c, 1), 39);

    /* the first 50 positions of sequence 2 copied into sequence 3 */
    ck_assert_uint_eq(mr_seq_copy(c, 3, 2, 50), 50);
    ck_assert_uint_eq(mr_seq_n_past(c, 2), 70);
    g = decode_into(c, &f, 3, 2, ids[2][70], more, 10);
    w = alone_after(&f, bc->exact, ids[2], 50, more, 10);
    same_rows(g, w, 10, f.nv, "copied prefix", bc->gguf);
    free(g);
    free(w);

    /* sequence 0 holds 72 positions; keeping 5 needs position 0's key, which
     * a ring of 64 rows has overwritten */
    const uint32_t kept = mr_seq_trim(c, 0, 5);
    ck_assert_uint_eq(kept, (bc->ring ? 0u : 5u));
    g = decode_into(c, &f, 0, 1, ids[1][39], more, 9);
    w = alone_after(&f, bc->exact, ids[0], kept, more, 9);
    same_rows(g, w, 9, f.nv, "sequence 0 after a deep trim", bc->gguf);
    free(g);
    free(w);

    /* refused batches */
    {
        const int32_t t3[3] = {1, 2, 3};
        const uint32_t split[3] = {0, 1, 0}, bad[1] = {N_SEQ + 1};
        ck_assert_int_eq(mr_decode_batch(c, t3, split, 3, NULL, 0, &err), MR_EINVAL);
        ck_assert_int_eq(mr_decode_batch(c, t3, bad, 1, NULL, 0, &err), MR_EINVAL);
        mr_seq_reset(c, 2);
        ck_assert_uint_eq(mr_seq_n_past(c, 2), 0);
        ck_assert_uint_eq(mr_seq_trim(c, 3, 1000), mr_seq_n_past(c, 3)); /* nothing to drop */
    }
    free(more);
    free(rows);
    for (int q = 0; q < N_SEQ; q++) {
        free(ids[q]);
        free(want[q]);
        free(got[q]);
    }
    mr_context_free(c);
    close_fixture(&f);
}
END_TEST

/* A sequence that is full is refused while the others go on. */
START_TEST(full_sequence_refused)
{
    fixture f;
    mr_error err;
    open_fixture(&f, &cases[0]);
    mr_context *c;
    ck_assert(mr_context_new_seqs(f.m, f.st, 4, 4, MR_TYPE_F32, MR_TYPE_F32, 2, &c, &err) == 0);
    const int32_t t[4] = {1, 2, 3, 4};
    const uint32_t s0[4] = {0, 0, 0, 0}, s01[2] = {0, 1};
    ck_assert_int_eq(mr_decode_batch(c, t, s0, 4, NULL, 0, &err), MR_OK);
    ck_assert_int_eq(mr_decode_batch(c, t, s01, 2, NULL, 0, &err), MR_ERANGE);
    ck_assert_uint_eq(mr_seq_n_past(c, 1), 0); /* nothing was decoded */
    ck_assert_int_eq(mr_decode_batch(c, t, s01 + 1, 1, NULL, 0, &err), MR_OK);
    ck_assert_uint_eq(mr_seq_n_past(c, 1), 1);
    ck_assert_uint_eq(mr_context_n_past(c), 4);
    mr_context_reset(c);
    ck_assert_uint_eq(mr_seq_n_past(c, 0) + mr_seq_n_past(c, 1), 0);
    mr_context *none;
    ck_assert_int_eq(
        mr_context_new_seqs(f.m, f.st, 4, 4, MR_TYPE_F32, MR_TYPE_F32, 0, &none, &err),
        MR_EINVAL);
    mr_context_free(c);
    close_fixture(&f);
}
END_TEST

int main(void)
{
    data = tu_testdata_or_skip();
    Suite *s = suite_create("batch");
    TCase *tc = tcase_create("batch");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, interleaved_equals_alone, 0, N_CASES);
    tcase_add_test(tc, full_sequence_refused);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
