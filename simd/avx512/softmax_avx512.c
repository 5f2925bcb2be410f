/*
 * softmax_avx512.c - softmax_rows on AVX-512: 16-lane scale, max and SLEEF
 * expf; the canonical sum8 adds the low and then the high ymm half of each
 * 16-column chunk into one 8-lane accumulator, which is exactly the
 * contract's lane order (columns j, j+8, j+16, ... go to lane j % 8).
 */
#include <immintrin.h>
#include <stddef.h>

#include <sleef.h>

#include "kernels.h"
#include "kernels_avx512.h"

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

/* softmax_rows of src/kernels.h: one online-softmax step per row, updates s,
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
