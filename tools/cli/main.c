/*
 * main.c - the stem command-line tool: dispatches `stem CMD ...` through
 * the table of commands.h.
 */
#include <stdio.h>
#include <string.h>

#include "cli_common.h"
#define STEM_CLI_DEFINE_TABLE
#include "commands.h"

#define NCOMMANDS ((int)(sizeof(stem_commands) / sizeof(stem_commands[0])))

static void usage(FILE *fp)
{
    fprintf(fp,
            "usage: stem COMMAND [ARGS...]\n"
            "       stem help COMMAND | stem --help | stem --version\n\n"
            "Stem sparse attention for long-context prefill on the CPU.\n\n"
            "Commands:\n");
    for (int i = 0; i < NCOMMANDS; i++)
        fprintf(fp, "  %-10s %s\n", stem_commands[i].name,
                stem_commands[i].summary);
    fprintf(fp, "\nExit status, every command:\n"
                "  0  success (stem check: PASS)\n"
                "  1  the answer is no: stem check found a fault, stem compare\n"
                "     an error over --max-rel-l2\n"
                "  2  bad input: the command line, an input file, a parameter\n"
                "     (also one from a file's metadata), an output path\n"
                "  3  internal failure: out of memory, an I/O error\n");
}

static const stem_command *find_command(const char *name)
{
    for (int i = 0; i < NCOMMANDS; i++)
        if (strcmp(stem_commands[i].name, name) == 0)
            return &stem_commands[i];
    return NULL;
}

/* Entry point: exit codes as usage() prints them. */
int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CLI_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
        usage(stdout);
        return CLI_OK;
    }
    if (strcmp(name, "--version") == 0) {
        printf("stem %s\n", stem_version());
        return CLI_OK;
    }
    if (strcmp(name, "help") == 0) {
        if (argc == 2) {
            usage(stdout);
            return CLI_OK;
        }
        const stem_command *c = find_command(argv[2]);
        if (!c || argc > 3) {
            cli_error("help: unknown command '%s'", argv[2]);
            return CLI_USAGE;
        }
        char *args[3] = {argv[2], "--help", NULL};
        return c->run(2, args);
    }
    const stem_command *c = find_command(name);
    if (!c) {
        cli_error("unknown command '%s' (see stem --help)", name);
        return CLI_USAGE;
    }
    int rc = c->run(argc - 1, argv + 1);
    if (fflush(stdout) != 0 && rc == CLI_OK) {
        cli_error("cannot write to standard output");
        return CLI_INTERNAL;
    }
    return rc;
}
