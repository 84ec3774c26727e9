"""Instance segmentation (MaixPy's YOLOv8-seg app) with mask polygons.

Per frame: letterbox → YOLOv8-seg → decode + class-aware NMS → for each kept object, the mask
logits ``coeffs · protos`` are computed only on the prototype cells under its box and warped
straight into the box's frame pixels (bilinear, letterbox padding removed by the same affine map),
thresholded at 0.5 (logit 0) → box-sized binary mask → outer polygons (:mod:`polygons`).
No full-frame mask is ever built, so the cost grows with the boxes' area, not with objects x frame.

Result entries follow DESIGN §4 (``segments.objects``)::

    {"class_id": int, "label": str, "score": float, "box": [x, y, w, h],
     "polygons": [[x0, y0, x1, y1, ...], ...], "area": int}

``box`` is in frame pixels; polygon vertices are pixel-edge coordinates in ``[0, w] x [0, h]``
(see :mod:`agent.vision.polygons`); ``area`` is the mask's pixel count.
Unlike MaixPy (which accumulates into proto channel 0 in place, so overlapping boxes corrupt each
other's masks, A3) every object's mask is computed independently.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from agent.errors import ModelError
from agent.vision.polygons import DEFAULT_EPSILON, DEFAULT_MIN_AREA, mask_to_polygons
from agent.vision.runtime import Model
from agent.vision.yolo_decode import (
    Detections,
    Letterbox,
    check_frame,
    decode_output0,
    letterbox,
)


@dataclass(frozen=True)
class BoxMask:
    """One object's binary mask, the size of its (integer) box; ``origin`` is its top-left pixel."""

    mask: np.ndarray  # (h, w) uint8 0/1
    origin: tuple[int, int]  # (x, y) in frame pixels

    def full(self, frame_h: int, frame_w: int) -> np.ndarray:
        """The mask pasted into an empty frame-sized array (for evaluation and drawing only)."""
        out = np.zeros((frame_h, frame_w), np.uint8)
        x, y = self.origin
        h, w = self.mask.shape
        out[y : y + h, x : x + w] = self.mask
        return out


def parse_names(metadata: dict[str, str] | Any) -> list[str]:
    """Class names from the model's ``names`` metadata, a Python literal ``{0: 'person', …}``."""
    raw = metadata.get("names") if hasattr(metadata, "get") else None
    if not raw:
        raise ModelError("segmentation model has no 'names' metadata")
    try:
        parsed = ast.literal_eval(raw)
    except (ValueError, SyntaxError) as exc:
        raise ModelError(f"segmentation model 'names' metadata is not a literal: {exc}") from None
    if isinstance(parsed, dict):
        try:
            items = sorted((int(k), str(v)) for k, v in parsed.items())
        except (TypeError, ValueError):
            raise ModelError("segmentation model 'names' keys are not integers") from None
        if [k for k, _ in items] != list(range(len(items))):
            raise ModelError("segmentation model 'names' keys are not 0..N-1")
        return [v for _, v in items]
    if isinstance(parsed, (list, tuple)) and all(isinstance(v, str) for v in parsed):
        return list(parsed)
    raise ModelError("segmentation model 'names' metadata is neither a dict nor a list")


def _check_range(name: str, value: float, lo: float, hi: float) -> None:
    if not (isinstance(value, (int, float)) and lo <= value <= hi):
        raise ValueError(f"{name} must be a number in [{lo}, {hi}], got {value!r}")


class Segmenter:
    """YOLOv8-seg on onnxruntime: boxes, classes, scores, masks and mask polygons."""

    def __init__(
        self,
        model: Model,
        *,
        epsilon: float = DEFAULT_EPSILON,
        min_area: float = DEFAULT_MIN_AREA,
    ) -> None:
        spec = model.spec.input
        if spec.size is None:
            raise ModelError(f"model {model.spec.name!r}: manifest input has no size")
        self.model = model
        self.size: tuple[int, int] = spec.size
        self.pad = int(spec.pad if spec.pad is not None else 114)
        self.scale = spec.scale
        self.rgb = (spec.colour or "rgb").lower() == "rgb"
        self.names: list[str] = parse_names(model.metadata)
        self.epsilon = epsilon
        self.min_area = min_area

    # -- stages -----------------------------------------------------------------------------

    def preprocess(self, frame_bgr: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        """Frame → network input; the one function a fastpath kernel replaces."""
        return letterbox(frame_bgr, self.size, self.pad, self.scale, self.rgb)

    def detect(
        self,
        frame_bgr: np.ndarray,
        *,
        score_th: float = 0.25,
        iou_th: float = 0.45,
        max_det: int = 100,
    ) -> tuple[Detections, np.ndarray, Letterbox]:
        """Run the model; return kept detections, the prototypes (32, ph, pw) and the geometry."""
        frame_bgr = check_frame(frame_bgr)
        _check_range("score_th", score_th, 0.0, 1.0)
        _check_range("iou_th", iou_th, 0.0, 1.0)
        if not isinstance(max_det, int) or isinstance(max_det, bool) or max_det < 0:
            raise ValueError(f"max_det must be an int >= 0, got {max_det!r}")
        blob, geo = self.preprocess(frame_bgr)
        out0, out1 = self.model(blob)[:2]
        if out0.shape[1] != 4 + len(self.names) + 32:
            raise ModelError(f"output0 has {out0.shape[1]} rows, expected 4 + {len(self.names)} classes + 32")
        dets = decode_output0(out0, geo, score_th=score_th, iou_th=iou_th, max_det=max_det)
        return dets, out1[0], geo

    def box_mask(self, box: np.ndarray, coeffs: np.ndarray, protos: np.ndarray, geo: Letterbox) -> BoxMask:
        """Binary mask of one object over its box's frame pixels (pixel u kept if x0 <= u < x1)."""
        x0, y0, x1, y1 = (float(v) for v in box)
        bx0, by0 = max(0, math.ceil(x0)), max(0, math.ceil(y0))
        bx1, by1 = min(geo.frame_w, math.ceil(x1)), min(geo.frame_h, math.ceil(y1))
        bw, bh = bx1 - bx0, by1 - by0
        if bw <= 0 or bh <= 0:
            return BoxMask(np.zeros((max(bh, 0), max(bw, 0)), np.uint8), (bx0, by0))
        n_p, ph, pw = protos.shape
        # Frame pixel centre u+0.5 → input (u+0.5)*s + pad → proto cell-centre index /stride - 0.5.
        sx, sy = self.size[1] / pw, self.size[0] / ph
        ax, ay = geo.scale / sx, geo.scale / sy
        src_x0 = ((bx0 + 0.5) * geo.scale + geo.left) / sx - 0.5
        src_y0 = ((by0 + 0.5) * geo.scale + geo.top) / sy - 0.5
        src_x1, src_y1 = src_x0 + (bw - 1) * ax, src_y0 + (bh - 1) * ay
        px0 = min(max(0, math.floor(src_x0)), pw - 1)
        py0 = min(max(0, math.floor(src_y0)), ph - 1)
        px1 = max(min(pw, math.ceil(src_x1) + 1), px0 + 1)
        py1 = max(min(ph, math.ceil(src_y1) + 1), py0 + 1)
        patch = protos[:, py0:py1, px0:px1]
        logits = (coeffs @ patch.reshape(n_p, -1)).reshape(py1 - py0, px1 - px0)
        m = np.array([[ax, 0.0, src_x0 - px0], [0.0, ay, src_y0 - py0]], np.float64)
        up = cv2.warpAffine(
            np.ascontiguousarray(logits, np.float32),
            m,
            (bw, bh),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )
        return BoxMask(np.greater(up, 0.0).view(np.uint8), (bx0, by0))  # bool → 0/1, no copy

    # -- public -----------------------------------------------------------------------------

    def segment_with_masks(
        self,
        frame_bgr: np.ndarray,
        *,
        score_th: float = 0.25,
        iou_th: float = 0.45,
        max_det: int = 100,
        polygons: bool = True,
    ) -> list[tuple[dict[str, Any], BoxMask]]:
        """Like :meth:`segment`, each object paired with its box-sized binary mask."""
        dets, protos, geo = self.detect(frame_bgr, score_th=score_th, iou_th=iou_th, max_det=max_det)
        out: list[tuple[dict[str, Any], BoxMask]] = []
        for i in range(len(dets.scores)):
            box = dets.boxes[i]
            bm = self.box_mask(box, dets.coeffs[i], protos, geo)
            cid = int(dets.class_ids[i])
            obj: dict[str, Any] = {
                "class_id": cid,
                "label": self.names[cid] if cid < len(self.names) else str(cid),
                "score": round(float(dets.scores[i]), 4),
                "box": [
                    round(float(box[0]), 2),
                    round(float(box[1]), 2),
                    round(float(box[2] - box[0]), 2),
                    round(float(box[3] - box[1]), 2),
                ],
                "polygons": (
                    mask_to_polygons(bm.mask, bm.origin, epsilon=self.epsilon, min_area=self.min_area)
                    if polygons
                    else []
                ),
                "area": int(np.count_nonzero(bm.mask)),
            }
            out.append((obj, bm))
        return out

    def segment(
        self,
        frame_bgr: np.ndarray,
        *,
        score_th: float = 0.25,
        iou_th: float = 0.45,
        max_det: int = 100,
        polygons: bool = True,
    ) -> list[dict[str, Any]]:
        """Objects in a BGR uint8 frame, best score first (DESIGN §4 ``objects`` entries).

        ``polygons=False`` skips contour tracing (``polygons`` is then ``[]``). Raises
        :class:`ValueError` for a frame that is not HxWx3 uint8 or for out-of-range thresholds.
        """
        return [
            obj
            for obj, _ in self.segment_with_masks(
                frame_bgr, score_th=score_th, iou_th=iou_th, max_det=max_det, polygons=polygons
            )
        ]
