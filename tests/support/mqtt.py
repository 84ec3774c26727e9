"""Test-side MQTT helpers: a request/reply client over the real broker."""

from __future__ import annotations

import json
import queue
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import msgpack
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from agent.mqtt.client import publish_properties


def decode(payload: bytes | bytearray) -> Any:
    """A JSON or msgpack payload (paho hands payloads over as ``bytes | bytearray``)."""
    if payload[:1] == b"{":
        return json.loads(payload)
    return msgpack.unpackb(payload, raw=False)


class TestClient:
    """A paho client that records every message it receives, with wait helpers."""

    __test__ = False

    def __init__(
        self,
        port: int,
        *,
        protocol: str = "5",
        client_id: str | None = None,
        username: str | None = None,
        password: str | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        proto = MQTTProtocolVersion.MQTTv5 if protocol == "5" else MQTTProtocolVersion.MQTTv311
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id or f"t-{uuid.uuid4().hex[:8]}", protocol=proto
        )
        if username:
            self.client.username_pw_set(username, password)
        if tls is not None:
            self.client.tls_set_context(tls)
        self.v5 = protocol == "5"
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.all: list[mqtt.MQTTMessage] = []
        self._lock = threading.Lock()
        self._subacks: queue.Queue[int] = queue.Queue()
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda _c, _u, mid, _rc, _p: self._subacks.put(mid)
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.all.append(msg)
        self.messages.put(msg)

    def subscribe(self, *filters: str) -> None:
        for f in filters:
            _, mid = self.client.subscribe(f, 1)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    if self._subacks.get(timeout=0.1) == mid:
                        break
                except queue.Empty:
                    continue
            else:
                raise TimeoutError(f"no SUBACK for {f}")

    def publish(
        self,
        topic: str,
        payload: bytes | str,
        *,
        qos: int = 1,
        retain: bool = False,
        response_topic: str | None = None,
        correlation: bytes | None = None,
        user: dict[str, str] | None = None,
    ) -> None:
        props = publish_properties(self.v5, correlation=correlation, response_topic=response_topic, user=user)
        self.client.publish(topic, payload, qos=qos, retain=retain, properties=props).wait_for_publish(10)

    def wait_for(self, predicate: Callable[[mqtt.MQTTMessage], bool], timeout: float = 15.0) -> mqtt.MQTTMessage:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no matching message")
            try:
                msg = self.messages.get(timeout=remaining)
            except queue.Empty:
                raise TimeoutError("no matching message") from None
            if predicate(msg):
                return msg

    def request(
        self,
        prefix: str,
        dev: str,
        command: str,
        body: dict[str, Any] | None = None,
        *,
        encoding: str = "json",
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """Send a command with a fresh id and return the decoded reply with that id."""
        req_id = uuid.uuid4().hex[:10]
        payload_obj = {"id": req_id, **(body or {})}
        payload = (
            json.dumps(payload_obj).encode() if encoding == "json" else msgpack.packb(payload_obj, use_bin_type=True)
        )
        reply_topic = f"{prefix}/{dev}/reply/{command}"
        self.publish(f"{prefix}/{dev}/cmd/{command}", payload)
        msg = self.wait_for(lambda m: m.topic == reply_topic and _id_of(m.payload) == req_id, timeout)
        reply: dict[str, Any] = decode(msg.payload)
        return reply

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _id_of(payload: bytes | bytearray) -> Any:
    try:
        body = decode(payload)
    except Exception:
        return None
    return body.get("id") if isinstance(body, dict) else None


def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``predicate`` until it returns something truthy and return it (a deadline, not a
    fixed sleep); fail naming ``what`` when the deadline passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
