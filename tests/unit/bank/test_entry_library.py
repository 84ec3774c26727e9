"""Bank entries with a crop and negatives: canonical form, signatures, LWW, tombstones, garbage."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import cv2
import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.bank.clock import HLC, Stamp
from agent.bank.entry import MAX_CROP_BYTES, BankEntry, RejectedEntry
from agent.bank.store import EntryBank

KEY = b"fleet-secret-key"
DIM = 128
JPEG = cv2.imencode(
    ".jpg", np.random.default_rng(0).integers(0, 255, (112, 112, 3), np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 90]
)[1].tobytes()


def make(**changes: Any) -> BankEntry:
    vec = np.random.default_rng(1).normal(size=DIM).astype(np.float32)
    base = BankEntry.from_vector(
        id="0190f0e1a2b3000001abcdefabcd",
        bank="faces",
        label="george",
        vector=vec / np.linalg.norm(vec),
        hlc=Stamp(1_700_000_000_000, 0, "cam-a"),
        origin="cam-a",
        crop=JPEG,
    )
    return dataclasses.replace(base, **changes)


def decode(payload: bytes, key: bytes | None = KEY, max_bytes: int = 64 << 10) -> BankEntry:
    return BankEntry.decode(payload, key=key, expect_dim=DIM, expect_bank="faces", max_bytes=max_bytes)


def reason(payload: bytes, key: bytes | None = KEY) -> str:
    with pytest.raises(RejectedEntry) as err:
        decode(payload, key)
    return err.value.reason


@pytest.mark.parametrize("neg", [False, True])
def test_crop_and_negative_round_trip_signed(neg: bool) -> None:
    e = make(neg=neg)
    payload = e.encode(KEY)
    assert decode(payload) == e
    keys = list(msgpack.unpackb(payload, raw=False))
    assert keys == sorted(keys) and "crop" in keys and ("neg" in keys) == neg
    print(f"signed 128-d entry with a 112x112 q90 crop: {len(payload)} bytes (crop {len(JPEG)})")


def test_entries_without_crop_or_negative_encode_exactly_as_before() -> None:
    e = make(crop=b"")
    obj = msgpack.unpackb(e.encode(KEY), raw=False)
    assert set(obj) == {"v", "id", "bank", "label", "vec", "dim", "hlc", "origin", "deleted", "sig"}


@pytest.mark.parametrize(
    "change",
    [{"crop": JPEG[:-1]}, {"crop": b"\xff\xd8\xff" + b"x" * 10}, {"neg": True}, {"label": "jeb"}],
)
def test_the_signature_covers_crop_and_negative(change: dict[str, Any]) -> None:
    signed = msgpack.unpackb(make().encode(KEY), raw=False)
    signed.update(change)
    assert reason(msgpack.packb(signed, use_bin_type=True)) == "bad_signature"


def test_stripping_the_negative_flag_or_the_crop_breaks_the_signature() -> None:
    """A forger cannot turn a negative into a sample of the same person."""
    signed = msgpack.unpackb(make(neg=True).encode(KEY), raw=False)
    del signed["neg"]
    assert reason(msgpack.packb(signed, use_bin_type=True)) == "bad_signature"
    signed = msgpack.unpackb(make().encode(KEY), raw=False)
    del signed["crop"]
    assert reason(msgpack.packb(signed, use_bin_type=True)) == "bad_signature"


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"crop": b"GIF89a"}, "bad_crop"),
        ({"crop": b"\xff\xd8\xff" + bytes(MAX_CROP_BYTES)}, "bad_crop"),
        ({"crop": 5}, "bad_field"),
        ({"neg": 1}, "bad_field"),
        ({"neg": False}, "bad_field"),  # never sent so: the canonical form leaves it out
        ({"crop": b""}, "bad_field"),
        ({"deleted": True, "vec": b""}, "bad_crop"),  # a tombstone carries no crop
    ],
)
def test_bad_crops_and_flags_are_refused(change: dict[str, Any], why: str) -> None:
    obj = msgpack.unpackb(make().encode(None), raw=False)
    obj.update(change)
    assert reason(msgpack.packb(obj, use_bin_type=True), None) == why


def test_tombstone_drops_the_crop_and_keeps_the_flag() -> None:
    t = make(neg=True).tombstone(Stamp(1_700_000_000_001, 0, "cam-b"))
    assert t.deleted and t.crop == b"" and t.neg and t.vec == b""
    assert decode(t.encode(KEY)) == t


def test_oversize_entry_with_crop_is_refused_by_the_limit() -> None:
    payload = make().encode(KEY)
    with pytest.raises(RejectedEntry) as err:
        decode(payload, max_bytes=len(payload) - 1)
    assert err.value.reason == "oversize"


@settings(max_examples=300, deadline=None)
@given(
    crop=st.one_of(
        st.binary(max_size=64), st.just(JPEG), st.integers(-(2**63), 2**63 - 1), st.none(), st.text(max_size=5)
    ),
    neg=st.one_of(st.booleans(), st.integers(-(2**63), 2**63 - 1), st.none(), st.binary(max_size=3)),
    extra=st.dictionaries(st.text(max_size=6), st.integers(0, 9), max_size=2),
)
def test_garbage_in_the_new_fields_only_raises_rejected_entry(crop: object, neg: object, extra: dict[str, int]) -> None:
    obj = msgpack.unpackb(make().encode(None), raw=False)
    obj.update({"crop": crop, "neg": neg, **extra})
    try:
        e = decode(msgpack.packb(obj, use_bin_type=True), None)
    except RejectedEntry:
        return
    assert isinstance(e.crop, bytes) and isinstance(e.neg, bool)


def _bank(tmp: Path, dev: str) -> EntryBank:
    return EntryBank("faces", "abc123abc123", DIM, tmp / dev, HLC(dev), dev)


def test_store_keeps_crops_on_disk_and_negatives_out_of_matching(tmp_path: Path) -> None:
    bank = _bank(tmp_path, "a")
    vec = make().vector()
    (pos,) = bank.add_samples([("george", vec, JPEG, False)])
    (neg,) = bank.add_samples([("george", -vec, JPEG, True)])
    assert [e.id for e in bank.live()] == [pos.id] and [e.id for e in bank.negatives()] == [neg.id]
    vectors, labels = bank.matrix()
    assert labels == ["george"] and len(vectors) == 1 and bank.labels() == ["george"]
    assert bank.count() == {"entries": 1, "labels": 1, "tombstones": 0, "negatives": 1}
    again = _bank(tmp_path, "a")
    assert again.get(pos.id) == pos and again.get(neg.id) == neg and again.get(pos.id).crop == JPEG  # type: ignore[union-attr]
    gone = again.delete(lambda e: e.id == neg.id)
    assert gone[0].deleted and gone[0].neg and gone[0].crop == b"" and again.negatives() == []


def test_negatives_merge_last_writer_wins_and_tombstones_win_in_any_order(tmp_path: Path) -> None:
    a, b = _bank(tmp_path, "a"), _bank(tmp_path, "b")
    (neg,) = a.add_samples([("george", make().vector(), JPEG, True)])
    (tomb,) = a.delete(lambda e: e.id == neg.id)
    for order in ([neg, tomb], [tomb, neg]):
        c = _bank(tmp_path, f"c{len(order)}{order[0].deleted}")
        for e in order:
            c.merge(e)
        assert c.get(neg.id) == tomb and c.negatives() == []
    assert b.merge(neg) and b.negatives() == [neg]
    renamed = a.put([dataclasses.replace(neg, label="george")])[0]  # a newer version of the same id
    assert b.merge(renamed) and b.get(neg.id) == renamed and not b.merge(neg)
