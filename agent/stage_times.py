"""Where a frame's time goes, from its arrival to its result leaving the agent.

Each frame the worker publishes records five stages (ms): ``decode`` (JPEG/PNG to pixels; 0 for
camera frames), ``queue`` (waiting between stages: for the decode thread, then for the pipeline
thread), ``pipeline`` (the enabled pipelines), ``encode`` (msgpack) and ``publish`` (handing the
result to the MQTT client), plus per frame ``work`` (decode + pipeline: what the frame needs done)
and ``total`` (every stage). ``state.stages_ms`` reports the medians of the last :data:`WINDOW`
frames (a median of per-frame sums, not a sum of medians).
"""

from __future__ import annotations

import statistics
import threading
from collections import deque

STAGES = ("decode", "queue", "pipeline", "encode", "publish")
WINDOW = 100


class StageTimes:
    def __init__(self, window: int = WINDOW) -> None:
        self._rows: deque[tuple[float, ...]] = deque(maxlen=window)
        self._lock = threading.Lock()

    def record(self, decode: float, queue: float, pipeline: float, encode: float, publish: float) -> None:
        """One frame's stages, in seconds."""
        with self._lock:
            self._rows.append((decode, queue, pipeline, encode, publish))

    def medians_ms(self) -> dict[str, float]:
        """Median ms of each stage (and of their per-frame total) over the window; {} before a frame."""
        with self._lock:
            rows = list(self._rows)
        if not rows:
            return {}
        out = {name: round(statistics.median(r[i] for r in rows) * 1000, 2) for i, name in enumerate(STAGES)}
        out["work"] = round(statistics.median(r[0] + r[2] for r in rows) * 1000, 2)
        out["total"] = round(statistics.median(sum(r) for r in rows) * 1000, 2)
        out["frames"] = len(rows)
        return out
