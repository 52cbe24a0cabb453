/* openai.c - OpenAI request parsing and response JSON (see openai.h).
 * Every field is type-checked before use; nothing a client sends is
 * trusted to be the type or range the API documents. */
#include <json-c/json.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/openai.h"

void oai_error_set(oai_error *e, int status, const char *type, const char *param,
                   const char *fmt, ...)
{
    e->status = status;
    e->type = type;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
}

static int bad(oai_error *e, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int bad(oai_error *e, const char *param, const char *fmt, ...)
{
    e->status = 400;
    e->type = "invalid_request_error";
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return -1;
}

static int is_number(json_object *v)
{
    return json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double);
}

/* A number field in [lo, hi]; absent or null leaves *out. */
static int get_float(json_object *o, const char *key, double lo, double hi, float *out, oai_error *e)
{
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null))
        return 0;
    if (!is_number(v))
        return bad(e, key, "'%s' must be a number", key);
    double d = json_object_get_double(v);
    if (!isfinite(d) || d < lo || d > hi)
        return bad(e, key, "'%s' must be between %g and %g, got %g", key, lo, hi, d);
    *out = (float)d;
    return 0;
}

static int get_int(json_object *o, const char *key, int64_t lo, int64_t hi, long *out, int *given,
                   oai_error *e)
{
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null))
        return 0;
    if (!json_object_is_type(v, json_type_int)) {
        /* 3.0 is accepted as 3, as Python clients may send floats */
        if (json_object_is_type(v, json_type_double)) {
            double d = json_object_get_double(v);
            if (d == floor(d) && d >= (double)lo && d <= (double)hi) {
                *out = (long)d;
                if (given)
                    *given = 1;
                return 0;
            }
        }
        return bad(e, key, "'%s' must be an integer", key);
    }
    int64_t x = json_object_get_int64(v);
    if (x < lo || x > hi)
        return bad(e, key, "'%s' must be between %lld and %lld, got %lld", key, (long long)lo,
                   (long long)hi, (long long)x);
    *out = (long)x;
    if (given)
        *given = 1;
    return 0;
}

static int get_bool(json_object *o, const char *key, int *out, oai_error *e)
{
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null))
        return 0;
    if (!json_object_is_type(v, json_type_boolean))
        return bad(e, key, "'%s' must be a boolean", key);
    *out = json_object_get_boolean(v);
    return 0;
}

/* A message's content: a string, null, or an array of {"type":"text"}
 * parts (joined, as llama-server does). */
static int check_content(json_object *m, size_t i, oai_error *e)
{
    json_object *c;
    char param[48];
    snprintf(param, sizeof param, "messages[%zu].content", i);
    if (!json_object_object_get_ex(m, "content", &c) || json_object_is_type(c, json_type_null))
        return 0;
    if (json_object_is_type(c, json_type_string))
        return 0;
    if (!json_object_is_type(c, json_type_array))
        return bad(e, param, "'%s' must be a string or an array of content parts", param);
    /* flatten the text parts into one string */
    size_t n = json_object_array_length(c), total = 0;
    for (size_t k = 0; k < n; k++) {
        json_object *part = json_object_array_get_idx(c, k), *t, *txt;
        if (!json_object_is_type(part, json_type_object) ||
            !json_object_object_get_ex(part, "type", &t) || !json_object_is_type(t, json_type_string))
            return bad(e, param, "'%s' parts must be objects with a 'type'", param);
        if (strcmp(json_object_get_string(t), "text"))
            return bad(e, param, "content part type '%.40s' is not supported (text only)",
                       json_object_get_string(t));
        if (!json_object_object_get_ex(part, "text", &txt) || !json_object_is_type(txt, json_type_string))
            return bad(e, param, "a text part needs a string 'text'");
        total += (size_t)json_object_get_string_len(txt);
    }
    char *s = malloc(total + 1);
    if (!s)
        return bad(e, param, "out of memory");
    size_t o = 0;
    for (size_t k = 0; k < n; k++) {
        json_object *part = json_object_array_get_idx(c, k), *txt;
        json_object_object_get_ex(part, "text", &txt);
        size_t l = (size_t)json_object_get_string_len(txt);
        memcpy(s + o, json_object_get_string(txt), l);
        o += l;
    }
    s[o] = 0;
    json_object_object_add(m, "content", json_object_new_string_len(s, (int)o));
    free(s);
    return 0;
}

/* Earlier turns of a reasoning model, as the templates read them:
 * reasoning_content (OpenAI-style clients, Qwen3's template) and thinking
 * (gpt-oss's) both present; tool-call arguments sent as JSON text become
 * the object the templates print with tojson (as llama.cpp does); an
 * assistant turn of only tool calls gets content "" (gpt-oss's template
 * tests `in message.content`). */
static int normalize_turn(json_object *m, const char *param, oai_error *e)
{
    json_object *v, *tc;
    int has_r = json_object_object_get_ex(m, "reasoning_content", &v) &&
                json_object_is_type(v, json_type_string);
    json_object *th;
    int has_t = json_object_object_get_ex(m, "thinking", &th) &&
                json_object_is_type(th, json_type_string);
    if (has_r && !has_t)
        json_object_object_add(m, "thinking", json_object_get(v));
    else if (has_t && !has_r)
        json_object_object_add(m, "reasoning_content", json_object_get(th));
    if (!json_object_object_get_ex(m, "tool_calls", &tc) || json_object_is_type(tc, json_type_null))
        return 0;
    if (!json_object_is_type(tc, json_type_array))
        return bad(e, param, "'%s.tool_calls' must be an array", param);
    size_t n = json_object_array_length(tc);
    for (size_t i = 0; i < n; i++) {
        json_object *c = json_object_array_get_idx(tc, i), *f, *a;
        if (!json_object_is_type(c, json_type_object))
            return bad(e, param, "'%s.tool_calls' must hold objects", param);
        if (!json_object_object_get_ex(c, "function", &f) || !json_object_is_type(f, json_type_object))
            continue;
        if (json_object_object_get_ex(f, "arguments", &a) && json_object_is_type(a, json_type_string)) {
            json_object *o = json_tokener_parse(json_object_get_string(a));
            if (o && json_object_is_type(o, json_type_object))
                json_object_object_add(f, "arguments", o);
            else if (o)
                json_object_put(o);
        }
    }
    if (!json_object_object_get_ex(m, "content", &v) || json_object_is_type(v, json_type_null))
        json_object_object_add(m, "content", json_object_new_string(""));
    return 0;
}

static int parse_messages(json_object *root, oai_request *r, oai_error *e)
{
    json_object *msgs;
    if (!json_object_object_get_ex(root, "messages", &msgs))
        return bad(e, "messages", "'messages' is required");
    if (!json_object_is_type(msgs, json_type_array) || json_object_array_length(msgs) == 0)
        return bad(e, "messages", "'messages' must be a non-empty array");
    size_t n = json_object_array_length(msgs);
    for (size_t i = 0; i < n; i++) {
        json_object *m = json_object_array_get_idx(msgs, i), *role;
        char param[48];
        snprintf(param, sizeof param, "messages[%zu]", i);
        if (!json_object_is_type(m, json_type_object))
            return bad(e, param, "'%s' must be an object", param);
        if (!json_object_object_get_ex(m, "role", &role) || !json_object_is_type(role, json_type_string))
            return bad(e, param, "'%s.role' must be a string", param);
        const char *rs = json_object_get_string(role);
        if (strcmp(rs, "system") && strcmp(rs, "user") && strcmp(rs, "assistant") &&
            strcmp(rs, "tool") && strcmp(rs, "developer") && strcmp(rs, "function"))
            return bad(e, param, "unknown role '%.40s'", rs);
        if (check_content(m, i, e))
            return -1;
        /* the templates expect content present: null when absent */
        json_object *c;
        if (!json_object_object_get_ex(m, "content", &c))
            json_object_object_add(m, "content", NULL);
        if (!strcmp(rs, "assistant") && normalize_turn(m, param, e))
            return -1;
        /* developer is OpenAI's newer name for system */
        if (!strcmp(rs, "developer"))
            json_object_object_add(m, "role", json_object_new_string("system"));
    }
    r->messages = json_object_get(msgs);
    json_object *v;
    if (json_object_object_get_ex(root, "tools", &v) && !json_object_is_type(v, json_type_null)) {
        if (!json_object_is_type(v, json_type_array))
            return bad(e, "tools", "'tools' must be an array");
        r->tools = json_object_get(v);
    }
    if (json_object_object_get_ex(root, "chat_template_kwargs", &v) &&
        !json_object_is_type(v, json_type_null)) {
        if (!json_object_is_type(v, json_type_object))
            return bad(e, "chat_template_kwargs", "'chat_template_kwargs' must be an object");
        r->template_kwargs = json_object_get(v);
    }
    return 0;
}

static int parse_prompt(json_object *root, oai_request *r, oai_error *e)
{
    json_object *p;
    if (!json_object_object_get_ex(root, "prompt", &p))
        return bad(e, "prompt", "'prompt' is required");
    if (json_object_is_type(p, json_type_array)) {
        if (json_object_array_length(p) != 1 ||
            !json_object_is_type(json_object_array_get_idx(p, 0), json_type_string))
            return bad(e, "prompt", "'prompt' as an array must hold exactly one string (n = 1)");
        p = json_object_array_get_idx(p, 0);
    }
    if (!json_object_is_type(p, json_type_string))
        return bad(e, "prompt", "'prompt' must be a string");
    r->prompt = strdup(json_object_get_string(p));
    if (!r->prompt)
        return bad(e, "prompt", "out of memory");
    return 0;
}

static int parse_stop(json_object *root, oai_request *r, oai_error *e)
{
    json_object *s;
    if (!json_object_object_get_ex(root, "stop", &s) || json_object_is_type(s, json_type_null))
        return 0;
    if (json_object_is_type(s, json_type_string)) {
        if (json_object_get_string_len(s) == 0)
            return 0;
        r->stop[0] = strdup(json_object_get_string(s));
        return r->stop[0] ? 0 : bad(e, "stop", "out of memory");
    }
    if (!json_object_is_type(s, json_type_array))
        return bad(e, "stop", "'stop' must be a string or an array of strings");
    size_t n = json_object_array_length(s), k = 0;
    if (n > OAI_MAX_STOP)
        return bad(e, "stop", "at most %d stop sequences", OAI_MAX_STOP);
    for (size_t i = 0; i < n; i++) {
        json_object *x = json_object_array_get_idx(s, i);
        if (!json_object_is_type(x, json_type_string))
            return bad(e, "stop", "'stop' must hold strings");
        if (json_object_get_string_len(x) == 0)
            continue;
        if (json_object_get_string_len(x) > 256)
            return bad(e, "stop", "stop sequences are at most 256 bytes");
        if (!(r->stop[k++] = strdup(json_object_get_string(x))))
            return bad(e, "stop", "out of memory");
    }
    return 0;
}

int oai_parse_request(const char *body, size_t len, oai_kind kind, const oai_limits *lim,
                      oai_request *r, oai_error *e)
{
    memset(r, 0, sizeof *r);
    r->kind = kind;
    r->max_tokens = -1;
    r->temperature = 0.8f; /* llama-server's defaults */
    r->top_p = 0.95f;
    r->min_p = 0.05f;
    r->top_k = 40;
    if (len > (size_t)INT32_MAX)
        return bad(e, NULL, "request body too large");
    json_tokener *tk = json_tokener_new_ex(64);
    if (!tk)
        return bad(e, NULL, "out of memory");
    json_tokener_set_flags(tk, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    json_object *root = json_tokener_parse_ex(tk, body, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tk);
    size_t used = (size_t)json_tokener_get_parse_end(tk);
    json_tokener_free(tk);
    if (!root || jerr != json_tokener_success) {
        if (root)
            json_object_put(root);
        return bad(e, NULL, "malformed JSON: %s", jerr == json_tokener_continue
                                                      ? "unexpected end of input"
                                                      : json_tokener_error_desc(jerr));
    }
    for (size_t i = used; i < len; i++)
        if (body[i] != ' ' && body[i] != '\n' && body[i] != '\r' && body[i] != '\t') {
            json_object_put(root);
            return bad(e, NULL, "malformed JSON: data after the object");
        }
    int rc = -1;
    json_object *v;
    long n = 1, mt = -1, mct = -1;
    if (!json_object_is_type(root, json_type_object)) {
        bad(e, NULL, "the request body must be a JSON object");
        goto out;
    }
    if (json_object_object_get_ex(root, "model", &v) && !json_object_is_type(v, json_type_null)) {
        if (!json_object_is_type(v, json_type_string)) {
            bad(e, "model", "'model' must be a string");
            goto out;
        }
        r->model = strdup(json_object_get_string(v));
    }
    if ((kind == OAI_CHAT ? parse_messages(root, r, e) : parse_prompt(root, r, e)) ||
        parse_stop(root, r, e))
        goto out;
    long limit = lim && lim->max_tokens_limit > 0 ? lim->max_tokens_limit : 1 << 20;
    if (get_int(root, "n", 1, 1 << 20, &n, NULL, e) ||
        get_int(root, "max_tokens", 0, limit, &mt, NULL, e) ||
        get_int(root, "max_completion_tokens", 0, limit, &mct, NULL, e) ||
        get_float(root, "temperature", 0, 2, &r->temperature, e) ||
        get_float(root, "top_p", 0, 1, &r->top_p, e) ||
        get_float(root, "min_p", 0, 1, &r->min_p, e) ||
        get_int(root, "top_k", 0, 1 << 24, &r->top_k, NULL, e) ||
        get_float(root, "presence_penalty", -2, 2, &r->presence_penalty, e) ||
        get_float(root, "frequency_penalty", -2, 2, &r->frequency_penalty, e) ||
        get_bool(root, "stream", &r->stream, e) || get_bool(root, "ignore_eos", &r->ignore_eos, e))
        goto out;
    if (n != 1) {
        bad(e, "n", "only n = 1 is supported");
        goto out;
    }
    r->max_tokens = mct >= 0 ? mct : mt;
    if (r->max_tokens == 0) {
        bad(e, "max_tokens", "'max_tokens' must be at least 1");
        goto out;
    }
    if (json_object_object_get_ex(root, "seed", &v) && !json_object_is_type(v, json_type_null)) {
        if (!json_object_is_type(v, json_type_int)) {
            bad(e, "seed", "'seed' must be an integer");
            goto out;
        }
        r->seed = (uint64_t)json_object_get_int64(v);
        r->has_seed = 1;
    }
    if (json_object_object_get_ex(root, "stream_options", &v) &&
        !json_object_is_type(v, json_type_null)) {
        if (!json_object_is_type(v, json_type_object)) {
            bad(e, "stream_options", "'stream_options' must be an object");
            goto out;
        }
        if (get_bool(v, "include_usage", &r->include_usage, e))
            goto out;
    }
    if (json_object_object_get_ex(root, "reasoning_effort", &v) &&
        !json_object_is_type(v, json_type_null)) {
        const char *x = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";
        if (strcmp(x, "low") && strcmp(x, "medium") && strcmp(x, "high") && strcmp(x, "minimal")) {
            bad(e, "reasoning_effort", "'reasoning_effort' must be \"low\", \"medium\" or \"high\"");
            goto out;
        }
        r->reasoning_effort = strdup(x);
    }
    if (json_object_object_get_ex(root, "reasoning_format", &v) &&
        !json_object_is_type(v, json_type_null)) {
        const char *x = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";
        if (strcmp(x, "none") && strcmp(x, "auto") && strcmp(x, "deepseek")) {
            bad(e, "reasoning_format", "'reasoning_format' must be \"none\", \"auto\" or \"deepseek\"");
            goto out;
        }
        r->reasoning_raw = !strcmp(x, "none");
    }
    if (json_object_object_get_ex(root, "logprobs", &v) && json_object_is_type(v, json_type_boolean) &&
        json_object_get_boolean(v)) {
        bad(e, "logprobs", "logprobs are not supported");
        goto out;
    }
    rc = 0;
out:
    json_object_put(root);
    if (rc)
        oai_request_free(r);
    return rc;
}

void oai_request_free(oai_request *r)
{
    if (r->messages)
        json_object_put(r->messages);
    if (r->tools)
        json_object_put(r->tools);
    if (r->template_kwargs)
        json_object_put(r->template_kwargs);
    free(r->prompt);
    free(r->model);
    free(r->reasoning_effort);
    for (int i = 0; i < OAI_MAX_STOP; i++)
        free(r->stop[i]);
    memset(r, 0, sizeof *r);
}

static char *dump(json_object *o)
{
    const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    char *r = s ? strdup(s) : NULL;
    json_object_put(o);
    return r;
}

char *oai_error_json(const oai_error *e)
{
    json_object *o = json_object_new_object(), *err = json_object_new_object();
    json_object_object_add(err, "message", json_object_new_string(e->message));
    json_object_object_add(err, "type", json_object_new_string(e->type ? e->type : "invalid_request_error"));
    json_object_object_add(err, "param", e->param[0] ? json_object_new_string(e->param) : NULL);
    json_object_object_add(err, "code", json_object_new_int(e->status));
    json_object_object_add(o, "error", err);
    return dump(o);
}

static json_object *usage(const oai_meta *m)
{
    json_object *u = json_object_new_object();
    json_object_object_add(u, "prompt_tokens", json_object_new_int64((int64_t)m->prompt_tokens));
    json_object_object_add(u, "completion_tokens", json_object_new_int64((int64_t)m->completion_tokens));
    json_object_object_add(u, "total_tokens",
                           json_object_new_int64((int64_t)(m->prompt_tokens + m->completion_tokens)));
    json_object *d = json_object_new_object();
    json_object_object_add(d, "cached_tokens", json_object_new_int64((int64_t)m->cached_tokens));
    json_object_object_add(u, "prompt_tokens_details", d);
    return u;
}

static json_object *head(oai_kind kind, const oai_meta *m, int chunk)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_string(m->id));
    json_object_object_add(o, "object",
                           json_object_new_string(kind == OAI_CHAT ? (chunk ? "chat.completion.chunk" : "chat.completion")
                                                                   : "text_completion"));
    json_object_object_add(o, "created", json_object_new_int64(m->created));
    json_object_object_add(o, "model", json_object_new_string(m->model));
    json_object_object_add(o, "system_fingerprint", json_object_new_string("moerun"));
    return o;
}

char *oai_response_json(oai_kind kind, const oai_meta *m, const char *text, size_t len,
                        const char *finish_reason)
{
    json_object *o = head(kind, m, 0), *choices = json_object_new_array(), *c = json_object_new_object();
    json_object_object_add(c, "index", json_object_new_int(0));
    if (kind == OAI_CHAT) {
        json_object *msg = json_object_new_object();
        json_object_object_add(msg, "role", json_object_new_string("assistant"));
        json_object_object_add(msg, "content", json_object_new_string_len(text, (int)len));
        json_object_object_add(c, "message", msg);
    } else {
        json_object_object_add(c, "text", json_object_new_string_len(text, (int)len));
    }
    json_object_object_add(c, "logprobs", NULL);
    json_object_object_add(c, "finish_reason", json_object_new_string(finish_reason));
    json_object_array_add(choices, c);
    json_object_object_add(o, "choices", choices);
    json_object_object_add(o, "usage", usage(m));
    return dump(o);
}

char *oai_chunk_json(oai_kind kind, oai_chunk what, const oai_meta *m, const char *text,
                     size_t len, const char *finish_reason, int with_usage_null)
{
    json_object *o = head(kind, m, 1), *choices = json_object_new_array();
    if (what != OAI_CHUNK_USAGE) {
        json_object *c = json_object_new_object();
        json_object_object_add(c, "index", json_object_new_int(0));
        if (kind == OAI_CHAT) {
            json_object *d = json_object_new_object();
            if (what == OAI_CHUNK_ROLE) {
                json_object_object_add(d, "role", json_object_new_string("assistant"));
                json_object_object_add(d, "content", json_object_new_string(""));
            } else if (what == OAI_CHUNK_DELTA)
                json_object_object_add(d, "content", json_object_new_string_len(text, (int)len));
            json_object_object_add(c, "delta", d);
        } else {
            json_object_object_add(c, "text", json_object_new_string_len(what == OAI_CHUNK_DELTA ? text : "",
                                                                      what == OAI_CHUNK_DELTA ? (int)len : 0));
        }
        json_object_object_add(c, "logprobs", NULL);
        json_object_object_add(c, "finish_reason",
                               what == OAI_CHUNK_FINISH ? json_object_new_string(finish_reason) : NULL);
        json_object_array_add(choices, c);
    }
    json_object_object_add(o, "choices", choices);
    if (what == OAI_CHUNK_USAGE)
        json_object_object_add(o, "usage", usage(m));
    else if (with_usage_null)
        json_object_object_add(o, "usage", NULL);
    return dump(o);
}

static json_object *tool_call_obj(const oai_tool_call *tc, size_t index, int with_index)
{
    json_object *c = json_object_new_object(), *f = json_object_new_object();
    if (with_index)
        json_object_object_add(c, "index", json_object_new_int64((int64_t)index));
    json_object_object_add(c, "id", json_object_new_string(tc->id));
    json_object_object_add(c, "type", json_object_new_string("function"));
    json_object_object_add(f, "name", json_object_new_string(tc->name));
    json_object_object_add(f, "arguments", json_object_new_string(tc->arguments));
    json_object_object_add(c, "function", f);
    return c;
}

char *oai_chat_response_json(const oai_meta *m, const oai_message *msg, const char *finish_reason)
{
    json_object *o = head(OAI_CHAT, m, 0), *choices = json_object_new_array(),
                *c = json_object_new_object(), *jm = json_object_new_object();
    json_object_object_add(c, "index", json_object_new_int(0));
    json_object_object_add(jm, "role", json_object_new_string("assistant"));
    if (msg->n_tools && !msg->content_len)
        json_object_object_add(jm, "content", NULL);
    else
        json_object_object_add(jm, "content", json_object_new_string_len(msg->content ? msg->content : "",
                                                                       (int)msg->content_len));
    if (msg->reasoning)
        json_object_object_add(jm, "reasoning_content",
                               json_object_new_string_len(msg->reasoning, (int)msg->reasoning_len));
    if (msg->n_tools) {
        json_object *a = json_object_new_array();
        for (size_t i = 0; i < msg->n_tools; i++)
            json_object_array_add(a, tool_call_obj(&msg->tools[i], i, 0));
        json_object_object_add(jm, "tool_calls", a);
    }
    json_object_object_add(c, "message", jm);
    json_object_object_add(c, "logprobs", NULL);
    json_object_object_add(c, "finish_reason", json_object_new_string(finish_reason));
    json_object_array_add(choices, c);
    json_object_object_add(o, "choices", choices);
    json_object_object_add(o, "usage", usage(m));
    return dump(o);
}

char *oai_chat_delta_json(const oai_meta *m, oai_delta what, const char *text, size_t len,
                          const oai_tool_call *tc, size_t index, int with_usage_null)
{
    json_object *o = head(OAI_CHAT, m, 1), *choices = json_object_new_array(),
                *c = json_object_new_object(), *d = json_object_new_object();
    json_object_object_add(c, "index", json_object_new_int(0));
    if (what == OAI_DELTA_TOOL) {
        json_object *a = json_object_new_array();
        json_object_array_add(a, tool_call_obj(tc, index, 1));
        json_object_object_add(d, "tool_calls", a);
    } else
        json_object_object_add(d, what == OAI_DELTA_REASONING ? "reasoning_content" : "content",
                               json_object_new_string_len(text, (int)len));
    json_object_object_add(c, "delta", d);
    json_object_object_add(c, "logprobs", NULL);
    json_object_object_add(c, "finish_reason", NULL);
    json_object_array_add(choices, c);
    json_object_object_add(o, "choices", choices);
    if (with_usage_null)
        json_object_object_add(o, "usage", NULL);
    return dump(o);
}
