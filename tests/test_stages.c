/*
 * test_stages.c - every stage of the library against the brute-force float64
 * oracle (tests/common/brute.c) and against the library's own float64 mode,
 * on many small random shapes: head dims 16/64/128, Lq not a multiple of B,
 * GQA, chunked prefill (Lq < Lk), hnd/nhd/strided views, F32/BF16/F16
 * inputs and the three profiles.
 *
 * Tolerances, all derived from float32 rounding (eps = 2^-24 ~ 6e-8):
 *   - logits: |lib - brute| <= 1e-5 * scale, scale = s * max||q_t|| *
 *     max||k_t|| * qk_factor + max value term, the Cauchy-Schwarz bound of a
 *     summand of the block mean; the float32 sums have at most ~1e3 terms,
 *     so their error stays far below 1e3 * eps * scale ~ 6e-5 * scale.
 *     f64 mode: the double result rounded once to float, 6e-8*|L| + 1e-12*scale.
 *   - masks: a block may differ only where the brute-force logit lies within
 *     2x the logit tolerance of the row threshold (a tie); ties are counted
 *     and must be rare.
 *   - attention: relative L2 of the output <= 1e-5 (f32 softmax and sums over
 *     at most ~1.3e3 keys), 1e-11 in f64 mode with F64 output; lse absolute
 *     error <= 1e-5 * (1 + |lse|).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/brute.h"
#include "common/testutil.h"
#include "stem.h"

#define LOGIT_REL 1e-5
#define OUT_REL_F32 1e-5
#define OUT_REL_F64 1e-11

/* One random problem. */
typedef struct shape {
    int d, hq, hkv, lq, lk, B, s;
    stem_dtype dt;
    tu_layout lay;
    stem_profile prof;
} shape;

typedef struct problem {
    shape sh;
    tu_tensor q, k, v;
    stem_params p;
    bf_dims dm;
    double scale;               /* the logit scale of the header comment */
} problem;

static const int dims_choice[3] = {16, 64, 128};
static const stem_dtype dtypes[3] = {STEM_F32, STEM_BF16, STEM_F16};

static void describe(const shape *s, char *buf, size_t n)
{
    snprintf(buf, n, "%s d=%d Hq=%d Hkv=%d Lq=%d Lk=%d B=%d s=%d %s layout=%d",
             stem_profile_name(s->prof), s->d, s->hq, s->hkv, s->lq, s->lk,
             s->B, s->s, stem_dtype_name(s->dt), (int)s->lay);
}

/* A random shape for case i; P = Lk - Lq is a multiple of B when sparse. */
static shape random_shape(int i, tu_rng *r, int sparse)
{
    shape s;
    s.prof = (stem_profile)(i % 3);
    s.dt = dtypes[(i / 3) % 3];
    s.lay = (tu_layout)(i % 3 == 0 ? (i / 9) % 3 : (i + i / 3) % 3);
    s.d = dims_choice[tu_rng_int(r, 0, 2)];
    static const int gqa[5][2] = {{1, 1}, {2, 1}, {4, 2}, {4, 1}, {2, 2}};
    int g = (int)tu_rng_int(r, 0, 4);
    s.hq = gqa[g][0];
    s.hkv = gqa[g][1];
    if (s.prof == STEM_PROFILE_HPCOPS) {
        s.s = 16;
        s.B = tu_rng_int(r, 0, 1) ? 32 : 16;
    } else {
        s.B = tu_rng_int(r, 0, 1) ? 32 : 16;
        s.s = tu_rng_int(r, 0, 1) ? 8 : 4;
    }
    if (i % 11 == 5) {                  /* a few at the real block size */
        s.B = 128;
        s.s = s.prof == STEM_PROFILE_HPCOPS ? 16 : 8;
    }
    /* Keep Hq * Lq * Lk * d (brute-force work) near 1e8 at most; aim for
     * kb >= 56 often so that the budget actually drops blocks. */
    double cap = 1.2e8 / ((double)s.hq * s.d);
    int maxlk = (int)sqrt(cap);
    if (maxlk > 1400)
        maxlk = 1400;
    if (maxlk < 2 * s.B)
        maxlk = 2 * s.B;
    s.lk = (int)tu_rng_int(r, 1, maxlk);
    if (i % 4 == 1 && 56 * s.B + 7 <= maxlk)
        s.lk = (int)tu_rng_int(r, 56 * s.B, maxlk);
    if (sparse) {
        int nb = (s.lk - 1) / s.B;      /* P/B may be 0 .. nb */
        int pb = i % 2 ? (int)tu_rng_int(r, 0, nb) : 0;
        s.lq = s.lk - pb * s.B;
    } else {
        s.lq = (int)tu_rng_int(r, 1, s.lk);
    }
    return s;
}

static double max_row_norm(const stem_tensor *t)
{
    double m = 0.0;
    for (int64_t h = 0; h < t->heads; h++)
        for (int64_t n = 0; n < t->tokens; n++) {
            double ss = 0.0;
            for (int64_t c = 0; c < t->dim; c++) {
                double x = tu_get(t, h, n, c);
                ss += x * x;
            }
            if (sqrt(ss) > m)
                m = sqrt(ss);
        }
    return m;
}

static void make_problem(problem *pb, const shape *s, uint64_t seed)
{
    memset(pb, 0, sizeof *pb);
    pb->sh = *s;
    pb->q = tu_tensor_new(s->dt, s->lay, s->hq, s->lq, s->d);
    pb->k = tu_tensor_new(s->dt, s->lay, s->hkv, s->lk, s->d);
    pb->v = tu_tensor_new(s->dt, s->lay, s->hkv, s->lk, s->d);
    tu_fill_normal(&pb->q.t, seed * 3 + 1, 1.0);
    tu_fill_normal(&pb->k.t, seed * 3 + 2, 1.0);
    /* Values whose norms vary by token, so that the value term matters. */
    tu_rng r;
    tu_rng_seed(&r, seed * 3 + 3);
    for (int64_t h = 0; h < s->hkv; h++)
        for (int64_t n = 0; n < s->lk; n++) {
            double f = exp(0.7 * tu_rng_normal(&r));
            for (int64_t c = 0; c < s->d; c++)
                tu_set(&pb->v.t, h, n, c, f * tu_rng_normal(&r));
        }
    pb->p = tu_preset(s->prof);
    pb->p.block = s->B;
    pb->p.stride = s->s;
    pb->dm = bf_dims_of(&pb->p, &pb->q.t, &pb->k.t);
    double qk = pb->p.qk_scaled ? 1.0 / (sqrt((double)s->d) * s->s * pb->p.norm) : 1.0;
    double vmax = max_row_norm(&pb->v.t);
    double vt = pb->p.value_rule == STEM_VALUE_LOG_MAX_BLOCK
                    ? pb->p.value_weight * fabs(log(vmax + 1e-300))
                    : pb->p.value_weight * 10.0; /* z-scores stay below ~10 here */
    pb->scale = s->s * max_row_norm(&pb->q.t) * max_row_norm(&pb->k.t) * qk + vt;
}

static void free_problem(problem *pb)
{
    tu_tensor_free(&pb->q);
    tu_tensor_free(&pb->k);
    tu_tensor_free(&pb->v);
}

static size_t nlogits(const problem *pb)
{
    return (size_t)(pb->dm.hq * pb->dm.qb * pb->dm.kb);
}

/* ------------------------------------------------------------ the checks */

/* Library logits (f32 and f64 modes) against brute force; returns the
 * brute-force logits (caller frees). */
static double *check_logits(problem *pb, float **lib_out, const char *what)
{
    size_t n = nlogits(pb);
    double *Lb = malloc(n * sizeof *Lb);
    float *Ll = malloc(n * sizeof *Ll);
    float *L64 = malloc(n * sizeof *L64);
    assert_non_null(Lb);
    assert_non_null(Ll);
    assert_non_null(L64);
    assert_int_equal(bf_block_logits(&pb->p, &pb->q.t, &pb->k.t, &pb->v.t, Lb), 0);
    assert_int_equal(stem_block_logits(&pb->p, &pb->q.t, &pb->k.t, &pb->v.t, Ll), STEM_OK);
    stem_params p64 = pb->p;
    p64.use_f64 = 1;
    assert_int_equal(stem_block_logits(&p64, &pb->q.t, &pb->k.t, &pb->v.t, L64), STEM_OK);
    double worst = 0.0, worst64 = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (isinf(Lb[i])) {
            if (!(isinf(Ll[i]) && Ll[i] < 0 && isinf(L64[i]) && L64[i] < 0))
                fail_msg("%s: logit %zu should be -inf, got %g / %g", what, i,
                         (double)Ll[i], (double)L64[i]);
            continue;
        }
        if (!isfinite(Ll[i]) || !isfinite(L64[i]))
            fail_msg("%s: logit %zu should be finite (%g), got %g / %g", what, i,
                     Lb[i], (double)Ll[i], (double)L64[i]);
        double e = fabs(Ll[i] - Lb[i]) / pb->scale;
        double e64 = fabs(L64[i] - Lb[i]) - 6e-8 * fabs(Lb[i]);
        if (e > worst)
            worst = e;
        if (e64 > worst64)
            worst64 = e64;
    }
    if (worst > LOGIT_REL)
        fail_msg("%s: f32 logit error %.3g of scale %.3g exceeds %g", what, worst,
                 pb->scale, LOGIT_REL);
    if (worst64 > 1e-12 * pb->scale)
        fail_msg("%s: f64-mode logit error %.3g beyond float rounding", what, worst64);
    free(L64);
    *lib_out = Ll;
    return Lb;
}

/* stem_select on the library's logits must equal brute-force selection on
 * the same values exactly, and its row lists must list the mask. */
static void check_select(problem *pb, const float *Ll, const int32_t *budget,
                         const char *what)
{
    size_t n = nlogits(pb);
    stem_dims dims;
    assert_int_equal(stem_dims_get(&pb->p, &pb->q.t, &pb->k.t, &pb->v.t, 1, &dims), STEM_OK);
    assert_int_equal(dims.qb, pb->dm.qb);
    assert_int_equal(dims.kb, pb->dm.kb);
    assert_int_equal(dims.offset, pb->dm.offset);
    uint8_t *m1 = malloc(n), *m2 = malloc(n), *mb = malloc(n);
    int64_t rows = pb->dm.hq * pb->dm.qb;
    int64_t *rs = malloc((size_t)(rows + 1) * sizeof *rs);
    int32_t *bl = malloc(n * sizeof *bl);
    double *Ld = malloc(n * sizeof *Ld);
    assert_true(m1 && m2 && mb && rs && bl && Ld);
    for (size_t i = 0; i < n; i++)
        Ld[i] = Ll[i];
    bf_select(&pb->p, &pb->dm, Ld, budget, mb, NULL, NULL);
    assert_int_equal(stem_select(&pb->p, &dims, Ll, m1, NULL, NULL), STEM_OK);
    assert_int_equal(stem_select(&pb->p, &dims, Ll, m2, rs, bl), STEM_OK);
    for (size_t i = 0; i < n; i++)
        if (m1[i] != mb[i] || m2[i] != mb[i])
            fail_msg("%s: mask entry %zu (row %zu, block %zu): lib %d/%d, brute %d",
                     what, i, i / (size_t)pb->dm.kb, i % (size_t)pb->dm.kb, m1[i],
                     m2[i], mb[i]);
    assert_int_equal(rs[0], 0);
    for (int64_t row = 0; row < rows; row++) {
        int64_t c = 0;
        for (int64_t J = 0; J < pb->dm.kb; J++)
            if (mb[row * pb->dm.kb + J]) {
                assert_true(rs[row] + c < rs[row + 1]);
                assert_int_equal(bl[rs[row] + c], J);
                c++;
            }
        assert_int_equal(rs[row] + c, rs[row + 1]);
    }
    assert_int_equal(stem_select(&pb->p, &dims, Ll, NULL, rs, bl), STEM_OK);
    free(m1);
    free(m2);
    free(mb);
    free(rs);
    free(bl);
    free(Ld);
}

/* A library mask against the brute-force one: differences only at ties
 * (|L - threshold| <= tie), counted into *ties; forced blocks always set. */
static void check_mask_ties(const problem *pb, const uint8_t *ml, const uint8_t *mb,
                            const double *Lb, const double *thr, double tie,
                            int64_t *ties, const char *what)
{
    for (int64_t h = 0; h < pb->dm.hq; h++)
        for (int64_t I = 0; I < pb->dm.qb; I++) {
            int64_t row = h * pb->dm.qb + I, pos = I + pb->dm.block_offset;
            for (int64_t J = 0; J < pb->dm.kb; J++) {
                int64_t i = row * pb->dm.kb + J;
                if (bf_forced(&pb->p, pos, J) && !ml[i])
                    fail_msg("%s: forced block (%ld,%ld,%ld) not selected", what,
                             (long)h, (long)I, (long)J);
                if (J > pos && ml[i])
                    fail_msg("%s: block beyond the diagonal selected", what);
                if (ml[i] == mb[i])
                    continue;
                double gap = fabs(Lb[i] - thr[row]);
                if (!(gap <= tie))
                    fail_msg("%s: mask (%ld,%ld,%ld) lib %d brute %d, logit %.9g "
                             "threshold %.9g gap %.3g > %.3g", what, (long)h,
                             (long)I, (long)J, ml[i], mb[i], Lb[i], thr[row], gap, tie);
                (*ties)++;
            }
        }
}

static double *to_f64(const stem_tensor *t)
{
    double *x = malloc((size_t)(t->heads * t->tokens * t->dim) * sizeof *x);
    assert_non_null(x);
    tu_view_to_f64(t, x);
    return x;
}

static void compare_out(const problem *pb, const stem_tensor *out, const float *lse,
                        const double *ob, const double *lb, double tol, const char *what)
{
    size_t n = (size_t)(pb->dm.hq * pb->dm.lq * pb->dm.d);
    double *o = to_f64(out);
    double e = tu_rel_l2(o, ob, n);
    if (!(e <= tol))
        fail_msg("%s: output rel-L2 %.3g > %.3g", what, e, tol);
    free(o);
    if (lse) {
        for (int64_t i = 0; i < pb->dm.hq * pb->dm.lq; i++)
            if (!(fabs(lse[i] - lb[i]) <= 1e-5 * (1.0 + fabs(lb[i]))))
                fail_msg("%s: lse[%ld] = %.9g, brute %.9g", what, (long)i,
                         (double)lse[i], lb[i]);
    }
}

/* Sparse attention with a given mask, in f32 (F32 out) and f64 (F64 out)
 * modes, against brute force with that mask. */
static void check_sparse(problem *pb, const uint8_t *mask, const char *what)
{
    size_t no = (size_t)(pb->dm.hq * pb->dm.lq * pb->dm.d);
    size_t nr = (size_t)(pb->dm.hq * pb->dm.lq);
    double *ob = malloc(no * sizeof *ob), *lb = malloc(nr * sizeof *lb);
    float *lse = malloc(nr * sizeof *lse);
    assert_true(ob && lb && lse);
    assert_int_equal(bf_attention(&pb->p, &pb->q.t, &pb->k.t, &pb->v.t, mask, ob, lb), 0);
    tu_tensor o32 = tu_tensor_new(STEM_F32, pb->sh.lay, pb->dm.hq, pb->dm.lq, pb->dm.d);
    tu_tensor o64 = tu_tensor_new(STEM_F64, (tu_layout)((pb->sh.lay + 1) % TU_LAYOUT_COUNT),
                                  pb->dm.hq, pb->dm.lq, pb->dm.d);
    assert_int_equal(stem_attention_sparse(&pb->p, &pb->q.t, &pb->k.t, &pb->v.t, mask,
                                           &o32.t, lse), STEM_OK);
    compare_out(pb, &o32.t, lse, ob, lb, OUT_REL_F32, what);
    stem_params p64 = pb->p;
    p64.use_f64 = 1;
    assert_int_equal(stem_attention_sparse(&p64, &pb->q.t, &pb->k.t, &pb->v.t, mask,
                                           &o64.t, lse), STEM_OK);
    compare_out(pb, &o64.t, lse, ob, lb, OUT_REL_F64, what);
    tu_tensor_free(&o32);
    tu_tensor_free(&o64);
    free(ob);
    free(lb);
    free(lse);
}

/* ------------------------------------------------------------- the tests */

static void run_sparse_case(int i, uint64_t seed, int64_t *ties, int64_t *sel,
                            int64_t *dropped)
{
    tu_rng r;
    tu_rng_seed(&r, seed);
    shape s = random_shape(i, &r, 1);
    char what[160];
    describe(&s, what, sizeof what);
    problem pb;
    make_problem(&pb, &s, seed);
    size_t n = nlogits(&pb);

    float *Ll;
    double *Lb = check_logits(&pb, &Ll, what);

    int32_t *bud = malloc((size_t)pb.dm.kb * sizeof *bud);
    int32_t *budl = malloc((size_t)pb.dm.kb * sizeof *budl);
    assert_true(bud && budl);
    bf_budget(&pb.p, pb.dm.kb, pb.dm.kb * s.B, bud);
    assert_int_equal(stem_budget(&pb.p, pb.dm.kb, budl), STEM_OK);
    for (int64_t j = 0; j < pb.dm.kb; j++)
        if (bud[j] != budl[j])
            fail_msg("%s: budget[%ld] lib %d brute %d", what, (long)j, budl[j], bud[j]);
    check_select(&pb, Ll, bud, what);

    /* Prefill: logits and mask as the stages give them; out against brute
     * force with the library's mask; the mask against brute force up to ties. */
    uint8_t *mb = malloc(n), *ml = malloc(n);
    double *thr = malloc((size_t)(pb.dm.hq * pb.dm.qb) * sizeof *thr);
    float *Lp = malloc(n * sizeof *Lp);
    assert_true(mb && ml && thr && Lp);
    bf_select(&pb.p, &pb.dm, Lb, bud, mb, thr, NULL);
    tu_tensor out = tu_tensor_new(STEM_F32, s.lay, s.hq, s.lq, s.d);
    size_t nr = (size_t)(s.hq * s.lq);
    float *lse = malloc(nr * sizeof *lse);
    assert_non_null(lse);
    assert_int_equal(stem_prefill(&pb.p, &pb.q.t, &pb.k.t, &pb.v.t, &out.t, lse, Lp, ml),
                     STEM_OK);
    assert_memory_equal(Lp, Ll, n * sizeof *Lp);
    check_mask_ties(&pb, ml, mb, Lb, thr, 2 * LOGIT_REL * pb.scale, ties, what);
    for (size_t j = 0; j < n; j++) {
        *sel += ml[j];
        *dropped += !ml[j] && isfinite(Lb[j]);
    }
    check_sparse(&pb, ml, what);
    {
        double *ob = malloc((size_t)s.hq * s.lq * s.d * sizeof *ob);
        double *lb = malloc(nr * sizeof *lb);
        assert_true(ob && lb);
        assert_int_equal(bf_attention(&pb.p, &pb.q.t, &pb.k.t, &pb.v.t, ml, ob, lb), 0);
        compare_out(&pb, &out.t, lse, ob, lb, OUT_REL_F32, what);
        free(ob);
        free(lb);
    }
    /* f64 prefill: mask against brute force with a tie width of one float
     * rounding of a logit (the logits may be stored as floats). */
    stem_params p64 = pb.p;
    p64.use_f64 = 1;
    assert_int_equal(stem_prefill(&p64, &pb.q.t, &pb.k.t, &pb.v.t, &out.t, NULL, NULL, ml),
                     STEM_OK);
    int64_t ties64 = 0;
    check_mask_ties(&pb, ml, mb, Lb, thr, 1e-7 * pb.scale, &ties64, what);

    tu_tensor_free(&out);
    free(lse);
    free(mb);
    free(ml);
    free(thr);
    free(Lp);
    free(bud);
    free(budl);
    free(Ll);
    free(Lb);
    free_problem(&pb);
}

static void test_sparse_stages(void **state)
{
    (void)state;
    int64_t ties = 0, sel = 0, dropped = 0;
    for (int i = 0; i < 36; i++)
        run_sparse_case(i, 1000 + (uint64_t)i * 7919, &ties, &sel, &dropped);
    print_message("sparse stages: %ld selected blocks, %ld causal blocks dropped, "
                  "%ld tie differences\n", (long)sel, (long)dropped, (long)ties);
    assert_true(sel > 0);
    assert_true(dropped > sel / 10);    /* the budget really drops blocks */
    assert_true(ties * 200 <= sel);     /* ties are rare (<= 0.5%) */
}

static void test_dense_attention(void **state)
{
    (void)state;
    for (int i = 0; i < 24; i++) {
        tu_rng r;
        uint64_t seed = 5000 + (uint64_t)i * 104729;
        tu_rng_seed(&r, seed);
        shape s = random_shape(i, &r, 0);       /* any P */
        char what[160];
        describe(&s, what, sizeof what);
        problem pb;
        make_problem(&pb, &s, seed);
        size_t no = (size_t)s.hq * s.lq * s.d, nr = (size_t)s.hq * s.lq;
        double *ob = malloc(no * sizeof *ob), *lb = malloc(nr * sizeof *lb);
        float *lse = malloc(nr * sizeof *lse);
        assert_true(ob && lb && lse);
        assert_int_equal(bf_attention(&pb.p, &pb.q.t, &pb.k.t, &pb.v.t, NULL, ob, lb), 0);
        tu_tensor o32 = tu_tensor_new(STEM_F32, s.lay, s.hq, s.lq, s.d);
        tu_tensor o64 = tu_tensor_new(STEM_F64, TU_NHD, s.hq, s.lq, s.d);
        assert_int_equal(stem_attention_dense(&pb.p, &pb.q.t, &pb.k.t, &pb.v.t, &o32.t, lse),
                         STEM_OK);
        compare_out(&pb, &o32.t, lse, ob, lb, OUT_REL_F32, what);
        stem_params p64 = pb.p;
        p64.use_f64 = 1;
        assert_int_equal(stem_attention_dense(&p64, &pb.q.t, &pb.k.t, &pb.v.t, &o64.t, lse),
                         STEM_OK);
        compare_out(&pb, &o64.t, lse, ob, lb, OUT_REL_F64, what);
        tu_tensor_free(&o32);
        tu_tensor_free(&o64);
        free(ob);
        free(lb);
        free(lse);
        free_problem(&pb);
    }
}

/* Budgets: exact equality with brute force over a sweep of n and alpha, for
 * every rule; the sweep must contain budgets where the naive k + j*step
 * differs from torch's evaluation order. */
static void test_budget_sweep(void **state)
{
    (void)state;
    static const stem_profile profs[3] = {STEM_PROFILE_ANGELSLIM, STEM_PROFILE_HPCOPS,
                                          STEM_PROFILE_PAPER};
    static const double rhos[2] = {0.2, 0.5};
    enum { NMAX = 2000 };
    int32_t *bl = malloc(NMAX * sizeof *bl), *bb = malloc(NMAX * sizeof *bb);
    assert_true(bl && bb);
    long naive_diff = 0, checked = 0;
    for (int pi = 0; pi < 3; pi++)
        for (int ri = 0; ri < 2; ri++)
            for (int ai = 30; ai <= 95; ai++) {
                stem_params p = tu_preset(profs[pi]);
                p.keep_ratio = rhos[ri];
                p.alpha = ai / 100.0;
                if (profs[pi] != STEM_PROFILE_ANGELSLIM && ai % 5 != 0)
                    continue;
                for (int64_t n = 1; n <= NMAX; n++) {
                    bf_budget(&p, n, n * p.block, bb);
                    memset(bl, 0xA5, (size_t)n * sizeof *bl);
                    stem_status st = stem_budget(&p, n, bl);
                    if (st != STEM_OK)
                        fail_msg("stem_budget(%s, n=%ld, alpha=%.2f): %s",
                                 stem_profile_name(p.profile), (long)n, p.alpha,
                                 stem_strerror(st));
                    for (int64_t j = 0; j < n; j++) {
                        if (bl[j] != bb[j])
                            fail_msg("budget %s rho=%.1f alpha=%.2f n=%ld pos=%ld: lib %d, "
                                     "brute %d", stem_profile_name(p.profile), p.keep_ratio,
                                     p.alpha, (long)n, (long)j, bl[j], bb[j]);
                        if (pi == 0 && ri == 0) {
                            /* naive order, for the count only */
                            int64_t k = bb[0];
                            int64_t m = n - k;
                            if (j >= k && m > 1) {
                                double step = (k * p.alpha - k) / (double)(m - 1);
                                double x = floor(k + (double)(j - k) * step);
                                if (x < 1)
                                    x = 1;
                                if (x != bb[j])
                                    naive_diff++;
                            }
                        }
                    }
                    checked += n;
                }
            }
    print_message("budget sweep: %ld budgets equal; %ld where naive order differs\n",
                  checked, naive_diff);
    assert_true(naive_diff > 0);
    /* prompt_blocks: n comes from the parameter, not from kb; it is what
     * stem_budget_length says, and one below kb is refused */
    stem_params p = tu_preset(STEM_PROFILE_ANGELSLIM);
    int64_t n;
    assert_int_equal(stem_budget_length(&p, 64, &n), STEM_OK);
    assert_int_equal(n, 64);
    p.prompt_blocks = 63;
    assert_int_equal(stem_budget_length(&p, 64, &n), STEM_ERR_PARAM);
    assert_non_null(strstr(stem_last_error(), "prompt_blocks = 63"));
    assert_int_equal(stem_budget_length(&p, 0, &n), STEM_ERR_PARAM);
    assert_int_equal(stem_budget_length(&p, 64, NULL), STEM_ERR_NULL);
    p.prompt_blocks = 300;
    assert_int_equal(stem_budget_length(&p, 64, &n), STEM_OK);
    assert_int_equal(n, 300);
    int32_t *b300 = malloc(300 * sizeof *b300);
    assert_non_null(b300);
    assert_int_equal(stem_budget(&p, 64, b300), STEM_OK);
    bf_budget(&p, 300, 300 * 128, bb);
    assert_memory_equal(b300, bb, 300 * sizeof *bb);
    free(b300);
    free(bl);
    free(bb);
}

/* The library's presets are the table of docs/ALGORITHM.md section 4. */
static void test_presets(void **state)
{
    (void)state;
    for (int pr = 0; pr < STEM_PROFILE_COUNT; pr++) {
        stem_params lib, ref = tu_preset((stem_profile)pr);
        assert_int_equal(stem_params_init(&lib, (stem_profile)pr), STEM_OK);
        assert_int_equal(lib.profile, ref.profile);
        assert_int_equal(lib.block, ref.block);
        assert_int_equal(lib.stride, ref.stride);
        assert_int_equal(lib.qk_scaled, ref.qk_scaled);
        assert_true(lib.norm == ref.norm);
        assert_int_equal(lib.value_rule, ref.value_rule);
        assert_true(lib.value_weight == ref.value_weight);
        assert_int_equal(lib.budget_rule, ref.budget_rule);
        assert_true(lib.keep_ratio == ref.keep_ratio);
        assert_true(lib.alpha == ref.alpha);
        assert_int_equal(lib.sinks, ref.sinks);
        assert_int_equal(lib.window, ref.window);
        assert_int_equal(lib.ties_keep_all, ref.ties_keep_all);
        assert_int_equal(lib.use_f64, 0);
        assert_int_equal(lib.prompt_blocks, 0);
        if (pr == STEM_PROFILE_PAPER) {
            assert_int_equal(lib.paper_min_k0, 54);
            assert_true(lib.paper_ratio_short == 0.2 && lib.paper_ratio_long == 0.1);
            assert_int_equal(lib.paper_long_tokens, 16384);
        }
        if (pr == STEM_PROFILE_HPCOPS)
            assert_int_equal(lib.keep_diagonal, 1);
        stem_profile back;
        assert_int_equal(stem_profile_from_name(stem_profile_name((stem_profile)pr), &back),
                         STEM_OK);
        assert_int_equal(back, pr);
    }
}

/* Selection on logits full of exact ties (small integers): lower index wins
 * for angelslim/paper, every block >= the threshold for hpc-ops; sinks,
 * window and keep_diagonal varied; chunked offsets.  Exact equality with
 * brute-force selection, and the top-k count checked directly. */
static void test_select_ties(void **state)
{
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 77);
    for (int it = 0; it < 60; it++) {
        stem_params p = tu_preset((stem_profile)(it % 3));
        p.sinks = (int)tu_rng_int(&r, 0, 5);
        p.window = (int)tu_rng_int(&r, 0, 5);
        p.keep_diagonal = (int)tu_rng_int(&r, 0, 1);
        bf_dims dm;
        memset(&dm, 0, sizeof dm);
        dm.hq = tu_rng_int(&r, 1, 3);
        dm.hkv = 1;
        dm.d = 64;
        dm.kb = tu_rng_int(&r, 1, 90);
        dm.block_offset = tu_rng_int(&r, 0, dm.kb - 1);
        dm.qb = dm.kb - dm.block_offset;
        dm.offset = dm.block_offset * p.block;
        dm.lk = dm.kb * p.block - tu_rng_int(&r, 0, p.block - 1);
        dm.lq = dm.lk - dm.offset;
        stem_dims sd = {dm.hq, dm.hkv, dm.lq, dm.lk, dm.d, dm.offset, dm.qb, dm.kb};
        size_t n = (size_t)(dm.hq * dm.qb * dm.kb);
        float *L = malloc(n * sizeof *L);
        double *Ld = malloc(n * sizeof *Ld);
        uint8_t *ml = malloc(n), *mb = malloc(n), *tk = malloc(n);
        int32_t *bud = malloc((size_t)dm.kb * sizeof *bud);
        assert_true(L && Ld && ml && mb && tk && bud);
        for (int64_t h = 0; h < dm.hq; h++)
            for (int64_t I = 0; I < dm.qb; I++)
                for (int64_t J = 0; J < dm.kb; J++) {
                    size_t i = (size_t)((h * dm.qb + I) * dm.kb + J);
                    L[i] = J > I + dm.block_offset ? -INFINITY
                                                   : (float)tu_rng_int(&r, -3, 3) * 0.25f;
                    Ld[i] = L[i];
                }
        bf_budget(&p, dm.kb, dm.lk, bud);
        assert_int_equal(stem_select(&p, &sd, L, ml, NULL, NULL), STEM_OK);
        bf_select(&p, &dm, Ld, bud, mb, NULL, tk);
        assert_memory_equal(ml, mb, n);
        for (int64_t row = 0; row < dm.hq * dm.qb; row++) {
            int64_t pos = row % dm.qb + dm.block_offset, c = 0;
            for (int64_t J = 0; J < dm.kb; J++)
                c += tk[row * dm.kb + J];
            int64_t want = bud[pos] < pos + 1 ? bud[pos] : pos + 1;
            if (p.ties_keep_all)
                assert_true(c >= want);
            else
                assert_int_equal(c, want);
        }
        free(L);
        free(Ld);
        free(ml);
        free(mb);
        free(tk);
        free(bud);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_presets),
        cmocka_unit_test(test_budget_sweep),
        cmocka_unit_test(test_select_ties),
        cmocka_unit_test(test_dense_attention),
        cmocka_unit_test(test_sparse_stages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
