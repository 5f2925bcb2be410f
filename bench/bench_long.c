/*
 * bench_long.c - the long-context case: one Stem prefill of 2^20 tokens,
 * one head (Hq = Hkv = 1), d 128, BF16 q/k/v, F32 out and lse.
 *
 * Usage: bench_long [--tokens N] [--dim D]
 * Prints the wall time, the peak resident set (getrusage) beside the input
 * size, and the library's share of it (peak during the call - resident set
 * before) beside the documented workspace bound:
 *   logits + mask   5 * Hq * Qb * Kb bytes (float logits, byte mask)
 *   packed kv       2 * Kb * B * d floats for one kv head (K^T and V blocks),
 *                   24 bytes per (head, query block) task
 *   per thread      one query tile: (2 * B * d + B * B + 4 * B) floats
 *   scoring         s * d * Kb floats of key sums, Kb doubles of value term,
 *                   per thread (B * d + 8 * s * d + s * d + 8 * Kb) floats
 *   value norms     2 * Kb * (B / s) doubles, per thread (B * d + B) floats
 *   selection       Kb int32 budgets, per thread Kb candidates (16 bytes)
 * Exits 1 if the call fails, an output is not finite, or the library's
 * share exceeds the bound by more than 5 %.  Takes minutes on two cores.
 */
#include <math.h>
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
    int64_t tokens = (int64_t)1 << 20, d = 128;
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 < argc && !strcmp(argv[i], "--tokens"))
            tokens = atoll(argv[i + 1]);
        else if (i + 1 < argc && !strcmp(argv[i], "--dim"))
            d = atoll(argv[i + 1]);
        else {
            fprintf(stderr, "usage: bench_long [--tokens N] [--dim D]\n");
            return 2;
        }
    }
    if (tokens < 1 || d < 1 || d > STEM_MAX_HEAD_DIM) {
        fprintf(stderr, "bench_long: bad sizes\n");
        return 2;
    }
    const double MiB = 1048576.0;
    double base = bench_peak_rss();
    size_t n = (size_t)tokens * (size_t)d;
    uint16_t *q = bench_randn_bf16(n, 11), *k = bench_randn_bf16(n, 12), *v = bench_randn_bf16(n, 13);
    float *out = malloc(n * sizeof(float)), *lse = malloc((size_t)tokens * sizeof(float));
    if (!q || !k || !v || !out || !lse) {
        fprintf(stderr, "bench_long: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < n; i++) /* touch every page: resident before the call */
        out[i] = 1.0f;
    for (int64_t i = 0; i < tokens; i++)
        lse[i] = 0.0f;
    stem_params p;
    stem_params_init(&p, STEM_PROFILE_ANGELSLIM);
    stem_tensor tq = stem_tensor_hnd(q, STEM_BF16, 1, tokens, d);
    stem_tensor tk = stem_tensor_hnd(k, STEM_BF16, 1, tokens, d);
    stem_tensor tv = stem_tensor_hnd(v, STEM_BF16, 1, tokens, d);
    stem_tensor to = stem_tensor_hnd(out, STEM_F32, 1, tokens, d);
    stem_dims dims;
    stem_status st = stem_dims_get(&p, &tq, &tk, &tv, 1, &dims);
    if (st != STEM_OK) {
        fprintf(stderr, "bench_long: %s\n", stem_strerror(st));
        return 1;
    }
    int nt = 1;
#ifdef _OPENMP
    nt = omp_get_max_threads();
#endif
    stem_isa isa = STEM_ISA_SCALAR;
    stem_isa_active(&isa);
    double before = bench_peak_rss();
    double t = bench_now();
    st = stem_prefill(&p, &tq, &tk, &tv, &to, lse, NULL, NULL);
    t = bench_now() - t;
    double peak = bench_peak_rss();
    if (st != STEM_OK) {
        fprintf(stderr, "bench_long: stem_prefill: %s\n", stem_strerror(st));
        return 1;
    }
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += !isfinite(out[i]);
    for (int64_t i = 0; i < tokens; i++)
        bad += !isfinite(lse[i]);

    const double B = p.block, s = p.stride, Kb = (double)dims.kb;
    const double cells = (double)dims.hq * (double)dims.qb * Kb;
    const double logits_mask = cells * 5;
    const double packed = 2.0 * Kb * B * (double)d * 4 + (double)dims.qb * 24;
    const double tiles = nt * (2 * B * d + B * B + 4 * B) * 4;
    const double scoring = s * d * Kb * 4 + Kb * 8 + nt * (B * d + 8 * s * d + s * d + 8 * Kb) * 4;
    const double norms = 2 * Kb * (B / s) * 8 + nt * (B * d + B) * 4;
    const double select = Kb * 4 + nt * Kb * 16;
    const double bound = logits_mask + packed + tiles + scoring + norms + select;
    const double in = 3.0 * (double)n * 2, outb = (double)n * 4 + (double)tokens * 4;
    const double share = peak - before;
    printf("bench_long: Stem prefill, %lld tokens, 1 head, d %lld, BF16 in, F32 out+lse, "
           "%d threads, isa %s\n", (long long)tokens, (long long)d, nt, stem_isa_name(isa));
    printf("  wall time             %10.1f s (%.0f tokens/s)\n", t, (double)tokens / t);
    printf("  inputs q,k,v          %10.1f MiB\n", in / MiB);
    printf("  outputs out,lse       %10.1f MiB\n", outb / MiB);
    printf("  peak RSS (process)    %10.1f MiB  (%.2fx the inputs, %.2fx inputs+outputs)\n",
           peak / MiB, peak / in, peak / (in + outb));
    printf("  library share         %10.1f MiB  (peak - RSS before the call %.1f MiB; "
           "program base %.1f MiB)\n", share / MiB, before / MiB, base / MiB);
    printf("  documented bound      %10.1f MiB  (logits+mask %.1f, packed kv %.1f, tiles %.1f, "
           "scoring %.1f, norms %.1f, selection %.1f)  %s\n",
           bound / MiB, logits_mask / MiB, packed / MiB, tiles / MiB, scoring / MiB,
           norms / MiB, select / MiB, share <= bound * 1.05 ? "within" : "EXCEEDED");
    printf("  non-finite outputs    %10zu\n", bad);
    free(q), free(k), free(v), free(out), free(lse);
    return (bad == 0 && share <= bound * 1.05) ? 0 : 1;
}
