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
    t->buf = bench_randn(8 * tile + 3 * BENCH_TILE, seed, 0.5f);
    t->kt16 = malloc(2 * tile * sizeof(uint16_t));
    if (!t->buf || !t->kt16) {
        free(t->buf), free(t->kt16);
        t->buf = NULL, t->kt16 = NULL;
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
    t->qb = t->alpha + BENCH_TILE;
    t->p = t->qb + tile;
    t->work = t->p + tile;
    t->v16 = t->kt16 + tile;
    k->bf16_rows(BENCH_TILE, BENCH_TILE, t->q, BENCH_TILE, t->qb, BENCH_TILE);
    for (size_t i = 0; i < tile; i++) {
        t->kt16[i] = stem_bf16_round(t->kt[i]);
        t->v16[i] = stem_bf16_round(t->v[i]);
    }
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
    k->qk_tile_bf16(T, T, T, t->qb, T, t->kt16, T, t->s, T);
    k->softmax_rows_bf16(T, T, t->valid, 0.08838835f, t->s, T, t->m, t->l,
                         t->alpha, t->p, T);
    k->pv_tile_bf16(T, T, T, t->p, T, t->v16, T, t->alpha, t->o, T, t->work);
}

void bench_tile_free(bench_tile *t)
{
    free(t->buf);
    free(t->kt16);
    t->buf = NULL;
    t->kt16 = NULL;
}
