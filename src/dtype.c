/*
 * dtype.c - the element types: their names and sizes (the one table the
 * library, the stem tool's readers and the Python package use) and the
 * bf16 / f16 conversions (src/convert.h).
 */
#include <string.h>

#include "convert.h"
#include "internal.h"

static const struct {
    const char *name;
    size_t size;
} dtypes[STEM_DTYPE_COUNT] = {
    [STEM_F32] = {"F32", 4},   [STEM_BF16] = {"BF16", 2},
    [STEM_F16] = {"F16", 2},   [STEM_F64] = {"F64", 8},
    [STEM_U8] = {"U8", 1},     [STEM_I32] = {"I32", 4},
    [STEM_I64] = {"I64", 8},   [STEM_BOOL] = {"BOOL", 1},
};

size_t stem_dtype_size(stem_dtype dtype)
{
    return (unsigned)dtype < STEM_DTYPE_COUNT ? dtypes[dtype].size : 0;
}

const char *stem_dtype_name(stem_dtype dtype)
{
    return (unsigned)dtype < STEM_DTYPE_COUNT ? dtypes[dtype].name : "?";
}

stem_status stem_dtype_from_name(const char *name, stem_dtype *out)
{
    if (!name || !out)
        return STEM_ERR_NULL;
    for (int i = 0; i < STEM_DTYPE_COUNT; i++)
        if (strcmp(name, dtypes[i].name) == 0) {
            *out = (stem_dtype)i;
            return STEM_OK;
        }
    return STEM_ERR_DTYPE;
}

float stem_bf16_to_f32(uint16_t h)
{
    return stem_bf16_bits_f32(h);
}

uint16_t stem_f32_to_bf16(float f)
{
    return stem_f32_bf16_bits(f);
}

float stem_f16_to_f32(uint16_t h)
{
    return stem_f16_bits_f32(h);
}

uint16_t stem_f32_to_f16(float f)
{
    return stem_f32_f16_bits(f);
}
