"""Load each model once, on first use, from the manifest and the models folder."""

from __future__ import annotations

import threading
from pathlib import Path

from agent.models.manifest import Manifest, ModelSpec
from agent.vision.runtime import OnnxModel


class ModelLoader:
    def __init__(self, manifest: Manifest, models_dir: Path, threads: int, spin: bool = False) -> None:
        self.manifest = manifest
        self.models_dir = models_dir
        self.threads = threads
        self.spin = spin
        self._models: dict[str, OnnxModel] = {}
        self._lock = threading.Lock()

    def spec(self, name: str) -> ModelSpec:
        return self.manifest.get(name)

    def get(self, name: str) -> OnnxModel:
        with self._lock:
            model = self._models.get(name)
            if model is None:
                model = OnnxModel(self.manifest.get(name), self.models_dir, self.threads, self.spin)
                self._models[name] = model
            return model

    def loaded(self) -> list[str]:
        with self._lock:
            return sorted(self._models)
