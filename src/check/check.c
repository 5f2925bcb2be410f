/*
 * check.c - stem_check: judging a GPU Stem kernel stage by stage against
 * the reference (docs/ALGORITHM.md section 5).  This file holds the
 * options, the names, the argument checks and the driver; the stages live
 * in check_logits.c (logits, selection, mask) and check_attn.c (out,
 * lse), the limits in check_bound.c, the reports in check_render.c.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "check_internal.h"

/* ------------------------------------------------------------ precisions */

const char *stem_prec_name(stem_prec prec)
{
    switch (prec) {
    case STEM_PREC_FP32: return "fp32";
    case STEM_PREC_BF16: return "bf16";
    case STEM_PREC_FP16: return "fp16";
    case STEM_PREC_FP8: return "fp8";
    default: return "?";
    }
}

stem_status stem_prec_from_name(const char *name, stem_prec *out)
{
    static const struct {
        const char *name;
        stem_prec prec;
    } names[] = {
        {"fp32", STEM_PREC_FP32}, {"float32", STEM_PREC_FP32},
        {"f32", STEM_PREC_FP32}, {"float", STEM_PREC_FP32},
        {"bf16", STEM_PREC_BF16}, {"bfloat16", STEM_PREC_BF16},
        {"fp16", STEM_PREC_FP16}, {"float16", STEM_PREC_FP16},
        {"f16", STEM_PREC_FP16}, {"half", STEM_PREC_FP16},
        {"fp8", STEM_PREC_FP8}, {"e4m3", STEM_PREC_FP8},
        {"fp8_e4m3", STEM_PREC_FP8}, {"float8_e4m3fn", STEM_PREC_FP8},
    };
    if (!name || !out)
        return STEM_ERR_NULL;
    if (strncmp(name, "torch.", 6) == 0)
        name += 6;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcasecmp(name, names[i].name) == 0) {
            *out = names[i].prec;
            return STEM_OK;
        }
    return STEM_ERR_PARAM;
}

double stem_prec_unit(stem_prec prec)
{
    switch (prec) {
    case STEM_PREC_FP32: return 0x1p-24;
    case STEM_PREC_BF16: return 0x1p-8;
    case STEM_PREC_FP16: return 0x1p-11;
    case STEM_PREC_FP8: return 0x1p-4;
    default: return 0;
    }
}

double check_view_unit(stem_dtype dt)
{
    switch (dt) {
    case STEM_BF16: return 0x1p-8;
    case STEM_F16: return 0x1p-11;
    case STEM_F32: return 0x1p-24;
    default: return 0x1p-53;
    }
}

double check_view_at(const stem_tensor *t, int64_t h, int64_t tok, int64_t c)
{
    float row[1];
    stem_tensor one = *t;
    int64_t at = h * t->head_stride + tok * t->token_stride + c;
    one.data = (char *)t->data + at * (int64_t)stem_dtype_size(t->dtype);
    one.dim = 1;
    if (t->dtype == STEM_F64)
        return *(const double *)one.data;
    stem_load_row_f32(&one, 0, 0, row);
    return row[0];
}

/* ------------------------------------------------------------ arithmetic */

const char *stem_arith_name(stem_arith arith)
{
    switch (arith) {
    case STEM_ARITH_FLASH: return "flash";
    case STEM_ARITH_ANGELSLIM: return "angelslim";
    case STEM_ARITH_HPCOPS: return "hpc-ops";
    default: return "?";
    }
}

stem_status stem_arith_from_name(const char *name, stem_arith *out)
{
    static const struct {
        const char *name;
        stem_arith arith;
    } names[] = {
        {"flash", STEM_ARITH_FLASH}, {"flex", STEM_ARITH_FLASH},
        {"triton", STEM_ARITH_FLASH}, {"fa2", STEM_ARITH_FLASH},
        {"fa3", STEM_ARITH_FLASH}, {"angelslim", STEM_ARITH_ANGELSLIM},
        {"hpc-ops", STEM_ARITH_HPCOPS}, {"hpcops", STEM_ARITH_HPCOPS},
    };
    if (!name || !out)
        return STEM_ERR_NULL;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcasecmp(name, names[i].name) == 0) {
            *out = names[i].arith;
            return STEM_OK;
        }
    return STEM_ERR_PARAM;
}

stem_status stem_arith_precisions(stem_arith arith, stem_prec dtype,
                                  stem_check_options *o)
{
    if (!o)
        return STEM_ERR_NULL;
    if ((unsigned)arith >= STEM_ARITH_COUNT || (unsigned)dtype >= STEM_PREC_COUNT)
        return STEM_ERR_PARAM;
    /* a 16-bit dtype for what an fp8 kernel keeps wider than e4m3 */
    stem_prec wide = dtype == STEM_PREC_FP8 ? STEM_PREC_BF16 : dtype;
    o->arith = arith;
    o->lse_store = STEM_PREC_FP32;
    if (dtype == STEM_PREC_FP32) {
        o->score_prec = o->logit_store = o->attn_prec = STEM_PREC_FP32;
        o->attn_score_prec = o->out_store = STEM_PREC_FP32;
        return STEM_OK;
    }
    switch (arith) {
    case STEM_ARITH_HPCOPS:
        o->score_prec = o->logit_store = o->out_store = STEM_PREC_BF16;
        o->attn_prec = STEM_PREC_FP8;
        o->attn_score_prec = STEM_PREC_FP32;
        break;
    case STEM_ARITH_ANGELSLIM:
        o->score_prec = o->logit_store = o->attn_score_prec = wide;
        o->attn_prec = dtype;
        o->out_store = wide;
        break;
    default:
        o->score_prec = o->out_store = wide;
        o->logit_store = o->attn_score_prec = STEM_PREC_FP32;
        o->attn_prec = dtype;
        break;
    }
    return STEM_OK;
}

/* --------------------------------------------------------------- options */

stem_status stem_check_options_init(stem_check_options *opt,
                                    stem_prec gpu_dtype)
{
    if (!opt)
        return STEM_ERR_NULL;
    if ((unsigned)gpu_dtype >= STEM_PREC_COUNT)
        return STEM_ERR_PARAM;
    stem_check_options o;
    memset(&o, 0, sizeof(o));
    o.gpu_dtype = gpu_dtype;
    stem_arith_precisions(gpu_dtype == STEM_PREC_FP8 ? STEM_ARITH_HPCOPS
                                                     : STEM_ARITH_FLASH,
                          gpu_dtype, &o);
    o.arith_auto = 1;
    o.strict = 0;
    o.tau = o.logit_tol = o.out_tol = o.lse_tol = -1;
    o.sigmas = 4;
    o.dense_test = 1;
    o.head_begin = 0;
    o.head_count = 0;
    o.max_items = 20;
    *opt = o;
    return STEM_OK;
}

stem_status stem_check_options_arith(stem_check_options *opt,
                                     stem_arith arith)
{
    if (!opt)
        return STEM_ERR_NULL;
    if ((unsigned)arith >= STEM_ARITH_COUNT || (unsigned)opt->gpu_dtype >= STEM_PREC_COUNT)
        return STEM_ERR_PARAM;
    stem_arith_precisions(arith, opt->gpu_dtype, opt);
    opt->arith_auto = 0;
    return STEM_OK;
}

static int prec_ok(stem_prec p)
{
    return (unsigned)p < STEM_PREC_COUNT;
}

static stem_status options_valid(const stem_check_options *o, int64_t hq)
{
    if (!prec_ok(o->gpu_dtype) || !prec_ok(o->score_prec) ||
        !prec_ok(o->logit_store) || !prec_ok(o->attn_prec) ||
        !prec_ok(o->attn_score_prec) || !prec_ok(o->out_store) ||
        !prec_ok(o->lse_store))
        return STEM_ERR_PARAM;
    /* NaN fails every comparison below */
    if (!(o->tau < 0 || o->tau <= 1e30) || !(o->logit_tol < 0 || o->logit_tol <= 1e30) ||
        !(o->out_tol < 0 || o->out_tol <= 1e30) || !(o->lse_tol < 0 || o->lse_tol <= 1e30) ||
        !(o->sigmas > 0 && o->sigmas <= 1e6))
        return STEM_ERR_PARAM;
    if ((o->dense_test != 0 && o->dense_test != 1) ||
        (unsigned)o->arith >= STEM_ARITH_COUNT ||
        (o->arith_auto != 0 && o->arith_auto != 1) ||
        (o->strict != 0 && o->strict != 1))
        return STEM_ERR_PARAM;
    if (o->head_begin < 0 || o->head_begin >= hq || o->head_count < 0 ||
        o->head_count > hq - o->head_begin)
        return STEM_ERR_PARAM;
    if (o->max_items < 0 || o->max_items > 1000000)
        return STEM_ERR_PARAM;
    return STEM_OK;
}

/* ----------------------------------------------------------------- names */

const char *stem_check_stage_name(stem_check_stage stage)
{
    static const char *const n[STEM_STAGE_COUNT] = {
        "logits", "selection", "mask", "out", "lse"};
    return (unsigned)stage < STEM_STAGE_COUNT ? n[stage] : "?";
}

const char *stem_check_kind_name(stem_check_kind kind)
{
    static const char *const n[STEM_KIND_COUNT] = {
        [STEM_KIND_NONE] = "none",
        [STEM_KIND_LOGIT_NONFINITE] = "non-finite logit",
        [STEM_KIND_LOGIT_PATTERN] = "-inf pattern",
        [STEM_KIND_LOGIT_ERROR] = "logit error",
        [STEM_KIND_SELECT_EXTRA] = "selection extra",
        [STEM_KIND_SELECT_MISSING] = "selection missing",
        [STEM_KIND_SELECT_TIE] = "selection tie",
        [STEM_KIND_MASK_SINK] = "sink dropped",
        [STEM_KIND_MASK_WINDOW] = "window dropped",
        [STEM_KIND_MASK_FUTURE] = "future block",
        [STEM_KIND_MASK_GAP] = "mask gap",
        [STEM_KIND_MASK_COUNT] = "budget count",
        [STEM_KIND_MASK_TIE] = "tie",
        [STEM_KIND_MASK_UNREAD] = "unread bit",
        [STEM_KIND_OUT_NONFINITE] = "non-finite out",
        [STEM_KIND_OUT_ROW] = "out row",
        [STEM_KIND_OUT_IGNORES_MASK] = "ignores the mask",
        [STEM_KIND_OUT_WRONG_HEAD] = "wrong output",
        [STEM_KIND_LSE_NONFINITE] = "non-finite lse",
        [STEM_KIND_LSE_ROW] = "lse row",
        [STEM_KIND_OUT_SCALE_BIAS] = "scale bias",
        [STEM_KIND_OUT_TEMP_BIAS] = "temperature bias",
        [STEM_KIND_OUT_ROW_SHIFT] = "neighbour row",
        [STEM_KIND_LSE_OFFSET] = "lse offset",
        [STEM_KIND_LSE_TEMP_BIAS] = "lse temperature bias",
        [STEM_KIND_LOGIT_SCALE_BIAS] = "logit scale bias",
        [STEM_KIND_LOGIT_VALUE_BIAS] = "value-term bias",
        [STEM_KIND_LOGIT_STRIDE_BIAS] = "stride bias",
        [STEM_KIND_LOGIT_GROUP_NORM_BIAS] = "group-norm bias",
        [STEM_KIND_OUT_HEAD_SHIFT] = "neighbour head",
        [STEM_KIND_OUT_KV_HEAD] = "wrong kv head",
    };
    return (unsigned)kind < STEM_KIND_COUNT && n[kind] ? n[kind] : "?";
}

int stem_check_kind_is_fault(stem_check_kind kind)
{
    return (unsigned)kind < STEM_KIND_COUNT && kind != STEM_KIND_NONE &&
           kind != STEM_KIND_MASK_TIE && kind != STEM_KIND_SELECT_TIE &&
           kind != STEM_KIND_MASK_UNREAD;
}

/* ----------------------------------------------------------------- items */

int check_items_init(check_items *it, int64_t cap)
{
    memset(it, 0, sizeof(*it));
    it->cap = cap;
    if (cap > 0) {
        it->v = malloc((size_t)cap * sizeof(*it->v));
        it->key = malloc((size_t)cap * sizeof(double));
        if (!it->v || !it->key) {
            check_items_free(it);
            return -1;
        }
    }
    return 0;
}

void check_items_add(check_items *it, const stem_check_item *x, double key)
{
    it->total++;
    if (it->cap < 1)
        return;
    if (isnan(key))
        key = INFINITY;
    if (it->n < it->cap) {
        it->v[it->n] = *x;
        it->key[it->n++] = key;
        if (it->n == it->cap) {
            it->min_at = 0;
            for (int64_t i = 1; i < it->n; i++)
                if (it->key[i] < it->key[it->min_at])
                    it->min_at = i;
        }
        return;
    }
    if (!(key > it->key[it->min_at]))
        return;
    it->v[it->min_at] = *x;
    it->key[it->min_at] = key;
    it->min_at = 0;
    for (int64_t i = 1; i < it->n; i++)
        if (it->key[i] < it->key[it->min_at])
            it->min_at = i;
}

void check_items_take(check_items *it, stem_check_item **out, int64_t *n)
{
    /* insertion sort, largest key first; ties by position for stability */
    for (int64_t i = 1; i < it->n; i++) {
        stem_check_item x = it->v[i];
        double k = it->key[i];
        int64_t j = i;
        while (j > 0 && (it->key[j - 1] < k ||
                         (it->key[j - 1] == k &&
                          (it->v[j - 1].head > x.head ||
                           (it->v[j - 1].head == x.head &&
                            it->v[j - 1].row * 1000003 + it->v[j - 1].qblock * 1009 + it->v[j - 1].kblock >
                                x.row * 1000003 + x.qblock * 1009 + x.kblock))))) {
            it->v[j] = it->v[j - 1];
            it->key[j] = it->key[j - 1];
            j--;
        }
        it->v[j] = x;
        it->key[j] = k;
    }
    *out = it->n ? it->v : NULL;
    *n = it->n;
    if (!it->n)
        free(it->v);
    it->v = NULL;
    free(it->key);
    it->key = NULL;
    it->n = it->cap = 0;
}

void check_items_free(check_items *it)
{
    free(it->v);
    free(it->key);
    memset(it, 0, sizeof(*it));
}

/* ---------------------------------------------------------------- driver */

void stem_check_report_free(stem_check_report *r)
{
    if (!r)
        return;
    for (int s = 0; s < STEM_STAGE_COUNT; s++)
        free(r->stage[s].items);
    free(r->ties);
    free(r->heads);
    free(r->qblock_rows_failed);
    memset(r, 0, sizeof(*r));
}

/* A GPU view must be [heads, tokens, dim] of a float dtype (or U8 for the
 * mask) with a valid extent. */
static stem_status gpu_view_ok(const stem_tensor *t, int64_t heads,
                               int64_t tokens, int64_t dim, int is_mask)
{
    if (!t->data)
        return STEM_ERR_NULL;
    if (is_mask ? t->dtype != STEM_U8
                : (t->dtype != STEM_F32 && t->dtype != STEM_F64 &&
                   t->dtype != STEM_BF16 && t->dtype != STEM_F16))
        return STEM_ERR_DTYPE;
    if (t->heads != heads || t->tokens != tokens || t->dim != dim ||
        t->head_stride < 0 || t->token_stride < 0)
        return STEM_ERR_SHAPE;
    int64_t a, b, end;
    if (!stem_mul_ok(heads - 1, t->head_stride, &a) ||
        !stem_mul_ok(tokens - 1, t->token_stride, &b) || a > INT64_MAX - b ||
        a + b > INT64_MAX - dim || !stem_mul_ok(a + b + dim, 8, &end))
        return STEM_ERR_OVERFLOW;
    return STEM_OK;
}

static void ctx_free(check_ctx *c)
{
    free(c->budget);
    free(c->ref_logits);
    free(c->ref_mask);
    free(c->limit);
    free(c->limit_worst);
    free(c->sigma);
    free(c->vbound);
    free(c->gpu_logits);
    free(c->gpu_mask);
}

/* Whether x is a value of dtype pr (bf16 or fp16): a logit stored in it. */
static int is_value_of(float x, stem_prec pr)
{
    if (!isfinite(x) || x == 0)
        return 1;
    if (pr == STEM_PREC_BF16) {
        uint32_t b;
        memcpy(&b, &x, 4);
        return (b & 0xffffu) == 0;
    }
    /* fp16: 11 significant bits, normal from 2^-14, largest 65504 */
    double a = fabs((double)x);
    if (a > 65504)
        return 0;
    int e;
    double m = frexp(a, &e); /* a = m 2^e, m in [0.5, 1) */
    double scaled = a < 0x1p-14 ? a * 0x1p24 : ldexp(m, 11);
    return scaled == floor(scaled);
}

/* The precisions equal those of preset o->arith (no override). */
static int arith_plain(const stem_check_options *o)
{
    stem_check_options p = *o;
    stem_arith_precisions(o->arith, o->gpu_dtype, &p);
    return p.score_prec == o->score_prec && p.logit_store == o->logit_store &&
           p.attn_prec == o->attn_prec && p.attn_score_prec == o->attn_score_prec &&
           p.out_store == o->out_store && p.lse_store == o->lse_store;
}

/* arith_auto: hpc-ops for that profile or an fp8 GPU; angelslim when every
 * GPU logit judged is a value of the 16-bit dtype (stored in it, as
 * AngelSlim's backend stores them) and at least one is not an integer;
 * else the declared preset.  Only a preset without overrides is
 * replaced. */
static void resolve_arith(check_ctx *c)
{
    stem_check_options *o = &c->o;
    if (!o->arith_auto || !arith_plain(o))
        return;
    stem_arith a = o->arith;
    if (c->p->profile == STEM_PROFILE_HPCOPS || o->gpu_dtype == STEM_PREC_FP8) {
        a = STEM_ARITH_HPCOPS;
    } else if (c->gpu_logits && (o->gpu_dtype == STEM_PREC_BF16 ||
                                 o->gpu_dtype == STEM_PREC_FP16)) {
        size_t n = (size_t)c->nh * (size_t)c->dm.qb * (size_t)c->dm.kb;
        int all = 1, frac = 0;
        for (size_t i = 0; i < n && all; i++) {
            float x = c->gpu_logits[i];
            all = is_value_of(x, o->gpu_dtype);
            frac |= isfinite(x) && x != floorf(x);
        }
        if (all && frac)
            a = STEM_ARITH_ANGELSLIM;
    }
    if (a != o->arith) {
        stem_arith_precisions(a, o->gpu_dtype, o);
        c->r->arith_chosen = 1;
    }
}

/* Copy the judged heads of the GPU logits and mask into contiguous
 * arrays. */
static stem_status load_gpu_blocks(check_ctx *c)
{
    const int64_t qb = c->dm.qb, kb = c->dm.kb;
    const size_t n = (size_t)c->nh * (size_t)qb * (size_t)kb;
    if (c->gpu->logits) {
        if (!(c->gpu_logits = malloc(n * sizeof(float))))
            return STEM_ERR_NOMEM;
        const stem_tensor *t = c->gpu->logits;
        #pragma omp parallel for schedule(static) num_threads(stem_thread_count(c->p))
        for (int64_t i = 0; i < c->nh * qb; i++) {
            int64_t h = c->h0 + i / qb, I = i % qb;
            stem_load_row_f32(t, h, I, c->gpu_logits + (size_t)i * kb);
        }
    }
    if (c->gpu->mask) {
        if (!(c->gpu_mask = malloc(n)))
            return STEM_ERR_NOMEM;
        const stem_tensor *t = c->gpu->mask;
        for (int64_t i = 0; i < c->nh * qb; i++) {
            int64_t h = c->h0 + i / qb, I = i % qb;
            const uint8_t *src = (const uint8_t *)t->data + h * t->head_stride +
                                 I * t->token_stride;
            for (int64_t J = 0; J < kb; J++)
                c->gpu_mask[(size_t)i * kb + J] = src[J] != 0;
        }
    }
    return STEM_OK;
}

stem_status stem_check(const stem_params *params, const stem_tensor *q,
                       const stem_tensor *k, const stem_tensor *v,
                       const stem_check_gpu *gpu,
                       const stem_check_options *opt,
                       stem_check_report *report)
{
    if (!report)
        return STEM_ERR_NULL;
    memset(report, 0, sizeof(*report));
    if (!params || !q || !k || !v || !gpu)
        return STEM_ERR_NULL;
    if (!gpu->logits && !gpu->mask && !gpu->out && !gpu->lse)
        return STEM_ERR_NULL;
    stem_status st;
    check_ctx c;
    memset(&c, 0, sizeof(c));
    c.p = params, c.q = q, c.k = k, c.v = v, c.gpu = gpu, c.r = report;
    if ((st = stem_dims_get(params, q, k, v, 1, &c.dm)) != STEM_OK)
        return st;
    if (opt) {
        c.o = *opt;
    } else {
        stem_prec g = q->dtype == STEM_BF16  ? STEM_PREC_BF16
                      : q->dtype == STEM_F16 ? STEM_PREC_FP16
                                             : STEM_PREC_FP32;
        stem_check_options_init(&c.o, g);
    }
    if ((st = options_valid(&c.o, c.dm.hq)) != STEM_OK)
        return st;
    const stem_dims *d = &c.dm;
    if ((gpu->logits && (st = gpu_view_ok(gpu->logits, d->hq, d->qb, d->kb, 0))) ||
        (gpu->mask && (st = gpu_view_ok(gpu->mask, d->hq, d->qb, d->kb, 1))) ||
        (gpu->out && (st = gpu_view_ok(gpu->out, d->hq, d->lq, d->d, 0))) ||
        (gpu->lse && (st = gpu_view_ok(gpu->lse, d->hq, d->lq, 1, 0))))
        return st;
    c.h0 = c.o.head_begin;
    c.h1 = c.o.head_count ? c.h0 + c.o.head_count : d->hq;
    c.nh = c.h1 - c.h0;
    c.pb = d->offset / params->block;
    c.nbudget = d->kb; /* positions below Kb only (stem_budget_prefix) */

    /* the reference's first three stages (they also scan q, k, v) */
    size_t cells = (size_t)d->hq * (size_t)d->qb * (size_t)d->kb;
    c.budget = malloc((size_t)c.nbudget * sizeof(int32_t));
    c.ref_logits = malloc(cells * sizeof(float));
    c.ref_mask = malloc(cells);
    c.limit = malloc((size_t)c.nh * (size_t)d->qb * (size_t)d->kb * sizeof(float));
    c.sigma = malloc((size_t)c.nh * (size_t)d->qb * (size_t)d->kb * sizeof(float));
    c.vbound = calloc((size_t)c.nh * (size_t)d->kb, sizeof(float));
    if (!c.budget || !c.ref_logits || !c.ref_mask || !c.limit || !c.sigma ||
        !c.vbound) {
        ctx_free(&c);
        return STEM_ERR_NOMEM;
    }
    if ((st = stem_block_logits(params, q, k, v, c.ref_logits)) != STEM_OK ||
        (st = stem_budget_prefix(params, d->kb, c.nbudget, c.budget)) != STEM_OK ||
        (st = stem_select(params, d, c.ref_logits, c.ref_mask, NULL, NULL)) != STEM_OK ||
        (st = load_gpu_blocks(&c)) != STEM_OK) {
        ctx_free(&c);
        return st;
    }
    resolve_arith(&c);
    if ((st = check_logit_limits(&c)) != STEM_OK) {
        ctx_free(&c);
        memset(report, 0, sizeof(*report));
        return st;
    }
    report->dims = *d;
    report->params = *params;
    report->options = c.o;
    report->head_begin = c.h0;
    report->head_end = c.h1;
    if ((st = check_stage_logits(&c)) != STEM_OK ||
        (st = check_stage_selection(&c)) != STEM_OK ||
        (st = check_stage_mask(&c)) != STEM_OK ||
        (st = check_attention(&c)) != STEM_OK ||
        (st = check_stage_bias(&c)) != STEM_OK) {
        ctx_free(&c);
        stem_check_report_free(report);
        return st;
    }
    report->verdict = STEM_CHECK_PASS;
    for (int s = 0; s < STEM_STAGE_COUNT && c.o.strict; s++)
        if (report->stage[s].verdict == STEM_CHECK_PASS && report->stage[s].undecided > 0) {
            report->stage[s].verdict = STEM_CHECK_FAIL;
            report->strict_failed = 1;
        }
    /* strict: a systematic test that could not decide its fault in some
     * head fails too (its stage verdicts stay: no row is wrong) */
    for (int t = 0; t < STEM_BIAS_COUNT && c.o.strict; t++)
        if (report->bias[t].heads_undecided > 0) {
            report->strict_failed = 1;
            report->verdict = STEM_CHECK_FAIL;
        }
    for (int s = 0; s < STEM_STAGE_COUNT; s++)
        if (report->stage[s].verdict == STEM_CHECK_FAIL)
            report->verdict = STEM_CHECK_FAIL;
    ctx_free(&c);
    return STEM_OK;
}

stem_status stem_check_mask_logits(const stem_params *params, int64_t hq,
                                   int64_t qb, int64_t kb,
                                   const float *ref_logits,
                                   const uint8_t *ref_mask,
                                   const uint8_t *gpu_mask,
                                   const stem_check_options *opt,
                                   stem_check_report *report)
{
    if (!report)
        return STEM_ERR_NULL;
    memset(report, 0, sizeof(*report));
    if (!params || !ref_logits || !gpu_mask)
        return STEM_ERR_NULL;
    if (!opt)
        return STEM_ERR_PARAM;
    if (hq < 1 || qb < 1 || kb < qb || kb > INT32_MAX || hq > INT32_MAX)
        return STEM_ERR_SHAPE;
    stem_status st = stem_params_validate(params);
    if (st != STEM_OK)
        return st;
    check_ctx c;
    memset(&c, 0, sizeof(c));
    c.p = params, c.r = report, c.o = *opt;
    if ((st = options_valid(&c.o, hq)) != STEM_OK || !(c.o.tau >= 0))
        return STEM_ERR_PARAM;
    c.dm.hq = c.dm.hkv = hq;
    c.dm.qb = qb, c.dm.kb = kb, c.dm.d = 1;
    c.dm.offset = (kb - qb) * params->block;
    c.dm.lq = qb * params->block, c.dm.lk = kb * params->block;
    c.h0 = c.o.head_begin;
    c.h1 = c.o.head_count ? c.h0 + c.o.head_count : hq;
    c.nh = c.h1 - c.h0;
    c.pb = kb - qb;
    c.nbudget = stem_budget_blocks(params, kb);
    const size_t cells = (size_t)hq * (size_t)qb * (size_t)kb;
    const size_t jcells = (size_t)c.nh * (size_t)qb * (size_t)kb;
    c.budget = malloc((size_t)c.nbudget * sizeof(int32_t));
    c.ref_logits = malloc(cells * sizeof(float));
    c.ref_mask = malloc(cells);
    c.limit = calloc(jcells, sizeof(float));
    c.sigma = calloc(jcells, sizeof(float));
    c.vbound = calloc((size_t)c.nh * (size_t)kb, sizeof(float));
    c.gpu_mask = malloc(jcells);
    if (!c.budget || !c.ref_logits || !c.ref_mask || !c.limit || !c.sigma ||
        !c.vbound || !c.gpu_mask) {
        ctx_free(&c);
        return STEM_ERR_NOMEM;
    }
    memcpy(c.ref_logits, ref_logits, cells * sizeof(float));
    for (size_t i = 0; i < jcells; i++)
        c.gpu_mask[i] = gpu_mask[(size_t)c.h0 * qb * kb + i] != 0;
    if ((st = stem_budget(params, kb, c.budget)) != STEM_OK ||
        (!ref_mask &&
         (st = stem_select(params, &c.dm, c.ref_logits, c.ref_mask, NULL, NULL)) != STEM_OK)) {
        ctx_free(&c);
        return st;
    }
    if (ref_mask)
        for (size_t i = 0; i < cells; i++)
            c.ref_mask[i] = ref_mask[i] != 0;
    c.tie_worst = 1;
    report->dims = c.dm;
    report->params = *params;
    report->options = c.o;
    report->head_begin = c.h0;
    report->head_end = c.h1;
    if ((st = check_stage_mask(&c)) != STEM_OK) {
        ctx_free(&c);
        stem_check_report_free(report);
        return st;
    }
    stem_check_stage_result *ms = &report->stage[STEM_STAGE_MASK];
    if (c.o.strict && ms->verdict == STEM_CHECK_PASS && ms->undecided > 0) {
        ms->verdict = STEM_CHECK_FAIL;
        report->strict_failed = 1;
    }
    report->verdict = ms->verdict;
    ctx_free(&c);
    return STEM_OK;
}
