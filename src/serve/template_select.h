/* template_select.h - which chat template a model is talked to with, and
 * how a conversation becomes tokens; shared by `moerun chat` and `serve`. */
#ifndef MOERUN_SERVE_TEMPLATE_SELECT_H
#define MOERUN_SERVE_TEMPLATE_SELECT_H

#include <stddef.h>

#include "chat_template.h"
#include "gguf.h"
#include "status.h"
#include "tokenizer.h"

struct json_object;

typedef struct {
    mr_chat_template *tpl;
    char *text;            /* the template's source */
    char origin[300];      /* "gguf", "built-in qwen3", "file PATH", "default chatml" */
    int fallback;          /* the model had none: the default is used (warn) */
    const char *family;    /* mr_chat_template_family, may be NULL */
    const char *const *stops; /* end-of-turn text of the family */
    char bos[128], eos[128];  /* the tokenizer's BOS and EOS pieces */
    struct json_object *kwargs; /* extra template variables (owned), may be NULL */
} srv_chat_format;

/* Choose: override (a built-in name, else a file) when given, else the
 * GGUF's tokenizer.chat_template, else MR_CHAT_TEMPLATE_DEFAULT with
 * fallback set.  A template that does not parse is an error. */
mr_status srv_format_open(srv_chat_format *f, const mr_gguf *g, const mr_tokenizer *t,
                          const char *override, mr_error *err);
void srv_format_close(srv_chat_format *f);

/* Render messages; *out malloc'd. */
mr_status srv_format_render(const srv_chat_format *f, struct json_object *messages,
                            int add_generation_prompt, char **out, size_t *len, mr_error *err);

/* Whether the tokenizer should add BOS to a rendered prompt: not when the
 * text already starts with the BOS piece (the template put it there). */
int srv_format_add_bos(const srv_chat_format *f, const mr_tokenizer *t, const char *text);

#endif
