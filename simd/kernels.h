/*
 * kernels.h - the kernel contract shared by every instruction set.
 *
 * Each kernel has a scalar reference twin in simd/scalar/ and optimised
 * versions in simd/avx2/, simd/avx512/, simd/avx512bf16/, simd/neon/ (and
 * simd/amx/, fast but not bit-exact).  Names follow
 *     stem_<mode>_<what>__<isa>[_<step>]
 * <mode> is f32, or bf16 for the kernels of the bf16 compute mode;
 * <what> the kernel (qk_tile, pv_tile, softmax_rows, sqnorm_rows,
 * group_sum; rows for the bf16 rounding of rows); <isa> its simd/ folder;
 * <step> what one step of its main loop covers: the register tile,
 * rows x columns, of a tile kernel (avx2_6x16, avx512_12x32), the floats
 * of a row kernel (avx2_8, avx512_16); the scalar twins and the bf16
 * rows kernels have none, e.g. stem_f32_qk_tile__scalar,
 * stem_bf16_rows__avx2, stem_bf16_softmax_rows__avx512_16.
 * Every version must return the SAME BITS as the scalar twin for every
 * input: the order of each floating-point operation is part of the contract
 * and written down below.  The library is compiled with -ffp-contract=off so
 * that a*b+c is never fused behind our back; fusion happens only where a
 * contract says fmaf.
 *
 * Edge sizes (rows, cols, d not multiples of a vector) are handled inside
 * every kernel.  Pointers are never NULL unless said; leading dimensions are
 * in floats.  Kernels never allocate.
 *
 * The canonical 8-lane sum ("sum8") of x[0..n-1]:
 *     lane t (0..7) starts at 0.0f and adds x[t], x[t+8], x[t+16], ...
 *     in that order (x beyond n counts as +0.0f);
 *     result = ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7)).
 * The 8-lane fused square sum ("sqsum8") is the same with
 *     lane t = fmaf(x[i], x[i], lane t) instead of lane t + x[i].
 */
#ifndef STEM_KERNELS_H
#define STEM_KERNELS_H

#include "stem.h"

/* Arguments below -104 give exp 0; SLEEF's u10 expf gives identical bits on
 * [-104, 0] for its FMA scalar and vector variants. */
#define STEM_EXP_MIN (-104.0f)

typedef struct stem_kernels {
    stem_isa isa;

    /*
     * qk_tile: s[i*lds + j] = dot(q row i, column j of kt), i < rows, j < cols,
     * computed as  acc = 0.0f; for c = 0..d-1: acc = fmaf(q[i*ldq+c],
     * kt[c*ldk+j], acc).  rows, cols >= 1; d >= 1 (any size).
     * kt is the key block transposed: kt[c*ldk + j] is key j, component c.
     */
    void (*qk_tile)(int rows, int cols, int d, const float *q, int ldq,
                    const float *kt, int ldk, float *s, int lds);

    /*
     * softmax_rows: one online-softmax step for rows i < rows of a score
     * tile s (leading dimension lds), cols >= 1 columns (any size).  For row i, with n = valid[i]
     * (1 <= n <= cols) leading valid columns:
     *   x_j   = s[j] * scale                       (j < n)
     *   mnew  = max(m[i], max_j x_j)
     *   p_j   = e(x_j - mnew) for j < n, 0.0f for n <= j < cols
     *   a     = e(m[i] - mnew)
     *   l[i]  = l[i] * a + sum8(p)  (two roundings, in that order)
     *   m[i]  = mnew; alpha[i] = a; s[j] = p_j for j < cols
     * where e(x) = 0.0f if x < STEM_EXP_MIN (or x is -inf), else
     * Sleef expf u10 (FMA variant).
     */
    void (*softmax_rows)(int rows, int cols, const int *valid, float scale,
                         float *s, int lds, float *m, float *l, float *alpha);

    /*
     * pv_tile: for i < rows, c < d:
     *   o[i*ldo+c] = o[i*ldo+c] * alpha[i];          (one rounding)
     *   for j = 0..cols-1: o = fmaf(p[i*ldp+j], v[j*ldv+c], o)
     * alpha may be NULL (no rescale).  cols >= 1; d >= 1.
     */
    void (*pv_tile)(int rows, int cols, int d, const float *p, int ldp,
                    const float *v, int ldv, const float *alpha, float *o,
                    int ldo);

    /*
     * sqnorm_rows: out[t] = sqsum8(x row t over d components), t < n.
     */
    void (*sqnorm_rows)(int n, int d, const float *x, int ldx, float *out);

    /*
     * group_sum: sums over the groups of one block.  x holds `groups`
     * consecutive groups of `stride` rows (row r at x + r*ldx, d floats).
     * out[j*d + c] = sum over a = 0..groups-1, in that order, starting at
     * 0.0f, of x[(a*stride + j)*ldx + c], for j < stride, c < d.
     */
    void (*group_sum)(int groups, int stride, int d, const float *x, int ldx,
                      float *out);

    /* ---- the bf16 compute mode (STEM_COMPUTE_BF16) -------------------- */

    /*
     * The bf16 mode's operands are bf16 bit patterns (uint16_t; f(h) below is
     * the float with bits h << 16) in two layouts, the ones the bf16 units
     * read (AMX tiles, VDPBF16PS):
     *   rows:  row i of x at x + i*ldx, element t at x[i*ldx + t], an even
     *          number of elements (an odd length is padded with a zero);
     *   pairs: the rows t of a k x n operand taken two at a time: pair row
     *          u (rows 2u and 2u+1) at b + u*ldb, element (t, j) at
     *          b[(t/2)*ldb + 2*j + (t & 1)], ldb >= 2n; an odd k is padded
     *          with a zero row.
     * A product of the contract, for output (i, j) over k2 = k rounded up to
     * even, is the fmaf chain
     *   acc = 0.0f; for u = 0..k2/2-1:
     *       acc = fmaf(f(a[i][2u+1]), f(b[2u+1][j]), acc);
     *       acc = fmaf(f(a[i][2u]),   f(b[2u][j]),   acc);
     * pair by pair, the odd product then the even one: the order of
     * AVX512-BF16's VDPBF16PS.
     */

    /*
     * bf16_rows: y row i (rows layout) = bf16(x[i*ldx + t]) for t < n, and
     * y[i*ldy + n] = 0 when n is odd; bf16(v) rounds v to bfloat16, nearest
     * even, and gives a zero of v's sign if the result's magnitude is below
     * STEM_BF16_MIN.  n >= 1.
     */
    void (*bf16_rows)(int rows, int n, const float *x, int ldx, uint16_t *y,
                      int ldy);

    /*
     * softmax_rows_bf16: softmax_rows for the bf16 mode, with the exponential
     * e_b of simd/expb.h in place of e and the probabilities written rounded:
     * for row i, with n = valid[i] (1 <= n <= cols):
     *   x_j   = s[j] * scale                       (j < n; s is not written)
     *   mnew  = max(m[i], max_j x_j)               (as softmax_rows)
     *   p_j   = e_b(x_j - mnew) for j < n, 0.0f for n <= j < cols
     *   a     = e_b(m[i] - mnew)
     *   l[i]  = l[i] * a + sum8(p)  (two roundings, in that order)
     *   m[i]  = mnew; alpha[i] = a
     *   row i of p (ldp, rows layout) = bf16_rows of p_0 .. p_{cols-1}
     * Every nonzero p_j is at least e^-38 > STEM_BF16_MIN (simd/expb.h), so
     * the rounding to bf16 never flushes.
     */
    void (*softmax_rows_bf16)(int rows, int cols, const int *valid,
                              float scale, const float *s, int lds, float *m,
                              float *l, float *alpha, uint16_t *p, int ldp);

    /*
     * qk_tile_bf16: s[i*lds + j] = the contract's product of q (rows
     * layout, ldq) and kt (pairs layout, ldk: pair row u holds components
     * 2u, 2u+1 of the keys j < cols), over k = d, for i < rows, j < cols.
     * work: rows * (d + 1) floats of scratch (any alignment).
     */
    void (*qk_tile_bf16)(int rows, int cols, int d, const uint16_t *q,
                         int ldq, const uint16_t *kt, int ldk, float *s,
                         int lds, float *work);

    /*
     * pv_tile_bf16: for i < rows, c < d, with acc the contract's product of
     * p (rows layout, ldp) and v (pairs layout, ldv: pair row u holds value
     * rows 2u and 2u+1, components c < d) over k = cols:
     *   o[i*ldo + c] = o[i*ldo + c] * alpha[i] + acc    (two roundings)
     * alpha may be NULL (then o + acc).  work: rows * (cols + 1 + d) floats
     * of scratch (any alignment).
     */
    void (*pv_tile_bf16)(int rows, int cols, int d, const uint16_t *p,
                         int ldp, const uint16_t *v, int ldv,
                         const float *alpha, float *o, int ldo, float *work);
} stem_kernels;

/*
 * Why this contract.  bf16 operands whose magnitude is at least
 * STEM_BF16_MIN = 2^-56 have their last significand bit at 2^-63 or above,
 * so every product is a multiple of 2^-126 and exact in float32 (no
 * subnormal, no overflow below the input bound of 1e15); every partial sum
 * of a chain that starts at 0 is a multiple of 2^-126 too, hence zero or
 * normal.  So no step meets a subnormal, and flush-to-zero or
 * denormals-are-zero modes (which VDPBF16PS and AMX use) cannot change a
 * bit.  VDPBF16PS computes dst = fma(a_odd, b_odd, dst) then
 * fma(a_even, b_even, dst), measured bit for bit by tests/test_amx.c, so
 * the avx512bf16 table runs the contract on it directly
 * (simd/avx512bf16/tile_avx512bf16.c gives the whole argument); the
 * emulations widen the operands to float32 (exact) in that order and run
 * the same fmaf chain.  The AMX tile
 * unit's TDPBF16PS does not round like any fmaf chain or tree of float32
 * sums (tests/test_amx.c prints the models it was held against), so the
 * amx ISA is fast but not bit-exact.
 */
#define STEM_BF16_MIN 0x1p-56f

/*
 * The register micro-kernel of one ISA for the shared tile driver
 * (simd/tile_driver.h, BLIS's split): C (mr x nc, nc <= nr) = init + A (mr x kc) *
 * panel (kc x nr, row k at panel + k*nr, zero past nc, 64-byte aligned) as
 * fmaf chains over k in increasing order.  init 0: chains start at 0.0f;
 * init 1: at C, times alpha[i] first (one rounding) when alpha is not NULL;
 * init 2: at 0.0f, and the block stores C = C * alpha[i] + chain (two
 * roundings; C + chain when alpha is NULL).  mr <= this->mr.  Columns
 * nc..nr-1 of C are never touched.
 */
typedef struct stem_ukernel {
    int mr, nr, kc;
    void (*block)(int init, int mr, int nc, int kc, const float *a, int lda,
                  const float *panel, const float *alpha, float *c, int ldc);
} stem_ukernel;

/* The driver that runs a stem_ukernel is simd/tile_driver.h. */

/* Kernel tables, one per ISA compiled into this build (NULL members never
 * occur in a table that exists). */
extern const stem_kernels stem_kernels_scalar;
#if defined(STEM_HAVE_AVX2)
extern const stem_kernels stem_kernels_avx2;
#endif
#if defined(STEM_HAVE_AVX512)
extern const stem_kernels stem_kernels_avx512;
#endif
#if defined(STEM_HAVE_NEON)
extern const stem_kernels stem_kernels_neon;
#endif
#if defined(STEM_HAVE_AVX512BF16)
extern const stem_kernels stem_kernels_avx512bf16;
#endif
#if defined(STEM_HAVE_AMX)
extern const stem_kernels stem_kernels_amx;
/* 1 if the CPU has AMX-TILE and AMX-BF16 (cpuid), else 0. */
int stem_amx_cpu(void);
/* 0 if the OS granted this process AMX tile data (asked once), else -1. */
int stem_amx_request(void);
#endif

/* bf16 bit pattern of v as bf16_rows rounds it (nearest even, magnitudes
 * below STEM_BF16_MIN to a zero of v's sign); v finite. */
uint16_t stem_bf16_round(float v);

/* The table for an ISA, or NULL if not built in / not runnable here. */
const stem_kernels *stem_kernels_for(stem_isa isa);

/* The active table (stem_isa_active); NULL with *status set if the
 * environment asks for an unsupported ISA. */
const stem_kernels *stem_kernels_active(stem_status *status);

/* e(x) of the softmax contract, scalar (shared by every ISA for per-row
 * work such as the lse). */
float stem_expf_ref(float x);
/* e_b(x) of softmax_rows_bf16 (simd/expb.h), scalar. */
float stem_expb_ref(float x);
/* ln x through SLEEF's FMA u10 logf (bit-exact across ISAs). */
float stem_logf_ref(float x);

/* The bf16 dot of the contract above for one output element: c plus the
 * products a[t] * b[t], t < n (n even), of bf16 operands (bit patterns, both
 * contiguous), as VDPBF16PS orders them: per pair t = 2u, fmaf of the odd
 * product, then of the even one.  Operands are taken as they are (no
 * flushing). */
float stem_bf16_dot_ref(float c, const uint16_t *a, const uint16_t *b, int n);

#endif /* STEM_KERNELS_H */
