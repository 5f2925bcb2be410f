/*
 * testutil.c - random source, test tensors, error measures, presets and the
 * conformance loader of testutil.h.
 */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensorfile.h"

/* ------------------------------------------------------------------ random */

void tu_rng_seed(tu_rng *r, uint64_t seed)
{
    r->state = seed;
}

uint64_t tu_rng_next(tu_rng *r)
{
    uint64_t z = (r->state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double tu_rng_uniform(tu_rng *r)
{
    return (double)(tu_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

int64_t tu_rng_int(tu_rng *r, int64_t lo, int64_t hi)
{
    uint64_t span = (uint64_t)(hi - lo) + 1u;
    if (span == 0)
        return (int64_t)tu_rng_next(r);
    return lo + (int64_t)(tu_rng_next(r) % span);
}

double tu_rng_normal(tu_rng *r)
{
    double u1 = tu_rng_uniform(r);
    double u2 = tu_rng_uniform(r);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* ------------------------------------------------------- element conversion */

uint16_t tu_f64_to_bf16(double x)
{
    float f = (float)x;
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40u);          /* quiet NaN */
    uint32_t lsb = (u >> 16) & 1u;
    u += 0x7fffu + lsb;
    return (uint16_t)(u >> 16);
}

double tu_bf16_to_f64(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t tu_f64_to_f16(double x)
{
    uint16_t sign = signbit(x) ? 0x8000u : 0;
    double a = fabs(x);
    if (isnan(x))
        return 0x7e00u;
    if (a >= 65520.0)                   /* rounds to infinity */
        return sign | 0x7c00u;
    if (a < ldexp(1.0, -14)) {          /* subnormal: units of 2^-24 */
        double m = nearbyint(a * ldexp(1.0, 24));   /* ties to even */
        return sign | (uint16_t)m;                    /* 1024 -> min normal */
    }
    int e;
    double fr = frexp(a, &e);           /* a = fr * 2^e, fr in [0.5, 1) */
    double m = nearbyint(fr * 2048.0);  /* 11 significant bits */
    if (m >= 2048.0) {
        m = 1024.0;
        e += 1;
    }
    int exp16 = e - 1 + 15;
    if (exp16 >= 31)
        return sign | 0x7c00u;
    return sign | (uint16_t)(exp16 << 10) | (uint16_t)((int)m - 1024);
}

double tu_f16_to_f64(uint16_t h)
{
    double sign = (h & 0x8000u) ? -1.0 : 1.0;
    int e = (h >> 10) & 0x1f;
    int m = h & 0x3ff;
    if (e == 0)
        return sign * ldexp((double)m, -24);
    if (e == 31)
        return m ? NAN : sign * INFINITY;
    return sign * ldexp((double)(m + 1024), e - 25);
}

/* ----------------------------------------------------------------- tensors */

static size_t elem_size(stem_dtype dt)
{
    switch (dt) {
    case STEM_F32: return 4;
    case STEM_BF16: return 2;
    case STEM_F16: return 2;
    case STEM_F64: return 8;
    default: return 0;
    }
}

tu_tensor tu_tensor_new(stem_dtype dtype, tu_layout layout, int64_t heads,
                        int64_t tokens, int64_t dim)
{
    tu_tensor r;
    memset(&r, 0, sizeof r);
    int64_t hs, ts, total;
    switch (layout) {
    case TU_NHD:
        ts = heads * dim;
        hs = dim;
        total = heads * tokens * dim;
        break;
    case TU_PADDED:
        ts = dim + 3;
        hs = tokens * ts + 5;
        total = heads * hs;
        break;
    default:
        ts = dim;
        hs = tokens * dim;
        total = heads * tokens * dim;
        break;
    }
    if (total < 1)
        total = 1;
    r.nbytes = (size_t)total * elem_size(dtype);
    r.buf = calloc(1, r.nbytes ? r.nbytes : 1);
    if (!r.buf) {
        fprintf(stderr, "tu_tensor_new: out of memory (%zu bytes)\n", r.nbytes);
        exit(99);
    }
    r.t.data = r.buf;
    r.t.dtype = dtype;
    r.t.heads = heads;
    r.t.tokens = tokens;
    r.t.dim = dim;
    r.t.head_stride = hs;
    r.t.token_stride = ts;
    return r;
}

void tu_tensor_free(tu_tensor *t)
{
    free(t->buf);
    memset(t, 0, sizeof *t);
}

static size_t elem_index(const stem_tensor *t, int64_t h, int64_t tok, int64_t c)
{
    return (size_t)(h * t->head_stride + tok * t->token_stride + c);
}

double tu_get(const stem_tensor *t, int64_t h, int64_t tok, int64_t c)
{
    size_t i = elem_index(t, h, tok, c);
    switch (t->dtype) {
    case STEM_F32: return ((const float *)t->data)[i];
    case STEM_F64: return ((const double *)t->data)[i];
    case STEM_BF16: return tu_bf16_to_f64(((const uint16_t *)t->data)[i]);
    case STEM_F16: return tu_f16_to_f64(((const uint16_t *)t->data)[i]);
    default: return NAN;
    }
}

void tu_set(stem_tensor *t, int64_t h, int64_t tok, int64_t c, double x)
{
    size_t i = elem_index(t, h, tok, c);
    switch (t->dtype) {
    case STEM_F32: ((float *)t->data)[i] = (float)x; break;
    case STEM_F64: ((double *)t->data)[i] = x; break;
    case STEM_BF16: ((uint16_t *)t->data)[i] = tu_f64_to_bf16(x); break;
    case STEM_F16: ((uint16_t *)t->data)[i] = tu_f64_to_f16(x); break;
    default: break;
    }
}

void tu_fill_normal(stem_tensor *t, uint64_t seed, double scale)
{
    tu_rng r;
    tu_rng_seed(&r, seed);
    for (int64_t h = 0; h < t->heads; h++)
        for (int64_t n = 0; n < t->tokens; n++)
            for (int64_t c = 0; c < t->dim; c++)
                tu_set(t, h, n, c, scale * tu_rng_normal(&r));
}

/* --------------------------------------------------------------- measures */

double tu_rel_l2(const double *a, const double *b, size_t n)
{
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        double e = a[i] - b[i];
        num += e * e;
        den += b[i] * b[i];
    }
    if (den == 0.0)
        return num == 0.0 ? 0.0 : INFINITY;
    return sqrt(num / den);
}

double tu_max_abs(const double *a, const double *b, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs(a[i] - b[i]);
        if (!(e <= m))
            m = e;              /* NaN propagates */
    }
    return m;
}

void tu_view_to_f64(const stem_tensor *t, double *out)
{
    size_t i = 0;
    for (int64_t h = 0; h < t->heads; h++)
        for (int64_t n = 0; n < t->tokens; n++)
            for (int64_t c = 0; c < t->dim; c++)
                out[i++] = tu_get(t, h, n, c);
}

double tu_max_row_norm(const stem_tensor *t)
{
    double m = 0.0;
    for (int64_t h = 0; h < t->heads; h++)
        for (int64_t n = 0; n < t->tokens; n++) {
            double ss = 0.0;
            for (int64_t c = 0; c < t->dim; c++) {
                double x = tu_get(t, h, n, c);
                ss += x * x;
            }
            if (sqrt(ss) > m)
                m = sqrt(ss);
        }
    return m;
}

double tu_logit_scale(const stem_params *p, const stem_tensor *q,
                      const stem_tensor *k, const stem_tensor *v)
{
    double qk = p->qk_scaled ? 1.0 / (sqrt((double)q->dim) * p->stride * p->norm) : 1.0;
    double lv = fabs(log(tu_max_row_norm(v) + 1e-6));
    return p->stride * tu_max_row_norm(q) * tu_max_row_norm(k) * qk +
           p->value_weight * (lv > 14.0 ? lv : 14.0);
}

/* ------------------------------------------------------------------ params */

stem_params tu_preset(stem_profile profile)
{
    stem_params p;
    memset(&p, 0, sizeof p);
    p.profile = profile;
    p.block = 128;
    p.stride = 8;
    p.qk_scaled = 1;
    p.norm = 1.0;
    p.value_rule = STEM_VALUE_ZSCORE_FULL;
    p.value_weight = 0.2;
    p.budget_rule = STEM_BUDGET_TPD_F64;
    p.keep_ratio = 0.2;
    p.alpha = 0.7;
    p.paper_min_k0 = 54;
    p.paper_ratio_short = 0.2;
    p.paper_ratio_long = 0.1;
    p.paper_long_tokens = 16384;
    p.prompt_blocks = 0;
    p.sinks = 4;
    p.window = 4;
    p.keep_diagonal = 0;
    p.ties_keep_all = 0;
    p.use_f64 = 0;
    p.threads = 0;
    if (profile == STEM_PROFILE_PAPER) {
        p.value_rule = STEM_VALUE_LOG_MAX_BLOCK;
        p.budget_rule = STEM_BUDGET_PAPER_LINEAR;
    } else if (profile == STEM_PROFILE_HPCOPS) {
        p.stride = 16;
        p.qk_scaled = 0;
        p.value_rule = STEM_VALUE_ZSCORE_PADDED;
        p.value_weight = 0.3;
        p.budget_rule = STEM_BUDGET_TPD_F32_FMA;
        p.keep_diagonal = 1;
        p.ties_keep_all = 1;
    }
    return p;
}

/* ------------------------------------------------------------- conformance */

const char *tu_data_dir(void)
{
    const char *d = getenv("STEM_TEST_DATA");
    return (d && *d) ? d : "tests/data";
}

static void *dup_bytes(const tf_tensor *t)
{
    void *p = malloc(t->nbytes ? t->nbytes : 1);
    if (p)
        memcpy(p, t->data, t->nbytes);
    return p;
}

static int check_tensor(const tf_file *f, const char *name, stem_dtype dt,
                        int64_t a, int64_t b, int64_t c, const tf_tensor **out,
                        char *err, size_t errlen)
{
    const tf_tensor *t = tf_find(f, name);
    if (!t) {
        snprintf(err, errlen, "tensor '%s' missing", name);
        return -1;
    }
    if (t->dtype != dt || t->ndim != 3 || t->shape[0] != a || t->shape[1] != b ||
        t->shape[2] != c) {
        snprintf(err, errlen, "tensor '%s' has an unexpected dtype or shape", name);
        return -1;
    }
    *out = t;
    return 0;
}

static double meta_num(const tf_file *f, const char *key, double dflt)
{
    const char *s = tf_meta(f, key);
    return s ? strtod(s, NULL) : dflt;
}

int tu_case_load(const char *name, tu_case *c, char *err, size_t errlen)
{
    char path[1024];
    tf_file in, gpu;
    memset(&in, 0, sizeof in);
    memset(&gpu, 0, sizeof gpu);
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    int rc = -1;

    snprintf(path, sizeof path, "%s/conformance/%s.in.safetensors", tu_data_dir(), name);
    if (tf_read(path, &in, err, errlen) != 0)
        goto done;
    snprintf(path, sizeof path, "%s/conformance/%s.angelslim.safetensors", tu_data_dir(), name);
    if (tf_read(path, &gpu, err, errlen) != 0)
        goto done;

    const tf_tensor *tq = tf_find(&in, "q"), *tk = tf_find(&in, "k");
    if (!tq || !tk || tq->ndim != 3 || tk->ndim != 3) {
        snprintf(err, errlen, "%s: q or k missing", name);
        goto done;
    }
    c->hq = tq->shape[0];
    c->n = tq->shape[1];
    c->d = tq->shape[2];
    c->hkv = tk->shape[0];
    c->block = (int)meta_num(&gpu, "block_size", 128);
    c->stride = (int)meta_num(&gpu, "stride", 8);
    c->qb = c->kb = (c->n + c->block - 1) / c->block;
    const tf_tensor *tv, *tl, *tm, *to;
    if (check_tensor(&in, "q", STEM_BF16, c->hq, c->n, c->d, &tq, err, errlen) ||
        check_tensor(&in, "k", STEM_BF16, c->hkv, c->n, c->d, &tk, err, errlen) ||
        check_tensor(&in, "v", STEM_BF16, c->hkv, c->n, c->d, &tv, err, errlen) ||
        check_tensor(&gpu, "block_logits", STEM_F32, c->hq, c->qb, c->kb, &tl, err, errlen) ||
        check_tensor(&gpu, "mask", STEM_U8, c->hq, c->qb, c->kb, &tm, err, errlen) ||
        check_tensor(&gpu, "out", STEM_BF16, c->hq, c->n, c->d, &to, err, errlen))
        goto done;
    c->q = dup_bytes(tq);
    c->k = dup_bytes(tk);
    c->v = dup_bytes(tv);
    c->logits = dup_bytes(tl);
    c->mask = dup_bytes(tm);
    c->out = dup_bytes(to);
    if (!c->q || !c->k || !c->v || !c->logits || !c->mask || !c->out) {
        snprintf(err, errlen, "out of memory");
        tu_case_free(c);
        goto done;
    }
    c->alpha = meta_num(&gpu, "alpha", 0.7);
    c->keep_ratio = meta_num(&gpu, "keep_ratio", 0.2);
    c->sinks = (int)meta_num(&gpu, "initial_blocks", 4);
    c->window = (int)meta_num(&gpu, "window_size", 4);
    c->norm = meta_num(&gpu, "norm", 1.0);
    c->lambda = meta_num(&gpu, "lambda_mag", 0.2);
    const char *dt = tf_meta(&gpu, "dtype");
    if (!dt || (strcmp(dt, "bf16") != 0 && strcmp(dt, "fp16") != 0)) {
        snprintf(err, errlen, "%s: metadata 'dtype' missing or unknown", name);
        tu_case_free(c);
        goto done;
    }
    c->fp16 = strcmp(dt, "fp16") == 0;
    rc = 0;
done:
    tf_free(&in);
    tf_free(&gpu);
    return rc;
}

void tu_case_free(tu_case *c)
{
    free(c->q);
    free(c->k);
    free(c->v);
    free(c->logits);
    free(c->mask);
    free(c->out);
    c->q = c->k = c->v = c->out = NULL;
    c->logits = NULL;
    c->mask = NULL;
}
