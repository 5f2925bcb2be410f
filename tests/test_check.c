/*
 * test_check.c - the comparison logic of `stem check` (tools/cli/check.c)
 * and the pictures of `stem mask` (tools/cli/mask_image.c, written through
 * tools/io/png_write.c and decoded back with libpng).
 *
 * The test programs link tools/io and the library but not the CLI objects,
 * so the two CLI modules are compiled into this program directly.
 */
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "check.h"
#include "mask_image.h"
#include "png_write.h"
#include "tensorfile.h"
#include "common/testutil.h"

/* ---------------------------------------------------------------- logits */

static void test_logits_pattern_and_max(void **state)
{
    (void)state;
    float ref[2 * 2 * 3] = {1, -INFINITY, -INFINITY, 2, 3, -INFINITY,
                            0, -INFINITY, -INFINITY, 5, 6, -INFINITY};
    float gpu[12];
    memcpy(gpu, ref, sizeof(ref));
    check_logits_result r;
    assert_int_equal(check_logits(ref, gpu, 2, 2, 3, &r), 0);
    assert_int_equal(r.pattern_mismatch, 0);
    assert_true(r.max_abs == 0.0);
    assert_int_equal(r.finite, 6);
    gpu[10] = 6.25f;            /* (1, 1, 1) */
    gpu[2] = 0.0f;              /* -inf on one side: (0, 0, 2) */
    assert_int_equal(check_logits(ref, gpu, 2, 2, 3, &r), 0);
    assert_int_equal(r.pattern_mismatch, 1);
    assert_int_equal(r.first_mismatch[2], 2);
    assert_true(fabs(r.max_abs - 0.25) < 1e-12);
    assert_int_equal(r.max_at[0], 1);
    assert_int_equal(r.max_at[1], 1);
    assert_int_equal(r.max_at[2], 1);
    gpu[0] = NAN;
    assert_int_equal(check_logits(ref, gpu, 2, 2, 3, &r), 0);
    assert_int_equal(r.nan_gpu, 1);
    assert_int_equal(check_logits(NULL, gpu, 2, 2, 3, &r), -1);
}

/* ------------------------------------------------------------------ mask */

/* One head, qb = kb = 16, pb = 0; row I's logits: block J has 10 - J,
 * sinks 2, window 2, budget 3 everywhere. */
#define KB 16
static void make_row_case(float *lg, uint8_t *ref, int32_t *budget)
{
    for (int I = 0; I < KB; I++)
        for (int J = 0; J < KB; J++) {
            lg[I * KB + J] = J <= I ? 10.0f - (float)J : -INFINITY;
            ref[I * KB + J] = 0;
        }
    for (int p = 0; p < KB; p++)
        budget[p] = 3;
    for (int I = 0; I < KB; I++) {
        float thr = check_row_threshold(lg + I * KB, I, 3);
        for (int J = 0; J <= I; J++)
            ref[I * KB + J] = lg[I * KB + J] >= thr || J < 2 || J > I - 2;
    }
}

static void test_row_threshold(void **state)
{
    (void)state;
    float row[6] = {3, 1, 3, -INFINITY, 2, 0};
    assert_true(check_row_threshold(row, 5, 1) == 3.0f);
    assert_true(check_row_threshold(row, 5, 2) == 3.0f);
    assert_true(check_row_threshold(row, 5, 3) == 2.0f);
    /* budget covering every finite block: no threshold */
    assert_true(check_row_threshold(row, 5, 5) == -INFINITY);
    assert_true(check_row_threshold(row, 5, 0) == -INFINITY);
}

static void test_mask_classification(void **state)
{
    (void)state;
    float lg[KB * KB];
    uint8_t ref[KB * KB], gpu[KB * KB];
    int32_t budget[KB];
    make_row_case(lg, ref, budget);
    check_mask_geom g = {1, KB, KB, 0, 2, 2, 1};
    check_mask_result r;
    memcpy(gpu, ref, sizeof(ref));
    assert_int_equal(check_mask(&g, lg, budget, KB, ref, gpu, 0.5, &r), 0);
    assert_int_equal(r.n_diff, 0);
    assert_int_equal(r.gpu_selected, r.ref_selected);
    check_mask_result_free(&r);

    /* Row 15: top-3 are 0, 1, 2 (logits 10, 9, 8); threshold 8.
     * Dropping block 2 (gap 0) and keeping 3 (gap -1): ties at tau 1. */
    lg[15 * KB + 3] = 7.5f;
    gpu[15 * KB + 2] = 0;
    gpu[15 * KB + 3] = 1;
    gpu[15 * KB + 7] = 1;       /* gap 3 - 8 = -5: a fault */
    gpu[15 * KB + 0] = 0;       /* sink */
    gpu[12 * KB + 11] = 0;      /* window of row 12 */
    gpu[3 * KB + 5] = 1;        /* beyond the diagonal of row 3 */
    assert_int_equal(check_mask(&g, lg, budget, KB, ref, gpu, 1.0, &r), 0);
    assert_int_equal(r.n_diff, 6);
    assert_int_equal(r.n_tie, 2);
    assert_int_equal(r.n_fault, 4);
    assert_int_equal(r.rows_without_diagonal, 0);
    /* faults first, ties last */
    for (int i = 0; i < 4; i++)
        assert_int_not_equal(r.diffs[i].kind, CHECK_TIE);
    int seen = 0;
    for (int64_t i = 0; i < r.n_diff; i++) {
        const check_mask_diff *d = &r.diffs[i];
        if (d->qblock == 15 && d->kblock == 2) {
            assert_int_equal(d->kind, CHECK_TIE);
            assert_int_equal(d->gpu_kept, 0);
            assert_true(d->gap == 0.0);
            seen |= 1;
        } else if (d->qblock == 15 && d->kblock == 3) {
            assert_int_equal(d->kind, CHECK_TIE);
            assert_true(fabs(d->gap + 0.5) < 1e-6);
            seen |= 2;
        } else if (d->qblock == 15 && d->kblock == 7) {
            assert_int_equal(d->kind, CHECK_FAULT_GAP);
            seen |= 4;
        } else if (d->kblock == 0) {
            assert_int_equal(d->kind, CHECK_FAULT_SINK);
            seen |= 8;
        } else if (d->qblock == 12) {
            assert_int_equal(d->kind, CHECK_FAULT_WINDOW);
            seen |= 16;
        } else if (d->qblock == 3) {
            assert_int_equal(d->kind, CHECK_FAULT_FUTURE);
            seen |= 32;
        }
    }
    assert_int_equal(seen, 63);
    assert_true(fabs(r.max_tie_gap - 0.5) < 1e-6);
    check_mask_result_free(&r);

    /* tau 0: the tie at gap -0.5 becomes a fault, the one at 0 stays */
    assert_int_equal(check_mask(&g, lg, budget, KB, ref, gpu, 0.0, &r), 0);
    assert_int_equal(r.n_tie, 1);
    assert_int_equal(r.n_fault, 5);
    check_mask_result_free(&r);
    assert_int_equal(check_mask(&g, lg, budget, KB, ref, gpu, -1.0, &r), -1);
}

/* ---------------------------------------------------------------- output */

static void test_output_dense_detection(void **state)
{
    (void)state;
    const int64_t hq = 2, lq = 512, d = 32, n = hq * lq * d;
    float *m = malloc((size_t)n * 4), *dn = malloc((size_t)n * 4);
    float *g = malloc((size_t)n * 4);
    assert_non_null(m);
    assert_non_null(dn);
    assert_non_null(g);
    tu_rng rng;
    tu_rng_seed(&rng, 11);
    for (int64_t i = 0; i < n; i++) {
        m[i] = (float)tu_rng_normal(&rng);
        /* dense differs from masked by 1% of the signal */
        dn[i] = m[i] + 0.01f * (float)tu_rng_normal(&rng);
    }
    /* head 0 follows the mask, head 1 is dense; both carry 1.6% noise,
     * more than the masked/dense separation */
    for (int64_t i = 0; i < n; i++) {
        float base = i < lq * d ? m[i] : dn[i];
        g[i] = base + 0.016f * (float)tu_rng_normal(&rng);
    }
    check_out_result r;
    assert_int_equal(check_output(g, m, dn, hq, lq, d, 4, &r), 0);
    assert_true(r.head_rel_l2[0] < 0.02);
    assert_true(r.head_rel_l2[1] < 0.03);   /* a tolerance alone passes it */
    assert_true(r.dense[0].decidable);
    assert_true(r.dense[1].decidable);
    assert_false(r.dense[0].dense);
    assert_true(r.dense[1].dense);
    assert_true(fabs(r.dense[0].t) < 0.2);
    assert_true(fabs(r.dense[1].t - 1.0) < 0.2);
    assert_true(r.any_dense);
    assert_int_equal(r.nworst, 4);
    assert_true(r.worst[0].l2 >= r.worst[1].l2);
    check_out_result_free(&r);

    /* identical masked and dense references: undecidable, not a fault */
    assert_int_equal(check_output(g, m, m, hq, lq, d, 0, &r), 0);
    assert_false(r.dense[0].decidable);
    assert_false(r.any_dense);
    check_out_result_free(&r);

    /* a NaN makes the error infinite */
    g[5] = NAN;
    assert_int_equal(check_output(g, m, NULL, hq, lq, d, 2, &r), 0);
    assert_int_equal(r.nonfinite, 1);
    assert_true(isinf(r.rel_l2));
    assert_null(r.dense);
    check_out_result_free(&r);
    free(m), free(dn), free(g);
}

static void test_lse(void **state)
{
    (void)state;
    float ref[8] = {1, 2, 3, 4, 5, 6, 7, 8}, gpu[8];
    memcpy(gpu, ref, sizeof(ref));
    gpu[6] += 0.25f;
    check_lse_result r;
    assert_int_equal(check_lse(gpu, ref, 2, 4, 3, &r), 0);
    assert_true(fabs(r.max_abs - 0.25) < 1e-6);
    assert_int_equal(r.max_at[0], 1);
    assert_int_equal(r.max_at[1], 2);
    assert_false(r.base2_hint);
    check_lse_result_free(&r);
    for (int i = 0; i < 8; i++)
        gpu[i] = (float)(ref[i] / M_LN2);
    assert_int_equal(check_lse(gpu, ref, 2, 4, 0, &r), 0);
    assert_true(r.base2_hint);
    check_lse_result_free(&r);
}

static void test_tolerances(void **state)
{
    (void)state;
    check_tol t;
    assert_int_equal(check_tol_for_dtype("bf16", &t), 0);
    assert_true(t.tau == 0.05 && t.out_rel_l2 == 3e-2);
    assert_int_equal(check_tol_for_dtype("torch.float16", &t), 0);
    assert_true(t.tau == 0.01 && t.out_rel_l2 == 5e-3);
    assert_int_equal(check_tol_for_dtype("fp32", &t), 0);
    assert_true(t.tau == 1e-4 && t.out_rel_l2 == 1e-4);
    assert_int_equal(check_tol_for_dtype("int8", &t), -1);
    assert_null(check_dtype_canonical(NULL));
}

/* ------------------------------------------------------------------- PNG */

/* Decode path with libpng's simplified API into RGB; *w, *h set. */
static uint8_t *read_png(const char *path, int *w, int *h)
{
    png_image img;
    memset(&img, 0, sizeof(img));
    img.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&img, path))
        return NULL;
    img.format = PNG_FORMAT_RGB;
    uint8_t *buf = malloc(PNG_IMAGE_SIZE(img));
    if (!buf || !png_image_finish_read(&img, NULL, buf, 0, NULL)) {
        free(buf);
        png_image_free(&img);
        return NULL;
    }
    *w = (int)img.width;
    *h = (int)img.height;
    return buf;
}

static uint32_t pixel(const uint8_t *rgb, int w, int x, int y)
{
    const uint8_t *p = rgb + ((size_t)y * (size_t)w + (size_t)x) * 3;
    return ((uint32_t)p[0] << 16) | ((uint32_t)p[1] << 8) | p[2];
}

/* Centre pixel of block (I, J). */
static uint32_t block_colour(const uint8_t *rgb, int w, int px, int64_t I,
                             int64_t J)
{
    return pixel(rgb, w, (int)(J * px + px / 2), (int)(I * px + px / 2));
}

static void tmp_png(char *path, size_t cap)
{
    snprintf(path, cap, "/tmp/stem_test_check_%ld.png", (long)getpid());
}

static void test_png_mask_and_diff(void **state)
{
    (void)state;
    float lg[KB * KB];
    uint8_t ref[KB * KB], gpu[KB * KB];
    int32_t budget[KB];
    make_row_case(lg, ref, budget);
    memcpy(gpu, ref, sizeof(ref));
    lg[15 * KB + 3] = 7.5f;
    gpu[15 * KB + 2] = 0;       /* tie */
    gpu[15 * KB + 3] = 1;       /* tie */
    gpu[15 * KB + 7] = 1;       /* fault */
    char path[128], err[256];
    tmp_png(path, sizeof(path));
    mi_image img;
    int w, h, px = mi_block_px(KB);
    assert_int_equal(px, 32);

    assert_int_equal(mi_mask(gpu, KB, KB, 0, &img), 0);
    assert_int_equal(png_write_rgb(path, img.w, img.h, img.rgb, err,
                                   sizeof(err)), 0);
    mi_free(&img);
    uint8_t *rgb = read_png(path, &w, &h);
    assert_non_null(rgb);
    assert_int_equal(w, KB * 32);
    assert_int_equal(h, KB * 32);
    for (int I = 0; I < KB; I++)
        for (int J = 0; J < KB; J++) {
            uint32_t want = J > I ? MI_FUTURE
                            : gpu[I * KB + J] ? MI_KEPT
                                              : MI_DROPPED;
            assert_int_equal(block_colour(rgb, w, px, I, J), want);
        }
    free(rgb);

    check_mask_geom g = {1, KB, KB, 0, 2, 2, 1};
    check_mask_result r;
    assert_int_equal(check_mask(&g, lg, budget, KB, ref, gpu, 1.0, &r), 0);
    assert_int_equal(mi_diff(gpu, ref, KB, KB, 0, &r, 0, &img), 0);
    assert_int_equal(png_write_rgb(path, img.w, img.h, img.rgb, err,
                                   sizeof(err)), 0);
    mi_free(&img);
    check_mask_result_free(&r);
    rgb = read_png(path, &w, &h);
    assert_non_null(rgb);
    assert_int_equal(block_colour(rgb, w, px, 15, 2), MI_TIE);
    assert_int_equal(block_colour(rgb, w, px, 15, 3), MI_TIE);
    assert_int_equal(block_colour(rgb, w, px, 15, 7), MI_FAULT);
    assert_int_equal(block_colour(rgb, w, px, 15, 0), MI_KEPT);
    assert_int_equal(block_colour(rgb, w, px, 15, 9), MI_DROPPED);
    assert_int_equal(block_colour(rgb, w, px, 3, 9), MI_FUTURE);
    free(rgb);
    unlink(path);
}

static void test_png_logits(void **state)
{
    (void)state;
    float lg[3 * 5];
    for (int I = 0; I < 3; I++)
        for (int J = 0; J < 5; J++)
            lg[I * 5 + J] = J <= I + 2 ? (float)(I * 5 + J) : -INFINITY;
    mi_image img;
    float lo, hi;
    char path[128], err[256];
    tmp_png(path, sizeof(path));
    assert_int_equal(mi_logits(lg, 3, 5, &img, &lo, &hi), 0);
    assert_true(lo == 0.0f && hi == 14.0f);
    assert_int_equal(png_write_rgb(path, img.w, img.h, img.rgb, err,
                                   sizeof(err)), 0);
    mi_free(&img);
    int w, h, px = mi_block_px(5);
    uint8_t *rgb = read_png(path, &w, &h);
    assert_non_null(rgb);
    assert_int_equal(w, 5 * px);
    assert_int_equal(h, 3 * px + MI_BAR_HEIGHT);
    assert_int_equal(block_colour(rgb, w, px, 0, 0), mi_ramp(0.0));
    assert_int_equal(block_colour(rgb, w, px, 2, 4), mi_ramp(1.0));
    assert_int_equal(block_colour(rgb, w, px, 1, 2), mi_ramp(7.0 / 14.0));
    assert_int_equal(block_colour(rgb, w, px, 0, 3), MI_NEGINF);
    assert_int_not_equal(mi_ramp(0.0), mi_ramp(1.0));
    /* the colour bar runs from the low to the high end */
    assert_int_equal(pixel(rgb, w, 0, h - 1), mi_ramp(0.0));
    assert_int_equal(pixel(rgb, w, w - 1, h - 1), mi_ramp(1.0));
    free(rgb);
    unlink(path);
}

/* `stem mask` on a conformance case, decoded with libpng: the picture has
 * one square per block and each square shows the file's mask. */
static void test_png_cli_conformance(void **state)
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
    tmp_png(path, sizeof(path));
    snprintf(cmd, sizeof(cmd), "%s mask %s --head 2 -o %s >/dev/null", bin,
             in, path);
    assert_int_equal(system(cmd), 0);
    tf_file f = {0};
    assert_int_equal(tf_read(in, &f, err, sizeof(err)), 0);
    const tf_tensor *m = tf_find(&f, "mask");
    assert_non_null(m);
    int64_t hq = m->shape[0], qb = m->shape[1], kb = m->shape[2];
    int w, h, px = mi_block_px(kb);
    uint8_t *rgb = read_png(path, &w, &h);
    assert_non_null(rgb);
    assert_int_equal(w, kb * px);
    assert_int_equal(h, qb * px);
    const uint8_t *mk = (const uint8_t *)m->data + 2 * qb * kb;
    assert_true(hq > 2);
    for (int64_t I = 0; I < qb; I++)
        for (int64_t J = 0; J < kb; J++) {
            uint32_t want = J > I + (kb - qb) ? MI_FUTURE
                            : mk[I * kb + J]  ? MI_KEPT
                                              : MI_DROPPED;
            assert_int_equal(block_colour(rgb, w, px, I, J), want);
        }
    free(rgb);
    tf_free(&f);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_logits_pattern_and_max),
        cmocka_unit_test(test_row_threshold),
        cmocka_unit_test(test_mask_classification),
        cmocka_unit_test(test_output_dense_detection),
        cmocka_unit_test(test_lse),
        cmocka_unit_test(test_tolerances),
        cmocka_unit_test(test_png_mask_and_diff),
        cmocka_unit_test(test_png_logits),
        cmocka_unit_test(test_png_cli_conformance),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
