/*
 * cmd_mask.c - `stem mask FILE -o mask.png`: a picture of a block mask, of
 * its differences from another mask (ties and faults coloured apart), or
 * of the block logits as a heat map, written as PNG through libpng.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check_tensors.h"
#include "cli_common.h"
#include "progress.h"
#include "commands.h"
#include "mask_image.h"
#include "png_write.h"
#include "stem_check.h"

static void mask_usage(FILE *fp)
{
    fputs("usage: stem mask FILE -o OUT.png [--head H] [--diff OTHER] "
          "[--logits]\n"
          "                 [--tau T] [--dtype D] [options]\n\n"
          "FILE holds a block mask `mask` [Hq,Qb,Kb] (U8 or BOOL) and/or\n"
          "`block_logits`.  One square per key block (512/Kb pixels, at\n"
          "least 6, with thin lines between blocks of 8 pixels or more),\n"
          "query blocks down, key blocks across, block indices on both\n"
          "axes and a legend of the colours below; --head H (default 0).\n"
          "  (default)     kept dark, dropped light, beyond the diagonal grey\n"
          "  --diff OTHER  FILE's mask against the reference in OTHER: both\n"
          "                kept dark, neither light, a tie orange, a fault red\n"
          "                (faults also marked red on both axes).\n"
          "                OTHER holds mask and block_logits (e.g. stem run's\n"
          "                output) or q, k, v (the reference is computed).\n"
          "                Ties and faults are stem check's (its mask\n"
          "                stage): with q, k, v in OTHER, the tie band derived\n"
          "                per block for the GPU dtype (--dtype, FILE's\n"
          "                metadata, OTHER's q, else fp32); with a reference\n"
          "                mask and logits alone the band cannot be derived:\n"
          "                --tau, else 0.05 (bf16), 0.01 (fp16), 1e-4 (fp32)\n"
          "  --logits      heat map of FILE's block_logits (dark blue low,\n"
          "                yellow high, -inf grey) with a colour bar below\n\n",
          fp);
    cli_opts_usage(fp);
}

/* hq, qb, kb of a 3-d tensor with optional leading 1s. */
static int dims3(const tf_tensor *t, int64_t s[3])
{
    if (t->ndim < 3)
        return -1;
    for (int i = 0; i < t->ndim - 3; i++)
        if (t->shape[i] != 1)
            return -1;
    for (int i = 0; i < 3; i++)
        s[i] = t->shape[t->ndim - 3 + i];
    return s[0] >= 1 && s[1] >= 1 && s[2] >= s[1] ? 0 : -1;
}

/* The reference mask and logits of OTHER: read, or computed from q/k/v. */
static int reference_of(const tf_file *o, const stem_params *p, int layout,
                        const int64_t s[3], uint8_t **mask, float **logits,
                        const char *path)
{
    char err[512];
    const tf_tensor *tm = tf_find(o, "mask"), *tl = tf_find(o, "block_logits");
    if (tm && tl) {
        errno = 0;
        if (ct_load_mask(tm, s, mask, err, sizeof(err)) != 0 ||
            ct_load_f32(tl, s, 3, 0, logits, err, sizeof(err)) != 0) {
            int oom = errno == ENOMEM;
            free(*mask);
            *mask = NULL;
            cli_error("mask: %s: %s", path, err);
            return oom ? CLI_INTERNAL : CLI_USAGE;
        }
        return CLI_OK;
    }
    stem_tensor q, k, v;
    stem_dims dm;
    stem_status st;
    if (cli_load_qkv(o, layout, &q, &k, &v, err, sizeof(err)) != 0) {
        cli_error("mask: %s: needs mask and block_logits, or q, k, v (%s)",
                  path, err);
        return CLI_USAGE;
    }
    if ((st = stem_dims_get(p, &q, &k, &v, 1, &dm)) != STEM_OK)
        return cli_status_error("mask", path, st);
    if (dm.hq != s[0] || dm.qb != s[1] || dm.kb != s[2]) {
        cli_error("mask: %s gives %lld x %lld x %lld blocks, the mask has "
                  "%lld x %lld x %lld", path, (long long)dm.hq,
                  (long long)dm.qb, (long long)dm.kb, (long long)s[0],
                  (long long)s[1], (long long)s[2]);
        return CLI_USAGE;
    }
    size_t n = (size_t)(s[0] * s[1] * s[2]);
    *mask = malloc(n);
    *logits = malloc(n * sizeof(float));
    if (!*mask || !*logits) {
        cli_error("mask: out of memory");
        return CLI_INTERNAL;
    }
    cli_progress_start("stem mask");
    cli_progress("block logits");
    if ((st = stem_block_logits(p, &q, &k, &v, *logits)) != STEM_OK ||
        (st = stem_select(p, &dm, *logits, *mask, NULL, NULL)) != STEM_OK)
        return cli_status_error("mask", path, st);
    cli_progress_done();
    return CLI_OK;
}

typedef struct mask_args {
    const char *in, *out, *diff, *dtype;
    long long head;
    int logits, have_tau;
    double tau;
} mask_args;

static int parse(int argc, char **argv, mask_args *a, cli_opts *o, int *help)
{
    const char *v;
    int r;
    for (int i = 1; i < argc;) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            *help = 1;
            return CLI_OK;
        }
        if (strcmp(argv[i], "--logits") == 0) {
            a->logits = 1;
            i++;
            continue;
        }
        if ((r = cli_opt_value(argc, argv, &i, "-o", &a->out)) ||
            (r = cli_opt_value(argc, argv, &i, "--output", &a->out)) ||
            (r = cli_opt_value(argc, argv, &i, "--diff", &a->diff)) ||
            (r = cli_opt_value(argc, argv, &i, "--dtype", &a->dtype))) {
            if (r < 0)
                return CLI_USAGE;
            continue;
        }
        if ((r = cli_opt_value(argc, argv, &i, "--head", &v)) != 0) {
            if (r < 0 || cli_parse_int("--head", v, 0, 1 << 30, &a->head))
                return CLI_USAGE;
            continue;
        }
        if ((r = cli_opt_value(argc, argv, &i, "--tau", &v)) != 0) {
            if (r < 0 || cli_parse_double("--tau", v, 0, 1e30, &a->tau))
                return CLI_USAGE;
            a->have_tau = 1;
            continue;
        }
        if ((r = cli_opts_parse(o, argc, argv, &i)) != 0) {
            if (r < 0)
                return CLI_USAGE;
            continue;
        }
        if (argv[i][0] == '-' && argv[i][1] != '\0') {
            cli_error("mask: unknown option '%s'", argv[i]);
            return CLI_USAGE;
        }
        if (a->in) {
            cli_error("mask: more than one input ('%s', '%s')", a->in,
                      argv[i]);
            return CLI_USAGE;
        }
        a->in = argv[i++];
    }
    if (!a->in || !a->out) {
        cli_error("mask: FILE and -o OUT.png are required");
        mask_usage(stderr);
        return CLI_USAGE;
    }
    if (a->logits && a->diff) {
        cli_error("mask: --logits and --diff exclude each other");
        return CLI_USAGE;
    }
    stem_prec pr;
    if (a->dtype && stem_prec_from_name(a->dtype, &pr) != STEM_OK) {
        cli_error("mask: --dtype: '%s' is not bf16, fp16, fp32 or fp8", a->dtype);
        return CLI_USAGE;
    }
    return CLI_OK;
}

/* The GPU dtype name --diff judges by: --dtype, FILE's metadata, else the
 * dtype of OTHER's q (fp32 when none). */
static const char *diff_dtype(const mask_args *a, const tf_file *f,
                              const tf_file *o)
{
    stem_prec pr;
    const char *dt = a->dtype ? a->dtype : tf_meta(f, "dtype");
    if (dt && stem_prec_from_name(dt, &pr) == STEM_OK)
        return dt;
    const tf_tensor *q = tf_find(o, "q");
    return !q ? "fp32" : q->dtype == STEM_BF16 ? "bf16"
                       : q->dtype == STEM_F16    ? "fp16"
                                               : "fp32";
}

/* The fixed tie band --diff uses when OTHER holds no q, k, v: --tau, else
 * by the GPU dtype name dt (bf16 0.05, fp16 0.01, else 1e-4). */
static double fixed_tau(const mask_args *a, const char *dt)
{
    stem_prec pr = STEM_PREC_FP32;
    if (a->have_tau)
        return a->tau;
    stem_prec_from_name(dt, &pr);
    return pr == STEM_PREC_BF16 || pr == STEM_PREC_FP8 ? 0.05
           : pr == STEM_PREC_FP16                     ? 0.01
                                                      : 1e-4;
}

/*
 * The ties of head `head` of FILE's mask m [s0, s1, s2] as stem check's
 * mask stage judges them: stem_check on OTHER's q, k, v when it has them
 * (q non-NULL; the tie band derived per block unless --tau is given), else
 * stem_check_mask_logits on OTHER's logits rl and mask rm with the fixed
 * band.  tie[s1 * s2] gets 1 at each tie outside the rows whose count is
 * off their budget (every other difference is a fault); band says how the
 * band was set.  CLI_OK, or CLI_USAGE / CLI_INTERNAL after a message.
 */
static int ties_by_check(const stem_params *p, const stem_tensor *q,
                         const stem_tensor *k, const stem_tensor *v,
                         const float *rl, const uint8_t *rm,
                         const uint8_t *m, const int64_t s[3], int64_t head,
                         const char *dtype, const mask_args *a,
                         uint8_t *tie, char *band, size_t bandlen)
{
    stem_prec pr;
    stem_check_options opt;
    if (stem_prec_from_name(dtype, &pr) != STEM_OK)
        pr = STEM_PREC_FP32;
    stem_check_options_init(&opt, pr);
    opt.head_begin = head;
    opt.head_count = 1;
    opt.dense_test = 0;
    opt.max_items = (int)(s[1] * s[2] < 1000000 ? s[1] * s[2] : 1000000);
    if (a->have_tau)
        opt.tau = a->tau;
    stem_check_report rep;
    stem_status st;
    if (q) {
        stem_tensor mv = stem_tensor_hnd((void *)m, STEM_U8, s[0], s[1], s[2]);
        stem_check_gpu gpu = {NULL, &mv, NULL, NULL};
        st = stem_check(p, q, k, v, &gpu, &opt, &rep);
        if (a->have_tau)
            snprintf(band, bandlen, "tau %g", a->tau);
        else
            snprintf(band, bandlen, "tau per block as stem check derives "
                     "it for a %s GPU", dtype);
    } else {
        opt.tau = fixed_tau(a, dtype);
        st = stem_check_mask_logits(p, s[0], s[1], s[2], rl, rm, m, &opt, &rep);
        snprintf(band, bandlen, "tau %g", opt.tau);
    }
    if (st != STEM_OK)
        return cli_status_error("mask", "--diff", st);
    /* an exchange in a row that keeps the wrong count is no tie: mark those
     * rows of the head once */
    const stem_check_stage_result *ms = &rep.stage[STEM_STAGE_MASK];
    uint8_t *off = calloc((size_t)s[1], 1);
    if (!off) {
        stem_check_report_free(&rep);
        cli_error("mask: out of memory");
        return CLI_INTERNAL;
    }
    for (int64_t j = 0; j < ms->n_items; j++)
        if (ms->items[j].kind == STEM_KIND_MASK_COUNT && ms->items[j].head == head &&
            ms->items[j].qblock >= 0 && ms->items[j].qblock < s[1])
            off[ms->items[j].qblock] = 1;
    memset(tie, 0, (size_t)(s[1] * s[2]));
    for (int64_t i = 0; i < rep.n_ties; i++) {
        const stem_check_item *x = &rep.ties[i];
        if (x->head != head || x->qblock < 0 || x->qblock >= s[1] ||
            x->kblock < 0 || x->kblock >= s[2] || off[x->qblock])
            continue;
        tie[x->qblock * s[2] + x->kblock] = 1;
    }
    free(off);
    stem_check_report_free(&rep);
    return CLI_OK;
}

/* `stem mask`; see mask_usage. */
int cmd_mask(int argc, char **argv)
{
    mask_args a;
    cli_opts o;
    int help = 0;
    memset(&a, 0, sizeof(a));
    cli_opts_init(&o);
    int rc = parse(argc, argv, &a, &o, &help);
    if (help) {
        mask_usage(stdout);
        return CLI_OK;
    }
    if (rc != CLI_OK)
        return rc;
    tf_file f = {0}, other = {0};
    char err[512];
    uint8_t *m = NULL, *rm = NULL;
    float *lg = NULL, *rl = NULL;
    int32_t *budget = NULL;
    mi_image img = {0}, fig = {0};
    uint8_t *tie = NULL;
    stem_params p;
    rc = CLI_USAGE;
    if (ct_read(a.in, &f, err, sizeof(err)) != 0) {
        cli_error("mask: %s", err);
        rc = cli_exit_tf();
        goto done;
    }
    const char *name = a.logits ? "block_logits" : "mask";
    const tf_tensor *t = tf_find(&f, name);
    int64_t s[3];
    if (!t) {
        cli_error("mask: %s has no tensor '%s'", a.in, name);
        goto done;
    }
    if (dims3(t, s) != 0) {
        cli_error("mask: %s: '%s' is not [Hq,Qb,Kb] with Qb <= Kb", a.in,
                  name);
        goto done;
    }
    if (a.head >= s[0]) {
        cli_error("mask: --head %lld: the file has %lld heads", a.head,
                  (long long)s[0]);
        goto done;
    }
    int64_t pb = s[2] - s[1], hoff = a.head * s[1] * s[2];
    int px = mi_block_px(s[2]);
    mi_kind kind = a.logits ? MI_KIND_LOGITS
                   : a.diff ? MI_KIND_DIFF
                            : MI_KIND_MASK;
    char title[160];
    double lo_v = 0, hi_v = 0;
    if (a.logits) {
        float lo, hi;
        errno = 0;
        if (ct_load_f32(t, s, 3, 0, &lg, err, sizeof(err)) != 0) {
            cli_error("mask: %s: %s", a.in, err);
            rc = errno == ENOMEM ? CLI_INTERNAL : CLI_USAGE;
            goto done;
        }
        errno = 0;
        if (mi_logits(lg + hoff, s[1], s[2], &img, &lo, &hi) != 0) {
            cli_error("mask: cannot draw %lld x %lld blocks",
                      (long long)s[1], (long long)s[2]);
            rc = errno == ENOMEM ? CLI_INTERNAL : CLI_USAGE;
            goto done;
        }
        printf("logits of head %lld: %.5g (dark blue) .. %.5g (yellow), "
               "-inf grey\n", a.head, lo, hi);
        lo_v = lo, hi_v = hi;
        snprintf(title, sizeof(title), "block logits, head %lld", a.head);
    } else {
        errno = 0;
        if (ct_load_mask(t, s, &m, err, sizeof(err)) != 0) {
            cli_error("mask: %s: %s", a.in, err);
            rc = errno == ENOMEM ? CLI_INTERNAL : CLI_USAGE;
            goto done;
        }
        if (!a.diff) {
            errno = 0;
            if (mi_mask(m + hoff, s[1], s[2], pb, &img) != 0) {
                cli_error("mask: cannot draw %lld x %lld blocks",
                          (long long)s[1], (long long)s[2]);
                rc = errno == ENOMEM ? CLI_INTERNAL : CLI_USAGE;
                goto done;
            }
            int64_t kept = 0;
            for (int64_t i = 0; i < s[1] * s[2]; i++)
                kept += m[hoff + i] != 0;
            printf("mask of head %lld: %lld of %lld blocks kept\n", a.head,
                   (long long)kept, (long long)(s[1] * s[2]));
            snprintf(title, sizeof(title), "mask, head %lld: %lld blocks kept",
                     a.head, (long long)kept);
        } else {
            if (ct_read(a.diff, &other, err, sizeof(err)) != 0) {
                cli_error("mask: %s", err);
                rc = cli_exit_tf();
                goto done;
            }
            if (ct_check_meta_params(&f, a.in, &o) != CLI_OK)
                goto done;
            ct_apply_meta_params(&f, &o);
            if (cli_opts_resolve(&o, &p) != CLI_OK ||
                reference_of(&other, &p, o.layout, s, &rm, &rl, a.diff) !=
                    CLI_OK)
                goto done;
            int64_t nb;
            stem_status bst = stem_budget_length(&p, s[2], &nb);
            if (bst != STEM_OK) {
                rc = cli_status_error("mask", a.in, bst);
                goto done;
            }
            if (!(budget = malloc((size_t)nb * 4))) {
                cli_error("mask: out of memory");
                rc = CLI_INTERNAL;
                goto done;
            }
            if ((bst = stem_budget(&p, s[2], budget)) != STEM_OK) {
                rc = cli_status_error("mask", "the budget", bst);
                goto done;
            }
            stem_tensor q, k, v;
            char qerr[256];
            int64_t ties = 0, faults = 0, ndiff = 0;
            char how[96];
            /* ties and faults as stem check's mask stage has them: on
             * OTHER's q, k, v when it holds them, else on its logits and
             * mask with a fixed band */
            int have_qkv = cli_load_qkv(&other, o.layout, &q, &k, &v, qerr,
                                        sizeof(qerr)) == 0;
            const char *dt = diff_dtype(&a, &f, &other);
            if (!(tie = malloc((size_t)(s[1] * s[2])))) {
                cli_error("mask: out of memory");
                rc = CLI_INTERNAL;
                goto done;
            }
            if ((rc = ties_by_check(&p, have_qkv ? &q : NULL, &k, &v, rl, rm, m,
                                    s, a.head, dt, &a, tie, how,
                                    sizeof(how))) != CLI_OK)
                goto done;
            rc = CLI_USAGE;
            errno = 0;
            if (mi_diff(m + hoff, rm + hoff, s[1], s[2], pb, tie, &img) != 0) {
                cli_error("mask: out of memory or bad sizes");
                rc = errno == ENOMEM ? CLI_INTERNAL : CLI_USAGE;
                goto done;
            }
            for (int64_t i = 0; i < s[1] * s[2]; i++) {
                int differs = (m[hoff + i] != 0) != (rm[hoff + i] != 0);
                ndiff += differs;
                ties += differs && tie[i];
            }
            faults = ndiff - ties;
            printf("differences of head %lld: %lld ties (orange), %lld "
                   "faults (red), %s\n", a.head, (long long)ties,
                   (long long)faults, how);
            snprintf(title, sizeof(title), "mask differences, head %lld: "
                     "%lld ties, %lld faults", a.head, (long long)ties,
                     (long long)faults);
        }
    }
    errno = 0;
    if (mi_figure(&img, s[1], s[2], px, kind, title, lo_v, hi_v, &fig,
                  NULL) != 0) {
        int oom = errno == ENOMEM;
        cli_error("mask: cannot draw the figure of %lld x %lld blocks (%s)",
                  (long long)s[1], (long long)s[2],
                  oom ? "out of memory" : "over 65535 pixels a side");
        rc = oom ? CLI_INTERNAL : CLI_USAGE;
        goto done;
    }
    if (png_write_rgb(a.out, fig.w, fig.h, fig.rgb, err, sizeof(err)) != 0) {
        cli_error("mask: %s", err);
        rc = cli_exit_tf();
        goto done;
    }
    printf("wrote %s: %d x %d pixels, %d per block\n", a.out, fig.w, fig.h,
           px);
    rc = CLI_OK;
done:
    mi_free(&img);
    mi_free(&fig);
    free(tie);
    free(m), free(rm), free(lg), free(rl), free(budget);
    tf_free(&f);
    tf_free(&other);
    return rc;
}
