/*
 * attend.c - block-sparse and dense causal attention, float32 path: where
 * the selected blocks are attended.
 *
 * Flash-attention style: for one query block (up to B rows) the selected key
 * blocks are visited in ascending order; each visit computes the score tile
 * (qk_tile), one online-softmax step (softmax_rows) and the P.V update
 * (pv_tile).  Rows end as O / l, with lse = m + ln l.
 *
 * Threads take (query head, query block) tasks dynamically, since causal and
 * sparse rows carry uneven work.  K (transposed) and V are packed to float32
 * once per kv head and shared by every query head of its GQA group.  A task's
 * every operation runs in one thread in a fixed order, so the bytes out do
 * not depend on the thread count; the kernels are bit-exact twins across
 * instruction sets, so they do not depend on the ISA either.
 *
 * The bf16 compute mode (params->compute) runs the same steps with the
 * bf16 kernels of src/kernels.h: K and V are packed as bf16 (half the
 * memory), the query rows are rounded to bf16 (bf16_rows) and each block's
 * probabilities come out of softmax_rows_bf16 already rounded (its
 * exponential is src/expb.h's e_b) before their products.
 *
 * Memory: the packed kv heads (2 * Kb * B * d floats each, half that in
 * bf16; as many heads together as fit in 256 MiB, at least one) plus, per
 * thread, a query tile, a B x B score tile, the row state, and in bf16 mode
 * a B x B probability tile and a B x (B + 1 + d) kernel scratch.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "internal.h"
#include "kernels.h"
#include "bf16_rows.h"

/* Packed K/V of several kv heads are kept together up to this size, and no
 * more heads than give each thread this many tasks. */
#define STEM_PACK_BYTES ((size_t)256 << 20)
#define STEM_TASKS_PER_THREAD 8

/* Sizes rounded up to even (bf16 pairs). */
static int even_up(int n)
{
    return (n + 1) & ~1;
}

typedef struct tile_ws {
    float *q;       /* [B][d] query rows (f32 mode) */
    float *s;       /* [B][B] scores, then probabilities (f32 mode) */
    float *o;       /* [B][d] accumulator */
    float *m, *l, *alpha;
    int *valid;
    float *work;    /* bf16 mode: [B][B + 1 + d] kernel scratch */
    uint16_t *q16;  /* bf16 mode: [B][d2] query rows, rows layout */
    uint16_t *p16;  /* bf16 mode: [B][B2] probabilities, rows layout */
} tile_ws;

/* n floats rounded up to whole 64-byte lines. */
static size_t lines(size_t n)
{
    return (n + 15) & ~(size_t)15;
}

/* Floats of one thread's workspace: every array starts on a 64-byte line
 * (the tile unit and the vector loads read whole lines; a row split over
 * two lines costs two), the bf16 arrays counted in floats. */
static size_t ws_floats(int B, int d, int bf16)
{
    size_t n = lines((size_t)B * d) * 2 + lines((size_t)B * B) + lines((size_t)B) * 4;
    if (bf16)
        n += lines((size_t)B * (B + 1 + d)) +
             lines(((size_t)B * even_up(d) + 1) / 2) +
             lines(((size_t)B * even_up(B) + 1) / 2);
    return n;
}

/* The workspace at base (64-byte aligned, ws_floats floats). */
static tile_ws ws_at(float *base, int B, int d, int bf16)
{
    tile_ws w;
    w.q = base;
    w.s = w.q + lines((size_t)B * d);
    w.o = w.s + lines((size_t)B * B);
    w.m = w.o + lines((size_t)B * d);
    w.l = w.m + lines(B);
    w.alpha = w.l + lines(B);
    w.valid = (int *)(w.alpha + lines(B));
    w.work = NULL;
    w.q16 = w.p16 = NULL;
    if (bf16) {
        w.work = (float *)w.valid + lines(B);
        w.q16 = (uint16_t *)(w.work + lines((size_t)B * (B + 1 + d)));
        w.p16 = w.q16 + 2 * lines(((size_t)B * even_up(d) + 1) / 2);
    }
    return w;
}

/* size bytes, 64-byte aligned (free with free). */
static void *alloc_lines(size_t size)
{
    return aligned_alloc(64, ((size + 63) / 64) * 64);
}

/* Pack key block J of kv head g as kt[c * B + j] and value block as
 * vb[j * d + c], zero past Lk. */
static void pack_block(const stem_tensor *k, const stem_tensor *v, int64_t g,
                       int64_t J, int B, int d, float *kt, float *vb,
                       float *row)
{
    for (int j = 0; j < B; j++) {
        int64_t t = J * B + j;
        if (t < k->tokens) {
            stem_load_row_f32(k, g, t, row);
            for (int c = 0; c < d; c++)
                kt[(size_t)c * B + j] = row[c];
            stem_load_row_f32(v, g, t, vb + (size_t)j * d);
        } else {
            for (int c = 0; c < d; c++)
                kt[(size_t)c * B + j] = 0.0f;
            memset(vb + (size_t)j * d, 0, (size_t)d * sizeof(float));
        }
    }
}

/* The bf16 mode's pack of key block J of kv head g in the pairs layout of
 * src/kernels.h: K component c of key j at kt[(c/2) * 2B + 2j + (c & 1)]
 * (d2/2 pair rows, a zero component d when d is odd) and V component c of
 * key j at vb[(j/2) * 2d + 2c + (j & 1)] (B2/2 pair rows), bf16 as
 * stem_bf16_round gives, zero past Lk. */
static void pack_block_bf16(const stem_tensor *k, const stem_tensor *v,
                            int64_t g, int64_t J, int B, int d, uint16_t *kt,
                            uint16_t *vb, float *row)
{
    const int d2 = even_up(d), B2 = even_up(B);
    memset(kt, 0, (size_t)d2 * B * sizeof *kt);
    memset(vb, 0, (size_t)B2 * d * sizeof *vb);
    for (int j = 0; j < B; j++) {
        int64_t t = J * B + j;
        if (t >= k->tokens)
            break;
        stem_load_row_f32(k, g, t, row);
        for (int c = 0; c < d; c++)
            kt[(size_t)(c / 2) * 2 * B + 2 * j + (c & 1)] =
                stem_bf16_round_inline(row[c]);
        stem_load_row_f32(v, g, t, row);
        uint16_t *vj = vb + (size_t)(j / 2) * 2 * d + (j & 1);
        for (int c = 0; c < d; c++)
            vj[2 * c] = stem_bf16_round_inline(row[c]);
    }
}

/* A (head h, query block I) task and its cost in key blocks. */
typedef struct attend_task {
    int64_t blocks, h, I;
} attend_task;

/* Key blocks task (h, I) visits: the selected ones at or below its last
 * causal block (all of them without a mask). */
static int64_t task_blocks(const stem_dims *dims, int B, const uint8_t *mask,
                           int64_t h, int64_t I)
{
    int64_t rows = dims->lq - I * B < B ? dims->lq - I * B : B;
    int64_t last = (I * B + dims->offset + rows - 1) / B;
    if (last > dims->kb - 1)
        last = dims->kb - 1;
    if (!mask)
        return last + 1;
    const uint8_t *mrow = mask + ((size_t)h * dims->qb + I) * dims->kb;
    int64_t n = 0;
    for (int64_t J = 0; J <= last; J++)
        n += mrow[J] != 0;
    return n;
}

/* Most blocks first; ties by later query block, then by head. */
static int task_order(const void *pa, const void *pb)
{
    const attend_task *a = pa, *b = pb;
    if (a->blocks != b->blocks)
        return a->blocks > b->blocks ? -1 : 1;
    if (a->I != b->I)
        return a->I > b->I ? -1 : 1;
    return (a->h > b->h) - (a->h < b->h);
}

/* One (head h, query block I) task. */
static void attend_block(const stem_kernels *kern, const stem_dims *dims,
                         int B, const stem_tensor *q, int64_t h, int64_t I,
                         const uint8_t *mrow, const void *kt,
                         const void *vp, int bf16, tile_ws w,
                         stem_tensor *out, float *lse)
{
    const int d = (int)dims->d;
    const int64_t Kb = dims->kb;
    const int rows = (int)(dims->lq - I * B < B ? dims->lq - I * B : B);
    const int64_t r0 = I * B + dims->offset; /* absolute position of row 0 */
    const float scale = (float)(1.0 / sqrt((double)d));
    const size_t blk = (size_t)B * d;
    const int d2 = even_up(d), B2 = even_up(B);
    const size_t kblk = bf16 ? (size_t)d2 * B : blk;
    const size_t vblk = bf16 ? (size_t)B2 * d : blk;

    for (int i = 0; i < rows; i++) {
        float *qi = w.q + (size_t)i * d;
        stem_load_row_f32(q, h, I * B + i, qi);
        if (bf16)
            kern->bf16_rows(1, d, qi, d, w.q16 + (size_t)i * d2, d2);
        w.m[i] = -INFINITY;
        w.l[i] = 0.0f;
    }
    memset(w.o, 0, (size_t)rows * d * sizeof(float));

    int64_t last = (r0 + rows - 1) / B;
    if (last > Kb - 1)
        last = Kb - 1;
    for (int64_t J = 0; J <= last; J++) {
        if (mrow && !mrow[J])
            continue;
        int cols = (int)(dims->lk - J * B < B ? dims->lk - J * B : B);
        int64_t first = J * B - r0; /* rows before this one see no key of J */
        int i0 = first > 0 ? (int)first : 0;
        if (i0 >= rows)
            continue;
        for (int i = i0; i < rows; i++) {
            int64_t n = r0 + i - J * B + 1;
            w.valid[i] = (int)(n < cols ? n : cols);
        }
        int nr = rows - i0;
        float *s = w.s + (size_t)i0 * B;
        if (bf16) {
            const uint16_t *kj = (const uint16_t *)kt + J * kblk;
            const uint16_t *vj = (const uint16_t *)vp + J * vblk;
            kern->qk_tile_bf16(nr, cols, d, w.q16 + (size_t)i0 * d2, d2, kj,
                               2 * B, s, B, w.work);
            kern->softmax_rows_bf16(nr, cols, w.valid + i0, scale, s, B,
                                    w.m + i0, w.l + i0, w.alpha + i0, w.p16,
                                    B2);
            kern->pv_tile_bf16(nr, cols, d, w.p16, B2, vj, 2 * d,
                               w.alpha + i0, w.o + (size_t)i0 * d, d, w.work);
            continue;
        }
        kern->qk_tile(nr, cols, d, w.q + (size_t)i0 * d, d,
                      (const float *)kt + J * blk, B, s, B);
        kern->softmax_rows(nr, cols, w.valid + i0, scale, s, B, w.m + i0,
                           w.l + i0, w.alpha + i0);
        kern->pv_tile(nr, cols, d, s, B, (const float *)vp + J * blk, d,
                      w.alpha + i0, w.o + (size_t)i0 * d, d);
    }
    for (int i = 0; i < rows; i++) {
        const float *oi = w.o + (size_t)i * d;
        for (int c = 0; c < d; c++)
            stem_store_out(out, h, I * B + i, c, oi[c] / w.l[i]);
        if (lse)
            lse[h * dims->lq + I * B + i] = w.m[i] + stem_logf_ref(w.l[i]);
    }
}

stem_status stem_attend_f32(const stem_params *params, const stem_dims *dims,
                            const stem_tensor *q, const stem_tensor *k,
                            const stem_tensor *v, const uint8_t *mask,
                            stem_tensor *out, float *lse)
{
    stem_status st;
    const stem_kernels *kern = stem_kernels_active(&st);
    if (!kern)
        return st;
    const int B = params->block, d = (int)dims->d;
    const int64_t Qb = dims->qb, Kb = dims->kb, hpg = dims->hq / dims->hkv;
    const int nt = stem_thread_count(params);
    const int bf16 = params->compute == STEM_COMPUTE_BF16;
    const size_t blk = (size_t)B * d, per = ws_floats(B, d, bf16);
    /* elements of one block's K and V pack, and their size */
    const size_t kblk = bf16 ? (size_t)even_up(d) * B : blk;
    const size_t vblk = bf16 ? (size_t)even_up(B) * d : blk;
    const size_t esize = bf16 ? sizeof(uint16_t) : sizeof(float);

    /* Pack several kv heads at once: enough for STEM_TASKS_PER_THREAD
     * (head, query block) tasks per thread, so that short prompts with many
     * heads still give every thread work, but no more (a small pack stays
     * in cache, and its buffer is reused by the next heads), and at most
     * STEM_PACK_BYTES (at least one head). */
    const size_t head_bytes = (kblk + vblk) * (size_t)Kb * esize;
    int64_t chunk = (int64_t)(STEM_PACK_BYTES / head_bytes);
    int64_t want = (STEM_TASKS_PER_THREAD * (int64_t)nt + hpg * Qb - 1) / (hpg * Qb);
    if (want < chunk)
        chunk = want;
    if (chunk < 1)
        chunk = 1;
    if (chunk > dims->hkv)
        chunk = dims->hkv;
    char *kt = alloc_lines(kblk * (size_t)Kb * (size_t)chunk * esize);
    char *vp = alloc_lines(vblk * (size_t)Kb * (size_t)chunk * esize);
    float *ws = alloc_lines(per * (size_t)nt * sizeof(float));
    attend_task *tasks = malloc((size_t)(chunk * hpg * Qb) * sizeof *tasks);
    if (!kt || !vp || !ws || !tasks) {
        free(kt), free(vp), free(ws), free(tasks);
        return STEM_ERR_NOMEM;
    }
    const size_t kt_head = kblk * (size_t)Kb * esize; /* bytes */
    const size_t vp_head = vblk * (size_t)Kb * esize;
    for (int64_t g0 = 0; g0 < dims->hkv; g0 += chunk) {
        const int64_t ng = dims->hkv - g0 < chunk ? dims->hkv - g0 : chunk;
        #pragma omp parallel for collapse(2) schedule(static) num_threads(nt)
        for (int64_t gg = 0; gg < ng; gg++) {
            for (int64_t J = 0; J < Kb; J++) {
                float row[STEM_MAX_HEAD_DIM];
                char *kd = kt + gg * kt_head + J * kblk * esize;
                char *vd = vp + gg * vp_head + J * vblk * esize;
                if (bf16)
                    pack_block_bf16(k, v, g0 + gg, J, B, d, (uint16_t *)kd,
                                    (uint16_t *)vd, row);
                else
                    pack_block(k, v, g0 + gg, J, B, d, (float *)kd,
                               (float *)vd, row);
            }
        }
        /* Longest tasks first (by selected key blocks), so that the last
         * tasks the threads pick up are short. */
        const int64_t n = ng * hpg * Qb;
        for (int64_t i = 0; i < n; i++) {
            int64_t h = g0 * hpg + i / Qb, I = i % Qb;
            tasks[i] = (attend_task){task_blocks(dims, B, mask, h, I), h, I};
        }
        qsort(tasks, (size_t)n, sizeof *tasks, task_order);
        #pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
        for (int64_t i = 0; i < n; i++) {
            int tid = 0;
#ifdef _OPENMP
            tid = omp_get_thread_num();
#endif
            int64_t h = tasks[i].h, I = tasks[i].I, gg = h / hpg - g0;
            const uint8_t *mrow = mask ? mask + ((size_t)h * Qb + I) * Kb : NULL;
            attend_block(kern, dims, B, q, h, I, mrow, kt + gg * kt_head,
                         vp + gg * vp_head, bf16,
                         ws_at(ws + (size_t)tid * per, B, d, bf16), out, lse);
        }
    }
    free(kt);
    free(vp);
    free(ws);
    free(tasks);
    return STEM_OK;
}
