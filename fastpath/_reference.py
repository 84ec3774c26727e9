"""Pure-NumPy reference implementations: the specification the Cython kernels must match.

Everything here assumes inputs were already validated by :mod:`fastpath` (the public wrapper).
Conventions shared by every resampling function:

* Images are ``uint8`` HxWx3, channels in source order (BGR as OpenCV decodes them).
* Bilinear sampling uses OpenCV's ``INTER_LINEAR`` geometry: half-pixel centres, the source
  coordinate of output pixel ``i`` is ``(i + 0.5) * src_len / dst_len - 0.5``, clamped to the
  sampled span (edge replicate inside the span). Interpolation is done in float32: vertical blend
  first, then horizontal. OpenCV's own uint8 path rounds to uint8 and uses 11-bit fixed-point
  weights, so it differs from this spec by at most about one grey level.
* Post-processing per output channel ``c``: ``(v - mean[c]) * scale[c]`` where channels are in
  *output* order (after the optional BGR→RGB swap). Pad / border pixel values are given in *source*
  channel order (like ``cv2.copyMakeBorder``'s ``value``).
* Outputs are float32 NCHW with N = 1.

The geometry helpers (:func:`letterbox_plan`, :func:`crop_plan`) are part of the spec and are shared
with the Cython path, which only replaces the pixel loops.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
import numpy.typing as npt

Mode = Literal["letterbox", "stretch", "cover", "topleft"]
Metric = Literal["cosine", "l2"]
BankDType = Literal["float32", "float16", "int8"]

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
Taps = tuple[npt.NDArray[np.int32], FloatArray]  # (n, K) source indices (-1 = border), (n, K) weights
Interpolation = Literal["linear", "area"]


# ----------------------------------------------------------------------------------------------
# Geometry
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Transform:
    """Maps frame pixels to model-input pixels: ``model = frame * scale + pad`` (per axis).

    Coordinates are continuous with pixel edges on integers (a box ``[0, W]`` covers the frame).
    ``pad_x``/``pad_y`` are the letterbox borders; they are negative in ``cover`` mode (the crop
    offset expressed in model pixels). ``frame_w``/``frame_h`` are used for optional clipping.
    """

    scale_x: float
    scale_y: float
    pad_x: float
    pad_y: float
    frame_w: int
    frame_h: int

    def to_frame(self, xy: npt.ArrayLike, *, clip: bool = False) -> FloatArray:
        """Model-input coordinates → frame pixels.

        ``xy`` has an even-sized last axis of interleaved ``x, y`` values: points ``(..., 2)``,
        boxes ``(..., 4)`` as x1, y1, x2, y2, landmarks ``(..., 10)``. Returns float32, same shape.
        """
        a = _as_xy(xy)
        res = np.empty_like(a)
        res[..., 0::2] = (a[..., 0::2] - self.pad_x) / self.scale_x
        res[..., 1::2] = (a[..., 1::2] - self.pad_y) / self.scale_y
        if clip:
            np.clip(res[..., 0::2], 0, self.frame_w, out=res[..., 0::2])
            np.clip(res[..., 1::2], 0, self.frame_h, out=res[..., 1::2])
        return res

    def to_model(self, xy: npt.ArrayLike) -> FloatArray:
        """Frame pixels → model-input coordinates (the inverse of :meth:`to_frame`)."""
        a = _as_xy(xy)
        res = np.empty_like(a)
        res[..., 0::2] = a[..., 0::2] * self.scale_x + self.pad_x
        res[..., 1::2] = a[..., 1::2] * self.scale_y + self.pad_y
        return res


def _as_xy(xy: npt.ArrayLike) -> FloatArray:
    a = np.array(xy, dtype=np.float32, copy=True)
    if a.ndim == 0 or a.shape[-1] % 2:
        raise ValueError(f"coordinates need an even-sized last axis (x, y pairs), got {a.shape}")
    return a


@lru_cache(maxsize=1024)
def linear_taps(start: int, length: int, dst_len: int, src_len: int) -> Taps:
    """Bilinear taps resampling ``length`` pixels starting at ``start`` onto ``dst_len`` pixels.

    Returns ``(idx, w)``, both ``(dst_len, 2)``: for output ``i``,
    ``v = src[idx[i, 0]] * w[i, 0] + src[idx[i, 1]] * w[i, 1]``. Sampling is clamped to the span
    (OpenCV ``INTER_LINEAR`` on the cropped span). Indices outside ``[0, src_len)`` (a span
    reaching beyond the frame) are returned as -1 = "border pixel". Arrays are read-only and cached.
    """
    ratio = length / dst_len
    f = ((np.arange(dst_len, dtype=np.float64) + 0.5) * ratio - 0.5).astype(np.float32)
    f = np.clip(f, 0.0, float(length - 1)).astype(np.float64)
    i0 = np.floor(f).astype(np.int64)
    w1 = (f - i0).astype(np.float32)
    i1 = np.minimum(i0 + 1, length - 1)
    w1[i1 == i0] = 0.0
    w0 = (np.float32(1.0) - w1).astype(np.float32)
    return _finish_taps(np.stack([i0, i1], axis=1) + start, np.stack([w0, w1], axis=1), src_len)


@lru_cache(maxsize=1024)
def area_taps(start: int, length: int, dst_len: int, src_len: int) -> Taps:
    """Box-filter taps (OpenCV ``INTER_AREA`` when shrinking: each output pixel is the mean of the
    source pixels it covers, partly covered ones weighted by their coverage); when the span is
    not larger than the output, the bilinear :func:`linear_taps`. ``(idx, w)`` are
    ``(dst_len, K)``, K the most taps any output pixel needs (unused taps have weight 0)."""
    if length <= dst_len:
        return linear_taps(start, length, dst_len, src_len)
    scale = 1.0 / (dst_len / length)  # OpenCV's scale = 1 / inv_scale, bit for bit
    rows: list[list[tuple[int, float]]] = []
    for dx in range(dst_len):
        fsx1 = dx * scale
        fsx2 = fsx1 + scale
        cell = min(scale, length - fsx1)
        sx2 = min(math.floor(fsx2), length - 1)
        sx1 = min(math.ceil(fsx1), sx2)
        taps: list[tuple[int, float]] = []
        if sx1 - fsx1 > 1e-3:
            taps.append((sx1 - 1, float(np.float32((sx1 - fsx1) / cell))))
        taps.extend((sx, float(np.float32(1.0 / cell))) for sx in range(sx1, sx2))
        if fsx2 - sx2 > 1e-3:
            taps.append((sx2, float(np.float32(min(min(fsx2 - sx2, 1.0), cell) / cell))))
        rows.append(taps)
    k = max(len(t) for t in rows)
    idx = np.empty((dst_len, k), np.int64)
    wts = np.zeros((dst_len, k), np.float32)
    for i, taps in enumerate(rows):
        idx[i] = taps[0][0]
        for j, (sx, wt) in enumerate(taps):
            idx[i, j], wts[i, j] = sx, wt
    return _finish_taps(idx + start, wts, src_len)


def _finish_taps(idx: npt.NDArray[np.int64], wts: FloatArray, src_len: int) -> Taps:
    out_idx = np.where((idx < 0) | (idx >= src_len), -1, idx).astype(np.int32)
    out_w = np.ascontiguousarray(wts, dtype=np.float32)
    out_idx.flags.writeable = False
    out_w.flags.writeable = False
    return out_idx, out_w


def _kernel_xtaps(idx: npt.NDArray[np.int32], src_len: int) -> tuple[npt.NDArray[np.int32], int, int]:
    valid = idx[idx >= 0]
    lo, hi = (int(valid.min()), int(valid.max()) + 1) if valid.size else (0, 0)
    return np.ascontiguousarray(np.where(idx < 0, src_len, idx), dtype=np.int32), lo, hi


@dataclass(frozen=True, slots=True)
class ResamplePlan:
    """Where the resampled region goes in the output, and its taps along each axis."""

    transform: Transform
    pad_x: int  # region origin in the output (letterbox border)
    pad_y: int
    xtaps: Taps
    ytaps: Taps
    # x taps for the Cython kernel: border taps (-1) as ``frame_w``, plus the span of source
    # columns read (lo, hi)
    xkernel: tuple[npt.NDArray[np.int32], int, int]


def _plan(tr: Transform, px: int, py: int, xt: Taps, yt: Taps) -> ResamplePlan:
    return ResamplePlan(tr, px, py, xt, yt, _kernel_xtaps(xt[0], tr.frame_w))


@lru_cache(maxsize=128)
def letterbox_plan(
    h: int, w: int, out_h: int, out_w: int, mode: Mode, interpolation: Interpolation = "linear"
) -> ResamplePlan:
    """Geometry of ``letterbox_chw`` (the spec). ``interpolation``: ``"linear"`` (bilinear,
    :func:`linear_taps`) or ``"area"`` (:func:`area_taps`: box filter on a shrinking axis).

    * ``letterbox``: ``r = min(out_w / w, out_h / h)``, resized size ``round(w * r)`` x
      ``round(h * r)`` (at least 1, at most the output), centred with ``(out - new) // 2``.
    * ``stretch``: resize the whole frame to exactly ``out_w`` x ``out_h``.
    * ``topleft``: as ``letterbox`` but placed at the top-left corner (padding right and bottom).
    * ``cover``: centre-crop the frame to the output aspect (crop size ``round(out / r)`` with
      ``r = max(out_w / w, out_h / h)``, crop origin ``(frame - crop) // 2``) then resize.
    """
    taps = area_taps if interpolation == "area" else linear_taps
    if mode in ("letterbox", "topleft"):
        r = min(out_w / w, out_h / h)
        nw = min(out_w, max(1, round(w * r)))
        nh = min(out_h, max(1, round(h * r)))
        px, py = ((out_w - nw) // 2, (out_h - nh) // 2) if mode == "letterbox" else (0, 0)
        tr = Transform(nw / w, nh / h, float(px), float(py), w, h)
        xt, yt = taps(0, w, nw, w), taps(0, h, nh, h)
        return _plan(tr, px, py, xt, yt)
    if mode == "stretch":
        tr = Transform(out_w / w, out_h / h, 0.0, 0.0, w, h)
        return _plan(tr, 0, 0, taps(0, w, out_w, w), taps(0, h, out_h, h))
    if mode == "cover":
        r = max(out_w / w, out_h / h)
        cw = min(w, max(1, round(out_w / r)))
        ch = min(h, max(1, round(out_h / r)))
        x0, y0 = (w - cw) // 2, (h - ch) // 2
        sx, sy = out_w / cw, out_h / ch
        tr = Transform(sx, sy, -x0 * sx, -y0 * sy, w, h)
        return _plan(tr, 0, 0, taps(x0, cw, out_w, w), taps(y0, ch, out_h, h))
    raise ValueError(f"mode must be 'letterbox', 'stretch', 'cover' or 'topleft', got {mode!r}")


def window_taps(origin: float, length: float, dst_len: int, src_len: int) -> Taps:
    """Bilinear taps sampling the window ``[origin, origin + length)`` (continuous coordinates,
    pixel ``i`` covers ``[i, i + 1)``) onto ``dst_len`` pixels: output ``i`` reads source
    coordinate ``f = origin + (i + 0.5) * length / dst_len - 0.5`` (pixel-centre units, float64),
    taps ``floor(f)`` and ``floor(f) + 1`` with weights ``1 - w1`` and ``w1 = float32(f - floor(f))``.
    No clamping to the window: a tap outside ``[0, src_len)`` is -1 = "border pixel" (a constant
    border, as ``cv2.warpAffine`` with ``BORDER_CONSTANT``). ``f`` is first clamped to
    ``[-1, src_len]``, where every tap beyond it is a border tap anyway."""
    step = length / dst_len
    f = origin + (np.arange(dst_len, dtype=np.float64) + 0.5) * step - 0.5
    f = np.clip(f, -1.0, float(src_len))
    fl = np.floor(f)
    i0 = fl.astype(np.int64)
    w1 = (f - fl).astype(np.float32)
    w0 = (np.float32(1.0) - w1).astype(np.float32)
    return _finish_taps(np.stack([i0, i0 + 1], axis=1), np.stack([w0, w1], axis=1), src_len)


def crop_plan(
    h: int, w: int, cx: float, cy: float, side_w: float, side_h: float, out_w: int, out_h: int
) -> ResamplePlan:
    """Geometry of ``crop_resize``: the window of ``side_w`` x ``side_h`` frame pixels centred on
    ``(cx, cy)`` (continuous coordinates: a box ``(x, y, w, h)`` is centred on ``x + w/2``), exact
    to the sub-pixel (no rounding of its corner or size), sampled bilinearly onto
    ``out_w`` x ``out_h`` (:func:`window_taps`); pixels outside the frame are the border colour.
    This is the NanoTrack / SiamRPN ``get_subwindow`` without its integer window."""
    x0, y0 = cx - side_w / 2.0, cy - side_h / 2.0
    sx, sy = out_w / side_w, out_h / side_h
    tr = Transform(sx, sy, -x0 * sx, -y0 * sy, w, h)
    return _plan(tr, 0, 0, window_taps(x0, side_w, out_w, w), window_taps(y0, side_h, out_h, h))


# ----------------------------------------------------------------------------------------------
# Resampling (reference)
# ----------------------------------------------------------------------------------------------
def _post(
    v: FloatArray, swap_rb: bool, mean: FloatArray, scale: FloatArray
) -> FloatArray:  # v: (h, w, 3) source order → (3, h, w) output order
    if swap_rb:
        v = v[..., ::-1]
    return np.ascontiguousarray(((v - mean) * scale).transpose(2, 0, 1), dtype=np.float32)


def resample(img: npt.NDArray[np.uint8], plan: ResamplePlan, border: FloatArray) -> FloatArray:
    """Resample ``img`` through ``plan``'s taps (region only), float32 HxWx3: vertical taps first
    (summed in tap order), then horizontal. Taps of -1 read the ``border`` colour (source order)."""
    h, w = img.shape[:2]
    ext = np.empty((h + 1, w + 1, 3), dtype=np.float32)
    ext[:h, :w] = img
    ext[h, :] = border
    ext[:, w] = border
    xi, xw = plan.xtaps
    yi, yw = plan.ytaps
    # index -1 wraps to the border row/column of `ext`
    rows = np.asarray(ext[yi[:, 0]] * yw[:, 0, None, None], np.float32)
    for k in range(1, yi.shape[1]):
        rows = np.asarray(rows + ext[yi[:, k]] * yw[:, k, None, None], np.float32)
    res = np.asarray(rows[:, xi[:, 0]] * xw[None, :, 0, None], np.float32)
    for k in range(1, xi.shape[1]):
        res = np.asarray(res + rows[:, xi[:, k]] * xw[None, :, k, None], np.float32)
    return np.asarray(res, dtype=np.float32)


def letterbox_chw(
    img: npt.NDArray[np.uint8],
    out_h: int,
    out_w: int,
    mode: Mode,
    swap_rb: bool,
    mean: FloatArray,
    scale: FloatArray,
    pad: FloatArray,
    out: FloatArray,
    interpolation: Interpolation = "linear",
) -> Transform:
    """Reference for :func:`fastpath.letterbox_chw`; writes ``out`` (1, 3, out_h, out_w)."""
    plan = letterbox_plan(img.shape[0], img.shape[1], out_h, out_w, mode, interpolation)
    region = resample(img, plan, pad)
    fill = pad[::-1] if swap_rb else pad
    out[0] = ((fill - mean) * scale).astype(np.float32)[:, None, None]
    nh, nw = region.shape[:2]
    out[0, :, plan.pad_y : plan.pad_y + nh, plan.pad_x : plan.pad_x + nw] = _post(region, swap_rb, mean, scale)
    return plan.transform


def crop_resize(
    img: npt.NDArray[np.uint8],
    plan: ResamplePlan,
    border: FloatArray,
    swap_rb: bool,
    mean: FloatArray,
    scale: FloatArray,
) -> FloatArray:
    """Reference for :func:`fastpath.crop_resize` (geometry from :func:`crop_plan`)."""
    return _post(resample(img, plan, border), swap_rb, mean, scale)[None]


def warp_affine_chw(
    img: npt.NDArray[np.uint8],
    m: npt.NDArray[np.float64],
    out_w: int,
    out_h: int,
    swap_rb: bool,
    mean: FloatArray,
    scale: FloatArray,
    border: FloatArray,
) -> FloatArray:
    """Reference for :func:`fastpath.warp_affine_chw`: the spec *is* ``cv2.warpAffine`` with
    ``INTER_LINEAR`` and a constant border, followed by the usual swap/mean/scale/CHW step.
    (OpenCV quantises sub-pixel positions to 1/32 px, so the Cython kernel, which does not,
    differs by a few grey levels at strong edges.)"""
    import cv2

    warped = cv2.warpAffine(
        img,
        m,
        (out_w, out_h),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=tuple(float(b) for b in border),
    )
    return _post(warped.astype(np.float32), swap_rb, mean, scale)[None]


# ----------------------------------------------------------------------------------------------
# Face alignment (reference)
# ----------------------------------------------------------------------------------------------
ALIGN_POS_BITS = 16  # positions accumulate in 1/65536 px
ALIGN_SUB_BITS = 8  # samples are taken at 1/256 px
ALIGN_MAX_COORD = 2.0**24  # the crop's corners must map within this many frame pixels


def similarity(src: Sequence[Sequence[float]], dst: Sequence[Sequence[float]]) -> tuple[float, ...]:
    """The similarity (rotation, uniform scale, translation) that maps ``src`` (N, 2) onto
    ``dst`` (N, 2) best: Umeyama's least squares without reflection, in its 2-D closed form.

    With the centred points ``s``, ``d`` (means summed in point order, then divided by N),
    ``var = Σ(sx² + sy²)``, ``dot = Σ(sx·dx + sy·dy)``, ``cross = Σ(sx·dy - sy·dx)`` (each summed
    in point order, the bracket first), ``a = dot / var``, ``b = cross / var`` (``a, b = 1, 0``
    when ``var`` is 0: coinciding points, translation only), the matrix is
    ``[[a, -b, dmx - (a·smx - b·smy)], [b, a, dmy - (b·smx + a·smy)]]``, row-major as 6 floats.
    Plain float64 operations in exactly this order (the Cython kernel repeats them bit for bit).
    Values must be finite (validated by the wrapper).
    """
    n = len(src)
    smx = smy = dmx = dmy = 0.0
    for p in src:
        smx += float(p[0])
    for p in src:
        smy += float(p[1])
    for q in dst:
        dmx += float(q[0])
    for q in dst:
        dmy += float(q[1])
    smx, smy, dmx, dmy = smx / n, smy / n, dmx / n, dmy / n
    var = dot = cross = 0.0
    for p, q in zip(src, dst, strict=True):
        sx, sy, dx, dy = float(p[0]) - smx, float(p[1]) - smy, float(q[0]) - dmx, float(q[1]) - dmy
        var += sx * sx + sy * sy
        dot += sx * dx + sy * dy
        cross += sx * dy - sy * dx
    a, b = (dot / var, cross / var) if var > 0 else (1.0, 0.0)
    return (a, -b, dmx - (a * smx - b * smy), b, a, dmy - (b * smx + a * smy))


def align_inverse(m: Sequence[float], size: int) -> tuple[float, ...] | None:
    """The inverse of the 2x3 ``m`` (6 floats, row-major) as ``cv2.invertAffineTransform``
    computes it; ``None`` (refused) unless every value is finite, the determinant is not 0 and
    the output's corners (0 and ``size - 1`` on each axis) map within ±2^24 frame pixels."""
    if not all(math.isfinite(v) for v in m):
        return None
    det = m[0] * m[4] - m[1] * m[3]
    if det == 0.0 or not math.isfinite(det):
        return None
    d = 1.0 / det
    i0, i1, i3, i4 = m[4] * d, -m[1] * d, -m[3] * d, m[0] * d
    inv = (i0, i1, -i0 * m[2] - i1 * m[5], i3, i4, -i3 * m[2] - i4 * m[5])
    if not all(math.isfinite(v) for v in inv):
        return None
    e = float(size - 1)
    for x, y in ((0.0, 0.0), (e, 0.0), (0.0, e), (e, e)):
        sx, sy = inv[0] * x + inv[1] * y + inv[2], inv[3] * x + inv[4] * y + inv[5]
        if not (abs(sx) <= ALIGN_MAX_COORD and abs(sy) <= ALIGN_MAX_COORD):
            return None
    return inv


def align_positions(inv: Sequence[float], size: int) -> tuple[IntArray, IntArray]:
    """Where output pixel ``(x, y)`` samples the frame, in 1/65536 px (int64 (size, size) X, Y):
    ``cv2.warpAffine``'s geometry (output pixel ``(x, y)`` reads the frame at
    ``inv · (x, y, 1)``, pixel centres on integers), accumulated in fixed point: each row starts
    at ``rint((inv[1]·y + inv[2]) · 65536)`` (float64, half to even) and steps by
    ``rint(inv[0] · 65536)`` per pixel (Y alike with inv[3:6]); a 1-pixel output has no step."""
    unit = float(1 << ALIGN_POS_BITS)
    ys = np.arange(size, dtype=np.float64)
    xs = np.arange(size, dtype=np.int64)
    step_x = int(np.rint(inv[0] * unit)) if size > 1 else 0
    step_y = int(np.rint(inv[3] * unit)) if size > 1 else 0
    x0 = np.rint((inv[1] * ys + inv[2]) * unit).astype(np.int64)
    y0 = np.rint((inv[4] * ys + inv[5]) * unit).astype(np.int64)
    return x0[:, None] + step_x * xs[None, :], y0[:, None] + step_y * xs[None, :]


def align_warp(img: npt.NDArray[np.uint8], inv: Sequence[float], size: int) -> npt.NDArray[np.uint8]:
    """The aligned crop (size, size, 3) uint8: bilinear samples at :func:`align_positions`
    rounded to the nearest 1/256 px (``(X + 128) >> 8``, half up); ``ix, fx = U >> 8, U & 255``
    (``iy, fy`` alike), ``ax = fx / 256``. Taps ``(ix, iy)``, ``(ix+1, iy)``, ``(ix, iy+1)``,
    ``(ix+1, iy+1)``; a tap outside the frame is 0 (``BORDER_CONSTANT`` 0). Per channel, float32:
    ``top = p00 + ax·(p01 - p00)``, ``bot = p10 + ax·(p11 - p10)``, ``v = top + ay·(bot - top)``
    (every term is a multiple of 2^-16 below 256, exact in float32) and the byte is
    ``floor(v + 0.5)`` (half up)."""
    h, w = img.shape[:2]
    big_x, big_y = align_positions(inv, size)
    u = (big_x + 128) >> ALIGN_SUB_BITS
    v = (big_y + 128) >> ALIGN_SUB_BITS
    ix, iy = u >> 8, v >> 8
    ax = ((u & 255).astype(np.float32) / np.float32(256))[..., None]
    ay = ((v & 255).astype(np.float32) / np.float32(256))[..., None]

    def tap(tx: IntArray, ty: IntArray) -> FloatArray:
        inside = (tx >= 0) & (tx < w) & (ty >= 0) & (ty < h)
        px = img[np.where(inside, ty, 0), np.where(inside, tx, 0)].astype(np.float32)
        return np.where(inside[..., None], px, np.float32(0))

    p00, p01, p10, p11 = tap(ix, iy), tap(ix + 1, iy), tap(ix, iy + 1), tap(ix + 1, iy + 1)
    top = p00 + ax * (p01 - p00)
    bot = p10 + ax * (p11 - p10)
    val = (top + ay * (bot - top)).astype(np.float32)
    crop: npt.NDArray[np.uint8] = np.floor(val + np.float32(0.5)).astype(np.uint8)
    return crop


def align_face(
    img: npt.NDArray[np.uint8],
    points: Sequence[Sequence[float]],
    template: Sequence[Sequence[float]],
    size: int,
    swap_rb: bool,
    mean: FloatArray,
    scale: FloatArray,
    with_blob: bool = True,
) -> tuple[npt.NDArray[np.uint8], FloatArray | None] | None:
    """Reference for :func:`fastpath.align_face`: :func:`similarity` of ``points`` onto
    ``template``, :func:`align_inverse`, :func:`align_warp` to the crop, and the blob
    ``(float32(crop) - mean) * scale`` per output channel (float32, channels swapped first when
    ``swap_rb``) as (1, 3, size, size): the crop converted, as :func:`letterbox_chw` would.
    ``None`` when :func:`align_inverse` refuses the fit; the blob is ``None`` without
    ``with_blob``."""
    inv = align_inverse(similarity(points, template), size)
    if inv is None:
        return None
    crop = align_warp(img, inv, size)
    return crop, (_post(crop.astype(np.float32), swap_rb, mean, scale)[None] if with_blob else None)


# ----------------------------------------------------------------------------------------------
# Image statistics (reference)
# ----------------------------------------------------------------------------------------------
# OpenCV's COLOR_BGR2GRAY on uint8 (checked against cv2 on all 2^24 colours): 15-bit fixed point,
# grey = (B*3735 + G*19235 + R*9798 + 2^14) >> 15. (Its 14-bit YUV weights 1868, 9617, 4899 round
# 0.26 % of the colours one level apart from what cvtColor gives.)
GREY_WEIGHTS = (3735, 19235, 9798)  # B, G, R
GREY_SHIFT = 15


def crop_sums(img: npt.NDArray[np.uint8]) -> tuple[int, int, int]:
    """Exact integer sums over an HxWxC uint8 image (C = 1 grey or 3 BGR, H, W >= 1, any strides):
    (sum of the Laplacian of its grey image, sum of the Laplacian's squares, sum over the pixels
    of ``max(B,G,R) - min(B,G,R)``, 0 for grey).

    grey: OpenCV's ``COLOR_BGR2GRAY`` (:data:`GREY_WEIGHTS`), or the one channel. Laplacian:
    ``cv2.Laplacian(grey, ksize=1)``, the kernel ``[[0,1,0],[1,-4,1],[0,1,0]]`` with
    ``BORDER_REFLECT_101`` (``g[-1] = g[1]``; a 1-pixel-wide dimension reflects onto itself), whole
    numbers in [-1020, 1020].
    """
    x = img.astype(np.int64)
    if x.shape[2] == 3:
        b, g, r = x[..., 0], x[..., 1], x[..., 2]
        wb, wg, wr = GREY_WEIGHTS
        grey = (b * wb + g * wg + r * wr + (1 << (GREY_SHIFT - 1))) >> GREY_SHIFT
        spread = int((x.max(axis=2) - x.min(axis=2)).sum())
    else:
        grey, spread = x[..., 0], 0
    p = np.pad(grey, 1, mode="reflect")  # NumPy's "reflect" is OpenCV's REFLECT_101
    lap = p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:] - 4 * p[1:-1, 1:-1]
    return int(lap.sum()), int((lap * lap).sum()), spread


def stats_of_sums(lap_sum: int, lap_sq: int, spread: int, n: int) -> tuple[float, float]:
    """(population variance of the Laplacian, mean spread) of ``n`` pixels from
    :func:`crop_sums`: ``(n·Σl² − (Σl)²) / n²`` and ``Σspread / n``, each a ratio of Python
    integers, so correctly rounded (the same float on every platform and build)."""
    return (n * lap_sq - lap_sum * lap_sum) / (n * n), spread / n


def crop_stats(img: npt.NDArray[np.uint8]) -> tuple[float, float]:
    """(sharpness, chroma) of an HxWxC uint8 image: the variance of the Laplacian of its grey
    image and the mean ``max(B,G,R) - min(B,G,R)`` (0.0 for grey), from :func:`crop_sums`."""
    return stats_of_sums(*crop_sums(img), img.shape[0] * img.shape[1])


# ----------------------------------------------------------------------------------------------
# Bank search (reference)
# ----------------------------------------------------------------------------------------------
def inv_norms(vectors: FloatArray) -> FloatArray:
    """1 / L2 norm per row (0 for all-zero rows, so they score 0 under cosine)."""
    n = np.sqrt(np.einsum("ij,ij->i", vectors, vectors, dtype=np.float64))
    with np.errstate(divide="ignore"):
        inv = np.where(n > 0, 1.0 / n, 0.0)
    return inv.astype(np.float32)


def quantise_int8(vectors: FloatArray) -> tuple[npt.NDArray[np.int8], FloatArray]:
    """Symmetric per-row int8 quantisation: ``v ≈ q * scale`` with ``scale = max|v| / 127``."""
    amax = np.abs(vectors).max(axis=1) if vectors.shape[1] else np.zeros(len(vectors), np.float32)
    scales = (amax / 127.0).astype(np.float32)
    safe = np.where(scales > 0, scales, 1.0).astype(np.float32)
    q = np.clip(np.rint(vectors / safe[:, None]), -127, 127).astype(np.int8)
    return q, scales


def bank_scores(
    data: npt.NDArray[np.generic],
    dtype: BankDType,
    norms: FloatArray,
    scales: FloatArray | None,
    queries: FloatArray,
    metric: Metric,
) -> FloatArray:
    """Full (Q, N) score matrix: cosine similarity or Euclidean distance.

    Bank storage (see :class:`fastpath.Bank`): float32/float16 rows are the raw vectors; int8 rows
    are the L2-normalised vectors quantised per row (``scales``), ``norms`` the original norms.
    """
    qn = np.sqrt(np.einsum("ij,ij->i", queries, queries, dtype=np.float64)).astype(np.float32)
    if dtype == "int8":
        assert scales is not None
        unit = data.astype(np.float32) * scales[:, None]  # ≈ normalised rows
        dots_unit = queries @ unit.T  # ≈ q · b / |b|
        if metric == "cosine":
            with np.errstate(divide="ignore", invalid="ignore"):
                res = np.where(qn[:, None] > 0, dots_unit / qn[:, None], 0.0)
            return res.astype(np.float32)
        d2 = norms[None, :] ** 2 - 2.0 * norms[None, :] * dots_unit + qn[:, None] ** 2
        dist: npt.NDArray[np.float32] = np.sqrt(np.maximum(d2, 0.0)).astype(np.float32)
        return dist
    b = data.astype(np.float32)
    if metric == "cosine":
        inv_b = np.where(norms > 0, 1.0 / np.where(norms > 0, norms, 1.0), 0.0)
        inv_q = np.where(qn > 0, 1.0 / np.where(qn > 0, qn, 1.0), 0.0)
        cos: npt.NDArray[np.float32] = ((queries @ b.T) * inv_b[None, :] * inv_q[:, None]).astype(np.float32)
        return cos
    diff = queries[:, None, :] - b[None, :, :]
    l2: npt.NDArray[np.float32] = np.sqrt(np.einsum("qnd,qnd->qn", diff, diff)).astype(np.float32)
    return l2


def top_k(scores: FloatArray, k: int, metric: Metric) -> tuple[IntArray, FloatArray]:
    """Best ``k`` per row: highest first for cosine, smallest first for l2 (stable on ties)."""
    n = scores.shape[1]
    k = min(k, n)
    key = -scores if metric == "cosine" else scores
    order = np.argsort(key, axis=1, kind="stable")[:, :k].astype(np.int64)
    return order, np.take_along_axis(scores, order, axis=1).astype(np.float32)


def label_scores(
    grouped: FloatArray, starts: IntArray, embedding: FloatArray
) -> tuple[FloatArray, int, float, float | None]:
    """One embedding against a bank grouped by label: per-label scores and the top two.

    ``grouped`` (N, D) rows, label ``l`` owning rows ``starts[l]`` up to the next start (the last
    label up to N); ``starts`` (L,) begins at 0 and increases strictly below N (L = 0 when N = 0).
    ``embedding`` (D,) is used as given (unit rows and a unit embedding: cosines). Label ``l``'s
    score is ``0.5 + 0.5 * max`` of its rows' dot products with the embedding, in float32 (a NaN
    dot product makes its label's score NaN, like ``np.maximum``). ``best`` is ``np.argmax`` of the
    scores (the first of ties; the first NaN if any), -1 when L = 0; ``similarity`` its score
    (0.0 when L = 0); ``lead`` how far it scores above the best of the other labels, a float32
    difference (NaN once a score is NaN), ``None`` when L < 2. Returns
    ``(scores float32 (L,), best, similarity, lead)``.
    """
    if starts.shape[0] == 0:
        return np.zeros(0, np.float32), -1, 0.0, None
    with np.errstate(over="ignore", invalid="ignore"):  # a garbage embedding (inf) is no error
        scores = (0.5 + 0.5 * np.maximum.reduceat(grouped @ embedding, starts)).astype(np.float32, copy=False)
        best = int(np.argmax(scores))
        if scores.size < 2:
            return scores, best, float(scores[best]), None
        # the two highest in one partition (NaN sorts last): the runner-up is the second unless
        # the best is NaN, when the lead is NaN whichever is subtracted
        second, first = np.partition(scores, scores.size - 2)[-2:]
        lead = float(scores[best] - (second if scores[best] >= first else first))
    return scores, best, float(scores[best]), lead


def l2_normalise(x: FloatArray) -> FloatArray:
    """``x / |x|`` as a new float32 vector, ``|x|`` from a float32 dot product (it overflows to
    inf past ~1.8e19, which makes the entries 0, or NaN where they are inf); a copy of ``x`` when
    ``|x|`` is 0 or NaN. ``x`` is a float32 array, flattened (C order)."""
    with np.errstate(over="ignore", invalid="ignore"):
        v = x.reshape(-1)
        norm = math.sqrt(float(np.dot(v, v)))
        return v / np.float32(norm) if norm > 0 else v.copy()


# ----------------------------------------------------------------------------------------------
# Decoding (reference)
# ----------------------------------------------------------------------------------------------
def grid_decode(
    cls: npt.NDArray[np.float32],
    obj: npt.NDArray[np.float32],
    bbox: npt.NDArray[np.float32],
    kps: npt.NDArray[np.float32],
    cols: int,
    stride: float,
    score_th: float,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """One stride of an anchor-free face detector's grid (YuNet) → its faces, in float32.

    ``cls``, ``obj`` (N,) the cell scores, ``bbox`` (N, 4) (dx, dy, log w, log h) and ``kps``
    (N, 10) five (dx, dy) landmark offsets per cell, cells row-major on a grid ``cols`` wide.
    A cell passes when ``sqrt(clip(cls, 0, 1) * clip(obj, 0, 1)) > score_th``; its centre is
    ``(col + dx, row + dy) * stride``, its size ``exp(log w, log h) * stride``, its landmarks
    ``(col + dx_k, row + dy_k) * stride``. Returns (boxes (M, 4) x1, y1, x2, y2, scores (M,),
    points (M, 5, 2)) of the passing cells in cell order.
    """
    score = np.sqrt(np.clip(cls, 0.0, 1.0) * np.clip(obj, 0.0, 1.0))
    idx = np.flatnonzero(score > np.float32(score_th))
    b = bbox[idx]
    grid = np.stack([idx % cols, idx // cols], axis=1).astype(np.float32)
    step = np.float32(stride)
    centre = (grid + b[:, :2]) * step
    half = np.exp(b[:, 2:]) * step / np.float32(2)
    boxes = np.concatenate([centre - half, centre + half], axis=1)
    points = (grid[:, None, :] + kps[idx].reshape(-1, 5, 2)) * step
    return boxes.astype(np.float32), score[idx].astype(np.float32), points.astype(np.float32)


def siamese_decode(
    cls: npt.NDArray[np.float32],
    loc: npt.NDArray[np.float32],
    px: npt.NDArray[np.float64],
    py: npt.NDArray[np.float64],
    window: npt.NDArray[np.float64] | None,
    sw: float,
    sh: float,
    penalty_k: float,
    window_influence: float,
) -> tuple[int, float, float, float, float, float, float]:
    """A Siamese tracker's head outputs → its pick (SiamRPN++ / NanoTrack, in float64).

    ``cls`` (2, N) logits (channel 1 = target), ``loc`` (4, N) distances l, t, r, b from each
    point, ``px``/``py`` (N,) the points relative to the search-crop centre, ``window`` (N,) the
    Hanning weights already multiplied by ``window_influence`` (None: no window); ``sw``/``sh``
    the last target size in search-crop pixels. score = softmax target probability (logistic of
    the logit difference, clipped at 700); box size ``pw = l + r``, ``ph = t + b`` (>= 1e-6);
    penalty = ``exp((1 − r_c·s_c)·k)`` with ``s_c``/``r_c`` the size/aspect change (>= 1) against
    the last size; the pick maximises ``penalty·score`` (blended with the window:
    ``·(1 − influence) + window``), first index on ties. Returns (index, score, penalty, cx, cy,
    pw, ph) of the pick, the box centre ``(px + (r − l)/2, py + (b − t)/2)``.
    """
    diff = cls[0].astype(np.float64) - cls[1].astype(np.float64)
    score = 1.0 / (1.0 + np.exp(np.minimum(diff, 700.0)))
    d = loc.astype(np.float64)
    pw = np.maximum(d[0] + d[2], 1e-6)
    ph = np.maximum(d[1] + d[3], 1e-6)
    pad0 = (sw + sh) * 0.5
    pad = (pw + ph) * 0.5
    s_c = np.sqrt((pw + pad) * (ph + pad)) * (1.0 / math.sqrt((sw + pad0) * (sh + pad0)))
    s_c = np.maximum(s_c, 1.0 / s_c)
    r_c = (sw / sh) * ph / pw
    r_c = np.maximum(r_c, 1.0 / r_c)
    penalty = np.exp((1.0 - r_c * s_c) * penalty_k)
    pscore = penalty * score
    if window is not None:
        pscore = pscore * (1.0 - window_influence) + window
    b = int(np.argmax(pscore))
    return (
        b,
        float(score[b]),
        float(penalty[b]),
        float(px[b] + (d[2, b] - d[0, b]) / 2.0),
        float(py[b] + (d[3, b] - d[1, b]) / 2.0),
        float(pw[b]),
        float(ph[b]),
    )


def window_cosine(
    feat: npt.NDArray[np.float32], unit: npt.NDArray[np.float32], ix: int, iy: int, ax: float, ay: float, k: int
) -> float:
    """Cosine of a feature window with a unit vector: ``feat`` (C, N, N); the window is the
    ``k x k`` one at the fractional position ``(ix + ax, iy + ay)``, bilinear in float64 (the four
    integer windows weighted ``(1-ax)(1-ay)``, ``ax(1-ay)``, ``(1-ax)ay``, ``ax·ay``; a window of
    weight 0 is not read, so ``ax = 0`` allows ``ix = N - k``), flattened C-major, against
    ``unit`` (C·k·k); the window's norm gets 1e-12 added."""
    f = feat.astype(np.float64)
    win = f[:, iy : iy + k, ix : ix + k] * ((1 - ax) * (1 - ay))
    if ax:
        win = win + f[:, iy : iy + k, ix + 1 : ix + 1 + k] * (ax * (1 - ay))
    if ay:
        win = win + f[:, iy + 1 : iy + 1 + k, ix : ix + k] * ((1 - ax) * ay)
        if ax:
            win = win + f[:, iy + 1 : iy + 1 + k, ix + 1 : ix + 1 + k] * (ax * ay)
    vec = win.ravel()
    return float(vec @ unit.astype(np.float64)) / (float(np.linalg.norm(vec)) + 1e-12)


def nms(
    boxes: npt.NDArray[np.float32],
    scores: npt.NDArray[np.float32],
    iou_th: float,
    max_keep: int,
    classes: npt.NDArray[np.int64] | None,
) -> npt.NDArray[np.int64]:
    """Greedy non-maximum suppression: visit the boxes (x1, y1, x2, y2) by score, highest first
    (ties: lower index first); keep one and drop every later box of the same class (any class
    when ``classes`` is None) whose IoU with it is not ``<= iou_th`` (so NaN drops); stop after
    ``max_keep``. In float32: area = max(x2 − x1, 0)·max(y2 − y1, 0), IoU = inter / max(union,
    1e-9). Returns the kept indices, best first."""
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = np.maximum(x2 - x1, np.float32(0)) * np.maximum(y2 - y1, np.float32(0))
    keep: list[int] = []
    while order.size and len(keep) < max_keep:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        iw = np.maximum(np.float32(0), np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        ih = np.maximum(np.float32(0), np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = iw * ih
        iou = inter / np.maximum(areas[i] + areas[rest] - inter, np.float32(1e-9))
        drop = ~(iou <= iou_th)
        if classes is not None:
            drop &= classes[rest] == classes[i]
        order = rest[~drop]
    return np.asarray(keep, dtype=np.int64)


def nms_faces(
    boxes: npt.NDArray[np.float32],
    scores: npt.NDArray[np.float32],
    points: npt.NDArray[np.float32],
    iou_th: float,
    max_keep: int,
    scale: float,
    width: float,
    height: float,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """A face detector's candidates → its faces in frame pixels.

    ``boxes`` (N, 4) x1, y1, x2, y2, ``scores`` (N,), ``points`` (N, 10) five (x, y) landmarks, in
    model-input pixels, float32. A candidate with a non-finite score, box or landmark is no face
    and is dropped first; the rest go through :func:`nms` (stopping after ``max_keep`` kept). The
    kept boxes and landmarks are divided by ``scale`` (frame → input) in float32, the boxes then
    clipped to ``[0, width] x [0, height]`` in float64, and a box empty after clipping is dropped
    (after NMS: fewer than ``max_keep`` may come back). Returns (boxes (K, 4) float64 x, y, w, h,
    scores (K,) float32, points (K, 5, 2) float32), best score first."""
    pts = points.reshape(len(scores), 10)
    ok = np.isfinite(scores) & np.isfinite(boxes).all(axis=1) & np.isfinite(pts).all(axis=1)
    boxes, scores, pts = boxes[ok], scores[ok], pts[ok]
    keep = nms(boxes, scores, iou_th, max_keep, None)
    s = np.float32(scale)
    b = (boxes[keep] / s).astype(np.float64)
    x1, y1 = np.maximum(b[:, 0], 0.0), np.maximum(b[:, 1], 0.0)
    x2, y2 = np.minimum(b[:, 2], width), np.minimum(b[:, 3], height)
    good = (x2 > x1) & (y2 > y1)
    xywh = np.stack([x1, y1, x2 - x1, y2 - y1], axis=1)[good]
    return xywh, scores[keep][good], (pts[keep] / s).reshape(-1, 5, 2)[good].astype(np.float32)


GridLevel = tuple[
    npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float32], int, float
]


def grid_faces(
    levels: Sequence[GridLevel],
    score_th: float,
    iou_th: float,
    max_keep: int,
    scale: float,
    width: float,
    height: float,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """An anchor-free face detector's grids → its faces in frame pixels: each level (cls, obj,
    bbox, kps, cols, stride) decoded by :func:`grid_decode`, the candidates of all levels in level
    order, then :func:`nms_faces`."""
    with np.errstate(over="ignore"):  # a size that overflows exp is an infinite box: dropped below
        parts = [
            grid_decode(c.reshape(-1), o.reshape(-1), b.reshape(-1, 4), k.reshape(-1, 10), cols, stride, score_th)
            for c, o, b, k, cols, stride in levels
        ]
    if not parts:
        parts = [(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32))]
    boxes = np.concatenate([p[0] for p in parts])
    scores = np.concatenate([p[1] for p in parts])
    points = np.concatenate([p[2] for p in parts]).reshape(-1, 10)
    return nms_faces(boxes, scores, points, iou_th, max_keep, scale, width, height)
