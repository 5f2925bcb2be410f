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
 * of kb doubles.  Returns STEM_ERR_NOMEM or STEM_OK.
 */
STEM_INTERNAL stem_status stem_value_term_f32(const stem_params *params,
                                              const stem_dims *dims,
                                              const stem_tensor *v, int64_t g,
                                              const stem_kernels *kern, int nt,
                                              double *term);
STEM_INTERNAL stem_status stem_value_term_f64(const stem_params *params,
                                              const stem_dims *dims,
                                              const stem_tensor *v, int64_t g,
                                              int nt, double *term);

#endif /* STEM_VALUE_H */
