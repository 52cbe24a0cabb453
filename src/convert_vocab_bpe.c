/* convert_vocab_bpe.c - the tokenizer.ggml.* keys of a byte-level BPE
 * checkpoint (tokenizer.json), as llama.cpp's convert_hf_to_gguf.py writes
 * them (_set_vocab_gpt2: get_vocab_base + gguf-py's SpecialVocab):
 *   - model "gpt2"; pre: the name llama.cpp gives the split pattern of
 *     tokenizer.json's pre_tokenizer (recognised from the pattern itself,
 *     not from a hash of a tokenization: gpt-2, llama-bpe, qwen2,
 *     deepseek-v3, gpt-4o, llama4; the o200k pattern is llama4 when the
 *     added tokens are Llama 4's, <|header_start|> or <|begin_of_text|>,
 *     else gpt-4o, and llama.cpp runs both alike); an unknown pattern is
 *     refused;
 *   - tokens: id i < vocab_size is the model's vocabulary or an added token
 *     (control when "special" or when it looks special, e.g. "<|...|>",
 *     else user-defined with U+2581 turned into spaces); a missing id is
 *     "[PAD<i>]", unused; everything else normal;
 *   - merges as strings ("A B"; pairs are joined, a space inside a part
 *     written U+0120);
 *   - special ids (bos, eos, unk, sep, pad, mask; eot/eom when the
 *     post-processor's template ends in another token than EOS) from
 *     tokenizer_config.json's *_token texts looked up among the added
 *     tokens, then config.json's *_token_id; add_bos/eos/sep from the
 *     post-processor (TemplateProcessing, RobertaProcessing) and then
 *     tokenizer_config.json's add_*_token;
 *   - chat_template: tokenizer_config.json's, else chat_template.jinja,
 *     else chat_template.json's.
 * The keys come in llama.cpp's order.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "convert_internal.h"
#include "convert_vocab_bpe.h"
#include "fileio.h"

#define MAX_JSON_BYTES (256u << 20)

/* ------------------------------------------------ pre-tokenizer names */

#define LLAMA3_ORIG "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define QWEN2_ORIG "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define O200K_ORIG "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define DS3_CJK "[\xe4\xb8\x80-\xe9\xbe\xa5\xe3\x81\x80-\xe3\x82\x9f\xe3\x82\xa0-\xe3\x83\xbf]+"
#define DS3_MAIN "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"

typedef struct {
    const char *name;      /* tokenizer.ggml.pre */
    int llama4;            /* -1: either; else whether Llama 4's added tokens are there */
    const char *split[4];  /* the Split regexes, in order */
} known_pre;

static const known_pre k_known[] = {
    {"llama-bpe", -1, {LLAMA3_ORIG}},
    {"qwen2", -1, {QWEN2_ORIG}},
    {"deepseek-v3", -1, {"\\p{N}{1,3}", DS3_CJK, DS3_MAIN}},
    {"llama4", 1, {O200K_ORIG}},
    {"gpt-4o", -1, {O200K_ORIG}}, /* gpt-oss (o200k_harmony) and others */
};

/* Member key of o as a string, or NULL. */
static const char *str_member(json_object *o, const char *key)
{
    json_object *v;
    if (!o || !json_object_object_get_ex(o, key, &v) || json_object_get_type(v) != json_type_string)
        return NULL;
    return json_object_get_string(v);
}

static int bool_member(json_object *o, const char *key, int def)
{
    json_object *v;
    if (!o || !json_object_object_get_ex(o, key, &v) || json_object_get_type(v) != json_type_boolean)
        return def;
    return json_object_get_boolean(v);
}

mr_status mr_bpe_pre_name(json_object *pre, int llama4, const char *path, const char **name,
                          mr_error *err)
{
    const char *type = str_member(pre, "type");
    *name = NULL;
    if (type && strcmp(type, "ByteLevel") == 0 && bool_member(pre, "use_regex", 1)) {
        *name = "gpt-2"; /* the GPT-2 pattern built into ByteLevel */
        return MR_OK;
    }
    const char *splits[8];
    int n = 0, byte_level = 0;
    json_object *list;
    if (type && strcmp(type, "Sequence") == 0 && json_object_object_get_ex(pre, "pretokenizers", &list) &&
        json_object_get_type(list) == json_type_array) {
        size_t k = json_object_array_length(list);
        for (size_t i = 0; i < k; i++) {
            json_object *e = json_object_array_get_idx(list, i), *pat;
            const char *et = str_member(e, "type");
            if (et && strcmp(et, "ByteLevel") == 0 && i + 1 == k && !bool_member(e, "use_regex", 1)) {
                byte_level = 1;
                continue;
            }
            const char *re = NULL, *beh = str_member(e, "behavior");
            if (et && strcmp(et, "Split") == 0 && json_object_object_get_ex(e, "pattern", &pat))
                re = str_member(pat, "Regex");
            if (!re || !beh || strcmp(beh, "Isolated") != 0 || bool_member(e, "invert", 0) || n == 8) {
                n = -1;
                break;
            }
            splits[n++] = re;
        }
    }
    for (size_t i = 0; n > 0 && byte_level && i < sizeof k_known / sizeof k_known[0]; i++) {
        const known_pre *kp = &k_known[i];
        int m = 0;
        while (m < 4 && kp->split[m])
            m++;
        if (m != n || (kp->llama4 >= 0 && kp->llama4 != llama4))
            continue;
        int same = 1;
        for (int j = 0; j < n && same; j++)
            same = strcmp(splits[j], kp->split[j]) == 0;
        if (same) {
            *name = kp->name;
            return MR_OK;
        }
    }
    const char *show = n > 0 ? splits[0] : json_object_to_json_string(pre);
    return mr_fail(err, MR_EUNSUPPORTED, path, "pre_tokenizer", MR_NO_OFFSET,
                   "split pattern not known to moerun (%s%.120s%s); it knows gpt-2, llama-bpe, "
                   "qwen2, deepseek-v3, gpt-4o and llama4, and another would tokenize wrongly",
                   n > 1 ? "first of several: " : "", show ? show : "?",
                   show && strlen(show) > 120 ? "..." : "");
}

/* -------------------------------------------------- special tokens */

/* tokenizer_config's value of a *_token entry, as Python sees it: absent,
 * a string, or another value (an AddedToken dict, with its content). */
typedef struct {
    int kind;            /* 0 absent/None, 1 string, 2 dict */
    const char *text;    /* string, or the dict's "content" (may be NULL) */
} tok_entry;

static tok_entry entry_of(json_object *tcfg, const char *key)
{
    json_object *v;
    tok_entry e = {0, NULL};
    if (!tcfg || !json_object_object_get_ex(tcfg, key, &v) || !v)
        return e;
    if (json_object_get_type(v) == json_type_string) {
        e.kind = 1;
        e.text = json_object_get_string(v);
    } else if (json_object_get_type(v) == json_type_object) {
        e.kind = 2;
        e.text = str_member(v, "content");
    } else {
        e.kind = 3; /* another truthy value; never equal to a string */
    }
    return e;
}

/* Python's `s in (a, b)` for a string s. */
static int eq_entry(const char *s, tok_entry a)
{
    return s && a.kind == 1 && a.text && strcmp(s, a.text) == 0;
}

static int truthy(tok_entry a) { return a.kind == 1 ? a.text && *a.text : a.kind != 0; }

enum { T_BOS, T_EOS, T_UNK, T_SEP, T_PAD, T_CLS, T_MASK, T_EOT, T_EOM, N_TYP };
static const char *const k_typ[N_TYP] = {"bos", "eos", "unk", "sep", "pad", "cls", "mask", "eot", "eom"};
static const char *const k_id_key[N_TYP] = {
    "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
    "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.seperator_token_id",
    "tokenizer.ggml.padding_token_id", NULL, "tokenizer.ggml.mask_token_id",
    "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"};

typedef struct {
    tok_entry entry[N_TYP];   /* tokenizer_config's *_token, with the converter's edits */
    int n_types, types[N_TYP]; /* special_token_types, in order */
    int n_ids, id_typ[N_TYP];  /* special_token_ids: insertion order */
    int64_t id[N_TYP];
    int n_add, add_typ[N_TYP]; /* add_special_token: insertion order */
    int add[N_TYP];
} specials;

static void set_add(specials *s, int typ, int v)
{
    for (int i = 0; i < s->n_add; i++)
        if (s->add_typ[i] == typ) {
            s->add[typ] = v;
            return;
        }
    s->add_typ[s->n_add++] = typ;
    s->add[typ] = v;
}

static void set_id(specials *s, int typ, int64_t id, uint32_t n_vocab)
{
    if (id < 0 || id >= n_vocab)
        return;
    for (int i = 0; i < s->n_ids; i++)
        if (s->id_typ[i] == typ)
            return; /* the first setter wins */
    s->id_typ[s->n_ids++] = typ;
    s->id[typ] = id;
}

static int has_type(const specials *s, int typ)
{
    for (int i = 0; i < s->n_types; i++)
        if (s->types[i] == typ)
            return 1;
    return 0;
}

/* The "id" of a SpecialToken template item, or NULL. */
static const char *special_item(json_object *item)
{
    json_object *st;
    if (!item || !json_object_object_get_ex(item, "SpecialToken", &st))
        return NULL;
    return str_member(st, "id");
}

static const char *sequence_item(json_object *item)
{
    json_object *sq;
    if (!item || !json_object_object_get_ex(item, "Sequence", &sq))
        return NULL;
    return str_member(sq, "id");
}

/* SpecialVocab's reading of a TemplateProcessing post-processor. */
static void template_processing(specials *s, json_object *proc, int have_tcfg)
{
    json_object *single, *pair;
    size_t ns = 0, np = 0;
    if (json_object_object_get_ex(proc, "single", &single) && json_object_get_type(single) == json_type_array)
        ns = json_object_array_length(single);
    if (json_object_object_get_ex(proc, "pair", &pair) && json_object_get_type(pair) == json_type_array)
        np = json_object_array_length(pair);
    const char *first = NULL, *last = NULL;
    if (ns > 1) {
        if ((first = special_item(json_object_array_get_idx(single, 0)))) {
            if (!have_tcfg) {
                s->entry[T_BOS] = (tok_entry){1, first};
            } else if (!eq_entry(first, s->entry[T_BOS]) && !eq_entry(first, s->entry[T_CLS])) {
                if (!truthy(s->entry[T_BOS]))
                    s->entry[T_BOS] = (tok_entry){1, first};
                if (!truthy(s->entry[T_CLS]))
                    s->entry[T_CLS] = (tok_entry){1, first};
            }
            set_add(s, T_BOS, eq_entry(first, s->entry[T_BOS]) || eq_entry(first, s->entry[T_CLS]));
        }
        if ((last = special_item(json_object_array_get_idx(single, ns - 1)))) {
            if (!have_tcfg) {
                s->entry[T_EOS] = (tok_entry){1, last};
            } else if (!eq_entry(last, s->entry[T_EOS])) {
                if (!has_type(s, T_EOT)) {
                    s->types[s->n_types++] = T_EOT;
                    s->entry[T_EOT] = s->entry[T_EOS];
                } else if (!has_type(s, T_EOM)) {
                    s->types[s->n_types++] = T_EOM;
                    s->entry[T_EOM] = s->entry[T_EOS];
                }
                s->entry[T_EOS] = (tok_entry){1, last};
            }
            set_add(s, T_EOS, eq_entry(last, s->entry[T_EOS]));
        }
    }
    if (np == 0)
        return;
    size_t start = first && eq_entry(first, (tok_entry){1, special_item(json_object_array_get_idx(pair, 0))}) ? 1 : 0;
    size_t stop = last && np && special_item(json_object_array_get_idx(pair, np - 1)) &&
                  strcmp(special_item(json_object_array_get_idx(pair, np - 1)), last) == 0 ? np - 1 : np;
    if (stop <= start)
        return;
    const char *a = sequence_item(json_object_array_get_idx(pair, start));
    const char *b = sequence_item(json_object_array_get_idx(pair, stop - 1));
    if (!a || !b || strcmp(a, "A") != 0 || strcmp(b, "B") != 0 || stop - start < 3)
        return;
    /* the items between A and B */
    size_t mid = start + 1, n_mid = stop - start - 2;
    int add_sep = 0;
    const char *e1 = special_item(json_object_array_get_idx(pair, mid));
    if (e1 && (eq_entry(e1, s->entry[T_SEP]) || eq_entry(e1, s->entry[T_EOS])) && !last)
        add_sep = 1;
    if (n_mid == 2) {
        const char *e2 = special_item(json_object_array_get_idx(pair, mid + 1));
        if (e2 && (eq_entry(e2, s->entry[T_SEP]) || eq_entry(e2, s->entry[T_EOS])))
            add_sep = 1;
    }
    set_add(s, T_SEP, add_sep);
    if (add_sep && !truthy(s->entry[T_SEP]) && have_tcfg)
        s->entry[T_SEP] = s->entry[T_EOS];
}

/* Id of the first added token whose content is text, or -1. */
static int64_t added_id(json_object *added, const char *text)
{
    if (!added || !text)
        return -1;
    size_t n = json_object_array_length(added);
    for (size_t i = 0; i < n; i++) {
        json_object *a = json_object_array_get_idx(added, i), *jid;
        const char *c = str_member(a, "content");
        if (c && strcmp(c, text) == 0 && json_object_object_get_ex(a, "id", &jid) &&
            json_object_get_type(jid) == json_type_int)
            return json_object_get_int64(jid);
    }
    return -1;
}

static void find_specials(specials *s, json_object *tj, json_object *tcfg, json_object *config,
                          json_object *added, uint32_t n_vocab)
{
    memset(s, 0, sizeof *s);
    for (int t = 0; t <= T_MASK; t++)
        s->types[s->n_types++] = t;
    static const char *const keys[] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                       "pad_token", "cls_token", "mask_token"};
    for (int t = 0; t <= T_MASK; t++)
        s->entry[t] = entry_of(tcfg, keys[t]);
    if (tcfg && !truthy(s->entry[T_BOS]) && truthy(s->entry[T_CLS]))
        s->entry[T_BOS] = s->entry[T_CLS];
    if (tcfg && !truthy(s->entry[T_EOS]) && truthy(s->entry[T_SEP]))
        s->entry[T_EOS] = s->entry[T_SEP];
    json_object *post, *procs;
    if (json_object_object_get_ex(tj, "post_processor", &post) && post &&
        json_object_get_type(post) == json_type_object) {
        size_t n = 1;
        int seq = json_object_object_get_ex(post, "processors", &procs) &&
                  json_object_get_type(procs) == json_type_array;
        if (seq)
            n = json_object_array_length(procs);
        for (size_t i = 0; i < n; i++) {
            json_object *pr = seq ? json_object_array_get_idx(procs, i) : post;
            const char *ty = str_member(pr, "type");
            if (ty && strcmp(ty, "RobertaProcessing") == 0) {
                set_add(s, T_BOS, 1);
                set_add(s, T_EOS, 1);
                set_add(s, T_SEP, 1);
            } else if (ty && strcmp(ty, "TemplateProcessing") == 0) {
                template_processing(s, pr, tcfg != NULL);
            }
        }
    }
    if (tcfg) {
        for (int i = 0; i < s->n_types; i++) {
            int t = s->types[i];
            char key[32];
            snprintf(key, sizeof key, "add_%s_token", k_typ[t]);
            json_object *v;
            if (json_object_object_get_ex(tcfg, key, &v) && json_object_get_type(v) == json_type_boolean)
                set_add(s, t, json_object_get_boolean(v));
            if (s->entry[t].kind == 1 || s->entry[t].kind == 2)
                set_id(s, t, added_id(added, s->entry[t].text), n_vocab);
        }
    }
    for (int i = 0; config && i < s->n_types; i++) {
        int t = s->types[i];
        char key[32];
        json_object *v, *tc;
        snprintf(key, sizeof key, "%s_token_id", k_typ[t]);
        if (!json_object_object_get_ex(config, key, &v) &&
            json_object_object_get_ex(config, "text_config", &tc))
            json_object_object_get_ex(tc, key, &v);
        else if (!json_object_object_get_ex(config, key, &v))
            v = NULL;
        if (v && json_object_get_type(v) == json_type_int)
            set_id(s, t, json_object_get_int64(v), n_vocab);
    }
}

/* -------------------------------------------------------- the vocabulary */

/* gguf-py's does_token_look_special. */
static int looks_special(const char *t)
{
    size_t n = strlen(t);
    if (!strcmp(t, "<pad>") || !strcmp(t, "<mask>") || !strcmp(t, "<2mass>") || !strcmp(t, "[@BOS@]"))
        return 1;
    if (n >= 4 && !strncmp(t, "<|", 2) && !strcmp(t + n - 2, "|>"))
        return 1;
    if (n >= 8 && !strncmp(t, "<\xef\xbd\x9c", 4) && !strcmp(t + n - 4, "\xef\xbd\x9c>"))
        return 1;
    return n >= 8 && !strncmp(t, "<unused", 7) && t[n - 1] == '>';
}

/* Read dir/name whole (NULL text when absent), adding it to the sources. */
static mr_status read_opt(const char *dir, const char *name, mr_plan *p, char **text, size_t *len,
                          mr_error *err)
{
    char *path = mr_path_join(dir, name);
    mr_status s = MR_OK;
    *text = NULL;
    if (!path)
        return mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory");
    if (access(path, F_OK) == 0 && !(s = mr_read_small_file(path, MAX_JSON_BYTES, text, len, err)) &&
        p && (s = mr_plan_add_source(p, name, *text, *len, err))) {
        free(*text);
        *text = NULL;
    }
    free(path);
    return s;
}

/* Parse JSON text into an object, or fail naming the file. */
static mr_status parse_obj(const char *dir, const char *name, const char *text, json_object **out,
                           mr_error *err)
{
    *out = text ? json_tokener_parse(text) : NULL;
    if (text && (!*out || json_object_get_type(*out) != json_type_object)) {
        json_object_put(*out);
        *out = NULL;
        char *path = mr_path_join(dir, name);
        mr_status s = mr_fail(err, MR_EFORMAT, path, NULL, MR_NO_OFFSET, "not a JSON object");
        free(path);
        return s;
    }
    return MR_OK;
}

typedef struct {
    uint32_t n;
    char **tok;
    int32_t *type;
    uint64_t n_merges;
    char **merges;
} bpe_vocab;

static void bpe_vocab_free(bpe_vocab *v)
{
    for (uint32_t i = 0; v->tok && i < v->n; i++)
        free(v->tok[i]);
    for (uint64_t i = 0; v->merges && i < v->n_merges; i++)
        free(v->merges[i]);
    free(v->tok);
    free(v->type);
    free(v->merges);
}

/* A copy of s with every U+2581 a space. */
static char *unescape_spaces(const char *s)
{
    size_t n = strlen(s), k = 0;
    char *t = malloc(n + 1);
    for (size_t i = 0; t && i < n; i++) {
        if (i + 2 < n && !memcmp(s + i, "\xe2\x96\x81", 3)) {
            t[k++] = ' ';
            i += 2;
        } else {
            t[k++] = s[i];
        }
    }
    if (t)
        t[k] = '\0';
    return t;
}

/* A merge part with spaces written U+0120, appended to o. */
static size_t put_part(char *o, const char *s)
{
    size_t k = 0;
    for (; *s; s++) {
        if (*s == ' ') {
            memcpy(o + k, "\xc4\xa0", 2);
            k += 2;
        } else {
            o[k++] = *s;
        }
    }
    return k;
}

static mr_status build_vocab(const char *path, json_object *model, json_object *added, uint32_t n,
                             bpe_vocab *v, mr_error *err)
{
    json_object *jv, *jm;
    if (!json_object_object_get_ex(model, "vocab", &jv) || json_object_get_type(jv) != json_type_object)
        return mr_fail(err, MR_EFORMAT, path, "model.vocab", MR_NO_OFFSET, "missing or not an object");
    v->n = n;
    v->tok = calloc(n, sizeof *v->tok);
    v->type = calloc(n, sizeof *v->type);
    uint8_t *is_added = calloc(n, 1);
    if (!v->tok || !v->type || !is_added) {
        free(is_added);
        return mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory for the vocabulary");
    }
    mr_status s = MR_OK;
    json_object_object_foreach(jv, text, jid) {
        int64_t id = json_object_get_int64(jid);
        if (json_object_get_type(jid) != json_type_int || id < 0 || id >= n) {
            s = mr_fail(err, MR_EFORMAT, path, "model.vocab", MR_NO_OFFSET,
                        "'%.40s' has id %lld, not below the vocabulary size %u", text,
                        (long long)id, n);
            goto done;
        }
        free(v->tok[id]);
        if (!(v->tok[id] = strdup(text)))
            goto nomem;
        v->type[id] = 1; /* normal */
    }
    size_t na = added ? json_object_array_length(added) : 0;
    for (size_t i = 0; i < na; i++) {
        json_object *a = json_object_array_get_idx(added, i), *jd;
        const char *c = str_member(a, "content");
        if (!c || !json_object_object_get_ex(a, "id", &jd) || json_object_get_type(jd) != json_type_int)
            continue;
        int64_t id = json_object_get_int64(jd);
        if (id < 0 || id >= n) {
            s = mr_fail(err, MR_EFORMAT, path, "added_tokens", MR_NO_OFFSET,
                        "'%.40s' has id %lld, not below the vocabulary size %u", c, (long long)id, n);
            goto done;
        }
        free(v->tok[id]);
        if (bool_member(a, "special", 0) || looks_special(c)) {
            v->tok[id] = strdup(c);
            v->type[id] = 3; /* control */
        } else {
            v->tok[id] = unescape_spaces(c);
            v->type[id] = 4; /* user-defined */
        }
        if (!v->tok[id])
            goto nomem;
        is_added[id] = 1;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (v->tok[i])
            continue;
        char pad[32];
        snprintf(pad, sizeof pad, "[PAD%u]", i);
        if (!(v->tok[i] = strdup(pad)))
            goto nomem;
        v->type[i] = 5; /* unused */
    }
    if (!json_object_object_get_ex(model, "merges", &jm) || json_object_get_type(jm) != json_type_array) {
        s = mr_fail(err, MR_EFORMAT, path, "model.merges", MR_NO_OFFSET, "missing or not a list");
        goto done;
    }
    v->n_merges = json_object_array_length(jm);
    v->merges = calloc(v->n_merges ? v->n_merges : 1, sizeof *v->merges);
    if (!v->merges)
        goto nomem;
    for (uint64_t i = 0; i < v->n_merges; i++) {
        json_object *m = json_object_array_get_idx(jm, i);
        if (json_object_get_type(m) == json_type_string) {
            v->merges[i] = strdup(json_object_get_string(m));
        } else if (json_object_get_type(m) == json_type_array && json_object_array_length(m) == 2 &&
                   json_object_get_type(json_object_array_get_idx(m, 0)) == json_type_string &&
                   json_object_get_type(json_object_array_get_idx(m, 1)) == json_type_string) {
            const char *l = json_object_get_string(json_object_array_get_idx(m, 0));
            const char *r = json_object_get_string(json_object_array_get_idx(m, 1));
            char *o = malloc(2 * (strlen(l) + strlen(r)) + 2);
            if (o) {
                size_t k = put_part(o, l);
                o[k++] = ' ';
                k += put_part(o + k, r);
                o[k] = '\0';
            }
            v->merges[i] = o;
        } else {
            s = mr_fail(err, MR_EFORMAT, path, "model.merges", MR_NO_OFFSET,
                        "merge %llu is neither \"A B\" nor [\"A\", \"B\"]", (unsigned long long)i);
            goto done;
        }
        if (!v->merges[i])
            goto nomem;
    }
    goto done;
nomem:
    s = mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory for the vocabulary");
done:
    free(is_added);
    return s;
}

mr_status mr_convert_vocab_bpe(const char *dir, uint32_t n_vocab, mr_plan *p, mr_gguf_writer *w,
                               mr_error *err)
{
    mr_status s;
    char *tj_text = NULL, *tc_text = NULL, *cfg_text = NULL, *jinja = NULL, *ctj_text = NULL;
    size_t len;
    json_object *tj = NULL, *tcfg = NULL, *config = NULL, *ctj = NULL;
    bpe_vocab v = {0};
    char *path = mr_path_join(dir, "tokenizer.json");
    if (!path)
        return mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory");
    if ((s = read_opt(dir, "tokenizer.json", p, &tj_text, &len, err)) ||
        (s = parse_obj(dir, "tokenizer.json", tj_text, &tj, err)))
        goto done;
    if (!tj) {
        s = mr_fail(err, MR_EUNSUPPORTED, path, NULL, MR_NO_OFFSET,
                    "missing: moerun converts tokenizer.model (SentencePiece) or tokenizer.json "
                    "(byte-level BPE) tokenizers");
        goto done;
    }
    if ((s = read_opt(dir, "tokenizer_config.json", p, &tc_text, &len, err)) ||
        (s = parse_obj(dir, "tokenizer_config.json", tc_text, &tcfg, err)) ||
        (s = read_opt(dir, "config.json", NULL, &cfg_text, &len, err)) ||
        (s = parse_obj(dir, "config.json", cfg_text, &config, err)))
        goto done;
    json_object *model, *added = NULL, *pre = NULL, *jn, *tc;
    if (!json_object_object_get_ex(tj, "model", &model) || json_object_get_type(model) != json_type_object) {
        s = mr_fail(err, MR_EFORMAT, path, "model", MR_NO_OFFSET, "missing or not an object");
        goto done;
    }
    const char *mtype = str_member(model, "type");
    if (mtype && strcmp(mtype, "BPE") != 0) {
        s = mr_fail(err, MR_EUNSUPPORTED, path, "model.type", MR_NO_OFFSET,
                    "'%.40s' tokenizers are not converted (only BPE)", mtype);
        goto done;
    }
    if (json_object_object_get_ex(tj, "added_tokens", &added) &&
        json_object_get_type(added) != json_type_array)
        added = NULL;
    json_object_object_get_ex(tj, "pre_tokenizer", &pre);
    const char *pre_name;
    int llama4 = added_id(added, "<|header_start|>") >= 0 || added_id(added, "<|begin_of_text|>") >= 0;
    if ((s = mr_bpe_pre_name(pre, llama4, path, &pre_name, err)))
        goto done;
    if (n_vocab == 0 && config) { /* config.json's vocab_size, else the vocabulary's */
        if ((json_object_object_get_ex(config, "vocab_size", &jn) ||
             (json_object_object_get_ex(config, "text_config", &tc) &&
              json_object_object_get_ex(tc, "vocab_size", &jn))) &&
            json_object_get_type(jn) == json_type_int && json_object_get_int64(jn) > 0 &&
            json_object_get_int64(jn) < (1 << 26))
            n_vocab = (uint32_t)json_object_get_int64(jn);
    }
    if (n_vocab == 0) {
        json_object *jv;
        int64_t top = -1;
        if (json_object_object_get_ex(model, "vocab", &jv) && json_object_get_type(jv) == json_type_object) {
            json_object_object_foreach(jv, k, jid) {
                (void)k;
                if (json_object_get_int64(jid) > top)
                    top = json_object_get_int64(jid);
            }
        }
        for (size_t i = 0; added && i < json_object_array_length(added); i++) {
            json_object *jid;
            if (json_object_object_get_ex(json_object_array_get_idx(added, i), "id", &jid) &&
                json_object_get_int64(jid) > top)
                top = json_object_get_int64(jid);
        }
        if (top < 0 || top >= (1 << 26)) {
            s = mr_fail(err, MR_EFORMAT, path, "model.vocab", MR_NO_OFFSET, "no usable ids");
            goto done;
        }
        n_vocab = (uint32_t)top + 1;
    }
    if ((s = build_vocab(path, model, added, n_vocab, &v, err)))
        goto done;
    specials sp;
    find_specials(&sp, tj, tcfg, config, added, n_vocab);

    const char *tmpl = str_member(tcfg, "chat_template");
    if (tcfg && !tmpl) {
        if ((s = read_opt(dir, "chat_template.jinja", p, &jinja, &len, err)))
            goto done;
        if (jinja) {
            tmpl = jinja;
        } else {
            if ((s = read_opt(dir, "chat_template.json", p, &ctj_text, &len, err)) ||
                (s = parse_obj(dir, "chat_template.json", ctj_text, &ctj, err)))
                goto done;
            tmpl = str_member(ctj, "chat_template");
        }
    }

    mr_gguf_kv_str(w, "tokenizer.ggml.model", "gpt2");
    mr_gguf_kv_str(w, "tokenizer.ggml.pre", pre_name);
    mr_gguf_kv_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v.tok, NULL, v.n);
    mr_gguf_kv_arr_i32(w, "tokenizer.ggml.token_type", v.type, v.n);
    if (v.n_merges)
        mr_gguf_kv_arr_str(w, "tokenizer.ggml.merges", (const char *const *)v.merges, NULL, v.n_merges);
    for (int i = 0; i < sp.n_ids; i++)
        if (k_id_key[sp.id_typ[i]])
            mr_gguf_kv_u32(w, k_id_key[sp.id_typ[i]], (uint32_t)sp.id[sp.id_typ[i]]);
    for (int i = 0; i < sp.n_add; i++) {
        int t = sp.add_typ[i];
        if (t == T_BOS || t == T_EOS || t == T_SEP) {
            char key[48];
            snprintf(key, sizeof key, "tokenizer.ggml.add_%s_token", k_typ[t]);
            mr_gguf_kv_bool(w, key, sp.add[t]);
        }
    }
    if (tmpl)
        mr_gguf_kv_str(w, "tokenizer.chat_template", tmpl);
done:
    bpe_vocab_free(&v);
    json_object_put(tj);
    json_object_put(tcfg);
    json_object_put(config);
    json_object_put(ctj);
    free(tj_text);
    free(tc_text);
    free(cfg_text);
    free(jinja);
    free(ctj_text);
    free(path);
    return s;
}
