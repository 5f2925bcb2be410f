/*
 * Scalar reference twins of the bf16 compute mode's kernels: the contract
 * of simd/kernels.h written as plain loops, line for line.
 */
#include <math.h>
#include <string.h>

#include "kernels.h"
#include "bf16_rows.h"

static float f32_of(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

uint16_t stem_bf16_round(float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    u += 0x7fffu + ((u >> 16) & 1u); /* nearest, ties to even */
    uint16_t h = (uint16_t)(u >> 16);
    if (((h >> 7) & 0xffu) < 127u - 56u) /* below 2^-56: a signed zero */
        h &= 0x8000u;
    return h;
}

float stem_bf16_dot_ref(float c, const uint16_t *a, const uint16_t *b, int n)
{
    for (int t = 0; t + 1 < n; t += 2) {
        c = fmaf(f32_of(a[t + 1]), f32_of(b[t + 1]), c);
        c = fmaf(f32_of(a[t]), f32_of(b[t]), c);
    }
    return c;
}

/* bf16_rows of simd/kernels.h (the loop is simd/bf16_rows.h, shared with the
 * ISA tables, which compile it with their vector flags). */
void stem_bf16_rows__scalar(int rows, int n, const float *x, int ldx,
                            uint16_t *y, int ldy)
{
    stem_bf16_rows_loop(rows, n, x, ldx, y, ldy);
}

/* softmax_rows_bf16 of simd/kernels.h, line for line; sum8's lanes are
 * filled as the probabilities come (lane j % 8 adds p_j, j ascending). */
void stem_bf16_softmax_rows__scalar(int rows, int cols, const int *valid,
                                    float scale, const float *s, int lds,
                                    float *m, float *l, float *alpha,
                                    uint16_t *p, int ldp)
{
    for (int i = 0; i < rows; i++) {
        const float *x = s + (size_t)i * lds;
        uint16_t *pi = p + (size_t)i * ldp;
        int n = valid[i];
        float mnew = m[i];
        for (int j = 0; j < n; j++) {
            float xj = x[j] * scale;
            if (xj > mnew)
                mnew = xj;
        }
        float lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (int j = 0; j < cols; j++) {
            float pj = j < n ? stem_expb_ref(x[j] * scale - mnew) : 0.0f;
            lane[j % 8] = lane[j % 8] + pj;
            pi[j] = stem_bf16_round(pj);
        }
        if (cols & 1)
            pi[cols] = 0;
        float sum = ((lane[0] + lane[4]) + (lane[2] + lane[6])) +
                    ((lane[1] + lane[5]) + (lane[3] + lane[7]));
        float a = stem_expb_ref(m[i] - mnew);
        l[i] = l[i] * a;
        l[i] = l[i] + sum;
        m[i] = mnew;
        alpha[i] = a;
    }
}

/* Element (t, j) of a pairs-layout operand (simd/kernels.h). */
static uint16_t pair_at(const uint16_t *b, int ldb, int t, int j)
{
    return b[(size_t)(t / 2) * ldb + 2 * j + (t & 1)];
}

void stem_bf16_qk_tile__scalar(int rows, int cols, int d, const uint16_t *q,
                               int ldq, const uint16_t *kt, int ldk, float *s,
                               int lds, float *work)
{
    const int d2 = (d + 1) & ~1;
    (void)work;
    for (int i = 0; i < rows; i++) {
        const uint16_t *qi = q + (size_t)i * ldq;
        for (int j = 0; j < cols; j++) {
            float acc = 0.0f;
            for (int u = 0; u < d2 / 2; u++) {
                acc = fmaf(f32_of(qi[2 * u + 1]),
                           f32_of(pair_at(kt, ldk, 2 * u + 1, j)), acc);
                acc = fmaf(f32_of(qi[2 * u]),
                           f32_of(pair_at(kt, ldk, 2 * u, j)), acc);
            }
            s[(size_t)i * lds + j] = acc;
        }
    }
}

void stem_bf16_pv_tile__scalar(int rows, int cols, int d, const uint16_t *p,
                               int ldp, const uint16_t *v, int ldv,
                               const float *alpha, float *o, int ldo,
                               float *work)
{
    const int c2 = (cols + 1) & ~1;
    (void)work;
    for (int i = 0; i < rows; i++) {
        const uint16_t *pi = p + (size_t)i * ldp;
        float *oi = o + (size_t)i * ldo;
        for (int c = 0; c < d; c++) {
            float acc = 0.0f;
            for (int u = 0; u < c2 / 2; u++) {
                acc = fmaf(f32_of(pi[2 * u + 1]),
                           f32_of(pair_at(v, ldv, 2 * u + 1, c)), acc);
                acc = fmaf(f32_of(pi[2 * u]),
                           f32_of(pair_at(v, ldv, 2 * u, c)), acc);
            }
            float r = alpha ? oi[c] * alpha[i] : oi[c];
            oi[c] = r + acc;
        }
    }
}
