/*
 * brute.h - a brute-force float64 Stem written directly from docs/ALGORITHM.md, the
 * oracle of the tests.  It shares no code with the library: every formula is
 * evaluated literally (per-pair anti-diagonal sums, means over every pair of
 * a block, two-pass softmax), in double, with plain loops.  Slow on purpose.
 *
 * Inputs are stem_tensor views (any strides, F32/BF16/F16/F64) read through
 * tu_get; parameters come in a stem_params (only its fields are used, never
 * the library's functions).  Shapes are assumed valid: these functions are
 * called only on inputs the test built.
 */
#ifndef STEM_BRUTE_H
#define STEM_BRUTE_H

#include <stdint.h>

#include "stem.h"

/* Derived sizes, computed independently of stem_dims_get. */
typedef struct bf_dims {
    int64_t hq, hkv, lq, lk, d, offset, qb, kb;
    int64_t block_offset;       /* offset / B (sparse modes) */
} bf_dims;

bf_dims bf_dims_of(const stem_params *p, const stem_tensor *q,
                   const stem_tensor *k);

/*
 * docs/ALGORITHM.md section 1: L[h][I][J] (double, [hq, qb, kb]),
 * -INFINITY above the causal diagonal J > I + P/B.  L: caller buffer.  Returns 0, or -1 if an
 * allocation failed.
 */
int bf_block_logits(const stem_params *p, const stem_tensor *q,
                    const stem_tensor *k, const stem_tensor *v, double *L);

/*
 * docs/ALGORITHM.md sections 2, 4: budget[pos] for pos < n under
 * p->budget_rule.  lk_tokens is the prompt length in tokens used by the paper rule to choose rho_N.
 */
void bf_budget(const stem_params *p, int64_t n, int64_t lk_tokens,
               int32_t *budget);

/*
 * docs/ALGORITHM.md section 3: selection of every row from logits L
 * ([hq, qb, kb] doubles, -inf never picked).  mask: [hq, qb, kb] bytes written 0/1.
 * thr (optional, [hq*qb]): the row threshold, the budget-th largest finite
 * logit (+inf when the budget is 0 or the row has no finite entry).
 * topk (optional, [hq, qb, kb]): 1 where the block came from the top-k
 * part, 0 otherwise (sinks/window/diagonal only).
 * budget: [n] as from bf_budget with n >= kb positions.
 */
void bf_select(const stem_params *p, const bf_dims *dm, const double *L,
               const int32_t *budget, uint8_t *mask, double *thr,
               uint8_t *topk);

/* 1 if block J of a row at absolute block position pos is a sink, window
 * or (when kept) diagonal block under p: selected whatever its logit. */
int bf_forced(const stem_params *p, int64_t pos, int64_t J);

/*
 * docs/ALGORITHM.md section 3, attention in double: for each query head
 * h and row r, softmax of q.k_t / sqrt(d) over keys t <= r + P whose key block is selected in
 * mask[h][r/B][t/B] (mask NULL: dense causal attention, any P), times v.
 * out: [hq, lq, d] doubles; lse (optional): [hq, lq].  Rows with no key
 * get out 0 and lse -inf.  Returns 0, or -1 if an allocation failed.
 */
int bf_attention(const stem_params *p, const stem_tensor *q,
                 const stem_tensor *k, const stem_tensor *v,
                 const uint8_t *mask, double *out, double *lse);

#endif /* STEM_BRUTE_H */
