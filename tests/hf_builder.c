/* hf_builder.c - tiny Hugging Face checkpoints for tests (see hf_builder.h). */
#include "hf_builder.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "types.h"

/* xorshift32 step. */
static uint32_t rnd(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* Bytes of one element of a dtype name. */
static size_t dsize(const char *d)
{
    return !strcmp(d, "F32") ? 4 : 2;
}

/* Elements of a tensor. */
static uint64_t nel(const hfb_tensor *t)
{
    uint64_t n = 1;
    for (uint32_t i = 0; i < t->n_dims; i++)
        n *= t->shape[i];
    return n;
}

/* Fill n values of a dtype from seed. */
static void fill(uint8_t *dst, const char *dtype, uint64_t n, uint32_t seed)
{
    uint32_t s = seed * 2654435761u + 12345u;
    if (!s)
        s = 1;
    for (uint64_t i = 0; i < n; i++) {
        float v = ((float)(rnd(&s) & 0xffff) / 65535.0f - 0.5f) * 0.1f;
        if (!strcmp(dtype, "F32")) {
            memcpy(dst + 4 * i, &v, 4);
        } else {
            uint16_t h = !strcmp(dtype, "F16") ? mr_f32_to_f16(v) : mr_f32_to_bf16(v);
            memcpy(dst + 2 * i, &h, 2);
        }
    }
}

/* A safetensors image; see hf_builder.h. */
uint8_t *hfb_safetensors(const hfb_tensor *t, size_t n, size_t *len)
{
    size_t cap = 256 + n * 256, hl = 0;
    char *h = malloc(cap);
    uint64_t off = 0;
    if (!h)
        return NULL;
    hl += (size_t)snprintf(h + hl, cap - hl, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (size_t i = 0; i < n; i++) {
        uint64_t nb = nel(&t[i]) * dsize(t[i].dtype);
        hl += (size_t)snprintf(h + hl, cap - hl, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", t[i].name,
                               t[i].dtype);
        for (uint32_t d = 0; d < t[i].n_dims; d++)
            hl += (size_t)snprintf(h + hl, cap - hl, "%s%llu", d ? "," : "",
                                   (unsigned long long)t[i].shape[d]);
        hl += (size_t)snprintf(h + hl, cap - hl, "],\"data_offsets\":[%llu,%llu]}",
                               (unsigned long long)off, (unsigned long long)(off + nb));
        off += nb;
    }
    hl += (size_t)snprintf(h + hl, cap - hl, "}");
    while (hl % 8)
        h[hl++] = ' ';
    *len = 8 + hl + off;
    uint8_t *img = malloc(*len);
    if (!img) {
        free(h);
        return NULL;
    }
    for (int i = 0; i < 8; i++)
        img[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(img + 8, h, hl);
    off = 8 + hl;
    for (size_t i = 0; i < n; i++) {
        fill(img + off, t[i].dtype, nel(&t[i]), t[i].seed);
        off += nel(&t[i]) * dsize(t[i].dtype);
    }
    free(h);
    return img;
}

/* Append a protobuf varint. */
static void pb_varint(uint8_t *b, size_t *n, uint64_t v)
{
    do {
        b[(*n)++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
}

/* Append one SentencePiece message {piece, score, type} as field 1. */
static void pb_piece(uint8_t *b, size_t *n, const char *piece, float score, int type)
{
    uint8_t m[128];
    size_t k = 0, pl = strlen(piece);
    uint32_t u;
    m[k++] = 0x0a;
    pb_varint(m, &k, pl);
    memcpy(m + k, piece, pl);
    k += pl;
    m[k++] = 0x15;
    memcpy(&u, &score, 4);
    for (int i = 0; i < 4; i++)
        m[k++] = (uint8_t)(u >> (8 * i));
    m[k++] = 0x18;
    pb_varint(m, &k, (uint64_t)type);
    b[(*n)++] = 0x0a;
    pb_varint(b, n, k);
    memcpy(b + *n, m, k);
    *n += k;
}

/* A SentencePiece model; see hf_builder.h. */
uint8_t *hfb_spm_model(uint32_t n_words, size_t *len)
{
    uint8_t *b = malloc(64 * (260 + n_words) + 64);
    size_t n = 0;
    char p[32];
    if (!b)
        return NULL;
    pb_piece(b, &n, "<unk>", 0.0f, 2);
    pb_piece(b, &n, "<s>", 0.0f, 3);
    pb_piece(b, &n, "</s>", 0.0f, 3);
    for (int i = 0; i < 256; i++) {
        snprintf(p, sizeof p, "<0x%02X>", i);
        pb_piece(b, &n, p, 0.0f, 6);
    }
    for (uint32_t i = 0; i < n_words; i++) {
        snprintf(p, sizeof p, "\xe2\x96\x81w%u", i);
        pb_piece(b, &n, p, -(float)i, 1);
    }
    /* trainer_spec {model_type: BPE, byte_fallback: true}; normalizer_spec {add_dummy_prefix: true} */
    static const uint8_t tail[] = {0x12, 0x05, 0x18, 0x02, 0x98, 0x02, 0x01,
                                   0x1a, 0x02, 0x18, 0x01};
    memcpy(b + n, tail, sizeof tail);
    *len = n + sizeof tail;
    return b;
}

/* A fresh temporary directory; see hf_builder.h. */
char *hfb_tmpdir(void)
{
    char *d = strdup("/tmp/moerun-test-XXXXXX");
    if (d && !mkdtemp(d)) {
        free(d);
        d = NULL;
    }
    return d;
}

/* Count directory entries; see hf_builder.h. */
int hfb_dir_entries(const char *dir)
{
    DIR *dh = opendir(dir);
    struct dirent *e;
    int n = 0;
    if (!dh)
        return -1;
    while ((e = readdir(dh)))
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(dh);
    return n;
}

/* Remove a flat directory; see hf_builder.h. */
void hfb_rmdir(char *dir)
{
    DIR *dh = dir ? opendir(dir) : NULL;
    struct dirent *e;
    char path[4096];
    while (dh && (e = readdir(dh)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
    if (dh)
        closedir(dh);
    if (dir)
        rmdir(dir);
    free(dir);
}

/* Write a buffer to a file; see hf_builder.h. */
int hfb_write_file(const char *path, const void *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    int bad = fwrite(buf, 1, len, f) != len;
    return fclose(f) || bad ? -1 : 0;
}

/* Append tensor name of shape (r, c) (c only when r == 0) unless dropped;
 * bad_shape adds a row. */
static void add(hfb_tensor *t, size_t *n, char (*names)[128], const hfb_model_opts *o,
                const char *name, uint64_t r, uint64_t c)
{
    if (o->drop && !strcmp(o->drop, name))
        return;
    snprintf(names[*n], 128, "%s", name);
    hfb_tensor *x = &t[*n];
    x->name = names[*n];
    x->dtype = o->dtype ? o->dtype : "BF16";
    x->n_dims = r ? 2 : 1;
    x->shape[0] = r ? r : c;
    x->shape[1] = c;
    if (o->bad_shape && !strcmp(o->bad_shape, name))
        x->shape[0]++;
    x->seed = (uint32_t)*n + 1;
    (*n)++;
}

/* Write the tensors of the tiny model (one or two shards, index). */
static int write_tensors(const char *dir, const hfb_model_opts *o, int moe, int n_exp)
{
    const uint64_t E = HFB_EMBD, V = hfb_spm_pieces(HFB_WORDS), F = HFB_FF, D = HFB_HEAD_DIM;
    hfb_tensor t[256];
    char names[256][128], nm[128];
    size_t n = 0, split = 0;
    int rc = -1;
    memset(t, 0, sizeof t);
    add(t, &n, names, o, "model.embed_tokens.weight", V, E);
    for (int l = 0; l < HFB_LAYERS; l++) {
        if (l == 1)
            split = n;
#define N(...) (snprintf(nm, sizeof nm, __VA_ARGS__), nm)
        add(t, &n, names, o, N("model.layers.%d.input_layernorm.weight", l), 0, E);
        add(t, &n, names, o, N("model.layers.%d.self_attn.q_proj.weight", l), HFB_HEADS * D, E);
        add(t, &n, names, o, N("model.layers.%d.self_attn.k_proj.weight", l), HFB_KV * D, E);
        add(t, &n, names, o, N("model.layers.%d.self_attn.v_proj.weight", l), HFB_KV * D, E);
        add(t, &n, names, o, N("model.layers.%d.self_attn.o_proj.weight", l), E, HFB_HEADS * D);
        add(t, &n, names, o, N("model.layers.%d.post_attention_layernorm.weight", l), 0, E);
        if (moe) {
            add(t, &n, names, o, N("model.layers.%d.block_sparse_moe.gate.weight", l), (uint64_t)n_exp, E);
            for (int e = 0; e < n_exp; e++) {
                add(t, &n, names, o, N("model.layers.%d.block_sparse_moe.experts.%d.w1.weight", l, e), F, E);
                add(t, &n, names, o, N("model.layers.%d.block_sparse_moe.experts.%d.w2.weight", l, e), E, F);
                add(t, &n, names, o, N("model.layers.%d.block_sparse_moe.experts.%d.w3.weight", l, e), F, E);
            }
        } else {
            add(t, &n, names, o, N("model.layers.%d.mlp.gate_proj.weight", l), F, E);
            add(t, &n, names, o, N("model.layers.%d.mlp.up_proj.weight", l), F, E);
            add(t, &n, names, o, N("model.layers.%d.mlp.down_proj.weight", l), E, F);
        }
#undef N
    }
    add(t, &n, names, o, "model.norm.weight", 0, E);
    if (!o->tied)
        add(t, &n, names, o, "lm_head.weight", V, E);
    if (o->extra)
        add(t, &n, names, o, o->extra, 0, E);
    if (o->shards < 2)
        split = n;
    const char *shard_name[2] = {"model-00001-of-00002.safetensors",
                                 "model-00002-of-00002.safetensors"};
    for (int s = 0; s < (o->shards < 2 ? 1 : 2); s++) {
        size_t len, a = s ? split : 0, b = s ? n : split;
        uint8_t *img = hfb_safetensors(t + a, b - a, &len);
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, o->shards < 2 ? "model.safetensors" : shard_name[s]);
        if (!img || (!(o->index_missing_shard && s == 1) && hfb_write_file(path, img, len))) {
            free(img);
            return -1;
        }
        free(img);
    }
    if (o->shards >= 2) {
        size_t cap = 256 + n * 192, k = 0;
        char *idx = malloc(cap);
        if (!idx)
            return -1;
        k += (size_t)snprintf(idx + k, cap - k, "{\"metadata\":{\"total_size\":0},\"weight_map\":{");
        for (size_t i = 0; i < n; i++) {
            int s = i >= split;
            if (o->index_wrong_shard && i == 1)
                s = !s;
            k += (size_t)snprintf(idx + k, cap - k, "%s\"%s\":\"%s\"", i ? "," : "", t[i].name,
                                  shard_name[s]);
        }
        k += (size_t)snprintf(idx + k, cap - k, "}}\n");
        char path[4096];
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
        rc = hfb_write_file(path, idx, k);
        free(idx);
        return rc;
    }
    return 0;
}

/* Write the tiny model; see hf_builder.h. */
int hfb_write_model(const char *dir, const hfb_model_opts *o)
{
    const char *arch = o->arch ? o->arch : "MixtralForCausalLM";
    int moe = !strcmp(arch, "MixtralForCausalLM");
    int n_exp = o->n_expert ? o->n_expert : 4;
    char cfg[2048], path[4096], moe_kv[128] = "";
    size_t len;
    if (moe)
        snprintf(moe_kv, sizeof moe_kv, ", \"num_local_experts\": %d, \"num_experts_per_tok\": 2",
                 n_exp);
    snprintf(cfg, sizeof cfg,
             "{\"architectures\": [\"%s\"], \"hidden_size\": %d, \"intermediate_size\": %d,\n"
             " \"num_attention_heads\": %d, \"num_key_value_heads\": %d, \"num_hidden_layers\": %d,\n"
             " \"vocab_size\": %u, \"rms_norm_eps\": 1e-05, \"rope_theta\": 10000.0,\n"
             " \"max_position_embeddings\": 512, \"hidden_act\": \"silu\", \"bos_token_id\": 1,\n"
             " \"eos_token_id\": 2, \"tie_word_embeddings\": %s%s}\n",
             arch, HFB_EMBD, HFB_FF, HFB_HEADS, HFB_KV, HFB_LAYERS, hfb_spm_pieces(HFB_WORDS),
             o->tied ? "true" : "false", moe_kv);
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (hfb_write_file(path, cfg, strlen(cfg)))
        return -1;
    uint8_t *spm = hfb_spm_model(HFB_WORDS, &len);
    snprintf(path, sizeof path, "%s/tokenizer.model", dir);
    int rc = !spm || hfb_write_file(path, spm, len);
    free(spm);
    if (rc)
        return -1;
    return write_tensors(dir, o, moe, n_exp);
}
