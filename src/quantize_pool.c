/* quantize_pool.c - the converter's job pipeline and its private worker
 * threads (see convert.h for the memory bound).
 *
 * A job is a run of rows of one source tensor (for a stacked expert tensor:
 * of one expert).  Jobs are ordered by their place in the source shards, so
 * every shard is read front to back once.  Workers take jobs in that order,
 * read the rows (pread), widen them to f32, apply llama.cpp's Q/K row
 * permutation, quantize, and hand the result back; the calling thread
 * commits jobs strictly in order: it writes the output at the tensor's
 * place, feeds the shard's XXH3 state with the source bytes (reading any
 * gap, such as the header, itself), feeds the output tensor's and expert
 * slice's XXH3 states, and frees the job.  Workers never run more than
 * `window` jobs ahead of the last commit.  A tensor whose pieces do not
 * arrive in output order (a checkpoint stored in an unusual order) is
 * hashed by reading it back at the end.  The result does not depend on
 * the number of threads.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "convert_internal.h"
#include "fileio.h"
#include "finite.h"
#include "moerun_keys.h"
#include "../quant/types.h"

#define GAP_CHUNK (4u << 20)

enum { JOB_PENDING, JOB_DONE, JOB_FAILED };

typedef struct {
    uint32_t tensor, src, shard;
    uint64_t row0, nrows;      /* output rows */
    uint64_t src_row0;         /* first source row read (FP8 scales, head splits) */
    uint64_t src_off, src_len; /* absolute in the shard; what the shard hash takes from raw */
    uint64_t raw_len;          /* bytes read into raw (a transposed job's band: src_len 0) */
    uint64_t aux_off, aux_len; /* MXFP4 scales, absolute in shard aux_shard, read into raw
                                * after the src_len block bytes (or 0) */
    uint32_t aux_shard;
    uint64_t out_off, out_len; /* inside the output tensor */
    int state;
} job;

/* The buffers of one job in flight.  Job i uses slot i % window: at most
 * window consecutive jobs are in flight, so no two share a slot, and the
 * memory is allocated once, whatever the model's size. */
typedef struct {
    uint8_t *raw;  /* source bytes */
    uint8_t *out;  /* quantized rows */
    float *row;    /* one widened row, then one gathered source row */
    float *block;  /* a head's widened rows, for transposed head splits */
    float *scales; /* FP8 block scales of the job's rows */
} slot;

typedef struct {
    XXH3_state_t *whole, *slice;
    uint64_t next;   /* next output offset expected in order */
    int reread;      /* pieces came out of order: hash from the file */
    uint64_t jobs_left;
} tensor_hash;

typedef struct {
    mr_plan *p;
    mr_gguf_writer *w;
    int fd;
    const char *out_name;
    job *jobs;
    uint64_t n_jobs;
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_done;
    uint64_t next, committed;
    unsigned window;
    int abort;
    tensor_hash *th;
    uint64_t *tensor_xxh3, *expert_xxh3;
    XXH3_state_t **shard_st;
    uint64_t *shard_pos;
    uint8_t *buf; /* GAP_CHUNK bytes for gaps and read-back */
    uint64_t job_bytes; /* source bytes per job */
    mr_convert_progress *prog;
    slot *slots;       /* window of them */
    uint64_t fail_job; /* lowest failed job, UINT64_MAX if none */
    mr_error fail_err; /* its error */
} pool;

/* The slot of job j. */
static slot *slot_of(pool *P, const job *j)
{
    return &P->slots[(uint64_t)(j - P->jobs) % P->window];
}

/* Source columns of a tensor's rows (the output row length unless the
 * head split transposes). */
static uint64_t src_row_len(const mr_plan_tensor *t)
{
    return t->transpose ? t->ne[1] : t->ne[0];
}

/* Widen source row r of the job (0 = its first) into dst: dtype to f32,
 * times the FP8 block scale of its (row, column) block.  A NaN or infinity
 * would quantize to garbage (or undefined casts) and the model would print
 * nothing: it is refused, naming the element. */
static mr_status widen_row(const mr_plan *p, const mr_plan_tensor *t, const job *j,
                           const slot *b, uint64_t r, float *dst, mr_error *err)
{
    const mr_st_tensor *src = t->src[j->src];
    const uint64_t nc = src_row_len(t), es = mr_st_dtype_size(src->dtype);
    mr_st_to_f32(src->dtype, b->raw + r * nc * es, dst, nc);
    if (t->scale[j->src]) {
        const uint32_t b0 = p->hp.fp8_block[0], b1 = p->hp.fp8_block[1];
        const uint64_t nbc = (nc + b1 - 1) / b1;
        const float *sc = b->scales + ((j->src_row0 + r) / b0 - j->src_row0 / b0) * nbc;
        for (uint64_t c = 0; c < nc; c++)
            dst[c] *= sc[c / b1];
    }
    size_t bad = mr_first_nonfinite(dst, nc);
    if (bad < nc)
        return mr_fail(err, MR_EFORMAT, p->ckpt->shards[j->shard]->path, src->name,
                       j->src_off + (r * nc + bad) * es,
                       "element [%llu, %llu] is %s: refusing to convert non-finite weights",
                       (unsigned long long)(j->src_row0 + r), (unsigned long long)bad,
                       dst[bad] != dst[bad] ? "NaN" : "infinite");
    return MR_OK;
}

/* Read the FP8 block scales covering the job's source rows into the slot. */
static mr_status read_scales(pool *P, const mr_plan_tensor *t, const job *j, uint64_t n_src_rows,
                             slot *b, mr_error *err)
{
    const mr_st_tensor *st = t->scale[j->src];
    const uint32_t b0 = P->p->hp.fp8_block[0];
    const uint64_t r0 = j->src_row0 / b0, r1 = (j->src_row0 + n_src_rows - 1) / b0;
    const uint64_t nbc = st->shape[1], es = mr_st_dtype_size(st->dtype);
    uint8_t raw[4096];
    for (uint64_t r = r0; r <= r1; r++) {
        for (uint64_t c0 = 0; c0 < nbc; c0 += sizeof raw / es) {
            uint64_t n = nbc - c0 < sizeof raw / es ? nbc - c0 : sizeof raw / es;
            mr_status s = mr_st_pread(P->p->ckpt->shards[t->scale_shard[j->src]],
                                      st->offset + (r * nbc + c0) * es, raw, n * es, err);
            if (s)
                return s;
            mr_st_to_f32(st->dtype, raw, b->scales + (r - r0) * nbc + c0, n);
        }
    }
    return MR_OK;
}

/* A transposed job (mr_plan_tensor.src_cols): read the band of columns
 * row0..row0+nrows of every source row of the expert (one pread each, the
 * band of row c at raw + c * nrows), gather each output row and quantize. */
static mr_status run_transposed(pool *P, job *j, mr_error *err)
{
    const mr_plan_tensor *t = &P->p->t[j->tensor];
    const mr_st_tensor *src = t->src[j->src];
    const mr_st_file *f = P->p->ckpt->shards[j->shard];
    const uint64_t ne0 = t->ne[0], nr = j->nrows;
    const size_t es = mr_st_dtype_size(src->dtype);
    mr_from_f32_fn quant = mr_type_get(t->type)->from_f32;
    slot *b = slot_of(P, j);
    uint8_t *gathered = (uint8_t *)(b->row + ne0);
    const uint64_t base = src->offset + (uint64_t)j->src * ne0 * t->src_cols * es;
    for (uint64_t c = 0; c < ne0; c++) {
        mr_status s = mr_st_pread(f, base + (c * t->src_cols + t->src_col0 + j->row0) * es,
                                  b->raw + c * nr * es, nr * es, err);
        if (s)
            return s;
    }
    for (uint64_t r = 0; r < nr; r++) {
        for (uint64_t c = 0; c < ne0; c++)
            memcpy(gathered + c * es, b->raw + (c * nr + r) * es, es);
        mr_st_to_f32(src->dtype, gathered, b->row, ne0);
        quant(b->row, b->out + r * t->row_bytes, (int64_t)ne0);
    }
    return MR_OK;
}

/* Read, widen, permute (or transpose) and quantize one job's rows into
 * its slot. */
static mr_status run_job(pool *P, job *j, mr_error *err)
{
    const mr_plan_tensor *t = &P->p->t[j->tensor];
    if (t->gen) { /* one row the family computed */
        mr_type_get(t->type)->from_f32(t->gen, slot_of(P, j)->out, (int64_t)t->ne[0]);
        return MR_OK;
    }
    if (t->src_cols)
        return run_transposed(P, j, err);
    const mr_st_tensor *src = t->src[j->src];
    const mr_st_file *f = P->p->ckpt->shards[j->shard];
    const uint64_t ne0 = t->ne[0];
    const size_t es = mr_st_dtype_size(src->dtype);
    const uint64_t hd = t->perm_heads ? t->ne[1] / t->perm_heads : 0;
    mr_from_f32_fn quant = mr_type_get(t->type)->from_f32;
    slot *b = slot_of(P, j);
    const uint64_t n_src_rows = t->transpose ? ne0 : j->nrows;
    mr_status s = mr_st_pread(f, j->src_off, b->raw, j->src_len, err);
    if (s || (t->scale[j->src] && (s = read_scales(P, t, j, n_src_rows, b, err))))
        return s;
    const uint64_t rs = t->row_step ? t->row_step : 1, rf = t->row_first;
    if (t->scales) { /* released MXFP4: repack, never requantize */
        /* the scales are hashed with their shard as bytes between jobs */
        if ((s = mr_st_pread(P->p->ckpt->shards[j->aux_shard], j->aux_off, b->raw + j->src_len,
                             j->aux_len, err)))
            return s;
        const uint64_t G = ne0 / 32;
        for (uint64_t r = 0; r < j->nrows; r++) {
            const uint8_t *q = b->raw + (r * rs + rf) * G * 16;
            const uint8_t *e8 = b->raw + j->src_len + (r * rs + rf) * G;
            for (uint64_t g = 0; g < G; g++, q += 16) {
                /* transformers: byte k holds elements 2k (low nibble) and
                 * 2k + 1; ggml block_mxfp4: scale byte, then qs[i] with
                 * element i low and i + 16 high.  The e2m1 codes and the
                 * E8M0 byte mean the same value in both (ggml doubles the
                 * table and halves the scale). */
                uint8_t *o = b->out + r * t->row_bytes + g * 17;
                o[0] = e8[g];
                for (int i = 0; i < 16; i++) {
                    const uint8_t lo = (uint8_t)((q[i / 2] >> (4 * (i & 1))) & 15);
                    const uint8_t hi = (uint8_t)((q[(i + 16) / 2] >> (4 * (i & 1))) & 15);
                    o[1 + i] = (uint8_t)(lo | hi << 4);
                }
            }
        }
        return MR_OK;
    }
    const uint64_t cs = t->col_step ? t->col_step : 1, cf = t->col_first;
    for (uint64_t r = 0; (rs > 1 || cs > 1) && r < j->nrows; r++) {
        /* strided rows and elements (gpt-oss's interleaved gate/up): the
         * whole job is done here */
        const uint64_t sr = r * rs + rf;
        mr_st_to_f32(src->dtype, b->raw + sr * ne0 * cs * es, b->row, ne0 * cs);
        for (uint64_t i = 0; i < ne0; i++)
            b->row[i] = b->row[i * cs + cf];
        size_t bad = mr_first_nonfinite(b->row, ne0);
        if (bad < ne0)
            return mr_fail(err, MR_EFORMAT, f->path, src->name,
                           j->src_off + (sr * ne0 + bad) * cs * es,
                           "element [%llu, %llu] is %s: refusing to convert non-finite weights",
                           (unsigned long long)(j->row0 * rs + sr),
                           (unsigned long long)(bad * cs + cf),
                           b->row[bad] != b->row[bad] ? "NaN" : "infinite");
        quant(b->row, b->out + r * t->row_bytes, (int64_t)ne0);
        if (r + 1 == j->nrows)
            return MR_OK;
    }
    if (t->transpose) { /* output row i = column i of the head's source rows */
        const uint64_t nc = src_row_len(t);
        for (uint64_t r = 0; r < n_src_rows; r++)
            if ((s = widen_row(P->p, t, j, b, r, b->block + r * nc, err)))
                return s;
        for (uint64_t i = 0; i < j->nrows; i++) {
            for (uint64_t r = 0; r < ne0; r++)
                b->row[r] = b->block[r * nc + j->row0 + i];
            quant(b->row, b->out + i * t->row_bytes, (int64_t)ne0);
        }
        return MR_OK;
    }
    for (uint64_t r = 0; r < j->nrows; r++) {
        uint64_t sr = r;
        if (hd) { /* llama.cpp: reshape(n_head, 2, hd/2, in).swapaxes(1, 2) */
            uint64_t base = r / hd * hd, o = r - base;
            sr = base + (o % 2) * (hd / 2) + o / 2;
        }
        if ((s = widen_row(P->p, t, j, b, sr, b->row, err)))
            return s;
        quant(b->row, b->out + r * t->row_bytes, (int64_t)ne0);
    }
    return MR_OK;
}

/* Worker thread: take the next job within the window, run it, report. */
static void *worker(void *arg)
{
    pool *P = arg;
    for (;;) {
        pthread_mutex_lock(&P->mu);
        while (!P->abort && P->next < P->n_jobs && P->next >= P->committed + P->window)
            pthread_cond_wait(&P->cv_work, &P->mu);
        if (P->abort || P->next >= P->n_jobs) {
            pthread_mutex_unlock(&P->mu);
            return NULL;
        }
        job *j = &P->jobs[P->next++];
        /* ask the kernel to start reading the job a window ahead, so reads
         * overlap the work instead of alternating with it */
        uint64_t ahead = (uint64_t)(j - P->jobs) + P->window;
        if (ahead < P->n_jobs && P->jobs[ahead].src_len) {
            const job *a = &P->jobs[ahead];
            posix_fadvise(P->p->ckpt->shards[a->shard]->fd, (off_t)a->src_off, (off_t)a->src_len,
                          POSIX_FADV_WILLNEED);
        }
        pthread_mutex_unlock(&P->mu);
        mr_error err;
        mr_status s = run_job(P, j, &err);
        pthread_mutex_lock(&P->mu);
        j->state = s ? JOB_FAILED : JOB_DONE;
        if (s && (uint64_t)(j - P->jobs) < P->fail_job) {
            P->fail_job = (uint64_t)(j - P->jobs);
            P->fail_err = err;
        }
        pthread_cond_broadcast(&P->cv_done);
        pthread_mutex_unlock(&P->mu);
    }
}

/* Order of jobs by shard, then offset in it (transposed jobs of one expert
 * share an offset: then by tensor and output offset). */
static int cmp_job(const void *a, const void *b)
{
    const job *x = a, *y = b;
    if (x->shard != y->shard)
        return x->shard < y->shard ? -1 : 1;
    if (x->src_off != y->src_off)
        return x->src_off < y->src_off ? -1 : 1;
    if (x->tensor != y->tensor)
        return x->tensor < y->tensor ? -1 : 1;
    return x->out_off < y->out_off ? -1 : x->out_off > y->out_off;
}

/* Cut every tensor into jobs of at most MR_CONVERT_JOB_BYTES of source
 * (whole heads for permuted tensors, one head of a head split, at least
 * one row) and sort them. */
static mr_status make_jobs(pool *P, mr_error *err)
{
    const mr_plan *p = P->p;
    uint64_t n = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (uint32_t ti = 0; ti < p->n_tensors; ti++) {
            const mr_plan_tensor *t = &p->t[ti];
            if (t->gen) { /* one job, no source bytes */
                if (pass == 1) {
                    job *j = &P->jobs[n];
                    memset(j, 0, sizeof *j);
                    j->tensor = ti;
                    j->nrows = 1;
                    j->out_len = t->row_bytes;
                    P->th[ti].jobs_left++;
                }
                n++;
                continue;
            }
            const uint64_t rs = t->row_step ? t->row_step : 1;
            /* bytes of one output row's source row(s): packed MXFP4, strided
             * (gpt-oss's interleaved gate/up), transposed heads (DeepSeek's
             * kv_b) or plain */
            uint64_t src_row = t->scales ? t->ne[0] / 32 * 16
                                         : src_row_len(t) * (t->col_step ? t->col_step : 1) *
                                               mr_st_dtype_size(t->src[0]->dtype);
            uint64_t aux_row = t->scales ? t->ne[0] / 32 : 0;
            uint64_t step = P->job_bytes / (src_row * rs);
            if (t->perm_heads) {
                uint64_t hd = t->ne[1] / t->perm_heads;
                step = step / hd * hd;
                if (step < hd)
                    step = hd;
            }
            if (t->split_heads) /* one head per job: a transpose needs all its rows */
                step = t->ne[1];
            if (step == 0)
                step = 1;
            const uint32_t n_parts = t->split_heads ? t->split_heads : t->n_src;
            for (uint32_t e = 0; e < n_parts; e++) {
                for (uint64_t r = 0; r < t->ne[1]; r += step) {
                    uint64_t nr = t->ne[1] - r < step ? t->ne[1] - r : step;
                    if (pass == 1) {
                        job *j = &P->jobs[n];
                        memset(j, 0, sizeof *j);
                        j->tensor = ti;
                        j->src = t->split_heads ? 0 : e;
                        j->shard = t->src_shard[j->src];
                        j->row0 = r;
                        j->nrows = nr;
                        if (t->split_heads) {
                            j->src_row0 = (uint64_t)e * t->head_rows + t->head_off +
                                          (t->transpose ? 0 : r);
                            j->src_len = (t->transpose ? t->ne[0] : nr) * src_row;
                            j->src_off = t->src[j->src]->offset + j->src_row0 * src_row;
                        } else {
                            j->src_row0 = r;
                            j->src_len = nr * rs * src_row;
                            j->src_off = t->src[j->src]->offset + e * t->src_slice_off +
                                         r * rs * src_row;
                        }
                        if (t->scales) {
                            j->aux_off = t->scales->offset + e * t->scales_slice_off +
                                         r * rs * aux_row;
                            j->aux_len = nr * rs * aux_row;
                            j->aux_shard = t->scales_shard;
                        }
                        j->raw_len = j->src_len + j->aux_len;
                        if (t->src_cols) { /* the expert's start; hashed as a gap */
                            j->src_off = t->src[e]->offset + e * t->ne[0] * t->src_cols *
                                                                  mr_st_dtype_size(t->src[e]->dtype);
                            j->src_len = 0;
                        }
                        j->out_off = e * t->slice_bytes + r * t->row_bytes;
                        j->out_len = nr * t->row_bytes;
                        P->th[ti].jobs_left++;
                        P->prog->bytes_total += j->raw_len;
                    }
                    n++;
                }
            }
        }
        if (pass == 0 && !(P->jobs = calloc(n ? n : 1, sizeof *P->jobs)))
            return mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory for %llu jobs",
                           (unsigned long long)n);
        if (pass == 0)
            n = 0;
    }
    P->n_jobs = n;
    qsort(P->jobs, n, sizeof *P->jobs, cmp_job);
    return MR_OK;
}

/* Feed shard bytes [pos, to) to its hash by reading them (a gap between
 * the tensors the jobs read: the header, padding, skipped tensors). */
static mr_status hash_gap(pool *P, uint32_t sh, uint64_t to, mr_error *err)
{
    const mr_st_file *f = P->p->ckpt->shards[sh];
    while (P->shard_pos[sh] < to) {
        uint64_t n = to - P->shard_pos[sh] < GAP_CHUNK ? to - P->shard_pos[sh] : GAP_CHUNK;
        mr_status s = mr_st_pread(f, P->shard_pos[sh], P->buf, n, err);
        if (s)
            return s;
        XXH3_64bits_update(P->shard_st[sh], P->buf, n);
        posix_fadvise(f->fd, (off_t)P->shard_pos[sh], (off_t)n, POSIX_FADV_DONTNEED);
        P->shard_pos[sh] += n;
    }
    return MR_OK;
}

/* Feed len output bytes at offset off of tensor ti to its whole-tensor and
 * slice hashes, when they arrive in order; else mark it for read-back. */
static void hash_output(pool *P, uint32_t ti, uint64_t off, const uint8_t *data, uint64_t len)
{
    const mr_plan_tensor *t = &P->p->t[ti];
    tensor_hash *h = &P->th[ti];
    if (h->reread || off != h->next) {
        h->reread = 1;
        return;
    }
    XXH3_64bits_update(h->whole, data, len);
    h->next += len;
    if (h->next == t->nbytes)
        P->tensor_xxh3[ti] = XXH3_64bits_digest(h->whole);
    if (t->part < 0)
        return;
    while (len) { /* a piece never crosses a slice, but stay general */
        uint64_t in_slice = off % t->slice_bytes, n = t->slice_bytes - in_slice;
        if (n > len)
            n = len;
        if (in_slice == 0)
            XXH3_64bits_reset(h->slice);
        XXH3_64bits_update(h->slice, data, n);
        if (in_slice + n == t->slice_bytes) {
            uint64_t e = off / t->slice_bytes, n_exp = P->p->hp.n_expert ? P->p->hp.n_expert : 1;
            P->expert_xxh3[((uint64_t)t->layer * n_exp + e) * 3 + (uint64_t)t->part] =
                XXH3_64bits_digest(h->slice);
        }
        off += n;
        data += n;
        len -= n;
    }
}

/* Commit job j: write its output, hash source and output, free it. */
static mr_status commit(pool *P, job *j, mr_error *err)
{
    const mr_plan_tensor *t = &P->p->t[j->tensor];
    const mr_st_file *f = P->p->ckpt->shards[j->shard];
    mr_status s;
    const slot *b = slot_of(P, j);
    if ((s = mr_gguf_writer_pwrite(P->w, t->windex, j->out_off, b->out, j->out_len, err)))
        return s;
    uint64_t at = mr_gguf_writer_tensor_offset(P->w, t->windex) + j->out_off;
    sync_file_range(P->fd, (off64_t)at, (off64_t)j->out_len, SYNC_FILE_RANGE_WRITE);
    if ((s = hash_gap(P, j->shard, j->src_off, err)))
        return s;
    uint64_t end = j->src_off + j->src_len;
    if (P->shard_pos[j->shard] < end) {
        uint64_t skip = P->shard_pos[j->shard] - j->src_off;
        XXH3_64bits_update(P->shard_st[j->shard], b->raw + skip, j->src_len - skip);
        P->shard_pos[j->shard] = end;
    }
    if (j->src_len) /* a length of 0 would mean the whole rest of the file */
        posix_fadvise(f->fd, (off_t)j->src_off, (off_t)j->src_len, POSIX_FADV_DONTNEED);
    hash_output(P, j->tensor, j->out_off, b->out, j->out_len);
    if (--P->th[j->tensor].jobs_left == 0)
        P->prog->tensors_done++;
    P->prog->bytes_read += j->raw_len;
    P->prog->bytes_written += j->out_len;
    return MR_OK;
}

/* Hash tensors that arrived out of order by reading them back. */
static mr_status reread_tensors(pool *P, mr_error *err)
{
    for (uint32_t ti = 0; ti < P->p->n_tensors; ti++) {
        tensor_hash *h = &P->th[ti];
        const mr_plan_tensor *t = &P->p->t[ti];
        if (!h->reread)
            continue;
        XXH3_64bits_reset(h->whole);
        h->reread = 0;
        h->next = 0;
        uint64_t base = mr_gguf_writer_tensor_offset(P->w, t->windex);
        for (uint64_t off = 0; off < t->nbytes;) {
            uint64_t n = t->nbytes - off < GAP_CHUNK ? t->nbytes - off : GAP_CHUNK;
            if (t->part >= 0 && n > t->slice_bytes - off % t->slice_bytes)
                n = t->slice_bytes - off % t->slice_bytes;
            mr_status s = mr_pread_full(P->fd, P->out_name, base + off, P->buf, n, err);
            if (s)
                return s;
            hash_output(P, ti, off, P->buf, n);
            off += n;
        }
    }
    return MR_OK;
}

/* Finish the shard hashes and patch every checksum array. */
static mr_status finish_hashes(pool *P, mr_error *err)
{
    mr_plan *p = P->p;
    mr_status s;
    for (uint32_t sh = 0; sh < p->ckpt->n_shards; sh++)
        if ((s = hash_gap(P, sh, p->ckpt->shards[sh]->file_size, err)))
            return s;
    if ((s = reread_tensors(P, err)))
        return s;
    for (uint32_t i = 0; i < p->n_sources; i++)
        if (p->sources[i].shard >= 0)
            p->sources[i].xxh3 = XXH3_64bits_digest(P->shard_st[p->sources[i].shard]);
    for (uint32_t i = 0; i < p->n_sources; i++)
        if ((s = mr_gguf_writer_patch_u64(P->w, MR_KEY_SOURCE_XXH3, i, p->sources[i].xxh3, err)))
            return s;
    for (uint32_t i = 0; i < p->n_tensors; i++)
        if ((s = mr_gguf_writer_patch_u64(P->w, MR_KEY_CHECKSUM_TENSORS, i, P->tensor_xxh3[i], err)))
            return s;
    for (uint64_t i = 0; i < p->expert_hash_count; i++)
        if ((s = mr_gguf_writer_patch_u64(P->w, MR_KEY_CHECKSUM_EXPERTS, i, P->expert_xxh3[i], err)))
            return s;
    return MR_OK;
}

/* Reserve the whole output now, so a full disk fails before the work. */
static mr_status reserve(pool *P, mr_error *err)
{
    uint64_t size = mr_gguf_writer_file_size(P->w);
    int e = posix_fallocate(P->fd, 0, (off_t)size);
    if (e == EOPNOTSUPP || e == EINVAL)
        e = ftruncate(P->fd, (off_t)size) ? errno : 0;
    if (e)
        return mr_fail(err, MR_EIO, P->out_name, NULL, MR_NO_OFFSET,
                       "cannot reserve %llu bytes: %s", (unsigned long long)size, strerror(e));
    return MR_OK;
}

/* Seconds on the monotonic clock. */
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Allocate the hash states of the pool. */
static mr_status alloc_hashes(pool *P, mr_error *err)
{
    mr_plan *p = P->p;
    P->th = calloc(p->n_tensors, sizeof *P->th);
    P->tensor_xxh3 = calloc(p->n_tensors, sizeof *P->tensor_xxh3);
    P->expert_xxh3 = calloc(p->expert_hash_count ? p->expert_hash_count : 1, sizeof(uint64_t));
    P->shard_st = calloc(p->ckpt->n_shards, sizeof *P->shard_st);
    P->shard_pos = calloc(p->ckpt->n_shards, sizeof *P->shard_pos);
    P->buf = malloc(GAP_CHUNK);
    if (!P->th || !P->tensor_xxh3 || !P->expert_xxh3 || !P->shard_st || !P->shard_pos || !P->buf)
        return mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory");
    for (uint32_t i = 0; i < p->n_tensors; i++) {
        if (!(P->th[i].whole = XXH3_createState()) || !(P->th[i].slice = XXH3_createState()))
            return mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory");
        XXH3_64bits_reset(P->th[i].whole);
        XXH3_64bits_reset(P->th[i].slice);
    }
    for (uint32_t i = 0; i < p->ckpt->n_shards; i++) {
        if (!(P->shard_st[i] = XXH3_createState()))
            return mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory");
        XXH3_64bits_reset(P->shard_st[i]);
        posix_fadvise(p->ckpt->shards[i]->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    }
    return MR_OK;
}

/* Allocate the window's buffers, each as large as the largest job needs. */
static mr_status alloc_slots(pool *P, mr_error *err)
{
    uint64_t raw = 1, out = 1, row = 1, block = 1, scales = 1;
    for (uint64_t i = 0; i < P->n_jobs; i++) {
        const job *j = &P->jobs[i];
        const mr_plan_tensor *t = &P->p->t[j->tensor];
        const uint64_t nc = src_row_len(t), n_src_rows = t->transpose ? t->ne[0] : j->nrows;
        raw = j->raw_len > raw ? j->raw_len : raw;
        out = j->out_len > out ? j->out_len : out;
        const uint64_t rw = t->ne[0] * (t->col_step ? t->col_step : 1);
        row = rw > row ? rw : row;
        row = nc > row ? nc : row;
        if (t->transpose && n_src_rows * nc > block)
            block = n_src_rows * nc;
        if (t->scale && t->scale[j->src]) {
            const uint32_t b0 = P->p->hp.fp8_block[0];
            const uint64_t nsr = (j->src_row0 + n_src_rows - 1) / b0 - j->src_row0 / b0 + 1;
            if (nsr * t->scale[j->src]->shape[1] > scales)
                scales = nsr * t->scale[j->src]->shape[1];
        }
    }
    if (!(P->slots = calloc(P->window, sizeof *P->slots)))
        return mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory");
    for (unsigned i = 0; i < P->window; i++)
        if (!(P->slots[i].raw = malloc(raw)) || !(P->slots[i].out = malloc(out)) ||
            !(P->slots[i].row = malloc(2 * sizeof(float) * row)) ||
            !(P->slots[i].block = malloc(sizeof(float) * block)) ||
            !(P->slots[i].scales = malloc(sizeof(float) * scales)))
            return mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET,
                           "no memory for %u job buffers of %llu + %llu bytes", P->window,
                           (unsigned long long)raw, (unsigned long long)out);
    P->prog->buffer_bytes = P->window * (raw + out + sizeof(float) * (2 * row + block + scales));
    return MR_OK;
}

/* Free the pool's jobs, buffers and hash states. */
static void pool_free(pool *P)
{
    for (unsigned i = 0; P->slots && i < P->window; i++) {
        free(P->slots[i].raw);
        free(P->slots[i].out);
        free(P->slots[i].row);
        free(P->slots[i].block);
        free(P->slots[i].scales);
    }
    free(P->slots);
    for (uint32_t i = 0; P->th && i < P->p->n_tensors; i++) {
        XXH3_freeState(P->th[i].whole);
        XXH3_freeState(P->th[i].slice);
    }
    for (uint32_t i = 0; P->shard_st && i < P->p->ckpt->n_shards; i++)
        XXH3_freeState(P->shard_st[i]);
    free(P->jobs);
    free(P->th);
    free(P->tensor_xxh3);
    free(P->expert_xxh3);
    free(P->shard_st);
    free(P->shard_pos);
    free(P->buf);
}

/* Commit every job in order while the workers run ahead. */
static mr_status commit_all(pool *P, const mr_convert_opts *o, double t0, mr_error *err)
{
    for (uint64_t i = 0; i < P->n_jobs; i++) {
        job *j = &P->jobs[i];
        pthread_mutex_lock(&P->mu);
        while (j->state == JOB_PENDING)
            pthread_cond_wait(&P->cv_done, &P->mu);
        pthread_mutex_unlock(&P->mu);
        if (j->state == JOB_FAILED) { /* every earlier job committed: it is fail_job */
            if (err)
                *err = P->fail_err;
            return P->fail_err.code;
        }
        mr_status s = commit(P, j, err);
        if (s)
            return s;
        pthread_mutex_lock(&P->mu);
        P->committed++;
        pthread_cond_broadcast(&P->cv_work);
        pthread_mutex_unlock(&P->mu);
        P->prog->jobs_done = i + 1;
        P->prog->seconds = now_s() - t0;
        if (o->progress)
            o->progress(P->prog, o->user);
    }
    return MR_OK;
}

/* Run the conversion's jobs; see convert_internal.h. */
mr_status mr_quantize_run(mr_plan *p, mr_gguf_writer *w, int fd, const char *out_name,
                          const mr_convert_opts *o, mr_convert_progress *prog, mr_error *err)
{
    pool P;
    mr_status s;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned nthreads = o->threads > 0 ? (unsigned)o->threads : ncpu > 0 ? (unsigned)ncpu : 1;
    if (nthreads > 256)
        nthreads = 256;
    pthread_t tid[256];
    unsigned started = 0;
    double t0 = now_s();
    memset(&P, 0, sizeof P);
    memset(prog, 0, sizeof *prog);
    P.p = p, P.w = w, P.fd = fd, P.out_name = out_name, P.prog = prog;
    P.job_bytes = o->job_bytes ? o->job_bytes : MR_CONVERT_JOB_BYTES;
    P.window = mr_convert_window(nthreads);
    P.fail_job = UINT64_MAX;
    prog->tensors_total = p->n_tensors;
    pthread_mutex_init(&P.mu, NULL);
    pthread_cond_init(&P.cv_work, NULL);
    pthread_cond_init(&P.cv_done, NULL);
    if ((s = alloc_hashes(&P, err)) || (s = make_jobs(&P, err)) || (s = alloc_slots(&P, err)) ||
        (s = reserve(&P, err)))
        goto done;
    prog->jobs_total = P.n_jobs;
    for (; started < nthreads; started++)
        if (pthread_create(&tid[started], NULL, worker, &P)) {
            s = mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "cannot start a thread");
            break;
        }
    if (!s)
        s = commit_all(&P, o, t0, err);
    pthread_mutex_lock(&P.mu);
    P.abort = 1;
    pthread_cond_broadcast(&P.cv_work);
    pthread_mutex_unlock(&P.mu);
    for (unsigned i = 0; i < started; i++)
        pthread_join(tid[i], NULL);
    if (!s)
        s = finish_hashes(&P, err);
    prog->seconds = now_s() - t0;
done:
    pool_free(&P);
    pthread_cond_destroy(&P.cv_done);
    pthread_cond_destroy(&P.cv_work);
    pthread_mutex_destroy(&P.mu);
    return s;
}
