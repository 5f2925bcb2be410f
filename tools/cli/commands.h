/*
 * commands.h - the stem subcommands and the table main.c dispatches
 * through.  Each command takes (argc, argv) with argv[0] the command name,
 * handles --help itself (usage on stdout, exit 0) and returns CLI_OK,
 * CLI_FAIL or CLI_USAGE (cli_common.h).
 */
#ifndef STEM_CLI_COMMANDS_H
#define STEM_CLI_COMMANDS_H

#include "cli_common.h"
#include "stem.h"

int cmd_gen(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_compare(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_explain(int argc, char **argv);
int cmd_mask(int argc, char **argv);
int cmd_budget(int argc, char **argv);

/* The metadata `stem run` writes with its results (cmd_run.c); stem-mpi
 * writes the same.  0, or -1 after a message. */
struct tf_file;
/* Parse `stem run`'s command line (argv[0] is the sub-command): the
 * common options into *o, the input, -o OUT and --dense; *help set for
 * --help.  CLI_OK, or CLI_USAGE after a message.  Shared with stem-mpi. */
int cli_run_parse(int argc, char **argv, cli_opts *o, const char **in,
                  const char **outp, int *dense, int *help);
/* The --help lines of every option cli_run_parse reads (stem run's own and
 * the common ones), for stem run and stem-mpi run alike. */
void cli_run_opts_usage(FILE *fp);
int cli_run_add_meta(struct tf_file *f, const stem_params *p, int dense,
                     stem_dtype in_dtype, stem_isa isa, double secs);

typedef struct stem_command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;        /* one line for `stem --help` */
} stem_command;

/* The table itself is defined only where STEM_CLI_DEFINE_TABLE is set
 * (main.c). */
#ifdef STEM_CLI_DEFINE_TABLE
static const stem_command stem_commands[] = {
    {"gen", cmd_gen, "generate a q/k/v workload (structured or random)"},
    {"run", cmd_run, "run Stem (or dense) attention on q/k/v, write results"},
    {"info", cmd_info, "version, instruction sets, threads"},
    {"compare", cmd_compare, "relative L2 and max abs error of a tensor"},
    {"check", cmd_check, "validate a GPU Stem kernel's logits, mask, out, lse"},
    {"explain", cmd_explain, "why each key block of one query block was kept or dropped"},
    {"mask", cmd_mask, "PNG picture of a block mask, of mask differences, or of logits"},
    {"budget", cmd_budget, "the top-k budget per query block of the three profiles (table or PNG)"},
};
#endif

#endif /* STEM_CLI_COMMANDS_H */
