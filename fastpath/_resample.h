/* Resampling inner loops of fastpath._preprocess (letterbox, crop, warp): see _simd.h for the
 * SIMD policy and fastpath/_reference.py for the spec. */
#ifndef FASTPATH_RESAMPLE_H
#define FASTPATH_RESAMPLE_H

#include <math.h>

#include "_simd.h"

/* ============================================================================================
 * Resampling rows. `dst[c]` is the output plane fed by SOURCE channel c (the caller applies the
 * BGR->RGB swap by permuting dst/mul/add), out = v * mul[c] + add[c].
 * ========================================================================================== */

#if FP_HAVE_AVX2
/* AVX2 body of fp_half_row (same contract): 8 blocks per step, the SSE2 shuffle network run on
 * both 128-bit lanes at once (low lane blocks x..x+3, high lane blocks x+4..x+7). */
#define FP_DEINTERLEAVE_HALF256(g0, g1, g2, g3, g4, g5, p0, p1, p2)              \
    do {                                                                        \
        __m256 a_ = _mm256_shuffle_ps(g0, g1, _MM_SHUFFLE(3, 2, 1, 0));         \
        __m256 b_ = _mm256_shuffle_ps(g3, g4, _MM_SHUFFLE(3, 2, 1, 0));         \
        __m256 c_ = _mm256_shuffle_ps(g0, g2, _MM_SHUFFLE(1, 0, 3, 2));         \
        __m256 d_ = _mm256_shuffle_ps(g3, g5, _MM_SHUFFLE(1, 0, 3, 2));         \
        p0 = _mm256_shuffle_ps(a_, b_, _MM_SHUFFLE(2, 0, 2, 0));                \
        p1 = _mm256_shuffle_ps(a_, b_, _MM_SHUFFLE(3, 1, 3, 1));                \
        p2 = _mm256_shuffle_ps(c_, d_, _MM_SHUFFLE(2, 0, 2, 0));                \
    } while (0)

FP_AVX2 static ptrdiff_t fp_half_row_avx2(const uint8_t *r0, const uint8_t *r1, ptrdiff_t nw, float *const dst[3],
                                          const float q[3], const float add[3], uint16_t *tmp) {
    ptrdiff_t n = 6 * nw, k = 0, x = 0;
    for (; k + 16 <= n; k += 16) {
        __m256i a = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(r0 + k)));
        __m256i b = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(r1 + k)));
        _mm256_storeu_si256((__m256i *)(tmp + k), _mm256_add_epi16(a, b));
    }
    for (; k < n; k++) tmp[k] = (uint16_t)(r0[k] + r1[k]);
    for (k = n; k < n + 8; k++) tmp[k] = 0;
    {
        const __m256 q0 = _mm256_set1_ps(q[0]), q1 = _mm256_set1_ps(q[1]), q2 = _mm256_set1_ps(q[2]);
        const __m256 a0 = _mm256_set1_ps(add[0]), a1 = _mm256_set1_ps(add[1]), a2 = _mm256_set1_ps(add[2]);
        float *d0 = dst[0], *d1 = dst[1], *d2 = dst[2];
        for (; x + 8 <= nw; x += 8) {
            const uint16_t *p = tmp + 6 * x; /* 48 sums, reads up to p[50] <= tmp[6*nw + 2] */
            __m128i t[6];
            __m256 g[6], p0, p1, p2;
            int j;
            for (j = 0; j < 6; j++)
                t[j] = _mm_add_epi16(_mm_loadu_si128((const __m128i *)(p + 8 * j)),
                                     _mm_loadu_si128((const __m128i *)(p + 8 * j + 3)));
            /* t[0..2] hold blocks x..x+3, t[3..5] blocks x+4..x+7: pair their halves per lane */
            for (j = 0; j < 3; j++) {
                g[2 * j] = _mm256_cvtepi32_ps(_mm256_cvtepu16_epi32(_mm_unpacklo_epi64(t[j], t[j + 3])));
                g[2 * j + 1] = _mm256_cvtepi32_ps(_mm256_cvtepu16_epi32(_mm_unpackhi_epi64(t[j], t[j + 3])));
            }
            FP_DEINTERLEAVE_HALF256(g[0], g[1], g[2], g[3], g[4], g[5], p0, p1, p2);
            _mm256_storeu_ps(d0 + x, _mm256_add_ps(_mm256_mul_ps(p0, q0), a0));
            _mm256_storeu_ps(d1 + x, _mm256_add_ps(_mm256_mul_ps(p1, q1), a1));
            _mm256_storeu_ps(d2 + x, _mm256_add_ps(_mm256_mul_ps(p2, q2), a2));
        }
    }
    return x;
}
#endif

/* Exact 2:1 downscale of one output row: block x = source pixels 2x, 2x+1 of rows r0 and r1
 * (r0/r1 point at the block row's first byte; 6*nw bytes are read from each). v = block sum,
 * out = v * q[c] + add[c] (q = mul/4: bilinear at half scale IS the 2x2 mean, exactly).
 * tmp: at least 6*nw + 8 uint16. */
static void fp_half_row(const uint8_t *r0, const uint8_t *r1, ptrdiff_t nw, float *const dst[3],
                        const float q[3], const float add[3], uint16_t *tmp) {
    const int vec = fp_simd_level() >= 1; /* runtime cap (tests run every path) */
    (void)vec;
    ptrdiff_t n = 6 * nw, k = 0, x = 0;
#if FP_HAVE_AVX2
    if (fp_simd_level() >= 2) {
        x = fp_half_row_avx2(r0, r1, nw, dst, q, add, tmp);
        goto tail;
    }
#endif
#if FP_SSE2
    const __m128i z = _mm_setzero_si128();
    for (; vec && k + 16 <= n; k += 16) {
        __m128i a = _mm_loadu_si128((const __m128i *)(r0 + k));
        __m128i b = _mm_loadu_si128((const __m128i *)(r1 + k));
        _mm_storeu_si128((__m128i *)(tmp + k), _mm_add_epi16(_mm_unpacklo_epi8(a, z), _mm_unpacklo_epi8(b, z)));
        _mm_storeu_si128((__m128i *)(tmp + k + 8), _mm_add_epi16(_mm_unpackhi_epi8(a, z), _mm_unpackhi_epi8(b, z)));
    }
#endif
    for (; k < n; k++) tmp[k] = (uint16_t)(r0[k] + r1[k]);
    for (k = n; k < n + 8; k++) tmp[k] = 0;
#if FP_SSE2
    {
        const __m128 q0 = _mm_set1_ps(q[0]), q1 = _mm_set1_ps(q[1]), q2 = _mm_set1_ps(q[2]);
        const __m128 a0 = _mm_set1_ps(add[0]), a1 = _mm_set1_ps(add[1]), a2 = _mm_set1_ps(add[2]);
        float *d0 = dst[0], *d1 = dst[1], *d2 = dst[2];
        for (; vec && x + 4 <= nw; x += 4) {
            const uint16_t *p = tmp + 6 * x; /* 24 sums, reads up to p[26] <= tmp[6*nw + 2] */
            __m128i t0 = _mm_add_epi16(_mm_loadu_si128((const __m128i *)p), _mm_loadu_si128((const __m128i *)(p + 3)));
            __m128i t1 = _mm_add_epi16(_mm_loadu_si128((const __m128i *)(p + 8)),
                                       _mm_loadu_si128((const __m128i *)(p + 11)));
            __m128i t2 = _mm_add_epi16(_mm_loadu_si128((const __m128i *)(p + 16)),
                                       _mm_loadu_si128((const __m128i *)(p + 19)));
            /* g[k] = p[k] + p[k+3]; block j channel c is g[6j + c] */
            __m128 g0 = _mm_cvtepi32_ps(_mm_unpacklo_epi16(t0, z));
            __m128 g1 = _mm_cvtepi32_ps(_mm_unpackhi_epi16(t0, z));
            __m128 g2 = _mm_cvtepi32_ps(_mm_unpacklo_epi16(t1, z));
            __m128 g3 = _mm_cvtepi32_ps(_mm_unpackhi_epi16(t1, z));
            __m128 g4 = _mm_cvtepi32_ps(_mm_unpacklo_epi16(t2, z));
            __m128 g5 = _mm_cvtepi32_ps(_mm_unpackhi_epi16(t2, z));
            __m128 a = _mm_shuffle_ps(g0, g1, _MM_SHUFFLE(3, 2, 1, 0)); /* g0 g1 g6 g7 */
            __m128 b = _mm_shuffle_ps(g3, g4, _MM_SHUFFLE(3, 2, 1, 0)); /* g12 g13 g18 g19 */
            __m128 c = _mm_shuffle_ps(g0, g2, _MM_SHUFFLE(1, 0, 3, 2)); /* g2 g3 g8 g9 */
            __m128 d = _mm_shuffle_ps(g3, g5, _MM_SHUFFLE(1, 0, 3, 2)); /* g14 g15 g20 g21 */
            __m128 p0 = _mm_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
            __m128 p1 = _mm_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
            __m128 p2 = _mm_shuffle_ps(c, d, _MM_SHUFFLE(2, 0, 2, 0));
            _mm_storeu_ps(d0 + x, _mm_add_ps(_mm_mul_ps(p0, q0), a0));
            _mm_storeu_ps(d1 + x, _mm_add_ps(_mm_mul_ps(p1, q1), a1));
            _mm_storeu_ps(d2 + x, _mm_add_ps(_mm_mul_ps(p2, q2), a2));
        }
    }
#endif
#if FP_HAVE_AVX2
tail:
#endif
    for (; x < nw; x++) {
        const uint16_t *p = tmp + 6 * x;
        dst[0][x] = (float)(p[0] + p[3]) * q[0] + add[0];
        dst[1][x] = (float)(p[1] + p[4]) * q[1] + add[1];
        dst[2][x] = (float)(p[2] + p[5]) * q[2] + add[2];
    }
}

#if FP_SSE2
/* 4 pixels (12 interleaved floats f0|f1|f2) -> channel vectors c0, c1, c2. */
#define FP_DEINTERLEAVE3(f0, f1, f2, c0, c1, c2)                                    \
    do {                                                                           \
        __m128 b_ = _mm_shuffle_ps(f1, f2, _MM_SHUFFLE(1, 1, 2, 2));               \
        c0 = _mm_shuffle_ps(f0, b_, _MM_SHUFFLE(2, 0, 3, 0));                      \
        __m128 c_ = _mm_shuffle_ps(f0, f1, _MM_SHUFFLE(0, 0, 1, 1));               \
        __m128 d_ = _mm_shuffle_ps(f1, f2, _MM_SHUFFLE(2, 2, 3, 3));               \
        c1 = _mm_shuffle_ps(c_, d_, _MM_SHUFFLE(2, 0, 2, 0));                      \
        __m128 e_ = _mm_shuffle_ps(f0, f1, _MM_SHUFFLE(1, 1, 2, 2));               \
        c2 = _mm_shuffle_ps(e_, f2, _MM_SHUFFLE(3, 0, 2, 0));                      \
    } while (0)
#endif

#if FP_HAVE_AVX2
/* AVX2 body of fp_copy_row (same contract): 8 pixels a step, each channel's 8 bytes gathered by
 * two byte shuffles (bytes 0..15 and 16..23 of the step) and widened to 8 floats. The SSE2 loop
 * widens all 48 bytes and deinterleaves floats: twice the shuffles, and it was the bound (the
 * 1:1 conversion ran at the same ns a pixel whether its output fitted in L2 or not). */
FP_AVX2 static ptrdiff_t fp_copy_row_avx2(const uint8_t *r, ptrdiff_t nw, float *const dst[3], const float mul[3],
                                          const float add[3]) {
    const __m128i lo0 = _mm_setr_epi8(0, 3, 6, 9, 12, 15, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m128i hi0 = _mm_setr_epi8(-1, -1, -1, -1, -1, -1, 2, 5, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m128i lo1 = _mm_setr_epi8(1, 4, 7, 10, 13, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m128i hi1 = _mm_setr_epi8(-1, -1, -1, -1, -1, 0, 3, 6, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m128i lo2 = _mm_setr_epi8(2, 5, 8, 11, 14, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m128i hi2 = _mm_setr_epi8(-1, -1, -1, -1, -1, 1, 4, 7, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m256 m0 = _mm256_set1_ps(mul[0]), m1 = _mm256_set1_ps(mul[1]), m2 = _mm256_set1_ps(mul[2]);
    const __m256 a0 = _mm256_set1_ps(add[0]), a1 = _mm256_set1_ps(add[1]), a2 = _mm256_set1_ps(add[2]);
    float *d0 = dst[0], *d1 = dst[1], *d2 = dst[2];
    ptrdiff_t x = 0;
    for (; x + 8 <= nw; x += 8) {
        const uint8_t *p = r + 3 * x; /* reads p[0..23] */
        __m128i a = _mm_loadu_si128((const __m128i *)p);
        __m128i b = _mm_loadl_epi64((const __m128i *)(p + 16));
        __m128i c0 = _mm_or_si128(_mm_shuffle_epi8(a, lo0), _mm_shuffle_epi8(b, hi0));
        __m128i c1 = _mm_or_si128(_mm_shuffle_epi8(a, lo1), _mm_shuffle_epi8(b, hi1));
        __m128i c2 = _mm_or_si128(_mm_shuffle_epi8(a, lo2), _mm_shuffle_epi8(b, hi2));
        __m256 f0 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(c0));
        __m256 f1 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(c1));
        __m256 f2 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(c2));
        _mm256_storeu_ps(d0 + x, _mm256_add_ps(_mm256_mul_ps(f0, m0), a0)); /* no FMA: the spec's rounding */
        _mm256_storeu_ps(d1 + x, _mm256_add_ps(_mm256_mul_ps(f1, m1), a1));
        _mm256_storeu_ps(d2 + x, _mm256_add_ps(_mm256_mul_ps(f2, m2), a2));
    }
    return x;
}
#endif

/* One output row at 1:1 (no resampling): nw pixels of r (BGR interleaved), 3*nw bytes read. */
static void fp_copy_row(const uint8_t *r, ptrdiff_t nw, float *const dst[3], const float mul[3],
                        const float add[3]) {
    const int vec = fp_simd_level() >= 1; /* runtime cap (tests run every path) */
    (void)vec;
    ptrdiff_t x = 0;
#if FP_HAVE_AVX2
    if (fp_simd_level() >= 2) x = fp_copy_row_avx2(r, nw, dst, mul, add);
#endif
#if FP_SSE2
    const __m128i z = _mm_setzero_si128();
    const __m128 m0 = _mm_set1_ps(mul[0]), m1 = _mm_set1_ps(mul[1]), m2 = _mm_set1_ps(mul[2]);
    const __m128 a0 = _mm_set1_ps(add[0]), a1 = _mm_set1_ps(add[1]), a2 = _mm_set1_ps(add[2]);
    float *d0 = dst[0], *d1 = dst[1], *d2 = dst[2];
    for (; vec && x + 16 <= nw; x += 16) {
        __m128 f[12];
        int j;
        for (j = 0; j < 3; j++) {
            __m128i v = _mm_loadu_si128((const __m128i *)(r + 3 * x + 16 * j));
            __m128i lo = _mm_unpacklo_epi8(v, z), hi = _mm_unpackhi_epi8(v, z);
            f[4 * j] = _mm_cvtepi32_ps(_mm_unpacklo_epi16(lo, z));
            f[4 * j + 1] = _mm_cvtepi32_ps(_mm_unpackhi_epi16(lo, z));
            f[4 * j + 2] = _mm_cvtepi32_ps(_mm_unpacklo_epi16(hi, z));
            f[4 * j + 3] = _mm_cvtepi32_ps(_mm_unpackhi_epi16(hi, z));
        }
        for (j = 0; j < 4; j++) {
            __m128 c0, c1, c2;
            FP_DEINTERLEAVE3(f[3 * j], f[3 * j + 1], f[3 * j + 2], c0, c1, c2);
            _mm_storeu_ps(d0 + x + 4 * j, _mm_add_ps(_mm_mul_ps(c0, m0), a0));
            _mm_storeu_ps(d1 + x + 4 * j, _mm_add_ps(_mm_mul_ps(c1, m1), a1));
            _mm_storeu_ps(d2 + x + 4 * j, _mm_add_ps(_mm_mul_ps(c2, m2), a2));
        }
    }
#endif
    for (; x < nw; x++) {
        dst[0][x] = (float)r[3 * x] * mul[0] + add[0];
        dst[1][x] = (float)r[3 * x + 1] * mul[1] + add[1];
        dst[2][x] = (float)r[3 * x + 2] * mul[2] + add[2];
    }
}

/* Vertical blend of two source rows (n bytes each) into floats: out = r0 * a + r1 * b. */
static void fp_vblend(const uint8_t *r0, const uint8_t *r1, float a, float b, float *out, ptrdiff_t n) {
    const int vec = fp_simd_level() >= 1; /* runtime cap (tests run every path) */
    (void)vec;
    ptrdiff_t k = 0;
#if FP_SSE2
    const __m128i z = _mm_setzero_si128();
    const __m128 va = _mm_set1_ps(a), vb = _mm_set1_ps(b);
    for (; vec && k + 16 <= n; k += 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(r0 + k));
        __m128i y = _mm_loadu_si128((const __m128i *)(r1 + k));
        __m128i xl = _mm_unpacklo_epi8(x, z), xh = _mm_unpackhi_epi8(x, z);
        __m128i yl = _mm_unpacklo_epi8(y, z), yh = _mm_unpackhi_epi8(y, z);
        _mm_storeu_ps(out + k, _mm_add_ps(_mm_mul_ps(_mm_cvtepi32_ps(_mm_unpacklo_epi16(xl, z)), va),
                                          _mm_mul_ps(_mm_cvtepi32_ps(_mm_unpacklo_epi16(yl, z)), vb)));
        _mm_storeu_ps(out + k + 4, _mm_add_ps(_mm_mul_ps(_mm_cvtepi32_ps(_mm_unpackhi_epi16(xl, z)), va),
                                              _mm_mul_ps(_mm_cvtepi32_ps(_mm_unpackhi_epi16(yl, z)), vb)));
        _mm_storeu_ps(out + k + 8, _mm_add_ps(_mm_mul_ps(_mm_cvtepi32_ps(_mm_unpacklo_epi16(xh, z)), va),
                                              _mm_mul_ps(_mm_cvtepi32_ps(_mm_unpacklo_epi16(yh, z)), vb)));
        _mm_storeu_ps(out + k + 12, _mm_add_ps(_mm_mul_ps(_mm_cvtepi32_ps(_mm_unpackhi_epi16(xh, z)), va),
                                               _mm_mul_ps(_mm_cvtepi32_ps(_mm_unpackhi_epi16(yh, z)), vb)));
    }
#endif
    for (; k < n; k++) out[k] = (float)r0[k] * a + (float)r1[k] * b;
}

/* One source row (n bytes) converted to floats. */
static void fp_vcopy(const uint8_t *r0, float *out, ptrdiff_t n) {
    const int vec = fp_simd_level() >= 1; /* runtime cap (tests run every path) */
    (void)vec;
    ptrdiff_t k = 0;
#if FP_SSE2
    const __m128i z = _mm_setzero_si128();
    for (; vec && k + 16 <= n; k += 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(r0 + k));
        __m128i xl = _mm_unpacklo_epi8(x, z), xh = _mm_unpackhi_epi8(x, z);
        _mm_storeu_ps(out + k, _mm_cvtepi32_ps(_mm_unpacklo_epi16(xl, z)));
        _mm_storeu_ps(out + k + 4, _mm_cvtepi32_ps(_mm_unpackhi_epi16(xl, z)));
        _mm_storeu_ps(out + k + 8, _mm_cvtepi32_ps(_mm_unpacklo_epi16(xh, z)));
        _mm_storeu_ps(out + k + 12, _mm_cvtepi32_ps(_mm_unpackhi_epi16(xh, z)));
    }
#endif
    for (; k < n; k++) out[k] = (float)r0[k];
}

#if FP_HAVE_AVX2
/* AVX2 body of fp_hblend: 8 pixels a step, pixel j in the low lane and j + 4 in the high lane,
 * so the in-lane 4x4 transpose yields 8 consecutive pixels per channel. */
FP_AVX2 static ptrdiff_t fp_hblend_avx2(const float *row, const int32_t *idx, const float *wt, ptrdiff_t kt,
                                      ptrdiff_t nw, float *const dst[3], const float mul[3], const float add[3]) {
    ptrdiff_t x = 0, k;
    const __m256 m0 = _mm256_set1_ps(mul[0]), m1 = _mm256_set1_ps(mul[1]), m2 = _mm256_set1_ps(mul[2]);
    const __m256 a0 = _mm256_set1_ps(add[0]), a1 = _mm256_set1_ps(add[1]), a2 = _mm256_set1_ps(add[2]);
    for (; x + 8 <= nw; x += 8) {
        __m256 p[4];
        int j;
        for (j = 0; j < 4; j++) {
            const int32_t *il = idx + (x + j) * kt, *ih = idx + (x + j + 4) * kt;
            const float *wl = wt + (x + j) * kt, *wh = wt + (x + j + 4) * kt;
            __m256 acc = _mm256_mul_ps(
                _mm256_set_m128(_mm_loadu_ps(row + 3 * (ptrdiff_t)ih[0]), _mm_loadu_ps(row + 3 * (ptrdiff_t)il[0])),
                _mm256_set_m128(_mm_set1_ps(wh[0]), _mm_set1_ps(wl[0])));
            for (k = 1; k < kt; k++)
                acc = _mm256_fmadd_ps(
                    _mm256_set_m128(_mm_loadu_ps(row + 3 * (ptrdiff_t)ih[k]), _mm_loadu_ps(row + 3 * (ptrdiff_t)il[k])),
                    _mm256_set_m128(_mm_set1_ps(wh[k]), _mm_set1_ps(wl[k])), acc);
            p[j] = acc;
        }
        {
            __m256 t0 = _mm256_unpacklo_ps(p[0], p[1]), t1 = _mm256_unpackhi_ps(p[0], p[1]);
            __m256 t2 = _mm256_unpacklo_ps(p[2], p[3]), t3 = _mm256_unpackhi_ps(p[2], p[3]);
            __m256 c0 = _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(t0), _mm256_castps_pd(t2)));
            __m256 c1 = _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(t0), _mm256_castps_pd(t2)));
            __m256 c2 = _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(t1), _mm256_castps_pd(t3)));
            _mm256_storeu_ps(dst[0] + x, _mm256_fmadd_ps(c0, m0, a0));
            _mm256_storeu_ps(dst[1] + x, _mm256_fmadd_ps(c1, m1, a1));
            _mm256_storeu_ps(dst[2] + x, _mm256_fmadd_ps(c2, m2, a2));
        }
    }
    return x;
}
#endif

/* Horizontal blend of a float row (interleaved pixels of 3 floats, plus at least one readable
 * float after the last pixel referenced) into planes, K taps per output pixel (idx/w are
 * (nw, K) row-major): v = sum_k row[idx[x, k]] * w[x, k], summed in tap order. */
static void fp_hblend(const float *row, const int32_t *idx, const float *wt, ptrdiff_t kt, ptrdiff_t nw,
                      float *const dst[3], const float mul[3], const float add[3]) {
    const int vec = fp_simd_level() >= 1; /* runtime cap (tests run every path) */
    ptrdiff_t x = 0, k;
    (void)vec;
#if FP_HAVE_AVX2
    if (fp_simd_level() >= 2) x = fp_hblend_avx2(row, idx, wt, kt, nw, dst, mul, add);
#endif
#if FP_SSE2
    {
        const __m128 m0 = _mm_set1_ps(mul[0]), m1 = _mm_set1_ps(mul[1]), m2 = _mm_set1_ps(mul[2]);
        const __m128 a0 = _mm_set1_ps(add[0]), a1 = _mm_set1_ps(add[1]), a2 = _mm_set1_ps(add[2]);
        float *d0 = dst[0], *d1 = dst[1], *d2 = dst[2];
        for (; vec && x + 4 <= nw; x += 4) {
            __m128 p[4];
            int j;
            for (j = 0; j < 4; j++) {
                const int32_t *ij = idx + (x + j) * kt;
                const float *wj = wt + (x + j) * kt;
                __m128 acc = _mm_mul_ps(_mm_loadu_ps(row + 3 * (ptrdiff_t)ij[0]), _mm_set1_ps(wj[0]));
                if (kt == 2) {
                    acc = _mm_add_ps(acc, _mm_mul_ps(_mm_loadu_ps(row + 3 * (ptrdiff_t)ij[1]), _mm_set1_ps(wj[1])));
                } else {
                    for (k = 1; k < kt; k++)
                        acc = _mm_add_ps(acc,
                                         _mm_mul_ps(_mm_loadu_ps(row + 3 * (ptrdiff_t)ij[k]), _mm_set1_ps(wj[k])));
                }
                p[j] = acc;
            }
            _MM_TRANSPOSE4_PS(p[0], p[1], p[2], p[3]);
            _mm_storeu_ps(d0 + x, _mm_add_ps(_mm_mul_ps(p[0], m0), a0));
            _mm_storeu_ps(d1 + x, _mm_add_ps(_mm_mul_ps(p[1], m1), a1));
            _mm_storeu_ps(d2 + x, _mm_add_ps(_mm_mul_ps(p[2], m2), a2));
        }
    }
#endif
    for (; x < nw; x++) {
        const int32_t *ij = idx + x * kt;
        const float *wj = wt + x * kt;
        const float *u = row + 3 * (ptrdiff_t)ij[0];
        float v0 = u[0] * wj[0], v1 = u[1] * wj[0], v2 = u[2] * wj[0];
        for (k = 1; k < kt; k++) {
            u = row + 3 * (ptrdiff_t)ij[k];
            v0 = v0 + u[0] * wj[k];
            v1 = v1 + u[1] * wj[k];
            v2 = v2 + u[2] * wj[k];
        }
        dst[0][x] = v0 * mul[0] + add[0];
        dst[1][x] = v1 * mul[1] + add[1];
        dst[2][x] = v2 * mul[2] + add[2];
    }
}

#if FP_HAVE_AVX2
FP_AVX2 static ptrdiff_t fp_vrows_avx2(const uint8_t *const *rows, const float *w, ptrdiff_t kt, float *out,
                                     ptrdiff_t n) {
    ptrdiff_t k = 0, j;
    for (; k + 16 <= n; k += 16) {
        __m256 a0 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(rows[0] + k)))),
                                  _mm256_set1_ps(w[0]));
        __m256 a1 = _mm256_mul_ps(
            _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(rows[0] + k + 8)))),
            _mm256_set1_ps(w[0]));
        for (j = 1; j < kt; j++) {
            const __m256 wj = _mm256_set1_ps(w[j]);
            a0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(rows[j] + k)))),
                                 wj, a0);
            a1 = _mm256_fmadd_ps(
                _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(rows[j] + k + 8)))), wj, a1);
        }
        _mm256_storeu_ps(out + k, a0);
        _mm256_storeu_ps(out + k + 8, a1);
    }
    return k;
}
#endif

/* Vertical blend of kt source rows (n bytes each, all inside the frame) into floats:
 * out = rows[0] * w[0] + rows[1] * w[1] + ... summed in tap order, in registers. */
static void fp_vrows(const uint8_t *const *rows, const float *w, ptrdiff_t kt, float *out, ptrdiff_t n) {
    const int vec = fp_simd_level() >= 1; /* runtime cap (tests run every path) */
    ptrdiff_t k = 0, j;
    (void)vec;
#if FP_HAVE_AVX2
    if (fp_simd_level() >= 2) k = fp_vrows_avx2(rows, w, kt, out, n);
#endif
#if FP_SSE2
    {
        const __m128i z = _mm_setzero_si128();
        for (; vec && k + 16 <= n; k += 16) {
            __m128 acc[4] = {_mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps()};
            for (j = 0; j < kt; j++) {
                const __m128 wj = _mm_set1_ps(w[j]);
                __m128i x = _mm_loadu_si128((const __m128i *)(rows[j] + k));
                __m128i xl = _mm_unpacklo_epi8(x, z), xh = _mm_unpackhi_epi8(x, z);
                __m128 f[4];
                int q;
                f[0] = _mm_mul_ps(_mm_cvtepi32_ps(_mm_unpacklo_epi16(xl, z)), wj);
                f[1] = _mm_mul_ps(_mm_cvtepi32_ps(_mm_unpackhi_epi16(xl, z)), wj);
                f[2] = _mm_mul_ps(_mm_cvtepi32_ps(_mm_unpacklo_epi16(xh, z)), wj);
                f[3] = _mm_mul_ps(_mm_cvtepi32_ps(_mm_unpackhi_epi16(xh, z)), wj);
                for (q = 0; q < 4; q++) acc[q] = j == 0 ? f[q] : _mm_add_ps(acc[q], f[q]);
            }
            _mm_storeu_ps(out + k, acc[0]);
            _mm_storeu_ps(out + k + 4, acc[1]);
            _mm_storeu_ps(out + k + 8, acc[2]);
            _mm_storeu_ps(out + k + 12, acc[3]);
        }
    }
#endif
    for (; k < n; k++) {
        float acc = (float)rows[0][k] * w[0];
        for (j = 1; j < kt; j++) acc = acc + (float)rows[j][k] * w[j];
        out[k] = acc;
    }
}

/* Accumulate one source row (n bytes) into a float row: out = out + r * w. */
static void fp_vaccum(const uint8_t *r, float w, float *out, ptrdiff_t n) {
    const int vec = fp_simd_level() >= 1; /* runtime cap (tests run every path) */
    ptrdiff_t k = 0;
    (void)vec;
#if FP_SSE2
    {
        const __m128i z = _mm_setzero_si128();
        const __m128 vw = _mm_set1_ps(w);
        for (; vec && k + 16 <= n; k += 16) {
            __m128i x = _mm_loadu_si128((const __m128i *)(r + k));
            __m128i xl = _mm_unpacklo_epi8(x, z), xh = _mm_unpackhi_epi8(x, z);
            __m128 f0 = _mm_cvtepi32_ps(_mm_unpacklo_epi16(xl, z)), f1 = _mm_cvtepi32_ps(_mm_unpackhi_epi16(xl, z));
            __m128 f2 = _mm_cvtepi32_ps(_mm_unpacklo_epi16(xh, z)), f3 = _mm_cvtepi32_ps(_mm_unpackhi_epi16(xh, z));
            _mm_storeu_ps(out + k, _mm_add_ps(_mm_loadu_ps(out + k), _mm_mul_ps(f0, vw)));
            _mm_storeu_ps(out + k + 4, _mm_add_ps(_mm_loadu_ps(out + k + 4), _mm_mul_ps(f1, vw)));
            _mm_storeu_ps(out + k + 8, _mm_add_ps(_mm_loadu_ps(out + k + 8), _mm_mul_ps(f2, vw)));
            _mm_storeu_ps(out + k + 12, _mm_add_ps(_mm_loadu_ps(out + k + 12), _mm_mul_ps(f3, vw)));
        }
    }
#endif
    for (; k < n; k++) out[k] = out[k] + (float)r[k] * w;
}

/* Fill n floats with v. */
static void fp_fill(float *p, ptrdiff_t n, float v) {
    const int vec = fp_simd_level() >= 1; /* runtime cap (tests run every path) */
    (void)vec;
    ptrdiff_t k = 0;
#if FP_SSE2
    const __m128 vv = _mm_set1_ps(v);
    for (; vec && k + 4 <= n; k += 4) _mm_storeu_ps(p + k, vv);
#endif
    for (; k < n; k++) p[k] = v;
}

/* ============================================================================================
 * Affine warp of one output row (bilinear, constant border), the inverse map given:
 * source (sx, sy) = (m00 x + m01 y + m02, m10 x + m11 y + m12) for output pixel (x, y).
 * v = (p00 (1 - ax) + p01 ax) (1 - ay) + (p10 (1 - ax) + p11 ax) ay; taps outside the frame read
 * border[c] (source order).
 * ========================================================================================== */
static void fp_warp_row(const uint8_t *base, ptrdiff_t h, ptrdiff_t w, const double m[6], ptrdiff_t y,
                        ptrdiff_t ow, float *const dst[3], const float mul[3], const float add[3],
                        const float border[3]) {
    const int vec = fp_simd_level() >= 1; /* runtime cap (tests run every path) */
    (void)vec;
    ptrdiff_t x, stride = 3 * w;
    double by = m[1] * (double)y + m[2], cy = m[4] * (double)y + m[5];
    double lox = -2.0, hix = (double)w + 1.0, loy = -2.0, hiy = (double)h + 1.0;
#if FP_SSE2
    const __m128 vmul = _mm_setr_ps(mul[0], mul[1], mul[2], 0.0f);
    const __m128 vadd = _mm_setr_ps(add[0], add[1], add[2], 0.0f);
    const __m128i z = _mm_setzero_si128();
#endif
    for (x = 0; x < ow; x++) {
        double sx = m[0] * (double)x + by, sy = m[3] * (double)x + cy, fx, fy;
        ptrdiff_t ix, iy;
        float ax, ay;
        if (!(sx >= lox)) sx = lox; /* also catches NaN */
        if (sx > hix) sx = hix;
        if (!(sy >= loy)) sy = loy;
        if (sy > hiy) sy = hiy;
        fx = (double)(ptrdiff_t)sx;
        if (fx > sx) fx -= 1.0; /* floor */
        fy = (double)(ptrdiff_t)sy;
        if (fy > sy) fy -= 1.0;
        ix = (ptrdiff_t)fx;
        iy = (ptrdiff_t)fy;
        ax = (float)(sx - fx);
        ay = (float)(sy - fy);
#if FP_SSE2
        if (vec && ix >= 0 && iy >= 0 && ix + 2 < w && iy + 1 < h) {
            const uint8_t *p = base + iy * stride + ix * 3;
            int32_t u[4];
            __m128 t[4], v;
            const float bx = 1.0f - ax, by_ = 1.0f - ay;
            memcpy(&u[0], p, 4);
            memcpy(&u[1], p + 3, 4);
            memcpy(&u[2], p + stride, 4);
            memcpy(&u[3], p + stride + 3, 4);
            {
                int j;
                for (j = 0; j < 4; j++)
                    t[j] = _mm_cvtepi32_ps(_mm_unpacklo_epi16(_mm_unpacklo_epi8(_mm_cvtsi32_si128(u[j]), z), z));
            }
            v = _mm_add_ps(_mm_mul_ps(_mm_add_ps(_mm_mul_ps(t[0], _mm_set1_ps(bx)), _mm_mul_ps(t[1], _mm_set1_ps(ax))),
                                      _mm_set1_ps(by_)),
                           _mm_mul_ps(_mm_add_ps(_mm_mul_ps(t[2], _mm_set1_ps(bx)), _mm_mul_ps(t[3], _mm_set1_ps(ax))),
                                      _mm_set1_ps(ay)));
            v = _mm_add_ps(_mm_mul_ps(v, vmul), vadd);
            _mm_store_ss(dst[0] + x, v);
            _mm_store_ss(dst[1] + x, _mm_shuffle_ps(v, v, _MM_SHUFFLE(1, 1, 1, 1)));
            _mm_store_ss(dst[2] + x, _mm_shuffle_ps(v, v, _MM_SHUFFLE(2, 2, 2, 2)));
            continue;
        }
#endif
        {
            float px[4][3];
            int t, c;
            for (t = 0; t < 4; t++) {
                ptrdiff_t tx = ix + (t & 1), ty = iy + (t >> 1);
                if (tx >= 0 && tx < w && ty >= 0 && ty < h) {
                    const uint8_t *p = base + ty * stride + tx * 3;
                    for (c = 0; c < 3; c++) px[t][c] = (float)p[c];
                } else {
                    for (c = 0; c < 3; c++) px[t][c] = border[c];
                }
            }
            for (c = 0; c < 3; c++) {
                float v = (px[0][c] * (1.0f - ax) + px[1][c] * ax) * (1.0f - ay) +
                          (px[2][c] * (1.0f - ax) + px[3][c] * ax) * ay;
                dst[c][x] = v * mul[c] + add[c];
            }
        }
    }
}

/* ============================================================================================
 * Exact-window bilinear taps (the spec of fastpath._reference.window_taps, bit for bit): output i
 * reads f = origin + (i + 0.5) * step - 0.5 (double), clamped to [-1, src]; i0 = floor(f),
 * w1 = float32(f - i0), w0 = 1 - w1; taps i0 and i0 + 1, `border_index` outside [0, src).
 * The lowest and highest valid source index read are returned in *lo, *hi (lo > hi when
 * none is valid).
 * ========================================================================================== */
static void fp_window_taps(double origin, double step, ptrdiff_t dst, ptrdiff_t src, int32_t border_index,
                           int32_t *idx, float *w, ptrdiff_t *lo, ptrdiff_t *hi) {
    ptrdiff_t i, j, t0;
    *lo = src;
    *hi = -1;
    for (i = 0; i < dst; i++) {
        double f = origin + ((double)i + 0.5) * step - 0.5;
        double fl;
        float wb;
        if (f < -1.0) f = -1.0;
        if (f > (double)src) f = (double)src;
        fl = floor(f);
        t0 = (ptrdiff_t)fl;
        wb = (float)(f - fl);
        w[2 * i] = 1.0f - wb;
        w[2 * i + 1] = wb;
        for (j = 0; j < 2; j++) {
            ptrdiff_t a = t0 + j;
            if (a >= 0 && a < src) {
                if (a < *lo) *lo = a;
                if (a > *hi) *hi = a;
                idx[2 * i + j] = (int32_t)a;
            } else {
                idx[2 * i + j] = border_index;
            }
        }
    }
}

#endif /* FASTPATH_RESAMPLE_H */
