/*
 * params.c - the three profiles of docs/ALGORITHM.md section 4 as presets of
 * one parameter set, and the range check of every parameter.
 */
#include <math.h>
#include <string.h>

#include "internal.h"

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

/* STEM_ERR_PARAM with "name = x: must be in lo..hi" unless x is there. */
#define RANGE_D(name, x, lo, hi)                                              \
    do {                                                                      \
        if (!finite_in((x), (lo), (hi)))                                      \
            return stem_fail(STEM_ERR_PARAM, "%s = %g: must be in %g..%g",    \
                             name, (double)(x), (double)(lo), (double)(hi));  \
    } while (0)
#define RANGE_I(name, x, lo, hi)                                              \
    do {                                                                      \
        if ((long long)(x) < (long long)(lo) || (long long)(x) > (long long)(hi)) \
            return stem_fail(STEM_ERR_PARAM, "%s = %lld: must be in %lld..%lld", \
                             name, (long long)(x), (long long)(lo),           \
                             (long long)(hi));                                \
    } while (0)

stem_status stem_params_validate(const stem_params *p)
{
    stem_detail_clear();
    if (!p)
        return stem_fail(STEM_ERR_NULL, "params is NULL");
    RANGE_I("profile", p->profile, 0, STEM_PROFILE_COUNT - 1);
    RANGE_I("block", p->block, 1, 4096);
    RANGE_I("stride", p->stride, 1, p->block);
    if (p->block % p->stride != 0)
        return stem_fail(STEM_ERR_PARAM, "stride = %d: must divide block = %d",
                         p->stride, p->block);
    RANGE_I("qk_scaled", p->qk_scaled, 0, 1);
    RANGE_D("norm", p->norm, 1e-30, 1e30);
    RANGE_I("value_rule", p->value_rule, 0, STEM_VALUE_LOG_MAX_BLOCK);
    RANGE_D("value_weight", p->value_weight, -1e6, 1e6);
    RANGE_I("budget_rule", p->budget_rule, 0, STEM_BUDGET_PAPER_LINEAR);
    RANGE_D("keep_ratio", p->keep_ratio, 0.0, 1.0);
    RANGE_D("alpha", p->alpha, 0.0, 1.0);
    RANGE_I("paper_min_k0", p->paper_min_k0, 0, INT32_MAX);
    RANGE_D("paper_ratio_short", p->paper_ratio_short, 0.0, 1.0);
    RANGE_D("paper_ratio_long", p->paper_ratio_long, 0.0, 1.0);
    RANGE_I("paper_long_tokens", p->paper_long_tokens, 0, INT64_MAX);
    RANGE_I("prompt_blocks", p->prompt_blocks, 0, (int64_t)1 << 40);
    RANGE_I("sinks", p->sinks, 0, INT32_MAX);
    RANGE_I("window", p->window, 0, INT32_MAX);
    RANGE_I("keep_diagonal", p->keep_diagonal, 0, 1);
    RANGE_I("ties_keep_all", p->ties_keep_all, 0, 1);
    RANGE_I("use_f64", p->use_f64, 0, 1);
    RANGE_I("threads", p->threads, 0, 4096);
    RANGE_I("sinks_unclipped", p->sinks_unclipped, 0, 1);
    RANGE_I("compute", p->compute, 0, STEM_COMPUTE_COUNT - 1);
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
