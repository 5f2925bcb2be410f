/*
 * softmax_avx2.c - softmax_rows on AVX2: 8-lane scale, max, SLEEF expf and
 * the canonical sum8 (lane t of the accumulator is the contract's lane t
 * because every chunk of 8 starts at a column multiple of 8).
 */
#include <immintrin.h>
#include <stddef.h>

#include <sleef.h>

#include "kernels.h"
#include "kernels_avx2.h"

static inline __m256i lanes_below(int r)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(r),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7)) */
static inline float reduce_sum8(__m256 a)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a),
                          _mm256_extractf128_ps(a, 1)); /* a0+a4 .. a3+a7 */
    __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));       /* (0+2), (1+3) */
    return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}

/* e(y) of the contract: 0 where !(y >= STEM_EXP_MIN), SLEEF expf elsewhere. */
static inline __m256 exp_rule(__m256 y)
{
    __m256 keep = _mm256_cmp_ps(y, _mm256_set1_ps(STEM_EXP_MIN), _CMP_GE_OQ);
    return _mm256_and_ps(keep, Sleef_expf8_u10avx2(y));
}

/*
 * x[j] *= scale for j < n (stored) and the maximum of m0 and those values.
 * The value of a maximum does not depend on the order of comparisons except
 * for the sign of a zero; when the maximum is zero the scalar twin's
 * first-wins scan decides the sign.
 */
static float scale_and_max(float *x, int n, float scale, float m0)
{
    const __m256 vs = _mm256_set1_ps(scale);
    __m256 vmax = _mm256_set1_ps(m0);
    int j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256 y = _mm256_mul_ps(_mm256_loadu_ps(x + j), vs);
        _mm256_storeu_ps(x + j, y);
        vmax = _mm256_max_ps(y, vmax); /* y > vmax ? y : vmax */
    }
    if (j < n) {
        __m256i mk = lanes_below(n - j);
        __m256 y = _mm256_mul_ps(_mm256_maskload_ps(x + j, mk), vs);
        _mm256_maskstore_ps(x + j, mk, y);
        y = _mm256_blendv_ps(vmax, y, _mm256_castsi256_ps(mk));
        vmax = _mm256_max_ps(y, vmax);
    }
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(vmax),
                          _mm256_extractf128_ps(vmax, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    float mx = _mm_cvtss_f32(h);
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
void stem_f32_softmax_rows__avx2_8(int rows, int cols, const int *valid,
                                   float scale, float *s, int lds, float *m,
                                   float *l, float *alpha)
{
    for (int i = 0; i < rows; i++) {
        float *x = s + (size_t)i * lds;
        const int n = valid[i];
        const float mnew = scale_and_max(x, n, scale, m[i]);
        const __m256 vm = _mm256_set1_ps(mnew);
        __m256 acc = _mm256_setzero_ps();
        int j = 0;
        for (; j + 8 <= n; j += 8) {
            __m256 p = exp_rule(_mm256_sub_ps(_mm256_loadu_ps(x + j), vm));
            _mm256_storeu_ps(x + j, p);
            acc = _mm256_add_ps(acc, p);
        }
        if (j < n) {
            __m256i mk = lanes_below(n - j);
            __m256 y = _mm256_sub_ps(_mm256_maskload_ps(x + j, mk), vm);
            __m256 p = _mm256_and_ps(_mm256_castsi256_ps(mk), exp_rule(y));
            /* columns n..j+7 are zero in p, as the contract wants */
            _mm256_maskstore_ps(x + j, lanes_below(cols - j), p);
            acc = _mm256_add_ps(acc, p);
            j += 8;
        }
        /* the rest is zero; adding +0.0f to a lane (never -0.0f) is exact */
        const __m256 zero = _mm256_setzero_ps();
        for (; j + 8 <= cols; j += 8)
            _mm256_storeu_ps(x + j, zero);
        if (j < cols)
            _mm256_maskstore_ps(x + j, lanes_below(cols - j), zero);

        const float a = stem_expf_ref(m[i] - mnew);
        float li = l[i] * a;
        li = li + reduce_sum8(acc);
        l[i] = li;
        m[i] = mnew;
        alpha[i] = a;
    }
}
