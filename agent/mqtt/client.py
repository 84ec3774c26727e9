"""The broker link: the only module that imports paho (v2 callback API).

Callbacks only enqueue: ``on_message`` looks up the route in the :class:`TopicRegistry` and hands
the message to the route's non-blocking sink. ``on_connect`` (re)subscribes to every route of
the registry and announces ``online``; the Last Will announces ``offline``. Bad credentials stop
the link for good (no reconnect storm) and surface as :class:`TransportError`.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from agent.errors import TransportError
from agent.mqtt.settings import MqttSettings
from agent.mqtt.topics import Message, Route, TopicRegistry

log = logging.getLogger(__name__)
# paho's Properties(packet_type) carries no annotations: one typed name for it.
_properties = cast("Callable[[int], Properties]", Properties)

# CONNACK codes that retrying cannot fix: 3.1.1 (4 bad user/password, 5 not authorised) and
# MQTT 5 (134, 135, 138 banned, 140 bad auth method).
FATAL_CONNACK = {4, 5, 134, 135, 138, 140}


def _configure(client: mqtt.Client, cfg: MqttSettings) -> None:
    if cfg.username is not None:
        client.username_pw_set(cfg.username, cfg.password.get_secret_value() if cfg.password else None)
    if cfg.tls is not None:
        client.tls_set(
            ca_certs=str(cfg.tls.ca) if cfg.tls.ca else None,
            certfile=str(cfg.tls.cert) if cfg.tls.cert else None,
            keyfile=str(cfg.tls.key) if cfg.tls.key else None,
            cert_reqs=ssl.CERT_NONE if cfg.tls.insecure else ssl.CERT_REQUIRED,
        )
        if cfg.tls.insecure:
            log.warning("mqtt.tls.insecure is set: the broker's certificate is NOT verified")
            client.tls_insecure_set(True)


def _new_client(cfg: MqttSettings, client_id: str) -> mqtt.Client:
    proto = MQTTProtocolVersion.MQTTv5 if cfg.protocol == "5" else MQTTProtocolVersion.MQTTv311
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, protocol=proto)
    _configure(client, cfg)
    client.on_socket_open = _no_delay
    return client


def _no_delay(_client: mqtt.Client, _userdata: Any, sock: Any) -> None:
    """Send small packets (a reply right after the PUBACK it follows) at once: without
    TCP_NODELAY, Nagle + the peer's delayed ACK hold each reply ~40 ms."""
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _to_message(msg: mqtt.MQTTMessage) -> Message:
    props = getattr(msg, "properties", None)
    user = getattr(props, "UserProperty", None) or ()
    return Message(
        topic=msg.topic,
        payload=bytes(msg.payload),
        retain=bool(msg.retain),
        content_type=getattr(props, "ContentType", None),
        response_topic=getattr(props, "ResponseTopic", None),
        correlation_data=getattr(props, "CorrelationData", None),
        user_properties=tuple((str(k), str(v)) for k, v in user),
    )


def publish_properties(
    v5: bool,
    *,
    correlation: bytes | None = None,
    content_type: str | None = None,
    response_topic: str | None = None,
    user: dict[str, str] | None = None,
) -> Properties | None:
    """The MQTT 5 PUBLISH properties given (None with MQTT 3.1.1, or when there are none)."""
    if not v5 or not (correlation is not None or content_type or response_topic or user):
        return None
    props = _properties(PacketTypes.PUBLISH)
    if correlation is not None:
        props.CorrelationData = correlation
    if content_type is not None:
        props.ContentType = content_type
    if response_topic:
        props.ResponseTopic = response_topic
    if user:
        props.UserProperty = list(user.items())
    return props


def route_for(routes: Iterable[Route], topic: str) -> Route | None:
    """The first route whose filter matches ``topic`` (paho's matcher: ``+``, ``#``, ``$`` topics)."""
    for route in routes:
        if mqtt.topic_matches_sub(route.filter, topic):
            return route
    return None


@dataclass
class LinkStats:
    connects: int = 0
    disconnects: int = 0
    received: int = 0
    unrouted: int = 0
    published: int = 0


class MqttLink:
    """The agent's connection: LWT, availability, registry-driven subscriptions, reconnects."""

    def __init__(
        self,
        cfg: MqttSettings,
        client_id: str,
        registry: TopicRegistry,
        availability_topic: str,
        on_connected: Callable[[], None] | None = None,
        *,
        max_packet: int = 0,
    ) -> None:
        self.cfg = cfg
        self.max_packet = max_packet  # MQTT 5: the broker must not send us bigger packets (0 = no limit)
        self.registry = registry
        self.availability_topic = availability_topic
        self.on_connected = on_connected
        self.stats = LinkStats()
        self.connected = threading.Event()
        self.fatal: TransportError | None = None
        self.fatal_event = threading.Event()
        self._v5 = cfg.protocol == "5"
        self._client = _new_client(cfg, client_id)
        self._client.will_set(availability_topic, b"offline", qos=1, retain=True)
        self._client.reconnect_delay_set(
            min_delay=max(1, int(cfg.reconnect_min)), max_delay=max(1, int(cfg.reconnect_max))
        )
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        self._client.on_connect_fail = self._on_connect_fail
        self._last_failure: str | None = None
        self._stopping = False
        self._sub_mid = -1
        self._subscribed: list[tuple[str, int]] = []
        self._client.max_queued_messages_set(10_000)
        registry.on_change = self._on_route_change

    # -- paho callbacks (network thread): only bookkeeping and enqueueing ------------------
    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        if rc.is_failure:
            code = rc.value
            if code in FATAL_CONNACK:
                self.fatal = TransportError(
                    f"broker {self.cfg.host}:{self.cfg.port} refused the connection: {rc} "
                    "(check mqtt.username / mqtt.password); not retrying"
                )
                log.error("%s", self.fatal)
                self.fatal_event.set()
                client.disconnect()
            else:
                log.warning("broker refused the connection: %s; will retry", rc)
            return
        self.stats.connects += 1
        self._last_failure = None
        subs = [(r.filter, r.qos) for r in self.registry.routes()]
        self._subscribed = subs
        if subs:
            _, mid = client.subscribe(subs)
            self._sub_mid = -1 if mid is None else mid
        else:
            self._ready(client)

    def _on_connect_fail(self, _c: mqtt.Client, _u: Any) -> None:
        """TCP/TLS connect failed (paho retries with back-off). paho calls this inside its
        ``except OSError``, so the exception is at hand; a repeated reason is logged once."""
        exc = sys.exc_info()[1]
        why = f"{type(exc).__name__}: {exc}" if exc is not None else "connection failed"
        if isinstance(exc, ssl.SSLCertVerificationError):
            why += " (check mqtt.tls.ca, or set mqtt.tls.insecure for a self-signed broker)"
        if why != self._last_failure:
            self._last_failure = why
            log.warning("cannot connect to %s:%s: %s; retrying with back-off", self.cfg.host, self.cfg.port, why)

    def _on_subscribe(self, client: mqtt.Client, _u: Any, mid: int, rcs: list[ReasonCode], _p: Any) -> None:
        if mid != self._sub_mid:
            return
        for (filter_, _qos), rc in zip(self._subscribed, rcs, strict=False):
            if rc.is_failure:
                log.error("broker refused the subscription to %s: %s (check the broker's ACL)", filter_, rc)
        self._ready(client)

    def _ready(self, client: mqtt.Client) -> None:
        """Subscriptions acknowledged: announce ``online`` and serve."""
        client.publish(self.availability_topic, b"online", qos=1, retain=True)
        log.info(
            "connected to %s:%s, subscribed to %d topic filters", self.cfg.host, self.cfg.port, len(self._subscribed)
        )
        self.connected.set()
        if self.on_connected:
            self.on_connected()

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        self.connected.clear()
        self.stats.disconnects += 1
        if self._stopping:
            log.info("disconnected from broker (clean stop)")
        elif not self.fatal:
            log.warning("disconnected from broker (%s); reconnecting with back-off", rc)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self.stats.received += 1
        route = route_for(self.registry.routes(), msg.topic)
        if route is None:
            self.stats.unrouted += 1
            return
        try:
            route.sink(_to_message(msg))
        except Exception:  # a sink must never kill the network thread
            log.exception("sink for %s failed", route.filter)

    def _on_route_change(self, route: Route, added: bool) -> None:
        if not self.connected.is_set():
            return  # on_connect subscribes to the whole registry
        if added:
            self._client.subscribe(route.filter, route.qos)
        else:
            self._client.unsubscribe(route.filter)

    # -- API ------------------------------------------------------------------------------
    def start(self) -> None:
        props = None
        if self._v5 and self.max_packet:
            # CONNECT's Maximum Packet Size: the broker drops anything bigger instead of sending it,
            # so an oversize publish never reaches paho's buffers (MQTT 3.1.1 has no such property:
            # set the broker's max_packet_size).
            props = _properties(PacketTypes.CONNECT)
            props.MaximumPacketSize = self.max_packet
        try:
            self._client.connect_async(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive, properties=props)
        except (OSError, ValueError) as exc:
            raise TransportError(f"cannot connect to {self.cfg.host}:{self.cfg.port}: {exc}") from exc
        self._client.loop_start()

    def wait_connected(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.connected.wait(0.05):
                return True
            if self.fatal:
                raise self.fatal
        return self.connected.is_set()

    def publish(
        self,
        topic: str,
        payload: bytes | str,
        qos: int = 0,
        retain: bool = False,
        *,
        correlation: bytes | None = None,
        content_type: str | None = None,
        user: dict[str, str] | None = None,
    ) -> None:
        props = publish_properties(self._v5, correlation=correlation, content_type=content_type, user=user)
        info = self._client.publish(topic, payload, qos=qos, retain=retain, properties=props)
        if info.rc == mqtt.MQTT_ERR_SUCCESS or info.rc == mqtt.MQTT_ERR_NO_CONN:
            self.stats.published += 1  # queued; paho sends it after reconnect for QoS>0
        else:
            log.warning("publish to %s failed: %s", topic, mqtt.error_string(info.rc))

    def stop(self, timeout: float = 3.0) -> None:
        """Clean stop: ``offline`` (retained), then disconnect."""
        self._stopping = True
        if self.connected.is_set():
            info = self._client.publish(self.availability_topic, b"offline", qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(timeout)
        self._client.disconnect()
        self._client.loop_stop()


class SimpleClient:
    """A small blocking client for the CLI (``cmd``, ``watch``) and for tools."""

    def __init__(self, cfg: MqttSettings, client_id: str) -> None:
        self.cfg = cfg
        self._client = _new_client(cfg, client_id)
        self._inbox: queue.Queue[Message] = queue.Queue(maxsize=10_000)
        self._subs: list[str] = []
        self._ready = threading.Event()
        self._error: str | None = None
        self._client.on_connect = self._on_connect
        self._client.on_message = lambda _c, _u, m: self._inbox.put(_to_message(m))

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        if rc.is_failure:
            self._error = f"broker refused the connection: {rc}"
            client.disconnect()
        else:
            for f in self._subs:
                client.subscribe(f, 1)
        self._ready.set()

    def connect(self, timeout: float = 10.0) -> None:
        try:
            self._client.connect(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive)
        except (OSError, ValueError) as exc:
            raise TransportError(f"cannot connect to {self.cfg.host}:{self.cfg.port}: {exc}") from exc
        self._client.loop_start()
        if not self._ready.wait(timeout):
            raise TransportError(f"no answer from broker {self.cfg.host}:{self.cfg.port} in {timeout}s")
        if self._error:
            raise TransportError(self._error)

    def subscribe(self, filter_: str) -> None:
        self._subs.append(filter_)
        if self._ready.is_set():
            res, mid = self._client.subscribe(filter_, 1)
            del res, mid

    def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 1,
        retain: bool = False,
        response_topic: str | None = None,
        correlation: bytes | None = None,
    ) -> None:
        props = publish_properties(self.cfg.protocol == "5", correlation=correlation, response_topic=response_topic)
        self._client.publish(topic, payload, qos=qos, retain=retain, properties=props).wait_for_publish(10)

    def messages(self, timeout: float | None = None) -> Iterator[Message]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return
            try:
                yield self._inbox.get(timeout=remaining)
            except queue.Empty:
                return

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


class StreamClient:
    """A non-blocking client for long-lived controllers such as the console: subscribes to its
    filters (``filters`` and those added by :meth:`subscribe`, each with its QoS) on every
    (re)connect and hands each message to ``on_message`` on paho's network thread (the sink must
    only enqueue); ``on_status(connected)`` follows the link."""

    def __init__(
        self,
        cfg: MqttSettings,
        client_id: str,
        filters: dict[str, int],
        on_message: Callable[[Message], None],
        on_status: Callable[[bool], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.filters = dict(filters)
        self._lock = threading.Lock()
        self.on_message = on_message
        self.on_status = on_status
        self.connected = threading.Event()
        self.error: str | None = None
        self._client = _new_client(cfg, client_id)
        self._client.reconnect_delay_set(
            min_delay=max(1, int(cfg.reconnect_min)), max_delay=max(1, int(cfg.reconnect_max))
        )
        self._client.max_queued_messages_set(1000)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        if rc.is_failure:
            self.error = f"broker {self.cfg.host}:{self.cfg.port} refused the connection: {rc}"
            log.error("%s", self.error)
            if rc.value in FATAL_CONNACK:
                client.disconnect()
            return
        self.error = None
        with self._lock:
            subs = list(self.filters.items())
        if subs:
            client.subscribe(subs)
        self.connected.set()
        if self.on_status:
            self.on_status(True)

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        self.connected.clear()
        if self.on_status:
            self.on_status(False)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            self.on_message(_to_message(msg))
        except Exception:  # the sink must never kill the network thread
            log.exception("message sink failed for %s", msg.topic)

    def start(self) -> None:
        try:
            self._client.connect_async(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive)
        except (OSError, ValueError) as exc:
            raise TransportError(f"cannot connect to {self.cfg.host}:{self.cfg.port}: {exc}") from exc
        self._client.loop_start()

    def subscribe(self, filter_: str, qos: int = 0) -> None:
        """Add a filter (now if connected, and on every reconnect)."""
        with self._lock:
            self.filters[filter_] = qos
        if self.connected.is_set():
            self._client.subscribe(filter_, qos)

    def unsubscribe(self, filter_: str) -> None:
        with self._lock:
            self.filters.pop(filter_, None)
        if self.connected.is_set():
            self._client.unsubscribe(filter_)

    def publish(self, topic: str, payload: bytes, qos: int = 1, *, content_type: str | None = None) -> bool:
        """Queue a message; False when the client is not connected (nothing is sent later)."""
        if not self.connected.is_set():
            return False
        props = publish_properties(self.cfg.protocol == "5", content_type=content_type)
        info = self._client.publish(topic, payload, qos=qos, properties=props)
        return info.rc == mqtt.MQTT_ERR_SUCCESS

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
