/* template_select.c - choose and apply a model's chat template (see
 * template_select.h). */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/template_select.h"

static mr_status read_file(const char *path, char **out, mr_error *err)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return mr_fail(err, MR_EIO, path, "--chat-template", MR_NO_OFFSET,
                       "not a built-in template name and not a readable file");
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            if (cap > (16u << 20)) {
                free(buf);
                fclose(fp);
                return mr_fail(err, MR_ERANGE, path, "--chat-template", MR_NO_OFFSET,
                               "template larger than 16 MiB");
            }
            char *p = realloc(buf, cap);
            if (!p) {
                free(buf);
                fclose(fp);
                return mr_fail(err, MR_ENOMEM, path, NULL, MR_NO_OFFSET, "out of memory");
            }
            buf = p;
        }
        size_t k = fread(buf + n, 1, 4096, fp);
        n += k;
        if (k < 4096)
            break;
    }
    int bad = ferror(fp);
    fclose(fp);
    if (bad) {
        free(buf);
        return mr_fail(err, MR_EIO, path, NULL, MR_NO_OFFSET, "read error");
    }
    buf[n] = 0;
    *out = buf;
    return MR_OK;
}

mr_status srv_format_open(srv_chat_format *f, const mr_gguf *g, const mr_tokenizer *t,
                          const char *override, mr_error *err)
{
    memset(f, 0, sizeof *f);
    mr_status st;
    if (override) {
        const char *b = mr_chat_template_builtin(override);
        if (b) {
            f->text = strdup(b);
            snprintf(f->origin, sizeof f->origin, "built-in %s", override);
        } else {
            if ((st = read_file(override, &f->text, err)))
                return st;
            snprintf(f->origin, sizeof f->origin, "file %s", override);
        }
    } else {
        mr_str s;
        mr_error e2;
        if (g && mr_gguf_find(g, "tokenizer.chat_template") &&
            mr_gguf_get_str(g, "tokenizer.chat_template", &s, &e2) == MR_OK) {
            f->text = malloc(s.len + 1);
            if (f->text) {
                memcpy(f->text, s.ptr, s.len);
                f->text[s.len] = 0;
            }
            snprintf(f->origin, sizeof f->origin, "gguf");
        } else {
            f->text = strdup(mr_chat_template_builtin(MR_CHAT_TEMPLATE_DEFAULT));
            snprintf(f->origin, sizeof f->origin, "default %s", MR_CHAT_TEMPLATE_DEFAULT);
            f->fallback = 1;
        }
    }
    if (!f->text)
        return mr_fail(err, MR_ENOMEM, NULL, "chat template", MR_NO_OFFSET, "out of memory");
    if ((st = mr_chat_template_new(f->text, strlen(f->text), &f->tpl, err))) {
        srv_format_close(f);
        return st;
    }
    f->family = mr_chat_template_family(f->text);
    f->stops = mr_chat_template_stops(f->family);
    const char *bp = mr_token_piece(t, mr_tokenizer_bos(t));
    const char *ep = mr_token_piece(t, mr_tokenizer_eos(t));
    snprintf(f->bos, sizeof f->bos, "%s", bp ? bp : "");
    snprintf(f->eos, sizeof f->eos, "%s", ep ? ep : "");
    return MR_OK;
}

void srv_format_close(srv_chat_format *f)
{
    mr_chat_template_free(f->tpl);
    free(f->text);
    if (f->kwargs)
        json_object_put(f->kwargs);
    memset(f, 0, sizeof *f);
}

mr_status srv_format_render(const srv_chat_format *f, struct json_object *messages,
                            int add_generation_prompt, char **out, size_t *len, mr_error *err)
{
    mr_chat_render_opts o;
    mr_chat_render_opts_default(&o);
    o.bos_token = f->bos;
    o.eos_token = f->eos;
    o.add_generation_prompt = add_generation_prompt;
    o.extra = f->kwargs;
    return mr_chat_template_render(f->tpl, messages, &o, out, len, err);
}

int srv_format_add_bos(const srv_chat_format *f, const mr_tokenizer *t, const char *text)
{
    if (!mr_tokenizer_add_bos(t))
        return 0;
    return !(f->bos[0] && !strncmp(text, f->bos, strlen(f->bos)));
}
