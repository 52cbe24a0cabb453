/* fuzz_reasoning.c - libFuzzer harness for the streaming reasoning /
 * tool-call parser (src/serve/reasoning.c).
 *
 * The first byte picks the syntax (harmony, think with each tool syntax,
 * forced-open thinking) and the split points; the rest is the answer,
 * cut into pieces at those points.  Whatever the pieces, the parser must
 * not crash or read out of bounds, must emit non-empty text only, tool
 * calls with a name and JSON arguments, and must give the same split as
 * the answer fed whole.
 *
 * Build: ./configure CC=clang --enable-fuzzers && make tests/fuzz_reasoning
 * Run:   ./tests/fuzz_reasoning -max_total_time=600 -max_len=4096
 */
#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "serve/reasoning.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_fail(void) { __builtin_trap(); }

typedef struct {
    char *text[2]; /* content, reasoning */
    size_t n[2];
    uint64_t tools; /* a hash of the calls */
} out;

static void on_emit(void *ctx, rsn_kind k, const char *s, size_t n, const rsn_tool_call *tc)
{
    out *o = ctx;
    if (k == RSN_TOOL_CALL) {
        if (!tc || !tc->name || !tc->arguments)
            fuzz_fail();
        json_object *a = json_tokener_parse(tc->arguments);
        if (!a)
            fuzz_fail();
        json_object_put(a);
        for (const char *p = tc->name; *p; p++)
            o->tools = o->tools * 131 + (unsigned char)*p;
        for (const char *p = tc->arguments; *p; p++)
            o->tools = o->tools * 131 + (unsigned char)*p;
        o->tools += tc->index + 1;
        return;
    }
    if (!s || !n)
        fuzz_fail();
    int i = k == RSN_REASONING;
    char *q = realloc(o->text[i], o->n[i] + n);
    if (!q)
        fuzz_fail();
    memcpy(q + o->n[i], s, n);
    o->text[i] = q;
    o->n[i] += n;
}

static void run(const rsn_config *c, const uint8_t *d, size_t n, unsigned step, out *o)
{
    memset(o, 0, sizeof *o);
    rsn_parser p;
    rsn_init(&p, c, on_emit, o);
    size_t i = 0, k = 0;
    while (i < n) {
        size_t len = step ? 1 + (k++ * 7 + step) % (step + 3) : n;
        if (len > n - i)
            len = n - i;
        if (rsn_push(&p, (const char *)d + i, len))
            fuzz_fail();
        i += len;
    }
    if (rsn_finish(&p))
        fuzz_fail();
    rsn_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const char *const fam[] = {"gpt-oss", "chatml", "mistral", "kimi-k2", "deepseek3", NULL};
    unsigned sel = data[0];
    rsn_config c;
    const char *prompt = (sel & 8) ? "<think>\n" : "";
    rsn_config_for(&c, fam[sel % 6], prompt, strlen(prompt));
    if (sel & 8)
        prompt = "[THINK]";
    out whole, cut;
    run(&c, data + 1, size - 1, 0, &whole);
    run(&c, data + 1, size - 1, (sel >> 4) + 1, &cut);
    for (int i = 0; i < 2; i++)
        if (whole.n[i] != cut.n[i] || (whole.n[i] && memcmp(whole.text[i], cut.text[i], whole.n[i])))
            fuzz_fail();
    if (whole.tools != cut.tools)
        fuzz_fail();
    for (int i = 0; i < 2; i++) {
        free(whole.text[i]);
        free(cut.text[i]);
    }
    return 0;
}
