"""Load each model once, on first use, from the manifest and the models folder."""

from __future__ import annotations

import threading
from pathlib import Path

from agent.models.manifest import Manifest, ModelSpec
from agent.vision.runtime import OnnxModel


class ModelLoader:
    """``threads`` onnxruntime threads a model; models whose role is in ``one_thread`` get one
    (``Settings.one_thread_roles``: networks too small for a second thread to pay)."""

    def __init__(
        self,
        manifest: Manifest,
        models_dir: Path,
        threads: int,
        spin: bool = False,
        one_thread: frozenset[str] = frozenset(),
    ) -> None:
        self.manifest = manifest
        self.models_dir = models_dir
        self.threads = threads
        self.spin = spin
        self.one_thread = one_thread
        self._models: dict[str, OnnxModel] = {}
        self._lock = threading.Lock()

    def spec(self, name: str) -> ModelSpec:
        return self.manifest.get(name)

    def get(self, name: str) -> OnnxModel:
        with self._lock:
            model = self._models.get(name)
            if model is None:
                spec = self.manifest.get(name)
                threads = 1 if spec.role in self.one_thread else self.threads
                model = OnnxModel(spec, self.models_dir, threads, self.spin)
                self._models[name] = model
            return model

    def loaded(self) -> list[str]:
        with self._lock:
            return sorted(self._models)
