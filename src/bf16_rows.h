/*
 * bf16_rows.h - the loop of bf16_rows (src/kernels.h), written once: the
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

/* stem_bf16_round of src/kernels.h, inline: bf16 bits of finite v. */
static inline uint16_t stem_bf16_round_inline(float v)
{
    stem_bf16_f32_bits u = *(const stem_bf16_f32_bits *)&v;
    return (uint16_t)(stem_bf16_round_bits(u) >> 16);
}

/* bf16_rows of src/kernels.h: y row i = bf16 of x row i, pairs swapped,
 * n rounded up to even with a zero; x and y may be the same rows. */
static inline void stem_bf16_rows_loop(int rows, int n, const float *x,
                                       int ldx, float *y, int ldy)
{
    const int pairs = n / 2;
    for (int i = 0; i < rows; i++) {
        const stem_bf16_f32_bits *xi = (const stem_bf16_f32_bits *)(x + (size_t)i * ldx);
        stem_bf16_f32_bits *yi = (stem_bf16_f32_bits *)(y + (size_t)i * ldy);
#pragma omp simd
        for (int u = 0; u < pairs; u++) {
            uint32_t x0 = xi[2 * u], x1 = xi[2 * u + 1];
            yi[2 * u] = stem_bf16_round_bits(x1);
            yi[2 * u + 1] = stem_bf16_round_bits(x0);
        }
        if (n & 1) { /* the last pair's odd element is 0 */
            uint32_t x0 = xi[n - 1];
            yi[n - 1] = 0;
            yi[n] = stem_bf16_round_bits(x0);
        }
    }
}

#endif /* STEM_BF16_ROWS_H */
