"""The live view over a real broker: nothing without a lease, JPEG frames tied to their results'
seq while one is held, none once it is stopped or has run out; the opt-in HA annotated camera."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import cv2
import msgpack
import numpy as np

from tests.integration.conftest import AgentFactory
from tests.support.mqtt import TestClient, wait_until


def _previews(client: TestClient, topic: str) -> list[dict[str, Any]]:
    with client._lock:
        return [msgpack.unpackb(m.payload, raw=False) for m in client.all if m.topic == topic]


def test_preview_only_under_a_lease(make_agent: AgentFactory, client: TestClient, prefix: str, eval_dir: Path) -> None:
    video = eval_dir / "faces" / "short_hamilton_clip.mp4"
    agent = make_agent(
        "pv",
        source={"uri": f"video:{video}", "loop": True},
        pipelines={"faces": True},
        preview={"fps": 5, "width": 320},
    )
    topic = f"{prefix}/pv/preview"
    client.subscribe(topic, f"{prefix}/pv/result/#", f"{prefix}/pv/reply/#")
    wait_until(lambda: agent.worker.processed > 3, 30, "frames processed")
    time.sleep(1.5)  # frames flow and results are published: still no preview without a lease
    assert _previews(client, topic) == [] and agent.preview.sent == 0

    r = client.request(prefix, "pv", "preview/start", {"seconds": 2})
    assert r["ok"] and r["data"]["fps"] == 5 and r["data"]["width"] == 320
    wait_until(lambda: len(_previews(client, topic)) >= 4, 15, "four previews")
    first = _previews(client, topic)[0]
    assert {"v", "dev", "seq", "ts", "w", "h", "jpeg"} <= set(first) and (first["w"], first["h"]) == (640, 360)
    img = cv2.imdecode(np.frombuffer(first["jpeg"], np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and img.shape == (180, 320, 3)
    with client._lock:
        result_seqs = {
            msgpack.unpackb(m.payload, raw=False)["seq"] for m in client.all if m.topic.endswith("/result/faces")
        }
    assert first["seq"] in result_seqs  # the frame its results belong to
    seqs = [p["seq"] for p in _previews(client, topic)]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)

    # the lease runs out: the stream stops by itself
    wait_until(lambda: not agent.preview.active, 5, "lease expiry")
    time.sleep(0.5)
    n = len(_previews(client, topic))
    time.sleep(1.0)
    assert len(_previews(client, topic)) == n

    # preview/stop ends a long lease at once; bad leases are refused
    assert client.request(prefix, "pv", "preview/start", {"seconds": 60})["ok"]
    wait_until(lambda: len(_previews(client, topic)) > n, 10, "preview after renewed lease")
    assert client.request(prefix, "pv", "preview/stop")["data"] == {"stopped": True}
    time.sleep(0.5)
    n = len(_previews(client, topic))
    time.sleep(1.0)
    assert len(_previews(client, topic)) == n
    for bad in ({"seconds": 0}, {"seconds": "x"}, {"seconds": 1e9}, {"secs": 3}):
        assert client.request(prefix, "pv", "preview/start", bad)["error"]["code"] == "bad_request"


def test_home_assistant_annotated_camera(
    make_agent: AgentFactory, client: TestClient, prefix: str, eval_dir: Path
) -> None:
    video = eval_dir / "faces" / "short_hamilton_clip.mp4"
    ha = f"ha{prefix}"
    client.subscribe(f"{ha}/camera/#", f"{prefix}/hc/ha/camera", f"{prefix}/hc/preview")
    make_agent(
        "hc",
        source={"uri": f"video:{video}", "loop": True},
        pipelines={"faces": True},
        homeassistant={"enabled": True, "prefix": ha, "camera": True, "camera_interval": 1},
    )
    cfg = client.wait_for(lambda m: m.topic == f"{ha}/camera/hc_annotated/config", 15)
    assert b'"topic":"' + f"{prefix}/hc/ha/camera".encode() in cfg.payload.replace(b" ", b"")
    msg = client.wait_for(lambda m: m.topic == f"{prefix}/hc/ha/camera", 15)
    img = cv2.imdecode(np.frombuffer(msg.payload, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and img.shape[1] == 640
    with client._lock:
        assert not [m for m in client.all if m.topic.endswith("/preview")]  # the HA camera takes no lease
