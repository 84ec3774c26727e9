"""What handlers may touch: the agent's services, passed in by ``app.py``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent.controls import Controls
from agent.settings import Settings


@dataclass
class Context:
    settings: Settings
    device_id: str
    controls: Controls
    info: Callable[[], dict[str, Any]]
    # Filled in by app.py as the pipelines and banks come up (see agent/app.py).
    services: dict[str, Any] = field(default_factory=dict)

    def service(self, name: str) -> Any:
        from agent.errors import CommandError

        try:
            return self.services[name]
        except KeyError:
            raise CommandError("unavailable", f"{name} is not available on this agent") from None
