/*
 * fuzz_npy.c - libFuzzer harness of the .npy reader: the input is a whole
 * .npy file (magic, version, header length, Python-dict header, data).
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
    const char *path = fuzz_put_file("x.npy", data, size);
    if (!path)
        abort();
    tf_file f;
    char err[256];
    memset(&f, 0xA5, sizeof(f));
    if (tf_read_npy(path, &f, err, sizeof(err)) != 0) {
        if (strlen(err) == 0)
            abort();
        return 0;
    }
    if (f.count != 1 || strcmp(f.tensors[0].name, "x") != 0)
        abort();
    const tf_tensor *t = &f.tensors[0];
    size_t nb;
    if (tf_shape_bytes(t->dtype, t->ndim, t->shape, &nb, err, sizeof(err)) !=
            0 || nb != t->nbytes || t->nbytes > size)
        abort();
    fuzz_sink ^= fuzz_touch(t->data, t->nbytes);
    tf_free(&f);
    return 0;
}
