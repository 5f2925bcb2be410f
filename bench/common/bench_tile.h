/*
 * bench_tile.h - the flash-attention inner step that bench_kernels and
 * bench_prefill time: qk_tile, softmax_rows and pv_tile of one kernel
 * table on a BENCH_TILE x BENCH_TILE tile with d = BENCH_TILE, on data the
 * tile owns (4 * BENCH_TILE^3 flops per step), and the same step in the
 * bf16 compute mode.
 */
#ifndef STEM_BENCH_TILE_H
#define STEM_BENCH_TILE_H

#include <stdint.h>

#include "kernels.h"

#define BENCH_TILE 128
/* The bf16 mode's pairs-layout operands (kt16, v16): pair row u holds rows
 * 2u and 2u+1, leading dimension 2 * BENCH_TILE (simd/kernels.h). */
#define BENCH_TILE_LD_PAIRS (2 * BENCH_TILE)
/* Scratch of the bf16 kernels: qk_tile_bf16 needs rows * (d + 1) floats,
 * pv_tile_bf16 rows * (cols + 1 + d); the larger, for a full tile. */
#define BENCH_TILE_WORK ((size_t)BENCH_TILE * (2 * BENCH_TILE + 1))

typedef struct bench_tile {
    const stem_kernels *k;
    float *buf; /* one allocation holding the float arrays below */
    float *q, *kt, *v, *s, *o, *m, *l, *alpha;
    int valid[BENCH_TILE];
    /* the bf16 mode (simd/kernels.h): q and P in the rows layout (ld
     * BENCH_TILE), K^T and V in the pairs layout (ld BENCH_TILE_LD_PAIRS),
     * all in one allocation (buf16); work: BENCH_TILE_WORK floats */
    float *work;
    uint16_t *buf16, *qb, *p, *kt16, *v16;
} bench_tile;

/* Allocate and fill a tile for kernel table k (random data from seed,
 * running max -inf, sums 0).  0 on success, -1 if out of memory; free
 * with bench_tile_free. */
int bench_tile_init(bench_tile *t, const stem_kernels *k, uint64_t seed);

/* One step of the inner loop over one key block. */
void bench_tile_step(bench_tile *t);

/* The same step in the bf16 compute mode (qk_tile_bf16, softmax_rows_bf16,
 * pv_tile_bf16), 4 * BENCH_TILE^3 flops too. */
void bench_tile_step_bf16(bench_tile *t);

/* Free a tile from bench_tile_init (NULL-safe on a failed init). */
void bench_tile_free(bench_tile *t);

#endif
