/*
 * softmax_avx2.c - softmax_rows on AVX2: 8-lane scale, max, SLEEF expf and
 * the canonical sum8 (lane t of the accumulator is the contract's lane t
 * because every chunk of 8 starts at a column multiple of 8).
 */
#include <immintrin.h>
#include <stddef.h>

#include <sleef.h>

#include "kernels.h"
#include "kernels_avx2.h"
#include "expb.h"

static inline __m256i lanes_below(int r)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(r),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7)) */
static inline float reduce_sum8(__m256 a)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a),
                          _mm256_extractf128_ps(a, 1)); /* a0+a4 .. a3+a7 */
    __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));       /* (0+2), (1+3) */
    return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}

/* The largest of the 8 lanes (the sign of a zero result is not defined:
 * callers rescan, as the scalar twin's first-wins order decides it). */
static inline float reduce_max8(__m256 v)
{
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

/* e(y) of the contract: 0 where !(y >= STEM_EXP_MIN), SLEEF expf elsewhere. */
static inline __m256 exp_rule(__m256 y)
{
    __m256 keep = _mm256_cmp_ps(y, _mm256_set1_ps(STEM_EXP_MIN), _CMP_GE_OQ);
    return _mm256_and_ps(keep, Sleef_expf8_u10avx2(y));
}

/*
 * x[j] *= scale for j < n (stored) and the maximum of m0 and those values.
 * The value of a maximum does not depend on the order of comparisons except
 * for the sign of a zero; when the maximum is zero the scalar twin's
 * first-wins scan decides the sign.
 */
static float scale_and_max(float *x, int n, float scale, float m0)
{
    const __m256 vs = _mm256_set1_ps(scale);
    __m256 vmax = _mm256_set1_ps(m0);
    int j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256 y = _mm256_mul_ps(_mm256_loadu_ps(x + j), vs);
        _mm256_storeu_ps(x + j, y);
        vmax = _mm256_max_ps(y, vmax); /* y > vmax ? y : vmax */
    }
    if (j < n) {
        __m256i mk = lanes_below(n - j);
        __m256 y = _mm256_mul_ps(_mm256_maskload_ps(x + j, mk), vs);
        _mm256_maskstore_ps(x + j, mk, y);
        y = _mm256_blendv_ps(vmax, y, _mm256_castsi256_ps(mk));
        vmax = _mm256_max_ps(y, vmax);
    }
    float mx = reduce_max8(vmax);
    if (mx == 0.0f) {
        mx = m0;
        for (int t = 0; t < n; t++)
            if (x[t] > mx)
                mx = x[t];
    }
    return mx;
}

/* softmax_rows of simd/kernels.h: one online-softmax step per row, updates s,
 * m, l and writes alpha; no pointer may be NULL; 1 <= valid[i] <= cols. */
void stem_f32_softmax_rows__avx2_8(int rows, int cols, const int *valid,
                                   float scale, float *s, int lds, float *m,
                                   float *l, float *alpha)
{
    for (int i = 0; i < rows; i++) {
        float *x = s + (size_t)i * lds;
        const int n = valid[i];
        const float mnew = scale_and_max(x, n, scale, m[i]);
        const __m256 vm = _mm256_set1_ps(mnew);
        __m256 acc = _mm256_setzero_ps();
        int j = 0;
        for (; j + 8 <= n; j += 8) {
            __m256 p = exp_rule(_mm256_sub_ps(_mm256_loadu_ps(x + j), vm));
            _mm256_storeu_ps(x + j, p);
            acc = _mm256_add_ps(acc, p);
        }
        if (j < n) {
            __m256i mk = lanes_below(n - j);
            __m256 y = _mm256_sub_ps(_mm256_maskload_ps(x + j, mk), vm);
            __m256 p = _mm256_and_ps(_mm256_castsi256_ps(mk), exp_rule(y));
            /* columns n..j+7 are zero in p, as the contract wants */
            _mm256_maskstore_ps(x + j, lanes_below(cols - j), p);
            acc = _mm256_add_ps(acc, p);
            j += 8;
        }
        /* the rest is zero; adding +0.0f to a lane (never -0.0f) is exact */
        const __m256 zero = _mm256_setzero_ps();
        for (; j + 8 <= cols; j += 8)
            _mm256_storeu_ps(x + j, zero);
        if (j < cols)
            _mm256_maskstore_ps(x + j, lanes_below(cols - j), zero);

        const float a = stem_expf_ref(m[i] - mnew);
        float li = l[i] * a;
        li = li + reduce_sum8(acc);
        l[i] = li;
        m[i] = mnew;
        alpha[i] = a;
    }
}

/* ---- the bf16 mode: e_b of simd/expb.h and probabilities rounded ------- */

/* e_b(y[k]) of simd/expb.h on 8 lanes each, k < K (a compile-time
 * constant), 0 where !(y >= STEM_EXPB_MIN).  The K vectors go through
 * each operation together: each one's chain is a long dependent
 * sequence, and interleaved they keep the FMA pipes busy. */
static inline __attribute__((always_inline)) void
expb8(const int K, const __m256 *y, __m256 *out)
{
    __m256 n[4], r[4], u[4];
#pragma GCC unroll 4
    for (int k = 0; k < K; k++)
        n[k] = _mm256_round_ps(_mm256_mul_ps(y[k], _mm256_set1_ps(STEM_EXPB_LOG2E)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
#pragma GCC unroll 4
    for (int k = 0; k < K; k++)
        r[k] = _mm256_fmadd_ps(n[k], _mm256_set1_ps(-STEM_EXPB_LN2_HI), y[k]);
#pragma GCC unroll 4
    for (int k = 0; k < K; k++)
        r[k] = _mm256_fmadd_ps(n[k], _mm256_set1_ps(-STEM_EXPB_LN2_LO), r[k]);
#pragma GCC unroll 4
    for (int k = 0; k < K; k++)
        u[k] = _mm256_fmadd_ps(_mm256_set1_ps(STEM_EXPB_C7), r[k],
                               _mm256_set1_ps(STEM_EXPB_C6));
    const float c[6] = {STEM_EXPB_C5, STEM_EXPB_C4, STEM_EXPB_C3, STEM_EXPB_C2,
                        1.0f, 1.0f};
#pragma GCC unroll 6
    for (int t = 0; t < 6; t++)
#pragma GCC unroll 4
        for (int k = 0; k < K; k++)
            u[k] = _mm256_fmadd_ps(u[k], r[k], _mm256_set1_ps(c[t]));
#pragma GCC unroll 4
    for (int k = 0; k < K; k++) {
        __m256i e = _mm256_slli_epi32(_mm256_cvtps_epi32(n[k]), 23);
        __m256 q = _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(u[k]), e));
        __m256 keep = _mm256_cmp_ps(y[k], _mm256_set1_ps(STEM_EXPB_MIN), _CMP_GE_OQ);
        out[k] = _mm256_and_ps(keep, q);
    }
}

/* bf16 bits of 8 nonnegative floats (nearest, ties to even; never below
 * STEM_BF16_MIN unless 0). */
static inline __m128i bf16_of(__m256 q)
{
    __m256i u = _mm256_castps_si256(q);
    __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16),
                                   _mm256_set1_epi32(1));
    u = _mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7fff), lsb));
    u = _mm256_srli_epi32(u, 16);
    return _mm_packus_epi32(_mm256_castsi256_si128(u),
                            _mm256_extracti128_si256(u, 1));
}

/* The new maximum of row x (n valid columns): max(m0, x_j * scale). */
static float row_max(const float *x, int n, float scale, float m0)
{
    const __m256 vs = _mm256_set1_ps(scale);
    __m256 vmax = _mm256_set1_ps(m0);
    int j = 0;
    for (; j + 8 <= n; j += 8)
        vmax = _mm256_max_ps(_mm256_mul_ps(_mm256_loadu_ps(x + j), vs), vmax);
    if (j < n) {
        __m256i mk = lanes_below(n - j);
        __m256 y = _mm256_mul_ps(_mm256_maskload_ps(x + j, mk), vs);
        y = _mm256_blendv_ps(vmax, y, _mm256_castsi256_ps(mk));
        vmax = _mm256_max_ps(y, vmax);
    }
    float mnew = reduce_max8(vmax);
    if (mnew == 0.0f) { /* the sign of a zero: first wins, as the twin */
        mnew = m0;
        for (int t = 0; t < n; t++)
            if (x[t] * scale > mnew)
                mnew = x[t] * scale;
    }
    return mnew;
}

/* Row r's chunk of 8 columns at j: e_b(x * scale - mnew), 0 past n. */
static inline __attribute__((always_inline)) __m256
row_chunk_y(const float *x, int n, int j, __m256 vs, __m256 vm, __m256i *mk,
            int *masked)
{
    if (j + 8 <= n) {
        *masked = 0;
        return _mm256_sub_ps(_mm256_mul_ps(_mm256_loadu_ps(x + j), vs), vm);
    }
    *masked = 1;
    *mk = lanes_below(n - j);
    return _mm256_sub_ps(_mm256_mul_ps(_mm256_maskload_ps(x + j, *mk), vs), vm);
}

/* Columns j .. j+7 of bf16 bits to pi, none at or past cols2. */
static inline void store_bits8(uint16_t *pi, int j, int cols2, __m256 q)
{
    if (j + 8 <= cols2) {
        _mm_storeu_si128((__m128i *)(pi + j), bf16_of(q));
    } else if (j < cols2) {
        uint16_t t[8];
        _mm_storeu_si128((__m128i *)t, bf16_of(q));
        for (int e = 0; j + e < cols2; e++)
            pi[j + e] = t[e];
    }
}

/* softmax_rows_bf16 of simd/kernels.h: p_j rounded straight into p's row;
 * no pointer may be NULL; 1 <= valid[i] <= cols.  Rows go two at a time
 * (a last odd row as its own partner, computed and written twice with the
 * same bits), two chunks of 8 columns of each in step: four exponential
 * chains at once.  Each row's accumulator takes its chunks in column
 * order, lane t from the columns j with j % 8 == t: the contract's sum8. */
void stem_bf16_softmax_rows__avx2_8(int rows, int cols, const int *valid,
                                    float scale, const float *s, int lds,
                                    float *m, float *l, float *alpha,
                                    uint16_t *p, int ldp)
{
    const __m256 vs = _mm256_set1_ps(scale);
    const int cols2 = (cols + 1) & ~1;
    for (int i = 0; i < rows; i += 2) {
        const int r[2] = {i, i + 1 < rows ? i + 1 : i};
        const float *x[2];
        uint16_t *pr[2];
        int n[2];
        float mnew[2];
        __m256 vm[2], acc[2];
        for (int k = 0; k < 2; k++) {
            x[k] = s + (size_t)r[k] * lds;
            pr[k] = p + (size_t)r[k] * ldp;
            n[k] = valid[r[k]];
            mnew[k] = row_max(x[k], n[k], scale, m[r[k]]);
            vm[k] = _mm256_set1_ps(mnew[k]);
            acc[k] = _mm256_setzero_ps();
        }
        for (int j = 0; j < cols2; j += 16) {
            __m256 y[4], q[4];
            __m256i mk[4];
            int masked[4];
            for (int c = 0; c < 2; c++)
                for (int k = 0; k < 2; k++)
                    y[2 * c + k] = row_chunk_y(x[k], n[k], j + 8 * c, vs, vm[k],
                                               &mk[2 * c + k], &masked[2 * c + k]);
            expb8(4, y, q);
            for (int c = 0; c < 2; c++)
                for (int k = 0; k < 2; k++) {
                    __m256 qk = q[2 * c + k];
                    if (masked[2 * c + k])
                        qk = _mm256_and_ps(_mm256_castsi256_ps(mk[2 * c + k]), qk);
                    acc[k] = _mm256_add_ps(acc[k], qk);
                    store_bits8(pr[k], j + 8 * c, cols2, qk);
                }
        }
        for (int k = 0; k < 2 - (r[1] == r[0]); k++) {
            /* e_b of the running maxima's difference in lane 0 (the same
             * bits as stem_expb_ref, without its libm calls) */
            __m256 ya = _mm256_set1_ps(m[r[k]] - mnew[k]), a8;
            expb8(1, &ya, &a8);
            const float a = _mm256_cvtss_f32(a8);
            float li = l[r[k]] * a;
            li = li + reduce_sum8(acc[k]);
            l[r[k]] = li;
            m[r[k]] = mnew[k];
            alpha[r[k]] = a;
        }
    }
}
