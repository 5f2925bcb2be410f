/*
 * test_conformance.c - the library against real GPU outputs of AngelSlim's
 * Stem (tests/data/conformance), checked as its README.md and
 * docs/ALGORITHM.md section 5 say:
 *   - the -inf pattern of the block logits is identical, and the largest
 *     finite difference is within 0.06 (bf16 GPU run) / 0.01 (fp16);
 *   - every mask difference is a tie: the library's (reference) logit lies
 *     within tau = 0.05 / 0.01 of the row threshold (the budget-th largest
 *     reference logit), and sink and window blocks match exactly;
 *   - the GPU output against the library's sparse attention computed with
 *     the GPU's own mask: relative L2 within 3e-2 / 5e-3;
 *   - the library's mask has the GPU's causal density (up to the ties).
 * The brute-force oracle's logits are checked against the GPU's on the first
 * head of every case too, with the same limits.
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

static stem_params case_params(const tu_case *c)
{
    stem_params p;
    assert_int_equal(stem_params_init(&p, STEM_PROFILE_ANGELSLIM), STEM_OK);
    p.alpha = c->alpha;
    p.keep_ratio = c->keep_ratio;
    p.block = c->block;
    p.stride = c->stride;
    p.sinks = c->sinks;
    p.window = c->window;
    p.norm = c->norm;
    p.value_weight = c->lambda;
    assert_int_equal(stem_params_validate(&p), STEM_OK);
    return p;
}

/* Causal density of a mask: selected blocks over causal blocks. */
static double density(const uint8_t *m, int64_t hq, int64_t qb, int64_t kb)
{
    int64_t sel = 0, causal = 0;
    for (int64_t h = 0; h < hq; h++)
        for (int64_t I = 0; I < qb; I++)
            for (int64_t J = 0; J <= I + (kb - qb) && J < kb; J++) {
                causal++;
                sel += m[(h * qb + I) * kb + J] != 0;
            }
    return (double)sel / (double)causal;
}

/* -inf pattern and the largest finite difference of logits x against the
 * GPU's; fails on a pattern mismatch. */
static double logit_diff(const tu_case *c, const double *x, int64_t heads,
                         const char *who)
{
    double worst = 0.0;
    for (int64_t i = 0; i < heads * c->qb * c->kb; i++) {
        float g = c->logits[i];
        if (isfinite(g) != isfinite(x[i]) || (!isfinite(g) && !(isinf(g) && g < 0)))
            fail_msg("%s %s: logit %ld: GPU %g, ours %g (-inf pattern)", c->name, who,
                     (long)i, (double)g, x[i]);
        if (isfinite(g) && fabs(x[i] - g) > worst)
            worst = fabs(x[i] - g);
    }
    return worst;
}

static void run_case(const char *name)
{
    tu_case c;
    char err[256];
    if (tu_case_load(name, &c, err, sizeof err) != 0)
        fail_msg("loading conformance case %s: %s", name, err);
    const double logit_lim = c.fp16 ? 0.01 : 0.06;
    const double tau = c.fp16 ? 0.01 : 0.05;
    const double out_lim = c.fp16 ? 5e-3 : 3e-2;
    stem_params p = case_params(&c);

    stem_tensor q = stem_tensor_hnd(c.q, STEM_BF16, c.hq, c.n, c.d);
    stem_tensor k = stem_tensor_hnd(c.k, STEM_BF16, c.hkv, c.n, c.d);
    stem_tensor v = stem_tensor_hnd(c.v, STEM_BF16, c.hkv, c.n, c.d);
    const size_t nl = (size_t)(c.hq * c.qb * c.kb);
    const size_t no = (size_t)(c.hq * c.n * c.d);

    /* The oracle on the first head: validates brute.c on real data. */
    {
        stem_tensor q1 = q;
        q1.heads = c.hkv == c.hq ? 1 : c.hq / c.hkv;   /* heads of kv head 0 */
        stem_tensor k1 = k, v1 = v;
        k1.heads = v1.heads = 1;
        double *Lb = malloc((size_t)(q1.heads * c.qb * c.kb) * sizeof *Lb);
        assert_non_null(Lb);
        assert_int_equal(bf_block_logits(&p, &q1, &k1, &v1, Lb), 0);
        double e = logit_diff(&c, Lb, q1.heads, "brute force");
        print_message("%s: brute-force logits vs GPU (%ld heads): max diff %.4f\n",
                      name, (long)q1.heads, e);
        assert_true(e <= logit_lim);
        free(Lb);
    }

    /* Logits. */
    float *L = malloc(nl * sizeof *L);
    double *Ld = malloc(nl * sizeof *Ld);
    assert_true(L && Ld);
    assert_int_equal(stem_block_logits(&p, &q, &k, &v, L), STEM_OK);
    for (size_t i = 0; i < nl; i++)
        Ld[i] = L[i];
    double ldiff = logit_diff(&c, Ld, c.hq, "library");

    /* Mask: the library's selection, and the row thresholds of its logits. */
    stem_dims dims;
    assert_int_equal(stem_dims_get(&p, &q, &k, &v, 1, &dims), STEM_OK);
    uint8_t *mask = malloc(nl), *mb = malloc(nl);
    int32_t *budget = malloc((size_t)c.kb * sizeof *budget);
    double *thr = malloc((size_t)(c.hq * c.qb) * sizeof *thr);
    assert_true(mask && mb && budget && thr);
    assert_int_equal(stem_budget(&p, c.kb, budget), STEM_OK);
    assert_int_equal(stem_select(&p, &dims, L, mask, NULL, NULL), STEM_OK);
    bf_dims dm = bf_dims_of(&p, &q, &k);
    bf_select(&p, &dm, Ld, budget, mb, thr, NULL);
    assert_memory_equal(mask, mb, nl);
    int64_t ndiff = 0;
    double max_gap = 0.0;
    for (int64_t h = 0; h < c.hq; h++)
        for (int64_t I = 0; I < c.qb; I++)
            for (int64_t J = 0; J < c.kb; J++) {
                int64_t i = (h * c.qb + I) * c.kb + J;
                if (bf_forced(&p, I, J) && !(mask[i] && c.mask[i]))
                    fail_msg("%s: sink/window block (%ld,%ld,%ld): ours %d GPU %d", name,
                             (long)h, (long)I, (long)J, mask[i], c.mask[i]);
                if ((mask[i] != 0) == (c.mask[i] != 0))
                    continue;
                double gap = fabs(Ld[i] - thr[h * c.qb + I]);
                if (!(gap <= tau))
                    fail_msg("%s: mask (%ld,%ld,%ld) ours %d GPU %d: logit %.5f, threshold "
                             "%.5f, gap %.4f > tau %.3f", name, (long)h, (long)I, (long)J,
                             mask[i], c.mask[i], Ld[i], thr[h * c.qb + I], gap, tau);
                ndiff++;
                if (gap > max_gap)
                    max_gap = gap;
            }
    double dens = density(mask, c.hq, c.qb, c.kb), gdens = density(c.mask, c.hq, c.qb, c.kb);

    /* Output with the GPU's own mask. */
    tu_tensor out = tu_tensor_new(STEM_F32, TU_HND, c.hq, c.n, c.d);
    double *o = malloc(no * sizeof *o), *g = malloc(no * sizeof *g);
    assert_true(o && g);
    assert_int_equal(stem_attention_sparse(&p, &q, &k, &v, c.mask, &out.t, NULL), STEM_OK);
    tu_view_to_f64(&out.t, o);
    for (size_t i = 0; i < no; i++)
        g[i] = tu_bf16_to_f64(c.out[i]);
    double orel = tu_rel_l2(g, o, no);

    print_message("%s (%s): logits max diff %.4f (limit %.2f); %ld mask differences, all "
                  "ties (max gap %.4f, tau %.2f); causal density ours %.4f GPU %.4f; out rel-L2 "
                  "%.4g (limit %.0e)\n", name, c.fp16 ? "fp16" : "bf16", ldiff, logit_lim,
                  (long)ndiff, max_gap, tau, dens, gdens, orel, out_lim);
    assert_true(ldiff <= logit_lim);
    assert_true(orel <= out_lim);
    assert_true(fabs(dens - gdens) <= 0.005);

    /* One-call prefill: the same logits and mask as the stages, and the
     * sparse attention of that mask. */
    float *Lp = malloc(nl * sizeof *Lp);
    uint8_t *mp = malloc(nl);
    tu_tensor out2 = tu_tensor_new(STEM_F32, TU_HND, c.hq, c.n, c.d);
    assert_true(Lp && mp);
    assert_int_equal(stem_prefill(&p, &q, &k, &v, &out2.t, NULL, Lp, mp), STEM_OK);
    assert_memory_equal(Lp, L, nl * sizeof *L);
    assert_memory_equal(mp, mask, nl);
    assert_int_equal(stem_attention_sparse(&p, &q, &k, &v, mask, &out.t, NULL), STEM_OK);
    assert_memory_equal(out2.buf, out.buf, out.nbytes);

    tu_tensor_free(&out);
    tu_tensor_free(&out2);
    free(Lp);
    free(mp);
    free(o);
    free(g);
    free(L);
    free(Ld);
    free(mask);
    free(mb);
    free(budget);
    free(thr);
    tu_case_free(&c);
}

static void test_s2(void **state)
{
    (void)state;
    run_case("s2");
}

static void test_r1(void **state)
{
    (void)state;
    run_case("r1");
}

static void test_s6(void **state)
{
    (void)state;
    run_case("s6");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_s2),
        cmocka_unit_test(test_r1),
        cmocka_unit_test(test_s6),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
