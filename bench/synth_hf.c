/* synth_hf.c - write a synthetic Hugging Face Mixtral checkpoint with the
 * real Mixtral-8x7B shapes (hidden 4096, FFN 14336, 32 heads, 8 KV heads,
 * 8 experts, vocab 32000) and N layers, random bf16 weights, sharded the
 * way transformers' save_pretrained shards the real download: tensors in
 * module order fill shards of at most --shard-gb, and inside each shard
 * they are stored sorted by name (as the safetensors serializer does).
 *
 * Usage: synth_hf OUT_DIR --layers N --tokenizer DIR [--shard-gb G] [--seed S]
 * DIR provides tokenizer.model and tokenizer_config.json (Mistral's
 * SentencePiece, e.g. ../shared/models/tinymix).  8 layers is ~23.7 GB.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { EMBD = 4096, FF = 14336, HEADS = 32, KV = 8, HD = 128, EXPERTS = 8, VOCAB = 32000 };

typedef struct {
    char name[96];
    uint64_t rows, cols; /* cols only (rows 0) for vectors */
    uint64_t nbytes;
    int shard;
    uint64_t offset;     /* inside the shard's data */
} tensor;

/* xorshift64* */
static uint64_t rnd(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

/* Fill n bf16 values: sign, exponents 2^-9..2^-6, random mantissa. */
static void fill(uint16_t *dst, size_t n, uint64_t *s)
{
    for (size_t i = 0; i + 4 <= n; i += 4) {
        uint64_t r = rnd(s);
        for (int k = 0; k < 4; k++) {
            uint16_t b = (uint16_t)(r >> (16 * k));
            dst[i + k] = (uint16_t)((b & 0x807f) | (0x3b00 + ((b >> 7) & 3) * 0x80));
        }
    }
    for (size_t i = n & ~(size_t)3; i < n; i++)
        dst[i] = 0x3c00;
}

/* Append a tensor of shape (rows, cols) (rows 0: vector). */
static void add(tensor *t, size_t *n, const char *name, uint64_t rows, uint64_t cols)
{
    snprintf(t[*n].name, sizeof t[*n].name, "%s", name);
    t[*n].rows = rows;
    t[*n].cols = cols;
    t[*n].nbytes = (rows ? rows : 1) * cols * 2;
    (*n)++;
}

/* Order of tensors by shard, then name. */
static int cmp_tensor(const void *a, const void *b)
{
    const tensor *x = a, *y = b;
    if (x->shard != y->shard)
        return x->shard - y->shard;
    return strcmp(x->name, y->name);
}

/* Copy a small file from src to dst; 0 on success. */
static int copy_file(const char *src, const char *dst)
{
    FILE *in = fopen(src, "rb"), *out = in ? fopen(dst, "wb") : NULL;
    char buf[65536];
    size_t r;
    int bad = !in || !out;
    while (!bad && (r = fread(buf, 1, sizeof buf, in)) > 0)
        bad = fwrite(buf, 1, r, out) != r;
    if (in)
        fclose(in);
    if (out && fclose(out))
        bad = 1;
    return bad ? -1 : 0;
}

/* Write one shard: header, then its tensors' random data. */
static int write_shard(const char *path, tensor *t, size_t a, size_t b, uint64_t *seed)
{
    size_t cap = 1 << 20, hl = 0;
    char *h = malloc(cap);
    uint64_t off = 0;
    hl += (size_t)snprintf(h + hl, cap - hl, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (size_t i = a; i < b; i++) {
        t[i].offset = off;
        if (t[i].rows)
            hl += (size_t)snprintf(h + hl, cap - hl,
                                   ",\"%s\":{\"dtype\":\"BF16\",\"shape\":[%llu,%llu],\"data_offsets\":[%llu,%llu]}",
                                   t[i].name, (unsigned long long)t[i].rows, (unsigned long long)t[i].cols,
                                   (unsigned long long)off, (unsigned long long)(off + t[i].nbytes));
        else
            hl += (size_t)snprintf(h + hl, cap - hl,
                                   ",\"%s\":{\"dtype\":\"BF16\",\"shape\":[%llu],\"data_offsets\":[%llu,%llu]}",
                                   t[i].name, (unsigned long long)t[i].cols, (unsigned long long)off,
                                   (unsigned long long)(off + t[i].nbytes));
        off += t[i].nbytes;
    }
    hl += (size_t)snprintf(h + hl, cap - hl, "}");
    while (hl % 8)
        h[hl++] = ' ';
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        free(h);
        return -1;
    }
    uint8_t len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    int bad = write(fd, len, 8) != 8 || write(fd, h, hl) != (ssize_t)hl;
    free(h);
    const size_t chunk = 64u << 20;
    uint16_t *buf = malloc(chunk);
    for (uint64_t left = off; !bad && left;) {
        size_t n = left < chunk ? (size_t)left : chunk;
        fill(buf, n / 2, seed);
        bad = write(fd, buf, n) != (ssize_t)n;
        left -= n;
    }
    free(buf);
    if (close(fd))
        bad = 1;
    return bad ? -1 : 0;
}

int main(int argc, char **argv)
{
    const char *out = NULL, *tok = NULL;
    int layers = 0;
    double shard_gb = 5.0;
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--layers") && i + 1 < argc)
            layers = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--tokenizer") && i + 1 < argc)
            tok = argv[++i];
        else if (!strcmp(argv[i], "--shard-gb") && i + 1 < argc)
            shard_gb = atof(argv[++i]);
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
            seed ^= strtoull(argv[++i], NULL, 0);
        else if (argv[i][0] != '-' && !out)
            out = argv[i];
        else {
            fprintf(stderr, "synth_hf: unexpected argument '%s'\n", argv[i]);
            return 1;
        }
    }
    if (!out || !tok || layers < 1 || layers > 32 || shard_gb <= 0) {
        fprintf(stderr, "Usage: synth_hf OUT_DIR --layers N(1-32) --tokenizer DIR "
                        "[--shard-gb G] [--seed S]\n");
        return 1;
    }
    if (mkdir(out, 0755) && errno != EEXIST) {
        perror(out);
        return 3;
    }
    size_t cap = 3 + (size_t)layers * (9 + 3 * EXPERTS), n = 0;
    tensor *t = calloc(cap, sizeof *t);
    char nm[96];
    add(t, &n, "model.embed_tokens.weight", VOCAB, EMBD);
    for (int l = 0; l < layers; l++) {
#define N(...) (snprintf(nm, sizeof nm, __VA_ARGS__), nm)
        add(t, &n, N("model.layers.%d.self_attn.q_proj.weight", l), HEADS * HD, EMBD);
        add(t, &n, N("model.layers.%d.self_attn.k_proj.weight", l), KV * HD, EMBD);
        add(t, &n, N("model.layers.%d.self_attn.v_proj.weight", l), KV * HD, EMBD);
        add(t, &n, N("model.layers.%d.self_attn.o_proj.weight", l), EMBD, HEADS * HD);
        add(t, &n, N("model.layers.%d.block_sparse_moe.gate.weight", l), EXPERTS, EMBD);
        for (int e = 0; e < EXPERTS; e++) {
            add(t, &n, N("model.layers.%d.block_sparse_moe.experts.%d.w1.weight", l, e), FF, EMBD);
            add(t, &n, N("model.layers.%d.block_sparse_moe.experts.%d.w2.weight", l, e), EMBD, FF);
            add(t, &n, N("model.layers.%d.block_sparse_moe.experts.%d.w3.weight", l, e), FF, EMBD);
        }
        add(t, &n, N("model.layers.%d.input_layernorm.weight", l), 0, EMBD);
        add(t, &n, N("model.layers.%d.post_attention_layernorm.weight", l), 0, EMBD);
#undef N
    }
    add(t, &n, "model.norm.weight", 0, EMBD);
    add(t, &n, "lm_head.weight", VOCAB, EMBD);
    /* shard in module order, as save_pretrained does */
    uint64_t limit = (uint64_t)(shard_gb * 1e9), size = 0, total = 0;
    int shard = 0;
    for (size_t i = 0; i < n; i++) {
        if (size && size + t[i].nbytes > limit)
            shard++, size = 0;
        t[i].shard = shard;
        size += t[i].nbytes;
        total += t[i].nbytes;
    }
    int n_shards = shard + 1;
    qsort(t, n, sizeof *t, cmp_tensor);
    char path[4096], shard_name[128];
    for (size_t a = 0, b; a < n; a = b) {
        for (b = a; b < n && t[b].shard == t[a].shard; b++)
            ;
        snprintf(shard_name, sizeof shard_name, "model-%05d-of-%05d.safetensors", t[a].shard + 1, n_shards);
        snprintf(path, sizeof path, "%s/%s", out, shard_name);
        fprintf(stderr, "synth_hf: %s (%zu tensors)\n", path, b - a);
        if (write_shard(path, t, a, b, &seed)) {
            perror(path);
            return 3;
        }
    }
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", out);
    FILE *f = fopen(path, "w");
    fprintf(f, "{\n  \"metadata\": {\"total_size\": %llu},\n  \"weight_map\": {\n", (unsigned long long)total);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "    \"%s\": \"model-%05d-of-%05d.safetensors\"%s\n", t[i].name, t[i].shard + 1,
                n_shards, i + 1 < n ? "," : "");
    fprintf(f, "  }\n}\n");
    fclose(f);
    snprintf(path, sizeof path, "%s/config.json", out);
    f = fopen(path, "w");
    fprintf(f, "{\n  \"architectures\": [\"MixtralForCausalLM\"],\n  \"hidden_size\": %d,\n"
               "  \"intermediate_size\": %d,\n  \"max_position_embeddings\": 32768,\n"
               "  \"model_type\": \"mixtral\",\n  \"num_attention_heads\": %d,\n"
               "  \"num_experts_per_tok\": 2,\n  \"num_hidden_layers\": %d,\n"
               "  \"num_key_value_heads\": %d,\n  \"num_local_experts\": %d,\n"
               "  \"rms_norm_eps\": 1e-05,\n  \"rope_theta\": 1000000.0,\n  \"hidden_act\": \"silu\",\n"
               "  \"tie_word_embeddings\": false,\n  \"torch_dtype\": \"bfloat16\",\n  \"vocab_size\": %d,\n"
               "  \"bos_token_id\": 1,\n  \"eos_token_id\": 2\n}\n",
            EMBD, FF, HEADS, layers, KV, EXPERTS, VOCAB);
    fclose(f);
    snprintf(path, sizeof path, "%s/generation_config.json", out);
    f = fopen(path, "w");
    fprintf(f, "{\"bos_token_id\": 1, \"eos_token_id\": 2}\n");
    fclose(f);
    const char *copy[2] = {"tokenizer.model", "tokenizer_config.json"};
    for (int i = 0; i < 2; i++) {
        char src[4096];
        snprintf(src, sizeof src, "%s/%s", tok, copy[i]);
        snprintf(path, sizeof path, "%s/%s", out, copy[i]);
        if (copy_file(src, path)) {
            fprintf(stderr, "synth_hf: cannot copy %s\n", src);
            return 3;
        }
    }
    fprintf(stderr, "synth_hf: %d layers, %zu tensors, %d shards, %.2f GB of bf16 in %s\n", layers, n,
            n_shards, total / 1e9, out);
    free(t);
    return 0;
}
