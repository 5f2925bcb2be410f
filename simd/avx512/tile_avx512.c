/*
 * tile_avx512.c - qk_tile and pv_tile on AVX-512: one register-blocked
 * micro-kernel C[i][j] = fmaf chain over k of A[i][k] * B[k][j].
 *
 * A block of 12 rows x 32 columns of C lives in 24 zmm accumulators; for
 * each k the kernel broadcasts A[i][k] and multiplies a 32-wide row of B, so
 * every output element sees exactly the scalar twin's chain
 *     acc = init; for k = 0..K-1: acc = fmaf(A[i][k], B[k][j], acc).
 * B is copied 32 columns at a time into a contiguous zero-padded panel; C
 * edge columns use masked loads and stores.  A long K is cut into chunks of
 * KC whose accumulators go through C in memory, which keeps every rounding.
 */
#include <immintrin.h>
#include <stddef.h>

#include "kernels.h"
#include "kernels_avx512.h"

#define MR 12
#define NR 32
#define KC 128

enum { INIT_ZERO = 0, INIT_LOAD = 1 };

/* Lanes 0..r-1 of 16 (r may be <= 0 or >= 16). */
static inline __mmask16 lanes_below(int r)
{
    if (r <= 0)
        return 0;
    if (r >= 16)
        return 0xffff;
    return (__mmask16)((1u << r) - 1u);
}

/* panel[k*NR + j] = b[k*ldb + j] for j < nc, 0 for nc <= j < NR. */
static void pack_panel(int kc, int nc, const float *b, int ldb, float *panel)
{
    __mmask16 m0 = lanes_below(nc), m1 = lanes_below(nc - 16);
    for (int k = 0; k < kc; k++) {
        const float *bk = b + (size_t)k * ldb;
        _mm512_store_ps(panel + k * NR, _mm512_maskz_loadu_ps(m0, bk));
        _mm512_store_ps(panel + k * NR + 16, _mm512_maskz_loadu_ps(m1, bk + 16));
    }
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
            if (init == INIT_ZERO) {
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
        for (int v = 0; v < nv; v++)
            _mm512_mask_storeu_ps(c + (size_t)i * ldc + 16 * v, mk[v], acc[i][v]);
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

#define BLOCK_ROW_TABLE(init, nv)                                             \
    { block_##init##_##nv##_1, block_##init##_##nv##_2,                       \
      block_##init##_##nv##_3, block_##init##_##nv##_4,                       \
      block_##init##_##nv##_5, block_##init##_##nv##_6,                       \
      block_##init##_##nv##_7, block_##init##_##nv##_8,                       \
      block_##init##_##nv##_9, block_##init##_##nv##_10,                      \
      block_##init##_##nv##_11, block_##init##_##nv##_12 }
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
    float panel[KC * NR] __attribute__((aligned(64)));
    for (int j0 = 0; j0 < n; j0 += NR) {
        int nc = n - j0 < NR ? n - j0 : NR;
        int nv = nc > 16 ? 2 : 1;
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
void stem_f32_qk_tile__avx512_12x32(int rows, int cols, int d, const float *q,
                                    int ldq, const float *kt, int ldk,
                                    float *s, int lds)
{
    tile(INIT_ZERO, rows, cols, d, q, ldq, kt, ldk, NULL, s, lds);
}

/* pv_tile of src/kernels.h: o = o * alpha (alpha may be NULL: no rescale),
 * then one fmaf chain over j per element; other pointers non-NULL; nothing
 * is allocated. */
void stem_f32_pv_tile__avx512_12x32(int rows, int cols, int d, const float *p,
                                    int ldp, const float *v, int ldv,
                                    const float *alpha, float *o, int ldo)
{
    tile(INIT_LOAD, rows, d, cols, p, ldp, v, ldv, alpha, o, ldo);
}
