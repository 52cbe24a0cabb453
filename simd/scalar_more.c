/* scalar_more.c - the scalar reference entries of the further formats
 * (quant/types_more.h), added to the scalar table by dispatch.c.  As
 * llama.cpp: MXFP4 (and later IQ4_NL, Q5_0) weights dot Q8_0 activations,
 * Q4_1/Q5_1 dot Q8_1, IQ4_XS/Q2_K/Q3_K dot Q8_K; the exact table keeps f32
 * activations for all of them. */
#include "kernels.h"

void mr_kernels_init_scalar_more(mr_kernels *k, int exact)
{
    k->quantize_act[MR_TYPE_Q8_1] = mr_quantize_row_q8_1;
    k->vec_dot[MR_TYPE_MXFP4] = mr_dot_mxfp4_q8_0;
    k->vec_dot[MR_TYPE_Q5_0] = mr_dot_q5_0_q8_0;
    k->vec_dot[MR_TYPE_IQ4_NL] = mr_dot_iq4_nl_q8_0;
    k->vec_dot[MR_TYPE_Q4_1] = mr_dot_q4_1_q8_1;
    k->vec_dot[MR_TYPE_Q5_1] = mr_dot_q5_1_q8_1;
    k->vec_dot[MR_TYPE_IQ4_XS] = mr_dot_iq4_xs_q8_K;
    if (!exact) {
        k->act_type[MR_TYPE_MXFP4] = MR_TYPE_Q8_0;
        k->act_type[MR_TYPE_Q5_0] = MR_TYPE_Q8_0;
        k->act_type[MR_TYPE_IQ4_NL] = MR_TYPE_Q8_0;
        k->act_type[MR_TYPE_Q4_1] = MR_TYPE_Q8_1;
        k->act_type[MR_TYPE_Q5_1] = MR_TYPE_Q8_1;
        k->act_type[MR_TYPE_IQ4_XS] = MR_TYPE_Q8_K;
    }
}
