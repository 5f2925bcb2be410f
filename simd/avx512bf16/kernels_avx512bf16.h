/*
 * kernels_avx512bf16.h - the AVX512-BF16 kernels of simd/kernels.h
 * (internal): the bf16 mode's products on VDPBF16PS, bit-exact (each
 * returns the bits of its scalar twin in simd/scalar/); the rest of the
 * table is the AVX-512 one.
 */
#ifndef STEM_KERNELS_AVX512BF16_H
#define STEM_KERNELS_AVX512BF16_H

#include <stdint.h>

/* qk_tile_bf16 (kernels.h) on VDPBF16PS, 12-row x 32-column register
 * blocks read straight from the layouts; work is not used. */
void stem_bf16_qk_tile__avx512bf16_12x32(int rows, int cols, int d,
                                         const uint16_t *q, int ldq,
                                         const uint16_t *kt, int ldk,
                                         float *s, int lds, float *work);
/* pv_tile_bf16 (kernels.h) on VDPBF16PS, the same blocks; alpha may be
 * NULL; work is not used. */
void stem_bf16_pv_tile__avx512bf16_12x32(int rows, int cols, int d,
                                         const uint16_t *p, int ldp,
                                         const uint16_t *v, int ldv,
                                         const float *alpha, float *o,
                                         int ldo, float *work);

#endif /* STEM_KERNELS_AVX512BF16_H */
