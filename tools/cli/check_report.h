/*
 * check_report.h - what `stem check` found, as a human report and as JSON.
 */
#ifndef STEM_CLI_CHECK_REPORT_H
#define STEM_CLI_CHECK_REPORT_H

#include <stdio.h>

#include "check.h"
#include "stem.h"

/* Everything one check produced.  The result structs are owned by the
 * caller (free them with their check_*_free). */
typedef struct check_report {
    const char *in_path, *gpu_path;
    stem_params params;
    stem_dims dims;
    const char *dtype;          /* "bf16", "fp16" or "fp32" */
    const char *dtype_source;   /* "--dtype", "GPU metadata", "input q" */
    const char *params_source;  /* NULL or a note on metadata parameters */
    check_tol tol;
    int have_logits, have_mask, have_out, have_lse;
    check_logits_result logits;
    check_mask_result mask;
    check_out_result out;
    check_lse_result lse;
    int out_vs_ref_mask;        /* out compared under the reference mask
                                   (the GPU gave none) */
    int diag_added;             /* GPU rows lacking a diagonal got one for
                                   the output reference */
    int logits_fault, mask_fault, out_fault, lse_fault;
    int nshow;                  /* how many offenders to list per section */
    double seconds;
} check_report;

/* 1 if any section found a fault. */
int check_report_failed(const check_report *r);

/* The human report, worst offenders first, to fp. */
void check_report_text(FILE *fp, const check_report *r);

/*
 * The same content as JSON, written atomically to path (a failed write
 * leaves an existing file alone).  0, or -1 with a reason in err.
 */
int check_report_json(const check_report *r, const char *path, char *err,
                      size_t errlen);


#endif /* STEM_CLI_CHECK_REPORT_H */
