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

static inline __mmask16 lanes_below(int r)
{
    if (r <= 0)
        return 0;
    if (r >= 16)
        return 0xffff;
    return (__mmask16)((1u << r) - 1u);
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

/* e_b(y) of simd/expb.h on 16 lanes, zero where keep is clear; keep must
 * clear every lane with y < STEM_EXPB_MIN.  rint(t) comes from adding and
 * subtracting 1.5 * 2^23 (exact for |t| < 2^22, nearest, ties to even),
 * and the low bits of the sum shifted by 23 are n * 2^23 modulo 2^32,
 * which is all the final integer add needs. */
static inline __m512 expb16(__m512 y, __mmask16 keep)
{
    const __m512 magic = _mm512_set1_ps(0x1.8p23f);
    __m512 tm = _mm512_add_ps(_mm512_mul_ps(y, _mm512_set1_ps(STEM_EXPB_LOG2E)),
                              magic);
    __m512 n = _mm512_sub_ps(tm, magic);
    __m512 r = _mm512_fmadd_ps(n, _mm512_set1_ps(-STEM_EXPB_LN2_HI), y);
    r = _mm512_fmadd_ps(n, _mm512_set1_ps(-STEM_EXPB_LN2_LO), r);
    __m512 u = _mm512_set1_ps(STEM_EXPB_C7);
    u = _mm512_fmadd_ps(u, r, _mm512_set1_ps(STEM_EXPB_C6));
    u = _mm512_fmadd_ps(u, r, _mm512_set1_ps(STEM_EXPB_C5));
    u = _mm512_fmadd_ps(u, r, _mm512_set1_ps(STEM_EXPB_C4));
    u = _mm512_fmadd_ps(u, r, _mm512_set1_ps(STEM_EXPB_C3));
    u = _mm512_fmadd_ps(u, r, _mm512_set1_ps(STEM_EXPB_C2));
    u = _mm512_fmadd_ps(u, r, _mm512_set1_ps(1.0f));
    u = _mm512_fmadd_ps(u, r, _mm512_set1_ps(1.0f));
    __m512i e = _mm512_slli_epi32(_mm512_castps_si512(tm), 23);
    return _mm512_castsi512_ps(
        _mm512_maskz_add_epi32(keep, _mm512_castps_si512(u), e));
}

/* The maximum of m0 and x[j] * scale, j < n (x not written).  scale > 0
 * and rounding is monotonic, so the largest product is the product of the
 * largest x[j]: one max per chunk, one multiply per row.  A zero maximum
 * takes the scalar twin's first-wins sign. */
static float max_scaled(const float *x, int n, float scale, float m0)
{
    __m512 vmax = _mm512_set1_ps(-INFINITY);
    for (int j = 0; j < n; j += 16) {
        __mmask16 mk = lanes_below(n - j);
        vmax = _mm512_mask_max_ps(vmax, mk, _mm512_maskz_loadu_ps(mk, x + j),
                                  vmax);
    }
    float mx = _mm512_reduce_max_ps(vmax) * scale;
    if (!(mx > m0))
        mx = m0;
    if (mx == 0.0f) {
        mx = m0;
        for (int t = 0; t < n; t++)
            if (x[t] * scale > mx)
                mx = x[t] * scale;
    }
    return mx;
}

/* bf16 bits of 16 floats that are 0 or normal and below 2^128, nearest,
 * ties to even: with integer adds, or (cvtne, a compile-time constant)
 * with AVX512-BF16's VCVTNEPS2BF16, which rounds the same way on such
 * values (it only differs on subnormals, which it reads as zero, and NaNs).
 * The instruction is written as assembly so that this file needs no
 * AVX512-BF16 flag; only the cvtne instance below contains it. */
static inline __attribute__((always_inline)) __m256i bf16_bits16(__m512 q,
                                                                 const int cvtne)
{
    if (cvtne) {
        __m256i b;
        __asm__("vcvtneps2bf16 %1, %0" : "=v"(b) : "v"(q));
        return b;
    }
    __m512i u = _mm512_castps_si512(q);
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16),
                                   _mm512_set1_epi32(1));
    u = _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), lsb));
    return _mm512_cvtepi32_epi16(_mm512_srli_epi32(u, 16));
}

/* softmax_rows_bf16 of simd/kernels.h: p_j rounded to bf16 (the exponential
 * is at least e^-38, so no flush) written straight to p's row; no pointer
 * may be NULL; 1 <= valid[i] <= cols. */
static inline __attribute__((always_inline)) void
softmax_bf16_rows(int rows, int cols, const int *valid, float scale,
                  const float *s, int lds, float *m, float *l, float *alpha,
                  uint16_t *p, int ldp, const int cvtne)
{
    const __m512 emin = _mm512_set1_ps(STEM_EXPB_MIN);
    const __m512 vs = _mm512_set1_ps(scale);
    const int cols2 = (cols + 1) & ~1;
    /* rows go by 16: each row's maximum and sum first, then the 16 rows'
     * a, l, m and alpha in the lanes of one vector (the same operations
     * as one row at a time) */
    float mnew16[16] __attribute__((aligned(64))) = {0};
    float sum16[16] __attribute__((aligned(64))) = {0};
    for (int i0 = 0; i0 < rows; i0 += 16) {
        const int nb = rows - i0 < 16 ? rows - i0 : 16;
        for (int b = 0; b < nb; b++) {
            const int i = i0 + b;
            const float *x = s + (size_t)i * lds;
            uint16_t *pi = p + (size_t)i * ldp;
            const int n = valid[i];
            const float mnew = max_scaled(x, n, scale, m[i]);
            const __m512 vm = _mm512_set1_ps(mnew);
            __m256 acc = _mm256_setzero_ps();
            for (int j = 0; j < cols2; j += 16) {
                /* full chunks (the common case) load and store unmasked */
                const int full = j + 16 <= n;
                __mmask16 mk = full ? (__mmask16)0xffff : lanes_below(n - j);
                __m512 y = _mm512_sub_ps(
                    _mm512_mul_ps(full ? _mm512_loadu_ps(x + j)
                                       : _mm512_maskz_loadu_ps(mk, x + j), vs),
                    vm);
                __m512 q = expb16(y, _mm512_mask_cmp_ps_mask(mk, y, emin,
                                                             _CMP_GE_OQ));
                acc = _mm256_add_ps(acc, _mm512_castps512_ps256(q));
                acc = _mm256_add_ps(acc, _mm256_castpd_ps(_mm512_extractf64x4_pd(
                                             _mm512_castps_pd(q), 1)));
                __m256i bits = bf16_bits16(q, cvtne);
                if (j + 16 <= cols2)
                    _mm256_storeu_si256((__m256i *)(pi + j), bits);
                else
                    _mm256_mask_storeu_epi16(pi + j, lanes_below(cols2 - j), bits);
            }
            mnew16[b] = mnew;
            sum16[b] = reduce_sum8(acc);
        }
        /* a = e_b(m - mnew); l = l * a + sum (two roundings) */
        const __mmask16 lm = lanes_below(nb);
        const __m512 mo = _mm512_maskz_loadu_ps(lm, m + i0);
        const __m512 mv = _mm512_load_ps(mnew16);
        const __m512 ya = _mm512_sub_ps(mo, mv);
        const __m512 a = expb16(ya, _mm512_mask_cmp_ps_mask(lm, ya, emin,
                                                            _CMP_GE_OQ));
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
