/*
 * cmd_explain.c - `stem explain IN --head H --qblock I`: for one query
 * block, every candidate key block's QK term, value term, logit and rank,
 * the budget, and why the block was kept or dropped.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "check_tensors.h"
#include "cli_common.h"
#include "progress.h"
#include "commands.h"

static void explain_usage(FILE *fp)
{
    fputs("usage: stem explain IN --head H --qblock I [--sort rank] "
          "[options]\n\n"
          "IN holds q, k, v.  For query block I of query head H, lists each\n"
          "causal key block J with its QK term (the logit computed without\n"
          "the value term), its value term (logit - QK term), the logit, its\n"
          "rank in the row (1 = largest; equal logits: lower J first), the\n"
          "gap to the row threshold (the budget-th largest logit), and why\n"
          "the selection kept or dropped it: sink, window, top-k within the\n"
          "budget, a tie at the threshold (profiles that keep every tie), or\n"
          "outside the budget.  --sort rank lists by rank instead of J.\n\n",
          fp);
    cli_opts_usage(fp);
}

typedef struct explain_row {
    int64_t j;
    float qk, logit;
    int64_t rank;
} explain_row;

static int by_rank(const void *a, const void *b)
{
    const explain_row *x = a, *y = b;
    return (x->rank > y->rank) - (x->rank < y->rank);
}

/* Rank of row[j] among the finite entries of row[0..last]. */
static int64_t rank_of(const float *row, int64_t last, int64_t j)
{
    int64_t r = 1;
    for (int64_t i = 0; i <= last; i++)
        if (i != j && isfinite(row[i]) &&
            (row[i] > row[j] || (row[i] == row[j] && i < j)))
            r++;
    return r;
}

static void print_table(const stem_params *p, const explain_row *rows,
                        int64_t n, const uint8_t *mrow, int64_t pos,
                        int32_t budget, float thr)
{
    printf("%6s %10s %10s %10s %6s %10s  %-4s  %s\n", "kblock", "qk", "value",
           "logit", "rank", "gap", "kept", "why");
    for (int64_t i = 0; i < n; i++) {
        const explain_row *r = &rows[i];
        int64_t j = r->j;
        char why[160];
        int kept;
        if (j < p->sinks) {
            kept = 1;
            snprintf(why, sizeof(why), "sink (first %d blocks)", p->sinks);
        } else if (j > pos - p->window || (p->keep_diagonal && j == pos)) {
            kept = 1;
            snprintf(why, sizeof(why), "window (%d blocks ending at %lld)",
                     p->window, (long long)pos);
        } else if (r->rank <= budget) {
            kept = 1;
            snprintf(why, sizeof(why), "top-k: rank %lld <= budget %d",
                     (long long)r->rank, budget);
        } else if (p->ties_keep_all && r->logit >= thr) {
            kept = 1;
            snprintf(why, sizeof(why), "tie at the threshold (every tie "
                     "kept)");
        } else {
            kept = 0;
            snprintf(why, sizeof(why), "dropped: rank %lld > budget %d",
                     (long long)r->rank, budget);
        }
        if (kept != (mrow[j] != 0))
            strncat(why, " [the selection disagrees]",
                    sizeof(why) - strlen(why) - 1);
        printf("%6lld %10.5f %10.5f %10.5f %6lld %+10.5f  %-4s  %s\n",
               (long long)j, r->qk, r->logit - r->qk, r->logit,
               (long long)r->rank, (double)r->logit - (double)thr,
               mrow[j] ? "yes" : "no", why);
    }
}

/* `stem explain`; see explain_usage. */
int cmd_explain(int argc, char **argv)
{
    const char *in = NULL, *v;
    long long head = -1, qblock = -1;
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
    if (!in || head < 0 || qblock < 0) {
        cli_error("explain: IN, --head and --qblock are required");
        explain_usage(stderr);
        return CLI_USAGE;
    }
    stem_params p, pq;
    if (cli_opts_resolve(&o, &p) != CLI_OK)
        return CLI_USAGE;
    pq = p;
    pq.value_rule = STEM_VALUE_NONE;

    tf_file f = {0};
    char err[512];
    int rc = CLI_USAGE;
    float *lg = NULL, *lq = NULL;
    uint8_t *mask = NULL;
    int32_t *budget = NULL;
    explain_row *rows = NULL;
    if (ct_read(in, &f, err, sizeof(err)) != 0) {
        cli_error("explain: %s", err);
        return CLI_USAGE;
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
    if (head >= dm.hq || qblock >= dm.qb) {
        cli_error("explain: --head %lld --qblock %lld outside %lld heads x "
                  "%lld query blocks", head, qblock, (long long)dm.hq,
                  (long long)dm.qb);
        goto done;
    }
    size_t nblk = (size_t)(dm.hq * dm.qb * dm.kb);
    int64_t nb = p.prompt_blocks > 0 ? p.prompt_blocks : dm.kb;
    lg = malloc(nblk * sizeof(float));
    lq = malloc(nblk * sizeof(float));
    mask = malloc(nblk);
    budget = malloc((size_t)nb * sizeof(int32_t));
    rows = malloc((size_t)dm.kb * sizeof(explain_row));
    if (!lg || !lq || !mask || !budget || !rows) {
        cli_error("explain: out of memory");
        goto done;
    }
    cli_progress_start("stem explain");
    cli_progress("block logits");
    if ((st = stem_block_logits(&p, &q, &k, &vv, lg)) != STEM_OK ||
        (st = stem_block_logits(&pq, &q, &k, &vv, lq)) != STEM_OK ||
        (st = stem_budget(&p, dm.kb, budget)) != STEM_OK ||
        (st = stem_select(&p, &dm, lg, mask, NULL, NULL)) != STEM_OK) {
        cli_error("explain: %s: %s", in, stem_strerror(st));
        goto done;
    }
    cli_progress_done();
    int64_t pb = dm.offset / p.block, pos = qblock + pb;
    int64_t last = pos < dm.kb - 1 ? pos : dm.kb - 1;
    size_t base = (size_t)((head * dm.qb + qblock) * dm.kb);
    const float *row = lg + base;
    int32_t b = budget[pos < nb ? pos : nb - 1];
    float thr = check_row_threshold(row, last, b);
    int64_t n = 0, kept = 0;
    for (int64_t j = 0; j <= last; j++) {
        rows[n++] = (explain_row){j, lq[base + j], row[j],
                                  rank_of(row, last, j)};
        kept += mask[base + j] != 0;
    }
    if (sort_rank)
        qsort(rows, (size_t)n, sizeof(rows[0]), by_rank);
    printf("stem explain: %s, head %lld (kv head %lld), query block %lld "
           "at key-block position %lld\n", in, head,
           head / (dm.hq / dm.hkv), qblock, (long long)pos);
    printf("profile %s: alpha %g, keep ratio %g, block %d, stride %d, "
           "lambda %g, sinks %d, window %d\n", stem_profile_name(p.profile),
           p.alpha, p.keep_ratio, p.block, p.stride, p.value_weight, p.sinks,
           p.window);
    printf("budget %d of %lld causal blocks (n = %lld); threshold (rank %d "
           "logit) %.5f; kept %lld blocks (top-k plus sinks and window)\n",
           b, (long long)n, (long long)nb, b, thr, (long long)kept);
    printf("value term = logit - QK term (QK term: the logit without the "
           "value term)\n");
    print_table(&p, rows, n, mask + base, pos, b, thr);
    rc = CLI_OK;
done:
    free(lg), free(lq), free(mask), free(budget), free(rows);
    tf_free(&f);
    return rc;
}
