/*
 * bench_util.c - see bench_util.h.
 */
#include "bench_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

float *bench_randn(size_t n, uint64_t seed, float sigma)
{
    /* 64-byte aligned: cache-line aligned rows, as the library's packs */
    float *x = aligned_alloc(64, ((n * sizeof(float) + 63) / 64) * 64);
    if (!x)
        return NULL;
    uint64_t s = seed;
    for (size_t i = 0; i < n; i += 2) {
        double u1 = ((double)(splitmix64(&s) >> 11) + 0.5) / 9007199254740992.0;
        double u2 = (double)(splitmix64(&s) >> 11) / 9007199254740992.0;
        double r = sqrt(-2.0 * log(u1));
        x[i] = sigma * (float)(r * cos(2.0 * M_PI * u2));
        if (i + 1 < n)
            x[i + 1] = sigma * (float)(r * sin(2.0 * M_PI * u2));
    }
    return x;
}

static uint16_t to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}

uint16_t *bench_randn_bf16(size_t n, uint64_t seed)
{
    uint16_t *x = malloc(n * sizeof(uint16_t));
    const size_t chunk = (size_t)1 << 20;
    for (size_t i = 0; x && i < n; i += chunk) {
        size_t m = n - i < chunk ? n - i : chunk;
        float *f = bench_randn(m, seed + i, 1.0f);
        if (!f) {
            free(x);
            return NULL;
        }
        for (size_t j = 0; j < m; j++)
            x[i + j] = to_bf16(f[j]);
        free(f);
    }
    return x;
}

double bench_peak_rss(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss * 1024.0;
}
