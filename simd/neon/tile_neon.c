/*
 * tile_neon.c - the AArch64 Advanced SIMD register micro-kernel of the tile
 * driver (simd/tile_driver.h): C[i][j] = fmaf chain over k of A[i][k] *
 * panel[k][j].
 *
 * A block of 8 rows x 8 columns of C lives in 16 float32x4 accumulators.
 * Four k steps at a time, the kernel loads A[i][k..k+3] as one vector and
 * uses lane-indexed fused multiply-adds against the packed rows of B, in
 * increasing k, so every output element sees exactly the scalar twin's chain
 *     acc = init; for k = 0..K-1: acc = fmaf(A[i][k], B[k][j], acc).
 * Edge columns of C go through a small local block.  The driver does the
 * blocking, packing (float or bf16 B) and chunking of K.
 */
#include <arm_neon.h>
#include <stddef.h>
#include <string.h>

#include "kernels.h"
#include "kernels_neon.h"
#include "tile_driver.h"

#define MR 8
#define NR 8
#define KC 256

enum { INIT_ZERO = 0, INIT_LOAD = 1, INIT_EPILOGUE = 2 };

/*
 * One mr x (4*nv) block over full columns of c (edge columns are handled by
 * the caller); mr, nv and init are compile-time constants at every call.
 */
static inline __attribute__((always_inline)) void
block(const int mr, const int nv, const int init, int kc, const float *a,
      int lda, const float *panel, const float *alpha, float *c, int ldc)
{
    float32x4_t acc[MR][2];

#pragma GCC unroll 8
    for (int i = 0; i < mr; i++) {
#pragma GCC unroll 2
        for (int v = 0; v < nv; v++) {
            if (init != INIT_LOAD) {
                acc[i][v] = vdupq_n_f32(0.0f);
            } else {
                float32x4_t x = vld1q_f32(c + (size_t)i * ldc + 4 * v);
                if (alpha)
                    x = vmulq_n_f32(x, alpha[i]);
                acc[i][v] = x;
            }
        }
    }

    const float *ap[MR];
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++)
        ap[i] = a + (size_t)i * lda;

    int k = 0;
    for (; k + 4 <= kc; k += 4) {
        const float *pk = panel + (size_t)k * NR;
        float32x4_t av[MR];
#pragma GCC unroll 8
        for (int i = 0; i < mr; i++)
            av[i] = vld1q_f32(ap[i] + k);
#define STEP(kk)                                                              \
    do {                                                                      \
        float32x4_t b0 = vld1q_f32(pk + (kk) * NR);                           \
        float32x4_t b1 = nv == 2 ? vld1q_f32(pk + (kk) * NR + 4) : b0;        \
        _Pragma("GCC unroll 8") for (int i = 0; i < mr; i++)                  \
        {                                                                     \
            acc[i][0] = vfmaq_laneq_f32(acc[i][0], b0, av[i], (kk));          \
            if (nv == 2)                                                      \
                acc[i][1] = vfmaq_laneq_f32(acc[i][1], b1, av[i], (kk));      \
        }                                                                     \
    } while (0)
        STEP(0);
        STEP(1);
        STEP(2);
        STEP(3);
#undef STEP
    }
    for (; k < kc; k++) {
        const float *pk = panel + (size_t)k * NR;
        float32x4_t b0 = vld1q_f32(pk);
        float32x4_t b1 = nv == 2 ? vld1q_f32(pk + 4) : b0;
#pragma GCC unroll 8
        for (int i = 0; i < mr; i++) {
            float32x4_t ai = vld1q_dup_f32(ap[i] + k);
            acc[i][0] = vfmaq_f32(acc[i][0], b0, ai);
            if (nv == 2)
                acc[i][1] = vfmaq_f32(acc[i][1], b1, ai);
        }
    }

#pragma GCC unroll 8
    for (int i = 0; i < mr; i++) {
#pragma GCC unroll 2
        for (int v = 0; v < nv; v++) {
            float *ci = c + (size_t)i * ldc + 4 * v;
            float32x4_t r = acc[i][v];
            if (init == INIT_EPILOGUE) { /* C * alpha + chain, two roundings */
                float32x4_t x = vld1q_f32(ci);
                if (alpha)
                    x = vmulq_n_f32(x, alpha[i]);
                r = vaddq_f32(x, r);
            }
            vst1q_f32(ci, r);
        }
    }
}

typedef void (*block_fn)(int kc, const float *a, int lda, const float *panel,
                         const float *alpha, float *c, int ldc);

#define BLOCK_INSTANCE(init, nv, mr)                                          \
    static void block_##init##_##nv##_##mr(int kc, const float *a, int lda,  \
                                           const float *panel,               \
                                           const float *alpha, float *c,     \
                                           int ldc)                          \
    {                                                                         \
        block(mr, nv, init, kc, a, lda, panel, alpha, c, ldc);               \
    }
#define BLOCK_ROWS(init, nv)                                                  \
    BLOCK_INSTANCE(init, nv, 1) BLOCK_INSTANCE(init, nv, 2)                   \
    BLOCK_INSTANCE(init, nv, 3) BLOCK_INSTANCE(init, nv, 4)                   \
    BLOCK_INSTANCE(init, nv, 5) BLOCK_INSTANCE(init, nv, 6)                   \
    BLOCK_INSTANCE(init, nv, 7) BLOCK_INSTANCE(init, nv, 8)
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
      block_##init##_##nv##_7, block_##init##_##nv##_8 }
static const block_fn blocks[3][2][MR] = {
    {BLOCK_ROW_TABLE(0, 1), BLOCK_ROW_TABLE(0, 2)},
    {BLOCK_ROW_TABLE(1, 1), BLOCK_ROW_TABLE(1, 2)},
    {BLOCK_ROW_TABLE(2, 1), BLOCK_ROW_TABLE(2, 2)},
};

/* The micro-kernel of simd/kernels.h's stem_ukernel contract: full blocks
 * straight into C, edge columns through a local block. */
static void ukernel_block(int init, int mr, int nc, int kc, const float *a,
                          int lda, const float *panel, const float *alpha,
                          float *c, int ldc)
{
    float edge[MR * NR] __attribute__((aligned(16)));
    int nv = nc > 4 ? 2 : 1;
    block_fn fn = blocks[init][nv - 1][mr - 1];
    if (nc == 4 * nv) {
        fn(kc, a, lda, panel, alpha, c, ldc);
        return;
    }
    memset(edge, 0, sizeof edge);
    if (init != INIT_ZERO) /* the block reads C */
        for (int i = 0; i < mr; i++)
            memcpy(edge + i * NR, c + (size_t)i * ldc, (size_t)nc * sizeof(float));
    fn(kc, a, lda, panel, alpha, edge, NR);
    for (int i = 0; i < mr; i++)
        memcpy(c + (size_t)i * ldc, edge + i * NR, (size_t)nc * sizeof(float));
}

static const stem_ukernel ukernel = {MR, NR, KC, ukernel_block};

/* qk_tile of simd/kernels.h through the shared driver; no pointer may be
 * NULL; nothing is allocated (the driver's panel is on the stack). */
void stem_f32_qk_tile__neon_8x8(int rows, int cols, int d, const float *q,
                                int ldq, const float *kt, int ldk, float *s,
                                int lds)
{
    tile_f32(&ukernel, 0, rows, cols, d, q, ldq, kt, ldk, NULL, s, lds);
}

/* pv_tile of simd/kernels.h: o = o * alpha (alpha may be NULL: no rescale),
 * then one fmaf chain over j per element; other pointers non-NULL. */
void stem_f32_pv_tile__neon_8x8(int rows, int cols, int d, const float *p,
                                int ldp, const float *v, int ldv,
                                const float *alpha, float *o, int ldo)
{
    tile_f32(&ukernel, 1, rows, d, cols, p, ldp, v, ldv, alpha, o, ldo);
}

/* qk_tile_bf16 of simd/kernels.h (the fmaf emulation of the bf16 chain);
 * no pointer may be NULL; work holds rows * (d + 1) floats. */
void stem_bf16_qk_tile__neon_8x8(int rows, int cols, int d, const uint16_t *q,
        int ldq, const uint16_t *kt, int ldk, float *s, int lds, float *work)
{
    tile_qk_bf16(&ukernel, rows, cols, d, q, ldq, kt, ldk, s, lds, work);
}

/* pv_tile_bf16 of simd/kernels.h; alpha may be NULL, work holds
 * rows * (cols + 1 + d) floats. */
void stem_bf16_pv_tile__neon_8x8(int rows, int cols, int d, const uint16_t *p,
        int ldp, const uint16_t *v, int ldv, const float *alpha, float *o,
        int ldo, float *work)
{
    tile_pv_bf16(&ukernel, rows, cols, d, p, ldp, v, ldv, alpha, o, ldo,
                 work);
}
