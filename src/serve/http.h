/* http.h - the HTTP side of `moerun serve` on libmicrohttpd: routing,
 * limits, the API key, OpenAI endpoints (streamed as server-sent events),
 * llama-server's /health, /metrics, /tokenize, /detokenize and
 * /apply-template.  The server listens before the model is loaded: until
 * srv_http_ready, /health answers 503 as llama-server does. */
#ifndef MOERUN_SERVE_HTTP_H
#define MOERUN_SERVE_HTTP_H

#include <stddef.h>

#include "expert_store.h"
#include "serve/slots.h"
#include "serve/template_select.h"

typedef struct {
    const char *host;      /* default 127.0.0.1 */
    int port;              /* 0: any free port */
    const char *api_key;   /* NULL: none required */
    size_t max_body;       /* bytes of a request body */
    size_t max_queue;      /* jobs waiting for a slot */
    unsigned max_conn;     /* concurrent connections */
    long max_tokens_limit; /* largest max_tokens accepted */
    const char *model_name;
} srv_config;

typedef struct srv_http srv_http;

/* Listen; *port gets the bound port.  Errors are mr_status with a message. */
mr_status srv_http_start(srv_http **out, const srv_config *cfg, int *port, mr_error *err);
/* The loaded model: endpoints that need it answer from now on. */
void srv_http_ready(srv_http *h, const mr_tokenizer *tok, const srv_chat_format *fmt,
                    srv_sched *sched, mr_expert_store *store);
/* Stop answering (in-flight requests end), then close. */
void srv_http_stop(srv_http *h);

#endif
