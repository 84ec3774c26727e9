"""Self-learning classifier service: feature model + classes bank + local unlabelled samples.

Class views live in the ``classes`` bank (one entry per view, synced across the fleet). The
unlabelled samples and whether ``learn`` has run are this camera's own state
(``{state}/classifier/samples-{model}.msgpack``). The classifier is rebuilt from those two
whenever either changes; ``learn`` is deterministic from them, so a rebuilt classifier that had
learned learns again to the same centres.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, ClassVar, Literal

import msgpack
import numpy as np
from pydantic import Field

from agent.bank.store import EntryBank
from agent.errors import CommandError
from agent.pipelines.live import Build, LiveThresholds, OneStep
from agent.pipelines.loader import ModelLoader
from agent.sections import Section
from agent.storage import atomic_write, move_aside
from agent.vision.class_policy import ClassPolicy
from agent.vision.classifier import SelfLearnClassifier
from agent.vision.features import FeatureExtractor

log = logging.getLogger(__name__)
MAX_SAMPLES = 10_000


class ClassifierThresholds(Section):
    section: ClassVar[str] = "classifier"
    policy: Literal["similarity", "max_distance", "maixpy"] = Field(
        "similarity",
        description="who names a frame: similarity (cosine, calibrated on photos) | max_distance (raw L2) | "
        "maixpy (ranking's first, never unknown)",
    )
    min_similarity: float = Field(
        0.56, ge=-1, le=1, description="similarity policy: `unknown` below this (MobileNetV2; also learn's cut-off)"
    )
    max_distance: float = Field(14.0, gt=0, description="max_distance policy: `unknown` beyond this raw L2 distance")


class ClassifierService(OneStep):
    def __init__(
        self, loader: ModelLoader, model: str, bank: EntryBank, controls: LiveThresholds, state_dir: Path
    ) -> None:
        self.loader = loader
        self.model_name = model
        self.bank = bank
        self.controls = controls
        self.samples_path = state_dir / "classifier" / f"samples-{bank.model}.msgpack"
        self._lock = threading.RLock()
        self._extractor: FeatureExtractor | None = None
        self.samples: list[np.ndarray] = []
        self.learned = False
        self._samples_version = 0
        self._built: tuple[tuple[int, int, float], SelfLearnClassifier] | None = None
        self._load_samples()

    @classmethod
    def build(cls, b: Build) -> ClassifierService:
        return cls(b.loader, b.models.features, b.bank, b.controls, b.state_dir)

    def warm_up(self) -> None:
        _ = self.extractor

    def prepare(self, image: np.ndarray) -> dict[str, Any]:
        return self.classify(image)

    @property
    def extractor(self) -> FeatureExtractor:
        with self._lock:
            if self._extractor is None:
                self._extractor = FeatureExtractor(self.loader.get(self.model_name))
            return self._extractor

    # -- local samples ------------------------------------------------------------------------
    def _load_samples(self) -> None:
        try:
            raw = self.samples_path.read_bytes()
        except FileNotFoundError:
            return
        try:
            doc = msgpack.unpackb(raw, raw=False)
            dim = int(doc["dim"])
            if dim != self.bank.dim:
                raise ValueError(f"samples of dim {dim}, model has {self.bank.dim}")
            data = np.frombuffer(doc["samples"], dtype="<f4").reshape(-1, dim)
            if not np.isfinite(data).all():
                raise ValueError("non-finite sample")
            self.samples = [row.copy() for row in data]
            self.learned = bool(doc["learned"])
        except (ValueError, KeyError, TypeError, msgpack.ExtraData, msgpack.FormatError) as exc:
            move_aside(self.samples_path, str(exc))

    def _save_samples(self, samples: list[np.ndarray], learned: bool) -> None:
        data = np.stack(samples).astype("<f4").tobytes() if samples else b""
        doc = {"v": 1, "dim": self.bank.dim, "samples": data, "learned": learned}
        try:
            atomic_write(self.samples_path, msgpack.packb(doc, use_bin_type=True))
        except OSError as exc:
            raise CommandError("unavailable", f"cannot save classifier samples: {exc}") from None
        self.samples, self.learned = samples, learned
        self._samples_version += 1

    # -- the classifier -----------------------------------------------------------------------
    def policy(self) -> ClassPolicy:
        t = self.controls.threshold(ClassifierThresholds)
        return ClassPolicy(t.policy, t.max_distance, t.min_similarity)

    def classifier(self) -> SelfLearnClassifier:
        with self._lock:
            policy = self.policy()
            # learn's weights depend on min_similarity: a new one re-learns
            key = (self.bank.version, self._samples_version, policy.min_similarity)
            if self._built is None or self._built[0] != key:
                clf = SelfLearnClassifier(self.bank.dim, policy=policy)
                for entry in self.bank.live():
                    clf.add_class(entry.label, entry.vector())
                for s in self.samples:
                    clf.add_sample(s)
                if self.learned:
                    clf.learn()
                self._built = (key, clf)
            clf = self._built[1]
            clf.policy = policy
            return clf

    def features(self, image: np.ndarray, box: list[float] | None) -> np.ndarray:
        try:
            return self.extractor.extract(image, box)
        except ValueError as exc:
            raise CommandError("bad_request", str(exc)) from None

    # -- operations ---------------------------------------------------------------------------
    def classify(self, image: np.ndarray) -> dict[str, Any]:
        vec = self.extractor.extract(image)
        with self._lock:
            return self.classifier().classify(vec).to_result()

    def classify_batch(self, images: list[np.ndarray]) -> list[dict[str, Any]]:
        """Several images at once (offline use): the same results as :meth:`classify`, batched."""
        vecs = self.extractor.extract_batch(images)
        with self._lock:
            return [r.to_result() for r in self.classifier().classify_batch(vecs)]

    def add_class(self, label: str, image: np.ndarray, box: list[float] | None) -> dict[str, Any]:
        vec = self.features(image, box)
        with self._lock:
            self.bank.add(label, [vec])
            clf = self.classifier()
            cid = clf.labels.index(label)
            return {"label": label, "class_id": cid, "views": clf.view_counts()[cid]}

    def add_sample(self, image: np.ndarray, box: list[float] | None) -> dict[str, Any]:
        vec = self.features(image, box)
        with self._lock:
            if not self.bank.live():
                raise CommandError("conflict", "add a class before adding samples (as MaixPy does)")
            if len(self.samples) >= MAX_SAMPLES:
                raise CommandError("too_large", f"at most {MAX_SAMPLES} samples; learn and clear some first")
            self._save_samples([*self.samples, vec], self.learned)
            return {"samples": len(self.samples)}

    def learn(self) -> dict[str, Any]:
        with self._lock:
            clf = self.classifier()
            epochs = clf.learn()
            if not self.learned:
                self._save_samples(self.samples, True)
                self._built = ((self.bank.version, self._samples_version, clf.policy.min_similarity), clf)
            return {"epochs": epochs, "learned": [lb for lb, ok in zip(clf.labels, clf.learned(), strict=True) if ok]}

    def remove_class(self, label: str) -> dict[str, Any]:
        gone = self.bank.delete(lambda e: e.label == label)
        if not gone:
            raise CommandError("not_found", f"no class is labelled {label!r}")
        return {"label": label, "removed": len(gone)}

    def clear(self) -> dict[str, Any]:
        with self._lock:
            gone = self.bank.delete(lambda e: True)
            self._save_samples([], False)
            return {"removed": len(gone)}

    def list(self) -> dict[str, Any]:
        with self._lock:
            clf = self.classifier()
            learned = clf.learned()
            classes = [
                {"label": lb, "class_id": i, "views": n, "learned": learned[i]}
                for i, (lb, n) in enumerate(zip(clf.labels, clf.view_counts(), strict=True))
            ]
            return {"classes": classes, "samples": len(self.samples), "dim": self.bank.dim}

    def import_samples(self, samples: np.ndarray) -> None:
        with self._lock:
            self._save_samples([*self.samples, *[row.copy() for row in samples]], self.learned)
