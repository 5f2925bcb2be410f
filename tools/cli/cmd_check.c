/*
 * cmd_check.c - `stem check IN [GPU]`: judge what a GPU Stem kernel produced
 * (block_logits, mask, out, lse) against the reference, as
 * docs/ALGORITHM.md section 5 says.  A thin layer over the library's
 * stem_check (include/stem_check.h): this file reads the files, builds
 * views of the tensors, fills the options from the command line and the
 * metadata, and prints or writes the library's report.
 */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "check_tensors.h"
#include "cli_common.h"
#include "cmd_check.h"
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
        "  --arith A        where the kernel rounds: flash (FlashAttention,\n"
        "                   FlexAttention, Triton: float32 scores and lse, P\n"
        "                   and out in the dtype), angelslim (scoring, stored\n"
        "                   logits and scores in the dtype too) or hpc-ops\n"
        "                   (FP8 P).  Default: the GPU metadata's \"arith\",\n"
        "                   else hpc-ops for that profile or an fp8 dtype,\n"
        "                   angelslim when every GPU logit is a value of the\n"
        "                   dtype, else flash.  The report names it, and says\n"
        "                   when the errors fit another one\n"
        "  --scoring P, --logits-store P, --scores P, --p P, --out-store P,\n"
        "  --lse-store P    one place of the arithmetic set apart from --arith\n"
        "                   (P: fp32, bf16, fp16 or fp8), e.g. --scores bf16\n"
        "  --strict         rows the check could not decide (mask rows whose\n"
        "                   differences lie within rounding of the threshold,\n"
        "                   with no GPU logits to tell) and systematic tests\n"
        "                   left undecided by the rounding noise fail\n"
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
        "Exit status: 0 every difference is explained by rounding, 1 a fault\n"
        "(or, with --strict, rows or tests left undecided), 2 bad input or usage, 3 an\n"
        "internal failure (out of memory, an I/O error).\n\n",
        fp);
    cli_opts_usage(fp);
}

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

static int take_heads(void *base, const char *opt, const char *v)
{
    return parse_heads(v, base);
}

#define ARG(f) offsetof(check_args, f)
#define NO_HAVE CLI_OPT_NO_HAVE

/* The option grammar of stem check, which stem-mpi check shares (through
 * cli_check_opt, and cli_check_opts_usage in its --help). */
static const cli_opt_spec check_opts[] = {
    {"--no-dense", NULL, NULL, CLI_OPT_FLAG, ARG(no_dense), NO_HAVE, 0, 0,
     NULL, NULL},
    {"--verbose", "-v", NULL, CLI_OPT_FLAG, ARG(verbose), NO_HAVE, 0, 0,
     NULL, NULL},
    {"--tau", NULL, "T", CLI_OPT_NUM, ARG(tau), ARG(have_tau), 0.0, 1e30,
     NULL, NULL},
    {"--logit-tol", NULL, "X", CLI_OPT_NUM, ARG(logit), ARG(have_logit), 0.0,
     1e30, NULL, NULL},
    {"--out-tol", NULL, "X", CLI_OPT_NUM, ARG(out), ARG(have_out), 0.0, 1e30,
     NULL, NULL},
    {"--lse-tol", NULL, "X", CLI_OPT_NUM, ARG(lse), ARG(have_lse), 0.0, 1e30,
     NULL, NULL},
    {"--sigmas", NULL, "S", CLI_OPT_NUM, ARG(sigmas), ARG(have_sigmas), 1e-6,
     1e30, NULL, NULL},
    {"--show", NULL, "N", CLI_OPT_INT, ARG(show), ARG(have_show), 0, 100000,
     NULL, NULL},
    {"--json", NULL, "FILE", CLI_OPT_TEXT, ARG(json), NO_HAVE, 0, 0, NULL,
     NULL},
    {"--dtype", NULL, "D", CLI_OPT_TEXT, ARG(dtype), NO_HAVE, 0, 0, NULL,
     NULL},
    {"--heads", NULL, "A:B", CLI_OPT_CALL, 0, NO_HAVE, 0, 0, take_heads,
     NULL},
    {"--arith", NULL, "A", CLI_OPT_TEXT, ARG(arith), NO_HAVE, 0, 0, NULL,
     NULL},
    {"--scoring", NULL, "D", CLI_OPT_TEXT, ARG(place[0]), NO_HAVE, 0, 0,
     NULL, NULL},
    {"--logits-store", NULL, "D", CLI_OPT_TEXT, ARG(place[1]), NO_HAVE, 0, 0,
     NULL, NULL},
    {"--scores", NULL, "D", CLI_OPT_TEXT, ARG(place[2]), NO_HAVE, 0, 0,
     NULL, NULL},
    {"--p", NULL, "D", CLI_OPT_TEXT, ARG(place[3]), NO_HAVE, 0, 0, NULL,
     NULL},
    {"--out-store", NULL, "D", CLI_OPT_TEXT, ARG(place[4]), NO_HAVE, 0, 0,
     NULL, NULL},
    {"--lse-store", NULL, "D", CLI_OPT_TEXT, ARG(place[5]), NO_HAVE, 0, 0,
     NULL, NULL},
    {"--strict", NULL, NULL, CLI_OPT_FLAG, ARG(strict), NO_HAVE, 0, 0, NULL,
     NULL},
};
#define N_CHECK_OPTS (sizeof(check_opts) / sizeof(check_opts[0]))

/* The options naming a place where the kernel rounds, in the order of
 * check_args.place. */
static const char *const place_opt[6] = {"--scoring", "--logits-store",
                                         "--scores", "--p", "--out-store",
                                         "--lse-store"};

/* See cmd_check.h.  Every option of stem check is read here, by the
 * table above and cli_opts_parse, and only here: stem-mpi check reads its
 * options with this function too. */
int cli_check_opt(int argc, char **argv, int *ip, check_args *a, cli_opts *o)
{
    int r = cli_opt_take(check_opts, N_CHECK_OPTS, a, argc, argv, ip);
    return r != 0 ? r : cli_opts_parse(o, argc, argv, ip);
}

/* See cmd_check.h. */
void cli_check_opts_usage(FILE *fp)
{
    cli_opt_usage(check_opts, N_CHECK_OPTS, fp);
}

/* See cmd_check.h. */
int cli_check_args_final(const check_args *a)
{
    stem_prec pr;
    if (a->dtype && stem_prec_from_name(a->dtype, &pr) != STEM_OK) {
        cli_error("check: --dtype: '%s' is not bf16, fp16, fp32 or fp8",
                  a->dtype);
        return CLI_USAGE;
    }
    stem_arith ar;
    if (a->arith && stem_arith_from_name(a->arith, &ar) != STEM_OK) {
        cli_error("check: --arith: '%s' is not flash, angelslim or hpc-ops",
                  a->arith);
        return CLI_USAGE;
    }
    for (int i = 0; i < 6; i++)
        if (a->place[i] && stem_prec_from_name(a->place[i], &pr) != STEM_OK) {
            cli_error("check: %s: '%s' is not fp32, bf16, fp16 or fp8",
                      place_opt[i], a->place[i]);
            return CLI_USAGE;
        }
    return CLI_OK;
}

/* Parse argv into *a and *o.  CLI_OK, or CLI_USAGE with a message; *help
 * set when --help was asked for. */
static int parse_args(int argc, char **argv, check_args *a, cli_opts *o,
                      int *help)
{
    int r;
    memset(a, 0, sizeof(*a));
    for (int i = 1; i < argc;) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            *help = 1;
            return CLI_OK;
        }
        if ((r = cli_check_opt(argc, argv, &i, a, o)) != 0) {
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
    return cli_check_args_final(a);
}

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

/* Options from the dtype and the command line, for the query heads
 * [head_begin, head_begin + head_count) (head_count 0: a's --heads, or
 * all).  CLI_OK or CLI_USAGE. */
static int fill_options(const check_args *a, stem_prec pr,
                        const char *meta_arith, const stem_dims *dm,
                        int64_t head_begin, int64_t head_count,
                        stem_check_options *opt)
{
    if (stem_check_options_init(opt, pr) != STEM_OK) {
        cli_error("check: cannot set up the options for %s",
                  stem_prec_name(pr));
        return CLI_USAGE;
    }
    /* the arithmetic: --arith, else the metadata's "arith", else the
     * library's choice (flash; hpc-ops for that profile; angelslim for
     * logits stored in the dtype); then the places given one by one */
    stem_arith ar;
    const char *an = a->arith ? a->arith : meta_arith;
    if (an && stem_arith_from_name(an, &ar) == STEM_OK)
        stem_check_options_arith(opt, ar);
    stem_prec *places[6] = {&opt->score_prec, &opt->logit_store,
                            &opt->attn_score_prec, &opt->attn_prec,
                            &opt->out_store, &opt->lse_store};
    for (int i = 0; i < 6; i++)
        if (a->place[i]) {
            stem_prec_from_name(a->place[i], places[i]);
            opt->arith_auto = 0;
        }
    opt->strict = a->strict;
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
    if (head_count == 0 && a->have_heads) {
        head_begin = a->head_begin;
        head_count = a->head_count;
    }
    if (head_count > 0) {
        if (head_begin < 0 || head_begin + head_count > dm->hq) {
            cli_error("check: --heads %lld:%lld: the case has %lld query "
                      "heads (0:%lld)", (long long)head_begin,
                      (long long)(head_begin + head_count), (long long)dm->hq,
                      (long long)dm->hq);
            return CLI_USAGE;
        }
        opt->head_begin = head_begin;
        opt->head_count = head_count;
    }
    return CLI_OK;
}

/* See cmd_check.h. */
int cli_check_print(const stem_check_report *r, int verbose)
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
        tf_set_syserr(err, errlen, "out of memory building the JSON report");
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

/* See cmd_check.h. */
void cli_check_free(check_case *c)
{
    tf_free(&c->fin);
    tf_free(&c->fgpu);
    memset(c, 0, sizeof(*c));
}

/* See cmd_check.h. */
int cli_check_load(const check_args *a, const cli_opts *opts, const char *in,
                   const char *gpu, check_case *c)
{
    char err[512];
    cli_opts o = *opts;
    const tf_file *g = &c->fin;
    int rc = CLI_USAGE;
    memset(c, 0, sizeof(*c));
    c->in = in;
    c->gpu_path = gpu ? gpu : in;
    if (ct_read(in, &c->fin, err, sizeof(err)) != 0) {
        cli_error("check: %s", err);
        rc = cli_exit_tf();
        goto bad;
    }
    if (gpu && strcmp(gpu, in) != 0) {
        if (ct_read(gpu, &c->fgpu, err, sizeof(err)) != 0) {
            cli_error("check: %s", err);
            rc = cli_exit_tf();
            goto bad;
        }
        g = &c->fgpu;
    }
    if (ct_check_meta_params(g, c->gpu_path, &o) != CLI_OK)
        goto bad;
    c->meta_note = ct_apply_meta_params(g, &o);
    if (cli_opts_resolve(&o, &c->p) != CLI_OK)
        goto bad;
    if (cli_load_qkv(&c->fin, o.layout, &c->q, &c->k, &c->v, err,
                     sizeof(err)) != 0) {
        cli_error("check: %s: %s", in, err);
        goto bad;
    }
    stem_status st = stem_dims_get(&c->p, &c->q, &c->k, &c->v, 1, &c->dm);
    if (st != STEM_OK) {
        rc = cli_status_error("check", in, st);
        if (c->meta_note)
            cli_error("check: (%s)", c->meta_note);
        goto bad;
    }
    if (gpu_views_build(g, c->gpu_path, &c->dm, o.layout, &c->gv) != CLI_OK)
        goto bad;
    c->prec = pick_dtype(a, g, &c->p, &c->q, &c->prec_source);
    stem_arith ar;
    const char *be = tf_meta(g, "backend");
    c->meta_arith = tf_meta(g, "arith");
    c->arith_source = "GPU metadata \"arith\"";
    if (c->meta_arith && stem_arith_from_name(c->meta_arith, &ar) != STEM_OK) {
        cli_error("check: %s: metadata arith '%s' is not flash, angelslim or "
                  "hpc-ops", c->gpu_path, c->meta_arith);
        goto bad;
    }
    if (!c->meta_arith && be && (strstr(be, "flex") || strstr(be, "flash"))) {
        c->meta_arith = "flash";
        c->arith_source = "GPU metadata \"backend\"";
    } else if (!c->meta_arith && be && strstr(be, "angelslim")) {
        c->meta_arith = "angelslim";
        c->arith_source = "GPU metadata \"backend\"";
    } else if (!c->meta_arith && tf_meta(g, "chunk_size") && !c->gv.gpu.logits &&
               c->p.profile != STEM_PROFILE_HPCOPS) {
        /* a parameter of AngelSlim's torch backend alone; with logits the
         * library tells from them (stored in the dtype), as in process */
        c->meta_arith = "angelslim";
        c->arith_source = "GPU metadata \"chunk_size\", AngelSlim's";
    }
    if (!c->meta_arith)
        c->arith_source = NULL;
    return CLI_OK;
bad:
    cli_check_free(c);
    return rc;
}

/* See cmd_check.h. */
int cli_check_judge(const check_args *a, const check_case *c,
                    int64_t head_begin, int64_t head_count,
                    stem_check_report *rep)
{
    stem_check_options opt;
    memset(rep, 0, sizeof(*rep));
    if (fill_options(a, c->prec, c->meta_arith, &c->dm, head_begin, head_count, &opt) !=
        CLI_OK)
        return CLI_USAGE;
    stem_status st = stem_check(&c->p, &c->q, &c->k, &c->v, &c->gv.gpu,
                                &opt, rep);
    if (st != STEM_OK) {
        stem_check_report_free(rep);
        char what[1024];
        snprintf(what, sizeof(what), "%s against %s", c->gpu_path, c->in);
        return cli_status_error("check", what, st);
    }
    return CLI_OK;
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
    check_case c;
    stem_check_report rep;
    memset(&rep, 0, sizeof(rep));
    char err[512];
    cli_progress_start("stem check");
    cli_progress("reading");
    rc = cli_check_load(&a, &o, a.in, a.gpu, &c);
    if (rc != CLI_OK)
        goto done;
    cli_progress("checking");
    rc = cli_check_judge(&a, &c, 0, 0, &rep);
    cli_progress_done();
    if (rc != CLI_OK)
        goto done;
    printf("stem check: %s against %s\n", c.gpu_path, a.in);
    printf("profile %s, GPU dtype %s (from %s)\n",
           stem_profile_name(c.p.profile), stem_prec_name(c.prec),
           c.prec_source);
    if (c.meta_note)
        printf("%s\n", c.meta_note);
    if (a.arith)
        printf("arithmetic %s (from --arith)\n", a.arith);
    else if (c.arith_source)
        printf("arithmetic %s (from %s)\n", c.meta_arith, c.arith_source);
    if (cli_check_print(&rep, a.verbose) != 0) {
        cli_error("check: out of memory rendering the report");
        rc = CLI_INTERNAL;
        goto done;
    }
    rc = rep.verdict == STEM_CHECK_PASS ? CLI_OK : CLI_FAIL;
    if (a.json && write_json(&rep, a.json, err, sizeof(err)) != 0) {
        cli_error("check: %s", err);
        rc = cli_exit_tf();
    }
done:
    cli_progress_done();
    fflush(stdout);
    stem_check_report_free(&rep);
    cli_check_free(&c);
    return rc;
}
