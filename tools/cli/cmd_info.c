/*
 * cmd_info.c - `stem info`: version, instruction sets and threads.
 */
#include <omp.h>
#include <sleef.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"
#include "commands.h"

static void info_usage(FILE *fp)
{
    fputs("usage: stem info [--threads T]\n\n"
          "Prints the library version, the detected and the active "
          "instruction set\n(STEM_ISA overrides the detected one), every "
          "instruction set and whether\nthis machine runs it, the OpenMP "
          "thread count and the SLEEF version.\nthreads: the count a call "
          "uses, capped at what the process can run\n(stem.h, stem_threads), "
          "and what capped it.\nExit 2 if STEM_ISA names an "
          "unknown or unsupported instruction set.\n",
          fp);
}

/* `stem info`; see info_usage. */
int cmd_info(int argc, char **argv)
{
    const char *v;
    int r;
    long long threads = 0;
    for (int i = 1; i < argc;) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            info_usage(stdout);
            return CLI_OK;
        }
        if ((r = cli_opt_value(argc, argv, &i, "--threads", &v)) != 0) {
            if (r < 0 || cli_parse_int("--threads", v, 1, 4096, &threads))
                return CLI_USAGE;
            continue;
        }
        cli_error("info: unknown argument '%s'", argv[i]);
        return CLI_USAGE;
    }
    if (threads > 0)
        omp_set_num_threads((int)threads);
    printf("version: %s\n", stem_version());
    printf("isa detected: %s\n", stem_isa_name(stem_isa_detected()));
    stem_isa active;
    stem_status st = stem_isa_active(&active);
    int rc = CLI_OK;
    if (st == STEM_OK) {
        printf("isa active: %s\n", stem_isa_name(active));
    } else {
        const char *env = getenv("STEM_ISA");
        printf("isa active: invalid\n");
        cli_error("info: STEM_ISA=%s: %s", env ? env : "", stem_strerror(st));
        rc = CLI_USAGE;
    }
    for (int i = 0; i < STEM_ISA_COUNT; i++) {
        const char *why = stem_isa_supported((stem_isa)i) ? "supported" : "unsupported";
        if (i == STEM_ISA_AMX)
            why = stem_isa_supported(STEM_ISA_AMX)
                      ? "supported (bf16 mode on AMX tiles: fast, not bit-exact; "
                        "only with STEM_ISA=amx)"
                      : "unsupported (needs AMX-BF16 and the OS's tile data "
                        "permission)";
        if (i == STEM_ISA_AVX512BF16 && stem_isa_supported(STEM_ISA_AVX512BF16))
            why = stem_isa_detected() == STEM_ISA_AVX512BF16
                      ? "supported (bf16 mode's products on VDPBF16PS, bit-exact)"
                      : "supported (bit-exact; detected on AMD only, where "
                        "VDPBF16PS outruns AVX-512's FMA emulation; "
                        "STEM_ISA=avx512bf16 selects it)";
        printf("isa %s: %s\n", stem_isa_name((stem_isa)i), why);
    }
    for (int i = 0; i < STEM_COMPUTE_COUNT; i++)
        printf("compute %s: %s\n", stem_compute_name((stem_compute)i),
               i == STEM_COMPUTE_F32 ? "float32 products (default)"
                                     : "bf16 operands, float32 sums (--compute bf16)");
    printf("openmp max threads: %d\n", omp_get_max_threads());
    stem_params tp;
    stem_thread_info ti;
    stem_params_init(&tp, STEM_PROFILE_ANGELSLIM);
    tp.threads = (int)threads;
    if (stem_threads(&tp, &ti) == STEM_OK) {
        printf("threads: %d of %d requested, capped by %s\n", ti.used,
               ti.requested, ti.limited_by);
        printf("thread cap: hard %d, 8 x %d CPUs in the affinity mask, "
               "OMP_THREAD_LIMIT %d", STEM_THREAD_HARD_CAP, ti.cpus,
               ti.omp_limit);
        if (ti.nproc_room >= 0)
            printf(", RLIMIT_NPROC %lld (room %lld)", ti.nproc_limit,
                   ti.nproc_room);
        else
            printf(", RLIMIT_NPROC not applied");
        if (ti.pids_room >= 0)
            printf(", pids.max %lld (room %lld)", ti.pids_limit, ti.pids_room);
        else
            printf(", no pids.max");
        printf("\n");
    }
#ifdef SLEEF_VERSION_MAJOR
    printf("sleef: %d.%d.%d\n", SLEEF_VERSION_MAJOR, SLEEF_VERSION_MINOR,
           SLEEF_VERSION_PATCHLEVEL);
#else
    printf("sleef: unknown version\n");
#endif
    return rc;
}
