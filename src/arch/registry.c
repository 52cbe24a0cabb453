/* registry.c - the model families moerun runs, by GGUF architecture name.
 * Adding a family: one file in src/arch/ and one line here. */
#include <string.h>

#include "arch.h"

static const mr_arch *const families[] = {
    &mr_arch_llama,
    &mr_arch_qwen3moe,
    &mr_arch_gptoss,
    &mr_arch_deepseek2,
    &mr_arch_llama4,
};

const mr_arch *mr_arch_find(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++)
        if (strlen(families[i]->gguf_name) == len && memcmp(families[i]->gguf_name, name, len) == 0)
            return families[i];
    return NULL;
}

const char *mr_arch_names(char *buf, size_t cap)
{
    size_t o = 0;
    if (!cap)
        return buf;
    buf[0] = 0;
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++) {
        size_t l = strlen(families[i]->gguf_name);
        if (o + l + 3 >= cap)
            break;
        if (i) {
            memcpy(buf + o, ", ", 2);
            o += 2;
        }
        memcpy(buf + o, families[i]->gguf_name, l);
        o += l;
        buf[o] = 0;
    }
    return buf;
}
