/* Self-attention of a CPU decoding step over a cache that is never gathered (model/cpu_kernels.py loads
 * this file; model/transformer.py's StepCache holds the cache).
 *
 * A beam search reorders its hypotheses after every step. A cache laid out as one (rows, T, D) block per
 * layer must then be gathered into the new row order: the whole cache read and written per layer per
 * step, ~14% of decoding long inputs on a 2-core VM. Here each step's keys and values stay where its
 * projection wrote them, and each row carries its ancestry: the row it descends from at every earlier
 * step. The kernel reads the cached keys/values of a row through that ancestry, once, for the dot
 * products and the weighted sum; nothing is copied.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float dot(const float *a, const float *b, int64_t d) {
    __m256 s0 = _mm256_setzero_ps(), s1 = s0;
    int64_t i = 0;
    for (; i + 16 <= d; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    for (; i + 8 <= d; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float s = hsum8(_mm256_add_ps(s0, s1));
    for (; i < d; i++) s += a[i] * b[i];
    return s;
}

static inline void axpy(float *y, float w, const float *x, int64_t d) {
    __m256 vw = _mm256_set1_ps(w);
    int64_t i = 0;
    for (; i + 8 <= d; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(vw, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < d; i++) y[i] += w * x[i];
}
#else
static inline float dot(const float *a, const float *b, int64_t d) {
    float s = 0.0f;
    for (int64_t i = 0; i < d; i++) s += a[i] * b[i];
    return s;
}

static inline void axpy(float *y, float w, const float *x, int64_t d) {
    for (int64_t i = 0; i < d; i++) y[i] += w * x[i];
}
#endif

/* For each of the n rows: its h heads of size d attend over positions 0 .. t-1.
 *   q:       row r's queries at q + r * q_stride (h * d floats, head-major);
 *   k_steps, v_steps: t addresses; position s of row r has its keys at k_steps[s] + ancestry[r * t + s]
 *            * k_stride floats (h * d of them), its values likewise;
 *   out:     row r's h * d results at out + r * h * d.
 * Scores are q.k * scale, softmax-normalised per head over the t positions. Rows are split across
 * `threads` OpenMP threads (where built with OpenMP). Returns 0, or -1 when the scratch space could not be
 * allocated. */
int step_attention(const float *q, int64_t q_stride, const int64_t *k_steps, const int64_t *v_steps,
                   int64_t k_stride, int64_t v_stride, const int32_t *ancestry, int64_t n, int64_t t,
                   int64_t h, int64_t d, float scale, float *out, int threads) {
    int failed = 0;
#pragma omp parallel num_threads(threads) reduction(|: failed)
    {
        float *scores = malloc(sizeof(float) * (size_t)(h * t));
        if (scores == NULL) failed = 1;
#pragma omp for schedule(static)
        for (int64_t r = 0; r < n; r++) {
            if (scores == NULL) continue;
            const float *qr = q + r * q_stride;
            const int32_t *anc = ancestry + r * t;
            float *o = out + r * h * d;
            /* Position by position: a row's keys of one step are h * d contiguous floats, read once. */
            for (int64_t s = 0; s < t; s++) {
                const float *k = (const float *)(intptr_t)k_steps[s] + anc[s] * k_stride;
                for (int64_t j = 0; j < h; j++) scores[j * t + s] = dot(qr + j * d, k + j * d, d) * scale;
            }
            for (int64_t j = 0; j < h; j++) {
                float *sc = scores + j * t, max = -INFINITY, sum = 0.0f;
                for (int64_t s = 0; s < t; s++) max = sc[s] > max ? sc[s] : max;
                for (int64_t s = 0; s < t; s++) {
                    sc[s] = expf(sc[s] - max);
                    sum += sc[s];
                }
                float inv = 1.0f / sum;
                for (int64_t s = 0; s < t; s++) sc[s] *= inv;
            }
            for (int64_t i = 0; i < h * d; i++) o[i] = 0.0f;
            for (int64_t s = 0; s < t; s++) {
                const float *v = (const float *)(intptr_t)v_steps[s] + anc[s] * v_stride;
                for (int64_t j = 0; j < h; j++) axpy(o + j * d, scores[j * t + s], v + j * d, d);
            }
        }
        free(scores);
    }
    return failed ? -1 : 0;
}
