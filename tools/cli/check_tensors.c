/*
 * check_tensors.c - tensor loading for check, explain and mask (see
 * check_tensors.h).
 */
#include "check_tensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* See check_tensors.h. */
int ct_read(const char *path, tf_file *out, char *err, size_t errlen)
{
    tf_file f = {0};
    struct stat sb;
    if (tf_read(path, &f, err, errlen) != 0)
        return -1;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode) &&
        tf_npy_dir_meta(path, &f, err, errlen) != 0) {
        tf_free(&f);
        return -1;
    }
    *out = f;
    return 0;
}

static void shape_text(const int64_t *s, int n, char *buf, size_t cap)
{
    size_t o = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%lld", i ? "," : "[",
                              (long long)s[i]);
    if (o < cap)
        snprintf(buf + o, cap - o, n ? "]" : "[]");
}

/* Match t's shape against want[0..n) (after dropping leading 1s), with the
 * first two axes swapped when swap01. */
static int shape_ok(const tf_tensor *t, const int64_t *want, int n,
                    int swap01, char *err, size_t errlen)
{
    int skip = t->ndim - n;
    int ok = skip >= 0;
    for (int i = 0; ok && i < skip; i++)
        ok = t->shape[i] == 1;
    for (int i = 0; ok && i < n; i++) {
        int wi = (swap01 && i < 2) ? 1 - i : i;
        ok = t->shape[skip + i] == want[wi];
    }
    if (!ok) {
        char a[160], b[160];
        int64_t w[TF_MAX_DIMS];
        for (int i = 0; i < n; i++)
            w[i] = (swap01 && i < 2) ? want[1 - i] : want[i];
        shape_text(t->shape, t->ndim, a, sizeof(a));
        shape_text(w, n, b, sizeof(b));
        snprintf(err, errlen, "tensor '%s' has shape %s, expected %s", t->name,
                 a, b);
        return -1;
    }
    return 0;
}

static double elem(const tf_tensor *t, size_t i)
{
    const unsigned char *p = t->data;
    uint16_t h;
    switch (t->dtype) {
    case STEM_F32: { float x; memcpy(&x, p + 4 * i, 4); return x; }
    case STEM_F64: { double x; memcpy(&x, p + 8 * i, 8); return x; }
    case STEM_BF16: memcpy(&h, p + 2 * i, 2); return stem_bf16_to_f32(h);
    case STEM_F16: memcpy(&h, p + 2 * i, 2); return stem_f16_to_f32(h);
    default: return NAN;
    }
}

/* See check_tensors.h. */
int ct_load_f32(const tf_tensor *t, const int64_t *want, int n, int swap01,
                float **out, char *err, size_t errlen)
{
    if (t->dtype != STEM_F32 && t->dtype != STEM_F64 && t->dtype != STEM_BF16 &&
        t->dtype != STEM_F16) {
        snprintf(err, errlen, "tensor '%s' has dtype %s (need F32, F64, BF16 "
                 "or F16)", t->name, stem_dtype_name(t->dtype));
        return -1;
    }
    if (n < 2 || shape_ok(t, want, n, swap01, err, errlen) != 0)
        return -1;
    size_t inner = 1, total;
    for (int i = 2; i < n; i++)
        inner *= (size_t)want[i];
    total = (size_t)want[0] * (size_t)want[1] * inner;
    float *a = malloc((total ? total : 1) * sizeof(float));
    if (!a) {
        snprintf(err, errlen, "out of memory for tensor '%s'", t->name);
        return -1;
    }
    for (int64_t x = 0; x < want[0]; x++)
        for (int64_t y = 0; y < want[1]; y++) {
            size_t src = swap01 ? ((size_t)y * (size_t)want[0] + (size_t)x)
                                : ((size_t)x * (size_t)want[1] + (size_t)y);
            size_t dst = (size_t)x * (size_t)want[1] + (size_t)y;
            for (size_t c = 0; c < inner; c++)
                a[dst * inner + c] = (float)elem(t, src * inner + c);
        }
    *out = a;
    return 0;
}

/* See check_tensors.h. */
int ct_load_mask(const tf_tensor *t, const int64_t *want, uint8_t **out,
                 char *err, size_t errlen)
{
    if (t->dtype != STEM_U8 && t->dtype != STEM_BOOL) {
        snprintf(err, errlen, "tensor '%s' has dtype %s (need U8 or BOOL)",
                 t->name, stem_dtype_name(t->dtype));
        return -1;
    }
    if (shape_ok(t, want, 3, 0, err, errlen) != 0)
        return -1;
    size_t n = (size_t)want[0] * (size_t)want[1] * (size_t)want[2];
    uint8_t *m = malloc(n ? n : 1);
    if (!m) {
        snprintf(err, errlen, "out of memory for tensor '%s'", t->name);
        return -1;
    }
    const uint8_t *s = t->data;
    for (size_t i = 0; i < n; i++)
        m[i] = s[i] != 0;
    *out = m;
    return 0;
}

/* See check_tensors.h. */
int ct_view(const tf_tensor *t, const int64_t *want, int n, int swap01,
            int mask, stem_tensor *out, char *err, size_t errlen)
{
    stem_dtype dt = t->dtype;
    if (mask) {
        if (t->dtype != STEM_U8 && t->dtype != STEM_BOOL) {
            snprintf(err, errlen, "tensor '%s' has dtype %s (need U8 or "
                     "BOOL)", t->name, stem_dtype_name(t->dtype));
            return -1;
        }
        dt = STEM_U8;
    } else if (!cli_input_dtype(t->dtype)) {
        snprintf(err, errlen, "tensor '%s' has dtype %s (need F32, F64, BF16 "
                 "or F16)", t->name, stem_dtype_name(t->dtype));
        return -1;
    }
    if ((n != 2 && n != 3) || shape_ok(t, want, n, swap01, err, errlen) != 0)
        return -1;
    int64_t h = want[0], tk = want[1], d = n == 3 ? want[2] : 1;
    stem_tensor v = {t->data, dt, h, tk, d, 0, 0};
    if (swap01) {
        v.head_stride = d;
        v.token_stride = h * d;
    } else {
        v.head_stride = tk * d;
        v.token_stride = d;
    }
    *out = v;
    return 0;
}

static int meta_num(const tf_file *f, const char *key, double *x)
{
    const char *s = tf_meta(f, key);
    char *end;
    if (!s || !*s)
        return 0;
    errno = 0;
    double v = strtod(s, &end);
    if (*end != '\0' || errno || !isfinite(v))
        return 0;
    *x = v;
    return 1;
}

/* Integer metadata value of key within [lo, hi] into *out; 1 if found. */
static int meta_int(const tf_file *f, const char *key, double lo, double hi,
                    long long *out)
{
    double x;
    if (!meta_num(f, key, &x) || x < lo || x > hi || x != floor(x))
        return 0;
    *out = (long long)x;
    return 1;
}

/* Where a metadata value of path lives: path/metadata.json for a
 * directory of .npy files, the file itself otherwise. */
static void meta_where(const char *path, char *buf, size_t cap)
{
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        snprintf(buf, cap, "%s/metadata.json", path);
    else
        snprintf(buf, cap, "%s", path);
}

/* See check_tensors.h. */
int ct_check_meta_params(const tf_file *f, const char *path, const cli_opts *o)
{
    static const struct {
        const char *key;
        size_t have;            /* offset of o's have_ flag */
        double lo, hi;
        int integer;
    } keys[] = {
        {"alpha", offsetof(cli_opts, have_alpha), 0, 1, 0},
        {"keep_ratio", offsetof(cli_opts, have_keep), 0, 1, 0},
        {"lambda_mag", offsetof(cli_opts, have_lambda), 0, 1e6, 0},
        {"lambda", offsetof(cli_opts, have_lambda), 0, 1e6, 0},
        /* at least 16: the block cells (Hq * Qb * Kb, 5 bytes each) stay
         * within Hq * Lq * Lk / 256 bytes whatever a file says */
        {"block_size", offsetof(cli_opts, have_block), 16, 4096, 1},
        {"stride", offsetof(cli_opts, have_stride), 1, 4096, 1},
        {"initial_blocks", offsetof(cli_opts, have_sinks), 0, 1 << 30, 1},
        {"sinks", offsetof(cli_opts, have_sinks), 0, 1 << 30, 1},
        {"window_size", offsetof(cli_opts, have_window), 0, 1 << 30, 1},
        {"window", offsetof(cli_opts, have_window), 0, 1 << 30, 1},
        {"prompt_blocks", offsetof(cli_opts, have_prompt), 0,
         (double)CLI_MAX_PROMPT_BLOCKS, 1},
    };
    char where[4200];
    meta_where(path, where, sizeof(where));
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        const char *text = tf_meta(f, keys[i].key);
        if (!text || *(const int *)((const char *)o + keys[i].have))
            continue;
        double x;
        if (!meta_num(f, keys[i].key, &x)) {
            cli_error("metadata %s='%s' in %s: not a number", keys[i].key,
                      text, where);
            return CLI_USAGE;
        }
        if (x < keys[i].lo || x > keys[i].hi ||
            (keys[i].integer && x != floor(x))) {
            cli_error("metadata %s=%s in %s: must be %s in %.17g..%.17g",
                      keys[i].key, text, where,
                      keys[i].integer ? "an integer" : "a number", keys[i].lo,
                      keys[i].hi);
            return CLI_USAGE;
        }
    }
    /* stride must divide the block size in force */
    double blk = 128, str = 0;
    if (o->have_block)
        blk = (double)o->block;
    else if (meta_num(f, "block_size", &blk) == 0)
        blk = 128;
    if (!o->have_stride && meta_num(f, "stride", &str) &&
        (str > blk || fmod(blk, str) != 0)) {
        cli_error("metadata stride=%s in %s: must divide the block size %g",
                  tf_meta(f, "stride"), where, blk);
        return CLI_USAGE;
    }
    stem_params pp;
    if (!o->have_block && !o->have_stride && meta_num(f, "block_size", &blk) &&
        !tf_meta(f, "stride") &&
        stem_params_init(&pp, o->profile) == STEM_OK &&
        (blk < pp.stride || fmod(blk, pp.stride) != 0)) {
        cli_error("metadata block_size=%s in %s: the profile's stride %d does "
                  "not divide it (give --stride or a stride in the metadata)",
                  tf_meta(f, "block_size"), where, pp.stride);
        return CLI_USAGE;
    }
    return CLI_OK;
}

/* See check_tensors.h. */
const char *ct_apply_meta_params(const tf_file *f, cli_opts *o)
{
    double x;
    long long n;
    int any = 0;
    if (!o->have_alpha && meta_num(f, "alpha", &x) && x >= 0 && x <= 1)
        o->alpha = x, o->have_alpha = any = 1;
    if (!o->have_keep && meta_num(f, "keep_ratio", &x) && x >= 0 && x <= 1)
        o->keep_ratio = x, o->have_keep = any = 1;
    if (!o->have_lambda && ((meta_num(f, "lambda_mag", &x) && x >= 0) ||
                            (meta_num(f, "lambda", &x) && x >= 0)))
        o->lambda = x, o->have_lambda = any = 1;
    if (!o->have_block && meta_int(f, "block_size", 1, 1 << 20, &n))
        o->block = n, o->have_block = any = 1;
    if (!o->have_stride && meta_int(f, "stride", 1, 1 << 20, &n))
        o->stride = n, o->have_stride = any = 1;
    if (!o->have_sinks && (meta_int(f, "initial_blocks", 0, 1 << 30, &n) ||
                           meta_int(f, "sinks", 0, 1 << 30, &n)))
        o->sinks = n, o->have_sinks = any = 1;
    if (!o->have_window && (meta_int(f, "window_size", 0, 1 << 30, &n) ||
                            meta_int(f, "window", 0, 1 << 30, &n)))
        o->window = n, o->have_window = any = 1;
    if (!o->have_prompt &&
        meta_int(f, "prompt_blocks", 0, (double)CLI_MAX_PROMPT_BLOCKS, &n))
        o->prompt_blocks = n, o->have_prompt = any = 1;
    return any ? "parameters not given as options taken from the GPU "
                 "file's metadata"
               : NULL;
}
