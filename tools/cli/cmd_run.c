/*
 * cmd_run.c - `stem run`: Stem prefill (or dense attention) on the q/k/v of
 * a tensor file, results written as safetensors or a directory of .npy
 * files.
 */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli_common.h"
#include "commands.h"
#include "progress.h"

static void run_usage(FILE *fp)
{
    fputs("usage: stem run IN -o OUT.safetensors [--dense] [options]\n"
          "       stem run IN -o OUTDIR/ [--dense] [options]\n\n"
          "IN: safetensors file, .npy directory with q.npy k.npy v.npy;\n"
          "q [Hq,N,d], k and v [Hkv,N,d] (BF16, F16, F32 or F64).\n"
          "Writes block_logits F32 [Hq,Qb,Kb], mask U8 [Hq,Qb,Kb],\n"
          "out F32 [Hq,N,d], lse F32 [Hq,N] (--dense: out and lse only),\n"
          "with the parameters as metadata, to one safetensors file, or,\n"
          "when OUT ends in '/' or is an existing directory, to a directory\n"
          "of .npy files plus metadata.json (an existing directory only if\n"
          "it holds nothing but an earlier run's outputs).  A name ending\n"
          "in .npy is refused: one .npy file holds one tensor.\n\n",
          fp);
    cli_run_opts_usage(fp);
}

static int set_meta_str(tf_file *f, const char *k, const char *v)
{
    char err[256];
    if (tf_set_meta(f, k, v, err, sizeof(err)) != 0) {
        cli_error("run: %s", err);
        return -1;
    }
    return 0;
}

static int set_meta_num(tf_file *f, const char *k, double x)
{
    char buf[40];
    cli_fmt_double(buf, sizeof(buf), x);
    return set_meta_str(f, k, buf);
}

static const char *value_rule_name(stem_value_rule r)
{
    switch (r) {
    case STEM_VALUE_NONE: return "none";
    case STEM_VALUE_ZSCORE_FULL: return "zscore-full";
    case STEM_VALUE_ZSCORE_PADDED: return "zscore-padded";
    case STEM_VALUE_LOG_MAX_BLOCK: return "log-max-block";
    }
    return "?";
}

static const char *budget_rule_name(stem_budget_rule r)
{
    switch (r) {
    case STEM_BUDGET_TPD_F64: return "tpd-f64";
    case STEM_BUDGET_TPD_F32_FMA: return "tpd-f32-fma";
    case STEM_BUDGET_PAPER_LINEAR: return "paper-linear";
    }
    return "?";
}

/* The threads a call with p uses (stem_threads). */
static int threads_used(const stem_params *p)
{
    stem_thread_info ti;
    return stem_threads(p, &ti) == STEM_OK ? ti.used : 1;
}

/* Canonical name of an input dtype, as `stem check` and stem_dump use. */
static const char *input_dtype_name(stem_dtype dt)
{
    switch (dt) {
    case STEM_F32: return "fp32";
    case STEM_BF16: return "bf16";
    case STEM_F16: return "fp16";
    case STEM_F64: return "fp64";
    default: return "?";
    }
}

/*
 * The run's metadata: every parameter, under stem's own names and, where
 * they differ, under the names of the conformance files and `stem check`
 * (initial_blocks = sinks, window_size = window, lambda_mag = lambda), so
 * that one run's output can be checked against another.  dtype is the
 * precision of the results (fp32: every output is float32 arithmetic
 * stored as F32), input_dtype that of q.  0, or -1 after a message.
 * Shared with stem-mpi (commands.h), whose output must equal this one's.
 */
int cli_run_add_meta(tf_file *f, const stem_params *p, int dense,
                     stem_dtype in_dtype, stem_isa isa, double secs)
{
    return set_meta_str(f, "mode", dense ? "dense" : "stem") ||
           set_meta_str(f, "dtype", "fp32") ||
           set_meta_str(f, "input_dtype", input_dtype_name(in_dtype)) ||
           set_meta_str(f, "profile", stem_profile_name(p->profile)) ||
           set_meta_num(f, "alpha", p->alpha) ||
           set_meta_num(f, "keep_ratio", p->keep_ratio) ||
           set_meta_num(f, "block_size", p->block) ||
           set_meta_num(f, "stride", p->stride) ||
           set_meta_num(f, "qk_scaled", p->qk_scaled) ||
           set_meta_num(f, "norm", p->norm) ||
           set_meta_str(f, "value_rule", value_rule_name(p->value_rule)) ||
           set_meta_num(f, "lambda", p->value_weight) ||
           set_meta_num(f, "lambda_mag", p->value_weight) ||
           set_meta_str(f, "budget_rule", budget_rule_name(p->budget_rule)) ||
           set_meta_num(f, "prompt_blocks", (double)p->prompt_blocks) ||
           set_meta_num(f, "sinks", p->sinks) ||
           set_meta_num(f, "initial_blocks", p->sinks) ||
           set_meta_num(f, "window", p->window) ||
           set_meta_num(f, "window_size", p->window) ||
           set_meta_num(f, "keep_diagonal", p->keep_diagonal) ||
           set_meta_num(f, "ties_keep_all", p->ties_keep_all) ||
           set_meta_num(f, "f64", p->use_f64) ||
           set_meta_str(f, "compute", stem_compute_name(p->compute)) ||
           set_meta_str(f, "isa", stem_isa_name(isa)) ||
           set_meta_num(f, "threads", threads_used(p)) ||
           set_meta_num(f, "seconds", secs) ||
           set_meta_str(f, "version", stem_version());
}

/* Results of one run, caller-owned buffers. */
typedef struct run_out {
    float *out, *lse, *logits;
    uint8_t *mask;
} run_out;

/* The names an earlier output directory may hold and a run may replace. */
static const char *const run_outputs[] = {"block_logits.npy", "mask.npy",
                                          "out.npy", "lse.npy",
                                          "metadata.json", NULL};

/*
 * How `-o path` is written: 1 a directory of .npy files (path ends in '/'
 * or is an existing directory), 0 one safetensors file, -1 refused after a
 * message (a name ending in .npy, or a directory holding other files).
 */
static int output_kind(const char *path)
{
    size_t n = strlen(path);
    struct stat sb;
    char err[512];
    int exists;
    if (n >= 4 && strcmp(path + n - 4, ".npy") == 0) {
        cli_error("run: -o %s: one .npy file holds one tensor and stem run "
                  "writes several; give a directory name ending in '/' "
                  "(e.g. -o %.*s/) for a directory of .npy files, or a "
                  ".safetensors name", path, (int)(n - 4), path);
        return -1;
    }
    if ((n > 0 && path[n - 1] == '/') ||
        (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))) {
        if (tf_npy_dir_target(path, run_outputs, &exists, err,
                              sizeof(err)) != 0) {
            cli_error("run: -o: %s", err);
            return -1;
        }
        return 1;
    }
    if (tf_output_replaceable(path, err, sizeof(err)) != 0) {
        cli_error("run: -o: %s", err);
        return -1;
    }
    return 0;
}

static int write_results(const char *path, int as_dir, const stem_dims *dm,
                         const run_out *ro, const stem_params *p, int dense,
                         stem_dtype in_dtype, stem_isa isa, double secs)
{
    tf_file f = {0};
    char err[256];
    int64_t sl[3] = {dm->hq, dm->qb, dm->kb};
    int64_t so[3] = {dm->hq, dm->lq, dm->d};
    int64_t se[2] = {dm->hq, dm->lq};
    int rc = 0;
    if (!dense)
        rc = tf_add(&f, "block_logits", STEM_F32, 3, sl, ro->logits, err,
                    sizeof(err)) ||
             tf_add(&f, "mask", STEM_U8, 3, sl, ro->mask, err, sizeof(err));
    rc = rc || tf_add(&f, "out", STEM_F32, 3, so, ro->out, err, sizeof(err)) ||
         tf_add(&f, "lse", STEM_F32, 2, se, ro->lse, err, sizeof(err));
    if (rc) {
        cli_error("run: %s", err);
        rc = cli_exit_tf();
    } else if (cli_run_add_meta(&f, p, dense, in_dtype, isa, secs)) {
        rc = CLI_INTERNAL;      /* metadata strings: out of memory */
    } else if (as_dir ? tf_write_npy_dir(&f, path, run_outputs, err,
                                         sizeof(err)) != 0
                      : tf_write_safetensors(&f, path, err, sizeof(err)) !=
                            0) {
        cli_error("run: %s", err);
        rc = cli_exit_tf();
    }
    tf_free(&f);
    return rc;
}

/* What cli_run_parse reads beyond the common options. */
typedef struct run_args {
    int dense, help;
    const char *out;
} run_args;

#define RUN(f) offsetof(run_args, f)

/* The options of stem run beyond the common ones; stem-mpi run reads them
 * through cli_run_parse too. */
static const cli_opt_spec run_opts[] = {
    {"--help", "-h", NULL, CLI_OPT_FLAG, RUN(help), CLI_OPT_NO_HAVE, 0, 0,
     NULL, "this text"},
    {"--output", "-o", "OUT", CLI_OPT_TEXT, RUN(out), CLI_OPT_NO_HAVE, 0, 0,
     NULL, "where the results go"},
    {"--dense", NULL, NULL, CLI_OPT_FLAG, RUN(dense), CLI_OPT_NO_HAVE, 0, 0,
     NULL, "dense causal attention (out and lse only)"},
};

/* See commands.h. */
void cli_run_opts_usage(FILE *fp)
{
    fputs("Options:\n", fp);
    cli_opt_usage(run_opts, sizeof(run_opts) / sizeof(run_opts[0]), fp);
    cli_opts_usage(fp);
}

/* See commands.h. */
int cli_run_parse(int argc, char **argv, cli_opts *o, const char **in,
                  const char **outp, int *dense, int *help)
{
    run_args ra = {0, 0, NULL};
    int r;
    *in = NULL;
    for (int i = 1; i < argc && !ra.help;) {
        if ((r = cli_opt_take(run_opts, sizeof(run_opts) / sizeof(run_opts[0]),
                              &ra, argc, argv, &i)) != 0 ||
            (r = cli_opts_parse(o, argc, argv, &i)) != 0) {
            if (r < 0)
                return CLI_USAGE;
            continue;
        }
        if (argv[i][0] == '-' && argv[i][1] != '\0') {
            cli_error("run: unknown option '%s'", argv[i]);
            return CLI_USAGE;
        }
        if (*in) {
            cli_error("run: more than one input ('%s', '%s')", *in, argv[i]);
            return CLI_USAGE;
        }
        *in = argv[i++];
    }
    *outp = ra.out;
    *dense = ra.dense;
    *help = ra.help;
    return CLI_OK;
}

/* `stem run`; see run_usage. */
int cmd_run(int argc, char **argv)
{
    const char *in, *outp;
    int dense, help;
    cli_opts o;
    cli_opts_init(&o);
    if (cli_run_parse(argc, argv, &o, &in, &outp, &dense, &help) != CLI_OK)
        return CLI_USAGE;
    if (help) {
        run_usage(stdout);
        return CLI_OK;
    }
    if (!in || !outp) {
        cli_error("run: an input file and -o OUT are required");
        run_usage(stderr);
        return CLI_USAGE;
    }
    int as_dir = output_kind(outp);
    if (as_dir < 0)
        return CLI_USAGE;
    stem_params p;
    int rc = cli_opts_resolve(&o, &p);
    if (rc != CLI_OK)
        return rc;
    stem_isa isa;
    stem_status st = stem_isa_active(&isa);
    if (st != STEM_OK) {
        cli_error("run: %s (check the STEM_ISA environment variable)",
                  stem_strerror(st));
        return CLI_USAGE;
    }

    tf_file f = {0};
    char err[512];
    cli_progress_start("stem run");
    cli_progress("reading");
    if (tf_read(in, &f, err, sizeof(err)) != 0) {
        cli_progress_done();
        cli_error("run: %s", err);
        return cli_exit_tf();
    }
    stem_tensor q, k, v;
    stem_dims dm;
    run_out ro = {0};
    rc = CLI_USAGE;
    if (cli_load_qkv(&f, o.layout, &q, &k, &v, err, sizeof(err)) != 0) {
        cli_error("run: %s: %s", in, err);
        goto done;
    }
    st = stem_dims_get(&p, &q, &k, &v, !dense, &dm);
    if (st != STEM_OK) {
        rc = cli_status_error("run", in, st);
        goto done;
    }
    size_t nout = (size_t)(dm.hq * dm.lq * dm.d);
    size_t nlse = (size_t)(dm.hq * dm.lq);
    size_t nblk = (size_t)(dm.hq * dm.qb * dm.kb);
    ro.out = malloc(nout * sizeof(float));
    ro.lse = malloc(nlse * sizeof(float));
    if (!dense) {
        ro.logits = malloc(nblk * sizeof(float));
        ro.mask = malloc(nblk);
    }
    if (!ro.out || !ro.lse || (!dense && (!ro.logits || !ro.mask))) {
        cli_error("run: out of memory");
        rc = CLI_INTERNAL;
        goto done;
    }
    stem_tensor ot = stem_tensor_hnd(ro.out, STEM_F32, dm.hq, dm.lq, dm.d);
    cli_progress(dense ? "dense attention" : "Stem prefill");
    double t0 = cli_now();
    if (dense)
        st = stem_attention_dense(&p, &q, &k, &v, &ot, ro.lse);
    else
        st = stem_prefill(&p, &q, &k, &v, &ot, ro.lse, ro.logits, ro.mask);
    double secs = cli_now() - t0;
    if (st != STEM_OK) {
        rc = cli_status_error("run", in, st);
        goto done;
    }
    cli_progress("writing");
    rc = write_results(outp, as_dir, &dm, &ro, &p, dense, q.dtype, isa,
                       secs);
    cli_progress_done();
    if (rc != CLI_OK)
        goto done;
    if (dense) {
        fprintf(stderr, "stem: run dense: %.3f s, %lld heads x %lld tokens, "
                "isa %s, %d threads\n", secs, (long long)dm.hq,
                (long long)dm.lq, stem_isa_name(isa), threads_used(&p));
    } else {
        int64_t sel = 0, causal = 0, pb = dm.offset / p.block;
        for (size_t i = 0; i < nblk; i++)
            sel += ro.mask[i] != 0;
        for (int64_t I = 0; I < dm.qb; I++)
            causal += (I + pb + 1 < dm.kb) ? I + pb + 1 : dm.kb;
        causal *= dm.hq;
        fprintf(stderr, "stem: run stem (%s): %.3f s, mask density %.4f, "
                "causal density %.4f (%lld of %lld causal blocks), isa %s, "
                "%d threads\n", stem_profile_name(p.profile), secs,
                (double)sel / (double)nblk, (double)sel / (double)causal,
                (long long)sel, (long long)causal, stem_isa_name(isa),
                threads_used(&p));
    }
done:
    cli_progress_done();
    free(ro.out);
    free(ro.lse);
    free(ro.logits);
    free(ro.mask);
    tf_free(&f);
    return rc;
}
