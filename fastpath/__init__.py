"""fastpath: fused preprocessing and bank-search kernels (Cython), with a NumPy reference.

The public functions validate their inputs (raising ``ValueError`` with a clear message) and
dispatch to the Cython kernels (``fastpath._preprocess``, ``fastpath._compare``,
``fastpath._decode``) or to the pure
NumPy reference (``fastpath._reference``, which is the spec). Select with
:func:`set_implementation`: ``"auto"`` (default: Cython if the compiled modules import, else
Python), ``"cython"`` (error if not built) or ``"python"``. Nothing is read from the environment
here; the application calls :func:`set_implementation` from its settings.

Speed: the kernels' inner loops are C (``_resample.h``, ``_dots.h``) with SSE2 on any x86-64 and
AVX2/FMA/F16C variants picked at run time (:func:`simd_level`); the build stays portable. The
hot calls skip re-validation: a letterbox plan is cached per argument set (``_plans``) and a bank
keeps a Cython handle, so a 640x480 → 320 letterbox costs ~2 µs of Python around the kernel and a
100-entry bank search ~1.5 µs in all. :func:`label_scores` and :func:`l2_normalise`, run per face
right after a model run (cold caches), are one C call that checks its arrays with NumPy's C
macros; only what it refuses goes through the Python validation.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, NoReturn

import numpy as np
import numpy.typing as npt

from fastpath import _reference as ref
from fastpath._reference import BankDType, GridLevel, Interpolation, Metric, Mode, Transform

__all__ = [
    "Bank",
    "FaceArrays",
    "GridLevel",
    "Interpolation",
    "Transform",
    "align_crop",
    "align_face",
    "bank_search",
    "crop_resize",
    "crop_stats",
    "grid_faces",
    "implementation",
    "l2_normalise",
    "label_scores",
    "letterbox_chw",
    "make_bank",
    "nms",
    "nms_faces",
    "resample_kind",
    "set_implementation",
    "set_simd_level",
    "siamese_decode",
    "simd_level",
    "similarity",
    "warp_affine_chw",
    "window_cosine",
]

_IMPLEMENTATIONS = ("auto", "cython", "python")
_kernels: tuple[ModuleType, ModuleType, ModuleType] | None = None  # (_preprocess, _compare, _decode)
# letterbox plans by their full argument key (Cython path only): (Resampler, Transform)
_plans: dict[tuple[Any, ...], tuple[Any, Transform]] = {}
_MAX_PLANS = 64

ChannelValue = float | Sequence[float]


# ----------------------------------------------------------------------------------------------
# Dispatch
# ----------------------------------------------------------------------------------------------
def _import_kernels() -> tuple[ModuleType, ModuleType, ModuleType]:
    return (
        importlib.import_module("fastpath._preprocess"),
        importlib.import_module("fastpath._compare"),
        importlib.import_module("fastpath._decode"),
    )


def set_implementation(name: str) -> None:
    """Choose the kernels: ``"auto"`` | ``"cython"`` | ``"python"``.

    ``"cython"`` raises ``ImportError`` when the compiled extensions are missing (build with
    ``pip install -e . --no-build-isolation``); ``"auto"`` then silently uses Python.
    """
    global _kernels
    _plans.clear()
    if name not in _IMPLEMENTATIONS:
        raise ValueError(f"implementation must be one of {_IMPLEMENTATIONS}, got {name!r}")
    if name == "python":
        _kernels = None
        return
    try:
        _kernels = _import_kernels()
    except ImportError as exc:
        if name == "cython":
            raise ImportError(
                "fastpath Cython kernels are not built: run "
                "`pip install -e . --no-build-isolation` (needs Cython and a C compiler)"
            ) from exc
        _kernels = None


def implementation() -> str:
    """The implementation actually in use: ``"cython"`` or ``"python"``."""
    return "python" if _kernels is None else "cython"


set_implementation("auto")


_SIMD_NAMES = ("c", "sse2", "avx2")


def simd_level() -> str:
    """The SIMD loops the Cython kernels use: ``"avx2"``, ``"sse2"`` or ``"c"`` (``"none"`` when
    the NumPy reference is in use). Chosen at run time from the CPU; the build is portable."""
    if _kernels is None:
        return "none"
    return _SIMD_NAMES[int(_kernels[0].simd_level())]


def set_simd_level(name: str | None) -> str:
    """Cap the SIMD level (``"avx2"``, ``"sse2"``, ``"c"``; ``None`` = the best the CPU has), for
    tests and benchmarks. Returns the level in use afterwards."""
    if name is not None and name not in _SIMD_NAMES:
        raise ValueError(f"SIMD level must be one of {_SIMD_NAMES} or None, got {name!r}")
    level = -1 if name is None else _SIMD_NAMES.index(name)
    got = [int(importlib.import_module(m).set_simd_level(level)) for m in ("fastpath._preprocess", "fastpath._compare")]
    return _SIMD_NAMES[min(got)]


# ----------------------------------------------------------------------------------------------
# Validation helpers
# ----------------------------------------------------------------------------------------------
def _check_image(img: Any, name: str = "img") -> npt.NDArray[np.uint8]:
    if not isinstance(img, np.ndarray):
        raise ValueError(f"{name} must be a numpy array, got {type(img).__name__}")
    if img.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8, got {img.dtype}")
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"{name} must be HxWx3 (3-channel), got shape {img.shape}")
    if img.shape[0] < 1 or img.shape[1] < 1:
        raise ValueError(f"{name} is empty: shape {img.shape}")
    if not img.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous (use np.ascontiguousarray)")
    return img


def _check_size(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _triple(value: ChannelValue, name: str) -> tuple[float, float, float]:
    if isinstance(value, int | float | np.integer | np.floating):
        vals: tuple[float, ...] = (float(value),) * 3
    else:
        try:
            vals = tuple(float(v) for v in value)
        except TypeError as exc:
            raise ValueError(f"{name} must be a number or 3 numbers, got {value!r}") from exc
        if len(vals) != 3:
            raise ValueError(f"{name} must be a number or 3 numbers, got {len(vals)} values")
    if not all(math.isfinite(v) for v in vals):
        raise ValueError(f"{name} must be finite, got {vals}")
    return vals[0], vals[1], vals[2]


def _pixel(value: ChannelValue, name: str) -> tuple[float, float, float]:
    vals = _triple(value, name)
    if not all(0.0 <= v <= 255.0 for v in vals):
        raise ValueError(f"{name} must be pixel values in 0..255, got {vals}")
    return vals


def _out_buffer(out: Any, out_h: int, out_w: int) -> npt.NDArray[np.float32]:
    if out is None:
        return np.empty((1, 3, out_h, out_w), dtype=np.float32)
    if not isinstance(out, np.ndarray) or out.dtype != np.float32:
        raise ValueError("out must be a float32 numpy array")
    if out.shape != (1, 3, out_h, out_w):
        raise ValueError(f"out must have shape {(1, 3, out_h, out_w)}, got {out.shape}")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError("out must be C-contiguous and writeable")
    return out


def _affine_terms(mean: tuple[float, float, float], scale: tuple[float, float, float]) -> tuple[float, ...]:
    """(x - mean) * scale = x * mul + add, per output channel."""
    return (*scale, *(-m * s for m, s in zip(mean, scale, strict=True)))


# ----------------------------------------------------------------------------------------------
# Preprocessing
# ----------------------------------------------------------------------------------------------
def letterbox_chw(
    img: npt.NDArray[np.uint8],
    out_h: int,
    out_w: int,
    *,
    mode: Mode = "letterbox",
    swap_rb: bool = False,
    mean: ChannelValue = 0.0,
    scale: ChannelValue = 1.0,
    pad: ChannelValue = 114,
    out: npt.NDArray[np.float32] | None = None,
    interpolation: Interpolation = "linear",
) -> tuple[npt.NDArray[np.float32], Transform]:
    """Frame → network input in one fused pass.

    ``img`` uint8 HxWx3 C-contiguous (BGR as OpenCV gives it). Bilinear resize (OpenCV
    ``INTER_LINEAR`` geometry), optional BGR→RGB swap, ``(x - mean) * scale`` (per output channel,
    i.e. after the swap; scalars or 3 values), HWC→CHW into float32 ``(1, 3, out_h, out_w)``.

    ``mode``: ``"letterbox"`` keeps the aspect ratio, centred, border = ``pad`` (pixel value(s) in
    source channel order, before mean/scale); ``"stretch"`` resizes to exactly the output size;
    ``"cover"`` centre-crops to the output aspect first (MaixPy FIT_COVER); ``"topleft"`` is a
    letterbox placed at the top-left corner (border right and bottom only, as OpenCV's face
    detector samples do). ``interpolation``: ``"linear"`` (bilinear) or ``"area"`` (OpenCV
    ``INTER_AREA`` when shrinking: the mean of the covered source pixels; bilinear when enlarging).
    ``out`` may be a reusable buffer. Returns the tensor and the :class:`Transform` (model ↔ frame
    coordinates).
    """
    if _kernels is not None and type(img) is np.ndarray and type(out_h) is int and type(out_w) is int:
        # hot path: a plan built (and validated) for exactly these arguments before
        try:
            entry = _plans.get((img.shape, img.dtype, out_h, out_w, mode, swap_rb, mean, scale, pad, interpolation))
        except TypeError:  # unhashable mean/scale/pad (lists): the slow path
            entry = None
        if entry is not None and img.flags.c_contiguous:
            buf = np.empty((1, 3, out_h, out_w), np.float32) if out is None else _out_buffer(out, out_h, out_w)
            entry[0].run(img, buf[0])
            return buf, entry[1]
    _check_image(img)
    out_h = _check_size(out_h, "out_h")
    out_w = _check_size(out_w, "out_w")
    if mode not in ("letterbox", "stretch", "cover", "topleft"):
        raise ValueError(f"mode must be 'letterbox', 'stretch', 'cover' or 'topleft', got {mode!r}")
    if interpolation not in ("linear", "area"):
        raise ValueError(f"interpolation must be 'linear' or 'area', got {interpolation!r}")
    mean3, scale3, pad3 = _triple(mean, "mean"), _triple(scale, "scale"), _pixel(pad, "pad")
    buf = _out_buffer(out, out_h, out_w)
    if _kernels is None:
        tr = ref.letterbox_chw(
            img,
            out_h,
            out_w,
            mode,
            bool(swap_rb),
            np.array(mean3, np.float32),
            np.array(scale3, np.float32),
            np.array(pad3, np.float32),
            buf,
            interpolation,
        )
        return buf, tr
    plan = ref.letterbox_plan(img.shape[0], img.shape[1], out_h, out_w, mode, interpolation)
    fill_src = pad3[::-1] if swap_rb else pad3
    fill = tuple((p - m) * s for p, m, s in zip(fill_src, mean3, scale3, strict=True))
    affine = _affine_terms(mean3, scale3)
    xi, xlo, xhi = plan.xkernel
    resampler = _kernels[0].Resampler(
        img.shape[0], img.shape[1], out_h, out_w, xi, plan.xtaps[1], *plan.ytaps,
        plan.pad_x, plan.pad_y, xlo, xhi, bool(swap_rb), affine[:3], affine[3:], fill, pad3,
    )  # fmt: skip
    try:
        key = (img.shape, img.dtype, out_h, out_w, mode, swap_rb, mean, scale, pad, interpolation)
        if len(_plans) >= _MAX_PLANS:
            _plans.clear()
        _plans[key] = (resampler, plan.transform)
    except TypeError:
        pass
    resampler.run(img, buf[0])
    return buf, plan.transform


def resample_kind(
    img_shape: tuple[int, ...],
    out_h: int,
    out_w: int,
    mode: Mode = "letterbox",
    interpolation: Interpolation = "linear",
) -> str:
    """Which Cython loop :func:`letterbox_chw` uses for this geometry: ``"half"`` (exact 2:1),
    ``"copy"`` (1:1) or ``"general"`` (for benchmarks and tests; needs the Cython kernels)."""
    if _kernels is None:
        raise RuntimeError("the Cython kernels are not in use")
    h, w = int(img_shape[0]), int(img_shape[1])
    plan = ref.letterbox_plan(h, w, out_h, out_w, mode, interpolation)
    xi, xlo, xhi = plan.xkernel
    z = (0.0, 0.0, 0.0)
    r = _kernels[0].Resampler(
        h, w, out_h, out_w, xi, plan.xtaps[1], *plan.ytaps, plan.pad_x, plan.pad_y, xlo, xhi, False, z, z, z, z
    )
    return str(r.kind)


def _frame_mean(img: npt.NDArray[np.uint8]) -> tuple[float, float, float]:
    """Per-channel mean colour (source order)."""
    if _kernels is None:
        sums = img.reshape(-1, 3).sum(axis=0, dtype=np.float64)
    else:
        sums = np.empty(3, np.float64)
        _kernels[0].channel_sums(img, sums)
    n = img.shape[0] * img.shape[1]
    return float(sums[0]) / n, float(sums[1]) / n, float(sums[2]) / n


def crop_resize(
    img: npt.NDArray[np.uint8],
    cx: float,
    cy: float,
    side_w: float,
    side_h: float,
    out_w: int,
    out_h: int,
    *,
    border: ChannelValue | None = None,
    swap_rb: bool = False,
    mean: ChannelValue = 0.0,
    scale: ChannelValue = 1.0,
) -> npt.NDArray[np.float32]:
    """Sample the ``side_w`` x ``side_h`` window centred on ``(cx, cy)`` onto ``out_w`` x ``out_h``
    (bilinear), swap/mean/scale, CHW float32 ``(1, 3, out_h, out_w)``.

    Continuous coordinates (pixel ``i`` covers ``[i, i + 1)``, so a box ``(x, y, w, h)`` is centred
    on ``(x + w/2, y + h/2)``); the window is exact to the sub-pixel (corner and size are not
    rounded) and may reach outside the frame, where pixels are ``border`` (source channel order;
    ``None`` = the frame's per-channel mean). This is the NanoTrack / SiamRPN ``get_subwindow``
    (template 127, search 255) without its integer window (see ``_reference.crop_plan``).
    """
    _check_image(img)
    out_h = _check_size(out_h, "out_h")
    out_w = _check_size(out_w, "out_w")
    vals = (cx, cy, side_w, side_h)
    if not all(isinstance(v, int | float | np.integer | np.floating) for v in vals):
        raise ValueError(f"cx, cy, side_w, side_h must be numbers, got {vals!r}")
    if not all(math.isfinite(float(v)) for v in vals):
        raise ValueError(f"cx, cy, side_w, side_h must be finite, got {vals!r}")
    if side_w <= 0 or side_h <= 0:
        raise ValueError(f"side_w and side_h must be > 0, got {side_w!r}, {side_h!r}")
    border3 = _frame_mean(img) if border is None else _pixel(border, "border")
    mean3, scale3 = _triple(mean, "mean"), _triple(scale, "scale")
    if _kernels is None:
        plan = ref.crop_plan(
            img.shape[0], img.shape[1], float(cx), float(cy), float(side_w), float(side_h), out_w, out_h
        )
        return ref.crop_resize(
            img,
            plan,
            np.array(border3, np.float32),
            bool(swap_rb),
            np.array(mean3, np.float32),
            np.array(scale3, np.float32),
        )
    sw, sh = float(side_w), float(side_h)
    buf = np.empty((1, 3, out_h, out_w), dtype=np.float32)
    _kernels[0].crop_chw(
        img, buf[0], float(cx) - sw / 2.0, sw / out_w, float(cy) - sh / 2.0, sh / out_h, bool(swap_rb),
        *_affine_terms(mean3, scale3), *border3,
    )  # fmt: skip
    return buf


def warp_affine_chw(
    img: npt.NDArray[np.uint8],
    M: npt.ArrayLike,
    out_w: int,
    out_h: int,
    *,
    swap_rb: bool = False,
    mean: ChannelValue = 0.0,
    scale: ChannelValue = 1.0,
    border: ChannelValue = 0,
) -> npt.NDArray[np.float32]:
    """``cv2.warpAffine(img, M, (out_w, out_h), INTER_LINEAR, BORDER_CONSTANT=border)`` fused
    with swap/mean/scale and HWC→CHW, float32 ``(1, 3, out_h, out_w)``. ``M`` (2x3) maps frame
    pixels to output pixels, as for OpenCV (e.g. the 5-point face alignment matrix)."""
    _check_image(img)
    out_h = _check_size(out_h, "out_h")
    out_w = _check_size(out_w, "out_w")
    m = np.asarray(M, dtype=np.float64)
    if m.shape != (2, 3):
        raise ValueError(f"M must be a 2x3 affine matrix, got shape {m.shape}")
    if not np.isfinite(m).all():
        raise ValueError("M must be finite")
    det = m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0]
    if abs(det) < 1e-12:
        raise ValueError("M is singular (not invertible)")
    border3 = _pixel(border, "border")
    mean3, scale3 = _triple(mean, "mean"), _triple(scale, "scale")
    if _kernels is None:
        return ref.warp_affine_chw(
            img,
            m,
            out_w,
            out_h,
            bool(swap_rb),
            np.array(mean3, np.float32),
            np.array(scale3, np.float32),
            np.array(border3, np.float32),
        )
    a, b, c, d = m[0, 0] / det, m[0, 1] / det, m[1, 0] / det, m[1, 1] / det
    tx, ty = m[0, 2], m[1, 2]
    inv = (d, -b, -(d * tx - b * ty), -c, a, -(-c * tx + a * ty))
    buf = np.empty((1, 3, out_h, out_w), dtype=np.float32)
    _kernels[0].warp_affine_chw(img, buf[0], *inv, bool(swap_rb), *_affine_terms(mean3, scale3), *border3)
    return buf


# ----------------------------------------------------------------------------------------------
# Face alignment
# ----------------------------------------------------------------------------------------------
_F64 = np.dtype(np.float64)
_MAX_POINTS = 16  # the kernel's landmark buffers


def _xy_points(a: Any, name: str, n: int | None = None) -> npt.NDArray[np.float64]:
    arr = np.asarray(a)
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"{name} must be numeric, got {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2 or not 1 <= arr.shape[0] <= _MAX_POINTS:
        raise ValueError(f"{name} must be (N, 2) points with 1 <= N <= {_MAX_POINTS}, got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} must hold as many points as the template ({n}), got {arr.shape[0]}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite, got {arr.tolist()}")
    return arr


def similarity(src: npt.ArrayLike, dst: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """The 2x3 float64 similarity (rotation, uniform scale, translation, no reflection) that maps
    ``src`` (N, 2) onto ``dst`` (N, 2) best in least squares (Umeyama's closed form; spec:
    :func:`fastpath._reference.similarity`, bit for bit). 1 <= N <= 16 finite points."""
    if _kernels is not None:
        hot = _kernels[0].similarity(src, dst)
        if type(hot) is np.ndarray:
            return hot
    d = _xy_points(dst, "dst")
    s = _xy_points(src, "src", d.shape[0])
    if _kernels is None:
        return np.array(ref.similarity(s.tolist(), d.tolist()), dtype=np.float64).reshape(2, 3)
    m: npt.NDArray[np.float64] = _kernels[0].similarity(s, d)
    return m


def align_face(
    frame: npt.NDArray[np.uint8],
    points: npt.ArrayLike,
    template: npt.ArrayLike,
    size: int,
    *,
    swap_rb: bool = False,
    mean: ChannelValue = 0.0,
    scale: ChannelValue = 1.0,
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32]]:
    """A face aligned onto a template in one pass: ``(crop, blob)``.

    The :func:`similarity` of ``points`` (N, 2 frame pixels, e.g. a detector's 5 landmarks) onto
    ``template`` (N, 2, in crop pixels), then ``frame`` (uint8 HxWx3, C-contiguous) warped through
    it bilinearly into ``crop`` (uint8 (size, size, 3), the frame's channel order) and ``blob``
    (float32 (1, 3, size, size)): ``(crop - mean) * scale`` per output channel, after the R/B swap
    when ``swap_rb`` (exactly the crop converted). Geometry as ``cv2.warpAffine(frame, M,
    (size, size), INTER_LINEAR, BORDER_CONSTANT 0)``: output pixel ``(x, y)`` samples the frame
    at ``M⁻¹·(x, y)``, positions rounded to 1/256 px, taps outside the frame count as 0, bytes
    rounded half up (spec: :func:`fastpath._reference.align_face`; the crop is within 1 grey
    level of OpenCV's on real faces). Raises ``ValueError`` for non-finite values or a
    degenerate fit (singular, or the crop's corners mapped beyond 2^24 frame pixels).

    A C-contiguous float32/float64 ``points`` array, a float64 ``template`` array and float (or
    3-float tuple) ``mean``/``scale`` take one C call; anything else is validated and converted.
    """
    crop, blob = _align(frame, points, template, size, swap_rb, mean, scale, True)
    assert blob is not None
    return crop, blob


def align_crop(
    frame: npt.NDArray[np.uint8], points: npt.ArrayLike, template: npt.ArrayLike, size: int
) -> npt.NDArray[np.uint8]:
    """The crop of :func:`align_face` alone (no blob computed)."""
    return _align(frame, points, template, size, False, 0.0, 1.0, False)[0]


def _align(
    frame: npt.NDArray[np.uint8],
    points: npt.ArrayLike,
    template: npt.ArrayLike,
    size: int,
    swap_rb: bool,
    mean: ChannelValue,
    scale: ChannelValue,
    with_blob: bool,
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32] | None]:
    if _kernels is not None and type(size) is int:
        hot = _kernels[0].align_face(frame, points, template, size, bool(swap_rb), mean, scale, with_blob)
        if type(hot) is tuple:
            return hot
        if hot is not None:
            _align_refused(int(hot), points)
    _check_image(frame, "frame")
    size = _check_size(size, "size")
    t = _xy_points(template, "template")
    p = _xy_points(points, "points", t.shape[0])
    mean3, scale3 = _triple(mean, "mean"), _triple(scale, "scale")
    if _kernels is None:
        done = ref.align_face(
            frame, p.tolist(), t.tolist(), size, bool(swap_rb), np.array(mean3, np.float32),
            np.array(scale3, np.float32), with_blob,
        )  # fmt: skip
        if done is None:
            _align_refused(2, points)
        return done
    got = _kernels[0].align_face(frame, p, t, size, bool(swap_rb), mean3, scale3, with_blob)
    if type(got) is not tuple:
        _align_refused(int(got), points)
    out: tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32] | None] = got
    return out


def _align_refused(status: int, points: Any) -> NoReturn:
    if status == 1:
        raise ValueError(f"points and template must be finite, got points {np.asarray(points).tolist()}")
    raise ValueError(
        "the landmarks give a degenerate alignment (singular, or the crop maps beyond 2^24 frame "
        f"pixels): points {np.asarray(points).tolist()}"
    )


# ----------------------------------------------------------------------------------------------
# Image statistics
# ----------------------------------------------------------------------------------------------
_UINT8 = np.dtype(np.uint8)


def crop_stats(img: npt.NDArray[np.uint8]) -> tuple[float, float]:
    """Focus and colour of an image in one pass: ``(sharpness, chroma)``.

    ``img``: uint8 HxWx3 (BGR) or HxW / HxWx1 (grey), H, W >= 1, any strides (a view such as
    the centre of a crop is read in place, not copied). ``sharpness`` is the population variance
    of the Laplacian of the grey image: ``cv2.cvtColor(img, COLOR_BGR2GRAY)`` then
    ``cv2.Laplacian(grey, CV_32F)`` (ksize 1, ``BORDER_REFLECT_101``), summed in exact integers
    (``cv2.meanStdDev``'s standard deviation squared agrees to ~1e-16); ``chroma`` the mean of
    ``max(B,G,R) - min(B,G,R)`` over the pixels (0.0 for grey). Both are correctly rounded
    ratios. Spec: :func:`fastpath._reference.crop_stats`.
    """
    if _kernels is not None and type(img) is np.ndarray and img.dtype is _UINT8 and img.ndim == 3:
        # hot path: a BGR crop (its centre is a strided view, read in place)
        h, w, c = img.shape
        if c == 3 and h and w:
            hot: tuple[float, float] = _kernels[0].crop_stats(img)
            return hot
    if not isinstance(img, np.ndarray):
        raise ValueError(f"img must be a numpy array, got {type(img).__name__}")
    if img.dtype != _UINT8:
        raise ValueError(f"img must be uint8, got {img.dtype}")
    shape = img.shape
    if len(shape) == 2:
        img = img[:, :, None]
    elif len(shape) != 3 or (shape[2] != 3 and shape[2] != 1):
        raise ValueError(f"img must be HxW, HxWx1 (grey) or HxWx3 (BGR), got shape {shape}")
    if shape[0] < 1 or shape[1] < 1:
        raise ValueError(f"img is empty: shape {shape}")
    if _kernels is None:
        return ref.crop_stats(img)
    stats: tuple[float, float] = _kernels[0].crop_stats(img)
    return stats


# ----------------------------------------------------------------------------------------------
# Bank search
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, eq=False)
class Bank:
    """An immutable embedding bank built by :func:`make_bank`.

    ``data`` is (N, D): raw float32 / float16 rows, or for int8 the L2-normalised rows quantised
    per row (``row / |row| ≈ data[i] * scales[i]``). ``norms`` are the original row norms.
    """

    data: npt.NDArray[Any]
    dtype: BankDType
    norms: npt.NDArray[np.float32]
    inv_norms: npt.NDArray[np.float32]
    scales: npt.NDArray[np.float32] | None
    handle: Any = field(default=None, repr=False, compare=False)  # the Cython kernel's view, when built

    @property
    def n(self) -> int:
        return int(self.data.shape[0])

    @property
    def dim(self) -> int:
        return int(self.data.shape[1])

    def __len__(self) -> int:
        return self.n


def make_bank(vectors: npt.ArrayLike, dtype: BankDType = "float32") -> Bank:
    """Build a :class:`Bank` from (N, D) vectors (N may be 0). ``dtype``: ``"float32"``,
    ``"float16"`` or ``"int8"`` (symmetric per-row quantisation of the L2-normalised rows)."""
    if dtype not in ("float32", "float16", "int8"):
        raise ValueError(f"dtype must be 'float32', 'float16' or 'int8', got {dtype!r}")
    v = np.asarray(vectors)
    if v.ndim != 2 or v.shape[1] < 1:
        raise ValueError(f"vectors must be (N, D) with D >= 1, got shape {v.shape}")
    if v.dtype.kind not in "fiu":
        raise ValueError(f"vectors must be numeric, got {v.dtype}")
    v = np.ascontiguousarray(v, dtype=np.float32)
    if not np.isfinite(v).all():
        raise ValueError("vectors must be finite")
    inv = ref.inv_norms(v)
    norms = np.sqrt(np.einsum("ij,ij->i", v, v, dtype=np.float64)).astype(np.float32)
    scales: npt.NDArray[np.float32] | None = None
    data: npt.NDArray[Any]
    if dtype == "float32":
        data = v.copy()
    elif dtype == "float16":
        if np.abs(v).max(initial=0.0) > 65504.0:
            raise ValueError("vectors exceed the float16 range (|v| > 65504)")
        data = v.astype(np.float16)
        norms = np.sqrt(np.einsum("ij,ij->i", data.astype(np.float32), data.astype(np.float32))).astype(np.float32)
        inv = ref.inv_norms(data.astype(np.float32))
    else:
        data, scales = ref.quantise_int8(v * inv[:, None])
    for arr in (data, norms, inv, scales):
        if arr is not None:
            arr.flags.writeable = False
    handle = None
    if _kernels is not None:
        raw = data.view(np.uint16) if dtype == "float16" else data
        handle = _kernels[1].BankHandle(raw, _BANK_KINDS[dtype], inv, norms, scales)
    return Bank(data, dtype, norms, inv, scales, handle)


_BANK_KINDS = {"float32": 0, "float16": 1, "int8": 2}


def bank_search(
    query: npt.ArrayLike, bank: Bank, k: int = 1, metric: Metric = "cosine"
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Top-``k`` bank entries per query: ``(indices int64 (Q, k'), scores float32 (Q, k'))``
    with ``k' = min(k, N)``. ``query`` is (D,) or (Q, D). ``"cosine"``: similarity, highest
    first; ``"l2"``: Euclidean distance, smallest first. Ties keep the lower index."""
    if type(bank) is Bank and bank.handle is not None and type(k) is int and (metric == "cosine" or metric == "l2"):
        # hot path: one C-contiguous float32 query (a face embedding), checked by the kernel
        found: tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]] | None = bank.handle.search1(
            query, k, metric == "cosine"
        )
        if found is not None:
            return found
    if not isinstance(bank, Bank):
        raise ValueError(f"bank must be a fastpath.Bank (see make_bank), got {type(bank).__name__}")
    if metric not in ("cosine", "l2"):
        raise ValueError(f"metric must be 'cosine' or 'l2', got {metric!r}")
    if type(k) is not int and (isinstance(k, bool) or not isinstance(k, int | np.integer)):
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    q = query if type(query) is np.ndarray else np.asarray(query)
    if q.dtype.kind not in "fiu":
        raise ValueError(f"query must be numeric, got {q.dtype}")
    if q.ndim == 1:
        q = q[None, :]
    if q.ndim != 2 or q.shape[1] != bank.dim:
        raise ValueError(f"query must be (D,) or (Q, D) with D = {bank.dim}, got {q.shape}")
    if q.dtype != np.float32 or not q.flags.c_contiguous:
        q = np.ascontiguousarray(q, dtype=np.float32)
    kk = min(int(k), bank.n)
    if kk == 0 or q.shape[0] == 0:
        if not np.isfinite(q).all():
            raise ValueError("query must be finite")
        return np.empty((q.shape[0], kk), np.int64), np.empty((q.shape[0], kk), np.float32)
    if _kernels is None:
        if not np.isfinite(q).all():
            raise ValueError("query must be finite")
        scores = ref.bank_scores(bank.data, bank.dtype, bank.norms, bank.scales, q, metric)
        return ref.top_k(scores, kk, metric)
    # the kernel checks finiteness itself (ValueError "query must be finite")
    data = bank.data.view(np.uint16) if bank.dtype == "float16" else bank.data
    idx, out = _kernels[1].search(
        data, _BANK_KINDS[bank.dtype], bank.inv_norms, bank.norms, bank.scales, q, kk, metric == "cosine"
    )
    return idx, out


_STARTS_SPLIT = "starts must begin at 0 and increase strictly below N (one non-empty run of rows per label)"


def label_scores(
    grouped: npt.NDArray[np.float32], starts: npt.NDArray[np.int64], embedding: npt.ArrayLike
) -> tuple[npt.NDArray[np.float32], int, float, float | None]:
    """One embedding against a bank grouped by label, in one pass (spec:
    :func:`fastpath._reference.label_scores`): ``(scores float32 (L,), best, similarity, lead)``.

    ``grouped`` float32 (N, D) rows, label ``l`` owning rows ``starts[l]`` up to the next start
    (the last up to N); ``starts`` int64 (L,), beginning at 0 and increasing strictly below N
    (L = 0 when N = 0); both C-contiguous numpy arrays, prepared once (a face bank's). A label's
    score is ``0.5 + 0.5 * max`` of its rows' dot products with ``embedding`` (float32; NaN if
    one is NaN); ``best`` the ``np.argmax`` of the scores (first of ties, first NaN; -1 when
    L = 0), ``similarity`` its score (0.0 when L = 0), ``lead`` how far it scores above the best
    other label (float32; NaN once a score is NaN; ``None`` when L < 2). ``embedding``: D values;
    a C-contiguous float32 (D,) array is used as it is, anything else (another dtype or layout,
    (1, D)) converted. Dot products are summed in another order than BLAS's: scores may differ
    from ``grouped @ embedding``'s in the last bits.

    The hot path is one C call that checks the arrays with NumPy's C macros (it runs per face
    right after a model run, when every Python-level check costs microseconds); anything it does
    not take comes back here to be validated, converted or refused with a clear message.
    """
    if _kernels is not None:
        found: tuple[npt.NDArray[np.float32], int, float, float | None] | None = _kernels[1].label_scores(
            grouped, starts, embedding
        )
        if found is not None:
            return found
    if (
        type(grouped) is not np.ndarray
        or grouped.dtype != np.float32
        or grouped.ndim != 2
        or grouped.shape[1] < 1
        or not (grouped.flags.c_contiguous and grouped.flags.aligned)
    ):
        raise ValueError("grouped must be a C-contiguous float32 (N, D) numpy array with D >= 1")
    if (
        type(starts) is not np.ndarray
        or starts.dtype != np.int64
        or starts.ndim != 1
        or not (starts.flags.c_contiguous and starts.flags.aligned)
    ):
        raise ValueError("starts must be a C-contiguous int64 (L,) numpy array")
    q = np.asarray(embedding)
    if q.dtype.kind not in "fiu":
        raise ValueError(f"embedding must be numeric, got {q.dtype}")
    if q.size != grouped.shape[1]:
        raise ValueError(f"embedding must hold D = {grouped.shape[1]} values like the rows, got shape {q.shape}")
    q = np.require(q, np.float32, ["C", "A", "E"]).reshape(-1)  # C-contiguous, aligned, native
    if _kernels is None:
        n, nl = grouped.shape[0], starts.shape[0]
        runs = nl > 0 and starts[0] == 0 and starts[-1] < n and bool((np.diff(starts) > 0).all())
        if not (nl == 0 if n == 0 else runs):
            raise ValueError(_STARTS_SPLIT)
        return ref.label_scores(grouped, starts, q)
    found = _kernels[1].label_scores(grouped, starts, q)
    if found is None:  # the arrays are as the kernel takes them: it refused the runs
        raise ValueError(_STARTS_SPLIT)
    return found


def l2_normalise(x: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """``x / |x|`` as a new float32 (D,) vector, ``x`` flattened (an embedder's output, e.g.
    (1, 128)); a copy of ``x`` when ``|x|`` is 0 or NaN (a garbage output stays garbage, it is not
    refused). ``|x|`` is a float32 dot product, as ``np.dot`` (spec:
    :func:`fastpath._reference.l2_normalise`); the result may differ from NumPy's in the last bit.
    A C-contiguous float32 array takes one C call, anything else is converted first.
    """
    if _kernels is not None:
        out: npt.NDArray[np.float32] | None = _kernels[1].l2_normalise(x)
        if out is not None:
            return out
    v = np.asarray(x)
    if v.dtype.kind not in "fiu":
        raise ValueError(f"x must be numeric, got {v.dtype}")
    v = np.require(v, np.float32, ["C", "A", "E"])
    if _kernels is None:
        return ref.l2_normalise(v)
    done: npt.NDArray[np.float32] = _kernels[1].l2_normalise(v)
    return done


# ----------------------------------------------------------------------------------------------
# Decoding
# ----------------------------------------------------------------------------------------------
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
    """A Siamese tracker's pick from its head outputs, in one pass (spec:
    :func:`fastpath._reference.siamese_decode`): ``cls`` float32 (2, N) logits, ``loc`` float32
    (4, N) l, t, r, b; ``px``/``py`` float64 (N,) points; ``window`` float64 (N,) pre-weighted
    Hanning window or None; ``sw``/``sh`` (> 0) the last size in search-crop pixels. Returns
    (index, score, penalty, cx, cy, pw, ph)."""
    for name, a, rows, dtype in (("cls", cls, 2, np.float32), ("loc", loc, 4, np.float32)):
        if type(a) is not np.ndarray or a.dtype != dtype or a.ndim != 2 or a.shape[0] != rows:
            raise ValueError(f"{name} must be a float32 ({rows}, N) array")
    n = cls.shape[1]
    if n < 1 or loc.shape[1] != n:
        raise ValueError(f"cls and loc must have the same N >= 1 columns, got {cls.shape} and {loc.shape}")
    for name, v in (("px", px), ("py", py), ("window", window)):
        if (v is not None or name != "window") and (
            type(v) is not np.ndarray or v.dtype != np.float64 or v.shape != (n,)
        ):
            raise ValueError(f"{name} must be a float64 ({n},) array")
    consts = (sw, sh, penalty_k, window_influence)
    if not all(math.isfinite(float(c)) for c in consts) or sw <= 0 or sh <= 0:
        raise ValueError(f"sw, sh must be finite and > 0, penalty_k and window_influence finite, got {consts!r}")
    if _kernels is None:
        consts = (float(sw), float(sh), float(penalty_k), float(window_influence))
        return ref.siamese_decode(cls, loc, px, py, window, *consts)
    best: tuple[int, float, float, float, float, float, float] = _kernels[2].siamese_decode(
        np.ascontiguousarray(cls), np.ascontiguousarray(loc), np.ascontiguousarray(px), np.ascontiguousarray(py),
        px if window is None else np.ascontiguousarray(window), window is not None,
        float(sw), float(sh), float(penalty_k), float(window_influence),
    )  # fmt: skip
    return best


def window_cosine(feat: npt.NDArray[np.float32], unit: npt.NDArray[np.float32], x: float, y: float, k: int) -> float:
    """Cosine of the bilinear ``k x k`` window at the fractional top-left ``(x, y)`` of ``feat``
    (float32 (C, N, N)) with ``unit`` (float32, C·k·k values): a Siamese tracker's template check
    on its search features. ``x``/``y`` must lie in ``[0, N - k]``. Spec:
    :func:`fastpath._reference.window_cosine`."""
    if type(feat) is not np.ndarray or feat.dtype != np.float32 or feat.ndim != 3 or feat.shape[1] != feat.shape[2]:
        raise ValueError("feat must be a float32 (C, N, N) array")
    ch, n = feat.shape[0], feat.shape[1]
    k = int(k)
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, {n}], got {k}")
    if type(unit) is not np.ndarray or unit.dtype != np.float32 or unit.shape != (ch * k * k,):
        raise ValueError(f"unit must be a float32 ({ch * k * k},) array")
    x, y = float(x), float(y)
    if not (0.0 <= x <= n - k and 0.0 <= y <= n - k):
        raise ValueError(f"window position ({x}, {y}) must lie in [0, {n - k}]")
    ix, iy = min(int(x), n - k), min(int(y), n - k)
    ax, ay = x - ix, y - iy
    if _kernels is None:
        return ref.window_cosine(feat, unit, ix, iy, ax, ay, k)
    return float(_kernels[2].window_cosine(np.ascontiguousarray(feat), np.ascontiguousarray(unit), ix, iy, ax, ay, k))


def nms(
    boxes: npt.ArrayLike,
    scores: npt.ArrayLike,
    iou_th: float,
    *,
    max_keep: int | None = None,
    classes: npt.ArrayLike | None = None,
) -> npt.NDArray[np.int64]:
    """Greedy non-maximum suppression (spec: :func:`fastpath._reference.nms`): ``boxes`` (N, 4)
    x1, y1, x2, y2, ``scores`` (N,); a kept box drops the later ones (by score) of its class
    (``classes`` (N,) integers; None = all one class) whose IoU with it exceeds ``iou_th``.
    At most ``max_keep`` kept (None: no limit). Returns the kept indices, best first."""
    b = np.ascontiguousarray(boxes, dtype=np.float32)
    sc = np.ascontiguousarray(scores, dtype=np.float32)
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"boxes must be (N, 4), got {b.shape}")
    if sc.shape != (b.shape[0],):
        raise ValueError(f"scores must be ({b.shape[0]},), got {sc.shape}")
    th = float(iou_th)
    if not math.isfinite(th):
        raise ValueError(f"iou_th must be finite, got {iou_th!r}")
    keep_n = b.shape[0] if max_keep is None else int(max_keep)
    if keep_n < 0:
        raise ValueError(f"max_keep must be >= 0, got {max_keep!r}")
    cls = None if classes is None else np.ascontiguousarray(classes, dtype=np.int64)
    if cls is not None and cls.shape != (b.shape[0],):
        raise ValueError(f"classes must be ({b.shape[0]},), got {cls.shape}")
    if _kernels is None or not np.isfinite(b).all():  # NaN/inf boxes: the spec's own semantics
        return ref.nms(b, sc, th, keep_n, cls)
    order = np.argsort(-sc, kind="stable")
    kept: npt.NDArray[np.int64] = _kernels[2].nms(b, order, order if cls is None else cls, cls is not None, th, keep_n)
    return kept


FaceArrays = tuple[npt.NDArray[np.float64], npt.NDArray[np.float32], npt.NDArray[np.float32]]
_F32 = np.dtype(np.float32)
_MAX_KEEP = 1 << 40  # a larger max_keep keeps as many (no frame has that many candidates)


def _face_args(
    iou_th: float, max_keep: int, scale: float, width: float, height: float
) -> tuple[float, int, float, float, float]:
    """The NMS and mapping arguments of :func:`nms_faces` / :func:`grid_faces`, checked; a
    ``max_keep`` beyond any count is clamped to one the kernels hold."""
    th, sc, w, h = float(iou_th), float(scale), float(width), float(height)
    if not math.isfinite(th):
        raise ValueError(f"iou_th must be finite, got {iou_th!r}")
    if type(max_keep) is not int or max_keep < 0:
        raise ValueError(f"max_keep must be an int >= 0, got {max_keep!r}")
    if not (math.isfinite(sc) and sc > 0):
        raise ValueError(f"scale must be finite and > 0, got {scale!r}")
    if not (math.isfinite(w) and math.isfinite(h) and w >= 0 and h >= 0):
        raise ValueError(f"width and height must be finite and >= 0, got {width!r}, {height!r}")
    return th, min(max_keep, _MAX_KEEP), sc, w, h


def nms_faces(
    boxes: npt.ArrayLike,
    scores: npt.ArrayLike,
    points: npt.ArrayLike,
    iou_th: float,
    max_keep: int,
    scale: float,
    width: float,
    height: float,
) -> FaceArrays:
    """A face detector's candidates → its faces in frame pixels (spec:
    :func:`fastpath._reference.nms_faces`): ``boxes`` (N, 4) x1, y1, x2, y2, ``scores`` (N,),
    ``points`` (N, 5, 2) in model-input pixels; non-finite candidates dropped, greedy NMS
    (at most ``max_keep``), divided by ``scale`` and clipped to the ``width`` x ``height`` frame.
    Returns (boxes (K, 4) float64 x, y, w, h, scores (K,) float32, points (K, 5, 2) float32)."""
    b = np.ascontiguousarray(boxes, dtype=np.float32)
    sc = np.ascontiguousarray(scores, dtype=np.float32)
    n = sc.shape[0] if sc.ndim == 1 else -1
    if b.shape != (n, 4) or sc.ndim != 1:
        raise ValueError(f"boxes must be (N, 4) and scores (N,), got {b.shape} and {sc.shape}")
    p = np.ascontiguousarray(points, dtype=np.float32)
    if p.shape not in ((n, 5, 2), (n, 10)):
        raise ValueError(f"points must be ({n}, 5, 2), got {p.shape}")
    p = p.reshape(n, 10)
    th, keep, s, w, h = _face_args(iou_th, max_keep, scale, width, height)
    if _kernels is None:
        return ref.nms_faces(b, sc, p, th, keep, s, w, h)
    out: FaceArrays = _kernels[2].nms_faces(b, sc, p, th, keep, s, w, h)
    return out


def _grid_output(a: Any, width: int) -> npt.NDArray[np.float32]:
    """One grid output as float32 (1, N, width), C-contiguous (YuNet's own layout: no copy)."""
    if (
        type(a) is np.ndarray
        and a.dtype == _F32
        and a.ndim == 3
        and a.shape[0] == 1
        and a.shape[2] == width
        and a.flags.c_contiguous
    ):
        return a
    arr = np.ascontiguousarray(a, dtype=np.float32)
    if arr.size % width:
        raise ValueError(f"a grid output of {width} value(s) per cell has {arr.size} values")
    return arr.reshape(1, -1, width)


def grid_faces(
    levels: Sequence[tuple[Any, Any, Any, Any, int, float]],
    score_th: float,
    iou_th: float,
    max_keep: int,
    scale: float,
    width: float,
    height: float,
) -> FaceArrays:
    """An anchor-free face detector's grids (YuNet) → its faces in frame pixels, in one call
    (spec: :func:`fastpath._reference.grid_faces`): each level ``(cls, obj, bbox, kps, cols,
    stride)`` decoded as :func:`fastpath._reference.grid_decode` does (``cls``/``obj`` one value
    a cell, ``bbox`` 4, ``kps`` 10; YuNet's (1, N, k) outputs as they come), then
    :func:`nms_faces`.

    The hot path is one C call that checks its arguments with NumPy's C macros (it runs once a
    frame right after the model, when Python-level checks of twelve arrays cost tens of
    microseconds); whatever it does not take comes back here to be validated, converted or
    refused with a clear message."""
    if _kernels is not None:
        found: FaceArrays | None = _kernels[2].grid_faces(levels, score_th, iou_th, max_keep, scale, width, height)
        if found is not None:
            return found
    checked: list[GridLevel] = []
    for level in levels:
        if len(level) != 6:
            raise ValueError("a grid level is (cls, obj, bbox, kps, cols, stride)")
        c, o = _grid_output(level[0], 1), _grid_output(level[1], 1)
        b, k = _grid_output(level[2], 4), _grid_output(level[3], 10)
        n, cols, stride = c.shape[1], level[4], float(level[5])
        if o.shape[1] != n or b.shape[1] != n or k.shape[1] != n:
            cells = f"{n}, {o.shape[1]}, {b.shape[1]}, {k.shape[1]}"
            raise ValueError(f"cls, obj, bbox and kps must describe the same cells: {cells}")
        if type(cols) is not int or cols < 1 or n % cols:
            raise ValueError(f"cols must be an int >= 1 dividing the {n} cells, got {cols!r}")
        if not (math.isfinite(stride) and stride > 0):
            raise ValueError(f"stride must be finite and > 0, got {level[5]!r}")
        checked.append((c, o, b, k, cols, stride))
    if not math.isfinite(float(score_th)):
        raise ValueError(f"score_th must be finite, got {score_th!r}")
    th, keep, s, w, h = _face_args(iou_th, max_keep, scale, width, height)
    if _kernels is None:
        return ref.grid_faces(checked, float(score_th), th, keep, s, w, h)
    found = _kernels[2].grid_faces(tuple(checked), float(score_th), th, keep, s, w, h)
    if found is None:  # the checks above and the kernel's disagree: a bug here, not bad input
        raise RuntimeError("fastpath.grid_faces: the kernel refused arguments that passed validation")
    return found
