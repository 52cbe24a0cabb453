/* sampler.h - next-token choice from logits: greedy, temperature, top-k,
 * top-p, min-p, repeat penalty, seeded RNG (same seed, same text). */
#ifndef MOERUN_SAMPLER_H
#define MOERUN_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

typedef struct {
    float temp;           /* <= 0: greedy (argmax, ties to the lower id) */
    int32_t top_k;        /* <= 0: off */
    float top_p;          /* >= 1: off */
    float min_p;          /* <= 0: off */
    float repeat_penalty; /* 1: off; llama.cpp semantics */
    int32_t repeat_last_n;/* how many recent tokens the penalty looks at */
    uint64_t seed;
} mr_sampler_params;

/* llama.cpp's defaults: temp 0.8, top-k 40, top-p 0.95, min-p 0.05,
 * repeat penalty 1.0 over the last 64 tokens, seed 0xFFFFFFFF. */
void mr_sampler_params_default(mr_sampler_params *p);

typedef struct mr_sampler mr_sampler;

mr_status mr_sampler_new(const mr_sampler_params *p, int32_t n_vocab, mr_sampler **out,
                         mr_error *err);
void mr_sampler_free(mr_sampler *s);

/* Remember a token (prompt or generated) for the repeat penalty. */
void mr_sampler_accept(mr_sampler *s, int32_t id);

/* Choose the next token from n_vocab logits (not modified). */
int32_t mr_sampler_sample(mr_sampler *s, const float *logits);

#endif
