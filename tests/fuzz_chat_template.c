/* fuzz_chat_template.c - libFuzzer harness for the chat-template
 * interpreter.
 *
 * Every input is parsed as a template; one that parses is rendered for a
 * small conversation with tools.  A failure must come with a message and
 * leave no output; nothing may crash, read out of bounds or leak.
 *
 * Build: ./configure CC=clang --enable-fuzzers && make tests/fuzz_chat_template
 * Run:   ./tests/fuzz_chat_template -max_total_time=600 -max_len=4096 tests/corpus/chat_template
 * Inputs that crash go to tests/corpus/chat_template/ (replayed by test_chat_template).
 */
#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chat_template.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_fail(void) { __builtin_trap(); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static json_object *msgs, *tools;
    if (!msgs) {
        msgs = json_tokener_parse(
            "[{\"role\":\"system\",\"content\":\"sys\"},{\"role\":\"user\",\"content\":\"hi \\u00e9\"},"
            "{\"role\":\"assistant\",\"content\":\"<think>a</think>b\",\"tool_calls\":[{\"id\":\"x\","
            "\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":{\"a\":[1,2.5,null]}}}]},"
            "{\"role\":\"tool\",\"content\":\"r\"},{\"role\":\"user\",\"content\":\"\"}]");
        tools = json_tokener_parse("[{\"type\":\"function\",\"function\":{\"name\":\"f\","
                                   "\"parameters\":{\"type\":\"object\",\"properties\":{}}}}]");
    }
    mr_chat_template *t = NULL;
    mr_error err;
    err.msg[0] = 0;
    if (mr_chat_template_new((const char *)data, size, &t, &err) != MR_OK) {
        if (!err.msg[0] || t)
            fuzz_fail();
        return 0;
    }
    mr_chat_render_opts o;
    mr_chat_render_opts_default(&o);
    o.now = 0;
    o.bos_token = "<s>";
    o.eos_token = "</s>";
    o.tools = tools;
    char *out = NULL;
    size_t len = 0;
    err.msg[0] = 0;
    if (mr_chat_template_render(t, msgs, &o, &out, &len, &err) != MR_OK) {
        if (!err.msg[0] || out)
            fuzz_fail();
    } else if (!out || out[len] != 0)
        fuzz_fail();
    free(out);
    mr_chat_template_free(t);
    return 0;
}
