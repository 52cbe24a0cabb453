/* pretok.c - split patterns per tokenizer.ggml.pre, compiled with PCRE2.
 *
 * The table below is data: for each pre name the regexes llama.cpp applies
 * (src/llama-vocab.cpp, llm_tokenizer_bpe), written so that PCRE2 with
 * PCRE2_UTF | PCRE2_UCP gives the pieces llama.cpp gives.  Where llama.cpp
 * does not run its regex as written, the pattern here spells what it runs:
 *   - gpt-2's pattern has no final "|\s+" but llama.cpp's hand-written
 *     matcher for it behaves as if it had (trailing whitespace runs are one
 *     piece), so the pattern says so;
 *   - regexes with \p{..} classes run there on a "collapsed" text where
 *     every non-ASCII character is one byte standing for its category and
 *     ASCII keeps a fixed table in which '~' is neither \p{P} nor \p{S}:
 *     deepseek-v3's classes exclude or admit '~' explicitly;
 *   - regexes without \p{..} run on code points with non-ASCII whitespace
 *     replaced by U+000B, so a literal range never matches whitespace
 *     (deepseek-llm and deepseek-coder CJK ranges);
 *   - kimi-k2 runs a hand-written matcher (Han runs; letters excluding Han
 *     with case-free contractions; digits by three; ...), spelled here as
 *     one regex with llama.cpp's Han ranges.
 * gpt-4o and llama4 use llama.cpp's rewrite of the o200k pattern, where a
 * non-ASCII letter counts as both upper and lower case and combining marks
 * (\p{M}) are not letters; the Hugging Face original differs on a few
 * strings (see tests/test_bpe.c).
 */
#include "pretok.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#define MAX_REGEX 6

#define GPT2_MAIN "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
#define CONTRACTIONS "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
#define LLAMA3_MAIN CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define QWEN2_MAIN CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define UPPERISH "(?:(?=\\p{L})[^a-z])"
#define LOWERISH "(?:(?=\\p{L})[^A-Z])"
#define GPT4O_MAIN "[^\\r\\n\\p{L}\\p{N}]?" UPPERISH "*" LOWERISH "+" CONTRACTIONS "?" \
    "|[^\\r\\n\\p{L}\\p{N}]?" UPPERISH "+" LOWERISH "*" CONTRACTIONS "?" \
    "|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define CJK_NO_SPACE "(?:(?!\\s)[一-龥ࠀ-一가-퟿])+"
#define HAN "\\x{4E00}-\\x{9FFF}\\x{3400}-\\x{4DBF}\\x{20000}-\\x{2A6DF}\\x{2A700}-\\x{2EBEF}" \
    "\\x{F900}-\\x{FAFF}\\x{2F800}-\\x{2FA1F}"
#define KIMI_MAIN "[" HAN "]+|[^\\r\\n\\p{L}\\p{N}]?(?:(?![" HAN "])\\p{L})+" \
    "(?:'[sStTmMdD]|'[rR][eE]|'[vV][eE]|'[lL][lL])?" \
    "|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

typedef struct {
    const char *names[6];          /* the spellings llama.cpp accepts */
    int ignore_merges, add_bos;
    const char *regex[MAX_REGEX];  /* applied in order; NULL ends */
} pre_def;

static const pre_def k_pres[] = {
    {{"default"}, 0, 0,
     {"[\\p{P}\\$\\+<=>\\^~\\|]+", GPT2_MAIN, "\\p{N}+", "[0-9][0-9][0-9]"}},
    {{"gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "mellum"}, 0, 0, {GPT2_MAIN}},
    {{"mpt", "olmo", "jais", "trillion", "exaone4"}, 0, 0, {GPT2_MAIN}},
    {{"llama-bpe", "llama3", "llama-v3", "falcon3", "pixtral", "lfm2"}, 1, 1, {LLAMA3_MAIN}},
    {{"dbrx", "smaug-bpe"}, 0, 0, {LLAMA3_MAIN}},
    {{"qwen2", "deepseek-r1-qwen", "megrez", "stablelm2", "hunyuan"}, 0, 0, {QWEN2_MAIN}},
    {{"deepseek-llm"}, 0, 0,
     {"[\\r\\n]",
      "\\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-ώᾀ-ᾴᾶ-ᾼιῂ-ῄῆ-ῌῐ-ΐῖ-Ίῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤΩℨK-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+",
      "\\s?[!-/:-~！-／：-～‘-‟、-。]+", "\\s+$", CJK_NO_SPACE, "\\p{N}+"}},
    {{"deepseek-coder"}, 0, 0,
     {"[\\r\\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", CJK_NO_SPACE, "\\p{N}"}},
    {{"deepseek-v3", "hunyuan-dense"}, 0, 0,
     {"\\p{N}{1,3}", "[一-龥぀-ゟ゠-ヿ]+",
      "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+"
      "|(?:[^\\r\\n\\p{L}\\p{P}\\p{S}]|~)?[\\p{L}\\p{M}]+"
      "| ?(?:(?!~)[\\p{P}\\p{S}])+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}},
    {{"falcon"}, 0, 0, {"[\\p{P}\\$\\+<=>\\^~\\|`]+", GPT2_MAIN, "[0-9][0-9][0-9]"}},
    {{"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone"}, 0, 0,
     {"\\p{N}", GPT2_MAIN}},
    {{"gpt-4o", "llama4", "minimax-m2", "kanana2"}, 0, 0, {GPT4O_MAIN}},
    {{"kimi-k2"}, 0, 0, {KIMI_MAIN}},
};
#define N_PRES (sizeof k_pres / sizeof k_pres[0])

struct mr_pretok {
    mr_pretok_info info;
    int n_re;
    pcre2_code *re[MAX_REGEX];
    int jit[MAX_REGEX];
};

/* The table entry that accepts name[0..n), or NULL. */
static const pre_def *find_pre(const char *name, size_t n, const char **canon)
{
    for (size_t i = 0; i < N_PRES; i++)
        for (int k = 0; k < 6 && k_pres[i].names[k]; k++)
            if (strlen(k_pres[i].names[k]) == n && memcmp(k_pres[i].names[k], name, n) == 0) {
                *canon = k_pres[i].names[k];
                return &k_pres[i];
            }
    return NULL;
}

int mr_pretok_known(const char *pre)
{
    const char *c;
    return find_pre(pre, strlen(pre), &c) != NULL;
}

void mr_pretok_free(mr_pretok *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->n_re; i++)
        pcre2_code_free(p->re[i]);
    free(p);
}

const mr_pretok_info *mr_pretok_get_info(const mr_pretok *p) { return &p->info; }

mr_status mr_pretok_new(const char *pre, size_t pre_len, mr_pretok **out, mr_error *err)
{
    *out = NULL;
    if (!pre || pre_len == 0) {
        pre = "default";
        pre_len = 7;
    }
    const char *canon = NULL;
    const pre_def *d = find_pre(pre, pre_len, &canon);
    if (!d)
        return mr_fail(err, MR_EUNSUPPORTED, NULL, "tokenizer.ggml.pre", MR_NO_OFFSET,
                       "unknown pre-tokenizer '%.*s' (moerun would tokenize it wrongly)",
                       (int)(pre_len > 64 ? 64 : pre_len), pre);
    mr_pretok *p = calloc(1, sizeof *p);
    if (!p)
        return mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory");
    p->info = (mr_pretok_info){canon, d->ignore_merges, d->add_bos};
    for (int i = 0; i < MAX_REGEX && d->regex[i]; i++) {
        int ec;
        PCRE2_SIZE eo;
        pcre2_code *re = pcre2_compile((PCRE2_SPTR)d->regex[i], PCRE2_ZERO_TERMINATED,
                                       PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &ec, &eo,
                                       NULL);
        if (!re) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(ec, msg, sizeof msg);
            mr_pretok_free(p);
            return mr_fail(err, MR_EUNSUPPORTED, NULL, "tokenizer.ggml.pre", MR_NO_OFFSET,
                           "regex %d of '%s' does not compile at %zu: %s", i, canon,
                           (size_t)eo, (const char *)msg);
        }
        p->re[p->n_re] = re;
        p->jit[p->n_re] = pcre2_jit_compile(re, PCRE2_JIT_COMPLETE) == 0;
        p->n_re++;
    }
    *out = p;
    return MR_OK;
}

typedef struct {
    mr_span *v;
    size_t n, cap;
} span_vec;

/* Append a span; -1 when out of memory. */
static int push(span_vec *s, uint32_t start, uint32_t len)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        mr_span *v = realloc(s->v, cap * sizeof *v);
        if (!v)
            return -1;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = (mr_span){start, len};
    return 0;
}

/* Length of the UTF-8 character led by b (the text is valid). */
static size_t char_len(unsigned char b)
{
    return b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
}

mr_status mr_pretok_split(const mr_pretok *p, const char *text, size_t len, mr_span **spans,
                          size_t *n_spans, mr_error *err)
{
    span_vec cur = {0}, next = {0};
    mr_status st = MR_OK;
    *spans = NULL;
    *n_spans = 0;
    if (len > UINT32_MAX)
        return mr_fail(err, MR_EINVAL, NULL, "text", MR_NO_OFFSET, "text too long");
    if (len == 0)
        return MR_OK;
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    pcre2_match_context *mc = pcre2_match_context_create(NULL);
    pcre2_jit_stack *js = pcre2_jit_stack_create(32 * 1024, 16 * 1024 * 1024, NULL);
    if (!md || !mc || !js || push(&cur, 0, (uint32_t)len)) {
        st = mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory to pre-tokenize");
        goto done;
    }
    pcre2_jit_stack_assign(mc, NULL, js);
    for (int r = 0; r < p->n_re; r++) {
        next.n = 0;
        for (size_t k = 0; k < cur.n; k++) {
            const PCRE2_SPTR subj = (PCRE2_SPTR)text + cur.v[k].start;
            const PCRE2_SIZE n = cur.v[k].len;
            PCRE2_SIZE pos = 0, prev = 0;
            while (pos < n) {
                int rc = p->jit[r] ? pcre2_jit_match(p->re[r], subj, n, pos, PCRE2_NO_UTF_CHECK, md, mc)
                                   : pcre2_match(p->re[r], subj, n, pos, PCRE2_NO_UTF_CHECK, md, mc);
                if (rc == PCRE2_ERROR_NOMATCH)
                    break;
                if (rc < 0) {
                    PCRE2_UCHAR msg[160];
                    pcre2_get_error_message(rc, msg, sizeof msg);
                    st = mr_fail(err, MR_EUNSUPPORTED, NULL, "text",
                                 cur.v[k].start + (uint64_t)pos,
                                 "pre-tokenizer '%s' regex %d failed: %s", p->info.name, r,
                                 (const char *)msg);
                    goto done;
                }
                const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
                if (ov[1] <= ov[0]) { /* empty match: no piece, step one character */
                    pos = ov[0] + char_len(subj[ov[0]]);
                    continue;
                }
                if ((ov[0] > prev && push(&next, cur.v[k].start + (uint32_t)prev,
                                          (uint32_t)(ov[0] - prev))) ||
                    push(&next, cur.v[k].start + (uint32_t)ov[0], (uint32_t)(ov[1] - ov[0]))) {
                    st = mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory");
                    goto done;
                }
                prev = pos = ov[1];
            }
            if (prev < n && push(&next, cur.v[k].start + (uint32_t)prev, (uint32_t)(n - prev))) {
                st = mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory");
                goto done;
            }
        }
        span_vec t = cur;
        cur = next;
        next = t;
    }
    *spans = cur.v;
    *n_spans = cur.n;
    cur.v = NULL;
done:
    free(cur.v);
    free(next.v);
    pcre2_jit_stack_free(js);
    pcre2_match_context_free(mc);
    pcre2_match_data_free(md);
    return st;
}
