/* chat_template_eval.c - the evaluator of the Jinja subset: statements,
 * expressions, scopes, macros and the for-loop's `loop` object.  Filters,
 * tests, methods and global functions are in chat_template_builtins.c.
 *
 * Scoping is Jinja2's: `if` shares its enclosing scope; each for-loop
 * iteration gets a fresh scope over the enclosing one (a `set` inside the
 * body is gone by the next iteration and after the loop); a macro runs in a
 * scope over the template's top level.  Namespaces are shared objects whose
 * attributes `set ns.x = ...` changes in place.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_template_eval.h"

#define MAX_STEPS 20000000u
#define MAX_CALL_DEPTH 64
#define MAX_EVAL_DEPTH 400

void ct_fail(ct_ev *ev, const ct_node *at, const char *fmt, ...)
{
    if (ev->failed)
        return;
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char field[48];
    snprintf(field, sizeof field, "line %d, column %d", at ? at->line : 0, at ? at->col : 0);
    mr_fail(ev->err, MR_EINVAL, "chat template", field, MR_NO_OFFSET, "%s", msg);
    ev->failed = 1;
}

void ct_oom(ct_ev *ev, const ct_node *at)
{
    if (!ev->failed) {
        char field[48];
        snprintf(field, sizeof field, "line %d, column %d", at ? at->line : 0, at ? at->col : 0);
        mr_fail(ev->err, MR_ENOMEM, "chat template", field, MR_NO_OFFSET,
                "rendering needs more memory than the limit");
    }
    ev->failed = 1;
}

/* ---------------------------------------------------------------- scopes */
ct_scope *ct_scope_new(ct_ev *ev, ct_scope *parent)
{
    ct_scope *s = ct_alloc(ev->a, sizeof *s);
    if (!s)
        return NULL;
    s->parent = parent;
    s->vars = ct_dict_new(ev->a, 4);
    return s->vars ? s : NULL;
}

static ct_value *lookup(ct_scope *s, ct_str name)
{
    for (; s; s = s->parent) {
        ct_value *v = ct_dict_get(s->vars, name.s, name.n);
        if (v)
            return v;
    }
    return NULL;
}

static int assign(ct_ev *ev, ct_scope *s, ct_str name, ct_value v, const ct_node *at)
{
    if (ct_dict_set(ev->a, s->vars, name, v)) {
        ct_oom(ev, at);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- access */
const char *ct_type_name(const ct_value *v)
{
    switch (v->t) {
    case CT_UNDEF: return "undefined";
    case CT_NONE: return "NoneType";
    case CT_BOOL: return "bool";
    case CT_INT: return "int";
    case CT_FLOAT: return "float";
    case CT_STR: return "str";
    case CT_LIST: return v->is_tuple ? "tuple" : "list";
    case CT_DICT: return "dict";
    case CT_NS: return "Namespace";
    case CT_FUNC: return "builtin_function_or_method";
    case CT_MACRO: return "Macro";
    }
    return "object";
}

void ct_fail_undefined(ct_ev *ev, const ct_node *at, const ct_value *u)
{
    if (u->u.s.n)
        ct_fail(ev, at, "'%.*s' is undefined", (int)(u->u.s.n > 80 ? 80 : u->u.s.n), u->u.s.s);
    else
        ct_fail(ev, at, "undefined value used");
}

static ct_value getattr_v(ct_ev *ev, const ct_node *at, ct_value obj, ct_str name)
{
    if (obj.t == CT_UNDEF) {
        ct_fail_undefined(ev, at, &obj);
        return ct_undef(name);
    }
    int m = ct_method_id(&obj, name);
    if (m >= 0)
        return ct_bind_method(ev, at, obj, m);
    if (obj.t == CT_DICT || obj.t == CT_NS) {
        ct_value *v = ct_dict_get(obj.u.d, name.s, name.n);
        if (v)
            return *v;
    }
    return ct_undef(name);
}

/* Python's slice.indices for a sequence of length n. */
static void slice_indices(int64_t n, const ct_value *s, const ct_value *e, const ct_value *st,
                          int64_t *start, int64_t *stop, int64_t *step)
{
    *step = st && st->t == CT_INT ? st->u.i : 1;
    int64_t lo = *step < 0 ? -1 : 0, hi = *step < 0 ? n - 1 : n;
    if (s && s->t == CT_INT) {
        *start = s->u.i < 0 ? s->u.i + n : s->u.i;
        if (*start < lo)
            *start = lo;
        if (*start > hi)
            *start = hi;
    } else
        *start = *step < 0 ? hi : lo;
    if (e && e->t == CT_INT) {
        *stop = e->u.i < 0 ? e->u.i + n : e->u.i;
        if (*stop < lo)
            *stop = lo;
        if (*stop > hi)
            *stop = hi;
    } else
        *stop = *step < 0 ? lo : hi;
}

static ct_value eval_slice(ct_ev *ev, const ct_node *n, ct_value obj, const ct_value *s,
                           const ct_value *e, const ct_value *st)
{
    for (int k = 0; k < 3; k++) {
        const ct_value *x = k == 0 ? s : k == 1 ? e : st;
        if (x && x->t != CT_INT && x->t != CT_NONE) {
            ct_fail(ev, n, "slice indices must be integers or None");
            return ct_none();
        }
    }
    if (st && st->t == CT_INT && st->u.i == 0) {
        ct_fail(ev, n, "slice step cannot be zero");
        return ct_none();
    }
    if (obj.t == CT_UNDEF) {
        ct_fail_undefined(ev, n, &obj);
        return obj;
    }
    int64_t len;
    size_t *offs = NULL;
    if (obj.t == CT_LIST)
        len = (int64_t)obj.u.l->n;
    else if (obj.t == CT_STR) {
        len = (int64_t)ct_utf8_len(obj.u.s);
        offs = ct_alloc(ev->a, ((size_t)len + 1) * sizeof *offs);
        if (!offs) {
            ct_oom(ev, n);
            return ct_none();
        }
        size_t o = 0;
        for (int64_t i = 0; i <= len; i++) {
            offs[i] = o;
            if (i < len)
                o = ct_utf8_offset((ct_str){obj.u.s.s + o, obj.u.s.n - o}, 1) + o;
        }
    } else {
        ct_fail(ev, n, "'%s' object is not subscriptable", ct_type_name(&obj));
        return ct_none();
    }
    int64_t a, b, step;
    slice_indices(len, s, e, st, &a, &b, &step);
    int64_t count = step > 0 ? (b > a ? (b - a + step - 1) / step : 0)
                             : (a > b ? (a - b - step - 1) / (-step) : 0);
    if (obj.t == CT_LIST) {
        ct_list *l = ct_list_new(ev->a, (size_t)count);
        if (!l) {
            ct_oom(ev, n);
            return ct_none();
        }
        for (int64_t i = 0; i < count; i++)
            l->v[i] = obj.u.l->v[a + i * step];
        ct_value r = {.t = CT_LIST, .is_tuple = obj.is_tuple};
        r.u.l = l;
        return r;
    }
    if (step == 1)
        return ct_strv(obj.u.s.s + offs[a], offs[b > a ? b : a] - offs[a]);
    char *o = ct_alloc(ev->a, obj.u.s.n + 1);
    if (!o) {
        ct_oom(ev, n);
        return ct_none();
    }
    size_t k = 0;
    for (int64_t i = 0; i < count; i++) {
        int64_t c = a + i * step;
        memcpy(o + k, obj.u.s.s + offs[c], offs[c + 1] - offs[c]);
        k += offs[c + 1] - offs[c];
    }
    return ct_strv(o, k);
}

ct_value ct_getitem(ct_ev *ev, const ct_node *at, ct_value obj, ct_value key)
{
    if (obj.t == CT_UNDEF) {
        ct_fail_undefined(ev, at, &obj);
        return obj;
    }
    if (obj.t == CT_DICT || obj.t == CT_NS) {
        if (key.t == CT_STR) {
            ct_value *v = ct_dict_get(obj.u.d, key.u.s.s, key.u.s.n);
            if (v)
                return *v;
            int m = ct_method_id(&obj, key.u.s);
            if (m >= 0)
                return ct_bind_method(ev, at, obj, m);
            return ct_undef(key.u.s);
        }
        if (key.t == CT_INT) { /* integer keys are held as their text */
            char num[24];
            int len = snprintf(num, sizeof num, "%lld", (long long)key.u.i);
            ct_value *v = ct_dict_get(obj.u.d, num, (size_t)len);
            if (v)
                return *v;
        }
        return ct_undef((ct_str){"", 0});
    }
    if ((obj.t == CT_LIST || obj.t == CT_STR) && (key.t == CT_INT || key.t == CT_BOOL)) {
        int64_t i = key.t == CT_INT ? key.u.i : key.u.b;
        if (obj.t == CT_LIST) {
            int64_t n = (int64_t)obj.u.l->n;
            if (i < 0)
                i += n;
            if (i < 0 || i >= n)
                return ct_undef((ct_str){"", 0});
            return obj.u.l->v[i];
        }
        int64_t n = (int64_t)ct_utf8_len(obj.u.s);
        if (i < 0)
            i += n;
        if (i < 0 || i >= n)
            return ct_undef((ct_str){"", 0});
        size_t o = ct_utf8_offset(obj.u.s, (size_t)i);
        size_t o2 = ct_utf8_offset(obj.u.s, (size_t)i + 1);
        return ct_strv(obj.u.s.s + o, o2 - o);
    }
    if (key.t == CT_STR)
        return getattr_v(ev, at, obj, key.u.s);
    return ct_undef((ct_str){"", 0});
}

/* ---------------------------------------------------------------- operators */
static int num_of(const ct_value *v, double *d, int64_t *i, int *is_int)
{
    if (v->t == CT_INT || v->t == CT_BOOL) {
        *i = v->t == CT_INT ? v->u.i : v->u.b;
        *d = (double)*i;
        *is_int = 1;
        return 1;
    }
    if (v->t == CT_FLOAT) {
        *d = v->u.f;
        *is_int = 0;
        return 1;
    }
    return 0;
}

ct_value ct_concat_str(ct_ev *ev, const ct_node *at, ct_str x, ct_str y)
{
    if (!x.n)
        return ct_strv(y.s, y.n);
    if (!y.n)
        return ct_strv(x.s, x.n);
    char *o = ct_alloc(ev->a, x.n + y.n + 1);
    if (!o) {
        ct_oom(ev, at);
        return ct_none();
    }
    memcpy(o, x.s, x.n);
    memcpy(o + x.n, y.s, y.n);
    return ct_strv(o, x.n + y.n);
}

ct_value ct_to_str(ct_ev *ev, const ct_node *at, const ct_value *v)
{
    if (v->t == CT_STR)
        return *v;
    ct_buf b = {.limit = ev->limit};
    if (ct_print_str(&b, v)) {
        free(b.p);
        ct_oom(ev, at);
        return ct_none();
    }
    char *s = ct_strdup(ev->a, b.p ? b.p : "", b.n);
    free(b.p);
    if (!s) {
        ct_oom(ev, at);
        return ct_none();
    }
    return ct_strv(s, b.n);
}

static ct_value repeat(ct_ev *ev, const ct_node *n, ct_value seq, int64_t times)
{
    if (times < 0)
        times = 0;
    size_t unit = seq.t == CT_STR ? seq.u.s.n : seq.u.l->n;
    if (unit && (uint64_t)times > ev->limit / unit) {
        ct_oom(ev, n);
        return ct_none();
    }
    size_t total = unit * (size_t)times;
    if (seq.t == CT_STR) {
        char *o = ct_alloc(ev->a, total + 1);
        if (!o) {
            ct_oom(ev, n);
            return ct_none();
        }
        for (int64_t i = 0; i < times; i++)
            memcpy(o + (size_t)i * unit, seq.u.s.s, unit);
        return ct_strv(o, total);
    }
    ct_list *l = ct_list_new(ev->a, total);
    if (!l) {
        ct_oom(ev, n);
        return ct_none();
    }
    for (int64_t i = 0; i < times; i++)
        memcpy(l->v + (size_t)i * unit, seq.u.l->v, unit * sizeof(ct_value));
    ct_value r = {.t = CT_LIST};
    r.u.l = l;
    return r;
}

static ct_value binop(ct_ev *ev, const ct_node *n, int op, ct_value x, ct_value y)
{
    if (op == OP_CONCAT) {
        ct_value a = ct_to_str(ev, n, &x), b = ct_to_str(ev, n, &y);
        if (ev->failed)
            return ct_none();
        return ct_concat_str(ev, n, a.u.s, b.u.s);
    }
    if (x.t == CT_UNDEF) {
        ct_fail_undefined(ev, n, &x);
        return ct_none();
    }
    if (y.t == CT_UNDEF) {
        ct_fail_undefined(ev, n, &y);
        return ct_none();
    }
    double a, b;
    int64_t ia = 0, ib = 0;
    int inta, intb;
    if (num_of(&x, &a, &ia, &inta) && num_of(&y, &b, &ib, &intb)) {
        int ints = inta && intb;
        int64_t r;
        switch (op) {
        case OP_ADD:
            if (ints) {
                if (__builtin_add_overflow(ia, ib, &r))
                    break;
                return ct_int(r);
            }
            return ct_float(a + b);
        case OP_SUB:
            if (ints) {
                if (__builtin_sub_overflow(ia, ib, &r))
                    break;
                return ct_int(r);
            }
            return ct_float(a - b);
        case OP_MUL:
            if (ints) {
                if (__builtin_mul_overflow(ia, ib, &r))
                    break;
                return ct_int(r);
            }
            return ct_float(a * b);
        case OP_DIV:
            if (b == 0) {
                ct_fail(ev, n, "division by zero");
                return ct_none();
            }
            return ct_float(a / b);
        case OP_FLOORDIV:
        case OP_MOD:
            if (b == 0) {
                ct_fail(ev, n, "integer division or modulo by zero");
                return ct_none();
            }
            if (ints) {
                if (ia == INT64_MIN && ib == -1)
                    break;
                int64_t q = ia / ib, m = ia % ib;
                if (m != 0 && ((m < 0) != (ib < 0))) {
                    q--;
                    m += ib;
                }
                return op == OP_FLOORDIV ? ct_int(q) : ct_int(m);
            } else {
                double m = fmod(a, b);
                if (m != 0 && ((m < 0) != (b < 0)))
                    m += b;
                return op == OP_FLOORDIV ? ct_float(floor((a - m) / b)) : ct_float(m);
            }
        case OP_POW:
            if (ints && ib >= 0) {
                int64_t acc = 1;
                int over = 0;
                for (int64_t k = 0; k < ib && !over; k++) {
                    over = __builtin_mul_overflow(acc, ia, &acc);
                    if (acc == 0 || acc == 1)
                        break;
                }
                if (over)
                    break;
                return ct_int(acc);
            }
            return ct_float(pow(a, b));
        }
        ct_fail(ev, n, "integer overflow");
        return ct_none();
    }
    if (op == OP_ADD && x.t == CT_STR && y.t == CT_STR)
        return ct_concat_str(ev, n, x.u.s, y.u.s);
    if (op == OP_ADD && x.t == CT_LIST && y.t == CT_LIST) {
        ct_list *l = ct_list_new(ev->a, x.u.l->n + y.u.l->n);
        if (!l) {
            ct_oom(ev, n);
            return ct_none();
        }
        if (x.u.l->n)
            memcpy(l->v, x.u.l->v, x.u.l->n * sizeof(ct_value));
        if (y.u.l->n)
            memcpy(l->v + x.u.l->n, y.u.l->v, y.u.l->n * sizeof(ct_value));
        ct_value r = {.t = CT_LIST, .is_tuple = x.is_tuple};
        r.u.l = l;
        return r;
    }
    if (op == OP_MUL && (x.t == CT_STR || x.t == CT_LIST) && (y.t == CT_INT || y.t == CT_BOOL))
        return repeat(ev, n, x, y.t == CT_INT ? y.u.i : y.u.b);
    if (op == OP_MUL && (y.t == CT_STR || y.t == CT_LIST) && (x.t == CT_INT || x.t == CT_BOOL))
        return repeat(ev, n, y, x.t == CT_INT ? x.u.i : x.u.b);
    static const char *const names[] = {"+", "-", "*", "/", "//", "%", "**"};
    ct_fail(ev, n, "unsupported operand type(s) for %s: '%s' and '%s'",
            op >= 0 && op <= OP_POW ? names[op] : "?", ct_type_name(&x), ct_type_name(&y));
    return ct_none();
}

static int str_cmp(ct_str a, ct_str b)
{
    size_t n = a.n < b.n ? a.n : b.n;
    int c = memcmp(a.s, b.s, n);
    return c ? c : (a.n > b.n) - (a.n < b.n);
}

/* Ordering: -2 when the types do not order. */
int ct_compare(const ct_value *x, const ct_value *y)
{
    double a, b;
    int64_t ia, ib;
    int ta, tb;
    if (num_of(x, &a, &ia, &ta) && num_of(y, &b, &ib, &tb)) {
        if (ta && tb)
            return (ia > ib) - (ia < ib);
        return (a > b) - (a < b);
    }
    if (x->t == CT_STR && y->t == CT_STR) {
        int c = str_cmp(x->u.s, y->u.s);
        return (c > 0) - (c < 0);
    }
    if (x->t == CT_LIST && y->t == CT_LIST) {
        size_t n = x->u.l->n < y->u.l->n ? x->u.l->n : y->u.l->n;
        for (size_t i = 0; i < n; i++) {
            if (ct_equal(&x->u.l->v[i], &y->u.l->v[i]))
                continue;
            return ct_compare(&x->u.l->v[i], &y->u.l->v[i]);
        }
        return (x->u.l->n > y->u.l->n) - (x->u.l->n < y->u.l->n);
    }
    return -2;
}

/* x in y: 1, 0, or -1 (error reported). */
int ct_contains(ct_ev *ev, const ct_node *n, const ct_value *x, const ct_value *y)
{
    switch (y->t) {
    case CT_UNDEF: return 0;
    case CT_STR:
        if (x->t != CT_STR) {
            ct_fail(ev, n, "'in <string>' requires string as left operand, not %s", ct_type_name(x));
            return -1;
        }
        if (!x->u.s.n)
            return 1;
        if (x->u.s.n > y->u.s.n)
            return 0;
        return memmem(y->u.s.s, y->u.s.n, x->u.s.s, x->u.s.n) != NULL;
    case CT_LIST:
        for (size_t i = 0; i < y->u.l->n; i++)
            if (ct_equal(x, &y->u.l->v[i]))
                return 1;
        return 0;
    case CT_DICT:
        if (x->t != CT_STR)
            return 0;
        return ct_dict_get(y->u.d, x->u.s.s, x->u.s.n) != NULL;
    default:
        ct_fail(ev, n, "argument of type '%s' is not iterable", ct_type_name(y));
        return -1;
    }
}

static int cmp_op(ct_ev *ev, const ct_node *n, int op, const ct_value *x, const ct_value *y)
{
    int c;
    switch (op) {
    case OP_EQ: return ct_equal(x, y);
    case OP_NE: return !ct_equal(x, y);
    case OP_IN: return ct_contains(ev, n, x, y);
    case OP_NOTIN:
        c = ct_contains(ev, n, x, y);
        return c < 0 ? -1 : !c;
    default: break;
    }
    if (x->t == CT_UNDEF || y->t == CT_UNDEF) {
        ct_fail_undefined(ev, n, x->t == CT_UNDEF ? x : y);
        return -1;
    }
    c = ct_compare(x, y);
    if (c == -2) {
        ct_fail(ev, n, "'%s' not supported between instances of '%s' and '%s'",
                op == OP_LT ? "<" : op == OP_LE ? "<=" : op == OP_GT ? ">" : ">=",
                ct_type_name(x), ct_type_name(y));
        return -1;
    }
    switch (op) {
    case OP_LT: return c < 0;
    case OP_LE: return c <= 0;
    case OP_GT: return c > 0;
    default: return c >= 0;
    }
}

/* ---------------------------------------------------------------- calls */
static ct_value call_macro(ct_ev *ev, const ct_node *at, const ct_node *m, const ct_value *args,
                           size_t nargs, const ct_str *kwn, const ct_value *kwv, size_t nkw)
{
    if (ev->call_depth >= MAX_CALL_DEPTH) {
        ct_fail(ev, at, "macro calls nested too deeply (limit %d)", MAX_CALL_DEPTH);
        return ct_none();
    }
    ct_scope *s = ct_scope_new(ev, ev->top);
    if (!s) {
        ct_oom(ev, at);
        return ct_none();
    }
    for (size_t i = 0; i < m->nnames; i++) {
        ct_value v;
        int have = 0;
        if (i < nargs) {
            v = args[i];
            have = 1;
        }
        for (size_t k = 0; k < nkw; k++)
            if (kwn[k].n == m->names[i].n && !memcmp(kwn[k].s, m->names[i].s, kwn[k].n)) {
                v = kwv[k];
                have = 1;
            }
        if (!have) {
            if (m->defaults[i]) {
                ct_scope *saved = ev->scope;
                ev->scope = s;
                v = ct_eval(ev, m->defaults[i]);
                ev->scope = saved;
                if (ev->failed)
                    return ct_none();
            } else
                v = ct_undef(m->names[i]);
        }
        if (assign(ev, s, m->names[i], v, at))
            return ct_none();
    }
    ct_buf *saved_out = ev->out;
    ct_scope *saved_scope = ev->scope;
    ct_buf b = {.limit = ev->limit};
    ev->out = &b;
    ev->scope = s;
    ev->call_depth++;
    ct_exec_body(ev, m->body, m->nbody);
    ev->call_depth--;
    ev->out = saved_out;
    ev->scope = saved_scope;
    ev->brk = 0;
    if (b.over && !ev->failed)
        ct_oom(ev, at);
    if (ev->failed) {
        free(b.p);
        return ct_none();
    }
    char *str = ct_strdup(ev->a, b.p ? b.p : "", b.n);
    size_t len = b.n;
    free(b.p);
    if (!str) {
        ct_oom(ev, at);
        return ct_none();
    }
    return ct_strv(str, len);
}

/* Evaluate a call's arguments: positional into args, keywords apart. */
int ct_eval_args(ct_ev *ev, const ct_node *n, ct_value **args, size_t *nargs, ct_str **kwn,
                 ct_value **kwv, size_t *nkw, size_t extra_first)
{
    size_t np = 0, nk = 0;
    for (size_t i = 0; i < n->nkids; i++)
        if (n->kids[i]->kind == E_KWARG)
            nk++;
        else
            np++;
    *args = ct_alloc(ev->a, (np + extra_first + 1) * sizeof(ct_value));
    *kwn = ct_alloc(ev->a, (nk + 1) * sizeof(ct_str));
    *kwv = ct_alloc(ev->a, (nk + 1) * sizeof(ct_value));
    if (!*args || !*kwn || !*kwv) {
        ct_oom(ev, n);
        return -1;
    }
    size_t p = extra_first, k = 0;
    for (size_t i = 0; i < n->nkids; i++) {
        const ct_node *c = n->kids[i];
        if (c->kind == E_KWARG) {
            (*kwn)[k] = c->name;
            (*kwv)[k++] = ct_eval(ev, c->a);
        } else
            (*args)[p++] = ct_eval(ev, c);
        if (ev->failed)
            return -1;
    }
    *nargs = p;
    *nkw = k;
    return 0;
}

/* Render n's body into a string ({% filter %}, {% set x %}...{% endset %});
 * 1 with *out set, 0 when evaluation failed. */
static int render_body(ct_ev *ev, const ct_node *n, ct_value *out)
{
    ct_buf *saved = ev->out;
    ct_buf b = {.limit = ev->limit};
    ev->out = &b;
    ct_exec_body(ev, n->body, n->nbody);
    ev->out = saved;
    int ok = 0;
    if (!ev->failed) {
        char *s = ct_strdup(ev->a, b.p ? b.p : "", b.n);
        if (!s) {
            ct_oom(ev, n);
        } else {
            *out = ct_strv(s, b.n);
            ok = 1;
        }
    }
    free(b.p);
    return ok;
}

static ct_value eval_call(ct_ev *ev, const ct_node *n)
{
    ct_value f = ct_eval(ev, n->a);
    if (ev->failed)
        return ct_none();
    ct_value *args, *kwv;
    ct_str *kwn;
    size_t nargs, nkw;
    if (ct_eval_args(ev, n, &args, &nargs, &kwn, &kwv, &nkw, 0))
        return ct_none();
    if (f.t == CT_MACRO)
        return call_macro(ev, n, f.u.macro, args, nargs, kwn, kwv, nkw);
    if (f.t == CT_FUNC)
        return ct_call_builtin(ev, n, f.u.fn.id, f.u.fn.self, args, nargs, kwn, kwv, nkw);
    if (f.t == CT_UNDEF) {
        ct_fail_undefined(ev, n, &f);
        return ct_none();
    }
    ct_fail(ev, n, "'%s' object is not callable", ct_type_name(&f));
    return ct_none();
}

/* ---------------------------------------------------------------- expressions */
ct_value ct_eval(ct_ev *ev, const ct_node *n)
{
    if (ev->failed)
        return ct_none();
    if (++ev->steps > MAX_STEPS) {
        ct_fail(ev, n, "template takes too many steps (limit %u)", MAX_STEPS);
        return ct_none();
    }
    if (++ev->eval_depth > MAX_EVAL_DEPTH) {
        ct_fail(ev, n, "expression nested too deeply");
        ev->eval_depth--;
        return ct_none();
    }
    ct_value r = ct_none();
    switch (n->kind) {
    case E_LIT: r = n->lit; break;
    case E_NAME: {
        ct_value *v = lookup(ev->scope, n->name);
        r = v ? *v : ct_undef(n->name);
        break;
    }
    case E_LIST:
    case E_TUPLE: {
        ct_list *l = ct_list_new(ev->a, n->nkids);
        if (!l) {
            ct_oom(ev, n);
            break;
        }
        for (size_t i = 0; i < n->nkids && !ev->failed; i++)
            l->v[i] = ct_eval(ev, n->kids[i]);
        r = (ct_value){.t = CT_LIST, .is_tuple = n->kind == E_TUPLE};
        r.u.l = l;
        break;
    }
    case E_DICT: {
        ct_dict *d = ct_dict_new(ev->a, n->nkids / 2);
        if (!d) {
            ct_oom(ev, n);
            break;
        }
        for (size_t i = 0; i + 1 < n->nkids && !ev->failed; i += 2) {
            ct_value k = ct_eval(ev, n->kids[i]);
            ct_value v = ct_eval(ev, n->kids[i + 1]);
            if (ev->failed)
                break;
            if (k.t == CT_INT) { /* stored as its decimal text (json.dumps's key) */
                char num[24];
                int len = snprintf(num, sizeof num, "%lld", (long long)k.u.i);
                char *ks = ct_strdup(ev->a, num, (size_t)len);
                if (!ks) {
                    ct_oom(ev, n);
                    break;
                }
                k = ct_strv(ks, (size_t)len);
            }
            if (k.t != CT_STR) {
                ct_fail(ev, n->kids[i], "only string and integer keys are supported in dict literals");
                break;
            }
            if (ct_dict_set(ev->a, d, k.u.s, v))
                ct_oom(ev, n);
        }
        r = (ct_value){.t = CT_DICT};
        r.u.d = d;
        break;
    }
    case E_GETATTR: {
        ct_value o = ct_eval(ev, n->a);
        if (!ev->failed)
            r = getattr_v(ev, n, o, n->name);
        break;
    }
    case E_GETITEM: {
        ct_value o = ct_eval(ev, n->a);
        ct_value k = ct_eval(ev, n->b);
        if (!ev->failed)
            r = ct_getitem(ev, n, o, k);
        break;
    }
    case E_SLICE: {
        ct_value o = ct_eval(ev, n->a), parts[3];
        const ct_value *pp[3] = {NULL, NULL, NULL};
        for (int k = 0; k < 3; k++)
            if (n->kids[k]) {
                parts[k] = ct_eval(ev, n->kids[k]);
                pp[k] = &parts[k];
            }
        if (!ev->failed)
            r = eval_slice(ev, n, o, pp[0], pp[1], pp[2]);
        break;
    }
    case E_CALL: r = eval_call(ev, n); break;
    case E_FILTER: r = ct_apply_filter(ev, n); break;
    case E_BLOCK: {
        ct_value v;
        if (render_body(ev, n, &v))
            r = v;
        break;
    }
    case E_TEST: {
        int t = ct_apply_test_node(ev, n);
        r = ct_bool(t > 0);
        break;
    }
    case E_NEG:
    case E_POS: {
        ct_value v = ct_eval(ev, n->a);
        if (ev->failed)
            break;
        if (v.t == CT_INT)
            r = n->kind == E_NEG ? (v.u.i == INT64_MIN ? ct_float(-(double)v.u.i) : ct_int(-v.u.i)) : v;
        else if (v.t == CT_BOOL)
            r = ct_int(n->kind == E_NEG ? -v.u.b : v.u.b);
        else if (v.t == CT_FLOAT)
            r = ct_float(n->kind == E_NEG ? -v.u.f : v.u.f);
        else if (v.t == CT_UNDEF)
            ct_fail_undefined(ev, n, &v);
        else
            ct_fail(ev, n, "bad operand type for unary %c: '%s'", n->kind == E_NEG ? '-' : '+',
                    ct_type_name(&v));
        break;
    }
    case E_NOT: {
        ct_value v = ct_eval(ev, n->a);
        r = ct_bool(!ct_truthy(&v));
        break;
    }
    case E_AND:
    case E_OR: {
        ct_value v = ct_eval(ev, n->a);
        if (ev->failed)
            break;
        int t = ct_truthy(&v);
        if ((n->kind == E_AND) ? !t : t)
            r = v;
        else
            r = ct_eval(ev, n->b);
        break;
    }
    case E_COND: {
        ct_value c = ct_eval(ev, n->a);
        if (ev->failed)
            break;
        if (ct_truthy(&c))
            r = ct_eval(ev, n->b);
        else if (n->c)
            r = ct_eval(ev, n->c);
        else
            r = ct_undef((ct_str){"", 0});
        break;
    }
    case E_BIN: {
        ct_value x = ct_eval(ev, n->a);
        ct_value y = ct_eval(ev, n->b);
        if (!ev->failed)
            r = binop(ev, n, n->op, x, y);
        break;
    }
    case E_CMP: {
        ct_value x = ct_eval(ev, n->kids[0]);
        int ok = 1;
        for (size_t i = 1; i < n->nkids && ok && !ev->failed; i++) {
            ct_value y = ct_eval(ev, n->kids[i]);
            if (ev->failed)
                break;
            int c = cmp_op(ev, n, n->ops[i - 1], &x, &y);
            if (c < 0)
                break;
            ok = c;
            x = y;
        }
        r = ct_bool(ok);
        break;
    }
    default: ct_fail(ev, n, "not an expression"); break;
    }
    ev->eval_depth--;
    return ev->failed ? ct_none() : r;
}

/* ---------------------------------------------------------------- statements */
/* The items a for-loop walks: a list (dict keys, string characters). */
ct_value ct_iterable(ct_ev *ev, const ct_node *at, ct_value v)
{
    ct_value r = {.t = CT_LIST};
    if (v.t == CT_LIST)
        return v;
    if (v.t == CT_UNDEF) {
        r.u.l = ct_list_new(ev->a, 0);
    } else if (v.t == CT_DICT) {
        r.u.l = ct_list_new(ev->a, v.u.d->n);
        if (r.u.l)
            for (size_t i = 0; i < v.u.d->n; i++)
                r.u.l->v[i] = ct_strv(v.u.d->k[i].s, v.u.d->k[i].n);
    } else if (v.t == CT_STR) {
        size_t n = ct_utf8_len(v.u.s);
        r.u.l = ct_list_new(ev->a, n);
        if (r.u.l) {
            size_t o = 0;
            for (size_t i = 0; i < n; i++) {
                size_t step = ct_utf8_offset(ct_strv(v.u.s.s + o, v.u.s.n - o).u.s, 1);
                r.u.l->v[i] = ct_strv(v.u.s.s + o, step);
                o += step;
            }
        }
    } else {
        ct_fail(ev, at, "'%s' object is not iterable", ct_type_name(&v));
        return ct_none();
    }
    if (!r.u.l) {
        ct_oom(ev, at);
        return ct_none();
    }
    return r;
}

static int bind_targets(ct_ev *ev, const ct_node *n, ct_scope *s, const ct_str *names,
                        size_t nnames, ct_value item)
{
    if (nnames == 1)
        return assign(ev, s, names[0], item, n);
    ct_value seq = ct_iterable(ev, n, item);
    if (ev->failed)
        return -1;
    if (seq.u.l->n != nnames) {
        ct_fail(ev, n, "cannot unpack %zu values into %zu names", seq.u.l->n, nnames);
        return -1;
    }
    for (size_t i = 0; i < nnames; i++)
        if (assign(ev, s, names[i], seq.u.l->v[i], n))
            return -1;
    return 0;
}

static void exec_for(ct_ev *ev, const ct_node *n)
{
    ct_value it = ct_eval(ev, n->a);
    if (ev->failed)
        return;
    ct_value seq = ct_iterable(ev, n, it);
    if (ev->failed)
        return;
    ct_list *items = seq.u.l;
    if (n->b) { /* loop filter: applied before loop.index and loop.length */
        ct_list *kept = ct_list_new(ev->a, items->n);
        if (!kept) {
            ct_oom(ev, n);
            return;
        }
        size_t k = 0;
        for (size_t i = 0; i < items->n && !ev->failed; i++) {
            ct_scope *s = ct_scope_new(ev, ev->scope);
            if (!s) {
                ct_oom(ev, n);
                return;
            }
            if (bind_targets(ev, n, s, n->names, n->nnames, items->v[i]))
                return;
            ct_scope *saved = ev->scope;
            ev->scope = s;
            ct_value c = ct_eval(ev, n->b);
            ev->scope = saved;
            if (ct_truthy(&c))
                kept->v[k++] = items->v[i];
        }
        kept->n = k;
        items = kept;
    }
    if (ev->failed)
        return;
    if (items->n == 0) {
        ct_exec_body(ev, n->orelse, n->norelse);
        return;
    }
    static const char *const keys[] = {"index", "index0", "revindex", "revindex0", "first",
                                       "last", "length", "depth", "depth0", "previtem",
                                       "nextitem"};
    size_t len = items->n;
    for (size_t i = 0; i < len && !ev->failed; i++) {
        ct_scope *s = ct_scope_new(ev, ev->scope);
        ct_dict *loop = ct_dict_new(ev->a, 12);
        if (!s || !loop) {
            ct_oom(ev, n);
            return;
        }
        ct_value vals[11] = {
            ct_int((int64_t)i + 1), ct_int((int64_t)i), ct_int((int64_t)(len - i)),
            ct_int((int64_t)(len - i - 1)), ct_bool(i == 0), ct_bool(i + 1 == len),
            ct_int((int64_t)len), ct_int(1), ct_int(0),
            i ? items->v[i - 1] : ct_undef((ct_str){"previtem", 8}),
            i + 1 < len ? items->v[i + 1] : ct_undef((ct_str){"nextitem", 8}),
        };
        for (int k = 0; k < 11; k++)
            if (ct_dict_set(ev->a, loop, (ct_str){keys[k], strlen(keys[k])}, vals[k])) {
                ct_oom(ev, n);
                return;
            }
        ct_value lv = {.t = CT_DICT};
        lv.u.d = loop;
        if (assign(ev, s, (ct_str){"loop", 4}, lv, n) ||
            bind_targets(ev, n, s, n->names, n->nnames, items->v[i]))
            return;
        ct_scope *saved = ev->scope;
        ev->scope = s;
        ct_exec_body(ev, n->body, n->nbody);
        ev->scope = saved;
        int brk = ev->brk;
        ev->brk = 0;
        if (brk == 1)
            break;
    }
}

static void exec_node(ct_ev *ev, const ct_node *n)
{
    if (ev->failed)
        return;
    if (++ev->steps > MAX_STEPS) {
        ct_fail(ev, n, "template takes too many steps (limit %u)", MAX_STEPS);
        return;
    }
    switch (n->kind) {
    case N_TEXT:
        if (ct_buf_put(ev->out, n->lit.u.s.s, n->lit.u.s.n))
            ct_oom(ev, n);
        break;
    case N_OUTPUT: {
        ct_value v = ct_eval(ev, n->a);
        if (!ev->failed && ct_print_str(ev->out, &v))
            ct_oom(ev, n);
        break;
    }
    case N_IF: {
        ct_value c = ct_eval(ev, n->a);
        if (ev->failed)
            break;
        if (ct_truthy(&c))
            ct_exec_body(ev, n->body, n->nbody);
        else
            ct_exec_body(ev, n->orelse, n->norelse);
        break;
    }
    case N_FOR: exec_for(ev, n); break;
    case N_SET: {
        ct_value v = ct_eval(ev, n->a);
        if (!ev->failed)
            bind_targets(ev, n, ev->scope, n->names, n->nnames, v);
        break;
    }
    case N_SET_ATTR: {
        ct_value *ns = lookup(ev->scope, n->names[0]);
        if (!ns || ns->t != CT_NS) {
            ct_fail(ev, n, "cannot assign attribute on non-namespace object '%.*s'",
                    (int)n->names[0].n, n->names[0].s);
            break;
        }
        ct_value v = ct_eval(ev, n->a);
        if (!ev->failed && ct_dict_set(ev->a, ns->u.d, n->name, v))
            ct_oom(ev, n);
        break;
    }
    case N_SET_BLOCK: {
        ct_value v;
        if (render_body(ev, n, &v))
            assign(ev, ev->scope, n->names[0], v, n);
        break;
    }
    case N_MACRO: {
        ct_value m = {.t = CT_MACRO};
        m.u.macro = n;
        assign(ev, ev->scope, n->name, m, n);
        break;
    }
    case N_BREAK: ev->brk = 1; break;
    case N_CONTINUE: ev->brk = 2; break;
    case N_BODY: ct_exec_body(ev, n->body, n->nbody); break;
    default: ct_fail(ev, n, "not a statement"); break;
    }
}

void ct_exec_body(ct_ev *ev, ct_node *const *body, size_t n)
{
    for (size_t i = 0; i < n && !ev->failed && !ev->brk; i++)
        exec_node(ev, body[i]);
}

mr_status ct_render(const ct_template *t, ct_arena *arena, const ct_var *vars, size_t nvars,
                    int64_t now, char **out, size_t *out_len, mr_error *err)
{
    ct_ev ev = {.a = arena, .err = err, .now = now, .limit = 64u << 20};
    ct_buf b = {.limit = ev.limit};
    ct_scope *globals = ct_scope_new(&ev, NULL);
    ct_scope *top = globals ? ct_scope_new(&ev, globals) : NULL;
    if (!top)
        return mr_fail(err, MR_ENOMEM, "chat template", NULL, MR_NO_OFFSET, "out of memory");
    if (ct_add_globals(&ev, globals))
        return MR_ENOMEM;
    for (size_t i = 0; i < nvars; i++)
        if (assign(&ev, top, vars[i].name, vars[i].v, NULL))
            return err ? err->code : MR_ENOMEM;
    ev.top = top;
    ev.scope = top;
    ev.out = &b;
    ct_exec_body(&ev, t->root->body, t->root->nbody);
    if (!ev.failed && b.over)
        ct_oom(&ev, NULL);
    if (ev.failed) {
        free(b.p);
        return err ? err->code : MR_EINVAL;
    }
    if (!b.p) {
        b.p = malloc(1);
        if (!b.p)
            return mr_fail(err, MR_ENOMEM, "chat template", NULL, MR_NO_OFFSET, "out of memory");
        b.p[0] = 0;
    }
    *out = b.p;
    *out_len = b.n;
    return MR_OK;
}
