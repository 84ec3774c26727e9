"""Every ``maix-agent …`` line of the README's shell blocks, run as written (a user's shell, a
real broker), so the docs cannot drift from the CLI.

The lines run in a folder that holds the files they name (``my.yaml`` for a broker of the test,
``group.jpg``, ``alice.jpg``… copied from ../shared/eval); ``/path/to/mirror`` is the models
mirror. ``maix-agent --config my.yaml run`` is the agent ``cam1`` the other lines talk to; it,
``watch`` and ``console`` run until they have shown what they are for, then get Ctrl-C (SIGINT)
and must exit 0.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from agent.mqtt.embedded import EmbeddedBroker
from tests.conftest import engine_env
from tests.support.mqtt import TestClient

REPO = Path(__file__).resolve().parents[2]
MIRROR = REPO.parent / "shared" / "models"
# Lines of the README's prose that are commands too (inline code, not shell blocks).
INLINE = ["maix-agent print-config", "maix-agent models list", "maix-agent models verify"]


def readme_lines() -> list[str]:
    """The distinct ``maix-agent`` command lines of the README's ```sh blocks (comments dropped)."""
    text = (REPO / "README.md").read_text()
    lines = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line.startswith("maix-agent ") and line not in lines:  # each distinct line once
                lines.append(line)
    return lines


def test_the_readme_has_the_lines_this_test_knows() -> None:
    lines = readme_lines()
    assert "maix-agent check-config --config my.yaml" in lines
    assert "maix-agent --config my.yaml run" in lines
    assert len(lines) >= 12, lines


def _files(eval_dir: Path, where: Path) -> None:
    faces, bag = eval_dir / "faces", eval_dir / "tracking" / "vot15_bag" / "imgs"
    frames = sorted(bag.glob("*.jpg"))[:3]
    copies = {
        "group.jpg": faces / "two_people.jpg",
        "alice.jpg": faces / "obama.jpg",
        "bob.jpg": faces / "biden.jpg",
        "mug.jpg": eval_dir / "images" / "coffee.png",
        "cup.jpg": eval_dir / "images" / "chelsea.png",
        "q1.jpg": eval_dir / "images" / "astronaut.png",
        "q2.jpg": eval_dir / "images" / "coffee.png",
        "street.jpg": eval_dir / "images" / "bus.jpg",
        **{f"frame{i + 1:03d}.jpg": f for i, f in enumerate(frames)},
    }
    for name, src in copies.items():
        shutil.copyfile(src, where / name)


@pytest.fixture
def workdir(tmp_path: Path, eval_dir: Path, models_dir: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    broker = EmbeddedBroker().start()
    try:
        _files(eval_dir, tmp_path)
        config = {
            "mqtt": {"host": "127.0.0.1", "port": broker.port},
            "device": {"id": "cam1"},
            "source": {"uri": f"images:{eval_dir / 'faces' / 'knn_examples' / 'test'}", "fps": 5},
            "homeassistant": {"enabled": True},
            "storage": {"dir": str(tmp_path / "state")},
            "models": {"dir": str(models_dir)},
            "results": {"state_interval": 1.0},
            "log_level": "WARNING",  # stderr is a pipe nobody drains until the end
        }
        (tmp_path / "my.yaml").write_text(yaml.safe_dump(config))
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAIX_AGENT_")}
        env.update(
            {
                "PYTHONPATH": str(REPO),
                "MAIX_AGENT_MQTT__HOST": "127.0.0.1",
                "MAIX_AGENT_MQTT__PORT": str(broker.port),
                "MAIX_AGENT_MODELS__DIR": str(models_dir),
                "MAIX_AGENT_STORAGE__DIR": str(tmp_path / "state-cli"),
                # the test session's measurements, not the user's cache (an agent start tunes only
                # when the session has not measured its models yet)
                "MAIX_AGENT_MODELS__TUNE_CACHE": engine_env()["MAIX_AGENT_MODELS__TUNE_CACHE"],
                "MAIX_AGENT_CONSOLE__PORT": "0",  # any free port
            }
        )
        yield tmp_path, env
    finally:
        broker.cleanup()


def _argv(line: str) -> list[str]:
    args = shlex.split(line.replace("/path/to/mirror", str(MIRROR)))
    assert args[0] == "maix-agent"
    return [sys.executable, "-m", "agent", *args[1:]]


def _until_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """The first stdout line of a long-running command, then Ctrl-C."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    line = ""
    while time.monotonic() < deadline and not line:
        line = proc.stdout.readline()
    proc.send_signal(signal.SIGINT)
    return line


@pytest.mark.integration
def test_every_readme_command_line_runs(workdir: tuple[Path, dict[str, str]]) -> None:
    where, env = workdir
    lines = readme_lines() + INLINE
    run_line = "maix-agent --config my.yaml run"
    agent = subprocess.Popen(_argv(run_line), cwd=where, env=env, stderr=subprocess.PIPE, text=True)
    ran: list[str] = [run_line]
    try:
        port = int(env["MAIX_AGENT_MQTT__PORT"])
        watcher = TestClient(port)
        try:
            watcher.subscribe("maix/cam1/availability")
            watcher.wait_for(lambda m: m.payload == b"online", 60)
        finally:
            watcher.close()
        for line in lines:
            if line == run_line:
                continue
            sub = shlex.split(line)[1:]
            if "watch" in sub or "console" in sub:  # runs until Ctrl-C: its first line, then SIGINT
                with subprocess.Popen(_argv(line), cwd=where, env=env, stdout=subprocess.PIPE, text=True) as proc:
                    first = _until_line(proc, 60)
                    expected = "{" if "watch" in sub else "maix-agent console: "
                    assert proc.wait(30) == 0 and first.startswith(expected), (line, first)
            else:
                done = subprocess.run(_argv(line), cwd=where, env=env, capture_output=True, text=True, timeout=300)
                assert done.returncode == 0, (line, done.stdout[-2000:], done.stderr[-2000:])
            ran.append(line)
    finally:
        agent.send_signal(signal.SIGINT)
        try:
            code = agent.wait(30)
        finally:
            if agent.poll() is None:
                agent.kill()
    errors = agent.stderr.read() if agent.stderr else ""
    if agent.stderr:
        agent.stderr.close()
    assert code == 0, errors
    assert sorted(ran) == sorted(set(lines))
