"""Tracking service: one NanoTrack target at a time, started and stopped by commands."""

from __future__ import annotations

import threading
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from agent.errors import CommandError
from agent.pipelines.live import Build, LiveThresholds, OneStep
from agent.pipelines.loader import ModelLoader
from agent.sections import Section
from agent.vision.track import NanoTracker, TrackParams


class TrackThresholds(Section):
    section: ClassVar[str] = "track"
    score: float = Field(0.9, ge=0, le=1.01, description="tracker state moves only when score ≥ this (MaixPy)")


class TrackService(OneStep):
    def __init__(self, loader: ModelLoader, model: str, controls: LiveThresholds) -> None:
        self.loader = loader
        self.model_name = model  # "nanotrack_v2" or "nanotrack_v3"
        self.controls = controls
        self._tracker: NanoTracker | None = None
        self._lock = threading.Lock()
        self.active = False
        self.last: dict[str, Any] | None = None
        self.target = 0  # counts track/start: results carry it, so a restart is never "found"

    @classmethod
    def build(cls, b: Build) -> TrackService:
        return cls(b.loader, b.models.tracker, b.controls)

    def warm_up(self) -> None:
        """The tracker's models load at track/start."""

    def not_ready(self) -> str | None:
        return None if self.active else "no target is being tracked: send track/start first"

    def prepare(self, image: np.ndarray) -> dict[str, Any] | None:
        return self.step(image)

    def _make(self) -> NanoTracker:
        backbone = self.loader.get(f"{self.model_name}_backbone")
        head = self.loader.get(f"{self.model_name}_head")
        return NanoTracker(backbone, head, TrackParams(score=self.controls.threshold(TrackThresholds).score))

    def start(self, image: np.ndarray, box: list[float]) -> dict[str, Any]:
        if len(box) != 4:
            raise CommandError("bad_request", "box must be [x, y, w, h]")
        with self._lock:
            tracker = self._make()
            try:
                tracker.init(image, (float(box[0]), float(box[1]), float(box[2]), float(box[3])))
            except ValueError as exc:
                raise CommandError("bad_request", str(exc)) from None
            self.target += 1
            self._tracker, self.active, self.last = tracker, True, None
            target = self.target
        return {"box": [float(v) for v in box], "state": "tracking", "model": self.model_name, "target": target}

    def stop(self) -> dict[str, Any]:
        with self._lock:
            was = self.active
            self._tracker, self.active = None, False
        return {"stopped": was}

    def step(self, image: np.ndarray) -> dict[str, Any] | None:
        with self._lock:
            tracker = self._tracker
            if tracker is None:
                return None
            tracker.threshold = self.controls.threshold(TrackThresholds).score  # live, like MaixPy's track(img, th)
            r = tracker.track(image)
            target = self.target
        result = {"box": [round(v, 2) for v in r.box], "score": round(r.score, 4), "state": r.state, "target": target}
        self.last = result
        return result
