"""Bounded soak: the agent as a real process, every pipeline on a looping video, a command every
100 ms, the broker restarted twice. Records the agent's RSS, fps, results per second and command
→ reply latency over time, and prints a summary (memory at start and end, crashes, lost replies).

    .venv/bin/python tools/soak.py --minutes 15            # CSV next to the summary: --csv FILE
    .venv/bin/python tools/soak.py --mode throughput       # the lanes (performance.mode)

The command mix: cheap ones (ping, state getters, lists) and, every 20th, an expensive one
(infer on a photo, classifier/add_class, face/enrol, track/start on the latest frame), so the
banks grow a little and the tracker restarts now and then. The agent's log goes to a file; its
ERROR lines and tracebacks are counted.
"""

from __future__ import annotations

import argparse
import base64
import csv
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from agent.mqtt.embedded import EmbeddedBroker  # noqa: E402

PREFIX, DEV = "soak", "soak1"


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


@dataclass
class Probe:
    """The soak's own MQTT client: sends commands, times replies, counts results, reads state."""

    port: int
    connected: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    sent: dict[str, float] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)  # this window, ms
    replies: dict[str, int] = field(default_factory=dict)  # code -> count
    results: dict[str, int] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)
    online: int = 0
    offline: int = 0
    disconnects: int = 0

    def __post_init__(self) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"soak-{uuid.uuid4().hex[:6]}", protocol=MQTTProtocolVersion.MQTTv5
        )
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 2)
        self.client.connect_async("127.0.0.1", self.port, keepalive=10)
        self.client.loop_start()

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if not rc.is_failure:
            client.subscribe(f"{PREFIX}/{DEV}/#", 1)  # a restarted broker forgot the subscription
            self.connected.set()

    def _on_disconnect(self, *_a: Any) -> None:
        self.connected.clear()
        self.disconnects += 1

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        now = time.monotonic()
        kind = msg.topic.split("/")[2]
        if kind == "reply":
            try:
                body = json.loads(msg.payload)
            except ValueError:
                return
            with self.lock:
                t0 = self.sent.pop(str(body.get("id")), None)
                code = "ok" if body.get("ok") else body.get("error", {}).get("code", "?")
                self.replies[code] = self.replies.get(code, 0) + 1
                if t0 is not None:
                    self.latencies.append((now - t0) * 1000)
        elif kind == "result":
            with self.lock:
                k = msg.topic.rsplit("/", 1)[-1]
                self.results[k] = self.results.get(k, 0) + 1
        elif kind == "state":
            with self.lock:
                self.state = json.loads(msg.payload)
        elif kind == "availability":
            if msg.payload == b"online":
                self.online += 1
            else:
                self.offline += 1

    def send(self, command: str, body: dict[str, Any]) -> bool:
        if not self.connected.is_set():
            return False
        req_id = uuid.uuid4().hex[:12]
        with self.lock:
            self.sent[req_id] = time.monotonic()
        self.client.publish(f"{PREFIX}/{DEV}/cmd/{command}", json.dumps({"id": req_id, **body}), qos=1)
        return True

    def take_window(self) -> tuple[list[float], dict[str, int]]:
        with self.lock:
            lat, self.latencies = self.latencies, []
            res, self.results = self.results, {}
        return lat, res

    def unanswered(self, older_than: float) -> list[float]:
        """When the commands still without a reply were sent."""
        cutoff = time.monotonic() - older_than
        with self.lock:
            return [t for t in self.sent.values() if t < cutoff]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def command_mix(eval_dir: Path) -> list[tuple[str, dict[str, Any]]]:
    def b64(path: Path, width: int) -> str:
        image = cv2.imread(str(path))
        if image is None:
            raise FileNotFoundError(f"cannot read {path}")
        image = cv2.resize(image, (width, int(width * image.shape[0] / image.shape[1])))
        return base64.b64encode(cv2.imencode(".jpg", image)[1].tobytes()).decode()

    face = b64(eval_dir / "faces" / "obama.jpg", 320)
    bus = b64(eval_dir / "images" / "bus.jpg", 320)
    cheap: list[tuple[str, dict[str, Any]]] = [
        ("system/ping", {}),
        ("thresholds/get", {}),
        ("pipelines/get", {}),
        ("face/list", {}),
        ("classifier/list", {}),
        ("system/info", {}),
    ]
    expensive: list[tuple[str, dict[str, Any]]] = [
        ("infer", {"pipeline": "faces", "image": face}),
        ("classifier/add_class", {"label": "bus", "image": bus}),
        ("infer", {"pipeline": "segment", "image": bus}),
        ("face/enrol", {"label": "obama", "image": face}),
        ("track/start", {"box": [140, 60, 120, 120]}),
        ("infer", {"pipeline": "classifier"}),
    ]
    mix: list[tuple[str, dict[str, Any]]] = []
    for i in range(20 * len(expensive)):
        mix.append(expensive[i // 20] if i % 20 == 19 else cheap[i % len(cheap)])
    return mix


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=15.0)
    ap.add_argument("--interval", type=float, default=0.1, help="seconds between commands")
    ap.add_argument("--restarts", type=int, default=2, help="broker restarts, evenly spread")
    ap.add_argument("--sample", type=float, default=10.0, help="seconds between samples")
    ap.add_argument(
        "--eval-dir", type=Path, default=Path(os.environ.get("MAIX_AGENT_EVAL_DIR", REPO.parent / "shared" / "eval"))
    )
    ap.add_argument("--video", type=Path, default=None, help="default: eval faces/short_hamilton_clip.mp4")
    ap.add_argument("--models-dir", type=Path, default=Path(os.environ.get("MAIX_AGENT_MODELS__DIR", REPO / "models")))
    ap.add_argument("--csv", type=Path, default=None)
    ap.add_argument("--mode", choices=("latency", "throughput"), default="latency", help="performance.mode")
    args = ap.parse_args(argv)

    video = args.video or args.eval_dir / "faces" / "short_hamilton_clip.mp4"
    work = Path(tempfile.mkdtemp(prefix="maix-soak-"))
    log_path = work / "agent.log"
    csv_path = args.csv or work / "soak.csv"
    broker = EmbeddedBroker().start()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "MAIX_AGENT_MQTT__HOST": "127.0.0.1",
        "MAIX_AGENT_MQTT__PORT": str(broker.port),
        "MAIX_AGENT_MQTT__PREFIX": PREFIX,
        "MAIX_AGENT_MQTT__RECONNECT_MIN": "1",
        "MAIX_AGENT_MQTT__RECONNECT_MAX": "2",
        "MAIX_AGENT_DEVICE__ID": DEV,
        "MAIX_AGENT_STORAGE__DIR": str(work / "state"),
        "MAIX_AGENT_MODELS__DIR": str(args.models_dir),
        "MAIX_AGENT_SOURCE__URI": f"video:{video}",
        "MAIX_AGENT_SOURCE__LOOP": "true",
        "MAIX_AGENT_PIPELINES__CLASSIFIER": "true",
        "MAIX_AGENT_PIPELINES__FACES": "true",
        "MAIX_AGENT_PIPELINES__SEGMENT": "true",
        "MAIX_AGENT_PIPELINES__TRACK": "true",
        "MAIX_AGENT_RESULTS__STATE_INTERVAL": "2",
        "MAIX_AGENT_PERFORMANCE__MODE": args.mode,
    }
    log_fh = log_path.open("wb")
    agent = subprocess.Popen([sys.executable, "-m", "agent", "run"], cwd=REPO, env=env, stdout=log_fh, stderr=log_fh)
    probe = Probe(broker.port)
    mix = command_mix(args.eval_dir)
    t0 = time.monotonic()
    duration = args.minutes * 60
    restart_at = [duration * (i + 1) / (args.restarts + 1) for i in range(args.restarts)]
    rows: list[dict[str, Any]] = []
    all_lat: list[float] = []
    crashes, skipped, sent, restarts, recover_s = 0, 0, 0, 0, []
    outages: list[tuple[float, float]] = []  # (broker stopped, agent online again), monotonic
    next_cmd = next_sample = time.monotonic()
    print(f"soak: {args.minutes} min, agent pid {agent.pid}, broker port {broker.port}, log {log_path}", flush=True)
    try:
        if not probe.connected.wait(30):
            raise SystemExit("the soak client cannot reach the broker")
        while probe.online == 0:  # commands sent before the agent subscribed would go nowhere
            if agent.poll() is not None or time.monotonic() - t0 > 120:
                raise SystemExit(f"the agent did not come online: see {log_path}")
            time.sleep(0.05)
        t0 = next_cmd = next_sample = time.monotonic()
        while (now := time.monotonic()) - t0 < duration:
            if agent.poll() is not None:
                crashes += 1
                print(f"agent exited with {agent.returncode}: see {log_path}", flush=True)
                break
            if restart_at and now - t0 >= restart_at[0]:
                restart_at.pop(0)
                stopped = time.monotonic()
                broker.stop()
                time.sleep(2.0)  # the outage itself
                broker.start()
                restarts += 1
                t_down = time.monotonic()
                online = probe.online
                while probe.online == online and time.monotonic() - t_down < 60:
                    time.sleep(0.05)
                recover_s.append(round(time.monotonic() - t_down, 2))
                outages.append((stopped, time.monotonic()))
                print(
                    f"[{(time.monotonic() - t0) / 60:5.1f} min] broker restarted, agent online after {recover_s[-1]} s",
                    flush=True,
                )
                continue
            if now >= next_cmd:
                command, body = mix[sent % len(mix)]
                if probe.send(command, body):
                    sent += 1
                else:
                    skipped += 1
                next_cmd += args.interval
                if next_cmd < now:
                    next_cmd = now + args.interval
            if now >= next_sample:
                lat, res = probe.take_window()
                all_lat.extend(lat)
                state = dict(probe.state)
                elapsed = max(now - (next_sample - args.sample), 1e-6) if rows else args.sample
                row = {
                    "t_min": round((now - t0) / 60, 2),
                    "rss_mb": round(rss_mb(agent.pid), 1),
                    "fps": state.get("fps"),
                    "frames_processed": state.get("frames_processed"),
                    "results_per_s": round(sum(res.values()) / elapsed, 2),
                    "replies": len(lat),
                    "p50_ms": round(pct(lat, 0.5), 1),
                    "p99_ms": round(pct(lat, 0.99), 1),
                    "max_ms": round(max(lat), 1) if lat else None,
                    "banks": json.dumps(state.get("banks", {})),
                }
                rows.append(row)
                print(
                    f"[{row['t_min']:5.1f} min] rss {row['rss_mb']} MB fps {row['fps']} "
                    f"results/s {row['results_per_s']} replies {row['replies']} "
                    f"p50 {row['p50_ms']} ms p99 {row['p99_ms']} ms",
                    flush=True,
                )
                next_sample += args.sample
            time.sleep(min(0.01, max(0.0, min(next_cmd, next_sample) - time.monotonic())))
        time.sleep(5)  # let the last replies in
        lost = probe.unanswered(older_than=5)
        in_outage = [t for t in lost if any(a - 10 <= t <= b for a, b in outages)]
    finally:
        probe.close()
        if agent.poll() is None:
            agent.send_signal(signal.SIGINT)
            try:
                agent.wait(30)
            except subprocess.TimeoutExpired:
                agent.kill()
        log_fh.close()
        broker.cleanup()

    with csv_path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["t_min"])
        writer.writeheader()
        writer.writerows(rows)
    log_text = log_path.read_text(errors="replace")
    warm = [r for r in rows if r["t_min"] >= min(2.0, args.minutes / 4)] or rows
    half = warm[len(warm) // 2 :]
    slope = 0.0
    if len(half) >= 2:
        xs = [r["t_min"] for r in half]
        ys = [r["rss_mb"] for r in half]
        mx, my = statistics.fmean(xs), statistics.fmean(ys)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / max(
            1e-9, sum((x - mx) ** 2 for x in xs)
        )
    fps = [r["fps"] for r in rows if isinstance(r["fps"], (int, float))]
    summary = {
        "minutes": round((time.monotonic() - t0) / 60, 1),
        "commands_sent": sent,
        "commands_skipped_while_disconnected": skipped,
        "replies": dict(probe.replies),
        "replies_lost": len(lost),
        "replies_lost_around_broker_restarts": len(in_outage),
        "lost_sent_at_min": sorted(round((t - t0) / 60, 2) for t in lost),
        "soak_client_disconnects": probe.disconnects,
        "latency_ms": {
            "p50": round(pct(all_lat, 0.5), 1),
            "p99": round(pct(all_lat, 0.99), 1),
            "max": round(max(all_lat, default=0), 1),
        },
        "fps": {
            "mean": round(statistics.fmean(fps), 2) if fps else None,
            "min": min(fps, default=None),
            "max": max(fps, default=None),
        },
        "rss_mb": {
            "start": next((r["rss_mb"] for r in rows if r["fps"] is not None), None),
            "after_warmup": warm[0]["rss_mb"] if warm else None,
            "end": rows[-1]["rss_mb"] if rows else None,
            "max": max((r["rss_mb"] for r in rows), default=None),
            "slope_second_half_mb_per_min": round(slope, 3),
        },
        "broker_restarts": restarts,
        "agent_back_online_s": recover_s,
        "crashes": crashes,
        "agent_exit_code": agent.returncode,
        "log_errors": sum(1 for line in log_text.splitlines() if " ERROR " in line),
        "log_tracebacks": log_text.count("Traceback"),
        "csv": str(csv_path),
        "log": str(log_path),
    }
    print(json.dumps(summary, indent=1))
    return 0 if crashes == 0 and agent.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
