/*
 * tile.c - the one tile driver of every ISA (BLIS's framework /
 * micro-kernel split): blocking, packing and edges are written here once;
 * each ISA supplies only its register micro-kernel (stem_ukernel in
 * src/kernels.h, in simd/<isa>/tile_<isa>.c).
 *
 * C (m x n) = init + A (m x k) * B (k x n): B is copied nr columns and kc
 * rows at a time into a contiguous, zero-padded, 64-byte aligned panel (no
 * cache-set conflicts of power-of-two strides; edge columns read zeros);
 * the micro-kernel runs over mr-row blocks of A against it.  A long k is cut
 * into chunks of kc: a chunk ends by storing the accumulators into C and the
 * next one reloads them (init 1, alpha only on the first chunk), which keeps
 * every rounding of the fmaf chain, so the result is the scalar twin's
 * bit for bit whatever mr, nr and kc are.
 *
 * The bf16 variant packs B from bf16 bit patterns, converting exactly to
 * float and swapping the rows of each pair (the order of the bf16 contract).
 */
#include <stddef.h>
#include <string.h>

#include "kernels.h"

/* Largest panel a micro-kernel may ask for (kc * nr floats). */
#define PANEL_FLOATS 8192

static float bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* panel[t*nr + j] = b[t*ldb + j] for j < nc, 0 for nc <= j < nr. */
static void pack_f32(int kc, int nc, int nr, const float *b, int ldb,
                     float *panel)
{
    for (int t = 0; t < kc; t++) {
        const float *bt = b + (size_t)t * ldb;
        float *pt = panel + (size_t)t * nr;
        int j = 0;
        for (; j < nc; j++)
            pt[j] = bt[j];
        for (; j < nr; j++)
            pt[j] = 0.0f;
    }
}

/* panel[t*nr + j] = f(b[(t ^ 1)*ldb + j]); t counts from an even row. */
static void pack_bf16(int kc, int nc, int nr, const uint16_t *b, int ldb,
                      float *panel)
{
    for (int t = 0; t < kc; t++) {
        const uint16_t *bt = b + (size_t)(t ^ 1) * ldb;
        float *pt = panel + (size_t)t * nr;
        int j = 0;
        for (; j < nc; j++)
            pt[j] = bf16_to_f32(bt[j]);
        for (; j < nr; j++)
            pt[j] = 0.0f;
    }
}

/* The driver; exactly one of bf (bf16 B) and b (float B) is non-NULL.
 * kc is rounded down to even so that bf16 pairs never straddle chunks. */
static void drive(const stem_ukernel *uk, int init, int m, int n, int k,
                  const float *a, int lda, const float *b,
                  const uint16_t *bf, int ldb, const float *alpha, float *c,
                  int ldc)
{
    float panel[PANEL_FLOATS] __attribute__((aligned(64)));
    const int nr = uk->nr, mr_max = uk->mr;
    int kc_max = uk->kc;
    if (kc_max * nr > PANEL_FLOATS)
        kc_max = PANEL_FLOATS / nr;
    kc_max &= ~1;
    for (int j0 = 0; j0 < n; j0 += nr) {
        int nc = n - j0 < nr ? n - j0 : nr;
        for (int k0 = 0; k0 < k; k0 += kc_max) {
            int kc = k - k0 < kc_max ? k - k0 : kc_max;
            if (bf)
                pack_bf16(kc, nc, nr, bf + (size_t)k0 * ldb + j0, ldb, panel);
            else
                pack_f32(kc, nc, nr, b + (size_t)k0 * ldb + j0, ldb, panel);
            int mode = (init == 0 && k0 == 0) ? 0 : 1;
            const float *al = k0 == 0 ? alpha : NULL;
            for (int i0 = 0; i0 < m; i0 += mr_max) {
                int mr = m - i0 < mr_max ? m - i0 : mr_max;
                uk->block(mode, mr, nc, kc, a + (size_t)i0 * lda + k0, lda,
                          panel, al ? al + i0 : NULL,
                          c + (size_t)i0 * ldc + j0, ldc);
            }
        }
    }
}

void stem_tile_f32(const stem_ukernel *uk, int init, int m, int n, int k,
                   const float *a, int lda, const float *b, int ldb,
                   const float *alpha, float *c, int ldc)
{
    drive(uk, init, m, n, k, a, lda, b, NULL, ldb, alpha, c, ldc);
}

void stem_tile_bf16(const stem_ukernel *uk, int m, int n, int k,
                    const float *a, int lda, const uint16_t *b, int ldb,
                    float *c, int ldc)
{
    drive(uk, 0, m, n, (k + 1) & ~1, a, lda, NULL, b, ldb, NULL, c, ldc);
}

void stem_pv_tile_bf16_with(const stem_ukernel *uk, int rows, int cols, int d,
                            const float *p, int ldp, const uint16_t *v,
                            int ldv, const float *alpha, float *o, int ldo,
                            float *work)
{
    stem_tile_bf16(uk, rows, d, cols, p, ldp, v, ldv, work, d);
    for (int i = 0; i < rows; i++) {
        float *oi = o + (size_t)i * ldo;
        const float *wi = work + (size_t)i * d;
        if (alpha) {
            const float a = alpha[i];
            for (int c = 0; c < d; c++)
                oi[c] = oi[c] * a + wi[c];
        } else {
            for (int c = 0; c < d; c++)
                oi[c] = oi[c] + wi[c];
        }
    }
}
