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
 * of [-104, 0], and the bf16 mode's e_b against exp in double.  The bf16
 * kernels take their operands in the layouts of simd/kernels.h (rows and
 * pairs), built here from natural matrices with garbage (quiet NaN
 * patterns) in every gap; the scalar twin is also held to the contract's
 * product (stem_bf16_dot_ref) on those natural matrices.
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

/*
 * TEST_BUF(NAME, T): a buffer type NAME of n elements of T at a random
 * misalignment (0..3 elements), with NAME_alloc (contents unset),
 * NAME_copy (a second buffer, same misalignment, same bytes) and
 * NAME_free.  buf holds floats, hbuf bf16 bit patterns (uint16_t).
 */
#define TEST_BUF(NAME, T)                                                      \
    typedef struct NAME {                                                      \
        T *base, *p;                                                           \
        size_t n;                                                              \
    } NAME;                                                                    \
    static NAME NAME##_alloc(tu_rng *r, size_t n)                              \
    {                                                                          \
        NAME b;                                                                \
        b.base = malloc((n + 4) * sizeof(T));                                  \
        assert_non_null(b.base);                                               \
        b.p = b.base + tu_rng_int(r, 0, 3);                                    \
        b.n = n;                                                               \
        return b;                                                              \
    }                                                                          \
    static NAME NAME##_copy(const NAME *a)                                     \
    {                                                                          \
        NAME b;                                                                \
        b.base = malloc((a->n + 4) * sizeof(T));                               \
        assert_non_null(b.base);                                               \
        b.p = b.base + (a->p - a->base);                                       \
        b.n = a->n;                                                            \
        memcpy(b.p, a->p, a->n * sizeof(T));                                   \
        return b;                                                              \
    }                                                                          \
    static void NAME##_free(NAME *b)                                           \
    {                                                                          \
        free(b->base);                                                         \
        b->base = b->p = NULL;                                                 \
    }

TEST_BUF(buf, float)
TEST_BUF(hbuf, uint16_t)

/* n floats of a regime. */
static buf buf_new(tu_rng *r, size_t n, int regime)
{
    buf b = buf_alloc(r, n);
    for (size_t i = 0; i < n; i++)
        b.p[i] = draw(r, regime);
    return b;
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

/* Garbage for the cells a kernel must neither use nor write: quiet NaN
 * patterns (random sign and payload), which would show in any output they
 * reached. */
static uint16_t junk16(tu_rng *r)
{
    return (uint16_t)((0x7fc1 + tu_rng_int(r, 0, 62)) |
                      (tu_rng_int(r, 0, 1) ? 0x8000 : 0));
}

/* bf16 bit patterns of random values of a regime, rounded as the library
 * packs them (stem_bf16_round). */
static hbuf hbuf_new(tu_rng *r, size_t n, int regime)
{
    hbuf b = hbuf_alloc(r, n);
    for (size_t i = 0; i < n; i++)
        b.p[i] = stem_bf16_round(draw(r, regime));
    return b;
}

/* Garbage throughout (junk16): the kernel or the layout helper writes the
 * cells that matter. */
static hbuf hbuf_junk(tu_rng *r, size_t n)
{
    hbuf b = hbuf_alloc(r, n);
    for (size_t i = 0; i < n; i++)
        b.p[i] = junk16(r);
    return b;
}

/* Cells [cols, ld) of every row of out (elements of elem bytes) are as in
 * the buffer before the call (in): the gaps a kernel must not write. */
static void expect_gaps(const void *out, const void *in, size_t elem, int rows,
                        int cols, int ld, const char *what, const char *isa)
{
    for (int i = 0; i < rows; i++) {
        size_t at = ((size_t)i * ld + cols) * elem;
        if (memcmp((const char *)out + at, (const char *)in + at,
                   (size_t)(ld - cols) * elem) != 0)
            fail_msg("%s on %s wrote into the gap of row %d (%d rows, %d "
                     "columns, leading dimension %d)", what, isa, i, rows,
                     cols, ld);
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

/* softmax_rows_bf16 on the same inputs: s must stay as it was, p (rows
 * layout, gaps past cols rounded up to even, filled with garbage) equal to
 * the twin's; the twin's pad is zero and its gaps untouched. */
static void sm16_run_compare(const stem_kernels *k, const sm_in *in)
{
    const int c2 = (in->cols + 1) & ~1;
    const int ldp = c2 + (in->lds - in->cols);
    tu_rng r;
    tu_rng_seed(&r, (uint64_t)in->rows * 1000 + (uint64_t)in->cols);
    hbuf p_in = hbuf_junk(&r, (size_t)in->rows * ldp);
    hbuf p = hbuf_copy(&p_in), p0 = hbuf_copy(&p_in);
    buf s = buf_copy(&in->s), m = buf_copy(&in->m), l = buf_copy(&in->l);
    buf a = buf_copy(&in->a);
    buf m0 = buf_copy(&in->m), l0 = buf_copy(&in->l), a0 = buf_copy(&in->a);
    ref->softmax_rows_bf16(in->rows, in->cols, in->valid, in->scale, in->s.p,
                           in->lds, m0.p, l0.p, a0.p, p0.p, ldp);
    k->softmax_rows_bf16(in->rows, in->cols, in->valid, in->scale, s.p,
                         in->lds, m.p, l.p, a.p, p.p, ldp);
    const char *name = stem_isa_name(k->isa);
    expect_gaps(p0.p, p_in.p, 2, in->rows, c2, ldp, "softmax_rows_bf16 p",
                "scalar");
    if (in->cols & 1)
        for (int i = 0; i < in->rows; i++)
            if (p0.p[(size_t)i * ldp + in->cols] != 0)
                fail_msg("softmax_rows_bf16 on scalar: the pad of row %d is "
                         "0x%04x, not 0 (rows %d cols %d)", i,
                         p0.p[(size_t)i * ldp + in->cols], in->rows, in->cols);
    expect_same(in->s.p, s.p, s.n * 4, "softmax_rows_bf16 s untouched", name,
                in->rows, in->cols, 0);
    expect_same(p0.p, p.p, p.n * 2, "softmax_rows_bf16 p", name, in->rows, in->cols, 0);
    expect_same(m0.p, m.p, m.n * 4, "softmax_rows_bf16 m", name, in->rows, in->cols, 0);
    expect_same(l0.p, l.p, l.n * 4, "softmax_rows_bf16 l", name, in->rows, in->cols, 0);
    expect_same(a0.p, a.p, a.n * 4, "softmax_rows_bf16 alpha", name,
                in->rows, in->cols, 0);
    hbuf_free(&p_in), hbuf_free(&p), hbuf_free(&p0);
    buf_free(&s), buf_free(&m), buf_free(&l);
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
        /* more than 16 rows, not a multiple of 16 (AVX-512's bf16 softmax
         * ends its rows 16 at a time) */
        for (int rows = 17; rows <= 49; rows += 16)
            for (int rep = 0; rep < 4; rep++)
                sm_case(&r, isas[t], rows, (int)tu_rng_int(&r, 1, 130));
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
 * e_b of the bf16 mode (simd/expb.h): the scalar twin against exp in double
 * on every 97th float of [STEM_EXPB_MIN, 0] (and edges), and every ISA's
 * lanes against the scalar twin bit for bit.  A lane is seen through l:
 * a row whose only column above STEM_EXPB_MIN is x, with m = 0 and l = 0,
 * ends with l = e_b(x) exactly (the other columns add +0).
 */
static void test_expb(void **state)
{
    (void)state;
    enum { COLS = 37, ROWS = 512, LDP = COLS + 3 };
    static float s[ROWS * COLS], xs[ROWS];
    static uint16_t p[ROWS * LDP]; /* rows layout, a gap of 2 */
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
                                 LDP);
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

/* The bf16 kernels of the AMX table are fast but not bit-exact (kernels.h):
 * they are held to a distance instead (tests/test_amx.c).  Here they only
 * have to keep to their outputs, inputs and scratch. */
static int bf16_exact(const stem_kernels *k)
{
    return k->isa != STEM_ISA_AMX;
}

/* f(h) of kernels.h: the float with bits h << 16. */
static float bf16_f(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* A natural k x n matrix of bf16 bits (row t at nat + t*n) in the pairs
 * layout of kernels.h: element (t, j) at out[(t/2)*ld + 2*j + (t & 1)],
 * ld >= 2n, and a zero row t = k when k is odd (the kernels may read it).
 * Cells 2n .. ld-1 of each pair row are left as they are. */
static void to_pairs(const uint16_t *nat, int k, int n, uint16_t *out, int ld)
{
    for (int t = 0; t < k + (k & 1); t++)
        for (int j = 0; j < n; j++)
            out[(size_t)(t / 2) * ld + 2 * j + (t & 1)] =
                t < k ? nat[(size_t)t * n + j] : 0;
}

/* Scratch of n floats (random contents) at a random misalignment, followed
 * by a guard that must stay as written: the kernels' work is exactly the
 * size kernels.h gives. */
enum { WORK_GUARD = 16 };
static const uint32_t guard_bits = 0x7fc0beefu;

static buf work_new(tu_rng *r, size_t n)
{
    buf b = buf_new(r, n + WORK_GUARD, 0);
    b.n = n;
    for (int g = 0; g < WORK_GUARD; g++)
        memcpy(b.p + n + g, &guard_bits, 4);
    return b;
}

static void work_check(const buf *w, const char *what, const char *isa,
                       int rows, int cols, int d)
{
    for (int g = 0; g < WORK_GUARD; g++)
        if (memcmp(w->p + w->n + g, &guard_bits, 4) != 0)
            fail_msg("%s on %s wrote float %zu of its work, past the %zu "
                     "floats of kernels.h (rows %d cols %d d %d)", what, isa,
                     w->n + (size_t)g, w->n, rows, cols, d);
}

/* The contract's product (kernels.h) for one output: row a (rows layout,
 * k elements, the pad taken as 0) times column j of a natural k x n bf16
 * matrix, through stem_bf16_dot_ref on contiguous copies. */
enum { DOT_MAX = 1024 };
static float dot_model(const uint16_t *a, const uint16_t *nat, int k, int n,
                       int j)
{
    uint16_t x[DOT_MAX], y[DOT_MAX];
    int k2 = (k + 1) & ~1;
    assert_true(k2 <= DOT_MAX);
    for (int t = 0; t < k2; t++) {
        x[t] = t < k ? a[t] : 0;
        y[t] = t < k ? nat[(size_t)t * n + j] : 0;
    }
    return stem_bf16_dot_ref(0.0f, x, y, k2);
}

static void expect_model(float want, float got, const char *what, int i,
                         int j, int rows, int cols, int d)
{
    if (memcmp(&want, &got, 4) != 0)
        fail_msg("%s on scalar: element (%d, %d) is %a, the contract's "
                 "product gives %a (rows %d cols %d d %d)", what, i, j,
                 (double)got, (double)want, rows, cols, d);
}

/* bf16_rows and the dot model of the scalar twin against the contract
 * written out here. */
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
    /* rows layout: natural order, an odd row padded with a zero, the cells
     * past it untouched */
    float x[5] = {1.0f, 2.0f, 3.0f, 0x1.0101p0f, 5.0f};
    uint16_t y[8] = {0xaaaa, 0xaaaa, 0xaaaa, 0xaaaa, 0xaaaa, 0xaaaa, 0xaaaa,
                     0xaaaa};
    ref->bf16_rows(1, 5, x, 5, y, 6);
    const uint16_t want[8] = {0x3f80, 0x4000, 0x4040, 0x3f81, 0x40a0, 0x0000,
                              0xaaaa, 0xaaaa};
    assert_memory_equal(y, want, sizeof want);
    /* two rows, leading dimensions with gaps */
    const float x2[8] = {1.0f, -2.0f, 0x1.03p0f, 99.0f,
                         -0.0f, 0x1.fcp-57f, -0x1p-56f, 99.0f};
    uint16_t y2[10] = {0xaaaa, 0xaaaa, 0xaaaa, 0xaaaa, 0xaaaa,
                       0xaaaa, 0xaaaa, 0xaaaa, 0xaaaa, 0xaaaa};
    ref->bf16_rows(2, 3, x2, 4, y2, 5);
    const uint16_t want2[10] = {0x3f80, 0xc000, 0x3f82, 0x0000, 0xaaaa,
                                0x8000, 0x0000, 0xa380, 0x0000, 0xaaaa};
    assert_memory_equal(y2, want2, sizeof want2);
    /* the dot model: odd product first within a pair */
    uint16_t a[2] = {stem_bf16_round(1.0f), stem_bf16_round(0x1p30f)};
    uint16_t b[2] = {stem_bf16_round(1.0f), stem_bf16_round(-1.0f)};
    assert_true(stem_bf16_dot_ref(0x1p30f, a, b, 2) == 1.0f);
}

/*
 * The layouts on a tiny case (rows 2, cols 3, d 3), written out by hand:
 * q and P in the rows layout, K^T and V in the pairs layout, against exact
 * integer results and, on random values, against the fmaf chain of
 * kernels.h run here on the natural matrices (and stem_bf16_dot_ref on
 * contiguous copies).  A layout mistake in the scalar twin (or in
 * to_pairs) fails here.  Every bit-exact table is held to the same.
 */
static void test_bf16_layouts(void **state)
{
    (void)state;
    enum { R = 2, C = 3, D = 3, LDQ = 5, LDK = 8, LDS = 4, LDP = 4, LDV = 7,
           LDO = 4 };
    const uint16_t J = 0x7fc1; /* gap cells: a NaN if ever read */
    const float qf[R][D] = {{1, 2, 3}, {4, 5, 6}};
    const float kf[C][D] = {{1, 0, -1}, {2, 3, 5}, {-7, 11, 13}}; /* keys */
    const float pf[R][C] = {{1, 2, 3}, {4, 5, 6}};
    const float vf[C][D] = {{1, 0, -1}, {2, 3, 5}, {-7, 11, 13}}; /* value rows */
    const float of[R][D] = {{10, 20, 30}, {40, 50, 60}};
    const float alpha[R] = {0.5f, 2.0f};
    /* kt in the pairs layout: pair row 0 = (t 0, key 0), (t 1, key 0),
     * (t 0, key 1), ...; pair row 1 = (t 2, key j) and the zero row t 3 */
    const float kt_pairs[2][6] = {{1, 0, 2, 3, -7, 11}, {-1, 0, 5, 0, 13, 0}};
    /* V likewise: pair row 0 = (row 0, c 0), (row 1, c 0), (row 0, c 1)... */
    const float v_pairs[2][6] = {{1, 2, 0, 3, -1, 5}, {-7, 0, 11, 0, 13, 0}};
    const float s_want[R][C] = {{-2, 23, 54}, {-2, 53, 105}};
    const float o_want[R][D] = {{-11, 49, 63}, {52, 181, 219}};
    const float o_want_na[R][D] = {{-6, 59, 78}, {12, 131, 159}}; /* alpha NULL */

    uint16_t q[R * LDQ], kt[2 * LDK], p[R * LDP], v[2 * LDV], kn[D * C],
        vn[C * D], kt2[2 * LDK], v2[2 * LDV];
    float s[R * LDS], o[R * LDO], work[R * (C + 1 + D) + R * (D + 1)];
    tu_rng r;
    tu_rng_seed(&r, 14);
    const stem_kernels *all[STEM_ISA_COUNT + 1];
    int n = 0;
    all[n++] = ref;
    for (int t = 0; t < n_isas; t++)
        if (bf16_exact(isas[t]))
            all[n++] = isas[t];

    for (int rd = 0; rd < 2; rd++) {
        /* rd 0: the small integers above; rd 1: random values, the
         * results from the fmaf chain of kernels.h */
        float qv[R][D], kv[C][D], pv[R][C], vv[C][D], ov[R][D];
        for (int i = 0; i < R; i++)
            for (int t = 0; t < D; t++) {
                qv[i][t] = rd ? draw(&r, 0) : qf[i][t];
                ov[i][t] = rd ? draw(&r, 0) : of[i][t];
            }
        for (int j = 0; j < C; j++)
            for (int t = 0; t < D; t++) {
                kv[j][t] = rd ? draw(&r, 0) : kf[j][t];
                vv[j][t] = rd ? draw(&r, 0) : vf[j][t];
            }
        for (int i = 0; i < R; i++)
            for (int j = 0; j < C; j++)
                pv[i][j] = rd ? (float)tu_rng_uniform(&r) : pf[i][j];
        /* the natural K^T (d x cols) and V (cols x d) in bf16 */
        for (int t = 0; t < D; t++)
            for (int j = 0; j < C; j++) {
                kn[t * C + j] = stem_bf16_round(kv[j][t]);
                vn[j * D + t] = stem_bf16_round(vv[j][t]);
            }
        for (int i = 0; i < 2 * LDK; i++)
            kt[i] = kt2[i] = J;
        for (int i = 0; i < 2 * LDV; i++)
            v[i] = v2[i] = J;
        to_pairs(kn, D, C, kt, LDK);
        to_pairs(vn, C, D, v, LDV);
        if (rd == 0) { /* to_pairs against the layout written out */
            for (int u = 0; u < 2; u++)
                for (int e = 0; e < 6; e++) {
                    kt2[u * LDK + e] = stem_bf16_round(kt_pairs[u][e]);
                    v2[u * LDV + e] = stem_bf16_round(v_pairs[u][e]);
                }
            assert_memory_equal(kt, kt2, sizeof kt);
            assert_memory_equal(v, v2, sizeof v);
        }
        for (int i = 0; i < R * LDQ; i++)
            q[i] = J;
        for (int i = 0; i < R * LDP; i++)
            p[i] = J;
        ref->bf16_rows(R, D, &qv[0][0], D, q, LDQ);
        ref->bf16_rows(R, C, &pv[0][0], C, p, LDP);

        /* the wanted results: the contract's chain, odd product first */
        float sw[R][C], ow[R][D], own[R][D];
        for (int i = 0; i < R; i++) {
            for (int j = 0; j < C; j++) {
                float acc = 0.0f;
                for (int u = 0; u < 2; u++) {
                    int t1 = 2 * u + 1, t0 = 2 * u;
                    float a1 = t1 < D ? bf16_f(q[i * LDQ + t1]) : 0.0f;
                    float b1 = t1 < D ? bf16_f(kn[t1 * C + j]) : 0.0f;
                    acc = fmaf(a1, b1, acc);
                    acc = fmaf(bf16_f(q[i * LDQ + t0]), bf16_f(kn[t0 * C + j]), acc);
                }
                float dot = dot_model(q + i * LDQ, kn, D, C, j);
                assert_memory_equal(&acc, &dot, 4);
                sw[i][j] = acc;
            }
            for (int c = 0; c < D; c++) {
                float acc = 0.0f;
                for (int u = 0; u < 2; u++) {
                    int t1 = 2 * u + 1, t0 = 2 * u;
                    float a1 = t1 < C ? bf16_f(p[i * LDP + t1]) : 0.0f;
                    float b1 = t1 < C ? bf16_f(vn[t1 * D + c]) : 0.0f;
                    acc = fmaf(a1, b1, acc);
                    acc = fmaf(bf16_f(p[i * LDP + t0]), bf16_f(vn[t0 * D + c]), acc);
                }
                float dot = dot_model(p + i * LDP, vn, C, D, c);
                assert_memory_equal(&acc, &dot, 4);
                float scaled = ov[i][c] * alpha[i];
                ow[i][c] = scaled + acc;
                own[i][c] = ov[i][c] + acc;
            }
        }
        if (rd == 0) {
            assert_memory_equal(sw, s_want, sizeof sw);
            assert_memory_equal(ow, o_want, sizeof ow);
            assert_memory_equal(own, o_want_na, sizeof own);
        }

        for (int t = 0; t < n; t++) {
            const char *isa = stem_isa_name(all[t]->isa);
            for (int i = 0; i < R * LDS; i++)
                s[i] = -1.0f;
            all[t]->qk_tile_bf16(R, C, D, q, LDQ, kt, LDK, s, LDS, work);
            for (int i = 0; i < R; i++) {
                for (int j = 0; j < C; j++)
                    if (memcmp(&s[i * LDS + j], &sw[i][j], 4) != 0)
                        fail_msg("qk_tile_bf16 on %s, layout case %d: s(%d, %d) "
                                 "= %a, want %a", isa, rd, i, j,
                                 (double)s[i * LDS + j], (double)sw[i][j]);
                assert_true(s[i * LDS + C] == -1.0f);
            }
            for (int na = 0; na < 2; na++) {
                for (int i = 0; i < R; i++) {
                    for (int c = 0; c < D; c++)
                        o[i * LDO + c] = ov[i][c];
                    o[i * LDO + D] = -1.0f;
                }
                all[t]->pv_tile_bf16(R, C, D, p, LDP, v, LDV, na ? NULL : alpha,
                                     o, LDO, work);
                for (int i = 0; i < R; i++) {
                    for (int c = 0; c < D; c++) {
                        float want = na ? own[i][c] : ow[i][c];
                        if (memcmp(&o[i * LDO + c], &want, 4) != 0)
                            fail_msg("pv_tile_bf16 on %s, layout case %d%s: "
                                     "o(%d, %d) = %a, want %a", isa, rd,
                                     na ? " (alpha NULL)" : "", i, c,
                                     (double)o[i * LDO + c], (double)want);
                    }
                    assert_true(o[i * LDO + D] == -1.0f);
                }
            }
        }
    }
}

static void qk16_case(tu_rng *r, const stem_kernels *k, int rows, int cols,
                      int d)
{
    int regime = (int)tu_rng_int(r, 0, 4), d2 = (d + 1) & ~1;
    int ldx = d + (int)tu_rng_int(r, 0, 5);
    int ldq = d2 + (int)tu_rng_int(r, 0, 5);
    int ldk = 2 * cols + (int)tu_rng_int(r, 0, 5);
    int lds = cols + (int)tu_rng_int(r, 0, 5);
    const char *isa = stem_isa_name(k->isa);
    /* q: rows layout through bf16_rows, gaps past d2 garbage */
    buf x = buf_new(r, (size_t)rows * ldx, regime);
    hbuf q = hbuf_junk(r, (size_t)rows * ldq);
    ref->bf16_rows(rows, d, x.p, ldx, q.p, ldq);
    /* K^T: natural d x cols, then the pairs layout, gaps past 2 cols garbage */
    hbuf kn = hbuf_new(r, (size_t)d * cols, regime);
    hbuf kt = hbuf_junk(r, (size_t)(d2 / 2) * ldk);
    to_pairs(kn.p, d, cols, kt.p, ldk);
    hbuf q_in = hbuf_copy(&q), kt_in = hbuf_copy(&kt);
    buf s0 = buf_new(r, (size_t)rows * lds, 0);
    buf s1 = buf_copy(&s0), s_in = buf_copy(&s0);
    const size_t wn = (size_t)rows * (d + 1);
    buf w0 = work_new(r, wn), w1 = work_new(r, wn);
    ref->qk_tile_bf16(rows, cols, d, q.p, ldq, kt.p, ldk, s0.p, lds, w0.p);
    k->qk_tile_bf16(rows, cols, d, q.p, ldq, kt.p, ldk, s1.p, lds, w1.p);
    if (bf16_exact(k))
        expect_same(s0.p, s1.p, s0.n * sizeof(float), "qk_tile_bf16", isa,
                    rows, cols, d);
    expect_gaps(s0.p, s_in.p, sizeof(float), rows, cols, lds, "qk_tile_bf16",
                "scalar");
    expect_gaps(s1.p, s_in.p, sizeof(float), rows, cols, lds, "qk_tile_bf16",
                isa);
    expect_same(q_in.p, q.p, q.n * 2, "qk_tile_bf16 (q changed)", isa, rows,
                cols, d);
    expect_same(kt_in.p, kt.p, kt.n * 2, "qk_tile_bf16 (kt changed)", isa,
                rows, cols, d);
    work_check(&w0, "qk_tile_bf16", "scalar", rows, cols, d);
    work_check(&w1, "qk_tile_bf16", isa, rows, cols, d);
    /* the twin against the contract's product on the natural matrices:
     * every element of a small tile, four of a larger one */
    int all_cells = rows * cols <= 16;
    for (int e = 0; e < (all_cells ? rows * cols : 4); e++) {
        int i = all_cells ? e / cols : (int)tu_rng_int(r, 0, rows - 1);
        int j = all_cells ? e % cols : (int)tu_rng_int(r, 0, cols - 1);
        float want = dot_model(q.p + (size_t)i * ldq, kn.p, d, cols, j);
        expect_model(want, s0.p[(size_t)i * lds + j], "qk_tile_bf16", i, j,
                     rows, cols, d);
    }
    buf_free(&x), hbuf_free(&q), hbuf_free(&kn), hbuf_free(&kt);
    hbuf_free(&q_in), hbuf_free(&kt_in), buf_free(&s0), buf_free(&s1);
    buf_free(&s_in), buf_free(&w0), buf_free(&w1);
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
        qk16_case(&r, all[t], 5, 17, 601);
    }
}

static void pv16_case(tu_rng *r, const stem_kernels *k, int rows, int cols,
                      int d)
{
    int regime = (int)tu_rng_int(r, 0, 4), c2 = (cols + 1) & ~1;
    int ldx = cols + (int)tu_rng_int(r, 0, 5);
    int ldp = c2 + (int)tu_rng_int(r, 0, 5);
    int ldv = 2 * d + (int)tu_rng_int(r, 0, 5);
    int ldo = d + (int)tu_rng_int(r, 0, 5);
    const char *isa = stem_isa_name(k->isa);
    /* P: rows layout through bf16_rows, gaps past c2 garbage */
    buf x = buf_new(r, (size_t)rows * ldx, regime);
    hbuf p = hbuf_junk(r, (size_t)rows * ldp);
    ref->bf16_rows(rows, cols, x.p, ldx, p.p, ldp);
    /* V: natural cols x d, then the pairs layout, gaps past 2 d garbage */
    hbuf vn = hbuf_new(r, (size_t)cols * d, regime);
    hbuf v = hbuf_junk(r, (size_t)(c2 / 2) * ldv);
    to_pairs(vn.p, cols, d, v.p, ldv);
    hbuf p_in = hbuf_copy(&p), v_in = hbuf_copy(&v);
    buf al = buf_new(r, (size_t)rows, 0);
    for (int i = 0; i < rows; i++)
        al.p[i] = (float)tu_rng_uniform(r);
    buf o0 = buf_new(r, (size_t)rows * ldo, regime);
    buf o1 = buf_copy(&o0), o_in = buf_copy(&o0);
    const size_t wn = (size_t)rows * (cols + 1 + d);
    buf w0 = work_new(r, wn), w1 = work_new(r, wn);
    const float *alpha = tu_rng_int(r, 0, 3) ? al.p : NULL;
    ref->pv_tile_bf16(rows, cols, d, p.p, ldp, v.p, ldv, alpha, o0.p, ldo, w0.p);
    k->pv_tile_bf16(rows, cols, d, p.p, ldp, v.p, ldv, alpha, o1.p, ldo, w1.p);
    if (bf16_exact(k))
        expect_same(o0.p, o1.p, o0.n * sizeof(float), "pv_tile_bf16", isa,
                    rows, cols, d);
    expect_gaps(o0.p, o_in.p, sizeof(float), rows, d, ldo, "pv_tile_bf16",
                "scalar");
    expect_gaps(o1.p, o_in.p, sizeof(float), rows, d, ldo, "pv_tile_bf16", isa);
    expect_same(p_in.p, p.p, p.n * 2, "pv_tile_bf16 (p changed)", isa, rows,
                cols, d);
    expect_same(v_in.p, v.p, v.n * 2, "pv_tile_bf16 (v changed)", isa, rows,
                cols, d);
    work_check(&w0, "pv_tile_bf16", "scalar", rows, cols, d);
    work_check(&w1, "pv_tile_bf16", isa, rows, cols, d);
    /* the twin against the contract on the natural matrices: every element
     * of a small tile, four of a larger one */
    int all_cells = rows * d <= 16;
    for (int e = 0; e < (all_cells ? rows * d : 4); e++) {
        int i = all_cells ? e / d : (int)tu_rng_int(r, 0, rows - 1);
        int c = all_cells ? e % d : (int)tu_rng_int(r, 0, d - 1);
        float acc = dot_model(p.p + (size_t)i * ldp, vn.p, cols, d, c);
        float o = o_in.p[(size_t)i * ldo + c];
        if (alpha)
            o = o * alpha[i]; /* two roundings: the product, then the sum */
        float want = o + acc;
        expect_model(want, o0.p[(size_t)i * ldo + c], "pv_tile_bf16", i, c,
                     rows, cols, d);
    }
    buf_free(&x), hbuf_free(&p), hbuf_free(&vn), hbuf_free(&v);
    hbuf_free(&p_in), hbuf_free(&v_in), buf_free(&al), buf_free(&o0);
    buf_free(&o1), buf_free(&o_in), buf_free(&w0), buf_free(&w1);
}

static void test_pv_tile_bf16(void **state)
{
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 12);
    const stem_kernels *all[STEM_ISA_COUNT + 1];
    int n = 0;
    all[n++] = ref; /* the twin against the dot model */
    for (int t = 0; t < n_isas; t++)
        all[n++] = isas[t];
    for (int t = 0; t < n; t++) {
        for (int di = 0; di < N_HEAD_DIMS; di++) {
            int d = head_dims[di];
            for (int rows = 1; rows <= 13; rows++)
                pv16_case(&r, all[t], rows, (int)tu_rng_int(&r, 1, 130), d);
            for (int cols = 1; cols <= 130; cols += (cols < 40 ? 1 : 7))
                pv16_case(&r, all[t], (int)tu_rng_int(&r, 1, 13), cols, d);
            pv16_case(&r, all[t], 128, 128, d);
        }
        pv16_case(&r, all[t], 5, 701, 40); /* cols beyond one packed chunk */
        pv16_case(&r, all[t], 3, 700, 33);
    }
}

/* bf16_rows: the twin against the contract written out here (each element
 * stem_bf16_round of its x, the pad zero, the gaps untouched), and every
 * table against the twin, whole buffers. */
static void test_bf16_rows(void **state)
{
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 13);
    const float edges[] = {-0.0f, 0.0f, 0x1p-56f, -0x1p-56f, 0x1.fcp-57f,
                           -0x1.ffp-57f, 0x1p-60f, 0x1.01p0f, -0x1.03p0f,
                           0x1.0101p0f, 1e-40f, 3.3e38f, -3.4028235e38f};
    const int n_edges = (int)(sizeof edges / sizeof edges[0]);
    for (int c = 0; c < 400; c++) {
        int rows = (int)tu_rng_int(&r, 1, 9), n = (int)tu_rng_int(&r, 1, 140);
        int n2 = (n + 1) & ~1;
        int ldx = n + (int)tu_rng_int(&r, 0, 3);
        int ldy = n2 + (int)tu_rng_int(&r, 0, 3);
        buf x = buf_new(&r, (size_t)rows * ldx, (int)tu_rng_int(&r, 0, 4));
        if (c % 3 == 0)
            for (size_t i = 0; i < x.n; i++)
                if (tu_rng_int(&r, 0, 3) == 0)
                    x.p[i] = edges[tu_rng_int(&r, 0, n_edges - 1)];
        buf x_in = buf_copy(&x);
        hbuf y_in = hbuf_junk(&r, (size_t)rows * ldy);
        hbuf y0 = hbuf_copy(&y_in);
        ref->bf16_rows(rows, n, x.p, ldx, y0.p, ldy);
        for (int i = 0; i < rows; i++) {
            for (int t = 0; t < n2; t++) {
                uint16_t want = t < n ? stem_bf16_round(x.p[(size_t)i * ldx + t]) : 0;
                uint16_t got = y0.p[(size_t)i * ldy + t];
                if (got != want)
                    fail_msg("bf16_rows on scalar: y(%d, %d) = 0x%04x, want "
                             "0x%04x (rows %d n %d)", i, t, got, want, rows, n);
            }
        }
        expect_gaps(y0.p, y_in.p, 2, rows, n2, ldy, "bf16_rows", "scalar");
        expect_same(x_in.p, x.p, x.n * 4, "bf16_rows (x changed)", "scalar",
                    rows, n, 0);
        for (int t = 0; t < n_isas; t++) {
            hbuf y1 = hbuf_copy(&y_in);
            isas[t]->bf16_rows(rows, n, x.p, ldx, y1.p, ldy);
            expect_same(y0.p, y1.p, y0.n * 2, "bf16_rows",
                        stem_isa_name(isas[t]->isa), rows, n, 0);
            expect_same(x_in.p, x.p, x.n * 4, "bf16_rows (x changed)",
                        stem_isa_name(isas[t]->isa), rows, n, 0);
            hbuf_free(&y1);
        }
        buf_free(&x), buf_free(&x_in), hbuf_free(&y_in), hbuf_free(&y0);
    }
}

/* The detected ISA is the fastest bit-exact one this CPU runs: avx512bf16
 * (on AMD, where VDPBF16PS outruns FMAs) ahead of avx512 ahead of avx2,
 * never amx (only asked for), and every name round-trips. */
static void test_isa_order(void **state)
{
    (void)state;
    static const stem_isa order[] = {STEM_ISA_AVX512BF16, STEM_ISA_AVX512,
                                     STEM_ISA_AVX2, STEM_ISA_NEON};
    int amd = 0;
#if defined(__x86_64__)
    __builtin_cpu_init();
    amd = __builtin_cpu_is("amd");
#endif
    stem_isa want = STEM_ISA_SCALAR;
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        if (stem_isa_supported(order[i]) &&
            (order[i] != STEM_ISA_AVX512BF16 || amd)) {
            want = order[i];
            break;
        }
    assert_int_equal(stem_isa_detected(), want);
    assert_int_not_equal(stem_isa_detected(), STEM_ISA_AMX);
    assert_string_equal(stem_isa_name(STEM_ISA_AVX512BF16), "avx512bf16");
    /* the AVX512-BF16 level needs AVX-512 itself */
    if (stem_isa_supported(STEM_ISA_AVX512BF16))
        assert_true(stem_isa_supported(STEM_ISA_AVX512));
    for (int i = 0; i < STEM_ISA_COUNT; i++)
        assert_string_not_equal(stem_isa_name((stem_isa)i), "?");
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
        cmocka_unit_test(test_isa_order),
        cmocka_unit_test(test_qk_tile),
        cmocka_unit_test(test_pv_tile),
        cmocka_unit_test(test_softmax_rows),
        cmocka_unit_test(test_exp_sweep),
        cmocka_unit_test(test_expb),
        cmocka_unit_test(test_sqnorm_rows),
        cmocka_unit_test(test_group_sum),
        cmocka_unit_test(test_bf16_round),
        cmocka_unit_test(test_bf16_rows),
        cmocka_unit_test(test_bf16_layouts),
        cmocka_unit_test(test_qk_tile_bf16),
        cmocka_unit_test(test_pv_tile_bf16),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
