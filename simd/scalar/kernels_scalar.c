/*
 * Scalar reference twins of every kernel in simd/kernels.h.
 *
 * These are the contracts written as plain loops: each optimised kernel in
 * simd/<isa>/ must return exactly these bits.  Read simd/kernels.h for the
 * order of operations; the code below follows it line for line.
 */
#include <math.h>

#include "kernels.h"

void stem_f32_qk_tile__scalar(int rows, int cols, int d, const float *q,
                            int ldq, const float *kt, int ldk, float *s,
                            int lds)
{
    for (int i = 0; i < rows; i++) {
        for (int j = 0; j < cols; j++) {
            float acc = 0.0f;
            for (int c = 0; c < d; c++)
                acc = fmaf(q[(size_t)i * ldq + c], kt[(size_t)c * ldk + j], acc);
            s[(size_t)i * lds + j] = acc;
        }
    }
}

/* The canonical 8-lane sum of simd/kernels.h. */
static float sum8(const float *x, int n)
{
    float a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int i = 0; i < n; i++)
        a[i % 8] = a[i % 8] + x[i];
    return ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
}

void stem_f32_softmax_rows__scalar(int rows, int cols, const int *valid,
                                 float scale, float *s, int lds, float *m,
                                 float *l, float *alpha)
{
    for (int i = 0; i < rows; i++) {
        float *x = s + (size_t)i * lds;
        int n = valid[i];
        float mnew = m[i];
        for (int j = 0; j < n; j++) {
            x[j] = x[j] * scale;
            if (x[j] > mnew)
                mnew = x[j];
        }
        for (int j = 0; j < n; j++)
            x[j] = stem_expf_ref(x[j] - mnew);
        for (int j = n; j < cols; j++)
            x[j] = 0.0f;
        float a = stem_expf_ref(m[i] - mnew);
        l[i] = l[i] * a;
        l[i] = l[i] + sum8(x, cols);
        m[i] = mnew;
        alpha[i] = a;
    }
}

void stem_f32_pv_tile__scalar(int rows, int cols, int d, const float *p,
                            int ldp, const float *v, int ldv,
                            const float *alpha, float *o, int ldo)
{
    for (int i = 0; i < rows; i++) {
        float *oi = o + (size_t)i * ldo;
        if (alpha)
            for (int c = 0; c < d; c++)
                oi[c] = oi[c] * alpha[i];
        for (int j = 0; j < cols; j++) {
            float pij = p[(size_t)i * ldp + j];
            const float *vj = v + (size_t)j * ldv;
            for (int c = 0; c < d; c++)
                oi[c] = fmaf(pij, vj[c], oi[c]);
        }
    }
}

void stem_f32_sqnorm_rows__scalar(int n, int d, const float *x, int ldx,
                                float *out)
{
    for (int t = 0; t < n; t++) {
        const float *xt = x + (size_t)t * ldx;
        float a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (int c = 0; c < d; c++)
            a[c % 8] = fmaf(xt[c], xt[c], a[c % 8]);
        out[t] = ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
    }
}

void stem_f32_group_sum__scalar(int groups, int stride, int d, const float *x,
                              int ldx, float *out)
{
    for (int j = 0; j < stride; j++) {
        float *oj = out + (size_t)j * d;
        for (int c = 0; c < d; c++)
            oj[c] = 0.0f;
        for (int a = 0; a < groups; a++) {
            const float *xr = x + (size_t)(a * stride + j) * ldx;
            for (int c = 0; c < d; c++)
                oj[c] = oj[c] + xr[c];
        }
    }
}

void stem_bf16_rows__scalar(int rows, int n, const float *x, int ldx,
                            uint16_t *y, int ldy);
void stem_bf16_softmax_rows__scalar(int rows, int cols, const int *valid,
                                    float scale, const float *s, int lds,
                                    float *m, float *l, float *alpha,
                                    uint16_t *p, int ldp);
void stem_bf16_qk_tile__scalar(int rows, int cols, int d, const uint16_t *q,
                               int ldq, const uint16_t *kt, int ldk, float *s,
                               int lds, float *work);
void stem_bf16_pv_tile__scalar(int rows, int cols, int d, const uint16_t *p,
                               int ldp, const uint16_t *v, int ldv,
                               const float *alpha, float *o, int ldo,
                               float *work);

const stem_kernels stem_kernels_scalar = {
    .isa = STEM_ISA_SCALAR,
    .qk_tile = stem_f32_qk_tile__scalar,
    .softmax_rows = stem_f32_softmax_rows__scalar,
    .pv_tile = stem_f32_pv_tile__scalar,
    .sqnorm_rows = stem_f32_sqnorm_rows__scalar,
    .group_sum = stem_f32_group_sum__scalar,
    .bf16_rows = stem_bf16_rows__scalar,
    .softmax_rows_bf16 = stem_bf16_softmax_rows__scalar,
    .qk_tile_bf16 = stem_bf16_qk_tile__scalar,
    .pv_tile_bf16 = stem_bf16_pv_tile__scalar,
};
