/*
 * mask_image.h - pictures of block masks, of the differences between two
 * masks, and of block logits, as RGB pixels (one square of px x px pixels
 * per key block; query blocks down, key blocks across).
 */
#ifndef STEM_CLI_MASK_IMAGE_H
#define STEM_CLI_MASK_IMAGE_H

#include <stdint.h>

#include "check.h"

/* The colours, RGB. */
#define MI_KEPT 0x202020u       /* kept block (both, in a diff) */
#define MI_DROPPED 0xEBEBEBu    /* dropped block (neither, in a diff) */
#define MI_FUTURE 0x9A9A9Au     /* beyond the causal diagonal */
#define MI_TIE 0xFFA500u        /* differs, a tie (orange) */
#define MI_FAULT 0xDC0000u      /* differs, a fault (red) */
#define MI_NEGINF 0x9A9A9Au     /* -inf logit (as beyond the diagonal) */
#define MI_BAR_HEIGHT 16        /* colour scale under a heat map, pixels */

/* An RGB picture; rgb is malloc'd (w * h * 3 bytes), free with mi_free. */
typedef struct mi_image {
    int w, h;
    uint8_t *rgb;
} mi_image;

/* Pixels per block for kb key blocks: max(1, 512 / kb). */
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
 * blocks where they differ take MI_TIE or MI_FAULT from the classified
 * diffs (check_mask of head `head`); a differing block missing from diffs
 * is drawn MI_FAULT.  Same return rule.
 */
int mi_diff(const uint8_t *a, const uint8_t *b, int64_t qb, int64_t kb,
            int64_t pb, const check_mask_result *diffs, int head,
            mi_image *out);

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

#endif /* STEM_CLI_MASK_IMAGE_H */
