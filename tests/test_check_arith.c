/*
 * test_check_arith.c - the checker's declared arithmetic, tie band and
 * undecided rows (include/stem_check.h, docs/ALGORITHM.md section 5):
 * presets and the library's choice of one; errors of a coarser arithmetic
 * named in the report; lse limits tight enough for a flash kernel; rows
 * the mask stage cannot decide reported, and failed under strict; exact
 * ties between a forced and a top-k block; the mask-only classification
 * stem mask --diff uses agreeing with stem_check's.
 *
 * The "GPU" is the library on a small case (tests/common/check_case.h),
 * doctored one way at a time.
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

#include "common/check_case.h"
#include "common/testutil.h"
#include "stem.h"
#include "stem_check.h"

static cc_case S;               /* structured, 2 query heads on 1 kv head */
static cc_case R;               /* i.i.d. random */

static int setup(void **state)
{
    (void)state;
    cc_make(&S, 0, 2, 1, 2048, 64, 4242);
    cc_make(&R, 1, 2, 1, 2048, 64, 777);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    cc_free(&S);
    cc_free(&R);
    return 0;
}

static void show(const stem_check_report *r)
{
    size_t n = stem_check_report_text(r, 1, NULL, 0);
    char *buf = malloc(n + 1);
    assert_non_null(buf);
    stem_check_report_text(r, 1, buf, n + 1);
    print_message("%s\n", buf);
    free(buf);
}

/* The report rendered (text verbose, or JSON); the caller frees it. */
static char *render(const stem_check_report *r, int json)
{
    size_t n = json ? stem_check_report_json(r, NULL, 0)
                    : stem_check_report_text(r, 1, NULL, 0);
    char *buf = malloc(n + 1);
    assert_non_null(buf);
    if (json)
        stem_check_report_json(r, buf, n + 1);
    else
        stem_check_report_text(r, 1, buf, n + 1);
    return buf;
}

/* stem_check of c with the given GPU tensors (NULL: not given). */
static void judge(const cc_case *c, const float *logits, const uint8_t *mask,
                  const uint16_t *out_bf16, const float *lse,
                  const stem_check_options *o, stem_check_report *r)
{
    stem_tensor tl, tm, to, ts;
    stem_check_gpu g = {NULL, NULL, NULL, NULL};
    if (logits) {
        tl = stem_tensor_hnd((void *)logits, STEM_F32, c->dm.hq, c->dm.qb, c->dm.kb);
        g.logits = &tl;
    }
    if (mask) {
        tm = stem_tensor_hnd((void *)mask, STEM_U8, c->dm.hq, c->dm.qb, c->dm.kb);
        g.mask = &tm;
    }
    if (out_bf16) {
        to = stem_tensor_hnd((void *)out_bf16, STEM_BF16, c->dm.hq, c->dm.lq, c->dm.d);
        g.out = &to;
    }
    if (lse) {
        ts = stem_tensor_hnd((void *)lse, STEM_F32, c->dm.hq, c->dm.lq, 1);
        g.lse = &ts;
    }
    assert_int_equal(stem_check(&c->p, &c->q.t, &c->k.t, &c->v.t, &g, o, r),
                     STEM_OK);
}

static stem_check_options opts(stem_prec dtype)
{
    stem_check_options o;
    assert_int_equal(stem_check_options_init(&o, dtype), STEM_OK);
    o.max_items = 100000;
    o.dense_test = 0;
    return o;
}

static uint16_t *out_bf16(const cc_case *c, const float *src)
{
    uint16_t *o = malloc(cc_outs(c) * sizeof(uint16_t));
    assert_non_null(o);
    for (size_t i = 0; i < cc_outs(c); i++)
        o[i] = tu_f64_to_bf16(src[i]);
    return o;
}

/* ---------------------------------------------------------------- presets */

static void test_presets(void **state)
{
    (void)state;
    stem_check_options o;
    memset(&o, 0, sizeof(o));
    assert_int_equal(stem_arith_precisions(STEM_ARITH_FLASH, STEM_PREC_BF16, &o), STEM_OK);
    assert_int_equal(o.arith, STEM_ARITH_FLASH);
    assert_int_equal(o.score_prec, STEM_PREC_BF16);
    assert_int_equal(o.logit_store, STEM_PREC_FP32);
    assert_int_equal(o.attn_score_prec, STEM_PREC_FP32);
    assert_int_equal(o.attn_prec, STEM_PREC_BF16);
    assert_int_equal(o.out_store, STEM_PREC_BF16);
    assert_int_equal(o.lse_store, STEM_PREC_FP32);
    assert_int_equal(stem_arith_precisions(STEM_ARITH_ANGELSLIM, STEM_PREC_FP16, &o), STEM_OK);
    assert_int_equal(o.logit_store, STEM_PREC_FP16);
    assert_int_equal(o.attn_score_prec, STEM_PREC_FP16);
    assert_int_equal(o.attn_prec, STEM_PREC_FP16);
    assert_int_equal(o.lse_store, STEM_PREC_FP32);
    assert_int_equal(stem_arith_precisions(STEM_ARITH_HPCOPS, STEM_PREC_BF16, &o), STEM_OK);
    assert_int_equal(o.attn_prec, STEM_PREC_FP8);
    assert_int_equal(o.logit_store, STEM_PREC_BF16);
    assert_int_equal(o.attn_score_prec, STEM_PREC_FP32);
    assert_int_equal(stem_arith_precisions(STEM_ARITH_ANGELSLIM, STEM_PREC_FP32, &o), STEM_OK);
    assert_int_equal(o.attn_score_prec, STEM_PREC_FP32);
    assert_int_equal(o.out_store, STEM_PREC_FP32);
    assert_int_equal(stem_arith_precisions(STEM_ARITH_COUNT, STEM_PREC_BF16, &o), STEM_ERR_PARAM);
    assert_int_equal(stem_arith_precisions(STEM_ARITH_FLASH, STEM_PREC_BF16, NULL), STEM_ERR_NULL);

    /* defaults: flash for 16-bit dtypes, hpc-ops for fp8, chosen by data */
    assert_int_equal(stem_check_options_init(&o, STEM_PREC_BF16), STEM_OK);
    assert_int_equal(o.arith, STEM_ARITH_FLASH);
    assert_int_equal(o.attn_score_prec, STEM_PREC_FP32);
    assert_int_equal(o.arith_auto, 1);
    assert_int_equal(o.strict, 0);
    assert_int_equal(stem_check_options_init(&o, STEM_PREC_FP8), STEM_OK);
    assert_int_equal(o.arith, STEM_ARITH_HPCOPS);
    assert_int_equal(stem_check_options_init(&o, STEM_PREC_BF16), STEM_OK);
    assert_int_equal(stem_check_options_arith(&o, STEM_ARITH_ANGELSLIM), STEM_OK);
    assert_int_equal(o.arith_auto, 0);
    assert_int_equal(o.attn_score_prec, STEM_PREC_BF16);
    assert_int_equal(stem_check_options_arith(&o, (stem_arith)99), STEM_ERR_PARAM);
    assert_int_equal(stem_check_options_arith(NULL, STEM_ARITH_FLASH), STEM_ERR_NULL);

    /* names */
    stem_arith a = STEM_ARITH_HPCOPS;
    for (int i = 0; i < STEM_ARITH_COUNT; i++) {
        assert_int_equal(stem_arith_from_name(stem_arith_name((stem_arith)i), &a), STEM_OK);
        assert_int_equal(a, i);
    }
    assert_int_equal(stem_arith_from_name("FlexAttention", &a), STEM_ERR_PARAM);
    assert_int_equal(stem_arith_from_name("FLEX", &a), STEM_OK);
    assert_int_equal(a, STEM_ARITH_FLASH);
    assert_int_equal(stem_arith_from_name(NULL, &a), STEM_ERR_NULL);
    assert_string_equal(stem_arith_name((stem_arith)77), "?");

    /* bad option values are refused */
    stem_check_report r;
    uint8_t *m = S.mask;
    stem_check_options bad = opts(STEM_PREC_BF16);
    bad.strict = 2;
    stem_tensor tm = stem_tensor_hnd(m, STEM_U8, S.dm.hq, S.dm.qb, S.dm.kb);
    stem_check_gpu g = {NULL, &tm, NULL, NULL};
    assert_int_equal(stem_check(&S.p, &S.q.t, &S.k.t, &S.v.t, &g, &bad, &r), STEM_ERR_PARAM);
    bad = opts(STEM_PREC_BF16);
    bad.arith = STEM_ARITH_COUNT;
    assert_int_equal(stem_check(&S.p, &S.q.t, &S.k.t, &S.v.t, &g, &bad, &r), STEM_ERR_PARAM);
}

/* Logits that are all bf16 values are logits stored in bf16: the library
 * chooses the angelslim arithmetic and says so; float32 logits stay
 * flash; an override of a place keeps the declaration. */
static void test_auto_chooses_by_stored_logits(void **state)
{
    (void)state;
    float *lg = malloc(cc_cells(&S) * sizeof(float));
    assert_non_null(lg);
    for (size_t i = 0; i < cc_cells(&S); i++)
        lg[i] = isfinite(S.logits[i]) ? (float)tu_bf16_to_f64(tu_f64_to_bf16(S.logits[i]))
                                      : S.logits[i];
    stem_check_options o = opts(STEM_PREC_BF16);
    stem_check_report r;
    judge(&S, lg, S.mask, NULL, NULL, &o, &r);
    assert_int_equal(r.options.arith, STEM_ARITH_ANGELSLIM);
    assert_int_equal(r.options.logit_store, STEM_PREC_BF16);
    assert_int_equal(r.arith_chosen, 1);
    if (r.stage[STEM_STAGE_LOGITS].verdict != STEM_CHECK_PASS)
        show(&r);
    assert_int_equal(r.stage[STEM_STAGE_LOGITS].verdict, STEM_CHECK_PASS);
    char *t = render(&r, 0), *j = render(&r, 1);
    assert_non_null(strstr(t, "arithmetic angelslim (chosen from the data)"));
    assert_non_null(strstr(j, "\"arithmetic\": {\"name\": \"angelslim\""));
    assert_non_null(strstr(j, "\"chosen_from_data\": true"));
    free(t), free(j);
    stem_check_report_free(&r);

    judge(&S, S.logits, S.mask, NULL, NULL, &o, &r);
    assert_int_equal(r.options.arith, STEM_ARITH_FLASH);
    assert_int_equal(r.arith_chosen, 0);
    stem_check_report_free(&r);

    o.attn_prec = STEM_PREC_FP32;           /* an override: no choice */
    judge(&S, lg, S.mask, NULL, NULL, &o, &r);
    assert_int_equal(r.options.arith, STEM_ARITH_FLASH);
    t = render(&r, 0);
    assert_non_null(strstr(t, "arithmetic flash + P fp32"));
    free(t);
    stem_check_report_free(&r);
    free(lg);
}

/* ------------------------------------------- errors of another arithmetic */

/* Attention of the rows of query block I of head h under c's mask, in
 * double, with the scaled scores rounded to bf16 when round_scores, into
 * out (F32 [hq, n, d]). */
static void attend_block(const cc_case *c, int64_t h, int64_t I,
                         int round_scores, float *out)
{
    const int64_t B = c->p.block, d = c->dm.d, n = c->dm.lk;
    const int64_t g = h / (c->dm.hq / c->dm.hkv);
    double *s = malloc((size_t)n * sizeof(double));
    assert_non_null(s);
    for (int64_t t = I * B; t < (I + 1) * B && t < c->dm.lq; t++) {
        double mx = -INFINITY, z = 0;
        for (int64_t j = 0; j <= t; j++) {
            s[j] = -INFINITY;
            if (!c->mask[cc_row(c, h, I) + j / B])
                continue;
            double x = 0;
            for (int64_t e = 0; e < d; e++)
                x += tu_get(&c->q.t, h, t, e) * tu_get(&c->k.t, g, j, e);
            x /= sqrt((double)d);
            s[j] = round_scores ? tu_bf16_to_f64(tu_f64_to_bf16(x)) : x;
            if (s[j] > mx)
                mx = s[j];
        }
        for (int64_t j = 0; j <= t; j++)
            z += isfinite(s[j]) ? exp(s[j] - mx) : 0;
        for (int64_t e = 0; e < d; e++) {
            double o = 0;
            for (int64_t j = 0; j <= t; j++)
                if (isfinite(s[j]))
                    o += exp(s[j] - mx) / z * tu_get(&c->v.t, g, j, e);
            out[((size_t)h * c->dm.lq + t) * d + e] = (float)o;
        }
    }
    free(s);
}

/* out of the last query blocks computed with scores rounded to bf16 (as a
 * dense-masked fallback does): declared flash, those rows fail and the
 * report names the arithmetic they fit; declared angelslim, they pass. */
static void test_bf16_scores_named(void **state)
{
    (void)state;
    /* scores of about 10, whose bf16 rounding (2^-9 relative) moves P by
     * some 2%: q of the structured case times 4 */
    cc_case S;
    cc_make(&S, 0, 2, 1, 1024, 64, 99);
    for (int64_t h = 0; h < S.dm.hq; h++)
        for (int64_t t = 0; t < S.dm.lq; t++)
            for (int64_t e = 0; e < S.dm.d; e++)
                tu_set(&S.q.t, h, t, e, 4 * tu_get(&S.q.t, h, t, e));
    cc_refresh(&S);
    float *o = malloc(cc_outs(&S) * sizeof(float));
    assert_non_null(o);
    memcpy(o, S.out, cc_outs(&S) * sizeof(float));
    const int64_t I0 = S.dm.qb - 3;
    /* the emulation without rounding is the library's output */
    attend_block(&S, 0, I0, 0, o);
    double e = 0, n = 0;
    for (size_t i = (size_t)I0 * 32 * 64; i < (size_t)(I0 + 1) * 32 * 64; i++) {
        e += (o[i] - S.out[i]) * (double)(o[i] - S.out[i]);
        n += (double)S.out[i] * S.out[i];
    }
    assert_true(sqrt(e / n) < 1e-5);
    for (int64_t h = 0; h < S.dm.hq; h++)
        for (int64_t I = I0; I < S.dm.qb; I++)
            attend_block(&S, h, I, 1, o);
    uint16_t *ob = out_bf16(&S, o);
    stem_check_options fl = opts(STEM_PREC_BF16);
    stem_check_report r;
    judge(&S, NULL, S.mask, ob, NULL, &fl, &r);
    if (r.stage[STEM_STAGE_OUT].verdict != STEM_CHECK_FAIL || !r.arith_note[0])
        show(&r);
    assert_int_equal(r.options.arith, STEM_ARITH_FLASH);
    assert_int_equal(r.stage[STEM_STAGE_OUT].verdict, STEM_CHECK_FAIL);
    assert_non_null(strstr(r.arith_note, "rounded to bf16 before the softmax"));
    assert_non_null(strstr(r.arith_note, "--arith angelslim"));
    assert_true(r.alt_ratio[STEM_STAGE_OUT] > 0 && r.alt_ratio[STEM_STAGE_OUT] <= 1);
    for (int64_t i = 0; i < r.stage[STEM_STAGE_OUT].n_items; i++)
        if (r.stage[STEM_STAGE_OUT].items[i].kind == STEM_KIND_OUT_ROW)
            assert_true(r.stage[STEM_STAGE_OUT].items[i].qblock >= I0);
    char *t = render(&r, 0);
    assert_non_null(strstr(t, "arithmetic: the errors fit attention scores rounded to bf16"));
    free(t);
    stem_check_report_free(&r);

    stem_check_options as = opts(STEM_PREC_BF16);
    assert_int_equal(stem_check_options_arith(&as, STEM_ARITH_ANGELSLIM), STEM_OK);
    judge(&S, NULL, S.mask, ob, NULL, &as, &r);
    if (r.stage[STEM_STAGE_OUT].verdict != STEM_CHECK_PASS)
        show(&r);
    assert_int_equal(r.stage[STEM_STAGE_OUT].verdict, STEM_CHECK_PASS);
    stem_check_report_free(&r);
    free(ob), free(o);
    cc_free(&S);
}

/* The lse limit of a flash kernel: an offset of 1e-4 in one row (below
 * the worst-case limit of old, (B + Kb + 16) 2^-24 (|lse| + smax)) fails
 * at that row; the library's own lse passes. */
static void test_lse_limit_tight(void **state)
{
    (void)state;
    size_t nl = (size_t)S.dm.hq * (size_t)S.dm.lq;
    float *l = malloc(nl * sizeof(float));
    assert_non_null(l);
    memcpy(l, S.lse, nl * sizeof(float));
    stem_check_options o = opts(STEM_PREC_BF16);
    stem_check_report r;
    judge(&S, NULL, S.mask, NULL, l, &o, &r);
    assert_int_equal(r.stage[STEM_STAGE_LSE].verdict, STEM_CHECK_PASS);
    assert_true(r.stage[STEM_STAGE_LSE].worst_ratio < 0.7);
    stem_check_report_free(&r);
    const int64_t row = 1500;
    l[(size_t)S.dm.lq + row] += 1e-4f;
    judge(&S, NULL, S.mask, NULL, l, &o, &r);
    const stem_check_stage_result *s = &r.stage[STEM_STAGE_LSE];
    assert_int_equal(s->verdict, STEM_CHECK_FAIL);
    int found = 0;
    for (int64_t i = 0; i < s->n_items; i++)
        if (s->items[i].kind == STEM_KIND_LSE_ROW) {
            assert_int_equal(s->items[i].head, 1);
            assert_int_equal(s->items[i].row, row);
            assert_true(s->items[i].limit < 1e-4);
            found = 1;
        }
    assert_true(found);
    stem_check_report_free(&r);
    free(l);
}

/* ---------------------------------------------------- undecided and ties */

/* An exchange between a kept top-k block and the best dropped one in one
 * sparse row, judged mask only with a tie band wide enough to hold it:
 * no fault, but the row is undecided, said in the text and JSON; strict
 * fails it; with the GPU's logits the mask stage decides every row. */
static void test_undecided_and_strict(void **state)
{
    (void)state;
    uint8_t *m = malloc(cc_cells(&S));
    assert_non_null(m);
    memcpy(m, S.mask, cc_cells(&S));
    int64_t h = 1, I = S.dm.qb - 2, pos = I, kept = -1, drop = -1;
    for (int64_t J = 0; J <= pos; J++) {
        if (cc_forced(&S, I, J))
            continue;
        float L = S.logits[cc_row(&S, h, I) + J];
        if (m[cc_row(&S, h, I) + J] && (kept < 0 || L < S.logits[cc_row(&S, h, I) + kept]))
            kept = J;
        if (!m[cc_row(&S, h, I) + J] && (drop < 0 || L > S.logits[cc_row(&S, h, I) + drop]))
            drop = J;
    }
    assert_true(kept >= 0 && drop >= 0);
    m[cc_row(&S, h, I) + kept] = 0;
    m[cc_row(&S, h, I) + drop] = 1;
    stem_check_options o = opts(STEM_PREC_BF16);
    o.tau = 100;
    stem_check_report r;
    judge(&S, NULL, m, NULL, NULL, &o, &r);
    const stem_check_stage_result *ms = &r.stage[STEM_STAGE_MASK];
    assert_int_equal(r.verdict, STEM_CHECK_PASS);
    assert_int_equal(ms->undecided, 1);
    assert_true(ms->units > 1);
    char *t = render(&r, 0), *j = render(&r, 1);
    assert_non_null(strstr(t, "PASS, with undecided rows"));
    assert_non_null(strstr(t, "undecided: 1 of"));
    assert_non_null(strstr(t, "give the kernel's logits"));
    assert_non_null(strstr(j, "\"undecided\": 1"));
    free(t), free(j);
    stem_check_report_free(&r);

    o.strict = 1;
    judge(&S, NULL, m, NULL, NULL, &o, &r);
    assert_int_equal(r.verdict, STEM_CHECK_FAIL);
    assert_int_equal(r.stage[STEM_STAGE_MASK].verdict, STEM_CHECK_FAIL);
    assert_int_equal(r.strict_failed, 1);
    stem_check_report_free(&r);

    o.strict = 0;                            /* logits decide it */
    judge(&S, S.logits, m, NULL, NULL, &o, &r);
    assert_int_equal(r.stage[STEM_STAGE_MASK].undecided, 0);
    stem_check_report_free(&r);

    /* the genuine mask: every row decided, a plain PASS */
    judge(&S, NULL, S.mask, NULL, NULL, &o, &r);
    assert_int_equal(r.stage[STEM_STAGE_MASK].undecided, 0);
    t = render(&r, 0);
    assert_non_null(strstr(t, "PASS: every difference is explained by rounding"));
    free(t);
    stem_check_report_free(&r);
    free(m);
}

/* On i.i.d. data, whose block logits lie close together: the same
 * exchange in each of eight sparse rows, judged mask only with the
 * derived tie band, is never a silent PASS (a gap fault, or the row
 * undecided). */
static void test_exchange_on_random_data(void **state)
{
    (void)state;
    int64_t tried = 0;
    for (int64_t I = R.dm.qb - 1; I >= 0 && tried < 8; I--) {
        int64_t h = I % 2, kept = -1, drop = -1;
        for (int64_t J = 0; J <= I; J++) {
            if (cc_forced(&R, I, J))
                continue;
            float L = R.logits[cc_row(&R, h, I) + J];
            if (R.mask[cc_row(&R, h, I) + J] &&
                (kept < 0 || L > R.logits[cc_row(&R, h, I) + kept]))
                kept = J;
            if (!R.mask[cc_row(&R, h, I) + J] &&
                (drop < 0 || L > R.logits[cc_row(&R, h, I) + drop]))
                drop = J;
        }
        if (kept < 0 || drop < 0)
            continue;
        uint8_t *m = malloc(cc_cells(&R));
        assert_non_null(m);
        memcpy(m, R.mask, cc_cells(&R));
        m[cc_row(&R, h, I) + kept] = 0;
        m[cc_row(&R, h, I) + drop] = 1;
        stem_check_options o = opts(STEM_PREC_BF16);
        stem_check_report r;
        judge(&R, NULL, m, NULL, NULL, &o, &r);
        const stem_check_stage_result *ms = &r.stage[STEM_STAGE_MASK];
        if (!(ms->verdict == STEM_CHECK_FAIL || ms->undecided == 1))
            show(&r);
        assert_true(ms->verdict == STEM_CHECK_FAIL || ms->undecided == 1);
        stem_check_report_free(&r);
        free(m);
        tried++;
    }
    assert_int_equal(tried, 8);
}

/* Logits stored as bf16 can make a window block and a top-k block exactly
 * equal at the row threshold.  Which of the two takes the top-k place is
 * a tie-break: the GPU giving it to the window block (so dropping the
 * top-k one) is a tie, not "selection missing"; one ulp apart it is a
 * fault. */
static void test_exact_tie_forced_topk(void **state)
{
    (void)state;
    const int64_t h = 0, I = S.dm.qb - 1, pos = I;
    const size_t row = cc_row(&S, h, I);
    int32_t b = S.budget[pos];
    /* the threshold block T: the b-th largest, a top-k block */
    float *lg = malloc(cc_cells(&S) * sizeof(float));
    uint8_t *m = malloc(cc_cells(&S));
    assert_true(lg && m);
    memcpy(lg, S.logits, cc_cells(&S) * sizeof(float));
    memcpy(m, S.mask, cc_cells(&S));
    int64_t T = -1;
    for (int64_t J = 0; J <= pos; J++) {
        int64_t above = 0;
        for (int64_t K = 0; K <= pos; K++)
            above += lg[row + K] > lg[row + J];
        if (above == b - 1)
            T = J;
    }
    assert_true(T >= 0 && !cc_forced(&S, I, T) && m[row + T]);
    int64_t W = pos - 1;                     /* a window block */
    assert_true(cc_forced(&S, I, W) && W > T);
    assert_true(lg[row + W] > lg[row + T]); /* it sat above the threshold */
    lg[row + W] = lg[row + T];               /* now exactly equal */
    m[row + T] = 0;                          /* W took the top-k place */
    stem_check_options o = opts(STEM_PREC_BF16);
    stem_check_report r;
    judge(&S, lg, m, NULL, NULL, &o, &r);
    if (r.stage[STEM_STAGE_SELECTION].verdict != STEM_CHECK_PASS)
        show(&r);
    assert_int_equal(r.stage[STEM_STAGE_SELECTION].verdict, STEM_CHECK_PASS);
    assert_int_equal(r.select_ties, 1);
    stem_check_report_free(&r);
    lg[row + W] = nextafterf(lg[row + T], -INFINITY);
    judge(&S, lg, m, NULL, NULL, &o, &r);
    assert_int_equal(r.stage[STEM_STAGE_SELECTION].verdict, STEM_CHECK_FAIL);
    const stem_check_stage_result *s = &r.stage[STEM_STAGE_SELECTION];
    assert_int_equal(s->n_items, 1);
    assert_int_equal(s->items[0].kind, STEM_KIND_SELECT_MISSING);
    assert_int_equal(s->items[0].kblock, T);
    stem_check_report_free(&r);
    free(lg), free(m);
}

/* A single dropped block in a row whose budget keeps every causal block is
 * a fault without a hint about the parameters ("1 of 0 sparse rows"); a
 * budget one short in every sparse row gets the hint, counting them. */
static void test_count_hint_counts_sparse_rows(void **state)
{
    (void)state;
    /* 512 tokens, 16 blocks: no row is sparse */
    cc_case X;
    cc_make(&X, 0, 1, 1, 512, 64, 5);
    uint8_t *mx = malloc(cc_cells(&X));
    assert_non_null(mx);
    memcpy(mx, X.mask, cc_cells(&X));
    const int64_t I = 12, J = 6;
    assert_true(X.budget[I] >= I + 1 && !cc_forced(&X, I, J) && mx[cc_row(&X, 0, I) + J]);
    mx[cc_row(&X, 0, I) + J] = 0;
    stem_check_options o = opts(STEM_PREC_BF16);
    stem_check_report r;
    judge(&X, NULL, mx, NULL, NULL, &o, &r);
    assert_int_equal(r.stage[STEM_STAGE_MASK].verdict, STEM_CHECK_FAIL);
    assert_int_equal(r.stage[STEM_STAGE_MASK].units, 0);
    if (r.hint[0])
        print_message("hint: %s\n", r.hint);
    assert_true(r.hint[0] == '\0');
    char *t = render(&r, 0);
    assert_non_null(strstr(t, "no sparse row"));
    free(t);
    stem_check_report_free(&r);
    free(mx);
    cc_free(&X);

    uint8_t *m = malloc(cc_cells(&S));
    assert_non_null(m);

    /* one short in every sparse row: drop the kept top-k block of least
     * logit */
    memcpy(m, S.mask, cc_cells(&S));
    int64_t nsparse = 0;
    for (int64_t h = 0; h < S.dm.hq; h++)
        for (int64_t Ib = 0; Ib < S.dm.qb; Ib++) {
            if (S.budget[Ib] >= Ib + 1)
                continue;
            int64_t low = -1;
            for (int64_t Jb = 0; Jb <= Ib; Jb++)
                if (m[cc_row(&S, h, Ib) + Jb] && !cc_forced(&S, Ib, Jb) &&
                    (low < 0 || S.logits[cc_row(&S, h, Ib) + Jb] <
                                    S.logits[cc_row(&S, h, Ib) + low]))
                    low = Jb;
            if (low >= 0) {
                m[cc_row(&S, h, Ib) + low] = 0;
                nsparse++;
            }
        }
    assert_true(nsparse >= 4);
    judge(&S, NULL, m, NULL, NULL, &o, &r);
    char want[64];
    snprintf(want, sizeof(want), "%lld of %lld sparse rows", (long long)nsparse,
             (long long)r.stage[STEM_STAGE_MASK].units);
    if (!strstr(r.hint, want))
        print_message("hint: %s (want %s)\n", r.hint, want);
    assert_non_null(strstr(r.hint, want));
    stem_check_report_free(&r);
    free(m);
}

/* stem_check_mask_logits (what stem mask --diff uses without q, k, v)
 * classifies as stem_check's mask stage does with the same band. */
static void test_mask_logits_agrees(void **state)
{
    (void)state;
    uint8_t *m = malloc(cc_cells(&S));
    assert_non_null(m);
    memcpy(m, S.mask, cc_cells(&S));
    m[cc_row(&S, 1, 40) + 2] = 0;            /* a sink dropped */
    int64_t I = S.dm.qb - 1, kept = -1, drop = -1;
    for (int64_t J = 0; J <= I; J++) {
        if (cc_forced(&S, I, J))
            continue;
        if (m[cc_row(&S, 0, I) + J])
            kept = J;
        else
            drop = J;
    }
    m[cc_row(&S, 0, I) + kept] = 0;          /* an exchange */
    m[cc_row(&S, 0, I) + drop] = 1;
    stem_check_options o = opts(STEM_PREC_BF16);
    o.tau = 0.05;
    stem_check_report a, b;
    judge(&S, NULL, m, NULL, NULL, &o, &a);
    assert_int_equal(stem_check_mask_logits(&S.p, S.dm.hq, S.dm.qb, S.dm.kb,
                                             S.logits, NULL, m, &o, &b), STEM_OK);
    const stem_check_stage_result *sa = &a.stage[STEM_STAGE_MASK],
                                  *sb = &b.stage[STEM_STAGE_MASK];
    assert_int_equal(sa->verdict, STEM_CHECK_FAIL);
    assert_int_equal(sb->verdict, sa->verdict);
    assert_int_equal(b.verdict, STEM_CHECK_FAIL);
    assert_int_equal(sb->faults, sa->faults);
    assert_int_equal(b.mask_ties, a.mask_ties);
    assert_int_equal(b.mask_diffs, a.mask_diffs);
    assert_int_equal(sb->n_items, sa->n_items);
    for (int64_t i = 0; i < sa->n_items; i++) {
        assert_int_equal(sb->items[i].kind, sa->items[i].kind);
        assert_int_equal(sb->items[i].qblock, sa->items[i].qblock);
        assert_int_equal(sb->items[i].kblock, sa->items[i].kblock);
    }
    assert_int_equal(b.stage[STEM_STAGE_OUT].verdict, STEM_CHECK_ABSENT);
    stem_check_report_free(&a);
    stem_check_report_free(&b);
    /* bad arguments */
    assert_int_equal(stem_check_mask_logits(&S.p, S.dm.hq, S.dm.qb, S.dm.kb,
                                            S.logits, NULL, NULL, &o, &b), STEM_ERR_NULL);
    assert_int_equal(stem_check_mask_logits(&S.p, S.dm.hq, S.dm.qb, S.dm.kb,
                                            S.logits, NULL, m, NULL, &b), STEM_ERR_PARAM);
    o.tau = -1;                              /* a band cannot be derived */
    assert_int_equal(stem_check_mask_logits(&S.p, S.dm.hq, S.dm.qb, S.dm.kb,
                                            S.logits, NULL, m, &o, &b), STEM_ERR_PARAM);
    o.tau = 0.05;
    assert_int_equal(stem_check_mask_logits(&S.p, S.dm.hq, S.dm.kb, S.dm.qb - 1,
                                            S.logits, NULL, m, &o, &b), STEM_ERR_SHAPE);
    assert_int_equal(stem_check_mask_logits(&S.p, S.dm.hq, S.dm.qb, S.dm.kb,
                                            S.logits, NULL, m, &o, NULL), STEM_ERR_NULL);
    free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_presets),
        cmocka_unit_test(test_auto_chooses_by_stored_logits),
        cmocka_unit_test(test_bf16_scores_named),
        cmocka_unit_test(test_lse_limit_tight),
        cmocka_unit_test(test_undecided_and_strict),
        cmocka_unit_test(test_exchange_on_random_data),
        cmocka_unit_test(test_exact_tie_forced_topk),
        cmocka_unit_test(test_count_hint_counts_sparse_rows),
        cmocka_unit_test(test_mask_logits_agrees),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
