"""What handlers may touch, typed: the agent's parts as Protocols and its services by type.

``app.py`` builds one :class:`Context`; a handler asks for a pipeline service by its class
(``ctx.service(FaceService)``), never by a string, and never calls into the app.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np

from agent.errors import CommandError
from agent.sources.base import Frame

if TYPE_CHECKING:
    from agent.controls import Controls
    from agent.settings import Settings

T = TypeVar("T")


class LatestFrame(Protocol):
    @property
    def latest(self) -> Frame | None:
        """The newest decoded frame of the source, if any."""
        ...


class Inferer(Protocol):
    def infer(self, pipeline: str, image: np.ndarray) -> dict[str, Any]:
        """One pipeline's result body for one image."""
        ...


class Snapshotter(Protocol):
    def __call__(self, frame: Frame, draw: bool) -> int:
        """Publish the frame as JPEG (results drawn when ``draw``); its size in bytes."""
        ...


@dataclass
class Context:
    settings: Settings
    device_id: str
    controls: Controls
    info: Callable[[], dict[str, Any]]
    frames: LatestFrame
    engine: Inferer
    snapshot: Snapshotter
    services: Mapping[type, object] = field(default_factory=dict)

    def service(self, cls: type[T]) -> T:
        svc = self.services.get(cls)
        if not isinstance(svc, cls):
            raise CommandError("unavailable", f"{cls.__name__} is not available on this agent")
        return svc
