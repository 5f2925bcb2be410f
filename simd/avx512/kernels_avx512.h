/*
 * kernels_avx512.h - the AVX-512 (F, VL, BW) kernels of simd/kernels.h
 * (internal).  Each returns exactly the bits of its scalar twin in
 * simd/scalar/.
 */
#ifndef STEM_KERNELS_AVX512_H
#define STEM_KERNELS_AVX512_H

/* qk_tile with a 12-row x 32-column register block (contract: kernels.h). */
void stem_f32_qk_tile__avx512_12x32(int rows, int cols, int d, const float *q,
                                    int ldq, const float *kt, int ldk,
                                    float *s, int lds);
/* pv_tile with a 12-row x 32-column register block (contract: kernels.h). */
void stem_f32_pv_tile__avx512_12x32(int rows, int cols, int d, const float *p,
                                    int ldp, const float *v, int ldv,
                                    const float *alpha, float *o, int ldo);
/* softmax_rows_bf16: 16-lane e_b of simd/expb.h, P rounded (kernels.h). */
void stem_bf16_softmax_rows__avx512_16(int rows, int cols, const int *valid,
                                       float scale, const float *s, int lds,
                                       float *m, float *l, float *alpha,
                                       uint16_t *p, int ldp);
/* The same with VCVTNEPS2BF16 rounding P (CPUs with AVX512-BF16). */
void stem_bf16_softmax_rows__avx512bf16_16(int rows, int cols,
                                           const int *valid, float scale,
                                           const float *s, int lds, float *m,
                                           float *l, float *alpha,
                                           uint16_t *p, int ldp);
/* softmax_rows: 16-lane SLEEF expf, sum8 over ymm halves (kernels.h). */
void stem_f32_softmax_rows__avx512_16(int rows, int cols, const int *valid,
                                      float scale, float *s, int lds,
                                      float *m, float *l, float *alpha);
/* sqnorm_rows, 8 fused lanes with masked tails (contract: kernels.h). */
void stem_f32_sqnorm_rows__avx512_8(int n, int d, const float *x, int ldx,
                                    float *out);
/* group_sum, 64 columns at a time (contract: kernels.h). */
void stem_f32_group_sum__avx512_64(int groups, int stride, int d,
                                   const float *x, int ldx, float *out);

/* qk_tile_bf16 / pv_tile_bf16: the same micro-kernel on float32 panels
 * widened from the bf16 operands (contract: kernels.h). */
void stem_bf16_qk_tile__avx512_12x32(int rows, int cols, int d, const uint16_t *q,
        int ldq, const uint16_t *kt, int ldk, float *s, int lds, float *work);
void stem_bf16_pv_tile__avx512_12x32(int rows, int cols, int d, const uint16_t *p,
        int ldp, const uint16_t *v, int ldv, const float *alpha, float *o,
        int ldo, float *work);
/* bf16_rows: simd/bf16_rows.h compiled for this ISA (contract: kernels.h). */
void stem_bf16_rows__avx512(int rows, int n, const float *x, int ldx,
        uint16_t *y, int ldy);

#endif /* STEM_KERNELS_AVX512_H */
