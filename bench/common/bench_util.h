/*
 * bench_util.h - small helpers shared by the benchmarks: a wall clock,
 * seeded random tensors, peak memory.
 */
#ifndef STEM_BENCH_UTIL_H
#define STEM_BENCH_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Seconds from a monotonic clock. */
double bench_now(void);

/* n floats of N(0, sigma^2) from a portable seeded generator; NULL if out
 * of memory.  The caller frees. */
float *bench_randn(size_t n, uint64_t seed, float sigma);

/* n BF16 values of N(0, 1) (rounded to nearest even), generated in chunks
 * to keep the peak low; NULL if out of memory.  The caller frees. */
uint16_t *bench_randn_bf16(size_t n, uint64_t seed);

/* Peak resident set size of this process, in bytes. */
double bench_peak_rss(void);

#endif
