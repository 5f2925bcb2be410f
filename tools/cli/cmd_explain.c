/*
 * cmd_explain.c - `stem explain IN --head H [--qblock I] [--steps R]`: the
 * stages of docs/ALGORITHM.md for one query head, in numbers.
 *
 *   without --qblock  the head's block logits L[I][J], and per query block
 *                     its position p, budget, threshold and selected row;
 *   --qblock I        query block I block by block: QK term, value term,
 *                     logit, rank, gap to the threshold, kept, and why;
 *   --steps R         query row R's online softmax over its kept blocks.
 *
 * The selection comes from the library (stem_explain_row, the code
 * stem_select runs), never from a copy of the rule here.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check_tensors.h"
#include "cli_common.h"
#include "progress.h"
#include "commands.h"

static void explain_usage(FILE *fp)
{
    fputs("usage: stem explain IN --head H [--qblock I] [--sort rank]\n"
          "                          [--steps R] [--paper-min-k0 K] "
          "[options]\n\n"
          "IN holds q, k, v.  Shows the stages of docs/ALGORITHM.md for query\n"
          "head H (symbols as in its notation table):\n"
          "  (default)    the head's block logits L[I][J] ('.' above the\n"
          "               diagonal), then per query block I its position p,\n"
          "               budget b(p), candidates, top-k count, blocks kept,\n"
          "               threshold (the b-th largest logit; -inf when the\n"
          "               top-k drops nothing) and its mask row ('#' kept,\n"
          "               '.' dropped, '-' above the diagonal)\n"
          "  --qblock I   query block I block by block: each causal key block\n"
          "               J with its QK term (the logit without the value\n"
          "               term), value term (logit - QK term), logit, rank\n"
          "               (1 = largest; equal logits: lower J first), gap to\n"
          "               the threshold, and why it was kept (sink, window,\n"
          "               diagonal, top-k, tie: every tie kept) or dropped;\n"
          "               --sort rank lists by rank instead of J\n"
          "  --steps R    the online softmax of query row R (0 .. Lq-1) over\n"
          "               its kept key blocks, in ascending order: per block\n"
          "               the block's largest scaled score, the running\n"
          "               maximum m, the rescale factor e^(m_old - m), the\n"
          "               block's sum of e^(s - m) and the running sum l,\n"
          "               computed in double from q and k; then ln l + m\n"
          "               beside the library's lse of the row (float32)\n"
          "  --paper-min-k0 K  the paper profile's floor on its starting\n"
          "               budget b0 (54), e.g. to watch the top-k drop blocks\n"
          "               of a short prompt\n\n",
          fp);
    cli_opts_usage(fp);
}

typedef struct explain_line {
    int64_t j;
    float qk;
    stem_explain_block b;
} explain_line;

static int by_rank(const void *a, const void *b)
{
    const explain_line *x = a, *y = b;
    return (x->b.rank > y->b.rank) - (x->b.rank < y->b.rank);
}

/* The reasons of a block, in words. */
static void why_text(const stem_explain_block *b, int32_t budget, char *buf,
                     size_t cap)
{
    static const struct {
        uint32_t bit;
        const char *word;
    } words[] = {{STEM_WHY_SINK, "sink"},
                 {STEM_WHY_WINDOW, "window"},
                 {STEM_WHY_DIAGONAL, "diagonal"},
                 {STEM_WHY_TOPK, "top-k"},
                 {STEM_WHY_TIE, "tie at the threshold (every tie kept)"}};
    buf[0] = '\0';
    if (!b->why) {
        snprintf(buf, cap, "dropped: rank %d > budget %d", b->rank, budget);
        return;
    }
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (b->why & words[i].bit) {
            size_t n = strlen(buf);
            snprintf(buf + n, cap - n, "%s%s", n ? " + " : "", words[i].word);
        }
}

/* "%10.5f", or the text of an infinity. */
static void print_num(const char *fmt, double x)
{
    if (isinf(x))
        printf("%*s", atoi(fmt + 1), x < 0 ? "-inf" : "+inf");
    else
        printf(fmt, x);
}

/* The head overview: L[I][J], then one line per query block. */
static int print_head(const stem_params *p, const stem_dims *dm,
                      const float *lg, int64_t head)
{
    const int64_t Qb = dm->qb, Kb = dm->kb;
    const float *L = lg + (size_t)(head * Qb * Kb);
    stem_explain_block *blk = malloc((size_t)Kb * sizeof(*blk));
    if (!blk) {
        cli_error("explain: out of memory");
        return CLI_INTERNAL;
    }
    printf("block logits L[I][J] (I: query block, down; J: key block, "
           "across; '.': -inf above the diagonal)\n%4s", "I\\J");
    for (int64_t J = 0; J < Kb; J++)
        printf(" %6lld", (long long)J);
    printf("\n");
    for (int64_t I = 0; I < Qb; I++) {
        printf("%4lld", (long long)I);
        for (int64_t J = 0; J < Kb; J++) {
            float x = L[I * Kb + J];
            if (isfinite(x))
                printf(" %6.2f", x);
            else
                printf(" %6s", x < 0 ? "." : x > 0 ? "+inf" : "nan");
        }
        printf("\n");
    }
    printf("\nselection per query block (b: budget of position p; top-k: "
           "blocks the top-k keeps;\nkept: with sinks, window and diagonal; "
           "mask: '#' kept, '.' dropped, '-' above the diagonal)\n");
    printf("%4s %5s %6s %6s %6s %6s %10s  %s\n", "I", "p", "b", "cands",
           "top-k", "kept", "threshold", "mask (J = 0 ..)");
    for (int64_t I = 0; I < Qb; I++) {
        stem_explain_summary s;
        stem_status st = stem_explain_row(p, dm, lg, head, I, &s, blk);
        if (st != STEM_OK) {
            free(blk);
            return cli_status_error("explain", NULL, st);
        }
        printf("%4lld %5lld %6d %6d %6d %6d ", (long long)I,
               (long long)s.position, s.budget, s.candidates, s.topk, s.kept);
        print_num("%10.5f", s.threshold);
        printf("  ");
        for (int64_t J = 0; J < Kb; J++)
            putchar(J > s.position ? '-' : blk[J].kept ? '#' : '.');
        printf("\n");
    }
    free(blk);
    return CLI_OK;
}

/* Query block `qblock` block by block. */
static int print_row(const stem_params *p, const stem_dims *dm,
                     const float *lg, const float *lq, int64_t head,
                     int64_t qblock, int sort_rank)
{
    const int64_t Kb = dm->kb;
    stem_explain_summary s;
    stem_explain_block *blk = malloc((size_t)Kb * sizeof(*blk));
    explain_line *lines = malloc((size_t)Kb * sizeof(*lines));
    stem_status st = STEM_ERR_NOMEM;
    if (!blk || !lines ||
        (st = stem_explain_row(p, dm, lg, head, qblock, &s, blk)) != STEM_OK) {
        free(blk), free(lines);
        return cli_status_error("explain", NULL, st);
    }
    const size_t base = (size_t)((head * dm->qb + qblock) * Kb);
    int64_t last = s.position < Kb - 1 ? s.position : Kb - 1, n = 0;
    for (int64_t j = 0; j <= last; j++)
        lines[n++] = (explain_line){j, lq[base + j], blk[j]};
    if (sort_rank)
        qsort(lines, (size_t)n, sizeof(lines[0]), by_rank);
    printf("query block %lld at key-block position p = %lld: budget b(p) = %d "
           "(n = %lld), %d candidates;\n", (long long)qblock,
           (long long)s.position, s.budget, (long long)s.n, s.candidates);
    printf("threshold (rank %d logit) ", s.budget);
    print_num("%.5f", s.threshold);
    printf("; kept %d blocks: %d by the top-k, the rest sinks, window and "
           "diagonal\n", s.kept, s.topk);
    printf("value term = logit - QK term (QK term: the logit without the "
           "value term)\n");
    printf("%6s %10s %10s %10s %6s %10s  %-4s  %s\n", "kblock", "qk", "value",
           "logit", "rank", "gap", "kept", "why");
    for (int64_t i = 0; i < n; i++) {
        const explain_line *r = &lines[i];
        char why[128];
        why_text(&r->b, s.budget, why, sizeof(why));
        printf("%6lld %10.5f %10.5f %10.5f %6d ", (long long)r->j, r->qk,
               r->b.logit - r->qk, r->b.logit, r->b.rank);
        double gap = (double)r->b.logit - (double)s.threshold;
        if (isinf(gap))
            printf("%10s", "+inf");
        else
            printf("%+10.5f", gap);
        printf("  %-4s  %s\n", r->b.kept ? "yes" : "no", why);
    }
    free(blk), free(lines);
    return CLI_OK;
}

/* Row `row` of head `head` as a double vector (any input dtype). */
static void load_row(const stem_tensor *t, int64_t head, int64_t row,
                     double *dst)
{
    int64_t at = head * t->head_stride + row * t->token_stride;
    for (int64_t c = 0; c < t->dim; c++) {
        switch (t->dtype) {
        case STEM_BF16:
            dst[c] = stem_bf16_to_f32(((const uint16_t *)t->data)[at + c]);
            break;
        case STEM_F16:
            dst[c] = stem_f16_to_f32(((const uint16_t *)t->data)[at + c]);
            break;
        case STEM_F64:
            dst[c] = ((const double *)t->data)[at + c];
            break;
        default:
            dst[c] = ((const float *)t->data)[at + c];
        }
    }
}

/* The online softmax of query row `row`, block by block. */
static int print_steps(const stem_params *p, const stem_dims *dm,
                       const stem_tensor *q, const stem_tensor *k,
                       const stem_tensor *v, const float *lg, int64_t head,
                       int64_t row)
{
    const int64_t B = p->block, Kb = dm->kb, I = row / B;
    const int64_t pos = row + dm->offset, g = head / (dm->hq / dm->hkv);
    const double scale = 1.0 / sqrt((double)dm->d);
    stem_explain_summary s;
    stem_explain_block *blk = malloc((size_t)Kb * sizeof(*blk));
    float *out = malloc((size_t)(dm->hq * dm->lq * dm->d) * sizeof(float));
    float *lse = malloc((size_t)(dm->hq * dm->lq) * sizeof(float));
    uint8_t *mask = malloc((size_t)(dm->hq * dm->qb * Kb));
    stem_status st = STEM_ERR_NOMEM;
    int rc = CLI_FAIL;
    if (!blk || !out || !lse || !mask)
        goto fail;
    if ((st = stem_explain_row(p, dm, lg, head, I, &s, blk)) != STEM_OK)
        goto fail;
    /* the library's own lse of the row, for comparison */
    stem_tensor to = stem_tensor_hnd(out, STEM_F32, dm->hq, dm->lq, dm->d);
    if ((st = stem_select(p, dm, lg, mask, NULL, NULL)) != STEM_OK ||
        (st = stem_attention_sparse(p, q, k, v, mask, &to, lse)) != STEM_OK)
        goto fail;
    double qr[STEM_MAX_HEAD_DIM], kr[STEM_MAX_HEAD_DIM];
    load_row(q, head, row, qr);
    printf("online softmax of query row %lld (position %lld) of head %lld, "
           "query block %lld: scores s_t = q.k_t / sqrt(%lld)\n"
           "over the keys t <= %lld of its %d kept blocks, one block at a "
           "time (double precision)\n", (long long)row, (long long)pos,
           (long long)head, (long long)I, (long long)dm->d, (long long)pos,
           s.kept);
    printf("%5s %6s %5s %12s %12s %12s %14s %14s\n", "step", "kblock",
           "keys", "block max", "m", "e^(m_old-m)", "block sum", "l");
    double m = -INFINITY, l = 0.0;
    int step = 0;
    for (int64_t J = 0; J <= s.position && J < Kb; J++) {
        if (!blk[J].kept)
            continue;
        int64_t t0 = J * B, t1 = t0 + B - 1;
        if (t1 > pos)
            t1 = pos;
        if (t1 > dm->lk - 1)
            t1 = dm->lk - 1;
        double bmax = -INFINITY, bsum = 0.0;
        for (int64_t t = t0; t <= t1; t++) {
            load_row(k, g, t, kr);
            double dot = 0.0;
            for (int64_t c = 0; c < dm->d; c++)
                dot += qr[c] * kr[c];
            double sc = dot * scale;
            bmax = sc > bmax ? sc : bmax;
        }
        double mn = m > bmax ? m : bmax;
        double alpha = isinf(m) ? 0.0 : exp(m - mn);
        for (int64_t t = t0; t <= t1; t++) {
            load_row(k, g, t, kr);
            double dot = 0.0;
            for (int64_t c = 0; c < dm->d; c++)
                dot += qr[c] * kr[c];
            bsum += exp(dot * scale - mn);
        }
        l = alpha * l + bsum;
        m = mn;
        printf("%5d %6lld %5lld %12.6f %12.6f %12.6f %14.6f %14.6f\n", ++step,
               (long long)J, (long long)(t1 - t0 + 1), bmax, m, alpha, bsum,
               l);
    }
    printf("lse = m + ln l = %.6f; the library's lse of the row: %.6f\n",
           m + log(l), (double)lse[head * dm->lq + row]);
    rc = CLI_OK;
fail:
    if (rc != CLI_OK)
        rc = cli_status_error("explain", NULL, st);
    free(blk), free(out), free(lse), free(mask);
    return rc;
}

/* `stem explain`; see explain_usage. */
int cmd_explain(int argc, char **argv)
{
    const char *in = NULL, *v;
    long long head = -1, qblock = -1, steps = -1, min_k0 = -1;
    int sort_rank = 0, r;
    cli_opts o;
    cli_opts_init(&o);
    for (int i = 1; i < argc;) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            explain_usage(stdout);
            return CLI_OK;
        }
        if ((r = cli_opt_value(argc, argv, &i, "--head", &v)) != 0) {
            if (r < 0 || cli_parse_int("--head", v, 0, 1 << 30, &head))
                return CLI_USAGE;
            continue;
        }
        if ((r = cli_opt_value(argc, argv, &i, "--qblock", &v)) != 0) {
            if (r < 0 || cli_parse_int("--qblock", v, 0, 1ll << 40, &qblock))
                return CLI_USAGE;
            continue;
        }
        if ((r = cli_opt_value(argc, argv, &i, "--steps", &v)) != 0) {
            if (r < 0 || cli_parse_int("--steps", v, 0, 1ll << 40, &steps))
                return CLI_USAGE;
            continue;
        }
        if ((r = cli_opt_value(argc, argv, &i, "--paper-min-k0", &v)) != 0) {
            if (r < 0 ||
                cli_parse_int("--paper-min-k0", v, 1, 1 << 30, &min_k0))
                return CLI_USAGE;
            continue;
        }
        if ((r = cli_opt_value(argc, argv, &i, "--sort", &v)) != 0) {
            if (r < 0)
                return CLI_USAGE;
            if (strcmp(v, "rank") != 0 && strcmp(v, "block") != 0) {
                cli_error("explain: --sort: '%s' is not rank or block", v);
                return CLI_USAGE;
            }
            sort_rank = strcmp(v, "rank") == 0;
            continue;
        }
        if ((r = cli_opts_parse(&o, argc, argv, &i)) != 0) {
            if (r < 0)
                return CLI_USAGE;
            continue;
        }
        if (argv[i][0] == '-' && argv[i][1] != '\0') {
            cli_error("explain: unknown option '%s'", argv[i]);
            return CLI_USAGE;
        }
        if (in) {
            cli_error("explain: more than one input ('%s', '%s')", in,
                      argv[i]);
            return CLI_USAGE;
        }
        in = argv[i++];
    }
    if (!in || head < 0) {
        cli_error("explain: IN and --head are required");
        explain_usage(stderr);
        return CLI_USAGE;
    }
    if (qblock >= 0 && steps >= 0) {
        cli_error("explain: --qblock and --steps exclude each other");
        return CLI_USAGE;
    }
    stem_params p, pq;
    if (cli_opts_resolve(&o, &p) != CLI_OK)
        return CLI_USAGE;
    if (min_k0 > 0) {
        p.paper_min_k0 = (int)min_k0;
        stem_status st = stem_params_validate(&p);
        if (st != STEM_OK) {
            cli_error("explain: --paper-min-k0 %lld: %s (%s)", min_k0,
                      stem_strerror(st), stem_last_error());
            return CLI_USAGE;
        }
    }
    pq = p;
    pq.value_rule = STEM_VALUE_NONE;

    tf_file f = {0};
    char err[512];
    int rc = CLI_USAGE;
    float *lg = NULL, *lq = NULL;
    if (ct_read(in, &f, err, sizeof(err)) != 0) {
        cli_error("explain: %s", err);
        return cli_exit_tf();
    }
    stem_tensor q, k, vv;
    stem_dims dm;
    stem_status st;
    if (cli_load_qkv(&f, o.layout, &q, &k, &vv, err, sizeof(err)) != 0) {
        cli_error("explain: %s: %s", in, err);
        goto done;
    }
    if ((st = stem_dims_get(&p, &q, &k, &vv, 1, &dm)) != STEM_OK) {
        cli_error("explain: %s: %s", in, stem_strerror(st));
        goto done;
    }
    if (head >= dm.hq) {
        cli_error("explain: --head %lld: %s has %lld query heads", head, in,
                  (long long)dm.hq);
        goto done;
    }
    if (qblock >= dm.qb) {
        cli_error("explain: --qblock %lld: %s has %lld query blocks", qblock,
                  in, (long long)dm.qb);
        goto done;
    }
    if (steps >= dm.lq) {
        cli_error("explain: --steps %lld: %s has %lld query rows", steps, in,
                  (long long)dm.lq);
        goto done;
    }
    size_t nblk = (size_t)(dm.hq * dm.qb * dm.kb);
    lg = malloc(nblk * sizeof(float));
    lq = malloc(nblk * sizeof(float));
    if (!lg || !lq) {
        cli_error("explain: out of memory");
        rc = CLI_INTERNAL;
        goto done;
    }
    cli_progress_start("stem explain");
    cli_progress("block logits");
    if ((st = stem_block_logits(&p, &q, &k, &vv, lg)) != STEM_OK ||
        (st = stem_block_logits(&pq, &q, &k, &vv, lq)) != STEM_OK) {
        rc = cli_status_error("explain", in, st);
        goto done;
    }
    cli_progress_done();
    printf("stem explain: %s, head %lld (kv head %lld) of %lld, %lld query "
           "blocks x %lld key blocks\n", in, head,
           head / (dm.hq / dm.hkv), (long long)dm.hq, (long long)dm.qb,
           (long long)dm.kb);
    printf("profile %s: alpha %g, keep ratio %g, block %d, stride %d, "
           "lambda %g, sinks %d, window %d\n", stem_profile_name(p.profile),
           p.alpha, p.keep_ratio, p.block, p.stride, p.value_weight, p.sinks,
           p.window);
    if (steps >= 0)
        rc = print_steps(&p, &dm, &q, &k, &vv, lg, head, steps);
    else if (qblock >= 0)
        rc = print_row(&p, &dm, lg, lq, head, qblock, sort_rank);
    else
        rc = print_head(&p, &dm, lg, head);
done:
    free(lg), free(lq);
    tf_free(&f);
    return rc;
}
