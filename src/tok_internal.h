/* tok_internal.h - the tokenizer's data, shared by tokenizer.c (loading,
 * SentencePiece, special tokens, detokenizer) and bpe.c (byte-level BPE).
 * Not installed: callers use tokenizer.h.
 */
#ifndef MOERUN_TOK_INTERNAL_H
#define MOERUN_TOK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "gguf.h"
#include "pretok.h"
#include "status.h"
#include "tokenizer.h"

enum { /* tokenizer.ggml.token_type values */
    TT_NORMAL = 1,
    TT_UNKNOWN = 2,
    TT_CONTROL = 3,
    TT_USER = 4,
    TT_UNUSED = 5,
    TT_BYTE = 6,
};

enum { /* attributes after llama.cpp's load-time corrections */
    TA_NORMAL = 1 << 0,
    TA_UNKNOWN = 1 << 1,
    TA_CONTROL = 1 << 2,
    TA_USER = 1 << 3,
    TA_UNUSED = 1 << 4,
    TA_BYTE = 1 << 5,
    TA_EOG = 1 << 6,
    TA_RSTRIP = 1 << 7, /* whitespace after it is dropped (phi-3) */
};

enum { TOK_SPM = 0, TOK_BPE = 1 };

typedef struct mr_bpe mr_bpe;

struct mr_tokenizer {
    int kind;           /* TOK_SPM or TOK_BPE */
    int32_t n_vocab;
    char *arena;        /* all pieces, each NUL-terminated */
    size_t *piece_off;  /* [n_vocab] offset of piece i in arena */
    uint32_t *piece_len;/* [n_vocab] */
    float *scores;      /* [n_vocab] */
    uint8_t *types;     /* [n_vocab] TT_* as stored */
    uint8_t *attr;      /* [n_vocab] TA_* */
    int32_t *slots;     /* hash table of ids (piece -> id), -1 = empty */
    uint64_t mask;      /* slots has mask + 1 entries */
    int32_t byte_id[256]; /* id of "<0xXX>", or -1 */
    int32_t *user_ids;  /* user-defined ids, by first byte then longest */
    int32_t user_first[257]; /* user_ids[user_first[b] .. user_first[b+1]) start with b */
    int32_t n_unused;
    int32_t *special;   /* control/user/unknown ids, longest piece first */
    int32_t n_special;
    int32_t bos, eos, unk;
    int add_bos, add_eos, add_space_prefix;
    mr_bpe *bpe;        /* TOK_BPE only */
    mr_pretok *pretok;  /* TOK_BPE only */
};

typedef struct { /* growing id list */
    int32_t *v;
    size_t n, cap;
} mr_idvec;

/* Append id; -1 when out of memory. */
int mr_idvec_push(mr_idvec *v, int32_t id);

/* Id of the piece equal to s[0..n), or -1 (the piece table). */
int32_t mr_tok_lookup(const mr_tokenizer *t, const char *s, size_t n);

/* tok_special.c: token attributes and the end-of-generation set as
 * llama.cpp corrects them at load (text-named EOG/EOT/FIM tokens become
 * control, "unused" control tokens unused, gpt-oss's markers user-defined,
 * ...), and the list of special pieces matched before BPE. */
mr_status mr_tok_build_attrs(const mr_gguf *g, mr_tokenizer *t, mr_error *err);

typedef struct { /* a piece of the text, or a special token found in it */
    int32_t id;      /* -1: text */
    uint32_t start, len;
} mr_frag;

/* Split text[0..len) at every special piece of the allowed attributes
 * (TA_* mask), longest pieces first, as llama.cpp's
 * tokenizer_st_partition.  *frags is malloc'd. */
mr_status mr_tok_partition(const mr_tokenizer *t, const char *text, size_t len, unsigned mask,
                           mr_frag **frags, size_t *n_frags, mr_error *err);

/* bpe.c: build the merge table and the byte-level maps of a "gpt2"
 * vocabulary whose pieces are loaded in t. */
mr_status mr_bpe_build(const mr_gguf *g, mr_tokenizer *t, mr_error *err);
void mr_bpe_free(mr_bpe *b);
/* Encode one fragment of text (valid UTF-8, no special tokens in it). */
mr_status mr_bpe_encode(const mr_tokenizer *t, const char *text, size_t len, mr_idvec *out,
                        mr_error *err);
/* The bytes a normal piece stands for (byte-level decoded), or NULL with
 * *n = 0 when id is not a piece that decodes. */
const char *mr_bpe_piece_bytes(const mr_tokenizer *t, int32_t id, size_t *n);

#endif
