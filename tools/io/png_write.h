/*
 * png_write.h - writing an 8-bit RGB picture as a PNG file through libpng.
 */
#ifndef STEM_PNG_WRITE_H
#define STEM_PNG_WRITE_H

#include <stddef.h>
#include <stdint.h>

/*
 * Encode the w x h picture rgb (3 bytes per pixel, rows top to bottom,
 * caller-owned, not modified) as PNG and write it to path through a
 * temporary file renamed into place: a failed write leaves an existing
 * file alone.  w, h in 1..65535.  0, or -1 with a reason in err.
 */
int png_write_rgb(const char *path, int w, int h, const uint8_t *rgb,
                  char *err, size_t errlen);

#endif /* STEM_PNG_WRITE_H */
