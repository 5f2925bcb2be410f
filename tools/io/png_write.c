/*
 * png_write.c - PNG output through libpng (see png_write.h).  The picture
 * is encoded into memory and then written with tf_write_atomic.
 */
#include "png_write.h"

#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensorfile.h"

typedef struct membuf {
    unsigned char *data;
    size_t len, cap;
    int failed;
} membuf;

static void mem_write(png_structp png, png_bytep data, png_size_t n)
{
    membuf *m = png_get_io_ptr(png);
    if (m->failed)
        return;
    if (m->len + n > m->cap) {
        size_t cap = m->cap ? m->cap : 4096;
        while (cap < m->len + n)
            cap *= 2;
        unsigned char *p = realloc(m->data, cap);
        if (!p) {
            m->failed = 1;
            return;
        }
        m->data = p;
        m->cap = cap;
    }
    memcpy(m->data + m->len, data, n);
    m->len += n;
}

static void mem_flush(png_structp png)
{
    (void)png;
}

/* Encode into m; 0 or -1.  Kept apart from png_write_rgb so that no local
 * of the caller lives across the setjmp. */
static int encode(int w, int h, const uint8_t *rgb, membuf *m)
{
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL,
                                              NULL, NULL);
    if (!png)
        return -1;
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        return -1;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        return -1;
    }
    png_set_write_fn(png, m, mem_write, mem_flush);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8,
                 PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < h; y++)
        png_write_row(png, (png_const_bytep)(rgb + (size_t)y * (size_t)w * 3));
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    return m->failed ? -1 : 0;
}

/* See png_write.h. */
int png_write_rgb(const char *path, int w, int h, const uint8_t *rgb,
                  char *err, size_t errlen)
{
    tf_fail_reset();
    if (!path || !rgb || w < 1 || h < 1 || w > 65535 || h > 65535) {
        snprintf(err, errlen, "bad picture arguments (%d x %d)", w, h);
        return -1;
    }
    if (tf_output_replaceable(path, err, errlen) != 0)
        return -1;
    membuf m = {0};
    if (encode(w, h, rgb, &m) != 0) {
        free(m.data);
        tf_set_syserr(err, errlen, "%s: PNG encoding failed (out of memory)",
                      path);
        return -1;
    }
    const void *ptrs[1] = {m.data};
    size_t lens[1] = {m.len};
    int rc = tf_write_atomic(path, 1, ptrs, lens, err, errlen);
    free(m.data);
    return rc;
}
