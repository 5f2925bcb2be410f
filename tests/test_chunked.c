/*
 * test_chunked.c - chunked prefill selects and computes what a one-shot
 * prefill would: the last chunk's logits rows, mask rows, outputs and lse
 * equal the one-shot run's last rows byte for byte, for KV views into a
 * larger cache (head stride = capacity) and both layouts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "stem.h"

static void fill(float *x, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)(seed >> 8) / 16777216.0f - 0.5f;
    }
}

static void check_chunk(int nhd)
{
    enum { HQ = 4, HKV = 2, D = 32, CAP = 1280, N = 1024, P = 640 };
    stem_params p;
    assert_int_equal(stem_params_init(&p, STEM_PROFILE_ANGELSLIM), STEM_OK);
    p.block = 16; /* 64 key blocks: enough for a decaying budget */
    p.stride = 4;
    const int64_t qb = N / 16, kb = N / 16, qbc = (N - P) / 16;
    float *q = malloc(sizeof(float) * HQ * N * D);
    float *kc = malloc(sizeof(float) * HKV * CAP * D);
    float *vc = malloc(sizeof(float) * HKV * CAP * D);
    float *o1 = malloc(sizeof(float) * HQ * N * D);
    float *o2 = malloc(sizeof(float) * HQ * (N - P) * D);
    float *l1 = malloc(sizeof(float) * HQ * N), *l2 = malloc(sizeof(float) * HQ * (N - P));
    float *g1 = malloc(sizeof(float) * HQ * qb * kb), *g2 = malloc(sizeof(float) * HQ * qbc * kb);
    uint8_t *m1 = malloc(HQ * qb * kb), *m2 = malloc(HQ * qbc * kb);
    assert_non_null(q && kc && vc && o1 && o2 && l1 && l2 && g1 && g2 && m1 && m2);
    fill(q, (size_t)HQ * N * D, 1);
    fill(kc, (size_t)HKV * CAP * D, 2);
    fill(vc, (size_t)HKV * CAP * D, 3);

    /* q stored [N][HQ][D] or [HQ][N][D]; the cache is [HKV][CAP][D] */
    stem_tensor tq = nhd ? stem_tensor_nhd(q, STEM_F32, HQ, N, D)
                         : stem_tensor_hnd(q, STEM_F32, HQ, N, D);
    stem_tensor tk = {kc, STEM_F32, HKV, N, D, (int64_t)CAP * D, D};
    stem_tensor tv = {vc, STEM_F32, HKV, N, D, (int64_t)CAP * D, D};
    stem_tensor to = stem_tensor_hnd(o1, STEM_F32, HQ, N, D);
    assert_int_equal(stem_prefill(&p, &tq, &tk, &tv, &to, l1, g1, m1), STEM_OK);

    /* the second chunk: queries P..N-1 as a view into the same q */
    stem_tensor tq2 = tq;
    tq2.data = (char *)q + (size_t)P * tq.token_stride * sizeof(float);
    tq2.tokens = N - P;
    stem_tensor to2 = stem_tensor_hnd(o2, STEM_F32, HQ, N - P, D);
    assert_int_equal(stem_prefill(&p, &tq2, &tk, &tv, &to2, l2, g2, m2), STEM_OK);

    for (int h = 0; h < HQ; h++) {
        assert_memory_equal(g2 + (size_t)h * qbc * kb,
                            g1 + ((size_t)h * qb + (qb - qbc)) * kb, sizeof(float) * qbc * kb);
        assert_memory_equal(m2 + (size_t)h * qbc * kb,
                            m1 + ((size_t)h * qb + (qb - qbc)) * kb, (size_t)qbc * kb);
        assert_memory_equal(o2 + (size_t)h * (N - P) * D, o1 + ((size_t)h * N + P) * D,
                            sizeof(float) * (N - P) * D);
        assert_memory_equal(l2 + (size_t)h * (N - P), l1 + (size_t)h * N + P,
                            sizeof(float) * (N - P));
    }
    /* the mask is sparse here, so the test exercises selection */
    size_t sel = 0;
    for (size_t i = 0; i < (size_t)HQ * qb * kb; i++)
        sel += m1[i];
    assert_true(sel < (size_t)HQ * qb * (qb + 1) / 2);
    free(q), free(kc), free(vc), free(o1), free(o2), free(l1), free(l2);
    free(g1), free(g2), free(m1), free(m2);
}

static void test_last_chunk_equals_one_shot_hnd(void **state)
{
    (void)state;
    check_chunk(0);
}

static void test_last_chunk_equals_one_shot_nhd(void **state)
{
    (void)state;
    check_chunk(1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_last_chunk_equals_one_shot_hnd),
        cmocka_unit_test(test_last_chunk_equals_one_shot_nhd),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
