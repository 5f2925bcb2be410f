/*
 * kernels_avx2.c - the AVX2+FMA kernel table.
 */
#include "kernels.h"
#include "kernels_avx2.h"
#include "bf16_rows.h"

/* bf16_rows of simd/kernels.h, vectorized by the compiler; the scalar twin
 * runs the same loop. */
void stem_bf16_rows__avx2(int rows, int n, const float *x, int ldx,
                          uint16_t *y, int ldy)
{
    stem_bf16_rows_loop(rows, n, x, ldx, y, ldy);
}

const stem_kernels stem_kernels_avx2 = {
    .isa = STEM_ISA_AVX2,
    .qk_tile = stem_f32_qk_tile__avx2_6x16,
    .softmax_rows = stem_f32_softmax_rows__avx2_8,
    .pv_tile = stem_f32_pv_tile__avx2_6x16,
    .sqnorm_rows = stem_f32_sqnorm_rows__avx2_8,
    .group_sum = stem_f32_group_sum__avx2_32,
    .bf16_rows = stem_bf16_rows__avx2,
    .softmax_rows_bf16 = stem_bf16_softmax_rows__avx2_8,
    .qk_tile_bf16 = stem_bf16_qk_tile__avx2_6x16,
    .pv_tile_bf16 = stem_bf16_pv_tile__avx2_6x16,
};
