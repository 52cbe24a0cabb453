/* cmd_synth.c - moerun synth: write a random-weight model of a real
 * architecture's shapes (and its dense twin), for speed and paging
 * measurements without downloads. */
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "options.h"
#include "quant_mix.h"
#include "synth.h"
#include "types.h"

static void progress(void *ctx, uint64_t done, uint64_t total)
{
    double *t0 = ctx;
    double dt = cli_now() - *t0;
    fprintf(stderr, "\r%6.1f%%  %8.2f / %.2f GiB  %7.1f MB/s", 100.0 * (double)done / (double)total,
            done / 1073741824.0, total / 1073741824.0, dt > 0 ? done / dt / 1e6 : 0.0);
    fflush(stderr);
}

enum { OPT_SHAPE = CLI_O_EXTRA, OPT_LAYERS, OPT_TYPE, OPT_DENSE, OPT_ROUTING };

static char shape_help[512];

static const cli_opt synth_extra[] = {
    {NULL, "--shape", "NAME", shape_help, OPT_SHAPE},
    {NULL, "--layers", "N", "keep only the first N layers (default: all)", OPT_LAYERS},
    {NULL, "--type", "T", "matrix type: q4_0 (default), q8_0, f16, bf16, f32, q4_1,\n"
                          "q5_0, q5_1, q2_k..q6_k, mxfp4; or a llama-quantize mix: q2_k,\n"
                          "q3_k_s/m/l, q4_k_s/m, q5_k_s/m, q6_k, and the i-quant\n"
                          "mixes iq1_s/m, iq2_xxs/xs/s/m, iq3_xxs/xs/s/m,\n"
                          "iq4_xs, iq4_nl (as made with an importance matrix;\n"
                          "IQ1-IQ3 blocks are random codebook entries); each\n"
                          "tensor's type as llama-quantize chooses it (see\n"
                          "'moerun quantize --help'); gpt-oss's experts are MXFP4\n"
                          "whatever T (as released), T sets its other matrices", OPT_TYPE},
    {NULL, "--routing", "R", "uniform (default), or zipf:S: each layer's router prefers\n"
                             "its experts with Zipf(S) popularity in a random order (the\n"
                             "expert of rank r is chosen in proportion to r^-S, capped at\n"
                             "95% of tokens), as real models reuse hot experts; made by\n"
                             "scaling the router rows, fitted by simulation", OPT_ROUTING},
    {NULL, "--dense", NULL, "the dense twin: same active parameters per token, one FFN of\n"
                            "n_ff x experts-used per layer, no router", OPT_DENSE},
    {0},
};

typedef struct {
    const char *shape;
    long layers;
    int dense;
    uint32_t type;
    int mix;
    double zipf;
} synth_state;

static int synth_option(void *user, int id, const char *v)
{
    synth_state *st = user;
    switch (id) {
    case OPT_SHAPE: st->shape = v; return 0;
    case OPT_LAYERS:
        if (cli_parse_long(v, 1, 1024, &st->layers))
            return cli_usage_error("synth", "--layers wants a number >= 1, got '%s'", v);
        return 0;
    case OPT_TYPE: {
        char low[16];
        size_t i = 0;
        for (; v[i] && i + 1 < sizeof low; i++)
            low[i] = (char)(v[i] >= 'A' && v[i] <= 'Z' ? v[i] - 'A' + 'a' : v[i]);
        low[i] = '\0';
        uint32_t base;
        st->mix = (int)mr_mix_parse(low, &base, NULL);
        if (st->mix != MR_MIX_PURE) {
            st->type = base;
            return 0;
        }
        st->type = mr_type_from_name(v);
        if (st->type == MR_TYPE_COUNT || !mr_type_computable(st->type))
            return cli_usage_error("synth", "--type '%s' is not a type moerun computes with", v);
        if (!mr_synth_writes_type(st->type))
            return cli_usage_error("synth", "--type '%s': moerun reads this type but does not "
                                   "write it", v);
        return 0;
    }
    case OPT_ROUTING: {
        char *end;
        if (!strcmp(v, "uniform")) {
            st->zipf = 0;
            return 0;
        }
        if (strncmp(v, "zipf:", 5) || !(st->zipf = strtod(v + 5, &end), *end == '\0' && end != v + 5) ||
            !(st->zipf > 0 && st->zipf <= 8))
            return cli_usage_error("synth", "--routing wants uniform or zipf:S with 0 < S <= 8, "
                                   "got '%s'", v);
        return 0;
    }
    default: st->dense = 1; return 0;
    }
}

static const int synth_common[] = {CLI_O_OUTPUT, CLI_O_SEED, CLI_O_FORCE, 0};

static const cli_command synth_cmd = {
    "synth", "--shape NAME -o FILE [--layers N] [--type T] [--routing R] [--dense] [-s S] [--force]",
    "Write a random-weight GGUF with a real architecture's shapes (seed default 1).",
    synth_common, synth_extra, synth_option, NULL,
};

int cmd_synth(int argc, char **argv)
{
    size_t hl = (size_t)snprintf(shape_help, sizeof shape_help, "one of:");
    for (const char *const *n = mr_synth_shape_names(); *n && hl < sizeof shape_help; n++)
        hl += (size_t)snprintf(shape_help + hl, sizeof shape_help - hl, " %s", *n);
    synth_state ss = {NULL, 0, 0, MR_TYPE_Q4_0, MR_MIX_PURE, 0.0};
    cli_opts o;
    int prc = cli_parse(&synth_cmd, argc, argv, &o, &ss);
    if (prc >= 0) {
        free(o.pos);
        return prc;
    }
    const char *shape = ss.shape, *out = o.output;
    long layers = ss.layers, seed = o.seed_given ? (long)o.seed : 1;
    int dense = ss.dense, force = o.force;
    uint32_t type = ss.type;
    if (o.n_pos) {
        int r = cli_usage_error("synth", "unexpected argument '%s'", o.pos[0]);
        free(o.pos);
        return r;
    }
    free(o.pos);
    if (!shape || !out)
        return cli_usage_error("synth", "--shape NAME and -o FILE are required");
    const mr_synth_shape *sh = mr_synth_shape_find(shape);
    if (!sh)
        return cli_usage_error("synth", "unknown shape '%s' (see --help)", shape);
    struct stat st;
    if (!force && stat(out, &st) == 0)
        return cli_usage_error("synth", "%s exists (use --force to overwrite)", out);

    mr_synth_params p = {*sh, type, dense, (uint64_t)seed, ss.mix, ss.zipf};
    if (ss.zipf > 0 && dense)
        return cli_usage_error("synth", "--routing: a dense twin has no router");
    if (layers && (uint32_t)layers < p.shape.n_layer)
        p.shape.n_layer = (uint32_t)layers;
    char routing[32] = "";
    if (ss.zipf > 0)
        snprintf(routing, sizeof routing, ", routing zipf:%g", ss.zipf);
    fprintf(stderr, "synth: %s%s, %u layers, %s%s, ~%.2f GiB -> %s\n", sh->name,
            dense ? " (dense twin)" : "", p.shape.n_layer,
            ss.mix ? mr_mix_name((mr_mix)ss.mix) : mr_type_get(type)->name, routing,
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
