/* http.c - libmicrohttpd glue and the endpoints of `moerun serve` (see
 * http.h).  One thread per connection (MHD's): a handler blocks while its
 * job runs, and a stream's reader blocks until the next text, both in
 * short timed waits that also notice a client that went away (the job is
 * cancelled at once and its slot freed) and a server that is stopping. */
#include <arpa/inet.h>
#include <errno.h>
#include <json-c/json.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "serve/http.h"
#include "serve/openai.h"
#include "serve/reasoning.h"
#include "store_paged.h"

struct srv_http {
    struct MHD_Daemon *d;
    srv_config cfg;
    char host[64], model_name[256];
    char api_key[256];
    atomic_int ready, stopping;
    const mr_tokenizer *tok;
    const srv_chat_format *fmt;
    srv_sched *sched;
    mr_expert_store *store; /* for /metrics: its paged stats are a locked snapshot */
    atomic_ulong ids;
    atomic_ulong http_requests, http_errors;
};

/* Per-request state: the body as it arrives. */
typedef struct {
    char *body;
    size_t n, cap;
    int too_large;
} req_ctx;

/* ---------------------------------------------------------------- replies */
static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, const char *type,
                                 const char *text, size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)text, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "Access-Control-Allow-Origin", "*");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, char *json)
{
    if (!json)
        return send_text(c, 500, "application/json", "{}", 2);
    enum MHD_Result r = send_text(c, status, "application/json; charset=utf-8", json, strlen(json));
    free(json);
    return r;
}

static enum MHD_Result send_obj(struct MHD_Connection *c, unsigned status, json_object *o)
{
    const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    enum MHD_Result r = send_text(c, status, "application/json; charset=utf-8", s, strlen(s));
    json_object_put(o);
    return r;
}

static enum MHD_Result send_error(srv_http *h, struct MHD_Connection *c, const oai_error *e)
{
    atomic_fetch_add(&h->http_errors, 1);
    return send_json(c, (unsigned)e->status, oai_error_json(e));
}

static enum MHD_Result fail(srv_http *h, struct MHD_Connection *c, int status, const char *type,
                            const char *fmt, const char *arg)
{
    oai_error e;
    oai_error_set(&e, status, type, NULL, fmt, arg ? arg : "");
    return send_error(h, c, &e);
}

/* The client closed its end (orderly shutdown or reset). */
static int client_gone(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci)
        return 1;
    char b;
    ssize_t k = recv(ci->connect_fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return k == 0 || (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* ---------------------------------------------------------------- requests */
static void make_id(srv_http *h, const char *prefix, char *out, size_t cap)
{
    unsigned long n = atomic_fetch_add(&h->ids, 1) + 1;
    snprintf(out, cap, "%s-%lx%06lx", prefix, (unsigned long)time(NULL), n);
}

/* Render a chat request's prompt with the model's template. */
static int chat_prompt(srv_http *h, const oai_request *r, char **text, size_t *len, oai_error *e)
{
    mr_chat_render_opts o;
    mr_chat_render_opts_default(&o);
    o.bos_token = h->fmt->bos;
    o.eos_token = h->fmt->eos;
    o.add_generation_prompt = 1;
    o.tools = r->tools;
    json_object *kw = NULL;
    if (h->fmt->kwargs || r->template_kwargs || r->reasoning_effort) {
        kw = json_object_new_object();
        json_object *src[2] = {h->fmt->kwargs, r->template_kwargs};
        for (int i = 0; i < 2; i++) {
            if (!src[i])
                continue;
            json_object_object_foreach(src[i], k, v) json_object_object_add(kw, k, json_object_get(v));
        }
        /* the request's field wins over the server's and the kwargs' */
        if (r->reasoning_effort)
            json_object_object_add(kw, "reasoning_effort", json_object_new_string(r->reasoning_effort));
        o.extra = kw;
    }
    mr_error err;
    mr_status st = mr_chat_template_render(h->fmt->tpl, r->messages, &o, text, len, &err);
    if (kw)
        json_object_put(kw);
    if (st) {
        oai_error_set(e, 400, "invalid_request_error", "messages", "the chat template refused the "
                      "conversation: %s", err.msg);
        return -1;
    }
    return 0;
}

typedef struct {
    srv_http *h;
    srv_job *job;
    struct MHD_Connection *conn;
    oai_kind kind;
    oai_meta meta;
    char id[64];
    int include_usage;
    size_t seen;
    int phase;
    char *pending;
    size_t pend_n, pend_off;
    int split;          /* the answer goes through rp */
    rsn_parser rp;
    oai_tool_call tc;   /* the last tool call's id */
} stream_state;

/* Append one "data: JSON" event (the parser may make several per piece). */
static void stream_queue(stream_state *s, char *json)
{
    if (s->pend_off == s->pend_n) {
        s->pend_n = s->pend_off = 0;
    }
    if (!json)
        return;
    size_t n = strlen(json);
    char *p = realloc(s->pending, s->pend_n + n + 9);
    if (p) {
        s->pending = p;
        memcpy(p + s->pend_n, "data: ", 6);
        memcpy(p + s->pend_n + 6, json, n);
        memcpy(p + s->pend_n + 6 + n, "\n\n", 2);
        s->pend_n += n + 8;
    }
    free(json);
}

static void tool_call_id(const char *req_id, size_t index, oai_tool_call *tc)
{
    const char *tail = strchr(req_id, '-');
    snprintf(tc->id, sizeof tc->id, "call_%s_%zu", tail ? tail + 1 : req_id, index);
}

/* The parser's output as stream deltas. */
static void stream_emit(void *ctx, rsn_kind k, const char *text, size_t n, const rsn_tool_call *t)
{
    stream_state *s = ctx;
    if (k == RSN_TOOL_CALL) {
        tool_call_id(s->id, t->index, &s->tc);
        s->tc.name = t->name;
        s->tc.arguments = t->arguments;
        stream_queue(s, oai_chat_delta_json(&s->meta, OAI_DELTA_TOOL, NULL, 0, &s->tc, t->index,
                                            s->include_usage));
    } else
        stream_queue(s, oai_chat_delta_json(&s->meta, k == RSN_REASONING ? OAI_DELTA_REASONING
                                                                          : OAI_DELTA_CONTENT,
                                            text, n, NULL, 0, s->include_usage));
}

static void fill_usage(stream_state *s)
{
    s->meta.completion_tokens = s->job->n_gen;
    s->meta.cached_tokens = s->job->reused;
}

/* MHD asks for more of the stream: block until there is some. */
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    stream_state *s = cls;
    for (;;) {
        if (s->pend_off < s->pend_n) {
            size_t k = s->pend_n - s->pend_off < max ? s->pend_n - s->pend_off : max;
            memcpy(buf, s->pending + s->pend_off, k);
            s->pend_off += k;
            return (ssize_t)k;
        }
        switch (s->phase) {
        case 0: /* the first chunk carries the role */
            s->phase = 1;
            if (s->kind == OAI_CHAT)
                stream_queue(s, oai_chunk_json(s->kind, OAI_CHUNK_ROLE, &s->meta, NULL, 0, NULL,
                                               s->include_usage));
            continue;
        case 1: {
            if (atomic_load(&s->h->stopping) || client_gone(s->conn)) {
                srv_cancel(s->h->sched, s->job);
                return MHD_CONTENT_READER_END_WITH_ERROR;
            }
            char *chunk;
            size_t n;
            int done;
            srv_wait(s->h->sched, s->job, &s->seen, &chunk, &n, &done, 200);
            if (n && s->split)
                rsn_push(&s->rp, chunk, n);
            else if (n)
                stream_queue(s, oai_chunk_json(s->kind, OAI_CHUNK_DELTA, &s->meta, chunk, n, NULL,
                                               s->include_usage));
            free(chunk);
            if (done) {
                if (s->split)
                    rsn_finish(&s->rp);
                s->phase = 2;
            }
            continue;
        }
        case 2:
            s->phase = 3;
            if (s->job->failed) {
                oai_error e;
                oai_error_set(&e, 500, "server_error", NULL, "%s", s->job->error);
                stream_queue(s, oai_error_json(&e));
            } else
                stream_queue(s, oai_chunk_json(s->kind, OAI_CHUNK_FINISH, &s->meta, NULL, 0,
                                               s->split && s->rp.n_tools ? "tool_calls"
                                               : s->job->finish          ? s->job->finish
                                                                         : "stop",
                                               s->include_usage));
            continue;
        case 3:
            s->phase = 4;
            if (s->include_usage && !s->job->failed) {
                fill_usage(s);
                stream_queue(s, oai_chunk_json(s->kind, OAI_CHUNK_USAGE, &s->meta, NULL, 0, NULL, 0));
            }
            continue;
        case 4:
            s->phase = 5;
            free(s->pending);
            s->pending = strdup("data: [DONE]\n\n");
            s->pend_n = s->pending ? strlen(s->pending) : 0;
            s->pend_off = 0;
            continue;
        default: return MHD_CONTENT_READER_END_OF_STREAM;
        }
    }
}

static void stream_free(void *cls)
{
    stream_state *s = cls;
    srv_cancel(s->h->sched, s->job); /* no-op once done; frees the slot if the client left */
    srv_job_release(s->h->sched, s->job);
    if (s->split)
        rsn_free(&s->rp);
    free(s->pending);
    free(s);
}

/* A whole answer through the parser, into one message. */
typedef struct {
    char *text[2]; /* content, reasoning */
    size_t n[2];
    oai_tool_call *tools;
    size_t n_tools;
    const char *req_id;
    int oom;
} split_acc;

static void split_emit(void *ctx, rsn_kind k, const char *text, size_t n, const rsn_tool_call *t)
{
    split_acc *a = ctx;
    if (k == RSN_TOOL_CALL) {
        oai_tool_call *q = realloc(a->tools, (a->n_tools + 1) * sizeof *q);
        char *nm = strdup(t->name), *ar = strdup(t->arguments);
        if (!q || !nm || !ar) {
            if (q)
                a->tools = q;
            free(nm);
            free(ar);
            a->oom = 1;
            return;
        }
        a->tools = q;
        tool_call_id(a->req_id, t->index, &q[a->n_tools]);
        q[a->n_tools].name = nm;
        q[a->n_tools].arguments = ar;
        a->n_tools++;
        return;
    }
    int i = k == RSN_REASONING;
    char *p = realloc(a->text[i], a->n[i] + n + 1);
    if (!p) {
        a->oom = 1;
        return;
    }
    memcpy(p + a->n[i], text, n);
    a->n[i] += n;
    p[a->n[i]] = 0;
    a->text[i] = p;
}

static char *split_response(const oai_meta *m, const rsn_config *rc, const char *all, size_t n,
                            const char *finish)
{
    split_acc a = {.req_id = m->id};
    rsn_parser p;
    rsn_init(&p, rc, split_emit, &a);
    int bad = rsn_push(&p, all, n) || rsn_finish(&p) || a.oom;
    rsn_free(&p);
    char *out = NULL;
    if (!bad) {
        oai_message msg = {.content = a.text[0] ? a.text[0] : "", .content_len = a.n[0],
                           /* gpt-oss always reasons: the field is always there */
                           .reasoning = a.text[1]                         ? a.text[1]
                                        : rc->syntax == RSN_SYNTAX_HARMONY ? ""
                                                                           : NULL,
                           .reasoning_len = a.n[1],
                           .tools = a.tools, .n_tools = a.n_tools};
        out = oai_chat_response_json(m, &msg, a.n_tools ? "tool_calls" : finish);
    }
    for (size_t i = 0; i < a.n_tools; i++) {
        free((char *)a.tools[i].name);
        free((char *)a.tools[i].arguments);
    }
    free(a.tools);
    free(a.text[0]);
    free(a.text[1]);
    return out;
}

static enum MHD_Result completion(srv_http *h, struct MHD_Connection *c, oai_kind kind,
                                  const char *body, size_t len)
{
    oai_request r;
    oai_error e;
    oai_limits lim = {.max_tokens_limit = h->cfg.max_tokens_limit};
    if (oai_parse_request(body, len, kind, &lim, &r, &e))
        return send_error(h, c, &e);
    char *text = NULL;
    size_t tlen = 0;
    int add_bos;
    rsn_config rc;
    rsn_config_for(&rc, NULL, NULL, 0);
    if (kind == OAI_CHAT) {
        if (chat_prompt(h, &r, &text, &tlen, &e)) {
            oai_request_free(&r);
            return send_error(h, c, &e);
        }
        add_bos = srv_format_add_bos(h->fmt, h->tok, text);
        if (!r.reasoning_raw)
            rsn_config_for(&rc, h->fmt->family, text, tlen);
    } else {
        text = r.prompt;
        r.prompt = NULL;
        tlen = strlen(text);
        add_bos = mr_tokenizer_add_bos(h->tok);
    }
    srv_job *j = srv_job_new();
    mr_error err;
    if (!j || eng_tokenize(h->tok, text, tlen, add_bos, 1, &j->prompt, &j->n_prompt, &err)) {
        free(text);
        oai_request_free(&r);
        srv_job_release(h->sched, j);
        return fail(h, c, 500, "server_error", "cannot tokenize the prompt%s", "");
    }
    free(text);
    uint32_t n_ctx = srv_n_ctx(h->sched);
    if (j->n_prompt == 0 || j->n_prompt >= n_ctx) {
        if (j->n_prompt)
            oai_error_set(&e, 400, "invalid_request_error", kind == OAI_CHAT ? "messages" : "prompt",
                          "the prompt has %zu tokens, more than the context allows (%u)",
                          j->n_prompt, n_ctx - 1);
        else
            oai_error_set(&e, 400, "invalid_request_error", "prompt", "the prompt is empty");
        oai_request_free(&r);
        srv_job_release(h->sched, j);
        return send_error(h, c, &e);
    }
    mr_sampler_params_default(&j->sp.sp);
    j->sp.sp.temp = r.temperature;
    j->sp.sp.top_p = r.top_p;
    j->sp.sp.min_p = r.min_p;
    j->sp.sp.top_k = (int32_t)r.top_k;
    j->sp.sp.seed = r.has_seed ? r.seed : ((uint64_t)time(NULL) << 20) ^ atomic_fetch_add(&h->ids, 1);
    j->sp.presence_penalty = r.presence_penalty;
    j->sp.frequency_penalty = r.frequency_penalty;
    j->max_tokens = r.max_tokens;
    j->ignore_eos = r.ignore_eos;
    /* harmony's structure is in special tokens, kept even in raw text;
     * Mistral's [TOOL_CALLS] is one, rendered only when tools are offered */
    const char *fam = kind == OAI_CHAT ? h->fmt->family : NULL;
    if (fam && !strcmp(fam, "mistral") && !r.tools)
        rc.tools = RSN_TOOLS_NONE;
    j->special = (fam && !strcmp(fam, "gpt-oss")) || rc.tools == RSN_TOOLS_MISTRAL;
    int ns = 0;
    for (int i = 0; r.stop[i] && ns < SRV_MAX_STOPS; i++) {
        j->own[ns] = r.stop[i]; /* the job keeps the request's stop strings */
        r.stop[i] = NULL;
        j->stops[ns] = j->own[ns];
        ns++;
    }
    for (int i = 0; kind == OAI_CHAT && h->fmt->stops[i] && ns < SRV_MAX_STOPS; i++)
        j->stops[ns++] = h->fmt->stops[i];
    j->stops[ns] = NULL;
    size_t n_prompt = j->n_prompt;
    if (srv_submit(h->sched, j, h->cfg.max_queue)) {
        oai_request_free(&r);
        srv_job_release(h->sched, j);
        return fail(h, c, 503, "server_error", "the server is busy (queue full)%s", "");
    }
    oai_meta meta = {.model = h->model_name, .created = (int64_t)time(NULL), .prompt_tokens = n_prompt};
    char id[64];
    make_id(h, kind == OAI_CHAT ? "chatcmpl" : "cmpl", id, sizeof id);
    if (r.stream) {
        stream_state *s = calloc(1, sizeof *s);
        if (!s) {
            srv_cancel(h->sched, j);
            srv_job_release(h->sched, j);
            oai_request_free(&r);
            return MHD_NO;
        }
        s->h = h;
        s->job = j;
        s->conn = c;
        s->kind = kind;
        snprintf(s->id, sizeof s->id, "%s", id);
        s->meta = meta;
        s->meta.id = s->id;
        s->include_usage = r.include_usage;
        if (rc.syntax != RSN_SYNTAX_NONE) {
            s->split = 1;
            rsn_init(&s->rp, &rc, stream_emit, s);
        }
        struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384,
                                                                      stream_read, s, stream_free);
        if (!resp) {
            stream_free(s);
            oai_request_free(&r);
            return MHD_NO;
        }
        MHD_add_response_header(resp, "Content-Type", "text/event-stream");
        MHD_add_response_header(resp, "Cache-Control", "no-cache");
        MHD_add_response_header(resp, "Access-Control-Allow-Origin", "*");
        enum MHD_Result ret = MHD_queue_response(c, 200, resp);
        MHD_destroy_response(resp);
        oai_request_free(&r);
        return ret;
    }
    /* not streamed: wait for the whole answer */
    size_t seen = 0;
    char *all = NULL;
    size_t n_all = 0;
    int done = 0;
    while (!done) {
        if (atomic_load(&h->stopping) || client_gone(c)) {
            srv_cancel(h->sched, j);
            srv_job_release(h->sched, j);
            free(all);
            oai_request_free(&r);
            return MHD_NO;
        }
        char *chunk;
        size_t n;
        srv_wait(h->sched, j, &seen, &chunk, &n, &done, 200);
        if (n) {
            char *p = realloc(all, n_all + n + 1);
            if (p) {
                all = p;
                memcpy(all + n_all, chunk, n);
                n_all += n;
                all[n_all] = 0;
            }
        }
        free(chunk);
    }
    enum MHD_Result ret;
    if (j->failed) {
        oai_error_set(&e, 500, "server_error", NULL, "%s", j->error);
        ret = send_error(h, c, &e);
    } else {
        meta.id = id;
        meta.completion_tokens = j->n_gen;
        meta.cached_tokens = j->reused;
        const char *finish = j->finish ? j->finish : "stop";
        if (rc.syntax != RSN_SYNTAX_NONE)
            ret = send_json(c, 200, split_response(&meta, &rc, all ? all : "", n_all, finish));
        else
            ret = send_json(c, 200, oai_response_json(kind, &meta, all ? all : "", n_all, finish));
    }
    free(all);
    srv_job_release(h->sched, j);
    oai_request_free(&r);
    return ret;
}

/* ---------------------------------------------------------------- llama-server extras */
static json_object *parse_object(srv_http *h, struct MHD_Connection *c, const char *body, size_t len,
                                 enum MHD_Result *ret)
{
    json_tokener *tk = json_tokener_new_ex(64);
    json_object *o = NULL;
    if (tk) {
        json_tokener_set_flags(tk, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
        o = json_tokener_parse_ex(tk, body, (int)len);
        if (json_tokener_get_error(tk) != json_tokener_success && o) {
            json_object_put(o);
            o = NULL;
        }
        json_tokener_free(tk);
    }
    if (!o || !json_object_is_type(o, json_type_object)) {
        if (o)
            json_object_put(o);
        *ret = fail(h, c, 400, "invalid_request_error", "the body must be a JSON object%s", "");
        return NULL;
    }
    return o;
}

static enum MHD_Result tokenize(srv_http *h, struct MHD_Connection *c, const char *body, size_t len)
{
    enum MHD_Result ret;
    json_object *o = parse_object(h, c, body, len, &ret), *v;
    if (!o)
        return ret;
    if (!json_object_object_get_ex(o, "content", &v) || !json_object_is_type(v, json_type_string)) {
        json_object_put(o);
        return fail(h, c, 400, "invalid_request_error", "'content' must be a string%s", "");
    }
    int add_special = 0, parse_special = 1, with_pieces = 0;
    json_object *f;
    if (json_object_object_get_ex(o, "add_special", &f))
        add_special = json_object_get_boolean(f);
    if (json_object_object_get_ex(o, "parse_special", &f))
        parse_special = json_object_get_boolean(f);
    if (json_object_object_get_ex(o, "with_pieces", &f))
        with_pieces = json_object_get_boolean(f);
    int32_t *ids;
    size_t n;
    mr_error err;
    if (eng_tokenize(h->tok, json_object_get_string(v), (size_t)json_object_get_string_len(v),
                     add_special && mr_tokenizer_add_bos(h->tok), parse_special, &ids, &n, &err)) {
        json_object_put(o);
        return fail(h, c, 400, "invalid_request_error", "cannot tokenize: %s", err.msg);
    }
    json_object_put(o);
    json_object *out = json_object_new_object(), *arr = json_object_new_array();
    for (size_t i = 0; i < n; i++) {
        if (!with_pieces) {
            json_object_array_add(arr, json_object_new_int(ids[i]));
            continue;
        }
        json_object *p = json_object_new_object();
        char piece[600];
        mr_detok dt;
        mr_detok_init(&dt, h->tok, 0);
        size_t w = mr_detok_push(&dt, ids[i], piece, sizeof piece);
        w += mr_detok_flush(&dt, piece + w, sizeof piece - w);
        json_object_object_add(p, "id", json_object_new_int(ids[i]));
        json_object_object_add(p, "piece", json_object_new_string_len(piece, (int)w));
        json_object_array_add(arr, p);
    }
    free(ids);
    json_object_object_add(out, "tokens", arr);
    return send_obj(c, 200, out);
}

static enum MHD_Result detokenize(srv_http *h, struct MHD_Connection *c, const char *body, size_t len)
{
    enum MHD_Result ret;
    json_object *o = parse_object(h, c, body, len, &ret), *v;
    if (!o)
        return ret;
    if (!json_object_object_get_ex(o, "tokens", &v) || !json_object_is_type(v, json_type_array)) {
        json_object_put(o);
        return fail(h, c, 400, "invalid_request_error", "'tokens' must be an array of token ids%s", "");
    }
    size_t n = json_object_array_length(v);
    int32_t nv = mr_tokenizer_n_vocab(h->tok);
    char *text = malloc(n * 64 + 16);
    if (!text) {
        json_object_put(o);
        return fail(h, c, 500, "server_error", "out of memory%s", "");
    }
    mr_detok dt;
    mr_detok_init(&dt, h->tok, 1);
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        json_object *x = json_object_array_get_idx(v, i);
        if (!json_object_is_type(x, json_type_int) || json_object_get_int64(x) < 0 ||
            json_object_get_int64(x) >= nv) {
            free(text);
            json_object_put(o);
            return fail(h, c, 400, "invalid_request_error", "token ids must be integers in the "
                        "vocabulary%s", "");
        }
        int32_t id = (int32_t)json_object_get_int64(x);
        const char *piece = mr_token_piece(h->tok, id);
        size_t need = 64 + (piece ? strlen(piece) : 0);
        char *p = realloc(text, w + need + 16);
        if (!p) {
            free(text);
            json_object_put(o);
            return fail(h, c, 500, "server_error", "out of memory%s", "");
        }
        text = p;
        w += mr_detok_push(&dt, id, text + w, need);
    }
    w += mr_detok_flush(&dt, text + w, 16);
    json_object_put(o);
    json_object *out = json_object_new_object();
    json_object_object_add(out, "content", json_object_new_string_len(text, (int)w));
    free(text);
    return send_obj(c, 200, out);
}

static enum MHD_Result apply_template(srv_http *h, struct MHD_Connection *c, const char *body, size_t len)
{
    oai_request r;
    oai_error e;
    if (oai_parse_request(body, len, OAI_CHAT, NULL, &r, &e))
        return send_error(h, c, &e);
    char *text;
    size_t tlen;
    if (chat_prompt(h, &r, &text, &tlen, &e)) {
        oai_request_free(&r);
        return send_error(h, c, &e);
    }
    oai_request_free(&r);
    json_object *out = json_object_new_object();
    json_object_object_add(out, "prompt", json_object_new_string_len(text, (int)tlen));
    free(text);
    return send_obj(c, 200, out);
}

static enum MHD_Result models(srv_http *h, struct MHD_Connection *c)
{
    json_object *out = json_object_new_object(), *data = json_object_new_array(),
                *m = json_object_new_object();
    json_object_object_add(m, "id", json_object_new_string(h->model_name));
    json_object_object_add(m, "object", json_object_new_string("model"));
    json_object_object_add(m, "created", json_object_new_int64((int64_t)time(NULL)));
    json_object_object_add(m, "owned_by", json_object_new_string("moerun"));
    json_object_array_add(data, m);
    json_object_object_add(out, "object", json_object_new_string("list"));
    json_object_object_add(out, "data", data);
    return send_obj(c, 200, out);
}

static enum MHD_Result metrics(srv_http *h, struct MHD_Connection *c)
{
    srv_metrics m;
    srv_get_metrics(h->sched, &m);
    double hit = 1.0;
    mr_paged_stats ps;
    if (h->store && mr_store_paged_stats(h->store, &ps) && h->store->stats.acquires)
        hit = (double)ps.hits / (double)h->store->stats.acquires;
    char buf[4096];
    int n = snprintf(buf, sizeof buf,
        "# HELP moerun_prompt_tokens_total Prompt tokens of all requests.\n"
        "# TYPE moerun_prompt_tokens_total counter\nmoerun_prompt_tokens_total %llu\n"
        "# HELP moerun_prompt_tokens_cached_total Prompt tokens taken from the prompt cache.\n"
        "# TYPE moerun_prompt_tokens_cached_total counter\nmoerun_prompt_tokens_cached_total %llu\n"
        "# HELP moerun_tokens_predicted_total Generated tokens.\n"
        "# TYPE moerun_tokens_predicted_total counter\nmoerun_tokens_predicted_total %llu\n"
        "# HELP moerun_prompt_tokens_seconds Prompt processing speed (tokens/s).\n"
        "# TYPE moerun_prompt_tokens_seconds gauge\nmoerun_prompt_tokens_seconds %.3f\n"
        "# HELP moerun_predicted_tokens_seconds Generation speed per request (tokens/s).\n"
        "# TYPE moerun_predicted_tokens_seconds gauge\nmoerun_predicted_tokens_seconds %.3f\n"
        "# HELP moerun_requests_processing Requests on a slot.\n"
        "# TYPE moerun_requests_processing gauge\nmoerun_requests_processing %d\n"
        "# HELP moerun_requests_deferred Requests waiting for a slot.\n"
        "# TYPE moerun_requests_deferred gauge\nmoerun_requests_deferred %d\n"
        "# HELP moerun_requests_total Requests started on a slot.\n"
        "# TYPE moerun_requests_total counter\nmoerun_requests_total %llu\n"
        "# HELP moerun_requests_cancelled_total Requests whose client went away.\n"
        "# TYPE moerun_requests_cancelled_total counter\nmoerun_requests_cancelled_total %llu\n"
        "# HELP moerun_slots Parallel slots.\n# TYPE moerun_slots gauge\nmoerun_slots %d\n"
        "# HELP moerun_expert_cache_hit_ratio Expert acquires served from memory (1 when all resident).\n"
        "# TYPE moerun_expert_cache_hit_ratio gauge\nmoerun_expert_cache_hit_ratio %.6f\n"
        "# HELP moerun_http_errors_total Requests answered with an error status.\n"
        "# TYPE moerun_http_errors_total counter\nmoerun_http_errors_total %lu\n"
        "# HELP moerun_decode_batches_total Forward passes (each one batch of all slots' tokens).\n"
        "# TYPE moerun_decode_batches_total counter\nmoerun_decode_batches_total %llu\n"
        "# HELP moerun_decode_batch_tokens_total Tokens of those batches.\n"
        "# TYPE moerun_decode_batch_tokens_total counter\nmoerun_decode_batch_tokens_total %llu\n"
        "# HELP moerun_decode_batch_sequences_total Sequences of those batches (their sum over batches).\n"
        "# TYPE moerun_decode_batch_sequences_total counter\nmoerun_decode_batch_sequences_total %llu\n",
        (unsigned long long)m.prompt_tokens, (unsigned long long)m.prompt_reused,
        (unsigned long long)m.gen_tokens,
        m.prompt_seconds > 0 ? (double)(m.prompt_tokens - m.prompt_reused) / m.prompt_seconds : 0.0,
        m.gen_seconds > 0 ? (double)m.gen_tokens / m.gen_seconds : 0.0, m.busy_slots, m.queued,
        (unsigned long long)m.requests, (unsigned long long)m.cancelled, srv_n_slots(h->sched), hit,
        (unsigned long)atomic_load(&h->http_errors), (unsigned long long)m.batches,
        (unsigned long long)m.batch_tokens, (unsigned long long)m.batch_seqs);
    return send_text(c, 200, "text/plain; version=0.0.4", buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

/* ---------------------------------------------------------------- routing */
static int auth_ok(srv_http *h, struct MHD_Connection *c)
{
    if (!h->api_key[0])
        return 1;
    const char *a = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!a || strncmp(a, "Bearer ", 7))
        return 0;
    a += 7;
    size_t n = strlen(h->api_key), m = strlen(a);
    unsigned diff = (unsigned)(n ^ m);
    for (size_t i = 0; i < n; i++) /* constant time in the key's length */
        diff |= (unsigned char)h->api_key[i] ^ (unsigned char)(i < m ? a[i] : 0);
    return diff == 0;
}

static enum MHD_Result route(srv_http *h, struct MHD_Connection *c, const char *url,
                             const char *method, req_ctx *rc)
{
    int get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
    atomic_fetch_add(&h->http_requests, 1);
    if (!strcmp(method, "OPTIONS")) {
        struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        MHD_add_response_header(r, "Access-Control-Allow-Origin", "*");
        MHD_add_response_header(r, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
        MHD_add_response_header(r, "Access-Control-Allow-Headers", "Content-Type, Authorization");
        enum MHD_Result ret = MHD_queue_response(c, 204, r);
        MHD_destroy_response(r);
        return ret;
    }
    if (!strcmp(url, "/health") || !strcmp(url, "/v1/health")) {
        if (!get)
            return fail(h, c, 405, "invalid_request_error", "use GET for %s", url);
        if (!atomic_load(&h->ready))
            return fail(h, c, 503, "unavailable_error", "Loading model%s", "");
        return send_text(c, 200, "application/json", "{\"status\":\"ok\"}", 15);
    }
    if (!auth_ok(h, c))
        return fail(h, c, 401, "authentication_error", "Invalid API Key%s", "");
    static const struct {
        const char *path;
        int post;
    } known[] = {{"/v1/chat/completions", 1}, {"/chat/completions", 1}, {"/v1/completions", 1},
                 {"/completions", 1},         {"/v1/models", 0},         {"/models", 0},
                 {"/metrics", 0},             {"/tokenize", 1},          {"/detokenize", 1},
                 {"/apply-template", 1}};
    int k = -1;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (!strcmp(url, known[i].path))
            k = (int)i;
    if (k < 0)
        return fail(h, c, 404, "invalid_request_error", "unknown endpoint %.200s", url);
    if (known[k].post ? !post : !get)
        return fail(h, c, 405, "invalid_request_error", "wrong method for %.200s", url);
    if (!atomic_load(&h->ready))
        return fail(h, c, 503, "unavailable_error", "Loading model%s", "");
    if (rc->too_large) {
        char msg[64];
        snprintf(msg, sizeof msg, "%zu", h->cfg.max_body);
        return fail(h, c, 413, "invalid_request_error", "the request body is larger than %s bytes", msg);
    }
    const char *body = rc->body ? rc->body : "";
    size_t len = rc->n;
    switch (k) {
    case 0:
    case 1: return completion(h, c, OAI_CHAT, body, len);
    case 2:
    case 3: return completion(h, c, OAI_COMPLETION, body, len);
    case 4:
    case 5: return models(h, c);
    case 6: return metrics(h, c);
    case 7: return tokenize(h, c, body, len);
    case 8: return detokenize(h, c, body, len);
    default: return apply_template(h, c, body, len);
    }
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    (void)version;
    srv_http *h = cls;
    req_ctx *rc = *con_cls;
    if (!rc) {
        rc = calloc(1, sizeof *rc);
        if (!rc)
            return MHD_NO;
        *con_cls = rc;
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (rc->too_large || rc->n + n > h->cfg.max_body) {
            rc->too_large = 1; /* keep reading, answer 413 at the end */
            return MHD_YES;
        }
        if (rc->n + n + 1 > rc->cap) {
            size_t cap = rc->cap ? rc->cap : 4096;
            while (cap < rc->n + n + 1)
                cap *= 2;
            char *p = realloc(rc->body, cap);
            if (!p)
                return MHD_NO;
            rc->body = p;
            rc->cap = cap;
        }
        memcpy(rc->body + rc->n, upload, n);
        rc->n += n;
        rc->body[rc->n] = 0;
        return MHD_YES;
    }
    return route(h, c, url, method, rc);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    req_ctx *rc = *con_cls;
    if (rc) {
        free(rc->body);
        free(rc);
        *con_cls = NULL;
    }
}

mr_status srv_http_start(srv_http **out, const srv_config *cfg, int *port, mr_error *err)
{
    srv_http *h = calloc(1, sizeof *h);
    if (!h)
        return mr_fail(err, MR_ENOMEM, NULL, "serve", MR_NO_OFFSET, "out of memory");
    h->cfg = *cfg;
    snprintf(h->host, sizeof h->host, "%s", cfg->host ? cfg->host : "127.0.0.1");
    snprintf(h->model_name, sizeof h->model_name, "%s", cfg->model_name ? cfg->model_name : "moerun");
    snprintf(h->api_key, sizeof h->api_key, "%s", cfg->api_key ? cfg->api_key : "");
    h->cfg.host = h->host;
    h->cfg.model_name = h->model_name;
    struct sockaddr_in a4;
    struct sockaddr_in6 a6;
    struct sockaddr *sa;
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD;
    memset(&a4, 0, sizeof a4);
    memset(&a6, 0, sizeof a6);
    if (inet_pton(AF_INET, h->host, &a4.sin_addr) == 1) {
        a4.sin_family = AF_INET;
        a4.sin_port = htons((uint16_t)cfg->port);
        sa = (struct sockaddr *)&a4;
    } else if (inet_pton(AF_INET6, h->host, &a6.sin6_addr) == 1) {
        a6.sin6_family = AF_INET6;
        a6.sin6_port = htons((uint16_t)cfg->port);
        sa = (struct sockaddr *)&a6;
        flags |= MHD_USE_IPv6;
    } else {
        free(h);
        return mr_fail(err, MR_EINVAL, NULL, "--host", MR_NO_OFFSET,
                       "'%s' is not an IPv4 or IPv6 address", cfg->host);
    }
    h->d = MHD_start_daemon(flags, (uint16_t)cfg->port, NULL, NULL, on_request, h,
                            MHD_OPTION_SOCK_ADDR, sa,
                            MHD_OPTION_CONNECTION_LIMIT, cfg->max_conn ? cfg->max_conn : 64u,
                            MHD_OPTION_CONNECTION_TIMEOUT, 120u,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
                            MHD_OPTION_END);
    if (!h->d) {
        free(h);
        return mr_fail(err, MR_EIO, NULL, "--port", MR_NO_OFFSET, "cannot listen on %s:%d: %s",
                       cfg->host ? cfg->host : "127.0.0.1", cfg->port, strerror(errno));
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    *port = di ? di->port : cfg->port;
    *out = h;
    return MR_OK;
}

void srv_http_ready(srv_http *h, const mr_tokenizer *tok, const srv_chat_format *fmt,
                    srv_sched *sched, mr_expert_store *store)
{
    h->tok = tok;
    h->fmt = fmt;
    h->sched = sched;
    h->store = store;
    atomic_store(&h->ready, 1);
}

void srv_http_stop(srv_http *h)
{
    if (!h)
        return;
    atomic_store(&h->stopping, 1);
    MHD_stop_daemon(h->d);
    free(h);
}
