/*
 * test_determinism.c - the public API gives the same bytes for any thread
 * count and on every instruction set.
 *
 * Medium workloads (about a thousand tokens, 4 query heads over 2 kv heads,
 * d 64 and 128, structured random data) go through stem_prefill (block
 * logits, mask, out, lse) and stem_attention_dense (out, lse).  Within this
 * process the results of params.threads = 2, 3, 8 must equal those of
 * threads = 1 byte for byte.  The active instruction set is chosen once per
 * process, so every other instruction set this machine runs is checked by
 * re-running this program with STEM_ISA=<isa> and the arguments
 * `--dump FILE`: it writes its result bytes to FILE, which must equal ours.
 * STEM_TEST_RUNNER, when set, is a command prefix for that re-run (e.g.
 * "qemu-aarch64 -L /usr/aarch64-linux-gnu" for a cross build).
 * STEM_TEST_QUICK=1 divides the token counts by 3 (for emulators).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/testutil.h"
#include "stem.h"

typedef struct workload {
    const char *name;
    stem_profile profile;
    int64_t hq, hkv, lq, lk, d;
    int paper_min_k0; /* > 0: replaces the preset's */
    int block;        /* > 0: replaces the preset's (stride 4) */
    int sparse;       /* 1: one sink, a window of 1; selection must drop blocks */
    stem_compute compute;
} workload;

static workload workloads[] = {
    /* under 56 blocks the angelslim and hpc-ops budgets keep every block;
     * these two cover their logit and value rules and dense attention at
     * the presets' block of 128 */
    {"angelslim d64 1536x1536", STEM_PROFILE_ANGELSLIM, 4, 2, 1536, 1536, 64, 0, 0, 0, STEM_COMPUTE_F32},
    {"hpc-ops d128 768x1536", STEM_PROFILE_HPCOPS, 4, 2, 768, 1536, 128, 0, 0, 0, STEM_COMPUTE_F32},
    /* blocks of 8 (192 of them; 64 in quick mode), one sink and a window
     * of 1: their top-k selection drops blocks */
    {"angelslim B8 d64 1536x1536", STEM_PROFILE_ANGELSLIM, 4, 2, 1536, 1536, 64, 0, 8, 1, STEM_COMPUTE_F32},
    {"hpc-ops B8 d128 768x1536", STEM_PROFILE_HPCOPS, 4, 2, 768, 1536, 128, 0, 8, 1, STEM_COMPUTE_F32},
    /* k0 >= 1 instead of 54, one sink, a window of 1: blocks are dropped */
    {"paper d100 1500x1500", STEM_PROFILE_PAPER, 4, 2, 1500, 1500, 100, 1, 0, 1, STEM_COMPUTE_F32},
    /* the bf16 compute mode: the first two repeat workloads 0 and 4 (their
     * logits and mask must be the same bytes as in the f32 mode); then an
     * odd head dim and an odd last block (bf16 pairs padded) */
    {"angelslim d64 1536x1536 bf16", STEM_PROFILE_ANGELSLIM, 4, 2, 1536, 1536, 64, 0, 0, 0,
     STEM_COMPUTE_BF16},
    {"paper d100 1500x1500 bf16", STEM_PROFILE_PAPER, 4, 2, 1500, 1500, 100, 1, 0, 1,
     STEM_COMPUTE_BF16},
    {"hpc-ops B8 d37 771x1539 bf16", STEM_PROFILE_HPCOPS, 4, 2, 771, 1539, 37, 0, 8, 1,
     STEM_COMPUTE_BF16},
};
/* workloads[BF16_TWIN_OF[i]] is workload i in the f32 mode (or -1) */
static const int bf16_twin_of[] = {-1, -1, -1, -1, -1, 0, 4, -1};
#define N_WORKLOADS ((int)(sizeof workloads / sizeof workloads[0]))

/* Every output byte of one workload. */
typedef struct result {
    size_t n_logits, n_out, n_lse;
    float *logits, *out, *lse, *dense_out, *dense_lse;
    uint8_t *mask;
} result;

typedef struct inputs {
    tu_tensor q, k, v;
} inputs;

/*
 * Structured data: a slowly varying shared direction per head (so that
 * neighbouring blocks look alike and selection has something to find),
 * a few loud "sink" tokens, noise, and value norms that vary by token.
 */
static inputs make_inputs(const workload *w)
{
    inputs in;
    in.q = tu_tensor_new(STEM_F32, TU_HND, w->hq, w->lq, w->d);
    in.k = tu_tensor_new(STEM_F32, TU_HND, w->hkv, w->lk, w->d);
    in.v = tu_tensor_new(STEM_F32, TU_HND, w->hkv, w->lk, w->d);
    tu_fill_normal(&in.q.t, 11, 1.0);
    tu_fill_normal(&in.k.t, 12, 1.0);
    tu_fill_normal(&in.v.t, 13, 1.0);
    for (int64_t h = 0; h < w->hkv; h++)
        for (int64_t t = 0; t < w->lk; t++) {
            double vs = 0.5 + 1.5 * fabs(sin(0.013 * (double)t + (double)h));
            for (int64_t c = 0; c < w->d; c++) {
                double shared = 1.5 * sin(0.004 * (double)t * (double)(c % 7 + 1)
                                          + 0.3 * (double)c);
                double k = tu_get(&in.k.t, h, t, c) + shared;
                if (t % 331 < 3)
                    k *= 3.0; /* sinks */
                tu_set(&in.k.t, h, t, c, k);
                tu_set(&in.v.t, h, t, c, tu_get(&in.v.t, h, t, c) * vs);
            }
        }
    for (int64_t h = 0; h < w->hq; h++)
        for (int64_t t = 0; t < w->lq; t++)
            for (int64_t c = 0; c < w->d; c++) {
                int64_t pos = t + (w->lk - w->lq);
                double shared = 1.5 * sin(0.004 * (double)pos * (double)(c % 7 + 1)
                                          + 0.3 * (double)c);
                tu_set(&in.q.t, h, t, c, tu_get(&in.q.t, h, t, c) + shared);
            }
    return in;
}

static void free_inputs(inputs *in)
{
    tu_tensor_free(&in->q);
    tu_tensor_free(&in->k);
    tu_tensor_free(&in->v);
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p) {
        fprintf(stderr, "test_determinism: out of memory\n");
        exit(2);
    }
    return p;
}

/* The parameters of workload w with `threads`; 0 on success. */
static int params_of(const workload *w, int threads, stem_params *out)
{
    stem_params p;
    if (stem_params_init(&p, w->profile) != STEM_OK)
        return -1;
    p.threads = threads;
    p.compute = w->compute;
    if (w->paper_min_k0 > 0)
        p.paper_min_k0 = w->paper_min_k0;
    if (w->block > 0) {
        p.block = w->block;
        p.stride = 4;
    }
    if (w->sparse) {
        p.sinks = 1;
        p.window = 1;
    }
    *out = p;
    return 0;
}

/* Run prefill and dense attention with `threads`; 0 on success. */
static int compute(const workload *w, const inputs *in, int threads,
                   result *r)
{
    stem_params p;
    if (params_of(w, threads, &p) != 0)
        return -1;
    int64_t qb = (w->lq + p.block - 1) / p.block;
    int64_t kb = (w->lk + p.block - 1) / p.block;
    r->n_logits = (size_t)(w->hq * qb * kb);
    r->n_out = (size_t)(w->hq * w->lq * w->d);
    r->n_lse = (size_t)(w->hq * w->lq);
    r->logits = xcalloc(r->n_logits, sizeof(float));
    r->mask = xcalloc(r->n_logits, 1);
    r->out = xcalloc(r->n_out, sizeof(float));
    r->lse = xcalloc(r->n_lse, sizeof(float));
    r->dense_out = xcalloc(r->n_out, sizeof(float));
    r->dense_lse = xcalloc(r->n_lse, sizeof(float));
    stem_tensor out = stem_tensor_hnd(r->out, STEM_F32, w->hq, w->lq, w->d);
    stem_tensor dout = stem_tensor_hnd(r->dense_out, STEM_F32, w->hq, w->lq,
                                       w->d);
    stem_status st = stem_prefill(&p, &in->q.t, &in->k.t, &in->v.t, &out,
                                  r->lse, r->logits, r->mask);
    if (st != STEM_OK) {
        fprintf(stderr, "stem_prefill (%s): %s\n", w->name, stem_strerror(st));
        return -1;
    }
    st = stem_attention_dense(&p, &in->q.t, &in->k.t, &in->v.t, &dout,
                              r->dense_lse);
    if (st != STEM_OK) {
        fprintf(stderr, "stem_attention_dense (%s): %s\n", w->name,
                stem_strerror(st));
        return -1;
    }
    return 0;
}

static void free_result(result *r)
{
    free(r->logits), free(r->mask), free(r->out), free(r->lse);
    free(r->dense_out), free(r->dense_lse);
}

/* Name of the first differing part, or NULL when every byte agrees. */
static const char *first_difference(const result *a, const result *b)
{
    if (memcmp(a->logits, b->logits, a->n_logits * sizeof(float)))
        return "block logits";
    if (memcmp(a->mask, b->mask, a->n_logits))
        return "mask";
    if (memcmp(a->out, b->out, a->n_out * sizeof(float)))
        return "prefill out";
    if (memcmp(a->lse, b->lse, a->n_lse * sizeof(float)))
        return "prefill lse";
    if (memcmp(a->dense_out, b->dense_out, a->n_out * sizeof(float)))
        return "dense out";
    if (memcmp(a->dense_lse, b->dense_lse, a->n_lse * sizeof(float)))
        return "dense lse";
    return NULL;
}

/* The reference results of this process (threads = 1), one per workload. */
static result ref[N_WORKLOADS];
static inputs ins[N_WORKLOADS];

/* STEM_TEST_QUICK: a third of the tokens (every count stays a multiple of
 * the block where the offset needs it). */
static void apply_quick_mode(void)
{
    const char *quick = getenv("STEM_TEST_QUICK");
    if (!quick || strcmp(quick, "1") != 0)
        return;
    for (int i = 0; i < N_WORKLOADS; i++) {
        workloads[i].lq /= 3;
        workloads[i].lk /= 3;
    }
}

static int setup(void **state)
{
    (void)state;
    stem_isa isa;
    if (stem_isa_active(&isa) != STEM_OK)
        return -1;
    printf("[ INFO     ] active ISA %s\n", stem_isa_name(isa));
    for (int i = 0; i < N_WORKLOADS; i++) {
        ins[i] = make_inputs(&workloads[i]);
        if (compute(&workloads[i], &ins[i], 1, &ref[i]) != 0)
            return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < N_WORKLOADS; i++) {
        free_result(&ref[i]);
        free_inputs(&ins[i]);
    }
    return 0;
}

/* Selection must have dropped blocks where the workload expects it, or
 * the check covers little of the sparse path. */
static void test_workloads_are_sparse(void **state)
{
    (void)state;
    for (int i = 0; i < N_WORKLOADS; i++) {
        size_t kept = 0, causal = 0;
        for (size_t c = 0; c < ref[i].n_logits; c++) {
            kept += ref[i].mask[c] != 0;
            causal += ref[i].logits[c] != -INFINITY;
        }
        printf("[ INFO     ] %s (run at %lldx%lld): %zu of %zu causal blocks "
               "kept\n", workloads[i].name, (long long)workloads[i].lq,
               (long long)workloads[i].lk, kept, causal);
        assert_true(kept > 0);
        if (workloads[i].sparse)
            assert_true(kept < causal);
    }
}

/* The bf16 mode changes out and lse only: logits and mask are the f32
 * mode's bytes; the outputs differ, by bf16 rounding only. */
static void test_bf16_same_mask(void **state)
{
    (void)state;
    assert_int_equal((int)(sizeof bf16_twin_of / sizeof bf16_twin_of[0]), N_WORKLOADS);
    int pairs = 0;
    for (int i = 0; i < N_WORKLOADS; i++) {
        int j = bf16_twin_of[i];
        if (j < 0)
            continue;
        assert_int_equal(workloads[i].compute, STEM_COMPUTE_BF16);
        assert_memory_equal(ref[i].logits, ref[j].logits, ref[i].n_logits * 4);
        assert_memory_equal(ref[i].mask, ref[j].mask, ref[i].n_logits);
        assert_true(memcmp(ref[i].out, ref[j].out, ref[i].n_out * 4) != 0);
        double num = 0, den = 0;
        for (size_t e = 0; e < ref[i].n_out; e++) {
            double dlt = (double)ref[i].out[e] - ref[j].out[e];
            num += dlt * dlt;
            den += (double)ref[j].out[e] * ref[j].out[e];
        }
        double rel = sqrt(num / den);
        printf("[ INFO     ] %s: out within %.2e relative L2 of the f32 mode\n",
               workloads[i].name, rel);
        assert_true(rel < 2e-2);
        pairs++;
    }
    assert_int_equal(pairs, 2);
}

static void test_threads(void **state)
{
    (void)state;
    static const int counts[] = {2, 3, 8};
    for (int i = 0; i < N_WORKLOADS; i++)
        for (int t = 0; t < 3; t++) {
            result r;
            assert_int_equal(compute(&workloads[i], &ins[i], counts[t], &r), 0);
            const char *diff = first_difference(&ref[i], &r);
            if (diff)
                fail_msg("%s: %s with %d threads differs from 1 thread",
                         workloads[i].name, diff, counts[t]);
            free_result(&r);
        }
}

/* Write every result of every workload (threads = 3) to path. */
static int dump(const char *path)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return 2;
    int rc = 0;
    for (int i = 0; i < N_WORKLOADS && rc == 0; i++) {
        inputs in = make_inputs(&workloads[i]);
        result r;
        if (compute(&workloads[i], &in, 3, &r) != 0) {
            rc = 1;
        } else {
            fwrite(r.logits, sizeof(float), r.n_logits, f);
            fwrite(r.mask, 1, r.n_logits, f);
            fwrite(r.out, sizeof(float), r.n_out, f);
            fwrite(r.lse, sizeof(float), r.n_lse, f);
            fwrite(r.dense_out, sizeof(float), r.n_out, f);
            fwrite(r.dense_lse, sizeof(float), r.n_lse, f);
            free_result(&r);
        }
        free_inputs(&in);
    }
    if (fclose(f) != 0)
        rc = 2;
    return rc;
}

/* Read back one workload's results from f into r (sizes from like). */
static int read_result(FILE *f, const result *like, result *r)
{
    *r = *like;
    r->logits = xcalloc(r->n_logits, sizeof(float));
    r->mask = xcalloc(r->n_logits, 1);
    r->out = xcalloc(r->n_out, sizeof(float));
    r->lse = xcalloc(r->n_lse, sizeof(float));
    r->dense_out = xcalloc(r->n_out, sizeof(float));
    r->dense_lse = xcalloc(r->n_lse, sizeof(float));
    int ok = fread(r->logits, sizeof(float), r->n_logits, f) == r->n_logits &&
             fread(r->mask, 1, r->n_logits, f) == r->n_logits &&
             fread(r->out, sizeof(float), r->n_out, f) == r->n_out &&
             fread(r->lse, sizeof(float), r->n_lse, f) == r->n_lse &&
             fread(r->dense_out, sizeof(float), r->n_out, f) == r->n_out &&
             fread(r->dense_lse, sizeof(float), r->n_lse, f) == r->n_lse;
    return ok ? 0 : -1;
}

/* argv[0] of main: the program to re-run (through STEM_TEST_RUNNER, the
 * process image may be an emulator or a loader rather than this program). */
static const char *program;

/* Run this program again with STEM_ISA=isa and --dump path; its status. */
static int run_child(const char *isa, const char *path)
{
    char self[4096];
    if (program && strchr(program, '/') && access(program, X_OK) == 0) {
        snprintf(self, sizeof self, "%s", program);
    } else {
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n <= 0)
            return -1;
        self[n] = '\0';
    }
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        setenv("STEM_ISA", isa, 1);
        const char *runner = getenv("STEM_TEST_RUNNER");
        if (runner && *runner) {
            char cmd[8192];
            snprintf(cmd, sizeof cmd, "exec %s '%s' --dump '%s'", runner, self,
                     path);
            execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        } else {
            execl(self, self, "--dump", path, (char *)NULL);
        }
        _exit(127);
    }
    int status;
    if (waitpid(pid, &status, 0) != pid)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_isas(void **state)
{
    (void)state;
    stem_isa active;
    assert_int_equal(stem_isa_active(&active), STEM_OK);
    int compared = 0;
    for (int isa = 0; isa < STEM_ISA_COUNT; isa++) {
        if (!stem_isa_supported((stem_isa)isa))
            continue;
        char path[] = "/tmp/stem-determinism-XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        close(fd);
        int rc = run_child(stem_isa_name((stem_isa)isa), path);
        if (rc != 0) {
            unlink(path);
            fail_msg("re-run with STEM_ISA=%s failed (status %d)",
                     stem_isa_name((stem_isa)isa), rc);
        }
        FILE *f = fopen(path, "rb");
        assert_non_null(f);
        for (int i = 0; i < N_WORKLOADS; i++) {
            result r;
            int ok = read_result(f, &ref[i], &r) == 0;
            const char *diff = ok ? first_difference(&ref[i], &r) : "size";
            /* AMX tiles are fast but not bit-exact in the bf16 mode
             * (simd/kernels.h); tests/test_amx.c measures their distance */
            if (diff && isa == STEM_ISA_AMX &&
                workloads[i].compute == STEM_COMPUTE_BF16) {
                printf("[ INFO     ] STEM_ISA=amx: %s: %s differs (not bit-exact, "
                       "as documented)\n", workloads[i].name, diff);
                diff = NULL;
            }
            free_result(&r);
            if (diff) {
                fclose(f);
                unlink(path);
                fail_msg("%s: %s with STEM_ISA=%s differs from %s",
                         workloads[i].name, diff, stem_isa_name((stem_isa)isa),
                         stem_isa_name(active));
            }
        }
        fclose(f);
        unlink(path);
        printf("[ INFO     ] STEM_ISA=%s: identical bytes\n",
               stem_isa_name((stem_isa)isa));
        compared++;
    }
    assert_true(compared >= 1);
}

/*
 * A head's bytes do not depend on the heads it shares tasks with: the bf16
 * mode runs up to four query heads of a GQA group in one task
 * (src/attend.c), so with 6 query heads over one kv head (tasks of 4 and
 * of 2 heads) every head's out and lse, sparse under the prefill's mask
 * and dense, must equal a call that holds that head alone.  The f32 mode
 * too, whose tasks hold one head.
 */
static void test_heads_alone(void **state)
{
    (void)state;
    for (int mode = 0; mode < 2; mode++) {
        workload w = {"angelslim B8 d64 6/1", STEM_PROFILE_ANGELSLIM, 6, 1,
                      600, 600, 64, 0, 8, 1,
                      mode ? STEM_COMPUTE_BF16 : STEM_COMPUTE_F32};
        inputs in = make_inputs(&w);
        result all;
        assert_int_equal(compute(&w, &in, 3, &all), 0);
        stem_params p;
        assert_int_equal(params_of(&w, 3, &p), 0);
        const int64_t qb = (w.lq + p.block - 1) / p.block;
        const int64_t kb = (w.lk + p.block - 1) / p.block;
        const size_t n_out = (size_t)(w.lq * w.d), n_lse = (size_t)w.lq;
        float *out = xcalloc(n_out, sizeof(float));
        float *lse = xcalloc(n_lse, sizeof(float));
        long dropped = 0;
        for (int64_t h = 0; h < w.hq; h++) {
            stem_tensor qh = in.q.t;
            qh.data = (char *)qh.data + (size_t)(h * qh.head_stride) * sizeof(float);
            qh.heads = 1;
            stem_tensor o = stem_tensor_hnd(out, STEM_F32, 1, w.lq, w.d);
            const uint8_t *mh = all.mask + (size_t)(h * qb * kb);
            for (int64_t e = 0; e < qb * kb; e++)
                dropped += !mh[e];
            assert_int_equal(stem_attention_sparse(&p, &qh, &in.k.t, &in.v.t,
                                                   mh, &o, lse), STEM_OK);
            assert_memory_equal(out, all.out + h * n_out, n_out * sizeof(float));
            assert_memory_equal(lse, all.lse + h * n_lse, n_lse * sizeof(float));
            assert_int_equal(stem_attention_dense(&p, &qh, &in.k.t, &in.v.t, &o,
                                                  lse), STEM_OK);
            assert_memory_equal(out, all.dense_out + h * n_out,
                                n_out * sizeof(float));
            assert_memory_equal(lse, all.dense_lse + h * n_lse,
                                n_lse * sizeof(float));
        }
        assert_true(dropped > 0); /* the masks differ from dense */
        free(out), free(lse);
        free_result(&all);
        free_inputs(&in);
    }
}

int main(int argc, char **argv)
{
    program = argv[0];
    apply_quick_mode();
    if (argc == 3 && strcmp(argv[1], "--dump") == 0)
        return dump(argv[2]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_workloads_are_sparse),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_bf16_same_mask),
        cmocka_unit_test(test_isas),
        cmocka_unit_test(test_heads_alone),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
