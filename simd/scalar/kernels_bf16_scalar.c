/*
 * Scalar reference twins of the bf16 compute mode's kernels: the contract
 * of src/kernels.h written as plain loops, line for line.
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

/* bf16_rows of src/kernels.h (the loop is src/bf16_rows.h, shared with the
 * ISA tables, which compile it with their vector flags). */
void stem_bf16_rows__scalar(int rows, int n, const float *x, int ldx,
                            float *y, int ldy)
{
    stem_bf16_rows_loop(rows, n, x, ldx, y, ldy);
}

/* The canonical 8-lane sum of src/kernels.h. */
static float sum8(const float *x, int n)
{
    float a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int i = 0; i < n; i++)
        a[i % 8] = a[i % 8] + x[i];
    return ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
}

/* softmax_rows_bf16 of src/kernels.h, line for line.  The probabilities of
 * a row go through p's row as floats before bf16_rows rounds them there in
 * place (p holds cols rounded up to even floats). */
void stem_bf16_softmax_rows__scalar(int rows, int cols, const int *valid,
                                    float scale, const float *s, int lds,
                                    float *m, float *l, float *alpha,
                                    float *p, int ldp)
{
    for (int i = 0; i < rows; i++) {
        const float *x = s + (size_t)i * lds;
        float *pi = p + (size_t)i * ldp;
        int n = valid[i];
        float mnew = m[i];
        for (int j = 0; j < n; j++) {
            float xj = x[j] * scale;
            if (xj > mnew)
                mnew = xj;
        }
        for (int j = 0; j < n; j++)
            pi[j] = stem_expb_ref(x[j] * scale - mnew);
        for (int j = n; j < cols; j++)
            pi[j] = 0.0f;
        float a = stem_expb_ref(m[i] - mnew);
        l[i] = l[i] * a;
        l[i] = l[i] + sum8(pi, cols);
        m[i] = mnew;
        alpha[i] = a;
        stem_bf16_rows_loop(1, cols, pi, ldp, pi, ldp);
    }
}

void stem_bf16_qk_tile__scalar(int rows, int cols, int d, const float *q,
                               int ldq, const uint16_t *kt, int ldk, float *s,
                               int lds)
{
    const int d2 = (d + 1) & ~1;
    for (int i = 0; i < rows; i++) {
        for (int j = 0; j < cols; j++) {
            float acc = 0.0f;
            for (int t = 0; t < d2; t++)
                acc = fmaf(q[(size_t)i * ldq + t],
                           f32_of(kt[(size_t)(t ^ 1) * ldk + j]), acc);
            s[(size_t)i * lds + j] = acc;
        }
    }
}

void stem_bf16_pv_tile__scalar(int rows, int cols, int d, const float *p,
                               int ldp, const uint16_t *v, int ldv,
                               const float *alpha, float *o, int ldo,
                               float *work)
{
    const int c2 = (cols + 1) & ~1;
    (void)work;
    for (int i = 0; i < rows; i++) {
        float *oi = o + (size_t)i * ldo;
        for (int c = 0; c < d; c++) {
            float acc = 0.0f;
            for (int t = 0; t < c2; t++)
                acc = fmaf(p[(size_t)i * ldp + t],
                           f32_of(v[(size_t)(t ^ 1) * ldv + c]), acc);
            float r = alpha ? oi[c] * alpha[i] : oi[c];
            oi[c] = r + acc;
        }
    }
}
