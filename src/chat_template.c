/* chat_template.c - the public chat-template API: parse, render a JSON
 * conversation, choose a family's end-of-turn text. */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat_template.h"
#include "chat_template_internal.h"

struct mr_chat_template {
    ct_template t;
};

#define PARSE_LIMIT (32u << 20)
#define RENDER_LIMIT (256u << 20)

mr_status mr_chat_template_new(const char *src, size_t len, mr_chat_template **out,
                               mr_error *err)
{
    *out = NULL;
    if (!src && len)
        return mr_fail(err, MR_EINVAL, "chat template", NULL, MR_NO_OFFSET, "no text");
    mr_chat_template *t = calloc(1, sizeof *t);
    if (!t)
        return mr_fail(err, MR_ENOMEM, "chat template", NULL, MR_NO_OFFSET, "out of memory");
    ct_arena_init(&t->t.arena, PARSE_LIMIT);
    mr_status st = ct_parse(&t->t, src ? src : "", len, err);
    if (st != MR_OK) {
        mr_chat_template_free(t);
        return st;
    }
    *out = t;
    return MR_OK;
}

void mr_chat_template_free(mr_chat_template *t)
{
    if (!t)
        return;
    ct_arena_free(&t->t.arena);
    free(t);
}

void mr_chat_render_opts_default(mr_chat_render_opts *o)
{
    memset(o, 0, sizeof *o);
    o->add_generation_prompt = 1;
    o->now = -1;
}

/* JSON (json-c) to template values, in the render's arena. */
static int from_json(ct_arena *a, struct json_object *j, ct_value *out, int depth)
{
    if (depth > 64)
        return -1;
    switch (json_object_get_type(j)) {
    case json_type_null: *out = ct_none(); return 0;
    case json_type_boolean: *out = ct_bool(json_object_get_boolean(j)); return 0;
    case json_type_int: *out = ct_int(json_object_get_int64(j)); return 0;
    case json_type_double: *out = ct_float(json_object_get_double(j)); return 0;
    case json_type_string:
        *out = ct_strv(json_object_get_string(j), (size_t)json_object_get_string_len(j));
        return 0;
    case json_type_array: {
        size_t n = json_object_array_length(j);
        ct_list *l = ct_list_new(a, n);
        if (!l)
            return -1;
        for (size_t i = 0; i < n; i++)
            if (from_json(a, json_object_array_get_idx(j, i), &l->v[i], depth + 1))
                return -1;
        *out = (ct_value){.t = CT_LIST};
        out->u.l = l;
        return 0;
    }
    case json_type_object: {
        ct_dict *d = ct_dict_new(a, (size_t)json_object_object_length(j));
        if (!d)
            return -1;
        json_object_object_foreach(j, key, val)
        {
            ct_value v;
            if (from_json(a, val, &v, depth + 1) ||
                ct_dict_set(a, d, (ct_str){key, strlen(key)}, v))
                return -1;
        }
        *out = (ct_value){.t = CT_DICT};
        out->u.d = d;
        return 0;
    }
    }
    return -1;
}

mr_status mr_chat_template_render(const mr_chat_template *t, struct json_object *messages,
                                  const mr_chat_render_opts *o, char **out, size_t *out_len,
                                  mr_error *err)
{
    *out = NULL;
    *out_len = 0;
    mr_chat_render_opts def;
    if (!o) {
        mr_chat_render_opts_default(&def);
        o = &def;
    }
    if (!messages || !json_object_is_type(messages, json_type_array))
        return mr_fail(err, MR_EINVAL, "chat template", "messages", MR_NO_OFFSET,
                       "messages must be a JSON array");
    ct_arena a;
    ct_arena_init(&a, RENDER_LIMIT);
    ct_var vars[64];
    size_t n = 0;
    mr_status st = MR_OK;
    ct_value v;
    if (from_json(&a, messages, &v, 0)) {
        st = mr_fail(err, MR_ENOMEM, "chat template", "messages", MR_NO_OFFSET,
                     "conversation too large or too deep");
        goto out;
    }
    vars[n++] = (ct_var){{"messages", 8}, v};
    vars[n++] = (ct_var){{"add_generation_prompt", 21}, ct_bool(o->add_generation_prompt)};
    vars[n++] = (ct_var){{"bos_token", 9}, ct_cstr(o->bos_token ? o->bos_token : "")};
    vars[n++] = (ct_var){{"eos_token", 9}, ct_cstr(o->eos_token ? o->eos_token : "")};
    ct_value tools = ct_none();
    if (o->tools && from_json(&a, o->tools, &tools, 0)) {
        st = mr_fail(err, MR_ENOMEM, "chat template", "tools", MR_NO_OFFSET, "tools too large");
        goto out;
    }
    vars[n++] = (ct_var){{"tools", 5}, tools};
    if (o->extra && json_object_is_type(o->extra, json_type_object)) {
        json_object_object_foreach(o->extra, key, val)
        {
            if (n == sizeof vars / sizeof vars[0]) {
                st = mr_fail(err, MR_EINVAL, "chat template", "extra", MR_NO_OFFSET,
                             "too many extra variables");
                goto out;
            }
            if (from_json(&a, val, &v, 0)) {
                st = mr_fail(err, MR_ENOMEM, "chat template", key, MR_NO_OFFSET, "value too large");
                goto out;
            }
            size_t k;
            for (k = 0; k < n; k++)
                if (ct_str_eq(vars[k].name, key))
                    break;
            vars[k] = (ct_var){{key, strlen(key)}, v};
            if (k == n)
                n++;
        }
    }
    st = ct_render(&t->t, &a, vars, n, o->now < 0 ? (int64_t)time(NULL) : o->now, out, out_len,
                   err);
out:
    ct_arena_free(&a);
    return st;
}

const char *mr_chat_template_family(const char *src)
{
    if (!src)
        return NULL;
    if (strstr(src, "<|channel|>"))
        return "gpt-oss";
    if (strstr(src, "<|header_start|>"))
        return "llama4";
    if (strstr(src, "<|im_user|>") || strstr(src, "<|im_middle|>"))
        return "kimi-k2";
    if (strstr(src, "<\xef\xbd\x9c" "User\xef\xbd\x9c>")) /* <｜User｜> */
        return "deepseek3";
    if (strstr(src, "<|im_start|>"))
        return "chatml";
    if (strstr(src, "[INST]"))
        return "mistral";
    return NULL;
}

const char *const *mr_chat_template_stops(const char *family)
{
    static const char *const chatml[] = {"<|im_end|>", NULL};
    static const char *const mistral[] = {"</s>", NULL};
    static const char *const deepseek[] = {"<\xef\xbd\x9c" "end\xe2\x96\x81" "of\xe2\x96\x81"
                                           "sentence\xef\xbd\x9c>", NULL};
    static const char *const gptoss[] = {"<|return|>", "<|call|>", NULL};
    static const char *const llama4[] = {"<|eot|>", "<|eom|>", NULL};
    static const char *const none[] = {NULL};
    if (!family)
        return none;
    if (!strcmp(family, "chatml") || !strcmp(family, "qwen3") || !strcmp(family, "kimi-k2"))
        return chatml;
    if (!strcmp(family, "mistral"))
        return mistral;
    if (!strcmp(family, "deepseek3"))
        return deepseek;
    if (!strcmp(family, "gpt-oss"))
        return gptoss;
    if (!strcmp(family, "llama4"))
        return llama4;
    return none;
}
