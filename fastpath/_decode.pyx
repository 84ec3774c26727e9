# cython: language_level=3
"""Decoding kernels: the Siamese tracker's score map → best point and box, its template check,
an anchor-free face detector's grid (YuNet) → faces, greedy non-maximum suppression for the
detectors, and a face detector's candidates → its faces in frame pixels (NMS + mapping, one call).

See fastpath/_reference.py (siamese_decode) for the spec; inputs are validated by
fastpath/__init__.py. One pass over the grid in double precision; ties keep the lower index
(like ``np.argmax``, where the first NaN wins).
"""

from libc.math cimport exp, expf, isfinite, sqrt, sqrtf
from libc.stdint cimport int32_t, int64_t
from libc.stdlib cimport calloc, free, malloc, qsort

import numpy as np

cimport numpy as cnp

from fastpath._arrays cimport carray

cnp.import_array()


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


cdef inline bint _passes(float c, float o, float th, float floor) noexcept nogil:
    """sqrt(clip(c) * clip(o)) > th; a NaN never passes (as NumPy's comparison), tested apart
    since -ffast-math may fold the comparison of a square root. ``floor`` (:func:`_floor`) turns
    most cells away before the square root: a product below it has a root below th."""
    cdef float p
    if c != c or o != o:
        return False
    p = _unit(c) * _unit(o)
    if p < floor:
        return False
    return sqrtf(p) > th


cdef inline float _floor(float th) noexcept nogil:
    """A product under th² (1 - 1e-5) has a square root (correctly rounded) of at most th; -1
    (nothing turned away early) when th <= 0."""
    return <float> (<double> th * th * (1.0 - 1e-5)) if th > 0 else -1.0


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


cdef Py_ssize_t _greedy_nms(
    const float *boxes, const int64_t *order, Py_ssize_t n, const int64_t *classes, bint use_classes,
    float iou_th, Py_ssize_t max_keep, int64_t *keep, unsigned char *gone,
) noexcept nogil:
    """Greedy NMS over ``order`` (indices into ``boxes``, rows of x1, y1, x2, y2, best first):
    writes the kept indices to ``keep`` and returns how many. ``gone`` holds n zeroed bytes."""
    cdef Py_ssize_t a, b, i, j, kept = 0
    cdef float ai, iw, ih, inter, union, iou
    cdef const float *p
    cdef const float *q
    if max_keep < 1:
        return 0
    for a in range(n):
        if gone[a]:
            continue
        i = order[a]
        keep[kept] = i
        kept += 1
        if kept >= max_keep:
            break
        p = boxes + 4 * i
        ai = max(p[2] - p[0], <float> 0.0) * max(p[3] - p[1], <float> 0.0)
        for b in range(a + 1, n):
            if gone[b]:
                continue
            j = order[b]
            if use_classes and classes[j] != classes[i]:
                continue
            q = boxes + 4 * j
            iw = max(<float> 0.0, min(p[2], q[2]) - max(p[0], q[0]))
            ih = max(<float> 0.0, min(p[3], q[3]) - max(p[1], q[1]))
            inter = iw * ih
            union = ai + max(q[2] - q[0], <float> 0.0) * max(q[3] - q[1], <float> 0.0) - inter
            iou = inter / max(union, <float> 1e-9)
            if not iou <= iou_th:
                gone[b] = 1
    return kept


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
    cdef Py_ssize_t n = order.shape[0], kept
    cdef unsigned char *gone
    out = np.empty(min(n, max_keep) if max_keep > 0 else 0, np.int64)
    cdef int64_t[::1] keep = out
    if n == 0 or max_keep < 1:
        return out
    gone = <unsigned char *> calloc(n, 1)
    if gone == NULL:
        raise MemoryError()
    with nogil:
        kept = _greedy_nms(&boxes[0, 0], &order[0], n, &classes[0], use_classes, iou_th, max_keep, &keep[0], gone)
    free(gone)
    return out[:kept]


cdef struct Ranked:
    float score
    int64_t index


cdef int _by_score(const void *a, const void *b) noexcept nogil:
    """Best score first, the lower index first on ties (a stable sort by descending score)."""
    cdef const Ranked *x = <const Ranked *> a
    cdef const Ranked *y = <const Ranked *> b
    if x.score > y.score:
        return -1
    if x.score < y.score:
        return 1
    return -1 if x.index < y.index else (1 if x.index > y.index else 0)


cdef bint _finite(const float *v, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        if not isfinite(v[i]):
            return False
    return True


cdef object _faces(const float *boxes, const float *scores, const float *points, Py_ssize_t n, float iou_th,
                   Py_ssize_t max_keep, float scale, double width, double height):
    """Candidates (rows of boxes x1, y1, x2, y2, scores, points (5, 2); any non-finite one is
    dropped) → NMS → the kept ones in frame pixels (see _reference.nms_faces). The inputs are
    only read: the finite candidates are ranked by index."""
    cdef Py_ssize_t i, j, k, m = 0, cap, kept = 0, out_n = 0
    cdef Ranked *ranked = <Ranked *> malloc(max(n, 1) * sizeof(Ranked))
    if ranked == NULL:
        raise MemoryError()
    with nogil:
        for i in range(n):
            if isfinite(scores[i]) and _finite(boxes + 4 * i, 4) and _finite(points + 10 * i, 10):
                ranked[m].score = scores[i]
                ranked[m].index = i
                m += 1
    cap = min(m, max_keep) if max_keep > 0 else 0
    out_boxes = np.empty((cap, 4), np.float64)
    out_scores = np.empty(cap, np.float32)
    out_points = np.empty((cap, 5, 2), np.float32)
    cdef double *bo = <double *> cnp.PyArray_DATA(<cnp.ndarray> out_boxes)
    cdef float *so = <float *> cnp.PyArray_DATA(<cnp.ndarray> out_scores)
    cdef float *po = <float *> cnp.PyArray_DATA(<cnp.ndarray> out_points)
    if cap == 0:
        free(ranked)
        return out_boxes, out_scores, out_points
    cdef int64_t *order = <int64_t *> malloc(m * sizeof(int64_t))
    cdef int64_t *keep = <int64_t *> malloc(cap * sizeof(int64_t))
    cdef unsigned char *gone = <unsigned char *> calloc(m, 1)
    if order == NULL or keep == NULL or gone == NULL:
        free(ranked)
        free(order)
        free(keep)
        free(gone)
        raise MemoryError()
    with nogil:
        # best score first, the lower index first on ties: the reference's stable argsort
        qsort(ranked, m, sizeof(Ranked), _by_score)
        for i in range(m):
            order[i] = ranked[i].index
        kept = _greedy_nms(boxes, order, m, order, False, iou_th, cap, keep, gone)
        for k in range(kept):
            i = keep[k]
            # float32 division as NumPy's (boxes / scale), then clipped to the frame in double
            x1 = max(<double> (boxes[4 * i] / scale), 0.0)
            y1 = max(<double> (boxes[4 * i + 1] / scale), 0.0)
            x2 = min(<double> (boxes[4 * i + 2] / scale), width)
            y2 = min(<double> (boxes[4 * i + 3] / scale), height)
            if x2 <= x1 or y2 <= y1:
                continue
            bo[4 * out_n] = x1
            bo[4 * out_n + 1] = y1
            bo[4 * out_n + 2] = x2 - x1
            bo[4 * out_n + 3] = y2 - y1
            so[out_n] = scores[i]
            for j in range(10):
                po[10 * out_n + j] = points[10 * i + j] / scale
            out_n += 1
    free(ranked)
    free(order)
    free(keep)
    free(gone)
    return out_boxes[:out_n], out_scores[:out_n], out_points[:out_n]


def nms_faces(
    const float[:, ::1] boxes,
    const float[::1] scores,
    const float[:, ::1] points,
    float iou_th,
    Py_ssize_t max_keep,
    float scale,
    double width,
    double height,
):
    """A face detector's candidates → its faces: see _reference.nms_faces. ``points`` is (N, 10)."""
    cdef Py_ssize_t n = scores.shape[0]
    if n == 0:
        return _faces(NULL, NULL, NULL, 0, iou_th, max_keep, scale, width, height)
    return _faces(&boxes[0, 0], &scores[0], &points[0, 0], n, iou_th, max_keep, scale, width, height)


cdef inline const float *_data(object a):
    return <const float *> cnp.PyArray_DATA(<cnp.ndarray> a)


cdef inline bint _grid_array(object a, Py_ssize_t width, Py_ssize_t n) noexcept:
    """float32 (1, n, width) (n < 0: any), C-contiguous: a grid output as YuNet gives it."""
    return (carray(a, cnp.NPY_FLOAT32, 3) and cnp.PyArray_DIM(<cnp.ndarray> a, 0) == 1
            and cnp.PyArray_DIM(<cnp.ndarray> a, 2) == width and (n < 0 or cnp.PyArray_DIM(<cnp.ndarray> a, 1) == n))


cdef bint _levels_ok(object levels) noexcept:
    """Every level a 6-tuple of grid outputs (cls, obj, bbox, kps) describing the same n cells, an
    int cols >= 1 dividing n and a float stride, finite and > 0."""
    cdef Py_ssize_t n
    cdef double stride
    cdef object cols
    if type(levels) is not tuple and type(levels) is not list:
        return False
    for level in levels:
        if type(level) is not tuple or len(<tuple> level) != 6 or not _grid_array(level[0], 1, -1):
            return False
        n = cnp.PyArray_DIM(<cnp.ndarray> level[0], 1)
        if not (_grid_array(level[1], 1, n) and _grid_array(level[2], 4, n) and _grid_array(level[3], 10, n)):
            return False
        cols = level[4]
        if type(cols) is not int or cols < 1 or (n and (cols > n or n % <Py_ssize_t> cols)):
            return False
        if type(level[5]) is not float:
            return False
        stride = level[5]
        if not (isfinite(stride) and stride > 0):
            return False
    return True


# grid_faces runs once a frame right after YuNet, when the caches are cold and a Python-level
# check of its twelve arrays cost ~40 us (measured): it takes plain objects, checks them with
# NumPy's C macros and returns None for anything else (as _compare.label_scores does);
# fastpath.grid_faces then validates with clear messages, converts and calls again.
def grid_faces(object levels, object score_th, object iou_th, object max_keep, object scale,
               object width, object height):
    """An anchor-free face detector's grids (YuNet) → its faces, in one call: every level's
    passing cells decoded as _reference.grid_decode does, then nms_faces (see
    _reference.grid_faces). ``levels``: a tuple or list of ((cls (1, N, 1), obj (1, N, 1), bbox (1, N, 4),
    kps (1, N, 10), cols, stride), ...), float32 C-contiguous ndarrays, read through their data
    pointers. None unless every argument is of these types and in range."""
    if not _levels_ok(levels):
        return None
    for v in (score_th, iou_th, scale, width, height):
        if type(v) is not float or not isfinite(<double> v):
            return None
    if type(max_keep) is not int or not 0 <= max_keep <= 1 << 40:
        return None
    if not (<double> scale > 0 and <double> width >= 0 and <double> height >= 0):
        return None
    return _grid_faces(tuple(levels), <float> <double> score_th, <float> <double> iou_th, <Py_ssize_t> max_keep,
                       <float> <double> scale, <double> width, <double> height)


cdef object _grid_faces(tuple levels, float score_th, float iou_th, Py_ssize_t max_keep, float scale,
                        double width, double height):
    cdef const float *cp
    cdef const float *op
    cdef const float *bp
    cdef const float *kp
    cdef Py_ssize_t i, j, b, e, k, n, cols, lv, nlv = len(levels), total = 0, m = 0
    cdef float stride, c, o, p, top, gx, gy, cx, cy, hw, hh, floor = _floor(score_th)
    for level in levels:
        total += cnp.PyArray_DIM(<cnp.ndarray> level[0], 1)
    # the passing cells' (level, index), found in one scan: blocks of 16 cells whose best
    # clipped product is under the floor are skipped whole (the loop vectorises)
    cdef int32_t *cell = <int32_t *> malloc(max(total, 1) * sizeof(int32_t))
    cdef int32_t *level_of = <int32_t *> malloc(max(total, 1) * sizeof(int32_t))
    if cell == NULL or level_of == NULL:
        free(cell)
        free(level_of)
        raise MemoryError()
    for lv in range(nlv):
        level = levels[lv]
        n = cnp.PyArray_DIM(<cnp.ndarray> level[0], 1)
        cp, op = _data(level[0]), _data(level[1])
        with nogil:
            for b in range(0, n, 16):
                e = min(b + 16, n)
                top = -1.0
                for i in range(b, e):
                    p = _unit(cp[i]) * _unit(op[i])
                    top = p if p > top else top  # a NaN product is never the top
                if top < floor:
                    continue
                for i in range(b, e):
                    if _passes(cp[i], op[i], score_th, floor):
                        cell[m] = <int32_t> i
                        level_of[m] = <int32_t> lv
                        m += 1
    cdef float *bo = <float *> malloc(max(m, 1) * 4 * sizeof(float))
    cdef float *so = <float *> malloc(max(m, 1) * sizeof(float))
    cdef float *po = <float *> malloc(max(m, 1) * 10 * sizeof(float))
    if bo == NULL or so == NULL or po == NULL:
        free(cell)
        free(level_of)
        free(bo)
        free(so)
        free(po)
        raise MemoryError()
    j = 0
    for lv in range(nlv):
        if j >= m or level_of[j] != lv:
            continue
        level = levels[lv]
        cp, op, bp, kp = _data(level[0]), _data(level[1]), _data(level[2]), _data(level[3])
        cols, stride = level[4], level[5]
        with nogil:
            while j < m and level_of[j] == lv:
                i = cell[j]
                c, o = cp[i], op[i]
                gx = <float> (i % cols)
                gy = <float> (i // cols)
                cx = (gx + bp[4 * i]) * stride
                cy = (gy + bp[4 * i + 1]) * stride
                hw = expf(bp[4 * i + 2]) * stride / 2.0
                hh = expf(bp[4 * i + 3]) * stride / 2.0
                bo[4 * j] = cx - hw
                bo[4 * j + 1] = cy - hh
                bo[4 * j + 2] = cx + hw
                bo[4 * j + 3] = cy + hh
                so[j] = sqrtf(_unit(c) * _unit(o))
                for k in range(5):
                    po[10 * j + 2 * k] = (gx + kp[10 * i + 2 * k]) * stride
                    po[10 * j + 2 * k + 1] = (gy + kp[10 * i + 2 * k + 1]) * stride
                j += 1
    free(cell)
    free(level_of)
    try:
        return _faces(bo, so, po, m, iou_th, max_keep, scale, width, height)
    finally:
        free(bo)
        free(so)
        free(po)
