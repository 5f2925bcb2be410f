/*
 * bench_kernels.c - GFLOP/s of the flash-attention inner loop of each kernel
 * table that runs here (qk_tile 128x128 with d = 128, softmax_rows,
 * pv_tile), next to OpenBLAS cblas_sgemm on one thread (128^3 and 512^3),
 * measured in one run.  The inner loop counts 2 * 2 * 128^3 flops (the two
 * products; softmax is overhead).  Each figure is the best of 5 timed
 * repetitions of about 0.1 s.
 *
 *   build/bench/bench_kernels
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "kernels.h"

#define T 128 /* tile rows = tile cols = head dim */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float *alloc_fill(size_t n, unsigned *seed)
{
    float *p = aligned_alloc(64, ((n * sizeof(float) + 63) / 64) * 64);
    if (!p) {
        fprintf(stderr, "bench_kernels: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++) {
        *seed = *seed * 1103515245u + 12345u;
        p[i] = (float)((*seed >> 9) & 0xffff) / 65536.0f - 0.5f;
    }
    return p;
}

typedef struct loop_state {
    const stem_kernels *k;
    float *q, *kt, *v, *s, *o, *m, *l, *alpha;
    int valid[T];
} loop_state;

/* One step of the inner loop over one 128-key block. */
static void inner_step(loop_state *st)
{
    const stem_kernels *k = st->k;
    k->qk_tile(T, T, T, st->q, T, st->kt, T, st->s, T);
    k->softmax_rows(T, T, st->valid, 0.08838835f, st->s, T, st->m, st->l,
                    st->alpha);
    k->pv_tile(T, T, T, st->s, T, st->v, T, st->alpha, st->o, T);
}

/* Best seconds per call of fn over 5 repetitions of `iters` calls. */
static double best_time(void (*fn)(void *), void *arg, int iters)
{
    double best = 1e30;
    for (int r = 0; r < 5; r++) {
        double t0 = now();
        for (int i = 0; i < iters; i++)
            fn(arg);
        double t = (now() - t0) / iters;
        if (t < best)
            best = t;
    }
    return best;
}

/* Calls so that one repetition lasts about 0.1 s. */
static int calibrate(void (*fn)(void *), void *arg)
{
    int iters = 1;
    for (;;) {
        double t0 = now();
        for (int i = 0; i < iters; i++)
            fn(arg);
        double t = now() - t0;
        if (t > 0.02 || iters > (1 << 24))
            return (int)(iters * (0.1 / (t > 1e-9 ? t : 1e-9))) + 1;
        iters *= 4;
    }
}

static void inner_fn(void *arg)
{
    inner_step(arg);
}

typedef struct gemm_state {
    int n;
    float *a, *b, *c;
} gemm_state;

static void gemm_fn(void *arg)
{
    gemm_state *g = arg;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g->n, g->n, g->n,
                1.0f, g->a, g->n, g->b, g->n, 0.0f, g->c, g->n);
}

static double gemm_gflops(int n, unsigned *seed)
{
    gemm_state g = {n, alloc_fill((size_t)n * n, seed),
                    alloc_fill((size_t)n * n, seed),
                    alloc_fill((size_t)n * n, seed)};
    double t = best_time(gemm_fn, &g, calibrate(gemm_fn, &g));
    free(g.a), free(g.b), free(g.c);
    return 2.0 * n * (double)n * n / t * 1e-9;
}

int main(void)
{
    unsigned seed = 12345u;
    openblas_set_num_threads(1);
    double blas128 = gemm_gflops(128, &seed);
    double blas512 = gemm_gflops(512, &seed);
    printf("OpenBLAS cblas_sgemm, 1 thread: 128^3 %.1f GFLOP/s, 512^3 %.1f "
           "GFLOP/s\n", blas128, blas512);

    for (int isa = 0; isa < STEM_ISA_COUNT; isa++) {
        loop_state st;
        st.k = stem_kernels_for((stem_isa)isa);
        if (!st.k)
            continue;
        st.q = alloc_fill(T * T, &seed);
        st.kt = alloc_fill(T * T, &seed);
        st.v = alloc_fill(T * T, &seed);
        st.s = alloc_fill(T * T, &seed);
        st.o = alloc_fill(T * T, &seed);
        st.m = alloc_fill(T, &seed);
        st.l = alloc_fill(T, &seed);
        st.alpha = alloc_fill(T, &seed);
        for (int i = 0; i < T; i++) {
            st.valid[i] = T;
            st.m[i] = -INFINITY;
            st.l[i] = 0.0f;
        }
        double t = best_time(inner_fn, &st, calibrate(inner_fn, &st));
        double gf = 4.0 * T * (double)T * T / t * 1e-9;
        printf("%-6s qk_tile+softmax_rows+pv_tile 128x128x128: %.1f GFLOP/s "
               "(%.1f us/block), %.0f%% of sgemm 128^3, %.0f%% of sgemm 512^3\n",
               stem_isa_name((stem_isa)isa), gf, t * 1e6, 100.0 * gf / blas128,
               100.0 * gf / blas512);
        free(st.q), free(st.kt), free(st.v), free(st.s), free(st.o);
        free(st.m), free(st.l), free(st.alpha);
    }
    return 0;
}
