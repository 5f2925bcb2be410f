/*
 * chunked_prefill.c - one layer's Stem prefill in two chunks against a
 * growing KV history, as an inference engine would run it.
 *
 * The KV cache is [kv heads, capacity, d] float32; each chunk appends its
 * keys and values, then attends with its queries (the last Lq positions) to
 * the whole history.  Build: cc chunked_prefill.c $(pkg-config --cflags --libs stem)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "stem.h"

enum { HQ = 4, HKV = 2, D = 64, CAP = 2048, CHUNK = 1024 };

static float frand(unsigned *s)
{
    *s = *s * 1664525u + 1013904223u;
    return (float)(*s >> 8) / 16777216.0f - 0.5f;
}

int main(void)
{
    float *kcache = calloc((size_t)HKV * CAP * D, sizeof(float));
    float *vcache = calloc((size_t)HKV * CAP * D, sizeof(float));
    float *q = malloc((size_t)HQ * CHUNK * D * sizeof(float));
    float *out = malloc((size_t)HQ * CHUNK * D * sizeof(float));
    if (!kcache || !vcache || !q || !out)
        return 1;

    stem_params p;
    stem_params_init(&p, STEM_PROFILE_ANGELSLIM);
    p.prompt_blocks = CAP / p.block; /* budget as for the whole prompt */

    unsigned seed = 1;
    for (int64_t start = 0; start < CAP; start += CHUNK) {
        /* append this chunk's keys and values to the cache */
        for (int64_t h = 0; h < HKV; h++)
            for (int64_t t = start; t < start + CHUNK; t++)
                for (int c = 0; c < D; c++) {
                    kcache[(h * CAP + t) * D + c] = frand(&seed);
                    vcache[(h * CAP + t) * D + c] = frand(&seed);
                }
        for (int64_t i = 0; i < (int64_t)HQ * CHUNK * D; i++)
            q[i] = frand(&seed);

        /* views: queries of this chunk; keys/values 0 .. start+CHUNK of the
         * cache, whose head stride is the cache capacity */
        int64_t lk = start + CHUNK;
        stem_tensor tq = stem_tensor_hnd(q, STEM_F32, HQ, CHUNK, D);
        stem_tensor tk = {kcache, STEM_F32, HKV, lk, D, (int64_t)CAP * D, D};
        stem_tensor tv = {vcache, STEM_F32, HKV, lk, D, (int64_t)CAP * D, D};
        stem_tensor to = stem_tensor_hnd(out, STEM_F32, HQ, CHUNK, D);

        stem_status st = stem_prefill(&p, &tq, &tk, &tv, &to, NULL, NULL, NULL);
        if (st != STEM_OK) {
            fprintf(stderr, "stem_prefill: %s\n", stem_strerror(st));
            return 1;
        }
        double sum = 0;
        for (int64_t i = 0; i < (int64_t)HQ * CHUNK * D; i++)
            sum += fabs(out[i]);
        printf("chunk at %5lld: %d queries over %lld keys, mean |out| %.5f\n",
               (long long)start, CHUNK, (long long)lk, sum / ((double)HQ * CHUNK * D));
    }
    free(kcache), free(vcache), free(q), free(out);
    return 0;
}
