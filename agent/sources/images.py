"""``images:DIR``: every JPEG/PNG of a folder, in name order."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from agent.sources.base import FrameSlot, Source

SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}


class ImageFolderSource(Source):
    def __init__(
        self, uri: str, slot: FrameSlot, *, folder: Path, loop: bool = False, fps: float | None = None, **kw: float
    ) -> None:
        super().__init__(uri, slot, **kw)
        self.folder = folder
        self.loop = loop
        self.period = 1.0 / fps if fps else 0.0

    def frames(self) -> Iterator[np.ndarray]:
        next_t = time.monotonic()
        while True:
            if not self.folder.is_dir():
                raise FileNotFoundError(f"image folder not found: {self.folder}")
            files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in SUFFIXES)
            if not files:
                raise OSError(f"no images in {self.folder}")
            readable = 0
            for path in files:
                image = cv2.imread(str(path), cv2.IMREAD_COLOR)
                if image is None:
                    continue  # unreadable (or vanished) file: skip it, keep the folder going
                readable += 1
                if self.period:  # on a schedule, so reading the file does not slow the rate
                    next_t += self.period
                    delay = next_t - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    else:
                        next_t = time.monotonic()
                yield image
            if not readable:  # not one frame in a whole pass: a failure, not a busy loop
                raise OSError(f"no readable images in {self.folder}")
            if not self.loop:
                return
