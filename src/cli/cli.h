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

/* A loaded model with its tokenizer and a resident expert store. */
typedef struct {
    mr_model *model;
    mr_tokenizer *tok;
    mr_expert_store *store;
    double load_seconds;
} cli_session;

mr_status cli_session_open(const char *path, cli_session *s, mr_error *err);
void cli_session_close(cli_session *s);

double cli_now(void);
/* Peak resident set size in MiB. */
double cli_peak_rss_mib(void);

/* Print store counters (--stats). */
void cli_print_store_stats(const mr_expert_store *st, const mr_model *m);

int cmd_run(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_kld(int argc, char **argv);

#endif
