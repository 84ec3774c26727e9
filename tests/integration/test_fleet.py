"""Fleet sync of the face and class banks (DESIGN §5) on real mosquitto brokers.

Agents only learn of each other through the broker: commands go over MQTT, recognition is
checked with ``infer`` on real photos from ../shared/eval, and convergence is polled with
generous deadlines (the time it takes is measured in benchmarks/bench_fleet.py, not here).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import msgpack
import numpy as np
import pytest

from agent.app import Agent
from agent.bank.clock import Stamp
from agent.bank.entry import BankEntry, canonical_bytes
from agent.mqtt.embedded import EmbeddedBroker
from tests.integration.conftest import AgentFactory
from tests.support.mqtt import TestClient, decode

KEY = "fleet-test-key"
DEADLINE = 60.0
REPO = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def poll(fn: Callable[[], T | None], what: str, timeout: float = DEADLINE) -> T:
    """``fn()`` once it is truthy; a failure naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what} (last: {value!r})")
        time.sleep(0.05)  # polling interval, not a wait for something to happen


def ask(c: TestClient, prefix: str, dev: str, cmd: str, body: dict[str, Any] | None = None) -> Any:
    reply = c.request(prefix, dev, cmd, body, encoding="msgpack", timeout=DEADLINE)
    assert reply["ok"], reply
    return reply["data"]


def bank_of(agent: Agent, bank: str = "faces") -> dict[str, tuple[Stamp, str, bool]]:
    b = agent.services.banks["faces"] if bank == "faces" else agent.services.banks["classes"]
    return {e.id: (e.hlc, e.label, e.deleted) for e in b.snapshot()}


def converged(agents: list[Agent], bank: str = "faces") -> dict[str, tuple[Stamp, str, bool]] | None:
    first = bank_of(agents[0], bank)
    return first if first and all(bank_of(a, bank) == first for a in agents[1:]) else None


def reply_in(c: TestClient, topic: str, rid: str) -> dict[str, Any] | None:
    """The reply with id ``rid`` among everything ``c`` received (replies may come in any order)."""
    for m in list(c.all):
        if m.topic != topic:
            continue
        body: dict[str, Any] = decode(m.payload)
        if body.get("id") == rid:
            return body
    return None


def faces(c: TestClient, prefix: str, dev: str) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = ask(c, prefix, dev, "face/list")["faces"]
    return listed


def labels(c: TestClient, prefix: str, dev: str) -> list[str]:
    return [f["label"] for f in faces(c, prefix, dev)]


def poll_labels(c: TestClient, prefix: str, dev: str, want: list[str], what: str) -> None:
    """Poll ``dev``'s face list until it is ``want``."""
    poll(lambda: labels(c, prefix, dev) == want, what)


def native(entries: list[tuple[str, np.ndarray]], dim: int = 128) -> bytes:
    doc = {
        "v": 1,
        "bank": "faces",
        "dim": dim,
        "entries": [{"label": lb, "vec": np.asarray(v, "<f4").tobytes()} for lb, v in entries],
    }
    packed: bytes = msgpack.packb(doc, use_bin_type=True)
    return packed


def unit(seed: int, dim: int = 128) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return v / np.linalg.norm(v)


def state_of(c: TestClient, prefix: str, dev: str, pred: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The first retained/periodic ``state`` of ``dev`` that satisfies ``pred``."""
    topic = f"{prefix}/{dev}/state"
    msg = c.wait_for(lambda m: m.topic == topic and pred(decode(m.payload)), timeout=DEADLINE)
    state: dict[str, Any] = decode(msg.payload)
    return state


@pytest.fixture
def img(eval_dir: Path) -> Callable[[str], bytes]:
    return lambda rel: (eval_dir / rel).read_bytes()


@pytest.fixture
def c(client: TestClient, prefix: str) -> TestClient:
    client.subscribe(f"{prefix}/+/reply/#")
    return client


def test_enrol_forget_and_concurrent_enrol_converge_on_three_cameras(
    make_agent: AgentFactory, c: TestClient, prefix: str, img: Callable[[str], bytes]
) -> None:
    agents = [make_agent(dev, fleet={"key": KEY}) for dev in ("A", "B", "C")]
    ask(c, prefix, "A", "face/enrol", {"label": "biden", "image": img("faces/biden.jpg")})
    for dev in ("B", "C"):
        poll_labels(c, prefix, dev, ["biden"], f"biden on {dev}")
        seen = ask(
            c, prefix, dev, "infer", {"pipeline": "faces", "image": img("faces/knn_examples/train/biden/biden2.jpg")}
        )
        assert [f["label"] for f in seen["faces"]] == ["biden"], seen

    ask(c, prefix, "B", "face/forget", {"label": "biden"})
    for dev in ("A", "C"):
        poll_labels(c, prefix, dev, [], f"biden forgotten on {dev}")

    # the same person enrolled at once on A and C, another on B: every camera keeps every sample
    sent = []
    for dev, label, path in (
        ("A", "obama", "faces/obama.jpg"),
        ("C", "obama", "faces/obama2.jpg"),
        ("B", "kit", "faces/knn_examples/train/kit_harington/john1.jpeg"),
    ):
        rid = uuid.uuid4().hex[:8]
        c.publish(f"{prefix}/{dev}/cmd/face/enrol", msgpack.packb({"id": rid, "label": label, "image": img(path)}))
        sent.append((dev, rid))
    for dev, rid in sent:
        body = poll(partial(reply_in, c, f"{prefix}/{dev}/reply/face/enrol", rid), f"{dev}'s reply")
        assert body["ok"], body

    def three_live() -> dict[str, tuple[Stamp, str, bool]] | None:
        b = converged(agents)
        return b if b and sum(not d for _, _, d in b.values()) == 3 else None

    final = poll(three_live, "convergence")
    assert sorted(label for _, label, deleted in final.values() if not deleted) == ["kit", "obama", "obama"]
    lists = [faces(c, prefix, dev) for dev in ("A", "B", "C")]
    assert lists[0] == lists[1] == lists[2]
    assert {f["label"]: f["samples"] for f in lists[0]} == {"obama": 2, "kit": 1}
    assert [e.id for e in agents[0].services.banks["faces"].live()] == [
        e.id for e in agents[2].services.banks["faces"].live()
    ]
    seen = ask(c, prefix, "B", "infer", {"pipeline": "faces", "image": img("faces/knn_examples/train/obama/obama.jpg")})
    assert [f["label"] for f in seen["faces"]] == ["obama"]
    st = agents[1].state()
    assert st["bank_rejected"] == 0 and st["bank_last_sync"] is not None and st["banks"]["faces"]["entries"] == 3


def test_camera_offline_during_enrol_and_forget_catches_up(
    make_agent: AgentFactory, c: TestClient, prefix: str
) -> None:
    a, b, cam = (make_agent(dev, fleet={"key": KEY}) for dev in ("A", "B", "C"))
    ask(c, prefix, "A", "bank/import", {"bank": "faces", "data": native([("kit", unit(1)), ("kit", unit(2))])})
    poll(lambda: converged([a, b, cam]), "kit everywhere")
    cam.stop()
    ask(c, prefix, "A", "bank/import", {"bank": "faces", "data": native([("rose", unit(3))])})
    ask(c, prefix, "B", "face/forget", {"label": "kit"})
    ask(c, prefix, "B", "face/rename", {"label": "rose", "to": "rose_leslie"})
    cam2 = make_agent("C", fleet={"key": KEY})  # same storage dir: starts from its old bank
    assert labels(c, prefix, "C") in (["kit"], ["rose_leslie"])  # the old bank, or already caught up
    poll(lambda: converged([a, b, cam2]), "C catching up")
    assert labels(c, prefix, "C") == ["rose_leslie"]


def test_broker_losing_its_retained_store_is_refilled_by_the_cameras(make_agent: AgentFactory) -> None:
    own = EmbeddedBroker().start()  # persistence off: a restart forgets every retained entry
    try:
        a = make_agent("A", mqtt={"port": own.port}, fleet={"key": KEY, "quiet": 0.5})
        b = make_agent("B", mqtt={"port": own.port}, fleet={"key": KEY, "quiet": 0.5})
        a.services.banks["faces"].add("alice", [unit(1)])
        poll(lambda: converged([a, b]), "alice on B")
        own.stop()
        a_link, b_link = a.link, b.link
        assert a_link is not None and b_link is not None
        poll(lambda: not a_link.connected.is_set() and not b_link.connected.is_set(), "disconnect")
        made = a.services.banks["faces"].add("bob", [unit(2)])  # a local change while the broker is down
        b.services.banks["faces"].delete(lambda e: e.label == "alice")
        own.start()
        poll(lambda: converged([a, b]) and len(bank_of(a)) == 2, "A and B after the outage")
        assert [e.label for e in b.services.banks["faces"].live()] == ["bob"] and made[0].id in bank_of(b)
        newcomer = make_agent("D", mqtt={"port": own.port}, fleet={"key": KEY})
        poll(lambda: converged([a, b, newcomer]), "a new camera loading the refilled broker")
    finally:
        own.cleanup()


def test_bridged_brokers_converge(make_agent: AgentFactory, broker: EmbeddedBroker, c: TestClient, prefix: str) -> None:
    bridged = EmbeddedBroker(
        extra=f"connection fleet\naddress 127.0.0.1:{broker.port}\ntopic {prefix}/fleet/# both 1\n"
    ).start()
    try:
        c2 = TestClient(bridged.port)
        c2.subscribe(f"{prefix}/fleet/probe", f"{prefix}/+/reply/#")

        def bridge_up() -> bool:
            c.publish(f"{prefix}/fleet/probe", b"x")
            try:
                c2.wait_for(lambda m: m.topic == f"{prefix}/fleet/probe", timeout=0.5)
            except TimeoutError:
                return False
            return True

        poll(bridge_up, "the bridge")
        a = make_agent("A", fleet={"key": KEY})
        b = make_agent("B", mqtt={"port": bridged.port}, fleet={"key": KEY})
        ask(c, prefix, "A", "bank/import", {"bank": "faces", "data": native([("alice", unit(1))])})
        ask(c2, prefix, "B", "bank/import", {"bank": "faces", "data": native([("bob", unit(2))])})
        poll(lambda: converged([a, b]) and len(bank_of(a)) == 2, "both sides of the bridge")
        ask(c2, prefix, "B", "face/forget", {"label": "alice"})
        poll(lambda: labels(c, prefix, "A") == ["bob"], "the forget crossing the bridge")
        late = make_agent("C", mqtt={"port": bridged.port}, fleet={"key": KEY})
        poll(lambda: converged([a, b, late]), "a late camera behind the bridge")
        c2.close()
    finally:
        bridged.cleanup()


def _raw(fields: dict[str, Any]) -> bytes:
    return canonical_bytes(fields)


def test_forged_entries_are_refused_counted_and_repaired(
    make_agent: AgentFactory, broker: EmbeddedBroker, c: TestClient, prefix: str
) -> None:
    a, b = (make_agent(dev, fleet={"key": KEY}) for dev in ("A", "B"))
    model = a.services.banks["faces"].model
    base = f"{prefix}/fleet/f1/bank/faces/{model}"
    c.subscribe(f"{base}/+", f"{prefix}/A/state")
    ask(c, prefix, "A", "bank/import", {"bank": "faces", "data": native([("obama", unit(1))])})
    legit_msg = poll(lambda: next((m for m in list(c.all) if m.topic.startswith(base + "/")), None), "the entry")
    legit_payload = bytes(legit_msg.payload)
    legit = BankEntry.decode(legit_payload, key=KEY.encode(), expect_dim=128, expect_bank="faces", max_bytes=1 << 16)
    poll(lambda: converged([a, b]), "the legit entry on B")
    before = bank_of(a)

    def forged(label: str, key: bytes | None, dim: int = 128, id: str | None = None) -> tuple[str, bytes]:
        e = BankEntry.from_vector(
            id=id or uuid.uuid4().hex,
            bank="faces",
            label=label,
            vector=unit(9, dim),
            hlc=Stamp(int(time.time() * 1000), 0, "rogue"),
            origin="rogue",
        )
        return e.id, e.encode(key)

    newer = BankEntry(
        legit.id, "faces", "mallory", legit.vec, 128, Stamp(legit.hlc.wall_ms + 1000, 0, "rogue"), "rogue"
    )
    replay = msgpack.unpackb(newer.encode(None), raw=False)
    replay["sig"] = msgpack.unpackb(legit_payload, raw=False)["sig"]  # the old signature on new fields
    nan_fields = msgpack.unpackb(forged("nan", None)[1], raw=False)
    nan_fields["vec"] = np.full(128, np.nan, "<f4").tobytes()
    attacks: list[tuple[str, bytes, str | None]] = [
        (*forged("mallory", None), "unsigned"),
        (*forged("mallory", b"not-the-fleet-key"), "bad_signature"),
        (legit.id, _raw(replay), "bad_signature"),
        (*forged("mallory", KEY.encode(), dim=64), "dim_mismatch"),
        (uuid.uuid4().hex, _raw(nan_fields), "bad_vector"),
        (uuid.uuid4().hex, b"\x00\xff garbage \xc1", "not_msgpack"),
        (uuid.uuid4().hex, b"\x82" * (10 << 20), "oversize"),
        (uuid.uuid4().hex, legit_payload, "topic_mismatch"),
        (uuid.uuid4().hex, b"", None),  # a cleared retained message: not an entry, not a forgery
    ]
    rogue = TestClient(broker.port)
    for eid, payload, _ in attacks:
        rogue.publish(f"{base}/{eid}", payload, retain=True)
    rogue.close()
    expected: dict[str, int] = {}
    for _, _, reason in attacks:
        if reason:
            expected[reason] = expected.get(reason, 0) + 1

    def settled(agent: Agent) -> None:
        poll(lambda: agent.state()["bank_sync"].get("cleared"), f"the cleared id on {agent.device_id}")
        poll(lambda: agent.state()["bank_rejects"] == expected, f"rejects counted on {agent.device_id}")

    for agent in (a, b):
        settled(agent)
    st = state_of(c, prefix, "A", lambda s: s.get("bank_rejected") == sum(expected.values()))
    assert st["bank_rejects"] == expected and st["banks"]["faces"]["entries"] == 1
    assert bank_of(a) == before == bank_of(b)
    assert labels(c, prefix, "A") == ["obama"] and ask(c, prefix, "B", "system/ping")["pong"]
    # the replay overwrote the legit retained message: the cameras put it back for newcomers
    newcomer = make_agent("N", fleet={"key": KEY})
    poll(lambda: bank_of(newcomer) == before, "the legit entry on a new camera")
    assert labels(c, prefix, "N") == ["obama"]


def test_feature_model_change_does_not_mix_banks_and_classes_sync(
    make_agent: AgentFactory, c: TestClient, prefix: str, img: Callable[[str], bytes]
) -> None:
    a = make_agent("A", fleet={"key": KEY})
    b = make_agent("B", fleet={"key": KEY})
    e = make_agent("E", fleet={"key": KEY}, models={"features": "efficientnet_lite0"})
    assert (
        a.services.banks["classes"].model != e.services.banks["classes"].model
        and a.services.banks["faces"].model == e.services.banks["faces"].model
    )
    ask(c, prefix, "E", "classifier/add_class", {"label": "eff", "image": img("fewshot/coil20/obj3__0.png")})
    ask(c, prefix, "E", "bank/import", {"bank": "faces", "data": native([("from-e", unit(5))])})
    for k in (1, 2):
        ask(c, prefix, "A", "classifier/add_class", {"label": f"obj{k}", "image": img(f"fewshot/coil20/obj{k}__0.png")})
    ask(c, prefix, "A", "bank/import", {"bank": "faces", "data": native([("from-a", unit(6))])})

    def classes(dev: str) -> list[str]:
        return [x["label"] for x in ask(c, prefix, dev, "classifier/list")["classes"]]

    poll(lambda: classes("B") == ["obj1", "obj2"], "A's classes on B")
    for k in (1, 2):
        seen = ask(c, prefix, "B", "infer", {"pipeline": "classifier", "image": img(f"fewshot/coil20/obj{k}__2.png")})
        assert seen["label"] == f"obj{k}", seen
    # faces share a model, so they sync between all three; once E's and A's later face entries
    # are everywhere, their earlier class entries would be too if the banks mixed
    poll(lambda: converged([a, b, e]) and len(bank_of(a)) == 2, "faces on every camera")
    assert classes("E") == ["eff"] and classes("B") == ["obj1", "obj2"] and classes("A") == ["obj1", "obj2"]
    assert e.state()["bank_rejected"] == 0 and b.state()["bank_rejected"] == 0


def _spawn(port: int, prefix: str, storage: Path, models: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "MAIX_AGENT_MQTT__HOST": "127.0.0.1",
        "MAIX_AGENT_MQTT__PORT": str(port),
        "MAIX_AGENT_MQTT__PREFIX": prefix,
        "MAIX_AGENT_MQTT__RECONNECT_MIN": "1",
        "MAIX_AGENT_MQTT__RECONNECT_MAX": "2",
        "MAIX_AGENT_DEVICE__ID": "P",
        "MAIX_AGENT_DEVICE__FLEET": "f1",
        "MAIX_AGENT_STORAGE__DIR": str(storage),
        "MAIX_AGENT_MODELS__DIR": str(models),
        "MAIX_AGENT_FLEET__KEY": KEY,
        "MAIX_AGENT_PIPELINES__FACES": "false",
        "MAIX_AGENT_PIPELINES__TRACK": "false",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "agent", "run"], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


@pytest.fixture
def spawned() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait(10)


def test_kill_9_during_a_burst_of_enrols_leaves_a_consistent_bank_that_converges(
    make_agent: AgentFactory,
    broker: EmbeddedBroker,
    c: TestClient,
    prefix: str,
    tmp_path: Path,
    models_dir: Path,
    img: Callable[[str], bytes],
    spawned: list[subprocess.Popen[bytes]],
) -> None:
    make_agent("B", fleet={"key": KEY})
    storage = tmp_path / "P"
    c.subscribe(f"{prefix}/P/availability")
    spawned.append(_spawn(broker.port, prefix, storage, models_dir))
    c.wait_for(lambda m: m.topic == f"{prefix}/P/availability" and m.payload == b"online", timeout=DEADLINE)
    photo = img("faces/obama.jpg")
    ids = {}
    for i in range(12):
        ids[f"p{i}"] = rid = uuid.uuid4().hex[:8]
        c.publish(f"{prefix}/P/cmd/face/enrol", msgpack.packb({"id": rid, "label": f"p{i}", "image": photo}))

    def acknowledged() -> set[str]:
        return {lb for lb, rid in ids.items() if reply_in(c, f"{prefix}/P/reply/face/enrol", rid)}

    poll(lambda: len(acknowledged()) >= 3, "the first enrols")
    spawned[0].kill()  # SIGKILL in the middle of the burst
    spawned[0].wait(10)
    done = acknowledged()
    assert all(reply_in(c, f"{prefix}/P/reply/face/enrol", ids[lb])["ok"] for lb in done)  # type: ignore[index]
    spawned.append(_spawn(broker.port, prefix, storage, models_dir))
    c.wait_for(lambda m: m.topic == f"{prefix}/P/availability" and m.payload == b"online", timeout=DEADLINE)
    after = labels(c, prefix, "P")
    assert done <= set(after), (done, after)  # every acknowledged enrol survived the kill
    assert after == [f"p{i}" for i in range(len(after))]  # a prefix of the burst, in order
    poll(lambda: labels(c, prefix, "B") == after, "B converging with the restarted camera")
    export = ask(c, prefix, "P", "bank/export", {"bank": "faces"})
    assert export == ask(c, prefix, "B", "bank/export", {"bank": "faces"})
    assert not list(storage.glob("banks/*.corrupt-*"))
