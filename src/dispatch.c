/*
 * dispatch.c - which kernel table runs: detected once from the CPU, or
 * chosen with STEM_ISA=scalar|avx2|avx512|avx512bf16|neon|amx (amx only
 * when asked for: it is not bit-exact in the bf16 mode).  The choice is
 * made once and is thread-safe (a C11 once-flag is not available
 * everywhere, so an atomic compare-and-swap publishes the single result).
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"


static const char *const isa_names[STEM_ISA_COUNT] = {
    [STEM_ISA_SCALAR] = "scalar",
    [STEM_ISA_AVX2] = "avx2",
    [STEM_ISA_AVX512] = "avx512",
    [STEM_ISA_NEON] = "neon",
    [STEM_ISA_AMX] = "amx",
    [STEM_ISA_AVX512BF16] = "avx512bf16",
};

const char *stem_isa_name(stem_isa isa)
{
    if ((unsigned)isa >= STEM_ISA_COUNT)
        return "?";
    return isa_names[isa];
}

static int cpu_has(stem_isa isa)
{
    switch (isa) {
    case STEM_ISA_SCALAR:
        return 1;
#if defined(__x86_64__) || defined(__i386__)
    case STEM_ISA_AVX2:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case STEM_ISA_AVX512:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") &&
               __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("fma");
#endif
#if defined(STEM_HAVE_AVX512BF16)
    case STEM_ISA_AVX512BF16:
        return cpu_has(STEM_ISA_AVX512) && __builtin_cpu_supports("avx512bf16");
#endif
#if defined(STEM_HAVE_AMX)
    case STEM_ISA_AMX:
        return cpu_has(STEM_ISA_AVX512) && stem_amx_cpu() && stem_amx_request() == 0;
#endif
#if defined(__aarch64__)
    case STEM_ISA_NEON:
        return 1; /* Advanced SIMD is part of every AArch64 CPU */
#endif
    default:
        return 0;
    }
}

const stem_kernels *stem_kernels_for(stem_isa isa)
{
    if (!cpu_has(isa))
        return NULL;
    switch (isa) {
    case STEM_ISA_SCALAR:
        return &stem_kernels_scalar;
#if defined(STEM_HAVE_AVX2)
    case STEM_ISA_AVX2:
        return &stem_kernels_avx2;
#endif
#if defined(STEM_HAVE_AVX512)
    case STEM_ISA_AVX512:
        return &stem_kernels_avx512;
#endif
#if defined(STEM_HAVE_NEON)
    case STEM_ISA_NEON:
        return &stem_kernels_neon;
#endif
#if defined(STEM_HAVE_AVX512BF16)
    case STEM_ISA_AVX512BF16:
        return &stem_kernels_avx512bf16;
#endif
#if defined(STEM_HAVE_AMX)
    case STEM_ISA_AMX:
        return &stem_kernels_amx;
#endif
    default:
        return NULL;
    }
}

int stem_isa_supported(stem_isa isa)
{
    return stem_kernels_for(isa) != NULL;
}

/*
 * 1 if this CPU runs VDPBF16PS faster than two FMAs: measured with the
 * bf16 mode's 128 x 128 x 128 products on one thread, AMD's Zen 4 ran them
 * in half the FMA emulation's time, while an Intel Xeon with AMX (Sapphire
 * Rapids class) took 1.8 times as long.  So avx512bf16 is detected on AMD
 * only; elsewhere STEM_ISA=avx512bf16 still selects it (same bits).
 */
static int vdpbf16ps_fast(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return __builtin_cpu_is("amd");
#else
    return 0;
#endif
}

stem_isa stem_isa_detected(void)
{
    static const stem_isa order[] = {STEM_ISA_AVX512BF16, STEM_ISA_AVX512,
                                     STEM_ISA_AVX2, STEM_ISA_NEON};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        if (order[i] == STEM_ISA_AVX512BF16 && !vdpbf16ps_fast())
            continue;
        if (stem_isa_supported(order[i]))
            return order[i];
    }
    return STEM_ISA_SCALAR;
}

/* 0: not chosen yet; 1 + isa: chosen; -1: the environment is invalid. */
static atomic_int chosen = 0;

static int choose(void)
{
    const char *env = getenv("STEM_ISA");
    if (!env || !*env)
        return 1 + (int)stem_isa_detected();
    for (int i = 0; i < STEM_ISA_COUNT; i++)
        if (strcmp(env, isa_names[i]) == 0)
            return stem_isa_supported((stem_isa)i) ? 1 + i : -1;
    return -1;
}

stem_status stem_isa_active(stem_isa *isa)
{
    int c = atomic_load(&chosen);
    if (c == 0) {
        int want = choose();
        int expected = 0;
        atomic_compare_exchange_strong(&chosen, &expected, want);
        c = atomic_load(&chosen);
    }
    if (c < 0)
        return STEM_ERR_ISA;
    if (isa)
        *isa = (stem_isa)(c - 1);
    return STEM_OK;
}

const stem_kernels *stem_kernels_active(stem_status *status)
{
    stem_isa isa;
    stem_status st = stem_isa_active(&isa);
    if (status)
        *status = st;
    if (st != STEM_OK)
        return NULL;
    return stem_kernels_for(isa);
}
