/*
 * stem.h - Stem sparse attention for long-context prefill, on the CPU.
 *
 * Stem scores 128-token key blocks cheaply (strided anti-diagonal Q.K plus a
 * value-norm term), gives every query block a top-k budget that decays with
 * its position, keeps sink and local blocks, and then runs exact attention on
 * the chosen blocks only.  This header is the whole public interface.
 *
 * Conventions
 *   - Lq query tokens, Lk key/value tokens, Lq <= Lk.  The queries are the
 *     last Lq positions of the sequence: query row r sits at absolute
 *     position r + offset, offset = Lk - Lq (chunked prefill; Delta in
 *     the notation of docs/ALGORITHM.md).
 *   - B is the block size (128 by default); Qb = ceil(Lq / B), Kb = ceil(Lk / B).
 *   - Hq query heads, Hkv key/value heads, Hq % Hkv == 0; query head h reads
 *     kv head h / (Hq / Hkv) (GQA, no copies).
 *   - Tensors are views over caller memory (stem_tensor); the library never
 *     keeps a pointer after a call returns and never frees caller memory.
 *   - Every function returns a stem_status; STEM_OK is 0.  On an error no
 *     caller-owned output has been written; stem_last_error() gives the
 *     detail (the tensor, its dims, the parameter and its range).  The
 *     library never aborts or exits, and caps the threads it asks OpenMP
 *     for (stem_threads) so that the runtime does not end the process
 *     either; docs/GUARANTEES.md lists what still can.
 *   - Results are bit-exact: the same inputs give the same output bytes for
 *     any thread count and on every instruction set (scalar, AVX2, AVX-512,
 *     AVX512-BF16, NEON), in both compute modes; only STEM_ISA=amx's bf16 products (AMX
 *     tiles) are not (simd/kernels.h says why).
 */
#ifndef STEM_H
#define STEM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(STEM_BUILDING) && defined(__GNUC__)
#define STEM_API __attribute__((visibility("default")))
#else
#define STEM_API
#endif

#define STEM_VERSION_MAJOR 0
#define STEM_VERSION_MINOR 1
#define STEM_VERSION_PATCH 0
#define STEM_VERSION_STRING "0.1.0"

/* Largest supported head dimension. */
#define STEM_MAX_HEAD_DIM 256

/* Largest accepted magnitude of a q, k or v element.  The sparse modes
 * lower it further to sqrt(FLT_MAX / (4 * s * d)) / (B / s), below which a
 * block pair's strided sum cannot overflow float32 (1e15 stays the bound
 * for B 128, s 8, d 256). */
#define STEM_MAX_ABS_INPUT 1e15

/* ------------------------------------------------------------------ status */

typedef enum stem_status {
    STEM_OK = 0,
    STEM_ERR_NULL,          /* a required pointer is NULL */
    STEM_ERR_SHAPE,         /* inconsistent or non-positive shapes */
    STEM_ERR_GQA,           /* Hq is not a multiple of Hkv */
    STEM_ERR_OFFSET,        /* (Lk - Lq) % B != 0 in a sparse mode */
    STEM_ERR_OVERFLOW,      /* a size computation overflows */
    STEM_ERR_DTYPE,         /* unsupported element type for this argument */
    STEM_ERR_HEAD_DIM,      /* head dim outside 1..STEM_MAX_HEAD_DIM */
    STEM_ERR_NONFINITE,     /* NaN or Inf found in an input */
    STEM_ERR_PARAM,         /* a parameter is out of its range */
    STEM_ERR_NOMEM,         /* an allocation failed */
    STEM_ERR_ISA,           /* requested instruction set not available */
    STEM_ERR_MASK,          /* a mask row selects no block at or below its diagonal */
    STEM_ERR_RANGE,         /* an input magnitude above STEM_MAX_ABS_INPUT (or the scoring bound) */
    STEM_STATUS_COUNT
} stem_status;

/* A static, human-readable sentence for a status.  Never NULL; unknown
 * values give "unknown stem status". */
STEM_API const char *stem_strerror(stem_status status);

/*
 * The detail of the last error on the calling thread, next to its status
 * code: which tensor, which dims, which parameter and its valid range, e.g.
 *     "q [2 heads, 300 tokens, 64 dim] has more tokens than k [1 heads,
 *      256 tokens, 64 dim]: the queries are the last Lq <= Lk positions"
 *     "alpha = 2: must be in 0..1"
 * Like errno: meaningful right after a call returned a status other than
 * STEM_OK, on the same thread; successful calls may leave it as it was.
 * Every call that validates parameters or shapes empties it first, and an
 * error with nothing to add to stem_strerror (e.g. STEM_ERR_NOMEM) leaves
 * it empty.  Never NULL; the text is owned by the library (thread-local
 * storage, at most 511 bytes) and stays valid until the thread's next call
 * into the library.  Print both:
 *     fprintf(stderr, "%s: %s\n", stem_strerror(st), stem_last_error());
 */
STEM_API const char *stem_last_error(void);

/* The library's version string, e.g. "0.1.0" (same as STEM_VERSION_STRING
 * of the headers it was built with). */
STEM_API const char *stem_version(void);

/* ----------------------------------------------------------------- tensors */

typedef enum stem_dtype {
    STEM_F32 = 0,
    STEM_BF16,
    STEM_F16,
    STEM_F64,
    STEM_U8,                /* bytes: block masks (stem_check); not an input dtype */
    STEM_I32,               /* I32, I64, BOOL: element types of tensor files */
    STEM_I64,               /* (the stem tool's readers); no call of the */
    STEM_BOOL,              /* library takes them */
    STEM_DTYPE_COUNT
} stem_dtype;

/* Size in bytes of one element, 0 for an unknown dtype. */
STEM_API size_t stem_dtype_size(stem_dtype dtype);
/* "F32", "BF16", "F16", "F64", "U8", "I32", "I64", "BOOL" (safetensors'
 * names, the one table of them), or "?" */
STEM_API const char *stem_dtype_name(stem_dtype dtype);
/* dtype by its name above (exact case); STEM_ERR_NULL, or STEM_ERR_DTYPE
 * for another name (*out then left alone). */
STEM_API stem_status stem_dtype_from_name(const char *name, stem_dtype *out);

/* Element conversions: bf16 or IEEE half bits to float (exact), float to
 * bf16 or half bits (round to nearest even; overflow gives Inf, a NaN
 * stays a quiet NaN).  The library reads BF16 and F16 views with these. */
STEM_API float stem_bf16_to_f32(uint16_t bits);
STEM_API uint16_t stem_f32_to_bf16(float x);
STEM_API float stem_f16_to_f32(uint16_t bits);
STEM_API uint16_t stem_f32_to_f16(float x);

/*
 * A 3-d view [heads, tokens, dim] over caller memory.  Element (h, t, c)
 * lives at data + (h * head_stride + t * token_stride + c) * element size.
 * Strides are in elements; the dim axis is contiguous.  Both
 * [heads, tokens, dim] and [tokens, heads, dim] storage are views of this
 * kind (see stem_tensor_hnd / stem_tensor_nhd).
 */
typedef struct stem_tensor {
    void *data;
    stem_dtype dtype;
    int64_t heads, tokens, dim;
    int64_t head_stride, token_stride;
} stem_tensor;

/* View of contiguous [heads, tokens, dim] storage. */
STEM_API stem_tensor stem_tensor_hnd(void *data, stem_dtype dtype,
                                     int64_t heads, int64_t tokens, int64_t dim);
/* View of contiguous [tokens, heads, dim] storage. */
STEM_API stem_tensor stem_tensor_nhd(void *data, stem_dtype dtype,
                                     int64_t heads, int64_t tokens, int64_t dim);

/* -------------------------------------------------------------- parameters */

typedef enum stem_profile {
    STEM_PROFILE_ANGELSLIM = 0, /* AngelSlim's torch backend (default) */
    STEM_PROFILE_PAPER,         /* the paper's formulas */
    STEM_PROFILE_HPCOPS,        /* hpc-ops CUDA kernels */
    STEM_PROFILE_COUNT
} stem_profile;

/* How the value-norm term (Output-Aware Metric) enters a block logit. */
typedef enum stem_value_rule {
    STEM_VALUE_NONE = 0,        /* no value term */
    STEM_VALUE_ZSCORE_FULL,     /* z-score of ln norms over full groups (angelslim) */
    STEM_VALUE_ZSCORE_PADDED,   /* z-score over all block-padded groups (hpc-ops) */
    STEM_VALUE_LOG_MAX_BLOCK    /* beta * max(0, ln max_t ||v_t||), once per block (paper) */
} stem_value_rule;

/* How the per-query-block budget decays with position. */
typedef enum stem_budget_rule {
    STEM_BUDGET_TPD_F64 = 0,    /* docs/ALGORITHM.md 2: float64 linspace (angelslim) */
    STEM_BUDGET_TPD_F32_FMA,    /* docs/ALGORITHM.md 2: float32 + fma (hpc-ops) */
    STEM_BUDGET_PAPER_LINEAR    /* ceil(k0 - k0*(1-mu)*p/n) (paper) */
} stem_budget_rule;

/* How attention (Q.K and P.V) computes; scoring, budget and selection are
 * the same in every mode, so the mask is too. */
typedef enum stem_compute {
    STEM_COMPUTE_F32 = 0,       /* float32 operands and products (default) */
    STEM_COMPUTE_BF16,          /* bf16 operands (q, k, v and P rounded to bf16,
                                 * round to nearest even), products summed in
                                 * float32: the kernels.h contract */
    STEM_COMPUTE_COUNT
} stem_compute;

typedef struct stem_params {
    stem_profile profile;       /* the preset these values came from */
    int block;                  /* B, tokens per block (default 128) */
    int stride;                 /* s, scoring stride; must divide block */
    int qk_scaled;              /* 1: S / (sqrt(d) * s * norm); 0: raw S */
    double norm;                /* the norm divisor (1.0) */
    stem_value_rule value_rule;
    double value_weight;        /* lambda (angelslim 0.2, hpc-ops 0.3) or beta (paper 0.2) */
    stem_budget_rule budget_rule;
    double keep_ratio;          /* rho (0.2) */
    double alpha;               /* decay (0.7), the paper's mu */
    int paper_min_k0;           /* paper rule: k0 >= this (54) */
    double paper_ratio_short;   /* paper rule: rho_N for Lk <= paper_long_tokens (0.2) */
    double paper_ratio_long;    /* paper rule: rho_N beyond (0.1) */
    int64_t paper_long_tokens;  /* 16384 */
    int64_t prompt_blocks;      /* n of the budget rule; 0 means Kb of the call */
    int sinks;                  /* first key blocks always kept (4) */
    int window;                 /* key blocks ending at the diagonal always kept (4) */
    int keep_diagonal;          /* 1: the diagonal block is kept even if window is 0 */
    int ties_keep_all;          /* 1: every block >= the threshold is kept (hpc-ops) */
    int use_f64;                /* 1: compute in float64 (the oracle mode) */
    int threads;                /* 0: OpenMP default / OMP_NUM_THREADS */
    int sinks_unclipped;        /* 1: sink bits are set in every row, also above the
                                   causal diagonal (hpc-ops); attention never reads them */
    stem_compute compute;       /* attention arithmetic (STEM_COMPUTE_F32) */
} stem_params;

/* Fill *params with a profile's preset.  Returns STEM_ERR_NULL or
 * STEM_ERR_PARAM (unknown profile) without writing on error. */
STEM_API stem_status stem_params_init(stem_params *params, stem_profile profile);

/* Profile by name ("angelslim", "paper", "hpc-ops"); STEM_ERR_PARAM if
 * unknown. */
STEM_API stem_status stem_profile_from_name(const char *name, stem_profile *out);
STEM_API const char *stem_profile_name(stem_profile profile);

/* Check every parameter's range; STEM_OK or STEM_ERR_PARAM. */
STEM_API stem_status stem_params_validate(const stem_params *params);

/* ------------------------------------------------------------------ shapes */

/* Derived sizes of one call. */
typedef struct stem_dims {
    int64_t hq, hkv, lq, lk, d;
    int64_t offset;             /* Lk - Lq (Delta in docs/ALGORITHM.md) */
    int64_t qb, kb;             /* query and key blocks */
} stem_dims;

/*
 * Validate q [Hq, Lq, d], k and v [Hkv, Lk, d] against params and fill
 * *dims.  sparse = 1 also requires P % B == 0.  Does not scan the data.
 * Errors: NULL, SHAPE, GQA, OFFSET, OVERFLOW, DTYPE, HEAD_DIM, PARAM.
 */
STEM_API stem_status stem_dims_get(const stem_params *params,
                                   const stem_tensor *q, const stem_tensor *k,
                                   const stem_tensor *v, int sparse,
                                   stem_dims *dims);

/* --------------------------------------------------------------- stage 1 */

/*
 * Block logits (docs/ALGORITHM.md section 1): logits[h][I][J] for every
 * query head h, query block I < Qb, key block J < Kb; -INFINITY where J > I + offset/B.
 * logits: caller buffer of Hq * Qb * Kb floats, row-major.
 * Errors: those of stem_dims_get (sparse), NONFINITE, NOMEM.
 */
STEM_API stem_status stem_block_logits(const stem_params *params,
                                       const stem_tensor *q,
                                       const stem_tensor *k,
                                       const stem_tensor *v, float *logits);

/* --------------------------------------------------------------- stage 2 */

/*
 * Per-position budget (docs/ALGORITHM.md section 2): budget[p] for
 * key-block positions p = 0 .. n-1, n = params->prompt_blocks if > 0 else kb.  The count of
 * top-k blocks a query block at absolute block position p keeps, not
 * counting sinks and window.  budget: caller buffer of n int32.
 * Errors: NULL, PARAM (kb < 1 or bad parameters).
 */
STEM_API stem_status stem_budget(const stem_params *params, int64_t kb,
                                 int32_t *budget);

/* n of the budget rule for a call of kb key blocks, the entries stem_budget
 * writes: params->prompt_blocks, or kb when that is 0.  Errors: NULL,
 * PARAM (bad parameters, kb outside 1..INT32_MAX, or a prompt_blocks
 * below kb). */
STEM_API stem_status stem_budget_length(const stem_params *params, int64_t kb,
                                        int64_t *n);

/* --------------------------------------------------------------- stage 3 */

/*
 * Block selection (docs/ALGORITHM.md section 3) from logits [Hq, Qb, Kb]
 * (as written by stem_block_logits; -inf entries are never picked by the top-k).
 * mask: caller buffer of Hq * Qb * Kb bytes, 1 = selected (may be NULL).
 * row_start / blocks: optional per-row lists (both NULL or both set):
 *   row_start has Hq * Qb + 1 entries; the selected key blocks of row
 *   (h, I) are blocks[row_start[h*Qb+I] .. row_start[h*Qb+I+1]-1] in
 *   ascending order; blocks needs room for Hq * Qb * Kb entries.
 * Errors: NULL, SHAPE, PARAM, NOMEM.
 */
STEM_API stem_status stem_select(const stem_params *params,
                                 const stem_dims *dims, const float *logits,
                                 uint8_t *mask, int64_t *row_start,
                                 int32_t *blocks);

/* --------------------------------------------------------------- explain */

/* Why a key block is kept: the bits of stem_explain_block.why.  A block can
 * carry several (a sink among the top-k); 0 means dropped. */
#define STEM_WHY_TOPK     0x01u /* among the budget largest logits of the row */
#define STEM_WHY_TIE      0x02u /* beyond the budget but equal to the threshold
                                 * (ties_keep_all profiles) */
#define STEM_WHY_SINK     0x04u /* one of the first `sinks` blocks */
#define STEM_WHY_WINDOW   0x08u /* one of the `window` blocks ending at p */
#define STEM_WHY_DIAGONAL 0x10u /* block p itself (keep_diagonal) */

/* One key block J of an explained row. */
typedef struct stem_explain_block {
    float logit;                /* L[I][J] as given */
    int32_t rank;               /* 1 = largest candidate (a finite logit at or
                                 * below the diagonal); equal logits: lower J
                                 * first; 0 = not a candidate */
    uint32_t why;               /* STEM_WHY_* bits, 0 = dropped */
    int32_t kept;               /* the mask byte stem_select writes (why != 0) */
} stem_explain_block;

/* The row as a whole. */
typedef struct stem_explain_summary {
    int64_t head, qblock;       /* the row (h, I) */
    int64_t position;           /* p = I + offset/B, its absolute block position */
    int64_t n;                  /* blocks of the budget rule (prompt_blocks or Kb) */
    int32_t budget;             /* budget[p]: the top-k count */
    int32_t candidates;         /* finite logits among key blocks 0 .. p */
    int32_t topk;               /* blocks with STEM_WHY_TOPK or STEM_WHY_TIE */
    int32_t kept;               /* blocks kept (mask bytes set, all Kb) */
    float threshold;            /* the budget-th largest candidate logit;
                                 * -inf when budget >= candidates (the top-k
                                 * drops nothing) */
} stem_explain_summary;

/*
 * The selection of one row (h = head, I = qblock), block by block
 * (docs/ALGORITHM.md section 3): the same code as stem_select, so
 * blocks[J].kept equals byte J of the row stem_select (and stem_prefill)
 * writes from these logits.
 * logits: [Hq, Qb, Kb] as stem_select takes them (only row (h, I) is read).
 * summary: caller struct; blocks: caller array of Kb records.  Both are
 * written only on success.
 * Errors: NULL, SHAPE, OFFSET, OVERFLOW, PARAM (parameters, or head /
 * qblock outside the dims), NOMEM.
 */
STEM_API stem_status stem_explain_row(const stem_params *params,
                                      const stem_dims *dims,
                                      const float *logits, int64_t head,
                                      int64_t qblock,
                                      stem_explain_summary *summary,
                                      stem_explain_block *blocks);

/* --------------------------------------------------------------- attention */

/*
 * Block-sparse attention: for each query row, softmax of q.k / sqrt(d) over
 * the causal keys of the row's selected blocks, times v.
 * mask [Hq, Qb, Kb] as from stem_select (any non-zero byte selects); every
 * row must select at least one block at or below its diagonal I + offset/B
 * (STEM_ERR_MASK otherwise); blocks beyond the diagonal are ignored.
 * out: view [Hq, Lq, d] of dtype F32 or F64.
 * lse: optional Hq * Lq floats, the natural-log sum of exp of the row's
 * scaled scores (may be NULL).
 * Errors: those of stem_dims_get (sparse), MASK, NONFINITE, NOMEM, DTYPE.
 */
STEM_API stem_status stem_attention_sparse(const stem_params *params,
                                           const stem_tensor *q,
                                           const stem_tensor *k,
                                           const stem_tensor *v,
                                           const uint8_t *mask,
                                           stem_tensor *out, float *lse);

/* Dense causal attention: as above with every causal key.  Any P. */
STEM_API stem_status stem_attention_dense(const stem_params *params,
                                          const stem_tensor *q,
                                          const stem_tensor *k,
                                          const stem_tensor *v,
                                          stem_tensor *out, float *lse);

/* ---------------------------------------------------------------- prefill */

/*
 * One layer's Stem prefill: logits, budget, selection, sparse attention.
 * logits and mask are optional outputs ([Hq, Qb, Kb] each, or NULL), written
 * only once every stage has succeeded; lse is optional.
 */
STEM_API stem_status stem_prefill(const stem_params *params,
                                  const stem_tensor *q, const stem_tensor *k,
                                  const stem_tensor *v, stem_tensor *out,
                                  float *lse, float *logits, uint8_t *mask);

/* ----------------------------------------------------------------- threads */

/* Most threads one call ever asks OpenMP for, whatever is requested. */
#define STEM_THREAD_HARD_CAP 1024

/*
 * How many threads a call with these parameters would use, and why.
 * The request (params->threads, or OpenMP's count from OMP_NUM_THREADS
 * when it is 0) is capped at what the process can run, so that the
 * OpenMP runtime, which ends the process when it cannot start a thread,
 * is never asked for more: STEM_THREAD_HARD_CAP; 8 per CPU of the
 * affinity mask; OMP_THREAD_LIMIT; RLIMIT_NPROC less the threads the user
 * already runs (not for root, whom the kernel exempts); the pids cgroup's
 * pids.max less pids.current.  Output bytes do not depend on the count.
 * params may be NULL (as threads = 0).  docs/GUARANTEES.md says what can
 * still end the process.  Errors: NULL (info), PARAM (threads out of
 * 0..4096).
 */
typedef struct stem_thread_info {
    int used;                   /* threads a call uses (>= 1) */
    int requested;              /* params->threads, or the OpenMP count */
    int openmp;                 /* omp_get_max_threads() */
    int omp_limit;              /* omp_get_thread_limit() */
    int cpus;                   /* CPUs in the affinity mask (0: unknown) */
    long long nproc_limit;      /* RLIMIT_NPROC applied, -1 if none */
    long long nproc_room;       /* threads the user may still start, -1 if no limit */
    long long pids_limit;       /* the tightest pids.max applied, -1 if none */
    long long pids_room;        /* tasks the cgroup may still start, -1 if no limit */
    const char *limited_by;     /* static text: "the request", "the hard cap",
                                 * "8 per CPU of the affinity mask",
                                 * "OMP_THREAD_LIMIT", "RLIMIT_NPROC",
                                 * "the pids cgroup's pids.max" */
} stem_thread_info;

STEM_API stem_status stem_threads(const stem_params *params,
                                  stem_thread_info *info);

/* ------------------------------------------------------------- the machine */

typedef enum stem_isa {
    STEM_ISA_SCALAR = 0,
    STEM_ISA_AVX2,
    STEM_ISA_AVX512,
    STEM_ISA_NEON,
    STEM_ISA_AMX,               /* AVX-512 plus AMX tiles for the bf16 mode:
                                 * fast, not bit-exact; only by STEM_ISA=amx */
    STEM_ISA_AVX512BF16,        /* AVX-512 with the bf16 mode's products on
                                 * AVX512-BF16's VDPBF16PS (bit-exact) */
    STEM_ISA_COUNT
} stem_isa;

/* "scalar", "avx2", "avx512", "neon", "amx", "avx512bf16" */
STEM_API const char *stem_isa_name(stem_isa isa);
/* 1 if this build has kernels for isa and this CPU can run them. */
STEM_API int stem_isa_supported(stem_isa isa);
/* "f32", "bf16", or "?" */
STEM_API const char *stem_compute_name(stem_compute compute);
/* Compute mode by name ("f32", "bf16"); STEM_ERR_PARAM if unknown. */
STEM_API stem_status stem_compute_from_name(const char *name, stem_compute *out);
/* The fastest bit-exact ISA of this CPU (never STEM_ISA_AMX; avx512bf16
 * only where VDPBF16PS outruns FMAs, i.e. on AMD's AVX512-BF16 CPUs). */
STEM_API stem_isa stem_isa_detected(void);
/*
 * The ISA in use: STEM_ISA from the environment if set, else the detected
 * one.  Chosen once, thread-safe.  STEM_ERR_ISA if the environment names an
 * unknown or unsupported ISA (then *isa is left alone).
 */
STEM_API stem_status stem_isa_active(stem_isa *isa);

#ifdef __cplusplus
}
#endif
#endif /* STEM_H */
