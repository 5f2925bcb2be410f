/*
 * bench_tile.c - the timed inner step of the benchmarks (bench_tile.h).
 */
#include "bench_tile.h"

#include <math.h>
#include <stdlib.h>

#include "bench_util.h"

/* Natural k x n floats (row t at x + t*n) rounded to bf16 in the pairs
 * layout: element (t, j) at y[(t/2)*ld + 2*j + (t & 1)]; k is even here. */
static void to_pairs_bf16(int k, int n, const float *x, uint16_t *y, int ld)
{
    for (int t = 0; t < k; t++)
        for (int j = 0; j < n; j++)
            y[(size_t)(t / 2) * ld + 2 * j + (t & 1)] =
                stem_bf16_round(x[(size_t)t * n + j]);
}

int bench_tile_init(bench_tile *t, const stem_kernels *k, uint64_t seed)
{
    const size_t tile = (size_t)BENCH_TILE * BENCH_TILE;
    t->k = k;
    t->buf = bench_randn(5 * tile + 3 * BENCH_TILE + BENCH_TILE_WORK, seed,
                         0.5f);
    t->buf16 = aligned_alloc(64, 4 * tile * sizeof(uint16_t));
    if (!t->buf || !t->buf16) {
        free(t->buf), free(t->buf16);
        t->buf = NULL, t->buf16 = NULL;
        return -1;
    }
    t->q = t->buf;
    t->kt = t->q + tile;
    t->v = t->kt + tile;
    t->s = t->v + tile;
    t->o = t->s + tile;
    t->m = t->o + tile;
    t->l = t->m + BENCH_TILE;
    t->alpha = t->l + BENCH_TILE;
    t->work = t->alpha + BENCH_TILE;
    t->qb = t->buf16;
    t->p = t->qb + tile;
    t->kt16 = t->p + tile;  /* BENCH_TILE / 2 pair rows of 2 * BENCH_TILE */
    t->v16 = t->kt16 + tile;
    k->bf16_rows(BENCH_TILE, BENCH_TILE, t->q, BENCH_TILE, t->qb, BENCH_TILE);
    to_pairs_bf16(BENCH_TILE, BENCH_TILE, t->kt, t->kt16, BENCH_TILE_LD_PAIRS);
    to_pairs_bf16(BENCH_TILE, BENCH_TILE, t->v, t->v16, BENCH_TILE_LD_PAIRS);
    k->bf16_rows(BENCH_TILE, BENCH_TILE, t->s, BENCH_TILE, t->p, BENCH_TILE);
    for (int i = 0; i < BENCH_TILE; i++) {
        t->valid[i] = BENCH_TILE;
        t->m[i] = -INFINITY;
        t->l[i] = 0.0f;
    }
    return 0;
}

void bench_tile_step(bench_tile *t)
{
    const stem_kernels *k = t->k;
    const int T = BENCH_TILE;
    k->qk_tile(T, T, T, t->q, T, t->kt, T, t->s, T);
    k->softmax_rows(T, T, t->valid, 0.08838835f, t->s, T, t->m, t->l, t->alpha);
    k->pv_tile(T, T, T, t->s, T, t->v, T, t->alpha, t->o, T);
}

void bench_tile_step_bf16(bench_tile *t)
{
    const stem_kernels *k = t->k;
    const int T = BENCH_TILE;
    const int L = BENCH_TILE_LD_PAIRS;
    k->qk_tile_bf16(T, T, T, t->qb, T, t->kt16, L, t->s, T, t->work);
    k->softmax_rows_bf16(T, T, t->valid, 0.08838835f, t->s, T, t->m, t->l,
                         t->alpha, t->p, T);
    k->pv_tile_bf16(T, T, T, t->p, T, t->v16, L, t->alpha, t->o, T, t->work);
}

void bench_tile_free(bench_tile *t)
{
    free(t->buf);
    free(t->buf16);
    t->buf = NULL;
    t->buf16 = NULL;
}
