/*
 * kernels_amx.h - the AMX kernels (internal): the AVX-512 table with the
 * bf16 products on the tile unit (TDPBF16PS).  Fast, not bit-exact: the
 * unit does not round as the contract of simd/kernels.h says (tests/test_amx.c).
 */
#ifndef STEM_KERNELS_AMX_H
#define STEM_KERNELS_AMX_H

#include <stdint.h>

/* qk_tile_bf16 (kernels.h) on AMX tiles; rows, cols >= 1, 1 <= d; no
 * pointer NULL; not bit-exact. */
void stem_bf16_qk_tile__amx_32x32(int rows, int cols, int d,
                                  const uint16_t *q, int ldq,
                                  const uint16_t *kt, int ldk, float *s,
                                  int lds, float *work);
/* pv_tile_bf16 (kernels.h) on AMX tiles; alpha may be NULL; not
 * bit-exact. */
void stem_bf16_pv_tile__amx_32x32(int rows, int cols, int d,
                                  const uint16_t *p, int ldp,
                                  const uint16_t *v, int ldv,
                                  const float *alpha, float *o, int ldo,
                                  float *work);

#endif /* STEM_KERNELS_AMX_H */
