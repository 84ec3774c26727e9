"""Home Assistant discovery, JSON mirrors, HA's control topics and events on a real mosquitto.

Each test uses its own discovery prefix (``homeassistant.prefix``) next to its own topic prefix,
so retained configs of one test never reach another.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest

from agent import __version__
from agent.homeassistant.discovery import DeviceInfo, HaTopics, discovery
from agent.mqtt.embedded import EmbeddedBroker
from agent.pipelines.faces import FaceThresholds
from tests.integration.conftest import AgentFactory
from tests.support.mqtt import TestClient, decode, wait_until

DEV = "cam1"


@pytest.fixture
def ha() -> str:
    return f"ha{uuid.uuid4().hex[:8]}"


@pytest.fixture
def fresh(broker: EmbeddedBroker) -> Iterator[Callable[[], TestClient]]:
    """New clients on demand (a new subscription is what sees retained messages as retained)."""
    made: list[TestClient] = []

    def factory() -> TestClient:
        c = TestClient(broker.port)
        made.append(c)
        return c

    yield factory
    for c in made:
        c.close()


def expected_topics(ha: str, prefix: str, name: str = DEV) -> dict[str, dict[str, Any]]:
    info = DeviceInfo(DEV, name, __version__)
    return {d.topic: d.config for d in discovery(info, HaTopics(ha, f"{prefix}/{DEV}"))}


def seen(client: TestClient, predicate: Callable[[Any], bool], timeout: float = 15.0) -> Any:
    """The first message ever received (not only the unread ones) that matches."""
    found: list[Any] = []

    def check() -> bool:
        with client._lock:
            found[:] = [m for m in client.all if predicate(m)][:1]
        return bool(found)

    wait_until(check, timeout, "a matching message")
    return found[0]


def collect(client: TestClient, topics: set[str], timeout: float = 20.0) -> dict[str, Any]:
    """The last message on each of ``topics`` (waits until every one has arrived)."""
    got: dict[str, Any] = {}
    deadline = time.monotonic() + timeout
    while not topics <= set(got):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"missing: {sorted(topics - set(got))}")
        msg = client.wait_for(lambda m: m.topic in topics, remaining)
        got[msg.topic] = msg
    return got


def config_of(msg: Any) -> dict[str, Any]:
    return json.loads(msg.payload)  # type: ignore[no-any-return]


def test_discovery_full_set_retained_with_availability(
    make_agent: AgentFactory, fresh: Callable[[], TestClient], prefix: str, ha: str
) -> None:
    watcher = fresh()
    watcher.subscribe(f"{ha}/#")
    agent = make_agent(DEV, homeassistant={"enabled": True, "prefix": ha}, device={"name": "Porch"})
    want = expected_topics(ha, prefix, "Porch")
    assert len(want) == 20
    got = collect(watcher, set(want))
    for topic, msg in got.items():
        cfg = config_of(msg)
        assert cfg["unique_id"] == topic.split("/")[2]
        assert cfg["availability_topic"] == f"{prefix}/{DEV}/availability"
        assert cfg["device"]["name"] == "Porch" and cfg["device"]["identifiers"] == [f"maix_agent_{DEV}"]
        assert cfg["origin"]["name"] == "maix-agent"
    # retained: a newcomer (Home Assistant starting later) gets every config at once
    late = fresh()
    late.subscribe(f"{ha}/#", f"{prefix}/{DEV}/availability")
    avail = late.wait_for(lambda m: m.topic == f"{prefix}/{DEV}/availability")
    assert avail.retain and avail.payload == b"online"
    wait_until(lambda: set(late_configs(late)) == set(want), 10, "every config retained")
    assert {t: json.loads(p) for t, p in late_configs(late).items()} == want
    # the JSON mirrors HA reads are retained too, and JSON
    mirrors = {f"{prefix}/{DEV}/ha/{p}" for p in ("thresholds", "pipelines")}
    late.subscribe(f"{prefix}/{DEV}/ha/#")
    docs = {t: m for t, m in collect(late, mirrors).items()}
    assert json.loads(docs[f"{prefix}/{DEV}/ha/thresholds"].payload)["face"]["match"] == pytest.approx(0.7)
    assert json.loads(docs[f"{prefix}/{DEV}/ha/pipelines"].payload) == agent.controls.pipelines.model_dump()
    # availability goes offline with the agent (HA greys the entities out)
    agent.stop()
    wait_until(
        lambda: any(m.topic == f"{prefix}/{DEV}/availability" and m.payload == b"offline" for m in list(late.all)),
        10,
        "offline",
    )


def late_configs(client: TestClient) -> dict[str, bytes]:
    with client._lock:
        return {m.topic: bytes(m.payload) for m in client.all if m.retain and m.topic.endswith("/config")}


def test_number_switch_button_round_trip(make_agent: AgentFactory, client: TestClient, prefix: str, ha: str) -> None:
    agent = make_agent(DEV, homeassistant={"enabled": True, "prefix": ha})
    client.subscribe(f"{prefix}/{DEV}/ha/#", f"{prefix}/{DEV}/reply/#")
    number = config_of_entity(ha, prefix, "number", "face_match")
    # Home Assistant publishes the new value as plain text on the number's command topic
    client.publish(number["command_topic"], b"0.42")
    reply = client.wait_for(lambda m: m.topic == f"{prefix}/{DEV}/reply/thresholds/set")
    assert decode(bytes(reply.payload))["ok"] is True
    assert client.request(prefix, DEV, "thresholds/get")["data"]["face"]["match"] == pytest.approx(0.42)
    state = seen(client, lambda m: m.topic == number["state_topic"] and json.loads(m.payload)["face"]["match"] == 0.42)
    assert state.payload[:1] == b"{"  # JSON, the number's value_template reads value_json.face.match
    assert agent.controls.threshold(FaceThresholds).match == pytest.approx(0.42)
    # out of range / not a number: the command's validation refuses it; nothing changes
    for bad in (b"1.5", b"lots"):
        client.publish(number["command_topic"], bad)
        r = client.wait_for(
            lambda m: m.topic == f"{prefix}/{DEV}/reply/thresholds/set" and decode(bytes(m.payload))["ok"] is False
        )
        assert decode(bytes(r.payload))["error"]["code"] == "bad_request"
    assert agent.controls.threshold(FaceThresholds).match == pytest.approx(0.42)
    # a switch per pipeline: ON/OFF → pipelines/set, state mirrored
    switch = config_of_entity(ha, prefix, "switch", "pipeline_classifier")
    client.publish(switch["command_topic"], b"ON")
    seen(client, lambda m: m.topic == switch["state_topic"] and json.loads(m.payload)["classifier"] is True)
    assert agent.controls.enabled("classifier") is True
    client.publish(switch["command_topic"], b"OFF")
    wait_until(
        lambda: json.loads(watcher_last(client, switch["state_topic"]) or b"{}").get("classifier") is False,
        15,
        "classifier switch state OFF",
    )
    # buttons: learn (classifier/learn) and snapshot (no frame yet: an `unavailable` error reply)
    client.publish(config_of_entity(ha, prefix, "button", "learn")["command_topic"], b"PRESS")
    client.wait_for(lambda m: m.topic == f"{prefix}/{DEV}/reply/classifier/learn")
    client.publish(config_of_entity(ha, prefix, "button", "take_snapshot")["command_topic"], b"PRESS")
    r = client.wait_for(lambda m: m.topic == f"{prefix}/{DEV}/reply/snapshot")
    assert decode(bytes(r.payload))["error"]["code"] == "unavailable"
    # an unknown control is ignored (logged), not a crash
    client.publish(f"{prefix}/{DEV}/ha/set/threshold/nope", b"1")
    wait_until(lambda: agent.ha.counts["ignored"] == 1, 10, "ignored write")
    assert agent.ha.counts["commands"] == 7


def config_of_entity(ha: str, prefix: str, component: str, key: str) -> dict[str, Any]:
    return expected_topics(ha, prefix)[f"{ha}/{component}/{DEV}_{key}/config"]


def test_birth_message_republishes_discovery(
    make_agent: AgentFactory, client: TestClient, prefix: str, ha: str
) -> None:
    client.subscribe(f"{ha}/#")
    agent = make_agent(DEV, homeassistant={"enabled": True, "prefix": ha})
    want = set(expected_topics(ha, prefix))
    collect(client, want)
    wait_until(lambda: agent.ha.counts["announced"] == 1, 10, "first announce")
    client.publish(f"{ha}/status", b"offline")  # HA's last will: nothing to do
    client.publish(f"{ha}/status", b"online")  # HA's birth
    collect(client, want)  # every config again
    wait_until(lambda: agent.ha.counts["announced"] == 2, 10, "second announce")
    assert agent.ha.counts["births"] == 1


def test_disabled_removes_discovery_and_mirrors(
    make_agent: AgentFactory, fresh: Callable[[], TestClient], prefix: str, ha: str
) -> None:
    want = expected_topics(ha, prefix)
    first = make_agent(DEV, homeassistant={"enabled": True, "prefix": ha})
    watcher = fresh()
    watcher.subscribe(f"{ha}/#")
    collect(watcher, set(want))
    wait_until(lambda: first.ha.counts["announced"] >= 1, 10, "announced")
    first.stop()
    # the same camera, now with discovery disabled: empty retained payloads remove everything
    watcher.subscribe(f"{prefix}/{DEV}/ha/#")
    second = make_agent(DEV, homeassistant={"enabled": False, "prefix": ha})
    got = collect(watcher, set(want) | {f"{prefix}/{DEV}/ha/thresholds", f"{prefix}/{DEV}/ha/pipelines"})
    wait_until(lambda: all(watcher_last(watcher, t) == b"" for t in got), 10, "empty payloads")
    assert second.ha.counts["removed"] == 1 and second.ha.routes() == []
    # a newcomer sees no retained config any more (the broker dropped them)
    newcomer = fresh()
    newcomer.subscribe(f"{ha}/#", f"{prefix}/{DEV}/availability")
    newcomer.wait_for(lambda m: m.topic == f"{prefix}/{DEV}/availability")
    assert late_configs(newcomer) == {}
    # and no mirror is published while disabled (the controls' listener runs before the reply)
    watcher.subscribe(f"{prefix}/{DEV}/reply/#")
    watcher.request(prefix, DEV, "thresholds/set", {"face": {"match": 0.5}})
    assert watcher_last(watcher, f"{prefix}/{DEV}/ha/thresholds") == b""


def watcher_last(client: TestClient, topic: str) -> bytes | None:
    with client._lock:
        msgs = [bytes(m.payload) for m in client.all if m.topic == topic]
    return msgs[-1] if msgs else None


def test_faces_events_mirrors_and_event_types(
    make_agent: AgentFactory, client: TestClient, prefix: str, ha: str, eval_dir: Path
) -> None:
    """Pushed frames → faces results → event/face (msgpack) + HA JSON mirrors; enrolling and
    forgetting a label re-publish the face event entity's event types."""
    faces = eval_dir / "faces"
    agent = make_agent(
        DEV,
        homeassistant={"enabled": True, "prefix": ha, "refresh": 0.0},
        source={"uri": "mqtt"},
        events={"debounce": 0.5},
    )
    face_cfg = f"{ha}/event/{DEV}_face/config"
    client.subscribe(face_cfg, f"{prefix}/{DEV}/event/#", f"{prefix}/{DEV}/ha/#", f"{prefix}/{DEV}/reply/#")
    client.wait_for(lambda m: m.topic == face_cfg and json.loads(m.payload)["event_types"] == ["unknown"])
    image = base64.b64encode((faces / "obama.jpg").read_bytes()).decode()
    r = client.request(prefix, DEV, "face/enrol", {"label": "Barack Obama", "image": image}, timeout=60)
    assert r["ok"], r
    client.wait_for(
        lambda m: m.topic == face_cfg and json.loads(m.payload)["event_types"] == ["barack_obama", "unknown"]
    )
    assert client.request(prefix, DEV, "pipelines/set", {"faces": True})["ok"]
    frame = (faces / "obama2.jpg").read_bytes()
    appeared = None
    for _ in range(20):  # per-track voting names a face after 3 of 5 frames
        client.publish(f"{prefix}/{DEV}/frame/in", frame)
        try:
            appeared = client.wait_for(
                lambda m: (
                    m.topic == f"{prefix}/{DEV}/event/face" and msgpack.unpackb(m.payload)["label"] == "Barack Obama"
                ),
                timeout=5,
            )
            break
        except TimeoutError:
            continue
    assert appeared is not None
    ev = msgpack.unpackb(appeared.payload)  # the protocol's events are msgpack
    assert ev["type"] == "appeared" and ev["dev"] == DEV and ev["v"] == 1 and ev["similarity"] > 0.7
    ha_event = client.wait_for(lambda m: m.topic == f"{prefix}/{DEV}/ha/event/face" and b"barack" in m.payload)
    assert json.loads(ha_event.payload)["event_type"] == "barack_obama"  # HA's event entity reads JSON
    person = client.wait_for(lambda m: m.topic == f"{prefix}/{DEV}/ha/person")
    assert json.loads(person.payload)["label"] == "Barack Obama"
    presence = client.wait_for(
        lambda m: m.topic == f"{prefix}/{DEV}/ha/presence" and json.loads(m.payload)["known_face"] == "ON"
    )
    assert json.loads(presence.payload)["known"] == ["Barack Obama"]
    # no more frames: after the debounce the state loop's tick says "left", presence goes OFF
    left = client.wait_for(
        lambda m: m.topic == f"{prefix}/{DEV}/event/face" and msgpack.unpackb(m.payload)["type"] == "left"
    )
    assert msgpack.unpackb(left.payload)["label"] in ("Barack Obama", "unknown")
    client.wait_for(lambda m: m.topic == f"{prefix}/{DEV}/ha/presence" and json.loads(m.payload)["person"] == "OFF")
    assert agent.state()["events"]["face/appeared"] >= 1
    # forgetting the label removes its event type
    assert client.request(prefix, DEV, "face/forget", {"label": "Barack Obama"})["ok"]
    client.wait_for(lambda m: m.topic == face_cfg and json.loads(m.payload)["event_types"] == ["unknown"])
