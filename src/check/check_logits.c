/*
 * check_logits.c - the logits, selection and mask stages of stem_check
 * (docs/ALGORITHM.md section 5).
 *
 *   logits     every entry of the judged heads: the -inf pattern exactly,
 *              NaN / +inf located, |gpu - ref| within the entry's limit
 *              (check_bound.c).
 *   selection  the profile's rule (stem_select) run on the GPU's own
 *              logits must reproduce the GPU's mask at and below the
 *              diagonal.  The only freedom is the order among exactly equal
 *              GPU logits at the row threshold, for profiles whose ties
 *              break by index, and only while the row keeps as many
 *              blocks as the rule does.
 *   mask       the GPU mask against the reference.  Sinks, window and
 *              diagonal must be kept.  A block whose reference logit lies
 *              more than tau above the row threshold (the budget-th largest
 *              reference logit) must be kept, more than tau below must be
 *              dropped; in between a difference is a tie.  tau is how far
 *              the two logits (the block's and the threshold block's)
 *              could move towards each other on the GPU (check_tau: the
 *              modeled spread of their rounding, at most the two limits'
 *              sum).  The threshold, the budget and which blocks are sinks
 *              or window come from the library's own rule
 *              (stem_explain_row).  Counts: the row's top-k part has budget b blocks;
 *              the GPU keeps k_g blocks outside sinks and window, so b - k_g
 *              of its top-k blocks must be forced blocks.  With f_in forced
 *              blocks surely above the threshold and f_band within tau of
 *              it, b - f_in - f_band <= k_g <= b - f_in (keep-all-ties
 *              profiles may keep more, each extra one within tau).  A budget
 *              one short or one over in a row breaks this unless a forced
 *              block sits in the tie band, where the two are the same mask.
 *              Such in-band count changes need a forced block to cross the
 *              threshold, which rounding does rarely and either way; when
 *              most sparse rows keep another count than the reference and
 *              nine in ten of them the same way, the in-band ones are
 *              faults too (a budget off by one on
 *              data whose logits all lie within tau of each other).
 *              Bits above the diagonal: the attention never reads them;
 *              they are faults (a mask built for the wrong position)
 *              except the sinks of a profile that sets them unclipped
 *              (hpc-ops), which are reported as unread bits.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_internal.h"

static stem_check_item item0(stem_check_kind kind, int64_t h)
{
    stem_check_item x;
    memset(&x, 0, sizeof(x));
    x.kind = kind;
    x.head = h;
    x.qblock = x.kblock = x.row = x.col = -1;
    return x;
}

static void stage_done(stem_check_stage_result *s, check_items *it)
{
    s->faults = it->total;
    s->verdict = it->total ? STEM_CHECK_FAIL : STEM_CHECK_PASS;
    check_items_take(it, &s->items, &s->n_items);
}

/* ----------------------------------------------------------------- logits */

stem_status check_stage_logits(check_ctx *c)
{
    stem_check_report *r = c->r;
    stem_check_stage_result *s = &r->stage[STEM_STAGE_LOGITS];
    if (!c->gpu_logits)
        return STEM_OK;
    check_items it;
    if (check_items_init(&it, c->o.max_items) != 0)
        return STEM_ERR_NOMEM;
    const int64_t qb = c->dm.qb, kb = c->dm.kb;
    double sgr = 0, srr = 0, zmax = 0, worst_alt = 0;
    int64_t n_err = 0, n_err_worst = 0; /* beyond the limit / the worst case */
    for (int64_t hh = 0; hh < c->nh; hh++) {
        int64_t h = c->h0 + hh;
        for (int64_t I = 0; I < qb; I++) {
            for (int64_t J = 0; J < kb; J++) {
                size_t gi = ((size_t)hh * qb + I) * kb + J;
                size_t ri = ((size_t)h * qb + I) * kb + J;
                float g = c->gpu_logits[gi], ref = c->ref_logits[ri];
                stem_check_item x = item0(STEM_KIND_NONE, h);
                x.qblock = I, x.kblock = J, x.gpu = g, x.ref = ref;
                x.limit = c->limit[gi];
                if (isnan(g) || g == INFINITY) {
                    r->logit_nonfinite++;
                    x.kind = STEM_KIND_LOGIT_NONFINITE;
                    x.err = INFINITY;
                    check_items_add(&it, &x, INFINITY);
                    continue;
                }
                if ((g == -INFINITY) != (ref == -INFINITY)) {
                    r->logit_pattern++;
                    x.kind = STEM_KIND_LOGIT_PATTERN;
                    x.err = INFINITY;
                    check_items_add(&it, &x, INFINITY);
                    continue;
                }
                if (ref == -INFINITY)
                    continue;
                s->checked++;
                double e = fabs((double)g - (double)ref);
                double ratio = x.limit > 0 ? e / x.limit : (e > 0 ? INFINITY : 0);
                sgr += (double)g * ref;
                srr += (double)ref * ref;
                if (e > s->max_err)
                    s->max_err = e;
                double sg = c->sigma[gi];
                double ev = e - c->vbound[(size_t)hh * kb + J];
                double z = ev <= 0 ? 0 : sg > 0 ? ev / sg : INFINITY;
                if (e <= x.limit && z > zmax)
                    zmax = z;
                if (ratio > s->worst_ratio)
                    s->worst_ratio = ratio;
                if (c->limit_worst) {
                    double lw = c->limit_worst[gi];
                    double ra = lw > 0 ? e / lw : (e > 0 ? INFINITY : 0);
                    if (ra > worst_alt)
                        worst_alt = ra;
                    n_err_worst += e > lw;
                }
                if (e > x.limit) {
                    n_err++;
                    x.kind = STEM_KIND_LOGIT_ERROR;
                    x.err = e;
                    check_items_add(&it, &x, ratio);
                }
            }
        }
    }
    r->logit_scale = srr > 0 ? sgr / srr : 1;
    s->units = s->checked;
    /* Within their limits, genuine errors beyond sigmas + 1 standard
     * deviations of the model (a chance below 1e-6 an entry) show that the
     * kernel rounds elsewhere than declared: the tie band falls back to
     * the limits' sum. */
    r->logit_zmax = zmax;
    /* Errors beyond the modeled rounding but within its worst case: the
     * kernel rounds more often or coarser than declared (or a fault that
     * small); say so, as for out and lse. */
    if (c->limit_worst) {
        r->alt_ratio[STEM_STAGE_LOGITS] = worst_alt;
        if (n_err > 0 && n_err == it.total && n_err_worst == 0 && !r->arith_note[0])
            snprintf(r->arith_note, sizeof(r->arith_note),
                     "%lld logit errors exceed the modeled rounding of the "
                     "declared scoring (%s) but fit its worst case (worst %.2g "
                     "of it): a fault, or a kernel that rounds its block "
                     "scores more often or coarser than declared (--scoring, "
                     "--arith)",
                     (long long)n_err, stem_prec_name(c->o.score_prec), worst_alt);
    }
    if (zmax > c->o.sigmas + 1)
        c->tie_worst = 1;
    if (it.total && fabs(r->logit_scale - 1) > 0.1 && !r->hint[0])
        snprintf(r->hint, sizeof(r->hint),
                 "the GPU logits are about %.3g times the reference: check "
                 "--profile (scaled or raw QK term), --stride and --block",
                 r->logit_scale);
    stage_done(s, &it);
    return STEM_OK;
}

/*
 * The library's selection rule (stem_explain_row, the code stem_select
 * runs) on row (hh, I) of logits, an [n_heads, Qb, Kb] array laid out as
 * c->dm says: sum gets the row's budget, its threshold (the budget-th
 * largest candidate; -inf when the budget keeps every candidate) and its
 * candidate count; blk (Kb records, caller-owned) the STEM_WHY_* bits of
 * each block; *at the threshold block (rank = budget), -1 when none.
 * STEM_OK or an error of stem_explain_row (STEM_ERR_NOMEM).
 */
static stem_status row_rule(const check_ctx *c, const float *logits,
                            int64_t n_heads, int64_t hh, int64_t I,
                            stem_explain_summary *sum, stem_explain_block *blk,
                            int64_t *at)
{
    stem_dims sd = c->dm;
    sd.hq = n_heads;
    sd.hkv = 1;
    stem_status st = stem_explain_row(c->p, &sd, logits, hh, I, sum, blk);
    *at = -1;
    if (st != STEM_OK || !isfinite(sum->threshold))
        return st;
    for (int64_t J = 0; J < c->dm.kb; J++)
        if (blk[J].rank == sum->budget) {
            *at = J;
            break;
        }
    return STEM_OK;
}

/* Block J of a row is forced (sink, window or diagonal) by the rule. */
static int forced(const stem_explain_block *blk, int64_t J)
{
    return (blk[J].why & (STEM_WHY_SINK | STEM_WHY_WINDOW | STEM_WHY_DIAGONAL)) != 0;
}

double check_tau(const check_ctx *c, const float *lim, const float *sig,
                 const float *vb, int64_t j, int64_t t)
{
    if (c->o.tau >= 0)
        return c->o.tau;
    double worst = (double)lim[j] + (t >= 0 ? (double)lim[t] : 0);
    if (c->tie_worst)
        return worst;
    double sj = sig[j], sn = t >= 0 ? sig[t] : 0;
    double m = c->o.sigmas * sqrt(sj * sj + sn * sn) + vb[j] + (t >= 0 ? vb[t] : 0);
    return m < worst ? m : worst;
}

/* -------------------------------------------------------------- selection */

stem_status check_stage_selection(check_ctx *c)
{
    stem_check_report *r = c->r;
    stem_check_stage_result *s = &r->stage[STEM_STAGE_SELECTION];
    if (!c->gpu_logits || !c->gpu_mask)
        return STEM_OK;
    const int64_t qb = c->dm.qb, kb = c->dm.kb;
    const size_t cells = (size_t)c->nh * qb * kb;
    stem_dims sd = c->dm;
    sd.hq = c->nh;
    sd.hkv = 1;
    uint8_t *sel = malloc(cells);
    stem_explain_block *work = malloc((size_t)kb * sizeof(*work));
    check_items it;
    if (!sel || !work || check_items_init(&it, c->o.max_items) != 0) {
        free(sel), free(work);
        return STEM_ERR_NOMEM;
    }
    stem_status st = stem_select(c->p, &sd, c->gpu_logits, sel, NULL, NULL);
    if (st != STEM_OK) {
        free(sel), free(work), check_items_free(&it);
        return st;
    }
    for (int64_t hh = 0; hh < c->nh; hh++) {
        for (int64_t I = 0; I < qb; I++) {
            size_t base = ((size_t)hh * qb + I) * kb;
            const float *gl = c->gpu_logits + base;
            const uint8_t *gm = c->gpu_mask + base, *sm = sel + base;
            int64_t pos = I + c->pb, last = pos < kb - 1 ? pos : kb - 1;
            int bad = 0;
            for (int64_t J = 0; J <= last; J++)
                bad |= isnan(gl[J]) || gl[J] == INFINITY;
            if (bad)
                continue; /* judged by the logits stage */
            s->checked++;
            int64_t ng = 0, ns = 0, ndiff = 0;
            for (int64_t J = 0; J <= last; J++) {
                ng += gm[J];
                ns += sm[J];
                ndiff += gm[J] != sm[J];
            }
            if (!ndiff)
                continue;
            stem_explain_summary sum;
            int64_t at;
            if ((st = row_rule(c, c->gpu_logits, c->nh, hh, I, &sum, work, &at)) != STEM_OK) {
                free(sel), free(work), check_items_free(&it);
                return st;
            }
            float thr = sum.threshold;
            /* Exactly equal GPU logits at the threshold may be ordered
             * either way.  With a forced (sink or window) block among them
             * the order also decides whether that block takes a top-k
             * place, so the count moves by up to the forced blocks there;
             * every differing block must still sit at the threshold. */
            int64_t n_feq = 0, n_eqdiff = 0;
            for (int64_t J = 0; J <= last; J++) {
                if (forced(work, J))
                    n_feq += gl[J] == thr;
                else if (gm[J] != sm[J])
                    n_eqdiff += gl[J] == thr;
            }
            int64_t dcount = ng > ns ? ng - ns : ns - ng;
            int exact_ties = !c->p->ties_keep_all && n_eqdiff == ndiff &&
                             (dcount == 0 || dcount <= n_feq);
            for (int64_t J = 0; J <= last; J++) {
                if (gm[J] == sm[J])
                    continue;
                stem_check_item x = item0(gm[J] ? STEM_KIND_SELECT_EXTRA
                                                : STEM_KIND_SELECT_MISSING,
                                          c->h0 + hh);
                x.qblock = I, x.kblock = J, x.gpu = gm[J], x.ref = sm[J];
                x.ref_logit = gl[J];
                x.threshold = thr;
                x.err = fabs((double)gl[J] - thr);
                if (exact_ties) {
                    r->select_ties++;
                    continue;
                }
                check_items_add(&it, &x, INFINITY);
            }
        }
    }
    stage_done(s, &it);
    free(sel);
    free(work);
    return STEM_OK;
}

/* ------------------------------------------------------------------- mask */

stem_status check_stage_mask(check_ctx *c)
{
    stem_check_report *r = c->r;
    stem_check_stage_result *s = &r->stage[STEM_STAGE_MASK];
    if (!c->gpu_mask)
        return STEM_OK;
    const stem_params *p = c->p;
    const int64_t qb = c->dm.qb, kb = c->dm.kb;
    stem_explain_block *work = malloc((size_t)kb * sizeof(*work));
    check_items it, ties;
    if (!work || check_items_init(&it, c->o.max_items) != 0) {
        free(work);
        return STEM_ERR_NOMEM;
    }
    if (check_items_init(&ties, c->o.max_items) != 0) {
        free(work), check_items_free(&it);
        return STEM_ERR_NOMEM;
    }
    int64_t sparse_rows = 0, off_sparse = 0;
    /* per row: 1 sparse, 2 a tie, 4 a count inside the band, 8 a fault */
    uint8_t *rowst = calloc((size_t)c->nh * (size_t)qb, 1);
    if (!rowst) {
        free(work), check_items_free(&it), check_items_free(&ties);
        return STEM_ERR_NOMEM;
    }
    /* rows whose count differs from the reference's within the band */
    typedef struct amb_t {
        int64_t h, I, kg, kr;
        int32_t b;
        int64_t lo, hi;
    } amb_t;
    amb_t *amb = NULL;
    int64_t n_amb = 0, cap_amb = 0, dev_up = 0, dev_down = 0;
    for (int64_t hh = 0; hh < c->nh; hh++) {
        int64_t h = c->h0 + hh;
        for (int64_t I = 0; I < qb; I++) {
            size_t gbase = ((size_t)hh * qb + I) * kb;
            size_t rbase = ((size_t)h * qb + I) * kb;
            const float *L = c->ref_logits + rbase, *lim = c->limit + gbase;
            const float *sig = c->sigma + gbase;
            const float *vb = c->vbound + (size_t)hh * kb;
            uint8_t *st = rowst + (size_t)hh * qb + I;
            const uint8_t *gm = c->gpu_mask + gbase, *rm = c->ref_mask + rbase;
            int64_t pos = I + c->pb, last = pos < kb - 1 ? pos : kb - 1;
            stem_explain_summary sum;
            int64_t at;
            stem_status rs = row_rule(c, c->ref_logits, c->dm.hq, h, I, &sum, work, &at);
            if (rs != STEM_OK) {
                free(amb), free(work), free(rowst);
                check_items_free(&it), check_items_free(&ties);
                return rs;
            }
            float thr = sum.threshold;
            int32_t b = sum.budget;
            int64_t nfin = sum.candidates;
            int64_t btop = b < nfin ? b : nfin;
            int64_t kg = 0, f_in = 0, f_band = 0, n_nf_in = 0;
            s->checked++;
            if (b < nfin) {
                sparse_rows++;
                *st |= 1;
            }
            for (int64_t J = 0; J < kb; J++) {
                stem_check_item x = item0(STEM_KIND_NONE, h);
                x.qblock = I, x.kblock = J, x.gpu = gm[J], x.ref = rm[J];
                x.ref_logit = L[J];
                x.threshold = thr;
                if (J > last) {
                    if (gm[J] == rm[J])
                        continue;
                    r->mask_diffs++;
                    if (p->sinks_unclipped && J < p->sinks) {
                        r->mask_unread++;
                        continue;
                    }
                    x.kind = gm[J] ? STEM_KIND_MASK_FUTURE : STEM_KIND_MASK_UNREAD;
                    if (x.kind == STEM_KIND_MASK_UNREAD) {
                        r->mask_unread++;
                        continue;
                    }
                    x.err = INFINITY;
                    check_items_add(&it, &x, INFINITY);
                    *st |= 8;
                    continue;
                }
                r->causal_blocks++;
                r->gpu_kept += gm[J];
                r->ref_kept += rm[J];
                r->mask_diffs += gm[J] != rm[J];
                double tau = check_tau(c, lim, sig, vb, J, at);
                double gap = (double)L[J] - (double)thr; /* +inf when thr is -inf */
                int in_hi = gap > tau, out_lo = -gap > tau;
                x.err = fabs(gap);
                x.limit = tau;
                if (forced(work, J)) {
                    f_in += in_hi;
                    f_band += !in_hi && !out_lo;
                    if (!gm[J]) {
                        x.kind = J < p->sinks ? STEM_KIND_MASK_SINK : STEM_KIND_MASK_WINDOW;
                        x.err = INFINITY;
                        check_items_add(&it, &x, INFINITY);
                        *st |= 8;
                    }
                    continue;
                }
                kg += gm[J];
                n_nf_in += !out_lo;
                if ((gm[J] && out_lo) || (!gm[J] && in_hi)) {
                    x.kind = STEM_KIND_MASK_GAP;
                    check_items_add(&it, &x, tau > 0 ? fabs(gap) / tau : INFINITY);
                    *st |= 8;
                    if (tau > 0 && isfinite(gap) && fabs(gap) / tau > s->worst_ratio)
                        s->worst_ratio = fabs(gap) / tau;
                } else if (gm[J] != rm[J]) {
                    x.kind = STEM_KIND_MASK_TIE;
                    r->mask_ties++;
                    *st |= 2;
                    if (isfinite(gap) && fabs(gap) > r->max_tie_gap)
                        r->max_tie_gap = fabs(gap);
                    double ratio = tau > 0 ? fabs(gap) / tau : 0;
                    if (ratio > s->worst_ratio)
                        s->worst_ratio = ratio;
                    check_items_add(&ties, &x, fabs(gap));
                }
            }
            int64_t lo = btop - f_in - f_band, hi = btop - f_in;
            if (lo < 0)
                lo = 0;
            int off = kg < lo || (!p->ties_keep_all && kg > hi);
            /* the reference's own count outside sinks and window */
            int64_t kr = 0;
            for (int64_t J = 0; J <= last; J++)
                kr += rm[J] && !forced(work, J);
            if (kg != kr && !p->ties_keep_all) {
                if (kg > kr)
                    dev_up++;
                else
                    dev_down++;
            }
            if (!off && kg != kr && !p->ties_keep_all) {
                /* explained only by a forced block crossing the threshold;
                 * kept to be judged together below */
                if (n_amb == cap_amb) {
                    int64_t nc = cap_amb ? 2 * cap_amb : 64;
                    amb_t *na = realloc(amb, (size_t)nc * sizeof(*amb));
                    if (!na) {
                        free(amb), free(work), free(rowst);
                        check_items_free(&it), check_items_free(&ties);
                        return STEM_ERR_NOMEM;
                    }
                    amb = na, cap_amb = nc;
                }
                amb[n_amb++] = (amb_t){h, I, kg, kr, b, lo, hi};
                *st |= 4;
            }
            if (off) {
                r->rows_count_off++;
                off_sparse += (*st & 1) != 0;
                *st |= 8;
                stem_check_item x = item0(STEM_KIND_MASK_COUNT, h);
                x.qblock = I;
                x.gpu = (double)kg;
                x.ref = (double)(p->ties_keep_all ? n_nf_in : hi);
                x.threshold = (double)lo;
                x.ref_logit = (double)b;
                x.err = kg < lo ? (double)(lo - kg) : (double)(kg - hi);
                x.limit = 0;
                check_items_add(&it, &x, 1e300);
            }
        }
    }
    /* A count that differs from the reference's inside the band needs a
     * sink or window block within tau of the threshold, crossing it on the
     * GPU; rounding moves such blocks either way, so the differences of a
     * genuine kernel are few and of both signs.  When most sparse rows
     * differ, and nine in ten of those the same way, the budget itself is
     * off: every such row is a fault. */
    int64_t ndev = dev_up + dev_down, dmax = dev_up > dev_down ? dev_up : dev_down;
    if (ndev >= 4 && ndev * 2 > sparse_rows && dmax * 10 >= ndev * 9) {
        for (int64_t i = 0; i < n_amb; i++) {
            if ((amb[i].kg > amb[i].kr) != (dev_up > dev_down))
                continue;
            r->rows_count_off++;
            uint8_t *st = rowst + (size_t)(amb[i].h - c->h0) * qb + amb[i].I;
            off_sparse += (*st & 1) != 0;
            *st |= 8;
            stem_check_item x = item0(STEM_KIND_MASK_COUNT, amb[i].h);
            x.qblock = amb[i].I;
            x.gpu = (double)amb[i].kg;
            x.ref = (double)amb[i].kr;
            x.threshold = (double)amb[i].kr;
            x.ref_logit = (double)amb[i].b;
            x.err = fabs((double)(amb[i].kg - amb[i].kr));
            check_items_add(&it, &x, 1e300);
        }
    }
    free(amb);
    /* Undecided: a sparse row whose only differences lie within the tie
     * band (an exchange, or a count that a forced block crossing the
     * threshold would explain) is a tie or a fault alike, unless the GPU's
     * logits show which (the logits and selection stages). */
    s->units = sparse_rows;
    for (size_t i = 0; i < (size_t)c->nh * (size_t)qb; i++)
        if (!c->gpu_logits && (rowst[i] & 1) && !(rowst[i] & 8) && (rowst[i] & 6))
            s->undecided++;
    free(rowst);
    /* a parameter mismatch moves the count of many sparse rows, a single
     * fault that of one */
    if (off_sparse >= 2 && off_sparse * 2 > sparse_rows && !r->hint[0] &&
        r->causal_blocks > 0)
        snprintf(r->hint, sizeof(r->hint),
                 "the GPU keeps %.1f%% of the causal blocks, the reference "
                 "%.1f%%, and %lld of %lld sparse rows keep another count: "
                 "check --alpha, --keep-ratio and --profile",
                 100.0 * (double)r->gpu_kept / (double)r->causal_blocks,
                 100.0 * (double)r->ref_kept / (double)r->causal_blocks,
                 (long long)off_sparse, (long long)sparse_rows);
    stage_done(s, &it);
    check_items_take(&ties, &r->ties, &r->n_ties);
    free(work);
    return STEM_OK;
}
