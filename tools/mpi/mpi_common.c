/*
 * mpi_common.c - kept messages, failure agreement, input signatures and
 * the temporary file's removal on a signal, for stem-mpi (see
 * mpi_common.h).
 */
#include "mpi_common.h"

#include <errno.h>
#include <fcntl.h>
#include <mpi.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_common.h"

/* ------------------------------------------------------------ messages */

static char kept[MPI_MSG_MAX];

/* cli_error's sink: keep the first message. */
static void keep_msg(void *ctx, const char *msg)
{
    (void)ctx;
    if (!kept[0])
        snprintf(kept, sizeof(kept), "%s", msg);
}

void mpi_capture(void)
{
    cli_error_to(keep_msg, NULL);
}

const char *mpi_msg(void)
{
    return kept;
}

void mpi_msg_clear(void)
{
    kept[0] = '\0';
}

void mpi_fmt(char *buf, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, MPI_MSG_MAX, fmt, ap);
    va_end(ap);
}

int mpi_agree(const mpi_job *job, int rc, const char *msg)
{
    int ok = rc == CLI_OK;
    int mine = ok ? job->size : job->rank, first, nfail, bad = !ok;
    MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (first == job->size) {
        kept[0] = '\0';
        return CLI_OK;
    }
    MPI_Allreduce(&bad, &nfail, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    char buf[MPI_MSG_MAX] = {0};
    int code = rc;
    if (job->rank == first)
        snprintf(buf, sizeof(buf), "%s",
                 msg && msg[0] ? msg : kept[0] ? kept : "failed");
    MPI_Bcast(buf, MPI_MSG_MAX, MPI_CHAR, first, MPI_COMM_WORLD);
    MPI_Bcast(&code, 1, MPI_INT, first, MPI_COMM_WORLD);
    if (job->rank == 0) {
        fflush(stdout);
        if (nfail > 1)
            fprintf(stderr, "stem-mpi: %s (rank %d of %d; %d other ranks "
                    "failed too)\n", buf, first, job->size, nfail - 1);
        else
            fprintf(stderr, "stem-mpi: %s (rank %d of %d)\n", buf, first,
                    job->size);
        fflush(stderr);
    }
    kept[0] = '\0';
    return code;
}

/* ---------------------------------------------------- input signatures */

#define WHOLE_MAX (16u << 20)   /* tensors hashed whole up to this size */
#define SAMPLES 256
#define SAMPLE 4096

/* Mix n bytes of p into the digest h. */
static uint64_t mix(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t w;
    for (; n >= 8; n -= 8, b += 8) {
        memcpy(&w, b, 8);
        h = (h ^ w) * 0x9E3779B97F4A7C15ull;
        h ^= h >> 31;
    }
    w = 0;
    memcpy(&w, b, n);
    h = (h ^ w ^ ((uint64_t)n << 56)) * 0xBF58476D1CE4E5B9ull;
    return h ^ (h >> 29);
}

uint64_t mpi_digest(uint64_t h, const void *p, size_t n)
{
    return mix(h, p, n);
}

static uint64_t mix_str(uint64_t h, const char *s)
{
    return mix(h, s, strlen(s) + 1);
}

/* Where the sampled chunks of a tensor of n bytes start: chunk i of
 * SAMPLES, each SAMPLE bytes. */
static uint64_t sample_at(uint64_t n, int i)
{
    return (n - SAMPLE) * (uint64_t)i / (SAMPLES - 1);
}

/* The tensor part of a signature from its header fields. */
static void tensor_head(mpi_tensor_sig *t, const char *name, int dtype,
                        int ndim, const int64_t *shape, size_t nbytes)
{
    memset(t, 0, sizeof(*t));
    snprintf(t->name, sizeof(t->name), "%s", name);
    t->dtype = dtype;
    t->ndim = ndim;
    for (int d = 0; d < ndim && d < TF_MAX_DIMS; d++)
        t->shape[d] = shape[d];
    t->nbytes = nbytes;
}

static uint64_t header_mix(uint64_t h, const mpi_tensor_sig *t)
{
    h = mix_str(h, t->name);
    h = mix(h, &t->dtype, sizeof(t->dtype));
    h = mix(h, &t->ndim, sizeof(t->ndim));
    return mix(h, t->shape, sizeof(t->shape));
}

static uint64_t meta_mix(uint64_t h, const tf_file *f)
{
    for (int i = 0; i < f->meta_count; i++) {
        h = mix_str(h, f->meta_keys[i]);
        h = mix_str(h, f->meta_values[i]);
    }
    return h;
}

/* The data digest of e, read from its file. */
static int index_data(const tf_index *idx, const tf_index_entry *e,
                      uint64_t *out, char *err, size_t errlen)
{
    const char *path = idx->paths[e->file];
    int whole = e->nbytes <= WHOLE_MAX;
    size_t cap = whole ? (e->nbytes ? e->nbytes : 1) : SAMPLE;
    char *buf = malloc(cap);
    int fd = open(path, O_RDONLY | O_CLOEXEC), rc = -1;
    uint64_t h = 0x5354454D;
    if (!buf || fd < 0) {
        tf_set_err(err, errlen, "%s: %s", path,
                   fd < 0 ? strerror(errno) : "out of memory");
        goto done;
    }
    for (int i = 0; i < (whole ? 1 : SAMPLES); i++) {
        size_t len = whole ? e->nbytes : SAMPLE;
        uint64_t at = whole ? 0 : sample_at(e->nbytes, i);
        if (tf_pread_exact(fd, buf, len, e->offset + at) != 0) {
            tf_set_err(err, errlen, "%s: cannot read tensor %s: %s", path,
                       e->name, errno ? strerror(errno) : "file too short");
            goto done;
        }
        h = mix(h, buf, len);
    }
    *out = h;
    rc = 0;
done:
    if (fd >= 0)
        close(fd);
    free(buf);
    return rc;
}

int mpi_sig_index(const tf_index *idx, const char *const *names, int n,
                  mpi_input_sig *s, char *err, size_t errlen)
{
    memset(s, 0, sizeof(*s));
    uint64_t h = 0x48454144;
    for (int i = 0; i < idx->count; i++) {
        const tf_index_entry *e = &idx->entries[i];
        mpi_tensor_sig t;
        tensor_head(&t, e->name, (int)e->dtype, e->ndim, e->shape,
                    e->nbytes);
        h = header_mix(h, &t);
    }
    s->header = meta_mix(h, &idx->meta);
    for (int i = 0; i < n && s->count < MPI_SIG_TENSORS; i++) {
        const tf_index_entry *e = tf_index_find(idx, names[i]);
        if (!e)
            continue;
        mpi_tensor_sig *t = &s->t[s->count++];
        tensor_head(t, e->name, (int)e->dtype, e->ndim, e->shape, e->nbytes);
        if (index_data(idx, e, &t->data, err, errlen) != 0)
            return -1;
    }
    return 0;
}

void mpi_sig_files(const tf_file *const *f, int nf, mpi_input_sig *s)
{
    memset(s, 0, sizeof(*s));
    uint64_t h = 0x48454144;
    for (int j = 0; j < nf; j++) {
        for (int i = 0; i < f[j]->count; i++) {
            const tf_tensor *e = &f[j]->tensors[i];
            mpi_tensor_sig t;
            tensor_head(&t, e->name, (int)e->dtype, e->ndim, e->shape,
                        e->nbytes);
            h = header_mix(h, &t);
            if (s->count == MPI_SIG_TENSORS)
                continue;
            t.data = 0x5354454D;
            if (e->nbytes <= WHOLE_MAX)
                t.data = mix(t.data, e->data, e->nbytes);
            else
                for (int k = 0; k < SAMPLES; k++)
                    t.data = mix(t.data, (const char *)e->data +
                                             sample_at(e->nbytes, k),
                                 SAMPLE);
            s->t[s->count++] = t;
        }
        h = meta_mix(h, f[j]);
    }
    s->header = h;
}

/* "6x2048x64" into buf. */
static const char *dims(const mpi_tensor_sig *t, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int d = 0; d < t->ndim && d < TF_MAX_DIMS && n < cap; d++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%lld", d ? "x" : "",
                              (long long)t->shape[d]);
    return buf;
}

int mpi_sig_diff(const mpi_input_sig *a, const mpi_input_sig *b,
                 const char *there, char *how, size_t cap)
{
    char da[128], db[128];
    for (int i = 0; i < a->count || i < b->count; i++) {
        const mpi_tensor_sig *x = &a->t[i], *y = &b->t[i];
        if (i >= a->count || i >= b->count ||
            strcmp(x->name, y->name) != 0) {
            snprintf(how, cap, "tensor %d is %s here, %s on %s", i,
                     i < a->count ? x->name : "missing",
                     i < b->count ? y->name : "missing", there);
            return 1;
        }
        if (x->dtype != y->dtype) {
            snprintf(how, cap, "%s: dtype %s here, %s on %s", x->name,
                     stem_dtype_name((stem_dtype)x->dtype),
                     stem_dtype_name((stem_dtype)y->dtype), there);
            return 1;
        }
        if (x->ndim != y->ndim ||
            memcmp(x->shape, y->shape, sizeof(x->shape)) != 0) {
            snprintf(how, cap, "%s: shape %s here, %s on %s", x->name,
                     dims(x, da, sizeof(da)), dims(y, db, sizeof(db)), there);
            return 1;
        }
        if (x->data != y->data) {
            snprintf(how, cap, "%s: same shape %s and dtype %s, other bytes "
                     "(digest %016llx here, %016llx on %s)", x->name,
                     dims(x, da, sizeof(da)),
                     stem_dtype_name((stem_dtype)x->dtype),
                     (unsigned long long)x->data,
                     (unsigned long long)y->data, there);
            return 1;
        }
    }
    if (a->header != b->header) {
        snprintf(how, cap, "the same tensors, another header (other "
                 "tensors or metadata) than on %s", there);
        return 1;
    }
    return 0;
}

int mpi_same_input(const mpi_job *job, const mpi_input_sig *mine,
                   const char *what)
{
    mpi_input_sig root = *mine;
    char how[600], msg[MPI_MSG_MAX] = "";
    MPI_Bcast(&root, (int)sizeof(root), MPI_BYTE, 0, MPI_COMM_WORLD);
    int rc = CLI_OK;
    if (job->rank != 0 &&
        mpi_sig_diff(mine, &root, "rank 0", how, sizeof(how))) {
        mpi_fmt(msg, "%s differs from rank 0's: %s", what, how);
        rc = CLI_USAGE;
    }
    return mpi_agree(job, rc, msg);
}

/* ------------------------------------------------------------- signals */

static char doomed[4096];
static volatile sig_atomic_t have_doomed;

/* Remove the file, then end of the signal as if unhandled. */
static void on_signal(int sig)
{
    if (have_doomed)
        unlink(doomed);
    signal(sig, SIG_DFL);
    raise(sig);
}

void mpi_remove_on_signal(const char *path)
{
    static const int sigs[] = {SIGTERM, SIGINT, SIGHUP};
    struct sigaction sa;
    have_doomed = 0;
    if (!path || !path[0] || strlen(path) >= sizeof(doomed))
        return;
    memcpy(doomed, path, strlen(path) + 1);
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        sigaction(sigs[i], &sa, NULL);
    have_doomed = 1;
}
