/*
 * tile_amx.c - the bf16 products on the AMX tile unit (TDPBF16PS).
 *
 * C (m x n) = A (m x k2) * B (k2 x n), k2 even, with A in the contract order
 * of bf16_rows (floats holding bf16 values, pairs swapped) and B in bf16 bit
 * patterns, natural order (row t at b + t*ldb).  Each call:
 *
 *   - packs B once, 32 columns at a time, into the unit's pair-interleaved
 *     layout: one tile (16 pair rows x 16 columns, 32-bit lane j of pair row
 *     u = (B[2u][j] low, B[2u+1][j] high)) is 1 KiB contiguous, and the
 *     tiles of one 16-column strip follow each other along k, so pair row u
 *     of a strip lies at strip + 32u.  Two rows of 32 columns become two
 *     tile rows with two VPERMT2W;
 *   - packs A in panels of 32 rows to natural bf16 (the high halves of the
 *     floats, pairs swapped back: one VPERMT2W per 32 values; exact, as the
 *     floats are bf16 values), tiles laid out as B's;
 *   - runs blocks of up to 32 x 32 of C in four tiles (0..3) fed by two A
 *     tiles (4, 5) and two B tiles (6, 7), four TDPBF16PS per 32 steps of k;
 *     blocks of at most 16 rows or columns use one A or B tile only;
 *   - stores full 16 x 16 tiles of C straight into c (leading dimension
 *     ldc); tiles cut by the edges of C go through a 1 KiB buffer.
 *
 * Packing is zero-padded (k up to a multiple of 32, rows and columns up to
 * a multiple of 16), so every tile is the full 16 rows x 64 bytes and the
 * padding adds exact zeros.  The next B strip (first panel only) and the
 * next A panel are packed right after a block's TDPBF16PS are issued, so
 * that the packing overlaps the unit's work; pv's o update of a block runs
 * one block late for the same reason.
 *
 * The tile configuration is loaded at the start of every call and released
 * at its end (other code in the thread, such as oneDNN, may use the tiles
 * with its own configuration).  k2 and n above 256 fall back to the AVX-512
 * emulation (exact, slower).  Stack: 128 KiB of packed B, 2 x 16 KiB of
 * packed A panels, 1 KiB of edge buffer.
 *
 * The unit sums the products of one instruction in its own way (neither an
 * fmaf chain nor a tree of float32 sums: tests/test_amx.c), so these
 * kernels are close to the contract of src/kernels.h but not bit-exact.
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

/* VPERMT2W indices (0..31 the first source's words, 32..63 the second's).
 * a_idx: 32 floats (two zmm) in contract order -> 32 natural bf16: word k
 * is the high half (word 2f+1) of float f = k ^ 1.
 * b_lo / b_hi: rows r0, r1 of 32 bf16 -> pairs (r0[j], r1[j]) for columns
 * j = 0..15 / 16..31. */
static const uint16_t a_idx[32] __attribute__((aligned(64))) = {
    3,  1,  7,  5,  11, 9,  15, 13, 19, 17, 23, 21, 27, 25, 31, 29,
    35, 33, 39, 37, 43, 41, 47, 45, 51, 49, 55, 53, 59, 57, 63, 61,
};
static const uint16_t b_lo[32] __attribute__((aligned(64))) = {
    0, 32, 1, 33, 2,  34, 3,  35, 4,  36, 5,  37, 6,  38, 7,  39,
    8, 40, 9, 41, 10, 42, 11, 43, 12, 44, 13, 45, 14, 46, 15, 47,
};
static const uint16_t b_hi[32] __attribute__((aligned(64))) = {
    16, 48, 17, 49, 18, 50, 19, 51, 20, 52, 21, 53, 22, 54, 23, 55,
    24, 56, 25, 57, 26, 58, 27, 59, 28, 60, 29, 61, 30, 62, 31, 63,
};

/* Columns 32*jb .. 32*jb + 31 of B (k2 rows of n, row t at b + t*ldb)
 * into bp as the 16-column strips 2*jb and 2*jb + 1 (the second only when
 * n reaches it): strip t's tile for k step s at bp + (t * nks + s) * TILE,
 * so pair row u (0 <= u < 16 * nks) of strip t at bp + t * nks * TILE +
 * 32u.  Pair rows at or past k2 / 2 and columns at or past n are zero. */
static void pack_b(int k2, int n, const uint16_t *b, int ldb, int nks,
                   int jb, uint16_t *bp)
{
    const __m512i lo_idx = _mm512_load_si512(b_lo);
    const __m512i hi_idx = _mm512_load_si512(b_hi);
    const int j = 32 * jb, second = n - j > 16;
    const __mmask32 mk = mask32(n - j);
    uint16_t *s0 = bp + (size_t)(2 * jb) * nks * TILE;
    uint16_t *s1 = s0 + (size_t)nks * TILE;
    for (int u = 0; u < 16 * nks; u++) {
        __m512i lo = _mm512_setzero_si512(), hi = lo;
        if (2 * u < k2) {
            const uint16_t *r0 = b + (size_t)(2 * u) * ldb + j;
            __m512i x0 = _mm512_maskz_loadu_epi16(mk, r0);
            __m512i x1 = _mm512_maskz_loadu_epi16(mk, r0 + ldb);
            lo = _mm512_permutex2var_epi16(x0, lo_idx, x1);
            hi = _mm512_permutex2var_epi16(x0, hi_idx, x1);
        }
        _mm512_store_si512(s0 + 32 * u, lo);
        if (second)
            _mm512_store_si512(s1 + 32 * u, hi);
    }
}

/* Rows 0 .. 16*mt - 1 of a panel of A (a: the panel's row 0; mr <= 16*mt
 * rows exist) as natural bf16 into ap: tile (ti, s) of 16 rows x 32 k at
 * ap + (ti * nks + s) * TILE.  k at or past k2 and rows at or past mr are
 * zero. */
static void pack_a(int mr, int mt, int k2, const float *a, int lda, int nks,
                   uint16_t *ap)
{
    const __m512i idx = _mm512_load_si512(a_idx);
    for (int r = 0; r < 16 * mt; r++) {
        uint16_t *dst = ap + (size_t)(r >> 4) * nks * TILE + 32 * (r & 15);
        for (int s = 0; s < nks; s++) {
            const int k = 32 * s;
            __m512i y = _mm512_setzero_si512();
            if (r < mr) {
                const float *ar = a + (size_t)r * lda;
                __m512 x0 = _mm512_maskz_loadu_ps(mask16(k2 - k), ar + k);
                __m512 x1 = _mm512_setzero_ps();
                if (k2 - k > 16)
                    x1 = _mm512_maskz_loadu_ps(mask16(k2 - k - 16), ar + k + 16);
                y = _mm512_permutex2var_epi16(_mm512_castps_si512(x0), idx,
                                              _mm512_castps_si512(x1));
            }
            _mm512_store_si512(dst + (size_t)s * TILE, y);
        }
    }
}

/* Tiles 0..3 = (A tiles 0..mt-1) x (B strips 0..nt-1) over nks k steps:
 * C tile 0 = (0, 0), 1 = (0, 1), 2 = (1, 0), 3 = (1, 1).  ap, bp: the
 * panel's and the first strip's packed tiles; the second strip follows
 * the first.  Called with constant mt, nt so that the unused tiles drop
 * out. */
static inline __attribute__((always_inline)) void
run_block(int mt, int nt, int nks, const uint16_t *ap, const uint16_t *bp)
{
    const uint16_t *ap1 = ap + (size_t)nks * TILE;
    const uint16_t *bp1 = bp + (size_t)nks * TILE;
    MEMORY_BARRIER();
    _tile_zero(0);
    if (nt > 1)
        _tile_zero(1);
    if (mt > 1)
        _tile_zero(2);
    if (mt > 1 && nt > 1)
        _tile_zero(3);
    for (int s = 0; s < nks; s++) {
        const size_t o = (size_t)s * TILE;
        _tile_loadd(4, ap + o, 64);
        _tile_loadd(6, bp + o, 64);
        if (mt > 1)
            _tile_loadd(5, ap1 + o, 64);
        if (nt > 1)
            _tile_loadd(7, bp1 + o, 64);
        _tile_dpbf16ps(0, 4, 6);
        if (nt > 1)
            _tile_dpbf16ps(1, 4, 7);
        if (mt > 1)
            _tile_dpbf16ps(2, 5, 6);
        if (mt > 1 && nt > 1)
            _tile_dpbf16ps(3, 5, 7);
    }
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
 * c (m x n, ldc) = A * B on the tiles: A m x k2 floats in contract order
 * (row i at a + i*lda, k2 even), B k2 rows of n bf16 (row t at b + t*ldb);
 * 1 <= k2 <= KMAX, 1 <= n <= NMAX, m >= 1.  When o is not NULL, c is
 * scratch and every element also goes o = o * alpha + c (o + c when alpha
 * is NULL; o row i at o + i*ldo).
 */
static void amx_gemm(int m, int n, int k2, const float *a, int lda,
                     const uint16_t *b, int ldb, float *c, int ldc,
                     const float *alpha, float *o, int ldo)
{
    uint16_t bp[KMAX * NMAX] __attribute__((aligned(64)));
    uint16_t ap[2][PANEL * KMAX] __attribute__((aligned(64)));
    float buf[256] __attribute__((aligned(64)));
    const int nks = (k2 + 31) / 32, nb = (n + 31) / 32, np = (m + 31) / 32;
    /* the block whose o update is pending (pv), none when pnr == 0 */
    int pi0 = 0, pj0 = 0, pnr = 0, pnc = 0;

    _tile_loadconfig(&config);
    pack_a(m < PANEL ? m : PANEL, m > 16 ? 2 : 1, k2, a, lda, nks, ap[0]);
    pack_b(k2, n, b, ldb, nks, 0, bp);
    for (int p = 0; p < np; p++) {
        const int i0 = PANEL * p, nr = m - i0 < PANEL ? m - i0 : PANEL;
        const int mt = nr > 16 ? 2 : 1;
        const uint16_t *apan = ap[p & 1];
        for (int jb = 0; jb < nb; jb++) {
            const int j0 = 32 * jb, nc = n - j0 < 32 ? n - j0 : 32;
            const int nt = nc > 16 ? 2 : 1;
            const uint16_t *bs = bp + (size_t)(2 * jb) * nks * TILE;
            if (mt > 1 && nt > 1)
                run_block(2, 2, nks, apan, bs);
            else if (mt > 1)
                run_block(2, 1, nks, apan, bs);
            else if (nt > 1)
                run_block(1, 2, nks, apan, bs);
            else
                run_block(1, 1, nks, apan, bs);
            put_block(mt, nt, c, ldc, i0, j0, nr, nc, buf);
            /* packing for later blocks while the unit works on this one */
            if (p == 0 && jb + 1 < nb)
                pack_b(k2, n, b, ldb, nks, jb + 1, bp);
            if (jb == 0 && p + 1 < np) {
                const int m1 = m - i0 - PANEL;
                pack_a(m1 < PANEL ? m1 : PANEL, m1 > 16 ? 2 : 1, k2,
                       a + (size_t)(i0 + PANEL) * lda, lda, nks,
                       ap[(p + 1) & 1]);
            }
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

/*
 * qk_tile_bf16 of src/kernels.h on the tiles (not bit-exact): s[i*lds + j]
 * = sum over t < d2 of q[i*ldq + t] * kt[(t ^ 1)*ldk + j] for i < rows,
 * j < cols, with d2 = d rounded up to even.  q: rows x d2 floats, a
 * bf16_rows output (contract order); kt: d2 rows of cols bf16 bit patterns
 * (row d zero when d is odd), natural order.  rows, cols, d >= 1; no
 * pointer NULL.  d2 or cols above 256 run the AVX-512 kernel.
 */
void stem_bf16_qk_tile__amx_32x32(int rows, int cols, int d, const float *q,
                                  int ldq, const uint16_t *kt, int ldk,
                                  float *s, int lds)
{
    const int d2 = (d + 1) & ~1;
    if (d2 > KMAX || cols > NMAX) {
        stem_bf16_qk_tile__avx512_12x32(rows, cols, d, q, ldq, kt, ldk, s, lds);
        return;
    }
    amx_gemm(rows, cols, d2, q, ldq, kt, ldk, s, lds, NULL, NULL, 0);
}

/*
 * pv_tile_bf16 of src/kernels.h on the tiles (not bit-exact): for i < rows,
 * c < d, acc = sum over t < c2 of p[i*ldp + t] * v[(t ^ 1)*ldv + c], then
 * o[i*ldo + c] = o[i*ldo + c] * alpha[i] + acc (two roundings; o + acc
 * when alpha is NULL), with c2 = cols rounded up to even.  p: rows x c2
 * floats, a bf16_rows output; v: c2 rows of d bf16 bit patterns (row cols
 * zero when cols is odd).  work: rows * d floats of scratch (the products,
 * leading dimension d).  rows, cols, d >= 1; only alpha may be NULL.  c2
 * or d above 256 run the AVX-512 kernel.
 */
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
    amx_gemm(rows, d, c2, p, ldp, v, ldv, work, d, alpha, o, ldo);
}
