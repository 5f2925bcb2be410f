/*
 * check_tensors.h - reading the tensors `stem check`, `stem explain` and
 * `stem mask` compare: shapes with an optional leading batch dimension of
 * 1, [N, H, ...] layouts, float conversion, masks, and the metadata of a
 * directory of .npy files.
 */
#ifndef STEM_CLI_CHECK_TENSORS_H
#define STEM_CLI_CHECK_TENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "cli_common.h"
#include "tensorfile.h"

/*
 * tf_read, plus: when path is a directory holding metadata.json (a JSON
 * object), its string and number members become the file's metadata.
 * 0, or -1 with a reason in err (nothing left allocated).
 */
int ct_read(const char *path, tf_file *out, char *err, size_t errlen);

/*
 * Copy tensor t (F32, F64, BF16 or F16) into a new contiguous float array
 * *out of shape want[0..n) (malloc'd, the caller frees).  t may carry
 * extra leading dimensions of extent 1.  swap01 = 1: t is stored with its
 * first two axes swapped ([N, H, ...] for want [H, N, ...]) and is
 * transposed into want's order.  -1 with a reason on a dtype or shape
 * mismatch or no memory (*out untouched).
 */
int ct_load_f32(const tf_tensor *t, const int64_t *want, int n, int swap01,
                float **out, char *err, size_t errlen);

/* A mask tensor (U8 or BOOL, nonzero = kept) of shape want[0..3) into a
 * new array *out of 0/1 bytes; same rules as ct_load_f32. */
int ct_load_mask(const tf_tensor *t, const int64_t *want,
                 uint8_t **out, char *err, size_t errlen);

/*
 * Apply the Stem parameters named by f's metadata (alpha, keep_ratio,
 * block_size, stride, initial_blocks, window_size, lambda_mag, as in the
 * conformance files) to o, each only when o does not set it already.
 * Returns a static note naming what was applied, or NULL if nothing was.
 */
const char *ct_apply_meta_params(const tf_file *f, cli_opts *o);

#endif /* STEM_CLI_CHECK_TENSORS_H */
