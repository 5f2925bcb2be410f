/*
 * test_mask_image.c - the figures `stem mask` draws (tools/cli/mask_image.c):
 * block size, the grid copied unchanged inside axes and frame, thin lines
 * between large blocks, tick labels, the legend's colours, faults and ties
 * marked on the axes, and the picture of a conformance case written by the
 * tool and decoded back with libpng.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <png.h>

#include "mask_image.h"
#include "tensorfile.h"

static uint32_t pixel(const mi_image *img, int x, int y)
{
    const uint8_t *p = img->rgb + ((size_t)y * (size_t)img->w + (size_t)x) * 3;
    return ((uint32_t)p[0] << 16) | ((uint32_t)p[1] << 8) | p[2];
}

/* Centre pixel of block (I, J) of a figure. */
static uint32_t cell(const mi_image *img, const mi_frame *f, int64_t I,
                     int64_t J)
{
    return pixel(img, f->x0 + (int)(J * f->px) + f->px / 2,
                 f->y0 + (int)(I * f->px) + f->px / 2);
}

/* Pixels of colour c in rows y0 .. y1-1 and columns x0 .. x1-1. */
static long count(const mi_image *img, int x0, int y0, int x1, int y1,
                  uint32_t c)
{
    long n = 0;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++)
            n += pixel(img, x, y) == c;
    return n;
}

/* A causal mask [qb, qb] with a staircase of dropped blocks. */
static uint8_t *stair_mask(int64_t qb)
{
    uint8_t *m = calloc((size_t)(qb * qb), 1);
    assert_non_null(m);
    for (int64_t I = 0; I < qb; I++)
        for (int64_t J = 0; J <= I; J++)
            m[I * qb + J] = J < 2 || J + 2 > I || (I + J) % 3 == 0;
    return m;
}

static void test_block_size(void **state)
{
    (void)state;
    assert_int_equal(mi_block_px(1), 512);
    assert_int_equal(mi_block_px(16), 32);
    assert_int_equal(mi_block_px(64), 8);
    /* a 16K-token prompt has 128 blocks: 6 pixels each, not 4 */
    assert_int_equal(mi_block_px(79), MI_MIN_BLOCK_PX);
    assert_int_equal(mi_block_px(128), MI_MIN_BLOCK_PX);
    assert_int_equal(mi_block_px(2048), MI_MIN_BLOCK_PX);
    /* only a grid wider than MI_MAX_GRID_PX shrinks below that */
    assert_int_equal(mi_block_px(4096), MI_MAX_GRID_PX / 4096);
    assert_int_equal(mi_block_px(1 << 20), 1);
}

static void test_text(void **state)
{
    (void)state;
    assert_int_equal(mi_text_width(""), 0);
    int w1 = mi_text_width("7"), w2 = mi_text_width("77");
    assert_true(w1 > 0 && w2 > w1);
    assert_int_equal(mi_text_width("ab"), mi_text_width("AB"));
    mi_image img = {w2 + 4, 40, NULL};
    img.rgb = malloc((size_t)img.w * img.h * 3);
    assert_non_null(img.rgb);
    memset(img.rgb, 0xFF, (size_t)img.w * img.h * 3);
    mi_draw_text(&img, 2, 2, "1", 0x000000u);
    long ink = count(&img, 0, 0, img.w, img.h, 0x000000u);
    /* the 1 has 10 dots in the 5 x 7 font, each a square of w1 / 5 */
    assert_int_equal(ink, 10L * (w1 / 5) * (w1 / 5));
    /* an unknown glyph still draws ('?') */
    memset(img.rgb, 0xFF, (size_t)img.w * img.h * 3);
    mi_draw_text(&img, 2, 2, "~", 0x000000u);
    assert_true(count(&img, 0, 0, img.w, img.h, 0x000000u) > 0);
    /* clipped, never written outside */
    mi_draw_text(&img, -30, -30, "888", 0x000000u);
    mi_draw_text(&img, img.w - 3, img.h - 3, "888", 0x000000u);
    free(img.rgb);
}

/* The mask figure: grid unchanged at the frame, thin lines, ticks, labels
 * and a legend of kept / dropped / above diagonal. */
static void check_mask_figure(int64_t qb)
{
    uint8_t *m = stair_mask(qb);
    mi_image grid, fig;
    mi_frame f;
    int px = mi_block_px(qb);
    assert_int_equal(mi_mask(m, qb, qb, 0, &grid), 0);
    assert_int_equal(mi_figure(&grid, qb, qb, px, MI_KIND_MASK, "mask", 0, 0,
                               &fig, &f), 0);
    assert_int_equal(f.px, px);
    assert_true(f.x0 > 0 && f.y0 > 0);
    assert_true(fig.w >= f.x0 + qb * px && fig.h > f.y0 + qb * px);
    for (int64_t I = 0; I < qb; I++)
        for (int64_t J = 0; J < qb; J++)
            assert_int_equal(cell(&fig, &f, I, J),
                             J > I ? MI_FUTURE
                             : m[I * qb + J] ? MI_KEPT
                                             : MI_DROPPED);
    /* a frame around the grid */
    assert_int_equal(pixel(&fig, f.x0 - 1, f.y0 + px / 2), MI_AXIS);
    assert_int_equal(pixel(&fig, f.x0 + (int)(qb * px), f.y0 + px / 2),
                     MI_AXIS);
    /* lines between blocks only when blocks are large */
    uint32_t edge = pixel(&fig, f.x0 + px, f.y0 + (int)(qb - 1) * px + px / 2);
    if (px >= MI_GRID_LINE_PX)
        assert_int_equal(edge, MI_GRID);
    else
        assert_int_not_equal(edge, MI_GRID);
    /* tick label "0" left of row 0 and above column 0 */
    assert_true(count(&fig, 0, f.y0, f.x0 - 1, f.y0 + px, MI_AXIS) > 0);
    assert_true(count(&fig, f.x0, 0, f.x0 + px, f.y0 - 1, MI_AXIS) > 0);
    /* the last query block's row has a label only when the step hits it;
     * some row far down has one */
    assert_true(count(&fig, 0, f.y0 + (int)(qb / 2) * px, f.x0 - 1,
                      f.y0 + (int)qb * px, MI_AXIS) > 0);
    /* legend: a swatch of each colour below the grid */
    for (uint32_t c = 0, k = 0; k < 3; k++) {
        c = k == 0 ? MI_KEPT : k == 1 ? MI_DROPPED : MI_FUTURE;
        assert_true(count(&fig, 0, f.legend_y, fig.w, fig.h, c) > 0);
    }
    assert_int_equal(count(&fig, 0, f.legend_y, fig.w, fig.h, MI_TIE), 0);
    mi_free(&grid);
    mi_free(&fig);
    free(m);
}

static void test_mask_figure_large_blocks(void **state)
{
    (void)state;
    check_mask_figure(16);      /* 32 pixels a block: grid lines */
}

static void test_mask_figure_small_blocks(void **state)
{
    (void)state;
    check_mask_figure(128);     /* 6 pixels a block, no lines */
}

/* One fault among 128 x 128 blocks: a square of at least 6 x 6 red pixels,
 * marked on both axes, with the tie marked too, and the legend shows
 * both colours. */
static void test_diff_figure_one_fault(void **state)
{
    (void)state;
    enum { QB = 128 };
    uint8_t *ref = stair_mask(QB), *gpu = malloc(QB * QB);
    assert_non_null(gpu);
    memcpy(gpu, ref, QB * QB);
    const int64_t FI = 100, FJ = 40, TI = 70, TJ = 20;
    gpu[FI * QB + FJ] ^= 1;
    gpu[TI * QB + TJ] ^= 1;
    uint8_t *tie = calloc(QB * QB, 1);
    assert_non_null(tie);
    tie[TI * QB + TJ] = 1;
    mi_image grid, fig;
    mi_frame f;
    int px = mi_block_px(QB);
    assert_int_equal(mi_diff(gpu, ref, QB, QB, 0, tie, &grid), 0);
    assert_int_equal(mi_figure(&grid, QB, QB, px, MI_KIND_DIFF, NULL, 0, 0,
                               &fig, &f), 0);
    assert_true(px >= 6);
    assert_int_equal(cell(&fig, &f, FI, FJ), MI_FAULT);
    assert_int_equal(cell(&fig, &f, TI, TJ), MI_TIE);
    long red = count(&fig, f.x0, f.y0, f.x0 + QB * px, f.y0 + QB * px,
                     MI_FAULT);
    assert_int_equal(red, (long)px * px);
    /* on the axes: above the fault's column, left of its row */
    int cx = f.x0 + (int)FJ * px + px / 2, cy = f.y0 + (int)FI * px + px / 2;
    assert_int_equal(pixel(&fig, cx, f.y0 - 2), MI_FAULT);
    assert_int_equal(pixel(&fig, f.x0 - 2, cy), MI_FAULT);
    assert_int_equal(pixel(&fig, f.x0 + (int)TJ * px + px / 2, f.y0 - 2),
                     MI_TIE);
    assert_int_equal(pixel(&fig, f.x0 - 2, f.y0 + (int)TI * px + px / 2),
                     MI_TIE);
    /* nothing else red or orange in the axis margins */
    assert_int_equal(count(&fig, 0, 0, fig.w, f.y0 - 1, MI_FAULT), 4L * px);
    /* legend: tie and fault swatches */
    assert_true(count(&fig, 0, f.legend_y, fig.w, fig.h, MI_FAULT) > 0);
    assert_true(count(&fig, 0, f.legend_y, fig.w, fig.h, MI_TIE) > 0);
    mi_free(&grid);
    mi_free(&fig);
    free(ref);
    free(gpu);
    free(tie);
}

static void test_logits_figure(void **state)
{
    (void)state;
    float lg[4 * 6];
    for (int I = 0; I < 4; I++)
        for (int J = 0; J < 6; J++)
            lg[I * 6 + J] = J <= I + 2 ? (float)(I * 6 + J) : -1.0f / 0.0f;
    mi_image grid, fig;
    mi_frame f;
    float lo, hi;
    int px = mi_block_px(6);
    assert_int_equal(mi_logits(lg, 4, 6, &grid, &lo, &hi), 0);
    assert_int_equal(mi_figure(&grid, 4, 6, px, MI_KIND_LOGITS, "logits", lo,
                               hi, &fig, &f), 0);
    assert_int_equal(cell(&fig, &f, 0, 0), mi_ramp(0.0));
    assert_int_equal(cell(&fig, &f, 3, 5), mi_ramp(1.0));
    assert_int_equal(cell(&fig, &f, 0, 4), MI_NEGINF);
    /* the colour bar is copied under the blocks */
    int bar_y = f.y0 + 4 * px + MI_BAR_HEIGHT / 2;
    assert_int_equal(pixel(&fig, f.x0, bar_y), mi_ramp(0.0));
    assert_int_equal(pixel(&fig, f.x0 + 6 * px - 1, bar_y), mi_ramp(1.0));
    /* its ends are labelled below it */
    assert_true(count(&fig, f.x0, f.y0 + 4 * px + MI_BAR_HEIGHT, fig.w,
                      f.legend_y, MI_AXIS) > 0);
    assert_true(count(&fig, 0, f.legend_y, fig.w, fig.h, MI_NEGINF) > 0);
    mi_free(&grid);
    mi_free(&fig);
}

static void test_figure_bad_arguments(void **state)
{
    (void)state;
    uint8_t m[4] = {1, 0, 1, 1};
    mi_image grid, fig;
    assert_int_equal(mi_mask(m, 2, 2, 0, &grid), 0);
    int px = mi_block_px(2);
    assert_int_equal(mi_figure(NULL, 2, 2, px, MI_KIND_MASK, NULL, 0, 0,
                               &fig, NULL), -1);
    assert_int_equal(mi_figure(&grid, 2, 3, px, MI_KIND_MASK, NULL, 0, 0,
                               &fig, NULL), -1);
    assert_int_equal(mi_figure(&grid, 2, 2, 0, MI_KIND_MASK, NULL, 0, 0,
                               &fig, NULL), -1);
    assert_int_equal(mi_figure(&grid, 2, 2, px, MI_KIND_MASK, NULL, 0, 0,
                               NULL, NULL), -1);
    mi_free(&grid);
}

/* Decode path with libpng's simplified API into an mi_image. */
static int read_png(const char *path, mi_image *out)
{
    png_image img;
    memset(&img, 0, sizeof(img));
    img.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&img, path))
        return -1;
    img.format = PNG_FORMAT_RGB;
    out->rgb = malloc(PNG_IMAGE_SIZE(img));
    if (!out->rgb || !png_image_finish_read(&img, NULL, out->rgb, 0, NULL)) {
        free(out->rgb);
        png_image_free(&img);
        return -1;
    }
    out->w = (int)img.width;
    out->h = (int)img.height;
    return 0;
}

/* `stem mask` on a conformance case, decoded with libpng: the figure the
 * library functions draw, with each block showing the file's mask. */
static void test_cli_figure(void **state)
{
    (void)state;
    const char *bin = getenv("STEM_BIN");
    char cmd[1024], path[128], err[256];
    if (!bin || access(bin, X_OK) != 0)
        bin = access("build/stem", X_OK) == 0 ? "build/stem" : NULL;
    if (!bin) {
        skip();
        return;
    }
    const char *in = "tests/data/conformance/s6.angelslim.safetensors";
    snprintf(path, sizeof(path), "/tmp/stem_test_mask_image_%ld.png",
             (long)getpid());
    snprintf(cmd, sizeof(cmd), "%s mask %s --head 2 -o %s >/dev/null", bin,
             in, path);
    assert_int_equal(system(cmd), 0);
    tf_file tf = {0};
    assert_int_equal(tf_read(in, &tf, err, sizeof(err)), 0);
    const tf_tensor *m = tf_find(&tf, "mask");
    assert_non_null(m);
    int64_t qb = m->shape[1], kb = m->shape[2];
    const uint8_t *mk = (const uint8_t *)m->data + 2 * qb * kb;
    /* the same figure drawn here gives the frame */
    mi_image grid, fig, png;
    mi_frame f;
    int px = mi_block_px(kb);
    assert_int_equal(mi_mask(mk, qb, kb, kb - qb, &grid), 0);
    assert_int_equal(mi_figure(&grid, qb, kb, px, MI_KIND_MASK, "t", 0, 0,
                               &fig, &f), 0);
    assert_int_equal(read_png(path, &png), 0);
    assert_int_equal(png.h, fig.h);
    assert_true(png.w >= f.x0 + kb * px);
    for (int64_t I = 0; I < qb; I++)
        for (int64_t J = 0; J < kb; J++)
            assert_int_equal(cell(&png, &f, I, J),
                             J > I + (kb - qb) ? MI_FUTURE
                             : mk[I * kb + J]  ? MI_KEPT
                                               : MI_DROPPED);
    assert_true(count(&png, 0, f.legend_y, png.w, png.h, MI_FUTURE) > 0);
    mi_free(&grid);
    mi_free(&fig);
    mi_free(&png);
    tf_free(&tf);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_block_size),
        cmocka_unit_test(test_text),
        cmocka_unit_test(test_mask_figure_large_blocks),
        cmocka_unit_test(test_mask_figure_small_blocks),
        cmocka_unit_test(test_diff_figure_one_fault),
        cmocka_unit_test(test_logits_figure),
        cmocka_unit_test(test_figure_bad_arguments),
        cmocka_unit_test(test_cli_figure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
