"""Benchmark: fused fastpath preprocessing vs the usual OpenCV steps vs the NumPy reference.

Run on demand (not by pytest):  .venv/bin/python benchmarks/bench_preprocess.py [--rounds N]

Main row (the issue's bar): 640x480 BGR frame → 320x320 letterbox, BGR→RGB, /255, CHW float32,
fastpath vs ``cv2.resize`` + ``cv2.copyMakeBorder`` + ``cv2.dnn.blobFromImage`` vs the NumPy
reference (the spec). Also the per-frame preprocessing of the other pipelines, each against the
code it replaced: the face detector's 640x480 conversion, the classifier's centre crop (INTER_AREA)
and the face aligner's conversion. Contenders run alternately; median per call. Writes
benchmarks/results/bench_preprocess.json.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import fastpath
from benchmarks.common import EVAL, Row, alternate, load_bgr, med, ms, report

Image = npt.NDArray[np.uint8]


def _reference(fn: Callable[[], object]) -> Callable[[], object]:
    def run() -> object:
        fastpath.set_implementation("python")
        try:
            return fn()
        finally:
            fastpath.set_implementation("cython")

    return run


def _cv2_letterbox(frame: Image) -> object:
    r = cv2.resize(frame, (320, 240), interpolation=cv2.INTER_LINEAR)
    r = cv2.copyMakeBorder(r, 40, 40, 0, 0, cv2.BORDER_CONSTANT, value=(114, 114, 114))
    return cv2.dnn.blobFromImage(r, 1 / 255, swapRB=True)


def _cv2_to_blob(image: npt.NDArray[np.generic]) -> object:
    """What the face detector and aligner did before: cvtColor-free BGR, astype, transpose."""
    return np.ascontiguousarray(image.astype(np.float32).transpose(2, 0, 1)[None])


def _cv2_cover(frame: Image) -> object:
    """What the classifier's preprocessing did before (centre crop, INTER_AREA, RGB, /255, CHW)."""
    h, w = frame.shape[:2]
    side = min(h, w)
    roi = frame[(h - side) // 2 : (h - side) // 2 + side, (w - side) // 2 : (w - side) // 2 + side]
    img = cv2.cvtColor(cv2.resize(roi, (224, 224), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(((img.astype(np.float32) - 0.0) * np.float32(1 / 255)).transpose(2, 0, 1))


def run(rounds: int = 400) -> tuple[list[Row], dict[str, object]]:
    fastpath.set_implementation("cython")
    frame = load_bgr(EVAL / "images" / "bus.jpg", (640, 480))
    crop = np.ascontiguousarray(cv2.resize(frame, (112, 112)), dtype=np.uint8)
    buf = np.empty((1, 3, 320, 320), np.float32)

    def fused() -> object:
        return fastpath.letterbox_chw(frame, 320, 320, swap_rb=True, scale=1 / 255, out=buf)

    cases: dict[str, Callable[[], object]] = {
        "fastpath letterbox": fused,
        "cv2 resize+copyMakeBorder+blobFromImage": lambda: _cv2_letterbox(frame),
        "numpy reference": _reference(fused),
        "fastpath 640x480 conversion (face detector)": lambda: fastpath.letterbox_chw(
            frame, 480, 640, mode="topleft", interpolation="area"
        ),
        "astype+transpose (face detector before)": lambda: _cv2_to_blob(frame),
        "fastpath cover 224 area (classifier)": lambda: fastpath.letterbox_chw(
            frame, 224, 224, mode="cover", interpolation="area", swap_rb=True, scale=1 / 255
        ),
        "cv2 crop+INTER_AREA+cvtColor+astype (classifier before)": lambda: _cv2_cover(frame),
        "fastpath 112 conversion (aligned face)": lambda: fastpath.letterbox_chw(crop, 112, 112, swap_rb=True),
        "cvtColor+astype+transpose (aligned face before)": lambda: _cv2_to_blob(cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)),
    }
    times = alternate(cases, rounds, every={"numpy reference": 8})
    m = {name: med(ts) for name, ts in times.items()}
    fast = m["fastpath letterbox"]
    kind = fastpath.resample_kind(frame.shape, 320, 320)
    rows = [
        Row(
            "preprocess",
            f"letterbox 640x480→320 CHW (fastpath '{kind}' loop, {fastpath.simd_level()}) vs cv2 3-step",
            ms(fast),
            ms(m["cv2 resize+copyMakeBorder+blobFromImage"]),
            m["cv2 resize+copyMakeBorder+blobFromImage"] / fast,
            ">= 3x",
            m["cv2 resize+copyMakeBorder+blobFromImage"] / fast >= 3.0,
        ),
        Row(
            "preprocess",
            "letterbox 640x480→320 CHW vs the NumPy reference (the spec)",
            ms(fast),
            ms(m["numpy reference"]),
            m["numpy reference"] / fast,
            ">= 3x",
            m["numpy reference"] / fast >= 3.0,
        ),
    ]
    for agent, peer, what in (
        ("fastpath 640x480 conversion (face detector)", "astype+transpose (face detector before)",
         "face detector input 640x480 (1:1) vs astype+transpose"),
        ("fastpath cover 224 area (classifier)", "cv2 crop+INTER_AREA+cvtColor+astype (classifier before)",
         "classifier centre crop → 224 (INTER_AREA) vs cv2 path"),
        ("fastpath 112 conversion (aligned face)", "cvtColor+astype+transpose (aligned face before)",
         "aligned face 112 → SFace input vs cvtColor+astype"),
    ):  # fmt: skip
        rows.append(Row("preprocess", what, ms(m[agent]), ms(m[peer]), m[peer] / m[agent], "report", None))
    details = {
        "median_ms": m,
        "calls": {name: len(ts) for name, ts in times.items()},
        "simd": fastpath.simd_level(),
        "cv2_threads": cv2.getNumThreads(),
    }
    return rows, details


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=400)
    args = ap.parse_args()
    rows, details = run(args.rounds)
    report("bench_preprocess", rows, details)


if __name__ == "__main__":
    main()
