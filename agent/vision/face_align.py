"""5-point face alignment onto the ArcFace template and the embedder's input blob.

The similarity transform (rotation, uniform scale, translation) is the least-squares fit of
Umeyama (1991) from the detector's 5 landmarks to the template, as insightface and OpenCV's
``FaceRecognizerSF.alignCrop`` do; with 5 well-spread points a robust estimator (LMEDS) gains
nothing and is not deterministic for ties, so the closed form is used. :func:`align_blob` is the
embedder's input: the crop converted (swap/scale/CHW) by one fastpath pass.
"""

from __future__ import annotations

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


def template(size: int = ALIGN_SIZE) -> np.ndarray:
    """The ArcFace template scaled to a ``size`` x ``size`` crop."""
    return ARCFACE_TEMPLATE * (size / ALIGN_SIZE)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 matrix of the similarity transform that maps ``src`` (N,2) onto ``dst`` (N,2) best.

    Umeyama's least-squares similarity without reflection, in its 2-D closed form: with centred
    points, ``a = Σ(s·d) / Σ|s|²`` and ``b = Σ(s × d) / Σ|s|²`` give ``[[a, -b], [b, a]]`` (scale ·
    rotation), the same matrix the SVD form gives, an order of magnitude faster.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    sx, sy = (src - src_mean).T
    dx, dy = (dst - dst_mean).T
    var = float((sx * sx + sy * sy).sum())
    if var > 0:
        a = float((sx * dx + sy * dy).sum()) / var
        b = float((sx * dy - sy * dx).sum()) / var
    else:  # all source points coincide: identity rotation and scale, translation only
        a, b = 1.0, 0.0
    matrix = np.array([[a, -b, 0.0], [b, a, 0.0]], dtype=np.float64)
    matrix[:, 2] = dst_mean - matrix[:, :2] @ src_mean
    return matrix


def align_face(frame: np.ndarray, points: np.ndarray, size: int = ALIGN_SIZE) -> np.ndarray:
    """Warp the face whose 5 landmarks are ``points`` (frame pixels) to a size x size BGR crop."""
    matrix = similarity_transform(points, template(size))
    return cv2.warpAffine(frame, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def align_blob(
    frame: np.ndarray, points: np.ndarray, size: int, *, rgb: bool, mean: float = 0.0, scale: float = 1.0
) -> np.ndarray:
    """The aligned crop as an NCHW float32 blob (``(x - mean) * scale``, RGB when ``rgb``)."""
    crop = align_face(frame, points, size)
    blob, _ = fastpath.letterbox_chw(crop, size, size, mode="stretch", swap_rb=rgb, mean=mean, scale=scale)
    return blob
