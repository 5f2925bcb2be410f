/*
 * check_bias.c - the systematic tests of stem_check (docs/ALGORITHM.md
 * section 5, "Systematic errors").
 *
 * Rounding moves each value a little, in either direction, independently
 * of its neighbours and of the signal.  A fault moves many values a little
 * in the same direction: an output scaled by 1.01, a softmax scale 3% off,
 * an lse shifted by 1e-3, logits computed with another stride.  Each such
 * fault has a direction X (per row, a vector) along which it moves the
 * GPU's error E = G - R (G the GPU's values, R the reference's).  For a
 * group of rows (the rows of one query block of one head, and all rows of
 * a head) the component beta of E along the directions is the weighted
 * least-squares fit
 *
 *   beta = A^-1 b,   A = sum_r w_r X_r^T X_r,   b = sum_r w_r X_r^T E_r,
 *
 * and its standard error comes from the residual of the same rows,
 * e_r = E_r - X_r beta, clustered by row (the errors of one row may be
 * correlated with each other; distinct rows' are independent):
 *
 *   V = G/(G - k) A^-1 (sum_r g_r g_r^T) A^-1,   g_r = w_r X_r^T e_r,
 *   z_j = beta_j / sqrt(V_jj).
 *
 * Under rounding alone z_j is close to a standard normal variable.  A
 * component fails when |z_j| exceeds the threshold of its group: the
 * two-sided normal quantile of alpha / n (Bonferroni over the n tests of
 * the whole check, alpha = BIAS_ALPHA), widened for the G - k degrees of
 * freedom of the residual (Cornish-Fisher: z (1 + (z^2 + 1) / 4 nu)).
 *
 * The families and their directions:
 *   out     (rows of d elements, w_r = 1 / ||R_r||^2):
 *           scale        X = R_r, the reference row itself;
 *           temperature  X = dR_r / d epsilon for a softmax scale
 *                        c (1 + epsilon), by a forward difference with
 *                        queries scaled by 1 + 2^-7;
 *           next row     X = R_{r+1} - R_r, previous row X = R_{r-1} - R_r
 *                        (a row written one place off);
 *           next head    X = R'_r - R_r, R' the next query head's reference
 *                        (its own mask), and the previous head's alike (a
 *                        head's output written into its neighbour);
 *           kv head      X = A_r - R_r, A attention of the same queries
 *                        with the k and v of another kv head (g + 1, or
 *                        g - 1 for the last; a kernel that reads the wrong
 *                        kv head of its group).
 *   lse     (one value a row, w_r = 1): offset X = 1; temperature
 *           X = d lse_r / d epsilon (the same difference).
 *   logits  (the causal entries of one query block's row are one cluster,
 *           w = 1 / limit^2; per head only): scale of the QK term
 *           X = L - V (V the value term), the value term X = V, and the
 *           logits of another stride X = L_s' - L (s' = 2s, or s/2 where
 *           2s does not divide the block), and the value term's change
 *           when a group's norm is its tokens' mean norm, not their max.
 * A component must also be larger than a floor that bounds what rounding
 * could do systematically (floor_ratio); a group fails when
 * min(|z| / threshold, |component| / floor) > 1, and that minimum is what
 * the report's worst gives.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check_internal.h"

/* False-alarm probability of one whole check (every test of every
 * family together). */
#define BIAS_ALPHA 1e-3
/* Relative step of the softmax scale for the temperature direction. */
#define BIAS_DELTA 0x1p-7
/* A query block with fewer rows is tested within its head only. */
#define BIAS_MIN_ROWS 16
/* Directions of a family at most. */
#define KMAX 7

enum { FAM_OUT = 0, FAM_LSE, FAM_LOGITS, FAM_COUNT };

static const int fam_k[FAM_COUNT] = {7, 2, 4};
/* The first fam_own directions of a family are fitted on their own, the
 * rest with all: out's head and kv directions overlap the scale (R' - R
 * holds -R) and would widen its standard error; the lse temperature
 * direction, d lse / d eps = the row's mean score, is nearly constant
 * where the scores' spread is (random data) and would widen the offset's.
 * A failing direction of the rest explains the first ones' components:
 * only it is listed. */
static const int fam_own[FAM_COUNT] = {4, 1, 4};

/* The kind of direction j of family f. */
static stem_check_kind fam_kind(int f, int j)
{
    static const stem_check_kind kinds[FAM_COUNT][KMAX] = {
        {STEM_KIND_OUT_SCALE_BIAS, STEM_KIND_OUT_TEMP_BIAS,
         STEM_KIND_OUT_ROW_SHIFT, STEM_KIND_OUT_ROW_SHIFT,
         STEM_KIND_OUT_HEAD_SHIFT, STEM_KIND_OUT_HEAD_SHIFT,
         STEM_KIND_OUT_KV_HEAD},
        {STEM_KIND_LSE_OFFSET, STEM_KIND_LSE_TEMP_BIAS},
        {STEM_KIND_LOGIT_SCALE_BIAS, STEM_KIND_LOGIT_VALUE_BIAS,
         STEM_KIND_LOGIT_STRIDE_BIAS, STEM_KIND_LOGIT_GROUP_NORM_BIAS},
    };
    return kinds[f][j];
}

/* The summary slot of direction j of family f. */
static int fam_test(int f, int j)
{
    static const int tests[FAM_COUNT][KMAX] = {
        {STEM_BIAS_OUT_SCALE, STEM_BIAS_OUT_TEMP, STEM_BIAS_OUT_SHIFT,
         STEM_BIAS_OUT_SHIFT, STEM_BIAS_OUT_HEAD, STEM_BIAS_OUT_HEAD,
         STEM_BIAS_OUT_KV_HEAD},
        {STEM_BIAS_LSE_OFFSET, STEM_BIAS_LSE_TEMP},
        {STEM_BIAS_LOGIT_SCALE, STEM_BIAS_LOGIT_VALUE, STEM_BIAS_LOGIT_STRIDE,
         STEM_BIAS_LOGIT_GROUP_NORM},
    };
    return tests[f][j];
}

/* Per cluster sums of one family: xx (k x k, full) and xe (k). */
typedef struct row_stats {
    double xx[KMAX * KMAX];
    double xe[KMAX];
} row_stats;

/* One fitted group. */
typedef struct fit {
    int fam;
    int64_t head, qblock;       /* qblock -1: the whole head */
    int64_t g;                  /* clusters (rows) */
    double beta[KMAX], z[KMAX], se[KMAX];   /* se: standard error */
    int valid[KMAX];            /* direction j was identifiable */
    double scale;               /* typical size of the values (floor) */
    int64_t kv_alt;             /* out: the other kv head's index, or -1 */
} fit;

/* Invert the k x k matrix a (row major) into inv by Gauss-Jordan with
 * partial pivoting; a direction whose pivot falls below 1e-10 of its own
 * diagonal is collinear with the others: its row and column are zeroed in
 * inv and valid[j] = 0.  a is left unchanged. */
static void invert(const double *a, int k, double *inv, int *valid)
{
    double m[KMAX][2 * KMAX];
    for (int i = 0; i < k; i++)
        valid[i] = a[i * k + i] > 0 && isfinite(a[i * k + i]);
    for (int i = 0; i < k; i++) {
        for (int j = 0; j < k; j++) {
            m[i][j] = valid[i] && valid[j] ? a[i * k + j] : 0;
            m[i][k + j] = i == j;
        }
        if (!valid[i])
            m[i][i] = 1;
    }
    for (int c = 0; c < k; c++) {
        if (!valid[c])
            continue;
        /* symmetric positive semi-definite: pivot on the diagonal */
        double piv = m[c][c];
        if (!(piv > 1e-10 * a[c * k + c])) {
            valid[c] = 0;
            for (int j = 0; j < 2 * k; j++)
                m[c][j] = j == c || j == k + c;
            for (int i = 0; i < k; i++)
                if (i != c)
                    m[i][c] = 0;
            continue;
        }
        for (int j = 0; j < 2 * k; j++)
            m[c][j] /= piv;
        for (int i = 0; i < k; i++) {
            if (i == c || m[i][c] == 0)
                continue;
            double f = m[i][c];
            for (int j = 0; j < 2 * k; j++)
                m[i][j] -= f * m[c][j];
        }
    }
    for (int i = 0; i < k; i++)
        for (int j = 0; j < k; j++)
            inv[i * k + j] = valid[i] && valid[j] ? m[i][k + j] : 0;
}

/* Fit the clusters st[0..n) on the first k directions of a family into
 * *f (beta, z, valid, g); st's xx is ld x ld (ld >= k).  Clusters whose
 * xx is all zero do not count. */
static void fit_group(const row_stats *st, int64_t n, int k, int ld, fit *f)
{
    double a[KMAX * KMAX] = {0}, b[KMAX] = {0}, inv[KMAX * KMAX];
    int64_t g = 0;
    for (int64_t r = 0; r < n; r++) {
        int any = 0;
        for (int i = 0; i < k * k; i++) {
            a[i] += st[r].xx[(i / k) * ld + i % k];
            any |= st[r].xx[(i / k) * ld + i % k] != 0;
        }
        for (int i = 0; i < k; i++)
            b[i] += st[r].xe[i];
        g += any;
    }
    f->g = g;
    invert(a, k, inv, f->valid);
    for (int i = 0; i < k; i++) {
        f->beta[i] = 0;
        for (int j = 0; j < k; j++)
            f->beta[i] += inv[i * k + j] * b[j];
    }
    /* meat: sum over clusters of g_r g_r^T, g_r = xe_r - xx_r beta */
    double s[KMAX * KMAX] = {0};
    for (int64_t r = 0; r < n; r++) {
        double gr[KMAX];
        for (int i = 0; i < k; i++) {
            gr[i] = st[r].xe[i];
            for (int j = 0; j < k; j++)
                gr[i] -= st[r].xx[i * ld + j] * f->beta[j];
        }
        for (int i = 0; i < k; i++)
            for (int j = 0; j < k; j++)
                s[i * k + j] += gr[i] * gr[j];
    }
    int kv = 0;
    for (int i = 0; i < k; i++)
        kv += f->valid[i];
    double corr = g > kv ? (double)g / (double)(g - kv) : INFINITY;
    for (int j = 0; j < k; j++) {
        f->z[j] = 0;
        f->se[j] = INFINITY;
        if (!f->valid[j] || g <= kv)
            continue;
        /* V_jj = sum_ab inv[j][a] s[a][b] inv[b][j] */
        double v = 0;
        for (int x = 0; x < k; x++)
            for (int y = 0; y < k; y++)
                v += inv[j * k + x] * s[x * k + y] * inv[y * k + j];
        v *= corr;
        f->z[j] = v > 0 ? f->beta[j] / sqrt(v) : (f->beta[j] != 0 ? INFINITY : 0);
        f->se[j] = v > 0 ? sqrt(v) : 0;
    }
}

/* The threshold of a group with g clusters and kv fitted directions. */
static double group_threshold(double z0, int64_t g, int kv)
{
    double nu = (double)(g - kv);
    if (nu < 1)
        return INFINITY;
    return z0 * (1 + (z0 * z0 + 1) / (4 * nu));
}

/* ------------------------------------------------------------------ out */

/* One head's working room: the reference out and lse of the previous,
 * this and the next judged head (ro[0..3), rl[0..3): ring slots, m / lse
 * point at this head's, mprev / mnext at its neighbours' or NULL), the
 * reference with the queries scaled by 1 + BIAS_DELTA (md, lsed, from qs),
 * attention with another kv head (mk), a GPU row, the mask, and the
 * per-row sums of each family.  ro, rl, md, lsed, qs, mk, grow, mask,
 * st_out, st_lse owned; freed with head_bufs_free (which takes a partly
 * allocated one). */
typedef struct head_bufs {
    float *ro[3], *rl[3];
    const float *m, *lse, *mprev, *mnext;
    float *md, *lsed, *qs, *mk, *grow;
    uint8_t *mask;
    row_stats *st_out, *st_lse;
} head_bufs;

static void head_bufs_free(head_bufs *b)
{
    for (int i = 0; i < 3; i++)
        free(b->ro[i]), free(b->rl[i]);
    free(b->md), free(b->lsed), free(b->qs), free(b->mk);
    free(b->grow), free(b->mask), free(b->st_out), free(b->st_lse);
}

/* A view of head h of t (not copied). */
static stem_tensor one_head(const stem_tensor *t, int64_t h)
{
    stem_tensor x = *t;
    x.data = (char *)t->data + h * t->head_stride * (int64_t)stem_dtype_size(t->dtype);
    x.heads = 1;
    return x;
}

/* A growing list of fitted groups. */
typedef struct fit_list {
    fit *v;
    int64_t n, cap;
} fit_list;

/* A new zeroed entry at the end of l, or NULL on no memory (l intact). */
static fit *fit_push(fit_list *l)
{
    if (l->n == l->cap) {
        int64_t cap = l->cap ? 2 * l->cap : 256;
        fit *v = realloc(l->v, (size_t)cap * sizeof(fit));
        if (!v)
            return NULL;
        l->v = v, l->cap = cap;
    }
    memset(&l->v[l->n], 0, sizeof(fit));
    return &l->v[l->n++];
}

/* Fit the query blocks of one head (those with BIAS_MIN_ROWS rows or
 * more) and the whole head for family fam from per-row stats st[0..lq),
 * appending to l; scale is the typical value size (floor_ratio).  0, or -1
 * on no memory. */
static int fit_head(fit_list *l, int fam, int64_t h, const row_stats *st,
                    int64_t lq, int B, double scale)
{
    const int k = fam_k[fam];
    const int64_t nblk = (lq + B - 1) / B;
    for (int64_t I = 0; I <= nblk; I++) {
        const int64_t r0 = I * B;
        int whole = I == nblk;   /* after the blocks: the whole head */
        int64_t n = whole ? lq : (lq - r0 < B ? lq - r0 : B);
        if (!whole && n < BIAS_MIN_ROWS)
            continue;
        const row_stats *s0 = whole ? st : st + r0;
        fit *f = fit_push(l);
        if (!f)
            return -1;
        f->fam = fam, f->head = h, f->qblock = whole ? -1 : I, f->scale = scale;
        fit_group(s0, n, k, k, f);
        if (fam_own[fam] < k) {
            fit a;
            fit_group(s0, n, fam_own[fam], k, &a);
            for (int j = 0; j < fam_own[fam]; j++)
                f->beta[j] = a.beta[j], f->z[j] = a.z[j], f->se[j] = a.se[j],
                f->valid[j] = a.valid[j];
        }
    }
    return 0;
}

/* The mask of the hh-th judged head as check_attention builds it (the
 * GPU's, diagonal added, or the reference's) into mask[qb * kb]. */
static void head_mask(const check_ctx *c, int64_t hh, uint8_t *mask)
{
    const int64_t qb = c->dm.qb, kb = c->dm.kb, h = c->h0 + hh;
    const uint8_t *src = c->gpu_mask ? c->gpu_mask + (size_t)hh * qb * kb
                                     : c->ref_mask + (size_t)h * qb * kb;
    memcpy(mask, src, (size_t)qb * kb);
    for (int64_t I = 0; I < qb; I++) {
        int64_t pos = I + c->pb;
        if (pos < kb)
            mask[I * kb + pos] = 1;
    }
}

/* The library's float32 attention of the queries q (a view of one head)
 * with the k and v of kv head g under mask into out [lq, d] and lse [lq]
 * (lse may be NULL).  STEM_OK or an error of stem_attention_sparse. */
static stem_status head_attn(const check_ctx *c, const stem_tensor *q, int64_t g,
                             const uint8_t *mask, float *out, float *lse)
{
    stem_params pf = *c->p;
    pf.use_f64 = 0;
    pf.compute = STEM_COMPUTE_F32;
    stem_tensor kg = one_head(c->k, g), vg = one_head(c->v, g);
    stem_tensor o = stem_tensor_hnd(out, STEM_F32, 1, c->dm.lq, c->dm.d);
    return stem_attention_sparse(&pf, q, &kg, &vg, mask, &o, lse);
}

/* The reference out and lse of the hh-th judged head into out, lse
 * (b->mask receives its mask).  STEM_OK or an error of
 * stem_attention_sparse. */
static stem_status head_ref(const check_ctx *c, int64_t hh, head_bufs *b,
                            float *out, float *lse)
{
    const int64_t h = c->h0 + hh, g = h / (c->dm.hq / c->dm.hkv);
    stem_tensor qh = one_head(c->q, h);
    head_mask(c, hh, b->mask);
    return head_attn(c, &qh, g, b->mask, out, lse);
}

/* The per-row sums of the out and lse families of the hh-th judged head
 * into b->st_out / b->st_lse (rows whose GPU values are not finite, or
 * whose reference row is zero, stay all zero and do not count), the
 * other kv head of the kv-head direction into *kv_alt (-1: none), and the
 * typical |R_r| and |lse_r| into *out_scale / *lse_scale.  b holds room
 * for one head (see check_stage_bias) and b->m, b->lse its reference,
 * b->mprev / b->mnext its neighbours' (NULL: none).  The reference is the
 * library's float32 attention under the same mask as check_attention's.
 * STEM_OK or an error of stem_attention_sparse. */
static stem_status head_rows(check_ctx *c, int64_t hh, head_bufs *b,
                             int64_t *kv_alt, double *out_scale,
                             double *lse_scale)
{
    const stem_dims *dm = &c->dm;
    const int64_t lq = dm->lq, d = dm->d;
    const int64_t h = c->h0 + hh, g = h / (dm->hq / dm->hkv);
    const stem_check_gpu *gpu = c->gpu;
    head_mask(c, hh, b->mask);
    stem_tensor qh = one_head(c->q, h);
    for (int64_t t = 0; t < lq; t++) {
        stem_load_row_f32(c->q, h, t, b->qs + t * d);
        for (int64_t e = 0; e < d; e++)
            b->qs[t * d + e] *= (float)(1 + BIAS_DELTA);   /* exact */
    }
    stem_tensor qs = stem_tensor_hnd(b->qs, STEM_F32, 1, lq, d);
    stem_status st;
    if ((st = head_attn(c, &qs, g, b->mask, b->md, b->lsed)) != STEM_OK)
        return st;
    *kv_alt = dm->hkv > 1 && gpu->out ? (g + 1 < dm->hkv ? g + 1 : g - 1) : -1;
    if (*kv_alt >= 0 && (st = head_attn(c, &qh, *kv_alt, b->mask, b->mk, NULL)) != STEM_OK)
        return st;
    double osum = 0, lsum = 0;
    int64_t on = 0, ln = 0;
    for (int64_t t = 0; t < lq; t++) {
        if (gpu->out) {
            row_stats *rs = &b->st_out[t];
            memset(rs, 0, sizeof(*rs));
            stem_load_row_f32(gpu->out, h, t, b->grow);
            const float *m = b->m + t * d, *md = b->md + t * d;
            const float *mn = t + 1 < lq ? m + d : NULL, *mp = t > 0 ? m - d : NULL;
            const float *hn = b->mnext ? b->mnext + t * d : NULL;
            const float *hp = b->mprev ? b->mprev + t * d : NULL;
            const float *mk = *kv_alt >= 0 ? b->mk + t * d : NULL;
            double m2 = 0;
            int fin = 1;
            for (int64_t e = 0; e < d; e++) {
                m2 += (double)m[e] * m[e];
                fin &= isfinite(b->grow[e]);
            }
            if (fin && m2 > 0) {
                double w = 1 / m2;
                osum += sqrt(m2), on++;
                for (int64_t e = 0; e < d; e++) {
                    double x[KMAX];
                    x[0] = m[e];
                    x[1] = ((double)md[e] - m[e]) / BIAS_DELTA;
                    x[2] = mn ? (double)mn[e] - m[e] : 0;
                    x[3] = mp ? (double)mp[e] - m[e] : 0;
                    x[4] = hn ? (double)hn[e] - m[e] : 0;
                    x[5] = hp ? (double)hp[e] - m[e] : 0;
                    x[6] = mk ? (double)mk[e] - m[e] : 0;
                    double err = (double)b->grow[e] - m[e];
                    for (int i = 0; i < KMAX; i++) {
                        double wx = w * x[i];
                        rs->xe[i] += wx * err;
                        for (int j = i; j < KMAX; j++)
                            rs->xx[i * KMAX + j] += wx * x[j];
                    }
                }
                for (int i = 0; i < KMAX; i++)
                    for (int j = 0; j < i; j++)
                        rs->xx[i * KMAX + j] = rs->xx[j * KMAX + i];
            }
        }
        if (gpu->lse) {
            row_stats *rs = &b->st_lse[t];
            memset(rs, 0, sizeof(*rs));
            double gl = check_view_at(gpu->lse, h, t, 0), rl = b->lse[t];
            if (isfinite(gl) && isfinite(rl)) {
                double x[2] = {1, ((double)b->lsed[t] - rl) / BIAS_DELTA};
                double err = gl - rl;
                lsum += fabs(rl), ln++;
                for (int i = 0; i < 2; i++) {
                    rs->xe[i] = x[i] * err;
                    for (int j = 0; j < 2; j++)
                        rs->xx[i * 2 + j] = x[i] * x[j];
                }
            }
        }
    }
    *out_scale = on ? osum / (double)on : 0;
    *lse_scale = ln ? lsum / (double)ln : 0;
    return STEM_OK;
}

/* ---------------------------------------------------------------- logits */

/*
 * The change of the z-scored value term of kv head g (docs/ALGORITHM.md
 * section 1) when each group's norm is the mean of its tokens' norms
 * instead of their maximum, per key block, into dt[0..kb): in float64,
 * both terms computed here alike (groups of s tokens, ln(x + 1e-6), the
 * z-score over the full groups or, for the padded rule, every group,
 * ReLU, lambda, the mean over the block's groups).  work: 2 * kb * (B / s)
 * doubles.  Zero for other value rules.
 */
static void group_norm_change(const check_ctx *c, int64_t g, double *work,
                              double *dt)
{
    const stem_params *p = c->p;
    const int64_t kb = c->dm.kb, lk = c->dm.lk, d = c->dm.d;
    const int s = p->stride, G = p->block / s;
    const int64_t ng = kb * G;
    double *lmax = work, *lmean = work + ng;
    memset(dt, 0, (size_t)kb * sizeof(double));
    if (p->value_rule != STEM_VALUE_ZSCORE_FULL && p->value_rule != STEM_VALUE_ZSCORE_PADDED)
        return;
    float row[STEM_MAX_HEAD_DIM];
    for (int64_t b = 0; b < ng; b++) {
        double mx = 0, sum = 0;
        int64_t n = 0;
        for (int64_t t = b * s; t < (b + 1) * s && t < lk; t++, n++) {
            stem_load_row_f32(c->v, g, t, row);
            double n2 = 0;
            for (int64_t e = 0; e < d; e++)
                n2 += (double)row[e] * row[e];
            sum += sqrt(n2);
            if (sqrt(n2) > mx)
                mx = sqrt(n2);
        }
        lmax[b] = log(mx + 1e-6);
        lmean[b] = log((n ? sum / (double)n : 0) + 1e-6);
    }
    const int64_t nstat = p->value_rule == STEM_VALUE_ZSCORE_FULL ? lk / s : ng;
    if (nstat < 2)
        return;
    for (int v = 0; v < 2; v++) {
        const double *lg = v ? lmean : lmax;
        double mean = 0, var = 0;
        for (int64_t b = 0; b < nstat; b++)
            mean += lg[b];
        mean /= (double)nstat;
        for (int64_t b = 0; b < nstat; b++)
            var += (lg[b] - mean) * (lg[b] - mean);
        double sd = sqrt(var / (double)(nstat - 1));
        for (int64_t J = 0; J < kb; J++) {
            double acc = 0;
            for (int b = 0; b < G; b++)
                acc += fmax(0.0, (lg[J * G + b] - mean) / (sd + 1e-6));
            dt[J] += (v ? 1 : -1) * p->value_weight * acc / (double)G;
        }
    }
}

/* The logits family of every judged head, fitted per head into l: the
 * clusters are the query-block rows.  Needs c->gpu_logits.  Computes the
 * reference logits without the value term and with the other stride (two
 * scoring passes) and the value term's change under mean group norms.
 * STEM_OK, STEM_ERR_NOMEM or an error of stem_block_logits. */
static stem_status logit_fits(check_ctx *c, fit_list *l)
{
    const stem_dims *dm = &c->dm;
    const int64_t qb = dm->qb, kb = dm->kb;
    const size_t cells = (size_t)dm->hq * (size_t)qb * (size_t)kb;
    stem_params pv = *c->p, ps = *c->p;
    pv.value_weight = 0;
    pv.value_rule = STEM_VALUE_NONE;
    int have_value = c->p->value_rule != STEM_VALUE_NONE && c->p->value_weight != 0;
    ps.stride = c->p->block % (2 * c->p->stride) == 0 ? 2 * c->p->stride
                                                       : c->p->stride / 2;
    int have_stride = ps.stride >= 1 && stem_params_validate(&ps) == STEM_OK;
    float *lv = have_value ? malloc(cells * sizeof(float)) : NULL;
    float *ls = have_stride ? malloc(cells * sizeof(float)) : NULL;
    row_stats *st = malloc((size_t)qb * sizeof(row_stats));
    const int64_t gpb = c->p->block / c->p->stride;   /* groups a block */
    double *gwork = malloc((size_t)(2 * kb * gpb + kb) * sizeof(double));
    double *dt = gwork ? gwork + 2 * kb * gpb : NULL;
    int64_t g_done = -1;
    stem_status rc = STEM_OK;
    if ((have_value && !lv) || (have_stride && !ls) || !st || !gwork) {
        rc = STEM_ERR_NOMEM;
        goto done;
    }
    if ((have_value && (rc = stem_block_logits(&pv, c->q, c->k, c->v, lv)) != STEM_OK) ||
        (have_stride && (rc = stem_block_logits(&ps, c->q, c->k, c->v, ls)) != STEM_OK))
        goto done;
    for (int64_t hh = 0; hh < c->nh; hh++) {
        const int64_t h = c->h0 + hh, g = h / (dm->hq / dm->hkv);
        double lsum = 0;
        int64_t ln = 0;
        if (g != g_done) {
            group_norm_change(c, g, gwork, dt);
            g_done = g;
        }
        for (int64_t I = 0; I < qb; I++) {
            row_stats *rs = &st[I];
            memset(rs, 0, sizeof(*rs));
            for (int64_t J = 0; J < kb; J++) {
                size_t gi = ((size_t)hh * qb + I) * kb + J;
                size_t ri = ((size_t)h * qb + I) * kb + J;
                double L = c->ref_logits[ri], G = c->gpu_logits[gi];
                double lim = c->limit[gi];
                if (!isfinite(L) || !isfinite(G) || !(lim > 0))
                    continue;
                double x[4];
                double vterm = have_value ? L - lv[ri] : 0;
                x[0] = L - vterm;
                x[1] = vterm;
                x[2] = have_stride && isfinite(ls[ri]) ? ls[ri] - L : 0;
                x[3] = dt[J];
                double w = 1 / (lim * lim), err = G - L;
                lsum += fabs(L), ln++;
                for (int i = 0; i < 4; i++) {
                    rs->xe[i] += w * x[i] * err;
                    for (int j = 0; j < 4; j++)
                        rs->xx[i * 4 + j] += w * x[i] * x[j];
                }
            }
        }
        fit *f = fit_push(l);
        if (!f) {
            rc = STEM_ERR_NOMEM;
            goto done;
        }
        f->fam = FAM_LOGITS, f->head = h, f->qblock = -1;
        f->scale = ln ? lsum / (double)ln : 0;
        fit_group(st, qb, 4, 4, f);
    }
done:
    free(lv), free(ls), free(st), free(gwork);
    return rc;
}

/* ----------------------------------------------------------------- floor */

/*
 * The component of direction j of family f as a fraction of its floor:
 * the smallest component that counts as a fault, whatever its standard
 * error, because rounding can do that much systematically.
 * Rounding to nearest is unbiased, but a nonlinear step after it (the
 * exponential, the division by the row sum) turns its variance u^2 / 3
 * into a bias of second order, about u^2 / 6 per rounding on a relative
 * scale; the floor allows 3u^2 / 4 for each rounding of P, scores and out,
 * which also covers FP8 P flushed below 2^-18 of the row maximum (hpc-ops:
 * a scale of up to 1.5e-3 in a query block, 0.53 of its floor); float32 constants and sums add a first-order 2^-24 each, 16 of
 * them allowed (2 for an lse offset, relative to the typical |lse|: the
 * scale constants' rounding moves lse by up to |lse| 2^-24 each; the
 * FlexAttention s2 capture leans by 1.26 of those units, 0.63 of this
 * floor).  out and lse components are relative (scale,
 * temperature) or absolute (lse offset).  A row shift moves its
 * component to 1: below 1/4 it is no shift; so does the stride direction.
 * The QK term's scale has the second-order floor of the scoring and stored
 * logits' units.  The value term's component is relative: below 1/20 it is
 * no wrong weight (a genuine fp16 kernel stores a value term 2.8% smaller
 * than the reference's, a normalisation detail; a weight of 0.3 for 0.2 is
 * 1/2).
 */
static double floor_ratio(const check_ctx *c, const fit *f, int j)
{
    const double up = stem_prec_unit(c->o.attn_prec);
    const double us = stem_prec_unit(c->o.attn_score_prec);
    const double uo = stem_prec_unit(c->o.out_store);
    const double u32 = 16 * 0x1p-24;
    const double second = 0.75 * (up * up + us * us + uo * uo);
    double b = fabs(f->beta[j]);
    switch (f->fam) {
    case FAM_OUT:
        if (j >= 2)
            return b / 0.25;   /* a row, head or kv head shift: 1 when it is one */
        return b / (second > u32 ? second : u32);
    case FAM_LSE:
        if (j == 0)
            return b / ((2 * 0x1p-24 + us * us / 2) * (f->scale > 1 ? f->scale : 1));
        return b / (us * us / 2 > u32 ? us * us / 2 : u32);
    default: {
        const double usc = stem_prec_unit(c->o.score_prec);
        const double ust = stem_prec_unit(c->o.logit_store);
        const double sl = (usc * usc + ust * ust) / 2;
        if (j == 0)
            return b / (sl > u32 ? sl : u32);
        return b / (j == 1 ? 0.05 : 0.25);   /* stride, group norm: 1 */
    }
    }
}

/* The component of the fault each test is there for, the size it must
 * decide (docs/ALGORITHM.md section 5): an output scale of 1%, a softmax
 * scale 3% off, a row, head or kv head shift (1), an lse offset of 1e-3,
 * a QK scale 3% off, a value weight 1.5 times, another stride and group
 * norms from the mean (1). */
static double fault_size(int test)
{
    static const double size[STEM_BIAS_COUNT] = {
        [STEM_BIAS_OUT_SCALE] = 0.01, [STEM_BIAS_OUT_TEMP] = 0.03,
        [STEM_BIAS_OUT_SHIFT] = 1, [STEM_BIAS_LSE_OFFSET] = 1e-3,
        [STEM_BIAS_LSE_TEMP] = 0.03, [STEM_BIAS_LOGIT_SCALE] = 0.03,
        [STEM_BIAS_LOGIT_VALUE] = 0.5, [STEM_BIAS_LOGIT_STRIDE] = 1,
        [STEM_BIAS_LOGIT_GROUP_NORM] = 1, [STEM_BIAS_OUT_HEAD] = 1,
        [STEM_BIAS_OUT_KV_HEAD] = 1};
    return size[test];
}

/* The smallest component of direction j of the group f that fails: it
 * must clear thr standard errors and the floor. */
static double smallest_failing(const check_ctx *c, const fit *f, int j, double thr)
{
    fit one = *f;
    one.beta[j] = 1;
    double fl = 1 / floor_ratio(c, &one, j);   /* floor_ratio is linear */
    double zs = thr * f->se[j];
    return zs > fl ? zs : fl;
}

/* ---------------------------------------------------------------- driver */

/* Append the kept bias items of stage s to its items (after the row
 * faults, which are more specific); counts every offered one. */
static stem_status stage_append(stem_check_stage_result *s, check_items *it)
{
    stem_check_item *v = NULL;
    int64_t n = 0;
    s->faults += it->total;
    if (it->total)
        s->verdict = STEM_CHECK_FAIL;
    check_items_take(it, &v, &n);
    if (!n)
        return STEM_OK;
    stem_check_item *all = realloc(s->items, (size_t)(s->n_items + n) * sizeof(*all));
    if (!all) {
        free(v);
        return STEM_ERR_NOMEM;
    }
    memcpy(all + s->n_items, v, (size_t)n * sizeof(*all));
    s->items = all;
    s->n_items += n;
    free(v);
    return STEM_OK;
}

stem_status check_stage_bias(check_ctx *c)
{
    stem_check_report *r = c->r;
    const stem_check_gpu *gpu = c->gpu;
    const stem_dims *dm = &c->dm;
    const int64_t lq = dm->lq, d = dm->d, qb = dm->qb, kb = dm->kb;
    const int B = c->p->block;
    fit_list l = {NULL, 0, 0};
    head_bufs b;
    memset(&b, 0, sizeof(b));
    stem_status st = STEM_OK;
    for (int t = 0; t < STEM_BIAS_COUNT; t++) {
        r->bias[t].worst_head = r->bias[t].worst_qblock = -1;
    }
    if (c->gpu_logits && (st = logit_fits(c, &l)) != STEM_OK)
        goto done;
    if (gpu->out || gpu->lse) {
        const size_t nrow = (size_t)lq * (size_t)d;
        int ok = 1;
        for (int i = 0; i < 3; i++) {
            b.ro[i] = malloc(nrow * sizeof(float));
            b.rl[i] = malloc((size_t)lq * sizeof(float));
            ok &= b.ro[i] && b.rl[i];
        }
        b.md = malloc(nrow * sizeof(float));
        b.qs = malloc(nrow * sizeof(float));
        b.mk = dm->hkv > 1 ? malloc(nrow * sizeof(float)) : NULL;
        b.lsed = malloc((size_t)lq * sizeof(float));
        b.grow = malloc((size_t)d * sizeof(float));
        b.mask = malloc((size_t)qb * (size_t)kb);
        b.st_out = malloc((size_t)lq * sizeof(row_stats));
        b.st_lse = malloc((size_t)lq * sizeof(row_stats));
        if (!ok || !b.md || !b.qs || (dm->hkv > 1 && !b.mk) || !b.lsed || !b.grow ||
            !b.mask || !b.st_out || !b.st_lse) {
            st = STEM_ERR_NOMEM;
            goto done;
        }
        /* ring slots: (hh - 1) % 3, hh % 3, (hh + 1) % 3 */
        if ((st = head_ref(c, 0, &b, b.ro[0], b.rl[0])) != STEM_OK)
            goto done;
        for (int64_t hh = 0; hh < c->nh; hh++) {
            double os = 0, ls = 0;
            int64_t kv_alt = -1;
            int cur = (int)(hh % 3), nxt = (int)((hh + 1) % 3), prv = (int)((hh + 2) % 3);
            if (hh + 1 < c->nh &&
                (st = head_ref(c, hh + 1, &b, b.ro[nxt], b.rl[nxt])) != STEM_OK)
                goto done;
            b.m = b.ro[cur], b.lse = b.rl[cur];
            b.mnext = hh + 1 < c->nh ? b.ro[nxt] : NULL;
            b.mprev = hh > 0 ? b.ro[prv] : NULL;
            if ((st = head_rows(c, hh, &b, &kv_alt, &os, &ls)) != STEM_OK)
                goto done;
            int64_t n0 = l.n;
            if ((gpu->out && fit_head(&l, FAM_OUT, c->h0 + hh, b.st_out, lq, B, os)) ||
                (gpu->lse && fit_head(&l, FAM_LSE, c->h0 + hh, b.st_lse, lq, B, ls))) {
                st = STEM_ERR_NOMEM;
                goto done;
            }
            for (int64_t i = n0; i < l.n; i++)
                l.v[i].kv_alt = kv_alt;
        }
    }
    /* Bonferroni over every identifiable component of every group */
    int64_t ntests = 0;
    for (int64_t i = 0; i < l.n; i++)
        for (int j = 0; j < fam_k[l.v[i].fam]; j++)
            ntests += l.v[i].valid[j];
    if (!ntests)
        goto done;
    const double z0 = check_normal_quantile2(BIAS_ALPHA / (double)ntests);
    r->bias_alpha = BIAS_ALPHA;
    r->bias_z = z0;
    check_items it[STEM_STAGE_COUNT];
    memset(it, 0, sizeof(it));
    for (int s = 0; s < STEM_STAGE_COUNT; s++)
        if (check_items_init(&it[s], c->o.max_items) != 0) {
            for (int u = 0; u < s; u++)
                check_items_free(&it[u]);
            st = STEM_ERR_NOMEM;
            goto done;
        }
    for (int64_t i = 0; i < l.n; i++) {
        const fit *f = &l.v[i];
        int kv = 0;
        for (int j = 0; j < fam_k[f->fam]; j++)
            kv += f->valid[j];
        double thr = group_threshold(z0, f->g, kv);
        /* a failing joint direction (a neighbouring head's or kv head's
         * output, the lse temperature) explains the components of the
         * own-fit ones it brings along: only it is listed */
        int head_fault = 0;
        for (int j = fam_own[f->fam]; j < fam_k[f->fam]; j++) {
            double zr = fabs(f->z[j]) / thr, fr = floor_ratio(c, f, j);
            head_fault |= f->valid[j] && (zr < fr ? zr : fr) > 1;
        }
        for (int j = 0; j < fam_k[f->fam]; j++) {
            if (!f->valid[j])
                continue;
            stem_check_bias *bt = &r->bias[fam_test(f->fam, j)];
            /* a fault must clear both the threshold and the floor */
            double zr = fabs(f->z[j]) / thr, fr = floor_ratio(c, f, j);
            double ratio = zr < fr ? zr : fr;
            bt->tests++;
            bt->threshold = z0;
            if (f->qblock < 0) {
                /* a whole head: could it tell the test's fault at all? */
                double sf = smallest_failing(c, f, j, thr);
                bt->heads++;
                bt->fault_size = fault_size(fam_test(f->fam, j));
                if (!(sf <= bt->fault_size))
                    bt->heads_undecided++;
                if (sf > bt->smallest_failing)
                    bt->smallest_failing = sf;
            }
            if (zr > bt->worst_zratio)
                bt->worst_zratio = zr;
            if (ratio > bt->worst) {
                bt->worst = ratio;
                bt->worst_z = f->z[j];
                bt->worst_head = f->head;
                bt->worst_qblock = f->qblock;
                bt->worst_component = f->beta[j];
            }
            if (!(ratio > 1) || (head_fault && j < fam_own[f->fam]))
                continue;
            bt->faults++;
            stem_check_item x;
            memset(&x, 0, sizeof(x));
            x.kind = fam_kind(f->fam, j);
            x.head = f->head;
            x.qblock = f->qblock;
            x.kblock = x.row = -1;
            x.col = x.kind == STEM_KIND_OUT_ROW_SHIFT ? (j == 2 ? 1 : -1)
                    : x.kind == STEM_KIND_OUT_HEAD_SHIFT ? (j == 4 ? 1 : -1)
                    : x.kind == STEM_KIND_OUT_KV_HEAD ? f->kv_alt : -1;
            x.gpu = f->beta[j];
            x.ref = f->z[j] != 0 ? fabs(f->beta[j] / f->z[j]) : 0;
            x.err = fabs(f->z[j]);
            x.limit = thr;
            x.ref_logit = f->scale;
            x.threshold = z0;
            int stage = f->fam == FAM_OUT ? STEM_STAGE_OUT
                        : f->fam == FAM_LSE ? STEM_STAGE_LSE : STEM_STAGE_LOGITS;
            /* a whole head ranks above its blocks at the same ratio */
            check_items_add(&it[stage], &x, ratio * (f->qblock < 0 ? 1.0001 : 1));
        }
    }
    for (int s = 0; s < STEM_STAGE_COUNT; s++) {
        if (st == STEM_OK && it[s].total)
            st = stage_append(&r->stage[s], &it[s]);
        check_items_free(&it[s]);
    }
done:
    head_bufs_free(&b);
    free(l.v);
    return st;
}

const char *stem_check_bias_name(stem_check_bias_test test)
{
    static const char *const n[STEM_BIAS_COUNT] = {
        "out scale", "out temperature", "out neighbour row", "lse offset",
        "lse temperature", "logit scale", "logit value term", "logit stride",
        "logit group norm", "out neighbour head", "out kv head"};
    return (unsigned)test < STEM_BIAS_COUNT ? n[test] : "?";
}
