/*
 * mpi_check.c - `stem-mpi check`: many dump files judged as `stem check`
 * judges each, the work spread over the ranks of an MPI job.
 *
 * A work unit is one (dump, query head).  Rank 0 reads each dump's header
 * for its number of query heads (tools/io/tensorindex.h) and hands units
 * out one at a time to the ranks that ask, preferring the dump a rank had
 * last (a rank keeps the dump it loaded for its next unit of that dump).
 * A rank judges a unit with stem check's own code (tools/cli/cmd_check.h):
 * the same option grammar, metadata rules, dtype choice, and the library's
 * stem_check on the loaded tensors for that one head, so each head's
 * verdict is the one `stem check --heads H` gives; a dump's verdict is FAIL
 * when any of its heads fails, as stem_check's verdict over all heads.  The
 * unit's report (stem_check_report_json) goes back to rank 0, which prints
 * one report: a verdict per dump and head, the worst offenders overall, and
 * writes every unit's report into --json.
 *
 * Before any unit, every rank's command line (the dumps and the options)
 * is compared with rank 0's.  With each unit a rank sends the signature of
 * the dump it read (mpi_common.h); a dump read differently by two ranks
 * (a stale copy on one node) is bad input, not a mixed verdict.
 *
 * With one rank, rank 0 judges every unit itself; with more, rank 0 only
 * hands out units and gathers reports (it sleeps between messages rather
 * than spinning, so it costs its node little CPU).
 *
 * Exit status: 0 every head of every dump passes, 1 a fault in some head,
 * 2 bad input (a dump stem check refuses, reported with its message) or a
 * bad command line, 3 an internal failure (out of memory, I/O).
 */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli_common.h"
#include "cmd_check.h"
#include "mpi_common.h"
#include "tensorindex.h"

#define TAG_WORK 11             /* rank 0 -> worker: {dump, head} */
#define TAG_DONE 12             /* worker -> 0: {dump, head, rc, len} */
#define TAG_TEXT 13             /* worker -> 0: the report or message */
#define TAG_SIG 14              /* worker -> 0: the dump's signature */

static void check_usage(FILE *fp)
{
    fputs("usage: mpirun -n R stem-mpi check DUMP|DIR... [--pair IN GPU]... "
          "[--json R.json]\n"
          "                [--list N] [stem check options]\n\n"
          "Each DUMP is a file or .npy directory holding q, k, v and the\n"
          "GPU's outputs, as `stem check DUMP` takes it; a DIR that is not a\n"
          "dump stands for the dumps in it (*.safetensors files and .npy\n"
          "directories, in name order); --pair IN GPU adds the pair\n"
          "`stem check IN GPU` takes.  Every (dump, query head) is judged\n"
          "as `stem check --heads H` judges it, on some rank, rank 0 handing\n"
          "the units out; one report at the end: a verdict per dump and\n"
          "head and the worst offenders overall (--list N of them, default\n"
          "20).  --json R.json: that report with every unit's stem check\n"
          "report.  The other options are stem check's, read by the same\n"
          "code (see stem check --help), and apply to every dump; --heads\n"
          "is not one of them here.\n"
          "Every rank must be given the same command line; a dump that two\n"
          "ranks read differently is bad input.\n"
          "Exit status: 0 everything passes, 1 a fault, 2 bad input or "
          "usage,\n3 internal failure.\n\n"
          "stem check's options (its table; stem check --help says what "
          "each does):\n", fp);
    cli_check_opts_usage(fp);
    cli_opts_usage(fp);
}

typedef struct dump {
    char *in, *gpu;             /* gpu NULL: one file holds both */
    int64_t heads;              /* 0: unknown (one unit, all heads) */
    int64_t next;               /* next head to hand out */
    int active;                 /* ranks on it now */
    int bad;                    /* exit code of a refusal (2, 3), or 0 */
    char *msg;                  /* that refusal's message */
    int sig_rank;               /* rank whose signature sig is, or -1 */
    mpi_input_sig sig;          /* the dump as the first rank read it */
    cJSON **reports;            /* [max(heads,1)] unit reports */
    int *rc;                    /* [max(heads,1)] unit exit codes */
} dump;

typedef struct job_args {
    check_args ca;              /* stem check's options */
    cli_opts o;
    long long list;
    uint64_t opts;              /* digest of the options' words */
    dump *d;
    int nd;
} job_args;

/* A rank's loaded dump, kept for its next unit of the same dump. */
typedef struct loaded {
    int di;                     /* dump index, or -1 */
    int rc;                     /* its loading's exit code */
    char msg[MPI_MSG_MAX];      /* and message when that failed */
    check_case c;
    mpi_input_sig sig;
} loaded;

static int add_dump(job_args *a, const char *in, const char *gpu)
{
    dump *d = realloc(a->d, (size_t)(a->nd + 1) * sizeof(*d));
    if (!d)
        return -1;
    a->d = d;
    d = &a->d[a->nd];
    memset(d, 0, sizeof(*d));
    d->sig_rank = -1;
    d->in = strdup(in);
    d->gpu = gpu ? strdup(gpu) : NULL;
    a->nd++;
    if (!d->in || (gpu && !d->gpu))
        return -1;
    return 0;
}

static int cmp_str(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

/* 1 when directory path is itself a dump (holds q.npy). */
static int dir_is_dump(const char *path)
{
    char p[4096];
    struct stat sb;
    return snprintf(p, sizeof(p), "%s/q.npy", path) < (int)sizeof(p) &&
           stat(p, &sb) == 0;
}

/* A directory of dumps: its *.safetensors and dump directories. */
static int add_dir(job_args *a, const char *dir)
{
    DIR *dd = opendir(dir);
    if (!dd)
        return -1;
    char **names = NULL;
    int n = 0, rc = 0;
    struct dirent *e;
    while ((e = readdir(dd)) != NULL) {
        char p[4096];
        struct stat sb;
        size_t l = strlen(e->d_name);
        if (e->d_name[0] == '.' ||
            snprintf(p, sizeof(p), "%s/%s", dir, e->d_name) >=
                (int)sizeof(p) || stat(p, &sb) != 0)
            continue;
        if (!(S_ISREG(sb.st_mode) && l > 12 &&
              strcmp(e->d_name + l - 12, ".safetensors") == 0) &&
            !(S_ISDIR(sb.st_mode) && dir_is_dump(p)))
            continue;
        char **nn = realloc(names, (size_t)(n + 1) * sizeof(*nn));
        if (!nn || !(nn[n] = strdup(p))) {
            free(nn ? nn : names);
            closedir(dd);
            return -1;
        }
        names = nn;
        n++;
    }
    closedir(dd);
    if (n)
        qsort(names, (size_t)n, sizeof(*names), cmp_str);
    for (int i = 0; i < n; i++) {
        if (rc == 0 && add_dump(a, names[i], NULL) != 0)
            rc = -1;
        free(names[i]);
    }
    free(names);
    return rc;
}

/* h with the words argv[from..to). */
static uint64_t digest_words(uint64_t h, char **argv, int from, int to)
{
    for (int j = from; j < to; j++)
        h = mpi_digest(h, argv[j], strlen(argv[j]) + 1);
    return h;
}

/* Parse the command line: --pair, --list and the dumps here, every other
 * option by stem check's grammar (cli_check_opt).  CLI_OK or CLI_USAGE
 * after a message (through cli_error). */
static int parse(int argc, char **argv, job_args *a, int *help)
{
    memset(a, 0, sizeof(*a));
    cli_opts_init(&a->o);
    a->list = 20;
    for (int i = 1; i < argc;) {
        const char *s = argv[i], *v;
        int r, at = i;
        if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) {
            *help = 1;
            return CLI_OK;
        }
        if ((r = cli_opt_value(argc, argv, &i, "--list", &v)) != 0) {
            if (r < 0 || cli_parse_int("--list", v, 0, 1000000, &a->list))
                return CLI_USAGE;
            a->opts = digest_words(a->opts, argv, at, i);
            continue;
        }
        if (strcmp(s, "--pair") == 0) {
            if (i + 2 >= argc) {
                cli_error("check: --pair needs IN and GPU");
                return CLI_USAGE;
            }
            if (add_dump(a, argv[i + 1], argv[i + 2]) != 0) {
                cli_error("check: out of memory");
                return CLI_INTERNAL;
            }
            i += 3;
            continue;
        }
        if ((r = cli_check_opt(argc, argv, &i, &a->ca, &a->o)) != 0) {
            if (r < 0)
                return CLI_USAGE;
            if (a->ca.have_heads) {
                cli_error("check: --heads: stem-mpi check judges every "
                          "head, one unit per head");
                return CLI_USAGE;
            }
            a->opts = digest_words(a->opts, argv, at, i);
            continue;
        }
        if (s[0] == '-' && s[1] != '\0') {
            cli_error("check: unknown option '%s'", s);
            return CLI_USAGE;
        }
        struct stat sb;
        int isdir = stat(s, &sb) == 0 && S_ISDIR(sb.st_mode) &&
                    !dir_is_dump(s);
        errno = 0;
        if ((isdir ? add_dir(a, s) : add_dump(a, s, NULL)) != 0) {
            cli_error("check: %s: %s", s,
                      errno ? strerror(errno) : "out of memory");
            return errno == ENOMEM || !errno ? CLI_INTERNAL : CLI_USAGE;
        }
        i++;
    }
    if (a->nd == 0) {
        cli_error("check: no dump to check (see stem-mpi check --help)");
        return CLI_USAGE;
    }
    return cli_check_args_final(&a->ca);
}

/* Collective: the dumps and options against rank 0's.  CLI_OK, or
 * CLI_USAGE with rank 0 saying what differs. */
static int same_job(const mpi_job *job, const job_args *a)
{
    int64_t mine[3] = {a->nd, 0, (int64_t)a->opts}, root[3];
    int first = -1;
    uint64_t h = 2;
    for (int i = 0; i < a->nd; i++) {
        uint64_t hi = mpi_digest(3, a->d[i].in, strlen(a->d[i].in) + 1);
        if (a->d[i].gpu)
            hi = mpi_digest(hi, a->d[i].gpu, strlen(a->d[i].gpu) + 1);
        h = mpi_digest(h, &hi, sizeof(hi));
    }
    mine[1] = (int64_t)h;
    memcpy(root, mine, sizeof(root));
    MPI_Bcast(root, 3, MPI_INT64_T, 0, MPI_COMM_WORLD);
    char msg[MPI_MSG_MAX] = "";
    if (mine[0] != root[0])
        mpi_fmt(msg, "check: the command line differs from rank 0's: %lld "
                "dumps here, %lld on rank 0", (long long)mine[0],
                (long long)root[0]);
    else if (mine[1] != root[1])
        first = 0;
    else if (mine[2] != root[2])
        mpi_fmt(msg, "check: the command line differs from rank 0's: other "
                "options, or in another order or spelling");
    if (first == 0)
        mpi_fmt(msg, "check: the command line differs from rank 0's: other "
                "dumps or another order (the first here: %s)", a->d[0].in);
    return mpi_agree(job, msg[0] ? CLI_USAGE : CLI_OK, msg);
}

/* Query heads of a dump from its header (0 if it cannot tell: then the
 * dump is one unit and loading it says what is wrong). */
static int64_t dump_heads(const dump *d, const job_args *a)
{
    int nhd = a->o.layout == CLI_LAYOUT_NHD;
    tf_index idx;
    char err[256];
    if (tf_index_read(d->in, &idx, err, sizeof(err)) != 0)
        return 0;
    const tf_index_entry *q = tf_index_find(&idx, "q");
    int64_t h = 0;
    if (q && (q->ndim == 3 || (q->ndim == 4 && q->shape[0] == 1)))
        h = q->shape[(q->ndim == 4) + nhd];
    tf_index_free(&idx);
    return h > 0 && h < (1 << 24) ? h : 0;
}

/*
 * Judge one unit (head -1: every head) of dump di, loading it unless l
 * holds it already.  Returns the unit's exit code: CLI_OK or CLI_FAIL with
 * *text the JSON report, or a refusal's code with *text its message
 * (malloc'd; NULL only when out of memory).  *sig: the dump as read.
 */
static int judge(const job_args *a, loaded *l, int di, int64_t head,
                 char **text, mpi_input_sig *sig)
{
    const dump *d = &a->d[di];
    *text = NULL;
    if (l->di != di) {
        cli_check_free(&l->c);
        mpi_msg_clear();
        l->di = di;
        l->rc = cli_check_load(&a->ca, &a->o, d->in, d->gpu, &l->c);
        snprintf(l->msg, sizeof(l->msg), "%s", mpi_msg());
        memset(&l->sig, 0, sizeof(l->sig));
        if (l->rc == CLI_OK) {
            const tf_file *f[2] = {&l->c.fin, &l->c.fgpu};
            mpi_sig_files(f, l->c.fgpu.count ? 2 : 1, &l->sig);
        }
    }
    *sig = l->sig;
    if (l->rc != CLI_OK) {
        *text = strdup(l->msg[0] ? l->msg : "check: failed without a "
                                            "message");
        return l->rc;
    }
    stem_check_report rep;
    mpi_msg_clear();
    int rc = cli_check_judge(&a->ca, &l->c, head < 0 ? 0 : head,
                             head < 0 ? 0 : 1, &rep);
    if (rc != CLI_OK) {
        *text = strdup(mpi_msg()[0] ? mpi_msg() : "check: failed");
        return rc;
    }
    size_t n = stem_check_report_json(&rep, NULL, 0);
    if ((*text = malloc(n + 1)) != NULL) {
        stem_check_report_json(&rep, *text, n + 1);
        rc = rep.verdict == STEM_CHECK_PASS ? CLI_OK : CLI_FAIL;
    } else {
        rc = CLI_INTERNAL;
    }
    stem_check_report_free(&rep);
    return rc;
}

/* Rank 0 refuses dump d with exit code rc and message msg (taken). */
static void refuse(dump *d, int rc, char *msg)
{
    if (!d->bad) {
        d->bad = rc;
        d->msg = msg;
        msg = NULL;
    }
    d->next = d->heads ? d->heads : 1;     /* no more units of it */
    free(msg);
}

/* Rank 0 keeps a unit's outcome, judged by rank `from` on the dump as
 * sig says it read it. */
static void record(job_args *a, int di, int64_t head, int rc, char *text,
                   int from, const mpi_input_sig *sig)
{
    dump *d = &a->d[di];
    int64_t slot = head < 0 ? 0 : head;
    char how[600];
    if (rc == CLI_OK || rc == CLI_FAIL) {
        if (d->sig_rank < 0) {
            d->sig = *sig;
            d->sig_rank = from;
        } else if (mpi_sig_diff(sig, &d->sig, "", how, sizeof(how))) {
            char there[32], *m = malloc(MPI_MSG_MAX);
            snprintf(there, sizeof(there), "rank %d", d->sig_rank);
            mpi_sig_diff(sig, &d->sig, there, how, sizeof(how));
            if (m)
                snprintf(m, MPI_MSG_MAX, "check: rank %d read it otherwise "
                         "than rank %d: %s", from, d->sig_rank, how);
            refuse(d, CLI_USAGE, m);
        }
    }
    if (rc != CLI_OK && rc != CLI_FAIL) {
        refuse(d, rc, text ? text : strdup("check: out of memory"));
        text = NULL;
    } else if (d->reports && !d->bad) {
        d->reports[slot] = cJSON_Parse(text ? text : "");
        if (!d->reports[slot])
            refuse(d, CLI_INTERNAL, strdup("check: unreadable unit report"));
    }
    if (d->rc)
        d->rc[slot] = rc;
    free(text);
}

/* The next unit for a rank that last worked on dump `last`: more of the
 * same dump, else the dump with heads left and the fewest ranks on it. */
static int next_unit(job_args *a, int last, int *di, int64_t *head)
{
#define LEFT(d) ((d)->next < ((d)->heads ? (d)->heads : 1))
    int best = -1, same = last >= 0 && LEFT(&a->d[last]);
    if (same)
        best = last;
    for (int i = 0; !same && i < a->nd; i++)
        if (LEFT(&a->d[i]) &&
            (best < 0 || a->d[i].active < a->d[best].active))
            best = i;
#undef LEFT
    if (best < 0)
        return 0;
    dump *d = &a->d[best];
    *di = best;
    *head = d->heads ? d->next : -1;
    d->next++;
    return 1;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Rank 0 with worker ranks: hand out units, gather outcomes. */
static void serve(const mpi_job *job, job_args *a, int *last)
{
    int busy = 0;
    for (int r = 0; r < job->size; r++)
        last[r] = -1;
    /* every worker starts with a unit, or is told to stop */
    for (int r = 1; r < job->size; r++) {
        int64_t msg[2] = {-1, -1};
        int di;
        int64_t h;
        if (next_unit(a, -1, &di, &h)) {
            msg[0] = di;
            msg[1] = h;
            a->d[di].active++;
            last[r] = di;
            busy++;
        }
        MPI_Send(msg, 2, MPI_INT64_T, r, TAG_WORK, MPI_COMM_WORLD);
    }
    while (busy > 0) {
        int flag = 0;
        MPI_Status st;
        MPI_Iprobe(MPI_ANY_SOURCE, TAG_DONE, MPI_COMM_WORLD, &flag, &st);
        if (!flag) {
            sleep_ms(2);
            continue;
        }
        int src = st.MPI_SOURCE;
        int64_t res[4];
        mpi_input_sig sig;
        MPI_Recv(res, 4, MPI_INT64_T, src, TAG_DONE, MPI_COMM_WORLD,
                 MPI_STATUS_IGNORE);
        char *text = malloc((size_t)res[3] + 1);
        /* the text is received even without room for it (into a byte) */
        char sink;
        MPI_Recv(text ? text : &sink, text ? (int)res[3] : 1, MPI_CHAR, src,
                 TAG_TEXT, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        MPI_Recv(&sig, (int)sizeof(sig), MPI_BYTE, src, TAG_SIG,
                 MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        if (text)
            text[res[3]] = '\0';
        a->d[res[0]].active--;
        record(a, (int)res[0], res[1], text ? (int)res[2] : CLI_INTERNAL,
               text, src, &sig);
        int64_t msg[2] = {-1, -1};
        int di;
        int64_t h;
        if (next_unit(a, last[src], &di, &h)) {
            msg[0] = di;
            msg[1] = h;
            a->d[di].active++;
            last[src] = di;
        } else {
            busy--;
        }
        MPI_Send(msg, 2, MPI_INT64_T, src, TAG_WORK, MPI_COMM_WORLD);
    }
}

/* A worker: judge units until told to stop. */
static void work(const job_args *a, loaded *l)
{
    for (;;) {
        int64_t msg[2];
        MPI_Recv(msg, 2, MPI_INT64_T, 0, TAG_WORK, MPI_COMM_WORLD,
                 MPI_STATUS_IGNORE);
        if (msg[0] < 0)
            return;
        char *text = NULL;
        mpi_input_sig sig;
        int rc = judge(a, l, (int)msg[0], msg[1], &text, &sig);
        const char *t = text ? text : "check: out of memory";
        int64_t res[4] = {msg[0], msg[1], text ? rc : CLI_INTERNAL,
                          (int64_t)strlen(t)};
        if (res[3] > (1 << 30))
            res[3] = 1 << 30;
        MPI_Send(res, 4, MPI_INT64_T, 0, TAG_DONE, MPI_COMM_WORLD);
        MPI_Send(t, (int)res[3], MPI_CHAR, 0, TAG_TEXT, MPI_COMM_WORLD);
        MPI_Send(&sig, (int)sizeof(sig), MPI_BYTE, 0, TAG_SIG,
                 MPI_COMM_WORLD);
        free(text);
    }
}

/* One offender of the whole job. */
typedef struct worst {
    double ratio;
    int dump;
    const cJSON *item;
    const char *stage;
} worst;

static int cmp_worst(const void *x, const void *y)
{
    double a = ((const worst *)x)->ratio, b = ((const worst *)y)->ratio;
    return (a < b) - (a > b);
}

static double jnum(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static const char *dump_name(const dump *d, char *buf, size_t cap)
{
    if (d->gpu)
        snprintf(buf, cap, "%s against %s", d->gpu, d->in);
    else
        snprintf(buf, cap, "%s", d->in);
    return buf;
}

/* Rank 0: the report on stdout and in --json.  Returns the exit code. */
static int report(const mpi_job *job, job_args *a, double secs)
{
    int nbad = 0, nfail = 0, nerr = 0;
    int64_t units = 0, hfail = 0;
    worst *w = NULL;
    size_t nw = 0, cw = 0;
    cJSON *root = cJSON_CreateObject(), *files = cJSON_CreateArray();
    char name[8300];
    printf("stem-mpi check: %d dumps on %d ranks (%.2f s)\n", a->nd,
           job->size, secs);
    for (int i = 0; i < a->nd; i++) {
        dump *d = &a->d[i];
        int64_t nh = d->heads ? d->heads : 1;
        int fail = 0;
        cJSON *jf = cJSON_CreateObject(), *jh = cJSON_CreateArray();
        cJSON_AddStringToObject(jf, "in", d->in);
        if (d->gpu)
            cJSON_AddStringToObject(jf, "gpu", d->gpu);
        /* failing heads and their failing stages */
        char heads[600] = "";
        size_t hl = 0;
        for (int64_t h = 0; !d->bad && h < nh; h++) {
            cJSON *r = d->reports[h];
            int hf = d->rc[h] == CLI_FAIL;
            units++;
            fail |= hf;
            hfail += hf;
            cJSON *u = cJSON_CreateObject();
            cJSON_AddNumberToObject(u, "head", d->heads ? (double)h : -1);
            cJSON_AddStringToObject(u, "result", hf ? "fail" : "pass");
            const cJSON *stages = cJSON_GetObjectItemCaseSensitive(r,
                                                                   "stages");
            const cJSON *sg;
            char st[120] = "";
            size_t sl = 0;
            cJSON_ArrayForEach(sg, stages)
            {
                const cJSON *items =
                    cJSON_GetObjectItemCaseSensitive(sg, "items");
                if (strcmp(jstr(sg, "verdict"), "fail") == 0 &&
                    sl + 16 < sizeof(st))
                    sl += (size_t)snprintf(st + sl, sizeof(st) - sl, "%s%s",
                                           sl ? "," : "", sg->string);
                const cJSON *it;
                cJSON_ArrayForEach(it, items)
                {
                    const cJSON *f = cJSON_GetObjectItemCaseSensitive(it,
                                                                      "fault");
                    if (!cJSON_IsTrue(f))
                        continue;
                    if (nw == cw) {
                        cw = cw ? 2 * cw : 64;
                        worst *nwp = realloc(w, cw * sizeof(*w));
                        if (!nwp)
                            break;
                        w = nwp;
                    }
                    double lim = jnum(it, "limit"), err = jnum(it, "err");
                    w[nw].ratio = lim > 0 ? err / lim : INFINITY;
                    if (isnan(w[nw].ratio))
                        w[nw].ratio = INFINITY;
                    w[nw].dump = i;
                    w[nw].item = it;
                    w[nw].stage = sg->string;
                    nw++;
                }
            }
            if (hf && hl + 40 < sizeof(heads))
                hl += (size_t)snprintf(heads + hl, sizeof(heads) - hl,
                                       "%s%lld (%s)", hl ? ", " : "",
                                       (long long)h, st);
            cJSON_AddStringToObject(u, "failed_stages", st);
            cJSON_AddItemToObject(u, "report", r);
            d->reports[h] = NULL;
            cJSON_AddItemToArray(jh, u);
        }
        dump_name(d, name, sizeof(name));
        if (d->bad) {
            int internal = d->bad == CLI_INTERNAL;
            nbad += !internal;
            nerr += internal;
            printf("%s %s: %s\n", internal ? "ERROR" : "BAD  ", name,
                   d->msg ? d->msg : "?");
            cJSON_AddStringToObject(jf, "result",
                                    internal ? "error" : "bad input");
            cJSON_AddStringToObject(jf, "error", d->msg ? d->msg : "?");
        } else {
            nfail += fail;
            if (fail)
                printf("FAIL  %s: heads %s%s\n", name, heads,
                       hl + 40 >= sizeof(heads) ? ", ..." : "");
            else
                printf("PASS  %s: %lld heads\n", name, (long long)nh);
            cJSON_AddStringToObject(jf, "result", fail ? "fail" : "pass");
        }
        cJSON_AddItemToObject(jf, "heads", jh);
        cJSON_AddItemToArray(files, jf);
    }
    if (nw)
        qsort(w, nw, sizeof(*w), cmp_worst);
    cJSON *jw = cJSON_CreateArray();
    if (nw)
        printf("worst offenders (fault error / limit):\n");
    for (size_t i = 0; i < nw && (long long)i < a->list; i++) {
        const cJSON *it = w[i].item;
        printf("  %8.3g  %s  head %lld  %s: %s", w[i].ratio,
               a->d[w[i].dump].gpu ? a->d[w[i].dump].gpu : a->d[w[i].dump].in,
               (long long)jnum(it, "head"), w[i].stage, jstr(it, "kind"));
        if (jnum(it, "qblock") >= 0)
            printf(" qblock %lld", (long long)jnum(it, "qblock"));
        if (jnum(it, "kblock") >= 0)
            printf(" kblock %lld", (long long)jnum(it, "kblock"));
        if (jnum(it, "row") >= 0)
            printf(" row %lld", (long long)jnum(it, "row"));
        printf(" (err %.3g, limit %.3g)\n", jnum(it, "err"),
               jnum(it, "limit"));
        cJSON *o = cJSON_Duplicate(it, 1);
        if (o) {
            cJSON_AddStringToObject(o, "dump", a->d[w[i].dump].gpu
                                                   ? a->d[w[i].dump].gpu
                                                   : a->d[w[i].dump].in);
            cJSON_AddStringToObject(o, "stage", w[i].stage);
            cJSON_AddNumberToObject(o, "ratio", isinf(w[i].ratio)
                                                    ? 1e308 : w[i].ratio);
            cJSON_AddItemToArray(jw, o);
        }
    }
    int rc = nerr ? CLI_INTERNAL : nbad ? CLI_USAGE : nfail ? CLI_FAIL
                                                            : CLI_OK;
    const char *res = nerr ? "error" : nbad ? "bad input" : nfail ? "fail"
                                                                  : "pass";
    printf("result: %s: %d of %d dumps fail (%lld of %lld heads), %d bad "
           "input%s\n", nerr ? "ERROR" : nbad ? "BAD INPUT" : nfail ? "FAIL"
                                                                  : "PASS",
           nfail, a->nd, (long long)hfail, (long long)units, nbad,
           nerr ? ", errors" : "");
    cJSON_AddStringToObject(root, "result", res);
    cJSON_AddNumberToObject(root, "ranks", job->size);
    cJSON_AddNumberToObject(root, "seconds", secs);
    cJSON_AddNumberToObject(root, "dumps_failed", nfail);
    cJSON_AddNumberToObject(root, "dumps_bad", nbad);
    cJSON_AddNumberToObject(root, "dumps_error", nerr);
    cJSON_AddNumberToObject(root, "heads_failed", (double)hfail);
    cJSON_AddItemToObject(root, "worst", jw);
    cJSON_AddItemToObject(root, "dumps", files);
    if (a->ca.json) {
        char *t = cJSON_Print(root);
        char err[512];
        const void *ptrs[2] = {t, "\n"};
        size_t lens[2] = {t ? strlen(t) : 0, 1};
        if (!t || tf_write_atomic(a->ca.json, 2, ptrs, lens, err,
                                  sizeof(err)) != 0) {
            fprintf(stderr, "stem-mpi: check: %s\n",
                    t ? err : "out of memory");
            rc = t ? cli_exit_tf() : CLI_INTERNAL;
        }
        cJSON_free(t);
    }
    cJSON_Delete(root);
    free(w);
    fflush(stdout);
    return rc;
}

/* `stem-mpi check`; see check_usage. */
int mpi_cmd_check(const mpi_job *job, int argc, char **argv)
{
    job_args a;
    loaded l;
    int help = 0, *last = NULL;
    memset(&l, 0, sizeof(l));
    l.di = -1;
    mpi_msg_clear();
    int rc = parse(argc, argv, &a, &help);
    /* every rank's own command line first, then theirs against rank 0's */
    if ((rc = mpi_agree(job, rc, NULL)) != CLI_OK)
        goto done;
    int h0 = help;
    MPI_Bcast(&h0, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if ((rc = mpi_agree(job, h0 != help ? CLI_USAGE : CLI_OK,
                        "check: the command line differs from rank 0's "
                        "(--help)")) != CLI_OK)
        goto done;
    if (help) {
        if (job->rank == 0)
            check_usage(stdout);
        goto done;
    }
    if ((rc = same_job(job, &a)) != CLI_OK)
        goto done;
    double t0 = cli_now();
    if (job->rank == 0) {
        last = malloc((size_t)job->size * sizeof(int));
        for (int i = 0; last && i < a.nd; i++) {
            dump *d = &a.d[i];
            int64_t nh;
            d->heads = dump_heads(d, &a);
            nh = d->heads ? d->heads : 1;
            d->reports = calloc((size_t)nh, sizeof(cJSON *));
            d->rc = calloc((size_t)nh, sizeof(int));
            if (!d->reports || !d->rc)
                break;
        }
        if (!last || (a.nd && (!a.d[a.nd - 1].reports || !a.d[a.nd - 1].rc)))
            rc = CLI_INTERNAL;
    }
    if ((rc = mpi_agree(job, rc, "check: out of memory")) != CLI_OK)
        goto done;
    if (job->size == 1) {
        int di;
        int64_t h;
        while (next_unit(&a, -1, &di, &h)) {
            char *text = NULL;
            mpi_input_sig sig;
            int r = judge(&a, &l, di, h, &text, &sig);
            record(&a, di, h, text ? r : CLI_INTERNAL, text, 0, &sig);
        }
    } else if (job->rank == 0) {
        serve(job, &a, last);
    } else {
        work(&a, &l);
    }
    if (job->rank == 0)
        rc = report(job, &a, cli_now() - t0);
    MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
done:
    cli_check_free(&l.c);
    free(last);
    for (int i = 0; i < a.nd; i++) {
        dump *d = &a.d[i];
        for (int64_t h = 0; d->reports && h < (d->heads ? d->heads : 1); h++)
            cJSON_Delete(d->reports[h]);
        free(d->reports);
        free(d->rc);
        free(d->msg);
        free(d->in);
        free(d->gpu);
    }
    free(a.d);
    return rc;
}
