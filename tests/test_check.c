/*
 * test_check.c - the in-process checker (include/stem_check.h) on doctored
 * GPU outputs: each fault class of docs/ALGORITHM.md section 5 must FAIL
 * with the stage, the kind and the position of the fault in the report,
 * and genuine rounding noise must PASS.  Plus the argument checks and the
 * renderers.
 *
 * The "GPU" is the library itself on a small synthetic case (BF16 q/k/v,
 * Hq 4, Hkv 2, 2048 tokens, d 64, blocks of 32 so that the 64 key blocks
 * reach the sparse part of the budget): its logits, mask, out (rounded to
 * bf16) and lse, then doctored one fault at a time.  The CLI tests
 * (tests/cli/test_cli_check.sh) repeat the classes on real GPU captures
 * with blocks of 128.
 */
#include <cjson/cJSON.h>
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

#define HQ 4
#define HKV 2
#define LK 2048
#define D 64
#define B 32                    /* 64 key blocks: the budget is sparse */
#define KB (LK / B)

/* The synthetic case and the library's own outputs on it. */
typedef struct fixture {
    stem_params p;
    tu_tensor q, k, v;
    stem_dims dm;
    float *logits;              /* [HQ, qb, KB] */
    uint8_t *mask;              /* [HQ, qb, KB] */
    float *out;                 /* [HQ, lq, D] F32 */
    float *lse;                 /* [HQ, lq] */
    float *dense;               /* [HQ, lq, D] dense attention */
    int32_t budget[KB];
} fixture;

static fixture F;               /* Lq = Lk */

/* The GPU's tensors of one doctored case; views filled by gpu_views(). */
typedef struct gpu_case {
    float *logits;
    uint8_t *mask;
    uint16_t *out;              /* BF16 */
    float *lse;
    stem_tensor tl, tm, to, ts;
    stem_check_gpu g;
} gpu_case;

static size_t ncell(const fixture *f)
{
    return (size_t)HQ * (size_t)f->dm.qb * KB;
}

static size_t nout(const fixture *f)
{
    return (size_t)HQ * (size_t)f->dm.lq * D;
}

/*
 * q, k, v with block structure: key block J of kv head g leans along a
 * direction u_g by c_J (a permutation of -3..3 in 64 even steps, so that
 * sorted block logits lie about 0.1 apart, beyond bf16 rounding), every
 * query leans along u_g by 2, and each carries N(0, 0.5^2) noise; v is
 * N(0, 1).  Blocks 0..7 lean least: sinks are kept as sinks, not top-k.  The block logits then spread over about -3..3 and the
 * attention still reads every block.
 */
static void structured(fixture *f, int64_t lq)
{
    tu_rng r;
    tu_rng_seed(&r, 4242 + (uint64_t)lq);
    double u[HKV][D], c[HKV][KB];
    for (int g = 0; g < HKV; g++) {
        double n2 = 0;
        for (int e = 0; e < D; e++) {
            u[g][e] = tu_rng_normal(&r);
            n2 += u[g][e] * u[g][e];
        }
        for (int e = 0; e < D; e++)
            u[g][e] /= sqrt(n2);
        int perm[KB];
        for (int j = 0; j < KB; j++)
            perm[j] = j;
        for (int j = KB - 1; j > 8; j--) {      /* blocks 0..7 lowest */
            int x = (int)tu_rng_int(&r, 8, j), t = perm[j];
            perm[j] = perm[x], perm[x] = t;
        }
        for (int j = 0; j < KB; j++)
            c[g][j] = 6.0 * perm[j] / (KB - 1) - 3.0;
    }
    for (int64_t h = 0; h < HQ; h++)
        for (int64_t t = 0; t < lq; t++)
            for (int e = 0; e < D; e++)
                tu_set(&f->q.t, h, t, e, 0.5 * tu_rng_normal(&r) +
                                             2.0 * u[h / (HQ / HKV)][e]);
    for (int g = 0; g < HKV; g++)
        for (int64_t t = 0; t < LK; t++)
            for (int e = 0; e < D; e++) {
                tu_set(&f->k.t, g, t, e, 0.5 * tu_rng_normal(&r) +
                                             4.0 * c[g][t / B] * u[g][e]);
                tu_set(&f->v.t, g, t, e, tu_rng_normal(&r));
            }
}

/* Fill f: q with lq tokens (the last of LK), k and v with LK, and the
 * library's logits, mask, out, lse and dense output on them. */
static void fixture_make_kind(fixture *f, int64_t lq, int random);

static void fixture_make(fixture *f, int64_t lq)
{
    fixture_make_kind(f, lq, 0);
}

/* random = 1: i.i.d. N(0, 1) q, k, v instead of the block structure, so
 * that block logits lie within bf16 rounding of each other. */
static void fixture_make_kind(fixture *f, int64_t lq, int random)
{
    memset(f, 0, sizeof(*f));
    assert_int_equal(stem_params_init(&f->p, STEM_PROFILE_ANGELSLIM), STEM_OK);
    f->p.block = B;
    f->q = tu_tensor_new(STEM_BF16, TU_HND, HQ, lq, D);
    f->k = tu_tensor_new(STEM_BF16, TU_HND, HKV, LK, D);
    f->v = tu_tensor_new(STEM_BF16, TU_HND, HKV, LK, D);
    if (random) {
        tu_fill_normal(&f->q.t, 101, 1.0);
        tu_fill_normal(&f->k.t, 202, 1.0);
        tu_fill_normal(&f->v.t, 303, 1.0);
    } else {
        structured(f, lq);
    }
    assert_int_equal(stem_dims_get(&f->p, &f->q.t, &f->k.t, &f->v.t, 1,
                                   &f->dm), STEM_OK);
    f->logits = malloc(ncell(f) * sizeof(float));
    f->mask = malloc(ncell(f));
    f->out = malloc(nout(f) * sizeof(float));
    f->dense = malloc(nout(f) * sizeof(float));
    f->lse = malloc((size_t)HQ * (size_t)lq * sizeof(float));
    assert_true(f->logits && f->mask && f->out && f->dense && f->lse);
    stem_tensor o = stem_tensor_hnd(f->out, STEM_F32, HQ, lq, D);
    assert_int_equal(stem_prefill(&f->p, &f->q.t, &f->k.t, &f->v.t, &o,
                                  f->lse, f->logits, f->mask), STEM_OK);
    stem_tensor dn = stem_tensor_hnd(f->dense, STEM_F32, HQ, lq, D);
    assert_int_equal(stem_attention_dense(&f->p, &f->q.t, &f->k.t, &f->v.t,
                                          &dn, NULL), STEM_OK);
    assert_int_equal(stem_budget(&f->p, KB, f->budget), STEM_OK);
}

static void fixture_free(fixture *f)
{
    tu_tensor_free(&f->q);
    tu_tensor_free(&f->k);
    tu_tensor_free(&f->v);
    free(f->logits), free(f->mask), free(f->out), free(f->lse);
    free(f->dense);
    memset(f, 0, sizeof(*f));
}

static int setup(void **state)
{
    (void)state;
    fixture_make(&F, LK);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fixture_free(&F);
    return 0;
}

/* A genuine GPU: the fixture's outputs, out rounded to bf16. */
static void gpu_new(const fixture *f, gpu_case *c)
{
    memset(c, 0, sizeof(*c));
    c->logits = malloc(ncell(f) * sizeof(float));
    c->mask = malloc(ncell(f));
    c->out = malloc(nout(f) * sizeof(uint16_t));
    c->lse = malloc((size_t)HQ * (size_t)f->dm.lq * sizeof(float));
    assert_true(c->logits && c->mask && c->out && c->lse);
    memcpy(c->logits, f->logits, ncell(f) * sizeof(float));
    memcpy(c->mask, f->mask, ncell(f));
    for (size_t i = 0; i < nout(f); i++)
        c->out[i] = tu_f64_to_bf16(f->out[i]);
    memcpy(c->lse, f->lse, (size_t)HQ * (size_t)f->dm.lq * sizeof(float));
}

static void gpu_free(gpu_case *c)
{
    free(c->logits), free(c->mask), free(c->out), free(c->lse);
}

/* Which of the GPU tensors the check is given. */
enum { G_LOGITS = 1, G_MASK = 2, G_OUT = 4, G_LSE = 8, G_ALL = 15 };

static const stem_check_gpu *gpu_views(const fixture *f, gpu_case *c,
                                       int which)
{
    c->tl = stem_tensor_hnd(c->logits, STEM_F32, HQ, f->dm.qb, KB);
    c->tm = stem_tensor_hnd(c->mask, STEM_U8, HQ, f->dm.qb, KB);
    c->to = stem_tensor_hnd(c->out, STEM_BF16, HQ, f->dm.lq, D);
    c->ts = stem_tensor_hnd(c->lse, STEM_F32, HQ, f->dm.lq, 1);
    c->g.logits = which & G_LOGITS ? &c->tl : NULL;
    c->g.mask = which & G_MASK ? &c->tm : NULL;
    c->g.out = which & G_OUT ? &c->to : NULL;
    c->g.lse = which & G_LSE ? &c->ts : NULL;
    return &c->g;
}

/* stem_check of c (which tensors: which) judged as prec, every offender
 * kept; asserts STEM_OK. */
static void run(const fixture *f, gpu_case *c, int which, stem_prec prec,
                stem_check_report *r)
{
    stem_check_options o;
    assert_int_equal(stem_check_options_init(&o, prec), STEM_OK);
    o.max_items = 100000;
    assert_int_equal(stem_check(&f->p, &f->q.t, &f->k.t, &f->v.t,
                                gpu_views(f, c, which), &o, r), STEM_OK);
}

/* The first item of stage s of kind `kind` whose positions match (-1:
 * any), or NULL. */
static const stem_check_item *find(const stem_check_report *r,
                                   stem_check_stage s, stem_check_kind kind,
                                   int64_t head, int64_t qblock,
                                   int64_t kblock, int64_t row)
{
    const stem_check_stage_result *x = &r->stage[s];
    for (int64_t i = 0; i < x->n_items; i++) {
        const stem_check_item *it = &x->items[i];
        if (it->kind == kind && (head < 0 || it->head == head) &&
            (qblock < 0 || it->qblock == qblock) &&
            (kblock < 0 || it->kblock == kblock) &&
            (row < 0 || it->row == row))
            return it;
    }
    return NULL;
}

/* Print the report's text (shown by cmocka when an assertion fails). */
static void show(const stem_check_report *r)
{
    size_t n = stem_check_report_text(r, 1, NULL, 0);
    char *buf = malloc(n + 1);
    assert_non_null(buf);
    stem_check_report_text(r, 1, buf, n + 1);
    print_message("%s\n", buf);
    free(buf);
}

/* Row (h, I) of a mask / logit array. */
static size_t at(const fixture *f, int64_t h, int64_t I)
{
    return ((size_t)h * (size_t)f->dm.qb + (size_t)I) * KB;
}

/* Sinks, window and diagonal of row I (key block position pos). */
static int forced(const fixture *f, int64_t pos, int64_t J)
{
    return J < f->p.sinks || J > pos - f->p.window || J == pos;
}

/* Whether row I keeps fewer blocks than it has causal blocks. */
static int sparse_row(const fixture *f, int64_t h, int64_t I)
{
    int64_t pos = I + f->dm.offset / B, kept = 0;
    for (int64_t J = 0; J <= pos; J++)
        kept += f->mask[at(f, h, I) + J] != 0;
    return kept < pos + 1;
}

/* Out of c recomputed by the library under c->mask (F32, then bf16). */
static void out_under_mask(const fixture *f, gpu_case *c)
{
    float *o = malloc(nout(f) * sizeof(float));
    assert_non_null(o);
    stem_tensor t = stem_tensor_hnd(o, STEM_F32, HQ, f->dm.lq, D);
    assert_int_equal(stem_attention_sparse(&f->p, &f->q.t, &f->k.t, &f->v.t,
                                           c->mask, &t, c->lse), STEM_OK);
    for (size_t i = 0; i < nout(f); i++)
        c->out[i] = tu_f64_to_bf16(o[i]);
    free(o);
}

/* ------------------------------------------------------------ genuine */

/* The library's own outputs, out rounded to bf16: PASS at bf16, every
 * stage judged. */
static void test_genuine_bf16_noise_passes(void **state)
{
    (void)state;
    gpu_case c;
    stem_check_report r;
    gpu_new(&F, &c);
    run(&F, &c, G_ALL, STEM_PREC_BF16, &r);
    if (r.verdict != STEM_CHECK_PASS)
        show(&r);
    assert_int_equal(r.verdict, STEM_CHECK_PASS);
    for (int s = 0; s < STEM_STAGE_COUNT; s++)
        assert_int_equal(r.stage[s].verdict, STEM_CHECK_PASS);
    assert_int_equal(r.rows_failed, 0);
    assert_int_equal(r.mask_diffs, 0);
    assert_int_equal(r.n_heads, HQ);
    assert_true(r.out_rel_l2 > 0 && r.out_rel_l2 < 1e-2);
    for (int64_t h = 0; h < HQ; h++)
        assert_int_equal(r.heads[h].status, STEM_KIND_NONE);
    assert_true(r.hint[0] == '\0');
    /* a PASS renders as a short summary */
    size_t n = stem_check_report_text(&r, 0, NULL, 0);
    char *buf = malloc(n + 1);
    assert_non_null(buf);
    assert_int_equal(stem_check_report_text(&r, 0, buf, n + 1), n);
    assert_int_equal(strlen(buf), n);
    assert_non_null(strstr(buf, "PASS"));
    assert_null(strstr(buf, "FAIL"));
    free(buf);
    stem_check_report_free(&r);
    gpu_free(&c);
}

/* The float64 oracle's output stored as float32, judged at fp32. */
static void test_genuine_f64_oracle_passes_fp32(void **state)
{
    (void)state;
    gpu_case c;
    stem_check_report r;
    gpu_new(&F, &c);
    stem_params p64 = F.p;
    p64.use_f64 = 1;
    float *o = malloc(nout(&F) * sizeof(float));
    assert_non_null(o);
    stem_tensor t = stem_tensor_hnd(o, STEM_F32, HQ, F.dm.lq, D);
    assert_int_equal(stem_attention_sparse(&p64, &F.q.t, &F.k.t, &F.v.t,
                                           F.mask, &t, c.lse), STEM_OK);
    stem_check_options opt;
    assert_int_equal(stem_check_options_init(&opt, STEM_PREC_FP32), STEM_OK);
    stem_check_gpu g = {NULL, NULL, &t, NULL};
    stem_tensor ts = stem_tensor_hnd(c.lse, STEM_F32, HQ, F.dm.lq, 1);
    stem_tensor tm = stem_tensor_hnd(F.mask, STEM_U8, HQ, F.dm.qb, KB);
    g.lse = &ts;
    g.mask = &tm;
    assert_int_equal(stem_check(&F.p, &F.q.t, &F.k.t, &F.v.t, &g, &opt, &r),
                     STEM_OK);
    if (r.verdict != STEM_CHECK_PASS)
        show(&r);
    assert_int_equal(r.verdict, STEM_CHECK_PASS);
    assert_int_equal(r.stage[STEM_STAGE_OUT].verdict, STEM_CHECK_PASS);
    assert_int_equal(r.stage[STEM_STAGE_LSE].verdict, STEM_CHECK_PASS);
    stem_check_report_free(&r);
    free(o);
    gpu_free(&c);
}

/* ------------------------------------------------------------- budget */

/* Drop (delta -1) or add (delta +1) one top-k block in every sparse row:
 * the lowest-logit kept block that is not forced, or the highest-logit
 * dropped one.  Returns the number of rows changed; *kb0 the block
 * changed in row (0, qb - 1). */
static int64_t doctor_budget(const fixture *f, gpu_case *c, int delta,
                             int64_t *kb0)
{
    int64_t rows = 0, pb = f->dm.offset / B;
    for (int64_t h = 0; h < HQ; h++)
        for (int64_t I = 0; I < f->dm.qb; I++) {
            if (!sparse_row(f, h, I))
                continue;
            int64_t pos = I + pb, best = -1;
            const float *L = f->logits + at(f, h, I);
            uint8_t *m = c->mask + at(f, h, I);
            for (int64_t J = 0; J <= pos; J++) {
                if (forced(f, pos, J) || (delta < 0 ? !m[J] : m[J]))
                    continue;
                if (best < 0 || (delta < 0 ? L[J] < L[best] : L[J] > L[best]))
                    best = J;
            }
            if (best < 0)
                continue;
            m[best] = delta > 0;
            if (h == 0 && I == f->dm.qb - 1)
                *kb0 = best;
            rows++;
        }
    return rows;
}

static void budget_case(int delta)
{
    gpu_case c;
    stem_check_report r;
    int64_t kb0 = -1, qlast = F.dm.qb - 1;
    gpu_new(&F, &c);
    int64_t rows = doctor_budget(&F, &c, delta, &kb0);
    assert_true(rows > 10);
    assert_true(kb0 >= 0);
    /* the GPU's attention follows its own mask: out and lse are right */
    out_under_mask(&F, &c);
    run(&F, &c, G_MASK | G_OUT | G_LSE, STEM_PREC_BF16, &r);
    if (r.verdict != STEM_CHECK_FAIL || r.stage[STEM_STAGE_OUT].verdict !=
        STEM_CHECK_PASS || r.rows_count_off * 2 <= rows) {
        print_message("%lld rows doctored\n", (long long)rows);
        show(&r);
    }
    assert_int_equal(r.verdict, STEM_CHECK_FAIL);
    assert_int_equal(r.stage[STEM_STAGE_MASK].verdict, STEM_CHECK_FAIL);
    assert_int_equal(r.stage[STEM_STAGE_OUT].verdict, STEM_CHECK_PASS);
    assert_int_equal(r.stage[STEM_STAGE_LSE].verdict, STEM_CHECK_PASS);
    /* most rows are called out by their count, one short / one over */
    assert_true(r.rows_count_off * 2 > rows);
    const stem_check_item *x = find(&r, STEM_STAGE_MASK, STEM_KIND_MASK_COUNT,
                                    0, qlast, -1, -1);
    if (!x)
        show(&r);
    assert_non_null(x);
    assert_true(delta < 0 ? x->gpu < x->ref : x->gpu > x->ref);
    assert_true(r.hint[0] != '\0');
    stem_check_report_free(&r);

    /* with its logits too, the selection stage names the very block */
    run(&F, &c, G_LOGITS | G_MASK, STEM_PREC_BF16, &r);
    assert_int_equal(r.stage[STEM_STAGE_LOGITS].verdict, STEM_CHECK_PASS);
    assert_int_equal(r.stage[STEM_STAGE_SELECTION].verdict, STEM_CHECK_FAIL);
    assert_non_null(find(&r, STEM_STAGE_SELECTION,
                         delta < 0 ? STEM_KIND_SELECT_MISSING
                                   : STEM_KIND_SELECT_EXTRA,
                         0, qlast, kb0, -1));
    stem_check_report_free(&r);
    gpu_free(&c);
}

static void test_budget_one_short_fails(void **state)
{
    (void)state;
    budget_case(-1);
}

static void test_budget_one_over_fails(void **state)
{
    (void)state;
    budget_case(+1);
}

/* ----------------------------------------------------------- out rows */

/* P.V skips one selected block for the 128 rows of one query block; the
 * mask is reported intact. */
static void test_pv_skips_block_in_one_qblock_fails(void **state)
{
    (void)state;
    const int64_t h = 1, I = 50;
    gpu_case c;
    stem_check_report r;
    gpu_new(&F, &c);
    uint8_t *m = malloc(ncell(&F));
    float *o = malloc(nout(&F) * sizeof(float));
    assert_true(m && o);
    memcpy(m, F.mask, ncell(&F));
    int64_t J = -1;                 /* the kept top-k block of most weight */
    for (int64_t j = 0; j < I; j++)
        if (m[at(&F, h, I) + j] && !forced(&F, I, j) &&
            (J < 0 || F.logits[at(&F, h, I) + j] > F.logits[at(&F, h, I) + J]))
            J = j;
    assert_true(J >= 0);
    m[at(&F, h, I) + J] = 0;
    stem_tensor t = stem_tensor_hnd(o, STEM_F32, HQ, F.dm.lq, D);
    assert_int_equal(stem_attention_sparse(&F.p, &F.q.t, &F.k.t, &F.v.t, m,
                                           &t, NULL), STEM_OK);
    for (int64_t row = I * B; row < (I + 1) * B; row++)
        for (int64_t e = 0; e < D; e++) {
            size_t i = ((size_t)h * F.dm.lq + row) * D + e;
            c.out[i] = tu_f64_to_bf16(o[i]);
        }
    run(&F, &c, G_LOGITS | G_MASK | G_OUT, STEM_PREC_BF16, &r);
    if (r.verdict != STEM_CHECK_FAIL)
        show(&r);
    assert_int_equal(r.verdict, STEM_CHECK_FAIL);
    assert_int_equal(r.stage[STEM_STAGE_MASK].verdict, STEM_CHECK_PASS);
    assert_int_equal(r.stage[STEM_STAGE_OUT].verdict, STEM_CHECK_FAIL);
    /* the head average alone would pass at the bf16 limit of old */
    assert_true(r.heads[h].out_rel_l2 < 3e-2);
    const stem_check_item *x = find(&r, STEM_STAGE_OUT, STEM_KIND_OUT_ROW, h,
                                    I, -1, -1);
    assert_non_null(x);
    assert_true(x->row >= I * B && x->row < (I + 1) * B);
    /* every failing row is in that query block, and most of its rows fail */
    for (int64_t hh = 0; hh < HQ; hh++)
        for (int64_t Ib = 0; Ib < F.dm.qb; Ib++) {
            int32_t n = r.qblock_rows_failed[hh * F.dm.qb + Ib];
            if (hh == h && Ib == I)
                assert_true(n > B / 2);
            else
                assert_int_equal(n, 0);
        }
    assert_int_equal(r.qblocks_failed, 1);
    for (int64_t i = 0; i < r.stage[STEM_STAGE_OUT].n_items; i++) {
        const stem_check_item *y = &r.stage[STEM_STAGE_OUT].items[i];
        assert_int_equal(y->head, h);
        /* row limits, and the systematic tests of that block or head */
        assert_true(y->kind == STEM_KIND_OUT_ROW ||
                    (y->kind >= STEM_KIND_OUT_SCALE_BIAS &&
                     y->kind <= STEM_KIND_OUT_ROW_SHIFT &&
                     (y->qblock == I || y->qblock == -1)));
    }
    stem_check_report_free(&r);
    free(m), free(o);
    gpu_free(&c);
}

static void test_zero_row_fails(void **state)
{
    (void)state;
    const int64_t h = 2, row = 1500;
    gpu_case c;
    stem_check_report r;
    gpu_new(&F, &c);
    memset(c.out + ((size_t)h * F.dm.lq + row) * D, 0, D * sizeof(uint16_t));
    run(&F, &c, G_MASK | G_OUT, STEM_PREC_BF16, &r);
    assert_int_equal(r.verdict, STEM_CHECK_FAIL);
    assert_int_equal(r.stage[STEM_STAGE_OUT].faults, 1);
    assert_int_equal(r.rows_failed, 1);
    const stem_check_item *x = find(&r, STEM_STAGE_OUT, STEM_KIND_OUT_ROW, h,
                                    row / B, -1, row);
    assert_non_null(x);
    assert_true(x->gpu == 0.0 && x->ref > 0 && x->err > x->limit);
    assert_int_equal(r.heads[h].status, STEM_KIND_NONE);
    stem_check_report_free(&r);
    gpu_free(&c);
}

/* --------------------------------------------------------------- heads */

static void test_zero_head_is_wrong_output(void **state)
{
    (void)state;
    const int64_t h = 3;
    gpu_case c;
    stem_check_report r;
    gpu_new(&F, &c);
    memset(c.out + (size_t)h * F.dm.lq * D, 0,
           (size_t)F.dm.lq * D * sizeof(uint16_t));
    run(&F, &c, G_MASK | G_OUT, STEM_PREC_BF16, &r);
    if (r.heads[h].status != STEM_KIND_OUT_WRONG_HEAD)
        show(&r);
    assert_int_equal(r.verdict, STEM_CHECK_FAIL);
    assert_int_equal(r.heads[h].status, STEM_KIND_OUT_WRONG_HEAD);
    assert_non_null(find(&r, STEM_STAGE_OUT, STEM_KIND_OUT_WRONG_HEAD, h, -1,
                         -1, -1));
    assert_null(find(&r, STEM_STAGE_OUT, STEM_KIND_OUT_IGNORES_MASK, -1, -1,
                     -1, -1));
    for (int64_t o = 0; o < HQ; o++)
        if (o != h)
            assert_int_equal(r.heads[o].status, STEM_KIND_NONE);
    stem_check_report_free(&r);
    gpu_free(&c);
}

static void test_dense_head_ignores_mask(void **state)
{
    (void)state;
    const int64_t h = 1;
    gpu_case c;
    stem_check_report r;
    gpu_new(&F, &c);
    size_t base = (size_t)h * F.dm.lq * D;
    for (size_t i = 0; i < (size_t)F.dm.lq * D; i++)
        c.out[base + i] = tu_f64_to_bf16(F.dense[base + i]);
    run(&F, &c, G_MASK | G_OUT, STEM_PREC_BF16, &r);
    if (r.heads[h].status != STEM_KIND_OUT_IGNORES_MASK)
        show(&r);
    assert_int_equal(r.verdict, STEM_CHECK_FAIL);
    assert_int_equal(r.heads[h].status, STEM_KIND_OUT_IGNORES_MASK);
    assert_true(r.heads[h].dense_decidable);
    assert_true(fabs(r.heads[h].dense_t - 1.0) < 0.1);
    assert_non_null(find(&r, STEM_STAGE_OUT, STEM_KIND_OUT_IGNORES_MASK, h,
                         -1, -1, -1));
    assert_int_equal(r.heads[0].status, STEM_KIND_NONE);
    assert_true(fabs(r.heads[0].dense_t) < 0.1);
    stem_check_report_free(&r);

    /* without the dense pass there is no ignored-mask verdict */
    stem_check_options o;
    assert_int_equal(stem_check_options_init(&o, STEM_PREC_BF16), STEM_OK);
    o.dense_test = 0;
    assert_int_equal(stem_check(&F.p, &F.q.t, &F.k.t, &F.v.t,
                                gpu_views(&F, &c, G_MASK | G_OUT), &o, &r),
                     STEM_OK);
    assert_null(find(&r, STEM_STAGE_OUT, STEM_KIND_OUT_IGNORES_MASK, -1, -1,
                     -1, -1));
    stem_check_report_free(&r);
    gpu_free(&c);
}

/* One head's output (or logits) written in another head's place. */
static void test_swapped_heads_fail(void **state)
{
    (void)state;
    gpu_case c;
    stem_check_report r;
    gpu_new(&F, &c);
    size_t n = (size_t)F.dm.lq * D;
    uint16_t *tmp = malloc(n * sizeof(uint16_t));
    assert_non_null(tmp);
    memcpy(tmp, c.out, n * sizeof(uint16_t));
    memcpy(c.out, c.out + 2 * n, n * sizeof(uint16_t));    /* heads 0, 2 */
    memcpy(c.out + 2 * n, tmp, n * sizeof(uint16_t));
    run(&F, &c, G_MASK | G_OUT, STEM_PREC_BF16, &r);
    assert_int_equal(r.verdict, STEM_CHECK_FAIL);
    assert_int_equal(r.stage[STEM_STAGE_OUT].verdict, STEM_CHECK_FAIL);
    assert_true(r.heads[0].rows_failed > F.dm.lq / 2);
    assert_true(r.heads[2].rows_failed > F.dm.lq / 2);
    assert_int_equal(r.heads[1].rows_failed, 0);
    assert_int_equal(r.heads[3].rows_failed, 0);
    assert_int_not_equal(r.heads[0].status, STEM_KIND_NONE);
    assert_int_not_equal(r.heads[2].status, STEM_KIND_NONE);
    stem_check_report_free(&r);

    /* logits of head 1 in head 0's place */
    size_t nc = (size_t)F.dm.qb * KB;
    memcpy(c.logits, F.logits + nc, nc * sizeof(float));
    run(&F, &c, G_LOGITS, STEM_PREC_BF16, &r);
    assert_int_equal(r.stage[STEM_STAGE_LOGITS].verdict, STEM_CHECK_FAIL);
    assert_non_null(find(&r, STEM_STAGE_LOGITS, STEM_KIND_LOGIT_ERROR, 0, -1,
                         -1, -1));
    assert_null(find(&r, STEM_STAGE_LOGITS, STEM_KIND_LOGIT_ERROR, 1, -1, -1,
                     -1));
    stem_check_report_free(&r);
    free(tmp);
    gpu_free(&c);
}

/* ---------------------------------------------------------------- mask */

/* The causal offset one block short for Lq < Lk: logits and mask shifted
 * left by one key block. */
static void test_shifted_causal_offset_fails(void **state)
{
    (void)state;
    fixture f;
    fixture_make(&f, LK - 2 * B);
    assert_int_equal(f.dm.offset, 2 * B);
    const int64_t pb = 2;
    gpu_case c;
    stem_check_report r;
    gpu_new(&f, &c);
    for (int64_t h = 0; h < HQ; h++)
        for (int64_t I = 0; I < f.dm.qb; I++) {
            float *L = c.logits + at(&f, h, I);
            uint8_t *m = c.mask + at(&f, h, I);
            for (int64_t J = 0; J < KB - 1; J++) {
                L[J] = L[J + 1];
                m[J] = m[J + 1];
            }
            L[KB - 1] = -INFINITY;
            m[KB - 1] = 0;
        }
    run(&f, &c, G_LOGITS | G_MASK, STEM_PREC_BF16, &r);
    assert_int_equal(r.verdict, STEM_CHECK_FAIL);
    assert_int_equal(r.stage[STEM_STAGE_LOGITS].verdict, STEM_CHECK_FAIL);
    /* the -inf pattern differs exactly at each row's diagonal */
    assert_int_equal(r.logit_pattern, HQ * f.dm.qb);
    for (int64_t I = 0; I < f.dm.qb; I += 7)
        assert_non_null(find(&r, STEM_STAGE_LOGITS, STEM_KIND_LOGIT_PATTERN,
                             0, I, I + pb, -1));
    assert_int_equal(r.stage[STEM_STAGE_MASK].verdict, STEM_CHECK_FAIL);
    assert_non_null(find(&r, STEM_STAGE_MASK, STEM_KIND_MASK_WINDOW, 0, 5,
                         5 + pb, -1));
    stem_check_report_free(&r);
    gpu_free(&c);
    fixture_free(&f);
}

/* Sinks off by one: the GPU's mask built with 3 or 5 sink blocks. */
static void sinks_case(int sinks)
{
    gpu_case c;
    stem_check_report r;
    gpu_new(&F, &c);
    stem_params ps = F.p;
    ps.sinks = sinks;
    assert_int_equal(stem_select(&ps, &F.dm, F.logits, c.mask, NULL, NULL),
                     STEM_OK);
    assert_true(memcmp(c.mask, F.mask, ncell(&F)) != 0);
    run(&F, &c, G_MASK, STEM_PREC_BF16, &r);
    if (r.verdict != STEM_CHECK_FAIL)
        show(&r);
    assert_int_equal(r.verdict, STEM_CHECK_FAIL);
    assert_int_equal(r.stage[STEM_STAGE_MASK].verdict, STEM_CHECK_FAIL);
    if (sinks < F.p.sinks) {
        const stem_check_item *x = find(&r, STEM_STAGE_MASK,
                                        STEM_KIND_MASK_SINK, -1, -1, 3, -1);
        assert_non_null(x);
        assert_true(x->gpu == 0 && x->ref == 1);
    } else {
        /* block 4 kept in every row: a row whose top-k lacks it keeps
         * one block too many; most sparse rows are called out by count */
        int64_t sparse = 0;
        for (int64_t h = 0; h < HQ; h++)
            for (int64_t i = 0; i < F.dm.qb; i++)
                sparse += sparse_row(&F, h, i);
        if (r.rows_count_off * 2 <= sparse)
            show(&r);
        assert_true(r.rows_count_off * 2 > sparse);
        const stem_check_item *x = find(&r, STEM_STAGE_MASK,
                                        STEM_KIND_MASK_COUNT, 0, -1, -1, -1);
        assert_non_null(x);
        assert_true(x->gpu > x->ref);
        assert_true(sparse_row(&F, 0, x->qblock));
        assert_int_equal(F.mask[at(&F, 0, x->qblock) + 4], 0);
        assert_int_equal(c.mask[at(&F, 0, x->qblock) + 4], 1);
    }
    stem_check_report_free(&r);
    gpu_free(&c);
}

static void test_sinks_three_fails(void **state)
{
    (void)state;
    sinks_case(3);
}

static void test_sinks_five_fails(void **state)
{
    (void)state;
    sinks_case(5);
}

/* An exchange at the threshold is a tie within tau, a fault beyond it;
 * a dropped window block and a kept future block are faults. */
static void test_mask_ties_and_forced_blocks(void **state)
{
    (void)state;
    const int64_t h = 0;
    int64_t I = -1;
    for (int64_t i = F.dm.qb - 1; i >= 0 && I < 0; i--)
        if (sparse_row(&F, h, i))
            I = i;
    assert_true(I > 8);
    const float *L = F.logits + at(&F, h, I);
    int64_t lo = -1, hi = -1;      /* lowest kept top-k, highest dropped */
    for (int64_t J = 0; J <= I; J++) {
        if (forced(&F, I, J))
            continue;
        if (F.mask[at(&F, h, I) + J] && (lo < 0 || L[J] < L[lo]))
            lo = J;
        if (!F.mask[at(&F, h, I) + J] && (hi < 0 || L[J] > L[hi]))
            hi = J;
    }
    assert_true(lo >= 0 && hi >= 0);
    double gap = (double)L[lo] - (double)L[hi];
    assert_true(gap > 0);
    gpu_case c;
    stem_check_report r;
    stem_check_options o;
    gpu_new(&F, &c);
    c.mask[at(&F, h, I) + lo] = 0;
    c.mask[at(&F, h, I) + hi] = 1;
    assert_int_equal(stem_check_options_init(&o, STEM_PREC_BF16), STEM_OK);
    o.tau = gap * 1.01;
    assert_int_equal(stem_check(&F.p, &F.q.t, &F.k.t, &F.v.t,
                                gpu_views(&F, &c, G_MASK), &o, &r), STEM_OK);
    if (r.verdict != STEM_CHECK_PASS)
        show(&r);
    assert_int_equal(r.verdict, STEM_CHECK_PASS);
    assert_int_equal(r.mask_diffs, 2);
    assert_int_equal(r.mask_ties, 2);
    assert_true(fabs(r.max_tie_gap - gap) < 1e-6 * (1 + fabs(gap)));
    assert_int_equal(r.n_ties, 2);
    stem_check_report_free(&r);

    o.tau = gap * 0.5;              /* the kept one is now beyond tau */
    assert_int_equal(stem_check(&F.p, &F.q.t, &F.k.t, &F.v.t,
                                gpu_views(&F, &c, G_MASK), &o, &r), STEM_OK);
    assert_int_equal(r.verdict, STEM_CHECK_FAIL);
    assert_non_null(find(&r, STEM_STAGE_MASK, STEM_KIND_MASK_GAP, h, I, hi,
                         -1));
    stem_check_report_free(&r);

    memcpy(c.mask, F.mask, ncell(&F));
    c.mask[at(&F, 1, 12) + 11] = 0;     /* window of row 12 */
    c.mask[at(&F, 2, 3) + 5] = 1;       /* beyond the diagonal of row 3 */
    run(&F, &c, G_MASK, STEM_PREC_BF16, &r);
    assert_int_equal(r.verdict, STEM_CHECK_FAIL);
    assert_non_null(find(&r, STEM_STAGE_MASK, STEM_KIND_MASK_WINDOW, 1, 12,
                         11, -1));
    assert_non_null(find(&r, STEM_STAGE_MASK, STEM_KIND_MASK_FUTURE, 2, 3, 5,
                         -1));
    stem_check_report_free(&r);
    gpu_free(&c);
}

/* Near-tied random data: an all-zero head is still wrong output, and a
 * budget one short in every sparse row still fails. */
static void test_random_data_faults(void **state)
{
    (void)state;
    fixture f;
    gpu_case c;
    stem_check_report r;
    int64_t kb0 = -1;
    fixture_make_kind(&f, LK, 1);
    gpu_new(&f, &c);
    memset(c.out + (size_t)3 * f.dm.lq * D, 0,
           (size_t)f.dm.lq * D * sizeof(uint16_t));
    run(&f, &c, G_MASK | G_OUT, STEM_PREC_BF16, &r);
    if (r.heads[3].status != STEM_KIND_OUT_WRONG_HEAD)
        show(&r);
    assert_int_equal(r.verdict, STEM_CHECK_FAIL);
    assert_int_equal(r.heads[3].status, STEM_KIND_OUT_WRONG_HEAD);
    assert_null(find(&r, STEM_STAGE_OUT, STEM_KIND_OUT_IGNORES_MASK, -1, -1,
                     -1, -1));
    stem_check_report_free(&r);

    memcpy(c.mask, f.mask, ncell(&f));
    assert_true(doctor_budget(&f, &c, -1, &kb0) > 10);
    run(&f, &c, G_MASK, STEM_PREC_BF16, &r);
    if (r.verdict != STEM_CHECK_FAIL)
        show(&r);
    assert_int_equal(r.verdict, STEM_CHECK_FAIL);
    assert_int_equal(r.stage[STEM_STAGE_MASK].verdict, STEM_CHECK_FAIL);
    assert_non_null(find(&r, STEM_STAGE_MASK, STEM_KIND_MASK_COUNT, -1, -1,
                         -1, -1));
    stem_check_report_free(&r);
    gpu_free(&c);
    fixture_free(&f);
}

/* ---------------------------------------------------------- non-finite */

static void test_nan_located(void **state)
{
    (void)state;
    gpu_case c;
    stem_check_report r;
    gpu_new(&F, &c);
    c.logits[at(&F, 1, 10) + 3] = NAN;
    c.out[((size_t)2 * F.dm.lq + 777) * D + 5] = 0x7fc0;     /* bf16 NaN */
    c.lse[3 * F.dm.lq + 99] = NAN;
    run(&F, &c, G_ALL, STEM_PREC_BF16, &r);
    assert_int_equal(r.verdict, STEM_CHECK_FAIL);
    assert_int_equal(r.logit_nonfinite, 1);
    assert_non_null(find(&r, STEM_STAGE_LOGITS, STEM_KIND_LOGIT_NONFINITE, 1,
                         10, 3, -1));
    assert_non_null(find(&r, STEM_STAGE_OUT, STEM_KIND_OUT_NONFINITE, 2,
                         777 / B, -1, 777));
    assert_non_null(find(&r, STEM_STAGE_LSE, STEM_KIND_LSE_NONFINITE, 3,
                         99 / B, -1, 99));
    assert_int_equal(r.stage[STEM_STAGE_MASK].verdict, STEM_CHECK_PASS);
    stem_check_report_free(&r);
    gpu_free(&c);
}

/* ----------------------------------------------------------------- lse */

static void test_lse_faults(void **state)
{
    (void)state;
    gpu_case c;
    stem_check_report r;
    gpu_new(&F, &c);
    c.lse[100] += 0.5f;
    run(&F, &c, G_MASK | G_LSE, STEM_PREC_BF16, &r);
    assert_int_equal(r.verdict, STEM_CHECK_FAIL);
    assert_int_equal(r.stage[STEM_STAGE_LSE].faults, 1);
    const stem_check_item *x = find(&r, STEM_STAGE_LSE, STEM_KIND_LSE_ROW, 0,
                                    100 / B, -1, 100);
    assert_non_null(x);
    assert_true(fabs(x->err - 0.5) < 1e-3);
    assert_false(r.lse_base2_hint);
    stem_check_report_free(&r);
    for (size_t i = 0; i < (size_t)HQ * F.dm.lq; i++)
        c.lse[i] = (float)(F.lse[i] / M_LN2);
    run(&F, &c, G_MASK | G_LSE, STEM_PREC_BF16, &r);
    assert_int_equal(r.verdict, STEM_CHECK_FAIL);
    assert_true(r.lse_base2_hint);
    stem_check_report_free(&r);
    gpu_free(&c);
}

/* ---------------------------------------------------------- parameters */

/* Outputs of other parameters (alpha 1.0) judged at alpha 0.7: a hint. */
static void test_wrong_parameters_hint(void **state)
{
    (void)state;
    gpu_case c;
    stem_check_report r;
    gpu_new(&F, &c);
    stem_params pa = F.p;
    pa.alpha = 1.0;
    assert_int_equal(stem_select(&pa, &F.dm, F.logits, c.mask, NULL, NULL),
                     STEM_OK);
    out_under_mask(&F, &c);
    run(&F, &c, G_LOGITS | G_MASK | G_OUT, STEM_PREC_BF16, &r);
    if (!strstr(r.hint, "--alpha"))
        show(&r);
    assert_int_equal(r.verdict, STEM_CHECK_FAIL);
    assert_int_equal(r.stage[STEM_STAGE_MASK].verdict, STEM_CHECK_FAIL);
    assert_int_equal(r.stage[STEM_STAGE_OUT].verdict, STEM_CHECK_PASS);
    assert_true(r.gpu_kept > r.ref_kept);
    assert_non_null(strstr(r.hint, "--alpha"));
    /* the hint is in the text */
    size_t n = stem_check_report_text(&r, 0, NULL, 0);
    char *buf = malloc(n + 1);
    assert_non_null(buf);
    stem_check_report_text(&r, 0, buf, n + 1);
    assert_non_null(strstr(buf, "--alpha"));
    free(buf);
    stem_check_report_free(&r);

    /* raw QK logits (hpc-ops) judged as angelslim: the profile named */
    stem_params ph;
    assert_int_equal(stem_params_init(&ph, STEM_PROFILE_HPCOPS), STEM_OK);
    ph.block = B;
    assert_int_equal(stem_block_logits(&ph, &F.q.t, &F.k.t, &F.v.t,
                                       c.logits), STEM_OK);
    run(&F, &c, G_LOGITS, STEM_PREC_BF16, &r);
    if (!strstr(r.hint, "--profile"))
        show(&r);
    assert_int_equal(r.verdict, STEM_CHECK_FAIL);
    assert_non_null(strstr(r.hint, "--profile"));
    stem_check_report_free(&r);
    gpu_free(&c);
}

/* --heads: only the heads asked for are judged. */
static void test_head_range(void **state)
{
    (void)state;
    gpu_case c;
    stem_check_report r;
    stem_check_options o;
    gpu_new(&F, &c);
    memset(c.out, 0, (size_t)F.dm.lq * D * sizeof(uint16_t));   /* head 0 */
    assert_int_equal(stem_check_options_init(&o, STEM_PREC_BF16), STEM_OK);
    o.head_begin = 1;
    o.head_count = 2;
    o.dense_test = 0;
    assert_int_equal(stem_check(&F.p, &F.q.t, &F.k.t, &F.v.t,
                                gpu_views(&F, &c, G_ALL), &o, &r), STEM_OK);
    assert_int_equal(r.verdict, STEM_CHECK_PASS);
    assert_int_equal(r.head_begin, 1);
    assert_int_equal(r.head_end, 3);
    assert_int_equal(r.n_heads, 2);
    assert_int_equal(r.heads[0].head, 1);
    stem_check_report_free(&r);
    o.head_begin = 0;
    o.head_count = 1;
    assert_int_equal(stem_check(&F.p, &F.q.t, &F.k.t, &F.v.t,
                                gpu_views(&F, &c, G_ALL), &o, &r), STEM_OK);
    assert_int_equal(r.verdict, STEM_CHECK_FAIL);
    assert_int_equal(r.n_heads, 1);
    stem_check_report_free(&r);
    gpu_free(&c);
}

/* ------------------------------------------------------ arguments, API */

static void test_bad_arguments(void **state)
{
    (void)state;
    gpu_case c;
    stem_check_report r;
    stem_check_options o;
    gpu_new(&F, &c);
    const stem_check_gpu *g = gpu_views(&F, &c, G_ALL);
    stem_check_gpu none = {NULL, NULL, NULL, NULL};
    assert_int_equal(stem_check(&F.p, &F.q.t, &F.k.t, &F.v.t, &none, NULL,
                                &r), STEM_ERR_NULL);
    assert_int_equal(r.verdict, STEM_CHECK_ABSENT);
    assert_null(r.heads);
    assert_int_equal(stem_check(&F.p, &F.q.t, &F.k.t, &F.v.t, g, NULL, NULL),
                     STEM_ERR_NULL);
    assert_int_equal(stem_check(NULL, &F.q.t, &F.k.t, &F.v.t, g, NULL, &r),
                     STEM_ERR_NULL);
    /* a mask of the wrong shape, a mask of floats */
    stem_tensor bad = c.tm;
    bad.tokens--;
    stem_check_gpu gb = {NULL, &bad, NULL, NULL};
    assert_int_equal(stem_check(&F.p, &F.q.t, &F.k.t, &F.v.t, &gb, NULL, &r),
                     STEM_ERR_SHAPE);
    bad = c.tl;
    gb.mask = &bad;
    assert_int_equal(stem_check(&F.p, &F.q.t, &F.k.t, &F.v.t, &gb, NULL, &r),
                     STEM_ERR_DTYPE);
    stem_tensor lse3 = c.ts;
    lse3.dim = 2;
    stem_check_gpu gl = {NULL, NULL, NULL, &lse3};
    assert_int_equal(stem_check(&F.p, &F.q.t, &F.k.t, &F.v.t, &gl, NULL, &r),
                     STEM_ERR_SHAPE);
    /* options */
    assert_int_equal(stem_check_options_init(NULL, STEM_PREC_BF16),
                     STEM_ERR_NULL);
    assert_int_equal(stem_check_options_init(&o, STEM_PREC_COUNT),
                     STEM_ERR_PARAM);
    assert_int_equal(stem_check_options_init(&o, STEM_PREC_BF16), STEM_OK);
    o.head_begin = HQ;
    assert_int_equal(stem_check(&F.p, &F.q.t, &F.k.t, &F.v.t, g, &o, &r),
                     STEM_ERR_PARAM);
    o.head_begin = 1;
    o.head_count = HQ;
    assert_int_equal(stem_check(&F.p, &F.q.t, &F.k.t, &F.v.t, g, &o, &r),
                     STEM_ERR_PARAM);
    o.head_count = 0;
    o.sigmas = -1;
    assert_int_equal(stem_check(&F.p, &F.q.t, &F.k.t, &F.v.t, g, &o, &r),
                     STEM_ERR_PARAM);
    o.sigmas = NAN;
    assert_int_equal(stem_check(&F.p, &F.q.t, &F.k.t, &F.v.t, g, &o, &r),
                     STEM_ERR_PARAM);
    assert_int_equal(r.verdict, STEM_CHECK_ABSENT);
    stem_check_report_free(NULL);
    stem_check_report_free(&r);
    gpu_free(&c);
}

static void test_names(void **state)
{
    (void)state;
    stem_prec p;
    assert_int_equal(stem_prec_from_name("torch.bfloat16", &p), STEM_OK);
    assert_int_equal(p, STEM_PREC_BF16);
    assert_int_equal(stem_prec_from_name("float8_e4m3fn", &p), STEM_OK);
    assert_int_equal(p, STEM_PREC_FP8);
    assert_int_equal(stem_prec_from_name("HALF", &p), STEM_OK);
    assert_int_equal(p, STEM_PREC_FP16);
    p = STEM_PREC_FP32;
    assert_int_equal(stem_prec_from_name("int8", &p), STEM_ERR_PARAM);
    assert_int_equal(p, STEM_PREC_FP32);
    assert_int_equal(stem_prec_from_name(NULL, &p), STEM_ERR_NULL);
    assert_string_equal(stem_prec_name(STEM_PREC_FP8), "fp8");
    assert_string_equal(stem_prec_name(STEM_PREC_COUNT), "?");
    assert_true(stem_prec_unit(STEM_PREC_BF16) == 0x1p-8);
    assert_true(stem_prec_unit(STEM_PREC_FP8) == 0x1p-4);
    assert_string_equal(stem_check_stage_name(STEM_STAGE_SELECTION),
                        "selection");
    assert_string_equal(stem_check_stage_name(STEM_STAGE_COUNT), "?");
    assert_true(stem_check_kind_is_fault(STEM_KIND_MASK_COUNT));
    assert_false(stem_check_kind_is_fault(STEM_KIND_MASK_TIE));
    assert_false(stem_check_kind_is_fault(STEM_KIND_SELECT_TIE));
    assert_false(stem_check_kind_is_fault(STEM_KIND_MASK_UNREAD));
    assert_false(stem_check_kind_is_fault(STEM_KIND_COUNT));
    for (int k = 0; k < STEM_KIND_COUNT; k++)
        assert_string_not_equal(stem_check_kind_name((stem_check_kind)k), "?");
}

/* Text renders snprintf style; JSON parses and carries the verdict. */
static void test_renderers(void **state)
{
    (void)state;
    gpu_case c;
    stem_check_report r;
    gpu_new(&F, &c);
    memset(c.out + ((size_t)1 * F.dm.lq + 300) * D, 0, D * sizeof(uint16_t));
    run(&F, &c, G_ALL, STEM_PREC_BF16, &r);
    assert_int_equal(r.verdict, STEM_CHECK_FAIL);
    size_t n = stem_check_report_text(&r, 0, NULL, 0);
    assert_true(n > 20);
    char *full = malloc(n + 1), small[16];
    assert_non_null(full);
    assert_int_equal(stem_check_report_text(&r, 0, full, n + 1), n);
    assert_non_null(strstr(full, "FAIL"));
    assert_int_equal(stem_check_report_text(&r, 0, small, sizeof(small)), n);
    assert_int_equal(strlen(small), sizeof(small) - 1);
    assert_memory_equal(small, full, sizeof(small) - 1);
    free(full);

    n = stem_check_report_json(&r, NULL, 0);
    char *js = malloc(n + 1);
    assert_non_null(js);
    assert_int_equal(stem_check_report_json(&r, js, n + 1), n);
    cJSON *j = cJSON_Parse(js);
    if (!j)
        print_message("JSON: %s\n", js);
    assert_non_null(j);
    assert_non_null(strstr(js, "fail"));
    cJSON_Delete(j);
    free(js);
    stem_check_report_free(&r);
    assert_int_equal(stem_check_report_text(&r, 0, NULL, 0) > 0, 1);
    gpu_free(&c);
}

/* ------------------------------------- the tool's tie classification */

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_genuine_bf16_noise_passes),
        cmocka_unit_test(test_genuine_f64_oracle_passes_fp32),
        cmocka_unit_test(test_budget_one_short_fails),
        cmocka_unit_test(test_budget_one_over_fails),
        cmocka_unit_test(test_pv_skips_block_in_one_qblock_fails),
        cmocka_unit_test(test_zero_row_fails),
        cmocka_unit_test(test_zero_head_is_wrong_output),
        cmocka_unit_test(test_dense_head_ignores_mask),
        cmocka_unit_test(test_swapped_heads_fail),
        cmocka_unit_test(test_shifted_causal_offset_fails),
        cmocka_unit_test(test_sinks_three_fails),
        cmocka_unit_test(test_sinks_five_fails),
        cmocka_unit_test(test_mask_ties_and_forced_blocks),
        cmocka_unit_test(test_random_data_faults),
        cmocka_unit_test(test_nan_located),
        cmocka_unit_test(test_lse_faults),
        cmocka_unit_test(test_wrong_parameters_hint),
        cmocka_unit_test(test_head_range),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_renderers),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
