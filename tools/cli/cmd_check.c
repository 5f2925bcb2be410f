/*
 * cmd_check.c - `stem check IN [GPU]`: judge what a GPU Stem kernel produced
 * (block_logits, mask, out, lse) against the reference, as
 * docs/ALGORITHM.md section 5 says.  A thin layer over the library's
 * stem_check (include/stem_check.h): this file reads the files, builds
 * views of the tensors, fills the options from the command line and the
 * metadata, and prints or writes the library's report.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check_tensors.h"
#include "cli_common.h"
#include "commands.h"
#include "progress.h"
#include "stem_check.h"

static void check_usage(FILE *fp)
{
    fputs(
        "usage: stem check IN [GPU] [--dtype D] [--json REPORT.json] "
        "[options]\n"
        "\n"
        "IN holds q, k, v; GPU holds any of block_logits, mask, out, lse as a\n"
        "GPU kernel produced them (one file may hold both: then give it once).\n"
        "Files: safetensors, .npy, or a directory of .npy files (an optional\n"
        "metadata.json there gives string metadata such as \"dtype\").\n"
        "Shapes: block_logits and mask [Hq,Qb,Kb] (logits F32, F64, BF16 or\n"
        "F16; mask U8 or BOOL), out [Hq,N,d] and lse [Hq,N]; with --layout nhd\n"
        "out is [N,Hq,d] and lse [Hq,N] (flash-attention's) or [N,Hq], told\n"
        "apart by shape.  Each may carry a leading batch dimension of 1.\n"
        "\n"
        "Each stage is judged on the GPU's own input to it, as\n"
        "docs/ALGORITHM.md section 5 says, so a fault is pinned to the stage\n"
        "that made it:\n"
        "  logits     the -inf pattern exactly; finite entries within a limit\n"
        "             derived from the GPU's precisions and the magnitudes\n"
        "  selection  the profile's rule on the GPU's own logits must give\n"
        "             the GPU's mask\n"
        "  mask       sinks, window and diagonal exactly; any other difference\n"
        "             an exchange of blocks within tau of the row threshold;\n"
        "             each row keeps as many blocks as the budget says\n"
        "  out, lse   every row against attention under the GPU's own mask,\n"
        "             with a limit per row from the GPU dtype's rounding; and\n"
        "             an ignored-mask test per head (a head closer to dense\n"
        "             attention than to the masked output ignores the mask; a\n"
        "             head far from both is wrong output)\n"
        "PASS means every difference is explained by rounding.\n"
        "\n"
        "  --dtype D        the GPU's working dtype: bf16, fp16, fp32 or fp8\n"
        "                   (e4m3 attention as hpc-ops runs it).  Default: the\n"
        "                   GPU file's metadata \"dtype\" (with --profile hpc-ops\n"
        "                   a \"bf16\" there means its FP8 attention: fp8), else\n"
        "                   fp8 for --profile hpc-ops, else the dtype of q\n"
        "  --tau T          one fixed tie band instead of the derived one\n"
        "  --logit-tol X    absolute logit limit instead of the derived one\n"
        "  --out-tol X      per-row relative L2 limit of out instead\n"
        "  --lse-tol X      absolute lse limit instead\n"
        "  --sigmas K       K of the derived row limits (default 4)\n"
        "  --heads A:B      judge query heads A..B-1 only (--heads N: head N)\n"
        "  --no-dense       skip the dense pass (and the ignored-mask test)\n"
        "  --show N         offenders listed per stage (default 20)\n"
        "  --verbose        every stage with its figures, also on a PASS\n"
        "  --json PATH      the report as JSON too (written atomically)\n"
        "Parameters the GPU metadata names apply unless given as options:\n"
        "alpha, keep_ratio, block_size, stride, and initial_blocks / sinks,\n"
        "window_size / window, lambda_mag / lambda, prompt_blocks.\n"
        "\n"
        "Exit status: 0 every difference is explained by rounding, 1 a fault,\n"
        "2 bad input or usage.\n\n",
        fp);
    cli_opts_usage(fp);
}

/* Options of `stem check` beyond the common ones. */
typedef struct check_args {
    const char *in, *gpu, *json, *dtype;
    int have_tau, have_logit, have_out, have_lse, have_sigmas;
    double tau, logit, out, lse, sigmas;
    int have_show, have_heads, no_dense, verbose;
    long long show, head_begin, head_count;
} check_args;

/* Parse "--heads A:B" (heads A..B-1) or "--heads N" (head N alone) into
 * a->head_begin / head_count.  0, or -1 with a message. */
static int parse_heads(const char *v, check_args *a)
{
    const char *colon = strchr(v, ':');
    long long b, e;
    if (!colon) {
        if (cli_parse_int("--heads", v, 0, 1ll << 40, &b) != 0)
            return -1;
        e = b + 1;
    } else {
        char lo[64];
        size_t n = (size_t)(colon - v);
        if (n == 0 || n >= sizeof(lo)) {
            cli_error("--heads: '%s' is not A:B or N", v);
            return -1;
        }
        memcpy(lo, v, n);
        lo[n] = '\0';
        if (cli_parse_int("--heads", lo, 0, 1ll << 40, &b) != 0 ||
            cli_parse_int("--heads", colon + 1, 0, 1ll << 40, &e) != 0)
            return -1;
        if (e <= b) {
            cli_error("--heads: '%s' names no head (need A < B)", v);
            return -1;
        }
    }
    a->head_begin = b;
    a->head_count = e - b;
    a->have_heads = 1;
    return 0;
}

/* Parse argv into *a and *o.  CLI_OK, or CLI_USAGE with a message; *help
 * set when --help was asked for. */
static int parse_args(int argc, char **argv, check_args *a, cli_opts *o,
                      int *help)
{
    const char *v;
    int r;
    memset(a, 0, sizeof(*a));
    for (int i = 1; i < argc;) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            *help = 1;
            return CLI_OK;
        }
        if (strcmp(argv[i], "--no-dense") == 0) {
            a->no_dense = 1;
            i++;
            continue;
        }
        if (strcmp(argv[i], "--verbose") == 0 || strcmp(argv[i], "-v") == 0) {
            a->verbose = 1;
            i++;
            continue;
        }
        struct {
            const char *name;
            double *x;
            int *have;
            double lo;
        } nums[] = {
            {"--tau", &a->tau, &a->have_tau, 0.0},
            {"--logit-tol", &a->logit, &a->have_logit, 0.0},
            {"--out-tol", &a->out, &a->have_out, 0.0},
            {"--lse-tol", &a->lse, &a->have_lse, 0.0},
            {"--sigmas", &a->sigmas, &a->have_sigmas, 1e-6},
        };
        int used = 0;
        for (size_t n = 0; n < sizeof(nums) / sizeof(nums[0]) && !used; n++) {
            if ((r = cli_opt_value(argc, argv, &i, nums[n].name, &v)) == 0)
                continue;
            if (r < 0 || cli_parse_double(nums[n].name, v, nums[n].lo, 1e30,
                                          nums[n].x) != 0)
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
            a->have_show = 1;
            continue;
        }
        if ((r = cli_opt_value(argc, argv, &i, "--heads", &v)) != 0) {
            if (r < 0 || parse_heads(v, a) != 0)
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
    stem_prec pr;
    if (a->dtype && stem_prec_from_name(a->dtype, &pr) != STEM_OK) {
        cli_error("check: --dtype: '%s' is not bf16, fp16, fp32 or fp8",
                  a->dtype);
        return CLI_USAGE;
    }
    return CLI_OK;
}

/* Views of the GPU tensors of g, as many as it holds. */
typedef struct gpu_views {
    stem_tensor logits, mask, out, lse;
    stem_check_gpu gpu;
} gpu_views;

/*
 * Build views of g's block_logits, mask, out and lse for the dims dm
 * (layout CLI_LAYOUT_NHD: out [N, H, d], lse [H, N] or [N, H]).
 * CLI_OK, or CLI_USAGE with a message naming path (a bad tensor, or none).
 */
static int gpu_views_build(const tf_file *g, const char *path,
                           const stem_dims *dm, int layout, gpu_views *gv)
{
    char err[256];
    const tf_tensor *t;
    int nhd = layout == CLI_LAYOUT_NHD;
    int64_t blk[3] = {dm->hq, dm->qb, dm->kb};
    memset(gv, 0, sizeof(*gv));
    if ((t = tf_find(g, "block_logits"))) {
        if (ct_view(t, blk, 3, 0, 0, &gv->logits, err, sizeof(err)))
            goto bad;
        gv->gpu.logits = &gv->logits;
    }
    if ((t = tf_find(g, "mask"))) {
        if (ct_view(t, blk, 3, 0, 1, &gv->mask, err, sizeof(err)))
            goto bad;
        gv->gpu.mask = &gv->mask;
    }
    if ((t = tf_find(g, "out"))) {
        int64_t s[3] = {dm->hq, dm->lq, dm->d};
        if (ct_view(t, s, 3, nhd, 0, &gv->out, err, sizeof(err)))
            goto bad;
        gv->gpu.out = &gv->out;
    }
    if ((t = tf_find(g, "lse"))) {
        int64_t s[2] = {dm->hq, dm->lq};
        /* nhd: [H, N] (flash-attention) or [N, H], by the last axis */
        int swap = nhd && t->ndim >= 1 && t->shape[t->ndim - 1] == dm->hq &&
                   dm->hq != dm->lq;
        if (ct_view(t, s, 2, swap, 0, &gv->lse, err, sizeof(err))) {
            if (!nhd)
                goto bad;
            char err2[256];
            if (ct_view(t, s, 2, !swap, 0, &gv->lse, err2, sizeof(err2)))
                goto bad;
        }
        gv->gpu.lse = &gv->lse;
    }
    if (!gv->gpu.logits && !gv->gpu.mask && !gv->gpu.out && !gv->gpu.lse) {
        cli_error("check: %s holds none of block_logits, mask, out, lse",
                  path);
        return CLI_USAGE;
    }
    return CLI_OK;
bad:
    cli_error("check: %s: %s", path, err);
    return CLI_USAGE;
}

/* The GPU dtype to judge by and where it came from (see check_usage). */
static stem_prec pick_dtype(const check_args *a, const tf_file *g,
                            const stem_params *p, const stem_tensor *q,
                            const char **source)
{
    stem_prec pr;
    const char *meta = tf_meta(g, "dtype");
    int hpc = p->profile == STEM_PROFILE_HPCOPS;
    if (a->dtype && stem_prec_from_name(a->dtype, &pr) == STEM_OK) {
        *source = "--dtype";
        return pr;
    }
    if (meta && stem_prec_from_name(meta, &pr) == STEM_OK) {
        if (hpc && pr == STEM_PREC_BF16) {
            *source = "profile hpc-ops: FP8 attention, bf16 output as the "
                      "GPU metadata says";
            return STEM_PREC_FP8;
        }
        *source = "GPU metadata";
        return pr;
    }
    if (hpc) {
        *source = "profile hpc-ops: FP8 attention";
        return STEM_PREC_FP8;
    }
    *source = "input q";
    return q->dtype == STEM_BF16  ? STEM_PREC_BF16
           : q->dtype == STEM_F16 ? STEM_PREC_FP16
                                  : STEM_PREC_FP32;
}

/* Options from the dtype and the command line.  CLI_OK or CLI_USAGE. */
static int fill_options(const check_args *a, stem_prec pr,
                        const stem_dims *dm, stem_check_options *opt)
{
    if (stem_check_options_init(opt, pr) != STEM_OK) {
        cli_error("check: cannot set up the options for %s",
                  stem_prec_name(pr));
        return CLI_USAGE;
    }
    if (a->have_tau)
        opt->tau = a->tau;
    if (a->have_logit)
        opt->logit_tol = a->logit;
    if (a->have_out)
        opt->out_tol = a->out;
    if (a->have_lse)
        opt->lse_tol = a->lse;
    if (a->have_sigmas)
        opt->sigmas = a->sigmas;
    if (a->have_show)
        opt->max_items = (int)a->show;
    if (a->no_dense)
        opt->dense_test = 0;
    if (a->have_heads) {
        if (a->head_begin + a->head_count > dm->hq) {
            cli_error("check: --heads %lld:%lld: the case has %lld query "
                      "heads (0:%lld)", a->head_begin,
                      a->head_begin + a->head_count, (long long)dm->hq,
                      (long long)dm->hq);
            return CLI_USAGE;
        }
        opt->head_begin = a->head_begin;
        opt->head_count = a->head_count;
    }
    return CLI_OK;
}

/* Render the report as text to stdout.  0, or -1 on no memory. */
static int print_report(const stem_check_report *r, int verbose)
{
    size_t n = stem_check_report_text(r, verbose, NULL, 0);
    char *buf = malloc(n + 1);
    if (!buf)
        return -1;
    stem_check_report_text(r, verbose, buf, n + 1);
    fputs(buf, stdout);
    if (n > 0 && buf[n - 1] != '\n')
        fputc('\n', stdout);
    free(buf);
    return 0;
}

/* Write the JSON report to path atomically.  0, or -1 with err set. */
static int write_json(const stem_check_report *r, const char *path,
                      char *err, size_t errlen)
{
    size_t n = stem_check_report_json(r, NULL, 0);
    char *buf = malloc(n + 1);
    if (!buf) {
        snprintf(err, errlen, "out of memory building the JSON report");
        return -1;
    }
    stem_check_report_json(r, buf, n + 1);
    int nl = n == 0 || buf[n - 1] != '\n';
    const void *ptrs[2] = {buf, "\n"};
    size_t lens[2] = {n, 1};
    int rc = tf_write_atomic(path, nl ? 2 : 1, ptrs, lens, err, errlen);
    free(buf);
    return rc;
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
    const char *gpu_path = a.gpu ? a.gpu : a.in;
    tf_file fin = {0}, fgpu = {0};
    const tf_file *g = &fin;
    stem_check_report rep;
    memset(&rep, 0, sizeof(rep));
    char err[512];
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
    const char *meta_note = ct_apply_meta_params(g, &o);
    stem_params p;
    if (cli_opts_resolve(&o, &p) != CLI_OK)
        goto done;
    stem_tensor q, k, v;
    if (cli_load_qkv(&fin, o.layout, &q, &k, &v, err, sizeof(err)) != 0) {
        cli_error("check: %s: %s", a.in, err);
        goto done;
    }
    stem_dims dm;
    stem_status st = stem_dims_get(&p, &q, &k, &v, 1, &dm);
    if (st != STEM_OK) {
        cli_error("check: %s: q %lldx%lldx%lld, k %lldx%lldx%lld: %s", a.in,
                  (long long)q.heads, (long long)q.tokens, (long long)q.dim,
                  (long long)k.heads, (long long)k.tokens, (long long)k.dim,
                  stem_strerror(st));
        goto done;
    }
    gpu_views gv;
    if (gpu_views_build(g, gpu_path, &dm, o.layout, &gv) != CLI_OK)
        goto done;
    const char *dsrc;
    stem_prec pr = pick_dtype(&a, g, &p, &q, &dsrc);
    stem_check_options opt;
    if (fill_options(&a, pr, &dm, &opt) != CLI_OK)
        goto done;

    cli_progress("checking");
    st = stem_check(&p, &q, &k, &v, &gv.gpu, &opt, &rep);
    cli_progress_done();
    if (st != STEM_OK) {
        cli_error("check: %s against %s: %s", gpu_path, a.in,
                  stem_strerror(st));
        goto done;
    }
    printf("stem check: %s against %s\n", gpu_path, a.in);
    printf("profile %s, GPU dtype %s (from %s)\n", stem_profile_name(p.profile),
           stem_prec_name(pr), dsrc);
    if (meta_note)
        printf("%s\n", meta_note);
    if (print_report(&rep, a.verbose) != 0) {
        cli_error("check: out of memory rendering the report");
        goto done;
    }
    rc = rep.verdict == STEM_CHECK_PASS ? CLI_OK : CLI_FAIL;
    if (a.json && write_json(&rep, a.json, err, sizeof(err)) != 0) {
        cli_error("check: %s", err);
        rc = CLI_USAGE;
    }
done:
    cli_progress_done();
    fflush(stdout);
    stem_check_report_free(&rep);
    tf_free(&fin);
    tf_free(&fgpu);
    return rc;
}
