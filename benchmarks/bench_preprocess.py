"""Benchmark: fused fastpath letterbox vs the NumPy reference vs the usual OpenCV three-step path.

Run on demand (not by pytest):  .venv/bin/python benchmarks/bench_preprocess.py [--repeats N]

640x480 BGR frame → 320x320 letterbox, BGR→RGB, /255, CHW float32. The three contenders run
alternately in the same loop; we report the median per call. Writes
benchmarks/results/bench_preprocess.json. Target (project issue): fastpath ≥ 3x both others.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

import fastpath

HERE = Path(__file__).resolve().parent
IMAGE = HERE.parent.parent / "shared" / "eval" / "images" / "bus.jpg"


def load_frame() -> npt.NDArray[np.uint8]:
    img = cv2.imread(str(IMAGE)) if IMAGE.exists() else None
    if img is None:
        img = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    return np.ascontiguousarray(cv2.resize(img, (640, 480)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=400)
    args = ap.parse_args()
    frame = load_frame()
    out_h = out_w = 320
    buf = np.empty((1, 3, out_h, out_w), np.float32)

    def fast() -> object:
        return fastpath.letterbox_chw(frame, out_h, out_w, swap_rb=True, scale=1 / 255)

    def fast_out() -> object:
        return fastpath.letterbox_chw(frame, out_h, out_w, swap_rb=True, scale=1 / 255, out=buf)

    def reference() -> object:
        fastpath.set_implementation("python")
        try:
            return fastpath.letterbox_chw(frame, out_h, out_w, swap_rb=True, scale=1 / 255)
        finally:
            fastpath.set_implementation("cython")

    def opencv() -> object:
        r = cv2.resize(frame, (320, 240), interpolation=cv2.INTER_LINEAR)
        r = cv2.copyMakeBorder(r, 40, 40, 0, 0, cv2.BORDER_CONSTANT, value=(114, 114, 114))
        return cv2.dnn.blobFromImage(r, 1 / 255, swapRB=True)

    fastpath.set_implementation("cython")
    cases: dict[str, Callable[[], object]] = {
        "fastpath": fast,
        "fastpath (out=)": fast_out,
        "opencv 3-step": opencv,
        "numpy reference": reference,
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for i in range(args.repeats):
        for name, fn in cases.items():
            if name == "numpy reference" and i % 8:  # slow: sample it every 8th round
                continue
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    med = {name: statistics.median(ts) * 1e3 for name, ts in times.items()}
    base = med["fastpath"]
    print(f"letterbox 640x480 → 320x320 (median of repeats, cv2 threads={cv2.getNumThreads()})")
    print(f"{'case':<18}{'ms':>10}{'vs fastpath':>14}")
    for name, ms in med.items():
        print(f"{name:<18}{ms:>10.4f}{ms / base:>13.2f}x")
    result = {
        "benchmark": "letterbox_640x480_to_320x320",
        "implementation": fastpath.implementation(),
        "median_ms": med,
        "speedup_vs_opencv": med["opencv 3-step"] / base,
        "speedup_vs_reference": med["numpy reference"] / base,
        "target": ">= 3x both",
        "repeats": {name: len(ts) for name, ts in times.items()},
        "machine": platform.machine(),
        "python": platform.python_version(),
        "opencv": cv2.__version__,
    }
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "bench_preprocess.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
