/* chat_template_eval.h - evaluator state shared by chat_template_eval.c
 * (statements, expressions) and chat_template_builtins.c (filters, tests,
 * methods, globals).  Internal. */
#ifndef MOERUN_CHAT_TEMPLATE_EVAL_H
#define MOERUN_CHAT_TEMPLATE_EVAL_H

#include "chat_template_internal.h"

typedef struct ct_scope ct_scope;
struct ct_scope {
    ct_scope *parent;
    ct_dict *vars;
};

typedef struct {
    ct_arena *a;
    mr_error *err;
    int failed;
    int64_t now;     /* strftime_now's time (seconds since the epoch, UTC) */
    size_t limit;    /* bytes any one output or string may reach */
    unsigned steps;
    int eval_depth, call_depth;
    int brk;         /* 1: break, 2: continue pending */
    ct_scope *top;   /* template top level (macros run over it) */
    ct_scope *scope;
    ct_buf *out;
} ct_ev;

void ct_fail(ct_ev *ev, const ct_node *at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void ct_oom(ct_ev *ev, const ct_node *at);
void ct_fail_undefined(ct_ev *ev, const ct_node *at, const ct_value *u);
const char *ct_type_name(const ct_value *v);

ct_scope *ct_scope_new(ct_ev *ev, ct_scope *parent);
ct_value ct_eval(ct_ev *ev, const ct_node *n);
void ct_exec_body(ct_ev *ev, ct_node *const *body, size_t n);
ct_value ct_getitem(ct_ev *ev, const ct_node *at, ct_value obj, ct_value key);
ct_value ct_iterable(ct_ev *ev, const ct_node *at, ct_value v);
ct_value ct_to_str(ct_ev *ev, const ct_node *at, const ct_value *v);
ct_value ct_concat_str(ct_ev *ev, const ct_node *at, ct_str x, ct_str y);
int ct_compare(const ct_value *x, const ct_value *y);
int ct_contains(ct_ev *ev, const ct_node *n, const ct_value *x, const ct_value *y);
int ct_eval_args(ct_ev *ev, const ct_node *n, ct_value **args, size_t *nargs, ct_str **kwn,
                 ct_value **kwv, size_t *nkw, size_t extra_first);

/* builtins */
int ct_add_globals(ct_ev *ev, ct_scope *globals);
/* Method id of obj.name (str, dict methods), or -1. */
int ct_method_id(const ct_value *obj, ct_str name);
ct_value ct_bind_method(ct_ev *ev, const ct_node *at, ct_value obj, int id);
ct_value ct_call_builtin(ct_ev *ev, const ct_node *at, int id, const ct_value *self,
                         const ct_value *args, size_t nargs, const ct_str *kwn,
                         const ct_value *kwv, size_t nkw);
ct_value ct_apply_filter(ct_ev *ev, const ct_node *n);
/* 1 true, 0 false, -1 error */
int ct_apply_test_node(ct_ev *ev, const ct_node *n);

#endif
