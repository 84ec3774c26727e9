/* Image statistics of fastpath._preprocess (crop_stats): see _simd.h for the SIMD policy and
 * fastpath/_reference.py (crop_stats) for the spec. Integers only: the sums are exact, so every
 * SIMD level gives the same result. */
#ifndef FASTPATH_STATS_H
#define FASTPATH_STATS_H

#include "_simd.h"

/* OpenCV's COLOR_BGR2GRAY on uint8, 15-bit fixed point: (B*3735 + G*19235 + R*9798 + 2^14) >> 15 */
#define FP_GREY_B 3735
#define FP_GREY_G 19235
#define FP_GREY_R 9798
#define FP_GREY_SHIFT 15

/* Columns per int32 block of Laplacian sums: |l| <= 1020, so 2000 * 1020^2 < 2^31. */
#define FP_LAP_BLOCK 2000

/* One BGR pixel: its grey (stored) and its max - min (returned). */
static inline int fp_grey_px(int b, int g, int r, int16_t *grey) {
    int hi = b > g ? b : g, lo = b < g ? b : g;
    hi = hi > r ? hi : r;
    lo = lo < r ? lo : r;
    *grey = (int16_t)((b * FP_GREY_B + g * FP_GREY_G + r * FP_GREY_R + (1 << (FP_GREY_SHIFT - 1))) >> FP_GREY_SHIFT);
    return hi - lo;
}

#if FP_SSE2
/* The two 64-bit lanes' sum (through memory: _mm_cvtsi128_si64 is x86-64 only). */
static inline int64_t fp_hsum_epi64_sse2(__m128i v) {
    int64_t t[2];
    _mm_storeu_si128((__m128i *)t, v);
    return t[0] + t[1];
}

/* Grey of 16 pixels from their B, G, R bytes into grey[0:16]; returns their max - min spreads
 * summed in the two 64-bit halves. pmaddwd on (B, G) and (R, 1) word pairs gives
 * B*wb + G*wg and R*wr + 2^14 in 32 bits (every weight < 2^15). */
static inline __m128i fp_grey16_sse2(__m128i b, __m128i g, __m128i r, int16_t *grey) {
    const __m128i z = _mm_setzero_si128(), one = _mm_set1_epi16(1);
    const __m128i wbg = _mm_set1_epi32((FP_GREY_G << 16) | FP_GREY_B);
    const __m128i wr = _mm_set1_epi32((1 << (FP_GREY_SHIFT - 1 + 16)) | FP_GREY_R);
    __m128i hi = _mm_max_epu8(_mm_max_epu8(b, g), r), lo = _mm_min_epu8(_mm_min_epu8(b, g), r);
    __m128i half[2];
    int k;
    for (k = 0; k < 2; k++) {
        __m128i b16 = k ? _mm_unpackhi_epi8(b, z) : _mm_unpacklo_epi8(b, z);
        __m128i g16 = k ? _mm_unpackhi_epi8(g, z) : _mm_unpacklo_epi8(g, z);
        __m128i r16 = k ? _mm_unpackhi_epi8(r, z) : _mm_unpacklo_epi8(r, z);
        __m128i y0 = _mm_add_epi32(_mm_madd_epi16(_mm_unpacklo_epi16(b16, g16), wbg),
                                   _mm_madd_epi16(_mm_unpacklo_epi16(r16, one), wr));
        __m128i y1 = _mm_add_epi32(_mm_madd_epi16(_mm_unpackhi_epi16(b16, g16), wbg),
                                   _mm_madd_epi16(_mm_unpackhi_epi16(r16, one), wr));
        half[k] = _mm_packs_epi32(_mm_srli_epi32(y0, FP_GREY_SHIFT), _mm_srli_epi32(y1, FP_GREY_SHIFT));
    }
    _mm_storeu_si128((__m128i *)grey, half[0]);
    _mm_storeu_si128((__m128i *)(grey + 8), half[1]);
    return _mm_sad_epu8(_mm_sub_epi8(hi, lo), z);
}

/* SSE2 body of fp_grey_row3 for packed BGR: 32 pixels (96 bytes) a step, split into planes by
 * five rounds of byte unpacking (each a perfect shuffle of the 96 bytes: byte k moves to
 * 2k mod 95, so after five it sits at 32k mod 95, i.e. B, G, R of pixel p at p, 32 + p, 64 + p).
 * Returns the pixels done; adds their spreads to *spread. */
static ptrdiff_t fp_grey_row3_sse2(const uint8_t *p, ptrdiff_t w, int16_t *grey, int64_t *spread) {
    __m128i acc = _mm_setzero_si128();
    ptrdiff_t x;
    for (x = 0; x + 32 <= w; x += 32) {
        __m128i v[6], u[6];
        int j, round;
        for (j = 0; j < 6; j++) v[j] = _mm_loadu_si128((const __m128i *)(p + 3 * x + 16 * j));
        for (round = 0; round < 5; round++) {
            for (j = 0; j < 3; j++) {
                u[2 * j] = _mm_unpacklo_epi8(v[j], v[j + 3]);
                u[2 * j + 1] = _mm_unpackhi_epi8(v[j], v[j + 3]);
            }
            for (j = 0; j < 6; j++) v[j] = u[j];
        }
        acc = _mm_add_epi64(acc, fp_grey16_sse2(v[0], v[2], v[4], grey + x));
        acc = _mm_add_epi64(acc, fp_grey16_sse2(v[1], v[3], v[5], grey + x + 16));
    }
    *spread += fp_hsum_epi64_sse2(acc);
    return x;
}
#endif

#if FP_HAVE_AVX2
/* AVX2-level body of fp_grey_row3 for packed BGR: 16 pixels (48 bytes) a step, split into planes
 * with three byte shuffles per plane (SSSE3, VEX-encoded). Same contract as the SSE2 body. */
FP_AVX2 static ptrdiff_t fp_grey_row3_avx2(const uint8_t *p, ptrdiff_t w, int16_t *grey, int64_t *spread) {
    const __m128i b0 = _mm_setr_epi8(0, 3, 6, 9, 12, 15, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m128i b1 = _mm_setr_epi8(-1, -1, -1, -1, -1, -1, 2, 5, 8, 11, 14, -1, -1, -1, -1, -1);
    const __m128i b2 = _mm_setr_epi8(-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 1, 4, 7, 10, 13);
    const __m128i g0 = _mm_setr_epi8(1, 4, 7, 10, 13, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m128i g1 = _mm_setr_epi8(-1, -1, -1, -1, -1, 0, 3, 6, 9, 12, 15, -1, -1, -1, -1, -1);
    const __m128i g2 = _mm_setr_epi8(-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 2, 5, 8, 11, 14);
    const __m128i r0 = _mm_setr_epi8(2, 5, 8, 11, 14, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m128i r1 = _mm_setr_epi8(-1, -1, -1, -1, -1, 1, 4, 7, 10, 13, -1, -1, -1, -1, -1, -1);
    const __m128i r2 = _mm_setr_epi8(-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 3, 6, 9, 12, 15);
    __m128i acc = _mm_setzero_si128();
    ptrdiff_t x;
    for (x = 0; x + 16 <= w; x += 16) {
        __m128i v0 = _mm_loadu_si128((const __m128i *)(p + 3 * x));
        __m128i v1 = _mm_loadu_si128((const __m128i *)(p + 3 * x + 16));
        __m128i v2 = _mm_loadu_si128((const __m128i *)(p + 3 * x + 32));
        __m128i b = _mm_or_si128(_mm_or_si128(_mm_shuffle_epi8(v0, b0), _mm_shuffle_epi8(v1, b1)),
                                 _mm_shuffle_epi8(v2, b2));
        __m128i g = _mm_or_si128(_mm_or_si128(_mm_shuffle_epi8(v0, g0), _mm_shuffle_epi8(v1, g1)),
                                 _mm_shuffle_epi8(v2, g2));
        __m128i r = _mm_or_si128(_mm_or_si128(_mm_shuffle_epi8(v0, r0), _mm_shuffle_epi8(v1, r1)),
                                 _mm_shuffle_epi8(v2, r2));
        acc = _mm_add_epi64(acc, fp_grey16_sse2(b, g, r, grey + x));
    }
    *spread += fp_hsum_epi64_sse2(acc);
    return x;
}
#endif

/* Grey of one row of w BGR pixels (pixel stride ps, channel stride cs, in bytes) into grey[0:w];
 * returns the sum over the row of max(B,G,R) - min(B,G,R). */
static int64_t fp_grey_row3(const uint8_t *p, ptrdiff_t ps, ptrdiff_t cs, ptrdiff_t w, int16_t *grey) {
    const int level = fp_simd_level(); /* runtime cap (tests run every path) */
    int64_t spread = 0;
    ptrdiff_t x = 0;
    (void)level;
    if (ps == 3 && cs == 1) { /* packed BGR (a crop's rows; a centre is a view of them) */
#if FP_HAVE_AVX2
        if (level >= 2) x = fp_grey_row3_avx2(p, w, grey, &spread);
#endif
#if FP_SSE2
        if (level == 1) x = fp_grey_row3_sse2(p, w, grey, &spread);
#endif
        for (; x < w; x++) spread += fp_grey_px(p[3 * x], p[3 * x + 1], p[3 * x + 2], grey + x);
        return spread;
    }
    for (; x < w; x++) {
        const uint8_t *q = p + x * ps;
        spread += fp_grey_px(q[0], q[cs], q[2 * cs], grey + x);
    }
    return spread;
}

/* One grey row (pixel stride ps) copied into grey[0:w]. */
static void fp_grey_row1(const uint8_t *p, ptrdiff_t ps, ptrdiff_t w, int16_t *grey) {
    ptrdiff_t x;
    for (x = 0; x < w; x++) grey[x] = p[x * ps];
}

#if FP_SSE2
static inline int64_t fp_hsum_epi32_sse2(__m128i v) {
    int32_t t[4];
    _mm_storeu_si128((__m128i *)t, v);
    return (int64_t)t[0] + t[1] + t[2] + t[3];
}

/* SSE2 body of fp_lap_row over columns [x0, end): 8 a step, Laplacians in int16; pmaddwd with
 * 1s sums them in pairs into 32-bit lanes, with themselves their squares (<= 2 * 1020^2 a pair).
 * Returns the columns done. */
static ptrdiff_t fp_lap_run_sse2(const int16_t *up, const int16_t *mid, const int16_t *down, ptrdiff_t x0,
                                 ptrdiff_t end, int64_t s[2]) {
    const __m128i one = _mm_set1_epi16(1);
    __m128i a1 = _mm_setzero_si128(), a2 = _mm_setzero_si128();
    ptrdiff_t x;
    for (x = x0; x + 8 <= end; x += 8) {
        __m128i m = _mm_loadu_si128((const __m128i *)(mid + x));
        __m128i l = _mm_add_epi16(_mm_add_epi16(_mm_loadu_si128((const __m128i *)(up + x)),
                                                _mm_loadu_si128((const __m128i *)(down + x))),
                                  _mm_add_epi16(_mm_loadu_si128((const __m128i *)(mid + x - 1)),
                                                _mm_loadu_si128((const __m128i *)(mid + x + 1))));
        l = _mm_sub_epi16(l, _mm_slli_epi16(m, 2));
        a1 = _mm_add_epi32(a1, _mm_madd_epi16(l, one));
        a2 = _mm_add_epi32(a2, _mm_madd_epi16(l, l));
    }
    s[0] += fp_hsum_epi32_sse2(a1);
    s[1] += fp_hsum_epi32_sse2(a2);
    return x;
}
#endif

#if FP_HAVE_AVX2
/* AVX2 body of fp_lap_row over columns [x0, end): 16 a step. Returns the columns done. */
FP_AVX2 static ptrdiff_t fp_lap_run_avx2(const int16_t *up, const int16_t *mid, const int16_t *down, ptrdiff_t x0,
                                         ptrdiff_t end, int64_t s[2]) {
    const __m256i one = _mm256_set1_epi16(1);
    __m256i a1 = _mm256_setzero_si256(), a2 = _mm256_setzero_si256();
    __m128i h1, h2;
    ptrdiff_t x;
    for (x = x0; x + 16 <= end; x += 16) {
        __m256i m = _mm256_loadu_si256((const __m256i *)(mid + x));
        __m256i l = _mm256_add_epi16(_mm256_add_epi16(_mm256_loadu_si256((const __m256i *)(up + x)),
                                                      _mm256_loadu_si256((const __m256i *)(down + x))),
                                     _mm256_add_epi16(_mm256_loadu_si256((const __m256i *)(mid + x - 1)),
                                                      _mm256_loadu_si256((const __m256i *)(mid + x + 1))));
        l = _mm256_sub_epi16(l, _mm256_slli_epi16(m, 2));
        a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(l, one));
        a2 = _mm256_add_epi32(a2, _mm256_madd_epi16(l, l));
    }
    h1 = _mm_add_epi32(_mm256_castsi256_si128(a1), _mm256_extracti128_si256(a1, 1));
    h2 = _mm_add_epi32(_mm256_castsi256_si128(a2), _mm256_extracti128_si256(a2, 1));
    s[0] += fp_hsum_epi32_sse2(h1);
    s[1] += fp_hsum_epi32_sse2(h2);
    return x;
}
#endif

/* Laplacian (kernel [[0,1,0],[1,-4,1],[0,1,0]]) of row `mid` with its neighbours `up`, `down`;
 * mid[-1] and mid[w] hold the reflected border columns. Adds sum(l) to s[0] and sum(l*l) to s[1].
 * Grey values are 0..255, so every l (and every step of it) fits int16. */
static void fp_lap_row(const int16_t *up, const int16_t *mid, const int16_t *down, ptrdiff_t w, int64_t s[2]) {
    const int level = fp_simd_level(); /* runtime cap (tests run every path) */
    ptrdiff_t x0, x, end;
    (void)level;
    for (x0 = 0; x0 < w; x0 = end) {
        int32_t s1 = 0, s2 = 0;
        end = x0 + FP_LAP_BLOCK < w ? x0 + FP_LAP_BLOCK : w;
        x = x0;
#if FP_HAVE_AVX2
        if (level >= 2) x = fp_lap_run_avx2(up, mid, down, x, end, s);
#endif
#if FP_SSE2
        if (level >= 1) x = fp_lap_run_sse2(up, mid, down, x, end, s);
#endif
        for (; x < end; x++) {
            int32_t l = (int32_t)up[x] + down[x] + mid[x - 1] + mid[x + 1] - 4 * (int32_t)mid[x];
            s1 += l;
            s2 += l * l;
        }
        s[0] += s1;
        s[1] += s2;
    }
}

/* BORDER_REFLECT_101 columns of a grey row g[0:w]: g[-1] = g[1], g[w] = g[w-2] (a 1-wide row
 * reflects onto itself, as OpenCV does). */
static void fp_reflect_row(int16_t *g, ptrdiff_t w) {
    g[-1] = g[w > 1 ? 1 : 0];
    g[w] = g[w > 1 ? w - 2 : 0];
}

/* Sums over an h x w image (h, w >= 1) of `channels` (1 = grey, 3 = BGR) uint8 at `base`, with
 * row / pixel / channel strides rs, ps, cs in bytes (any sign): out[0] = sum of the Laplacian of
 * its grey image (BORDER_REFLECT_101), out[1] = sum of its squares, out[2] = sum of
 * max(B,G,R) - min(B,G,R) (0 for grey). `scratch` holds 3 * (w + 2) int16. */
static void fp_crop_sums(const uint8_t *base, ptrdiff_t h, ptrdiff_t w, ptrdiff_t rs, ptrdiff_t ps, ptrdiff_t cs,
                         int channels, int16_t *scratch, int64_t out[3]) {
    int16_t *rows[3];
    int64_t s[2] = {0, 0}, spread = 0;
    ptrdiff_t y;
    rows[0] = scratch + 1;
    rows[1] = scratch + (w + 2) + 1;
    rows[2] = scratch + 2 * (w + 2) + 1;
    for (y = 0; y < h; y++) {
        int16_t *cur = rows[y % 3];
        if (channels == 3)
            spread += fp_grey_row3(base + y * rs, ps, cs, w, cur);
        else
            fp_grey_row1(base + y * rs, ps, w, cur);
        fp_reflect_row(cur, w);
        if (y >= 1) /* row y - 1 is complete; row -1 reflects onto row 1 */
            fp_lap_row(y >= 2 ? rows[(y - 2) % 3] : cur, rows[(y - 1) % 3], cur, w, s);
    }
    /* the last row: row h reflects onto row h - 2 (onto itself when h == 1) */
    fp_lap_row(h >= 2 ? rows[(h - 2) % 3] : rows[0], rows[(h - 1) % 3], h >= 2 ? rows[(h - 2) % 3] : rows[0], w, s);
    out[0] = s[0];
    out[1] = s[1];
    out[2] = spread;
}

#endif /* FASTPATH_STATS_H */
