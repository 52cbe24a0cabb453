/* chat_template_builtins.c - what chat templates call: Jinja2's filters and
 * tests, the Python str and dict methods templates use, and the globals
 * (range, namespace, dict, raise_exception, strftime_now).  Lists and dicts
 * stay immutable, as in Jinja2's ImmutableSandboxedEnvironment. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat_template_eval.h"

#define MAX_RANGE 100000 /* jinja2.sandbox.MAX_RANGE */

enum {
    F_RANGE, F_NAMESPACE, F_DICT, F_RAISE, F_STRFTIME,
    /* str methods */
    M_STRIP, M_LSTRIP, M_RSTRIP, M_SPLIT, M_RSPLIT, M_STARTSWITH, M_ENDSWITH, M_UPPER, M_LOWER,
    M_TITLE, M_CAPITALIZE, M_REPLACE, M_FIND, M_COUNT, M_JOIN, M_ISDIGIT, M_ISSPACE, M_FORMAT,
    /* dict methods */
    M_ITEMS, M_KEYS, M_VALUES, M_GET,
    F_COUNT
};

static const struct {
    const char *name;
    int id;
} str_methods[] = {
    {"strip", M_STRIP},         {"lstrip", M_LSTRIP},     {"rstrip", M_RSTRIP},
    {"split", M_SPLIT},         {"rsplit", M_RSPLIT},     {"startswith", M_STARTSWITH},
    {"endswith", M_ENDSWITH},   {"upper", M_UPPER},       {"lower", M_LOWER},
    {"title", M_TITLE},         {"capitalize", M_CAPITALIZE}, {"replace", M_REPLACE},
    {"find", M_FIND},           {"count", M_COUNT},       {"join", M_JOIN},
    {"isdigit", M_ISDIGIT},     {"isspace", M_ISSPACE},   {"format", M_FORMAT},
}, dict_methods[] = {
    {"items", M_ITEMS}, {"keys", M_KEYS}, {"values", M_VALUES}, {"get", M_GET},
};

int ct_method_id(const ct_value *obj, ct_str name)
{
    if (obj->t == CT_STR) {
        for (size_t i = 0; i < sizeof str_methods / sizeof str_methods[0]; i++)
            if (ct_str_eq(name, str_methods[i].name))
                return str_methods[i].id;
    } else if (obj->t == CT_DICT) {
        for (size_t i = 0; i < sizeof dict_methods / sizeof dict_methods[0]; i++)
            if (ct_str_eq(name, dict_methods[i].name))
                return dict_methods[i].id;
    }
    return -1;
}

ct_value ct_bind_method(ct_ev *ev, const ct_node *at, ct_value obj, int id)
{
    ct_value *self = ct_alloc(ev->a, sizeof *self);
    if (!self) {
        ct_oom(ev, at);
        return ct_none();
    }
    *self = obj;
    ct_value f = {.t = CT_FUNC};
    f.u.fn.id = id;
    f.u.fn.self = self;
    return f;
}

int ct_add_globals(ct_ev *ev, ct_scope *g)
{
    static const struct {
        const char *name;
        int id;
    } fns[] = {{"range", F_RANGE},           {"namespace", F_NAMESPACE}, {"dict", F_DICT},
               {"raise_exception", F_RAISE}, {"strftime_now", F_STRFTIME}};
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
        ct_value f = {.t = CT_FUNC};
        f.u.fn.id = fns[i].id;
        if (ct_dict_set(ev->a, g->vars, (ct_str){fns[i].name, strlen(fns[i].name)}, f)) {
            ct_oom(ev, NULL);
            return -1;
        }
    }
    return 0;
}

/* Positional argument pos or keyword name, or NULL. */
static const ct_value *arg(const ct_value *args, size_t nargs, const ct_str *kwn,
                           const ct_value *kwv, size_t nkw, size_t pos, const char *name)
{
    for (size_t k = 0; k < nkw; k++)
        if (name && ct_str_eq(kwn[k], name))
            return &kwv[k];
    return pos < nargs ? &args[pos] : NULL;
}

static ct_value mk_list(ct_ev *ev, const ct_node *at, size_t n, ct_list **out)
{
    ct_value r = {.t = CT_LIST};
    r.u.l = ct_list_new(ev->a, n);
    if (!r.u.l) {
        ct_oom(ev, at);
        *out = NULL;
        return ct_none();
    }
    *out = r.u.l;
    return r;
}

static int need_str(ct_ev *ev, const ct_node *at, const ct_value *v, const char *what)
{
    if (v && v->t == CT_STR)
        return 0;
    ct_fail(ev, at, "%s must be a string, not %s", what, v ? ct_type_name(v) : "nothing");
    return -1;
}

/* ---------------------------------------------------------------- strings */
/* Decode one code point at s[*i] (an invalid byte is itself). */
static uint32_t next_cp(ct_str s, size_t *i)
{
    unsigned char c = (unsigned char)s.s[*i];
    size_t step = ct_utf8_offset(ct_strv(s.s + *i, s.n - *i).u.s, 1);
    uint32_t cp = c;
    if (step == 2)
        cp = ((uint32_t)(c & 0x1F) << 6) | (s.s[*i + 1] & 0x3F);
    else if (step == 3)
        cp = ((uint32_t)(c & 0x0F) << 12) | ((uint32_t)(s.s[*i + 1] & 0x3F) << 6) |
             (s.s[*i + 2] & 0x3F);
    else if (step == 4)
        cp = ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(s.s[*i + 1] & 0x3F) << 12) |
             ((uint32_t)(s.s[*i + 2] & 0x3F) << 6) | (s.s[*i + 3] & 0x3F);
    *i += step;
    return cp;
}

/* Python's str.isspace() for one code point. */
static int py_space(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

static int in_set(uint32_t c, const ct_str *chars)
{
    if (!chars)
        return py_space(c);
    for (size_t i = 0; i < chars->n;)
        if (next_cp(*chars, &i) == c)
            return 1;
    return 0;
}

static ct_str ct_strip(ct_str s, const ct_str *chars, int left, int right)
{
    size_t a = 0, b = s.n;
    if (left)
        while (a < b) {
            size_t i = a;
            uint32_t c = next_cp(s, &i);
            if (!in_set(c, chars))
                break;
            a = i;
        }
    if (right)
        while (b > a) {
            size_t st = b - 1;
            while (st > a && ((unsigned char)s.s[st] >> 6) == 2 && b - st < 4)
                st--;
            size_t i = st;
            uint32_t c = next_cp(s, &i);
            if (i != b) { /* not a whole sequence: step one byte */
                st = b - 1;
                i = st;
                c = next_cp(s, &i);
            }
            if (!in_set(c, chars))
                break;
            b = st;
        }
    return (ct_str){s.s + a, b - a};
}

static ct_value str_split(ct_ev *ev, const ct_node *at, ct_str s, const ct_value *sep,
                          int64_t maxsplit, int from_right)
{
    ct_list tmp = {0};
    size_t cap = 0;
    ct_value *v = NULL;
#define PUSH(str)                                                                          \
    do {                                                                                   \
        if (tmp.n == cap) {                                                                \
            size_t nc = cap ? cap * 2 : 8;                                                 \
            ct_value *nv = ct_alloc(ev->a, nc * sizeof *nv);                               \
            if (!nv) {                                                                     \
                ct_oom(ev, at);                                                            \
                return ct_none();                                                          \
            }                                                                              \
            if (tmp.n)                                                                     \
                memcpy(nv, v, tmp.n * sizeof *nv);                                         \
            v = nv;                                                                        \
            cap = nc;                                                                      \
        }                                                                                  \
        v[tmp.n++] = (str);                                                                \
    } while (0)
    if (!sep || sep->t == CT_NONE) {
        /* runs of whitespace, no empty parts */
        if (!from_right) {
            size_t i = 0;
            int64_t splits = 0;
            while (i < s.n) {
                size_t j = i;
                while (j < s.n) {
                    size_t k = j;
                    if (!py_space(next_cp(s, &k)))
                        break;
                    j = k;
                }
                i = j;
                if (i >= s.n)
                    break;
                if (maxsplit >= 0 && splits >= maxsplit) {
                    PUSH(ct_strv(s.s + i, s.n - i));
                    break;
                }
                j = i;
                while (j < s.n) {
                    size_t k = j;
                    if (py_space(next_cp(s, &k)))
                        break;
                    j = k;
                }
                PUSH(ct_strv(s.s + i, j - i));
                splits++;
                i = j;
            }
        } else {
            /* rsplit() without a separator: split all, then rejoin the head */
            ct_value all = str_split(ev, at, s, NULL, -1, 0);
            if (ev->failed)
                return all;
            size_t n = all.u.l->n;
            if (maxsplit < 0 || (size_t)maxsplit + 1 >= n)
                return all;
            ct_value last_head = all.u.l->v[n - (size_t)maxsplit - 1];
            ct_str head = {s.s, (size_t)(last_head.u.s.s + last_head.u.s.n - s.s)};
            PUSH(ct_strv(head.s, head.n));
            for (size_t i = n - (size_t)maxsplit; i < n; i++)
                PUSH(all.u.l->v[i]);
        }
    } else {
        if (need_str(ev, at, sep, "separator"))
            return ct_none();
        ct_str p = sep->u.s;
        if (!p.n) {
            ct_fail(ev, at, "empty separator");
            return ct_none();
        }
        if (!from_right) {
            size_t i = 0;
            int64_t splits = 0;
            while (1) {
                const char *hit = (maxsplit < 0 || splits < maxsplit) && s.n - i >= p.n
                                      ? memmem(s.s + i, s.n - i, p.s, p.n)
                                      : NULL;
                if (!hit) {
                    PUSH(ct_strv(s.s + i, s.n - i));
                    break;
                }
                PUSH(ct_strv(s.s + i, (size_t)(hit - (s.s + i))));
                i = (size_t)(hit - s.s) + p.n;
                splits++;
            }
        } else {
            /* collect from the right, then reverse */
            size_t end = s.n;
            int64_t splits = 0;
            while (1) {
                const char *hit = NULL;
                if ((maxsplit < 0 || splits < maxsplit) && end >= p.n)
                    for (size_t k = end - p.n + 1; k-- > 0;)
                        if (!memcmp(s.s + k, p.s, p.n)) {
                            hit = s.s + k;
                            break;
                        }
                if (!hit) {
                    PUSH(ct_strv(s.s, end));
                    break;
                }
                PUSH(ct_strv(hit + p.n, end - (size_t)(hit - s.s) - p.n));
                end = (size_t)(hit - s.s);
                splits++;
            }
            for (size_t a = 0, b = tmp.n ? tmp.n - 1 : 0; a < b; a++, b--) {
                ct_value t = v[a];
                v[a] = v[b];
                v[b] = t;
            }
        }
    }
#undef PUSH
    ct_list *l;
    ct_value r = mk_list(ev, at, tmp.n, &l);
    if (l && tmp.n)
        memcpy(l->v, v, tmp.n * sizeof *v);
    return r;
}

static ct_value str_map(ct_ev *ev, const ct_node *at, ct_str s, int mode)
{
    /* mode 0 upper, 1 lower, 2 title, 3 capitalize (ASCII letters) */
    char *o = ct_alloc(ev->a, s.n + 1);
    if (!o) {
        ct_oom(ev, at);
        return ct_none();
    }
    int prev_alpha = 0;
    for (size_t i = 0; i < s.n; i++) {
        char c = s.s[i];
        int up = mode == 0 || (mode == 2 && !prev_alpha) || (mode == 3 && i == 0);
        if (up && c >= 'a' && c <= 'z')
            c = (char)(c - 32);
        else if (!up && c >= 'A' && c <= 'Z')
            c = (char)(c + 32);
        o[i] = c;
        prev_alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                     ((unsigned char)c >= 0x80 && mode == 2);
    }
    return ct_strv(o, s.n);
}

static ct_value str_replace(ct_ev *ev, const ct_node *at, ct_str s, ct_str old, ct_str rep,
                            int64_t count)
{
    ct_buf b = {.limit = ev->limit};
    size_t i = 0;
    int64_t done = 0;
    if (!old.n) {
        /* Python inserts rep before every character and at the end */
        size_t k = 0;
        while ((count < 0 || done < count) && k <= s.n) {
            ct_buf_put(&b, rep.s, rep.n);
            done++;
            if (k == s.n) {
                k++;
                break;
            }
            size_t j = k;
            next_cp(s, &j);
            ct_buf_put(&b, s.s + k, j - k);
            k = j;
        }
        if (k <= s.n)
            ct_buf_put(&b, s.s + k, s.n - k);
    } else {
        while (i < s.n) {
            const char *hit = (count < 0 || done < count) && s.n - i >= old.n
                                  ? memmem(s.s + i, s.n - i, old.s, old.n)
                                  : NULL;
            if (!hit)
                break;
            ct_buf_put(&b, s.s + i, (size_t)(hit - (s.s + i)));
            ct_buf_put(&b, rep.s, rep.n);
            i = (size_t)(hit - s.s) + old.n;
            done++;
        }
        ct_buf_put(&b, s.s + i, s.n - i);
    }
    if (b.over) {
        free(b.p);
        ct_oom(ev, at);
        return ct_none();
    }
    char *o = ct_strdup(ev->a, b.p ? b.p : "", b.n);
    size_t n = b.n;
    free(b.p);
    if (!o) {
        ct_oom(ev, at);
        return ct_none();
    }
    return ct_strv(o, n);
}

static int affix(ct_str s, ct_str p, int end)
{
    if (p.n > s.n)
        return 0;
    return !memcmp(end ? s.s + s.n - p.n : s.s, p.s, p.n);
}

static ct_value join_values(ct_ev *ev, const ct_node *at, ct_value seq, ct_str sep,
                            const ct_value *attribute)
{
    ct_value items = ct_iterable(ev, at, seq);
    if (ev->failed)
        return ct_none();
    ct_buf b = {.limit = ev->limit};
    for (size_t i = 0; i < items.u.l->n && !ev->failed; i++) {
        if (i)
            ct_buf_put(&b, sep.s, sep.n);
        ct_value v = items.u.l->v[i];
        if (attribute)
            v = ct_getitem(ev, at, v, *attribute);
        if (!ev->failed && ct_print_str(&b, &v))
            break;
    }
    if (b.over && !ev->failed)
        ct_oom(ev, at);
    if (ev->failed) {
        free(b.p);
        return ct_none();
    }
    char *o = ct_strdup(ev->a, b.p ? b.p : "", b.n);
    size_t n = b.n;
    free(b.p);
    if (!o) {
        ct_oom(ev, at);
        return ct_none();
    }
    return ct_strv(o, n);
}

static int64_t cp_index(ct_str s, const char *at)
{
    return (int64_t)ct_utf8_len((ct_str){s.s, (size_t)(at - s.s)});
}

/* ---------------------------------------------------------------- calls */
ct_value ct_call_builtin(ct_ev *ev, const ct_node *at, int id, const ct_value *self,
                         const ct_value *args, size_t nargs, const ct_str *kwn,
                         const ct_value *kwv, size_t nkw)
{
    const ct_value *a0 = arg(args, nargs, kwn, kwv, nkw, 0, NULL);
    const ct_value *a1 = arg(args, nargs, kwn, kwv, nkw, 1, NULL);
    ct_list *l;
    switch (id) {
    case F_RANGE: {
        int64_t start = 0, stop, step = 1;
        for (size_t i = 0; i < nargs; i++)
            if (args[i].t != CT_INT) {
                ct_fail(ev, at, "range() arguments must be integers");
                return ct_none();
            }
        if (nargs == 1)
            stop = args[0].u.i;
        else if (nargs == 2 || nargs == 3) {
            start = args[0].u.i;
            stop = args[1].u.i;
            if (nargs == 3)
                step = args[2].u.i;
        } else {
            ct_fail(ev, at, "range() takes 1 to 3 arguments");
            return ct_none();
        }
        if (step == 0) {
            ct_fail(ev, at, "range() step must not be zero");
            return ct_none();
        }
        double cnt = step > 0 ? ceil(((double)stop - (double)start) / (double)step)
                              : ceil(((double)start - (double)stop) / (double)-step);
        if (cnt < 0)
            cnt = 0;
        if (cnt > MAX_RANGE) {
            ct_fail(ev, at, "range too big, the limit is %d", MAX_RANGE);
            return ct_none();
        }
        ct_value r = mk_list(ev, at, (size_t)cnt, &l);
        if (l)
            for (size_t i = 0; i < (size_t)cnt; i++)
                l->v[i] = ct_int(start + (int64_t)i * step);
        return r;
    }
    case F_NAMESPACE:
    case F_DICT: {
        ct_dict *d = ct_dict_new(ev->a, nkw + 4);
        if (!d) {
            ct_oom(ev, at);
            return ct_none();
        }
        if (nargs >= 1 && args[0].t == CT_DICT)
            for (size_t i = 0; i < args[0].u.d->n; i++)
                ct_dict_set(ev->a, d, args[0].u.d->k[i], args[0].u.d->v[i]);
        else if (nargs >= 1) {
            ct_fail(ev, at, "%s() takes keyword arguments or one dict",
                    id == F_DICT ? "dict" : "namespace");
            return ct_none();
        }
        for (size_t k = 0; k < nkw; k++)
            if (ct_dict_set(ev->a, d, kwn[k], kwv[k])) {
                ct_oom(ev, at);
                return ct_none();
            }
        ct_value r = {.t = id == F_DICT ? CT_DICT : CT_NS};
        r.u.d = d;
        return r;
    }
    case F_RAISE: {
        ct_value m = a0 ? ct_to_str(ev, at, a0) : ct_cstr("");
        if (!ev->failed)
            ct_fail(ev, at, "raise_exception: %.*s", (int)(m.u.s.n > 300 ? 300 : m.u.s.n), m.u.s.s);
        return ct_none();
    }
    case F_STRFTIME: {
        if (need_str(ev, at, a0, "strftime_now() format"))
            return ct_none();
        char fmt[128], buf[256];
        if (a0->u.s.n >= sizeof fmt) {
            ct_fail(ev, at, "strftime_now() format too long");
            return ct_none();
        }
        memcpy(fmt, a0->u.s.s, a0->u.s.n);
        fmt[a0->u.s.n] = 0;
        time_t t = (time_t)ev->now;
        struct tm tm;
        gmtime_r(&t, &tm);
        size_t n = strftime(buf, sizeof buf, fmt, &tm);
        char *o = ct_strdup(ev->a, buf, n);
        if (!o) {
            ct_oom(ev, at);
            return ct_none();
        }
        return ct_strv(o, n);
    }
    default: break;
    }
    if (!self) {
        ct_fail(ev, at, "bad builtin call");
        return ct_none();
    }
    if (self->t == CT_DICT) {
        const ct_dict *d = self->u.d;
        if (id == M_GET) {
            if (need_str(ev, at, a0, "dict.get() key"))
                return ct_none();
            ct_value *v = ct_dict_get(d, a0->u.s.s, a0->u.s.n);
            return v ? *v : a1 ? *a1 : ct_none();
        }
        ct_value r = mk_list(ev, at, d->n, &l);
        if (!l)
            return r;
        for (size_t i = 0; i < d->n; i++) {
            ct_value k = ct_strv(d->k[i].s, d->k[i].n);
            if (id == M_KEYS)
                l->v[i] = k;
            else if (id == M_VALUES)
                l->v[i] = d->v[i];
            else {
                ct_list *pair = ct_list_new(ev->a, 2);
                if (!pair) {
                    ct_oom(ev, at);
                    return ct_none();
                }
                pair->v[0] = k;
                pair->v[1] = d->v[i];
                l->v[i] = (ct_value){.t = CT_LIST, .is_tuple = 1};
                l->v[i].u.l = pair;
            }
        }
        return r;
    }
    ct_str s = self->u.s;
    switch (id) {
    case M_STRIP:
    case M_LSTRIP:
    case M_RSTRIP: {
        const ct_str *chars = NULL;
        if (a0 && a0->t != CT_NONE) {
            if (need_str(ev, at, a0, "strip() argument"))
                return ct_none();
            chars = &a0->u.s;
        }
        ct_str r = ct_strip(s, chars, id != M_RSTRIP, id != M_LSTRIP);
        return ct_strv(r.s, r.n);
    }
    case M_SPLIT:
    case M_RSPLIT: {
        const ct_value *sep = arg(args, nargs, kwn, kwv, nkw, 0, "sep");
        const ct_value *ms = arg(args, nargs, kwn, kwv, nkw, 1, "maxsplit");
        int64_t maxsplit = ms && ms->t == CT_INT ? ms->u.i : -1;
        return str_split(ev, at, s, sep, maxsplit, id == M_RSPLIT);
    }
    case M_STARTSWITH:
    case M_ENDSWITH: {
        if (a0 && a0->t == CT_LIST) {
            for (size_t i = 0; i < a0->u.l->n; i++) {
                if (need_str(ev, at, &a0->u.l->v[i], "prefix"))
                    return ct_none();
                if (affix(s, a0->u.l->v[i].u.s, id == M_ENDSWITH))
                    return ct_bool(1);
            }
            return ct_bool(0);
        }
        if (need_str(ev, at, a0, id == M_STARTSWITH ? "startswith() argument" : "endswith() argument"))
            return ct_none();
        return ct_bool(affix(s, a0->u.s, id == M_ENDSWITH));
    }
    case M_UPPER: return str_map(ev, at, s, 0);
    case M_LOWER: return str_map(ev, at, s, 1);
    case M_TITLE: return str_map(ev, at, s, 2);
    case M_CAPITALIZE: return str_map(ev, at, s, 3);
    case M_REPLACE: {
        const ct_value *c = arg(args, nargs, kwn, kwv, nkw, 2, "count");
        if (need_str(ev, at, a0, "replace() old") || need_str(ev, at, a1, "replace() new"))
            return ct_none();
        return str_replace(ev, at, s, a0->u.s, a1->u.s, c && c->t == CT_INT ? c->u.i : -1);
    }
    case M_FIND:
    case M_COUNT: {
        if (need_str(ev, at, a0, "substring"))
            return ct_none();
        ct_str p = a0->u.s;
        if (id == M_FIND) {
            const char *h = p.n <= s.n ? memmem(s.s, s.n, p.s, p.n ? p.n : 0) : NULL;
            if (!p.n)
                return ct_int(0);
            return ct_int(h ? cp_index(s, h) : -1);
        }
        if (!p.n)
            return ct_int((int64_t)ct_utf8_len(s) + 1);
        int64_t cnt = 0;
        for (size_t i = 0; i + p.n <= s.n;) {
            const char *h = memmem(s.s + i, s.n - i, p.s, p.n);
            if (!h)
                break;
            cnt++;
            i = (size_t)(h - s.s) + p.n;
        }
        return ct_int(cnt);
    }
    case M_JOIN: {
        if (!a0) {
            ct_fail(ev, at, "join() takes one argument");
            return ct_none();
        }
        ct_value items = ct_iterable(ev, at, *a0);
        if (ev->failed)
            return ct_none();
        for (size_t i = 0; i < items.u.l->n; i++)
            if (need_str(ev, at, &items.u.l->v[i], "join() item"))
                return ct_none();
        return join_values(ev, at, items, s, NULL);
    }
    case M_FORMAT: {
        /* str.format: "{}" / "{0}" positional, "{name}" keyword, "{{" "}}"
         * literal braces; no format specs */
        ct_buf b = {.limit = ev->limit};
        size_t next = 0;
        for (size_t i = 0; i < s.n && !ev->failed; i++) {
            char c = s.s[i];
            if ((c == '{' || c == '}') && i + 1 < s.n && s.s[i + 1] == c) {
                ct_buf_putc(&b, c);
                i++;
                continue;
            }
            if (c == '}') {
                ct_fail(ev, at, "single '}' in a format string");
                break;
            }
            if (c != '{') {
                ct_buf_putc(&b, c);
                continue;
            }
            const char *end = memchr(s.s + i, '}', s.n - i);
            if (!end) {
                ct_fail(ev, at, "single '{' in a format string");
                break;
            }
            ct_str field = {s.s + i + 1, (size_t)(end - s.s) - i - 1};
            const ct_value *v = NULL;
            if (!field.n)
                v = next < nargs ? &args[next++] : NULL;
            else if (field.s[0] >= '0' && field.s[0] <= '9') {
                size_t k = 0;
                for (size_t d = 0; d < field.n && field.s[d] >= '0' && field.s[d] <= '9'; d++)
                    k = k * 10 + (size_t)(field.s[d] - '0');
                v = k < nargs ? &args[k] : NULL;
            } else
                for (size_t k = 0; k < nkw; k++)
                    if (kwn[k].n == field.n && !memcmp(kwn[k].s, field.s, field.n))
                        v = &kwv[k];
            if (!v) {
                ct_fail(ev, at, "format field '{%.*s}' has no argument", (int)(field.n > 40 ? 40 : field.n), field.s);
                break;
            }
            ct_print_str(&b, v);
            i = (size_t)(end - s.s);
        }
        if (ev->failed || b.over) {
            if (!ev->failed)
                ct_oom(ev, at);
            free(b.p);
            return ct_none();
        }
        char *o = ct_strdup(ev->a, b.p ? b.p : "", b.n);
        size_t len = b.n;
        free(b.p);
        if (!o) {
            ct_oom(ev, at);
            return ct_none();
        }
        return ct_strv(o, len);
    }
    case M_ISDIGIT:
    case M_ISSPACE: {
        if (!s.n)
            return ct_bool(0);
        for (size_t i = 0; i < s.n;) {
            uint32_t c = next_cp(s, &i);
            if (id == M_ISDIGIT ? !(c >= '0' && c <= '9') : !py_space(c))
                return ct_bool(0);
        }
        return ct_bool(1);
    }
    }
    ct_fail(ev, at, "bad method call");
    return ct_none();
}

/* ---------------------------------------------------------------- tests */
static int test_named(ct_ev *ev, const ct_node *at, ct_str name, const ct_value *v,
                      const ct_value *args, size_t nargs)
{
    const ct_value *a0 = nargs ? &args[0] : NULL;
#define IS(s) ct_str_eq(name, s)
    if (IS("defined"))
        return v->t != CT_UNDEF;
    if (IS("undefined"))
        return v->t == CT_UNDEF;
    if (IS("none"))
        return v->t == CT_NONE;
    if (IS("boolean"))
        return v->t == CT_BOOL;
    if (IS("true"))
        return v->t == CT_BOOL && v->u.b;
    if (IS("false"))
        return v->t == CT_BOOL && !v->u.b;
    if (IS("integer"))
        return v->t == CT_INT;
    if (IS("float"))
        return v->t == CT_FLOAT;
    if (IS("number"))
        return v->t == CT_INT || v->t == CT_FLOAT || v->t == CT_BOOL;
    if (IS("string"))
        return v->t == CT_STR;
    if (IS("mapping"))
        return v->t == CT_DICT;
    if (IS("iterable"))
        return v->t == CT_STR || v->t == CT_LIST || v->t == CT_DICT || v->t == CT_UNDEF;
    if (IS("sequence"))
        return v->t == CT_STR || v->t == CT_LIST || v->t == CT_DICT || v->t == CT_UNDEF;
    if (IS("callable"))
        return v->t == CT_FUNC || v->t == CT_MACRO;
    if (IS("lower") || IS("upper")) {
        if (v->t != CT_STR)
            return 0;
        int any = 0;
        for (size_t i = 0; i < v->u.s.n; i++) {
            char c = v->u.s.s[i];
            if (c >= 'a' && c <= 'z') {
                if (IS("upper"))
                    return 0;
                any = 1;
            } else if (c >= 'A' && c <= 'Z') {
                if (IS("lower"))
                    return 0;
                any = 1;
            }
        }
        return any;
    }
    if (IS("odd") || IS("even") || IS("divisibleby")) {
        if (v->t != CT_INT && v->t != CT_BOOL) {
            ct_fail(ev, at, "test '%.*s' needs an integer", (int)name.n, name.s);
            return -1;
        }
        int64_t x = v->t == CT_INT ? v->u.i : v->u.b;
        if (IS("odd"))
            return (x % 2) != 0;
        if (IS("even"))
            return (x % 2) == 0;
        if (!a0 || a0->t != CT_INT || a0->u.i == 0) {
            ct_fail(ev, at, "divisibleby needs a non-zero integer");
            return -1;
        }
        return x % a0->u.i == 0;
    }
    if (IS("escaped"))
        return 0;
    if (!a0) {
        ct_fail(ev, at, "unknown test '%.*s' or missing argument", (int)(name.n > 40 ? 40 : name.n), name.s);
        return -1;
    }
    if (IS("sameas")) {
        if (v->t != a0->t)
            return 0;
        if (v->t == CT_NONE || v->t == CT_UNDEF)
            return 1;
        if (v->t == CT_BOOL)
            return v->u.b == a0->u.b;
        return ct_equal(v, a0) && (v->t == CT_INT || v->t == CT_STR);
    }
    if (IS("eq") || IS("equalto") || IS("=="))
        return ct_equal(v, a0);
    if (IS("ne") || IS("!="))
        return !ct_equal(v, a0);
    if (IS("in"))
        return ct_contains(ev, at, v, a0);
    int c;
    if (IS("lt") || IS("lessthan") || IS("le") || IS("gt") || IS("greaterthan") || IS("ge")) {
        c = ct_compare(v, a0);
        if (c == -2) {
            ct_fail(ev, at, "cannot compare %s with %s", ct_type_name(v), ct_type_name(a0));
            return -1;
        }
        if (IS("lt") || IS("lessthan"))
            return c < 0;
        if (IS("le"))
            return c <= 0;
        if (IS("gt") || IS("greaterthan"))
            return c > 0;
        return c >= 0;
    }
#undef IS
    ct_fail(ev, at, "unknown test '%.*s'", (int)(name.n > 40 ? 40 : name.n), name.s);
    return -1;
}

int ct_apply_test_node(ct_ev *ev, const ct_node *n)
{
    ct_value v = ct_eval(ev, n->a);
    if (ev->failed)
        return -1;
    ct_value *args, *kwv;
    ct_str *kwn;
    size_t nargs, nkw;
    if (ct_eval_args(ev, n, &args, &nargs, &kwn, &kwv, &nkw, 0))
        return -1;
    int r = test_named(ev, n, n->name, &v, args, nargs);
    if (r < 0)
        return -1;
    return n->negate ? !r : r;
}

/* ---------------------------------------------------------------- filters */
static ct_value select_items(ct_ev *ev, const ct_node *at, ct_value seq, const ct_value *args,
                             size_t nargs, int by_attr, int reject)
{
    /* select(test, args...), selectattr(attr, test, args...); Jinja2 walks
     * only a truthy value (none selects nothing) */
    ct_list *l;
    if (!ct_truthy(&seq))
        return mk_list(ev, at, 0, &l);
    ct_value items = ct_iterable(ev, at, seq);
    if (ev->failed)
        return ct_none();
    size_t base = by_attr ? 1 : 0;
    if (by_attr && (nargs < 1 || args[0].t != CT_STR)) {
        ct_fail(ev, at, "selectattr/rejectattr need an attribute name");
        return ct_none();
    }
    if (nargs > base && args[base].t != CT_STR) {
        ct_fail(ev, at, "test name must be a string");
        return ct_none();
    }
    ct_value r = mk_list(ev, at, items.u.l->n, &l);
    if (!l)
        return r;
    size_t k = 0;
    for (size_t i = 0; i < items.u.l->n; i++) {
        ct_value v = items.u.l->v[i];
        if (by_attr) {
            /* dotted attribute paths: "a.b" */
            ct_str path = args[0].u.s;
            size_t s0 = 0;
            for (size_t j = 0; j <= path.n && !ev->failed; j++)
                if (j == path.n || path.s[j] == '.') {
                    v = ct_getitem(ev, at, v, ct_strv(path.s + s0, j - s0));
                    s0 = j + 1;
                    if (v.t == CT_UNDEF)
                        break;
                }
            if (ev->failed)
                return ct_none();
        }
        int t;
        if (nargs > base)
            t = test_named(ev, at, args[base].u.s, &v, args + base + 1, nargs - base - 1);
        else
            t = ct_truthy(&v);
        if (t < 0)
            return ct_none();
        if (t != reject)
            l->v[k++] = items.u.l->v[i];
    }
    l->n = k;
    return r;
}

static int sort_cmp(const ct_value *a, const ct_value *b, int case_sensitive)
{
    if (!case_sensitive && a->t == CT_STR && b->t == CT_STR) {
        size_t n = a->u.s.n < b->u.s.n ? a->u.s.n : b->u.s.n;
        for (size_t i = 0; i < n; i++) {
            int x = (unsigned char)a->u.s.s[i], y = (unsigned char)b->u.s.s[i];
            if (x >= 'A' && x <= 'Z')
                x += 32;
            if (y >= 'A' && y <= 'Z')
                y += 32;
            if (x != y)
                return x < y ? -1 : 1;
        }
        return (a->u.s.n > b->u.s.n) - (a->u.s.n < b->u.s.n);
    }
    return ct_compare(a, b);
}

static const ct_value *fa(const ct_value *args, size_t nargs, const ct_str *kwn,
                          const ct_value *kwv, size_t nkw, size_t pos, const char *name)
{
    return arg(args, nargs, kwn, kwv, nkw, pos, name);
}

ct_value ct_apply_filter(ct_ev *ev, const ct_node *n)
{
    ct_value *args, *kwv;
    ct_str *kwn;
    size_t nargs, nkw;
    ct_value v = ct_eval(ev, n->a);
    if (ev->failed)
        return ct_none();
    if (ct_eval_args(ev, n, &args, &nargs, &kwn, &kwv, &nkw, 1))
        return ct_none();
    args[0] = v;
    /* a1: the filter's first own argument */
    ct_str name = n->name;
    ct_list *l;
#define IS(s) ct_str_eq(name, s)
#define A(pos, kw) fa(args, nargs, kwn, kwv, nkw, (pos), (kw))
    if (IS("safe") || IS("e") || IS("escape") || IS("string")) {
        if (IS("e") || IS("escape")) {
            ct_value s = ct_to_str(ev, n, &v);
            if (ev->failed)
                return s;
            ct_buf b = {.limit = ev->limit};
            for (size_t i = 0; i < s.u.s.n; i++) {
                char c = s.u.s.s[i];
                const char *e = c == '&' ? "&amp;" : c == '<' ? "&lt;" : c == '>' ? "&gt;"
                                : c == '"' ? "&#34;" : c == '\'' ? "&#39;" : NULL;
                if (e)
                    ct_buf_put(&b, e, strlen(e));
                else
                    ct_buf_putc(&b, c);
            }
            char *o = ct_strdup(ev->a, b.p ? b.p : "", b.n);
            size_t len = b.n;
            free(b.p);
            if (!o) {
                ct_oom(ev, n);
                return ct_none();
            }
            return ct_strv(o, len);
        }
        return IS("safe") ? v : ct_to_str(ev, n, &v);
    }
    if (IS("tojson")) {
        const ct_value *ind = A(1, "indent"), *seps = A(99, "separators"),
                       *sk = A(99, "sort_keys"), *ea = A(99, "ensure_ascii");
        int indent = ind && ind->t == CT_INT ? (int)(ind->u.i < 0 ? 0 : ind->u.i > 64 ? 64 : ind->u.i) : -1;
        char isep[16] = {0}, ksep[16] = {0};
        const char *ip = NULL, *kp = NULL;
        if (seps && seps->t == CT_LIST && seps->u.l->n == 2 && seps->u.l->v[0].t == CT_STR &&
            seps->u.l->v[1].t == CT_STR && seps->u.l->v[0].u.s.n < 16 && seps->u.l->v[1].u.s.n < 16) {
            memcpy(isep, seps->u.l->v[0].u.s.s, seps->u.l->v[0].u.s.n);
            memcpy(ksep, seps->u.l->v[1].u.s.s, seps->u.l->v[1].u.s.n);
            ip = isep;
            kp = ksep;
        }
        ct_buf b = {.limit = ev->limit};
        if (ct_print_json(&b, &v, indent, ip, kp, sk && ct_truthy(sk), ea && ct_truthy(ea) ? -1 : 0)) {
            free(b.p);
            if (b.over)
                ct_oom(ev, n);
            else
                ct_fail(ev, n, "Object of type %s is not JSON serializable", ct_type_name(&v));
            return ct_none();
        }
        char *o = ct_strdup(ev->a, b.p ? b.p : "", b.n);
        size_t len = b.n;
        free(b.p);
        if (!o) {
            ct_oom(ev, n);
            return ct_none();
        }
        return ct_strv(o, len);
    }
    if (IS("trim")) {
        ct_value s = ct_to_str(ev, n, &v);
        const ct_value *chars = A(1, "chars");
        if (ev->failed)
            return s;
        if (chars && chars->t != CT_NONE && need_str(ev, n, chars, "trim() chars"))
            return ct_none();
        ct_str r = ct_strip(s.u.s, chars && chars->t == CT_STR ? &chars->u.s : NULL, 1, 1);
        return ct_strv(r.s, r.n);
    }
    if (IS("length") || IS("count")) {
        switch (v.t) {
        case CT_UNDEF: return ct_int(0);
        case CT_STR: return ct_int((int64_t)ct_utf8_len(v.u.s));
        case CT_LIST: return ct_int((int64_t)v.u.l->n);
        case CT_DICT:
        case CT_NS: return ct_int((int64_t)v.u.d->n);
        default:
            ct_fail(ev, n, "object of type '%s' has no len()", ct_type_name(&v));
            return ct_none();
        }
    }
    if (IS("default") || IS("d")) {
        const ct_value *dv = A(1, "default_value"), *boolean = A(2, "boolean");
        int use = v.t == CT_UNDEF || (boolean && ct_truthy(boolean) && !ct_truthy(&v));
        return use ? (dv ? *dv : ct_cstr("")) : v;
    }
    if (IS("upper") || IS("lower") || IS("title") || IS("capitalize")) {
        ct_value s = ct_to_str(ev, n, &v);
        if (ev->failed)
            return s;
        return str_map(ev, n, s.u.s, IS("upper") ? 0 : IS("lower") ? 1 : IS("title") ? 2 : 3);
    }
    if (IS("replace")) {
        ct_value s = ct_to_str(ev, n, &v);
        const ct_value *o = A(1, "old"), *r = A(2, "new"), *c = A(3, "count");
        if (ev->failed || need_str(ev, n, o, "replace() old") || need_str(ev, n, r, "replace() new"))
            return ct_none();
        return str_replace(ev, n, s.u.s, o->u.s, r->u.s, c && c->t == CT_INT ? c->u.i : -1);
    }
    if (IS("join")) {
        const ct_value *sep = A(1, "d"), *attr = A(2, "attribute");
        if (sep && need_str(ev, n, sep, "join() separator"))
            return ct_none();
        return join_values(ev, n, v, sep ? sep->u.s : (ct_str){"", 0}, attr);
    }
    if (IS("list")) {
        return ct_iterable(ev, n, v);
    }
    if (IS("first") || IS("last")) {
        ct_value items = ct_iterable(ev, n, v);
        if (ev->failed)
            return ct_none();
        if (!items.u.l->n)
            return ct_undef((ct_str){"", 0});
        return items.u.l->v[IS("first") ? 0 : items.u.l->n - 1];
    }
    if (IS("reverse")) {
        if (v.t == CT_STR) {
            ct_value items = ct_iterable(ev, n, v);
            if (ev->failed)
                return ct_none();
            for (size_t a = 0, b = items.u.l->n ? items.u.l->n - 1 : 0; a < b; a++, b--) {
                ct_value t = items.u.l->v[a];
                items.u.l->v[a] = items.u.l->v[b];
                items.u.l->v[b] = t;
            }
            return join_values(ev, n, items, (ct_str){"", 0}, NULL);
        }
        ct_value items = ct_iterable(ev, n, v);
        if (ev->failed)
            return ct_none();
        ct_value r = mk_list(ev, n, items.u.l->n, &l);
        if (l)
            for (size_t i = 0; i < items.u.l->n; i++)
                l->v[i] = items.u.l->v[items.u.l->n - 1 - i];
        return r;
    }
    if (IS("items")) {
        if (v.t == CT_UNDEF)
            return mk_list(ev, n, 0, &l);
        if (v.t != CT_DICT) {
            ct_fail(ev, n, "items filter needs a mapping");
            return ct_none();
        }
        return ct_call_builtin(ev, n, M_ITEMS, &v, NULL, 0, NULL, NULL, 0);
    }
    if (IS("select") || IS("reject") || IS("selectattr") || IS("rejectattr"))
        return select_items(ev, n, v, args + 1, nargs - 1, IS("selectattr") || IS("rejectattr"),
                            IS("reject") || IS("rejectattr"));
    if (IS("map")) {
        const ct_value *attr = A(99, "attribute"), *dflt = A(99, "default");
        if (!ct_truthy(&v))
            return mk_list(ev, n, 0, &l);
        ct_value items = ct_iterable(ev, n, v);
        if (ev->failed)
            return ct_none();
        if (!attr) {
            ct_fail(ev, n, "map() supports only attribute=");
            return ct_none();
        }
        ct_value r = mk_list(ev, n, items.u.l->n, &l);
        if (!l)
            return r;
        for (size_t i = 0; i < items.u.l->n && !ev->failed; i++) {
            l->v[i] = ct_getitem(ev, n, items.u.l->v[i], *attr);
            if (l->v[i].t == CT_UNDEF && dflt)
                l->v[i] = *dflt;
        }
        return r;
    }
    if (IS("unique")) {
        ct_value items = ct_iterable(ev, n, v);
        if (ev->failed)
            return ct_none();
        ct_value r = mk_list(ev, n, items.u.l->n, &l);
        if (!l)
            return r;
        size_t k = 0;
        for (size_t i = 0; i < items.u.l->n; i++) {
            int seen = 0;
            for (size_t j = 0; j < k && !seen; j++)
                seen = ct_equal(&l->v[j], &items.u.l->v[i]);
            if (!seen)
                l->v[k++] = items.u.l->v[i];
        }
        l->n = k;
        return r;
    }
    if (IS("sort")) {
        const ct_value *rev = A(1, "reverse"), *cs = A(2, "case_sensitive"), *attr = A(3, "attribute");
        ct_value items = ct_iterable(ev, n, v);
        if (ev->failed)
            return ct_none();
        ct_value r = mk_list(ev, n, items.u.l->n, &l);
        if (!l)
            return r;
        size_t cnt = items.u.l->n;
        ct_value *keys = ct_alloc(ev->a, (cnt + 1) * sizeof *keys);
        if (!keys) {
            ct_oom(ev, n);
            return ct_none();
        }
        for (size_t i = 0; i < cnt && !ev->failed; i++) {
            l->v[i] = items.u.l->v[i];
            keys[i] = attr ? ct_getitem(ev, n, l->v[i], *attr) : l->v[i];
        }
        int desc = rev && ct_truthy(rev), sens = cs && ct_truthy(cs);
        /* stable insertion sort (Python's sort is stable) */
        for (size_t i = 1; i < cnt && !ev->failed; i++) {
            ct_value kv = keys[i], iv = l->v[i];
            size_t j = i;
            while (j > 0) {
                int c = sort_cmp(&keys[j - 1], &kv, sens);
                if (c == -2) {
                    ct_fail(ev, n, "cannot sort %s and %s", ct_type_name(&keys[j - 1]), ct_type_name(&kv));
                    return ct_none();
                }
                if (desc ? c >= 0 : c <= 0)
                    break;
                keys[j] = keys[j - 1];
                l->v[j] = l->v[j - 1];
                j--;
            }
            keys[j] = kv;
            l->v[j] = iv;
        }
        return r;
    }
    if (IS("int") || IS("float") || IS("abs") || IS("round")) {
        if (IS("int") || IS("float")) {
            const ct_value *dflt = A(1, "default");
            double d = 0;
            int ok = 1;
            if (v.t == CT_INT || v.t == CT_BOOL)
                d = (double)(v.t == CT_INT ? v.u.i : v.u.b);
            else if (v.t == CT_FLOAT)
                d = v.u.f;
            else if (v.t == CT_STR) {
                char tmp[64];
                size_t k = v.u.s.n < 63 ? v.u.s.n : 63;
                memcpy(tmp, v.u.s.s, k);
                tmp[k] = 0;
                char *e;
                d = strtod(tmp, &e);
                ok = e != tmp && *e == 0;
            } else
                ok = 0;
            if (IS("int")) {
                if (!ok || !(d > -9.2e18 && d < 9.2e18))
                    return dflt ? *dflt : ct_int(0);
                if (v.t == CT_INT)
                    return v;
                return ct_int((int64_t)d);
            }
            if (!ok)
                return dflt ? *dflt : ct_float(0.0);
            return ct_float(d);
        }
        if (v.t == CT_INT)
            return IS("abs") && v.u.i < 0 && v.u.i != INT64_MIN ? ct_int(-v.u.i) : (IS("round") ? ct_float((double)v.u.i) : v);
        if (v.t == CT_BOOL)
            return ct_int(v.u.b);
        if (v.t == CT_FLOAT) {
            if (IS("abs"))
                return ct_float(fabs(v.u.f));
            const ct_value *prec = A(1, "precision");
            int64_t p = prec && prec->t == CT_INT ? prec->u.i : 0;
            if (p < 0 || p > 15)
                p = 0;
            double m = pow(10, (double)p);
            return ct_float(nearbyint(v.u.f * m) / m);
        }
        ct_fail(ev, n, "%.*s filter needs a number", (int)name.n, name.s);
        return ct_none();
    }
    if (IS("sum") || IS("max") || IS("min")) {
        ct_value items = ct_iterable(ev, n, v);
        if (ev->failed)
            return ct_none();
        if (IS("sum")) {
            ct_value acc = ct_int(0);
            for (size_t i = 0; i < items.u.l->n && !ev->failed; i++) {
                ct_value x = items.u.l->v[i];
                if (x.t == CT_FLOAT || acc.t == CT_FLOAT) {
                    double a = acc.t == CT_FLOAT ? acc.u.f : (double)acc.u.i;
                    double b = x.t == CT_FLOAT ? x.u.f : x.t == CT_INT ? (double)x.u.i : x.t == CT_BOOL ? x.u.b : NAN;
                    acc = ct_float(a + b);
                } else if (x.t == CT_INT || x.t == CT_BOOL)
                    acc = ct_int(acc.u.i + (x.t == CT_INT ? x.u.i : x.u.b));
                else
                    ct_fail(ev, n, "sum of non-numbers");
            }
            return acc;
        }
        if (!items.u.l->n)
            return ct_undef((ct_str){"", 0});
        ct_value best = items.u.l->v[0];
        for (size_t i = 1; i < items.u.l->n; i++) {
            int c = sort_cmp(&items.u.l->v[i], &best, 0);
            if (c == -2) {
                ct_fail(ev, n, "cannot compare items");
                return ct_none();
            }
            if (IS("max") ? c > 0 : c < 0)
                best = items.u.l->v[i];
        }
        return best;
    }
    if (IS("indent")) {
        const ct_value *w = A(1, "width"), *first = A(2, "first"), *blank = A(3, "blank");
        ct_value s = ct_to_str(ev, n, &v);
        if (ev->failed)
            return s;
        ct_str ind = {"    ", 4};
        char *spaces = NULL;
        if (w && w->t == CT_STR)
            ind = w->u.s;
        else if (w && w->t == CT_INT) {
            int64_t k = w->u.i < 0 ? 0 : w->u.i > 256 ? 256 : w->u.i;
            spaces = ct_alloc(ev->a, (size_t)k + 1);
            if (!spaces) {
                ct_oom(ev, n);
                return ct_none();
            }
            memset(spaces, ' ', (size_t)k);
            ind = (ct_str){spaces, (size_t)k};
        }
        ct_buf b = {.limit = ev->limit};
        if (first && ct_truthy(first))
            ct_buf_put(&b, ind.s, ind.n);
        size_t i = 0, line = 0;
        while (i <= s.u.s.n) {
            const char *nl = i < s.u.s.n ? memchr(s.u.s.s + i, '\n', s.u.s.n - i) : NULL;
            size_t end = nl ? (size_t)(nl - s.u.s.s) : s.u.s.n;
            if (line) {
                ct_buf_putc(&b, '\n');
                if (end > i || (blank && ct_truthy(blank)))
                    ct_buf_put(&b, ind.s, ind.n);
            }
            ct_buf_put(&b, s.u.s.s + i, end - i);
            line++;
            if (!nl)
                break;
            i = end + 1;
            if (i == s.u.s.n) /* "a\n": Python's splitlines drops the empty tail */
                break;
        }
        char *o = ct_strdup(ev->a, b.p ? b.p : "", b.n);
        size_t len = b.n;
        free(b.p);
        if (!o) {
            ct_oom(ev, n);
            return ct_none();
        }
        return ct_strv(o, len);
    }
    if (IS("dictsort")) {
        if (v.t != CT_DICT) {
            ct_fail(ev, n, "dictsort needs a mapping");
            return ct_none();
        }
        ct_value items = ct_call_builtin(ev, n, M_ITEMS, &v, NULL, 0, NULL, NULL, 0);
        if (ev->failed)
            return items;
        size_t cnt = items.u.l->n;
        for (size_t i = 1; i < cnt; i++) {
            ct_value x = items.u.l->v[i];
            size_t j = i;
            while (j > 0 && sort_cmp(&items.u.l->v[j - 1].u.l->v[0], &x.u.l->v[0], 0) > 0) {
                items.u.l->v[j] = items.u.l->v[j - 1];
                j--;
            }
            items.u.l->v[j] = x;
        }
        return items;
    }
#undef IS
#undef A
    ct_fail(ev, n, "unknown filter '%.*s'", (int)(name.n > 40 ? 40 : name.n), name.s);
    return ct_none();
}
