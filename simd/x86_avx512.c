/* x86_avx512.c - avx512 overrides of the kernel table.  Compiled with its own ISA
 * flags into a convenience library; called only after the dispatcher has
 * checked that the CPU and OS support the ISA. */
#include "kernels.h"

void mr_kernels_init_avx512(mr_kernels *k)
{
    (void)k; /* no avx512 kernels yet: every entry keeps its scalar reference */
}
