/* cmd_info.c - moerun info: metadata, tensor table, expert slice sizes and
 * totals (total vs active parameters, bytes per token). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "kernels.h"

static void info_help(FILE *out)
{
    fprintf(out,
            "Usage: moerun info FILE [--no-tensors] | moerun info --cpu\n"
            "Show a GGUF file's metadata, tensors, per-expert slice sizes and totals.\n\n"
            "      --no-tensors  skip the tensor table\n"
            "      --cpu         show the CPU's SIMD features and the kernels chosen\n"
            "  -h, --help        this help\n");
}

static void print_value(const mr_gguf_value *v)
{
    switch (v->type) {
    case MR_GGUF_STRING:
        printf("\"%.*s\"%s", (int)(v->v.str.len > 120 ? 120 : v->v.str.len), v->v.str.ptr,
               v->v.str.len > 120 ? "..." : "");
        break;
    case MR_GGUF_ARRAY: {
        printf("[%s x %llu]", mr_gguf_vtype_name(v->v.arr.elem_type),
               (unsigned long long)v->v.arr.n);
        if (v->v.arr.elem_type == MR_GGUF_STRING) {
            printf(" \"%.*s\"%s", (int)(v->v.arr.n && v->v.arr.strs[0].len < 40 ? v->v.arr.strs[0].len : 0),
                   v->v.arr.n ? v->v.arr.strs[0].ptr : "", v->v.arr.n > 1 ? ", ..." : "");
        } else if (mr_gguf_vtype_size(v->v.arr.elem_type)) {
            for (uint64_t i = 0; i < v->v.arr.n && i < 4; i++)
                printf(i ? ", %g" : " %g", (double)mr_gguf_arr_f32(v, i));
            if (v->v.arr.n > 4)
                printf(", ...");
        }
        break;
    }
    case MR_GGUF_FLOAT32: case MR_GGUF_FLOAT64: printf("%g", v->v.f64); break;
    case MR_GGUF_BOOL: printf("%s", v->v.b ? "true" : "false"); break;
    case MR_GGUF_INT8: case MR_GGUF_INT16: case MR_GGUF_INT32: case MR_GGUF_INT64:
        printf("%lld", (long long)v->v.i64);
        break;
    default: printf("%llu", (unsigned long long)v->v.u64); break;
    }
}

static void human(double bytes, char *buf, size_t cap)
{
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int i = 0;
    while (bytes >= 1024.0 && i < 4) {
        bytes /= 1024.0;
        i++;
    }
    snprintf(buf, cap, "%.2f %s", bytes, u[i]);
}

static void model_totals(const mr_model *m)
{
    const mr_hparams *hp = &m->hp;
    char a[32], b[32], c[32];
    uint64_t expert_params = 0, other_params = 0;
    for (uint64_t i = 0; i < m->gguf->n_tensors; i++) {
        const mr_gguf_tensor *t = &m->gguf->tensors[i];
        if (strstr(t->name, "_exps.") || (!hp->is_moe && strstr(t->name, "ffn_") &&
                                          !strstr(t->name, "ffn_norm")))
            expert_params += mr_gguf_tensor_nelements(t);
        else
            other_params += mr_gguf_tensor_nelements(t);
    }
    /* per token: every non-expert weight but the embedding table (one row is
     * read) plus the chosen experts of each layer */
    uint64_t emb = mr_gguf_tensor_nelements(mr_gguf_tensor_find(m->gguf, "token_embd.weight"));
    uint64_t active = other_params - (m->tied_output ? 0 : emb) + hp->n_embd +
                      expert_params / hp->n_expert * hp->n_expert_used;
    uint64_t per_token_bytes = mr_model_bytes_per_token(m);

    printf("\nmodel: %s, %u layers, n_embd %u, %u heads (%u kv, head %u), n_ff %u, vocab %u\n",
           hp->is_moe ? "Mixture of Experts" : "dense", hp->n_layer, hp->n_embd, hp->n_head,
           hp->n_head_kv, hp->head_dim, hp->n_ff, hp->n_vocab);
    if (hp->is_moe) {
        const mr_layer *L = &m->layers[0];
        printf("experts: %u per layer, %u used per token\n", hp->n_expert, hp->n_expert_used);
        human((double)mr_expert_slice_bytes(&L->gate), a, sizeof a);
        human((double)mr_expert_slice_bytes(&L->up), b, sizeof b);
        human((double)mr_expert_slice_bytes(&L->down), c, sizeof c);
        printf("expert slice (layer 0): gate %s (%s), up %s (%s), down %s (%s)\n", a,
               mr_type_get(L->gate.type)->name, b, mr_type_get(L->up.type)->name, c,
               mr_type_get(L->down.type)->name);
        human((double)mr_expert_bytes(m, 0), a, sizeof a);
        printf("one expert of a layer: %s; all experts: ", a);
        human((double)m->expert_bytes, a, sizeof a);
        printf("%s\n", a);
    }
    human((double)m->resident_bytes, a, sizeof a);
    printf("non-expert weights: %s\n", a);
    printf("parameters: %.3f M total, %.3f M active per token (the embedding table counts "
           "one row)\n",
           (double)(expert_params + other_params) / 1e6, (double)active / 1e6);
    human((double)per_token_bytes, a, sizeof a);
    printf("weight bytes read per generated token: %s\n", a);
}

/* Per weight type: the ISA whose integer kernels start-up chose, and the
 * one-token matmul GB/s each candidate streamed (simd/autotune.c). */
static void print_autotune(const mr_autotune_report *r)
{
    if (!r->measured) {
        printf("autotune: off (MOERUN_ISA forces a level, MOERUN_AUTOTUNE=0, or one candidate)\n");
        return;
    }
    printf("autotune: one-token matmul over %zu MB per type, %.1f ms in all\n", r->bytes >> 20, r->ms);
    for (uint32_t t = 0; t < MR_TYPE_COUNT; t++) {
        int any = 0;
        for (int i = 0; i < MR_ISA_COUNT; i++)
            any |= r->gbs[t][i] > 0.0;
        if (!any)
            continue;
        printf("  %-5s -> %-7s", mr_type_get(t)->name, mr_isa_name(r->chosen[t]));
        for (int i = 0; i < MR_ISA_COUNT; i++)
            if (r->gbs[t][i] > 0.0)
                printf("  %s %.1f GB/s", mr_isa_name((mr_isa)i), r->gbs[t][i]);
        printf("\n");
    }
}

int cmd_info(int argc, char **argv)
{
    enum { OPT_CPU = 256, OPT_NO_TENSORS };
    static const struct option opts[] = {
        {"cpu", no_argument, 0, OPT_CPU}, {"no-tensors", no_argument, 0, OPT_NO_TENSORS},
        {"help", no_argument, 0, 'h'},    {0, 0, 0, 0},
    };
    int cpu = 0, no_tensors = 0, ch;
    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (ch) {
        case OPT_CPU: cpu = 1; break;
        case OPT_NO_TENSORS: no_tensors = 1; break;
        case 'h': info_help(stdout); return EXIT_OK;
        default: return cli_usage_error("info", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (cpu) {
        char feat[256];
        mr_cpu_features(feat, sizeof feat);
        printf("cpu features: %s\nkernels: %s (best available: %s)\n", feat,
               mr_isa_name(mr_kernels_get()->isa), mr_isa_name(mr_isa_best()));
        print_autotune(mr_kernels_autotune_report());
        if (optind == argc)
            return EXIT_OK;
    }
    if (optind + 1 != argc)
        return cli_usage_error("info", "expected exactly one FILE");
    const char *path = argv[optind];
    mr_error err;
    mr_gguf *g;
    if (mr_gguf_open(path, &g, &err))
        return cli_report(&err);
    char sz[32];
    human((double)g->file_size, sz, sizeof sz);
    printf("file: %s (%s), GGUF v%u, %llu tensors, %llu metadata keys, alignment %u, "
           "data at %llu\n", path, sz, g->version, (unsigned long long)g->n_tensors,
           (unsigned long long)g->n_kv, g->alignment, (unsigned long long)g->data_offset);
    printf("\nmetadata:\n");
    for (uint64_t i = 0; i < g->n_kv; i++) {
        printf("  %-44s ", g->kv[i].key);
        print_value(&g->kv[i].val);
        printf("\n");
    }
    if (!no_tensors && g->n_tensors) {
        printf("\n  %-36s %-6s %-28s %12s %14s\n", "tensor", "type", "shape (ne0, ne1, ...)",
               "bytes", "file offset");
        for (uint64_t i = 0; i < g->n_tensors; i++) {
            const mr_gguf_tensor *t = &g->tensors[i];
            char shape[64];
            int n = snprintf(shape, sizeof shape, "%llu", (unsigned long long)t->ne[0]);
            for (uint32_t d = 1; d < t->n_dims && n < (int)sizeof shape; d++)
                n += snprintf(shape + n, sizeof shape - n, ", %llu", (unsigned long long)t->ne[d]);
            printf("  %-36s %-6s %-28s %12llu %14llu\n", t->name, mr_type_get(t->type)->name,
                   shape, (unsigned long long)t->nbytes, (unsigned long long)t->file_offset);
        }
    }
    if (g->n_tensors == 0) {
        printf("\n(no tensors: a vocabulary-only file)\n");
        mr_gguf_close(g);
        return EXIT_OK;
    }
    mr_model *m;
    if (mr_model_from_gguf(g, &m, &err)) {
        printf("\nnot runnable by moerun: %s\n", err.msg);
        return cli_report(&err);
    }
    model_totals(m);
    mr_model_free(m);
    return EXIT_OK;
}
