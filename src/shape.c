/*
 * shape.c - argument checks: shapes, strides, overflow, finiteness, and the
 * element conversions of tensor views.
 */
#include <math.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "internal.h"

int stem_mul_ok(int64_t a, int64_t b, int64_t *out)
{
    if (a < 0 || b < 0)
        return 0;
    if (a != 0 && b > INT64_MAX / a)
        return 0;
    *out = a * b;
    return 1;
}

static int dtype_is_input(stem_dtype dt)
{
    return dt == STEM_F32 || dt == STEM_BF16 || dt == STEM_F16 || dt == STEM_F64;
}

/* The view's last element offset + 1 must fit, in elements and in bytes. */
static stem_status check_extent(const stem_tensor *t)
{
    if (t->head_stride < 0 || t->token_stride < 0)
        return STEM_ERR_SHAPE;
    int64_t a, b, end;
    if (!stem_mul_ok(t->heads - 1, t->head_stride, &a) ||
        !stem_mul_ok(t->tokens - 1, t->token_stride, &b))
        return STEM_ERR_OVERFLOW;
    if (a > INT64_MAX - b || a + b > INT64_MAX - t->dim)
        return STEM_ERR_OVERFLOW;
    end = a + b + t->dim;
    int64_t bytes;
    if (!stem_mul_ok(end, (int64_t)stem_dtype_size(t->dtype), &bytes) ||
        (uint64_t)bytes > (uint64_t)SIZE_MAX / 2)
        return STEM_ERR_OVERFLOW;
    return STEM_OK;
}

stem_status stem_dims_get(const stem_params *params, const stem_tensor *q,
                          const stem_tensor *k, const stem_tensor *v,
                          int sparse, stem_dims *dims)
{
    if (!params || !q || !k || !v || !dims)
        return STEM_ERR_NULL;
    if (!q->data || !k->data || !v->data)
        return STEM_ERR_NULL;
    stem_status st = stem_params_validate(params);
    if (st != STEM_OK)
        return st;
    if (!dtype_is_input(q->dtype) || !dtype_is_input(k->dtype) ||
        !dtype_is_input(v->dtype))
        return STEM_ERR_DTYPE;
    if (q->dim != k->dim || q->dim != v->dim)
        return STEM_ERR_SHAPE;
    if (q->dim < 1 || q->dim > STEM_MAX_HEAD_DIM)
        return STEM_ERR_HEAD_DIM;
    if (q->heads < 1 || q->tokens < 1 || k->heads < 1 || k->tokens < 1 ||
        k->heads != v->heads || k->tokens != v->tokens || q->tokens > k->tokens)
        return STEM_ERR_SHAPE;
    if (q->heads % k->heads != 0)
        return STEM_ERR_GQA;
    if ((st = check_extent(q)) != STEM_OK || (st = check_extent(k)) != STEM_OK ||
        (st = check_extent(v)) != STEM_OK)
        return st;
    int64_t B = params->block;
    /* ceil(tokens / B) without forming tokens + B - 1, which can overflow */
    int64_t qb = q->tokens / B + (q->tokens % B != 0),
            kb = k->tokens / B + (k->tokens % B != 0);
    int64_t cells, tmp;
    /* logits and masks are hq * qb * kb; rows of lse hq * lq; lists int32 */
    if (!stem_mul_ok(q->heads, qb, &tmp) || !stem_mul_ok(tmp, kb, &cells) ||
        cells > INT64_MAX / 16 || kb > INT32_MAX || k->tokens > INT64_MAX / 4)
        return STEM_ERR_OVERFLOW;
    if (!stem_mul_ok(q->heads, q->tokens, &tmp) || tmp > INT64_MAX / 8)
        return STEM_ERR_OVERFLOW;
    int64_t P = k->tokens - q->tokens;
    if (sparse && P % B != 0)
        return STEM_ERR_OFFSET;
    if (sparse && params->prompt_blocks != 0 && params->prompt_blocks < kb)
        return STEM_ERR_PARAM;
    dims->hq = q->heads;
    dims->hkv = k->heads;
    dims->lq = q->tokens;
    dims->lk = k->tokens;
    dims->d = q->dim;
    dims->offset = P;
    dims->qb = qb;
    dims->kb = kb;
    return STEM_OK;
}

stem_status stem_check_out(const stem_tensor *out, const stem_dims *dims)
{
    if (!out || !out->data)
        return STEM_ERR_NULL;
    if (out->dtype != STEM_F32 && out->dtype != STEM_F64)
        return STEM_ERR_DTYPE;
    if (out->heads != dims->hq || out->tokens != dims->lq || out->dim != dims->d)
        return STEM_ERR_SHAPE;
    return check_extent(out);
}

static inline float bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, u;
    if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400));
            u = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (man << 13);
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

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
            dst[c] = bf16_to_f32(((const uint16_t *)src)[c]);
        break;
    case STEM_F16:
        for (int64_t c = 0; c < d; c++)
            dst[c] = f16_to_f32(((const uint16_t *)src)[c]);
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

int stem_thread_count(const stem_params *params)
{
    if (params->threads > 0)
        return params->threads;
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

int64_t stem_budget_blocks(const stem_params *params, int64_t kb)
{
    return params->prompt_blocks > 0 ? params->prompt_blocks : kb;
}
