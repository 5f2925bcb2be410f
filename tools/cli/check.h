/*
 * check.h - the tool's own classification of block-mask differences (ties
 * versus faults), which `stem mask --diff` colours by, the row threshold
 * `stem explain` prints, and the old fixed tolerances `stem mask` takes tau
 * from.  `stem check` itself is a layer over the library's stem_check
 * (include/stem_check.h, docs/ALGORITHM.md section 5).  Pure functions
 * over arrays: no files, no printing.
 *
 * Layouts: every array is contiguous and row-major; logits and masks are
 * [hq, qb, kb].  Results that own memory
 * are released with their *_free function, which is safe on a zeroed
 * struct.  Every function returns 0 on success and -1 on bad arguments or
 * an allocation failure (then the result struct is left zeroed).
 */
#ifndef STEM_CLI_CHECK_H
#define STEM_CLI_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "stem.h"

/* ------------------------------------------------------------- tolerances */

/* The limits a comparison applies; all are inclusive. */
typedef struct check_tol {
    double logit;       /* largest |gpu - ref| of finite logits */
    double tau;         /* a mask difference within tau of the threshold is a tie */
    double out_rel_l2;  /* per-head relative L2 of out vs the masked reference */
    double lse_abs;     /* largest |gpu - ref| of lse */
} check_tol;

/*
 * Defaults for the GPU dtype name "bf16", "fp16" or "fp32" (also "bfloat16",
 * "float16", "f16", "half", "float32", "f32", "float"): logits and tau and
 * out from the conformance README (logit 0.06 / 0.01
 * / 1e-4, tau 0.05 / 0.01 / 1e-4, out 3e-2 / 5e-3 / 1e-4); lse 5e-2 / 1e-2
 * / 1e-4 (a score s rounded to bf16 moves by up to 2^-9 |s|).  Returns -1
 * for an unknown or NULL name, leaving *tol alone.
 */
int check_tol_for_dtype(const char *dtype, check_tol *tol);

/* Canonical dtype name ("bf16", "fp16", "fp32") of any accepted spelling,
 * or NULL. */
const char *check_dtype_canonical(const char *dtype);

/* ------------------------------------------------------------------- mask */

/* Geometry and the always-kept blocks of a selection. */
typedef struct check_mask_geom {
    int64_t hq, qb, kb;
    int64_t pb;                 /* query block I sits at key block I + pb */
    int sinks, window, keep_diagonal;
} check_mask_geom;

typedef enum check_diff_kind {
    CHECK_TIE = 0,              /* within tau of the row threshold */
    CHECK_FAULT_GAP,            /* farther than tau from the threshold */
    CHECK_FAULT_SINK,           /* a sink block differs */
    CHECK_FAULT_WINDOW,         /* a window (or diagonal) block differs */
    CHECK_FAULT_FUTURE          /* the GPU kept a block beyond the diagonal */
} check_diff_kind;

/* "tie", "fault", "sink fault", "window fault", "future fault" */
const char *check_diff_kind_name(check_diff_kind kind);

/* One block selected by one side only. */
typedef struct check_mask_diff {
    int32_t head, qblock, kblock;
    int gpu_kept;               /* 1: GPU kept it, reference dropped it */
    check_diff_kind kind;
    float logit;                /* reference logit of the block */
    float threshold;            /* budget-th largest finite logit of the row;
                                   -inf when the budget keeps every block */
    double gap;                 /* logit - threshold (+inf, -inf possible) */
} check_mask_diff;

typedef struct check_mask_result {
    int64_t n_diff, n_tie, n_fault;
    double max_tie_gap;         /* largest |gap| of a tie (0 if none) */
    int64_t gpu_selected, ref_selected;     /* causal blocks kept */
    int64_t rows_without_diagonal;          /* GPU rows lacking block I+pb */
    check_mask_diff *diffs;     /* n_diff entries, faults first, then by
                                   |gap| descending; owned */
} check_mask_result;

/*
 * Classify every block where gpu_mask and ref_mask (nonzero = kept)
 * disagree.  ref_logits are the reference block logits; budget[0..nbudget)
 * the reference budget by absolute block position (positions past the end
 * use the last entry).  A sink or window block that differs is always a
 * fault; a block beyond the causal diagonal kept by the GPU is a fault;
 * otherwise a difference is a tie when |logit - threshold| <= tau.
 */
int check_mask(const check_mask_geom *g, const float *ref_logits,
               const int32_t *budget, int64_t nbudget,
               const uint8_t *ref_mask, const uint8_t *gpu_mask, double tau,
               check_mask_result *r);
void check_mask_result_free(check_mask_result *r);

/* The row threshold used by check_mask: the budget-th largest finite entry
 * of row[0..last] (ties by lower index), -inf when budget >= the count of
 * finite entries or budget < 1. */
float check_row_threshold(const float *row, int64_t last, int32_t budget);

#endif /* STEM_CLI_CHECK_H */
