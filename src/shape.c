/*
 * shape.c - argument checks: shapes, strides, overflow, output views.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

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

/* "NAME [H heads, N tokens, D dim]" of a view, into buf. */
static const char *describe(char *buf, size_t n, const char *name,
                            const stem_tensor *t)
{
    snprintf(buf, n, "%s [%lld heads, %lld tokens, %lld dim]", name,
             (long long)t->heads, (long long)t->tokens, (long long)t->dim);
    return buf;
}

/* The view's last element offset + 1 must fit, in elements and in bytes. */
static stem_status check_extent(const stem_tensor *t, const char *name)
{
    char d[128];
    if (t->head_stride < 0 || t->token_stride < 0)
        return stem_fail(STEM_ERR_SHAPE,
                         "%s has a negative stride (head_stride %lld, "
                         "token_stride %lld)", describe(d, sizeof(d), name, t),
                         (long long)t->head_stride, (long long)t->token_stride);
    int64_t a, b, end;
    if (!stem_mul_ok(t->heads - 1, t->head_stride, &a) ||
        !stem_mul_ok(t->tokens - 1, t->token_stride, &b) ||
        a > INT64_MAX - b || a + b > INT64_MAX - t->dim)
        return stem_fail(STEM_ERR_OVERFLOW,
                         "%s: the offset of its last element overflows "
                         "(head_stride %lld, token_stride %lld)",
                         describe(d, sizeof(d), name, t),
                         (long long)t->head_stride, (long long)t->token_stride);
    end = a + b + t->dim;
    int64_t bytes;
    if (!stem_mul_ok(end, (int64_t)stem_dtype_size(t->dtype), &bytes) ||
        (uint64_t)bytes > (uint64_t)SIZE_MAX / 2)
        return stem_fail(STEM_ERR_OVERFLOW, "%s spans more bytes than fit in "
                         "memory", describe(d, sizeof(d), name, t));
    return STEM_OK;
}

/* Rows of an output view must not overlap one another: with the dim axis
 * contiguous, a token stride below dim (when there are several tokens) or
 * a head stride below dim (several heads) writes one row's elements over
 * another's, which is what a transposed or mislabelled view looks like.
 * (Inputs may overlap: a broadcast row is a valid input.) */
static stem_status check_rows(const stem_tensor *t, const char *name)
{
    char d[128];
    if ((t->tokens > 1 && t->token_stride < t->dim) ||
        (t->heads > 1 && t->head_stride < t->dim))
        return stem_fail(STEM_ERR_SHAPE,
                         "%s: strides (head %lld, token %lld elements) are "
                         "below the dim %lld, so rows overlap (a transposed "
                         "view? the dim axis must be the contiguous last one)",
                         describe(d, sizeof(d), name, t),
                         (long long)t->head_stride, (long long)t->token_stride,
                         (long long)t->dim);
    return STEM_OK;
}

stem_status stem_dims_get(const stem_params *params, const stem_tensor *q,
                          const stem_tensor *k, const stem_tensor *v,
                          int sparse, stem_dims *dims)
{
    stem_detail_clear();
    if (!params || !q || !k || !v || !dims)
        return stem_fail(STEM_ERR_NULL, "%s is NULL",
                         !params ? "params" : !q ? "q" : !k ? "k" : !v ? "v"
                                                                    : "dims");
    if (!q->data || !k->data || !v->data)
        return stem_fail(STEM_ERR_NULL, "%s's data pointer is NULL",
                         !q->data ? "q" : !k->data ? "k" : "v");
    stem_status st = stem_params_validate(params);
    if (st != STEM_OK)
        return st;
    const stem_tensor *all[3] = {q, k, v};
    const char *names[3] = {"q", "k", "v"};
    char dq[128], dk[128], dv[128];
    describe(dq, sizeof(dq), "q", q);
    describe(dk, sizeof(dk), "k", k);
    describe(dv, sizeof(dv), "v", v);
    for (int i = 0; i < 3; i++)
        if (!dtype_is_input(all[i]->dtype))
            return stem_fail(STEM_ERR_DTYPE, "%s has dtype %s (%d); inputs "
                             "are F32, BF16, F16 or F64", names[i],
                             stem_dtype_name(all[i]->dtype),
                             (int)all[i]->dtype);
    if (q->dim != k->dim || q->dim != v->dim)
        return stem_fail(STEM_ERR_SHAPE, "head dims differ: %s, %s, %s", dq,
                         dk, dv);
    if (q->dim < 1 || q->dim > STEM_MAX_HEAD_DIM)
        return stem_fail(STEM_ERR_HEAD_DIM, "%s: dim must be in 1..%d", dq,
                         STEM_MAX_HEAD_DIM);
    for (int i = 0; i < 3; i++)
        if (all[i]->heads < 1 || all[i]->tokens < 1)
            return stem_fail(STEM_ERR_SHAPE, "%s: heads and tokens must be "
                             ">= 1", i == 0 ? dq : i == 1 ? dk : dv);
    if (k->heads != v->heads || k->tokens != v->tokens)
        return stem_fail(STEM_ERR_SHAPE, "%s and %s differ: k and v need the "
                         "same heads and tokens", dk, dv);
    if (q->tokens > k->tokens)
        return stem_fail(STEM_ERR_SHAPE, "%s has more tokens than %s: the "
                         "queries are the last Lq <= Lk positions", dq, dk);
    if (q->heads % k->heads != 0)
        return stem_fail(STEM_ERR_GQA, "%s, %s: query heads %lld are not a "
                         "multiple of key/value heads %lld", dq, dk,
                         (long long)q->heads, (long long)k->heads);
    for (int i = 0; i < 3; i++)
        if ((st = check_extent(all[i], names[i])) != STEM_OK)
            return st;
    int64_t B = params->block;
    /* ceil(tokens / B) without forming tokens + B - 1, which can overflow */
    int64_t qb = q->tokens / B + (q->tokens % B != 0),
            kb = k->tokens / B + (k->tokens % B != 0);
    int64_t cells, tmp;
    /* logits and masks are hq * qb * kb; rows of lse hq * lq; lists int32 */
    if (!stem_mul_ok(q->heads, qb, &tmp) || !stem_mul_ok(tmp, kb, &cells) ||
        cells > INT64_MAX / 16 || kb > INT32_MAX || k->tokens > INT64_MAX / 4)
        return stem_fail(STEM_ERR_OVERFLOW, "%s, %s: Hq * Qb * Kb block "
                         "cells overflow", dq, dk);
    if (!stem_mul_ok(q->heads, q->tokens, &tmp) || tmp > INT64_MAX / 8)
        return stem_fail(STEM_ERR_OVERFLOW, "%s: Hq * Lq overflows", dq);
    int64_t P = k->tokens - q->tokens;
    if (sparse && P % B != 0)
        return stem_fail(STEM_ERR_OFFSET, "Lk - Lq = %lld - %lld = %lld is "
                         "not a multiple of block = %lld", (long long)k->tokens,
                         (long long)q->tokens, (long long)P, (long long)B);
    if (sparse && (st = stem_budget_check(params, kb)) != STEM_OK)
        return st;
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
    char d[128];
    if (!out || !out->data)
        return stem_fail(STEM_ERR_NULL, "out %s NULL", out ? "data is" : "is");
    describe(d, sizeof(d), "out", out);
    if (out->dtype != STEM_F32 && out->dtype != STEM_F64)
        return stem_fail(STEM_ERR_DTYPE, "%s has dtype %s; it must be F32 or "
                         "F64", d, stem_dtype_name(out->dtype));
    if (out->heads != dims->hq || out->tokens != dims->lq || out->dim != dims->d)
        return stem_fail(STEM_ERR_SHAPE, "%s: must be [%lld heads, %lld "
                         "tokens, %lld dim] like q", d, (long long)dims->hq,
                         (long long)dims->lq, (long long)dims->d);
    stem_status st = check_extent(out, "out");
    return st != STEM_OK ? st : check_rows(out, "out");
}
