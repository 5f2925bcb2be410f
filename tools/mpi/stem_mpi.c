/*
 * stem_mpi.c - stem-mpi: `stem run` and `stem check` spread over the ranks
 * of an MPI job (Open MPI, under mpirun or srun), OpenMP inside each rank.
 *
 *   mpirun -n R stem-mpi run IN -o OUT.safetensors [options as stem run]
 *   mpirun -n R stem-mpi check DIR|FILES... [--json R.json] [options]
 *
 * Exit status as stem's: 0 success (check: every verdict PASS), 1 failure
 * (check: a fault), 2 a bad command line (check: bad input).
 */
#include <mpi.h>
#include <stdio.h>
#include <string.h>

#include "cli_common.h"
#include "mpi_common.h"

static void usage(FILE *fp)
{
    fputs("usage: mpirun -n R stem-mpi run IN -o OUT.safetensors [options]\n"
          "       mpirun -n R stem-mpi check DIR|FILES... [--json R.json] "
          "[options]\n"
          "       stem-mpi help COMMAND | stem-mpi --help | --version\n\n"
          "run:   Stem prefill of IN with the (kv head, query head) work\n"
          "       split over the ranks; OUT's bytes are those of `stem run`.\n"
          "check: many dump files judged as `stem check` does, (file, head)\n"
          "       units handed out by rank 0, one report.\n"
          "Threads per rank: --threads T or OMP_NUM_THREADS.\n"
          "Exit status: 0 success, 1 failure, 2 usage error.\n", fp);
}

int main(int argc, char **argv)
{
    int provided;
    if (MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided) !=
        MPI_SUCCESS) {
        fprintf(stderr, "stem-mpi: MPI_Init failed\n");
        return CLI_FAIL;
    }
    mpi_job job;
    MPI_Comm_rank(MPI_COMM_WORLD, &job.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &job.size);
    int rc = CLI_USAGE;
    const char *cmd = argc >= 2 ? argv[1] : NULL;
    int help = cmd && strcmp(cmd, "help") == 0 && argc == 3;
    if (help)
        cmd = argv[2];
    if (!cmd) {
        if (job.rank == 0)
            usage(stderr);
    } else if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        if (job.rank == 0)
            usage(stdout);
        rc = CLI_OK;
    } else if (strcmp(cmd, "--version") == 0) {
        if (job.rank == 0)
            printf("stem-mpi %s\n", stem_version());
        rc = CLI_OK;
    } else if (strcmp(cmd, "run") == 0 || strcmp(cmd, "check") == 0) {
        char *hargs[3] = {(char *)cmd, "--help", NULL};
        int (*fn)(const mpi_job *, int, char **) =
            strcmp(cmd, "run") == 0 ? mpi_cmd_run : mpi_cmd_check;
        rc = help ? fn(&job, 2, hargs) : fn(&job, argc - 1, argv + 1);
    } else if (job.rank == 0) {
        fprintf(stderr, "stem-mpi: unknown command '%s' (run, check)\n", cmd);
    }
    fflush(stdout);
    MPI_Finalize();
    return rc;
}
