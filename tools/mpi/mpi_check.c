/*
 * mpi_check.c - `stem-mpi check`: many dump files judged as `stem check`
 * judges each, the work spread over the ranks of an MPI job.
 *
 * A work unit is one (dump, query head).  Rank 0 reads each dump's header
 * for its number of query heads (tools/io/tensorindex.h) and hands units
 * out one at a time to the ranks that ask, preferring the dump a rank had
 * last (its pages are then still in that node's cache).  A rank judges a
 * unit by running `stem check` itself, in process (cmd_check, linked from
 * tools/cli), on that dump with `--heads H --json TMP`: the options, the
 * metadata rules, the dtype choice, the library's stem_check and its
 * report are stem check's own, so each head's verdict is the one
 * `stem check --heads H` gives; a dump's verdict is FAIL when any of its
 * heads fails, as stem_check's verdict over all heads.  The unit's JSON
 * report (stem_check_report_json) goes back to rank 0, which prints one
 * report: a verdict per dump and head, the worst offenders overall, and
 * writes every unit's report into --json.
 *
 * With one rank, rank 0 judges every unit itself; with more, rank 0 only
 * hands out units and gathers reports (it sleeps between messages rather
 * than spinning, so it costs its node little CPU).
 *
 * Exit status: 0 every head of every dump passes, 1 a fault in some head,
 * 2 bad input (a dump stem check refuses, reported with its message) or a
 * bad command line.
 */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli_common.h"
#include "commands.h"
#include "mpi_common.h"
#include "tensorindex.h"

#define TAG_WORK 11             /* rank 0 -> worker: {dump, head} */
#define TAG_DONE 12             /* worker -> 0: {dump, head, rc, len} */
#define TAG_TEXT 13             /* worker -> 0: the report or message */

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
          "by `stem check --heads H` on some rank, rank 0 handing the units\n"
          "out; one report at the end: a verdict per dump and head and the\n"
          "worst offenders overall (--list N of them, default 20).\n"
          "--json R.json: that report with every unit's stem check report.\n"
          "The other options are stem check's (see stem check --help) and\n"
          "apply to every dump; --heads is not one of them here.\n"
          "Exit status: 0 everything passes, 1 a fault, 2 bad input or "
          "usage.\n", fp);
}

/* Options of stem check that take a value (the rest are flags). */
static const char *const value_opts[] = {
    "--dtype", "--tau", "--logit-tol", "--out-tol", "--lse-tol",
    "--sigmas", "--show", "--profile", "--alpha", "--keep-ratio", "--block",
    "--stride", "--lambda", "--sinks", "--window", "--prompt-blocks",
    "--threads", "--layout", NULL};
static const char *const flag_opts[] = {"--no-dense", "--verbose", "-v",
                                        "--f64", NULL};

static int in_list(const char *a, const char *const *l, int *with_value)
{
    for (; *l; l++) {
        size_t n = strlen(*l);
        if (strcmp(a, *l) == 0)
            return 1;
        if (with_value && strncmp(a, *l, n) == 0 && a[n] == '=') {
            *with_value = 1;
            return 1;
        }
    }
    return 0;
}

typedef struct dump {
    char *in, *gpu;             /* gpu NULL: one file holds both */
    int64_t heads;              /* 0: unknown (one unit, all heads) */
    int64_t next;               /* next head to hand out */
    int active;                 /* ranks on it now */
    int bad;                    /* 1: stem check refused it (exit 2) */
    char *msg;                  /* that message */
    cJSON **reports;            /* [max(heads,1)] unit reports */
    int *rc;                    /* [max(heads,1)] unit exit codes */
} dump;

typedef struct job_args {
    char **opts;                /* stem check options passed through */
    int nopts;
    const char *json;
    long long list;
    dump *d;
    int nd;
} job_args;

static int add_dump(job_args *a, const char *in, const char *gpu)
{
    dump *d = realloc(a->d, (size_t)(a->nd + 1) * sizeof(*d));
    if (!d)
        return -1;
    a->d = d;
    d = &a->d[a->nd];
    memset(d, 0, sizeof(*d));
    d->in = strdup(in);
    d->gpu = gpu ? strdup(gpu) : NULL;
    if (!d->in || (gpu && !d->gpu))
        return -1;
    a->nd++;
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

/* Parse the command line.  CLI_OK or CLI_USAGE (message printed). */
static int parse(int argc, char **argv, job_args *a, int *help)
{
    memset(a, 0, sizeof(*a));
    a->list = 20;
    a->opts = calloc((size_t)argc + 1, sizeof(char *));
    if (!a->opts)
        return CLI_USAGE;
    for (int i = 1; i < argc;) {
        const char *s = argv[i], *v;
        int r, wv = 0;
        if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) {
            *help = 1;
            return CLI_OK;
        }
        if ((r = cli_opt_value(argc, argv, &i, "--json", &a->json)) != 0) {
            if (r < 0)
                return CLI_USAGE;
            continue;
        }
        if ((r = cli_opt_value(argc, argv, &i, "--list", &v)) != 0) {
            if (r < 0 || cli_parse_int("--list", v, 0, 1000000, &a->list))
                return CLI_USAGE;
            continue;
        }
        if (strcmp(s, "--pair") == 0) {
            if (i + 2 >= argc) {
                cli_error("check: --pair needs IN and GPU");
                return CLI_USAGE;
            }
            if (add_dump(a, argv[i + 1], argv[i + 2]) != 0)
                return CLI_USAGE;
            i += 3;
            continue;
        }
        if (strcmp(s, "--heads") == 0 || strncmp(s, "--heads=", 8) == 0) {
            cli_error("check: --heads: stem-mpi check judges every head, "
                      "one unit per head");
            return CLI_USAGE;
        }
        if (in_list(s, value_opts, &wv)) {
            if (!wv && i + 1 >= argc) {
                cli_error("%s: missing value", s);
                return CLI_USAGE;
            }
            a->opts[a->nopts++] = argv[i++];
            if (!wv)
                a->opts[a->nopts++] = argv[i++];
            continue;
        }
        if (in_list(s, flag_opts, NULL)) {
            a->opts[a->nopts++] = argv[i++];
            continue;
        }
        if (s[0] == '-' && s[1] != '\0') {
            cli_error("check: unknown option '%s'", s);
            return CLI_USAGE;
        }
        struct stat sb;
        int rc = stat(s, &sb) == 0 && S_ISDIR(sb.st_mode) && !dir_is_dump(s)
                     ? add_dir(a, s)
                     : add_dump(a, s, NULL);
        if (rc != 0) {
            cli_error("check: %s: %s", s, strerror(errno));
            return CLI_USAGE;
        }
        i++;
    }
    if (a->nd == 0) {
        cli_error("check: no dump to check");
        check_usage(stderr);
        return CLI_USAGE;
    }
    return CLI_OK;
}

/* Query heads of a dump from its header (0 if it cannot tell: then the
 * dump is one unit and stem check says what is wrong). */
static int64_t dump_heads(const dump *d, const job_args *a)
{
    int nhd = 0;
    for (int i = 0; i < a->nopts; i++)
        if (strcmp(a->opts[i], "--layout=nhd") == 0 ||
            (strcmp(a->opts[i], "--layout") == 0 && i + 1 < a->nopts &&
             strcmp(a->opts[i + 1], "nhd") == 0))
            nhd = 1;
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

/* Read a whole file into a NUL-terminated string (NULL if none). */
static char *slurp(const char *path)
{
    void *b;
    size_t n;
    char err[64];
    if (tf_read_all(path, &b, &n, err, sizeof(err)) != 0)
        return NULL;
    char *s = realloc(b, n + 1);
    if (!s) {
        free(b);
        return NULL;
    }
    s[n] = '\0';
    return s;
}

/*
 * Judge one unit: `stem check IN [GPU] OPTS --heads H --json TMP` in
 * process, its stdout dropped and its stderr kept.  Returns its exit code;
 * *text the JSON report (codes 0, 1) or the message (2), malloc'd.
 */
static int judge(const job_args *a, const dump *d, int64_t head, char **text)
{
    char tmpl[] = "/tmp/stem-mpi-XXXXXX";
    char json[64], errf[64], hs[32];
    *text = NULL;
    if (!mkdtemp(tmpl)) {
        *text = strdup("check: cannot create a temporary directory");
        return CLI_USAGE;
    }
    snprintf(json, sizeof(json), "%s/r.json", tmpl);
    snprintf(errf, sizeof(errf), "%s/err", tmpl);
    snprintf(hs, sizeof(hs), "%lld", (long long)head);
    char **av = calloc((size_t)a->nopts + 10, sizeof(char *));
    int n = 0;
    if (!av) {
        rmdir(tmpl);
        *text = strdup("check: out of memory");
        return CLI_USAGE;
    }
    av[n++] = "check";
    av[n++] = d->in;
    if (d->gpu)
        av[n++] = d->gpu;
    for (int i = 0; i < a->nopts; i++)
        av[n++] = a->opts[i];
    if (head >= 0) {
        av[n++] = "--heads";
        av[n++] = hs;
    }
    av[n++] = "--json";
    av[n++] = json;
    av[n] = NULL;

    fflush(stdout);
    fflush(stderr);
    int so = dup(1), se = dup(2);
    int nul = open("/dev/null", O_WRONLY | O_CLOEXEC);
    int ef = open(errf, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (nul >= 0)
        dup2(nul, 1);
    if (ef >= 0)
        dup2(ef, 2);
    int rc = cmd_check(n, av);
    fflush(stdout);
    fflush(stderr);
    dup2(so, 1);
    dup2(se, 2);
    close(so);
    close(se);
    if (nul >= 0)
        close(nul);
    if (ef >= 0)
        close(ef);
    free(av);
    char *j = rc != CLI_USAGE ? slurp(json) : NULL;
    if (j) {
        *text = j;
    } else {
        char *m = slurp(errf);
        if (m) {
            size_t l = strlen(m);
            while (l > 0 && m[l - 1] == '\n')
                m[--l] = '\0';
            /* stem check's messages start "stem: " */
            if (strncmp(m, "stem: ", 6) == 0)
                memmove(m, m + 6, l - 5);
        }
        *text = m ? m : strdup("check: failed without a message");
        if (rc != CLI_USAGE)
            rc = CLI_USAGE;     /* a verdict without its report */
    }
    unlink(json);
    unlink(errf);
    rmdir(tmpl);
    return rc;
}

/* Rank 0 keeps a unit's outcome. */
static void record(job_args *a, int di, int64_t head, int rc, char *text)
{
    dump *d = &a->d[di];
    int64_t slot = head < 0 ? 0 : head;
    if (rc == CLI_USAGE) {
        if (!d->bad) {
            d->bad = 1;
            d->msg = text;
            text = NULL;
        }
    } else if (d->reports) {
        d->reports[slot] = cJSON_Parse(text ? text : "");
        if (!d->reports[slot]) {
            d->bad = 1;
            free(d->msg);
            d->msg = strdup("check: unreadable unit report");
        }
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
static void serve(const mpi_job *job, job_args *a)
{
    int *last = malloc((size_t)job->size * sizeof(int));
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
        int64_t res[4];
        MPI_Recv(res, 4, MPI_INT64_T, st.MPI_SOURCE, TAG_DONE, MPI_COMM_WORLD,
                 MPI_STATUS_IGNORE);
        char *text = malloc((size_t)res[3] + 1);
        MPI_Recv(text, (int)res[3], MPI_CHAR, st.MPI_SOURCE, TAG_TEXT,
                 MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        text[res[3]] = '\0';
        a->d[res[0]].active--;
        record(a, (int)res[0], res[1], (int)res[2], text);
        int64_t msg[2] = {-1, -1};
        int di;
        int64_t h;
        if (next_unit(a, last[st.MPI_SOURCE], &di, &h)) {
            msg[0] = di;
            msg[1] = h;
            a->d[di].active++;
            last[st.MPI_SOURCE] = di;
        } else {
            busy--;
        }
        MPI_Send(msg, 2, MPI_INT64_T, st.MPI_SOURCE, TAG_WORK,
                 MPI_COMM_WORLD);
    }
    free(last);
}

/* A worker: judge units until told to stop. */
static void work(job_args *a)
{
    for (;;) {
        int64_t msg[2];
        MPI_Recv(msg, 2, MPI_INT64_T, 0, TAG_WORK, MPI_COMM_WORLD,
                 MPI_STATUS_IGNORE);
        if (msg[0] < 0)
            return;
        char *text = NULL;
        int rc = judge(a, &a->d[msg[0]], msg[1], &text);
        const char *t = text ? text : "";
        int64_t res[4] = {msg[0], msg[1], rc, (int64_t)strlen(t)};
        if (res[3] > (1 << 30))
            res[3] = 1 << 30;
        MPI_Send(res, 4, MPI_INT64_T, 0, TAG_DONE, MPI_COMM_WORLD);
        MPI_Send(t, (int)res[3], MPI_CHAR, 0, TAG_TEXT, MPI_COMM_WORLD);
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
    int nbad = 0, nfail = 0;
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
            nbad++;
            printf("BAD   %s: %s\n", name, d->msg ? d->msg : "?");
            cJSON_AddStringToObject(jf, "result", "bad input");
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
    int rc = nbad ? CLI_USAGE : nfail ? CLI_FAIL : CLI_OK;
    const char *res = nbad ? "bad input" : nfail ? "fail" : "pass";
    printf("result: %s: %d of %d dumps fail (%lld of %lld heads), %d bad "
           "input\n", nbad ? "BAD INPUT" : nfail ? "FAIL" : "PASS", nfail,
           a->nd, (long long)hfail, (long long)units, nbad);
    cJSON_AddStringToObject(root, "result", res);
    cJSON_AddNumberToObject(root, "ranks", job->size);
    cJSON_AddNumberToObject(root, "seconds", secs);
    cJSON_AddNumberToObject(root, "dumps_failed", nfail);
    cJSON_AddNumberToObject(root, "dumps_bad", nbad);
    cJSON_AddNumberToObject(root, "heads_failed", (double)hfail);
    cJSON_AddItemToObject(root, "worst", jw);
    cJSON_AddItemToObject(root, "dumps", files);
    if (a->json) {
        char *t = cJSON_Print(root);
        char err[512];
        const void *ptrs[2] = {t, "\n"};
        size_t lens[2] = {t ? strlen(t) : 0, 1};
        if (!t || tf_write_atomic(a->json, 2, ptrs, lens, err,
                                  sizeof(err)) != 0) {
            cli_error("check: %s", t ? err : "out of memory");
            rc = CLI_USAGE;
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
    int help = 0;
    mpi_quiet(job);
    int rc = parse(argc, argv, &a, &help);
    mpi_loud(job);
    if (help) {
        if (job->rank == 0)
            check_usage(stdout);
        rc = CLI_OK;
        goto done;
    }
    if (rc != CLI_OK)
        goto done;
    double t0 = cli_now();
    if (job->rank == 0) {
        for (int i = 0; i < a.nd; i++) {
            dump *d = &a.d[i];
            int64_t nh;
            d->heads = dump_heads(d, &a);
            nh = d->heads ? d->heads : 1;
            d->reports = calloc((size_t)nh, sizeof(cJSON *));
            d->rc = calloc((size_t)nh, sizeof(int));
            if (!d->reports || !d->rc) {
                cli_error("check: out of memory");
                MPI_Abort(MPI_COMM_WORLD, CLI_FAIL);
            }
        }
    }
    if (job->size == 1) {
        int di;
        int64_t h;
        while (next_unit(&a, -1, &di, &h)) {
            char *text = NULL;
            int r = judge(&a, &a.d[di], h, &text);
            record(&a, di, h, r, text);
        }
    } else if (job->rank == 0) {
        serve(job, &a);
    } else {
        work(&a);
    }
    if (job->rank == 0)
        rc = report(job, &a, cli_now() - t0);
    MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
done:
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
    free(a.opts);
    return rc;
}
