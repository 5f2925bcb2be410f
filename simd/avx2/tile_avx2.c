/*
 * tile_avx2.c - the AVX2+FMA register micro-kernel of the tile driver
 * (simd/tile_driver.h): C[i][j] = fmaf chain over k of A[i][k] * panel[k][j].
 *
 * A block of 6 rows x 16 columns of C lives in 12 ymm accumulators; for each
 * k the kernel broadcasts A[i][k] and multiplies a 16-wide row of the panel.
 * Every output element therefore sees exactly the scalar twin's chain
 *     acc = init; for k = 0..K-1: acc = fmaf(A[i][k], B[k][j], acc)
 * and the bits match.  C edge columns use masked loads and stores.  The
 * driver does the blocking, packing (float or bf16 B) and chunking of K.
 */
#include <immintrin.h>
#include <stddef.h>

#include "kernels.h"
#include "kernels_avx2.h"
#include "tile_driver.h"

#define MR 6
#define NR 16
#define KC 256

enum { INIT_ZERO = 0, INIT_LOAD = 1, INIT_EPILOGUE = 2 };

/* Lanes 0..r-1 set (r may be <= 0 or >= 8). */
static inline __m256i lanes_below(int r)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(r),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/*
 * One mr x (8*nv) block, nc <= 8*nv valid columns.  mr, nv and init are
 * compile-time constants at every call (the block is always inlined into
 * the instances below), so the loops over i and v unroll into registers.
 */
static inline __attribute__((always_inline)) void
block(const int mr, const int nv, const int init, int kc, const float *a,
      int lda, const float *panel, const float *alpha, float *c, int ldc,
      int nc)
{
    __m256 acc[MR][2];
    const __m256i last = lanes_below(nc - 8 * (nv - 1));
    const int full = nc == 8 * nv;

#pragma GCC unroll 6
    for (int i = 0; i < mr; i++) {
#pragma GCC unroll 2
        for (int v = 0; v < nv; v++) {
            if (init != INIT_LOAD) {
                acc[i][v] = _mm256_setzero_ps();
            } else {
                const float *ci = c + (size_t)i * ldc + 8 * v;
                __m256 x = (v == nv - 1 && !full) ? _mm256_maskload_ps(ci, last)
                                                  : _mm256_loadu_ps(ci);
                if (alpha)
                    x = _mm256_mul_ps(x, _mm256_set1_ps(alpha[i]));
                acc[i][v] = x;
            }
        }
    }

    const float *ap[MR];
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++)
        ap[i] = a + (size_t)i * lda;

#pragma GCC unroll 2
    for (int k = 0; k < kc; k++) {
        const float *pk = panel + (size_t)k * NR;
        __m256 b0 = _mm256_load_ps(pk);
        __m256 b1 = nv == 2 ? _mm256_load_ps(pk + 8) : b0;
#pragma GCC unroll 6
        for (int i = 0; i < mr; i++) {
            __m256 ai = _mm256_broadcast_ss(ap[i] + k);
            acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
            if (nv == 2)
                acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
        }
    }

#pragma GCC unroll 6
    for (int i = 0; i < mr; i++) {
#pragma GCC unroll 2
        for (int v = 0; v < nv; v++) {
            float *ci = c + (size_t)i * ldc + 8 * v;
            const int part = v == nv - 1 && !full;
            __m256 r = acc[i][v];
            if (init == INIT_EPILOGUE) { /* C * alpha + chain, two roundings */
                __m256 x = part ? _mm256_maskload_ps(ci, last) : _mm256_loadu_ps(ci);
                if (alpha)
                    x = _mm256_mul_ps(x, _mm256_set1_ps(alpha[i]));
                r = _mm256_add_ps(x, r);
            }
            if (part)
                _mm256_maskstore_ps(ci, last, r);
            else
                _mm256_storeu_ps(ci, r);
        }
    }
}

typedef void (*block_fn)(int kc, const float *a, int lda, const float *panel,
                         const float *alpha, float *c, int ldc, int nc);

#define BLOCK_INSTANCE(init, nv, mr)                                          \
    static void block_##init##_##nv##_##mr(int kc, const float *a, int lda,  \
                                           const float *panel,               \
                                           const float *alpha, float *c,     \
                                           int ldc, int nc)                  \
    {                                                                         \
        block(mr, nv, init, kc, a, lda, panel, alpha, c, ldc, nc);           \
    }
#define BLOCK_ROWS(init, nv)                                                  \
    BLOCK_INSTANCE(init, nv, 1) BLOCK_INSTANCE(init, nv, 2)                   \
    BLOCK_INSTANCE(init, nv, 3) BLOCK_INSTANCE(init, nv, 4)                   \
    BLOCK_INSTANCE(init, nv, 5) BLOCK_INSTANCE(init, nv, 6)
BLOCK_ROWS(0, 1)
BLOCK_ROWS(0, 2)
BLOCK_ROWS(1, 1)
BLOCK_ROWS(1, 2)
BLOCK_ROWS(2, 1)
BLOCK_ROWS(2, 2)

#define BLOCK_ROW_TABLE(init, nv)                                             \
    { block_##init##_##nv##_1, block_##init##_##nv##_2,                       \
      block_##init##_##nv##_3, block_##init##_##nv##_4,                       \
      block_##init##_##nv##_5, block_##init##_##nv##_6 }
static const block_fn blocks[3][2][MR] = {
    {BLOCK_ROW_TABLE(0, 1), BLOCK_ROW_TABLE(0, 2)},
    {BLOCK_ROW_TABLE(1, 1), BLOCK_ROW_TABLE(1, 2)},
    {BLOCK_ROW_TABLE(2, 1), BLOCK_ROW_TABLE(2, 2)},
};

/* The micro-kernel of simd/kernels.h's stem_ukernel contract. */
static void ukernel_block(int init, int mr, int nc, int kc, const float *a,
                          int lda, const float *panel, const float *alpha,
                          float *c, int ldc)
{
    blocks[init][nc > 8 ? 1 : 0][mr - 1](kc, a, lda, panel, alpha, c, ldc, nc);
}

static const stem_ukernel ukernel = {MR, NR, KC, ukernel_block};

/* qk_tile of simd/kernels.h through the shared driver; no pointer may be
 * NULL; nothing is allocated (the driver's panel is on the stack). */
void stem_f32_qk_tile__avx2_6x16(int rows, int cols, int d, const float *q,
                                 int ldq, const float *kt, int ldk, float *s,
                                 int lds)
{
    tile_f32(&ukernel, 0, rows, cols, d, q, ldq, kt, ldk, NULL, s, lds);
}

/* pv_tile of simd/kernels.h: o = o * alpha (alpha may be NULL: no rescale),
 * then one fmaf chain over j per element; other pointers non-NULL. */
void stem_f32_pv_tile__avx2_6x16(int rows, int cols, int d, const float *p,
                                 int ldp, const float *v, int ldv,
                                 const float *alpha, float *o, int ldo)
{
    tile_f32(&ukernel, 1, rows, d, cols, p, ldp, v, ldv, alpha, o, ldo);
}

/* qk_tile_bf16 of simd/kernels.h (the fmaf emulation of the bf16 chain);
 * no pointer may be NULL; work holds rows * (d + 1) floats. */
void stem_bf16_qk_tile__avx2_6x16(int rows, int cols, int d, const uint16_t *q,
        int ldq, const uint16_t *kt, int ldk, float *s, int lds, float *work)
{
    tile_qk_bf16(&ukernel, rows, cols, d, q, ldq, kt, ldk, s, lds, work);
}

/* pv_tile_bf16 of simd/kernels.h; alpha may be NULL, work holds
 * rows * (cols + 1 + d) floats. */
void stem_bf16_pv_tile__avx2_6x16(int rows, int cols, int d, const uint16_t *p,
        int ldp, const uint16_t *v, int ldv, const float *alpha, float *o,
        int ldo, float *work)
{
    tile_pv_bf16(&ukernel, rows, cols, d, p, ldp, v, ldv, alpha, o, ldo,
                 work);
}
