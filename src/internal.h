/*
 * internal.h - helpers shared by the stages (not part of the public API).
 */
#ifndef STEM_INTERNAL_H
#define STEM_INTERNAL_H

#include <stdint.h>

#include "stem.h"

#define STEM_INTERNAL __attribute__((visibility("hidden")))

/* Write the calling thread's error detail (stem_last_error) from a
 * printf format and return status, so that a check reads
 * `return stem_fail(STEM_ERR_PARAM, "alpha = %g: must be in 0..1", a);`. */
STEM_INTERNAL stem_status stem_fail(stem_status status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Empty the calling thread's error detail (at the start of a validation). */
STEM_INTERNAL void stem_detail_clear(void);

/* a * b into *out; 0 on overflow (or negative operands). */
STEM_INTERNAL int stem_mul_ok(int64_t a, int64_t b, int64_t *out);

/* Convert one token row (dim elements) of t at (head, token) to float or
 * double.  No checks: the caller validated the view. */
STEM_INTERNAL void stem_load_row_f32(const stem_tensor *t, int64_t head,
                                     int64_t token, float *dst);
STEM_INTERNAL void stem_load_row_f64(const stem_tensor *t, int64_t head,
                                     int64_t token, double *dst);

/* STEM_ERR_NONFINITE if any element of the view is NaN or Inf, else
 * STEM_ERR_RANGE if one exceeds limit in magnitude.  Scans with nt threads. */
STEM_INTERNAL stem_status stem_check_finite(const stem_tensor *t, double limit,
                                            int nt);

/* Check that an output view is a valid F32/F64 [hq, lq, d] target. */
STEM_INTERNAL stem_status stem_check_out(const stem_tensor *out,
                                         const stem_dims *dims);

/* Threads to use for a parallel region: params->threads or the OpenMP
 * default, capped as stem_threads says (threads.c); >= 1.  Every parallel
 * region takes its num_threads from here. */
STEM_INTERNAL int stem_thread_count(const stem_params *params);

/* The first count entries (1 <= count <= n) of stem_budget's n = prompt
 * blocks entries, params already validated against kb.  A call reads
 * positions below kb only, so its memory stays bounded by kb whatever
 * prompt_blocks says. */
STEM_INTERNAL stem_status stem_budget_prefix(const stem_params *params,
                                             int64_t kb, int64_t count,
                                             int32_t *budget);

/* STEM_ERR_PARAM (with the detail) unless params->prompt_blocks is 0 or
 * at least kb: the one statement of that rule. */
STEM_INTERNAL stem_status stem_budget_check(const stem_params *params,
                                            int64_t kb);

/* n of the budget rule: params->prompt_blocks, or kb when that is 0
 * (stem_budget_length without the checks). */
STEM_INTERNAL int64_t stem_budget_blocks(const stem_params *params,
                                         int64_t kb);

/* Stage bodies without the argument checks (dims already validated and
 * inputs scanned). */
STEM_INTERNAL stem_status stem_block_logits_f32(const stem_params *params,
                                                const stem_dims *dims,
                                                const stem_tensor *q,
                                                const stem_tensor *k,
                                                const stem_tensor *v,
                                                float *logits);
STEM_INTERNAL stem_status stem_block_logits_f64(const stem_params *params,
                                                const stem_dims *dims,
                                                const stem_tensor *q,
                                                const stem_tensor *k,
                                                const stem_tensor *v,
                                                float *logits);
/* mask NULL means dense (every causal block). */
STEM_INTERNAL stem_status stem_attend_f32(const stem_params *params,
                                          const stem_dims *dims,
                                          const stem_tensor *q,
                                          const stem_tensor *k,
                                          const stem_tensor *v,
                                          const uint8_t *mask,
                                          stem_tensor *out, float *lse);
STEM_INTERNAL stem_status stem_attend_f64(const stem_params *params,
                                          const stem_dims *dims,
                                          const stem_tensor *q,
                                          const stem_tensor *k,
                                          const stem_tensor *v,
                                          const uint8_t *mask,
                                          stem_tensor *out, float *lse);

/* Store value x at (head, token, c) of an F32 or F64 view. */
static inline void stem_store_out(stem_tensor *out, int64_t head,
                                  int64_t token, int64_t c, double x)
{
    int64_t at = head * out->head_stride + token * out->token_stride + c;
    if (out->dtype == STEM_F64)
        ((double *)out->data)[at] = x;
    else
        ((float *)out->data)[at] = (float)x;
}

#endif /* STEM_INTERNAL_H */
