/* fuzz_openai.c - libFuzzer harness for the OpenAI request parser
 * (src/serve/openai.c: request body JSON -> oai_request).
 *
 * Every input is parsed as a chat and as a completion request; an accepted
 * request must hold what the API promises (messages an array of objects
 * with string roles, a prompt string, stop strings, sane numbers) and its
 * response objects must build; a rejection must be a 4xx with a message.
 * Nothing may crash, read out of bounds or leak.
 *
 * Build: ./configure CC=clang --enable-fuzzers && make tests/fuzz_openai
 * Run:   ./tests/fuzz_openai -max_total_time=600 -max_len=8192 tests/corpus/openai
 * tests/serve.sh posts every file of tests/corpus/openai/ to a running server.
 */
#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "serve/openai.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_fail(void) { __builtin_trap(); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    oai_limits lim = {.max_tokens_limit = 4096};
    for (int k = 0; k < 2; k++) {
        oai_request r;
        oai_error e;
        memset(&e, 0, sizeof e);
        oai_kind kind = k ? OAI_COMPLETION : OAI_CHAT;
        if (oai_parse_request((const char *)data, size, kind, &lim, &r, &e)) {
            if (e.status < 400 || e.status > 499 || !e.message[0])
                fuzz_fail();
            free(oai_error_json(&e));
            continue;
        }
        if (kind == OAI_CHAT) {
            if (!r.messages || !json_object_is_type(r.messages, json_type_array))
                fuzz_fail();
            for (size_t i = 0; i < json_object_array_length(r.messages); i++) {
                json_object *m = json_object_array_get_idx(r.messages, i), *role;
                if (!json_object_object_get_ex(m, "role", &role) ||
                    !json_object_is_type(role, json_type_string))
                    fuzz_fail();
            }
        } else if (!r.prompt)
            fuzz_fail();
        if (r.max_tokens == 0 || r.max_tokens > 4096 || r.temperature < 0 || r.temperature > 2 ||
            r.top_p < 0 || r.top_p > 1)
            fuzz_fail();
        for (int i = 0; r.stop[i]; i++)
            if (!r.stop[i][0])
                fuzz_fail();
        oai_meta m = {.id = "x", .model = "m", .created = 1, .prompt_tokens = 3};
        free(oai_response_json(kind, &m, "ab", 2, "stop"));
        free(oai_chunk_json(kind, OAI_CHUNK_DELTA, &m, "ab", 2, NULL, r.include_usage));
        oai_request_free(&r);
    }
    return 0;
}
