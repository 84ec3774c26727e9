"""Decode JPEG/PNG bytes into a BGR frame, refusing oversized images before decoding them."""

from __future__ import annotations

import struct

import cv2
import numpy as np

PNG_SIG = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (SOF0..SOF15 except DHT C4, JPG C8, DAC CC)
SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


class ImageDecodeError(ValueError):
    pass


def image_size(data: bytes) -> tuple[int, int]:
    """``(width, height)`` from a PNG or JPEG header, without decoding the pixels."""
    if data.startswith(PNG_SIG):
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise ImageDecodeError("truncated PNG header")
        w, h = struct.unpack(">II", data[16:24])
        return int(w), int(h)
    if data[:2] == b"\xff\xd8":
        i = 2
        n = len(data)
        while i + 4 <= n:
            if data[i] != 0xFF:
                i += 1
                continue
            marker = data[i + 1]
            if marker == 0xFF:
                i += 1
                continue
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                i += 2
                continue
            (seglen,) = struct.unpack(">H", data[i + 2 : i + 4])
            if marker in SOF:
                if i + 9 > n:
                    break
                h, w = struct.unpack(">HH", data[i + 5 : i + 9])
                return int(w), int(h)
            if seglen < 2:
                break
            i += 2 + seglen
        raise ImageDecodeError("JPEG without a readable frame header")
    raise ImageDecodeError("not a JPEG or PNG image")


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """BGR uint8 HxWx3; :class:`ImageDecodeError` for anything else or too large."""
    w, h = image_size(data)
    if w <= 0 or h <= 0:
        raise ImageDecodeError(f"image has an empty size {w}x{h}")
    if w * h > max_pixels:
        raise ImageDecodeError(f"image of {w}x{h} pixels exceeds the limit of {max_pixels} pixels")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ImageDecodeError("image data is corrupt")
    return image
