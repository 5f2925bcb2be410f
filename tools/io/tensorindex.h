/*
 * tensorindex.h - where each tensor of a tensor file lies, without reading
 * the data: the header of a safetensors file, of a .npy file, or of each
 * .npy file of a directory.  Then positioned reads of any slice along one
 * axis, so that a process that needs a few heads of a large file reads
 * only their bytes (stem-mpi).  Same validation as tf_read: dtypes, shapes,
 * data offsets inside the data section and matching dtype x shape.
 *
 * Functions return 0, or -1 with a one-line reason in err.
 */
#ifndef STEM_TENSORINDEX_H
#define STEM_TENSORINDEX_H

#include <stddef.h>
#include <stdint.h>

#include "tensorfile.h"

typedef struct tf_index_entry {
    char name[TF_NAME_MAX];
    stem_dtype dtype;
    int ndim;
    int64_t shape[TF_MAX_DIMS];
    size_t nbytes;
    int file;                   /* index into tf_index.paths */
    uint64_t offset;            /* where its bytes start in that file */
} tf_index_entry;

typedef struct tf_index {
    tf_index_entry *entries;
    int count;
    char **paths;               /* the files holding the data */
    int npaths;
    tf_file meta;               /* metadata only (no tensors): safetensors
                                   __metadata__, or a directory's
                                   metadata.json string/number members */
} tf_index;

/* Index a safetensors file, a .npy file or a directory of .npy files
 * (the same inputs as tf_read). */
int tf_index_read(const char *path, tf_index *idx, char *err, size_t errlen);
void tf_index_free(tf_index *idx);
const tf_index_entry *tf_index_find(const tf_index *idx, const char *name);

/*
 * Read entries [begin, begin + count) of axis `axis` of e (every other
 * axis whole) into buf, C order, with positioned reads: one read per
 * contiguous run.  buf holds count * (nbytes / shape[axis]) bytes.
 */
int tf_index_read_slice(const tf_index *idx, const tf_index_entry *e,
                        int axis, int64_t begin, int64_t count, void *buf,
                        char *err, size_t errlen);

/*
 * Append to f a tensor of e's name, dtype and shape except shape[axis] =
 * count, holding that slice (read with tf_index_read_slice into memory f
 * owns).
 */
int tf_index_load_slice(const tf_index *idx, const tf_index_entry *e,
                        int axis, int64_t begin, int64_t count, tf_file *f,
                        char *err, size_t errlen);

/* --- defined beside the whole-file readers and writers ------------------ */

/* The header of a .npy file from its first len bytes: dtype, shape and
 * where the data starts (npy.c). */
int tf_npy_header(const void *buf, size_t len, stem_dtype *dtype, int *ndim,
                  int64_t *shape, size_t *data_off, char *err, size_t errlen);

/* The 8 length bytes plus the padded JSON header that tf_write_safetensors
 * writes for f; the tensors' data is not read (may be NULL).  The data of
 * tensor i then starts at *len plus the sizes of tensors 0..i-1.  *out is
 * malloc'd (safetensors.c). */
int tf_safetensors_header(const tf_file *f, void **out, size_t *len,
                          char *err, size_t errlen);

#endif /* STEM_TENSORINDEX_H */
