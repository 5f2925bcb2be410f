/*
 * mask_image.c - mask, difference and logit pictures (see mask_image.h).
 */
#include "mask_image.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* See mask_image.h. */
int mi_block_px(int64_t kb)
{
    return kb >= 512 ? 1 : (int)(512 / (kb < 1 ? 1 : kb));
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
            int64_t pb, const check_mask_result *diffs, int head,
            mi_image *out)
{
    if (!a || !b || !out || pb < 0 || alloc_img(qb, kb, 0, out) != 0)
        return -1;
    int px = mi_block_px(kb);
    for (int64_t I = 0; I < qb; I++)
        for (int64_t J = 0; J < kb; J++) {
            int x = a[I * kb + J] != 0, y = b[I * kb + J] != 0;
            uint32_t c = x && y ? MI_KEPT
                         : (!x && !y) ? (J > I + pb ? MI_FUTURE : MI_DROPPED)
                                      : MI_FAULT;
            fill_block(out, px, I, J, c);
        }
    for (int64_t i = 0; diffs && i < diffs->n_diff; i++) {
        const check_mask_diff *d = &diffs->diffs[i];
        if (d->head == head && d->kind == CHECK_TIE && d->qblock < qb &&
            d->kblock < kb)
            fill_block(out, px, d->qblock, d->kblock, MI_TIE);
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
