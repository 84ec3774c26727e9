"""Overlapped pipelines (performance.mode): results stay per frame, with the right seq.

latency (default): a frame's enabled pipelines run side by side and its results carry its seq;
throughput: one lane per pipeline, each lane's results in frame order. Pushed JPEG frames are
decoded by the decode stage while the previous frame is being processed. Real mosquitto, real
models, the VOT bag video.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

from tests.integration.conftest import AgentFactory
from tests.support.mqtt import TestClient, decode


def _bag(eval_dir: Path) -> tuple[Path, list[float], Path]:
    seq = eval_dir / "tracking" / "vot15_bag"
    v = [float(x) for x in (seq / "groundtruth.txt").read_text().splitlines()[0].split(",")]
    box = [min(v[0::2]), min(v[1::2]), max(v[0::2]) - min(v[0::2]), max(v[1::2]) - min(v[1::2])]
    return seq / "bag.avi", box, sorted((seq / "imgs").glob("*.jpg"))[0]


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def _collect(client: TestClient, kinds: set[str], per_kind: int) -> dict[str, list[dict[str, Any]]]:
    got: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
    while any(len(v) < per_kind for v in got.values()):
        msg = client.wait_for(lambda m: "/result/" in m.topic, 90)
        kind = msg.topic.rsplit("/", 1)[-1]
        if kind in got:
            got[kind].append(decode(msg.payload))
    return got


def test_latency_mode_publishes_each_frames_results_together(
    make_agent: AgentFactory, client: TestClient, prefix: str, eval_dir: Path
) -> None:
    video, box, first = _bag(eval_dir)
    agent = make_agent(
        "lat",
        source={"uri": f"video:{video}", "loop": True},
        pipelines={"segment": True, "track": True},
        performance={"mode": "latency", "workers": 2},
    )
    client.subscribe(f"{prefix}/lat/reply/#", f"{prefix}/lat/result/#")
    r = client.request(prefix, "lat", "track/start", {"box": box, "image": _b64(first)})
    assert r["ok"], r
    got = _collect(client, {"segments", "track"}, 4)
    for kind, msgs in got.items():
        seqs = [m["seq"] for m in msgs]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), (kind, seqs)
        assert all(m["w"] == 480 and m["h"] == 360 for m in msgs)
    # side by side, both results of a frame go out for the same seq
    assert {m["seq"] for m in got["segments"]} & {m["seq"] for m in got["track"]}
    assert agent.engine.workers == 2 and agent.engine.errors == 0
    assert set(agent.engine.timings_ms) >= {"segments", "track"}


def test_throughput_mode_runs_one_lane_per_pipeline(
    make_agent: AgentFactory, client: TestClient, prefix: str, eval_dir: Path
) -> None:
    video, box, first = _bag(eval_dir)
    agent = make_agent(
        "thr",
        source={"uri": f"video:{video}", "loop": True},
        pipelines={"segment": True, "track": True},
        performance={"mode": "throughput"},
    )
    assert agent.settings.model_threads() == 1  # the lanes use the cores
    client.subscribe(f"{prefix}/thr/reply/#", f"{prefix}/thr/result/#")
    r = client.request(prefix, "thr", "track/start", {"box": box, "image": _b64(first)})
    assert r["ok"], r
    got = _collect(client, {"segments", "track"}, 4)
    for kind, msgs in got.items():
        seqs = [m["seq"] for m in msgs]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), (kind, seqs)
        assert {"v", "dev", "seq", "ts", "w", "h"} <= set(msgs[-1])
    assert got["track"][-1]["state"] in ("tracking", "lost", "searching")
    assert agent.worker.mode == "throughput" and agent.worker.errors == 0
    assert set(agent.worker.lane_fps) <= {"segments", "track"}


def test_pushed_frames_are_decoded_ahead_and_answered_in_order(
    make_agent: AgentFactory, client: TestClient, prefix: str, eval_dir: Path
) -> None:
    _, box, first = _bag(eval_dir)
    frames = sorted((eval_dir / "tracking" / "vot15_bag" / "imgs").glob("*.jpg"))[:8]
    agent = make_agent("push", source={"uri": "mqtt"}, pipelines={"track": True, "segment": True})
    client.subscribe(f"{prefix}/push/reply/#", f"{prefix}/push/result/#")
    r = client.request(prefix, "push", "track/start", {"box": box, "image": _b64(first)})
    assert r["ok"], r
    for path in frames[1:]:  # all at once: the worker drops stale frames, never reorders them
        client.publish(f"{prefix}/push/frame/in", path.read_bytes())
    client.publish(f"{prefix}/push/frame/in", b"not an image")
    deadline = time.monotonic() + 90
    while True:  # every frame pushed is processed, dropped as stale or rejected as bad
        st = agent.state()
        handled = st["frames_processed"] + st["frames_dropped"] + st["frames_rejected"]
        if st["frames_in"] == len(frames) and handled >= len(frames) and st["frames_rejected"] >= 1:
            break
        assert time.monotonic() < deadline, st
        time.sleep(0.05)
    while True:  # the results may still be in flight
        seqs = [decode(m.payload)["seq"] for m in list(client.all) if m.topic.endswith("result/track")]
        if seqs:
            break
        assert time.monotonic() < deadline, "no track result"
        time.sleep(0.05)
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert agent.worker.mode == "latency" and agent.worker.bad_frames == 1
