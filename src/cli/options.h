/* options.h - the one option table every moerun command parses with.
 *
 * How a command uses it (a new command such as `chat` or `serve` too):
 *
 *   static const int common[] = {CLI_O_MODEL, CLI_O_PROMPT, CLI_O_THREADS, ..., 0};
 *   static const cli_opt extra[] = {
 *       {NULL, "--temp", "T", "temperature, 0 = greedy (default 0.8)", OPT_TEMP},
 *       {0}};
 *   static const cli_command cmd = {"run", "-m FILE (-p TEXT | -f FILE) [options]",
 *                                   "Generate text ...", common, extra, on_extra, NULL};
 *   cli_opts o;
 *   int rc = cli_parse(&cmd, argc, argv, &o, &my_state);
 *   if (rc >= 0) return rc;      // --help printed (0) or a usage error (1)
 *
 * - The common options have llama.cpp's names and one meaning everywhere:
 *   -m/--model, -p/--prompt, -f/--file (- = stdin), -o/--output,
 *   -n/--n-predict, -c/--ctx-size, -b/--batch-size, -t/--threads,
 *   -s/--seed (-1 = random), --exact, --force, --stats, --no-bos, --mem,
 *   --prefetch, --no-direct, -h/--help.  Their values are checked here
 *   with one message per option; a command lists the ones it accepts.
 * - llama.cpp options that mean nothing on a CPU (-ngl/--n-gpu-layers N,
 *   -fa/--flash-attn [on|off|auto]) are accepted by every command that
 *   runs a model, with a one-line note on stderr, and ignored.
 * - A single-dash word is one option ("-cnv" is the option -cnv, never -c
 *   with the value "nv"): there is no grouping of short options and no
 *   value glued to a short name.  "--name=value" and "--name value" both
 *   work; "--" ends the options.  An unknown option is named as typed.
 * - Words that are not options are positional (cli_opts.pos).
 * - cli_help prints the usage, the description and every accepted option
 *   in aligned columns, from the same table the parser reads, so the help
 *   lists exactly what is accepted.
 * - -t above the CPUs this process may use (sched_getaffinity, the cgroup
 *   quota) is lowered to that with a note.
 */
#ifndef MOERUN_CLI_OPTIONS_H
#define MOERUN_CLI_OPTIONS_H

#include <stdint.h>
#include <stdio.h>

#include "cli.h"

/* Ids of the common options (0 ends a list). */
enum {
    CLI_O_END = 0,
    CLI_O_MODEL, CLI_O_PROMPT, CLI_O_FILE, CLI_O_OUTPUT, CLI_O_N_PREDICT, CLI_O_CTX,
    CLI_O_BATCH, CLI_O_THREADS, CLI_O_SEED, CLI_O_EXACT, CLI_O_FORCE, CLI_O_STATS,
    CLI_O_NO_BOS, CLI_O_MEM, CLI_O_PREFETCH, CLI_O_NO_DIRECT, CLI_O_NO_REPACK,
    CLI_O_GPU_IGNORED, /* -ngl, -fa: accepted, noted, ignored */
    CLI_O_YARN_TRUNC,  /* --yarn-trunc: llama.cpp's whole-dimension YaRN range */
    CLI_O_CACHE_K, CLI_O_CACHE_V, /* -ctk / -ctv TYPE: the KV cache's f32, f16 or q8_0 */
    CLI_O_COUNT,
    CLI_O_EXTRA = 100 /* commands number their own options from here */
};

/* One option: short and/or long name, the value's name (NULL: a flag;
 * a leading '[' : an optional value), the help text (lines separated by
 * '\n'), and its id. */
typedef struct {
    const char *sname; /* "-c" (may be a word: "-ngl"), or NULL */
    const char *lname; /* "--ctx-size", or NULL */
    const char *arg;   /* "N", "[on|off|auto]", or NULL */
    const char *help;
    int id;
} cli_opt;

/* Values of the common options after cli_parse. */
typedef struct {
    const char *model, *prompt, *file, *output;
    long n_predict;  /* -1: not given */
    long ctx;        /* 0: not given */
    long batch;      /* default 512 */
    int64_t seed;    /* -1: random */
    int seed_given, force, stats, no_bos;
    int kv_k_given, kv_v_given;
    cli_compute_opts compute; /* -t, --exact */
    cli_store_opts store;     /* --mem, --prefetch, --no-direct */
    int n_pos;
    char **pos;      /* positional words (into argv) */
} cli_opts;

/* A command's command line: its name, usage line (after "moerun NAME "),
 * description, the common options it accepts (0-terminated), its own
 * options ({0}-terminated; may be NULL) and the handler for them:
 * on_extra(user, id, value) returns 0 or an exit code (after printing,
 * e.g. with cli_usage_error). epilogue (may be NULL) ends the help. */
typedef struct {
    const char *name, *usage, *description;
    const int *common;
    const cli_opt *extra;
    int (*on_extra)(void *user, int id, const char *value);
    const char *epilogue;
} cli_command;

/* Parse argv[1..argc) for cmd into *o (defaults first).  Returns -1 when
 * the command should go on, EXIT_OK after printing --help, or an exit
 * code after printing a usage error. */
int cli_parse(const cli_command *cmd, int argc, char **argv, cli_opts *o, void *user);

/* Print cmd's help: usage, description, aligned options, epilogue. */
void cli_help(const cli_command *cmd, FILE *out);

#endif
