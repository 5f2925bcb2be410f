/*
 * stem_check.h - judging what a GPU Stem kernel produced against the
 * reference, in process (docs/ALGORITHM.md section 5).
 *
 * A GPU backend hands over any subset of its block logits, block mask,
 * attention output and log-sum-exp, together with the q, k, v it saw.
 * stem_check() computes the reference and judges every stage on the GPU's
 * own input to that stage, so that a fault is pinned to the stage that
 * made it:
 *
 *   logits     GPU logits against the reference logits; the -inf pattern
 *              exactly, finite entries within a limit derived from the
 *              GPU's intermediate precisions and the magnitudes involved.
 *   selection  the profile's selection rule applied to the GPU's own
 *              logits must give the GPU's mask exactly (only exchanges
 *              between exactly equal GPU logits are tie-breaks).
 *   mask       GPU mask against the reference mask: sinks, window and
 *              diagonal exactly; every other difference an exchange of
 *              blocks within tau of the row threshold; the top-k count of
 *              each row what the budget says.
 *   out, lse   every row against attention under the GPU's own mask, with
 *              a limit per row derived from the GPU precisions and that
 *              row's values; plus the ignored-mask test per head.
 *
 * PASS means every difference is explained by rounding; FAIL lists the
 * offenders with their positions, worst first.  The library never prints:
 * stem_check_report_text / _json render a report into a caller buffer.
 */
#ifndef STEM_CHECK_H
#define STEM_CHECK_H

#include "stem.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------ precisions */

/* A floating-point format of the GPU's arithmetic or storage.  Its unit
 * roundoff u (half an ulp at 1): fp32 2^-24, bf16 2^-8, fp16 2^-11, fp8
 * e4m3 2^-4. */
typedef enum stem_prec {
    STEM_PREC_FP32 = 0,
    STEM_PREC_BF16,
    STEM_PREC_FP16,
    STEM_PREC_FP8,              /* e4m3 */
    STEM_PREC_COUNT
} stem_prec;

/* "fp32", "bf16", "fp16", "fp8", or "?" */
STEM_API const char *stem_prec_name(stem_prec prec);
/* Accepts fp32/float32/f32/float, bf16/bfloat16, fp16/float16/f16/half,
 * fp8/e4m3/float8_e4m3fn (an optional "torch." prefix, any case).
 * STEM_ERR_NULL, or STEM_ERR_PARAM for an unknown name (*out untouched). */
STEM_API stem_status stem_prec_from_name(const char *name, stem_prec *out);
/* The unit roundoff of prec (0 for an unknown value). */
STEM_API double stem_prec_unit(stem_prec prec);

/* ------------------------------------------------------------ arithmetic */

/*
 * Where a GPU kernel rounds, by name (docs/ALGORITHM.md section 5).  Each
 * preset sets the precisions of stem_check_options for a working dtype D
 * (bf16, fp16, fp8; fp32 makes every precision fp32):
 *   FLASH      FlashAttention 2/3, FlexAttention, Triton: scores and lse in
 *              float32, P before P.V and the stored out in D; block scoring
 *              in D with float32 logits.
 *   ANGELSLIM  AngelSlim's torch backend: block scoring and the stored
 *              logits in D, attention scores materialised in D (its
 *              dense-masked fallback), P and out in D, lse float32.
 *   HPCOPS     hpc-ops' FP8 attention: scoring and logits in bf16, P * 256
 *              in e4m3, scores float32, out bf16, lse float32.
 */
typedef enum stem_arith {
    STEM_ARITH_FLASH = 0,
    STEM_ARITH_ANGELSLIM,
    STEM_ARITH_HPCOPS,
    STEM_ARITH_COUNT
} stem_arith;

/* "flash", "angelslim", "hpc-ops", or "?" */
STEM_API const char *stem_arith_name(stem_arith arith);
/* Accepts flash (also flex, triton, fa2, fa3), angelslim, hpc-ops (also
 * hpcops), any case.  STEM_ERR_NULL, or STEM_ERR_PARAM for an unknown name
 * (*out untouched). */
STEM_API stem_status stem_arith_from_name(const char *name, stem_arith *out);

/* --------------------------------------------------------------- options */

typedef struct stem_check_options {
    stem_prec gpu_dtype;        /* the GPU's working dtype; sets the rest */
    stem_arith arith;           /* the preset the precisions below came
                                   from (a precision set apart from it is
                                   named as an override in the report) */
    int arith_auto;             /* 1: stem_check may choose the preset:
                                   hpc-ops for that profile or an fp8
                                   dtype, angelslim where every GPU logit
                                   is a value of the dtype (logits stored
                                   in it), else the one given */
    int strict;                 /* 1: a stage that leaves rows undecided
                                   fails (see stem_check_stage_result),
                                   and a systematic test undecided in a
                                   head (stem_check_bias.heads_undecided)
                                   makes the report FAIL */
    stem_prec score_prec;       /* its block-scoring intermediates (pair
                                   scores or group sums, value norms) */
    stem_prec logit_store;      /* dtype its logits were stored in; a view
                                   of a coarser dtype counts as that one */
    stem_prec attn_prec;        /* P before P.V (fp8: P * 256 in e4m3) */
    stem_prec attn_score_prec;  /* attention scores before the softmax:
                                   fp32 in flash kernels, the input dtype
                                   where scores are materialised */
    stem_prec out_store;        /* dtype out was stored in (or coarser view) */
    stem_prec lse_store;        /* dtype lse was stored in (or coarser view) */
    double tau;                 /* < 0: per block pair, sigmas standard
                                   deviations of the difference of the two
                                   logits' modeled rounding (the worst-case
                                   sum where the model does not apply);
                                   >= 0: one fixed tie band */
    double logit_tol;           /* < 0: derived per entry; else absolute */
    double out_tol;             /* < 0: derived per row; else a fixed
                                   per-row relative L2 limit */
    double lse_tol;             /* < 0: derived per row; else absolute */
    double sigmas;              /* K of the row limits (default 4) */
    int dense_test;             /* 1: run dense attention for the
                                   ignored-mask test (default 1) */
    int64_t head_begin;         /* first query head judged (0) */
    int64_t head_count;         /* heads judged; 0: all from head_begin */
    int max_items;              /* offenders kept per stage, and ties (20) */
} stem_check_options;

/*
 * Defaults for a GPU working in gpu_dtype: the flash arithmetic for fp32,
 * bf16 and fp16, hpc-ops for fp8, with arith_auto 1; strict 0; tau,
 * logit_tol, out_tol, lse_tol -1 (derived), sigmas 4, dense_test 1, all
 * heads, max_items 20.  STEM_ERR_NULL / STEM_ERR_PARAM on bad input.
 */
STEM_API stem_status stem_check_options_init(stem_check_options *opt,
                                             stem_prec gpu_dtype);

/*
 * Declare the arithmetic: the precisions of preset arith for
 * opt->gpu_dtype, arith set and arith_auto 0; the other fields stay.
 * Precisions set after this call are overrides of the preset.
 * STEM_ERR_NULL / STEM_ERR_PARAM (opt untouched).
 */
STEM_API stem_status stem_check_options_arith(stem_check_options *opt,
                                              stem_arith arith);

/* The precisions preset arith gives a GPU working in dtype into *out
 * (only the seven stem_prec fields and arith are written).
 * STEM_ERR_NULL / STEM_ERR_PARAM. */
STEM_API stem_status stem_arith_precisions(stem_arith arith, stem_prec dtype,
                                           stem_check_options *out);

/* ------------------------------------------------------------ GPU tensors */

/*
 * What the GPU produced; any member may be NULL (at least one must not).
 *   logits [Hq, Qb, Kb]  heads = Hq, tokens = Qb, dim = Kb; F32, F64,
 *                        BF16 or F16; -inf above the causal diagonal
 *   mask   [Hq, Qb, Kb]  STEM_U8, any non-zero byte = kept
 *   out    [Hq, Lq, d]   F32, F64, BF16 or F16
 *   lse    [Hq, Lq, 1]   dim = 1; F32, F64, BF16 or F16; natural log
 *                        ([Lq, Hq] storage: head_stride 1, token_stride Hq)
 * The views are read only.
 */
typedef struct stem_check_gpu {
    const stem_tensor *logits;
    const stem_tensor *mask;
    const stem_tensor *out;
    const stem_tensor *lse;
} stem_check_gpu;

/* ---------------------------------------------------------------- report */

typedef enum stem_check_stage {
    STEM_STAGE_LOGITS = 0,
    STEM_STAGE_SELECTION,
    STEM_STAGE_MASK,
    STEM_STAGE_OUT,
    STEM_STAGE_LSE,
    STEM_STAGE_COUNT
} stem_check_stage;

/* "logits", "selection", "mask", "out", "lse", or "?" */
STEM_API const char *stem_check_stage_name(stem_check_stage stage);

typedef enum stem_check_verdict {
    STEM_CHECK_ABSENT = 0,      /* not judged (its input is missing) */
    STEM_CHECK_PASS,
    STEM_CHECK_FAIL
} stem_check_verdict;

/* What an item of the report is.  Every kind is a fault except
 * STEM_KIND_MASK_TIE, STEM_KIND_SELECT_TIE and STEM_KIND_MASK_UNREAD. */
typedef enum stem_check_kind {
    STEM_KIND_NONE = 0,
    STEM_KIND_LOGIT_NONFINITE,  /* NaN or +inf in the GPU logits */
    STEM_KIND_LOGIT_PATTERN,    /* -inf on one side only */
    STEM_KIND_LOGIT_ERROR,      /* |gpu - ref| above the entry's limit */
    STEM_KIND_SELECT_EXTRA,     /* GPU kept a block its own logits drop */
    STEM_KIND_SELECT_MISSING,   /* GPU dropped a block its own logits keep */
    STEM_KIND_SELECT_TIE,       /* exchange between equal GPU logits */
    STEM_KIND_MASK_SINK,        /* a sink block dropped */
    STEM_KIND_MASK_WINDOW,      /* a window or diagonal block dropped */
    STEM_KIND_MASK_FUTURE,      /* a block beyond the diagonal kept */
    STEM_KIND_MASK_GAP,         /* kept/dropped though beyond tau of the
                                   row threshold */
    STEM_KIND_MASK_COUNT,       /* the row's top-k count is off its budget */
    STEM_KIND_MASK_TIE,         /* an exchange within tau: rounding */
    STEM_KIND_MASK_UNREAD,      /* an unread bit above the diagonal that
                                   the profile lets the backend set */
    STEM_KIND_OUT_NONFINITE,    /* NaN/Inf in a GPU output row */
    STEM_KIND_OUT_ROW,          /* a row beyond its limit */
    STEM_KIND_OUT_IGNORES_MASK, /* a head closer to dense than to masked */
    STEM_KIND_OUT_WRONG_HEAD,   /* a head far from both masked and dense */
    STEM_KIND_LSE_NONFINITE,
    STEM_KIND_LSE_ROW,          /* an lse beyond its limit */
    /* systematic errors (docs/ALGORITHM.md section 5): the component of
     * the error of a query block (qblock) or a whole head (qblock -1)
     * along the direction a fault moves it, many standard errors from 0 */
    STEM_KIND_OUT_SCALE_BIAS,   /* out along the reference: a scale */
    STEM_KIND_OUT_TEMP_BIAS,    /* out along d out / d(softmax scale) */
    STEM_KIND_OUT_ROW_SHIFT,    /* out towards the next (col 1) or the
                                   previous (col -1) row's */
    STEM_KIND_LSE_OFFSET,       /* lse shifted by a constant */
    STEM_KIND_LSE_TEMP_BIAS,    /* lse along d lse / d(softmax scale) */
    STEM_KIND_LOGIT_SCALE_BIAS, /* logits along their QK term */
    STEM_KIND_LOGIT_VALUE_BIAS, /* logits along their value term */
    STEM_KIND_LOGIT_STRIDE_BIAS,/* logits towards another stride's */
    STEM_KIND_LOGIT_GROUP_NORM_BIAS, /* logits towards a value term from
                                   the groups' mean norm, not their max */
    STEM_KIND_OUT_HEAD_SHIFT,   /* out towards the next (col 1) or the
                                   previous (col -1) query head's */
    STEM_KIND_OUT_KV_HEAD,      /* out towards attention with another kv
                                   head's k and v (col: that kv head) */
    STEM_KIND_COUNT
} stem_check_kind;

/* A short name ("logit error", "mask tie", ...), or "?". */
STEM_API const char *stem_check_kind_name(stem_check_kind kind);
/* 1 if kind is a fault, 0 otherwise. */
STEM_API int stem_check_kind_is_fault(stem_check_kind kind);

/*
 * One offender (or tie).  Positions not meaningful for the kind are -1.
 *   logits: gpu, ref the logits; err |gpu - ref|; limit its limit
 *   selection: gpu 1 kept / 0 dropped; ref what the rule on the GPU
 *           logits says; threshold the GPU row threshold
 *   mask:   gpu / ref 1 kept, 0 dropped; ref_logit the reference logit;
 *           threshold the reference row threshold; err |logit - threshold|;
 *           limit tau.  MASK_COUNT: gpu the blocks the row keeps besides
 *           sinks and window, threshold and ref the least and most the
 *           budget allows, ref_logit the budget, err how far off
 *   out:    row L2 of gpu - ref in err, its limit, gpu / ref the row norms;
 *           col the element with the largest difference
 *   heads:  head-level kinds carry row = qblock = -1; err ||G - M||,
 *           limit the head limit, gpu the position t on masked -> dense
 *   lse:    gpu, ref the values; err, limit
 */
typedef struct stem_check_item {
    stem_check_kind kind;
    int64_t head, qblock, kblock, row, col;
    double gpu, ref, err, limit;
    double ref_logit, threshold;
} stem_check_item;

typedef struct stem_check_stage_result {
    stem_check_verdict verdict;
    int64_t checked;            /* entries, rows or blocks judged */
    int64_t faults;             /* of them, faults */
    double worst_ratio;         /* largest err / limit over the checked */
    double max_err;             /* largest error (absolute) */
    int64_t units;              /* what decided/undecided count: mask:
                                   sparse rows; out, lse: rows; logits:
                                   entries; selection: rows */
    int64_t undecided;          /* of the units, those the check could not
                                   decide: mask rows whose differences from
                                   the reference lie within rounding of the
                                   threshold (a tie or a fault alike) and
                                   no GPU logits to tell; out rows whose
                                   limit reaches the row's own norm */
    int64_t n_items;            /* items[0 .. n_items): faults, worst first */
    stem_check_item *items;
} stem_check_stage_result;

/* The systematic tests: the error's component along the direction a
 * fault moves it, per query block and per head (logits: per head). */
typedef enum stem_check_bias_test {
    STEM_BIAS_OUT_SCALE = 0,    /* kind OUT_SCALE_BIAS */
    STEM_BIAS_OUT_TEMP,         /* kind OUT_TEMP_BIAS */
    STEM_BIAS_OUT_SHIFT,        /* kind OUT_ROW_SHIFT (both neighbours) */
    STEM_BIAS_LSE_OFFSET,       /* kind LSE_OFFSET */
    STEM_BIAS_LSE_TEMP,         /* kind LSE_TEMP_BIAS */
    STEM_BIAS_LOGIT_SCALE,      /* kind LOGIT_SCALE_BIAS */
    STEM_BIAS_LOGIT_VALUE,      /* kind LOGIT_VALUE_BIAS */
    STEM_BIAS_LOGIT_STRIDE,     /* kind LOGIT_STRIDE_BIAS */
    STEM_BIAS_LOGIT_GROUP_NORM, /* kind LOGIT_GROUP_NORM_BIAS */
    STEM_BIAS_OUT_HEAD,         /* kind OUT_HEAD_SHIFT (both neighbours) */
    STEM_BIAS_OUT_KV_HEAD,      /* kind OUT_KV_HEAD */
    STEM_BIAS_COUNT
} stem_check_bias_test;

/* "out scale", "out temperature", "out neighbour row", "lse offset",
 * "lse temperature", "logit scale", "logit value term", "logit stride",
 * "logit group norm", "out neighbour head", "out kv head", or "?" */
STEM_API const char *stem_check_bias_name(stem_check_bias_test test);

/*
 * One systematic test over the groups judged.  A fault item of it has
 * gpu = the component (out scale: relative, 0.01 for out * 1.01;
 * temperature: relative error of the softmax scale; row shift: the
 * fraction of the neighbour's row; lse offset: in lse units; logits: the
 * fraction of the direction), ref = its standard error, err = |z| (the
 * component in standard errors), limit = the group's threshold,
 * threshold = the check's Bonferroni z, ref_logit = the typical size of
 * the values; row, kblock -1.
 */
typedef struct stem_check_bias {
    int64_t tests;              /* groups tested (0: not run) */
    int64_t faults;             /* groups beyond their threshold */
    double threshold;           /* the Bonferroni z of the check */
    double worst;               /* largest min(|z| / the group's
                                   threshold, |component| / its floor):
                                   above 1 a fault */
    double worst_z;             /* z there */
    double worst_component;     /* the component there */
    int64_t worst_head, worst_qblock;   /* where (qblock -1: a head) */
    double worst_zratio;        /* largest |z| / the group's threshold,
                                   the floor aside */
    int64_t heads;              /* whole heads tested */
    int64_t heads_undecided;    /* of them, those where the fault the test
                                   is there for (fault_size) would pass:
                                   the rounding noise or the floor is
                                   larger than it */
    double fault_size;          /* that fault's component: 0.01 out scale,
                                   0.03 softmax / QK scale, 1 a row, head,
                                   kv head, stride or group-norm shift,
                                   1e-3 lse offset, 0.5 value weight */
    double smallest_failing;    /* the largest over heads of the smallest
                                   component that fails */
} stem_check_bias;

/* Per query head judged. */
typedef struct stem_check_head {
    int64_t head;
    double out_rel_l2;          /* ||G - M|| / ||M|| over the head (context) */
    int64_t rows_failed;        /* out or lse rows beyond their limits */
    double dense_t;             /* position on masked (0) -> dense (1) */
    double dense_spread;        /* noise spread of t */
    double masked_vs_dense;     /* ||D - M|| / ||M|| */
    int dense_decidable;        /* the test could tell */
    stem_check_kind status;     /* NONE, OUT_IGNORES_MASK, OUT_WRONG_HEAD */
} stem_check_head;

typedef struct stem_check_report {
    stem_check_verdict verdict;             /* FAIL if any stage failed */
    stem_dims dims;
    stem_params params;
    stem_check_options options;             /* as resolved */
    int64_t head_begin, head_end;           /* heads judged [begin, end) */
    stem_check_stage_result stage[STEM_STAGE_COUNT];

    /* logits */
    int64_t logit_nonfinite, logit_pattern;
    double logit_scale;         /* median gpu/ref over large entries (1: fine) */
    double logit_zmax;          /* largest |gpu - ref| within its limit, in
                                   modeled standard deviations */
    /* mask */
    int64_t mask_diffs, mask_ties, mask_unread, rows_count_off;
    int64_t gpu_kept, ref_kept, causal_blocks;
    double max_tie_gap;                     /* |gap| of the widest tie */
    int64_t n_ties;                         /* ties listed (up to max_items) */
    stem_check_item *ties;
    int64_t select_ties;
    /* out / lse */
    int out_under_ref_mask;     /* no GPU mask: judged under the reference's */
    int diag_added;             /* missing diagonals added for the reference */
    double out_rel_l2;          /* over the heads judged (context) */
    double lse_max_abs;
    int lse_base2_hint;         /* the GPU lse looks like log2 */
    int64_t rows_failed;        /* distinct (head, row) failing out or lse */
    int64_t qblocks_failed;     /* (head, query block) with a failing row */
    int64_t n_heads;            /* heads[0 .. n_heads) */
    stem_check_head *heads;
    int32_t *qblock_rows_failed;/* [n_heads][Qb]: failing rows per block */
    char hint[512];             /* a likely parameter mismatch, or "" */
    /* arithmetic */
    int arith_chosen;           /* 1: arith_auto chose options.arith */
    char arith_note[256];       /* errors that fit another arithmetic than
                                   the declared one (which, and how to
                                   declare it), or "" */
    double alt_ratio[STEM_STAGE_COUNT]; /* worst err / limit under that
                                   other arithmetic (0: none tried) */
    int strict_failed;          /* strict: undecided rows or tests made
                                   a FAIL */
    /* systematic tests (check_bias.c), indexed by stem_check_bias_test */
    double bias_alpha;          /* false-alarm probability of the check */
    double bias_z;              /* Bonferroni threshold before the
                                   per-group widening (0: no test ran) */
    stem_check_bias bias[STEM_BIAS_COUNT];
} stem_check_report;

/*
 * Judge gpu against the reference of params on q, k, v.
 * params, q, k, v as for stem_prefill (sparse modes: (Lk - Lq) % B == 0).
 * opt: NULL for stem_check_options_init defaults of q's dtype (bf16 and
 * fp16 inputs: that dtype; fp32/fp64: fp32).
 * report: filled on STEM_OK (then the verdict is in report->verdict);
 * release with stem_check_report_free.  On an error it is left zeroed.
 * Errors: those of stem_prefill for q, k, v and params; STEM_ERR_NULL
 * (no GPU tensor at all); STEM_ERR_SHAPE / STEM_ERR_DTYPE for a GPU view of
 * the wrong shape or dtype; STEM_ERR_PARAM for bad options (head range,
 * negative sigmas); STEM_ERR_NOMEM.
 * Non-finite GPU values are findings in the report, not errors.
 */
STEM_API stem_status stem_check(const stem_params *params,
                                const stem_tensor *q, const stem_tensor *k,
                                const stem_tensor *v,
                                const stem_check_gpu *gpu,
                                const stem_check_options *opt,
                                stem_check_report *report);

/*
 * The mask stage of stem_check alone, on reference block logits instead of
 * q, k, v (what `stem mask --diff` judges when it has no inputs): gpu_mask
 * against ref_mask (NULL: the profile's selection on ref_logits), the
 * same rules, counts and items.  Without q, k, v the tie band cannot be
 * derived: opt->tau must be >= 0.  ref_logits, ref_mask, gpu_mask are
 * contiguous [hq, qb, kb] (any non-zero mask byte = kept; read only);
 * query block I sits at key block I + (kb - qb).  opt: heads, max_items
 * and strict as for stem_check (NULL is STEM_ERR_PARAM: tau is needed).
 * report: filled on STEM_OK, the mask stage only; release with
 * stem_check_report_free.  STEM_ERR_NULL, STEM_ERR_SHAPE (hq, qb < 1 or
 * kb < qb), STEM_ERR_PARAM (bad params or options), STEM_ERR_NOMEM.
 */
STEM_API stem_status stem_check_mask_logits(const stem_params *params,
                                            int64_t hq, int64_t qb,
                                            int64_t kb,
                                            const float *ref_logits,
                                            const uint8_t *ref_mask,
                                            const uint8_t *gpu_mask,
                                            const stem_check_options *opt,
                                            stem_check_report *report);

/* Release what stem_check allocated and zero *report; NULL is a no-op. */
STEM_API void stem_check_report_free(stem_check_report *report);

/*
 * Render the report as text (verbose 0: a PASS is a short summary; 1:
 * every stage with its figures) or JSON, snprintf style: writes at most
 * cap bytes including the terminating NUL (buf may be NULL when cap is 0)
 * and returns the length the whole text needs, without the NUL.
 */
STEM_API size_t stem_check_report_text(const stem_check_report *report,
                                       int verbose, char *buf, size_t cap);
STEM_API size_t stem_check_report_json(const stem_check_report *report,
                                       char *buf, size_t cap);

#ifdef __cplusplus
}
#endif
#endif /* STEM_CHECK_H */
