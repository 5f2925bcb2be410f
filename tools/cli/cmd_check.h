/*
 * cmd_check.h - the parts of `stem check` that stem-mpi's `check` shares,
 * so that both read the same options and judge a case the same way: one
 * option grammar (cli_check_opt), loading and setting up a case
 * (cli_check_load), and judging some of its query heads (cli_check_judge).
 * Messages go through cli_error (cli_common.h).
 */
#ifndef STEM_CLI_CMD_CHECK_H
#define STEM_CLI_CMD_CHECK_H

#include <stdint.h>

#include "cli_common.h"
#include "stem_check.h"
#include "tensorfile.h"

/* Options of `stem check` beyond the common ones, as given. */
typedef struct check_args {
    const char *in, *gpu, *json, *dtype;
    int have_tau, have_logit, have_out, have_lse, have_sigmas;
    double tau, logit, out, lse, sigmas;
    int have_show, have_heads, no_dense, verbose;
    long long show, head_begin, head_count;
    /* the declared arithmetic: --arith, and the places set apart from it
     * (--scoring, --logits-store, --scores, --p, --out-store, --lse-store);
     * --strict */
    const char *arith;
    const char *place[6];
    int strict;
} check_args;

/*
 * Consume the option of `stem check` at argv[*i]: one of its own (--tau,
 * --dtype, --heads, --json, ...) into *a, or a common one (cli_opts_parse)
 * into *o; --help and file names are the caller's.  Returns 1 when
 * consumed (*i moved past it), 0 when argv[*i] is none of them, -1 on a
 * bad value (message given through cli_error).  a must have been zeroed.
 */
int cli_check_opt(int argc, char **argv, int *i, check_args *a, cli_opts *o);

/* The options cli_check_opt reads beyond the common ones, one line each
 * (name and value), for a --help. */
void cli_check_opts_usage(FILE *fp);

/* Check the option values that need the whole command line (--dtype's
 * name).  CLI_OK, or CLI_USAGE after a message. */
int cli_check_args_final(const check_args *a);

/* Views of the GPU tensors of a case, as many as its file holds. */
typedef struct gpu_views {
    stem_tensor logits, mask, out, lse;
    stem_check_gpu gpu;
} gpu_views;

/* One case read and set up for stem_check.  The views point into fin and
 * fgpu; release with cli_check_free (safe on a zeroed struct). */
typedef struct check_case {
    tf_file fin, fgpu;
    const char *in, *gpu_path;  /* names for messages (borrowed) */
    stem_params p;              /* common options over the metadata's */
    stem_tensor q, k, v;
    stem_dims dm;
    gpu_views gv;
    stem_prec prec;             /* the GPU dtype judged by */
    const char *prec_source;    /* where it came from (static text) */
    const char *meta_note;      /* metadata parameters applied, or NULL */
    const char *meta_arith;     /* the arithmetic the GPU metadata names
                                   ("arith", a "backend", or AngelSlim's
                                   own "chunk_size"), or NULL */
    const char *arith_source;   /* which of those (static text), or NULL */
} check_case;

/*
 * Read IN and GPU (NULL or the same name: IN holds both) and set up *c:
 * the parameters the GPU metadata names, unless *o sets them; q, k, v; the
 * dims; the GPU tensors; the GPU dtype (a->dtype, the metadata, the
 * profile or q's).  Applies --threads.  CLI_OK, or CLI_USAGE (bad input)
 * after a message; *c then holds nothing to free.
 */
int cli_check_load(const check_args *a, const cli_opts *o, const char *in,
                   const char *gpu, check_case *c);

/*
 * Judge c with stem_check into *rep (stem_check_report_free releases it):
 * the query heads [head_begin, head_begin + head_count), or, with
 * head_count 0, those of a->heads (all when not given).  CLI_OK (rep's
 * verdict tells PASS or FAIL), or CLI_USAGE after a message (*rep then
 * holds nothing).
 */
int cli_check_judge(const check_args *a, const check_case *c,
                    int64_t head_begin, int64_t head_count,
                    stem_check_report *rep);

/* Release what cli_check_load allocated; *c is zeroed. */
void cli_check_free(check_case *c);

/* The report rendered as text to stdout (0), or -1 when out of memory. */
int cli_check_print(const stem_check_report *r, int verbose);

#endif /* STEM_CLI_CMD_CHECK_H */
