"""Image feature extractor for the self-learning classifier (MaixPy's ``classifier_no_top`` role).

A frame (BGR uint8, as every source delivers it) is optionally cropped to a box, centre-cropped
to a square ("cover", MaixPy's ``FIT_COVER``), resized to the model's input, converted to the
model's colour order and scaled by the manifest contract ``(x - mean) * scale``, NCHW float32.
The model's ``feature`` output (1280 floats, global-average-pooled) is returned as it is: MaixPy
compares raw features by plain L2, with no normalisation.

:func:`preprocess` is the one pixel kernel here: a single fused ``fastpath`` pass.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

import fastpath
from agent.errors import CommandError, ModelError
from agent.models.manifest import InputSpec
from agent.vision.runtime import Model

Box = tuple[int, int, int, int]


def crop_box(frame: np.ndarray, box: Sequence[float] | None) -> np.ndarray:
    """Crop ``frame`` to ``box = (x, y, w, h)`` in frame pixels, clipped to the frame.

    Raises ``CommandError("bad_request")`` when the box is malformed or nothing of it is left
    inside the frame.
    """
    if box is None:
        return frame
    if len(box) != 4:
        raise CommandError("bad_request", f"box must be [x, y, w, h], got {list(box)!r}")
    x, y, w, h = (float(v) for v in box)
    if not all(np.isfinite(v) for v in (x, y, w, h)):
        raise CommandError("bad_request", f"box has non-finite values: {list(box)!r}")
    fh, fw = frame.shape[:2]
    x0, y0 = max(0, round(x)), max(0, round(y))
    x1, y1 = min(fw, round(x + w)), min(fh, round(y + h))
    if x1 <= x0 or y1 <= y0:
        raise CommandError("bad_request", f"box {list(box)!r} is empty inside the {fw}x{fh} frame")
    return frame[y0:y1, x0:x1]


def preprocess(frame_bgr: np.ndarray, spec: InputSpec) -> np.ndarray:
    """One BGR uint8 image (H, W, 3) → CHW float32 input for ``spec`` (centre-crop cover).

    One fused :func:`fastpath.letterbox_chw` pass: the largest centred region with the target's
    aspect ratio, resized with OpenCV's ``INTER_AREA`` box filter when shrinking (bilinear when
    enlarging a small crop), colour swap, ``(x - mean) * scale``, CHW.
    """
    if frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3 or frame_bgr.size == 0:
        raise CommandError("bad_request", f"expected a non-empty BGR image (H, W, 3), got {frame_bgr.shape}")
    if frame_bgr.dtype != np.uint8:
        frame_bgr = np.clip(frame_bgr, 0, 255).astype(np.uint8)
    th, tw = spec.size or (224, 224)
    frame = frame_bgr if frame_bgr.flags.c_contiguous else np.ascontiguousarray(frame_bgr)
    blob, _ = fastpath.letterbox_chw(
        frame,
        th,
        tw,
        mode="cover",
        interpolation="area",
        swap_rb=spec.colour == "rgb",
        mean=float(spec.mean),
        scale=float(spec.scale),
    )
    one: np.ndarray = blob[0]
    return one


class FeatureExtractor:
    """Frames → raw feature vectors with one feature model (``mobilenet_v2``, ``efficientnet_lite0``)."""

    def __init__(self, model: Model, batch: int = 16) -> None:
        if model.spec.input.colour not in ("rgb", "bgr"):
            raise ModelError(f"model {model.spec.name!r} has no image input contract")
        self.model = model
        self.spec = model.spec.input
        self.batch = max(1, batch)
        out = model.spec.outputs.get("feature")
        dim = out[-1] if out else None
        self._dim: int | None = dim if isinstance(dim, int) else None

    @property
    def name(self) -> str:
        return self.model.spec.name

    @property
    def fingerprint(self) -> str:
        return self.model.spec.fingerprint

    @property
    def dim(self) -> int:
        """Feature length (from the manifest, or by running the model once)."""
        if self._dim is None:
            th, tw = self.spec.size or (224, 224)
            self._dim = int(self.run(np.zeros((1, 3, th, tw), np.float32)).shape[1])
        return self._dim

    def run(self, x: np.ndarray) -> np.ndarray:
        """Model only: an NCHW batch → (N, D) float32 features."""
        out = self.model.run({self.spec.name: x}, ["feature"])[0]
        return np.asarray(out, dtype=np.float32).reshape(x.shape[0], -1)

    def extract(self, frame_bgr: np.ndarray, box: Sequence[float] | None = None) -> np.ndarray:
        """One frame (optionally a box of it) → (D,) float32 raw feature."""
        x = preprocess(crop_box(frame_bgr, box), self.spec)
        feature: np.ndarray = self.run(x[None])[0]
        return feature

    def extract_batch(
        self, frames_bgr: Sequence[np.ndarray], boxes: Sequence[Sequence[float] | None] | None = None
    ) -> np.ndarray:
        """Several frames → (N, D) float32, run in batches of ``self.batch``."""
        if boxes is not None and len(boxes) != len(frames_bgr):
            raise ValueError("boxes and frames differ in length")
        if not frames_bgr:
            return np.zeros((0, self.dim), np.float32)
        xs = [
            preprocess(crop_box(f, boxes[i] if boxes is not None else None), self.spec)
            for i, f in enumerate(frames_bgr)
        ]
        parts = [self.run(np.stack(xs[i : i + self.batch])) for i in range(0, len(xs), self.batch)]
        return np.concatenate(parts, axis=0)
