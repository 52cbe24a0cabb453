/* engine.h - the generation loop `moerun chat` and `moerun serve` share:
 * a sequence (one context and the tokens its KV cache holds, reused when a
 * new prompt extends them), sampling with OpenAI's presence and frequency
 * penalties, end-of-turn tokens, and stop strings matched on the streamed
 * text.  Library-style: returns mr_status, never prints. */
#ifndef MOERUN_SERVE_ENGINE_H
#define MOERUN_SERVE_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "forward.h"
#include "model.h"
#include "sampler.h"
#include "status.h"
#include "tokenizer.h"

/* Tokenize text (mr_tokenize_ex); parse_special: the text of the
 * vocabulary's control tokens (BOS, EOS, end-of-turn pieces) becomes those
 * tokens, as llama.cpp's parse_special. */
mr_status eng_tokenize(const mr_tokenizer *t, const char *text, size_t len, int add_bos,
                       int parse_special, int32_t **ids, size_t *n, mr_error *err);

/* Ids that end a turn: the tokenizer's end-of-generation set (EOS, EOT,
 * EOM as llama.cpp) and every token whose piece is one of stops. */
typedef struct {
    const mr_tokenizer *tok;
    int32_t ids[16];
    int n;
} eng_eog;
void eng_eog_init(eng_eog *e, const mr_tokenizer *t, const char *const *stops);
int eng_is_eog(const eng_eog *e, int32_t id);

/* One sequence: a context (or one sequence of a context several share:
 * the server's slots) and the tokens its cache holds. */
typedef struct {
    const mr_model *model;
    mr_context *ctx;
    uint32_t seq;      /* its sequence in ctx */
    int own_ctx;       /* ctx is freed with it */
    uint32_t *seq_ids; /* n_batch copies of seq, for mr_decode_batch */
    int32_t *cached;   /* tokens at positions 0..n_cached-1 */
    size_t n_cached, cap;
    float *logits;     /* after the last decoded token */
    float *work;       /* penalised copy for sampling */
    int have_logits;
    uint32_t n_batch;
} eng_seq;

/* Sequence seq of ctx (made with at most n_batch tokens a batch); own_ctx:
 * eng_seq_free frees ctx too (not when this fails). */
mr_status eng_seq_init(eng_seq *s, const mr_model *m, mr_context *ctx, uint32_t seq, int own_ctx,
                       uint32_t n_batch, mr_error *err);
void eng_seq_free(eng_seq *s);
/* Make the cache hold ids[0..n): the longest common prefix of the cached
 * tokens and ids is kept (mr_seq_trim; at least one token is left to
 * decode, for the logits of the prompt's end) and only the rest is
 * decoded.  *reused: tokens not decoded again.  MR_ERANGE if n exceeds the
 * context. */
mr_status eng_seq_prefill(eng_seq *s, const int32_t *ids, size_t n, size_t *reused,
                          mr_error *err);
/* The same in steps (so one long prompt does not stall other slots):
 * begin decides what is reused; each continue decodes at most max more
 * tokens, *done once the cache holds all n. */
mr_status eng_seq_begin(eng_seq *s, const int32_t *ids, size_t n, size_t *reused, mr_error *err);
mr_status eng_seq_continue(eng_seq *s, const int32_t *ids, size_t n, size_t max, int *done,
                           mr_error *err);
/* Decode one more token (a generated one) into the cache. */
mr_status eng_seq_push(eng_seq *s, int32_t id, mr_error *err);
/* Forget the cache. */
void eng_seq_reset(eng_seq *s);
/* Tokens ids[0..n) and the cache share this many leading tokens. */
size_t eng_seq_common(const eng_seq *s, const int32_t *ids, size_t n);
/* Keep the first n cached tokens; returns how many are kept (fewer when a
 * sliding-window ring has moved on: mr_seq_trim). */
size_t eng_seq_keep(eng_seq *s, size_t n);
/* Make dst (a sequence of the same context as src) hold src's first n
 * tokens, copied, not decoded again (mr_seq_copy); returns how many. */
size_t eng_seq_copy(eng_seq *dst, const eng_seq *src, size_t n);

/* One forward over runs of tokens of several sequences of one context
 * (each sequence at most once): run i decodes ids[i][0..n[i]) into seqs[i],
 * whose logits are then those after its last token.  tok and sid hold
 * the batch (sum of n[i] <= the context's n_batch; unused, may be NULL,
 * for one run), lbuf n_runs x n_vocab floats.  On failure every sequence of the batch is reset (what its cache
 * holds is unknown). */
mr_status eng_decode_runs(eng_seq *const *seqs, const int32_t *const *ids, const size_t *n,
                          int n_runs, int32_t *tok, uint32_t *sid, float *lbuf, mr_error *err);

/* Sampling for one request. */
typedef struct {
    mr_sampler_params sp;
    float presence_penalty, frequency_penalty; /* OpenAI semantics, 0 = off */
} eng_sample_params;

typedef struct {
    mr_sampler *smp;
    eng_sample_params p;
    uint32_t *counts; /* generated-token counts for the penalties (n_vocab) */
    int32_t n_vocab;
} eng_sampler;

mr_status eng_sampler_init(eng_sampler *s, const eng_sample_params *p, int32_t n_vocab,
                           mr_error *err);
void eng_sampler_free(eng_sampler *s);
/* Choose the next token from the sequence's logits. */
int32_t eng_sample(eng_sampler *s, eng_seq *q);
/* Record a generated token (repeat/presence/frequency penalties). */
void eng_sampler_accept(eng_sampler *s, int32_t id, int generated);

/* Stop strings on streamed text: text is held back while it could still
 * become the start of a stop string. */
typedef struct {
    const char *const *stops; /* NULL-terminated, may be NULL */
    char *text;               /* all text so far */
    size_t n, cap, emitted;   /* bytes already handed out */
    int stopped;
} eng_stop;

void eng_stop_init(eng_stop *s, const char *const *stops);
void eng_stop_free(eng_stop *s);
/* Add text; *out, *out_n: the bytes now safe to show.  Returns 1 once a
 * stop string has appeared (the text is cut before it), -1 on no memory. */
int eng_stop_push(eng_stop *s, const char *p, size_t n, const char **out, size_t *out_n);
/* At the end: the held-back rest. */
void eng_stop_finish(eng_stop *s, const char **out, size_t *out_n);

#endif
