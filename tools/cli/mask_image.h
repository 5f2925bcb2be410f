/*
 * mask_image.h - pictures of block masks, of the differences between two
 * masks, and of block logits, as RGB pixels (one square of px x px pixels
 * per key block; query blocks down, key blocks across), and the figure
 * `stem mask` writes around such a grid: a title, block-index axes with
 * ticks and labels (a built-in 5 x 7 bitmap font), a frame, thin lines
 * between large blocks, and a legend of the colours.
 */
#ifndef STEM_CLI_MASK_IMAGE_H
#define STEM_CLI_MASK_IMAGE_H

#include <stdint.h>

/* The colours, RGB. */
#define MI_KEPT 0x202020u       /* kept block (both, in a diff) */
#define MI_DROPPED 0xEBEBEBu    /* dropped block (neither, in a diff) */
#define MI_FUTURE 0x9A9A9Au     /* beyond the causal diagonal */
#define MI_TIE 0xFFA500u        /* differs, a tie (orange) */
#define MI_FAULT 0xDC0000u      /* differs, a fault (red) */
#define MI_NEGINF 0x9A9A9Au     /* -inf logit (as beyond the diagonal) */
#define MI_BAR_HEIGHT 16        /* colour scale under a heat map, pixels */
#define MI_AXIS 0x303030u       /* frame, ticks, text of a figure */
#define MI_GRID 0xFFFFFFu       /* lines between blocks of a figure */

#define MI_MIN_BLOCK_PX 6       /* a block is never smaller than this ... */
#define MI_MAX_GRID_PX 16384    /* ... unless the grid would be wider */
#define MI_GRID_LINE_PX 8       /* lines between blocks from this size on */

/* An RGB picture; rgb is malloc'd (w * h * 3 bytes), free with mi_free. */
typedef struct mi_image {
    int w, h;
    uint8_t *rgb;
} mi_image;

/* Pixels per block for kb key blocks: 512 / kb, at least MI_MIN_BLOCK_PX
 * (so that one block stands out), at most what keeps the grid within
 * MI_MAX_GRID_PX pixels (and at least 1). */
int mi_block_px(int64_t kb);

/*
 * Picture of one head's mask [qb, kb] (nonzero = kept); query block I sits
 * at key block I + pb, blocks beyond it get MI_FUTURE.  0, or -1 on bad
 * sizes (the picture must fit 65535 pixels a side) or no memory.
 */
int mi_mask(const uint8_t *mask, int64_t qb, int64_t kb, int64_t pb,
            mi_image *out);

/*
 * Differences of one head: mask a against reference b ([qb, kb] each);
 * a block where they differ is MI_TIE where tie[I * kb + J] is non-zero
 * (the checker's classification; tie may be NULL: no ties), else
 * MI_FAULT.  Same return rule.
 */
int mi_diff(const uint8_t *a, const uint8_t *b, int64_t qb, int64_t kb,
            int64_t pb, const uint8_t *tie, mi_image *out);

/*
 * Heat map of one head's logits [qb, kb]: finite values on a blue-to-yellow
 * ramp from their minimum (*lo) to maximum (*hi), -inf in MI_NEGINF, and a
 * colour bar of MI_BAR_HEIGHT pixel rows underneath (minimum on the left).
 */
int mi_logits(const float *logits, int64_t qb, int64_t kb, mi_image *out,
              float *lo, float *hi);

/* The ramp colour of x in [0, 1]. */
uint32_t mi_ramp(double x);

void mi_free(mi_image *img);

/* What a figure shows (its legend). */
typedef enum mi_kind {
    MI_KIND_MASK = 0,           /* kept, dropped, above diagonal */
    MI_KIND_DIFF,               /* + tie, fault; both also marked on the axes */
    MI_KIND_LOGITS              /* -inf, and the colour bar's ends */
} mi_kind;

/* Where the grid landed in a figure: block (I, J) covers pixels
 * x0 + J*px .. x0 + J*px + px - 1 and likewise down from y0; the legend
 * starts at row legend_y. */
typedef struct mi_frame {
    int x0, y0, px, legend_y;
} mi_frame;

/*
 * The figure around grid (as made by mi_mask, mi_diff or mi_logits for qb x
 * kb blocks of px pixels; extra rows under the blocks, such as the colour
 * bar, are copied too): white margins, title (may be NULL) on top, key
 * block indices along the top and query block indices down the left (a
 * tick every 1, 2, 5, 10, 20, ... blocks, as dense as the labels allow), a
 * frame, thin MI_GRID lines between blocks of MI_GRID_LINE_PX pixels or
 * more, the axes' meaning, and the legend of kind (for MI_KIND_LOGITS also
 * lo and hi under the bar's ends).  The grid's own pixels are copied
 * unchanged apart from those lines (which take the first pixel row and
 * column of a block).  *frame (may be NULL) says where the grid is.  0, or
 * -1 on bad arguments, a picture over 65535 pixels a side, or no memory.
 */
int mi_figure(const mi_image *grid, int64_t qb, int64_t kb, int px,
              mi_kind kind, const char *title, double lo, double hi,
              mi_image *out, mi_frame *frame);

/* Width in pixels of s in the figures' font (upper case; glyphs without a
 * drawing show as '?'), and s drawn with its top-left corner at (x, y) in
 * colour c, clipped to img. */
int mi_text_width(const char *s);
void mi_draw_text(mi_image *img, int x, int y, const char *s, uint32_t c);

#endif /* STEM_CLI_MASK_IMAGE_H */
