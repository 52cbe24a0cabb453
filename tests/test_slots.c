/* test_slots.c - the server's scheduler (src/serve/slots.c) on the shipped
 * demo model, greedy:
 * - six requests submitted at once to four slots, decoded in shared
 *   batches (the metrics must show batches of several sequences), each
 *   give the text the same request gives alone on a scheduler of one slot
 *   (the forward promises that no token's logits depend on its batch);
 * - the prompt cache: a request sharing a long prefix with a busy slot's
 *   cache copies that prefix (mr_seq_copy) instead of decoding it again,
 *   and one that diverges from a free slot's cache part-way keeps the
 *   common part (mr_seq_trim); both answers equal the request alone;
 * - the same with a Q8_0 KV cache (-ctk/-ctv q8_0).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../quant/types.h"
#include "serve/slots.h"
#include "testutil.h"

static mr_model *model;
static mr_tokenizer *tok;
static mr_expert_store *store;
static eng_eog eog;

static void setup(void)
{
    mr_error err;
    const char *path = tu_path("%s/models/tinymix-Q8_0.gguf", tu_srcdir());
    ck_assert_msg(mr_model_load(path, &model, &err) == 0, "%s", err.msg);
    ck_assert(mr_tokenizer_load(model->gguf, &tok, &err) == 0);
    ck_assert(mr_store_resident_new(model, &store, &err) == 0);
    eng_eog_init(&eog, tok, NULL);
}

static void teardown(void)
{
    mr_expert_store_free(store);
    mr_tokenizer_free(tok);
    mr_model_free(model);
}

typedef struct {
    mr_context *ctx;
    srv_sched *s;
} sched;

static void sched_open(sched *q, int n_slots, uint32_t kv)
{
    mr_error err;
    ck_assert_msg(mr_context_new_seqs(model, store, 1024, 64, kv, kv, (uint32_t)n_slots, &q->ctx,
                                      &err) == 0, "%s", err.msg);
    ck_assert(mr_context_set_threads(q->ctx, 1, &err) == 0);
    ck_assert_msg(srv_sched_new(&q->s, model, tok, q->ctx, 64, &eog, &err) == 0, "%s", err.msg);
}

static void sched_close(sched *q)
{
    srv_sched_free(q->s);
    mr_context_free(q->ctx);
}

static srv_job *job(const char *text, long max_tokens, int ignore_eos)
{
    srv_job *j = srv_job_new();
    mr_error err;
    ck_assert(j);
    ck_assert(eng_tokenize(tok, text, strlen(text), 1, 0, &j->prompt, &j->n_prompt, &err) == 0);
    mr_sampler_params_default(&j->sp.sp);
    j->sp.sp.temp = 0;
    j->max_tokens = max_tokens;
    j->ignore_eos = ignore_eos;
    return j;
}

/* Wait for j to end (or, until_text, to have some text); its text. */
static char *wait_job(sched *q, srv_job *j, int until_text)
{
    size_t seen = 0, cap = 1, n;
    char *all = calloc(1, 1), *chunk;
    int done = 0;
    for (int spins = 0; !done && spins < 100000; spins++) {
        srv_wait(q->s, j, &seen, &chunk, &n, &done, 100);
        if (n) {
            all = realloc(all, cap + n);
            memcpy(all + cap - 1, chunk, n);
            cap += n;
            all[cap - 1] = 0;
        }
        free(chunk);
        if (until_text && cap > 1)
            break;
    }
    return all;
}

/* The answer to text on a fresh scheduler of one slot. */
static char *alone(const char *text, long max_tokens, uint32_t kv)
{
    sched q;
    sched_open(&q, 1, kv);
    srv_job *j = job(text, max_tokens, 0);
    ck_assert(srv_submit(q.s, j, 8) == 0);
    char *t = wait_job(&q, j, 0);
    ck_assert_msg(!j->failed, "%s", j->error);
    srv_job_release(q.s, j);
    sched_close(&q);
    return t;
}

static const char *const prompts[] = {
    "Once upon a time there was a little fox",
    "The old man walked to the sea and",
    "Tom had a red ball. One day",
    "Lily liked to sing",
    "The sun was hot and the children",
    "A small bird sat on a tree. It",
};
#define N_PROMPTS (sizeof prompts / sizeof prompts[0])

static void together(uint32_t kv)
{
    char *want[N_PROMPTS];
    for (size_t i = 0; i < N_PROMPTS; i++)
        want[i] = alone(prompts[i], 24 + (long)i * 3, kv);
    sched q;
    sched_open(&q, 4, kv);
    srv_job *j[N_PROMPTS];
    for (size_t i = 0; i < N_PROMPTS; i++) {
        j[i] = job(prompts[i], 24 + (long)i * 3, 0);
        ck_assert(srv_submit(q.s, j[i], 16) == 0);
    }
    for (size_t i = 0; i < N_PROMPTS; i++) {
        char *got = wait_job(&q, j[i], 0);
        ck_assert_msg(!j[i]->failed, "%s", j[i]->error);
        ck_assert_msg(!strcmp(got, want[i]), "request %zu together: '%s'\nalone: '%s'", i, got,
                      want[i]);
        free(got);
        free(want[i]);
        srv_job_release(q.s, j[i]);
    }
    srv_metrics m;
    srv_get_metrics(q.s, &m);
    ck_assert_msg(m.batch_seqs > m.batches + m.batches / 2,
                  "%llu sequences in %llu batches: the slots were not batched",
                  (unsigned long long)m.batch_seqs, (unsigned long long)m.batches);
    sched_close(&q);
}

START_TEST(together_equals_alone)
{
    together(MR_TYPE_F16);
}
END_TEST

START_TEST(together_equals_alone_q8_0_cache)
{
    together(MR_TYPE_Q8_0);
}
END_TEST

#define SHARED "You are a helpful assistant who tells short stories to children about animals. "

START_TEST(prefix_copied_from_a_busy_slot)
{
    const char *b_text = SHARED "Tell me about a dog.";
    char *want = alone(b_text, 8, MR_TYPE_F16);
    sched q;
    sched_open(&q, 2, MR_TYPE_F16);
    /* a runs until the context ends, holding its slot */
    srv_job *a = job(SHARED "Tell me about a cat.", -1, 1);
    ck_assert(srv_submit(q.s, a, 8) == 0);
    free(wait_job(&q, a, 1));
    srv_job *b = job(b_text, 8, 0);
    ck_assert(srv_submit(q.s, b, 8) == 0);
    char *got = wait_job(&q, b, 0);
    ck_assert_msg(!b->failed, "%s", b->error);
    ck_assert_msg(!a->done, "the first request ended before the second: nothing shown");
    size_t n_shared = 0;
    int32_t *ids;
    mr_error err;
    ck_assert(eng_tokenize(tok, SHARED "Tell me about a", strlen(SHARED "Tell me about a"), 1, 0,
                           &ids, &n_shared, &err) == 0);
    free(ids);
    ck_assert_msg(b->reused + 2 >= n_shared, "reused %zu of the %zu shared tokens", b->reused,
                  n_shared);
    ck_assert_msg(!strcmp(got, want), "with a copied prefix: '%s'\nalone: '%s'", got, want);
    srv_cancel(q.s, a);
    free(wait_job(&q, a, 0));
    srv_job_release(q.s, a);
    srv_job_release(q.s, b);
    free(got);
    free(want);
    sched_close(&q);
}
END_TEST

START_TEST(common_part_kept_when_a_prompt_diverges)
{
    const char *second = SHARED "Tell me about a horse in a field.";
    char *want = alone(second, 8, MR_TYPE_F16);
    sched q;
    sched_open(&q, 1, MR_TYPE_F16);
    srv_job *a = job(SHARED "Tell me about a cat.", 6, 0);
    ck_assert(srv_submit(q.s, a, 8) == 0);
    free(wait_job(&q, a, 0));
    srv_job *b = job(second, 8, 0);
    ck_assert(srv_submit(q.s, b, 8) == 0);
    char *got = wait_job(&q, b, 0);
    ck_assert_msg(!b->failed, "%s", b->error);
    ck_assert_msg(b->reused > 10 && b->reused < b->n_prompt, "reused %zu of %zu", b->reused,
                  b->n_prompt);
    ck_assert_msg(!strcmp(got, want), "after a trim: '%s'\nalone: '%s'", got, want);
    srv_job_release(q.s, a);
    srv_job_release(q.s, b);
    free(got);
    free(want);
    sched_close(&q);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("slots");
    TCase *tc = tcase_create("slots");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, together_equals_alone);
    tcase_add_test(tc, together_equals_alone_q8_0_cache);
    tcase_add_test(tc, prefix_copied_from_a_busy_slot);
    tcase_add_test(tc, common_part_kept_when_a_prompt_diverges);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
