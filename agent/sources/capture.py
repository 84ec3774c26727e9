"""OpenCV capture sources: ``video:PATH``, ``camera:N`` / ``/dev/videoN``, ``rtsp://…``."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from agent.sources.base import FrameSlot, Source

log = logging.getLogger(__name__)


class CaptureSource(Source):
    def __init__(
        self,
        uri: str,
        slot: FrameSlot,
        *,
        target: str | int,
        is_file: bool,
        loop: bool = False,
        fps: float | None = None,
        **kw: float,
    ) -> None:
        super().__init__(uri, slot, **kw)
        self.target = target
        self.is_file = is_file
        self.loop = loop
        self.fps = fps

    def _open(self) -> cv2.VideoCapture:
        if self.is_file and not Path(str(self.target)).is_file():
            raise FileNotFoundError(f"video file not found: {self.target}")
        if isinstance(self.target, str) and not self.target.startswith("/dev/"):
            cap = cv2.VideoCapture(self.target, cv2.CAP_FFMPEG)
        else:
            cap = cv2.VideoCapture(self.target)
        if not cap.isOpened():
            raise OSError(f"cannot open {self.uri}")
        return cap

    def frames(self) -> Iterator[np.ndarray]:
        while True:
            cap = self._open()
            rate = self.fps or (cap.get(cv2.CAP_PROP_FPS) if self.is_file else 0) or 0
            expected = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if self.is_file else 0
            period = 1.0 / rate if rate and rate > 0 else 0.0
            next_t = time.monotonic()
            got = 0
            try:
                while True:
                    ok, image = cap.read()
                    if not ok or image is None:
                        break
                    got += 1
                    if period:  # pace files at their own rate, like a camera would deliver them
                        next_t += period
                        delay = next_t - time.monotonic()
                        if delay > 0:
                            time.sleep(delay)
                        else:
                            next_t = time.monotonic()
                    yield image
            finally:
                cap.release()
            if not self.is_file:
                raise OSError(f"{self.uri} stopped delivering frames")
            if got == 0:
                raise OSError(f"{self.uri} has no readable frames")
            if expected > 0 and got + max(2, expected // 50) < expected:
                # The container promised more frames: the file is truncated or corrupt.
                msg = f"{self.uri} ended after {got} of {expected} frames (truncated or corrupt file)"
                if self.loop:
                    raise OSError(msg)
                log.warning("%s", msg)
                self.status.error = msg
                return
            if not self.loop:
                return
