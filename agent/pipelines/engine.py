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
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from agent.errors import CommandError
from agent.pipelines.live import LiveService
from agent.pipelines.registry import PIPELINES, by_name, names
from agent.sources.base import Frame

log = logging.getLogger(__name__)


class Switches(Protocol):
    def enabled(self, name: str) -> bool:
        """Whether pipelines.{name} is on now."""
        ...


@dataclass(frozen=True)
class Prepared:
    """A live frame's pipeline run up to what keeps state across frames (:meth:`Engine.prepare`)."""

    kind: str
    work: Any
    seconds: float


class Engine:
    def __init__(
        self,
        controls: Switches,
        services: Mapping[str, LiveService],
        *,
        publish_on_change: bool = False,
        workers: int = 1,
    ) -> None:
        """``services``: each registry pipeline's service by pipeline name."""
        self.controls = controls
        self.services = {p.kind: services[p.name] for p in PIPELINES}
        self._names = {p.kind: p.name for p in PIPELINES}
        self.publish_on_change = publish_on_change
        self.workers = max(1, workers)
        self.last: dict[str, Any] = {}
        self.timings_ms: dict[str, float] = {}
        self.errors = 0  # pipeline runs that raised (logged; the frame's other results still go out)
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    def warm_up(self) -> None:
        """Load the models of the enabled pipelines now rather than on the first frame."""
        for kind, svc in self.services.items():
            if self.controls.enabled(self._names[kind]):
                svc.warm_up()

    def wanted(self) -> list[str]:
        """The result kinds to compute for a live frame now (enabled pipelines that are ready:
        track once started)."""
        return [
            kind
            for kind, svc in self.services.items()
            if self.controls.enabled(self._names[kind]) and svc.not_ready() is None
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
        work = self.services[kind].prepare(image)
        return Prepared(kind, work, time.perf_counter() - t0)

    def finish(self, prepared: Prepared) -> dict[str, Any] | None:
        """:meth:`run_live`'s result from a prepared frame; call it in frame order."""
        kind = prepared.kind
        t0 = time.perf_counter()
        body = self.services[kind].finish(prepared.work, live=True)
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
        """One pipeline on one image, whatever runs live (no per-track vote, no timings)."""
        spec = by_name(pipeline)
        if spec is None:
            raise CommandError("bad_request", f"unknown pipeline {pipeline!r} ({names()})")
        svc = self.services[spec.kind]
        reason = svc.not_ready()
        if reason is not None:
            raise CommandError("conflict", reason)
        return svc.finish(svc.prepare(image), live=False) or {}
