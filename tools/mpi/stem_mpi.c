/*
 * stem_mpi.c - stem-mpi: `stem run` and `stem check` spread over the ranks
 * of an MPI job (Open MPI, under mpirun or srun), OpenMP inside each rank.
 *
 *   mpirun -n R stem-mpi run IN -o OUT.safetensors [options as stem run]
 *   mpirun -n R stem-mpi check DIR|FILES... [--json R.json] [options]
 *
 * Exit status as stem's: 0 success (check: every verdict PASS), 1 a fault
 * found (check), 2 bad input or usage, 3 an internal failure (out of
 * memory, I/O).  Any rank's failure ends the whole job, its message
 * printed by rank 0 (mpi_common.h).
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
          "Every rank must be given the same command line and read the\n"
          "same input (checked before computing).\n"
          "Exit status: 0 success, 1 a fault found (check), 2 bad input or\n"
          "usage, 3 internal failure (out of memory, I/O).\n", fp);
}

int main(int argc, char **argv)
{
    int provided;
    if (MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided) !=
        MPI_SUCCESS) {
        fprintf(stderr, "stem-mpi: MPI_Init failed\n");
        return CLI_INTERNAL;
    }
    mpi_job job;
    MPI_Comm_rank(MPI_COMM_WORLD, &job.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &job.size);
    mpi_capture();
    enum { NONE, HELP, VERSION, RUN, CHECK, UNKNOWN };
    static const char *const what[] = {"no command", "--help", "--version",
                                       "run", "check", "an unknown command"};
    const char *cmd = argc >= 2 ? argv[1] : NULL;
    int help = cmd && strcmp(cmd, "help") == 0 && argc == 3;
    if (help)
        cmd = argv[2];
    int c = !cmd                                                   ? NONE
            : strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 ? HELP
            : strcmp(cmd, "--version") == 0                        ? VERSION
            : strcmp(cmd, "run") == 0                              ? RUN
            : strcmp(cmd, "check") == 0                            ? CHECK
                                                                   : UNKNOWN;
    /* one command for the whole job: a rank told another would wait in
     * another command's collectives */
    int c0 = c, rc = CLI_OK;
    char msg[MPI_MSG_MAX] = "";
    MPI_Bcast(&c0, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (c != c0) {
        mpi_fmt(msg, "the command differs from rank 0's: %s here, %s on "
                "rank 0", what[c], what[c0]);
        rc = CLI_USAGE;
    } else if (c == UNKNOWN) {
        mpi_fmt(msg, "unknown command '%s' (run, check)", cmd);
        rc = CLI_USAGE;
    }
    if ((rc = mpi_agree(&job, rc, msg)) != CLI_OK) {
        /* message printed by rank 0 */
    } else if (c == NONE) {
        if (job.rank == 0)
            usage(stderr);
        rc = CLI_USAGE;
    } else if (c == HELP) {
        if (job.rank == 0)
            usage(stdout);
    } else if (c == VERSION) {
        if (job.rank == 0)
            printf("stem-mpi %s\n", stem_version());
    } else {
        char *hargs[3] = {(char *)cmd, "--help", NULL};
        int (*fn)(const mpi_job *, int, char **) =
            c == RUN ? mpi_cmd_run : mpi_cmd_check;
        rc = help ? fn(&job, 2, hargs) : fn(&job, argc - 1, argv + 1);
    }
    fflush(stdout);
    MPI_Finalize();
    return rc;
}
