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
