/* cmd_verify.c - moerun verify: check the XXH3 checksums moerun quantize
 * wrote (src/verify.c). */
#include <getopt.h>
#include <stdio.h>
#include <unistd.h>

#include "cli.h"
#include "verify.h"

static void verify_help(FILE *out)
{
    fprintf(out,
            "Usage: moerun verify FILE [--source DIR]\n"
            "Check every expert slice and every tensor of a GGUF written by 'moerun quantize'\n"
            "against the XXH3-64 checksums it carries (moerun.checksum.*).  The first\n"
            "mismatch is named (layer, expert, gate/up/down, or the tensor) and the exit\n"
            "status is 2.\n\n"
            "  -s, --source DIR   also hash the checkpoint files the model was made from\n"
            "                     and compare them with moerun.source.xxh3\n"
            "  -h, --help         this help\n");
}

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
    static const struct option opts[] = {
        {"source", required_argument, 0, 's'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0},
    };
    const char *source = NULL;
    int ch;
    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":s:h", opts, NULL)) != -1) {
        switch (ch) {
        case 's': source = optarg; break;
        case 'h': verify_help(stdout); return EXIT_OK;
        case ':': return cli_usage_error("verify", "option '%s' needs a value", argv[optind - 1]);
        default: return cli_usage_error("verify", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (argc - optind != 1)
        return cli_usage_error("verify", "want one FILE");
    verify_progress vp = {isatty(STDERR_FILENO), -1.0};
    mr_verify_report r;
    mr_error err;
    if (mr_verify(argv[optind], source, &r, on_progress, &vp, &err))
        return cli_report(&err);
    printf("%s: OK: %llu tensors and %llu expert slices match their XXH3-64 (%.1f MB in %.2f s)",
           argv[optind], (unsigned long long)r.tensors, (unsigned long long)r.slices,
           r.bytes_total / 1e6, r.seconds);
    if (source)
        printf("; %llu source files match", (unsigned long long)r.sources);
    printf("\n");
    return EXIT_OK;
}
