"""Fleet sync of the banks over retained MQTT messages (DESIGN §5).

Every entry version is one retained QoS-1 message at
``{prefix}/fleet/{fleet}/bank/{bank}/{model}/{entry id}``; ``{model}`` is the feature model's
fingerprint, so a camera subscribes only to banks its own model can read.

Entries are published at QoS 1; the subscription is QoS 0 by default (``fleet.subscribe_qos``).
Every entry lives in the broker's retained store and is read again at every (re)connect, so a
QoS-1 subscription buys nothing a reconnect does not (the session ends at disconnect), while
brokers cap the QoS-1 backlog per client (mosquitto: 20 in flight + 1000 queued by default) and
silently drop the rest of a retained flood: a new camera would get 1,020 entries of 10,000.
A QoS-0 flood is bounded by socket buffers instead (about 8,000 entries of 128-d faces on a
default mosquitto), so a fleet with big banks needs a broker without that cap (mosquitto:
``max_queued_messages 0``; EMQX: ``max_mqueue_len``): past ``LARGE_FLOOD`` entries the agent
says so in its log and ``state``.

- Local changes (:attr:`EntryBank.listeners`, called after the change is on disk) are published
  at once, tombstones included; paho queues QoS-1 publishes made while disconnected.
- Inbound messages: the route sink only enqueues (bounded by bytes; an overflow drops messages,
  counts them and re-subscribes later, which makes the broker send every retained entry again).
  The worker thread decodes and checks each one (size, format, bank, dim, vector, signature,
  entry id = the topic's last level, clock skew), merges it last-writer-wins and saves the
  banks in batches. Refused messages are counted by reason; an empty payload (a retained
  message being cleared) is counted as ``cleared``. Own echoes are no-ops.
- After every (re)connect, once the broker's retained entries have arrived (no bank message for
  ``quiet`` seconds, or ``max_wait`` at most), every local entry (tombstones too) that the
  broker lacks, holds older, or holds in a form this camera refuses is published again.
- Self-repair: a valid entry older than the local version means the broker (or a bridge) holds
  a stale copy: the local version is published again. A refused or cleared message at the id
  of a local entry gets the local version published again, once per id per connection (so two
  cameras with different keys cannot ping-pong forever).
Re-publishing is paced: at most ``WINDOW`` publishes wait for their echo at any time.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent.bank.clock import ClockSkewError, Stamp
from agent.bank.entry import BankEntry, RejectedEntry
from agent.bank.store import EntryBank
from agent.mqtt.topics import Message, Route, TopicRegistry, Topics

log = logging.getLogger(__name__)

Publish = Callable[[str, bytes, int, bool], None]
WINDOW = 500  # re-publishes in flight (waiting for their echo)
STALL_S = 5.0  # give up waiting for echoes after this long without progress
LOG_LABELS = 8  # labels named in one log line
BURST = 1000  # messages handled between two save/publish steps
LARGE_FLOOD = 1000  # retained entries at connect past which default broker queues may truncate
_CONNECTED = "connected"


@dataclass
class _Batch:
    """Remote changes applied to one bank since its last save."""

    count: int = 0
    since: float = 0.0
    added: Counter[str] = field(default_factory=Counter)
    removed: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        labels = list(dict.fromkeys([*self.added, *self.removed]))
        parts = []
        for label in labels[:LOG_LABELS]:
            plus, minus = self.added[label], self.removed[label]
            parts.append(label + (f" +{plus}" if plus else "") + (f" -{minus}" if minus else ""))
        if len(labels) > LOG_LABELS:
            parts.append(f"{len(labels) - LOG_LABELS} more labels")
        return ", ".join(parts) or "no label changed"


@dataclass
class _Item:
    bank: str
    entry_id: str
    payload: bytes
    oversize: int = 0  # the size of a payload refused in the sink (not kept)


class FleetSync:
    """Keeps the given banks in step with the fleet through the broker's retained messages."""

    def __init__(
        self,
        topics: Topics,
        banks: Sequence[EntryBank],
        publish: Publish,
        *,
        key: bytes | None,
        max_bytes: int,
        queue_bytes: int,
        quiet: float = 1.0,
        max_wait: float = 30.0,
        flush_delay: float = 0.5,
        qos: int = 0,
    ) -> None:
        self.banks = {b.name: b for b in banks}
        self._base = {b.name: topics.bank_entry(b.name, b.model, "") for b in banks}  # + entry id
        self._publish = publish
        self.key = key or None
        self.max_bytes = max_bytes
        self.queue_bytes = queue_bytes
        self.quiet = quiet
        self.max_wait = max_wait
        self.flush_delay = flush_delay
        self.qos = qos
        self._queue: queue.Queue[_Item | str] = queue.Queue()
        self._lock = threading.Lock()  # counters and queue accounting, shared with paho's thread
        self._queued = 0
        self._overflow = False
        self.rejects: Counter[str] = Counter()
        self.counts: Counter[str] = Counter()  # applied, published, republished, cleared, dropped
        self.last_sync: float | None = None
        self.phase = "offline"
        self.warning: str | None = None
        self._registry: TopicRegistry | None = None
        # worker-thread state
        self._batches = {name: _Batch() for name in self.banks}
        self._broker: dict[str, dict[str, Stamp | None]] = {name: {} for name in self.banks}
        self._repaired: set[tuple[str, str]] = set()
        self._pending: dict[tuple[str, str], None] = {}  # ordered set of entries to publish again
        self._outstanding: dict[tuple[str, str], Stamp] = {}
        self._progress = 0.0
        self._session = 0.0
        self._last_msg = 0.0
        self._flood = 0
        for b in banks:
            b.listeners.append(functools.partial(self._local, b.name))

    # -- wiring ------------------------------------------------------------------------------
    def routes(self) -> list[Route]:
        return [
            Route(self._base[name] + "+", self.qos, functools.partial(self._sink, name), f"bank-{name}")
            for name in self.banks
        ]

    def attach(self, registry: TopicRegistry) -> None:
        """Add the bank routes (before the link connects, so the first SUBSCRIBE has them)."""
        self._registry = registry
        for route in self.routes():
            registry.add(route)

    def connected(self) -> None:
        """The link's subscriptions are acknowledged (paho thread): start a sync session."""
        self._queue.put(_CONNECTED)

    def start(self, stop: threading.Event) -> threading.Thread:
        t = threading.Thread(target=self._run, args=(stop,), name="fleet-sync", daemon=True)
        t.start()
        return t

    def state(self) -> dict[str, Any]:
        with self._lock:
            rejects = dict(self.rejects)
            counts = dict(self.counts)
        unsaved = sum(b.count for b in list(self._batches.values()))
        return {
            "bank_rejected": sum(rejects.values()),
            "bank_rejects": rejects,
            "bank_last_sync": None if self.last_sync is None else round(self.last_sync, 3),
            "bank_sync": {
                "state": self.phase,
                "signed": self.key is not None,
                "unsaved": unsaved,
                **counts,
                **({"warning": self.warning} if self.warning else {}),
            },
        }

    # -- local changes (the thread that made them, bank lock held) ------------------------------
    def _local(self, name: str, entries: list[BankEntry]) -> None:
        for e in entries:
            self._publish(self._base[name] + e.id, e.encode(self.key), 1, True)
        self._count("published", len(entries))

    # -- inbound (paho's thread: check the size, enqueue, nothing else) -------------------------
    def _sink(self, name: str, msg: Message) -> None:
        size, entry_id = len(msg.payload), msg.topic.rsplit("/", 1)[-1]
        if size > self.max_bytes:
            self._queue.put(_Item(name, entry_id, b"", oversize=size))
            return
        with self._lock:
            if self._queued + size > self.queue_bytes:
                self.counts["dropped"] += 1
                self._overflow = True
                return
            self._queued += size
        self._queue.put(_Item(name, entry_id, msg.payload))

    def _count(self, what: str, n: int = 1) -> None:
        with self._lock:
            self.counts[what] += n

    def _reject(self, reason: str) -> None:
        with self._lock:
            self.rejects[reason] += 1

    # -- the worker ------------------------------------------------------------------------------
    def _run(self, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                busy = self.phase == "syncing" or self._pending or self._outstanding
                dirty = any(b.count for b in self._batches.values())
                try:
                    self._handle(self._queue.get(timeout=0.05 if busy or dirty else 0.5))
                    for _ in range(BURST - 1):  # then the backlog, with a save/publish step at least every BURST
                        self._handle(self._queue.get_nowait())
                except queue.Empty:
                    pass
                try:
                    self._tick(time.monotonic())
                except Exception:  # a failed save or publish must not end the sync
                    log.exception("fleet sync step failed")
        finally:
            try:
                self._flush(force=True)
            except OSError:
                log.exception("fleet sync: saving the banks at stop failed")

    def _handle(self, item: _Item | str) -> None:
        now = time.monotonic()
        if isinstance(item, str):
            self._start_session(now)
            return
        with self._lock:
            self._queued -= len(item.payload)
        self._last_msg = now
        if self.phase == "syncing":
            self._flood += 1
        try:
            self._apply(item, now)
        except Exception:  # nothing a message contains may stop the worker
            log.exception("bank %s: unexpected error on entry %r", item.bank, item.entry_id)
            self._reject("internal")

    def _start_session(self, now: float) -> None:
        self.phase = "syncing"
        self._session = self._last_msg = self._progress = now
        self._flood = 0
        for seen in self._broker.values():
            seen.clear()
        self._repaired.clear()
        self._pending.clear()
        self._outstanding.clear()

    def _apply(self, item: _Item, now: float) -> None:
        bank, eid, seen = self.banks[item.bank], item.entry_id, self._broker[item.bank]
        if item.oversize:
            self._refused(item, "oversize", f"{item.oversize} bytes > {self.max_bytes}")
            return
        if not item.payload:
            self._count("cleared")
            seen[eid] = None
            self._repair_once(item.bank, eid)
            return
        try:
            entry = BankEntry.decode(
                item.payload, key=self.key, expect_dim=bank.dim, expect_bank=bank.name, max_bytes=self.max_bytes
            )
        except RejectedEntry as exc:
            self._refused(item, exc.reason, str(exc))
            return
        if entry.id != eid:
            self._refused(item, "topic_mismatch", f"entry {entry.id!r} published at another id")
            return
        seen[eid] = entry.hlc
        waiting = self._outstanding.get((item.bank, eid))
        if waiting is not None and entry.hlc >= waiting:
            del self._outstanding[(item.bank, eid)]
            self._progress = now
        before = bank.get(eid)
        try:
            applied = bank.merge(entry)
        except ClockSkewError as exc:
            self._reject("clock_skew")
            log.warning("bank %s: refused entry %r: %s", bank.name, eid, exc)
            return
        if not applied:
            if before is not None and before.hlc > entry.hlc:
                self._pending[(item.bank, eid)] = None  # the broker holds a stale copy
            return
        batch = self._batches[item.bank]
        if not batch.count:
            batch.since = now
        batch.count += 1
        if before is not None and not before.deleted:
            batch.removed[before.label] += 1
        if not entry.deleted:
            batch.added[entry.label] += 1
        self.last_sync = time.time()
        self._count("applied")

    def _refused(self, item: _Item, reason: str, why: str) -> None:
        self._reject(reason)
        log.debug("bank %s: refused the message at id %r: %s", item.bank, item.entry_id, why)
        self._broker[item.bank][item.entry_id] = None
        self._repair_once(item.bank, item.entry_id)

    def _repair_once(self, name: str, eid: str) -> None:
        if (name, eid) not in self._repaired and self.banks[name].get(eid) is not None:
            self._repaired.add((name, eid))
            self._pending[(name, eid)] = None

    def _tick(self, now: float) -> None:
        self._flush(force=False, now=now)
        if self.phase == "syncing" and (now - self._last_msg >= self.quiet or now - self._session >= self.max_wait):
            self._after_initial_sync()
        if self._overflow and self._queue.empty():
            self._resubscribe()
        if self._outstanding and now - self._progress > STALL_S:
            log.warning("fleet sync: %d re-published entries not echoed by the broker", len(self._outstanding))
            self._outstanding.clear()
        while self._pending and len(self._outstanding) < WINDOW:
            key = next(iter(self._pending))
            del self._pending[key]
            name, eid = key
            bank = self.banks[name]
            with bank.lock:  # under the lock: a newer local change cannot be overtaken by an older copy
                entry = bank.entries.get(eid)
                if entry is None:
                    continue
                self._publish(self._base[name] + eid, entry.encode(self.key), 1, True)
            self._outstanding[key] = entry.hlc
            self._broker[name][eid] = entry.hlc  # on its way: not "lacking" at the end of the sync
            self._progress = now
            self._count("republished")

    def _after_initial_sync(self) -> None:
        self.phase = "synced"
        if self._flood >= LARGE_FLOOD and self.warning is None:
            self.warning = (
                f"{self._flood} bank entries arrived at connect: brokers drop a subscriber's backlog past "
                "their per-client queue limit (mosquitto max_queued_messages, default 1000; EMQX "
                "max_mqueue_len); raise it above the bank size (mosquitto: 0) or entries may be missing"
            )
            log.warning("fleet sync: %s", self.warning)
        for name, bank in self.banks.items():
            seen = self._broker[name]
            missing = [e.id for e in bank.snapshot() if (s := seen.get(e.id)) is None or s < e.hlc]
            missing.sort()  # creation order: the oldest entries reach a new camera first
            for eid in missing:
                self._pending[(name, eid)] = None
            if missing:
                log.info("bank %s: publishing %d entries the broker lacks or holds older", name, len(missing))

    def _resubscribe(self) -> None:
        """After dropped messages: subscribe again so that the broker resends every entry."""
        with self._lock:
            self._overflow = False
        if self._registry is None:
            return
        log.warning("fleet sync: inbound queue overflowed; subscribing again to reload the banks")
        for route in self.routes():
            self._registry.remove(route.filter)
            self._registry.add(route)
        self._queue.put(_CONNECTED)

    def _flush(self, *, force: bool, now: float = 0.0) -> None:
        for name, batch in self._batches.items():
            if not batch.count or (not force and now - batch.since < self.flush_delay):
                continue
            self.banks[name].save()
            log.info("bank %s: %d entries from the fleet (%s)", name, batch.count, batch.summary())
            self._batches[name] = _Batch()
