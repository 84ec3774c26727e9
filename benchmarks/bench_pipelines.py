"""Benchmark: segmentation and classifier end to end vs their models alone.

Run on demand (not by pytest):  .venv/bin/python benchmarks/bench_pipelines.py [--rounds N] [--threads N]

* segment: YOLOv8n-seg 320 on a 640x480 frame (bus.jpg: several objects): letterbox, model,
  decode, NMS, box masks, polygons, the ``segments`` result built — vs the model alone on the
  prepared input.
* classifier: MobileNetV2 features on a 640x480 frame (centre crop 224) → L2 ranking against 5
  classes → the ``classify`` result built — vs the model alone on the prepared input.

Alternately, each case on a fresh copy of the frame (as the agent's source hands over a frame it
has just decoded), median per frame. Writes benchmarks/results/bench_pipelines.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import fastpath
from agent.models import load_manifest
from agent.models.tune import Choice, TuneCache, choose, default_cache, tune
from agent.vision.classifier import SelfLearnClassifier
from agent.vision.features import FeatureExtractor, preprocess
from agent.vision.runtime import Spin, load_model
from agent.vision.segment import Segmenter
from benchmarks.common import EVAL, MODELS, Handover, Row, alternate, load_bgr, med, ms, report

CLASS_PHOTOS = ("motorcycle_left.png", "coffee.png", "chelsea.png", "rocket.jpg", "astronaut.png")


def _config(c: Choice) -> tuple[str, int, Spin]:
    return c.engine, c.threads, c.spin


def run(rounds: int = 60, threads: int = 2) -> tuple[list[Row], dict[str, Any]]:
    fastpath.set_implementation("cython")
    manifest = load_manifest()
    # each model on the engine the agent chooses on this machine at ``threads`` threads a model
    names = ("yolov8n_seg", "mobilenet_v2")
    tunes = tune(manifest, names, MODELS, EVAL, TuneCache(default_cache()), progress=lambda line: print("  " + line))
    choice = choose(tunes, (threads,))
    seg = Segmenter(load_model(manifest.get(names[0]), MODELS, *_config(choice[names[0]])))
    handover = Handover(load_bgr(EVAL / "images" / "bus.jpg", (640, 480)))
    frame = handover.frame  # for the setup; the cases read handover.frame
    blob, _ = seg.preprocess(frame)
    n_objects = len(seg.segment(frame, score_th=0.4))

    extractor = FeatureExtractor(load_model(manifest.get(names[1]), MODELS, *_config(choice[names[1]])))
    clf = SelfLearnClassifier(extractor.dim, 14.0)
    for name in CLASS_PHOTOS:
        clf.add_class(name.split(".")[0], extractor.extract(load_bgr(EVAL / "images" / name)))
    x = preprocess(frame, extractor.spec)[None]

    cases = {
        "segment": lambda: {"objects": seg.segment(handover.frame, score_th=0.4, iou_th=0.45)},
        "segment model": lambda: seg.model(blob),
        "classify": lambda: clf.classify(extractor.extract(handover.frame)).to_result(),
        "classify model": lambda: extractor.run(x),
    }
    times = alternate(cases, rounds, before=handover)
    m = {k: med(v) for k, v in times.items()}
    r_seg = m["segment"] / m["segment model"]
    r_cls = m["classify"] / m["classify model"]
    rows = [
        Row(
            "segment",
            f"YOLOv8n-seg 320 ({choice[names[0]].candidate}), 640x480 ({n_objects} objects): decode, NMS, masks, "
            "polygons, result vs model",
            ms(m["segment"]),
            ms(m["segment model"]),
            r_seg,
            "<= 1.15x",
            r_seg <= 1.15,
        ),
        Row(
            "classifier",
            f"MobileNetV2 224 ({choice[names[1]].candidate}), 640x480 centre crop, {len(CLASS_PHOTOS)} classes → "
            "result vs model",
            ms(m["classify"]),
            ms(m["classify model"]),
            r_cls,
            "<= 1.10x",
            r_cls <= 1.10,
        ),
    ]
    engines = {n: c.as_dict() for n, c in choice.items()}
    return rows, {
        "median_ms": m,
        "threads": threads,
        "rounds": rounds,
        "segment_objects": n_objects,
        "engines": engines,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=60)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    rows, details = run(args.rounds, args.threads)
    report("bench_pipelines", rows, details)


if __name__ == "__main__":
    main()
