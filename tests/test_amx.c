/*
 * test_amx.c - what the AMX unit's TDPBF16PS (and AVX512-BF16's VDPBF16PS)
 * really compute, measured against candidate scalar models.
 *
 * The bf16 compute mode's contract (simd/kernels.h) was chosen so that the
 * tile unit computes it natively.  This test is the experiment behind that
 * choice, kept so that every machine with AMX re-checks it: crafted inputs
 * that expose the order of the two products of a pair, whether a pair (or a
 * whole 32-element row) is summed before it meets the accumulator, rounding
 * of the partial sums, DAZ on bf16 inputs and FTZ on results, a long K split
 * over several instructions, and random data of narrow and wide exponent
 * ranges.  Each candidate model's mismatches are printed.
 *
 * What it found (Xeon with AMX, 2026): VDPBF16PS is, bit for bit, the fmaf
 * of the odd product then of the even one, with bf16 denormals read as
 * zero: the contract's model (stem_bf16_dot_ref), asserted below.  TDPBF16PS
 * matches none of the models: a single product, and one product plus the
 * accumulator, are exact and correctly rounded, two products p0 + p1 give
 * round(c + round(p0 + p1)), but three or more products are summed with a
 * rounding that no order of float32 roundings (nearest, toward zero, away,
 * to odd) nor a fixed-width aligned sum reproduces.  So the contract is the
 * VDPBF16PS chain and the amx ISA is documented as not bit-exact; this test
 * asserts the unit's error bound and measures the AMX kernels' distance to
 * the scalar twins.
 *
 * Where the CPU has no AMX, or the OS does not grant tile data to the
 * process, the tests are skipped.
 */
#if defined(__x86_64__)
#pragma GCC target("amx-tile,amx-bf16,avx512f,avx512bf16,avx512vl,avx512bw")
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
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kernels.h"
#include "common/testutil.h"

#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

/* ------------------------------------------------------------ the machine */

static int have_amx, have_vdp;

static int cpu_amx_bf16(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return 0;
    return (d >> 22 & 1) && (d >> 24 & 1); /* AMX-BF16, AMX-TILE */
}

static int cpu_avx512_bf16(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(b >> 16 & 1))
        return 0;
    if (!__get_cpuid_count(7, 1, &a, &b, &c, &d))
        return 0;
    return a >> 5 & 1;
}

static int setup(void **state)
{
    (void)state;
    have_amx = cpu_amx_bf16() &&
               syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
    have_vdp = cpu_avx512_bf16();
    printf("[ INFO     ] amx-bf16 with tile data: %s; avx512-bf16: %s\n",
           have_amx ? "yes" : "no", have_vdp ? "yes" : "no");
    return 0;
}

/* ------------------------------------------------------------ bf16 values */

static float bf(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint32_t bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* A random bf16 with exponent in [lo, hi] (unbiased), random sign. */
static uint16_t rand_bf(tu_rng *r, int lo, int hi)
{
    int e = (int)tu_rng_int(r, lo, hi) + 127;
    uint16_t m = (uint16_t)tu_rng_int(r, 0, 127);
    uint16_t s = (uint16_t)(tu_rng_int(r, 0, 1) << 15);
    return (uint16_t)(s | (uint16_t)(e << 7) | m);
}

static uint16_t bf_of(float f)
{
    return (uint16_t)(bits(f) >> 16); /* f must be a bf16 value */
}

/* ------------------------------------------------------------ the units */

/* C[16][16] (fp32) += A[16][K] * Bm[K][16], K = 32 * nins, as nins
 * TDPBF16PS over 32-wide slices of K. */
static void amx_run(int nins, const uint16_t *A, const uint16_t *Bm, float *C)
{
    struct {
        uint8_t palette, start_row, reserved[14];
        uint16_t colsb[16];
        uint8_t rows[16];
    } __attribute__((packed)) cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 3; t++) {
        cfg.colsb[t] = 64;
        cfg.rows[t] = 16;
    }
    uint16_t a[16 * 32], b[16 * 32];
    _tile_loadconfig(&cfg);
    _tile_loadd(0, C, 64);
    for (int s = 0; s < nins; s++) {
        for (int m = 0; m < 16; m++)
            for (int k = 0; k < 32; k++)
                a[m * 32 + k] = A[m * (32 * nins) + 32 * s + k];
        for (int r = 0; r < 16; r++)
            for (int n = 0; n < 16; n++)
                for (int t = 0; t < 2; t++)
                    b[r * 32 + 2 * n + t] = Bm[(32 * s + 2 * r + t) * 16 + n];
        _tile_loadd(1, a, 64);
        _tile_loadd(2, b, 64);
        _tile_dpbf16ps(0, 1, 2);
    }
    _tile_stored(0, C, 64);
    _tile_release();
}

/* c[n] += a[2n]*b[2n] + a[2n+1]*b[2n+1] for n < 16, one VDPBF16PS. */
static void vdp_run(const uint16_t *a, const uint16_t *b, float *c)
{
    __m512 acc = _mm512_loadu_ps(c);
    __m512bh va = (__m512bh)_mm512_loadu_si512(a);
    __m512bh vb = (__m512bh)_mm512_loadu_si512(b);
    _mm512_storeu_ps(c, _mm512_dpbf16_ps(acc, va, vb));
}

/* ------------------------------------------------------------ the models */

enum {
    M_SEQ_EO,   /* c = fma(a0,b0,c); c = fma(a1,b1,c), pair by pair */
    M_SEQ_OE,   /* odd product first */
    M_PAIR3,    /* c = round(c + a0b0 + a1b1): one rounding per pair */
    M_PAIR_R,   /* c = c + round(a0b0 + a1b1) */
    M_PAIR3_RZ, /* as M_PAIR3, rounded toward zero */
    M_ROW,      /* c = round(c + sum of the 32 products of an instruction) */
    M_ROW_R,    /* c = c + round(sum of the 32 products) */
    M_TREE,     /* c = c + pairwise tree of rounded fp32 sums */
    M_COUNT
};
static const char *const model_names[M_COUNT] = {
    "seq even-odd (fma chain)", "seq odd-even", "pair fused with c",
    "pair rounded, then add", "pair fused, toward zero", "row fused",
    "row rounded, then add", "tree of fp32 sums",
};

typedef __float128 q128;

static float flush(float x, int ftz)
{
    if (ftz && fabsf(x) < FLT_MIN)
        return copysignf(0.0f, x);
    return x;
}

static float in(float x, int daz)
{
    return flush(x, daz);
}

static float round_rz(q128 x)
{
    float r = (float)x;
    q128 ax = x < 0 ? -x : x, ar = (q128)fabsf(r);
    if (ar > ax)
        r = nextafterf(r, 0.0f);
    return r;
}

/* model over K = 32 * nins products; daz / ftz: input and result flushing */
static float model(int which, int daz, int ftz, float c, const float *a,
                   const float *b, int K)
{
    const int W = K < 32 ? K : 32;
    for (int s = 0; s < K; s += W) {
        const float *as = a + s, *bs = b + s;
        if (which == M_ROW || which == M_ROW_R) {
            q128 sum = 0;
            for (int k = 0; k < W; k++)
                sum += (q128)in(as[k], daz) * (q128)in(bs[k], daz);
            if (which == M_ROW)
                c = flush((float)((q128)c + sum), ftz);
            else
                c = flush(c + flush((float)sum, ftz), ftz);
            continue;
        }
        if (which == M_TREE) {
            float p[32];
            for (int k = 0; k < W; k++)
                p[k] = flush(in(as[k], daz) * in(bs[k], daz), ftz);
            for (int w = W / 2; w >= 1; w /= 2)
                for (int k = 0; k < w; k++)
                    p[k] = flush(p[2 * k] + p[2 * k + 1], ftz);
            c = flush(c + p[0], ftz);
            continue;
        }
        for (int k = 0; k < W; k += 2) {
            float a0 = in(as[k], daz), b0 = in(bs[k], daz);
            float a1 = in(as[k + 1], daz), b1 = in(bs[k + 1], daz);
            q128 p0 = (q128)a0 * b0, p1 = (q128)a1 * b1;
            switch (which) {
            case M_SEQ_EO:
                c = flush(fmaf(a0, b0, c), ftz);
                c = flush(fmaf(a1, b1, c), ftz);
                break;
            case M_SEQ_OE:
                c = flush(fmaf(a1, b1, c), ftz);
                c = flush(fmaf(a0, b0, c), ftz);
                break;
            case M_PAIR3:
                c = flush((float)((q128)c + p0 + p1), ftz);
                break;
            case M_PAIR_R:
                c = flush(c + flush((float)(p0 + p1), ftz), ftz);
                break;
            case M_PAIR3_RZ:
                c = flush(round_rz((q128)c + p0 + p1), ftz);
                break;
            }
        }
    }
    return c;
}

/* ------------------------------------------------------------ the cases */

#define MAXK 128

/* One experiment: C0[16][16] + A[16][K] * Bm[K][16], K = 32 * nins. */
typedef struct amx_case {
    int nins;
    uint16_t A[16 * MAXK], Bm[MAXK * 16];
    float C0[256];
} amx_case;

/* Mismatch counts [model][daz][ftz] over a set of cases. */
typedef struct tally {
    long miss[M_COUNT][2][2];
    long elems;
    double worst; /* largest error / (2^-24 (|c| + sum |p|)) */
} tally;

/* Runs one case on the unit and every model; adds the mismatches.  When
 * contract is not NULL it counts that function's mismatches too. */
static void run_case(const amx_case *t, tally *ty, long *contract_miss,
                     FILE *dump)
{
    const int K = 32 * t->nins;
    float C[256];
    memcpy(C, t->C0, sizeof C);
    amx_run(t->nins, t->A, t->Bm, C);
    if (dump) {
        /* nins, A [16][K], Bm [K][16], C0 [16][16], C [16][16] */
        int32_t n = t->nins;
        fwrite(&n, 4, 1, dump);
        fwrite(t->A, 2, (size_t)16 * K, dump);
        fwrite(t->Bm, 2, (size_t)16 * K, dump);
        fwrite(t->C0, 4, 256, dump);
        fwrite(C, 4, 256, dump);
    }
    for (int m = 0; m < 16; m++) {
        for (int n = 0; n < 16; n++) {
            float a[MAXK], b[MAXK];
            for (int k = 0; k < K; k++) {
                a[k] = bf(t->A[m * K + k]);
                b[k] = bf(t->Bm[k * 16 + n]);
            }
            float c0 = t->C0[m * 16 + n], got = C[m * 16 + n];
            for (int w = 0; w < M_COUNT; w++)
                for (int daz = 0; daz < 2; daz++)
                    for (int ftz = 0; ftz < 2; ftz++)
                        ty->miss[w][daz][ftz] +=
                            bits(model(w, daz, ftz, c0, a, b, K)) != bits(got);
            if (contract_miss) {
                uint16_t ra[MAXK], rb[MAXK];
                for (int k = 0; k < K; k++) {
                    ra[k] = t->A[m * K + k];
                    rb[k] = t->Bm[k * 16 + n];
                }
                *contract_miss += bits(stem_bf16_dot_ref(c0, ra, rb, K)) != bits(got);
            }
            /* the unit's error against the exact sum, in units of
             * 2^-24 (|c| + sum |products|) */
            q128 exact = c0, mag = fabsf(c0);
            for (int k = 0; k < K; k++) {
                float x = in(a[k], 1), y = in(b[k], 1);
                exact += (q128)x * y;
                mag += (q128)fabsf(x) * fabsf(y);
            }
            q128 err = (q128)got - exact;
            if (err < 0)
                err = -err;
            if (mag > 0 && fabsf(got) >= FLT_MIN) {
                double e = (double)(err / (mag * 0x1p-24));
                if (e > ty->worst)
                    ty->worst = e;
            }
            ty->elems++;
        }
    }
}

enum { SET_NARROW, SET_WIDE, SET_CANCEL, SET_DENORMAL, SET_LONGK, SET_VWIDE,
       SET_SPARSE, SET_COUNT };
static const char *const set_names[SET_COUNT] = {
    "random 2^-4..2^4", "random 2^-30..2^30", "crafted order/rounding",
    "denormals, DAZ/FTZ", "random, K 128 (4 steps)", "random 2^-60..2^60",
};

static const float crafted_c[16] = {
    1.0f, 0x1p30f, -1.0f, 0.0f, -0.0f, 0x1p-126f, 0x1.8p-126f, 3.0f,
    0x1p24f, -0x1p30f, 0x1.000002p0f, 0.5f, 0x1p-100f, -0x1p-126f, 1e30f, 7.0f,
};

/* Fill case number i of a set. */
static void make_case(int set, int i, tu_rng *r, amx_case *t)
{
    memset(t, 0, sizeof *t);
    t->nins = set == SET_LONGK ? 4 : 1;
    const int K = 32 * t->nins;
    int lo = -4, hi = 4;
    if (set == SET_WIDE || set == SET_LONGK)
        lo = -30, hi = 30;
    if (set == SET_VWIDE)
        lo = -60, hi = 60;
    if (set == SET_NARROW || set == SET_WIDE || set == SET_LONGK || set == SET_VWIDE) {
        for (int k = 0; k < 16 * K; k++) {
            t->A[k] = rand_bf(r, lo, hi);
            t->Bm[k] = rand_bf(r, lo, hi);
        }
        for (int e = 0; e < 256; e++)
            t->C0[e] = (float)ldexp(tu_rng_normal(r), (int)tu_rng_int(r, 2 * lo, 2 * hi));
        return;
    }
    if (set == SET_SPARSE) {
        for (int k = 0; k < 16 * K; k++) {
            t->A[k] = tu_rng_int(r, 0, 15) < 2 ? rand_bf(r, -8, 8) : 0;
            t->Bm[k] = tu_rng_int(r, 0, 15) < 12 ? rand_bf(r, -8, 8) : 0;
        }
        for (int e = 0; e < 256; e++)
            t->C0[e] = tu_rng_int(r, 0, 3) == 0 ? 0.0f
                       : (float)ldexp(tu_rng_normal(r), (int)tu_rng_int(r, -16, 16));
        return;
    }
    if (set == SET_CANCEL) {
        /* B = 1: the products are A's values; row m a pattern, column n
         * an initial accumulator from crafted_c (rotated by case). */
        for (int k = 0; k < K * 16; k++)
            t->Bm[k] = bf_of(1.0f);
        for (int m = 0; m < 16; m++) {
            uint16_t *a = t->A + m * K;
            int p = (int)tu_rng_int(r, 0, 15), q = (int)tu_rng_int(r, 0, 15);
            float big = ldexpf(1.0f, (int)tu_rng_int(r, 20, 40));
            switch ((m + i) % 8) {
            case 0: a[2 * p] = bf_of(big); a[2 * p + 1] = bf_of(-big); break;
            case 1: a[2 * p] = bf_of(1.0f); a[2 * p + 1] = bf_of(-big); break;
            case 2: a[2 * p] = bf_of(-big); a[2 * p + 1] = bf_of(1.0f); break;
            case 3: a[2 * p] = bf_of(big); a[2 * q + 1] = bf_of(-big); break;
            case 4: a[2 * p] = bf_of(0x1p-24f); a[2 * p + 1] = bf_of(0x1p-24f); break;
            case 5: a[2 * p] = bf_of(0x1.04p-24f); break;
            case 6: a[2 * p + 1] = bf_of(0x1.04p-24f); a[2 * q] = bf_of(-0x1p-24f); break;
            default:
                for (int k = 0; k < K; k++)
                    a[k] = rand_bf(r, -30, 30);
                break;
            }
        }
        for (int m = 0; m < 16; m++)
            for (int n = 0; n < 16; n++)
                t->C0[m * 16 + n] = crafted_c[(n + i) % 16];
        return;
    }
    /* SET_DENORMAL: B[k][n] = 2^(-8n); A tiny, denormal bf16 included. */
    for (int k = 0; k < K; k++)
        for (int n = 0; n < 16; n++)
            t->Bm[k * 16 + n] = bf_of(ldexpf(1.0f, -8 * n));
    for (int m = 0; m < 16; m++) {
        uint16_t *a = t->A + m * K;
        for (int k = 0; k < K; k++) {
            int kind = (int)tu_rng_int(r, 0, 3);
            if (kind == 0)
                a[k] = (uint16_t)(tu_rng_int(r, 0, 1) << 15 | tu_rng_int(r, 1, 127));
            else if (kind == 1)
                a[k] = rand_bf(r, -126, -100);
            else if (kind == 2)
                a[k] = rand_bf(r, -30, 0);
            else
                a[k] = 0;
        }
    }
    for (int e = 0; e < 256; e++) {
        int kind = (int)tu_rng_int(r, 0, 2);
        t->C0[e] = kind == 0 ? 0.0f : kind == 1 ? crafted_c[e % 16]
                                         : (float)ldexp(tu_rng_normal(r), -130);
    }
}

static void print_tally(const char *title, const tally *ty)
{
    printf("[ INFO     ] %s: %ld elements; mismatches per model (daz,ftz = 00 01 10 11):\n",
           title, ty->elems);
    for (int w = 0; w < M_COUNT; w++)
        printf("[ INFO     ]   %-26s %6ld %6ld %6ld %6ld\n", model_names[w],
               ty->miss[w][0][0], ty->miss[w][0][1], ty->miss[w][1][0],
               ty->miss[w][1][1]);
}

/* TDPBF16PS against every model and the contract's scalar model. */
static void test_tdpbf16ps_models(void **state)
{
    (void)state;
    if (!have_amx)
        skip();
    static amx_case t;
    long contract_miss = 0, total = 0;
    /* STEM_AMX_DUMP=DIR writes every case (inputs and the unit's result) */
    const char *dir = getenv("STEM_AMX_DUMP");
    for (int set = 0; set < SET_COUNT; set++) {
        FILE *dump = NULL;
        if (dir) {
            char path[512];
            snprintf(path, sizeof path, "%s/amx_set%d.bin", dir, set);
            dump = fopen(path, "wb");
        }
        tally ty;
        memset(&ty, 0, sizeof ty);
        tu_rng r;
        tu_rng_seed(&r, 0xA3A0 + (uint64_t)set);
        int ncases = set == SET_LONGK ? 64 : 256;
        for (int i = 0; i < ncases; i++) {
            make_case(set, i, &r, &t);
            run_case(&t, &ty, &contract_miss, dump);
        }
        if (dump)
            fclose(dump);
        print_tally(set_names[set], &ty);
        printf("[ INFO     ]   largest error: %.2f x 2^-24 (|c| + sum |products|)\n",
               ty.worst);
        /* a few float32 roundings per instruction (measured: 4.3), not more */
        if (set != SET_DENORMAL)
            assert_true(ty.worst <= 8.0 * t.nins);
        total += ty.elems;
    }
    printf("[ INFO     ] contract model (VDPBF16PS chain): %ld of %ld elements "
           "differ: the amx ISA is not bit-exact\n", contract_miss, total);
}

/* VDPBF16PS (one pair per lane) against the pair models. */
static void test_vdpbf16ps_models(void **state)
{
    (void)state;
    if (!have_vdp)
        skip();
    tally ty;
    memset(&ty, 0, sizeof ty);
    long contract_miss = 0, contract_lanes = 0;
    tu_rng r;
    tu_rng_seed(&r, 0xBF16);
    for (int i = 0; i < 4096; i++) {
        uint16_t a[32], b[32];
        float c[16], c0[16];
        int wide = i % 3 == 0 ? 4 : i % 3 == 1 ? 30 : 60;
        for (int k = 0; k < 32; k++) {
            a[k] = rand_bf(&r, -wide, wide);
            b[k] = rand_bf(&r, -wide, wide);
            if (i % 7 == 0 && k % 2 == 1) /* exact cancellation of a pair */
                a[k] = a[k - 1] ^ 0x8000, b[k] = b[k - 1];
            if (i % 11 == 0 && tu_rng_int(&r, 0, 3) == 0)
                a[k] = (uint16_t)tu_rng_int(&r, 1, 127); /* denormal */
        }
        for (int n = 0; n < 16; n++)
            c[n] = c0[n] = (float)ldexp(tu_rng_normal(&r), (int)tu_rng_int(&r, -2 * wide, 2 * wide));
        vdp_run(a, b, c);
        for (int n = 0; n < 16; n++) {
            float fa[2] = {bf(a[2 * n]), bf(a[2 * n + 1])};
            float fb[2] = {bf(b[2 * n]), bf(b[2 * n + 1])};
            for (int w = 0; w < M_COUNT; w++)
                for (int daz = 0; daz < 2; daz++)
                    for (int ftz = 0; ftz < 2; ftz++)
                        ty.miss[w][daz][ftz] +=
                            bits(model(w, daz, ftz, c0[n], fa, fb, 2)) != bits(c[n]);
            int valid = 1; /* operands the contract admits: 0 or >= 2^-56 */
            for (int t = 0; t < 2; t++)
                valid &= stem_bf16_round(fa[t]) == a[2 * n + t] &&
                         stem_bf16_round(fb[t]) == b[2 * n + t];
            if (valid) {
                contract_lanes++;
                contract_miss += bits(stem_bf16_dot_ref(c0[n], a + 2 * n, b + 2 * n, 2)) !=
                                 bits(c[n]);
            }
            ty.elems++;
        }
    }
    print_tally("VDPBF16PS, one pair per lane", &ty);
    printf("[ INFO     ] contract model: %ld of %ld lanes with admitted operands differ\n",
           contract_miss, contract_lanes);
    assert_true(contract_lanes > 50000);
    assert_int_equal(contract_miss, 0);
}

/* A natural k x n matrix of bf16 bits (row t at x + t*n) in the pairs
 * layout of simd/kernels.h: element (t, j) at y[(t/2)*ld + 2*j + (t & 1)],
 * and a zero row t = k when k is odd. */
static void to_pairs(const uint16_t *x, int k, int n, uint16_t *y, int ld)
{
    for (int t = 0; t < k + (k & 1); t++)
        for (int j = 0; j < n; j++)
            y[(size_t)(t / 2) * ld + 2 * j + (t & 1)] =
                t < k ? x[(size_t)t * n + j] : 0;
}

/* The amx table's bf16 kernels against the scalar twins: relative
 * distance of whole tiles (attention-like data), bounded. */
static void test_amx_kernels(void **state)
{
    (void)state;
    const stem_kernels *amx = stem_kernels_for(STEM_ISA_AMX);
    if (!have_amx || !amx)
        skip();
    const stem_kernels *ref = stem_kernels_for(STEM_ISA_SCALAR);
    tu_rng r;
    tu_rng_seed(&r, 0xA11);
    /* q, p: rows layout (ld d2, c2); kt, v: pairs layout (ld 2 cols, 2 d);
     * w: the larger scratch, rows * (cols + 1 + d) floats */
    static float x[128 * 256], s0[128 * 128], s1[128 * 128], o0[128 * 256],
        o1[128 * 256], w[128 * (128 + 1 + 256)], al[128];
    static uint16_t q[128 * 256], p[128 * 128], nat[256 * 128],
        kt[256 * 128], v[128 * 256];
    double worst_qk = 0, worst_pv = 0;
    long same = 0, elems = 0;
    const int dims[] = {64, 128, 100, 255};
    for (int c = 0; c < 16; c++) {
        int d = dims[c % 4], d2 = (d + 1) & ~1;
        int rows = c < 8 ? 128 : (int)tu_rng_int(&r, 1, 128);
        int cols = c < 8 ? 128 : (int)tu_rng_int(&r, 1, 128), c2 = (cols + 1) & ~1;
        for (int i = 0; i < rows * d; i++)
            x[i] = (float)tu_rng_normal(&r);
        ref->bf16_rows(rows, d, x, d, q, d2);
        for (int i = 0; i < d * cols; i++) /* K^T, d x cols */
            nat[i] = stem_bf16_round((float)tu_rng_normal(&r));
        to_pairs(nat, d, cols, kt, 2 * cols);
        ref->qk_tile_bf16(rows, cols, d, q, d2, kt, 2 * cols, s0, cols, w);
        amx->qk_tile_bf16(rows, cols, d, q, d2, kt, 2 * cols, s1, cols, w);
        double num = 0, den = 0;
        for (int i = 0; i < rows * cols; i++) {
            num += ((double)s1[i] - s0[i]) * ((double)s1[i] - s0[i]);
            den += (double)s0[i] * s0[i];
            same += bits(s0[i]) == bits(s1[i]);
        }
        elems += rows * cols;
        if (sqrt(num / den) > worst_qk)
            worst_qk = sqrt(num / den);
        /* P in [0, 1] as softmax gives it, V normal */
        for (int i = 0; i < rows * cols; i++)
            x[i] = (float)tu_rng_uniform(&r);
        ref->bf16_rows(rows, cols, x, cols, p, c2);
        for (int i = 0; i < cols * d; i++) /* V, cols x d */
            nat[i] = stem_bf16_round((float)tu_rng_normal(&r));
        to_pairs(nat, cols, d, v, 2 * d);
        for (int i = 0; i < rows; i++)
            al[i] = (float)tu_rng_uniform(&r);
        for (int i = 0; i < rows * d; i++)
            o0[i] = o1[i] = (float)tu_rng_normal(&r);
        ref->pv_tile_bf16(rows, cols, d, p, c2, v, 2 * d, al, o0, d, w);
        amx->pv_tile_bf16(rows, cols, d, p, c2, v, 2 * d, al, o1, d, w);
        num = den = 0;
        for (int i = 0; i < rows * d; i++) {
            num += ((double)o1[i] - o0[i]) * ((double)o1[i] - o0[i]);
            den += (double)o0[i] * o0[i];
        }
        if (sqrt(num / den) > worst_pv)
            worst_pv = sqrt(num / den);
    }
    printf("[ INFO     ] amx against the scalar twins: qk_tile_bf16 within %.2e, "
           "pv_tile_bf16 within %.2e relative L2; %ld of %ld scores equal\n",
           worst_qk, worst_pv, same, elems);
    assert_true(worst_qk < 1e-5);
    assert_true(worst_pv < 1e-5);
}

#else /* not x86-64: no AMX to measure */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

static void test_no_amx(void **state)
{
    (void)state;
    skip();
}
#endif

int main(void)
{
#if !defined(__x86_64__)
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_no_amx)};
    return cmocka_run_group_tests(tests, NULL, NULL);
#else
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tdpbf16ps_models),
        cmocka_unit_test(test_vdpbf16ps_models),
        cmocka_unit_test(test_amx_kernels),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
#endif
}
