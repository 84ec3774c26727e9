"""Load each model once, on first use, from the manifest and the models folder, on the engine and
thread count chosen for it (``agent.models.tune``)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agent.models.manifest import Manifest, ModelSpec
from agent.models.tune import Choice, SpinSetting, forced_spin, spin_of
from agent.vision.runtime import Model, load_model


class ModelLoader:
    """A model in ``choices`` runs on its chosen engine, threads and spinning; any other on
    ``engine`` with ``threads`` threads, or one when its role is in ``one_thread``
    (``Settings.one_thread_roles``: networks too small for a second thread to pay), its workers
    spinning as ``spin`` forces (``auto``: sleeping). ``pin``: onnxruntime workers on CPUs of
    their own."""

    def __init__(
        self,
        manifest: Manifest,
        models_dir: Path,
        threads: int,
        spin: SpinSetting = "auto",
        one_thread: frozenset[str] = frozenset(),
        choices: Mapping[str, Choice] | None = None,
        engine: str = "onnxruntime",
        pin: bool = True,
    ) -> None:
        self.manifest = manifest
        self.models_dir = models_dir
        self.threads = threads
        self.spin = spin
        self.pin = pin
        self.one_thread = one_thread
        self.engine = engine
        self.choices: dict[str, Choice] = dict(choices or {})
        self._models: dict[str, Model] = {}
        self._lock = threading.Lock()

    def spec(self, name: str) -> ModelSpec:
        return self.manifest.get(name)

    def default_threads(self, name: str) -> int:
        return 1 if self.manifest.get(name).role in self.one_thread else self.threads

    def choice(self, name: str) -> Choice:
        c = self.choices.get(name)
        if c is not None:
            return c
        threads = self.default_threads(name)
        return Choice(self.engine, threads, "default", spin=spin_of(self.engine, threads, forced_spin(self.spin)))

    def get(self, name: str) -> Model:
        with self._lock:
            model = self._models.get(name)
            if model is None:
                spec = self.manifest.get(name)
                c = self.choice(name)
                model = load_model(spec, self.models_dir, c.engine, c.threads, c.spin, self.pin)
                self._models[name] = model
            return model

    def loaded(self) -> list[str]:
        with self._lock:
            return sorted(self._models)

    def report(self) -> dict[str, dict[str, Any]]:
        """Each planned or loaded model's engine, threads, spinning, how it was chosen and the
        measured medians per candidate, warm and cold (``state`` and ``system/info``)."""
        names = sorted(set(self.choices) | set(self.loaded()))
        return {n: {**self.choice(n).as_dict(), "loaded": n in self._models} for n in names}
