/*
 * expb.h - e_b(x), the exponential of the bf16 compute mode's softmax, as a
 * fixed sequence of correctly rounded float32 operations (multiply, round
 * to nearest even, fused multiply-add, integer add on the bits).  Every ISA
 * runs the same sequence with these constants, so the result is the same
 * bits everywhere without a vector math library in the loop (the f32 mode
 * keeps SLEEF's u10 expf).
 *
 *   e_b(x) = 0                                  if !(x >= STEM_EXPB_MIN)
 *   t = x * LOG2E;  n = rint(t)                 (nearest, ties to even)
 *   r = fmaf(n, -LN2_HI, x);  r = fmaf(n, -LN2_LO, r)     (Cody-Waite)
 *   u = C7;  u = fmaf(u, r, C_k) for k = 6, 5, 4, 3, 2, 1, 0
 *   e_b(x) = the float whose bits are bits(u) + n * 2^23
 *
 * C_k is 1/k! rounded to float (the Taylor series of e^r, |r| <= 0.35, whose
 * truncation is below 2^-28 of the result); the last step multiplies by 2^n
 * exactly, since n >= -55 keeps the result normal.  tests/test_kernels.c
 * measures the distance to exp in double on every 97th float of
 * [STEM_EXPB_MIN, 0] (largest: 7.3e-8 relative); e_b(0) = 1 exactly.
 *
 * Why the cut at -38: e^-38 = 3.1e-17 is above 2^-56, the smallest
 * magnitude that bf16_rows keeps, so every nonzero probability survives its
 * rounding to bf16 unchanged in kind (no flush), and the mass dropped is at
 * most N e^-38 of a row sum that is at least 1: 3.3e-11 relative for a
 * million keys, far below float32's 6e-8.
 */
#ifndef STEM_EXPB_H
#define STEM_EXPB_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#define STEM_EXPB_MIN (-38.0f)
#define STEM_EXPB_LOG2E 0x1.715476p+0f  /* log2(e) */
#define STEM_EXPB_LN2_HI 0x1.62e4p-1f   /* ln 2, 15 bits: n * LN2_HI exact */
#define STEM_EXPB_LN2_LO 0x1.7f7d1cp-20f /* ln 2 - LN2_HI */
#define STEM_EXPB_C7 0x1.a01a02p-13f    /* 1/5040 */
#define STEM_EXPB_C6 0x1.6c16c2p-10f    /* 1/720 */
#define STEM_EXPB_C5 0x1.111112p-7f     /* 1/120 */
#define STEM_EXPB_C4 0x1.555556p-5f     /* 1/24 */
#define STEM_EXPB_C3 0x1.555556p-3f     /* 1/6 */
#define STEM_EXPB_C2 0x1p-1f            /* 1/2 */

/* e_b(x) above, one float at a time: the scalar twin of every ISA's lanes. */
static inline float stem_expb_scalar(float x)
{
    if (!(x >= STEM_EXPB_MIN))
        return 0.0f;
    const float n = rintf(x * STEM_EXPB_LOG2E);
    float r = fmaf(n, -STEM_EXPB_LN2_HI, x);
    r = fmaf(n, -STEM_EXPB_LN2_LO, r);
    float u = STEM_EXPB_C7;
    u = fmaf(u, r, STEM_EXPB_C6);
    u = fmaf(u, r, STEM_EXPB_C5);
    u = fmaf(u, r, STEM_EXPB_C4);
    u = fmaf(u, r, STEM_EXPB_C3);
    u = fmaf(u, r, STEM_EXPB_C2);
    u = fmaf(u, r, 1.0f);
    u = fmaf(u, r, 1.0f);
    uint32_t bits;
    memcpy(&bits, &u, sizeof bits);
    bits += (uint32_t)(int32_t)n << 23;
    memcpy(&u, &bits, sizeof u);
    return u;
}

#endif /* STEM_EXPB_H */
