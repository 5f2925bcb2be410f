/*
 * value.c - the value-norm term (Output-Aware Metric), docs/ALGORITHM.md
 * sections 1 and 4.
 *
 * Per kv head, per downsampled key column b (a group of s tokens):
 *   g[b] = max over the group of ||v_t||_2   (padding tokens: 0)
 *   l[b] = ln(g[b] + 1e-6)
 * angelslim: z-score of l over the full groups (b < floor(Lk/s)), ReLU,
 *            times lambda; the block term is the mean over its groups.
 * hpc-ops:   the same with mean/std over every group of the block-padded
 *            length.
 * paper:     beta * max(0, ln max_{t in J} ||v_t||), once per block.
 * With no group to take statistics from (Lk < s) the z-scored term is 0.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "value.h"

/* From the group maxima gmax[ngroups] and their logs lg[] to term[kb]. */
static void term_from_groups(const stem_params *p, const stem_dims *dims,
                             const double *gmax, const double *lg,
                             double *term)
{
    const int G = p->block / p->stride;
    const int64_t kb = dims->kb, ngroups = kb * G;
    const double w = p->value_weight;

    if (p->value_rule == STEM_VALUE_NONE) {
        for (int64_t J = 0; J < kb; J++)
            term[J] = 0.0;
        return;
    }
    if (p->value_rule == STEM_VALUE_LOG_MAX_BLOCK) {
        for (int64_t J = 0; J < kb; J++) {
            double m = 0.0;
            for (int b = 0; b < G; b++)
                if (gmax[J * G + b] > m)
                    m = gmax[J * G + b];
            term[J] = m > 0.0 ? w * fmax(0.0, log(m)) : 0.0;
        }
        return;
    }
    int64_t n = p->value_rule == STEM_VALUE_ZSCORE_FULL ? dims->lk / p->stride
                                                         : ngroups;
    if (n < 1) {
        for (int64_t J = 0; J < kb; J++)
            term[J] = 0.0;
        return;
    }
    double sum = 0.0;
    for (int64_t b = 0; b < n; b++)
        sum += lg[b];
    double mean = sum / (double)n, var = 0.0;
    for (int64_t b = 0; b < n; b++)
        var += (lg[b] - mean) * (lg[b] - mean);
    double sd = n > 1 ? sqrt(var / (double)(n - 1)) : 0.0;
    for (int64_t J = 0; J < kb; J++) {
        double acc = 0.0;
        for (int b = 0; b < G; b++) {
            double z = (lg[J * G + b] - mean) / (sd + 1e-6);
            acc += w * fmax(0.0, z);
        }
        term[J] = acc / (double)G;
    }
}

void stem_value_term_f32(const stem_params *params, const stem_dims *dims,
                         const stem_tensor *v, int64_t g,
                         const stem_kernels *kern, int nt, double *groups,
                         float *scratch, double *term)
{
    const int B = params->block, s = params->stride, G = B / s;
    const int d = (int)dims->d;
    const int64_t kb = dims->kb, ngroups = kb * G;
    const size_t per = stem_value_scratch(params, dims);
    double *gmax = groups, *lg = groups + ngroups;
    #pragma omp parallel for schedule(static) num_threads(nt)
    for (int64_t J = 0; J < kb; J++) {
        float *tile = scratch;
#ifdef _OPENMP
        tile += (size_t)omp_get_thread_num() * per;
#endif
        float *n2 = tile + (size_t)B * d;
        int64_t t0 = J * B;
        int rows = (int)(dims->lk - t0 < B ? dims->lk - t0 : B);
        for (int r = 0; r < rows; r++)
            stem_load_row_f32(v, g, t0 + r, tile + (size_t)r * d);
        kern->sqnorm_rows(rows, d, tile, d, n2);
        for (int r = rows; r < B; r++)
            n2[r] = 0.0f;
        for (int b = 0; b < G; b++) {
            float m = 0.0f;
            for (int i = 0; i < s; i++) {
                float x = sqrtf(n2[b * s + i]);
                if (x > m)
                    m = x;
            }
            gmax[J * G + b] = m;
            lg[J * G + b] = stem_logf_ref(m + 1e-6f);
        }
    }
    term_from_groups(params, dims, gmax, lg, term);
}

void stem_value_term_f64(const stem_params *params, const stem_dims *dims,
                         const stem_tensor *v, int64_t g, int nt,
                         double *groups, double *term)
{
    const int s = params->stride;
    const int64_t d = dims->d, ngroups = dims->kb * (params->block / s);
    double *gmax = groups, *lg = groups + ngroups;
    #pragma omp parallel for schedule(static) num_threads(nt)
    for (int64_t b = 0; b < ngroups; b++) {
        double row[STEM_MAX_HEAD_DIM], m = 0.0;
        for (int i = 0; i < s; i++) {
            int64_t t = b * s + i;
            if (t >= dims->lk)
                break;
            stem_load_row_f64(v, g, t, row);
            double acc = 0.0;
            for (int64_t c = 0; c < d; c++)
                acc += row[c] * row[c];
            if (sqrt(acc) > m)
                m = sqrt(acc);
        }
        gmax[b] = m;
        lg[b] = log(m + 1e-6);
    }
    term_from_groups(params, dims, gmax, lg, term);
}
