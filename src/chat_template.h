/* chat_template.h - chat templates: the Jinja text a GGUF carries in
 * tokenizer.chat_template, rendered for a conversation.
 *
 * The interpreter covers the Jinja subset real chat templates use (if, for
 * with loop, set and namespace, macros, filters such as tojson, trim, join,
 * selectattr; str and dict methods) with Jinja2's semantics as Hugging
 * Face's apply_chat_template configures them (trim_blocks, lstrip_blocks,
 * loop controls, tojson = json.dumps(ensure_ascii=False)); the output is
 * byte-identical to Jinja2's for the same variables.
 *
 * Variables a render defines: messages, add_generation_prompt, bos_token,
 * eos_token, tools (none when not given), plus every key of `extra`
 * (enable_thinking for Qwen3, reasoning_effort for gpt-oss, ...).
 * strftime_now(fmt) formats `now` in UTC.
 */
#ifndef MOERUN_CHAT_TEMPLATE_H
#define MOERUN_CHAT_TEMPLATE_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

struct json_object;
typedef struct mr_chat_template mr_chat_template;

/* Parse len bytes of template text.  A syntax error is MR_EFORMAT with the
 * line and column in the message. */
mr_status mr_chat_template_new(const char *src, size_t len, mr_chat_template **out,
                               mr_error *err);
void mr_chat_template_free(mr_chat_template *t);

typedef struct {
    const char *bos_token, *eos_token; /* NULL: "" */
    int add_generation_prompt;
    struct json_object *tools; /* array, or NULL (the template sees none) */
    struct json_object *extra; /* object of more variables, or NULL */
    int64_t now;               /* strftime_now's time; < 0: the current time */
} mr_chat_render_opts;

void mr_chat_render_opts_default(mr_chat_render_opts *o);

/* Render messages (a JSON array of {"role", "content", ...} objects) into
 * *out (malloc'd, NUL-terminated; caller frees).  raise_exception() in the
 * template, a type error or a limit (output size, steps, nesting) is
 * MR_EINVAL naming the template's line and column. */
mr_status mr_chat_template_render(const mr_chat_template *t, struct json_object *messages,
                                  const mr_chat_render_opts *o, char **out, size_t *out_len,
                                  mr_error *err);

/* Built-in templates by name (the real templates of those families, see
 * chat_template_builtin.c): "chatml", "mistral" (Mixtral-8x7B-Instruct),
 * "qwen3", "deepseek3", "kimi-k2", "gpt-oss", "llama4".  NULL if unknown. */
const char *mr_chat_template_builtin(const char *name);
/* The names above, NULL-terminated. */
const char *const *mr_chat_template_builtin_names(void);

/* The default when a model carries no template: "chatml", as llama.cpp
 * falls back to. */
#define MR_CHAT_TEMPLATE_DEFAULT "chatml"

/* Which family a template's text belongs to, by its markers ("chatml",
 * "mistral", "deepseek3", "kimi-k2", "gpt-oss", "llama4"), or NULL. */
const char *mr_chat_template_family(const char *src);

/* Text that ends an assistant turn in that family (NULL-terminated; the
 * model's own end-of-sequence token also ends it). */
const char *const *mr_chat_template_stops(const char *family);

#endif
