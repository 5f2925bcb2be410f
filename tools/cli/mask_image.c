/*
 * mask_image.c - mask, difference and logit pictures, and the figure with
 * axes and legend around them (see mask_image.h).
 */
#include "mask_image.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* See mask_image.h. */
int mi_block_px(int64_t kb)
{
    if (kb < 1)
        kb = 1;
    int64_t px = 512 / kb;
    if (px < MI_MIN_BLOCK_PX)
        px = MI_MIN_BLOCK_PX;
    if (kb * px > MI_MAX_GRID_PX)
        px = MI_MAX_GRID_PX / kb;
    return px < 1 ? 1 : (int)px;
}

static int alloc_img(int64_t qb, int64_t kb, int extra_rows, mi_image *out)
{
    memset(out, 0, sizeof(*out));
    if (qb < 1 || kb < 1)
        return -1;
    int px = mi_block_px(kb);
    int64_t w = kb * px, h = qb * px + extra_rows;
    if (w > 65535 || h > 65535)
        return -1;
    out->rgb = malloc((size_t)(w * h * 3));
    if (!out->rgb)
        return -1;
    out->w = (int)w;
    out->h = (int)h;
    return 0;
}

static void fill_block(mi_image *img, int px, int64_t I, int64_t J,
                       uint32_t c)
{
    for (int y = 0; y < px; y++) {
        uint8_t *p = img->rgb + (((size_t)(I * px + y)) * (size_t)img->w +
                                 (size_t)(J * px)) * 3;
        for (int x = 0; x < px; x++, p += 3) {
            p[0] = (uint8_t)(c >> 16);
            p[1] = (uint8_t)(c >> 8);
            p[2] = (uint8_t)c;
        }
    }
}

/* See mask_image.h. */
int mi_mask(const uint8_t *mask, int64_t qb, int64_t kb, int64_t pb,
            mi_image *out)
{
    if (!mask || !out || pb < 0 || alloc_img(qb, kb, 0, out) != 0)
        return -1;
    int px = mi_block_px(kb);
    for (int64_t I = 0; I < qb; I++)
        for (int64_t J = 0; J < kb; J++)
            fill_block(out, px, I, J,
                       J > I + pb          ? MI_FUTURE
                       : mask[I * kb + J] ? MI_KEPT
                                          : MI_DROPPED);
    return 0;
}

/* See mask_image.h. */
int mi_diff(const uint8_t *a, const uint8_t *b, int64_t qb, int64_t kb,
            int64_t pb, const uint8_t *tie, mi_image *out)
{
    if (!a || !b || !out || pb < 0 || alloc_img(qb, kb, 0, out) != 0)
        return -1;
    int px = mi_block_px(kb);
    for (int64_t I = 0; I < qb; I++)
        for (int64_t J = 0; J < kb; J++) {
            int x = a[I * kb + J] != 0, y = b[I * kb + J] != 0;
            uint32_t c = x && y ? MI_KEPT
                         : (!x && !y) ? (J > I + pb ? MI_FUTURE : MI_DROPPED)
                         : tie && tie[I * kb + J] ? MI_TIE
                                                  : MI_FAULT;
            fill_block(out, px, I, J, c);
        }
    return 0;
}

/* See mask_image.h.  Five stops from dark blue through teal and green to
 * yellow, linear in between. */
uint32_t mi_ramp(double x)
{
    static const uint8_t stop[5][3] = {{48, 18, 120}, {40, 100, 160},
                                       {30, 160, 140}, {120, 200, 70},
                                       {250, 230, 30}};
    if (!(x > 0))
        x = 0;
    if (x > 1)
        x = 1;
    double f = x * 4;
    int i = (int)f;
    if (i > 3)
        i = 3;
    double t = f - i;
    uint32_t c = 0;
    for (int k = 0; k < 3; k++) {
        double v = stop[i][k] + t * (stop[i + 1][k] - stop[i][k]);
        c = (c << 8) | (uint32_t)lround(v);
    }
    return c;
}

/* See mask_image.h. */
int mi_logits(const float *logits, int64_t qb, int64_t kb, mi_image *out,
              float *lo, float *hi)
{
    if (!logits || !out || alloc_img(qb, kb, MI_BAR_HEIGHT, out) != 0)
        return -1;
    float mn = INFINITY, mx = -INFINITY;
    for (int64_t i = 0; i < qb * kb; i++)
        if (isfinite(logits[i])) {
            mn = logits[i] < mn ? logits[i] : mn;
            mx = logits[i] > mx ? logits[i] : mx;
        }
    double span = mx > mn ? (double)mx - mn : 1.0;
    int px = mi_block_px(kb);
    for (int64_t I = 0; I < qb; I++)
        for (int64_t J = 0; J < kb; J++) {
            float v = logits[I * kb + J];
            fill_block(out, px, I, J,
                       isfinite(v) ? mi_ramp(((double)v - mn) / span)
                                   : MI_NEGINF);
        }
    for (int y = out->h - MI_BAR_HEIGHT; y < out->h; y++)
        for (int x = 0; x < out->w; x++) {
            uint32_t c = mi_ramp(out->w > 1 ? (double)x / (out->w - 1) : 0);
            uint8_t *p = out->rgb + ((size_t)y * (size_t)out->w + x) * 3;
            p[0] = (uint8_t)(c >> 16);
            p[1] = (uint8_t)(c >> 8);
            p[2] = (uint8_t)c;
        }
    if (lo)
        *lo = mn;
    if (hi)
        *hi = mx;
    return 0;
}

/* See mask_image.h. */
void mi_free(mi_image *img)
{
    if (!img)
        return;
    free(img->rgb);
    memset(img, 0, sizeof(*img));
}

/* ------------------------------------------------------------- figures */

/* A 5 x 7 bitmap font: one byte per row, bit 4 the leftmost column. */
static const struct glyph {
    char c;
    uint8_t row[7];
} font[] = {
    {'0', {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}},
    {'1', {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E}},
    {'2', {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}},
    {'3', {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E}},
    {'4', {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}},
    {'5', {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E}},
    {'6', {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}},
    {'7', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}},
    {'8', {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}},
    {'9', {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C}},
    {'A', {0x0E, 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11}},
    {'B', {0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E}},
    {'C', {0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E}},
    {'D', {0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C}},
    {'E', {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F}},
    {'F', {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10}},
    {'G', {0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F}},
    {'H', {0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11}},
    {'I', {0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E}},
    {'J', {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C}},
    {'K', {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11}},
    {'L', {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F}},
    {'M', {0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11}},
    {'N', {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11}},
    {'O', {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}},
    {'P', {0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10}},
    {'Q', {0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D}},
    {'R', {0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11}},
    {'S', {0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E}},
    {'T', {0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}},
    {'U', {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}},
    {'V', {0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04}},
    {'W', {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A}},
    {'X', {0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11}},
    {'Y', {0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04}},
    {'Z', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F}},
    {' ', {0, 0, 0, 0, 0, 0, 0}},
    {'.', {0, 0, 0, 0, 0, 0x0C, 0x0C}},
    {',', {0, 0, 0, 0, 0x0C, 0x04, 0x08}},
    {'-', {0, 0, 0, 0x1F, 0, 0, 0}},
    {'+', {0, 0x04, 0x04, 0x1F, 0x04, 0x04, 0}},
    {':', {0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0}},
    {'=', {0, 0, 0x1F, 0, 0x1F, 0, 0}},
    {'(', {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02}},
    {')', {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08}},
    {'/', {0, 0x01, 0x02, 0x04, 0x08, 0x10, 0}},
    {'<', {0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02}},
    {'>', {0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08}},
    {'%', {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03}},
    {'?', {0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04}},
};

#define FONT_SCALE 2                      /* pixels per font dot */
#define GLYPH_W (6 * FONT_SCALE)          /* 5 dots and a space */
#define GLYPH_H (7 * FONT_SCALE)
#define LINE_H (GLYPH_H + 6)
#define PAD 10
#define TICK 4

/* The glyph of c (lower case drawn as upper case; '?' if absent). */
static const uint8_t *glyph_of(char c)
{
    if (c >= 'a' && c <= 'z')
        c = (char)(c - 'a' + 'A');
    const uint8_t *q = NULL;
    for (size_t i = 0; i < sizeof(font) / sizeof(font[0]); i++) {
        if (font[i].c == c)
            return font[i].row;
        if (font[i].c == '?')
            q = font[i].row;
    }
    return q;
}

/* See mask_image.h. */
int mi_text_width(const char *s)
{
    int n = (int)strlen(s);
    return n > 0 ? n * GLYPH_W - FONT_SCALE : 0;
}

/* Pixel (x, y) of img set to RGB c; nothing outside the picture. */
static void put_px(mi_image *img, int x, int y, uint32_t c)
{
    if (x < 0 || y < 0 || x >= img->w || y >= img->h)
        return;
    uint8_t *p = img->rgb + ((size_t)y * (size_t)img->w + (size_t)x) * 3;
    p[0] = (uint8_t)(c >> 16);
    p[1] = (uint8_t)(c >> 8);
    p[2] = (uint8_t)c;
}

/* The w x h rectangle at (x, y) filled with c, clipped to img. */
static void fill_rect(mi_image *img, int x, int y, int w, int h, uint32_t c)
{
    for (int j = 0; j < h; j++)
        for (int i = 0; i < w; i++)
            put_px(img, x + i, y + j, c);
}

/* See mask_image.h.  (x, y) is the top-left corner of the first glyph. */
void mi_draw_text(mi_image *img, int x, int y, const char *s, uint32_t c)
{
    for (; *s; s++, x += GLYPH_W) {
        const uint8_t *g = glyph_of(*s);
        for (int r = 0; r < 7; r++)
            for (int b = 0; b < 5; b++)
                if (g[r] & (0x10 >> b))
                    fill_rect(img, x + b * FONT_SCALE, y + r * FONT_SCALE,
                              FONT_SCALE, FONT_SCALE, c);
    }
}

/* The smallest step of 1, 2, 5, 10, 20, 50, ... blocks whose ticks lie at
 * least `room` pixels apart at px pixels per block. */
static int64_t tick_step(int px, int room)
{
    static const int m[3] = {1, 2, 5};
    for (int64_t dec = 1;; dec *= 10)
        for (int i = 0; i < 3; i++)
            if (m[i] * dec * px >= room || m[i] * dec > ((int64_t)1 << 40))
                return m[i] * dec;
}

/* One legend entry: a swatch and its words. */
typedef struct legend_item {
    uint32_t colour;
    const char *text;
} legend_item;

/* The legend of a kind; *n entries. */
static const legend_item *legend_of(mi_kind kind, int *n)
{
    static const legend_item mask[] = {{MI_KEPT, "kept"},
                                       {MI_DROPPED, "dropped"},
                                       {MI_FUTURE, "above diagonal"}};
    static const legend_item diff[] = {
        {MI_KEPT, "kept by both"},     {MI_DROPPED, "dropped by both"},
        {MI_FUTURE, "above diagonal"}, {MI_TIE, "tie (rounding)"},
        {MI_FAULT, "fault"}};
    static const legend_item logits[] = {{MI_NEGINF, "-inf"}};
    switch (kind) {
    case MI_KIND_DIFF: *n = 5; return diff;
    case MI_KIND_LOGITS: *n = 1; return logits;
    default: *n = 3; return mask;
    }
}

#define SWATCH GLYPH_H
#define ITEM_GAP 18

/* Lay the legend out in rows no wider than width, from (x, y); draw when
 * img is not NULL.  Returns the height used. */
static int legend(mi_image *img, mi_kind kind, int x, int y, int width)
{
    int n, cx = x, cy = y;
    const legend_item *it = legend_of(kind, &n);
    for (int i = 0; i < n; i++) {
        int w = SWATCH + 6 + mi_text_width(it[i].text);
        if (cx > x && cx + w > x + width) {
            cx = x;
            cy += LINE_H;
        }
        if (img) {
            fill_rect(img, cx, cy, SWATCH, SWATCH, MI_AXIS);
            fill_rect(img, cx + 1, cy + 1, SWATCH - 2, SWATCH - 2,
                      it[i].colour);
            mi_draw_text(img, cx + SWATCH + 6, cy, it[i].text, MI_AXIS);
        }
        cx += w + ITEM_GAP;
    }
    return cy - y + LINE_H;
}

/* See mask_image.h. */
int mi_figure(const mi_image *grid, int64_t qb, int64_t kb, int px,
              mi_kind kind, const char *title, double lo, double hi,
              mi_image *out, mi_frame *frame)
{
    if (!grid || !grid->rgb || !out || px < 1 || qb < 1 || kb < 1 ||
        kb * px > grid->w || qb * px > grid->h)
        return -1;
    memset(out, 0, sizeof(*out));
    char buf[64];
    /* y-axis labels: as wide as the largest query block index */
    snprintf(buf, sizeof(buf), "%lld", (long long)(qb - 1));
    int ylab_w = mi_text_width(buf);
    snprintf(buf, sizeof(buf), "%lld", (long long)(kb - 1));
    int xlab_w = mi_text_width(buf);
    int64_t xstep = tick_step(px, xlab_w + 3 * GLYPH_W / 2);
    int64_t ystep = tick_step(px, GLYPH_H + 4);
    const char *axes = "rows: query block  columns: key block";
    int x0 = PAD + (ylab_w > GLYPH_W ? ylab_w : GLYPH_W) + TICK + 4;
    int y0 = PAD + (title && *title ? LINE_H : 0) + GLYPH_H + TICK + 4;
    int gw = (int)(kb * px), gh = grid->h;
    int w = x0 + gw + PAD;
    int tw = title ? mi_text_width(title) : 0;
    if (PAD + tw + PAD > w)
        w = PAD + tw + PAD;
    if (PAD + mi_text_width(axes) + PAD > w)
        w = PAD + mi_text_width(axes) + PAD;
    int range_h = kind == MI_KIND_LOGITS ? LINE_H : 0;
    int lw = w - 2 * PAD;
    int h = y0 + gh + 6 + range_h + LINE_H +
            legend(NULL, kind, PAD, 0, lw) + PAD;
    if (w > 65535 || h > 65535)
        return -1;
    out->rgb = malloc((size_t)w * (size_t)h * 3);
    if (!out->rgb)
        return -1;
    out->w = w;
    out->h = h;
    memset(out->rgb, 0xFF, (size_t)w * (size_t)h * 3);

    if (title && *title)
        mi_draw_text(out, PAD, PAD, title, MI_AXIS);
    /* the grid, with thin lines between blocks when they are large */
    for (int y = 0; y < gh; y++)
        memcpy(out->rgb + ((size_t)(y0 + y) * (size_t)w + (size_t)x0) * 3,
               grid->rgb + (size_t)y * (size_t)grid->w * 3, (size_t)gw * 3);
    if (px >= MI_GRID_LINE_PX) {
        for (int64_t J = 1; J < kb; J++)
            fill_rect(out, x0 + (int)(J * px), y0, 1, (int)(qb * px),
                      MI_GRID);
        for (int64_t I = 1; I < qb; I++)
            fill_rect(out, x0, y0 + (int)(I * px), gw, 1, MI_GRID);
    }
    /* frame */
    fill_rect(out, x0 - 1, y0 - 1, gw + 2, 1, MI_AXIS);
    fill_rect(out, x0 - 1, y0 + (int)(qb * px), gw + 2, 1, MI_AXIS);
    fill_rect(out, x0 - 1, y0 - 1, 1, (int)(qb * px) + 2, MI_AXIS);
    fill_rect(out, x0 + gw, y0 - 1, 1, (int)(qb * px) + 2, MI_AXIS);
    /* ticks and block indices: key blocks along the top, query blocks
     * down the left */
    for (int64_t J = 0; J < kb; J += xstep) {
        int cx = x0 + (int)(J * px) + px / 2;
        snprintf(buf, sizeof(buf), "%lld", (long long)J);
        fill_rect(out, cx, y0 - 1 - TICK, 1, TICK, MI_AXIS);
        int lx = cx - mi_text_width(buf) / 2;
        if (lx + mi_text_width(buf) > w - 1)
            lx = w - 1 - mi_text_width(buf);
        mi_draw_text(out, lx, y0 - 1 - TICK - 2 - GLYPH_H, buf, MI_AXIS);
    }
    for (int64_t I = 0; I < qb; I += ystep) {
        int cy = y0 + (int)(I * px) + px / 2;
        snprintf(buf, sizeof(buf), "%lld", (long long)I);
        fill_rect(out, x0 - 1 - TICK, cy, TICK, 1, MI_AXIS);
        mi_draw_text(out, x0 - 1 - TICK - 3 - mi_text_width(buf),
                     cy - GLYPH_H / 2, buf, MI_AXIS);
    }
    /* ties and then faults marked on both axes too, so that a single one
     * is found at a glance */
    for (int pass = 0; kind == MI_KIND_DIFF && pass < 2; pass++)
        for (int64_t I = 0; I < qb; I++)
            for (int64_t J = 0; J < kb; J++) {
                const uint8_t *p =
                    grid->rgb + ((size_t)(I * px + px / 2) * (size_t)grid->w +
                                 (size_t)(J * px + px / 2)) * 3;
                uint32_t c = ((uint32_t)p[0] << 16) | ((uint32_t)p[1] << 8) |
                             p[2];
                uint32_t want = pass == 0 ? MI_TIE : MI_FAULT;
                if (c != want)
                    continue;
                int m = px < 4 ? 4 : px;
                fill_rect(out, x0 + (int)(J * px) + px / 2 - m / 2,
                          y0 - 1 - TICK, m, TICK, want);
                fill_rect(out, x0 - 1 - TICK,
                          y0 + (int)(I * px) + px / 2 - m / 2, TICK, m,
                          want);
            }
    int y = y0 + gh + 6;
    if (kind == MI_KIND_LOGITS) {
        /* the colour bar's ends, under the bar */
        snprintf(buf, sizeof(buf), "%.4g", lo);
        mi_draw_text(out, x0, y, buf, MI_AXIS);
        snprintf(buf, sizeof(buf), "%.4g", hi);
        mi_draw_text(out, x0 + gw - mi_text_width(buf), y, buf, MI_AXIS);
        y += range_h;
    }
    mi_draw_text(out, PAD, y, axes, MI_AXIS);
    y += LINE_H;
    legend(out, kind, PAD, y, lw);
    if (frame) {
        frame->x0 = x0;
        frame->y0 = y0;
        frame->px = px;
        frame->legend_y = y;
    }
    return 0;
}
