/*
 * check_attn.c - the out and lse stages of stem_check: every row of the
 * GPU's attention against the reference computed under the GPU's own mask
 * (docs/ALGORITHM.md section 5), and the ignored-mask test per head.
 *
 * The limit of a row: the modeled rounding of the declared arithmetic.
 * With P_t the softmax weights of row r over its keys, O = sum_t P_t v_t,
 * a GPU working at lower precision perturbs:
 *   - the stored output: element c by e_c within +-h_c, h_c the half ulp
 *     of its binade in the out dtype (at most u_o |O_c|), independently;
 *   - P before P.V (unit u_p, independent relative errors e_t of variance
 *     at most u_p^2 / 3): O_c moves by sum_t P_t e_t v_tc (a flash
 *     kernel divides by the float32 sum of the unrounded P; one that
 *     normalises P before rounding it moves the same way), of variance
 *     u_p^2 / 3 Z2_c with Z2_c = sum_t P_t^2 v_tc^2;
 *   - scores rounded before the softmax (unit u_s; plus the float32 dot
 *     product over d terms, d 2^-24): P_t moves by P_t (d_t - sum P d),
 *     |d_t| <= u_s |s_t|, so O_c by sum_t P_t d_t (v_tc - O_c), of
 *     variance at most u_s^2 / 3 smax^2 C_c, C_c = sum_t P_t^2 (v_tc -
 *     O_c)^2 = Z2_c - 2 O_c Y_c + O_c^2 Q2 (Y_c = sum_t P_t^2 v_tc,
 *     Q2 = sum_t P_t^2), smax = ||q_r|| max_t ||k_t|| / sqrt(d) bounding
 *     every |s_t| (Cauchy-Schwarz: the one worst case left in the model);
 *   - fp8 e4m3 P (P * 256 with subnormals below 2^-6): besides the
 *     relative unit, an absolute error of at most min(2^-18, P~_t) on the
 *     max-relative weight P~_t, a variance of at most 2^-18 / 3 * Z1_c,
 *     Z1_c = sum_t P_t v_tc^2;
 *   - float32 accumulation of the GPU and of the reference over the row's
 *     blocks: at most 2 (B + Kb + d) 2^-24 sqrt(Z1) in all.
 * The P and score errors of a row share their e_t across its elements, so
 * the row's error norm need not concentrate: it is held to K standard
 * deviations of the summed variance V_r, K = options.sigmas (4).  The
 * stored elements round independently: ||e||^2 has mean S_r = sum_c
 * h_c^2 / 3 at most and, each e_c^2 lying in [0, h_c^2], exceeds it by t
 * with probability at most exp(-2 t^2 / sum_c h_c^4) (Hoeffding); at the
 * rows' Bonferroni z (probability 10^-3 over the rows judged, never below
 * K) that is t = z / 2 (sum_c h_c^4)^1/2:
 *
 *   limit_r = min(S_r + t, 3 S_r)^1/2 + K sqrt(V_r) + 2 (B + Kb + d) 2^-24 ||Z1_r||^1/2
 *
 * (3 S_r: every element at its half ulp).  A reference in the bf16
 * compute mode adds its own rounding of P (and of q and k when they were
 * wider) to the variance: the two sides round independently.  On the
 * public AngelSlim, hpc-ops and FlexAttention captures the worst genuine
 * row sits at 0.2 to 0.55 of its limit (docs/CHECKING.md gives the
 * table); a fault confined to one query block cannot hide in a head
 * average, and faults too small for any row are the systematic tests'
 * (check_bias.c).
 *
 * Z1, Z2, Y and Q2 come from the library's own attention: Z1 with values
 * v^2 / vs (vs = max |v| of the kv head, so nothing overflows), and Z2, Y,
 * Q2 from the same and from v with doubled queries, whose softmax is P^2
 * renormalised: sum_t P_t^2 x_t = exp(lse2 - 2 lse) * attention_{2q}(x).
 *
 * lse: score rounding moves it by sum_t P_t e_t s_t (variance at most
 * u_s^2 / 3 smax^2 Q2); float32 sums and the log add (B + Kb + 16) 2^-24
 * (|lse| + smax); storage u_l |lse|.
 *
 * Ignored mask: on a sample of query blocks (dense_sample), with M the
 * masked reference, D dense attention and G the GPU's head, t = <G - M, D - M> / ||D - M||^2 places G on the line from M
 * (0) to D (1); the rest of G - M is noise, which moves t by about
 * ||noise|| / (sqrt(n) ||D - M||).  A head with ||D - M|| > 1e-5 ||M|| and
 * that spread under 1/12 is decidable.  A decidable head with 1/2 < t <
 * 3/2 that lies closer to D than to M, and within the row limits of D
 * (sum of ||G - D||^2 over the sample below the sum of the squared
 * limits), and closer to D than to M with an output scale and a softmax
 * scale of its own fitted (a softmax scale a few percent off also moves G
 * towards D, but along those directions), ignores the mask: it is dense
 * attention plus rounding.  A head that does not, but has most rows beyond
 * their limits, is wrong output: an all-zero head, another head's output,
 * far from both references.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_internal.h"

static stem_tensor head_view(const stem_tensor *t, int64_t h)
{
    stem_tensor x = *t;
    x.data = (char *)t->data + h * t->head_stride * (int64_t)stem_dtype_size(t->dtype);
    x.heads = 1;
    return x;
}

/* Buffers of one head's reference passes. */
typedef struct attn_bufs {
    float *m, *lse, *z1, *y, *yv, *lse2, *dense, *vsq, *q2, *grow;
    uint8_t *mask, *dsel;
} attn_bufs;

static void bufs_free(attn_bufs *b)
{
    free(b->m), free(b->lse), free(b->z1), free(b->y), free(b->yv), free(b->lse2);
    free(b->dense), free(b->vsq), free(b->q2), free(b->grow), free(b->mask);
    free(b->dsel);
}

/* Query blocks the ignored-mask test samples. */
#define DENSE_SAMPLE_BLOCKS 16

/*
 * Dense attention of one head (views of one head) on a sample of its query
 * blocks: up to DENSE_SAMPLE_BLOCKS spread evenly, the last one included,
 * each computed as a chunk of its own (its rows against the keys up to its
 * causal end).  Rows of block I land in dense[I*B*d ...]; sel[I] = 1 marks
 * the blocks computed.  The test needs many elements, not every row, and
 * this keeps its cost to a sliver of one dense pass.
 */
static stem_status dense_sample(const stem_params *p, const stem_tensor *qh,
                                const stem_tensor *kg, const stem_tensor *vg,
                                const stem_dims *dm, float *dense, uint8_t *sel)
{
    const int64_t B = p->block, qb = dm->qb, d = dm->d;
    const int64_t n = qb < DENSE_SAMPLE_BLOCKS ? qb : DENSE_SAMPLE_BLOCKS;
    memset(sel, 0, (size_t)qb);
    for (int64_t i = 0; i < n; i++)
        sel[n > 1 ? (qb - 1) - i * (qb - 1) / (n - 1) : qb - 1] = 1;
    for (int64_t I = 0; I < qb; I++) {
        if (!sel[I])
            continue;
        int64_t r0 = I * B, nr = dm->lq - r0 < B ? dm->lq - r0 : B;
        stem_tensor qv = *qh, kv = *kg, vv = *vg;
        qv.data = (char *)qh->data + r0 * qh->token_stride * (int64_t)stem_dtype_size(qh->dtype);
        qv.tokens = nr;
        kv.tokens = vv.tokens = r0 + nr + dm->offset;
        stem_tensor od = stem_tensor_hnd(dense + r0 * d, STEM_F32, 1, nr, d);
        stem_status st = stem_attention_dense(p, &qv, &kv, &vv, &od, NULL);
        if (st != STEM_OK)
            return st;
    }
    return STEM_OK;
}

/*
 * The residual sum of squares of G - M over the dense sample of head h (b->dsel)
 * after its least-squares fit on the directions a wrong softmax scale or
 * output scale moves it: M itself, and dM / d epsilon for a softmax scale
 * c (1 + epsilon) (a forward difference, queries scaled by 1 + 2^-7).  An
 * ignored mask moves G - M along D - M, which those directions do not span;
 * a wrong softmax scale moves it along them (and, softening the softmax,
 * partly towards D too).  qh, kg, vg: views of the head; b->mask its mask,
 * b->m its reference; b->q2 and b->y are scratch (used up by then).
 * STEM_OK with *rss, or an error of stem_attention_sparse.
 */
static stem_status scale_fit_rss(check_ctx *c, const stem_params *p, int64_t h,
                                 const stem_tensor *kg, const stem_tensor *vg,
                                 attn_bufs *b, double *rss)
{
    const int64_t lq = c->dm.lq, d = c->dm.d, B = p->block;
    const double delta = 0x1p-7;
    for (int64_t t = 0; t < lq; t++) {
        stem_load_row_f32(c->q, h, t, b->q2 + t * d);
        for (int64_t e = 0; e < d; e++)
            b->q2[t * d + e] *= (float)(1 + delta);   /* exact */
    }
    stem_tensor qs = stem_tensor_hnd(b->q2, STEM_F32, 1, lq, d);
    stem_tensor oy = stem_tensor_hnd(b->y, STEM_F32, 1, lq, d);
    stem_status st = stem_attention_sparse(p, &qs, kg, vg, b->mask, &oy, NULL);
    if (st != STEM_OK)
        return st;
    double a00 = 0, a01 = 0, a11 = 0, b0 = 0, b1 = 0, ee = 0;
    for (int64_t t = 0; t < lq; t++) {
        if (!b->dsel[t / B])
            continue;
        stem_load_row_f32(c->gpu->out, h, t, b->grow);
        for (int64_t e = 0; e < d; e++) {
            double m = b->m[t * d + e];
            double x1 = ((double)b->y[t * d + e] - m) / delta;
            double err = (double)b->grow[e] - m;
            a00 += m * m, a01 += m * x1, a11 += x1 * x1;
            b0 += m * err, b1 += x1 * err, ee += err * err;
        }
    }
    double det = a00 * a11 - a01 * a01;
    double fit = det > 1e-12 * a00 * a11
                     ? (a11 * b0 * b0 - 2 * a01 * b0 * b1 + a00 * b1 * b1) / det
                     : (a00 > 0 ? b0 * b0 / a00 : 0);
    *rss = ee - fit > 0 ? ee - fit : 0;
    return STEM_OK;
}

static stem_check_item row_item(stem_check_kind kind, int64_t h, int64_t t,
                                int B)
{
    stem_check_item x;
    memset(&x, 0, sizeof(x));
    x.kind = kind;
    x.head = h;
    x.row = t;
    x.qblock = t / B;
    x.kblock = x.col = -1;
    return x;
}

stem_status check_attention(check_ctx *c)
{
    stem_check_report *r = c->r;
    const stem_check_gpu *gpu = c->gpu;
    if (!gpu->out && !gpu->lse)
        return STEM_OK;
    const stem_params *p = c->p;
    const stem_dims *dm = &c->dm;
    const int64_t lq = dm->lq, lk = dm->lk, d = dm->d, qb = dm->qb, kb = dm->kb;
    const int B = p->block;
    const int64_t hpg = dm->hq / dm->hkv;
    const size_t nrow = (size_t)lq * (size_t)d;
    attn_bufs b;
    memset(&b, 0, sizeof(b));
    b.m = malloc(nrow * sizeof(float));
    b.lse = malloc((size_t)lq * sizeof(float));
    b.z1 = malloc(nrow * sizeof(float));
    b.y = malloc(nrow * sizeof(float));
    b.yv = malloc(nrow * sizeof(float));
    b.lse2 = malloc((size_t)lq * sizeof(float));
    b.vsq = malloc((size_t)lk * (size_t)d * sizeof(float));
    b.q2 = malloc(nrow * sizeof(float));
    b.grow = malloc((size_t)d * sizeof(float));
    b.mask = malloc((size_t)qb * (size_t)kb);
    if (gpu->out && c->o.dense_test) {
        b.dense = malloc(nrow * sizeof(float));
        b.dsel = malloc((size_t)qb);
    }
    r->heads = calloc((size_t)c->nh, sizeof(stem_check_head));
    r->qblock_rows_failed = calloc((size_t)c->nh * (size_t)qb, sizeof(int32_t));
    check_items io, il;
    int io_ok = check_items_init(&io, c->o.max_items) == 0;
    int il_ok = check_items_init(&il, c->o.max_items) == 0;
    if (!b.m || !b.lse || !b.z1 || !b.y || !b.yv || !b.lse2 || !b.vsq || !b.q2 ||
        !b.grow || !b.mask || (gpu->out && c->o.dense_test && (!b.dense || !b.dsel)) ||
        !r->heads || !r->qblock_rows_failed || !io_ok || !il_ok) {
        bufs_free(&b);
        if (io_ok)
            check_items_free(&io);
        if (il_ok)
            check_items_free(&il);
        return STEM_ERR_NOMEM;
    }
    r->n_heads = c->nh;
    r->out_under_ref_mask = c->gpu_mask == NULL;

    const double K = c->o.sigmas;
    const double up = stem_prec_unit(c->o.attn_prec);
    const double us = stem_prec_unit(c->o.attn_score_prec);
    const double ud = (double)d * 0x1p-24;
    const int fp8 = c->o.attn_prec == STEM_PREC_FP8;
    double uo = stem_prec_unit(c->o.out_store), ul = stem_prec_unit(c->o.lse_store);
    if (gpu->out && check_view_unit(gpu->out->dtype) > uo)
        uo = check_view_unit(gpu->out->dtype);
    if (gpu->lse && check_view_unit(gpu->lse->dtype) > ul)
        ul = check_view_unit(gpu->lse->dtype);
    const double acc = 2.0 * (double)(B + kb + d) * 0x1p-24;
    double wref_s = 0; /* per smax^2 */
    /* A reference in the bf16 compute mode rounds P to bf16 itself, and q, k
     * (scores) when they were not bf16 already: its own variance joins the
     * GPU's (the two roundings are independent). */
    double wref = 0;
    if (p->compute == STEM_COMPUTE_BF16) {
        wref = 0x1p-16 / 3.0;
        if (c->q->dtype != STEM_BF16 || c->k->dtype != STEM_BF16)
            wref_s = 4 * 0x1p-16 / 3.0;
    }
    /* lse (see the file comment): float32 scores, on tensor cores rounded
     * once per 16 products, on either side, partial sums up to twice the
     * score: 8 (d/16 + 4) / 3 u^2 per smax^2; the running sum's rounding
     * over log2 B steps in a block and Kb blocks, and e^x's relative 2^-22,
     * on either side; six roundings of the final value at up to 1.44 |lse|
     * (log2 domain) */
    const double u32 = 0x1p-24;
    const double w_s32 = 8.0 * ((double)d / 16 + 4) / 3.0 * u32 * u32;
    const double v_sum = 2.0 * (log2((double)B) + (double)kb + 2) / 3.0 * u32 * u32;
    const double v_exp = 2.0 * 0x1p-44 / 3.0;
    const double v_fin = 6.0 * (1.44 * u32) * (1.44 * u32) / 3.0;
    /* the other score precision: the dtype's where the declared one is
     * float32 and the dtype 16-bit, float32 where it is coarser */
    double us_alt = -1;
    if (c->o.attn_score_prec == STEM_PREC_FP32 &&
        (c->o.gpu_dtype == STEM_PREC_BF16 || c->o.gpu_dtype == STEM_PREC_FP16))
        us_alt = stem_prec_unit(c->o.gpu_dtype);
    else if (c->o.attn_score_prec != STEM_PREC_FP32)
        us_alt = u32;
    /* the rows' Bonferroni z (as the logits', check_bound.c) */
    double zr = check_normal_quantile2(1e-3 / (double)(c->nh * lq));
    if (zr < K)
        zr = K;
    int64_t out_fail = 0, out_fail_alt = 0, lse_fail_alt = 0;
    double worst_alt = 0, worst_alt_lse = 0;

    stem_params pf = *p;
    pf.use_f64 = 0;
    stem_status st = STEM_OK;
    int64_t g_loaded = -1;
    double vs = 0, kmax = 0;
    double all_err2 = 0, all_ref2 = 0;
    int64_t lse_fail = 0, lse_base2 = 0;
    stem_check_stage_result *so = &r->stage[STEM_STAGE_OUT];
    stem_check_stage_result *sl = &r->stage[STEM_STAGE_LSE];

    for (int64_t hh = 0; hh < c->nh && st == STEM_OK; hh++) {
        const int64_t h = c->h0 + hh, g = h / hpg;
        stem_check_head *hd = &r->heads[hh];
        hd->head = h;
        /* the mask of this head: the GPU's (diagonal put back) or ours */
        const uint8_t *src = c->gpu_mask ? c->gpu_mask + (size_t)hh * qb * kb
                                         : c->ref_mask + (size_t)h * qb * kb;
        memcpy(b.mask, src, (size_t)qb * kb);
        for (int64_t I = 0; I < qb; I++) {
            int64_t pos = I + c->pb;
            if (pos < kb && !b.mask[I * kb + pos]) {
                b.mask[I * kb + pos] = 1;
                r->diag_added = 1;
            }
        }
        stem_tensor qh = head_view(c->q, h), kg = head_view(c->k, g),
                    vg = head_view(c->v, g);
        if (g != g_loaded) {
            float row[STEM_MAX_HEAD_DIM];
            vs = 0, kmax = 0;
            for (int64_t t = 0; t < lk; t++) {
                stem_load_row_f32(c->v, g, t, row);
                for (int64_t e = 0; e < d; e++)
                    if (fabs(row[e]) > vs)
                        vs = fabs(row[e]);
                stem_load_row_f32(c->k, g, t, row);
                double n2 = 0;
                for (int64_t e = 0; e < d; e++)
                    n2 += (double)row[e] * row[e];
                if (sqrt(n2) > kmax)
                    kmax = sqrt(n2);
            }
            for (int64_t t = 0; t < lk; t++) {
                stem_load_row_f32(c->v, g, t, row);
                for (int64_t e = 0; e < d; e++)
                    b.vsq[t * d + e] = vs > 0 ? (float)((double)row[e] * row[e] / vs) : 0;
            }
            g_loaded = g;
        }
        stem_tensor vq = stem_tensor_hnd(b.vsq, STEM_F32, 1, lk, d);
        for (int64_t t = 0; t < lq; t++) {
            stem_load_row_f32(c->q, h, t, b.q2 + t * d);
            for (int64_t e = 0; e < d; e++)
                b.q2[t * d + e] *= 2.0f;
        }
        stem_tensor q2 = stem_tensor_hnd(b.q2, STEM_F32, 1, lq, d);
        stem_tensor om = stem_tensor_hnd(b.m, STEM_F32, 1, lq, d);
        stem_tensor oz = stem_tensor_hnd(b.z1, STEM_F32, 1, lq, d);
        stem_tensor oy = stem_tensor_hnd(b.y, STEM_F32, 1, lq, d);
        stem_tensor oyv = stem_tensor_hnd(b.yv, STEM_F32, 1, lq, d);
        if ((st = stem_attention_sparse(p, &qh, &kg, &vg, b.mask, &om, b.lse)) != STEM_OK ||
            (st = stem_attention_sparse(&pf, &qh, &kg, &vq, b.mask, &oz, NULL)) != STEM_OK)
            break;
        /* doubled queries can leave the accepted input range: then fall
         * back to sum P^2 x <= sum P x (Q2 <= 1) */
        int have_q2 = stem_attention_sparse(&pf, &q2, &kg, &vq, b.mask, &oy, b.lse2) == STEM_OK &&
                      stem_attention_sparse(&pf, &q2, &kg, &vg, b.mask, &oyv, NULL) == STEM_OK;
        if (b.dense && (st = dense_sample(p, &qh, &kg, &vg, dm, b.dense, b.dsel)) != STEM_OK)
            break;
        double h_err2 = 0, h_ref2 = 0;
        double gm_dm = 0, dm2 = 0, gm2 = 0;
        int64_t nd = 0;    /* elements in the dense sample */
        double dlim2 = 0;  /* their row limits, squared and summed */
        int64_t out_failed = 0;
        for (int64_t t = 0; t < lq; t++) {
            const float *mr = b.m + t * d;
            double qn = 0;
            for (int64_t e = 0; e < d; e++) {
                double x = b.q2[t * d + e] * 0.5;
                qn += x * x;
            }
            double smax = sqrt(qn) * kmax / sqrt((double)d);
            double Q2 = have_q2 ? exp((double)b.lse2[t] - 2.0 * b.lse[t]) : 1.0;
            if (!(Q2 <= 1))
                Q2 = 1;
            int failed = 0;
            if (gpu->out) {
                stem_load_row_f32(gpu->out, h, t, b.grow);
                double o2 = 0, z1s = 0, e2 = 0, emax = -1, g2 = 0;
                double h2 = 0, h4 = 0; /* the stored elements' half ulps */
                int64_t at = 0, bad = -1;
                /* per unit of Z2 (P rounded) and of the centered C (scores
                 * rounded), see the file comment */
                double wp = up * up / 3.0 + wref;
                double ws = (us * us + ud * ud) * smax * smax / 3.0 + wref_s * smax * smax;
                double ws_alt = us_alt < 0 ? 0 : ws + (us_alt * us_alt - us * us) * smax * smax / 3.0;
                double vp = 0, vc = 0; /* sum_c Z2_c, sum_c C_c */
                for (int64_t e = 0; e < d; e++) {
                    double O = mr[e], z1 = (double)b.z1[t * d + e] * vs;
                    double z2 = have_q2 ? Q2 * (double)b.y[t * d + e] * vs : z1;
                    double base = sqrt(z2) + fabs(O) * sqrt(Q2);
                    vp += z2;
                    if (have_q2) {
                        /* sum_t P_t^2 (v_tc - O_c)^2 = Z2 - 2 O Y + O^2 Q2,
                         * Y_c = sum_t P_t^2 v_tc; its float32 cancellation
                         * kept above 1e-4 of the terms */
                        double Y = Q2 * (double)b.yv[t * d + e];
                        double cc = z2 - 2 * O * Y + O * O * Q2, fl = 1e-4 * (z2 + O * O * Q2);
                        vc += cc > fl ? cc : fl;
                    } else {
                        vc += base * base;
                    }
                    o2 += O * O;
                    z1s += z1;
                    double G = b.grow[e];
                    if (!isfinite(G) && bad < 0)
                        bad = e;
                    double hu = check_half_ulp(fabs(G) > fabs(O) ? G : O, uo);
                    h2 += hu * hu;
                    h4 += hu * hu * hu * hu;
                    double diff = G - O;
                    e2 += diff * diff;
                    g2 += G * G;
                    if (fabs(diff) > emax) {
                        emax = fabs(diff);
                        at = e;
                    }
                    if (b.dense && b.dsel[t / B]) {
                        double dd = (double)b.dense[t * d + e] - O;
                        gm_dm += diff * dd;
                        dm2 += dd * dd;
                    }
                }

                double v8 = fp8 ? 0x1p-18 / 3.0 * z1s : 0;
                /* storage: the row norm of independent roundings within
                 * +-h_c, its mean square h2 / 3 and Hoeffding's tail at
                 * the rows' Bonferroni z (never beyond the worst case) */
                double so2 = h2 / 3 + sqrt(zr * zr / 4 * h4);
                double lst = sqrt(so2 < h2 ? so2 : h2);
                double lim = c->o.out_tol >= 0
                                 ? c->o.out_tol * sqrt(o2)
                                 : lst + K * sqrt(wp * vp + ws * vc + v8) + acc * sqrt(z1s);
                double lim_alt = lst + K * sqrt(wp * vp + ws_alt * vc + v8) + acc * sqrt(z1s);
                double err = sqrt(e2);
                so->checked++;
                so->units++;
                if (o2 > 0 && lim >= sqrt(o2))
                    so->undecided++;
                if (b.dense && b.dsel[t / B]) {
                    gm2 += e2;
                    nd += d;
                    dlim2 += lim * lim;
                }
                if (bad >= 0) {
                    stem_check_item x = row_item(STEM_KIND_OUT_NONFINITE, h, t, B);
                    x.col = bad;
                    x.err = INFINITY;
                    x.limit = lim;
                    x.gpu = b.grow[bad];
                    x.ref = mr[bad];
                    check_items_add(&io, &x, INFINITY);
                    failed = 1;
                } else {
                    h_err2 += e2;
                    double ratio = lim > 0 ? err / lim : (err > 0 ? INFINITY : 0);
                    if (ratio > so->worst_ratio)
                        so->worst_ratio = ratio;
                    if (emax > so->max_err)
                        so->max_err = emax;
                    if (us_alt >= 0 && c->o.out_tol < 0) {
                        double ra = lim_alt > 0 ? err / lim_alt : (err > 0 ? INFINITY : 0);
                        if (ra > worst_alt)
                            worst_alt = ra;
                        out_fail_alt += err > lim_alt;
                    }
                    out_fail += err > lim;
                    if (err > lim) {
                        stem_check_item x = row_item(STEM_KIND_OUT_ROW, h, t, B);
                        x.col = at;
                        x.err = err;
                        x.limit = lim;
                        x.gpu = sqrt(g2);
                        x.ref = sqrt(o2);
                        check_items_add(&io, &x, ratio);
                        failed = 1;
                    }
                }
                h_ref2 += o2;
                out_failed += failed;
            }
            if (gpu->lse) {
                double gl = check_view_at(gpu->lse, h, t, 0), rl = b.lse[t];
                double v_s = (us * us / 3.0 + w_s32) * smax * smax * Q2;
                double v_rest = v_sum + v_exp * Q2 + v_fin * rl * rl;
                double lst = ul > u32 ? ul * fabs(rl) : 0;
                double lim = c->o.lse_tol >= 0 ? c->o.lse_tol
                                               : K * sqrt(v_s + v_rest) + lst;
                double err = fabs(gl - rl);
                sl->checked++;
                sl->units++;
                if (us_alt >= 0 && c->o.lse_tol < 0 && isfinite(gl)) {
                    double v_a = (us_alt * us_alt / 3.0 + w_s32) * smax * smax * Q2;
                    double la = K * sqrt(v_a + v_rest) + lst;
                    double ra = la > 0 ? err / la : (err > 0 ? INFINITY : 0);
                    if (ra > worst_alt_lse)
                        worst_alt_lse = ra;
                    lse_fail_alt += err > la;
                }
                stem_check_item x = row_item(STEM_KIND_LSE_ROW, h, t, B);
                x.gpu = gl, x.ref = rl, x.err = err, x.limit = lim;
                if (!isfinite(gl)) {
                    x.kind = STEM_KIND_LSE_NONFINITE;
                    x.err = INFINITY;
                    check_items_add(&il, &x, INFINITY);
                    failed = 1;
                } else {
                    double ratio = lim > 0 ? err / lim : (err > 0 ? INFINITY : 0);
                    if (ratio > sl->worst_ratio)
                        sl->worst_ratio = ratio;
                    if (err > sl->max_err)
                        sl->max_err = err;
                    if (err > lim) {
                        check_items_add(&il, &x, ratio);
                        failed = 1;
                        lse_fail++;
                        lse_base2 += fabs(gl - rl / M_LN2) < 0.1 * err;
                    }
                }
            }
            if (failed) {
                hd->rows_failed++;
                r->rows_failed++;
                if (r->qblock_rows_failed[hh * qb + t / B]++ == 0)
                    r->qblocks_failed++;
            }
        }
        all_err2 += h_err2;
        all_ref2 += h_ref2;
        if (gpu->out) {
            hd->out_rel_l2 = h_ref2 > 0 ? sqrt(h_err2 / h_ref2) : (h_err2 > 0 ? INFINITY : 0);
            if (b.dense) {
                double m2 = 0;
                for (int64_t t = 0; t < lq; t++)
                    for (int64_t e = 0; b.dsel[t / B] && e < d; e++)
                        m2 += (double)b.m[t * d + e] * b.m[t * d + e];
                hd->masked_vs_dense = m2 > 0 ? sqrt(dm2 / m2) : (dm2 > 0 ? INFINITY : 0);
                hd->dense_spread = INFINITY;
                if (dm2 > 0 && isfinite(gm2)) {
                    hd->dense_t = gm_dm / dm2;
                    double resid = gm2 - hd->dense_t * hd->dense_t * dm2;
                    hd->dense_spread = sqrt(resid > 0 ? resid : 0) /
                                       (sqrt((double)nd) * sqrt(dm2));
                    hd->dense_decidable = hd->masked_vs_dense > 1e-5 &&
                                          hd->dense_spread < 1.0 / 12.0;
                }
            }
            stem_check_item x = row_item(STEM_KIND_NONE, h, -1, B);
            x.qblock = -1;
            x.err = sqrt(h_err2);
            x.gpu = hd->dense_t;
            x.ref = hd->masked_vs_dense;
            /* G - D = (G - M) - (D - M) */
            double gd2 = gm2 - 2 * gm_dm + dm2;
            int near_dense = hd->dense_decidable && hd->dense_t > 0.5 &&
                             hd->dense_t < 1.5 && gd2 < gm2 && gd2 <= dlim2;
            double rss = INFINITY;
            /* closer to D than M is with a scale and a softmax scale of its
             * own fitted: a wrong softmax scale is not an ignored mask */
            if (near_dense && (st = scale_fit_rss(c, p, h, &kg, &vg, &b, &rss)) != STEM_OK)
                break;
            if (near_dense && gd2 < rss)
                x.kind = STEM_KIND_OUT_IGNORES_MASK;
            else if (out_failed * 2 > lq)
                x.kind = STEM_KIND_OUT_WRONG_HEAD;
            if (x.kind != STEM_KIND_NONE) {
                hd->status = x.kind;
                check_items_add(&io, &x, INFINITY);
            }
        }
    }
    if (st != STEM_OK) {
        bufs_free(&b);
        check_items_free(&io);
        check_items_free(&il);
        return st;
    }
    if (gpu->out) {
        r->out_rel_l2 = all_ref2 > 0 ? sqrt(all_err2 / all_ref2) : (all_err2 > 0 ? INFINITY : 0);
        so->faults = io.total;
        so->verdict = io.total ? STEM_CHECK_FAIL : STEM_CHECK_PASS;
        check_items_take(&io, &so->items, &so->n_items);
    } else {
        check_items_free(&io);
    }
    if (gpu->lse) {
        r->lse_max_abs = sl->max_err;
        r->lse_base2_hint = lse_fail > 0 && lse_base2 * 2 > lse_fail;
        sl->faults = il.total;
        sl->verdict = il.total ? STEM_CHECK_FAIL : STEM_CHECK_PASS;
        check_items_take(&il, &sl->items, &sl->n_items);
        if (r->lse_base2_hint && !r->hint[0])
            snprintf(r->hint, sizeof(r->hint),
                     "the GPU lse matches the reference divided by ln 2: it "
                     "looks like a base-2 logarithm");
    } else {
        check_items_free(&il);
    }
    /* errors that fit the other score precision: say which */
    if (us_alt >= 0) {
        r->alt_ratio[STEM_STAGE_OUT] = gpu->out && c->o.out_tol < 0 ? worst_alt : 0;
        r->alt_ratio[STEM_STAGE_LSE] = gpu->lse && c->o.lse_tol < 0 ? worst_alt_lse : 0;
        const char *dt = stem_prec_name(c->o.gpu_dtype);
        const char *decl = stem_arith_name(c->o.arith);
        int coarser = us_alt > us;
        int fails = out_fail > 0 || lse_fail > 0;
        int fits_alt = (!gpu->out || out_fail_alt == 0) && (!gpu->lse || lse_fail_alt == 0);
        if (r->arith_note[0])
            ; /* the logits stage said it first */
        else if (coarser && fails && fits_alt)
            snprintf(r->arith_note, sizeof(r->arith_note),
                     "the errors fit attention scores rounded to %s before the "
                     "softmax (worst %.2g of those limits), declared %s (float32 "
                     "scores): give --arith angelslim or --scores %s if the "
                     "kernel rounds there", dt, gpu->out ? worst_alt : worst_alt_lse,
                     decl, dt);
        else if (!coarser && !fails && gpu->out && out_fail_alt == 0 &&
                 worst_alt < 0.7 && (!gpu->lse || lse_fail_alt == 0))
            snprintf(r->arith_note, sizeof(r->arith_note),
                     "the errors also fit float32 attention scores (worst %.2g "
                     "of those tighter limits), declared %s (scores %s): give "
                     "--arith flash if the kernel is a flash kernel",
                     worst_alt, decl, stem_prec_name(c->o.attn_score_prec));
    }
    if (gpu->out && so->checked > 0 && r->rows_failed * 10 > so->checked * 9 &&
        !r->hint[0])
        snprintf(r->hint, sizeof(r->hint),
                 "almost every row differs: check --layout, --dtype and the "
                 "parameters (--profile, --alpha) against the kernel's");
    bufs_free(&b);
    return STEM_OK;
}
