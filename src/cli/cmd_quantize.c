/* cmd_quantize.c - moerun quantize: a Hugging Face checkpoint directory to
 * a GGUF file (src/convert.c), with progress on a terminal. */
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "convert.h"

static void quantize_help(FILE *out)
{
    fprintf(out,
            "Usage: moerun quantize INPUT_DIR OUT.gguf --type TYPE [--threads N] [--force]\n"
            "Convert a Hugging Face checkpoint (config.json, model.safetensors or shards with\n"
            "model.safetensors.index.json, tokenizer.model or tokenizer.json) of a\n"
            "MixtralForCausalLM, MistralForCausalLM, LlamaForCausalLM, Qwen3MoeForCausalLM\n"
            "or DeepseekV3ForCausalLM with BF16, F16 or F32 weights (DeepSeek: also the FP8\n"
            "release with its 128x128 block scales, dequantized exactly) to GGUF,\n"
            "with llama.cpp's tensor names, Q/K row order and metadata keys, plus moerun's\n"
            "XXH3 checksums of every tensor and expert slice (see 'moerun verify') and\n"
            "4096-byte data alignment.\n\n"
            "  --type TYPE        output type (required):\n");
    for (int i = 0; mr_convert_type_names[i]; i++) {
        const char *h = mr_convert_type_help(mr_convert_type_names[i]);
        fprintf(out, "                       %-7s ", mr_convert_type_names[i]);
        for (; *h; h++)
            fputs(*h == '\n' ? "\n                               " : (char[2]){*h, 0}, out);
        fputc('\n', out);
    }
    fprintf(out,
            "                     Rows whose length is not a multiple of the block fall back\n"
            "                     to Q8_0 (k-quants) or F16.\n"
            "  -t, --threads N    worker threads (default: all CPUs)\n"
            "  -f, --force        replace OUT.gguf if it exists\n"
            "      --no-tmpfile   use a named temporary file instead of O_TMPFILE (testing)\n"
            "  -h, --help         this help\n\n"
            "Memory stays bounded whatever the model's size: jobs of at most 8 MiB of source\n"
            "rows, at most min(2N+2, 24) in flight.  The output appears only when complete\n"
            "and synced; an interrupted or failed run leaves no file.  Progress is shown on a\n"
            "terminal; the last line on stderr sums up the run.\n");
}

/* The named temporary, if any, for the signal handler to remove. */
static char temp_path[PATH_MAX];
static volatile sig_atomic_t have_temp;

/* Remember (or forget) the named temporary output. */
static void on_temp(const char *path, void *user)
{
    (void)user;
    have_temp = 0;
    if (path && strlen(path) < sizeof temp_path) {
        memcpy(temp_path, path, strlen(path) + 1);
        have_temp = 1;
    }
}

/* SIGINT/SIGTERM/SIGHUP: remove the named temporary, then die of the signal. */
static void on_signal(int sig)
{
    if (have_temp)
        unlink(temp_path);
    signal(sig, SIG_DFL);
    raise(sig);
}

typedef struct {
    int tty;
    double last;
} progress_state;

/* Progress line on a terminal, at most 4 times a second. */
static void on_progress(const mr_convert_progress *p, void *user)
{
    progress_state *ps = user;
    if (!ps->tty)
        return;
    int last = p->jobs_done == p->jobs_total;
    if (!last && p->seconds - ps->last < 0.25)
        return;
    ps->last = p->seconds;
    double mb = p->bytes_read / 1e6, total = p->bytes_total / 1e6;
    double rate = p->seconds > 0 ? mb / p->seconds : 0;
    double eta = rate > 0 ? (total - mb) / rate : 0;
    fprintf(stderr, "\r  tensors %u/%u  %.0f/%.0f MB read  %.0f MB written  %.1f MB/s  ETA %d:%02d ",
            p->tensors_done, p->tensors_total, mb, total, p->bytes_written / 1e6, rate,
            (int)eta / 60, (int)eta % 60);
    if (last)
        fputc('\n', stderr);
    fflush(stderr);
}

int cmd_quantize(int argc, char **argv)
{
    enum { OPT_TYPE = 256, OPT_NO_TMPFILE };
    static const struct option opts[] = {
        {"type", required_argument, 0, OPT_TYPE}, {"threads", required_argument, 0, 't'},
        {"force", no_argument, 0, 'f'}, {"no-tmpfile", no_argument, 0, OPT_NO_TMPFILE},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0},
    };
    mr_convert_opts o = {0};
    long threads = 0;
    int ch;
    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":t:fh", opts, NULL)) != -1) {
        switch (ch) {
        case OPT_TYPE: o.type = optarg; break;
        case 't':
            if (cli_parse_long(optarg, 1, 256, &threads))
                return cli_usage_error("quantize", "--threads wants a number from 1 to 256, got '%s'",
                                       optarg);
            break;
        case 'f': o.force = 1; break;
        case OPT_NO_TMPFILE: o.no_tmpfile = 1; break;
        case 'h': quantize_help(stdout); return EXIT_OK;
        case ':': return cli_usage_error("quantize", "option '%s' needs a value", argv[optind - 1]);
        default: return cli_usage_error("quantize", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (argc - optind != 2)
        return cli_usage_error("quantize", "want INPUT_DIR and OUT.gguf");
    if (!o.type)
        return cli_usage_error("quantize", "--type TYPE is required");
    if (!mr_convert_type_help(o.type))
        return cli_usage_error("quantize", "unknown type '%s'", o.type);
    progress_state ps = {isatty(STDERR_FILENO), -1.0};
    o.input_dir = argv[optind];
    o.output_path = argv[optind + 1];
    o.threads = (int)threads;
    o.progress = on_progress;
    o.on_temp = on_temp;
    o.user = &ps;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGHUP, on_signal);
    mr_error err;
    mr_convert_progress p;
    if (mr_convert(&o, &p, &err))
        return cli_report(&err);
    fprintf(stderr, "moerun quantize: wrote %s (%s): %u tensors, %.1f MB read, %.1f MB written "
            "in %.2f s (%.1f MB/s read); %.1f MB of job buffers; peak RSS %.1f MiB\n",
            o.output_path, o.type, p.tensors_total, p.bytes_read / 1e6, p.bytes_written / 1e6,
            p.seconds, p.seconds > 0 ? p.bytes_read / 1e6 / p.seconds : 0.0,
            p.buffer_bytes / 1e6, cli_peak_rss_mib());
    return EXIT_OK;
}
