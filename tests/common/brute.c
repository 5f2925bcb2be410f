/*
 * brute.c - the float64 brute-force oracle of brute.h, written from
 * docs/ALGORITHM.md.
 */
#include "brute.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

bf_dims bf_dims_of(const stem_params *p, const stem_tensor *q,
                   const stem_tensor *k)
{
    bf_dims d;
    d.hq = q->heads;
    d.hkv = k->heads;
    d.lq = q->tokens;
    d.lk = k->tokens;
    d.d = q->dim;
    d.offset = d.lk - d.lq;
    d.qb = (d.lq + p->block - 1) / p->block;
    d.kb = (d.lk + p->block - 1) / p->block;
    d.block_offset = d.offset / p->block;
    return d;
}

/* Head h of a view as doubles [rows, d], rows >= tokens; rows past the
 * view's tokens are zero (the padding of ALGORITHM.md section 1). */
static double *load_head(const stem_tensor *t, int64_t h, int64_t rows)
{
    double *x = calloc((size_t)(rows * t->dim), sizeof *x);
    if (!x)
        return NULL;
    for (int64_t n = 0; n < t->tokens && n < rows; n++)
        for (int64_t c = 0; c < t->dim; c++)
            x[n * t->dim + c] = tu_get(t, h, n, c);
    return x;
}

/* ||v_t||_2 of every token of kv head g, in double. */
static double *value_norms(const stem_tensor *v, int64_t g)
{
    double *nr = calloc((size_t)(v->tokens > 0 ? v->tokens : 1), sizeof *nr);
    if (!nr)
        return NULL;
    for (int64_t t = 0; t < v->tokens; t++) {
        double ss = 0.0;
        for (int64_t c = 0; c < v->dim; c++) {
            double x = tu_get(v, g, t, c);
            ss += x * x;
        }
        nr[t] = sqrt(ss);
    }
    return nr;
}

/* Per downsampled key column b (ngroups of them) the value bonus of the
 * z-score rules; per key block the bonus of the log-max rule.  Exactly one
 * of the two arrays is filled, the other zeroed. */
static void value_terms(const stem_params *p, const double *nr, int64_t lk,
                        int64_t kb, double *col_bonus, double *block_bonus)
{
    const int64_t s = p->stride, B = p->block;
    const int64_t ngroups = kb * (B / s);
    memset(col_bonus, 0, (size_t)ngroups * sizeof *col_bonus);
    memset(block_bonus, 0, (size_t)kb * sizeof *block_bonus);

    if (p->value_rule == STEM_VALUE_LOG_MAX_BLOCK) {
        for (int64_t J = 0; J < kb; J++) {
            double mx = 0.0;
            for (int64_t t = J * B; t < (J + 1) * B && t < lk; t++)
                if (nr[t] > mx)
                    mx = nr[t];
            double lg = log(mx);                /* -inf for mx = 0 */
            block_bonus[J] = p->value_weight * (lg > 0.0 ? lg : 0.0);
        }
        return;
    }
    if (p->value_rule != STEM_VALUE_ZSCORE_FULL &&
        p->value_rule != STEM_VALUE_ZSCORE_PADDED)
        return;

    double *l = malloc((size_t)ngroups * sizeof *l);
    if (!l)
        abort();
    for (int64_t b = 0; b < ngroups; b++) {
        double g = 0.0;                         /* padding tokens: 0 */
        for (int64_t t = b * s; t < (b + 1) * s && t < lk; t++)
            if (nr[t] > g)
                g = nr[t];
        l[b] = log(g + 1e-6);
    }
    int64_t count = p->value_rule == STEM_VALUE_ZSCORE_FULL ? lk / s : ngroups;
    double mean = 0.0, sd = 0.0;
    if (count > 0) {
        double sum = 0.0;
        for (int64_t b = 0; b < count; b++)
            sum += l[b];
        mean = sum / (double)count;
        if (count > 1) {
            double ss = 0.0;
            for (int64_t b = 0; b < count; b++)
                ss += (l[b] - mean) * (l[b] - mean);
            sd = sqrt(ss / (double)(count - 1));
        }
    }
    /* With zero full groups (Lk < s) there are no statistics: the term
     * is 0 (docs/ALGORITHM.md section 1). */
    for (int64_t b = 0; b < ngroups && count > 0; b++) {
        double z = (l[b] - mean) / (sd + 1e-6);
        col_bonus[b] = p->value_weight * (z > 0.0 ? z : 0.0);
    }
    free(l);
}

int bf_block_logits(const stem_params *p, const stem_tensor *q,
                    const stem_tensor *k, const stem_tensor *v, double *L)
{
    const bf_dims dm = bf_dims_of(p, q, k);
    const int64_t B = p->block, s = p->stride, G = B / s, d = dm.d;
    const int64_t ngroups = dm.kb * G;
    const double scale = p->qk_scaled ? 1.0 / (sqrt((double)d) * (double)s * p->norm) : 1.0;
    const int64_t group = dm.hq / dm.hkv;
    int rc = -1;

    double *col_bonus = malloc((size_t)ngroups * sizeof *col_bonus);
    double *block_bonus = malloc((size_t)dm.kb * sizeof *block_bonus);
    if (!col_bonus || !block_bonus)
        goto out;

    for (int64_t h = 0; h < dm.hq; h++) {
        const int64_t g = h / group;
        double *qh = load_head(q, h, dm.qb * B);
        double *kh = load_head(k, g, dm.kb * B);
        double *nr = value_norms(v, g);
        if (!qh || !kh || !nr) {
            free(qh);
            free(kh);
            free(nr);
            goto out;
        }
        value_terms(p, nr, dm.lk, dm.kb, col_bonus, block_bonus);
        for (int64_t I = 0; I < dm.qb; I++) {
            for (int64_t J = 0; J < dm.kb; J++) {
                double *dst = &L[(h * dm.qb + I) * dm.kb + J];
                if (J > I + dm.block_offset) {
                    *dst = -INFINITY;
                    continue;
                }
                double acc = 0.0;
                for (int64_t a = I * G; a < (I + 1) * G; a++) {
                    for (int64_t b = J * G; b < (J + 1) * G; b++) {
                        double S = 0.0;
                        for (int64_t i = 0; i < s; i++) {
                            const double *qr = qh + (a * s + (s - 1 - i)) * d;
                            const double *kr = kh + (b * s + i) * d;
                            for (int64_t c = 0; c < d; c++)
                                S += qr[c] * kr[c];
                        }
                        acc += S * scale + col_bonus[b];
                    }
                }
                *dst = acc / (double)(G * G) + block_bonus[J];
            }
        }
        free(qh);
        free(kh);
        free(nr);
    }
    rc = 0;
out:
    free(col_bonus);
    free(block_bonus);
    return rc;
}

/* The k of the token position-decay rule (ALGORITHM.md section 2). */
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

static int32_t clamp_budget(double x, int64_t k)
{
    double f = floor(x);
    if (f < 1.0)
        return 1;
    if (f > (double)k)
        return (int32_t)k;
    return (int32_t)f;
}

void bf_budget(const stem_params *p, int64_t n, int64_t lk_tokens,
               int32_t *budget)
{
    if (p->budget_rule == STEM_BUDGET_PAPER_LINEAR) {
        double rho = lk_tokens <= p->paper_long_tokens ? p->paper_ratio_short
                                                       : p->paper_ratio_long;
        int64_t k0 = (int64_t)ceil(rho * (double)n);
        if (k0 < p->paper_min_k0)
            k0 = p->paper_min_k0;
        for (int64_t pos = 0; pos < n; pos++) {
            double x = (double)k0 - (double)k0 * (1.0 - p->alpha) * (double)pos / (double)n;
            budget[pos] = (int32_t)ceil(x);
        }
        return;
    }
    const int64_t k = tpd_k(p->keep_ratio, n);
    const int64_t m = n - k;
    for (int64_t pos = 0; pos < n; pos++) {
        if (pos < k) {
            budget[pos] = (int32_t)k;
            continue;
        }
        const int64_t j = pos - k;
        if (m == 1) {
            budget[pos] = clamp_budget((double)k, k);
            continue;
        }
        if (p->budget_rule == STEM_BUDGET_TPD_F32_FMA) {
            float t = (float)j / (float)(m - 1);
            float span = (float)k * (float)p->alpha - (float)k;
            float x = fmaf(t, span, (float)k);
            budget[pos] = clamp_budget((double)x, k);
        } else {
            /* torch.linspace(k, k*alpha, m) in float64, both halves. */
            double start = (double)k, end = (double)k * p->alpha;
            double step = (end - start) / (double)(m - 1);
            double x = j < m / 2 ? start + step * (double)j
                                 : end - step * (double)(m - 1 - j);
            budget[pos] = clamp_budget(x, k);
        }
    }
}

int bf_forced(const stem_params *p, int64_t pos, int64_t J)
{
    if (J < 0 || J > pos)
        return 0;
    if (J < p->sinks)
        return 1;
    if (J > pos - p->window)
        return 1;
    if (p->keep_diagonal && J == pos)
        return 1;
    return 0;
}

void bf_select(const stem_params *p, const bf_dims *dm, const double *L,
               const int32_t *budget, uint8_t *mask, double *thr,
               uint8_t *topk)
{
    const int64_t kb = dm->kb;
    int64_t *order = malloc((size_t)kb * sizeof *order);
    if (!order)
        abort();
    for (int64_t h = 0; h < dm->hq; h++) {
        for (int64_t I = 0; I < dm->qb; I++) {
            const int64_t row = h * dm->qb + I;
            const double *x = L + row * kb;
            uint8_t *mk = mask + row * kb;
            const int64_t pos = I + dm->block_offset;
            memset(mk, 0, (size_t)kb);
            if (topk)
                memset(topk + row * kb, 0, (size_t)kb);
            /* Finite entries, sorted by value descending, index ascending
             * (insertion sort: plain and stable). */
            int64_t nf = 0;
            for (int64_t J = 0; J < kb; J++) {
                if (!isfinite(x[J]))
                    continue;
                int64_t i = nf++;
                while (i > 0 && x[order[i - 1]] < x[J]) {
                    order[i] = order[i - 1];
                    i--;
                }
                order[i] = J;
            }
            int64_t b = budget[pos];
            if (b > nf)
                b = nf;
            double t = b > 0 ? x[order[b - 1]] : INFINITY;
            if (thr)
                thr[row] = t;
            for (int64_t i = 0; i < nf; i++) {
                int keep = p->ties_keep_all ? x[order[i]] >= t : i < b;
                if (keep) {
                    mk[order[i]] = 1;
                    if (topk)
                        topk[row * kb + order[i]] = 1;
                }
            }
            for (int64_t J = 0; J <= pos && J < kb; J++)
                if (bf_forced(p, pos, J))
                    mk[J] = 1;
            /* hpc-ops sets its sinks in every row, beyond the diagonal too */
            for (int64_t J = 0; p->sinks_unclipped && J < p->sinks && J < kb; J++)
                mk[J] = 1;
        }
    }
    free(order);
}

int bf_attention(const stem_params *p, const stem_tensor *q,
                 const stem_tensor *k, const stem_tensor *v,
                 const uint8_t *mask, double *out, double *lse)
{
    const bf_dims dm = bf_dims_of(p, q, k);
    const int64_t B = p->block, d = dm.d, group = dm.hq / dm.hkv;
    const double scale = 1.0 / sqrt((double)d);
    double *sc = malloc((size_t)(dm.lk > 0 ? dm.lk : 1) * sizeof *sc);
    if (!sc)
        return -1;
    for (int64_t h = 0; h < dm.hq; h++) {
        const int64_t g = h / group;
        double *qh = load_head(q, h, dm.lq);
        double *kh = load_head(k, g, dm.lk);
        double *vh = load_head(v, g, dm.lk);
        if (!qh || !kh || !vh) {
            free(qh);
            free(kh);
            free(vh);
            free(sc);
            return -1;
        }
        for (int64_t r = 0; r < dm.lq; r++) {
            const int64_t last = r + dm.offset;  /* absolute position */
            const uint8_t *mrow = mask ? mask + (h * dm.qb + r / B) * dm.kb : NULL;
            double mx = -INFINITY;
            for (int64_t t = 0; t <= last && t < dm.lk; t++) {
                if (mrow && !mrow[t / B]) {
                    sc[t] = NAN;
                    continue;
                }
                double dot = 0.0;
                for (int64_t c = 0; c < d; c++)
                    dot += qh[r * d + c] * kh[t * d + c];
                sc[t] = dot * scale;
                if (sc[t] > mx)
                    mx = sc[t];
            }
            double sum = 0.0;
            double *o = out + (h * dm.lq + r) * d;
            for (int64_t c = 0; c < d; c++)
                o[c] = 0.0;
            for (int64_t t = 0; t <= last && t < dm.lk; t++) {
                if (isnan(sc[t]))
                    continue;
                double e = exp(sc[t] - mx);
                sum += e;
                for (int64_t c = 0; c < d; c++)
                    o[c] += e * vh[t * d + c];
            }
            if (sum > 0.0)
                for (int64_t c = 0; c < d; c++)
                    o[c] /= sum;
            if (lse)
                lse[h * dm.lq + r] = sum > 0.0 ? mx + log(sum) : -INFINITY;
        }
        free(qh);
        free(kh);
        free(vh);
    }
    free(sc);
    return 0;
}
