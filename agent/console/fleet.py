"""Every camera the console has seen, from the agents' retained ``availability`` and ``state``."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from agent.settings import ID_RE


@dataclass
class Camera:
    dev: str
    online: bool = False
    state: dict[str, Any] = field(default_factory=dict)
    seen: float = 0.0

    def summary(self) -> dict[str, Any]:
        s = self.state
        return {
            "dev": self.dev,
            "online": self.online,
            "seen": self.seen,
            "fps": s.get("fps"),
            "pipelines": s.get("pipelines", {}),
            "thresholds": s.get("thresholds", {}),
            "warnings": s.get("warnings", []),
            "banks": s.get("banks", {}),
            "sync": s.get("bank_sync"),
            "version": s.get("version"),
            "fleet": s.get("fleet"),
            "source": s.get("source"),
            "models": s.get("models"),
            "track": s.get("track"),
            "preview": s.get("preview"),
            "uptime": s.get("uptime"),
        }


class Fleet:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.cameras: dict[str, Camera] = {}

    def device_of(self, topic: str) -> tuple[str, str] | None:
        """``(dev, rest)`` of a device topic ``{prefix}/{dev}/{rest}``; None for anything else."""
        head = f"{self.prefix}/"
        if not topic.startswith(head):
            return None
        dev, _, rest = topic[len(head) :].partition("/")
        if dev == "fleet" or not ID_RE.match(dev) or not rest:
            return None
        return dev, rest

    def update(self, dev: str, rest: str, payload: bytes) -> Camera | None:
        """Apply an ``availability`` or ``state`` message; the camera when it changed."""
        if rest == "availability":
            online = payload.strip() == b"online"
            if not payload and dev not in self.cameras:
                return None
            cam = self.cameras.setdefault(dev, Camera(dev))
            cam.online, cam.seen = online, time.time()
            return cam
        if rest == "state":
            try:
                state = json.loads(payload)
            except (ValueError, UnicodeDecodeError):
                return None
            if not isinstance(state, dict):
                return None
            cam = self.cameras.setdefault(dev, Camera(dev))
            cam.state, cam.seen = state, time.time()
            return cam
        return None

    def list(self) -> list[dict[str, Any]]:
        return [c.summary() for c in sorted(self.cameras.values(), key=lambda c: c.dev)]
