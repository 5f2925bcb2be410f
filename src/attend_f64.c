/*
 * attend_f64.c - the float64 oracle of attention: for every query row, an
 * exact two-pass softmax over the causal keys of its selected blocks, in
 * double.  Slow and plain; tests and audits compare the float32 path to it.
 */
#include <math.h>
#include <stdlib.h>

#include "internal.h"

#ifdef _OPENMP
#include <omp.h>
#endif

stem_status stem_attend_f64(const stem_params *params, const stem_dims *dims,
                            const stem_tensor *q, const stem_tensor *k,
                            const stem_tensor *v, const uint8_t *mask,
                            stem_tensor *out, float *lse)
{
    const int64_t B = params->block, d = dims->d, Qb = dims->qb, Kb = dims->kb;
    const int64_t hpg = dims->hq / dims->hkv;
    const int nt = stem_thread_count(params);
    const double scale = 1.0 / sqrt((double)d);
    double *score = malloc((size_t)nt * (size_t)dims->lk * sizeof(double));
    if (!score)
        return STEM_ERR_NOMEM;

    #pragma omp parallel for collapse(2) schedule(dynamic, 16) num_threads(nt)
    for (int64_t h = 0; h < dims->hq; h++) {
        for (int64_t r = 0; r < dims->lq; r++) {
            double qr[STEM_MAX_HEAD_DIM], row[STEM_MAX_HEAD_DIM], acc[STEM_MAX_HEAD_DIM];
            double *sc = score;
#ifdef _OPENMP
            sc += (size_t)omp_get_thread_num() * (size_t)dims->lk;
#endif
            int64_t g = h / hpg, I = r / B, pos = r + dims->offset;
            const uint8_t *mrow = mask ? mask + ((size_t)h * Qb + I) * Kb : NULL;
            stem_load_row_f64(q, h, r, qr);
            double mx = -INFINITY;
            for (int64_t t = 0; t <= pos && t < dims->lk; t++) {
                sc[t] = -INFINITY;
                if (mrow && !mrow[t / B])
                    continue;
                stem_load_row_f64(k, g, t, row);
                double dot = 0.0;
                for (int64_t c = 0; c < d; c++)
                    dot += qr[c] * row[c];
                sc[t] = dot * scale;
                if (sc[t] > mx)
                    mx = sc[t];
            }
            double sum = 0.0;
            for (int64_t c = 0; c < d; c++)
                acc[c] = 0.0;
            for (int64_t t = 0; t <= pos && t < dims->lk; t++) {
                if (sc[t] == -INFINITY)
                    continue;
                double p = exp(sc[t] - mx);
                sum += p;
                stem_load_row_f64(v, g, t, row);
                for (int64_t c = 0; c < d; c++)
                    acc[c] += p * row[c];
            }
            for (int64_t c = 0; c < d; c++)
                stem_store_out(out, h, r, c, acc[c] / sum);
            if (lse)
                lse[h * dims->lq + r] = (float)(mx + log(sum));
        }
    }
    free(score);
    return STEM_OK;
}
