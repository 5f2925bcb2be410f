/*
 * fuzz_prefill.c - libFuzzer harness of the library itself: the input
 * picks the parameters (profile, block, stride, sinks, window, rules,
 * ratios, float64 mode), small shapes (GQA, chunked offsets, d 1..40),
 * element types and layouts, and the data (normal values of scale up to
 * 1e3, with special values planted at chosen places: NaN, Inf, subnormals,
 * negative zero, magnitudes beyond STEM_MAX_ABS_INPUT).  Every call must answer a known status; on success:
 *   - the same call with 1 and 3 threads gives the same bytes;
 *   - every output is finite;
 *   - the mask keeps every row's diagonal block and nothing above it;
 *   - stem_block_logits + stem_select + stem_attention_sparse give the
 *     bytes of stem_prefill;
 * and on an error, the outputs are untouched.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "stem.h"

/* Largest Hq * Lq * Lk * d the harness runs (about 0.5 s under ASan). */
#define FUZZ_MAX_WORK 4.0e6

typedef struct src {
    const uint8_t *p;
    size_t n, at;
} src;

static unsigned take(src *s, unsigned mod)
{
    unsigned v = s->at < s->n ? s->p[s->at] : 0;
    s->at++;
    return mod ? v % mod : v;
}

static uint64_t mix(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static size_t esize(stem_dtype dt)
{
    return stem_dtype_size(dt);
}

/* Store x as dtype dt at p (truncating conversions are fine here). */
static void put(void *p, stem_dtype dt, double x)
{
    float f = (float)x;
    uint32_t u;
    memcpy(&u, &f, 4);
    switch (dt) {
    case STEM_F32: memcpy(p, &f, 4); break;
    case STEM_F64: memcpy(p, &x, 8); break;
    case STEM_BF16: { uint16_t h = (uint16_t)(u >> 16); memcpy(p, &h, 2); break; }
    default: {      /* F16 from a float in range: keep it simple */
        uint16_t h;
        float a = fabsf(f);
        if (isnan(f))
            h = 0x7e00;
        else if (isinf(f))
            h = 0x7c00;
        else if (a < 6.1e-5f)
            h = 0;
        else if (a > 65000.0f)
            h = 0x7bff;
        else {
            int e;
            float m = frexpf(a, &e);            /* a = m * 2^e, m in [0.5, 1) */
            h = (uint16_t)(((e - 1 + 15) << 10) | ((int)((m * 2 - 1) * 1024) & 0x3ff));
        }
        if (f < 0)
            h |= 0x8000;
        memcpy(p, &h, 2);
        break;
    }
    }
}

typedef struct view {
    stem_tensor t;
    void *buf;
} view;

static int make(view *v, src *s, uint64_t *rng, int64_t heads, int64_t tokens,
                int64_t d, double scale)
{
    static const stem_dtype dts[4] = {STEM_F32, STEM_BF16, STEM_F16, STEM_F64};
    stem_dtype dt = dts[take(s, 4)];
    int nhd = take(s, 2);
    size_t n = (size_t)(heads * tokens * d);
    v->buf = malloc(n * esize(dt));
    if (!v->buf)
        return -1;
    v->t = nhd ? stem_tensor_nhd(v->buf, dt, heads, tokens, d)
               : stem_tensor_hnd(v->buf, dt, heads, tokens, d);
    for (size_t i = 0; i < n; i++) {
        double a = (double)(mix(rng) >> 11) * 0x1p-53, b = (double)(mix(rng) >> 11) * 0x1p-53;
        double g = sqrt(-2.0 * log(a + 1e-300)) * cos(6.283185307179586 * b);
        put((char *)v->buf + i * esize(dt), dt, g * scale);
    }
    /* planted special values: non-finite, subnormal, -0, and magnitudes
     * just under and above STEM_MAX_ABS_INPUT (F32 / F64 only: F16 and
     * BF16 here cannot hold them) */
    static const double special[9] = {NAN, INFINITY, -INFINITY, 0x1p-149, -0.0,
                                      0x1p-130, 1.0, -1e30, 1e300};
    for (unsigned k = take(s, 3); k > 0; k--) {
        size_t at = ((size_t)take(s, 0) << 8 | take(s, 0)) % n;
        double x = special[take(s, 9)];
        if (fabs(x) > 1e4 && (dt == STEM_F16 || dt == STEM_BF16))
            x = 1.0;
        put((char *)v->buf + at * esize(dt), dt, x);
    }
    return 0;
}

static int all_finite(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return 0;
    return 1;
}

/* libFuzzer entry point: one problem, always returns 0. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    src s = {data, size, 0};
    stem_params p;
    if (stem_params_init(&p, (stem_profile)take(&s, 3)) != STEM_OK)
        abort();
    static const int blocks[6] = {4, 8, 16, 32, 64, 128};
    p.block = blocks[take(&s, 6)];
    int strides[8], ns = 0;
    for (int st = 1; st <= p.block && ns < 8; st *= 2)
        strides[ns++] = st;
    p.stride = strides[take(&s, (unsigned)ns)];
    p.sinks = (int)take(&s, 6);
    p.window = (int)take(&s, 6);
    p.keep_diagonal = (int)take(&s, 2);
    p.ties_keep_all = (int)take(&s, 2);
    p.use_f64 = (int)take(&s, 2);
    p.qk_scaled = (int)take(&s, 2);
    p.value_rule = (stem_value_rule)take(&s, 4);
    p.budget_rule = (stem_budget_rule)take(&s, 3);
    p.alpha = take(&s, 0) / 255.0;
    p.keep_ratio = take(&s, 0) / 255.0;
    p.paper_min_k0 = (int)take(&s, 8);
    p.prompt_blocks = take(&s, 4) ? 0 : (int64_t)take(&s, 40);
    int64_t hkv = 1 + take(&s, 3), hq = hkv * (1 + take(&s, 3));
    int64_t lk = 1 + (int64_t)take(&s, 0) + (int64_t)take(&s, 2) * 256;
    int64_t d = 1 + take(&s, 40);
    /* Keep one run well under libFuzzer's timeout on a slow machine under
     * ASan: the harness makes four attention passes (the float64 oracle
     * loads a key row per query row), so bound Hq * Lk * Lk * d. */
    while (lk > 1 && (double)hq * (double)lk * (double)lk * (double)d > FUZZ_MAX_WORK)
        lk = (lk + 1) / 2;
    int64_t lq = 1 + (int64_t)take(&s, (unsigned)lk);
    if (take(&s, 2))            /* often a chunk that starts on a block */
        lq = lk - (lk - lq) / p.block * p.block;
    double scale = pow(10.0, (double)take(&s, 7) - 3.0);       /* 1e-3 .. 1e3 */
    uint64_t rng = take(&s, 0) | (uint64_t)take(&s, 0) << 8;

    view q = {0}, k = {0}, v = {0};
    if (make(&q, &s, &rng, hq, lq, d, scale) || make(&k, &s, &rng, hkv, lk, d, scale) ||
        make(&v, &s, &rng, hkv, lk, d, scale))
        goto done;

    stem_dims dims;
    stem_status st = stem_dims_get(&p, &q.t, &k.t, &v.t, 0, &dims);
    if (st != STEM_OK)
        goto done;
    size_t no = (size_t)(hq * lq * d), nl = (size_t)(hq * lq);
    size_t cells = (size_t)(dims.hq * dims.qb * dims.kb);
    float *out[2], *lse[2], *lg[3];
    uint8_t *mk[3];
    out[0] = malloc(no * 4), out[1] = malloc(no * 4);
    lse[0] = malloc(nl * 4), lse[1] = malloc(nl * 4);
    lg[0] = malloc(cells * 4), lg[1] = malloc(cells * 4), lg[2] = malloc(cells * 4);
    mk[0] = malloc(cells), mk[1] = malloc(cells), mk[2] = malloc(cells);
    float *o3 = malloc(no * 4);
    if (!out[0] || !out[1] || !lse[0] || !lse[1] || !lg[0] || !lg[1] || !lg[2] ||
        !mk[0] || !mk[1] || !mk[2] || !o3)
        goto free_all;
    stem_status r[2];
    for (int i = 0; i < 2; i++) {
        p.threads = i == 0 ? 1 : 3;
        memset(out[i], 0x5C, no * 4);
        memset(lse[i], 0x5C, nl * 4);
        memset(lg[i], 0x5C, cells * 4);
        memset(mk[i], 0x5C, cells);
        stem_tensor to = stem_tensor_hnd(out[i], STEM_F32, hq, lq, d);
        r[i] = stem_prefill(&p, &q.t, &k.t, &v.t, &to, lse[i], lg[i], mk[i]);
        if ((unsigned)r[i] >= STEM_STATUS_COUNT)
            abort();
    }
    if (r[0] != r[1])
        abort();
    if (r[0] != STEM_OK) {
        for (size_t i = 0; i < no * 4; i++)
            if (((uint8_t *)out[0])[i] != 0x5C)
                abort();                        /* written on error */
        for (size_t i = 0; i < cells; i++)
            if (mk[0][i] != 0x5C || ((uint8_t *)lg[0])[i] != 0x5C)
                abort();
        if (r[0] != STEM_ERR_OFFSET && r[0] != STEM_ERR_NONFINITE &&
            r[0] != STEM_ERR_RANGE && r[0] != STEM_ERR_PARAM)
            abort();                            /* nothing else can fail here */
        goto free_all;
    }
    if (memcmp(out[0], out[1], no * 4) || memcmp(lse[0], lse[1], nl * 4) ||
        memcmp(lg[0], lg[1], cells * 4) || memcmp(mk[0], mk[1], cells))
        abort();                                /* thread count changed bytes */
    if (!all_finite(out[0], no) || !all_finite(lse[0], nl))
        abort();
    /* the diagonal block is certain only with keep_diagonal or a window;
     * without, stem_prefill may drop it, and stem_attention_sparse accepts
     * such a mask as long as each row keeps some causal block */
    int64_t pb = dims.offset / p.block;
    int sure_diag = p.keep_diagonal || p.window > 0;
    for (int64_t h = 0; h < hq; h++)
        for (int64_t I = 0; I < dims.qb; I++)
            for (int64_t J = 0; J < dims.kb; J++) {
                uint8_t m = mk[0][(h * dims.qb + I) * dims.kb + J];
                /* above the diagonal only the unclipped sinks of hpc-ops */
                int unread = J > I + pb && p.sinks_unclipped && J < p.sinks;
                if (m > 1 || (J > I + pb && m && !unread) ||
                    (J == I + pb && !m && sure_diag))
                    abort();
            }
    /* the stages one by one give the same bytes */
    p.threads = 2;
    stem_tensor t3 = stem_tensor_hnd(o3, STEM_F32, hq, lq, d);
    if (stem_block_logits(&p, &q.t, &k.t, &v.t, lg[2]) != STEM_OK ||
        stem_select(&p, &dims, lg[2], mk[2], NULL, NULL) != STEM_OK)
        abort();
    if (memcmp(lg[2], lg[0], cells * 4) || memcmp(mk[2], mk[0], cells))
        abort();
    stem_status sa = stem_attention_sparse(&p, &q.t, &k.t, &v.t, mk[2], &t3, NULL);
    if (sa != STEM_OK || memcmp(o3, out[0], no * 4))
        abort();
    /* dense attention: finite, deterministic */
    if (stem_attention_dense(&p, &q.t, &k.t, &v.t, &t3, NULL) != STEM_OK ||
        !all_finite(o3, no))
        abort();
free_all:
    free(out[0]), free(out[1]), free(lse[0]), free(lse[1]);
    free(lg[0]), free(lg[1]), free(lg[2]);
    free(mk[0]), free(mk[1]), free(mk[2]);
    free(o3);
done:
    free(q.buf), free(k.buf), free(v.buf);
    return 0;
}
