/* rope.c - rotary position embedding: the frequency table with its
 * scaling (done once), the cos/sin of a batch's positions (once per
 * decode call, shared by every layer and head), and the rotation in
 * either pair layout.
 *
 * Pair i < n_rot/2 turns by pos * theta_i, theta_i = base^(-2i/n_rot)
 * (divided by rope_freqs[i] when the file has them).  Scaling changes
 * theta_i only, so one table serves every position:
 *   linear: theta_i / factor
 *   YaRN:   a ramp between extrapolation (theta_i) for fast pairs and
 *           interpolation (theta_i / factor) for slow ones, over the pairs
 *           whose wavelength fits beta_fast..beta_slow rotations in the
 *           original context; llama.cpp rounds the ramp's ends to whole
 *           dimensions, HF's truncate=false keeps them fractional;
 *           cos and sin are scaled by mscale.
 *   Llama 3: wavelengths longer than orig_ctx / low_freq_factor are
 *           divided by factor, shorter than orig_ctx / high_freq_factor
 *           kept, a linear blend between.
 * Angles are taken in double: the tables are small and this keeps long
 * positions as exact as the float64 references. */
#include <math.h>

#include "nn.h"

static double yarn_corr_dim(uint32_t n_rot, uint32_t orig_ctx, double base, double rotations)
{
    return n_rot * log(orig_ctx / (rotations * 2.0 * M_PI)) / (2.0 * log(base));
}

void nn_rope_init(const mr_hparams *hp, const float *freq_factors, double *inv)
{
    const mr_rope_cfg *r = &hp->rope;
    const uint32_t half = r->n_rot / 2;
    double lo = 0, hi = 0;
    if (r->scaling == MR_ROPE_SCALE_YARN) {
        lo = yarn_corr_dim(r->n_rot, r->orig_ctx, r->base, r->beta_fast);
        hi = yarn_corr_dim(r->n_rot, r->orig_ctx, r->base, r->beta_slow);
        if (!r->yarn_no_truncate) {
            lo = floor(lo);
            hi = ceil(hi);
        }
        if (lo < 0)
            lo = 0;
        if (hi > r->n_rot - 1)
            hi = r->n_rot - 1;
    }
    for (uint32_t i = 0; i < half; i++) {
        double th = pow(r->base, -2.0 * i / r->n_rot);
        if (freq_factors)
            th /= freq_factors[i];
        switch (r->scaling) {
        case MR_ROPE_SCALE_NONE:
            break;
        case MR_ROPE_SCALE_LINEAR:
            th /= r->factor;
            break;
        case MR_ROPE_SCALE_YARN: {
            /* extrapolation weight: 1 for pairs below lo, 0 above hi */
            double y = (i - lo) / (hi - lo > 0.001 ? hi - lo : 0.001);
            double ext = 1.0 - (y < 0 ? 0 : y > 1 ? 1 : y);
            th = th / r->factor * (1.0 - ext) + th * ext;
            break;
        }
        case MR_ROPE_SCALE_LLAMA3: {
            const double wl = 2.0 * M_PI / th;
            const double lo_wl = r->orig_ctx / r->low_freq_factor;
            const double hi_wl = r->orig_ctx / r->high_freq_factor;
            if (wl > lo_wl) {
                th /= r->factor;
            } else if (wl >= hi_wl) {
                const double sm = (r->orig_ctx / wl - r->low_freq_factor) /
                                  (r->high_freq_factor - r->low_freq_factor);
                th = (1.0 - sm) * th / r->factor + sm * th;
            }
            break;
        }
        }
        inv[i] = th;
    }
}

void nn_rope_prepare(mr_context *c, uint32_t n)
{
    const mr_rope_cfg *r = &c->m->hp.rope;
    const uint32_t half = r->n_rot / 2;
    const double ms = r->scaling == MR_ROPE_SCALE_YARN ? r->mscale : 1.0;
    for (uint32_t t = 0; t < n; t++) {
        const double pos = (double)c->tok_pos[t];
        float *cs = c->rope_cs + (size_t)t * half * 2;
        for (uint32_t i = 0; i < half; i++) {
            const double a = pos * c->rope_inv[i];
            cs[2 * i] = (float)(cos(a) * ms);
            cs[2 * i + 1] = (float)(sin(a) * ms);
        }
    }
}

void nn_rope_apply(const mr_context *c, float *v, uint32_t t, uint32_t n_heads,
                   uint32_t head_stride)
{
    const mr_rope_cfg *r = &c->m->hp.rope;
    const uint32_t half = r->n_rot / 2;
    const float *cs = c->rope_cs + (size_t)t * half * 2;
    /* NORM pairs (2i, 2i+1); NEOX pairs (i, i + half) */
    const uint32_t step = r->mode == MR_ROPE_NEOX ? 1 : 2;
    const uint32_t other = r->mode == MR_ROPE_NEOX ? half : 1;
    for (uint32_t h = 0; h < n_heads; h++) {
        float *p = v + (size_t)h * head_stride;
        for (uint32_t i = 0; i < half; i++) {
            float *a = p + i * step, *b = a + other;
            const float x0 = *a, x1 = *b, co = cs[2 * i], si = cs[2 * i + 1];
            *a = x0 * co - x1 * si;
            *b = x0 * si + x1 * co;
        }
    }
}
