/*
 * budget.c - Token Position-Decay, docs/ALGORITHM.md section 2: how many
 * top-k key blocks a query block keeps, as a function of its absolute
 * block position.
 */
#include <math.h>

#include "internal.h"

/* The keep count k of the TPD rule for n blocks. */
static int64_t tpd_k(double rho, int64_t n)
{
    int64_t k = (int64_t)(rho * (double)n);
    if (k != n) {
        if (n < 56)
            k = n;
        else if (n < 160)
            k = (int64_t)(0.2 * (double)n + 30.0);
        else
            k = (int64_t)(0.1 * (double)n) + 30;
    }
    return k;
}

/* floor(x) within 1 .. k, as a budget entry: an int32, so a k beyond
 * INT32_MAX (prompt_blocks above 2^31) gives INT32_MAX, which keeps every
 * candidate of any row as k would. */
static int32_t clamp_budget(double x, int64_t k)
{
    double f = floor(x);
    if (f < 1.0)
        return 1;
    if (f > (double)k)
        f = (double)k;
    return f > (double)INT32_MAX ? INT32_MAX : (int32_t)f;
}

/* torch.linspace(k, k*alpha, m)[j] in float64, in torch's evaluation order:
 * the first half counts up from the start, the second half down from the
 * end. */
static double linspace_at(double start, double end, int64_t m, int64_t j)
{
    if (m == 1)
        return start;
    double step = (end - start) / (double)(m - 1);
    if (j < m / 2)
        return start + step * (double)j;
    return end - step * (double)(m - 1 - j);
}

static void budget_tpd(const stem_params *p, int64_t n, int64_t count, int fp32,
                       int32_t *out)
{
    int64_t k = tpd_k(p->keep_ratio, n);
    int64_t m = n - k;
    for (int64_t pos = 0; pos < count; pos++) {
        if (pos < k || m <= 0) {
            out[pos] = clamp_budget((double)k, k);
            continue;
        }
        int64_t j = pos - k;
        double x;
        if (!fp32) {
            x = linspace_at((double)k, (double)k * p->alpha, m, j);
        } else if (m == 1) {
            x = (double)k;
        } else {
            float kf = (float)k, af = (float)p->alpha;
            float span = kf * af;
            span = span - kf;
            float t = (float)j / (float)(m - 1);
            x = (double)fmaf(t, span, kf);
        }
        out[pos] = clamp_budget(x, k);
    }
}

static void budget_paper(const stem_params *p, int64_t n, int64_t count,
                         int32_t *out)
{
    /* Lk is taken as n * B: for a threshold that is a multiple of B (16384)
     * this is the same test as Lk <= threshold. */
    double lk = (double)n * (double)p->block;
    double rho = lk <= (double)p->paper_long_tokens ? p->paper_ratio_short
                                                    : p->paper_ratio_long;
    double k0 = ceil(rho * (double)n);
    if (k0 < (double)p->paper_min_k0)
        k0 = (double)p->paper_min_k0;
    for (int64_t pos = 0; pos < count; pos++) {
        double x = ceil(k0 - k0 * (1.0 - p->alpha) * (double)pos / (double)n);
        out[pos] = x < 1.0 ? 1 : (x > 2147483647.0 ? INT32_MAX : (int32_t)x);
    }
}

/* Entries 0 .. count-1 of the budget of n positions. */
static void budget_fill(const stem_params *params, int64_t n, int64_t count,
                        int32_t *budget)
{
    switch (params->budget_rule) {
    case STEM_BUDGET_TPD_F64:
        budget_tpd(params, n, count, 0, budget);
        break;
    case STEM_BUDGET_TPD_F32_FMA:
        budget_tpd(params, n, count, 1, budget);
        break;
    case STEM_BUDGET_PAPER_LINEAR:
        budget_paper(params, n, count, budget);
        break;
    }
}

/* STEM_ERR_PARAM unless prompt_blocks is 0 or at least kb. */
static stem_status prompt_blocks_ok(const stem_params *params, int64_t kb)
{
    if (params->prompt_blocks != 0 && params->prompt_blocks < kb)
        return stem_fail(STEM_ERR_PARAM, "prompt_blocks = %lld: must be 0 "
                         "or at least Kb = %lld key blocks of this call",
                         (long long)params->prompt_blocks, (long long)kb);
    return STEM_OK;
}

/* See internal.h. */
int64_t stem_budget_blocks(const stem_params *params, int64_t kb)
{
    return params->prompt_blocks > 0 ? params->prompt_blocks : kb;
}

/* See internal.h. */
stem_status stem_budget_check(const stem_params *params, int64_t kb)
{
    return prompt_blocks_ok(params, kb);
}

stem_status stem_budget_length(const stem_params *params, int64_t kb,
                               int64_t *n)
{
    stem_detail_clear();
    if (!params || !n)
        return stem_fail(STEM_ERR_NULL, "%s is NULL", !params ? "params"
                                                               : "n");
    stem_status st = stem_params_validate(params);
    if (st != STEM_OK)
        return st;
    if (kb < 1 || kb > INT32_MAX)
        return stem_fail(STEM_ERR_PARAM, "kb = %lld: must be in 1..%d",
                         (long long)kb, INT32_MAX);
    if ((st = prompt_blocks_ok(params, kb)) != STEM_OK)
        return st;
    *n = stem_budget_blocks(params, kb);
    return STEM_OK;
}

stem_status stem_budget(const stem_params *params, int64_t kb, int32_t *budget)
{
    int64_t n;
    if (!params || !budget)
        return STEM_ERR_NULL;
    stem_status st = stem_budget_length(params, kb, &n);
    if (st != STEM_OK)
        return st;
    budget_fill(params, n, n, budget);
    return STEM_OK;
}

stem_status stem_budget_prefix(const stem_params *params, int64_t kb,
                               int64_t count, int32_t *budget)
{
    stem_status st = prompt_blocks_ok(params, kb);
    if (st != STEM_OK)
        return st;
    int64_t n = stem_budget_blocks(params, kb);
    if (count < 1 || count > n)
        return stem_fail(STEM_ERR_PARAM, "count = %lld: must be in 1..%lld",
                         (long long)count, (long long)n);
    budget_fill(params, n, count, budget);
    return STEM_OK;
}
