"""The per-frame engine: run every enabled pipeline on a frame and return results by kind."""

from __future__ import annotations

import logging
import time
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
    ) -> None:
        self.controls = controls
        self.classifier = classifier
        self.faces = faces
        self.segment = segment
        self.track = track
        self.publish_on_change = publish_on_change
        self.last: dict[str, Any] = {}
        self.timings_ms: dict[str, float] = {}

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

    def process(self, frame: Frame) -> dict[str, dict[str, Any]]:
        image = frame.image
        assert image is not None
        p = self.controls.pipelines
        wanted = [
            k
            for k, on in (
                ("classify", p.classifier),
                ("faces", p.faces),
                ("segments", p.segment),
                ("track", p.track and self.track.active),
            )
            if on
        ]
        out: dict[str, dict[str, Any]] = {}
        for kind in wanted:
            t0 = time.perf_counter()
            body = self.run(kind, image, live=True)
            self.timings_ms[kind] = round((time.perf_counter() - t0) * 1000, 2)
            if body is None:
                continue
            if self.publish_on_change and self.last.get(kind) == body:
                continue
            self.last[kind] = body
            out[kind] = body
        return out

    def infer(self, pipeline: str, image: np.ndarray) -> dict[str, Any]:
        kind = KINDS.get(pipeline)
        if kind is None:
            raise CommandError("bad_request", f"unknown pipeline {pipeline!r} (classifier, faces, segment, track)")
        if kind == "track" and not self.track.active:
            raise CommandError("conflict", "no target is being tracked: send track/start first")
        body = self.run(kind, image, live=False)
        return body or {}
