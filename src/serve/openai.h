/* openai.h - the OpenAI API's JSON: request bodies of /v1/chat/completions
 * and /v1/completions into a checked struct, and the response, stream-chunk
 * and error objects the official clients parse.  No I/O. */
#ifndef MOERUN_SERVE_OPENAI_H
#define MOERUN_SERVE_OPENAI_H

#include <stddef.h>
#include <stdint.h>

struct json_object;

typedef enum { OAI_CHAT, OAI_COMPLETION } oai_kind;

#define OAI_MAX_STOP 4

typedef struct {
    long max_tokens_limit; /* the largest max_tokens accepted */
} oai_limits;

typedef struct {
    oai_kind kind;
    struct json_object *messages; /* chat: the array (a reference, put by oai_request_free) */
    struct json_object *tools;    /* chat: array or NULL */
    struct json_object *template_kwargs; /* chat_template_kwargs (llama.cpp), object or NULL */
    char *prompt;                 /* completion */
    char *model;                  /* as sent, may be NULL */
    long max_tokens;              /* -1: until the end of turn or the context */
    float temperature, top_p, min_p, presence_penalty, frequency_penalty;
    long top_k;
    int has_seed;
    uint64_t seed;
    char *stop[OAI_MAX_STOP + 1]; /* NULL-terminated */
    int stream, include_usage;
    int ignore_eos;               /* llama-server extension */
    char *reasoning_effort;       /* "low", "medium", "high" or NULL (to the template) */
    int reasoning_raw;            /* reasoning_format "none": the answer's text as is */
} oai_request;

/* An OpenAI error: HTTP status, message, type, param (may be NULL). */
typedef struct {
    int status;
    char message[400];
    const char *type;
    char param[64];
} oai_error;

void oai_error_set(oai_error *e, int status, const char *type, const char *param,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Parse and check a request body (len bytes, need not be NUL-terminated).
 * 0 on success; -1 with *e filled (400: malformed JSON, wrong types,
 * values out of range, n != 1).  Unknown fields are ignored, as OpenAI's
 * clients send many. */
int oai_parse_request(const char *body, size_t len, oai_kind kind, const oai_limits *lim,
                      oai_request *out, oai_error *e);
void oai_request_free(oai_request *r);

/* {"error": {...}} as a malloc'd string. */
char *oai_error_json(const oai_error *e);

typedef struct {
    const char *id, *model;
    int64_t created;
    size_t prompt_tokens, completion_tokens, cached_tokens;
} oai_meta;

/* The whole response of a non-streamed request (malloc'd). */
char *oai_response_json(oai_kind kind, const oai_meta *m, const char *text, size_t len,
                        const char *finish_reason);
/* One streamed chunk's JSON (malloc'd): first (role), a content delta,
 * the last (finish_reason, empty delta), or usage (choices: []).
 * with_usage_null: include "usage": null as OpenAI does when
 * include_usage is set. */
typedef enum { OAI_CHUNK_ROLE, OAI_CHUNK_DELTA, OAI_CHUNK_FINISH, OAI_CHUNK_USAGE } oai_chunk;
char *oai_chunk_json(oai_kind kind, oai_chunk what, const oai_meta *m, const char *text,
                     size_t len, const char *finish_reason, int with_usage_null);

/* A chat answer split by serve/reasoning.h.  content NULL with tool calls
 * is sent as null; reasoning NULL leaves reasoning_content out. */
typedef struct {
    char id[96];
    const char *name, *arguments;
} oai_tool_call;

typedef struct {
    const char *content, *reasoning;
    size_t content_len, reasoning_len;
    const oai_tool_call *tools;
    size_t n_tools;
} oai_message;

char *oai_chat_response_json(const oai_meta *m, const oai_message *msg, const char *finish_reason);
/* A streamed chat delta of one kind: reasoning (reasoning_content), or
 * one tool call (tool_calls[index], whole), else content. */
typedef enum { OAI_DELTA_CONTENT, OAI_DELTA_REASONING, OAI_DELTA_TOOL } oai_delta;
char *oai_chat_delta_json(const oai_meta *m, oai_delta what, const char *text, size_t len,
                          const oai_tool_call *tc, size_t index, int with_usage_null);

#endif
