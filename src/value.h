/*
 * value.h - the value-norm term of a block logit (the Output-Aware Metric).
 */
#ifndef STEM_VALUE_H
#define STEM_VALUE_H

#include "internal.h"
#include "kernels.h"

/*
 * term[J] for every key block J < dims->kb of kv head g, by
 * params->value_rule.  Group norms come from the kernels' sqnorm_rows
 * (float32 path) or from double loops (float64 path).  term: caller buffer
 * of kb doubles.  groups: caller workspace of stem_value_groups(...) doubles;
 * scratch (float32 path): nt * stem_value_scratch(...) floats.  No
 * allocation, cannot fail.
 */
STEM_INTERNAL void stem_value_term_f32(const stem_params *params,
                                       const stem_dims *dims,
                                       const stem_tensor *v, int64_t g,
                                       const stem_kernels *kern, int nt,
                                       double *groups, float *scratch,
                                       double *term);
STEM_INTERNAL void stem_value_term_f64(const stem_params *params,
                                       const stem_dims *dims,
                                       const stem_tensor *v, int64_t g,
                                       int nt, double *groups, double *term);

/* Doubles of the groups workspace: 2 per downsampled key column. */
static inline size_t stem_value_groups(const stem_params *p, const stem_dims *d)
{
    return 2 * (size_t)d->kb * (size_t)(p->block / p->stride);
}

/* Floats of one thread's scratch in the float32 path. */
static inline size_t stem_value_scratch(const stem_params *p, const stem_dims *d)
{
    return (size_t)p->block * (size_t)d->d + (size_t)p->block;
}

#endif /* STEM_VALUE_H */
