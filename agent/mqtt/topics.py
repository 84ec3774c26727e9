"""Topic names (DESIGN §4) and the one registry that drives both SUBSCRIBE and dispatch."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Message:
    """An inbound message as the agent sees it: no paho types past the client."""

    topic: str
    payload: bytes
    retain: bool = False
    content_type: str | None = None
    response_topic: str | None = None
    correlation_data: bytes | None = None
    user_properties: tuple[tuple[str, str], ...] = ()


Sink = Callable[[Message], None]


@dataclass(frozen=True)
class Route:
    filter: str
    qos: int
    sink: Sink  # must not block: it runs on the network thread and only enqueues
    name: str = ""


@dataclass
class TopicRegistry:
    """Routes by topic filter. The client subscribes to exactly these and dispatches by them
    (matching topics with paho's own matcher, in agent/mqtt/client.py)."""

    _routes: list[Route] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    on_change: Callable[[Route, bool], None] | None = None  # set by the client: (route, added)

    def add(self, route: Route) -> None:
        with self._lock:
            self._routes.append(route)
        if self.on_change:
            self.on_change(route, True)

    def remove(self, filter_: str) -> None:
        with self._lock:
            removed = [r for r in self._routes if r.filter == filter_]
            self._routes = [r for r in self._routes if r.filter != filter_]
        if self.on_change:
            for r in removed:
                self.on_change(r, False)

    def routes(self) -> list[Route]:
        with self._lock:
            return list(self._routes)


@dataclass(frozen=True)
class Topics:
    """Every topic name of protocol v1 for one device."""

    prefix: str
    dev: str
    fleet: str

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.dev}"

    @property
    def availability(self) -> str:
        return f"{self.base}/availability"

    @property
    def state(self) -> str:
        return f"{self.base}/state"

    @property
    def commands(self) -> str:
        return f"{self.base}/cmd/#"

    @property
    def fleet_commands(self) -> str:
        return f"{self.prefix}/fleet/{self.fleet}/cmd/#"

    @property
    def frame_in(self) -> str:
        return f"{self.base}/frame/in"

    @property
    def snapshot(self) -> str:
        return f"{self.base}/snapshot"

    @property
    def everything(self) -> str:
        return f"{self.base}/#"

    @property
    def results(self) -> str:
        return f"{self.base}/result/#"

    @property
    def events(self) -> str:
        return f"{self.base}/event/#"

    def command(self, family: str, command: str) -> str:
        return f"{self.base}/cmd/{family}/{command}" if command else f"{self.base}/cmd/{family}"

    def fleet_command(self, family: str, command: str) -> str:
        base = f"{self.prefix}/fleet/{self.fleet}/cmd"
        return f"{base}/{family}/{command}" if command else f"{base}/{family}"

    @property
    def preview(self) -> str:
        return f"{self.base}/preview"

    def reply(self, family: str, command: str) -> str:
        return f"{self.base}/reply/{family}/{command}" if command else f"{self.base}/reply/{family}"

    def result(self, kind: str) -> str:
        return f"{self.base}/result/{kind}"

    def event(self, kind: str) -> str:
        return f"{self.base}/event/{kind}"

    def bank_filter(self, model: str) -> str:
        return f"{self.prefix}/fleet/{self.fleet}/bank/+/{model}/+"

    def bank_entry(self, bank: str, model: str, entry: str) -> str:
        return f"{self.prefix}/fleet/{self.fleet}/bank/{bank}/{model}/{entry}"

    def command_of(self, topic: str) -> tuple[str, str] | None:
        """``(family, command)`` of a device or fleet command topic; ``None`` if it is not one.

        ``…/cmd/infer`` (a family with no command, as DESIGN writes ``infer``/``snapshot``) gives
        ``("infer", "")``.
        """
        for base in (f"{self.base}/cmd/", f"{self.prefix}/fleet/{self.fleet}/cmd/"):
            if topic.startswith(base):
                parts = topic[len(base) :].split("/")
                if len(parts) == 1 and parts[0]:
                    return parts[0], ""
                if len(parts) == 2 and all(parts):
                    return parts[0], parts[1]
                return None
        return None
