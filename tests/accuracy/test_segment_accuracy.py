"""Segmentation through ``maix-agent infer segment`` on coco128, scored by pycocotools COCOeval
with masks rasterised from the published polygons."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def _evaluate(gt: COCO, dets: list[dict[str, Any]], kind: str) -> float:
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(dets)
        ev = COCOeval(gt, dt, kind)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[1])  # AP at IoU 0.50


@pytest.mark.accuracy
def test_coco128_map50(infer: Any, engine: str, eval_dir: Path, record_property: Any) -> None:
    root = eval_dir / "coco128"
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(root / "instances.json"))
    by_name = {c["name"]: c["id"] for c in gt.loadCats(gt.getCatIds())}
    files = {img["file_name"]: img["id"] for img in gt.loadImgs(gt.getImgIds())}
    lines = infer(
        ["segment", *[str(root / "images" / f) for f in sorted(files)]],
        env={"MAIX_AGENT_THRESHOLDS__SEGMENT__SCORE": "0.001", "MAIX_AGENT_THRESHOLDS__SEGMENT__IOU": "0.7"},
    )
    assert len(lines) == 128
    boxes: list[dict[str, Any]] = []
    masks: list[dict[str, Any]] = []
    for line in lines:
        image_id, h, w = files[Path(line["image"]).name], line["h"], line["w"]
        for obj in line["objects"]:
            cat = by_name[obj["label"]]  # the model's names are COCO's names
            boxes.append({"image_id": image_id, "category_id": cat, "bbox": obj["box"], "score": obj["score"]})
            polys = [p for p in obj["polygons"] if len(p) >= 6]
            if not polys:
                continue
            rle = mask_utils.merge(mask_utils.frPyObjects([list(map(float, p)) for p in polys], h, w))
            rle["counts"] = rle["counts"].decode() if isinstance(rle["counts"], bytes) else rle["counts"]
            masks.append({"image_id": image_id, "category_id": cat, "segmentation": rle, "score": obj["score"]})
    assert len(boxes) > 1000 and np.isfinite([b["score"] for b in boxes]).all()
    box50, mask50 = _evaluate(gt, boxes, "bbox"), _evaluate(gt, json.loads(json.dumps(masks)), "segm")
    record_property("box_map50", box50)
    record_property("mask_map50", mask50)
    print(f"coco128 ({engine}): box mAP50 {box50:.4f}, mask mAP50 {mask50:.4f} ({len(boxes)} detections)")
    assert box50 >= 0.46
    assert mask50 >= 0.39
