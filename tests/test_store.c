/* test_store.c - the paged expert store against the resident one: logits
 * must be bit-identical at every budget down to the minimum, for a prompt
 * batch and for token-by-token generation; and every injected fault must
 * end in a clear error naming the layer and expert, or in a correct retry,
 * never in wrong logits.
 *
 * Models: the shipped demo (llama.cpp-written, no checksums) and a
 * synthetic "micro" and "tinymix"-shaped model written here by moerun synth
 * (with moerun's expert checksums).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fileio.h"
#include "pack.h"
#include "quant_mix.h"
#include "forward.h"
#include "store_paged.h"
#include "synth.h"
#include "types.h"
#include "testutil.h"

static char tmpdir[256];
static char synth_path[3][300]; /* micro, tinymix (Q8_0), tinymix Q4_K_M (Q4_K, Q6_K, ...) */

/* Logits of a 9-token prompt (one batch) then 6 generated tokens (greedy,
 * one at a time): 15 rows.  Returns NULL and fills err on failure. */
static float *run(mr_model *m, mr_expert_store *st, mr_status *status, mr_error *err)
{
    const uint32_t nv = m->hp.n_vocab;
    int32_t prompt[9] = {1, 300, 301, 302, 310, 320, 330, 340, 350};
    float *out = malloc(sizeof(float) * 15 * nv);
    mr_context *c;
    *status = mr_context_new(m, st, 32, 16, &c, err);
    ck_assert_int_eq(*status, MR_OK);
    mr_context_set_threads(c, 2, err);
    *status = mr_decode(c, prompt, 9, out, 1, err);
    for (int i = 9; i < 15 && *status == MR_OK; i++) {
        const float *last = out + (size_t)(i - 1) * nv;
        int32_t best = 0;
        for (uint32_t v = 1; v < nv; v++)
            if (last[v] > last[best])
                best = (int32_t)v;
        *status = mr_decode(c, &best, 1, out + (size_t)i * nv, 0, err);
    }
    mr_context_free(c);
    if (*status) {
        free(out);
        return NULL;
    }
    return out;
}

static float *run_resident(const char *path)
{
    mr_error err;
    mr_model *m;
    mr_expert_store *st;
    mr_status s;
    ck_assert_msg(mr_model_load(path, &m, &err) == 0, "%s", err.msg);
    ck_assert(mr_store_resident_new(m, &st, &err) == 0);
    float *lg = run(m, st, &s, &err);
    ck_assert_msg(lg, "%s", err.msg);
    mr_expert_store_free(st);
    mr_model_free(m);
    return lg;
}

/* A paged run at budget = minimum + extra slots; fault optional. */
typedef struct {
    uint32_t extra_slots;
    uint32_t prefetch;
    int no_direct;
    int no_io_uring;
    uint32_t policy;      /* MR_PAGED_* bits */
    uint32_t guess_extra;
    int eager_pool;
    mr_fault fault;
    mr_paged_stats stats;
    size_t pool_filled;   /* mr_store_paged_pool's length after the run */
    double pool_gbs;      /* the read bandwidth measured over it */
    mr_status status;
    mr_error err;
} paged_run;

static float *run_paged(const char *path, paged_run *pr)
{
    mr_model *m;
    mr_expert_store *st;
    ck_assert_msg(mr_model_load(path, &m, &pr->err) == 0, "%s", pr->err.msg);
    mr_paged_config cfg;
    mr_paged_config_default(&cfg);
    cfg.reserve_bytes = mr_context_bytes(m, 32, 16);
    cfg.prefetch_depth = pr->prefetch;
    cfg.no_direct = pr->no_direct;
    cfg.no_io_uring = pr->no_io_uring;
    cfg.policy = pr->policy;
    cfg.guess_extra = pr->guess_extra;
    cfg.eager_pool = pr->eager_pool;
    cfg.chunk_bytes = 64 << 10; /* several chunks per slice: exercise the queue */
    uint64_t min = mr_store_paged_min_budget(m, &cfg);
    cfg.budget_bytes = min + (uint64_t)pr->extra_slots * (mr_expert_bytes(m, 0) + 3 * 8192);
    ck_assert_msg(mr_store_paged_new(m, path, &cfg, &st, &pr->err) == 0, "%s", pr->err.msg);
    if (pr->fault.kind)
        mr_store_paged_inject(st, &pr->fault);
    float *lg = run(m, st, &pr->status, &pr->err);
    ck_assert(mr_store_paged_stats(st, &pr->stats));
    const void *pool = mr_store_paged_pool(st, &pr->pool_filled);
    ck_assert_ptr_nonnull(pool);
    pr->pool_gbs = mr_read_bandwidth_of(pool, pr->pool_filled, 2);
    mr_expert_store_free(st);
    mr_model_free(m);
    return lg;
}

static const char *model_path(int which)
{
    return which == 0 ? tu_demo_model() : synth_path[which - 1];
}

/* budgets: the minimum, a little more, and everything */
START_TEST(paged_equals_resident_at_every_budget)
{
    const int which = _i / 4, variant = _i % 4;
    const char *path = model_path(which);
    float *want = run_resident(path);
    mr_model *m;
    mr_error err;
    ck_assert(mr_model_load(path, &m, &err) == 0);
    const uint32_t all = m->hp.n_layer * m->hp.n_expert, nv = m->hp.n_vocab;
    mr_model_free(m);
    paged_run pr = {0};
    pr.extra_slots = variant == 0 ? 0 : variant == 1 ? 3 : all;
    pr.prefetch = variant == 2 ? 0 : variant == 3 ? 2 : 1;
    pr.no_direct = variant == 2;
    pr.no_io_uring = variant == 2; /* the pread path io_uring-less hosts take */
    float *got = run_paged(path, &pr);
    ck_assert_msg(got, "%s", pr.err.msg);
    size_t first = 0;
    while (first < (size_t)15 * nv && memcmp(&want[first], &got[first], sizeof(float)) == 0)
        first++;
    ck_assert_msg(first == (size_t)15 * nv,
                  "%s: paged logits differ from resident (%u slots), first at row %zu: %g vs %g",
                  path, (unsigned)pr.stats.n_slots, first / nv, (double)want[first], (double)got[first]);
    printf("%-40s %3llu slots%s prefetch %u: logits bit-identical; hit rate %.0f%%, %llu "
           "evictions, guesses right %.0f%%, %s\n",
           strrchr(path, '/') + 1, (unsigned long long)pr.stats.n_slots,
           pr.no_direct ? " pread   " : pr.stats.direct ? " O_DIRECT" : " buffered", pr.prefetch,
           100.0 * pr.stats.hits / (double)(pr.stats.hits + pr.stats.misses),
           (unsigned long long)pr.stats.evictions,
           pr.stats.guesses ? 100.0 * pr.stats.guesses_right / pr.stats.guesses : 0.0,
           pr.stats.checksums ? "checksums verified" : "no checksums in file");
    if (which > 0)
        ck_assert(pr.stats.checksums);
    if (variant == 0)
        ck_assert(pr.stats.evictions > 0); /* the minimum really pages */
    free(want);
    free(got);
}
END_TEST

/* The cache and prefetch policies, the wider guess and the eager pool
 * change what is read when, never the logits. */
static const struct {
    uint32_t policy, prefetch, extra;
    int eager;
} policies[] = {
    {MR_PAGED_HOT_GUARD, 1, 0, 0},
    {MR_PAGED_HOT_GUARD | MR_PAGED_IDLE_DEEP | MR_PAGED_FREQ_FILL, 2, 1, 0},
    {MR_PAGED_FREQ_FILL, 1, 2, 0},
    {0, 1, 0, 1},
};
#define N_POLICIES (int)(sizeof policies / sizeof policies[0])

static int first_diff(const float *a, const float *b, size_t n)
{
    size_t i = 0;
    while (i < n && memcmp(&a[i], &b[i], sizeof(float)) == 0)
        i++;
    return i == n ? -1 : (int)i;
}

START_TEST(policies_keep_logits_bit_identical)
{
    const int which = _i / (2 * N_POLICIES), k = (_i / 2) % N_POLICIES, extra = _i % 2 ? 3 : 0;
    const char *path = model_path(which);
    float *want = run_resident(path);
    mr_model *m;
    mr_error err;
    ck_assert(mr_model_load(path, &m, &err) == 0);
    const uint32_t nv = m->hp.n_vocab;
    mr_model_free(m);
    paged_run pr = {0};
    pr.extra_slots = (uint32_t)extra;
    pr.policy = policies[k].policy;
    pr.prefetch = policies[k].prefetch;
    pr.guess_extra = policies[k].extra;
    pr.eager_pool = policies[k].eager;
    float *got = run_paged(path, &pr);
    ck_assert_msg(got, "%s", pr.err.msg);
    int d = first_diff(want, got, (size_t)15 * nv);
    ck_assert_msg(d < 0, "%s: policy %u prefetch %u extra %u eager %d, %u slots: logits differ "
                  "at row %d", path, policies[k].policy, policies[k].prefetch, policies[k].extra,
                  policies[k].eager, (unsigned)pr.stats.n_slots, d / (int)nv);
    /* an eager pool is registered whole; a lazy one slot by slot, never more */
    if (pr.stats.registered && policies[k].eager)
        ck_assert_uint_eq(pr.stats.registered_slots, pr.stats.n_slots);
    ck_assert_uint_le(pr.stats.registered_slots, pr.stats.n_slots);
    free(want);
    free(got);
}
END_TEST

/* The wider guess adds the router's next-best experts to each token's
 * top-k: the guessed set only grows, so recall cannot fall, and on these
 * models it rises. */
START_TEST(wider_guess_raises_recall)
{
    const char *path = model_path(_i);
    double recall[2];
    for (int x = 0; x < 2; x++) {
        paged_run pr = {0};
        pr.extra_slots = 3;
        pr.prefetch = 1;
        pr.guess_extra = (uint32_t)x;
        float *got = run_paged(path, &pr);
        ck_assert_msg(got, "%s", pr.err.msg);
        ck_assert(pr.stats.needed > 0);
        recall[x] = (double)pr.stats.guesses_right / (double)pr.stats.needed;
        free(got);
    }
    printf("%-40s recall %.1f%% -> %.1f%% with one more guess per token\n",
           strrchr(path, '/') + 1, 100 * recall[0], 100 * recall[1]);
    ck_assert(recall[1] > recall[0]);
}
END_TEST

/* With every expert fitting, no prefetch and buffered reads, each expert
 * planned is read exactly once: the bytes read are the distinct experts'
 * bytes, the first-token floor's numerator. */
START_TEST(unique_bytes_are_what_one_read_each_costs)
{
    const char *path = model_path(2);
    mr_model *m;
    mr_error err;
    ck_assert(mr_model_load(path, &m, &err) == 0);
    const uint32_t all = m->hp.n_layer * m->hp.n_expert;
    const uint64_t eb = mr_expert_bytes(m, 0);
    mr_model_free(m);
    paged_run pr = {0};
    pr.extra_slots = all;
    pr.prefetch = 0;
    pr.no_direct = 1;
    float *got = run_paged(path, &pr);
    ck_assert_msg(got, "%s", pr.err.msg);
    ck_assert_uint_eq(pr.stats.evictions, 0);
    ck_assert_uint_gt(pr.stats.unique_bytes, 0);
    ck_assert_msg(pr.stats.unique_bytes % eb == 0, "%s: unique %llu, expert %llu", path, (unsigned long long)pr.stats.unique_bytes, (unsigned long long)eb);
    ck_assert_uint_eq(pr.stats.bytes_read, pr.stats.unique_bytes);
    /* no evictions: every expert read took the next empty slot, so the
     * filled prefix of the pool (what the paged bound's bandwidth is
     * measured over) is one slot per expert read */
    const uint64_t n_read = pr.stats.unique_bytes / eb;
    ck_assert_msg(pr.pool_filled == n_read * pr.stats.slot_bytes,
                  "filled pool %zu bytes for %llu experts in slots of %llu", pr.pool_filled,
                  (unsigned long long)n_read, (unsigned long long)pr.stats.slot_bytes);
    ck_assert_msg(pr.pool_gbs > 0.0, "no bandwidth over %zu bytes", pr.pool_filled);
    /* another backend has no pool */
    ck_assert(mr_model_load(path, &m, &err) == 0);
    mr_expert_store *res;
    ck_assert(mr_store_resident_new(m, &res, &err) == 0);
    size_t len = 1;
    ck_assert_ptr_null(mr_store_paged_pool(res, &len));
    ck_assert_uint_eq(len, 0);
    mr_expert_store_free(res);
    mr_model_free(m);
    free(got);
}
END_TEST

/* --mem auto from made-up /proc and /sys files; expected figures worked
 * out by hand from the numbers written. */
static void put(const char *dir, const char *rel, const char *text)
{
    char path[600], cmd[700];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    snprintf(cmd, sizeof cmd, "mkdir -p \"$(dirname '%s')\"", path);
    ck_assert(system(cmd) == 0);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

START_TEST(mem_auto_reads_cgroups_and_meminfo)
{
    char d[300], self[400], root[400], mi[400], why[1024];
    uint64_t budget, avail;
    mr_error err;
    snprintf(d, sizeof d, "%s/memauto", tmpdir);
    snprintf(self, sizeof self, "%s/self_cgroup", d);
    snprintf(root, sizeof root, "%s/cg", d);
    snprintf(mi, sizeof mi, "%s/meminfo", d);
    const uint64_t MiB = 1 << 20;
    /* v1: /a/b limited to 1 GiB with 300 MiB in use of which 100 MiB page
     * cache; its parent /a allows 2 GiB; MemAvailable 8 GiB */
    put(d, "self_cgroup", "9:pids:/\n4:memory:/a/b\n0::/\n");
    put(d, "cg/memory/a/b/memory.limit_in_bytes", "1073741824\n");
    put(d, "cg/memory/a/b/memory.usage_in_bytes", "314572800\n");
    put(d, "cg/memory/a/b/memory.stat", "cache 1\nrss 2\ntotal_cache 104857600\n");
    put(d, "cg/memory/a/memory.limit_in_bytes", "2147483648\n");
    put(d, "cg/memory/memory.limit_in_bytes", "9223372036854771712\n");
    put(d, "meminfo", "MemTotal:       16000000 kB\nMemAvailable:    8388608 kB\n");
    ck_assert_int_eq(mr_mem_auto_budget_at(self, root, mi, &budget, &avail, why, sizeof why, &err),
                     MR_OK);
    ck_assert_uint_eq(avail, 824 * MiB);         /* 1024 - (300 - 100) */
    ck_assert_uint_eq(budget, (824 - 128) * MiB); /* 10% is 82.4 MiB: the 128 MiB floor */
    ck_assert_ptr_nonnull(strstr(why, "/a/b"));
    /* v2: /x limited to 2 GiB, nothing in it; MemAvailable 1.5 GiB is less */
    put(d, "self_cgroup", "0::/x\n");
    put(d, "cg/x/memory.max", "2147483648\n");
    put(d, "cg/x/memory.current", "0\n");
    put(d, "cg/x/memory.stat", "anon 0\nfile 0\n");
    put(d, "meminfo", "MemAvailable:    1572864 kB\n");
    ck_assert_int_eq(mr_mem_auto_budget_at(self, root, mi, &budget, &avail, why, sizeof why, &err),
                     MR_OK);
    ck_assert_uint_eq(avail, 1536 * MiB);
    ck_assert_uint_eq(budget, 1536 * MiB - 1536 * MiB / 10); /* 153.6 MiB > the floor */
    ck_assert_ptr_nonnull(strstr(why, "MemAvailable"));
    /* v2 "max", and the same cgroup at 1 GiB with 512 MiB anon in use */
    put(d, "cg/x/memory.max", "max\n");
    ck_assert_int_eq(mr_mem_auto_budget_at(self, root, mi, &budget, &avail, why, sizeof why, &err),
                     MR_OK);
    ck_assert_uint_eq(avail, 1536 * MiB);
    put(d, "cg/x/memory.max", "1073741824\n");
    put(d, "cg/x/memory.current", "536870912\n");
    ck_assert_int_eq(mr_mem_auto_budget_at(self, root, mi, &budget, &avail, why, sizeof why, &err),
                     MR_OK);
    ck_assert_uint_eq(avail, 512 * MiB);
    ck_assert_uint_eq(budget, 384 * MiB);
    ck_assert_ptr_nonnull(strstr(why, "cgroup v2 /x"));
    /* nothing readable: an error, not a guess */
    snprintf(mi, sizeof mi, "%s/none", d);
    snprintf(self, sizeof self, "%s/none", d);
    ck_assert_int_eq(mr_mem_auto_budget_at(self, root, mi, &budget, &avail, why, sizeof why, &err),
                     MR_EIO);
    snprintf(why, sizeof why, "rm -rf '%s'", d);
    ck_assert(system(why) == 0);
}
END_TEST

/* mr_read_pieces (the non-expert copy): pieces at odd offsets and lengths,
 * one longer than a reader's 4 MiB chunk, each byte where it belongs,
 * with 1 and 3 readers; a piece past the file's end is an error naming
 * it.  The file is in the build tree, so O_DIRECT is used where the file
 * system has it (and buffered reads where not). */
START_TEST(read_pieces_puts_every_byte_in_place)
{
    char path[300];
    snprintf(path, sizeof path, "%s/pieces.bin", tmpdir);
    const size_t size = (9u << 20) + 12345;
    uint8_t *data = malloc(size);
    for (size_t i = 0; i < size; i++)
        data[i] = (uint8_t)(i * 2654435761u >> 13);
    FILE *f = fopen(path, "wb");
    ck_assert(f && fwrite(data, 1, size, f) == size && fclose(f) == 0);
    const uint64_t off[4] = {0, 4097, (5u << 20) + 3, size - 100};
    const uint64_t len[4] = {10, (4u << 20) + 8191, 777777, 100};
    for (int threads = 1; threads <= 3; threads += 2) {
        mr_read_piece pc[4];
        uint8_t *dst[4];
        for (int i = 0; i < 4; i++) {
            dst[i] = malloc(len[i] + 1);
            pc[i] = (mr_read_piece){dst[i] + (i & 1), off[i], len[i] - (i & 1), "piece"};
        }
        mr_error err;
        ck_assert_msg(mr_read_pieces(path, pc, 4, threads, &err) == MR_OK, "%s", err.msg);
        for (int i = 0; i < 4; i++) {
            ck_assert_msg(memcmp(pc[i].dst, data + off[i], len[i] - (i & 1)) == 0,
                          "piece %d differs (%d readers)", i, threads);
            free(dst[i]);
        }
    }
    uint8_t small[200];
    mr_read_piece past = {small, size - 100, 200, "blk.7.attn_q.weight"};
    mr_error err;
    ck_assert_int_eq(mr_read_pieces(path, &past, 1, 2, &err), MR_EIO);
    ck_assert_msg(strstr(err.msg, "blk.7.attn_q.weight") && strstr(err.msg, "ends early"), "%s",
                  err.msg);
    ck_assert_int_eq(mr_read_pieces("/nonexistent/x.gguf", &past, 1, 2, &err), MR_EIO);
    unlink(path);
    free(data);
}
END_TEST

START_TEST(too_small_budget_is_refused)
{
    mr_model *m;
    mr_error err;
    mr_expert_store *st;
    const char *path = model_path(1);
    ck_assert(mr_model_load(path, &m, &err) == 0);
    mr_paged_config cfg;
    mr_paged_config_default(&cfg);
    uint64_t min = mr_store_paged_min_budget(m, &cfg);
    cfg.budget_bytes = min - 1;
    ck_assert_int_eq(mr_store_paged_new(m, path, &cfg, &st, &err), MR_ERANGE);
    ck_assert_ptr_nonnull(strstr(err.msg, "too small"));
    ck_assert_ptr_nonnull(strstr(err.msg, "at least"));
    mr_model_free(m);
}
END_TEST

/* fault, expected status (MR_OK: a correct retry), text in the message */
static const struct {
    const char *fault;
    mr_status want;
    const char *text;
} faults[] = {
    {"eio@1:3", MR_EIO, "layer 1 expert 3"},
    {"eio@0", MR_EIO, "Input/output error"},
    {"eof@1:0:2", MR_EFORMAT, "the file ends"},
    {"corrupt@1:2:1", MR_ECHECKSUM, "layer 1 expert 2: up slice: checksum mismatch"},
    {"corrupt@0:1x1", MR_OK, NULL},  /* one bad read: the re-read is good */
    {"short", MR_OK, NULL},          /* every read short: re-queued to the end */
    {"short@1x3", MR_OK, NULL},
};

START_TEST(faults_give_errors_or_correct_retries)
{
    const char *path = model_path(2); /* synthetic tinymix: checksums, 4 layers */
    float *want = run_resident(path);
    paged_run pr = {0};
    pr.extra_slots = 2;
    pr.no_io_uring = _i % 2; /* every other fault on the pread path */
    ck_assert_int_eq(mr_fault_parse(faults[_i].fault, &pr.fault), 0);
    float *got = run_paged(path, &pr);
    if (faults[_i].want == MR_OK) {
        ck_assert_msg(got, "%s: %s", faults[_i].fault, pr.err.msg);
        ck_assert_msg(memcmp(want, got, sizeof(float) * 15 * 32000) == 0,
                      "%s: logits differ after a retry", faults[_i].fault);
        printf("fault %-14s -> correct result (%llu re-queued, %llu re-read)\n", faults[_i].fault,
               (unsigned long long)pr.stats.requeued, (unsigned long long)pr.stats.retries);
        ck_assert(pr.stats.requeued > 0 || pr.stats.retries > 0);
    } else {
        ck_assert_msg(!got, "%s: no error", faults[_i].fault);
        ck_assert_int_eq(pr.status, faults[_i].want);
        ck_assert_msg(strstr(pr.err.msg, faults[_i].text), "%s: message '%s' lacks '%s'",
                      faults[_i].fault, pr.err.msg, faults[_i].text);
        printf("fault %-14s -> %s: %s\n", faults[_i].fault, mr_status_name(pr.status), pr.err.msg);
    }
    free(want);
    free(got);
}
END_TEST

/* After a failed read the store recovers: the next decode reads again and
 * gives the resident store's logits. */
START_TEST(store_recovers_after_a_transient_error)
{
    const int prefetch = _i;
    const char *path = model_path(2);
    mr_model *m;
    mr_expert_store *st;
    mr_error err;
    ck_assert(mr_model_load(path, &m, &err) == 0);
    mr_paged_config cfg;
    mr_paged_config_default(&cfg);
    cfg.reserve_bytes = mr_context_bytes(m, 32, 16);
    cfg.budget_bytes = mr_store_paged_min_budget(m, &cfg);
    cfg.prefetch_depth = (uint32_t)prefetch;
    ck_assert(mr_store_paged_new(m, path, &cfg, &st, &err) == 0);
    mr_fault f;
    ck_assert(mr_fault_parse("eio@2x1", &f) == 0);
    mr_store_paged_inject(st, &f);
    mr_context *c;
    ck_assert(mr_context_new(m, st, 32, 16, &c, &err) == 0);
    int32_t toks[3] = {1, 400, 500};
    float *lg = malloc(sizeof(float) * 32000);
    /* without prefetch the failed read is the plan's own: the decode must
     * report it; with prefetch it may have been a guess (then the plan
     * simply reads again) or the plan's (reported): either way the next
     * decode succeeds */
    mr_status first = mr_decode(c, toks, 3, lg, 0, &err);
    if (!prefetch)
        ck_assert_int_eq(first, MR_EIO);
    if (first) {
        ck_assert_int_eq(first, MR_EIO);
        ck_assert_ptr_nonnull(strstr(err.msg, "layer 2"));
        mr_context_reset(c);
        ck_assert_msg(mr_decode(c, toks, 3, lg, 0, &err) == MR_OK, "%s", err.msg);
    }
    /* and the logits are the resident store's */
    mr_expert_store *rs;
    mr_context *rc;
    float *want = malloc(sizeof(float) * 32000);
    ck_assert(mr_store_resident_new(m, &rs, &err) == 0);
    ck_assert(mr_context_new(m, rs, 32, 16, &rc, &err) == 0);
    ck_assert(mr_decode(rc, toks, 3, want, 0, &err) == 0);
    ck_assert(memcmp(want, lg, sizeof(float) * 32000) == 0);
    mr_context_free(rc);
    mr_expert_store_free(rs);
    mr_context_free(c);
    mr_expert_store_free(st);
    mr_model_free(m);
    free(want);
    free(lg);
}
END_TEST

/* The resident store with the experts repacked for the kernels in use
 * gives the file layout's logits to the bit, as paging does; a context
 * switched to other kernels (the exact path) is refused, not miscomputed. */
START_TEST(packed_store_equals_resident_and_paged)
{
    const char *path = synth_path[2]; /* tinymix shape, Q4_K_M: Q4_K and Q6_K packed */
    float *want = run_resident(path);
    mr_error err;
    mr_model *m;
    ck_assert_msg(mr_model_load(path, &m, &err) == 0, "%s", err.msg);
    const mr_kernels *k = mr_kernels_get();
    const int can = mr_can_pack(k, MR_TYPE_Q4_K, (int64_t)m->hp.n_ff, (int64_t)m->hp.n_embd);
    /* the mix puts Q6_K on some expert down projections: both packed kinds run */
    int q6 = 0;
    for (uint32_t l = 0; l < m->hp.n_layer; l++)
        q6 |= m->layers[l].down.type == MR_TYPE_Q6_K;
    ck_assert_msg(q6, "the Q4_K_M synth has no Q6_K expert tensor to test");
    mr_expert_store *st;
    uint64_t bytes = 1, dense = 1;
    /* the attention and output matrices too */
    ck_assert_msg(mr_model_pack(m, k, 2, &dense, &err) == 0, "%s", err.msg);
    ck_assert_msg(can ? dense > 0 && m->layers[0].wq.packed : dense == 0, "dense packing: %llu bytes",
                  (unsigned long long)dense);
    ck_assert_msg(mr_store_resident_packed_new(m, k, 2, &bytes, &st, &err) == 0, "%s", err.msg);
    const uint64_t all = mr_expert_bytes(m, 0) * m->hp.n_layer * m->hp.n_expert; /* file bytes */
    if (can) {
        ck_assert_msg(bytes > 0 && st->packed_with, "%s kernels can pack Q4_K, nothing was packed",
                      mr_isa_name(k->isa));
        ck_assert_str_eq(st->ops->name, "resident (repacked)");
    } else {
        ck_assert_msg(bytes == 0 && !st->packed_with, "packed without a packed layout");
    }
    mr_status s;
    float *lg = run(m, st, &s, &err);
    ck_assert_msg(lg, "%s", err.msg);
    const size_t nv = m->hp.n_vocab;
    ck_assert_msg(memcmp(lg, want, sizeof(float) * 15 * nv) == 0,
                  "repacked experts (%s) change the logits", mr_isa_name(k->isa));
    printf("%-40s %s: %.1f MiB repacked from %.1f MiB of experts, %.1f MiB of other matrices; "
           "logits bit-identical\n", "tinymix-q4_K", mr_isa_name(k->isa), bytes / 1048576.0,
           all / 1048576.0, dense / 1048576.0);
    if (can) {
        mr_context *c;
        ck_assert(mr_context_new(m, st, 32, 16, &c, &err) == 0);
        mr_context_set_exact(c, 1);
        int32_t tok[3] = {1, 300, 301};
        float *out = malloc(sizeof(float) * 3 * nv);
        s = mr_decode(c, tok, 3, out, 1, &err);
        ck_assert_msg(s != MR_OK && strstr(err.msg, "--no-repack"),
                      "an exact context read repacked experts (status %d: %s)", s, err.msg);
        free(out);
        mr_context_free(c);
    }
    free(lg);
    mr_expert_store_free(st);
    mr_model_free(m);
    /* and paging, at the smallest budget, reads the file's bytes alike */
    paged_run pr = {0};
    lg = run_paged(path, &pr);
    ck_assert_msg(lg, "%s", pr.err.msg);
    ck_assert_msg(memcmp(lg, want, sizeof(float) * 15 * nv) == 0, "paged Q4_K logits differ");
    free(lg);
    free(want);
}
END_TEST

static void make_synth(void)
{
    /* in the build tree, not /tmp: tmpfs has no O_DIRECT */
    snprintf(tmpdir, sizeof tmpdir, "moerun-test-store-XXXXXX");
    ck_assert(mkdtemp(tmpdir));
    const char *names[3] = {"micro", "tinymix", "tinymix"};
    for (int i = 0; i < 3; i++) {
        mr_synth_params p = {.shape = *mr_synth_shape_find(names[i]),
                             .type = i == 2 ? MR_TYPE_Q4_K : MR_TYPE_Q8_0, .seed = 7,
                             .mix = i == 2 ? MR_MIX_Q4_K_M : MR_MIX_PURE};
        mr_error err;
        snprintf(synth_path[i], sizeof synth_path[i], "%s/synth-%s%s.gguf", tmpdir, names[i],
                 i == 2 ? "-q4_k_m" : "");
        ck_assert_msg(mr_synth_write(&p, synth_path[i], NULL, NULL, &err) == 0, "%s", err.msg);
    }
}

static void remove_synth(void)
{
    for (int i = 0; i < 3; i++)
        unlink(synth_path[i]);
    rmdir(tmpdir);
}

int main(void)
{
    Suite *s = suite_create("store");
    TCase *tc = tcase_create("paged");
    tcase_set_timeout(tc, 300);
    tcase_add_unchecked_fixture(tc, make_synth, remove_synth);
    tcase_add_loop_test(tc, paged_equals_resident_at_every_budget, 0, 3 * 4);
    tcase_add_loop_test(tc, policies_keep_logits_bit_identical, 0, 3 * 2 * N_POLICIES);
    tcase_add_loop_test(tc, wider_guess_raises_recall, 0, 3);
    tcase_add_test(tc, packed_store_equals_resident_and_paged);
    tcase_add_test(tc, unique_bytes_are_what_one_read_each_costs);
    tcase_add_test(tc, mem_auto_reads_cgroups_and_meminfo);
    tcase_add_test(tc, too_small_budget_is_refused);
    tcase_add_test(tc, read_pieces_puts_every_byte_in_place);
    tcase_add_loop_test(tc, faults_give_errors_or_correct_retries, 0,
                        (int)(sizeof faults / sizeof faults[0]));
    tcase_add_loop_test(tc, store_recovers_after_a_transient_error, 0, 2);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
