/*
 * norms_avx2.c - sqnorm_rows (8 fused lanes, canonical reduction) and
 * group_sum (column-parallel sums in group order) on AVX2.
 */
#include <immintrin.h>
#include <stddef.h>

#include "kernels.h"
#include "kernels_avx2.h"

static inline __m256i lanes_below(int r)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(r),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* sqnorm_rows of simd/kernels.h: out[t] = sqsum8 of row t; no pointer may
 * be NULL. */
void stem_f32_sqnorm_rows__avx2_8(int n, int d, const float *x, int ldx,
                                  float *out)
{
    const __m256i tail = lanes_below(d & 7);
    for (int t = 0; t < n; t++) {
        const float *xt = x + (size_t)t * ldx;
        __m256 a = _mm256_setzero_ps();
        int c = 0;
        for (; c + 8 <= d; c += 8) {
            __m256 v = _mm256_loadu_ps(xt + c);
            a = _mm256_fmadd_ps(v, v, a);
        }
        if (c < d) {
            /* absent lanes add fmaf(0, 0, lane) = lane (lanes are >= +0) */
            __m256 v = _mm256_maskload_ps(xt + c, tail);
            a = _mm256_fmadd_ps(v, v, a);
        }
        __m128 s = _mm_add_ps(_mm256_castps256_ps128(a),
                              _mm256_extractf128_ps(a, 1));
        __m128 u = _mm_add_ps(s, _mm_movehl_ps(s, s));
        out[t] = _mm_cvtss_f32(_mm_add_ss(u, _mm_movehdup_ps(u)));
    }
}

/* group_sum of simd/kernels.h: out[j*d + c] = sum over groups in order;
 * no pointer may be NULL; out must not overlap x. */
void stem_f32_group_sum__avx2_32(int groups, int stride, int d,
                                 const float *x, int ldx, float *out)
{
    for (int j = 0; j < stride; j++) {
        float *oj = out + (size_t)j * d;
        int c = 0;
        for (; c + 32 <= d; c += 32) {
            __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
            for (int a = 0; a < groups; a++) {
                const float *xr = x + (size_t)(a * stride + j) * ldx + c;
                s0 = _mm256_add_ps(s0, _mm256_loadu_ps(xr));
                s1 = _mm256_add_ps(s1, _mm256_loadu_ps(xr + 8));
                s2 = _mm256_add_ps(s2, _mm256_loadu_ps(xr + 16));
                s3 = _mm256_add_ps(s3, _mm256_loadu_ps(xr + 24));
            }
            _mm256_storeu_ps(oj + c, s0);
            _mm256_storeu_ps(oj + c + 8, s1);
            _mm256_storeu_ps(oj + c + 16, s2);
            _mm256_storeu_ps(oj + c + 24, s3);
        }
        for (; c < d; c += 8) {
            __m256i mk = lanes_below(d - c);
            __m256 s0 = _mm256_setzero_ps();
            for (int a = 0; a < groups; a++) {
                const float *xr = x + (size_t)(a * stride + j) * ldx + c;
                s0 = _mm256_add_ps(s0, _mm256_maskload_ps(xr, mk));
            }
            _mm256_maskstore_ps(oj + c, mk, s0);
        }
    }
}
