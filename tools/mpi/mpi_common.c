/*
 * mpi_common.c - failure agreement and quiet option parsing for stem-mpi.
 */
#include "mpi_common.h"

#include <fcntl.h>
#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void mpi_fmt(char *buf, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, MPI_MSG_MAX, fmt, ap);
    va_end(ap);
}

int mpi_agree(const mpi_job *job, int ok, const char *msg)
{
    int mine = ok ? job->size : job->rank, first, nfail, bad = !ok;
    MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (first == job->size)
        return 0;
    MPI_Allreduce(&bad, &nfail, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    char buf[MPI_MSG_MAX] = {0};
    if (job->rank == first)
        snprintf(buf, sizeof(buf), "%s", msg && msg[0] ? msg : "failed");
    MPI_Bcast(buf, MPI_MSG_MAX, MPI_CHAR, first, MPI_COMM_WORLD);
    if (job->rank == 0) {
        if (nfail > 1)
            fprintf(stderr, "stem-mpi: %s (rank %d of %d; %d other ranks "
                    "failed too)\n", buf, first, job->size, nfail - 1);
        else
            fprintf(stderr, "stem-mpi: %s (rank %d of %d)\n", buf, first,
                    job->size);
        fflush(stderr);
    }
    return nfail;
}

static int saved_fd = -1;

void mpi_quiet(const mpi_job *job)
{
    if (job->rank == 0 || saved_fd >= 0)
        return;
    fflush(stderr);
    int nul = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (nul < 0)
        return;
    saved_fd = dup(2);
    if (saved_fd >= 0)
        dup2(nul, 2);
    close(nul);
}

void mpi_loud(const mpi_job *job)
{
    if (saved_fd < 0)
        return;
    fflush(stderr);
    dup2(saved_fd, 2);
    close(saved_fd);
    saved_fd = -1;
}
