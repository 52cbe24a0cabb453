/* scalar_more.c - the scalar reference entries of the further formats
 * (quant/types_more.h), added to the scalar table by dispatch.c.  As
 * llama.cpp: MXFP4, IQ4_NL and Q5_0 weights dot Q8_0 activations, Q4_1 and
 * Q5_1 dot Q8_1 (whose quantizer is scalar on every ISA so far), IQ4_XS,
 * Q2_K and Q3_K dot Q8_K; the exact table keeps f32 activations for all. */
#include "kernels.h"
#include "../quant/types_iq.h"

void mr_kernels_init_scalar_more(mr_kernels *k, int exact)
{
    k->quantize_act[MR_TYPE_Q8_1] = mr_quantize_row_q8_1;
    k->vec_dot[MR_TYPE_MXFP4] = mr_dot_mxfp4_q8_0;
    k->vec_dot[MR_TYPE_Q5_0] = mr_dot_q5_0_q8_0;
    k->vec_dot[MR_TYPE_IQ4_NL] = mr_dot_iq4_nl_q8_0;
    k->vec_dot[MR_TYPE_Q4_1] = mr_dot_q4_1_q8_1;
    k->vec_dot[MR_TYPE_Q5_1] = mr_dot_q5_1_q8_1;
    k->vec_dot[MR_TYPE_IQ4_XS] = mr_dot_iq4_xs_q8_K;
    k->vec_dot[MR_TYPE_Q2_K] = mr_dot_q2_K_q8_K;
    k->vec_dot[MR_TYPE_Q3_K] = mr_dot_q3_K_q8_K;
    static const struct {
        uint32_t t;
        mr_vec_dot_fn dot;
    } iq[] = {{MR_TYPE_IQ2_XXS, mr_dot_iq2_xxs_q8_K}, {MR_TYPE_IQ2_XS, mr_dot_iq2_xs_q8_K},
              {MR_TYPE_IQ2_S, mr_dot_iq2_s_q8_K},     {MR_TYPE_IQ3_XXS, mr_dot_iq3_xxs_q8_K},
              {MR_TYPE_IQ3_S, mr_dot_iq3_s_q8_K},     {MR_TYPE_IQ1_S, mr_dot_iq1_s_q8_K},
              {MR_TYPE_IQ1_M, mr_dot_iq1_m_q8_K}};
    for (size_t i = 0; i < sizeof iq / sizeof iq[0]; i++) {
        k->vec_dot[iq[i].t] = iq[i].dot; /* the i-quants dot Q8_K, as in ggml */
        if (!exact)
            k->act_type[iq[i].t] = MR_TYPE_Q8_K;
    }
    if (!exact) {
        k->act_type[MR_TYPE_MXFP4] = MR_TYPE_Q8_0;
        k->act_type[MR_TYPE_Q5_0] = MR_TYPE_Q8_0;
        k->act_type[MR_TYPE_IQ4_NL] = MR_TYPE_Q8_0;
        k->act_type[MR_TYPE_Q4_1] = MR_TYPE_Q8_1;
        k->act_type[MR_TYPE_Q5_1] = MR_TYPE_Q8_1;
        k->act_type[MR_TYPE_IQ4_XS] = MR_TYPE_Q8_K;
        k->act_type[MR_TYPE_Q2_K] = MR_TYPE_Q8_K;
        k->act_type[MR_TYPE_Q3_K] = MR_TYPE_Q8_K;
    }
}
