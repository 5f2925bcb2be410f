/*
 * test_explain.c - stem_explain_row, the library's account of one row's
 * selection (docs/ALGORITHM.md section 3), against
 *   - stem_prefill's and stem_select's mask, on random problems over the
 *     three profiles with random sinks, window, diagonal, tie rule,
 *     unclipped sinks, prompt_blocks and chunked offsets (small blocks, so
 *     that the budget rule drops blocks on short prompts);
 *   - the rule written out here independently: ranks are the order
 *     "larger logit first, equal logits lower index first" over the finite
 *     logits at or below the diagonal; the top-k bits are ranks 1 .. b;
 *     tie bits (ties_keep_all only) the blocks beyond b equal to the
 *     threshold; sink, window and diagonal bits by position; the threshold
 *     is the logit of rank b, -inf when the top-k drops nothing;
 *   - hand-made rows full of equal and non-finite logits;
 *   - bad arguments: an error code, and the caller's records untouched.
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

/* Every claim of the contract about row (h, I), checked against the mask
 * row m that stem_select wrote from the same logits. */
static void check_row(const stem_params *p, const stem_dims *dm,
                      const float *lg, const uint8_t *mask, int64_t h,
                      int64_t I, const int32_t *budget, int64_t nbudget)
{
    const int64_t Kb = dm->kb;
    stem_explain_summary s;
    stem_explain_block *b = malloc((size_t)Kb * sizeof(*b));
    assert_non_null(b);
    assert_int_equal(stem_explain_row(p, dm, lg, h, I, &s, b), STEM_OK);
    const float *row = lg + (size_t)((h * dm->qb + I) * Kb);
    const uint8_t *m = mask + (size_t)((h * dm->qb + I) * Kb);
    const int64_t pos = I + dm->offset / p->block;
    const int64_t last = pos < Kb - 1 ? pos : Kb - 1;
    assert_int_equal(s.head, h);
    assert_int_equal(s.qblock, I);
    assert_int_equal(s.position, pos);
    assert_int_equal(s.n, nbudget);
    assert_true(pos < nbudget);
    assert_int_equal(s.budget, budget[pos]);

    int64_t cands = 0, kept = 0, topk = 0;
    for (int64_t j = 0; j < Kb; j++) {
        /* the mask stem_select wrote */
        assert_int_equal(b[j].kept, m[j]);
        assert_int_equal(b[j].kept, b[j].why != 0);
        assert_memory_equal(&b[j].logit, &row[j], sizeof(float));
        int cand = j <= last && isfinite(row[j]);
        cands += cand;
        kept += m[j];
        /* rank: how many candidates come first, plus one */
        int32_t want = 0;
        if (cand) {
            want = 1;
            for (int64_t i = 0; i <= last; i++)
                if (i != j && isfinite(row[i]) &&
                    (row[i] > row[j] || (row[i] == row[j] && i < j)))
                    want++;
        }
        assert_int_equal(b[j].rank, want);
    }
    assert_int_equal(s.candidates, cands);
    assert_int_equal(s.kept, kept);
    float thr = -INFINITY;
    for (int64_t j = 0; j <= last; j++)
        if (s.budget < cands && b[j].rank == s.budget)
            thr = row[j];
    assert_memory_equal(&s.threshold, &thr, sizeof(float));
    for (int64_t j = 0; j < Kb; j++) {
        uint32_t w = 0;
        if (b[j].rank >= 1 && b[j].rank <= s.budget)
            w |= STEM_WHY_TOPK;
        else if (b[j].rank > s.budget && p->ties_keep_all && row[j] >= thr)
            w |= STEM_WHY_TIE;
        if (j < p->sinks && (j <= last || p->sinks_unclipped))
            w |= STEM_WHY_SINK;
        if (j > pos - p->window && j <= last)
            w |= STEM_WHY_WINDOW;
        if (p->keep_diagonal && j == pos && j <= last)
            w |= STEM_WHY_DIAGONAL;
        assert_int_equal(b[j].why, w);
        topk += (w & (STEM_WHY_TOPK | STEM_WHY_TIE)) != 0;
    }
    assert_int_equal(s.topk, topk);
    free(b);
}

/* One random problem through stem_prefill, then every row explained. */
static int run_case(tu_rng *r, int *dropped)
{
    stem_profile prof = (stem_profile)tu_rng_int(r, 0, STEM_PROFILE_COUNT - 1);
    stem_params p;
    assert_int_equal(stem_params_init(&p, prof), STEM_OK);
    p.block = 16;
    p.stride = (int)(prof == STEM_PROFILE_HPCOPS ? 8 : 4);
    p.paper_min_k0 = (int)tu_rng_int(r, 1, 40);
    p.sinks = (int)tu_rng_int(r, 0, 6);
    p.window = (int)tu_rng_int(r, 0, 6);
    p.keep_diagonal = (int)tu_rng_int(r, 0, 1);
    p.ties_keep_all = (int)tu_rng_int(r, 0, 1);
    p.sinks_unclipped = (int)tu_rng_int(r, 0, 1);
    p.alpha = 0.3 + 0.6 * tu_rng_uniform(r);
    p.threads = (int)tu_rng_int(r, 1, 3);
    const int64_t kb = tu_rng_int(r, 1, 90), qb = tu_rng_int(r, 1, kb);
    const int64_t lk = kb * 16 - tu_rng_int(r, 0, 15);
    const int64_t lq = lk - (kb - qb) * 16;
    if (tu_rng_int(r, 0, 3) == 0)
        p.prompt_blocks = kb + tu_rng_int(r, 0, 100);
    const int hkv = (int)tu_rng_int(r, 1, 2), hq = hkv * (int)tu_rng_int(r, 1, 2);
    const int d = 16;
    tu_tensor q = tu_tensor_new(STEM_F32, TU_HND, hq, lq, d);
    tu_tensor k = tu_tensor_new(STEM_F32, TU_HND, hkv, lk, d);
    tu_tensor v = tu_tensor_new(STEM_F32, TU_HND, hkv, lk, d);
    tu_tensor o = tu_tensor_new(STEM_F32, TU_HND, hq, lq, d);
    tu_fill_normal(&q.t, tu_rng_next(r), 1.0);
    tu_fill_normal(&k.t, tu_rng_next(r), 1.0);
    tu_fill_normal(&v.t, tu_rng_next(r), 1.0);
    stem_dims dm;
    assert_int_equal(stem_dims_get(&p, &q.t, &k.t, &v.t, 1, &dm), STEM_OK);
    size_t cells = (size_t)(dm.hq * dm.qb * dm.kb);
    float *lg = malloc(cells * sizeof(float));
    uint8_t *mask = malloc(cells), *mask2 = malloc(cells);
    int64_t nb;
    assert_int_equal(stem_budget_length(&p, dm.kb, &nb), STEM_OK);
    int32_t *budget = malloc((size_t)nb * sizeof(int32_t));
    assert_true(lg && mask && mask2 && budget);
    assert_int_equal(stem_prefill(&p, &q.t, &k.t, &v.t, &o.t, NULL, lg, mask),
                     STEM_OK);
    assert_int_equal(stem_select(&p, &dm, lg, mask2, NULL, NULL), STEM_OK);
    assert_memory_equal(mask, mask2, cells);
    assert_int_equal(stem_budget(&p, dm.kb, budget), STEM_OK);
    for (int64_t h = 0; h < dm.hq; h++)
        for (int64_t I = 0; I < dm.qb; I++)
            check_row(&p, &dm, lg, mask, h, I, budget, nb);
    for (size_t i = 0; i < cells; i++)
        *dropped += isfinite(lg[i]) && !mask[i];
    free(lg), free(mask), free(mask2), free(budget);
    tu_tensor_free(&q), tu_tensor_free(&k), tu_tensor_free(&v);
    tu_tensor_free(&o);
    return 0;
}

/* Random problems: the explanation agrees with stem_prefill's mask and
 * with the rule as written above; enough of them drop blocks. */
static void test_agrees_with_prefill(void **state)
{
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 2603);
    int dropped = 0;
    for (int c = 0; c < 60; c++)
        run_case(&r, &dropped);
    assert_true(dropped > 1000);
}

/* Rows of hand-made logits: runs of equal values at the threshold, -inf,
 * +inf and NaN (never candidates), under both tie rules. */
static void test_ties_and_nonfinite(void **state)
{
    (void)state;
    for (int keep_all = 0; keep_all < 2; keep_all++) {
        stem_params p;
        assert_int_equal(stem_params_init(&p, STEM_PROFILE_PAPER), STEM_OK);
        p.block = 16;
        p.stride = 4;
        p.paper_min_k0 = 3;
        p.sinks = 1;
        p.window = 1;
        p.ties_keep_all = keep_all;
        const int64_t Kb = 12;
        stem_dims dm = {1, 1, Kb * 16, Kb * 16, 8, 0, Kb, Kb};
        float *lg = malloc((size_t)(Kb * Kb) * sizeof(float));
        uint8_t *mask = malloc((size_t)(Kb * Kb));
        int32_t budget[12];
        assert_true(lg && mask);
        for (int64_t I = 0; I < Kb; I++)
            for (int64_t J = 0; J < Kb; J++) {
                float x = J > I ? -INFINITY : (float)((J * 7 + I) % 3);
                if (J == 5 && I >= 5)
                    x = NAN;
                if (J == 6 && I >= 6)
                    x = INFINITY;
                if (J == 7 && I >= 7)
                    x = -INFINITY;
                lg[I * Kb + J] = x;
            }
        assert_int_equal(stem_select(&p, &dm, lg, mask, NULL, NULL), STEM_OK);
        assert_int_equal(stem_budget(&p, Kb, budget), STEM_OK);
        int ties = 0;
        for (int64_t I = 0; I < Kb; I++) {
            check_row(&p, &dm, lg, mask, 0, I, budget, Kb);
            stem_explain_summary s;
            stem_explain_block b[12];
            assert_int_equal(stem_explain_row(&p, &dm, lg, 0, I, &s, b),
                             STEM_OK);
            ties += s.topk > s.budget;
            if (!keep_all)
                assert_int_equal(s.topk, s.budget < s.candidates
                                             ? s.budget : s.candidates);
        }
        /* the tie rule matters on these rows */
        assert_true(keep_all ? ties > 0 : ties == 0);
        free(lg), free(mask);
    }
}

/* Bad arguments: an error, and nothing of the caller's written. */
static void test_errors(void **state)
{
    (void)state;
    stem_params p;
    assert_int_equal(stem_params_init(&p, STEM_PROFILE_ANGELSLIM), STEM_OK);
    stem_dims dm = {2, 1, 256, 256, 8, 0, 2, 2};
    float lg[8] = {1, -INFINITY, 1, 2, 1, -INFINITY, 1, 2};
    stem_explain_summary s, s0;
    stem_explain_block b[2], b0[2];
    memset(&s0, 0xA5, sizeof(s0));
    memset(b0, 0xA5, sizeof(b0));
    s = s0;
    memcpy(b, b0, sizeof(b));
#define EXPECT(call, status)                                                 \
    do {                                                                     \
        assert_int_equal(call, status);                                      \
        assert_memory_equal(&s, &s0, sizeof(s));                             \
        assert_memory_equal(b, b0, sizeof(b));                               \
    } while (0)
    EXPECT(stem_explain_row(NULL, &dm, lg, 0, 0, &s, b), STEM_ERR_NULL);
    EXPECT(stem_explain_row(&p, NULL, lg, 0, 0, &s, b), STEM_ERR_NULL);
    EXPECT(stem_explain_row(&p, &dm, NULL, 0, 0, &s, b), STEM_ERR_NULL);
    EXPECT(stem_explain_row(&p, &dm, lg, 0, 0, NULL, b), STEM_ERR_NULL);
    EXPECT(stem_explain_row(&p, &dm, lg, 0, 0, &s, NULL), STEM_ERR_NULL);
    EXPECT(stem_explain_row(&p, &dm, lg, 2, 0, &s, b), STEM_ERR_PARAM);
    EXPECT(stem_explain_row(&p, &dm, lg, -1, 0, &s, b), STEM_ERR_PARAM);
    EXPECT(stem_explain_row(&p, &dm, lg, 0, 2, &s, b), STEM_ERR_PARAM);
    EXPECT(stem_explain_row(&p, &dm, lg, 0, -1, &s, b), STEM_ERR_PARAM);
    stem_dims bad = dm;
    bad.qb = 3;
    EXPECT(stem_explain_row(&p, &bad, lg, 0, 0, &s, b), STEM_ERR_SHAPE);
    stem_params pb = p;
    pb.alpha = 2.0;
    EXPECT(stem_explain_row(&pb, &dm, lg, 0, 0, &s, b), STEM_ERR_PARAM);
    pb = p;
    pb.prompt_blocks = 1; /* fewer than Kb */
    EXPECT(stem_explain_row(&pb, &dm, lg, 0, 0, &s, b), STEM_ERR_PARAM);
#undef EXPECT
    /* and the good call writes both */
    assert_int_equal(stem_explain_row(&p, &dm, lg, 1, 1, &s, b), STEM_OK);
    assert_int_equal(s.head, 1);
    assert_int_equal(s.position, 1);
    assert_int_equal(b[1].rank, 1);
    assert_int_equal(b[0].rank, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_agrees_with_prefill),
        cmocka_unit_test(test_ties_and_nonfinite),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
