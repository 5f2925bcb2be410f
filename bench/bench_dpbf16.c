/*
 * bench_dpbf16.c - how fast this CPU runs AVX512-BF16's VDPBF16PS against
 * AVX-512's FMA, the two ways of computing the bf16 mode's bit-exact
 * products (simd/avx512bf16/ and the emulation of simd/avx512/): the time
 * per instruction with 24 independent accumulator chains (throughput) and
 * with one chain (latency).  One VDPBF16PS does 32 products, one FMA 16, so
 * VDPBF16PS wins where its time per instruction is below twice the FMA's;
 * src/dispatch.c detects avx512bf16 only on the CPUs where it was measured
 * to win.  Prints a note and exits 0 where the CPU lacks either.
 */
#include <stdio.h>
#include <time.h>

#if defined(__x86_64__)
#include <immintrin.h>

#define CHAINS 24
#define ROUNDS 5

/* Seconds of CPU time of this thread (on a shared machine the time spent
 * waiting for a core is not the instructions'). */
static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* n x CHAINS VDPBF16PS on independent accumulators; the sum returned keeps
 * the work alive. */
__attribute__((target("avx512f,avx512bf16"), noinline)) static float
dp_chains(long n)
{
    __m512 acc[CHAINS];
    for (int i = 0; i < CHAINS; i++)
        acc[i] = _mm512_setzero_ps();
    __m512bh x = (__m512bh)_mm512_set1_epi32(0x3f803f80); /* 1.0, 1.0 */
    const __m512bh y = (__m512bh)_mm512_set1_epi32(0x00010001);
    for (long k = 0; k < n; k++) {
#pragma GCC unroll 24
        for (int i = 0; i < CHAINS; i++)
            acc[i] = _mm512_dpbf16_ps(acc[i], x, y);
        __asm__ volatile("" : "+v"(x)); /* no hoisting across iterations */
    }
    __m512 s = acc[0];
    for (int i = 1; i < CHAINS; i++)
        s = _mm512_add_ps(s, acc[i]);
    return _mm512_reduce_add_ps(s);
}

/* The same with VFMADD231PS. */
__attribute__((target("avx512f,fma"), noinline)) static float
fma_chains(long n)
{
    __m512 acc[CHAINS];
    for (int i = 0; i < CHAINS; i++)
        acc[i] = _mm512_setzero_ps();
    __m512 x = _mm512_set1_ps(1e-3f);
    const __m512 y = _mm512_set1_ps(1e-3f);
    for (long k = 0; k < n; k++) {
#pragma GCC unroll 24
        for (int i = 0; i < CHAINS; i++)
            acc[i] = _mm512_fmadd_ps(x, y, acc[i]);
        __asm__ volatile("" : "+v"(x));
    }
    __m512 s = acc[0];
    for (int i = 1; i < CHAINS; i++)
        s = _mm512_add_ps(s, acc[i]);
    return _mm512_reduce_add_ps(s);
}

/* One dependent chain of n VDPBF16PS. */
__attribute__((target("avx512f,avx512bf16"), noinline)) static float
dp_latency(long n)
{
    __m512 a = _mm512_setzero_ps();
    const __m512bh x = (__m512bh)_mm512_set1_epi32(0x3f803f80);
    const __m512bh y = (__m512bh)_mm512_set1_epi32(0x00010001);
    for (long k = 0; k < n; k++)
        a = _mm512_dpbf16_ps(a, x, y);
    return _mm512_reduce_add_ps(a);
}

/* One dependent chain of n FMAs. */
__attribute__((target("avx512f,fma"), noinline)) static float
fma_latency(long n)
{
    __m512 a = _mm512_setzero_ps();
    const __m512 x = _mm512_set1_ps(1e-3f);
    for (long k = 0; k < n; k++)
        a = _mm512_fmadd_ps(x, x, a);
    return _mm512_reduce_add_ps(a);
}

int main(void)
{
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f") ||
        !__builtin_cpu_supports("avx512bf16")) {
        printf("bench_dpbf16: this CPU has no AVX512-BF16; nothing to time\n");
        return 0;
    }
    const long n = 4000000;
    volatile float sink = 0.0f;
    double best[4] = {1e30, 1e30, 1e30, 1e30};
    for (int r = 0; r < ROUNDS; r++) { /* interleaved, best of each */
        double t = now();
        sink += dp_chains(n);
        t = now() - t;
        best[0] = t < best[0] ? t : best[0];
        t = now();
        sink += fma_chains(n);
        t = now() - t;
        best[1] = t < best[1] ? t : best[1];
        t = now();
        sink += dp_latency(4 * n);
        t = now() - t;
        best[2] = t < best[2] ? t : best[2];
        t = now();
        sink += fma_latency(4 * n);
        t = now() - t;
        best[3] = t < best[3] ? t : best[3];
    }
    (void)sink;
    const double dp = best[0] / (double)(n * CHAINS) * 1e9;
    const double fm = best[1] / (double)(n * CHAINS) * 1e9;
    printf("throughput (%d chains): VDPBF16PS zmm %.3f ns, VFMADD231PS zmm "
           "%.3f ns per instruction\n", CHAINS, dp, fm);
    printf("per product: VDPBF16PS takes %.2fx the FMA's time (below 1: the "
           "avx512bf16 level is faster here)\n", dp / fm / 2.0);
    printf("latency (one chain): VDPBF16PS %.3f ns, FMA %.3f ns\n",
           best[2] / (double)(4 * n) * 1e9, best[3] / (double)(4 * n) * 1e9);
    return 0;
}
#else
int main(void)
{
    printf("bench_dpbf16: not an x86-64 build; nothing to time\n");
    return 0;
}
#endif
