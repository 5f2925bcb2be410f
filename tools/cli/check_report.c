/*
 * check_report.c - the human and JSON reports of `stem check`.
 */
#include "check_report.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tensorfile.h"

/* See check_report.h. */
int check_report_failed(const check_report *r)
{
    return r->logits_fault || r->mask_fault || r->out_fault || r->lse_fault;
}

static const char *verdict(int present, int fault)
{
    return !present ? "absent" : fault ? "FAIL" : "ok";
}

static void text_logits(FILE *fp, const check_report *r)
{
    const check_logits_result *l = &r->logits;
    fprintf(fp, "logits  %-6s ", verdict(r->have_logits, r->logits_fault));
    if (!r->have_logits) {
        fprintf(fp, "(no block_logits in the GPU file)\n");
        return;
    }
    fprintf(fp, "max |diff| %.4g at head %lld block (%lld,%lld) [limit %g]; "
            "-inf pattern: %lld mismatches",
            l->max_abs, (long long)l->max_at[0], (long long)l->max_at[1],
            (long long)l->max_at[2], r->tol.logit,
            (long long)l->pattern_mismatch);
    if (l->pattern_mismatch)
        fprintf(fp, " (first at head %lld block (%lld,%lld))",
                (long long)l->first_mismatch[0],
                (long long)l->first_mismatch[1],
                (long long)l->first_mismatch[2]);
    if (l->nan_gpu)
        fprintf(fp, "; %lld NaN/+inf GPU entries", (long long)l->nan_gpu);
    fputc('\n', fp);
}

static void text_mask(FILE *fp, const check_report *r)
{
    const check_mask_result *m = &r->mask;
    fprintf(fp, "mask    %-6s ", verdict(r->have_mask, r->mask_fault));
    if (!r->have_mask) {
        fprintf(fp, "(no mask in the GPU file)\n");
        return;
    }
    fprintf(fp, "%lld differences: %lld ties (max gap %.4g, tau %g), "
            "%lld faults; kept blocks GPU %lld, reference %lld\n",
            (long long)m->n_diff, (long long)m->n_tie, m->max_tie_gap,
            r->tol.tau, (long long)m->n_fault, (long long)m->gpu_selected,
            (long long)m->ref_selected);
    if (m->rows_without_diagonal)
        fprintf(fp, "        %lld GPU rows lack their diagonal block\n",
                (long long)m->rows_without_diagonal);
    int64_t show = m->n_diff < r->nshow ? m->n_diff : r->nshow;
    for (int64_t i = 0; i < show; i++) {
        const check_mask_diff *d = &m->diffs[i];
        fprintf(fp, "        %-12s head %d qblock %d kblock %d: %s; logit "
                "%.5g, threshold %.5g, gap %+.4g\n",
                check_diff_kind_name(d->kind), d->head, d->qblock, d->kblock,
                d->gpu_kept ? "GPU kept, reference dropped"
                            : "GPU dropped, reference kept",
                d->logit, d->threshold, d->gap);
    }
    if (m->n_diff > show)
        fprintf(fp, "        ... %lld more (--show N)\n",
                (long long)(m->n_diff - show));
}

static void text_out(FILE *fp, const check_report *r)
{
    const check_out_result *o = &r->out;
    fprintf(fp, "out     %-6s ", verdict(r->have_out, r->out_fault));
    if (!r->have_out) {
        fprintf(fp, "(no out in the GPU file)\n");
        return;
    }
    fprintf(fp, "rel L2 %.4g (worst head %lld: %.4g) [limit %g per head]; "
            "max |diff| %.4g at head %lld row %lld col %lld\n",
            o->rel_l2, (long long)o->worst_head,
            o->head_rel_l2[o->worst_head], r->tol.out_rel_l2, o->max_abs,
            (long long)o->max_at[0], (long long)o->max_at[1],
            (long long)o->max_at[2]);
    if (r->out_vs_ref_mask)
        fprintf(fp, "        (no GPU mask: compared under the reference "
                "mask, so mask ties count here too)\n");
    if (r->diag_added)
        fprintf(fp, "        (diagonal blocks missing from the GPU mask "
                "were added for the reference)\n");
    if (o->nonfinite)
        fprintf(fp, "        %lld non-finite GPU entries\n",
                (long long)o->nonfinite);
    if (o->dense) {
        for (int64_t h = 0; h < o->hq; h++) {
            const check_dense_head *d = &o->dense[h];
            if (d->dense)
                fprintf(fp, "        head %lld IGNORES THE MASK: t = %.3f "
                        "(0 masked reference, 1 dense), spread %.2g, "
                        "masked vs dense %.3g\n", (long long)h, d->t,
                        d->spread, d->sep_rel);
        }
        double tmax = -INFINITY, sp = 0;
        int undec = 0;
        for (int64_t h = 0; h < o->hq; h++) {
            if (!o->dense[h].decidable) {
                undec++;
                continue;
            }
            if (o->dense[h].t > tmax) {
                tmax = o->dense[h].t;
                sp = o->dense[h].spread;
            }
        }
        if (undec < o->hq)
            fprintf(fp, "        %s: largest t %.4f (spread %.2g; "
                    "0 masked, 1 dense, fault above 0.5)",
                    o->any_dense ? "ignored-mask test" : "mask followed",
                    tmax, sp);
        else
            fprintf(fp, "        ignored-mask test undecidable (masked and "
                    "dense references too close)");
        if (undec && undec < o->hq)
            fprintf(fp, "; %d heads undecidable", undec);
        fputc('\n', fp);
    }
    int hs = (int)(o->hq < r->nshow ? o->hq : r->nshow);
    if (o->hq > 1 && hs > 0) {
        /* heads by rel L2, worst first */
        int64_t *ix = malloc((size_t)o->hq * sizeof(int64_t));
        if (ix) {
            for (int64_t h = 0; h < o->hq; h++)
                ix[h] = h;
            for (int64_t a = 1; a < o->hq; a++)
                for (int64_t b = a; b > 0 && o->head_rel_l2[ix[b]] >
                                                  o->head_rel_l2[ix[b - 1]];
                     b--) {
                    int64_t t = ix[b];
                    ix[b] = ix[b - 1];
                    ix[b - 1] = t;
                }
            fprintf(fp, "        worst heads:");
            for (int i = 0; i < hs; i++)
                fprintf(fp, " %lld:%.3g", (long long)ix[i],
                        o->head_rel_l2[ix[i]]);
            fputc('\n', fp);
            free(ix);
        }
    }
    for (int i = 0; i < o->nworst; i++)
        fprintf(fp, "        row head %d row %lld: l2 %.4g rel %.4g max "
                "%.4g\n", o->worst[i].head, (long long)o->worst[i].row,
                o->worst[i].l2, o->worst[i].rel_l2, o->worst[i].max_abs);
}

static void text_lse(FILE *fp, const check_report *r)
{
    const check_lse_result *l = &r->lse;
    fprintf(fp, "lse     %-6s ", verdict(r->have_lse, r->lse_fault));
    if (!r->have_lse) {
        fprintf(fp, "(no lse in the GPU file)\n");
        return;
    }
    fprintf(fp, "max |diff| %.4g at head %lld row %lld [limit %g]; mean "
            "%.3g\n", l->max_abs, (long long)l->max_at[0],
            (long long)l->max_at[1], r->tol.lse_abs, l->mean_abs);
    if (l->nonfinite)
        fprintf(fp, "        %lld non-finite GPU entries\n",
                (long long)l->nonfinite);
    if (l->base2_hint)
        fprintf(fp, "        the GPU lse looks like a base-2 log (it matches "
                "the reference / ln 2)\n");
    for (int i = 0; i < l->nworst && l->worst[i].max_abs > 0; i++)
        fprintf(fp, "        row head %d row %lld: |diff| %.4g\n",
                l->worst[i].head, (long long)l->worst[i].row,
                l->worst[i].max_abs);
}

/* See check_report.h. */
void check_report_text(FILE *fp, const check_report *r)
{
    const stem_dims *d = &r->dims;
    const stem_params *p = &r->params;
    int failed = check_report_failed(r);
    fprintf(fp, "stem check: %s", r->in_path);
    if (strcmp(r->in_path, r->gpu_path) != 0)
        fprintf(fp, " vs %s", r->gpu_path);
    fprintf(fp, "\nRESULT: %s\n",
            failed ? "FAIL (a difference is not explained by rounding)"
                   : "PASS (every difference is explained by rounding)");
    fprintf(fp, "shape: Hq %lld, Hkv %lld, Lq %lld, Lk %lld, d %lld; "
            "Qb %lld, Kb %lld\n", (long long)d->hq, (long long)d->hkv,
            (long long)d->lq, (long long)d->lk, (long long)d->d,
            (long long)d->qb, (long long)d->kb);
    fprintf(fp, "profile %s: alpha %g, keep ratio %g, block %d, stride %d, "
            "lambda %g, sinks %d, window %d%s\n",
            stem_profile_name(p->profile), p->alpha, p->keep_ratio, p->block,
            p->stride, p->value_weight, p->sinks, p->window,
            r->params_source ? " (metadata)" : "");
    fprintf(fp, "GPU dtype %s (from %s)\n", r->dtype, r->dtype_source);
    /* sections with a fault first */
    void (*sec[4])(FILE *, const check_report *) = {text_logits, text_mask,
                                                    text_out, text_lse};
    int fault[4] = {r->logits_fault, r->mask_fault, r->out_fault,
                    r->lse_fault};
    for (int pass = 1; pass >= 0; pass--)
        for (int i = 0; i < 4; i++)
            if (fault[i] == pass)
                sec[i](fp, r);
    fprintf(fp, "(%.2f s)\n", r->seconds);
}

/* ------------------------------------------------------------------ JSON */

static cJSON *rows_json(const check_row_err *w, int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "head", w[i].head);
        cJSON_AddNumberToObject(o, "row", (double)w[i].row);
        cJSON_AddNumberToObject(o, "l2", w[i].l2);
        cJSON_AddNumberToObject(o, "rel_l2", w[i].rel_l2);
        cJSON_AddNumberToObject(o, "max_abs", w[i].max_abs);
        cJSON_AddItemToArray(a, o);
    }
    return a;
}

/* cJSON prints non-finite numbers as null; keep them readable as strings. */
static void add_num(cJSON *o, const char *k, double x)
{
    if (isfinite(x))
        cJSON_AddNumberToObject(o, k, x);
    else
        cJSON_AddStringToObject(o, k, isnan(x) ? "nan" : x > 0 ? "inf"
                                                               : "-inf");
}

static cJSON *at_json(const int64_t *at, int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber((double)at[i]));
    return a;
}

static cJSON *section(cJSON *root, const char *name, int present, int fault)
{
    cJSON *s = cJSON_AddObjectToObject(root, name);
    cJSON_AddBoolToObject(s, "present", present);
    if (present)
        cJSON_AddStringToObject(s, "verdict", fault ? "fault" : "ok");
    return s;
}

static cJSON *report_json(const check_report *r)
{
    cJSON *root = cJSON_CreateObject();
    if (!root)
        return NULL;
    const stem_dims *d = &r->dims;
    const stem_params *p = &r->params;
    cJSON_AddStringToObject(root, "input", r->in_path);
    cJSON_AddStringToObject(root, "gpu", r->gpu_path);
    cJSON_AddStringToObject(root, "result",
                            check_report_failed(r) ? "fail" : "pass");
    cJSON *s = cJSON_AddObjectToObject(root, "shape");
    cJSON_AddNumberToObject(s, "hq", (double)d->hq);
    cJSON_AddNumberToObject(s, "hkv", (double)d->hkv);
    cJSON_AddNumberToObject(s, "lq", (double)d->lq);
    cJSON_AddNumberToObject(s, "lk", (double)d->lk);
    cJSON_AddNumberToObject(s, "d", (double)d->d);
    cJSON_AddNumberToObject(s, "qb", (double)d->qb);
    cJSON_AddNumberToObject(s, "kb", (double)d->kb);
    s = cJSON_AddObjectToObject(root, "params");
    cJSON_AddStringToObject(s, "profile", stem_profile_name(p->profile));
    cJSON_AddNumberToObject(s, "alpha", p->alpha);
    cJSON_AddNumberToObject(s, "keep_ratio", p->keep_ratio);
    cJSON_AddNumberToObject(s, "block", p->block);
    cJSON_AddNumberToObject(s, "stride", p->stride);
    cJSON_AddNumberToObject(s, "lambda", p->value_weight);
    cJSON_AddNumberToObject(s, "sinks", p->sinks);
    cJSON_AddNumberToObject(s, "window", p->window);
    cJSON_AddBoolToObject(s, "from_metadata", r->params_source != NULL);
    cJSON_AddStringToObject(root, "dtype", r->dtype);
    cJSON_AddStringToObject(root, "dtype_source", r->dtype_source);
    s = cJSON_AddObjectToObject(root, "tolerances");
    cJSON_AddNumberToObject(s, "logit", r->tol.logit);
    cJSON_AddNumberToObject(s, "tau", r->tol.tau);
    cJSON_AddNumberToObject(s, "out_rel_l2", r->tol.out_rel_l2);
    cJSON_AddNumberToObject(s, "lse_abs", r->tol.lse_abs);

    s = section(root, "logits", r->have_logits, r->logits_fault);
    if (r->have_logits) {
        cJSON_AddNumberToObject(s, "pattern_mismatch",
                                (double)r->logits.pattern_mismatch);
        cJSON_AddNumberToObject(s, "nan_gpu", (double)r->logits.nan_gpu);
        add_num(s, "max_abs", r->logits.max_abs);
        cJSON_AddItemToObject(s, "max_at", at_json(r->logits.max_at, 3));
    }
    s = section(root, "mask", r->have_mask, r->mask_fault);
    if (r->have_mask) {
        const check_mask_result *m = &r->mask;
        cJSON_AddNumberToObject(s, "differences", (double)m->n_diff);
        cJSON_AddNumberToObject(s, "ties", (double)m->n_tie);
        cJSON_AddNumberToObject(s, "faults", (double)m->n_fault);
        cJSON_AddNumberToObject(s, "max_tie_gap", m->max_tie_gap);
        cJSON_AddNumberToObject(s, "gpu_selected", (double)m->gpu_selected);
        cJSON_AddNumberToObject(s, "ref_selected", (double)m->ref_selected);
        cJSON_AddNumberToObject(s, "rows_without_diagonal",
                                (double)m->rows_without_diagonal);
        cJSON *a = cJSON_AddArrayToObject(s, "diffs");
        for (int64_t i = 0; i < m->n_diff; i++) {
            const check_mask_diff *x = &m->diffs[i];
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "head", x->head);
            cJSON_AddNumberToObject(o, "qblock", x->qblock);
            cJSON_AddNumberToObject(o, "kblock", x->kblock);
            cJSON_AddStringToObject(o, "kind", check_diff_kind_name(x->kind));
            cJSON_AddBoolToObject(o, "gpu_kept", x->gpu_kept);
            add_num(o, "logit", x->logit);
            add_num(o, "threshold", x->threshold);
            add_num(o, "gap", x->gap);
            cJSON_AddItemToArray(a, o);
        }
    }
    s = section(root, "out", r->have_out, r->out_fault);
    if (r->have_out) {
        const check_out_result *o = &r->out;
        add_num(s, "rel_l2", o->rel_l2);
        add_num(s, "max_abs", o->max_abs);
        cJSON_AddItemToObject(s, "max_at", at_json(o->max_at, 3));
        cJSON_AddNumberToObject(s, "nonfinite", (double)o->nonfinite);
        cJSON_AddBoolToObject(s, "under_reference_mask", r->out_vs_ref_mask);
        cJSON_AddBoolToObject(s, "diagonal_added", r->diag_added);
        cJSON *hs = cJSON_AddArrayToObject(s, "heads");
        for (int64_t h = 0; h < o->hq; h++) {
            cJSON *x = cJSON_CreateObject();
            add_num(x, "rel_l2", o->head_rel_l2[h]);
            if (o->dense) {
                add_num(x, "dense_t", o->dense[h].t);
                add_num(x, "dense_spread", o->dense[h].spread);
                add_num(x, "masked_vs_dense", o->dense[h].sep_rel);
                cJSON_AddBoolToObject(x, "decidable", o->dense[h].decidable);
                cJSON_AddBoolToObject(x, "ignores_mask", o->dense[h].dense);
            }
            cJSON_AddItemToArray(hs, x);
        }
        cJSON_AddItemToObject(s, "worst_rows", rows_json(o->worst,
                                                         o->nworst));
    }
    s = section(root, "lse", r->have_lse, r->lse_fault);
    if (r->have_lse) {
        add_num(s, "max_abs", r->lse.max_abs);
        cJSON_AddItemToObject(s, "max_at", at_json(r->lse.max_at, 2));
        add_num(s, "mean_abs", r->lse.mean_abs);
        cJSON_AddNumberToObject(s, "nonfinite", (double)r->lse.nonfinite);
        cJSON_AddBoolToObject(s, "base2_hint", r->lse.base2_hint);
        cJSON_AddItemToObject(s, "worst_rows",
                              rows_json(r->lse.worst, r->lse.nworst));
    }
    cJSON_AddNumberToObject(root, "seconds", r->seconds);
    return root;
}

/* See check_report.h. */
int check_report_json(const check_report *r, const char *path, char *err,
                      size_t errlen)
{
    cJSON *root = report_json(r);
    char *text = root ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    if (!text) {
        snprintf(err, errlen, "out of memory building the JSON report");
        return -1;
    }
    const void *ptrs[2] = {text, "\n"};
    size_t lens[2] = {strlen(text), 1};
    int rc = tf_write_atomic(path, 2, ptrs, lens, err, errlen);
    cJSON_free(text);
    return rc;
}
