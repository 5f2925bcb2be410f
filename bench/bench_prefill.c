/*
 * bench_prefill.c - end-to-end speed of stem, as ratios measured in one run.
 *
 *   1. dense causal attention rate over OpenBLAS sgemm's rate (8K tokens,
 *      d 128, fp32; target >= 0.6)
 *   2. Stem prefill (angelslim, alpha 0.7) over dense at 16K..128K tokens,
 *      beside the mask's causal density (target <= density + 0.06)
 *   3. block scoring alone over dense (target <= 0.05)
 *   4. thread scaling: 32 heads, all threads over one thread
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
    printf("stem %s, isa %s, %d threads\n\n", stem_version(), stem_isa_name(isa), nt);

    /* 1. dense over sgemm */
    double gemm = sgemm_rate(2048, 3);
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
    printf("  sgemm 2048^3 (OpenBLAS)   %8.1f GFLOP/s\n", gemm);
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
        double t0 = time_dense(&p, &w, 1);
        double t1 = bench_now();
        if (check(stem_prefill(&p, &w.tq, &w.tk, &w.tv, &w.tout, NULL, logits, mask), "prefill"))
            return 1;
        t1 = bench_now() - t1;
        double t2 = bench_now();
        if (check(stem_block_logits(&p, &w.tq, &w.tk, &w.tv, logits), "logits"))
            return 1;
        t2 = bench_now() - t2;
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
    stem_params p1 = p;
    p1.threads = 1;
    double t1 = bench_now();
    if (check(stem_prefill(&p1, &w.tq, &w.tk, &w.tv, &w.tout, NULL, NULL, NULL), "prefill"))
        return 1;
    t1 = bench_now() - t1;
    stem_params pn = p;
    pn.threads = nt;
    double tn = bench_now();
    if (check(stem_prefill(&pn, &w.tq, &w.tk, &w.tv, &w.tout, NULL, NULL, NULL), "prefill"))
        return 1;
    tn = bench_now() - tn;
    workload_free(&w);
    printf("\nthread scaling, Stem prefill, %lld heads x %lld tokens\n", (long long)sh, (long long)sl);
    printf("  1 thread %.3f s, %d threads %.3f s, speed-up %.2fx (%.0f%% of linear)\n",
           t1, nt, tn, t1 / tn, 100.0 * t1 / tn / nt);
    return 0;
}
