"""Benchmark: what the live view costs the agent.

Run on demand:  .venv/bin/python benchmarks/bench_preview.py [--seconds S] [--rounds N]

One agent in this process on a real mosquitto, all four pipelines on (faces, segmentation, the
classifier with a learned class, a tracked target) on the looping short_hamilton_clip.mp4
(640x360) played faster than the agent can keep up with, so the vision worker never waits for a
frame. Windows of ``--seconds`` (5) alternate for ``--rounds`` (8), the order shuffled per round
(seeded): preview lease held at ``preview.fps`` 5 and a subscriber receiving the JPEGs, versus no
lease. Per window: the agent process's CPU time per processed frame (what the preview adds to the
work of a frame, whatever the neighbours do: the bar, <= 5 %) and the wall-clock frame time
(window length / frames, which on a shared machine swings with the neighbours' load); each figure
is the median of the per-round on/off ratios. The run also times the preview's own work per frame
(scale, JPEG, msgpack, publish).

Writes benchmarks/results/preview.json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.app import Agent
from agent.mqtt.embedded import EmbeddedBroker
from agent.settings import load_settings
from benchmarks.common import EVAL, MODELS, Row, med, report
from tests.support.mqtt import TestClient

PREFIX = "benchpv"
DEV = "cam"


def _window(agent: Agent, seconds: float) -> tuple[float, float]:
    """Wall-clock and process CPU milliseconds per processed frame over one window."""
    n0, t0, c0 = agent.worker.processed, time.perf_counter(), time.process_time()
    time.sleep(seconds)
    n1, t1, c1 = agent.worker.processed, time.perf_counter(), time.process_time()
    n = max(1, n1 - n0)
    return (t1 - t0) * 1e3 / n, (c1 - c0) * 1e3 / n


def run(seconds: float = 5.0, rounds: int = 8) -> tuple[list[Row], dict[str, Any]]:
    video = EVAL / "faces" / "short_hamilton_clip.mp4"
    broker = EmbeddedBroker().start()
    client = TestClient(broker.port)
    with tempfile.TemporaryDirectory() as state:
        settings = load_settings(
            None,
            mqtt={"host": "127.0.0.1", "port": broker.port, "prefix": PREFIX},
            device={"id": DEV},
            storage={"dir": state},
            models={"dir": MODELS},
            source={"uri": f"video:{video}", "loop": True, "fps": 60},
            pipelines={"faces": True, "segment": True, "classifier": True, "track": True},
            preview={"fps": 5},
            log_level="WARNING",
        )
        agent = Agent(settings)
        try:
            agent.start(connect_timeout=15)
            client.subscribe(f"{PREFIX}/{DEV}/preview", f"{PREFIX}/{DEV}/reply/#")
            deadline = time.monotonic() + 60
            while agent.slot.latest is None and time.monotonic() < deadline:
                time.sleep(0.1)
            for cmd, body in (
                ("classifier/add_class", {"label": "stage"}),
                ("track/start", {"box": [250, 60, 140, 170]}),
            ):
                reply = client.request(PREFIX, DEV, cmd, body, timeout=60)
                assert reply["ok"], reply
            encode_ms: list[float] = []
            send = agent.preview._send_preview

            def timed(frame: Any) -> None:  # the preview's own work per frame: scale, JPEG, msgpack, publish
                t0 = time.perf_counter()
                send(frame)
                encode_ms.append((time.perf_counter() - t0) * 1e3)

            agent.preview._send_preview = timed  # type: ignore[method-assign]
            time.sleep(3.0)  # warm-up: every model has run
            times: dict[str, list[float]] = {"off": [], "on": []}
            cpu: dict[str, list[float]] = {"off": [], "on": []}
            sent: list[int] = []
            order = np.random.default_rng(0)
            for _ in range(rounds):
                for case in order.permutation(["off", "on"]):
                    if case == "on":
                        s0 = agent.preview.sent
                        client.request(PREFIX, DEV, "preview/start", {"seconds": seconds + 5}, timeout=30)
                        time.sleep(0.5)
                        wall, used = _window(agent, seconds)
                        times["on"].append(wall)
                        cpu["on"].append(used)
                        sent.append(agent.preview.sent - s0)
                        client.request(PREFIX, DEV, "preview/stop", {}, timeout=30)
                    else:
                        time.sleep(0.5)
                        wall, used = _window(agent, seconds)
                        times["off"].append(wall)
                        cpu["off"].append(used)
        finally:
            agent.stop()
            client.close()
            broker.cleanup()
    # Rounds pair an "on" window with an "off" one run next to it: the median of the per-round
    # ratios follows the machine's load as it drifts, the medians of all windows would not.
    wall_ratio = med([a / b for a, b in zip(times["on"], times["off"], strict=True)])
    cpu_ratio = med([a / b for a, b in zip(cpu["on"], cpu["off"], strict=True)])
    fps = med([n / (seconds + 0.5) for n in sent])
    per = med(encode_ms)
    rows = [
        Row(
            "preview",
            "live view at 5 fps, all four pipelines on: agent CPU per frame with the preview vs without "
            "(median of per-round ratios)",
            f"{med(cpu['on']):.1f} ms",
            f"{med(cpu['off']):.1f} ms",
            cpu_ratio,
            "<= 1.05x",
            cpu_ratio <= 1.05,
            note=f"{(cpu_ratio - 1) * 100:+.1f} % CPU a frame; {fps:.1f} previews/s; {rounds} rounds of {seconds:g} s",
        ),
        Row(
            "preview",
            "the same, wall-clock frame time (swings with the neighbours' load)",
            f"{med(times['on']):.1f} ms",
            f"{med(times['off']):.1f} ms",
            wall_ratio,
            "report",
            None,
        ),
        Row(
            "preview",
            "the preview's own work per frame (scale to 640, JPEG, msgpack, publish)",
            f"{per:.2f} ms",
            "",
            None,
            "report",
            None,
            note=f"{5 * per / 10:.2f} % of one core at 5 fps (median of {len(encode_ms)} previews)",
        ),
    ]
    details = {"wall_ms": times, "cpu_ms": cpu, "previews": sent, "encode_ms": encode_ms}
    return rows, details


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=8)
    args = ap.parse_args()
    rows, details = run(args.seconds, args.rounds)
    report("preview", rows, details)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
