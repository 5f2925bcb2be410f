/*
 * status.c - error sentences and details, version, dtypes and tensor views.
 */
#include <stdarg.h>
#include <stdio.h>

#include "internal.h"

/* The detail of the calling thread's last error (stem_last_error). */
static _Thread_local char detail[512];

static const char *const messages[STEM_STATUS_COUNT] = {
    [STEM_OK] = "success",
    [STEM_ERR_NULL] = "a required pointer is NULL",
    [STEM_ERR_SHAPE] = "tensor shapes are inconsistent or not positive",
    [STEM_ERR_GQA] = "query heads are not a multiple of key/value heads",
    [STEM_ERR_OFFSET] = "Lk - Lq is not a multiple of the block size (sparse modes need whole blocks)",
    [STEM_ERR_OVERFLOW] = "a size computed from the shapes overflows",
    [STEM_ERR_DTYPE] = "unsupported element type",
    [STEM_ERR_HEAD_DIM] = "head dimension outside 1..256",
    [STEM_ERR_NONFINITE] = "an input holds NaN or Inf",
    [STEM_ERR_PARAM] = "a parameter is out of range",
    [STEM_ERR_NOMEM] = "out of memory",
    [STEM_ERR_ISA] = "the requested instruction set (STEM_ISA) is unknown or not supported by this CPU or build",
    [STEM_ERR_MASK] = "a mask row selects no key block at or below its diagonal",
    [STEM_ERR_RANGE] = "an input magnitude exceeds STEM_MAX_ABS_INPUT or the scoring bound (float32 sums could overflow)",
};

const char *stem_strerror(stem_status status)
{
    if ((unsigned)status >= STEM_STATUS_COUNT || !messages[status])
        return "unknown stem status";
    return messages[status];
}

const char *stem_last_error(void)
{
    return detail;
}

void stem_detail_clear(void)
{
    detail[0] = '\0';
}

stem_status stem_fail(stem_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    return status;
}

const char *stem_version(void)
{
    return STEM_VERSION_STRING;
}

stem_tensor stem_tensor_hnd(void *data, stem_dtype dtype, int64_t heads,
                            int64_t tokens, int64_t dim)
{
    stem_tensor t = {data, dtype, heads, tokens, dim, tokens * dim, dim};
    return t;
}

stem_tensor stem_tensor_nhd(void *data, stem_dtype dtype, int64_t heads,
                            int64_t tokens, int64_t dim)
{
    stem_tensor t = {data, dtype, heads, tokens, dim, dim, heads * dim};
    return t;
}
