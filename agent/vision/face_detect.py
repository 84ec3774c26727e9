"""Face detection with 5 landmarks: RetinaFace (mnet0.25) and YuNet decoders.

The frame (BGR uint8, any size) is letterboxed into the detector input size from the manifest
(``input.size`` = (H, W), default 480x640): scaled to fit while keeping its aspect ratio, placed at
the top-left corner, padded with zeros; boxes and landmarks are mapped back by dividing by the
scale, so they come out in frame pixels. Decoders follow ``shared/models/MODELS.md``:

- RetinaFace: priors for steps (8, 16, 32) with min sizes ((10, 20), (32, 64), (128, 256)),
  variances (0.1, 0.2); ``conf`` is already softmaxed (column 1 = face). NMS IoU 0.4.
- YuNet: per stride (8, 16, 32), score = sqrt(cls * obj), boxes and keypoints from the cell grid.
  NMS IoU 0.3.

After a model run the caches are cold and every array operation costs several times its warm
time, so the steps after the network are few: YuNet's grids are decoded, suppressed and mapped to
the frame by one C call (:func:`fastpath.grid_faces`, ~40 NumPy operations before), RetinaFace's
candidates by :func:`fastpath.nms_faces`. A candidate with a non-finite box or landmark (a broken
model's output) is no face.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np

import fastpath
from agent.errors import ConfigError, ModelError
from agent.vision.runtime import Model

DetectorKind = Literal["retinaface", "yunet"]
DETECTOR_KINDS: tuple[DetectorKind, ...] = ("retinaface", "yunet")
DEFAULT_INPUT_SIZE = (480, 640)  # (H, W)
DEFAULT_NMS: dict[DetectorKind, float] = {"retinaface": 0.4, "yunet": 0.3}
DEFAULT_SCORE = 0.6
PRE_NMS_TOP_K = 5000
MAX_FACES = 750  # RetinaFace's keep_top_k: the most one detect() call returns

_RETINA_STEPS = (8, 16, 32)
_RETINA_MIN_SIZES = ((10, 20), (32, 64), (128, 256))
_RETINA_VARIANCE = (0.1, 0.2)
_YUNET_STRIDES = (8, 16, 32)


@dataclass(frozen=True)
class Face:
    """One detected face in frame pixels."""

    box: tuple[float, float, float, float]  # x, y, w, h
    score: float
    points: np.ndarray  # (5, 2) float32: left eye, right eye, nose, left mouth, right mouth

    @property
    def area(self) -> float:
        return self.box[2] * self.box[3]


def detector_kind(model_name: str) -> DetectorKind:
    """Which decoder a detector model needs, from its manifest name (``retinaface*``/``yunet*``)."""
    name = model_name.lower()
    for kind in DETECTOR_KINDS:
        if name.startswith(kind):
            return kind
    raise ConfigError(f"face detector {model_name!r}: unknown kind (expected one of {DETECTOR_KINDS})")


def input_size(model: Model) -> tuple[int, int]:
    """(H, W) the detector is fed: the manifest's ``input.size``, rounded up to multiples of 32."""
    h, w = model.spec.input.size or DEFAULT_INPUT_SIZE
    return (math.ceil(h / 32) * 32, math.ceil(w / 32) * 32)


@lru_cache(maxsize=8)
def retinaface_priors(height: int, width: int) -> np.ndarray:
    """(A, 4) priors (cx, cy, w, h), normalised to the input size, in the model's anchor order."""
    parts: list[np.ndarray] = []
    for step, min_sizes in zip(_RETINA_STEPS, _RETINA_MIN_SIZES, strict=True):
        rows, cols = math.ceil(height / step), math.ceil(width / step)
        cy, cx = np.meshgrid(
            (np.arange(rows) + 0.5) * step / height,
            (np.arange(cols) + 0.5) * step / width,
            indexing="ij",
        )
        per_size = [
            np.stack([cx, cy, np.full_like(cx, m / width), np.full_like(cx, m / height)], axis=-1) for m in min_sizes
        ]
        # anchors vary fastest by min size within a cell: (rows, cols, sizes, 4)
        parts.append(np.stack(per_size, axis=2).reshape(-1, 4))
    return np.concatenate(parts).astype(np.float32)


def decode_retinaface(
    loc: np.ndarray,
    conf: np.ndarray,
    landms: np.ndarray,
    size: tuple[int, int],
    score_th: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw outputs of one image → (boxes x1y1x2y2, scores, points (N,5,2)) in input pixels."""
    height, width = size
    priors = retinaface_priors(height, width)
    scores = conf[:, 1]
    idx = np.flatnonzero(scores > score_th)
    if idx.size > PRE_NMS_TOP_K:
        idx = idx[np.argsort(-scores[idx])[:PRE_NMS_TOP_K]]
    p, lo, lm = priors[idx], loc[idx], landms[idx]
    v0, v1 = _RETINA_VARIANCE
    centre = p[:, :2] + lo[:, :2] * v0 * p[:, 2:]
    wh = p[:, 2:] * np.exp(lo[:, 2:] * v1)
    norm = np.array([width, height], dtype=np.float32)
    boxes = np.concatenate([centre - wh / 2, centre + wh / 2], axis=1) * np.tile(norm, 2)
    points = (p[:, None, :2] + lm.reshape(-1, 5, 2) * v0 * p[:, None, 2:]) * norm
    return boxes.astype(np.float32), scores[idx].astype(np.float32), points.astype(np.float32)


@dataclass(frozen=True)
class GridLayout:
    """Where each stride's outputs (cls, obj, bbox, kps) are among a YuNet model's outputs, and
    its grid (cols, rows) at the input size: worked out once, when the detector is made."""

    positions: tuple[tuple[int, int, int, int, int, int, float], ...]  # (c, o, b, k, cols, rows, stride)


def yunet_layout(output_names: Sequence[str], size: tuple[int, int]) -> GridLayout:
    """The :class:`GridLayout` of a YuNet model with these outputs at input size (H, W)."""
    height, width = size
    names = list(output_names)
    positions = []
    for s in _YUNET_STRIDES:
        wanted = [f"{part}_{s}" for part in ("cls", "obj", "bbox", "kps")]
        missing = [n for n in wanted if n not in names]
        if missing:
            raise ModelError(f"YuNet model has no output(s) {missing} (it has {names})")
        c, o, b, k = (names.index(n) for n in wanted)
        positions.append((c, o, b, k, width // s, height // s, float(s)))
    return GridLayout(tuple(positions))


def yunet_levels(outputs: Sequence[np.ndarray], layout: GridLayout) -> list[fastpath.GridLevel]:
    """One run's outputs (in the model's output order) as :func:`fastpath.grid_faces` levels,
    each stride's grid checked against the input size."""
    levels: list[fastpath.GridLevel] = []
    for c, o, b, k, cols, rows, stride in layout.positions:
        cls = outputs[c]
        if cls.size != rows * cols:
            raise ModelError(f"YuNet stride {stride:g}: {cls.size} cells, expected {rows}x{cols}")
        levels.append((cls, outputs[o], outputs[b], outputs[k], cols, stride))
    return levels


class FaceDetector:
    """A RetinaFace or YuNet session plus its decoder; ``detect(frame)`` → faces, best first."""

    def __init__(self, model: Model, kind: str, size: tuple[int, int] | None = None) -> None:
        """``size`` (H, W) overrides the manifest's input size (rounded up to multiples of 32)."""
        if kind not in DETECTOR_KINDS:
            raise ConfigError(f"face detector kind {kind!r}: expected one of {DETECTOR_KINDS}")
        self.model = model
        self.kind: DetectorKind = kind
        self.size = (math.ceil(size[0] / 32) * 32, math.ceil(size[1] / 32) * 32) if size else input_size(model)
        self.default_nms = DEFAULT_NMS[self.kind]
        # YuNet's outputs by stride (None for RetinaFace, whose outputs are asked for by name)
        self.layout = yunet_layout(model.output_names, self.size) if kind == "yunet" else None

    def preprocess(self, frame: np.ndarray) -> tuple[np.ndarray, float]:
        """Frame → (NCHW blob, frame-to-input scale): :func:`letterbox` + :func:`to_blob` in one
        fused fastpath pass (same geometry and filters; at 640x480 it is a plain conversion)."""
        spec = self.model.spec.input
        out_h, out_w = self.size
        h, w = frame.shape[:2]
        frame = frame if frame.flags.c_contiguous else np.ascontiguousarray(frame)
        blob, _ = fastpath.letterbox_chw(
            frame,
            out_h,
            out_w,
            mode="topleft",
            interpolation="area",  # INTER_AREA when shrinking, bilinear when enlarging
            swap_rb=spec.colour == "rgb",
            mean=float(spec.mean),
            scale=float(spec.scale),
            pad=float(spec.pad or 0),
        )
        return blob, min(out_h / h, out_w / w)

    def detect(
        self,
        frame: np.ndarray,
        score_th: float = DEFAULT_SCORE,
        nms_th: float | None = None,
        max_faces: int = MAX_FACES,
    ) -> list[Face]:
        """Faces best score first, at most ``max_faces``."""
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"expected a BGR uint8 frame (H, W, 3), got {frame.dtype} {frame.shape}")
        blob, scale = self.preprocess(frame)
        nms = self.default_nms if nms_th is None else nms_th
        fh, fw = float(frame.shape[0]), float(frame.shape[1])
        # NMS that stops at max_faces (a near-zero threshold cannot make it walk thousands of
        # boxes) and the kept faces mapped to the frame, in one C call (with the decoding for YuNet)
        if self.layout is None:  # RetinaFace
            loc, conf, landms = self.model.run({self.model.spec.input.name: blob}, ["loc", "conf", "landms"])
            boxes, scores, points = decode_retinaface(loc[0], conf[0], landms[0], self.size, score_th)
            found = fastpath.nms_faces(boxes, scores, points, nms, max_faces, scale, fw, fh)
        else:
            levels = yunet_levels(self.model(blob), self.layout)
            try:
                found = fastpath.grid_faces(levels, score_th, nms, max_faces, scale, fw, fh)
            except ValueError as exc:  # outputs of other shapes than YuNet's
                raise ModelError(f"YuNet outputs: {exc}") from exc
        kept_points = found[2]
        return [
            Face(box=(x, y, w, h), score=score, points=kept_points[j])
            for j, ((x, y, w, h), score) in enumerate(zip(found[0].tolist(), found[1].tolist(), strict=True))
        ]
