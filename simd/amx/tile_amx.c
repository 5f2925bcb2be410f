/*
 * tile_amx.c - the bf16 products on the AMX tile unit (TDPBF16PS).
 *
 * C (m x n) = A (m x k2) * B (k2 x n) with A in the contract order of
 * bf16_rows (floats holding bf16 values, pairs swapped) and B in bf16 bit
 * patterns, natural order (row t at b + t*ldb).  Blocks of 32 x 32 of C live
 * in four tiles (0..3); two A tiles (4, 5) of 16 rows x 32 bf16 and two B
 * tiles (6, 7) of 16 pair rows x 16 columns (the unit's pair-interleaved
 * layout) feed four TDPBF16PS per 32 steps of k.  A and B are repacked with
 * AVX-512 into zero-padded buffers on the stack; k2 and n above 256 fall
 * back to the AVX-512 emulation (exact, slower).
 *
 * The unit sums the products of one instruction in its own way (neither an
 * fmaf chain nor a tree of float32 sums: tests/test_amx.c), so these
 * kernels are close to the contract of src/kernels.h but not bit-exact.
 */
#include <immintrin.h>
#include <stddef.h>
#include <string.h>

#include "kernels.h"
#include "kernels_amx.h"
#include "../avx512/kernels_avx512.h"

#define KMAX 256
#define NMAX 256

typedef struct tile_config {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} __attribute__((packed)) tile_config;

static void configure(void)
{
    tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) {
        cfg.colsb[t] = 64;
        cfg.rows[t] = 16;
    }
    _tile_loadconfig(&cfg);
}

/* 16 bf16 of row r at b + r*ldb, columns j < n (zero beyond), as a ymm. */
static inline __m256i row16(const uint16_t *b, int ldb, int r, int k2, int j,
                            int n)
{
    if (r >= k2 || j >= n)
        return _mm256_setzero_si256();
    __mmask16 m = n - j >= 16 ? 0xffff : (__mmask16)((1u << (n - j)) - 1u);
    return _mm256_maskz_loadu_epi16(m, b + (size_t)r * ldb + j);
}

/* B in tile layout: for column tile jt and k step s (32 k), 16 rows of 64
 * bytes, row r = (B[2r][j], B[2r+1][j]) for the tile's 16 columns j. */
static void pack_b(int k2, int n, const uint16_t *b, int ldb, int nks,
                   int njt, uint16_t *bp)
{
    for (int jt = 0; jt < njt; jt++)
        for (int s = 0; s < nks; s++) {
            uint16_t *dst = bp + ((size_t)jt * nks + s) * 512;
            for (int r = 0; r < 16; r++) {
                int t = 32 * s + 2 * r;
                __m256i e = row16(b, ldb, t, k2, 16 * jt, n);
                __m256i o = row16(b, ldb, t + 1, k2, 16 * jt, n);
                __m512i ew = _mm512_cvtepu16_epi32(e);
                __m512i ow = _mm512_slli_epi32(_mm512_cvtepu16_epi32(o), 16);
                _mm512_store_si512(dst + 32 * r, _mm512_or_si512(ew, ow));
            }
        }
}

/* A rows i0 .. i0+31 in tile layout: tile it (16 rows), k step s: 16 rows
 * of 32 bf16 in natural order (a holds them pair-swapped as floats). */
static void pack_a(int m, int k2, const float *a, int lda, int i0, int nks,
                   uint16_t *ap)
{
    for (int it = 0; it < 2; it++)
        for (int s = 0; s < nks; s++) {
            uint16_t *dst = ap + ((size_t)it * nks + s) * 512;
            for (int ri = 0; ri < 16; ri++) {
                int i = i0 + 16 * it + ri;
                for (int h = 0; h < 2; h++) {
                    int k = 32 * s + 16 * h;
                    __m256i out = _mm256_setzero_si256();
                    if (i < m && k < k2) {
                        int left = k2 - k;
                        __mmask16 mk = left >= 16 ? 0xffff
                                                  : (__mmask16)((1u << left) - 1u);
                        __m512i x = _mm512_castps_si512(
                            _mm512_maskz_loadu_ps(mk, a + (size_t)i * lda + k));
                        /* 64-bit lane u: (mem[2u] low, mem[2u+1] high) ->
                         * natural pair (mem[2u+1] >> 16) | (mem[2u] top) */
                        __m512i lo = _mm512_and_si512(x, _mm512_set1_epi64(0xffff0000));
                        __m512i hi = _mm512_srli_epi64(x, 48);
                        out = _mm512_cvtepi64_epi32(_mm512_or_si512(lo, hi));
                    }
                    _mm256_store_si256((__m256i *)(dst + 32 * ri + 16 * h), out);
                }
            }
        }
}

/* c (m x n, ldc) = A * B on the tiles; k2 <= KMAX, n <= NMAX. */
static void amx_gemm(int m, int n, int k2, const float *a, int lda,
                     const uint16_t *b, int ldb, float *c, int ldc)
{
    uint16_t bp[KMAX * NMAX + 1024] __attribute__((aligned(64)));
    uint16_t ap[2 * KMAX * 16] __attribute__((aligned(64)));
    float ct[32 * 32] __attribute__((aligned(64)));
    const int nks = (k2 + 31) / 32, njt = ((n + 31) / 32) * 2;
    pack_b(k2, n, b, ldb, nks, njt, bp);
    configure();
    for (int i0 = 0; i0 < m; i0 += 32) {
        pack_a(m, k2, a, lda, i0, nks, ap);
        for (int jt = 0; jt < njt; jt += 2) {
            _tile_zero(0);
            _tile_zero(1);
            _tile_zero(2);
            _tile_zero(3);
            for (int s = 0; s < nks; s++) {
                _tile_loadd(4, ap + (size_t)s * 512, 64);
                _tile_loadd(5, ap + ((size_t)nks + s) * 512, 64);
                _tile_loadd(6, bp + ((size_t)jt * nks + s) * 512, 64);
                _tile_loadd(7, bp + ((size_t)(jt + 1) * nks + s) * 512, 64);
                _tile_dpbf16ps(0, 4, 6);
                _tile_dpbf16ps(1, 4, 7);
                _tile_dpbf16ps(2, 5, 6);
                _tile_dpbf16ps(3, 5, 7);
            }
            _tile_stored(0, ct, 128);
            _tile_stored(1, ct + 16, 128);
            _tile_stored(2, ct + 16 * 32, 128);
            _tile_stored(3, ct + 16 * 32 + 16, 128);
            int j0 = 16 * jt, nc = n - j0 < 32 ? n - j0 : 32;
            int mr = m - i0 < 32 ? m - i0 : 32;
            for (int i = 0; i < mr; i++)
                memcpy(c + (size_t)(i0 + i) * ldc + j0, ct + 32 * i,
                       (size_t)nc * sizeof(float));
        }
    }
    _tile_release();
}

/* qk_tile_bf16's inputs and outputs on the tiles (not bit-exact); no
 * pointer may be NULL. */
void stem_bf16_qk_tile__amx_32x32(int rows, int cols, int d, const float *q,
                                  int ldq, const uint16_t *kt, int ldk,
                                  float *s, int lds)
{
    const int d2 = (d + 1) & ~1;
    if (d2 > KMAX || cols > NMAX) {
        stem_bf16_qk_tile__avx512_12x32(rows, cols, d, q, ldq, kt, ldk, s, lds);
        return;
    }
    amx_gemm(rows, cols, d2, q, ldq, kt, ldk, s, lds);
}

/* pv_tile_bf16's inputs and outputs on the tiles (not bit-exact): work =
 * P V, then o = o * alpha + work (alpha may be NULL); work holds rows * d
 * floats. */
void stem_bf16_pv_tile__amx_32x32(int rows, int cols, int d, const float *p,
                                  int ldp, const uint16_t *v, int ldv,
                                  const float *alpha, float *o, int ldo,
                                  float *work)
{
    const int c2 = (cols + 1) & ~1;
    if (c2 > KMAX || d > NMAX) {
        stem_bf16_pv_tile__avx512_12x32(rows, cols, d, p, ldp, v, ldv, alpha,
                                        o, ldo, work);
        return;
    }
    amx_gemm(rows, d, c2, p, ldp, v, ldv, work, d);
    for (int i = 0; i < rows; i++) {
        float *oi = o + (size_t)i * ldo;
        const float *wi = work + (size_t)i * d;
        __m512 a = _mm512_set1_ps(alpha ? alpha[i] : 1.0f);
        for (int c = 0; c < d; c += 16) {
            __mmask16 mk = d - c >= 16 ? 0xffff : (__mmask16)((1u << (d - c)) - 1u);
            __m512 x = _mm512_maskz_loadu_ps(mk, oi + c);
            if (alpha)
                x = _mm512_mul_ps(x, a);
            x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(mk, wi + c));
            _mm512_mask_storeu_ps(oi + c, mk, x);
        }
    }
}
