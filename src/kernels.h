/*
 * kernels.h - the kernel contract shared by every instruction set.
 *
 * Each kernel has a scalar reference twin in simd/scalar/ and optimised
 * versions in simd/avx2/, simd/avx512/, simd/neon/.  Names follow
 *     stem_f32_<what>__<isa>
 * and every version must return the SAME BITS as the scalar twin for every
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
} stem_kernels;

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

/* The table for an ISA, or NULL if not built in / not runnable here. */
const stem_kernels *stem_kernels_for(stem_isa isa);

/* The active table (stem_isa_active); NULL with *status set if the
 * environment asks for an unsupported ISA. */
const stem_kernels *stem_kernels_active(stem_status *status);

/* e(x) of the softmax contract, scalar (shared by every ISA for per-row
 * work such as the lse). */
float stem_expf_ref(float x);
/* ln x through SLEEF's FMA u10 logf (bit-exact across ISAs). */
float stem_logf_ref(float x);

#endif /* STEM_KERNELS_H */
