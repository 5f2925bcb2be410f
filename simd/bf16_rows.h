/*
 * bf16_rows.h - the loop of bf16_rows (simd/kernels.h), written once: the
 * scalar twin and every ISA table compile it (the ISAs with their vector
 * flags; the loop is branch-free so that it vectorizes).
 */
#ifndef STEM_BF16_ROWS_H
#define STEM_BF16_ROWS_H

#include <stddef.h>
#include <stdint.h>

/* The bits of a float, allowed to alias it. */
typedef uint32_t __attribute__((may_alias)) stem_bf16_f32_bits;

/* stem_bf16_round on float bits, widened back: the bf16 value's float bits
 * (branch-free, so that the row loop below vectorizes). */
static inline uint32_t stem_bf16_round_bits(uint32_t u)
{
    u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    uint32_t small = ((u >> 23) & 0xffu) < 127u - 56u;
    return small ? (u & 0x80000000u) : u;
}

/* stem_bf16_round of simd/kernels.h, inline: bf16 bits of finite v. */
static inline uint16_t stem_bf16_round_inline(float v)
{
    stem_bf16_f32_bits u = *(const stem_bf16_f32_bits *)&v;
    return (uint16_t)(stem_bf16_round_bits(u) >> 16);
}

/* bf16_rows of simd/kernels.h: y row i = bf16 of x row i (rows layout),
 * n rounded up to even with a zero. */
static inline void stem_bf16_rows_loop(int rows, int n, const float *x,
                                       int ldx, uint16_t *y, int ldy)
{
    for (int i = 0; i < rows; i++) {
        const stem_bf16_f32_bits *xi = (const stem_bf16_f32_bits *)(x + (size_t)i * ldx);
        uint16_t *yi = y + (size_t)i * ldy;
#pragma omp simd
        for (int t = 0; t < n; t++)
            yi[t] = (uint16_t)(stem_bf16_round_bits(xi[t]) >> 16);
        if (n & 1)
            yi[n] = 0;
    }
}

#endif /* STEM_BF16_ROWS_H */
