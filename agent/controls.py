"""Live controls changed by commands: thresholds and enabled pipelines, persisted in the state dir.

Changes are validated by the same pydantic models as the settings, applied under one lock
(the vision worker reads a consistent snapshot between frames) and written atomically.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from agent.errors import CommandError
from agent.sections import Section, format_errors
from agent.settings import PipelinesSettings, Settings, Thresholds, section_of
from agent.storage import read_json, write_json

log = logging.getLogger(__name__)
T = TypeVar("T")


def deep_merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


class Controls:
    FILE = "controls.json"

    def __init__(self, settings: Settings, state_dir: Path) -> None:
        self.path = state_dir / self.FILE
        self.lock = threading.RLock()
        self.version = 0
        self.listeners: list[Callable[[], None]] = []
        thresholds = settings.thresholds.model_dump()
        pipelines = settings.pipelines.model_dump()
        saved = read_json(self.path)
        if isinstance(saved, dict):
            # What commands set last wins over the config file: they are the user's latest word.
            try:
                thresholds = Thresholds.model_validate(
                    deep_merge(thresholds, saved.get("thresholds") or {})
                ).model_dump()
                pipelines = PipelinesSettings.model_validate(
                    {**pipelines, **(saved.get("pipelines") or {})}
                ).model_dump()
            except ValidationError as exc:
                log.error("ignoring saved controls in %s: %s", self.path, "; ".join(format_errors(exc)))
        self.thresholds = Thresholds.model_validate(thresholds)
        self.pipelines = PipelinesSettings.model_validate(pipelines)

    def threshold(self, model: type[T]) -> T:
        """The live thresholds of one pipeline (the section its model names)."""
        return section_of(self.thresholds, model)

    def enabled(self, name: str) -> bool:
        """Whether pipelines.{name} is on."""
        return bool(getattr(self.pipelines, name))

    def _save(self) -> None:
        write_json(self.path, {"thresholds": self.thresholds.model_dump(), "pipelines": self.pipelines.model_dump()})
        self.version += 1
        for listener in list(self.listeners):
            listener()

    @staticmethod
    def _validate(model: type[Section], data: dict[str, Any]) -> Section:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise CommandError("bad_request", "; ".join(format_errors(exc))) from None

    def set_thresholds(self, patch: dict[str, Any]) -> Thresholds:
        with self.lock:
            new = self._validate(Thresholds, deep_merge(self.thresholds.model_dump(), patch))
            old = self.thresholds
            self.thresholds = new
            try:
                self._save()
            except OSError as exc:
                self.thresholds = old
                raise CommandError("unavailable", f"cannot save thresholds: {exc}") from None
            return new

    def set_pipelines(self, patch: dict[str, bool]) -> PipelinesSettings:
        with self.lock:
            new = self._validate(PipelinesSettings, {**self.pipelines.model_dump(), **patch})
            old = self.pipelines
            self.pipelines = new
            try:
                self._save()
            except OSError as exc:
                self.pipelines = old
                raise CommandError("unavailable", f"cannot save pipelines: {exc}") from None
            return new
