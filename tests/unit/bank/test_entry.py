"""Fleet bank entries: encoding, canonical form, signatures and every rejection reason."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import hmac
import struct
from typing import Any

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.bank.clock import Stamp
from agent.bank.entry import BankEntry, RejectedEntry, canonical_bytes
from agent.errors import AgentError

KEY = b"fleet-secret-key"
DIM = 4
MAX = 64 * 1024


def make(**changes: Any) -> BankEntry:
    base = BankEntry.from_vector(
        id="cam-a_17",
        bank="faces",
        label="Zoë",
        vector=np.array([0.5, -1.0, 2.0, 0.0], dtype=np.float32),
        hlc=Stamp(1_700_000_000_000, 3, "cam-a"),
        origin="cam-a",
    )
    return dataclasses.replace(base, **changes)


def decode(payload: bytes, key: bytes | None = None, **kw: Any) -> BankEntry:
    args: dict[str, Any] = {"expect_dim": DIM, "expect_bank": "faces", "max_bytes": MAX}
    args.update(kw)
    return BankEntry.decode(payload, key=key, **args)


def wire(entry: BankEntry, key: bytes | None = None) -> dict[str, Any]:
    obj = msgpack.unpackb(entry.encode(key), raw=False)
    assert isinstance(obj, dict)
    return obj


def pack(obj: object) -> bytes:
    out = msgpack.packb(obj, use_bin_type=True)
    assert isinstance(out, bytes)
    return out


def reject_reason(payload: bytes, key: bytes | None = None, **kw: Any) -> str:
    with pytest.raises(RejectedEntry) as err:
        decode(payload, key, **kw)
    return err.value.reason


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("key", [None, KEY])
def test_round_trip(key: bytes | None) -> None:
    entry = make()
    assert decode(entry.encode(key), key) == entry


def test_signed_entry_is_accepted_by_a_keyless_receiver() -> None:
    entry = make()
    assert decode(entry.encode(KEY), None) == entry


def test_tombstone_round_trip() -> None:
    dead = make().tombstone(Stamp(1_700_000_000_500, 0, "cam-b"))
    assert dead.deleted and dead.vec == b"" and dead.label == "Zoë"
    assert decode(dead.encode(KEY), KEY) == dead
    assert dead.vector().shape == (0,)


def test_tombstone_with_nil_vec_is_accepted() -> None:
    dead = make().tombstone(Stamp(5, 0, "cam-b"))
    obj = wire(dead, KEY)
    obj["vec"] = None
    assert decode(pack(obj), KEY) == dead  # the signature covers the canonical empty bin


def test_vector_is_readonly_float32_copy() -> None:
    entry = make()
    vec = entry.vector()
    assert vec.dtype == np.float32
    np.testing.assert_array_equal(vec, [0.5, -1.0, 2.0, 0.0])
    assert not vec.flags.writeable
    with pytest.raises(ValueError):
        vec[0] = 1.0


def test_wire_layout_matches_design() -> None:
    obj = wire(make(), KEY)
    assert set(obj) == {"v", "id", "bank", "label", "vec", "dim", "hlc", "origin", "deleted", "sig"}
    assert obj["v"] == 1
    assert obj["vec"] == struct.pack("<4f", 0.5, -1.0, 2.0, 0.0)
    assert obj["hlc"] == [1_700_000_000_000, 3, "cam-a"]
    assert obj["deleted"] is False
    assert isinstance(obj["sig"], bytes) and len(obj["sig"]) == 32
    assert wire(make())["sig"] is None


def test_canonical_form_is_reproducible_independently() -> None:
    """The docstring's definition, rebuilt by hand: sorted keys, bin vec, HMAC-SHA256."""
    entry = make()
    independent = pack(
        {
            "bank": "faces",
            "deleted": False,
            "dim": 4,
            "hlc": [1_700_000_000_000, 3, "cam-a"],
            "id": "cam-a_17",
            "label": "Zoë",
            "origin": "cam-a",
            "v": 1,
            "vec": struct.pack("<4f", 0.5, -1.0, 2.0, 0.0),
        }
    )
    assert entry.canonical() == independent
    assert independent[0] == 0x89  # fixmap of 9
    assert wire(entry, KEY)["sig"] == hmac.new(KEY, independent, hashlib.sha256).digest()
    signed = dict(msgpack.unpackb(independent, raw=False))
    signed["sig"] = hmac.new(KEY, independent, hashlib.sha256).digest()
    assert entry.encode(KEY) == canonical_bytes(signed)
    assert list(msgpack.unpackb(entry.encode(KEY), raw=False)) == sorted(signed)


def test_encoding_is_stable() -> None:
    assert make().encode(KEY) == make().encode(KEY)
    assert make().encode(None) == make().encode(None)
    # decoding a payload packed in another key order and re-encoding gives the canonical bytes
    obj = wire(make(), KEY)
    shuffled = pack(dict(reversed(list(obj.items()))))
    assert shuffled != make().encode(KEY)
    assert decode(shuffled, KEY).encode(KEY) == make().encode(KEY)


labels = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\x00"),
    min_size=1,
    max_size=128,
)
idents = st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)


@settings(max_examples=100, deadline=None)
@given(
    ident=idents,
    label=labels,
    dim=st.integers(1, 64),
    wall=st.integers(0, 2**63 - 1),
    counter=st.integers(0, 2**63 - 1),
    deleted=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_round_trip_hypothesis(
    ident: str, label: str, dim: int, wall: int, counter: int, deleted: bool, seed: int
) -> None:
    vec = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    entry = BankEntry.from_vector(
        id=ident,
        bank="classes",
        label=label,
        vector=vec,
        hlc=Stamp(wall, counter, "o.1:x"),
        origin="o.1:x",
    )
    if deleted:
        entry = entry.tombstone(Stamp(wall, counter, "p"))
    for key in (None, KEY):
        payload = entry.encode(key)
        assert payload == entry.encode(key)
        got = BankEntry.decode(payload, key=key, expect_dim=dim, expect_bank="classes", max_bytes=MAX)
        assert got == entry


# --------------------------------------------------------------------------- signatures


@pytest.mark.parametrize(
    ("changes", "expect"),
    [
        ({"id": "cam-a_18"}, {}),
        ({"bank": "classes"}, {"expect_bank": "classes"}),
        ({"label": "Zoe"}, {}),
        ({"vec": struct.pack("<4f", 0.5, -1.0, 2.0, 0.25)}, {}),
        ({"dim": 2, "vec": struct.pack("<2f", 0.5, -1.0)}, {"expect_dim": 2}),
        ({"hlc": [1_700_000_000_000, 4, "cam-a"]}, {}),
        ({"hlc": [1_700_000_000_001, 3, "cam-a"]}, {}),
        ({"hlc": [1_700_000_000_000, 3, "cam-b"]}, {}),
        ({"origin": "cam-b"}, {}),
        ({"deleted": True, "vec": b""}, {}),
    ],
)
def test_any_changed_field_fails_verification(changes: dict[str, Any], expect: dict[str, Any]) -> None:
    obj = wire(make(), KEY)
    obj.update(changes)
    payload = pack(obj)
    assert reject_reason(payload, KEY, **expect) == "bad_signature"
    decode(payload, None, **expect)  # valid in itself: only the signature was wrong


def test_wrong_key_and_bad_sigs() -> None:
    payload = make().encode(KEY)
    assert reject_reason(payload, b"another-key") == "bad_signature"
    obj = wire(make(), KEY)
    obj["sig"] = obj["sig"][:-1]
    assert reject_reason(pack(obj), KEY) == "bad_signature"
    obj["sig"] = b""
    assert reject_reason(pack(obj), KEY) == "bad_signature"


def test_missing_sig_with_key_is_unsigned() -> None:
    assert reject_reason(make().encode(None), KEY) == "unsigned"
    obj = wire(make(), None)
    del obj["sig"]
    assert reject_reason(pack(obj), KEY) == "unsigned"
    assert decode(pack(obj), None) == make()


def test_empty_key_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        make().encode(b"")


# --------------------------------------------------------------------------- rejections


def mutated(**changes: Any) -> bytes:
    obj = wire(make(), None)
    for name, value in changes.items():
        if value is _DROP:
            del obj[name]
        else:
            obj[name] = value
    return pack(obj)


_DROP = object()


def test_oversize() -> None:
    payload = make().encode(KEY)
    assert reject_reason(payload, KEY, max_bytes=len(payload) - 1) == "oversize"
    assert decode(payload, KEY, max_bytes=len(payload)) == make()


@pytest.mark.parametrize(
    "payload",
    [b"", b"\xc1", b"\x92\x01", make().encode(None)[:-1], make().encode(None) + b"\x00"],
)
def test_not_msgpack(payload: bytes) -> None:
    assert reject_reason(payload) == "not_msgpack"


def test_msgpack_limits() -> None:
    assert reject_reason(pack(list(range(100)))) == "not_msgpack"  # array too long
    assert reject_reason(pack({str(i): i for i in range(100)})) == "not_msgpack"
    assert reject_reason(mutated(label="x" * 1000)) == "not_msgpack"  # str limit
    assert reject_reason(pack({1: 2})) == "not_msgpack"  # strict_map_key
    assert reject_reason(b"\x91" * 5000 + b"\x00") == "not_msgpack"  # deep nesting
    assert reject_reason(pack(msgpack.ExtType(1, b"x"))) == "not_msgpack"
    good = make().encode(None)
    assert b"\xa4Zo\xc3\xab" in good
    assert reject_reason(good.replace(b"\xa4Zo\xc3\xab", b"\xa4Zo\xff\xfe")) == "not_msgpack"


@pytest.mark.parametrize("payload", [pack(1), pack("x"), pack([1, 2]), pack(None), pack(b"x")])
def test_not_map(payload: bytes) -> None:
    assert reject_reason(payload) == "not_map"


@pytest.mark.parametrize(
    "changes",
    [
        {"id": _DROP},
        {"label": _DROP},
        {"hlc": _DROP},
        {"v": _DROP},
        {"extra": 1},
        {"v": "1"},
        {"v": True},
        {"id": ""},
        {"id": "x" * 65},
        {"id": "a/b"},
        {"id": "a+b"},
        {"id": "é"},
        {"id": 5},
        {"bank": 3},
        {"label": ""},
        {"label": "x" * 129},
        {"label": "a\x00b"},
        {"label": b"bytes"},
        {"dim": "4"},
        {"dim": 4.0},
        {"dim": True},
        {"dim": 0},
        {"dim": -4},
        {"vec": "text"},
        {"vec": [1, 2]},
        {"hlc": [1, 2]},
        {"hlc": [1, 2, 3]},
        {"hlc": [-1, 0, "a"]},
        {"hlc": [0, -1, "a"]},
        {"hlc": [1.5, 0, "a"]},
        {"hlc": [0, 0, ""]},
        {"hlc": [0, 0, "a/b"]},
        {"hlc": [2**63, 0, "a"]},
        {"hlc": "1,2,a"},
        {"origin": ""},
        {"origin": "a#"},
        {"origin": None},
        {"deleted": 0},
        {"deleted": None},
        {"sig": 5},
        {"sig": "text"},
    ],
)
def test_bad_field(changes: dict[str, Any]) -> None:
    assert reject_reason(mutated(**changes)) == "bad_field"


def test_bad_version() -> None:
    assert reject_reason(mutated(v=2)) == "bad_version"
    assert reject_reason(mutated(v=0)) == "bad_version"
    assert reject_reason(pack({"v": 2, "anything": "new"})) == "bad_version"


def test_bank_mismatch() -> None:
    assert reject_reason(make().encode(None), expect_bank="classes") == "bank_mismatch"


def test_dim_mismatch() -> None:
    assert reject_reason(make().encode(None), expect_dim=512) == "dim_mismatch"
    dead = make().tombstone(Stamp(9, 0, "x"))
    assert reject_reason(dead.encode(None), expect_dim=512) == "dim_mismatch"


@pytest.mark.parametrize(
    "vec",
    [
        b"",
        b"\x00" * 12,
        b"\x00" * 20,
        b"\x00" * 17,
        struct.pack("<4f", 1.0, float("nan"), 0.0, 0.0),
        struct.pack("<4f", 1.0, float("inf"), 0.0, 0.0),
        struct.pack("<4f", 1.0, float("-inf"), 0.0, 0.0),
    ],
)
def test_bad_vector(vec: bytes) -> None:
    assert reject_reason(mutated(vec=vec)) == "bad_vector"


def test_nil_vec_on_a_live_entry_is_bad_vector() -> None:
    assert reject_reason(mutated(vec=None)) == "bad_vector"


def test_tombstone_with_vector() -> None:
    assert reject_reason(mutated(deleted=True)) == "tombstone_with_vector"


def test_rejected_entry_is_an_agent_error() -> None:
    err = RejectedEntry("oversize", "too big")
    assert isinstance(err, AgentError)
    assert err.reason == "oversize" and "too big" in str(err)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_only_raise_rejected_entry(data: bytes) -> None:
    for key in (None, KEY):
        with contextlib.suppress(RejectedEntry):
            decode(data, key)


msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["v", "id", "bank", "label", "vec", "dim", "hlc", "origin", "deleted", "sig", "x"]),
        msgpack_values,
    )
)
def test_random_maps_only_raise_rejected_entry(changes: dict[str, Any]) -> None:
    obj = wire(make(), KEY)
    obj.update(changes)
    for key in (None, KEY):
        with contextlib.suppress(RejectedEntry):
            decode(pack(obj), key)


# --------------------------------------------------------------------------- construction


@pytest.mark.parametrize(
    "changes",
    [
        {"id": "bad id"},
        {"label": ""},
        {"label": "\ud800"},
        {"dim": 3},
        {"vec": b"\x00" * 3},
        {"deleted": True},  # tombstone must carry no vector
        {"hlc": (1, 2, "a")},  # not a Stamp
        {"origin": "a b"},
    ],
)
def test_constructor_validates(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        make(**changes)


def test_from_vector_refuses_bad_vectors() -> None:
    with pytest.raises(ValueError):
        make(vec=struct.pack("<4f", 0, 0, 0, float("nan")))
    with pytest.raises(ValueError):
        BankEntry.from_vector(
            id="a",
            bank="faces",
            label="x",
            vector=np.ones((2, 2)),
            hlc=Stamp(0, 0, "a"),
            origin="a",
        )
    with pytest.raises(ValueError):
        BankEntry.from_vector(
            id="a",
            bank="faces",
            label="x",
            vector=np.array([1e39]),
            hlc=Stamp(0, 0, "a"),
            origin="a",
        )


def test_entries_are_frozen_and_hashable() -> None:
    entry = make()
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.label = "other"  # type: ignore[misc]
    assert len({entry, make()}) == 1
