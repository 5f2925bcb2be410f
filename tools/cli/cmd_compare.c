/*
 * cmd_compare.c - `stem compare A B --tensor NAME`: how far tensor NAME of
 * A is from the same tensor of B (B is the reference).
 */
#include <math.h>
#include <string.h>

#include "cli_common.h"
#include "commands.h"

static void compare_usage(FILE *fp)
{
    fputs("usage: stem compare A B [--tensor NAME]... [--max-rel-l2 X]\n\n"
          "For each NAME (default: out), prints the relative L2 error\n"
          "||A - B|| / ||B|| and the largest absolute difference, B being the\n"
          "reference.  Equal infinities count as equal; an infinity or NaN\n"
          "on one side only makes both errors inf.  Exit 1 if the error\n"
          "exceeds --max-rel-l2; 2 if a file cannot be read, a tensor is\n"
          "missing or the shapes differ; 3 out of memory or an I/O error.\n",
          fp);
}

/* Element i of t as a double; t has a float dtype or an integer one. */
static double element(const tf_tensor *t, int64_t i)
{
    const unsigned char *p = t->data;
    switch (t->dtype) {
    case STEM_F32: { float x; memcpy(&x, p + 4 * i, 4); return x; }
    case STEM_F64: { double x; memcpy(&x, p + 8 * i, 8); return x; }
    case STEM_BF16: { uint16_t h; memcpy(&h, p + 2 * i, 2);
                    return stem_bf16_to_f32(h); }
    case STEM_F16: { uint16_t h; memcpy(&h, p + 2 * i, 2);
                   return stem_f16_to_f32(h); }
    case STEM_U8: case STEM_BOOL: return p[i];
    case STEM_I32: { int32_t x; memcpy(&x, p + 4 * i, 4); return x; }
    case STEM_I64: { int64_t x; memcpy(&x, p + 8 * i, 8); return (double)x; }
    default: return NAN;
    }
}

static int compare_one(const tf_file *a, const tf_file *b, const char *name,
                       double max_rel, int have_max)
{
    const tf_tensor *x = tf_find(a, name), *y = tf_find(b, name);
    if (!x || !y) {
        cli_error("compare: tensor '%s' missing from %s", name,
                  !x ? "the first file" : "the second file");
        return CLI_USAGE;
    }
    int same = x->ndim == y->ndim;
    for (int d = 0; same && d < x->ndim; d++)
        same = x->shape[d] == y->shape[d];
    if (!same) {
        cli_error("compare: tensor '%s': shapes differ", name);
        return CLI_USAGE;
    }
    int64_t n = tf_numel(x);
    double num = 0.0, den = 0.0, maxabs = 0.0;
    int broken = 0;
    for (int64_t i = 0; i < n; i++) {
        double p = element(x, i), q = element(y, i);
        if (isinf(p) && isinf(q) && p == q)
            continue;
        if (!isfinite(p) || !isfinite(q)) {
            broken = 1;
            continue;
        }
        double e = p - q;
        num += e * e;
        den += q * q;
        if (fabs(e) > maxabs)
            maxabs = fabs(e);
    }
    double rel = den > 0.0 ? sqrt(num / den) : (num > 0.0 ? INFINITY : 0.0);
    if (broken)
        rel = maxabs = INFINITY;
    printf("%s: rel_l2 %.6e max_abs %.6e (%lld elements)\n", name, rel,
           maxabs, (long long)n);
    if (have_max && !(rel <= max_rel)) {
        cli_error("compare: tensor '%s': relative L2 error %.3e exceeds %g",
                  name, rel, max_rel);
        return CLI_FAIL;
    }
    return CLI_OK;
}

/* `stem compare`; see compare_usage. */
int cmd_compare(int argc, char **argv)
{
    const char *files[2] = {NULL, NULL}, *names[16], *v;
    int nfiles = 0, nnames = 0, have_max = 0, r;
    double max_rel = 0.0;
    for (int i = 1; i < argc;) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            compare_usage(stdout);
            return CLI_OK;
        }
        if ((r = cli_opt_value(argc, argv, &i, "--tensor", &v)) != 0) {
            if (r < 0)
                return CLI_USAGE;
            if (nnames == 16) {
                cli_error("compare: at most 16 --tensor options");
                return CLI_USAGE;
            }
            names[nnames++] = v;
            continue;
        }
        if ((r = cli_opt_value(argc, argv, &i, "--max-rel-l2", &v)) != 0) {
            if (r < 0 ||
                cli_parse_double("--max-rel-l2", v, 0.0, 1e300, &max_rel))
                return CLI_USAGE;
            have_max = 1;
            continue;
        }
        if (argv[i][0] == '-' && argv[i][1] != '\0') {
            cli_error("compare: unknown option '%s'", argv[i]);
            return CLI_USAGE;
        }
        if (nfiles == 2) {
            cli_error("compare: more than two files");
            return CLI_USAGE;
        }
        files[nfiles++] = argv[i++];
    }
    if (nfiles != 2) {
        cli_error("compare: two files are needed");
        compare_usage(stderr);
        return CLI_USAGE;
    }
    if (nnames == 0)
        names[nnames++] = "out";
    tf_file a = {0}, b = {0};
    char err[512];
    int rc = CLI_OK;
    if (tf_read(files[0], &a, err, sizeof(err)) != 0 ||
        tf_read(files[1], &b, err, sizeof(err)) != 0) {
        cli_error("compare: %s", err);
        rc = cli_exit_tf();
    }
    for (int i = 0; rc == CLI_OK && i < nnames; i++)
        rc = compare_one(&a, &b, names[i], max_rel, have_max);
    tf_free(&a);
    tf_free(&b);
    return rc;
}
