/*
 * score.c - block logits, docs/ALGORITHM.md section 1: where a key block is
 * scored.
 *
 * For query block I and key block J the logit is the mean over the block
 * pair of the strided anti-diagonal estimate plus a value-norm term:
 *
 *   L[I][J] = QK[I][J] * c  +  term[J],   J <= I + P/B,   else -inf
 *
 * QK[I][J] = sum_i Qsum_I[s-1-i] . Ksum_J[i] is the whole block pair's sum
 * of S[a][b] (Qsum_I[j]: the sum over the groups of block I of the query
 * token at offset j; likewise Ksum), one dot product of length s*d;
 * c = 1 / ((B/s)^2 * sqrt(d) * s * norm) (or 1 / (B/s)^2 unscaled);
 * term[J] is the mean of the value bonus over the groups of block J
 * (value.c).
 *
 * Float32 path: the sums and dot products run through the kernels of the
 * active ISA (bit-exact twins), per key block and per query block, each
 * owned by one thread.  Float64 path: the same formulas in plain double
 * loops, the oracle.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "kernels.h"
#include "value.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* Query blocks scored per task: rows of one qk_tile call. */
#define SCORE_ROWS 8
/* Key sums of several kv heads are kept together up to this size. */
#define STEM_SCORE_BYTES ((size_t)64 << 20)

static double qk_scale(const stem_params *p, int64_t d)
{
    double per = (double)(p->block / p->stride);
    double c = 1.0 / (per * per);
    if (p->qk_scaled)
        c /= sqrt((double)d) * (double)p->stride * p->norm;
    return c;
}

/* Load rows [t0, t0 + B) of head h into tile [B][d], zero past the end. */
static void load_block_f32(const stem_tensor *t, int64_t h, int64_t t0,
                           int64_t B, float *tile)
{
    int64_t d = t->dim;
    for (int64_t r = 0; r < B; r++) {
        if (t0 + r < t->tokens)
            stem_load_row_f32(t, h, t0 + r, tile + r * d);
        else
            memset(tile + r * d, 0, (size_t)d * sizeof(float));
    }
}

stem_status stem_block_logits_f32(const stem_params *params,
                                  const stem_dims *dims, const stem_tensor *q,
                                  const stem_tensor *k, const stem_tensor *v,
                                  float *logits)
{
    stem_status st;
    const stem_kernels *kern = stem_kernels_active(&st);
    if (!kern)
        return st;
    const int B = params->block, s = params->stride, G = B / s;
    const int d = (int)dims->d, sd = s * d;
    const int64_t Qb = dims->qb, Kb = dims->kb, pb = dims->offset / B;
    const int nt = stem_thread_count(params);
    const float c = (float)qk_scale(params, d);

    /* Key sums of several kv heads are kept together up to
     * STEM_SCORE_BYTES (at least one head), so that short prompts with many
     * heads still give every thread work. */
    const size_t head_floats = (size_t)sd * (size_t)Kb;
    int64_t chunk = (int64_t)(STEM_SCORE_BYTES / (head_floats * sizeof(float)));
    if (chunk < 1)
        chunk = 1;
    if (chunk > dims->hkv)
        chunk = dims->hkv;
    const size_t per_thread = (size_t)B * d + (size_t)SCORE_ROWS * sd + sd +
                              (size_t)SCORE_ROWS * Kb;
    float *kst = malloc(head_floats * (size_t)chunk * sizeof(float));
    double *term = malloc((size_t)Kb * (size_t)chunk * sizeof(double));
    float *scratch = malloc((size_t)nt * per_thread * sizeof(float));
    double *groups = malloc(stem_value_groups(params, dims) * sizeof(double));
    float *vscratch = malloc((size_t)nt * stem_value_scratch(params, dims) * sizeof(float));
    if (!kst || !term || !scratch || !groups || !vscratch) {
        free(kst), free(term), free(scratch), free(groups), free(vscratch);
        return STEM_ERR_NOMEM;
    }
    const int64_t hpg = dims->hq / dims->hkv;
    const int64_t tasks = (Qb + SCORE_ROWS - 1) / SCORE_ROWS;

    for (int64_t g0 = 0; g0 < dims->hkv; g0 += chunk) {
        const int64_t ng = dims->hkv - g0 < chunk ? dims->hkv - g0 : chunk;
        for (int64_t gg = 0; gg < ng; gg++)
            stem_value_term_f32(params, dims, v, g0 + gg, kern, nt, groups, vscratch,
                                term + gg * Kb);
        /* Ksum of every key block, stored transposed: kst[e * Kb + J]. */
        #pragma omp parallel for collapse(2) schedule(static) num_threads(nt)
        for (int64_t gg = 0; gg < ng; gg++) {
            for (int64_t J = 0; J < Kb; J++) {
                float *ws = scratch;
#ifdef _OPENMP
                ws += (size_t)omp_get_thread_num() * per_thread;
#endif
                float *tile = ws, *ks = ws + (size_t)B * d;
                float *kh = kst + gg * head_floats;
                load_block_f32(k, g0 + gg, J * B, B, tile);
                kern->group_sum(G, s, d, tile, d, ks);
                for (int e = 0; e < sd; e++)
                    kh[(size_t)e * Kb + J] = ks[e];
            }
        }
        #pragma omp parallel for collapse(2) schedule(dynamic, 1) num_threads(nt)
        for (int64_t hh = 0; hh < ng * hpg; hh++) {
            for (int64_t task = 0; task < tasks; task++) {
                float *ws = scratch;
#ifdef _OPENMP
                ws += (size_t)omp_get_thread_num() * per_thread;
#endif
                float *tile = ws, *qr = ws + (size_t)B * d;
                float *qs = qr + (size_t)SCORE_ROWS * sd;
                float *qk = qs + sd;
                const int64_t h = g0 * hpg + hh, gg = hh / hpg;
                const float *kh = kst + gg * head_floats;
                const double *th = term + gg * Kb;
                int64_t I0 = task * SCORE_ROWS;
                int rows = (int)(Qb - I0 < SCORE_ROWS ? Qb - I0 : SCORE_ROWS);
                for (int r = 0; r < rows; r++) {
                    load_block_f32(q, h, (I0 + r) * B, B, tile);
                    kern->group_sum(G, s, d, tile, d, qs);
                    /* reversed offsets: qr[i*d + c] = Qsum[s-1-i][c] */
                    for (int i = 0; i < s; i++)
                        memcpy(qr + (size_t)r * sd + (size_t)i * d,
                               qs + (size_t)(s - 1 - i) * d, (size_t)d * sizeof(float));
                }
                int64_t last = I0 + rows - 1 + pb; /* causal limit of the last row */
                int cols = (int)(last + 1 < Kb ? last + 1 : Kb);
                kern->qk_tile(rows, cols, sd, qr, sd, kh, (int)Kb, qk, (int)Kb);
                for (int r = 0; r < rows; r++) {
                    int64_t I = I0 + r, p = I + pb;
                    float *row = logits + ((size_t)h * Qb + I) * Kb;
                    for (int64_t J = 0; J < Kb; J++) {
                        if (J > p) {
                            row[J] = -INFINITY;
                            continue;
                        }
                        float x = qk[(size_t)r * Kb + J] * c;
                        row[J] = x + (float)th[J];
                    }
                }
            }
        }
    }
    free(kst);
    free(term);
    free(scratch);
    free(groups);
    free(vscratch);
    return STEM_OK;
}

stem_status stem_block_logits_f64(const stem_params *params,
                                  const stem_dims *dims, const stem_tensor *q,
                                  const stem_tensor *k, const stem_tensor *v,
                                  float *logits)
{
    const int B = params->block, s = params->stride, G = B / s;
    const int64_t d = dims->d, sd = s * d;
    const int64_t Qb = dims->qb, Kb = dims->kb, pb = dims->offset / B;
    const int nt = stem_thread_count(params);
    const double c = qk_scale(params, d);
    const int64_t hpg = dims->hq / dims->hkv;

    double *ksum = malloc((size_t)sd * (size_t)Kb * sizeof(double));
    double *qsum = malloc((size_t)sd * (size_t)Qb * sizeof(double));
    double *term = malloc((size_t)Kb * sizeof(double));
    double *groups = malloc(stem_value_groups(params, dims) * sizeof(double));
    if (!ksum || !qsum || !term || !groups) {
        free(ksum), free(qsum), free(term), free(groups);
        return STEM_ERR_NOMEM;
    }
    for (int64_t g = 0; g < dims->hkv; g++) {
        stem_value_term_f64(params, dims, v, g, nt, groups, term);
        /* ksum[J][j][c] = sum over groups a of block J of k[J*B + a*s + j][c] */
        #pragma omp parallel for schedule(static) num_threads(nt)
        for (int64_t J = 0; J < Kb; J++) {
            double row[STEM_MAX_HEAD_DIM];
            double *kj = ksum + J * sd;
            memset(kj, 0, (size_t)sd * sizeof(double));
            for (int a = 0; a < G; a++)
                for (int j = 0; j < s; j++) {
                    int64_t t = J * B + (int64_t)a * s + j;
                    if (t >= dims->lk)
                        continue;
                    stem_load_row_f64(k, g, t, row);
                    for (int64_t e = 0; e < d; e++)
                        kj[j * d + e] += row[e];
                }
        }
        for (int64_t hh = 0; hh < hpg; hh++) {
            int64_t h = g * hpg + hh;
            #pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
            for (int64_t I = 0; I < Qb; I++) {
                double row[STEM_MAX_HEAD_DIM];
                double *qi = qsum + I * sd;
                memset(qi, 0, (size_t)sd * sizeof(double));
                for (int a = 0; a < G; a++)
                    for (int j = 0; j < s; j++) {
                        int64_t t = I * B + (int64_t)a * s + j;
                        if (t >= dims->lq)
                            continue;
                        stem_load_row_f64(q, h, t, row);
                        for (int64_t e = 0; e < d; e++)
                            qi[j * d + e] += row[e];
                    }
                int64_t p = I + pb;
                float *out = logits + ((size_t)h * Qb + I) * Kb;
                for (int64_t J = 0; J < Kb; J++) {
                    if (J > p) {
                        out[J] = -INFINITY;
                        continue;
                    }
                    double acc = 0.0;
                    const double *kj = ksum + J * sd;
                    for (int i = 0; i < s; i++)
                        for (int64_t e = 0; e < d; e++)
                            acc += qi[(s - 1 - i) * d + e] * kj[i * d + e];
                    out[J] = (float)(acc * c + term[J]);
                }
            }
        }
    }
    free(ksum);
    free(qsum);
    free(term);
    free(groups);
    return STEM_OK;
}
