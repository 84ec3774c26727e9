"""Accuracy tests drive the agent only through its public interface: MQTT commands on a real
broker, or the ``maix-agent infer`` command line. Missing eval data fails (tests/conftest.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import engine_env
from tests.integration.conftest import broker, client, make_agent, prefix

REPO = Path(__file__).resolve().parents[2]


def cli_infer(args: list[str], env: dict[str, str] | None = None, timeout: float = 900) -> list[dict[str, Any]]:
    """Run ``maix-agent infer …`` and return its JSON lines."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("MAIX_AGENT_")}
    full.update({"MAIX_AGENT_MODELS__DIR": str(REPO / "models"), **engine_env(), **(env or {})})
    proc = subprocess.run(
        [sys.executable, "-m", "agent", "infer", *args],
        cwd=REPO,
        env=full,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


# Accuracy holds on every engine: each test runs with the tuned choice (``auto``: measured once
# per session into the session's tune cache, tests/conftest.py) and with each engine forced.
ENGINES = ("auto", "onnxruntime", "opencv")


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def infer(engine: str) -> Any:
    """``cli_infer`` with ``models.engine`` set to this test's engine."""

    def run(args: list[str], env: dict[str, str] | None = None, timeout: float = 900) -> list[dict[str, Any]]:
        return cli_infer(args, {"MAIX_AGENT_MODELS__ENGINE": engine, **(env or {})}, timeout)

    return run


__all__ = ["broker", "cli_infer", "client", "engine", "infer", "make_agent", "prefix"]
