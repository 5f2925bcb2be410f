/*
 * check_case.h - a small case for the checker's tests: BF16 q, k, v and
 * the library's own logits, mask, out and lse on them (the "GPU" that the
 * tests then doctor).  Blocks of 32 so that 2048 keys give 64 key blocks,
 * enough to reach the sparse part of the budget.
 */
#ifndef STEM_TEST_CHECK_CASE_H
#define STEM_TEST_CHECK_CASE_H

#include <stddef.h>
#include <stdint.h>

#include "stem.h"
#include "testutil.h"

typedef struct cc_case {
    stem_params p;              /* angelslim, block 32 */
    tu_tensor q, k, v;          /* BF16 [hq|hkv, n, d] */
    stem_dims dm;
    float *logits;              /* [hq, qb, kb] */
    uint8_t *mask;              /* [hq, qb, kb] */
    float *out;                 /* [hq, n, d] F32 */
    float *lse;                 /* [hq, n] */
    int32_t *budget;            /* [kb] */
} cc_case;

/*
 * Fill c with hq query heads, hkv kv heads, n tokens of dimension d:
 * random 1: i.i.d. N(0, 1) q, k, v (block logits within rounding of each
 * other); 0: key blocks leaning along a direction by distinct amounts
 * (logits spread well apart).  Aborts the test on failure.
 */
void cc_make(cc_case *c, int random, int64_t hq, int64_t hkv, int64_t n,
             int64_t d, uint64_t seed);
void cc_free(cc_case *c);

/* Recompute the library's outputs after the inputs were edited. */
void cc_refresh(cc_case *c);

/* Cells of the block arrays and of out. */
size_t cc_cells(const cc_case *c);
size_t cc_outs(const cc_case *c);

/* Offset of row (h, I) in the block arrays. */
size_t cc_row(const cc_case *c, int64_t h, int64_t I);

/* Whether key block J is a sink, window or diagonal block of query
 * block I. */
int cc_forced(const cc_case *c, int64_t I, int64_t J);

#endif /* STEM_TEST_CHECK_CASE_H */
