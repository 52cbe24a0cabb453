/* cli.h - shared pieces of the moerun command line: exit codes, error
 * reporting, loading, timing.  Only src/cli/ prints or exits. */
#ifndef MOERUN_CLI_H
#define MOERUN_CLI_H

#include <stddef.h>
#include <stdint.h>

#include "expert_store.h"
#include "forward.h"
#include "gguf.h"
#include "model.h"
#include "store_paged.h"
#include "status.h"
#include "tokenizer.h"

enum { EXIT_OK = 0, EXIT_USAGE = 1, EXIT_BADFILE = 2, EXIT_IO = 3 };

/* Print "moerun: MESSAGE" to stderr and return the exit code for its status. */
int cli_report(const mr_error *err);
/* Print "moerun CMD: MESSAGE\nTry 'moerun CMD --help'." and return EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Parse a non-negative integer / float option value; 0 on success. */
int cli_parse_long(const char *s, long min, long max, long *out);
int cli_parse_float(const char *s, float *out);

/* Read a whole file into a NUL-terminated buffer (caller frees). */
mr_status cli_read_file(const char *path, char **out, size_t *len, mr_error *err);

/* The prompt from -p TEXT or -f FILE (exactly one); caller frees. */
int cli_prompt(const char *cmd, const char *text, const char *file, char **out, size_t *len);

/* A loaded model with its tokenizer and expert store. */
typedef struct {
    const char *path;
    mr_model *model;
    mr_tokenizer *tok;
    mr_expert_store *store;
    double load_seconds;
    uint64_t packed_bytes;  /* experts repacked at load (resident store) */
    double packed_seconds;  /* and the time that took */
    double mem_bw; /* GB/s measured at start with --stats and --mem, else 0 */
    int marked;    /* counters below are a snapshot (cli_session_mark) */
    mr_store_stats mark_store;
    mr_paged_stats mark_paged;
} cli_session;

/* Snapshot the store's counters (after the prompt: --stats then reports
 * generation on its own). */
void cli_session_mark(cli_session *s);

/* Expert-store options shared by run, perplexity and logits.  The
 * option tables below (CLI_*_LONG_OPTIONS, CLI_*_HELP, cli_shared_option)
 * are the getopt-era ones, kept only so that branches written against
 * them still build: new code parses with options.h, which fills these
 * structs. */
typedef struct {
    uint64_t mem;      /* --mem: 0 = all resident (mmap), CLI_MEM_AUTO = auto */
    const char *mem_arg; /* --mem as spelled, for messages */
    long prefetch;     /* --prefetch N: layers ahead (default 1) */
    int no_direct;     /* --no-direct */
    int measure;       /* measure memory bandwidth (for --stats) */
    uint32_t kv_k, kv_v; /* the KV cache types, for the budget (set with the compute ones) */
    uint32_t n_seq;      /* sequences of the context, for the budget (default 1) */
    int no_repack;       /* -nr: resident experts keep the file's layout */
    int exact;           /* --exact: the context computes exactly (nothing to repack for) */
    long threads;        /* threads for the repacking (0: physical cores) */
} cli_store_opts;

enum { OPT_STORE_MEM = 400, OPT_STORE_PREFETCH, OPT_STORE_NO_DIRECT };
#define CLI_STORE_LONG_OPTIONS                                                 \
    {"mem", required_argument, 0, OPT_STORE_MEM},                              \
    {"prefetch", required_argument, 0, OPT_STORE_PREFETCH},                    \
    {"no-direct", no_argument, 0, OPT_STORE_NO_DIRECT}
#define CLI_STORE_HELP                                                                     \
    "      --mem SIZE         RAM budget for everything (e.g. 8G, 512M, or auto: the\n"     \
    "                         cgroup limit or MemAvailable less a tenth), paging\n"     \
    "                         experts from disk within it (default: map the file)\n"     \
    "      --prefetch N       with --mem: guess experts N layers ahead (default 1, 0 off)\n" \
    "      --no-direct        with --mem: buffered reads instead of O_DIRECT\n"

#define CLI_MEM_AUTO UINT64_MAX

void cli_store_opts_default(cli_store_opts *o);

/* Threads and numeric path, shared by run, logits and perplexity. */
typedef struct {
    long threads; /* -t N: default physical cores */
    int exact;    /* --exact */
    int yarn_trunc; /* --yarn-trunc */
    uint32_t kv_k, kv_v; /* -ctk / -ctv: KV cache types (F16, or F32 with --exact) */
    int kv_k_given, kv_v_given;
} cli_compute_opts;

enum { OPT_COMPUTE_EXACT = 420, OPT_COMPUTE_YARN_TRUNC, OPT_COMPUTE_CTK, OPT_COMPUTE_CTV };
#define CLI_COMPUTE_LONG_OPTIONS                                               \
    {"threads", required_argument, 0, 't'},                                    \
    {"exact", no_argument, 0, OPT_COMPUTE_EXACT},                              \
    {"yarn-trunc", no_argument, 0, OPT_COMPUTE_YARN_TRUNC},                    \
    {"cache-type-k", required_argument, 0, OPT_COMPUTE_CTK},                   \
    {"cache-type-v", required_argument, 0, OPT_COMPUTE_CTV}
#define CLI_COMPUTE_HELP                                                                   \
    "  -t, --threads N          threads (default: physical cores)\n"                      \
    "      --exact              f32 activations, weights dequantised exactly (slower)\n"     \
    "      --yarn-trunc         YaRN correction range rounded to whole dimensions, as\n"    \
    "                           llama.cpp does (gpt-oss default: fractional, as released)\n" \
    "  -ctk, --cache-type-k T   KV cache keys: f16 (default), q8_0 or f32 (the default\n"   \
    "                           with --exact)\n"                                          \
    "  -ctv, --cache-type-v T   KV cache values: f16 (default), q8_0 or f32 (the default\n" \
    "                           with --exact)\n"

void cli_compute_opts_default(cli_compute_opts *o);
/* Rewrite llama.cpp's multi-letter short options (-ctk, -ctv, -np, -sys)
 * as their long names, for getopt_long. */
void cli_long_aliases(int argc, char **argv);
/* After the options: the KV cache types not given follow --exact, and the
 * store's budget counts the chosen ones. */
void cli_compute_opts_finish(cli_compute_opts *co, cli_store_opts *so);
/* Handle a compute or store option (-t, --exact, --mem, ...): -1 not one of
 * them, 0 taken, else an exit code. */
int cli_shared_option(const char *cmd, int ch, const char *arg, cli_compute_opts *co,
                      cli_store_opts *so);
/* The same for n_seq sequences sharing one context (serve's slots). */
mr_status cli_context_new_seqs(const cli_session *s, const cli_compute_opts *o, uint32_t n_ctx,
                               uint32_t n_batch, uint32_t n_seq, mr_context **out, mr_error *err);
/* Give a context its threads and numeric path. */
mr_status cli_context_apply(mr_context *c, const cli_compute_opts *o, mr_error *err);
/* A context on the session's store with the KV cache types of o, its
 * threads and numeric path applied. */
mr_status cli_context_new(const cli_session *s, const cli_compute_opts *o, uint32_t n_ctx,
                          uint32_t n_batch, mr_context **out, mr_error *err);
/* Handle a store option: -1 not one of them, 0 taken, else an exit code. */
int cli_store_option(const char *cmd, int ch, const char *arg, cli_store_opts *o);

/* Load model and tokenizer; then make the store for a context of n_ctx
 * positions and batches of n_batch, with logit_rows x n_vocab floats of
 * logits held by the command (the paged store's budget must also hold
 * those, the KV cache and scratch).  MOERUN_FAULT arms a fault (tests). */
mr_status cli_session_open(const char *path, cli_session *s, mr_error *err);
mr_status cli_session_store(cli_session *s, const cli_store_opts *o, uint32_t n_ctx,
                            uint32_t n_batch, uint32_t logit_rows, mr_error *err);
void cli_session_close(cli_session *s);

/* "8G", "512M", "1.5G", "1048576" -> bytes; 0 on success. */
int cli_parse_size(const char *s, uint64_t *out);

double cli_now(void);
/* Peak resident set size in MiB. */
double cli_peak_rss_mib(void);

/* Print how evenly tokens were routed (--stats): per-layer entropy. */
void cli_print_routing(const mr_model *m, const uint64_t *counts);

/* Print store counters (--stats); gen_tps: measured generation tokens/s
 * (0 if none), to compare with the paged bound. */
void cli_print_store_stats(const cli_session *s, double gen_tps);

/* The matrix types of m that the chosen kernels run on the scalar
 * reference path, as "q4_K (12 tensors), ..." in buf; returns how many
 * types (0: all have SIMD kernels). */
int cli_scalar_types(const mr_model *m, int exact, char *buf, size_t cap);
/* One line on stderr: the kernel set, and the types on the scalar path. */
void cli_print_kernel_paths(const mr_model *m, int exact);

int cmd_run(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_compare(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_kld(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_serve(int argc, char **argv);

#endif
