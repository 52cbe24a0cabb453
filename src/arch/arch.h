/* arch.h - one model family per file.
 *
 * A family is what general.architecture names in a GGUF file.  Its file
 * (src/arch/<family>.c) holds three things and nothing else:
 *   - hparams: its GGUF keys (under "<arch>.") into mr_hparams, with the
 *     family's defaults and sanity checks;
 *   - bind:    its tensors of one layer into mr_layer (names as llama.cpp
 *     writes them), shapes checked against the hyperparameters;
 *   - layer:   its layer forward, written from the shared blocks of
 *     src/nn/nn.h (norms, rope, attention, MoE FFN).
 * Adding a family: write src/arch/<family>.c with an `const mr_arch
 * mr_arch_<family>` and add one line to the table in src/arch/registry.c.
 */
#ifndef MOERUN_ARCH_H
#define MOERUN_ARCH_H

#include <stddef.h>
#include <stdint.h>

#include "../gguf.h"
#include "../model.h"
#include "../status.h"

struct mr_context;

typedef struct mr_arch {
    const char *gguf_name; /* general.architecture */
    const char *family;    /* what users call it */
    const char *routing;   /* one line for `moerun info` */
    /* Read "<arch>.*" keys.  hp arrives zeroed. */
    mr_status (*hparams)(const mr_gguf *g, mr_hparams *hp, mr_error *err);
    /* Bind the tensors of layer il (m->hp is set). */
    mr_status (*bind)(mr_model *m, uint32_t il, mr_error *err);
    /* Run layer il on the batch of n tokens in the context's residual stream. */
    mr_status (*layer)(struct mr_context *c, uint32_t il, uint32_t n, mr_error *err);
} mr_arch;

/* The family of general.architecture, or NULL. */
const mr_arch *mr_arch_find(const char *name, size_t len);
/* "llama, qwen3moe, ..." into buf, for error messages; returns buf. */
const char *mr_arch_names(char *buf, size_t cap);

/* ---- helpers for family files (src/model.c) ---- */

/* Find a tensor, check its type is computable and its shape is exactly
 * (ne0, ne1, ne2) (ne2 = 0: a 2-D tensor; ne1 = 0: a 1-D tensor).  A
 * missing optional tensor leaves *out zeroed (out->data == NULL,
 * out->ne[0] == 0). */
mr_status mr_bind_tensor(const mr_gguf *g, const char *name, uint64_t ne0, uint64_t ne1,
                         uint64_t ne2, int required, mr_tensor *out, mr_error *err);
/* Copy a tensor of n elements to a fresh f32 array (*out NULL if optional
 * and absent). */
mr_status mr_bind_f32(const mr_gguf *g, const char *name, uint64_t n, int required,
                      float **out, mr_error *err);

/* Read "<arch>.<key>" (e.g. mr_arch_u32(g, "qwen3moe", "block_count", ...)). */
mr_status mr_arch_u32(const mr_gguf *g, const char *arch, const char *key, int required,
                      uint32_t *out, mr_error *err);
mr_status mr_arch_f32(const mr_gguf *g, const char *arch, const char *key, int required,
                      float *out, mr_error *err);
mr_status mr_arch_bool(const mr_gguf *g, const char *arch, const char *key, int *out,
                       mr_error *err);
/* Fail with the key's offset: "<arch>.<key>: MESSAGE". */
mr_status mr_arch_bad(const mr_gguf *g, mr_error *err, const char *arch, const char *key,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* The keys every transformer family shares ("<arch>.embedding_length",
 * block_count, feed_forward_length, attention.head_count(_kv),
 * attention.key_length/value_length, attention.layer_norm_rms_epsilon,
 * context_length, expert_count/expert_used_count, rope.freq_base,
 * rope.dimension_count, rope.scaling.*), read and checked; families then
 * adjust what is theirs. */
mr_status mr_arch_common_hparams(const mr_gguf *g, const char *arch, mr_hparams *hp,
                                 mr_error *err);
/* The attention and norm tensors every GQA family shares: attn_norm,
 * attn_q/k/v/output (+ optional biases), ffn_norm; and the routed
 * experts ffn_{gate,up,down}_exps with router ffn_gate_inp (or a dense
 * ffn_{gate,up,down} when the model is dense).  Families bind extras. */
mr_status mr_bind_attn_gqa(mr_model *m, uint32_t il, mr_error *err);
mr_status mr_bind_ffn_moe(mr_model *m, uint32_t il, mr_error *err);

extern const mr_arch mr_arch_llama;
extern const mr_arch mr_arch_qwen3moe;
extern const mr_arch mr_arch_gptoss;
extern const mr_arch mr_arch_deepseek2;
extern const mr_arch mr_arch_llama4;

#endif
