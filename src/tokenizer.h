/* tokenizer.h - SentencePiece-BPE tokenizer built from GGUF metadata
 * (tokenizer.ggml.*), and a streaming detokenizer that only emits whole
 * UTF-8 sequences.
 */
#ifndef MOERUN_TOKENIZER_H
#define MOERUN_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "gguf.h"
#include "status.h"

typedef struct mr_tokenizer mr_tokenizer;

/* Build from tokenizer.ggml.model ("llama"), .tokens, .scores, .token_type,
 * .bos_token_id, .eos_token_id, .unknown_token_id, .add_bos_token,
 * .add_space_prefix.  Copies what it needs: g may be closed afterwards. */
mr_status mr_tokenizer_load(const mr_gguf *g, mr_tokenizer **out, mr_error *err);
void mr_tokenizer_free(mr_tokenizer *t);

int32_t mr_tokenizer_n_vocab(const mr_tokenizer *t);
int32_t mr_tokenizer_bos(const mr_tokenizer *t);
int32_t mr_tokenizer_eos(const mr_tokenizer *t);
int mr_tokenizer_add_bos(const mr_tokenizer *t);

/* Encode len bytes of UTF-8 text.  Prepends BOS when add_bos is set.
 * *ids is malloc'd (caller frees), *n_ids its length. */
mr_status mr_tokenize(const mr_tokenizer *t, const char *text, size_t len, int add_bos,
                      int32_t **ids, size_t *n_ids, mr_error *err);

/* The raw piece of a token as stored in the vocabulary ("▁Once",
 * "<0x0A>"), or NULL for an out-of-range id. */
const char *mr_token_piece(const mr_tokenizer *t, int32_t id);

/* Streaming detokenizer: feed ids, get bytes that form complete UTF-8
 * sequences.  Byte-fallback tokens are joined before being emitted; "▁"
 * becomes a space; control tokens (BOS/EOS) emit nothing. */
typedef struct {
    const mr_tokenizer *tok;
    unsigned char pending[8]; /* bytes of an incomplete UTF-8 sequence */
    size_t n_pending;
    int at_start; /* strip the dummy-prefix space of the first piece */
} mr_detok;

void mr_detok_init(mr_detok *d, const mr_tokenizer *t, int strip_leading_space);
/* Append the text of token id to out (cap bytes); returns bytes written. */
size_t mr_detok_push(mr_detok *d, int32_t id, char *out, size_t cap);
/* Flush what is left (an invalid trailing sequence becomes U+FFFD). */
size_t mr_detok_flush(mr_detok *d, char *out, size_t cap);

#endif
