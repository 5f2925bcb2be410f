/*
 * params.c - the three profiles of docs/ALGORITHM.md section 4 as presets of
 * one parameter set, and the range check of every parameter.
 */
#include <math.h>
#include <string.h>

#include "stem.h"

static const char *const profile_names[STEM_PROFILE_COUNT] = {
    [STEM_PROFILE_ANGELSLIM] = "angelslim",
    [STEM_PROFILE_PAPER] = "paper",
    [STEM_PROFILE_HPCOPS] = "hpc-ops",
};

const char *stem_profile_name(stem_profile profile)
{
    if ((unsigned)profile >= STEM_PROFILE_COUNT)
        return "?";
    return profile_names[profile];
}

stem_status stem_profile_from_name(const char *name, stem_profile *out)
{
    if (!name || !out)
        return STEM_ERR_NULL;
    for (int i = 0; i < STEM_PROFILE_COUNT; i++)
        if (strcmp(name, profile_names[i]) == 0) {
            *out = (stem_profile)i;
            return STEM_OK;
        }
    if (strcmp(name, "hpcops") == 0 || strcmp(name, "hpc_ops") == 0) {
        *out = STEM_PROFILE_HPCOPS;
        return STEM_OK;
    }
    return STEM_ERR_PARAM;
}

stem_status stem_params_init(stem_params *params, stem_profile profile)
{
    if (!params)
        return STEM_ERR_NULL;
    if ((unsigned)profile >= STEM_PROFILE_COUNT)
        return STEM_ERR_PARAM;
    stem_params p = {
        .profile = profile,
        .block = 128,
        .stride = 8,
        .qk_scaled = 1,
        .norm = 1.0,
        .value_rule = STEM_VALUE_ZSCORE_FULL,
        .value_weight = 0.2,
        .budget_rule = STEM_BUDGET_TPD_F64,
        .keep_ratio = 0.2,
        .alpha = 0.7,
        .paper_min_k0 = 54,
        .paper_ratio_short = 0.2,
        .paper_ratio_long = 0.1,
        .paper_long_tokens = 16384,
        .prompt_blocks = 0,
        .sinks = 4,
        .window = 4,
        .keep_diagonal = 1,
        .ties_keep_all = 0,
        .use_f64 = 0,
        .threads = 0,
        .sinks_unclipped = 0,
        .compute = STEM_COMPUTE_F32,
    };
    switch (profile) {
    case STEM_PROFILE_ANGELSLIM:
        break;
    case STEM_PROFILE_PAPER:
        p.value_rule = STEM_VALUE_LOG_MAX_BLOCK;
        p.budget_rule = STEM_BUDGET_PAPER_LINEAR;
        break;
    case STEM_PROFILE_HPCOPS:
        p.stride = 16;
        p.qk_scaled = 0;
        p.value_rule = STEM_VALUE_ZSCORE_PADDED;
        p.value_weight = 0.3;
        p.budget_rule = STEM_BUDGET_TPD_F32_FMA;
        p.ties_keep_all = 1;
        p.sinks_unclipped = 1;
        break;
    default:
        break;
    }
    *params = p;
    return STEM_OK;
}

static int finite_in(double x, double lo, double hi)
{
    return isfinite(x) && x >= lo && x <= hi;
}

stem_status stem_params_validate(const stem_params *p)
{
    if (!p)
        return STEM_ERR_NULL;
    if ((unsigned)p->profile >= STEM_PROFILE_COUNT)
        return STEM_ERR_PARAM;
    if (p->block < 1 || p->block > 4096 || p->stride < 1 ||
        p->stride > p->block || p->block % p->stride != 0)
        return STEM_ERR_PARAM;
    if ((p->qk_scaled != 0 && p->qk_scaled != 1) || !finite_in(p->norm, 1e-30, 1e30))
        return STEM_ERR_PARAM;
    if ((unsigned)p->value_rule > STEM_VALUE_LOG_MAX_BLOCK ||
        !finite_in(p->value_weight, -1e6, 1e6))
        return STEM_ERR_PARAM;
    if ((unsigned)p->budget_rule > STEM_BUDGET_PAPER_LINEAR ||
        !finite_in(p->keep_ratio, 0.0, 1.0) || !finite_in(p->alpha, 0.0, 1.0))
        return STEM_ERR_PARAM;
    if (p->paper_min_k0 < 0 || !finite_in(p->paper_ratio_short, 0.0, 1.0) ||
        !finite_in(p->paper_ratio_long, 0.0, 1.0) || p->paper_long_tokens < 0)
        return STEM_ERR_PARAM;
    if (p->prompt_blocks < 0 || p->prompt_blocks > ((int64_t)1 << 40))
        return STEM_ERR_PARAM;
    if (p->sinks < 0 || p->window < 0 || (p->keep_diagonal != 0 && p->keep_diagonal != 1) ||
        (p->ties_keep_all != 0 && p->ties_keep_all != 1) ||
        (p->use_f64 != 0 && p->use_f64 != 1) || p->threads < 0 || p->threads > 4096 ||
        (p->sinks_unclipped != 0 && p->sinks_unclipped != 1))
        return STEM_ERR_PARAM;
    if ((unsigned)p->compute >= STEM_COMPUTE_COUNT)
        return STEM_ERR_PARAM;
    return STEM_OK;
}

static const char *const compute_names[STEM_COMPUTE_COUNT] = {
    [STEM_COMPUTE_F32] = "f32",
    [STEM_COMPUTE_BF16] = "bf16",
};

const char *stem_compute_name(stem_compute compute)
{
    if ((unsigned)compute >= STEM_COMPUTE_COUNT)
        return "?";
    return compute_names[compute];
}

stem_status stem_compute_from_name(const char *name, stem_compute *out)
{
    if (!name || !out)
        return STEM_ERR_NULL;
    for (int i = 0; i < STEM_COMPUTE_COUNT; i++)
        if (strcmp(name, compute_names[i]) == 0) {
            *out = (stem_compute)i;
            return STEM_OK;
        }
    return STEM_ERR_PARAM;
}
