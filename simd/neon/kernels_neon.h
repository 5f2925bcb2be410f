/*
 * kernels_neon.h - the AArch64 Advanced SIMD kernels of simd/kernels.h
 * (internal).  Each returns exactly the bits of its scalar twin in
 * simd/scalar/.
 */
#ifndef STEM_KERNELS_NEON_H
#define STEM_KERNELS_NEON_H

/* qk_tile with an 8-row x 8-column register block (contract: kernels.h). */
void stem_f32_qk_tile__neon_8x8(int rows, int cols, int d, const float *q,
                                int ldq, const float *kt, int ldk, float *s,
                                int lds);
/* pv_tile with an 8-row x 8-column register block (contract: kernels.h). */
void stem_f32_pv_tile__neon_8x8(int rows, int cols, int d, const float *p,
                                int ldp, const float *v, int ldv,
                                const float *alpha, float *o, int ldo);
/* softmax_rows_bf16: e_b of simd/expb.h over 4 lanes, P rounded (kernels.h). */
void stem_bf16_softmax_rows__neon_8(int rows, int cols, const int *valid,
                                    float scale, const float *s, int lds,
                                    float *m, float *l, float *alpha,
                                    uint16_t *p, int ldp);
/* softmax_rows: SLEEF expf over 4 lanes, sum8 as two float32x4 (kernels.h). */
void stem_f32_softmax_rows__neon_8(int rows, int cols, const int *valid,
                                   float scale, float *s, int lds, float *m,
                                   float *l, float *alpha);
/* sqnorm_rows, 8 fused lanes as two float32x4 (contract: kernels.h). */
void stem_f32_sqnorm_rows__neon_8(int n, int d, const float *x, int ldx,
                                  float *out);
/* group_sum, 16 columns at a time (contract: kernels.h). */
void stem_f32_group_sum__neon_16(int groups, int stride, int d,
                                 const float *x, int ldx, float *out);

/* qk_tile_bf16 / pv_tile_bf16: the same micro-kernel on float32 panels
 * widened from the bf16 operands (contract: kernels.h). */
void stem_bf16_qk_tile__neon_8x8(int rows, int cols, int d, const uint16_t *q,
        int ldq, const uint16_t *kt, int ldk, float *s, int lds, float *work);
void stem_bf16_pv_tile__neon_8x8(int rows, int cols, int d, const uint16_t *p,
        int ldp, const uint16_t *v, int ldv, const float *alpha, float *o,
        int ldo, float *work);
/* bf16_rows: simd/bf16_rows.h compiled for this ISA (contract: kernels.h). */
void stem_bf16_rows__neon(int rows, int n, const float *x, int ldx,
        uint16_t *y, int ldy);

#endif /* STEM_KERNELS_NEON_H */
