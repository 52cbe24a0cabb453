/* chat_template_internal.h - the pieces of the Jinja-subset interpreter
 * shared by its files: an arena, the value type, the AST, the parser and the
 * evaluator.  Not installed; the public API is chat_template.h.
 *
 * Semantics follow Jinja2 3.1 as Hugging Face's apply_chat_template sets it
 * up: ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
 * loopcontrols), default (non-strict) Undefined, a tojson filter that is
 * json.dumps(ensure_ascii=False), raise_exception and strftime_now globals.
 * Values print as Python's str() does.
 */
#ifndef MOERUN_CHAT_TEMPLATE_INTERNAL_H
#define MOERUN_CHAT_TEMPLATE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

/* ---------------------------------------------------------------- arena */
/* Bump allocator: every AST node and every value of one render lives in
 * one arena and dies with it.  limit bounds the total (a hostile template
 * cannot take the machine's memory). */
typedef struct ct_block ct_block;
typedef struct {
    ct_block *head;
    size_t total, limit;
} ct_arena;

void ct_arena_init(ct_arena *a, size_t limit);
void ct_arena_free(ct_arena *a);
/* Zeroed memory, 16-byte aligned; NULL when the limit is reached. */
void *ct_alloc(ct_arena *a, size_t n);

/* ---------------------------------------------------------------- values */
typedef struct {
    const char *s;
    size_t n;
} ct_str;

typedef enum {
    CT_UNDEF, CT_NONE, CT_BOOL, CT_INT, CT_FLOAT, CT_STR, CT_LIST, CT_DICT, CT_NS,
    CT_FUNC, CT_MACRO
} ct_type;

typedef struct ct_value ct_value;
typedef struct ct_dict ct_dict;
typedef struct ct_list ct_list;
struct ct_node;

struct ct_value {
    ct_type t;
    int is_tuple; /* CT_LIST built from ( , ): prints as (a, b) */
    union {
        int b;
        int64_t i;
        double f;
        ct_str s; /* CT_STR; CT_UNDEF: the name that was missing (may be empty) */
        ct_list *l;
        ct_dict *d; /* CT_DICT and CT_NS (a namespace is a mutable dict) */
        struct {
            int id;          /* builtin function or method (ct_fn_id) */
            ct_value *self;  /* bound object of a method, else NULL */
        } fn;
        const struct ct_node *macro;
    } u;
};

struct ct_list {
    ct_value *v;
    size_t n;
};

struct ct_dict {
    ct_str *k;
    ct_value *v;
    size_t n, cap;
};

ct_value ct_undef(ct_str name);
ct_value ct_none(void);
ct_value ct_bool(int b);
ct_value ct_int(int64_t i);
ct_value ct_float(double f);
ct_value ct_strv(const char *s, size_t n);
ct_value ct_cstr(const char *s);

/* Copies of strings into the arena; NULL (or a zero-length string) on
 * exhaustion. */
char *ct_strdup(ct_arena *a, const char *s, size_t n);

ct_list *ct_list_new(ct_arena *a, size_t n);
ct_dict *ct_dict_new(ct_arena *a, size_t cap);
/* Set or replace key k (copied by reference: k must outlive the dict). */
int ct_dict_set(ct_arena *a, ct_dict *d, ct_str k, ct_value v);
/* The value of key k, or NULL. */
ct_value *ct_dict_get(const ct_dict *d, const char *k, size_t n);

int ct_truthy(const ct_value *v);
int ct_str_eq(ct_str a, const char *b);
/* Python ==: numbers by value (bools are 0/1), strings by bytes, lists and
 * dicts deeply, none with none, undefined with undefined. */
int ct_equal(const ct_value *a, const ct_value *b);

/* ---------------------------------------------------------------- text */
/* Growing output buffer bounded by limit. */
typedef struct {
    char *p;
    size_t n, cap, limit;
    int over; /* set once an append was refused */
} ct_buf;

int ct_buf_put(ct_buf *b, const char *s, size_t n);
int ct_buf_putc(ct_buf *b, char c);
int ct_buf_printf(ct_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Python str(v) / repr(v) appended to b (undefined prints nothing). */
int ct_print_str(ct_buf *b, const ct_value *v);
int ct_print_repr(ct_buf *b, const ct_value *v);
/* json.dumps(v, ensure_ascii=False, indent=indent (<0: none), separators,
 * sort_keys).  item_sep/key_sep NULL: Python's defaults for that indent.
 * depth 0 (or -1: ensure_ascii=True).  Returns 0, or -1 when v holds what
 * JSON cannot (undefined, a namespace, a function) or nests too deep. */
int ct_print_json(ct_buf *b, const ct_value *v, int indent, const char *item_sep,
                  const char *key_sep, int sort_keys, int depth);
/* Python float repr ("1.0", "1e-05", "1e+20"). */
void ct_format_float(double d, char *out, size_t cap);

/* UTF-8 code points of s (invalid bytes count one each). */
size_t ct_utf8_len(ct_str s);
/* Byte offset of code point index cp (cp <= length). */
size_t ct_utf8_offset(ct_str s, size_t cp);

/* ---------------------------------------------------------------- AST */
typedef enum {
    /* statements */
    N_TEXT, N_OUTPUT, N_IF, N_FOR, N_SET, N_SET_ATTR, N_SET_BLOCK, N_MACRO, N_BREAK,
    N_CONTINUE, N_BODY,
    /* expressions */
    E_LIT, E_NAME, E_LIST, E_TUPLE, E_DICT, E_GETATTR, E_GETITEM, E_SLICE, E_CALL, E_KWARG,
    E_FILTER, E_TEST, E_NEG, E_POS, E_NOT, E_BIN, E_AND, E_OR, E_COND, E_CMP,
    E_BLOCK /* {% filter %}'s body: its rendered text (body/nbody) */
} ct_kind;

typedef enum {
    OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_FLOORDIV, OP_MOD, OP_POW, OP_CONCAT,
    OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE, OP_IN, OP_NOTIN
} ct_op;

typedef struct ct_node ct_node;
struct ct_node {
    ct_kind kind;
    int line, col;
    ct_str name;     /* NAME, GETATTR, FILTER, TEST, KWARG, SET, SET_ATTR attr, MACRO */
    ct_value lit;    /* LIT; TEXT (its string) */
    ct_node *a, *b, *c; /* operands: see parser */
    ct_node **kids;  /* LIST/TUPLE/DICT items, CALL/FILTER/TEST args, CMP operands */
    size_t nkids;
    int *ops;        /* CMP: the operator between kids[i] and kids[i+1]; BIN: ops[0] */
    ct_node **body, **orelse; /* IF/FOR/MACRO/SET_BLOCK bodies; IF: orelse = elif/else */
    size_t nbody, norelse;
    ct_str *names;   /* FOR targets, MACRO params, SET targets */
    ct_node **defaults; /* MACRO param defaults (NULL entries = none) */
    size_t nnames;
    int negate;      /* TEST: "is not" */
    int op;          /* BIN: a ct_op */
};

typedef struct {
    ct_arena arena;
    ct_node *root; /* N_BODY */
} ct_template;

/* Parse src (len bytes) into t->root; errors name line and column. */
mr_status ct_parse(ct_template *t, const char *src, size_t len, mr_error *err);

/* ---------------------------------------------------------------- evaluator */
typedef struct {
    ct_str name;
    ct_value v;
} ct_var;

/* Render t with the given top-level variables; *out is malloc'd. */
mr_status ct_render(const ct_template *t, ct_arena *arena, const ct_var *vars, size_t nvars,
                    int64_t now, char **out, size_t *out_len, mr_error *err);

#endif
