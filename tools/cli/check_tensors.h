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
 * A read-only view *out over tensor t (no copy; it points into t's data, so
 * the tf_file must outlive it) of logical shape want[0..n), n = 2 or 3:
 * [heads, tokens] (dim 1) or [heads, tokens, dim].  t may carry extra
 * leading dimensions of extent 1.  swap01 = 1: t is stored with its first
 * two axes swapped ([tokens, heads, ...]); the view's strides say so.
 * mask = 1: t must be U8 or BOOL and the view is STEM_U8; mask = 0: t must
 * be F32, F64, BF16 or F16.  0, or -1 with a reason in err (*out untouched).
 */
int ct_view(const tf_tensor *t, const int64_t *want, int n, int swap01,
            int mask, stem_tensor *out, char *err, size_t errlen);

/*
 * Apply the Stem parameters named by f's metadata to o, each only when o
 * does not set it already.  Both naming styles are understood: `stem run`'s
 * (sinks, window, lambda, prompt_blocks) and AngelSlim's (initial_blocks,
 * window_size, lambda_mag), plus alpha, keep_ratio, block_size and stride;
 * where both styles name a parameter with different values, the AngelSlim
 * name wins.  Call ct_check_meta_params first: values it refuses are
 * never applied.  Returns a static note naming what was applied, or NULL
 * if nothing was.
 */
const char *ct_apply_meta_params(const tf_file *f, cli_opts *o);

/*
 * Refuse metadata of f (read from path) that ct_apply_meta_params would
 * use but cannot: a value that is not a number, or outside its range
 * (alpha, keep_ratio 0..1; lambda, lambda_mag 0..1e6; block_size 16..4096;
 * stride 1..block and dividing it; sinks, initial_blocks, window,
 * window_size 0..2^30; prompt_blocks 0..CLI_MAX_PROMPT_BLOCKS).
 * Keys o sets from the command line are not looked at.  CLI_OK, or
 * CLI_USAGE after a message naming the key, its value, the file and the
 * valid range, e.g. "metadata prompt_blocks=250000000 in DIR/metadata.json:
 * must be in 0..16777216".
 */
int ct_check_meta_params(const tf_file *f, const char *path,
                         const cli_opts *o);

#endif /* STEM_CLI_CHECK_TENSORS_H */
