/*
 * softmax_avx512.c - softmax_rows on AVX-512: 16-lane scale, max and SLEEF
 * expf; the canonical sum8 adds the low and then the high ymm half of each
 * 16-column chunk into one 8-lane accumulator, which is exactly the
 * contract's lane order (columns j, j+8, j+16, ... go to lane j % 8).
 */
#include <immintrin.h>
#include <math.h>
#include <stddef.h>

#include <sleef.h>

#include "kernels.h"
#include "kernels_avx512.h"
#include "expb.h"

/* Lanes 0..r-1 of 16 (r may be <= 0 or >= 16), without a branch. */
static inline __mmask16 lanes_below(int r)
{
    r = r < 0 ? 0 : r > 16 ? 16 : r;
    return (__mmask16)((1u << r) - 1u);
}

/* Words 0..r-1 of 32 (0 < r < 32). */
static inline __mmask32 words_below(int r)
{
    return (__mmask32)((1u << r) - 1u);
}

/* ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7)) */
static inline float reduce_sum8(__m256 a)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a),
                          _mm256_extractf128_ps(a, 1));
    __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}

/*
 * x[j] *= scale for j < n (stored) and the maximum of m0 and those values.
 * Only the sign of a zero maximum depends on the comparison order; then the
 * scalar twin's first-wins scan decides it.
 */
static float scale_and_max(float *x, int n, float scale, float m0)
{
    const __m512 vs = _mm512_set1_ps(scale);
    __m512 vmax = _mm512_set1_ps(m0);
    for (int j = 0; j < n; j += 16) {
        __mmask16 mk = lanes_below(n - j);
        __m512 y = _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, x + j), vs);
        _mm512_mask_storeu_ps(x + j, mk, y);
        vmax = _mm512_mask_max_ps(vmax, mk, y, vmax); /* y > vmax ? y : vmax */
    }
    float mx = _mm512_reduce_max_ps(vmax);
    if (mx == 0.0f) {
        mx = m0;
        for (int t = 0; t < n; t++)
            if (x[t] > mx)
                mx = x[t];
    }
    return mx;
}

/* softmax_rows of simd/kernels.h: one online-softmax step per row, updates s,
 * m, l and writes alpha; no pointer may be NULL; 1 <= valid[i] <= cols. */
void stem_f32_softmax_rows__avx512_16(int rows, int cols, const int *valid,
                                      float scale, float *s, int lds,
                                      float *m, float *l, float *alpha)
{
    const __m512 emin = _mm512_set1_ps(STEM_EXP_MIN);
    for (int i = 0; i < rows; i++) {
        float *x = s + (size_t)i * lds;
        const int n = valid[i];
        const float mnew = scale_and_max(x, n, scale, m[i]);
        const __m512 vm = _mm512_set1_ps(mnew);
        __m256 acc = _mm256_setzero_ps();
        int j = 0;
        for (; j < n; j += 16) {
            __mmask16 mk = lanes_below(n - j);
            __m512 y = _mm512_sub_ps(_mm512_maskz_loadu_ps(mk, x + j), vm);
            __mmask16 keep = mk & _mm512_cmp_ps_mask(y, emin, _CMP_GE_OQ);
            __m512 p = _mm512_maskz_mov_ps(keep, Sleef_expf16_u10avx512f(y));
            /* columns n..j+15 are zero in p, as the contract wants */
            _mm512_mask_storeu_ps(x + j, lanes_below(cols - j), p);
            acc = _mm256_add_ps(acc, _mm512_castps512_ps256(p));
            __m256 hi = _mm256_castpd_ps(
                _mm512_extractf64x4_pd(_mm512_castps_pd(p), 1));
            acc = _mm256_add_ps(acc, hi);
        }
        /* the rest is zero; adding +0.0f to a lane (never -0.0f) is exact */
        for (; j < cols; j += 16)
            _mm512_mask_storeu_ps(x + j, lanes_below(cols - j),
                                  _mm512_setzero_ps());

        const float a = stem_expf_ref(m[i] - mnew);
        float li = l[i] * a;
        li = li + reduce_sum8(acc);
        l[i] = li;
        m[i] = mnew;
        alpha[i] = a;
    }
}

/* ---- the bf16 mode: e_b of simd/expb.h and probabilities rounded ------- */

/* e_b(y[k]) of simd/expb.h on 16 lanes each, k < K (a compile-time
 * constant), zero where keep[k] is clear; keep[k] must clear every lane
 * with y < STEM_EXPB_MIN.  The K vectors go through each operation
 * together: every vector's chain is a long dependent sequence, and
 * interleaved they keep the core's schedulers full of ready work.
 * rint(t) comes from adding and subtracting 1.5 * 2^23 (exact for
 * |t| < 2^22, nearest, ties to even).  The last step, u * 2^n, is
 * VSCALEFPS: u is in [0.7, 1.42] and n >= -55, so the product is normal
 * and exact, the float that adding n * 2^23 to u's bits gives. */
static inline __attribute__((always_inline)) void
expb16(const int K, const __m512 *y, const __mmask16 *keep, __m512 *out)
{
    const __m512 magic = _mm512_set1_ps(0x1.8p23f);
    const __m512 c[6] = {_mm512_set1_ps(STEM_EXPB_C6), _mm512_set1_ps(STEM_EXPB_C5),
                         _mm512_set1_ps(STEM_EXPB_C4), _mm512_set1_ps(STEM_EXPB_C3),
                         _mm512_set1_ps(STEM_EXPB_C2), _mm512_set1_ps(1.0f)};
    __m512 n[8], r[8], u[8];
#pragma GCC unroll 8
    for (int k = 0; k < K; k++)
        n[k] = _mm512_mul_ps(y[k], _mm512_set1_ps(STEM_EXPB_LOG2E));
#pragma GCC unroll 8
    for (int k = 0; k < K; k++)
        n[k] = _mm512_add_ps(n[k], magic);
#pragma GCC unroll 8
    for (int k = 0; k < K; k++)
        n[k] = _mm512_sub_ps(n[k], magic);
#pragma GCC unroll 8
    for (int k = 0; k < K; k++)
        r[k] = _mm512_fmadd_ps(n[k], _mm512_set1_ps(-STEM_EXPB_LN2_HI), y[k]);
#pragma GCC unroll 8
    for (int k = 0; k < K; k++)
        r[k] = _mm512_fmadd_ps(n[k], _mm512_set1_ps(-STEM_EXPB_LN2_LO), r[k]);
#pragma GCC unroll 8
    for (int k = 0; k < K; k++)
        u[k] = _mm512_fmadd_ps(_mm512_set1_ps(STEM_EXPB_C7), r[k], c[0]);
#pragma GCC unroll 6
    for (int t = 1; t < 7; t++) {
        const __m512 ct = t < 6 ? c[t] : c[5]; /* C1 = C0 = 1 */
#pragma GCC unroll 8
        for (int k = 0; k < K; k++)
            u[k] = _mm512_fmadd_ps(u[k], r[k], ct);
    }
#pragma GCC unroll 8
    for (int k = 0; k < K; k++)
        out[k] = _mm512_maskz_scalef_ps(keep[k], u[k], n[k]);
}

/* The 16 lanes' maximum of each of 16 vectors, one vector: lane L holds
 * that of v[((L & 3) << 2) | (L >> 2)] (four rounds of two shuffles and a
 * max, each halving the vectors; max is exact, so the order of the
 * comparisons changes no value, only possibly the sign of a zero). */
static inline __m512 max_lanes16(const __m512 *v)
{
    __m512 w[8], x[4], y[2];
    for (int i = 0; i < 8; i++)
        w[i] = _mm512_max_ps(_mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0x44),
                             _mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0xee));
    for (int i = 0; i < 4; i++)
        x[i] = _mm512_max_ps(_mm512_shuffle_f32x4(w[2 * i], w[2 * i + 1], 0x88),
                             _mm512_shuffle_f32x4(w[2 * i], w[2 * i + 1], 0xdd));
    for (int i = 0; i < 2; i++)
        y[i] = _mm512_max_ps(_mm512_shuffle_ps(x[2 * i], x[2 * i + 1], 0x44),
                             _mm512_shuffle_ps(x[2 * i], x[2 * i + 1], 0xee));
    return _mm512_max_ps(_mm512_shuffle_ps(y[0], y[1], 0x88),
                         _mm512_shuffle_ps(y[0], y[1], 0xdd));
}

/* The new maxima mnew[b] = max(m[b], x_j * scale over j < valid[b]) of
 * rows b < nb <= 16 (row b at s + b*lds, not written).  scale > 0 and
 * rounding is monotonic, so the largest product is the product of the
 * largest score: each row's scores reduce to one vector of maxima, the 16
 * rows' vectors to one vector (max_lanes16), one multiply for them all.
 * A zero maximum takes the scalar twin's first-wins sign. */
static void max_scaled16(int nb, const float *s, int lds, const int *valid,
                         float scale, const float *m, float *mnew)
{
    __m512 v[16];
    for (int t = 0; t < 16; t++)
        v[t] = _mm512_set1_ps(-INFINITY);
    for (int b = 0; b < nb; b++) {
        const float *x = s + (size_t)b * lds;
        const int n = valid[b];
        __m512 vmax = _mm512_set1_ps(-INFINITY);
        int j = 0;
        for (; j + 16 <= n; j += 16)
            vmax = _mm512_max_ps(_mm512_loadu_ps(x + j), vmax);
        if (j < n) {
            const __mmask16 mk = lanes_below(n - j);
            vmax = _mm512_mask_max_ps(vmax, mk, _mm512_maskz_loadu_ps(mk, x + j),
                                      vmax);
        }
        v[((b & 3) << 2) | (b >> 2)] = vmax;
    }
    const __mmask16 lm = lanes_below(nb);
    const __m512 m0 = _mm512_maskz_loadu_ps(lm, m);
    __m512 mx = _mm512_mul_ps(max_lanes16(v), _mm512_set1_ps(scale));
    mx = _mm512_mask_mov_ps(m0, _mm512_cmp_ps_mask(mx, m0, _CMP_GT_OQ), mx);
    _mm512_mask_storeu_ps(mnew, lm, mx);
    __mmask16 zero = lm & _mm512_cmp_ps_mask(mx, _mm512_setzero_ps(), _CMP_EQ_OQ);
    for (int b = 0; zero; b++, zero >>= 1) {
        if (!(zero & 1))
            continue;
        const float *x = s + (size_t)b * lds;
        float z = m[b];
        for (int t = 0; t < valid[b]; t++)
            if (x[t] * scale > z)
                z = x[t] * scale;
        mnew[b] = z;
    }
}

/* bf16 bits of 32 floats, lo then hi, that are 0 or normal and below
 * 2^128, nearest, ties to even: with integer adds (the rounded words are
 * the high halves, gathered by one VPERMT2W), or (cvtne, a compile-time
 * constant) with AVX512-BF16's VCVTNE2PS2BF16, which rounds the same way
 * on such values (it only differs on subnormals, which it reads as zero,
 * and NaNs).  The instruction is written as assembly so that this file
 * needs no AVX512-BF16 flag; only the cvtne instance below contains it. */
static inline __attribute__((always_inline)) __m512i
bf16_bits32(__m512 lo, __m512 hi, const int cvtne)
{
    if (cvtne) {
        __m512i b;
        __asm__("vcvtne2ps2bf16 %2, %1, %0" : "=v"(b) : "v"(hi), "v"(lo));
        return b;
    }
    const __m512i odd_words = _mm512_set_epi16(
        63, 61, 59, 57, 55, 53, 51, 49, 47, 45, 43, 41, 39, 37, 35, 33,
        31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    __m512i r[2] = {_mm512_castps_si512(lo), _mm512_castps_si512(hi)};
    for (int h = 0; h < 2; h++) {
        __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(r[h], 16),
                                       _mm512_set1_epi32(1));
        r[h] = _mm512_add_epi32(r[h], _mm512_add_epi32(_mm512_set1_epi32(0x7fff),
                                                       lsb));
    }
    return _mm512_permutex2var_epi16(r[0], odd_words, r[1]);
}

/* Rows r[0..K-1] of a softmax_rows_bf16 call (K is 2 or 4; a row may
 * appear twice in r: it is then computed twice and written twice with the
 * same bits), given their new maxima mnew[k]: p = e_b(x * scale - mnew),
 * zero past the row's valid columns, written as bf16 bits to p's rows up
 * to cols2, and sum8(p) to sum[k].  C chunks of 16 columns of each row
 * (C = 8 / K) go through every operation together (expb16), eight
 * vectors, enough independent chains to cover the latency of two FMA
 * pipes.  Each pair of rows shares one 16-lane accumulator of sum8
 * lanes, the first row in lanes 0..7 and the second in 8..15: per chunk
 * it adds both rows' columns j..j+7, then j+8..j+15, chunk after chunk,
 * which is each row's lane order (column j + t goes to lane t % 8).
 * Chunks past cols2 are all zeros and write nothing (adding +0.0f to a
 * sum lane, never -0.0f, changes nothing). */
static inline __attribute__((always_inline)) void
prob_rows(const int K, int cols2, const int *valid, float scale,
          const float *s, int lds, const float *mnew, uint16_t *p, int ldp,
          const int *r, float *sum, const int cvtne)
{
    const int C = 8 / K;
    const __m512 vs = _mm512_set1_ps(scale), emin = _mm512_set1_ps(STEM_EXPB_MIN);
    const float *x[4];
    uint16_t *pr[4];
    __m512 vm[4], acc[2];
    __m512i vn[4];
#pragma GCC unroll 4
    for (int k = 0; k < K; k++) {
        x[k] = s + (size_t)r[k] * lds;
        pr[k] = p + (size_t)r[k] * ldp;
        vn[k] = _mm512_set1_epi32(valid[r[k]]);
        vm[k] = _mm512_set1_ps(mnew[k]);
    }
#pragma GCC unroll 2
    for (int h = 0; h < K / 2; h++)
        acc[h] = _mm512_setzero_ps();
    /* column numbers of a chunk's lanes, against each row's valid count */
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
                                           11, 12, 13, 14, 15);
    for (int j0 = 0; j0 < cols2; j0 += 16 * C) {
        __m512 y[8], q[8];
        __mmask16 keep[8];
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            const int j = j0 + 16 * c;
            const __m512i col = _mm512_add_epi32(iota, _mm512_set1_epi32(j));
#pragma GCC unroll 4
            for (int k = 0; k < K; k++) {
                const __mmask16 mk = _mm512_cmplt_epi32_mask(col, vn[k]);
                __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, x[k] + j), vs);
                y[c * K + k] = _mm512_sub_ps(v, vm[k]);
                keep[c * K + k] = _mm512_mask_cmp_ps_mask(mk, y[c * K + k], emin,
                                                          _CMP_GE_OQ);
            }
        }
        expb16(K * C, y, keep, q);
        /* each row's chunks two at a time: 32 columns of bf16 bits */
#pragma GCC unroll 2
        for (int c = 0; c < C; c += 2) {
            const int j = j0 + 16 * c;
#pragma GCC unroll 4
            for (int k = 0; k < K; k++) {
                const __m512i bits = bf16_bits32(q[c * K + k], q[(c + 1) * K + k],
                                                 cvtne);
                if (j + 32 <= cols2)
                    _mm512_storeu_si512(pr[k] + j, bits);
                else if (j < cols2)
                    _mm512_mask_storeu_epi16(pr[k] + j, words_below(cols2 - j),
                                             bits);
            }
        }
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
#pragma GCC unroll 2
            for (int h = 0; h < K / 2; h++)
                acc[h] = _mm512_add_ps(
                    acc[h], _mm512_shuffle_f32x4(q[c * K + 2 * h],
                                                 q[c * K + 2 * h + 1], 0x44));
#pragma GCC unroll 2
            for (int h = 0; h < K / 2; h++)
                acc[h] = _mm512_add_ps(
                    acc[h], _mm512_shuffle_f32x4(q[c * K + 2 * h],
                                                 q[c * K + 2 * h + 1], 0xee));
        }
    }
#pragma GCC unroll 2
    for (int h = 0; h < K / 2; h++) {
        sum[2 * h] = reduce_sum8(_mm512_castps512_ps256(acc[h]));
        sum[2 * h + 1] = reduce_sum8(_mm256_castpd_ps(
            _mm512_extractf64x4_pd(_mm512_castps_pd(acc[h]), 1)));
    }
}

/* softmax_rows_bf16 of simd/kernels.h: p_j rounded to bf16 (the exponential
 * is at least e^-38, so no flush) written straight to p's row; no pointer
 * may be NULL; 1 <= valid[i] <= cols.  Rows go by 16: their maxima first
 * (independent, so their reductions overlap), then their probabilities two
 * rows at a time, then the 16 rows' a, l, m and alpha in the lanes of one
 * vector (the same operations as one row at a time). */
static inline __attribute__((always_inline)) void
softmax_bf16_rows(int rows, int cols, const int *valid, float scale,
                  const float *s, int lds, float *m, float *l, float *alpha,
                  uint16_t *p, int ldp, const int cvtne)
{
    const __m512 emin = _mm512_set1_ps(STEM_EXPB_MIN);
    const int cols2 = (cols + 1) & ~1;
    float mnew16[16] __attribute__((aligned(64))) = {0};
    float sum16[16] __attribute__((aligned(64))) = {0};
    for (int i0 = 0; i0 < rows; i0 += 16) {
        const int nb = rows - i0 < 16 ? rows - i0 : 16;
        max_scaled16(nb, s + (size_t)i0 * lds, lds, valid + i0, scale, m + i0,
                     mnew16);
        int b = 0;
        for (; b + 4 <= nb; b += 4) {
            const int r[4] = {i0 + b, i0 + b + 1, i0 + b + 2, i0 + b + 3};
            prob_rows(4, cols2, valid, scale, s, lds, mnew16 + b, p, ldp, r,
                      sum16 + b, cvtne);
        }
        for (; b < nb; b += 2) { /* a last odd row runs as its own pair */
            const int b1 = b + 1 < nb ? b + 1 : b;
            const int r[2] = {i0 + b, i0 + b1};
            const float mm[2] = {mnew16[b], mnew16[b1]};
            float two[2];
            prob_rows(2, cols2, valid, scale, s, lds, mm, p, ldp, r, two,
                      cvtne);
            sum16[b] = two[0];
            sum16[b1] = two[1];
        }
        /* a = e_b(m - mnew); l = l * a + sum (two roundings) */
        const __mmask16 lm = lanes_below(nb);
        const __m512 mo = _mm512_maskz_loadu_ps(lm, m + i0);
        const __m512 mv = _mm512_load_ps(mnew16);
        const __m512 ya = _mm512_sub_ps(mo, mv);
        const __mmask16 ka = _mm512_mask_cmp_ps_mask(lm, ya, emin, _CMP_GE_OQ);
        __m512 a;
        expb16(1, &ya, &ka, &a);
        __m512 li = _mm512_mul_ps(_mm512_maskz_loadu_ps(lm, l + i0), a);
        li = _mm512_add_ps(li, _mm512_load_ps(sum16));
        _mm512_mask_storeu_ps(l + i0, lm, li);
        _mm512_mask_storeu_ps(m + i0, lm, mv);
        _mm512_mask_storeu_ps(alpha + i0, lm, a);
    }
}

void stem_bf16_softmax_rows__avx512_16(int rows, int cols, const int *valid,
                                       float scale, const float *s, int lds,
                                       float *m, float *l, float *alpha,
                                       uint16_t *p, int ldp)
{
    softmax_bf16_rows(rows, cols, valid, scale, s, lds, m, l, alpha, p, ldp, 0);
}

/* The same on a CPU with AVX512-BF16 (the AMX table's). */
void stem_bf16_softmax_rows__avx512bf16_16(int rows, int cols,
                                           const int *valid, float scale,
                                           const float *s, int lds, float *m,
                                           float *l, float *alpha,
                                           uint16_t *p, int ldp)
{
    softmax_bf16_rows(rows, cols, valid, scale, s, lds, m, l, alpha, p, ldp, 1);
}
