/*
 * tensorfile.c - the format-independent part of tensorfile.h: errors,
 * shape arithmetic, ownership of tensor bytes, metadata, whole-file reads,
 * atomic writes.
 */
#include "tensorfile.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* What tf_file.blob points to: every allocation the file owns. */
typedef struct tf_store {
    void **chunks;
    int count, cap;
} tf_store;

/* The printf body of tf_set_err and its siblings. */
static void set_msg(char *err, size_t errlen, const char *fmt, va_list ap)
{
    if (err && errlen > 0)
        vsnprintf(err, errlen, fmt, ap);
}

void tf_set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_msg(err, errlen, fmt, ap);
    va_end(ap);
}

/* The kind of the calling thread's last failure (tf_last_fail). */
static _Thread_local tf_fail_kind last_fail;

tf_fail_kind tf_last_fail(void)
{
    return last_fail;
}

void tf_fail_reset(void)
{
    last_fail = TF_FAIL_INPUT;
}

void tf_set_syserr(char *err, size_t errlen, const char *fmt, ...)
{
    last_fail = TF_FAIL_SYSTEM;
    va_list ap;
    va_start(ap, fmt);
    set_msg(err, errlen, fmt, ap);
    va_end(ap);
}

void tf_set_oserr(char *err, size_t errlen, int e, const char *fmt, ...)
{
    switch (e) {
    case ENOENT: case EACCES: case EPERM: case ENOTDIR: case EISDIR:
    case EROFS: case ELOOP: case ENAMETOOLONG: case EEXIST: case ENXIO:
        break;
    default:
        last_fail = TF_FAIL_SYSTEM;
    }
    va_list ap;
    va_start(ap, fmt);
    set_msg(err, errlen, fmt, ap);
    va_end(ap);
}

/* Set when libcjson's allocator fails on this thread (tf_cjson_begin). */
static _Thread_local int cjson_oom;

static void *cjson_malloc(size_t n)
{
    void *p = malloc(n);
    if (!p)
        cjson_oom = 1;
    return p;
}

void tf_cjson_begin(void)
{
    static cJSON_Hooks hooks = {cjson_malloc, free};
    static atomic_int installed;
    if (!atomic_exchange(&installed, 1))
        cJSON_InitHooks(&hooks);
    cjson_oom = 0;
}

int tf_cjson_oom(void)
{
    return cjson_oom;
}

/* Product of the extents of t (1 for a 0-d tensor); t must be valid. */
int64_t tf_numel(const tf_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= t->shape[i];
    return n;
}

/* See tensorfile.h. */
int tf_shape_bytes(stem_dtype dtype, int ndim, const int64_t *shape,
                   size_t *nbytes, char *err, size_t errlen)
{
    size_t es = stem_dtype_size(dtype);
    if (es == 0) {
        tf_set_err(err, errlen, "unknown dtype %d", (int)dtype);
        return -1;
    }
    if (ndim < 0 || ndim > TF_MAX_DIMS) {
        tf_set_err(err, errlen, "%d dimensions (at most %d)", ndim, TF_MAX_DIMS);
        return -1;
    }
    if (ndim > 0 && !shape) {
        tf_set_err(err, errlen, "missing shape");
        return -1;
    }
    uint64_t total = es;
    const uint64_t limit = (uint64_t)INT64_MAX < (uint64_t)SIZE_MAX
                               ? (uint64_t)INT64_MAX : (uint64_t)SIZE_MAX;
    int zero = 0;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) {
            tf_set_err(err, errlen, "negative extent %lld in dimension %d",
                    (long long)shape[i], i);
            return -1;
        }
        if (shape[i] == 0)
            zero = 1;
    }
    for (int i = 0; i < ndim && !zero; i++) {
        uint64_t e = (uint64_t)shape[i];
        if (total > limit / e) {
            tf_set_err(err, errlen, "shape too large (size overflows)");
            return -1;
        }
        total *= e;
    }
    *nbytes = zero ? 0 : (size_t)total;
    return 0;
}

static tf_store *store_of(tf_file *f, char *err, size_t errlen)
{
    if (!f->blob) {
        f->blob = calloc(1, sizeof(tf_store));
        if (!f->blob)
            tf_set_syserr(err, errlen, "out of memory");
    }
    return f->blob;
}

/* See tensorfile.h. */
int tf_own_chunk(tf_file *f, void *chunk, char *err, size_t errlen)
{
    tf_store *s = store_of(f, err, errlen);
    if (!s) {
        free(chunk);
        return -1;
    }
    if (s->count == s->cap) {
        int cap = s->cap ? 2 * s->cap : 8;
        void **c = realloc(s->chunks, (size_t)cap * sizeof(*c));
        if (!c) {
            free(chunk);
            tf_set_syserr(err, errlen, "out of memory");
            return -1;
        }
        s->chunks = c;
        s->cap = cap;
    }
    s->chunks[s->count++] = chunk;
    return 0;
}

/* See tensorfile.h. */
int tf_entry_ok(const char *name, int taken, stem_dtype dtype, int ndim,
                const int64_t *shape, size_t *nbytes, char *err,
                size_t errlen)
{
    if (name[0] == '\0' || strlen(name) >= TF_NAME_MAX) {
        tf_set_err(err, errlen, "tensor name empty or longer than %d bytes",
                   TF_NAME_MAX - 1);
        return -1;
    }
    if (taken) {
        tf_set_err(err, errlen, "duplicate tensor name '%s'", name);
        return -1;
    }
    return tf_shape_bytes(dtype, ndim, shape, nbytes, err, errlen);
}

/* See tensorfile.h. */
int tf_push_tensor(tf_file *f, const char *name, stem_dtype dtype, int ndim,
                   const int64_t *shape, void *data, size_t nbytes,
                   char *err, size_t errlen)
{
    size_t want;
    if (!f || !name) {
        tf_set_err(err, errlen, "NULL argument");
        return -1;
    }
    if (tf_entry_ok(name, tf_find(f, name) != NULL, dtype, ndim, shape,
                    &want, err, errlen) != 0)
        return -1;
    if (want != nbytes) {
        tf_set_err(err, errlen, "tensor '%s': %zu bytes, shape needs %zu", name,
                nbytes, want);
        return -1;
    }
    if (nbytes > 0 && !data) {
        tf_set_err(err, errlen, "tensor '%s': NULL data", name);
        return -1;
    }
    size_t es = stem_dtype_size(dtype);
    if (nbytes > 0 && (uintptr_t)data % es != 0) {
        void *copy = malloc(nbytes);
        if (!copy) {
            tf_set_syserr(err, errlen, "out of memory");
            return -1;
        }
        memcpy(copy, data, nbytes);
        if (tf_own_chunk(f, copy, err, errlen) != 0)
            return -1;
        data = copy;
    }
    tf_tensor *t = realloc(f->tensors, (size_t)(f->count + 1) * sizeof(*t));
    if (!t) {
        tf_set_syserr(err, errlen, "out of memory");
        return -1;
    }
    f->tensors = t;
    tf_tensor *n = &t[f->count];
    memset(n, 0, sizeof(*n));
    snprintf(n->name, sizeof(n->name), "%s", name);
    n->dtype = dtype;
    n->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        n->shape[i] = shape[i];
    n->data = data;
    n->nbytes = nbytes;
    f->count++;
    return 0;
}

/* See tensorfile.h. */
int tf_add(tf_file *f, const char *name, stem_dtype dtype, int ndim,
           const int64_t *shape, const void *data, char *err, size_t errlen)
{
    tf_fail_reset();
    size_t nbytes;
    if (!f || !name) {
        tf_set_err(err, errlen, "NULL argument");
        return -1;
    }
    if (tf_shape_bytes(dtype, ndim, shape, &nbytes, err, errlen) != 0)
        return -1;
    if (nbytes > 0 && !data) {
        tf_set_err(err, errlen, "tensor '%s': NULL data", name);
        return -1;
    }
    void *copy = malloc(nbytes ? nbytes : 1);
    if (!copy) {
        tf_set_syserr(err, errlen, "out of memory (%zu bytes)", nbytes);
        return -1;
    }
    if (nbytes)
        memcpy(copy, data, nbytes);
    int before = f->blob ? ((tf_store *)f->blob)->count : 0;
    if (tf_own_chunk(f, copy, err, errlen) != 0)
        return -1;
    if (tf_push_tensor(f, name, dtype, ndim, shape, copy, nbytes, err,
                       errlen) != 0) {
        tf_store *s = f->blob;
        s->count = before;      /* drop the chunk again */
        free(copy);
        return -1;
    }
    return 0;
}

/* See tensorfile.h. */
int tf_set_meta(tf_file *f, const char *key, const char *value, char *err,
                size_t errlen)
{
    tf_fail_reset();
    if (!f || !key || !value) {
        tf_set_err(err, errlen, "NULL argument");
        return -1;
    }
    char *v = strdup(value);
    if (!v) {
        tf_set_syserr(err, errlen, "out of memory");
        return -1;
    }
    for (int i = 0; i < f->meta_count; i++) {
        if (strcmp(f->meta_keys[i], key) == 0) {
            free(f->meta_values[i]);
            f->meta_values[i] = v;
            return 0;
        }
    }
    char *k = strdup(key);
    char **ks = realloc(f->meta_keys, (size_t)(f->meta_count + 1) * sizeof(*ks));
    if (ks)
        f->meta_keys = ks;
    char **vs = ks ? realloc(f->meta_values,
                             (size_t)(f->meta_count + 1) * sizeof(*vs)) : NULL;
    if (vs)
        f->meta_values = vs;
    if (!k || !ks || !vs) {
        free(k);
        free(v);
        tf_set_syserr(err, errlen, "out of memory");
        return -1;
    }
    f->meta_keys[f->meta_count] = k;
    f->meta_values[f->meta_count] = v;
    f->meta_count++;
    return 0;
}

/* See tensorfile.h. */
void tf_free(tf_file *f)
{
    if (!f)
        return;
    tf_store *s = f->blob;
    if (s) {
        for (int i = 0; i < s->count; i++)
            free(s->chunks[i]);
        free(s->chunks);
        free(s);
    }
    for (int i = 0; i < f->meta_count; i++) {
        free(f->meta_keys[i]);
        free(f->meta_values[i]);
    }
    free(f->meta_keys);
    free(f->meta_values);
    free(f->tensors);
    memset(f, 0, sizeof(*f));
}

/* See tensorfile.h. */
const tf_tensor *tf_find(const tf_file *f, const char *name)
{
    if (!f || !name)
        return NULL;
    for (int i = 0; i < f->count; i++)
        if (strcmp(f->tensors[i].name, name) == 0)
            return &f->tensors[i];
    return NULL;
}

/* See tensorfile.h. */
const char *tf_meta(const tf_file *f, const char *key)
{
    if (!f || !key)
        return NULL;
    for (int i = 0; i < f->meta_count; i++)
        if (strcmp(f->meta_keys[i], key) == 0)
            return f->meta_values[i];
    return NULL;
}

/* len bytes between buf and fd at offset off, by pread (out = 0) or
 * pwrite (out = 1), in pieces of at most 1 GiB, retrying short
 * transfers and EINTR; 0, or -1 on an error or end of file. */
static int transfer(int fd, char *p, size_t len, uint64_t off, int out)
{
    while (len > 0) {
        size_t n = len > (1u << 30) ? (1u << 30) : len;
        ssize_t r = out ? pwrite(fd, p, n, (off_t)off)
                        : pread(fd, p, n, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        len -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

/* See tensorfile.h. */
int tf_pread_exact(int fd, void *buf, size_t len, uint64_t off)
{
    return transfer(fd, buf, len, off, 0);
}

/* See tensorfile.h. */
int tf_pwrite_exact(int fd, const void *buf, size_t len, uint64_t off)
{
    return transfer(fd, (char *)buf, len, off, 1);
}

/* What a file of mode m is, for a message: "a FIFO", "a directory", ... */
static const char *file_kind(mode_t m)
{
    return S_ISLNK(m)    ? "a symbolic link"
           : S_ISFIFO(m) ? "a FIFO"
           : S_ISCHR(m)  ? "a character device"
           : S_ISBLK(m)  ? "a block device"
           : S_ISSOCK(m) ? "a socket"
           : S_ISDIR(m)  ? "a directory"
                         : "not a regular file";
}

/* See tensorfile.h. */
int tf_open_input(const char *path, uint64_t *size, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        tf_set_oserr(err, errlen, errno, "%s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        tf_set_oserr(err, errlen, errno, "%s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        tf_set_err(err, errlen, "%s: not a regular file (%s); refused",
                   path, file_kind(st.st_mode));
        close(fd);
        return -1;
    }
    if (size)
        *size = (uint64_t)st.st_size;
    return fd;
}

/* See tensorfile.h. */
int tf_read_all(const char *path, void **buf, size_t *len, char *err,
                size_t errlen)
{
    tf_fail_reset();
    uint64_t fsize;
    int fd = tf_open_input(path, &fsize, err, errlen);
    if (fd < 0)
        return -1;
    if (fsize > SIZE_MAX / 2) {
        tf_set_err(err, errlen, "%s: file too large", path);
        close(fd);
        return -1;
    }
    size_t n = (size_t)fsize;
    void *b = malloc(n ? n : 1);
    if (!b) {
        tf_set_syserr(err, errlen, "%s: out of memory (%zu bytes)", path, n);
        close(fd);
        return -1;
    }
    if (tf_pread_exact(fd, b, n, 0) != 0) {
        tf_set_syserr(err, errlen, "%s: read failed", path);
        free(b);
        close(fd);
        return -1;
    }
    close(fd);
    *buf = b;
    *len = n;
    return 0;
}

/* See tensorfile.h. */
int tf_output_replaceable(const char *path, char *err, size_t errlen)
{
    struct stat sb;
    if (lstat(path, &sb) != 0) {
        if (errno == ENOENT)
            return 0;
        tf_set_oserr(err, errlen, errno, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (S_ISREG(sb.st_mode))
        return 0;
    tf_set_err(err, errlen, "%s exists and is %s; refusing to replace it "
               "(only a regular file is replaced)", path,
               file_kind(sb.st_mode));
    return -1;
}

/* See tensorfile.h. */
int tf_write_atomic(const char *path, int n, const void *const *ptrs,
                    const size_t *lens, char *err, size_t errlen)
{
    tf_fail_reset();
    if (!path || path[0] == '\0') {
        tf_set_err(err, errlen, "empty output path");
        return -1;
    }
    size_t plen = strlen(path);
    if (path[plen - 1] == '/') {
        tf_set_err(err, errlen, "%s: is a directory name", path);
        return -1;
    }
    if (tf_output_replaceable(path, err, errlen) != 0)
        return -1;
    char *tmp = malloc(plen + 16);
    if (!tmp) {
        tf_set_syserr(err, errlen, "out of memory");
        return -1;
    }
    snprintf(tmp, plen + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        tf_set_oserr(err, errlen, errno, "%s: cannot create temporary file: %s", path,
                strerror(errno));
        free(tmp);
        return -1;
    }
    mode_t um = umask(0);
    umask(um);
    int ok = fchmod(fd, 0666 & ~um) == 0;
    uint64_t at = 0;
    for (int i = 0; ok && i < n; at += lens[i++])
        if (lens[i] > 0 && tf_pwrite_exact(fd, ptrs[i], lens[i], at) != 0)
            ok = 0;
    int saved = errno;
    if (ok && fsync(fd) != 0) {
        ok = 0;
        saved = errno;
    }
    if (close(fd) != 0 && ok) {
        ok = 0;
        saved = errno;
    }
    if (ok && rename(tmp, path) != 0) {
        ok = 0;
        saved = errno;
    }
    if (!ok) {
        tf_set_oserr(err, errlen, saved, "%s: write failed: %s", path,
                     strerror(saved));
        unlink(tmp);
        free(tmp);
        return -1;
    }
    free(tmp);
    return 0;
}

/* See tensorfile.h. */
int tf_read(const char *path, tf_file *out, char *err, size_t errlen)
{
    tf_fail_reset();
    if (!path || !out) {
        tf_set_err(err, errlen, "NULL argument");
        return -1;
    }
    struct stat st;
    if (stat(path, &st) != 0) {
        tf_set_oserr(err, errlen, errno, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (S_ISDIR(st.st_mode))
        return tf_read_npy_dir(path, out, err, errlen);
    unsigned char magic[6] = {0};
    int fd = tf_open_input(path, NULL, err, errlen);
    if (fd < 0)
        return -1;
    ssize_t got = pread(fd, magic, sizeof(magic), 0);
    close(fd);
    if (got == 6 && memcmp(magic, "\x93NUMPY", 6) == 0)
        return tf_read_npy(path, out, err, errlen);
    return tf_read_safetensors(path, out, err, errlen);
}
