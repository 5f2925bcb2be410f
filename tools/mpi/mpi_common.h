/*
 * mpi_common.h - what the stem-mpi sub-commands share: the job's size and
 * rank, agreeing on success or failure, and one message for a failure.
 */
#ifndef STEM_MPI_COMMON_H
#define STEM_MPI_COMMON_H

#include <stddef.h>

#define MPI_MSG_MAX 1024

typedef struct mpi_job {
    int rank, size;
} mpi_job;

/*
 * Collective: every rank says whether its part succeeded (ok) and, if not,
 * why (msg).  Returns the number of ranks that failed (the same on every
 * rank); when some did, rank 0 prints the message of the lowest failing
 * rank, prefixed "stem-mpi: " and followed by "(rank R of N[, and M other
 * ranks failed])".
 */
int mpi_agree(const mpi_job *job, int ok, const char *msg);

/* Format a message into buf (MPI_MSG_MAX bytes). */
void mpi_fmt(char *buf, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * Silence stderr on ranks other than 0 (for option parsing, which prints
 * the same usage errors on every rank); mpi_loud undoes it.
 */
void mpi_quiet(const mpi_job *job);
void mpi_loud(const mpi_job *job);

int mpi_cmd_run(const mpi_job *job, int argc, char **argv);
int mpi_cmd_check(const mpi_job *job, int argc, char **argv);

#endif /* STEM_MPI_COMMON_H */
