/*
 * fuzz_cli_args.c - libFuzzer harness of the stem command line: the input
 * is a list of arguments separated by NUL bytes, passed to the tool's entry
 * point (tools/cli/main.c compiled with main renamed stem_cli_main) as
 * argv[1..].
 *
 * Only argument parsing is under test here, not the work.  `run` and
 * `compare` run as given: their inputs cannot exist (the harness runs in
 * an empty private scratch directory), so they parse, resolve the options
 * and stop at loading.  For the other commands that compute or write files
 * (gen, and any command added later), two unknown options are appended, so
 * that every fuzzed argument is parsed and the command then stops with a
 * usage error (two, because an option that takes a value may swallow the
 * first).  The exit code must be 0, 1 or 2.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_common.h"

int stem_cli_main(int argc, char **argv);

#define MAX_ARGS 64
#define MAX_BYTES 4096

/* Commands that are cheap or cannot reach their work here: run without
 * the sentinels. */
static int is_cheap(const char *cmd)
{
    static const char *const cheap[] = {"info", "help", "--help", "-h",
                                        "--version", "run", "compare"};
    for (size_t i = 0; i < sizeof(cheap) / sizeof(cheap[0]); i++)
        if (strcmp(cmd, cheap[i]) == 0)
            return 1;
    return 0;
}

/* libFuzzer hook: move into the scratch directory once. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *dir = fuzz_scratch_dir();
    if (!dir || chdir(dir) != 0)
        abort();
    return 0;
}

/* libFuzzer entry point: one argument list, always returns 0. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_BYTES)
        return 0;
    char *buf = malloc(size + 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    char *args[MAX_ARGS + 4];
    int argc = 0;
    args[argc++] = "stem";
    for (size_t at = 0; at < size && argc < MAX_ARGS;) {
        args[argc++] = buf + at;
        at += strlen(buf + at) + 1;
    }
    if (argc < 2 || !is_cheap(args[1])) {
        args[argc++] = "--stem-fuzz-end";
        args[argc++] = "--stem-fuzz-end";
    }
    args[argc] = NULL;
    int rc = stem_cli_main(argc, args);
    if (rc < 0 || rc > 2)
        abort();
    free(buf);
    return 0;
}
