"""Shared helpers of the benchmarks: alternating timing, rows of the results table, paths.

Every comparison runs its contenders *alternately* in the same loop (round r runs A, B, C, …
once each, in an order shuffled every round) so that a noisy neighbour slows all of them alike,
and reports the median per call. The shuffle matters: in a fixed order a contender that always
follows a big model (a segmenter, another tracker) always starts with cold caches, and the one
after it always with warm ones.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
EVAL = Path(os.environ.get("MAIX_AGENT_EVAL_DIR", REPO.parent / "shared" / "eval"))
MODELS = Path(os.environ.get("MAIX_AGENT_MODELS__DIR", REPO / "models"))


@dataclass
class Row:
    """One line of the results table: the agent's figure, the peer's, their ratio and the bar."""

    section: str
    what: str
    agent: str  # formatted figure (e.g. "0.10 ms")
    peer: str  # formatted figure, or "" when there is no peer
    ratio: float | None  # how the bar reads it (see ``bar``)
    bar: str  # e.g. ">= 3x", "<= 1.10x", "report"
    met: bool | None  # None: nothing to meet (a reported figure)
    note: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def alternate(
    cases: Mapping[str, Callable[[], object]],
    rounds: int,
    *,
    warmup: int = 3,
    every: Mapping[str, int] | None = None,
    before: Callable[[], object] | None = None,
) -> dict[str, list[float]]:
    """Run every case once per round, in an order shuffled every round (seeded); per-call times
    in ms. ``every[name] = k`` runs a slow case only every k-th round. ``before`` runs, untimed,
    before every case (e.g. hand over a freshly decoded frame, as the agent's source does)."""
    every = every or {}
    for _ in range(warmup):
        for fn in cases.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    order = np.random.default_rng(0)
    for r in range(rounds):
        for i in order.permutation(len(names)):
            name, fn = names[i], cases[names[i]]
            if r % every.get(name, 1):
                continue
            if before is not None:
                before()
            t0 = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t0) * 1e3)
    return times


class Handover:
    """The frame the cases read, copied anew before each case (``alternate(..., before=handover)``),
    as the agent's source hands over a frame it has just decoded: read ``handover.frame``."""

    def __init__(self, stored: np.ndarray) -> None:
        self._stored = stored
        self.frame = stored.copy()

    def __call__(self) -> None:
        self.frame = self._stored.copy()


def med(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, np.float64), q)) if values else float("nan")


def ms(value: float) -> str:
    return f"{value:.3f} ms" if value < 1 else f"{value:.2f} ms"


def load_bgr(path: Path, size: tuple[int, int] | None = None) -> npt.NDArray[np.uint8]:
    """A BGR uint8 image from the eval data, resized to ``size`` (w, h) when given."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f"cannot read {path} (is ../shared/eval there? MAIX_AGENT_EVAL_DIR)")
    if size is not None and (img.shape[1], img.shape[0]) != size:
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(img)


def fit_640x480(img: np.ndarray) -> np.ndarray:
    """An image scaled to fit a black 640x480 canvas, centred (a camera-sized frame)."""
    h, w = img.shape[:2]
    s = min(640 / w, 480 / h)
    small = cv2.resize(img, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
    canvas = np.zeros((480, 640, 3), np.uint8)
    y0, x0 = (480 - small.shape[0]) // 2, (640 - small.shape[1]) // 2
    canvas[y0 : y0 + small.shape[0], x0 : x0 + small.shape[1]] = small
    return canvas


def machine() -> dict[str, Any]:
    load = os.getloadavg()
    return {
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "opencv": cv2.__version__,
        "numpy": np.__version__,
        "load_average_1m": round(load[0], 2),
    }


def report(name: str, rows: list[Row], details: Mapping[str, Any]) -> None:
    """Print a section's rows and write them, with the machine, to ``results/{name}.json``."""
    width = max((len(r.what) for r in rows), default=0)
    for r in rows:
        ratio = "" if r.ratio is None else f"{r.ratio:6.2f}x"
        print(f"{r.what:<{width}} {r.agent:>18} {r.peer:>10} {ratio:>7}  {r.bar}  {r.note}".rstrip())
    RESULTS.mkdir(exist_ok=True)
    out = {"rows": [r.as_dict() for r in rows], "details": dict(details), "machine": machine()}
    (RESULTS / f"{name}.json").write_text(json.dumps(out, indent=2) + "\n")
