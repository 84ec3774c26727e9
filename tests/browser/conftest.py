"""Browser fixtures: Debian's chromium driven by Playwright (never a downloaded browser), a real
mosquitto, a real agent on a video with people, and `maix-agent console` as a subprocess."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.app import Agent
from agent.mqtt.embedded import EmbeddedBroker
from agent.settings import load_settings
from tests.support.mqtt import TestClient, wait_until

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser")


def chromium_path() -> str:
    for name in (os.environ.get("MAIX_AGENT_CHROMIUM"), *CHROMIUM, shutil.which("chromium")):
        if name and Path(name).is_file():
            return name
    pytest.fail("chromium not found (make setup installs Debian's chromium with apt-get)", pytrace=False)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def broker() -> Iterator[EmbeddedBroker]:
    b = EmbeddedBroker().start()
    yield b
    b.cleanup()


@pytest.fixture(scope="module")
def prefix() -> str:
    return f"b{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def mqtt(broker: EmbeddedBroker) -> Iterator[TestClient]:
    c = TestClient(broker.port)
    yield c
    c.close()


AgentFactory = Callable[..., Agent]


@pytest.fixture(scope="module")
def make_agent(
    broker: EmbeddedBroker, prefix: str, tmp_path_factory: pytest.TempPathFactory, models_dir: Path, eval_dir: Path
) -> Iterator[AgentFactory]:
    agents: list[Agent] = []
    state = tmp_path_factory.mktemp("state")

    def factory(dev: str = "cam1", **pipelines: bool) -> Agent:
        video = eval_dir / "faces" / "short_hamilton_clip.mp4"
        settings = load_settings(
            None,
            mqtt={"host": "127.0.0.1", "port": broker.port, "prefix": prefix, "reconnect_min": 1, "reconnect_max": 2},
            device={"id": dev, "fleet": "f1"},
            storage={"dir": state / dev},
            models={"dir": models_dir},
            results={"state_interval": 1.0},
            source={"uri": f"video:{video}", "loop": True, "fps": 10},
            pipelines={"faces": False, "track": True, "segment": False, "classifier": False, **pipelines},
        )
        agent = Agent(settings)
        agents.append(agent)
        agent.start(connect_timeout=15)
        return agent

    yield factory
    for agent in agents:
        agent.stop()


class ConsoleProcess:
    """The console subprocess; its output is drained into ``lines`` (shown when a test fails)."""

    def __init__(self, proc: subprocess.Popen[str], url: str, lines: list[str]) -> None:
        self.proc, self.url, self.lines = proc, url, lines
        out = proc.stdout
        assert out is not None
        threading.Thread(target=lambda: lines.extend(out), daemon=True).start()


def start_console(broker: EmbeddedBroker, prefix: str, **env: str) -> ConsoleProcess:
    environ = {
        **os.environ,
        "MAIX_AGENT_MQTT__HOST": "127.0.0.1",
        "MAIX_AGENT_MQTT__PORT": str(broker.port),
        "MAIX_AGENT_MQTT__PREFIX": prefix,
        "MAIX_AGENT_CONSOLE__PORT": "0",
        "MAIX_AGENT_CONSOLE__LEASE": "4",
        **env,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "console"],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("maix-agent console: http://"):
            url = line.split()[2]
            return ConsoleProcess(proc, url, lines)
    proc.wait(5)
    raise AssertionError("the console did not start:\n" + "".join(lines))


def stop_console(c: ConsoleProcess) -> None:
    c.proc.terminate()
    try:
        c.proc.wait(10)
    except subprocess.TimeoutExpired:
        c.proc.kill()
        c.proc.wait(5)


@pytest.fixture(scope="module")
def console(broker: EmbeddedBroker, prefix: str) -> Iterator[ConsoleProcess]:
    c = start_console(broker, prefix)
    yield c
    stop_console(c)


def request_ok(client: TestClient, prefix: str, dev: str, command: str, body: dict[str, Any] | None = None) -> Any:
    reply = client.request(prefix, dev, command, body, timeout=60)
    assert reply["ok"], reply
    return reply["data"]


__all__ = ["ConsoleProcess", "request_ok", "start_console", "stop_console", "wait_until"]
