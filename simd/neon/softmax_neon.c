/*
 * softmax_neon.c - softmax_rows on AArch64 Advanced SIMD: SLEEF expf over
 * 4 lanes; the canonical sum8 keeps lanes 0-3 and 4-7 in two float32x4
 * accumulators, each chunk of 8 columns starting at a multiple of 8.
 */
#include <arm_neon.h>
#include <stddef.h>

#include <sleef.h>

#include "kernels.h"
#include "kernels_neon.h"
#include "expb.h"

/* e(y) of the contract: 0 where !(y >= STEM_EXP_MIN), SLEEF expf elsewhere. */
static inline float32x4_t exp_rule(float32x4_t y)
{
    uint32x4_t keep = vcgeq_f32(y, vdupq_n_f32(STEM_EXP_MIN));
    return vreinterpretq_f32_u32(
        vandq_u32(keep, vreinterpretq_u32_f32(Sleef_expf4_u10advsimd(y))));
}

/* y > mx ? y : mx per lane, the scalar twin's comparison. */
static inline float32x4_t max_first(float32x4_t y, float32x4_t mx)
{
    return vbslq_f32(vcgtq_f32(y, mx), y, mx);
}

/*
 * x[j] *= scale for j < n (stored) and the maximum of m0 and those values.
 * Only the sign of a zero maximum depends on the comparison order; then the
 * scalar twin's first-wins scan decides it.
 */
static float scale_and_max(float *x, int n, float scale, float m0)
{
    float32x4_t vmax = vdupq_n_f32(m0);
    int j = 0;
    for (; j + 4 <= n; j += 4) {
        float32x4_t y = vmulq_n_f32(vld1q_f32(x + j), scale);
        vst1q_f32(x + j, y);
        vmax = max_first(y, vmax);
    }
    float mx = vmaxvq_f32(vmax);
    for (; j < n; j++) {
        x[j] = x[j] * scale;
        if (x[j] > mx)
            mx = x[j];
    }
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
void stem_f32_softmax_rows__neon_8(int rows, int cols, const int *valid,
                                   float scale, float *s, int lds, float *m,
                                   float *l, float *alpha)
{
    for (int i = 0; i < rows; i++) {
        float *x = s + (size_t)i * lds;
        const int n = valid[i];
        const float mnew = scale_and_max(x, n, scale, m[i]);
        const float32x4_t vm = vdupq_n_f32(mnew);
        float32x4_t lo = vdupq_n_f32(0.0f), hi = lo;
        int j = 0;
        for (; j + 8 <= n; j += 8) {
            float32x4_t p0 = exp_rule(vsubq_f32(vld1q_f32(x + j), vm));
            float32x4_t p1 = exp_rule(vsubq_f32(vld1q_f32(x + j + 4), vm));
            vst1q_f32(x + j, p0);
            vst1q_f32(x + j + 4, p1);
            lo = vaddq_f32(lo, p0);
            hi = vaddq_f32(hi, p1);
        }
        if (j < n) {
            /* the last partial chunk through a local copy; lanes >= n are 0 */
            float t[8];
            int r = n - j;
            for (int u = 0; u < 8; u++)
                t[u] = u < r ? x[j + u] : mnew;
            float32x4_t p0 = exp_rule(vsubq_f32(vld1q_f32(t), vm));
            float32x4_t p1 = exp_rule(vsubq_f32(vld1q_f32(t + 4), vm));
            vst1q_f32(t, p0);
            vst1q_f32(t + 4, p1);
            for (int u = r; u < 8; u++)
                t[u] = 0.0f;
            for (int u = 0; u < 8 && j + u < cols; u++)
                x[j + u] = t[u];
            lo = vaddq_f32(lo, vld1q_f32(t));
            hi = vaddq_f32(hi, vld1q_f32(t + 4));
            j += 8;
        }
        /* the rest is zero; adding +0.0f to a lane (never -0.0f) is exact */
        for (; j < cols; j++)
            x[j] = 0.0f;

        /* ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7)) */
        float32x4_t sv = vaddq_f32(lo, hi);
        float32x2_t h = vadd_f32(vget_low_f32(sv), vget_high_f32(sv));
        float sum = vget_lane_f32(h, 0) + vget_lane_f32(h, 1);

        const float a = stem_expf_ref(m[i] - mnew);
        float li = l[i] * a;
        li = li + sum;
        l[i] = li;
        m[i] = mnew;
        alpha[i] = a;
    }
}

/* ---- the bf16 mode: e_b of simd/expb.h and probabilities rounded ------- */

/* e_b(y) of simd/expb.h on 4 lanes, 0 where !(y >= STEM_EXPB_MIN). */
static inline float32x4_t expb4(float32x4_t y)
{
    float32x4_t n = vrndnq_f32(vmulq_n_f32(y, STEM_EXPB_LOG2E));
    float32x4_t r = vfmaq_f32(y, n, vdupq_n_f32(-STEM_EXPB_LN2_HI));
    r = vfmaq_f32(r, n, vdupq_n_f32(-STEM_EXPB_LN2_LO));
    float32x4_t u = vdupq_n_f32(STEM_EXPB_C7);
    u = vfmaq_f32(vdupq_n_f32(STEM_EXPB_C6), u, r);
    u = vfmaq_f32(vdupq_n_f32(STEM_EXPB_C5), u, r);
    u = vfmaq_f32(vdupq_n_f32(STEM_EXPB_C4), u, r);
    u = vfmaq_f32(vdupq_n_f32(STEM_EXPB_C3), u, r);
    u = vfmaq_f32(vdupq_n_f32(STEM_EXPB_C2), u, r);
    u = vfmaq_f32(vdupq_n_f32(1.0f), u, r);
    u = vfmaq_f32(vdupq_n_f32(1.0f), u, r);
    int32x4_t e = vshlq_n_s32(vcvtq_s32_f32(n), 23);
    uint32x4_t q = vreinterpretq_u32_s32(
        vaddq_s32(vreinterpretq_s32_f32(u), e));
    uint32x4_t keep = vcgeq_f32(y, vdupq_n_f32(STEM_EXPB_MIN));
    return vreinterpretq_f32_u32(vandq_u32(keep, q));
}

/* bf16 bits of 4 nonnegative floats (nearest, ties to even; never below
 * STEM_BF16_MIN unless 0). */
static inline uint16x4_t bf16_of(float32x4_t q)
{
    uint32x4_t u = vreinterpretq_u32_f32(q);
    uint32x4_t lsb = vandq_u32(vshrq_n_u32(u, 16), vdupq_n_u32(1));
    u = vaddq_u32(u, vaddq_u32(vdupq_n_u32(0x7fff), lsb));
    return vshrn_n_u32(u, 16);
}

/* softmax_rows_bf16 of simd/kernels.h over chunks of 8 columns (two
 * accumulators, the canonical sum8); no pointer may be NULL. */
void stem_bf16_softmax_rows__neon_8(int rows, int cols, const int *valid,
                                    float scale, const float *s, int lds,
                                    float *m, float *l, float *alpha,
                                    uint16_t *p, int ldp)
{
    const int cols2 = (cols + 1) & ~1;
    for (int i = 0; i < rows; i++) {
        const float *x = s + (size_t)i * lds;
        uint16_t *pi = p + (size_t)i * ldp;
        const int n = valid[i];
        float32x4_t vmax = vdupq_n_f32(m[i]);
        int j = 0;
        for (; j + 4 <= n; j += 4)
            vmax = max_first(vmulq_n_f32(vld1q_f32(x + j), scale), vmax);
        float mnew = vmaxvq_f32(vmax);
        for (; j < n; j++)
            if (x[j] * scale > mnew)
                mnew = x[j] * scale;
        if (mnew == 0.0f) { /* the sign of a zero: first wins, as the twin */
            mnew = m[i];
            for (int t = 0; t < n; t++)
                if (x[t] * scale > mnew)
                    mnew = x[t] * scale;
        }
        const float32x4_t vm = vdupq_n_f32(mnew);
        float32x4_t lo = vdupq_n_f32(0.0f), hi = lo;
        for (j = 0; j < cols2; j += 8) {
            /* columns at or past n read as mnew and are zeroed below */
            float t[8];
            if (j + 8 <= n) {
                vst1q_f32(t, vld1q_f32(x + j));
                vst1q_f32(t + 4, vld1q_f32(x + j + 4));
            } else {
                for (int u = 0; u < 8; u++)
                    t[u] = j + u < n ? x[j + u] : 0.0f;
            }
            float32x4_t q0 = expb4(vsubq_f32(vmulq_n_f32(vld1q_f32(t), scale), vm));
            float32x4_t q1 = expb4(vsubq_f32(vmulq_n_f32(vld1q_f32(t + 4), scale), vm));
            if (j + 8 > n) {
                uint32x4_t i0 = {0, 1, 2, 3}, i1 = {4, 5, 6, 7};
                uint32x4_t r = vdupq_n_u32(n > j ? (uint32_t)(n - j) : 0u);
                q0 = vreinterpretq_f32_u32(vandq_u32(vcltq_u32(i0, r),
                                                     vreinterpretq_u32_f32(q0)));
                q1 = vreinterpretq_f32_u32(vandq_u32(vcltq_u32(i1, r),
                                                     vreinterpretq_u32_f32(q1)));
            }
            lo = vaddq_f32(lo, q0);
            hi = vaddq_f32(hi, q1);
            uint16x8_t b = vcombine_u16(bf16_of(q0), bf16_of(q1));
            if (j + 8 <= cols2) {
                vst1q_u16(pi + j, b);
            } else {
                uint16_t tb[8];
                vst1q_u16(tb, b);
                for (int u = 0; j + u < cols2; u++)
                    pi[j + u] = tb[u];
            }
        }
        float32x4_t sv = vaddq_f32(lo, hi);
        float32x2_t h = vadd_f32(vget_low_f32(sv), vget_high_f32(sv));
        float sum = vget_lane_f32(h, 0) + vget_lane_f32(h, 1);

        /* e_b of the running maxima's difference in lane 0 (the same bits
         * as stem_expb_ref, without its libm calls) */
        const float a = vgetq_lane_f32(expb4(vdupq_n_f32(m[i] - mnew)), 0);
        float li = l[i] * a;
        li = li + sum;
        l[i] = li;
        m[i] = mnew;
        alpha[i] = a;
    }
}
