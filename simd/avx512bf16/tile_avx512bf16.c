/*
 * tile_avx512bf16.c - the bf16 mode's two products (qk_tile_bf16,
 * pv_tile_bf16 of simd/kernels.h) on AVX512-BF16's VDPBF16PS, bit for bit
 * the scalar twins' fmaf chains.
 *
 * Both products are C (m x n) = A (rows layout) times B (pairs layout) over
 * k2 = k rounded up to even, and both layouts are the instruction's own: a
 * 32-bit word of A row i holds elements 2u (low half) and 2u+1 (high half),
 * and the word of B's pair row u at column j holds (2u, j) and (2u+1, j).
 * So nothing is widened or packed: for each pair u the kernel broadcasts
 * A's word of each row and runs VDPBF16PS against 16 columns' words of B,
 * which is, per lane,
 *     acc = acc + a[2u+1] * b[2u+1][j]      (rounded to float32)
 *     acc = acc + a[2u]   * b[2u][j]        (rounded to float32)
 * with denormal inputs read as zero and denormal results flushed to zero.
 *
 * Why that is the contract's chain, bit for bit:
 *  - a product of two bf16 values is exact in float32: 8 significant bits
 *    times 8 give at most 16 (float32 keeps 24), and the operands the
 *    library makes (stem_bf16_round of finite inputs below the validated
 *    bound) are zero or of magnitude in [2^-56, 2^50], so the product is
 *    in [2^-112, 2^100], inside float32's normal range.  An addition of an
 *    exact product, rounded once, is fmaf(a, b, acc), whatever the order in
 *    which the hardware forms the product.
 *  - the two additions are separate roundings, the odd pair element first:
 *    the order of the contract's chain (simd/kernels.h); the instruction's
 *    definition says so and tests/test_amx.c measured it lane by lane (a
 *    fused three-term rounding, or the even element first, would differ on
 *    the cancellations that tests/test_kernels.c's mixed magnitudes make).
 *  - the flushing never acts: every operand's last significant bit is at
 *    2^-63 or above, so every product, and every partial sum of a chain
 *    that starts at 0.0f, is a multiple of 2^-126 (rounding keeps that: at
 *    magnitudes below 2^-103 such a sum is exact, above it the float
 *    spacing is itself a multiple of 2^-126); a nonzero multiple of 2^-126
 *    is a normal float.  pv_tile_bf16's o * alpha + acc then runs as
 *    ordinary float32 vector operations, as in the twin.
 *  - zero signs follow IEEE's round-to-nearest rules in both (x + -x = +0).
 *
 * Edge columns are masked loads (zeros, which add exact zeros) and masked
 * stores; A's words are read unaligned.  The register block is 12 rows x
 * 32 columns (24 accumulators, 2 B vectors, A broadcast from memory).
 */
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kernels.h"
#include "kernels_avx512bf16.h"

#define MR 12
#define NR 32

enum { EPI_STORE = 0, EPI_ADD = 1 };

/* Lanes 0..r-1 of 16 (r may be <= 0 or >= 16). */
static inline __mmask16 lanes_below(int r)
{
    if (r <= 0)
        return 0;
    if (r >= 16)
        return 0xffff;
    return (__mmask16)((1u << r) - 1u);
}

/* The 32-bit word of a rows- or pairs-layout operand at x (2-byte
 * aligned). */
static inline uint32_t word_at(const uint16_t *x)
{
    uint32_t w;
    memcpy(&w, x, sizeof w);
    return w;
}

/*
 * One mr x (16*nv) block of C, nc <= 16*nv valid columns, over kp = k2/2
 * pairs: a at row 0 of the block (rows layout, lda), b at the block's first
 * column of pair row 0 (pairs layout, ldb).  epi EPI_STORE: C = chain;
 * EPI_ADD: C = C * alpha[i] + chain (two roundings), C + chain when alpha
 * is NULL.  mr, nv and epi are compile-time constants at every call.
 */
static inline __attribute__((always_inline)) void
block(const int mr, const int nv, const int epi, int kp, const uint16_t *a,
      int lda, const uint16_t *b, int ldb, const float *alpha, float *c,
      int ldc, int nc)
{
    __m512 acc[MR][2];
    const __mmask16 mk[2] = {lanes_below(nc), lanes_below(nc - 16)};
    const int full = nc == 16 * nv;

#pragma GCC unroll 12
    for (int i = 0; i < mr; i++) {
        acc[i][0] = _mm512_setzero_ps();
        acc[i][1] = _mm512_setzero_ps();
    }

    for (int u = 0; u < kp; u++) {
        const uint16_t *bu = b + (size_t)u * ldb;
        __m512i b0, b1;
        if (full) {
            b0 = _mm512_loadu_si512(bu);
            b1 = nv == 2 ? _mm512_loadu_si512(bu + 32) : b0;
        } else {
            b0 = _mm512_maskz_loadu_epi32(mk[0], bu);
            b1 = nv == 2 ? _mm512_maskz_loadu_epi32(mk[1], bu + 32) : b0;
        }
#pragma GCC unroll 12
        for (int i = 0; i < mr; i++) {
            const __m512bh ai = (__m512bh)_mm512_set1_epi32(
                (int)word_at(a + (size_t)i * lda + 2 * u));
            acc[i][0] = _mm512_dpbf16_ps(acc[i][0], ai, (__m512bh)b0);
            if (nv == 2)
                acc[i][1] = _mm512_dpbf16_ps(acc[i][1], ai, (__m512bh)b1);
        }
    }

#pragma GCC unroll 12
    for (int i = 0; i < mr; i++) {
#pragma GCC unroll 2
        for (int v = 0; v < nv; v++) {
            float *ci = c + (size_t)i * ldc + 16 * v;
            __m512 r = acc[i][v];
            if (epi == EPI_ADD) {
                __m512 x = _mm512_maskz_loadu_ps(mk[v], ci);
                if (alpha)
                    x = _mm512_mul_ps(x, _mm512_set1_ps(alpha[i]));
                r = _mm512_add_ps(x, r);
            }
            _mm512_mask_storeu_ps(ci, mk[v], r);
        }
    }
}

typedef void (*block_fn)(int kp, const uint16_t *a, int lda,
                         const uint16_t *b, int ldb, const float *alpha,
                         float *c, int ldc, int nc);

#define BLOCK_INSTANCE(epi, nv, mr)                                           \
    static void block_##epi##_##nv##_##mr(int kp, const uint16_t *a, int lda,\
                                          const uint16_t *b, int ldb,        \
                                          const float *alpha, float *c,      \
                                          int ldc, int nc)                   \
    {                                                                         \
        block(mr, nv, epi, kp, a, lda, b, ldb, alpha, c, ldc, nc);           \
    }
#define BLOCK_ROWS(epi, nv)                                                   \
    BLOCK_INSTANCE(epi, nv, 1) BLOCK_INSTANCE(epi, nv, 2)                     \
    BLOCK_INSTANCE(epi, nv, 3) BLOCK_INSTANCE(epi, nv, 4)                     \
    BLOCK_INSTANCE(epi, nv, 5) BLOCK_INSTANCE(epi, nv, 6)                     \
    BLOCK_INSTANCE(epi, nv, 7) BLOCK_INSTANCE(epi, nv, 8)                     \
    BLOCK_INSTANCE(epi, nv, 9) BLOCK_INSTANCE(epi, nv, 10)                    \
    BLOCK_INSTANCE(epi, nv, 11) BLOCK_INSTANCE(epi, nv, 12)
BLOCK_ROWS(0, 1)
BLOCK_ROWS(0, 2)
BLOCK_ROWS(1, 1)
BLOCK_ROWS(1, 2)

#define BLOCK_ROW_TABLE(epi, nv)                                              \
    { block_##epi##_##nv##_1, block_##epi##_##nv##_2,                         \
      block_##epi##_##nv##_3, block_##epi##_##nv##_4,                         \
      block_##epi##_##nv##_5, block_##epi##_##nv##_6,                         \
      block_##epi##_##nv##_7, block_##epi##_##nv##_8,                         \
      block_##epi##_##nv##_9, block_##epi##_##nv##_10,                        \
      block_##epi##_##nv##_11, block_##epi##_##nv##_12 }
static const block_fn blocks[2][2][MR] = {
    {BLOCK_ROW_TABLE(0, 1), BLOCK_ROW_TABLE(0, 2)},
    {BLOCK_ROW_TABLE(1, 1), BLOCK_ROW_TABLE(1, 2)},
};

/* C (m x n) = chain over k2/2 pairs of A (rows layout) and B (pairs
 * layout), stored (EPI_STORE) or added to C (EPI_ADD, alpha may be NULL):
 * 32-column stripes of B, each against every 12-row block of A while the
 * stripe is in L1. */
static void product(int epi, int m, int n, int k, const uint16_t *a, int lda,
                    const uint16_t *b, int ldb, const float *alpha, float *c,
                    int ldc)
{
    const int kp = (k + 1) / 2;
    for (int j0 = 0; j0 < n; j0 += NR) {
        const int nc = n - j0 < NR ? n - j0 : NR;
        const block_fn *row = blocks[epi][nc > 16 ? 1 : 0];
        for (int i0 = 0; i0 < m; i0 += MR) {
            const int mr = m - i0 < MR ? m - i0 : MR;
            row[mr - 1](kp, a + (size_t)i0 * lda, lda, b + 2 * (size_t)j0,
                        ldb, alpha ? alpha + i0 : NULL,
                        c + (size_t)i0 * ldc + j0, ldc, nc);
        }
    }
}

/* qk_tile_bf16 of simd/kernels.h: s = q kt; no pointer NULL but work,
 * which is not used. */
void stem_bf16_qk_tile__avx512bf16_12x32(int rows, int cols, int d,
                                         const uint16_t *q, int ldq,
                                         const uint16_t *kt, int ldk,
                                         float *s, int lds, float *work)
{
    (void)work;
    product(EPI_STORE, rows, cols, d, q, ldq, kt, ldk, NULL, s, lds);
}

/* pv_tile_bf16 of simd/kernels.h: o = o * alpha + p v (alpha may be NULL:
 * o + p v); work is not used. */
void stem_bf16_pv_tile__avx512bf16_12x32(int rows, int cols, int d,
                                         const uint16_t *p, int ldp,
                                         const uint16_t *v, int ldv,
                                         const float *alpha, float *o,
                                         int ldo, float *work)
{
    (void)work;
    product(EPI_ADD, rows, d, cols, p, ldp, v, ldv, alpha, o, ldo);
}
