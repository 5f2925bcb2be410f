/*
 * npy.c - NumPy .npy files (format versions 1, 2 and 3) and directories of
 * them (read; written with a metadata.json beside the tensors).  The header is a Python dict literal such as
 *     {'descr': '<f4', 'fortran_order': False, 'shape': (4, 8), }
 * which is parsed here with a small tokenizer (it is not JSON).
 */
#include "tensorfile.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct {
    const char *descr;
    stem_dtype dtype;
} npy_types[] = {
    {"<f4", STEM_F32}, {"<f2", STEM_F16}, {"<f8", STEM_F64}, {"|u1", STEM_U8},
    {"<i4", STEM_I32}, {"<i8", STEM_I64}, {"|b1", STEM_BOOL},
};

static int descr_of(stem_dtype dt, const char **out)
{
    for (size_t i = 0; i < sizeof(npy_types) / sizeof(npy_types[0]); i++)
        if (npy_types[i].dtype == dt) {
            *out = npy_types[i].descr;
            return 0;
        }
    return -1;
}

/* Cursor over the header text. */
typedef struct cur {
    const char *p, *end;
} cur;

static void skip_ws(cur *c)
{
    while (c->p < c->end && isspace((unsigned char)*c->p))
        c->p++;
}

static int eat(cur *c, char ch)
{
    skip_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

/* A quoted string ('...' or "...") without escapes into buf. */
static int parse_str(cur *c, char *buf, size_t cap)
{
    skip_ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"'))
        return -1;
    char q = *c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != q) {
        if (*c->p == '\\' || n + 1 >= cap)
            return -1;
        buf[n++] = *c->p++;
    }
    if (c->p >= c->end)
        return -1;
    c->p++;
    buf[n] = '\0';
    return 0;
}

static int parse_word(cur *c, const char *w)
{
    skip_ws(c);
    size_t n = strlen(w);
    if ((size_t)(c->end - c->p) >= n && memcmp(c->p, w, n) == 0) {
        c->p += n;
        return 1;
    }
    return 0;
}

/* (a, b, ...) of non-negative integers; () and (n,) included. */
static int parse_shape(cur *c, int *ndim, int64_t *shape)
{
    if (!eat(c, '('))
        return -1;
    int n = 0;
    for (;;) {
        skip_ws(c);
        if (eat(c, ')'))
            break;
        if (c->p >= c->end || !isdigit((unsigned char)*c->p) ||
            n >= TF_MAX_DIMS)
            return -1;
        int64_t v = 0;
        while (c->p < c->end && isdigit((unsigned char)*c->p)) {
            int dgt = *c->p++ - '0';
            if (v > (INT64_MAX - dgt) / 10)
                return -1;
            v = v * 10 + dgt;
        }
        if (c->p < c->end && *c->p == 'L')      /* Python 2 long suffix */
            c->p++;
        shape[n++] = v;
        if (eat(c, ')'))
            break;
        if (!eat(c, ','))
            return -1;
    }
    *ndim = n;
    return 0;
}

static int parse_header(const char *h, size_t len, stem_dtype *dt, int *ndim,
                        int64_t *shape, char *err, size_t errlen)
{
    cur c = {h, h + len};
    int have_descr = 0, have_fo = 0, have_shape = 0, fortran = 0;
    char key[64], descr[64];
    if (memchr(h, '\0', len)) {
        /* a descr "<f4\0..." would otherwise read as "<f4" */
        tf_set_err(err, errlen, "the header holds a NUL byte");
        return -1;
    }
    if (!eat(&c, '{'))
        goto bad;
    for (;;) {
        if (eat(&c, '}'))
            break;
        if (parse_str(&c, key, sizeof(key)) != 0 || !eat(&c, ':'))
            goto bad;
        if (strcmp(key, "descr") == 0) {
            if (parse_str(&c, descr, sizeof(descr)) != 0)
                goto bad;
            have_descr = 1;
        } else if (strcmp(key, "fortran_order") == 0) {
            if (parse_word(&c, "True"))
                fortran = 1;
            else if (!parse_word(&c, "False"))
                goto bad;
            have_fo = 1;
        } else if (strcmp(key, "shape") == 0) {
            if (parse_shape(&c, ndim, shape) != 0)
                goto bad;
            have_shape = 1;
        } else {
            tf_set_err(err, errlen, "unexpected header key '%s'", key);
            return -1;
        }
        if (eat(&c, '}'))
            break;
        if (!eat(&c, ','))
            goto bad;
    }
    skip_ws(&c);
    if (c.p != c.end)
        goto bad;
    if (!have_descr || !have_fo || !have_shape) {
        tf_set_err(err, errlen, "header lacks descr, fortran_order or shape");
        return -1;
    }
    if (fortran) {
        tf_set_err(err, errlen, "fortran_order True is not supported");
        return -1;
    }
    if (descr[0] == '>' || descr[0] == '!') {
        tf_set_err(err, errlen,
                "big-endian dtype '%s' is not supported (save little-endian)",
                descr);
        return -1;
    }
    for (size_t i = 0; i < sizeof(npy_types) / sizeof(npy_types[0]); i++)
        if (strcmp(descr, npy_types[i].descr) == 0) {
            *dt = npy_types[i].dtype;
            return 0;
        }
    tf_set_err(err, errlen,
            "unsupported dtype '%s' (supported: <f4 <f2 <f8 |u1 <i4 <i8 |b1)",
            descr);
    return -1;
bad:
    tf_set_err(err, errlen, "malformed header dict");
    return -1;
}

/* Read one .npy file into f as tensor `name`. */
static int read_npy_into(const char *path, const char *name, tf_file *f,
                         char *err, size_t errlen)
{
    void *buf;
    size_t len;
    char sub[256];
    if (tf_read_all(path, &buf, &len, err, errlen) != 0)
        return -1;
    if (tf_own_chunk(f, buf, err, errlen) != 0)
        return -1;
    const unsigned char *b = buf;
    if (len < 10 || memcmp(b, "\x93NUMPY", 6) != 0) {
        tf_set_err(err, errlen, "%s: not a .npy file", path);
        return -1;
    }
    int major = b[6];
    size_t hlen, start;
    if (major == 1) {
        hlen = (size_t)b[8] | ((size_t)b[9] << 8);
        start = 10;
    } else if (major == 2 || major == 3) {
        if (len < 12) {
            tf_set_err(err, errlen, "%s: truncated .npy header", path);
            return -1;
        }
        hlen = (size_t)b[8] | ((size_t)b[9] << 8) | ((size_t)b[10] << 16) |
               ((size_t)b[11] << 24);
        start = 12;
    } else {
        tf_set_err(err, errlen, "%s: unsupported .npy version %d", path, major);
        return -1;
    }
    if (hlen > len - start) {
        tf_set_err(err, errlen, "%s: truncated .npy header", path);
        return -1;
    }
    stem_dtype dt;
    int ndim = 0;
    int64_t shape[TF_MAX_DIMS];
    if (parse_header((const char *)b + start, hlen, &dt, &ndim, shape, sub,
                     sizeof(sub)) != 0) {
        tf_set_err(err, errlen, "%s: %s", path, sub);
        return -1;
    }
    size_t nbytes;
    if (tf_shape_bytes(dt, ndim, shape, &nbytes, sub, sizeof(sub)) != 0) {
        tf_set_err(err, errlen, "%s: %s", path, sub);
        return -1;
    }
    size_t off = start + hlen;
    if (len - off != nbytes) {
        tf_set_err(err, errlen, "%s: %zu data bytes, shape needs %zu%s", path,
                len - off, nbytes, len - off < nbytes ? " (truncated)" : "");
        return -1;
    }
    if (tf_push_tensor(f, name, dt, ndim, shape, (char *)buf + off, nbytes,
                       sub, sizeof(sub)) != 0) {
        tf_set_err(err, errlen, "%s: %s", path, sub);
        return -1;
    }
    return 0;
}

/* See tensorfile.h. */
void tf_npy_name(const char *path, char *out, size_t cap)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    if (n > 4 && strcmp(base + n - 4, ".npy") == 0)
        n -= 4;
    if (n >= cap)
        n = cap - 1;
    memcpy(out, base, n);
    out[n] = '\0';
}

/* See tensorfile.h. */
int tf_read_npy(const char *path, tf_file *out, char *err, size_t errlen)
{
    if (!path || !out) {
        tf_set_err(err, errlen, "NULL argument");
        return -1;
    }
    char name[TF_NAME_MAX];
    tf_npy_name(path, name, sizeof(name));
    tf_file f = {0};
    if (read_npy_into(path, name, &f, err, errlen) != 0) {
        tf_free(&f);
        return -1;
    }
    *out = f;
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* See tensorfile.h. */
int tf_npy_dir_names(const char *path, char ***out, int *count, char *err,
                     size_t errlen)
{
    *out = NULL;
    *count = 0;
    DIR *d = opendir(path);
    if (!d) {
        tf_set_err(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    char **names = NULL;
    int n = 0, rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l <= 4 || strcmp(e->d_name + l - 4, ".npy") != 0 ||
            e->d_name[0] == '.')
            continue;
        char **nn = realloc(names, (size_t)(n + 1) * sizeof(*nn));
        char *s = strdup(e->d_name);
        if (nn)
            names = nn;
        if (!nn || !s) {
            free(s);
            tf_set_syserr(err, errlen, "out of memory");
            rc = -1;
            break;
        }
        names[n++] = s;
    }
    closedir(d);
    if (rc == 0 && n == 0) {
        tf_set_err(err, errlen, "%s: no .npy files in the directory", path);
        rc = -1;
    }
    if (rc == 0)
        qsort(names, (size_t)n, sizeof(*names), cmp_names);
    if (rc != 0) {
        tf_npy_dir_names_free(names, n);
        return -1;
    }
    *out = names;
    *count = n;
    return 0;
}

/* See tensorfile.h. */
void tf_npy_dir_names_free(char **names, int n)
{
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* See tensorfile.h. */
int tf_npy_dir_meta(const char *dir, tf_file *f, char *err, size_t errlen)
{
    char path[4096];
    struct stat sb;
    if (snprintf(path, sizeof(path), "%s/metadata.json", dir) >=
            (int)sizeof(path) || stat(path, &sb) != 0)
        return 0;
    void *buf;
    size_t len;
    if (tf_read_all(path, &buf, &len, err, errlen) != 0)
        return -1;
    tf_cjson_begin();
    cJSON *j = cJSON_ParseWithLength(buf, len);
    free(buf);
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        if (!j && tf_cjson_oom())
            tf_set_syserr(err, errlen, "%s: out of memory parsing it", path);
        else
            tf_set_err(err, errlen, "%s: not a JSON object", path);
        return -1;
    }
    int rc = 0;
    for (cJSON *e = j->child; e && rc == 0; e = e->next) {
        char num[64];
        const char *val = NULL;
        if (cJSON_IsString(e)) {
            val = e->valuestring;
        } else if (cJSON_IsNumber(e)) {
            for (int p = 1; p <= 17; p++) {
                snprintf(num, sizeof(num), "%.*g", p, e->valuedouble);
                if (strtod(num, NULL) == e->valuedouble)
                    break;
            }
            val = num;
        }
        char *json = NULL;
        if (!val && e->string) {
            /* true, false, null, an array or an object: kept as its JSON
             * text, so that a parameter given so is refused by name
             * ("not a number") rather than dropped without a word */
            json = cJSON_PrintUnformatted(e);
            if (!json) {
                tf_set_syserr(err, errlen, "%s: out of memory", path);
                rc = -1;
                break;
            }
            val = json;
        }
        if (val && e->string)
            rc = tf_set_meta(f, e->string, val, err, errlen);
        cJSON_free(json);
    }
    cJSON_Delete(j);
    return rc;
}

/* See tensorfile.h.  Files are read in name order. */
int tf_read_npy_dir(const char *path, tf_file *out, char *err, size_t errlen)
{
    if (!path || !out) {
        tf_set_err(err, errlen, "NULL argument");
        return -1;
    }
    char **names;
    int n, rc = 0;
    if (tf_npy_dir_names(path, &names, &n, err, errlen) != 0)
        return -1;
    tf_file f = {0};
    for (int i = 0; rc == 0 && i < n; i++) {
        size_t pl = strlen(path) + strlen(names[i]) + 2;
        char *full = malloc(pl);
        char name[TF_NAME_MAX];
        if (!full) {
            tf_set_syserr(err, errlen, "out of memory");
            rc = -1;
            break;
        }
        snprintf(full, pl, "%s/%s", path, names[i]);
        tf_npy_name(full, name, sizeof(name));
        rc = read_npy_into(full, name, &f, err, errlen);
        free(full);
    }
    tf_npy_dir_names_free(names, n);
    if (rc != 0) {
        tf_free(&f);
        return -1;
    }
    *out = f;
    return 0;
}

/* See tensorfile.h.  BF16 has no NumPy dtype and is refused. */
int tf_write_npy(const tf_tensor *t, const char *path, char *err,
                 size_t errlen)
{
    tf_fail_reset();
    if (!t || !path) {
        tf_set_err(err, errlen, "NULL argument");
        return -1;
    }
    const char *descr;
    if (descr_of(t->dtype, &descr) != 0) {
        tf_set_err(err, errlen, "%s: dtype %s has no .npy equivalent", path,
                stem_dtype_name(t->dtype));
        return -1;
    }
    size_t nb;
    char sub[200];
    if (tf_shape_bytes(t->dtype, t->ndim, t->shape, &nb, sub,
                       sizeof(sub)) != 0 ||
        nb != t->nbytes || (nb > 0 && !t->data)) {
        tf_set_err(err, errlen, "%s: invalid tensor '%s'", path, t->name);
        return -1;
    }
    char dict[512];
    int pos = snprintf(dict, sizeof(dict),
                       "{'descr': '%s', 'fortran_order': False, 'shape': (",
                       descr);
    for (int i = 0; i < t->ndim; i++)
        pos += snprintf(dict + pos, sizeof(dict) - (size_t)pos, "%lld,%s",
                        (long long)t->shape[i],
                        (i + 1 < t->ndim) ? " " : "");
    if (t->ndim > 1)
        pos--;                  /* "(2, 3)" rather than "(2, 3,)" */
    pos += snprintf(dict + pos, sizeof(dict) - (size_t)pos, "), }");
    /* magic(6) version(2) len(2) dict spaces '\n', total % 64 == 0 */
    size_t total = 10 + (size_t)pos + 1;
    total = (total + 63) & ~(size_t)63;
    unsigned char head[640];
    size_t hl = total - 10;
    memcpy(head, "\x93NUMPY\x01\x00", 8);
    head[8] = (unsigned char)(hl & 0xff);
    head[9] = (unsigned char)(hl >> 8);
    memcpy(head + 10, dict, (size_t)pos);
    memset(head + 10 + pos, ' ', total - 10 - (size_t)pos - 1);
    head[total - 1] = '\n';
    const void *ptrs[2] = {head, t->data};
    size_t lens[2] = {total, nb};
    return tf_write_atomic(path, 2, ptrs, lens, err, errlen);
}

/* 1 if name is in the NULL-terminated list. */
static int name_in(const char *name, const char *const *list)
{
    for (; list && *list; list++)
        if (strcmp(name, *list) == 0)
            return 1;
    return 0;
}

/* 0 when directory path holds only regular files named in replaceable
 * (or nothing); -1 with the offending entry in err otherwise. */
static int dir_replaceable(const char *path, const char *const *replaceable,
                           char *err, size_t errlen)
{
    DIR *d = opendir(path);
    if (!d) {
        tf_set_err(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char full[4096];
        struct stat sb;
        if (!name_in(e->d_name, replaceable) ||
            snprintf(full, sizeof(full), "%s/%s", path, e->d_name) >=
                (int)sizeof(full) ||
            lstat(full, &sb) != 0 || !S_ISREG(sb.st_mode)) {
            tf_set_err(err, errlen,
                       "%s: the directory holds '%s', which is not an "
                       "earlier output; not replacing it (choose a new "
                       "directory name)", path, e->d_name);
            rc = -1;
        }
    }
    closedir(d);
    return rc;
}

/* See tensorfile.h. */
int tf_npy_dir_target(const char *path, const char *const *replaceable,
                      int *exists, char *err, size_t errlen)
{
    tf_fail_reset();
    struct stat sb;
    if (!path || !exists) {
        tf_set_err(err, errlen, "NULL argument");
        return -1;
    }
    if (path[0] == '\0') {
        tf_set_err(err, errlen, "empty output path");
        return -1;
    }
    if (lstat(path, &sb) != 0) {
        if (errno != ENOENT) {
            tf_set_err(err, errlen, "%s: %s", path, strerror(errno));
            return -1;
        }
        *exists = 0;
        return 0;
    }
    if (!S_ISDIR(sb.st_mode)) {
        tf_set_err(err, errlen, "%s exists and is not a directory; not "
                   "replacing it with a directory of .npy files", path);
        return -1;
    }
    *exists = 1;
    if (access(path, W_OK | X_OK) != 0) {
        tf_set_oserr(err, errlen, errno, "%s: the earlier output's files "
                     "cannot be removed (%s); not replacing it", path,
                     strerror(errno));
        return -1;
    }
    return dir_replaceable(path, replaceable, err, errlen);
}

/* Remove directory path and the regular files in it.  0 when it is gone;
 * -1 with errno set when something stayed. */
static int remove_dir(const char *path)
{
    DIR *d = opendir(path);
    int saved = 0;
    if (d) {
        struct dirent *e;
        char full[4096];
        while ((e = readdir(d)) != NULL)
            if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 &&
                snprintf(full, sizeof(full), "%s/%s", path, e->d_name) <
                    (int)sizeof(full) &&
                unlink(full) != 0 && !saved)
                saved = errno;
        closedir(d);
    }
    if (rmdir(path) != 0) {
        if (saved)
            errno = saved;
        return -1;
    }
    return 0;
}

/* metadata.json of f in directory dir: an object of string members. */
static int write_meta_json(const tf_file *f, const char *dir, char *err,
                           size_t errlen)
{
    cJSON *o = cJSON_CreateObject();
    int ok = o != NULL;
    for (int i = 0; ok && i < f->meta_count; i++)
        ok = cJSON_AddStringToObject(o, f->meta_keys[i], f->meta_values[i]) !=
             NULL;
    char *text = ok ? cJSON_Print(o) : NULL;
    cJSON_Delete(o);
    if (!text) {
        tf_set_syserr(err, errlen, "out of memory");
        return -1;
    }
    char path[4096];
    int rc = -1;
    if (snprintf(path, sizeof(path), "%s/metadata.json", dir) >=
        (int)sizeof(path)) {
        tf_set_err(err, errlen, "%s: path too long", dir);
    } else {
        const void *ptrs[2] = {text, "\n"};
        size_t lens[2] = {strlen(text), 1};
        rc = tf_write_atomic(path, 2, ptrs, lens, err, errlen);
    }
    cJSON_free(text);
    return rc;
}

/* See tensorfile.h. */
int tf_write_npy_dir(const tf_file *f, const char *path,
                     const char *const *replaceable, char *err, size_t errlen)
{
    tf_fail_reset();
    if (!f || !path) {
        tf_set_err(err, errlen, "NULL argument");
        return -1;
    }
    char dir[4096];
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/')
        len--;                  /* "out/" names the directory out */
    if (len == 0 || len + 32 >= sizeof(dir)) {
        tf_set_err(err, errlen, "%s: bad output directory name", path);
        return -1;
    }
    memcpy(dir, path, len);
    dir[len] = '\0';
    int exists;
    if (tf_npy_dir_target(dir, replaceable, &exists, err, errlen) != 0)
        return -1;
    for (int i = 0; i < f->count; i++) {
        const tf_tensor *t = &f->tensors[i];
        const char *descr;
        if (descr_of(t->dtype, &descr) != 0 || !t->name[0] ||
            strchr(t->name, '/') || t->name[0] == '.') {
            tf_set_err(err, errlen, "%s: tensor '%s' cannot be a .npy file",
                       dir, t->name);
            return -1;
        }
    }
    char tmp[4096 + 32];
    snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", dir);
    if (!mkdtemp(tmp)) {
        tf_set_oserr(err, errlen, errno,
                     "%s: cannot create a temporary directory: %s", dir,
                     strerror(errno));
        return -1;
    }
    mode_t um = umask(0);
    umask(um);
    int rc = chmod(tmp, 0777 & ~um) == 0 ? 0 : -1;
    if (rc != 0)
        tf_set_err(err, errlen, "%s: %s", tmp, strerror(errno));
    for (int i = 0; rc == 0 && i < f->count; i++) {
        char file[4096 + 32 + TF_NAME_MAX + 8];
        snprintf(file, sizeof(file), "%s/%s.npy", tmp, f->tensors[i].name);
        rc = tf_write_npy(&f->tensors[i], file, err, errlen);
    }
    if (rc == 0)
        rc = write_meta_json(f, tmp, err, errlen);
    if (rc == 0 && exists) {
        /* swap the finished directory with the earlier output, atomically
         * where the kernel can; then the temporary name holds the old one,
         * which must go too: a success leaves no DIR.tmp.* behind */
        if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dir, RENAME_EXCHANGE) == 0) {
            if (remove_dir(tmp) != 0) {
                tf_set_oserr(err, errlen, errno, "%s written, but the earlier "
                             "output, moved to %s, cannot be removed: %s",
                             dir, tmp, strerror(errno));
                return -1;
            }
            return 0;
        } else {
            char old[4096 + 32];
            snprintf(old, sizeof(old), "%s.old.XXXXXX", dir);
            if (!mkdtemp(old) || rmdir(old) != 0 || rename(dir, old) != 0) {
                tf_set_err(err, errlen, "%s: cannot replace it: %s", dir,
                           strerror(errno));
                rc = -1;
            } else if (rename(tmp, dir) != 0) {
                tf_set_err(err, errlen, "%s: cannot replace it: %s", dir,
                           strerror(errno));
                rename(old, dir);
                rc = -1;
            } else if (remove_dir(old) != 0) {
                tf_set_oserr(err, errlen, errno, "%s written, but the earlier "
                             "output, moved to %s, cannot be removed: %s",
                             dir, old, strerror(errno));
                return -1;
            } else {
                return 0;
            }
        }
    } else if (rc == 0 && rename(tmp, dir) != 0) {
        tf_set_oserr(err, errlen, errno, "%s: %s", dir, strerror(errno));
        rc = -1;
    }
    remove_dir(tmp);
    return rc;
}

/* See tensorindex.h: the header of a .npy file from its first len bytes. */
int tf_npy_header(const void *buf, size_t len, stem_dtype *dtype, int *ndim,
                  int64_t *shape, size_t *data_off, char *err, size_t errlen)
{
    const unsigned char *b = buf;
    size_t hlen, start;
    if (!b || len < 10 || memcmp(b, "\x93NUMPY", 6) != 0) {
        tf_set_err(err, errlen, "not a .npy file");
        return -1;
    }
    if (b[6] == 1) {
        hlen = (size_t)b[8] | ((size_t)b[9] << 8);
        start = 10;
    } else if ((b[6] == 2 || b[6] == 3) && len >= 12) {
        hlen = (size_t)b[8] | ((size_t)b[9] << 8) | ((size_t)b[10] << 16) |
               ((size_t)b[11] << 24);
        start = 12;
    } else {
        tf_set_err(err, errlen, "unsupported .npy version %d or truncated "
                   "header", b[6]);
        return -1;
    }
    if (hlen > len - start) {
        tf_set_err(err, errlen, "truncated .npy header");
        return -1;
    }
    if (parse_header((const char *)b + start, hlen, dtype, ndim, shape, err,
                     errlen) != 0)
        return -1;
    *data_off = start + hlen;
    return 0;
}
