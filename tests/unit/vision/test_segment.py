"""Segmenter on the real YOLOv8n-seg model and real photos (expected values: MODELS.md)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from agent.models.manifest import load_manifest
from agent.vision.polygons import polygons_area
from agent.vision.runtime import OnnxModel
from agent.vision.segment import Segmenter


@pytest.fixture(scope="module")
def seg(models_dir: Path) -> Iterator[Segmenter]:
    yield Segmenter(OnnxModel(load_manifest().get("yolov8n_seg"), models_dir))


def _img(eval_dir: Path, name: str) -> np.ndarray:
    img = cv2.imread(str(eval_dir / "images" / name), cv2.IMREAD_COLOR)
    assert img is not None, name
    return img


def _check_objects(objs: list[dict[str, Any]], frame: np.ndarray, names: list[str]) -> None:
    h, w = frame.shape[:2]
    for o in objs:
        assert set(o) == {"class_id", "label", "score", "box", "polygons", "area"}
        assert isinstance(o["class_id"], int) and 0 <= o["class_id"] < 80
        assert o["label"] == names[o["class_id"]]
        assert isinstance(o["score"], float) and 0.0 < o["score"] <= 1.0
        x, y, bw, bh = o["box"]
        assert all(isinstance(v, float) for v in o["box"])
        assert x >= 0 and y >= 0 and bw >= 0 and bh >= 0
        assert x + bw <= w + 1e-3 and y + bh <= h + 1e-3
        assert isinstance(o["area"], int) and 0 <= o["area"] <= (bw + 1) * (bh + 1)
        for poly in o["polygons"]:
            assert len(poly) >= 6 and len(poly) % 2 == 0
            assert all(isinstance(v, int) for v in poly)
            xs, ys = np.array(poly[0::2]), np.array(poly[1::2])
            assert xs.min() >= 0 and xs.max() <= w and ys.min() >= 0 and ys.max() <= h
            # inside the box, up to the pixel-edge rounding
            assert xs.min() >= x - 1 and xs.max() <= x + bw + 1
            assert ys.min() >= y - 1 and ys.max() <= y + bh + 1
    scores = [o["score"] for o in objs]
    assert scores == sorted(scores, reverse=True)


def test_names_from_metadata(seg: Segmenter) -> None:
    assert len(seg.names) == 80
    assert seg.names[0] == "person" and seg.names[5] == "bus" and seg.names[79] == "toothbrush"


def test_bus(seg: Segmenter, eval_dir: Path) -> None:
    frame = _img(eval_dir, "bus.jpg")
    objs = seg.segment(frame)
    _check_objects(objs, frame, seg.names)
    buses = [o for o in objs if o["label"] == "bus"]
    persons = [o for o in objs if o["label"] == "person"]
    assert len(buses) == 1 and buses[0]["score"] == pytest.approx(0.88, abs=0.03)
    assert len(persons) >= 3
    top3 = sorted((o["score"] for o in persons), reverse=True)[:3]
    assert top3 == pytest.approx([0.86, 0.75, 0.71], abs=0.04)
    for o in [*buses, *persons]:
        _, _, bw, bh = o["box"]
        box_area = bw * bh
        poly_area = polygons_area(o["polygons"])
        assert o["polygons"], o
        # a person or a bus fills a good part of its box, never more than all of it
        assert 0.25 < poly_area / box_area <= 1.02, (o["label"], poly_area / box_area)
        # the polygons describe the mask closely
        assert poly_area == pytest.approx(o["area"], rel=0.1)
    # the bus is the wide object at the back: its box spans most of the frame width
    assert buses[0]["box"][2] > 0.8 * frame.shape[1]


@pytest.mark.parametrize(
    ("name", "label", "count", "score"),
    [
        ("zidane.jpg", "person", 2, None),
        ("chelsea.png", "cat", 1, 0.91),
        ("coffee.png", "cup", 1, 0.94),
    ],
)
def test_photos(seg: Segmenter, eval_dir: Path, name: str, label: str, count: int, score: float | None) -> None:
    frame = _img(eval_dir, name)
    objs = seg.segment(frame)
    _check_objects(objs, frame, seg.names)
    hits = [o for o in objs if o["label"] == label and o["score"] >= 0.5]
    assert len(hits) == count, objs
    assert objs[0]["label"] == label
    if score is not None:
        assert hits[0]["score"] == pytest.approx(score, abs=0.03)
    assert all(o["polygons"] for o in hits)


def test_thresholds_change_count(seg: Segmenter, eval_dir: Path) -> None:
    frame = _img(eval_dir, "bus.jpg")
    low = seg.segment(frame, score_th=0.05)
    default = seg.segment(frame)
    high = seg.segment(frame, score_th=0.8)
    assert len(low) > len(default) > len(high) >= 2
    assert all(o["score"] > 0.8 for o in high)
    assert len(seg.segment(frame, max_det=2)) == 2
    assert seg.segment(frame, max_det=0) == []
    # a looser NMS keeps at least as many boxes
    assert len(seg.segment(frame, score_th=0.05, iou_th=0.9)) >= len(low)


def test_polygons_off_keeps_everything_else(seg: Segmenter, eval_dir: Path) -> None:
    frame = _img(eval_dir, "coffee.png")
    with_p = seg.segment(frame)
    without = seg.segment(frame, polygons=False)
    assert [o["polygons"] for o in without] == [[] for _ in without]
    strip = [{k: v for k, v in o.items() if k != "polygons"} for o in with_p]
    assert strip == [{k: v for k, v in o.items() if k != "polygons"} for o in without]


def test_masks_match_polygons(seg: Segmenter, eval_dir: Path) -> None:
    frame = _img(eval_dir, "zidane.jpg")
    h, w = frame.shape[:2]
    for obj, bm in seg.segment_with_masks(frame):
        full = bm.full(h, w)
        assert int(full.sum()) == obj["area"]
        drawn = np.zeros((h, w), np.uint8)
        for poly in obj["polygons"]:
            cv2.fillPoly(drawn, [np.array(poly, np.int32).reshape(-1, 2)], 1)
        inter = int((drawn & full).sum())
        union = int((drawn | full).sum())
        assert inter / union > 0.9


def test_empty_and_small_frames(seg: Segmenter) -> None:
    assert seg.segment(np.full((480, 640, 3), 128, np.uint8)) == []
    assert seg.segment(np.zeros((320, 320, 3), np.uint8)) == []
    assert isinstance(seg.segment(np.full((1, 1, 3), 200, np.uint8)), list)
    assert isinstance(seg.segment(np.full((7, 1000, 3), 50, np.uint8)), list)


def test_scaled_frame_scales_boxes(seg: Segmenter, eval_dir: Path) -> None:
    frame = _img(eval_dir, "coffee.png")
    small = cv2.resize(frame, (300, 200), interpolation=cv2.INTER_AREA)
    big = seg.segment(frame)[0]
    little = seg.segment(small)[0]
    assert big["label"] == little["label"] == "cup"
    assert np.allclose(np.array(little["box"]) * 2, big["box"], atol=8)


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((100, 100), np.uint8),
        np.zeros((100, 100, 4), np.uint8),
        np.zeros((100, 100, 1), np.uint8),
        np.zeros((100, 100, 3), np.float32),
        np.zeros((0, 100, 3), np.uint8),
        [[0, 0, 0]],
        None,
    ],
)
def test_invalid_frame_raises(seg: Segmenter, bad: Any) -> None:
    with pytest.raises(ValueError):
        seg.segment(bad)


@pytest.mark.parametrize("kwargs", [{"score_th": -0.1}, {"score_th": 1.5}, {"iou_th": 2.0}, {"max_det": -1}])
def test_invalid_thresholds_raise(seg: Segmenter, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        seg.segment(np.zeros((64, 64, 3), np.uint8), **kwargs)
