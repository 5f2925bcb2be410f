/*
 * mpi_run.c - `stem-mpi run`: `stem run` with the query heads split over
 * the ranks.
 *
 * Rank r takes the query heads [r Hq / R, (r+1) Hq / R) and the kv heads
 * they read (GQA: query head h reads kv head h / (Hq / Hkv)); it reads only
 * those heads' bytes of q, k and v (positioned reads from the file's
 * header index, tools/io/tensorindex.h), runs the library on them with
 * OpenMP, and writes its rows of block_logits, mask, out and lse in place
 * into one file.  That file is created by rank 0 under a temporary name
 * beside OUT with the whole header (the header and metadata of `stem run`:
 * cli_run_add_meta), written by every rank with pwrite, and renamed over
 * OUT by rank 0 once every rank has written and synced its part.  Each
 * head's results do not depend on the other heads in the call, so the
 * bytes are those of `stem run` for any number of ranks; only "seconds"
 * (the slowest rank's compute time) differs, as between two `stem run`s.
 *
 * Before computing, every rank's command line is compared with rank 0's
 * (the parameters, the mode, OUT) and the input it read with rank 0's
 * (mpi_same_input: shapes, dtypes, a digest of the header and of the
 * bytes of q, k and v), so that ranks given different inputs, as a stale
 * copy on one node would be, cannot write one file that mixes them.
 *
 * Failures: every phase ends with mpi_agree; the message of the lowest
 * failing rank is printed once by rank 0, the temporary file is removed,
 * nothing is left under OUT's name and every rank exits with that rank's
 * code (2 bad input or usage, 3 out of memory or I/O).  A rank that dies
 * makes mpirun end the others; rank 0 then removes the temporary file on
 * the SIGTERM mpirun sends.
 */
#include <errno.h>
#include <fcntl.h>
#include <mpi.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli_common.h"
#include "commands.h"
#include "mpi_common.h"
#include "tensorindex.h"

static void run_usage(FILE *fp)
{
    fputs("usage: mpirun -n R stem-mpi run IN -o OUT.safetensors [--dense] "
          "[options]\n\n"
          "IN: safetensors file or .npy directory with q [Hq,N,d], k and v\n"
          "[Hkv,N,d] (as stem run).  The query heads are split evenly over\n"
          "the R ranks; each rank reads only its heads' bytes of IN and\n"
          "computes them with OpenMP (--threads T or OMP_NUM_THREADS per\n"
          "rank).  OUT is written in place by every rank under a temporary\n"
          "name and renamed by rank 0: its bytes are those of `stem run`\n"
          "(metadata \"seconds\" aside).  One safetensors file only.\n"
          "Every rank must be given the same command line and read the same\n"
          "IN: both are compared with rank 0's before computing (q, k, v\n"
          "shapes, dtypes, a digest of the header and of their bytes).\n"
          "Exit status: 0 success, 2 bad input or usage (also ranks that\n"
          "disagree), 3 out of memory or I/O.\n\n",
          fp);
    cli_run_opts_usage(fp);
}

/* Axis of the heads in a q/k/v tensor of that rank and layout. */
static int head_axis(const tf_index_entry *e, int layout)
{
    int lead = e->ndim == 4 ? 1 : 0;
    return lead + (layout == CLI_LAYOUT_NHD ? 1 : 0);
}

/* A view of heads [h0, h0 + n) of t. */
static stem_tensor sub_heads(const stem_tensor *t, size_t es, int64_t h0,
                             int64_t n)
{
    stem_tensor s = *t;
    s.data = (char *)t->data + (size_t)(h0 * t->head_stride) * es;
    s.heads = n;
    return s;
}

typedef struct part {
    int64_t h0, h1;             /* query heads of this rank */
    int64_t k0, k1;             /* kv heads they read */
    float *out, *lse, *logits;
    uint8_t *mask;
    int64_t selected;           /* kept blocks, for the summary */
} part;

/* Read this rank's heads and compute them.  CLI_OK, or an exit code
 * with msg. */
static int compute_part(const tf_index *idx, const char *in, int layout,
                        const stem_params *p, int dense, const stem_dims *dm,
                        part *pt, char *msg)
{
    int64_t n = pt->h1 - pt->h0, G = dm->hq / dm->hkv;
    if (n == 0)
        return CLI_OK;
    tf_file loc = {0};
    char err[512];
    const char *names[3] = {"q", "k", "v"};
    int rc = CLI_USAGE;
    for (int i = 0; i < 3; i++) {
        const tf_index_entry *e = tf_index_find(idx, names[i]);
        int64_t b = i == 0 ? pt->h0 : pt->k0, c = i == 0 ? n : pt->k1 - pt->k0;
        if (tf_index_load_slice(idx, e, head_axis(e, layout), b, c, &loc, err,
                                sizeof(err)) != 0) {
            mpi_fmt(msg, "run: %s", err);
            rc = cli_exit_tf();
            goto done;
        }
    }
    stem_tensor q, k, v;
    if (cli_load_qkv(&loc, layout, &q, &k, &v, err, sizeof(err)) != 0) {
        mpi_fmt(msg, "run: %s: %s", in, err);
        goto done;
    }
    size_t nblk = (size_t)(dm->qb * dm->kb), nrow = (size_t)dm->lq;
    pt->out = malloc((size_t)n * nrow * (size_t)dm->d * sizeof(float));
    pt->lse = malloc((size_t)n * nrow * sizeof(float));
    if (!dense) {
        pt->logits = malloc((size_t)n * nblk * sizeof(float));
        pt->mask = malloc((size_t)n * nblk);
    }
    if (!pt->out || !pt->lse || (!dense && (!pt->logits || !pt->mask))) {
        mpi_fmt(msg, "run: out of memory for the results of %lld heads",
                (long long)n);
        rc = CLI_INTERNAL;
        goto done;
    }
    /* one call when the heads are whole GQA groups, else one per kv head */
    int whole = pt->h0 % G == 0 && pt->h1 % G == 0;
    for (int64_t g = pt->k0; g < pt->k1; g++) {
        int64_t a = whole ? pt->h0 : (pt->h0 > g * G ? pt->h0 : g * G);
        int64_t b = whole ? pt->h1 : (pt->h1 < (g + 1) * G ? pt->h1
                                                             : (g + 1) * G);
        int64_t kg = whole ? pt->k1 - pt->k0 : 1, ko = whole ? 0 : g - pt->k0;
        int64_t qo = a - pt->h0;
        stem_tensor sq = sub_heads(&q, stem_dtype_size(q.dtype), qo, b - a);
        stem_tensor sk = sub_heads(&k, stem_dtype_size(k.dtype), ko, kg);
        stem_tensor sv = sub_heads(&v, stem_dtype_size(v.dtype), ko, kg);
        stem_tensor so = stem_tensor_hnd(
            pt->out + (size_t)qo * nrow * (size_t)dm->d, STEM_F32, b - a,
            dm->lq, dm->d);
        float *lse = pt->lse + (size_t)qo * nrow;
        stem_status st =
            dense ? stem_attention_dense(p, &sq, &sk, &sv, &so, lse)
                  : stem_prefill(p, &sq, &sk, &sv, &so, lse,
                                 pt->logits + (size_t)qo * nblk,
                                 pt->mask + (size_t)qo * nblk);
        if (st != STEM_OK) {
            const char *d = stem_last_error();
            mpi_fmt(msg, "run: %s: heads %lld..%lld: %s%s%s", in,
                    (long long)a, (long long)(b - 1), stem_strerror(st),
                    d[0] ? ": " : "", d);
            rc = cli_exit_status(st);
            goto done;
        }
        if (whole)
            break;
    }
    if (!dense)
        for (size_t i = 0; i < (size_t)n * nblk; i++)
            pt->selected += pt->mask[i] != 0;
    rc = CLI_OK;
done:
    tf_free(&loc);
    return rc;
}

/* The header rank 0 writes: the tensors `stem run` writes, without data,
 * and its metadata. */
static int build_header(const stem_params *p, int dense, const stem_dims *dm,
                        stem_dtype in_dtype, stem_isa isa, double secs,
                        void **hdr, size_t *hlen, uint64_t off[4], char *msg)
{
    tf_file f = {0};
    char err[256];
    int n = dense ? 2 : 4, rc = -1;
    f.tensors = calloc(4, sizeof(tf_tensor));
    if (!f.tensors) {
        mpi_fmt(msg, "run: out of memory");
        return -1;
    }
    static const char *const names[4] = {"block_logits", "mask", "out",
                                         "lse"};
    for (int i = 0, j = dense ? 2 : 0; i < n; i++, j++) {
        tf_tensor *t = &f.tensors[i];
        snprintf(t->name, sizeof(t->name), "%s", names[j]);
        t->dtype = j == 1 ? STEM_U8 : STEM_F32;
        t->ndim = j == 3 ? 2 : 3;
        t->shape[0] = dm->hq;
        t->shape[1] = j < 2 ? dm->qb : dm->lq;
        t->shape[2] = j < 2 ? dm->kb : dm->d;
        tf_shape_bytes(t->dtype, t->ndim, t->shape, &t->nbytes, err,
                       sizeof(err));
    }
    f.count = n;
    if (cli_run_add_meta(&f, p, dense, in_dtype, isa, secs) != 0) {
        mpi_fmt(msg, "run: cannot build the metadata");
    } else if (tf_safetensors_header(&f, hdr, hlen, err, sizeof(err)) != 0) {
        mpi_fmt(msg, "run: %s", err);
    } else {
        uint64_t at = *hlen;
        for (int i = 0, j = dense ? 2 : 0; i < n; i++, j++) {
            off[j] = at;
            at += f.tensors[i].nbytes;
        }
        rc = 0;
    }
    tf_free(&f);
    return rc;
}

/* Rank 0: the temporary file beside out, with the header, at full size,
 * removed should the job be ended by a signal.  CLI_OK, or CLI_INTERNAL
 * with msg (tmp then names the file to remove, or is ""). */
static int create_tmp(const char *outp, const void *hdr, size_t hlen,
                      uint64_t total, char *tmp, size_t cap, char *msg)
{
    if (snprintf(tmp, cap, "%s.tmp.XXXXXX", outp) >= (int)cap) {
        mpi_fmt(msg, "run: %s: name too long", outp);
        tmp[0] = '\0';
        return CLI_USAGE;
    }
    int fd = mkstemp(tmp);
    if (fd < 0) {
        mpi_fmt(msg, "run: %s: cannot create a temporary file: %s", outp,
                strerror(errno));
        tmp[0] = '\0';
        return CLI_INTERNAL;
    }
    mpi_remove_on_signal(tmp);
    mode_t um = umask(0);
    umask(um);
    int ok = fchmod(fd, 0666 & ~um) == 0 &&
             ftruncate(fd, (off_t)total) == 0 &&
             tf_pwrite_exact(fd, hdr, hlen, 0) == 0;
    if (close(fd) != 0)
        ok = 0;
    if (!ok)
        mpi_fmt(msg, "run: %s: %s", tmp, strerror(errno));
    return ok ? CLI_OK : CLI_INTERNAL;
}

/* Every rank: its rows of each tensor into the file. */
static int write_part(const char *tmp, const part *pt, const stem_dims *dm,
                      int dense, const uint64_t off[4], char *msg)
{
    int64_t n = pt->h1 - pt->h0;
    if (n == 0)
        return 0;
    int fd = open(tmp, O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        mpi_fmt(msg, "run: %s: %s", tmp, strerror(errno));
        return -1;
    }
    uint64_t nblk = (uint64_t)(dm->qb * dm->kb), nrow = (uint64_t)dm->lq,
             h0 = (uint64_t)pt->h0, d = (uint64_t)dm->d;
    int ok = 1;
    if (!dense)
        ok = tf_pwrite_exact(fd, pt->logits, (size_t)n * nblk * 4,
                         off[0] + h0 * nblk * 4) == 0 &&
             tf_pwrite_exact(fd, pt->mask, (size_t)n * nblk,
                         off[1] + h0 * nblk) == 0;
    ok = ok &&
         tf_pwrite_exact(fd, pt->out, (size_t)n * nrow * d * 4,
                     off[2] + h0 * nrow * d * 4) == 0 &&
         tf_pwrite_exact(fd, pt->lse, (size_t)n * nrow * 4,
                     off[3] + h0 * nrow * 4) == 0 &&
         fsync(fd) == 0;
    if (close(fd) != 0)
        ok = 0;
    if (!ok)
        mpi_fmt(msg, "run: %s: write failed: %s", tmp, strerror(errno));
    return ok ? 0 : -1;
}

/* What every rank must have been told alike: the parameters, the mode,
 * the layout, --help, and the output's name. */
#define RUN_FIELDS 24
typedef struct run_settings {
    double v[RUN_FIELDS];
    uint64_t words;             /* digest of the words but IN's */
    char out[1024];
} run_settings;

static const char *const run_field_names[RUN_FIELDS] = {
    "--help", "--dense", "--layout", "--profile", "--block", "--stride",
    "qk_scaled", "norm", "value_rule", "--lambda", "budget_rule",
    "--keep-ratio", "--alpha", "paper_min_k0", "paper_ratio_short",
    "paper_ratio_long", "paper_long_tokens", "--prompt-blocks", "--sinks",
    "--window", "keep_diagonal", "ties_keep_all", "--f64", "--compute"};

static void run_settings_fill(run_settings *s, int help, int dense,
                              int layout, const stem_params *p,
                              const char *outp, int argc, char **argv,
                              const char *in)
{
    double v[RUN_FIELDS] = {
        help, dense, layout, p->profile, p->block, p->stride, p->qk_scaled,
        p->norm, p->value_rule, p->value_weight, p->budget_rule,
        p->keep_ratio, p->alpha, p->paper_min_k0, p->paper_ratio_short,
        p->paper_ratio_long, (double)p->paper_long_tokens,
        (double)p->prompt_blocks, p->sinks, p->window, p->keep_diagonal,
        p->ties_keep_all, p->use_f64, p->compute};
    memset(s, 0, sizeof(*s));
    memcpy(s->v, v, sizeof(v));
    snprintf(s->out, sizeof(s->out), "%s", outp ? outp : "");
    for (int i = 1; i < argc; i++)
        if (argv[i] != in)
            s->words = mpi_digest(s->words, argv[i], strlen(argv[i]) + 1);
}

/* Collective: every rank's settings against rank 0's; CLI_OK, or
 * CLI_USAGE with rank 0 naming the first that differs. */
static int same_settings(const mpi_job *job, const run_settings *mine)
{
    run_settings root = *mine;
    char msg[MPI_MSG_MAX] = "";
    MPI_Bcast(&root, (int)sizeof(root), MPI_BYTE, 0, MPI_COMM_WORLD);
    for (int i = 0; i < RUN_FIELDS && !msg[0]; i++)
        if (memcmp(&mine->v[i], &root.v[i], sizeof(double)) != 0)
            mpi_fmt(msg, "run: the command line differs from rank 0's: %s "
                    "is %.10g here, %.10g on rank 0", run_field_names[i],
                    mine->v[i], root.v[i]);
    if (!msg[0] && strcmp(mine->out, root.out) != 0)
        mpi_fmt(msg, "run: the command line differs from rank 0's: -o %s "
                "here, -o %s on rank 0", mine->out, root.out);
    if (!msg[0] && mine->words != root.words)
        mpi_fmt(msg, "run: the command line differs from rank 0's: other "
                "options, or in another order or spelling");
    return mpi_agree(job, msg[0] ? CLI_USAGE : CLI_OK, msg);
}

/* `stem-mpi run`; see run_usage. */
int mpi_cmd_run(const mpi_job *job, int argc, char **argv)
{
    const char *in = NULL, *outp = NULL;
    int dense = 0, help = 0, rc;
    cli_opts o;
    stem_params p;
    memset(&p, 0, sizeof(p));
    cli_opts_init(&o);
    mpi_msg_clear();
    rc = cli_run_parse(argc, argv, &o, &in, &outp, &dense, &help);
    if (rc == CLI_OK && !help) {
        size_t ol = outp ? strlen(outp) : 0;
        struct stat sb;
        if (!in || !outp) {
            cli_error("run: an input file and -o OUT are required (see "
                      "stem-mpi run --help)");
            rc = CLI_USAGE;
        } else if ((ol >= 4 && strcmp(outp + ol - 4, ".npy") == 0) ||
                   (ol > 0 && outp[ol - 1] == '/') ||
                   (stat(outp, &sb) == 0 && S_ISDIR(sb.st_mode))) {
            cli_error("run: -o %s: stem-mpi writes one safetensors file; "
                      "give a .safetensors name (a directory of .npy files "
                      "is `stem run`'s only)", outp);
            rc = CLI_USAGE;
        } else {
            rc = cli_opts_resolve(&o, &p);
        }
    }
    /* every rank's own command line first, then theirs against rank 0's */
    if ((rc = mpi_agree(job, rc, NULL)) != CLI_OK)
        return rc;
    run_settings set;
    run_settings_fill(&set, help, dense, o.layout, &p, outp, argc, argv, in);
    if ((rc = same_settings(job, &set)) != CLI_OK)
        return rc;
    if (help) {
        if (job->rank == 0)
            run_usage(stdout);
        return CLI_OK;
    }

    char msg[MPI_MSG_MAX] = "", err[512];
    stem_isa isa;
    stem_status st = stem_isa_active(&isa);
    if (st != STEM_OK)
        mpi_fmt(msg, "run: %s (check the STEM_ISA environment variable)",
                stem_strerror(st));
    rc = st == STEM_OK ? CLI_OK : cli_exit_status(st);
    if ((rc = mpi_agree(job, rc, msg)) != CLI_OK)
        return rc;

    /* the input's header, on every rank: shapes, dtypes, where bytes lie */
    tf_index idx = {0};
    tf_file shapes = {0};
    stem_tensor q, k, v;
    stem_dims dm;
    part pt = {0};
    void *hdr = NULL;
    char tmp[4096] = "";
    mpi_input_sig sig;
    const char *qkv[3] = {"q", "k", "v"};
    rc = CLI_OK;
    if (tf_index_read(in, &idx, err, sizeof(err)) != 0) {
        mpi_fmt(msg, "run: %s", err);
        rc = cli_exit_tf();
    }
    /* the whole tensors' views (never dereferenced) for the shape checks
     * and messages of `stem run` */
    static double dummy[1];
    for (int i = 0; rc == CLI_OK && i < 3; i++) {
        const tf_index_entry *e = tf_index_find(&idx, qkv[i]);
        if (e && tf_push_tensor(&shapes, e->name, e->dtype, e->ndim, e->shape,
                                dummy, e->nbytes, err, sizeof(err)) != 0) {
            mpi_fmt(msg, "run: %s: %s", in, err);
            rc = CLI_INTERNAL;
        }
    }
    if (rc == CLI_OK && cli_load_qkv(&shapes, o.layout, &q, &k, &v, err,
                                     sizeof(err)) != 0) {
        mpi_fmt(msg, "run: %s: %s", in, err);
        rc = CLI_USAGE;
    }
    if (rc == CLI_OK &&
        (st = stem_dims_get(&p, &q, &k, &v, !dense, &dm)) != STEM_OK) {
        mpi_fmt(msg, "run: %s: q %lldx%lldx%lld, k %lldx%lldx%lld: %s", in,
                (long long)q.heads, (long long)q.tokens, (long long)q.dim,
                (long long)k.heads, (long long)k.tokens, (long long)k.dim,
                stem_strerror(st));
        rc = cli_exit_status(st);
    }
    if (rc == CLI_OK && mpi_sig_index(&idx, qkv, 3, &sig, err,
                                      sizeof(err)) != 0) {
        mpi_fmt(msg, "run: %s", err);
        rc = CLI_USAGE;
    }
    if ((rc = mpi_agree(job, rc, msg)) != CLI_OK)
        goto done;
    /* the same input on every rank: else the file would mix them */
    mpi_fmt(msg, "run: the input %s", in);
    if ((rc = mpi_same_input(job, &sig, msg)) != CLI_OK)
        goto done;

    /* this rank's heads, read and computed */
    int64_t G = dm.hq / dm.hkv;
    pt.h0 = dm.hq * job->rank / job->size;
    pt.h1 = dm.hq * (job->rank + 1) / job->size;
    pt.k0 = pt.h0 / G;
    pt.k1 = pt.h1 > pt.h0 ? (pt.h1 - 1) / G + 1 : pt.k0;
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = cli_now();
    msg[0] = '\0';
    rc = compute_part(&idx, in, o.layout, &p, dense, &dm, &pt, msg);
    double secs = cli_now() - t0, wall;
    MPI_Allreduce(&secs, &wall, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    if ((rc = mpi_agree(job, rc, msg)) != CLI_OK)
        goto done;

    /* rank 0: header and temporary file; every rank: its rows */
    uint64_t off[4] = {0}, total = 0;
    size_t hlen = 0;
    if (job->rank == 0) {
        rc = build_header(&p, dense, &dm, q.dtype, isa, wall, &hdr, &hlen,
                          off, msg) == 0 ? CLI_OK : CLI_INTERNAL;
        total = off[3] + (uint64_t)(dm.hq * dm.lq) * 4;
        if (rc == CLI_OK)
            rc = create_tmp(outp, hdr, hlen, total, tmp, sizeof(tmp), msg);
    }
    MPI_Bcast(off, 4, MPI_UINT64_T, 0, MPI_COMM_WORLD);
    MPI_Bcast(tmp, sizeof(tmp), MPI_CHAR, 0, MPI_COMM_WORLD);
    if ((rc = mpi_agree(job, rc, msg)) != CLI_OK)
        goto done;
    rc = write_part(tmp, &pt, &dm, dense, off, msg) == 0 ? CLI_OK
                                                           : CLI_INTERNAL;
    if ((rc = mpi_agree(job, rc, msg)) != CLI_OK)
        goto done;
    if (job->rank == 0 && rename(tmp, outp) != 0) {
        mpi_fmt(msg, "run: %s: %s", outp, strerror(errno));
        rc = CLI_INTERNAL;
    }
    if ((rc = mpi_agree(job, rc, msg)) != CLI_OK)
        goto done;
    if (job->rank == 0)
        mpi_remove_on_signal(NULL);
    tmp[0] = '\0';

    int64_t sel = 0;
    MPI_Reduce(&pt.selected, &sel, 1, MPI_INT64_T, MPI_SUM, 0,
               MPI_COMM_WORLD);
    if (job->rank == 0 && dense) {
        fprintf(stderr, "stem-mpi: run dense: %.3f s, %lld heads x %lld "
                "tokens, isa %s, %d ranks x %d threads\n", wall,
                (long long)dm.hq, (long long)dm.lq, stem_isa_name(isa),
                job->size, omp_get_max_threads());
    } else if (job->rank == 0) {
        int64_t causal = 0, pb = dm.offset / p.block;
        for (int64_t I = 0; I < dm.qb; I++)
            causal += (I + pb + 1 < dm.kb) ? I + pb + 1 : dm.kb;
        causal *= dm.hq;
        fprintf(stderr, "stem-mpi: run stem (%s): %.3f s, mask density "
                "%.4f, causal density %.4f (%lld of %lld causal blocks), isa "
                "%s, %d ranks x %d threads\n", stem_profile_name(p.profile),
                wall, (double)sel / (double)(dm.hq * dm.qb * dm.kb),
                (double)sel / (double)causal, (long long)sel,
                (long long)causal, stem_isa_name(isa), job->size,
                omp_get_max_threads());
    }
done:
    if (job->rank == 0 && tmp[0]) {
        unlink(tmp);
        mpi_remove_on_signal(NULL);
    }
    free(hdr);
    free(pt.out);
    free(pt.lse);
    free(pt.logits);
    free(pt.mask);
    tf_free(&shapes);
    tf_index_free(&idx);
    return rc;
}
