/* spm_model.h - the fields moerun needs from a SentencePiece model file
 * (tokenizer.model, a serialised sentencepiece.ModelProto protobuf).
 *
 * A small bounds-checked protobuf wire-format reader: every varint, length
 * and nested message is checked against the bytes that remain, unknown
 * fields are skipped by their wire type, groups are refused.  Read:
 *   ModelProto.pieces (1): { piece (1) string, score (2) float,
 *                            type (3) enum 1 normal .. 6 byte }
 *   ModelProto.trainer_spec (2): model_type (3), byte_fallback (35),
 *                            unk_id (40), bos_id (41), eos_id (42), pad_id (43)
 *   ModelProto.normalizer_spec (3): add_dummy_prefix (3)
 */
#ifndef MOERUN_SPM_MODEL_H
#define MOERUN_SPM_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

enum {
    MR_SPM_NORMAL = 1, MR_SPM_UNKNOWN = 2, MR_SPM_CONTROL = 3,
    MR_SPM_USER_DEFINED = 4, MR_SPM_UNUSED = 5, MR_SPM_BYTE = 6
};

typedef struct {
    uint32_t n_pieces;
    const char **piece;  /* into arena; NUL-terminated */
    uint32_t *piece_len;
    float *score;
    int32_t *type;       /* MR_SPM_* */
    char *arena;
    int32_t model_type;  /* trainer_spec: 1 unigram (default), 2 bpe, ... */
    int byte_fallback;   /* default 0 */
    int add_dummy_prefix; /* default 1 */
    int32_t unk_id, bos_id, eos_id, pad_id; /* defaults 0, 1, 2, -1 */
} mr_spm_model;

/* Parse a model image; name is used in messages.  *out is NULL on error. */
mr_status mr_spm_parse(const void *buf, size_t len, const char *name, mr_spm_model **out,
                       mr_error *err);
void mr_spm_free(mr_spm_model *m);

#endif
