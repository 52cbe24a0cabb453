/* convert_vocab_bpe.h - tokenizer.json (byte-level BPE) to the
 * tokenizer.ggml.* keys llama.cpp's converter writes.  Not installed. */
#ifndef MOERUN_CONVERT_VOCAB_BPE_H
#define MOERUN_CONVERT_VOCAB_BPE_H

#include <json-c/json.h>
#include <stdint.h>

#include "convert_internal.h"

/* Write the keys from dir's tokenizer.json, tokenizer_config.json,
 * config.json and chat template files.  n_vocab 0: config.json's
 * vocab_size (or text_config's), else the highest id + 1.  The files read
 * join p's sources when p is not NULL.  An unknown split pattern is
 * MR_EUNSUPPORTED naming it. */
mr_status mr_convert_vocab_bpe(const char *dir, uint32_t n_vocab, mr_plan *p, mr_gguf_writer *w,
                               mr_error *err);

/* The tokenizer.ggml.pre llama.cpp gives tokenizer.json's pre_tokenizer
 * `pre` (llama4: Llama 4's added tokens are present, which tells it from
 * gpt-oss on the same o200k pattern), or MR_EUNSUPPORTED. */
mr_status mr_bpe_pre_name(json_object *pre, int llama4, const char *path, const char **name,
                          mr_error *err);

#endif
