"""Limits against hostile or careless senders, over a real mosquitto: payload size per topic
family, crafted msgpack lengths, image headers claiming gigapixels, a flooded command queue and
the per-client rate limit on expensive commands."""

from __future__ import annotations

import struct
import threading
import tracemalloc
import uuid
import zlib
from pathlib import Path
from typing import Any

import cv2
import msgpack
import paho.mqtt.client as mqtt
import pytest

from agent.commands.dispatch import RateLimiter
from agent.mqtt import codec
from agent.mqtt.codec import DecodeError
from agent.mqtt.embedded import EmbeddedBroker
from agent.vision.decode import ImageDecodeError, decode_image
from tests.integration.conftest import AgentFactory
from tests.support.mqtt import TestClient, decode, wait_until


def small_jpeg(eval_dir: Path, w: int = 64, h: int = 48, quality: int = 70) -> bytes:
    bus = cv2.imread(str(eval_dir / "images" / "bus.jpg"))
    assert bus is not None
    image = cv2.resize(bus, (w, h))
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buf.tobytes()


def png_header(w: int, h: int) -> bytes:
    """A PNG whose IHDR claims ``w`` x ``h`` RGB pixels, followed by a tiny IDAT and IEND."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def jpeg_header(w: int, h: int) -> bytes:
    """SOI, a baseline SOF0 claiming ``w`` x ``h`` (3 components), then EOI."""
    sof = struct.pack(">HBHHB", 17, 8, h, w, 3) + b"\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    return b"\xff\xd8\xff\xc0" + sof + b"\xff\xd9"


BOMBS = {
    "png 100k x 100k": png_header(100_000, 100_000),
    "jpeg 65535 x 65535": jpeg_header(65_535, 65_535),
}

CRAFTED_MSGPACK = {
    "array32 of 4G": b"\xdd\xff\xff\xff\xff",
    "map32 of 4G": b"\xdf\xff\xff\xff\xff",
    "bin32 of 4G": b"\xc6\xff\xff\xff\xff" + b"x" * 16,
    "str32 of 4G": b"\xdb\xff\xff\xff\xff" + b"x" * 16,
    "ext32 of 4G": b"\xc9\xff\xff\xff\xff\x01" + b"x" * 16,
    "map of 1M keys": b"\xdf\x00\x10\x00\x00" + b"\xa1k\x00" * 4,
    "nesting 100k deep": b"\x91" * 100_000,
}


# -- decoding: no allocation from what a header claims ------------------------------------------
@pytest.mark.parametrize("name", sorted(CRAFTED_MSGPACK))
def test_crafted_msgpack_lengths_allocate_nothing(name: str) -> None:
    payload = CRAFTED_MSGPACK[name]
    tracemalloc.start()
    try:
        with pytest.raises(DecodeError):
            codec.decode(payload, "msgpack", max_bytes=8 << 20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, f"{name}: {peak} bytes allocated for a {len(payload)}-byte payload"


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_image_headers_claiming_gigapixels_are_refused_before_decoding(name: str) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(ImageDecodeError, match="exceeds the limit"):
            decode_image(BOMBS[name], 40_000_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_rate_limiter_buckets() -> None:
    now = [0.0]
    rl = RateLimiter(rate=2.0, burst=3, clock=lambda: now[0])
    assert [rl.acquire("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert rl.acquire("a") == pytest.approx(0.5)  # empty: one token in 1/rate s
    assert rl.acquire("b") == 0.0  # another client has its own bucket
    now[0] += 0.5
    assert rl.acquire("a") == 0.0
    now[0] += 100
    assert [rl.acquire("a") for _ in range(4)][-1] > 0  # refills up to the burst only
    assert RateLimiter(rate=0.0, burst=1).acquire("x") == 0.0  # disabled


# -- over MQTT ---------------------------------------------------------------------------------
def test_payload_limits_per_topic_family(
    make_agent: AgentFactory, client: TestClient, prefix: str, eval_dir: Path
) -> None:
    agent = make_agent(
        "lim",
        source={"uri": "mqtt"},
        limits={"command_bytes": 4096, "frame_bytes": 8192, "bank_entry_bytes": 2048},
    )
    client.subscribe(f"{prefix}/lim/reply/#")
    small = small_jpeg(eval_dir)
    big = small_jpeg(eval_dir, 200, 150, 90)  # over every limit here, under the MQTT 5 packet cap
    assert len(small) < 4096 - 200 and 8192 < len(big) < 64 << 10

    # commands: an image that fits, one that does not
    assert client.request(prefix, "lim", "infer", {"pipeline": "classifier", "image": small}, encoding="msgpack")["ok"]
    client.publish(f"{prefix}/lim/cmd/infer", msgpack.packb({"pipeline": "classifier", "image": big}))
    r = decode(client.wait_for(lambda m: m.topic.endswith("reply/infer")).payload)  # no id: it was not decoded
    assert r["error"]["code"] == "too_large" and "4096" in r["error"]["message"]

    # frames in: the big frame is counted and dropped, the small one is processed
    client.publish(f"{prefix}/lim/frame/in", big)
    wait_until(lambda: agent.state()["frames_rejected"] == 1, 15, "the big frame to be rejected")
    client.publish(f"{prefix}/lim/frame/in", small)
    wait_until(lambda: agent.worker.processed == 1, 15, "the small frame to be processed")

    # bank entries: an oversize entry on the fleet bank topic is refused and counted
    model = agent.services.banks["faces"].model
    client.publish(f"{prefix}/fleet/f1/bank/faces/{model}/{uuid.uuid4().hex}", b"\x80" * 4096)
    wait_until(lambda: agent.state()["bank_rejects"].get("oversize") == 1, 15, "the oversize entry to be refused")
    assert agent.services.banks["faces"].count()["entries"] == 0
    assert client.request(prefix, "lim", "system/ping")["ok"]


def test_mqtt5_maximum_packet_size_keeps_huge_publishes_away(
    make_agent: AgentFactory, client: TestClient, prefix: str
) -> None:
    """The agent tells the broker its largest packet (CONNECT property): bigger ones never arrive."""
    agent = make_agent("mps", limits={"command_bytes": 4096, "frame_bytes": 4096, "bank_entry_bytes": 4096})
    assert agent.link is not None and agent.link.max_packet == 4096 + (64 << 10)
    client.subscribe(f"{prefix}/mps/reply/#")
    received = agent.link.stats.received
    client.publish(f"{prefix}/mps/cmd/system/ping", b"{" + b" " * (200 << 10) + b"}")  # 200 kB: dropped by the broker
    client.publish(f"{prefix}/mps/cmd/system/ping", b"{" + b" " * (10 << 10) + b"}")  # 10 kB: arrives, too large
    msg = client.wait_for(lambda m: m.topic.endswith("reply/system/ping"))
    assert decode(msg.payload)["error"]["code"] == "too_large"
    assert client.request(prefix, "mps", "system/ping")["ok"]
    assert agent.link.stats.received == received + 2  # the 10 kB one and the last ping only


def test_crafted_msgpack_and_image_bombs_over_mqtt(make_agent: AgentFactory, client: TestClient, prefix: str) -> None:
    agent = make_agent("cr", source={"uri": "mqtt"})
    client.subscribe(f"{prefix}/cr/reply/#")
    for name, payload in CRAFTED_MSGPACK.items():
        client.publish(f"{prefix}/cr/cmd/face/enrol", payload)
        reply = decode(client.wait_for(lambda m: m.topic.endswith("reply/face/enrol")).payload)
        assert reply["error"]["code"] == "bad_request", (name, reply)
    for name, bomb in BOMBS.items():
        r = client.request(prefix, "cr", "infer", {"pipeline": "faces", "image": bomb}, encoding="msgpack")
        assert r["error"]["code"] == "bad_request" and "exceeds the limit" in r["error"]["message"], name
        client.publish(f"{prefix}/cr/frame/in", bomb)
    wait_until(lambda: agent.state()["frames_rejected"] == len(BOMBS), 15, "the bomb frames to be rejected")
    assert agent.worker.processed == 0 and agent.services.banks["faces"].count()["entries"] == 0
    assert client.request(prefix, "cr", "system/ping")["ok"]


def test_flooded_command_queue_answers_unavailable(
    make_agent: AgentFactory, client: TestClient, prefix: str, eval_dir: Path
) -> None:
    agent = make_agent("fq", limits={"command_queue": 2, "expensive_rate": 0})
    client.subscribe(f"{prefix}/fq/reply/#")
    image = small_jpeg(eval_dir)
    body = msgpack.packb({"pipeline": "classifier", "image": image}, use_bin_type=True)
    assert client.request(prefix, "fq", "infer", {"pipeline": "classifier", "image": image}, encoding="msgpack")["ok"]

    # Keep the command worker busy, deterministically: face/list waits for the bank's lock.
    link = agent.link
    assert link is not None
    with agent.services.banks["faces"].lock:
        arrived = link.stats.received + 1
        client.publish(f"{prefix}/fq/cmd/face/list", b"{}")
        wait_until(lambda: link.stats.received == arrived and agent.router.queue.empty(), 15, "face/list taken")
        for _ in range(10):
            client.publish(f"{prefix}/fq/cmd/infer", body, qos=0)
        wait_until(lambda: agent.router.counts.get("rejected_full") == 8, 15, "8 requests refused")
    replies: list[dict[str, Any]] = []
    while len(replies) < 10:
        replies.append(decode(client.wait_for(lambda m: m.topic.endswith("/reply/infer")).payload))
    full = [r for r in replies if not r["ok"]]
    assert len(full) == 8 and all(r["error"]["code"] == "unavailable" for r in full)
    assert all("queue is full" in r["error"]["message"] for r in full)
    assert sum(r["ok"] for r in replies) == 2  # the two that were queued ran
    assert client.request(prefix, "fq", "system/ping")["ok"]


def test_rate_limit_on_expensive_commands_per_client(
    make_agent: AgentFactory, client: TestClient, prefix: str, eval_dir: Path, broker: EmbeddedBroker
) -> None:
    # Three at once per client, then (practically) none: the outcome does not depend on timing.
    make_agent("rl", limits={"expensive_rate": 0.001, "expensive_burst": 3})
    client.subscribe(f"{prefix}/rl/reply/#", f"{prefix}/inbox/#")
    image = small_jpeg(eval_dir)
    body = {"pipeline": "classifier", "image": image}

    def send(
        n: int, *, user: str | None = None, field: str | None = None, inbox: str | None = None
    ) -> list[dict[str, Any]]:
        out = []
        for i in range(n):
            req_id = f"{user or field or inbox or 'anon'}-{i}-{uuid.uuid4().hex[:4]}"
            payload = {"id": req_id, **body, **({"client": field} if field else {})}
            client.publish(
                f"{prefix}/rl/cmd/infer",
                msgpack.packb(payload, use_bin_type=True),
                user={"client": user} if user else None,
                response_topic=f"{prefix}/inbox/{inbox}" if inbox else None,
            )

            def is_reply(m: mqtt.MQTTMessage, req_id: str = req_id) -> bool:
                return m.topic.endswith("/reply/infer") and decode(m.payload)["id"] == req_id

            out.append(decode(client.wait_for(is_reply).payload))
        return out

    def outcome(replies: list[dict[str, Any]]) -> list[str]:
        return ["ok" if r["ok"] else r["error"]["code"] for r in replies]

    alice = send(5, user="alice")  # MQTT 5 user property
    assert outcome(alice) == ["ok"] * 3 + ["unavailable"] * 2
    assert "rate limit" in alice[-1]["error"]["message"] and "alice" in alice[-1]["error"]["message"]
    assert outcome(send(4, field="bob")) == ["ok"] * 3 + ["unavailable"]  # `client` field (MQTT 3.1.1)
    assert outcome(send(4, inbox="carol")) == ["ok"] * 3 + ["unavailable"]  # MQTT 5 response topic
    assert outcome(send(4)) == ["ok"] * 3 + ["unavailable"]  # nobody: the shared anonymous bucket
    assert outcome(send(1, user="alice")) == ["unavailable"]  # still empty

    # Cheap commands are never rate limited, and a 3.1.1 client is served too.
    for _ in range(10):
        assert client.request(prefix, "rl", "thresholds/get")["ok"]
    old = TestClient(broker.port, protocol="3.1.1")
    old.subscribe(f"{prefix}/rl/reply/#")
    r = old.request(
        prefix, "rl", "infer", {"pipeline": "classifier", "image": image, "client": "dave"}, encoding="msgpack"
    )
    assert r["ok"]
    old.close()


def test_flood_from_many_threads_never_stops_the_agent(
    make_agent: AgentFactory, client: TestClient, prefix: str, eval_dir: Path, broker: EmbeddedBroker
) -> None:
    """Four senders flood expensive commands at once: every request gets an answer (ok, rate
    limited or queue full) and the agent still serves a ping afterwards."""
    agent = make_agent("mf", limits={"command_queue": 8, "expensive_rate": 5, "expensive_burst": 5})
    client.subscribe(f"{prefix}/mf/reply/#")
    body = msgpack.packb({"pipeline": "classifier", "image": small_jpeg(eval_dir)}, use_bin_type=True)
    senders = [TestClient(broker.port) for _ in range(4)]

    def flood(c: TestClient, who: str) -> None:
        for _ in range(25):
            c.publish(f"{prefix}/mf/cmd/infer", body, qos=0, user={"client": who})

    threads = [threading.Thread(target=flood, args=(c, f"s{i}")) for i, c in enumerate(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    replies = [decode(client.wait_for(lambda m: m.topic.endswith("/reply/infer"), 60).payload) for _ in range(100)]
    codes = {"ok" if r["ok"] else r["error"]["code"] for r in replies}
    assert codes <= {"ok", "unavailable"} and "unavailable" in codes and "ok" in codes
    assert agent.router.counts["rate_limited"] + agent.router.counts["rejected_full"] > 0
    assert client.request(prefix, "mf", "system/ping")["ok"]
    for c in senders:
        c.close()
