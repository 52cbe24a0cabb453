/* cmd_info.c - moerun info: metadata, tensor table, expert slice sizes and
 * totals (total vs active parameters, bytes per token). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "arch/arch.h"
#include "options.h"
#include "kernels.h"

enum { OPT_CPU = CLI_O_EXTRA, OPT_NO_TENSORS };

static const cli_opt info_extra[] = {
    {NULL, "--no-tensors", NULL, "skip the tensor table", OPT_NO_TENSORS},
    {NULL, "--cpu", NULL, "show the CPU's SIMD features and the kernels chosen", OPT_CPU},
    {0},
};

typedef struct {
    int cpu, no_tensors;
} info_state;

static int info_option(void *user, int id, const char *v)
{
    info_state *st = user;
    (void)v;
    if (id == OPT_CPU)
        st->cpu = 1;
    else
        st->no_tensors = 1;
    return 0;
}

static const int info_common[] = {0};

static const cli_command info_cmd = {
    "info", "FILE [--no-tensors] | moerun info --cpu",
    "Show a GGUF file's metadata, tensors, per-expert slice sizes and totals, and\n"
    "which matrix types the kernels in use run on the (slow) scalar path.",
    info_common, info_extra, info_option, NULL,
};

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
        } else if (v->v.arr.elem_type == MR_GGUF_UINT64) { /* checksums: hex, exact */
            for (uint64_t i = 0; i < v->v.arr.n && i < 4; i++)
                printf(i ? ", 0x%016llx" : " 0x%016llx", (unsigned long long)mr_gguf_arr_u64(v, i));
            if (v->v.arr.n > 4)
                printf(", ...");
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

    printf("\nmodel: %s (%s), %s, %u layers, n_embd %u, %u heads (%u kv, head %u), n_ff %u, "
           "vocab %u\n",
           mr_model_family(m), m->arch->gguf_name, hp->is_moe ? "Mixture of Experts" : "dense",
           hp->n_layer, hp->n_embd, hp->n_head, hp->n_head_kv, hp->head_dim, hp->n_ff,
           hp->n_vocab);
    printf("routing: %s\n", mr_model_routing(m));
    if (hp->is_moe) {
        uint32_t first = 0;
        while (first + 1 < hp->n_layer && !m->layers[first].moe)
            first++;
        const mr_layer *L = &m->layers[first];
        printf("experts: %u per layer, %u used per token\n", hp->n_expert, hp->n_expert_used);
        human((double)mr_expert_slice_bytes(&L->gate), a, sizeof a);
        human((double)mr_expert_slice_bytes(&L->up), b, sizeof b);
        human((double)mr_expert_slice_bytes(&L->down), c, sizeof c);
        printf("expert slice (layer %u): gate %s (%s), up %s (%s), down %s (%s)\n", first, a,
               mr_type_get(L->gate.type)->name, b, mr_type_get(L->up.type)->name, c,
               mr_type_get(L->down.type)->name);
        human((double)mr_expert_bytes(m, first), a, sizeof a);
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
    printf("autotune: one-token matmul over %zu MB per type (the IQ1/IQ2/IQ3 i-quants: a quarter), "
           "%.1f ms in all\n", r->bytes >> 20, r->ms);
    switch (r->cache) {
    case MR_TUNE_CACHE_LOADED:
        printf("autotune: read from %s (measured %lld s ago; MOERUN_AUTOTUNE=fresh measures again)\n",
               r->cache_path, (long long)time(NULL) - r->when);
        break;
    case MR_TUNE_CACHE_SAVED:
        printf("autotune: measured now (%s), kept in %s\n", r->cache_note, r->cache_path);
        break;
    case MR_TUNE_CACHE_UNSAVED:
        printf("autotune: measured now, not kept: %s\n", r->cache_note);
        break;
    default:
        printf("autotune: measured at every start (no cache directory: MOERUN_CACHE_DIR is empty)\n");
        break;
    }
    for (uint32_t t = 0; t < MR_TYPE_COUNT; t++) {
        int any = 0;
        for (int i = 0; i < MR_ISA_COUNT; i++)
            any |= r->gbs[t][i] > 0.0;
        if (!any)
            continue;
        printf("  %-7s -> %-7s", mr_type_get(t)->name, mr_isa_name(r->chosen[t]));
        for (int i = 0; i < MR_ISA_COUNT; i++)
            if (r->gbs[t][i] > 0.0)
                printf("  %s %.1f GB/s", mr_isa_name((mr_isa)i), r->gbs[t][i]);
        if (mr_kernels_get()->repack[t])
            printf("  (repacked when resident: kept)");
        printf("\n");
    }
    const mr_kernels *k = mr_kernels_get();
    int any = 0;
    for (uint32_t t = 0; t < MR_TYPE_COUNT; t++)
        if (k->repack[t])
            printf("%s %s (%u bytes per row and block)", any++ ? "," : "repacked at load (without --mem, -nr):",
                   mr_type_get(t)->name, k->pack_block_bytes[t]);
    if (any)
        printf("\n");
}

int cmd_info(int argc, char **argv)
{
    info_state is = {0};
    cli_opts o;
    int prc = cli_parse(&info_cmd, argc, argv, &o, &is);
    if (prc >= 0) {
        free(o.pos);
        return prc;
    }
    int cpu = is.cpu, no_tensors = is.no_tensors, n_pos = o.n_pos;
    const char *path = n_pos == 1 ? o.pos[0] : NULL;
    free(o.pos);
    if (cpu) {
        char feat[256];
        mr_cpu_features(feat, sizeof feat);
        printf("cpu features: %s\nkernels: %s (best available: %s)\n", feat,
               mr_isa_name(mr_kernels_get()->isa), mr_isa_name(mr_isa_best()));
        print_autotune(mr_kernels_autotune_report());
        if (n_pos == 0)
            return EXIT_OK;
    }
    if (n_pos != 1)
        return cli_usage_error("info", "expected exactly one FILE");
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
    if (mr_gguf_find(g, "tokenizer.ggml.model")) {
        mr_tokenizer *tok;
        mr_error terr;
        if (mr_tokenizer_load(g, &tok, &terr)) {
            printf("\ntokenizer: not usable: %s\n", terr.msg);
        } else {
            const char *pre = mr_tokenizer_pre(tok);
            printf("\ntokenizer: %s%s%s, %d tokens, bos %d, eos %d, BOS added: %s\n",
                   mr_tokenizer_kind(tok), pre ? ", pre " : "", pre ? pre : "",
                   mr_tokenizer_n_vocab(tok), mr_tokenizer_bos(tok), mr_tokenizer_eos(tok),
                   mr_tokenizer_add_bos(tok) ? "yes" : "no");
            mr_tokenizer_free(tok);
        }
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
    char slow[512];
    const mr_kernels *k = mr_kernels_get();
    if (cli_scalar_types(m, 0, slow, sizeof slow))
        printf("kernels: %s; on the SCALAR path (slow, no %s kernel yet): %s\n",
               mr_isa_name(k->isa), mr_isa_name(k->isa), slow);
    else
        printf("kernels: %s for every matrix type of this model\n", mr_isa_name(k->isa));
    mr_model_free(m);
    return EXIT_OK;
}
