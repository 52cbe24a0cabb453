/* moerun_keys.h - the metadata keys moerun adds to the GGUF files it
 * writes (llama.cpp ignores unknown keys, so the files stay readable by it).
 *
 * Checksums are XXH3-64 (seed 0) of the exact on-disk bytes.
 */
#ifndef MOERUN_KEYS_H
#define MOERUN_KEYS_H

/* string: moerun's version that wrote the file, e.g. "0.1.0" */
#define MR_KEY_QUANTIZER_VERSION "moerun.quantizer.version"
/* string: "xxh3-64" */
#define MR_KEY_CHECKSUM_ALGORITHM "moerun.checksum.algorithm"
/* u64[n_layer * n_expert * 3]: one per expert slice, at index
 * (layer * n_expert + expert) * 3 + part, part 0 gate, 1 up, 2 down; a slice
 * is expert e's ne[1] rows of the stacked blk.L.ffn_{gate,up,down}_exps
 * tensor.  Dense models: n_expert = 1 over ffn_{gate,up,down}. */
#define MR_KEY_CHECKSUM_EXPERTS "moerun.checksum.experts"
/* u64[n_tensors]: every tensor's whole data, in tensor-info order */
#define MR_KEY_CHECKSUM_TENSORS "moerun.checksum.tensors"
/* string[] and u64[]: the source checkpoint's files and their XXH3-64 */
#define MR_KEY_SOURCE_FILES "moerun.source.files"
#define MR_KEY_SOURCE_XXH3 "moerun.source.xxh3"
/* u64: XXH3-64 of the file's bytes [0, data offset) -- header, every
 * key and value, the tensor infos and the padding -- with the values of
 * the keys below (filled in after the data is written, and this one)
 * read as zeros.  Added by the writer to every file that carries
 * moerun.checksum.* keys; checked by moerun verify. */
#define MR_KEY_CHECKSUM_METADATA "moerun.checksum.metadata"

#include <string.h>

/* Is key one whose value the metadata checksum reads as zeros? */
static inline int mr_key_outside_metadata_hash(const char *key)
{
    return !strcmp(key, MR_KEY_CHECKSUM_EXPERTS) || !strcmp(key, MR_KEY_CHECKSUM_TENSORS) ||
           !strcmp(key, MR_KEY_SOURCE_XXH3) || !strcmp(key, MR_KEY_CHECKSUM_METADATA);
}

#endif
