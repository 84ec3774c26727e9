"""Aligned face crops as small JPEGs: what the face library keeps next to every vector.

A crop is the embedder's own input picture (the face warped onto the ArcFace template, 112x112
for SFace), so a new face model can recompute every vector from it (``bank/reembed``) without
the person coming back. JPEG quality 90 keeps SFace's vector within cosine 0.99+ of the vector of
the uncompressed crop (tests/unit/vision/test_face_crops.py measures it on real faces); a crop
that does not fit the bytes it is given is re-encoded at lower qualities, and dropped (b"") only
if even quality 50 does not fit.
"""

from __future__ import annotations

import cv2
import numpy as np

import fastpath
from agent.bank.entry import JPEG_MAGIC, MAX_CROP_BYTES
from agent.vision.runtime import Model

QUALITIES = (90, 80, 65, 50)
MAX_CROP_SIDE = 512  # a decoded crop larger than this is refused (a crop is ~112 px)


def encode_crop(crop: np.ndarray, max_bytes: int = MAX_CROP_BYTES) -> bytes:
    """The crop as the best-quality JPEG of at most ``max_bytes`` (b"" when none fits)."""
    limit = min(max_bytes, MAX_CROP_BYTES)
    for quality in QUALITIES:
        ok, buf = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok and len(buf) <= limit:
            return buf.tobytes()
    return b""


def decode_crop(jpeg: bytes, size: int) -> np.ndarray | None:
    """A stored crop as a ``size`` x ``size`` BGR image, or ``None`` if it is no usable JPEG."""
    if not jpeg.startswith(JPEG_MAGIC) or len(jpeg) > MAX_CROP_BYTES:
        return None
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if img is None or img.ndim != 3 or max(img.shape[:2]) > MAX_CROP_SIDE:
        return None
    if img.shape[:2] != (size, size):  # a crop made for another embedder's input size
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA if img.shape[0] > size else cv2.INTER_LINEAR)
    return np.ascontiguousarray(img)


def embed_crop(embedder: Model, crop: np.ndarray) -> np.ndarray:
    """L2-normalised embedding of an aligned crop (already the embedder's input size)."""
    spec = embedder.spec.input
    h, w = crop.shape[:2]
    blob, _ = fastpath.letterbox_chw(
        crop, w, h, mode="stretch", swap_rb=spec.colour == "rgb", mean=spec.mean, scale=spec.scale
    )
    return embed_input(embedder, blob)


def embed_input(embedder: Model, blob: np.ndarray) -> np.ndarray:
    """L2-normalised embedding of an aligned face already converted to the embedder's input."""
    return fastpath.l2_normalise(embedder(blob)[0])
