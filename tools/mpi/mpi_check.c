/* mpi_check.c - `stem-mpi check` (placeholder until the check API lands). */
#include "cli_common.h"
#include "mpi_common.h"

int mpi_cmd_check(const mpi_job *job, int argc, char **argv)
{
    if (job->rank == 0)
        cli_error("check: not yet available");
    return CLI_USAGE;
}
