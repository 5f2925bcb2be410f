/*
 * fuzz_common.h - what the libFuzzer harnesses share: a private scratch
 * directory and a helper that puts the fuzz input into a file there, since
 * the tensor file readers take paths.
 */
#ifndef STEM_FUZZ_COMMON_H
#define STEM_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

/*
 * Create (once per process) a private directory under $TMPDIR or /tmp and
 * return its path; NULL if it cannot be made.  The directory is removed at
 * exit together with what the harness left in it.
 */
const char *fuzz_scratch_dir(void);

/*
 * Write data[0..size-1] to the file `name` inside the scratch directory,
 * replacing it; return its full path (a static buffer) or NULL on failure.
 */
const char *fuzz_put_file(const char *name, const uint8_t *data, size_t size);

/* Fold every byte of buf into a checksum, so that reads are not optimised
 * away and every byte the readers hand out is touched. */
unsigned fuzz_touch(const void *buf, size_t len);

#endif /* STEM_FUZZ_COMMON_H */
