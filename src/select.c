/*
 * select.c - block selection, docs/ALGORITHM.md section 3: where the key
 * blocks of a query block are chosen.
 *
 * Row (h, I) sits at absolute block position p = I + P/B.  It keeps the
 * budget[p] largest finite logits among key blocks 0..p (ties: the lower
 * index wins; with ties_keep_all every block >= the threshold), then, on top
 * and whatever their logits, the first `sinks` blocks, the `window` blocks
 * ending at p, and block p itself when keep_diagonal is set.  Sinks are
 * clipped to the causal range unless sinks_unclipped is set (hpc-ops), in
 * which case rows before block `sinks` carry sink bits above the diagonal.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#ifdef _OPENMP
#include <omp.h>
#endif

typedef struct cand {
    float logit;
    int32_t index;
} cand;

/* Larger logit first; equal logits: lower index first. */
static int cand_order(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->logit > y->logit)
        return -1;
    if (x->logit < y->logit)
        return 1;
    return (x->index > y->index) - (x->index < y->index);
}

static void select_row(const stem_params *prm, const float *logits,
                       int64_t kb, int64_t p, int32_t budget, cand *work,
                       uint8_t *mrow)
{
    int64_t last = p < kb - 1 ? p : kb - 1;
    memset(mrow, 0, (size_t)kb);
    int64_t n = 0;
    for (int64_t j = 0; j <= last; j++)
        if (isfinite(logits[j]))
            work[n++] = (cand){logits[j], (int32_t)j};
    qsort(work, (size_t)n, sizeof(cand), cand_order);
    int64_t take = budget < n ? budget : n;
    for (int64_t i = 0; i < take; i++)
        mrow[work[i].index] = 1;
    if (prm->ties_keep_all && take > 0) {
        float thr = work[take - 1].logit;
        for (int64_t i = take; i < n && work[i].logit >= thr; i++)
            mrow[work[i].index] = 1;
    }
    /* Sinks: clipped to the causal range, or (sinks_unclipped) set in every
     * row as hpc-ops does; attention never reads bits beyond the diagonal. */
    int64_t sink_end = prm->sinks_unclipped ? kb - 1 : last;
    for (int64_t j = 0; j < prm->sinks && j <= sink_end; j++)
        mrow[j] = 1;
    for (int64_t j = p - prm->window + 1; j <= p; j++)
        if (j >= 0 && j <= last)
            mrow[j] = 1;
    if (prm->keep_diagonal && p <= last)
        mrow[p] = 1;
}

static stem_status check_dims(const stem_params *params, const stem_dims *d)
{
    if (d->hq < 1 || d->hkv < 1 || d->hq % d->hkv || d->lq < 1 ||
        d->lk < d->lq || d->offset != d->lk - d->lq || d->d < 1)
        return STEM_ERR_SHAPE;
    int64_t B = params->block;
    /* ceil(n / B) without forming n + B - 1, which can overflow */
    if (d->qb != d->lq / B + (d->lq % B != 0) || d->kb != d->lk / B + (d->lk % B != 0))
        return STEM_ERR_SHAPE;
    if (d->offset % B)
        return STEM_ERR_OFFSET;
    int64_t t, cells;
    if (!stem_mul_ok(d->hq, d->qb, &t) || !stem_mul_ok(t, d->kb, &cells) ||
        cells > INT64_MAX / 16 || d->kb > INT32_MAX)
        return STEM_ERR_OVERFLOW;
    if (params->prompt_blocks != 0 && params->prompt_blocks < d->kb)
        return STEM_ERR_PARAM;
    return STEM_OK;
}

stem_status stem_select(const stem_params *params, const stem_dims *dims,
                        const float *logits, uint8_t *mask,
                        int64_t *row_start, int32_t *blocks)
{
    if (!params || !dims || !logits)
        return STEM_ERR_NULL;
    if (!mask && !row_start && !blocks)
        return STEM_ERR_NULL;
    if ((row_start == NULL) != (blocks == NULL))
        return STEM_ERR_NULL;
    stem_status st = stem_params_validate(params);
    if (st != STEM_OK)
        return st;
    if ((st = check_dims(params, dims)) != STEM_OK)
        return st;

    const int64_t Qb = dims->qb, Kb = dims->kb, rows = dims->hq * Qb;
    const int64_t pb = dims->offset / params->block;
    const int64_t n = stem_budget_blocks(params, Kb);
    const int nt = stem_thread_count(params);
    int32_t *budget = malloc((size_t)n * sizeof(int32_t));
    cand *work = malloc((size_t)nt * (size_t)Kb * sizeof(cand));
    uint8_t *own = mask ? NULL : malloc((size_t)rows * (size_t)Kb);
    if (!budget || !work || (!mask && !own)) {
        free(budget), free(work), free(own);
        return STEM_ERR_NOMEM;
    }
    st = stem_budget(params, Kb, budget);
    if (st != STEM_OK) {
        free(budget), free(work), free(own);
        return st;
    }
    uint8_t *m = mask ? mask : own;
    #pragma omp parallel for schedule(dynamic, 4) num_threads(nt)
    for (int64_t r = 0; r < rows; r++) {
        cand *w = work;
#ifdef _OPENMP
        w += (size_t)omp_get_thread_num() * (size_t)Kb;
#endif
        int64_t p = r % Qb + pb;
        int32_t b = p < n ? budget[p] : budget[n - 1];
        select_row(params, logits + r * Kb, Kb, p, b, w, m + r * Kb);
    }
    if (row_start) {
        int64_t at = 0;
        for (int64_t r = 0; r < rows; r++) {
            row_start[r] = at;
            for (int64_t j = 0; j < Kb; j++)
                if (m[r * Kb + j])
                    blocks[at++] = (int32_t)j;
        }
        row_start[rows] = at;
    }
    free(budget);
    free(work);
    free(own);
    return STEM_OK;
}
