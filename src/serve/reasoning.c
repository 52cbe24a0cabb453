/* reasoning.c - the streaming split of an answer into reasoning, content
 * and tool calls (see reasoning.h).
 *
 * Undecided text waits in p->buf: either it may still become a marker (a
 * suffix of it is a proper prefix of one), or the state collects until a
 * closing marker (a harmony header, a tool call).  Every step consumes
 * from the front of buf; pieces are small, so the moves are too. */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "serve/reasoning.h"

enum {
    /* harmony */
    H_HEAD, H_BODY, H_RAW,
    /* think */
    T_START, T_REASON, T_AFTER, T_CONTENT, T_TOOL
};

#define HEAD_MAX 1024          /* a harmony header longer than this is not one */
#define TOOL_MAX (1u << 20)    /* a tool call's text */

/* ---------------------------------------------------------------- buffers */
static int grow(rsn_parser *p, char **b, size_t *cap, size_t need)
{
    if (need + 1 <= *cap)
        return 0;
    size_t c = *cap ? *cap : 256;
    while (c < need + 1)
        c *= 2;
    char *q = realloc(*b, c);
    if (!q) {
        p->oom = 1;
        return -1;
    }
    *b = q;
    *cap = c;
    return 0;
}

static int acc_put(rsn_parser *p, const char *s, size_t n)
{
    if (p->acc_n + n > TOOL_MAX) /* bounded: a runaway call is cut, not grown */
        n = TOOL_MAX - p->acc_n;
    if (!n)
        return 0;
    if (grow(p, &p->acc, &p->acc_cap, p->acc_n + n))
        return -1;
    memcpy(p->acc + p->acc_n, s, n);
    p->acc_n += n;
    p->acc[p->acc_n] = 0;
    return 0;
}

static void consume(rsn_parser *p, size_t k)
{
    if (!k)
        return;
    memmove(p->buf, p->buf + k, p->n - k);
    p->n -= k;
}

static int is_ws(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

/* ---------------------------------------------------------------- output */
static void emit(rsn_parser *p, rsn_kind k, const char *s, size_t n)
{
    if (n && !p->oom)
        p->emit(p->ctx, k, s, n, NULL);
}

/* Reasoning in THINK drops the whitespace before its close marker: hold a
 * whitespace tail until text follows it. */
static void emit_reason(rsn_parser *p, const char *s, size_t n)
{
    if (p->cfg.syntax != RSN_SYNTAX_THINK) {
        emit(p, RSN_REASONING, s, n);
        return;
    }
    size_t e = n;
    while (e && is_ws(s[e - 1]))
        e--;
    if (e) {
        emit(p, RSN_REASONING, p->ws, p->ws_n);
        p->ws_n = 0;
        emit(p, RSN_REASONING, s, e);
    }
    if (e < n && !grow(p, &p->ws, &p->ws_cap, p->ws_n + (n - e))) {
        memcpy(p->ws + p->ws_n, s + e, n - e);
        p->ws_n += n - e;
    }
}

static void emit_tool(rsn_parser *p, const char *name, const char *args)
{
    rsn_tool_call tc = {p->n_tools++, name, args};
    if (!p->oom)
        p->emit(p->ctx, RSN_TOOL_CALL, NULL, 0, &tc);
}

/* ---------------------------------------------------------------- scanning */
/* The first full marker in buf (*which, at *pos), or -1 with *safe the
 * length of the front that cannot be part of any marker. */
static int scan(const rsn_parser *p, const char *const *m, size_t nm, size_t *pos, size_t *safe)
{
    size_t best = (size_t)-1;
    int which = -1;
    for (size_t i = 0; i < nm; i++) {
        size_t k = strlen(m[i]);
        if (k > p->n)
            continue;
        const char *h = memmem(p->buf, p->n, m[i], k);
        if (h && (size_t)(h - p->buf) < best) {
            best = (size_t)(h - p->buf);
            which = (int)i;
        }
    }
    if (which >= 0) {
        *pos = best;
        return which;
    }
    size_t hold = 0;
    for (size_t i = 0; i < nm; i++) {
        size_t k = strlen(m[i]);
        for (size_t l = k - 1; l > hold; l--)
            if (l <= p->n && !memcmp(p->buf + p->n - l, m[i], l)) {
                hold = l;
                break;
            }
    }
    *safe = p->n - hold;
    return -1;
}

/* ---------------------------------------------------------------- JSON */
static json_object *parse_json(const char *s, size_t n)
{
    while (n && is_ws(*s))
        s++, n--;
    while (n && is_ws(s[n - 1]))
        n--;
    if (!n || n > TOOL_MAX)
        return NULL;
    json_tokener *tk = json_tokener_new_ex(64);
    if (!tk)
        return NULL;
    json_object *o = json_tokener_parse_ex(tk, s, (int)n);
    if (json_tokener_get_error(tk) != json_tokener_success ||
        (size_t)json_tokener_get_parse_end(tk) != n) {
        json_object_put(o);
        o = NULL;
    }
    json_tokener_free(tk);
    return o;
}

static const char *json_text(json_object *o)
{
    return json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
}

/* {"name": N, "arguments": A} (A an object, or a string holding JSON) ->
 * one call.  0 or -1. */
static int call_from_object(rsn_parser *p, json_object *o)
{
    json_object *name, *args;
    if (!json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, "name", &name) ||
        !json_object_is_type(name, json_type_string))
        return -1;
    if (!json_object_object_get_ex(o, "arguments", &args) &&
        !json_object_object_get_ex(o, "parameters", &args))
        args = NULL;
    const char *a = "{}";
    if (args && json_object_is_type(args, json_type_string))
        a = json_object_get_string(args);
    else if (args)
        a = json_text(args);
    emit_tool(p, json_object_get_string(name), a);
    return 0;
}

/* The whole of a collected tool call (p->acc), by the tool syntax.  The
 * calls are checked first and emitted only when all of them parse. */
static int parse_qwen(rsn_parser *p)
{
    if (!p->acc_n) /* an empty call */
        return -1;
    json_object *o = parse_json(p->acc, p->acc_n), *name;
    if (!o || !json_object_is_type(o, json_type_object) ||
        !json_object_object_get_ex(o, "name", &name) || !json_object_is_type(name, json_type_string)) {
        json_object_put(o);
        return -1;
    }
    call_from_object(p, o);
    json_object_put(o);
    return 0;
}

static int parse_mistral(rsn_parser *p)
{
    if (!p->acc_n) /* an empty call */
        return -1;
    const char *s = p->acc;
    size_t n = p->acc_n;
    while (n && is_ws(*s))
        s++, n--;
    if (n && *s == '[') { /* [{"name":..., "arguments":...}, ...] */
        json_object *o = parse_json(s, n);
        if (!o || !json_object_is_type(o, json_type_array) || !json_object_array_length(o)) {
            json_object_put(o);
            return -1;
        }
        size_t k = json_object_array_length(o);
        for (size_t i = 0; i < k; i++) {
            json_object *c = json_object_array_get_idx(o, i), *name;
            if (!json_object_is_type(c, json_type_object) ||
                !json_object_object_get_ex(c, "name", &name) ||
                !json_object_is_type(name, json_type_string)) {
                json_object_put(o);
                return -1;
            }
        }
        for (size_t i = 0; i < k; i++)
            call_from_object(p, json_object_array_get_idx(o, i));
        json_object_put(o);
        return 0;
    }
    /* NAME[ARGS]{...} parts separated by [TOOL_CALLS]: check, then emit */
    for (int pass = 0; pass < 2; pass++) {
        const char *q = s, *end = s + n;
        while (q < end) {
            const char *next = memmem(q, (size_t)(end - q), "[TOOL_CALLS]", 12);
            const char *stop = next ? next : end;
            const char *a = memmem(q, (size_t)(stop - q), "[ARGS]", 6);
            if (!a || a == q || (size_t)(a - q) > 200)
                return -1;
            char name[256];
            size_t nl = (size_t)(a - q);
            memcpy(name, q, nl);
            name[nl] = 0;
            char *cid = strstr(name, "[CALL_ID]");
            if (cid)
                *cid = 0;
            json_object *o = parse_json(a + 6, (size_t)(stop - a - 6));
            if (!o)
                return -1;
            if (pass)
                emit_tool(p, name, json_text(o));
            json_object_put(o);
            q = next ? next + 12 : end;
        }
    }
    return 0;
}

static int parse_kimi(rsn_parser *p)
{
    if (!p->acc_n) /* an empty call */
        return -1;
    static const char B[] = "<|tool_call_begin|>", A[] = "<|tool_call_argument_begin|>",
                      E[] = "<|tool_call_end|>";
    for (int pass = 0; pass < 2; pass++) {
        const char *q = p->acc, *end = p->acc + p->acc_n;
        int any = 0;
        for (;;) {
            const char *b = memmem(q, (size_t)(end - q), B, sizeof B - 1);
            if (!b)
                break;
            b += sizeof B - 1;
            const char *a = memmem(b, (size_t)(end - b), A, sizeof A - 1);
            if (!a)
                return -1;
            const char *e = memmem(a, (size_t)(end - a), E, sizeof E - 1);
            const char *ae = e ? e : end;
            /* "functions.NAME:IDX" */
            const char *id = b, *id_end = a;
            while (id < id_end && is_ws(*id))
                id++;
            if (id_end - id > 10 && !memcmp(id, "functions.", 10))
                id += 10;
            const char *colon = id_end;
            for (const char *c = id; c < id_end; c++)
                if (*c == ':')
                    colon = c;
            while (colon > id && is_ws(colon[-1]))
                colon--;
            if (colon == id || colon - id > 200)
                return -1;
            char name[256];
            memcpy(name, id, (size_t)(colon - id));
            name[colon - id] = 0;
            a += sizeof A - 1;
            json_object *o = parse_json(a, (size_t)(ae - a));
            if (!o)
                return -1;
            if (pass)
                emit_tool(p, name, json_text(o));
            json_object_put(o);
            any = 1;
            q = e ? e + sizeof E - 1 : end;
        }
        if (!any)
            return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- harmony */
static const char *const H_HEAD_M[] = {"<|message|>"};
static const char *const H_BODY_M[] = {"<|end|>", "<|call|>", "<|return|>", "<|start|>"};

/* The header in acc ("<|start|>assistant to=functions.f<|channel|>commentary
 * <|constrain|>json"): what the body that follows is. */
static void harmony_header(rsn_parser *p)
{
    const char *h = p->acc ? p->acc : "";
    p->h_name[0] = 0;
    const char *to = strstr(h, "to=");
    if (to) {
        to += 3;
        if (!strncmp(to, "functions.", 10))
            to += 10;
        size_t l = 0;
        while (to[l] && !is_ws(to[l]) && to[l] != '<' && l + 1 < sizeof p->h_name)
            l++;
        memcpy(p->h_name, to, l);
        p->h_name[l] = 0;
    }
    const char *ch = strstr(h, "<|channel|>");
    int analysis = ch && !strncmp(ch + 11, "analysis", 8);
    p->h_kind = p->h_name[0] ? RSN_TOOL_CALL : analysis ? RSN_REASONING : RSN_CONTENT;
}

/* A header that never reached <|message|>: text, unless it is only the
 * role line of a message that did not come. */
static void harmony_drop_head(rsn_parser *p)
{
    p->acc_n = 0;
    if (!p->n || acc_put(p, p->buf, p->n))
        return;
    if (!strstr(p->acc, "<|channel|>") && strncmp(p->acc, "<|start|>", 9))
        emit(p, RSN_CONTENT, p->buf, p->n);
    p->acc_n = 0;
    p->n = 0;
}

static void harmony_end_call(rsn_parser *p)
{
    json_object *o = parse_json(p->acc, p->acc_n);
    if (o) {
        emit_tool(p, p->h_name, json_text(o));
        json_object_put(o);
    } else
        emit(p, RSN_CONTENT, p->acc, p->acc_n);
    p->acc_n = 0;
}

static void harmony_step(rsn_parser *p, int final)
{
    for (;;) {
        size_t pos, safe;
        int w;
        switch (p->state) {
        case H_RAW:
            emit(p, RSN_CONTENT, p->buf, p->n);
            p->n = 0;
            return;
        case H_HEAD:
            w = scan(p, H_HEAD_M, 1, &pos, &safe);
            if (w >= 0 && pos > HEAD_MAX) { /* as if the marker had not come yet */
                p->state = H_RAW;
                continue;
            }
            if (w < 0) {
                if (safe > HEAD_MAX) { /* not harmony after all */
                    p->state = H_RAW;
                    continue;
                }
                if (final)
                    harmony_drop_head(p);
                return;
            }
            p->acc_n = 0;
            acc_put(p, p->buf, pos);
            consume(p, pos + 11);
            harmony_header(p);
            p->acc_n = 0;
            p->state = H_BODY;
            continue;
        case H_BODY:
            w = scan(p, H_BODY_M, 4, &pos, &safe);
            if (w < 0 && final)
                safe = p->n;
            size_t take = w >= 0 ? pos : safe;
            if (p->h_kind == RSN_TOOL_CALL)
                acc_put(p, p->buf, take);
            else
                emit(p, (rsn_kind)p->h_kind == RSN_REASONING ? RSN_REASONING : RSN_CONTENT, p->buf,
                     take);
            consume(p, take);
            if (w < 0) {
                if (final && p->h_kind == RSN_TOOL_CALL)
                    harmony_end_call(p);
                return;
            }
            if (p->h_kind == RSN_TOOL_CALL)
                harmony_end_call(p);
            /* <|start|> is part of the next header; the ends are dropped */
            consume(p, w == 3 ? 0 : strlen(H_BODY_M[w]));
            p->acc_n = 0;
            p->state = H_HEAD;
            continue;
        default: return;
        }
    }
}

/* ---------------------------------------------------------------- think */
static void think_step(rsn_parser *p, int final)
{
    const char *open = p->cfg.think_open ? p->cfg.think_open : "<think>";
    const char *close = p->cfg.think_close ? p->cfg.think_close : "</think>";
    const char *tool_open = NULL, *tool_close = NULL;
    switch (p->cfg.tools) {
    case RSN_TOOLS_QWEN: tool_open = "<tool_call>", tool_close = "</tool_call>"; break;
    case RSN_TOOLS_MISTRAL: tool_open = "[TOOL_CALLS]"; break;
    case RSN_TOOLS_KIMI:
        tool_open = "<|tool_calls_section_begin|>", tool_close = "<|tool_calls_section_end|>";
        break;
    default: break;
    }
    for (;;) {
        size_t pos, safe, i;
        int w;
        switch (p->state) {
        case T_START: /* leading whitespace, then maybe the open marker */
            for (i = 0; i < p->n && is_ws(p->buf[i]); i++)
                ;
            {
                size_t ol = strlen(open), rest = p->n - i;
                if (rest >= ol && !memcmp(p->buf + i, open, ol)) {
                    consume(p, i + ol);
                    p->state = T_REASON;
                    continue;
                }
                if (!final && rest < ol && (rest == 0 || !memcmp(p->buf + i, open, rest)))
                    return; /* may still become the marker */
            }
            p->state = T_CONTENT;
            continue;
        case T_REASON: {
            /* leading whitespace after the open marker is dropped */
            if (!p->seen_text) {
                for (i = 0; i < p->n && is_ws(p->buf[i]); i++)
                    ;
                consume(p, i);
                if (!p->n)
                    return;
                p->seen_text = 1;
            }
            const char *m[1] = {close};
            w = scan(p, m, 1, &pos, &safe);
            if (w < 0) {
                emit_reason(p, p->buf, final ? p->n : safe);
                consume(p, final ? p->n : safe);
                return;
            }
            emit_reason(p, p->buf, pos);
            p->ws_n = 0; /* the whitespace before the close marker */
            consume(p, pos + strlen(close));
            p->state = T_AFTER;
            continue;
        }
        case T_AFTER: /* whitespace after a close marker or a tool call is dropped */
            for (i = 0; i < p->n && is_ws(p->buf[i]); i++)
                ;
            consume(p, i);
            if (!p->n)
                return;
            p->state = T_CONTENT;
            continue;
        case T_CONTENT: {
            if (!tool_open) {
                emit(p, RSN_CONTENT, p->buf, p->n);
                p->n = 0;
                return;
            }
            const char *m[1] = {tool_open};
            w = scan(p, m, 1, &pos, &safe);
            if (w < 0) {
                emit(p, RSN_CONTENT, p->buf, final ? p->n : safe);
                consume(p, final ? p->n : safe);
                return;
            }
            emit(p, RSN_CONTENT, p->buf, pos);
            consume(p, pos + strlen(tool_open));
            p->acc_n = 0;
            p->state = T_TOOL;
            continue;
        }
        case T_TOOL: {
            size_t take = p->n;
            int closed = 0;
            if (tool_close) {
                const char *m[1] = {tool_close};
                w = scan(p, m, 1, &pos, &safe);
                if (w >= 0)
                    take = pos, closed = 1;
                else if (!final)
                    take = safe;
            }
            acc_put(p, p->buf, take);
            consume(p, take + (closed ? strlen(tool_close) : 0));
            if (!closed && !final)
                return;
            int bad = p->cfg.tools == RSN_TOOLS_QWEN      ? parse_qwen(p)
                      : p->cfg.tools == RSN_TOOLS_MISTRAL ? parse_mistral(p)
                                                          : parse_kimi(p);
            if (bad) { /* give the text back as it was */
                emit(p, RSN_CONTENT, tool_open, strlen(tool_open));
                emit(p, RSN_CONTENT, p->acc, p->acc_n);
                if (closed)
                    emit(p, RSN_CONTENT, tool_close, strlen(tool_close));
            }
            p->acc_n = 0;
            p->state = T_AFTER;
            if (!closed)
                return;
            continue;
        }
        default: return;
        }
    }
}

/* ---------------------------------------------------------------- API */
static int ends_with_marker(const char *s, size_t n, const char *m)
{
    while (n && is_ws(s[n - 1]))
        n--;
    size_t k = strlen(m);
    return n >= k && !memcmp(s + n - k, m, k);
}

void rsn_config_for(rsn_config *c, const char *family, const char *prompt, size_t prompt_len)
{
    memset(c, 0, sizeof *c);
    if (!family)
        return;
    if (!strcmp(family, "gpt-oss")) {
        c->syntax = RSN_SYNTAX_HARMONY;
        return;
    }
    c->syntax = RSN_SYNTAX_THINK;
    c->think_open = "<think>";
    c->think_close = "</think>";
    if (!strcmp(family, "chatml") || !strcmp(family, "qwen3"))
        c->tools = RSN_TOOLS_QWEN;
    else if (!strcmp(family, "kimi-k2"))
        c->tools = RSN_TOOLS_KIMI;
    else if (!strcmp(family, "mistral")) {
        c->think_open = "[THINK]";
        c->think_close = "[/THINK]";
        c->tools = RSN_TOOLS_MISTRAL;
    } else if (strcmp(family, "deepseek3")) {
        c->syntax = RSN_SYNTAX_NONE;
        return;
    }
    if (prompt && ends_with_marker(prompt, prompt_len, c->think_open))
        c->forced_open = 1;
}

void rsn_init(rsn_parser *p, const rsn_config *c, rsn_emit_fn emit_fn, void *ctx)
{
    memset(p, 0, sizeof *p);
    p->cfg = *c;
    p->emit = emit_fn;
    p->ctx = ctx;
    if (c->syntax == RSN_SYNTAX_HARMONY)
        p->state = H_HEAD;
    else if (c->syntax == RSN_SYNTAX_THINK)
        p->state = c->forced_open ? T_REASON : T_START;
}

static void step(rsn_parser *p, int final)
{
    if (p->cfg.syntax == RSN_SYNTAX_HARMONY)
        harmony_step(p, final);
    else if (p->cfg.syntax == RSN_SYNTAX_THINK)
        think_step(p, final);
}

int rsn_push(rsn_parser *p, const char *text, size_t n)
{
    if (p->oom)
        return -1;
    if (!n)
        return 0;
    if (p->cfg.syntax == RSN_SYNTAX_NONE) {
        emit(p, RSN_CONTENT, text, n);
        return 0;
    }
    if (grow(p, &p->buf, &p->cap, p->n + n))
        return -1;
    memcpy(p->buf + p->n, text, n);
    p->n += n;
    step(p, 0);
    return p->oom ? -1 : 0;
}

int rsn_finish(rsn_parser *p)
{
    if (p->oom)
        return -1;
    step(p, 1);
    return p->oom ? -1 : 0;
}

void rsn_free(rsn_parser *p)
{
    free(p->buf);
    free(p->acc);
    free(p->ws);
    memset(p, 0, sizeof *p);
}
