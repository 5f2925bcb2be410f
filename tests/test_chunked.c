/*
 * test_chunked.c - what a chunked prefill guarantees (docs/ALGORITHM.md
 * section 3, "Chunked prefill"), tested for EVERY chunk of a prompt, with
 * KV views into a larger cache (head stride = capacity) and both q layouts:
 *
 *   1. each chunk's logits rows, mask rows, outputs and lse equal, byte for
 *      byte, the rows of a one-shot prefill of the prefix that ends with
 *      the chunk (the value-norm statistics see the same keys);
 *   2. the chunk that completes the prompt equals the rows of the one-shot
 *      prefill of the whole prompt;
 *   3. with the value term off (and prompt_blocks set to the whole prompt),
 *      every chunk equals the rows of the whole prompt's one-shot prefill;
 *   and, so that the guarantee is not read as more than it is: with the
 *   value term on, an early chunk's logits differ from the whole prompt's.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "stem.h"

enum {
    HQ = 4, HKV = 2, D = 32,
    B = 16,             /* block: 64 key blocks, a decaying budget */
    N = 1024,           /* the prompt */
    CH = 256,           /* the chunk: 4 chunks */
    CAP = 1280,         /* the KV cache's capacity */
    KB = N / B
};

static void fill(float *x, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)(seed >> 8) / 16777216.0f - 0.5f;
    }
}

/* Results of one prefill call of lq queries over lk keys. */
typedef struct result {
    int64_t lq, lk, qb, kb;
    float *out, *lse, *logits;
    uint8_t *mask;
} result;

static void result_free(result *r)
{
    free(r->out), free(r->lse), free(r->logits), free(r->mask);
    memset(r, 0, sizeof(*r));
}

/* The inputs: q of the whole prompt ([N][HQ][D] or [HQ][N][D]) and a KV
 * cache [HKV][CAP][D] holding the prompt's keys and values. */
typedef struct inputs {
    int nhd;
    float *q, *kc, *vc;
} inputs;

/*
 * stem_prefill for the queries [end - lq, end) against the keys [0, end)
 * (views into the caller's q and the cache); every output allocated here.
 */
static result run(const stem_params *p, const inputs *in, int64_t end,
                  int64_t lq)
{
    result r = {lq, end, lq / B, end / B, NULL, NULL, NULL, NULL};
    r.out = malloc(sizeof(float) * HQ * lq * D);
    r.lse = malloc(sizeof(float) * HQ * lq);
    r.logits = malloc(sizeof(float) * HQ * r.qb * r.kb);
    r.mask = malloc((size_t)(HQ * r.qb * r.kb));
    assert_non_null(r.out && r.lse && r.logits && r.mask);
    stem_tensor tq = in->nhd ? stem_tensor_nhd(in->q, STEM_F32, HQ, N, D)
                             : stem_tensor_hnd(in->q, STEM_F32, HQ, N, D);
    tq.data = (char *)in->q + (size_t)(end - lq) * (size_t)tq.token_stride *
                                  sizeof(float);
    tq.tokens = lq;
    stem_tensor tk = {in->kc, STEM_F32, HKV, end, D, (int64_t)CAP * D, D};
    stem_tensor tv = {in->vc, STEM_F32, HKV, end, D, (int64_t)CAP * D, D};
    stem_tensor to = stem_tensor_hnd(r.out, STEM_F32, HQ, lq, D);
    assert_int_equal(stem_prefill(p, &tq, &tk, &tv, &to, r.lse, r.logits,
                                  r.mask), STEM_OK);
    return r;
}

/*
 * 1 when every row of chunk c (lq rows ending at its lk) equals the
 * corresponding rows of ref (a one-shot prefill ending at or after the
 * chunk's end): logits and mask on the chunk's kb columns with nothing but
 * -inf / 0 beyond them in ref, out and lse byte for byte.
 */
static int rows_equal(const result *c, const result *ref)
{
    int64_t I0 = (c->lk - c->lq) / B;   /* the chunk's first query block */
    int64_t r0 = c->lk - c->lq;         /* its first row in ref */
    int64_t rq0 = ref->lk - ref->lq;    /* ref's first row */
    if (r0 < rq0 || c->lk > ref->lk)
        return 0;
    for (int64_t h = 0; h < HQ; h++) {
        for (int64_t I = 0; I < c->qb; I++) {
            int64_t RI = I0 + I - rq0 / B;
            const float *gc = c->logits + (h * c->qb + I) * c->kb;
            const float *gr = ref->logits + (h * ref->qb + RI) * ref->kb;
            const uint8_t *mc = c->mask + (h * c->qb + I) * c->kb;
            const uint8_t *mr = ref->mask + (h * ref->qb + RI) * ref->kb;
            if (memcmp(gc, gr, sizeof(float) * (size_t)c->kb) != 0 ||
                memcmp(mc, mr, (size_t)c->kb) != 0)
                return 0;
            for (int64_t J = c->kb; J < ref->kb; J++)
                if (gr[J] > -INFINITY || mr[J] != 0)
                    return 0;
        }
        if (memcmp(c->out + h * c->lq * D,
                   ref->out + (h * ref->lq + r0 - rq0) * D,
                   sizeof(float) * (size_t)(c->lq * D)) != 0 ||
            memcmp(c->lse + h * c->lq, ref->lse + h * ref->lq + r0 - rq0,
                   sizeof(float) * (size_t)c->lq) != 0)
            return 0;
    }
    return 1;
}

static inputs make_inputs(int nhd)
{
    inputs in = {nhd, malloc(sizeof(float) * HQ * N * D),
                 malloc(sizeof(float) * HKV * CAP * D),
                 malloc(sizeof(float) * HKV * CAP * D)};
    assert_non_null(in.q && in.kc && in.vc);
    fill(in.q, (size_t)HQ * N * D, 1);
    fill(in.kc, (size_t)HKV * CAP * D, 2);
    fill(in.vc, (size_t)HKV * CAP * D, 3);
    /* value norms that vary by segment, so the value term matters */
    for (int64_t h = 0; h < HKV; h++)
        for (int64_t t = 0; t < N; t++)
            for (int64_t c = 0; c < D; c++)
                in.vc[(h * CAP + t) * D + c] *= 1.0f + (float)((t / 40) % 5);
    return in;
}

static stem_params params(int value_term)
{
    stem_params p;
    assert_int_equal(stem_params_init(&p, STEM_PROFILE_ANGELSLIM), STEM_OK);
    p.block = B;
    p.stride = 4;
    p.prompt_blocks = KB;       /* budgets as for the whole prompt */
    if (!value_term)
        p.value_rule = STEM_VALUE_NONE;
    return p;
}

static void check_every_chunk(int nhd)
{
    inputs in = make_inputs(nhd);
    stem_params pv = params(1), p0 = params(0);
    result whole = run(&pv, &in, N, N), whole0 = run(&p0, &in, N, N);
    int early_differs = 0;
    for (int64_t end = CH; end <= N; end += CH) {
        result c = run(&pv, &in, end, CH);
        result prefix = run(&pv, &in, end, end);
        /* 1: the one-shot prefill over the keys present so far */
        assert_true(rows_equal(&c, &prefix));
        /* 2: the last chunk is the whole prompt's one-shot rows */
        if (end == N)
            assert_true(rows_equal(&c, &whole));
        else if (!rows_equal(&c, &whole))
            early_differs = 1;
        /* 3: without the value term every chunk is */
        result c0 = run(&p0, &in, end, CH);
        assert_true(rows_equal(&c0, &whole0));
        result_free(&c), result_free(&prefix), result_free(&c0);
    }
    /* the value statistics do see only the keys present: the first
     * chunk's logits are not the whole prompt's */
    assert_true(early_differs);
    /* the mask is sparse, so the test exercises selection */
    size_t sel = 0;
    for (size_t i = 0; i < (size_t)HQ * KB * KB; i++)
        sel += whole.mask[i];
    assert_true(sel < (size_t)HQ * KB * (KB + 1) / 2);
    result_free(&whole), result_free(&whole0);
    free(in.q), free(in.kc), free(in.vc);
}

static void test_every_chunk_hnd(void **state)
{
    (void)state;
    check_every_chunk(0);
}

static void test_every_chunk_nhd(void **state)
{
    (void)state;
    check_every_chunk(1);
}

/* rows_equal itself tells different rows apart. */
static void test_rows_equal_detects_a_change(void **state)
{
    (void)state;
    inputs in = make_inputs(0);
    stem_params p = params(1);
    result c = run(&p, &in, N, CH), whole = run(&p, &in, N, N);
    assert_true(rows_equal(&c, &whole));
    c.out[5] = c.out[5] + 1.0f;
    assert_false(rows_equal(&c, &whole));
    c.out[5] = whole.out[(N - CH) * D + 5];
    assert_true(rows_equal(&c, &whole));
    c.mask[3] ^= 1;
    assert_false(rows_equal(&c, &whole));
    result_free(&c), result_free(&whole);
    free(in.q), free(in.kc), free(in.vc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_chunk_hnd),
        cmocka_unit_test(test_every_chunk_nhd),
        cmocka_unit_test(test_rows_equal_detects_a_change),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
