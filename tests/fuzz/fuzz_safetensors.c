/*
 * fuzz_safetensors.c - libFuzzer harness of the safetensors reader: the
 * input is a whole file (8-byte header length, JSON header, data).  A
 * successful read must hand out tensors whose bytes lie inside what was
 * read and whose sizes agree with dtype and shape.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "tensorfile.h"

volatile unsigned fuzz_sink;

/* libFuzzer entry point: one input, always returns 0. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_put_file("in.safetensors", data, size);
    if (!path)
        abort();
    tf_file f;
    char err[256];
    memset(&f, 0xA5, sizeof(f));        /* must not be read on failure */
    if (tf_read_safetensors(path, &f, err, sizeof(err)) != 0) {
        if (strlen(err) == 0 || strlen(err) >= sizeof(err))
            abort();                    /* every failure has a reason */
        return 0;
    }
    for (int i = 0; i < f.count; i++) {
        const tf_tensor *t = &f.tensors[i];
        size_t nb;
        if (tf_shape_bytes(t->dtype, t->ndim, t->shape, &nb, err,
                           sizeof(err)) != 0 || nb != t->nbytes)
            abort();
        if (t->nbytes > size)
            abort();
        if (tf_find(&f, t->name) != t)
            abort();
        fuzz_sink ^= fuzz_touch(t->data, t->nbytes);
    }
    for (int i = 0; i < f.meta_count; i++)
        if (tf_meta(&f, f.meta_keys[i]) == NULL)
            abort();
    tf_free(&f);
    return 0;
}
