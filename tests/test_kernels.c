/*
 * test_kernels.c - every SIMD kernel against its scalar twin, bit for bit.
 *
 * For each instruction set that stem_kernels_for() offers on this machine
 * (besides scalar), each kernel runs on many random shapes - edge rows and
 * columns, odd head dims, unaligned pointers and leading dimensions, huge and
 * tiny magnitudes, -inf and finite running maxima - from the same inputs as
 * the scalar twin, and the whole output buffers (gaps between rows included,
 * so stray writes are caught too) must compare equal with memcmp.  The exp
 * lanes are also checked against SLEEF's FMA scalar expf over a dense sweep
 * of [-104, 0], and the bf16 mode's e_b against exp in double.
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
#include <sleef.h>

#include "kernels.h"
#include "expb.h"
#include "common/testutil.h"

/* sleef.h declares the FMA scalar variants only when the compiler targets
 * FMA; the symbol is in every x86-64 and AArch64 build of the library. */
#ifndef FP_FAST_FMA
float Sleef_expf1_u10purecfma(float);
#endif

static const int head_dims[] = {1, 3, 8, 16, 17, 64, 100, 128, 256};
#define N_HEAD_DIMS ((int)(sizeof head_dims / sizeof head_dims[0]))

/* The SIMD tables under test (filled by setup). */
static const stem_kernels *isas[STEM_ISA_COUNT];
static int n_isas;
static const stem_kernels *ref;

static int setup(void **state)
{
    (void)state;
    ref = stem_kernels_for(STEM_ISA_SCALAR);
    n_isas = 0;
    for (int i = 0; i < STEM_ISA_COUNT; i++) {
        if (i == STEM_ISA_SCALAR)
            continue;
        const stem_kernels *k = stem_kernels_for((stem_isa)i);
        if (k)
            isas[n_isas++] = k;
    }
    printf("[ INFO     ] kernel ISAs tested against scalar:");
    for (int i = 0; i < n_isas; i++)
        printf(" %s", stem_isa_name(isas[i]->isa));
    printf("%s\n", n_isas ? "" : " none (no SIMD table runs here)");
    return ref ? 0 : -1;
}

/* ---------------------------------------------------------------- buffers */

/* Values of one of several magnitude regimes (never NaN or Inf). */
static float draw(tu_rng *r, int regime)
{
    double x = tu_rng_normal(r);
    switch (regime) {
    case 0: return (float)x;
    case 1: return (float)(x * 1e15);       /* huge */
    case 2: return (float)(x * 1e-20);      /* products are subnormal */
    case 3: return (float)(x * pow(10.0, (double)tu_rng_int(r, -12, 12)));
    default: return (float)(tu_rng_int(r, -3, 3)); /* exact small ints, ties */
    }
}

/* A buffer of n floats at a random misalignment (0..3 floats), filled. */
typedef struct buf {
    float *base, *p;
    size_t n;
} buf;

static buf buf_new(tu_rng *r, size_t n, int regime)
{
    buf b;
    int shift = (int)tu_rng_int(r, 0, 3);
    b.base = malloc((n + 4) * sizeof(float));
    assert_non_null(b.base);
    b.p = b.base + shift;
    b.n = n;
    for (size_t i = 0; i < n; i++)
        b.p[i] = draw(r, regime);
    return b;
}

/* A second buffer, same misalignment, same bytes. */
static buf buf_copy(const buf *a)
{
    buf b;
    b.base = malloc((a->n + 4) * sizeof(float));
    assert_non_null(b.base);
    b.p = b.base + (a->p - a->base);
    b.n = a->n;
    memcpy(b.p, a->p, a->n * sizeof(float));
    return b;
}

static void buf_free(buf *b)
{
    free(b->base);
    b->base = b->p = NULL;
}

static void expect_same(const void *a, const void *b, size_t bytes,
                        const char *what, const char *isa, int rows, int cols,
                        int d)
{
    if (memcmp(a, b, bytes) != 0) {
        const unsigned char *x = a, *y = b;
        size_t at = 0;
        while (x[at] == y[at])
            at++;
        fail_msg("%s on %s differs from scalar (rows %d cols %d d %d, "
                 "first byte %zu)", what, isa, rows, cols, d, at);
    }
}

/* ---------------------------------------------------------------- qk_tile */

static void qk_case(tu_rng *r, const stem_kernels *k, int rows, int cols,
                    int d)
{
    int regime = (int)tu_rng_int(r, 0, 4);
    int ldq = d + (int)tu_rng_int(r, 0, 5);
    int ldk = cols + (int)tu_rng_int(r, 0, 5);
    int lds = cols + (int)tu_rng_int(r, 0, 5);
    buf q = buf_new(r, (size_t)rows * ldq, regime);
    buf kt = buf_new(r, (size_t)d * ldk, regime);
    buf s0 = buf_new(r, (size_t)rows * lds, 0);
    buf s1 = buf_copy(&s0);
    ref->qk_tile(rows, cols, d, q.p, ldq, kt.p, ldk, s0.p, lds);
    k->qk_tile(rows, cols, d, q.p, ldq, kt.p, ldk, s1.p, lds);
    expect_same(s0.p, s1.p, s0.n * sizeof(float), "qk_tile",
                stem_isa_name(k->isa), rows, cols, d);
    buf_free(&q), buf_free(&kt), buf_free(&s0), buf_free(&s1);
}

static void test_qk_tile(void **state)
{
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 1);
    for (int t = 0; t < n_isas; t++) {
        for (int di = 0; di < N_HEAD_DIMS; di++) {
            int d = head_dims[di];
            for (int rows = 1; rows <= 13; rows++)
                qk_case(&r, isas[t], rows, (int)tu_rng_int(&r, 1, 130), d);
            for (int cols = 1; cols <= 130; cols += (cols < 40 ? 1 : 7))
                qk_case(&r, isas[t], (int)tu_rng_int(&r, 1, 13), cols, d);
            qk_case(&r, isas[t], 128, 128, d);
            qk_case(&r, isas[t], 37, 130, d);
        }
        qk_case(&r, isas[t], 7, 33, 600); /* d beyond one packed chunk */
    }
}

/* ---------------------------------------------------------------- pv_tile */

static void pv_case(tu_rng *r, const stem_kernels *k, int rows, int cols,
                    int d)
{
    int regime = (int)tu_rng_int(r, 0, 4);
    int ldp = cols + (int)tu_rng_int(r, 0, 5);
    int ldv = d + (int)tu_rng_int(r, 0, 5);
    int ldo = d + (int)tu_rng_int(r, 0, 5);
    buf p = buf_new(r, (size_t)rows * ldp, regime);
    buf v = buf_new(r, (size_t)cols * ldv, regime);
    buf al = buf_new(r, (size_t)rows, 0);
    for (int i = 0; i < rows; i++)
        al.p[i] = (float)tu_rng_uniform(r);
    buf o0 = buf_new(r, (size_t)rows * ldo, regime);
    buf o1 = buf_copy(&o0);
    const float *alpha = tu_rng_int(r, 0, 3) ? al.p : NULL;
    ref->pv_tile(rows, cols, d, p.p, ldp, v.p, ldv, alpha, o0.p, ldo);
    k->pv_tile(rows, cols, d, p.p, ldp, v.p, ldv, alpha, o1.p, ldo);
    expect_same(o0.p, o1.p, o0.n * sizeof(float), "pv_tile",
                stem_isa_name(k->isa), rows, cols, d);
    buf_free(&p), buf_free(&v), buf_free(&al), buf_free(&o0), buf_free(&o1);
}

static void test_pv_tile(void **state)
{
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 2);
    for (int t = 0; t < n_isas; t++) {
        for (int di = 0; di < N_HEAD_DIMS; di++) {
            int d = head_dims[di];
            for (int rows = 1; rows <= 13; rows++)
                pv_case(&r, isas[t], rows, (int)tu_rng_int(&r, 1, 130), d);
            for (int cols = 1; cols <= 130; cols += (cols < 40 ? 1 : 7))
                pv_case(&r, isas[t], (int)tu_rng_int(&r, 1, 13), cols, d);
            pv_case(&r, isas[t], 128, 128, d);
        }
        pv_case(&r, isas[t], 5, 700, 40); /* cols beyond one packed chunk */
    }
}

/* ----------------------------------------------------------- softmax_rows */

typedef struct sm_in {
    int rows, cols, lds;
    float scale;
    int *valid;
    buf s, m, l, a;
} sm_in;

/* softmax_rows_bf16 on the same inputs: s must stay as it was, p (with
 * gaps and a random fill) equal to the twin's. */
static void sm16_run_compare(const stem_kernels *k, const sm_in *in)
{
    const int ldp = ((in->cols + 1) & ~1) + (in->lds - in->cols);
    tu_rng r;
    tu_rng_seed(&r, (uint64_t)in->rows * 1000 + (uint64_t)in->cols);
    buf p = buf_new(&r, (size_t)in->rows * ldp, 1), p0 = buf_copy(&p);
    buf s = buf_copy(&in->s), m = buf_copy(&in->m), l = buf_copy(&in->l);
    buf a = buf_copy(&in->a);
    buf m0 = buf_copy(&in->m), l0 = buf_copy(&in->l), a0 = buf_copy(&in->a);
    ref->softmax_rows_bf16(in->rows, in->cols, in->valid, in->scale, in->s.p,
                           in->lds, m0.p, l0.p, a0.p, p0.p, ldp);
    k->softmax_rows_bf16(in->rows, in->cols, in->valid, in->scale, s.p,
                         in->lds, m.p, l.p, a.p, p.p, ldp);
    const char *name = stem_isa_name(k->isa);
    expect_same(in->s.p, s.p, s.n * 4, "softmax_rows_bf16 s untouched", name,
                in->rows, in->cols, 0);
    expect_same(p0.p, p.p, p.n * 4, "softmax_rows_bf16 p", name, in->rows, in->cols, 0);
    expect_same(m0.p, m.p, m.n * 4, "softmax_rows_bf16 m", name, in->rows, in->cols, 0);
    expect_same(l0.p, l.p, l.n * 4, "softmax_rows_bf16 l", name, in->rows, in->cols, 0);
    expect_same(a0.p, a.p, a.n * 4, "softmax_rows_bf16 alpha", name,
                in->rows, in->cols, 0);
    buf_free(&p), buf_free(&p0), buf_free(&s), buf_free(&m), buf_free(&l);
    buf_free(&a), buf_free(&m0), buf_free(&l0), buf_free(&a0);
}

static void sm_run_compare(const stem_kernels *k, const sm_in *in)
{
    buf s = buf_copy(&in->s), m = buf_copy(&in->m), l = buf_copy(&in->l);
    buf a = buf_copy(&in->a);
    buf s0 = buf_copy(&in->s), m0 = buf_copy(&in->m), l0 = buf_copy(&in->l);
    buf a0 = buf_copy(&in->a);
    ref->softmax_rows(in->rows, in->cols, in->valid, in->scale, s0.p, in->lds,
                      m0.p, l0.p, a0.p);
    k->softmax_rows(in->rows, in->cols, in->valid, in->scale, s.p, in->lds,
                    m.p, l.p, a.p);
    const char *name = stem_isa_name(k->isa);
    expect_same(s0.p, s.p, s.n * 4, "softmax_rows p", name, in->rows, in->cols, 0);
    expect_same(m0.p, m.p, m.n * 4, "softmax_rows m", name, in->rows, in->cols, 0);
    expect_same(l0.p, l.p, l.n * 4, "softmax_rows l", name, in->rows, in->cols, 0);
    expect_same(a0.p, a.p, a.n * 4, "softmax_rows alpha", name, in->rows,
                in->cols, 0);
    buf_free(&s), buf_free(&m), buf_free(&l), buf_free(&a);
    buf_free(&s0), buf_free(&m0), buf_free(&l0), buf_free(&a0);
}

static void sm_case(tu_rng *r, const stem_kernels *k, int rows, int cols)
{
    sm_in in;
    int regime = (int)tu_rng_int(r, 0, 4);
    in.rows = rows;
    in.cols = cols;
    in.lds = cols + (int)tu_rng_int(r, 0, 5);
    in.scale = (float)(tu_rng_uniform(r) * 0.5 + 0.01);
    in.valid = malloc((size_t)rows * sizeof(int));
    assert_non_null(in.valid);
    in.s = buf_new(r, (size_t)rows * in.lds, regime);
    if (regime == 0) /* a wide spread: many exps underflow past -104 */
        for (size_t i = 0; i < in.s.n; i++)
            in.s.p[i] *= (float)tu_rng_int(r, 1, 400);
    in.m = buf_new(r, (size_t)rows, 0);
    in.l = buf_new(r, (size_t)rows, 0);
    in.a = buf_new(r, (size_t)rows, 0);
    for (int i = 0; i < rows; i++) {
        int how = (int)tu_rng_int(r, 0, 3);
        in.valid[i] = how == 0 ? cols : how == 1 ? 1 : (int)tu_rng_int(r, 1, cols);
        int first = tu_rng_int(r, 0, 1) != 0;
        float *row = in.s.p + (size_t)i * in.lds;
        in.m.p[i] = first ? -INFINITY : row[0] * in.scale + draw(r, regime);
        in.l.p[i] = first ? 0.0f : (float)(tu_rng_uniform(r) * 100.0);
    }
    for (int t = 0; t < 2; t++) {
        sm_run_compare(k, &in);
        sm16_run_compare(k, &in);
        /* signed zeros as the maximum: the sign of m must still match */
        for (size_t i = 0; i < in.s.n; i++)
            in.s.p[i] = tu_rng_int(r, 0, 3) == 0 ? -0.0f
                        : tu_rng_int(r, 0, 2) ? 0.0f : -fabsf(in.s.p[i]);
        for (int i = 0; i < rows; i++)
            if (in.m.p[i] > 0.0f)
                in.m.p[i] = tu_rng_int(r, 0, 1) ? -0.0f : -INFINITY;
    }
    free(in.valid);
    buf_free(&in.s), buf_free(&in.m), buf_free(&in.l), buf_free(&in.a);
}

static void test_softmax_rows(void **state)
{
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 3);
    for (int t = 0; t < n_isas; t++) {
        for (int rows = 1; rows <= 13; rows++)
            for (int rep = 0; rep < 8; rep++)
                sm_case(&r, isas[t], rows, (int)tu_rng_int(&r, 1, 130));
        for (int cols = 1; cols <= 130; cols++)
            sm_case(&r, isas[t], (int)tu_rng_int(&r, 1, 13), cols);
        sm_case(&r, isas[t], 128, 128);
        sm_case(&r, isas[t], 3, 257);
        sm_case(&r, isas[t], 2, 1000);
    }
}

/*
 * The exp lanes against Sleef_expf1_u10purecfma: rows with m = 0, scale 1
 * and arguments x <= 0 give p = e(x - 0) = e(x).  Every 997th float of
 * [-104, -0] plus edges, and arguments just below -104 (which give 0).
 */
static void test_exp_sweep(void **state)
{
    (void)state;
    enum { COLS = 128, ROWS = 8, CHUNK = COLS * ROWS };
    static float xs[CHUNK], s[CHUNK];
    float m[ROWS], l[ROWS], a[ROWS];
    int valid[ROWS];
    for (int i = 0; i < ROWS; i++)
        valid[i] = COLS;

    const float edges[] = {-0.0f, 0.0f, -1e-45f, -1.17549435e-38f, -1e-7f,
                           -0.5f, -1.0f, -2.0f, -10.0f, -87.3365f, -88.0f,
                           -88.7228394f, -100.0f, -103.972f, -103.99999f,
                           -104.0f, nextafterf(-104.0f, 0.0f),
                           nextafterf(-104.0f, -200.0f), -104.5f, -200.0f,
                           -1e30f, -INFINITY};
    const int n_edges = (int)(sizeof edges / sizeof edges[0]);
    uint32_t lo = 0x80000000u, hi;
    float f104 = -104.0f;
    memcpy(&hi, &f104, 4);
    uint64_t total = (uint64_t)(hi - lo) / 997 + 1 + (uint64_t)n_edges;

    for (int t = 0; t < n_isas; t++) {
        uint64_t done = 0, mismatches = 0;
        uint32_t bits = lo;
        int e = 0;
        while (done < total) {
            int n = 0;
            for (; n < CHUNK && done + (uint64_t)n < total; n++) {
                if (e < n_edges) {
                    xs[n] = edges[e++];
                } else {
                    memcpy(&xs[n], &bits, 4);
                    bits += 997;
                }
            }
            for (int i = n; i < CHUNK; i++)
                xs[i] = -1.0f;
            memcpy(s, xs, sizeof s);
            for (int i = 0; i < ROWS; i++) {
                m[i] = 0.0f;
                l[i] = 0.0f;
            }
            isas[t]->softmax_rows(ROWS, COLS, valid, 1.0f, s, COLS, m, l, a);
            for (int i = 0; i < n; i++) {
                float want = xs[i] >= STEM_EXP_MIN
                                 ? Sleef_expf1_u10purecfma(xs[i]) : 0.0f;
                if (memcmp(&want, &s[i], 4) != 0 && mismatches++ < 5)
                    print_error("%s exp(%a) = %a, SLEEF FMA scalar %a\n",
                                stem_isa_name(isas[t]->isa), (double)xs[i],
                                (double)s[i], (double)want);
            }
            done += (uint64_t)n;
        }
        printf("[ INFO     ] %s: %llu exp arguments in [-104, 0] and edges, "
               "%llu mismatches\n", stem_isa_name(isas[t]->isa),
               (unsigned long long)done, (unsigned long long)mismatches);
        assert_int_equal(mismatches, 0);
    }
}

/*
 * e_b of the bf16 mode (src/expb.h): the scalar twin against exp in double
 * on every 97th float of [STEM_EXPB_MIN, 0] (and edges), and every ISA's
 * lanes against the scalar twin bit for bit.  A lane is seen through l:
 * a row whose only column above STEM_EXPB_MIN is x, with m = 0 and l = 0,
 * ends with l = e_b(x) exactly (the other columns add +0).
 */
static void test_expb(void **state)
{
    (void)state;
    enum { COLS = 37, ROWS = 512 };
    static float s[ROWS * COLS], p[ROWS * (COLS + 1)], xs[ROWS];
    float m[ROWS], l[ROWS], a[ROWS];
    int valid[ROWS];
    const float edges[] = {-0.0f, 0.0f, -1e-45f, -1e-7f, -0.34657359f,
                           -0.5f, -1.0f, -10.0f, -37.999996f, -38.0f,
                           nextafterf(-38.0f, -100.0f), -100.0f};
    const int n_edges = (int)(sizeof edges / sizeof edges[0]);
    uint32_t bits = 0x80000000u, hi;
    float fmin = STEM_EXPB_MIN;
    memcpy(&hi, &fmin, 4);
    double worst = 0.0;
    uint64_t done = 0, mismatches = 0;
    int e = 0;
    while (bits <= hi || e < n_edges) {
        int n = 0;
        for (; n < ROWS && (bits <= hi || e < n_edges); n++) {
            if (e < n_edges) {
                xs[n] = edges[e++];
            } else {
                memcpy(&xs[n], &bits, 4);
                bits += 97;
            }
        }
        for (int i = 0; i < n; i++) {
            float want = stem_expb_ref(xs[i]);
            if (xs[i] >= STEM_EXPB_MIN) {
                double x = (double)xs[i], err = fabs((double)want - exp(x)) / exp(x);
                if (err > worst)
                    worst = err;
            } else {
                assert_true(want == 0.0f);
            }
        }
        for (int t = 0; t < n_isas + 1; t++) {
            const stem_kernels *k = t < n_isas ? isas[t] : ref;
            for (int i = 0; i < n; i++) {
                for (int j = 0; j < COLS; j++)
                    s[i * COLS + j] = -1e30f;
                s[i * COLS + (i + (int)done) % COLS] = xs[i];
                valid[i] = COLS;
                m[i] = 0.0f;
                l[i] = 0.0f;
            }
            k->softmax_rows_bf16(n, COLS, valid, 1.0f, s, COLS, m, l, a, p,
                                 COLS + 1);
            for (int i = 0; i < n; i++) {
                float want = stem_expb_ref(xs[i]);
                if (memcmp(&want, &l[i], 4) != 0 && mismatches++ < 5)
                    print_error("%s e_b(%a) = %a, scalar %a\n",
                                stem_isa_name(k->isa), (double)xs[i],
                                (double)l[i], (double)want);
            }
        }
        done += (uint64_t)n;
    }
    printf("[ INFO     ] e_b: %llu arguments in [-38, 0] and edges, largest "
           "relative error %.3g (%.2f float ulps of 2^-23), %llu lane "
           "mismatches over %d tables\n", (unsigned long long)done, worst,
           worst / 0x1p-23, (unsigned long long)mismatches, n_isas + 1);
    assert_int_equal(mismatches, 0);
    assert_true(worst < 1.5 * 0x1p-24); /* within 1.5 half-ulps of exp */
    assert_true(stem_expb_ref(0.0f) == 1.0f);
}

/* ---------------------------------------------------- sqnorm, group_sum */

static void test_sqnorm_rows(void **state)
{
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 4);
    for (int t = 0; t < n_isas; t++) {
        for (int d = 1; d <= 260; d += (d < 70 ? 1 : 9)) {
            int n = (int)tu_rng_int(&r, 1, 13);
            int ldx = d + (int)tu_rng_int(&r, 0, 5);
            buf x = buf_new(&r, (size_t)n * ldx, (int)tu_rng_int(&r, 0, 4));
            buf o0 = buf_new(&r, (size_t)n + 3, 0);
            buf o1 = buf_copy(&o0);
            ref->sqnorm_rows(n, d, x.p, ldx, o0.p);
            isas[t]->sqnorm_rows(n, d, x.p, ldx, o1.p);
            expect_same(o0.p, o1.p, o0.n * 4, "sqnorm_rows",
                        stem_isa_name(isas[t]->isa), n, 0, d);
            buf_free(&x), buf_free(&o0), buf_free(&o1);
        }
    }
}

static void test_group_sum(void **state)
{
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 5);
    for (int t = 0; t < n_isas; t++) {
        for (int di = 0; di < N_HEAD_DIMS; di++) {
            for (int rep = 0; rep < 12; rep++) {
                int d = head_dims[di] + (rep == 11 ? 7 : 0);
                int groups = (int)tu_rng_int(&r, 1, 9);
                int stride = (int)tu_rng_int(&r, 1, 9);
                int ldx = d + (int)tu_rng_int(&r, 0, 5);
                buf x = buf_new(&r, (size_t)groups * stride * ldx,
                                (int)tu_rng_int(&r, 0, 4));
                buf o0 = buf_new(&r, (size_t)stride * d + 3, 0);
                buf o1 = buf_copy(&o0);
                ref->group_sum(groups, stride, d, x.p, ldx, o0.p);
                isas[t]->group_sum(groups, stride, d, x.p, ldx, o1.p);
                expect_same(o0.p, o1.p, o0.n * 4, "group_sum",
                            stem_isa_name(isas[t]->isa), groups, stride, d);
                buf_free(&x), buf_free(&o0), buf_free(&o1);
            }
        }
    }
}

/* ------------------------------------------------------- the bf16 kernels */

/* bf16 bit patterns of random values of a regime, rounded as the library
 * packs them (stem_bf16_round), at a random misalignment. */
typedef struct hbuf {
    uint16_t *base, *p;
    size_t n;
} hbuf;

static hbuf hbuf_new(tu_rng *r, size_t n, int regime)
{
    hbuf b;
    int shift = (int)tu_rng_int(r, 0, 3);
    b.base = malloc((n + 4) * sizeof(uint16_t));
    assert_non_null(b.base);
    b.p = b.base + shift;
    b.n = n;
    for (size_t i = 0; i < n; i++)
        b.p[i] = stem_bf16_round(draw(r, regime));
    return b;
}

/* The bf16 kernels of the AMX table are fast but not bit-exact (kernels.h):
 * they are held to a distance instead (tests/test_amx.c). */
static int bf16_exact(const stem_kernels *k)
{
    return k->isa != STEM_ISA_AMX;
}

/* bf16_rows of the scalar twin against the contract written out here. */
static void test_bf16_round(void **state)
{
    (void)state;
    /* nearest even, and the flush below 2^-56 */
    assert_int_equal(stem_bf16_round(1.0f), 0x3f80);
    assert_int_equal(stem_bf16_round(0x1.01p0f), 0x3f80);   /* tie to even */
    assert_int_equal(stem_bf16_round(0x1.03p0f), 0x3f82);   /* tie to even, up */
    assert_int_equal(stem_bf16_round(0x1.0101p0f), 0x3f81); /* above the tie */
    assert_int_equal(stem_bf16_round(-0x1p-56f), 0xa380);
    assert_int_equal(stem_bf16_round(0x1.fcp-57f), 0x0000);
    assert_int_equal(stem_bf16_round(-0x1p-60f), 0x8000);
    assert_int_equal(stem_bf16_round(0x1.ffp-57f), 0x2380); /* rounds up to 2^-56 */
    float x[5] = {1.0f, 2.0f, 3.0f, 0x1.0101p0f, 5.0f}, y[6];
    ref->bf16_rows(1, 5, x, 5, y, 6);
    const float want[6] = {2.0f, 1.0f, 0x1.02p0f, 3.0f, 0.0f, 5.0f};
    assert_memory_equal(y, want, sizeof want);
    /* the dot model: odd product first within a pair */
    uint16_t a[2] = {stem_bf16_round(1.0f), stem_bf16_round(0x1p30f)};
    uint16_t b[2] = {stem_bf16_round(1.0f), stem_bf16_round(-1.0f)};
    assert_true(stem_bf16_dot_ref(0x1p30f, a, b, 2) == 1.0f);
}

static void qk16_case(tu_rng *r, const stem_kernels *k, int rows, int cols,
                      int d)
{
    int regime = (int)tu_rng_int(r, 0, 4), d2 = (d + 1) & ~1;
    int ldq = d2 + (int)tu_rng_int(r, 0, 5);
    int ldk = cols + (int)tu_rng_int(r, 0, 5);
    int lds = cols + (int)tu_rng_int(r, 0, 5);
    buf q = buf_new(r, (size_t)rows * ldq, regime);
    ref->bf16_rows(rows, d, q.p, ldq, q.p, ldq);
    hbuf kt = hbuf_new(r, (size_t)d2 * ldk, regime);
    if (d2 != d)
        memset(kt.p + (size_t)d * ldk, 0, (size_t)ldk * sizeof(uint16_t));
    buf s0 = buf_new(r, (size_t)rows * lds, 0);
    buf s1 = buf_copy(&s0);
    ref->qk_tile_bf16(rows, cols, d, q.p, ldq, kt.p, ldk, s0.p, lds);
    k->qk_tile_bf16(rows, cols, d, q.p, ldq, kt.p, ldk, s1.p, lds);
    expect_same(s0.p, s1.p, s0.n * sizeof(float), "qk_tile_bf16",
                stem_isa_name(k->isa), rows, cols, d);
    /* every element is the contract's dot (natural order, pairs) */
    if (rows <= 2 && cols <= 3) {
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < cols; j++) {
                uint16_t a[STEM_MAX_HEAD_DIM + 2], b[STEM_MAX_HEAD_DIM + 2];
                for (int t = 0; t < d2; t++) {
                    a[t] = stem_bf16_round(q.p[(size_t)i * ldq + (t ^ 1)]);
                    b[t] = kt.p[(size_t)t * ldk + j];
                }
                float want = stem_bf16_dot_ref(0.0f, a, b, d2);
                assert_memory_equal(&want, s0.p + (size_t)i * lds + j, 4);
            }
    }
    buf_free(&q), free(kt.base), buf_free(&s0), buf_free(&s1);
}

static void test_qk_tile_bf16(void **state)
{
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 11);
    const stem_kernels *all[STEM_ISA_COUNT + 1];
    int n = 0;
    all[n++] = ref; /* the twin against the dot model */
    for (int t = 0; t < n_isas; t++)
        if (bf16_exact(isas[t]))
            all[n++] = isas[t];
    for (int t = 0; t < n; t++) {
        for (int di = 0; di < N_HEAD_DIMS; di++) {
            int d = head_dims[di];
            if (d > 128)
                continue;
            for (int rows = 1; rows <= 13; rows++)
                qk16_case(&r, all[t], rows, (int)tu_rng_int(&r, 1, 130), d);
            for (int cols = 1; cols <= 130; cols += (cols < 40 ? 1 : 7))
                qk16_case(&r, all[t], (int)tu_rng_int(&r, 1, 13), cols, d);
            qk16_case(&r, all[t], 128, 128, d);
        }
        qk16_case(&r, all[t], 7, 33, 255);
        qk16_case(&r, all[t], 2, 3, 255);
        qk16_case(&r, all[t], 13, 33, 600); /* d beyond one packed chunk */
    }
}

static void pv16_case(tu_rng *r, const stem_kernels *k, int rows, int cols,
                      int d)
{
    int regime = (int)tu_rng_int(r, 0, 4), c2 = (cols + 1) & ~1;
    int ldp = c2 + (int)tu_rng_int(r, 0, 5);
    int ldv = d + (int)tu_rng_int(r, 0, 5);
    int ldo = d + (int)tu_rng_int(r, 0, 5);
    buf p = buf_new(r, (size_t)rows * ldp, regime);
    ref->bf16_rows(rows, cols, p.p, ldp, p.p, ldp);
    hbuf v = hbuf_new(r, (size_t)c2 * ldv, regime);
    if (c2 != cols)
        memset(v.p + (size_t)cols * ldv, 0, (size_t)ldv * sizeof(uint16_t));
    buf al = buf_new(r, (size_t)rows, 0);
    for (int i = 0; i < rows; i++)
        al.p[i] = (float)tu_rng_uniform(r);
    buf o0 = buf_new(r, (size_t)rows * ldo, regime);
    buf o1 = buf_copy(&o0);
    buf w = buf_new(r, (size_t)rows * d, 0);
    const float *alpha = tu_rng_int(r, 0, 3) ? al.p : NULL;
    ref->pv_tile_bf16(rows, cols, d, p.p, ldp, v.p, ldv, alpha, o0.p, ldo, w.p);
    k->pv_tile_bf16(rows, cols, d, p.p, ldp, v.p, ldv, alpha, o1.p, ldo, w.p);
    expect_same(o0.p, o1.p, o0.n * sizeof(float), "pv_tile_bf16",
                stem_isa_name(k->isa), rows, cols, d);
    buf_free(&p), free(v.base), buf_free(&al), buf_free(&o0), buf_free(&o1);
    buf_free(&w);
}

static void test_pv_tile_bf16(void **state)
{
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 12);
    for (int t = 0; t < n_isas; t++) {
        if (!bf16_exact(isas[t]))
            continue;
        for (int di = 0; di < N_HEAD_DIMS; di++) {
            int d = head_dims[di];
            for (int rows = 1; rows <= 13; rows++)
                pv16_case(&r, isas[t], rows, (int)tu_rng_int(&r, 1, 130), d);
            for (int cols = 1; cols <= 130; cols += (cols < 40 ? 1 : 7))
                pv16_case(&r, isas[t], (int)tu_rng_int(&r, 1, 13), cols, d);
            pv16_case(&r, isas[t], 128, 128, d);
        }
        pv16_case(&r, isas[t], 5, 701, 40); /* cols beyond one packed chunk */
    }
}

/* bf16_rows of every table against the twin (in place and not). */
static void test_bf16_rows(void **state)
{
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 13);
    for (int t = 0; t < n_isas; t++) {
        for (int c = 0; c < 200; c++) {
            int rows = (int)tu_rng_int(&r, 1, 9), n = (int)tu_rng_int(&r, 1, 140);
            int ld = ((n + 1) & ~1) + (int)tu_rng_int(&r, 0, 3);
            buf x = buf_new(&r, (size_t)rows * ld, (int)tu_rng_int(&r, 0, 4));
            buf y0 = buf_copy(&x), y1 = buf_copy(&x);
            ref->bf16_rows(rows, n, x.p, ld, y0.p, ld);
            isas[t]->bf16_rows(rows, n, y1.p, ld, y1.p, ld);
            expect_same(y0.p, y1.p, y0.n * 4, "bf16_rows",
                        stem_isa_name(isas[t]->isa), rows, n, 0);
            buf_free(&x), buf_free(&y0), buf_free(&y1);
        }
    }
}

/* A table that exists has every member. */
static void test_tables_complete(void **state)
{
    (void)state;
    for (int i = 0; i < STEM_ISA_COUNT; i++) {
        const stem_kernels *k = stem_kernels_for((stem_isa)i);
        if (!k)
            continue;
        assert_int_equal(k->isa, i);
        assert_non_null(k->qk_tile);
        assert_non_null(k->softmax_rows);
        assert_non_null(k->pv_tile);
        assert_non_null(k->sqnorm_rows);
        assert_non_null(k->group_sum);
        assert_non_null(k->bf16_rows);
        assert_non_null(k->softmax_rows_bf16);
        assert_non_null(k->qk_tile_bf16);
        assert_non_null(k->pv_tile_bf16);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tables_complete),
        cmocka_unit_test(test_qk_tile),
        cmocka_unit_test(test_pv_tile),
        cmocka_unit_test(test_softmax_rows),
        cmocka_unit_test(test_exp_sweep),
        cmocka_unit_test(test_expb),
        cmocka_unit_test(test_sqnorm_rows),
        cmocka_unit_test(test_group_sum),
        cmocka_unit_test(test_bf16_round),
        cmocka_unit_test(test_bf16_rows),
        cmocka_unit_test(test_qk_tile_bf16),
        cmocka_unit_test(test_pv_tile_bf16),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
