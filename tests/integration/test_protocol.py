"""The command protocol against a real mosquitto: encodings, errors, MQTT 5 response topics,
fleet-wide commands, availability, state, and persistence of controls."""

from __future__ import annotations

import json
import threading
from typing import Any

import msgpack

from agent.mqtt.embedded import EmbeddedBroker
from tests.integration.conftest import AgentFactory
from tests.support.mqtt import TestClient, decode


def test_ping_json_and_msgpack_round_trip(make_agent: AgentFactory, client: TestClient, prefix: str) -> None:
    make_agent("cam1")
    client.subscribe(f"{prefix}/cam1/reply/#")
    r = client.request(prefix, "cam1", "system/ping")
    assert r["ok"] is True and r["data"]["pong"] is True and r["data"]["dev"] == "cam1"
    client.publish(f"{prefix}/cam1/cmd/system/ping", msgpack.packb({"id": 7}))
    msg = client.wait_for(lambda m: m.topic.endswith("reply/system/ping") and m.payload[:1] != b"{")
    reply = msgpack.unpackb(msg.payload)
    assert reply == {"id": 7, "ok": True, "data": reply["data"]} and reply["data"]["pong"] is True


def test_info_lists_commands(make_agent: AgentFactory, client: TestClient, prefix: str) -> None:
    make_agent("cam1")
    client.subscribe(f"{prefix}/cam1/reply/#")
    data = client.request(prefix, "cam1", "system/info")["data"]
    assert "system/ping" in data["commands"] and data["fastpath"] in ("cython", "python")
    assert data["dev"] == "cam1" and data["protocol"] == 1


def test_errors_have_codes(make_agent: AgentFactory, client: TestClient, prefix: str) -> None:
    make_agent("cam1", limits={"command_bytes": 2048})
    client.subscribe(f"{prefix}/cam1/reply/#")

    def raw(topic: str, payload: bytes) -> Any:
        client.publish(f"{prefix}/cam1/cmd/{topic}", payload)
        return decode(client.wait_for(lambda m: m.topic == f"{prefix}/cam1/reply/{topic}").payload)

    assert raw("system/ping", b"{not json")["error"]["code"] == "bad_request"
    assert raw("system/ping", b"\xc1\xc1")["error"]["code"] == "bad_request"
    assert raw("system/ping", b"[1,2]")["error"]["code"] == "bad_request"
    assert raw("system/nope", b"{}")["error"]["code"] == "not_found"
    assert raw("system/ping", b'{"id": 1, "x": ' + b"1" * 4000 + b"}")["error"]["code"] == "too_large"
    r = client.request(prefix, "cam1", "pipelines/set", {"faces": "maybe"})
    assert r["ok"] is False and r["error"]["code"] == "bad_request" and "faces" in r["error"]["message"]
    r = client.request(prefix, "cam1", "pipelines/set", {"bogus": True})
    assert r["error"]["code"] == "bad_request" and "bogus" in r["error"]["message"]
    r = client.request(prefix, "cam1", "thresholds/set", {"face": {"match": 7}})
    assert r["error"]["code"] == "bad_request" and "face.match" in r["error"]["message"]
    r = client.request(prefix, "cam1", "thresholds/set", {"face": {"nonsense": 1}})
    assert r["error"]["code"] == "bad_request"
    assert client.request(prefix, "cam1", "system/ping")["ok"]


def test_mqtt5_response_topic_and_correlation(make_agent: AgentFactory, client: TestClient, prefix: str) -> None:
    make_agent("cam1")
    client.subscribe(f"{prefix}/inbox/#")
    client.publish(
        f"{prefix}/cam1/cmd/system/ping", b'{"id": "x"}', response_topic=f"{prefix}/inbox/me", correlation=b"corr-42"
    )
    msg = client.wait_for(lambda m: m.topic == f"{prefix}/inbox/me")
    assert decode(msg.payload)["id"] == "x"
    assert getattr(msg.properties, "CorrelationData", None) == b"corr-42"  # set by paho at run time


def test_fleet_command_answered_by_every_device(make_agent: AgentFactory, client: TestClient, prefix: str) -> None:
    make_agent("cam1")
    make_agent("cam2")
    client.subscribe(f"{prefix}/+/reply/system/ping")
    client.publish(f"{prefix}/fleet/f1/cmd/system/ping", b'{"id": "all"}')
    seen: set[str] = set()
    while len(seen) < 2:
        msg = client.wait_for(lambda m: m.topic.endswith("/reply/system/ping"))
        seen.add(msg.topic.split("/")[1])
    assert seen == {"cam1", "cam2"}


def test_availability_and_state(
    make_agent: AgentFactory, client: TestClient, prefix: str, broker: EmbeddedBroker
) -> None:
    agent = make_agent("cam1")
    client.subscribe(f"{prefix}/cam1/availability", f"{prefix}/cam1/state")
    msg = client.wait_for(lambda m: m.topic.endswith("availability"))
    assert msg.payload == b"online"
    late = TestClient(broker.port)  # a subscriber that comes later gets the retained copy
    late.subscribe(f"{prefix}/cam1/availability")
    retained = late.wait_for(lambda m: m.topic.endswith("availability"))
    assert retained.payload == b"online" and retained.retain
    late.close()
    state = json.loads(client.wait_for(lambda m: m.topic.endswith("/state")).payload)
    for key in (
        "version",
        "pipelines",
        "thresholds",
        "models",
        "fastpath",
        "fps",
        "frames_in",
        "frames_dropped",
        "banks",
        "uptime",
    ):
        assert key in state
    assert any("fleet.key" in w for w in state["warnings"])
    agent.stop()
    msg = client.wait_for(lambda m: m.topic.endswith("availability") and m.payload == b"offline")
    assert msg.payload == b"offline"


def test_controls_persist_across_restart(make_agent: AgentFactory, client: TestClient, prefix: str) -> None:
    agent = make_agent("cam1")
    client.subscribe(f"{prefix}/cam1/reply/#")
    r = client.request(prefix, "cam1", "thresholds/set", {"face": {"match": 0.81}, "segment": {"iou": 0.5}})
    assert r["ok"] and r["data"]["face"]["match"] == 0.81 and r["data"]["face"]["detect"] == 0.6
    r = client.request(prefix, "cam1", "pipelines/set", {"segment": True})
    assert r["data"]["segment"] is True and r["data"]["faces"] is False
    agent.stop()
    make_agent("cam1")
    got = client.request(prefix, "cam1", "thresholds/get")["data"]
    assert got["face"]["match"] == 0.81 and got["segment"]["iou"] == 0.5
    assert client.request(prefix, "cam1", "pipelines/get")["data"]["segment"] is True


def test_resubscribes_after_broker_restart(make_agent: AgentFactory, prefix: str) -> None:
    broker = EmbeddedBroker().start()
    try:
        make_agent("cam1", mqtt={"port": broker.port})
        c = TestClient(broker.port)
        c.subscribe(f"{prefix}/cam1/reply/#")
        assert c.request(prefix, "cam1", "system/ping")["ok"]
        c.close()
        broker.stop()
        broker.start()
        c = TestClient(broker.port)
        c.subscribe(f"{prefix}/cam1/reply/#", f"{prefix}/cam1/availability")
        c.wait_for(lambda m: m.topic.endswith("availability") and m.payload == b"online", timeout=30)
        assert c.request(prefix, "cam1", "system/ping")["ok"]
        c.close()
    finally:
        broker.cleanup()


def test_state_is_built_off_pahos_thread_at_once_on_connection(
    make_agent: AgentFactory, client: TestClient, prefix: str
) -> None:
    """paho's callbacks only hand work over: the state published on (re)connection is built by
    the agent's state thread, and goes out before the periodic one is due."""
    agent = make_agent("cam1", start=False, results={"state_interval": 3600.0})
    built_on: list[str] = []
    state = agent.state

    def recording() -> dict[str, Any]:
        built_on.append(threading.current_thread().name)
        return state()

    agent.state = recording  # type: ignore[method-assign]
    client.subscribe(f"{prefix}/cam1/state")
    agent.start(connect_timeout=15)
    msg = client.wait_for(lambda m: m.topic == f"{prefix}/cam1/state", timeout=15)
    assert json.loads(msg.payload)["dev"] == "cam1"
    assert built_on and set(built_on) == {"state"}, built_on
