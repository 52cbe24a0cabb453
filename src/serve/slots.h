/* slots.h - the server's scheduler: a queue of generation jobs served by a
 * fixed number of slots, each a sequence of one shared context
 * (mr_context_new_seqs).  One thread runs every decode: each step is one
 * batched forward (mr_decode_batch) of a token of every generating slot
 * plus as much of the waiting prompts, oldest first, as the batch holds,
 * so streams share each expert's read.  A new job goes to the free slot
 * whose cache shares the longest prefix with its prompt; that prefix is
 * kept (mr_seq_trim), or a longer one copied from another slot
 * (mr_seq_copy): the prompt cache.  A cancelled job frees its slot at the
 * next step.  On x86 a batch gives each token the bits it gets alone, so
 * an answer does not depend on the other requests. */
#ifndef MOERUN_SERVE_SLOTS_H
#define MOERUN_SERVE_SLOTS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "serve/engine.h"

#define SRV_MAX_STOPS 12

typedef struct srv_job srv_job;
struct srv_job {
    /* input, set before srv_submit */
    int32_t *prompt;
    size_t n_prompt;
    eng_sample_params sp;
    long max_tokens;               /* -1: until the end of turn or the context */
    int ignore_eos;                /* keep going past end-of-turn tokens */
    int special;                   /* the text shows special tokens (<|channel|>) */
    const char *stops[SRV_MAX_STOPS + 1]; /* text that ends the answer */
    char *own[SRV_MAX_STOPS];      /* stops the job owns (freed with it) */
    /* output, under the scheduler's lock */
    char *text;                    /* answer so far (stop strings cut) */
    size_t n_text, cap;
    size_t n_gen, reused;
    const char *finish;            /* "stop", "length", or NULL while running */
    int done, failed, cancelled;
    char error[512];
    int refs;                      /* the submitter's and the scheduler's */
    srv_job *next;
    double t_queued, t_started, t_first, t_done;
};

typedef struct {
    uint64_t requests, prompt_tokens, prompt_reused, gen_tokens, cancelled;
    uint64_t batches, batch_tokens, batch_seqs; /* forwards, their tokens and sequences */
    double gen_seconds, prompt_seconds;
    int busy_slots, queued;
} srv_metrics;

typedef struct srv_sched srv_sched;

/* A slot for each sequence of ctx (made by mr_context_new_seqs with
 * n_batch tokens a batch; the caller frees it after srv_sched_free). */
int srv_sched_new(srv_sched **out, const mr_model *m, const mr_tokenizer *tok, mr_context *ctx,
                  uint32_t n_batch, const eng_eog *eog, mr_error *err);
void srv_sched_free(srv_sched *s);

srv_job *srv_job_new(void);
/* Queue a job (takes a reference); 0, or -1 when the queue is full. */
int srv_submit(srv_sched *s, srv_job *j, size_t max_queue);
/* Wait until the job has more text than *seen or is done, at most
 * timeout_ms; returns with the lock released.  Copies the new text out
 * (malloc'd into *chunk, *n) and reports done. */
void srv_wait(srv_sched *s, srv_job *j, size_t *seen, char **chunk, size_t *n, int *done,
              int timeout_ms);
/* Ask the scheduler to drop the job (client gone); safe at any time. */
void srv_cancel(srv_sched *s, srv_job *j);
/* Drop a reference. */
void srv_job_release(srv_sched *s, srv_job *j);

void srv_get_metrics(srv_sched *s, srv_metrics *m);
int srv_n_slots(const srv_sched *s);
uint32_t srv_n_ctx(const srv_sched *s);

#endif
