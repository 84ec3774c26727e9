"""Face recognition service: the FacePipeline, the faces bank and the live per-track voting."""

from __future__ import annotations

import threading
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from agent.bank.store import EntryBank
from agent.errors import CommandError
from agent.pipelines.live import Build, LiveThresholds
from agent.pipelines.loader import ModelLoader
from agent.sections import Section
from agent.vision.face_detect import detector_kind
from agent.vision.faces import DEFAULT_MAX_FACES, FaceAnalysis, FacePipeline, FaceTracks


class FaceThresholds(Section):
    section: ClassVar[str] = "face"
    match: float = Field(0.70, ge=0, le=1, description="name a face when 0.5+0.5·cos > match (calibrated for SFace)")
    detect: float = Field(0.6, ge=0, le=1, description="face detector score threshold")
    nms: float = Field(0.4, ge=0, le=1, description="face detector NMS IoU")


class FaceService:
    def __init__(
        self,
        loader: ModelLoader,
        detector: str,
        embedder: str,
        bank: EntryBank,
        controls: LiveThresholds,
        max_faces: int = DEFAULT_MAX_FACES,
    ) -> None:
        self.max_faces = max_faces
        self.loader = loader
        self.detector_name = detector
        self.embedder_name = embedder
        self.bank = bank
        self.controls = controls
        self.tracks = FaceTracks()
        self._pipeline: FacePipeline | None = None
        self._lock = threading.Lock()
        self._cache: tuple[int, np.ndarray, list[str]] | None = None

    @property
    def pipeline(self) -> FacePipeline:
        with self._lock:
            if self._pipeline is None:
                self._pipeline = FacePipeline(
                    self.loader.get(self.detector_name),
                    detector_kind(self.detector_name),
                    self.loader.get(self.embedder_name),
                    max_faces=self.max_faces,
                )
            return self._pipeline

    def _bank(self) -> tuple[np.ndarray, list[str]]:
        version = self.bank.version
        cache = self._cache
        if cache is None or cache[0] != version:
            vectors, labels = self.bank.matrix()
            cache = (version, vectors, labels)
            self._cache = cache
        return cache[1], cache[2]

    @classmethod
    def build(cls, b: Build) -> FaceService:
        m = b.models
        return cls(b.loader, m.face_detector, m.face_embedder, b.bank, b.controls, max_faces=b.max_faces)

    # -- the live pipeline (agent/pipelines/live.py) --------------------------------------
    def warm_up(self) -> None:
        _ = self.pipeline

    def not_ready(self) -> str | None:
        return None

    def prepare(self, image: np.ndarray) -> FaceAnalysis:
        return self.analyse(image)

    def finish(self, work: FaceAnalysis, *, live: bool) -> dict[str, Any]:
        return self.result(work, live=live)

    def recognise(self, image: np.ndarray, *, live: bool) -> dict[str, Any]:
        return self.result(self.analyse(image), live=live)

    def analyse(self, image: np.ndarray) -> FaceAnalysis:
        """The stateless part (detect, embed, match): frames may be analysed side by side."""
        th = self.controls.threshold(FaceThresholds)
        vectors, labels = self._bank()
        return self.pipeline.analyse(image, vectors, labels, detect_th=th.detect, match_th=th.match, nms_th=th.nms)

    def result(self, found: FaceAnalysis, *, live: bool) -> dict[str, Any]:
        """The ``faces`` result of an analysed frame; live frames are voted per face track, so
        they must come here in frame order."""
        return {"faces": self.pipeline.entries(found, self.tracks if live else None)}

    def enrol(self, image: np.ndarray, label: str | None, pick: Literal["largest", "unknown"]) -> dict[str, Any]:
        th = self.controls.threshold(FaceThresholds)
        vectors, labels = self._bank()
        found = self.pipeline.enrol_candidates(image, vectors, labels, pick, detect_th=th.detect, match_th=th.match)
        if not found:
            what = "no face" if pick == "largest" else "no unknown face"
            raise CommandError("not_found", f"{what} found in the image (face.detect threshold {th.detect})")
        added: list[dict[str, Any]] = []
        existing = set(labels)
        for i, (face, vec) in enumerate(found):
            if label is None:  # MaixPy's app: every unknown face becomes id_N
                n = len(existing) + 1
                while f"id_{n}" in existing:
                    n += 1
                name = f"id_{n}"
            else:
                name = label if i == 0 else f"{label}_{i + 1}"
            existing.add(name)
            self.bank.add(name, [vec])
            added.append({"label": name, "box": [round(v) for v in face.box], "score": round(face.score, 4)})
        return {"label": added[0]["label"], "added": len(added), "faces": added}

    def forget(self, label: str) -> dict[str, Any]:
        gone = self.bank.delete(lambda e: e.label == label)
        if not gone:
            raise CommandError("not_found", f"no enrolled face is labelled {label!r}")
        return {"label": label, "removed": len(gone)}

    def rename(self, label: str, to: str) -> dict[str, Any]:
        if label == to:
            raise CommandError("bad_request", "the new label is the same as the old one")
        if to in self.bank.labels():
            raise CommandError("conflict", f"label {to!r} exists already (forget it first, or enrol into it)")
        moved = self.bank.relabel(label, to)
        if not moved:
            raise CommandError("not_found", f"no enrolled face is labelled {label!r}")
        return {"label": label, "to": to, "moved": len(moved)}

    def list(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for e in self.bank.live():
            counts[e.label] = counts.get(e.label, 0) + 1
        return {"faces": [{"label": k, "class_id": i + 1, "samples": v} for i, (k, v) in enumerate(counts.items())]}
