/* cmd_chat.c - moerun chat: a conversation in the terminal.
 *
 * Each turn is the model's chat template rendered for the whole
 * conversation; only the text past what the KV cache already holds is
 * tokenized and decoded (the cache is kept across turns).  When the
 * template re-renders the last answer differently once a new question
 * follows (Qwen3 drops its thinking block), the cache keeps the answer as
 * first rendered and gets only what follows it, as llama.cpp does; only a
 * template that changes turns beyond recognition makes the conversation be
 * processed again, and that is said.  When the context
 * would overflow, the oldest turns after the system prompt are dropped
 * (and said so) and the rest is processed again.
 *
 * On a terminal: libedit line editing and history, a line ending in '\'
 * continues on the next, Ctrl-C stops the current answer, Ctrl-D ends.
 * From a pipe: each line (with the same '\' continuation) is a user turn.
 * Commands: /clear, /save FILE, /load FILE, /help, /exit.
 */
#include <editline/readline.h>
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "serve/engine.h"
#include "serve/reasoning.h"
#include "serve/template_select.h"

static volatile sig_atomic_t g_interrupt;

static void on_sigint(int sig)
{
    (void)sig;
    g_interrupt = 1;
}

static void chat_help(FILE *out)
{
    fprintf(out,
            "Usage: moerun chat -m FILE [options]\n"
            "Talk with a model in the terminal, formatted by its chat template.\n\n"
            "  -m, --model FILE         GGUF model\n"
            "  -sys, --system-prompt T  system prompt\n"
            "  -n, --n-predict N        most tokens per answer (default -1: until the end of turn)\n"
            "  -c, --ctx-size N         context length (default: the model's, at most 4096)\n"
            "  -b, --batch-size N       prompt tokens per batch (default 512)\n"
            CLI_COMPUTE_HELP
            "      --temp T             temperature, 0 = greedy (default 0.8)\n"
            "      --top-k N            (default 40)\n"
            "      --top-p P            (default 0.95)\n"
            "      --min-p P            (default 0.05)\n"
            "      --repeat-penalty X   (default 1.0)\n"
            "  -s, --seed S             random seed (default: from the clock)\n"
            "      --chat-template NAME|FILE  override the model's template; built-in names:\n"
            "                         chatml, mistral, qwen3, deepseek3, kimi-k2, gpt-oss, llama4\n"
            "      --chat-template-kwargs JSON  extra template variables, e.g.\n"
            "                         '{\"enable_thinking\": false}' or '{\"reasoning_effort\": \"low\"}'\n"
            "      --reasoning-effort low|medium|high  the template's reasoning_effort (gpt-oss)\n"
            "      --reasoning-format auto|none  auto (default): reasoning (gpt-oss's analysis\n"
            "                         channel, <think>...</think>) shown dimmed on a terminal, else\n"
            "                         between [reasoning] and [/reasoning], and kept apart from the\n"
            "                         answer in the history; none: the model's raw text\n"
            "      --verbose            print each turn's rendered text to stderr\n"
            "      --ignore-eos         keep answering past end-of-turn tokens\n"
            CLI_STORE_HELP
            "  -h, --help               this help\n\n"
            "A model without a template is talked to in ChatML (llama.cpp's fallback), with a\n"
            "warning.  In the conversation: /clear, /save FILE, /load FILE, /exit; a line ending\n"
            "in '\\' continues on the next; Ctrl-C stops the answer, Ctrl-D ends.\n");
}

enum { OPT_TEMP = 256, OPT_TOPK, OPT_TOPP, OPT_MINP, OPT_RPEN, OPT_TPL, OPT_KWARGS, OPT_VERBOSE,
       OPT_SYS, OPT_IGNORE_EOS, OPT_RFORMAT, OPT_REFFORT };

typedef struct {
    cli_session *S;
    srv_chat_format fmt;
    eng_seq seq;
    eng_eog eog;
    eng_sample_params sp;
    json_object *msgs;
    char *kv_render;  /* the render the cache holds (conversation so far), or NULL */
    char *last_tail;  /* the last answer and its closing as the template rendered them */
    const char *sys;
    long n_predict;
    int tty, verbose, ignore_eos;
    int reasoning_raw; /* --reasoning-format none */
    uint64_t turn;
} chat_state;

/* What serve/reasoning.c splits off an answer, shown as it streams:
 * reasoning dimmed on a terminal, else between [reasoning] and
 * [/reasoning]; tool calls as [tool call NAME ARGS]. */
typedef struct {
    int color, in_reason;
    char *content, *reasoning;
    size_t nc, nr;
} chat_split;

static void split_append(char **b, size_t *n, const char *s, size_t k)
{
    char *p = realloc(*b, *n + k + 1);
    if (!p)
        return;
    memcpy(p + *n, s, k);
    *n += k;
    p[*n] = 0;
    *b = p;
}

static void split_mode(chat_split *o, int reason)
{
    if (o->in_reason == reason)
        return;
    if (reason)
        fputs(o->color ? "\033[2m" : "[reasoning]\n", stdout);
    else
        fputs(o->color ? "\033[0m\n" : "\n[/reasoning]\n", stdout);
    o->in_reason = reason;
}

static void chat_emit(void *ctx, rsn_kind k, const char *s, size_t n, const rsn_tool_call *tc)
{
    chat_split *o = ctx;
    split_mode(o, k == RSN_REASONING);
    if (k == RSN_TOOL_CALL) {
        printf("[tool call %s %s]\n", tc->name, tc->arguments);
    } else {
        fwrite(s, 1, n, stdout);
        if (k == RSN_REASONING)
            split_append(&o->reasoning, &o->nr, s, n);
        else
            split_append(&o->content, &o->nc, s, n);
    }
    fflush(stdout);
}

static json_object *message(const char *role, const char *content, size_t len)
{
    json_object *m = json_object_new_object();
    json_object_object_add(m, "role", json_object_new_string(role));
    json_object_object_add(m, "content", json_object_new_string_len(content, (int)len));
    return m;
}

static void reset_conversation(chat_state *c)
{
    if (c->msgs)
        json_object_put(c->msgs);
    c->msgs = json_object_new_array();
    if (c->sys)
        json_object_array_add(c->msgs, message("system", c->sys, strlen(c->sys)));
    free(c->kv_render);
    c->kv_render = NULL;
    free(c->last_tail);
    c->last_tail = NULL;
    eng_seq_reset(&c->seq);
}

/* The last occurrence of needle in hay, or NULL. */
static const char *find_last(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    const char *last = NULL;
    for (const char *p = hay; n && (p = strstr(p, needle)); p++)
        last = p;
    return last;
}

static int starts_with(const char *s, const char *p) { return !strncmp(s, p, strlen(p)); }

/* Decode the text that follows what the cache holds (no BOS). */
static mr_status decode_text(chat_state *c, const char *text, size_t len, mr_error *err)
{
    int32_t *ids;
    size_t n, reused;
    mr_status st = eng_tokenize(c->S->tok, text, len, 0, 1, &ids, &n, err);
    if (st || n == 0) {
        free(ids);
        return st;
    }
    int32_t *all = malloc((c->seq.n_cached + n) * sizeof *all);
    if (!all) {
        free(ids);
        return mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "out of memory");
    }
    memcpy(all, c->seq.cached, c->seq.n_cached * sizeof *all);
    memcpy(all + c->seq.n_cached, ids, n * sizeof *ids);
    st = eng_seq_prefill(&c->seq, all, c->seq.n_cached + n, &reused, err);
    free(all);
    free(ids);
    return st;
}

/* Tokens of the whole conversation rendered with the generation prompt. */
static mr_status full_tokens(chat_state *c, char **text, int32_t **ids, size_t *n, mr_error *err)
{
    size_t len;
    mr_status st = srv_format_render(&c->fmt, c->msgs, 1, text, &len, err);
    if (st)
        return st;
    st = eng_tokenize(c->S->tok, *text, len, srv_format_add_bos(&c->fmt, c->S->tok, *text), 1,
                      ids, n, err);
    if (st) {
        free(*text);
        *text = NULL;
    }
    return st;
}

static long reply_reserve(const chat_state *c)
{
    long n_ctx = (long)mr_context_n_ctx(c->seq.ctx);
    long r = c->n_predict > 0 ? c->n_predict : 256;
    return r < n_ctx / 4 ? r : n_ctx / 4;
}

/* Bring the cache up to the conversation + generation prompt.  *target is
 * the render (caller frees).  Returns 0, or an error already reported. */
static int prepare_turn(chat_state *c, char **target, size_t *new_tokens, size_t *cached)
{
    mr_error err;
    size_t len;
    char *t;
    *target = NULL;
    if (srv_format_render(&c->fmt, c->msgs, 1, &t, &len, &err)) {
        cli_report(&err);
        return -1;
    }
    if (c->verbose)
        fprintf(stderr, "--- rendered turn:\n%s\n---\n", t);
    long n_ctx = (long)mr_context_n_ctx(c->seq.ctx);
    *cached = c->seq.n_cached;
    size_t off = (size_t)-1;
    const char *p;
    if (c->kv_render && starts_with(t, c->kv_render)) {
        off = strlen(c->kv_render); /* only the new turn's text */
    } else if (c->kv_render && c->last_tail && (p = find_last(t, c->last_tail))) {
        /* the template renders the earlier answer differently now (Qwen3
         * drops its thinking block once a new question follows); the cache
         * keeps it as first rendered, as llama.cpp does, and gets only what
         * follows that answer */
        off = (size_t)(p - t) + strlen(c->last_tail);
        if (c->verbose)
            fprintf(stderr, "[the template re-renders the last answer; the cache keeps it as it was]\n");
    } else if (c->kv_render) {
        fprintf(stderr, "[the chat template renders earlier turns differently now: processing "
                        "the whole conversation again]\n");
    }
    if (off != (size_t)-1) {
        int32_t *ids;
        size_t n;
        if (eng_tokenize(c->S->tok, t + off, len - off, 0, 1, &ids, &n, &err)) {
            free(t);
            cli_report(&err);
            return -1;
        }
        free(ids);
        if ((long)(c->seq.n_cached + n) + reply_reserve(c) <= n_ctx) {
            if (decode_text(c, t + off, len - off, &err)) {
                free(t);
                cli_report(&err);
                return -1;
            }
            *new_tokens = n;
            *target = t;
            return 0;
        }
    }
    free(t);
    /* the whole conversation, dropping the oldest turns while it does not fit */
    int dropped = 0;
    for (;;) {
        int32_t *ids;
        size_t n;
        if (full_tokens(c, &t, &ids, &n, &err)) {
            cli_report(&err);
            return -1;
        }
        if ((long)n + reply_reserve(c) <= n_ctx) {
            size_t reused;
            eng_seq_reset(&c->seq);
            mr_status st = eng_seq_prefill(&c->seq, ids, n, &reused, &err);
            free(ids);
            if (st) {
                free(t);
                cli_report(&err);
                return -1;
            }
            if (dropped)
                fprintf(stderr, "[context full (%ld tokens): dropped the %d oldest messages]\n",
                        n_ctx, dropped);
            *cached = 0;
            *new_tokens = n;
            *target = t;
            return 0;
        }
        free(ids);
        free(t);
        /* oldest message after the system prompt; never the new one */
        size_t first = c->sys ? 1 : 0, nmsg = json_object_array_length(c->msgs);
        if (nmsg <= first + 1) {
            fprintf(stderr, "moerun chat: the message does not fit the context (%ld tokens with "
                            "%ld kept for the answer); raise -c\n", n_ctx, reply_reserve(c));
            json_object_array_del_idx(c->msgs, nmsg - 1, 1);
            return -1;
        }
        /* drop a user message and the answer after it together */
        size_t k = 1;
        if (nmsg > first + 2) {
            json_object *next = json_object_array_get_idx(c->msgs, first + 1), *r;
            if (json_object_object_get_ex(next, "role", &r) &&
                !strcmp(json_object_get_string(r), "assistant"))
                k = 2;
        }
        json_object_array_del_idx(c->msgs, first, k);
        dropped += (int)k;
    }
}

/* One user turn: render, decode the new part, stream the answer. */
static int user_turn(chat_state *c, const char *text, size_t len)
{
    json_object_array_add(c->msgs, message("user", text, len));
    char *target;
    size_t new_tokens, cached;
    double t0 = cli_now();
    if (prepare_turn(c, &target, &new_tokens, &cached))
        return -1;
    double t1 = cli_now();
    mr_error err;
    eng_sampler smp;
    eng_sample_params sp = c->sp;
    sp.sp.seed = c->sp.sp.seed + c->turn++;
    if (eng_sampler_init(&smp, &sp, (int32_t)c->S->model->hp.n_vocab, &err)) {
        free(target);
        return cli_report(&err), -1;
    }
    for (size_t i = 0; i < c->seq.n_cached; i++)
        eng_sampler_accept(&smp, c->seq.cached[i], 0);
    eng_stop stop;
    eng_stop_init(&stop, c->fmt.stops);
    mr_detok dt;
    mr_detok_init(&dt, c->S->tok, 1);
    rsn_config rcfg;
    rsn_config_for(&rcfg, c->reasoning_raw ? NULL : c->fmt.family, target, strlen(target));
    rcfg.tools = RSN_TOOLS_NONE; /* chat offers no tools */
    /* harmony's structure is special tokens: shown even in raw text */
    dt.special = c->fmt.family && !strcmp(c->fmt.family, "gpt-oss");
    chat_split split = {.color = isatty(STDOUT_FILENO)};
    rsn_parser rp;
    rsn_init(&rp, &rcfg, chat_emit, &split);
    g_interrupt = 0;
    long n_gen = 0;
    const char *why = NULL;
    char piece[600];
    const char *out;
    size_t out_n;
    uint32_t n_ctx = mr_context_n_ctx(c->seq.ctx);
    for (;;) {
        if (g_interrupt) {
            why = "interrupted";
            break;
        }
        if (c->n_predict >= 0 && n_gen >= c->n_predict) {
            why = "length";
            break;
        }
        int32_t id = eng_sample(&smp, &c->seq);
        if (eng_is_eog(&c->eog, id) && !c->ignore_eos)
            break;
        n_gen++;
        size_t w = mr_detok_push(&dt, id, piece, sizeof piece);
        int r = eng_stop_push(&stop, piece, w, &out, &out_n);
        if (out_n)
            rsn_push(&rp, out, out_n);
        if (r)
            break;
        eng_sampler_accept(&smp, id, 1);
        if (c->seq.n_cached + 1 >= n_ctx) {
            why = "context full";
            break;
        }
        if (eng_seq_push(&c->seq, id, &err)) {
            cli_report(&err);
            why = "error";
            break;
        }
    }
    size_t w = mr_detok_flush(&dt, piece, sizeof piece);
    eng_stop_push(&stop, piece, w, &out, &out_n);
    if (out_n)
        rsn_push(&rp, out, out_n);
    eng_stop_finish(&stop, &out, &out_n);
    if (out_n)
        rsn_push(&rp, out, out_n);
    rsn_finish(&rp);
    split_mode(&split, 0);
    rsn_free(&rp);
    fputc('\n', stdout);
    if (why && strcmp(why, "length"))
        printf("[%s]\n", why);
    fflush(stdout);
    double t2 = cli_now();
    fprintf(stderr, "[prompt: %zu new tokens, %zu cached, %.2f s; answer: %ld tokens, %.2f tokens/s]\n",
            new_tokens, cached, t1 - t0, n_gen, n_gen / (t2 - t1 > 0 ? t2 - t1 : 1e-9));

    /* the answer joins the conversation; its closing text (end-of-turn
     * markers the template puts after it) goes into the cache too */
    const char *reply = stop.text ? stop.text : "";
    size_t reply_n = stop.n;
    if (rcfg.syntax != RSN_SYNTAX_NONE) { /* the turn as the template takes it back */
        reply = split.content ? split.content : "";
        reply_n = split.nc;
    }
    json_object *turn = message("assistant", reply, reply_n);
    if (split.nr) {
        json_object_object_add(turn, "reasoning_content",
                               json_object_new_string_len(split.reasoning, (int)split.nr));
        json_object_object_add(turn, "thinking",
                               json_object_new_string_len(split.reasoning, (int)split.nr));
    }
    json_object_array_add(c->msgs, turn);
    char *after;
    size_t alen;
    free(c->kv_render);
    c->kv_render = NULL;
    free(c->last_tail);
    c->last_tail = NULL;
    if (srv_format_render(&c->fmt, c->msgs, 0, &after, &alen, &err) == MR_OK) {
        if (starts_with(after, target)) {
            const char *tail = after + strlen(target);
            const char *at = reply_n ? strstr(tail, reply) : tail;
            if (at) {
                const char *closing = at + reply_n;
                if (*closing && (!why || !strcmp(why, "length") || !strcmp(why, "interrupted")) &&
                    decode_text(c, closing, strlen(closing), &err) != MR_OK) {
                    cli_report(&err);
                    free(after);
                    after = NULL;
                }
                c->kv_render = after;
                if (after && *at)
                    c->last_tail = strdup(at);
            } else
                free(after);
        } else
            free(after);
    }
    free(target);
    free(split.content);
    free(split.reasoning);
    eng_stop_free(&stop);
    eng_sampler_free(&smp);
    return 0;
}

static void save_conversation(chat_state *c, const char *path)
{
    if (json_object_to_file_ext(path, c->msgs, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE))
        fprintf(stderr, "moerun chat: cannot write %s: %s\n", path, strerror(errno));
    else
        fprintf(stderr, "[saved %zu messages to %s]\n", json_object_array_length(c->msgs), path);
}

static void load_conversation(chat_state *c, const char *path)
{
    json_object *j = json_object_from_file(path);
    if (!j || !json_object_is_type(j, json_type_array)) {
        fprintf(stderr, "moerun chat: %s is not a JSON array of messages\n", path);
        if (j)
            json_object_put(j);
        return;
    }
    for (size_t i = 0; i < json_object_array_length(j); i++) {
        json_object *m = json_object_array_get_idx(j, i), *r, *ct;
        if (!json_object_is_type(m, json_type_object) || !json_object_object_get_ex(m, "role", &r) ||
            !json_object_is_type(r, json_type_string) || !json_object_object_get_ex(m, "content", &ct)) {
            fprintf(stderr, "moerun chat: %s: message %zu has no role and content\n", path, i);
            json_object_put(j);
            return;
        }
    }
    json_object_put(c->msgs);
    c->msgs = j;
    free(c->kv_render);
    c->kv_render = NULL;
    free(c->last_tail);
    c->last_tail = NULL;
    eng_seq_reset(&c->seq);
    fprintf(stderr, "[loaded %zu messages from %s]\n", json_object_array_length(j), path);
}

/* Read one input (with '\' continuation); NULL at end of input. */
static char *read_input(chat_state *c)
{
    char *acc = NULL;
    size_t n = 0;
    for (;;) {
        char *line = NULL;
        if (c->tty) {
            g_interrupt = 0;
            line = readline(acc ? ". " : "> ");
            if (!line && g_interrupt) { /* Ctrl-C at the prompt: a fresh line */
                free(acc);
                acc = NULL;
                n = 0;
                printf("\n");
                continue;
            }
        } else {
            size_t cap = 0;
            ssize_t k = getline(&line, &cap, stdin);
            if (k < 0) {
                free(line);
                line = NULL;
            } else if (k > 0 && line[k - 1] == '\n')
                line[k - 1] = 0;
        }
        if (!line)
            return acc; /* Ctrl-D / end of input: what was typed so far */
        size_t l = strlen(line);
        int cont = l > 0 && line[l - 1] == '\\';
        if (cont)
            line[--l] = 0;
        char *p = realloc(acc, n + l + 2);
        if (!p) {
            free(line);
            free(acc);
            return NULL;
        }
        acc = p;
        memcpy(acc + n, line, l);
        n += l;
        if (cont)
            acc[n++] = '\n';
        acc[n] = 0;
        free(line);
        if (!cont)
            return acc;
    }
}

int cmd_chat(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},      {"n-predict", required_argument, 0, 'n'},
        {"ctx-size", required_argument, 0, 'c'},   {"batch-size", required_argument, 0, 'b'},
        {"seed", required_argument, 0, 's'},       {"system-prompt", required_argument, 0, OPT_SYS},
        {"temp", required_argument, 0, OPT_TEMP},  {"top-k", required_argument, 0, OPT_TOPK},
        {"top-p", required_argument, 0, OPT_TOPP}, {"min-p", required_argument, 0, OPT_MINP},
        {"repeat-penalty", required_argument, 0, OPT_RPEN},
        {"chat-template", required_argument, 0, OPT_TPL},
        {"chat-template-kwargs", required_argument, 0, OPT_KWARGS},
        {"verbose", no_argument, 0, OPT_VERBOSE},
        {"ignore-eos", no_argument, 0, OPT_IGNORE_EOS},
        {"reasoning-format", required_argument, 0, OPT_RFORMAT},
        {"reasoning-effort", required_argument, 0, OPT_REFFORT},
        CLI_COMPUTE_LONG_OPTIONS,
        CLI_STORE_LONG_OPTIONS,
        {"help", no_argument, 0, 'h'},             {0, 0, 0, 0},
    };
    cli_long_aliases(argc, argv); /* llama.cpp's -sys, -ctk, -ctv */
    const char *model = NULL, *tpl = NULL, *kwargs = NULL, *effort = NULL;
    long n_ctx = 0, n_batch = 512, v;
    int seed_given = 0;
    chat_state c;
    memset(&c, 0, sizeof c);
    c.n_predict = -1;
    cli_compute_opts co;
    cli_compute_opts_default(&co);
    cli_store_opts so;
    cli_store_opts_default(&so);
    mr_sampler_params_default(&c.sp.sp);
    optind = 1;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":m:n:c:b:t:s:h", opts, NULL)) != -1) {
        switch (ch) {
        case 'm': model = optarg; break;
        case OPT_SYS: c.sys = optarg; break;
        case 'n':
            if (cli_parse_long(optarg, -1, 1 << 20, &c.n_predict))
                return cli_usage_error("chat", "-n wants a number of tokens, got '%s'", optarg);
            break;
        case 'c':
            if (cli_parse_long(optarg, 16, 1 << 20, &n_ctx))
                return cli_usage_error("chat", "-c wants a context length >= 16, got '%s'", optarg);
            break;
        case 'b':
            if (cli_parse_long(optarg, 1, 1 << 16, &n_batch))
                return cli_usage_error("chat", "-b wants a batch size, got '%s'", optarg);
            break;
        case 's':
            if (cli_parse_long(optarg, 0, 0x7fffffffL, &v))
                return cli_usage_error("chat", "--seed wants a non-negative integer, got '%s'", optarg);
            c.sp.sp.seed = (uint64_t)v;
            seed_given = 1;
            break;
        case OPT_TEMP:
            if (cli_parse_float(optarg, &c.sp.sp.temp) || c.sp.sp.temp < 0)
                return cli_usage_error("chat", "--temp wants a number >= 0, got '%s'", optarg);
            break;
        case OPT_TOPK:
            if (cli_parse_long(optarg, 0, 1 << 24, &v))
                return cli_usage_error("chat", "--top-k wants a number >= 0, got '%s'", optarg);
            c.sp.sp.top_k = (int32_t)v;
            break;
        case OPT_TOPP:
            if (cli_parse_float(optarg, &c.sp.sp.top_p) || c.sp.sp.top_p <= 0 || c.sp.sp.top_p > 1)
                return cli_usage_error("chat", "--top-p wants a number in (0, 1], got '%s'", optarg);
            break;
        case OPT_MINP:
            if (cli_parse_float(optarg, &c.sp.sp.min_p) || c.sp.sp.min_p < 0 || c.sp.sp.min_p > 1)
                return cli_usage_error("chat", "--min-p wants a number in [0, 1], got '%s'", optarg);
            break;
        case OPT_RPEN:
            if (cli_parse_float(optarg, &c.sp.sp.repeat_penalty) || c.sp.sp.repeat_penalty <= 0)
                return cli_usage_error("chat", "--repeat-penalty wants a number > 0, got '%s'", optarg);
            break;
        case OPT_TPL: tpl = optarg; break;
        case OPT_KWARGS: kwargs = optarg; break;
        case OPT_VERBOSE: c.verbose = 1; break;
        case OPT_IGNORE_EOS: c.ignore_eos = 1; break;
        case OPT_RFORMAT:
            if (strcmp(optarg, "none") && strcmp(optarg, "auto"))
                return cli_usage_error("chat", "--reasoning-format wants auto or none, got '%s'", optarg);
            c.reasoning_raw = !strcmp(optarg, "none");
            break;
        case OPT_REFFORT:
            if (strcmp(optarg, "low") && strcmp(optarg, "medium") && strcmp(optarg, "high"))
                return cli_usage_error("chat", "--reasoning-effort wants low, medium or high, got '%s'",
                                       optarg);
            effort = optarg;
            break;
        case 'h': chat_help(stdout); return EXIT_OK;
        case ':': return cli_usage_error("chat", "option '%s' needs a value", argv[optind - 1]);
        default: {
            int r = cli_shared_option("chat", ch, optarg, &co, &so);
            if (r > 0)
                return r;
            if (r < 0)
                return cli_usage_error("chat", "unknown option '%s'", argv[optind - 1]);
        }
        }
    }
    if (optind < argc)
        return cli_usage_error("chat", "unexpected argument '%s'", argv[optind]);
    cli_compute_opts_finish(&co, &so);
    if (!model)
        return cli_usage_error("chat", "a model is required (-m FILE)");
    json_object *kw = NULL;
    if (kwargs) {
        kw = json_tokener_parse(kwargs);
        if (!kw || !json_object_is_type(kw, json_type_object)) {
            if (kw)
                json_object_put(kw);
            return cli_usage_error("chat", "--chat-template-kwargs wants a JSON object, got '%s'", kwargs);
        }
    }
    if (effort) {
        if (!kw)
            kw = json_object_new_object();
        json_object_object_add(kw, "reasoning_effort", json_object_new_string(effort));
    }
    if (!seed_given)
        c.sp.sp.seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 16);

    mr_error err;
    cli_session S;
    int rc = EXIT_OK;
    if (cli_session_open(model, &S, &err)) {
        if (kw)
            json_object_put(kw);
        return cli_report(&err);
    }
    c.S = &S;
    const mr_hparams *hp = &S.model->hp;
    if (!n_ctx)
        n_ctx = hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096;
    if (srv_format_open(&c.fmt, S.model->gguf, S.tok, tpl, &err)) {
        if (kw)
            json_object_put(kw);
        rc = cli_report(&err);
        goto out;
    }
    c.fmt.kwargs = kw;
    if (c.fmt.fallback)
        fprintf(stderr, "moerun chat: warning: %s has no chat template (tokenizer.chat_template); "
                        "using the default, %s\n", model, MR_CHAT_TEMPLATE_DEFAULT);
    eng_eog_init(&c.eog, S.tok, c.fmt.stops);
    mr_context *ctx = NULL;
    if (cli_session_store(&S, &so, (uint32_t)n_ctx, (uint32_t)n_batch, 1, &err) ||
        cli_context_new(&S, &co, (uint32_t)n_ctx, (uint32_t)n_batch, &ctx, &err)) {
        rc = cli_report(&err);
        goto out;
    }
    if (eng_seq_init(&c.seq, S.model, ctx, 0, 1, (uint32_t)n_batch, &err)) {
        mr_context_free(ctx);
        rc = cli_report(&err);
        goto out;
    }
    c.tty = isatty(STDIN_FILENO);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL); /* no SA_RESTART: readline returns */
    if (c.tty) {
        fprintf(stderr, "moerun chat: %s, template %s%s%s, context %ld; /help for commands\n",
                model, c.fmt.origin, c.fmt.family ? " (" : "", c.fmt.family ? c.fmt.family : "",
                n_ctx);
        if (c.fmt.family)
            fprintf(stderr, ")\n");
        using_history();
    }
    reset_conversation(&c);
    for (;;) {
        char *in = read_input(&c);
        if (!in)
            break;
        if (c.tty && *in)
            add_history(in);
        if (!strcmp(in, "/exit") || !strcmp(in, "/quit")) {
            free(in);
            break;
        } else if (!strcmp(in, "/clear")) {
            reset_conversation(&c);
            fprintf(stderr, "[conversation cleared]\n");
        } else if (!strncmp(in, "/save ", 6)) {
            save_conversation(&c, in + 6);
        } else if (!strncmp(in, "/load ", 6)) {
            load_conversation(&c, in + 6);
        } else if (!strcmp(in, "/help")) {
            fprintf(stderr, "/clear  forget the conversation (keeps -sys)\n/save FILE  write it as "
                            "JSON\n/load FILE  read one written by /save\n/exit  end (or Ctrl-D)\n");
        } else if (*in) {
            user_turn(&c, in, strlen(in));
        }
        free(in);
    }
    if (c.tty)
        fputc('\n', stdout);
out:
    free(c.kv_render);
    free(c.last_tail);
    if (c.msgs)
        json_object_put(c.msgs);
    eng_seq_free(&c.seq);
    srv_format_close(&c.fmt);
    cli_session_close(&S);
    return rc;
}
