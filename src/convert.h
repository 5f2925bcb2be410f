/*
 * convert.h - bf16 and IEEE half conversions, inline, for the row loaders
 * (rows.c) and the exported stem_bf16_to_f32 & co. (dtype.c).  Widening
 * is exact; narrowing rounds to nearest even, overflow gives Inf and a
 * NaN stays a (quiet) NaN.
 */
#ifndef STEM_CONVERT_H
#define STEM_CONVERT_H

#include <stdint.h>
#include <string.h>

static inline uint32_t stem_f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static inline float stem_bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* bf16 bits to float (exact). */
static inline float stem_bf16_bits_f32(uint16_t h)
{
    return stem_bits_f32((uint32_t)h << 16);
}

/* float to bf16 bits. */
static inline uint16_t stem_f32_bf16_bits(float f)
{
    uint32_t u = stem_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x0040u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* IEEE half bits to float (exact, subnormals included). */
static inline float stem_f16_bits_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    if (exp == 0x1f)
        return stem_bits_f32(sign | 0x7f800000u | (man << 13));
    if (exp == 0) {
        /* man * 2^-24, exact in float */
        float v = (float)man * 5.9604644775390625e-8f;
        return sign ? -v : v;
    }
    return stem_bits_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

/* float to IEEE half bits. */
static inline uint16_t stem_f32_f16_bits(float f)
{
    uint32_t u = stem_f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u)
        return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
    if (a >= 0x477ff000u)            /* >= 65520 rounds to Inf */
        return (uint16_t)(sign | 0x7c00u);
    if (a < 0x38800000u) {           /* below 2^-14: subnormal or zero */
        if (a < 0x33000000u)         /* <= 2^-25 rounds to 0 (tie to even) */
            return sign;
        uint32_t e = a >> 23;        /* 102 .. 112 */
        uint32_t m = (a & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126u - e;   /* result = m >> shift, 14 .. 24 */
        uint32_t r = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1u);
        uint32_t half = 1u << (shift - 1u);
        if (rem > half || (rem == half && (r & 1u)))
            r++;
        return (uint16_t)(sign | r);
    }
    uint32_t r = a - 0x38000000u;    /* rebias exponent 127 -> 15 */
    r += 0xfffu + ((r >> 13) & 1u);
    return (uint16_t)(sign | (r >> 13));
}

#endif /* STEM_CONVERT_H */
