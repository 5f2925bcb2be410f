/*
 * tile_driver.h - the one tile driver of every ISA (BLIS's framework /
 * micro-kernel split): blocking, packing and edges are written here once;
 * each ISA supplies only its register micro-kernel (stem_ukernel in
 * simd/kernels.h) and includes this file, so that the driver is compiled
 * with that ISA's flags (vector packing) and calls the micro-kernel
 * directly.  simd/<isa>/tile_<isa>.c holds nothing else.
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
 * The bf16 variant widens its operands exactly to float32 in the order of
 * the bf16 contract of simd/kernels.h (the odd element of each pair first):
 * A (rows layout) once per call into the caller's scratch, B (pairs
 * layout) panel by panel; pv_tile_bf16 ends in the micro-kernel's epilogue
 * (init 2: C = C * alpha + chain) when k fits one chunk.
 *
 * Include after kernels.h; every function is static.
 */
#ifndef STEM_TILE_DRIVER_H
#define STEM_TILE_DRIVER_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kernels.h"

/* Largest panel a micro-kernel may ask for (kc * nr floats). */
#define STEM_PANEL_FLOATS 8192

/* The bits of a float, allowed to alias it (the panel holds floats). */
typedef uint32_t __attribute__((may_alias)) stem_f32_bits;

/* panel[t*nr + j] = b[t*ldb + j] for j < nc, 0 for nc <= j < nr.  nr is a
 * compile-time constant where the driver is inlined, so full rows are a
 * fixed-size copy (vector moves, not a string copy). */
static inline __attribute__((always_inline)) void
tile_pack_f32(int kc, int nc, int nr, const float *b, int ldb, float *panel)
{
    if (nc == nr) {
        for (int t = 0; t < kc; t++)
            memcpy(panel + (size_t)t * nr, b + (size_t)t * ldb,
                   (size_t)nr * sizeof(float));
        return;
    }
    for (int t = 0; t < kc; t++) {
        const float *bt = b + (size_t)t * ldb;
        float *pt = panel + (size_t)t * nr;
        for (int j = 0; j < nr; j++)
            pt[j] = j < nc ? bt[j] : 0.0f;
    }
}

/* A pair of bf16 (a 32-bit word of a pairs-layout operand: row 2u low,
 * row 2u+1 high), read from a 2-byte aligned address. */
typedef uint32_t __attribute__((may_alias, aligned(2))) stem_bf16_pair;

/* From a pairs-layout B (pair row u at b + u*ldb, kc even): panel rows 2u
 * and 2u+1 = f(B[2u+1][j]) and f(B[2u][j]) (the float with bits h << 16),
 * 0 past nc. */
static inline __attribute__((always_inline)) void
tile_pack_bf16(int kc, int nc, int nr, const uint16_t *b, int ldb,
               float *panel)
{
    for (int u = 0; u < kc / 2; u++) {
        const stem_bf16_pair *bu = (const stem_bf16_pair *)(b + (size_t)u * ldb);
        stem_f32_bits *odd = (stem_f32_bits *)(panel + (size_t)(2 * u) * nr);
        stem_f32_bits *even = odd + nr;
        if (nc == nr) {
#pragma omp simd
            for (int j = 0; j < nr; j++) {
                uint32_t w = bu[j];
                odd[j] = w & 0xffff0000u;
                even[j] = w << 16;
            }
        } else {
            for (int j = 0; j < nr; j++) {
                uint32_t w = j < nc ? bu[j] : 0u;
                odd[j] = w & 0xffff0000u;
                even[j] = w << 16;
            }
        }
    }
}

/* A rows layout operand widened for the micro-kernel: aw[i*k2 + t] =
 * f(a[i*lda + (t ^ 1)]), i < m, t < k2 (k2 even). */
static inline __attribute__((always_inline)) void
tile_widen_bf16(int m, int k2, const uint16_t *a, int lda, float *aw)
{
    for (int i = 0; i < m; i++) {
        const stem_bf16_pair *ai = (const stem_bf16_pair *)(a + (size_t)i * lda);
        stem_f32_bits *wi = (stem_f32_bits *)(aw + (size_t)i * k2);
#pragma omp simd
        for (int u = 0; u < k2 / 2; u++) {
            uint32_t w = ai[u];
            wi[2 * u] = w & 0xffff0000u;
            wi[2 * u + 1] = w << 16;
        }
    }
}

/* The driver; exactly one of bf (bf16 B) and b (float B) is non-NULL.
 * init 0, 1 or 2 as stem_ukernel says (2 only when k fits one chunk).  kc
 * is rounded down to even so that bf16 pairs never straddle chunks. */
static inline __attribute__((always_inline)) void
tile_drive(const stem_ukernel *uk, int init, int m, int n, int k,
           const float *a, int lda, const float *b, const uint16_t *bf,
           int ldb, const float *alpha, float *c, int ldc)
{
    float panel[STEM_PANEL_FLOATS] __attribute__((aligned(64)));
    const int nr = uk->nr, mr_max = uk->mr;
    int kc_max = uk->kc;
    if (kc_max * nr > STEM_PANEL_FLOATS)
        kc_max = STEM_PANEL_FLOATS / nr;
    kc_max &= ~1;
    for (int j0 = 0; j0 < n; j0 += nr) {
        int nc = n - j0 < nr ? n - j0 : nr;
        for (int k0 = 0; k0 < k; k0 += kc_max) {
            int kc = k - k0 < kc_max ? k - k0 : kc_max;
            if (bf)
                tile_pack_bf16(kc, nc, nr, bf + (size_t)(k0 / 2) * ldb + 2 * j0,
                               ldb, panel);
            else
                tile_pack_f32(kc, nc, nr, b + (size_t)k0 * ldb + j0, ldb, panel);
            int mode = k0 == 0 ? init : 1;
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

/* qk_tile (init 0) and pv_tile (init 1) of simd/kernels.h: C = init + A B,
 * B float32 with leading dimension ldb. */
static inline __attribute__((always_inline)) void
tile_f32(const stem_ukernel *uk, int init, int m, int n, int k,
         const float *a, int lda, const float *b, int ldb, const float *alpha,
         float *c, int ldc)
{
    tile_drive(uk, init, m, n, k, a, lda, b, NULL, ldb, alpha, c, ldc);
}

/* qk_tile_bf16 of simd/kernels.h: s = 0 + q kt, q widened into work
 * (rows * d2 floats). */
static inline __attribute__((always_inline)) void
tile_qk_bf16(const stem_ukernel *uk, int rows, int cols, int d,
             const uint16_t *q, int ldq, const uint16_t *kt, int ldk,
             float *s, int lds, float *work)
{
    const int d2 = (d + 1) & ~1;
    tile_widen_bf16(rows, d2, q, ldq, work);
    tile_drive(uk, 0, rows, cols, d2, work, d2, NULL, kt, ldk, NULL, s, lds);
}

/* pv_tile_bf16 of simd/kernels.h: p widened into work (rows * c2 floats),
 * the chain from 0, then o = o * alpha + chain (o + chain without alpha):
 * in the micro-kernel's epilogue when the chain fits one chunk, else
 * through the rest of work (rows * d floats). */
static inline __attribute__((always_inline)) void
tile_pv_bf16(const stem_ukernel *uk, int rows, int cols, int d,
             const uint16_t *pb, int ldp, const uint16_t *v, int ldv,
             const float *alpha, float *o, int ldo, float *work)
{
    const int c2 = (cols + 1) & ~1;
    float *p = work;
    tile_widen_bf16(rows, c2, pb, ldp, p);
    ldp = c2;
    work += (size_t)rows * c2;
    int kc_max = uk->kc * uk->nr > STEM_PANEL_FLOATS ? STEM_PANEL_FLOATS / uk->nr
                                                     : uk->kc;
    if (c2 <= (kc_max & ~1)) {
        tile_drive(uk, 2, rows, d, c2, p, ldp, NULL, v, ldv, alpha, o, ldo);
        return;
    }
    tile_drive(uk, 0, rows, d, c2, p, ldp, NULL, v, ldv, NULL, work, d);
    for (int i = 0; i < rows; i++) {
        float *oi = o + (size_t)i * ldo;
        const float *wi = work + (size_t)i * d;
        const float a = alpha ? alpha[i] : 1.0f;
        if (alpha) {
#pragma omp simd
            for (int c = 0; c < d; c++)
                oi[c] = oi[c] * a + wi[c];
        } else {
#pragma omp simd
            for (int c = 0; c < d; c++)
                oi[c] = oi[c] + wi[c];
        }
    }
}

#endif /* STEM_TILE_DRIVER_H */
