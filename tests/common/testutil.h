/*
 * testutil.h - shared helpers of the test programs: a portable seeded random
 * source, tensors in either layout and any element type, error measures, the
 * profile presets written from docs/ALGORITHM.md section 4, and a loader of
 * the GPU conformance cases.
 *
 * Nothing here calls into the library except through its public types; the
 * presets and the element conversions are written independently so that the
 * tests can check the library's own.
 */
#ifndef STEM_TESTUTIL_H
#define STEM_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "stem.h"

/* ------------------------------------------------------------------ random */

/* splitmix64 state; the same seed gives the same stream on every machine. */
typedef struct tu_rng {
    uint64_t state;
} tu_rng;

void tu_rng_seed(tu_rng *r, uint64_t seed);
uint64_t tu_rng_next(tu_rng *r);
/* Uniform in [0, 1) with 53 random bits. */
double tu_rng_uniform(tu_rng *r);
/* Uniform integer in [lo, hi] (inclusive); lo <= hi. */
int64_t tu_rng_int(tu_rng *r, int64_t lo, int64_t hi);
/* Standard normal through Box-Muller (uses two uniforms per call). */
double tu_rng_normal(tu_rng *r);

/* ------------------------------------------------------- element conversion */

/* Round-to-nearest-even conversions, written independently of the library
 * and of tools/io. */
uint16_t tu_f64_to_bf16(double x);
double tu_bf16_to_f64(uint16_t h);
uint16_t tu_f64_to_f16(double x);
double tu_f16_to_f64(uint16_t h);

/* ----------------------------------------------------------------- tensors */

typedef enum tu_layout {
    TU_HND = 0,     /* contiguous [heads, tokens, dim] */
    TU_NHD,         /* contiguous [tokens, heads, dim] */
    TU_PADDED,      /* [heads, tokens, dim] with gaps between rows and heads */
    TU_LAYOUT_COUNT
} tu_layout;

/*
 * A tensor the test owns: t is a stem_tensor view over buf (nbytes bytes).
 * Free with tu_tensor_free.
 */
typedef struct tu_tensor {
    stem_tensor t;
    void *buf;
    size_t nbytes;
} tu_tensor;

/* Allocate a zeroed tensor; aborts the test program on allocation failure
 * (a test cannot continue without its inputs). */
tu_tensor tu_tensor_new(stem_dtype dtype, tu_layout layout, int64_t heads,
                        int64_t tokens, int64_t dim);
void tu_tensor_free(tu_tensor *t);

/* Element (h, tok, c) of any view, read exactly as a double. */
double tu_get(const stem_tensor *t, int64_t h, int64_t tok, int64_t c);
/* Store x rounded to the view's dtype (nearest even). */
void tu_set(stem_tensor *t, int64_t h, int64_t tok, int64_t c, double x);
/* Fill with scale * N(0,1) from a generator seeded with seed. */
void tu_fill_normal(stem_tensor *t, uint64_t seed, double scale);

/* --------------------------------------------------------------- measures */

/* ||a - b||_2 / ||b||_2 over n entries (0 when both are zero). */
double tu_rel_l2(const double *a, const double *b, size_t n);
/* max |a - b| over n entries. */
double tu_max_abs(const double *a, const double *b, size_t n);
/* Copy an F32 or F64 [heads, tokens, dim] view into a dense double array. */
void tu_view_to_f64(const stem_tensor *t, double *out);

/* Largest ||x_t||_2 over every head and token of a view. */
double tu_max_row_norm(const stem_tensor *t);

/*
 * The scale of a block logit: the Cauchy-Schwarz bound of one summand of the
 * block mean, s * max||q|| * max||k|| * qk_factor, plus the largest value
 * term (weight * max(|ln max||v|||, 14), 14 bounding a z-score of ln norms
 * of these sizes).  A float32 block logit is within ~1e3 * 2^-24 of it.
 */
double tu_logit_scale(const stem_params *p, const stem_tensor *q,
                      const stem_tensor *k, const stem_tensor *v);

/* ------------------------------------------------------------------ params */

/* The preset of a profile, filled from the table of docs/ALGORITHM.md
 * section 4. */
stem_params tu_preset(stem_profile profile);

/* ------------------------------------------------------------- conformance */

/* One GPU conformance case (tests/data/conformance/NAME.*.safetensors). */
typedef struct tu_case {
    char name[16];
    int64_t hq, hkv, n, d, qb, kb;
    uint16_t *q, *k, *v;        /* BF16 [hq|hkv, n, d] */
    float *logits;              /* [hq, qb, kb] */
    uint8_t *mask;              /* [hq, qb, kb] */
    uint16_t *out;              /* BF16 [hq, n, d] */
    double alpha, keep_ratio;
    int block, stride, sinks, window;
    double norm, lambda;
    int fp16;                   /* 1: GPU dtype float16, 0: bfloat16 */
} tu_case;

/* Directory of the test data: $STEM_TEST_DATA or "tests/data". */
const char *tu_data_dir(void);
/* Load a case through tools/io/tensorfile; 0 on success, -1 with a message
 * in err.  Release with tu_case_free. */
int tu_case_load(const char *name, tu_case *c, char *err, size_t errlen);
void tu_case_free(tu_case *c);

#endif /* STEM_TESTUTIL_H */
