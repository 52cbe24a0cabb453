/* test_gptoss.c - what the tinygptoss fixture checks beyond its rows in
 * test_families.c (skipped, exit 77, without MOERUN_TESTDATA):
 * - the KV cache of a sliding-window layer is a ring of window + batch - 1
 *   rows (in whole attention blocks): the chat prompt (161 tokens) fed in
 *   small batches through the 64-row rings gives logits
 *   bit-identical to the same prompt in one batch (whole cache), and both
 *   are within 1e-4 of the float64 reference, resident and paged;
 * - the layer pattern, sinks, biases and routing the family reads;
 * - mr_context_set_yarn_trunc switches between the two references;
 * - moerun synth's gpt-oss shapes: the release sizes, and a file that loads;
 * - moerun quantize --type q8_0 keeps the released MXFP4 experts, and a
 *   two-shard copy of hf/ with a layer's blocks and scales apart converts
 *   to the same tensors.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "context.h"
#include "convert.h"
#include "gguf.h"
#include "hf_builder.h"
#include "safetensors.h"
#include "forward.h"
#include "store_paged.h"
#include "synth.h"
#include "verify.h"
#include "../quant/types.h"
#include "testutil.h"

static const char *dir;

static char *fixture(void)
{
    return strdup(tu_path("%s/models/tinygptoss/gguf/tinygptoss-mxfp4.gguf", dir));
}

/* All-position logits of ids fed in batches of `batch` (exact path), with
 * a KV cache of kv_type. */
static float *logits_in_batches_kv(const mr_model *m, mr_expert_store *st, const int32_t *ids,
                                   size_t n, uint32_t n_ctx, uint32_t batch, uint32_t kv_type,
                                   uint32_t *ring)
{
    mr_error err;
    mr_context *c;
    ck_assert_msg(mr_context_new_kv(m, st, n_ctx, batch, kv_type, kv_type, &c, &err) == 0, "%s",
                  err.msg);
    mr_context_set_exact(c, 1);
    if (ring)
        memcpy(ring, c->kv_rows, sizeof(uint32_t) * m->hp.n_layer);
    float *lg = malloc(sizeof(float) * n * m->hp.n_vocab);
    ck_assert(lg);
    for (size_t i = 0; i < n; i += batch) {
        const uint32_t nb = (uint32_t)(n - i < batch ? n - i : batch);
        ck_assert_msg(mr_decode(c, ids + i, nb, lg + i * m->hp.n_vocab, 1, &err) == 0, "%s",
                      err.msg);
    }
    mr_context_free(c);
    return lg;
}

static float *logits_in_batches(const mr_model *m, mr_expert_store *st, const int32_t *ids,
                                size_t n, uint32_t n_ctx, uint32_t batch, uint32_t *ring)
{
    return logits_in_batches_kv(m, st, ids, n, n_ctx, batch, MR_TYPE_F32, ring);
}

START_TEST(sliding_ring_matches_whole_cache)
{
    char *path = fixture();
    const char *prompt = tu_path("%s/models/tinygptoss/ref/chat.greedy.json", dir);
    size_t n, nr;
    int32_t *ids = tu_read_json_ints(prompt, "prompt_ids", &n);
    float *ref = tu_read_f32(tu_path("%s/models/tinygptoss/ref/chat.logits.f32", dir), &nr);
    ck_assert(ids && ref && n > 128); /* the 64-row rings wrap twice */
    mr_error err;
    mr_model *m;
    mr_expert_store *st;
    ck_assert_msg(mr_model_load(path, &m, &err) == 0, "%s", err.msg);
    ck_assert_msg(mr_store_resident_new(m, &st, &err) == 0, "%s", err.msg);
    const uint32_t nv = m->hp.n_vocab, n_ctx = 256;
    uint32_t rows[8], rows1[8];
    float *whole = logits_in_batches(m, st, ids, n, n_ctx, n_ctx, rows1);
    for (uint32_t il = 0; il < m->hp.n_layer; il++)
        ck_assert_uint_eq(rows1[il], n_ctx); /* window + 255 >= 256: no ring */
    ck_assert_msg(tu_max_abs_diff(whole, ref, n * nv) <= 1e-4, "whole cache: %g",
                  tu_max_abs_diff(whole, ref, n * nv));
    for (uint32_t batch = 1; batch <= 7; batch += 3) {
        float *ringed = logits_in_batches(m, st, ids, n, n_ctx, batch, rows);
        for (uint32_t il = 0; il < m->hp.n_layer; il++)
            ck_assert_uint_eq(rows[il], il % 2 == 0 ? (8 + batch - 1 + 63) / 64 * 64 : n_ctx);
        ck_assert_msg(memcmp(whole, ringed, sizeof(float) * n * nv) == 0,
                      "batches of %u through the rings differ from one batch (max %g)", batch,
                      tu_max_abs_diff(whole, ringed, n * nv));
        free(ringed);
    }
    /* an F16 or Q8_0 cache goes through the rings the same way */
    for (int kt = 0; kt < 2; kt++) {
        const uint32_t type = kt ? MR_TYPE_Q8_0 : MR_TYPE_F16;
        float *one = logits_in_batches_kv(m, st, ids, n, n_ctx, n_ctx, type, NULL);
        float *ringed = logits_in_batches_kv(m, st, ids, n, n_ctx, 4, type, rows);
        ck_assert_uint_eq(rows[0], 64);
        ck_assert_msg(memcmp(one, ringed, sizeof(float) * n * nv) == 0,
                      "%s cache: batches of 4 through the rings differ from one batch",
                      mr_type_get(type)->name);
        free(one);
        free(ringed);
    }
    /* the rings are what the context costs (and what --mem reserves): a
     * longer context grows only the two full-attention layers */
    const uint64_t kv_row = 4ull * m->hp.n_head_kv * (m->hp.head_dim + m->hp.head_dim_v);
    ck_assert_uint_eq(mr_context_bytes(m, 2 * n_ctx, 4) - mr_context_bytes(m, n_ctx, 4),
                      2ull * n_ctx * kv_row);
    mr_expert_store_free(st);
    /* paged at its minimum budget through the rings: the same bits */
    mr_paged_config cfg;
    mr_paged_config_default(&cfg);
    cfg.reserve_bytes = mr_context_bytes(m, n_ctx, 4);
    cfg.budget_bytes = mr_store_paged_min_budget(m, &cfg);
    ck_assert_msg(mr_store_paged_new(m, path, &cfg, &st, &err) == 0, "%s", err.msg);
    float *paged = logits_in_batches(m, st, ids, n, n_ctx, 4, NULL);
    ck_assert_msg(memcmp(whole, paged, sizeof(float) * n * nv) == 0, "paged rings differ");
    free(paged);
    mr_expert_store_free(st);
    mr_model_free(m);
    free(whole);
    free(ref);
    free(ids);
    free(path);
}
END_TEST

START_TEST(family_reads_the_gguf)
{
    char *path = fixture();
    mr_error err;
    mr_model *m;
    ck_assert_msg(mr_model_load(path, &m, &err) == 0, "%s", err.msg);
    const mr_hparams *hp = &m->hp;
    ck_assert_str_eq(mr_model_family(m), "gpt-oss");
    ck_assert_uint_eq(hp->n_layer, 4);
    ck_assert_uint_eq(hp->head_dim, 64);
    ck_assert_uint_eq(hp->n_ff, 64);
    ck_assert_int_eq(hp->rope.mode, MR_ROPE_NEOX);
    ck_assert_int_eq(hp->rope.scaling, MR_ROPE_SCALE_YARN);
    ck_assert_int_eq(hp->rope.yarn_no_truncate, 1);
    ck_assert_float_eq_tol(hp->rope.mscale, 1.346574f, 1e-6f);
    ck_assert_int_eq(hp->router.mode, MR_ROUTE_TOPK_SOFTMAX);
    ck_assert_int_eq(hp->act, MR_ACT_SWIGLU_OAI);
    for (uint32_t il = 0; il < hp->n_layer; il++) {
        const mr_layer *L = &m->layers[il];
        ck_assert_uint_eq(L->window, il % 2 == 0 ? 8 : 0); /* even layers slide */
        ck_assert(L->sinks && L->bq && L->bk && L->bv && L->bo && L->router_bias);
        ck_assert(L->gate_bias && L->up_bias && L->down_bias && L->ffn_norm);
        ck_assert_uint_eq(L->gate.type, 39); /* MXFP4 */
    }
    mr_model_free(m);
    free(path);
}
END_TEST

/* The YaRN setter moves the logits from one reference to the other (they
 * are 0.7-4.3 apart), and back. */
START_TEST(yarn_trunc_switches_reference)
{
    char *path = fixture();
    size_t n, nr1, nr2;
    int32_t *ids = tu_read_json_ints(
        tu_path("%s/models/tinygptoss/ref/paid_350.greedy.json", dir), "prompt_ids", &n);
    float *hf = tu_read_f32(tu_path("%s/models/tinygptoss/ref/paid_350.logits.f32", dir), &nr1);
    float *tr = tu_read_f32(
        tu_path("%s/models/tinygptoss/ref/paid_350.yarn_trunc.logits.f32", dir), &nr2);
    ck_assert(ids && hf && tr && nr1 == nr2);
    mr_error err;
    mr_model *m;
    mr_expert_store *st;
    mr_context *c;
    ck_assert_msg(mr_model_load(path, &m, &err) == 0, "%s", err.msg);
    ck_assert(mr_store_resident_new(m, &st, &err) == 0);
    ck_assert(mr_context_new(m, st, 64, 64, &c, &err) == 0);
    mr_context_set_exact(c, 1);
    float *lg = malloc(sizeof(float) * nr1);
    const int modes[3] = {1, 0, 1};
    for (int i = 0; i < 3; i++) {
        mr_context_set_yarn_trunc(c, modes[i]);
        mr_context_reset(c);
        ck_assert(mr_decode(c, ids, (uint32_t)n, lg, 1, &err) == 0);
        const double d_hf = tu_max_abs_diff(lg, hf, nr1), d_tr = tu_max_abs_diff(lg, tr, nr1);
        ck_assert_msg(modes[i] ? d_tr <= 1e-4 && d_hf > 0.1 : d_hf <= 1e-4 && d_tr > 0.1,
                      "yarn_trunc %d: %g from the HF reference, %g from yarn_trunc", modes[i],
                      d_hf, d_tr);
    }
    free(lg);
    mr_context_free(c);
    mr_expert_store_free(st);
    mr_model_free(m);
    free(hf);
    free(tr);
    free(ids);
    free(path);
}
END_TEST

/* Parameters of a synth shape: total, and active per token (one
 * embedding row, the used experts). */
static void shape_params(const mr_synth_shape *s, double head_dim, double *total,
                         double *active)
{
    const double E = s->n_embd, q = (double)s->n_head * head_dim,
                 kv = (double)s->n_head_kv * head_dim;
    const double attn = s->n_layer * (2 * E * q + 2 * E * kv);
    const double expert = 3.0 * E * s->n_ff, router = (double)s->n_layer * E * s->n_expert;
    *total = attn + router + 2.0 * E * s->n_vocab + (double)s->n_layer * s->n_expert * expert;
    *active = attn + router + E * s->n_vocab + E + (double)s->n_layer * s->n_expert_used * expert;
}

/* The two release shapes have the published sizes (21B total / 3.6B
 * active, 117B / 5.1B), and a reduced gpt-oss synth file loads as the
 * family and decodes, paged bit-identical to resident. */
START_TEST(synth_gptoss)
{
    double tot, act;
    const mr_synth_shape *s20 = mr_synth_shape_find("gpt-oss-20b");
    const mr_synth_shape *s120 = mr_synth_shape_find("gpt-oss-120b");
    ck_assert(s20 && s120);
    shape_params(s20, 64, &tot, &act); /* head_dim 64, as the configs say */
    ck_assert_msg(fabs(tot / 20.91e9 - 1) < 0.01 && fabs(act / 3.61e9 - 1) < 0.02,
                  "20b: %.3g total, %.3g active", tot, act);
    shape_params(s120, 64, &tot, &act);
    ck_assert_msg(fabs(tot / 116.8e9 - 1) < 0.01 && fabs(act / 5.13e9 - 1) < 0.02,
                  "120b: %.3g total, %.3g active", tot, act);
    mr_synth_params p = {*s20, MR_TYPE_Q8_0, 0, 7};
    p.shape.n_layer = 2, p.shape.n_vocab = 600, p.shape.n_embd = 256, p.shape.n_ff = 128;
    p.shape.n_expert = 8;
    char tmpl[] = "/tmp/moerun-gptoss-XXXXXX";
    ck_assert(mkdtemp(tmpl));
    char *path = strdup(tu_path("%s/s.gguf", tmpl));
    mr_error err;
    ck_assert_msg(mr_synth_write(&p, path, NULL, NULL, &err) == 0, "%s", err.msg);
    mr_model *m;
    mr_expert_store *st;
    ck_assert_msg(mr_model_load(path, &m, &err) == 0, "%s", err.msg);
    ck_assert_str_eq(mr_model_family(m), "gpt-oss");
    ck_assert_uint_eq(m->layers[0].window, 128);
    ck_assert_uint_eq(m->layers[1].window, 0);
    ck_assert_uint_eq(m->layers[0].gate.type, MR_TYPE_MXFP4);
    const int32_t ids[12] = {5, 17, 300, 42, 9, 599, 3, 250, 251, 77, 8, 400};
    ck_assert(mr_store_resident_new(m, &st, &err) == 0);
    float *a = logits_in_batches(m, st, ids, 12, 32, 3, NULL);
    mr_expert_store_free(st);
    for (size_t i = 0; i < 12 * m->hp.n_vocab; i++)
        ck_assert_msg(isfinite(a[i]), "logit %zu is not finite", i);
    mr_paged_config cfg;
    mr_paged_config_default(&cfg);
    cfg.reserve_bytes = mr_context_bytes(m, 32, 3);
    cfg.budget_bytes = mr_store_paged_min_budget(m, &cfg);
    ck_assert_msg(mr_store_paged_new(m, path, &cfg, &st, &err) == 0, "%s", err.msg);
    float *b = logits_in_batches(m, st, ids, 12, 32, 3, NULL);
    ck_assert(memcmp(a, b, sizeof(float) * 12 * m->hp.n_vocab) == 0);
    mr_expert_store_free(st);
    mr_model_free(m);
    free(a);
    free(b);
    unlink(path);
    rmdir(tmpl);
    free(path);
}
END_TEST

/* moerun quantize --type q8_0 of hf/ (the release's layout: MXFP4
 * _blocks/_scales, interleaved gate_up): the experts are still the
 * fixture's MXFP4 bytes (repacked, never requantized), the attention is
 * Q8_0, biases and sinks F32, and the file runs on the default
 * Q8 path near the reference.  (--type bf16 against llama.cpp's file:
 * test_convert.) */
START_TEST(converter_keeps_mxfp4)
{
    char *ref_path = fixture();
    char tmpl[] = "/tmp/moerun-gptoss-XXXXXX";
    ck_assert(mkdtemp(tmpl));
    char *out = strdup(tu_path("%s/out.gguf", tmpl));
    mr_convert_opts o = {0};
    char *in = strdup(tu_path("%s/models/tinygptoss/hf", dir));
    o.input_dir = in;
    o.output_path = out;
    o.type = "q8_0";
    o.threads = 2;
    mr_error err;
    ck_assert_msg(mr_convert(&o, NULL, &err) == 0, "%s", err.msg);
    mr_gguf *a, *b;
    ck_assert_msg(mr_gguf_open(out, &a, &err) == 0, "%s", err.msg);
    ck_assert_msg(mr_gguf_open(ref_path, &b, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(a->n_tensors, b->n_tensors);
    int experts = 0;
    for (uint64_t i = 0; i < b->n_tensors; i++) {
        const mr_gguf_tensor *tb = &b->tensors[i], *ta = mr_gguf_tensor_find(a, tb->name);
        ck_assert_msg(ta && !memcmp(ta->ne, tb->ne, sizeof ta->ne), "%s", tb->name);
        ck_assert_str_eq(a->tensors[i].name, tb->name); /* llama.cpp's order */
        if (tb->type == MR_TYPE_MXFP4) {
            ck_assert_msg(ta->type == MR_TYPE_MXFP4 && !memcmp(ta->data, tb->data, tb->nbytes),
                          "%s: not the released MXFP4 bytes", tb->name);
            experts++;
        } else {
            ck_assert_uint_eq(ta->type, tb->type == MR_TYPE_BF16 ? MR_TYPE_Q8_0 : MR_TYPE_F32);
        }
    }
    ck_assert_int_eq(experts, 12);
    uint32_t ft = 0;
    ck_assert(mr_gguf_get_u32(a, "general.file_type", &ft, &err) == 0 && ft == 38);
    mr_gguf_close(a);
    mr_gguf_close(b);
    /* moerun verify reads the gpt-oss keys: 4 layers x 16 experts x 3 slices */
    mr_verify_report rep;
    ck_assert_msg(mr_verify(out, o.input_dir, &rep, NULL, NULL, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(rep.slices, 192);
    ck_assert_uint_eq(rep.tensors, 79);
    ck_assert_uint_eq(rep.sources, 5);
    free(in);
    /* it runs: Q8_0 attention weights on top of the default path's Q8_0
     * activations (mean 0.03-0.05 on the BF16 file): observed 0.074 */
    size_t n, nr;
    int32_t *ids = tu_read_json_ints(
        tu_path("%s/models/tinygptoss/ref/once_upon.greedy.json", dir), "prompt_ids", &n);
    float *ref = tu_read_f32(tu_path("%s/models/tinygptoss/ref/once_upon.logits.f32", dir), &nr);
    mr_model *m;
    mr_expert_store *st;
    ck_assert_msg(mr_model_load(out, &m, &err) == 0, "%s", err.msg);
    ck_assert(mr_store_resident_new(m, &st, &err) == 0);
    mr_context *c;
    ck_assert(mr_context_new(m, st, 32, 32, &c, &err) == 0);
    float *lg = malloc(sizeof(float) * nr);
    ck_assert(mr_decode(c, ids, (uint32_t)n, lg, 1, &err) == 0);
    double mean = 0;
    for (size_t i = 0; i < nr; i++)
        mean += fabs((double)lg[i] - ref[i]) / (double)nr;
    ck_assert_msg(mean < 0.15, "mean |diff| %g", mean);
    free(lg);
    mr_context_free(c);
    mr_expert_store_free(st);
    mr_model_free(m);
    free(ref);
    free(ids);
    unlink(out);
    rmdir(tmpl);
    free(out);
    free(ref_path);
}
END_TEST

/* Copy hf/ into dir as two shards and an index, with the tensors named in
 * `moved` in the second shard (a layer's blocks and scales apart, as a
 * sharded release may have them); the other files are linked. */
static void write_two_shards(const char *src, const char *dst, const char *const *moved)
{
    static const char *const files[] = {"config.json", "tokenizer.json", "tokenizer_config.json",
                                        "special_tokens_map.json", "generation_config.json",
                                        "chat_template.jinja"};
    static const char *const shard[2] = {"model-00001-of-00002.safetensors",
                                         "model-00002-of-00002.safetensors"};
    mr_error err;
    mr_st_file *f;
    ck_assert_msg(mr_st_open(tu_path("%s/model.safetensors", src), &f, &err) == 0, "%s", err.msg);
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char from[512], to[512];
        snprintf(from, sizeof from, "%s/%s", src, files[i]);
        snprintf(to, sizeof to, "%s/%s", dst, files[i]);
        ck_assert(symlink(from, to) == 0);
    }
    size_t ilen = 0, icap = 1 << 16;
    char *index = malloc(icap);
    ilen += (size_t)snprintf(index, icap, "{\"metadata\": {}, \"weight_map\": {");
    for (int sh = 0; sh < 2; sh++) {
        size_t hcap = 1 << 16, hlen = 1;
        char *hdr = malloc(hcap);
        uint64_t off = 0, total = 0;
        hdr[0] = '{';
        for (uint32_t i = 0; i < f->n_tensors; i++) {
            const mr_st_tensor *t = &f->tensors[i];
            int is_moved = 0;
            for (const char *const *m = moved; *m; m++)
                is_moved |= !strcmp(*m, t->name);
            if (is_moved != sh)
                continue;
            hlen += (size_t)snprintf(hdr + hlen, hcap - hlen, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[",
                                     hlen > 1 ? "," : "", t->name, mr_st_dtype_name(t->dtype));
            for (uint32_t d = 0; d < t->n_dims; d++)
                hlen += (size_t)snprintf(hdr + hlen, hcap - hlen, "%s%llu", d ? "," : "",
                                         (unsigned long long)t->shape[d]);
            hlen += (size_t)snprintf(hdr + hlen, hcap - hlen, "],\"data_offsets\":[%llu,%llu]}",
                                     (unsigned long long)off,
                                     (unsigned long long)(off + t->nbytes));
            off += t->nbytes;
            ilen += (size_t)snprintf(index + ilen, icap - ilen, "%s\"%s\": \"%s\"",
                                     ilen > 40 ? ", " : "", t->name, shard[sh]);
        }
        hdr[hlen++] = '}';
        while (hlen % 8)
            hdr[hlen++] = ' ';
        ck_assert(hlen < hcap);
        total = 8 + hlen + off;
        uint8_t *img = malloc(total);
        for (int b = 0; b < 8; b++)
            img[b] = (uint8_t)((uint64_t)hlen >> (8 * b));
        memcpy(img + 8, hdr, hlen);
        off = 8 + hlen;
        for (uint32_t i = 0; i < f->n_tensors; i++) {
            const mr_st_tensor *t = &f->tensors[i];
            int is_moved = 0;
            for (const char *const *m = moved; *m; m++)
                is_moved |= !strcmp(*m, t->name);
            if (is_moved != sh)
                continue;
            ck_assert(mr_st_pread(f, t->offset, img + off, t->nbytes, &err) == 0);
            off += t->nbytes;
        }
        ck_assert(hfb_write_file(tu_path("%s/%s", dst, shard[sh]), img, total) == 0);
        free(img);
        free(hdr);
    }
    ilen += (size_t)snprintf(index + ilen, icap - ilen, "}}");
    ck_assert(ilen < icap);
    ck_assert(hfb_write_file(tu_path("%s/model.safetensors.index.json", dst), index, ilen) == 0);
    free(index);
    mr_st_close(f);
}

/* Every tensor of ours byte-identical to the fixture's llama.cpp GGUF. */
static void same_tensors(const char *ours, const char *theirs)
{
    mr_error err;
    mr_gguf *a, *b;
    ck_assert_msg(mr_gguf_open(ours, &a, &err) == 0, "%s", err.msg);
    ck_assert_msg(mr_gguf_open(theirs, &b, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(a->n_tensors, b->n_tensors);
    for (uint64_t i = 0; i < b->n_tensors; i++) {
        const mr_gguf_tensor *tb = &b->tensors[i], *ta = mr_gguf_tensor_find(a, tb->name);
        ck_assert_msg(ta && ta->type == tb->type && ta->nbytes == tb->nbytes &&
                          !memcmp(ta->data, tb->data, tb->nbytes),
                      "%s differs", tb->name);
    }
    mr_gguf_close(a);
    mr_gguf_close(b);
}

/* A two-shard checkpoint whose layer-1 gate_up blocks and layer-2 down
 * scales sit in the other shard than their partners converts to the same
 * tensors as the single file. */
START_TEST(converter_sharded)
{
    static const char *const moved[] = {"model.layers.1.mlp.experts.gate_up_proj_blocks",
                                        "model.layers.2.mlp.experts.down_proj_scales",
                                        "model.layers.2.mlp.experts.gate_up_proj_bias", NULL};
    char *tmp = hfb_tmpdir();
    ck_assert(tmp);
    char *in = strdup(tu_path("%s/in", tmp)), *out = strdup(tu_path("%s/out.gguf", tmp));
    ck_assert(mkdir(in, 0755) == 0);
    write_two_shards(tu_path("%s/models/tinygptoss/hf", dir), in, moved);
    mr_convert_opts o = {0};
    o.input_dir = in;
    o.output_path = out;
    o.type = "bf16";
    o.threads = 2;
    mr_error err;
    ck_assert_msg(mr_convert(&o, NULL, &err) == 0, "%s", err.msg);
    char *ref_path = fixture();
    same_tensors(out, ref_path);
    free(ref_path);
    char *cmd = strdup(tu_path("rm -rf '%s'", tmp));
    ck_assert(system(cmd) == 0);
    free(cmd);
    free(in);
    free(out);
    free(tmp);
}
END_TEST

int main(void)
{
    dir = tu_testdata_or_skip();
    Suite *s = suite_create("gptoss");
    TCase *tc = tcase_create("tinygptoss");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, family_reads_the_gguf);
    tcase_add_test(tc, sliding_ring_matches_whole_cache);
    tcase_add_test(tc, yarn_trunc_switches_reference);
    tcase_add_test(tc, synth_gptoss);
    tcase_add_test(tc, converter_keeps_mxfp4);
    tcase_add_test(tc, converter_sharded);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
