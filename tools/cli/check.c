/*
 * check.c - the comparisons of SPEC.md section 5 (see check.h).
 */
#include "check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* See check.h. */
const char *check_dtype_canonical(const char *dtype)
{
    static const struct {
        const char *name, *canon;
    } names[] = {
        {"bf16", "bf16"}, {"bfloat16", "bf16"},
        {"fp16", "fp16"}, {"float16", "fp16"}, {"f16", "fp16"},
        {"half", "fp16"},
        {"fp32", "fp32"}, {"float32", "fp32"}, {"f32", "fp32"},
        {"float", "fp32"},
    };
    if (!dtype)
        return NULL;
    if (strncmp(dtype, "torch.", 6) == 0)
        dtype += 6;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcasecmp(dtype, names[i].name) == 0)
            return names[i].canon;
    return NULL;
}

/* See check.h. */
int check_tol_for_dtype(const char *dtype, check_tol *tol)
{
    const char *c = check_dtype_canonical(dtype);
    if (!c || !tol)
        return -1;
    if (strcmp(c, "bf16") == 0)
        *tol = (check_tol){0.06, 0.05, 3e-2, 5e-2};
    else if (strcmp(c, "fp16") == 0)
        *tol = (check_tol){0.01, 0.01, 5e-3, 1e-2};
    else
        *tol = (check_tol){1e-4, 1e-4, 1e-4, 1e-4};
    return 0;
}

/* See check.h. */
int check_logits(const float *ref, const float *gpu, int64_t hq, int64_t qb,
                 int64_t kb, check_logits_result *r)
{
    if (!r)
        return -1;
    memset(r, 0, sizeof(*r));
    if (!ref || !gpu || hq < 1 || qb < 1 || kb < 1)
        return -1;
    int64_t i = 0;
    for (int64_t h = 0; h < hq; h++)
        for (int64_t I = 0; I < qb; I++)
            for (int64_t J = 0; J < kb; J++, i++) {
                float a = ref[i], b = gpu[i];
                int ra = a == -INFINITY, rb = b == -INFINITY;
                if (isnan(b) || b == INFINITY) {
                    r->nan_gpu++;
                    continue;
                }
                if (ra != rb) {
                    if (r->pattern_mismatch++ == 0) {
                        r->first_mismatch[0] = h;
                        r->first_mismatch[1] = I;
                        r->first_mismatch[2] = J;
                    }
                    continue;
                }
                if (ra || !isfinite(a))
                    continue;
                r->finite++;
                double e = fabs((double)b - (double)a);
                if (e > r->max_abs) {
                    r->max_abs = e;
                    r->max_at[0] = h;
                    r->max_at[1] = I;
                    r->max_at[2] = J;
                }
            }
    return 0;
}

/* See check.h. */
const char *check_diff_kind_name(check_diff_kind kind)
{
    switch (kind) {
    case CHECK_TIE: return "tie";
    case CHECK_FAULT_GAP: return "fault";
    case CHECK_FAULT_SINK: return "sink fault";
    case CHECK_FAULT_WINDOW: return "window fault";
    case CHECK_FAULT_FUTURE: return "future fault";
    }
    return "?";
}

static int desc_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

/* See check.h.  The threshold value does not depend on how equal logits
 * are ordered, so sorting the values alone is enough. */
float check_row_threshold(const float *row, int64_t last, int32_t budget)
{
    if (!row || last < 0 || budget < 1)
        return -INFINITY;
    float *w = malloc((size_t)(last + 1) * sizeof(float));
    if (!w)
        return NAN;
    int64_t n = 0;
    for (int64_t j = 0; j <= last; j++)
        if (isfinite(row[j]))
            w[n++] = row[j];
    float thr = -INFINITY;
    if (budget < n) {
        qsort(w, (size_t)n, sizeof(float), desc_float);
        thr = w[budget - 1];
    }
    free(w);
    return thr;
}

static int diff_order(const void *a, const void *b)
{
    const check_mask_diff *x = a, *y = b;
    int fx = x->kind != CHECK_TIE, fy = y->kind != CHECK_TIE;
    if (fx != fy)
        return fy - fx;
    double gx = fabs(x->gap), gy = fabs(y->gap);
    if (gx != gy)
        return (gx < gy) - (gx > gy);
    if (x->head != y->head)
        return x->head - y->head;
    if (x->qblock != y->qblock)
        return x->qblock - y->qblock;
    return x->kblock - y->kblock;
}

/* See check.h. */
int check_mask(const check_mask_geom *g, const float *ref_logits,
               const int32_t *budget, int64_t nbudget,
               const uint8_t *ref_mask, const uint8_t *gpu_mask, double tau,
               check_mask_result *r)
{
    if (!r)
        return -1;
    memset(r, 0, sizeof(*r));
    if (!g || !ref_logits || !budget || nbudget < 1 || !ref_mask ||
        !gpu_mask || g->hq < 1 || g->qb < 1 || g->kb < 1 || g->pb < 0 ||
        !(tau >= 0))
        return -1;
    int64_t cap = 0;
    int64_t cells = g->hq * g->qb * g->kb;
    for (int64_t i = 0; i < cells; i++)
        cap += (ref_mask[i] != 0) != (gpu_mask[i] != 0);
    check_mask_diff *d = NULL;
    if (cap > 0 && !(d = malloc((size_t)cap * sizeof(*d))))
        return -1;
    int64_t n = 0;
    for (int64_t h = 0; h < g->hq; h++) {
        for (int64_t I = 0; I < g->qb; I++) {
            int64_t base = (h * g->qb + I) * g->kb;
            const float *lrow = ref_logits + base;
            const uint8_t *rm = ref_mask + base, *gm = gpu_mask + base;
            int64_t p = I + g->pb;
            int64_t last = p < g->kb - 1 ? p : g->kb - 1;
            if (p <= last && !gm[p])
                r->rows_without_diagonal++;
            int64_t rowdiff = 0;
            for (int64_t J = 0; J < g->kb; J++) {
                r->gpu_selected += J <= last && gm[J];
                r->ref_selected += J <= last && rm[J];
                rowdiff += (rm[J] != 0) != (gm[J] != 0);
            }
            if (!rowdiff)
                continue;
            int32_t b = budget[p < nbudget ? p : nbudget - 1];
            float thr = check_row_threshold(lrow, last, b);
            if (isnan(thr)) {
                free(d);
                memset(r, 0, sizeof(*r));
                return -1;
            }
            for (int64_t J = 0; J < g->kb; J++) {
                if ((rm[J] != 0) == (gm[J] != 0))
                    continue;
                check_mask_diff *x = &d[n++];
                x->head = (int32_t)h;
                x->qblock = (int32_t)I;
                x->kblock = (int32_t)J;
                x->gpu_kept = gm[J] != 0;
                x->logit = lrow[J];
                x->threshold = thr;
                x->gap = (double)lrow[J] - (double)thr;
                if (isnan(x->gap))
                    x->gap = INFINITY;
                if (J > last)
                    x->kind = CHECK_FAULT_FUTURE;
                else if (J < g->sinks)
                    x->kind = CHECK_FAULT_SINK;
                else if (J > p - g->window || (g->keep_diagonal && J == p))
                    x->kind = CHECK_FAULT_WINDOW;
                else if (fabs(x->gap) <= tau)
                    x->kind = CHECK_TIE;
                else
                    x->kind = CHECK_FAULT_GAP;
                if (x->kind == CHECK_TIE) {
                    r->n_tie++;
                    if (fabs(x->gap) > r->max_tie_gap)
                        r->max_tie_gap = fabs(x->gap);
                } else {
                    r->n_fault++;
                }
            }
        }
    }
    if (n > 1)
        qsort(d, (size_t)n, sizeof(*d), diff_order);
    r->n_diff = n;
    r->diffs = d;
    return 0;
}

/* See check.h. */
void check_mask_result_free(check_mask_result *r)
{
    if (!r)
        return;
    free(r->diffs);
    memset(r, 0, sizeof(*r));
}

/* Keep the n largest rows by key (l2, or max_abs when by_max) in w. */
static void keep_worst(check_row_err *w, int cap, int *n,
                       const check_row_err *e, int by_max)
{
    double key = by_max ? e->max_abs : e->l2;
    if (cap < 1)
        return;
    if (*n == cap) {
        double k2 = by_max ? w[cap - 1].max_abs : w[cap - 1].l2;
        if (!(key > k2))
            return;
        (*n)--;
    }
    int i = *n;
    while (i > 0 && key > (by_max ? w[i - 1].max_abs : w[i - 1].l2)) {
        w[i] = w[i - 1];
        i--;
    }
    w[i] = *e;
    (*n)++;
}

/* The ignored-mask statistics of one head (see check.h). */
static void dense_head(const float *g, const float *m, const float *dn,
                       int64_t n, check_dense_head *o)
{
    double gm_dm = 0, dm2 = 0, m2 = 0, gm2 = 0;
    for (int64_t i = 0; i < n; i++) {
        double a = (double)g[i] - m[i], b = (double)dn[i] - m[i];
        gm_dm += a * b;
        dm2 += b * b;
        gm2 += a * a;
        m2 += (double)m[i] * m[i];
    }
    memset(o, 0, sizeof(*o));
    o->sep_rel = m2 > 0 ? sqrt(dm2 / m2) : (dm2 > 0 ? INFINITY : 0);
    if (!(dm2 > 0) || !isfinite(gm2)) {
        o->spread = INFINITY;
        return;
    }
    o->t = gm_dm / dm2;
    double resid2 = gm2 - o->t * o->t * dm2;
    if (resid2 < 0)
        resid2 = 0;
    o->spread = sqrt(resid2) / (sqrt((double)n) * sqrt(dm2));
    o->decidable = o->sep_rel > 1e-5 && o->spread < 1.0 / 12.0;
    o->dense = o->decidable && o->t > 0.5;
}

/* See check.h. */
int check_output(const float *gpu, const float *ref_masked,
                 const float *ref_dense, int64_t hq, int64_t lq, int64_t d,
                 int nworst, check_out_result *r)
{
    if (!r)
        return -1;
    memset(r, 0, sizeof(*r));
    if (!gpu || !ref_masked || hq < 1 || lq < 1 || d < 1 || nworst < 0)
        return -1;
    r->hq = hq;
    r->lq = lq;
    r->d = d;
    r->head_rel_l2 = calloc((size_t)hq, sizeof(double));
    r->worst = nworst ? calloc((size_t)nworst, sizeof(check_row_err)) : NULL;
    r->dense = ref_dense ? calloc((size_t)hq, sizeof(check_dense_head)) : NULL;
    if (!r->head_rel_l2 || (nworst && !r->worst) || (ref_dense && !r->dense)) {
        check_out_result_free(r);
        return -1;
    }
    double num = 0, den = 0, worst_head = -1;
    for (int64_t h = 0; h < hq; h++) {
        double hn = 0, hd = 0;
        for (int64_t t = 0; t < lq; t++) {
            const float *gr = gpu + (h * lq + t) * d;
            const float *mr = ref_masked + (h * lq + t) * d;
            check_row_err e = {(int32_t)h, t, 0, 0, 0};
            double rn = 0;
            for (int64_t c = 0; c < d; c++) {
                double x = (double)gr[c] - (double)mr[c];
                if (!isfinite(gr[c])) {
                    r->nonfinite++;
                    x = INFINITY;
                }
                double ax = fabs(x);
                e.l2 += x * x;
                rn += (double)mr[c] * mr[c];
                if (ax > e.max_abs)
                    e.max_abs = ax;
                if (ax > r->max_abs || (isinf(ax) && r->max_abs == 0)) {
                    r->max_abs = ax;
                    r->max_at[0] = h;
                    r->max_at[1] = t;
                    r->max_at[2] = c;
                }
            }
            hn += e.l2;
            hd += rn;
            e.l2 = sqrt(e.l2);
            e.rel_l2 = rn > 0 ? e.l2 / sqrt(rn) : (e.l2 > 0 ? INFINITY : 0);
            keep_worst(r->worst, nworst, &r->nworst, &e, 0);
        }
        r->head_rel_l2[h] = hd > 0 ? sqrt(hn / hd) : (hn > 0 ? INFINITY : 0);
        if (r->head_rel_l2[h] > worst_head || isnan(r->head_rel_l2[h])) {
            worst_head = r->head_rel_l2[h];
            r->worst_head = h;
        }
        num += hn;
        den += hd;
        if (ref_dense) {
            dense_head(gpu + h * lq * d, ref_masked + h * lq * d,
                       ref_dense + h * lq * d, lq * d, &r->dense[h]);
            r->any_dense |= r->dense[h].dense;
        }
    }
    r->rel_l2 = den > 0 ? sqrt(num / den) : (num > 0 ? INFINITY : 0);
    if (r->nonfinite)
        r->rel_l2 = INFINITY;
    return 0;
}

/* See check.h. */
void check_out_result_free(check_out_result *r)
{
    if (!r)
        return;
    free(r->head_rel_l2);
    free(r->worst);
    free(r->dense);
    memset(r, 0, sizeof(*r));
}

/* See check.h. */
int check_lse(const float *gpu, const float *ref, int64_t hq, int64_t lq,
              int nworst, check_lse_result *r)
{
    if (!r)
        return -1;
    memset(r, 0, sizeof(*r));
    if (!gpu || !ref || hq < 1 || lq < 1 || nworst < 0)
        return -1;
    r->worst = nworst ? calloc((size_t)nworst, sizeof(check_row_err)) : NULL;
    if (nworst && !r->worst)
        return -1;
    double sum = 0, sum2 = 0;
    int64_t nfin = 0;
    for (int64_t h = 0; h < hq; h++)
        for (int64_t t = 0; t < lq; t++) {
            float a = ref[h * lq + t], b = gpu[h * lq + t];
            double e;
            if (!isfinite(b) && isfinite(a)) {
                r->nonfinite++;
                e = INFINITY;
            } else if (!isfinite(a)) {
                e = (a == b) ? 0 : INFINITY;
            } else {
                e = fabs((double)b - a);
                sum += e;
                sum2 += fabs((double)b - a / M_LN2);
                nfin++;
            }
            if (e > r->max_abs) {
                r->max_abs = e;
                r->max_at[0] = h;
                r->max_at[1] = t;
            }
            check_row_err w = {(int32_t)h, t, e, 0, e};
            keep_worst(r->worst, nworst, &r->nworst, &w, 1);
        }
    r->mean_abs = nfin ? sum / (double)nfin : 0;
    r->base2_hint = nfin > 0 && sum2 < 0.1 * sum;
    return 0;
}

/* See check.h. */
void check_lse_result_free(check_lse_result *r)
{
    if (!r)
        return;
    free(r->worst);
    memset(r, 0, sizeof(*r));
}
