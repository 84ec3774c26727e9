"""The per-frame engine: run every enabled pipeline on a frame and return results by kind.

With ``workers`` > 1 the pipelines of one frame run side by side on a small thread pool
(onnxruntime and the fastpath kernels release the GIL), so a frame costs about its slowest
pipeline rather than their sum. :meth:`Engine.run_live` runs a single pipeline on a live frame.
The worker's throughput lanes split it: :meth:`Engine.prepare` (the heavy, stateless part, which
may run on several frames at once) and :meth:`Engine.finish` (what keeps state across frames —
the faces' per-track vote, publish-on-change — called in frame order).
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from agent.controls import Controls
from agent.errors import CommandError
from agent.pipelines.classifier import ClassifierService
from agent.pipelines.faces import FaceService
from agent.pipelines.segment import SegmentService
from agent.pipelines.track import TrackService
from agent.sources.base import Frame

log = logging.getLogger(__name__)

KINDS = {
    "classifier": "classify",
    "classify": "classify",
    "faces": "faces",
    "face": "faces",
    "segment": "segments",
    "segments": "segments",
    "track": "track",
}


@dataclass(frozen=True)
class Prepared:
    """A live frame's pipeline run up to what keeps state across frames (:meth:`Engine.prepare`)."""

    kind: str
    work: Any
    seconds: float


class Engine:
    def __init__(
        self,
        controls: Controls,
        classifier: ClassifierService,
        faces: FaceService,
        segment: SegmentService,
        track: TrackService,
        *,
        publish_on_change: bool = False,
        workers: int = 1,
    ) -> None:
        self.controls = controls
        self.classifier = classifier
        self.faces = faces
        self.segment = segment
        self.track = track
        self.publish_on_change = publish_on_change
        self.workers = max(1, workers)
        self.last: dict[str, Any] = {}
        self.timings_ms: dict[str, float] = {}
        self.errors = 0  # pipeline runs that raised (logged; the frame's other results still go out)
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    def warm_up(self) -> None:
        """Load the models of the enabled pipelines now rather than on the first frame."""
        p = self.controls.pipelines
        for enabled, load in (
            (p.classifier, lambda: self.classifier.extractor),
            (p.faces, lambda: self.faces.pipeline),
            (p.segment, lambda: self.segment.segmenter),
        ):
            if enabled:
                load()

    def run(self, kind: str, image: np.ndarray, *, live: bool) -> dict[str, Any] | None:
        if kind == "classify":
            return self.classifier.classify(image)
        if kind == "faces":
            return self.faces.recognise(image, live=live)
        if kind == "segments":
            return self.segment.segment(image)
        if kind == "track":
            return self.track.step(image)
        raise ValueError(kind)

    def wanted(self) -> list[str]:
        """The result kinds to compute for a live frame now (enabled pipelines; track once started)."""
        p = self.controls.pipelines
        return [
            k
            for k, on in (
                ("classify", p.classifier),
                ("faces", p.faces),
                ("segments", p.segment),
                ("track", p.track and self.track.active),
            )
            if on
        ]

    def run_live(self, kind: str, image: np.ndarray) -> dict[str, Any] | None:
        """One pipeline on a live frame: its result, or None (nothing to publish: no result, or
        unchanged with ``publish_on_change``). Records the time; safe from several threads."""
        return self.finish(self.prepare(kind, image))

    def prepare(self, kind: str, image: np.ndarray) -> Prepared:
        """The part of a live frame's pipeline that keeps no state between frames (all of it but
        the faces' vote): several frames of one pipeline may be prepared side by side, except
        ``track``, whose every frame depends on the one before."""
        t0 = time.perf_counter()
        work: Any = self.faces.analyse(image) if kind == "faces" else self.run(kind, image, live=True)
        return Prepared(kind, work, time.perf_counter() - t0)

    def finish(self, prepared: Prepared) -> dict[str, Any] | None:
        """:meth:`run_live`'s result from a prepared frame; call it in frame order."""
        kind = prepared.kind
        t0 = time.perf_counter()
        if kind == "faces":
            body: dict[str, Any] | None = self.faces.result(prepared.work, live=True)
        else:
            body = prepared.work
        ms = round((prepared.seconds + time.perf_counter() - t0) * 1000, 2)
        with self._lock:
            self.timings_ms[kind] = ms
            if body is None:
                return None
            if self.publish_on_change and self.last.get(kind) == body:
                return None
            self.last[kind] = body
        return body

    def _safe_run(self, kind: str, image: np.ndarray, seq: int) -> dict[str, Any] | None:
        try:
            return self.run_live(kind, image)
        except Exception:  # one failing pipeline must not cost the frame its other results
            with self._lock:
                self.errors += 1
            log.exception("pipeline %s failed on frame %d", kind, seq)
            return None

    def process(self, frame: Frame) -> dict[str, dict[str, Any]]:
        image = frame.image
        assert image is not None
        wanted = self.wanted()
        if self.workers > 1 and len(wanted) > 1:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="pipeline")
            futures: list[Future[dict[str, Any] | None]] = [
                self._pool.submit(self._safe_run, kind, image, frame.seq) for kind in wanted
            ]
            bodies = [f.result() for f in futures]
        else:
            bodies = [self._safe_run(kind, image, frame.seq) for kind in wanted]
        return {kind: body for kind, body in zip(wanted, bodies, strict=True) if body is not None}

    def close(self) -> None:
        """Stop the pipeline thread pool (a later :meth:`process` starts a new one)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    def infer(self, pipeline: str, image: np.ndarray) -> dict[str, Any]:
        kind = KINDS.get(pipeline)
        if kind is None:
            raise CommandError("bad_request", f"unknown pipeline {pipeline!r} (classifier, faces, segment, track)")
        if kind == "track" and not self.track.active:
            raise CommandError("conflict", "no target is being tracked: send track/start first")
        body = self.run(kind, image, live=False)
        return body or {}
