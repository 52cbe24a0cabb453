/* cmd_quantize.c - moerun quantize: a Hugging Face checkpoint directory to
 * a GGUF file (src/convert.c), with progress on a terminal. */
#include <ctype.h>
#include <stdlib.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "options.h"
#include "convert.h"

enum { OPT_TYPE = CLI_O_EXTRA, OPT_NO_TMPFILE, OPT_ALIGNMENT };

static const cli_opt quantize_extra[] = {
    {NULL, "--type", "TYPE", "output type (or a third argument), in either case\n"
                             "(q4_k_m or llama.cpp's Q4_K_M); see below", OPT_TYPE},
    {NULL, "--alignment", "N", "tensor data alignment in bytes (default 4096, for the\n"
                               "pager's direct reads; 32 is llama.cpp's, for a file that\n"
                               "llama-quantize will requantize: it mishandles others)",
     OPT_ALIGNMENT},
    {NULL, "--no-tmpfile", NULL, "use a named temporary file instead of O_TMPFILE (testing)",
     OPT_NO_TMPFILE},
    {0},
};

static int quantize_option(void *user, int id, const char *v)
{
    mr_convert_opts *o = user;
    if (id == OPT_TYPE)
        o->type = v;
    else if (id == OPT_ALIGNMENT) {
        char *end;
        unsigned long a = strtoul(v, &end, 10);
        if (*end || a < 8 || a > (1ul << 20) || (a & (a - 1)))
            return cli_usage_error("quantize", "--alignment %s: want a power of two from 8 to "
                                   "1048576", v);
        o->alignment = (uint32_t)a;
    } else
        o->no_tmpfile = 1;
    return 0;
}

static const int quantize_common[] = {CLI_O_THREADS, CLI_O_FORCE, 0};

static const cli_command quantize_cmd = {
    "quantize", "INPUT_DIR OUT.gguf [TYPE] [--type TYPE] [-t N] [--force]",
    "Convert a Hugging Face checkpoint (config.json, model.safetensors or shards with\n"
    "model.safetensors.index.json, tokenizer.model or tokenizer.json) of a\n"
    "MixtralForCausalLM, MistralForCausalLM, LlamaForCausalLM, Qwen3MoeForCausalLM\n"
    "or DeepseekV3ForCausalLM with BF16, F16 or F32 weights (DeepSeek: also the FP8\n"
    "release with its 128x128 block scales, dequantized exactly) to GGUF,\n"
    "with llama.cpp's tensor names, Q/K row order and metadata keys, plus moerun's\n"
    "XXH3 checksums of the metadata, every tensor and expert slice (see 'moerun\n"
    "verify') and 4096-byte data alignment.  A NaN or infinite weight is refused,\n"
    "naming the tensor and the element.  Re-quantizing a GGUF is not supported yet.",
    quantize_common, quantize_extra, quantize_option, NULL,
};

/* The types and what they write, for the end of --help. */
static void quantize_types_help(FILE *out)
{
    fprintf(out, "\nTypes:\n");
    for (int i = 0; mr_convert_type_names[i]; i++) {
        const char *h = mr_convert_type_help(mr_convert_type_names[i]);
        fprintf(out, "  %-8s ", mr_convert_type_names[i]);
        for (; *h; h++)
            fputs(*h == '\n' ? "\n           " : (char[2]){*h, 0}, out);
        fputc('\n', out);
    }
    fprintf(out,
            "Rows whose length is not a multiple of the block fall back as llama-quantize\n"
            "does: Q2_K, Q3_K to Q4_0; Q4_K to Q5_0; Q5_K to Q5_1; Q6_K to Q8_0; IQ4_XS to\n"
            "IQ4_NL; else F16.\n\n"
            "Memory stays bounded whatever the model's size: jobs of at most 8 MiB of source\n"
            "rows, at most min(2N+2, 24) in flight.  The output appears only when complete\n"
            "and synced; an interrupted or failed run leaves no file.  Progress is shown on a\n"
            "terminal; the last line on stderr sums up the run.\n");
}

/* Is path a file that starts with the GGUF magic? */
static int is_gguf_file(const char *path)
{
    char magic[4];
    FILE *f = fopen(path, "rb");
    int yes = f && fread(magic, 1, 4, f) == 4 && !memcmp(magic, "GGUF", 4);
    if (f)
        fclose(f);
    return yes;
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
    mr_convert_opts o = {0};
    cli_opts co;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            cli_help(&quantize_cmd, stdout);
            quantize_types_help(stdout);
            return EXIT_OK;
        }
    int prc = cli_parse(&quantize_cmd, argc, argv, &co, &o);
    if (prc >= 0) {
        free(co.pos);
        return prc;
    }
    char *pos[3] = {0};
    int n_pos = co.n_pos;
    for (int i = 0; i < n_pos && i < 3; i++)
        pos[i] = co.pos[i];
    free(co.pos);
    if (n_pos < 2 || n_pos > 3)
        return cli_usage_error("quantize", "want INPUT_DIR and OUT.gguf (and optionally TYPE)");
    if (n_pos == 3 && o.type)
        return cli_usage_error("quantize", "the type is given twice ('%s' and --type %s)", pos[2],
                               o.type);
    if (n_pos == 3)
        o.type = pos[2];
    if (!o.type)
        return cli_usage_error("quantize", "--type TYPE is required");
    char type[32];
    size_t tl = strlen(o.type);
    for (size_t i = 0; i <= tl && i < sizeof type; i++)
        type[i] = (char)tolower((unsigned char)o.type[i]);
    type[sizeof type - 1] = '\0';
    if (!mr_convert_type_help(type))
        return cli_usage_error("quantize", "unknown type '%s' (see --help)", o.type);
    o.type = type;
    if (is_gguf_file(pos[0]))
        return cli_usage_error("quantize", "%s is a GGUF file: re-quantizing a GGUF is not "
                               "supported yet; give the Hugging Face checkpoint directory it "
                               "was made from", pos[0]);
    o.force = co.force;
    long threads = co.compute.threads;
    progress_state ps = {isatty(STDERR_FILENO), -1.0};
    o.input_dir = pos[0];
    o.output_path = pos[1];
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
