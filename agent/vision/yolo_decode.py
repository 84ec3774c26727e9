"""YOLOv8-seg pre- and post-processing: letterbox, anchor decode, class-aware NMS.

Pure NumPy + fastpath; no model and no MQTT here. :func:`letterbox` is the one place that turns a
frame into the network input (one fused fastpath kernel).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

import fastpath

# Output0 layout per anchor: 4 box values, then the class scores, then the mask coefficients.
N_MASK_COEFFS = 32


@dataclass(frozen=True)
class Letterbox:
    """How a frame was fitted into the network input (Ultralytics' ``LetterBox`` rounding)."""

    scale: float  # input pixels per frame pixel
    left: int  # padding columns on the left of the input
    top: int  # padding rows on the top of the input
    width: int  # resized frame width inside the input
    height: int  # resized frame height inside the input
    frame_w: int
    frame_h: int


def check_frame(frame: object) -> np.ndarray:
    """Return ``frame`` if it is an HxWx3 uint8 image, else raise :class:`ValueError`."""
    if not isinstance(frame, np.ndarray):
        raise ValueError(f"frame must be a numpy array, got {type(frame).__name__}")
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frame must be HxWx3 (BGR), got shape {frame.shape}")
    if frame.dtype != np.uint8:
        raise ValueError(f"frame must be uint8, got {frame.dtype}")
    if frame.shape[0] < 1 or frame.shape[1] < 1:
        raise ValueError(f"frame is empty: shape {frame.shape}")
    return frame


def letterbox_geometry(frame_h: int, frame_w: int, in_h: int, in_w: int) -> Letterbox:
    """Scale to fit, centre, and round the padding exactly as Ultralytics does."""
    r = min(in_h / frame_h, in_w / frame_w)
    new_w, new_h = round(frame_w * r), round(frame_h * r)
    dw, dh = (in_w - new_w) / 2, (in_h - new_h) / 2
    left, top = round(dw - 0.1), round(dh - 0.1)
    return Letterbox(r, left, top, new_w, new_h, frame_w, frame_h)


def letterbox(
    frame_bgr: np.ndarray, size: tuple[int, int], pad: int, scale: float, rgb: bool = True
) -> tuple[np.ndarray, Letterbox]:
    """Frame (HxWx3 BGR uint8) → float32 [1,3,H,W] network input and its geometry.

    Resize (bilinear) to fit ``size`` (H, W), pad with ``pad``, swap to RGB, multiply by ``scale``:
    one fused :func:`fastpath.letterbox_chw` pass (the same centring as Ultralytics: its
    ``round(d - 0.1)`` padding is ``(in - new) // 2``). A 640x480 frame into 320 is an exact 2:1
    reduction, which fastpath computes as the 2x2 mean.
    """
    in_h, in_w = size
    fh, fw = frame_bgr.shape[:2]
    geo = letterbox_geometry(fh, fw, in_h, in_w)
    frame = frame_bgr if frame_bgr.flags.c_contiguous else np.ascontiguousarray(frame_bgr)
    blob, tr = fastpath.letterbox_chw(frame, in_h, in_w, swap_rb=rgb, scale=scale, pad=pad)
    if (tr.pad_x, tr.pad_y) != (geo.left, geo.top):  # degenerate sizes only (fastpath keeps >= 1 px)
        geo = replace(geo, left=int(tr.pad_x), top=int(tr.pad_y))
    return blob, geo


@dataclass(frozen=True)
class Detections:
    """Kept detections after NMS, best first; boxes are x0, y0, x1, y1 in frame pixels."""

    boxes: np.ndarray  # (N, 4) float32
    scores: np.ndarray  # (N,) float32
    class_ids: np.ndarray  # (N,) int64
    coeffs: np.ndarray  # (N, 32) float32 mask coefficients


def empty_detections() -> Detections:
    return Detections(
        np.zeros((0, 4), np.float32),
        np.zeros((0,), np.float32),
        np.zeros((0,), np.int64),
        np.zeros((0, N_MASK_COEFFS), np.float32),
    )


def decode_output0(
    out0: np.ndarray,
    geo: Letterbox,
    *,
    score_th: float,
    iou_th: float,
    max_det: int,
    max_nms: int = 30000,
) -> Detections:
    """Decode ``output0`` [1, 4+C+32, A] into frame-pixel detections (one class per anchor)."""
    pred = out0[0]
    n_cls = pred.shape[0] - 4 - N_MASK_COEFFS
    cls_scores = pred[4 : 4 + n_cls]
    best = cls_scores.max(axis=0)
    cand = np.flatnonzero(best > score_th)
    if cand.size == 0:
        return empty_detections()
    if cand.size > max_nms:
        cand = cand[np.argsort(-best[cand])[:max_nms]]
    scores = best[cand].astype(np.float32)
    class_ids = cls_scores[:, cand].argmax(axis=0).astype(np.int64)
    cx, cy, w, h = pred[0, cand], pred[1, cand], pred[2, cand], pred[3, cand]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    keep = fastpath.nms(boxes, scores, iou_th, max_keep=max_det, classes=class_ids)
    boxes = boxes[keep]
    # Input pixels → frame pixels, clipped to the frame.
    boxes[:, [0, 2]] = ((boxes[:, [0, 2]] - geo.left) / geo.scale).clip(0, geo.frame_w)
    boxes[:, [1, 3]] = ((boxes[:, [1, 3]] - geo.top) / geo.scale).clip(0, geo.frame_h)
    coeffs = pred[4 + n_cls :, cand[keep]].T.astype(np.float32)
    return Detections(boxes.astype(np.float32), scores[keep], class_ids[keep], coeffs)
