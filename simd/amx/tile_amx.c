/*
 * tile_amx.c - the bf16 products on the AMX tile unit (TDPBF16PS).
 *
 * C (m x n) = A (m x k2) * B (k2 x n), k2 even, with A in the rows layout
 * and B in the pairs layout of simd/kernels.h: these are the unit's own
 * layouts (a tile of A is 16 rows of 32 bf16, a tile of B is 16 pair rows
 * of 16 columns), so the tiles are loaded straight from the operands
 * wherever a whole tile lies inside them (k2 a multiple of 32, full 16-row
 * and 16-column tiles): the attention's 128 x 128 x 128 blocks never copy
 * an operand.  Elsewhere the operand is copied into a zero-padded buffer
 * first (an A panel of 32 rows, or all of B).
 *
 * Blocks of up to 32 x 32 of C live in four tiles (0..3) fed by two A
 * tiles (4, 5) and two B tiles (6, 7), four TDPBF16PS per 32 steps of k;
 * blocks of at most 16 rows or columns use one A or B tile only.  Full
 * 16 x 16 tiles of C are stored straight into c; tiles cut by its edges go
 * through a 1 KiB buffer.
 *
 * pv on whole 32 x 32 blocks (rows and d multiples of 32, the keys' c2 a
 * multiple of 32: every 128-token block with d = 64 or 128) scales o by
 * alpha first and then loads o itself into the C tiles, so that the unit
 * adds the products straight into it: no scratch, no second pass.  Its
 * other shapes compute the products into work and add them to o * alpha
 * afterwards (one block late, overlapping the unit's work on the next).
 *
 * The tile configuration is loaded at the start of every call and released
 * at its end (other code in the thread, such as oneDNN, may use the tiles
 * with its own configuration).  k2 and n above 256 fall back to the AVX-512
 * emulation (exact, slower).  Stack: up to 128 KiB for a copied B, 2 KiB
 * for an A panel, 1 KiB of edge buffer.
 *
 * The unit sums the products of one instruction in its own way (neither an
 * fmaf chain nor a tree of float32 sums: tests/test_amx.c), so these
 * kernels are close to the contract of simd/kernels.h but not bit-exact.
 */
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kernels.h"
#include "kernels_amx.h"
#include "../avx512/kernels_avx512.h"

#define KMAX 256 /* largest k2 on the tiles */
#define NMAX 256 /* largest n on the tiles */
#define PANEL 32 /* rows of A packed at a time (two tiles) */
#define TILE 512 /* uint16_t in one packed tile: 16 rows x 64 bytes */

typedef struct tile_config {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} __attribute__((packed)) tile_config;

/* Palette 1, tiles 0..7 all 16 rows x 64 bytes.  A constant: GCC's
 * _tile_loadconfig tells the compiler that it reads only 8 bytes of the
 * configuration, so one built on the stack could lose its stores. */
static const tile_config config __attribute__((aligned(64))) = {
    .palette = 1,
    .colsb = {64, 64, 64, 64, 64, 64, 64, 64},
    .rows = {16, 16, 16, 16, 16, 16, 16, 16},
};

/* GCC's _tile_loadd is an asm that takes only the address: it does not
 * tell the compiler that it reads memory.  This barrier keeps the packing
 * stores before the tile loads that read them (and later packing after
 * the loads of the buffer it overwrites). */
#define MEMORY_BARRIER() __asm__ volatile("" ::: "memory")

/* The low n bits set (none for n <= 0, all for n >= the width). */
static inline __mmask16 mask16(int n)
{
    return n >= 16 ? (__mmask16)0xffff
                   : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1u);
}

static inline __mmask32 mask32(int n)
{
    return n >= 32 ? (__mmask32)0xffffffffu
                   : n <= 0 ? (__mmask32)0 : (__mmask32)((1u << n) - 1u);
}

/* An operand as the tile loads see it: tile (row block r, k step s) of A
 * at base + r * 16 * stride + s * 64 bytes; tile (k step s, column strip
 * j) of B at base + s * 16 * stride + j * 64 bytes; stride in bytes. */
typedef struct tile_src {
    const char *base;
    size_t stride;
} tile_src;

/* Rows r0 .. r0 + 31 of A (rows layout, m rows of k2) into ap (32 rows of
 * 32 * nks bf16, zero past k2 and past row m). */
static tile_src pack_a(int m, int r0, int k2, const uint16_t *a, int lda,
                       int nks, uint16_t *ap)
{
    const int w = 32 * nks;
    for (int r = 0; r < PANEL; r++) {
        uint16_t *dst = ap + (size_t)r * w;
        const uint16_t *src = a + (size_t)(r0 + r) * lda;
        for (int k = 0; k < w; k += 32) {
            __m512i x = _mm512_setzero_si512();
            if (r0 + r < m)
                x = _mm512_maskz_loadu_epi16(mask32(k2 - k), src + k);
            _mm512_storeu_si512(dst + k, x);
        }
    }
    return (tile_src){(const char *)ap, (size_t)w * 2};
}

/* All of B (pairs layout: k2 / 2 pair rows of n pairs, ldb >= 2n) into bp
 * (16 * nks pair rows of 32 * nsb bf16, zero past k2 / 2 and n). */
static tile_src pack_b(int k2, int n, const uint16_t *b, int ldb, int nks,
                       int nsb, uint16_t *bp)
{
    const int w = 32 * nsb; /* bf16 per pair row: 16 columns per strip */
    for (int u = 0; u < 16 * nks; u++) {
        uint16_t *dst = bp + (size_t)u * w;
        const uint16_t *src = b + (size_t)u * ldb;
        for (int e = 0; e < w; e += 32) {
            __m512i x = _mm512_setzero_si512();
            if (2 * u < k2)
                x = _mm512_maskz_loadu_epi16(mask32(2 * n - e), src + e);
            _mm512_storeu_si512(dst + e, x);
        }
    }
    return (tile_src){(const char *)bp, (size_t)w * 2};
}

/* Tiles 0..3 += (A tiles 0..mt-1 of a) x (B strips 0..nt-1 of b) over nks
 * k steps: C tile 0 = (0, 0), 1 = (0, 1), 2 = (1, 0), 3 = (1, 1).  Called
 * with constant mt, nt so that the unused tiles drop out. */
static inline __attribute__((always_inline)) void
run_steps(int mt, int nt, int nks, tile_src a, tile_src b)
{
    const char *a1 = a.base + 16 * a.stride;
    for (int s = 0; s < nks; s++) {
        const char *as = a.base + (size_t)s * 64;
        const char *bs = b.base + (size_t)s * 16 * b.stride;
        _tile_loadd(4, as, a.stride);
        _tile_loadd(6, bs, b.stride);
        if (mt > 1)
            _tile_loadd(5, a1 + (size_t)s * 64, a.stride);
        if (nt > 1)
            _tile_loadd(7, bs + 64, b.stride);
        _tile_dpbf16ps(0, 4, 6);
        if (nt > 1)
            _tile_dpbf16ps(1, 4, 7);
        if (mt > 1)
            _tile_dpbf16ps(2, 5, 6);
        if (mt > 1 && nt > 1)
            _tile_dpbf16ps(3, 5, 7);
    }
}

/* Tiles 0..3 = the same products, from zero. */
static inline __attribute__((always_inline)) void
run_block(int mt, int nt, int nks, tile_src a, tile_src b)
{
    MEMORY_BARRIER();
    _tile_zero(0);
    if (nt > 1)
        _tile_zero(1);
    if (mt > 1)
        _tile_zero(2);
    if (mt > 1 && nt > 1)
        _tile_zero(3);
    run_steps(mt, nt, nks, a, b);
    MEMORY_BARRIER();
}

/* Tile t (0..3) to p with a stride of `stride` bytes. */
static inline __attribute__((always_inline)) void store_tile(int t, void *p,
                                                             size_t stride)
{
    switch (t) {
    case 0: _tile_stored(0, p, stride); break;
    case 1: _tile_stored(1, p, stride); break;
    case 2: _tile_stored(2, p, stride); break;
    default: _tile_stored(3, p, stride); break;
    }
}

/* C tile t (16 x 16 at row r, column j of c) into c: the nr <= 16 rows and
 * nc <= 16 columns that exist; straight from the tile when all do, else
 * through buf (256 floats, 64-byte aligned). */
static inline __attribute__((always_inline)) void
put_tile(int t, float *c, int ldc, int r, int j, int nr, int nc, float *buf)
{
    float *dst = c + (size_t)r * ldc + j;
    if (nr >= 16 && nc >= 16) {
        store_tile(t, dst, (size_t)ldc * sizeof(float));
        return;
    }
    store_tile(t, buf, 64);
    const __mmask16 mk = mask16(nc);
    for (int i = 0; i < nr && i < 16; i++)
        _mm512_mask_storeu_ps(dst + (size_t)i * ldc, mk,
                              _mm512_load_ps(buf + 16 * i));
}

/* The C tiles of a block of nr rows, nc columns at (i0, j0), as run_block
 * left them, into c. */
static void put_block(int mt, int nt, float *c, int ldc, int i0, int j0,
                      int nr, int nc, float *buf)
{
    put_tile(0, c, ldc, i0, j0, nr, nc, buf);
    if (nt > 1)
        put_tile(1, c, ldc, i0, j0 + 16, nr, nc - 16, buf);
    if (mt > 1)
        put_tile(2, c, ldc, i0 + 16, j0, nr - 16, nc, buf);
    if (mt > 1 && nt > 1)
        put_tile(3, c, ldc, i0 + 16, j0 + 16, nr - 16, nc - 16, buf);
}

/* o = o * alpha + w (o + w when alpha is NULL) over nr rows and nc <= 32
 * columns at (i0, j0) (w: leading dimension ldw). */
static void update_o(int i0, int j0, int nr, int nc, const float *w, int ldw,
                     const float *alpha, float *o, int ldo)
{
    for (int i = i0; i < i0 + nr; i++) {
        float *oi = o + (size_t)i * ldo + j0;
        const float *wi = w + (size_t)i * ldw + j0;
        const __m512 a = _mm512_set1_ps(alpha ? alpha[i] : 1.0f);
        for (int j = 0; j < nc; j += 16) {
            const __mmask16 mk = mask16(nc - j);
            __m512 x = _mm512_maskz_loadu_ps(mk, oi + j);
            if (alpha)
                x = _mm512_mul_ps(x, a);
            x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(mk, wi + j));
            _mm512_mask_storeu_ps(oi + j, mk, x);
        }
    }
}

/*
 * c (m x n, ldc) = A * B on the tiles: A m x k2 in the rows layout (row i
 * at a + i*lda, k2 even, a zero at k2 - 1 when the true k is odd), B in
 * the pairs layout (pair row u at b + u*ldb); 1 <= k2 <= KMAX,
 * 1 <= n <= NMAX, m >= 1.  When o is not NULL, c is scratch and every
 * element also goes o = o * alpha + c (o + c when alpha is NULL; o row i
 * at o + i*ldo).
 */
static void amx_gemm(int m, int n, int k2, const uint16_t *a, int lda,
                     const uint16_t *b, int ldb, float *c, int ldc,
                     const float *alpha, float *o, int ldo)
{
    uint16_t bp[KMAX / 2 * NMAX * 2] __attribute__((aligned(64)));
    uint16_t ap[PANEL * KMAX] __attribute__((aligned(64)));
    float buf[256] __attribute__((aligned(64)));
    const int nks = (k2 + 31) / 32, nb = (n + 31) / 32, np = (m + 31) / 32;
    const int k_full = k2 % 32 == 0;
    /* the block whose o update is pending (pv), none when pnr == 0 */
    int pi0 = 0, pj0 = 0, pnr = 0, pnc = 0;

    _tile_loadconfig(&config);
    tile_src bs = {(const char *)b, (size_t)ldb * 2};
    if (!k_full || n % 16 != 0)
        bs = pack_b(k2, n, b, ldb, nks, (n + 15) / 16, bp);
    for (int p = 0; p < np; p++) {
        const int i0 = PANEL * p, nr = m - i0 < PANEL ? m - i0 : PANEL;
        const int mt = nr > 16 ? 2 : 1;
        tile_src as = {(const char *)(a + (size_t)i0 * lda), (size_t)lda * 2};
        if (!k_full || nr % 16 != 0)
            as = pack_a(m, i0, k2, a, lda, nks, ap);
        for (int jb = 0; jb < nb; jb++) {
            const int j0 = 32 * jb, nc = n - j0 < 32 ? n - j0 : 32;
            const int nt = nc > 16 ? 2 : 1;
            const tile_src bj = {bs.base + (size_t)jb * 128, bs.stride};
            if (mt > 1 && nt > 1)
                run_block(2, 2, nks, as, bj);
            else if (mt > 1)
                run_block(2, 1, nks, as, bj);
            else if (nt > 1)
                run_block(1, 2, nks, as, bj);
            else
                run_block(1, 1, nks, as, bj);
            put_block(mt, nt, c, ldc, i0, j0, nr, nc, buf);
            if (o) {
                if (pnr)
                    update_o(pi0, pj0, pnr, pnc, c, ldc, alpha, o, ldo);
                pi0 = i0, pj0 = j0, pnr = nr, pnc = nc;
            }
        }
    }
    if (o && pnr)
        update_o(pi0, pj0, pnr, pnc, c, ldc, alpha, o, ldo);
    _tile_release();
}

/* o (m x n, ldo) *= alpha row by row (rows whose alpha is 1 skipped). */
static void scale_rows(int m, int n, const float *alpha, float *o, int ldo)
{
    for (int i = 0; i < m; i++) {
        if (alpha[i] == 1.0f)
            continue;
        const __m512 a = _mm512_set1_ps(alpha[i]);
        float *oi = o + (size_t)i * ldo;
        for (int j = 0; j < n; j += 16) {
            const __mmask16 mk = mask16(n - j);
            _mm512_mask_storeu_ps(oi + j, mk,
                                  _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, oi + j), a));
        }
    }
}

/*
 * o = o * alpha + A B with the C tiles held in o: A m x k2 (rows layout),
 * B k2 x n (pairs layout); m and n multiples of 32, k2 a multiple of 32 up
 * to KMAX, n up to NMAX.  o is scaled first (alpha NULL: not scaled), then
 * each 32 x 32 block of o is loaded into tiles 0..3, receives the products
 * and is stored back.
 */
static void amx_gemm_into(int m, int n, int k2, const uint16_t *a, int lda,
                          const uint16_t *b, int ldb, const float *alpha,
                          float *o, int ldo)
{
    const int nks = k2 / 32;
    const size_t so = (size_t)ldo * sizeof(float);
    if (alpha)
        scale_rows(m, n, alpha, o, ldo);
    _tile_loadconfig(&config);
    for (int i0 = 0; i0 < m; i0 += 32) {
        const tile_src as = {(const char *)(a + (size_t)i0 * lda), (size_t)lda * 2};
        for (int j0 = 0; j0 < n; j0 += 32) {
            float *c = o + (size_t)i0 * ldo + j0;
            const tile_src bj = {(const char *)(b + 2 * (size_t)j0), (size_t)ldb * 2};
            MEMORY_BARRIER();
            _tile_loadd(0, c, so);
            _tile_loadd(1, c + 16, so);
            _tile_loadd(2, c + (size_t)16 * ldo, so);
            _tile_loadd(3, c + (size_t)16 * ldo + 16, so);
            run_steps(2, 2, nks, as, bj);
            _tile_stored(0, c, so);
            _tile_stored(1, c + 16, so);
            _tile_stored(2, c + (size_t)16 * ldo, so);
            _tile_stored(3, c + (size_t)16 * ldo + 16, so);
            MEMORY_BARRIER();
        }
    }
    _tile_release();
}

/*
 * qk_tile_bf16 of simd/kernels.h on the tiles (not bit-exact): s[i*lds + j]
 * for i < rows, j < cols, from q (rows layout) and kt (pairs layout).
 * rows, cols, d >= 1; no pointer NULL.  d2 or cols above 256 run the
 * AVX-512 kernel (which uses work: rows * (d + 1) floats).
 */
void stem_bf16_qk_tile__amx_32x32(int rows, int cols, int d,
                                  const uint16_t *q, int ldq,
                                  const uint16_t *kt, int ldk, float *s,
                                  int lds, float *work)
{
    const int d2 = (d + 1) & ~1;
    if (d2 > KMAX || cols > NMAX) {
        stem_bf16_qk_tile__avx512_12x32(rows, cols, d, q, ldq, kt, ldk, s,
                                        lds, work);
        return;
    }
    amx_gemm(rows, cols, d2, q, ldq, kt, ldk, s, lds, NULL, NULL, 0);
}

/*
 * pv_tile_bf16 of simd/kernels.h on the tiles (not bit-exact): for i < rows,
 * c < d, o[i*ldo + c] = o[i*ldo + c] * alpha[i] + P V over the cols
 * (rounded up to even) keys (o not scaled when alpha is NULL).  Whole
 * 32 x 32 blocks (rows, d and c2 multiples of 32) accumulate the products
 * into the scaled o in the tiles; other shapes sum them first and then add
 * the sum to o * alpha (the contract's two roundings).  p: rows layout;
 * v: pairs layout.  work: at least rows * d floats (the products, leading
 * dimension d; the AVX-512 fallback takes the contract's
 * rows * (cols + 1 + d)).  rows, cols, d >= 1; only alpha may be NULL.  c2
 * or d above 256 run the AVX-512 kernel.
 */
void stem_bf16_pv_tile__amx_32x32(int rows, int cols, int d,
                                  const uint16_t *p, int ldp,
                                  const uint16_t *v, int ldv,
                                  const float *alpha, float *o, int ldo,
                                  float *work)
{
    const int c2 = (cols + 1) & ~1;
    if (c2 > KMAX || d > NMAX) {
        stem_bf16_pv_tile__avx512_12x32(rows, cols, d, p, ldp, v, ldv, alpha,
                                        o, ldo, work);
        return;
    }
    if (rows % 32 == 0 && d % 32 == 0 && c2 % 32 == 0) {
        amx_gemm_into(rows, d, c2, p, ldp, v, ldv, alpha, o, ldo);
        return;
    }
    amx_gemm(rows, d, c2, p, ldp, v, ldv, work, d, alpha, o, ldo);
}
