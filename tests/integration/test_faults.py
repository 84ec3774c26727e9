"""Faults the agent must survive, injected for real: a restarted mosquitto, a half-open, cut or
slow connection (through :mod:`tests.integration.tcp_proxy`), a frame source that dies mid-stream,
a full or read-only state dir (a tiny tmpfs), and ``kill -9`` of an agent process under load.

Each test checks the same three things: the agent keeps answering commands, it comes back by
itself once the fault is gone, and nothing it had learned is lost or half-written.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import msgpack
import pytest

from agent.app import Agent
from agent.bank.clock import HLC
from agent.bank.store import EntryBank
from agent.models import load_manifest
from agent.mqtt.embedded import EmbeddedBroker
from agent.pipelines.faces import FaceService
from agent.services import feature_dim
from tests.integration.conftest import AgentFactory
from tests.integration.tcp_proxy import TcpProxy
from tests.support.mqtt import TestClient, decode, wait_until

REPO = Path(__file__).resolve().parents[2]


def bank_bytes(agent: Agent) -> bytes:
    return agent.services.banks["faces"].path.read_bytes()


def leftovers(folder: Path) -> list[str]:
    """Temp or moved-aside files: what a half-written or corrupt state would leave behind."""
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(".tmp") or ".corrupt-" in p.name)


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


# -- the connection: half-open, cut, slow, refused --------------------------------------------
def test_half_open_connection_is_detected_and_reconnected(
    make_agent: AgentFactory, broker: EmbeddedBroker, prefix: str
) -> None:
    with TcpProxy(broker.port) as proxy:
        agent = make_agent("ho", mqtt={"port": proxy.port, "keepalive": 5})
        watcher = TestClient(broker.port)
        watcher.subscribe(f"{prefix}/ho/availability", f"{prefix}/ho/reply/#")
        assert watcher.request(prefix, "ho", "system/ping")["ok"]
        assert proxy.accepted == 1

        assert proxy.stall() == 1  # silent in both directions, sockets left open
        # paho sends PINGREQ after one keepalive without bytes and gives up after another one.
        wait_until(lambda: agent.link and agent.link.stats.disconnects >= 1, 30, "the agent to notice the stall")
        wait_until(lambda: proxy.accepted >= 2 and agent.link and agent.link.connected.is_set(), 30, "a reconnect")
        assert watcher.request(prefix, "ho", "system/ping")["ok"]
        fresh = TestClient(broker.port)  # the retained availability says online again
        fresh.subscribe(f"{prefix}/ho/availability")
        fresh.wait_for(lambda m: m.retain and m.payload == b"online", timeout=15)
        fresh.close()
        watcher.close()
        agent.stop()  # while the proxy still carries the link: a clean `offline`


def test_cut_refused_and_slow_connections(make_agent: AgentFactory, broker: EmbeddedBroker, prefix: str) -> None:
    with TcpProxy(broker.port) as proxy:
        agent = make_agent("cs", mqtt={"port": proxy.port, "keepalive": 5})
        c = TestClient(broker.port)
        c.subscribe(f"{prefix}/cs/reply/#")
        assert c.request(prefix, "cs", "system/ping")["ok"]
        link = agent.link
        assert link is not None

        # Cut with RST while refusing new connections: the agent retries with back-off.
        proxy.refuse()
        assert proxy.cut() == 1
        wait_until(lambda: not link.connected.is_set(), 15, "the agent to see the cut")
        proxy.refuse(False)
        wait_until(link.connected.is_set, 30, "a reconnect after the cut")
        assert c.request(prefix, "cs", "system/ping")["ok"]

        # A slow link (300 ms per chunk each way, 20 kB/s): slower, but every reply arrives.
        proxy.slow(delay=0.3, bandwidth=20_000)
        for _ in range(3):
            assert c.request(prefix, "cs", "thresholds/get", timeout=60)["ok"]
        proxy.slow()
        assert link.stats.connects == 2
        c.close()
        agent.stop()


# -- the broker restarts while results stream -------------------------------------------------
def face_labels(c: TestClient, prefix: str, dev: str) -> list[str]:
    return [f["label"] for f in c.request(prefix, dev, "face/list")["data"]["faces"]]


def entries(agent: Agent) -> dict[str, bytes]:
    """The faces bank as stored on disk, entry id → wire form (read back from the file)."""
    b = agent.services.banks["faces"]
    fresh = EntryBank(b.name, b.model, b.dim, agent.settings.storage.dir, HLC("check"), "check")
    return {eid: e.encode(None) for eid, e in fresh.entries.items()}


def test_broker_restart_while_results_stream_and_the_fleet_syncs(
    make_agent: AgentFactory, eval_dir: Path, prefix: str
) -> None:
    own = EmbeddedBroker().start()  # restarted below (and loses every retained message): not shared
    try:
        agent = make_agent(
            "rs",
            mqtt={"port": own.port},
            source={"uri": f"images:{eval_dir / 'images'}", "loop": True, "fps": 5},
            pipelines={"segment": True},
        )
        peer = make_agent("rs2", mqtt={"port": own.port})  # same fleet: gets rs's faces by sync
        c = TestClient(own.port)
        c.subscribe(f"{prefix}/+/reply/#", f"{prefix}/rs/result/segments")
        obama = b64(eval_dir / "faces" / "obama.jpg")
        assert c.request(prefix, "rs", "face/enrol", {"label": "obama", "image": obama})["ok"]
        wait_until(lambda: face_labels(c, prefix, "rs2") == ["obama"], 30, "the peer to sync obama")
        before = entries(agent)
        first = decode(c.wait_for(lambda m: m.topic.endswith("result/segments"), timeout=60).payload)
        c.close()

        own.stop()  # results keep coming out of the worker meanwhile; the link is down
        link, peer_link = agent.link, peer.link
        assert link is not None and peer_link is not None
        wait_until(lambda: not link.connected.is_set(), 15, "the agent to see the broker go")
        # Learned while the broker is away (the device's own button, say): must reach the peer later.
        biden = cv2.imread(str(eval_dir / "faces" / "biden.jpg"))
        assert biden is not None
        assert agent.services.get(FaceService).enrol(biden, "biden", "largest")["added"] == 1
        own.start()  # same port, empty: no retained messages, no subscriptions survive
        wait_until(lambda: link.connected.is_set() and peer_link.connected.is_set(), 30, "reconnects")

        c = TestClient(own.port)
        c.subscribe(f"{prefix}/rs/availability")  # re-announced (the restart lost the retained one)
        c.wait_for(lambda m: m.payload == b"online", timeout=15)
        c.subscribe(f"{prefix}/+/reply/#", f"{prefix}/rs/result/segments")  # resubscribed: commands work
        after = decode(c.wait_for(lambda m: m.topic.endswith("result/segments"), timeout=60).payload)
        assert after["seq"] > first["seq"] and "objects" in after
        assert face_labels(c, prefix, "rs") == ["obama", "biden"]
        wait_until(lambda: face_labels(c, prefix, "rs2") == ["obama", "biden"], 60, "the fleet to converge")
        now = entries(agent)
        assert {k: now[k] for k in before} == before and len(now) == len(before) + 1  # nothing lost or changed
        wait_until(lambda: entries(peer) == now, 30, "the peer to save the same bank")  # saved in batches
        assert leftovers(agent.settings.storage.dir) == []
        assert link.stats.connects == 2
        c.close()
        for a in (agent, peer):
            a.stop()  # before the broker goes: a clean `offline`
    finally:
        own.cleanup()


# -- the frame source dies mid-stream -----------------------------------------------------------
def _source_state(msg: Any) -> dict[str, Any]:
    return json.loads(msg.payload)["source"]  # type: ignore[no-any-return]


def test_truncated_video_shows_error_commands_work_and_it_resumes(
    make_agent: AgentFactory, client: TestClient, eval_dir: Path, tmp_path: Path, prefix: str
) -> None:
    full = (eval_dir / "tracking" / "vot15_bag" / "bag.avi").read_bytes()
    video = tmp_path / "cam.avi"
    video.write_bytes(full)
    agent = make_agent(
        "tv",
        source={"uri": f"video:{video}", "loop": True, "fps": 200, "retry_min": 0.2, "retry_max": 0.5},
    )
    client.subscribe(f"{prefix}/tv/state", f"{prefix}/tv/reply/#")
    wait_until(lambda: agent.slot.frames_in > 10, 30, "frames from the video")

    cut = tmp_path / "cut.avi"
    cut.write_bytes(full[: 64 * 1024])  # a few frames, then the file just stops
    os.replace(cut, video)
    msg = client.wait_for(lambda m: m.topic.endswith("/state") and "truncated" in str(_source_state(m)["error"]), 60)
    assert _source_state(msg)["state"] in ("retrying", "running")
    for _ in range(3):  # commands are answered while the source is down
        assert client.request(prefix, "tv", "system/ping")["ok"]
        assert client.request(prefix, "tv", "pipelines/set", {"faces": False})["ok"]

    restored = tmp_path / "restored.avi"
    restored.write_bytes(full)
    os.replace(restored, video)
    seen = agent.slot.frames_in
    client.wait_for(
        lambda m: (
            m.topic.endswith("/state") and _source_state(m)["error"] is None and _source_state(m)["state"] == "running"
        ),
        60,
    )
    assert agent.slot.frames_in > seen + 50  # more than the truncated file holds: the whole video again


def test_truncated_video_without_loop_ends_with_the_error(
    make_agent: AgentFactory, eval_dir: Path, tmp_path: Path
) -> None:
    video = tmp_path / "short.avi"
    video.write_bytes((eval_dir / "tracking" / "vot15_bag" / "bag.avi").read_bytes()[: 64 * 1024])
    agent = make_agent("tn", source={"uri": f"video:{video}", "loop": False, "fps": 200})
    src = wait_until(lambda: (s := agent.state()["source"])["state"] == "ended" and s, 30, "the video to end")
    assert "truncated" in src["error"] and agent.slot.frames_in > 0


def test_image_folder_removed_then_back(
    make_agent: AgentFactory, client: TestClient, eval_dir: Path, tmp_path: Path, prefix: str
) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    for name in ("bus.jpg", "zidane.jpg"):
        shutil.copy(eval_dir / "images" / name, folder / name)
    agent = make_agent(
        "fd",
        source={"uri": f"images:{folder}", "loop": True, "fps": 50, "retry_min": 0.2, "retry_max": 0.5},
    )
    client.subscribe(f"{prefix}/fd/reply/#")
    wait_until(lambda: agent.worker.processed > 3, 60, "frames processed")

    shutil.rmtree(folder)  # the camera is unplugged
    src = wait_until(lambda: (s := agent.state()["source"])["error"] and s, 30, "the source error in state")
    assert "not found" in src["error"] and src["state"] == "retrying"
    assert client.request(prefix, "fd", "system/ping")["ok"]
    image = b64(eval_dir / "images" / "bus.jpg")
    assert client.request(prefix, "fd", "infer", {"pipeline": "classifier", "image": image})["ok"]

    folder.mkdir()  # plugged back in
    shutil.copy(eval_dir / "images" / "bus.jpg", folder / "bus.jpg")
    processed = agent.worker.processed
    wait_until(lambda: agent.state()["source"]["error"] is None, 30, "the source to recover")
    wait_until(lambda: agent.worker.processed > processed + 3, 30, "frames processed again")
    assert agent.state()["source"]["state"] == "running"


# -- the state dir fills up or turns read-only while enrolling ---------------------------------
@contextlib.contextmanager
def tiny_tmpfs(path: Path, size: str = "2m") -> Iterator[None]:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "maix-test", str(path)], capture_output=True)
    if done.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs (the fault tests need root): {done.stderr.decode()}", pytrace=False)
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(folder: Path) -> Path:
    """Fill the file system holding ``folder`` until it reports ENOSPC (unbuffered writes)."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        for size in (1 << 16, 1):  # big blocks, then top up the last partial page
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    return filler


def test_disk_full_and_read_only_state_dir_while_enrolling(
    make_agent: AgentFactory, client: TestClient, eval_dir: Path, tmp_path: Path, prefix: str
) -> None:
    state = tmp_path / "df"  # make_agent's storage dir for device "df"
    with tiny_tmpfs(state):
        agent = make_agent("df")
        client.subscribe(f"{prefix}/df/reply/#")
        obama = b64(eval_dir / "faces" / "obama.jpg")
        biden = b64(eval_dir / "faces" / "biden.jpg")
        assert client.request(prefix, "df", "face/enrol", {"label": "obama", "image": obama})["ok"]
        good = bank_bytes(agent)

        filler = fill(state)  # disk full
        r = client.request(prefix, "df", "face/enrol", {"label": "biden", "image": biden})
        assert r["ok"] is False and r["error"]["code"] == "unavailable", r
        assert "No space left on device" in r["error"]["message"]
        r = client.request(prefix, "df", "thresholds/set", {"face": {"match": 0.9}})
        assert r["error"]["code"] == "unavailable" and "No space" in r["error"]["message"]
        assert client.request(prefix, "df", "thresholds/get")["data"]["face"]["match"] != 0.9
        assert bank_bytes(agent) == good and leftovers(state) == []
        assert [f["label"] for f in client.request(prefix, "df", "face/list")["data"]["faces"]] == ["obama"]

        filler.unlink()
        subprocess.run(["mount", "-o", "remount,ro", str(state)], check=True)  # read-only
        r = client.request(prefix, "df", "face/enrol", {"label": "biden", "image": biden})
        assert r["error"]["code"] == "unavailable" and "Read-only file system" in r["error"]["message"], r
        r = client.request(prefix, "df", "classifier/add_class", {"label": "bus", "image": obama})
        assert r["error"]["code"] == "unavailable", r
        assert bank_bytes(agent) == good and leftovers(state) == []

        subprocess.run(["mount", "-o", "remount,rw", str(state)], check=True)  # space again
        assert client.request(prefix, "df", "face/enrol", {"label": "biden", "image": biden})["ok"]
        agent.stop()
        again = make_agent("df")  # restart on the same state: both are there
        assert [e.label for e in again.services.banks["faces"].live()] == ["obama", "biden"]
        assert leftovers(state) == []
        again.stop()


def test_bank_dir_replaced_by_a_file_mid_session(
    make_agent: AgentFactory, client: TestClient, eval_dir: Path, prefix: str
) -> None:
    """Without a file system trick: the bank's directory turns into a file between commands."""
    agent = make_agent("bf")
    client.subscribe(f"{prefix}/bf/reply/#")
    image = b64(eval_dir / "images" / "bus.jpg")
    assert client.request(prefix, "bf", "classifier/add_class", {"label": "bus", "image": image})["ok"]
    banks = agent.services.banks["classes"].path.parent
    good = agent.services.banks["classes"].path.read_bytes()
    aside = banks.with_name("banks.away")
    os.replace(banks, aside)
    banks.write_bytes(b"not a directory")
    try:
        r = client.request(prefix, "bf", "classifier/add_class", {"label": "bus2", "image": image})
        assert r["error"]["code"] == "unavailable" and "I/O error" in r["error"]["message"], r
        assert [c["label"] for c in client.request(prefix, "bf", "classifier/list")["data"]["classes"]] == ["bus"]
    finally:
        banks.unlink()
        os.replace(aside, banks)
    assert agent.services.banks["classes"].path.read_bytes() == good
    assert client.request(prefix, "bf", "classifier/add_class", {"label": "bus2", "image": image})["ok"]


# -- kill -9 while writing, under load ---------------------------------------------------------
def _spawn(port: int, prefix: str, state: Path, eval_dir: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "MAIX_AGENT_MQTT__HOST": "127.0.0.1",
        "MAIX_AGENT_MQTT__PORT": str(port),
        "MAIX_AGENT_MQTT__PREFIX": prefix,
        "MAIX_AGENT_DEVICE__ID": "k9",
        "MAIX_AGENT_STORAGE__DIR": str(state),
        "MAIX_AGENT_SOURCE__URI": f"images:{eval_dir / 'images'}",
        "MAIX_AGENT_SOURCE__FPS": "10",
        "MAIX_AGENT_PIPELINES__FACES": "true",
        "MAIX_AGENT_PIPELINES__TRACK": "false",
        "MAIX_AGENT_LIMITS__EXPENSIVE_RATE": "0",
        "MAIX_AGENT_RESULTS__STATE_INTERVAL": "1",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "agent", "run"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_kill_9_while_enrolling_under_load(broker: EmbeddedBroker, eval_dir: Path, tmp_path: Path) -> None:
    """A writer thread streams classifier/add_class commands; the agent is SIGKILLed at a different
    moment of that stream each round. Every acknowledged class must survive and the bank file
    must always parse (atomic writes: temp file, fsync, rename)."""
    prefix = f"k{uuid.uuid4().hex[:6]}"
    state = tmp_path / "k9"
    spec = load_manifest().get("mobilenet_v2")
    image = (eval_dir / "images" / "chelsea.png").read_bytes()
    c = TestClient(broker.port)
    c.subscribe(f"{prefix}/k9/availability", f"{prefix}/k9/reply/classifier/add_class")

    def acked() -> set[str]:
        msgs = list(c.all)
        out = set()
        for m in msgs:
            if m.topic.endswith("reply/classifier/add_class"):
                body = decode(m.payload)
                if body.get("ok"):
                    out.add(body["id"])
        return out

    rounds, kills = 6, 0
    for rnd in range(rounds):
        proc = _spawn(broker.port, prefix, state, eval_dir)
        stop = threading.Event()

        def stream(rnd: int = rnd, stop: threading.Event = stop) -> None:
            i = 0
            while not stop.is_set():
                label = f"r{rnd}-{i}"
                i += 1
                body = msgpack.packb({"id": label, "label": label, "image": image}, use_bin_type=True)
                c.publish(f"{prefix}/k9/cmd/classifier/add_class", body, qos=0)
                stop.wait(0.01)

        writer = threading.Thread(target=stream, daemon=True)
        try:
            c.wait_for(lambda m: m.topic.endswith("availability") and m.payload == b"online", timeout=60)
            goal = len(acked()) + 2 + rnd  # kill at a different point of the stream each round

            def enough(goal: int = goal) -> bool:
                return len(acked()) >= goal

            writer.start()
            wait_until(enough, 60, "acknowledged writes")
            proc.send_signal(signal.SIGKILL)  # the writer is still streaming: the agent is mid-command
            proc.wait(10)
            kills += 1
        finally:
            stop.set()
            if writer.is_alive():
                writer.join(5)
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        c.wait_for(lambda m: m.topic.endswith("availability") and m.payload == b"offline", timeout=30)

        # The bank file parses (nothing moved aside) and holds every acknowledged write.
        bank = EntryBank("classes", spec.fingerprint, feature_dim(spec), state, HLC("check"), "check")
        labels = {e.label for e in bank.live()}
        assert not [p for p in (state / "banks").iterdir() if ".corrupt-" in p.name]
        missing = acked() - labels
        assert not missing, sorted(missing)
    c.close()
    assert kills == rounds and len(acked()) >= rounds * 2
