/*
 * test_hostile.c - hostile and extreme inputs at the library boundary that
 * tests/test_errors.c does not reach: negative and absurd extents and
 * strides (-1, INT64_MIN, INT64_MAX) in every view, fabricated stem_dims
 * handed to stem_select, NaN / Inf in F64 inputs and in float64 mode, NaN
 * in the first element, the STEM_MAX_ABS_INPUT boundary, NaN and 1e30 in
 * the gaps of a padded view (not part of the input, so no error), subnormals and negative zero, a single token with
 * d = 1 and d = 256 under GQA (the output must be v exactly), broadcast
 * views with stride 0 (the same bytes as the materialised tensor), and mask
 * bytes other than 0 / 1.
 *
 * Every error case checks the status code and that the caller's outputs
 * (filled with a sentinel byte) were not written.
 */
#include <float.h>
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

#define SENTINEL 0x5C

enum { HQ = 2, HKV = 1, N = 256, D = 8, B = 128 };

static int untouched(const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != SENTINEL)
            return 0;
    return 1;
}

static stem_params params_1t(void)
{
    stem_params p;
    assert_int_equal(stem_params_init(&p, STEM_PROFILE_ANGELSLIM), STEM_OK);
    p.threads = 1;
    return p;
}

/* Outputs of every entry point, sentinel-filled, sized for HQ x N x D. */
typedef struct outs {
    float logits[HQ * 2 * 2], lse[HQ * N];
    uint8_t mask[HQ * 2 * 2];
    float out[HQ * N * D];
} outs;

/*
 * Every call that takes q, k, v must answer `want` and write nothing
 * (stem_dims_get does not scan the data: it answers STEM_OK to
 * STEM_ERR_NONFINITE and STEM_ERR_RANGE inputs).
 * out_view: the output view to pass (over o->out).
 */
static void expect_everywhere(const stem_params *p, const stem_tensor *q,
                              const stem_tensor *k, const stem_tensor *v,
                              stem_tensor *out_view, stem_status want,
                              const char *what)
{
    static outs o;
    static uint8_t gmask[HQ * 2 * 2];
    memset(gmask, 1, sizeof gmask);
    stem_tensor ov = *out_view;
    ov.data = o.out;
    stem_status got[6];
    stem_dims dims;
    memset(&o, SENTINEL, sizeof o);
    memset(&dims, SENTINEL, sizeof dims);
    got[0] = stem_dims_get(p, q, k, v, 1, &dims);
    if ((want == STEM_ERR_NONFINITE || want == STEM_ERR_RANGE) && got[0] == STEM_OK)
        got[0] = want;
    else if (!untouched(&dims, sizeof dims))
        fail_msg("%s: stem_dims_get wrote its output on error", what);
    got[1] = stem_block_logits(p, q, k, v, o.logits);
    got[2] = stem_attention_dense(p, q, k, v, &ov, o.lse);
    got[3] = stem_attention_sparse(p, q, k, v, gmask, &ov, o.lse);
    got[4] = stem_prefill(p, q, k, v, &ov, o.lse, o.logits, o.mask);
    got[5] = stem_prefill(p, q, k, v, &ov, NULL, NULL, NULL);
    for (int i = 0; i < 6; i++)
        if (got[i] != want)
            fail_msg("%s: call %d answered '%s', expected '%s'", what, i,
                     stem_strerror(got[i]), stem_strerror(want));
    if (!untouched(&o, sizeof o))
        fail_msg("%s: an output was written on error", what);
}

/* q [HQ, N, D], k and v [HKV, N, D], F32, normal data. */
typedef struct qkv {
    tu_tensor q, k, v, out;
} qkv;

static void qkv_new(qkv *t, stem_dtype dt, tu_layout layout, uint64_t seed)
{
    t->q = tu_tensor_new(dt, layout, HQ, N, D);
    t->k = tu_tensor_new(dt, layout, HKV, N, D);
    t->v = tu_tensor_new(dt, layout, HKV, N, D);
    t->out = tu_tensor_new(STEM_F32, TU_HND, HQ, N, D);
    tu_fill_normal(&t->q.t, seed, 1.0);
    tu_fill_normal(&t->k.t, seed + 1, 1.0);
    tu_fill_normal(&t->v.t, seed + 2, 1.0);
}

static void qkv_free(qkv *t)
{
    tu_tensor_free(&t->q);
    tu_tensor_free(&t->k);
    tu_tensor_free(&t->v);
    tu_tensor_free(&t->out);
}

/* ------------------------------------------------ extents and strides */

static void test_absurd_extents(void **state)
{
    (void)state;
    stem_params p = params_1t();
    qkv t;
    qkv_new(&t, STEM_F32, TU_HND, 1);
    static const int64_t bad[3] = {-1, INT64_MIN, INT64_MAX};
    char what[96];
    for (int which = 0; which < 3; which++)
        for (int field = 0; field < 3; field++)
            for (int b = 0; b < 3; b++) {
                stem_tensor x[3] = {t.q.t, t.k.t, t.v.t};
                int64_t *f = field == 0 ? &x[which].heads
                           : field == 1 ? &x[which].tokens : &x[which].dim;
                *f = bad[b];
                /* which answers: the dim rule, the shape rule, or (for a
                 * consistent but huge count) the overflow rule */
                snprintf(what, sizeof what, "tensor %d field %d = %lld", which,
                         field, (long long)bad[b]);
                stem_status st = stem_dims_get(&p, &x[0], &x[1], &x[2], 1,
                                               &(stem_dims){0});
                assert_true(st == STEM_ERR_SHAPE || st == STEM_ERR_HEAD_DIM ||
                            st == STEM_ERR_OVERFLOW || st == STEM_ERR_GQA);
                expect_everywhere(&p, &x[0], &x[1], &x[2], &t.out.t, st, what);
            }
    /* negative and absurd strides; a one-head view never steps by its
     * head stride, so any non-negative head stride is valid there */
    static const int64_t strides[3] = {-1, INT64_MIN, INT64_MAX};
    for (int which = 0; which < 3; which++)
        for (int s = 0; s < 3; s++)
            for (int kind = 0; kind < 2; kind++) {
                stem_tensor x[3] = {t.q.t, t.k.t, t.v.t};
                if (kind == 0)
                    x[which].head_stride = strides[s];
                else
                    x[which].token_stride = strides[s];
                snprintf(what, sizeof what, "tensor %d %s stride %lld", which,
                         kind ? "token" : "head", (long long)strides[s]);
                stem_status st = stem_dims_get(&p, &x[0], &x[1], &x[2], 1,
                                               &(stem_dims){0});
                if (kind == 0 && strides[s] > 0 && x[which].heads == 1) {
                    assert_int_equal(st, STEM_OK);
                    continue;
                }
                assert_true(st == STEM_ERR_SHAPE || st == STEM_ERR_OVERFLOW);
                expect_everywhere(&p, &x[0], &x[1], &x[2], &t.out.t, st, what);
            }
    /* consistent views of 2^63 - 1 tokens over one stored row (stride 0):
     * the extents fit, the block counts do not */
    {
        stem_tensor x[3] = {t.q.t, t.k.t, t.v.t};
        for (int i = 0; i < 3; i++) {
            x[i].tokens = INT64_MAX;
            x[i].token_stride = 0;
            x[i].head_stride = 0;
        }
        stem_tensor o = t.out.t;
        o.tokens = INT64_MAX;
        o.token_stride = 0;
        expect_everywhere(&p, &x[0], &x[1], &x[2], &o, STEM_ERR_OVERFLOW,
                          "2^63-1 tokens, stride 0");
        for (int i = 0; i < 3; i++)
            x[i].tokens = INT64_MAX - 200;
        o.tokens = INT64_MAX - 200;
        expect_everywhere(&p, &x[0], &x[1], &x[2], &o, STEM_ERR_OVERFLOW,
                          "2^63-201 tokens, stride 0");
    }
    qkv_free(&t);
}

/* The output view alone is hostile: nothing is computed, nothing written. */
static void test_hostile_out_view(void **state)
{
    (void)state;
    stem_params p = params_1t();
    qkv t;
    qkv_new(&t, STEM_F32, TU_HND, 2);
    static float buf[HQ * N * D];
    static const struct {
        int64_t heads, tokens, dim, hs, ts;
        stem_status want;
    } cases[] = {
        {HQ, N, D, INT64_MAX, D, STEM_ERR_OVERFLOW},
        {HQ, N, D, N * D, INT64_MAX, STEM_ERR_OVERFLOW},
        {HQ, N, D, -1, D, STEM_ERR_SHAPE},
        {HQ, N, D, N * D, INT64_MIN, STEM_ERR_SHAPE},
        {-HQ, N, D, N * D, D, STEM_ERR_SHAPE},
        {HQ, INT64_MAX, D, N * D, D, STEM_ERR_SHAPE},
        {HQ, N, -D, N * D, D, STEM_ERR_SHAPE},
    };
    static uint8_t gmask[HQ * 2 * 2];
    memset(gmask, 1, sizeof gmask);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        stem_tensor o = {buf, STEM_F32, cases[i].heads, cases[i].tokens,
                         cases[i].dim, cases[i].hs, cases[i].ts};
        float lse[HQ * N];
        memset(buf, SENTINEL, sizeof buf);
        memset(lse, SENTINEL, sizeof lse);
        stem_status a = stem_attention_dense(&p, &t.q.t, &t.k.t, &t.v.t, &o, lse);
        stem_status b = stem_attention_sparse(&p, &t.q.t, &t.k.t, &t.v.t, gmask, &o, lse);
        stem_status c = stem_prefill(&p, &t.q.t, &t.k.t, &t.v.t, &o, lse, NULL, NULL);
        if (a != cases[i].want || b != cases[i].want || c != cases[i].want)
            fail_msg("out view case %zu: %s / %s / %s, expected %s", i,
                     stem_strerror(a), stem_strerror(b), stem_strerror(c),
                     stem_strerror(cases[i].want));
        assert_true(untouched(buf, sizeof buf));
        assert_true(untouched(lse, sizeof lse));
    }
    qkv_free(&t);
}

/* ------------------------------------------------ fabricated dims */

static void test_select_fabricated_dims(void **state)
{
    (void)state;
    stem_params p = params_1t();
    stem_dims good = {.hq = 2, .hkv = 1, .lq = 256, .lk = 256, .d = 8,
                      .offset = 0, .qb = 2, .kb = 2};
    float logits[2 * 2 * 2] = {0};
    uint8_t mask[sizeof logits / sizeof logits[0]];
    int64_t row_start[2 * 2 + 1];
    int32_t blocks[2 * 2 * 2];
    assert_int_equal(stem_select(&p, &good, logits, mask, row_start, blocks), STEM_OK);
    for (int i = 0; i < 18; i++) {
        stem_dims d = good;
        switch (i) {
        case 0: d.hq = -2; break;
        case 1: d.hq = INT64_MIN; break;
        case 2: d.hkv = 0; break;
        case 3: d.hkv = 3; break;                       /* 2 % 3 != 0 */
        case 4: d.lq = -256; break;
        case 5: d.lk = 100; break;                      /* lk < lq */
        case 6: d.offset = 128; break;                  /* != lk - lq */
        case 7: d.qb = 3; break;                        /* != ceil(lq / B) */
        case 8: d.kb = INT64_MAX; break;
        case 9: d.kb = -1; break;
        case 10: d.d = 0; break;
        case 11: d.qb = 0; d.lq = 0; break;
        case 12: d.lk = INT64_MAX; d.offset = INT64_MAX - 256;
                 d.kb = INT64_MAX / B + 1; break;       /* kb > INT32_MAX */
        case 13: d.hq = INT64_MAX; d.hkv = 1; break;    /* cells overflow */
        case 14: d.lk = 256 + 64; d.offset = 64; d.kb = 3; break; /* P % B */
        case 15: d.hq = (int64_t)1 << 62; break;
        case 16: d.lk = (int64_t)1 << 45; d.offset = d.lk - 256;
                 d.kb = d.lk / B; break;                /* kb > INT32_MAX */
        default: d.lq = INT64_MIN; break;
        }
        memset(mask, SENTINEL, sizeof mask);
        memset(row_start, SENTINEL, sizeof row_start);
        memset(blocks, SENTINEL, sizeof blocks);
        stem_status st = stem_select(&p, &d, logits, mask, row_start, blocks);
        if (st == STEM_OK)
            fail_msg("fabricated dims case %d accepted", i);
        assert_true(st == STEM_ERR_SHAPE || st == STEM_ERR_OVERFLOW ||
                    st == STEM_ERR_OFFSET || st == STEM_ERR_PARAM);
        assert_true(untouched(mask, sizeof mask));
        assert_true(untouched(row_start, sizeof row_start));
        assert_true(untouched(blocks, sizeof blocks));
    }
}

/* NaN and Inf handed to stem_select as logits: no crash, the structural
 * blocks still kept, the same answer twice. */
static void test_select_nonfinite_logits(void **state)
{
    (void)state;
    stem_params p = params_1t();
    /* Kb = 70: the budget (docs/ALGORITHM.md section 2: int(0.2 * 70 + 30)
     * = 44 at most) is smaller than the causal range of the late rows */
    enum { QB = 70, KB = 70 };
    stem_dims d = {.hq = 1, .hkv = 1, .lq = QB * B, .lk = KB * B, .d = 8,
                   .offset = 0, .qb = QB, .kb = KB};
    float *lg = malloc(QB * KB * sizeof *lg);
    uint8_t *m1 = malloc(QB * KB), *m2 = malloc(QB * KB);
    int32_t budget[KB];
    assert_true(lg && m1 && m2);
    assert_int_equal(stem_budget(&p, KB, budget), STEM_OK);
    for (int i = 0; i < QB; i++)
        for (int j = 0; j < KB; j++)
            lg[i * KB + j] = j > i ? -INFINITY
                           : (i + j) % 3 == 0 ? NAN
                           : (i + j) % 3 == 1 ? INFINITY : (float)(j - i);
    assert_int_equal(stem_select(&p, &d, lg, m1, NULL, NULL), STEM_OK);
    assert_int_equal(stem_select(&p, &d, lg, m2, NULL, NULL), STEM_OK);
    assert_memory_equal(m1, m2, QB * KB);
    for (int i = 0; i < QB; i++) {
        int picked = 0;
        for (int j = 0; j < KB; j++) {
            uint8_t m = m1[i * KB + j];
            int structural = j < p.sinks || (j <= i && j > i - p.window);
            assert_true(m <= 1);
            if (j > i)
                assert_int_equal(m, 0);
            else if (structural)
                assert_int_equal(m, 1);
            else
                picked += m;
        }
        /* beyond sinks and window, at most the row's budget */
        assert_true(picked <= budget[i]);
    }
    free(lg);
    free(m1);
    free(m2);
}

/* ------------------------------------------------ non-finite inputs */

static void test_nonfinite_f64_and_first(void **state)
{
    (void)state;
    static const double bad[3] = {NAN, INFINITY, -INFINITY};
    char what[80];
    for (int use_f64 = 0; use_f64 < 2; use_f64++)
        for (int which = 0; which < 3; which++)
            for (int b = 0; b < 3; b++)
                for (int first = 0; first < 2; first++) {
                    stem_params p = params_1t();
                    p.use_f64 = use_f64;
                    qkv t;
                    qkv_new(&t, STEM_F64, TU_NHD, 10 + (uint64_t)b);
                    tu_tensor *x = which == 0 ? &t.q : which == 1 ? &t.k : &t.v;
                    if (first)
                        tu_set(&x->t, 0, 0, 0, bad[b]);
                    else
                        tu_set(&x->t, x->t.heads - 1, N - 1, D - 1, bad[b]);
                    snprintf(what, sizeof what, "f64=%d tensor %d value %g %s",
                             use_f64, which, bad[b], first ? "first" : "last");
                    expect_everywhere(&p, &t.q.t, &t.k.t, &t.v.t, &t.out.t,
                                      STEM_ERR_NONFINITE, what);
                    qkv_free(&t);
                }
}

/* STEM_MAX_ABS_INPUT itself is accepted, the next double above it (and its
 * negative) refused with STEM_ERR_RANGE, in F64 and in float64 mode. */
static void test_range_boundary(void **state)
{
    (void)state;
    const double lim = STEM_MAX_ABS_INPUT;
    const double above = nextafter(lim, INFINITY);
    for (int use_f64 = 0; use_f64 < 2; use_f64++)
        for (int which = 0; which < 3; which++) {
            stem_params p = params_1t();
            p.use_f64 = use_f64;
            qkv t;
            qkv_new(&t, STEM_F64, TU_HND, 80 + (uint64_t)which);
            tu_tensor *x = which == 0 ? &t.q : which == 1 ? &t.k : &t.v;
            /* at the limit: accepted (the q.k of 1e15 * O(1) is fine) */
            tu_set(&x->t, 0, N / 2, 1, which == 2 ? lim : -lim);
            memset(t.out.buf, SENTINEL, t.out.nbytes);
            assert_int_equal(stem_attention_dense(&p, &t.q.t, &t.k.t, &t.v.t, &t.out.t, NULL),
                             STEM_OK);
            tu_set(&x->t, 0, N / 2, 1, which == 1 ? -above : above);
            char what[64];
            snprintf(what, sizeof what, "f64=%d tensor %d just above the limit", use_f64, which);
            expect_everywhere(&p, &t.q.t, &t.k.t, &t.v.t, &t.out.t, STEM_ERR_RANGE, what);
            /* NaN elsewhere wins over a value out of range */
            tu_set(&x->t, x->t.heads - 1, N - 1, 0, NAN);
            expect_everywhere(&p, &t.q.t, &t.k.t, &t.v.t, &t.out.t, STEM_ERR_NONFINITE, what);
            qkv_free(&t);
        }
}

/* NaN and 1e30 stored in the gaps of a padded view are not inputs. */
static void test_nan_in_gaps_ignored(void **state)
{
    (void)state;
    stem_params p = params_1t();
    qkv t;
    qkv_new(&t, STEM_F32, TU_PADDED, 30);
    qkv c;
    qkv_new(&c, STEM_F32, TU_HND, 30);
    /* the padded views hold the same values as the contiguous ones */
    tu_tensor *pv[3] = {&t.q, &t.k, &t.v}, *cv[3] = {&c.q, &c.k, &c.v};
    for (int i = 0; i < 3; i++) {
        const stem_tensor *x = &pv[i]->t;
        float *all = pv[i]->buf;
        size_t n = pv[i]->nbytes / sizeof(float);
        uint8_t *inview = calloc(n, 1);
        assert_non_null(inview);
        for (int64_t h = 0; h < x->heads; h++)
            for (int64_t tok = 0; tok < x->tokens; tok++)
                for (int64_t e = 0; e < x->dim; e++) {
                    size_t at = (size_t)(h * x->head_stride + tok * x->token_stride + e);
                    inview[at] = 1;
                    all[at] = (float)tu_get(&cv[i]->t, h, tok, e);
                }
        size_t gaps = 0;
        for (size_t j = 0; j < n; j++)
            if (!inview[j]) {
                all[j] = gaps % 2 ? NAN : 1e30f;
                gaps++;
            }
        assert_true(gaps > 0);
        free(inview);
    }
    assert_int_equal(stem_prefill(&p, &t.q.t, &t.k.t, &t.v.t, &t.out.t, NULL, NULL, NULL),
                     STEM_OK);
    assert_int_equal(stem_prefill(&p, &c.q.t, &c.k.t, &c.v.t, &c.out.t, NULL, NULL, NULL),
                     STEM_OK);
    assert_memory_equal(t.out.buf, c.out.buf, c.out.nbytes);
    qkv_free(&t);
    qkv_free(&c);
}

/* Subnormals and negative zeros are ordinary finite inputs. */
static void test_subnormal_and_negative_zero(void **state)
{
    (void)state;
    stem_params p = params_1t();
    static const stem_dtype dts[3] = {STEM_F32, STEM_F16, STEM_BF16};
    for (int i = 0; i < 3; i++) {
        qkv t;
        qkv_new(&t, dts[i], TU_HND, 40);
        double tiny = dts[i] == STEM_F16 ? 1e-7 : dts[i] == STEM_BF16 ? 1e-39 : 1e-44;
        for (int64_t tok = 0; tok < N; tok += 3)
            for (int64_t e = 0; e < D; e++) {
                tu_set(&t.q.t, 1, tok, e, (e % 2) ? tiny : -0.0);
                tu_set(&t.k.t, 0, tok, e, (e % 2) ? -tiny : -0.0);
                tu_set(&t.v.t, 0, tok, e, -0.0);
            }
        assert_true(tu_get(&t.q.t, 1, 0, 1) != 0.0);    /* really subnormal */
        float lse[HQ * N];
        assert_int_equal(stem_prefill(&p, &t.q.t, &t.k.t, &t.v.t, &t.out.t, lse, NULL, NULL),
                         STEM_OK);
        const float *o = t.out.buf;
        for (size_t j = 0; j < (size_t)HQ * N * D; j++)
            assert_true(isfinite(o[j]));
        for (size_t j = 0; j < (size_t)HQ * N; j++)
            assert_true(isfinite(lse[j]));
        qkv_free(&t);
    }
}

/* ------------------------------------------------ smallest problems */

/* One token: the softmax has one term, so out is v exactly and lse is the
 * scaled score, for d = 1 and d = 256, Hq = 4 over Hkv = 2. */
static void test_one_token_exact(void **state)
{
    (void)state;
    static const int ds[2] = {1, STEM_MAX_HEAD_DIM};
    for (int i = 0; i < 2; i++)
        for (int use_f64 = 0; use_f64 < 2; use_f64++) {
            int d = ds[i];
            stem_params p = params_1t();
            p.use_f64 = use_f64;
            tu_tensor q = tu_tensor_new(STEM_F32, TU_HND, 4, 1, d);
            tu_tensor k = tu_tensor_new(STEM_F32, TU_HND, 2, 1, d);
            tu_tensor v = tu_tensor_new(STEM_F32, TU_HND, 2, 1, d);
            tu_tensor o = tu_tensor_new(STEM_F32, TU_HND, 4, 1, d);
            tu_fill_normal(&q.t, 50 + (uint64_t)d, 1.0);
            tu_fill_normal(&k.t, 51 + (uint64_t)d, 1.0);
            tu_fill_normal(&v.t, 52 + (uint64_t)d, 3.0);
            float lse[4];
            for (int call = 0; call < 2; call++) {
                memset(o.buf, SENTINEL, o.nbytes);
                stem_status st = call == 0
                    ? stem_prefill(&p, &q.t, &k.t, &v.t, &o.t, lse, NULL, NULL)
                    : stem_attention_dense(&p, &q.t, &k.t, &v.t, &o.t, lse);
                assert_int_equal(st, STEM_OK);
                for (int h = 0; h < 4; h++) {
                    int g = h / 2;
                    double dot = 0.0;
                    for (int c = 0; c < d; c++) {
                        if (tu_get(&o.t, h, 0, c) != tu_get(&v.t, g, 0, c))
                            fail_msg("d=%d f64=%d call %d: out[%d][%d] != v", d,
                                     use_f64, call, h, c);
                        dot += tu_get(&q.t, h, 0, c) * tu_get(&k.t, g, 0, c);
                    }
                    double want = dot / sqrt((double)d);
                    assert_true(fabs(lse[h] - want) <= 1e-5 * (1.0 + fabs(want)));
                }
            }
            tu_tensor_free(&q);
            tu_tensor_free(&k);
            tu_tensor_free(&v);
            tu_tensor_free(&o);
        }
}

/* ------------------------------------------------ aliasing views */

/* k and v with token stride 0 (every token the same vector): the results
 * must be the bytes of the same call on the materialised tensors. */
static void test_broadcast_views(void **state)
{
    (void)state;
    stem_params p = params_1t();
    qkv t;
    qkv_new(&t, STEM_F32, TU_HND, 60);
    float row_k[D], row_v[D];
    for (int c = 0; c < D; c++) {
        row_k[c] = (float)tu_get(&t.k.t, 0, 0, c);
        row_v[c] = (float)tu_get(&t.v.t, 0, 0, c);
    }
    for (int64_t tok = 0; tok < N; tok++)
        for (int c = 0; c < D; c++) {
            tu_set(&t.k.t, 0, tok, c, row_k[c]);
            tu_set(&t.v.t, 0, tok, c, row_v[c]);
        }
    stem_tensor kb = stem_tensor_hnd(row_k, STEM_F32, HKV, N, D);
    stem_tensor vb = stem_tensor_hnd(row_v, STEM_F32, HKV, N, D);
    kb.token_stride = vb.token_stride = 0;
    kb.head_stride = vb.head_stride = 0;
    tu_tensor o2 = tu_tensor_new(STEM_F32, TU_HND, HQ, N, D);
    float l1[HQ * 2 * 2], l2[HQ * 2 * 2];
    uint8_t m1[HQ * 2 * 2], m2[HQ * 2 * 2];
    assert_int_equal(stem_prefill(&p, &t.q.t, &t.k.t, &t.v.t, &t.out.t, NULL, l1, m1), STEM_OK);
    assert_int_equal(stem_prefill(&p, &t.q.t, &kb, &vb, &o2.t, NULL, l2, m2), STEM_OK);
    assert_memory_equal(l1, l2, sizeof l1);
    assert_memory_equal(m1, m2, sizeof m1);
    assert_memory_equal(t.out.buf, o2.buf, o2.nbytes);
    tu_tensor_free(&o2);
    qkv_free(&t);
}

/* Mask bytes other than 0 and 1 count as selected (any non-zero byte). */
static void test_mask_bytes(void **state)
{
    (void)state;
    stem_params p = params_1t();
    qkv t;
    qkv_new(&t, STEM_F32, TU_HND, 70);
    uint8_t ones[HQ * 2 * 2] = {1, 0, 1, 1, 1, 0, 0, 1};
    uint8_t odd[HQ * 2 * 2] = {7, 0, 255, 2, 128, 0, 0, 9};
    tu_tensor o2 = tu_tensor_new(STEM_F32, TU_HND, HQ, N, D);
    assert_int_equal(stem_attention_sparse(&p, &t.q.t, &t.k.t, &t.v.t, ones, &t.out.t, NULL),
                     STEM_OK);
    assert_int_equal(stem_attention_sparse(&p, &t.q.t, &t.k.t, &t.v.t, odd, &o2.t, NULL),
                     STEM_OK);
    assert_memory_equal(t.out.buf, o2.buf, o2.nbytes);
    tu_tensor_free(&o2);
    qkv_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_absurd_extents),
        cmocka_unit_test(test_hostile_out_view),
        cmocka_unit_test(test_select_fabricated_dims),
        cmocka_unit_test(test_select_nonfinite_logits),
        cmocka_unit_test(test_nonfinite_f64_and_first),
        cmocka_unit_test(test_range_boundary),
        cmocka_unit_test(test_nan_in_gaps_ignored),
        cmocka_unit_test(test_subnormal_and_negative_zero),
        cmocka_unit_test(test_one_token_exact),
        cmocka_unit_test(test_broadcast_views),
        cmocka_unit_test(test_mask_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
