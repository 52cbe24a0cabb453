/* pretok.h - the pre-tokenizer of a byte-level BPE vocabulary: the split
 * regexes that tokenizer.ggml.pre names, compiled once with PCRE2 (UTF, UCP,
 * JIT), applied one after another as llama.cpp does (each regex splits every
 * piece the previous ones left into its matches and the gaps between them).
 */
#ifndef MOERUN_PRETOK_H
#define MOERUN_PRETOK_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

typedef struct mr_pretok mr_pretok;

typedef struct {
    uint32_t start, len; /* bytes of the text */
} mr_span;

/* What a pre name implies beside its regexes (llama.cpp's llama_vocab
 * load flags). */
typedef struct {
    const char *name;     /* canonical spelling, e.g. "llama-bpe" */
    int ignore_merges;    /* a piece that is itself a token is taken whole */
    int add_bos_default;  /* BOS added unless tokenizer.ggml.add_bos_token says */
} mr_pretok_info;

/* Compile the regexes of pre-tokenizer `pre` (NULL or "" = llama.cpp's
 * "default" set, used when the key is missing).  An unknown name is
 * MR_EUNSUPPORTED naming it; PCRE2 failures are MR_EUNSUPPORTED too. */
mr_status mr_pretok_new(const char *pre, size_t pre_len, mr_pretok **out, mr_error *err);
void mr_pretok_free(mr_pretok *p);
const mr_pretok_info *mr_pretok_get_info(const mr_pretok *p);

/* Whether a name is known (spelled as llama.cpp's loader accepts it). */
int mr_pretok_known(const char *pre);

/* Split text[0..len) (valid UTF-8: the caller checks) into pieces, in
 * order, covering every byte.  *spans is malloc'd (caller frees). */
mr_status mr_pretok_split(const mr_pretok *p, const char *text, size_t len, mr_span **spans,
                          size_t *n_spans, mr_error *err);

#endif
