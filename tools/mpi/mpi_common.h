/*
 * mpi_common.h - what the stem-mpi sub-commands share: the job's size and
 * rank; every rank's messages kept rather than printed, and agreeing on
 * success or failure with rank 0 printing the failing rank's message;
 * signatures of the inputs each rank read, compared before computing; and
 * removing a temporary file when the job is ended by a signal.
 *
 * Exit codes are stem's (cli_common.h): 0 success, 1 a failed run or a
 * fault found, 2 bad input or usage, 3 an internal failure.
 */
#ifndef STEM_MPI_COMMON_H
#define STEM_MPI_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "tensorfile.h"
#include "tensorindex.h"

#define MPI_MSG_MAX 1024

typedef struct mpi_job {
    int rank, size;
} mpi_job;

/*
 * From now on cli_error's messages are kept, not printed, on every rank:
 * mpi_msg() gives the first one since the last mpi_msg_clear() ("" if
 * none).  Rank 0 prints what the job agrees on (mpi_agree).
 */
void mpi_capture(void);
const char *mpi_msg(void);
void mpi_msg_clear(void);

/* Format a message into buf (MPI_MSG_MAX bytes). */
void mpi_fmt(char *buf, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * Collective: every rank gives its exit code for a phase (CLI_OK when its
 * part succeeded) and, if it failed, why (msg; NULL or "": the message
 * kept by mpi_capture).  Returns CLI_OK when every rank succeeded, else
 * the code of the lowest failing rank, on every rank; rank 0 then prints
 * that rank's message as "stem-mpi: MSG (rank R of N[; M other ranks
 * failed too])".  The kept message is cleared on every rank.
 */
int mpi_agree(const mpi_job *job, int rc, const char *msg);

/* ---------------------------------------------------- input signatures */

#define MPI_SIG_TENSORS 8

/* One tensor as a rank read it: its header and a digest of its bytes. */
typedef struct mpi_tensor_sig {
    char name[TF_NAME_MAX];
    int32_t dtype, ndim;
    int64_t shape[TF_MAX_DIMS];
    uint64_t nbytes;
    uint64_t data;              /* digest of the bytes (see mpi_sig_*) */
} mpi_tensor_sig;

/*
 * What a rank read: a digest of the whole header (every tensor's name,
 * dtype and shape, and the metadata) and the first MPI_SIG_TENSORS
 * tensors it names.  The data digest covers every byte of a tensor of up
 * to 16 MiB; of a larger one, 256 evenly spaced 4 KiB samples (its first
 * and last bytes among them).  Plain bytes, sent as MPI_BYTE.
 */
typedef struct mpi_input_sig {
    uint64_t header;
    int32_t count;
    mpi_tensor_sig t[MPI_SIG_TENSORS];
} mpi_input_sig;

/* Digest h with n more bytes at p (not cryptographic: it tells accidents
 * apart, such as a stale copy of a file). */
uint64_t mpi_digest(uint64_t h, const void *p, size_t n);

/* The signature of the tensors names[0..n) of an indexed file (their
 * bytes read with positioned reads).  0, or -1 with err set. */
int mpi_sig_index(const tf_index *idx, const char *const *names, int n,
                  mpi_input_sig *s, char *err, size_t errlen);

/* The signature of files f[0..nf) read whole (their tensors in order). */
void mpi_sig_files(const tf_file *const *f, int nf, mpi_input_sig *s);

/* 0 when a and b agree; else 1 with how they differ (a: "here", b:
 * "there") in how, e.g. "q: shape 6x2048x64, there 6x4096x64". */
int mpi_sig_diff(const mpi_input_sig *a, const mpi_input_sig *b,
                 const char *there, char *how, size_t cap);

/*
 * Collective: rank 0 sends its signature to every rank; a rank whose own
 * differs fails with "WHAT differs from rank 0's: HOW".  Returns
 * mpi_agree's code (CLI_USAGE on a difference: bad input).
 */
int mpi_same_input(const mpi_job *job, const mpi_input_sig *mine,
                   const char *what);

/* ------------------------------------------------------------- signals */

/* While path is set, SIGTERM, SIGINT and SIGHUP (as mpirun sends to the
 * ranks left when one dies) remove the file path before the process ends
 * of the signal.  NULL: nothing to remove. */
void mpi_remove_on_signal(const char *path);

int mpi_cmd_run(const mpi_job *job, int argc, char **argv);
int mpi_cmd_check(const mpi_job *job, int argc, char **argv);

#endif /* STEM_MPI_COMMON_H */
