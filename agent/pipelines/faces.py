"""Face recognition service: the FacePipeline, the faces bank and the live per-track voting."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from agent.bank.store import EntryBank
from agent.errors import CommandError
from agent.pipelines.live import Build, LiveThresholds
from agent.pipelines.loader import ModelLoader
from agent.sections import Section
from agent.vision.face_crops import encode_crop
from agent.vision.face_decision import DecisionRule
from agent.vision.face_detect import detector_kind
from agent.vision.face_negatives import NegativeIndex
from agent.vision.face_quality import QualityLimits
from agent.vision.faces import DEFAULT_MAX_FACES, FaceAnalysis, FacePipeline, FaceTracks

ENTRY_OVERHEAD = 2048  # an entry's fields, vector and signature around its crop (128-d: ~700 bytes)


class FaceThresholds(Section):
    section: ClassVar[str] = "face"
    match: float = Field(0.70, ge=0, le=1, description="name a face when 0.5+0.5·cos > match (calibrated for SFace)")
    margin: float = Field(
        0.07, ge=0, le=1, description="and the best identity beats the second-best by at least this (0 = MaixPy)"
    )
    margin_grey: float = Field(0.08, ge=0, le=1, description="the same for grey (IR/night) faces, if more than margin")
    min_eyes: float = Field(16.0, ge=0, description="faces with less px between the eyes are unknown, quality `small`")
    min_sharpness: float = Field(
        12.0, ge=0, description="faces blurrier than this (Laplacian variance) are unknown, quality `blurred`"
    )
    detect: float = Field(0.6, ge=0, le=1, description="face detector score threshold")
    nms: float = Field(0.4, ge=0, le=1, description="face detector NMS IoU")


def decision_of(th: FaceThresholds) -> tuple[DecisionRule, QualityLimits]:
    """The decision rule and quality gate of the face thresholds."""
    rule = DecisionRule(match=th.match, margin=th.margin, margin_grey=th.margin_grey)
    return rule, QualityLimits(min_eyes=th.min_eyes, min_sharpness=th.min_sharpness)


class FaceService:
    def __init__(
        self,
        loader: ModelLoader,
        detector: str,
        embedder: str,
        bank: EntryBank,
        controls: LiveThresholds,
        max_faces: int = DEFAULT_MAX_FACES,
        entry_bytes: int = 64 << 10,
    ) -> None:
        self.max_faces = max_faces
        self.crop_bytes = max(0, entry_bytes - ENTRY_OVERHEAD)  # a crop must fit a fleet entry
        # live unknown tracks → the review queue (agent.pipelines.face_review), set by app.py
        self.on_live: list[Callable[[FaceAnalysis, list[dict[str, Any]]], None]] = []
        self._negatives: tuple[int, NegativeIndex | None] | None = None
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

    def negatives(self) -> NegativeIndex | None:
        """The bank's negative examples (``face/reject``), rebuilt when the bank changes."""
        version = self.bank.version
        cache = self._negatives
        if cache is None or cache[0] != version:
            neg = self.bank.negatives()
            index = NegativeIndex(np.stack([e.vector() for e in neg]), [e.label for e in neg]) if neg else None
            cache = (version, index)
            self._negatives = cache
        return cache[1]

    @classmethod
    def build(cls, b: Build) -> FaceService:
        m = b.settings.models
        return cls(
            b.loader,
            m.face_detector,
            m.face_embedder,
            b.bank,
            b.controls,
            max_faces=b.settings.limits.faces_per_frame,
            entry_bytes=b.settings.limits.bank_entry_bytes,
        )

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

    def analyse(self, image: np.ndarray, *, corrections: bool = True) -> FaceAnalysis:
        """The stateless part (detect, embed, match): frames may be analysed side by side.
        ``corrections=False``: the decision before negatives (``face/reject`` picks its face so)."""
        th = self.controls.threshold(FaceThresholds)
        vectors, labels = self._bank()
        negatives = self.negatives() if corrections else None
        rule, limits = decision_of(th)
        return self.pipeline.analyse(
            image,
            vectors,
            labels,
            detect_th=th.detect,
            rule=rule,
            limits=limits,
            nms_th=th.nms,
            negatives=negatives,
        )

    def result(self, found: FaceAnalysis, *, live: bool) -> dict[str, Any]:
        """The ``faces`` result of an analysed frame; live frames are voted per face track, so
        they must come here in frame order."""
        entries = self.pipeline.entries(found, self.tracks if live else None)
        if live:
            for hook in self.on_live:
                hook(found, entries)
        return {"faces": entries}

    def enrol(self, image: np.ndarray, label: str | None, pick: Literal["largest", "unknown"]) -> dict[str, Any]:
        th = self.controls.threshold(FaceThresholds)
        vectors, labels = self._bank()
        rule, limits = decision_of(th)
        found = self.pipeline.enrol_candidates(
            image, vectors, labels, pick, detect_th=th.detect, rule=rule, limits=limits, negatives=self.negatives()
        )
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
            crop = encode_crop(self.pipeline.align(image, face), self.crop_bytes)
            (entry,) = self.bank.add_samples([(name, vec, crop, False)])
            added.append(
                {"label": name, "box": [round(v) for v in face.box], "score": round(face.score, 4), "sample": entry.id}
            )
        return {"label": added[0]["label"], "added": len(added), "faces": added}

    def forget(self, label: str, sample: str | None = None) -> dict[str, Any]:
        """Every sample and negative of ``label``, or the one entry ``sample`` of it."""
        if sample is not None:
            gone = self.bank.delete(lambda e: e.id == sample and e.label == label)
            if not gone:
                raise CommandError("not_found", f"{label!r} has no sample or negative with id {sample!r}")
            return {"label": label, "removed": 1, "sample": sample}
        gone = self.bank.delete(lambda e: e.label == label)
        if not gone:
            raise CommandError("not_found", f"no enrolled face is labelled {label!r}")
        return {"label": label, "removed": len(gone)}

    def rename(self, label: str, to: str) -> dict[str, Any]:
        if label == to:
            raise CommandError("bad_request", "the new label is the same as the old one")
        if to in self.bank.labels() or any(e.label == to for e in self.bank.negatives()):
            raise CommandError("conflict", f"label {to!r} exists already (forget it first, or enrol into it)")
        moved = self.bank.relabel(label, to)
        if not moved:
            raise CommandError("not_found", f"no enrolled face is labelled {label!r}")
        return {"label": label, "to": to, "moved": len(moved)}

    def list(self, crops: bool = False) -> dict[str, Any]:
        """People in class-id order with their samples and negatives (ids; crops on request);
        labels that only have negatives come last, with ``class_id`` null."""
        people: dict[str, dict[str, Any]] = {}
        for e in self.bank.live():
            people.setdefault(e.label, _person(e.label, len(people) + 1))["sample_list"].append(_item(e, crops))
        for e in self.bank.negatives():
            people.setdefault(e.label, _person(e.label, None))["negative_list"].append(_item(e, crops))
        for p in people.values():
            p["samples"], p["negatives"] = len(p["sample_list"]), len(p["negative_list"])
        return {"faces": list(people.values())}


def _person(label: str, class_id: int | None) -> dict[str, Any]:
    return {"label": label, "class_id": class_id, "samples": 0, "negatives": 0, "sample_list": [], "negative_list": []}


def _item(e: Any, crop: bool) -> dict[str, Any]:
    """One sample or negative in ``face/list``: id, when and where it was made, its crop's size."""
    out = {"id": e.id, "added": round(created_ms(e.id) / 1000, 3), "origin": e.origin, "crop_bytes": len(e.crop)}
    if crop and e.crop:
        out["crop"] = e.crop
    return out


def created_ms(entry_id: str) -> int:
    """Creation time from an entry id made by :func:`agent.bank.store.new_entry_id` (0 if other)."""
    return int(entry_id[:12], 16) if re.fullmatch(r"[0-9a-f]{24}", entry_id) else 0
