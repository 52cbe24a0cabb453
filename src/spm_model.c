/* spm_model.c - bounds-checked reader of the SentencePiece ModelProto
 * fields moerun needs (see spm_model.h).  Protobuf wire format: each field
 * is a varint key (field number << 3 | wire type) followed by a varint (0),
 * 8 bytes (1), a varint length and that many bytes (2), or 4 bytes (5). */
#include "spm_model.h"

#include <stdlib.h>
#include <string.h>

#define MAX_PIECES (1u << 24)

typedef struct {
    const uint8_t *p, *end;
    const uint8_t *base; /* start of the file, for offsets in messages */
    const char *name;
    mr_error *err;
} reader;

/* One decoded field: number, wire type, and its value or payload. */
typedef struct {
    uint32_t num, wt;
    uint64_t v;             /* varint / fixed value */
    const uint8_t *data;    /* wire type 2 payload */
    uint64_t len;
    uint64_t offset;        /* file offset of the key */
} field;

/* Report a malformed model at the reader's position. */
static mr_status bad(reader *r, const char *what, const char *fieldname)
{
    return mr_fail(r->err, MR_EFORMAT, r->name, fieldname, (uint64_t)(r->p - r->base), "%s",
                   what);
}

/* A varint of at most 10 bytes; -1 when truncated or too long. */
static int varint(reader *r, uint64_t *out)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (r->p >= r->end)
            return -1;
        uint8_t b = *r->p++;
        if (shift == 63 && b > 1)
            return -1; /* more than 64 bits */
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -1;
}

/* Next field of the message in r; 1 = got one, 0 = end, -1 = error (set). */
static int next_field(reader *r, field *f, const char *msg)
{
    uint64_t key;
    if (r->p == r->end)
        return 0;
    f->offset = (uint64_t)(r->p - r->base);
    if (varint(r, &key))
        return bad(r, "truncated field key", msg), -1;
    f->num = (uint32_t)(key >> 3);
    f->wt = (uint32_t)(key & 7);
    if (f->num == 0 || key >> 32)
        return bad(r, "field number out of range", msg), -1;
    switch (f->wt) {
    case 0:
        if (varint(r, &f->v))
            return bad(r, "truncated varint", msg), -1;
        return 1;
    case 1:
    case 5: {
        unsigned n = f->wt == 1 ? 8 : 4;
        if ((size_t)(r->end - r->p) < n)
            return bad(r, "truncated fixed-size value", msg), -1;
        f->v = 0;
        for (unsigned i = 0; i < n; i++)
            f->v |= (uint64_t)r->p[i] << (8 * i);
        r->p += n;
        return 1;
    }
    case 2:
        if (varint(r, &f->len))
            return bad(r, "truncated length", msg), -1;
        if (f->len > (uint64_t)(r->end - r->p))
            return bad(r, "length runs past the end of its message", msg), -1;
        f->data = r->p;
        r->p += f->len;
        return 1;
    default:
        return bad(r, "unsupported wire type (groups are not used by SentencePiece)", msg), -1;
    }
}

/* A reader over the payload of field f, inside parent. */
static reader sub(const reader *parent, const field *f)
{
    reader r = *parent;
    r.p = f->data;
    r.end = f->data + f->len;
    return r;
}

/* Decode one SentencePiece message into index i of m (pieces already
 * counted); the string is copied into the arena at *arena_pos. */
static mr_status parse_piece(reader *r, mr_spm_model *m, uint32_t i, size_t *arena_pos)
{
    field f;
    int k, have_piece = 0;
    m->type[i] = MR_SPM_NORMAL;
    m->score[i] = 0.0f;
    while ((k = next_field(r, &f, "pieces")) > 0) {
        if (f.num == 1 && f.wt == 2) {
            memcpy(m->arena + *arena_pos, f.data, f.len);
            m->arena[*arena_pos + f.len] = '\0';
            m->piece[i] = m->arena + *arena_pos;
            m->piece_len[i] = (uint32_t)f.len;
            *arena_pos += f.len + 1;
            have_piece = 1;
        } else if (f.num == 2 && f.wt == 5) {
            uint32_t u = (uint32_t)f.v;
            memcpy(&m->score[i], &u, 4);
        } else if (f.num == 3 && f.wt == 0) {
            if (f.v < MR_SPM_NORMAL || f.v > MR_SPM_BYTE)
                return mr_fail(r->err, MR_EFORMAT, r->name, "pieces.type", f.offset,
                               "piece %u has type %llu, not 1..6", i, (unsigned long long)f.v);
            m->type[i] = (int32_t)f.v;
        } else if (f.num <= 3) {
            return mr_fail(r->err, MR_EFORMAT, r->name, "pieces", f.offset,
                           "piece %u: field %u has wire type %u", i, f.num, f.wt);
        }
    }
    if (k < 0)
        return r->err->code;
    if (!have_piece)
        return mr_fail(r->err, MR_EFORMAT, r->name, "pieces.piece", MR_NO_OFFSET,
                       "piece %u has no string", i);
    return MR_OK;
}

/* A varint field holding an int32 (negative values are sign-extended). */
static int32_t as_i32(uint64_t v)
{
    return (int32_t)(uint32_t)v;
}

/* trainer_spec: model type, byte fallback and the special ids. */
static mr_status parse_trainer(reader *r, mr_spm_model *m)
{
    field f;
    int k;
    while ((k = next_field(r, &f, "trainer_spec")) > 0) {
        if (f.wt != 0)
            continue;
        switch (f.num) {
        case 3: m->model_type = as_i32(f.v); break;
        case 35: m->byte_fallback = f.v != 0; break;
        case 40: m->unk_id = as_i32(f.v); break;
        case 41: m->bos_id = as_i32(f.v); break;
        case 42: m->eos_id = as_i32(f.v); break;
        case 43: m->pad_id = as_i32(f.v); break;
        default: break;
        }
    }
    return k < 0 ? r->err->code : MR_OK;
}

/* normalizer_spec: add_dummy_prefix. */
static mr_status parse_normalizer(reader *r, mr_spm_model *m)
{
    field f;
    int k;
    while ((k = next_field(r, &f, "normalizer_spec")) > 0)
        if (f.num == 3 && f.wt == 0)
            m->add_dummy_prefix = f.v != 0;
    return k < 0 ? r->err->code : MR_OK;
}

/* Free a parsed model. */
void mr_spm_free(mr_spm_model *m)
{
    if (!m)
        return;
    free(m->piece);
    free(m->piece_len);
    free(m->score);
    free(m->type);
    free(m->arena);
    free(m);
}

/* Parse a ModelProto image; see spm_model.h.  Pass 1 counts the pieces and
 * their bytes, pass 2 decodes them. */
mr_status mr_spm_parse(const void *buf, size_t len, const char *name, mr_spm_model **out,
                       mr_error *err)
{
    mr_status s = MR_OK;
    mr_error scratch;
    reader top = {buf, (const uint8_t *)buf + len, buf, name, err ? err : &scratch};
    reader r = top;
    field f;
    int k;
    uint64_t n = 0, bytes = 0;
    size_t pos = 0;
    *out = NULL;
    mr_spm_model *m = calloc(1, sizeof *m);
    if (!m)
        return mr_fail(err, MR_ENOMEM, name, NULL, MR_NO_OFFSET, "no memory");
    m->model_type = 1;
    m->add_dummy_prefix = 1;
    m->unk_id = 0, m->bos_id = 1, m->eos_id = 2, m->pad_id = -1;
    while ((k = next_field(&r, &f, "model")) > 0) {
        if (f.num == 1 && f.wt == 2) {
            n++;
            bytes += f.len + 1; /* a piece's string is no longer than its message */
        }
    }
    if (k < 0) {
        s = top.err->code;
        goto fail;
    }
    if (n == 0 || n > MAX_PIECES) {
        s = mr_fail(err, MR_EFORMAT, name, "pieces", MR_NO_OFFSET,
                    "%llu pieces (want 1 to %u)", (unsigned long long)n, MAX_PIECES);
        goto fail;
    }
    m->piece = calloc(n, sizeof *m->piece);
    m->piece_len = calloc(n, sizeof *m->piece_len);
    m->score = calloc(n, sizeof *m->score);
    m->type = calloc(n, sizeof *m->type);
    m->arena = malloc(bytes);
    if (!m->piece || !m->piece_len || !m->score || !m->type || !m->arena) {
        s = mr_fail(err, MR_ENOMEM, name, NULL, MR_NO_OFFSET, "no memory for %llu pieces",
                    (unsigned long long)n);
        goto fail;
    }
    r = top;
    while ((k = next_field(&r, &f, "model")) > 0) {
        reader in = sub(&r, &f);
        if (f.num == 1 && f.wt == 2)
            s = parse_piece(&in, m, m->n_pieces++, &pos);
        else if (f.num == 2 && f.wt == 2)
            s = parse_trainer(&in, m);
        else if (f.num == 3 && f.wt == 2)
            s = parse_normalizer(&in, m);
        if (s)
            goto fail;
    }
    *out = m;
    return MR_OK;
fail:
    mr_spm_free(m);
    return s;
}
