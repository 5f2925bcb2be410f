/*
 * norms_avx512.c - sqnorm_rows (8 fused lanes in ymm registers, the
 * canonical lane grouping, masked tails) and group_sum (64 columns per
 * pass, sums in group order) with AVX-512.
 */
#include <immintrin.h>
#include <stddef.h>

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

/* sqnorm_rows of simd/kernels.h: out[t] = sqsum8 of row t; no pointer may
 * be NULL. */
void stem_f32_sqnorm_rows__avx512_8(int n, int d, const float *x, int ldx,
                                    float *out)
{
    const __mmask8 tail = (__mmask8)lanes_below(d & 7);
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
            __m256 v = _mm256_maskz_loadu_ps(tail, xt + c);
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
void stem_f32_group_sum__avx512_64(int groups, int stride, int d,
                                   const float *x, int ldx, float *out)
{
    for (int j = 0; j < stride; j++) {
        float *oj = out + (size_t)j * d;
        int c = 0;
        for (; c + 64 <= d; c += 64) {
            __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
            for (int a = 0; a < groups; a++) {
                const float *xr = x + (size_t)(a * stride + j) * ldx + c;
                s0 = _mm512_add_ps(s0, _mm512_loadu_ps(xr));
                s1 = _mm512_add_ps(s1, _mm512_loadu_ps(xr + 16));
                s2 = _mm512_add_ps(s2, _mm512_loadu_ps(xr + 32));
                s3 = _mm512_add_ps(s3, _mm512_loadu_ps(xr + 48));
            }
            _mm512_storeu_ps(oj + c, s0);
            _mm512_storeu_ps(oj + c + 16, s1);
            _mm512_storeu_ps(oj + c + 32, s2);
            _mm512_storeu_ps(oj + c + 48, s3);
        }
        for (; c < d; c += 16) {
            __mmask16 mk = lanes_below(d - c);
            __m512 s0 = _mm512_setzero_ps();
            for (int a = 0; a < groups; a++) {
                const float *xr = x + (size_t)(a * stride + j) * ldx + c;
                s0 = _mm512_add_ps(s0, _mm512_maskz_loadu_ps(mk, xr));
            }
            _mm512_mask_storeu_ps(oj + c, mk, s0);
        }
    }
}
