/* synth.c - write random-weight GGUF models of real shapes (see synth.h).
 *
 * Quantized blocks are drawn directly (random scale-free codes with a
 * scale chosen for the wanted standard deviation), so a 26 GB Mixtral
 * 8x7B Q4_0 file costs what the disk costs, not a quantizer pass.
 *   Q4_0: codes 1..15 (value (q - 8) d in [-7, 7] d, 0 twice as likely):
 *         zero mean, std 4.24 d;  Q8_0: codes uniform in [-127, 127], std 73.6 d;
 *   float types: uniform in [-a, a], std a / sqrt(3).
 * Projections get std 1/sqrt(n_in) so activations keep their scale; the
 * router gets std 1.5/sqrt(n_embd) so its logits spread by ~1.5 and tokens
 * pick different experts.
 */
#include "synth.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "../quant/types.h"
#include "../quant/types_iq.h"
#include "../quant/types_more.h"
#include "quant_mix.h"
#include "config.h"
#include "gguf_write.h"
#include "moerun_keys.h"

/* Llama 4: head size, dense FFN width (Maverick's interleaved layers), MoE
 * on layer i iff (i + 1) % moe_step == 0, and rope_scaling llama3 (factor
 * 0: none), as the releases' config.json give them. */
struct mr_synth_llama4 {
    uint32_t head_dim, n_ff_dense, moe_step;
    float rope_factor, rope_low, rope_high;
    uint32_t rope_orig;
};
/* meta-llama/Llama-4-Scout-17B-16E-Instruct, Llama-4-Maverick-17B-128E-Instruct */
static const struct mr_synth_llama4 l4_scout = {128, 16384, 1, 16.0f, 1.0f, 1.0f, 8192};
static const struct mr_synth_llama4 l4_maverick = {128, 16384, 2, 0.0f, 0.0f, 0.0f, 0};
/* a tiny one for tests: head 32 (4 x 32 != 64), Maverick's interleave */
static const struct mr_synth_llama4 l4_micro = {32, 96, 2, 8.0f, 1.0f, 4.0f, 64};

/* gpt-oss: head size (64 heads x 64 != 2880), the sliding window of the
 * even layers, YaRN factor over the original context, as the releases'
 * config.json give them (openai/gpt-oss-20b and -120b). */
struct mr_synth_gptoss {
    uint32_t head_dim, window, yarn_orig_ctx;
    float yarn_factor;
};
static const struct mr_synth_gptoss go_release = {64, 128, 4096, 32.0f};

/* Qwen3-MoE: head size (32 x 128 != 2048) and the dense FFN width the
 * config names (intermediate_size; every layer is MoE), as the releases'
 * config.json give them (Qwen/Qwen3-30B-A3B, Qwen/Qwen3-235B-A22B). */
struct mr_synth_qwen3 {
    uint32_t head_dim, n_ff_dense;
};
static const struct mr_synth_qwen3 q3_30b = {128, 6144};
static const struct mr_synth_qwen3 q3_235b = {128, 12288};
static const struct mr_synth_qwen3 q3_micro = {32, 128};

static const mr_synth_shape shapes[] = {
    /* name, vocab, embd, layers, heads, kv heads, ff, experts, used, ctx, rope */
    {"mixtral-8x7b", 32000, 4096, 32, 32, 8, 14336, 8, 2, 32768, 1e6f, NULL, NULL, {0}, NULL},
    {"mixtral-8x22b", 32768, 6144, 56, 48, 8, 16384, 8, 2, 65536, 1e6f, NULL, NULL, {0}, NULL},
    {"tinymix", 32000, 256, 4, 8, 2, 512, 8, 2, 2048, 1e6f, NULL, NULL, {0}, NULL},
    {"micro", 512, 64, 2, 4, 2, 128, 4, 2, 256, 1e4f, NULL, NULL, {0}, NULL},
    {"llama4-scout", 202048, 5120, 48, 40, 8, 8192, 16, 1, 10485760, 5e5f, &l4_scout, NULL, {0},
     NULL},
    {"llama4-maverick", 202048, 5120, 48, 40, 8, 8192, 128, 1, 1048576, 5e5f, &l4_maverick, NULL,
     {0}, NULL},
    {"llama4-micro", 512, 64, 4, 4, 2, 32, 8, 1, 256, 5e5f, &l4_micro, NULL, {0}, NULL},
    {"gpt-oss-20b", 201088, 2880, 24, 64, 8, 2880, 32, 4, 131072, 150000.0f, NULL, &go_release,
     {0}, NULL},
    {"gpt-oss-120b", 201088, 2880, 36, 64, 8, 2880, 128, 4, 131072, 150000.0f, NULL, &go_release,
     {0}, NULL},
    /* DeepSeek-V3 (config.json of deepseek-ai/DeepSeek-V3): n_ff is one routed
     * expert's (moe_intermediate_size); mla: q_lora, kv_lora, nope, rope, v,
     * first_k_dense_replace, intermediate_size, shared, n_group, topk_group,
     * routed_scaling_factor, YaRN factor, original context, beta_fast/slow */
    {"deepseek-v3", 129280, 7168, 61, 128, 128, 2048, 256, 8, 163840, 1e4f, NULL, NULL,
     {1536, 512, 128, 64, 128, 3, 18432, 1, 8, 4, 2.5f, 40.0f, 4096, 32.0f, 1.0f}, NULL},
    /* Kimi K2 (moonshotai/Kimi-K2-Instruct): DeepSeek-V3's code, 384 experts
     * in one group, 64 heads, one dense layer */
    {"kimi-k2", 163840, 7168, 61, 64, 64, 2048, 384, 8, 131072, 5e4f, NULL, NULL,
     {1536, 512, 128, 64, 128, 1, 18432, 1, 1, 1, 2.827f, 32.0f, 4096, 1.0f, 1.0f}, NULL},
    {"micro-deepseek", 512, 64, 3, 4, 4, 32, 16, 4, 256, 1e4f, NULL, NULL,
     {32, 32, 32, 16, 32, 1, 64, 1, 4, 2, 2.5f, 4.0f, 64, 32.0f, 1.0f}, NULL},
    /* the same without q_lora_rank (DeepSeek-V2-Lite's direct q) */
    {"micro-deepseek-lite", 512, 64, 3, 4, 4, 32, 16, 4, 256, 1e4f, NULL, NULL,
     {0, 32, 32, 16, 32, 1, 64, 1, 4, 2, 2.5f, 4.0f, 64, 32.0f, 1.0f}, NULL},
    /* Qwen3-MoE: n_ff is moe_intermediate_size */
    {"qwen3-30b-a3b", 151936, 2048, 48, 32, 4, 768, 128, 8, 40960, 1e6f, NULL, NULL, {0}, &q3_30b},
    {"qwen3-235b-a22b", 151936, 4096, 94, 64, 4, 1536, 128, 8, 40960, 1e6f, NULL, NULL, {0},
     &q3_235b},
    {"qwen3-micro", 512, 64, 2, 4, 2, 256, 8, 2, 256, 1e6f, NULL, NULL, {0}, &q3_micro},
};

static const char *const shape_names[] = {"mixtral-8x7b", "mixtral-8x22b", "tinymix", "micro",
                                          "llama4-scout", "llama4-maverick", "llama4-micro",
                                          "gpt-oss-20b", "gpt-oss-120b", "deepseek-v3", "kimi-k2",
                                          "micro-deepseek", "micro-deepseek-lite",
                                          "qwen3-30b-a3b", "qwen3-235b-a22b", "qwen3-micro", NULL};

const mr_synth_shape *mr_synth_shape_find(const char *name)
{
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        if (!strcmp(shapes[i].name, name))
            return &shapes[i];
    return NULL;
}

const char *const *mr_synth_shape_names(void)
{
    return shape_names;
}

/* ------------------------------------------------------------ random */

typedef struct {
    uint64_t s[4];
} rng_t;

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void rng_seed(rng_t *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix(&seed);
}

static inline uint64_t rng_next(rng_t *r)
{
    uint64_t *s = r->s;
    uint64_t result = ((s[1] * 5) << 7 | (s[1] * 5) >> 57) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = (s[3] << 45) | (s[3] >> 19);
    return result;
}

/* uniform in [-1, 1) */
static inline float rng_unit(rng_t *r)
{
    return (float)((double)(rng_next(r) >> 40) / 8388608.0 - 1.0);
}

/* Pools of random blocks, one per (type, std), for fill_random. */
#define POOL_BLOCKS 4096
#define POOL_SLOTS 8
typedef struct {
    uint32_t type;
    float std;
    uint8_t *blocks; /* POOL_BLOCKS blocks of type */
} block_pool;
typedef struct {
    block_pool slot[POOL_SLOTS];
    uint32_t next;
    uint64_t seed;
} block_pools;

/* The i-quants moerun reads but does not write (IQ1/IQ2/IQ3): blocks of
 * random bits (random codebook entries, signs and scales: every pattern is
 * a valid block), all with one d chosen so the weights have the wanted
 * std, measured by dequantizing the pool with d = 1.  IQ1_M keeps its d in
 * the top nibbles of its four scale words; the others in their first two
 * bytes. */
static void iq_set_d(uint32_t t, uint8_t *blk, uint16_t d)
{
    if (t == MR_TYPE_IQ1_M)
        mr_iq1_m_set_d((block_iq1_m *)blk, d);
    else
        memcpy(blk, &d, 2);
}

int mr_synth_writes_type(uint32_t t)
{
    if (!mr_type_computable(t))
        return 0;
    if (t == MR_TYPE_F32 || mr_type_get(t)->from_f32)
        return 1;
    return mr_type_is_iq(t);
}

static void random_codebook_blocks(rng_t *r, uint32_t t, uint8_t *blocks, float *f, float std)
{
    const mr_type_traits *tt = mr_type_get(t);
    const size_t bytes = (size_t)POOL_BLOCKS * tt->type_size;
    for (size_t i = 0; i < bytes; i += 8) {
        const uint64_t v = rng_next(r);
        memcpy(blocks + i, &v, bytes - i < 8 ? bytes - i : 8);
    }
    const uint16_t one = mr_f32_to_f16(1.0f);
    for (size_t b = 0; b < POOL_BLOCKS; b++)
        iq_set_d(t, blocks + b * tt->type_size, one);
    const size_t n = (size_t)POOL_BLOCKS * tt->block_size;
    tt->to_f32(blocks, f, (int64_t)n);
    double ss = 0.0;
    for (size_t i = 0; i < n; i++)
        ss += (double)f[i] * f[i];
    const double rms = sqrt(ss / (double)n);
    const uint16_t d = mr_f32_to_f16(rms > 0.0 ? (float)(std / rms) : std);
    for (size_t b = 0; b < POOL_BLOCKS; b++)
        iq_set_d(t, blocks + b * tt->type_size, d);
}

static const block_pool *pool_get(block_pools *bp, uint32_t t, float std)
{
    for (uint32_t i = 0; i < POOL_SLOTS; i++)
        if (bp->slot[i].blocks && bp->slot[i].type == t && bp->slot[i].std == std)
            return &bp->slot[i];
    block_pool *b = &bp->slot[bp->next++ % POOL_SLOTS];
    const mr_type_traits *tt = mr_type_get(t);
    free(b->blocks);
    b->blocks = malloc((size_t)POOL_BLOCKS * tt->type_size);
    float *f = malloc((size_t)POOL_BLOCKS * tt->block_size * sizeof *f);
    if (!b->blocks || !f) {
        free(f);
        free(b->blocks);
        b->blocks = NULL;
        return NULL;
    }
    rng_t r;
    rng_seed(&r, bp->seed ^ ((uint64_t)t << 40) ^ (uint64_t)(std * 1e9f));
    if (tt->from_f32) {
        const float a = std * 1.7320508f;
        for (size_t i = 0; i < (size_t)POOL_BLOCKS * tt->block_size; i++)
            f[i] = a * rng_unit(&r);
        tt->from_f32(f, b->blocks, (int64_t)POOL_BLOCKS * tt->block_size);
    } else
        random_codebook_blocks(&r, t, b->blocks, f, std);
    free(f);
    b->type = t;
    b->std = std;
    return b;
}

static void pools_free(block_pools *bp)
{
    for (uint32_t i = 0; i < POOL_SLOTS; i++)
        free(bp->slot[i].blocks);
}

/* Fill n elements (rows of ne0) of type t with zero-mean values of the
 * given standard deviation; 0, or -1 without memory. */
static int fill_random(rng_t *r, uint32_t t, void *dst, uint64_t n, float std, block_pools *bp)
{
    uint8_t *p = dst;
    if (t == MR_TYPE_Q4_0) {
        block_q4_0 *b = dst;
        uint16_t d = mr_f32_to_f16(std / 4.24f);
        for (uint64_t i = 0; i < n / QK4_0; i++) {
            b[i].d = d;
            for (int j = 0; j < 16; j += 8) {
                uint64_t v = rng_next(r);
                for (int k = 0; k < 8; k++) {
                    /* two nibbles from one byte; nibble 0 (value -8) becomes 8
                     * (value 0) so the codes are symmetric: -7..7 with 0
                     * twice, mean exactly 0.  A biased code would add the
                     * same vector to every output, the residual stream
                     * would fill with it and the router would send every
                     * token to the same experts. */
                    uint8_t byte = (uint8_t)(v >> (8 * k));
                    uint8_t lo = (byte & 15) ? (byte & 15) : 8;
                    uint8_t hi = (byte >> 4) ? (byte >> 4) : 8;
                    b[i].qs[j + k] = (uint8_t)(lo | hi << 4);
                }
            }
        }
    } else if (t == MR_TYPE_Q8_0) {
        block_q8_0 *b = dst;
        uint16_t d = mr_f32_to_f16(std / 73.6f);
        for (uint64_t i = 0; i < n / QK8_0; i++) {
            b[i].d = d;
            for (int j = 0; j < QK8_0; j += 4) {
                uint64_t v = rng_next(r);
                for (int k = 0; k < 4; k++) {
                    /* 16 random bits -> [-127, 127]; -128 (never written by
                     * ggml) and the rare 128 fold to 0, keeping it symmetric */
                    int q = (int)((v >> (16 * k)) & 0xff) - 128;
                    b[i].qs[j + k] = (int8_t)(q == -128 ? 0 : q);
                }
            }
        }
    } else if (t == MR_TYPE_MXFP4) {
        /* all 16 e2m1 codes equally likely (-0 included): zero mean, std
         * 5.85 x 2^(e - 128) in ggml's doubled table; the shared exponent
         * is the power of two nearest the wanted std */
        block_mxfp4 *b = dst;
        const int e = 128 + (int)lrintf(log2f(std / 5.85f));
        for (uint64_t i = 0; i < n / QK_MXFP4; i++) {
            b[i].e = (uint8_t)(e < 1 ? 1 : e > 254 ? 254 : e);
            uint64_t v = rng_next(r);
            memcpy(b[i].qs, &v, 8);
            v = rng_next(r);
            memcpy(b[i].qs + 8, &v, 8);
        }
    } else if (t == MR_TYPE_F32) {
        const float a = std * 1.7320508f;
        for (uint64_t i = 0; i < n; i++) {
            float v = a * rng_unit(r);
            memcpy(p + 4 * i, &v, 4);
        }
    } else if (t == MR_TYPE_F16 || t == MR_TYPE_BF16 || !bp) {
        /* draw f32 and convert, in rows of 256 */
        const float a = std * 1.7320508f;
        float buf[256];
        const mr_type_traits *tt = mr_type_get(t);
        const uint64_t chunk = tt->block_size > 256 ? tt->block_size : 256;
        for (uint64_t i = 0; i < n; i += chunk) {
            for (uint64_t j = 0; j < chunk; j++)
                buf[j] = a * rng_unit(r);
            tt->from_f32(buf, p + i / tt->block_size * tt->type_size, (int64_t)chunk);
        }
    } else {
        /* the other quantized types: each block a random one of a pool of
         * quantized uniform random blocks of this type and std (quantizing
         * every block of a 17 GB K-quant file would take an hour) */
        const block_pool *bl = pool_get(bp, t, std);
        const mr_type_traits *tt = mr_type_get(t);
        if (!bl)
            return -1;
        for (uint64_t i = 0; i < n / tt->block_size; i++)
            memcpy(p + i * tt->type_size,
                   bl->blocks + (rng_next(r) % POOL_BLOCKS) * tt->type_size, tt->type_size);
    }
    return 0;
}

/* ------------------------------------------------------------ skewed routing */

/* Per-expert scales of one layer's router rows for Zipf(S) popularity.
 * A router logit is the hidden state dotted with the expert's row: over
 * tokens, close to a zero-mean Gaussian whose spread is the row's scale, so
 * a larger scale wins the top-k more often.  The scales are fitted by
 * simulation (logits drawn as scale x N(0, 1)) so that expert of rank r is
 * chosen with frequency proportional to r^-S, summing to k (capped at 95%
 * of tokens per expert); ranks are a random permutation per layer.  This
 * skews selection without adding any tensor the family lacks. */
static int zipf_scales(uint32_t n, uint32_t k, double S, uint64_t seed, float *alpha)
{
    enum { SAMPLES = 4000, ROUNDS = 40 };
    double *target = malloc(n * sizeof *target), *freq = malloc(n * sizeof *freq);
    float *z = malloc((size_t)SAMPLES * n * sizeof *z), *lg = malloc(n * sizeof *lg);
    uint32_t *perm = malloc(n * sizeof *perm);
    if (!target || !freq || !z || !lg || !perm) {
        free(target), free(freq), free(z), free(lg), free(perm);
        return -1;
    }
    rng_t r;
    rng_seed(&r, seed);
    for (uint32_t e = 0; e < n; e++)
        perm[e] = e;
    for (uint32_t e = n - 1; e > 0; e--) { /* Fisher-Yates */
        const uint32_t j = (uint32_t)(rng_next(&r) % (e + 1));
        const uint32_t t = perm[e];
        perm[e] = perm[j], perm[j] = t;
    }
    /* targets: r^-S normalized to k, the excess over 0.95 spread down */
    double sum = 0;
    for (uint32_t i = 0; i < n; i++)
        sum += pow(i + 1.0, -S);
    for (uint32_t i = 0; i < n; i++)
        target[perm[i]] = k * pow(i + 1.0, -S) / sum;
    for (int pass = 0; pass < 8; pass++) {
        double over = 0, room = 0;
        for (uint32_t e = 0; e < n; e++) {
            if (target[e] > 0.95)
                over += target[e] - 0.95, target[e] = 0.95;
            else
                room += 0.95 - target[e];
        }
        if (over <= 0 || room <= 0)
            break;
        for (uint32_t e = 0; e < n; e++)
            if (target[e] < 0.95)
                target[e] += over * (0.95 - target[e]) / room;
    }
    /* Gaussian draws (Box-Muller) */
    for (size_t i = 0; i < (size_t)SAMPLES * n; i++) {
        const double u1 = ((rng_next(&r) >> 11) + 1.0) / 9007199254740993.0;
        const double u2 = (rng_next(&r) >> 11) / 9007199254740992.0;
        z[i] = (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
    }
    for (uint32_t e = 0; e < n; e++)
        alpha[e] = 1.0f;
    for (int round = 0; round < ROUNDS; round++) {
        memset(freq, 0, n * sizeof *freq);
        for (int t = 0; t < SAMPLES; t++) {
            for (uint32_t e = 0; e < n; e++)
                lg[e] = alpha[e] * z[(size_t)t * n + e];
            for (uint32_t j = 0; j < k; j++) { /* the k largest */
                uint32_t best = 0;
                for (uint32_t e = 1; e < n; e++)
                    if (lg[e] > lg[best])
                        best = e;
                freq[best] += 1.0 / SAMPLES;
                lg[best] = -INFINITY;
            }
        }
        double norm = 0;
        for (uint32_t e = 0; e < n; e++) {
            const double f = freq[e] > 0.5 / SAMPLES ? freq[e] : 0.5 / SAMPLES;
            alpha[e] = (float)(alpha[e] * pow(target[e] / f, 0.5));
            norm += log(alpha[e]);
        }
        const float g = (float)exp(-norm / n); /* keep the geometric mean at 1 */
        for (uint32_t e = 0; e < n; e++)
            alpha[e] *= g;
    }
    free(target), free(freq), free(z), free(lg), free(perm);
    return 0;
}

/* ------------------------------------------------------------ vocab */

typedef struct {
    char **tokens;
    float *scores;
    int32_t *types;
    uint32_t n;
} vocab;

static void vocab_free(vocab *v)
{
    if (v->tokens)
        for (uint32_t i = 0; i < v->n; i++)
            free(v->tokens[i]);
    free(v->tokens);
    free(v->scores);
    free(v->types);
}

/* Specials, 256 byte tokens, then printable pieces: single characters,
 * "▁"-prefixed characters, then ever longer lowercase strings (every
 * prefix present before its extensions, so BPE merges can reach them). */
static int vocab_make(vocab *v, uint32_t n)
{
    static const char chars[] =
        "etaoinshrdlucmfwypvbgkjqxzETAOINSHRDLUCMFWYPVBGKJQXZ0123456789.,!?'\"-:;()";
    const size_t nc = sizeof chars - 1;
    memset(v, 0, sizeof *v);
    v->n = n;
    v->tokens = calloc(n, sizeof *v->tokens);
    v->scores = calloc(n, sizeof *v->scores);
    v->types = calloc(n, sizeof *v->types);
    if (!v->tokens || !v->scores || !v->types)
        return -1;
    char buf[32];
    uint32_t i = 0;
    const char *special[3] = {"<unk>", "<s>", "</s>"};
    for (; i < 3 && i < n; i++) {
        v->tokens[i] = strdup(special[i]);
        v->types[i] = i == 0 ? 2 : 3;
        v->scores[i] = 0.0f;
    }
    for (uint32_t b = 0; b < 256 && i < n; b++, i++) {
        snprintf(buf, sizeof buf, "<0x%02X>", b);
        v->tokens[i] = strdup(buf);
        v->types[i] = 6;
    }
    /* pieces of growing length over an alphabet: length 1 plain, 1 with
     * the space marker, then lowercase strings of 2, 3, ... letters */
    for (size_t c = 0; c < nc && i < n; c++, i++) {
        buf[0] = chars[c];
        buf[1] = 0;
        v->tokens[i] = strdup(buf);
    }
    for (size_t c = 0; c < nc && i < n; c++, i++) {
        snprintf(buf, sizeof buf, "\xe2\x96\x81%c", chars[c]);
        v->tokens[i] = strdup(buf);
    }
    for (int len = 2; i < n && len < 8; len++) {
        uint64_t combos = 1;
        for (int k = 0; k < len; k++)
            combos *= 26;
        for (uint64_t x = 0; x < combos && i + 1 < n; x++) {
            uint64_t y = x;
            for (int k = len - 1; k >= 0; k--, y /= 26)
                buf[3 + k] = chars[y % 26];
            buf[3 + len] = 0;
            v->tokens[i++] = strdup(buf + 3);
            memcpy(buf, "\xe2\x96\x81", 3);
            v->tokens[i++] = strdup(buf);
        }
    }
    for (; i < n; i++) { /* only for absurdly large vocabularies */
        snprintf(buf, sizeof buf, "<extra_%u>", i);
        v->tokens[i] = strdup(buf);
        v->types[i] = 5;
    }
    for (uint32_t k = 0; k < n; k++) {
        if (!v->tokens[k])
            return -1;
        if (!v->types[k])
            v->types[k] = 1;
        if (v->types[k] == 1)
            v->scores[k] = -(float)k; /* earlier pieces merge first */
    }
    return 0;
}

/* ------------------------------------------------------------ layout */

enum { T_EMBD, T_ROUTER, T_NORM, T_PROJ, T_EXPERT, T_ROPE, T_ZERO };

typedef struct {
    char name[64];
    uint32_t type, n_dims, kind;
    uint64_t ne[3];
    float std;
    uint32_t index;
} tinfo;

static int llama_file_type(uint32_t t);

/* general.file_type: the mix's, or the matrices' type's */
static uint32_t file_type_of(const mr_synth_params *p)
{
    if (p->mix != MR_MIX_PURE)
        return mr_mix_file_type((mr_mix)p->mix);
    return (uint32_t)llama_file_type(p->type);
}

static int llama_file_type(uint32_t t)
{
    switch (t) {
    case MR_TYPE_F32: return 0;
    case MR_TYPE_F16: return 1;
    case MR_TYPE_Q4_0: return 2;
    case MR_TYPE_Q8_0: return 7;
    case MR_TYPE_BF16: return 32;
    case MR_TYPE_Q4_1: return 3;
    case MR_TYPE_Q5_0: return 8;
    case MR_TYPE_Q5_1: return 9;
    case MR_TYPE_Q2_K: return 10;
    case MR_TYPE_Q3_K: return 11;
    case MR_TYPE_Q4_K: return 14;
    case MR_TYPE_Q5_K: return 16;
    case MR_TYPE_Q6_K: return 18;
    case MR_TYPE_IQ4_NL: return 25;
    case MR_TYPE_IQ4_XS: return 30;
    case MR_TYPE_IQ2_XXS: return 19;
    case MR_TYPE_IQ2_XS: return 20;
    case MR_TYPE_IQ3_XXS: return 23;
    case MR_TYPE_IQ1_S: return 24;
    case MR_TYPE_IQ3_S: return 26;
    case MR_TYPE_IQ2_S: return 28;
    case MR_TYPE_IQ1_M: return 31;
    default: return 2;
    }
}

/* Leading dense layers of an MLA shape cut to n_layer layers: its own
 * count for the full depth, about one in four of a few layers, and at
 * least one MoE layer. */
static uint32_t mla_dense(const mr_synth_shape *s)
{
    uint32_t d = s->n_layer / 4 ? s->n_layer / 4 : 1;
    d = d < s->mla.n_dense ? d : s->mla.n_dense;
    return d >= s->n_layer ? s->n_layer - 1 : d;
}

#define ADD(kind_, type_, std_, dims_, a, b, c, ...)                                   \
    do {                                                                               \
        snprintf(t[k].name, sizeof t[k].name, __VA_ARGS__);                            \
        t[k].kind = kind_, t[k].type = type_, t[k].std = std_, t[k].n_dims = dims_;    \
        t[k].ne[0] = a, t[k].ne[1] = b, t[k].ne[2] = c;                                \
        k++;                                                                           \
    } while (0)

/* The tensors of a DeepSeek-V3-style model (GGUF deepseek2): per layer the
 * MLA projections (k_b and v_b stacked over heads), then a dense FFN or
 * router, selection bias (zero), stacked experts and the shared expert. */
static tinfo *layout_mla(const mr_synth_params *p, uint32_t *count)
{
    const mr_synth_shape *s = &p->shape;
    const mr_synth_mla *a = &s->mla;
    const uint64_t E = s->n_embd, H = s->n_head, dk = a->qk_nope + a->qk_rope;
    const uint64_t F = s->n_ff, FS = (uint64_t)s->n_ff * a->n_shared, FD = a->n_ff_dense;
    const uint32_t n_dense = mla_dense(s);
    uint32_t k = 0;
    tinfo *t = calloc(3 + (size_t)s->n_layer * 20, sizeof *t);
    if (!t)
        return NULL;
    const float si = 1.0f / sqrtf((float)E);
    ADD(T_EMBD, p->type, 1.0f, 2, E, s->n_vocab, 1, "token_embd.weight");
    for (uint32_t l = 0; l < s->n_layer; l++) {
        ADD(T_NORM, MR_TYPE_F32, 0, 1, E, 1, 1, "blk.%u.attn_norm.weight", l);
        if (a->q_lora) {
            ADD(T_PROJ, p->type, si, 2, E, a->q_lora, 1, "blk.%u.attn_q_a.weight", l);
            ADD(T_NORM, MR_TYPE_F32, 0, 1, a->q_lora, 1, 1, "blk.%u.attn_q_a_norm.weight", l);
            ADD(T_PROJ, p->type, 1.0f / sqrtf((float)a->q_lora), 2, a->q_lora, H * dk, 1,
                "blk.%u.attn_q_b.weight", l);
        } else { /* DeepSeek-V2-Lite: q projected directly */
            ADD(T_PROJ, p->type, si, 2, E, H * dk, 1, "blk.%u.attn_q.weight", l);
        }
        ADD(T_PROJ, p->type, si, 2, E, a->kv_lora + a->qk_rope, 1, "blk.%u.attn_kv_a_mqa.weight", l);
        ADD(T_NORM, MR_TYPE_F32, 0, 1, a->kv_lora, 1, 1, "blk.%u.attn_kv_a_norm.weight", l);
        ADD(T_PROJ, p->type, 1.0f / sqrtf((float)a->qk_nope), 3, a->qk_nope, a->kv_lora, H,
            "blk.%u.attn_k_b.weight", l);
        ADD(T_PROJ, p->type, 1.0f / sqrtf((float)a->kv_lora), 3, a->kv_lora, a->v_head, H,
            "blk.%u.attn_v_b.weight", l);
        ADD(T_PROJ, p->type, 1.0f / sqrtf((float)(H * a->v_head)), 2, H * a->v_head, E, 1,
            "blk.%u.attn_output.weight", l);
        ADD(T_NORM, MR_TYPE_F32, 0, 1, E, 1, 1, "blk.%u.ffn_norm.weight", l);
        if (l < n_dense) {
            ADD(T_PROJ, p->type, si, 2, E, FD, 1, "blk.%u.ffn_gate.weight", l);
            ADD(T_PROJ, p->type, 1.0f / sqrtf((float)FD), 2, FD, E, 1, "blk.%u.ffn_down.weight", l);
            ADD(T_PROJ, p->type, si, 2, E, FD, 1, "blk.%u.ffn_up.weight", l);
            continue;
        }
        ADD(T_ROUTER, MR_TYPE_F32, 1.5f * si, 2, E, s->n_expert, 1, "blk.%u.ffn_gate_inp.weight", l);
        ADD(T_ZERO, MR_TYPE_F32, 0, 1, s->n_expert, 1, 1, "blk.%u.exp_probs_b.bias", l);
        ADD(T_EXPERT, p->type, si, 3, E, F, s->n_expert, "blk.%u.ffn_gate_exps.weight", l);
        ADD(T_EXPERT, p->type, 1.0f / sqrtf((float)F), 3, F, E, s->n_expert,
            "blk.%u.ffn_down_exps.weight", l);
        ADD(T_EXPERT, p->type, si, 3, E, F, s->n_expert, "blk.%u.ffn_up_exps.weight", l);
        if (FS) {
            ADD(T_PROJ, p->type, si, 2, E, FS, 1, "blk.%u.ffn_gate_shexp.weight", l);
            ADD(T_PROJ, p->type, 1.0f / sqrtf((float)FS), 2, FS, E, 1,
                "blk.%u.ffn_down_shexp.weight", l);
            ADD(T_PROJ, p->type, si, 2, E, FS, 1, "blk.%u.ffn_up_shexp.weight", l);
        }
    }
    ADD(T_PROJ, p->type, si, 2, E, s->n_vocab, 1, "output.weight");
    ADD(T_NORM, MR_TYPE_F32, 0, 1, E, 1, 1, "output_norm.weight");
    *count = k;
    return t;
}

/* Llama 4 in the order of llama.cpp's converter (one shard): rope factors,
 * embeddings, each layer's experts, router, shared expert (or dense FFN),
 * norms and attention, then output and its norm. */
static tinfo *layout_llama4(const mr_synth_params *p, uint32_t *count)
{
    const mr_synth_shape *s = &p->shape;
    const struct mr_synth_llama4 *x = s->llama4;
    const uint64_t E = s->n_embd, F = s->n_ff, D = x->n_ff_dense, X = s->n_expert;
    const uint64_t q = (uint64_t)s->n_head * x->head_dim, kv = (uint64_t)s->n_head_kv * x->head_dim;
    uint32_t k = 0;
    tinfo *t = calloc(4 + 13ull * s->n_layer, sizeof *t);
    if (!t)
        return NULL;
    const float si = 1.0f / sqrtf((float)E), sf = 1.0f / sqrtf((float)F),
                sd = 1.0f / sqrtf((float)D), sq = 1.0f / sqrtf((float)q);
    if (x->rope_factor > 0.0f)
        ADD(T_ROPE, MR_TYPE_F32, 0, 1, x->head_dim / 2, 1, 1, "rope_freqs.weight");
    ADD(T_EMBD, p->type, 1.0f, 2, E, s->n_vocab, 1, "token_embd.weight");
    for (uint32_t l = 0; l < s->n_layer; l++) {
        if ((l + 1) % x->moe_step == 0) {
            ADD(T_EXPERT, p->type, sf, 3, F, E, X, "blk.%u.ffn_down_exps.weight", l);
            ADD(T_EXPERT, p->type, si, 3, E, F, X, "blk.%u.ffn_gate_exps.weight", l);
            ADD(T_EXPERT, p->type, si, 3, E, F, X, "blk.%u.ffn_up_exps.weight", l);
            ADD(T_ROUTER, MR_TYPE_F32, 1.5f * si, 2, E, X, 1, "blk.%u.ffn_gate_inp.weight", l);
            ADD(T_PROJ, p->type, sf, 2, F, E, 1, "blk.%u.ffn_down_shexp.weight", l);
            ADD(T_PROJ, p->type, si, 2, E, F, 1, "blk.%u.ffn_gate_shexp.weight", l);
            ADD(T_PROJ, p->type, si, 2, E, F, 1, "blk.%u.ffn_up_shexp.weight", l);
        } else { /* resident tensors, not experts: no expert checksums */
            ADD(T_PROJ, p->type, sd, 2, D, E, 1, "blk.%u.ffn_down.weight", l);
            ADD(T_PROJ, p->type, si, 2, E, D, 1, "blk.%u.ffn_gate.weight", l);
            ADD(T_PROJ, p->type, si, 2, E, D, 1, "blk.%u.ffn_up.weight", l);
        }
        ADD(T_NORM, MR_TYPE_F32, 0, 1, E, 1, 1, "blk.%u.attn_norm.weight", l);
        ADD(T_NORM, MR_TYPE_F32, 0, 1, E, 1, 1, "blk.%u.ffn_norm.weight", l);
        ADD(T_PROJ, p->type, si, 2, E, kv, 1, "blk.%u.attn_k.weight", l);
        ADD(T_PROJ, p->type, sq, 2, q, E, 1, "blk.%u.attn_output.weight", l);
        ADD(T_PROJ, p->type, si, 2, E, q, 1, "blk.%u.attn_q.weight", l);
        ADD(T_PROJ, p->type, si, 2, E, kv, 1, "blk.%u.attn_v.weight", l);
    }
    ADD(T_PROJ, p->type, si, 2, E, s->n_vocab, 1, "output.weight");
    ADD(T_NORM, MR_TYPE_F32, 0, 1, E, 1, 1, "output_norm.weight");
    *count = k;
    return t;
}

/* gpt-oss in the order of llama.cpp's converter: MXFP4 experts, output,
 * embeddings, then each layer's norms, biases (zero), router, attention
 * and sinks (zero), output norm. */
static tinfo *layout_gptoss(const mr_synth_params *p, uint32_t *count)
{
    const mr_synth_shape *s = &p->shape;
    const uint64_t E = s->n_embd, F = s->n_ff, X = s->n_expert;
    const uint64_t q = (uint64_t)s->n_head * s->gptoss->head_dim;
    const uint64_t kv = (uint64_t)s->n_head_kv * s->gptoss->head_dim;
    uint32_t k = 0;
    tinfo *t = calloc(3 + 21ull * s->n_layer, sizeof *t);
    if (!t)
        return NULL;
    const float si = 1.0f / sqrtf((float)E), sf = 1.0f / sqrtf((float)F),
                sq = 1.0f / sqrtf((float)q);
    for (uint32_t l = 0; l < s->n_layer; l++) {
        ADD(T_EXPERT, MR_TYPE_MXFP4, sf, 3, F, E, X, "blk.%u.ffn_down_exps.weight", l);
        ADD(T_EXPERT, MR_TYPE_MXFP4, si, 3, E, F, X, "blk.%u.ffn_gate_exps.weight", l);
        ADD(T_EXPERT, MR_TYPE_MXFP4, si, 3, E, F, X, "blk.%u.ffn_up_exps.weight", l);
    }
    ADD(T_PROJ, p->type, si, 2, E, s->n_vocab, 1, "output.weight");
    ADD(T_EMBD, p->type, 1.0f, 2, E, s->n_vocab, 1, "token_embd.weight");
    for (uint32_t l = 0; l < s->n_layer; l++) {
        ADD(T_NORM, MR_TYPE_F32, 0, 1, E, 1, 1, "blk.%u.attn_norm.weight", l);
        ADD(T_ZERO, MR_TYPE_F32, 0, 2, E, X, 1, "blk.%u.ffn_down_exps.bias", l);
        ADD(T_ZERO, MR_TYPE_F32, 0, 2, F, X, 1, "blk.%u.ffn_gate_exps.bias", l);
        ADD(T_ZERO, MR_TYPE_F32, 0, 2, F, X, 1, "blk.%u.ffn_up_exps.bias", l);
        ADD(T_ZERO, MR_TYPE_F32, 0, 1, X, 1, 1, "blk.%u.ffn_gate_inp.bias", l);
        ADD(T_ROUTER, MR_TYPE_F32, 1.5f * si, 2, E, X, 1, "blk.%u.ffn_gate_inp.weight", l);
        ADD(T_NORM, MR_TYPE_F32, 0, 1, E, 1, 1, "blk.%u.post_attention_norm.weight", l);
        ADD(T_ZERO, MR_TYPE_F32, 0, 1, kv, 1, 1, "blk.%u.attn_k.bias", l);
        ADD(T_PROJ, p->type, si, 2, E, kv, 1, "blk.%u.attn_k.weight", l);
        ADD(T_ZERO, MR_TYPE_F32, 0, 1, E, 1, 1, "blk.%u.attn_output.bias", l);
        ADD(T_PROJ, p->type, sq, 2, q, E, 1, "blk.%u.attn_output.weight", l);
        ADD(T_ZERO, MR_TYPE_F32, 0, 1, q, 1, 1, "blk.%u.attn_q.bias", l);
        ADD(T_PROJ, p->type, si, 2, E, q, 1, "blk.%u.attn_q.weight", l);
        ADD(T_ZERO, MR_TYPE_F32, 0, 1, s->n_head, 1, 1, "blk.%u.attn_sinks.weight", l);
        ADD(T_ZERO, MR_TYPE_F32, 0, 1, kv, 1, 1, "blk.%u.attn_v.bias", l);
        ADD(T_PROJ, p->type, si, 2, E, kv, 1, "blk.%u.attn_v.weight", l);
    }
    ADD(T_NORM, MR_TYPE_F32, 0, 1, E, 1, 1, "output_norm.weight");
    *count = k;
    return t;
}

/* Qwen3-MoE in the order of llama.cpp's converter: embeddings, then per
 * layer the norms, experts, router, q/k norms and attention; output. */
static tinfo *layout_qwen3(const mr_synth_params *p, uint32_t *count)
{
    const mr_synth_shape *s = &p->shape;
    const uint64_t E = s->n_embd, F = s->n_ff, X = s->n_expert, hd = s->qwen3->head_dim;
    const uint64_t q = s->n_head * hd, kv = s->n_head_kv * hd;
    uint32_t k = 0;
    tinfo *t = calloc(3 + 12ull * s->n_layer, sizeof *t);
    if (!t)
        return NULL;
    const float si = 1.0f / sqrtf((float)E), sf = 1.0f / sqrtf((float)F),
                sq = 1.0f / sqrtf((float)q);
    ADD(T_EMBD, p->type, 1.0f, 2, E, s->n_vocab, 1, "token_embd.weight");
    for (uint32_t l = 0; l < s->n_layer; l++) {
        ADD(T_NORM, MR_TYPE_F32, 0, 1, E, 1, 1, "blk.%u.attn_norm.weight", l);
        ADD(T_EXPERT, p->type, sf, 3, F, E, X, "blk.%u.ffn_down_exps.weight", l);
        ADD(T_EXPERT, p->type, si, 3, E, F, X, "blk.%u.ffn_gate_exps.weight", l);
        ADD(T_EXPERT, p->type, si, 3, E, F, X, "blk.%u.ffn_up_exps.weight", l);
        ADD(T_ROUTER, MR_TYPE_F32, 1.5f * si, 2, E, X, 1, "blk.%u.ffn_gate_inp.weight", l);
        ADD(T_NORM, MR_TYPE_F32, 0, 1, E, 1, 1, "blk.%u.ffn_norm.weight", l);
        ADD(T_NORM, MR_TYPE_F32, 0, 1, hd, 1, 1, "blk.%u.attn_k_norm.weight", l);
        ADD(T_PROJ, p->type, si, 2, E, kv, 1, "blk.%u.attn_k.weight", l);
        ADD(T_PROJ, p->type, sq, 2, q, E, 1, "blk.%u.attn_output.weight", l);
        ADD(T_NORM, MR_TYPE_F32, 0, 1, hd, 1, 1, "blk.%u.attn_q_norm.weight", l);
        ADD(T_PROJ, p->type, si, 2, E, q, 1, "blk.%u.attn_q.weight", l);
        ADD(T_PROJ, p->type, si, 2, E, kv, 1, "blk.%u.attn_v.weight", l);
    }
    ADD(T_NORM, MR_TYPE_F32, 0, 1, E, 1, 1, "output_norm.weight");
    ADD(T_PROJ, p->type, si, 2, E, s->n_vocab, 1, "output.weight");
    *count = k;
    return t;
}

/* rope_freqs.weight: the llama3 factor of each frequency pair, as llama.cpp's
 * converter computes it. */
static void llama4_rope_factors(const mr_synth_shape *s, float *out)
{
    const struct mr_synth_llama4 *x = s->llama4;
    const double lo_wl = x->rope_orig / x->rope_low, hi_wl = x->rope_orig / x->rope_high;
    for (uint32_t i = 0; i < x->head_dim / 2; i++) {
        const double wl = 2.0 * M_PI * pow(s->rope_base, 2.0 * i / x->head_dim);
        if (wl < hi_wl) {
            out[i] = 1.0f;
        } else if (wl > lo_wl) {
            out[i] = x->rope_factor;
        } else {
            const double sm = (x->rope_orig / wl - x->rope_low) / (x->rope_high - x->rope_low);
            out[i] = (float)(1.0 / ((1.0 - sm) / x->rope_factor + sm));
        }
    }
}

/* The FFN width of a model: the experts', or a dense twin's (as wide as
 * the experts a token uses, or as all of them). */
static uint64_t ffn_width(const mr_synth_params *p)
{
    const mr_synth_shape *s = &p->shape;
    return !p->dense ? s->n_ff
                     : (uint64_t)s->n_ff * (p->dense == 2 ? s->n_expert : s->n_expert_used);
}

static tinfo *layout_family(const mr_synth_params *p, uint32_t *count);

/* The tensors of the model in llama.cpp's file order, each matrix of the
 * type the mix gives it (src/quant_mix.c; released MXFP4 experts stay). */
static tinfo *layout(const mr_synth_params *p, uint32_t *count)
{
    tinfo *t = layout_family(p, count);
    if (!t || p->mix == MR_MIX_PURE)
        return t;
    const mr_synth_shape *s = &p->shape;
    mr_mix_model mm = {.n_layer = s->n_layer, .n_expert = p->dense ? 0 : s->n_expert,
                       .n_head = s->n_head, .n_head_kv = s->n_head_kv, .tied = 1};
    for (uint32_t i = 0; i < *count; i++) {
        mm.n_attn_v += (uint32_t)mr_mix_counts_as_attn_v(t[i].name);
        mm.tied &= strcmp(t[i].name, "output.weight") != 0;
    }
    mr_mix_counts mc = {0, 0};
    for (uint32_t i = 0; i < *count; i++)
        if (t[i].type == p->type && mr_mix_quantizable(t[i].name, (int)t[i].n_dims)) {
            const mr_mix_tensor mt = mr_mix_next(&mc, t[i].name, (int64_t)t[i].ne[0]);
            t[i].type = mr_mix_tensor_type((mr_mix)p->mix, p->type, &mm, &mt);
        }
    return t;
}

static tinfo *layout_family(const mr_synth_params *p, uint32_t *count)
{
    if (p->shape.qwen3)
        return layout_qwen3(p, count);
    if (p->shape.llama4)
        return layout_llama4(p, count);
    if (p->shape.gptoss)
        return layout_gptoss(p, count);
    if (p->shape.mla.kv_lora)
        return layout_mla(p, count);
    const mr_synth_shape *s = &p->shape;
    const uint32_t hd = s->n_embd / s->n_head;
    const int moe = !p->dense;
    const uint64_t ff = ffn_width(p);
    uint32_t n = 3 + s->n_layer * (moe ? 10 : 9), k = 0;
    tinfo *t = calloc(n, sizeof *t);
    if (!t)
        return NULL;
    const float si = 1.0f / sqrtf((float)s->n_embd), sf = 1.0f / sqrtf((float)ff);
    ADD(T_EMBD, p->type, 1.0f, 2, s->n_embd, s->n_vocab, 1, "token_embd.weight");
    for (uint32_t l = 0; l < s->n_layer; l++) {
        if (moe) {
            ADD(T_EXPERT, p->type, si, 3, s->n_embd, ff, s->n_expert, "blk.%u.ffn_gate_exps.weight", l);
            ADD(T_EXPERT, p->type, sf, 3, ff, s->n_embd, s->n_expert, "blk.%u.ffn_down_exps.weight", l);
            ADD(T_EXPERT, p->type, si, 3, s->n_embd, ff, s->n_expert, "blk.%u.ffn_up_exps.weight", l);
            ADD(T_ROUTER, MR_TYPE_F32, 1.5f * si, 2, s->n_embd, s->n_expert, 1,
                "blk.%u.ffn_gate_inp.weight", l);
        } else {
            ADD(T_EXPERT, p->type, si, 2, s->n_embd, ff, 1, "blk.%u.ffn_gate.weight", l);
            ADD(T_EXPERT, p->type, sf, 2, ff, s->n_embd, 1, "blk.%u.ffn_down.weight", l);
            ADD(T_EXPERT, p->type, si, 2, s->n_embd, ff, 1, "blk.%u.ffn_up.weight", l);
        }
        ADD(T_NORM, MR_TYPE_F32, 0, 1, s->n_embd, 1, 1, "blk.%u.attn_norm.weight", l);
        ADD(T_NORM, MR_TYPE_F32, 0, 1, s->n_embd, 1, 1, "blk.%u.ffn_norm.weight", l);
        ADD(T_PROJ, p->type, si, 2, s->n_embd, (uint64_t)s->n_head_kv * hd, 1, "blk.%u.attn_k.weight", l);
        ADD(T_PROJ, p->type, si, 2, s->n_embd, s->n_embd, 1, "blk.%u.attn_output.weight", l);
        ADD(T_PROJ, p->type, si, 2, s->n_embd, s->n_embd, 1, "blk.%u.attn_q.weight", l);
        ADD(T_PROJ, p->type, si, 2, s->n_embd, (uint64_t)s->n_head_kv * hd, 1, "blk.%u.attn_v.weight", l);
    }
    ADD(T_PROJ, p->type, si, 2, s->n_embd, s->n_vocab, 1, "output.weight");
    ADD(T_NORM, MR_TYPE_F32, 0, 1, s->n_embd, 1, 1, "output_norm.weight");
#undef ADD
    *count = k;
    return t;
}

uint64_t mr_synth_file_size(const mr_synth_params *p)
{
    uint32_t n;
    tinfo *t = layout(p, &n);
    uint64_t total = 1 << 20; /* header and vocabulary, roughly */
    for (uint32_t i = 0; t && i < n; i++)
        total += (mr_type_row_bytes(t[i].type, t[i].ne[0]) * t[i].ne[1] * t[i].ne[2] + 4095) /
                 4096 * 4096;
    free(t);
    return total;
}

/* ------------------------------------------------------------ writing */

/* The deepseek2 keys of an MLA shape, as llama.cpp's converter writes them. */
static void write_mla_hparams(mr_gguf_writer *w, const mr_synth_params *p)
{
    const mr_synth_shape *s = &p->shape;
    const mr_synth_mla *a = &s->mla;
#define K(key) "deepseek2." key
    mr_gguf_kv_u32(w, K("block_count"), s->n_layer);
    mr_gguf_kv_u32(w, K("context_length"), s->n_ctx);
    mr_gguf_kv_u32(w, K("embedding_length"), s->n_embd);
    mr_gguf_kv_u32(w, K("feed_forward_length"), a->n_ff_dense);
    mr_gguf_kv_u32(w, K("attention.head_count"), s->n_head);
    mr_gguf_kv_u32(w, K("attention.head_count_kv"), 1);
    mr_gguf_kv_str(w, K("rope.scaling.type"), "yarn");
    mr_gguf_kv_f32(w, K("rope.scaling.factor"), a->yarn_factor);
    mr_gguf_kv_u32(w, K("rope.scaling.original_context_length"), a->yarn_orig_ctx);
    mr_gguf_kv_f32(w, K("rope.scaling.yarn_beta_fast"), a->yarn_beta_fast);
    mr_gguf_kv_f32(w, K("rope.scaling.yarn_beta_slow"), a->yarn_beta_slow);
    mr_gguf_kv_f32(w, K("rope.freq_base"), s->rope_base);
    mr_gguf_kv_f32(w, K("attention.layer_norm_rms_epsilon"), 1e-6f);
    mr_gguf_kv_u32(w, K("expert_count"), s->n_expert);
    mr_gguf_kv_u32(w, K("expert_used_count"), s->n_expert_used);
    mr_gguf_kv_u32(w, K("expert_group_count"), a->n_group);
    mr_gguf_kv_u32(w, K("expert_group_used_count"), a->topk_group);
    mr_gguf_kv_u32(w, K("expert_gating_func"), 2);
    mr_gguf_kv_u32(w, "general.file_type", file_type_of(p));
    mr_gguf_kv_u32(w, K("leading_dense_block_count"), mla_dense(s));
    mr_gguf_kv_u32(w, K("vocab_size"), s->n_vocab);
    if (a->q_lora)
        mr_gguf_kv_u32(w, K("attention.q_lora_rank"), a->q_lora);
    mr_gguf_kv_u32(w, K("attention.kv_lora_rank"), a->kv_lora);
    mr_gguf_kv_u32(w, K("attention.key_length"), a->kv_lora + a->qk_rope);
    mr_gguf_kv_u32(w, K("attention.value_length"), a->kv_lora);
    mr_gguf_kv_u32(w, K("attention.key_length_mla"), a->qk_nope + a->qk_rope);
    mr_gguf_kv_u32(w, K("attention.value_length_mla"), a->v_head);
    mr_gguf_kv_u32(w, K("expert_feed_forward_length"), s->n_ff);
    mr_gguf_kv_u32(w, K("expert_shared_count"), a->n_shared);
    mr_gguf_kv_f32(w, K("expert_weights_scale"), a->route_scale);
    mr_gguf_kv_bool(w, K("expert_weights_norm"), 1);
    mr_gguf_kv_u32(w, K("rope.dimension_count"), a->qk_rope);
    mr_gguf_kv_f32(w, K("rope.scaling.yarn_log_multiplier"), 0.1f);
#undef K
}

/* The llama4 keys in Llama4Model.set_gguf_parameters' order; no chunk or
 * temperature keys, as in the files on the Hub (llama.cpp's 8192/8192/0.1). */
static void write_llama4_keys(mr_gguf_writer *w, const mr_synth_params *p)
{
    const mr_synth_shape *s = &p->shape;
    const struct mr_synth_llama4 *x = s->llama4;
    mr_gguf_kv_u32(w, "llama4.block_count", s->n_layer);
    mr_gguf_kv_u32(w, "llama4.context_length", s->n_ctx);
    mr_gguf_kv_u32(w, "llama4.embedding_length", s->n_embd);
    mr_gguf_kv_u32(w, "llama4.feed_forward_length", x->n_ff_dense);
    mr_gguf_kv_u32(w, "llama4.attention.head_count", s->n_head);
    mr_gguf_kv_u32(w, "llama4.attention.head_count_kv", s->n_head_kv);
    mr_gguf_kv_f32(w, "llama4.rope.freq_base", s->rope_base);
    mr_gguf_kv_f32(w, "llama4.attention.layer_norm_rms_epsilon", 1e-5f);
    mr_gguf_kv_u32(w, "llama4.expert_count", s->n_expert);
    mr_gguf_kv_u32(w, "llama4.expert_used_count", s->n_expert_used);
    mr_gguf_kv_u32(w, "llama4.attention.key_length", x->head_dim);
    mr_gguf_kv_u32(w, "llama4.attention.value_length", x->head_dim);
    mr_gguf_kv_u32(w, "general.file_type", file_type_of(p));
    mr_gguf_kv_u32(w, "llama4.vocab_size", s->n_vocab);
    mr_gguf_kv_u32(w, "llama4.rope.dimension_count", x->head_dim);
    mr_gguf_kv_u32(w, "llama4.interleave_moe_layer_step", x->moe_step);
    mr_gguf_kv_u32(w, "llama4.expert_feed_forward_length", s->n_ff);
    mr_gguf_kv_u32(w, "general.quantization_version", 2);
}

/* The qwen3moe keys in llama.cpp's converter's order. */
static void write_qwen3_keys(mr_gguf_writer *w, const mr_synth_params *p, uint32_t file_type)
{
    const mr_synth_shape *s = &p->shape;
    mr_gguf_kv_u32(w, "qwen3moe.block_count", s->n_layer);
    mr_gguf_kv_u32(w, "qwen3moe.context_length", s->n_ctx);
    mr_gguf_kv_u32(w, "qwen3moe.embedding_length", s->n_embd);
    mr_gguf_kv_u32(w, "qwen3moe.feed_forward_length", s->qwen3->n_ff_dense);
    mr_gguf_kv_u32(w, "qwen3moe.attention.head_count", s->n_head);
    mr_gguf_kv_u32(w, "qwen3moe.attention.head_count_kv", s->n_head_kv);
    mr_gguf_kv_f32(w, "qwen3moe.rope.freq_base", s->rope_base);
    mr_gguf_kv_f32(w, "qwen3moe.attention.layer_norm_rms_epsilon", 1e-6f);
    mr_gguf_kv_u32(w, "qwen3moe.expert_used_count", s->n_expert_used);
    mr_gguf_kv_u32(w, "qwen3moe.attention.key_length", s->qwen3->head_dim);
    mr_gguf_kv_u32(w, "qwen3moe.attention.value_length", s->qwen3->head_dim);
    mr_gguf_kv_u32(w, "general.file_type", file_type);
    mr_gguf_kv_u32(w, "qwen3moe.expert_count", s->n_expert);
    mr_gguf_kv_u32(w, "qwen3moe.expert_feed_forward_length", s->n_ff);
    mr_gguf_kv_u32(w, "general.quantization_version", 2);
}

/* The gpt-oss keys, in llama.cpp's converter's order. */
static void write_gptoss_keys(mr_gguf_writer *w, const mr_synth_shape *s)
{
    const struct mr_synth_gptoss *x = s->gptoss;
    mr_gguf_kv_u32(w, "gpt-oss.block_count", s->n_layer);
    mr_gguf_kv_u32(w, "gpt-oss.context_length", s->n_ctx);
    mr_gguf_kv_u32(w, "gpt-oss.embedding_length", s->n_embd);
    mr_gguf_kv_u32(w, "gpt-oss.feed_forward_length", s->n_ff);
    mr_gguf_kv_u32(w, "gpt-oss.attention.head_count", s->n_head);
    mr_gguf_kv_u32(w, "gpt-oss.attention.head_count_kv", s->n_head_kv);
    mr_gguf_kv_str(w, "gpt-oss.rope.scaling.type", "yarn");
    mr_gguf_kv_f32(w, "gpt-oss.rope.scaling.factor", x->yarn_factor);
    mr_gguf_kv_u32(w, "gpt-oss.rope.scaling.original_context_length", x->yarn_orig_ctx);
    mr_gguf_kv_f32(w, "gpt-oss.rope.scaling.yarn_beta_fast", 32.0f);
    mr_gguf_kv_f32(w, "gpt-oss.rope.scaling.yarn_beta_slow", 1.0f);
    mr_gguf_kv_f32(w, "gpt-oss.rope.freq_base", s->rope_base);
    mr_gguf_kv_f32(w, "gpt-oss.attention.layer_norm_rms_epsilon", 1e-5f);
    mr_gguf_kv_u32(w, "gpt-oss.expert_count", s->n_expert);
    mr_gguf_kv_u32(w, "gpt-oss.expert_used_count", s->n_expert_used);
    mr_gguf_kv_u32(w, "gpt-oss.attention.key_length", x->head_dim);
    mr_gguf_kv_u32(w, "gpt-oss.attention.value_length", x->head_dim);
    mr_gguf_kv_u32(w, "general.file_type", 38); /* MOSTLY_MXFP4_MOE */
    mr_gguf_kv_u32(w, "gpt-oss.attention.sliding_window", x->window);
    mr_gguf_kv_u32(w, "gpt-oss.expert_feed_forward_length", s->n_ff);
    mr_gguf_kv_u32(w, "general.quantization_version", 2);
}

static mr_status write_metadata(mr_gguf_writer *w, const mr_synth_params *p, uint64_t n_tensors,
                                const vocab *v)
{
    const mr_synth_shape *s = &p->shape;
    char name[96];
    snprintf(name, sizeof name, "synthetic %s%s (random weights)", s->name,
             p->dense == 2 ? " dense twin of the same total size"
             : p->dense    ? " dense twin" : "");
    mr_gguf_kv_str(w, "general.architecture",
                   s->qwen3 ? "qwen3moe" : s->llama4 ? "llama4" : s->gptoss ? "gpt-oss"
                   : s->mla.kv_lora ? "deepseek2" : "llama");
    mr_gguf_kv_str(w, "general.name", name);
    if (s->qwen3) {
        write_qwen3_keys(w, p, file_type_of(p));
        goto vocab;
    }
    if (s->llama4) {
        write_llama4_keys(w, p);
        goto vocab;
    }
    if (s->gptoss) {
        write_gptoss_keys(w, s);
        goto vocab;
    }
    if (s->mla.kv_lora) {
        write_mla_hparams(w, p);
        goto tokenizer;
    }
    mr_gguf_kv_u32(w, "llama.block_count", s->n_layer);
    mr_gguf_kv_u32(w, "llama.context_length", s->n_ctx);
    mr_gguf_kv_u32(w, "llama.embedding_length", s->n_embd);
    mr_gguf_kv_u32(w, "llama.feed_forward_length", (uint32_t)ffn_width(p));
    mr_gguf_kv_u32(w, "llama.attention.head_count", s->n_head);
    mr_gguf_kv_u32(w, "llama.attention.head_count_kv", s->n_head_kv);
    mr_gguf_kv_f32(w, "llama.rope.freq_base", s->rope_base);
    mr_gguf_kv_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    if (!p->dense) {
        mr_gguf_kv_u32(w, "llama.expert_count", s->n_expert);
        mr_gguf_kv_u32(w, "llama.expert_used_count", s->n_expert_used);
    }
    mr_gguf_kv_u32(w, "general.file_type", file_type_of(p));
    mr_gguf_kv_u32(w, "llama.vocab_size", s->n_vocab);
    mr_gguf_kv_u32(w, "llama.rope.dimension_count", s->n_embd / s->n_head);
tokenizer:
    mr_gguf_kv_u32(w, "general.quantization_version", 2);
vocab:
    mr_gguf_kv_str(w, "tokenizer.ggml.model", "llama");
    mr_gguf_kv_str(w, "tokenizer.ggml.pre", "default");
    mr_gguf_kv_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v->tokens, NULL, v->n);
    mr_gguf_kv_arr_f32(w, "tokenizer.ggml.scores", v->scores, v->n);
    mr_gguf_kv_arr_i32(w, "tokenizer.ggml.token_type", v->types, v->n);
    mr_gguf_kv_u32(w, "tokenizer.ggml.bos_token_id", 1);
    mr_gguf_kv_u32(w, "tokenizer.ggml.eos_token_id", 2);
    mr_gguf_kv_u32(w, "tokenizer.ggml.unknown_token_id", 0);
    mr_gguf_kv_bool(w, "tokenizer.ggml.add_bos_token", 1);
    mr_gguf_kv_bool(w, "tokenizer.ggml.add_eos_token", 0);
    mr_gguf_kv_str(w, MR_KEY_QUANTIZER_VERSION, PACKAGE_VERSION);
    mr_gguf_kv_str(w, MR_KEY_CHECKSUM_ALGORITHM, "xxh3-64");
    uint32_t n_expert = p->dense ? 1 : s->n_expert;
    mr_gguf_kv_arr_u64(w, MR_KEY_CHECKSUM_EXPERTS, NULL, (uint64_t)s->n_layer * n_expert * 3);
    return mr_gguf_kv_arr_u64(w, MR_KEY_CHECKSUM_TENSORS, NULL, n_tensors);
}

mr_status mr_synth_write(const mr_synth_params *p, const char *path, mr_synth_progress progress,
                         void *progress_ctx, mr_error *err)
{
    const mr_synth_shape *s = &p->shape;
    const mr_synth_mla *a = &s->mla;
    /* a mix falls back per tensor (IQ4_NL, Q5_0, ... for rows of 32) */
    const uint32_t bs = p->mix ? 32 : mr_type_computable(p->type) ? mr_type_get(p->type)->block_size : 1;
    if (a->kv_lora && (p->dense || s->n_layer < 2 || a->q_lora % bs || a->kv_lora % bs ||
                       a->qk_nope % bs || (s->n_head * a->v_head) % bs || a->n_ff_dense % bs ||
                       !a->n_group || s->n_expert % a->n_group))
        return mr_fail(err, MR_EINVAL, path, "synth", MR_NO_OFFSET,
                       "shape %s with type %s%s is not a valid model (an MLA shape needs 2 "
                       "layers or more, and has no dense twin)",
                       s->name, mr_type_get(p->type)->name, p->dense ? " and --dense" : "");
    const uint32_t rows = p->mix ? 32 : mr_type_computable(p->type) ? bs : 1;
    if (s->n_layer < 1 || (!s->qwen3 && s->n_embd % s->n_head) || s->n_head % s->n_head_kv ||
        !mr_type_computable(p->type) || s->n_embd % rows || s->n_ff % rows)
        return mr_fail(err, MR_EINVAL, path, "synth", MR_NO_OFFSET,
                       "shape %s with type %s is not a valid model", s->name,
                       mr_type_get(p->type)->name);
    if (!mr_synth_writes_type(p->type))
        return mr_fail(err, MR_EINVAL, path, "synth", MR_NO_OFFSET,
                       "type %s is read, not written, by moerun", mr_type_get(p->type)->name);
    if (s->gptoss && p->dense)
        return mr_fail(err, MR_EINVAL, path, "synth", MR_NO_OFFSET,
                       "gpt-oss has no dense twin (its experts are MXFP4 as released)");
    if (s->gptoss && (s->n_embd % QK_MXFP4 || s->n_ff % QK_MXFP4 ||
                      (uint64_t)s->n_head * s->gptoss->head_dim % mr_type_get(p->type)->block_size))
        return mr_fail(err, MR_EINVAL, path, "synth", MR_NO_OFFSET,
                       "shape %s with type %s is not a valid model", s->name,
                       mr_type_get(p->type)->name);
    if (s->llama4 && p->dense)
        return mr_fail(err, MR_EINVAL, path, "synth", MR_NO_OFFSET,
                       "%s has no dense twin (its shared expert and dense layers are dense "
                       "already)", s->name);
    uint32_t nt = 0;
    tinfo *t = layout(p, &nt);
    vocab v = {0};
    mr_gguf_writer *w = NULL;
    uint8_t *buf = NULL;
    int fd = -1;
    mr_status st;
    block_pools pools = {.seed = p->seed};
    float *alpha = malloc((s->n_expert ? s->n_expert : 1) * sizeof *alpha);
    if (!t || !alpha || vocab_make(&v, s->n_vocab)) {
        st = mr_fail(err, MR_ENOMEM, path, NULL, MR_NO_OFFSET, "no memory");
        goto out;
    }
    if ((st = mr_gguf_writer_new(4096, &w, err)))
        goto out;
    write_metadata(w, p, nt, &v);
    uint64_t biggest = 0, total = 0;
    for (uint32_t i = 0; i < nt; i++) {
        mr_gguf_add_tensor(w, t[i].name, t[i].type, t[i].n_dims, t[i].ne, &t[i].index);
        uint64_t slice = mr_type_row_bytes(t[i].type, t[i].ne[0]) * t[i].ne[1];
        biggest = slice > biggest ? slice : biggest;
        total += slice * t[i].ne[2];
    }
    fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0) {
        st = mr_fail(err, MR_EIO, path, NULL, MR_NO_OFFSET, "cannot create: %s", strerror(errno));
        goto out;
    }
    if ((st = mr_gguf_writer_begin(w, fd, path, err)))
        goto out;
    if (!(buf = malloc(biggest))) {
        st = mr_fail(err, MR_ENOMEM, path, NULL, MR_NO_OFFSET, "no memory for a %llu-byte slice",
                     (unsigned long long)biggest);
        goto out;
    }
    uint64_t done = 0;
    uint32_t layer = 0;
    for (uint32_t i = 0; i < nt; i++) {
        const uint64_t slice = mr_type_row_bytes(t[i].type, t[i].ne[0]) * t[i].ne[1];
        const uint64_t n_el = t[i].ne[0] * t[i].ne[1];
        XXH3_state_t *whole = XXH3_createState();
        XXH3_64bits_reset(whole);
        if (sscanf(t[i].name, "blk.%u.", &layer) != 1)
            layer = 0;
        int part = strstr(t[i].name, "ffn_gate") && t[i].kind == T_EXPERT ? 0
                   : strstr(t[i].name, "ffn_up")                          ? 1
                                                                          : 2;
        for (uint64_t e = 0; e < t[i].ne[2]; e++) {
            rng_t r;
            rng_seed(&r, p->seed ^ ((uint64_t)i << 32) ^ (e << 16));
            if (t[i].kind == T_NORM || t[i].kind == T_ZERO) {
                for (uint64_t k = 0; k < n_el; k++)
                    ((float *)buf)[k] = t[i].kind == T_NORM ? 1.0f : 0.0f;
            } else if (t[i].kind == T_ROPE) {
                llama4_rope_factors(s, (float *)buf);
            } else if (t[i].kind == T_ROUTER && p->zipf > 0) {
                fill_random(&r, t[i].type, buf, n_el, t[i].std, &pools);
                if (zipf_scales((uint32_t)t[i].ne[1], s->n_expert_used, p->zipf,
                                p->seed ^ 0x21bf0000ull ^ layer, alpha)) {
                    st = mr_fail(err, MR_ENOMEM, path, t[i].name, MR_NO_OFFSET, "no memory");
                    break;
                }
                for (uint64_t row = 0; row < t[i].ne[1]; row++)
                    for (uint64_t c = 0; c < t[i].ne[0]; c++)
                        ((float *)buf)[row * t[i].ne[0] + c] *= alpha[row];
            } else {
                if (fill_random(&r, t[i].type, buf, n_el, t[i].std, &pools)) {
                    st = mr_fail(err, MR_ENOMEM, path, t[i].name, MR_NO_OFFSET,
                                 "no memory for the random block pool");
                    break;
                }
            }
            XXH3_64bits_update(whole, buf, slice);
            if (t[i].kind == T_EXPERT) {
                uint32_t n_expert = p->dense ? 1 : s->n_expert;
                uint64_t idx = ((uint64_t)layer * n_expert + e) * 3 + (uint64_t)part;
                if ((st = mr_gguf_writer_patch_u64(w, MR_KEY_CHECKSUM_EXPERTS, idx,
                                                   XXH3_64bits(buf, slice), err)))
                    break;
            }
            if ((st = mr_gguf_writer_data(w, buf, slice, err)))
                break;
            done += slice;
        }
        uint64_t h = XXH3_64bits_digest(whole);
        XXH3_freeState(whole);
        if (st || (st = mr_gguf_writer_patch_u64(w, MR_KEY_CHECKSUM_TENSORS, t[i].index, h, err)))
            goto out;
        if (progress)
            progress(progress_ctx, done, total);
    }
    if ((st = mr_gguf_writer_finish(w, err)))
        goto out;
    if (fsync(fd) != 0) {
        st = mr_fail(err, MR_EIO, path, NULL, MR_NO_OFFSET, "fsync: %s", strerror(errno));
        goto out;
    }
out:
    if (fd >= 0 && close(fd) != 0 && !st)
        st = mr_fail(err, MR_EIO, path, NULL, MR_NO_OFFSET, "close: %s", strerror(errno));
    if (st && fd >= 0)
        unlink(path);
    free(buf);
    free(alpha);
    pools_free(&pools);
    mr_gguf_writer_free(w);
    vocab_free(&v);
    free(t);
    return st;
}
