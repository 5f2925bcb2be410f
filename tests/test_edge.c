/*
 * test_edge.c - the whole pipeline on edge shapes and values, against the
 * brute-force float64 oracle: one token, one block, Lk just past a multiple
 * of B, zero value vectors, constant value norms (std 0), attention logits
 * of magnitude 1e4, a single query row after a long prefix, head dims 1, 3,
 * 17 and 256.
 *
 * Each case checks: logits within 1e-5 of the logit scale (tu_logit_scale),
 * stem_select on the library's logits equal to brute-force selection on the
 * same values, the prefill mask against the brute-force mask up to ties,
 * the prefill output and lse against brute-force attention with the
 * library's mask, and dense attention against brute force.  Output rel-L2
 * <= 1e-5; lse within 1e-5 * (1 + |lse|) plus the float32 dot-product bound
 * d * 2^-24 * max||q|| * max||k|| / sqrt(d) (which matters only at 1e4).
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

typedef struct edge {
    tu_tensor q, k, v;
    stem_params p;
} edge;

static void edge_new(edge *e, stem_profile prof, stem_dtype dt, int hq, int hkv,
                     int lq, int lk, int d, uint64_t seed)
{
    e->p = tu_preset(prof);
    e->q = tu_tensor_new(dt, TU_HND, hq, lq, d);
    e->k = tu_tensor_new(dt, TU_NHD, hkv, lk, d);
    e->v = tu_tensor_new(dt, TU_PADDED, hkv, lk, d);
    tu_fill_normal(&e->q.t, seed + 1, 1.0);
    tu_fill_normal(&e->k.t, seed + 2, 1.0);
    tu_fill_normal(&e->v.t, seed + 3, 1.0);
}

static void edge_free(edge *e)
{
    tu_tensor_free(&e->q);
    tu_tensor_free(&e->k);
    tu_tensor_free(&e->v);
}

static void compare_attention(const edge *e, const stem_tensor *out, const float *lse,
                              const uint8_t *mask, const char *tag)
{
    const stem_tensor *q = &e->q.t;
    size_t no = (size_t)(q->heads * q->tokens * q->dim), nr = (size_t)(q->heads * q->tokens);
    double *ob = malloc(no * sizeof *ob), *lb = malloc(nr * sizeof *lb);
    double *o = malloc(no * sizeof *o);
    assert_true(ob && lb && o);
    assert_int_equal(bf_attention(&e->p, &e->q.t, &e->k.t, &e->v.t, mask, ob, lb), 0);
    tu_view_to_f64(out, o);
    for (size_t i = 0; i < no; i++)
        if (!isfinite(o[i]))
            fail_msg("%s: output %zu not finite (%g)", tag, i, o[i]);
    double rel = tu_rel_l2(o, ob, no), mabs = tu_max_abs(o, ob, no);
    if (!(rel <= 1e-5 || mabs <= 1e-6))
        fail_msg("%s: output rel-L2 %.3g (max abs %.3g) vs brute force", tag, rel, mabs);
    double dotb = q->dim * ldexp(1.0, -24) * tu_max_row_norm(&e->q.t) *
                  tu_max_row_norm(&e->k.t) / sqrt((double)q->dim);
    for (size_t i = 0; i < nr; i++)
        if (!(fabs(lse[i] - lb[i]) <= 1e-5 * (1.0 + fabs(lb[i])) + dotb))
            fail_msg("%s: lse[%zu] %.9g, brute %.9g", tag, i, (double)lse[i], lb[i]);
    free(ob);
    free(lb);
    free(o);
}

/* The checks of the header comment; returns the number of mask ties. */
static int64_t check_all(edge *e, const char *tag)
{
    const stem_params *p = &e->p;
    bf_dims dm = bf_dims_of(p, &e->q.t, &e->k.t);
    size_t nl = (size_t)(dm.hq * dm.qb * dm.kb);
    size_t nr = (size_t)(dm.hq * dm.lq);
    double scale = tu_logit_scale(p, &e->q.t, &e->k.t, &e->v.t);
    int64_t ties = 0;

    double *Lb = malloc(nl * sizeof *Lb), *Ld = malloc(nl * sizeof *Ld);
    double *thr = malloc((size_t)(dm.hq * dm.qb) * sizeof *thr);
    float *L = malloc(nl * sizeof *L), *lse = malloc(nr * sizeof *lse);
    uint8_t *mb = malloc(nl), *ml = malloc(nl), *ms = malloc(nl);
    int32_t *bud = malloc((size_t)dm.kb * sizeof *bud);
    assert_true(Lb && Ld && thr && L && lse && mb && ml && ms && bud);

    assert_int_equal(bf_block_logits(p, &e->q.t, &e->k.t, &e->v.t, Lb), 0);
    stem_status st = stem_block_logits(p, &e->q.t, &e->k.t, &e->v.t, L);
    if (st != STEM_OK)
        fail_msg("%s: stem_block_logits: %s", tag, stem_strerror(st));
    for (size_t i = 0; i < nl; i++) {
        Ld[i] = L[i];
        if (isinf(Lb[i]) ? !(isinf(L[i]) && L[i] < 0)
                         : !(fabs(L[i] - Lb[i]) <= 1e-5 * scale))
            fail_msg("%s: logit %zu: lib %.9g, brute %.9g (scale %.3g)", tag, i,
                     (double)L[i], Lb[i], scale);
    }
    bf_budget(p, dm.kb, dm.lk, bud);
    stem_dims dims;
    assert_int_equal(stem_dims_get(p, &e->q.t, &e->k.t, &e->v.t, 1, &dims), STEM_OK);
    assert_int_equal(stem_select(p, &dims, L, ms, NULL, NULL), STEM_OK);
    bf_select(p, &dm, Ld, bud, mb, NULL, NULL);
    if (memcmp(ms, mb, nl) != 0)
        fail_msg("%s: stem_select differs from brute-force selection on the same logits",
                 tag);

    tu_tensor out = tu_tensor_new(STEM_F32, TU_NHD, dm.hq, dm.lq, dm.d);
    st = stem_prefill(p, &e->q.t, &e->k.t, &e->v.t, &out.t, lse, NULL, ml);
    if (st != STEM_OK)
        fail_msg("%s: stem_prefill: %s", tag, stem_strerror(st));
    bf_select(p, &dm, Lb, bud, mb, thr, NULL);
    for (size_t i = 0; i < nl; i++) {
        if (ml[i] == mb[i])
            continue;
        size_t row = i / (size_t)dm.kb;
        if (!(fabs(Lb[i] - thr[row]) <= 2e-5 * scale))
            fail_msg("%s: mask entry %zu: lib %d brute %d, gap %.3g", tag, i, ml[i], mb[i],
                     fabs(Lb[i] - thr[row]));
        ties++;
    }
    compare_attention(e, &out.t, lse, ml, tag);

    memset(out.buf, 0, out.nbytes);
    st = stem_attention_dense(p, &e->q.t, &e->k.t, &e->v.t, &out.t, lse);
    if (st != STEM_OK)
        fail_msg("%s: stem_attention_dense: %s", tag, stem_strerror(st));
    compare_attention(e, &out.t, lse, NULL, tag);

    tu_tensor_free(&out);
    free(Lb);
    free(Ld);
    free(thr);
    free(L);
    free(lse);
    free(mb);
    free(ml);
    free(ms);
    free(bud);
    return ties;
}

static void test_one_token(void **state)
{
    (void)state;
    for (int pr = 0; pr < STEM_PROFILE_COUNT; pr++) {
        edge e;
        edge_new(&e, (stem_profile)pr, STEM_F32, 2, 1, 1, 1, 64, 11);
        check_all(&e, "one token");
        edge_free(&e);
    }
}

static void test_one_block(void **state)
{
    (void)state;
    static const int lens[3] = {128, 100, 8};
    for (int pr = 0; pr < STEM_PROFILE_COUNT; pr++)
        for (int i = 0; i < 3; i++) {
            edge e;
            edge_new(&e, (stem_profile)pr, STEM_BF16, 2, 2, lens[i], lens[i], 64, 21 + i);
            check_all(&e, "one block");
            edge_free(&e);
        }
}

static void test_just_past_block(void **state)
{
    (void)state;
    static const int lks[3] = {129, 257, 385};
    for (int pr = 0; pr < STEM_PROFILE_COUNT; pr++)
        for (int i = 0; i < 3; i++)
            for (int chunk = 0; chunk < 2; chunk++) {
                char tag[64];
                int lq = chunk ? lks[i] - 128 : lks[i];
                snprintf(tag, sizeof tag, "Lk=%d Lq=%d profile %d", lks[i], lq, pr);
                edge e;
                edge_new(&e, (stem_profile)pr, STEM_F16, 4, 2, lq, lks[i], 32, 31 + i);
                check_all(&e, tag);
                edge_free(&e);
            }
}

static void test_zero_values(void **state)
{
    (void)state;
    for (int pr = 0; pr < STEM_PROFILE_COUNT; pr++) {
        edge e;
        edge_new(&e, (stem_profile)pr, STEM_F32, 1, 1, 300, 300, 16, 41);
        for (int c = 0; c < 16; c++) {          /* a few zero value vectors */
            tu_set(&e.v.t, 0, 0, c, 0.0);
            tu_set(&e.v.t, 0, 77, c, 0.0);
            tu_set(&e.v.t, 0, 299, c, 0.0);
        }
        check_all(&e, "zero value vectors");
        for (int t = 0; t < 300; t++)           /* every value vector zero */
            for (int c = 0; c < 16; c++)
                tu_set(&e.v.t, 0, t, c, 0.0);
        check_all(&e, "all values zero");
        edge_free(&e);
    }
}

static void test_constant_value_norms(void **state)
{
    (void)state;
    for (int pr = 0; pr < STEM_PROFILE_COUNT; pr++) {
        edge e;
        edge_new(&e, (stem_profile)pr, STEM_F32, 2, 1, 640, 640, 16, 51);
        for (int t = 0; t < 640; t++)           /* ||v_t|| = 2 for every t */
            for (int c = 0; c < 16; c++)
                tu_set(&e.v.t, 0, t, c, c == t % 16 ? (t % 3 ? 2.0 : -2.0) : 0.0);
        check_all(&e, "constant value norms");
        edge_free(&e);
    }
}

static void test_huge_logits(void **state)
{
    (void)state;
    for (int pr = 0; pr < STEM_PROFILE_COUNT; pr++) {
        /* Random q and k of norm ~800: attention logits ~1e4, peaked. */
        edge e;
        edge_new(&e, (stem_profile)pr, STEM_F32, 1, 1, 200, 200, 64, 61);
        for (int t = 0; t < 200; t++)
            for (int c = 0; c < 64; c++) {
                tu_set(&e.q.t, 0, t, c, 100.0 * tu_get(&e.q.t, 0, t, c));
                tu_set(&e.k.t, 0, t, c, 100.0 * tu_get(&e.k.t, 0, t, c));
            }
        check_all(&e, "logits ~1e4 (peaked)");
        /* Every q and k the same vector: every attention logit ~1.3e4 and
         * equal, block logits ~1e4; the softmax must not overflow. */
        for (int t = 0; t < 200; t++)
            for (int c = 0; c < 64; c++) {
                double x = c % 2 ? 32.0 : -32.0;
                tu_set(&e.q.t, 0, t, c, x);
                tu_set(&e.k.t, 0, t, c, x);
            }
        check_all(&e, "logits ~1e4 (flat)");
        edge_free(&e);
    }
}

static void test_single_query_long_prefix(void **state)
{
    (void)state;
    static const int lks[2] = {128 * 40 + 1, 128 * 60 + 1};
    for (int pr = 0; pr < STEM_PROFILE_COUNT; pr++)
        for (int i = 0; i < 2; i++) {
            edge e;
            edge_new(&e, (stem_profile)pr, STEM_BF16, 2, 1, 1, lks[i], 64, 71 + i);
            check_all(&e, "Lq=1, large P");
            edge_free(&e);
        }
    /* Dense attention with a P that is not a multiple of B. */
    edge e;
    edge_new(&e, STEM_PROFILE_ANGELSLIM, STEM_F32, 2, 2, 1, 3001, 64, 75);
    tu_tensor out = tu_tensor_new(STEM_F32, TU_HND, 2, 1, 64);
    float lse[2];
    assert_int_equal(stem_attention_dense(&e.p, &e.q.t, &e.k.t, &e.v.t, &out.t, lse), STEM_OK);
    compare_attention(&e, &out.t, lse, NULL, "dense Lq=1 P=3000");
    tu_tensor_free(&out);
    edge_free(&e);
}

static void test_head_dims(void **state)
{
    (void)state;
    static const int ds[4] = {1, 3, 17, 256};
    for (int pr = 0; pr < STEM_PROFILE_COUNT; pr++)
        for (int i = 0; i < 4; i++) {
            char tag[32];
            snprintf(tag, sizeof tag, "d=%d profile %d", ds[i], pr);
            edge e;
            edge_new(&e, (stem_profile)pr, STEM_F32, 2, 1, 300, 300, ds[i], 81 + i);
            check_all(&e, tag);
            edge_free(&e);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_token),
        cmocka_unit_test(test_one_block),
        cmocka_unit_test(test_just_past_block),
        cmocka_unit_test(test_zero_values),
        cmocka_unit_test(test_constant_value_norms),
        cmocka_unit_test(test_huge_logits),
        cmocka_unit_test(test_single_query_long_prefix),
        cmocka_unit_test(test_head_dims),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
