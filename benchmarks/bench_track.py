"""Benchmark: the NanoTrack tracker per frame vs its networks alone vs OpenCV's cv2.TrackerNano.

Run on demand (not by pytest):  .venv/bin/python benchmarks/bench_track.py [--passes N] [--threads N]

VOT2015 "bag" (196 frames, 480x360), initialised on frame 1 with the ground truth, never
re-initialised; ``--passes`` runs of the whole video. Per frame, in an order shuffled every frame
(whoever follows another tracker starts with cold caches): the agent's tracker as configured by
default (NanoTrack v2 + the template check, ``verify``), the same without the check, NanoTrack's
own networks alone (search backbone + head on a prepared crop), ``cv2.TrackerNano`` (same v2
files), and, reported, the agent's tracker on NanoTrack v3 and v3's networks alone. Mean IoU over
frames 2..196 for the trackers. Median per
frame. Writes benchmarks/results/bench_track.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import fastpath
from agent.models import load_manifest
from agent.vision.runtime import OnnxModel
from agent.vision.track import Box, NanoTracker, TrackParams, crop_square
from benchmarks.common import EVAL, MODELS, Row, med, ms, report
from tools.eval_track import iou, load_sequence


def run(passes: int = 2, threads: int = 2) -> tuple[list[Row], dict[str, Any]]:
    fastpath.set_implementation("cython")
    cv2.setNumThreads(threads)
    frames, gt = load_sequence(EVAL / "tracking" / "vot15_bag")
    manifest = load_manifest()
    bb_spec, hd_spec = manifest.get("nanotrack_v2_backbone"), manifest.get("nanotrack_v2_head")
    backbone, head = OnnxModel(bb_spec, MODELS, threads), OnnxModel(hd_spec, MODELS, threads)
    bb3_spec, hd3_spec = manifest.get("nanotrack_v3_backbone"), manifest.get("nanotrack_v3_head")
    backbone3, head3 = OnnxModel(bb3_spec, MODELS, threads), OnnxModel(hd3_spec, MODELS, threads)
    times: dict[str, list[float]] = {
        "agent": [],
        "agent no verify": [],
        "nets": [],
        "opencv": [],
        "agent nets": [],
        "agent v3": [],
        "nets v3": [],
    }
    ious: dict[str, list[float]] = {"agent": [], "agent no verify": [], "opencv": [], "agent v3": []}
    # NanoTrack's networks alone: the backbone on a 255 search crop, the head on it + the template
    probe = NanoTracker(backbone, head)
    probe.init(frames[0], gt[0])
    template = probe._template  # the (1, 48, 8, 8) template features
    x = crop_square(frames[0], *probe.center, 2 * probe._template_side(), 255, probe._pad)
    bb_in, bb_out = bb_spec.input.name, backbone.output_names[0]
    hd_t, hd_x = hd_spec.input.name, next(iter(hd_spec.extra_inputs))

    def nets() -> None:
        xf = backbone.run({bb_in: x}, [bb_out])[0]
        head.run({hd_t: template, hd_x: xf})  # type: ignore[dict-item]

    probe3 = NanoTracker(backbone3, head3)
    probe3.init(frames[0], gt[0])
    template3 = probe3._template
    bb3_in, bb3_out = bb3_spec.input.name, backbone3.output_names[0]
    hd3_t, hd3_x = hd3_spec.input.name, next(iter(hd3_spec.extra_inputs))

    def nets3() -> None:
        xf = backbone3.run({bb3_in: x}, [bb3_out])[0]
        head3.run({hd3_t: template3, hd3_x: xf})  # type: ignore[dict-item]

    live: dict[str, Any] = {}  # this pass's trackers
    order = np.random.default_rng(0)

    def step_agent(frame: np.ndarray, box: Box) -> None:
        agent = live["agent"]
        net0 = agent.net_seconds
        t0 = time.perf_counter()
        r = agent.track(frame)
        times["agent"].append((time.perf_counter() - t0) * 1e3)
        times["agent nets"].append((agent.net_seconds - net0) * 1e3)
        ious["agent"].append(iou(r.box, box))

    def step_plain(frame: np.ndarray, box: Box) -> None:
        t0 = time.perf_counter()
        r = live["plain"].track(frame)
        times["agent no verify"].append((time.perf_counter() - t0) * 1e3)
        ious["agent no verify"].append(iou(r.box, box))

    def step_nets(frame: np.ndarray, box: Box) -> None:
        t0 = time.perf_counter()
        nets()
        times["nets"].append((time.perf_counter() - t0) * 1e3)

    def step_v3(frame: np.ndarray, box: Box) -> None:
        t0 = time.perf_counter()
        r = live["v3"].track(frame)
        times["agent v3"].append((time.perf_counter() - t0) * 1e3)
        ious["agent v3"].append(iou(r.box, box))

    def step_nets3(frame: np.ndarray, box: Box) -> None:
        t0 = time.perf_counter()
        nets3()
        times["nets v3"].append((time.perf_counter() - t0) * 1e3)

    def step_opencv(frame: np.ndarray, box: Box) -> None:
        t0 = time.perf_counter()
        _, rect = live["opencv"].update(frame)
        times["opencv"].append((time.perf_counter() - t0) * 1e3)
        ious["opencv"].append(iou(tuple(float(v) for v in rect), box))

    for _ in range(passes):
        params = cv2.TrackerNano_Params()  # type: ignore[attr-defined]
        params.backbone = str(MODELS / bb_spec.file)
        params.neckhead = str(MODELS / hd_spec.file)
        live["agent"] = NanoTracker(backbone, head)
        live["plain"] = NanoTracker(backbone, head, TrackParams(verify=False))
        live["opencv"] = cv2.TrackerNano_create(params)  # type: ignore[attr-defined]
        live["v3"] = NanoTracker(backbone3, head3)
        live["v3"].init(frames[0], gt[0])
        live["agent"].init(frames[0], gt[0])
        live["plain"].init(frames[0], gt[0])
        live["opencv"].init(frames[0], tuple(round(v) for v in gt[0]))
        steps = [step_agent, step_plain, step_nets, step_opencv, step_v3, step_nets3]
        for frame, box in zip(frames[1:], gt[1:], strict=True):
            # a fresh order every frame: whoever follows OpenCV's tracker starts with cold caches
            for k in order.permutation(len(steps)):
                steps[k](frame, box)
    m = {k: med(v) for k, v in times.items()}
    miou = {k: float(np.mean(v)) for k, v in ious.items()}
    rows = [
        Row(
            "track",
            f"NanoTrack v2 per frame, template check on (default; IoU {miou['agent']:.3f}) vs search+head alone",
            ms(m["agent"]),
            ms(m["nets"]),
            m["agent"] / m["nets"],
            "<= 1.2x",
            m["agent"] / m["nets"] <= 1.2,
            note=f"the check reads the search features (no extra network run); vs the networks "
            f"as it ran them: {m['agent'] / m['agent nets']:.2f}x ({ms(m['agent nets'])})",
        ),
        Row(
            "track",
            f"NanoTrack v2 per frame, check off (IoU {miou['agent no verify']:.3f}) vs search+head alone",
            ms(m["agent no verify"]),
            ms(m["nets"]),
            m["agent no verify"] / m["nets"],
            "<= 1.2x",
            m["agent no verify"] / m["nets"] <= 1.2,
        ),
        Row(
            "track",
            f"vs cv2.TrackerNano (IoU agent {miou['agent']:.3f} / check off {miou['agent no verify']:.3f} "
            f"/ OpenCV {miou['opencv']:.3f})",
            f"{ms(m['agent'])} / {ms(m['agent no verify'])}",
            ms(m["opencv"]),
            m["opencv"] / m["agent"],
            ">= 1.5x, IoU >=",
            m["opencv"] / m["agent"] >= 1.5 and miou["agent"] >= miou["opencv"],
            note=f"check off: {m['opencv'] / m['agent no verify']:.2f}x",
        ),
        Row(
            "track",
            f"NanoTrack v3 per frame, check on (IoU {miou['agent v3']:.3f}) vs its search+head alone",
            ms(m["agent v3"]),
            ms(m["nets v3"]),
            m["agent v3"] / m["nets v3"],
            "report",
            None,
            note=f"v3 vs cv2.TrackerNano (v2 files): {m['opencv'] / m['agent v3']:.2f}x",
        ),
    ]
    return rows, {"median_ms": m, "mean_iou": miou, "passes": passes, "threads": threads}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--passes", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    rows, details = run(args.passes, args.threads)
    report("bench_track", rows, details)


if __name__ == "__main__":
    main()
