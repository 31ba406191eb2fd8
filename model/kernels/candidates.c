/* The vocabulary-wide part of a CPU beam-search step in one pass per row: the row's log-normaliser
 * and its k best tokens under the search's constraints (model/kernels/cpu_kernels.py loads this file).
 *
 * torch needs a log_softmax (a max, an exp-sum and a write of the whole row) and then a top-k that
 * reads the row again; on a 2-core VM that was 12-15% of a decoding step. Here each row is read twice
 * while it sits in L1/L2: once for its maximum and its k best raw logits (log_softmax keeps the
 * order within a row), once for the sum of exponentials. Nothing vocabulary-wide is written.
 */
#include <math.h>
#include <stdint.h>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

/* exp of 8 floats, |relative error| < 2 ulp on [-87, 0]: x = n ln2 + r with |r| <= ln2 / 2
 * (ln2 split in two for an exact product), exp(r) by its degree-6 Taylor-like minimax polynomial,
 * 2^n added to the exponent bits. Inputs here are x - max <= 0; below -87 the result is ~0. */
static inline __m256 exp8(__m256 x) {
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

static double sum_exp(const float *x, int64_t v, float max) {
    /* Four accumulators: 32 partial sums of ~v/32 terms each (less rounding, no add-latency chain). */
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, m = _mm256_set1_ps(max);
    int64_t j = 0;
    for (; j + 32 <= v; j += 32) {
        a0 = _mm256_add_ps(a0, exp8(_mm256_sub_ps(_mm256_loadu_ps(x + j), m)));
        a1 = _mm256_add_ps(a1, exp8(_mm256_sub_ps(_mm256_loadu_ps(x + j + 8), m)));
        a2 = _mm256_add_ps(a2, exp8(_mm256_sub_ps(_mm256_loadu_ps(x + j + 16), m)));
        a3 = _mm256_add_ps(a3, exp8(_mm256_sub_ps(_mm256_loadu_ps(x + j + 24), m)));
    }
    float lanes[32];
    _mm256_storeu_ps(lanes, a0);
    _mm256_storeu_ps(lanes + 8, a1);
    _mm256_storeu_ps(lanes + 16, a2);
    _mm256_storeu_ps(lanes + 24, a3);
    double s = 0.0;
    for (int i = 0; i < 32; i++) s += lanes[i];
    for (; j < v; j++) s += expf(x[j] - max);
    return s;
}

#define HAVE_VECTOR_SCAN 1
#else
static double sum_exp(const float *x, int64_t v, float max) {
    double s = 0.0;
    for (int64_t j = 0; j < v; j++) s += expf(x[j] - max);
    return s;
}
#endif

/* Insert (value, index) into the k-slot list kept best first; ties keep the lower index first. */
static inline void insert(float *vals, int64_t *idx, int64_t k, int64_t *filled, float value, int64_t index) {
    int64_t at = *filled < k ? (*filled)++ : k - 1;
    while (at > 0 && vals[at - 1] < value) {
        vals[at] = vals[at - 1];
        idx[at] = idx[at - 1];
        at--;
    }
    vals[at] = value;
    idx[at] = index;
}

static inline int banned_col(int64_t j, const int64_t *banned, int64_t n_banned) {
    for (int64_t b = 0; b < n_banned; b++)
        if (banned[b] == j) return 1;
    return 0;
}

/* For each of the n rows of x (n x v, row-major): out_vals/out_idx (n x k) its k best log-probabilities
 * and their columns, best first, never a banned column (the row is normalised over all v columns
 * first, banned ones included, as fairseq does); eos_lp (n) the log-probability of column eos.
 * Columns in `banned` are banned in every row; row_ban (NULL: none), one byte per column, rows
 * ban_stride bytes apart, bans columns of one row (the no-repeat guard). Rows need v - n_banned >= k; a
 * row that row_ban leaves with fewer than k columns gets -inf (column 0) in its remaining slots. Rows are
 * split across `threads` OpenMP threads (where built with OpenMP). Returns 0. */
int row_candidates(const float *x, int64_t n, int64_t v, int64_t k, const int64_t *banned, int64_t n_banned,
                   const uint8_t *row_ban, int64_t ban_stride, int64_t eos, float *out_vals, int64_t *out_idx,
                   float *eos_lp, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t r = 0; r < n; r++) {
        const float *row = x + r * v;
        const uint8_t *ban = row_ban ? row_ban + r * ban_stride : 0;
        float *vals = out_vals + r * k;
        int64_t *idx = out_idx + r * k, filled = 0;
        float max = -INFINITY, floor = -INFINITY;  /* floor: the k-th best so far once k are held */
        int64_t j = 0;
#ifdef HAVE_VECTOR_SCAN
        /* 8 columns at a time: one compare against the floor, and only columns above it (a few per row
         * once the list is full) are looked at one by one, in column order. */
        __m256 vmax = _mm256_set1_ps(-INFINITY);
        for (; j + 8 <= v; j += 8) {
            __m256 block = _mm256_loadu_ps(row + j);
            vmax = _mm256_max_ps(vmax, block);
            int above = filled < k ? 0xff : _mm256_movemask_ps(_mm256_cmp_ps(block, _mm256_set1_ps(floor),
                                                                              _CMP_GT_OQ));
            while (above) {
                int lane = __builtin_ctz(above);
                above &= above - 1;
                float value = row[j + lane];
                if ((value > floor || filled < k) && !(n_banned && banned_col(j + lane, banned, n_banned))
                    && !(ban && ban[j + lane])) {
                    insert(vals, idx, k, &filled, value, j + lane);
                    if (filled == k) floor = vals[k - 1];
                }
            }
        }
        float lanes[8];
        _mm256_storeu_ps(lanes, vmax);
        for (int i = 0; i < 8; i++)
            if (lanes[i] > max) max = lanes[i];
#endif
        for (; j < v; j++) {
            float value = row[j];
            if (value > max) max = value;
            if ((value > floor || filled < k) && !(n_banned && banned_col(j, banned, n_banned)) && !(ban && ban[j])) {
                insert(vals, idx, k, &filled, value, j);
                if (filled == k) floor = vals[k - 1];
            }
        }
        /* (x - max) - log(sum), in that order: torch's log_softmax rounds the same way. */
        float log_sum = (float)log(sum_exp(row, v, max));
        for (int64_t i = 0; i < k; i++) vals[i] = (vals[i] - max) - log_sum;
        for (int64_t i = filled; i < k; i++) {  /* only where row_ban left fewer than k columns */
            vals[i] = -INFINITY;
            idx[i] = 0;
        }
        eos_lp[r] = (row[eos] - max) - log_sum;
    }
    return 0;
}
