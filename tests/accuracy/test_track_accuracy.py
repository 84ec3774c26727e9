"""Tracking through ``maix-agent infer track``: init on frame 1 with the ground truth, no re-init."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tools.eval_track import iou


def _aabb(line: str) -> list[float]:
    v = [float(x) for x in line.replace(",", " ").split()]
    xs, ys = v[0::2], v[1::2]
    return [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]


@pytest.mark.accuracy
@pytest.mark.parametrize(("tracker", "bar"), [("nanotrack_v2", 0.79), ("nanotrack_v3", 0.80)])
def test_vot_bag_mean_iou(
    tracker: str, bar: float, infer: Any, engine: str, eval_dir: Path, record_property: Any
) -> None:
    seq = eval_dir / "tracking" / "vot15_bag"
    frames = sorted((seq / "imgs").glob("*.jpg"))
    truth = [_aabb(line) for line in (seq / "groundtruth.txt").read_text().splitlines() if line.strip()]
    assert len(frames) == len(truth) == 196
    box = ",".join(f"{v:.2f}" for v in truth[0])
    lines = infer(["track", *map(str, frames), "--box", box], env={"MAIX_AGENT_MODELS__TRACKER": tracker})
    assert len(lines) == len(frames) - 1 and all("box" in line for line in lines)
    ious = [iou(line["box"], gt) for line, gt in zip(lines, truth[1:], strict=True)]
    mean = sum(ious) / len(ious)
    record_property(f"{tracker}_{engine}_mean_iou", mean)
    hits = sum(i > 0.5 for i in ious)
    print(f"{tracker} ({engine}): mean IoU {mean:.4f} over {len(ious)} frames, {hits} with IoU > 0.5")
    assert mean >= bar
