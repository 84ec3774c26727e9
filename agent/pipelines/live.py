"""What every pipeline service is to the engine (:class:`LiveService`), what its factory gets
(:class:`Build`), and the one thing services read from the live controls (:class:`LiveThresholds`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np

from agent.bank.store import EntryBank
from agent.pipelines.loader import ModelLoader

if TYPE_CHECKING:
    from agent.settings import ModelsSettings, Settings

T = TypeVar("T")


class LiveThresholds(Protocol):
    def threshold(self, model: type[T]) -> T:
        """The live value of a pipeline's thresholds section (``model.section``)."""
        ...


class LiveService(Protocol):
    """A pipeline as the engine runs it on live frames and ``infer`` images.

    ``prepare`` is the part that keeps no state between frames (several frames may be prepared
    side by side); ``finish`` the rest, called in frame order (live) and returning the result
    body, or None when there is nothing to publish."""

    def warm_up(self) -> None: ...

    def not_ready(self) -> str | None:
        """Why the pipeline cannot run now (track: no target), or None."""
        ...

    def prepare(self, image: np.ndarray) -> Any: ...

    def finish(self, work: Any, *, live: bool) -> dict[str, Any] | None: ...


class OneStep:
    """For a pipeline whose whole run is stateless: ``prepare`` does it all, ``finish`` passes the
    result on, and it is always ready."""

    def not_ready(self) -> str | None:
        return None

    def finish(self, work: dict[str, Any] | None, *, live: bool) -> dict[str, Any] | None:
        return work


@dataclass(frozen=True)
class Build:
    """What a pipeline's service factory gets (``Pipeline.service``)."""

    loader: ModelLoader
    controls: LiveThresholds
    settings: Settings
    bank_or_none: EntryBank | None = None

    @property
    def models(self) -> ModelsSettings:
        return self.settings.models

    @property
    def state_dir(self) -> Path:
        return self.settings.storage.dir

    @property
    def bank(self) -> EntryBank:
        if self.bank_or_none is None:
            raise TypeError("this pipeline declares no bank in the registry")
        return self.bank_or_none
