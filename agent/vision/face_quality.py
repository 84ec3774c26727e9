"""Face quality gate: is a detected face good enough to be judged at all?

A face that is too small, too blurred or too weakly detected gives an embedding that lands
anywhere, and naming it is a guess. Such a face is published ``unknown`` with a ``quality``
reason (a short string) instead, and it does not vote in a face track.

The measures, each cheap (no model run):

- ``eyes``: distance between the two eye landmarks in frame pixels (the face's scale; a 112x112
  aligned crop has 35 px between the eyes, so below ~16 px the crop is an up-scaled blur);
- ``sharpness``: variance of the Laplacian of the aligned crop's grey centre (cheeks, eyes,
  nose, mouth), the classic focus measure (Pech-Pacheco et al. 2000);
- ``detect``: the detector's score.

- ``grey``: the crop has (almost) no colour (IR / night cameras, grey photos): mean
  ``max(B,G,R) - min(B,G,R)`` over the same centre below ``GREY_CHROMA``. Grey faces are judged,
  but strangers come closer to enrolled people on them, so the decision rule asks a larger lead
  over the second-best identity (``face.margin_grey``).

Sharpness and chroma come from one pass over the centre (:func:`fastpath.crop_stats`, a strided
view read in place): OpenCV's grey (``COLOR_BGR2GRAY``) and Laplacian (ksize 1, reflect-101
border) in exact integers, the variance as ``cv2.meanStdDev`` gives it to ~1e-16. Right after a
model run, with the caches cold, the pass costs ~20 µs a face (4 µs warm), where cvtColor,
Laplacian, meanStdDev and NumPy's spread took ~150 µs (35 µs warm).

Defaults (``tools/eval_faces_open.py``): on faces_open every photo of the three datasets passes
(the smallest LFW face has ~30 px between the eyes, the blurriest crop a sharpness well above the
limit), so the gate never costs a known face there; it catches faces a camera sees from afar or
in motion.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

import fastpath

DEFAULT_MIN_EYES = 16.0  # px between the eyes in the frame
DEFAULT_MIN_SHARPNESS = 12.0  # Laplacian variance of the aligned 112x112 crop's centre
DEFAULT_MIN_DETECT = 0.0  # extra detector-score floor for naming (face.detect already filters)
GREY_CHROMA = 6.0  # faces_open: grey photos measure 0, the least colourful colour photo 9


@dataclass(frozen=True)
class Quality:
    """The measures of one face."""

    eyes: float
    sharpness: float
    detect: float
    grey: bool = False


@dataclass(frozen=True)
class QualityLimits:
    min_eyes: float = DEFAULT_MIN_EYES
    min_sharpness: float = DEFAULT_MIN_SHARPNESS
    min_detect: float = DEFAULT_MIN_DETECT


def _core(crop: np.ndarray) -> np.ndarray:
    """The centre of an aligned face crop (eyes to chin, cheek to cheek), where it is measured."""
    h, w = crop.shape[:2]
    return crop[h * 18 // 112 : h * 100 // 112, w * 16 // 112 : w * 96 // 112]


def sharpness(crop: np.ndarray) -> float:
    """Variance of the Laplacian over the centre of an aligned face crop (BGR or grey)."""
    return fastpath.crop_stats(_core(crop))[0]


def chroma(crop: np.ndarray) -> float:
    """Mean ``max(B,G,R) - min(B,G,R)`` over the centre of an aligned crop (0 for grey)."""
    return fastpath.crop_stats(_core(crop))[1]


def measure(points: np.ndarray, detect_score: float, crop: np.ndarray) -> Quality:
    """The quality measures of one face: its 5 landmarks (frame pixels), detector score and
    aligned crop."""
    (lx, ly), (rx, ry) = np.asarray(points, np.float32).reshape(-1, 2)[:2].tolist()
    eyes = math.hypot(lx - rx, ly - ry)
    sharp, colour = fastpath.crop_stats(_core(crop))  # both measures in one pass over the centre
    return Quality(eyes=eyes, sharpness=sharp, detect=float(detect_score), grey=colour < GREY_CHROMA)


def verdict(quality: Quality, limits: QualityLimits) -> str | None:
    """``None`` when the face can be judged, else the reason: ``small``, ``blurred`` or
    ``weak detection`` (the first that applies)."""
    if quality.eyes < limits.min_eyes:
        return "small"
    if quality.sharpness < limits.min_sharpness:
        return "blurred"
    if quality.detect < limits.min_detect:
        return "weak detection"
    return None
