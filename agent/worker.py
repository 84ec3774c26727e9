"""The vision worker: take the newest frame, run the enabled pipelines, publish the results."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from agent.sources.base import Frame, FrameSlot
from agent.vision.decode import ImageDecodeError, decode_image

log = logging.getLogger(__name__)

SCHEMA = 1


class FrameProcessor(Protocol):
    def process(self, frame: Frame) -> dict[str, dict[str, Any]]:
        """Results by kind (``classify``, ``faces``, ``segments``, ``track``) for one frame."""
        ...


class VisionWorker:
    def __init__(
        self,
        slot: FrameSlot,
        processor: FrameProcessor | None,
        emit: Callable[[str, dict[str, Any]], None],
        *,
        device_id: str,
        max_pixels: int,
    ) -> None:
        self.slot = slot
        self.processor = processor
        self.emit = emit
        self.device_id = device_id
        self.max_pixels = max_pixels
        self.processed = 0
        self.errors = 0
        self.bad_frames = 0
        self.fps = 0.0
        self.last_ms = 0.0
        self._thread: threading.Thread | None = None

    def start(self, stop: threading.Event) -> None:
        self._thread = threading.Thread(target=self._run, args=(stop,), name="vision", daemon=True)
        self._thread.start()

    def _run(self, stop: threading.Event) -> None:
        t_window, n_window = time.monotonic(), 0
        while not stop.is_set():
            frame = self.slot.take(0.2)
            if frame is None:
                continue
            t0 = time.perf_counter()
            try:
                self.step(frame)
            except Exception:  # a bad frame or a pipeline bug must never stop the stream
                self.errors += 1
                log.exception("processing frame %d failed", frame.seq)
            self.last_ms = (time.perf_counter() - t0) * 1000
            n_window += 1
            now = time.monotonic()
            if now - t_window >= 1.0:
                self.fps, t_window, n_window = n_window / (now - t_window), now, 0

    def step(self, frame: Frame) -> None:
        if frame.image is None and frame.data is not None:
            try:
                image = decode_image(frame.data, self.max_pixels)
            except ImageDecodeError as exc:
                self.bad_frames += 1
                log.warning("frame %d dropped: %s", frame.seq, exc)
                return
            frame = Frame(image, frame.seq, frame.ts, None, frame.meta)
        if frame.image is None:
            return
        self.slot.mark_latest(frame)
        self.processed += 1
        if self.processor is None:
            return
        results = self.processor.process(frame)
        h, w = frame.image.shape[:2]
        for kind, body in results.items():
            msg = {"v": SCHEMA, "dev": self.device_id, "seq": frame.seq, "ts": frame.ts, "w": w, "h": h, **body}
            if "seq" in frame.meta:
                msg["frame_seq"] = frame.meta["seq"]
            self.emit(kind, msg)
