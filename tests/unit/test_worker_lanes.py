"""Throughput lanes (VisionWorker, performance.mode throughput): several frames of one pipeline
in flight at once, results published in frame order, track one frame at a time, a failing frame
costs only itself. A scripted processor stands in for the engine (prepare sleeps; finish records)."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import numpy as np

from agent.sources.base import FrameSlot
from agent.worker import VisionWorker
from tests.support.mqtt import wait_until


def _stop(worker: VisionWorker, stop: threading.Event) -> None:
    stop.set()
    for t in worker._threads:
        t.join(5)


class Scripted:
    """prepare: sleeps a random while (several frames overlap), raises on every ``fail_every``-th
    faces frame it gets; finish: records the order. Counts how many prepares of each kind ran at
    once."""

    def __init__(self, fail_every: int) -> None:
        self.fail_every = fail_every
        self.failed: list[int] = []
        self.calls = 0
        self.lock = threading.Lock()
        self.running: dict[str, int] = {}
        self.most: dict[str, int] = {}
        self.finished: dict[str, list[int]] = {}
        self.rng = random.Random(0)

    def wanted(self) -> list[str]:
        return ["faces", "track"]

    def prepare(self, kind: str, image: np.ndarray) -> tuple[str, int]:
        seq = int(image[0, 0, 0]) + 256 * int(image[0, 0, 1])
        with self.lock:
            self.running[kind] = self.running.get(kind, 0) + 1
            self.most[kind] = max(self.most.get(kind, 0), self.running[kind])
            pause = self.rng.uniform(0.001, 0.02)
            if kind == "faces":
                self.calls += 1
                fail = self.calls % self.fail_every == 0
                if fail:
                    self.failed.append(seq)
        try:
            time.sleep(pause)
            if kind == "faces" and fail:
                raise RuntimeError(f"scripted failure on frame {seq}")
        finally:
            with self.lock:
                self.running[kind] -= 1
        return kind, seq

    def finish(self, prepared: tuple[str, int]) -> dict[str, Any]:
        kind = prepared[0]
        with self.lock:
            self.finished.setdefault(kind, []).append(prepared[1])
        return {"frame": prepared[1]}

    def process(self, frame: Any) -> dict[str, dict[str, Any]]:  # the FrameProcessor protocol
        raise AssertionError("latency mode is not under test")

    def close(self) -> None:
        pass


def test_lanes_overlap_frames_and_publish_in_frame_order() -> None:
    slot = FrameSlot()
    proc = Scripted(fail_every=4)
    published: list[tuple[str, int, int]] = []
    emitted = threading.Lock()

    def emit(kind: str, msg: dict[str, Any]) -> None:
        with emitted:
            published.append((kind, msg["seq"], msg["frame"]))

    worker = VisionWorker(
        slot, proc, lambda _k, _p: None, observe=emit, device_id="t", max_pixels=10**6, mode="throughput", parallel=2
    )
    assert worker.mode == "throughput"
    stop = threading.Event()
    worker.start(stop)
    try:
        for _ in range(60):
            seq = slot.next_seq() + 1  # the seq put() will give this frame
            image = np.zeros((4, 4, 3), np.uint8)
            image[0, 0, 0], image[0, 0, 1] = seq % 256, seq // 256
            slot.put(image)
            time.sleep(0.004)  # faster than one faces lane alone: both threads get work
        wait_until(lambda: sum(k == "faces" for k, _, _ in published) >= 10, 10, "the lanes to catch up")
    finally:
        _stop(worker, stop)
    faces = [s for k, s, _ in published if k == "faces"]
    track = [s for k, s, _ in published if k == "track"]
    assert len(faces) >= 10 and len(track) >= 10, published
    assert faces == sorted(faces) and len(set(faces)) == len(faces)
    assert track == sorted(track) and len(set(track)) == len(track)
    assert all(s == f for _, s, f in published)  # each result went out with its own frame's seq
    assert proc.most["faces"] == 2  # two frames of faces in flight at once
    assert proc.most["track"] == 1  # the tracker saw one frame at a time
    assert proc.finished["faces"] == faces  # finish ran in frame order too
    # a failed frame costs only itself: counted, not published, and the frames after it went out
    assert proc.failed and worker.errors == len(proc.failed)
    assert not set(proc.failed) & set(faces)
    assert max(faces) > min(proc.failed)


def test_a_failing_publish_does_not_end_the_lane() -> None:
    slot = FrameSlot()
    proc = Scripted(fail_every=10**9)
    published: list[int] = []
    failed: list[int] = []

    def emit(kind: str, msg: dict[str, Any]) -> None:
        if kind == "faces" and not failed:
            failed.append(msg["seq"])
            raise OSError("the broker went away mid-publish")
        if kind == "faces":
            published.append(msg["seq"])

    worker = VisionWorker(
        slot, proc, lambda _k, _p: None, observe=emit, device_id="t", max_pixels=10**6, mode="throughput", parallel=2
    )
    stop = threading.Event()
    worker.start(stop)
    try:
        deadline = time.monotonic() + 10
        while len(published) < 5:
            assert time.monotonic() < deadline, (failed, published)
            seq = slot.next_seq() + 1
            image = np.zeros((4, 4, 3), np.uint8)
            image[0, 0, 0], image[0, 0, 1] = seq % 256, seq // 256
            slot.put(image)
            time.sleep(0.01)
    finally:
        _stop(worker, stop)
    assert failed and worker.errors == 1
    assert published == sorted(published) and published[0] > failed[0]


class Slow:
    """A latency-mode processor that takes ``pause`` seconds a frame and records the frames."""

    def __init__(self, pause: float) -> None:
        self.pause = pause
        self.seen: list[int] = []

    def process(self, frame: Any) -> dict[str, dict[str, Any]]:
        time.sleep(self.pause)
        self.seen.append(frame.seq)
        return {"faces": {"faces": []}}

    def wanted(self) -> list[str]:
        return ["faces"]

    def prepare(self, kind: str, image: np.ndarray) -> Any:
        raise AssertionError("throughput mode is not under test")

    def finish(self, prepared: Any) -> dict[str, Any] | None:
        raise AssertionError("throughput mode is not under test")

    def close(self) -> None:
        pass


def test_latency_mode_decodes_each_frame_once_inline_when_idle_and_aside_when_busy() -> None:
    import cv2

    slot = FrameSlot()
    proc = Slow(0.3)
    published: list[int] = []
    worker = VisionWorker(slot, proc, lambda _k, _p: None, observe=lambda _k, m: published.append(m["seq"]),
                          device_id="t", max_pixels=10**6)  # fmt: skip
    decoded_on: dict[int, str] = {}
    decode = worker._decode

    def recording(frame: Any) -> Any:
        if frame.image is None:
            decoded_on[frame.seq] = threading.current_thread().name
        return decode(frame)

    worker._decode = recording  # type: ignore[method-assign]
    jpeg = cv2.imencode(".jpg", np.full((48, 64, 3), 128, np.uint8))[1].tobytes()
    stop = threading.Event()
    worker.start(stop)
    try:
        first = slot.put(None, data=jpeg)
        wait_until(worker._busy.is_set, 10, "the pipeline thread to take the first frame")
        second = slot.put(None, data=jpeg)  # arrives while the pipeline is busy
        wait_until(lambda: len(published) >= 2, 10, "both results")
    finally:
        _stop(worker, stop)
    assert published == [first.seq, second.seq]
    assert decoded_on == {first.seq: "vision", second.seq: "decode"}  # once each, no hand-over when idle
    stages = worker.times.medians_ms()
    assert stages["frames"] == 2 and stages["pipeline"] >= 250
