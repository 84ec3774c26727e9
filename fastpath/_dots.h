/* Bank dot-product loops of fastpath._compare: see _simd.h for the SIMD policy. */
#ifndef FASTPATH_DOTS_H
#define FASTPATH_DOTS_H

#include "_simd.h"

/* ============================================================================================
 * Bank dot products: out[i] = bank[i] . q for rows [0, n), row length d.
 * ========================================================================================== */

#if FP_HAVE_AVX2
FP_AVX2 static inline int32_t fp_hsum_epi32_avx2(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

FP_AVX2 static inline float fp_hsum_ps_avx2(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

FP_AVX2 static void fp_dots_i8_avx2(const int8_t *bank, ptrdiff_t n, ptrdiff_t d, const int16_t *q, int32_t *out) {
    ptrdiff_t i, j, d16 = d & ~(ptrdiff_t)15;
    for (i = 0; i + 2 <= n; i += 2) {
        const int8_t *r0 = bank + i * d, *r1 = r0 + d;
        __m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
        int32_t t0, t1;
        for (j = 0; j < d16; j += 16) {
            __m256i qq = _mm256_loadu_si256((const __m256i *)(q + j));
            s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(r0 + j))), qq));
            s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(r1 + j))), qq));
        }
        t0 = fp_hsum_epi32_avx2(s0);
        t1 = fp_hsum_epi32_avx2(s1);
        for (; j < d; j++) {
            t0 += (int32_t)r0[j] * q[j];
            t1 += (int32_t)r1[j] * q[j];
        }
        out[i] = t0;
        out[i + 1] = t1;
    }
    for (; i < n; i++) {
        const int8_t *r0 = bank + i * d;
        __m256i s0 = _mm256_setzero_si256();
        int32_t t0;
        for (j = 0; j < d16; j += 16)
            s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(r0 + j))),
                                                        _mm256_loadu_si256((const __m256i *)(q + j))));
        t0 = fp_hsum_epi32_avx2(s0);
        for (; j < d; j++) t0 += (int32_t)r0[j] * q[j];
        out[i] = t0;
    }
}

FP_AVX2 static void fp_dots_f32_avx2(const float *bank, ptrdiff_t n, ptrdiff_t d, const float *q, float *out) {
    ptrdiff_t i, j, d8 = d & ~(ptrdiff_t)7;
    for (i = 0; i < n; i++) {
        const float *r = bank + i * d;
        __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
        float t;
        for (j = 0; j + 16 <= d8; j += 16) {
            s0 = _mm256_fmadd_ps(_mm256_loadu_ps(r + j), _mm256_loadu_ps(q + j), s0);
            s1 = _mm256_fmadd_ps(_mm256_loadu_ps(r + j + 8), _mm256_loadu_ps(q + j + 8), s1);
        }
        for (; j < d8; j += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(r + j), _mm256_loadu_ps(q + j), s0);
        t = fp_hsum_ps_avx2(_mm256_add_ps(s0, s1));
        for (; j < d; j++) t += r[j] * q[j];
        out[i] = t;
    }
}

FP_AVX2 static void fp_dists_f32_avx2(const float *bank, ptrdiff_t n, ptrdiff_t d, const float *q, float *out) {
    ptrdiff_t i, j, d8 = d & ~(ptrdiff_t)7;
    for (i = 0; i < n; i++) {
        const float *r = bank + i * d;
        __m256 s0 = _mm256_setzero_ps();
        float t;
        for (j = 0; j < d8; j += 8) {
            __m256 e = _mm256_sub_ps(_mm256_loadu_ps(r + j), _mm256_loadu_ps(q + j));
            s0 = _mm256_fmadd_ps(e, e, s0);
        }
        t = fp_hsum_ps_avx2(s0);
        for (; j < d; j++) t += (r[j] - q[j]) * (r[j] - q[j]);
        out[i] = t;
    }
}

FP_AVX2 static void fp_dots_f16_avx2(const uint16_t *bank, ptrdiff_t n, ptrdiff_t d, const float *q, float *out,
                                     int l2) {
    ptrdiff_t i, j, d8 = d & ~(ptrdiff_t)7;
    for (i = 0; i < n; i++) {
        const uint16_t *r = bank + i * d;
        __m256 s0 = _mm256_setzero_ps();
        float t;
        for (j = 0; j < d8; j += 8) {
            __m256 b = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(r + j)));
            if (l2) {
                __m256 e = _mm256_sub_ps(b, _mm256_loadu_ps(q + j));
                s0 = _mm256_fmadd_ps(e, e, s0);
            } else {
                s0 = _mm256_fmadd_ps(b, _mm256_loadu_ps(q + j), s0);
            }
        }
        t = fp_hsum_ps_avx2(s0);
        for (; j < d; j++) {
            float b = _cvtsh_ss(r[j]);
            t += l2 ? (b - q[j]) * (b - q[j]) : b * q[j];
        }
        out[i] = t;
    }
}
#endif

static void fp_dots_i8(const int8_t *bank, ptrdiff_t n, ptrdiff_t d, const int16_t *q, int32_t *out) {
    ptrdiff_t i, j;
#if FP_HAVE_AVX2
    if (fp_simd_level() >= 2) {
        fp_dots_i8_avx2(bank, n, d, q, out);
        return;
    }
#endif
    for (i = 0; i < n; i++) {
        const int8_t *r = bank + i * d;
        int32_t t;
        j = 0;
#if FP_SSE2
        if (fp_simd_level() >= 1) {
            __m128i s = _mm_setzero_si128();
            for (; j + 16 <= d; j += 16) {
                __m128i x = _mm_loadu_si128((const __m128i *)(r + j));
                __m128i lo = _mm_srai_epi16(_mm_unpacklo_epi8(x, x), 8);
                __m128i hi = _mm_srai_epi16(_mm_unpackhi_epi8(x, x), 8);
                s = _mm_add_epi32(s, _mm_madd_epi16(lo, _mm_loadu_si128((const __m128i *)(q + j))));
                s = _mm_add_epi32(s, _mm_madd_epi16(hi, _mm_loadu_si128((const __m128i *)(q + j + 8))));
            }
            s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
            s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
            t = _mm_cvtsi128_si32(s);
        } else
#endif
            t = 0;
        for (; j < d; j++) t += (int32_t)r[j] * q[j];
        out[i] = t;
    }
}

/* l2 = 0: out = b . q; l2 = 1: out = |b - q|^2. */
static void fp_dots_f32(const float *bank, ptrdiff_t n, ptrdiff_t d, const float *q, float *out, int l2) {
    ptrdiff_t i, j;
#if FP_HAVE_AVX2
    if (fp_simd_level() >= 2) {
        if (l2)
            fp_dists_f32_avx2(bank, n, d, q, out);
        else
            fp_dots_f32_avx2(bank, n, d, q, out);
        return;
    }
#endif
    for (i = 0; i < n; i++) {
        const float *r = bank + i * d;
        float t;
        j = 0;
#if FP_SSE2
        if (fp_simd_level() >= 1) {
            __m128 s = _mm_setzero_ps();
            for (; j + 4 <= d; j += 4) {
                __m128 b = _mm_loadu_ps(r + j), v = _mm_loadu_ps(q + j);
                if (l2) {
                    __m128 e = _mm_sub_ps(b, v);
                    s = _mm_add_ps(s, _mm_mul_ps(e, e));
                } else {
                    s = _mm_add_ps(s, _mm_mul_ps(b, v));
                }
            }
            s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
            t = _mm_cvtss_f32(s);
        } else
#endif
            t = 0.0f;
        for (; j < d; j++) t += l2 ? (r[j] - q[j]) * (r[j] - q[j]) : r[j] * q[j];
        out[i] = t;
    }
}

/* IEEE half -> float, exact for finite values (embeddings are finite). */
static inline float fp_half_to_float(uint16_t h) {
    union {
        float f;
        uint32_t u;
    } v;
    v.u = ((uint32_t)(h & 0x7fff)) << 13;
    v.f = v.f * 5.192296858534828e+33f; /* 2 ** 112 */
    v.u |= ((uint32_t)(h & 0x8000)) << 16;
    return v.f;
}

static void fp_dots_f16(const uint16_t *bank, ptrdiff_t n, ptrdiff_t d, const float *q, float *out, int l2) {
    ptrdiff_t i, j;
#if FP_HAVE_AVX2
    if (fp_simd_level() >= 2) {
        fp_dots_f16_avx2(bank, n, d, q, out, l2);
        return;
    }
#endif
    for (i = 0; i < n; i++) {
        const uint16_t *r = bank + i * d;
        float t = 0.0f;
        for (j = 0; j < d; j++) {
            float b = fp_half_to_float(r[j]);
            t += l2 ? (b - q[j]) * (b - q[j]) : b * q[j];
        }
        out[i] = t;
    }
}

#endif /* FASTPATH_DOTS_H */
