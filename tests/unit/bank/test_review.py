"""The review ring on disk: bounds, retention, atomic items, garbage files."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.bank.review import ReviewItem, ReviewRing, new_review_id

_JPEG = cv2.imencode(".jpg", np.full((112, 112, 3), 128, np.uint8))[1].tobytes()


def item(k: int, now: float | None = None) -> ReviewItem:
    t = (time.time() if now is None else now) + k * 0.01
    vec = np.random.default_rng(k).normal(size=128).astype("<f4")
    return ReviewItem(
        id=new_review_id(t),
        created=t,
        updated=t,
        last_seen=t,
        frames=3,
        quality=50.0 + k,
        box=[10, 20, 80, 90],
        score=0.9,
        model="abc123abc123",
        vec=(vec / np.linalg.norm(vec)).tobytes(),
        crop=_JPEG,
    )


def test_ring_keeps_the_newest_and_survives_a_restart(tmp_path: Path) -> None:
    ring = ReviewRing(tmp_path / "review", keep=3, retention=3600)
    made = [item(k) for k in range(5)]
    for it in made:
        ring.write(it)
    assert [i.id for i in ring.newest_first()] == [m.id for m in reversed(made[2:])]
    assert sorted(p.stem for p in (tmp_path / "review").glob("*.msgpack")) == sorted(m.id for m in made[2:])
    again = ReviewRing(tmp_path / "review", keep=3, retention=3600)
    assert [i.id for i in again.newest_first()] == [m.id for m in reversed(made[2:])]
    assert again.get(made[4].id) == made[4]
    assert np.allclose(np.linalg.norm(again.get(made[4].id).vector()), 1.0)  # type: ignore[union-attr]
    smaller = ReviewRing(tmp_path / "review", keep=1, retention=3600)
    smaller.write(item(9))
    assert len(smaller.newest_first()) == 1 and len(list((tmp_path / "review").glob("*.msgpack"))) == 1


def test_off_keeps_nothing(tmp_path: Path) -> None:
    ring = ReviewRing(tmp_path / "review", keep=0, retention=3600)
    ring.write(item(0))
    assert ring.newest_first() == [] and not (tmp_path / "review").exists()


def test_retention_purges_old_items_on_start_and_on_demand(tmp_path: Path) -> None:
    now = 1_800_000_000.0
    ring = ReviewRing(tmp_path / "r", keep=10, retention=3600, clock=lambda: now)
    ring.write(item(0, now - 7200))
    ring.write(item(1, now - 60))
    assert ring.purge(now) == 1 and len(ring.newest_first()) == 1
    ring.write(item(2, now - 4000))
    later = ReviewRing(tmp_path / "r", keep=10, retention=3600, clock=lambda: now)
    assert [i.frames for i in later.newest_first()] == [3] and later.purged == 1
    assert later.remove(later.newest_first()[0].id) and not later.remove("nope")
    ring2 = ReviewRing(tmp_path / "r2", keep=10, retention=3600)
    for k in range(4):
        ring2.write(item(k))
    assert ring2.clear() == 4 and list((tmp_path / "r2").glob("*")) == []


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(garbage=st.binary(max_size=300))
def test_garbage_files_are_moved_aside_not_loaded(tmp_path: Path, garbage: bytes) -> None:
    folder = tmp_path / f"g{abs(hash(garbage))}"
    ring = ReviewRing(folder, keep=10, retention=3600)
    good = item(0)
    ring.write(good)
    (folder / "0123456789abcdef0123.msgpack").write_bytes(garbage)
    loaded = ReviewRing(folder, keep=10, retention=3600)
    assert [i.id for i in loaded.newest_first()] == [good.id]
    assert len(list(folder.glob("*.corrupt-*"))) == 1


def test_an_item_renamed_on_disk_is_refused(tmp_path: Path) -> None:
    ring = ReviewRing(tmp_path / "r", keep=10, retention=3600)
    it = item(0)
    ring.write(it)
    path = tmp_path / "r" / f"{it.id}.msgpack"
    path.rename(tmp_path / "r" / "aaaaaaaaaaaaaaaaaaaa.msgpack")
    assert ReviewRing(tmp_path / "r", keep=10, retention=3600).newest_first() == []
