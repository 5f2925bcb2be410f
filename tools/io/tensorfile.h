/*
 * tensorfile.h - reading and writing the tensor files people dump:
 * safetensors (JSON header through libcjson) and NumPy .npy / directories
 * of .npy files.  Used by the stem command-line tool and the tests; not part
 * of the library's public API.
 *
 * Every function returns 0 on success and -1 on failure with a one-line
 * reason in err (errlen bytes, always NUL-terminated when errlen > 0).
 * Nothing is left allocated on failure.
 */
#ifndef STEM_TENSORFILE_H
#define STEM_TENSORFILE_H

#include <stddef.h>
#include <stdint.h>

#include "stem.h"

#define TF_MAX_DIMS 8
#define TF_NAME_MAX 128


/* One tensor: name, dtype, shape and its bytes (little-endian, C order).
 * Element types are the library's (stem_dtype: stem_dtype_name and
 * stem_dtype_size give safetensors' names and the sizes; stem_bf16_to_f32
 * & co. convert). */
typedef struct tf_tensor {
    char name[TF_NAME_MAX];
    stem_dtype dtype;
    int ndim;
    int64_t shape[TF_MAX_DIMS];
    void *data;                 /* owned by the tf_file it came from */
    size_t nbytes;
} tf_tensor;

/* A set of tensors plus string metadata (safetensors "__metadata__"). */
typedef struct tf_file {
    tf_tensor *tensors;
    int count;
    char **meta_keys;
    char **meta_values;
    int meta_count;
    void *blob;                 /* internal: backing storage */
} tf_file;

int64_t tf_numel(const tf_tensor *t);

/*
 * What the calling thread's last failing tensorfile call ran into:
 * TF_FAIL_INPUT, the input, the path or the arguments (a bad file, a
 * missing one, a refused output path), or TF_FAIL_SYSTEM, the system (out
 * of memory, an I/O error, a full disk).  The stem tool exits 2 for the
 * first and 3 for the second.
 */
typedef enum tf_fail_kind { TF_FAIL_INPUT = 0, TF_FAIL_SYSTEM = 1 } tf_fail_kind;
tf_fail_kind tf_last_fail(void);

/*
 * Read a safetensors file, a single .npy file (one tensor named after the
 * file's stem) or a directory of .npy files (one tensor per file).  Every
 * offset, shape and size is validated against the file length; overflowing
 * products, unknown dtypes and truncated data are errors.  Anything but a
 * regular file or a directory (a FIFO, a device, a socket) is refused
 * without being waited on: files are opened O_NONBLOCK and checked with
 * fstat before a byte is read.
 */
int tf_read(const char *path, tf_file *out, char *err, size_t errlen);

/* Release what tf_read or tf_add filled in; safe on a zeroed tf_file. */
void tf_free(tf_file *f);

/* Find a tensor by name; NULL if absent. */
const tf_tensor *tf_find(const tf_file *f, const char *name);
/* Metadata value by key; NULL if absent. */
const char *tf_meta(const tf_file *f, const char *key);

/*
 * Append a tensor to f, copying data (nbytes must equal numel * dtype size).
 * Used to build a file to write.
 */
int tf_add(tf_file *f, const char *name, stem_dtype dtype, int ndim,
           const int64_t *shape, const void *data, char *err, size_t errlen);
/* Append or replace a metadata pair. */
int tf_set_meta(tf_file *f, const char *key, const char *value, char *err,
                size_t errlen);

/*
 * Write f as safetensors to path.  The bytes go to a temporary file in the
 * same directory, which is renamed over path only once complete: a failed
 * write never clobbers an existing file.
 */
int tf_write_safetensors(const tf_file *f, const char *path, char *err,
                         size_t errlen);

/* Write one tensor as a .npy file (same temporary-then-rename rule). */
int tf_write_npy(const tf_tensor *t, const char *path, char *err,
                 size_t errlen);

/*
 * Write f as a directory of .npy files, one per tensor (NAME.npy), plus
 * metadata.json holding f's metadata as an object of strings (the form
 * `stem check` reads).  path may end in '/'.  The files are written into a
 * temporary directory beside path, which then takes path's place whole: a
 * failed write leaves path as it was.  An existing path is replaced only
 * when it is a directory holding nothing but regular files named in
 * replaceable (a NULL-terminated list, e.g. the outputs of an earlier run);
 * anything else there is refused with a reason in err.  Every tensor's
 * dtype must have a .npy equivalent (not BF16).
 */
int tf_write_npy_dir(const tf_file *f, const char *path,
                     const char *const *replaceable, char *err,
                     size_t errlen);

/*
 * The check tf_write_npy_dir makes before writing, for callers that want
 * to refuse a target before a long computation: 0 when path does not exist
 * (*exists = 0) or is a directory holding only regular files named in
 * replaceable (*exists = 1); -1 with a reason otherwise.
 */
int tf_npy_dir_target(const char *path, const char *const *replaceable,
                      int *exists, char *err, size_t errlen);

/* ---------------------------------------------------------------------
 * Lower-level pieces shared by the readers and writers (tensorfile.c,
 * safetensors.c, npy.c).  Callers normally use the functions above.
 */

/* printf-style message into err (errlen bytes, NUL-terminated); nothing
 * when err is NULL or errlen is 0. */
void tf_set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The same for a failure of the system rather than of the input (out of
 * memory, an I/O error): also marks the thread's last failure as
 * TF_FAIL_SYSTEM. */
void tf_set_syserr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The same for a failed system call with error code e: TF_FAIL_SYSTEM
 * unless e says the path or its permissions are at fault (ENOENT, EACCES,
 * EPERM, ENOTDIR, EISDIR, EROFS, ELOOP, ENAMETOOLONG, EEXIST, ENXIO). */
void tf_set_oserr(char *err, size_t errlen, int e, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Route libcjson's allocations through a wrapper that notes a failure
 * (installed once, process-wide) and clear the note; after a failed parse
 * or print, tf_cjson_oom() says whether the allocator was the cause, so
 * that running out of memory is not reported as a malformed header. */
void tf_cjson_begin(void);
int tf_cjson_oom(void);
/* Forget the thread's last failure kind (every public reader and writer
 * does this first). */
void tf_fail_reset(void);

/*
 * Byte size of a tensor of dtype with shape[0..ndim-1]: every extent must
 * be >= 0, ndim in 0..TF_MAX_DIMS, and the product times the element size
 * must fit in size_t and int64_t.  0 on success, -1 with err filled.
 */
int tf_shape_bytes(stem_dtype dtype, int ndim, const int64_t *shape,
                   size_t *nbytes, char *err, size_t errlen);

/*
 * The checks of a tensor's entry that every reader makes: name non-empty
 * and shorter than TF_NAME_MAX, not taken already (taken: the caller's
 * lookup), and the byte size of dtype x shape (tf_shape_bytes) into
 * *nbytes.  0, or -1 with err filled.
 */
int tf_entry_ok(const char *name, int taken, stem_dtype dtype, int ndim,
                const int64_t *shape, size_t *nbytes, char *err,
                size_t errlen);

/*
 * Append a tensor whose bytes already live in memory f owns (registered
 * with tf_own_chunk, or inside such a chunk).  data is not copied unless it
 * is misaligned for the element size, in which case an aligned copy is
 * made.  Name must be non-empty, shorter than TF_NAME_MAX and unique.
 */
int tf_push_tensor(tf_file *f, const char *name, stem_dtype dtype, int ndim,
                   const int64_t *shape, void *data, size_t nbytes,
                   char *err, size_t errlen);

/* Hand a malloc'd chunk to f: tf_free releases it.  On failure (-1, out
 * of memory) the chunk is freed here and f is unchanged. */
int tf_own_chunk(tf_file *f, void *chunk, char *err, size_t errlen);

/*
 * Open path for reading without blocking (O_NONBLOCK): a FIFO or a device
 * is refused at once, with the reason in err, instead of being waited on.
 * The descriptor of a regular file, its size in *size (size may be NULL),
 * or -1.
 */
int tf_open_input(const char *path, uint64_t *size, char *err, size_t errlen);

/* The name a .npy file's tensor takes: path's file name without
 * directories and without ".npy", into out (cap bytes, truncated). */
void tf_npy_name(const char *path, char *out, size_t cap);

/*
 * 0 when path may be replaced by a regular file: it does not exist or is
 * a regular file.  -1 with a reason when it is anything else (a symbolic
 * link, a FIFO, a device, a socket, a directory): outputs never replace
 * those, and never write through a link.
 */
int tf_output_replaceable(const char *path, char *err, size_t errlen);

/*
 * Read a whole regular file into a malloc'd buffer (*buf, *len); the
 * caller frees *buf.  Refuses files larger than SIZE_MAX / 2.
 */
int tf_read_all(const char *path, void **buf, size_t *len, char *err,
                size_t errlen);

/*
 * Write the n pieces (ptrs[i], lens[i]) to path through a temporary file
 * in the same directory (mode 0666 & ~umask), fsync'd and renamed over
 * path.  On failure the temporary file is removed and path is untouched.
 * An existing path that is not a regular file is refused
 * (tf_output_replaceable).
 */
int tf_write_atomic(const char *path, int n, const void *const *ptrs,
                    const size_t *lens, char *err, size_t errlen);

/* Read exactly len bytes of fd from offset off (pread, retrying short
 * reads and EINTR); 0, or -1 on an error or end of file. */
int tf_pread_exact(int fd, void *buf, size_t len, uint64_t off);
/* Write all len bytes of buf to fd at offset off (pwrite, retrying short
 * writes and EINTR); 0, or -1 on an error. */
int tf_pwrite_exact(int fd, const void *buf, size_t len, uint64_t off);

/* One tensor of a safetensors header, validated: a known dtype, its shape,
 * and data_offsets inside the data section matching dtype x shape.  Its
 * bytes are nbytes at file offset data_start + begin. */
typedef struct tf_st_entry {
    const char *name;           /* valid during the call it is handed to */
    stem_dtype dtype;
    int ndim;
    int64_t shape[TF_MAX_DIMS];
    size_t nbytes;
    uint64_t data_start;        /* where the data section starts */
    uint64_t begin;             /* where the tensor starts in it */
} tf_st_entry;
typedef int (*tf_st_each)(void *ctx, const tf_st_entry *e, char *err,
                          size_t errlen);

/*
 * The one safetensors header parser, behind tf_read_safetensors and the
 * offset index (tensorindex.h): read the header of the open file fd
 * (fsize bytes), check its length, its JSON (no escaped NUL, nothing after
 * it), every tensor entry, and that no two tensors share data bytes; add
 * __metadata__ to meta and hand each tensor, in header order, to
 * each(ctx, ...), which returns 0 or -1 with err set.  0, or -1 with a
 * reason in err (not prefixed by a path).
 */
int tf_safetensors_scan(int fd, uint64_t fsize, tf_file *meta,
                        tf_st_each each, void *ctx, char *err, size_t errlen);

/* Format readers behind tf_read (same contract). */
int tf_read_safetensors(const char *path, tf_file *out, char *err,
                        size_t errlen);
int tf_read_npy(const char *path, tf_file *out, char *err, size_t errlen);
/* The .npy files of directory path (names not starting with '.'), sorted
 * by name, into a new array *out of *count strdup'd names; -1 with err set
 * when the directory cannot be read or holds none.  Release with
 * tf_npy_dir_names_free. */
int tf_npy_dir_names(const char *path, char ***out, int *count, char *err,
                     size_t errlen);
void tf_npy_dir_names_free(char **names, int n);
/* Add the string and number members of DIR/metadata.json (numbers in their
 * shortest round-trip form) to f's metadata; 0 also when there is no such
 * file, -1 with err set when it is unreadable or not a JSON object. */
int tf_npy_dir_meta(const char *dir, tf_file *f, char *err, size_t errlen);
int tf_read_npy_dir(const char *path, tf_file *out, char *err,
                    size_t errlen);

#endif /* STEM_TENSORFILE_H */
