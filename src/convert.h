/* convert.h - Hugging Face checkpoint -> GGUF, the way llama.cpp's
 * converter writes it (tensor names, Q/K row permutation, metadata keys,
 * tokenizer from tokenizer.model), quantized to one output type, plus
 * moerun's checksums (moerun_keys.h) and 4096-byte data alignment.
 *
 * Architectures: MixtralForCausalLM (experts stacked into 3-D
 * blk.N.ffn_{gate,up,down}_exps), MistralForCausalLM and LlamaForCausalLM
 * (dense).  Input dtypes: BF16, F16, F32.
 *
 * Memory is bounded and does not grow with the model: the work is cut into
 * jobs of at most MR_CONVERT_JOB_BYTES of source rows (an expert slice is
 * several jobs), done by worker threads, committed in order, and at most
 * mr_convert_window(threads) jobs are in flight, each in buffers allocated
 * once: its source bytes and its output (at most 2x the source for f32
 * from bf16).
 *
 * The output is written to an unnamed temporary file in the destination's
 * directory (O_TMPFILE; a named ".NAME.XXXXXX" temp where the file system
 * lacks it), fsynced, then linked into place: a failed or killed run leaves
 * no file behind, and an existing file is replaced only with force.
 */
#ifndef MOERUN_CONVERT_H
#define MOERUN_CONVERT_H

#include <stdint.h>

#include "status.h"

#define MR_CONVERT_JOB_BYTES (8u << 20)

/* Progress, reported after every committed job (and once at the end). */
typedef struct {
    uint64_t jobs_done, jobs_total;
    uint32_t tensors_done, tensors_total;
    uint64_t bytes_read, bytes_total;  /* source tensor bytes */
    uint64_t bytes_written;            /* output tensor bytes */
    uint64_t buffer_bytes;             /* the job buffers, allocated once */
    double seconds;
} mr_convert_progress;

typedef void (*mr_convert_progress_fn)(const mr_convert_progress *p, void *user);
/* Called with the path of a named temporary output when one is created
 * (so a signal handler may unlink it), and with NULL once it is gone. */
typedef void (*mr_convert_temp_fn)(const char *path, void *user);

typedef struct {
    const char *input_dir;
    const char *output_path;
    const char *type;      /* mr_convert_type_names */
    int threads;           /* <= 0: online CPUs */
    int force;             /* replace an existing output */
    int no_tmpfile;        /* use a named temporary even where O_TMPFILE works */
    uint32_t alignment;    /* tensor data alignment; 0: 4096 */
    uint64_t job_bytes;    /* source bytes per job; 0: MR_CONVERT_JOB_BYTES (tests: small) */
    mr_convert_progress_fn progress;
    mr_convert_temp_fn on_temp;
    void *user;
} mr_convert_opts;

/* Convert; on failure no output file exists (and an old one is intact). */
mr_status mr_convert(const mr_convert_opts *o, mr_convert_progress *final, mr_error *err);

/* The output type names, NULL-terminated, and a description of the
 * tensor types each writes (for --help; lines of at most 48 characters). */
extern const char *const mr_convert_type_names[];
const char *mr_convert_type_help(const char *name);

/* Jobs in flight for a number of worker threads. */
unsigned mr_convert_window(unsigned threads);

#endif
