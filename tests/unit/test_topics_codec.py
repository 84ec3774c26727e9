from __future__ import annotations

import contextlib
import json
import math

import msgpack
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.mqtt import codec, envelope
from agent.mqtt.client import route_for
from agent.mqtt.codec import DecodeError
from agent.mqtt.topics import Route, TopicRegistry, Topics


@pytest.mark.parametrize(
    ("f", "t", "ok"),
    [
        ("a/b", "a/b", True),
        ("a/+", "a/b", True),
        ("a/+", "a/b/c", False),
        ("a/#", "a", True),
        ("a/#", "a/b/c", True),
        ("+/+", "a/b", True),
        ("#", "$SYS/x", False),
        ("a/b", "a/c", False),
        ("a/+/c", "a//c", True),
        ("m/fleet/f/bank/+/abc/+", "m/fleet/f/bank/faces/abc/e1", True),
        ("m/fleet/f/bank/+/abc/+", "m/fleet/f/bank/faces/xyz/e1", False),
    ],
)
def test_topic_matches(f: str, t: str, ok: bool) -> None:
    route = Route(f, 0, lambda m: None)
    assert (route_for([route], t) is route) is ok


def test_registry_drives_subscribe_and_dispatch() -> None:
    reg = TopicRegistry()
    changes: list[tuple[str, bool]] = []
    reg.on_change = lambda r, added: changes.append((r.filter, added))
    reg.add(Route("p/d/cmd/#", 1, lambda m: None, "cmd"))
    reg.add(Route("p/d/frame/in", 0, lambda m: None, "frame"))
    assert [r.filter for r in reg.routes()] == ["p/d/cmd/#", "p/d/frame/in"]
    cmd = route_for(reg.routes(), "p/d/cmd/system/ping")
    assert cmd is not None and cmd.name == "cmd"
    assert route_for(reg.routes(), "p/d/other") is None
    reg.remove("p/d/frame/in")
    assert changes[-1] == ("p/d/frame/in", False) and route_for(reg.routes(), "p/d/frame/in") is None


def test_topics_command_of() -> None:
    t = Topics("maix", "cam", "home")
    assert t.command_of("maix/cam/cmd/face/enrol") == ("face", "enrol")
    assert t.command_of("maix/fleet/home/cmd/system/ping") == ("system", "ping")
    assert t.command_of("maix/cam/cmd/infer") == ("infer", "")
    assert t.command_of("maix/cam/cmd/a/b/c") is None
    assert t.command_of("maix/cam/cmd/") is None
    assert t.command_of("maix/other/cmd/system/ping") is None
    assert t.reply("face", "enrol") == "maix/cam/reply/face/enrol"
    assert t.bank_entry("faces", "abc", "e1") == "maix/fleet/home/bank/faces/abc/e1"


def test_sniff() -> None:
    assert codec.sniff(b'{"a":1}') == "json"
    assert codec.sniff(b"\x81\xa1a\x01") == "msgpack"
    assert codec.sniff(b"\x81", "application/json") == "json"
    assert codec.sniff(b"{", "application/msgpack") == "msgpack"


def test_round_trips_and_numpy() -> None:
    obj = {"a": [1, 2.5, "x"], "b": {"c": None}, "n": np.float32(1.5), "arr": np.arange(3)}
    assert codec.decode(codec.encode(obj, "json"), "json", max_bytes=1000)["arr"] == [0, 1, 2]
    back = codec.decode(codec.encode({**obj, "bin": b"\x00\x01"}, "msgpack"), "msgpack", max_bytes=1000)
    assert back["bin"] == b"\x00\x01" and back["n"] == 1.5
    # bytes become base64 in JSON; NaN becomes null (JSON has no NaN)
    js = json.loads(codec.encode({"b": b"hi", "x": math.nan}, "json"))
    assert js == {"b": "aGk=", "x": None}


def test_decode_limits() -> None:
    with pytest.raises(DecodeError, match="exceeds"):
        codec.decode(b"{}" + b" " * 100, "json", max_bytes=10)
    # a crafted msgpack header claiming a 4 GiB bin must not allocate it
    with pytest.raises(DecodeError):
        codec.decode(b"\xc6\xff\xff\xff\xff" + b"x" * 10, "msgpack", max_bytes=1000)
    with pytest.raises(DecodeError):
        codec.decode(b"\xdd\xff\xff\xff\xff", "msgpack", max_bytes=1000)
    with pytest.raises(DecodeError):
        codec.decode(b"\xff\xfe", "json", max_bytes=1000)
    with pytest.raises(DecodeError):
        codec.decode(msgpack.packb({1: 2}), "msgpack", max_bytes=1000)  # non-string keys


@given(st.binary(max_size=256))
def test_decode_never_raises_anything_else(data: bytes) -> None:
    for enc in ("json", "msgpack"):
        with contextlib.suppress(DecodeError):
            codec.decode(data, enc, max_bytes=512)


def test_envelope() -> None:
    assert envelope.split_id({"id": 3, "a": 1}) == (3, {"a": 1})
    assert envelope.split_id({"a": 1}) == (None, {"a": 1})
    assert envelope.split_id([1]) == (None, None)
    assert envelope.split_id({"id": {"x": 1}})[0] is None  # unechoable ids are dropped
    assert envelope.split_id({"id": "x" * 500})[0] is None
    assert envelope.ok(1, None) == {"id": 1, "ok": True, "data": {}}
    assert envelope.error(1, "not_found", "m") == {"id": 1, "ok": False, "error": {"code": "not_found", "message": "m"}}
