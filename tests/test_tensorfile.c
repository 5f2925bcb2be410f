/*
 * test_tensorfile.c - safetensors / .npy reading and writing, validation of
 * hostile files, atomic replacement, and the bf16 / f16 conversions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tensorfile.h"
#include "tensorindex.h"

static char tmpdir[256];

static int setup(void **state)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/stem_tf_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void path_in(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", tmpdir, name);
}

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, n, fp), n);
    assert_int_equal(fclose(fp), 0);
}

/* A safetensors file from a header string and n data bytes of 0x11. */
static void write_st(const char *path, const char *header, size_t ndata)
{
    size_t hl = strlen(header);
    size_t total = 8 + hl + ndata;
    unsigned char *b = malloc(total);
    assert_non_null(b);
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(b + 8, header, hl);
    memset(b + 8 + hl, 0x11, ndata);
    write_bytes(path, b, total);
    free(b);
}

static int read_fails_with(const char *path, const char *needle)
{
    tf_file f = {0};
    char err[256] = "";
    int rc = tf_read(path, &f, err, sizeof(err));
    if (rc == 0) {
        tf_free(&f);
        return 0;
    }
    if (needle && !strstr(err, needle)) {
        print_error("error '%s' lacks '%s'\n", err, needle);
        return 0;
    }
    /* nothing left behind on failure */
    return f.count == 0 && f.tensors == NULL && f.blob == NULL;
}

static void build_sample(tf_file *f)
{
    char err[256];
    float a[6] = {1.5f, -2.0f, 3.25f, 0.0f, -0.0f, 1e-30f};
    uint8_t m[5] = {0, 1, 2, 255, 7};
    uint16_t h[4] = {0x3f80, 0xbf80, 0x7f80, 0x0001};
    int64_t sa[2] = {2, 3}, sm[1] = {5}, sh[3] = {1, 2, 2};
    assert_int_equal(tf_add(f, "a", STEM_F32, 2, sa, a, err, sizeof(err)), 0);
    assert_int_equal(tf_add(f, "mask", STEM_U8, 1, sm, m, err, sizeof(err)), 0);
    assert_int_equal(tf_add(f, "h", STEM_BF16, 3, sh, h, err, sizeof(err)), 0);
    assert_int_equal(tf_set_meta(f, "seed", "12", err, sizeof(err)), 0);
    assert_int_equal(tf_set_meta(f, "gen", "x", err, sizeof(err)), 0);
    assert_int_equal(tf_set_meta(f, "gen", "structured", err, sizeof(err)),
                     0);
}

static void assert_same_set(const tf_file *a, const tf_file *b)
{
    assert_int_equal(a->count, b->count);
    for (int i = 0; i < a->count; i++) {
        const tf_tensor *x = &a->tensors[i];
        const tf_tensor *y = tf_find(b, x->name);
        assert_non_null(y);
        assert_int_equal(x->dtype, y->dtype);
        assert_int_equal(x->ndim, y->ndim);
        for (int d = 0; d < x->ndim; d++)
            assert_int_equal(x->shape[d], y->shape[d]);
        assert_int_equal(x->nbytes, y->nbytes);
        assert_memory_equal(x->data, y->data, x->nbytes);
        /* readers hand out element-aligned data */
        assert_int_equal((uintptr_t)y->data % stem_dtype_size(y->dtype), 0);
    }
}

static void test_safetensors_round_trip(void **state)
{
    tf_file f = {0}, g = {0};
    char err[256], p[1024];
    build_sample(&f);
    path_in(p, sizeof(p), "rt.safetensors");
    assert_int_equal(tf_write_safetensors(&f, p, err, sizeof(err)), 0);
    assert_int_equal(tf_read(p, &g, err, sizeof(err)), 0);
    assert_same_set(&f, &g);
    assert_string_equal(tf_meta(&g, "seed"), "12");
    assert_string_equal(tf_meta(&g, "gen"), "structured");
    assert_null(tf_meta(&g, "nope"));
    assert_null(tf_find(&g, "nope"));
    /* the offset index sees the same tensors, bytes and metadata */
    tf_index idx;
    assert_int_equal(tf_index_read(p, &idx, err, sizeof(err)), 0);
    assert_int_equal(idx.count, g.count);
    assert_string_equal(tf_meta(&idx.meta, "seed"), "12");
    for (int i = 0; i < g.count; i++) {
        const tf_tensor *t = &g.tensors[i];
        const tf_index_entry *e = tf_index_find(&idx, t->name);
        assert_non_null(e);
        assert_int_equal(e->dtype, t->dtype);
        assert_int_equal(e->ndim, t->ndim);
        assert_int_equal(e->nbytes, t->nbytes);
        void *buf = malloc(e->nbytes);
        assert_non_null(buf);
        assert_int_equal(tf_index_read_slice(&idx, e, 0, 0, e->shape[0], buf,
                                             err, sizeof(err)), 0);
        assert_memory_equal(buf, t->data, t->nbytes);
        free(buf);
    }
    tf_index_free(&idx);
    /* header length is a multiple of 8 */
    FILE *fp = fopen(p, "rb");
    unsigned char lb[8];
    assert_int_equal(fread(lb, 1, 8, fp), 8);
    fclose(fp);
    assert_int_equal(lb[0] % 8, 0);
    tf_free(&f);
    tf_free(&g);
    tf_free(&g);                /* safe on a zeroed file */
}

static void test_reads_real_safetensors_layout(void **state)
{
    /* misaligned F32 (after 3 U8 bytes) and a 0-d scalar */
    char p[1024];
    path_in(p, sizeof(p), "mis.safetensors");
    write_st(p,
             "{\"m\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[0,3]},"
             "\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[3,11]},"
             "\"s\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[11,19]},"
             "\"__metadata__\":{\"k\":\"v\"}}  ",
             19);
    tf_file f = {0};
    char err[256];
    assert_int_equal(tf_read(p, &f, err, sizeof(err)), 0);
    const tf_tensor *x = tf_find(&f, "x");
    assert_non_null(x);
    assert_int_equal((uintptr_t)x->data % 4, 0);
    uint32_t bits;
    memcpy(&bits, x->data, 4);
    assert_int_equal(bits, 0x11111111u);
    assert_int_equal(tf_numel(tf_find(&f, "s")), 1);
    assert_string_equal(tf_meta(&f, "k"), "v");
    tf_free(&f);
}

static void test_truncated(void **state)
{
    tf_file f = {0};
    char err[256], p[1024], q[300];
    build_sample(&f);
    path_in(p, sizeof(p), "full.safetensors");
    assert_int_equal(tf_write_safetensors(&f, p, err, sizeof(err)), 0);
    tf_free(&f);
    void *buf;
    size_t len;
    assert_int_equal(tf_read_all(p, &buf, &len, err, sizeof(err)), 0);
    path_in(q, sizeof(q), "trunc.safetensors");
    size_t cuts[] = {0, 4, 8, 20, len / 2, len - 1};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        write_bytes(q, buf, cuts[i]);
        assert_true(read_fails_with(q, NULL));
    }
    free(buf);
}

static void test_bad_headers(void **state)
{
    char p[1024];
    path_in(p, sizeof(p), "bad.safetensors");
    struct {
        const char *hdr;
        size_t ndata;
        const char *needle;
    } cases[] = {
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,9]}}", 8,
         "data_offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 8,
         "data_offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 8,
         "need"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,0]}}", 8,
         "data_offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-4,4]}}", 8,
         "data_offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8,
         "data_offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "data_offsets"},
        {"{\"a\":{\"dtype\":\"F8\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2,
         "dtype"},
        {"{\"a\":{\"dtype\":3,\"shape\":[2],\"data_offsets\":[0,2]}}", 2,
         "dtype"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[-1],\"data_offsets\":[0,2]}}", 2,
         "shape"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[1.5],\"data_offsets\":[0,2]}}", 2,
         "shape"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],"
         "\"data_offsets\":[0,1]}}", 1, "dimensions"},
        {"{\"a\":{\"dtype\":\"F64\",\"shape\":[4294967296,4294967296,"
         "4294967296],\"data_offsets\":[0,8]}}", 8, "overflow"},
        {"{\"a\":{\"dtype\":\"F64\",\"shape\":[9007199254740992,"
         "9007199254740992],\"data_offsets\":[0,8]}}", 8, "overflow"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}", 2,
         "JSON"},
        {"[1,2,3]", 0, "object"},
        {"\"str\"", 0, "object"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}xx", 2,
         "trailing"},
        {"{\"a\":5}", 0, "object"},
        {"{\"__metadata__\":{\"k\":1}}", 0, "string"},
        {"{\"__metadata__\":[]}", 0, "object"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
         "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}", 2,
         "duplicate"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
         12, "overlapping"},
        {"{\"a\":{\"dtype\":\"F32\\u0000\",\"shape\":[1],"
         "\"data_offsets\":[0,4]}}", 4, "NUL"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        write_st(p, cases[i].hdr, cases[i].ndata);
        if (!read_fails_with(p, cases[i].needle))
            fail_msg("case %zu (%s) was not rejected as expected", i,
                     cases[i].hdr);
        /* the offset index (stem-mpi) parses headers with the reader's
         * code: the same refusal */
        tf_index idx;
        char err[256] = "";
        if (tf_index_read(p, &idx, err, sizeof(err)) == 0) {
            tf_index_free(&idx);
            fail_msg("case %zu (%s): the index accepted it", i, cases[i].hdr);
        }
        if (cases[i].needle && !strstr(err, cases[i].needle))
            fail_msg("case %zu: the index's error '%s' lacks '%s'", i, err,
                     cases[i].needle);
    }
    /* header length larger than the file */
    unsigned char b[16] = {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, '{', '}'};
    write_bytes(p, b, 10);
    assert_true(read_fails_with(p, "header length"));
    /* a missing file */
    path_in(p, sizeof(p), "absent.safetensors");
    assert_true(read_fails_with(p, "No such file"));
}

static void write_npy_raw(const char *path, const char *dict, const void *data,
                          size_t n)
{
    size_t dl = strlen(dict);
    size_t total = (10 + dl + 1 + 63) & ~(size_t)63;
    unsigned char *b = calloc(1, total + n);
    memcpy(b, "\x93NUMPY\x01\x00", 8);
    b[8] = (unsigned char)((total - 10) & 0xff);
    b[9] = (unsigned char)((total - 10) >> 8);
    memcpy(b + 10, dict, dl);
    memset(b + 10 + dl, ' ', total - 10 - dl - 1);
    b[total - 1] = '\n';
    memcpy(b + total, data, n);
    write_bytes(path, b, total + n);
    free(b);
}

static void test_npy_round_trip(void **state)
{
    char err[256], p[1024];
    char dir[300];
    path_in(dir, sizeof(dir), "npydir");
    assert_int_equal(mkdir(dir, 0755), 0);
    tf_file f = {0};
    float a[6] = {1, 2, 3, 4, 5, 6};
    int64_t i8[3] = {-1, 0, INT64_MAX};
    uint16_t h[2] = {0x3c00, 0xfc00};
    double s = 2.5;
    int64_t sa[2] = {2, 3}, si[1] = {3}, sh[2] = {1, 2};
    assert_int_equal(tf_add(&f, "q", STEM_F32, 2, sa, a, err, sizeof(err)), 0);
    assert_int_equal(tf_add(&f, "idx", STEM_I64, 1, si, i8, err, sizeof(err)),
                     0);
    assert_int_equal(tf_add(&f, "h", STEM_F16, 2, sh, h, err, sizeof(err)), 0);
    assert_int_equal(tf_add(&f, "s", STEM_F64, 0, NULL, &s, err, sizeof(err)),
                     0);
    for (int i = 0; i < f.count; i++) {
        snprintf(p, sizeof(p), "%s/%s.npy", dir, f.tensors[i].name);
        assert_int_equal(tf_write_npy(&f.tensors[i], p, err, sizeof(err)), 0);
    }
    tf_file g = {0};
    assert_int_equal(tf_read(dir, &g, err, sizeof(err)), 0);
    assert_same_set(&f, &g);
    tf_free(&g);
    /* a single file, named after its stem */
    snprintf(p, sizeof(p), "%s/q.npy", dir);
    assert_int_equal(tf_read(p, &g, err, sizeof(err)), 0);
    assert_int_equal(g.count, 1);
    assert_string_equal(g.tensors[0].name, "q");
    assert_int_equal(g.tensors[0].shape[1], 3);
    tf_free(&g);
    /* numpy itself must agree, when it is there */
    if (access("/usr/bin/python3", X_OK) == 0) {
        char cmd[600];
        snprintf(cmd, sizeof(cmd),
                 "/usr/bin/python3 -c \"import numpy as n,sys;"
                 "a=n.load('%s/q.npy');sys.exit(0 if a.shape==(2,3) and "
                 "a.dtype==n.float32 and a[1,2]==6 else 1)\" 2>/dev/null",
                 dir);
        int rc = system(cmd);
        if (rc != 0 && WEXITSTATUS(rc) == 1)
            fail_msg("numpy disagrees with the written .npy");
    }
    /* bf16 has no .npy form */
    int64_t s1[1] = {2};
    tf_file b = {0};
    assert_int_equal(tf_add(&b, "b", STEM_BF16, 1, s1, h, err, sizeof(err)), 0);
    snprintf(p, sizeof(p), "%s/b16.npy", tmpdir);
    assert_int_equal(tf_write_npy(&b.tensors[0], p, err, sizeof(err)), -1);
    assert_int_equal(access(p, F_OK), -1);
    tf_free(&b);
    tf_free(&f);
}

static void test_npy_rejects(void **state)
{
    char p[1024];
    float d[4] = {0};
    path_in(p, sizeof(p), "bad.npy");
    struct {
        const char *dict;
        size_t n;
        const char *needle;
    } cases[] = {
        {"{'descr': '>f4', 'fortran_order': False, 'shape': (4,), }", 16,
         "big-endian"},
        {"{'descr': '<f4', 'fortran_order': True, 'shape': (4,), }", 16,
         "fortran"},
        {"{'descr': '<V2', 'fortran_order': False, 'shape': (4,), }", 8,
         "unsupported"},
        {"{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }", 16,
         "unsupported"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }", 16,
         "truncated"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", 16,
         "data bytes"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (-4,), }", 16,
         "malformed"},
        {"{'descr': '<f4', 'fortran_order': False}", 16, "lacks"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (4,)", 16,
         "malformed"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': "
         "(4294967296, 4294967296, 4294967296), }", 16, "overflow"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        write_npy_raw(p, cases[i].dict, d, cases[i].n);
        if (!read_fails_with(p, cases[i].needle))
            fail_msg("npy case %zu (%s) was not rejected", i, cases[i].dict);
    }
    /* good version 1 header in double quotes, v2 too */
    write_npy_raw(p, "{\"descr\": \"<f4\", \"shape\": (2, 2), "
                     "\"fortran_order\": False}", d, 16);
    tf_file f = {0};
    char err[256];
    assert_int_equal(tf_read(p, &f, err, sizeof(err)), 0);
    assert_int_equal(f.tensors[0].ndim, 2);
    tf_free(&f);
    /* truncated magic */
    write_bytes(p, "\x93NUMPY\x01", 7);
    assert_true(read_fails_with(p, NULL));
}

static void test_no_clobber(void **state)
{
    char err[256], p[1024], ro[300];
    path_in(p, sizeof(p), "keep.safetensors");
    write_bytes(p, "precious", 8);
    /* an invalid tensor set is refused and the file is kept */
    tf_file f = {0};
    build_sample(&f);
    f.tensors[0].nbytes = 3;
    assert_int_equal(tf_write_safetensors(&f, p, err, sizeof(err)), -1);
    f.tensors[0].nbytes = 24;
    strcpy(f.tensors[1].name, "a");
    assert_int_equal(tf_write_safetensors(&f, p, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "duplicate"));
    void *buf;
    size_t len;
    assert_int_equal(tf_read_all(p, &buf, &len, err, sizeof(err)), 0);
    assert_int_equal(len, 8);
    assert_memory_equal(buf, "precious", 8);
    free(buf);
    strcpy(f.tensors[1].name, "mask");
    /* a directory that cannot be written: the file there is kept */
    path_in(ro, sizeof(ro), "ro");
    assert_int_equal(mkdir(ro, 0755), 0);
    snprintf(p, sizeof(p), "%s/out.safetensors", ro);
    write_bytes(p, "precious", 8);
    assert_int_equal(chmod(ro, 0555), 0);
    if (access(ro, W_OK) != 0) {        /* not root */
        assert_int_equal(tf_write_safetensors(&f, p, err, sizeof(err)), -1);
        assert_int_equal(tf_write_npy(&f.tensors[0], p, err, sizeof(err)), -1);
        assert_int_equal(tf_read_all(p, &buf, &len, err, sizeof(err)), 0);
        assert_int_equal(len, 8);
        assert_memory_equal(buf, "precious", 8);
        free(buf);
    }
    chmod(ro, 0755);
    /* the target is a directory (fails even for root, at the rename): it
     * stays as it was and the temporary file is removed */
    char sub[1100], cmd0[1200];
    path_in(p, sizeof(p), "isdir.safetensors");
    assert_int_equal(mkdir(p, 0755), 0);
    snprintf(sub, sizeof(sub), "%s/inside", p);
    write_bytes(sub, "precious", 8);
    assert_int_equal(tf_write_safetensors(&f, p, err, sizeof(err)), -1);
    assert_int_equal(tf_write_npy(&f.tensors[0], p, err, sizeof(err)), -1);
    assert_int_equal(tf_read_all(sub, &buf, &len, err, sizeof(err)), 0);
    assert_int_equal(len, 8);
    free(buf);
    snprintf(cmd0, sizeof(cmd0), "ls '%s' | grep -q tmp", tmpdir);
    assert_int_not_equal(system(cmd0), 0);
    /* a missing directory */
    path_in(p, sizeof(p), "nodir/out.safetensors");
    assert_int_equal(tf_write_safetensors(&f, p, err, sizeof(err)), -1);
    /* success replaces, and leaves no temporary file behind */
    snprintf(p, sizeof(p), "%s/out.safetensors", ro);
    assert_int_equal(tf_write_safetensors(&f, p, err, sizeof(err)), 0);
    tf_file g = {0};
    assert_int_equal(tf_read(p, &g, err, sizeof(err)), 0);
    assert_same_set(&f, &g);
    tf_free(&g);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "ls '%s' | grep -q tmp", ro);
    assert_int_not_equal(system(cmd), 0);
    tf_free(&f);
}

static void test_add_rejects(void **state)
{
    tf_file f = {0};
    char err[256];
    float x = 1;
    int64_t neg[1] = {-1}, big[2] = {INT64_MAX, 2}, one[1] = {1};
    assert_int_equal(tf_add(&f, "x", STEM_F32, 1, neg, &x, err, sizeof(err)),
                     -1);
    assert_int_equal(tf_add(&f, "x", STEM_F32, 2, big, &x, err, sizeof(err)),
                     -1);
    assert_int_equal(tf_add(&f, "x", STEM_DTYPE_COUNT, 1, one, &x, err,
                            sizeof(err)), -1);
    assert_int_equal(tf_add(&f, "", STEM_F32, 1, one, &x, err, sizeof(err)), -1);
    assert_int_equal(tf_add(&f, "x", STEM_F32, 1, one, &x, err, sizeof(err)), 0);
    assert_int_equal(tf_add(&f, "x", STEM_F32, 1, one, &x, err, sizeof(err)),
                     -1);
    assert_int_equal(f.count, 1);
    tf_free(&f);
}

/* Reference rounding through double: nearest representable, ties even. */
static uint16_t ref_round(float f, int bf16)
{
    /* enumerate candidate encodings around the value */
    uint16_t best = 0;
    double bd = INFINITY;
    for (uint32_t h = 0; h < 0x10000; h++) {
        float v = bf16 ? stem_bf16_to_f32((uint16_t)h)
                       : stem_f16_to_f32((uint16_t)h);
        if (isnan(v) || signbit(v) != signbit(f))
            continue;
        double dd = fabs((double)v - (double)f);
        if (dd < bd || (dd == bd && !(h & 1))) {
            bd = dd;
            best = (uint16_t)h;
        }
    }
    return best;
}

static void test_conversions(void **state)
{
    /* exact round trips of every finite encoding */
    for (uint32_t h = 0; h < 0x10000; h++) {
        float b = stem_bf16_to_f32((uint16_t)h), s = stem_f16_to_f32((uint16_t)h);
        if (!isnan(b))
            assert_int_equal(stem_f32_to_bf16(b), h);
        else
            assert_true(isnan(stem_bf16_to_f32(stem_f32_to_bf16(b))));
        if (!isnan(s))
            assert_int_equal(stem_f32_to_f16(s), h);
        else
            assert_true(isnan(stem_f16_to_f32(stem_f32_to_f16(s))));
    }
    /* ties to even */
    assert_int_equal(stem_f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);   /* tie, even */
    assert_int_equal(stem_f32_to_bf16(1.0f + 0x3p-8f), 0x3f82);   /* tie, up */
    assert_int_equal(stem_f32_to_f16(1.0f + 0x1p-11f), 0x3c00);
    assert_int_equal(stem_f32_to_f16(1.0f + 0x3p-11f), 0x3c02);
    assert_int_equal(stem_f32_to_f16(0x1p-25f), 0x0000);          /* tie to 0 */
    assert_int_equal(stem_f32_to_f16(0x3p-25f), 0x0002);          /* tie up */
    assert_int_equal(stem_f32_to_f16(65519.0f), 0x7bff);
    assert_int_equal(stem_f32_to_f16(65520.0f), 0x7c00);          /* to Inf */
    assert_int_equal(stem_f32_to_f16(-1e10f), 0xfc00);
    assert_int_equal(stem_f32_to_bf16(3.4e38f), 0x7f80);          /* to Inf */
    assert_int_equal(stem_f32_to_bf16(INFINITY), 0x7f80);
    assert_int_equal(stem_f32_to_bf16(-INFINITY), 0xff80);
    assert_int_equal(stem_f32_to_f16(INFINITY), 0x7c00);
    assert_true(isnan(stem_bf16_to_f32(stem_f32_to_bf16(NAN))));
    assert_true(isnan(stem_f16_to_f32(stem_f32_to_f16(NAN))));
    /* a NaN whose payload sits only in the low bits stays NaN */
    uint32_t lownan = 0x7f800001u;
    float fl;
    memcpy(&fl, &lownan, 4);
    assert_true(isnan(stem_bf16_to_f32(stem_f32_to_bf16(fl))));
    assert_true(isnan(stem_f16_to_f32(stem_f32_to_f16(fl))));
    /* pseudo-random floats against the exhaustive nearest search */
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < 300; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        uint32_t u = (uint32_t)s;
        float f;
        /* keep magnitudes in f16's range for the f16 check */
        u = (u & 0x807fffffu) | ((uint32_t)(100 + (s >> 40) % 42) << 23);
        memcpy(&f, &u, 4);
        assert_int_equal(stem_f32_to_bf16(f), ref_round(f, 1));
        assert_int_equal(stem_f32_to_f16(f), ref_round(f, 0));
    }
}

/* The library's one table of dtype names: every dtype's name reads back
 * as it, sizes are those of the element, other spellings are refused. */
static void test_dtype_table(void **state)
{
    (void)state;
    static const size_t sizes[STEM_DTYPE_COUNT] = {4, 2, 2, 8, 1, 4, 8, 1};
    for (int i = 0; i < STEM_DTYPE_COUNT; i++) {
        stem_dtype back = STEM_DTYPE_COUNT;
        const char *name = stem_dtype_name((stem_dtype)i);
        assert_string_not_equal(name, "?");
        assert_int_equal(stem_dtype_from_name(name, &back), STEM_OK);
        assert_int_equal(back, i);
        assert_int_equal(stem_dtype_size((stem_dtype)i), sizes[i]);
    }
    stem_dtype dt = STEM_F64;
    assert_string_equal(stem_dtype_name(STEM_BF16), "BF16");
    assert_string_equal(stem_dtype_name(STEM_DTYPE_COUNT), "?");
    assert_int_equal(stem_dtype_size(STEM_DTYPE_COUNT), 0);
    assert_int_equal(stem_dtype_from_name("f32", &dt), STEM_ERR_DTYPE);
    assert_int_equal(stem_dtype_from_name("F32 ", &dt), STEM_ERR_DTYPE);
    assert_int_equal(stem_dtype_from_name("", &dt), STEM_ERR_DTYPE);
    assert_int_equal(dt, STEM_F64);
    assert_int_equal(stem_dtype_from_name(NULL, &dt), STEM_ERR_NULL);
    assert_int_equal(stem_dtype_from_name("F32", NULL), STEM_ERR_NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_safetensors_round_trip),
        cmocka_unit_test(test_reads_real_safetensors_layout),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_bad_headers),
        cmocka_unit_test(test_npy_round_trip),
        cmocka_unit_test(test_npy_rejects),
        cmocka_unit_test(test_no_clobber),
        cmocka_unit_test(test_add_rejects),
        cmocka_unit_test(test_conversions),
        cmocka_unit_test(test_dtype_table),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
