/*
 * rows.c - reading tensor views: one token row converted to float or
 * double (BF16 and F16 through convert.h), and the scan of a view for
 * values that are not finite or too large.
 */
#include <math.h>
#include <string.h>

#include "convert.h"
#include "internal.h"

static const void *row_ptr(const stem_tensor *t, int64_t head, int64_t token)
{
    int64_t at = head * t->head_stride + token * t->token_stride;
    return (const char *)t->data + at * (int64_t)stem_dtype_size(t->dtype);
}

void stem_load_row_f32(const stem_tensor *t, int64_t head, int64_t token,
                       float *dst)
{
    const void *src = row_ptr(t, head, token);
    int64_t d = t->dim;
    switch (t->dtype) {
    case STEM_F32:
        memcpy(dst, src, (size_t)d * 4);
        break;
    case STEM_F64:
        for (int64_t c = 0; c < d; c++)
            dst[c] = (float)((const double *)src)[c];
        break;
    case STEM_BF16:
        for (int64_t c = 0; c < d; c++)
            dst[c] = stem_bf16_bits_f32(((const uint16_t *)src)[c]);
        break;
    case STEM_F16:
        for (int64_t c = 0; c < d; c++)
            dst[c] = stem_f16_bits_f32(((const uint16_t *)src)[c]);
        break;
    default:
        break;
    }
}

void stem_load_row_f64(const stem_tensor *t, int64_t head, int64_t token,
                       double *dst)
{
    const void *src = row_ptr(t, head, token);
    int64_t d = t->dim;
    if (t->dtype == STEM_F64) {
        memcpy(dst, src, (size_t)d * 8);
        return;
    }
    float tmp[STEM_MAX_HEAD_DIM];
    stem_load_row_f32(t, head, token, tmp);
    for (int64_t c = 0; c < d; c++)
        dst[c] = tmp[c];
}

stem_status stem_check_finite(const stem_tensor *t, double limit, int nt)
{
    int bad = 0, big = 0;
    #pragma omp parallel for collapse(2) schedule(static) reduction(|:bad, big) num_threads(nt)
    for (int64_t h = 0; h < t->heads; h++) {
        for (int64_t n = 0; n < t->tokens; n++) {
            double row[STEM_MAX_HEAD_DIM];
            stem_load_row_f64(t, h, n, row);
            for (int64_t c = 0; c < t->dim; c++) {
                if (!isfinite(row[c]))
                    bad = 1;
                else if (fabs(row[c]) > limit)
                    big = 1;
            }
        }
    }
    return bad ? STEM_ERR_NONFINITE : big ? STEM_ERR_RANGE : STEM_OK;
}
