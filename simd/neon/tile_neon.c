/*
 * tile_neon.c - qk_tile and pv_tile on AArch64 Advanced SIMD: one
 * register-blocked micro-kernel C[i][j] = fmaf chain over k of
 * A[i][k] * B[k][j].
 *
 * A block of 8 rows x 8 columns of C lives in 16 float32x4 accumulators.
 * Four k steps at a time, the kernel loads A[i][k..k+3] as one vector and
 * uses lane-indexed fused multiply-adds against the packed rows of B, in
 * increasing k, so every output element sees exactly the scalar twin's chain
 *     acc = init; for k = 0..K-1: acc = fmaf(A[i][k], B[k][j], acc).
 * B is copied 8 columns at a time into a contiguous zero-padded panel; edge
 * columns of C go through a small local block.  A long K is cut into chunks
 * of KC whose accumulators go through C in memory, keeping every rounding.
 */
#include <arm_neon.h>
#include <stddef.h>
#include <string.h>

#include "kernels.h"
#include "kernels_neon.h"

#define MR 8
#define NR 8
#define KC 256

enum { INIT_ZERO = 0, INIT_LOAD = 1 };

/* panel[k*NR + j] = b[k*ldb + j] for j < nc, 0 for nc <= j < NR. */
static void pack_panel(int kc, int nc, const float *b, int ldb, float *panel)
{
    for (int k = 0; k < kc; k++) {
        const float *bk = b + (size_t)k * ldb;
        float *pk = panel + (size_t)k * NR;
        if (nc == NR) {
            vst1q_f32(pk, vld1q_f32(bk));
            vst1q_f32(pk + 4, vld1q_f32(bk + 4));
        } else {
            int j = 0;
            for (; j < nc; j++)
                pk[j] = bk[j];
            for (; j < NR; j++)
                pk[j] = 0.0f;
        }
    }
}

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
            if (init == INIT_ZERO) {
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
        for (int v = 0; v < nv; v++)
            vst1q_f32(c + (size_t)i * ldc + 4 * v, acc[i][v]);
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

#define BLOCK_ROW_TABLE(init, nv)                                             \
    { block_##init##_##nv##_1, block_##init##_##nv##_2,                       \
      block_##init##_##nv##_3, block_##init##_##nv##_4,                       \
      block_##init##_##nv##_5, block_##init##_##nv##_6,                       \
      block_##init##_##nv##_7, block_##init##_##nv##_8 }
static const block_fn blocks[2][2][MR] = {
    {BLOCK_ROW_TABLE(0, 1), BLOCK_ROW_TABLE(0, 2)},
    {BLOCK_ROW_TABLE(1, 1), BLOCK_ROW_TABLE(1, 2)},
};

/*
 * C (m x n) = init + A (m x k) * B (k x n) as fmaf chains over k.
 * init INIT_ZERO: chains start at 0; INIT_LOAD: at C, times alpha[i] first
 * when alpha is not NULL.
 */
static void tile(int init, int m, int n, int k, const float *a, int lda,
                 const float *b, int ldb, const float *alpha, float *c,
                 int ldc)
{
    float panel[KC * NR] __attribute__((aligned(16)));
    float edge[MR * NR] __attribute__((aligned(16)));
    for (int j0 = 0; j0 < n; j0 += NR) {
        int nc = n - j0 < NR ? n - j0 : NR;
        int nv = nc > 4 ? 2 : 1;
        for (int k0 = 0; k0 < k; k0 += KC) {
            int kc = k - k0 < KC ? k - k0 : KC;
            pack_panel(kc, nc, b + (size_t)k0 * ldb + j0, ldb, panel);
            int mode = (init == INIT_ZERO && k0 == 0) ? INIT_ZERO : INIT_LOAD;
            const float *al = k0 == 0 ? alpha : NULL;
            for (int i0 = 0; i0 < m; i0 += MR) {
                int mr = m - i0 < MR ? m - i0 : MR;
                float *ci = c + (size_t)i0 * ldc + j0;
                const float *ai = a + (size_t)i0 * lda + k0;
                const float *ali = al ? al + i0 : NULL;
                block_fn fn = blocks[mode][nv - 1][mr - 1];
                if (nc == 4 * nv) {
                    fn(kc, ai, lda, panel, ali, ci, ldc);
                    continue;
                }
                memset(edge, 0, sizeof edge);
                if (mode == INIT_LOAD)
                    for (int i = 0; i < mr; i++)
                        memcpy(edge + i * NR, ci + (size_t)i * ldc,
                               (size_t)nc * sizeof(float));
                fn(kc, ai, lda, panel, ali, edge, NR);
                for (int i = 0; i < mr; i++)
                    memcpy(ci + (size_t)i * ldc, edge + i * NR,
                           (size_t)nc * sizeof(float));
            }
        }
    }
}

/* qk_tile of src/kernels.h: s = q . kt per element as one fmaf chain over
 * c; no pointer may be NULL; nothing is allocated (the B panel is on the
 * stack). */
void stem_f32_qk_tile__neon_8x8(int rows, int cols, int d, const float *q,
                                int ldq, const float *kt, int ldk, float *s,
                                int lds)
{
    tile(INIT_ZERO, rows, cols, d, q, ldq, kt, ldk, NULL, s, lds);
}

/* pv_tile of src/kernels.h: o = o * alpha (alpha may be NULL: no rescale),
 * then one fmaf chain over j per element; other pointers non-NULL; nothing
 * is allocated. */
void stem_f32_pv_tile__neon_8x8(int rows, int cols, int d, const float *p,
                                int ldp, const float *v, int ldv,
                                const float *alpha, float *o, int ldo)
{
    tile(INIT_LOAD, rows, d, cols, p, ldp, v, ldv, alpha, o, ldo);
}
