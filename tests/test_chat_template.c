/* test_chat_template.c - the chat-template interpreter against Jinja2.
 *
 * tests/data/chat/templates/ holds the real templates of the families
 * moerun runs (sources in templates.json); expected/NAME.CONV.txt is what
 * Jinja2 rendered for each conversation of conversations.json
 * (tests/gen_chat_expected.py, run once), NAME.CONV.err where the template
 * refused it.  snippets.json exercises one feature per small template
 * against snippets.expected.json.  Every comparison is byte for byte.
 * Then malformed templates, runtime errors and limits, and the replayed
 * fuzz corpus (tests/corpus/chat_template/).
 */
#include <check.h>
#include <dirent.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_template.h"
#include "gguf.h"
#include "testutil.h"

#define NOW 1764720000 /* gen_chat_expected.py's NOW */

static const char *chat_dir(void)
{
    static char dir[4096];
    snprintf(dir, sizeof dir, "%s/tests/data/chat", tu_srcdir());
    return dir;
}

static json_object *load_json(const char *path)
{
    json_object *j = json_object_from_file(path);
    ck_assert_msg(j != NULL, "cannot read %s", path);
    return j;
}

/* Show where two renders first differ. */
static void assert_same(const char *what, const char *got, size_t got_len, const char *want,
                        size_t want_len)
{
    if (got_len == want_len && !memcmp(got, want, got_len))
        return;
    size_t i = 0;
    while (i < got_len && i < want_len && got[i] == want[i])
        i++;
    size_t from = i > 40 ? i - 40 : 0;
    ck_abort_msg("%s: differs at byte %zu (got %zu bytes, want %zu)\n got: ...%.*s\nwant: ...%.*s",
                 what, i, got_len, want_len, (int)(got_len - from > 80 ? 80 : got_len - from),
                 got + from, (int)(want_len - from > 80 ? 80 : want_len - from), want + from);
}

START_TEST(test_real_templates)
{
    json_object *templates = load_json(tu_path("%s/templates.json", chat_dir()));
    json_object *convs = load_json(tu_path("%s/conversations.json", chat_dir()));
    int rendered = 0, refused = 0;
    json_object_object_foreach(templates, name, meta)
    {
        size_t len;
        char *src = tu_read_file(tu_path("%s/templates/%s.jinja", chat_dir(), name), &len);
        ck_assert_msg(src != NULL, "template %s missing", name);
        mr_chat_template *t;
        mr_error err;
        ck_assert_msg(mr_chat_template_new(src, len, &t, &err) == MR_OK, "%s: %s", name, err.msg);
        json_object_object_foreach(convs, cname, conv)
        {
            json_object *v;
            mr_chat_render_opts o;
            mr_chat_render_opts_default(&o);
            o.now = NOW;
            json_object_object_get_ex(meta, "bos", &v);
            o.bos_token = json_object_get_string(v);
            json_object_object_get_ex(meta, "eos", &v);
            o.eos_token = json_object_get_string(v);
            json_object_object_get_ex(conv, "add_generation_prompt", &v);
            o.add_generation_prompt = json_object_get_boolean(v);
            o.tools = json_object_object_get_ex(conv, "tools", &v) ? v : NULL;
            o.extra = json_object_object_get_ex(conv, "extra", &v) ? v : NULL;
            json_object *msgs;
            json_object_object_get_ex(conv, "messages", &msgs);
            char *out = NULL;
            size_t out_len = 0;
            mr_status st = mr_chat_template_render(t, msgs, &o, &out, &out_len, &err);
            const char *base = tu_path("%s/expected/%s.%s", chat_dir(), name, cname);
            size_t want_len;
            char *want = tu_read_file(tu_path("%s.txt", base), &want_len);
            char what[128];
            snprintf(what, sizeof what, "%s x %s", name, cname);
            if (want) {
                ck_assert_msg(st == MR_OK, "%s: %s", what, err.msg);
                assert_same(what, out, out_len, want, want_len);
                rendered++;
            } else {
                char *e = tu_read_file(tu_path("%s.err", base), &want_len);
                ck_assert_msg(e != NULL, "%s: no expected file", what);
                ck_assert_msg(st != MR_OK, "%s: Jinja2 refused (%s) but we rendered", what, e);
                ck_assert_msg(strstr(err.msg, "line ") != NULL, "%s: error without a line: %s",
                              what, err.msg);
                /* raise_exception's own message is passed on */
                if (!strncmp(e, "TemplateError: ", 15)) {
                    char msg[200];
                    snprintf(msg, sizeof msg, "%.*s", (int)strcspn(e + 15, "\n"), e + 15);
                    ck_assert_msg(strstr(err.msg, msg) != NULL, "%s: got '%s', want '%s'", what,
                                  err.msg, msg);
                }
                free(e);
                refused++;
            }
            free(want);
            free(out);
        }
        mr_chat_template_free(t);
        free(src);
    }
    printf("real templates: %d renders identical to Jinja2, %d refusals matched\n", rendered,
           refused);
    ck_assert_int_gt(rendered, 90);
    json_object_put(templates);
    json_object_put(convs);
}
END_TEST

START_TEST(test_snippets)
{
    json_object *cases = load_json(tu_path("%s/snippets.json", chat_dir()));
    json_object *want = load_json(tu_path("%s/snippets.expected.json", chat_dir()));
    size_t n = json_object_array_length(cases);
    ck_assert_uint_eq(n, json_object_array_length(want));
    for (size_t i = 0; i < n; i++) {
        json_object *c = json_object_array_get_idx(cases, i);
        const char *src = json_object_get_string(json_object_array_get_idx(c, 0));
        json_object *vars = json_object_array_get_idx(c, 1);
        json_object *w = json_object_array_get_idx(want, i), *wv;
        mr_chat_template *t;
        mr_error err;
        mr_status st = mr_chat_template_new(src, strlen(src), &t, &err);
        char *out = NULL;
        size_t out_len = 0;
        if (st == MR_OK) {
            mr_chat_render_opts o;
            mr_chat_render_opts_default(&o);
            o.now = NOW;
            o.extra = vars;
            json_object *msgs = json_object_new_array();
            st = mr_chat_template_render(t, msgs, &o, &out, &out_len, &err);
            json_object_put(msgs);
            mr_chat_template_free(t);
        }
        char what[64];
        snprintf(what, sizeof what, "snippet %zu", i);
        if (json_object_object_get_ex(w, "out", &wv)) {
            ck_assert_msg(st == MR_OK, "%s (%s): %s", what, src, err.msg);
            assert_same(what, out, out_len, json_object_get_string(wv),
                        (size_t)json_object_get_string_len(wv));
        } else {
            json_object_object_get_ex(w, "err", &wv);
            ck_assert_msg(st != MR_OK, "%s (%s): Jinja2 failed (%s) but we rendered '%s'", what,
                          src, json_object_get_string(wv), out);
        }
        free(out);
    }
    json_object_put(cases);
    json_object_put(want);
}
END_TEST

static mr_status parse_only(const char *src, mr_error *err)
{
    mr_chat_template *t = NULL;
    mr_status st = mr_chat_template_new(src, strlen(src), &t, err);
    mr_chat_template_free(t);
    return st;
}

START_TEST(test_malformed)
{
    static const char *const bad[] = {
        "{% if x %}never closed", "{{ x ", "{% for %}{% endfor %}", "{% endfor %}",
        "{{ 'abc }}", "{% set %}", "{{ a[ }}", "{{ a | }}", "{% macro %}{% endmacro %}",
        "{# unterminated", "{{ ) }}", "{% unknown %}", "{% if %}{% endif %}",
        "{% for x in y %}{% endif %}", "{{ a.  }}", "{{ 1 + }}", "{% else %}",
        "{{ {'a' 1} }}", "{{ f(a=) }}", "{{ '\\x4' }}", "{{ x is }}", "{% include 'x' %}",
        "{{ 99999999999999999999 }}", "{{ a ? b }}", "{% set x = 1 %}{% endset %}",
        "{% break %}", "{% for x in y %}{% macro m() %}{% continue %}{% endmacro %}{% endfor %}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mr_error err;
        mr_status st = parse_only(bad[i], &err);
        ck_assert_msg(st == MR_EFORMAT, "'%s' parsed (status %d)", bad[i], st);
        ck_assert_msg(strstr(err.msg, "chat template") && strstr(err.msg, "line "),
                      "'%s': message '%s' names no line", bad[i], err.msg);
    }
    /* the line and column of the offending token */
    mr_error err;
    ck_assert_int_eq(parse_only("line one\n{{ ok }}\n  {{ 1 + }}", &err), MR_EFORMAT);
    ck_assert_msg(strstr(err.msg, "line 3, column 10"), "%s", err.msg);
}
END_TEST

static mr_status render_str(const char *src, const char *vars_json, char **out, mr_error *err)
{
    mr_chat_template *t;
    mr_status st = mr_chat_template_new(src, strlen(src), &t, err);
    if (st != MR_OK)
        return st;
    mr_chat_render_opts o;
    mr_chat_render_opts_default(&o);
    o.now = NOW;
    json_object *vars = vars_json ? json_tokener_parse(vars_json) : NULL;
    o.extra = vars;
    json_object *msgs = json_object_new_array();
    size_t len;
    st = mr_chat_template_render(t, msgs, &o, out, &len, err);
    json_object_put(msgs);
    json_object_put(vars);
    mr_chat_template_free(t);
    return st;
}

START_TEST(test_limits)
{
    static const char *const bad[] = {
        "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",           /* recursion */
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "{% set s = 'xxxxxxxxxxxxxxxx' %}{% for i in range(100000) %}{{ s * 100000 }}{% endfor %}",
        "{{ 'x' * 9223372036854775807 }}", "{{ [1] * 9223372036854775807 }}",
        "{{ 9223372036854775807 + 1 }}", "{{ -9223372036854775807 - 2 }}",
        "{{ 2 ** 64 }}", "{{ 1 // 0 }}", "{{ 1 % 0 }}", "{{ x.y }}", "{{ x() }}",
        "{{ raise_exception('stop here') }}", "{% set ns = 1 %}{% set ns.a = 2 %}",
        "{{ 'a'|unknownfilter }}", "{{ 1 is unknowntest }}", "{{ ''.split('') }}",
        "{{ range(0, 10, 0) }}", "{{ 'a'[::0] }}", "{{ {'a':1} < {'b':2} }}",
        "{% for a, b in [1, 2] %}{% endfor %}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *out = NULL;
        mr_error err;
        mr_status st = render_str(bad[i], NULL, &out, &err);
        ck_assert_msg(st != MR_OK, "'%s' rendered '%.40s'", bad[i], out ? out : "");
        ck_assert_msg(out == NULL, "'%s': output left on failure", bad[i]);
    }
    char *out;
    mr_error err;
    ck_assert_int_eq(render_str("a\n{{ raise_exception('stop here') }}", NULL, &out, &err), MR_EINVAL);
    ck_assert_msg(strstr(err.msg, "stop here") && strstr(err.msg, "line 2"), "%s", err.msg);
}
END_TEST

START_TEST(test_builtins_and_families)
{
    const char *const *names = mr_chat_template_builtin_names();
    int n = 0;
    for (; names[n]; n++) {
        const char *src = mr_chat_template_builtin(names[n]);
        ck_assert_msg(src != NULL, "%s", names[n]);
        mr_error err;
        ck_assert_msg(parse_only(src, &err) == MR_OK, "%s: %s", names[n], err.msg);
        /* each built-in is the copy under tests/data/chat/templates */
        size_t len;
        const char *file = !strcmp(names[n], "mistral") ? "mixtral" :
                           !strcmp(names[n], "deepseek3") ? "deepseek-v3" : names[n];
        char *copy = tu_read_file(tu_path("%s/templates/%s.jinja", chat_dir(), file), &len);
        ck_assert_msg(copy != NULL, "%s", file);
        assert_same(names[n], src, strlen(src), copy, len);
        free(copy);
        const char *fam = mr_chat_template_family(src);
        ck_assert_msg(fam != NULL, "%s: no family", names[n]);
        ck_assert_ptr_nonnull(mr_chat_template_stops(fam)[0]);
    }
    ck_assert_int_ge(n, 7);
    ck_assert_ptr_null(mr_chat_template_builtin("no-such-template"));
    ck_assert_str_eq(mr_chat_template_family(mr_chat_template_builtin("qwen3")), "chatml");
    ck_assert_str_eq(mr_chat_template_family(mr_chat_template_builtin("gpt-oss")), "gpt-oss");
    ck_assert_str_eq(mr_chat_template_family(mr_chat_template_builtin("llama4")), "llama4");
    ck_assert_str_eq(mr_chat_template_family(mr_chat_template_builtin("mistral")), "mistral");
    ck_assert_ptr_null(mr_chat_template_family("{{ messages }}"));
    ck_assert_str_eq(MR_CHAT_TEMPLATE_DEFAULT, "chatml");
}
END_TEST

/* The fixtures' GGUFs carry the same template as their Hugging Face
 * tokenizer_config.json (the copies under templates/): what chat and serve
 * read from tokenizer.chat_template is what Jinja2 was checked on. */
START_TEST(test_gguf_templates)
{
    const char *data = tu_testdata();
    if (!data) {
        printf("gguf templates: skipped, no shared test data\n");
        return;
    }
    static const char *const cases[][3] = {
        {"tinydeepseek3/gguf/tinydeepseek3-q8_0.gguf", "deepseek-v3", "deepseek3"},
        {"tinyllama4/gguf/tinyllama4-q8_0.gguf", "llama4", "llama4"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/models/%s", data, cases[i][0]);
        mr_gguf *g;
        mr_error err;
        ck_assert_msg(mr_gguf_open(path, &g, &err) == MR_OK, "%s", err.msg);
        mr_str s;
        ck_assert_msg(mr_gguf_get_str(g, "tokenizer.chat_template", &s, &err) == MR_OK, "%s", err.msg);
        size_t len;
        char *copy = tu_read_file(tu_path("%s/templates/%s.jinja", chat_dir(), cases[i][1]), &len);
        ck_assert_ptr_nonnull(copy);
        assert_same(cases[i][0], s.ptr, (size_t)s.len, copy, len);
        ck_assert_str_eq(mr_chat_template_family(copy), cases[i][2]);
        free(copy);
        mr_gguf_close(g);
    }
}
END_TEST

/* Inputs found by fuzzing (tests/fuzz_chat_template.c) stay fixed: each
 * must parse or fail cleanly, and render or fail cleanly. */
START_TEST(test_corpus)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/tests/corpus/chat_template", tu_srcdir());
    DIR *d = opendir(dir);
    ck_assert_msg(d != NULL, "%s missing", dir);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        size_t len;
        char *src = tu_read_file(tu_path("%s/%s", dir, e->d_name), &len);
        ck_assert_ptr_nonnull(src);
        mr_chat_template *t;
        mr_error err;
        if (mr_chat_template_new(src, len, &t, &err) == MR_OK) {
            json_object *msgs = json_tokener_parse(
                "[{\"role\":\"system\",\"content\":\"s\"},{\"role\":\"user\",\"content\":\"u\"}]");
            char *out = NULL;
            size_t out_len;
            mr_chat_render_opts o;
            mr_chat_render_opts_default(&o);
            o.now = NOW;
            if (mr_chat_template_render(t, msgs, &o, &out, &out_len, &err) == MR_OK)
                ck_assert_uint_eq(strlen(out), out_len == strlen(out) ? out_len : strlen(out));
            free(out);
            json_object_put(msgs);
            mr_chat_template_free(t);
        }
        free(src);
        n++;
    }
    closedir(d);
    ck_assert_int_gt(n, 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("chat_template");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_real_templates);
    tcase_add_test(tc, test_snippets);
    tcase_add_test(tc, test_malformed);
    tcase_add_test(tc, test_limits);
    tcase_add_test(tc, test_builtins_and_families);
    tcase_add_test(tc, test_gguf_templates);
    tcase_add_test(tc, test_corpus);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
