# cython: language_level=3
"""Preprocessing kernels (see fastpath/_reference.py for the spec).

Kernels trust their inputs: fastpath/__init__.py validates shapes, dtypes and ranges. The inner
row loops live in _simd.h (SSE2 on x86-64, plain C elsewhere); this module drives them without
the GIL. Three resampling kinds are chosen from the taps when a plan is built:

* ``half``: an exact 2:1 downscale on both axes (e.g. 640x480 → 320x240 in a 320 letterbox):
  bilinear at half scale with half-pixel centres *is* the 2x2 block mean, summed in integers;
* ``copy``: 1:1 (the frame is already the network's size): a fused convert/swap/scale/transpose;
* ``general``: vertical blend of the two source rows into a float row (only the columns read),
  then a horizontal blend of each output pixel's two taps, stored straight into the planes.

Letterbox borders are filled only where the resampled region does not cover the output.

``crop_stats`` (a face crop's focus and colour) is one pass over a strided view, integers only
(_stats.h): each row's grey and spread, then the Laplacian of the row above from three grey rows.
"""

cimport numpy as cnp

from fastpath._arrays cimport carray as _carray
from libc.math cimport isfinite
from libc.stdint cimport int16_t, int32_t, int64_t, uint8_t, uint16_t
from libc.stdlib cimport calloc, free, malloc

cnp.import_array()


cdef extern from "_simd.h" nogil:
    int fp_simd_level()
    int fp_set_simd_level(int want)


cdef extern from "_resample.h" nogil:
    void fp_half_row(const uint8_t *r0, const uint8_t *r1, Py_ssize_t nw, float **dst,
                     const float *q, const float *add, uint16_t *tmp)
    void fp_copy_row(const uint8_t *r, Py_ssize_t nw, float **dst, const float *mul, const float *add)
    void fp_vblend(const uint8_t *r0, const uint8_t *r1, float a, float b, float *out, Py_ssize_t n)
    void fp_vcopy(const uint8_t *r0, float *out, Py_ssize_t n)
    void fp_vaccum(const uint8_t *r, float w, float *out, Py_ssize_t n)
    void fp_vrows(const uint8_t **rows, const float *w, Py_ssize_t kt, float *out, Py_ssize_t n)
    void fp_hblend(const float *row, const int32_t *idx, const float *wt, Py_ssize_t kt, Py_ssize_t nw,
                   float **dst, const float *mul, const float *add)
    void fp_fill(float *p, Py_ssize_t n, float v)
    void fp_window_taps(double origin, double step, Py_ssize_t dst, Py_ssize_t src,
                        int32_t border_index, int32_t *idx, float *w, Py_ssize_t *lo, Py_ssize_t *hi)
    void fp_warp_row(const uint8_t *base, Py_ssize_t h, Py_ssize_t w, const double *m, Py_ssize_t y,
                     Py_ssize_t ow, float **dst, const float *mul, const float *add, const float *border)


cdef extern from "_align.h" nogil:
    ctypedef struct fp_align_t:
        const uint8_t *frame
        Py_ssize_t h, w, size
        uint8_t *crop
        float *plane[3]
        float mean[3]
        float scale[3]
    int FP_ALIGN_OK
    int fp_similarity(const double *src, const double *dst, Py_ssize_t n, double *m)
    int fp_align_inverse(const double *m, Py_ssize_t size, double *inv)
    void fp_align_rows(const fp_align_t *a, const double *inv)


cdef extern from "_stats.h" nogil:
    void fp_crop_sums(const uint8_t *base, Py_ssize_t h, Py_ssize_t w, Py_ssize_t rs, Py_ssize_t ps,
                      Py_ssize_t cs, int channels, int16_t *scratch, int64_t *out)


cdef enum Kind:
    GENERAL = 0
    HALF = 1
    COPY = 2

KIND_NAMES = ("general", "half", "copy")


def simd_level():
    """SIMD level in use: 0 plain C, 1 SSE2, 2 AVX2 (+FMA, F16C)."""
    return fp_simd_level()


def set_simd_level(int level):
    """Cap the SIMD level (tests exercise every path); -1 = the best the CPU has."""
    return fp_set_simd_level(level)


cdef struct Taps:
    # (n, k) row-major taps: x taps index source pixels (the border pixel is ``w``), y taps
    # source rows (-1 = border)
    Py_ssize_t nw, nh, xk, yk, px, py, xlo, xhi
    int kind
    int32_t *xi
    int32_t *yi
    float *xw
    float *yw


cdef int _alloc_taps(Taps *t, Py_ssize_t nw, Py_ssize_t xk, Py_ssize_t nh, Py_ssize_t yk) noexcept nogil:
    t.nw = nw
    t.nh = nh
    t.xk = xk
    t.yk = yk
    t.xi = <int32_t *> malloc((nw * xk + nh * yk) * sizeof(int32_t) + 1)
    t.xw = <float *> malloc((nw * xk + nh * yk) * sizeof(float) + 1)
    if t.xi == NULL or t.xw == NULL:
        free(t.xi)
        free(t.xw)
        t.xi = NULL
        t.xw = NULL
        return -1
    t.yi = t.xi + nw * xk
    t.yw = t.xw + nw * xk
    return 0


cdef void _free_taps(Taps *t) noexcept nogil:
    free(t.xi)
    free(t.xw)
    t.xi = NULL
    t.xw = NULL


cdef int _classify(const Taps *t, Py_ssize_t h, Py_ssize_t w) noexcept nogil:
    """HALF / COPY when every tap is an exact 2:1 / 1:1 step inside the frame, else GENERAL."""
    cdef Py_ssize_t i
    cdef bint half = True, copy = True
    cdef const int32_t *xi = t.xi
    cdef const int32_t *yi = t.yi
    cdef const float *xw = t.xw
    cdef const float *yw = t.yw
    if t.nw < 1 or t.nh < 1 or t.xk != 2 or t.yk != 2:
        return GENERAL
    for i in range(t.nw):
        if xi[2 * i] < 0 or xi[2 * i] >= w or xi[2 * i + 1] < 0 or xi[2 * i + 1] >= w:
            return GENERAL
        if half and not (xi[2 * i] == xi[0] + 2 * i and xi[2 * i + 1] == xi[2 * i] + 1
                         and xw[2 * i] == 0.5 and xw[2 * i + 1] == 0.5):
            half = False
        if copy and not (xi[2 * i] == xi[0] + i and xw[2 * i + 1] == 0.0 and xw[2 * i] == 1.0):
            copy = False
    for i in range(t.nh):
        if yi[2 * i] < 0 or yi[2 * i] >= h or yi[2 * i + 1] < 0 or yi[2 * i + 1] >= h:
            return GENERAL
        if half and not (yi[2 * i] == yi[0] + 2 * i and yi[2 * i + 1] == yi[2 * i] + 1
                         and yw[2 * i] == 0.5 and yw[2 * i + 1] == 0.5):
            half = False
        if copy and not (yi[2 * i] == yi[0] + i and yw[2 * i + 1] == 0.0 and yw[2 * i] == 1.0):
            copy = False
    if half:
        return HALF
    if copy:
        return COPY
    return GENERAL


cdef enum:
    MAX_ROW_TAPS = 64


cdef void _vertical(const uint8_t *base, Py_ssize_t stride, const Taps *t, Py_ssize_t y,
                    const float *border, float *vrow, Py_ssize_t klo, Py_ssize_t khi) noexcept nogil:
    """vrow[klo:khi] = sum_k row(yi[y, k]) * yw[y, k] in tap order (border rows = border colour)."""
    cdef Py_ssize_t j, k, kt = t.yk
    cdef const int32_t *yi = t.yi + y * kt
    cdef const float *yw = t.yw + y * kt
    cdef const uint8_t *rows[MAX_ROW_TAPS]
    cdef bint inside = kt <= MAX_ROW_TAPS
    cdef float wj
    for j in range(kt):
        if yi[j] < 0:
            inside = False
    if inside:
        if kt == 2 and yw[1] == 0.0:
            fp_vcopy(base + yi[0] * stride + klo, vrow + klo, khi - klo)
            return
        for j in range(kt):
            rows[j] = base + yi[j] * stride + klo
        fp_vrows(rows, yw, kt, vrow + klo, khi - klo)
        return
    for j in range(kt):  # rows outside the frame (crops): the border colour
        wj = yw[j]
        if j == 0:
            if yi[0] >= 0:
                fp_vblend(base + yi[0] * stride + klo, base + yi[0] * stride + klo, wj, 0.0,
                          vrow + klo, khi - klo)
            else:
                for k in range(klo, khi):
                    vrow[k] = border[k % 3] * wj
        elif yi[j] >= 0:
            fp_vaccum(base + yi[j] * stride + klo, wj, vrow + klo, khi - klo)
        else:
            for k in range(klo, khi):
                vrow[k] = vrow[k] + border[k % 3] * wj


cdef int _resample(const uint8_t *base, Py_ssize_t h, Py_ssize_t w, float *obase, Py_ssize_t oh,
                   Py_ssize_t ow, const Taps *t, bint swap, const float *mul, const float *add,
                   const float *fill, const float *border) noexcept nogil:
    """Resample ``t``'s region into planes (3, oh, ow) at (px, py); fill the rest.

    ``mul``/``add``/``fill`` are per output channel; ``border`` per source channel.
    Returns -1 when out of memory.
    """
    cdef Py_ssize_t plane = oh * ow, nw = t.nw, nh = t.nh, px = t.px, py = t.py
    cdef Py_ssize_t y, c, stride = w * 3, right
    cdef float *dst[3]
    cdef float *pl[3]
    cdef float smul[3]
    cdef float sadd[3]
    cdef float q[3]
    cdef float *vrow = NULL
    cdef uint16_t *tmp = NULL
    cdef int oc
    # source channel c feeds output channel oc
    for c in range(3):
        oc = 2 - c if swap else c
        pl[c] = obase + oc * plane
        smul[c] = mul[oc]
        sadd[c] = add[oc]
        q[c] = mul[oc] * 0.25
    # border fill (only where the region does not cover the output)
    if nw < ow or nh < oh:
        right = ow - px - nw
        for c in range(3):
            fp_fill(obase + c * plane, py * ow, fill[c])
            fp_fill(obase + c * plane + (py + nh) * ow, (oh - py - nh) * ow, fill[c])
            if px > 0 or right > 0:
                for y in range(py, py + nh):
                    fp_fill(obase + c * plane + y * ow, px, fill[c])
                    fp_fill(obase + c * plane + y * ow + px + nw, right, fill[c])
    if t.kind == HALF:
        tmp = <uint16_t *> malloc((6 * nw + 16) * sizeof(uint16_t))
        if tmp == NULL:
            return -1
        for y in range(nh):
            for c in range(3):
                dst[c] = pl[c] + (py + y) * ow + px
            fp_half_row(base + t.yi[2 * y] * stride + t.xi[0] * 3,
                        base + t.yi[2 * y + 1] * stride + t.xi[0] * 3, nw, dst, q, sadd, tmp)
        free(tmp)
        return 0
    if t.kind == COPY:
        for y in range(nh):
            for c in range(3):
                dst[c] = pl[c] + (py + y) * ow + px
            fp_copy_row(base + t.yi[2 * y] * stride + t.xi[0] * 3, nw, dst, smul, sadd)
        return 0
    # general: float row of the source columns read, + the border pixel at index w, + 1 pad float
    vrow = <float *> calloc(3 * (w + 1) + 4, sizeof(float))
    if vrow == NULL:
        return -1
    vrow[3 * w] = border[0]
    vrow[3 * w + 1] = border[1]
    vrow[3 * w + 2] = border[2]
    for y in range(nh):
        if t.xhi > t.xlo:
            _vertical(base, stride, t, y, border, vrow, t.xlo * 3, t.xhi * 3)
        for c in range(3):
            dst[c] = pl[c] + (py + y) * ow + px
        fp_hblend(vrow, t.xi, t.xw, t.xk, nw, dst, smul, sadd)
    free(vrow)
    return 0


cdef class Resampler:
    """A letterbox/resize plan: taps (copied), constants, and the chosen kind. Thread-safe
    (scratch memory is per call); ``run`` releases the GIL."""

    cdef Taps t
    cdef Py_ssize_t h, w, oh, ow
    cdef bint swap
    cdef float mul[3]
    cdef float add[3]
    cdef float fill[3]
    cdef float border[3]

    def __cinit__(
        self,
        Py_ssize_t h, Py_ssize_t w, Py_ssize_t oh, Py_ssize_t ow,
        const int32_t[:, ::1] xi, const float[:, ::1] xw, const int32_t[:, ::1] yi, const float[:, ::1] yw,
        Py_ssize_t px, Py_ssize_t py, Py_ssize_t xlo, Py_ssize_t xhi, bint swap,
        tuple mul, tuple add, tuple fill, tuple border,
    ):
        cdef Py_ssize_t i, j, nw = xi.shape[0], nh = yi.shape[0], xk = xi.shape[1], yk = yi.shape[1]
        self.t.xi = NULL
        if xw.shape[0] != nw or xw.shape[1] != xk or yw.shape[0] != nh or yw.shape[1] != yk:
            raise ValueError("taps and weights differ in shape")
        if _alloc_taps(&self.t, nw, xk, nh, yk) != 0:
            raise MemoryError()
        for i in range(nw):
            for j in range(xk):
                self.t.xi[i * xk + j] = xi[i, j]
                self.t.xw[i * xk + j] = xw[i, j]
        for i in range(nh):
            for j in range(yk):
                self.t.yi[i * yk + j] = yi[i, j]
                self.t.yw[i * yk + j] = yw[i, j]
        self.t.px, self.t.py, self.t.xlo, self.t.xhi = px, py, xlo, xhi
        self.h, self.w, self.oh, self.ow, self.swap = h, w, oh, ow, swap
        for i in range(3):
            self.mul[i] = mul[i]
            self.add[i] = add[i]
            self.fill[i] = fill[i]
            self.border[i] = border[i]
        self.t.kind = _classify(&self.t, h, w)

    def __dealloc__(self):
        _free_taps(&self.t)

    @property
    def kind(self):
        return KIND_NAMES[self.t.kind]

    def run(self, const uint8_t[:, :, ::1] img, float[:, :, ::1] out):
        """Resample ``img`` (h, w, 3) into ``out`` (3, oh, ow)."""
        cdef int rc
        if img.shape[0] != self.h or img.shape[1] != self.w or img.shape[2] != 3:
            raise ValueError("image shape does not match the plan")
        if out.shape[0] != 3 or out.shape[1] != self.oh or out.shape[2] != self.ow:
            raise ValueError("output shape does not match the plan")
        with nogil:
            rc = _resample(&img[0, 0, 0], self.h, self.w, &out[0, 0, 0], self.oh, self.ow, &self.t,
                           self.swap, self.mul, self.add, self.fill, self.border)
        if rc != 0:
            raise MemoryError()


def crop_chw(
    const uint8_t[:, :, ::1] img,
    float[:, :, ::1] out,
    double x0, double step_x, double y0, double step_y,
    bint swap,
    float mul0, float mul1, float mul2,
    float add0, float add1, float add2,
    float border0, float border1, float border2,
):
    """Sample the window at (x0, y0) (continuous coordinates), ``step_x`` x ``step_y`` frame
    pixels per output pixel, bilinearly into ``out`` (3, oh, ow); pixels outside the frame =
    border (source order). The taps are computed here (spec: window_taps)."""
    cdef Py_ssize_t h = img.shape[0], w = img.shape[1], oh = out.shape[1], ow = out.shape[2]
    cdef Py_ssize_t lo, hi, ylo, yhi
    cdef Taps t
    cdef float mul[3]
    cdef float add[3]
    cdef float fill[3]
    cdef float border[3]
    cdef int rc = 0
    mul[0], mul[1], mul[2] = mul0, mul1, mul2
    add[0], add[1], add[2] = add0, add1, add2
    fill[0] = fill[1] = fill[2] = 0.0
    border[0], border[1], border[2] = border0, border1, border2
    with nogil:
        if _alloc_taps(&t, ow, 2, oh, 2) != 0:
            rc = -1
        else:
            fp_window_taps(x0, step_x, ow, w, <int32_t> w, t.xi, t.xw, &lo, &hi)
            fp_window_taps(y0, step_y, oh, h, -1, t.yi, t.yw, &ylo, &yhi)
            t.px = 0
            t.py = 0
            t.xlo = lo if hi >= lo else 0
            t.xhi = hi + 1 if hi >= lo else 0
            t.kind = _classify(&t, h, w)
            rc = _resample(&img[0, 0, 0], h, w, &out[0, 0, 0], oh, ow, &t, swap, mul, add, fill, border)
            _free_taps(&t)
    if rc != 0:
        raise MemoryError()


def warp_affine_chw(
    const uint8_t[:, :, ::1] img,
    float[:, :, ::1] out,
    double m00, double m01, double m02,
    double m10, double m11, double m12,
    bint swap,
    float mul0, float mul1, float mul2,
    float add0, float add1, float add2,
    float border0, float border1, float border2,
):
    """Inverse-mapped bilinear warp: source = (m00 x + m01 y + m02, m10 x + m11 y + m12) for
    output pixel (x, y); taps outside the frame read border{c} (source order)."""
    cdef Py_ssize_t h = img.shape[0], w = img.shape[1]
    cdef Py_ssize_t oh = out.shape[1], ow = out.shape[2]
    cdef Py_ssize_t plane = oh * ow, y, c
    cdef int oc
    cdef const uint8_t *base = &img[0, 0, 0]
    cdef float *obase = &out[0, 0, 0]
    cdef double m[6]
    cdef float *dst[3]
    cdef float *pl[3]
    cdef float smul[3]
    cdef float sadd[3]
    cdef float border[3]
    cdef float mul[3]
    cdef float add[3]
    m[0], m[1], m[2], m[3], m[4], m[5] = m00, m01, m02, m10, m11, m12
    mul[0], mul[1], mul[2] = mul0, mul1, mul2
    add[0], add[1], add[2] = add0, add1, add2
    border[0], border[1], border[2] = border0, border1, border2
    for c in range(3):
        oc = 2 - c if swap else c
        pl[c] = obase + oc * plane
        smul[c] = mul[oc]
        sadd[c] = add[oc]
    with nogil:
        for y in range(oh):
            for c in range(3):
                dst[c] = pl[c] + y * ow
            fp_warp_row(base, h, w, m, y, ow, dst, smul, sadd, border)


def channel_sums(const uint8_t[:, :, ::1] img, double[::1] out):
    """Per-channel sums of an HxWx3 image into out[0:3] (for the mean border colour)."""
    cdef Py_ssize_t n = img.shape[0] * img.shape[1], i
    cdef const uint8_t *p = &img[0, 0, 0]
    cdef unsigned long long s0 = 0, s1 = 0, s2 = 0
    with nogil:
        for i in range(n):
            s0 += p[3 * i]
            s1 += p[3 * i + 1]
            s2 += p[3 * i + 2]
    out[0] = <double> s0
    out[1] = <double> s1
    out[2] = <double> s2


cdef enum:
    STATS_STACK_W = 1024  # rows up to this wide use scratch on the stack (6 KB), wider ones malloc

cdef int64_t EXACT = 1LL << 53  # integers up to 2^53 are exact in a double


def crop_stats(const uint8_t[:, :, :] img):
    """(sharpness, chroma) of an HxWxC view (C = 1 grey or 3 BGR, any strides, H, W >= 1): see
    _reference.crop_stats. The sums are exact integers. While the ratios' terms are at most 2^53
    (a face crop's are far below) they are exact as doubles and one IEEE division rounds each
    ratio correctly, as the reference's Python ints do; beyond, Python ints here too."""
    cdef Py_ssize_t h = img.shape[0], w = img.shape[1]
    cdef int16_t stack[3 * (STATS_STACK_W + 2)]
    cdef int16_t *scratch = stack
    cdef int64_t out[3]
    cdef int64_t n = h * w
    if w > STATS_STACK_W:
        scratch = <int16_t *> malloc(3 * (w + 2) * sizeof(int16_t))
        if scratch == NULL:
            raise MemoryError()
    with nogil:
        fp_crop_sums(&img[0, 0, 0], h, w, img.strides[0], img.strides[1], img.strides[2], <int> img.shape[2],
                     scratch, out)
    if scratch != stack:
        free(scratch)
    # n * lap_sq <= 2^53 bounds the numerator (lap_sum^2 <= n * lap_sq) and n^2; spread <= 255 n
    if n <= EXACT // n and out[1] <= EXACT // n:
        return <double> (n * out[1] - out[0] * out[0]) / <double> (n * n), <double> out[2] / <double> n
    cdef object nn = n, lap_sum = out[0]
    return (nn * out[1] - lap_sum * lap_sum) / (nn * nn), <object> out[2] / nn


# --- face alignment -------------------------------------------------------------------------
# Runs once per face right after a model run (cold caches): the arrays are taken as objects and
# checked with NumPy's C macros (a typed memoryview costs 1-2 us each); anything else returns
# None and fastpath.align_face validates, converts and calls again.
cdef enum:
    ALIGN_STACK_POINTS = 16


cdef bint _points(object p, Py_ssize_t n, double *out) noexcept:
    """(n, 2) float32 or float64 points into out (2n doubles); False if not such an array."""
    cdef Py_ssize_t i
    cdef const float *f
    cdef const double *d
    if not cnp.PyArray_CheckExact(p):
        return False
    cdef cnp.ndarray a = <cnp.ndarray> p
    if (cnp.PyArray_NDIM(a) != 2 or cnp.PyArray_DIM(a, 0) != n or cnp.PyArray_DIM(a, 1) != 2
            or not cnp.PyArray_ISCARRAY_RO(a)):
        return False
    if cnp.PyArray_TYPE(a) == cnp.NPY_FLOAT64:
        d = <const double *> cnp.PyArray_DATA(a)
        for i in range(2 * n):
            out[i] = d[i]
        return True
    if cnp.PyArray_TYPE(a) == cnp.NPY_FLOAT32:
        f = <const float *> cnp.PyArray_DATA(a)
        for i in range(2 * n):
            out[i] = f[i]
        return True
    return False


cdef bint _channels(object v, float *out) noexcept:
    """A finite float or a tuple of 3 finite floats into out[3]; False otherwise."""
    cdef double d
    cdef int c
    if type(v) is float:
        d = <double> v
        if not isfinite(d):
            return False
        out[0] = out[1] = out[2] = <float> d
        return True
    if type(v) is not tuple or len(<tuple> v) != 3:
        return False
    for c in range(3):
        if type((<tuple> v)[c]) is not float:
            return False
        d = <double> (<tuple> v)[c]
        if not isfinite(d):
            return False
        out[c] = <float> d
    return True


def similarity(object src, object dst):
    """The 2x3 similarity (float64) fitted from src onto dst ((N, 2) float32/float64 arrays,
    N >= 1): see _reference.similarity. None if the arrays are not as taken; an int status
    (1 non-finite) when refused."""
    cdef double sbuf[2 * ALIGN_STACK_POINTS]
    cdef double dbuf[2 * ALIGN_STACK_POINTS]
    cdef double m[6]
    cdef Py_ssize_t n, i
    cdef int rc
    if not cnp.PyArray_CheckExact(dst) or cnp.PyArray_NDIM(<cnp.ndarray> dst) != 2:
        return None
    n = cnp.PyArray_DIM(<cnp.ndarray> dst, 0)
    if n < 1 or n > ALIGN_STACK_POINTS or not _points(src, n, sbuf) or not _points(dst, n, dbuf):
        return None
    rc = fp_similarity(sbuf, dbuf, n, m)
    if rc != FP_ALIGN_OK:
        return rc
    cdef cnp.npy_intp dims[2]
    dims[0] = 2
    dims[1] = 3
    cdef cnp.ndarray out = cnp.PyArray_EMPTY(2, dims, cnp.NPY_FLOAT64, 0)
    cdef double *op = <double *> cnp.PyArray_DATA(out)
    for i in range(6):
        op[i] = m[i]
    return out


def align_face(object frame, object points, object template, Py_ssize_t size, bint swap, object mean,
               object scale, bint with_blob=True):
    """(crop uint8 (size, size, 3), blob float32 (1, 3, size, size)): see
    _reference.align_face. None unless ``frame`` is a uint8 (H, W, 3) array, ``points`` and
    ``template`` (N, 2) float32/float64 arrays (1 <= N <= 16; exact ndarrays, C-contiguous,
    aligned, native), size >= 1, mean/scale a finite float or a tuple of 3; an int status
    (1 non-finite points, 2 degenerate fit) when refused. Without ``with_blob`` the blob is
    None (not computed)."""
    cdef double sbuf[2 * ALIGN_STACK_POINTS]
    cdef double dbuf[2 * ALIGN_STACK_POINTS]
    cdef double m[6]
    cdef double inv[6]
    cdef float mean3[3]
    cdef float scale3[3]
    cdef Py_ssize_t n, plane
    cdef int rc, c, oc
    cdef fp_align_t a
    if size < 1 or not _carray(frame, cnp.NPY_UINT8, 3) or not _carray(template, cnp.NPY_FLOAT64, 2):
        return None
    cdef cnp.ndarray f = <cnp.ndarray> frame
    if cnp.PyArray_DIM(f, 2) != 3 or cnp.PyArray_DIM(f, 0) < 1 or cnp.PyArray_DIM(f, 1) < 1:
        return None
    n = cnp.PyArray_DIM(<cnp.ndarray> template, 0)
    if (n < 1 or n > ALIGN_STACK_POINTS or cnp.PyArray_DIM(<cnp.ndarray> template, 1) != 2
            or not _points(points, n, sbuf) or not _channels(mean, mean3) or not _channels(scale, scale3)):
        return None
    _points(template, n, dbuf)
    rc = fp_similarity(sbuf, dbuf, n, m)
    if rc == FP_ALIGN_OK:
        rc = fp_align_inverse(m, size, inv)
    if rc != FP_ALIGN_OK:
        return rc
    cdef cnp.npy_intp cdims[3]
    cdef cnp.npy_intp bdims[4]
    cdims[0] = cdims[1] = size
    cdims[2] = 3
    bdims[0] = 1
    bdims[1] = 3
    bdims[2] = bdims[3] = size
    cdef cnp.ndarray crop = cnp.PyArray_EMPTY(3, cdims, cnp.NPY_UINT8, 0)
    cdef object blob = None
    cdef float *bp = NULL
    if with_blob:
        blob = cnp.PyArray_EMPTY(4, bdims, cnp.NPY_FLOAT32, 0)
        bp = <float *> cnp.PyArray_DATA(<cnp.ndarray> blob)
    plane = size * size
    a.frame = <const uint8_t *> cnp.PyArray_DATA(f)
    a.h = cnp.PyArray_DIM(f, 0)
    a.w = cnp.PyArray_DIM(f, 1)
    a.size = size
    a.crop = <uint8_t *> cnp.PyArray_DATA(crop)
    for c in range(3):  # source channel c feeds output channel oc
        oc = 2 - c if swap else c
        a.plane[c] = bp + oc * plane if with_blob else NULL
        a.mean[c] = mean3[oc]
        a.scale[c] = scale3[oc]
    with nogil:
        fp_align_rows(&a, inv)
    return crop, blob
