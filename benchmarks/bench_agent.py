"""Benchmark: the whole agent in a subprocess on a real mosquitto.

Run on demand (not by pytest):  .venv/bin/python benchmarks/bench_agent.py [--pings N] [--seconds S]

1. Throughput, faces + track on a 640x480 video (short_hamilton_clip.mp4 frames, fitted into
   640x480 and played as an image folder at 60 fps: a camera faster than the agent can run faces,
   as fast as real ones), for: the two pipelines one after the other (``performance.workers: 1``)
   with 1 and 2 onnxruntime threads a model, side by side per frame (latency mode, the default)
   with 1 and 2, and in lanes (throughput mode: the faces lane works on one frame per CPU at
   once). Frames per second = frames that got both results (latency modes) or the slower lane's
   rate (throughput mode).
2. MQTT ``system/ping`` round trip (request → reply at the client), p50/p99 over ``--pings``
   pings: idle (no source, no pipeline), then while all four pipelines run flat out on a looping
   video (vot15 bag.avi, a tracked target, a learned class).
3. Resident memory (VmRSS) of the agent process with all four pipelines loaded and running.

Writes benchmarks/results/bench_agent.json.
"""

from __future__ import annotations

import argparse
import base64
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.mqtt.embedded import EmbeddedBroker
from benchmarks.common import EVAL, MODELS, REPO, Row, fit_640x480, med, pct, report
from tests.support.mqtt import TestClient

PREFIX = "bench"
DEV = "cam"
SOURCE_FPS = 60.0  # the throughput runs' camera: faster than the agent can run faces, as fast as real ones


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def _vmrss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@contextmanager
def agent_process(port: int, state: Path, **cfg: Any) -> Iterator[subprocess.Popen[bytes]]:
    """The agent (``python -m agent run``) on the broker at ``port``, until the context exits."""
    conf: dict[str, Any] = {
        "mqtt": {"host": "127.0.0.1", "port": port, "prefix": PREFIX},
        "device": {"id": DEV},
        "storage": {"dir": str(state)},
        "log_level": "WARNING",
        **cfg,
    }
    conf["models"] = {"dir": str(MODELS), **cfg.get("models", {})}
    path = state / "agent.yaml"
    state.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(conf))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "--config", str(path), "run"], cwd=REPO, env=env, stderr=subprocess.PIPE
    )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def connect(port: int) -> TestClient:
    """A test client whose socket sends small packets at once (TCP_NODELAY, as the agent's):
    a round trip must not measure Nagle's algorithm."""
    client = TestClient(port)
    sock = client.client.socket()
    if isinstance(sock, socket.socket):  # paho's SocketLike: a plain TCP socket here (no TLS, no websocket)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return client


def wait_online(client: TestClient, timeout: float = 60.0) -> None:
    client.subscribe(f"{PREFIX}/{DEV}/availability", f"{PREFIX}/{DEV}/reply/#")
    client.wait_for(lambda m: m.topic.endswith("availability") and m.payload == b"online", timeout)


def pings(client: TestClient, n: int) -> list[float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        reply = client.request(PREFIX, DEV, "system/ping", {}, timeout=30)
        times.append((time.perf_counter() - t0) * 1e3)
        assert reply["ok"], reply
    return times


def rates(port: int, seconds: float, warmup: float) -> dict[str, float]:
    """Results per second by kind, counted over ``seconds`` after ``warmup``."""
    counter = connect(port)
    try:
        counter.subscribe(f"{PREFIX}/{DEV}/result/#")
        time.sleep(warmup)  # a warm-up interval, not a synchronisation
        n0 = len(counter.all)
        t0 = time.monotonic()
        time.sleep(seconds)
        msgs = counter.all[n0:]
        dt = time.monotonic() - t0
    finally:
        counter.close()
    out: dict[str, float] = {}
    for m in msgs:
        kind = m.topic.rsplit("/", 1)[-1]
        out[kind] = out.get(kind, 0.0) + 1.0 / dt
    return out


def hamilton_frames(folder: Path, n: int = 120) -> Path:
    """The clip's first ``n`` frames fitted into 640x480, as JPEG files."""
    cap = cv2.VideoCapture(str(EVAL / "faces" / "short_hamilton_clip.mp4"))
    folder.mkdir(parents=True, exist_ok=True)
    i = 0
    while i < n:
        ok, frame = cap.read()
        if not ok:
            break
        cv2.imwrite(str(folder / f"{i:04d}.jpg"), fit_640x480(frame), [cv2.IMWRITE_JPEG_QUALITY, 90])
        i += 1
    cap.release()
    return folder


def throughput(port: int, tmp: Path, seconds: float) -> dict[str, dict[str, float]]:
    frames = hamilton_frames(tmp / "hamilton")
    first = sorted(frames.glob("*.jpg"))[0]
    configs: dict[str, dict[str, Any]] = {
        "one after the other, 2 threads/model": {
            "performance": {"mode": "latency", "workers": 1},
            "models": {"threads": 2},
        },
        "one after the other, 1 thread/model": {
            "performance": {"mode": "latency", "workers": 1},
            "models": {"threads": 1},
        },
        "side by side, 2 threads/model": {
            "performance": {"mode": "latency", "workers": 2},
            "models": {"threads": 2},
        },
        "side by side, 1 thread/model": {
            "performance": {"mode": "latency", "workers": 2},
            "models": {"threads": 1},
        },
        "lanes (throughput)": {"performance": {"mode": "throughput"}},
    }
    out: dict[str, dict[str, float]] = {}
    for name, extra in configs.items():
        cfg = {
            "source": {"uri": f"images:{frames}", "loop": True, "fps": SOURCE_FPS},
            "pipelines": {"faces": True, "track": True, "segment": False, "classifier": False},
            **extra,
        }
        with agent_process(port, tmp / f"state-{len(out)}", **cfg):
            client = connect(port)
            try:
                wait_online(client)
                r = client.request(
                    PREFIX, DEV, "track/start", {"box": [250, 120, 120, 140], "image": _b64(first)}, timeout=120
                )
                assert r["ok"], r
                got = rates(port, seconds, warmup=5.0)
            finally:
                client.close()
        both = min(got.get("faces", 0.0), got.get("track", 0.0))
        out[name] = {"fps": both, **{f"{k}/s": v for k, v in got.items()}}
        print(f"  throughput {name}: {out[name]}", flush=True)
    return out


def mqtt_latency(port: int, tmp: Path, n: int) -> dict[str, Any]:
    video = EVAL / "tracking" / "vot15_bag" / "bag.avi"
    gt = [float(v) for v in (EVAL / "tracking" / "vot15_bag" / "groundtruth.txt").read_text().split("\n")[0].split(",")]
    box = [min(gt[0::2]), min(gt[1::2]), max(gt[0::2]) - min(gt[0::2]), max(gt[1::2]) - min(gt[1::2])]
    first = sorted((EVAL / "tracking" / "vot15_bag" / "imgs").glob("*.jpg"))[0]
    res: dict[str, Any] = {}
    with agent_process(port, tmp / "state-idle", source={"uri": "none"}):
        client = connect(port)
        try:
            wait_online(client)
            pings(client, 20)
            res["idle"] = pings(client, n)
        finally:
            client.close()
    all_on = {"faces": True, "track": True, "segment": True, "classifier": True}
    with agent_process(
        port, tmp / "state-load", source={"uri": f"video:{video}", "loop": True, "fps": 1000.0}, pipelines=all_on
    ) as proc:
        client = connect(port)
        try:
            wait_online(client)
            for cmd, body in (
                ("classifier/add_class", {"label": "bag", "image": _b64(first)}),
                ("track/start", {"box": box, "image": _b64(first)}),
            ):
                r = client.request(PREFIX, DEV, cmd, body, timeout=120)
                assert r["ok"], r
            res["rates"] = rates(port, 5.0, warmup=5.0)
            pings(client, 20)
            res["load"] = pings(client, n)
            res["rss_mb"] = _vmrss_mb(proc.pid)
        finally:
            client.close()
    return res


def run(pings_n: int = 1000, seconds: float = 10.0) -> tuple[list[Row], dict[str, Any]]:
    # mosquitto's default leaves Nagle on its sockets: every reply then waits ~40 ms for the
    # client's delayed ACK. A latency-minded broker turns it off (the agent does on its side).
    broker = EmbeddedBroker().start()
    try:
        with tempfile.TemporaryDirectory(prefix="maix-bench-") as td:
            tmp = Path(td)
            tput = throughput(broker.port, tmp, seconds)
            lat = mqtt_latency(broker.port, tmp, pings_n)
    finally:
        broker.cleanup()
    seq1 = tput["one after the other, 1 thread/model"]["fps"]
    seq = max(tput["one after the other, 2 threads/model"]["fps"], seq1)
    side = max(tput["side by side, 2 threads/model"]["fps"], tput["side by side, 1 thread/model"]["fps"])
    lanes = tput["lanes (throughput)"]["fps"]
    best = max(side, lanes)
    idle, load = lat["idle"], lat["load"]
    rows = [
        Row(
            "throughput",
            f"faces+track 640x480 video, {SOURCE_FPS:.0f} fps camera: side by side {side:.1f} fps, lanes "
            f"{lanes:.1f} fps vs one after the other (each the faster of 1 or 2 threads a model)",
            f"{best:.1f} fps",
            f"{seq:.1f} fps",
            best / seq if seq else float("nan"),
            ">= 1.5x",
            seq > 0 and best / seq >= 1.5,
            data=tput,
            note=f"vs one after the other with 1 thread a model ({seq1:.1f} fps): {best / seq1:.2f}x" if seq1 else "",
        ),
        Row(
            "mqtt",
            f"system/ping p50/p99, idle ({len(idle)} pings)",
            f"{med(idle):.2f} / {pct(idle, 99):.2f} ms",
            "",
            None,
            "report",
            None,
        ),
        Row(
            "mqtt",
            "system/ping p50/p99 while 4 pipelines run flat out on a video "
            f"(results/s: {', '.join(f'{k} {v:.1f}' for k, v in sorted(lat['rates'].items()))})",
            f"{med(load):.2f} / {pct(load, 99):.2f} ms",
            "",
            pct(load, 99),
            "p99 <= 20 ms",
            pct(load, 99) <= 20.0,
        ),
        Row(
            "memory",
            "agent RSS, all four pipelines loaded and running",
            f"{lat['rss_mb']:.0f} MB",
            "",
            None,
            "report",
            None,
        ),
    ]
    details = {
        "throughput": tput,
        "ping_idle_ms": {"p50": med(idle), "p99": pct(idle, 99), "max": max(idle)},
        "ping_load_ms": {"p50": med(load), "p99": pct(load, 99), "max": max(load)},
        "rates_under_load": lat["rates"],
        "rss_mb": lat["rss_mb"],
    }
    return rows, details


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pings", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=10.0, help="measuring window of each throughput run")
    args = ap.parse_args()
    rows, details = run(args.pings, args.seconds)
    report("bench_agent", rows, details)


if __name__ == "__main__":
    main()
