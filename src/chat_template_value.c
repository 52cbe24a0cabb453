/* chat_template_value.c - the template interpreter's arena, values and the
 * ways they print: Python's str() and repr(), and json.dumps as Hugging
 * Face's tojson filter calls it (ensure_ascii=False). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_template_internal.h"

/* ---------------------------------------------------------------- arena */
struct ct_block {
    ct_block *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

void ct_arena_init(ct_arena *a, size_t limit)
{
    a->head = NULL;
    a->total = 0;
    a->limit = limit;
}

void ct_arena_free(ct_arena *a)
{
    ct_block *b = a->head;
    while (b) {
        ct_block *n = b->next;
        free(b);
        b = n;
    }
    a->head = NULL;
    a->total = 0;
}

void *ct_alloc(ct_arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (n == 0)
        n = 16;
    ct_block *b = a->head;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        if (a->total + cap > a->limit || a->total + cap < a->total)
            return NULL;
        b = malloc(sizeof *b + cap);
        if (!b)
            return NULL;
        b->next = a->head;
        b->used = 0;
        b->cap = cap;
        a->head = b;
        a->total += cap;
    }
    void *p = b->data + b->used;
    b->used += n;
    memset(p, 0, n);
    return p;
}

char *ct_strdup(ct_arena *a, const char *s, size_t n)
{
    char *p = ct_alloc(a, n + 1);
    if (!p)
        return NULL;
    if (n)
        memcpy(p, s, n);
    p[n] = 0;
    return p;
}

/* ---------------------------------------------------------------- values */
ct_value ct_undef(ct_str name)
{
    ct_value v = {.t = CT_UNDEF};
    v.u.s = name;
    return v;
}
ct_value ct_none(void) { return (ct_value){.t = CT_NONE}; }
ct_value ct_bool(int b)
{
    ct_value v = {.t = CT_BOOL};
    v.u.b = !!b;
    return v;
}
ct_value ct_int(int64_t i)
{
    ct_value v = {.t = CT_INT};
    v.u.i = i;
    return v;
}
ct_value ct_float(double f)
{
    ct_value v = {.t = CT_FLOAT};
    v.u.f = f;
    return v;
}
ct_value ct_strv(const char *s, size_t n)
{
    ct_value v = {.t = CT_STR};
    v.u.s.s = s;
    v.u.s.n = n;
    return v;
}
ct_value ct_cstr(const char *s) { return ct_strv(s, strlen(s)); }

ct_list *ct_list_new(ct_arena *a, size_t n)
{
    ct_list *l = ct_alloc(a, sizeof *l);
    if (!l)
        return NULL;
    if (n) {
        if (n > SIZE_MAX / sizeof(ct_value))
            return NULL;
        l->v = ct_alloc(a, n * sizeof(ct_value));
        if (!l->v)
            return NULL;
    }
    l->n = n;
    return l;
}

ct_dict *ct_dict_new(ct_arena *a, size_t cap)
{
    ct_dict *d = ct_alloc(a, sizeof *d);
    if (!d)
        return NULL;
    if (cap < 4)
        cap = 4;
    d->k = ct_alloc(a, cap * sizeof(ct_str));
    d->v = ct_alloc(a, cap * sizeof(ct_value));
    if (!d->k || !d->v)
        return NULL;
    d->cap = cap;
    return d;
}

ct_value *ct_dict_get(const ct_dict *d, const char *k, size_t n)
{
    for (size_t i = 0; i < d->n; i++)
        if (d->k[i].n == n && !memcmp(d->k[i].s, k, n))
            return &d->v[i];
    return NULL;
}

int ct_dict_set(ct_arena *a, ct_dict *d, ct_str k, ct_value v)
{
    ct_value *old = ct_dict_get(d, k.s, k.n);
    if (old) {
        *old = v;
        return 0;
    }
    if (d->n == d->cap) {
        size_t cap = d->cap * 2;
        ct_str *nk = ct_alloc(a, cap * sizeof(ct_str));
        ct_value *nv = ct_alloc(a, cap * sizeof(ct_value));
        if (!nk || !nv)
            return -1;
        memcpy(nk, d->k, d->n * sizeof(ct_str));
        memcpy(nv, d->v, d->n * sizeof(ct_value));
        d->k = nk;
        d->v = nv;
        d->cap = cap;
    }
    d->k[d->n] = k;
    d->v[d->n] = v;
    d->n++;
    return 0;
}

int ct_str_eq(ct_str a, const char *b)
{
    size_t n = strlen(b);
    return a.n == n && !memcmp(a.s, b, n);
}

int ct_truthy(const ct_value *v)
{
    switch (v->t) {
    case CT_UNDEF:
    case CT_NONE: return 0;
    case CT_BOOL: return v->u.b;
    case CT_INT: return v->u.i != 0;
    case CT_FLOAT: return v->u.f != 0.0;
    case CT_STR: return v->u.s.n != 0;
    case CT_LIST: return v->u.l->n != 0;
    case CT_DICT: return v->u.d->n != 0;
    default: return 1;
    }
}

static int is_num(const ct_value *v) { return v->t == CT_BOOL || v->t == CT_INT || v->t == CT_FLOAT; }

int ct_equal(const ct_value *a, const ct_value *b)
{
    if (is_num(a) && is_num(b)) {
        if (a->t == CT_FLOAT || b->t == CT_FLOAT) {
            double x = a->t == CT_FLOAT ? a->u.f : (double)(a->t == CT_INT ? a->u.i : a->u.b);
            double y = b->t == CT_FLOAT ? b->u.f : (double)(b->t == CT_INT ? b->u.i : b->u.b);
            return x == y;
        }
        int64_t x = a->t == CT_INT ? a->u.i : a->u.b, y = b->t == CT_INT ? b->u.i : b->u.b;
        return x == y;
    }
    if (a->t != b->t)
        return 0;
    switch (a->t) {
    case CT_UNDEF:
    case CT_NONE: return 1;
    case CT_STR: return a->u.s.n == b->u.s.n && !memcmp(a->u.s.s, b->u.s.s, a->u.s.n);
    case CT_LIST:
        if (a->u.l->n != b->u.l->n || a->is_tuple != b->is_tuple)
            return 0;
        for (size_t i = 0; i < a->u.l->n; i++)
            if (!ct_equal(&a->u.l->v[i], &b->u.l->v[i]))
                return 0;
        return 1;
    case CT_DICT:
        if (a->u.d->n != b->u.d->n)
            return 0;
        for (size_t i = 0; i < a->u.d->n; i++) {
            ct_value *o = ct_dict_get(b->u.d, a->u.d->k[i].s, a->u.d->k[i].n);
            if (!o || !ct_equal(&a->u.d->v[i], o))
                return 0;
        }
        return 1;
    case CT_NS: return a->u.d == b->u.d;
    case CT_FUNC: return a->u.fn.id == b->u.fn.id && a->u.fn.self == b->u.fn.self;
    case CT_MACRO: return a->u.macro == b->u.macro;
    default: return 0;
    }
}

/* ---------------------------------------------------------------- buffer */
int ct_buf_put(ct_buf *b, const char *s, size_t n)
{
    if (b->over)
        return -1;
    if (n > b->limit || b->n > b->limit - n) {
        b->over = 1;
        return -1;
    }
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->over = 1;
            return -1;
        }
        b->p = p;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return 0;
}

int ct_buf_putc(ct_buf *b, char c) { return ct_buf_put(b, &c, 1); }

int ct_buf_printf(ct_buf *b, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    return ct_buf_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* ---------------------------------------------------------------- printing */
void ct_format_float(double d, char *out, size_t cap)
{
    if (isnan(d)) {
        snprintf(out, cap, "nan");
        return;
    }
    if (isinf(d)) {
        snprintf(out, cap, d < 0 ? "-inf" : "inf");
        return;
    }
    /* shortest %.*e that reads back as d: Python's repr digits */
    char e[64];
    int p;
    for (p = 0; p < 17; p++) {
        snprintf(e, sizeof e, "%.*e", p, d);
        if (strtod(e, NULL) == d)
            break;
    }
    /* e: [-]D[.DDD]e[+-]XX */
    const char *s = e;
    int neg = 0;
    if (*s == '-') {
        neg = 1;
        s++;
    }
    char digits[32];
    size_t nd = 0;
    for (; *s && *s != 'e'; s++)
        if (*s >= '0' && *s <= '9' && nd < sizeof digits - 1)
            digits[nd++] = *s;
    digits[nd] = 0;
    int exp10 = *s == 'e' ? atoi(s + 1) : 0;
    while (nd > 1 && digits[nd - 1] == '0')
        digits[--nd] = 0;
    char buf[400];
    size_t o = 0;
    if (neg)
        buf[o++] = '-';
    if (exp10 >= -4 && exp10 < 16) {
        if (exp10 >= 0) {
            for (int i = 0; i <= exp10; i++)
                buf[o++] = (size_t)i < nd ? digits[i] : '0';
            buf[o++] = '.';
            if ((size_t)exp10 + 1 < nd)
                for (size_t i = (size_t)exp10 + 1; i < nd; i++)
                    buf[o++] = digits[i];
            else
                buf[o++] = '0';
        } else {
            buf[o++] = '0';
            buf[o++] = '.';
            for (int i = 0; i < -exp10 - 1; i++)
                buf[o++] = '0';
            for (size_t i = 0; i < nd; i++)
                buf[o++] = digits[i];
        }
        buf[o] = 0;
    } else {
        buf[o++] = digits[0];
        if (nd > 1) {
            buf[o++] = '.';
            for (size_t i = 1; i < nd; i++)
                buf[o++] = digits[i];
        }
        snprintf(buf + o, sizeof buf - o, "e%c%02d", exp10 < 0 ? '-' : '+', abs(exp10));
    }
    snprintf(out, cap, "%s", buf);
}

static int print_num(ct_buf *b, const ct_value *v)
{
    char tmp[64];
    if (v->t == CT_INT)
        return ct_buf_printf(b, "%lld", (long long)v->u.i);
    ct_format_float(v->u.f, tmp, sizeof tmp);
    return ct_buf_put(b, tmp, strlen(tmp));
}

static int repr_str(ct_buf *b, ct_str s)
{
    int has_sq = memchr(s.s, '\'', s.n) != NULL, has_dq = memchr(s.s, '"', s.n) != NULL;
    char q = has_sq && !has_dq ? '"' : '\'';
    int r = ct_buf_putc(b, q);
    for (size_t i = 0; i < s.n && !r; i++) {
        unsigned char c = (unsigned char)s.s[i];
        if (c == '\\' || c == (unsigned char)q) {
            r = ct_buf_putc(b, '\\');
            if (!r)
                r = ct_buf_putc(b, (char)c);
        } else if (c == '\n')
            r = ct_buf_put(b, "\\n", 2);
        else if (c == '\r')
            r = ct_buf_put(b, "\\r", 2);
        else if (c == '\t')
            r = ct_buf_put(b, "\\t", 2);
        else if (c < 0x20 || c == 0x7f)
            r = ct_buf_printf(b, "\\x%02x", c);
        else
            r = ct_buf_putc(b, (char)c);
    }
    return r ? r : ct_buf_putc(b, q);
}

static int print_container(ct_buf *b, const ct_value *v)
{
    int r = 0;
    if (v->t == CT_LIST) {
        r = ct_buf_putc(b, v->is_tuple ? '(' : '[');
        for (size_t i = 0; i < v->u.l->n && !r; i++) {
            if (i)
                r = ct_buf_put(b, ", ", 2);
            if (!r)
                r = ct_print_repr(b, &v->u.l->v[i]);
        }
        if (!r && v->is_tuple && v->u.l->n == 1)
            r = ct_buf_putc(b, ',');
        return r ? r : ct_buf_putc(b, v->is_tuple ? ')' : ']');
    }
    r = ct_buf_put(b, v->t == CT_NS ? "<Namespace {" : "{", v->t == CT_NS ? 12 : 1);
    for (size_t i = 0; i < v->u.d->n && !r; i++) {
        if (i)
            r = ct_buf_put(b, ", ", 2);
        if (!r)
            r = repr_str(b, v->u.d->k[i]);
        if (!r)
            r = ct_buf_put(b, ": ", 2);
        if (!r)
            r = ct_print_repr(b, &v->u.d->v[i]);
    }
    return r ? r : ct_buf_put(b, v->t == CT_NS ? "}>" : "}", v->t == CT_NS ? 2 : 1);
}

int ct_print_repr(ct_buf *b, const ct_value *v)
{
    switch (v->t) {
    case CT_STR: return repr_str(b, v->u.s);
    case CT_UNDEF: return 0;
    default: return ct_print_str(b, v);
    }
}

int ct_print_str(ct_buf *b, const ct_value *v)
{
    switch (v->t) {
    case CT_UNDEF: return 0;
    case CT_NONE: return ct_buf_put(b, "None", 4);
    case CT_BOOL: return v->u.b ? ct_buf_put(b, "True", 4) : ct_buf_put(b, "False", 5);
    case CT_INT:
    case CT_FLOAT: return print_num(b, v);
    case CT_STR: return ct_buf_put(b, v->u.s.s, v->u.s.n);
    case CT_LIST:
    case CT_DICT:
    case CT_NS: return print_container(b, v);
    case CT_FUNC: return ct_buf_put(b, "<built-in function>", 19);
    case CT_MACRO: return ct_buf_put(b, "<Macro>", 7);
    }
    return 0;
}

/* Code point of the UTF-8 sequence at s[*i] (an invalid byte is itself). */
static uint32_t utf8_cp(ct_str s, size_t *i)
{
    unsigned char c = (unsigned char)s.s[*i];
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
    int ok = *i + n <= s.n;
    for (size_t k = 1; ok && k < n; k++)
        ok = ((unsigned char)s.s[*i + k] >> 6) == 2;
    if (!ok || n == 1) {
        (*i)++;
        return c;
    }
    uint32_t cp = c & (0x7F >> n);
    for (size_t k = 1; k < n; k++)
        cp = (cp << 6) | ((unsigned char)s.s[*i + k] & 0x3F);
    *i += n;
    return cp;
}

static int json_str(ct_buf *b, ct_str s, int ascii)
{
    int r = ct_buf_putc(b, '"');
    for (size_t i = 0; i < s.n && !r; i++) {
        unsigned char c = (unsigned char)s.s[i];
        if (ascii && c >= 0x80) { /* ensure_ascii: \uXXXX, surrogate pairs above U+FFFF */
            uint32_t cp = utf8_cp(s, &i);
            i--;
            if (cp > 0xFFFF) {
                cp -= 0x10000;
                r = ct_buf_printf(b, "\\u%04x\\u%04x", 0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF));
            } else
                r = ct_buf_printf(b, "\\u%04x", cp);
            continue;
        }
        switch (c) {
        case '"': r = ct_buf_put(b, "\\\"", 2); break;
        case '\\': r = ct_buf_put(b, "\\\\", 2); break;
        case '\n': r = ct_buf_put(b, "\\n", 2); break;
        case '\r': r = ct_buf_put(b, "\\r", 2); break;
        case '\t': r = ct_buf_put(b, "\\t", 2); break;
        case '\b': r = ct_buf_put(b, "\\b", 2); break;
        case '\f': r = ct_buf_put(b, "\\f", 2); break;
        default:
            if (c < 0x20)
                r = ct_buf_printf(b, "\\u%04x", c);
            else
                r = ct_buf_putc(b, (char)c);
        }
    }
    return r ? r : ct_buf_putc(b, '"');
}

static int json_newline(ct_buf *b, int indent, int depth)
{
    if (indent < 0)
        return 0;
    int r = ct_buf_putc(b, '\n');
    for (int i = 0; i < indent * depth && !r; i++)
        r = ct_buf_putc(b, ' ');
    return r;
}

static int key_cmp(const void *x, const void *y)
{
    const ct_str *a = *(ct_str *const *)x, *b = *(ct_str *const *)y;
    size_t n = a->n < b->n ? a->n : b->n;
    int c = memcmp(a->s, b->s, n);
    return c ? c : (a->n > b->n) - (a->n < b->n);
}

static int print_json(ct_buf *b, const ct_value *v, int indent, const char *item_sep,
                      const char *key_sep, int sort_keys, int depth, int ascii);

int ct_print_json(ct_buf *b, const ct_value *v, int indent, const char *item_sep,
                  const char *key_sep, int sort_keys, int depth)
{
    int ascii = 0;
    if (depth < 0) { /* ensure_ascii requested: encoded in the depth's sign */
        ascii = 1;
        depth = -depth - 1;
    }
    return print_json(b, v, indent, item_sep, key_sep, sort_keys, depth, ascii);
}

static int print_json(ct_buf *b, const ct_value *v, int indent, const char *item_sep,
                      const char *key_sep, int sort_keys, int depth, int ascii)
{
    if (depth > 64)
        return -1;
    if (!item_sep)
        item_sep = indent >= 0 ? "," : ", ";
    if (!key_sep)
        key_sep = ": ";
    char tmp[64];
    switch (v->t) {
    case CT_NONE: return ct_buf_put(b, "null", 4);
    case CT_BOOL: return v->u.b ? ct_buf_put(b, "true", 4) : ct_buf_put(b, "false", 5);
    case CT_INT: return print_num(b, v);
    case CT_FLOAT:
        if (isnan(v->u.f))
            return ct_buf_put(b, "NaN", 3);
        if (isinf(v->u.f))
            return v->u.f < 0 ? ct_buf_put(b, "-Infinity", 9) : ct_buf_put(b, "Infinity", 8);
        ct_format_float(v->u.f, tmp, sizeof tmp);
        return ct_buf_put(b, tmp, strlen(tmp));
    case CT_STR: return json_str(b, v->u.s, ascii);
    case CT_LIST: {
        if (v->u.l->n == 0)
            return ct_buf_put(b, "[]", 2);
        int r = ct_buf_putc(b, '[');
        for (size_t i = 0; i < v->u.l->n && !r; i++) {
            if (i)
                r = ct_buf_put(b, item_sep, strlen(item_sep));
            if (!r)
                r = json_newline(b, indent, depth + 1);
            if (!r)
                r = print_json(b, &v->u.l->v[i], indent, item_sep, key_sep, sort_keys, depth + 1,
                               ascii);
        }
        if (!r)
            r = json_newline(b, indent, depth);
        return r ? r : ct_buf_putc(b, ']');
    }
    case CT_DICT: {
        const ct_dict *d = v->u.d;
        if (d->n == 0)
            return ct_buf_put(b, "{}", 2);
        size_t *order = malloc(d->n * sizeof *order);
        if (!order)
            return -1;
        for (size_t i = 0; i < d->n; i++)
            order[i] = i;
        if (sort_keys) {
            const ct_str **keys = malloc(d->n * sizeof *keys);
            if (!keys) {
                free(order);
                return -1;
            }
            for (size_t i = 0; i < d->n; i++)
                keys[i] = &d->k[i];
            qsort(keys, d->n, sizeof *keys, key_cmp);
            for (size_t i = 0; i < d->n; i++)
                order[i] = (size_t)(keys[i] - d->k);
            free(keys);
        }
        int r = ct_buf_putc(b, '{');
        for (size_t j = 0; j < d->n && !r; j++) {
            size_t i = order[j];
            if (j)
                r = ct_buf_put(b, item_sep, strlen(item_sep));
            if (!r)
                r = json_newline(b, indent, depth + 1);
            if (!r)
                r = json_str(b, d->k[i], ascii);
            if (!r)
                r = ct_buf_put(b, key_sep, strlen(key_sep));
            if (!r)
                r = print_json(b, &d->v[i], indent, item_sep, key_sep, sort_keys, depth + 1, ascii);
        }
        free(order);
        if (!r)
            r = json_newline(b, indent, depth);
        return r ? r : ct_buf_putc(b, '}');
    }
    default: return -1; /* undefined, namespace, function: not JSON */
    }
}

/* ---------------------------------------------------------------- UTF-8 */
/* Bytes in the sequence that starts at s[i] (1 for an invalid byte). */
static size_t utf8_step(ct_str s, size_t i)
{
    unsigned char c = (unsigned char)s.s[i];
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
    if (i + n > s.n)
        return 1;
    for (size_t k = 1; k < n; k++)
        if (((unsigned char)s.s[i + k] >> 6) != 2)
            return 1;
    return n;
}

size_t ct_utf8_len(ct_str s)
{
    size_t n = 0;
    for (size_t i = 0; i < s.n; i += utf8_step(s, i))
        n++;
    return n;
}

size_t ct_utf8_offset(ct_str s, size_t cp)
{
    size_t i = 0;
    while (cp-- && i < s.n)
        i += utf8_step(s, i);
    return i;
}
