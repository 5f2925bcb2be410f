/*
 * norms_neon.c - sqnorm_rows (8 fused lanes as two float32x4, canonical
 * reduction) and group_sum (16 columns per pass, sums in group order) on
 * AArch64 Advanced SIMD.
 */
#include <arm_neon.h>
#include <stddef.h>

#include "kernels.h"
#include "kernels_neon.h"

/* sqnorm_rows of simd/kernels.h: out[t] = sqsum8 of row t; no pointer may
 * be NULL. */
void stem_f32_sqnorm_rows__neon_8(int n, int d, const float *x, int ldx,
                                  float *out)
{
    for (int t = 0; t < n; t++) {
        const float *xt = x + (size_t)t * ldx;
        float32x4_t lo = vdupq_n_f32(0.0f), hi = lo;
        int c = 0;
        for (; c + 8 <= d; c += 8) {
            float32x4_t v0 = vld1q_f32(xt + c), v1 = vld1q_f32(xt + c + 4);
            lo = vfmaq_f32(lo, v0, v0);
            hi = vfmaq_f32(hi, v1, v1);
        }
        if (c < d) {
            /* absent lanes add fmaf(0, 0, lane) = lane (lanes are >= +0) */
            float tail[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            for (int u = 0; c + u < d; u++)
                tail[u] = xt[c + u];
            float32x4_t v0 = vld1q_f32(tail), v1 = vld1q_f32(tail + 4);
            lo = vfmaq_f32(lo, v0, v0);
            hi = vfmaq_f32(hi, v1, v1);
        }
        float32x4_t sv = vaddq_f32(lo, hi);
        float32x2_t h = vadd_f32(vget_low_f32(sv), vget_high_f32(sv));
        out[t] = vget_lane_f32(h, 0) + vget_lane_f32(h, 1);
    }
}

/* group_sum of simd/kernels.h: out[j*d + c] = sum over groups in order;
 * no pointer may be NULL; out must not overlap x. */
void stem_f32_group_sum__neon_16(int groups, int stride, int d,
                                 const float *x, int ldx, float *out)
{
    for (int j = 0; j < stride; j++) {
        float *oj = out + (size_t)j * d;
        int c = 0;
        for (; c + 16 <= d; c += 16) {
            float32x4_t s0 = vdupq_n_f32(0.0f), s1 = s0, s2 = s0, s3 = s0;
            for (int a = 0; a < groups; a++) {
                const float *xr = x + (size_t)(a * stride + j) * ldx + c;
                s0 = vaddq_f32(s0, vld1q_f32(xr));
                s1 = vaddq_f32(s1, vld1q_f32(xr + 4));
                s2 = vaddq_f32(s2, vld1q_f32(xr + 8));
                s3 = vaddq_f32(s3, vld1q_f32(xr + 12));
            }
            vst1q_f32(oj + c, s0);
            vst1q_f32(oj + c + 4, s1);
            vst1q_f32(oj + c + 8, s2);
            vst1q_f32(oj + c + 12, s3);
        }
        for (; c < d; c++) {
            float acc = 0.0f;
            for (int a = 0; a < groups; a++)
                acc = acc + x[(size_t)(a * stride + j) * ldx + c];
            oj[c] = acc;
        }
    }
}
