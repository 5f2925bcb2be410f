/*
 * test_conformance.c - the library against real GPU outputs, judged by the
 * library's own checker (stem_check, docs/ALGORITHM.md section 5), every
 * stage and every row:
 *   - AngelSlim's Stem (tests/data/conformance/NAME.angelslim.safetensors,
 *     s2, r1, s6): logits, selection, mask and out all PASS, every mask
 *     difference a tie, the reference's causal density within 0.005 of the
 *     GPU's;
 *   - hpc-ops' Stem (conformance/hpcops, s2 and r1) on the dequantized
 *     inputs it saw, profile hpc-ops, alpha 0.7, GPU dtype fp8: PASS, its
 *     unclipped sink bits reported as unread, not faults;
 *   - PyTorch FlexAttention given stem's mask (conformance/flex, s2, r1):
 *     out and lse PASS in every row.
 * The hpc-ops and FlexAttention captures are skipped, with a message, where
 * the checkout lacks them.  The brute-force oracle's logits are checked
 * against AngelSlim's on the first head of every case too (0.06 bf16 /
 * 0.01 fp16), and the one-call prefill against the stages.
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
#include "stem_check.h"
#include "tensorfile.h"

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
    stem_params p = case_params(&c);

    stem_tensor q = stem_tensor_hnd(c.q, STEM_BF16, c.hq, c.n, c.d);
    stem_tensor k = stem_tensor_hnd(c.k, STEM_BF16, c.hkv, c.n, c.d);
    stem_tensor v = stem_tensor_hnd(c.v, STEM_BF16, c.hkv, c.n, c.d);

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

    /* The checker on AngelSlim's logits, mask and out. */
    stem_tensor tl = stem_tensor_hnd(c.logits, STEM_F32, c.hq, c.qb, c.kb);
    stem_tensor tm = stem_tensor_hnd(c.mask, STEM_U8, c.hq, c.qb, c.kb);
    stem_tensor to = stem_tensor_hnd(c.out, STEM_BF16, c.hq, c.n, c.d);
    stem_check_gpu gpu = {&tl, &tm, &to, NULL};
    stem_check_options opt;
    stem_check_report r;
    assert_int_equal(stem_check_options_init(&opt, c.fp16 ? STEM_PREC_FP16
                                                          : STEM_PREC_BF16),
                     STEM_OK);
    assert_int_equal(stem_check(&p, &q, &k, &v, &gpu, &opt, &r), STEM_OK);
    print_message("%s (%s): %s; logits max diff %.4f (worst %.3f of its limit); "
                  "%ld mask differences, %ld ties (widest gap %.4f); kept GPU %ld, "
                  "reference %ld; out rel L2 %.4g, worst row %.3f of its limit\n",
                  name, c.fp16 ? "fp16" : "bf16",
                  r.verdict == STEM_CHECK_PASS ? "PASS" : "FAIL",
                  r.stage[STEM_STAGE_LOGITS].max_err,
                  r.stage[STEM_STAGE_LOGITS].worst_ratio, (long)r.mask_diffs,
                  (long)r.mask_ties, r.max_tie_gap, (long)r.gpu_kept,
                  (long)r.ref_kept, r.out_rel_l2,
                  r.stage[STEM_STAGE_OUT].worst_ratio);
    for (int st = STEM_STAGE_LOGITS; st <= STEM_STAGE_OUT; st++)
        assert_int_equal(r.stage[st].verdict, STEM_CHECK_PASS);
    assert_int_equal(r.stage[STEM_STAGE_LSE].verdict, STEM_CHECK_ABSENT);
    assert_int_equal(r.verdict, STEM_CHECK_PASS);
    assert_int_equal(r.mask_ties, r.mask_diffs);
    assert_int_equal(r.rows_failed, 0);
    assert_int_equal(r.stage[STEM_STAGE_OUT].checked, c.hq * c.n);
    assert_true(r.stage[STEM_STAGE_LOGITS].max_err <= logit_lim);
    assert_true(fabs((double)(r.gpu_kept - r.ref_kept)) <=
                0.005 * (double)r.causal_blocks);
    assert_true(r.hint[0] == '\0');
    stem_check_report_free(&r);

    /* The library's own logits and mask, for the one-call prefill below. */
    const size_t nl = (size_t)(c.hq * c.qb * c.kb);
    float *L = malloc(nl * sizeof *L);
    uint8_t *mask = malloc(nl);
    stem_dims dims;
    assert_true(L && mask);
    assert_int_equal(stem_dims_get(&p, &q, &k, &v, 1, &dims), STEM_OK);
    assert_int_equal(stem_block_logits(&p, &q, &k, &v, L), STEM_OK);
    assert_int_equal(stem_select(&p, &dims, L, mask, NULL, NULL), STEM_OK);
    tu_tensor out = tu_tensor_new(STEM_F32, TU_HND, c.hq, c.n, c.d);

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
    free(L);
    free(mask);
    tu_case_free(&c);
}

/* A view of tensor name of f: [H, T, C] as is, [H, T] with dim 1; NULL
 * data when f lacks it. */
static stem_tensor view_of(const tf_file *f, const char *name)
{
    stem_tensor t;
    memset(&t, 0, sizeof(t));
    const tf_tensor *x = tf_find(f, name);
    if (!x)
        return t;
    stem_dtype dt = x->dtype;
    assert_true(dt == STEM_F32 || dt == STEM_BF16 || dt == STEM_F16 ||
                dt == STEM_U8);
    assert_true(x->ndim == 2 || x->ndim == 3);
    return stem_tensor_hnd(x->data, dt, x->shape[0], x->shape[1],
                           x->ndim == 3 ? x->shape[2] : 1);
}

/* Whether path exists under the test data; prints a skip note if not. */
static int have(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        print_message("skipping: %s is not in this checkout\n", path);
        return 0;
    }
    fclose(fp);
    return 1;
}

/*
 * A second backend's capture: IN (q, k, v) and GPU (any of block_logits,
 * mask, out, lse) under tests/data/conformance, judged with profile prof,
 * alpha 0.7, as GPU dtype prec.  Every stage given must PASS, every row.
 */
static void run_capture(const char *in, const char *gpu_name, stem_profile prof,
                        stem_prec prec)
{
    char pin[512], pgpu[512], err[256];
    snprintf(pin, sizeof pin, "%s/conformance/%s", tu_data_dir(), in);
    snprintf(pgpu, sizeof pgpu, "%s/conformance/%s", tu_data_dir(), gpu_name);
    if (!have(pin) || !have(pgpu)) {
        skip();
        return;
    }
    tf_file fi = {0}, fg = {0};
    if (tf_read(pin, &fi, err, sizeof err) != 0 || tf_read(pgpu, &fg, err, sizeof err) != 0)
        fail_msg("%s", err);
    stem_params p;
    assert_int_equal(stem_params_init(&p, prof), STEM_OK);
    p.alpha = 0.7;
    stem_tensor q = view_of(&fi, "q"), k = view_of(&fi, "k"), v = view_of(&fi, "v");
    stem_tensor tl = view_of(&fg, "block_logits"), tm = view_of(&fg, "mask");
    stem_tensor to = view_of(&fg, "out"), ts = view_of(&fg, "lse");
    stem_check_gpu g = {tl.data ? &tl : NULL, tm.data ? &tm : NULL,
                        to.data ? &to : NULL, ts.data ? &ts : NULL};
    stem_check_options opt;
    stem_check_report r;
    assert_int_equal(stem_check_options_init(&opt, prec), STEM_OK);
    assert_int_equal(stem_check(&p, &q, &k, &v, &g, &opt, &r), STEM_OK);
    print_message("%s (%s, %s): %s; logits max diff %.4g (worst %.3f of its limit); "
                  "%ld mask differences, %ld ties, %ld unread bits; out rel L2 %.4g, "
                  "worst row %.3f of its limit; lse max diff %.3g, worst %.3g of its "
                  "limit\n", gpu_name, stem_profile_name(prof), stem_prec_name(prec),
                  r.verdict == STEM_CHECK_PASS ? "PASS" : "FAIL",
                  r.stage[STEM_STAGE_LOGITS].max_err,
                  r.stage[STEM_STAGE_LOGITS].worst_ratio, (long)r.mask_diffs,
                  (long)r.mask_ties, (long)r.mask_unread, r.out_rel_l2,
                  r.stage[STEM_STAGE_OUT].worst_ratio, r.stage[STEM_STAGE_LSE].max_err,
                  r.stage[STEM_STAGE_LSE].worst_ratio);
    const stem_tensor *given[STEM_STAGE_COUNT] = {g.logits, g.logits && g.mask ? g.mask : NULL,
                                                  g.mask, g.out, g.lse};
    for (int st = 0; st < STEM_STAGE_COUNT; st++)
        assert_int_equal(r.stage[st].verdict,
                         given[st] ? STEM_CHECK_PASS : STEM_CHECK_ABSENT);
    assert_int_equal(r.verdict, STEM_CHECK_PASS);
    assert_int_equal(r.rows_failed, 0);
    if (g.out)
        assert_int_equal(r.stage[STEM_STAGE_OUT].checked, q.heads * q.tokens);
    if (g.lse)
        assert_int_equal(r.stage[STEM_STAGE_LSE].checked, q.heads * q.tokens);
    assert_true(r.hint[0] == '\0');
    stem_check_report_free(&r);
    tf_free(&fi);
    tf_free(&fg);
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

static void test_hpcops_s2(void **state)
{
    (void)state;
    run_capture("hpcops/s2.in.safetensors", "hpcops/s2.hpcops.safetensors",
                STEM_PROFILE_HPCOPS, STEM_PREC_FP8);
}

static void test_hpcops_r1(void **state)
{
    (void)state;
    run_capture("hpcops/r1.in.safetensors", "hpcops/r1.hpcops.safetensors",
                STEM_PROFILE_HPCOPS, STEM_PREC_FP8);
}

static void test_flex_s2(void **state)
{
    (void)state;
    run_capture("s2.in.safetensors", "flex/s2.flex.safetensors",
                STEM_PROFILE_ANGELSLIM, STEM_PREC_BF16);
}

static void test_flex_r1(void **state)
{
    (void)state;
    run_capture("r1.in.safetensors", "flex/r1.flex.safetensors",
                STEM_PROFILE_ANGELSLIM, STEM_PREC_FP16);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_s2),
        cmocka_unit_test(test_r1),
        cmocka_unit_test(test_s6),
        cmocka_unit_test(test_hpcops_s2),
        cmocka_unit_test(test_hpcops_r1),
        cmocka_unit_test(test_flex_s2),
        cmocka_unit_test(test_flex_r1),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
