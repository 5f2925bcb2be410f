/*
 * kernels_avx512bf16.c - the AVX512-BF16 table: the AVX-512 table with the
 * bf16 mode's two products on VDPBF16PS and P rounded by VCVTNEPS2BF16
 * (same bits on softmax values); bit-exact like every table but amx.
 */
#include "kernels.h"
#include "kernels_avx512bf16.h"
#include "../avx512/kernels_avx512.h"

const stem_kernels stem_kernels_avx512bf16 = {
    .isa = STEM_ISA_AVX512BF16,
    .qk_tile = stem_f32_qk_tile__avx512_12x32,
    .softmax_rows = stem_f32_softmax_rows__avx512_16,
    .pv_tile = stem_f32_pv_tile__avx512_12x32,
    .sqnorm_rows = stem_f32_sqnorm_rows__avx512_8,
    .group_sum = stem_f32_group_sum__avx512_64,
    .bf16_rows = stem_bf16_rows__avx512,
    .softmax_rows_bf16 = stem_bf16_softmax_rows__avx512bf16_16,
    .qk_tile_bf16 = stem_bf16_qk_tile__avx512bf16_12x32,
    .pv_tile_bf16 = stem_bf16_pv_tile__avx512bf16_12x32,
};
