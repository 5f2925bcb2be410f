/*
 * ref_math.c - the scalar reference functions every kernel table shares:
 * the f32 mode's exponential and logarithm (SLEEF's FMA scalar variants,
 * whose bits equal SLEEF's AVX2/AVX-512/NEON expf_u10 on [-104, 0]) and the
 * bf16 mode's e_b (simd/expb.h).  Declared in simd/kernels.h.
 */
#include <sleef.h>

#include "expb.h"
#include "kernels.h"

/* sleef.h declares the FMA scalar variants only when the compiler itself
 * targets FMA (FP_FAST_FMA); the library calls them from portable code and
 * checks for FMA at run time, so they are declared here. */
float Sleef_expf1_u10purecfma(float);
float Sleef_logf1_u10purecfma(float);

float stem_expf_ref(float x)
{
    if (!(x >= STEM_EXP_MIN))
        return 0.0f;
    return Sleef_expf1_u10purecfma(x);
}

float stem_expb_ref(float x)
{
    return stem_expb_scalar(x);
}

float stem_logf_ref(float x)
{
    return Sleef_logf1_u10purecfma(x);
}
