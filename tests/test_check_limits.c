/*
 * test_check_limits.c - the row limits of stem_check are the modeled
 * rounding of the declared arithmetic, not its worst case
 * (src/check/check_bound.c, check_attn.c; docs/ALGORITHM.md section 5).
 *
 * A small synthetic case (BF16 q/k/v N(0, 1), Hq 1, 1024 tokens, d 64,
 * blocks of 64, the angelslim profile without its value term, whose
 * bound is a worst case in either limit); the "GPU" is the library's own
 * output:
 *   - logits: one entry moved by an amount between its modeled limit and
 *     its worst-case bound fails there, and the report says the errors fit
 *     the worst case of the declared scoring; half its limit passes;
 *   - out: rounded to bf16 with every other place declared float32, the
 *     limit is the stored elements' rounding: the worst row sits above
 *     0.65 of it (0.73; u_out ||O|| would put it near 0.6), and a row
 *     scaled by 1 + 2^-6 fails.
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

#define HQ 1
#define L 1024
#define D 64
#define B 64
#define QB (L / B)

typedef struct lim_case {
    stem_params p;
    tu_tensor q, k, v;
    float *logits, *out;
    uint8_t *mask;
} lim_case;

static void case_make(lim_case *c)
{
    memset(c, 0, sizeof(*c));
    assert_int_equal(stem_params_init(&c->p, STEM_PROFILE_ANGELSLIM), STEM_OK);
    c->p.block = B;
    c->p.value_weight = 0; /* the QK term alone: its limit is all model */
    c->q = tu_tensor_new(STEM_BF16, TU_HND, HQ, L, D);
    c->k = tu_tensor_new(STEM_BF16, TU_HND, HQ, L, D);
    c->v = tu_tensor_new(STEM_BF16, TU_HND, HQ, L, D);
    tu_fill_normal(&c->q.t, 301, 1.0);
    tu_fill_normal(&c->k.t, 302, 1.0);
    tu_fill_normal(&c->v.t, 303, 1.0);
    c->logits = malloc((size_t)HQ * QB * QB * sizeof(float));
    c->mask = malloc((size_t)HQ * QB * QB);
    c->out = malloc((size_t)HQ * L * D * sizeof(float));
    assert_true(c->logits && c->mask && c->out);
    stem_tensor o = stem_tensor_hnd(c->out, STEM_F32, HQ, L, D);
    assert_int_equal(stem_prefill(&c->p, &c->q.t, &c->k.t, &c->v.t, &o, NULL,
                                  c->logits, c->mask), STEM_OK);
}

static void case_free(lim_case *c)
{
    tu_tensor_free(&c->q), tu_tensor_free(&c->k), tu_tensor_free(&c->v);
    free(c->logits), free(c->mask), free(c->out);
}

/* Judge GPU logits (F32) alone under the angelslim arithmetic in bf16. */
static void judge_logits(const lim_case *c, const float *gl, stem_check_report *r)
{
    stem_tensor tl = stem_tensor_hnd((void *)gl, STEM_F32, HQ, QB, QB);
    stem_check_gpu g = {&tl, NULL, NULL, NULL};
    stem_check_options o;
    assert_int_equal(stem_check_options_init(&o, STEM_PREC_BF16), STEM_OK);
    assert_int_equal(stem_check_options_arith(&o, STEM_ARITH_ANGELSLIM), STEM_OK);
    o.logit_store = STEM_PREC_FP32;
    assert_int_equal(stem_check(&c->p, &c->q.t, &c->k.t, &c->v.t, &g, &o, r),
                     STEM_OK);
}

/* An entry moved past its modeled limit but within its worst case fails
 * at that entry, and the report names the worst case it fits. */
static void test_logit_limit_is_modeled(void **state)
{
    (void)state;
    lim_case c;
    case_make(&c);
    const size_t n = (size_t)HQ * QB * QB;
    const int64_t I = QB - 2, J = QB / 2;
    const size_t at = (size_t)I * QB + J;
    float *gl = malloc(n * sizeof(float));
    assert_non_null(gl);
    stem_check_report r;

    /* the reference itself passes */
    memcpy(gl, c.logits, n * sizeof(float));
    judge_logits(&c, gl, &r);
    assert_int_equal(r.stage[STEM_STAGE_LOGITS].verdict, STEM_CHECK_PASS);
    stem_check_report_free(&r);

    /* a large offset: its item gives the modeled limit, alt_ratio the
     * worst case (this entry's error dominates every other) */
    gl[at] = c.logits[at] + 1.0f;
    judge_logits(&c, gl, &r);
    const stem_check_stage_result *s = &r.stage[STEM_STAGE_LOGITS];
    assert_int_equal(s->verdict, STEM_CHECK_FAIL);
    assert_int_equal(s->faults, 1);
    assert_int_equal(s->items[0].kind, STEM_KIND_LOGIT_ERROR);
    double lim = s->items[0].limit, err = s->items[0].err;
    double worst = err / r.alt_ratio[STEM_STAGE_LOGITS];
    print_message("entry (%lld, %lld): modeled limit %.3g, worst case %.3g\n",
                  (long long)I, (long long)J, lim, worst);
    assert_true(lim > 0);
    /* the model is tighter than the worst case by a clear margin */
    assert_true(worst > 1.5 * lim);
    stem_check_report_free(&r);

    /* between the two: a fault, and the note of the worst case */
    gl[at] = (float)((double)c.logits[at] + 0.5 * (lim + worst));
    judge_logits(&c, gl, &r);
    s = &r.stage[STEM_STAGE_LOGITS];
    assert_int_equal(s->verdict, STEM_CHECK_FAIL);
    assert_int_equal(s->items[0].qblock, I);
    assert_int_equal(s->items[0].kblock, J);
    assert_true(r.alt_ratio[STEM_STAGE_LOGITS] < 1);
    assert_non_null(strstr(r.arith_note, "fit its worst case"));
    stem_check_report_free(&r);

    /* half the limit passes */
    gl[at] = (float)((double)c.logits[at] + 0.5 * lim);
    judge_logits(&c, gl, &r);
    assert_int_equal(r.stage[STEM_STAGE_LOGITS].verdict, STEM_CHECK_PASS);
    stem_check_report_free(&r);
    free(gl);
    case_free(&c);
}

/* Judge out (BF16) under the reference's mask, every place float32 but the
 * stored out. */
static void judge_out(const lim_case *c, const uint16_t *go, stem_check_report *r)
{
    stem_tensor tm = stem_tensor_hnd(c->mask, STEM_U8, HQ, QB, QB);
    stem_tensor to = stem_tensor_hnd((void *)go, STEM_BF16, HQ, L, D);
    stem_check_gpu g = {NULL, &tm, &to, NULL};
    stem_check_options o;
    assert_int_equal(stem_check_options_init(&o, STEM_PREC_BF16), STEM_OK);
    assert_int_equal(stem_check_options_arith(&o, STEM_ARITH_FLASH), STEM_OK);
    o.attn_prec = o.attn_score_prec = STEM_PREC_FP32;
    o.out_store = STEM_PREC_BF16;
    o.dense_test = 0;
    assert_int_equal(stem_check(&c->p, &c->q.t, &c->k.t, &c->v.t, &g, &o, r),
                     STEM_OK);
}

static void test_out_storage_limit_is_modeled(void **state)
{
    (void)state;
    lim_case c;
    case_make(&c);
    const size_t n = (size_t)HQ * L * D;
    uint16_t *go = malloc(n * sizeof(uint16_t));
    assert_non_null(go);
    for (size_t i = 0; i < n; i++)
        go[i] = tu_f64_to_bf16(c.out[i]);
    stem_check_report r;
    judge_out(&c, go, &r);
    const stem_check_stage_result *s = &r.stage[STEM_STAGE_OUT];
    print_message("bf16 storage alone: worst row at %.3f of its limit\n",
                  s->worst_ratio);
    assert_int_equal(s->verdict, STEM_CHECK_PASS);
    assert_true(s->worst_ratio > 0.65 && s->worst_ratio < 1);
    stem_check_report_free(&r);

    /* one row 1 + 2^-6 larger: well beyond the rounding of its elements */
    const int64_t row = L - 100;
    for (int64_t e = 0; e < D; e++)
        go[row * D + e] = tu_f64_to_bf16(c.out[row * D + e] * (1 + 0x1p-6));
    judge_out(&c, go, &r);
    s = &r.stage[STEM_STAGE_OUT];
    assert_int_equal(s->verdict, STEM_CHECK_FAIL);
    int found = 0;
    for (int64_t i = 0; i < s->n_items; i++)
        found |= s->items[i].kind == STEM_KIND_OUT_ROW && s->items[i].row == row;
    assert_true(found);
    stem_check_report_free(&r);
    free(go);
    case_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_logit_limit_is_modeled),
        cmocka_unit_test(test_out_storage_limit_is_modeled),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
