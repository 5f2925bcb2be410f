/*
 * cmd_gen.c - `stem gen`: a built-in q/k/v workload generator.
 *
 * kind structured (default), per kv head:
 *   - content: i.i.d. N(0,1) plus a per-segment "topic" direction that
 *     drifts slowly from segment to segment (nearby tokens agree), shared by
 *     queries and keys, then RoPE (theta 10000, rotate-half pairing);
 *   - sinks: the first 4 keys get a large component along a sink direction
 *     that every query also carries, so every query attends to them;
 *   - retrieval: about 30% of the 256-token segments get a planted key
 *     pattern; each 128-token query block carries the pattern of one or two
 *     planted segments that end before it;
 *   - values: N(0,1) scaled per segment (0.4 .. 2.0, planted segments x1.5).
 * The sink and retrieval components are added after RoPE, in the rotated
 * frame, so their pull does not fade with distance.
 * kind random: q, k, v i.i.d. N(0,1).
 *
 * Every number comes from xoshiro256** seeded through splitmix64, normals
 * from the polar method, and log / exp / sin / cos are evaluated here with
 * plain double arithmetic, so the bytes are the same on every machine.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"
#include "commands.h"

#define GEN_SEG 256             /* tokens per segment */
#define GEN_QBLOCK 128          /* tokens per query block */
#define GEN_SINKS 4             /* sink tokens */

/* ------------------------------------------------------------- the PRNG */

typedef struct rng {
    uint64_t s[4];
    int have_spare;
    double spare;
} rng;

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void rng_seed(rng *r, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed ^ (stream * 0xd1b54a32d192ed03ull);
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
    r->have_spare = 0;
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

/* Uniform in [0, 1). */
static double rng_uniform(rng *r)
{
    return (double)(rng_next(r) >> 11) * 0x1p-53;
}

/* Natural log of x > 0 (finite) by 2*atanh((m-1)/(m+1)). */
static double gen_log(double x)
{
    int e;
    double m = frexp(x, &e);
    if (m < 0.70710678118654752) {
        m *= 2.0;
        e -= 1;
    }
    double t = (m - 1.0) / (m + 1.0);
    double t2 = t * t;
    double p = 1.0 / 25.0;
    for (int k = 11; k >= 0; k--)
        p = p * t2 + 1.0 / (double)(2 * k + 1);
    return 2.0 * t * p + (double)e * 0.69314718055994531;
}

/* e^x for moderate x by reduction to |r| <= ln2/2 and a Taylor series. */
static double gen_exp(double x)
{
    double n = nearbyint(x / 0.69314718055994531);
    double r = x - n * 0.69314718055994531;
    double term = 1.0, sum = 1.0;
    for (int k = 1; k < 22; k++) {
        term = term * r / (double)k;
        sum = sum + term;
    }
    return ldexp(sum, (int)n);
}

/* cos and sin of |x| <= 1 by Taylor series. */
static void gen_cossin(double x, double *c, double *s)
{
    double tc = 1.0, ts = x, sc = 1.0, ss = x, x2 = x * x;
    for (int k = 1; k < 14; k++) {
        tc = -tc * x2 / (double)((2 * k - 1) * (2 * k));
        ts = -ts * x2 / (double)((2 * k) * (2 * k + 1));
        sc = sc + tc;
        ss = ss + ts;
    }
    *c = sc;
    *s = ss;
}

/* N(0,1) by the polar method. */
static double rng_normal(rng *r)
{
    if (r->have_spare) {
        r->have_spare = 0;
        return r->spare;
    }
    for (;;) {
        double u = 2.0 * rng_uniform(r) - 1.0;
        double v = 2.0 * rng_uniform(r) - 1.0;
        double s = u * u + v * v;
        if (s >= 1.0 || s == 0.0)
            continue;
        double f = sqrt(-2.0 * gen_log(s) / s);
        r->spare = v * f;
        r->have_spare = 1;
        return u * f;
    }
}

/* x[0..d-1] = a random unit vector. */
static void unit_vector(rng *r, double *x, int d)
{
    double n2 = 0.0;
    for (int i = 0; i < d; i++) {
        x[i] = rng_normal(r);
        n2 += x[i] * x[i];
    }
    double inv = 1.0 / sqrt(n2);
    for (int i = 0; i < d; i++)
        x[i] *= inv;
}

/* --------------------------------------------------------- the workload */

typedef struct gen_spec {
    int64_t n;
    int h, g, d;
    uint64_t seed;
    int structured;
} gen_spec;

/* RoPE in place over x [n, d] (row stride d), rotate-half pairing. */
static void apply_rope(double *x, int64_t n, int d)
{
    int half = d / 2;
    double lt = gen_log(10000.0);
    for (int i = 0; i < half; i++) {
        double w = gen_exp(-(2.0 * i / d) * lt);
        double c1, s1, c = 1.0, s = 0.0;
        gen_cossin(w, &c1, &s1);
        for (int64_t t = 0; t < n; t++) {
            double *row = x + t * d;
            double a = row[i], b = row[i + half];
            row[i] = a * c - b * s;
            row[i + half] = b * c + a * s;
            double cn = c * c1 - s * s1;
            s = s * c1 + c * s1;
            c = cn;
        }
    }
}

/* Per kv head: the directions its queries and keys share. */
typedef struct kv_plan {
    double *topic;              /* [nseg, d] */
    double *pattern;            /* [nseg, d], used where planted */
    double *sink;               /* [d] */
    unsigned char *planted;     /* [nseg] */
    double *vscale;             /* [nseg] */
} kv_plan;

static void store(float *dst, const double *src, int64_t count)
{
    for (int64_t i = 0; i < count; i++)
        dst[i] = (float)src[i];
}

/* Fill q [h, n, d], k and v [g, n, d] (floats). */
static int generate(const gen_spec *sp, float *q, float *k, float *v)
{
    int64_t n = sp->n, nseg = (n + GEN_SEG - 1) / GEN_SEG;
    int64_t nqb = (n + GEN_QBLOCK - 1) / GEN_QBLOCK;
    int d = sp->d;
    double sd = sqrt((double)d);
    const double A = sqrt(2.0 * sd), S = 2.0 * sd, Sq = 2.5;
    const double R = 2.0 * sqrt(sd);
    double *buf = malloc((size_t)n * (size_t)d * sizeof(double));
    kv_plan pl = {
        malloc((size_t)nseg * (size_t)d * sizeof(double)),
        malloc((size_t)nseg * (size_t)d * sizeof(double)),
        malloc((size_t)d * sizeof(double)), malloc((size_t)nseg),
        malloc((size_t)nseg * sizeof(double))};
    int32_t *pick = malloc((size_t)nqb * 2 * sizeof(int32_t));
    int32_t *cand = malloc((size_t)nseg * sizeof(int32_t));
    int ok = buf && pl.topic && pl.pattern && pl.sink && pl.planted &&
             pl.vscale && pick && cand;
    int group = sp->h / sp->g;
    rng r;
    for (int g = 0; ok && g < sp->g; g++) {
        int64_t nd = n * d;
        if (!sp->structured) {
            rng_seed(&r, sp->seed, 1000u + (uint64_t)g);
            for (int64_t i = 0; i < nd; i++)
                k[g * nd + i] = (float)rng_normal(&r);
            for (int64_t i = 0; i < nd; i++)
                v[g * nd + i] = (float)rng_normal(&r);
            for (int hh = 0; hh < group; hh++) {
                int h = g * group + hh;
                rng_seed(&r, sp->seed, 2000u + (uint64_t)h);
                for (int64_t i = 0; i < nd; i++)
                    q[h * nd + i] = (float)rng_normal(&r);
            }
            continue;
        }
        /* the plan of kv head g */
        rng_seed(&r, sp->seed, 1000u + (uint64_t)g);
        unit_vector(&r, pl.sink, d);
        int nplanted = 0;
        for (int64_t j = 0; j < nseg; j++) {
            double *tj = pl.topic + j * d;
            unit_vector(&r, tj, d);
            if (j > 0) {
                double n2 = 0.0;
                for (int i = 0; i < d; i++) {
                    tj[i] = 0.8 * tj[i - d] + 0.6 * tj[i];
                    n2 += tj[i] * tj[i];
                }
                double inv = 1.0 / sqrt(n2);
                for (int i = 0; i < d; i++)
                    tj[i] *= inv;
            }
            unit_vector(&r, pl.pattern + j * d, d);
            pl.planted[j] = j > 0 && (rng_uniform(&r) < 0.3 ||
                                      (j == 1 && nplanted == 0));
            nplanted += pl.planted[j];
            pl.vscale[j] = (0.4 + 1.6 * rng_uniform(&r)) *
                           (pl.planted[j] ? 1.5 : 1.0);
        }
        /* keys */
        for (int64_t t = 0; t < n; t++) {
            const double *tp = pl.topic + (t / GEN_SEG) * d;
            for (int i = 0; i < d; i++)
                buf[t * d + i] = rng_normal(&r) + A * tp[i];
        }
        apply_rope(buf, n, d);
        for (int64_t t = 0; t < n; t++) {
            int64_t j = t / GEN_SEG;
            for (int i = 0; i < d; i++) {
                if (t < GEN_SINKS)
                    buf[t * d + i] += S * pl.sink[i];
                if (pl.planted[j])
                    buf[t * d + i] += R * pl.pattern[j * d + i];
            }
        }
        store(k + g * nd, buf, nd);
        /* values */
        for (int64_t t = 0; t < n; t++)
            for (int i = 0; i < d; i++)
                buf[t * d + i] = pl.vscale[t / GEN_SEG] * rng_normal(&r);
        store(v + g * nd, buf, nd);
        /* the query heads reading kv head g */
        for (int hh = 0; hh < group; hh++) {
            int h = g * group + hh;
            rng_seed(&r, sp->seed, 2000u + (uint64_t)h);
            for (int64_t b = 0; b < nqb; b++) {
                int nc = 0;
                for (int64_t j = 0; j < nseg; j++)
                    if (pl.planted[j] && (j + 1) * GEN_SEG <= b * GEN_QBLOCK)
                        cand[nc++] = (int32_t)j;
                pick[2 * b] = pick[2 * b + 1] = -1;
                if (nc > 0) {
                    pick[2 * b] = cand[rng_next(&r) % (uint64_t)nc];
                    if (nc > 1 && rng_uniform(&r) < 0.5)
                        pick[2 * b + 1] = cand[rng_next(&r) % (uint64_t)nc];
                }
            }
            for (int64_t t = 0; t < n; t++) {
                const double *tp = pl.topic + (t / GEN_SEG) * d;
                for (int i = 0; i < d; i++)
                    buf[t * d + i] = rng_normal(&r) + A * tp[i];
            }
            apply_rope(buf, n, d);
            for (int64_t t = 0; t < n; t++) {
                const int32_t *pk = pick + 2 * (t / GEN_QBLOCK);
                double w = pk[1] >= 0 ? 0.75 * R : R;
                for (int i = 0; i < d; i++) {
                    double x = buf[t * d + i] + Sq * pl.sink[i];
                    for (int m = 0; m < 2; m++)
                        if (pk[m] >= 0)
                            x += w * pl.pattern[(int64_t)pk[m] * d + i];
                    buf[t * d + i] = x;
                }
            }
            store(q + (int64_t)h * nd, buf, nd);
        }
    }
    free(buf);
    free(pl.topic);
    free(pl.pattern);
    free(pl.sink);
    free(pl.planted);
    free(pl.vscale);
    free(pick);
    free(cand);
    return ok ? 0 : -1;
}

/* ----------------------------------------------------------- the command */

static void gen_usage(FILE *fp)
{
    fputs("usage: stem gen -o OUT.safetensors --tokens N --heads H "
          "--kv-heads G --dim D\n"
          "                [--seed S] [--kind structured|random] "
          "[--dtype bf16|f16|f32]\n"
          "                [--layout hnd|nhd]\n\n"
          "Writes q [H,N,d], k and v [G,N,d] (default dtype bf16; with "
          "--layout nhd\n[N,H,d] and [N,G,d]) with metadata generator and "
          "seed.  The bytes\ndepend only on the arguments.\n",
          fp);
}

/* Convert x [rows, n, d] to the output dtype, stored [rows, n, d] or
 * (nhd) [n, rows, d], and add it to f. */
static int add_converted(tf_file *f, const char *name, stem_dtype dt, int nhd,
                         const float *x, int64_t rows, int64_t n, int d)
{
    int64_t shape[3] = {rows, n, d};
    int64_t count = rows * n * d;
    char err[256];
    size_t es = stem_dtype_size(dt);
    unsigned char *buf = malloc((size_t)count * es);
    if (!buf) {
        cli_error("gen: out of memory");
        return -1;
    }
    if (nhd) {
        shape[0] = n;
        shape[1] = rows;
    }
    for (int64_t r = 0; r < rows; r++)
        for (int64_t t = 0; t < n; t++) {
            const float *src = x + (r * n + t) * d;
            int64_t at = nhd ? (t * rows + r) * d : (r * n + t) * d;
            for (int c = 0; c < d; c++) {
                uint16_t h;
                if (dt == STEM_F32) {
                    memcpy(buf + (size_t)(at + c) * 4, &src[c], 4);
                    continue;
                }
                h = dt == STEM_BF16 ? stem_f32_to_bf16(src[c])
                                  : stem_f32_to_f16(src[c]);
                memcpy(buf + (size_t)(at + c) * 2, &h, 2);
            }
        }
    int rc = tf_add(f, name, dt, 3, shape, buf, err, sizeof(err));
    free(buf);
    if (rc != 0)
        cli_error("gen: %s", err);
    return rc;
}

/* `stem gen`; see gen_usage. */
int cmd_gen(int argc, char **argv)
{
    const char *out = NULL, *v;
    long long tokens = -1, heads = -1, kvh = -1, dim = -1, seed = 0;
    int structured = 1, nhd = 0, r;
    stem_dtype dt = STEM_BF16;
    for (int i = 1; i < argc;) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            gen_usage(stdout);
            return CLI_OK;
        }
        if ((r = cli_opt_value(argc, argv, &i, "-o", &out)) ||
            (r = cli_opt_value(argc, argv, &i, "--output", &out))) {
            if (r < 0)
                return CLI_USAGE;
        } else if ((r = cli_opt_value(argc, argv, &i, "--tokens", &v))) {
            if (r < 0 || cli_parse_int("--tokens", v, 1, 1 << 24, &tokens))
                return CLI_USAGE;
        } else if ((r = cli_opt_value(argc, argv, &i, "--heads", &v))) {
            if (r < 0 || cli_parse_int("--heads", v, 1, 1024, &heads))
                return CLI_USAGE;
        } else if ((r = cli_opt_value(argc, argv, &i, "--kv-heads", &v))) {
            if (r < 0 || cli_parse_int("--kv-heads", v, 1, 1024, &kvh))
                return CLI_USAGE;
        } else if ((r = cli_opt_value(argc, argv, &i, "--dim", &v))) {
            if (r < 0 ||
                cli_parse_int("--dim", v, 1, STEM_MAX_HEAD_DIM, &dim))
                return CLI_USAGE;
        } else if ((r = cli_opt_value(argc, argv, &i, "--seed", &v))) {
            if (r < 0 || cli_parse_int("--seed", v, 0, INT64_MAX, &seed))
                return CLI_USAGE;
        } else if ((r = cli_opt_value(argc, argv, &i, "--kind", &v))) {
            if (r < 0)
                return CLI_USAGE;
            if (strcmp(v, "structured") == 0)
                structured = 1;
            else if (strcmp(v, "random") == 0)
                structured = 0;
            else {
                cli_error("gen: --kind: '%s' is not structured or random", v);
                return CLI_USAGE;
            }
        } else if ((r = cli_opt_value(argc, argv, &i, "--layout", &v))) {
            if (r < 0)
                return CLI_USAGE;
            if (strcmp(v, "hnd") != 0 && strcmp(v, "nhd") != 0) {
                cli_error("gen: --layout: '%s' is not hnd or nhd", v);
                return CLI_USAGE;
            }
            nhd = strcmp(v, "nhd") == 0;
        } else if ((r = cli_opt_value(argc, argv, &i, "--dtype", &v))) {
            if (r < 0)
                return CLI_USAGE;
            if (strcmp(v, "bf16") == 0)
                dt = STEM_BF16;
            else if (strcmp(v, "f16") == 0)
                dt = STEM_F16;
            else if (strcmp(v, "f32") == 0)
                dt = STEM_F32;
            else {
                cli_error("gen: --dtype: '%s' is not bf16, f16 or f32", v);
                return CLI_USAGE;
            }
        } else {
            cli_error("gen: unknown argument '%s'", argv[i]);
            return CLI_USAGE;
        }
    }
    if (!out || tokens < 0 || heads < 0 || kvh < 0 || dim < 0) {
        cli_error("gen: -o, --tokens, --heads, --kv-heads and --dim are "
                  "required");
        gen_usage(stderr);
        return CLI_USAGE;
    }
    if (heads % kvh != 0) {
        cli_error("gen: --heads %lld is not a multiple of --kv-heads %lld",
                  heads, kvh);
        return CLI_USAGE;
    }
    if (structured && dim % 2 != 0) {
        cli_error("gen: structured workloads need an even --dim (RoPE)");
        return CLI_USAGE;
    }
    if (heads * tokens * dim > (1ll << 31)) {
        cli_error("gen: %lld x %lld x %lld elements is too large", heads,
                  tokens, dim);
        return CLI_USAGE;
    }
    gen_spec sp = {tokens, (int)heads, (int)kvh, (int)dim, (uint64_t)seed,
                   structured};
    size_t qn = (size_t)(heads * tokens * dim), kn = (size_t)(kvh * tokens * dim);
    float *q = malloc(qn * sizeof(float)), *k = malloc(kn * sizeof(float));
    float *vv = malloc(kn * sizeof(float));
    tf_file f = {0};
    int rc = CLI_INTERNAL;
    char err[256], num[32];
    if (!q || !k || !vv || generate(&sp, q, k, vv) != 0) {
        cli_error("gen: out of memory");
        goto done;
    }
    if (add_converted(&f, "q", dt, nhd, q, heads, tokens, (int)dim) ||
        add_converted(&f, "k", dt, nhd, k, kvh, tokens, (int)dim) ||
        add_converted(&f, "v", dt, nhd, vv, kvh, tokens, (int)dim))
        goto done;
    snprintf(num, sizeof(num), "%lld", seed);
    if (tf_set_meta(&f, "generator", structured ? "structured" : "random",
                    err, sizeof(err)) ||
        tf_set_meta(&f, "seed", num, err, sizeof(err)) ||
        (structured &&
         tf_set_meta(&f, "rope_theta", "10000", err, sizeof(err)))) {
        cli_error("gen: %s", err);
        goto done;
    }
    if (tf_write_safetensors(&f, out, err, sizeof(err)) != 0) {
        cli_error("gen: %s", err);
        rc = cli_exit_tf();
        goto done;
    }
    rc = CLI_OK;
done:
    tf_free(&f);
    free(q);
    free(k);
    free(vv);
    return rc;
}
