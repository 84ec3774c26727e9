"""The pipelines' services, their banks and the engine, built once from the settings.

Iterates the pipeline registry: a bank for each pipeline that declares one, a service from each
pipeline's factory. ``app.py`` wires these to MQTT; ``maix-agent infer`` uses them alone.
"""

from __future__ import annotations

from typing import TypeVar

from agent.bank.clock import HLC
from agent.bank.store import EntryBank
from agent.controls import Controls
from agent.models import Manifest, ModelSpec, load_manifest
from agent.models.tune import default_cache, plan
from agent.pipelines.engine import Engine
from agent.pipelines.live import Build, LiveService
from agent.pipelines.loader import ModelLoader
from agent.pipelines.registry import PIPELINES
from agent.settings import Settings

T = TypeVar("T")


def feature_dim(spec: ModelSpec) -> int:
    """The feature length a model outputs (last dim of its first output in the manifest)."""
    for shape in spec.outputs.values():
        if shape and isinstance(shape[-1], int):
            return shape[-1]
    raise ValueError(f"manifest entry {spec.name} has no fixed feature length")


def build_loader(s: Settings, manifest: Manifest) -> ModelLoader:
    """The loader of ``s``: each model the config uses on its planned engine and threads
    (``models.engine``; ``auto`` measures on first start, see ``agent.models.tune``). Unknown model
    names, in the config or in a ``models.engine`` map, raise ``ConfigError``."""
    engine = s.models.engine
    loader = ModelLoader(
        manifest,
        s.models.dir,
        s.model_threads(),
        s.model_spin(),
        one_thread=s.one_thread_roles(),
        engine=engine if isinstance(engine, str) and engine != "auto" else "onnxruntime",
        pin=s.models.pin,
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
        spin=s.model_spin(),
        pin=s.models.pin,
    )
    return loader


class Services:
    def __init__(self, settings: Settings, controls: Controls, clock: HLC, device_id: str) -> None:
        s = settings
        self.manifest: Manifest = load_manifest(s.models.manifest)
        self.loader = build_loader(s, self.manifest)  # unknown model names fail here, at start
        self.banks: dict[str, EntryBank] = {}
        self.by_name: dict[str, LiveService] = {}
        extras: list[object] = []
        for p in PIPELINES:
            bank = None
            if p.bank is not None:
                model = self.manifest.get(p.bank.model(s.models))
                bank = EntryBank(p.bank.name, model.fingerprint, feature_dim(model), s.storage.dir, clock, device_id)
                self.banks[p.bank.name] = bank
            build = Build(self.loader, controls, s, bank)
            service = p.service(build)
            self.by_name[p.name] = service
            extras.extend(p.companions(build, service))
        self.by_type: dict[type, object] = {type(svc): svc for svc in [*self.by_name.values(), *extras]}
        self.engine = Engine(
            controls,
            self.by_name,
            publish_on_change=s.results.publish == "change",
            workers=s.performance.workers,
        )

    def get(self, cls: type[T]) -> T:
        svc = self.by_type.get(cls)
        if not isinstance(svc, cls):
            raise LookupError(f"no {cls.__name__} among the pipelines")
        return svc
