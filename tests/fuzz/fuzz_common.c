/*
 * fuzz_common.c - scratch directory and input files of the harnesses.
 */
#include "fuzz_common.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char scratch[4096];

/* Remove the files of the scratch directory, then the directory. */
static void remove_scratch(void)
{
    DIR *d = opendir(scratch);
    if (d) {
        struct dirent *e;
        char path[8192];
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(path, sizeof(path), "%s/%s", scratch, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(scratch);
}

/* See fuzz_common.h. */
const char *fuzz_scratch_dir(void)
{
    if (scratch[0])
        return scratch;
    const char *tmp = getenv("TMPDIR");
    snprintf(scratch, sizeof(scratch), "%s/stem-fuzz-XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(scratch)) {
        scratch[0] = '\0';
        return NULL;
    }
    atexit(remove_scratch);
    return scratch;
}

/* See fuzz_common.h. */
const char *fuzz_put_file(const char *name, const uint8_t *data, size_t size)
{
    static char path[8192];
    const char *dir = fuzz_scratch_dir();
    if (!dir)
        return NULL;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *fp = fopen(path, "wb");
    if (!fp)
        return NULL;
    int ok = fwrite(data, 1, size, fp) == size;
    ok = (fclose(fp) == 0) && ok;
    return ok ? path : NULL;
}

/* See fuzz_common.h. */
unsigned fuzz_touch(const void *buf, size_t len)
{
    const unsigned char *p = buf;
    unsigned h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}
