/* Attention of a CPU decoding step, read where the projections wrote it (model/kernels/cpu_kernels.py loads this
 * file).
 *
 * Self-attention (model/architectures/decoder_cache.py's StepCache holds its cache): a beam search reorders its
 * hypotheses after every step. A cache laid out as one (rows, T, D) block per layer must then be
 * gathered into the new row order: the whole cache read and written per layer per step, ~14% of
 * decoding long inputs on a 2-core VM. Here each step's keys and values stay where its projection wrote
 * them, and each row carries its ancestry: the row it descends from at every earlier step. The kernel
 * reads the cached keys/values of a row through that ancestry, once, for the dot products and the
 * weighted sum; nothing is copied.
 *
 * Cross-attention (model/architectures/cross_memory.py's RowMemory): every beam of a sentence reads that sentence's
 * encoder keys/values, laid out as projected, (sentences, S, D); sentences that finish are dropped from
 * the row index, not copied out of the memory.
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

/* One query row's h heads of size d attend over t positions, position s's keys at keys[s] and values at
 * vals[s] (h * d floats each, head-major): scores q.k * scale, softmax-normalised per head, times the
 * values, into o (h * d floats). scores: h * t floats of scratch. */
static void attend_row(const float *qr, const float *const *keys, const float *const *vals, int64_t t, int64_t h,
                       int64_t d, float scale, float *scores, float *o) {
    /* Position by position: a row's keys of one position are h * d contiguous floats, read once. */
    for (int64_t s = 0; s < t; s++)
        for (int64_t j = 0; j < h; j++) scores[j * t + s] = dot(qr + j * d, keys[s] + j * d, d) * scale;
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
    for (int64_t s = 0; s < t; s++)
        for (int64_t j = 0; j < h; j++) axpy(o + j * d, scores[j * t + s], vals[s] + j * d, d);
}

/* Per-thread scratch for up to t positions: h * t scores, then t key and t value addresses. */
static float *scratch(int64_t h, int64_t t) {
    return malloc(sizeof(float) * (size_t)(h * t) + 2 * sizeof(float *) * (size_t)t);
}

/* Self-attention of a decoding step. For each of the n rows: its h heads of size d attend over
 * positions 0 .. t-1.
 *   q:       row r's queries at q + r * q_stride (h * d floats, head-major);
 *   k_steps, v_steps: t addresses; position s of row r has its keys at k_steps[s] + ancestry[r * t + s]
 *            * k_stride floats (h * d of them), its values likewise;
 *   out:     row r's h * d results at out + r * h * d.
 * Rows are split across `threads` OpenMP threads (where built with OpenMP). Returns 0, or -1 when the
 * scratch space could not be allocated. */
int step_attention(const float *q, int64_t q_stride, const int64_t *k_steps, const int64_t *v_steps,
                   int64_t k_stride, int64_t v_stride, const int32_t *ancestry, int64_t n, int64_t t,
                   int64_t h, int64_t d, float scale, float *out, int threads) {
    int failed = 0;
#pragma omp parallel num_threads(threads) reduction(|: failed)
    {
        float *scores = scratch(h, t);
        if (scores == NULL) failed = 1;
        const float **keys = (const float **)(scores + h * t), **vals = keys + t;
#pragma omp for schedule(static)
        for (int64_t r = 0; r < n; r++) {
            if (scores == NULL) continue;
            const int32_t *anc = ancestry + r * t;
            for (int64_t s = 0; s < t; s++) {
                keys[s] = (const float *)(intptr_t)k_steps[s] + anc[s] * k_stride;
                vals[s] = (const float *)(intptr_t)v_steps[s] + anc[s] * v_stride;
            }
            attend_row(q + r * q_stride, keys, vals, t, h, d, scale, scores, out + r * h * d);
        }
        free(scores);
    }
    return failed ? -1 : 0;
}

/* Cross-attention of a decoding step. The queries come in groups of `per` adjacent rows (a sentence's
 * beams), each group attending over the encoder positions of one sentence, read where encode() laid them
 * out (nothing gathered per beam or per finished sentence):
 *   q:       query row r at q + r * q_stride (h * d floats, head-major); group g is rows g*per .. g*per+per-1;
 *   kt, v:   sentence b's keys of head j, transposed, at kt + (b * h + j) * d * s_max ((d, s_max) floats),
 *            its values at v + (b * h + j) * s_max * d ((s_max, d) floats);
 *   rows:    (groups,) the sentence of each group; lengths: each sentence's real positions (its first
 *            lengths[b]; the rest are padding, which the torch path masks out);
 *   out:     row r's h * d results at out + r * h * d.
 * A group's queries share every key and value they read: four queries at a time, each key vector loaded
 * once for all four (scores for 8 positions per vector, no horizontal sums) and each value vector once.
 * Groups are split across `threads` OpenMP threads. Returns 0, or -1 when scratch could not be allocated. */
#define QB 4 /* queries per block */

static void softmax_rows(float *sc, int64_t nq, int64_t stride, int64_t t, float scale) {
    for (int64_t w = 0; w < nq; w++) {
        float *x = sc + w * stride, max = -INFINITY, sum = 0.0f;
        for (int64_t s = 0; s < t; s++) {
            x[s] *= scale;
            max = x[s] > max ? x[s] : max;
        }
        for (int64_t s = 0; s < t; s++) {
            x[s] = expf(x[s] - max);
            sum += x[s];
        }
        float inv = 1.0f / sum;
        for (int64_t s = 0; s < t; s++) x[s] *= inv;
    }
}

/* nq (<= QB) queries qs[w] (d floats) against the t first positions of keys kt ((d, s_max), transposed):
 * sc[w * stride + s] = q_w . k_s. */
static void block_scores(const float *const *qs, int64_t nq, const float *kt, int64_t s_max, int64_t t, int64_t d,
                         float *sc, int64_t stride) {
    int64_t s = 0;
#if defined(__AVX2__) && defined(__FMA__)
    /* 8 positions at a time; a block may run past t into the padding (up to s_max), never past s_max. */
    for (; s < t && s + 8 <= s_max; s += 8) {
        __m256 acc[QB];
        for (int64_t w = 0; w < QB; w++) acc[w] = _mm256_setzero_ps();
        for (int64_t i = 0; i < d; i++) {
            __m256 k = _mm256_loadu_ps(kt + i * s_max + s);
            for (int64_t w = 0; w < nq; w++) acc[w] = _mm256_fmadd_ps(_mm256_set1_ps(qs[w][i]), k, acc[w]);
        }
        for (int64_t w = 0; w < nq; w++) _mm256_storeu_ps(sc + w * stride + s, acc[w]);
    }
#endif
    for (; s < t; s++)
        for (int64_t w = 0; w < nq; w++) {
            float a = 0.0f;
            for (int64_t i = 0; i < d; i++) a += qs[w][i] * kt[i * s_max + s];
            sc[w * stride + s] = a;
        }
}

/* os[w] (d floats) = sum over the t positions of sc[w * stride + s] * v_s, v (s_max, d). */
static void block_values(const float *sc, int64_t stride, int64_t nq, const float *v, int64_t t, int64_t d,
                         float *const *os) {
    int64_t c = 0;
#if defined(__AVX2__) && defined(__FMA__)
    for (; c + 16 <= d; c += 16) {
        __m256 a0[QB], a1[QB];
        for (int64_t w = 0; w < QB; w++) a0[w] = a1[w] = _mm256_setzero_ps();
        for (int64_t s = 0; s < t; s++) {
            __m256 v0 = _mm256_loadu_ps(v + s * d + c), v1 = _mm256_loadu_ps(v + s * d + c + 8);
            for (int64_t w = 0; w < nq; w++) {
                __m256 p = _mm256_set1_ps(sc[w * stride + s]);
                a0[w] = _mm256_fmadd_ps(p, v0, a0[w]);
                a1[w] = _mm256_fmadd_ps(p, v1, a1[w]);
            }
        }
        for (int64_t w = 0; w < nq; w++) {
            _mm256_storeu_ps(os[w] + c, a0[w]);
            _mm256_storeu_ps(os[w] + c + 8, a1[w]);
        }
    }
#endif
    for (; c < d; c++)
        for (int64_t w = 0; w < nq; w++) {
            float a = 0.0f;
            for (int64_t s = 0; s < t; s++) a += sc[w * stride + s] * v[s * d + c];
            os[w][c] = a;
        }
}

int cross_attention(const float *q, int64_t q_stride, const float *kt, const float *v, int64_t s_max,
                    const int32_t *rows, const int32_t *lengths, int64_t groups, int64_t per, int64_t h, int64_t d,
                    float scale, float *out, int threads) {
    int failed = 0;
#pragma omp parallel num_threads(threads) reduction(|: failed)
    {
        float *sc = malloc(sizeof(float) * (size_t)(QB * s_max));
        if (sc == NULL) failed = 1;
#pragma omp for schedule(static)
        for (int64_t g = 0; g < groups; g++) {
            if (sc == NULL) continue;
            int64_t b = rows[g], t = lengths[b];
            for (int64_t j = 0; j < h; j++) {
                const float *ktj = kt + (b * h + j) * d * s_max, *vj = v + (b * h + j) * s_max * d;
                for (int64_t w0 = 0; w0 < per; w0 += QB) {
                    int64_t nq = per - w0 < QB ? per - w0 : QB;
                    const float *qs[QB];
                    float *os[QB];
                    for (int64_t w = 0; w < nq; w++) {
                        int64_t r = g * per + w0 + w;
                        qs[w] = q + r * q_stride + j * d;
                        os[w] = out + r * h * d + j * d;
                    }
                    block_scores(qs, nq, ktj, s_max, t, d, sc, s_max);
                    softmax_rows(sc, nq, s_max, t, scale);
                    block_values(sc, s_max, nq, vj, t, d, os);
                }
            }
        }
        free(sc);
    }
    return failed ? -1 : 0;
}
