/* reasoning.h - split a model's streamed answer into reasoning, content
 * and tool calls, as llama-server's --reasoning-format auto does.
 *
 * A streaming state machine: feed it the detokenized text pieces as they
 * come (with special tokens rendered: <|channel|>, [TOOL_CALLS]); a marker
 * may be split across pieces, so text that could still grow into one is
 * held back until the next piece (or rsn_finish) decides.  Output goes to a
 * callback in the order of the text.
 *
 * Syntaxes:
 *  - harmony (gpt-oss): <|channel|>analysis<|message|>...<|end|> is
 *    reasoning; the final channel (and commentary without a recipient) is
 *    content; a message with a recipient (" to=functions.NAME", before or
 *    after <|channel|>) is a tool call whose arguments are its body, ended
 *    by <|call|> (the end of the stream, as <|call|> is an end-of-turn
 *    token).  <|start|>assistant between messages is dropped.
 *  - think (Qwen3, DeepSeek-V3/R1, Kimi K2 thinking, Magistral [THINK]):
 *    open...close at the start of the answer (or from the first byte when
 *    the prompt already opened it) is reasoning, the rest content.
 *    Whitespace right after either marker and before the close marker is
 *    dropped, and content's trailing whitespace, as llama.cpp trims them.
 *    Tool calls in the content, by tool syntax:
 *      qwen:    <tool_call>{"name": N, "arguments": {...}}</tool_call>
 *      mistral: [TOOL_CALLS][{"name": N, "arguments": {...}}, ...] or
 *               [TOOL_CALLS]N[ARGS]{...} (to the end of the answer)
 *      kimi:    <|tool_call_begin|>functions.N:I<|tool_call_argument_begin|>
 *               {...}<|tool_call_end|> (section markers dropped)
 *  - none: everything is content, untouched.
 * A tool call whose JSON does not parse is given back as content. */
#ifndef MOERUN_SERVE_REASONING_H
#define MOERUN_SERVE_REASONING_H

#include <stddef.h>

typedef enum { RSN_SYNTAX_NONE, RSN_SYNTAX_HARMONY, RSN_SYNTAX_THINK } rsn_syntax;
typedef enum { RSN_TOOLS_NONE, RSN_TOOLS_QWEN, RSN_TOOLS_MISTRAL, RSN_TOOLS_KIMI } rsn_tools;

typedef struct {
    rsn_syntax syntax;
    rsn_tools tools;
    const char *think_open, *think_close; /* THINK only */
    int forced_open; /* the prompt ends with think_open: the answer starts in it */
} rsn_config;

/* The syntax of a template family (mr_chat_template_family) for an
 * answer that continues prompt (its end tells whether thinking is already
 * open).  Unknown families get RSN_SYNTAX_NONE. */
void rsn_config_for(rsn_config *c, const char *family, const char *prompt, size_t prompt_len);

typedef enum { RSN_CONTENT, RSN_REASONING, RSN_TOOL_CALL } rsn_kind;

typedef struct {
    size_t index;          /* 0, 1, ... in the answer */
    const char *name;      /* NUL-terminated */
    const char *arguments; /* JSON text, NUL-terminated */
} rsn_tool_call;

/* text/n for CONTENT and REASONING (n > 0); tc for TOOL_CALL.  Pointers
 * are valid during the call only. */
typedef void (*rsn_emit_fn)(void *ctx, rsn_kind kind, const char *text, size_t n,
                            const rsn_tool_call *tc);

typedef struct {
    rsn_config cfg;
    rsn_emit_fn emit;
    void *ctx;
    int state;       /* see reasoning.c */
    char *buf;       /* text not yet decided */
    size_t n, cap;
    char *acc;       /* a tool call or harmony header being collected */
    size_t acc_n, acc_cap;
    char *ws;        /* held whitespace (THINK content/reasoning) */
    size_t ws_n, ws_cap;
    int ws_kind;
    int seen_text;   /* THINK: non-whitespace content has been emitted */
    int h_kind;      /* HARMONY: what the current message's body is */
    char h_name[256];/* HARMONY: the recipient's function name */
    size_t n_tools;
    int oom;
} rsn_parser;

void rsn_init(rsn_parser *p, const rsn_config *c, rsn_emit_fn emit, void *ctx);
/* Feed n bytes.  0, or -1 when out of memory (the parser then emits
 * nothing more). */
int rsn_push(rsn_parser *p, const char *text, size_t n);
/* The stream ended: emit what is held, complete an open tool call. */
int rsn_finish(rsn_parser *p);
void rsn_free(rsn_parser *p);

#endif
