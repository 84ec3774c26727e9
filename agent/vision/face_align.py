"""5-point face alignment onto the ArcFace template and the embedder's input blob.

The similarity transform (rotation, uniform scale, translation) is the least-squares fit of
Umeyama (1991) from the detector's 5 landmarks to the template, as insightface and OpenCV's
``FaceRecognizerSF.alignCrop`` do; with 5 well-spread points a robust estimator (LMEDS) gains
nothing and is not deterministic for ties, so the closed form is used.
"""

from __future__ import annotations

import cv2
import numpy as np

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
    """2x3 matrix of the similarity transform that maps ``src`` (N,2) onto ``dst`` (N,2) best."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    cov = dst_c.T @ src_c / len(src)
    u, s, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[1] = -1.0
    rot = u @ np.diag(d) @ vt
    var = (src_c**2).sum() / len(src)
    scale = float((s * d).sum() / var) if var > 0 else 1.0
    matrix = np.empty((2, 3), dtype=np.float64)
    matrix[:, :2] = scale * rot
    matrix[:, 2] = dst_mean - matrix[:, :2] @ src_mean
    return matrix


def align_face(frame: np.ndarray, points: np.ndarray, size: int = ALIGN_SIZE) -> np.ndarray:
    """Warp the face whose 5 landmarks are ``points`` (frame pixels) to a size x size BGR crop."""
    matrix = similarity_transform(points, template(size))
    return cv2.warpAffine(frame, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
