/*
 * prefill.c - the public entry points: argument checks, then the stages
 * (score.c, budget.c, select.c, attend.c) in the precision asked for.
 *
 * Every check (shapes, parameters, output views, the mask's diagonal, the
 * finiteness of q, k and v) runs before the first byte of an output is
 * written.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "kernels.h"

/* The largest input magnitude accepted: STEM_MAX_ABS_INPUT, and in the
 * sparse modes also the bound under which a block pair's strided sum
 * |QK| <= s*d*((B/s)*x)^2 stays below FLT_MAX / 4. */
static double input_limit(const stem_params *p, int64_t d, int sparse)
{
    double limit = STEM_MAX_ABS_INPUT;
    if (sparse) {
        double groups = (double)(p->block / p->stride);
        double x = sqrt((double)FLT_MAX / (4.0 * p->stride * (double)d)) / groups;
        if (x < limit)
            limit = x;
    }
    return limit;
}

/* Fail early with STEM_ERR_ISA when STEM_ISA names an unusable ISA (the
 * float64 oracle runs no kernel, but a bad setting is still an error), then
 * scan q, k and v for NaN, Inf and out-of-range magnitudes. */
static stem_status check_inputs(const stem_params *p, const stem_dims *dims,
                                int sparse, const stem_tensor *q,
                                const stem_tensor *k, const stem_tensor *v)
{
    stem_status st = stem_isa_active(NULL);
    if (st != STEM_OK)
        return stem_fail(st, "STEM_ISA names an instruction set that is "
                         "unknown or that this CPU or build cannot run");
    double limit = input_limit(p, dims->d, sparse);
    int nt = stem_thread_count(p);
    const stem_tensor *all[3] = {q, k, v};
    const char *names[3] = {"q", "k", "v"};
    for (int i = 0; i < 3; i++) {
        st = stem_check_finite(all[i], limit, nt);
        if (st == STEM_ERR_NONFINITE)
            return stem_fail(st, "%s holds NaN or Inf", names[i]);
        if (st != STEM_OK)
            return stem_fail(st, "%s holds a magnitude above %g (the bound "
                             "for block %d, stride %d, dim %lld)", names[i],
                             limit, p->block, p->stride, (long long)dims->d);
    }
    return STEM_OK;
}

static stem_status logits_stage(const stem_params *p, const stem_dims *dims,
                                const stem_tensor *q, const stem_tensor *k,
                                const stem_tensor *v, float *logits)
{
    return p->use_f64 ? stem_block_logits_f64(p, dims, q, k, v, logits)
                      : stem_block_logits_f32(p, dims, q, k, v, logits);
}

static stem_status attend_stage(const stem_params *p, const stem_dims *dims,
                                const stem_tensor *q, const stem_tensor *k,
                                const stem_tensor *v, const uint8_t *mask,
                                stem_tensor *out, float *lse)
{
    return p->use_f64 ? stem_attend_f64(p, dims, q, k, v, mask, out, lse)
                      : stem_attend_f32(p, dims, q, k, v, mask, out, lse);
}

stem_status stem_block_logits(const stem_params *params, const stem_tensor *q,
                              const stem_tensor *k, const stem_tensor *v,
                              float *logits)
{
    stem_dims dims;
    stem_status st = stem_dims_get(params, q, k, v, 1, &dims);
    if (st != STEM_OK)
        return st;
    if (!logits)
        return STEM_ERR_NULL;
    if ((st = check_inputs(params, &dims, 1, q, k, v)) != STEM_OK)
        return st;
    return logits_stage(params, &dims, q, k, v, logits);
}

/* Every row (h, I) must select a block J <= I + P/B: then each of its
 * query rows has at least one key (a block below the diagonal is entirely
 * causal for every row of the query block). */
static stem_status check_mask(const stem_dims *dims, int B, const uint8_t *mask)
{
    int64_t pb = dims->offset / B;
    for (int64_t h = 0; h < dims->hq; h++)
        for (int64_t I = 0; I < dims->qb; I++) {
            const uint8_t *row = mask + ((size_t)h * dims->qb + I) * dims->kb;
            int64_t J = 0;
            while (J <= I + pb && !row[J])
                J++;
            if (J > I + pb)
                return stem_fail(STEM_ERR_MASK, "mask row (head %lld, query "
                                 "block %lld) selects no key block at or "
                                 "below its diagonal %lld", (long long)h,
                                 (long long)I, (long long)(I + pb));
        }
    return STEM_OK;
}

stem_status stem_attention_sparse(const stem_params *params,
                                  const stem_tensor *q, const stem_tensor *k,
                                  const stem_tensor *v, const uint8_t *mask,
                                  stem_tensor *out, float *lse)
{
    stem_dims dims;
    stem_status st = stem_dims_get(params, q, k, v, 1, &dims);
    if (st != STEM_OK)
        return st;
    if (!mask)
        return STEM_ERR_NULL;
    if ((st = stem_check_out(out, &dims)) != STEM_OK)
        return st;
    if ((st = check_mask(&dims, params->block, mask)) != STEM_OK)
        return st;
    if ((st = check_inputs(params, &dims, 1, q, k, v)) != STEM_OK)
        return st;
    return attend_stage(params, &dims, q, k, v, mask, out, lse);
}

stem_status stem_attention_dense(const stem_params *params,
                                 const stem_tensor *q, const stem_tensor *k,
                                 const stem_tensor *v, stem_tensor *out,
                                 float *lse)
{
    stem_dims dims;
    stem_status st = stem_dims_get(params, q, k, v, 0, &dims);
    if (st != STEM_OK)
        return st;
    if ((st = stem_check_out(out, &dims)) != STEM_OK)
        return st;
    if ((st = check_inputs(params, &dims, 0, q, k, v)) != STEM_OK)
        return st;
    return attend_stage(params, &dims, q, k, v, NULL, out, lse);
}

stem_status stem_prefill(const stem_params *params, const stem_tensor *q,
                         const stem_tensor *k, const stem_tensor *v,
                         stem_tensor *out, float *lse, float *logits,
                         uint8_t *mask)
{
    stem_dims dims;
    stem_status st = stem_dims_get(params, q, k, v, 1, &dims);
    if (st != STEM_OK)
        return st;
    if ((st = stem_check_out(out, &dims)) != STEM_OK)
        return st;
    if ((st = check_inputs(params, &dims, 1, q, k, v)) != STEM_OK)
        return st;
    /* The stages work in the library's own buffers; the caller's logits and
     * mask are written only once every stage has succeeded. */
    size_t cells = (size_t)dims.hq * (size_t)dims.qb * (size_t)dims.kb;
    float *lg = malloc(cells * sizeof(float));
    uint8_t *mk = malloc(cells);
    if (!lg || !mk) {
        free(lg), free(mk);
        return STEM_ERR_NOMEM;
    }
    st = logits_stage(params, &dims, q, k, v, lg);
    if (st == STEM_OK)
        st = stem_select(params, &dims, lg, mk, NULL, NULL);
    if (st == STEM_OK)
        st = attend_stage(params, &dims, q, k, v, mk, out, lse);
    if (st == STEM_OK && logits)
        memcpy(logits, lg, cells * sizeof(float));
    if (st == STEM_OK && mask)
        memcpy(mask, mk, cells);
    free(lg);
    free(mk);
    return st;
}
