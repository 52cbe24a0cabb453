/* main.c - the moerun command: dispatch to one file per subcommand. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "kernels.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: moerun COMMAND [OPTIONS]\n"
            "Run Mixture-of-Experts language models (GGUF) on the CPU.\n\n"
            "Commands:\n"
            "  run         generate text from a prompt\n"
            "  info        show a GGUF file's metadata, tensors and expert sizes\n"
            "  tokenize    show the tokens of a text\n"
            "  logits      write the logits of every prompt position (float32)\n"
            "  perplexity  measure perplexity on a text file\n"
            "  synth       write a random-weight model of a real architecture's shapes\n"
            "  bench       prompt and generation speed against the memory-bandwidth ceiling\n"
            "  compare     a MoE's speed beside dense models of its active and total size\n"
            "  kld         KL divergence of the logits from reference logits\n"
            "  quantize    convert a Hugging Face checkpoint to GGUF\n"
            "  verify      check the checksums of a GGUF written by quantize\n"
            "  chat        talk with a model in the terminal (its chat template)\n"
            "  serve       an OpenAI-compatible HTTP server\n\n"
            "Run 'moerun COMMAND --help' for a command's options.\n"
            "  -h, --help     this help\n"
            "  -V, --version  version and the SIMD kernels in use\n\n"
            "Environment: MOERUN_ISA=scalar|avx2|avx2vnni|avx512|neon forces a lower kernel set\n"
            "(one this CPU cannot run, or an unknown name, is an error).\n"
            "The per-type kernel choice is measured once per CPU and build and kept in\n"
            "$MOERUN_CACHE_DIR (default $XDG_CACHE_HOME/moerun or ~/.cache/moerun; empty: measure\n"
            "at every start); MOERUN_AUTOTUNE=fresh measures again, =0 keeps the highest ISA.\n"
            "Exit status: 0 success, 1 bad usage, 2 bad input file, 3 I/O error.\n");
}

/* Where the start-up kernel choice is kept (simd/autotune_cache.c):
 * MOERUN_CACHE_DIR (empty: none), else the XDG cache directory. */
static void set_kernel_cache(void)
{
    char dir[400];
    const char *env = getenv("MOERUN_CACHE_DIR"), *xdg = getenv("XDG_CACHE_HOME"),
               *home = getenv("HOME");
    if (env)
        snprintf(dir, sizeof dir, "%s", env);
    else if (xdg && xdg[0] == '/')
        snprintf(dir, sizeof dir, "%s/moerun", xdg);
    else if (home && home[0] == '/')
        snprintf(dir, sizeof dir, "%s/.cache/moerun", home);
    else
        dir[0] = 0;
    mr_kernels_set_cache_dir(dir);
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {
        {"run", cmd_run},         {"info", cmd_info},   {"tokenize", cmd_tokenize},
        {"logits", cmd_logits},   {"perplexity", cmd_perplexity}, {"synth", cmd_synth},
        {"bench", cmd_bench},     {"compare", cmd_compare},
        {"quantize", cmd_quantize}, {"verify", cmd_verify},
        {"kld", cmd_kld},         {"chat", cmd_chat},   {"serve", cmd_serve},
    };
    /* a misspelt MOERUN_ISA would silently run the best kernels */
    const char *isa_env = getenv("MOERUN_ISA");
    if (isa_env && *isa_env) {
        mr_isa want = mr_isa_parse(isa_env);
        mr_kernels probe;
        if (want == MR_ISA_COUNT || !mr_kernels_for_isa(want, 0, &probe)) {
            fprintf(stderr, "moerun: MOERUN_ISA=%s: %s (this CPU and build run:", isa_env,
                    want == MR_ISA_COUNT ? "not a kernel set" : "this CPU or build cannot run it");
            for (int i = 0; i < MR_ISA_COUNT; i++)
                if (mr_kernels_for_isa((mr_isa)i, 0, &probe))
                    fprintf(stderr, " %s", mr_isa_name((mr_isa)i));
            fprintf(stderr, ")\n");
            return EXIT_USAGE;
        }
    }
    set_kernel_cache();
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return EXIT_OK;
    }
    if (!strcmp(argv[1], "-V") || !strcmp(argv[1], "--version")) {
        char feat[256];
        mr_cpu_features(feat, sizeof feat);
        printf("moerun %s\nkernels: %s (cpu: %s)\n", PACKAGE_VERSION,
               mr_isa_name(mr_kernels_get()->isa), feat);
        return EXIT_OK;
    }
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (!strcmp(argv[1], cmds[i].name))
            return cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "moerun: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return EXIT_USAGE;
}
