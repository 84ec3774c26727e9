"""Benchmark: the NanoTrack tracker per frame vs its networks alone vs OpenCV's cv2.TrackerNano.

Run on demand (not by pytest):  .venv/bin/python benchmarks/bench_track.py [--passes N] [--threads N]

VOT2015 "bag" (196 frames, 480x360), initialised on frame 1 with the ground truth, never
re-initialised; ``--passes`` runs of the whole video. Per frame, in an order shuffled every frame
(whoever follows another tracker starts with cold caches): the agent's tracker as configured by
default (NanoTrack v2 + the template check, ``verify``), the same without the check, NanoTrack's
own networks alone (search backbone + head on a prepared crop), ``cv2.TrackerNano`` (same v2
files), and, reported, the agent's tracker on NanoTrack v3 and v3's networks alone. The peers use
``--threads``; the agent's trackers the engines and threads the agent chooses (``models tune``). Mean IoU over
frames 2..196 for the trackers. Median per frame. Each frame is copied before its steps, as the
agent's frame source hands over a frame it has just decoded (the list of 196 decoded frames would
otherwise start every step from DRAM). Writes benchmarks/results/bench_track.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import fastpath
from agent.models import load_manifest
from agent.models.tune import TuneCache, choose, default_cache, tune
from agent.settings import Settings
from agent.vision.runtime import Model, OnnxModel, load_model
from agent.vision.track import Box, NanoTracker, TrackParams, crop_square
from benchmarks.common import EVAL, MODELS, Row, med, ms, report
from tools.eval_track import iou, load_sequence

Step = Callable[[np.ndarray, Box], None]


def run(passes: int = 2, threads: int = 2) -> tuple[list[Row], dict[str, Any]]:
    fastpath.set_implementation("cython")
    cv2.setNumThreads(threads)
    frames, gt = load_sequence(EVAL / "tracking" / "vot15_bag")
    manifest = load_manifest()

    def sessions(version: str, n: int) -> tuple[OnnxModel, OnnxModel]:
        return (OnnxModel(manifest.get(f"nanotrack_{version}_backbone"), MODELS, n),
                OnnxModel(manifest.get(f"nanotrack_{version}_head"), MODELS, n))  # fmt: skip

    # the peers run on ``threads``; the agent's trackers on the engines and threads the agent
    # chooses on this machine (its tuning cache, measured now when missing or stale)
    pairs = {v: sessions(v, threads) for v in ("v2", "v3")}
    names = tuple(f"nanotrack_{v}_{part}" for v in ("v2", "v3") for part in ("backbone", "head"))
    tunes = tune(manifest, names, MODELS, EVAL, TuneCache(default_cache()), progress=lambda line: print("  " + line))
    defaults = Settings.model_validate({})  # the agent as configured by default (faces + track)
    choice = choose(tunes, defaults.engine_threads(), spin=defaults.model_spin())

    def chosen(version: str) -> tuple[Model, Model]:
        models = []
        for part in ("backbone", "head"):
            c = choice[f"nanotrack_{version}_{part}"]
            same = (c.engine, c.threads, c.spin) == ("onnxruntime", threads, "never")  # no second copy
            models.append(pairs[version][part == "head"] if same else load_model(
                manifest.get(f"nanotrack_{version}_{part}"), MODELS, c.engine, c.threads, c.spin))  # fmt: skip
        return models[0], models[1]

    mine = {v: chosen(v) for v in ("v2", "v3")}
    cv2.setNumThreads(threads)  # an OpenCV model loaded above set the process-wide count: the peer's
    times: dict[str, list[float]] = defaultdict(list)
    ious: dict[str, list[float]] = defaultdict(list)
    live: dict[str, Any] = {}  # this pass's trackers, by result key
    order = np.random.default_rng(0)

    def nets_of(version: str) -> Callable[[], None]:
        """NanoTrack's networks alone: the backbone on a 255 search crop, the head on it + the
        template features of frame 1."""
        backbone, head = pairs[version]
        probe = NanoTracker(backbone, head)
        probe.init(frames[0], gt[0])
        template = probe._template
        x = crop_square(frames[0], *probe.center, 2 * probe._template_side(), 255, probe._pad)
        bb_in, bb_out = backbone.spec.input.name, backbone.output_names[0]
        hd_t, hd_x = head.spec.input.name, next(iter(head.spec.extra_inputs))

        def nets() -> None:
            xf = backbone.run({bb_in: x}, [bb_out])[0]
            head.run({hd_t: template, hd_x: xf})  # type: ignore[dict-item]

        return nets

    def nets_step(key: str, nets: Callable[[], None]) -> Step:
        def step(frame: np.ndarray, box: Box) -> None:
            t0 = time.perf_counter()
            nets()
            times[key].append((time.perf_counter() - t0) * 1e3)

        return step

    def tracker_step(key: str) -> Step:
        def step(frame: np.ndarray, box: Box) -> None:
            tracker = live[key]
            net0 = tracker.net_seconds
            t0 = time.perf_counter()
            r = tracker.track(frame)
            times[key].append((time.perf_counter() - t0) * 1e3)
            times[f"{key} nets"].append((tracker.net_seconds - net0) * 1e3)
            ious[key].append(iou(r.box, box))

        return step

    def opencv_step(frame: np.ndarray, box: Box) -> None:
        t0 = time.perf_counter()
        _, rect = live["opencv"].update(frame)
        times["opencv"].append((time.perf_counter() - t0) * 1e3)
        ious["opencv"].append(iou(tuple(float(v) for v in rect), box))

    steps = [
        tracker_step("agent"),
        tracker_step("agent no verify"),
        nets_step("nets", nets_of("v2")),
        opencv_step,
        tracker_step("agent v3"),
        nets_step("nets v3", nets_of("v3")),
    ]
    for _ in range(passes):
        params = cv2.TrackerNano_Params()  # type: ignore[attr-defined]
        params.backbone = str(MODELS / pairs["v2"][0].spec.file)
        params.neckhead = str(MODELS / pairs["v2"][1].spec.file)
        live["agent"] = NanoTracker(*mine["v2"])
        live["agent no verify"] = NanoTracker(*mine["v2"], TrackParams(verify=False))
        live["agent v3"] = NanoTracker(*mine["v3"])
        for key in ("agent", "agent no verify", "agent v3"):
            live[key].init(frames[0], gt[0])
        live["opencv"] = cv2.TrackerNano_create(params)  # type: ignore[attr-defined]
        live["opencv"].init(frames[0], tuple(round(v) for v in gt[0]))
        for stored, box in zip(frames[1:], gt[1:], strict=True):
            # a frame as a source hands it over: just written (decoded), not 100 MB back in DRAM
            frame = stored.copy()
            # a fresh order every frame: whoever follows OpenCV's tracker starts with cold caches
            for k in order.permutation(len(steps)):
                steps[k](frame, box)
    m = {k: med(v) for k, v in times.items()}
    miou = {k: float(np.mean(v)) for k, v in ious.items()}

    def vs_nets(key: str, nets: str, what: str, bar: str, note: str = "") -> Row:
        """A tracker's median per frame against its own networks alone."""
        ratio = m[key] / m[nets]
        met = ratio <= 1.2 if bar == "<= 1.2x" else None
        return Row("track", what, ms(m[key]), ms(m[nets]), ratio, bar, met, note=note)

    rows = [
        vs_nets(
            "agent",
            "nets",
            f"NanoTrack v2 per frame, template check on (default; IoU {miou['agent']:.3f}) vs search+head alone",
            "<= 1.2x",
            note=f"the check reads the search features (no extra network run); vs the networks "
            f"as it ran them: {m['agent'] / m['agent nets']:.2f}x ({ms(m['agent nets'])})",
        ),
        vs_nets(
            "agent no verify",
            "nets",
            f"NanoTrack v2 per frame, check off (IoU {miou['agent no verify']:.3f}) vs search+head alone",
            "<= 1.2x",
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
            note=f"check off: {m['opencv'] / m['agent no verify']:.2f}x; the agent's NanoTrack v2: "
            + ", ".join(f"{p} {c.candidate}" for p, c in choice.items() if "_v2_" in p),
        ),
        vs_nets(
            "agent v3",
            "nets v3",
            f"NanoTrack v3 per frame, check on (IoU {miou['agent v3']:.3f}) vs its search+head alone",
            "report",
            note=f"v3 vs cv2.TrackerNano (v2 files): {m['opencv'] / m['agent v3']:.2f}x",
        ),
    ]
    return rows, {
        "median_ms": m,
        "mean_iou": miou,
        "passes": passes,
        "threads": threads,
        "agent_engines": {n: c.as_dict() for n, c in choice.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--passes", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    rows, details = run(args.passes, args.threads)
    report("bench_track", rows, details)


if __name__ == "__main__":
    main()
