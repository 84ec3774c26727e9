/* Face alignment in one pass (spec: fastpath/_reference.py, align_face and its helpers): the
 * least-squares similarity of N landmarks onto a template, then a bilinear warp of the frame
 * through it into an aligned uint8 BGR crop and, from the crop's rounded values, the network's
 * float32 NCHW blob.
 *
 * Exactness. The fit and the per-row positions are double arithmetic in the reference's order
 * (fp_align_setup and fp_align_rows are compiled without fast-math and without FMA contraction,
 * so they are the reference's operations bit for bit). Everything after is exact whatever the
 * instruction order: sample positions are integers in 1/256 px, so every bilinear term is a
 * multiple of 2^-16 below 256 (24 bits: float32 holds it exactly, FMA or not), and the blob is
 * one subtraction and one multiplication per value, as in the reference. The C, SSE2 and AVX2
 * loops therefore give the reference's bytes and floats exactly.
 */
#ifndef FASTPATH_ALIGN_H
#define FASTPATH_ALIGN_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "_simd.h"

#if defined(__GNUC__) && !defined(__clang__)
#define FP_PRECISE __attribute__((optimize("no-fast-math", "fp-contract=off")))
#else
#define FP_PRECISE
#endif

#define FP_ALIGN_POS_BITS 16 /* positions accumulate in 1/65536 px */
#define FP_ALIGN_SUB_BITS 8  /* samples are taken at 1/256 px */
#define FP_ALIGN_MAX_COORD 16777216.0 /* 2^24 px: farther, the fit is refused */

/* Status of fp_align_setup. */
#define FP_ALIGN_OK 0
#define FP_ALIGN_NONFINITE 1 /* a landmark or template value is NaN or infinite */
#define FP_ALIGN_DEGENERATE 2 /* singular fit, or the crop maps beyond 2^24 px */

/* Umeyama's similarity without reflection (2-D closed form), summed in order as the reference:
 * m = [[a, -b, tx], [b, a, ty]]; a = b = ... see _reference.similarity. */
FP_PRECISE static int fp_similarity(const double *src, const double *dst, ptrdiff_t n, double m[6]) {
    double smx = 0.0, smy = 0.0, dmx = 0.0, dmy = 0.0, var = 0.0, dot = 0.0, cross = 0.0, a, b;
    ptrdiff_t i;
    for (i = 0; i < n; i++) {
        if (!isfinite(src[2 * i]) || !isfinite(src[2 * i + 1]) || !isfinite(dst[2 * i]) || !isfinite(dst[2 * i + 1]))
            return FP_ALIGN_NONFINITE;
    }
    for (i = 0; i < n; i++) smx = smx + src[2 * i];
    for (i = 0; i < n; i++) smy = smy + src[2 * i + 1];
    for (i = 0; i < n; i++) dmx = dmx + dst[2 * i];
    for (i = 0; i < n; i++) dmy = dmy + dst[2 * i + 1];
    smx = smx / (double)n;
    smy = smy / (double)n;
    dmx = dmx / (double)n;
    dmy = dmy / (double)n;
    for (i = 0; i < n; i++) {
        double sx = src[2 * i] - smx, sy = src[2 * i + 1] - smy, dx = dst[2 * i] - dmx, dy = dst[2 * i + 1] - dmy;
        var = var + (sx * sx + sy * sy);
        dot = dot + (sx * dx + sy * dy);
        cross = cross + (sx * dy - sy * dx);
    }
    if (var > 0.0) {
        a = dot / var;
        b = cross / var;
    } else { /* coinciding points: translation only */
        a = 1.0;
        b = 0.0;
    }
    m[0] = a;
    m[1] = -b;
    m[2] = dmx - (a * smx - b * smy);
    m[3] = b;
    m[4] = a;
    m[5] = dmy - (b * smx + a * smy);
    return FP_ALIGN_OK;
}

/* The inverse of m as cv2.invertAffineTransform computes it, checked: every value finite, the
 * determinant non-zero, the output corners (0 and size - 1 on each axis) mapped within 2^24 px. */
FP_PRECISE static int fp_align_inverse(const double m[6], ptrdiff_t size, double inv[6]) {
    double d = m[0] * m[4] - m[1] * m[3], e = (double)(size - 1);
    int i, cx, cy;
    for (i = 0; i < 6; i++)
        if (!isfinite(m[i])) return FP_ALIGN_DEGENERATE;
    if (!(d != 0.0) || !isfinite(d)) return FP_ALIGN_DEGENERATE;
    d = 1.0 / d;
    inv[0] = m[4] * d;
    inv[1] = -m[1] * d;
    inv[3] = -m[3] * d;
    inv[4] = m[0] * d;
    inv[2] = -inv[0] * m[2] - inv[1] * m[5];
    inv[5] = -inv[3] * m[2] - inv[4] * m[5];
    for (i = 0; i < 6; i++)
        if (!isfinite(inv[i])) return FP_ALIGN_DEGENERATE;
    for (cy = 0; cy < 2; cy++) {
        for (cx = 0; cx < 2; cx++) {
            double x = cx ? e : 0.0, y = cy ? e : 0.0;
            double sx = inv[0] * x + inv[1] * y + inv[2], sy = inv[3] * x + inv[4] * y + inv[5];
            if (!(fabs(sx) <= FP_ALIGN_MAX_COORD) || !(fabs(sy) <= FP_ALIGN_MAX_COORD)) return FP_ALIGN_DEGENERATE;
        }
    }
    return FP_ALIGN_OK;
}

/* Constants of one call: the output planes in source channel order, their scale and mean. */
typedef struct {
    const uint8_t *frame;
    ptrdiff_t h, w, size;
    uint8_t *crop;
    float *plane[3]; /* blob plane fed by source channel c (NULL: no blob) */
    float mean[3];   /* per source channel (the output channel's value) */
    float scale[3];
} fp_align_t;

/* One output pixel from its position in 1/65536 px (any int64): taps outside the frame are 0. */
static inline void fp_align_px(const fp_align_t *a, int64_t X, int64_t Y, ptrdiff_t o) {
    const int64_t U = (X + 128) >> FP_ALIGN_SUB_BITS, V = (Y + 128) >> FP_ALIGN_SUB_BITS;
    const int64_t ix = U >> 8, iy = V >> 8;
    const float ax = (float)(U & 255) * (1.0f / 256.0f), ay = (float)(V & 255) * (1.0f / 256.0f);
    float p[4][3];
    int t, c;
    for (t = 0; t < 4; t++) {
        const int64_t tx = ix + (t & 1), ty = iy + (t >> 1);
        if (tx >= 0 && tx < a->w && ty >= 0 && ty < a->h) {
            const uint8_t *s = a->frame + (ty * a->w + tx) * 3;
            for (c = 0; c < 3; c++) p[t][c] = (float)s[c];
        } else {
            for (c = 0; c < 3; c++) p[t][c] = 0.0f;
        }
    }
    for (c = 0; c < 3; c++) {
        const float top = p[0][c] + ax * (p[1][c] - p[0][c]), bot = p[2][c] + ax * (p[3][c] - p[2][c]);
        const float v = top + ay * (bot - top);
        const uint8_t r = (uint8_t)(int32_t)(v + 0.5f);
        a->crop[3 * o + c] = r;
        if (a->plane[c]) a->plane[c][o] = ((float)r - a->mean[c]) * a->scale[c];
    }
}

#if FP_HAVE_AVX2
/* 8 pixels at a time while all their taps lie inside the frame (4 gathers of 4 bytes each: the
 * right-hand taps are read from one byte earlier so that no read passes the frame's last byte).
 * X, Y: the row's positions at x = 0 (int32 1/65536 px), dx, dy: the steps. Returns the pixels
 * done, [0, n) in order; a vector with a tap outside falls back to fp_align_px. */
FP_AVX2 static void fp_align_row_avx2(const fp_align_t *a, int32_t X0, int32_t Y0, int32_t dx, int32_t dy,
                                      ptrdiff_t o, ptrdiff_t n) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i vdx = _mm256_set1_epi32(dx), vdy = _mm256_set1_epi32(dy);
    const __m256i half = _mm256_set1_epi32(128), m8 = _mm256_set1_epi32(255);
    const __m256i wm1 = _mm256_set1_epi32((int32_t)(a->w - 1)), hm1 = _mm256_set1_epi32((int32_t)(a->h - 1));
    const __m256i neg = _mm256_set1_epi32(-1), stride = _mm256_set1_epi32((int32_t)(a->w * 3));
    const __m256i three = _mm256_set1_epi32(3);
    const __m256 inv256 = _mm256_set1_ps(1.0f / 256.0f), h5 = _mm256_set1_ps(0.5f);
    const __m128i pack = _mm_setr_epi8(0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1);
    const int *base = (const int *)a->frame;
    const int blob = a->plane[0] != NULL;
    __m256 mean[3], scale[3];
    ptrdiff_t x = 0;
    int c;
    for (c = 0; c < 3; c++) {
        mean[c] = _mm256_set1_ps(a->mean[c]);
        scale[c] = _mm256_set1_ps(a->scale[c]);
    }
    for (; x + 8 <= n; x += 8) {
        const __m256i xs = _mm256_add_epi32(lane, _mm256_set1_epi32((int32_t)x));
        const __m256i X = _mm256_add_epi32(_mm256_set1_epi32(X0), _mm256_mullo_epi32(xs, vdx));
        const __m256i Y = _mm256_add_epi32(_mm256_set1_epi32(Y0), _mm256_mullo_epi32(xs, vdy));
        const __m256i U = _mm256_srai_epi32(_mm256_add_epi32(X, half), FP_ALIGN_SUB_BITS);
        const __m256i V = _mm256_srai_epi32(_mm256_add_epi32(Y, half), FP_ALIGN_SUB_BITS);
        const __m256i ix = _mm256_srai_epi32(U, 8), iy = _mm256_srai_epi32(V, 8);
        const __m256i in = _mm256_and_si256(
            _mm256_and_si256(_mm256_cmpgt_epi32(ix, neg), _mm256_cmpgt_epi32(wm1, ix)),
            _mm256_and_si256(_mm256_cmpgt_epi32(iy, neg), _mm256_cmpgt_epi32(hm1, iy)));
        __m256i off, g00, g01, g10, g11;
        __m256 ax, ay, p00[3], p01[3], p10[3], p11[3];
        __m256i r[3], bytes;
        __m128i lo, hi;
        if (_mm256_movemask_epi8(in) != -1) {
            ptrdiff_t k;
            for (k = 0; k < 8; k++)
                fp_align_px(a, (int64_t)X0 + (int64_t)dx * (x + k), (int64_t)Y0 + (int64_t)dy * (x + k), o + x + k);
            continue;
        }
        off = _mm256_add_epi32(_mm256_mullo_epi32(iy, stride), _mm256_mullo_epi32(ix, three));
        g00 = _mm256_i32gather_epi32(base, off, 1);
        g01 = _mm256_i32gather_epi32(base, _mm256_add_epi32(off, _mm256_set1_epi32(2)), 1);
        g10 = _mm256_i32gather_epi32(base, _mm256_add_epi32(off, stride), 1);
        g11 = _mm256_i32gather_epi32(base, _mm256_add_epi32(off, _mm256_add_epi32(stride, _mm256_set1_epi32(2))), 1);
        ax = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_and_si256(U, m8)), inv256);
        ay = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_and_si256(V, m8)), inv256);
        p00[0] = _mm256_cvtepi32_ps(_mm256_and_si256(g00, m8));
        p00[1] = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(g00, 8), m8));
        p00[2] = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(g00, 16), m8));
        p10[0] = _mm256_cvtepi32_ps(_mm256_and_si256(g10, m8));
        p10[1] = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(g10, 8), m8));
        p10[2] = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(g10, 16), m8));
        p01[0] = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(g01, 8), m8));
        p01[1] = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(g01, 16), m8));
        p01[2] = _mm256_cvtepi32_ps(_mm256_srli_epi32(g01, 24));
        p11[0] = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(g11, 8), m8));
        p11[1] = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(g11, 16), m8));
        p11[2] = _mm256_cvtepi32_ps(_mm256_srli_epi32(g11, 24));
        for (c = 0; c < 3; c++) {
            const __m256 top = _mm256_add_ps(p00[c], _mm256_mul_ps(ax, _mm256_sub_ps(p01[c], p00[c])));
            const __m256 bot = _mm256_add_ps(p10[c], _mm256_mul_ps(ax, _mm256_sub_ps(p11[c], p10[c])));
            const __m256 v = _mm256_add_ps(top, _mm256_mul_ps(ay, _mm256_sub_ps(bot, top)));
            r[c] = _mm256_cvttps_epi32(_mm256_add_ps(v, h5));
            if (blob)
                _mm256_storeu_ps(a->plane[c] + o + x,
                                 _mm256_mul_ps(_mm256_sub_ps(_mm256_cvtepi32_ps(r[c]), mean[c]), scale[c]));
        }
        bytes = _mm256_or_si256(r[0], _mm256_or_si256(_mm256_slli_epi32(r[1], 8), _mm256_slli_epi32(r[2], 16)));
        lo = _mm_shuffle_epi8(_mm256_castsi256_si128(bytes), pack);
        hi = _mm_shuffle_epi8(_mm256_extracti128_si256(bytes, 1), pack);
        {
            uint8_t *d = a->crop + 3 * (o + x);
            int32_t last;
            _mm_storeu_si128((__m128i *)d, lo); /* 12 bytes + 4 overwritten next */
            _mm_storel_epi64((__m128i *)(d + 12), hi);
            last = _mm_cvtsi128_si32(_mm_srli_si128(hi, 8));
            memcpy(d + 20, &last, 4);
        }
    }
    for (; x < n; x++) fp_align_px(a, (int64_t)X0 + (int64_t)dx * x, (int64_t)Y0 + (int64_t)dy * x, o + x);
}
#endif

/* Every output row: the row's positions in double, rounded to 1/65536 px (the reference's
 * operations), then the pixels: AVX2 when the row's positions fit in int32 and the frame's byte
 * offsets too, else one int64 pixel at a time (the same integers either way). */
FP_PRECISE static void fp_align_rows(const fp_align_t *a, const double inv[6]) {
    const double unit = (double)(1 << FP_ALIGN_POS_BITS);
    /* one column: x is 0, the step unused (and unbounded: no corner constrains it) */
    const int64_t dx = a->size > 1 ? (int64_t)nearbyint(inv[0] * unit) : 0;
    const int64_t dy = a->size > 1 ? (int64_t)nearbyint(inv[3] * unit) : 0;
    const int64_t lim = (int64_t)1 << 30;
    const ptrdiff_t n = a->size;
    const int wide_ok = (double)a->h * (double)a->w * 3.0 < 2147483647.0 - 16.0;
    ptrdiff_t y, x;
    for (y = 0; y < n; y++) {
        const int64_t X0 = (int64_t)nearbyint((inv[1] * (double)y + inv[2]) * unit);
        const int64_t Y0 = (int64_t)nearbyint((inv[4] * (double)y + inv[5]) * unit);
        const int64_t X1 = X0 + dx * (n - 1), Y1 = Y0 + dy * (n - 1);
        const ptrdiff_t o = y * n;
#if FP_HAVE_AVX2
        if (fp_simd_level() >= 2 && wide_ok && X0 > -lim && X0 < lim && X1 > -lim && X1 < lim && Y0 > -lim &&
            Y0 < lim && Y1 > -lim && Y1 < lim) {
            fp_align_row_avx2(a, (int32_t)X0, (int32_t)Y0, (int32_t)dx, (int32_t)dy, o, n);
            continue;
        }
#endif
        (void)wide_ok;
        (void)X1;
        (void)Y1;
        (void)lim;
        for (x = 0; x < n; x++) fp_align_px(a, X0 + dx * x, Y0 + dy * x, o + x);
    }
}

#endif /* FASTPATH_ALIGN_H */
