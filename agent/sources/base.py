"""The latest-frame slot and the retrying source thread every source runs in."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger(__name__)

HEALTHY_S = 2.0  # after a failure, frames must flow this long before the error is cleared


@dataclass(frozen=True)
class Frame:
    image: np.ndarray | None  # BGR uint8, or None when ``data`` still needs decoding
    seq: int
    ts: float
    data: bytes | None = None  # encoded JPEG/PNG (pushed frames are decoded by the worker)
    meta: dict[str, str] = field(default_factory=dict)
    # stage times (agent/stage_times.py), time.perf_counter() values and seconds
    arrived: float = 0.0  # when the frame entered the slot
    ready: float = 0.0  # when the decode stage handed it on (decoded)
    decode_s: float = 0.0  # decoding the JPEG/PNG it came as
    waited_s: float = 0.0  # in the slot before the decode stage took it


class Latest:
    """Latest-only hand-over of frames between threads: a frame replaced before it was taken is
    counted in ``replaced`` and never processed."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self.replaced = 0

    def put_frame(self, frame: Frame) -> None:
        with self._cond:
            if self._frame is not None:
                self.replaced += 1
            self._frame = frame
            self._cond.notify_all()

    def take(self, timeout: float) -> Frame | None:
        """The newest frame not yet taken, waiting up to ``timeout``."""
        with self._cond:
            if self._frame is None:
                self._cond.wait(timeout)
            frame, self._frame = self._frame, None
            return frame


class FrameSlot(Latest):
    """Where sources put frames: holds only the newest; a frame replaced before it was taken
    counts as dropped. Numbers the frames and remembers the latest decoded one for commands."""

    def __init__(self) -> None:
        super().__init__()
        self._latest: Frame | None = None
        self.frames_in = 0
        self._seq = 0

    @property
    def frames_dropped(self) -> int:
        return self.replaced

    def next_seq(self) -> int:
        with self._cond:
            self._seq += 1
            return self._seq

    def put(self, image: np.ndarray | None, *, data: bytes | None = None, meta: dict[str, str] | None = None) -> Frame:
        with self._cond:  # an RLock: put_frame takes it again
            self._seq += 1
            frame = Frame(image, self._seq, time.time(), data, meta or {}, time.perf_counter())
            self.frames_in += 1
            self.put_frame(frame)
            return frame

    def take_encoded(self, timeout: float, wanted: Callable[[], bool]) -> Frame | None:
        """The newest frame if it still needs decoding and ``wanted()`` says to take it now (the
        decode stage: while the pipeline is busy); a decoded frame stays for the pipeline."""
        with self._cond:
            if self._frame is None or self._frame.image is not None:
                self._cond.wait(timeout)
            frame = self._frame
            if frame is None or frame.image is not None or not wanted():
                return None
            self._frame = None
            return frame

    def put_decoded(self, frame: Frame) -> None:
        """Hand back a frame the decode stage decoded, for the pipeline; if a newer frame came in
        meanwhile, the decoded one is dropped (counted) and the newer one stays."""
        with self._cond:
            if self._frame is not None:
                self.replaced += 1
                return
            self._frame = frame
            self._cond.notify_all()

    def mark_latest(self, frame: Frame) -> None:
        """The worker calls this with each decoded frame, for commands that use the latest frame."""
        with self._cond:
            self._latest = frame

    @property
    def latest(self) -> Frame | None:
        with self._cond:
            return self._latest


@dataclass
class SourceStatus:
    uri: str
    state: str = "idle"  # idle | running | retrying | ended | stopped
    error: str | None = None
    restarts: int = 0
    fps: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "uri": self.uri,
            "state": self.state,
            "error": self.error,
            "restarts": self.restarts,
            "fps": round(self.fps, 2),
        }


class Source:
    """Runs :meth:`frames` in a thread, pushing into the slot; failures retry with back-off."""

    def __init__(self, uri: str, slot: FrameSlot, retry_min: float = 1.0, retry_max: float = 30.0) -> None:
        self.uri = uri
        self.slot = slot
        self.status = SourceStatus(uri)
        self.retry_min = retry_min
        self.retry_max = retry_max
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def frames(self) -> Iterator[np.ndarray]:
        """Yield BGR frames; return when the source ends; raise OSError/RuntimeError on failure."""
        raise NotImplementedError

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"source:{self.uri}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.status.state = "stopped"

    def _run(self) -> None:
        """Pump frames; on failure keep the error in ``status`` and retry with back-off. The
        error (and the back-off) is cleared only once frames have flowed for ``HEALTHY_S``, so a
        source that fails again after a few frames (a truncated file) stays visibly failing."""
        delay = self.retry_min
        while not self._stop.is_set():
            self.status.state = "running"
            started = t_last = time.monotonic()
            n = 0
            stale = self.status.error  # an error of an earlier attempt
            try:
                for image in self.frames():
                    if self._stop.is_set():
                        return
                    self.slot.put(image)
                    n += 1
                    now = time.monotonic()
                    if self.status.error is not None and now - started >= HEALTHY_S:
                        log.info("source %s recovered", self.uri)
                        self.status.error = None
                        delay = self.retry_min
                    if now - t_last >= 1.0:
                        self.status.fps, t_last, n = n / (now - t_last), now, 0
                if self.status.error is stale:  # ended normally; a new error (a cut file) stays
                    self.status.error = None
                self.status.state = "ended"
                self.status.fps = 0.0
                log.info("source %s ended", self.uri)
                return
            except Exception as exc:  # a source failure must never take the agent down
                self.status.error = f"{type(exc).__name__}: {exc}"
                self.status.state = "retrying"
                self.status.fps = 0.0
                self.status.restarts += 1
                log.warning("source %s failed (%s); retrying in %.1fs", self.uri, self.status.error, delay)
                if self._stop.wait(delay):
                    return
                delay = min(delay * 2, self.retry_max)
