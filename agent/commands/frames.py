"""Where a command's image comes from: the request (JPEG/PNG bytes) or the latest frame."""

from __future__ import annotations

import numpy as np

from agent.commands.context import Context
from agent.errors import CommandError
from agent.vision.decode import ImageDecodeError, decode_image


def image_for(image: bytes | None, ctx: Context) -> np.ndarray:
    if image is not None:
        try:
            return decode_image(image, ctx.settings.limits.image_pixels)
        except ImageDecodeError as exc:
            raise CommandError("bad_request", f"image: {exc}") from None
    latest = ctx.frames.latest
    if latest is None or latest.image is None:
        raise CommandError("unavailable", "no frame from the source yet: send an image with the command")
    return latest.image


def check_box(box: list[float] | None, image: np.ndarray) -> list[float] | None:
    if box is None:
        return None
    x, y, w, h = box
    ih, iw = image.shape[:2]
    if w <= 0 or h <= 0:
        raise CommandError("bad_request", f"box {box}: width and height must be positive")
    if x >= iw or y >= ih or x + w <= 0 or y + h <= 0:
        raise CommandError("bad_request", f"box {box} lies outside the {iw}x{ih} frame")
    return [float(v) for v in box]
