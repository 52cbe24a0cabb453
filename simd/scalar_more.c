/* scalar_more.c - the scalar reference entries of the further formats
 * (quant/types_more.h), added to the scalar table by dispatch.c.  As
 * llama.cpp: MXFP4 (and later IQ4_NL, Q5_0) weights dot Q8_0 activations,
 * Q4_1/Q5_1 dot Q8_1, IQ4_XS/Q2_K/Q3_K dot Q8_K; the exact table keeps f32
 * activations for all of them. */
#include "kernels.h"

void mr_kernels_init_scalar_more(mr_kernels *k, int exact)
{
    k->vec_dot[MR_TYPE_MXFP4] = mr_dot_mxfp4_q8_0;
    if (!exact) {
        k->act_type[MR_TYPE_MXFP4] = MR_TYPE_Q8_0;
    }
}
