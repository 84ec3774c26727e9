# cython: language_level=3
"""Decoding kernels: the Siamese tracker's score map → best point and box, its template check,
an anchor-free face detector's grid (YuNet) → faces, and greedy non-maximum suppression for the
detectors.

See fastpath/_reference.py (siamese_decode) for the spec; inputs are validated by
fastpath/__init__.py. One pass over the grid in double precision; ties keep the lower index
(like ``np.argmax``, where the first NaN wins).
"""

from libc.math cimport exp, expf, sqrt, sqrtf
from libc.stdint cimport int64_t
from libc.stdlib cimport calloc, free

import numpy as np


def siamese_decode(
    const float[:, ::1] cls,
    const float[:, ::1] loc,
    const double[::1] px,
    const double[::1] py,
    const double[::1] window,
    bint use_window,
    double sw, double sh, double penalty_k, double window_influence,
):
    """(best, score, penalty, cx, cy, pw, ph): see _reference.siamese_decode."""
    cdef Py_ssize_t n = cls.shape[1], i, best = 0
    cdef double d, score, pw, ph, pad, s_c, r_c, pen, ps, top = -1.0e300
    cdef double best_score = 0.0, best_pen = 0.0
    cdef double pad0 = (sw + sh) * 0.5
    cdef double inv_s0 = 1.0 / sqrt((sw + pad0) * (sh + pad0))
    cdef double ratio0 = sw / sh
    cdef double keep = 1.0 - window_influence
    with nogil:
        for i in range(n):
            d = <double> cls[0, i] - <double> cls[1, i]
            if d > 700.0:
                d = 700.0
            score = 1.0 / (1.0 + exp(d))
            pw = <double> loc[0, i] + <double> loc[2, i]
            ph = <double> loc[1, i] + <double> loc[3, i]
            if pw < 1e-6:
                pw = 1e-6
            if ph < 1e-6:
                ph = 1e-6
            pad = (pw + ph) * 0.5
            s_c = sqrt((pw + pad) * (ph + pad)) * inv_s0
            if s_c < 1.0:
                s_c = 1.0 / s_c
            r_c = ratio0 * ph / pw
            if r_c < 1.0:
                r_c = 1.0 / r_c
            pen = exp((1.0 - r_c * s_c) * penalty_k)
            ps = pen * score
            if use_window:
                ps = ps * keep + window[i]
            if ps > top or ps != ps:  # np.argmax: the first NaN wins
                top = ps
                best = i
                best_score = score
                best_pen = pen
                if ps != ps:
                    break
    pw = <double> loc[0, best] + <double> loc[2, best]
    ph = <double> loc[1, best] + <double> loc[3, best]
    return (
        best,
        best_score,
        best_pen,
        px[best] + (<double> loc[2, best] - <double> loc[0, best]) / 2.0,
        py[best] + (<double> loc[3, best] - <double> loc[1, best]) / 2.0,
        pw if not pw < 1e-6 else 1e-6,
        ph if not ph < 1e-6 else 1e-6,
    )



cdef inline float _unit(float v) noexcept nogil:
    """np.clip(v, 0, 1) for a number (the caller skips NaN)."""
    if v < 0.0:
        return 0.0
    if v > 1.0:
        return 1.0
    return v


cdef inline bint _passes(float c, float o, float th) noexcept nogil:
    """sqrt(clip(c) * clip(o)) > th; a NaN never passes (as NumPy's comparison), tested apart
    since -ffast-math may fold the comparison of a square root."""
    if c != c or o != o:
        return False
    return sqrtf(_unit(c) * _unit(o)) > th


def grid_decode(
    const float[::1] cls,
    const float[::1] obj,
    const float[:, ::1] bbox,
    const float[:, ::1] kps,
    Py_ssize_t cols,
    float stride,
    float score_th,
):
    """(boxes, scores, points): see _reference.grid_decode. Two passes: count, then fill."""
    cdef Py_ssize_t n = cls.shape[0], i, k, m = 0
    cdef float s, gx, gy, cx, cy, hw, hh
    with nogil:
        for i in range(n):
            if _passes(cls[i], obj[i], score_th):
                m += 1
    boxes = np.empty((m, 4), np.float32)
    scores = np.empty(m, np.float32)
    points = np.empty((m, 5, 2), np.float32)
    cdef float[:, ::1] bo = boxes
    cdef float[::1] so = scores
    cdef float[:, :, ::1] po = points
    m = 0
    with nogil:
        for i in range(n):
            if not _passes(cls[i], obj[i], score_th):
                continue
            s = sqrtf(_unit(cls[i]) * _unit(obj[i]))
            gx = <float> (i % cols)
            gy = <float> (i // cols)
            cx = (gx + bbox[i, 0]) * stride
            cy = (gy + bbox[i, 1]) * stride
            hw = expf(bbox[i, 2]) * stride / 2.0
            hh = expf(bbox[i, 3]) * stride / 2.0
            bo[m, 0] = cx - hw
            bo[m, 1] = cy - hh
            bo[m, 2] = cx + hw
            bo[m, 3] = cy + hh
            so[m] = s
            for k in range(5):
                po[m, k, 0] = (gx + kps[i, 2 * k]) * stride
                po[m, k, 1] = (gy + kps[i, 2 * k + 1]) * stride
            m += 1
    return boxes, scores, points

def window_cosine(
    const float[:, :, ::1] feat,
    const float[::1] unit,
    Py_ssize_t ix, Py_ssize_t iy, double ax, double ay, Py_ssize_t k,
):
    """Cosine of the bilinear k x k window at (ix + ax, iy + ay) of ``feat`` with ``unit``:
    see _reference.window_cosine. Taps of zero weight are not read."""
    cdef Py_ssize_t c, y, x, j = 0, ch = feat.shape[0]
    cdef double w00 = (1.0 - ax) * (1.0 - ay), w01 = ax * (1.0 - ay)
    cdef double w10 = (1.0 - ax) * ay, w11 = ax * ay
    cdef bint right = ax != 0.0, down = ay != 0.0
    cdef double v, dot = 0.0, sq = 0.0
    with nogil:
        for c in range(ch):
            for y in range(iy, iy + k):
                for x in range(ix, ix + k):
                    v = w00 * feat[c, y, x]
                    if right:
                        v = v + w01 * feat[c, y, x + 1]
                    if down:
                        v = v + w10 * feat[c, y + 1, x]
                        if right:
                            v = v + w11 * feat[c, y + 1, x + 1]
                    dot += v * unit[j]
                    sq += v * v
                    j += 1
    return dot / (sqrt(sq) + 1e-12)


def nms(
    const float[:, ::1] boxes,
    const int64_t[::1] order,
    const int64_t[::1] classes,
    bint use_classes,
    float iou_th,
    Py_ssize_t max_keep,
):
    """Greedy NMS over ``order`` (indices by score, best first): see _reference.nms. Returns the
    kept indices (int64), best first."""
    cdef Py_ssize_t n = order.shape[0], a, b, i, j, kept = 0
    cdef float ai, iw, ih, inter, union, iou
    cdef unsigned char *gone
    out = np.empty(min(n, max_keep) if max_keep > 0 else 0, np.int64)
    cdef int64_t[::1] keep = out
    if n == 0 or max_keep < 1:
        return out
    gone = <unsigned char *> calloc(n, 1)
    if gone == NULL:
        raise MemoryError()
    with nogil:
        for a in range(n):
            if gone[a]:
                continue
            i = order[a]
            keep[kept] = i
            kept += 1
            if kept >= max_keep:
                break
            ai = max(boxes[i, 2] - boxes[i, 0], <float> 0.0) * max(boxes[i, 3] - boxes[i, 1], <float> 0.0)
            for b in range(a + 1, n):
                if gone[b]:
                    continue
                j = order[b]
                if use_classes and classes[j] != classes[i]:
                    continue
                iw = max(<float> 0.0, min(boxes[i, 2], boxes[j, 2]) - max(boxes[i, 0], boxes[j, 0]))
                ih = max(<float> 0.0, min(boxes[i, 3], boxes[j, 3]) - max(boxes[i, 1], boxes[j, 1]))
                inter = iw * ih
                union = ai + max(boxes[j, 2] - boxes[j, 0], <float> 0.0) * max(boxes[j, 3] - boxes[j, 1], <float> 0.0) - inter
                iou = inter / max(union, <float> 1e-9)
                if not iou <= iou_th:
                    gone[b] = 1
    free(gone)
    return out[:kept]
