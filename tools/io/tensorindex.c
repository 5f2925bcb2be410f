/*
 * tensorindex.c - tensor files indexed from their headers, and positioned
 * reads of slices (see tensorindex.h).
 */
#include "tensorindex.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int add_path(tf_index *idx, const char *path, char *err, size_t errlen)
{
    char **p = realloc(idx->paths, (size_t)(idx->npaths + 1) * sizeof(*p));
    char *s = strdup(path);
    if (p)
        idx->paths = p;
    if (!p || !s) {
        free(s);
        tf_set_syserr(err, errlen, "out of memory");
        return -1;
    }
    idx->paths[idx->npaths++] = s;
    return 0;
}

static int add_entry(tf_index *idx, const char *name, stem_dtype dt, int ndim,
                     const int64_t *shape, uint64_t offset, char *err,
                     size_t errlen)
{
    size_t nb;
    if (tf_entry_ok(name, tf_index_find(idx, name) != NULL, dt, ndim, shape,
                    &nb, err, errlen) != 0)
        return -1;
    tf_index_entry *e =
        realloc(idx->entries, (size_t)(idx->count + 1) * sizeof(*e));
    if (!e) {
        tf_set_syserr(err, errlen, "out of memory");
        return -1;
    }
    idx->entries = e;
    e = &idx->entries[idx->count++];
    memset(e, 0, sizeof(*e));
    snprintf(e->name, sizeof(e->name), "%s", name);
    e->dtype = dt;
    e->ndim = ndim;
    memcpy(e->shape, shape, (size_t)ndim * sizeof(*shape));
    e->nbytes = nb;
    e->file = idx->npaths - 1;
    e->offset = offset;
    return 0;
}

static int index_each(void *ctx, const tf_st_entry *e, char *err,
                      size_t errlen)
{
    char sub[200];
    if (add_entry(ctx, e->name, e->dtype, e->ndim, e->shape,
                  e->data_start + e->begin, sub, sizeof(sub)) != 0) {
        tf_set_err(err, errlen, "tensor '%s': %s", e->name, sub);
        return -1;
    }
    return 0;
}

/* The safetensors file at path (open as fd, fsize bytes) into idx, by the
 * reader's own header parser (tf_safetensors_scan). */
static int index_safetensors(const char *path, int fd, uint64_t fsize,
                             tf_index *idx, char *err, size_t errlen)
{
    if (add_path(idx, path, err, errlen) != 0)
        return -1;
    return tf_safetensors_scan(fd, fsize, &idx->meta, index_each, idx, err,
                               errlen);
}

static int index_npy(const char *path, tf_index *idx, char *err,
                     size_t errlen)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        tf_set_err(err, errlen, "%s: %s", path,
                   fd < 0 ? strerror(errno) : "not a regular file");
        if (fd >= 0)
            close(fd);
        return -1;
    }
    unsigned char head[12];
    uint64_t fsize = (uint64_t)st.st_size;
    size_t want = fsize < 12 ? (size_t)fsize : 12, hlen = 0;
    char sub[256];
    int rc = pread(fd, head, want, 0) == (ssize_t)want ? 0 : -1;
    if (rc == 0 && want >= 10)
        hlen = (head[6] == 1 ? 10 + ((size_t)head[8] | (size_t)head[9] << 8)
                             : want == 12 ? 12 + ((size_t)head[8] |
                                                  (size_t)head[9] << 8 |
                                                  (size_t)head[10] << 16 |
                                                  (size_t)head[11] << 24)
                                          : want);
    if (hlen > fsize)
        hlen = (size_t)fsize;   /* tf_npy_header reports the truncation */
    unsigned char *h = rc == 0 ? malloc(hlen ? hlen : 1) : NULL;
    stem_dtype dt;
    int ndim = 0;
    int64_t shape[TF_MAX_DIMS];
    size_t off = 0, nb = 0;
    if (!h || pread(fd, h, hlen, 0) != (ssize_t)hlen ||
        tf_npy_header(h, hlen, &dt, &ndim, shape, &off, sub,
                      sizeof(sub)) != 0 ||
        tf_shape_bytes(dt, ndim, shape, &nb, sub, sizeof(sub)) != 0) {
        if (h)
            tf_set_err(err, errlen, "%s: %s", path, sub);
        else
            tf_set_syserr(err, errlen, "%s: %s", path,
                          rc == 0 ? "out of memory" : "read failed");
        rc = -1;
    } else if (fsize - off != nb) {
        tf_set_err(err, errlen, "%s: %llu data bytes, shape needs %zu%s",
                   path, (unsigned long long)(fsize - off), nb,
                   fsize - off < nb ? " (truncated)" : "");
        rc = -1;
    }
    free(h);
    close(fd);
    char name[TF_NAME_MAX];
    tf_npy_name(path, name, sizeof(name));
    if (rc == 0 && add_path(idx, path, err, errlen) != 0) {
        rc = -1;
    } else if (rc == 0 && add_entry(idx, name, dt, ndim, shape, off, sub,
                                    sizeof(sub)) != 0) {
        tf_set_err(err, errlen, "%s: %s", path, sub);
        rc = -1;
    }
    return rc;
}


static int index_dir(const char *path, tf_index *idx, char *err,
                     size_t errlen)
{
    char **names;
    int n, rc = 0;
    if (tf_npy_dir_names(path, &names, &n, err, errlen) != 0)
        return -1;
    for (int i = 0; rc == 0 && i < n; i++) {
        char full[4096];
        if (snprintf(full, sizeof(full), "%s/%s", path, names[i]) >=
            (int)sizeof(full)) {
            tf_set_err(err, errlen, "%s: path too long", path);
            rc = -1;
        } else {
            rc = index_npy(full, idx, err, errlen);
        }
    }
    tf_npy_dir_names_free(names, n);
    return rc == 0 ? tf_npy_dir_meta(path, &idx->meta, err, errlen) : rc;
}

/* See tensorindex.h. */
int tf_index_read(const char *path, tf_index *idx, char *err, size_t errlen)
{
    tf_fail_reset();
    struct stat st;
    if (!path || !idx) {
        tf_set_err(err, errlen, "NULL argument");
        return -1;
    }
    memset(idx, 0, sizeof(*idx));
    if (stat(path, &st) != 0) {
        tf_set_err(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    int rc;
    if (S_ISDIR(st.st_mode)) {
        rc = index_dir(path, idx, err, errlen);
    } else {
        unsigned char magic[6] = {0};
        uint64_t fsize;
        int fd = tf_open_input(path, &fsize, err, errlen);
        if (fd < 0)
            return -1;
        if (pread(fd, magic, 6, 0) == 6 &&
            memcmp(magic, "\x93NUMPY", 6) == 0) {
            close(fd);
            rc = index_npy(path, idx, err, errlen);
        } else {
            char sub[256];
            rc = index_safetensors(path, fd, fsize, idx, sub,
                                   sizeof(sub));
            close(fd);
            if (rc != 0)
                tf_set_err(err, errlen, "%s: %s", path, sub);
        }
    }
    if (rc != 0)
        tf_index_free(idx);
    return rc;
}

/* See tensorindex.h. */
void tf_index_free(tf_index *idx)
{
    if (!idx)
        return;
    for (int i = 0; i < idx->npaths; i++)
        free(idx->paths[i]);
    free(idx->paths);
    free(idx->entries);
    tf_free(&idx->meta);
    memset(idx, 0, sizeof(*idx));
}

/* See tensorindex.h. */
const tf_index_entry *tf_index_find(const tf_index *idx, const char *name)
{
    for (int i = 0; idx && name && i < idx->count; i++)
        if (strcmp(idx->entries[i].name, name) == 0)
            return &idx->entries[i];
    return NULL;
}

/* See tensorindex.h. */
int tf_index_read_slice(const tf_index *idx, const tf_index_entry *e,
                        int axis, int64_t begin, int64_t count, void *buf,
                        char *err, size_t errlen)
{
    if (!idx || !e || e->file < 0 || e->file >= idx->npaths || axis < 0 ||
        axis >= e->ndim || begin < 0 || count < 0 ||
        begin > e->shape[axis] - count) {
        tf_set_err(err, errlen, "tensor '%s': bad slice", e ? e->name : "?");
        return -1;
    }
    if (count == 0 || e->nbytes == 0)
        return 0;
    uint64_t outer = 1;
    for (int i = 0; i < axis; i++)
        outer *= (uint64_t)e->shape[i];
    uint64_t inner = e->nbytes / outer / (uint64_t)e->shape[axis];
    uint64_t run = inner * (uint64_t)count;
    const char *path = idx->paths[e->file];
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        tf_set_err(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    for (uint64_t o = 0; o < outer; o++) {
        uint64_t at = e->offset +
                      (o * (uint64_t)e->shape[axis] + (uint64_t)begin) * inner;
        if (tf_pread_exact(fd, (char *)buf + o * run, (size_t)run, at) != 0) {
            tf_set_err(err, errlen, "%s: read of tensor '%s' failed "
                       "(truncated?)", path, e->name);
            close(fd);
            return -1;
        }
    }
    close(fd);
    return 0;
}

/* See tensorindex.h. */
int tf_index_load_slice(const tf_index *idx, const tf_index_entry *e,
                        int axis, int64_t begin, int64_t count, tf_file *f,
                        char *err, size_t errlen)
{
    if (!e || axis < 0 || axis >= e->ndim || count < 0) {
        tf_set_err(err, errlen, "bad slice");
        return -1;
    }
    int64_t shape[TF_MAX_DIMS];
    memcpy(shape, e->shape, sizeof(shape));
    shape[axis] = count;
    size_t nb;
    if (tf_shape_bytes(e->dtype, e->ndim, shape, &nb, err, errlen) != 0)
        return -1;
    void *buf = malloc(nb ? nb : 1);
    if (!buf) {
        tf_set_syserr(err, errlen, "out of memory (%zu bytes for '%s')", nb,
                   e->name);
        return -1;
    }
    if (tf_index_read_slice(idx, e, axis, begin, count, buf, err, errlen) !=
        0) {
        free(buf);
        return -1;
    }
    if (tf_own_chunk(f, buf, err, errlen) != 0)
        return -1;
    return tf_push_tensor(f, e->name, e->dtype, e->ndim, shape, buf, nb, err,
                          errlen);
}
