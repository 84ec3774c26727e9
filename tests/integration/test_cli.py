"""The operator CLI as a user runs it: ``maix-agent cmd`` and ``maix-agent watch`` as subprocesses
against the test broker, configured only through the environment (MAIX_AGENT_MQTT__…)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import msgpack

from agent.mqtt.embedded import EmbeddedBroker
from tests.conftest import engine_env
from tests.integration.conftest import AgentFactory
from tests.support.mqtt import TestClient

REPO = Path(__file__).resolve().parents[2]


def cli_env(broker: EmbeddedBroker, prefix: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAIX_AGENT_")}
    env.update(
        {
            "PYTHONPATH": str(REPO),
            "MAIX_AGENT_MQTT__HOST": "127.0.0.1",
            "MAIX_AGENT_MQTT__PORT": str(broker.port),
            "MAIX_AGENT_MQTT__PREFIX": prefix,
            **engine_env(),
        }
    )
    return env


def run_cli(env: dict[str, str], *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


def test_cmd_prints_the_reply_and_exits_by_it(
    make_agent: AgentFactory, broker: EmbeddedBroker, prefix: str, eval_dir: Path
) -> None:
    make_agent("cli1")
    env = cli_env(broker, prefix)
    ok = run_cli(env, "cmd", "cli1", "system/ping", "--compact")
    assert ok.returncode == 0, ok.stderr
    reply = json.loads(ok.stdout)
    assert reply["ok"] is True and reply["id"]
    # an error reply: printed, exit 1
    bad = run_cli(env, "cmd", "cli1", "thresholds/set", '{"face": {"match": 5}}')
    assert bad.returncode == 1
    assert json.loads(bad.stdout)["error"]["code"] == "bad_request"
    # an image attached with --image (base64 in the JSON request)
    infer = run_cli(
        env, "cmd", "cli1", "infer", '{"pipeline": "faces"}', "--image", str(eval_dir / "faces" / "obama.jpg")
    )
    assert infer.returncode == 0, infer.stderr
    assert len(json.loads(infer.stdout)["data"]["faces"]) == 1
    # no such device: a timeout, exit 3, and a message on stderr
    none = run_cli(env, "cmd", "nobody", "system/ping", "--timeout", "1")
    assert none.returncode == 3 and "no reply" in none.stderr
    # not JSON: refused before anything is sent
    junk = run_cli(env, "cmd", "cli1", "system/ping", "{not json")
    assert junk.returncode == 1 and "not valid JSON" in junk.stderr


def test_watch_prints_one_json_line_per_message(broker: EmbeddedBroker, client: TestClient, prefix: str) -> None:
    env = cli_env(broker, prefix)
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "watch", "cam9", "--count", "3", "--duration", "60"],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    event = {"v": 1, "dev": "cam9", "seq": 1, "ts": 1.5, "type": "appeared", "label": "alice", "vec": b"\x00\x01"}
    result = {"v": 1, "dev": "cam9", "seq": 2, "ts": 2.0, "faces": []}
    deadline = time.monotonic() + 60
    try:
        while proc.poll() is None:  # publish until watch has printed its three lines
            assert time.monotonic() < deadline, "watch printed nothing"
            client.publish(f"{prefix}/cam9/event/face", msgpack.packb(event, use_bin_type=True))
            client.publish(f"{prefix}/cam9/result/faces", msgpack.packb(result, use_bin_type=True))
            client.publish(f"{prefix}/cam9/state", b'{"not": "watched by default"}')
            time.sleep(0.2)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 3
    docs = [json.loads(line) for line in lines]
    assert {d["topic"] for d in docs} <= {f"{prefix}/cam9/event/face", f"{prefix}/cam9/result/faces"}
    for d in docs:
        if d["topic"].endswith("event/face"):
            assert d["payload"]["label"] == "alice" and d["payload"]["vec"] == "<2 bytes>"
        else:
            assert d["payload"] == result


def test_watch_topic_option(broker: EmbeddedBroker, client: TestClient, prefix: str) -> None:
    env = cli_env(broker, prefix)
    topic = f"{prefix}/cam9/ha/presence"
    client.publish(topic, b'{"person": "ON"}', retain=True)
    watch = run_cli(env, "watch", "cam9", "--topic", f"{prefix}/cam9/ha/#", "--count", "1", "--duration", "30")
    assert watch.returncode == 0, watch.stderr
    assert json.loads(watch.stdout) == {"topic": topic, "payload": {"person": "ON"}}
    client.publish(topic, b"", retain=True)
