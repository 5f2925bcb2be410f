/*
 * bench_tile.c - the timed inner step of the benchmarks (bench_tile.h).
 */
#include "bench_tile.h"

#include <math.h>
#include <stdlib.h>

#include "bench_util.h"

int bench_tile_init(bench_tile *t, const stem_kernels *k, uint64_t seed)
{
    const size_t tile = (size_t)BENCH_TILE * BENCH_TILE;
    t->k = k;
    t->buf = bench_randn(5 * tile + 3 * BENCH_TILE, seed, 0.5f);
    if (!t->buf)
        return -1;
    t->q = t->buf;
    t->kt = t->q + tile;
    t->v = t->kt + tile;
    t->s = t->v + tile;
    t->o = t->s + tile;
    t->m = t->o + tile;
    t->l = t->m + BENCH_TILE;
    t->alpha = t->l + BENCH_TILE;
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

void bench_tile_free(bench_tile *t)
{
    free(t->buf);
    t->buf = NULL;
}
