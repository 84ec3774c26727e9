"""The router without a broker: a recording publisher stands in for the link."""

from __future__ import annotations

import json
import threading
from typing import Any

import msgpack
import pytest

from agent.commands.base import RequestModel, command
from agent.commands.dispatch import CommandRouter
from agent.errors import CommandError
from agent.mqtt.topics import Message, Topics


class Echo(RequestModel):
    x: int
    name: str = "a"


@command("t", "echo", Echo)
def echo(req: Echo, _ctx: Any) -> dict[str, Any]:
    return {"x": req.x, "name": req.name}


@command("t", "boom")
def boom(_req: Any, _ctx: Any) -> None:
    raise RuntimeError("kaput")


@command("t", "missing")
def missing(_req: Any, _ctx: Any) -> None:
    raise CommandError("not_found", "no such thing")


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, dict[str, Any]]] = []

    def __call__(self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False, **kw: Any) -> None:
        self.sent.append((topic, payload if isinstance(payload, bytes) else payload.encode(), kw))


@pytest.fixture
def setup() -> tuple[CommandRouter, Recorder, list[BaseException]]:
    rec = Recorder()
    router = CommandRouter([echo, boom, missing], None, Topics("p", "d", "f"), rec, max_bytes=1000, queue_size=2)
    errors: list[BaseException] = []
    router.on_internal_error.append(errors.append)
    return router, rec, errors


def _reply(rec: Recorder) -> dict[str, Any]:
    _topic, payload, _ = rec.sent[-1]
    return json.loads(payload) if payload[:1] == b"{" else msgpack.unpackb(payload)  # type: ignore[no-any-return]


def test_ok_json_and_msgpack(setup: tuple[CommandRouter, Recorder, list[BaseException]]) -> None:
    router, rec, errors = setup
    router.handle(Message("p/d/cmd/t/echo", b'{"id": "a", "x": 3}'))
    assert rec.sent[-1][0] == "p/d/reply/t/echo"
    assert _reply(rec) == {"id": "a", "ok": True, "data": {"x": 3, "name": "a"}}
    router.handle(Message("p/d/cmd/t/echo", msgpack.packb({"id": 9, "x": 4, "name": "z"})))
    assert rec.sent[-1][1][:1] != b"{" and _reply(rec)["data"] == {"x": 4, "name": "z"}
    assert rec.sent[-1][2]["content_type"] == "application/msgpack"
    assert not errors


def test_validation_and_codes(setup: tuple[CommandRouter, Recorder, list[BaseException]]) -> None:
    router, rec, errors = setup
    cases = [
        (b'{"x": "nope"}', "bad_request"),
        (b'{"y": 1, "x": 1}', "bad_request"),
        (b'{"id": 1}', "bad_request"),
        (b"{", "bad_request"),
        (b'"str"', "bad_request"),
        (b"x" * 1001, "too_large"),
    ]
    for payload, code in cases:
        router.handle(Message("p/d/cmd/t/echo", payload))
        assert _reply(rec)["error"]["code"] == code, payload
    router.handle(Message("p/d/cmd/t/nope", b"{}"))
    assert _reply(rec)["error"]["code"] == "not_found" and "t/echo" in _reply(rec)["error"]["message"]
    router.handle(Message("p/d/cmd/t/missing", b'{"id": 5}'))
    assert _reply(rec) == {"id": 5, "ok": False, "error": {"code": "not_found", "message": "no such thing"}}
    assert not errors


def test_handler_exception_is_internal_and_reported(setup: tuple[CommandRouter, Recorder, list[BaseException]]) -> None:
    router, rec, errors = setup
    router.handle(Message("p/d/cmd/t/boom", b'{"id": 1}'))
    assert _reply(rec)["error"]["code"] == "internal" and "kaput" in _reply(rec)["error"]["message"]
    assert len(errors) == 1 and isinstance(errors[0], RuntimeError)


def test_response_topic_gets_a_copy_with_correlation(
    setup: tuple[CommandRouter, Recorder, list[BaseException]],
) -> None:
    router, rec, _ = setup
    router.handle(Message("p/d/cmd/t/echo", b'{"x": 1}', response_topic="r/me", correlation_data=b"c1"))
    assert [t for t, _, _ in rec.sent[-2:]] == ["p/d/reply/t/echo", "r/me"]
    assert rec.sent[-1][2]["correlation"] == b"c1"


def test_full_queue_answers_unavailable(setup: tuple[CommandRouter, Recorder, list[BaseException]]) -> None:
    router, rec, _ = setup
    for _ in range(2):
        router.submit(Message("p/d/cmd/t/echo", b'{"x": 1}'))
    router.submit(Message("p/d/cmd/t/echo", b'{"x": 1}'))
    assert _reply(rec)["error"]["code"] == "unavailable"
    stop = threading.Event()
    t = router.start(stop)
    while not router.queue.empty():
        t.join(0.01)
    stop.set()
    t.join(2)
    assert sum(1 for topic, _, _ in rec.sent if topic == "p/d/reply/t/echo") == 3
