/* sampler.c - next-token choice from logits.
 *
 * Pipeline (temp > 0):
 *   repeat penalty (llama.cpp: each distinct token among the last
 *   repeat_last_n accepted has its logit divided by the penalty if positive,
 *   multiplied if not) -> top-k (partial selection with a k-sized heap) ->
 *   softmax -> top-p (smallest prefix whose probability reaches p, at least
 *   one) -> min-p (drop p < min_p * p_max) -> temperature on what is left
 *   -> one draw from xoshiro256** seeded by splitmix64.  This is
 *   llama.cpp's default chain: the filters see the untempered distribution.
 * temp <= 0: the repeat penalty, then argmax (ties to the lower id).
 * NaN logits are treated as -inf.  The input logits are never modified.
 */
#include "sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_REPEAT_LAST_N (1 << 20)

typedef struct {
    float logit;
    int32_t id;
    double p; /* double: at high temperatures near-ties must stay apart */
} cand;

struct mr_sampler {
    mr_sampler_params p;
    int32_t n_vocab;
    uint64_t rng[4];      /* xoshiro256** state */
    int32_t *hist;        /* ring of the last repeat_last_n accepted ids */
    size_t hist_cap, hist_n, hist_pos;
    float *work;          /* [n_vocab] penalised logits */
    uint32_t *stamp;      /* [n_vocab] dedupes history ids per call */
    uint32_t stamp_now;
    cand *cands;          /* [n_vocab] */
};

/* Fill p with llama.cpp's defaults (listed in sampler.h). */
void mr_sampler_params_default(mr_sampler_params *p)
{
    p->temp = 0.8f;
    p->top_k = 40;
    p->top_p = 0.95f;
    p->min_p = 0.05f;
    p->repeat_penalty = 1.0f;
    p->repeat_last_n = 64;
    p->seed = 0xFFFFFFFFu;
}

/* ------------------------------------------------------------------ RNG */

/* splitmix64 step: advances *x and returns a well-mixed 64-bit value. */
static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* x rotated left by k (1..63) bits. */
static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* xoshiro256** step: the next 64 random bits. */
static uint64_t rng_next(uint64_t s[4])
{
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* A uniform double in [0, 1) with 53 random bits. */
static double rng_uniform(uint64_t s[4])
{
    return (double)(rng_next(s) >> 11) * (1.0 / 9007199254740992.0);
}

/* -------------------------------------------------------- construction */

/* Check p, allocate the work buffers and seed the PRNG from p->seed.
 * MR_EINVAL for a non-positive vocabulary, NaN temp/top_p/min_p, a
 * non-positive or infinite repeat_penalty or repeat_last_n above 2^20. */
mr_status mr_sampler_new(const mr_sampler_params *p, int32_t n_vocab, mr_sampler **out,
                         mr_error *err)
{
    *out = NULL;
    if (n_vocab <= 0)
        return mr_fail(err, MR_EINVAL, NULL, "n_vocab", MR_NO_OFFSET,
                       "vocabulary size %d is not positive", n_vocab);
    if (isnan(p->temp) || isnan(p->top_p) || isnan(p->min_p))
        return mr_fail(err, MR_EINVAL, NULL, "sampler params", MR_NO_OFFSET,
                       "temp, top_p and min_p must not be NaN");
    if (!(p->repeat_penalty > 0.0f) || isinf(p->repeat_penalty))
        return mr_fail(err, MR_EINVAL, NULL, "repeat_penalty", MR_NO_OFFSET,
                       "%g is not a positive finite number", (double)p->repeat_penalty);
    if (p->repeat_last_n > MAX_REPEAT_LAST_N)
        return mr_fail(err, MR_EINVAL, NULL, "repeat_last_n", MR_NO_OFFSET,
                       "%d is above the limit %d", p->repeat_last_n, MAX_REPEAT_LAST_N);
    mr_sampler *s = calloc(1, sizeof *s);
    if (!s)
        return mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory for a sampler");
    s->p = *p;
    s->n_vocab = n_vocab;
    s->hist_cap = p->repeat_last_n > 0 ? (size_t)p->repeat_last_n : 0;
    s->hist = malloc((s->hist_cap ? s->hist_cap : 1) * sizeof *s->hist);
    s->work = malloc((size_t)n_vocab * sizeof *s->work);
    s->stamp = calloc((size_t)n_vocab, sizeof *s->stamp);
    s->cands = malloc((size_t)n_vocab * sizeof *s->cands);
    if (!s->hist || !s->work || !s->stamp || !s->cands) {
        mr_sampler_free(s);
        return mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET,
                       "no memory for a sampler over %d tokens", n_vocab);
    }
    uint64_t x = p->seed;
    for (int i = 0; i < 4; i++)
        s->rng[i] = splitmix64(&x);
    *out = s;
    return MR_OK;
}

/* Release s; NULL is a no-op. */
void mr_sampler_free(mr_sampler *s)
{
    if (!s)
        return;
    free(s->hist);
    free(s->work);
    free(s->stamp);
    free(s->cands);
    free(s);
}

/* Out-of-range ids are ignored; with repeat_last_n <= 0 nothing is kept
 * (the penalty is off). */
void mr_sampler_accept(mr_sampler *s, int32_t id)
{
    if (!s->hist_cap || id < 0 || id >= s->n_vocab)
        return;
    s->hist[s->hist_pos] = id;
    s->hist_pos = (s->hist_pos + 1) % s->hist_cap;
    if (s->hist_n < s->hist_cap)
        s->hist_n++;
}

/* ------------------------------------------------------------- sampling */

/* Copy logits into s->work (NaN -> -inf) and apply the repeat penalty once
 * per distinct token of the window. */
static void penalise(mr_sampler *s, const float *logits)
{
    for (int32_t i = 0; i < s->n_vocab; i++)
        s->work[i] = isnan(logits[i]) ? -INFINITY : logits[i];
    float pen = s->p.repeat_penalty;
    if (pen == 1.0f || s->hist_n == 0)
        return;
    if (++s->stamp_now == 0) { /* wrapped: forget every old mark */
        memset(s->stamp, 0, (size_t)s->n_vocab * sizeof *s->stamp);
        s->stamp_now = 1;
    }
    for (size_t i = 0; i < s->hist_n; i++) {
        int32_t id = s->hist[i];
        if (s->stamp[id] == s->stamp_now)
            continue;
        s->stamp[id] = s->stamp_now;
        float *l = &s->work[id];
        *l = *l > 0.0f ? *l / pen : *l * pen;
    }
}

/* Whether a ranks before b: higher logit, then lower id. */
static int cand_before(const cand *a, const cand *b)
{
    if (a->logit != b->logit)
        return a->logit > b->logit;
    return a->id < b->id;
}

/* qsort comparator for cand_before order. */
static int cmp_cand(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (cand_before(x, y)) return -1;
    if (cand_before(y, x)) return 1;
    return 0;
}

/* Restore the "worst at the root" heap property below index i. */
static void worst_heap_down(cand *h, size_t n, size_t i)
{
    cand v = h[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && cand_before(&h[c], &h[c + 1]))
            c++; /* the worse child */
        if (!cand_before(&v, &h[c]))
            break;
        h[i] = h[c];
        i = c;
    }
    h[i] = v;
}

/* Rearrange c[0..n) so that c[0..m) holds the m best, sorted best first
 * (the rest in no order): a "worst at the root" heap of m, O(n log m). */
static void partial_sort(cand *c, size_t n, size_t m)
{
    if (m < n) {
        for (size_t i = m / 2; i-- > 0;)
            worst_heap_down(c, m, i);
        for (size_t i = m; i < n; i++) {
            if (cand_before(&c[i], &c[0])) {
                cand t = c[0];
                c[0] = c[i];
                c[i] = t;
                worst_heap_down(c, m, 0);
            }
        }
    }
    qsort(c, m < n ? m : n, sizeof *c, cmp_cand);
}

/* Argmax of s->work, ties to the lower id. */
static int32_t argmax(const mr_sampler *s)
{
    int32_t best = 0;
    for (int32_t i = 1; i < s->n_vocab; i++)
        if (s->work[i] > s->work[best])
            best = i;
    return best;
}

/* One draw from probabilities c[0..n) (not necessarily normalised). */
static int32_t draw(mr_sampler *s, const cand *c, size_t n, double total)
{
    double u = rng_uniform(s->rng) * total, acc = 0.0;
    for (size_t i = 0; i < n; i++) {
        acc += c[i].p;
        if (u < acc)
            return c[i].id;
    }
    return c[n - 1].id; /* rounding left u at the very top */
}

/* The pipeline of the file comment, arranged to sort as little as it can:
 * top-k is a partial sort; min-p is applied before top-p (both keep a
 * prefix of the sorted candidates and top-p's mass is taken over all of
 * them, so the cut is the same); top-p sorts a growing prefix until it holds
 * the mass it needs; with no top-p cut nothing needs to be in order. */
int32_t mr_sampler_sample(mr_sampler *s, const float *logits)
{
    penalise(s, logits);
    if (!(s->p.temp > 0.0f))
        return argmax(s);

    cand *c = s->cands;
    size_t n = (size_t)s->n_vocab, best = 0;
    for (size_t i = 0; i < n; i++)
        c[i] = (cand){s->work[i], (int32_t)i, 0.0};
    int sorted = 0; /* whether c[0..n) is in order */
    if (s->p.top_k > 0 && (size_t)s->p.top_k < n) {
        partial_sort(c, n, (size_t)s->p.top_k);
        n = (size_t)s->p.top_k;
        sorted = 1;
    } else {
        for (size_t i = 1; i < n; i++)
            if (cand_before(&c[i], &c[best]))
                best = i;
    }
    if (isinf(c[best].logit))
        return c[best].id; /* all -inf, or +inf wins outright: the lowest such id */

    /* softmax (temperature 1): p relative to the best, which gets 1 */
    double total = 0.0, inv_t = 1.0 / (double)s->p.temp, top = (double)c[best].logit;
    for (size_t i = 0; i < n; i++) {
        c[i].p = exp((double)c[i].logit - top);
        total += c[i].p;
    }
    /* min-p: drop p < min_p * p_max (the best always stays; order kept) */
    if (s->p.min_p > 0.0f) {
        double floor_p = s->p.min_p > 1.0f ? 1.0 : (double)s->p.min_p;
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            if (c[i].p >= floor_p)
                c[m++] = c[i];
        n = m;
    }
    /* top-p: the smallest prefix whose share of the whole mass reaches top_p */
    if (s->p.top_p < 1.0f) {
        double need = (double)s->p.top_p * total;
        size_t m = sorted || n < 64 ? n : 64;
        for (;;) {
            if (!sorted)
                partial_sort(c, n, m);
            double acc = 0.0;
            size_t i = 0;
            while (i < m && (acc += c[i].p) < need)
                i++;
            if (i < m) {
                n = i + 1;
                break;
            }
            if (m == n)
                break; /* rounding: the whole list is needed */
            m = n / 4 < m ? n : 4 * m;
        }
    }
    /* temperature reshapes what the filters kept */
    total = 0.0;
    for (size_t i = 0; i < n; i++) {
        c[i].p = exp(((double)c[i].logit - top) * inv_t);
        total += c[i].p;
    }
    return draw(s, c, n, total);
}
