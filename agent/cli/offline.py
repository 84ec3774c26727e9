"""``maix-agent infer``: run one pipeline offline on image files and print one JSON line each.

It builds the agent's own pipeline services (the same code the MQTT commands use; no broker, no
fleet sync, no Home Assistant) on a throw-away state dir, so enrolling here never touches a
camera's banks. ``--enrol LABEL=IMAGE`` enrols a face
(faces) or adds a class view (classifier) first; ``--box x,y,w,h`` starts the tracker on the
first image (track), and every following image is one tracked frame.
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
import numpy as np

from agent.bank.clock import HLC
from agent.controls import Controls
from agent.errors import AgentError, CommandError
from agent.mqtt import envelope
from agent.pipelines.classifier import ClassifierService
from agent.pipelines.faces import FaceService
from agent.pipelines.registry import by_name, names
from agent.pipelines.track import TrackService
from agent.services import Services
from agent.settings import load_settings


def _read(path: str) -> np.ndarray:
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise CommandError("bad_request", f"cannot read image {path}")
    return image


def _box(text: str) -> list[float]:
    parts = [float(v) for v in text.replace(" ", "").split(",")]
    if len(parts) != 4:
        raise CommandError("bad_request", f"--box needs x,y,w,h, got {text!r}")
    return parts


BATCH = 16


def _infer_chunk(services: Services, pipeline: str, kind: str, paths: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """Results for a few images; an unreadable image gets an ``error`` line, not an abort."""
    out: list[tuple[str, dict[str, Any]]] = []
    good: list[tuple[str, np.ndarray]] = []
    for path in paths:
        try:
            good.append((path, _read(path)))
        except AgentError as exc:
            out.append((path, {"error": str(exc)}))
    try:
        if kind == "classify":
            bodies = services.get(ClassifierService).classify_batch([img for _, img in good])
        else:
            bodies = [services.engine.infer(pipeline, img) for _, img in good]
    except AgentError as exc:
        return out + [(p, {"error": str(exc)}) for p, _ in good]
    for (path, img), body in zip(good, bodies, strict=True):
        h, w = img.shape[:2]
        out.append((path, {"w": w, "h": h, "body": body}))
    order = {p: i for i, p in enumerate(paths)}
    return sorted(out, key=lambda item: order[item[0]])


def run_infer(args: argparse.Namespace) -> int:
    spec = by_name(args.pipeline)
    if spec is None:
        print(f"error: unknown pipeline {args.pipeline!r} ({names()})", file=sys.stderr)
        return 1
    kind = spec.kind
    with tempfile.TemporaryDirectory(prefix="maix-infer-") as tmp:
        settings = load_settings(
            args.config, storage={"dir": Path(tmp)}, source={"uri": "none"}, results={"state_interval": 3600}
        )
        settings.storage.dir.mkdir(parents=True, exist_ok=True)
        dev = settings.device.id
        services = Services(settings, Controls(settings, settings.storage.dir), HLC(dev), dev)
        for item in args.enrol:
            label, _, path = item.partition("=")
            if not label or not path:
                print(f"error: --enrol needs LABEL=IMAGE, got {item!r}", file=sys.stderr)
                return 1
            image = _read(path)
            if kind == "faces":
                services.get(FaceService).enrol(image, label, "largest")
            elif kind == "classify":
                services.get(ClassifierService).add_class(label, image, None)
            else:
                print("error: --enrol applies to the faces and classifier pipelines", file=sys.stderr)
                return 1
        images = list(args.images)
        if kind == "track":
            if args.box is None:
                print("error: the track pipeline needs --box x,y,w,h for the first image", file=sys.stderr)
                return 1
            services.get(TrackService).start(_read(images[0]), _box(args.box))
            images = images[1:]
        chunk = BATCH if kind == "classify" else 1  # the classifier batches its feature model
        for start in range(0, len(images), chunk):
            for offset, (path, line) in enumerate(
                _infer_chunk(services, args.pipeline, kind, images[start : start + chunk])
            ):
                if "error" not in line:
                    line = envelope.result(None, start + offset + 1, time.time(), line["w"], line["h"], line["body"])
                print(json.dumps({"image": path, **line}, default=float), flush=True)
    return 0
