"""The agent as a real process: LWT after kill -9, clean stop on SIGINT, bad credentials."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from agent.mqtt.embedded import EmbeddedBroker
from tests.support.mqtt import TestClient

REPO = Path(__file__).resolve().parents[2]


def _spawn(port: int, prefix: str, tmp: Path, dev: str = "proc1", **env: str) -> subprocess.Popen[bytes]:
    full = {
        **os.environ,
        "MAIX_AGENT_MQTT__HOST": "127.0.0.1",
        "MAIX_AGENT_MQTT__PORT": str(port),
        "MAIX_AGENT_MQTT__PREFIX": prefix,
        "MAIX_AGENT_MQTT__RECONNECT_MIN": "1",
        "MAIX_AGENT_MQTT__RECONNECT_MAX": "2",
        "MAIX_AGENT_DEVICE__ID": dev,
        "MAIX_AGENT_STORAGE__DIR": str(tmp / dev),
        "MAIX_AGENT_PIPELINES__FACES": "false",
        "MAIX_AGENT_PIPELINES__TRACK": "false",
        **env,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "agent", "run"], cwd=REPO, env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def test_lwt_after_kill_9_and_clean_sigint(broker: EmbeddedBroker, tmp_path: Path) -> None:
    prefix = f"p{uuid.uuid4().hex[:6]}"
    c = TestClient(broker.port)
    c.subscribe(f"{prefix}/proc1/availability", f"{prefix}/proc1/reply/#")
    proc = _spawn(broker.port, prefix, tmp_path)
    try:
        c.wait_for(lambda m: m.payload == b"online", timeout=30)
        assert c.request(prefix, "proc1", "system/ping")["ok"]
        proc.kill()  # SIGKILL: only the broker's Last Will can say we are gone
        proc.wait(10)
        msg = c.wait_for(lambda m: m.topic.endswith("availability") and m.payload == b"offline", timeout=30)
        assert msg.retain or msg.payload == b"offline"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()

    proc = _spawn(broker.port, prefix, tmp_path)
    try:
        c.wait_for(lambda m: m.payload == b"online", timeout=30)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0
        c.wait_for(lambda m: m.topic.endswith("availability") and m.payload == b"offline", timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)
    c.close()


def test_bad_credentials_fail_fast_without_retry_storm(tmp_path: Path) -> None:
    pwfile = tmp_path / "passwd"
    pwfile.write_text("")
    subprocess.run(["mosquitto_passwd", "-b", str(pwfile), "alice", "right"], check=True)
    broker = EmbeddedBroker(listener_extra=f"allow_anonymous false\npassword_file {pwfile}\n").start()
    try:
        proc = _spawn(broker.port, "pw", tmp_path, MAIX_AGENT_MQTT__USERNAME="alice", MAIX_AGENT_MQTT__PASSWORD="wrong")
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 2
        text = err.decode()
        assert "refused the connection" in text and "not retrying" in text
        log = broker.log_path.read_text()
        assert log.count("not authorised") + log.count("bad user name or password") <= 2, log
    finally:
        broker.cleanup()
