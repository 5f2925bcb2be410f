/*
 * bench_kernels.c - GFLOP/s of the flash-attention inner loop of each kernel
 * table that runs here (qk_tile 128x128 with d = 128, softmax_rows,
 * pv_tile), next to OpenBLAS cblas_sgemm on one thread (128^3 and 512^3),
 * measured in one run.  The inner loop counts 2 * 2 * 128^3 flops (the two
 * products; softmax is overhead).  Each figure is the best of 7 timings
 * of about 0.05 s, taken in interleaved rounds so that load from other
 * processes affects every figure alike, in the CPU time of this thread
 * (on a shared machine the time the thread waits for a core is not the
 * kernels'; on an idle one the two clocks agree).
 *
 *   build/bench/bench_kernels
 *   build/bench/bench_kernels --step TABLE SECONDS
 *
 * The second form runs only the bf16 step of one kernel table (its
 * stem_isa_name) for about SECONDS seconds of CPU time, a target for
 * profilers (perf record), and prints its mean time per step.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "bench_tile.h"


/* Seconds of CPU time of the calling thread. */
static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
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

/* Seconds per call of fn over `iters` calls. */
static double time_calls(void (*fn)(void *), void *arg, int iters)
{
    double t0 = now();
    for (int i = 0; i < iters; i++)
        fn(arg);
    return (now() - t0) / iters;
}

/* Calls so that one timing lasts about 0.05 s. */
static int calibrate(void (*fn)(void *), void *arg)
{
    int iters = 1;
    for (;;) {
        double t = time_calls(fn, arg, iters) * iters;
        if (t > 0.01 || iters > (1 << 24))
            return (int)(iters * (0.05 / (t > 1e-9 ? t : 1e-9))) + 1;
        iters *= 4;
    }
}

static void inner_fn(void *arg)
{
    bench_tile_step(arg);
}

static void inner_bf16_fn(void *arg)
{
    bench_tile_step_bf16(arg);
}

/* The bf16 step's three kernels one at a time, for the breakdown, and the
 * f32 mode's softmax next to its bf16 twin. */
static void part_qk_fn(void *arg)
{
    bench_tile *t = arg;
    const int T = BENCH_TILE;
    t->k->qk_tile_bf16(T, T, T, t->qb, T, t->kt16, BENCH_TILE_LD_PAIRS, t->s,
                       T, t->work);
}

static void part_softmax_fn(void *arg)
{
    bench_tile *t = arg;
    const int T = BENCH_TILE;
    t->k->softmax_rows(T, T, t->valid, 0.08838835f, t->s, T, t->m, t->l,
                       t->alpha);
}

static void part_softmax_bf16_fn(void *arg)
{
    bench_tile *t = arg;
    const int T = BENCH_TILE;
    t->k->softmax_rows_bf16(T, T, t->valid, 0.08838835f, t->s, T, t->m, t->l,
                            t->alpha, t->p, T);
}

static void part_pv_fn(void *arg)
{
    bench_tile *t = arg;
    const int T = BENCH_TILE;
    t->k->pv_tile_bf16(T, T, T, t->p, T, t->v16, BENCH_TILE_LD_PAIRS,
                       t->alpha, t->o, T, t->work);
}

#define N_PARTS 4
static void (*const parts[N_PARTS])(void *) = {
    part_qk_fn, part_softmax_bf16_fn, part_pv_fn, part_softmax_fn};
static const char *const part_names[N_PARTS] = {
    "qk_tile_bf16", "softmax_rows_bf16", "pv_tile_bf16",
    "(f32 mode's softmax_rows, SLEEF expf)"};

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

/* One measured thing: its call, its flops per call, its best time. */
typedef struct item {
    const char *label;
    void (*fn)(void *);
    void *arg;
    double flops;
    int iters;
    double best;
} item;

#define ROUNDS 7

/* --step TABLE SECONDS: the bf16 step of one table in a loop; 0, or 2 with
 * a message on stderr for a table not built in or not runnable here or a
 * duration outside (0, 3600]. */
static int step_loop(const char *table, const char *seconds)
{
    const stem_kernels *k = NULL;
    for (int isa = 0; isa < STEM_ISA_COUNT; isa++)
        if (strcmp(stem_isa_name((stem_isa)isa), table) == 0)
            k = stem_kernels_for((stem_isa)isa);
    char *end;
    double want = strtod(seconds, &end);
    if (!k || *end || !(want > 0.0 && want <= 3600.0)) {
        fprintf(stderr, "bench_kernels: --step needs a kernel table that runs "
                "here and 0 < SECONDS <= 3600 (got %s %s)\n", table, seconds);
        return 2;
    }
    bench_tile t;
    if (bench_tile_init(&t, k, 100)) {
        fprintf(stderr, "bench_kernels: out of memory\n");
        return 1;
    }
    long steps = 0;
    double t0 = now(), t1 = t0;
    while (t1 - t0 < want) {
        for (int i = 0; i < 100; i++)
            bench_tile_step_bf16(&t);
        steps += 100;
        t1 = now();
    }
    printf("%s bf16 step: %ld steps, %.2f us/step\n", table, steps,
           (t1 - t0) / (double)steps * 1e6);
    bench_tile_free(&t);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--step") == 0)
        return step_loop(argv[2], argv[3]);
    if (argc != 1) {
        fprintf(stderr, "usage: bench_kernels [--step TABLE SECONDS]\n");
        return 2;
    }
    unsigned seed = 12345u;
    openblas_set_num_threads(1);
    item items[2 + (2 + N_PARTS) * STEM_ISA_COUNT];
    bench_tile states[STEM_ISA_COUNT] = {0};
    gemm_state gemms[2];
    int n_items = 0;

    const int sizes[2] = {128, 512};
    for (int g = 0; g < 2; g++) {
        int n = sizes[g];
        gemms[g] = (gemm_state){n, alloc_fill((size_t)n * n, &seed),
                                alloc_fill((size_t)n * n, &seed),
                                alloc_fill((size_t)n * n, &seed)};
        items[n_items++] = (item){g ? "sgemm 512^3" : "sgemm 128^3", gemm_fn,
                                  &gemms[g], 2.0 * n * (double)n * n, 0, 1e30};
    }
    for (int isa = 0; isa < STEM_ISA_COUNT; isa++) {
        bench_tile *st = &states[isa];
        const stem_kernels *k = stem_kernels_for((stem_isa)isa);
        if (!k)
            continue;
        if (bench_tile_init(st, k, 100 + (uint64_t)isa)) {
            fprintf(stderr, "bench_kernels: out of memory\n");
            return 1;
        }
        items[n_items++] = (item){stem_isa_name((stem_isa)isa), inner_fn, st,
                                  4.0 * BENCH_TILE * (double)BENCH_TILE * BENCH_TILE, 0, 1e30};
        items[n_items++] = (item){stem_isa_name((stem_isa)isa), inner_bf16_fn, st,
                                  4.0 * BENCH_TILE * (double)BENCH_TILE * BENCH_TILE, 0, 1e30};
        for (int p = 0; p < N_PARTS; p++)
            items[n_items++] = (item){part_names[p], parts[p], st,
                                      2.0 * BENCH_TILE * (double)BENCH_TILE * BENCH_TILE, 0, 1e30};
    }

    /* Interleaved rounds, best of each: load from other processes hits
     * every item alike. */
    for (int i = 0; i < n_items; i++)
        items[i].iters = calibrate(items[i].fn, items[i].arg);
    for (int r = 0; r < ROUNDS; r++)
        for (int i = 0; i < n_items; i++) {
            double t = time_calls(items[i].fn, items[i].arg, items[i].iters);
            if (t < items[i].best)
                items[i].best = t;
        }

    double blas128 = items[0].flops / items[0].best * 1e-9;
    double blas512 = items[1].flops / items[1].best * 1e-9;
    printf("OpenBLAS cblas_sgemm, 1 thread: 128^3 %.1f GFLOP/s, 512^3 %.1f "
           "GFLOP/s\n", blas128, blas512);
    for (int i = 2; i < n_items; i++) {
        double gf = items[i].flops / items[i].best * 1e-9;
        int part = -1;
        for (int p = 0; p < N_PARTS; p++)
            if (items[i].fn == parts[p])
                part = p;
        if (part >= 0) {
            printf("         %-38s %6.2f us/block\n", items[i].label,
                   items[i].best * 1e6);
            continue;
        }
        if (items[i].fn == inner_bf16_fn) {
            printf("%-6s the same step in the bf16 mode: %.1f GFLOP/s (%.1f us/block), "
                   "%.2fx the f32 step's time\n", items[i].label, gf,
                   items[i].best * 1e6, items[i].best / items[i - 1].best);
            continue;
        }
        printf("%-6s qk_tile+softmax_rows+pv_tile 128x128x128: %.1f GFLOP/s "
               "(%.1f us/block), %.0f%% of sgemm 128^3, %.0f%% of sgemm 512^3\n",
               items[i].label, gf, items[i].best * 1e6, 100.0 * gf / blas128,
               100.0 * gf / blas512);
    }
    for (int isa = 0; isa < STEM_ISA_COUNT; isa++)
        bench_tile_free(&states[isa]);
    for (int g = 0; g < 2; g++)
        free(gemms[g].a), free(gemms[g].b), free(gemms[g].c);
    return 0;
}
