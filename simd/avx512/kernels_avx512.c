/*
 * kernels_avx512.c - the AVX-512 kernel table.
 */
#include "kernels.h"
#include "kernels_avx512.h"
#include "bf16_rows.h"

/* bf16_rows of simd/kernels.h, vectorized by the compiler; the scalar twin
 * runs the same loop. */
void stem_bf16_rows__avx512(int rows, int n, const float *x, int ldx,
                          uint16_t *y, int ldy)
{
    stem_bf16_rows_loop(rows, n, x, ldx, y, ldy);
}

const stem_kernels stem_kernels_avx512 = {
    .isa = STEM_ISA_AVX512,
    .qk_tile = stem_f32_qk_tile__avx512_12x32,
    .softmax_rows = stem_f32_softmax_rows__avx512_16,
    .pv_tile = stem_f32_pv_tile__avx512_12x32,
    .sqnorm_rows = stem_f32_sqnorm_rows__avx512_8,
    .group_sum = stem_f32_group_sum__avx512_64,
    .bf16_rows = stem_bf16_rows__avx512,
    .softmax_rows_bf16 = stem_bf16_softmax_rows__avx512_16,
    .qk_tile_bf16 = stem_bf16_qk_tile__avx512_12x32,
    .pv_tile_bf16 = stem_bf16_pv_tile__avx512_12x32,
};
