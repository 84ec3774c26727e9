from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from agent.errors import ConfigError
from agent.pipelines.faces import FaceThresholds
from agent.settings import Settings, load_settings, masked_dump, section_of

REPO = Path(__file__).resolve().parents[2]


def test_defaults_and_contract_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in list(__import__("os").environ):
        if k.startswith("MAIX_AGENT_"):
            monkeypatch.delenv(k)
    s = load_settings()
    assert s.mqtt.prefix == "maix" and s.mqtt.protocol == "5" and s.device.fleet == "default"
    assert s.source.uri == "none" and s.fastpath == "auto" and s.homeassistant.prefix == "homeassistant"
    # the DESIGN §7 table, by attribute path
    for path in [
        "mqtt.host",
        "mqtt.port",
        "mqtt.username",
        "mqtt.password",
        "mqtt.tls",
        "mqtt.prefix",
        "mqtt.protocol",
        "device.id",
        "device.fleet",
        "source.uri",
        "models.dir",
        "storage.dir",
        "fleet.key",
        "fastpath",
        "homeassistant.enabled",
        "homeassistant.prefix",
        "mqtt.client_id",
        "mqtt.keepalive",
    ]:
        obj: object = s
        for part in path.split("."):
            assert hasattr(obj, part), path
            obj = getattr(obj, part)


@pytest.mark.parametrize(
    ("mode", "workers", "spin", "threads", "want"),
    [
        ("latency", 2, False, None, 2),  # the default: sessions that do not spin share the cores
        ("latency", 1, False, None, 2),
        ("latency", 2, True, None, 1),  # spinning pools side by side slow each other down
        ("latency", 1, True, None, 2),
        ("latency", 2, "run", None, 1),  # spinning while they run is spinning side by side too
        ("latency", 1, "run", None, 2),
        ("throughput", 2, False, None, 1),  # one lane a pipeline
        ("throughput", 2, False, 3, 3),  # models.threads wins
        ("latency", 2, "auto", None, 2),  # auto (the default) spins only where nothing runs beside it
    ],
)
def test_model_threads(mode: str, workers: int, spin: bool | str, threads: int | None, want: int) -> None:
    s = Settings.model_validate(
        {"performance": {"mode": mode, "workers": workers}, "models": {"spin": spin, "threads": threads}}
    )
    assert s.model_threads() == want


@pytest.mark.parametrize(
    ("mode", "workers", "pipelines", "spin", "want"),
    [
        ("latency", 2, {}, "auto", "never"),  # the default: faces + track side by side
        ("latency", 2, {"track": False}, "auto", "auto"),  # faces alone: as tuned per model
        ("latency", 1, {}, "auto", "auto"),  # one pipeline after the other
        ("throughput", 2, {}, "auto", "auto"),  # lanes: one thread a model, nothing to spin
        ("latency", 2, {}, "run", "run"),  # a forced mode is kept
    ],
)
def test_model_spin(mode: str, workers: int, pipelines: dict[str, bool], spin: str, want: str) -> None:
    s = Settings.model_validate(
        {"performance": {"mode": mode, "workers": workers}, "pipelines": pipelines, "models": {"spin": spin}}
    )
    assert s.models.spin == spin and s.model_spin() == want


def test_spin_takes_its_three_words_or_a_boolean() -> None:
    assert Settings.model_validate({}).models.spin == "auto"
    assert Settings.model_validate({"models": {"spin": "run"}}).models.spin == "run"
    assert Settings.model_validate({"models": {"spin": True}}).models.spin == "always"
    with pytest.raises(ValidationError, match="spin"):
        Settings.model_validate({"models": {"spin": "sometimes"}})


def test_lane_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("agent.settings.os.cpu_count", lambda: 4)
    assert Settings.model_validate({"performance": {"mode": "throughput"}}).lane_threads() == 4  # one a CPU
    monkeypatch.setattr("agent.settings.os.cpu_count", lambda: 64)
    assert Settings.model_validate({}).lane_threads() == 8  # at most 8
    monkeypatch.setattr("agent.settings.os.cpu_count", lambda: None)
    assert Settings.model_validate({}).lane_threads() == 1
    assert Settings.model_validate({"performance": {"parallel": 3}}).lane_threads() == 3  # the setting wins
    with pytest.raises(ValueError):
        Settings.model_validate({"performance": {"parallel": 0}})


def test_yaml_then_env_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "a.yaml"
    cfg.write_text(
        "mqtt:\n  host: yamlhost\n  port: 1999\ndevice:\n  id: cam-y\nthresholds:\n  face:\n    match: 0.8\n"
    )
    monkeypatch.setenv("MAIX_AGENT_MQTT__PORT", "2000")
    monkeypatch.setenv("MAIX_AGENT_FLEET__KEY", "k3y")
    s = load_settings(cfg)
    assert s.mqtt.host == "yamlhost" and s.mqtt.port == 2000 and s.device.id == "cam-y"
    assert (
        section_of(s.thresholds, FaceThresholds).match == 0.8 and section_of(s.thresholds, FaceThresholds).detect == 0.6
    )
    assert s.fleet.key is not None and s.fleet.key.get_secret_value() == "k3y"
    assert masked_dump(s)["fleet"]["key"] == "**********"


def test_unknown_keys_and_bad_values_name_their_path(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("mqtt:\n  hots: x\n  port: -1\ndevice:\n  id: 'bad id!'\nbogus: 1\n")
    with pytest.raises(ConfigError) as exc:
        load_settings(cfg)
    text = str(exc.value)
    for needle in ("mqtt.hots", "mqtt.port", "device.id", "bogus"):
        assert needle in text
    cfg.write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_settings(cfg)
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "missing.yaml")


def test_example_config_is_complete_and_current() -> None:
    example = REPO / "config" / "agent.example.yaml"
    load_settings(example)  # loads as is
    sys.path.insert(0, str(REPO))
    from tools.gen_example_config import render

    assert example.read_text() == render(), "run tools/gen_example_config.py"
    text = example.read_text()
    for section, model in Settings.model_fields.items():
        assert f"{section}:" in text, section
        del model


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    full = {k: v for k, v in os.environ.items() if not k.startswith("MAIX_AGENT_")}
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "agent", *args], cwd=REPO, env=full, capture_output=True, text=True, timeout=60
    )


def test_check_config_and_print_config_cli(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("mqtt:\n  port: nope\nsource:\n  uri: ftp://x\n")
    r = _cli("--config", str(bad), "check-config")
    assert r.returncode == 1
    assert "error: mqtt.port:" in r.stderr and "error: source.uri:" in r.stderr
    r = _cli("print-config", env={"MAIX_AGENT_MQTT__PASSWORD": "hunter2", "MAIX_AGENT_DEVICE__ID": "c1"})
    assert r.returncode == 0 and "hunter2" not in r.stdout
    cfg = json.loads(r.stdout)
    assert cfg["mqtt"]["password"] == "**********" and cfg["device"]["id"] == "c1"
