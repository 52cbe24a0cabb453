/* cmd_verify.c - moerun verify: check the XXH3 checksums moerun quantize
 * wrote (src/verify.c). */
#include <stdlib.h>
#include <stdio.h>
#include <unistd.h>

#include "cli.h"
#include "options.h"
#include "verify.h"

enum { OPT_SOURCE = CLI_O_EXTRA };

static const cli_opt verify_extra[] = {
    {NULL, "--source", "DIR", "also hash the checkpoint files the model was made from\n"
                              "and compare them with moerun.source.xxh3", OPT_SOURCE},
    {0},
};

static int verify_option(void *user, int id, const char *v)
{
    (void)id;
    *(const char **)user = v;
    return 0;
}

static const int verify_common[] = {0};

static const cli_command verify_cmd = {
    "verify", "FILE [--source DIR]",
    "Check the metadata, every expert slice and every tensor of a GGUF written by\n"
    "moerun (quantize, synth) against the XXH3-64 checksums it carries\n"
    "(moerun.checksum.*).  The first mismatch is named (a metadata key; layer,\n"
    "expert, gate/up/down; or the tensor) and the exit status is 2.",
    verify_common, verify_extra, verify_option, NULL,
};

typedef struct {
    int tty;
    double last;
} verify_progress;

/* Progress line on a terminal, at most 4 times a second. */
static void on_progress(const mr_verify_report *r, void *user)
{
    verify_progress *vp = user;
    if (!vp->tty || (r->seconds - vp->last < 0.25 && r->bytes_done != r->bytes_total))
        return;
    vp->last = r->seconds;
    fprintf(stderr, "\r  %.0f/%.0f MB, %.0f MB/s ", r->bytes_done / 1e6, r->bytes_total / 1e6,
            r->seconds > 0 ? r->bytes_done / 1e6 / r->seconds : 0.0);
    if (r->bytes_done == r->bytes_total)
        fputc('\n', stderr);
    fflush(stderr);
}

int cmd_verify(int argc, char **argv)
{
    const char *source = NULL;
    cli_opts o;
    int prc = cli_parse(&verify_cmd, argc, argv, &o, &source);
    if (prc >= 0) {
        free(o.pos);
        return prc;
    }
    if (o.n_pos != 1) {
        free(o.pos);
        return cli_usage_error("verify", "want one FILE");
    }
    const char *path = o.pos[0];
    free(o.pos);
    verify_progress vp = {isatty(STDERR_FILENO), -1.0};
    mr_verify_report r;
    mr_error err;
    if (mr_verify(path, source, &r, on_progress, &vp, &err))
        return cli_report(&err);
    printf("%s: OK: %llu tensors and %llu expert slices match their XXH3-64 (%.1f MB in %.2f s)",
           path, (unsigned long long)r.tensors, (unsigned long long)r.slices,
           r.bytes_total / 1e6, r.seconds);
    printf(r.metadata ? "; the metadata matches its XXH3-64"
                      : "; metadata NOT checked (no %s: written by an older moerun)",
           "moerun.checksum.metadata");
    if (source)
        printf("; %llu source files match", (unsigned long long)r.sources);
    printf("\n");
    return EXIT_OK;
}
