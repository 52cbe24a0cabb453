/* cmd_synth.c - moerun synth: write a random-weight model of a real
 * architecture's shapes (and its dense twin), for speed and paging
 * measurements without downloads. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "synth.h"
#include "types.h"

static void synth_help(FILE *out)
{
    fprintf(out,
            "Usage: moerun synth --shape NAME -o FILE [--layers N] [--type T] [--dense] [--seed S]\n"
            "Write a random-weight GGUF with a real architecture's shapes.\n\n"
            "      --shape NAME  one of:");
    for (const char *const *n = mr_synth_shape_names(); *n; n++)
        fprintf(out, " %s", *n);
    fprintf(out,
            "\n"
            "  -o, --output FILE output file\n"
            "      --layers N    keep only the first N layers (default: all)\n"
            "      --type T      matrix type: q4_0 (default), q8_0, f16, bf16, f32\n"
            "      --dense       the dense twin: same active parameters per token, one FFN of\n"
            "                    n_ff x experts-used per layer, no router\n"
            "      --seed S      random seed (default 1)\n"
            "      --force       overwrite an existing FILE\n"
            "  -h, --help        this help\n");
}

static void progress(void *ctx, uint64_t done, uint64_t total)
{
    double *t0 = ctx;
    double dt = cli_now() - *t0;
    fprintf(stderr, "\r%6.1f%%  %8.2f / %.2f GiB  %7.1f MB/s", 100.0 * (double)done / (double)total,
            done / 1073741824.0, total / 1073741824.0, dt > 0 ? done / dt / 1e6 : 0.0);
    fflush(stderr);
}

int cmd_synth(int argc, char **argv)
{
    enum { OPT_SHAPE = 256, OPT_LAYERS, OPT_TYPE, OPT_DENSE, OPT_SEED, OPT_FORCE };
    static const struct option opts[] = {
        {"shape", required_argument, 0, OPT_SHAPE}, {"output", required_argument, 0, 'o'},
        {"layers", required_argument, 0, OPT_LAYERS}, {"type", required_argument, 0, OPT_TYPE},
        {"dense", no_argument, 0, OPT_DENSE},       {"seed", required_argument, 0, OPT_SEED},
        {"force", no_argument, 0, OPT_FORCE},       {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *shape = NULL, *out = NULL;
    long layers = 0, seed = 1;
    int dense = 0, force = 0, ch;
    uint32_t type = MR_TYPE_Q4_0;
    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":o:h", opts, NULL)) != -1) {
        switch (ch) {
        case OPT_SHAPE: shape = optarg; break;
        case 'o': out = optarg; break;
        case OPT_LAYERS:
            if (cli_parse_long(optarg, 1, 1024, &layers))
                return cli_usage_error("synth", "--layers wants a number >= 1, got '%s'", optarg);
            break;
        case OPT_TYPE:
            type = mr_type_from_name(optarg);
            if (type == MR_TYPE_COUNT || !mr_type_computable(type))
                return cli_usage_error("synth", "--type '%s' is not a type moerun computes with",
                                       optarg);
            break;
        case OPT_DENSE: dense = 1; break;
        case OPT_SEED:
            if (cli_parse_long(optarg, 0, 0x7fffffffL, &seed))
                return cli_usage_error("synth", "--seed wants a non-negative integer, got '%s'", optarg);
            break;
        case OPT_FORCE: force = 1; break;
        case 'h': synth_help(stdout); return EXIT_OK;
        case ':': return cli_usage_error("synth", "option '%s' needs a value", argv[optind - 1]);
        default: return cli_usage_error("synth", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cli_usage_error("synth", "unexpected argument '%s'", argv[optind]);
    if (!shape || !out)
        return cli_usage_error("synth", "--shape NAME and -o FILE are required");
    const mr_synth_shape *sh = mr_synth_shape_find(shape);
    if (!sh)
        return cli_usage_error("synth", "unknown shape '%s' (see --help)", shape);
    struct stat st;
    if (!force && stat(out, &st) == 0)
        return cli_usage_error("synth", "%s exists (use --force to overwrite)", out);

    mr_synth_params p = {*sh, type, dense, (uint64_t)seed};
    if (layers && (uint32_t)layers < p.shape.n_layer)
        p.shape.n_layer = (uint32_t)layers;
    fprintf(stderr, "synth: %s%s, %u layers, %s, ~%.2f GiB -> %s\n", sh->name,
            dense ? " (dense twin)" : "", p.shape.n_layer, mr_type_get(type)->name,
            mr_synth_file_size(&p) / 1073741824.0, out);
    double t0 = cli_now();
    mr_error err;
    if (mr_synth_write(&p, out, isatty(2) ? progress : NULL, &t0, &err)) {
        if (isatty(2))
            fputc('\n', stderr);
        return cli_report(&err);
    }
    if (isatty(2))
        fputc('\n', stderr);
    fprintf(stderr, "wrote %s in %.1f s\n", out, cli_now() - t0);
    return EXIT_OK;
}
