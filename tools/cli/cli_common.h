/*
 * cli_common.h - what the stem subcommands share: exit codes, messages,
 * strict number parsing, the common parameter options, and q/k/v loading
 * from a tensor file.
 */
#ifndef STEM_CLI_COMMON_H
#define STEM_CLI_COMMON_H

#include <stdint.h>
#include <stdio.h>

#include "stem.h"
#include "tensorfile.h"

/* Exit codes of every subcommand (stem --help and docs/GUARANTEES.md). */
#define CLI_OK 0                /* success; `stem check`: PASS */
#define CLI_FAIL 1              /* the answer is no: `stem check` found a
                                 * fault, `stem compare` a difference over
                                 * the tolerance; message on stderr */
#define CLI_USAGE 2             /* bad input: the command line, an input
                                 * file, a parameter, an output path */
#define CLI_INTERNAL 3          /* the system failed: out of memory, no
                                 * threads, an I/O error */

/* CLI_INTERNAL for STEM_ERR_NOMEM, CLI_USAGE for any other error status
 * (the input or the parameters are at fault). */
int cli_exit_status(stem_status st);
/* CLI_INTERNAL or CLI_USAGE for the last failing tensorfile call
 * (tf_last_fail). */
int cli_exit_tf(void);
/* cli_error("CMD: WHAT: <stem_strerror(st)> (<stem_last_error()>)") and
 * cli_exit_status(st). */
int cli_status_error(const char *cmd, const char *what, stem_status st);

/* Storage order of q/k/v in the input file. */
#define CLI_LAYOUT_HND 0        /* [heads, tokens, dim] (default) */
#define CLI_LAYOUT_NHD 1        /* [tokens, heads, dim] */

/* printf-style message to stderr, prefixed "stem: " and ended by '\n';
 * or, while a sink is set (cli_error_to), the message text alone (no
 * prefix, no newline, at most 1023 bytes) handed to the sink. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Send cli_error's messages to sink(ctx, msg) instead of stderr; sink
 * NULL: back to stderr.  For stem-mpi, whose ranks gather messages to
 * rank 0 rather than each printing them. */
void cli_error_to(void (*sink)(void *ctx, const char *msg), void *ctx);

/*
 * Strict number parsing of option opt's value text: the whole text must be
 * a number within [lo, hi] (doubles: finite too).  0 on success with *out
 * set; on error prints "stem: OPT: ..." and returns -1 (a usage error).
 */
int cli_parse_int(const char *opt, const char *text, long long lo,
                  long long hi, long long *out);
int cli_parse_double(const char *opt, const char *text, double lo, double hi,
                     double *out);

/*
 * Option value helper for "--opt VALUE" and "--opt=VALUE".  If argv[*i]
 * is option name (exactly, or followed by '='), sets *value to its value,
 * advances *i past what was used and returns 1; returns 0 if argv[*i] is
 * another option; -1 (message printed) if the value is missing.
 */
int cli_opt_value(int argc, char **argv, int *i, const char *name,
                  const char **value);

/* Largest prompt_blocks the tool takes, from an option or from a file's
 * metadata: 2^24 blocks (2^31 tokens of 128), so that a budget the tool
 * tabulates (`stem budget`, `stem mask --diff`) stays within 64 MB.  The
 * library itself takes up to 2^40 and tabulates only the Kb positions a
 * call reads. */
#define CLI_MAX_PROMPT_BLOCKS (1LL << 24)

/*
 * One option of a command's grammar, in a table that both reads the
 * command line (cli_opt_take) and lists the options in --help
 * (cli_opt_usage), so that an option cannot be read without being listed
 * nor exist in one tool (stem, stem-mpi) and not the other: they read a
 * shared command with the same tables.  Values go into a struct at the
 * offsets given: CLI_OPT_FLAG sets an int to 1; CLI_OPT_NUM parses a
 * double and CLI_OPT_INT a long long within [lo, hi]; CLI_OPT_TEXT keeps
 * the const char * value; CLI_OPT_CALL hands the value text to call
 * (0, or -1 after a message).  have, unless CLI_OPT_NO_HAVE, is an int
 * set to 1 once the option is read.  help: its --help line(s) after the
 * name column, "\n" between lines; NULL lists the name alone.
 */
enum { CLI_OPT_FLAG, CLI_OPT_NUM, CLI_OPT_INT, CLI_OPT_TEXT, CLI_OPT_CALL };
#define CLI_OPT_NO_HAVE ((size_t)-1)
typedef struct cli_opt_spec {
    const char *name, *alias;   /* "--verbose", "-v" (alias may be NULL) */
    const char *arg;            /* the value's name in --help ("A"), or NULL */
    int kind;
    size_t at, have;
    double lo, hi;
    int (*call)(void *base, const char *opt, const char *value);
    const char *help;
} cli_opt_spec;

/*
 * Consume the option of table t (n entries) at argv[*i] into the struct at
 * base.  1 when consumed (*i moved past it and its value), 0 when argv[*i]
 * is none of them, -1 on a missing or bad value (message given).
 */
int cli_opt_take(const cli_opt_spec *t, size_t n, void *base, int argc,
                 char **argv, int *i);

/* The --help lines of table t: "  NAME ARG" padded to a column, then the
 * help text. */
void cli_opt_usage(const cli_opt_spec *t, size_t n, FILE *fp);

/* The common options as given on the command line, before resolution. */
typedef struct cli_opts {
    stem_profile profile;
    int have_alpha, have_keep, have_block, have_stride, have_lambda;
    int have_sinks, have_window, have_prompt;
    double alpha, keep_ratio, lambda;
    long long block, stride, sinks, window, prompt_blocks;
    int use_f64;
    stem_compute compute;       /* --compute f32|bf16 (default f32) */
    int threads;                /* 0: not given */
    int layout;                 /* CLI_LAYOUT_HND or CLI_LAYOUT_NHD */
} cli_opts;

/* Defaults: profile angelslim, nothing overridden, layout hnd. */
void cli_opts_init(cli_opts *o);

/*
 * Try to consume one common option at argv[*i] (--profile, --alpha,
 * --keep-ratio, --block, --stride, --lambda, --sinks, --window, --f64,
 * --compute, --threads, --prompt-blocks, --layout).  Returns 1 if consumed (*i moved
 * past it), 0 if argv[*i] is not a common option, -1 on a usage error
 * (message printed).
 */
int cli_opts_parse(cli_opts *o, int argc, char **argv, int *i);

/*
 * Resolve o into *params: stem_params_init(profile), then the overrides,
 * then stem_params_validate.  Also applies --threads to OpenMP
 * (omp_set_num_threads).  Returns CLI_OK, or CLI_USAGE with a message.
 */
int cli_opts_resolve(const cli_opts *o, stem_params *params);

/* Help text lines for the common options, for a command's usage. */
void cli_opts_usage(FILE *fp);

/* 1 if dt is one the library takes for q, k and v (F32, BF16, F16, F64),
 * else 0. */
int cli_input_dtype(stem_dtype dt);

/*
 * Views q [Hq, Lq, d], k and v [Hkv, Lk, d] over the tensors "q", "k", "v"
 * of f (no copies; the views point into f, which must outlive them).
 * layout CLI_LAYOUT_HND: 3-d [H, N, d] or 4-d [1, H, N, d];
 * CLI_LAYOUT_NHD: [N, H, d] or [1, N, H, d].  Dtypes BF16, F16, F32, F64.
 * Shape agreement between q, k and v is left to the library
 * (stem_dims_get).  0 on success; -1 with a reason in err.
 */
int cli_load_qkv(const tf_file *f, int layout, stem_tensor *q, stem_tensor *k,
                 stem_tensor *v, char *err, size_t errlen);

/* Shortest "%.Ng" text that reads back as x, into buf (>= 32 bytes). */
void cli_fmt_double(char *buf, size_t cap, double x);

/* Seconds on a monotonic clock. */
double cli_now(void);

#endif /* STEM_CLI_COMMON_H */
