/* tokenizer.h - tokenizers built from GGUF metadata (tokenizer.ggml.*):
 * SentencePiece-BPE ("llama") and byte-level BPE ("gpt2", pre-tokenized by
 * the split pattern tokenizer.ggml.pre names), and a streaming
 * detokenizer that only emits whole UTF-8 sequences.
 */
#ifndef MOERUN_TOKENIZER_H
#define MOERUN_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "gguf.h"
#include "status.h"

typedef struct mr_tokenizer mr_tokenizer;

/* Build from tokenizer.ggml.model ("llama" or "gpt2"), .tokens, .scores,
 * .token_type, .merges and .pre (gpt2), .bos_token_id, .eos_token_id,
 * .unknown_token_id, .add_bos_token, .add_eos_token, .add_space_prefix and
 * the EOT/EOM/FIM ids.  An unknown .pre is MR_EUNSUPPORTED naming it (a
 * missing one is llama.cpp's "default" set).  Copies what it needs: g may
 * be closed afterwards. */
mr_status mr_tokenizer_load(const mr_gguf *g, mr_tokenizer **out, mr_error *err);
void mr_tokenizer_free(mr_tokenizer *t);

int32_t mr_tokenizer_n_vocab(const mr_tokenizer *t);
int32_t mr_tokenizer_bos(const mr_tokenizer *t);
int32_t mr_tokenizer_eos(const mr_tokenizer *t);
int mr_tokenizer_add_bos(const mr_tokenizer *t);

/* Encode len bytes of UTF-8 text.  Prepends BOS when add_bos is set;
 * special-token text is ordinary text (mr_tokenize_ex with flags
 * add_bos ? MR_TOK_ADD_BOS : 0).  *ids is malloc'd (caller frees), *n_ids
 * its length. */
mr_status mr_tokenize(const mr_tokenizer *t, const char *text, size_t len, int add_bos,
                      int32_t **ids, size_t *n_ids, mr_error *err);

enum { MR_TOK_ADD_BOS = 1, MR_TOK_PARSE_SPECIAL = 2 };

/* Encode as llama.cpp's llama_tokenize(add_special = flags & ADD_BOS,
 * parse_special = flags & PARSE_SPECIAL): BOS first (and EOS last when
 * tokenizer.ggml.add_eos_token says so) with MR_TOK_ADD_BOS; control and
 * unknown pieces found in the text become their ids only with
 * MR_TOK_PARSE_SPECIAL; user-defined pieces always (BPE).  Byte-level BPE:
 * a byte of text that is not part of valid UTF-8 reads as U+FFFD (as
 * llama.cpp), so every input gives ids. */
mr_status mr_tokenize_ex(const mr_tokenizer *t, const char *text, size_t len, unsigned flags,
                         int32_t **ids, size_t *n_ids, mr_error *err);

int32_t mr_tokenizer_find(const mr_tokenizer *t, const char *piece);   /* exact piece -> id, or -1 */
int mr_tokenizer_is_eog(const mr_tokenizer *t, int32_t id);          /* end of generation, as llama.cpp's eog set */
int mr_tokenizer_is_control(const mr_tokenizer *t, int32_t id);
const char *mr_tokenizer_kind(const mr_tokenizer *t);                /* "spm" or "bpe" */
const char *mr_tokenizer_pre(const mr_tokenizer *t);                 /* pre name, or NULL for spm */

/* The raw piece of a token as stored in the vocabulary ("▁Once",
 * "<0x0A>"), or NULL for an out-of-range id. */
const char *mr_token_piece(const mr_tokenizer *t, int32_t id);

/* Streaming detokenizer: feed ids, get bytes that form complete UTF-8
 * sequences.  Byte-fallback tokens and byte-level BPE pieces are joined
 * before being emitted (a character split across tokens comes out whole
 * with the token that completes it); "▁" becomes a space (SPM); control
 * tokens (BOS/EOS, <|im_end|>) emit nothing unless `special` is set after
 * mr_detok_init, like llama.cpp's detokenize with special=false. */
typedef struct {
    const mr_tokenizer *tok;
    unsigned char pending[8]; /* bytes of an incomplete UTF-8 sequence */
    size_t n_pending;
    int at_start; /* strip the dummy-prefix space of the first piece */
    int special;  /* render control and unknown tokens' text (default 0) */
} mr_detok;

void mr_detok_init(mr_detok *d, const mr_tokenizer *t, int strip_leading_space);
/* Append the text of token id to out (cap bytes); returns bytes written. */
size_t mr_detok_push(mr_detok *d, int32_t id, char *out, size_t cap);
/* Flush what is left (an invalid trailing sequence becomes U+FFFD). */
size_t mr_detok_flush(mr_detok *d, char *out, size_t cap);

#endif
