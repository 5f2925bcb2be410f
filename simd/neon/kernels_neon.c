/*
 * kernels_neon.c - the AArch64 Advanced SIMD kernel table.
 */
#include "kernels.h"
#include "kernels_neon.h"
#include "bf16_rows.h"

/* bf16_rows of simd/kernels.h, vectorized by the compiler; the scalar twin
 * runs the same loop. */
void stem_bf16_rows__neon(int rows, int n, const float *x, int ldx,
                          uint16_t *y, int ldy)
{
    stem_bf16_rows_loop(rows, n, x, ldx, y, ldy);
}

const stem_kernels stem_kernels_neon = {
    .isa = STEM_ISA_NEON,
    .qk_tile = stem_f32_qk_tile__neon_8x8,
    .softmax_rows = stem_f32_softmax_rows__neon_8,
    .pv_tile = stem_f32_pv_tile__neon_8x8,
    .sqnorm_rows = stem_f32_sqnorm_rows__neon_8,
    .group_sum = stem_f32_group_sum__neon_16,
    .bf16_rows = stem_bf16_rows__neon,
    .softmax_rows_bf16 = stem_bf16_softmax_rows__neon_8,
    .qk_tile_bf16 = stem_bf16_qk_tile__neon_8x8,
    .pv_tile_bf16 = stem_bf16_pv_tile__neon_8x8,
};
