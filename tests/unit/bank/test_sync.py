"""FleetSync's worker on its own: messages go in through the route sinks, publishes are recorded.

The broker behaviour (retained store, bridges, reconnects) is covered in
tests/integration/test_fleet.py; here the inputs are handed to the sinks directly.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agent.bank.clock import HLC, Stamp
from agent.bank.entry import BankEntry
from agent.bank.store import EntryBank
from agent.bank.sync import BURST, FleetSync
from agent.mqtt.topics import Message, Route, TopicRegistry, Topics

KEY = b"k"
DIM = 4
TOPICS = Topics("maix", "cam-a", "f1")


def wait(pred: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + 10
    while not pred():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


class Rig:
    def __init__(self, tmp: Path, **kw: object) -> None:
        self.bank = EntryBank("faces", "m0", DIM, tmp, HLC("cam-a"), "cam-a")
        self.published: list[tuple[str, bytes]] = []
        self.registry = TopicRegistry()
        self.changes: list[tuple[str, bool]] = []
        self.registry.on_change = lambda r, added: self.changes.append((r.filter, added))
        args: dict[str, Any] = {
            "key": KEY,
            "max_bytes": 1 << 16,
            "queue_bytes": 1 << 20,
            "quiet": 0.1,
            "flush_delay": 0.05,
        }
        self.sync = FleetSync(TOPICS, [self.bank], lambda t, p, q, r: self.published.append((t, p)), **{**args, **kw})
        self.sync.attach(self.registry)
        self.stop = threading.Event()
        self.route: Route = self.registry.routes()[0]

    def deliver(self, entry_id: str, payload: bytes) -> None:
        self.route.sink(Message(topic=f"maix/fleet/f1/bank/faces/m0/{entry_id}", payload=payload))

    def start(self) -> None:
        self.thread = self.sync.start(self.stop)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path)
    yield r
    r.stop.set()
    if hasattr(r, "thread"):
        r.thread.join(5)


def entry(label: str, seed: int, wall: int = 1_000, eid: str | None = None, origin: str = "cam-b") -> BankEntry:
    v = np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
    return BankEntry.from_vector(
        id=eid or f"e{seed}", bank="faces", label=label, vector=v, hlc=Stamp(wall, 0, origin), origin=origin
    )


def test_the_route_is_the_own_model_topic(rig: Rig, tmp_path: Path) -> None:
    assert rig.route.filter == "maix/fleet/f1/bank/faces/m0/+" and rig.route.qos == 0  # see sync.py on QoS
    assert Rig(tmp_path / "q1", qos=1).route.qos == 1


def test_local_changes_are_published_retained_and_signed(tmp_path: Path) -> None:
    sent: list[tuple[str, bytes, int, bool]] = []
    bank = EntryBank("faces", "m0", DIM, tmp_path, HLC("cam-a"), "cam-a")
    FleetSync(TOPICS, [bank], lambda *a: sent.append(a), key=KEY, max_bytes=1 << 16, queue_bytes=1 << 20)
    (e,) = bank.add("alice", [np.ones(DIM, np.float32)])
    (tomb,) = bank.delete(lambda _: True)
    assert [(t, q, r) for t, _, q, r in sent] == [(f"maix/fleet/f1/bank/faces/m0/{e.id}", 1, True)] * 2
    got = BankEntry.decode(sent[1][1], key=KEY, expect_dim=DIM, expect_bank="faces", max_bytes=1 << 16)
    assert got == tomb and got.deleted


def test_a_batch_is_applied_saved_and_logged(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "agent.bank.sync")
    bob = entry("bob", 3)
    rig.bank.merge(bob)
    for e in (entry("alice", 1), entry("alice", 2), bob.tombstone(Stamp(2_000, 0, "cam-b"))):
        rig.deliver(e.id, e.encode(KEY))
    rig.deliver("e9", b"")
    rig.start()
    wait(lambda: "from the fleet" in caplog.text, "the log line")
    assert "bank faces: 3 entries from the fleet (alice +2, bob -1)" in caplog.text
    assert rig.bank.path.exists() and [
        e.label for e in EntryBank("faces", "m0", DIM, rig.bank.path.parents[1], HLC("x"), "x").live()
    ] == ["alice", "alice"]
    st = rig.sync.state()
    assert st["bank_rejected"] == 0 and st["bank_sync"]["applied"] == 3 and st["bank_sync"]["cleared"] == 1
    assert st["bank_last_sync"] is not None


def test_after_the_quiet_period_what_the_broker_lacks_or_holds_older_is_published(rig: Rig) -> None:
    kept, changed, lacking = (rig.bank.add(lb, [np.ones(DIM, np.float32)])[0] for lb in ("a", "b", "c"))
    old_b = changed
    (changed,) = rig.bank.relabel("b", "bee")
    rig.published.clear()
    rig.sync.connected()
    rig.deliver(kept.id, kept.encode(KEY))
    rig.deliver(old_b.id, old_b.encode(KEY))  # the broker holds an older version of b
    rig.start()
    wait(lambda: rig.sync.phase == "synced" and len(rig.published) >= 2, "the re-publish")
    republished = {t.rsplit("/", 1)[1]: p for t, p in rig.published}
    assert set(republished) == {changed.id, lacking.id}
    assert republished[changed.id] == changed.encode(KEY)


def test_refused_messages_at_a_local_id_are_repaired_once_per_connection(rig: Rig) -> None:
    (mine,) = rig.bank.add("alice", [np.ones(DIM, np.float32)])
    rig.published.clear()
    rig.start()
    rig.sync.connected()
    rig.deliver(mine.id, mine.encode(KEY))
    wait(lambda: rig.sync.phase == "synced", "the initial sync")
    forged = entry("mallory", 7, wall=mine.hlc.wall_ms + 10, eid=mine.id).encode(b"wrong")
    for _ in range(3):
        rig.deliver(mine.id, forged)
    wait(lambda: rig.sync.state()["bank_rejects"].get("bad_signature") == 3, "the rejects")
    wait(lambda: rig.published, "the repair")
    assert rig.published == [(rig.route.filter[:-1] + mine.id, mine.encode(KEY))]
    assert rig.bank.get(mine.id) == mine


def test_an_overflowing_queue_drops_counts_and_subscribes_again(tmp_path: Path) -> None:
    r = Rig(tmp_path, queue_bytes=1 << 20)
    big = b"\xc1" * 60_000  # refused anyway; only its size matters here
    for i in range(40):  # 2.4 MB > 1 MiB while the worker is not running
        r.deliver(f"x{i}", big)
    assert r.sync.state()["bank_sync"]["dropped"] > 0
    r.start()
    try:
        wait(lambda: (r.route.filter, False) in r.changes, "the re-subscription")
        assert r.changes[-2:] == [(r.route.filter, False), (r.route.filter, True)]
        assert r.sync.state()["bank_rejects"]["not_msgpack"] + r.sync.state()["bank_sync"]["dropped"] == 40
    finally:
        r.stop.set()
        r.thread.join(5)


def test_a_backlog_longer_than_one_burst_is_applied_entirely(rig: Rig) -> None:
    n = 2 * BURST + 7
    for i in range(n):
        e = entry(f"p{i % 10}", i, eid=f"e{i}")
        rig.deliver(e.id, e.encode(KEY))
    rig.start()
    wait(lambda: rig.sync.state()["bank_sync"].get("applied") == n, "every entry")
    assert len(rig.bank.snapshot()) == n and rig.sync.state()["bank_rejected"] == 0
