"""Benchmark: a frame's way through the agent over MQTT against the agent's own work on it.

Run on demand (not by pytest):  .venv/bin/python benchmarks/bench_framepath.py [--frames N]

The agent runs in a subprocess (``source: mqtt``, the faces pipeline alone) on a mosquitto with
``set_tcp_nodelay true``. A client pushes a 640x480 JPEG with one face (obama.jpg fitted into
640x480) on ``frame/in`` and waits for its ``result/faces``, ``--frames`` times, one frame in
flight at a time. publish → result (the client's clock) is set against what the agent says it
spent on the same frames (``state.stages_ms``: decode, queue wait, pipeline, encode, publish, and
``work`` = decode + pipeline per frame; medians of the same last frames) in the same run.
Bar: publish → result ≤ the agent's own pipeline + JPEG decode (``work``) + 3 ms.

Writes benchmarks/results/bench_framepath.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.mqtt.embedded import EmbeddedBroker
from benchmarks.bench_agent import DEV, PREFIX, agent_process, connect, wait_online
from benchmarks.common import EVAL, Row, fit_640x480, load_bgr, med, pct, report

SLACK_MS = 3.0


def face_jpeg() -> bytes:
    """obama.jpg fitted into a 640x480 canvas, as a quality-90 JPEG."""
    ok, buf = cv2.imencode(".jpg", fit_640x480(load_bgr(EVAL / "faces" / "obama.jpg")), [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return buf.tobytes()


def measure(port: int, tmp: Path, frames: int, warmup: int = 20) -> dict[str, Any]:
    jpeg = face_jpeg()
    cfg = {
        "source": {"uri": "mqtt"},
        "pipelines": {"faces": True, "track": False, "segment": False, "classifier": False},
        "results": {"state_interval": 0.5},
    }
    times: list[float] = []
    with agent_process(port, tmp / "state-framepath", **cfg):
        client = connect(port)
        try:
            wait_online(client)
            client.subscribe(f"{PREFIX}/{DEV}/result/faces", f"{PREFIX}/{DEV}/state")
            topic = f"{PREFIX}/{DEV}/frame/in"
            faces = 0
            for i in range(warmup + frames):
                t0 = time.perf_counter()
                client.client.publish(topic, jpeg, qos=0)
                msg = client.wait_for(lambda m: m.topic.endswith("result/faces"), 60)
                dt = (time.perf_counter() - t0) * 1e3
                if i >= warmup:
                    times.append(dt)
                    faces += len(_decode(bytes(msg.payload)).get("faces", []))
            t_done = time.time()
            state: dict[str, Any] = {}
            while not state.get("stages_ms") or state.get("_at", 0) < t_done:
                m = client.wait_for(lambda m: m.topic.endswith("/state"), 10)
                state = json.loads(m.payload)
                state["_at"] = time.time()
        finally:
            client.close()
    return {"publish_to_result_ms": times, "stages_ms": state["stages_ms"], "faces_per_frame": faces / frames}


def _decode(payload: bytes) -> dict[str, Any]:
    import msgpack

    body: dict[str, Any] = msgpack.unpackb(payload, raw=False)
    return body


def run(frames: int = 100) -> tuple[list[Row], dict[str, Any]]:
    broker = EmbeddedBroker().start()
    try:
        with tempfile.TemporaryDirectory(prefix="maix-bench-") as td:
            res = measure(broker.port, Path(td), frames)
    finally:
        broker.cleanup()
    e2e = med(res["publish_to_result_ms"])
    st = res["stages_ms"]
    work = st["work"]  # per frame decode + pipeline, median over the same frames
    gap = e2e - work
    rows = [
        Row(
            "framepath",
            f"faces alone, 640x480 one-face JPEG on frame/in: publish -> result/faces over MQTT vs the agent's "
            f"own pipeline + JPEG decode for the same frames (median of {frames}; p90 "
            f"{pct(res['publish_to_result_ms'], 90):.1f} ms)",
            f"{e2e:.2f} ms",
            f"{work:.2f} ms",
            gap,
            f"<= {SLACK_MS:g} ms",
            gap <= SLACK_MS,
            note=f"agent stages (median ms): {', '.join(f'{k} {v}' for k, v in st.items())}",
        )
    ]
    return rows, res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=100)
    args = ap.parse_args()
    rows, details = run(args.frames)
    report("bench_framepath", rows, details)


if __name__ == "__main__":
    main()
