/* verify.c - check moerun's checksums of a GGUF file (see verify.h). */
#include "verify.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "fileio.h"
#include "gguf.h"
#include "gguf_write.h"
#include "moerun_keys.h"

#define CHUNK (8u << 20)

static const char *const part_names[3] = {"gate", "up", "down"};

/* Seconds on the monotonic clock. */
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Element i of a u64 array value. */
static uint64_t arr_u64(const mr_gguf_value *a, uint64_t i)
{
    return mr_gguf_arr_u64(a, i);
}

/* Hash [0, data offset) with the late-filled values as zeros and compare
 * with MR_KEY_CHECKSUM_METADATA (see moerun_keys.h); absent: *checked 0. */
static mr_status check_metadata(const mr_gguf *g, int *checked, mr_error *err)
{
    const mr_gguf_kv *mk = mr_gguf_find(g, MR_KEY_CHECKSUM_METADATA);
    *checked = 0;
    if (!mk)
        return MR_OK;
    if (mk->val.type != MR_GGUF_UINT64)
        return mr_fail(err, MR_EFORMAT, g->path, MR_KEY_CHECKSUM_METADATA, mk->val.offset,
                       "is a %s, not a uint64", mr_gguf_vtype_name(mk->val.type));
    uint64_t *holes = malloc(sizeof *holes * 2 * (g->n_kv + 1));
    size_t n = 0;
    if (!holes)
        return mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory");
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const mr_gguf_kv *kv = &g->kv[i];
        if (!mr_key_outside_metadata_hash(kv->key))
            continue;
        if (kv->val.type == MR_GGUF_UINT64) {
            holes[2 * n] = kv->val.offset;
            holes[2 * n + 1] = 8;
            n++;
        } else if (kv->val.type == MR_GGUF_ARRAY && kv->val.v.arr.elem_type == MR_GGUF_UINT64) {
            holes[2 * n] = (uint64_t)(kv->val.v.arr.data - g->base);
            holes[2 * n + 1] = 8 * kv->val.v.arr.n;
            n++;
        }
    }
    uint64_t got = mr_gguf_hash_with_holes(g->base, g->data_offset, holes, n);
    free(holes);
    if (got != mk->val.v.u64) {
        /* name the key most likely hit: none can be told apart by one hash,
         * so say what the hash covers */
        return mr_fail(err, MR_ECHECKSUM, g->path, "metadata", MR_NO_OFFSET,
                       "XXH3 %016llx of the header, keys, values and tensor infos "
                       "[0, %llu), but %s records %016llx: a key, value or tensor info was "
                       "changed after moerun wrote the file", (unsigned long long)got,
                       (unsigned long long)g->data_offset, MR_KEY_CHECKSUM_METADATA,
                       (unsigned long long)mk->val.v.u64);
    }
    *checked = 1;
    return MR_OK;
}

/* For every tensor, the FFN layer and part it is (slices to check), or -1. */
static mr_status map_ffn(const mr_gguf *g, uint32_t n_layer, int moe, int32_t *layer,
                         int8_t *part, mr_error *err)
{
    static const char *const moe_names[3] = {"ffn_gate_exps", "ffn_up_exps", "ffn_down_exps"};
    static const char *const dense_names[3] = {"ffn_gate", "ffn_up", "ffn_down"};
    for (uint64_t i = 0; i < g->n_tensors; i++)
        layer[i] = -1, part[i] = -1;
    for (uint32_t l = 0; l < n_layer; l++)
        for (int p = 0; p < 3; p++) {
            char name[96];
            snprintf(name, sizeof name, "blk.%u.%s.weight", l, (moe ? moe_names : dense_names)[p]);
            const mr_gguf_tensor *t = mr_gguf_tensor_find(g, name);
            char dense[96];
            snprintf(dense, sizeof dense, "blk.%u.%s.weight", l, dense_names[p]);
            if (!t && moe && mr_gguf_tensor_find(g, dense))
                continue; /* a dense layer of a MoE model (Llama 4 Maverick): no slices */
            if (!t)
                return mr_fail(err, MR_EFORMAT, g->path, name, MR_NO_OFFSET,
                               "tensor is missing, so its expert checksums cannot be checked");
            layer[t - g->tensors] = (int32_t)l;
            part[t - g->tensors] = (int8_t)p;
        }
    return MR_OK;
}

/* Hash every tensor (and its slices when it is an FFN part) and compare. */
static mr_status check_tensors(const mr_gguf *g, const mr_gguf_value *th, const mr_gguf_value *eh,
                               uint32_t n_exp, const int32_t *layer, const int8_t *part,
                               uint8_t *buf, mr_verify_report *rep, mr_verify_progress_fn progress,
                               void *user, double t0, mr_error *err)
{
    XXH3_state_t *whole = XXH3_createState(), *slice = XXH3_createState();
    mr_status s = MR_OK;
    if (!whole || !slice) {
        s = mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory");
        goto done;
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const mr_gguf_tensor *t = &g->tensors[i];
        uint64_t ns = part[i] >= 0 ? n_exp : 1, sb = t->nbytes / ns;
        XXH3_64bits_reset(whole);
        for (uint64_t e = 0; e < ns; e++) {
            XXH3_64bits_reset(slice);
            for (uint64_t off = 0; off < sb;) {
                uint64_t n = sb - off < CHUNK ? sb - off : CHUNK, at = t->file_offset + e * sb + off;
                if ((s = mr_pread_full(g->fd, g->path, at, buf, n, err)))
                    goto done;
                XXH3_64bits_update(whole, buf, n);
                XXH3_64bits_update(slice, buf, n);
                posix_fadvise(g->fd, (off_t)at, (off_t)n, POSIX_FADV_DONTNEED);
                off += n;
                rep->bytes_done += n;
                rep->seconds = now_s() - t0;
                if (progress)
                    progress(rep, user);
            }
            if (part[i] < 0)
                continue;
            uint64_t k = ((uint64_t)layer[i] * n_exp + e) * 3 + (uint64_t)part[i];
            uint64_t got = XXH3_64bits_digest(slice), want = arr_u64(eh, k);
            if (got != want) {
                s = mr_fail(err, MR_ECHECKSUM, g->path, t->name, t->file_offset + e * sb,
                            "layer %d expert %llu %s: XXH3 %016llx, but %s[%llu] records %016llx",
                            layer[i], (unsigned long long)e, part_names[part[i]],
                            (unsigned long long)got, MR_KEY_CHECKSUM_EXPERTS,
                            (unsigned long long)k, (unsigned long long)want);
                goto done;
            }
            rep->slices++;
        }
        uint64_t got = XXH3_64bits_digest(whole), want = arr_u64(th, i);
        if (got != want) {
            s = mr_fail(err, MR_ECHECKSUM, g->path, t->name, t->file_offset,
                        "XXH3 %016llx, but %s[%llu] records %016llx", (unsigned long long)got,
                        MR_KEY_CHECKSUM_TENSORS, (unsigned long long)i, (unsigned long long)want);
            goto done;
        }
        rep->tensors++;
    }
done:
    XXH3_freeState(whole);
    XXH3_freeState(slice);
    return s;
}

/* Hash the recorded source files in dir and compare. */
static mr_status check_sources(const mr_gguf *g, const char *dir, uint8_t *buf,
                               mr_verify_report *rep, mr_error *err)
{
    const mr_gguf_value *names, *hashes;
    mr_status s;
    if ((s = mr_gguf_get_arr(g, MR_KEY_SOURCE_FILES, MR_GGUF_STRING, 0, &names, err)) ||
        (s = mr_gguf_get_arr(g, MR_KEY_SOURCE_XXH3, MR_GGUF_UINT64, names->v.arr.n, &hashes, err)))
        return s;
    XXH3_state_t *st = XXH3_createState();
    if (!st)
        return mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory");
    for (uint64_t i = 0; i < names->v.arr.n && !s; i++) {
        const mr_str *nm = &names->v.arr.strs[i];
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)(nm->len < 255 ? nm->len : 255), nm->ptr);
        char *path = strchr(name, '/') ? NULL : mr_path_join(dir, name);
        if (!path) {
            s = mr_fail(err, MR_EFORMAT, g->path, MR_KEY_SOURCE_FILES, MR_NO_OFFSET,
                        "entry %llu is not a plain file name", (unsigned long long)i);
            break;
        }
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            s = mr_fail(err, MR_EIO, path, NULL, MR_NO_OFFSET, "cannot open: %s", strerror(errno));
            free(path);
            break;
        }
        XXH3_64bits_reset(st);
        for (;;) {
            ssize_t r = read(fd, buf, CHUNK);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0)
                s = mr_fail(err, MR_EIO, path, NULL, MR_NO_OFFSET, "read failed: %s", strerror(errno));
            if (r <= 0)
                break;
            XXH3_64bits_update(st, buf, (size_t)r);
        }
        close(fd);
        if (!s && XXH3_64bits_digest(st) != arr_u64(hashes, i))
            s = mr_fail(err, MR_ECHECKSUM, path, NULL, MR_NO_OFFSET,
                        "differs from the source file this model was made from (%s[%llu])",
                        MR_KEY_SOURCE_XXH3, (unsigned long long)i);
        if (!s)
            rep->sources++;
        free(path);
    }
    XXH3_freeState(st);
    return s;
}

/* Verify a file; see verify.h. */
mr_status mr_verify(const char *path, const char *source_dir, mr_verify_report *rep,
                    mr_verify_progress_fn progress, void *user, mr_error *err)
{
    mr_gguf *g = NULL;
    mr_status s;
    mr_str alg;
    const mr_gguf_value *th, *eh;
    uint32_t n_layer = 0, n_expert = 0;
    int32_t *layer = NULL;
    int8_t *part = NULL;
    uint8_t *buf = NULL;
    double t0 = now_s();
    memset(rep, 0, sizeof *rep);
    if ((s = mr_gguf_open(path, &g, err)))
        return s;
    if (!mr_gguf_find(g, MR_KEY_CHECKSUM_ALGORITHM)) {
        s = mr_fail(err, MR_EFORMAT, path, MR_KEY_CHECKSUM_ALGORITHM, MR_NO_OFFSET,
                    "missing: the file was not written by moerun quantize");
        goto done;
    }
    if ((s = mr_gguf_get_str(g, MR_KEY_CHECKSUM_ALGORITHM, &alg, err)))
        goto done;
    if (alg.len != 7 || memcmp(alg.ptr, "xxh3-64", 7)) {
        s = mr_fail(err, MR_EUNSUPPORTED, path, MR_KEY_CHECKSUM_ALGORITHM, MR_NO_OFFSET,
                    "'%.*s' is not xxh3-64", (int)(alg.len < 32 ? alg.len : 32), alg.ptr);
        goto done;
    }
    mr_str arch;
    char k_layers[96], k_experts[96];
    if ((s = mr_gguf_get_str(g, "general.architecture", &arch, err)))
        goto done;
    snprintf(k_layers, sizeof k_layers, "%.*s.block_count", (int)(arch.len < 64 ? arch.len : 64),
             arch.ptr);
    snprintf(k_experts, sizeof k_experts, "%.*s.expert_count",
             (int)(arch.len < 64 ? arch.len : 64), arch.ptr);
    if ((s = mr_gguf_get_u32(g, k_layers, &n_layer, err)) ||
        (s = mr_gguf_get_u32_opt(g, k_experts, &n_expert, err)))
        goto done;
    if ((s = check_metadata(g, &rep->metadata, err)))
        goto done;
    uint32_t n_exp = n_expert ? n_expert : 1;
    if ((s = mr_gguf_get_arr(g, MR_KEY_CHECKSUM_TENSORS, MR_GGUF_UINT64, g->n_tensors, &th, err)) ||
        (s = mr_gguf_get_arr(g, MR_KEY_CHECKSUM_EXPERTS, MR_GGUF_UINT64,
                             3ull * n_layer * n_exp, &eh, err)))
        goto done;
    layer = malloc(sizeof *layer * (g->n_tensors + 1));
    part = malloc(g->n_tensors + 1);
    buf = malloc(CHUNK);
    if (!layer || !part || !buf) {
        s = mr_fail(err, MR_ENOMEM, NULL, NULL, MR_NO_OFFSET, "no memory");
        goto done;
    }
    for (uint64_t i = 0; i < g->n_tensors; i++)
        rep->bytes_total += g->tensors[i].nbytes;
    if ((s = map_ffn(g, n_layer, n_expert > 0, layer, part, err)) ||
        (s = check_tensors(g, th, eh, n_exp, layer, part, buf, rep, progress, user, t0, err)))
        goto done;
    if (source_dir)
        s = check_sources(g, source_dir, buf, rep, err);
done:
    rep->seconds = now_s() - t0;
    free(buf);
    free(part);
    free(layer);
    mr_gguf_close(g);
    return s;
}
