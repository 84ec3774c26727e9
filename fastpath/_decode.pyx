# cython: language_level=3
"""Head-output decoding kernels: the Siamese tracker's score map → best point and box.

See fastpath/_reference.py (siamese_decode) for the spec; inputs are validated by
fastpath/__init__.py. One pass over the grid in double precision; ties keep the lower index
(like ``np.argmax``, where the first NaN wins).
"""

from libc.math cimport exp, sqrt


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
