/*
 * bench_prefill.c - end-to-end speed of stem, as ratios measured in one run.
 *
 *   1. dense causal attention rate over OpenBLAS sgemm's rate (8K tokens,
 *      d 128, fp32; target >= 0.6)
 *   2. Stem prefill (angelslim, alpha 0.7) over dense at 16K..128K tokens,
 *      beside the mask's causal density (target <= density + 0.06); best of
 *      5 runs below 64K tokens, one run above
 *   3. block scoring alone over dense (target <= 0.05)
 *   4. thread scaling: 32 heads, all threads over one thread, each the best
 *      of 3 runs (target: three quarters of linear, 12x on 16 cores), beside
 *      the machine's ceiling (the kernels' inner step on every thread at
 *      once, nothing shared) and the scaling of each stage
 *
 * Usage: bench_prefill [--max-tokens N] [--heads H] [--threads T] [--quick]
 * Flops of causal attention: 2 * Lq * Lk * d per head for Lq = Lk (QK^T and
 * PV over the causal half, a multiply-add counted as two).
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "bench_tile.h"
#include "bench_util.h"
#include "stem.h"

typedef struct workload {
    int64_t heads, tokens, d;
    float *q, *k, *v, *out;
    stem_tensor tq, tk, tv, tout;
} workload;

static int workload_make(workload *w, int64_t heads, int64_t tokens, int64_t d)
{
    size_t n = (size_t)heads * tokens * d;
    w->heads = heads, w->tokens = tokens, w->d = d;
    w->q = bench_randn(n, 1, 1.0f);
    w->k = bench_randn(n, 2, 1.0f);
    w->v = bench_randn(n, 3, 1.0f);
    w->out = malloc(n * sizeof(float));
    if (!w->q || !w->k || !w->v || !w->out)
        return -1;
    w->tq = stem_tensor_hnd(w->q, STEM_F32, heads, tokens, d);
    w->tk = stem_tensor_hnd(w->k, STEM_F32, heads, tokens, d);
    w->tv = stem_tensor_hnd(w->v, STEM_F32, heads, tokens, d);
    w->tout = stem_tensor_hnd(w->out, STEM_F32, heads, tokens, d);
    return 0;
}

static void workload_free(workload *w)
{
    free(w->q), free(w->k), free(w->v), free(w->out);
}

static int check(stem_status st, const char *what)
{
    if (st != STEM_OK) {
        fprintf(stderr, "bench_prefill: %s: %s\n", what, stem_strerror(st));
        return -1;
    }
    return 0;
}

/* Best of `reps` runs of sgemm m x m x m, GFLOP/s. */
static double sgemm_rate(int m, int reps)
{
    float *a = bench_randn((size_t)m * m, 7, 1.0f);
    float *b = bench_randn((size_t)m * m, 8, 1.0f);
    float *c = calloc((size_t)m * m, sizeof(float));
    double best = 1e30;
    if (!a || !b || !c)
        return 0.0;
    for (int r = 0; r < reps; r++) {
        double t = bench_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, m, m, 1.0f,
                    a, m, b, m, 0.0f, c, m);
        t = bench_now() - t;
        if (t < best)
            best = t;
    }
    free(a), free(b), free(c);
    return 2.0 * m * (double)m * m / best / 1e9;
}

static double time_dense(const stem_params *p, workload *w, int reps)
{
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t = bench_now();
        if (check(stem_attention_dense(p, &w->tq, &w->tk, &w->tv, &w->tout, NULL), "dense"))
            return -1;
        t = bench_now() - t;
        if (t < best)
            best = t;
    }
    return best;
}

/* Best of `reps` runs of stem_prefill with `threads` threads, seconds. */
static double time_prefill(const stem_params *p, workload *w, int threads, int reps)
{
    stem_params pt = *p;
    pt.threads = threads;
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t = bench_now();
        if (check(stem_prefill(&pt, &w->tq, &w->tk, &w->tv, &w->tout, NULL, NULL, NULL), "prefill"))
            return -1;
        t = bench_now() - t;
        if (t < best)
            best = t;
    }
    return best;
}

/* Best-of-3 times of the stages one by one (each call checks its inputs
 * again, as a caller running them separately would see). */
typedef struct stage_times {
    double logits, select, attend;
} stage_times;

static int time_stages(const stem_params *p, workload *w, int threads, stage_times *t)
{
    stem_params pt = *p;
    pt.threads = threads;
    stem_dims dims;
    if (check(stem_dims_get(&pt, &w->tq, &w->tk, &w->tv, 1, &dims), "dims"))
        return -1;
    size_t cells = (size_t)dims.hq * dims.qb * dims.kb;
    float *logits = malloc(cells * sizeof(float));
    uint8_t *mask = malloc(cells);
    int rc = logits && mask ? 0 : -1;
    t->logits = t->select = t->attend = 1e30;
    for (int r = 0; r < 3 && rc == 0; r++) {
        double t0 = bench_now();
        rc |= check(stem_block_logits(&pt, &w->tq, &w->tk, &w->tv, logits), "logits");
        double t1 = bench_now();
        rc |= check(stem_select(&pt, &dims, logits, mask, NULL, NULL), "select");
        double t2 = bench_now();
        rc |= check(stem_attention_sparse(&pt, &w->tq, &w->tk, &w->tv, mask, &w->tout, NULL),
                    "attention");
        double t3 = bench_now();
        t->logits = fmin(t->logits, t1 - t0);
        t->select = fmin(t->select, t2 - t1);
        t->attend = fmin(t->attend, t3 - t2);
    }
    free(logits), free(mask);
    return rc;
}

/*
 * The machine's own ceiling for thread scaling: every thread runs the
 * inner step of flash attention (qk_tile, softmax_rows, pv_tile of the
 * active kernels on one 128 x 128 tile, d 128) on its own cache-resident
 * data, all threads at once, against one thread alone: the ratio of
 * throughputs.  Nothing is shared, so what keeps it under nt is the
 * machine (the clock speed under full load).  0 on failure.
 */
static double scaling_ceiling(int nt)
{
    stem_status st;
    const stem_kernels *k = stem_kernels_active(&st);
    if (!k)
        return 0.0;
    const int iters = 1000;
    bench_tile *tiles = calloc((size_t)nt, sizeof *tiles);
    int ok = tiles != NULL;
    for (int i = 0; ok && i < nt; i++)
        ok = bench_tile_init(&tiles[i], k, 5 + (uint64_t)i) == 0;
    double t[2] = {0, 0};
    for (int pass = 0; ok && pass < 2; pass++) {
        int n = pass == 0 ? 1 : nt;
        double best = 1e30;
        for (int r = 0; r < 3; r++) {
            double t0 = bench_now();
            #pragma omp parallel num_threads(n)
            {
                int me = 0;
#ifdef _OPENMP
                me = omp_get_thread_num();
#endif
                for (int it = 0; it < iters; it++)
                    bench_tile_step(&tiles[me]);
            }
            double dt = bench_now() - t0;
            best = dt < best ? dt : best;
        }
        t[pass] = best;
    }
    for (int i = 0; tiles && i < nt; i++)
        bench_tile_free(&tiles[i]);
    free(tiles);
    return ok ? (double)nt * t[0] / t[1] : 0.0;
}

int main(int argc, char **argv)
{
    int64_t max_tokens = 131072, heads = 1;
    int threads = 0, quick = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--max-tokens") && i + 1 < argc)
            max_tokens = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--heads") && i + 1 < argc)
            heads = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--quick"))
            quick = 1, max_tokens = 32768;
        else {
            fprintf(stderr, "usage: bench_prefill [--max-tokens N] [--heads H] [--threads T] [--quick]\n");
            return 2;
        }
    }
    stem_params p;
    stem_params_init(&p, STEM_PROFILE_ANGELSLIM);
    p.threads = threads;
    stem_isa isa = STEM_ISA_SCALAR;
    if (check(stem_isa_active(&isa), "isa"))
        return 1;
    int nt = threads;
#ifdef _OPENMP
    if (nt == 0)
        nt = omp_get_max_threads();
#endif
    if (nt == 0)
        nt = 1;
    openblas_set_num_threads(nt);
    printf("stem %s, isa %s, %d threads; OpenBLAS core %s, %d threads\n\n",
           stem_version(), stem_isa_name(isa), nt, openblas_get_corename(),
           openblas_get_num_threads());

    /* 1. dense over sgemm: the baseline is sgemm's better rate of two sizes */
    double gemm = sgemm_rate(2048, 3), gemm4 = quick ? 0.0 : sgemm_rate(4096, 2);
    int gemm_m = gemm4 > gemm ? 4096 : 2048;
    if (gemm4 > gemm)
        gemm = gemm4;
    workload w;
    const int64_t L8 = 8192, d = 128;
    if (workload_make(&w, 2, L8, d))
        return 1;
    double td = time_dense(&p, &w, quick ? 1 : 3);
    if (td < 0)
        return 1;
    double dense_rate = 2.0 * L8 * (double)L8 * d * 2 / td / 1e9;
    workload_free(&w);
    printf("dense causal attention, 8K tokens, d 128, 2 heads, fp32\n");
    printf("  sgemm %d^3 (OpenBLAS)   %8.1f GFLOP/s\n", gemm_m, gemm);
    printf("  dense attention           %8.1f GFLOP/s   (%.3f s)\n", dense_rate, td);
    printf("  ratio dense/sgemm         %8.3f          target >= 0.60  %s\n\n",
           dense_rate / gemm, dense_rate / gemm >= 0.6 ? "met" : "MISSED");

    /* 2, 3. Stem over dense, scoring over dense */
    printf("Stem prefill over dense (angelslim, alpha %.2f, %lld head(s), d 128)\n",
           p.alpha, (long long)heads);
    printf("  %8s %9s %9s %9s %8s %8s %8s %6s %10s %6s\n", "tokens", "dense s",
           "stem s", "score s", "density", "stem/dn", "target", "", "score/dn", "");
    for (int64_t L = 16384; L <= max_tokens; L *= 2) {
        if (workload_make(&w, heads, L, d))
            return 1;
        stem_dims dims;
        if (check(stem_dims_get(&p, &w.tq, &w.tk, &w.tv, 1, &dims), "dims"))
            return 1;
        size_t cells = (size_t)dims.hq * dims.qb * dims.kb;
        float *logits = malloc(cells * sizeof(float));
        uint8_t *mask = malloc(cells);
        if (!logits || !mask)
            return 1;
        /* best of 5 below 64K tokens, where one run is short and noisy */
        const int reps = L < 65536 ? 5 : 1;
        double t0 = time_dense(&p, &w, reps), t1 = 1e30, t2 = 1e30;
        if (t0 < 0)
            return 1;
        for (int r = 0; r < reps; r++) {
            double a = bench_now();
            if (check(stem_prefill(&p, &w.tq, &w.tk, &w.tv, &w.tout, NULL, logits, mask),
                      "prefill"))
                return 1;
            double b = bench_now();
            if (check(stem_block_logits(&p, &w.tq, &w.tk, &w.tv, logits), "logits"))
                return 1;
            double c = bench_now();
            t1 = fmin(t1, b - a);
            t2 = fmin(t2, c - b);
        }
        double sel = 0, causal = 0;
        for (int64_t h = 0; h < dims.hq; h++)
            for (int64_t qi = 0; qi < dims.qb; qi++)
                for (int64_t J = 0; J <= qi; J++) {
                    causal += 1;
                    sel += mask[((size_t)h * dims.qb + qi) * dims.kb + J];
                }
        double density = sel / causal, r = t1 / t0, target = density + 0.06;
        printf("  %8lld %9.3f %9.3f %9.4f %8.3f %8.3f %8.3f %6s %10.4f %6s\n",
               (long long)L, t0, t1, t2, density, r, target, r <= target ? "met" : "MISSED",
               t2 / t0, t2 / t0 <= 0.05 ? "met" : "MISSED");
        fflush(stdout);
        free(logits), free(mask);
        workload_free(&w);
    }

    /* 4. thread scaling */
    const int64_t sh = 32, sl = quick ? 1024 : 4096;
    if (workload_make(&w, sh, sl, d))
        return 1;
    double t1 = time_prefill(&p, &w, 1, 3), tn = time_prefill(&p, &w, nt, 3);
    stage_times s1, sn;
    if (t1 < 0 || tn < 0 || time_stages(&p, &w, 1, &s1) || time_stages(&p, &w, nt, &sn))
        return 1;
    workload_free(&w);
    printf("\nthread scaling, Stem prefill, %lld heads x %lld tokens\n", (long long)sh, (long long)sl);
    printf("  1 thread %.3f s, %d threads %.3f s, speed-up %.2fx (%.0f%% of linear)",
           t1, nt, tn, t1 / tn, 100.0 * t1 / tn / nt);
    if (nt > 1)     /* 12x on 16 cores: three quarters of linear */
        printf("   target >= %.1fx  %s", 0.75 * nt, t1 / tn >= 0.75 * nt ? "met" : "MISSED");
    double ceil_x = nt > 1 ? scaling_ceiling(nt) : 1.0;
    if (nt > 1)
        printf("\n  the machine's ceiling: the attention inner step on %d threads at once, "
               "each on its own tile, runs %.2fx one alone (%.0f%% of linear); Stem reaches %.0f%% of it",
               nt, ceil_x, 100.0 * ceil_x / nt, 100.0 * (t1 / tn) / ceil_x);
    printf("\n  by stage (1 thread / %d threads, s):  logits %.4f / %.4f (%.1fx), "
           "select %.4f / %.4f (%.1fx), attention %.4f / %.4f (%.1fx)\n", nt,
           s1.logits, sn.logits, s1.logits / sn.logits, s1.select, sn.select,
           s1.select / sn.select, s1.attend, sn.attend, s1.attend / sn.attend);
    return 0;
}
