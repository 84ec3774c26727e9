"""The console's MQTT side: cameras seen, replies matched to requests, live-view leases that follow
the open pages, frames grabbed for teaching. Only the public MQTT contract; paho stays in
agent/mqtt/client.py (its network thread hands every message over to the event loop)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import struct
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from agent.console.fleet import Fleet
from agent.mqtt import codec
from agent.mqtt.client import StreamClient
from agent.mqtt.topics import Message
from agent.settings import Settings

log = logging.getLogger(__name__)

MAX_PAYLOAD = 32 << 20
GRABS_KEPT = 16


def to_json(obj: Any) -> str:
    return codec.encode(obj, "json").decode()


class Peer:
    """One open page: what it watches and a bounded outbox (live-view frames are dropped first)."""

    def __init__(self, send_str: Any, send_bytes: Any) -> None:
        self.dev: str | None = None
        self._send_str, self._send_bytes = send_str, send_bytes
        self.queue: asyncio.Queue[str | bytes | None] = asyncio.Queue(maxsize=512)
        self.dropped = 0

    def send(self, item: str | bytes, *, droppable: bool = False) -> None:
        if droppable and self.queue.qsize() > 4:
            self.dropped += 1
            return
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.dropped += 1

    async def pump(self) -> None:
        while (item := await self.queue.get()) is not None:
            if isinstance(item, bytes):
                await self._send_bytes(item)
            else:
                await self._send_str(item)

    def close(self) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(None)


@dataclass(frozen=True)
class Grabbed:
    id: str
    dev: str
    jpeg: bytes
    seq: int | None
    w: int
    h: int


def hide_boxes(jpeg: bytes, boxes: list[list[float]]) -> bytes:
    """The JPEG with ``boxes`` (frame pixels) filled grey: what is left is the face meant."""
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError("the grabbed frame cannot be decoded")
    ih, iw = img.shape[:2]
    for x, y, w, h in boxes:
        x0, y0 = max(0, int(x)), max(0, int(y))
        x1, y1 = min(iw, int(x + w + 1)), min(ih, int(y + h + 1))
        if x1 > x0 and y1 > y0:
            img[y0:y1, x0:x1] = 127
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 92])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


class Bridge:
    def __init__(self, settings: Settings, loop: asyncio.AbstractEventLoop) -> None:
        self.settings = settings
        self.loop = loop
        self.prefix = settings.mqtt.prefix
        self.lease = settings.console.lease
        self.timeout = settings.console.timeout
        self.fleet = Fleet(self.prefix)
        self.peers: set[Peer] = set()
        self.pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.snapshots: dict[str, bytes] = {}
        self.grabs: OrderedDict[str, Grabbed] = OrderedDict()
        self.leased: set[str] = set()
        self.counts = {"commands": 0, "refused": 0, "previews": 0}
        p = self.prefix
        # the whole fleet's availability, state and replies; a camera's stream only while a page watches it
        filters = {f"{p}/+/availability": 1, f"{p}/+/state": 1, f"{p}/+/reply/#": 1, f"{p}/+/snapshot": 0}
        client_id = settings.mqtt.client_id or f"maix-console-{uuid.uuid4().hex[:8]}"
        self.client = StreamClient(settings.mqtt, client_id, filters, self._from_network, self._status)
        self._lease_task: asyncio.Task[None] | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        self.client.start()
        self._lease_task = self.loop.create_task(self._renew_leases())

    async def stop(self) -> None:
        if self._lease_task:
            self._lease_task.cancel()
        for dev in list(self.leased):
            self._publish_cmd(dev, "preview/stop", {})
        await asyncio.sleep(0.1)  # let paho flush the stops
        self.client.stop()

    # -- network thread → loop ----------------------------------------------------------------
    def _from_network(self, msg: Message) -> None:
        self.loop.call_soon_threadsafe(self._dispatch, msg)

    def _status(self, connected: bool) -> None:
        self.loop.call_soon_threadsafe(self._broadcast, to_json({"type": "broker", "connected": connected}))

    def _broadcast(self, text: str) -> None:
        for peer in self.peers:
            peer.send(text)

    def _watchers(self, dev: str) -> list[Peer]:
        return [p for p in self.peers if p.dev == dev]

    def _dispatch(self, msg: Message) -> None:
        where = self.fleet.device_of(msg.topic)
        if where is None:
            return
        dev, rest = where
        if rest in ("availability", "state"):
            cam = self.fleet.update(dev, rest, msg.payload)
            if cam is not None:
                self._broadcast(to_json({"type": "device", "camera": cam.summary()}))
            return
        if rest == "snapshot":
            self.snapshots[dev] = msg.payload
            return
        try:
            body = codec.decode(msg.payload, codec.sniff(msg.payload, msg.content_type), max_bytes=MAX_PAYLOAD)
        except codec.DecodeError:
            return
        if not isinstance(body, dict):
            return
        if rest.startswith("reply/"):
            fut = self.pending.pop(str(body.get("id")), None)
            if fut is not None and not fut.done():
                fut.set_result(body)
            return
        watchers = self._watchers(dev)
        if not watchers:
            return
        if rest == "preview":
            self.counts["previews"] += 1
            image = body.pop("jpeg", b"")
            if not isinstance(image, bytes):
                return
            head = json.dumps({"dev": dev, **{k: body.get(k) for k in ("seq", "ts", "w", "h")}}).encode()
            frame = struct.pack(">I", len(head)) + head + image
            for peer in watchers:
                peer.send(frame, droppable=True)
            return
        kind, _, name = rest.partition("/")
        if kind in ("result", "event"):
            text = to_json({"type": kind, "dev": dev, "kind": name, "body": body})
            for peer in watchers:
                peer.send(text, droppable=kind == "result")

    # -- commands -------------------------------------------------------------------------------
    def _publish_cmd(self, dev: str, command: str, body: dict[str, Any]) -> bool:
        return self.client.publish(f"{self.prefix}/{dev}/cmd/{command}", codec.encode(body, "msgpack"), 1)

    async def command(self, dev: str, command: str, body: dict[str, Any]) -> dict[str, Any]:
        """Send one command and wait for its reply (an error reply of our own on timeout)."""
        req_id = uuid.uuid4().hex[:16]
        fut: asyncio.Future[dict[str, Any]] = self.loop.create_future()
        self.pending[req_id] = fut
        self.counts["commands"] += 1
        if not self._publish_cmd(dev, command, {**body, "id": req_id}):
            self.pending.pop(req_id, None)
            return {
                "ok": False,
                "error": {"code": "unavailable", "message": "the console is not connected to the broker"},
            }
        try:
            return await asyncio.wait_for(fut, self.timeout)
        except TimeoutError:
            return {"ok": False, "error": {"code": "timeout", "message": f"no reply from {dev} in {self.timeout:g} s"}}
        finally:
            self.pending.pop(req_id, None)

    async def grab(self, dev: str) -> tuple[Grabbed | None, dict[str, Any]]:
        """A full-resolution frame of ``dev`` (its ``snapshot``), kept for the commands that follow."""
        self.snapshots.pop(dev, None)
        reply = await self.command(dev, "snapshot", {})
        jpeg = self.snapshots.pop(dev, None)
        if not reply.get("ok"):
            return None, reply
        if jpeg is None:
            return None, {"ok": False, "error": {"code": "unavailable", "message": "the snapshot did not arrive"}}
        data = reply.get("data") or {}
        g = Grabbed(uuid.uuid4().hex[:16], dev, jpeg, data.get("seq"), int(data.get("w", 0)), int(data.get("h", 0)))
        self.grabs[g.id] = g
        while len(self.grabs) > GRABS_KEPT:
            self.grabs.popitem(last=False)
        return g, reply

    # -- live-view leases follow the pages ----------------------------------------------------------
    def _stream(self, dev: str) -> list[str]:
        return [f"{self.prefix}/{dev}/{t}" for t in ("result/#", "event/#", "preview")]

    def watch(self, peer: Peer, dev: str | None) -> None:
        old, peer.dev = peer.dev, dev
        if dev and dev not in self.leased:
            self.leased.add(dev)
            for f in self._stream(dev):
                self.client.subscribe(f, 0)
            self._publish_cmd(dev, "preview/start", {"seconds": self.lease})
        if old and old != dev:
            self._release(old)

    def leave(self, peer: Peer) -> None:
        self.peers.discard(peer)
        if peer.dev:
            dev, peer.dev = peer.dev, None
            self._release(dev)

    def _release(self, dev: str) -> None:
        if dev in self.leased and not self._watchers(dev):
            self.leased.discard(dev)
            self._publish_cmd(dev, "preview/stop", {})
            for f in self._stream(dev):
                self.client.unsubscribe(f)

    async def _renew_leases(self) -> None:
        while True:
            await asyncio.sleep(max(1.0, self.lease / 3))
            for dev in list(self.leased):
                self._publish_cmd(dev, "preview/start", {"seconds": self.lease})

    def hello(self) -> str:
        return to_json(
            {
                "type": "hello",
                "cameras": self.fleet.list(),
                "connected": self.client.connected.is_set(),
                "ts": time.time(),
            }
        )
