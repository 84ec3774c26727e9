"""Load each model once, on first use, from the manifest and the models folder, on the engine and
thread count chosen for it (``agent.models.tune``)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agent.models.manifest import Manifest, ModelSpec
from agent.models.tune import Choice, default_cache, plan
from agent.settings import Settings
from agent.vision.runtime import Model, load_model


class ModelLoader:
    """A model in ``choices`` runs on its chosen engine and threads; any other on ``engine`` with
    ``threads`` threads, or one when its role is in ``one_thread`` (``Settings.one_thread_roles``:
    networks too small for a second thread to pay)."""

    def __init__(
        self,
        manifest: Manifest,
        models_dir: Path,
        threads: int,
        spin: bool = False,
        one_thread: frozenset[str] = frozenset(),
        choices: Mapping[str, Choice] | None = None,
        engine: str = "onnxruntime",
    ) -> None:
        self.manifest = manifest
        self.models_dir = models_dir
        self.threads = threads
        self.spin = spin
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
        return self.choices.get(name) or Choice(self.engine, self.default_threads(name), "default")

    def get(self, name: str) -> Model:
        with self._lock:
            model = self._models.get(name)
            if model is None:
                spec = self.manifest.get(name)
                c = self.choice(name)
                model = load_model(spec, self.models_dir, c.engine, c.threads, self.spin)
                self._models[name] = model
            return model

    def loaded(self) -> list[str]:
        with self._lock:
            return sorted(self._models)

    def report(self) -> dict[str, dict[str, Any]]:
        """Each planned or loaded model's engine, threads, how it was chosen and the measured
        median ms per ``engine/threads`` (``state`` and ``system/info``)."""
        names = sorted(set(self.choices) | set(self.loaded()))
        return {n: {**self.choice(n).as_dict(), "loaded": n in self._models} for n in names}


def build_loader(s: Settings, manifest: Manifest) -> ModelLoader:
    """The loader of ``s``: each model the config uses on its planned engine and threads
    (``models.engine``; ``auto`` measures on first start, see ``agent.models.tune``). Unknown model
    names, in the config or in a ``models.engine`` map, raise ``ConfigError``."""
    engine = s.models.engine
    loader = ModelLoader(
        manifest,
        s.models.dir,
        s.model_threads(),
        s.models.spin,
        one_thread=s.one_thread_roles(),
        engine=engine if isinstance(engine, str) and engine != "auto" else "onnxruntime",
    )
    names = s.models_in_use()
    for name in (*names, *(engine if isinstance(engine, dict) else {})):
        manifest.get(name)
    loader.choices = plan(
        manifest,
        names,
        engine,
        s.engine_threads(),
        loader.default_threads,
        models_dir=s.models.dir,
        eval_dir=s.tune_images(),
        cache_path=s.models.tune_cache or default_cache(),
    )
    return loader
