"""Engines through the agent's public interfaces: models.engine, system/info and state, and
``maix-agent models tune``."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.integration.conftest import AgentFactory
from tests.support.mqtt import TestClient

REPO = Path(__file__).resolve().parents[2]


def test_forced_engine_runs_and_is_reported(
    make_agent: AgentFactory, client: TestClient, prefix: str, eval_dir: Path
) -> None:
    rest = ("mobilenet_v2", "yolov8n_seg", "nanotrack_v2_backbone", "nanotrack_v2_head")
    engines = {"sface": "opencv", "retinaface": "opencv", **dict.fromkeys(rest, "onnxruntime")}
    agent = make_agent("eng", models={"engine": engines})
    client.subscribe(f"{prefix}/eng/reply/#")
    image = base64.b64encode((eval_dir / "faces" / "obama.jpg").read_bytes()).decode()
    r = client.request(prefix, "eng", "infer", {"pipeline": "faces", "image": image}, timeout=120)
    assert r["ok"] and len(r["data"]["faces"]) == 1, r
    info = client.request(prefix, "eng", "system/info")["data"]["engines"]
    assert info["sface"]["engine"] == "opencv" and info["sface"]["source"] == "forced" and info["sface"]["loaded"]
    assert info["retinaface"]["engine"] == "opencv"
    # the rest forced too: nothing was tuned (a model left out of the map would be ``auto``)
    assert info["mobilenet_v2"]["engine"] == "onnxruntime" and info["mobilenet_v2"]["source"] == "forced"
    state = agent.state()["engines"]
    assert state["sface"]["threads"] >= 1 and "ms" in state["sface"]


def _cli(cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAIX_AGENT_")}
    env.update({"PYTHONPATH": str(REPO), "MAIX_AGENT_MODELS__TUNE_CACHE": str(cache)})
    return subprocess.run(
        [sys.executable, "-m", "agent", "models", "tune", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_models_tune_measures_caches_and_shows(tmp_path: Path) -> None:
    cache = tmp_path / "engines.json"
    empty = _cli(cache, "--show")
    assert empty.returncode == 1 and "models tune" in empty.stdout
    done = _cli(cache, "nanotrack_v2_head", "nanotrack_v2_backbone")
    assert done.returncode == 0, done.stderr
    assert "[1/2] tuning nanotrack_v2_head" in done.stdout and "tuned 2 models" in done.stdout
    data = json.loads(cache.read_text())
    assert set(data["models"]) == {"nanotrack_v2_head", "nanotrack_v2_backbone"}
    assert data["engines"]["opencv"] and data["machine"]["cpu"]
    shown = _cli(cache, "--show", "nanotrack_v2_head")  # flags and names in any order
    assert shown.returncode == 0, shown.stderr
    assert not any(line.startswith("nanotrack_v2_backbone") for line in shown.stdout.splitlines())
    row = next(line for line in shown.stdout.splitlines() if line.startswith("nanotrack_v2_head"))
    assert "onnxruntime/" in row or "opencv/" in row
    assert "track box IoU >= 0.95" in row and "median ms a run, warm / cold" in shown.stdout
    assert len(re.findall(r"\d+\.\d\d /\s*\d+\.\d\d", row)) == 5  # warm / cold of each candidate
