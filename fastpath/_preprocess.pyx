# cython: language_level=3
"""Preprocessing kernels (see fastpath/_reference.py for the spec).

Kernels trust their inputs: fastpath/__init__.py validates shapes, dtypes and ranges.
"""

from libc.math cimport floor
from libc.stdint cimport int32_t, uint8_t
from libc.stdlib cimport free, malloc


def resample_chw(
    const uint8_t[:, :, ::1] img,
    float[:, :, ::1] out,
    const int32_t[::1] xi0, const int32_t[::1] xi1,
    const float[::1] xw0, const float[::1] xw1,
    const int32_t[::1] yi0, const int32_t[::1] yi1,
    const float[::1] yw0, const float[::1] yw1,
    int px, int py, int xlo, int xhi, bint swap,
    float mul0, float mul1, float mul2,
    float add0, float add1, float add2,
    float fill0, float fill1, float fill2,
    float border0, float border1, float border2,
):
    """Fused bilinear resample + channel swap + affine (mul, add) + HWC→CHW.

    ``out`` is (3, H, W). The region of len(xi0) x len(yi0) pixels starting at (px, py) is
    resampled; everything else is set to fill{c} (final values, output order). X taps index
    source columns, with ``W`` meaning the border colour; y taps of -1 mean a border row. Only
    source columns ``xlo .. xhi - 1`` are read. border{c} are pixel values in source order.
    """
    cdef Py_ssize_t h = img.shape[0], w = img.shape[1]
    cdef Py_ssize_t oh = out.shape[1], ow = out.shape[2]
    cdef Py_ssize_t nw = xi0.shape[0], nh = yi0.shape[0]
    cdef Py_ssize_t plane = oh * ow
    cdef float *vrow
    cdef float *o0
    cdef float *o1
    cdef float *o2
    cdef float *obase = &out[0, 0, 0]
    cdef const uint8_t *base = &img[0, 0, 0]
    cdef const uint8_t *r0
    cdef const uint8_t *r1
    cdef float a, b, v0, v1, v2, wa, wb
    cdef float bord[3]
    cdef float fills[3]
    cdef Py_ssize_t x, y, k, klo, khi, ia, ib, c0, c2, i
    cdef int ya, yb
    bord[0] = border0
    bord[1] = border1
    bord[2] = border2
    fills[0] = fill0
    fills[1] = fill1
    fills[2] = fill2
    c0 = 2 if swap else 0  # source channel feeding output channel 0
    c2 = 2 - c0
    with nogil:
        vrow = <float *> malloc((w + 1) * 3 * sizeof(float))
        if vrow == NULL:
            with gil:
                raise MemoryError()
        vrow[w * 3] = border0
        vrow[w * 3 + 1] = border1
        vrow[w * 3 + 2] = border2
        klo = xlo * 3
        khi = xhi * 3
        # border fill (only where the region does not cover the output)
        if nw < ow or nh < oh:
            for k in range(3):
                o0 = obase + k * plane
                for y in range(oh):
                    if y < py or y >= py + nh:
                        for x in range(ow):
                            o0[y * ow + x] = fills[k]
                    else:
                        for x in range(px):
                            o0[y * ow + x] = fills[k]
                        for x in range(px + nw, ow):
                            o0[y * ow + x] = fills[k]
        for y in range(nh):
            ya = yi0[y]
            yb = yi1[y]
            a = yw0[y]
            b = yw1[y]
            # vertical blend of the two source rows into vrow (source order, float)
            if ya >= 0 and yb >= 0:
                r0 = base + ya * w * 3
                r1 = base + yb * w * 3
                if b == 0.0:
                    for k in range(klo, khi):
                        vrow[k] = <float> r0[k]
                else:
                    for k in range(klo, khi):
                        vrow[k] = <float> r0[k] * a + <float> r1[k] * b
            elif ya >= 0 or yb >= 0:
                if ya >= 0:
                    r0 = base + ya * w * 3
                    wa = a
                    wb = b
                else:
                    r0 = base + yb * w * 3
                    wa = b
                    wb = a
                for k in range(klo, khi):
                    vrow[k] = <float> r0[k] * wa + bord[k % 3] * wb
            else:
                for k in range(klo, khi):
                    vrow[k] = bord[k % 3]
            # horizontal blend + swap + affine, planar stores
            o0 = obase + (py + y) * ow + px
            o1 = o0 + plane
            o2 = o1 + plane
            for x in range(nw):
                ia = xi0[x] * 3
                ib = xi1[x] * 3
                a = xw0[x]
                b = xw1[x]
                v0 = vrow[ia + c0] * a + vrow[ib + c0] * b
                v1 = vrow[ia + 1] * a + vrow[ib + 1] * b
                v2 = vrow[ia + c2] * a + vrow[ib + c2] * b
                o0[x] = v0 * mul0 + add0
                o1[x] = v1 * mul1 + add1
                o2[x] = v2 * mul2 + add2
        free(vrow)


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
    cdef Py_ssize_t plane = oh * ow
    cdef const uint8_t *base = &img[0, 0, 0]
    cdef float *obase = &out[0, 0, 0]
    cdef float bord[3]
    cdef float px[4][3]
    cdef float v[3]
    cdef float mul[3]
    cdef float add[3]
    cdef double sx, sy, fx, fy
    cdef Py_ssize_t x, y, ix, iy, t, c, tx, ty, src_c
    bord[0] = border0
    bord[1] = border1
    bord[2] = border2
    mul[0] = mul0
    mul[1] = mul1
    mul[2] = mul2
    add[0] = add0
    add[1] = add1
    add[2] = add2
    with nogil:
        for y in range(oh):
            for x in range(ow):
                sx = m00 * x + m01 * y + m02
                sy = m10 * x + m11 * y + m12
                fx = floor(sx)
                fy = floor(sy)
                ix = <Py_ssize_t> fx
                iy = <Py_ssize_t> fy
                fx = sx - fx
                fy = sy - fy
                for t in range(4):
                    tx = ix + (t & 1)
                    ty = iy + (t >> 1)
                    if tx >= 0 and tx < w and ty >= 0 and ty < h:
                        for c in range(3):
                            px[t][c] = base[(ty * w + tx) * 3 + c]
                    else:
                        for c in range(3):
                            px[t][c] = bord[c]
                for c in range(3):
                    v[c] = <float> ((px[0][c] * (1.0 - fx) + px[1][c] * fx) * (1.0 - fy)
                                    + (px[2][c] * (1.0 - fx) + px[3][c] * fx) * fy)
                for c in range(3):
                    src_c = 2 - c if swap else c
                    obase[c * plane + y * ow + x] = v[src_c] * mul[c] + add[c]


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
