/*
 * tile_avx512.c - the AVX-512 register micro-kernel of the tile driver
 * (simd/tile_driver.h): C[i][j] = fmaf chain over k of A[i][k] * panel[k][j].
 *
 * A block of 12 rows x 32 columns of C lives in 24 zmm accumulators; for
 * each k the kernel broadcasts A[i][k] and multiplies a 32-wide row of the
 * panel, so every output element sees exactly the scalar twin's chain
 *     acc = init; for k = 0..K-1: acc = fmaf(A[i][k], B[k][j], acc).
 * C edge columns use masked loads and stores.  The driver does the
 * blocking, packing (float or bf16 B) and chunking of K.
 */
#include <immintrin.h>
#include <stddef.h>

#include "kernels.h"
#include "kernels_avx512.h"
#include "tile_driver.h"

#define MR 12
#define NR 32
#define KC 128

enum { INIT_ZERO = 0, INIT_LOAD = 1, INIT_EPILOGUE = 2 };

/* Lanes 0..r-1 of 16 (r may be <= 0 or >= 16). */
static inline __mmask16 lanes_below(int r)
{
    if (r <= 0)
        return 0;
    if (r >= 16)
        return 0xffff;
    return (__mmask16)((1u << r) - 1u);
}

/*
 * One mr x (16*nv) block, nc <= 16*nv valid columns; mr, nv and init are
 * compile-time constants at every call (always inlined into the instances
 * below), so the loops over i and v unroll into registers.
 */
static inline __attribute__((always_inline)) void
block(const int mr, const int nv, const int init, int kc, const float *a,
      int lda, const float *panel, const float *alpha, float *c, int ldc,
      int nc)
{
    __m512 acc[MR][2];
    const __mmask16 mk[2] = {lanes_below(nc), lanes_below(nc - 16)};

#pragma GCC unroll 12
    for (int i = 0; i < mr; i++) {
#pragma GCC unroll 2
        for (int v = 0; v < nv; v++) {
            if (init != INIT_LOAD) {
                acc[i][v] = _mm512_setzero_ps();
            } else {
                __m512 x = _mm512_maskz_loadu_ps(mk[v], c + (size_t)i * ldc + 16 * v);
                if (alpha)
                    x = _mm512_mul_ps(x, _mm512_set1_ps(alpha[i]));
                acc[i][v] = x;
            }
        }
    }

    const float *ap[MR];
#pragma GCC unroll 12
    for (int i = 0; i < mr; i++)
        ap[i] = a + (size_t)i * lda;

    for (int k = 0; k < kc; k++) {
        const float *pk = panel + (size_t)k * NR;
        __m512 b0 = _mm512_load_ps(pk);
        __m512 b1 = nv == 2 ? _mm512_load_ps(pk + 16) : b0;
#pragma GCC unroll 12
        for (int i = 0; i < mr; i++) {
            __m512 ai = _mm512_set1_ps(ap[i][k]);
            acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
            if (nv == 2)
                acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
        }
    }

#pragma GCC unroll 12
    for (int i = 0; i < mr; i++) {
#pragma GCC unroll 2
        for (int v = 0; v < nv; v++) {
            float *ci = c + (size_t)i * ldc + 16 * v;
            __m512 r = acc[i][v];
            if (init == INIT_EPILOGUE) { /* C * alpha + chain, two roundings */
                __m512 x = _mm512_maskz_loadu_ps(mk[v], ci);
                if (alpha)
                    x = _mm512_mul_ps(x, _mm512_set1_ps(alpha[i]));
                r = _mm512_add_ps(x, r);
            }
            _mm512_mask_storeu_ps(ci, mk[v], r);
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
    BLOCK_INSTANCE(init, nv, 5) BLOCK_INSTANCE(init, nv, 6)                   \
    BLOCK_INSTANCE(init, nv, 7) BLOCK_INSTANCE(init, nv, 8)                   \
    BLOCK_INSTANCE(init, nv, 9) BLOCK_INSTANCE(init, nv, 10)                  \
    BLOCK_INSTANCE(init, nv, 11) BLOCK_INSTANCE(init, nv, 12)
BLOCK_ROWS(0, 1)
BLOCK_ROWS(0, 2)
BLOCK_ROWS(1, 1)
BLOCK_ROWS(1, 2)
BLOCK_ROWS(2, 1)
BLOCK_ROWS(2, 2)

#define BLOCK_ROW_TABLE(init, nv)                                             \
    { block_##init##_##nv##_1, block_##init##_##nv##_2,                       \
      block_##init##_##nv##_3, block_##init##_##nv##_4,                       \
      block_##init##_##nv##_5, block_##init##_##nv##_6,                       \
      block_##init##_##nv##_7, block_##init##_##nv##_8,                       \
      block_##init##_##nv##_9, block_##init##_##nv##_10,                      \
      block_##init##_##nv##_11, block_##init##_##nv##_12 }
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
    blocks[init][nc > 16 ? 1 : 0][mr - 1](kc, a, lda, panel, alpha, c, ldc, nc);
}

static const stem_ukernel ukernel = {MR, NR, KC, ukernel_block};

/* qk_tile of simd/kernels.h through the shared driver; no pointer may be
 * NULL; nothing is allocated (the driver's panel is on the stack). */
void stem_f32_qk_tile__avx512_12x32(int rows, int cols, int d, const float *q,
                                    int ldq, const float *kt, int ldk,
                                    float *s, int lds)
{
    tile_f32(&ukernel, 0, rows, cols, d, q, ldq, kt, ldk, NULL, s, lds);
}

/* pv_tile of simd/kernels.h: o = o * alpha (alpha may be NULL: no rescale),
 * then one fmaf chain over j per element; other pointers non-NULL. */
void stem_f32_pv_tile__avx512_12x32(int rows, int cols, int d, const float *p,
                                    int ldp, const float *v, int ldv,
                                    const float *alpha, float *o, int ldo)
{
    tile_f32(&ukernel, 1, rows, d, cols, p, ldp, v, ldv, alpha, o, ldo);
}

/* qk_tile_bf16 of simd/kernels.h (the fmaf emulation of the bf16 chain);
 * no pointer may be NULL; work holds rows * (d + 1) floats. */
void stem_bf16_qk_tile__avx512_12x32(int rows, int cols, int d, const uint16_t *q,
        int ldq, const uint16_t *kt, int ldk, float *s, int lds, float *work)
{
    tile_qk_bf16(&ukernel, rows, cols, d, q, ldq, kt, ldk, s, lds, work);
}

/* pv_tile_bf16 of simd/kernels.h; alpha may be NULL, work holds
 * rows * (cols + 1 + d) floats. */
void stem_bf16_pv_tile__avx512_12x32(int rows, int cols, int d, const uint16_t *p,
        int ldp, const uint16_t *v, int ldv, const float *alpha, float *o,
        int ldo, float *work)
{
    tile_pv_bf16(&ukernel, rows, cols, d, p, ldp, v, ldv, alpha, o, ldo,
                 work);
}
