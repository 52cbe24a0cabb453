/* convert_vocab.c - the tokenizer.ggml.* keys of a converted model, as
 * llama.cpp's convert_hf_to_gguf.py writes them for a SentencePiece model
 * (_create_vocab_sentencepiece + gguf-py's SpecialVocab):
 *   - every piece of tokenizer.model with its score and type (unknown,
 *     control, unused, byte, else normal); ids up to config.json's
 *     vocab_size that the model lacks are "[PAD<id>]", score -10000, unused;
 *   - added_tokens.json entries: user-defined, score -1000;
 *   - tokenizer_config.json "added_tokens_decoder": control when "special"
 *     (or when the text looks special, e.g. "<|...|>"), else user-defined
 *     with U+2581 turned into spaces; score -1000;
 *   - bos/eos/unk/pad ids: the ids of tokenizer_config.json's *_token texts,
 *     else config.json's *_token_id;
 *   - add_bos_token / add_eos_token from tokenizer_config.json (defaults
 *     true / false), add_sep_token false.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "convert_internal.h"
#include "convert_vocab_bpe.h"
#include "fileio.h"
#include "spm_model.h"

#define MAX_TOKENIZER_BYTES (64u << 20)
#define MAX_JSON_BYTES (64u << 20)

typedef struct {
    uint32_t n;
    char **tok;        /* owned copies */
    float *score;
    int32_t *type;
} vocab;

/* Free a vocabulary. */
static void vocab_free(vocab *v)
{
    for (uint32_t i = 0; v->tok && i < v->n; i++)
        free(v->tok[i]);
    free(v->tok);
    free(v->score);
    free(v->type);
}

/* Replace token id's text, score and type. */
static int vocab_set(vocab *v, uint32_t id, const char *text, size_t len, float score,
                     int32_t type)
{
    char *c = malloc(len + 1);
    if (!c)
        return -1;
    memcpy(c, text, len);
    c[len] = '\0';
    free(v->tok[id]);
    v->tok[id] = c;
    v->score[id] = score;
    v->type[id] = type;
    return 0;
}

/* Read dir/name as JSON if the file exists: *root NULL when absent.  The
 * file joins the plan's sources. */
static mr_status read_json_opt(const char *dir, const char *name, mr_plan *p, json_object **root,
                               mr_error *err)
{
    mr_status s;
    char *text = NULL, *path = mr_path_join(dir, name);
    size_t len;
    *root = NULL;
    if (!path)
        return mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory");
    if (access(path, F_OK) != 0) {
        free(path);
        return MR_OK;
    }
    if (!(s = mr_read_small_file(path, MAX_JSON_BYTES, &text, &len, err)) &&
        !(s = mr_plan_add_source(p, name, text, len, err))) {
        *root = json_tokener_parse(text);
        if (!*root || json_object_get_type(*root) != json_type_object)
            s = mr_fail(err, MR_EFORMAT, path, NULL, MR_NO_OFFSET, "not a JSON object");
    }
    if (s) {
        json_object_put(*root);
        *root = NULL;
    }
    free(text);
    free(path);
    return s;
}

/* gguf-py's does_token_look_special. */
static int looks_special(const char *t)
{
    size_t n = strlen(t);
    if (!strcmp(t, "<pad>") || !strcmp(t, "<mask>") || !strcmp(t, "<2mass>") || !strcmp(t, "[@BOS@]"))
        return 1;
    if (n >= 4 && !strncmp(t, "<|", 2) && !strcmp(t + n - 2, "|>"))
        return 1;
    if (n >= 8 && !strncmp(t, "<\xef\xbd\x9c", 4) && !strcmp(t + n - 4, "\xef\xbd\x9c>"))
        return 1; /* <｜ ... ｜> */
    return n >= 8 && !strncmp(t, "<unused", 7) && t[n - 1] == '>';
}

/* The pieces of the SentencePiece model, padded to n_vocab. */
static mr_status vocab_from_spm(const mr_spm_model *m, const char *path, uint32_t n_vocab,
                                vocab *v, mr_error *err)
{
    if (m->n_pieces > n_vocab)
        return mr_fail(err, MR_EFORMAT, path, "pieces", MR_NO_OFFSET,
                       "%u pieces, more than config.json's vocab_size %u", m->n_pieces, n_vocab);
    v->n = n_vocab;
    v->tok = calloc(n_vocab, sizeof *v->tok);
    v->score = calloc(n_vocab, sizeof *v->score);
    v->type = calloc(n_vocab, sizeof *v->type);
    if (!v->tok || !v->score || !v->type)
        return mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory for the vocabulary");
    for (uint32_t i = 0; i < n_vocab; i++) {
        char pad[32];
        int r;
        if (i < m->n_pieces) {
            int32_t t = m->type[i];
            int32_t type = t == MR_SPM_UNKNOWN || t == MR_SPM_CONTROL || t == MR_SPM_UNUSED ||
                           t == MR_SPM_BYTE ? t : MR_SPM_NORMAL;
            r = vocab_set(v, i, m->piece[i], m->piece_len[i], m->score[i], type);
        } else {
            snprintf(pad, sizeof pad, "[PAD%u]", i);
            r = vocab_set(v, i, pad, strlen(pad), -10000.0f, MR_SPM_UNUSED);
        }
        if (r)
            return mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory");
    }
    return MR_OK;
}

/* added_tokens.json: {"text": id}, user-defined. */
static mr_status apply_added_tokens(json_object *root, vocab *v, mr_error *err)
{
    json_object_object_foreach(root, text, jid) {
        int64_t id = json_object_get_int64(jid);
        if (json_object_get_type(jid) != json_type_int || id < 0 || id >= v->n)
            continue; /* llama.cpp ignores ids out of range too */
        if (vocab_set(v, (uint32_t)id, text, strlen(text), -1000.0f, MR_SPM_USER_DEFINED))
            return mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory");
    }
    return MR_OK;
}

/* tokenizer_config.json's added_tokens_decoder: {"id": {"content", "special"}}. */
static mr_status apply_added_decoder(json_object *cfg, vocab *v, mr_error *err)
{
    json_object *dec, *jc, *jsp;
    if (!json_object_object_get_ex(cfg, "added_tokens_decoder", &dec) ||
        json_object_get_type(dec) != json_type_object)
        return MR_OK;
    json_object_object_foreach(dec, key, val) {
        char *end;
        unsigned long id = strtoul(key, &end, 10);
        if (*end || end == key || id >= v->n || json_object_get_type(val) != json_type_object ||
            !json_object_object_get_ex(val, "content", &jc) ||
            json_object_get_type(jc) != json_type_string)
            continue;
        const char *text = json_object_get_string(jc);
        int special = json_object_object_get_ex(val, "special", &jsp) && json_object_get_boolean(jsp);
        int r;
        if (special || looks_special(text)) {
            r = vocab_set(v, (uint32_t)id, text, strlen(text), -1000.0f, MR_SPM_CONTROL);
        } else { /* "▁" (U+2581) becomes a space */
            size_t n = strlen(text), k = 0;
            char *t = malloc(n + 1);
            if (!t)
                return mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory");
            for (size_t i = 0; i < n; i++) {
                if (i + 2 < n && !memcmp(text + i, "\xe2\x96\x81", 3)) {
                    t[k++] = ' ';
                    i += 2;
                } else {
                    t[k++] = text[i];
                }
            }
            r = vocab_set(v, (uint32_t)id, t, k, -1000.0f, MR_SPM_USER_DEFINED);
            free(t);
        }
        if (r)
            return mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory");
    }
    return MR_OK;
}

/* The id of special token typ ("bos"): tokenizer_config's "<typ>_token"
 * text (a string or {"content"}) looked up in added_tokens_decoder, else
 * config.json's "<typ>_token_id".  -1 when neither gives one in range. */
static int64_t special_id(json_object *tcfg, json_object *config, const char *typ, uint32_t n)
{
    char key[32];
    json_object *jt, *jc, *dec, *jid;
    snprintf(key, sizeof key, "%s_token", typ);
    if (tcfg && json_object_object_get_ex(tcfg, key, &jt)) {
        if (json_object_get_type(jt) == json_type_object && json_object_object_get_ex(jt, "content", &jc))
            jt = jc;
        if (json_object_get_type(jt) == json_type_string &&
            json_object_object_get_ex(tcfg, "added_tokens_decoder", &dec) &&
            json_object_get_type(dec) == json_type_object) {
            json_object_object_foreach(dec, id, val) {
                if (json_object_get_type(val) == json_type_object &&
                    json_object_object_get_ex(val, "content", &jc) &&
                    !strcmp(json_object_get_string(jc), json_object_get_string(jt))) {
                    long x = strtol(id, NULL, 10);
                    if (x >= 0 && x < (long)n)
                        return x;
                }
            }
        }
    }
    snprintf(key, sizeof key, "%s_token_id", typ);
    if (config && json_object_object_get_ex(config, key, &jid) &&
        json_object_get_type(jid) == json_type_int) {
        int64_t x = json_object_get_int64(jid);
        if (x >= 0 && x < n)
            return x;
    }
    return -1;
}

/* A boolean member, or def. */
static int cfg_bool(json_object *o, const char *key, int def)
{
    json_object *v;
    if (!o || !json_object_object_get_ex(o, key, &v) || json_object_get_type(v) != json_type_boolean)
        return def;
    return json_object_get_boolean(v);
}

/* Write the tokenizer keys; see convert_internal.h. */
mr_status mr_convert_vocab(const char *dir, mr_plan *p, mr_gguf_writer *w, mr_error *err)
{
    mr_status s;
    vocab v = {0};
    mr_spm_model *m = NULL;
    json_object *tcfg = NULL, *added = NULL, *config = NULL;
    char *bytes = NULL, *path = mr_path_join(dir, "tokenizer.model");
    size_t len;
    if (!path)
        return mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory");
    if (access(path, F_OK) != 0) { /* no SentencePiece model: a byte-level BPE */
        char *tj = mr_path_join(dir, "tokenizer.json");
        int have_json = tj && access(tj, F_OK) == 0;
        free(tj);
        if (have_json) {
            free(path);
            return mr_convert_vocab_bpe(dir, p->hp.n_vocab, p, w, err);
        }
        s = mr_fail(err, MR_EUNSUPPORTED, path, NULL, MR_NO_OFFSET,
                    "missing, and so is tokenizer.json: moerun converts SentencePiece "
                    "(tokenizer.model) and byte-level BPE (tokenizer.json) tokenizers");
        goto done;
    }
    if ((s = mr_read_small_file(path, MAX_TOKENIZER_BYTES, &bytes, &len, err)) ||
        (s = mr_plan_add_source(p, "tokenizer.model", bytes, len, err)) ||
        (s = mr_spm_parse(bytes, len, path, &m, err)) ||
        (s = vocab_from_spm(m, path, p->hp.n_vocab, &v, err)) ||
        (s = read_json_opt(dir, "added_tokens.json", p, &added, err)) ||
        (added && (s = apply_added_tokens(added, &v, err))) ||
        (s = read_json_opt(dir, "tokenizer_config.json", p, &tcfg, err)) ||
        (tcfg && (s = apply_added_decoder(tcfg, &v, err))))
        goto done;
    char *cpath = mr_path_join(dir, "config.json"), *ctext = NULL;
    if (cpath && !mr_read_small_file(cpath, 1u << 20, &ctext, &len, NULL))
        config = json_tokener_parse(ctext);
    free(cpath);
    free(ctext);
    mr_gguf_kv_str(w, "tokenizer.ggml.model", "llama");
    mr_gguf_kv_str(w, "tokenizer.ggml.pre", "default");
    mr_gguf_kv_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v.tok, NULL, v.n);
    mr_gguf_kv_arr_f32(w, "tokenizer.ggml.scores", v.score, v.n);
    mr_gguf_kv_arr_i32(w, "tokenizer.ggml.token_type", v.type, v.n);
    static const char *const typs[] = {"bos", "eos", "unk", "pad"};
    static const char *const keys[] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                                       "tokenizer.ggml.unknown_token_id",
                                       "tokenizer.ggml.padding_token_id"};
    for (int i = 0; i < 4; i++) {
        int64_t id = special_id(tcfg, config, typs[i], v.n);
        if (id >= 0)
            mr_gguf_kv_u32(w, keys[i], (uint32_t)id);
    }
    mr_gguf_kv_bool(w, "tokenizer.ggml.add_bos_token", cfg_bool(tcfg, "add_bos_token", 1));
    mr_gguf_kv_bool(w, "tokenizer.ggml.add_sep_token", 0);
    mr_gguf_kv_bool(w, "tokenizer.ggml.add_eos_token", cfg_bool(tcfg, "add_eos_token", 0));
done:
    json_object_put(config);
    json_object_put(tcfg);
    json_object_put(added);
    mr_spm_free(m);
    vocab_free(&v);
    free(bytes);
    free(path);
    return s;
}
