/*
 * safetensors.c - the safetensors format: an 8-byte little-endian header
 * length, a JSON object (parsed and printed with libcjson) mapping tensor
 * names to {dtype, shape, data_offsets} plus an optional "__metadata__"
 * object of strings, then the data section.
 */
#include "tensorfile.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Largest header accepted (the format's own readers use 100 MB). */
#define ST_MAX_HEADER (100u * 1000u * 1000u)

/* A JSON number that is an integer in 0 .. 2^53; -1 otherwise. */
static int64_t json_uint(const cJSON *item)
{
    if (!cJSON_IsNumber(item))
        return -1;
    double v = cJSON_GetNumberValue(item);
    if (!(v >= 0.0) || v > 9007199254740992.0 || v != floor(v))
        return -1;
    return (int64_t)v;
}

static int parse_meta(const cJSON *meta, tf_file *f, char *err,
                      size_t errlen)
{
    if (!cJSON_IsObject(meta)) {
        tf_set_err(err, errlen, "__metadata__ is not a JSON object");
        return -1;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, meta)
    {
        if (!cJSON_IsString(it) || !it->string) {
            tf_set_err(err, errlen, "__metadata__ value of '%s' is not a string",
                    it->string ? it->string : "?");
            return -1;
        }
        if (tf_set_meta(f, it->string, it->valuestring, err, errlen) != 0)
            return -1;
    }
    return 0;
}

/* Byte range of one tensor in the data section, for the overlap check. */
typedef struct span {
    int64_t b, e;
    const char *name;
} span;

static int cmp_span(const void *a, const void *b)
{
    const span *x = a, *y = b;
    return x->b < y->b ? -1 : x->b > y->b ? 1 : (x->e > y->e) - (x->e < y->e);
}

/* Validate one tensor entry of the header against a data section of
 * data_len bytes and hand it to each. */
static int parse_tensor(const cJSON *it, uint64_t data_start,
                        uint64_t data_len, tf_st_each each, void *ctx,
                        span *range, char *err, size_t errlen)
{
    const char *name = it->string;
    if (!cJSON_IsObject(it)) {
        tf_set_err(err, errlen, "tensor '%s': entry is not a JSON object", name);
        return -1;
    }
    const cJSON *jd = cJSON_GetObjectItemCaseSensitive(it, "dtype");
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(it, "shape");
    const cJSON *jo = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
    if (!cJSON_IsString(jd)) {
        tf_set_err(err, errlen, "tensor '%s': missing dtype", name);
        return -1;
    }
    stem_dtype dt;
    if (stem_dtype_from_name(jd->valuestring, &dt) != STEM_OK) {
        tf_set_err(err, errlen, "tensor '%s': unsupported dtype '%s'", name,
                jd->valuestring);
        return -1;
    }
    if (!cJSON_IsArray(js)) {
        tf_set_err(err, errlen, "tensor '%s': missing shape", name);
        return -1;
    }
    int ndim = cJSON_GetArraySize(js);
    if (ndim > TF_MAX_DIMS) {
        tf_set_err(err, errlen, "tensor '%s': %d dimensions (at most %d)", name,
                ndim, TF_MAX_DIMS);
        return -1;
    }
    int64_t shape[TF_MAX_DIMS];
    for (int i = 0; i < ndim; i++) {
        shape[i] = json_uint(cJSON_GetArrayItem(js, i));
        if (shape[i] < 0) {
            tf_set_err(err, errlen,
                    "tensor '%s': shape entry %d is not a non-negative integer",
                    name, i);
            return -1;
        }
    }
    size_t nbytes;
    char sub[200];
    if (tf_shape_bytes(dt, ndim, shape, &nbytes, sub,
                       sizeof(sub)) != 0) {
        tf_set_err(err, errlen, "tensor '%s': %s", name, sub);
        return -1;
    }
    if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2) {
        tf_set_err(err, errlen, "tensor '%s': data_offsets must be [begin, end]",
                name);
        return -1;
    }
    int64_t b = json_uint(cJSON_GetArrayItem(jo, 0));
    int64_t e = json_uint(cJSON_GetArrayItem(jo, 1));
    if (b < 0 || e < 0 || b > e || (uint64_t)e > data_len) {
        tf_set_err(err, errlen,
                "tensor '%s': data_offsets outside the %llu-byte data section",
                name, (unsigned long long)data_len);
        return -1;
    }
    if ((uint64_t)(e - b) != nbytes) {
        tf_set_err(err, errlen,
                "tensor '%s': %lld data bytes but dtype and shape need %zu",
                name, (long long)(e - b), nbytes);
        return -1;
    }
    range->b = b;
    range->e = e;
    range->name = name;
    tf_st_entry ent = {name, dt, ndim, {0}, nbytes, data_start, (uint64_t)b};
    memcpy(ent.shape, shape, (size_t)ndim * sizeof(*shape));
    return each(ctx, &ent, err, errlen);
}

/* 1 if the JSON text holds the escape \u0000 inside a string (which
 * libcjson would cut the C string at, so that "F32\u0000" read as "F32"). */
static int escaped_nul(const char *s, size_t len)
{
    int in_str = 0;
    for (size_t i = 0; i < len; i++) {
        if (!in_str) {
            in_str = s[i] == '"';
        } else if (s[i] == '"') {
            in_str = 0;
        } else if (s[i] == '\\' && i + 1 < len) {
            if (s[i + 1] == 'u' && i + 5 < len && s[i + 2] == '0' &&
                s[i + 3] == '0' && s[i + 4] == '0' && s[i + 5] == '0')
                return 1;
            i++;                /* skip the escaped character */
        }
    }
    return 0;
}

/* Refuse tensors whose data ranges sp[0..n) overlap (the format gives
 * every tensor bytes of its own); empty tensors overlap nothing.  Sorts sp. */
static int check_overlap(span *sp, int n, char *err, size_t errlen)
{
    qsort(sp, (size_t)n, sizeof(*sp), cmp_span);
    for (int i = 1; i < n; i++)
        if (sp[i].b < sp[i - 1].e) {
            tf_set_err(err, errlen, "tensors '%s' [%lld, %lld) and '%s' "
                       "[%lld, %lld) share data bytes (overlapping "
                       "data_offsets)", sp[i - 1].name, (long long)sp[i - 1].b,
                       (long long)sp[i - 1].e, sp[i].name, (long long)sp[i].b,
                       (long long)sp[i].e);
            return -1;
        }
    return 0;
}

/* Parse header (len bytes) over the data section (data_len bytes from
 * data_start): the metadata into meta, each tensor to each. */
static int parse_header(const char *hdr, size_t len, uint64_t data_start,
                        uint64_t data_len, tf_file *meta, tf_st_each each,
                        void *ctx, char *err, size_t errlen)
{
    const char *end = NULL;
    if (escaped_nul(hdr, len)) {
        tf_set_err(err, errlen, "header holds an escaped NUL character "
                   "(\\u0000) in a string; names and dtypes cannot hold one");
        return -1;
    }
    tf_cjson_begin();
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, len, &end, 0);
    if (!root) {
        if (tf_cjson_oom())
            tf_set_syserr(err, errlen, "out of memory parsing the header");
        else
            tf_set_err(err, errlen, "header is not valid JSON");
        return -1;
    }
    int rc = 0;
    for (; end && end < hdr + len; end++)
        if (*end != ' ' && *end != '\t' && *end != '\n' && *end != '\r' &&
            *end != '\0') {
            tf_set_err(err, errlen, "header has trailing bytes after the JSON");
            cJSON_Delete(root);
            return -1;
        }
    if (!cJSON_IsObject(root)) {
        tf_set_err(err, errlen, "header is not a JSON object");
        rc = -1;
    }
    const cJSON *it;
    int nmeta = 0, nsp = 0;
    span *sp = NULL;
    if (rc == 0) {
        int n = cJSON_GetArraySize(root);
        sp = malloc((size_t)(n > 0 ? n : 1) * sizeof(*sp));
        if (!sp) {
            tf_set_syserr(err, errlen, "out of memory");
            rc = -1;
        }
    }
    for (it = root->child; rc == 0 && it; it = it->next) {
        if (!it->string) {
            tf_set_err(err, errlen, "header entry without a name");
            rc = -1;
        } else if (strcmp(it->string, "__metadata__") == 0) {
            if (nmeta++) {
                tf_set_err(err, errlen, "__metadata__ given twice");
                rc = -1;
            } else {
                rc = parse_meta(it, meta, err, errlen);
            }
        } else {
            rc = parse_tensor(it, data_start, data_len, each, ctx, &sp[nsp],
                              err, errlen);
            if (rc == 0 && sp[nsp].e > sp[nsp].b)
                nsp++;
        }
    }
    if (rc == 0)
        rc = check_overlap(sp, nsp, err, errlen);
    free(sp);
    cJSON_Delete(root);
    return rc;
}

/* See tensorfile.h. */
int tf_safetensors_scan(int fd, uint64_t fsize, tf_file *meta,
                        tf_st_each each, void *ctx, char *err, size_t errlen)
{
    unsigned char lenb[8];
    if (fsize < 8 || tf_pread_exact(fd, lenb, 8, 0) != 0) {
        tf_set_err(err, errlen, "too short for a safetensors file");
        return -1;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | lenb[i];
    if (hlen == 0 || hlen > ST_MAX_HEADER || hlen > fsize - 8) {
        tf_set_err(err, errlen, "header length %llu does not fit the "
                   "%llu-byte file (truncated or not safetensors)",
                   (unsigned long long)hlen, (unsigned long long)fsize);
        return -1;
    }
    char *hdr = malloc((size_t)hlen);
    if (!hdr) {
        tf_set_syserr(err, errlen, "out of memory");
        return -1;
    }
    int rc = -1;
    if (tf_pread_exact(fd, hdr, (size_t)hlen, 8) != 0)
        tf_set_syserr(err, errlen, "read failed");
    else
        rc = parse_header(hdr, (size_t)hlen, 8 + hlen, fsize - 8 - hlen,
                          meta, each, ctx, err, errlen);
    free(hdr);
    return rc;
}

/* What tf_read_safetensors hands tf_safetensors_scan: the file, and the
 * data section once the first tensor asks for it. */
typedef struct read_ctx {
    int fd;
    uint64_t fsize;
    tf_file *f;
    char *data;
} read_ctx;

static int read_each(void *ctx, const tf_st_entry *e, char *err,
                     size_t errlen)
{
    read_ctx *rc = ctx;
    if (!rc->data) {
        uint64_t dlen = rc->fsize - e->data_start;
        if (dlen > SIZE_MAX / 2) {
            tf_set_err(err, errlen, "file too large");
            return -1;
        }
        char *data = malloc(dlen ? (size_t)dlen : 1);
        if (!data) {
            tf_set_syserr(err, errlen, "out of memory");
            return -1;
        }
        if (tf_pread_exact(rc->fd, data, (size_t)dlen, e->data_start) != 0) {
            free(data);
            tf_set_syserr(err, errlen, "read failed");
            return -1;
        }
        if (tf_own_chunk(rc->f, data, err, errlen) != 0)
            return -1;
        rc->data = data;
    }
    return tf_push_tensor(rc->f, e->name, e->dtype, e->ndim, e->shape,
                          rc->data + e->begin, e->nbytes, err, errlen);
}

/* See tensorfile.h. */
int tf_read_safetensors(const char *path, tf_file *out, char *err,
                        size_t errlen)
{
    if (!path || !out) {
        tf_set_err(err, errlen, "NULL argument");
        return -1;
    }
    tf_fail_reset();
    uint64_t fsize;
    int fd = tf_open_input(path, &fsize, err, errlen);
    if (fd < 0)
        return -1;
    tf_file f = {0};
    read_ctx ctx = {fd, fsize, &f, NULL};
    char sub[256];
    int rc = tf_safetensors_scan(fd, fsize, &f, read_each, &ctx, sub,
                                 sizeof(sub));
    close(fd);
    if (rc != 0) {
        tf_set_err(err, errlen, "%s: %s", path, sub);
        tf_free(&f);
        return -1;
    }
    *out = f;
    return 0;
}

static int validate_set(const tf_file *f, char *err, size_t errlen)
{
    for (int i = 0; i < f->count; i++) {
        const tf_tensor *t = &f->tensors[i];
        size_t nb;
        char sub[200];
        if (t->name[0] == '\0' || strcmp(t->name, "__metadata__") == 0) {
            tf_set_err(err, errlen, "invalid tensor name '%s'", t->name);
            return -1;
        }
        for (int j = 0; j < i; j++)
            if (strcmp(f->tensors[j].name, t->name) == 0) {
                tf_set_err(err, errlen, "duplicate tensor name '%s'", t->name);
                return -1;
            }
        if (tf_shape_bytes(t->dtype, t->ndim, t->shape, &nb, sub,
                           sizeof(sub)) != 0) {
            tf_set_err(err, errlen, "tensor '%s': %s", t->name, sub);
            return -1;
        }
        if (nb != t->nbytes || (nb > 0 && !t->data)) {
            tf_set_err(err, errlen, "tensor '%s': %zu bytes, shape needs %zu",
                    t->name, t->nbytes, nb);
            return -1;
        }
    }
    return 0;
}

/* Build the JSON header text, padded with spaces to a multiple of 8. */
static char *build_header(const tf_file *f, size_t *hlen, char *err,
                          size_t errlen)
{
    cJSON *root = cJSON_CreateObject();
    uint64_t off = 0;
    int ok = root != NULL;
    for (int i = 0; ok && i < f->count; i++) {
        const tf_tensor *t = &f->tensors[i];
        cJSON *o = cJSON_AddObjectToObject(root, t->name);
        cJSON *shape = o ? cJSON_AddArrayToObject(o, "shape") : NULL;
        cJSON *offs = NULL;
        ok = o && shape && cJSON_AddStringToObject(o, "dtype",
                                                   stem_dtype_name(t->dtype));
        for (int d = 0; ok && d < t->ndim; d++)
            ok = cJSON_AddItemToArray(shape,
                                      cJSON_CreateNumber((double)t->shape[d]));
        if (ok)
            offs = cJSON_AddArrayToObject(o, "data_offsets");
        ok = ok && offs &&
             cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off)) &&
             cJSON_AddItemToArray(
                 offs, cJSON_CreateNumber((double)(off + t->nbytes)));
        off += t->nbytes;
        if (off > 9007199254740992.0) {
            tf_set_err(err, errlen, "tensor data too large for the format");
            cJSON_Delete(root);
            return NULL;
        }
    }
    if (ok && f->meta_count > 0) {
        cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
        ok = m != NULL;
        for (int i = 0; ok && i < f->meta_count; i++)
            ok = cJSON_AddStringToObject(m, f->meta_keys[i],
                                         f->meta_values[i]) != NULL;
    }
    char *text = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!text) {
        tf_set_syserr(err, errlen, "out of memory building the header");
        return NULL;
    }
    size_t n = strlen(text);
    size_t padded = (n + 7) & ~(size_t)7;
    char *h = malloc(padded);
    if (!h) {
        free(text);
        tf_set_syserr(err, errlen, "out of memory building the header");
        return NULL;
    }
    memcpy(h, text, n);
    memset(h + n, ' ', padded - n);
    free(text);
    *hlen = padded;
    return h;
}

/* See tensorfile.h. */
int tf_write_safetensors(const tf_file *f, const char *path, char *err,
                         size_t errlen)
{
    tf_fail_reset();
    if (!f || !path) {
        tf_set_err(err, errlen, "NULL argument");
        return -1;
    }
    char sub[256];
    if (validate_set(f, sub, sizeof(sub)) != 0) {
        tf_set_err(err, errlen, "%s: not written: %s", path, sub);
        return -1;
    }
    size_t hlen;
    char *hdr = build_header(f, &hlen, sub, sizeof(sub));
    if (!hdr) {
        tf_set_err(err, errlen, "%s: %s", path, sub);
        return -1;
    }
    unsigned char lenb[8];
    for (int i = 0; i < 8; i++)
        lenb[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    int n = 2 + f->count;
    const void **ptrs = malloc((size_t)n * sizeof(*ptrs));
    size_t *lens = malloc((size_t)n * sizeof(*lens));
    if (!ptrs || !lens) {
        free(ptrs);
        free(lens);
        free(hdr);
        tf_set_syserr(err, errlen, "%s: out of memory", path);
        return -1;
    }
    ptrs[0] = lenb;
    lens[0] = 8;
    ptrs[1] = hdr;
    lens[1] = hlen;
    for (int i = 0; i < f->count; i++) {
        ptrs[2 + i] = f->tensors[i].data;
        lens[2 + i] = f->tensors[i].nbytes;
    }
    int rc = tf_write_atomic(path, n, (const void *const *)ptrs, lens, err,
                             errlen);
    free(ptrs);
    free(lens);
    free(hdr);
    return rc;
}

/* See tensorindex.h: the 8 length bytes and the padded JSON header that
 * tf_write_safetensors writes for f; the tensors' data is not read. */
int tf_safetensors_header(const tf_file *f, void **out, size_t *len,
                          char *err, size_t errlen)
{
    size_t hlen;
    char *hdr = f && out && len ? build_header(f, &hlen, err, errlen) : NULL;
    if (!hdr) {
        if (!f || !out || !len)
            tf_set_err(err, errlen, "NULL argument");
        return -1;
    }
    unsigned char *b = malloc(8 + hlen);
    if (!b) {
        free(hdr);
        tf_set_syserr(err, errlen, "out of memory building the header");
        return -1;
    }
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    memcpy(b + 8, hdr, hlen);
    free(hdr);
    *out = b;
    *len = 8 + hlen;
    return 0;
}
