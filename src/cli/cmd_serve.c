/* cmd_serve.c - moerun serve: an OpenAI-compatible HTTP server.
 *
 * It listens first (so /health answers 503 while the model loads, as
 * llama-server), then loads the model and starts -np slots.  SIGINT or
 * SIGTERM stops it: in-flight requests end, the port is closed. */
#include <getopt.h>
#include <json-c/json.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "types.h"
#include "serve/http.h"
#include "serve/slots.h"
#include "serve/template_select.h"

static void serve_help(FILE *out)
{
    fprintf(out,
            "Usage: moerun serve -m FILE [options]\n"
            "Serve the model over HTTP with OpenAI's API: POST /v1/chat/completions,\n"
            "/v1/completions (streamed as server-sent events with \"stream\": true), GET\n"
            "/v1/models; and llama-server's GET /health, /metrics, POST /tokenize,\n"
            "/detokenize, /apply-template.\n\n"
            "  -m, --model FILE         GGUF model\n"
            "      --host ADDR          address to listen on (default 127.0.0.1: this machine only)\n"
            "      --port N             port (default 8080; 0 = any free port, printed)\n"
            "      --api-key KEY        require 'Authorization: Bearer KEY' (all but /health)\n"
            "  -np, --parallel N        slots: requests decoded at once, their tokens in one\n"
            "                           batch (default 1)\n"
            "  -c, --ctx-size N         context of each slot (default: the model's, at most 4096)\n"
            "  -b, --batch-size N       tokens per batch, all slots' (default 512)\n"
            CLI_COMPUTE_HELP
            "      --alias NAME         model name in responses (default: the file's name)\n"
            "      --chat-template NAME|FILE  override the model's template (built-in: chatml,\n"
            "                         mistral, qwen3, deepseek3, kimi-k2, gpt-oss, llama4)\n"
            "      --chat-template-kwargs JSON  extra template variables for every request\n"
            "      --max-tokens N       largest max_tokens a request may ask (default: the context)\n"
            "      --max-body BYTES     largest request body (default 1048576)\n"
            "      --max-connections N  concurrent connections (default 64)\n"
            "      --max-queue N        requests waiting for a slot (default 64; more get 503)\n"
            CLI_STORE_HELP
            "  -h, --help               this help\n\n"
            "A model without a chat template is served with ChatML (llama.cpp's fallback),\n"
            "with a warning.  Request defaults follow llama-server: temperature 0.8, top_k 40,\n"
            "top_p 0.95, min_p 0.05.\n");
}

enum { OPT_HOST = 256, OPT_PORT, OPT_KEY, OPT_ALIAS, OPT_TPL, OPT_KWARGS, OPT_MAXTOK, OPT_BODY,
       OPT_CONN, OPT_QUEUE };

int cmd_serve(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},     {"host", required_argument, 0, OPT_HOST},
        {"port", required_argument, 0, OPT_PORT}, {"api-key", required_argument, 0, OPT_KEY},
        {"parallel", required_argument, 0, 'P'},  {"ctx-size", required_argument, 0, 'c'},
        {"batch-size", required_argument, 0, 'b'}, {"alias", required_argument, 0, OPT_ALIAS},
        {"chat-template", required_argument, 0, OPT_TPL},
        {"chat-template-kwargs", required_argument, 0, OPT_KWARGS},
        {"max-tokens", required_argument, 0, OPT_MAXTOK},
        {"max-body", required_argument, 0, OPT_BODY},
        {"max-connections", required_argument, 0, OPT_CONN},
        {"max-queue", required_argument, 0, OPT_QUEUE},
        CLI_COMPUTE_LONG_OPTIONS,
        CLI_STORE_LONG_OPTIONS,
        {"help", no_argument, 0, 'h'},            {0, 0, 0, 0},
    };
    cli_long_aliases(argc, argv); /* llama.cpp's -np, -ctk, -ctv */
    const char *model = NULL, *tpl = NULL, *kwargs = NULL, *alias = NULL;
    long n_ctx = 0, n_batch = 512, n_par = 1, port = 8080, max_tokens = 0, max_body = 1 << 20,
         max_conn = 64, max_queue = 64;
    srv_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.host = "127.0.0.1";
    cli_compute_opts co;
    cli_compute_opts_default(&co);
    cli_store_opts so;
    cli_store_opts_default(&so);
    optind = 1;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":m:c:b:t:h", opts, NULL)) != -1) {
        switch (ch) {
        case 'm': model = optarg; break;
        case OPT_HOST: cfg.host = optarg; break;
        case OPT_PORT:
            if (cli_parse_long(optarg, 0, 65535, &port))
                return cli_usage_error("serve", "--port wants 0..65535, got '%s'", optarg);
            break;
        case OPT_KEY:
            if (!*optarg || strlen(optarg) > 200)
                return cli_usage_error("serve", "--api-key wants 1 to 200 characters");
            cfg.api_key = optarg;
            break;
        case 'P':
            if (cli_parse_long(optarg, 1, 64, &n_par))
                return cli_usage_error("serve", "--parallel wants 1..64, got '%s'", optarg);
            break;
        case 'c':
            if (cli_parse_long(optarg, 16, 1 << 20, &n_ctx))
                return cli_usage_error("serve", "-c wants a context length >= 16, got '%s'", optarg);
            break;
        case 'b':
            if (cli_parse_long(optarg, 1, 1 << 16, &n_batch))
                return cli_usage_error("serve", "-b wants a batch size, got '%s'", optarg);
            break;
        case OPT_ALIAS: alias = optarg; break;
        case OPT_TPL: tpl = optarg; break;
        case OPT_KWARGS: kwargs = optarg; break;
        case OPT_MAXTOK:
            if (cli_parse_long(optarg, 1, 1 << 20, &max_tokens))
                return cli_usage_error("serve", "--max-tokens wants a number >= 1, got '%s'", optarg);
            break;
        case OPT_BODY:
            if (cli_parse_long(optarg, 256, 1L << 30, &max_body))
                return cli_usage_error("serve", "--max-body wants 256..1G bytes, got '%s'", optarg);
            break;
        case OPT_CONN:
            if (cli_parse_long(optarg, 1, 4096, &max_conn))
                return cli_usage_error("serve", "--max-connections wants 1..4096, got '%s'", optarg);
            break;
        case OPT_QUEUE:
            if (cli_parse_long(optarg, 0, 1 << 20, &max_queue))
                return cli_usage_error("serve", "--max-queue wants a number >= 0, got '%s'", optarg);
            break;
        case 'h': serve_help(stdout); return EXIT_OK;
        case ':': return cli_usage_error("serve", "option '%s' needs a value", argv[optind - 1]);
        default: {
            int r = cli_shared_option("serve", ch, optarg, &co, &so);
            if (r > 0)
                return r;
            if (r < 0)
                return cli_usage_error("serve", "unknown option '%s'", argv[optind - 1]);
        }
        }
    }
    if (optind < argc)
        return cli_usage_error("serve", "unexpected argument '%s'", argv[optind]);
    if (!model)
        return cli_usage_error("serve", "a model is required (-m FILE)");
    if (n_batch < n_par)
        n_batch = n_par; /* a token of every slot fits one batch */
    cli_compute_opts_finish(&co, &so);
    so.n_seq = (uint32_t)n_par;
    json_object *kw = NULL;
    if (kwargs) {
        kw = json_tokener_parse(kwargs);
        if (!kw || !json_object_is_type(kw, json_type_object)) {
            if (kw)
                json_object_put(kw);
            return cli_usage_error("serve", "--chat-template-kwargs wants a JSON object, got '%s'", kwargs);
        }
    }
    if (!alias) {
        alias = strrchr(model, '/');
        alias = alias ? alias + 1 : model;
    }
    cfg.port = (int)port;
    cfg.model_name = alias;
    cfg.max_body = (size_t)max_body;
    cfg.max_conn = (unsigned)max_conn;
    cfg.max_queue = (size_t)max_queue;

    /* signals are taken by sigwait below: block them before any thread */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    mr_error err;
    int rc = EXIT_OK, bound = 0;
    cli_session S;
    memset(&S, 0, sizeof S);
    srv_chat_format fmt;
    memset(&fmt, 0, sizeof fmt);
    srv_sched *sched = NULL;
    mr_context *ctx = NULL;
    srv_http *http = NULL;
    /* the context is only known after loading; the limit is set then */
    cfg.max_tokens_limit = max_tokens ? max_tokens : (1 << 20);
    if (srv_http_start(&http, &cfg, &bound, &err)) {
        if (kw)
            json_object_put(kw);
        return cli_report(&err);
    }
    fprintf(stderr, "moerun serve: listening on http://%s%s%s:%d (loading %s)\n",
            strchr(cfg.host, ':') ? "[" : "", cfg.host, strchr(cfg.host, ':') ? "]" : "", bound, model);
    if (cli_session_open(model, &S, &err))
        goto fail;
    const mr_hparams *hp = &S.model->hp;
    if (!n_ctx)
        n_ctx = hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096;
    if (srv_format_open(&fmt, S.model->gguf, S.tok, tpl, &err))
        goto fail;
    fmt.kwargs = kw;
    kw = NULL;
    if (fmt.fallback)
        fprintf(stderr, "moerun serve: warning: %s has no chat template (tokenizer.chat_template); "
                        "using the default, %s\n", model, MR_CHAT_TEMPLATE_DEFAULT);
    eng_eog eog;
    eng_eog_init(&eog, S.tok, fmt.stops);
    if (cli_session_store(&S, &so, (uint32_t)n_ctx, (uint32_t)n_batch, (uint32_t)n_par, &err))
        goto fail;
    int threads = (int)co.threads;
    if (cli_context_new_seqs(&S, &co, (uint32_t)n_ctx, (uint32_t)n_batch, (uint32_t)n_par, &ctx,
                             &err) ||
        srv_sched_new(&sched, S.model, S.tok, ctx, (uint32_t)n_batch, &eog, &err))
        goto fail;
    srv_http_ready(http, S.tok, &fmt, sched, S.store);
    fprintf(stderr, "moerun serve: ready: %s as '%s', template %s%s%s%s, %ld slot%s of %ld tokens "
                    "(KV cache %s/%s), batches of %ld, %d threads\n", model, alias, fmt.origin,
            fmt.family ? " (" : "", fmt.family ? fmt.family : "", fmt.family ? ")" : "", n_par,
            n_par > 1 ? "s" : "", n_ctx, mr_type_get(co.kv_k)->name, mr_type_get(co.kv_v)->name,
            n_batch, threads);
    int sig = 0;
    sigwait(&sigs, &sig);
    fprintf(stderr, "moerun serve: %s, stopping\n", sig == SIGINT ? "interrupted" : "terminated");
    goto out;
fail:
    rc = cli_report(&err);
out:
    /* stop accepting and end the connections, then the decode thread */
    if (http && sched) {
        srv_http_stop(http);
        http = NULL;
    }
    srv_sched_free(sched);
    mr_context_free(ctx);
    srv_http_stop(http);
    if (kw)
        json_object_put(kw);
    srv_format_close(&fmt);
    cli_session_close(&S);
    return rc;
}
