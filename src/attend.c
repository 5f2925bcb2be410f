/*
 * attend.c - block-sparse and dense causal attention, float32 path: where
 * the selected blocks are attended.
 *
 * Flash-attention style: for one query block (up to B rows) the selected key
 * blocks are visited in ascending order; each visit computes the score tile
 * (qk_tile), one online-softmax step (softmax_rows) and the P.V update
 * (pv_tile).  Rows end as O / l, with lse = m + ln l.
 *
 * Threads take (query heads, query block) tasks dynamically, since causal
 * and sparse rows carry uneven work.  K (transposed) and V are packed to
 * float32 once per kv head and shared by every query head of its GQA group.
 * A task is one query head in the f32 mode and up to four heads of one
 * group in the bf16 mode, which then visit each key block one after the
 * other.  Every operation of one head's rows runs in one thread in a fixed
 * order (key blocks ascending), whatever the task holds, so the bytes out do
 * not depend on the thread count or the grouping; the kernels are bit-exact
 * twins across instruction sets, so they do not depend on the ISA either.
 *
 * The bf16 compute mode (params->compute) runs the same steps with the
 * bf16 kernels of simd/kernels.h: K and V are packed as bf16 (half the
 * memory), the query rows are rounded to bf16 (bf16_rows) and each block's
 * probabilities come out of softmax_rows_bf16 already rounded (its
 * exponential is simd/expb.h's e_b) before their products.
 *
 * Memory: the packed kv heads (2 * Kb * B * d floats each, half that in
 * bf16; as many heads together as fit in 256 MiB, at least one) plus, per
 * thread, a B x B score tile and for each head of a task a query tile, an
 * accumulator and the row state; in bf16 mode also a B x B probability
 * tile and a B x (B + 1 + d) kernel scratch.
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
/* Query heads of one GQA group that share a task in the bf16 mode, at
 * most: each key block the task visits then comes from memory once for all
 * of them, which keeps the tile units fed from cache rather than L3.  The
 * f32 mode keeps one head per task, which measured faster there.  A head's
 * bytes do not depend on the heads it shares a task with
 * (tests/test_determinism.c). */
#define STEM_GROUP_HEADS 4

/* Sizes rounded up to even (bf16 pairs). */
static int even_up(int n)
{
    return (n + 1) & ~1;
}

/* One query head's part of a task's workspace. */
typedef struct head_ws {
    float *q;       /* f32 mode: [B][d] query rows */
    uint16_t *q16;  /* bf16 mode: [B][d2] query rows, rows layout */
    float *o;       /* [B][d] accumulator */
    float *m, *l, *alpha;
} head_ws;

/* A thread's workspace: what the heads of a task take turns with, and
 * each head's own rows. */
typedef struct tile_ws {
    float *s;       /* [B][B] scores (f32 mode: then probabilities) */
    int *valid;     /* [B] keys each row sees in the current block */
    float *qf;      /* bf16 mode: [B][d] query rows before rounding */
    float *work;    /* bf16 mode: [B][B + 1 + d] kernel scratch */
    uint16_t *p16;  /* bf16 mode: [B][B2] probabilities, rows layout */
    head_ws head[STEM_GROUP_HEADS];
} tile_ws;

/* n floats rounded up to whole 64-byte lines. */
static size_t lines(size_t n)
{
    return (n + 15) & ~(size_t)15;
}

/* Floats of one head's part of the workspace. */
static size_t head_floats(int B, int d, int bf16)
{
    size_t n = lines((size_t)B * d) + lines((size_t)B) * 3;
    n += bf16 ? lines(((size_t)B * even_up(d) + 1) / 2) : lines((size_t)B * d);
    return n;
}

/* Floats of one thread's workspace for tasks of up to G heads: every
 * array starts on a 64-byte line (the tile unit and the vector loads read
 * whole lines; a row split over two lines costs two), the bf16 arrays
 * counted in floats. */
static size_t ws_floats(int B, int d, int bf16, int G)
{
    size_t n = lines((size_t)B * B) + lines((size_t)B) +
               (size_t)G * head_floats(B, d, bf16);
    if (bf16)
        n += lines((size_t)B * d) + lines((size_t)B * (B + 1 + d)) +
             lines(((size_t)B * even_up(B) + 1) / 2);
    return n;
}

/* The workspace at base (64-byte aligned, ws_floats floats). */
static tile_ws ws_at(float *base, int B, int d, int bf16, int G)
{
    tile_ws w = {0};
    float *at = base;
    w.s = at, at += lines((size_t)B * B);
    w.valid = (int *)at, at += lines(B);
    if (bf16) {
        w.qf = at, at += lines((size_t)B * d);
        w.work = at, at += lines((size_t)B * (B + 1 + d));
        w.p16 = (uint16_t *)at, at += lines(((size_t)B * even_up(B) + 1) / 2);
    }
    for (int e = 0; e < G; e++) {
        head_ws *hw = &w.head[e];
        hw->o = at, at += lines((size_t)B * d);
        hw->m = at, at += lines(B);
        hw->l = at, at += lines(B);
        hw->alpha = at, at += lines(B);
        if (bf16)
            hw->q16 = (uint16_t *)at, at += lines(((size_t)B * even_up(d) + 1) / 2);
        else
            hw->q = at, at += lines((size_t)B * d);
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
 * simd/kernels.h: K component c of key j at kt[(c/2) * 2B + 2j + (c & 1)]
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

/* A task: query block I of the nh query heads h0 .. h0 + nh - 1 (one GQA
 * group's), and its cost in key block visits. */
typedef struct attend_task {
    int64_t blocks, h0, I;
    int nh;
} attend_task;

/* The last key block that query block I sees (causal). */
static int64_t last_block(const stem_dims *dims, int B, int64_t I)
{
    int64_t rows = dims->lq - I * B < B ? dims->lq - I * B : B;
    int64_t last = (I * B + dims->offset + rows - 1) / B;
    return last > dims->kb - 1 ? dims->kb - 1 : last;
}

/* Key blocks head h visits for query block I: the selected ones at or
 * below its last causal block (all of them without a mask). */
static int64_t task_blocks(const stem_dims *dims, int B, const uint8_t *mask,
                           int64_t h, int64_t I)
{
    int64_t last = last_block(dims, B, I);
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
    return (a->h0 > b->h0) - (a->h0 < b->h0);
}

/* One block step of one head: scores of key block J (kj, vj: its packs)
 * for rows i0 .. rows - 1, the online softmax and the P.V update. */
static void head_step(const stem_kernels *kern, int B, int d, int bf16,
                      int i0, int rows, int cols, float scale, const void *kj,
                      const void *vj, tile_ws *w, head_ws *hw)
{
    const int nr = rows - i0, d2 = even_up(d), B2 = even_up(B);
    float *s = w->s + (size_t)i0 * B;
    if (bf16) {
        kern->qk_tile_bf16(nr, cols, d, hw->q16 + (size_t)i0 * d2, d2, kj,
                           2 * B, s, B, w->work);
        kern->softmax_rows_bf16(nr, cols, w->valid + i0, scale, s, B,
                                hw->m + i0, hw->l + i0, hw->alpha + i0, w->p16,
                                B2);
        kern->pv_tile_bf16(nr, cols, d, w->p16, B2, vj, 2 * d, hw->alpha + i0,
                           hw->o + (size_t)i0 * d, d, w->work);
        return;
    }
    kern->qk_tile(nr, cols, d, hw->q + (size_t)i0 * d, d, kj, B, s, B);
    kern->softmax_rows(nr, cols, w->valid + i0, scale, s, B, hw->m + i0,
                       hw->l + i0, hw->alpha + i0);
    kern->pv_tile(nr, cols, d, s, B, vj, d, hw->alpha + i0,
                  hw->o + (size_t)i0 * d, d);
}

/* One task: query block I of heads h0 .. h0 + nh - 1, which share kv head
 * packs kt, vp (kbytes, vbytes per key block).  Key blocks go in ascending order, and within a block the
 * heads that selected it in ascending order, so that a block is read from
 * memory once for all of them; each head's own operations keep the order
 * they would have alone. */
static void attend_task_run(const stem_kernels *kern, const stem_dims *dims,
                            int B, const stem_tensor *q, const attend_task *t,
                            const uint8_t *mask, const void *kt,
                            size_t kbytes, const void *vp, size_t vbytes,
                            int bf16, tile_ws *w, stem_tensor *out,
                            float *lse)
{
    const int d = (int)dims->d, nh = t->nh;
    const int64_t Kb = dims->kb, I = t->I;
    const int rows = (int)(dims->lq - I * B < B ? dims->lq - I * B : B);
    const int64_t r0 = I * B + dims->offset; /* absolute position of row 0 */
    const float scale = (float)(1.0 / sqrt((double)d));
    const uint8_t *mrow[STEM_GROUP_HEADS];

    for (int e = 0; e < nh; e++) {
        head_ws *hw = &w->head[e];
        const int64_t h = t->h0 + e;
        mrow[e] = mask ? mask + ((size_t)h * dims->qb + I) * Kb : NULL;
        float *qrows = bf16 ? w->qf : hw->q;
        for (int i = 0; i < rows; i++) {
            stem_load_row_f32(q, h, I * B + i, qrows + (size_t)i * d);
            hw->m[i] = -INFINITY;
            hw->l[i] = 0.0f;
        }
        if (bf16)
            kern->bf16_rows(rows, d, w->qf, d, hw->q16, even_up(d));
        memset(hw->o, 0, (size_t)rows * d * sizeof(float));
    }

    const int64_t last = last_block(dims, B, I);
    for (int64_t J = 0; J <= last; J++) {
        int any = 0;
        for (int e = 0; e < nh; e++)
            any |= !mrow[e] || mrow[e][J];
        if (!any)
            continue;
        int cols = (int)(dims->lk - J * B < B ? dims->lk - J * B : B);
        int64_t first = J * B - r0; /* rows before this one see no key of J */
        int i0 = first > 0 ? (int)first : 0;
        if (i0 >= rows)
            continue;
        for (int i = i0; i < rows; i++) {
            int64_t n = r0 + i - J * B + 1;
            w->valid[i] = (int)(n < cols ? n : cols);
        }
        const char *kj = (const char *)kt + J * kbytes;
        const char *vj = (const char *)vp + J * vbytes;
        for (int e = 0; e < nh; e++)
            if (!mrow[e] || mrow[e][J])
                head_step(kern, B, d, bf16, i0, rows, cols, scale, kj, vj, w,
                          &w->head[e]);
    }
    for (int e = 0; e < nh; e++) {
        const head_ws *hw = &w->head[e];
        const int64_t h = t->h0 + e;
        for (int i = 0; i < rows; i++) {
            const float *oi = hw->o + (size_t)i * d;
            for (int c = 0; c < d; c++)
                stem_store_out(out, h, I * B + i, c, oi[c] / hw->l[i]);
            if (lse)
                lse[h * dims->lq + I * B + i] = hw->m[i] + stem_logf_ref(hw->l[i]);
        }
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
    /* heads per task, and tasks per query block of a kv head */
    const int G = !bf16 ? 1 : hpg < STEM_GROUP_HEADS ? (int)hpg : STEM_GROUP_HEADS;
    const int64_t subs = (hpg + G - 1) / G;
    const size_t blk = (size_t)B * d, per = ws_floats(B, d, bf16, G);
    /* elements of one block's K and V pack, and their size */
    const size_t kblk = bf16 ? (size_t)even_up(d) * B : blk;
    const size_t vblk = bf16 ? (size_t)even_up(B) * d : blk;
    const size_t esize = bf16 ? sizeof(uint16_t) : sizeof(float);

    /* Pack several kv heads at once: enough for STEM_TASKS_PER_THREAD
     * tasks per thread, so that short prompts with many heads still give
     * every thread work, but no more (a small pack stays in cache, and its
     * buffer is reused by the next heads), and at most STEM_PACK_BYTES (at
     * least one head). */
    const size_t head_bytes = (kblk + vblk) * (size_t)Kb * esize;
    int64_t chunk = (int64_t)(STEM_PACK_BYTES / head_bytes);
    int64_t want = (STEM_TASKS_PER_THREAD * (int64_t)nt + subs * Qb - 1) / (subs * Qb);
    if (want < chunk)
        chunk = want;
    if (chunk < 1)
        chunk = 1;
    if (chunk > dims->hkv)
        chunk = dims->hkv;
    char *kt = alloc_lines(kblk * (size_t)Kb * (size_t)chunk * esize);
    char *vp = alloc_lines(vblk * (size_t)Kb * (size_t)chunk * esize);
    float *ws = alloc_lines(per * (size_t)nt * sizeof(float));
    attend_task *tasks = malloc((size_t)(chunk * subs * Qb) * sizeof *tasks);
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
        /* Longest tasks first (by key block visits), so that the last
         * tasks the threads pick up are short. */
        const int64_t n = ng * subs * Qb;
        for (int64_t i = 0; i < n; i++) {
            const int64_t gs = i / Qb, I = i % Qb;
            const int64_t g = g0 + gs / subs, sub = gs % subs;
            attend_task *t = &tasks[i];
            t->h0 = g * hpg + sub * G;
            t->nh = (int)(hpg - sub * G < G ? hpg - sub * G : G);
            t->I = I;
            t->blocks = 0;
            for (int e = 0; e < t->nh; e++)
                t->blocks += task_blocks(dims, B, mask, t->h0 + e, I);
        }
        qsort(tasks, (size_t)n, sizeof *tasks, task_order);
        #pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
        for (int64_t i = 0; i < n; i++) {
            int tid = 0;
#ifdef _OPENMP
            tid = omp_get_thread_num();
#endif
            const int64_t gg = tasks[i].h0 / hpg - g0;
            tile_ws w = ws_at(ws + (size_t)tid * per, B, d, bf16, G);
            attend_task_run(kern, dims, B, q, &tasks[i], mask,
                            kt + gg * kt_head, kblk * esize,
                            vp + gg * vp_head, vblk * esize, bf16, &w, out,
                            lse);
        }
    }
    free(kt);
    free(vp);
    free(ws);
    free(tasks);
    return STEM_OK;
}
