/* chat_template_parse.c - Jinja-subset lexer and parser: template text to
 * an AST in the template's arena.
 *
 * The lexer reproduces Jinja2's whitespace rules as Hugging Face configures
 * them: newlines normalised to "\n", one trailing newline dropped,
 * trim_blocks (the "\n" right after a block or comment tag is removed),
 * lstrip_blocks (spaces and tabs between a line start and a block or
 * comment tag are removed), "-" strips all whitespace on its side and "+"
 * keeps it.  Grammar and precedence follow jinja2/parser.py.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_template_internal.h"

enum {
    T_EOF, T_TEXT, T_VAR_BEGIN, T_VAR_END, T_BLOCK_BEGIN, T_BLOCK_END, T_NAME, T_STRING,
    T_INT, T_FLOAT, T_OP
};

typedef struct {
    int kind;
    int line, col;
    ct_str s;  /* TEXT, NAME, STRING (decoded), OP */
    int64_t i;
    double f;
} tok;

typedef struct {
    ct_arena *a;
    const char *src; /* normalised source */
    size_t len;
    tok *toks;
    size_t ntok, cap, pos;
    mr_error *err;
    int failed;
    int depth;
    int loops; /* for-loops around the statement being parsed (break/continue) */
} parser;

#define MAX_DEPTH 200

static mr_status fail_at(parser *p, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static mr_status fail_at(parser *p, int line, int col, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!p->failed) {
        char field[48];
        snprintf(field, sizeof field, "line %d, column %d", line, col);
        mr_fail(p->err, MR_EFORMAT, "chat template", field, MR_NO_OFFSET, "%s", msg);
    }
    p->failed = 1;
    return MR_EFORMAT;
}

static void line_col(const parser *p, size_t off, int *line, int *col)
{
    int l = 1, c = 1;
    for (size_t i = 0; i < off && i < p->len; i++) {
        if (p->src[i] == '\n') {
            l++;
            c = 1;
        } else
            c++;
    }
    *line = l;
    *col = c;
}

static tok *push_tok(parser *p, int kind, size_t off)
{
    if (p->ntok == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 256;
        tok *t = ct_alloc(p->a, cap * sizeof *t);
        if (!t) {
            fail_at(p, 0, 0, "template too large");
            return NULL;
        }
        if (p->ntok)
            memcpy(t, p->toks, p->ntok * sizeof *t);
        p->toks = t;
        p->cap = cap;
    }
    tok *t = &p->toks[p->ntok++];
    memset(t, 0, sizeof *t);
    t->kind = kind;
    line_col(p, off, &t->line, &t->col);
    return t;
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }
static int is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static int is_digit(char c) { return c >= '0' && c <= '9'; }

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static size_t put_utf8(char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Lex a string literal starting at src[*i] (a quote); Python's
 * unicode-escape decoding of its body. */
static int lex_string(parser *p, size_t *i)
{
    size_t start = *i;
    char q = p->src[*i];
    size_t j = *i + 1;
    while (j < p->len && p->src[j] != q) {
        if (p->src[j] == '\\')
            j++;
        j++;
    }
    if (j >= p->len) {
        int l, c;
        line_col(p, start, &l, &c);
        fail_at(p, l, c, "unterminated string");
        return -1;
    }
    const char *b = p->src + start + 1;
    size_t n = j - start - 1;
    char *o = ct_alloc(p->a, n * 2 + 8);
    if (!o) {
        fail_at(p, 0, 0, "template too large");
        return -1;
    }
    size_t k = 0;
    for (size_t x = 0; x < n; x++) {
        if (b[x] != '\\' || x + 1 >= n) {
            o[k++] = b[x];
            continue;
        }
        char e = b[++x];
        int h;
        switch (e) {
        case 'n': o[k++] = '\n'; break;
        case 't': o[k++] = '\t'; break;
        case 'r': o[k++] = '\r'; break;
        case 'b': o[k++] = '\b'; break;
        case 'f': o[k++] = '\f'; break;
        case 'v': o[k++] = '\v'; break;
        case 'a': o[k++] = '\a'; break;
        case '\\': o[k++] = '\\'; break;
        case '\'': o[k++] = '\''; break;
        case '"': o[k++] = '"'; break;
        case '\n': break;
        case 'x':
        case 'u':
        case 'U': {
            int digits = e == 'x' ? 2 : e == 'u' ? 4 : 8;
            uint32_t cp = 0;
            int ok = x + (size_t)digits < n;
            for (int d = 0; ok && d < digits; d++) {
                h = hexval(b[x + 1 + d]);
                if (h < 0)
                    ok = 0;
                else
                    cp = cp * 16 + (uint32_t)h;
            }
            if (!ok || cp > 0x10FFFF) {
                int l, c;
                line_col(p, start, &l, &c);
                fail_at(p, l, c, "bad \\%c escape in string", e);
                return -1;
            }
            x += (size_t)digits;
            k += put_utf8(o + k, cp);
            break;
        }
        default:
            if (e >= '0' && e <= '7') {
                uint32_t cp = 0;
                int d = 0;
                while (d < 3 && x < n && b[x] >= '0' && b[x] <= '7') {
                    cp = cp * 8 + (uint32_t)(b[x] - '0');
                    x++;
                    d++;
                }
                x--;
                k += put_utf8(o + k, cp);
            } else {
                o[k++] = '\\';
                o[k++] = e;
            }
        }
    }
    tok *t = push_tok(p, T_STRING, start);
    if (!t)
        return -1;
    t->s.s = o;
    t->s.n = k;
    *i = j + 1;
    return 0;
}

static const char *const ops3[] = {NULL};
static const char *const ops2[] = {"//", "**", "==", "!=", "<=", ">=", NULL};
static const char ops1[] = "+-*/%~<>=()[]{},.:|;";

/* Lex the inside of a tag from *i; stop at its end ("}}" or "%}" with an
 * optional "-" or "+" before it) when brackets balance.  *strip_after: the
 * end's whitespace control ('-', '+' or 0). */
static int lex_tag(parser *p, size_t *i, int is_block, int *strip_after, size_t *end_off)
{
    int balance = 0;
    (void)ops3;
    while (1) {
        while (*i < p->len && is_space(p->src[*i]))
            (*i)++;
        if (*i >= p->len) {
            int l, c;
            line_col(p, *i, &l, &c);
            fail_at(p, l, c, "unexpected end of template inside a tag");
            return -1;
        }
        const char *s = p->src + *i;
        size_t left = p->len - *i;
        char close = is_block ? '%' : '}';
        if (balance == 0) {
            for (int sign = 0; sign < 2; sign++) {
                size_t off = sign;
                if (sign && s[0] != '-' && s[0] != '+')
                    continue;
                if (left >= off + 2 && s[off] == close && s[off + 1] == '}') {
                    *strip_after = sign ? s[0] : 0;
                    if (!is_block && *strip_after == '+')
                        continue; /* "+}}" is not an end */
                    *end_off = *i;
                    *i += off + 2;
                    return 0;
                }
            }
        }
        if (is_alpha(s[0])) {
            size_t n = 1;
            while (n < left && (is_alpha(s[n]) || is_digit(s[n])))
                n++;
            tok *t = push_tok(p, T_NAME, *i);
            if (!t)
                return -1;
            t->s.s = s;
            t->s.n = n;
            *i += n;
            continue;
        }
        if (is_digit(s[0])) {
            size_t n = 0;
            int is_float = 0;
            while (n < left && (is_digit(s[n]) || s[n] == '_'))
                n++;
            if (n + 1 < left && s[n] == '.' && is_digit(s[n + 1])) {
                is_float = 1;
                n++;
                while (n < left && (is_digit(s[n]) || s[n] == '_'))
                    n++;
            }
            if (n < left && (s[n] == 'e' || s[n] == 'E')) {
                size_t m = n + 1;
                if (m < left && (s[m] == '+' || s[m] == '-'))
                    m++;
                if (m < left && is_digit(s[m])) {
                    is_float = 1;
                    n = m;
                    while (n < left && is_digit(s[n]))
                        n++;
                }
            }
            char num[64];
            size_t k = 0;
            for (size_t x = 0; x < n && k < sizeof num - 1; x++)
                if (s[x] != '_')
                    num[k++] = s[x];
            num[k] = 0;
            tok *t = push_tok(p, is_float ? T_FLOAT : T_INT, *i);
            if (!t)
                return -1;
            if (is_float)
                t->f = strtod(num, NULL);
            else {
                char *e;
                unsigned long long v = strtoull(num, &e, 10);
                if (v > INT64_MAX) {
                    fail_at(p, t->line, t->col, "integer literal too large");
                    return -1;
                }
                t->i = (int64_t)v;
            }
            *i += n;
            continue;
        }
        if (s[0] == '\'' || s[0] == '"') {
            if (lex_string(p, i))
                return -1;
            continue;
        }
        size_t n = 0;
        for (int k = 0; ops2[k]; k++)
            if (left >= 2 && s[0] == ops2[k][0] && s[1] == ops2[k][1]) {
                n = 2;
                break;
            }
        if (!n && strchr(ops1, s[0]) && s[0])
            n = 1;
        if (!n) {
            int l, c;
            line_col(p, *i, &l, &c);
            fail_at(p, l, c, "unexpected character '%c'", s[0]);
            return -1;
        }
        if (n == 1) {
            if (s[0] == '(' || s[0] == '[' || s[0] == '{')
                balance++;
            else if (s[0] == ')' || s[0] == ']' || s[0] == '}') {
                if (balance == 0) {
                    int l, c;
                    line_col(p, *i, &l, &c);
                    fail_at(p, l, c, "unexpected '%c'", s[0]);
                    return -1;
                }
                balance--;
            }
        }
        tok *t = push_tok(p, T_OP, *i);
        if (!t)
            return -1;
        t->s.s = s;
        t->s.n = n;
        *i += n;
    }
}

static int text_token(parser *p, size_t start, size_t end)
{
    if (end <= start)
        return 0;
    tok *t = push_tok(p, T_TEXT, start);
    if (!t)
        return -1;
    t->s.s = p->src + start;
    t->s.n = end - start;
    return 0;
}

static int lex(parser *p)
{
    size_t i = 0, text_start = 0;
    int line_starting = 1;
    while (1) {
        /* find the next tag opening */
        size_t j = text_start;
        int kind = 0;
        while (j + 1 < p->len) {
            if (p->src[j] == '{' && (p->src[j + 1] == '{' || p->src[j + 1] == '%' || p->src[j + 1] == '#')) {
                kind = p->src[j + 1];
                break;
            }
            j++;
        }
        if (!kind) {
            if (text_token(p, text_start, p->len))
                return -1;
            push_tok(p, T_EOF, p->len);
            return p->failed ? -1 : 0;
        }
        size_t text_end = j;
        char sign = 0;
        size_t after = j + 2;
        if (after < p->len && (p->src[after] == '-' || p->src[after] == '+'))
            sign = p->src[after++];
        if (sign == '-') {
            while (text_end > text_start && is_space(p->src[text_end - 1]))
                text_end--;
        } else if (sign != '+' && kind != '{') {
            size_t l_pos = text_end;
            while (l_pos > text_start && p->src[l_pos - 1] != '\n')
                l_pos--;
            int has_nl = l_pos > text_start;
            if (has_nl || line_starting) {
                int all_ws = l_pos < text_end;
                for (size_t x = l_pos; x < text_end; x++)
                    if (!is_space(p->src[x]))
                        all_ws = 0;
                if (all_ws)
                    text_end = l_pos;
            }
        }
        if (text_token(p, text_start, text_end))
            return -1;
        i = after;
        if (kind == '#') {
            /* comment: up to the first "#}", with its own end control */
            size_t k = i;
            while (k + 1 < p->len && !(p->src[k] == '#' && p->src[k + 1] == '}'))
                k++;
            if (k + 1 >= p->len) {
                int l, c;
                line_col(p, j, &l, &c);
                fail_at(p, l, c, "missing end of comment tag");
                return -1;
            }
            char esign = k > i && (p->src[k - 1] == '-' || p->src[k - 1] == '+') ? p->src[k - 1] : 0;
            i = k + 2;
            if (esign == '-')
                while (i < p->len && is_space(p->src[i]))
                    i++;
            else if (esign != '+' && i < p->len && p->src[i] == '\n')
                i++;
        } else {
            int is_block = kind == '%';
            tok *t = push_tok(p, is_block ? T_BLOCK_BEGIN : T_VAR_BEGIN, j);
            if (!t)
                return -1;
            int strip_after = 0;
            size_t end_off = 0;
            if (lex_tag(p, &i, is_block, &strip_after, &end_off))
                return -1;
            if (!push_tok(p, is_block ? T_BLOCK_END : T_VAR_END, end_off))
                return -1;
            if (strip_after == '-')
                while (i < p->len && is_space(p->src[i]))
                    i++;
            else if (is_block && strip_after != '+' && i < p->len && p->src[i] == '\n')
                i++;
        }
        line_starting = i > 0 && p->src[i - 1] == '\n';
        text_start = i;
    }
}

/* ---------------------------------------------------------------- parser */
static tok *cur(parser *p) { return &p->toks[p->pos]; }
static tok *peek(parser *p, size_t k)
{
    size_t i = p->pos + k;
    return &p->toks[i < p->ntok ? i : p->ntok - 1];
}
static int is_op(const tok *t, const char *op) { return t->kind == T_OP && ct_str_eq(t->s, op); }
static int is_name(const tok *t, const char *n) { return t->kind == T_NAME && ct_str_eq(t->s, n); }
static void advance(parser *p)
{
    if (p->pos + 1 < p->ntok)
        p->pos++;
}
static int accept_op(parser *p, const char *op)
{
    if (is_op(cur(p), op)) {
        advance(p);
        return 1;
    }
    return 0;
}
static int accept_name(parser *p, const char *n)
{
    if (is_name(cur(p), n)) {
        advance(p);
        return 1;
    }
    return 0;
}

static const char *tok_desc(const tok *t, char *buf, size_t cap)
{
    switch (t->kind) {
    case T_EOF: return "end of template";
    case T_BLOCK_END: return "end of statement block";
    case T_VAR_END: return "end of print statement";
    case T_NAME:
    case T_OP: snprintf(buf, cap, "'%.*s'", (int)(t->s.n > 40 ? 40 : t->s.n), t->s.s); return buf;
    case T_STRING: return "string";
    case T_INT:
    case T_FLOAT: return "number";
    default: return "text";
    }
}

static int expect_op(parser *p, const char *op)
{
    if (accept_op(p, op))
        return 0;
    char b[64];
    fail_at(p, cur(p)->line, cur(p)->col, "expected '%s', got %s", op, tok_desc(cur(p), b, sizeof b));
    return -1;
}

static ct_node *mk(parser *p, ct_kind k, const tok *at)
{
    ct_node *n = ct_alloc(p->a, sizeof *n);
    if (!n) {
        fail_at(p, at->line, at->col, "template too large");
        return NULL;
    }
    n->kind = k;
    n->line = at->line;
    n->col = at->col;
    return n;
}

/* A growing array of node pointers in the arena. */
typedef struct {
    ct_node **v;
    size_t n, cap;
} nvec;

static int nvec_push(parser *p, nvec *v, ct_node *n)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 4;
        ct_node **nv = ct_alloc(p->a, cap * sizeof *nv);
        if (!nv) {
            fail_at(p, 0, 0, "template too large");
            return -1;
        }
        if (v->n)
            memcpy(nv, v->v, v->n * sizeof *nv);
        v->v = nv;
        v->cap = cap;
    }
    v->v[v->n++] = n;
    return 0;
}

static ct_node *parse_expr(parser *p, int with_cond);
static ct_node *parse_tuple(parser *p, int with_cond);
static ct_node *parse_unary(parser *p, int with_filter);
static ct_node *parse_primary(parser *p);

static int enter(parser *p)
{
    if (++p->depth > MAX_DEPTH) {
        fail_at(p, cur(p)->line, cur(p)->col, "expression nested too deeply");
        return -1;
    }
    return 0;
}

/* Arguments of a call "(a, b, k=v)"; the "(" is current. */
static int parse_args(parser *p, nvec *args)
{
    if (expect_op(p, "("))
        return -1;
    while (!is_op(cur(p), ")")) {
        if (args->n && expect_op(p, ","))
            return -1;
        if (is_op(cur(p), ")"))
            break;
        ct_node *arg;
        if (cur(p)->kind == T_NAME && is_op(peek(p, 1), "=")) {
            arg = mk(p, E_KWARG, cur(p));
            if (!arg)
                return -1;
            arg->name = cur(p)->s;
            advance(p);
            advance(p);
            arg->a = parse_expr(p, 1);
            if (!arg->a)
                return -1;
        } else if (is_op(cur(p), "*")) {
            fail_at(p, cur(p)->line, cur(p)->col, "*args and **kwargs are not supported");
            return -1;
        } else {
            arg = parse_expr(p, 1);
            if (!arg)
                return -1;
        }
        if (nvec_push(p, args, arg))
            return -1;
    }
    advance(p);
    return 0;
}

static ct_node *parse_subscript(parser *p, ct_node *obj, const tok *at)
{
    /* "[" consumed.  a[i], a[s:e], a[s:e:st] */
    ct_node *part[3] = {NULL, NULL, NULL};
    int nparts = 0, is_slice = 0;
    while (1) {
        if (is_op(cur(p), ":")) {
            is_slice = 1;
            if (nparts >= 2) {
                fail_at(p, cur(p)->line, cur(p)->col, "too many ':' in a slice");
                return NULL;
            }
            nparts++;
            advance(p);
            continue;
        }
        if (is_op(cur(p), "]"))
            break;
        if (part[nparts]) {
            char b[64];
            fail_at(p, cur(p)->line, cur(p)->col, "unexpected %s in subscript", tok_desc(cur(p), b, sizeof b));
            return NULL;
        }
        part[nparts] = parse_expr(p, 1);
        if (!part[nparts])
            return NULL;
    }
    advance(p);
    ct_node *n;
    if (!is_slice) {
        if (!part[0]) {
            fail_at(p, at->line, at->col, "empty subscript");
            return NULL;
        }
        n = mk(p, E_GETITEM, at);
        if (!n)
            return NULL;
        n->a = obj;
        n->b = part[0];
        return n;
    }
    n = mk(p, E_SLICE, at);
    if (!n)
        return NULL;
    n->a = obj;
    n->kids = ct_alloc(p->a, 3 * sizeof(ct_node *));
    if (!n->kids)
        return NULL;
    memcpy(n->kids, part, sizeof part);
    n->nkids = 3;
    return n;
}

static ct_node *parse_postfix(parser *p, ct_node *n)
{
    while (n) {
        tok *t = cur(p);
        if (is_op(t, ".")) {
            advance(p);
            tok *nt = cur(p);
            ct_node *g = mk(p, E_GETATTR, t);
            if (!g)
                return NULL;
            if (nt->kind == T_NAME)
                g->name = nt->s;
            else if (nt->kind == T_INT) {
                char buf[32];
                int k = snprintf(buf, sizeof buf, "%lld", (long long)nt->i);
                g->kind = E_GETITEM;
                g->b = mk(p, E_LIT, nt);
                if (!g->b)
                    return NULL;
                g->b->lit = ct_int(nt->i);
                (void)k;
            } else {
                fail_at(p, nt->line, nt->col, "expected a name after '.'");
                return NULL;
            }
            advance(p);
            g->a = n;
            n = g;
        } else if (is_op(t, "[")) {
            advance(p);
            n = parse_subscript(p, n, t);
        } else if (is_op(t, "(")) {
            ct_node *c = mk(p, E_CALL, t);
            nvec args = {0};
            if (!c || parse_args(p, &args))
                return NULL;
            c->a = n;
            c->kids = args.v;
            c->nkids = args.n;
            n = c;
        } else
            break;
    }
    return n;
}

static ct_node *parse_filter_expr(parser *p, ct_node *n)
{
    while (n) {
        tok *t = cur(p);
        if (is_op(t, "|")) {
            advance(p);
            tok *nt = cur(p);
            if (nt->kind != T_NAME) {
                fail_at(p, nt->line, nt->col, "expected a filter name after '|'");
                return NULL;
            }
            ct_node *f = mk(p, E_FILTER, nt);
            if (!f)
                return NULL;
            f->name = nt->s;
            advance(p);
            f->a = n;
            if (is_op(cur(p), "(")) {
                nvec args = {0};
                if (parse_args(p, &args))
                    return NULL;
                f->kids = args.v;
                f->nkids = args.n;
            }
            n = f;
        } else if (is_name(t, "is")) {
            advance(p);
            ct_node *f = mk(p, E_TEST, t);
            if (!f)
                return NULL;
            if (accept_name(p, "not"))
                f->negate = 1;
            tok *nt = cur(p);
            if (nt->kind != T_NAME) {
                fail_at(p, nt->line, nt->col, "expected a test name after 'is'");
                return NULL;
            }
            f->name = nt->s;
            advance(p);
            f->a = n;
            tok *at = cur(p);
            if (is_op(at, "(")) {
                nvec args = {0};
                if (parse_args(p, &args))
                    return NULL;
                f->kids = args.v;
                f->nkids = args.n;
            } else if ((at->kind == T_NAME && !is_name(at, "else") && !is_name(at, "or") &&
                        !is_name(at, "and") && !is_name(at, "if") && !is_name(at, "is") &&
                        !is_name(at, "in") && !is_name(at, "not")) ||
                       at->kind == T_STRING || at->kind == T_INT || at->kind == T_FLOAT ||
                       is_op(at, "[") || is_op(at, "{")) {
                ct_node *arg = parse_postfix(p, parse_primary(p));
                if (!arg)
                    return NULL;
                f->kids = ct_alloc(p->a, sizeof(ct_node *));
                if (!f->kids)
                    return NULL;
                f->kids[0] = arg;
                f->nkids = 1;
            }
            n = f;
        } else if (is_op(t, "(")) {
            n = parse_postfix(p, n);
        } else
            break;
    }
    return n;
}

static ct_node *parse_primary(parser *p)
{
    if (enter(p))
        return NULL;
    tok *t = cur(p);
    ct_node *n = NULL;
    if (t->kind == T_NAME) {
        n = mk(p, E_LIT, t);
        if (!n)
            goto out;
        if (ct_str_eq(t->s, "true") || ct_str_eq(t->s, "True"))
            n->lit = ct_bool(1);
        else if (ct_str_eq(t->s, "false") || ct_str_eq(t->s, "False"))
            n->lit = ct_bool(0);
        else if (ct_str_eq(t->s, "none") || ct_str_eq(t->s, "None"))
            n->lit = ct_none();
        else {
            n->kind = E_NAME;
            n->name = t->s;
        }
        advance(p);
    } else if (t->kind == T_STRING) {
        /* adjacent literals concatenate */
        size_t total = 0, k = p->pos;
        while (p->toks[k].kind == T_STRING)
            total += p->toks[k++].s.n;
        char *s = ct_alloc(p->a, total + 1);
        n = mk(p, E_LIT, t);
        if (!s || !n)
            goto out;
        size_t o = 0;
        while (cur(p)->kind == T_STRING) {
            memcpy(s + o, cur(p)->s.s, cur(p)->s.n);
            o += cur(p)->s.n;
            advance(p);
        }
        n->lit = ct_strv(s, o);
    } else if (t->kind == T_INT || t->kind == T_FLOAT) {
        n = mk(p, E_LIT, t);
        if (!n)
            goto out;
        n->lit = t->kind == T_INT ? ct_int(t->i) : ct_float(t->f);
        advance(p);
    } else if (is_op(t, "(")) {
        advance(p);
        if (is_op(cur(p), ")")) {
            advance(p);
            n = mk(p, E_TUPLE, t);
            goto out;
        }
        n = parse_tuple(p, 1);
        if (n && expect_op(p, ")"))
            n = NULL;
    } else if (is_op(t, "[") || is_op(t, "{")) {
        int dict = is_op(t, "{");
        advance(p);
        nvec items = {0};
        n = mk(p, dict ? E_DICT : E_LIST, t);
        if (!n)
            goto out;
        const char *close = dict ? "}" : "]";
        while (!is_op(cur(p), close)) {
            if (items.n && expect_op(p, ",")) {
                n = NULL;
                goto out;
            }
            if (is_op(cur(p), close))
                break;
            ct_node *e = parse_expr(p, 1);
            if (!e || nvec_push(p, &items, e)) {
                n = NULL;
                goto out;
            }
            if (dict) {
                if (expect_op(p, ":")) {
                    n = NULL;
                    goto out;
                }
                e = parse_expr(p, 1);
                if (!e || nvec_push(p, &items, e)) {
                    n = NULL;
                    goto out;
                }
            }
        }
        advance(p);
        n->kids = items.v;
        n->nkids = items.n;
    } else {
        char b[64];
        fail_at(p, t->line, t->col, "unexpected %s", tok_desc(t, b, sizeof b));
    }
out:
    p->depth--;
    return n;
}

static ct_node *parse_unary(parser *p, int with_filter)
{
    if (enter(p))
        return NULL;
    tok *t = cur(p);
    ct_node *n;
    if (is_op(t, "-") || is_op(t, "+")) {
        advance(p);
        n = mk(p, is_op(t, "-") ? E_NEG : E_POS, t);
        if (n) {
            n->a = parse_unary(p, 0);
            if (!n->a)
                n = NULL;
        }
    } else
        n = parse_primary(p);
    n = parse_postfix(p, n);
    if (with_filter)
        n = parse_filter_expr(p, n);
    p->depth--;
    return n;
}

static ct_node *bin(parser *p, const tok *t, int op, ct_node *a, ct_node *b)
{
    if (!a || !b)
        return NULL;
    ct_node *n = mk(p, E_BIN, t);
    if (!n)
        return NULL;
    n->op = op;
    n->a = a;
    n->b = b;
    return n;
}

static ct_node *parse_pow(parser *p)
{
    ct_node *n = parse_unary(p, 1);
    while (n && is_op(cur(p), "**")) {
        tok *t = cur(p);
        advance(p);
        n = bin(p, t, OP_POW, n, parse_unary(p, 1));
    }
    return n;
}

static ct_node *parse_math2(parser *p)
{
    ct_node *n = parse_pow(p);
    while (n) {
        tok *t = cur(p);
        int op = is_op(t, "*") ? OP_MUL : is_op(t, "/") ? OP_DIV : is_op(t, "//") ? OP_FLOORDIV
                 : is_op(t, "%") ? OP_MOD : -1;
        if (op < 0)
            break;
        advance(p);
        n = bin(p, t, op, n, parse_pow(p));
    }
    return n;
}

static ct_node *parse_concat(parser *p)
{
    ct_node *n = parse_math2(p);
    while (n && is_op(cur(p), "~")) {
        tok *t = cur(p);
        advance(p);
        n = bin(p, t, OP_CONCAT, n, parse_math2(p));
    }
    return n;
}

static ct_node *parse_math1(parser *p)
{
    ct_node *n = parse_concat(p);
    while (n) {
        tok *t = cur(p);
        int op = is_op(t, "+") ? OP_ADD : is_op(t, "-") ? OP_SUB : -1;
        if (op < 0)
            break;
        advance(p);
        n = bin(p, t, op, n, parse_concat(p));
    }
    return n;
}

static ct_node *parse_compare(parser *p)
{
    tok *start = cur(p);
    ct_node *n = parse_math1(p);
    if (!n)
        return NULL;
    nvec operands = {0};
    int ops[64];
    size_t nops = 0;
    while (1) {
        tok *t = cur(p);
        int op = -1;
        if (is_op(t, "=="))
            op = OP_EQ;
        else if (is_op(t, "!="))
            op = OP_NE;
        else if (is_op(t, "<"))
            op = OP_LT;
        else if (is_op(t, "<="))
            op = OP_LE;
        else if (is_op(t, ">"))
            op = OP_GT;
        else if (is_op(t, ">="))
            op = OP_GE;
        else if (is_name(t, "in"))
            op = OP_IN;
        else if (is_name(t, "not") && is_name(peek(p, 1), "in")) {
            op = OP_NOTIN;
            advance(p);
        }
        if (op < 0)
            break;
        if (nops == 63) {
            fail_at(p, t->line, t->col, "comparison chain too long");
            return NULL;
        }
        advance(p);
        if (!operands.n && nvec_push(p, &operands, n))
            return NULL;
        ct_node *r = parse_math1(p);
        if (!r || nvec_push(p, &operands, r))
            return NULL;
        ops[nops++] = op;
    }
    if (!nops)
        return n;
    ct_node *c = mk(p, E_CMP, start);
    if (!c)
        return NULL;
    c->kids = operands.v;
    c->nkids = operands.n;
    c->ops = ct_alloc(p->a, nops * sizeof(int));
    if (!c->ops)
        return NULL;
    memcpy(c->ops, ops, nops * sizeof(int));
    return c;
}

static ct_node *parse_not(parser *p)
{
    tok *t = cur(p);
    if (is_name(t, "not")) {
        if (enter(p))
            return NULL;
        advance(p);
        ct_node *n = mk(p, E_NOT, t);
        if (n) {
            n->a = parse_not(p);
            if (!n->a)
                n = NULL;
        }
        p->depth--;
        return n;
    }
    return parse_compare(p);
}

static ct_node *parse_and(parser *p)
{
    ct_node *n = parse_not(p);
    while (n && is_name(cur(p), "and")) {
        tok *t = cur(p);
        advance(p);
        ct_node *r = parse_not(p);
        ct_node *x = r ? mk(p, E_AND, t) : NULL;
        if (!x)
            return NULL;
        x->a = n;
        x->b = r;
        n = x;
    }
    return n;
}

static ct_node *parse_or(parser *p)
{
    ct_node *n = parse_and(p);
    while (n && is_name(cur(p), "or")) {
        tok *t = cur(p);
        advance(p);
        ct_node *r = parse_and(p);
        ct_node *x = r ? mk(p, E_OR, t) : NULL;
        if (!x)
            return NULL;
        x->a = n;
        x->b = r;
        n = x;
    }
    return n;
}

static ct_node *parse_expr(parser *p, int with_cond)
{
    if (enter(p))
        return NULL;
    ct_node *n = parse_or(p);
    while (with_cond && n && is_name(cur(p), "if")) {
        tok *t = cur(p);
        advance(p);
        ct_node *c = mk(p, E_COND, t);
        if (!c) {
            n = NULL;
            break;
        }
        c->b = n;
        c->a = parse_or(p);
        if (!c->a) {
            n = NULL;
            break;
        }
        if (accept_name(p, "else")) {
            c->c = parse_expr(p, 1);
            if (!c->c) {
                n = NULL;
                break;
            }
        }
        n = c;
    }
    p->depth--;
    return n;
}

/* expr, or a tuple "a, b" without parentheses */
static ct_node *parse_tuple(parser *p, int with_cond)
{
    tok *t = cur(p);
    ct_node *n = parse_expr(p, with_cond);
    if (!n || !is_op(cur(p), ","))
        return n;
    nvec items = {0};
    if (nvec_push(p, &items, n))
        return NULL;
    while (accept_op(p, ",")) {
        tok *c = cur(p);
        if (c->kind == T_VAR_END || c->kind == T_BLOCK_END || is_op(c, ")") || is_op(c, "]"))
            break;
        ct_node *e = parse_expr(p, with_cond);
        if (!e || nvec_push(p, &items, e))
            return NULL;
    }
    ct_node *tu = mk(p, E_TUPLE, t);
    if (!tu)
        return NULL;
    tu->kids = items.v;
    tu->nkids = items.n;
    return tu;
}

/* ---------------------------------------------------------------- statements */
static int parse_body(parser *p, const char *const *ends, nvec *out, ct_str *which);

static int expect_block_end(parser *p)
{
    if (cur(p)->kind == T_BLOCK_END) {
        advance(p);
        return 0;
    }
    char b[64];
    fail_at(p, cur(p)->line, cur(p)->col, "expected end of statement block, got %s",
            tok_desc(cur(p), b, sizeof b));
    return -1;
}

/* Names separated by commas (for targets, set targets). */
static int parse_names(parser *p, ct_str **names, size_t *n)
{
    ct_str tmp[16];
    size_t k = 0;
    int paren = accept_op(p, "(");
    do {
        if (cur(p)->kind != T_NAME || k == 16) {
            fail_at(p, cur(p)->line, cur(p)->col, "expected a variable name");
            return -1;
        }
        tmp[k++] = cur(p)->s;
        advance(p);
    } while (accept_op(p, ","));
    if (paren && expect_op(p, ")"))
        return -1;
    *names = ct_alloc(p->a, k * sizeof(ct_str));
    if (!*names)
        return -1;
    memcpy(*names, tmp, k * sizeof(ct_str));
    *n = k;
    return 0;
}

static ct_node *parse_statement(parser *p)
{
    tok *begin = cur(p); /* the BLOCK_BEGIN */
    advance(p);
    tok *t = cur(p);
    if (t->kind != T_NAME) {
        fail_at(p, t->line, t->col, "expected a statement name");
        return NULL;
    }
    (void)begin;
    ct_node *n = NULL;
    if (enter(p))
        return NULL;
    if (is_name(t, "if")) {
        advance(p);
        n = mk(p, N_IF, t);
        if (!n || !(n->a = parse_tuple(p, 1)) || expect_block_end(p))
            goto fail;
        ct_node *at = n;
        while (1) {
            static const char *const ends[] = {"elif", "else", "endif", NULL};
            nvec body = {0};
            ct_str which;
            if (parse_body(p, ends, &body, &which))
                goto fail;
            at->body = body.v;
            at->nbody = body.n;
            if (ct_str_eq(which, "elif")) {
                ct_node *e = mk(p, N_IF, cur(p));
                if (!e || !(e->a = parse_tuple(p, 1)) || expect_block_end(p))
                    goto fail;
                at->orelse = ct_alloc(p->a, sizeof(ct_node *));
                if (!at->orelse)
                    goto fail;
                at->orelse[0] = e;
                at->norelse = 1;
                at = e;
                continue;
            }
            if (ct_str_eq(which, "else")) {
                static const char *const ends2[] = {"endif", NULL};
                nvec els = {0};
                if (expect_block_end(p) || parse_body(p, ends2, &els, &which))
                    goto fail;
                at->orelse = els.v;
                at->norelse = els.n;
            }
            break;
        }
        if (expect_block_end(p))
            goto fail;
    } else if (is_name(t, "for")) {
        advance(p);
        n = mk(p, N_FOR, t);
        if (!n || parse_names(p, &n->names, &n->nnames))
            goto fail;
        if (!accept_name(p, "in")) {
            fail_at(p, cur(p)->line, cur(p)->col, "expected 'in' in for loop");
            goto fail;
        }
        if (!(n->a = parse_tuple(p, 0)))
            goto fail;
        if (accept_name(p, "if") && !(n->b = parse_expr(p, 1)))
            goto fail;
        if (is_name(cur(p), "recursive")) {
            fail_at(p, cur(p)->line, cur(p)->col, "recursive loops are not supported");
            goto fail;
        }
        if (expect_block_end(p))
            goto fail;
        static const char *const ends[] = {"else", "endfor", NULL};
        nvec body = {0};
        ct_str which;
        p->loops++;
        int bad_body = parse_body(p, ends, &body, &which);
        p->loops--;
        if (bad_body)
            goto fail;
        n->body = body.v;
        n->nbody = body.n;
        if (ct_str_eq(which, "else")) {
            static const char *const ends2[] = {"endfor", NULL};
            nvec els = {0};
            if (expect_block_end(p) || parse_body(p, ends2, &els, &which))
                goto fail;
            n->orelse = els.v;
            n->norelse = els.n;
        }
        if (expect_block_end(p))
            goto fail;
    } else if (is_name(t, "set")) {
        advance(p);
        n = mk(p, N_SET, t);
        if (!n)
            goto fail;
        if (cur(p)->kind == T_NAME && is_op(peek(p, 1), ".") && peek(p, 2)->kind == T_NAME) {
            n->kind = N_SET_ATTR;
            n->names = ct_alloc(p->a, sizeof(ct_str));
            if (!n->names)
                goto fail;
            n->names[0] = cur(p)->s;
            n->nnames = 1;
            n->name = peek(p, 2)->s;
            advance(p);
            advance(p);
            advance(p);
        } else if (parse_names(p, &n->names, &n->nnames))
            goto fail;
        if (cur(p)->kind == T_BLOCK_END && n->kind == N_SET && n->nnames == 1) {
            n->kind = N_SET_BLOCK;
            advance(p);
            static const char *const ends[] = {"endset", NULL};
            nvec body = {0};
            ct_str which;
            if (parse_body(p, ends, &body, &which) || expect_block_end(p))
                goto fail;
            n->body = body.v;
            n->nbody = body.n;
        } else {
            if (expect_op(p, "=") || !(n->a = parse_tuple(p, 1)) || expect_block_end(p))
                goto fail;
        }
    } else if (is_name(t, "macro")) {
        advance(p);
        n = mk(p, N_MACRO, t);
        if (!n || cur(p)->kind != T_NAME) {
            fail_at(p, cur(p)->line, cur(p)->col, "expected a macro name");
            goto fail;
        }
        n->name = cur(p)->s;
        advance(p);
        if (expect_op(p, "("))
            goto fail;
        ct_str names[32];
        ct_node *defs[32];
        size_t k = 0;
        while (!is_op(cur(p), ")")) {
            if (k && expect_op(p, ","))
                goto fail;
            if (cur(p)->kind != T_NAME || k == 32) {
                fail_at(p, cur(p)->line, cur(p)->col, "expected a parameter name");
                goto fail;
            }
            names[k] = cur(p)->s;
            defs[k] = NULL;
            advance(p);
            if (accept_op(p, "=") && !(defs[k] = parse_expr(p, 1)))
                goto fail;
            k++;
        }
        advance(p);
        n->names = ct_alloc(p->a, (k + 1) * sizeof(ct_str));
        n->defaults = ct_alloc(p->a, (k + 1) * sizeof(ct_node *));
        if (!n->names || !n->defaults)
            goto fail;
        memcpy(n->names, names, k * sizeof(ct_str));
        memcpy(n->defaults, defs, k * sizeof(ct_node *));
        n->nnames = k;
        if (expect_block_end(p))
            goto fail;
        static const char *const ends[] = {"endmacro", NULL};
        nvec body = {0};
        ct_str which;
        int outer_loops = p->loops;
        p->loops = 0; /* a macro's body is not inside the caller's loop */
        int bad_body = parse_body(p, ends, &body, &which);
        p->loops = outer_loops;
        if (bad_body)
            goto fail;
        if (cur(p)->kind == T_NAME)
            advance(p); /* {% endmacro name %} */
        if (expect_block_end(p))
            goto fail;
        n->body = body.v;
        n->nbody = body.n;
    } else if (is_name(t, "break") || is_name(t, "continue")) {
        if (!p->loops) {
            fail_at(p, t->line, t->col, "'%.*s' outside a for loop", (int)t->s.n, t->s.s);
            goto fail;
        }
        n = mk(p, is_name(t, "break") ? N_BREAK : N_CONTINUE, t);
        advance(p);
        if (!n || expect_block_end(p))
            goto fail;
    } else if (is_name(t, "generation")) {
        /* transformers' AssistantTracker marks assistant text; it renders
         * its body unchanged */
        advance(p);
        n = mk(p, N_BODY, t);
        if (!n || expect_block_end(p))
            goto fail;
        static const char *const ends[] = {"endgeneration", NULL};
        nvec body = {0};
        ct_str which;
        if (parse_body(p, ends, &body, &which) || expect_block_end(p))
            goto fail;
        n->body = body.v;
        n->nbody = body.n;
    } else if (is_name(t, "filter")) {
        /* {% filter a(x)|b %}body{% endfilter %}: the body's text through
         * the filters, printed */
        advance(p);
        ct_node *top = mk(p, E_BLOCK, t);
        ct_node *blk = top;
        if (!top)
            goto fail;
        do {
            tok *nt = cur(p);
            if (nt->kind != T_NAME) {
                fail_at(p, nt->line, nt->col, "expected a filter name");
                goto fail;
            }
            ct_node *f = mk(p, E_FILTER, nt);
            if (!f)
                goto fail;
            f->name = nt->s;
            advance(p);
            f->a = top;
            if (is_op(cur(p), "(")) {
                nvec args = {0};
                if (parse_args(p, &args))
                    goto fail;
                f->kids = args.v;
                f->nkids = args.n;
            }
            top = f;
        } while (accept_op(p, "|"));
        if (expect_block_end(p))
            goto fail;
        static const char *const ends[] = {"endfilter", NULL};
        nvec body = {0};
        ct_str which;
        if (parse_body(p, ends, &body, &which) || expect_block_end(p))
            goto fail;
        blk->body = body.v;
        blk->nbody = body.n;
        if (!(n = mk(p, N_OUTPUT, t)))
            goto fail;
        n->a = top;
    } else if (is_name(t, "include") || is_name(t, "import") || is_name(t, "extends") ||
               is_name(t, "from")) {
        fail_at(p, t->line, t->col, "'%.*s' is not supported: a chat template is one file",
                (int)t->s.n, t->s.s);
        goto fail;
    } else {
        fail_at(p, t->line, t->col, "unsupported or unknown statement '%.*s'",
                (int)(t->s.n > 40 ? 40 : t->s.n), t->s.s);
        goto fail;
    }
    p->depth--;
    return n;
fail:
    p->depth--;
    if (!p->failed)
        fail_at(p, t->line, t->col, "out of memory");
    return NULL;
}

/* Nodes up to a block whose statement name is in ends (NULL: end of
 * template).  On return the current token is the token after that name. */
static int parse_body(parser *p, const char *const *ends, nvec *out, ct_str *which)
{
    while (1) {
        tok *t = cur(p);
        if (t->kind == T_EOF) {
            if (!ends)
                return 0;
            fail_at(p, t->line, t->col, "unexpected end of template, expected '%s'", ends[0]);
            return -1;
        }
        if (t->kind == T_TEXT) {
            ct_node *n = mk(p, N_TEXT, t);
            if (!n || nvec_push(p, out, n))
                return -1;
            n->lit = ct_strv(t->s.s, t->s.n);
            advance(p);
        } else if (t->kind == T_VAR_BEGIN) {
            advance(p);
            ct_node *n = mk(p, N_OUTPUT, t);
            if (!n || !(n->a = parse_tuple(p, 1)))
                return -1;
            if (cur(p)->kind != T_VAR_END) {
                char b[64];
                fail_at(p, cur(p)->line, cur(p)->col, "expected end of print statement, got %s",
                        tok_desc(cur(p), b, sizeof b));
                return -1;
            }
            advance(p);
            if (nvec_push(p, out, n))
                return -1;
        } else if (t->kind == T_BLOCK_BEGIN) {
            tok *name = peek(p, 1);
            if (ends && name->kind == T_NAME)
                for (int k = 0; ends[k]; k++)
                    if (ct_str_eq(name->s, ends[k])) {
                        *which = name->s;
                        advance(p);
                        advance(p);
                        return 0;
                    }
            if (name->kind == T_NAME &&
                (ct_str_eq(name->s, "endif") || ct_str_eq(name->s, "endfor") ||
                 ct_str_eq(name->s, "else") || ct_str_eq(name->s, "elif") ||
                 ct_str_eq(name->s, "endmacro") || ct_str_eq(name->s, "endset") ||
                 ct_str_eq(name->s, "endgeneration") || ct_str_eq(name->s, "endfilter"))) {
                fail_at(p, name->line, name->col, "unexpected '%.*s'%s%s", (int)name->s.n,
                        name->s.s, ends ? ", expected " : "", ends ? ends[0] : "");
                return -1;
            }
            ct_node *n = parse_statement(p);
            if (!n || nvec_push(p, out, n))
                return -1;
        } else {
            char b[64];
            fail_at(p, t->line, t->col, "unexpected %s", tok_desc(t, b, sizeof b));
            return -1;
        }
    }
}

mr_status ct_parse(ct_template *t, const char *src, size_t len, mr_error *err)
{
    parser p = {.a = &t->arena, .err = err};
    /* newlines to "\n"; one trailing newline dropped (keep_trailing_newline
     * is off) */
    char *norm = ct_alloc(&t->arena, len + 1);
    if (!norm)
        return mr_fail(err, MR_ENOMEM, "chat template", NULL, MR_NO_OFFSET, "template too large");
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '\r') {
            norm[k++] = '\n';
            if (i + 1 < len && src[i + 1] == '\n')
                i++;
        } else
            norm[k++] = src[i];
    }
    if (k && norm[k - 1] == '\n')
        k--;
    norm[k] = 0;
    p.src = norm;
    p.len = k;
    if (lex(&p))
        return MR_EFORMAT;
    nvec body = {0};
    if (parse_body(&p, NULL, &body, NULL))
        return MR_EFORMAT;
    ct_node *root = ct_alloc(&t->arena, sizeof *root);
    if (!root)
        return mr_fail(err, MR_ENOMEM, "chat template", NULL, MR_NO_OFFSET, "template too large");
    root->kind = N_BODY;
    root->body = body.v;
    root->nbody = body.n;
    t->root = root;
    return MR_OK;
}
