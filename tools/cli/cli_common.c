/*
 * cli_common.c - shared pieces of the stem subcommands (see cli_common.h).
 */
#include "cli_common.h"
#include "progress.h"

#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
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
int cli_opts_parse(cli_opts *o, int argc, char **argv, int *i)
{
    const char *v;
    int r;
    if (strcmp(argv[*i], "--f64") == 0) {
        o->use_f64 = 1;
        *i += 1;
        return 1;
    }
    if ((r = cli_opt_value(argc, argv, i, "--profile", &v)) != 0) {
        if (r < 0)
            return -1;
        if (stem_profile_from_name(v, &o->profile) != STEM_OK) {
            cli_error("--profile: unknown profile '%s' "
                      "(angelslim, paper, hpc-ops)", v);
            return -1;
        }
        return 1;
    }
    if ((r = cli_opt_value(argc, argv, i, "--compute", &v)) != 0) {
        if (r < 0)
            return -1;
        if (stem_compute_from_name(v, &o->compute) != STEM_OK) {
            cli_error("--compute: unknown mode '%s' (f32, bf16)", v);
            return -1;
        }
        return 1;
    }
    if ((r = cli_opt_value(argc, argv, i, "--layout", &v)) != 0) {
        if (r < 0)
            return -1;
        if (strcmp(v, "hnd") == 0)
            o->layout = CLI_LAYOUT_HND;
        else if (strcmp(v, "nhd") == 0)
            o->layout = CLI_LAYOUT_NHD;
        else {
            cli_error("--layout: '%s' is not hnd or nhd", v);
            return -1;
        }
        return 1;
    }
    struct {
        const char *name;
        double *d;
        long long *l;
        int *have;
        double lo, hi;
    } nums[] = {
        {"--alpha", &o->alpha, NULL, &o->have_alpha, 0.0, 1.0},
        {"--keep-ratio", &o->keep_ratio, NULL, &o->have_keep, 0.0, 1.0},
        {"--lambda", &o->lambda, NULL, &o->have_lambda, 0.0, 1e6},
        {"--block", NULL, &o->block, &o->have_block, 1, 1 << 20},
        {"--stride", NULL, &o->stride, &o->have_stride, 1, 1 << 20},
        {"--sinks", NULL, &o->sinks, &o->have_sinks, 0, 1 << 30},
        {"--window", NULL, &o->window, &o->have_window, 0, 1 << 30},
        {"--prompt-blocks", NULL, &o->prompt_blocks, &o->have_prompt, 0,
         (double)CLI_MAX_PROMPT_BLOCKS},
    };
    for (size_t n = 0; n < sizeof(nums) / sizeof(nums[0]); n++) {
        if ((r = cli_opt_value(argc, argv, i, nums[n].name, &v)) == 0)
            continue;
        if (r < 0)
            return -1;
        int bad = nums[n].d
                      ? cli_parse_double(nums[n].name, v, nums[n].lo,
                                         nums[n].hi, nums[n].d)
                      : cli_parse_int(nums[n].name, v, (long long)nums[n].lo,
                                      (long long)nums[n].hi, nums[n].l);
        if (bad)
            return -1;
        *nums[n].have = 1;
        return 1;
    }
    if ((r = cli_opt_value(argc, argv, i, "--threads", &v)) != 0) {
        long long t;
        if (r < 0 || cli_parse_int("--threads", v, 1, 4096, &t) != 0)
            return -1;
        o->threads = (int)t;
        return 1;
    }
    return 0;
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
    fputs("Parameter options (defaults from the profile):\n"
          "  --profile P        angelslim (default), paper or hpc-ops\n"
          "  --alpha A          budget decay (0..1)\n"
          "  --keep-ratio R     keep ratio rho (0..1)\n"
          "  --block B          tokens per block\n"
          "  --stride S         scoring stride (divides B)\n"
          "  --lambda L         value-norm weight (lambda / beta)\n"
          "  --sinks N          first key blocks always kept\n"
          "  --window N         key blocks ending at the diagonal always kept\n"
          "  --prompt-blocks N  n of the budget rule (0: Kb of the call; at most\n"
          "                     2^24)\n"
          "  --f64              compute in float64 (oracle mode)\n"
          "  --compute f32|bf16 attention arithmetic: float32 (default) or bf16\n"
          "                     operands with float32 sums (simd/kernels.h)\n"
          "  --threads T        OpenMP threads\n"
          "  --layout hnd|nhd   q/k/v stored [H,N,d] (default) or [N,H,d]\n",
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
