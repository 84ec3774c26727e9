"""The vision worker: take the newest frame, run the enabled pipelines, publish the results.

Frames that arrive encoded (JPEG/PNG pushed on ``frame/in``) are decoded once: by the pipeline
thread itself when it is idle (no hand-over between threads), else by a decode stage of their own
while it is busy, so the decoding of frame N+1 overlaps the inference of frame N. Only the newest
frame waits (an older one still waiting is dropped and counted), so the next frame processed is
always the freshest: no MaixPy ``dual_buff`` one-frame lag.

Two modes (``performance.mode``):

* ``latency`` (default): one frame at a time; its enabled pipelines run side by side (the
  engine's pool) and its results are published together as soon as they are ready.
* ``throughput``: one lane per pipeline, each taking the newest frame when it is free: a fast
  pipeline (track) is not held back by a slow one (faces), and the cores stay busy. A lane of
  any pipeline but track (whose every frame depends on the one before) has ``parallel`` threads
  that work on consecutive frames at once — the heavy, stateless part of the pipeline
  (``prepare``) side by side, the rest (``finish``: the faces' per-track vote) and the publishing
  one frame after the other, in the order the frames were taken. Each result carries its own
  frame's ``seq``; a pipeline's results stay in frame order.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Literal, Protocol

import numpy as np

from agent.mqtt import codec, envelope
from agent.pipelines.registry import PIPELINES
from agent.sources.base import Frame, FrameSlot, Latest
from agent.stage_times import StageTimes
from agent.vision.decode import ImageDecodeError, decode_image

log = logging.getLogger(__name__)

LANES = tuple(p.kind for p in PIPELINES)
SEQUENTIAL = frozenset(p.kind for p in PIPELINES if p.sequential)  # one lane thread: every frame needs the last


class FrameProcessor(Protocol):
    """The engine as the worker drives it (agent/pipelines/engine.py)."""

    def process(self, frame: Frame) -> dict[str, dict[str, Any]]:
        """Results by kind (``classify``, ``faces``, ``segments``, ``track``) for one frame."""
        ...

    def wanted(self) -> list[str]:
        """The kinds to compute for a live frame now."""
        ...

    def prepare(self, kind: str, image: np.ndarray) -> Any:
        """The stateless part of one pipeline on a live frame (frames side by side)."""
        ...

    def finish(self, prepared: Any) -> dict[str, Any] | None:
        """The rest, in frame order: the result body or None."""
        ...

    def close(self) -> None: ...


class _InOrder:
    """Lets the threads of one lane finish their frames in the order they took them."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._open: list[int] = []  # tickets (frame seqs) in the order taken
        self._taking = threading.Lock()

    def take(self, lane: Latest, timeout: float) -> Frame | None:
        """The lane's next frame with its ticket issued; one thread takes at a time, so the
        tickets go out in the order the frames were taken."""
        with self._taking:
            frame = lane.take(timeout)
            if frame is None or frame.image is None:
                return None
            with self._cond:
                self._open.append(frame.seq)
            return frame

    def wait_turn(self, ticket: int, stop: threading.Event) -> bool:
        """Wait until every frame taken before this one is done; False when stopping."""
        with self._cond:
            while self._open[0] != ticket:
                if stop.is_set():
                    return False
                self._cond.wait(0.2)
            return True

    def done(self, ticket: int) -> None:
        with self._cond:
            self._open.remove(ticket)
            self._cond.notify_all()


class _Rate:
    """Frames per second over a one-second window."""

    def __init__(self) -> None:
        self.fps = 0.0
        self._t0 = time.monotonic()
        self._n = 0

    def tick(self) -> None:
        self._n += 1
        now = time.monotonic()
        if now - self._t0 >= 1.0:
            self.fps, self._t0, self._n = self._n / (now - self._t0), now, 0


class VisionWorker:
    def __init__(
        self,
        slot: FrameSlot,
        processor: FrameProcessor | None,
        publish: Callable[[str, bytes], None],
        *,
        observe: Callable[[str, dict[str, Any]], None] | None = None,
        device_id: str,
        max_pixels: int,
        mode: Literal["latency", "throughput"] = "latency",
        parallel: int = 1,
    ) -> None:
        self.slot = slot
        self.processor = processor
        self.publish = publish  # (kind, msgpack payload): the result leaves the agent
        self.observe = observe or (lambda _kind, _msg: None)  # events, Home Assistant mirrors
        self.times = StageTimes()
        self.device_id = device_id
        self.max_pixels = max_pixels
        self.mode = mode if processor is not None else "latency"
        self.parallel = max(1, parallel)
        self.processed = 0
        self.errors = 0
        self.bad_frames = 0
        self.fps = 0.0
        self.last_ms = 0.0
        self.lane_fps: dict[str, float] = {}
        self._busy = threading.Event()  # latency mode: the pipeline thread is working on a frame
        self._lanes: dict[str, Latest] = {}
        self._rates: dict[str, _Rate] = {}
        self._order: dict[str, _InOrder] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.on_published: Callable[[Frame], None] | None = None  # the live view: frames whose results went out

    @property
    def dropped(self) -> int:
        """Decoded frames replaced by a newer one before processing took them (throughput mode:
        the frames the lane that skipped most skipped)."""
        return max((lane.replaced for lane in self._lanes.values()), default=0)

    def start(self, stop: threading.Event) -> None:
        threads = [threading.Thread(target=self._decode_loop, args=(stop,), name="decode", daemon=True)]
        if self.mode == "throughput":
            for kind in LANES:
                self._lanes[kind] = Latest()
                self._rates[kind] = _Rate()
                self._order[kind] = _InOrder()
                n = 1 if kind in SEQUENTIAL else self.parallel
                threads += [
                    threading.Thread(
                        target=self._lane_loop,
                        args=(kind, i, stop),
                        name=f"lane:{kind}" + (f":{i}" if n > 1 else ""),
                        daemon=True,
                    )
                    for i in range(n)
                ]
        else:
            threads.append(threading.Thread(target=self._run, args=(stop,), name="vision", daemon=True))
        for t in threads:
            t.start()
        self._threads = threads

    # -- decode stage -----------------------------------------------------------------------

    def _decode(self, frame: Frame) -> Frame | None:
        """The frame decoded, once (None for a bad frame, counted and logged), with its decode
        and slot wait times; the slot's ``latest`` for commands."""
        taken = time.perf_counter()
        image, decode_s = frame.image, 0.0
        if image is None and frame.data is not None:
            try:
                image = decode_image(frame.data, self.max_pixels)
            except ImageDecodeError as exc:
                self.bad_frames += 1
                log.warning("frame %d dropped: %s", frame.seq, exc)
                return None
            decode_s = time.perf_counter() - taken
        if image is None:
            return None
        waited = taken - frame.arrived if frame.arrived else 0.0
        frame = replace(frame, image=image, data=None, decode_s=decode_s, waited_s=waited, ready=time.perf_counter())
        self.slot.mark_latest(frame)
        return frame

    def _decode_loop(self, stop: threading.Event) -> None:
        """Throughput mode: decode every frame and hand it to every lane. Latency mode: decode
        the frames that come while the pipeline thread is busy, back into the slot."""
        lanes = self.mode == "throughput"
        while not stop.is_set():
            if lanes:
                frame = self.slot.take(0.2)
            elif self._busy.wait(0.2):
                frame = self.slot.take_encoded(0.2, self._busy.is_set)
            else:
                continue
            if frame is None:
                continue
            try:
                decoded = self._decode(frame)
            except Exception:  # never let one frame stop the stream
                self.errors += 1
                log.exception("decoding frame %d failed", frame.seq)
                continue
            if decoded is None:
                continue
            if lanes:
                with self._lock:
                    self.processed += 1
                for lane in self._lanes.values():
                    lane.put_frame(decoded)
            else:
                self.slot.put_decoded(decoded)

    # -- latency mode ---------------------------------------------------------------------------

    def _run(self, stop: threading.Event) -> None:
        rate = _Rate()
        try:
            while not stop.is_set():
                frame = self.slot.take(0.2)
                if frame is None:
                    continue
                t0 = time.perf_counter()
                self._busy.set()
                try:
                    self.step(frame)
                except Exception:  # a bad frame or a pipeline bug must never stop the stream
                    self.errors += 1
                    log.exception("processing frame %d failed", frame.seq)
                finally:
                    self._busy.clear()
                self.last_ms = (time.perf_counter() - t0) * 1000
                rate.tick()
                self.fps = rate.fps
        finally:
            self._close()

    def step(self, frame: Frame) -> None:
        """Process one frame now (decoding it first when it still needs it), publishing its results."""
        decoded = frame if frame.image is not None and frame.ready else self._decode(frame)
        if decoded is None:
            return
        self.processed += 1
        if self.processor is None:
            return
        started = time.perf_counter()
        results = self.processor.process(decoded)
        self._publish(decoded, results, started, time.perf_counter() - started)

    def _publish(self, frame: Frame, results: dict[str, dict[str, Any]], started: float, pipeline_s: float) -> None:
        """Encode and publish a frame's results, then hand them to ``observe``; records the
        frame's stage times."""
        assert frame.image is not None
        h, w = frame.image.shape[:2]
        encode_s = publish_s = 0.0
        out: list[tuple[str, dict[str, Any]]] = []
        for kind, body in results.items():
            msg = envelope.result(self.device_id, frame.seq, frame.ts, w, h, body)
            if "seq" in frame.meta:
                msg["frame_seq"] = frame.meta["seq"]
            t0 = time.perf_counter()
            payload = codec.encode(msg, "msgpack")
            t1 = time.perf_counter()
            self.publish(kind, payload)
            encode_s += t1 - t0
            publish_s += time.perf_counter() - t1
            out.append((kind, msg))
        if out:
            queue_s = frame.waited_s + (started - frame.ready if frame.ready else 0.0)
            self.times.record(frame.decode_s, queue_s, pipeline_s, encode_s, publish_s)
        for kind, msg in out:  # events, Home Assistant: after the results are out
            self.observe(kind, msg)
        if self.on_published is not None:  # the live view: a frame whose results went out
            self.on_published(frame)

    # -- throughput mode ----------------------------------------------------------------------

    def _lane_loop(self, kind: str, index: int, stop: threading.Event) -> None:
        lane, order = self._lanes[kind], self._order[kind]
        try:
            while not stop.is_set():
                frame = order.take(lane, 0.2)
                if frame is None:
                    continue
                try:
                    self._lane_step(kind, frame, stop)
                except Exception:  # publishing or bookkeeping: the lane must live on
                    with self._lock:
                        self.errors += 1
                    log.exception("lane %s failed on frame %d", kind, frame.seq)
                finally:
                    order.done(frame.seq)
        finally:
            if kind == LANES[0] and index == 0:
                self._close()

    def _lane_step(self, kind: str, frame: Frame, stop: threading.Event) -> None:
        processor = self.processor
        assert frame.image is not None and processor is not None
        if kind not in processor.wanted():
            with self._lock:
                self.lane_fps.pop(kind, None)
            return
        t0 = time.perf_counter()
        try:
            prepared = processor.prepare(kind, frame.image)
            if not self._order[kind].wait_turn(frame.seq, stop):
                return
            body = processor.finish(prepared)
        except Exception:  # one pipeline's failure must not stop its lane
            with self._lock:
                self.errors += 1
            log.exception("pipeline %s failed on frame %d", kind, frame.seq)
            return
        ms = (time.perf_counter() - t0) * 1000
        if body is not None:
            self._publish(frame, {kind: body}, t0, ms / 1000)
        with self._lock:
            rate = self._rates[kind]
            rate.tick()
            self.lane_fps[kind] = round(rate.fps, 2)
            self.last_ms = ms
            active = [v for v in self.lane_fps.values() if v > 0]
            self.fps = min(active) if active else 0.0

    def _close(self) -> None:
        if self.processor is not None:
            self.processor.close()
