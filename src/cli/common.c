/* common.c - helpers shared by the moerun commands. */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "cli.h"
#include "pack.h"
#include "threadpool.h"
#include "kernels.h"
#include "store_paged.h"
#include "fileio.h"
#include "types.h"

int cli_report(const mr_error *err)
{
    fprintf(stderr, "moerun: %s\n", err->msg[0] ? err->msg : mr_status_message(err->code));
    switch (err->code) {
    case MR_OK: return EXIT_OK;
    case MR_EINVAL: case MR_ERANGE: return EXIT_USAGE;
    case MR_EIO: case MR_ENOMEM: return EXIT_IO;
    default: return EXIT_BADFILE;
    }
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "moerun %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'moerun %s --help'.\n", cmd);
    return EXIT_USAGE;
}

int cli_parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int cli_parse_float(const char *s, float *out)
{
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || end == s || *end || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

mr_status cli_read_file(const char *path, char **out, size_t *len, mr_error *err)
{
    int is_stdin = !strcmp(path, "-");
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    if (is_stdin)
        path = "standard input";
    if (!f)
        return mr_fail(err, MR_EIO, path, NULL, MR_NO_OFFSET, "cannot open: %s", strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (n < cap)
            break;
        char *nb = realloc(buf, 2 * cap + 1);
        if (!nb) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    int bad = ferror(f);
    if (!is_stdin)
        fclose(f);
    if (!buf)
        return mr_fail(err, MR_ENOMEM, path, NULL, MR_NO_OFFSET, "no memory");
    if (bad) {
        free(buf);
        return mr_fail(err, MR_EIO, path, NULL, MR_NO_OFFSET, "read error");
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return MR_OK;
}

int cli_prompt(const char *cmd, const char *text, const char *file, char **out, size_t *len)
{
    if (text && file)
        return cli_usage_error(cmd, "give either -p TEXT or -f FILE, not both");
    if (file) {
        mr_error err;
        if (cli_read_file(file, out, len, &err))
            return cli_report(&err);
        return EXIT_OK;
    }
    if (!text)
        return cli_usage_error(cmd, "a prompt is required (-p TEXT or -f FILE)");
    *out = strdup(text);
    *len = strlen(text);
    return *out ? EXIT_OK : EXIT_IO;
}

void cli_store_opts_default(cli_store_opts *o)
{
    memset(o, 0, sizeof *o);
    o->prefetch = 1;
    o->kv_k = o->kv_v = MR_TYPE_F16;
    o->n_seq = 1;
}

int cli_parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || v < 0)
        return -1;
    double mul = 1;
    int unit = 1;
    switch (*end) {
    case 'k': case 'K': mul = 1024.0; break;
    case 'm': case 'M': mul = 1048576.0; break;
    case 'g': case 'G': mul = 1073741824.0; break;
    case 't': case 'T': mul = 1099511627776.0; break;
    default: unit = 0;
    }
    /* 8, 8B, 8G, 8GB, 8GiB (powers of two all); 'i' only after a unit */
    if (unit) {
        end++;
        if (*end == 'i')
            end++;
    }
    if (*end == 'B' || *end == 'b')
        end++;
    if (*end || v * mul > 1.8e19)
        return -1;
    *out = (uint64_t)(v * mul);
    return 0;
}

int cli_store_option(const char *cmd, int ch, const char *arg, cli_store_opts *o)
{
    switch (ch) {
    case OPT_STORE_MEM:
        o->mem_arg = arg;
        if (!strcmp(arg, "auto")) {
            o->mem = CLI_MEM_AUTO;
            return 0;
        }
        if (cli_parse_size(arg, &o->mem) || o->mem == 0 || o->mem == CLI_MEM_AUTO)
            return cli_usage_error(cmd, "--mem wants a size such as 8G or 512M, or auto, got '%s'",
                                   arg);
        return 0;
    case OPT_STORE_PREFETCH:
        if (cli_parse_long(arg, 0, 64, &o->prefetch))
            return cli_usage_error(cmd, "--prefetch wants a number of layers 0..64, got '%s'", arg);
        return 0;
    case OPT_STORE_NO_DIRECT:
        o->no_direct = 1;
        return 0;
    default:
        return -1;
    }
}

void cli_compute_opts_default(cli_compute_opts *o)
{
    o->threads = mr_physical_cores();
    o->exact = 0;
    o->yarn_trunc = 0;
    o->kv_k = o->kv_v = MR_TYPE_F16;
    o->kv_k_given = o->kv_v_given = 0;
}

void cli_long_aliases(int argc, char **argv)
{
    static const char *const map[][2] = {{"-ctk", "--cache-type-k"}, {"-ctv", "--cache-type-v"},
                                         {"-np", "--parallel"}, {"-sys", "--system-prompt"}};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--"))
            break;
        for (size_t k = 0; k < sizeof map / sizeof map[0]; k++)
            if (!strcmp(argv[i], map[k][0]))
                argv[i] = (char *)map[k][1];
    }
}

void cli_compute_opts_finish(cli_compute_opts *co, cli_store_opts *so)
{
    if (!co->kv_k_given)
        co->kv_k = co->exact ? MR_TYPE_F32 : MR_TYPE_F16;
    if (!co->kv_v_given)
        co->kv_v = co->exact ? MR_TYPE_F32 : MR_TYPE_F16;
    so->kv_k = co->kv_k;
    so->kv_v = co->kv_v;
    so->exact = co->exact;
    so->threads = co->threads;
}

int cli_shared_option(const char *cmd, int ch, const char *arg, cli_compute_opts *co,
                      cli_store_opts *so)
{
    switch (ch) {
    case 't':
        if (cli_parse_long(arg, 1, 1024, &co->threads))
            return cli_usage_error(cmd, "-t wants a thread count, got '%s'", arg);
        return 0;
    case OPT_COMPUTE_EXACT:
        co->exact = 1;
        return 0;
    case OPT_COMPUTE_YARN_TRUNC:
        co->yarn_trunc = 1;
        return 0;
    case OPT_COMPUTE_CTK:
    case OPT_COMPUTE_CTV: {
        uint32_t t = mr_type_from_name(arg);
        if (t != MR_TYPE_F32 && t != MR_TYPE_F16 && t != MR_TYPE_Q8_0)
            return cli_usage_error(cmd, "%s wants f16, q8_0 or f32, got '%s'",
                                   ch == OPT_COMPUTE_CTK ? "-ctk" : "-ctv", arg);
        if (ch == OPT_COMPUTE_CTK)
            co->kv_k = t, co->kv_k_given = 1;
        else
            co->kv_v = t, co->kv_v_given = 1;
        return 0;
    }
    default:
        return cli_store_option(cmd, ch, arg, so);
    }
}

mr_status cli_context_apply(mr_context *c, const cli_compute_opts *o, mr_error *err)
{
    mr_status st = mr_context_set_threads(c, (int)o->threads, err);
    if (!st) {
        mr_context_set_exact(c, o->exact);
        mr_context_set_yarn_trunc(c, o->yarn_trunc);
    }
    return st;
}

mr_status cli_context_new(const cli_session *s, const cli_compute_opts *o, uint32_t n_ctx,
                          uint32_t n_batch, mr_context **out, mr_error *err)
{
    mr_status st = mr_context_new_kv(s->model, s->store, n_ctx, n_batch, o->kv_k, o->kv_v, out,
                                     err);
    if (!st && (st = cli_context_apply(*out, o, err))) {
        mr_context_free(*out);
        *out = NULL;
    }
    return st;
}

mr_status cli_context_new_seqs(const cli_session *s, const cli_compute_opts *o, uint32_t n_ctx,
                               uint32_t n_batch, uint32_t n_seq, mr_context **out, mr_error *err)
{
    mr_status st = mr_context_new_seqs(s->model, s->store, n_ctx, n_batch, o->kv_k, o->kv_v, n_seq,
                                       out, err);
    if (!st && (st = cli_context_apply(*out, o, err))) {
        mr_context_free(*out);
        *out = NULL;
    }
    return st;
}

mr_status cli_session_open(const char *path, cli_session *s, mr_error *err)
{
    mr_status st;
    double t0 = cli_now();
    memset(s, 0, sizeof *s);
    s->path = path;
    if ((st = mr_model_load(path, &s->model, err)))
        return st;
    if ((st = mr_tokenizer_load(s->model->gguf, &s->tok, err))) {
        cli_session_close(s);
        return st;
    }
    if ((uint32_t)mr_tokenizer_n_vocab(s->tok) != s->model->hp.n_vocab) {
        cli_session_close(s);
        return mr_fail(err, MR_EFORMAT, path, "tokenizer.ggml.tokens", MR_NO_OFFSET,
                       "vocabulary size differs from token_embd.weight");
    }
    s->load_seconds = cli_now() - t0;
    return MR_OK;
}

/* Size --mem auto, and refuse a budget below what the model needs at this
 * context, naming the parts (the store would refuse it too, later and
 * without the context). */
/* The read bandwidth a paged run's bound is computed against: 2 threads
 * over 48 MB (> L3, inside the budget's overhead allowance). */
static double cli_mem_bandwidth(void)
{
    return mr_read_bandwidth(2, 48u << 20);
}

static mr_status cli_mem_budget(const cli_session *s, const cli_store_opts *o,
                                mr_paged_config *cfg, uint32_t n_ctx, mr_error *err)
{
    const uint64_t need = mr_store_paged_min_budget(s->model, cfg);
    const uint64_t slots = need - s->model->resident_bytes - cfg->reserve_bytes - MR_PAGED_OVERHEAD;
    char what[96];
    if (o->mem == CLI_MEM_AUTO) {
        uint64_t avail;
        char why[1024];
        mr_status st = mr_mem_auto_budget(&cfg->budget_bytes, &avail, why, sizeof why, err);
        if (st)
            return st;
        fprintf(stderr, "moerun: --mem auto: %.0f MiB (%s)\n", cfg->budget_bytes / 1048576.0, why);
        snprintf(what, sizeof what, "--mem auto (%.0f MiB)", cfg->budget_bytes / 1048576.0);
    } else {
        if (o->mem_arg)
            snprintf(what, sizeof what, "--mem %s", o->mem_arg);
        else
            snprintf(what, sizeof what, "--mem %.0fM", cfg->budget_bytes / 1048576.0);
    }
    if (cfg->budget_bytes < need)
        return mr_fail(err, MR_ERANGE, s->path, "--mem", MR_NO_OFFSET,
                       "%s is below the %.0f MiB this model needs at -c %u with a %s/%s KV "
                       "cache: non-expert weights %.1f MiB + one layer's %u expert slots %.1f "
                       "MiB + KV cache, scratch and logits %.1f MiB + overhead %.0f MiB",
                       what, (double)need / 1048576.0 + 0.5, n_ctx, mr_type_get(o->kv_k)->name,
                       mr_type_get(o->kv_v)->name, s->model->resident_bytes / 1048576.0,
                       s->model->hp.n_expert, slots / 1048576.0, cfg->reserve_bytes / 1048576.0,
                       MR_PAGED_OVERHEAD / 1048576.0);
    return MR_OK;
}

mr_status cli_session_store(cli_session *s, const cli_store_opts *o, uint32_t n_ctx,
                            uint32_t n_batch, uint32_t logit_rows, mr_error *err)
{
    double t0 = cli_now();
    mr_status st;
    int repack = !o->mem && !o->no_repack && !o->exact;
    const uint64_t need = repack ? mr_pack_bytes_needed(s->model, mr_kernels_get()) : 0;
    repack = repack && need > 0;
    if (repack) {
        /* the copies are anonymous memory, which unlike the file's pages
         * cannot be dropped under pressure: only when they fit */
        uint64_t budget = 0, avail = 0;
        char why[160];
        mr_error e2;
        if (mr_mem_auto_budget(&budget, &avail, why, sizeof why, &e2) || need > budget) {
            fprintf(stderr, "moerun: not repacking %.1f GiB of weights: %s; the file's layout is "
                            "used (slower prefill; --mem pages the experts)\n",
                    need / 1073741824.0, budget ? "more than the memory available" : e2.msg);
            repack = 0;
        }
    }
    if (repack) {
        /* the kernels in use (mr_kernels_get, as the contexts) read some
         * types faster repacked */
        const long th = o->threads > 0 ? o->threads : mr_physical_cores();
        uint64_t dense = 0;
        st = mr_model_pack(s->model, mr_kernels_get(), (unsigned)th, &dense, err);
        if (!st)
            st = mr_store_resident_packed_new(s->model, mr_kernels_get(), (unsigned)th,
                                              &s->packed_bytes, &s->store, err);
        s->packed_bytes += dense;
        s->packed_seconds = cli_now() - t0;
    } else if (!o->mem) {
        st = mr_store_resident_new(s->model, &s->store, err);
    } else {
        mr_paged_config cfg;
        mr_paged_config_default(&cfg);
        cfg.budget_bytes = o->mem;
        cfg.reserve_bytes = mr_context_bytes_seqs(s->model, n_ctx, n_batch, o->kv_k, o->kv_v,
                                                  o->n_seq ? o->n_seq : 1) +
                            (uint64_t)logit_rows * s->model->hp.n_vocab * sizeof(float);
        cfg.prefetch_depth = (uint32_t)o->prefetch;
        cfg.no_direct = o->no_direct;
        cfg.eager_pool = getenv("MOERUN_EAGER_POOL") && *getenv("MOERUN_EAGER_POOL") == '1';
        if (getenv("MOERUN_GUESS_EXTRA"))
            cfg.guess_extra = (uint32_t)strtoul(getenv("MOERUN_GUESS_EXTRA"), NULL, 0);
        if (getenv("MOERUN_PAGER_POLICY")) /* for side-by-side measurement: 0 = before */
            cfg.policy = (uint32_t)strtoul(getenv("MOERUN_PAGER_POLICY"), NULL, 0);
        if ((st = cli_mem_budget(s, o, &cfg, n_ctx, err)))
            return st;
        if (o->measure) /* before the pool exists, so it fits the budget */
            s->mem_bw = cli_mem_bandwidth();
        st = mr_store_paged_new(s->model, s->path, &cfg, &s->store, err);
        const char *fault = getenv("MOERUN_FAULT");
        mr_fault f;
        if (!st && fault && *fault) {
            if (mr_fault_parse(fault, &f) == 0)
                mr_store_paged_inject(s->store, &f);
            else
                fprintf(stderr, "moerun: ignoring MOERUN_FAULT='%s' (see store_paged.h)\n", fault);
        }
    }
    s->load_seconds += cli_now() - t0;
    return st;
}

void cli_session_mark(cli_session *s)
{
    if (!s->store)
        return;
    s->mark_store = s->store->stats;
    mr_store_paged_stats(s->store, &s->mark_paged);
    s->marked = 1;
}

void cli_session_close(cli_session *s)
{
    mr_expert_store_free(s->store); /* before the model: its views may point into it */
    mr_tokenizer_free(s->tok);
    mr_model_free(s->model);
    memset(s, 0, sizeof *s);
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double cli_peak_rss_mib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

void cli_print_routing(const mr_model *m, const uint64_t *counts)
{
    const uint32_t ne = m->hp.n_expert;
    if (!m->hp.is_moe)
        return;
    double h_sum = 0.0, top_sum = 0.0;
    uint32_t layers = 0;
    for (uint32_t l = 0; l < m->hp.n_layer; l++) {
        const uint64_t *c = counts + (size_t)l * ne;
        uint64_t total = 0, top = 0;
        for (uint32_t e = 0; e < ne; e++) {
            total += c[e];
            top = c[e] > top ? c[e] : top;
        }
        if (!total)
            continue;
        double h = 0.0;
        for (uint32_t e = 0; e < ne; e++)
            if (c[e])
                h -= (double)c[e] / (double)total * log2((double)c[e] / (double)total);
        h_sum += h;
        top_sum += (double)top / (double)total;
        layers++;
    }
    if (layers)
        fprintf(stderr, "routing: entropy %.2f of %.2f bits per layer (uniform = max); the "
                "busiest expert takes %.1f%% of a layer's slots (uniform: %.1f%%)\n",
                h_sum / layers, log2((double)ne), 100.0 * top_sum / layers, 100.0 / ne);
}

void cli_print_store_stats(const cli_session *ss, double gen_tps)
{
    mr_expert_store *st = ss->store;
    const mr_model *m = ss->model;
    const mr_store_stats *s = &st->stats;
    double tokens = s->tokens ? (double)s->tokens : 1.0;
    fprintf(stderr, "expert store: %s\n", st->ops->name);
    fprintf(stderr, "  plans %llu, acquires %llu (%.2f per token per layer)\n",
            (unsigned long long)s->plans, (unsigned long long)s->acquires,
            (double)s->acquires / tokens / m->hp.n_layer);
    fprintf(stderr, "  expert bytes touched %.1f MiB, %.2f MiB per token "
            "(all experts: %.1f MiB; non-expert weights: %.1f MiB)\n",
            s->bytes_touched / 1048576.0, s->bytes_touched / tokens / 1048576.0,
            m->expert_bytes / 1048576.0, m->resident_bytes / 1048576.0);
    mr_paged_stats p_st;
    if (!mr_store_paged_stats(st, &p_st))
        return;
    const mr_paged_stats *p = &p_st;
    uint64_t acq = p->hits + p->misses;
    fprintf(stderr, "  set-up: non-expert weights %.1f MiB read in %.2f s; pool mapped, faulted in "
            "and registered in %.2f s", p->resident_bytes / 1048576.0, p->copy_s, p->pool_s);
    if (p->populate_s > 0)
        fprintf(stderr, "; its pages faulted in behind that by %d threads in %.2f s",
                MR_PAGED_POPULATE_THREADS, p->populate_s);
    fputc('\n', stderr);
    fprintf(stderr, "  pool: %llu slots x %.1f MiB = %.1f MiB; reads: %s, %s, %s buffers; %s\n",
            (unsigned long long)p->n_slots, p->slot_bytes / 1048576.0, p->pool_bytes / 1048576.0,
            p->io_note, p->direct ? "O_DIRECT" : "buffered (O_DIRECT unavailable here)",
            p->registered ? "registered" : "unregistered",
            p->checksums ? "every slice checked against its xxh3"
                         : "no checksums in this file: slices are not verified");
    fprintf(stderr, "  hit rate %.1f%% (%llu hits, %llu misses), %llu evictions\n",
            acq ? 100.0 * (double)p->hits / (double)acq : 0.0, (unsigned long long)p->hits,
            (unsigned long long)p->misses, (unsigned long long)p->evictions);
    fprintf(stderr, "  prefetch: %llu experts read ahead, %llu used (%llu still in flight when "
            "needed); guesses right %.1f%% (precision), %.1f%% of needed experts predicted "
            "(recall)\n",
            (unsigned long long)p->prefetch_reads, (unsigned long long)p->prefetch_used,
            (unsigned long long)p->prefetch_late,
            p->guesses ? 100.0 * (double)p->guesses_right / (double)p->guesses : 0.0,
            p->needed ? 100.0 * (double)p->guesses_right / (double)p->needed : 0.0);
    double disk_bw = p->io_busy_s > 0 ? (double)p->bytes_read / p->io_busy_s / 1e9 : 0.0;
    fprintf(stderr, "  read %.1f MiB (%.2f MiB per token) in %llu reads (%llu re-queued, %llu "
            "re-read after a bad checksum), %.2f GB/s while busy\n",
            p->bytes_read / 1048576.0, p->bytes_read / tokens / 1048576.0,
            (unsigned long long)p->reads, (unsigned long long)p->requeued,
            (unsigned long long)p->retries, disk_bw);
    fprintf(stderr, "  stalled on I/O %.3f s (%.2f ms per token), checksums %.3f s\n",
            p->stall_s, 1e3 * p->stall_s / tokens, p->verify_s);
    /* The bound is for generation: from the counters since the prompt was
     * done (cli_session_mark), else over the whole run. */
    mr_store_stats g = *s;
    mr_paged_stats q = *p;
    const char *scope = "whole run";
    if (ss->marked) {
        scope = "generation only";
        g.tokens -= ss->mark_store.tokens;
        g.acquires -= ss->mark_store.acquires;
        g.bytes_touched -= ss->mark_store.bytes_touched;
        q.hits -= ss->mark_paged.hits;
        q.misses -= ss->mark_paged.misses;
        q.bytes_read -= ss->mark_paged.bytes_read;
        q.io_busy_s -= ss->mark_paged.io_busy_s;
        q.stall_s -= ss->mark_paged.stall_s;
    }
    if (!g.tokens)
        return;
    double gdisk = q.io_busy_s > 0 ? (double)q.bytes_read / q.io_busy_s / 1e9 : disk_bw;
    uint64_t gacq = q.hits + q.misses;
    fprintf(stderr, "  %s: %llu tokens, hit rate %.1f%%, %.1f MiB read per token, stalled "
            "%.1f ms per token\n", scope, (unsigned long long)g.tokens,
            gacq ? 100.0 * (double)q.hits / (double)gacq : 0.0,
            (double)q.bytes_read / (double)g.tokens / 1048576.0,
            1e3 * q.stall_s / (double)g.tokens);
    if (ss->mem_bw > 0 && gdisk > 0) {
        /* Over the slot pool itself when it holds enough (up to 1 GiB):
         * 48 MB fits the L3 of some CPUs (480 MiB on a Xeon, family 6
         * model 167, where it read 55 GB/s and the pool 20), and decode
         * streams the pool.  Else 48 MB again now the run is quiet, and
         * the better of the two. */
        size_t pool_len = 0;
        const void *pool = ss->store ? mr_store_paged_pool(ss->store, &pool_len) : NULL;
        const size_t over = pool_len < ((size_t)1 << 30) ? pool_len : ((size_t)1 << 30);
        double mem_bw;
        const char *how;
        if (pool && over >= ((size_t)256 << 20)) {
            mem_bw = mr_read_bandwidth_of(pool, over, 2);
            how = "over the slot pool";
        } else {
            const double again = cli_mem_bandwidth();
            mem_bw = again > ss->mem_bw ? again : ss->mem_bw;
            how = "best of start and end";
        }
        /* per token: bytes from memory (non-expert weights read per token +
         * expert bytes served from the pool) and bytes from disk */
        double from_disk = (double)q.bytes_read / (double)g.tokens;
        double touched = (double)g.bytes_touched / (double)g.tokens;
        double resident = (double)(m->resident_bytes - m->tok_embd.nbytes) + touched;
        double bound = 1.0 / (resident / (mem_bw * 1e9) + from_disk / (gdisk * 1e9));
        fprintf(stderr, "  bound: %.2f tokens/s for this hit rate (memory %.1f GB/s %s, disk "
                "%.2f GB/s measured)", bound, mem_bw, how, gdisk);
        if (gen_tps > 0)
            fprintf(stderr, "; reached %.1f%%", 100.0 * gen_tps / bound);
        fprintf(stderr, "\n");
    }
}

/* Does the chosen table run weight type t on the scalar reference? */
static int runs_scalar(const mr_kernels *k, const mr_kernels *sc, uint32_t t)
{
    if (k->isa == MR_ISA_SCALAR)
        return 1;
    if (k->act_type[t] == MR_TYPE_F32)
        return k->dot_f32[t] == sc->dot_f32[t];
    return k->vec_dot[t] == sc->vec_dot[t] && k->gemm[t] == sc->gemm[t];
}

int cli_scalar_types(const mr_model *m, int exact, char *buf, size_t cap)
{
    const mr_kernels *k = exact ? mr_kernels_get_exact() : mr_kernels_get();
    mr_kernels sc;
    uint64_t count[MR_TYPE_COUNT] = {0};
    int n = 0;
    size_t len = 0;
    mr_kernels_for_isa(MR_ISA_SCALAR, exact, &sc);
    buf[0] = '\0';
    for (uint64_t i = 0; i < m->gguf->n_tensors; i++) {
        const mr_gguf_tensor *t = &m->gguf->tensors[i];
        if (t->n_dims >= 2 && t->type < MR_TYPE_COUNT && strcmp(t->name, "token_embd.weight"))
            count[t->type]++; /* the embedding table is read a row at a time, not dotted */
    }
    for (uint32_t t = 0; t < MR_TYPE_COUNT; t++) {
        if (!count[t] || !runs_scalar(k, &sc, t))
            continue;
        int w = snprintf(buf + len, cap - len, "%s%s (%llu tensors)", n ? ", " : "",
                         mr_type_get(t)->name, (unsigned long long)count[t]);
        if (w > 0 && (size_t)w < cap - len)
            len += (size_t)w;
        n++;
    }
    return n;
}

void cli_print_kernel_paths(const mr_model *m, int exact)
{
    const mr_kernels *k = exact ? mr_kernels_get_exact() : mr_kernels_get();
    char buf[512];
    int n = cli_scalar_types(m, exact, buf, sizeof buf);
    if (!n)
        fprintf(stderr, "kernels: %s%s for every matrix type of this model\n",
                mr_isa_name(k->isa), exact ? " exact" : "");
    else if (k->isa == MR_ISA_SCALAR)
        fprintf(stderr, "kernels: scalar for every type (slow): %s\n", buf);
    else
        fprintf(stderr, "kernels: %s%s, but these matrix types run on the SCALAR path (slow, "
                "no %s kernel yet): %s\n", mr_isa_name(k->isa), exact ? " exact" : "",
                mr_isa_name(k->isa), buf);
}
