/*
 * bench_memory.c - peak memory of a Stem prefill against the size of its
 * inputs: 128K tokens x 8 heads (d 128, BF16 q/k/v, F32 out) by default.
 *
 * Usage: bench_memory [--tokens N] [--heads H] [--kv-heads G]
 * Prints the input and output sizes, the peak resident set of the process,
 * and the library's own share (peak - inputs - outputs) beside the
 * documented bound: logits + mask (5 * Hq * Qb * Kb bytes), the packed kv
 * heads in flight (2 * Kb * B * d floats each; up to 256 MiB and no more
 * heads than give each thread 8 tasks, at least one)
 * and per-thread tiles.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "bench_util.h"
#include "stem.h"

int main(int argc, char **argv)
{
    int64_t tokens = 131072, heads = 8, kv = 8, d = 128;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--tokens"))
            tokens = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--heads"))
            heads = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--kv-heads"))
            kv = atoll(argv[i + 1]);
        else {
            fprintf(stderr, "usage: bench_memory [--tokens N] [--heads H] [--kv-heads G]\n");
            return 2;
        }
    }
    if (tokens < 1 || heads < 1 || kv < 1 || heads % kv) {
        fprintf(stderr, "bench_memory: bad sizes\n");
        return 2;
    }
    double base = bench_peak_rss();
    size_t nq = (size_t)heads * tokens * d, nk = (size_t)kv * tokens * d;
    uint16_t *q = bench_randn_bf16(nq, 1), *k = bench_randn_bf16(nk, 2), *v = bench_randn_bf16(nk, 3);
    float *out = malloc(nq * sizeof(float));
    if (!q || !k || !v || !out) {
        fprintf(stderr, "bench_memory: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < nq; i++) /* touch every page: count it as resident */
        out[i] = 1.0f;
    stem_params p;
    stem_params_init(&p, STEM_PROFILE_ANGELSLIM);
    stem_tensor tq = stem_tensor_hnd(q, STEM_BF16, heads, tokens, d);
    stem_tensor tk = stem_tensor_hnd(k, STEM_BF16, kv, tokens, d);
    stem_tensor tv = stem_tensor_hnd(v, STEM_BF16, kv, tokens, d);
    stem_tensor to = stem_tensor_hnd(out, STEM_F32, heads, tokens, d);
    stem_dims dims;
    stem_status st = stem_dims_get(&p, &tq, &tk, &tv, 1, &dims);
    if (st != STEM_OK) {
        fprintf(stderr, "bench_memory: %s\n", stem_strerror(st));
        return 1;
    }
    double before = bench_peak_rss();
    double t = bench_now();
    st = stem_prefill(&p, &tq, &tk, &tv, &to, NULL, NULL, NULL);
    t = bench_now() - t;
    if (st != STEM_OK) {
        fprintf(stderr, "bench_memory: %s\n", stem_strerror(st));
        return 1;
    }
    double peak = bench_peak_rss();
    int nt = 1;
#ifdef _OPENMP
    nt = omp_get_max_threads();
#endif
    const double MiB = 1048576.0;
    double in = (double)(nq + 2 * nk) * 2, outb = (double)nq * 4;
    double cells = (double)dims.hq * dims.qb * dims.kb;
    double per_head = 2.0 * dims.kb * p.block * d * 4;
    /* kv heads packed together: as many as fit in 256 MiB, no more than
     * give each thread 8 (head, query block) tasks, at least one */
    int64_t heads_packed = (int64_t)(256 * MiB / per_head);
    int64_t want = (8 * (int64_t)nt + dims.hq / dims.hkv * dims.qb - 1) / (dims.hq / dims.hkv * dims.qb);
    if (want < heads_packed)
        heads_packed = want;
    if (heads_packed < 1)
        heads_packed = 1;
    if (heads_packed > kv)
        heads_packed = kv;
    double packed = per_head * (double)heads_packed;
    double tiles = nt * ((double)p.block * d * 2 + (double)p.block * p.block + 4.0 * p.block) * 4;
    double bound = cells * 5 + packed + tiles;
    printf("Stem prefill %lld tokens x %lld heads (%lld kv), d %lld, BF16 in, F32 out: %.1f s\n",
           (long long)tokens, (long long)heads, (long long)kv, (long long)d, t);
    printf("  inputs q,k,v          %10.1f MiB\n", in / MiB);
    printf("  output out            %10.1f MiB\n", outb / MiB);
    printf("  peak RSS (process)    %10.1f MiB  (%.2fx the inputs)\n", peak / MiB, peak / in);
    printf("  library share         %10.1f MiB  (peak - RSS before the call: %.1f MiB; program base %.1f MiB)\n",
           (peak - before) / MiB, before / MiB, base / MiB);
    printf("  documented bound      %10.1f MiB  (logits+mask %.1f, packed kv %.1f, tiles %.1f)  %s\n",
           bound / MiB, cells * 5 / MiB, packed / MiB, tiles / MiB,
           peak - before <= bound * 1.05 ? "within" : "EXCEEDED");
    free(q), free(k), free(v), free(out);
    return 0;
}
