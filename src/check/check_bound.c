/*
 * check_bound.c - how far a GPU's block logit may lie from the reference,
 * derived from the arithmetic (docs/ALGORITHM.md section 5).
 *
 * The reference logit is L = c * sum_j Qsum_I[s-1-j] . Ksum_J[j] + T[J]
 * (score.c).  A GPU computes the same sum with some of its intermediates
 * rounded to a lower precision of unit roundoff u (bf16 2^-8, fp16
 * 2^-11): the strided pair scores or the group sums, and the block
 * reduction.  Each rounding of a partial result x moves it by at most
 * u|x|, and every partial result of the QK term is bounded in magnitude by
 * the same sum taken over absolute values,
 *
 *   A[I][J] = c * sum_j sum_e Qabs_I[s-1-j][e] * Kabs_J[j][e],
 *
 * where Qabs/Kabs are the group sums of |q| and |k|.  Two such roundings
 * (the operands or pair scores, then the reduction) give at most 2u A;
 * float32 accumulation over the s*d products and (B/s)^2 pairs adds
 * (s*d + (B/s)^2) 2^-24 A, for the GPU and for the reference alike.  A
 * logit stored in a format of unit u_st moves by u_st |L| more.
 *
 * The value term: a norm computed or stored at unit u has a relative error
 * u, so l = ln(norm) moves by at most u, the mean of the l by u and their
 * standard deviation by 2u; the z-score z = (l - mean) / std then moves by
 * at most 2u (1 + |z|) / (std - 2u), times the weight lambda (the ReLU
 * does not enlarge it, and a group whose z stays negative under that
 * shift contributes nothing).  The paper's rule beta * ln(max norm) moves
 * by beta * u.  The block's term is the mean over its groups, so is its
 * bound.
 *
 * Worst case: E[I][J] = (2u + (s d + (B/s)^2) 2^-24) A[I][J] + E_T[J]
 *                       + h_st,
 * h_st the half ulp of the stored logit (u_st 2^floor(log2 |L|), at most
 * u_st |L|).  Where the profile says the backend rounds the group sums themselves
 * (hpc-ops: Qsum and Ksum to BF16, then a float32 GEMM), each product
 * Qsum.Ksum moves by at most (2u + u^2) |Qsum| |Ksum|, so A1, the same sum
 * over |Qsum_I[s-1-j][e] Ksum_J[j][e]| (signed sums, then absolute), takes
 * the place of A in the first term (the float32 terms keep A, plus the
 * group sums' own float32 additions, (B/s) 2^-24 A); A1 <= A, often much
 * smaller when signs cancel within a group.
 *
 * The limit is the modeled error, the worst case only where the model
 * does not apply.  Independent roundings of relative size up to u have
 * standard deviation u / sqrt 3 each, and their sum the root of the
 * summed squares.  Rounding both
 * operands of every product x = Qabs . Kabs (per stride offset j and
 * element e) gives 2u^2/3 x^2; rounding each offset's partial result p_j
 * u^2/3 p_j^2; the stored logit u_st^2/3 L^2; the float32 terms and the
 * float32 sums a random walk over their count n, (sqrt(n) 2^-24 A)^2 / 3:
 *
 *   sigma^2 = 2u^2/3 S2 + u^2/3 P2 + u_st^2/3 L^2 + n 2^-48 A^2 / 3.
 *   S2 = c^2 sum_j sum_e x_je^2,  P2 = c^2 sum_j (sum_e x_je)^2.
 *
 * (hpc-ops: x from the signed sums, as in A1.)  The absolute group sums
 * make it an overestimate where signs cancel.  The sum of many small
 * independent roundings is close to normal, so an entry's QK error stays
 * within z sigma_QK (sigma without the stored term) but with probability
 * erfc(z / sqrt 2); z is options.sigmas raised to the Bonferroni quantile
 * of LOGIT_ALPHA over the n finite entries judged (n 6,000: z 5.2), so a
 * kernel that rounds as declared fails no entry of a check but with
 * probability LOGIT_ALPHA.  The value term is not modeled: its errors are
 * shared by every row (one norm per group) and measured far beyond
 * independent roundings (AngelSlim r1, fp16: 5.7 sigma of such a model),
 * so it keeps its bound E_T (ctx->vbound); nor is the stored logit's
 * rounding, which is bounded by its half ulp.  The limit of an entry:
 *
 *   limit[I][J] = min(z sigma_QK, E_QK) + E_T[J] + h_st(|L| + that),
 *
 * E_QK the QK part of the worst case, h_st at the largest magnitude the
 * GPU's unrounded logit may have.  The tie band (check_tau) uses sigma
 * with the stored term, u_st^2 / 3 L^2, as above.  On the public
 * AngelSlim and hpc-ops captures the largest genuine difference is 0.13
 * to 0.53 of this limit (docs/CHECKING.md gives the table).  A fixed limit
 * (options.logit_tol) replaces it when set.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check_internal.h"

/* Group sums of every block of head h: out[blk][j*d + e] is the sum over
 * the groups a of block blk of |x[blk*B + a*s + j][e]| (absolute, 1) or
 * of x[...] itself (absolute, 0); zero rows past the end. */
static void abs_group_sums(const stem_tensor *x, int64_t h, int64_t nblk,
                           int B, int s, int64_t d, float *out, int nt,
                           int absolute)
{
    const int64_t sd = (int64_t)s * d;
    #pragma omp parallel for schedule(static) num_threads(nt)
    for (int64_t blk = 0; blk < nblk; blk++) {
        float row[STEM_MAX_HEAD_DIM];
        float *o = out + blk * sd;
        memset(o, 0, (size_t)sd * sizeof(float));
        for (int64_t t = blk * B; t < (blk + 1) * B && t < x->tokens; t++) {
            int64_t j = (t - blk * B) % s;
            stem_load_row_f32(x, h, t, row);
            for (int64_t e = 0; e < d; e++)
                o[j * d + e] += absolute ? fabsf(row[e]) : row[e];
        }
    }
}

/* Error bound of the value term of every key block of kv head g into
 * eb[0..kb), for norms at unit u (see the file comment). */
static stem_status value_bounds(const check_ctx *c, int64_t g, double u,
                                double *eb)
{
    const stem_params *p = c->p;
    const int64_t kb = c->dm.kb, lk = c->dm.lk, d = c->dm.d;
    const int B = p->block, s = p->stride;
    const int64_t ng = kb * (B / s); /* groups of the block-padded length */
    memset(eb, 0, (size_t)kb * sizeof(double));
    if (p->value_rule == STEM_VALUE_NONE || p->value_weight == 0)
        return STEM_OK;
    double w = fabs(p->value_weight);
    if (p->value_rule == STEM_VALUE_LOG_MAX_BLOCK) {
        for (int64_t J = 0; J < kb; J++)
            eb[J] = w * u;
        return STEM_OK;
    }
    double *l = malloc((size_t)ng * sizeof(double));
    if (!l)
        return STEM_ERR_NOMEM;
    for (int64_t b = 0; b < ng; b++) {
        double gmax = 0, row[STEM_MAX_HEAD_DIM];
        for (int64_t t = b * s; t < (b + 1) * s && t < lk; t++) {
            stem_load_row_f64(c->v, g, t, row);
            double n2 = 0;
            for (int64_t e = 0; e < d; e++)
                n2 += row[e] * row[e];
            if (sqrt(n2) > gmax)
                gmax = sqrt(n2);
        }
        l[b] = log(gmax + 1e-6);
    }
    int64_t nstat = p->value_rule == STEM_VALUE_ZSCORE_FULL ? lk / s : ng;
    double mean = 0, var = 0;
    for (int64_t b = 0; b < nstat; b++)
        mean += l[b];
    mean = nstat ? mean / (double)nstat : 0;
    for (int64_t b = 0; b < nstat; b++)
        var += (l[b] - mean) * (l[b] - mean);
    double sd = nstat > 1 ? sqrt(var / (double)(nstat - 1)) : 0;
    double den = sd + 1e-6 - 2 * u;
    if (den < 0.5 * (sd + 1e-6))
        den = 0.5 * (sd + 1e-6);
    for (int64_t b = 0; b < ng; b++) {
        double z = (l[b] - mean) / (sd + 1e-6);
        double dz = 2 * u * (1 + fabs(z)) / den;
        double e = z + dz < 0 ? 0 : w * dz;
        eb[b / (B / s)] += e / (double)(B / s);
    }
    free(l);
    return STEM_OK;
}

/* Per-entry false-alarm budget of the logits stage: the chance that a
 * kernel rounding as declared fails any entry of a check. */
#define LOGIT_ALPHA 1e-3

double check_normal_quantile2(double p)
{
    double lo = 0, hi = 40;
    for (int i = 0; i < 200 && hi - lo > 1e-12; i++) {
        double m = 0.5 * (lo + hi);
        if (erfc(m / M_SQRT2) > p)
            lo = m;
        else
            hi = m;
    }
    return 0.5 * (lo + hi);
}

double check_half_ulp(double x, double u)
{
    x = fabs(x);
    if (!(x > 0) || !isfinite(x))
        return 0;
    int e;
    frexp(x, &e); /* x = m 2^e, 1/2 <= m < 1 */
    return u * ldexp(1.0, e - 1);
}

stem_status check_logit_limits(check_ctx *c)
{
    const stem_params *p = c->p;
    const stem_dims *dm = &c->dm;
    const int B = p->block, s = p->stride, G = B / s;
    const int64_t d = dm->d, sd = (int64_t)s * d, qb = dm->qb, kb = dm->kb;
    const int nt = stem_thread_count(p);
    const size_t cells = (size_t)qb * (size_t)kb;
    if (c->o.logit_tol >= 0) {
        /* a fixed limit: no model of the rounding, the tie band is the
         * limits' sum */
        for (size_t i = 0; i < (size_t)c->nh * cells; i++) {
            c->limit[i] = (float)c->o.logit_tol;
            c->sigma[i] = (float)c->o.logit_tol;
        }
        memset(c->vbound, 0, (size_t)c->nh * (size_t)kb * sizeof(float));
        c->tie_worst = 1;
        return STEM_OK;
    }
    double scale = 1.0 / ((double)G * G);
    if (p->qk_scaled)
        scale /= sqrt((double)d) * (double)s * p->norm;
    double u = stem_prec_unit(c->o.score_prec);
    double gamma = 2 * u + ((double)sd + (double)G * G) * 0x1p-24;
    double ust = stem_prec_unit(c->o.logit_store);
    if (c->gpu->logits && check_view_unit(c->gpu->logits->dtype) > ust)
        ust = check_view_unit(c->gpu->logits->dtype);
    /* hpc-ops rounds the group sums themselves (docs/ALGORITHM.md section
     * 4): the bound then follows the signed sums, A1 below */
    const int sums = p->profile == STEM_PROFILE_HPCOPS;
    free(c->limit_worst);
    c->limit_worst = malloc((size_t)c->nh * cells * sizeof(float));
    float *ka = malloc((size_t)kb * (size_t)sd * sizeof(float));
    float *qa = malloc((size_t)qb * (size_t)sd * sizeof(float));
    float *ks1 = sums ? malloc((size_t)kb * (size_t)sd * sizeof(float)) : NULL;
    float *qs1 = sums ? malloc((size_t)qb * (size_t)sd * sizeof(float)) : NULL;
    double *eb = malloc((size_t)kb * sizeof(double));
    if (!ka || !qa || !eb || !c->limit_worst || (sums && (!ks1 || !qs1))) {
        free(ka), free(qa), free(eb), free(ks1), free(qs1);
        return STEM_ERR_NOMEM;
    }
    const int64_t hpg = dm->hq / dm->hkv;
    /* z of the modeled limits: sigmas, raised to the two-sided normal
     * quantile of LOGIT_ALPHA over the finite entries judged */
    int64_t n_entries = 0;
    for (int64_t I = 0; I < qb; I++)
        n_entries += (I + c->pb < kb - 1 ? I + c->pb : kb - 1) + 1;
    n_entries *= c->nh;
    double z = check_normal_quantile2(LOGIT_ALPHA / (double)(n_entries > 0 ? n_entries : 1));
    if (z < c->o.sigmas)
        z = c->o.sigmas;
    c->logit_z = z;
    int64_t g_loaded = -1;
    stem_status st = STEM_OK;
    for (int64_t h = c->h0; h < c->h1 && st == STEM_OK; h++) {
        int64_t g = h / hpg;
        if (g != g_loaded) {
            abs_group_sums(c->k, g, kb, B, s, d, ka, nt, 1);
            if (sums)
                abs_group_sums(c->k, g, kb, B, s, d, ks1, nt, 0);
            if ((st = value_bounds(c, g, u, eb)) != STEM_OK)
                break;
            g_loaded = g;
        }
        abs_group_sums(c->q, h, qb, B, s, d, qa, nt, 1);
        if (sums)
            abs_group_sums(c->q, h, qb, B, s, d, qs1, nt, 0);
        float *lim = c->limit + (size_t)(h - c->h0) * cells;
        float *sig = c->sigma + (size_t)(h - c->h0) * cells;
        float *lw = c->limit_worst + (size_t)(h - c->h0) * cells;
        for (int64_t J = 0; J < kb; J++)
            c->vbound[(size_t)(h - c->h0) * kb + J] = (float)eb[J];
        const float *L = c->ref_logits + (size_t)h * cells;
        #pragma omp parallel for schedule(dynamic, 4) num_threads(nt)
        for (int64_t I = 0; I < qb; I++) {
            const float *qi = qa + I * sd;
            int64_t last = I + c->pb;
            for (int64_t J = 0; J < kb; J++) {
                size_t at = (size_t)I * kb + J;
                if (J > last) {
                    lim[at] = sig[at] = lw[at] = 0;
                    continue;
                }
                const float *kj = ka + J * sd;
                double acc = 0, acc1 = 0, s2 = 0, p2 = 0;
                for (int j = 0; j < s; j++) {
                    const float *a = qi + (int64_t)(s - 1 - j) * d;
                    const float *b = kj + (int64_t)j * d;
                    float part = 0, sq = 0;
                    for (int64_t e = 0; e < d; e++) {
                        part += a[e] * b[e];
                        sq += (a[e] * b[e]) * (a[e] * b[e]);
                    }
                    acc += part;
                    if (sums) {
                        const float *a1 = qs1 + I * sd + (int64_t)(s - 1 - j) * d;
                        const float *b1 = ks1 + J * sd + (int64_t)j * d;
                        float part1 = 0, sq1 = 0;
                        for (int64_t e = 0; e < d; e++) {
                            float x = fabsf(a1[e] * b1[e]);
                            part1 += x;
                            sq1 += x * x;
                        }
                        acc1 += part1;
                        part = part1, sq = sq1;
                    }
                    s2 += sq;
                    p2 += (double)part * part;
                }
                /* (1 + 1e-4) covers these sums' own float rounding */
                double A = acc * scale * (1 + 1e-4), A1 = acc1 * scale * (1 + 1e-4);
                double ef = sums ? (gamma - 2 * u + G * 0x1p-24) * A : (gamma - 2 * u) * A;
                double e = sums ? (2 * u + u * u) * A1 + ef : gamma * A;
                double Lv = fabs((double)L[at]);
                double sc2 = scale * scale * (1 + 1e-3);
                /* float32 sums: a random walk, sqrt of their count */
                double es = sqrt((double)sd + (double)G * G + (sums ? G : 0)) * 0x1p-24 * A;
                double var = 2 * u * u / 3 * s2 * sc2 + u * u / 3 * p2 * sc2 + es * es / 3;
                double srest = sqrt(var);
                /* the modeled QK term, capped by its worst case; the value
                 * term's bound; the stored logit's half ulp at the largest
                 * magnitude the unrounded GPU logit can have */
                double eqk = z * srest < e ? z * srest : e;
                double hst = check_half_ulp(Lv + eqk + eb[J], ust);
                lim[at] = (float)(eqk + eb[J] + hst);
                lw[at] = (float)(e + eb[J] + check_half_ulp(Lv + e + eb[J], ust));
                sig[at] = (float)sqrt(var + ust * ust / 3 * Lv * Lv);
            }
        }
    }
    free(ka);
    free(qa);
    free(ks1);
    free(qs1);
    free(eb);
    return st;
}
