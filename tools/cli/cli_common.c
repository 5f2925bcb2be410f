/*
 * cli_common.c - shared pieces of the stem subcommands (see cli_common.h).
 */
#include "cli_common.h"
#include "progress.h"

#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void (*error_sink)(void *ctx, const char *msg);
static void *error_ctx;

/* See cli_common.h. */
void cli_error_to(void (*sink)(void *ctx, const char *msg), void *ctx)
{
    error_sink = sink;
    error_ctx = ctx;
}

/* See cli_common.h. */
void cli_error(const char *fmt, ...)
{
    va_list ap;
    if (error_sink) {
        char msg[1024];
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        error_sink(error_ctx, msg);
        return;
    }
    cli_progress_done(); /* the message replaces a progress line */
    fputs("stem: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* See cli_common.h. */
int cli_exit_status(stem_status st)
{
    return st == STEM_ERR_NOMEM ? CLI_INTERNAL : CLI_USAGE;
}

/* See cli_common.h. */
int cli_exit_tf(void)
{
    return tf_last_fail() == TF_FAIL_SYSTEM ? CLI_INTERNAL : CLI_USAGE;
}

/* See cli_common.h. */
int cli_status_error(const char *cmd, const char *what, stem_status st)
{
    const char *d = stem_last_error();
    cli_error("%s: %s%s%s%s%s", cmd, what ? what : "", what ? ": " : "",
              stem_strerror(st), d[0] ? ": " : "", d);
    return cli_exit_status(st);
}

/* See cli_common.h. */
int cli_parse_int(const char *opt, const char *text, long long lo,
                  long long hi, long long *out)
{
    char *end;
    if (!text || !*text) {
        cli_error("%s: missing number", opt);
        return -1;
    }
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (end == text || *end != '\0') {
        cli_error("%s: '%s' is not an integer", opt, text);
        return -1;
    }
    if (errno == ERANGE || v < lo || v > hi) {
        cli_error("%s: %s is outside %lld..%lld", opt, text, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

/* See cli_common.h. */
int cli_parse_double(const char *opt, const char *text, double lo, double hi,
                     double *out)
{
    char *end;
    if (!text || !*text) {
        cli_error("%s: missing number", opt);
        return -1;
    }
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || *end != '\0') {
        cli_error("%s: '%s' is not a number", opt, text);
        return -1;
    }
    if (errno == ERANGE || !isfinite(v) || v < lo || v > hi) {
        cli_error("%s: %s is outside %g..%g", opt, text, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

/* See cli_common.h. */
int cli_opt_value(int argc, char **argv, int *i, const char *name,
                  const char **value)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0)
        return 0;
    if (a[n] == '=') {
        *value = a + n + 1;
        *i += 1;
        return 1;
    }
    if (a[n] != '\0')
        return 0;
    if (*i + 1 >= argc) {
        cli_error("%s needs a value", name);
        return -1;
    }
    *value = argv[*i + 1];
    *i += 2;
    return 1;
}

/* See cli_common.h. */
void cli_opts_init(cli_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->profile = STEM_PROFILE_ANGELSLIM;
    o->layout = CLI_LAYOUT_HND;
}

/* See cli_common.h. */
int cli_opt_take(const cli_opt_spec *t, size_t n, void *base, int argc,
                 char **argv, int *ip)
{
    char *at = base;
    const char *v;
    int r, i = *ip;
    for (size_t k = 0; k < n; k++) {
        const cli_opt_spec *s = &t[k];
        if (s->kind == CLI_OPT_FLAG) {
            if (strcmp(argv[i], s->name) != 0 &&
                !(s->alias && strcmp(argv[i], s->alias) == 0))
                continue;
            *(int *)(at + s->at) = 1;
            i++;
        } else {
            if ((r = cli_opt_value(argc, argv, &i, s->name, &v)) == 0 &&
                (!s->alias ||
                 (r = cli_opt_value(argc, argv, &i, s->alias, &v)) == 0))
                continue;
            if (r < 0)
                return -1;
            switch (s->kind) {
            case CLI_OPT_NUM:
                r = cli_parse_double(s->name, v, s->lo, s->hi,
                                     (double *)(at + s->at));
                break;
            case CLI_OPT_INT:
                r = cli_parse_int(s->name, v, (long long)s->lo,
                                  (long long)s->hi, (long long *)(at + s->at));
                break;
            case CLI_OPT_TEXT:
                *(const char **)(at + s->at) = v;
                r = 0;
                break;
            default:
                r = s->call(base, s->name, v);
                break;
            }
            if (r != 0)
                return -1;
        }
        if (s->have != CLI_OPT_NO_HAVE)
            *(int *)(at + s->have) = 1;
        *ip = i;
        return 1;
    }
    return 0;
}

/* See cli_common.h. */
void cli_opt_usage(const cli_opt_spec *t, size_t n, FILE *fp)
{
    for (size_t k = 0; k < n; k++) {
        char head[64];
        snprintf(head, sizeof(head), "%s%s%s%s%s", t[k].alias ? t[k].alias : "",
                 t[k].alias ? ", " : "", t[k].name, t[k].arg ? " " : "",
                 t[k].arg ? t[k].arg : "");
        if (!t[k].help) {
            fprintf(fp, "  %s\n", head);
            continue;
        }
        fprintf(fp, "  %-18s", head);
        for (const char *h = t[k].help; *h;) {
            const char *nl = strchr(h, '\n');
            size_t len = nl ? (size_t)(nl - h) : strlen(h);
            fprintf(fp, " %.*s\n", (int)len, h);
            h += len;
            if (*h == '\n' && *++h)
                fprintf(fp, "  %-18s", "");
        }
    }
}

static int take_profile(void *base, const char *opt, const char *v)
{
    if (stem_profile_from_name(v, &((cli_opts *)base)->profile) != STEM_OK) {
        cli_error("%s: unknown profile '%s' (angelslim, paper, hpc-ops)", opt,
                  v);
        return -1;
    }
    return 0;
}

static int take_compute(void *base, const char *opt, const char *v)
{
    if (stem_compute_from_name(v, &((cli_opts *)base)->compute) != STEM_OK) {
        cli_error("%s: unknown mode '%s' (f32, bf16)", opt, v);
        return -1;
    }
    return 0;
}

static int take_layout(void *base, const char *opt, const char *v)
{
    int *layout = &((cli_opts *)base)->layout;
    if (strcmp(v, "hnd") == 0)
        *layout = CLI_LAYOUT_HND;
    else if (strcmp(v, "nhd") == 0)
        *layout = CLI_LAYOUT_NHD;
    else {
        cli_error("%s: '%s' is not hnd or nhd", opt, v);
        return -1;
    }
    return 0;
}

static int take_threads(void *base, const char *opt, const char *v)
{
    long long t;
    if (cli_parse_int(opt, v, 1, 4096, &t) != 0)
        return -1;
    ((cli_opts *)base)->threads = (int)t;
    return 0;
}

#define OPT(f) offsetof(cli_opts, f)

/* The common options: every command that computes reads them. */
static const cli_opt_spec common_opts[] = {
    {"--profile", NULL, "P", CLI_OPT_CALL, 0, CLI_OPT_NO_HAVE, 0, 0,
     take_profile, "angelslim (default), paper or hpc-ops"},
    {"--alpha", NULL, "A", CLI_OPT_NUM, OPT(alpha), OPT(have_alpha), 0, 1,
     NULL, "budget decay (0..1)"},
    {"--keep-ratio", NULL, "R", CLI_OPT_NUM, OPT(keep_ratio), OPT(have_keep),
     0, 1, NULL, "keep ratio rho (0..1)"},
    {"--block", NULL, "B", CLI_OPT_INT, OPT(block), OPT(have_block), 1,
     1 << 20, NULL, "tokens per block"},
    {"--stride", NULL, "S", CLI_OPT_INT, OPT(stride), OPT(have_stride), 1,
     1 << 20, NULL, "scoring stride (divides B)"},
    {"--lambda", NULL, "L", CLI_OPT_NUM, OPT(lambda), OPT(have_lambda), 0,
     1e6, NULL, "value-norm weight (lambda / beta)"},
    {"--sinks", NULL, "N", CLI_OPT_INT, OPT(sinks), OPT(have_sinks), 0,
     1 << 30, NULL, "first key blocks always kept"},
    {"--window", NULL, "N", CLI_OPT_INT, OPT(window), OPT(have_window), 0,
     1 << 30, NULL, "key blocks ending at the diagonal always kept"},
    {"--prompt-blocks", NULL, "N", CLI_OPT_INT, OPT(prompt_blocks),
     OPT(have_prompt), 0, (double)CLI_MAX_PROMPT_BLOCKS, NULL,
     "n of the budget rule (0: Kb of the call; at most\n2^24)"},
    {"--f64", NULL, NULL, CLI_OPT_FLAG, OPT(use_f64), CLI_OPT_NO_HAVE, 0, 0,
     NULL, "compute in float64 (oracle mode)"},
    {"--compute", NULL, "f32|bf16", CLI_OPT_CALL, 0, CLI_OPT_NO_HAVE, 0, 0,
     take_compute, "attention arithmetic: float32 (default) or bf16\n"
                   "operands with float32 sums (simd/kernels.h)"},
    {"--threads", NULL, "T", CLI_OPT_CALL, 0, CLI_OPT_NO_HAVE, 0, 0,
     take_threads, "OpenMP threads"},
    {"--layout", NULL, "hnd|nhd", CLI_OPT_CALL, 0, CLI_OPT_NO_HAVE, 0, 0,
     take_layout, "q/k/v stored [H,N,d] (default) or [N,H,d]"},
};

/* See cli_common.h. */
int cli_opts_parse(cli_opts *o, int argc, char **argv, int *i)
{
    return cli_opt_take(common_opts, sizeof(common_opts) /
                        sizeof(common_opts[0]), o, argc, argv, i);
}

/* See cli_common.h. */
int cli_opts_resolve(const cli_opts *o, stem_params *params)
{
    stem_params p;
    if (stem_params_init(&p, o->profile) != STEM_OK) {
        cli_error("cannot initialise profile %d", (int)o->profile);
        return CLI_USAGE;
    }
    if (o->have_alpha)
        p.alpha = o->alpha;
    if (o->have_keep)
        p.keep_ratio = o->keep_ratio;
    if (o->have_lambda)
        p.value_weight = o->lambda;
    if (o->have_block)
        p.block = (int)o->block;
    if (o->have_stride)
        p.stride = (int)o->stride;
    if (o->have_sinks)
        p.sinks = (int)o->sinks;
    if (o->have_window)
        p.window = (int)o->window;
    if (o->have_prompt)
        p.prompt_blocks = o->prompt_blocks;
    if (o->use_f64)
        p.use_f64 = 1;
    p.compute = o->compute;
    if (o->threads > 0) {
        p.threads = o->threads;
        omp_set_num_threads(o->threads);
    }
    stem_status st = stem_params_validate(&p);
    if (st != STEM_OK) {
        cli_error("invalid parameters: %s", stem_last_error());
        return CLI_USAGE;
    }
    *params = p;
    return CLI_OK;
}

/* See cli_common.h. */
void cli_opts_usage(FILE *fp)
{
    fputs("Parameter options (defaults from the profile):\n", fp);
    cli_opt_usage(common_opts, sizeof(common_opts) / sizeof(common_opts[0]),
                  fp);
}

/* See cli_common.h. */
int cli_input_dtype(stem_dtype dt)
{
    return dt == STEM_F32 || dt == STEM_BF16 || dt == STEM_F16 ||
           dt == STEM_F64;
}

static int view_of(const tf_file *f, const char *name, int layout,
                   stem_tensor *out, char *err, size_t errlen)
{
    const tf_tensor *t = tf_find(f, name);
    if (!t) {
        snprintf(err, errlen, "no tensor '%s' in the input", name);
        return -1;
    }
    stem_dtype dt = t->dtype;
    if (!cli_input_dtype(dt)) {
        snprintf(err, errlen, "tensor '%s' has dtype %s (need BF16, F16, "
                 "F32 or F64)", name, stem_dtype_name(t->dtype));
        return -1;
    }
    const int64_t *s = t->shape;
    if (t->ndim == 4 && s[0] == 1)
        s++;
    else if (t->ndim != 3) {
        snprintf(err, errlen, "tensor '%s' is %d-d (need [%s] or [1,%s])",
                 name, t->ndim, layout == CLI_LAYOUT_NHD ? "N,H,d" : "H,N,d",
                 layout == CLI_LAYOUT_NHD ? "N,H,d" : "H,N,d");
        return -1;
    }
    if (layout == CLI_LAYOUT_NHD)
        *out = stem_tensor_nhd(t->data, dt, s[1], s[0], s[2]);
    else
        *out = stem_tensor_hnd(t->data, dt, s[0], s[1], s[2]);
    return 0;
}

/* See cli_common.h. */
int cli_load_qkv(const tf_file *f, int layout, stem_tensor *q, stem_tensor *k,
                 stem_tensor *v, char *err, size_t errlen)
{
    stem_tensor tq, tk, tv;
    if (!f || !q || !k || !v) {
        snprintf(err, errlen, "NULL argument");
        return -1;
    }
    if (view_of(f, "q", layout, &tq, err, errlen) != 0 ||
        view_of(f, "k", layout, &tk, err, errlen) != 0 ||
        view_of(f, "v", layout, &tv, err, errlen) != 0)
        return -1;
    *q = tq;
    *k = tk;
    *v = tv;
    return 0;
}

/* See cli_common.h. */
void cli_fmt_double(char *buf, size_t cap, double x)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, x);
        if (strtod(buf, NULL) == x)
            return;
    }
}

/* See cli_common.h. */
double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
