/*
 * cmd_check.c - `stem check IN GPU`: validate what a GPU Stem kernel
 * produced (block_logits, mask, out, lse) against the reference, telling
 * rounding ties from faults as SPEC.md section 5 says.  The comparisons
 * live in check.c, the report in check_report.c; this file reads the files
 * and computes the reference.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "check_report.h"
#include "progress.h"
#include "check_tensors.h"
#include "cli_common.h"
#include "commands.h"

static void check_usage(FILE *fp)
{
    fputs(
        "usage: stem check IN [GPU] [--tau T] [--json REPORT.json] [options]\n"
        "\n"
        "IN holds q, k, v; GPU holds any of block_logits, mask, out, lse as a\n"
        "GPU kernel produced them (one file may hold both: then give it once).\n"
        "Files: safetensors, .npy, or a directory of .npy files (an optional\n"
        "metadata.json there gives string metadata such as \"dtype\").\n"
        "Shapes: block_logits and mask [Hq,Qb,Kb] (mask U8 or BOOL), out\n"
        "[Hq,N,d] and lse [Hq,N] ([N,Hq,d] and [N,Hq] with --layout nhd),\n"
        "each optionally with a leading batch dimension of 1.\n"
        "\n"
        "Checks (SPEC.md section 5):\n"
        "  logits  the -inf pattern must match; largest finite difference\n"
        "  mask    sinks and window must match; any other block kept by one\n"
        "          side only is a tie when its reference logit lies within\n"
        "          tau of the row threshold (the budget-th largest reference\n"
        "          logit), else a fault\n"
        "  out     per-head relative L2 against the reference computed with\n"
        "          the GPU's own mask; plus an ignored-mask test: with M that\n"
        "          reference, D dense attention and G the GPU output, a head\n"
        "          where ||G-D|| < ||G-M|| (G past the midpoint from M to D)\n"
        "          is a fault, provided ||D-M|| > 1e-5 ||M|| and the rounding\n"
        "          noise cannot move G across the midpoint (six spreads).\n"
        "          A plain tolerance cannot see this: masked and dense\n"
        "          outputs often differ by less than bf16 rounding.\n"
        "  lse     largest absolute difference\n"
        "\n"
        "Tolerances default by the GPU dtype: --dtype, else the GPU file's\n"
        "metadata \"dtype\", else the dtype of q.\n"
        "            logits   tau     out rel L2   lse\n"
        "  bf16      0.06     0.05    3e-2         5e-2\n"
        "  fp16      0.01     0.01    5e-3         1e-2\n"
        "  fp32      1e-4     1e-4    1e-4         1e-4\n"
        "  --dtype bf16|fp16|fp32   --tau T   --logit-tol X   --out-tol X\n"
        "  --lse-tol X   --show N (offenders listed per section, default 5)\n"
        "  --json PATH   the report as JSON too\n"
        "Parameters the GPU metadata names (alpha, keep_ratio, block_size,\n"
        "stride, initial_blocks, window_size, lambda_mag) apply unless given\n"
        "as options.\n"
        "\n"
        "Exit status: 0 every difference is explained by rounding, 1 a fault,\n"
        "2 bad input or usage.\n\n",
        fp);
    cli_opts_usage(fp);
}

/* Options of `stem check` beyond the common ones. */
typedef struct check_args {
    const char *in, *gpu, *json, *dtype;
    int have_tau, have_logit, have_out, have_lse;
    double tau, logit, out, lse;
    long long show;
} check_args;

static int parse_args(int argc, char **argv, check_args *a, cli_opts *o,
                      int *help)
{
    const char *v;
    int r;
    memset(a, 0, sizeof(*a));
    a->show = 5;
    for (int i = 1; i < argc;) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            *help = 1;
            return CLI_OK;
        }
        struct {
            const char *name;
            double *x;
            int *have;
        } nums[] = {
            {"--tau", &a->tau, &a->have_tau},
            {"--logit-tol", &a->logit, &a->have_logit},
            {"--out-tol", &a->out, &a->have_out},
            {"--lse-tol", &a->lse, &a->have_lse},
        };
        int used = 0;
        for (size_t n = 0; n < sizeof(nums) / sizeof(nums[0]) && !used; n++) {
            if ((r = cli_opt_value(argc, argv, &i, nums[n].name, &v)) == 0)
                continue;
            if (r < 0 ||
                cli_parse_double(nums[n].name, v, 0.0, 1e30, nums[n].x) != 0)
                return CLI_USAGE;
            *nums[n].have = used = 1;
        }
        if (used)
            continue;
        if ((r = cli_opt_value(argc, argv, &i, "--json", &a->json)) ||
            (r = cli_opt_value(argc, argv, &i, "--dtype", &a->dtype))) {
            if (r < 0)
                return CLI_USAGE;
            continue;
        }
        if ((r = cli_opt_value(argc, argv, &i, "--show", &v)) != 0) {
            if (r < 0 || cli_parse_int("--show", v, 0, 100000, &a->show))
                return CLI_USAGE;
            continue;
        }
        if ((r = cli_opts_parse(o, argc, argv, &i)) != 0) {
            if (r < 0)
                return CLI_USAGE;
            continue;
        }
        if (argv[i][0] == '-' && argv[i][1] != '\0') {
            cli_error("check: unknown option '%s'", argv[i]);
            return CLI_USAGE;
        }
        if (!a->in)
            a->in = argv[i];
        else if (!a->gpu)
            a->gpu = argv[i];
        else {
            cli_error("check: more than two files ('%s')", argv[i]);
            return CLI_USAGE;
        }
        i++;
    }
    if (!a->in) {
        cli_error("check: an input file is required");
        check_usage(stderr);
        return CLI_USAGE;
    }
    if (a->dtype && !check_dtype_canonical(a->dtype)) {
        cli_error("check: --dtype: '%s' is not bf16, fp16 or fp32", a->dtype);
        return CLI_USAGE;
    }
    return CLI_OK;
}

/* Buffers of one check; all owned here. */
typedef struct check_bufs {
    float *ref_logits, *gpu_logits, *gpu_out, *gpu_lse;
    float *ref_out, *ref_lse, *dense_out;
    uint8_t *ref_mask, *gpu_mask, *att_mask;
    int32_t *budget;
} check_bufs;

static void bufs_free(check_bufs *b)
{
    free(b->ref_logits), free(b->gpu_logits), free(b->gpu_out);
    free(b->gpu_lse), free(b->ref_out), free(b->ref_lse);
    free(b->dense_out), free(b->ref_mask), free(b->gpu_mask);
    free(b->att_mask), free(b->budget);
}

/* Read the GPU tensors present into b (contiguous, hnd); CLI_USAGE on a
 * bad tensor. */
static int load_gpu(const tf_file *g, const stem_dims *dm, int layout,
                    check_bufs *b, check_report *rep)
{
    char err[256];
    const tf_tensor *t;
    int64_t blk[3] = {dm->hq, dm->qb, dm->kb};
    if ((t = tf_find(g, "block_logits"))) {
        if (ct_load_f32(t, blk, 3, 0, &b->gpu_logits, err, sizeof(err)))
            goto bad;
        rep->have_logits = 1;
    }
    if ((t = tf_find(g, "mask"))) {
        if (ct_load_mask(t, blk, &b->gpu_mask, err, sizeof(err)))
            goto bad;
        rep->have_mask = 1;
    }
    if ((t = tf_find(g, "out"))) {
        int64_t s[3] = {dm->hq, dm->lq, dm->d};
        if (ct_load_f32(t, s, 3, layout == CLI_LAYOUT_NHD, &b->gpu_out, err,
                        sizeof(err)))
            goto bad;
        rep->have_out = 1;
    }
    if ((t = tf_find(g, "lse"))) {
        int64_t s[2] = {dm->hq, dm->lq};
        if (ct_load_f32(t, s, 2, layout == CLI_LAYOUT_NHD, &b->gpu_lse, err,
                        sizeof(err)))
            goto bad;
        rep->have_lse = 1;
    }
    if (!rep->have_logits && !rep->have_mask && !rep->have_out &&
        !rep->have_lse) {
        cli_error("check: %s holds none of block_logits, mask, out, lse",
                  rep->gpu_path);
        return CLI_USAGE;
    }
    return CLI_OK;
bad:
    cli_error("check: %s: %s", rep->gpu_path, err);
    return CLI_USAGE;
}

/* Compute the references the GPU tensors need and compare. */
static int compare_all(const stem_params *p, const stem_tensor *q,
                       const stem_tensor *k, const stem_tensor *v,
                       check_bufs *b, check_report *rep)
{
    const stem_dims *dm = &rep->dims;
    size_t nblk = (size_t)(dm->hq * dm->qb * dm->kb);
    size_t nout = (size_t)(dm->hq * dm->lq * dm->d);
    size_t nlse = (size_t)(dm->hq * dm->lq);
    int64_t nb = p->prompt_blocks > 0 ? p->prompt_blocks : dm->kb;
    int nshow = rep->nshow;
    b->ref_logits = malloc(nblk * sizeof(float));
    b->ref_mask = malloc(nblk);
    b->budget = malloc((size_t)nb * sizeof(int32_t));
    if (!b->ref_logits || !b->ref_mask || !b->budget)
        goto nomem;
    stem_status st;
    cli_progress("block logits");
    if ((st = stem_block_logits(p, q, k, v, b->ref_logits)) != STEM_OK ||
        (st = stem_budget(p, dm->kb, b->budget)) != STEM_OK ||
        (st = stem_select(p, dm, b->ref_logits, b->ref_mask, NULL, NULL)) !=
            STEM_OK)
        goto lib;
    if (rep->have_logits &&
        check_logits(b->ref_logits, b->gpu_logits, dm->hq, dm->qb, dm->kb,
                     &rep->logits) != 0)
        goto nomem;
    if (rep->have_mask) {
        check_mask_geom g = {dm->hq, dm->qb, dm->kb, dm->offset / p->block,
                             p->sinks, p->window, p->keep_diagonal};
        if (check_mask(&g, b->ref_logits, b->budget, nb, b->ref_mask,
                       b->gpu_mask, rep->tol.tau, &rep->mask) != 0)
            goto nomem;
    }
    if (!rep->have_out && !rep->have_lse)
        return CLI_OK;
    /* The attention reference runs under the GPU's mask (with any missing
     * diagonal put back, which the mask section already counts as a
     * fault), or under the reference mask when the GPU gave none. */
    const uint8_t *am = b->ref_mask;
    if (rep->have_mask) {
        if (!(b->att_mask = malloc(nblk)))
            goto nomem;
        memcpy(b->att_mask, b->gpu_mask, nblk);
        int64_t pb = dm->offset / p->block;
        for (int64_t r = 0; r < dm->hq * dm->qb; r++) {
            int64_t I = r % dm->qb, pos = I + pb;
            if (pos < dm->kb && !b->att_mask[r * dm->kb + pos]) {
                b->att_mask[r * dm->kb + pos] = 1;
                rep->diag_added = 1;
            }
        }
        am = b->att_mask;
    } else {
        rep->out_vs_ref_mask = 1;
    }
    b->ref_out = malloc(nout * sizeof(float));
    b->ref_lse = malloc(nlse * sizeof(float));
    if (!b->ref_out || !b->ref_lse)
        goto nomem;
    stem_tensor ot = stem_tensor_hnd(b->ref_out, STEM_F32, dm->hq, dm->lq,
                                     dm->d);
    cli_progress("masked attention");
    if ((st = stem_attention_sparse(p, q, k, v, am, &ot, b->ref_lse)) !=
        STEM_OK)
        goto lib;
    if (rep->have_out) {
        if (!(b->dense_out = malloc(nout * sizeof(float))))
            goto nomem;
        stem_tensor dt = stem_tensor_hnd(b->dense_out, STEM_F32, dm->hq,
                                         dm->lq, dm->d);
        cli_progress("dense attention");
        if ((st = stem_attention_dense(p, q, k, v, &dt, NULL)) != STEM_OK)
            goto lib;
        cli_progress("comparing");
        if (check_output(b->gpu_out, b->ref_out, b->dense_out, dm->hq,
                         dm->lq, dm->d, nshow, &rep->out) != 0)
            goto nomem;
    }
    if (rep->have_lse &&
        check_lse(b->gpu_lse, b->ref_lse, dm->hq, dm->lq, nshow,
                  &rep->lse) != 0)
        goto nomem;
    return CLI_OK;
nomem:
    cli_error("check: out of memory");
    return CLI_USAGE;
lib:
    cli_error("check: %s: reference: %s", rep->in_path, stem_strerror(st));
    return CLI_USAGE;
}

static void set_verdicts(check_report *r)
{
    const check_tol *t = &r->tol;
    if (r->have_logits)
        r->logits_fault = r->logits.pattern_mismatch > 0 ||
                          r->logits.nan_gpu > 0 || r->logits.max_abs > t->logit;
    if (r->have_mask)
        r->mask_fault = r->mask.n_fault > 0;
    if (r->have_out) {
        int over = r->out.nonfinite > 0 || r->out.any_dense;
        for (int64_t h = 0; h < r->out.hq; h++)
            over |= !(r->out.head_rel_l2[h] <= t->out_rel_l2);
        r->out_fault = over;
    }
    if (r->have_lse)
        r->lse_fault = r->lse.nonfinite > 0 || !(r->lse.max_abs <= t->lse_abs);
}

/* `stem check`; see check_usage. */
int cmd_check(int argc, char **argv)
{
    check_args a;
    cli_opts o;
    int help = 0;
    cli_opts_init(&o);
    int rc = parse_args(argc, argv, &a, &o, &help);
    if (help) {
        check_usage(stdout);
        return CLI_OK;
    }
    if (rc != CLI_OK)
        return rc;
    check_report rep;
    memset(&rep, 0, sizeof(rep));
    rep.in_path = a.in;
    rep.gpu_path = a.gpu ? a.gpu : a.in;
    rep.nshow = (int)a.show;
    tf_file fin = {0}, fgpu = {0};
    const tf_file *g = &fin;
    check_bufs b;
    memset(&b, 0, sizeof(b));
    char err[512];
    double t0 = cli_now();
    rc = CLI_USAGE;
    cli_progress_start("stem check");
    cli_progress("reading");
    if (ct_read(a.in, &fin, err, sizeof(err)) != 0) {
        cli_error("check: %s", err);
        goto done;
    }
    if (a.gpu && strcmp(a.gpu, a.in) != 0) {
        if (ct_read(a.gpu, &fgpu, err, sizeof(err)) != 0) {
            cli_error("check: %s", err);
            goto done;
        }
        g = &fgpu;
    }
    rep.params_source = ct_apply_meta_params(g, &o);
    stem_params p;
    if (cli_opts_resolve(&o, &p) != CLI_OK)
        goto done;
    stem_tensor q, k, v;
    if (cli_load_qkv(&fin, o.layout, &q, &k, &v, err, sizeof(err)) != 0) {
        cli_error("check: %s: %s", a.in, err);
        goto done;
    }
    stem_status st = stem_dims_get(&p, &q, &k, &v, 1, &rep.dims);
    if (st != STEM_OK) {
        cli_error("check: %s: q %lldx%lldx%lld, k %lldx%lldx%lld: %s", a.in,
                  (long long)q.heads, (long long)q.tokens, (long long)q.dim,
                  (long long)k.heads, (long long)k.tokens, (long long)k.dim,
                  stem_strerror(st));
        goto done;
    }
    rep.params = p;
    if (a.dtype) {
        rep.dtype = check_dtype_canonical(a.dtype);
        rep.dtype_source = "--dtype";
    } else if (check_dtype_canonical(tf_meta(g, "dtype"))) {
        rep.dtype = check_dtype_canonical(tf_meta(g, "dtype"));
        rep.dtype_source = "GPU metadata";
    } else {
        rep.dtype = q.dtype == STEM_BF16  ? "bf16"
                    : q.dtype == STEM_F16 ? "fp16"
                                          : "fp32";
        rep.dtype_source = "input q";
    }
    check_tol_for_dtype(rep.dtype, &rep.tol);
    if (a.have_tau)
        rep.tol.tau = a.tau;
    if (a.have_logit)
        rep.tol.logit = a.logit;
    if (a.have_out)
        rep.tol.out_rel_l2 = a.out;
    if (a.have_lse)
        rep.tol.lse_abs = a.lse;
    if ((rc = load_gpu(g, &rep.dims, o.layout, &b, &rep)) != CLI_OK)
        goto done;
    if ((rc = compare_all(&p, &q, &k, &v, &b, &rep)) != CLI_OK)
        goto done;
    set_verdicts(&rep);
    rep.seconds = cli_now() - t0;
    cli_progress_done();
    check_report_text(stdout, &rep);
    rc = check_report_failed(&rep) ? CLI_FAIL : CLI_OK;
    if (a.json && check_report_json(&rep, a.json, err, sizeof(err)) != 0) {
        cli_error("check: %s", err);
        rc = CLI_USAGE;
    }
done:
    cli_progress_done();
    check_mask_result_free(&rep.mask);
    check_out_result_free(&rep.out);
    check_lse_result_free(&rep.lse);
    bufs_free(&b);
    tf_free(&fin);
    tf_free(&fgpu);
    return rc;
}
