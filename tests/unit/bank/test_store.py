"""EntryBank: durable local changes, last-writer-wins merge, fleet-wide order, corrupt files."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.bank.clock import DAY_MS, HLC, ClockSkewError, Stamp
from agent.bank.entry import BankEntry
from agent.bank.store import EntryBank

DIM = 4


def bank(tmp: Path, origin: str = "cam-a", now: list[int] | None = None) -> EntryBank:
    clock = HLC(origin) if now is None else HLC(origin, now_ms=lambda: now[0])
    return EntryBank("faces", "m0", DIM, tmp / origin, clock, origin)


def labelled(label: str) -> Callable[[BankEntry], bool]:
    return lambda e: e.label == label


def vec(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=DIM).astype(np.float32)


def state(b: EntryBank) -> dict[str, tuple[Stamp, str, bool]]:
    return {e.id: (e.hlc, e.label, e.deleted) for e in b.snapshot()}


def test_local_changes_are_on_disk_before_listeners_run(tmp_path: Path) -> None:
    b = bank(tmp_path)
    seen: list[tuple[list[str], int]] = []

    def listener(entries: list[BankEntry]) -> None:
        on_disk = msgpack.unpackb(b.path.read_bytes(), raw=False)["entries"]
        seen.append(([e.id for e in entries], len(on_disk)))

    b.listeners.append(listener)
    added = b.add("alice", [vec(1), vec(2)])
    assert seen == [([e.id for e in added], 2)]
    gone = b.delete(lambda e: e.id == added[0].id)
    assert gone[0].deleted and seen[-1] == ([added[0].id], 2)  # the tombstone is kept on disk
    reloaded = bank(tmp_path)
    assert state(reloaded) == state(b)
    assert reloaded.clock.tick() > max(e.hlc for e in b.snapshot())


def test_add_many_is_one_write_and_ids_sort_by_creation(tmp_path: Path) -> None:
    b = bank(tmp_path)
    calls: list[int] = []
    b.listeners.append(lambda entries: calls.append(len(entries)))
    made = b.add_many([("bob", vec(1)), ("alice", vec(2)), ("bob", vec(3))])
    assert calls == [3]
    assert [e.id for e in made] == sorted(e.id for e in made)
    assert b.labels() == ["bob", "alice"]
    assert [e.label for e in b.live()] == ["bob", "bob", "alice"]


def test_rename_keeps_the_class_position(tmp_path: Path) -> None:
    b = bank(tmp_path)
    b.add("alice", [vec(1)])
    b.add("bob", [vec(2)])
    b.add("carol", [vec(3)])
    b.relabel("alice", "alicia")
    assert b.labels() == ["alicia", "bob", "carol"]
    b.delete(lambda e: e.label == "bob")
    assert b.labels() == ["alicia", "carol"]


def test_merge_is_last_writer_wins_and_tombstones_win_whatever_the_order(tmp_path: Path) -> None:
    a, b = bank(tmp_path, "cam-a"), bank(tmp_path, "cam-b")
    (entry,) = a.add("alice", [vec(1)])
    (tomb,) = a.delete(lambda e: True)
    assert b.merge(tomb) is True
    assert b.merge(entry) is False  # older: the deletion stays
    assert b.live() == [] and b.count() == {"entries": 0, "labels": 0, "tombstones": 1}
    assert b.merge(tomb) is False  # an echo is a no-op
    assert b.clock.tick() > tomb.hlc  # the clock observed the remote stamp


def test_equal_stamps_are_decided_by_content(tmp_path: Path) -> None:
    stamp = Stamp(1_000, 0, "cam-x")
    one = BankEntry.from_vector(id="e1", bank="faces", label="alice", vector=vec(1), hlc=stamp, origin="cam-x")
    two = BankEntry.from_vector(id="e1", bank="faces", label="mallory", vector=vec(2), hlc=stamp, origin="cam-x")
    a, b = bank(tmp_path, "cam-a"), bank(tmp_path, "cam-b")
    a.merge(one)
    a.merge(two)
    b.merge(two)
    b.merge(one)
    assert state(a) == state(b)


def test_a_stamp_far_in_the_future_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    now = [10 * DAY_MS]
    b = bank(tmp_path, now=now)
    future = Stamp(now[0] + 2 * DAY_MS, 0, "cam-z")
    entry = BankEntry.from_vector(id="e1", bank="faces", label="x", vector=vec(1), hlc=future, origin="cam-z")
    version = b.version
    with pytest.raises(ClockSkewError):
        b.merge(entry)
    assert b.snapshot() == [] and b.version == version


def test_corrupt_file_is_moved_aside(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    b = bank(tmp_path)
    b.add("alice", [vec(1)])
    b.path.write_bytes(b"\x93garbage")
    fresh = bank(tmp_path)
    assert fresh.snapshot() == []
    assert list(b.path.parent.glob("*.corrupt-*")) and "moved aside" in caplog.text


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_any_delivery_order_converges_to_the_same_bank_and_order(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    tmp = tmp_path_factory.mktemp("conv")
    sources = [bank(tmp, f"cam-{i}") for i in range(3)]
    versions: list[BankEntry] = []
    ops = data.draw(
        st.lists(st.tuples(st.integers(0, 2), st.sampled_from(["add", "del", "ren"]), st.integers(0, 3)), max_size=25)
    )
    for cam, op, n in ops:
        src, label = sources[cam], f"p{n}"
        if op == "add":
            versions += src.add(label, [vec(len(versions))])
        elif op == "del":
            versions += src.delete(labelled(label))
        else:
            versions += src.relabel(label, f"p{(n + 1) % 4}")
        if bool(versions) and data.draw(st.booleans()):  # sometimes a camera hears of another's change
            other = sources[(cam + 1) % 3]
            for v in versions[-3:]:
                other.merge(v)
    replicas = []
    for seed in range(3):
        shuffled = versions[:]
        random.Random(seed).shuffle(shuffled)
        r = bank(tmp, f"rep-{seed}")
        for v in shuffled:
            r.merge(v)
        replicas.append(r)
    for r in replicas[1:]:
        assert state(r) == state(replicas[0])
        assert [e.id for e in r.live()] == [e.id for e in replicas[0].live()]
        assert r.labels() == replicas[0].labels()
