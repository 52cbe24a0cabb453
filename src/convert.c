/* convert.c - plan a Hugging Face -> GGUF conversion and run it (see
 * convert.h): config.json, the tensor mapping and shape checks per
 * architecture, the output type of every tensor, and the metadata keys in
 * llama.cpp's order.  The jobs run in quantize_pool.c, the vocabulary is
 * convert_vocab.c, the output file outfile.c. */
#include "config.h"

#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "convert_internal.h"
#include "fileio.h"
#include "moerun_keys.h"
#include "quant_mix.h"
#include "../quant/types.h"

#define MAX_CONFIG_BYTES (1u << 20)
#define MAX_DIM (1u << 24)
#define MAX_LAYERS 4096u
#define MAX_EXPERTS 512u

/* The output types: name, base tensor type, general.file_type, and the
 * mix (src/quant_mix.c) that chooses each tensor's type as llama-quantize
 * does; MR_MIX_PURE: every matrix the base type (llama-quantize --pure). */
typedef struct {
    const char *name;
    uint32_t type;
    uint32_t file_type;
    mr_mix mix;
    const char *help;
} out_type;

static const out_type out_types[] = {
    {"f32", MR_TYPE_F32, 0, MR_MIX_PURE, "every tensor F32"},
    {"f16", MR_TYPE_F16, 1, MR_MIX_PURE, "matrices F16; norms and routers F32"},
    {"bf16", MR_TYPE_BF16, 32, MR_MIX_PURE, "matrices BF16; norms and routers F32"},
    {"q8_0", MR_TYPE_Q8_0, 7, MR_MIX_PURE, "matrices Q8_0 (as convert_hf_to_gguf.py)"},
    {"q4_0", MR_TYPE_Q4_0, 2, MR_MIX_PURE, "matrices Q4_0 (as llama-quantize --pure)"},
    {"q4_k", MR_TYPE_Q4_K, 14, MR_MIX_PURE, "matrices Q4_K (as llama-quantize --pure)"},
    {"q5_k", MR_TYPE_Q5_K, 16, MR_MIX_PURE, "matrices Q5_K (as llama-quantize --pure)"},
    {"q3_k", MR_TYPE_Q3_K, 11, MR_MIX_PURE, "matrices Q3_K (as llama-quantize --pure)"},
    /* llama-quantize's mixes, tensor for tensor (src/quant_mix.c) */
    {"q2_k", MR_TYPE_Q2_K, 10, MR_MIX_Q2_K,
     "as llama.cpp's Q2_K: Q2_K; ffn_down Q3_K,\n"
     "attn_v Q3_K (Q4_K with 4+ heads per KV head),\n"
     "attn_output Q3_K, output Q6_K; 8 experts:\n"
     "attn_v, attn_k Q8_0, attn_output Q5_K"},
    {"q3_k_s", MR_TYPE_Q3_K, 11, MR_MIX_Q3_K_S, "as llama.cpp's Q3_K_S: Q3_K, output Q6_K"},
    {"q3_k_m", MR_TYPE_Q3_K, 12, MR_MIX_Q3_K_M,
     "as llama.cpp's Q3_K_M: Q3_K; attn_v Q5_K in\n"
     "layers 0-1, else Q4_K; ffn_down Q5_K in the\n"
     "first 16th of the layers, else Q4_K;\n"
     "attn_output Q4_K; output Q6_K"},
    {"q3_k_l", MR_TYPE_Q3_K, 13, MR_MIX_Q3_K_L,
     "as llama.cpp's Q3_K_L: Q3_K; attn_v, ffn_down,\n"
     "attn_output Q5_K; output Q6_K"},
    {"q4_k_s", MR_TYPE_Q4_K, 14, MR_MIX_Q4_K_S,
     "as llama.cpp's Q4_K_S: Q4_K; attn_v Q5_K in\n"
     "layers 0-3, ffn_down Q5_K in the first eighth"},
    {"q4_k_m", MR_TYPE_Q4_K, 15, MR_MIX_Q4_K_M,
     "as llama.cpp's Q4_K_M: Q4_K; output Q6_K;\n"
     "attn_v, ffn_down Q6_K in the first and last\n"
     "eighth of the layers and every third between"},
    {"q5_k_s", MR_TYPE_Q5_K, 16, MR_MIX_Q5_K_S, "as llama.cpp's Q5_K_S: Q5_K, output Q6_K"},
    {"q5_k_m", MR_TYPE_Q5_K, 17, MR_MIX_Q5_K_M,
     "as llama.cpp's Q5_K_M: Q5_K; output Q6_K;\n"
     "attn_v, ffn_down Q6_K as in q4_k_m"},
    {"q6_k", MR_TYPE_Q6_K, 18, MR_MIX_Q6_K, "as llama.cpp's Q6_K: matrices Q6_K"},
    /* (all mixes with 8 experts: attn_v, attn_k Q8_0; attn_output Q5_K in
     * q2_k, q3_k_s/m, q4_k_s/m) */
    /* the further formats, as llama-quantize --pure (general.file_type as llama.h) */
    {"q4_1", MR_TYPE_Q4_1, 3, MR_MIX_PURE, "matrices Q4_1 (as llama-quantize --pure)"},
    {"q5_0", MR_TYPE_Q5_0, 8, MR_MIX_PURE, "matrices Q5_0 (as llama-quantize --pure)"},
    {"q5_1", MR_TYPE_Q5_1, 9, MR_MIX_PURE, "matrices Q5_1 (as llama-quantize --pure)"},
    {"iq4_nl", MR_TYPE_IQ4_NL, 25, MR_MIX_PURE, "matrices IQ4_NL (as llama-quantize --pure)"},
    {"iq4_xs", MR_TYPE_IQ4_XS, 30, MR_MIX_PURE, "matrices IQ4_XS (as llama-quantize --pure)"},
};
#define N_OUT_TYPES (sizeof out_types / sizeof out_types[0])

const char *const mr_convert_type_names[] = {
    "f32", "f16", "bf16", "q8_0", "q4_0", "q4_k", "q5_k", "q3_k", "q2_k", "q3_k_s", "q3_k_m",
    "q3_k_l", "q4_k_s", "q4_k_m", "q5_k_s", "q5_k_m", "q6_k", "q4_1", "q5_0", "q5_1", "iq4_nl",
    "iq4_xs", NULL};

/* Description of an output type for --help (lines of at most 48
 * characters, separated by newlines), or NULL. */
const char *mr_convert_type_help(const char *name)
{
    for (size_t i = 0; i < N_OUT_TYPES; i++)
        if (!strcmp(name, out_types[i].name))
            return out_types[i].help;
    return NULL;
}

/* ---------------------------------------------------------------- config.json */

/* A non-negative integer member of obj into *out, bounded by max.  Absent:
 * MR_OK leaving *out unless required. */
mr_status mr_cfg_u32(const char *file, json_object *obj, const char *key, int required,
                     uint32_t max, uint32_t *out, mr_error *err)
{
    json_object *v;
    if (!json_object_object_get_ex(obj, key, &v) || json_object_get_type(v) == json_type_null) {
        if (required)
            return mr_fail(err, MR_EFORMAT, file, key, MR_NO_OFFSET, "missing");
        return MR_OK;
    }
    int64_t x = json_object_get_int64(v);
    if (json_object_get_type(v) != json_type_int || x < 0 || (uint64_t)x > max)
        return mr_fail(err, MR_EFORMAT, file, key, MR_NO_OFFSET,
                       "'%s' is not an integer from 0 to %u", json_object_get_string(v), max);
    *out = (uint32_t)x;
    return MR_OK;
}

/* A positive finite number member of obj into *out when present. */
mr_status mr_cfg_f32(const char *file, json_object *obj, const char *key, float *out,
                     mr_error *err)
{
    json_object *v;
    if (!json_object_object_get_ex(obj, key, &v) || json_object_get_type(v) == json_type_null)
        return MR_OK;
    double x = json_object_get_double(v);
    if ((json_object_get_type(v) != json_type_double && json_object_get_type(v) != json_type_int) ||
        !(x > 0) || !isfinite((float)x))
        return mr_fail(err, MR_EFORMAT, file, key, MR_NO_OFFSET, "'%s' is not a positive number",
                       json_object_get_string(v));
    *out = (float)x;
    return MR_OK;
}

int mr_cfg_bool(json_object *obj, const char *key, int def)
{
    json_object *v;
    if (!json_object_object_get_ex(obj, key, &v) || json_object_get_type(v) == json_type_null)
        return def;
    return json_object_get_boolean(v);
}

mr_status mr_cfg_refuse_set(const char *file, json_object *obj, const char *key,
                            const char *what, mr_error *err)
{
    json_object *v;
    if (json_object_object_get_ex(obj, key, &v) && json_object_get_type(v) != json_type_null &&
        !(json_object_get_type(v) == json_type_boolean && !json_object_get_boolean(v)))
        return mr_fail(err, MR_EUNSUPPORTED, file, key, MR_NO_OFFSET, "%s is not supported", what);
    return MR_OK;
}

/* The families moerun converts, by config.json "architectures"[0]. */
static const mr_hf_family *const hf_families[] = {
    &mr_hf_mixtral, &mr_hf_mistral, &mr_hf_llama, &mr_hf_qwen3moe,
    &mr_hf_llama4, &mr_hf_llama4_text, &mr_hf_gptoss, &mr_hf_deepseek3, &mr_hf_deepseek2,
};
#define N_HF_FAMILIES (sizeof hf_families / sizeof hf_families[0])

/* The family named by config.json's "architectures"[0]. */
static mr_status cfg_arch(const char *file, json_object *root, mr_hf_config *hp, mr_error *err)
{
    json_object *a, *a0;
    if (!json_object_object_get_ex(root, "architectures", &a) ||
        json_object_get_type(a) != json_type_array || json_object_array_length(a) < 1 ||
        json_object_get_type(a0 = json_object_array_get_idx(a, 0)) != json_type_string)
        return mr_fail(err, MR_EFORMAT, file, "architectures", MR_NO_OFFSET,
                       "missing or not an array of names");
    char names[512];
    size_t k = 0;
    names[0] = 0;
    for (size_t i = 0; i < N_HF_FAMILIES; i++) {
        if (!strcmp(json_object_get_string(a0), hf_families[i]->hf_arch)) {
            hp->fam = hf_families[i];
            hp->arch_name = hf_families[i]->hf_arch;
            return MR_OK;
        }
        k += (size_t)snprintf(names + k, k < sizeof names ? sizeof names - k : 0, "%s%s",
                              i ? ", " : "", hf_families[i]->hf_arch);
    }
    return mr_fail(err, MR_EUNSUPPORTED, file, "architectures", MR_NO_OFFSET,
                   "'%.64s' is not supported (%s are)", json_object_get_string(a0), names);
}

/* Refuse configurations whose weights no family converter would translate. */
static mr_status cfg_refuse(const char *file, json_object *root, mr_error *err)
{
    json_object *v;
    if (json_object_object_get_ex(root, "hidden_act", &v) &&
        (json_object_get_type(v) != json_type_string || strcmp(json_object_get_string(v), "silu")))
        return mr_fail(err, MR_EUNSUPPORTED, file, "hidden_act", MR_NO_OFFSET,
                       "'%s' is not supported (silu is)", json_object_get_string(v));
    return MR_OK;
}

/* quantization_config: DeepSeek's block-scaled FP8 release format
 * (quant_method fp8, fmt e4m3, weight_block_size [b0, b1]), dequantized
 * while reading, and gpt-oss's MXFP4 experts (quant_method mxfp4), kept as
 * they are by its family (which checks them); other quantized checkpoints
 * are refused. */
static mr_status cfg_quantization(const char *file, json_object *root, mr_hf_config *hp,
                                  mr_error *err)
{
    json_object *q, *v, *b;
    if (!json_object_object_get_ex(root, "quantization_config", &q) ||
        json_object_get_type(q) == json_type_null)
        return MR_OK;
    if (json_object_get_type(q) == json_type_object &&
        json_object_object_get_ex(q, "quant_method", &v) &&
        !strcmp(json_object_get_string(v), "mxfp4") && hp->fam == &mr_hf_gptoss)
        return MR_OK;
    if (json_object_get_type(q) != json_type_object ||
        !json_object_object_get_ex(q, "quant_method", &v) ||
        strcmp(json_object_get_string(v), "fp8"))
        return mr_fail(err, MR_EUNSUPPORTED, file, "quantization_config", MR_NO_OFFSET,
                       "only block-scaled fp8 checkpoints are converted (quant_method '%s')",
                       json_object_object_get_ex(q, "quant_method", &v) ? json_object_get_string(v)
                                                                        : "");
    if (json_object_object_get_ex(q, "fmt", &v) && strcmp(json_object_get_string(v), "e4m3"))
        return mr_fail(err, MR_EUNSUPPORTED, file, "quantization_config.fmt", MR_NO_OFFSET,
                       "'%s' is not supported (e4m3 is)", json_object_get_string(v));
    if (!json_object_object_get_ex(q, "weight_block_size", &b) ||
        json_object_get_type(b) != json_type_array || json_object_array_length(b) != 2)
        return mr_fail(err, MR_EFORMAT, file, "quantization_config.weight_block_size",
                       MR_NO_OFFSET, "missing or not two integers");
    for (int i = 0; i < 2; i++) {
        json_object *e = json_object_array_get_idx(b, (size_t)i);
        int64_t x = json_object_get_int64(e);
        if (json_object_get_type(e) != json_type_int || x < 1 || x > 65536)
            return mr_fail(err, MR_EFORMAT, file, "quantization_config.weight_block_size",
                           MR_NO_OFFSET, "'%s' is not a block size", json_object_get_string(e));
        hp->fp8_block[i] = (uint32_t)x;
    }
    return MR_OK;
}

/* Parse and check dir/config.json into hp; the file joins the sources. */
static mr_status read_config(const char *dir, mr_plan *p, mr_error *err)
{
    mr_hf_config *hp = &p->hp;
    mr_status s;
    char *text = NULL, *path = mr_path_join(dir, "config.json");
    size_t len;
    json_object *root = NULL, *top = NULL, *v;
    p->config = NULL;
    if (!path)
        return mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory");
    if ((s = mr_read_small_file(path, MAX_CONFIG_BYTES, &text, &len, err)))
        goto done;
    if ((s = mr_plan_add_source(p, "config.json", text, len, err)))
        goto done;
    if (!(root = json_tokener_parse(text)) || json_object_get_type(root) != json_type_object) {
        s = mr_fail(err, MR_EFORMAT, path, NULL, MR_NO_OFFSET, "not a JSON object");
        goto done;
    }
    memset(hp, 0, sizeof *hp);
    /* multimodal checkpoints (Llama 4) keep the text model's keys in text_config */
    top = root;
    if (!json_object_object_get_ex(root, "hidden_size", NULL) &&
        json_object_object_get_ex(root, "text_config", &v) &&
        json_object_get_type(v) == json_type_object)
        root = v;
    hp->rope_theta = 10000.0f;
    hp->rms_eps = 1e-6f;
    hp->n_ctx = 2048;
    if ((s = cfg_arch(path, top, hp, err)) || (s = cfg_refuse(path, root, err)) ||
        (s = cfg_quantization(path, root, hp, err)) ||
        (s = mr_cfg_u32(path, root, "vocab_size", 1, MAX_DIM, &hp->n_vocab, err)) ||
        (s = mr_cfg_u32(path, root, "hidden_size", 1, MAX_DIM, &hp->n_embd, err)) ||
        (s = mr_cfg_u32(path, root, "num_hidden_layers", 1, MAX_LAYERS, &hp->n_layer, err)) ||
        (s = mr_cfg_u32(path, root, "num_attention_heads", 1, MAX_DIM, &hp->n_head, err)) ||
        (s = mr_cfg_u32(path, root, "intermediate_size", 1, MAX_DIM, &hp->n_ff, err)) ||
        (s = mr_cfg_u32(path, root, "max_position_embeddings", 0, UINT32_MAX, &hp->n_ctx, err)) ||
        (s = mr_cfg_f32(path, root, "rope_theta", &hp->rope_theta, err)) ||
        (s = mr_cfg_f32(path, root, "rms_norm_eps", &hp->rms_eps, err)))
        goto done;
    hp->n_head_kv = hp->n_head;
    if ((s = mr_cfg_u32(path, root, "num_key_value_heads", 0, MAX_DIM, &hp->n_head_kv, err)))
        goto done;
    hp->has_head_dim = json_object_object_get_ex(root, "head_dim", &v) &&
                       json_object_get_type(v) != json_type_null;
    if (hp->has_head_dim) {
        if ((s = mr_cfg_u32(path, root, "head_dim", 1, MAX_DIM, &hp->head_dim, err)))
            goto done;
    } else if (hp->n_head && hp->n_embd % hp->n_head == 0) {
        hp->head_dim = hp->n_embd / hp->n_head;
    }
    hp->tied = mr_cfg_bool(root, "tie_word_embeddings", mr_cfg_bool(top, "tie_word_embeddings", 0));
    hp->n_ff_exp = hp->n_ff;
    if ((s = hp->fam->config(path, root, hp, err)))
        goto done;
    const char *bad = !hp->n_vocab || !hp->n_embd || !hp->n_layer || !hp->n_head || !hp->n_ff
                    ? "a size is zero"
                    : !hp->n_head_kv || hp->n_head % hp->n_head_kv
                    ? "num_attention_heads is not a multiple of num_key_value_heads"
                    : !hp->head_dim || hp->head_dim % 2
                    ? "the head size is not a positive even number (hidden_size / heads or head_dim)"
                    : hp->n_expert > MAX_EXPERTS
                    ? "more experts than moerun handles (512)"
                    : hp->n_expert && (!hp->n_expert_used || hp->n_expert_used > hp->n_expert)
                    ? "experts per token is zero or more than the experts" : NULL;
    if (bad)
        s = mr_fail(err, MR_EFORMAT, path, NULL, MR_NO_OFFSET, "%s", bad);
done:
    if (s)
        json_object_put(top ? top : root);
    else
        p->config = top;
    free(text);
    free(path);
    return s;
}

/* ---------------------------------------------------------------- tensor plan */

struct mr_planner {
    mr_plan *p;
    uint8_t *used; /* per checkpoint tensor */
    const out_type *ot;
};
typedef struct mr_planner planner;

mr_plan *mr_planner_plan(mr_planner *pl)
{
    return pl->p;
}

int mr_plan_has(const mr_planner *pl, const char *hf_name)
{
    return mr_st_checkpoint_find(pl->p->ckpt, hf_name, NULL) != NULL;
}

/* Position of a tensor in the checkpoint's sorted list, or -1. */
static int64_t ckpt_index(const mr_st_checkpoint *c, const char *name)
{
    for (uint32_t lo = 0, hi = c->n_tensors; lo < hi;) {
        uint32_t mid = lo + (hi - lo) / 2;
        int k = strcmp(name, c->tensors[mid]->name);
        if (!k)
            return mid;
        if (k < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return -1;
}

/* "[a, b]" of a shape into buf. */
static const char *shape_str(char *buf, size_t n, const uint64_t *shape, uint32_t nd)
{
    size_t k = (size_t)snprintf(buf, n, "[");
    for (uint32_t i = 0; i < nd && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%llu", i ? ", " : "", (unsigned long long)shape[i]);
    if (k < n)
        snprintf(buf + k, n - k, "]");
    return buf;
}

/* Find HF tensor name, check its dtype and its shape against the config's
 * (n_dims, shape), and mark it used.  An F8_E4M3 tensor also brings its
 * block scales <name>_scale_inv (*scale; NULL for other dtypes). */
static mr_status take_source_as(planner *pl, const char *name, uint32_t nd,
                                const uint64_t *shape, int u8, const mr_st_tensor **out,
                                uint32_t *shard, const mr_st_tensor **scale,
                                uint32_t *scale_shard, mr_error *err);

static mr_status take_source(planner *pl, const char *name, uint32_t nd, const uint64_t *shape,
                             const mr_st_tensor **out, uint32_t *shard, const mr_st_tensor **scale,
                             uint32_t *scale_shard, mr_error *err)
{
    return take_source_as(pl, name, nd, shape, 0, out, shard, scale, scale_shard, err);
}

/* take_source, of dtype U8 (u8 = 1: packed MXFP4 bytes) or a float dtype. */
static mr_status take_source_as(planner *pl, const char *name, uint32_t nd,
                                const uint64_t *shape, int u8, const mr_st_tensor **out,
                                uint32_t *shard, const mr_st_tensor **scale,
                                uint32_t *scale_shard, mr_error *err)
{
    mr_st_checkpoint *c = pl->p->ckpt;
    const uint32_t *blk = pl->p->hp.fp8_block;
    int64_t idx = ckpt_index(c, name);
    char want[96], got[96];
    if (scale)
        *scale = NULL;
    if (idx < 0)
        return mr_fail(err, MR_EFORMAT, c->index_path ? c->index_path : c->dir, name,
                       MR_NO_OFFSET, "tensor is missing from the checkpoint (%s needs it)",
                       pl->p->hp.arch_name);
    const mr_st_tensor *t = c->tensors[idx];
    *shard = c->tensor_shard[idx];
    const char *file = c->shards[*shard]->path;
    const int fp8 = !u8 && scale && t->dtype == MR_ST_F8_E4M3 && blk[0] && nd == 2;
    if (u8 && t->dtype != MR_ST_U8)
        return mr_fail(err, MR_EUNSUPPORTED, file, name, t->offset,
                       "dtype %s is not the U8 of packed MXFP4", mr_st_dtype_name(t->dtype));
    if (!u8 && t->dtype != MR_ST_F32 && t->dtype != MR_ST_F16 && t->dtype != MR_ST_BF16 && !fp8)
        return mr_fail(err, MR_EUNSUPPORTED, file, name, t->offset,
                       "dtype %s is not supported (BF16, F16, F32 are, and F8_E4M3 matrices with "
                       "quantization_config fp8)",
                       mr_st_dtype_name(t->dtype));
    int ok = t->n_dims == nd;
    for (uint32_t i = 0; ok && i < nd; i++)
        ok = t->shape[i] == shape[i];
    if (!ok)
        return mr_fail(err, MR_EFORMAT, file, name, t->offset,
                       "shape %s contradicts config.json, which implies %s",
                       shape_str(got, sizeof got, t->shape, t->n_dims),
                       shape_str(want, sizeof want, shape, nd));
    if (fp8) {
        char sn[160];
        const uint64_t sshape[2] = {(shape[0] + blk[0] - 1) / blk[0],
                                    (shape[1] + blk[1] - 1) / blk[1]};
        snprintf(sn, sizeof sn, "%s_scale_inv", name);
        int64_t si = ckpt_index(c, sn);
        if (si < 0)
            return mr_fail(err, MR_EFORMAT, file, name, t->offset,
                           "an F8_E4M3 weight without its %s", sn);
        const mr_st_tensor *st = c->tensors[si];
        if (st->n_dims != 2 || st->shape[0] != sshape[0] || st->shape[1] != sshape[1] ||
            (st->dtype != MR_ST_F32 && st->dtype != MR_ST_BF16 && st->dtype != MR_ST_F16))
            return mr_fail(err, MR_EFORMAT, c->shards[c->tensor_shard[si]]->path, sn, st->offset,
                           "block scales must be a float %s (blocks of %ux%u), not %s %s",
                           shape_str(want, sizeof want, sshape, 2), blk[0], blk[1],
                           mr_st_dtype_name(st->dtype),
                           shape_str(got, sizeof got, st->shape, st->n_dims));
        pl->used[si] = 1;
        *scale = st;
        *scale_shard = c->tensor_shard[si];
    }
    pl->used[idx] = 1;
    *out = t;
    return MR_OK;
}

/* Add output tensor gguf made of n_src HF tensors (names hf[i]) of shape
 * (rows, cols) each, or a vector of cols when rows == 0. */
mr_status mr_plan_add(mr_planner *pl, const char *gguf, char hf[][128], uint32_t n_src,
                      uint64_t rows, uint64_t cols, uint32_t perm_heads, int layer, int part,
                      mr_error *err)
{
    mr_plan *p = pl->p;
    if (p->n_tensors >= p->cap_tensors)
        return mr_fail(err, MR_EUNSUPPORTED, NULL, gguf, MR_NO_OFFSET,
                       "more than %u output tensors", p->cap_tensors);
    mr_plan_tensor *t = &p->t[p->n_tensors];
    uint64_t shape[2] = {rows ? rows : cols, cols};
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", gguf);
    t->src = calloc(n_src, sizeof *t->src);
    t->src_shard = calloc(n_src, sizeof *t->src_shard);
    t->scale = calloc(n_src, sizeof *t->scale);
    t->scale_shard = calloc(n_src, sizeof *t->scale_shard);
    if (!t->src || !t->src_shard || !t->scale || !t->scale_shard) {
        free(t->src);
        free(t->src_shard);
        free(t->scale);
        free(t->scale_shard);
        return mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory");
    }
    p->n_tensors++;
    t->n_src = n_src;
    for (uint32_t i = 0; i < n_src; i++) {
        mr_status s = take_source(pl, hf[i], rows ? 2 : 1, shape, &t->src[i], &t->src_shard[i],
                                  &t->scale[i], &t->scale_shard[i], err);
        if (s)
            return s;
    }
    t->n_dims = !rows ? 1 : part != MR_PART_NONE && p->hp.n_expert ? 3 : 2;
    t->ne[0] = cols;
    t->ne[1] = rows ? rows : 1;
    t->ne[2] = n_src;
    t->perm_heads = perm_heads;
    t->layer = layer;
    t->part = part;
    return MR_OK;
}

mr_status mr_plan_add_head_split(mr_planner *pl, const char *gguf, const char *hf, uint32_t heads,
                                 uint32_t head_rows, uint32_t head_off, uint32_t n, uint64_t cols,
                                 int transpose, int layer, mr_error *err)
{
    char name[1][128];
    snprintf(name[0], sizeof name[0], "%s", hf);
    if (!heads || !n || head_off + n > head_rows)
        return mr_fail(err, MR_EINVAL, NULL, gguf, MR_NO_OFFSET, "bad head split");
    mr_status s = mr_plan_add(pl, gguf, name, 1, (uint64_t)heads * head_rows, cols, 0, layer,
                              MR_PART_NONE, err);
    if (s)
        return s;
    mr_plan_tensor *t = &pl->p->t[pl->p->n_tensors - 1];
    t->n_dims = 3;
    t->ne[0] = transpose ? n : cols;
    t->ne[1] = transpose ? cols : n;
    t->ne[2] = heads;
    t->split_heads = heads;
    t->head_rows = head_rows;
    t->head_off = head_off;
    t->transpose = transpose;
    return MR_OK;
}

/* The next free plan tensor, zeroed, with room for n_src sources. */
static mr_status plan_next(mr_plan *p, const char *gguf, uint32_t n_src, mr_plan_tensor **out,
                           mr_error *err)
{
    if (p->n_tensors >= p->cap_tensors)
        return mr_fail(err, MR_EUNSUPPORTED, NULL, gguf, MR_NO_OFFSET,
                       "more than %u output tensors", p->cap_tensors);
    mr_plan_tensor *t = &p->t[p->n_tensors];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", gguf);
    t->src = calloc(n_src ? n_src : 1, sizeof *t->src);
    t->src_shard = calloc(n_src ? n_src : 1, sizeof *t->src_shard);
    t->scale = calloc(n_src ? n_src : 1, sizeof *t->scale);
    t->scale_shard = calloc(n_src ? n_src : 1, sizeof *t->scale_shard);
    if (!t->src || !t->src_shard || !t->scale || !t->scale_shard) {
        free(t->src);
        free(t->src_shard);
        free(t->scale);
        free(t->scale_shard);
        return mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory");
    }
    p->n_tensors++;
    *out = t;
    return MR_OK;
}

mr_status mr_plan_add_transposed(mr_planner *pl, const char *gguf, const char *hf,
                                 uint32_t n_expert, uint64_t rows, uint64_t cols,
                                 uint64_t src_cols, uint64_t col0, int layer, int part,
                                 mr_error *err)
{
    mr_plan *p = pl->p;
    mr_plan_tensor *t;
    const mr_st_tensor *src, *scale;
    uint32_t shard, scale_shard;
    const uint64_t shape[3] = {n_expert, cols, src_cols};
    mr_status s;
    if (col0 + rows > src_cols)
        return mr_fail(err, MR_EINVAL, NULL, gguf, MR_NO_OFFSET,
                       "columns %llu..%llu of a %llu-column source",
                       (unsigned long long)col0, (unsigned long long)(col0 + rows),
                       (unsigned long long)src_cols);
    if ((s = plan_next(p, gguf, n_expert, &t, err)) ||
        (s = take_source(pl, hf, 3, shape, &src, &shard, &scale, &scale_shard, err)))
        return s;
    t->n_src = n_expert;
    for (uint32_t e = 0; e < n_expert; e++) {
        t->src[e] = src;
        t->src_shard[e] = shard;
    }
    t->n_dims = 3;
    t->ne[0] = cols;
    t->ne[1] = rows;
    t->ne[2] = n_expert;
    t->src_cols = src_cols;
    t->src_col0 = col0;
    t->layer = layer;
    t->part = part;
    return MR_OK;
}

mr_status mr_plan_add_strided(mr_planner *pl, const char *gguf, const char *hf,
                              uint32_t n_slices, uint64_t rows, uint64_t cols, uint32_t row_step,
                              uint32_t row_first, uint32_t col_step, uint32_t col_first,
                              int layer, int part, mr_error *err)
{
    mr_plan_tensor *t;
    const uint32_t n = n_slices ? n_slices : 1;
    const uint64_t shape3[3] = {n_slices, rows * row_step, cols * col_step};
    const int nd = n_slices > 1 ? 3 : 2;
    const mr_st_tensor *src;
    uint32_t shard;
    mr_status s;
    if ((s = plan_next(pl->p, gguf, n, &t, err)) ||
        (s = take_source_as(pl, hf, (uint32_t)nd, nd == 3 ? shape3 : shape3 + 1, 0, &src, &shard,
                               NULL, NULL, err)))
        return s;
    t->n_src = n;
    for (uint32_t e = 0; e < n; e++) {
        t->src[e] = src;
        t->src_shard[e] = shard;
    }
    t->n_dims = (uint32_t)nd;
    t->ne[0] = cols;
    t->ne[1] = rows;
    t->ne[2] = n;
    t->row_step = row_step, t->row_first = row_first;
    t->col_step = col_step, t->col_first = col_first;
    t->src_slice_off = rows * row_step * cols * col_step * mr_st_dtype_size(src->dtype);
    t->layer = layer;
    t->part = part;
    return MR_OK;
}

mr_status mr_plan_add_mxfp4(mr_planner *pl, const char *gguf, const char *blocks,
                            const char *scales, uint32_t n_slices, uint64_t rows, uint64_t cols,
                            uint32_t row_step, uint32_t row_first, int layer, int part,
                            mr_error *err)
{
    if (cols % 32)
        return mr_fail(err, MR_EFORMAT, NULL, blocks, MR_NO_OFFSET,
                       "rows of %llu elements are not whole MXFP4 blocks of 32",
                       (unsigned long long)cols);
    mr_plan_tensor *t;
    const uint64_t bs[4] = {n_slices, rows * row_step, cols / 32, 16};
    const mr_st_tensor *src, *sc;
    uint32_t shard, sc_shard;
    mr_status s;
    if ((s = plan_next(pl->p, gguf, n_slices, &t, err)) ||
        (s = take_source_as(pl, blocks, 4, bs, 1, &src, &shard, NULL, NULL, err)) ||
        (s = take_source_as(pl, scales, 3, bs, 1, &sc, &sc_shard, NULL, NULL, err)))
        return s;
    t->n_src = n_slices;
    for (uint32_t e = 0; e < n_slices; e++) {
        t->src[e] = src;
        t->src_shard[e] = shard;
    }
    t->n_dims = 3;
    t->ne[0] = cols;
    t->ne[1] = rows;
    t->ne[2] = n_slices;
    t->row_step = row_step, t->row_first = row_first;
    t->src_slice_off = rows * row_step * (cols / 32) * 16;
    t->scales = sc;
    t->scales_shard = sc_shard;
    t->scales_slice_off = rows * row_step * (cols / 32);
    t->type = MR_TYPE_MXFP4;
    t->layer = layer;
    t->part = part;
    return MR_OK;
}

mr_status mr_plan_add_generated(mr_planner *pl, const char *gguf, const float *v, uint64_t n,
                                mr_error *err)
{
    mr_plan_tensor *t;
    mr_status s = plan_next(pl->p, gguf, 0, &t, err);
    if (s)
        return s;
    if (!(t->gen = malloc(sizeof(float) * (n ? n : 1))))
        return mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory");
    memcpy(t->gen, v, sizeof(float) * n);
    t->n_dims = 1;
    t->ne[0] = n;
    t->ne[1] = t->ne[2] = 1;
    t->layer = -1;
    t->part = MR_PART_NONE;
    return MR_OK;
}

void mr_plan_drop_prefix(mr_planner *pl, const char *prefix)
{
    const mr_st_checkpoint *c = pl->p->ckpt;
    const size_t n = strlen(prefix);
    for (uint32_t i = 0; i < c->n_tensors; i++)
        if (!strncmp(c->tensors[i]->name, prefix, n))
            pl->used[i] = 1;
}

/* The tensor type of t for the output type ot: tensors llama.cpp never
 * quantizes stay F32, the released MXFP4 stays as it is, and the rest
 * follow the mix (src/quant_mix.c), with llama.cpp's fallback for rows
 * the blocks do not divide. */
static uint32_t choose_type(const mr_plan *p, const out_type *ot, const mr_mix_model *mm,
                            const mr_plan_tensor *t, mr_mix_counts *mc)
{
    (void)p;
    if (t->scales) /* released MXFP4 stays as it is */
        return MR_TYPE_MXFP4;
    if (!mr_mix_quantizable(t->name, (int)t->n_dims) || strstr(t->name, ".bias"))
        return MR_TYPE_F32;
    if (ot->type == MR_TYPE_F32 || ot->type == MR_TYPE_F16 || ot->type == MR_TYPE_BF16)
        return ot->type;
    const mr_mix_tensor mt = mr_mix_next(mc, t->name, t->ne[0]);
    return mr_mix_tensor_type(ot->mix, ot->type, mm, &mt);
}

/* Refuse checkpoint tensors no output tensor uses (biases, unknown
 * layers), except RoPE tables that llama.cpp also drops. */
static mr_status check_unused(planner *pl, mr_error *err)
{
    const mr_st_checkpoint *c = pl->p->ckpt;
    for (uint32_t i = 0; i < c->n_tensors; i++) {
        const char *n = c->tensors[i]->name;
        size_t len = strlen(n);
        if (pl->used[i] || (len >= 20 && !strcmp(n + len - 20, ".rotary_emb.inv_freq")))
            continue;
        return mr_fail(err, MR_EUNSUPPORTED, c->shards[c->tensor_shard[i]]->path, n,
                       c->tensors[i]->offset, "tensor is not part of %s as moerun converts it",
                       pl->p->hp.arch_name);
    }
    return MR_OK;
}

/* Choose every tensor's type and size; refuse types without a quantizer. */
static mr_status plan_types(planner *pl, mr_error *err)
{
    mr_plan *p = pl->p;
    mr_mix_model mm = {.n_layer = p->hp.n_layer, .n_expert = p->hp.n_expert,
                       .n_head = p->hp.n_head, .n_head_kv = p->hp.n_head_kv, .tied = 1};
    for (uint32_t i = 0; i < p->n_tensors; i++) {
        mm.n_attn_v += (uint32_t)mr_mix_counts_as_attn_v(p->t[i].name);
        mm.tied &= strcmp(p->t[i].name, "output.weight") != 0;
    }
    mr_mix_counts mc = {0, 0};
    for (uint32_t i = 0; i < p->n_tensors; i++) {
        mr_plan_tensor *t = &p->t[i];
        t->type = choose_type(p, pl->ot, &mm, t, &mc);
        if (!mr_type_get(t->type)->from_f32)
            return mr_fail(err, MR_EUNSUPPORTED, NULL, t->name, MR_NO_OFFSET,
                           "output type %s is not supported yet (no %s quantizer in quant/)",
                           pl->ot->name, mr_type_get(t->type)->name);
        t->row_bytes = mr_type_row_bytes(t->type, t->ne[0]);
        t->slice_bytes = t->row_bytes * t->ne[1];
        t->nbytes = t->slice_bytes * (t->split_heads ? t->split_heads
                                      : t->n_src ? t->n_src : 1); /* generated: one */
    }
    return MR_OK;
}

/* ---------------------------------------------------------------- metadata */

/* Title-case one lowercase word as Python's str.title() does (a letter
 * after a non-letter is upper-cased), unless it starts with a digit or is a
 * version "v1.2"; gguf-py's id_to_title keeps other words as they are. */
static void title_word(char *w, size_t n)
{
    int lower = 0, version = n > 1 && w[0] == 'v' && w[1] >= '0' && w[1] <= '9';
    for (size_t i = 0; i < n; i++) {
        if (w[i] >= 'A' && w[i] <= 'Z')
            return;
        lower |= w[i] >= 'a' && w[i] <= 'z';
    }
    if (!lower || version || (w[0] >= '0' && w[0] <= '9'))
        return;
    for (size_t i = 0; i < n; i++) {
        int letter = w[i] >= 'a' && w[i] <= 'z';
        int prev = i > 0 && ((w[i - 1] >= 'a' && w[i - 1] <= 'z') || (w[i - 1] >= 'A' && w[i - 1] <= 'Z'));
        if (letter && !prev)
            w[i] = (char)(w[i] - 'a' + 'A');
    }
}

/* general.name as gguf-py derives it from the directory's name: dashes
 * become spaces and lowercase words are title-cased ("tinymix" ->
 * "Tinymix"). */
static void model_name(const char *dir, char *out, size_t n)
{
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/')
        len--;
    size_t b = len;
    while (b > 0 && dir[b - 1] != '/')
        b--;
    size_t k = 0, ws = 0;
    for (size_t i = b; i <= len && k + 1 < n; i++) {
        char c = i < len ? dir[i] : ' ';
        if (c == '-' || c == ' ') {
            if (k > ws) {
                title_word(out + ws, k - ws);
                out[k++] = ' ';
            }
            ws = k;
            continue;
        }
        out[k++] = c;
    }
    while (k > 0 && out[k - 1] == ' ')
        k--;
    out[k] = '\0';
}

/* gguf-py's size label: experts x (shared + one expert's) parameters, or
 * the total, rounded like model_weight_count_rounded_notation ("8x19M"). */
static void size_label(const mr_plan *p, char *out, size_t n)
{
    uint64_t shared = 0, expert = 0;
    for (uint32_t i = 0; i < p->n_tensors; i++) {
        const mr_plan_tensor *t = &p->t[i];
        uint64_t per = t->ne[0] * t->ne[1] * (t->split_heads ? t->ne[2] : 1);
        if (t->n_src > 1)
            expert += per;
        else
            shared += per;
    }
    double v = (double)(shared + expert);
    const char *suf = "K";
    if (v > 1e12) v *= 1e-12, suf = "T";
    else if (v > 1e9) v *= 1e-9, suf = "B";
    else if (v > 1e6) v *= 1e-6, suf = "M";
    else v *= 1e-3;
    char r[32];
    snprintf(r, sizeof r, "%.0f", v);
    const char *digits = r;
    while (*digits == '0')
        digits++;
    int fix = 2 - (int)strlen(digits);
    if (fix < 0)
        fix = 0;
    if (p->hp.n_expert)
        snprintf(out, n, "%ux%.*f%s", p->hp.n_expert, fix, v, suf);
    else
        snprintf(out, n, "%.*f%s", fix, v, suf);
}

/* general.sampling.* from generation_config.json, as gguf-py's metadata
 * does (top_k, top_p, min_p, temperature; absent file or members: none).
 * The file joins the sources when it gives a key. */
static mr_status write_sampling(mr_plan *p, const char *dir, mr_gguf_writer *w, mr_error *err)
{
    char *text = NULL, *path = mr_path_join(dir, "generation_config.json");
    size_t len;
    mr_status s = MR_OK;
    json_object *root = NULL, *v;
    int added = 0;
    if (!path)
        return mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory");
    if (access(path, F_OK) != 0)
        goto done;
    if ((s = mr_read_small_file(path, MAX_CONFIG_BYTES, &text, &len, err)))
        goto done;
    if (!(root = json_tokener_parse(text)) || json_object_get_type(root) != json_type_object) {
        s = mr_fail(err, MR_EFORMAT, path, NULL, MR_NO_OFFSET, "not a JSON object");
        goto done;
    }
    static const char *const keys[4][2] = {{"top_k", "general.sampling.top_k"},
                                           {"top_p", "general.sampling.top_p"},
                                           {"min_p", "general.sampling.min_p"},
                                           {"temperature", "general.sampling.temp"}};
    for (int i = 0; i < 4; i++) {
        if (!json_object_object_get_ex(root, keys[i][0], &v) ||
            json_object_get_type(v) == json_type_null)
            continue;
        const json_type t = json_object_get_type(v);
        if (!added++ && (s = mr_plan_add_source(p, "generation_config.json", text, len, err)))
            goto done;
        if (i == 0 && t == json_type_int)
            mr_gguf_kv_i32(w, keys[i][1], (int32_t)json_object_get_int(v));
        else if (i > 0 && (t == json_type_double || t == json_type_int))
            mr_gguf_kv_f32(w, keys[i][1], (float)json_object_get_double(v));
        else {
            s = mr_fail(err, MR_EFORMAT, path, keys[i][0], MR_NO_OFFSET, "'%s' is not a number",
                        json_object_get_string(v));
            goto done;
        }
    }
done:
    json_object_put(root);
    free(text);
    free(path);
    return s;
}

/* The general.* keys, then the family's, in convert_hf_to_gguf.py's order. */
static mr_status write_hparams(mr_plan *p, const char *dir, mr_gguf_writer *w, mr_error *err)
{
    char name[256], label[32];
    mr_status s;
    model_name(dir, name, sizeof name);
    size_label(p, label, sizeof label);
    mr_gguf_kv_str(w, "general.architecture", p->hp.fam->gguf_arch);
    mr_gguf_kv_str(w, "general.type", "model");
    if ((s = write_sampling(p, dir, w, err)))
        return s;
    mr_gguf_kv_str(w, "general.name", name);
    mr_gguf_kv_str(w, "general.size_label", label);
    p->hp.fam->hparams(p, w);
    return MR_OK;
}

/* moerun's keys: version, checksum arrays to patch, source files. */
static void write_moerun_keys(const mr_plan *p, mr_gguf_writer *w)
{
    const char *names[p->n_sources ? p->n_sources : 1];
    for (uint32_t i = 0; i < p->n_sources; i++)
        names[i] = p->sources[i].name;
    mr_gguf_kv_str(w, MR_KEY_QUANTIZER_VERSION, PACKAGE_VERSION);
    mr_gguf_kv_str(w, MR_KEY_CHECKSUM_ALGORITHM, "xxh3-64");
    mr_gguf_kv_arr_u64(w, MR_KEY_CHECKSUM_EXPERTS, NULL, p->expert_hash_count);
    mr_gguf_kv_arr_u64(w, MR_KEY_CHECKSUM_TENSORS, NULL, p->n_tensors);
    mr_gguf_kv_arr_str(w, MR_KEY_SOURCE_FILES, names, NULL, p->n_sources);
    mr_gguf_kv_arr_u64(w, MR_KEY_SOURCE_XXH3, NULL, p->n_sources);
}

/* Append a source file; see convert_internal.h. */
mr_status mr_plan_add_source(mr_plan *p, const char *name, const void *data, size_t len,
                             mr_error *err)
{
    mr_plan_source *ns = realloc(p->sources, sizeof *ns * (p->n_sources + 1));
    if (!ns)
        return mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory");
    p->sources = ns;
    mr_plan_source *s = &ns[p->n_sources++];
    snprintf(s->name, sizeof s->name, "%s", name);
    s->shard = -1;
    s->xxh3 = data ? XXH3_64bits(data, len) : 0;
    return MR_OK;
}

/* Order of sources by name. */
static int cmp_source(const void *a, const void *b)
{
    return strcmp(((const mr_plan_source *)a)->name, ((const mr_plan_source *)b)->name);
}

/* Free a plan and its checkpoint. */
static void plan_free(mr_plan *p)
{
    for (uint32_t i = 0; i < p->n_tensors; i++) {
        free(p->t[i].src);
        free(p->t[i].src_shard);
        free(p->t[i].scale);
        free(p->t[i].scale_shard);
        free(p->t[i].gen);
    }
    free(p->t);
    free(p->sources);
    json_object_put(p->config);
    mr_st_checkpoint_close(p->ckpt);
}

/* Read config and checkpoint, map and check every tensor, choose types. */
static mr_status make_plan(const mr_convert_opts *o, const out_type *ot, mr_plan *p,
                           mr_error *err)
{
    mr_status s;
    planner pl = {p, NULL, ot};
    if ((s = read_config(o->input_dir, p, err)) ||
        (s = mr_st_checkpoint_open(o->input_dir, &p->ckpt, err)))
        return s;
    const mr_st_checkpoint *c = p->ckpt;
    if (c->index_path) {
        char *text;
        size_t len;
        if ((s = mr_read_small_file(c->index_path, 64u << 20, &text, &len, err)))
            return s;
        s = mr_plan_add_source(p, "model.safetensors.index.json", text, len, err);
        free(text);
        if (s)
            return s;
    }
    for (uint32_t i = 0; i < c->n_shards; i++) {
        if ((s = mr_plan_add_source(p, c->shard_names[i], NULL, 0, err)))
            return s;
        p->sources[p->n_sources - 1].shard = (int)i;
    }
    uint64_t max_t = 8 + 40ull * p->hp.n_layer;
    p->t = calloc(max_t, sizeof *p->t);
    p->cap_tensors = (uint32_t)max_t;
    pl.used = calloc(c->n_tensors ? c->n_tensors : 1, 1);
    if (!p->t || !pl.used) {
        free(pl.used);
        return mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory");
    }
    if (!(s = p->hp.fam->tensors(&pl, err)) && !(s = check_unused(&pl, err)))
        s = plan_types(&pl, err);
    free(pl.used);
    p->file_type = ot->file_type;
    p->expert_hash_count = 3ull * p->hp.n_layer * (p->hp.n_expert ? p->hp.n_expert : 1);
    return s;
}

/* Jobs in flight for a number of threads; see convert.h. */
unsigned mr_convert_window(unsigned threads)
{
    unsigned w = 2 * threads + 2;
    return w > 24 ? 24 : w;
}

/* Convert; see convert.h. */
mr_status mr_convert(const mr_convert_opts *o, mr_convert_progress *final, mr_error *err)
{
    mr_status s;
    mr_plan p;
    mr_gguf_writer *w = NULL;
    mr_outfile out = {.fd = -1};
    mr_convert_progress prog;
    const out_type *ot = NULL;
    memset(&p, 0, sizeof p);
    memset(&prog, 0, sizeof prog);
    for (size_t i = 0; i < N_OUT_TYPES; i++)
        if (o->type && !strcmp(o->type, out_types[i].name))
            ot = &out_types[i];
    if (!ot)
        return mr_fail(err, MR_EINVAL, NULL, "--type", MR_NO_OFFSET,
                       "'%s' is not an output type (f32 f16 bf16 q8_0 q4_0 q4_k q6_k q4_k_m "
                       "q4_1 q5_0 q5_1 iq4_nl iq4_xs q2_k q3_k)",
                       o->type ? o->type : "");
    if ((s = make_plan(o, ot, &p, err)) || (s = mr_gguf_writer_new(o->alignment ? o->alignment : 4096, &w, err)))
        goto done;
    if ((s = write_hparams(&p, o->input_dir, w, err)) ||
        (s = mr_convert_vocab(o->input_dir, &p, w, err)))
        goto done;
    qsort(p.sources, p.n_sources, sizeof *p.sources, cmp_source);
    write_moerun_keys(&p, w);
    for (uint32_t i = 0; i < p.n_tensors; i++)
        mr_gguf_add_tensor(w, p.t[i].name, p.t[i].type, p.t[i].n_dims, p.t[i].ne, &p.t[i].windex);
    if ((s = mr_outfile_open(o->output_path, o->force, o->no_tmpfile, o->on_temp, o->user, &out,
                             err)) ||
        (s = mr_gguf_writer_begin(w, out.fd, o->output_path, err)) ||
        (s = mr_quantize_run(&p, w, out.fd, o->output_path, o, &prog, err)) ||
        (s = mr_gguf_writer_finish(w, err)) || (s = mr_outfile_commit(&out, err)))
        goto done;
done:
    mr_outfile_abort(&out);
    mr_gguf_writer_free(w);
    plan_free(&p);
    if (final)
        *final = prog;
    return s;
}
