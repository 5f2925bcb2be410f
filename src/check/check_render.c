/*
 * check_render.c - a stem_check report as text or JSON, into a caller
 * buffer, snprintf style (see stem_check.h).
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "check_internal.h"

/* An output buffer that counts what it could not hold. */
typedef struct sbuf {
    char *buf;
    size_t cap, len;
} sbuf;

static void put(sbuf *s, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t m = (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1;
    if (s->cap > 0 && s->len < s->cap - 1) {
        size_t room = s->cap - 1 - s->len;
        memcpy(s->buf + s->len, tmp, m < room ? m : room);
    }
    s->len += m;
}

static size_t finish(sbuf *s)
{
    if (s->cap > 0)
        s->buf[s->len < s->cap ? s->len : s->cap - 1] = '\0';
    return s->len;
}

/* The places a kernel rounds, as the report names them (CLI options
 * --scoring, --logits-store, --scores, --p, --out-store, --lse-store). */
static const char *const place_name[6] = {"scoring", "logits", "scores",
                                          "P", "out", "lse"};

static void places(const stem_check_options *o, stem_prec pr[6])
{
    pr[0] = o->score_prec, pr[1] = o->logit_store, pr[2] = o->attn_score_prec;
    pr[3] = o->attn_prec, pr[4] = o->out_store, pr[5] = o->lse_store;
}

/* "flash" or "flash + scores bf16, P fp32": the preset and the places
 * set apart from it. */
static void arith_name(sbuf *s, const stem_check_options *o)
{
    stem_check_options p = *o;
    stem_prec a[6], b[6];
    stem_arith_precisions(o->arith, o->gpu_dtype, &p);
    places(o, a), places(&p, b);
    put(s, "%s", stem_arith_name(o->arith));
    for (int i = 0, n = 0; i < 6; i++)
        if (a[i] != b[i])
            put(s, "%s%s %s", n++ ? ", " : " + ", place_name[i], stem_prec_name(a[i]));
}

/* "scoring bf16, logits fp32, ..." */
static void arith_places(sbuf *s, const stem_check_options *o)
{
    stem_prec a[6];
    places(o, a);
    for (int i = 0; i < 6; i++)
        put(s, "%s%s %s", i ? ", " : "", place_name[i], stem_prec_name(a[i]));
}

static const char *verdict_word(stem_check_verdict v)
{
    return v == STEM_CHECK_PASS ? "PASS" : v == STEM_CHECK_FAIL ? "FAIL" : "absent";
}

/* One line per item, with the positions that matter for its kind. */
static void item_text(sbuf *s, const stem_check_item *x)
{
    put(s, "    %-18s head %lld", stem_check_kind_name(x->kind), (long long)x->head);
    switch (x->kind) {
    case STEM_KIND_LOGIT_NONFINITE:
    case STEM_KIND_LOGIT_PATTERN:
        put(s, " block (%lld,%lld): GPU %g, reference %g\n", (long long)x->qblock,
            (long long)x->kblock, x->gpu, x->ref);
        break;
    case STEM_KIND_LOGIT_ERROR:
        put(s, " block (%lld,%lld): GPU %.6g, reference %.6g, |diff| %.4g > "
            "limit %.4g\n", (long long)x->qblock, (long long)x->kblock, x->gpu,
            x->ref, x->err, x->limit);
        break;
    case STEM_KIND_SELECT_EXTRA:
    case STEM_KIND_SELECT_MISSING:
    case STEM_KIND_SELECT_TIE:
        put(s, " qblock %lld kblock %lld: GPU %s it, its own logits %s it "
            "(GPU logit %.6g, GPU threshold %.6g)\n", (long long)x->qblock,
            (long long)x->kblock, x->gpu ? "kept" : "dropped",
            x->ref ? "keep" : "drop", x->ref_logit, x->threshold);
        break;
    case STEM_KIND_MASK_COUNT:
        if (x->ref > x->threshold)
            put(s, " qblock %lld: keeps %g blocks besides sinks and window; the "
                "budget %g allows %g to %g\n", (long long)x->qblock, x->gpu,
                x->ref_logit, x->threshold, x->ref);
        else
            put(s, " qblock %lld: keeps %g blocks besides sinks and window; the "
                "budget %g allows %g\n", (long long)x->qblock, x->gpu,
                x->ref_logit, x->ref);
        break;
    case STEM_KIND_MASK_SINK:
    case STEM_KIND_MASK_WINDOW:
    case STEM_KIND_MASK_FUTURE:
    case STEM_KIND_MASK_GAP:
    case STEM_KIND_MASK_TIE:
    case STEM_KIND_MASK_UNREAD:
        put(s, " qblock %lld kblock %lld: GPU %s, reference %s", (long long)x->qblock,
            (long long)x->kblock, x->gpu ? "kept" : "dropped",
            x->ref ? "kept" : "dropped");
        if (x->kind == STEM_KIND_MASK_GAP || x->kind == STEM_KIND_MASK_TIE)
            put(s, "; logit %.6g, threshold %.6g, gap %+.4g, tau %.4g",
                x->ref_logit, x->threshold, x->ref_logit - x->threshold, x->limit);
        put(s, "\n");
        break;
    case STEM_KIND_OUT_NONFINITE:
        put(s, " row %lld (qblock %lld) col %lld: GPU %g\n", (long long)x->row,
            (long long)x->qblock, (long long)x->col, x->gpu);
        break;
    case STEM_KIND_OUT_ROW:
        put(s, " row %lld (qblock %lld): ||diff|| %.4g > limit %.4g (%.3gx); "
            "||GPU|| %.4g, ||ref|| %.4g; largest at col %lld\n", (long long)x->row,
            (long long)x->qblock, x->err, x->limit, x->limit > 0 ? x->err / x->limit : INFINITY,
            x->gpu, x->ref, (long long)x->col);
        break;
    case STEM_KIND_OUT_IGNORES_MASK:
        put(s, ": the output is closer to dense attention than to the masked "
            "reference (t = %.3f; 0 masked, 1 dense; masked vs dense %.3g)\n",
            x->gpu, x->ref);
        break;
    case STEM_KIND_OUT_WRONG_HEAD:
        put(s, ": most rows beyond their limits, and not closer to dense "
            "attention (t = %.3f): wrong output\n", x->gpu);
        break;
    case STEM_KIND_OUT_SCALE_BIAS:
    case STEM_KIND_OUT_TEMP_BIAS:
    case STEM_KIND_OUT_ROW_SHIFT:
    case STEM_KIND_LSE_OFFSET:
    case STEM_KIND_LSE_TEMP_BIAS:
    case STEM_KIND_LOGIT_SCALE_BIAS:
    case STEM_KIND_LOGIT_VALUE_BIAS:
    case STEM_KIND_LOGIT_STRIDE_BIAS:
    case STEM_KIND_LOGIT_GROUP_NORM_BIAS:
    case STEM_KIND_OUT_HEAD_SHIFT:
    case STEM_KIND_OUT_KV_HEAD:
        if (x->qblock >= 0)
            put(s, " qblock %lld", (long long)x->qblock);
        else
            put(s, " (all rows)");
        if (x->kind == STEM_KIND_OUT_ROW_SHIFT)
            put(s, " towards the %s row", x->col > 0 ? "next" : "previous");
        if (x->kind == STEM_KIND_OUT_HEAD_SHIFT)
            put(s, " towards head %lld's output", (long long)(x->head + x->col));
        if (x->kind == STEM_KIND_OUT_KV_HEAD)
            put(s, " towards attention with kv head %lld", (long long)x->col);
        put(s, ": component %+.4g, %.1f standard errors (%.3g) > threshold %.1f\n",
            x->gpu, x->err, x->ref, x->limit);
        break;
    case STEM_KIND_LSE_NONFINITE:
    case STEM_KIND_LSE_ROW:
        put(s, " row %lld (qblock %lld): GPU %.7g, reference %.7g, |diff| %.3g "
            "> limit %.3g\n", (long long)x->row, (long long)x->qblock, x->gpu,
            x->ref, x->err, x->limit);
        break;
    default:
        put(s, "\n");
        break;
    }
}

static void stage_line(sbuf *s, const stem_check_report *r, stem_check_stage st)
{
    const stem_check_stage_result *g = &r->stage[st];
    put(s, "  %-9s %-6s", stem_check_stage_name(st), verdict_word(g->verdict));
    if (g->verdict == STEM_CHECK_ABSENT) {
        put(s, " (not in the GPU's data)\n");
        return;
    }
    switch (st) {
    case STEM_STAGE_LOGITS:
        put(s, " %lld entries, max |diff| %.4g, worst %.3g of its limit",
            (long long)g->checked, g->max_err, g->worst_ratio);
        if (r->logit_nonfinite)
            put(s, "; %lld NaN/+inf", (long long)r->logit_nonfinite);
        if (r->logit_pattern)
            put(s, "; %lld -inf pattern mismatches", (long long)r->logit_pattern);
        put(s, "; up to %.2g modeled standard deviations", r->logit_zmax);
        break;
    case STEM_STAGE_SELECTION:
        put(s, " %lld rows: the rule on the GPU's logits gives its mask",
            (long long)g->checked);
        if (g->faults)
            put(s, " except %lld blocks", (long long)g->faults);
        if (r->select_ties)
            put(s, " (%lld exchanges between equal logits)", (long long)r->select_ties);
        break;
    case STEM_STAGE_MASK:
        put(s, " %lld rows, %lld differences: %lld ties (widest gap %.3g)",
            (long long)g->checked, (long long)r->mask_diffs, (long long)r->mask_ties,
            r->max_tie_gap);
        if (g->faults)
            put(s, ", %lld faults", (long long)g->faults);
        if (r->rows_count_off)
            put(s, ", %lld rows off their budget", (long long)r->rows_count_off);
        if (r->mask_unread)
            put(s, ", %lld unread bits above the diagonal", (long long)r->mask_unread);
        if (r->causal_blocks)
            put(s, "; kept %.1f%% GPU, %.1f%% reference",
                100.0 * (double)r->gpu_kept / (double)r->causal_blocks,
                100.0 * (double)r->ref_kept / (double)r->causal_blocks);
        break;
    case STEM_STAGE_OUT:
        put(s, " %lld rows, worst %.3g of its limit; rel L2 %.3g over the heads",
            (long long)g->checked, g->worst_ratio, r->out_rel_l2);
        if (g->faults)
            put(s, "; %lld faults", (long long)g->faults);
        if (r->out_under_ref_mask)
            put(s, " (no GPU mask: judged under the reference mask)");
        break;
    case STEM_STAGE_LSE:
        put(s, " %lld rows, max |diff| %.3g, worst %.3g of its limit",
            (long long)g->checked, g->max_err, g->worst_ratio);
        if (g->faults)
            put(s, "; %lld faults", (long long)g->faults);
        break;
    default:
        break;
    }
    put(s, "\n");
    if (st == STEM_STAGE_MASK && g->units == 0 && g->checked > 0)
        put(s, "            no sparse row: the budget keeps every causal block, "
            "so the top-k selection was not exercised\n");
    if (g->undecided > 0) {
        const stem_check_options *o = &r->options;
        if (st == STEM_STAGE_MASK)
            put(s, "            undecided: %lld of %lld sparse rows differ from "
                "the reference only within %s rounding of the threshold (a tie "
                "or a fault alike); give the kernel's logits%s\n",
                (long long)g->undecided, (long long)g->units,
                stem_prec_name(o->score_prec), o->strict ? "" : " (--strict fails this)");
        else
            put(s, "            undecided: %lld of %lld rows have a limit as large as "
                "the row itself (a zero row would pass)\n",
                (long long)g->undecided, (long long)g->units);
    }
}

/* What the fault of a systematic test is, for the undecided line. */
static const char *bias_fault_text(int test)
{
    static const char *const t[STEM_BIAS_COUNT] = {
        [STEM_BIAS_OUT_SCALE] = "an output scale 1% off",
        [STEM_BIAS_OUT_TEMP] = "a softmax scale 3% off",
        [STEM_BIAS_OUT_SHIFT] = "rows written one place off",
        [STEM_BIAS_LSE_OFFSET] = "an lse offset of 1e-3",
        [STEM_BIAS_LSE_TEMP] = "a softmax scale 3% off",
        [STEM_BIAS_LOGIT_SCALE] = "a QK scale 3% off",
        [STEM_BIAS_LOGIT_VALUE] = "a value weight 1.5 times the profile's",
        [STEM_BIAS_LOGIT_STRIDE] = "another stride",
        [STEM_BIAS_LOGIT_GROUP_NORM] = "group norms from the mean",
        [STEM_BIAS_OUT_HEAD] = "a neighbouring head's output",
        [STEM_BIAS_OUT_KV_HEAD] = "another kv head's k and v"};
    return (unsigned)test < STEM_BIAS_COUNT && t[test] ? t[test] : "?";
}

/* One line per systematic test that could not decide its fault in some
 * head (stem_check_bias.heads_undecided). */
static void bias_undecided(sbuf *s, const stem_check_report *r)
{
    for (int i = 0; i < STEM_BIAS_COUNT; i++) {
        const stem_check_bias *b = &r->bias[i];
        if (b->heads_undecided > 0)
            put(s, "undecided: %s in %lld of %lld heads: %s (a component of "
                "%g) lies within rounding there; the smallest that fails is "
                "%.3g\n", stem_check_bias_name((stem_check_bias_test)i),
                (long long)b->heads_undecided, (long long)b->heads,
                bias_fault_text(i), b->fault_size, b->smallest_failing);
    }
}

size_t stem_check_report_text(const stem_check_report *r, int verbose,
                              char *buf, size_t cap)
{
    sbuf s = {buf, buf ? cap : 0, 0};
    if (!r) {
        put(&s, "(no report)\n");
        return finish(&s);
    }
    const stem_dims *d = &r->dims;
    const stem_params *p = &r->params;
    const stem_check_options *o = &r->options;
    int fail = r->verdict == STEM_CHECK_FAIL;
    if (fail) {
        int nfail = 0;
        for (int i = 0; i < STEM_STAGE_COUNT; i++)
            nfail += r->stage[i].verdict == STEM_CHECK_FAIL;
        if (nfail == 0)     /* strict, and only a systematic test undecided */
            put(&s, "FAIL (strict): no difference beyond rounding, but a "
                "systematic test could not decide its fault (below)");
        else
            put(&s, "FAIL: a difference is not explained by rounding, in");
        for (int i = 0; i < STEM_STAGE_COUNT; i++)
            if (r->stage[i].verdict == STEM_CHECK_FAIL)
                put(&s, " %s", stem_check_stage_name((stem_check_stage)i));
        put(&s, "\n");
    } else {
        int64_t und = 0;
        for (int i = 0; i < STEM_STAGE_COUNT; i++)
            und += r->stage[i].undecided;
        int64_t und_tests = 0;
        for (int i = 0; i < STEM_BIAS_COUNT; i++)
            und_tests += r->bias[i].heads_undecided;
        if (und)
            put(&s, "PASS, with undecided rows: no difference beyond rounding, "
                "but some could not be told from a fault (below)\n");
        else if (und_tests)
            put(&s, "PASS, with undecided tests: no difference beyond rounding, "
                "but some faults would lie within it (below)\n");
        else
            put(&s, "PASS: every difference is explained by rounding\n");
    }
    if (r->strict_failed)
        put(&s, "strict: undecided rows and tests count as failures\n");
    put(&s, "  profile %s (alpha %g, keep ratio %g, block %d, stride %d, "
        "sinks %d, window %d); GPU dtype %s; heads %lld..%lld of %lld, Lq %lld, "
        "Lk %lld, d %lld\n", stem_profile_name(p->profile), p->alpha, p->keep_ratio,
        p->block, p->stride, p->sinks, p->window, stem_prec_name(o->gpu_dtype),
        (long long)r->head_begin, (long long)r->head_end - 1, (long long)d->hq,
        (long long)d->lq, (long long)d->lk, (long long)d->d);
    put(&s, "  arithmetic ");
    arith_name(&s, o);
    put(&s, "%s: ", r->arith_chosen ? " (chosen from the data)" : "");
    arith_places(&s, o);
    put(&s, "\n");
    for (int i = 0; i < STEM_STAGE_COUNT; i++)
        stage_line(&s, r, (stem_check_stage)i);
    bias_undecided(&s, r);
    if (r->hint[0])
        put(&s, "hint: %s\n", r->hint);
    if (r->arith_note[0])
        put(&s, "arithmetic: %s\n", r->arith_note);
    if (!fail && !verbose)
        return finish(&s);
    if (r->bias_z > 0) {
        /* the systematic tests: their count, threshold and closest call */
        int64_t n = 0;
        int w = 0;
        for (int i = 0; i < STEM_BIAS_COUNT; i++) {
            n += r->bias[i].tests;
            if (r->bias[i].worst > r->bias[w].worst)
                w = i;
        }
        put(&s, "systematic: %lld components tested at |z| > %.2f (false alarm "
            "%g per check); closest %s, %.2f of its limits\n", (long long)n,
            r->bias_z, r->bias_alpha, stem_check_bias_name((stem_check_bias_test)w),
            r->bias[w].worst);
    }
    if (r->diag_added)
        put(&s, "note: rows without their diagonal block were given it for "
            "the attention reference\n");
    for (int i = 0; i < STEM_STAGE_COUNT; i++) {
        const stem_check_stage_result *g = &r->stage[i];
        if (!g->n_items)
            continue;
        put(&s, "%s faults (%lld, worst first):\n",
            stem_check_stage_name((stem_check_stage)i), (long long)g->faults);
        for (int64_t j = 0; j < g->n_items; j++)
            item_text(&s, &g->items[j]);
        if (g->faults > g->n_items)
            put(&s, "    ... %lld more\n", (long long)(g->faults - g->n_items));
    }
    if (r->qblocks_failed > 0 && r->qblock_rows_failed) {
        put(&s, "failing rows per query block (head qblock: rows):");
        int64_t shown = 0;
        for (int64_t hh = 0; hh < r->n_heads; hh++)
            for (int64_t I = 0; I < d->qb; I++) {
                int32_t n = r->qblock_rows_failed[hh * d->qb + I];
                if (!n)
                    continue;
                if (shown++ < 24)
                    put(&s, " %lld %lld: %d;", (long long)r->heads[hh].head,
                        (long long)I, n);
            }
        if (shown > 24)
            put(&s, " ... %lld blocks in all", (long long)shown);
        put(&s, "\n");
    }
    if (verbose && r->n_ties) {
        put(&s, "ties (%lld, widest first):\n", (long long)r->mask_ties);
        for (int64_t j = 0; j < r->n_ties; j++)
            item_text(&s, &r->ties[j]);
    }
    if (verbose && r->n_heads && r->stage[STEM_STAGE_OUT].verdict != STEM_CHECK_ABSENT) {
        put(&s, "heads (rel L2, rows failed, ignored-mask t):\n");
        for (int64_t hh = 0; hh < r->n_heads; hh++) {
            const stem_check_head *h = &r->heads[hh];
            put(&s, "    head %lld: %.3g, %lld", (long long)h->head, h->out_rel_l2,
                (long long)h->rows_failed);
            if (h->dense_decidable)
                put(&s, ", t %.3f", h->dense_t);
            else
                put(&s, ", t undecidable");
            if (h->status != STEM_KIND_NONE)
                put(&s, " (%s)", stem_check_kind_name(h->status));
            put(&s, "\n");
        }
    }
    return finish(&s);
}

/* ------------------------------------------------------------------- JSON */

static void jnum(sbuf *s, const char *key, double x, int comma)
{
    if (isfinite(x))
        put(s, "\"%s\": %.17g%s", key, x, comma ? ", " : "");
    else
        put(s, "\"%s\": \"%s\"%s", key, isnan(x) ? "nan" : x > 0 ? "inf" : "-inf",
            comma ? ", " : "");
}

static void jint(sbuf *s, const char *key, long long x, int comma)
{
    put(s, "\"%s\": %lld%s", key, x, comma ? ", " : "");
}

static void item_json(sbuf *s, const stem_check_item *x)
{
    put(s, "{\"kind\": \"%s\", \"fault\": %s, ", stem_check_kind_name(x->kind),
        stem_check_kind_is_fault(x->kind) ? "true" : "false");
    jint(s, "head", x->head, 1);
    jint(s, "qblock", x->qblock, 1);
    jint(s, "kblock", x->kblock, 1);
    jint(s, "row", x->row, 1);
    jint(s, "col", x->col, 1);
    jnum(s, "gpu", x->gpu, 1);
    jnum(s, "ref", x->ref, 1);
    jnum(s, "err", x->err, 1);
    jnum(s, "limit", x->limit, 1);
    jnum(s, "ref_logit", x->ref_logit, 1);
    jnum(s, "threshold", x->threshold, 0);
    put(s, "}");
}

size_t stem_check_report_json(const stem_check_report *r, char *buf, size_t cap)
{
    sbuf s = {buf, buf ? cap : 0, 0};
    if (!r) {
        put(&s, "null");
        return finish(&s);
    }
    const stem_dims *d = &r->dims;
    const stem_params *p = &r->params;
    const stem_check_options *o = &r->options;
    put(&s, "{\"result\": \"%s\", ", r->verdict == STEM_CHECK_FAIL ? "fail" : "pass");
    put(&s, "\"shape\": {");
    jint(&s, "hq", d->hq, 1), jint(&s, "hkv", d->hkv, 1), jint(&s, "lq", d->lq, 1);
    jint(&s, "lk", d->lk, 1), jint(&s, "d", d->d, 1), jint(&s, "qb", d->qb, 1);
    jint(&s, "kb", d->kb, 0);
    put(&s, "}, \"params\": {\"profile\": \"%s\", ", stem_profile_name(p->profile));
    jnum(&s, "alpha", p->alpha, 1), jnum(&s, "keep_ratio", p->keep_ratio, 1);
    jint(&s, "block", p->block, 1), jint(&s, "stride", p->stride, 1);
    jnum(&s, "lambda", p->value_weight, 1), jint(&s, "sinks", p->sinks, 1);
    jint(&s, "window", p->window, 0);
    put(&s, "}, \"options\": {\"gpu_dtype\": \"%s\", \"score_prec\": \"%s\", "
        "\"logit_store\": \"%s\", \"attn_prec\": \"%s\", \"attn_score_prec\": \"%s\", "
        "\"out_store\": \"%s\", \"lse_store\": \"%s\", ", stem_prec_name(o->gpu_dtype),
        stem_prec_name(o->score_prec), stem_prec_name(o->logit_store),
        stem_prec_name(o->attn_prec), stem_prec_name(o->attn_score_prec),
        stem_prec_name(o->out_store), stem_prec_name(o->lse_store));
    jnum(&s, "tau", o->tau, 1), jnum(&s, "logit_tol", o->logit_tol, 1);
    jnum(&s, "out_tol", o->out_tol, 1), jnum(&s, "lse_tol", o->lse_tol, 1);
    jnum(&s, "sigmas", o->sigmas, 1), jint(&s, "dense_test", o->dense_test, 1);
    jint(&s, "strict", o->strict, 0);
    put(&s, "}, \"arithmetic\": {\"name\": \"");
    arith_name(&s, o);
    put(&s, "\", \"preset\": \"%s\", \"chosen_from_data\": %s, \"places\": \"",
        stem_arith_name(o->arith), r->arith_chosen ? "true" : "false");
    arith_places(&s, o);
    put(&s, "\", \"note\": \"");
    for (const char *c = r->arith_note; *c; c++)
        put(&s, *c == '"' || *c == '\\' ? "\\%c" : "%c", *c);
    put(&s, "\"}, ");
    jint(&s, "head_begin", r->head_begin, 1);
    jint(&s, "head_end", r->head_end, 1);
    put(&s, "\"stages\": {");
    for (int i = 0; i < STEM_STAGE_COUNT; i++) {
        const stem_check_stage_result *g = &r->stage[i];
        put(&s, "%s\"%s\": {\"verdict\": \"%s\", ", i ? ", " : "",
            stem_check_stage_name((stem_check_stage)i),
            g->verdict == STEM_CHECK_PASS ? "pass" : g->verdict == STEM_CHECK_FAIL ? "fail" : "absent");
        jint(&s, "checked", g->checked, 1);
        jint(&s, "faults", g->faults, 1);
        jnum(&s, "worst_ratio", g->worst_ratio, 1);
        jnum(&s, "max_err", g->max_err, 1);
        jint(&s, "units", g->units, 1);
        jint(&s, "decided", g->units - g->undecided, 1);
        jint(&s, "undecided", g->undecided, 1);
        jnum(&s, "alt_ratio", r->alt_ratio[i], 1);
        put(&s, "\"items\": [");
        for (int64_t j = 0; j < g->n_items; j++) {
            put(&s, j ? ", " : "");
            item_json(&s, &g->items[j]);
        }
        put(&s, "]}");
    }
    put(&s, "}, \"logits\": {");
    jint(&s, "nonfinite", r->logit_nonfinite, 1);
    jint(&s, "pattern", r->logit_pattern, 1);
    jnum(&s, "scale", r->logit_scale, 1);
    jnum(&s, "zmax", r->logit_zmax, 0);
    put(&s, "}, \"mask\": {");
    jint(&s, "differences", r->mask_diffs, 1), jint(&s, "tie_count", r->mask_ties, 1);
    jint(&s, "unread", r->mask_unread, 1), jint(&s, "rows_count_off", r->rows_count_off, 1);
    jint(&s, "gpu_kept", r->gpu_kept, 1), jint(&s, "ref_kept", r->ref_kept, 1);
    jint(&s, "causal_blocks", r->causal_blocks, 1);
    jint(&s, "select_ties", r->select_ties, 1);
    jnum(&s, "max_tie_gap", r->max_tie_gap, 1);
    put(&s, "\"ties\": [");
    for (int64_t j = 0; j < r->n_ties; j++) {
        put(&s, j ? ", " : "");
        item_json(&s, &r->ties[j]);
    }
    put(&s, "]}, \"out\": {");
    jint(&s, "under_reference_mask", r->out_under_ref_mask, 1);
    jint(&s, "diagonal_added", r->diag_added, 1);
    jnum(&s, "rel_l2", r->out_rel_l2, 1);
    jint(&s, "rows_failed", r->rows_failed, 1);
    jint(&s, "qblocks_failed", r->qblocks_failed, 1);
    put(&s, "\"heads\": [");
    for (int64_t hh = 0; hh < r->n_heads; hh++) {
        const stem_check_head *h = &r->heads[hh];
        put(&s, "%s{", hh ? ", " : "");
        jint(&s, "head", h->head, 1);
        jnum(&s, "rel_l2", h->out_rel_l2, 1);
        jint(&s, "rows_failed", h->rows_failed, 1);
        jnum(&s, "dense_t", h->dense_t, 1);
        jnum(&s, "dense_spread", h->dense_spread, 1);
        jnum(&s, "masked_vs_dense", h->masked_vs_dense, 1);
        jint(&s, "decidable", h->dense_decidable, 1);
        put(&s, "\"status\": \"%s\", \"qblock_rows_failed\": [",
            stem_check_kind_name(h->status));
        for (int64_t I = 0; r->qblock_rows_failed && I < d->qb; I++)
            put(&s, "%s%d", I ? ", " : "", r->qblock_rows_failed[hh * d->qb + I]);
        put(&s, "]}");
    }
    put(&s, "]}, \"lse\": {");
    jnum(&s, "max_abs", r->lse_max_abs, 1);
    put(&s, "\"base2_hint\": %s}, ", r->lse_base2_hint ? "true" : "false");
    put(&s, "\"bias\": {");
    jnum(&s, "alpha", r->bias_alpha, 1);
    jnum(&s, "z", r->bias_z, 1);
    put(&s, "\"tests\": [");
    for (int i = 0; i < STEM_BIAS_COUNT; i++) {
        const stem_check_bias *b = &r->bias[i];
        put(&s, "%s{\"test\": \"%s\", ", i ? ", " : "", stem_check_bias_name(i));
        jint(&s, "groups", b->tests, 1);
        jint(&s, "faults", b->faults, 1);
        jnum(&s, "threshold", b->threshold, 1);
        jnum(&s, "worst", b->worst, 1);
        jnum(&s, "worst_z", b->worst_z, 1);
        jnum(&s, "worst_component", b->worst_component, 1);
        jint(&s, "worst_head", b->worst_head, 1);
        jint(&s, "worst_qblock", b->worst_qblock, 1);
        jnum(&s, "worst_zratio", b->worst_zratio, 1);
        jint(&s, "heads", b->heads, 1);
        jint(&s, "heads_undecided", b->heads_undecided, 1);
        jnum(&s, "fault_size", b->fault_size, 1);
        jnum(&s, "smallest_failing", b->smallest_failing, 0);
        put(&s, "}");
    }
    put(&s, "]}, ");
    put(&s, "\"hint\": \"");
    for (const char *c = r->hint; *c; c++)
        put(&s, *c == '"' || *c == '\\' ? "\\%c" : "%c", *c);
    put(&s, "\"}\n");
    return finish(&s);
}
