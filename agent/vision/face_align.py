"""5-point face alignment onto the ArcFace template and the embedder's input blob.

The similarity transform (rotation, uniform scale, translation) is the least-squares fit of
Umeyama (1991) from the detector's 5 landmarks to the template, as insightface and OpenCV's
``FaceRecognizerSF.alignCrop`` do; with 5 well-spread points a robust estimator (LMEDS) gains
nothing and is not deterministic for ties, so the closed form is used. Fit, warp and the
embedder's input (the crop converted: swap/scale/CHW) are one fastpath call
(:func:`fastpath.align_face`), which OpenCV's ``warpAffine`` matches within one grey level.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

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
def _template_array(size: int) -> np.ndarray:
    """The ArcFace template for a ``size`` crop as the read-only float64 (5, 2) array fastpath
    takes as it is (made once a size)."""
    arr = ARCFACE_TEMPLATE.astype(np.float64) * (size / ALIGN_SIZE)
    arr.flags.writeable = False
    return arr


def template(size: int = ALIGN_SIZE) -> np.ndarray:
    """The ArcFace template scaled to a ``size`` x ``size`` crop."""
    return ARCFACE_TEMPLATE * (size / ALIGN_SIZE)


def similarity_transform(
    src: np.ndarray | Sequence[Sequence[float]], dst: np.ndarray | Sequence[Sequence[float]]
) -> np.ndarray:
    """2x3 matrix of the similarity transform that maps ``src`` (N,2) onto ``dst`` (N,2) best.

    Umeyama's least-squares similarity without reflection, in its 2-D closed form: with centred
    points, ``a = Σ(s·d) / Σ|s|²`` and ``b = Σ(s × d) / Σ|s|²`` give ``[[a, -b], [b, a]]`` (scale ·
    rotation), the same matrix the SVD form gives, an order of magnitude faster. The sums are
    float64 in point order (spec: :func:`fastpath._reference.similarity`; one C call).
    """
    return fastpath.similarity(src, dst)


def align_face(frame: np.ndarray, points: np.ndarray, size: int = ALIGN_SIZE) -> np.ndarray:
    """Warp the face whose 5 landmarks are ``points`` (frame pixels) to a size x size BGR crop."""
    return fastpath.align_crop(frame, points, _template_array(size), size)


def align_blob(
    frame: np.ndarray, points: np.ndarray, size: int, *, rgb: bool, mean: float = 0.0, scale: float = 1.0
) -> np.ndarray:
    """The aligned crop as an NCHW float32 blob (``(x - mean) * scale``, RGB when ``rgb``)."""
    return align_face_blob(frame, points, size, rgb=rgb, mean=mean, scale=scale)[1]


def align_face_blob(
    frame: np.ndarray, points: np.ndarray, size: int, *, rgb: bool, mean: float = 0.0, scale: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """The aligned crop (BGR, as :func:`align_face`) and its blob (as :func:`align_blob`) from
    one warp: the blob is the crop's own values converted."""
    return fastpath.align_face(
        frame, points, _template_array(size), size, swap_rb=rgb, mean=float(mean), scale=float(scale)
    )
