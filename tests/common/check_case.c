/*
 * check_case.c - the checker tests' small case (see check_case.h).
 */
#include "check_case.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void need(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "check_case: %s failed\n", what);
        abort();
    }
}

size_t cc_cells(const cc_case *c)
{
    return (size_t)c->dm.hq * (size_t)c->dm.qb * (size_t)c->dm.kb;
}

size_t cc_outs(const cc_case *c)
{
    return (size_t)c->dm.hq * (size_t)c->dm.lq * (size_t)c->dm.d;
}

size_t cc_row(const cc_case *c, int64_t h, int64_t I)
{
    return ((size_t)h * (size_t)c->dm.qb + (size_t)I) * (size_t)c->dm.kb;
}

int cc_forced(const cc_case *c, int64_t I, int64_t J)
{
    int64_t pos = I + c->dm.offset / c->p.block;
    return J <= pos && (J < c->p.sinks || J > pos - c->p.window ||
                        (c->p.keep_diagonal && J == pos));
}

/* Key block J of kv head g leans along a unit direction by an amount from
 * a shuffled ramp over -3..3 (blocks 0..7 lowest), queries along it by 2;
 * noise N(0, 0.5^2) on q and k, v N(0, 1). */
static void structured(cc_case *c, uint64_t seed)
{
    const int64_t hq = c->dm.hq, hkv = c->dm.hkv, n = c->dm.lk, d = c->dm.d;
    const int64_t kb = c->dm.kb, B = c->p.block;
    tu_rng r;
    tu_rng_seed(&r, seed);
    double *u = malloc((size_t)(hkv * d) * sizeof(double));
    double *amt = malloc((size_t)(hkv * kb) * sizeof(double));
    int64_t *perm = malloc((size_t)kb * sizeof(int64_t));
    need(u && amt && perm, "malloc");
    for (int64_t g = 0; g < hkv; g++) {
        double n2 = 0;
        for (int64_t e = 0; e < d; e++) {
            u[g * d + e] = tu_rng_normal(&r);
            n2 += u[g * d + e] * u[g * d + e];
        }
        for (int64_t e = 0; e < d; e++)
            u[g * d + e] /= sqrt(n2);
        for (int64_t j = 0; j < kb; j++)
            perm[j] = j;
        for (int64_t j = kb - 1; j > 8; j--) {
            int64_t x = tu_rng_int(&r, 8, j), t = perm[j];
            perm[j] = perm[x], perm[x] = t;
        }
        for (int64_t j = 0; j < kb; j++)
            amt[g * kb + j] = 6.0 * (double)perm[j] / (double)(kb - 1) - 3.0;
    }
    for (int64_t h = 0; h < hq; h++)
        for (int64_t t = 0; t < n; t++)
            for (int64_t e = 0; e < d; e++)
                tu_set(&c->q.t, h, t, e, 0.5 * tu_rng_normal(&r) +
                                             2.0 * u[(h / (hq / hkv)) * d + e]);
    for (int64_t g = 0; g < hkv; g++)
        for (int64_t t = 0; t < n; t++)
            for (int64_t e = 0; e < d; e++) {
                tu_set(&c->k.t, g, t, e, 0.5 * tu_rng_normal(&r) +
                                             4.0 * amt[g * kb + t / B] * u[g * d + e]);
                tu_set(&c->v.t, g, t, e, tu_rng_normal(&r));
            }
    free(u), free(amt), free(perm);
}

void cc_make(cc_case *c, int random, int64_t hq, int64_t hkv, int64_t n,
             int64_t d, uint64_t seed)
{
    memset(c, 0, sizeof(*c));
    need(stem_params_init(&c->p, STEM_PROFILE_ANGELSLIM) == STEM_OK, "params");
    c->p.block = 32;
    c->q = tu_tensor_new(STEM_BF16, TU_HND, hq, n, d);
    c->k = tu_tensor_new(STEM_BF16, TU_HND, hkv, n, d);
    c->v = tu_tensor_new(STEM_BF16, TU_HND, hkv, n, d);
    need(stem_dims_get(&c->p, &c->q.t, &c->k.t, &c->v.t, 1, &c->dm) == STEM_OK,
         "dims");
    if (random) {
        tu_fill_normal(&c->q.t, seed, 1.0);
        tu_fill_normal(&c->k.t, seed + 1, 1.0);
        tu_fill_normal(&c->v.t, seed + 2, 1.0);
    } else {
        structured(c, seed);
    }
    c->logits = malloc(cc_cells(c) * sizeof(float));
    c->mask = malloc(cc_cells(c));
    c->out = malloc(cc_outs(c) * sizeof(float));
    c->lse = malloc((size_t)(hq * n) * sizeof(float));
    c->budget = malloc((size_t)c->dm.kb * sizeof(int32_t));
    need(c->logits && c->mask && c->out && c->lse && c->budget, "malloc");
    cc_refresh(c);
}

void cc_refresh(cc_case *c)
{
    stem_tensor o = stem_tensor_hnd(c->out, STEM_F32, c->dm.hq, c->dm.lq, c->dm.d);
    need(stem_prefill(&c->p, &c->q.t, &c->k.t, &c->v.t, &o, c->lse, c->logits,
                      c->mask) == STEM_OK, "prefill");
    need(stem_budget(&c->p, c->dm.kb, c->budget) == STEM_OK, "budget");
}

void cc_free(cc_case *c)
{
    tu_tensor_free(&c->q);
    tu_tensor_free(&c->k);
    tu_tensor_free(&c->v);
    free(c->logits), free(c->mask), free(c->out), free(c->lse), free(c->budget);
    memset(c, 0, sizeof(*c));
}
