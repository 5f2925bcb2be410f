/*
 * test_errors.c - every stem_status error code reached by some call, and for
 * every error the caller's output buffers (pre-filled with a sentinel byte
 * pattern) left untouched.  STEM_ERR_NOMEM (under an address-space limit)
 * and STEM_ERR_ISA (STEM_ISA=bogus, chosen once per process) run in child
 * processes: this program re-executes itself with --child-nomem /
 * --child-isa.  Also: stem_last_error's detail (tensor and dims,
 * parameter and range, per thread), the thread cap (stem_threads), and a
 * prompt_blocks of 2^40 that no longer sizes memory.
 */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/testutil.h"
#include "stem.h"

#define SENTINEL 0xA7

/* A valid problem and sentinel-filled outputs for every entry point. */
typedef struct fixture {
    stem_params p;
    tu_tensor q, k, v, out;
    stem_dims dims;
    size_t nl;
    float *logits, *lse;
    uint8_t *mask, *gmask;      /* gmask: a valid input mask */
    int32_t *budget, *blocks;
    int64_t *row_start;
} fixture;

enum { HQ = 2, HKV = 1, LQ = 200, LK = 200, D = 16 };

static void fill_sentinel(fixture *f)
{
    memset(f->logits, SENTINEL, f->nl * sizeof *f->logits);
    memset(f->lse, SENTINEL, HQ * LQ * sizeof *f->lse);
    memset(f->mask, SENTINEL, f->nl);
    memset(f->budget, SENTINEL, 64 * sizeof *f->budget);
    memset(f->blocks, SENTINEL, f->nl * sizeof *f->blocks);
    memset(f->row_start, SENTINEL, (HQ * 2 + 1) * sizeof *f->row_start);
    memset(f->out.buf, SENTINEL, f->out.nbytes);
}

static int untouched(const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != SENTINEL)
            return 0;
    return 1;
}

static void assert_untouched(const fixture *f, const char *what)
{
    if (!untouched(f->logits, f->nl * sizeof *f->logits) ||
        !untouched(f->lse, HQ * LQ * sizeof *f->lse) || !untouched(f->mask, f->nl) ||
        !untouched(f->budget, 64 * sizeof *f->budget) ||
        !untouched(f->blocks, f->nl * sizeof *f->blocks) ||
        !untouched(f->row_start, (HQ * 2 + 1) * sizeof *f->row_start) ||
        !untouched(f->out.buf, f->out.nbytes))
        fail_msg("%s: an output buffer was written on error", what);
}

/* Check a status, then that nothing was written; refill for the next call. */
#define EXPECT(f, call, code)                                                        \
    do {                                                                             \
        fill_sentinel(f);                                                            \
        stem_status st_ = (call);                                                    \
        if (st_ != (code))                                                           \
            fail_msg("%s: expected %s, got %s", #call, stem_strerror(code),          \
                     stem_strerror(st_));                                            \
        assert_untouched(f, #call);                                                  \
    } while (0)

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    if (stem_params_init(&f->p, STEM_PROFILE_ANGELSLIM) != STEM_OK)
        return -1;
    f->q = tu_tensor_new(STEM_F32, TU_HND, HQ, LQ, D);
    f->k = tu_tensor_new(STEM_F32, TU_HND, HKV, LK, D);
    f->v = tu_tensor_new(STEM_F32, TU_HND, HKV, LK, D);
    f->out = tu_tensor_new(STEM_F32, TU_HND, HQ, LQ, D);
    tu_fill_normal(&f->q.t, 1, 1.0);
    tu_fill_normal(&f->k.t, 2, 1.0);
    tu_fill_normal(&f->v.t, 3, 1.0);
    if (stem_dims_get(&f->p, &f->q.t, &f->k.t, &f->v.t, 1, &f->dims) != STEM_OK)
        return -1;
    f->nl = (size_t)(HQ * 2 * 2);                       /* Qb = Kb = 2 */
    f->logits = malloc(f->nl * sizeof *f->logits);
    f->lse = malloc(HQ * LQ * sizeof *f->lse);
    f->mask = malloc(f->nl);
    f->gmask = calloc(f->nl, 1);
    f->budget = malloc(64 * sizeof *f->budget);
    f->blocks = malloc(f->nl * sizeof *f->blocks);
    f->row_start = malloc((HQ * 2 + 1) * sizeof *f->row_start);
    if (!f->logits || !f->lse || !f->mask || !f->gmask || !f->budget || !f->blocks ||
        !f->row_start)
        return -1;
    for (int h = 0; h < HQ; h++)                        /* the causal blocks */
        for (int I = 0; I < 2; I++)
            for (int J = 0; J <= I; J++)
                f->gmask[(h * 2 + I) * 2 + J] = 1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    tu_tensor_free(&f->q);
    tu_tensor_free(&f->k);
    tu_tensor_free(&f->v);
    tu_tensor_free(&f->out);
    free(f->logits);
    free(f->lse);
    free(f->mask);
    free(f->gmask);
    free(f->budget);
    free(f->blocks);
    free(f->row_start);
    free(f);
    return 0;
}

/* Every entry point that takes q, k, v must answer `code` for this input. */
static void expect_all(fixture *f, const stem_tensor *q, const stem_tensor *k,
                       const stem_tensor *v, stem_status code, int dense_too)
{
    const stem_params *p = &f->p;
    stem_dims dims;
    EXPECT(f, stem_block_logits(p, q, k, v, f->logits), code);
    EXPECT(f, stem_attention_sparse(p, q, k, v, f->gmask, &f->out.t, f->lse), code);
    EXPECT(f, stem_prefill(p, q, k, v, &f->out.t, f->lse, f->logits, f->mask), code);
    if (dense_too)
        EXPECT(f, stem_attention_dense(p, q, k, v, &f->out.t, f->lse), code);
    if (code != STEM_ERR_NONFINITE && code != STEM_ERR_RANGE) { /* data checks: not dims_get's */
        memset(&dims, SENTINEL, sizeof dims);
        stem_status st = stem_dims_get(p, q, k, v, 1, &dims);
        assert_int_equal(st, code);
        assert_true(untouched(&dims, sizeof dims));
    }
}

static void test_valid_baseline(void **state)
{
    fixture *f = *state;
    fill_sentinel(f);
    assert_int_equal(stem_prefill(&f->p, &f->q.t, &f->k.t, &f->v.t, &f->out.t, f->lse,
                                  f->logits, f->mask), STEM_OK);
    assert_false(untouched(f->out.buf, f->out.nbytes));
}

static void test_null(void **state)
{
    fixture *f = *state;
    const stem_params *p = &f->p;
    stem_tensor *q = &f->q.t, *k = &f->k.t, *v = &f->v.t, *o = &f->out.t;
    EXPECT(f, stem_block_logits(NULL, q, k, v, f->logits), STEM_ERR_NULL);
    EXPECT(f, stem_block_logits(p, NULL, k, v, f->logits), STEM_ERR_NULL);
    EXPECT(f, stem_block_logits(p, q, NULL, v, f->logits), STEM_ERR_NULL);
    EXPECT(f, stem_block_logits(p, q, k, NULL, f->logits), STEM_ERR_NULL);
    EXPECT(f, stem_block_logits(p, q, k, v, NULL), STEM_ERR_NULL);
    EXPECT(f, stem_budget(NULL, 2, f->budget), STEM_ERR_NULL);
    EXPECT(f, stem_budget(p, 2, NULL), STEM_ERR_NULL);
    EXPECT(f, stem_select(NULL, &f->dims, f->logits, f->mask, NULL, NULL), STEM_ERR_NULL);
    EXPECT(f, stem_select(p, NULL, f->logits, f->mask, NULL, NULL), STEM_ERR_NULL);
    EXPECT(f, stem_select(p, &f->dims, NULL, f->mask, NULL, NULL), STEM_ERR_NULL);
    EXPECT(f, stem_select(p, &f->dims, f->logits, f->mask, f->row_start, NULL),
           STEM_ERR_NULL);
    EXPECT(f, stem_select(p, &f->dims, f->logits, f->mask, NULL, f->blocks), STEM_ERR_NULL);
    EXPECT(f, stem_attention_sparse(p, q, k, v, NULL, o, f->lse), STEM_ERR_NULL);
    EXPECT(f, stem_attention_sparse(p, q, k, v, f->gmask, NULL, f->lse), STEM_ERR_NULL);
    EXPECT(f, stem_attention_dense(p, q, NULL, v, o, f->lse), STEM_ERR_NULL);
    EXPECT(f, stem_attention_dense(p, q, k, v, NULL, f->lse), STEM_ERR_NULL);
    EXPECT(f, stem_prefill(p, q, k, v, NULL, f->lse, f->logits, f->mask), STEM_ERR_NULL);
    EXPECT(f, stem_prefill(NULL, q, k, v, o, f->lse, f->logits, f->mask), STEM_ERR_NULL);
    stem_tensor qn = *q;
    qn.data = NULL;
    expect_all(f, &qn, k, v, STEM_ERR_NULL, 1);
    assert_int_equal(stem_params_init(NULL, STEM_PROFILE_ANGELSLIM), STEM_ERR_NULL);
    assert_int_equal(stem_params_validate(NULL), STEM_ERR_NULL);
    stem_profile pr = STEM_PROFILE_HPCOPS;
    assert_int_equal(stem_profile_from_name("paper", NULL), STEM_ERR_NULL);
    assert_int_equal(stem_profile_from_name(NULL, &pr), STEM_ERR_NULL);
    assert_int_equal(pr, STEM_PROFILE_HPCOPS);
    assert_int_equal(stem_dims_get(p, q, k, v, 1, NULL), STEM_ERR_NULL);
}

static void test_shape(void **state)
{
    fixture *f = *state;
    stem_tensor q = f->q.t, k = f->k.t, v = f->v.t;
    stem_tensor vs = v;
    vs.tokens = LK - 1;                         /* k and v disagree */
    expect_all(f, &q, &k, &vs, STEM_ERR_SHAPE, 1);
    stem_tensor kd = k;
    kd.dim = D / 2;                             /* q and k head dims differ */
    expect_all(f, &q, &kd, &v, STEM_ERR_SHAPE, 1);
    stem_tensor ql = q;
    ql.tokens = LK + 1;                         /* Lq > Lk */
    ql.head_stride = ql.tokens * D;
    tu_tensor big = tu_tensor_new(STEM_F32, TU_HND, HQ, LK + 1, D);
    ql.data = big.buf;
    expect_all(f, &ql, &k, &v, STEM_ERR_SHAPE, 1);
    tu_tensor_free(&big);
    stem_tensor q0 = q;
    q0.tokens = 0;                              /* no tokens */
    expect_all(f, &q0, &k, &v, STEM_ERR_SHAPE, 1);
    stem_tensor h0 = k;
    h0.heads = 0;                               /* no kv heads */
    stem_tensor v0 = v;
    v0.heads = 0;
    expect_all(f, &q, &h0, &v0, STEM_ERR_SHAPE, 1);
    stem_tensor vh = v;
    vh.heads = 2;                               /* k and v head counts differ */
    expect_all(f, &q, &k, &vh, STEM_ERR_SHAPE, 1);
    /* out of the wrong shape */
    tu_tensor o2 = tu_tensor_new(STEM_F32, TU_HND, HQ, LQ - 1, D);
    memset(o2.buf, SENTINEL, o2.nbytes);
    assert_int_equal(stem_attention_dense(&f->p, &q, &k, &v, &o2.t, NULL), STEM_ERR_SHAPE);
    assert_int_equal(stem_prefill(&f->p, &q, &k, &v, &o2.t, NULL, NULL, NULL), STEM_ERR_SHAPE);
    assert_true(untouched(o2.buf, o2.nbytes));
    tu_tensor_free(&o2);
    /* stem_select with inconsistent dims */
    stem_dims d = f->dims;
    d.hq = 0;
    EXPECT(f, stem_select(&f->p, &d, f->logits, f->mask, NULL, NULL), STEM_ERR_SHAPE);
    d = f->dims;
    d.kb = d.qb - 1;
    EXPECT(f, stem_select(&f->p, &d, f->logits, f->mask, NULL, NULL), STEM_ERR_SHAPE);
}

static void test_gqa(void **state)
{
    fixture *f = *state;
    tu_tensor q3 = tu_tensor_new(STEM_F32, TU_HND, 3, LQ, D);
    tu_tensor k2 = tu_tensor_new(STEM_F32, TU_HND, 2, LK, D);
    tu_tensor v2 = tu_tensor_new(STEM_F32, TU_HND, 2, LK, D);
    expect_all(f, &q3.t, &k2.t, &v2.t, STEM_ERR_GQA, 1);
    tu_tensor_free(&q3);
    tu_tensor_free(&k2);
    tu_tensor_free(&v2);
}

static void test_offset(void **state)
{
    fixture *f = *state;
    /* P = 100, not a multiple of B = 128: sparse modes refuse, dense runs */
    tu_tensor q = tu_tensor_new(STEM_F32, TU_HND, HQ, LK - 100, D);
    tu_fill_normal(&q.t, 9, 1.0);
    expect_all(f, &q.t, &f->k.t, &f->v.t, STEM_ERR_OFFSET, 0);
    tu_tensor out = tu_tensor_new(STEM_F32, TU_HND, HQ, LK - 100, D);
    assert_int_equal(stem_attention_dense(&f->p, &q.t, &f->k.t, &f->v.t, &out.t, NULL),
                     STEM_OK);
    stem_dims d;
    assert_int_equal(stem_dims_get(&f->p, &q.t, &f->k.t, &f->v.t, 0, &d), STEM_OK);
    assert_int_equal(d.offset, 100);
    tu_tensor_free(&q);
    tu_tensor_free(&out);
}

static void test_overflow(void **state)
{
    fixture *f = *state;
    /* Views whose sizes overflow int64 arithmetic; their data is a small
     * buffer that must never be read. */
    stem_tensor q = f->q.t, k = f->k.t, v = f->v.t;
    q.heads = k.heads = v.heads = (int64_t)1 << 31;
    q.tokens = k.tokens = v.tokens = (int64_t)1 << 40;
    q.token_stride = k.token_stride = v.token_stride = D;
    q.head_stride = k.head_stride = v.head_stride = D * ((int64_t)1 << 40);
    expect_all(f, &q, &k, &v, STEM_ERR_OVERFLOW, 1);
    /* tokens * heads fits, the block-logit count Hq * Qb * Kb does not */
    stem_tensor q2 = f->q.t, k2 = f->k.t, v2 = f->v.t;
    q2.heads = 1024;
    k2.heads = v2.heads = 1;
    q2.tokens = k2.tokens = v2.tokens = (int64_t)1 << 44;
    q2.head_stride = D * q2.tokens;
    k2.head_stride = v2.head_stride = D * k2.tokens;
    expect_all(f, &q2, &k2, &v2, STEM_ERR_OVERFLOW, 0);
}

static void test_dtype(void **state)
{
    fixture *f = *state;
    stem_tensor q = f->q.t;
    q.dtype = (stem_dtype)99;
    expect_all(f, &q, &f->k.t, &f->v.t, STEM_ERR_DTYPE, 1);
    q.dtype = STEM_DTYPE_COUNT;
    expect_all(f, &q, &f->k.t, &f->v.t, STEM_ERR_DTYPE, 1);
    /* out must be F32 or F64 */
    tu_tensor o = tu_tensor_new(STEM_BF16, TU_HND, HQ, LQ, D);
    memset(o.buf, SENTINEL, o.nbytes);
    assert_int_equal(stem_attention_dense(&f->p, &f->q.t, &f->k.t, &f->v.t, &o.t, NULL),
                     STEM_ERR_DTYPE);
    assert_int_equal(stem_attention_sparse(&f->p, &f->q.t, &f->k.t, &f->v.t, f->gmask, &o.t,
                                           NULL), STEM_ERR_DTYPE);
    assert_int_equal(stem_prefill(&f->p, &f->q.t, &f->k.t, &f->v.t, &o.t, NULL, NULL, NULL),
                     STEM_ERR_DTYPE);
    assert_true(untouched(o.buf, o.nbytes));
    tu_tensor_free(&o);
    assert_int_equal(stem_dtype_size((stem_dtype)99), 0);
    assert_string_equal(stem_dtype_name((stem_dtype)99), "?");
}

static void test_head_dim(void **state)
{
    fixture *f = *state;
    static const int64_t bad[2] = {0, STEM_MAX_HEAD_DIM + 1};
    for (int i = 0; i < 2; i++) {
        tu_tensor q = tu_tensor_new(STEM_F32, TU_HND, HQ, LQ, bad[i]);
        tu_tensor k = tu_tensor_new(STEM_F32, TU_HND, HKV, LK, bad[i]);
        tu_tensor v = tu_tensor_new(STEM_F32, TU_HND, HKV, LK, bad[i]);
        expect_all(f, &q.t, &k.t, &v.t, STEM_ERR_HEAD_DIM, 1);
        tu_tensor_free(&q);
        tu_tensor_free(&k);
        tu_tensor_free(&v);
    }
}

static void test_nonfinite(void **state)
{
    fixture *f = *state;
    static const double bad[3] = {NAN, INFINITY, -INFINITY};
    static const stem_dtype dts[3] = {STEM_F32, STEM_BF16, STEM_F16};
    for (int which = 0; which < 3; which++)
        for (int b = 0; b < 3; b++) {
            stem_dtype dt = dts[(which + b) % 3];
            tu_tensor t[3];
            t[0] = tu_tensor_new(dt, TU_NHD, HQ, LQ, D);
            t[1] = tu_tensor_new(dt, TU_NHD, HKV, LK, D);
            t[2] = tu_tensor_new(dt, TU_NHD, HKV, LK, D);
            for (int i = 0; i < 3; i++)
                tu_fill_normal(&t[i].t, 20 + (uint64_t)i, 1.0);
            /* the bad element late in the last head, so that a scan that
             * stops early misses it */
            tu_set(&t[which].t, t[which].t.heads - 1, 197, 3 + b, bad[b]);
            expect_all(f, &t[0].t, &t[1].t, &t[2].t, STEM_ERR_NONFINITE, 1);
            for (int i = 0; i < 3; i++)
                tu_tensor_free(&t[i]);
        }
}

static void test_range(void **state)
{
    fixture *f = *state;
    static const stem_dtype dts[3] = {STEM_F32, STEM_BF16, STEM_F64};
    for (int which = 0; which < 3; which++) {
        stem_dtype dt = dts[which];
        tu_tensor t[3];
        t[0] = tu_tensor_new(dt, TU_HND, HQ, LQ, D);
        t[1] = tu_tensor_new(dt, TU_HND, HKV, LK, D);
        t[2] = tu_tensor_new(dt, TU_HND, HKV, LK, D);
        for (int i = 0; i < 3; i++)
            tu_fill_normal(&t[i].t, 40 + (uint64_t)i, 1.0);
        tu_set(&t[which].t, t[which].t.heads - 1, 101, 2, -4e15);
        expect_all(f, &t[0].t, &t[1].t, &t[2].t, STEM_ERR_RANGE, 1);
        for (int i = 0; i < 3; i++)
            tu_tensor_free(&t[i]);
    }
}

/* With the largest blocks the sparse modes' bound drops below 1e15:
 * B 4096, s 1, d 256 gives sqrt(FLT_MAX / 1024) / 4096 ~ 1.4e14. */
static void test_range_scoring_bound(void **state)
{
    (void)state;
    stem_params p;
    stem_params_init(&p, STEM_PROFILE_ANGELSLIM);
    p.block = 4096;
    p.stride = 1;
    tu_tensor t[3];
    for (int i = 0; i < 3; i++) {
        t[i] = tu_tensor_new(STEM_F32, TU_HND, 1, 4096, 256);
        tu_fill_normal(&t[i].t, 60 + (uint64_t)i, 1.0);
    }
    tu_set(&t[1].t, 0, 17, 5, 5e14);
    float *logits = malloc(sizeof(float));
    assert_non_null(logits);
    logits[0] = 7.0f;
    assert_int_equal(stem_block_logits(&p, &t[0].t, &t[1].t, &t[2].t, logits), STEM_ERR_RANGE);
    assert_true(logits[0] == 7.0f);
    /* dense attention has no block sums: only STEM_MAX_ABS_INPUT applies */
    tu_tensor o = tu_tensor_new(STEM_F32, TU_HND, 1, 4096, 256);
    tu_set(&t[1].t, 0, 17, 5, 1.0);
    tu_set(&t[0].t, 0, 3, 5, 5e14);
    assert_int_equal(stem_attention_dense(&p, &t[0].t, &t[1].t, &t[2].t, &o.t, NULL), STEM_OK);
    for (int i = 0; i < 3; i++)
        tu_tensor_free(&t[i]);
    tu_tensor_free(&o);
    free(logits);
}

static void test_param(void **state)
{
    fixture *f = *state;
    stem_tensor *q = &f->q.t, *k = &f->k.t, *v = &f->v.t;
    for (int i = 0; i < 15; i++) {
        stem_params p = f->p;
        switch (i) {
        case 0: p.block = 0; break;
        case 1: p.stride = 0; break;
        case 2: p.stride = 7; break;                /* does not divide 128 */
        case 3: p.alpha = NAN; break;
        case 4: p.alpha = 1.5; break;
        case 5: p.keep_ratio = -0.1; break;
        case 6: p.use_f64 = 2; break;
        case 7: p.threads = -1; break;
        case 8: p.sinks = -1; break;
        case 9: p.window = -1; break;
        case 10: p.value_rule = (stem_value_rule)99; break;
        case 11: p.budget_rule = (stem_budget_rule)99; break;
        case 12: p.norm = 0.0; break;
        case 13: p.compute = STEM_COMPUTE_COUNT; break;
        default: p.profile = (stem_profile)99; break;
        }
        assert_int_equal(stem_params_validate(&p), STEM_ERR_PARAM);
        EXPECT(f, stem_block_logits(&p, q, k, v, f->logits), STEM_ERR_PARAM);
        EXPECT(f, stem_budget(&p, 2, f->budget), STEM_ERR_PARAM);
        EXPECT(f, stem_select(&p, &f->dims, f->logits, f->mask, f->row_start, f->blocks),
               STEM_ERR_PARAM);
        EXPECT(f, stem_attention_sparse(&p, q, k, v, f->gmask, &f->out.t, f->lse),
               STEM_ERR_PARAM);
        EXPECT(f, stem_attention_dense(&p, q, k, v, &f->out.t, f->lse), STEM_ERR_PARAM);
        EXPECT(f, stem_prefill(&p, q, k, v, &f->out.t, f->lse, f->logits, f->mask),
               STEM_ERR_PARAM);
    }
    EXPECT(f, stem_budget(&f->p, 0, f->budget), STEM_ERR_PARAM);
    EXPECT(f, stem_budget(&f->p, -3, f->budget), STEM_ERR_PARAM);
    stem_params p;
    memset(&p, SENTINEL, sizeof p);
    assert_int_equal(stem_params_init(&p, (stem_profile)99), STEM_ERR_PARAM);
    assert_true(untouched(&p, sizeof p));
    stem_profile pr = STEM_PROFILE_PAPER;
    assert_int_equal(stem_profile_from_name("bogus", &pr), STEM_ERR_PARAM);
    assert_int_equal(pr, STEM_PROFILE_PAPER);
}

static void test_mask(void **state)
{
    fixture *f = *state;
    uint8_t *m = malloc(f->nl);
    assert_non_null(m);
    memcpy(m, f->gmask, f->nl);
    m[0] = 0;                                   /* head 0, row 0: nothing at all */
    EXPECT(f, stem_attention_sparse(&f->p, &f->q.t, &f->k.t, &f->v.t, m, &f->out.t, f->lse),
           STEM_ERR_MASK);
    memcpy(m, f->gmask, f->nl);
    m[(1 * 2 + 1) * 2 + 0] = 0;                /* head 1, row 1: only block 1 ... */
    m[(1 * 2 + 1) * 2 + 1] = 0;                /* ... and not even that */
    EXPECT(f, stem_attention_sparse(&f->p, &f->q.t, &f->k.t, &f->v.t, m, &f->out.t, f->lse),
           STEM_ERR_MASK);
    /* a row without its diagonal but with an earlier block is valid */
    memcpy(m, f->gmask, f->nl);
    m[(1 * 2 + 1) * 2 + 1] = 0;
    m[(1 * 2 + 1) * 2 + 0] = 1;
    assert_int_equal(stem_attention_sparse(&f->p, &f->q.t, &f->k.t, &f->v.t, m, &f->out.t,
                                           f->lse), STEM_OK);
    free(m);
}

static void test_strerror(void **state)
{
    (void)state;
    const char *seen[STEM_STATUS_COUNT];
    for (int i = 0; i < STEM_STATUS_COUNT; i++) {
        seen[i] = stem_strerror((stem_status)i);
        assert_non_null(seen[i]);
        assert_true(strlen(seen[i]) > 0);
        for (int j = 0; j < i; j++)
            if (strcmp(seen[i], seen[j]) == 0)
                fail_msg("stem_strerror(%d) == stem_strerror(%d): \"%s\"", i, j, seen[i]);
    }
    assert_string_equal(stem_strerror(STEM_STATUS_COUNT), "unknown stem status");
    assert_string_equal(stem_strerror((stem_status)-1), "unknown stem status");
}

/* ----------------------------------------------------- child processes */

static const char *self_path;

/* Run this program with one argument and an optional STEM_ISA value; the
 * child's exit status (or -signal). */
static int run_child(const char *arg, const char *isa)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (isa)
            setenv("STEM_ISA", isa, 1);
        execl("/proc/self/exe", self_path, arg, (char *)NULL);
        execl(self_path, self_path, arg, (char *)NULL);
        _exit(127);
    }
    int ws = 0;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    if (WIFSIGNALED(ws))
        return -WTERMSIG(ws);
    return WEXITSTATUS(ws);
}

/* Child: a prefill whose workspace (the Hq*Qb*Kb logits and mask, ~84 MB)
 * cannot be allocated under the address-space limit.  Exit 0 if it answered
 * STEM_ERR_NOMEM and left out untouched. */
static int child_nomem(void)
{
    alarm(60);
    stem_params p;
    stem_params_init(&p, STEM_PROFILE_ANGELSLIM);
    p.threads = 1;
    const int64_t hq = 64, n = 65536, d = 1;
    tu_tensor q = tu_tensor_new(STEM_F32, TU_HND, hq, n, d);
    tu_tensor k = tu_tensor_new(STEM_F32, TU_HND, 1, n, d);
    tu_tensor v = tu_tensor_new(STEM_F32, TU_HND, 1, n, d);
    tu_tensor o = tu_tensor_new(STEM_F32, TU_HND, hq, n, d);
    memset(o.buf, SENTINEL, o.nbytes);
    long pages = 0, rss = 0;
    FILE *fp = fopen("/proc/self/statm", "r");
    if (!fp || fscanf(fp, "%ld %ld", &pages, &rss) != 2)
        return 3;
    fclose(fp);
    struct rlimit rl;
    rl.rlim_cur = rl.rlim_max = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + (32u << 20);
    if (setrlimit(RLIMIT_AS, &rl) != 0)
        return 4;
    stem_status st = stem_prefill(&p, &q.t, &k.t, &v.t, &o.t, NULL, NULL, NULL);
    if (st != STEM_ERR_NOMEM) {
        fprintf(stderr, "child-nomem: got %s\n", stem_strerror(st));
        return 5;
    }
    if (!untouched(o.buf, o.nbytes))
        return 6;
    return 0;
}

/* Child under STEM_ISA=bogus: every computing call answers STEM_ERR_ISA and
 * writes nothing; stem_isa_active leaves *isa alone. */
static int child_isa(void)
{
    stem_isa isa = (stem_isa)77;
    if (stem_isa_active(&isa) != STEM_ERR_ISA || isa != (stem_isa)77)
        return 3;
    void *st = NULL;
    int rc = setup(&st);
    if (rc != 0)
        return 4;
    fixture *f = st;
    fill_sentinel(f);
    stem_status a = stem_block_logits(&f->p, &f->q.t, &f->k.t, &f->v.t, f->logits);
    stem_status b = stem_attention_dense(&f->p, &f->q.t, &f->k.t, &f->v.t, &f->out.t, f->lse);
    stem_status c = stem_prefill(&f->p, &f->q.t, &f->k.t, &f->v.t, &f->out.t, f->lse,
                                 f->logits, f->mask);
    stem_status d = stem_attention_sparse(&f->p, &f->q.t, &f->k.t, &f->v.t, f->gmask,
                                          &f->out.t, f->lse);
    if (a != STEM_ERR_ISA || b != STEM_ERR_ISA || c != STEM_ERR_ISA || d != STEM_ERR_ISA) {
        fprintf(stderr, "child-isa: got %s %s %s %s\n", stem_strerror(a), stem_strerror(b),
                stem_strerror(c), stem_strerror(d));
        return 5;
    }
    if (!untouched(f->logits, f->nl * sizeof *f->logits) || !untouched(f->mask, f->nl) ||
        !untouched(f->out.buf, f->out.nbytes) || !untouched(f->lse, HQ * LQ * sizeof(float)))
        return 6;
    teardown(&st);
    return 0;
}

static void test_nomem(void **state)
{
    (void)state;
#if defined(__SANITIZE_ADDRESS__)
    /* AddressSanitizer's own mappings fail under an address-space limit. */
    skip();
#endif
    int rc = run_child("--child-nomem", NULL);
    if (rc != 0)
        fail_msg("NOMEM child exited with %d", rc);
}

static void test_isa(void **state)
{
    (void)state;
    int rc = run_child("--child-isa", "bogus");
    if (rc != 0)
        fail_msg("STEM_ISA=bogus child exited with %d", rc);
#if defined(__x86_64__)
    rc = run_child("--child-isa", "neon");       /* known, but not on this CPU */
    if (rc != 0)
        fail_msg("STEM_ISA=neon child exited with %d", rc);
#endif
}

/* stem_last_error names the tensors and their dims, the parameter and its
 * range; a validating call that succeeds empties it; it is per thread. */
static void test_detail(void **state)
{
    fixture *f = *state;
    stem_dims dims;
    tu_tensor kshort = tu_tensor_new(STEM_F32, TU_HND, HKV, 100, D);
    tu_tensor vshort = tu_tensor_new(STEM_F32, TU_HND, HKV, 100, D);
    assert_int_equal(stem_dims_get(&f->p, &f->q.t, &kshort.t, &vshort.t, 0, &dims),
                     STEM_ERR_SHAPE);
    assert_string_equal(stem_last_error(),
                        "q [2 heads, 200 tokens, 16 dim] has more tokens than "
                        "k [1 heads, 100 tokens, 16 dim]: the queries are the "
                        "last Lq <= Lk positions");
    assert_int_equal(stem_dims_get(&f->p, &f->q.t, &f->k.t, &vshort.t, 0, &dims),
                     STEM_ERR_SHAPE);
    assert_non_null(strstr(stem_last_error(), "k [1 heads, 200 tokens, 16 dim] "
                                              "and v [1 heads, 100 tokens, 16 dim] differ"));
    assert_int_equal(stem_dims_get(&f->p, &f->q.t, &f->k.t, &f->v.t, 1, &dims), STEM_OK);
    assert_string_equal(stem_last_error(), "");

    stem_params p = f->p;
    p.alpha = 2.0;
    assert_int_equal(stem_params_validate(&p), STEM_ERR_PARAM);
    assert_string_equal(stem_last_error(), "alpha = 2: must be in 0..1");
    p = f->p;
    p.stride = 7;
    assert_int_equal(stem_params_validate(&p), STEM_ERR_PARAM);
    assert_string_equal(stem_last_error(), "stride = 7: must divide block = 128");
    p = f->p;
    p.threads = 5000;
    assert_int_equal(stem_prefill(&p, &f->q.t, &f->k.t, &f->v.t, &f->out.t, NULL,
                                  NULL, NULL), STEM_ERR_PARAM);
    assert_string_equal(stem_last_error(), "threads = 5000: must be in 0..4096");

    /* NaN named by tensor */
    float keep = ((float *)f->v.buf)[5];
    ((float *)f->v.buf)[5] = NAN;
    assert_int_equal(stem_prefill(&f->p, &f->q.t, &f->k.t, &f->v.t, &f->out.t, NULL,
                                  NULL, NULL), STEM_ERR_NONFINITE);
    assert_string_equal(stem_last_error(), "v holds NaN or Inf");
    ((float *)f->v.buf)[5] = keep;

    /* an output view whose rows overlap (a transposed view) is refused */
    stem_tensor o = f->out.t;
    o.token_stride = 1;
    assert_int_equal(stem_attention_dense(&f->p, &f->q.t, &f->k.t, &f->v.t, &o, NULL),
                     STEM_ERR_SHAPE);
    assert_non_null(strstr(stem_last_error(), "rows overlap"));
    tu_tensor_free(&kshort);
    tu_tensor_free(&vshort);
}

/* prompt_blocks no longer sizes memory: 2^40 (4 TiB of budget before)
 * runs, with the mask of any other prompt_blocks >= Kb that keeps every
 * causal block.  Its budget entries, k = 0.1 n + 30 > INT32_MAX, stay
 * positive (INT32_MAX, not a wrapped int32) in every budget rule. */
static void test_prompt_blocks_huge(void **state)
{
    fixture *f = *state;
    stem_params p = f->p;
    p.prompt_blocks = (int64_t)1 << 40;
    assert_int_equal(stem_prefill(&p, &f->q.t, &f->k.t, &f->v.t, &f->out.t, f->lse,
                                  f->logits, f->mask), STEM_OK);
    for (int rule = 0; rule <= STEM_BUDGET_PAPER_LINEAR; rule++) {
        stem_explain_summary sum;
        stem_explain_block blk[2];
        p.budget_rule = (stem_budget_rule)rule;
        for (int64_t I = 0; I < 2; I++) {
            assert_int_equal(stem_explain_row(&p, &f->dims, f->logits, 1, I,
                                              &sum, blk), STEM_OK);
            assert_true(sum.budget >= 1);
            assert_int_equal(sum.kept, I + 1);  /* every causal block */
        }
    }
    p.budget_rule = f->p.budget_rule;
    int32_t b[2];
    p.prompt_blocks = 0;
    assert_int_equal(stem_budget(&p, 2, b), STEM_OK);
}

/* The thread cap: any request gives 1 <= used <= STEM_THREAD_HARD_CAP and
 * a reason; the parameter's range is checked. */
static void test_threads_cap(void **state)
{
    (void)state;
    stem_params p;
    stem_thread_info ti;
    stem_params_init(&p, STEM_PROFILE_ANGELSLIM);
    assert_int_equal(stem_threads(&p, NULL), STEM_ERR_NULL);
    p.threads = 4097;
    assert_int_equal(stem_threads(&p, &ti), STEM_ERR_PARAM);
    int req[] = {0, 1, 3, 4096};
    for (size_t i = 0; i < sizeof(req) / sizeof(req[0]); i++) {
        p.threads = req[i];
        assert_int_equal(stem_threads(&p, &ti), STEM_OK);
        assert_true(ti.used >= 1 && ti.used <= STEM_THREAD_HARD_CAP);
        assert_true(ti.used <= ti.requested);
        assert_non_null(ti.limited_by);
        if (req[i] > 0)
            assert_int_equal(ti.requested, req[i]);
        if (ti.cpus > 0)
            assert_true(ti.used <= 8 * ti.cpus);
    }
    assert_int_equal(stem_threads(NULL, &ti), STEM_OK);
}

static void *other_thread(void *arg)
{
    stem_params p;
    stem_params_init(&p, STEM_PROFILE_ANGELSLIM);
    p.keep_ratio = -1.0;
    *(int *)arg = stem_params_validate(&p) == STEM_ERR_PARAM &&
                  strcmp(stem_last_error(), "keep_ratio = -1: must be in 0..1") == 0;
    return NULL;
}

/* The detail is per thread: another thread's error leaves this one's. */
static void test_detail_per_thread(void **state)
{
    (void)state;
    stem_params p;
    stem_params_init(&p, STEM_PROFILE_ANGELSLIM);
    p.window = -2;
    assert_int_equal(stem_params_validate(&p), STEM_ERR_PARAM);
    pthread_t t;
    int ok = 0;
    assert_int_equal(pthread_create(&t, NULL, other_thread, &ok), 0);
    pthread_join(t, NULL);
    assert_true(ok);
    assert_string_equal(stem_last_error(), "window = -2: must be in 0..2147483647");
}

int main(int argc, char **argv)
{
    self_path = argv[0];
    if (argc == 2 && strcmp(argv[1], "--child-nomem") == 0)
        return child_nomem();
    if (argc == 2 && strcmp(argv[1], "--child-isa") == 0)
        return child_isa();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nomem),
        cmocka_unit_test(test_isa),
        cmocka_unit_test(test_strerror),
        cmocka_unit_test_setup_teardown(test_valid_baseline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_null, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shape, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gqa, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overflow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dtype, setup, teardown),
        cmocka_unit_test_setup_teardown(test_head_dim, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nonfinite, setup, teardown),
        cmocka_unit_test_setup_teardown(test_range, setup, teardown),
        cmocka_unit_test(test_range_scoring_bound),
        cmocka_unit_test_setup_teardown(test_param, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mask, setup, teardown),
        cmocka_unit_test_setup_teardown(test_detail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prompt_blocks_huge, setup, teardown),
        cmocka_unit_test(test_threads_cap),
        cmocka_unit_test(test_detail_per_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
