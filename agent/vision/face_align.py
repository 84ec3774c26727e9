"""5-point face alignment onto the ArcFace template and the embedder's input blob.

The similarity transform (rotation, uniform scale, translation) is the least-squares fit of
Umeyama (1991) from the detector's 5 landmarks to the template, as insightface and OpenCV's
``FaceRecognizerSF.alignCrop`` do; with 5 well-spread points a robust estimator (LMEDS) gains
nothing and is not deterministic for ties, so the closed form is used. :func:`align_blob` is the
embedder's input: the crop converted (swap/scale/CHW) by one fastpath pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import cv2
import numpy as np

import fastpath

ALIGN_SIZE = 112
# left eye, right eye, nose tip, left mouth corner, right mouth corner, for a 112x112 crop
ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float32,
)


@lru_cache(maxsize=8)
def _template_points(size: int) -> tuple[tuple[float, float], ...]:
    return tuple((float(x), float(y)) for x, y in ARCFACE_TEMPLATE.astype(np.float64) * (size / ALIGN_SIZE))


def template(size: int = ALIGN_SIZE) -> np.ndarray:
    """The ArcFace template scaled to a ``size`` x ``size`` crop."""
    return ARCFACE_TEMPLATE * (size / ALIGN_SIZE)


def similarity_transform(
    src: np.ndarray | Sequence[Sequence[float]], dst: np.ndarray | Sequence[Sequence[float]]
) -> np.ndarray:
    """2x3 matrix of the similarity transform that maps ``src`` (N,2) onto ``dst`` (N,2) best.

    Umeyama's least-squares similarity without reflection, in its 2-D closed form: with centred
    points, ``a = Σ(s·d) / Σ|s|²`` and ``b = Σ(s × d) / Σ|s|²`` give ``[[a, -b], [b, a]]`` (scale ·
    rotation), the same matrix the SVD form gives, an order of magnitude faster. Five points are
    summed in plain float64 arithmetic: NumPy's per-call cost on arrays this small was most of
    the alignment's time once a model run had emptied the caches.
    """
    s = np.asarray(src, dtype=np.float64).reshape(-1, 2).tolist()
    d = np.asarray(dst, dtype=np.float64).reshape(-1, 2).tolist() if isinstance(dst, np.ndarray) else list(dst)
    n = len(s)
    smx, smy = sum(p[0] for p in s) / n, sum(p[1] for p in s) / n
    dmx, dmy = sum(p[0] for p in d) / n, sum(p[1] for p in d) / n
    var = dot = cross = 0.0
    for (px, py), (qx, qy) in zip(s, d, strict=True):
        sx, sy, dx, dy = px - smx, py - smy, qx - dmx, qy - dmy
        var += sx * sx + sy * sy
        dot += sx * dx + sy * dy
        cross += sx * dy - sy * dx
    a, b = (dot / var, cross / var) if var > 0 else (1.0, 0.0)  # coinciding points: translation only
    return np.array([[a, -b, dmx - (a * smx - b * smy)], [b, a, dmy - (b * smx + a * smy)]], dtype=np.float64)


def align_face(frame: np.ndarray, points: np.ndarray, size: int = ALIGN_SIZE) -> np.ndarray:
    """Warp the face whose 5 landmarks are ``points`` (frame pixels) to a size x size BGR crop."""
    matrix = similarity_transform(points, _template_points(size))
    return cv2.warpAffine(frame, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def align_blob(
    frame: np.ndarray, points: np.ndarray, size: int, *, rgb: bool, mean: float = 0.0, scale: float = 1.0
) -> np.ndarray:
    """The aligned crop as an NCHW float32 blob (``(x - mean) * scale``, RGB when ``rgb``)."""
    crop = align_face(frame, points, size)
    blob, _ = fastpath.letterbox_chw(crop, size, size, mode="stretch", swap_rb=rgb, mean=mean, scale=scale)
    return blob
