"""Command dispatch: decode → validate (pydantic) → handler → reply, on a worker thread.

Nothing a message contains can stop the agent: every failure becomes an error reply
(``bad_request``, ``not_found``, ``too_large``, ``unavailable``, ``internal``…) and a log line;
an unexpected exception also logs its traceback and is reported to ``on_internal_error`` hooks
(the test-suite turns those into failures). An ``OSError`` from a handler (state dir full or
read-only) is an environment failure, not a bug: it becomes ``unavailable`` with the OS message.

Expensive commands (``Command.expensive``: they run a model) pass a per-client token bucket
first (:class:`RateLimiter`); a flood gets ``unavailable`` replies that cost no model time.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from pydantic import ValidationError

from agent.commands.base import Command
from agent.errors import CommandError, ErrorCode
from agent.mqtt import codec, envelope
from agent.mqtt.codec import DecodeError, Encoding
from agent.mqtt.topics import Message, Topics
from agent.sections import format_errors

log = logging.getLogger(__name__)

MAX_CLIENTS = 1024  # rate-limit buckets kept (least recently used dropped)
MAX_CLIENT_LEN = 128


class RateLimiter:
    """Token buckets per client: ``burst`` commands at once, then ``rate`` per second.

    MQTT's PUBLISH carries no sender identity, so the client is self-declared (see
    :func:`client_of`). The limiter keeps honest clients from starving each other and sheds a
    flood before it costs model time; the bounded command queue is what caps a hostile sender
    that varies its declared identity. ``rate`` 0 disables the limiter.
    """

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, when)
        self._lock = threading.Lock()

    def acquire(self, client: str) -> float:
        """Take one token: 0.0 if the command may run now, else the seconds until it may."""
        if self.rate <= 0:
            return 0.0
        now = self._clock()
        with self._lock:
            tokens, when = self._buckets.pop(client, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - when) * self.rate)
            wait = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = (1.0 - tokens) / self.rate
            self._buckets[client] = (tokens, now)
            while len(self._buckets) > MAX_CLIENTS:
                self._buckets.popitem(last=False)
            return wait


def client_of(msg: Message, declared: Any) -> str:
    """Who sent a request, for rate limiting: the MQTT 5 user property ``client``, else the
    request's ``client`` field, else its MQTT 5 response topic, else ``*`` (every anonymous
    sender shares one bucket, e.g. MQTT 3.1.1 clients that do not name themselves)."""
    for key, value in msg.user_properties:
        if key == "client" and value:
            return f"client:{value[:MAX_CLIENT_LEN]}"
    if isinstance(declared, str) and declared:
        return f"client:{declared[:MAX_CLIENT_LEN]}"
    if msg.response_topic:
        return f"inbox:{msg.response_topic[:MAX_CLIENT_LEN]}"
    return "*"


class Publisher(Protocol):
    def __call__(
        self,
        topic: str,
        payload: bytes | str,
        qos: int = ...,
        retain: bool = ...,
        *,
        correlation: bytes | None = ...,
        content_type: str | None = ...,
    ) -> None: ...


CONTENT_TYPES: dict[Encoding, str] = {"json": "application/json", "msgpack": "application/msgpack"}


class CommandRouter:
    def __init__(
        self,
        commands: Iterable[Command],
        context: Any,
        topics: Topics,
        publish: Publisher,
        *,
        max_bytes: int,
        queue_size: int,
        qos: int = 1,
        expensive_rate: float = 0.0,
        expensive_burst: int = 1,
    ) -> None:
        self.commands = {c.key: c for c in commands}
        self.context = context
        self.topics = topics
        self.publish = publish
        self.max_bytes = max_bytes
        self.qos = qos
        self.queue: queue.Queue[tuple[Message, tuple[str, str] | None]] = queue.Queue(maxsize=queue_size)
        self.limiter = RateLimiter(expensive_rate, expensive_burst)
        self._rate_logged = 0.0
        self.on_internal_error: list[Callable[[BaseException], None]] = []
        self.counts: Counter[str] = Counter()

    # -- network thread -------------------------------------------------------------------
    def submit(self, msg: Message) -> None:
        """Route sink for the command topics: enqueue, or answer ``unavailable`` at once when
        the queue is full."""
        self._enqueue(msg, None)

    def call(self, family: str, command: str, payload: bytes, client: str) -> None:
        """Submit a command from inside the agent (Home Assistant's controls): the same queue,
        validation, handlers and replies as a command topic, declared as sent by ``client``."""
        self._enqueue(Message(topic="", payload=payload, user_properties=(("client", client),)), (family, command))

    def _enqueue(self, msg: Message, target: tuple[str, str] | None) -> None:
        try:
            self.queue.put_nowait((msg, target))
        except queue.Full:
            self.counts["rejected_full"] += 1
            target = target or self.topics.command_of(msg.topic)
            if target:
                self._send(
                    msg,
                    target,
                    envelope.error(None, "unavailable", "command queue is full, try again"),
                    codec.sniff(msg.payload, msg.content_type),
                )

    # -- worker thread --------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                msg, target = self.queue.get(timeout=0.2)
            except queue.Empty:
                continue
            self.handle(msg, target)

    def start(self, stop: threading.Event) -> threading.Thread:
        t = threading.Thread(target=self.run, args=(stop,), name="commands", daemon=True)
        t.start()
        return t

    def _send(self, msg: Message, target: tuple[str, str], reply: dict[str, Any], encoding: Encoding) -> None:
        payload = codec.encode(reply, encoding)
        ctype = CONTENT_TYPES[encoding]
        self.publish(self.topics.reply(*target), payload, self.qos, False, content_type=ctype)
        if msg.response_topic:
            self.publish(
                msg.response_topic, payload, self.qos, False, correlation=msg.correlation_data, content_type=ctype
            )

    def handle(self, msg: Message, target: tuple[str, str] | None = None) -> None:
        target = target or self.topics.command_of(msg.topic)
        if target is None:
            self.counts["bad_topic"] += 1
            log.warning("ignoring message on %s: not a command topic", msg.topic)
            return
        encoding = codec.sniff(msg.payload, msg.content_type)
        req_id: Any = None
        try:
            reply = self._dispatch(msg, target, encoding)
            req_id = reply["id"]
        except CommandError as exc:
            reply = envelope.error(exc.req_id, exc.code, exc.message)
        try:
            self._send(msg, target, reply, encoding)
        except Exception as exc:  # e.g. a handler returned something unencodable
            log.exception("cannot encode the reply to %s/%s", *target)
            self._internal(exc)
            self._send(msg, target, envelope.error(req_id, "internal", f"reply not encodable: {exc}"), encoding)

    def _fail(self, code: ErrorCode, message: str, req_id: Any, target: tuple[str, str]) -> CommandError:
        self.counts[code] += 1
        log.warning("command %s/%s failed: %s: %s", target[0], target[1], code, message)
        err = CommandError(code, message)
        err.req_id = req_id
        return err

    def _rate_limited(self, who: str, wait: float, req_id: Any) -> CommandError:
        """The error for a rate-limited command; logged once per second at most (a flood must
        not become a log flood)."""
        self.counts["unavailable"] += 1
        self.counts["rate_limited"] += 1
        now = time.monotonic()
        if now - self._rate_logged >= 1.0:
            self._rate_logged = now
            log.warning(
                "rate limit: rejecting expensive commands from %s (%d so far)",
                who,
                self.counts["rate_limited"],
            )
        err = CommandError(
            "unavailable",
            f"rate limit: {who} sent more than {self.limiter.burst} expensive commands at once "
            f"({self.limiter.rate:g}/s sustained); retry in {wait:.2f}s",
        )
        err.req_id = req_id
        return err

    def _internal(self, exc: BaseException) -> None:
        for hook in list(self.on_internal_error):
            hook(exc)

    def _dispatch(self, msg: Message, target: tuple[str, str], encoding: Encoding) -> dict[str, Any]:
        if len(msg.payload) > self.max_bytes:
            raise self._fail(
                "too_large", f"payload of {len(msg.payload)} bytes exceeds the limit of {self.max_bytes}", None, target
            )
        if not msg.payload:
            body: Any = {}
        else:
            try:
                body = codec.decode(msg.payload, encoding, max_bytes=self.max_bytes)
            except DecodeError as exc:
                raise self._fail("bad_request", str(exc), None, target) from None
        req_id, args = envelope.split_id(body)
        if args is None:
            raise self._fail("bad_request", "the request must be a JSON object or msgpack map", None, target)
        declared = args.pop("client", None)  # envelope field, like `id`: who sends (rate limits)
        cmd = self.commands.get(target)
        if cmd is None:
            known = ", ".join(sorted(f"{f}/{n}" if n else f for f, n in self.commands))
            raise self._fail("not_found", f"unknown command {target[0]}/{target[1]} (known: {known})", req_id, target)
        if cmd.expensive:
            who = client_of(msg, declared)
            wait = self.limiter.acquire(who)
            if wait > 0:
                raise self._rate_limited(who, wait, req_id)
        try:
            request = cmd.request.model_validate(args)
        except ValidationError as exc:
            raise self._fail("bad_request", "; ".join(format_errors(exc, root="request")), req_id, target) from None
        try:
            data = cmd.handler(request, self.context)
        except CommandError as exc:
            raise self._fail(exc.code, exc.message, req_id, target) from None
        except OSError as exc:  # disk full, read-only state dir: the environment, not a bug
            log.error("command %s/%s hit an I/O error: %s", target[0], target[1], exc)
            raise self._fail(
                "unavailable", f"I/O error (state dir full or read-only?): {exc}", req_id, target
            ) from None
        except Exception as exc:
            log.exception("command %s/%s raised", *target)
            self._internal(exc)
            raise self._fail("internal", f"{type(exc).__name__}: {exc}", req_id, target) from None
        self.counts["ok"] += 1
        return envelope.ok(req_id, data)
