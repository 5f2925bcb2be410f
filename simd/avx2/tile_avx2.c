/*
 * tile_avx2.c - qk_tile and pv_tile on AVX2+FMA: one register-blocked
 * micro-kernel C[i][j] = fmaf chain over k of A[i][k] * B[k][j].
 *
 * A block of 6 rows x 16 columns of C lives in 12 ymm accumulators; for each
 * k the kernel broadcasts A[i][k] and multiplies a 16-wide row of B.  Every
 * output element therefore sees exactly the scalar twin's chain
 *     acc = init; for k = 0..K-1: acc = fmaf(A[i][k], B[k][j], acc)
 * and the bits match.  B is copied 16 columns at a time into a contiguous,
 * zero-padded panel (kills cache-set conflicts of power-of-two strides and
 * lets edge columns use full loads); C edge columns use masked loads and
 * stores.  A long K is cut into chunks of KC; a chunk ends by storing the
 * accumulators and the next reloads them, which keeps every rounding.
 */
#include <immintrin.h>
#include <stddef.h>

#include "kernels.h"
#include "kernels_avx2.h"

#define MR 6
#define NR 16
#define KC 256

enum { INIT_ZERO = 0, INIT_LOAD = 1 };

/* Lanes 0..r-1 set (r may be <= 0 or >= 8). */
static inline __m256i lanes_below(int r)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(r),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* panel[k*NR + j] = b[k*ldb + j] for j < nc, 0 for nc <= j < NR. */
static void pack_panel(int kc, int nc, const float *b, int ldb, float *panel)
{
    if (nc == NR) {
        for (int k = 0; k < kc; k++) {
            const float *bk = b + (size_t)k * ldb;
            _mm256_store_ps(panel + k * NR, _mm256_loadu_ps(bk));
            _mm256_store_ps(panel + k * NR + 8, _mm256_loadu_ps(bk + 8));
        }
        return;
    }
    __m256i m0 = lanes_below(nc), m1 = lanes_below(nc - 8);
    for (int k = 0; k < kc; k++) {
        const float *bk = b + (size_t)k * ldb;
        _mm256_store_ps(panel + k * NR, _mm256_maskload_ps(bk, m0));
        _mm256_store_ps(panel + k * NR + 8, _mm256_maskload_ps(bk + 8, m1));
    }
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
            if (init == INIT_ZERO) {
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
            if (v == nv - 1 && !full)
                _mm256_maskstore_ps(ci, last, acc[i][v]);
            else
                _mm256_storeu_ps(ci, acc[i][v]);
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

#define BLOCK_ROW_TABLE(init, nv)                                             \
    { block_##init##_##nv##_1, block_##init##_##nv##_2,                       \
      block_##init##_##nv##_3, block_##init##_##nv##_4,                       \
      block_##init##_##nv##_5, block_##init##_##nv##_6 }
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
    float panel[KC * NR] __attribute__((aligned(32)));
    for (int j0 = 0; j0 < n; j0 += NR) {
        int nc = n - j0 < NR ? n - j0 : NR;
        int nv = nc > 8 ? 2 : 1;
        for (int k0 = 0; k0 < k; k0 += KC) {
            int kc = k - k0 < KC ? k - k0 : KC;
            pack_panel(kc, nc, b + (size_t)k0 * ldb + j0, ldb, panel);
            int mode = (init == INIT_ZERO && k0 == 0) ? INIT_ZERO : INIT_LOAD;
            const float *al = k0 == 0 ? alpha : NULL;
            for (int i0 = 0; i0 < m; i0 += MR) {
                int mr = m - i0 < MR ? m - i0 : MR;
                blocks[mode][nv - 1][mr - 1](
                    kc, a + (size_t)i0 * lda + k0, lda, panel,
                    al ? al + i0 : NULL, c + (size_t)i0 * ldc + j0, ldc, nc);
            }
        }
    }
}

/* qk_tile of src/kernels.h: s = q . kt per element as one fmaf chain over
 * c; no pointer may be NULL; nothing is allocated (the B panel is on the
 * stack). */
void stem_f32_qk_tile__avx2_6x16(int rows, int cols, int d, const float *q,
                                 int ldq, const float *kt, int ldk, float *s,
                                 int lds)
{
    tile(INIT_ZERO, rows, cols, d, q, ldq, kt, ldk, NULL, s, lds);
}

/* pv_tile of src/kernels.h: o = o * alpha (alpha may be NULL: no rescale),
 * then one fmaf chain over j per element; other pointers non-NULL; nothing
 * is allocated. */
void stem_f32_pv_tile__avx2_6x16(int rows, int cols, int d, const float *p,
                                 int ldp, const float *v, int ldv,
                                 const float *alpha, float *o, int ldo)
{
    tile(INIT_LOAD, rows, d, cols, p, ldp, v, ldv, alpha, o, ldo);
}
