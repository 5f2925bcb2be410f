/*
 * check.c - the tool's mask classification for `stem mask --diff` and
 * `stem explain` (see check.h).
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
