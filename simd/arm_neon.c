/* arm_neon.c - neon overrides of the kernel table.  Compiled with its own ISA
 * flags into a convenience library; called only after the dispatcher has
 * checked that the CPU and OS support the ISA. */
#include "kernels.h"

void mr_kernels_init_neon(mr_kernels *k)
{
    (void)k; /* no neon kernels yet: every entry keeps its scalar reference */
}
