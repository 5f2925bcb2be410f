/*
 * test_check_bias.c - the systematic tests of stem_check (src/check/
 * check_bias.c, docs/ALGORITHM.md section 5): faults that move many rows
 * a little in one direction must FAIL with the kind and the place, and
 * unbiased rounding must PASS, on a small synthetic case (BF16 q/k/v,
 * Hq 2, Hkv 1, 1024 tokens, d 64, blocks of 64).
 *
 * The "GPU" is the library's own float32 attention, out rounded to bf16
 * (the flash arithmetic's storage), lse float32; faults are applied to it:
 * out * 1.01 on one query block, the softmax scale 3% off (out from
 * queries scaled by 1.03), lse + 1e-3 on one head, a query block's rows
 * written one place off, a query block holding the other head's rows.
 * Each of the first three stays within every row's own limit or close to
 * it; the test asserts the systematic kind (and for the last two, which
 * rows fail anyway, that the kind names the cause).
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

#include "common/testutil.h"
#include "stem.h"
#include "stem_check.h"

#define HQ 2
#define HKV 1
#define L 1024
#define D 64
#define B 64
#define QB (L / B)

/* The case: inputs, the library's mask, out and lse. */
typedef struct bias_case {
    stem_params p;
    tu_tensor q, k, v;
    float *logits, *out, *lse;  /* out [HQ, L, D], lse [HQ, L] */
    uint8_t *mask;
    uint16_t *gout;             /* the GPU's out, BF16 */
    float *glse;                /* the GPU's lse */
} bias_case;

/* Build the case of seed: q, k, v N(0, 1) (q scaled by 0.5 so that the
 * softmax is neither flat nor one-hot), the reference, and a genuine GPU
 * (out rounded to bf16, lse as is). */
static void case_make(bias_case *c, uint64_t seed)
{
    memset(c, 0, sizeof(*c));
    assert_int_equal(stem_params_init(&c->p, STEM_PROFILE_ANGELSLIM), STEM_OK);
    c->p.block = B;
    c->q = tu_tensor_new(STEM_BF16, TU_HND, HQ, L, D);
    c->k = tu_tensor_new(STEM_BF16, TU_HND, HKV, L, D);
    c->v = tu_tensor_new(STEM_BF16, TU_HND, HKV, L, D);
    tu_fill_normal(&c->q.t, seed, 1.5);
    tu_fill_normal(&c->k.t, seed + 1, 1.0);
    tu_fill_normal(&c->v.t, seed + 2, 1.0);
    const size_t cells = (size_t)HQ * QB * QB, n = (size_t)HQ * L * D;
    c->logits = malloc(cells * sizeof(float));
    c->mask = malloc(cells);
    c->out = malloc(n * sizeof(float));
    c->lse = malloc((size_t)HQ * L * sizeof(float));
    c->gout = malloc(n * sizeof(uint16_t));
    c->glse = malloc((size_t)HQ * L * sizeof(float));
    assert_true(c->logits && c->mask && c->out && c->lse && c->gout && c->glse);
    stem_tensor o = stem_tensor_hnd(c->out, STEM_F32, HQ, L, D);
    assert_int_equal(stem_prefill(&c->p, &c->q.t, &c->k.t, &c->v.t, &o, c->lse,
                                  c->logits, c->mask), STEM_OK);
    for (size_t i = 0; i < n; i++)
        c->gout[i] = tu_f64_to_bf16(c->out[i]);
    memcpy(c->glse, c->lse, (size_t)HQ * L * sizeof(float));
}

static void case_free(bias_case *c)
{
    tu_tensor_free(&c->q), tu_tensor_free(&c->k), tu_tensor_free(&c->v);
    free(c->logits), free(c->mask), free(c->out), free(c->lse);
    free(c->gout), free(c->glse);
}

/* Judge the GPU's mask, out and lse as a flash kernel in bf16. */
static void judge(const bias_case *c, stem_check_report *r)
{
    stem_tensor tm = stem_tensor_hnd(c->mask, STEM_U8, HQ, QB, QB);
    stem_tensor to = stem_tensor_hnd(c->gout, STEM_BF16, HQ, L, D);
    stem_tensor ts = stem_tensor_hnd(c->glse, STEM_F32, HQ, L, 1);
    stem_check_gpu g = {NULL, &tm, &to, &ts};
    stem_check_options o;
    assert_int_equal(stem_check_options_init(&o, STEM_PREC_BF16), STEM_OK);
    o.dense_test = 0;
    assert_int_equal(stem_check(&c->p, &c->q.t, &c->k.t, &c->v.t, &g, &o, r),
                     STEM_OK);
}

static void show(const stem_check_report *r)
{
    size_t n = stem_check_report_text(r, 1, NULL, 0);
    char *buf = malloc(n + 1);
    if (buf) {
        stem_check_report_text(r, 1, buf, n + 1);
        print_message("%s", buf);
        free(buf);
    }
}

/* The first fault item of kind in stage at head h and query block I
 * (-2: any query block), or NULL. */
static const stem_check_item *find(const stem_check_report *r,
                                   stem_check_stage st, stem_check_kind kind,
                                   int64_t h, int64_t I)
{
    const stem_check_stage_result *s = &r->stage[st];
    for (int64_t i = 0; i < s->n_items; i++)
        if (s->items[i].kind == kind && s->items[i].head == h &&
            (I == -2 || s->items[i].qblock == I))
            return &s->items[i];
    return NULL;
}

/* Genuine rounding passes on several seeds; every test ran, its worst
 * group below its threshold; the threshold is the Bonferroni quantile. */
static void test_genuine_passes(void **state)
{
    (void)state;
    for (uint64_t seed = 11; seed < 15; seed++) {
        bias_case c;
        stem_check_report r;
        case_make(&c, seed * 7);
        judge(&c, &r);
        if (r.verdict != STEM_CHECK_PASS)
            show(&r);
        assert_int_equal(r.verdict, STEM_CHECK_PASS);
        int64_t ntests = 0;
        for (int t = 0; t < STEM_BIAS_COUNT; t++) {
            const stem_check_bias *b = &r.bias[t];
            if (t <= STEM_BIAS_LSE_TEMP)
                assert_true(b->tests > 0);
            assert_true(b->worst < 1);
            assert_int_equal(b->faults, 0);
            ntests += b->tests;
        }
        /* per head: QB blocks and the head, for 2 + 2 + 1 out directions
         * (scale, temperature, both rows, the one neighbouring head; no
         * other kv head), 2 lse ones (no logits given) */
        assert_int_equal(r.bias[STEM_BIAS_OUT_SCALE].tests, HQ * (QB + 1));
        assert_int_equal(r.bias[STEM_BIAS_OUT_HEAD].tests, HQ * (QB + 1));
        assert_int_equal(r.bias[STEM_BIAS_OUT_KV_HEAD].tests, 0);
        assert_int_equal(ntests, HQ * (QB + 1) * 7);
        assert_true(fabs(erfc(r.bias_z / sqrt(2.0)) * (double)ntests /
                         r.bias_alpha - 1) < 1e-6);
        stem_check_report_free(&r);
        case_free(&c);
    }
}

static void test_out_scale_one_block_fails(void **state)
{
    (void)state;
    bias_case c;
    stem_check_report r;
    case_make(&c, 5);
    const int64_t h = 1, I = 5;
    for (int64_t t = I * B; t < (I + 1) * B; t++)
        for (int e = 0; e < D; e++) {
            size_t i = ((size_t)h * L + t) * D + e;
            c.gout[i] = tu_f64_to_bf16(1.01 * c.out[i]);
        }
    judge(&c, &r);
    const stem_check_item *x = find(&r, STEM_STAGE_OUT, STEM_KIND_OUT_SCALE_BIAS, h, I);
    if (!x)
        show(&r);
    assert_int_equal(r.verdict, STEM_CHECK_FAIL);
    assert_non_null(x);
    assert_true(fabs(x->gpu - 0.01) < 0.002);   /* the component: 1% */
    assert_true(x->err > x->limit);
    /* no other block of the head, nor the other head */
    for (int64_t i = 0; i < r.stage[STEM_STAGE_OUT].n_items; i++) {
        const stem_check_item *y = &r.stage[STEM_STAGE_OUT].items[i];
        assert_int_equal(y->head, h);
        assert_true(y->qblock == I || y->qblock == -1);
    }
    /* the rendered report names it */
    size_t n = stem_check_report_text(&r, 0, NULL, 0);
    char *buf = malloc(n + 1);
    assert_non_null(buf);
    stem_check_report_text(&r, 0, buf, n + 1);
    assert_non_null(strstr(buf, "scale bias         head 1 qblock 5"));
    free(buf);
    n = stem_check_report_json(&r, NULL, 0);
    buf = malloc(n + 1);
    assert_non_null(buf);
    stem_check_report_json(&r, buf, n + 1);
    assert_non_null(strstr(buf, "\"kind\": \"scale bias\""));
    assert_non_null(strstr(buf, "\"test\": \"out scale\""));
    free(buf);
    stem_check_report_free(&r);
    case_free(&c);
}

static void test_softmax_scale_fails(void **state)
{
    (void)state;
    bias_case c;
    stem_check_report r;
    case_make(&c, 6);
    /* the whole output from queries scaled by 1.03: a softmax scale 3% off */
    float *qs = malloc((size_t)HQ * L * D * sizeof(float));
    float *o = malloc((size_t)HQ * L * D * sizeof(float));
    assert_true(qs && o);
    for (int64_t h = 0; h < HQ; h++)
        for (int64_t t = 0; t < L; t++)
            for (int e = 0; e < D; e++)
                qs[((size_t)h * L + t) * D + e] = (float)(1.03 * tu_get(&c.q.t, h, t, e));
    stem_tensor tq = stem_tensor_hnd(qs, STEM_F32, HQ, L, D);
    stem_tensor to = stem_tensor_hnd(o, STEM_F32, HQ, L, D);
    assert_int_equal(stem_attention_sparse(&c.p, &tq, &c.k.t, &c.v.t, c.mask, &to,
                                           NULL), STEM_OK);
    for (size_t i = 0; i < (size_t)HQ * L * D; i++)
        c.gout[i] = tu_f64_to_bf16(o[i]);
    judge(&c, &r);
    const stem_check_item *x = find(&r, STEM_STAGE_OUT, STEM_KIND_OUT_TEMP_BIAS, 0, -1);
    if (!x)
        show(&r);
    assert_non_null(x);
    assert_true(fabs(x->gpu - 0.03) < 0.01);    /* 3%, to first order */
    assert_non_null(find(&r, STEM_STAGE_OUT, STEM_KIND_OUT_TEMP_BIAS, 1, -1));
    stem_check_report_free(&r);
    free(qs), free(o);
    case_free(&c);
}

static void test_lse_offset_fails(void **state)
{
    (void)state;
    bias_case c;
    stem_check_report r;
    case_make(&c, 7);
    for (int64_t t = 0; t < L; t++)
        c.glse[t] += 1e-3f;                     /* head 0 */
    judge(&c, &r);
    const stem_check_item *x = find(&r, STEM_STAGE_LSE, STEM_KIND_LSE_OFFSET, 0, -2);
    if (!x)
        show(&r);
    assert_int_equal(r.verdict, STEM_CHECK_FAIL);
    assert_non_null(x);
    assert_true(fabs(x->gpu - 1e-3) < 1e-4);
    for (int64_t i = 0; i < r.stage[STEM_STAGE_LSE].n_items; i++)
        assert_int_equal(r.stage[STEM_STAGE_LSE].items[i].head, 0);
    assert_int_equal(r.stage[STEM_STAGE_OUT].verdict, STEM_CHECK_PASS);
    stem_check_report_free(&r);
    case_free(&c);
}

/* A query block whose rows hold the next row's output. */
static void test_rows_one_place_off_fail(void **state)
{
    (void)state;
    bias_case c;
    stem_check_report r;
    case_make(&c, 8);
    const int64_t h = 0, I = 9;
    for (int64_t t = I * B; t < (I + 1) * B; t++)
        for (int e = 0; e < D; e++)
            c.gout[((size_t)h * L + t) * D + e] =
                tu_f64_to_bf16(c.out[((size_t)h * L + t + 1) * D + e]);
    judge(&c, &r);
    assert_int_equal(r.verdict, STEM_CHECK_FAIL);
    const stem_check_item *x = find(&r, STEM_STAGE_OUT, STEM_KIND_OUT_ROW_SHIFT, h, I);
    const stem_check_item *y = find(&r, STEM_STAGE_OUT, STEM_KIND_OUT_ROW, h, I);
    if (!x && !y)
        show(&r);
    assert_true(x || y);
    if (x) {
        assert_int_equal(x->col, 1);            /* towards the next row */
        assert_true(fabs(x->gpu - 1) < 0.1);
    }
    stem_check_report_free(&r);
    case_free(&c);
}

/* A query block of head 0 holding head 1's rows: named as the
 * neighbouring head's output, towards head 1 (col 1), component 1. */
static void test_neighbour_head_fails(void **state)
{
    (void)state;
    bias_case c;
    stem_check_report r;
    case_make(&c, 9);
    const int64_t I = 3;
    for (int64_t t = I * B; t < (I + 1) * B; t++)
        for (int e = 0; e < D; e++)
            c.gout[(size_t)t * D + e] = tu_f64_to_bf16(c.out[((size_t)L + t) * D + e]);
    judge(&c, &r);
    assert_int_equal(r.verdict, STEM_CHECK_FAIL);
    const stem_check_item *x = find(&r, STEM_STAGE_OUT, STEM_KIND_OUT_HEAD_SHIFT, 0, I);
    if (!x)
        show(&r);
    assert_non_null(x);
    assert_int_equal(x->col, 1);
    assert_true(fabs(x->gpu - 1) < 0.05);
    /* head 1 is untouched: none of its items */
    for (int64_t i = 0; i < r.stage[STEM_STAGE_OUT].n_items; i++)
        assert_int_equal(r.stage[STEM_STAGE_OUT].items[i].head, 0);
    size_t n = stem_check_report_text(&r, 0, NULL, 0);
    char *buf = malloc(n + 1);
    assert_non_null(buf);
    stem_check_report_text(&r, 0, buf, n + 1);
    assert_non_null(strstr(buf, "towards head 1's output"));
    free(buf);
    stem_check_report_free(&r);
    case_free(&c);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(stem_check_bias_name(STEM_BIAS_OUT_SCALE), "out scale");
    assert_string_equal(stem_check_bias_name(STEM_BIAS_LSE_OFFSET), "lse offset");
    assert_string_equal(stem_check_bias_name(STEM_BIAS_COUNT), "?");
    assert_string_equal(stem_check_kind_name(STEM_KIND_OUT_TEMP_BIAS),
                        "temperature bias");
    assert_string_equal(stem_check_bias_name(STEM_BIAS_OUT_HEAD), "out neighbour head");
    assert_string_equal(stem_check_kind_name(STEM_KIND_OUT_KV_HEAD), "wrong kv head");
    for (int k = STEM_KIND_OUT_SCALE_BIAS; k <= STEM_KIND_OUT_KV_HEAD; k++) {
        assert_true(stem_check_kind_is_fault((stem_check_kind)k));
        assert_string_not_equal(stem_check_kind_name((stem_check_kind)k), "?");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_genuine_passes),
        cmocka_unit_test(test_out_scale_one_block_fails),
        cmocka_unit_test(test_softmax_scale_fails),
        cmocka_unit_test(test_lse_offset_fails),
        cmocka_unit_test(test_rows_one_place_off_fail),
        cmocka_unit_test(test_neighbour_head_fails),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
