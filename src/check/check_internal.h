/*
 * check_internal.h - what the stages of stem_check share (not public).
 *
 * check.c drives; check_logits.c judges logits, selection and mask;
 * check_attn.c judges out and lse; check_bound.c derives the limits from
 * the GPU's precisions; check_render.c writes the text and JSON reports.
 */
#ifndef STEM_CHECK_INTERNAL_H
#define STEM_CHECK_INTERNAL_H

#include <stdint.h>

#include "internal.h"
#include "stem_check.h"

/* The worst items of one kind of finding, at most cap of them, kept by a
 * sort key (larger is worse).  Owned buffer; see items_* below. */
typedef struct check_items {
    stem_check_item *v;
    double *key;
    int64_t n, cap;
    int64_t total;              /* items offered, kept or not */
    int64_t min_at;             /* index of the smallest key when full */
} check_items;

/* Allocate room for cap items (cap may be 0).  0 or -1 on no memory. */
STEM_INTERNAL int check_items_init(check_items *it, int64_t cap);
/* Offer one item with its sort key; keeps the cap largest keys. */
STEM_INTERNAL void check_items_add(check_items *it, const stem_check_item *x,
                                   double key);
/* Sort the kept items by key, largest first, and hand the array over to
 * *out / *n (the caller frees it); it is left empty. */
STEM_INTERNAL void check_items_take(check_items *it, stem_check_item **out,
                                    int64_t *n);
STEM_INTERNAL void check_items_free(check_items *it);

/* Everything a check run carries between its stages. */
typedef struct check_ctx {
    const stem_params *p;
    const stem_tensor *q, *k, *v;
    const stem_check_gpu *gpu;
    stem_check_options o;
    stem_dims dm;
    int64_t h0, h1, nh;         /* heads judged [h0, h1), nh = h1 - h0 */
    int64_t pb;                 /* query block I sits at key block I + pb */
    int64_t nbudget;
    int32_t *budget;            /* by absolute block position */
    float *ref_logits;          /* [Hq, Qb, Kb], all heads */
    uint8_t *ref_mask;          /* [Hq, Qb, Kb] */
    float *limit;               /* [nh, Qb, Kb]: logit limit per entry */
    float *limit_worst;         /* [nh, Qb, Kb]: the worst-case bound of
                                   each entry (check_bound.c), or NULL
                                   with a fixed logit_tol */
    float *sigma;               /* [nh, Qb, Kb]: modeled standard deviation
                                   of the GPU's rounding of that logit's
                                   QK term */
    float *vbound;              /* [nh, Kb]: bound of the value term's
                                   error of each key block */
    double logit_z;             /* z of the modeled logit limits (sigmas
                                   raised to the Bonferroni quantile of
                                   the entries judged; check_bound.c) */
    int tie_worst;              /* 1: tau from the limits (worst case), the
                                   model not applying (see check_bound.c) */
    float *gpu_logits;          /* [nh, Qb, Kb] or NULL */
    uint8_t *gpu_mask;          /* [nh, Qb, Kb] or NULL */
    stem_check_report *r;
} check_ctx;

/* Logit limits of every judged entry into ctx->limit and their modeled
 * standard deviations into ctx->sigma (check_bound.c).
 * STEM_ERR_NOMEM or STEM_OK. */
STEM_INTERNAL stem_status check_logit_limits(check_ctx *c);

/* The stages; each fills its part of ctx->r.  STEM_OK or STEM_ERR_NOMEM
 * (or an error of the reference attention in check_attention). */
STEM_INTERNAL stem_status check_stage_logits(check_ctx *c);
STEM_INTERNAL stem_status check_stage_selection(check_ctx *c);
STEM_INTERNAL stem_status check_stage_mask(check_ctx *c);
STEM_INTERNAL stem_status check_attention(check_ctx *c);
/* The systematic tests (check_bias.c): run after the other stages, they
 * add their faults to the logits, out and lse stages and fill r->bias. */
STEM_INTERNAL stem_status check_stage_bias(check_ctx *c);

/* The tie band of a block whose limit / sigma / value bound sit at index
 * j of the row's arrays, against the row's threshold block at index t
 * (t < 0: none): options.tau when set; else sigmas standard deviations of
 * the difference of the two QK terms' rounding plus the two value-term
 * bounds, never more than the two limits' sum (which it is where
 * c->tie_worst says the model does not apply). */
STEM_INTERNAL double check_tau(const check_ctx *c, const float *lim,
                               const float *sig, const float *vb, int64_t j,
                               int64_t t);

/* The two-sided normal quantile: z with erfc(z / sqrt 2) = p (0 < p < 1). */
STEM_INTERNAL double check_normal_quantile2(double p);

/* The most that rounding a value of magnitude |x| to a format of unit
 * roundoff u moves it: half an ulp of x's binade, u 2^floor(log2 |x|) (at
 * most u |x|; 0 for x = 0 or not finite).  For a stored value y = round(x)
 * half an ulp of y's binade bounds it too (rounding never leaves x's binade
 * downwards). */
STEM_INTERNAL double check_half_ulp(double x, double u);

/* The view's unit roundoff: 2^-8 for BF16, 2^-11 for F16, 2^-24 F32,
 * 2^-53 F64 (how coarse its stored values are). */
STEM_INTERNAL double check_view_unit(stem_dtype dt);

/* Read element (h, t, c) of a view of any float dtype as double. */
STEM_INTERNAL double check_view_at(const stem_tensor *t, int64_t h,
                                   int64_t tok, int64_t c);

#endif /* STEM_CHECK_INTERNAL_H */
