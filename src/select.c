/*
 * select.c - block selection, docs/ALGORITHM.md section 3: where the key
 * blocks of a query block are chosen.
 *
 * Row (h, I) sits at absolute block position p = I + offset/B.  It keeps the
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

/*
 * The selection of one row, the one place where the rule is written (both
 * stem_select and stem_explain_row run it).  logits: the row's kb logits;
 * p: its absolute block position; budget: budget[p]; work: room for kb
 * candidates, left holding the candidates (finite logits of blocks
 * 0 .. min(p, kb - 1)) sorted by the rule's order, largest first; why: kb
 * bytes, set to the STEM_WHY_* bits of each block (0: dropped).  Returns
 * the number of candidates.
 */
static int64_t select_row(const stem_params *prm, const float *logits,
                          int64_t kb, int64_t p, int32_t budget, cand *work,
                          uint8_t *why)
{
    int64_t last = p < kb - 1 ? p : kb - 1;
    memset(why, 0, (size_t)kb);
    int64_t n = 0;
    for (int64_t j = 0; j <= last; j++)
        if (isfinite(logits[j]))
            work[n++] = (cand){logits[j], (int32_t)j};
    qsort(work, (size_t)n, sizeof(cand), cand_order);
    int64_t take = budget < n ? budget : n;
    for (int64_t i = 0; i < take; i++)
        why[work[i].index] |= STEM_WHY_TOPK;
    if (prm->ties_keep_all && take > 0) {
        float thr = work[take - 1].logit;
        for (int64_t i = take; i < n && work[i].logit >= thr; i++)
            why[work[i].index] |= STEM_WHY_TIE;
    }
    /* Sinks: clipped to the causal range, or (sinks_unclipped) set in every
     * row as hpc-ops does; attention never reads bits beyond the diagonal. */
    int64_t sink_end = prm->sinks_unclipped ? kb - 1 : last;
    for (int64_t j = 0; j < prm->sinks && j <= sink_end; j++)
        why[j] |= STEM_WHY_SINK;
    for (int64_t j = p - prm->window + 1; j <= p; j++)
        if (j >= 0 && j <= last)
            why[j] |= STEM_WHY_WINDOW;
    if (prm->keep_diagonal && p <= last)
        why[p] |= STEM_WHY_DIAGONAL;
    return n;
}

/* budget[p]; p < n in every valid call (n >= Kb), budget[n - 1] beyond. */
static int32_t budget_at(const int32_t *budget, int64_t n, int64_t p)
{
    return p < n ? budget[p] : budget[n - 1];
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
    return stem_budget_check(params, d->kb);
}

/* Validate params and dims, then tabulate the budget of the positions
 * below Kb, the only ones a call reads (memory bounded by Kb, not by
 * prompt_blocks), into a new array *budget the caller frees. */
static stem_status select_begin(const stem_params *params,
                                const stem_dims *dims, int32_t **budget)
{
    stem_status st = stem_params_validate(params);
    if (st == STEM_OK)
        st = check_dims(params, dims);
    if (st != STEM_OK)
        return st;
    int32_t *b = malloc((size_t)dims->kb * sizeof(int32_t));
    if (!b)
        return STEM_ERR_NOMEM;
    if ((st = stem_budget_prefix(params, dims->kb, dims->kb, b)) != STEM_OK) {
        free(b);
        return st;
    }
    *budget = b;
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
    int32_t *budget;
    stem_status st = select_begin(params, dims, &budget);
    if (st != STEM_OK)
        return st;

    const int64_t Qb = dims->qb, Kb = dims->kb, rows = dims->hq * Qb;
    const int64_t pb = dims->offset / params->block;
    const int64_t n = Kb;
    const int nt = stem_thread_count(params);
    cand *work = malloc((size_t)nt * (size_t)Kb * sizeof(cand));
    uint8_t *own = mask ? NULL : malloc((size_t)rows * (size_t)Kb);
    if (!work || (!mask && !own)) {
        free(budget), free(work), free(own);
        return STEM_ERR_NOMEM;
    }
    uint8_t *m = mask ? mask : own;
    #pragma omp parallel for schedule(dynamic, 4) num_threads(nt)
    for (int64_t r = 0; r < rows; r++) {
        cand *w = work;
#ifdef _OPENMP
        w += (size_t)omp_get_thread_num() * (size_t)Kb;
#endif
        int64_t p = r % Qb + pb;
        uint8_t *mrow = m + r * Kb;
        select_row(params, logits + r * Kb, Kb, p, budget_at(budget, n, p),
                   w, mrow);
        for (int64_t j = 0; j < Kb; j++)
            mrow[j] = mrow[j] != 0;
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

stem_status stem_explain_row(const stem_params *params, const stem_dims *dims,
                             const float *logits, int64_t head,
                             int64_t qblock, stem_explain_summary *summary,
                             stem_explain_block *blocks)
{
    if (!params || !dims || !logits || !summary || !blocks)
        return STEM_ERR_NULL;
    int32_t *budget;
    stem_status st = select_begin(params, dims, &budget);
    if (st != STEM_OK)
        return st;
    if (head < 0 || head >= dims->hq || qblock < 0 || qblock >= dims->qb) {
        free(budget);
        return STEM_ERR_PARAM;
    }

    const int64_t Kb = dims->kb;
    const int64_t p = qblock + dims->offset / params->block;
    const int64_t n = Kb;
    cand *work = malloc((size_t)Kb * sizeof(cand));
    uint8_t *why = malloc((size_t)Kb);
    if (!work || !why) {
        free(budget), free(work), free(why);
        return STEM_ERR_NOMEM;
    }
    const float *row = logits + ((size_t)head * (size_t)dims->qb +
                                 (size_t)qblock) * (size_t)Kb;
    const int32_t b = budget_at(budget, n, p);
    const int64_t cands = select_row(params, row, Kb, p, b, work, why);

    stem_explain_summary s = {0};
    s.head = head;
    s.qblock = qblock;
    s.position = p;
    s.n = stem_budget_blocks(params, Kb);
    s.budget = b;
    s.candidates = cands;
    s.threshold = b >= 1 && b < cands ? work[b - 1].logit : -INFINITY;
    for (int64_t j = 0; j < Kb; j++) {
        blocks[j] = (stem_explain_block){row[j], 0, why[j], why[j] != 0};
        s.kept += why[j] != 0;
        s.topk += (why[j] & (STEM_WHY_TOPK | STEM_WHY_TIE)) != 0;
    }
    for (int64_t i = 0; i < cands; i++)
        blocks[work[i].index].rank = (int32_t)(i + 1);
    *summary = s;
    free(budget), free(work), free(why);
    return STEM_OK;
}
