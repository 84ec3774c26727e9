"""Integration fixtures: a real mosquitto per test module, agents in-process, a guard that turns
any handler exception the router swallowed (an ``internal`` error) into a test failure."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.app import Agent
from agent.mqtt.embedded import EmbeddedBroker
from agent.settings import load_settings
from tests.support.mqtt import TestClient


@pytest.fixture(scope="module")
def broker() -> Iterator[EmbeddedBroker]:
    b = EmbeddedBroker().start()
    yield b
    b.cleanup()


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


@pytest.fixture
def client(broker: EmbeddedBroker) -> Iterator[TestClient]:
    c = TestClient(broker.port)
    yield c
    c.close()


AgentFactory = Callable[..., Agent]


@pytest.fixture
def make_agent(broker: EmbeddedBroker, prefix: str, tmp_path: Path, models_dir: Path) -> Iterator[AgentFactory]:
    agents: list[Agent] = []
    swallowed: list[BaseException] = []

    def factory(dev: str = "cam1", *, start: bool = True, **overrides: Any) -> Agent:
        cfg: dict[str, Any] = {
            "mqtt": {
                "host": "127.0.0.1",
                "port": broker.port,
                "prefix": prefix,
                "reconnect_min": 1,
                "reconnect_max": 2,
                **overrides.pop("mqtt", {}),
            },
            "device": {"id": dev, "fleet": "f1", **overrides.pop("device", {})},
            "storage": {"dir": tmp_path / dev},
            "models": {"dir": models_dir, **overrides.pop("models", {})},
            "results": {"state_interval": 1.0},
            "pipelines": {"faces": False, "track": False, "segment": False, "classifier": False},
        }
        for key, value in overrides.items():
            cfg[key] = {**cfg.get(key, {}), **value} if isinstance(value, dict) else value
        agent = Agent(load_settings(None, **cfg))
        agent.router.on_internal_error.append(swallowed.append)
        agents.append(agent)
        if start:
            agent.start(connect_timeout=15)
        return agent

    yield factory
    for agent in agents:
        agent.stop()
    if swallowed:
        pytest.fail(f"handlers raised unexpected exceptions: {swallowed!r}", pytrace=False)
