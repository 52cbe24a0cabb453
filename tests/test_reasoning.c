/* test_reasoning.c - the streaming reasoning / tool-call parser
 * (src/serve/reasoning.c) on real token streams.
 *
 * Answers are tokenized with the fixtures' own vocabularies (gpt-oss's
 * harmony special tokens, Qwen3's <think> that its vocabulary splits into
 * '<' 'think' '>') and fed one detokenized piece at a time with special
 * tokens rendered, as `moerun serve` does; the split must not depend on
 * where the pieces break, so every case is also fed whole and byte by
 * byte.  The expected fields are the texts the answers were built from;
 * one harmony answer is rendered by gpt-oss's own template from an
 * assistant message (thinking + tool call), and parsing must give that
 * message back. */
#include <check.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_template.h"
#include "gguf.h"
#include "serve/reasoning.h"
#include "testutil.h"
#include "tokenizer.h"

/* ---------------------------------------------------------------- collector */
typedef struct {
    char content[4096], reasoning[4096];
    size_t nc, nr;
    char names[4][64], args[4][512];
    size_t ntool, events;
    int order_bad; /* reasoning after content */
} sink;

static void on_emit(void *ctx, rsn_kind k, const char *s, size_t n, const rsn_tool_call *tc)
{
    sink *o = ctx;
    o->events++;
    if (k == RSN_TOOL_CALL) {
        ck_assert_uint_eq(tc->index, o->ntool);
        ck_assert_uint_lt(o->ntool, 4);
        snprintf(o->names[o->ntool], sizeof o->names[0], "%s", tc->name);
        snprintf(o->args[o->ntool], sizeof o->args[0], "%s", tc->arguments);
        o->ntool++;
        return;
    }
    ck_assert_uint_gt(n, 0);
    char *dst = k == RSN_CONTENT ? o->content : o->reasoning;
    size_t *len = k == RSN_CONTENT ? &o->nc : &o->nr;
    ck_assert_uint_lt(*len + n, sizeof o->content);
    memcpy(dst + *len, s, n);
    *len += n;
    dst[*len] = 0;
    if (k == RSN_REASONING && o->nc)
        o->order_bad = 1;
}

static void run_pieces(const rsn_config *c, const char *const *pieces, const size_t *lens, size_t n,
                       sink *o)
{
    memset(o, 0, sizeof *o);
    rsn_parser p;
    rsn_init(&p, c, on_emit, o);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(rsn_push(&p, pieces[i], lens[i]), 0);
    ck_assert_int_eq(rsn_finish(&p), 0);
    rsn_free(&p);
}

static void sink_eq(const sink *a, const sink *b, const char *how)
{
    ck_assert_msg(!strcmp(a->content, b->content), "%s: content '%s' vs '%s'", how, a->content,
                  b->content);
    ck_assert_msg(!strcmp(a->reasoning, b->reasoning), "%s: reasoning '%s' vs '%s'", how,
                  a->reasoning, b->reasoning);
    ck_assert_uint_eq(a->ntool, b->ntool);
    for (size_t i = 0; i < a->ntool; i++) {
        ck_assert_str_eq(a->names[i], b->names[i]);
        ck_assert_str_eq(a->args[i], b->args[i]);
    }
}

/* Feed text whole, byte by byte, and (when tok is given) token by token
 * through the detokenizer; the three must agree.  The result is the
 * token-by-token run (else the whole one). */
static void feed_all_ways(const rsn_config *c, const mr_tokenizer *tok, const char *text, sink *out)
{
    size_t len = strlen(text);
    sink whole, bytes;
    const char *pw[1] = {text};
    run_pieces(c, pw, &len, 1, &whole);
    const char **pb = malloc(len * sizeof *pb);
    size_t *lb = malloc(len * sizeof *lb);
    for (size_t i = 0; i < len; i++)
        pb[i] = text + i, lb[i] = 1;
    run_pieces(c, pb, lb, len, &bytes);
    free(pb);
    free(lb);
    sink_eq(&whole, &bytes, "byte by byte");
    *out = whole;
    if (!tok)
        return;
    int32_t *ids;
    size_t n;
    mr_error err;
    ck_assert_int_eq(mr_tokenize_ex(tok, text, len, MR_TOK_PARSE_SPECIAL, &ids, &n, &err), MR_OK);
    ck_assert_uint_gt(n, 3);
    char **pt = calloc(n + 1, sizeof *pt);
    size_t *lt = calloc(n + 1, sizeof *lt);
    mr_detok dt;
    mr_detok_init(&dt, tok, 0);
    dt.special = 1;
    for (size_t i = 0; i < n; i++) {
        pt[i] = malloc(600);
        lt[i] = mr_detok_push(&dt, ids[i], pt[i], 600);
    }
    pt[n] = malloc(64);
    lt[n] = mr_detok_flush(&dt, pt[n], 64);
    sink toks;
    run_pieces(c, (const char *const *)pt, lt, n + 1, &toks);
    sink_eq(&whole, &toks, "token by token");
    for (size_t i = 0; i <= n; i++)
        free(pt[i]);
    free(pt);
    free(lt);
    free(ids);
    *out = toks;
}

/* ---------------------------------------------------------------- fixtures */
static mr_tokenizer *g_oss, *g_qwen;
static char *g_oss_template;

static mr_tokenizer *load_tok(const char *path)
{
    mr_gguf *g;
    mr_error err;
    mr_tokenizer *t = NULL;
    if (mr_gguf_open(path, &g, &err) != MR_OK)
        return NULL;
    if (mr_tokenizer_load(g, &t, &err) != MR_OK)
        t = NULL;
    if (t && !g_oss_template && mr_gguf_find(g, "tokenizer.chat_template")) {
        mr_str s;
        if (mr_gguf_get_str(g, "tokenizer.chat_template", &s, &err) == MR_OK &&
            strstr(path, "gptoss")) {
            g_oss_template = malloc(s.len + 1);
            memcpy(g_oss_template, s.ptr, s.len);
            g_oss_template[s.len] = 0;
        }
    }
    mr_gguf_close(g);
    return t;
}

static rsn_config cfg_for(const char *family, const char *prompt)
{
    rsn_config c;
    rsn_config_for(&c, family, prompt, prompt ? strlen(prompt) : 0);
    return c;
}

/* ---------------------------------------------------------------- harmony */
START_TEST(test_harmony_analysis_final)
{
    rsn_config c = cfg_for("gpt-oss", NULL);
    ck_assert_int_eq(c.syntax, RSN_SYNTAX_HARMONY);
    sink o;
    feed_all_ways(&c, g_oss,
                  "<|channel|>analysis<|message|>The user says hello. Reply kindly.<|end|>"
                  "<|start|>assistant<|channel|>final<|message|>Hello! How can I help?",
                  &o);
    ck_assert_str_eq(o.reasoning, "The user says hello. Reply kindly.");
    ck_assert_str_eq(o.content, "Hello! How can I help?");
    ck_assert_uint_eq(o.ntool, 0);
    ck_assert_int_eq(o.order_bad, 0);
    /* text that only looks like the start of a marker stays text */
    feed_all_ways(&c, g_oss, "<|channel|>final<|message|>a <|b and <|en d|>", &o);
    ck_assert_str_eq(o.content, "a <|b and <|en d|>");
    ck_assert_str_eq(o.reasoning, "");
}
END_TEST

START_TEST(test_harmony_tool_call)
{
    rsn_config c = cfg_for("gpt-oss", NULL);
    sink o;
    /* recipient before the channel (as the template renders it), the call
     * ended by the end of the stream (<|call|> is end-of-turn) */
    feed_all_ways(&c, g_oss,
                  "<|channel|>analysis<|message|>Need the weather.<|end|>"
                  "<|start|>assistant to=functions.get_weather<|channel|>commentary "
                  "<|constrain|>json<|message|>{\"city\": \"Paris\"}",
                  &o);
    ck_assert_str_eq(o.reasoning, "Need the weather.");
    ck_assert_str_eq(o.content, "");
    ck_assert_uint_eq(o.ntool, 1);
    ck_assert_str_eq(o.names[0], "get_weather");
    ck_assert_str_eq(o.args[0], "{\"city\":\"Paris\"}");
    /* recipient after the channel, ended by <|call|> in the text */
    feed_all_ways(&c, g_oss,
                  "<|channel|>commentary to=functions.lookup <|constrain|>json<|message|>"
                  "{\"q\":[1,2]}<|call|>",
                  &o);
    ck_assert_uint_eq(o.ntool, 1);
    ck_assert_str_eq(o.names[0], "lookup");
    ck_assert_str_eq(o.args[0], "{\"q\":[1,2]}");
    /* a preamble on commentary is content; a call whose JSON is cut is text */
    feed_all_ways(&c, g_oss,
                  "<|channel|>commentary<|message|>Checking.<|end|><|start|>assistant"
                  "<|channel|>commentary to=functions.f json<|message|>{\"a\":",
                  &o);
    ck_assert_str_eq(o.content, "Checking.{\"a\":");
    ck_assert_uint_eq(o.ntool, 0);
}
END_TEST

START_TEST(test_harmony_not_harmony)
{
    /* random weights write anything: it all comes back as content */
    rsn_config c = cfg_for("gpt-oss", NULL);
    sink o;
    feed_all_ways(&c, g_oss, "plain words, no channel at all", &o);
    ck_assert_str_eq(o.content, "plain words, no channel at all");
    char big[3000];
    for (size_t i = 0; i < sizeof big - 1; i++)
        big[i] = (char)('a' + i % 26);
    big[sizeof big - 1] = 0;
    feed_all_ways(&c, NULL, big, &o);
    ck_assert_str_eq(o.content, big);
}
END_TEST

/* The template renders an assistant turn (thinking, then a tool call);
 * the answer after the generation prompt must parse back to that turn. */
START_TEST(test_harmony_template_roundtrip)
{
    ck_assert_ptr_nonnull(g_oss_template);
    mr_chat_template *t;
    mr_error err;
    ck_assert_int_eq(mr_chat_template_new(g_oss_template, strlen(g_oss_template), &t, &err), MR_OK);
    json_object *msgs = json_tokener_parse(
        "[{\"role\":\"user\",\"content\":\"Weather in Paris?\"},"
        "{\"role\":\"assistant\",\"content\":\"\",\"thinking\":\"User wants weather; call the tool.\","
        "\"tool_calls\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
        "\"arguments\":{\"city\":\"Paris\",\"unit\":\"C\"}}}]}]");
    ck_assert_ptr_nonnull(msgs);
    mr_chat_render_opts ro;
    mr_chat_render_opts_default(&ro);
    ro.now = 0;
    json_object *extra = json_tokener_parse("{\"reasoning_effort\":\"high\"}");
    ro.extra = extra;
    char *out;
    size_t n;
    ck_assert_int_eq(mr_chat_template_render(t, msgs, &ro, &out, &n, &err), MR_OK);
    ck_assert_ptr_nonnull(strstr(out, "Reasoning: high"));
    const char *u = strstr(out, "<|start|>user<|message|>Weather in Paris?<|end|>");
    ck_assert_ptr_nonnull(u);
    const char *a = strstr(u, "<|start|>assistant");
    ck_assert_ptr_nonnull(a);
    a += strlen("<|start|>assistant"); /* the generation prompt */
    rsn_config c = cfg_for("gpt-oss", out);
    sink o;
    feed_all_ways(&c, g_oss, a, &o);
    ck_assert_str_eq(o.reasoning, "User wants weather; call the tool.");
    ck_assert_str_eq(o.content, "");
    ck_assert_uint_eq(o.ntool, 1);
    ck_assert_str_eq(o.names[0], "get_weather");
    ck_assert_str_eq(o.args[0], "{\"city\":\"Paris\",\"unit\":\"C\"}");
    free(out);
    json_object_put(msgs);
    json_object_put(extra);
    mr_chat_template_free(t);
}
END_TEST

/* ---------------------------------------------------------------- think */
START_TEST(test_think_qwen3)
{
    rsn_config c = cfg_for("chatml", "<|im_start|>assistant\n");
    ck_assert_int_eq(c.syntax, RSN_SYNTAX_THINK);
    ck_assert_int_eq(c.forced_open, 0);
    sink o;
    feed_all_ways(&c, g_qwen, "<think>\nThe user greets me.\nBe brief.\n</think>\n\nHi there!", &o);
    ck_assert_str_eq(o.reasoning, "The user greets me.\nBe brief.");
    ck_assert_str_eq(o.content, "Hi there!");
    ck_assert_int_eq(o.order_bad, 0);
    /* no think block: untouched content, even "<" and a later <think> */
    feed_all_ways(&c, g_qwen, "  a < b and <think>x</think>", &o);
    ck_assert_str_eq(o.content, "  a < b and <think>x</think>");
    ck_assert_str_eq(o.reasoning, "");
}
END_TEST

START_TEST(test_think_forced_open)
{
    /* DeepSeek-R1's generation prompt ends with <think>\n */
    rsn_config c = cfg_for("deepseek3", "<\xef\xbd\x9c" "Assistant\xef\xbd\x9c><think>\n");
    ck_assert_int_eq(c.forced_open, 1);
    sink o;
    feed_all_ways(&c, g_qwen, "Let me think.\n</think>\n\nThe answer is 4.", &o);
    ck_assert_str_eq(o.reasoning, "Let me think.");
    ck_assert_str_eq(o.content, "The answer is 4.");
    /* a stream cut inside the reasoning: all of it is reasoning */
    feed_all_ways(&c, g_qwen, "Still thinking about </thi", &o);
    ck_assert_str_eq(o.reasoning, "Still thinking about </thi");
    ck_assert_str_eq(o.content, "");
}
END_TEST

START_TEST(test_qwen_tool_calls)
{
    rsn_config c = cfg_for("chatml", NULL);
    sink o;
    feed_all_ways(&c, g_qwen,
                  "<think>\nNeed two lookups.\n</think>\n\n<tool_call>\n{\"name\": \"get_weather\", "
                  "\"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n<tool_call>\n{\"name\": "
                  "\"get_time\", \"arguments\": {\"tz\": \"CET\"}}\n</tool_call>",
                  &o);
    ck_assert_str_eq(o.reasoning, "Need two lookups.");
    ck_assert_str_eq(o.content, "");
    ck_assert_uint_eq(o.ntool, 2);
    ck_assert_str_eq(o.names[0], "get_weather");
    ck_assert_str_eq(o.args[0], "{\"city\":\"Paris\"}");
    ck_assert_str_eq(o.names[1], "get_time");
    ck_assert_str_eq(o.args[1], "{\"tz\":\"CET\"}");
    /* not JSON: given back as text */
    feed_all_ways(&c, g_qwen, "Sure. <tool_call>oops</tool_call>", &o);
    ck_assert_str_eq(o.content, "Sure. <tool_call>oops</tool_call>");
    ck_assert_uint_eq(o.ntool, 0);
}
END_TEST

START_TEST(test_mistral_tool_calls)
{
    rsn_config c = cfg_for("mistral", NULL);
    ck_assert_int_eq(c.tools, RSN_TOOLS_MISTRAL);
    sink o;
    feed_all_ways(&c, NULL,
                  "[TOOL_CALLS][{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2}}, "
                  "{\"name\": \"neg\", \"arguments\": {\"x\": 3}}]",
                  &o);
    ck_assert_uint_eq(o.ntool, 2);
    ck_assert_str_eq(o.names[0], "add");
    ck_assert_str_eq(o.args[0], "{\"a\":1,\"b\":2}");
    ck_assert_str_eq(o.names[1], "neg");
    ck_assert_str_eq(o.content, "");
    /* the newer NAME[ARGS]{...} form, after some text */
    feed_all_ways(&c, NULL, "Calling.[TOOL_CALLS]add[ARGS]{\"a\": 5}[TOOL_CALLS]neg[ARGS]{}", &o);
    ck_assert_str_eq(o.content, "Calling.");
    ck_assert_uint_eq(o.ntool, 2);
    ck_assert_str_eq(o.names[0], "add");
    ck_assert_str_eq(o.args[0], "{\"a\":5}");
    ck_assert_str_eq(o.names[1], "neg");
    ck_assert_str_eq(o.args[1], "{}");
    feed_all_ways(&c, NULL, "[TOOL_CALLS][{\"name\": 3}]", &o);
    ck_assert_str_eq(o.content, "[TOOL_CALLS][{\"name\": 3}]");
    ck_assert_uint_eq(o.ntool, 0);
}
END_TEST

START_TEST(test_kimi_tool_calls)
{
    rsn_config c = cfg_for("kimi-k2", NULL);
    sink o;
    feed_all_ways(&c, NULL,
                  "Let me check.<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0"
                  "<|tool_call_argument_begin|>{\"city\": \"Oslo\"}<|tool_call_end|>"
                  "<|tool_calls_section_end|>",
                  &o);
    ck_assert_str_eq(o.content, "Let me check.");
    ck_assert_uint_eq(o.ntool, 1);
    ck_assert_str_eq(o.names[0], "get_weather");
    ck_assert_str_eq(o.args[0], "{\"city\":\"Oslo\"}");
}
END_TEST

START_TEST(test_none)
{
    rsn_config c = cfg_for(NULL, NULL);
    ck_assert_int_eq(c.syntax, RSN_SYNTAX_NONE);
    sink o;
    feed_all_ways(&c, NULL, "<think>kept</think> as is", &o);
    ck_assert_str_eq(o.content, "<think>kept</think> as is");
}
END_TEST

int main(void)
{
    const char *dir = tu_testdata_or_skip();
    g_oss = load_tok(tu_path("%s/models/tinygptoss/gguf/tinygptoss-mxfp4.gguf", dir));
    g_qwen = load_tok(tu_path("%s/models/tinyqwen3moe/gguf/tinyqwen3moe-bf16.gguf", dir));
    if (!g_oss || !g_qwen)
        tu_skip("the tinygptoss / tinyqwen3moe fixtures are missing");
    Suite *s = suite_create("reasoning");
    TCase *tc = tcase_create("parser");
    tcase_add_test(tc, test_harmony_analysis_final);
    tcase_add_test(tc, test_harmony_tool_call);
    tcase_add_test(tc, test_harmony_not_harmony);
    tcase_add_test(tc, test_harmony_template_roundtrip);
    tcase_add_test(tc, test_think_qwen3);
    tcase_add_test(tc, test_think_forced_open);
    tcase_add_test(tc, test_qwen_tool_calls);
    tcase_add_test(tc, test_mistral_tool_calls);
    tcase_add_test(tc, test_kimi_tool_calls);
    tcase_add_test(tc, test_none);
    suite_add_tcase(s, tc);
    int rc = tu_run_suite(s);
    mr_tokenizer_free(g_oss);
    mr_tokenizer_free(g_qwen);
    free(g_oss_template);
    return rc;
}
