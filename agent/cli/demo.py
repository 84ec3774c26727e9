"""``maix-agent demo``: the whole agent on a sample video with an embedded broker.

It starts a private mosquitto, runs the agent on the video, turns on segmentation and tracking
through the real command protocol (the bag of the VOT "bag" video is the tracking target),
prints what the agent publishes, and shows the ``maix-agent cmd`` lines to try.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import cv2

from agent.cli.common import REPO, decode_for_print, setup_logging, topics_of
from agent.settings import load_settings

SHOWN = ("result/", "event/", "reply/", "availability", "state")
DEFAULT_VIDEO = REPO.parent / "shared" / "eval" / "tracking" / "vot15_bag" / "bag.avi"


def first_box(video: Path) -> list[int] | None:
    """The axis-aligned box of the first ground-truth line next to the video, if there is one."""
    gt = video.parent / "groundtruth.txt"
    if not gt.is_file():
        return None
    nums = [float(v) for v in gt.read_text().splitlines()[0].replace(",", " ").split()]
    xs, ys = nums[0::2], nums[1::2]
    return [round(min(xs)), round(min(ys)), round(max(xs) - min(xs)), round(max(ys) - min(ys))]


def _short(topic: str, body: Any) -> str:
    if isinstance(body, dict) and topic.startswith("reply/") and isinstance(body.get("data"), dict):
        body = {**body, "data": {k: v for k, v in body["data"].items() if k != "image"}}
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k not in ("v", "dev")}
        if "objects" in body:
            body["objects"] = [
                {
                    "label": o.get("label"),
                    "score": round(o.get("score", 0), 2),
                    "box": o.get("box"),
                    "polygon_points": sum(len(p) // 2 for p in o.get("polygons", [])),
                }
                for o in body["objects"]
            ]
    text = json.dumps(body, default=str)
    return f"{topic}  {text[:300]}"


def _echo(lines: Iterable[str]) -> None:
    for line in lines:
        print(f"console: {line}", end="", flush=True)


def start_console(host: str, port: int, prefix: str, console_port: int) -> tuple[subprocess.Popen[str] | None, str]:
    """``maix-agent console`` beside the demo's agent, on the embedded broker; its URL."""
    env = {
        **os.environ,
        "MAIX_AGENT_MQTT__HOST": host,
        "MAIX_AGENT_MQTT__PORT": str(port),
        "MAIX_AGENT_MQTT__PREFIX": prefix,
        "MAIX_AGENT_CONSOLE__PORT": str(console_port),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "--log-level", "WARNING", "console"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # Ctrl-C reaches the demo, which stops the console itself
    )
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        if line.startswith("maix-agent console: "):
            threading.Thread(target=_echo, args=(proc.stdout,), daemon=True).start()
            return proc, line.split()[2]
        lines.append(line)
    proc.wait(5)
    return None, "".join(lines[-5:]).strip()


def run_demo(args: argparse.Namespace) -> int:
    from agent.app import Agent
    from agent.mqtt.client import SimpleClient

    video = args.video or DEFAULT_VIDEO
    if not video.is_file():
        print(f"error: demo video not found: {video} (pass --video PATH)")
        return 1
    settings = load_settings(
        args.config,
        mqtt={"host": "embedded", "port": 0},
        source={"uri": f"video:{video}", "loop": True},
        device={"id": "demo"},
        storage={"dir": REPO / "state" / "demo"},
    )
    setup_logging(args.log_level or "WARNING")
    agent = Agent(settings)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    agent.start(connect_timeout=15)
    cfg = agent.mqtt_cfg
    dev, prefix = agent.device_id, settings.mqtt.prefix
    topics = topics_of(settings, dev)
    watcher = SimpleClient(cfg, f"demo-watch-{uuid.uuid4().hex[:6]}")
    watcher.subscribe(topics.everything)
    watcher.connect()

    def send(command: str, body: dict[str, Any]) -> None:
        family, _, name = command.partition("/")
        watcher.publish(topics.command(family, name), json.dumps({"id": command, **body}).encode())

    print(f"maix-agent demo: device {dev!r}, embedded broker on 127.0.0.1:{cfg.port}, video {video}")
    send("pipelines/set", {"segment": True, "track": True, "faces": False})
    box = first_box(video)
    if box:  # the ground-truth box belongs to the video's first frame: send that frame along
        cap = cv2.VideoCapture(str(video), cv2.CAP_FFMPEG)
        ok, first = cap.read()
        cap.release()
        if ok:
            image = base64.b64encode(cv2.imencode(".jpg", first)[1].tobytes()).decode()
            send("track/start", {"box": box, "image": image})
    env = f"MAIX_AGENT_MQTT__HOST=127.0.0.1 MAIX_AGENT_MQTT__PORT={cfg.port}"
    console, url = (None, "") if args.no_console else start_console("127.0.0.1", cfg.port, prefix, args.console_port)
    if console is not None:
        print(f"\nConsole: open {url} in a browser (live view, teach by pointing, libraries)")
    elif not args.no_console:
        print(f"\nthe console did not start: {url}")
    stream = args.stream or bool(args.max_lines)
    print("\nTry, in another shell, while the demo runs:")
    print(f"  {env} maix-agent cmd {dev} system/ping '{{}}'")
    print(f'  {env} maix-agent cmd {dev} thresholds/set \'{{"segment": {{"score": 0.6}}}}\'')
    print(f'  {env} maix-agent cmd {dev} classifier/add_class \'{{"label": "bag", "box": {box or [0, 0, 100, 100]}}}\'')
    print(f"  {env} maix-agent cmd {dev} pipelines/set '{{\"classifier\": true}}'")
    print(f'  {env} maix-agent cmd {dev} face/enrol \'{{"label": "me"}}\' --image my_face.jpg')
    print(f"  {env} maix-agent watch {dev}     # the JSON stream (or run the demo with --stream)\n")
    printed = 0
    deadline = time.monotonic() + args.duration if args.duration else None
    try:
        while not stop.is_set():
            if deadline and time.monotonic() > deadline:
                break
            for msg in watcher.messages(timeout=0.5):
                tail = msg.topic.split("/", 2)[-1]
                if not tail.startswith(SHOWN) or (not stream and tail != "state"):
                    continue
                if tail == "state":
                    state = json.loads(msg.payload)
                    print(
                        f"state  fps={state['fps']} frames_in={state['frames_in']} "
                        f"dropped={state['frames_dropped']} pipelines={state['pipelines']} fastpath={state['fastpath']}"
                    )
                    continue
                body = decode_for_print(msg.payload, msg.content_type)
                print(_short(tail, body), flush=True)
                printed += 1
                if args.max_lines and printed >= args.max_lines:
                    stop.set()
                if stop.is_set() or (deadline and time.monotonic() > deadline):
                    break
    finally:
        if console is not None:
            console.terminate()
            try:
                console.wait(10)
            except subprocess.TimeoutExpired:
                console.kill()
        watcher.close()
        agent.stop()
        print("demo stopped (offline published)")
    return 0
