/*
 * cmd_budget.c - `stem budget`: the budget b(p) of docs/ALGORITHM.md
 * section 2 for every query-block position p of an n-block prompt, under
 * the three profiles side by side (the library's stem_budget), as a table
 * or (--png) as a plot of the three curves with the line p + 1 (the
 * blocks a row can choose from).
 */
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"
#include "commands.h"
#include "mask_image.h"
#include "png_write.h"

static void budget_usage(FILE *fp)
{
    fputs("usage: stem budget (--blocks N | --tokens T) [--every K] "
          "[--png OUT.png] [options]\n\n"
          "The top-k budget b(p) of a query block at key-block position p\n"
          "= 0 .. n-1 of a prompt of n blocks (T tokens: n = ceil(T / B)),\n"
          "under each profile's preset (angelslim, paper, hpc-ops) with the\n"
          "options below applied to all three; the last column is p + 1,\n"
          "the blocks a row can choose from (the row keeps them all where\n"
          "b(p) >= p + 1).  --every K prints every K-th position (and the\n"
          "last).  --png draws the three curves and p + 1 instead.\n\n",
          fp);
    cli_opts_usage(fp);
}

#define NPROF STEM_PROFILE_COUNT

/* Plot colours of the profiles, and of the line p + 1. */
static const uint32_t prof_colour[NPROF] = {0x1F5FBF, 0xE07000, 0x208040};
#define CAND_COLOUR 0x707070u
/* Line thickness per profile: hpc-ops, whose curve mostly equals
 * angelslim's, is drawn wider underneath so that it shows around it. */
static const int prof_thick[NPROF] = {2, 2, 6};

#define PLOT_W 640
#define PLOT_H 360
#define PAD 14
#define TEXT_H 14               /* the font's glyph height */

static void rect(mi_image *img, int x, int y, int w, int h, uint32_t c)
{
    for (int j = y; j < y + h; j++)
        for (int i = x; i < x + w; i++) {
            if (i < 0 || j < 0 || i >= img->w || j >= img->h)
                continue;
            uint8_t *p = img->rgb + ((size_t)j * (size_t)img->w + i) * 3;
            p[0] = (uint8_t)(c >> 16);
            p[1] = (uint8_t)(c >> 8);
            p[2] = (uint8_t)c;
        }
}

/* A tick step of 1, 2, 5, 10, ... units with at least min_px between. */
static int64_t step_for(double px_per_unit, int min_px)
{
    static const int m[3] = {1, 2, 5};
    for (int64_t dec = 1;; dec *= 10)
        for (int i = 0; i < 3; i++)
            if (m[i] * dec * px_per_unit >= min_px || dec > (1ll << 40))
                return m[i] * dec;
}

/*
 * The plot: x = p (0 .. n-1), y = budget (0 .. ymax), each profile as a
 * step line 2 pixels thick, p + 1 as a dotted grey line; axes with ticks,
 * a title and a legend.  0, or -1 without memory.
 */
static int plot(const int32_t *const b[NPROF], int64_t n, int blk,
                mi_image *img)
{
    int32_t ymax = 1;
    for (int k = 0; k < NPROF; k++)
        for (int64_t p = 0; p < n; p++)
            ymax = b[k][p] > ymax ? b[k][p] : ymax;
    ymax = ymax + ymax / 10 + 1;
    char buf[96];
    snprintf(buf, sizeof(buf), "%d", ymax);
    const int x0 = PAD + mi_text_width(buf) + 10;
    const int y0 = PAD + 2 * (TEXT_H + 6);
    img->w = x0 + PLOT_W + PAD + 20;
    img->h = y0 + PLOT_H + 10 + 2 * (TEXT_H + 6) + 2 * (TEXT_H + 8) + PAD;
    img->rgb = malloc((size_t)img->w * (size_t)img->h * 3);
    if (!img->rgb)
        return -1;
    memset(img->rgb, 0xFF, (size_t)img->w * (size_t)img->h * 3);
    const double sx = (double)PLOT_W / (double)n, sy = (double)PLOT_H / ymax;
#define X(p) (x0 + (int)((double)(p) * sx))
#define Y(v) (y0 + PLOT_H - (int)((double)(v) * sy))

    snprintf(buf, sizeof(buf), "budget per query block, n = %lld blocks "
             "(%lld tokens)", (long long)n, (long long)n * blk);
    mi_draw_text(img, PAD, PAD, buf, MI_AXIS);
    mi_draw_text(img, PAD, PAD + TEXT_H + 6, "top-k blocks b(p)", MI_AXIS);
    /* grid lines and ticks */
    int64_t ys = step_for(sy, 3 * TEXT_H), xs = step_for(sx, 60);
    for (int64_t v = 0; v <= ymax; v += ys) {
        rect(img, x0, Y(v), PLOT_W, 1, 0xE4E4E4);
        snprintf(buf, sizeof(buf), "%lld", (long long)v);
        mi_draw_text(img, x0 - 8 - mi_text_width(buf), Y(v) - TEXT_H / 2,
                     buf, MI_AXIS);
        rect(img, x0 - 5, Y(v), 5, 1, MI_AXIS);
    }
    for (int64_t p = 0; p < n; p += xs) {
        rect(img, X(p), y0 + PLOT_H, 1, 5, MI_AXIS);
        snprintf(buf, sizeof(buf), "%lld", (long long)p);
        mi_draw_text(img, X(p) - mi_text_width(buf) / 2, y0 + PLOT_H + 8,
                     buf, MI_AXIS);
    }
    rect(img, x0, y0, 1, PLOT_H + 1, MI_AXIS);
    rect(img, x0, y0 + PLOT_H, PLOT_W + 1, 1, MI_AXIS);
    int ty = y0 + PLOT_H + 8 + TEXT_H + 6;
    mi_draw_text(img, x0, ty, "query block position p", MI_AXIS);
    /* p + 1, dotted, under the curves */
    for (int x = 0; x < PLOT_W; x += 3) {
        double p = x / sx;
        double v = p + 1.0;
        if (v <= ymax)
            rect(img, x0 + x, Y(v), 1, 1, CAND_COLOUR);
    }
    /* the step curves: one horizontal run per position, joined by
     * vertical runs where the value changes */
    for (int k = NPROF - 1; k >= 0; k--)
        for (int64_t p = 0; p < n; p++) {
            int xa = X(p), xb = X(p + 1), y = Y(b[k][p]);
            const int t = prof_thick[k];
            rect(img, xa, y - t / 2, xb - xa + 1, t, prof_colour[k]);
            if (p + 1 < n && b[k][p + 1] != b[k][p]) {
                int y2 = Y(b[k][p + 1]);
                int lo = y < y2 ? y : y2, hi = y < y2 ? y2 : y;
                rect(img, xb - t / 2, lo - t / 2, t, hi - lo + t,
                     prof_colour[k]);
            }
        }
    /* legend */
    int lx = PAD, ly = ty + TEXT_H + 12;
    for (int k = 0; k <= NPROF; k++) {
        const char *name = k == STEM_PROFILE_HPCOPS
                               ? "hpc-ops (wide, under angelslim)"
                           : k < NPROF ? stem_profile_name((stem_profile)k)
                                       : "p + 1: every causal block";
        uint32_t c = k < NPROF ? prof_colour[k] : CAND_COLOUR;
        int w = 24 + 6 + mi_text_width(name);
        if (lx > PAD && lx + w > img->w - PAD) {
            lx = PAD;
            ly += TEXT_H + 8;
        }
        rect(img, lx, ly + TEXT_H / 2 - 2, 24, k < NPROF ? prof_thick[k] : 1,
             c);
        mi_draw_text(img, lx + 30, ly, name, MI_AXIS);
        lx += w + 24;
    }
#undef X
#undef Y
    return 0;
}

/* `stem budget`; see budget_usage. */
int cmd_budget(int argc, char **argv)
{
    const char *png = NULL, *v;
    long long blocks = -1, tokens = -1, every = 1;
    int r;
    cli_opts o;
    cli_opts_init(&o);
    for (int i = 1; i < argc;) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            budget_usage(stdout);
            return CLI_OK;
        }
        if ((r = cli_opt_value(argc, argv, &i, "--png", &png)) != 0) {
            if (r < 0)
                return CLI_USAGE;
            continue;
        }
        if ((r = cli_opt_value(argc, argv, &i, "--blocks", &v)) != 0) {
            if (r < 0 || cli_parse_int("--blocks", v, 1, 1 << 24, &blocks))
                return CLI_USAGE;
            continue;
        }
        if ((r = cli_opt_value(argc, argv, &i, "--tokens", &v)) != 0) {
            if (r < 0 || cli_parse_int("--tokens", v, 1, 1ll << 40, &tokens))
                return CLI_USAGE;
            continue;
        }
        if ((r = cli_opt_value(argc, argv, &i, "--every", &v)) != 0) {
            if (r < 0 || cli_parse_int("--every", v, 1, 1 << 24, &every))
                return CLI_USAGE;
            continue;
        }
        if ((r = cli_opts_parse(&o, argc, argv, &i)) != 0) {
            if (r < 0)
                return CLI_USAGE;
            continue;
        }
        cli_error("budget: unknown argument '%s'", argv[i]);
        return CLI_USAGE;
    }
    if ((blocks < 0) == (tokens < 0)) {
        cli_error("budget: give one of --blocks and --tokens");
        budget_usage(stderr);
        return CLI_USAGE;
    }
    stem_params p[NPROF];
    for (int k = 0; k < NPROF; k++) {
        o.profile = (stem_profile)k;
        if (cli_opts_resolve(&o, &p[k]) != CLI_OK)
            return CLI_USAGE;
    }
    int64_t kb = blocks > 0 ? blocks : (tokens + p[0].block - 1) / p[0].block;
    if (kb > (1 << 24)) {
        cli_error("budget: %lld blocks is too many", (long long)kb);
        return CLI_USAGE;
    }
    int64_t n;
    stem_status nst = stem_budget_length(&p[0], kb, &n);
    if (nst != STEM_OK)
        return cli_status_error("budget", NULL, nst);
    int32_t *b[NPROF] = {NULL};
    int rc = CLI_INTERNAL;      /* out of memory, unless said otherwise */
    for (int k = 0; k < NPROF; k++) {
        stem_status st;
        if (!(b[k] = malloc((size_t)n * sizeof(int32_t)))) {
            cli_error("budget: out of memory");
            goto done;
        }
        if ((st = stem_budget(&p[k], kb, b[k])) != STEM_OK) {
            cli_error("budget: %s: %s (%s)", stem_profile_name((stem_profile)k),
                      stem_strerror(st), stem_last_error());
            rc = CLI_USAGE;
            goto done;
        }
    }
    if (png) {
        mi_image img = {0};
        char err[256];
        if (plot((const int32_t *const *)b, n, p[0].block, &img) != 0) {
            cli_error("budget: out of memory");
            goto done;
        }
        int w = png_write_rgb(png, img.w, img.h, img.rgb, err, sizeof(err));
        mi_free(&img);
        if (w != 0) {
            cli_error("budget: %s", err);
            rc = cli_exit_tf();
            goto done;
        }
        printf("wrote %s: budgets of %lld positions, three profiles\n", png,
               (long long)n);
    } else {
        printf("budget b(p) of n = %lld blocks (alpha %g, keep ratio %g)\n",
               (long long)n, p[0].alpha, p[0].keep_ratio);
        printf("%6s %10s %10s %10s %6s\n", "p", "angelslim", "paper",
               "hpc-ops", "p+1");
        for (int64_t q = 0; q < n; q++)
            if (q % every == 0 || q == n - 1)
                printf("%6lld %10d %10d %10d %6lld\n", (long long)q, b[0][q],
                       b[1][q], b[2][q], (long long)(q + 1));
    }
    rc = CLI_OK;
done:
    for (int k = 0; k < NPROF; k++)
        free(b[k]);
    return rc;
}
