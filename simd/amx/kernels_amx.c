/*
 * kernels_amx.c - the AMX table: AVX-512 kernels for everything but the
 * bf16 products, which run on the tile unit, and P's rounding to bf16,
 * which uses AVX512-BF16 (bit-exact; present on every AMX CPU, and asked
 * of cpuid); and the OS request for tile data.
 */
#include <cpuid.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kernels.h"
#include "kernels_amx.h"
#include "../avx512/kernels_avx512.h"

#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

/* cpuid leaf 7: EDX bit 24 AMX-TILE, bit 22 AMX-BF16; subleaf 1: EAX bit 5
 * AVX512-BF16 (the table's softmax rounds P with it). */
int stem_amx_cpu(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return 0;
    if (!((d >> 24 & 1) && (d >> 22 & 1)))
        return 0;
    if (!__get_cpuid_count(7, 1, &a, &b, &c, &d))
        return 0;
    return a >> 5 & 1;
}

/* 0: not asked yet; 1: granted; -1: refused. */
static atomic_int amx_state = 0;

/* 0 if the OS granted tile data to this process (asked once, thread-safe:
 * the permission is per process and asking twice is harmless). */
int stem_amx_request(void)
{
    int s = atomic_load(&amx_state);
    if (s == 0) {
        long rc = syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA);
        s = rc == 0 ? 1 : -1;
        atomic_store(&amx_state, s);
    }
    return s == 1 ? 0 : -1;
}

const stem_kernels stem_kernels_amx = {
    .isa = STEM_ISA_AMX,
    .qk_tile = stem_f32_qk_tile__avx512_12x32,
    .softmax_rows = stem_f32_softmax_rows__avx512_16,
    .pv_tile = stem_f32_pv_tile__avx512_12x32,
    .sqnorm_rows = stem_f32_sqnorm_rows__avx512_8,
    .group_sum = stem_f32_group_sum__avx512_64,
    .bf16_rows = stem_bf16_rows__avx512,
    .softmax_rows_bf16 = stem_bf16_softmax_rows__avx512bf16_16,
    .qk_tile_bf16 = stem_bf16_qk_tile__amx_32x32,
    .pv_tile_bf16 = stem_bf16_pv_tile__amx_32x32,
};
